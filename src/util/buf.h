/*
 * util/buf: a growable byte buffer with a mandatory size cap, plus JSON
 * output helpers (the hot path writes JSON with these, not with jansson).
 *
 * Contents are always NUL-terminated (not counted in `len`); `data` is NULL
 * until the first append (buf_init allocates nothing). Appending past `cap`
 * sets `overflow` and drops that append and every later one until
 * buf_reset() (callers check once at the end). OOM aborts. buf_take()
 * hands the bytes to the caller (free()) and resets the buffer.
 * Single-threaded: one owner at a time.
 */
#ifndef TODO_UTIL_BUF_H
#define TODO_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    char *data;
    size_t len;
    size_t _alloc;
    size_t cap;    /* maximum len */
    bool overflow; /* an append was dropped because of cap */
};

void buf_init(struct buf *b, size_t cap);
void buf_free(struct buf *b); /* NULL accepted */
void buf_reset(struct buf *b); /* len = 0, keeps memory */
char *buf_take(struct buf *b, size_t *len); /* caller frees; never NULL; b is reset */

void buf_append(struct buf *b, const void *data, size_t len);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* JSON: a quoted, escaped string (control characters as \u00XX; `s` must be
 * valid UTF-8); NULL appends `null`. */
void buf_append_json_str(struct buf *b, const char *s);
void buf_append_json_strn(struct buf *b, const char *s, size_t len);
void buf_append_int(struct buf *b, int64_t v);

#endif
