/*
 * Fuzz target: DATABASE_URL through dburl_parse() and dburl_redact().
 * A parsed URL must be consistent with its kind; an error must start with
 * "DATABASE_URL"; and no password that libpq would take from a PostgreSQL
 * URL (the userinfo one, or a `password` parameter, whose name libpq
 * percent-decodes) may appear in the redacted text or the error. An error
 * is compared with the error for the same URL with its passwords masked:
 * its fixed text may happen to contain a short password ("user", "URL"),
 * but it may not hold one more often than the masked URL's error does.
 */
#include <stdbool.h>
#include <strings.h>

#include "fuzz.h"
#include "util/dburl.h"

static size_t count_occurrences(const char *hay, const char *needle)
{
    size_t count = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        count++;
    return count;
}

/* Report a password (url[start..start+len)) to check: only one long enough,
 * unique in the URL and free of '*' (so the redaction cannot spell it). */
static void check_secret(const char *url, const char *start, size_t len, const char *text,
                         const char *ref)
{
    if (len < 3 || !text)
        return;
    char *pw = fuzz_cstr((const uint8_t *)start, len);
    if (strlen(pw) == len && !strchr(pw, '*') && count_occurrences(url, pw) == 1 &&
        strstr(text, pw) && (!ref || count_occurrences(text, pw) > count_occurrences(ref, pw))) {
        fprintf(stderr, "password \"%s\" of \"%s\" leaks into \"%s\"\n", pw, url, text);
        abort();
    }
    free(pw);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* libpq's reading of a parameter name: raw spaces around it dropped (libpq
 * 17 does), percent-decoded, '+' stays '+'; %00 makes libpq reject the URL. */
static bool name_is_password(const char *s, size_t len)
{
    char name[16];
    size_t n = 0;
    while (len > 0 && s[len - 1] == ' ')
        len--;
    for (; len > 0 && *s == ' '; len--)
        s++;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        }
        if (c == '\0')
            return false;
        if (n == sizeof(name) - 1)
            return false;
        name[n++] = c;
    }
    name[n] = '\0';
    return strcmp(name, "password") == 0;
}

typedef void password_fn(const char *url, const char *start, size_t len, void *ctx);

/* The passwords libpq would find in a postgres URL (its URI rules: the
 * userinfo ends at the first '@' before any '/', the query at the first '?'
 * after it, parameters split at '&'), each given to fn. */
static void for_each_password(const char *url, password_fn *fn, void *ctx)
{
    static const char *const schemes[] = {"postgresql://", "postgres://",
                                          "postgresql+asyncpg://"};
    const char *start = NULL;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strncasecmp(url, schemes[i], strlen(schemes[i])) == 0)
            start = url + strlen(schemes[i]);
    if (!start)
        return;
    const char *p = start + strcspn(start, "@/");
    if (*p == '@') {
        const char *colon = memchr(start, ':', (size_t)(p - start));
        if (colon)
            fn(url, colon + 1, (size_t)(p - colon - 1), ctx);
        start = p + 1;
    }
    const char *q = strchr(start, '?');
    while (q && *q) {
        q++;
        size_t len = strcspn(q, "&"), key = strcspn(q, "=");
        if (key < len && name_is_password(q, key))
            fn(url, q + key + 1, len - key - 1, ctx);
        q += len;
    }
}

struct check {
    const char *text, *ref;
};

static void check_one(const char *url, const char *start, size_t len, void *ctx)
{
    const struct check *c = ctx;
    check_secret(url, start, len, c->text, c->ref);
}

/* No password of `url` in `text`; with a reference text (the masked URL's
 * error), no more often than in it. */
static void check_no_password(const char *url, const char *text, const char *ref)
{
    struct check c = {text, ref};
    for_each_password(url, check_one, &c);
}

static void mask_one(const char *url, const char *start, size_t len, void *ctx)
{
    char *copy = ctx;
    memset(copy + (start - url), 0x7f, len);
}

/* `url` with every password overwritten by DEL bytes (caller frees). */
static char *masked(const char *url)
{
    char *copy = strdup(url);
    FUZZ_CHECK(copy);
    for_each_password(url, mask_one, copy);
    return copy;
}

static void check_parsed(const char *url, const struct dburl *u)
{
    FUZZ_CHECK(u->redacted);
    char *red = dburl_redact(url);
    FUZZ_CHECK(strcmp(red, u->redacted) == 0);
    free(red);
    if (u->kind == DBURL_SQLITE) {
        FUZZ_CHECK(u->path && u->path[0] != '\0' && !u->conninfo);
    } else {
        FUZZ_CHECK(u->kind == DBURL_POSTGRES && !u->path && u->conninfo);
        FUZZ_CHECK(strncmp(u->conninfo, "postgresql://", 13) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = fuzz_cstr(data, size);
    struct dburl u;
    char err[512];

    err[0] = '\0';
    if (dburl_parse(url, &u, err, sizeof(err)) == 0) {
        check_parsed(url, &u);
    } else {
        FUZZ_CHECK(strncmp(err, "DATABASE_URL", 12) == 0);
        FUZZ_CHECK(!u.path && !u.conninfo && !u.redacted);
        char *m = masked(url), err2[512];
        struct dburl u2;
        bool ref = dburl_parse(m, &u2, err2, sizeof(err2)) != 0;
        if (!ref)
            dburl_free(&u2);
        check_no_password(url, err, ref ? err2 : NULL);
        free(m);
    }
    dburl_free(&u);
    dburl_free(&u); /* a freed struct is accepted */

    char *red = dburl_redact(url);
    FUZZ_CHECK(red);
    check_no_password(url, red, NULL);
    free(red);
    free(url);
    return 0;
}
