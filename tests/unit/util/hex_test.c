#include <criterion/criterion.h>

#include <string.h>

#include "util/hex.h"

/* Every byte value, as a signed and as an unsigned char, against a table
 * lookup: the digits map to their value, everything else (NUL included) to -1. */
Test(hex, every_byte)
{
    static const char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        const char *l = b ? memchr(lower, b, 16) : NULL;
        const char *u = b ? memchr(upper, b, 16) : NULL;
        int want = l ? (int)(l - lower) : u ? (int)(u - upper) : -1;
        cr_expect_eq(hex_digit(b), want, "hex_digit(%d)", b);
        cr_expect_eq(hex_digit((signed char)b), want, "hex_digit((signed char)%d)", b);
    }
}
