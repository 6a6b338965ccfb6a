#include "util/utf8.h"

#include <stdint.h>

/* Length of the well-formed sequence at s[0..len), or 0 when it is not one
 * (RFC 3629 table: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t seq_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return len >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (len < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && s[1] < 0xa0) /* overlong */
            return 0;
        if (c == 0xed && s[1] > 0x9f) /* surrogate */
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (len < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
            (s[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && s[1] < 0x90) /* overlong */
            return 0;
        if (c == 0xf4 && s[1] > 0x8f) /* above U+10FFFF */
            return 0;
        return 4;
    }
    return 0;
}

bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = seq_len(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

size_t utf8_count(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* Decode the code point at p[0..n) (valid UTF-8 of length n). */
static uint32_t decode(const unsigned char *p, size_t n)
{
    switch (n) {
    case 1:
        return p[0];
    case 2:
        return (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
    case 3:
        return (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
    default:
        return (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 |
               (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
    }
}

size_t utf8_next(const char *s, size_t len, uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = len ? seq_len(p, len) : 0;
    if (n)
        *cp = decode(p, n);
    return n;
}

bool utf8_is_space(uint32_t cp)
{
    if (cp <= 0x20)
        return cp == ' ' || (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x1f);
    if (cp < 0x85)
        return false;
    return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* Length of the character ending at p[end), scanning back over continuation
 * bytes (at most 3). */
static size_t last_char_len(const unsigned char *p, size_t start, size_t end)
{
    size_t i = end - 1;
    while (i > start && end - i < 4 && (p[i] & 0xc0) == 0x80)
        i--;
    return end - i;
}

void utf8_trim(const char *s, size_t len, size_t *start, size_t *end)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t a = 0, z = len;
    while (a < z) {
        size_t n = seq_len(p + a, z - a);
        if (n == 0 || !utf8_is_space(decode(p + a, n)))
            break;
        a += n;
    }
    while (z > a) {
        size_t n = last_char_len(p, a, z);
        if (seq_len(p + z - n, n) != n || !utf8_is_space(decode(p + z - n, n)))
            break;
        z -= n;
    }
    *start = a;
    *end = z;
}
