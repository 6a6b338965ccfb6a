#include "util/dburl.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/xalloc.h"

#define ACCEPTED_FORMS                                                                             \
    "sqlite:///relative.db, sqlite:////absolute/path.db, sqlite+aiosqlite:///..., "                \
    "postgresql://..., postgres://..., postgresql+asyncpg://..."

struct scheme {
    const char *name;
    enum dburl_kind kind;
};

/* Scheme names compare case-insensitively (RFC 3986 §3.1). */
static const struct scheme schemes[] = {
    {"sqlite", DBURL_SQLITE},
    {"sqlite+aiosqlite", DBURL_SQLITE},
    {"postgresql", DBURL_POSTGRES},
    {"postgres", DBURL_POSTGRES},
    {"postgresql+asyncpg", DBURL_POSTGRES},
};

/* Where "://" follows a syntactically valid scheme at the start of `url`
 * (ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )), else NULL. */
static const char *scheme_end(const char *url)
{
    size_t n = strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
    if (n == 0 || !((url[0] | 0x20) >= 'a' && (url[0] | 0x20) <= 'z'))
        return NULL;
    return strncmp(url + n, "://", 3) == 0 ? url + n : NULL;
}

/* ---- redaction ---- */

/* Append s[0..n) to out at *len (out has room: callers size it). */
static void put(char *out, size_t *len, const char *s, size_t n)
{
    memcpy(out + *len, s, n);
    *len += n;
}

/* Length of the value of a `password=` parameter starting at p. */
static size_t param_value_len(const char *p)
{
    return strcspn(p, "& \t\n");
}

/* True when `p` (inside `url`) starts a `password=` key: at the start of the
 * string or after one of the separators '?', '&' or whitespace. */
static bool at_password_key(const char *url, const char *p)
{
    if (strncasecmp(p, "password=", 9) != 0)
        return false;
    return p == url || strchr("?& \t\n", p[-1]) != NULL;
}

char *dburl_redact(const char *url)
{
    if (!url)
        return NULL;
    /* Growth: +3 for an empty userinfo password, at most +2 per 10-byte
     * "password=v" parameter. */
    size_t n = strlen(url);
    char *out = xmalloc(2 * n + 8);
    size_t len = 0;

    const char *sep = scheme_end(url);
    const char *auth = sep ? sep + 3 : url;
    /* Userinfo ends at the last '@' before the query. Looking past the first
     * '/' over-redacts rather than leaking a password that holds a '/'. */
    size_t before_query = strcspn(auth, "?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + before_query; p++)
        if (*p == '@')
            at = p;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;

    const char *p = url;
    if (colon) {
        put(out, &len, url, (size_t)(colon + 1 - url));
        put(out, &len, "***", 3);
        p = at;
    }
    while (*p) {
        if (at_password_key(url, p)) {
            put(out, &len, p, 9);
            p += 9;
            size_t v = param_value_len(p);
            if (v > 0)
                put(out, &len, "***", 3);
            p += v;
            continue;
        }
        out[len++] = *p++;
    }
    out[len] = '\0';
    return out;
}

/* ---- parsing ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode a URL path ('+' stays '+'). NULL on a bad escape or %00. */
static char *path_decode(const char *s)
{
    size_t n = strlen(s);
    char *out = xmalloc(n + 1);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[len++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
        int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
        if (lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        out[len++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[len] = '\0';
    return out;
}

static const struct scheme *find_scheme(const char *url, size_t len)
{
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strlen(schemes[i].name) == len && strncasecmp(url, schemes[i].name, len) == 0)
            return &schemes[i];
    return NULL;
}

/* `rest` is what follows "sqlite://": an empty authority then "/path". */
static int parse_sqlite(const char *rest, const char *red, struct dburl *out, char *err,
                        size_t errlen)
{
    if (rest[0] != '/' && rest[0] != '\0') {
        snprintf(err, errlen,
                 "DATABASE_URL: \"%s\" names a host; a SQLite URL has an empty host: use three "
                 "slashes for a relative path (sqlite:///todo.db) or four for an absolute one "
                 "(sqlite:////var/lib/todo.db)",
                 red);
        return -1;
    }
    const char *path = rest[0] == '/' ? rest + 1 : rest;
    if (path[0] == '\0' || path[0] == '?' || path[0] == '#') {
        snprintf(err, errlen,
                 "DATABASE_URL: \"%s\" has no file path (expected sqlite:///todo.db or "
                 "sqlite:////absolute/path.db)",
                 red);
        return -1;
    }
    if (strpbrk(path, "?#")) {
        snprintf(err, errlen,
                 "DATABASE_URL: \"%s\": SQLite URLs take no ?query or #fragment "
                 "(percent-encode '?' as %%3F and '#' as %%23 in a file name)",
                 red);
        return -1;
    }
    out->path = path_decode(path);
    if (!out->path) {
        snprintf(err, errlen,
                 "DATABASE_URL: \"%s\" has a bad percent escape in its path "
                 "(expected %% followed by two hex digits, not %%00)",
                 red);
        return -1;
    }
    out->kind = DBURL_SQLITE;
    return 0;
}

/* libpq understands postgresql:// and postgres://; the driver suffix of
 * the old app's spelling is dropped. */
static int parse_postgres(const char *rest, struct dburl *out)
{
    static const char prefix[] = "postgresql://";
    size_t n = strlen(rest);
    out->conninfo = xmalloc(sizeof(prefix) + n);
    memcpy(out->conninfo, prefix, sizeof(prefix) - 1);
    memcpy(out->conninfo + sizeof(prefix) - 1, rest, n + 1);
    out->kind = DBURL_POSTGRES;
    return 0;
}

int dburl_parse(const char *url, struct dburl *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!url || url[0] == '\0') {
        snprintf(err, errlen, "DATABASE_URL is empty; accepted forms: " ACCEPTED_FORMS);
        return -1;
    }
    char *red = dburl_redact(url);
    int rc = -1;
    const char *sep = scheme_end(url);
    const struct scheme *sc = sep ? find_scheme(url, (size_t)(sep - url)) : NULL;
    if (!sep) {
        snprintf(err, errlen, "DATABASE_URL: \"%s\" is not a URL; accepted forms: " ACCEPTED_FORMS,
                 red);
        goto out;
    }
    if (!sc) {
        /* The scheme precedes "://" and so never holds the password. */
        snprintf(
            err, errlen,
            "DATABASE_URL: unsupported scheme \"%.*s\" in \"%s\"; accepted forms: " ACCEPTED_FORMS,
            (int)(sep - url), url, red);
        goto out;
    }
    if (sc->kind == DBURL_SQLITE)
        rc = parse_sqlite(sep + 3, red, out, err, errlen);
    else
        rc = parse_postgres(sep + 3, out);
out:
    if (rc == 0) {
        out->redacted = red;
    } else {
        free(red);
        dburl_free(out);
    }
    return rc;
}

void dburl_free(struct dburl *u)
{
    if (!u)
        return;
    free(u->path);
    free(u->conninfo);
    free(u->redacted);
    memset(u, 0, sizeof(*u));
}
