#include "util/dburl.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"
#include "util/hex.h"
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

/* Per-byte marks of dburl_redact: HIDE drops the byte, STAR_BEFORE puts
 * "***" before it (an empty password, so its place still shows). */
enum { HIDE = 1, STAR_BEFORE = 2 };

static void hide_range(unsigned char *mark, size_t from, size_t to)
{
    if (from == to)
        mark[from] |= STAR_BEFORE;
    for (size_t i = from; i < to; i++)
        mark[i] |= HIDE;
}

static bool is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* The userinfo password (see the header): `auth` is where the authority
 * starts, at offset `base` of the URL. */
static void mark_userinfo(const char *auth, size_t base, unsigned char *mark)
{
    size_t slash = strcspn(auth, "/");
    const char *at = NULL;
    for (const char *p = auth; p < auth + slash; p++)
        if (*p == '@')
            at = p;
    if (!at)
        at = strrchr(auth + slash, '@'); /* libpq reads no userinfo: over-redact */
    if (!at)
        return;
    /* libpq's user name ends at the first ':' or '@'; '/' ends the authority. */
    const char *user_end = auth + strcspn(auth, ":@/");
    if (*user_end == ':' || (*user_end == '@' && user_end < at))
        hide_range(mark, base + (size_t)(user_end + 1 - auth), base + (size_t)(at - auth));
}

/* True when s[0..len), percent-decoded once as libpq does (a bad escape
 * stays as it is; %00 ends it, as it would a C string) and without trailing
 * white space, ends in "password" in any case. */
static bool name_is_password(const char *s, size_t len)
{
    static const char word[] = "password";
    const size_t wlen = sizeof(word) - 1;
    char *name = xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < len && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
            c = (char)(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
            i += 2;
        }
        if (c == '\0')
            break;
        name[n++] = c;
    }
    while (n > 0 && is_space(name[n - 1]))
        n--;
    bool match = n >= wlen;
    for (size_t i = 0; match && i < wlen; i++)
        match = (name[n - wlen + i] | 0x20) == word[i];
    free(name);
    return match;
}

/* The value of every parameter whose name (the text since the previous
 * '?', '&' or '=', or the start) is a password: to the next '&' in a URL
 * (libpq's separator), to the end of the string otherwise. */
static void mark_params(const char *url, bool is_url, unsigned char *mark)
{
    size_t n = strlen(url);
    size_t name = 0;
    for (size_t i = 0; i < n; i++) {
        if (url[i] == '=' && name_is_password(url + name, i - name)) {
            size_t end = is_url ? i + 1 + strcspn(url + i + 1, "&") : n;
            hide_range(mark, i + 1, end);
            i = end - 1; /* a name inside the value would hide no more */
            continue;
        }
        if (url[i] == '?' || url[i] == '&' || url[i] == '=')
            name = i + 1;
    }
}

/* `url` without the HIDE bytes, each run of them and each STAR_BEFORE
 * mark shown once as "***". */
static char *apply_marks(const char *url, size_t n, const unsigned char *mark)
{
    char *out = xmalloc(4 * n + 4); /* at most one "***" per byte, plus one at the end */
    size_t len = 0;
    bool hidden = false;
    for (size_t i = 0; i <= n; i++) {
        if (mark[i] && !hidden) {
            memcpy(out + len, "***", 3);
            len += 3;
        }
        hidden = mark[i] & HIDE;
        if (!hidden && i < n)
            out[len++] = url[i];
    }
    out[len] = '\0';
    return out;
}

char *dburl_redact(const char *url)
{
    if (!url)
        return NULL;
    size_t n = strlen(url);
    unsigned char *mark = xcalloc(n + 1, 1);
    const char *sep = scheme_end(url);
    const char *auth = sep ? sep + 3 : url;
    mark_userinfo(auth, (size_t)(auth - url), mark);
    mark_params(url, sep != NULL, mark);
    char *out = apply_marks(url, n, mark);
    free(mark);
    return out;
}

/* ---- parsing ---- */

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
        int hi = i + 2 < n ? hex_digit(s[i + 1]) : -1;
        int lo = hi >= 0 ? hex_digit(s[i + 2]) : -1;
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

/* ---- PostgreSQL query parameters ---- */

#define PG_ACCEPTED_PARAMS                                                                         \
    "sslmode, sslrootcert, sslcert, sslkey, channel_binding, connect_timeout, "                    \
    "application_name, options, target_session_attrs, host, hostaddr, port, dbname, user, "        \
    "password, and ssl (the old app's spelling of sslmode)"

/* The libpq parameters a URL may carry (besides `ssl`), and the values
 * checked here because libpq checks them only when it connects. */
