#include "migrate/sqlsplit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "util/xalloc.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Letters, digits, '_', '$' and any byte of a multi-byte UTF-8 character:
 * what may continue an identifier (so "a$b$" is no dollar quote). */
static bool is_ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

static const char *skip_line_comment(const char *p, const char *end)
{
    while (p < end && *p != '\n')
        p++;
    return p;
}

/* p at "/" "*". PostgreSQL nests block comments, SQLite does not. */
static const char *skip_block_comment(const char *p, const char *end, bool nest)
{
    int depth = 1;

    p += 2;
    while (p < end) {
        if (p + 1 < end && p[0] == '*' && p[1] == '/') {
            p += 2;
            if (--depth == 0)
                return p;
        } else if (nest && p + 1 < end && p[0] == '/' && p[1] == '*') {
            p += 2;
            depth++;
        } else {
            p++;
        }
    }
    return end;
}

/* p at the opening quote q; a doubled q is an escaped one; with
 * `backslash`, a backslash escapes the next byte (E'...'). */
static const char *skip_quoted(const char *p, const char *end, char q, bool backslash)
{
    p++;
    while (p < end) {
        if (backslash && *p == '\\' && p + 1 < end) {
            p += 2;
        } else if (*p == q) {
            if (p + 1 < end && p[1] == q)
                p += 2;
            else
                return p + 1;
        } else {
            p++;
        }
    }
    return end;
}

/* p at '$' not preceded by an identifier character: a dollar-quoted string
 * ($$...$$ or $tag$...$tag$) is skipped whole; anything else ($1) is one
 * byte. */
static const char *skip_dollar(const char *p, const char *end)
{
    const char *t = p + 1;

    if (t < end && *t >= '0' && *t <= '9')
        return p + 1;
    while (t < end && *t != '$' && is_ident(*t))
        t++;
    if (t >= end || *t != '$')
        return p + 1;
    size_t taglen = (size_t)(t - p) + 1; /* "$tag$" */
    for (const char *s = t + 1; s + taglen <= end; s++) {
        if (*s == '$' && memcmp(s, p, taglen) == 0)
            return s + taglen;
    }
    return end;
}

/* Skip one lexical element that may contain a ';' (quote, comment), or one
 * byte. `prev` is the byte before p (or 0). */
static const char *skip_element(const char *p, const char *end, char prev, bool pg)
{
    char c = *p;

    if (c == '-' && p + 1 < end && p[1] == '-')
        return skip_line_comment(p, end);
    if (c == '/' && p + 1 < end && p[1] == '*')
        return skip_block_comment(p, end, pg);
    if (c == '\'') {
        bool e = pg && (prev == 'E' || prev == 'e');
        return skip_quoted(p, end, '\'', e);
    }
    if (c == '"')
        return skip_quoted(p, end, '"', false);
    if (!pg && c == '`')
        return skip_quoted(p, end, '`', false);
    if (!pg && c == '[') {
        const char *q = memchr(p, ']', (size_t)(end - p));
        return q != NULL ? q + 1 : end;
    }
    if (pg && c == '$' && !is_ident(prev))
        return skip_dollar(p, end);
    return p + 1;
}

/* SQLite: is text[0..len) plus its ';' a whole statement (not a ';' inside
 * a trigger body)? */
static bool sqlite_complete(const char *text, size_t len)
{
    char *copy = xmalloc(len + 2);
    bool done;

    memcpy(copy, text, len);
    copy[len] = ';';
    copy[len + 1] = '\0';
    done = sqlite3_complete(copy) != 0;
    free(copy);
    return done;
}

struct splitter {
    struct sql_stmt *items;
    size_t n, cap;
    const char *counted; /* newlines counted up to here */
    int line;
};

static void emit(struct splitter *sp, const char *start, const char *stop)
{
    while (stop > start && is_space(stop[-1]))
        stop--;
    if (stop == start)
        return;
    for (; sp->counted < start; sp->counted++) {
        if (*sp->counted == '\n')
            sp->line++;
    }
    if (sp->n == sp->cap) {
        sp->cap = sp->cap ? 2 * sp->cap : 8;
        sp->items = xrealloc(sp->items, sp->cap * sizeof(*sp->items));
    }
    sp->items[sp->n++] = (struct sql_stmt){start, (size_t)(stop - start), sp->line};
}

size_t sqlsplit(const char *dialect, const char *sql, struct sql_stmt **out)
{
    bool pg = strcmp(dialect, "sqlite") != 0;
    const char *p = sql, *end = sql + strlen(sql), *start = NULL;
    struct splitter sp = {.counted = sql, .line = 1};

    while (p < end) {
        char c = *p;
        bool comment = (c == '-' && p + 1 < end && p[1] == '-') ||
                       (c == '/' && p + 1 < end && p[1] == '*');
        if (is_space(c)) {
            p++;
        } else if (comment) {
            p = skip_element(p, end, p > sql ? p[-1] : 0, pg);
        } else if (c == ';') {
            if (start != NULL && (pg || sqlite_complete(start, (size_t)(p - start)))) {
                emit(&sp, start, p);
                start = NULL;
            }
            p++;
        } else {
            if (start == NULL)
                start = p;
            p = skip_element(p, end, p > sql ? p[-1] : 0, pg);
        }
    }
    if (start != NULL)
        emit(&sp, start, end);
    *out = sp.items;
    return sp.n;
}

const char *sqlsplit_excerpt(const struct sql_stmt *s, size_t max, char *buf, size_t buflen)
{
    size_t n = 0;
    bool space = false, cut = false;

    if (buflen == 0)
        return buf;
    for (size_t i = 0; i < s->len; i++) {
        char c = s->text[i];
        if (is_space(c)) {
            space = true;
            continue;
        }
        if (n + (space ? 2 : 1) > max || n + (space ? 2 : 1) + 4 > buflen) {
            cut = true;
            break;
        }
        if (space && n > 0)
            buf[n++] = ' ';
        space = false;
        buf[n++] = c;
    }
    /* Never end inside a multi-byte character. */
    while (cut && n > 0 && ((unsigned char)buf[n - 1] & 0xc0) == 0x80)
        n--;
    if (cut && n > 0 && (unsigned char)buf[n - 1] >= 0xc0)
        n--;
    if (cut && n + 4 <= buflen) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}
