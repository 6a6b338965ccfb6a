/*
 * util/hex: the value of one hexadecimal digit, for the percent-decoders
 * (urlenc, dburl) and the UUID parser. Header-only; pure; any thread.
 */
#ifndef TODO_UTIL_HEX_H
#define TODO_UTIL_HEX_H

/* 0..15 for '0'-'9', 'a'-'f' and 'A'-'F'; -1 for anything else (including
 * '\0' and bytes >= 0x80, whether `char` is signed or not). */
static inline int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