static const struct pg_param {
    const char *name;
    const char *const *values; /* NULL: any value */
} pg_params[] = {
    {"sslmode", (const char *const[]){"disable", "allow", "prefer", "require", "verify-ca",
                                      "verify-full", NULL}},
    {"sslrootcert", NULL},
    {"sslcert", NULL},
    {"sslkey", NULL},
    {"channel_binding", (const char *const[]){"disable", "prefer", "require", NULL}},
    {"connect_timeout", NULL},
    {"application_name", NULL},
    {"options", NULL},
    {"target_session_attrs", (const char *const[]){"any", "read-write", "read-only", "primary",
                                                   "standby", "prefer-standby", NULL}},
    {"host", NULL},
    {"hostaddr", NULL},
    {"port", NULL},
    {"dbname", NULL},
    {"user", NULL},
    {"password", NULL},
};

/* Percent-decode s[0..len) as libpq does ('+' stays '+'). NULL on a bad
 * escape or %00. */
static char *query_decode(const char *s, size_t len)
{
    char *tmp = xstrndup(s, len);
    char *out = path_decode(tmp);
    free(tmp);
    return out;
}

static const struct pg_param *find_pg_param(const char *name)
{
    for (size_t i = 0; i < sizeof(pg_params) / sizeof(pg_params[0]); i++)
        if (strcmp(pg_params[i].name, name) == 0)
            return &pg_params[i];
    return NULL;
}

static bool value_allowed(const struct pg_param *p, const char *v)
{
    if (strcmp(p->name, "connect_timeout") == 0)
        return v[0] != '\0' && strspn(v, "0123456789") == strlen(v);
    if (p->values == NULL)
        return true;
    for (const char *const *a = p->values; *a != NULL; a++)
        if (strcmp(*a, v) == 0)
            return true;
    return false;
}

static const char *expected_values(const struct pg_param *p, bool is_ssl)
{
    if (is_ssl)
        return "disable, allow, prefer, require, verify-ca, verify-full, true or false";
    if (strcmp(p->name, "sslmode") == 0)
        return "disable, allow, prefer, require, verify-ca or verify-full";
    if (strcmp(p->name, "channel_binding") == 0)
        return "disable, prefer or require";
    if (strcmp(p->name, "target_session_attrs") == 0)
        return "any, read-write, read-only, primary, standby or prefer-standby";
    return "a number of seconds"; /* connect_timeout */
}

/* The sslmode meant by the old app's ssl=VALUE, or NULL. */
static const char *ssl_to_sslmode(const char *v)
{
    static const char *const same[] = {"disable", "allow", "prefer", "require", "verify-ca",
                                       "verify-full"};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        if (strcmp(v, same[i]) == 0)
            return same[i];
    if (strcmp(v, "true") == 0)
        return "require";
    if (strcmp(v, "false") == 0)
        return "disable";
    return NULL;
}

/* A name quoted in a message: the raw text, shortened. (It is never a
 * password libpq would read: those sit in the userinfo or in a value.) */
static void append_name(char *buf, size_t len, const char *name, size_t nlen)
{
    size_t used = strlen(buf);
    if (used < len)
        snprintf(buf + used, len - used, "%s\"%.*s%s\"", used ? ", " : "",
                 (int)(nlen > 40 ? 40 : nlen), name, nlen > 40 ? "..." : "");
}

struct pg_query_state {
    char *sslmode;     /* effective sslmode (decoded), or NULL */
    bool from_ssl;     /* it came from ssl= */
    char unknown[256]; /* quoted unknown names */
};

/* One name=value of the query (raw); appended to `q` (the rebuilt query)
 * when accepted. 0, or -1 with `err` set (unknown names are collected in
 * st->unknown instead). */
