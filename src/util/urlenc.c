#include "util/urlenc.h"

#include <string.h>

#include "util/hex.h"

long urlenc_decode(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '+') {
            out[o++] = ' ';
        } else if (c == '%') {
            if (len - i < 3)
                return -1;
            int h = hex_digit(s[i + 1]), l = hex_digit(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            out[o++] = (char)(h << 4 | l);
            i += 2;
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return (long)o;
}

bool urlenc_next_pair(const char *s, size_t len, size_t *pos, const char **name,
                      size_t *name_len, const char **value, size_t *value_len)
{
    size_t i = *pos;
    while (i < len && s[i] == '&') /* empty pairs ("a=1&&b=2", a trailing '&') */
        i++;
    if (i >= len) {
        *pos = len;
        return false;
    }
    const char *amp = memchr(s + i, '&', len - i);
    size_t end = amp ? (size_t)(amp - s) : len;
    const char *eq = memchr(s + i, '=', end - i);
    *name = s + i;
    if (eq) {
        *name_len = (size_t)(eq - (s + i));
        *value = eq + 1;
        *value_len = end - (size_t)(eq + 1 - s);
    } else {
        *name_len = end - i;
        *value = s + end;
        *value_len = 0;
    }
    *pos = end;
    return true;
}
