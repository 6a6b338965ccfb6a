#include <criterion/criterion.h>

#include <string.h>

#include "util/utf8.h"

#define VALID(s) utf8_valid((s), sizeof(s) - 1)

Test(utf8, valid_sequences)
{
    cr_expect(VALID(""));
    cr_expect(VALID("plain ascii"));
    cr_expect(VALID("\xc3\xa9"));         /* é */
    cr_expect(VALID("\xe6\x97\xa5"));     /* 日 */
    cr_expect(VALID("\xf0\x9f\x99\x82")); /* 🙂 */
    cr_expect(VALID("\xf4\x8f\xbf\xbf")); /* U+10FFFF */
    cr_expect(VALID("\xed\x9f\xbf"));     /* U+D7FF, just below surrogates */
    cr_expect(VALID("\xee\x80\x80"));     /* U+E000, just above */
    cr_expect(utf8_valid("a\0b", 3));     /* NUL is a valid code point */
}

Test(utf8, invalid_sequences)
{
    cr_expect_not(VALID("\x80"));             /* lone continuation */
    cr_expect_not(VALID("\xc3"));             /* truncated */
    cr_expect_not(VALID("\xc3\x28"));         /* bad continuation */
    cr_expect_not(VALID("\xc0\xaf"));         /* overlong '/' */
    cr_expect_not(VALID("\xc1\xbf"));         /* overlong */
    cr_expect_not(VALID("\xe0\x80\xaf"));     /* overlong 3-byte */
    cr_expect_not(VALID("\xf0\x80\x80\xaf")); /* overlong 4-byte */
    cr_expect_not(VALID("\xed\xa0\x80"));     /* U+D800 surrogate */
    cr_expect_not(VALID("\xed\xbf\xbf"));     /* U+DFFF surrogate */
    cr_expect_not(VALID("\xf4\x90\x80\x80")); /* above U+10FFFF */
    cr_expect_not(VALID("\xf5\x80\x80\x80"));
    cr_expect_not(VALID("\xff"));
    cr_expect_not(VALID("\xe6\x97"));         /* truncated 3-byte */
    cr_expect_not(VALID("ok\xf0\x9f\x99"));   /* truncated at the end */
}

Test(utf8, valid_respects_length)
{
    /* The bad byte lies beyond len. */
    cr_expect(utf8_valid("ab\xff", 2));
    /* A sequence cut by len is invalid even if the bytes continue. */
    cr_expect_not(utf8_valid("\xc3\xa9", 1));
}

Test(utf8, count_code_points)
{
    cr_expect_eq(utf8_count("", 0), 0);
    cr_expect_eq(utf8_count("abc", 3), 3);
    const char *s = "h\xc3\xa9\xe6\x97\xa5\xf0\x9f\x99\x82!";
    cr_expect_eq(utf8_count(s, strlen(s)), 5);
}

Test(utf8, next_decodes)
{
    uint32_t cp = 0;
    cr_expect_eq(utf8_next("A", 1, &cp), 1);
    cr_expect_eq(cp, 'A');
    cr_expect_eq(utf8_next("\xc3\xa9", 2, &cp), 2);
    cr_expect_eq(cp, 0xe9);
    cr_expect_eq(utf8_next("\xe2\x80\xa8", 3, &cp), 3);
    cr_expect_eq(cp, 0x2028);
    cr_expect_eq(utf8_next("\xf0\x9f\x99\x82", 4, &cp), 4);
    cr_expect_eq(cp, 0x1f642);
    cr_expect_eq(utf8_next("\xc3", 1, &cp), 0);
    cr_expect_eq(utf8_next("", 0, &cp), 0);
}

Test(utf8, is_space)
{
    const uint32_t spaces[] = {' ', '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1f, 0x85, 0xa0,
                               0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000};
    for (size_t i = 0; i < sizeof(spaces) / sizeof(spaces[0]); i++)
        cr_expect(utf8_is_space(spaces[i]), "U+%04X", spaces[i]);
    const uint32_t others[] = {'a', 0, 0x08, 0x7f, 0x84, 0x200b, 0xfeff, 0x3001, 0x1f642};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        cr_expect_not(utf8_is_space(others[i]), "U+%04X", others[i]);
}

static void check_trim(const char *s, const char *expected)
{
    size_t start = 99, end = 99;
    utf8_trim(s, strlen(s), &start, &end);
    cr_assert_leq(start, end);
    cr_expect_eq(end - start, strlen(expected), "trim(\"%s\")", s);
    cr_expect_eq(memcmp(s + start, expected, end - start), 0, "trim(\"%s\")", s);
}

Test(utf8, trim)
{
    check_trim("", "");
    check_trim("abc", "abc");
    check_trim("  abc  ", "abc");
    check_trim("\t\r\n abc \n", "abc");
    check_trim("a b", "a b");
    check_trim("   ", "");
    check_trim("\xc2\xa0" "caf\xc3\xa9" "\xe3\x80\x80", "caf\xc3\xa9"); /* NBSP, ideographic */
    check_trim("\xe2\x80\xa8x\xe2\x80\x89", "x");                        /* U+2028, U+2009 */
    check_trim("\xc3\xa9", "\xc3\xa9"); /* é ends in a continuation byte, not a space */
    check_trim(" \xe2\x80\x8b ", "\xe2\x80\x8b"); /* zero-width space is not White_Space */
}

Test(utf8, trim_stops_at_malformed_bytes)
{
    check_trim(" \xff ", "\xff");
    check_trim("\x80 ", "\x80");
}