static int pg_query_param(const char *p, size_t len, struct pg_query_state *st, struct buf *q,
                          const char *red, char *err, size_t errlen)
{
    const char *eq = memchr(p, '=', len);
    if (!eq) {
        snprintf(err, errlen, "DATABASE_URL: query parameter \"%.*s\" has no value (expected "
                 "name=value) in \"%s\"", (int)(len > 40 ? 40 : len), p, red);
        return -1;
    }
    char *name = query_decode(p, (size_t)(eq - p));
    char *value = NULL;
    int rc = -1;
    if (!name) {
        snprintf(err, errlen, "DATABASE_URL: bad percent escape in the query of \"%s\"", red);
        goto out;
    }
    bool is_ssl = strcmp(name, "ssl") == 0;
    const struct pg_param *pp = is_ssl ? &pg_params[0] : find_pg_param(name);
    if (!pp) {
        append_name(st->unknown, sizeof(st->unknown), p, (size_t)(eq - p));
        rc = 0;
        goto out;
    }
    /* A password passes as it is: its text must never decide (or appear
     * in) a message. Other values are checked decoded, as libpq reads them. */
    size_t vlen = len - (size_t)(eq - p) - 1;
    value = pp->values || is_ssl || strcmp(name, "connect_timeout") == 0
                ? query_decode(eq + 1, vlen)
                : xstrdup("");
    if (!value) {
        snprintf(err, errlen, "DATABASE_URL: bad percent escape in the value of %s in \"%s\"",
                 name, red);
        goto out;
    }
    const char *v = is_ssl ? ssl_to_sslmode(value) : value;
    if (!v || !value_allowed(pp, v)) {
        /* The raw text, as the URL (and its redaction) shows it. */
        snprintf(err, errlen, "DATABASE_URL: %s=\"%.*s\" is not valid in \"%s\"; expected %s",
                 name, (int)(vlen > 40 ? 40 : vlen), eq + 1, red, expected_values(pp, is_ssl));
        goto out;
    }
    if (pp == &pg_params[0]) {
        if (st->sslmode && strcmp(st->sslmode, v) != 0) {
            snprintf(err, errlen, "DATABASE_URL: ssl and sslmode disagree (%s, %s) in \"%s\"",
                     st->sslmode, v, red);
            goto out;
        }
        free(st->sslmode);
        st->sslmode = xstrdup(v);
        st->from_ssl |= is_ssl;
    }
    /* Rebuilt: ssl=X becomes sslmode=<its meaning>; the rest as given. */
    if (q->len > 0)
        buf_append_char(q, '&');
    if (is_ssl) {
        buf_append_str(q, "sslmode=");
        buf_append_str(q, v);
    } else {
        buf_append(q, p, len);
    }
    rc = 0;
out:
    free(name);
    free(value);
    return rc;
}

/* libpq understands postgresql:// and postgres://; the driver suffix of
 * the old app's spelling is dropped. The query is checked parameter by
 * parameter and rebuilt (ssl=X becomes sslmode=...), so libpq never sees a
 * parameter it would refuse only when connecting. `rest` follows "://". */
/* True when an '@' follows the first '/' of the authority but comes before
 * the query ("app:pa/ss@host/db"): a '/' in the user name or password,
 * which libpq would read as the end of the host (taking "pa" for the port
 * and quoting it in its messages). No '@' before the first '/' is needed
 * for that: a database name holding '@' is read the same way, and is
 * refused too (it can be percent-encoded as well). */
static bool slash_in_userinfo(const char *rest)
{
    size_t auth = strcspn(rest, "/?");
    if (memchr(rest, '@', auth) != NULL || rest[auth] != '/')
        return false;
    const char *path = rest + auth;
    return memchr(path, '@', strcspn(path, "?")) != NULL;
}

static int parse_postgres(const char *rest, const char *red, struct dburl *out, char *err,
                          size_t errlen)
{
    /* libpq's userinfo ends at the first '@' before any '/'; the query
     * starts at the first '?' after it. */
    const char *host = rest + strcspn(rest, "@/");
    host = *host == '@' ? host + 1 : rest;
    const char *qm = strchr(host, '?');
    struct pg_query_state st = {0};
    struct buf conn, query;
    int rc = -1;

    if (slash_in_userinfo(rest)) {
        snprintf(err, errlen,
                 "DATABASE_URL: \"%s\": the user name or password holds a '/', which ends the "
                 "host part of a URL; percent-encode it as %%2F (and '@' as %%40, ':' as %%3A)",
                 red);
        return -1;
    }
    buf_init(&conn, SIZE_MAX);
    buf_init(&query, SIZE_MAX);
    buf_append_str(&conn, "postgresql://");
    buf_append(&conn, rest, qm ? (size_t)(qm - rest) : strlen(rest));
    for (const char *p = qm ? qm + 1 : NULL; p && *p;) {
        size_t len = strcspn(p, "&");
        if (len > 0 && pg_query_param(p, len, &st, &query, red, err, errlen) != 0)
            goto out;
        p += len + (p[len] == '&');
    }
    if (st.unknown[0] != '\0') {
        snprintf(err, errlen,
                 "DATABASE_URL: unknown query parameter %s in \"%s\"; accepted: " PG_ACCEPTED_PARAMS,
                 st.unknown, red);
        goto out;
    }
    if (query.len > 0) {
        buf_append_char(&conn, '?');
        buf_append(&conn, query.data, query.len);
    }
    out->conninfo = buf_take(&conn, NULL);
    out->sslmode = st.sslmode;
    st.sslmode = NULL;
    out->kind = DBURL_POSTGRES;
    rc = 0;
out:
    free(st.sslmode);
    buf_free(&query);
    buf_free(&conn);
    return rc;
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
        rc = parse_postgres(sep + 3, red, out, err, errlen);
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
    free(u->sslmode);
    free(u->redacted);
    memset(u, 0, sizeof(*u));
}
