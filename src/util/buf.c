#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

#define BUF_MIN_ALLOC 256

void buf_init(struct buf *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->_alloc = 0;
    b->cap = cap;
    b->overflow = false;
}

void buf_free(struct buf *b)
{
    if (!b)
        return;
    free(b->data);
    buf_init(b, b->cap);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    b->overflow = false;
    if (b->data)
        b->data[0] = '\0';
}

char *buf_take(struct buf *b, size_t *len)
{
    char *p = b->data;
    if (!p)
        p = xstrdup("");
    if (len)
        *len = b->len;
    buf_init(b, b->cap);
    return p;
}

/* Make room for `n` more bytes plus the NUL; false (overflow set) past cap. */
static bool reserve(struct buf *b, size_t n)
{
    if (b->overflow || n > b->cap - b->len) {
        b->overflow = true;
        return false;
    }
    size_t need = b->len + n + 1;
    if (need > b->_alloc) {
        size_t alloc = b->_alloc ? b->_alloc : BUF_MIN_ALLOC;
        while (alloc < need)
            alloc *= 2;
        b->data = xrealloc(b->data, alloc);
        b->_alloc = alloc;
    }
    return true;
}

void buf_append(struct buf *b, const void *data, size_t len)
{
    if (!reserve(b, len))
        return;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void buf_append_str(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_append_char(struct buf *b, char c)
{
    buf_append(b, &c, 1);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        buf_append(b, small, (size_t)n);
        return;
    }
    if (!reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static const char hex_digits[] = "0123456789abcdef";

void buf_append_json_strn(struct buf *b, const char *s, size_t len)
{
    if (!s) {
        buf_append(b, "null", 4);
        return;
    }
    buf_append_char(b, '"');
    size_t run = 0; /* start of the pending run of bytes needing no escape */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_append(b, s + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            buf_append(b, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex_digits[c >> 4], hex_digits[c & 0xf]};
            buf_append(b, esc, 6);
        }
    }
    buf_append(b, s + run, len - run);
    buf_append_char(b, '"');
}

void buf_append_json_str(struct buf *b, const char *s)
{
    buf_append_json_strn(b, s, s ? strlen(s) : 0);
}

void buf_append_int(struct buf *b, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    /* Work in unsigned so INT64_MIN negates without overflow. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}
