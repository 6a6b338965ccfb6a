#include "migrate/schema_check.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/xalloc.h"

void schema_desc_add(struct schema_desc *d, const char *key, const char *value)
{
    if (d->n == d->_cap) {
        d->_cap = d->_cap ? 2 * d->_cap : 32;
        d->items = xrealloc(d->items, d->_cap * sizeof(*d->items));
    }
    d->items[d->n++] = (struct schema_item){xstrdup(key), xstrdup(value != NULL ? value : "")};
}

static int by_key(const void *a, const void *b)
{
    const struct schema_item *x = a, *y = b;
    int c = strcmp(x->key, y->key);

    return c != 0 ? c : strcmp(x->value, y->value);
}

void schema_desc_finish(struct schema_desc *d)
{
    bool renamed = false;

    if (d->n == 0)
        return;
    qsort(d->items, d->n, sizeof(*d->items), by_key);
    /* Items equal to the first of their run get a number; the first keeps
     * its key, so later comparisons still see it. */
    for (size_t i = 1, first = 0; i < d->n; i++) {
        if (strcmp(d->items[i].key, d->items[first].key) != 0) {
            first = i;
            continue;
        }
        size_t len = strlen(d->items[i].key) + 24;
        char *key = xmalloc(len);
        snprintf(key, len, "%s (%zu)", d->items[i].key, i - first + 1);
        free(d->items[i].key);
        d->items[i].key = key;
        renamed = true;
    }
    if (renamed)
        qsort(d->items, d->n, sizeof(*d->items), by_key);
}

void schema_desc_free(struct schema_desc *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i].key);
        free(d->items[i].value);
    }
    free(d->items);
    memset(d, 0, sizeof(*d));
}

static void add_diff(struct schema_diff **out, size_t *n, struct schema_diff d)
{
    *out = xrealloc(*out, (*n + 1) * sizeof(**out));
    (*out)[(*n)++] = d;
}

size_t schema_diff(const struct schema_desc *live, const struct schema_desc *expected,
                   struct schema_diff **out)
{
    size_t i = 0, j = 0, n = 0;

    *out = NULL;
    while (i < live->n || j < expected->n) {
        const struct schema_item *a = i < live->n ? &live->items[i] : NULL;
        const struct schema_item *b = j < expected->n ? &expected->items[j] : NULL;
        int c = a == NULL ? 1 : b == NULL ? -1 : strcmp(a->key, b->key);
        if (c < 0) {
            add_diff(out, &n, (struct schema_diff){SCHEMA_DIFF_EXTRA, a->key, a->value, NULL});
            i++;
        } else if (c > 0) {
            add_diff(out, &n, (struct schema_diff){SCHEMA_DIFF_MISSING, b->key, NULL, b->value});
            j++;
        } else {
            if (strcmp(a->value, b->value) != 0)
                add_diff(out, &n,
                         (struct schema_diff){SCHEMA_DIFF_CHANGED, a->key, a->value, b->value});
            i++;
            j++;
        }
    }
    return n;
}

/* ---- SQL text ------------------------------------------------------------ */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Length of the quoted token at p ('...', "...", `...`, [...]), or 0. */
static size_t quoted_len(const char *p, const char *end)
{
    char close = *p == '[' ? ']' : *p;
    const char *q = p + 1;

    if (*p != '\'' && *p != '"' && *p != '`' && *p != '[')
        return 0;
    while (q < end) {
        if (*q == close) {
            if (close != ']' && q + 1 < end && q[1] == close) {
                q += 2;
                continue;
            }
            return (size_t)(q + 1 - p);
        }
        q++;
    }
    return (size_t)(end - p);
}

/* Length of the comment at p, or 0. */
static size_t comment_len(const char *p, const char *end)
{
    const char *q;

    if (p + 1 < end && p[0] == '-' && p[1] == '-') {
        q = memchr(p, '\n', (size_t)(end - p));
        return (size_t)((q != NULL ? q : end) - p);
    }
    if (p + 1 < end && p[0] == '/' && p[1] == '*') {
        for (q = p + 2; q + 1 < end; q++) {
            if (q[0] == '*' && q[1] == '/')
                return (size_t)(q + 2 - p);
        }
        return (size_t)(end - p);
    }
    return 0;
}

/* Length of the quoted token or comment at p (skipped whole when scanning),
 * or 0. */
static size_t opaque_len(const char *p, const char *end)
{
    size_t k = quoted_len(p, end);

    return k > 0 ? k : comment_len(p, end);
}

char *schema_sql_normalize(const char *sql, size_t len)
{
    const char *p = sql, *end = sql + len;
    char *out = xmalloc(len + 1);
    size_t n = 0;
    bool space = false;

    while (p < end) {
        size_t k;
        if (is_blank(*p)) {
            space = true;
            p++;
        } else if ((k = comment_len(p, end)) > 0) {
            space = true;
            p += k;
        } else {
            char prev = n > 0 ? out[n - 1] : '(';
            if (space && prev != '(' && *p != ')' && *p != ',')
                out[n++] = ' ';
            space = false;
            k = quoted_len(p, end);
            if (k == 0)
                k = 1;
            memcpy(out + n, p, k);
            n += k;
            p += k;
        }
    }
    out[n] = '\0';
    return out;
}

static bool is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || (unsigned char)c >= 0x80;
}

/* p at '(': the end of the balanced group (one past its ')'). */
static const char *group_end(const char *p, const char *end)
{
    int depth = 0;

    while (p < end) {
        size_t k = opaque_len(p, end);
        if (k > 0) {
            p += k;
            continue;
        }
        if (*p == '(')
            depth++;
        else if (*p == ')' && --depth == 0)
            return p + 1;
        p++;
    }
    return end;
}

void schema_sql_checks(const char *sql, void (*fn)(void *ctx, const char *expr), void *ctx)
{
    const char *p = sql, *end = sql + strlen(sql);

    while (p < end) {
        size_t k = opaque_len(p, end);
        if (k > 0) {
            p += k;
            continue;
        }
        bool at_word = (p == sql || !is_word(p[-1])) && p + 5 <= end &&
                       strncasecmp(p, "check", 5) == 0 && (p + 5 == end || !is_word(p[5]));
        if (!at_word) {
            p++;
            continue;
        }
        const char *q = p + 5;
        while (q < end && is_blank(*q))
            q++;
        if (q >= end || *q != '(') {
            p += 5;
            continue;
        }
        const char *stop = group_end(q, end);
        /* Inside the outer parentheses (an unbalanced group runs to the end). */
        size_t inner = (size_t)(stop - q - 1);
        if (stop > q + 1 && stop[-1] == ')')
            inner--;
        char *expr = schema_sql_normalize(q + 1, inner);
        fn(ctx, expr);
        free(expr);
        p = stop;
    }
}
