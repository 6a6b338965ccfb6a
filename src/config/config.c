#include "config/config.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/dburl.h"
#include "util/log.h"
#include "util/xalloc.h"

#define ENV_FILE_MAX (1024 * 1024) /* a .env file larger than this is refused */
#define SHOWN_VALUE_MAX 80         /* bytes of a bad value quoted in a message */

/* ---- .env files ---- */

struct env_item {
    char *key;
    char *value;
    int line;
};

/* One parsed file. Later items override earlier ones with the same key. */
struct env_file {
    const char *path;
    struct env_item *items;
    size_t n, alloc;
};

/* Where a setting's value came from. `value` NULL: not set anywhere. */
struct setting {
    const char *name;
    const char *value;
    const char *file; /* NULL: the process environment (or the default) */
    int line;
};

static void env_file_add(struct env_file *f, const char *key, size_t key_len, char *value, int line)
{
    if (f->n == f->alloc) {
        f->alloc = f->alloc ? f->alloc * 2 : 16;
        f->items = xrealloc(f->items, f->alloc * sizeof(*f->items));
    }
    f->items[f->n++] = (struct env_item){xstrndup(key, key_len), value, line};
}

static void env_file_free(struct env_file *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->items[i].key);
        sodium_memzero(f->items[i].value, strlen(f->items[i].value)); /* may be SECRET_KEY */
        free(f->items[i].value);
    }
    free(f->items);
    memset(f, 0, sizeof(*f));
}

static const char *skip_blank(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static bool is_key_char(char c, bool first)
{
    return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (!first && c >= '0' && c <= '9');
}

/* A double-quoted value: \\ \" \n \t \r are escapes, other backslashes
 * stay as they are. `*p` is just past the opening quote; on success it
 * is left just past the closing one. NULL when the quote is not closed. */
static char *unquote_double(const char **p, const char *end)
{
    char *out = xmalloc((size_t)(end - *p) + 1);
    size_t n = 0;
    for (const char *s = *p; s < end; s++) {
        if (*s == '"') {
            out[n] = '\0';
            *p = s + 1;
            return out;
        }
        if (*s == '\\' && s + 1 < end && strchr("\\\"ntr", s[1])) {
            s++;
            out[n++] = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s == 'r' ? '\r' : *s;
            continue;
        }
        out[n++] = *s;
    }
    free(out);
    return NULL;
}

/* A single-quoted value is literal. */
static char *unquote_single(const char **p, const char *end)
{
    const char *close = memchr(*p, '\'', (size_t)(end - *p));
    if (!close)
        return NULL;
    char *out = xstrndup(*p, (size_t)(close - *p));
    *p = close + 1;
    return out;
}

/* The value part of a line (after '='), trimmed; NULL with `*why` set
 * when malformed. */
static char *parse_value(const char *p, const char *end, const char **why)
{
    p = skip_blank(p, end);
    if (p < end && (*p == '"' || *p == '\'')) {
        char q = *p++;
        char *v = q == '"' ? unquote_double(&p, end) : unquote_single(&p, end);
        if (!v) {
            *why = "unterminated quote (values cannot span lines)";
            return NULL;
        }
        p = skip_blank(p, end);
        if (p < end && *p != '#') {
            *why = "text after the closing quote";
            free(v);
            return NULL;
        }
        return v;
    }
    /* Unquoted: a '#' after whitespace starts a comment. */
    const char *v_end = p;
    for (const char *s = p; s < end; s++) {
        if (*s == '#' && s > p && (s[-1] == ' ' || s[-1] == '\t'))
            break;
        v_end = s + 1;
    }
    while (v_end > p && (v_end[-1] == ' ' || v_end[-1] == '\t'))
        v_end--;
    return xstrndup(p, (size_t)(v_end - p));
}

/* One line without its '\n': parsed (or blank/comment) → NULL; malformed →
 * the reason. */
static const char *parse_line(struct env_file *f, const char *p, const char *end, int line)
{
    if (end > p && end[-1] == '\r')
        end--;
    p = skip_blank(p, end);
    if (p == end || *p == '#')
        return NULL;
    if ((size_t)(end - p) > 6 && memcmp(p, "export", 6) == 0 && (p[6] == ' ' || p[6] == '\t'))
        p = skip_blank(p + 6, end);
    const char *key = p;
    while (p < end && is_key_char(*p, p == key))
        p++;
    size_t key_len = (size_t)(p - key);
    p = skip_blank(p, end);
    if (key_len == 0 || p == end || *p != '=')
        return "expected KEY=value (a name of letters, digits and _, then '=')";
    const char *why = NULL;
    char *value = parse_value(p + 1, end, &why);
    if (!value)
        return why;
    env_file_add(f, key, key_len, value, line);
    return NULL;
}

/* Read the whole file; a missing file is an empty one. */
static char *slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT)
            return xstrdup("");
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    char *data = xmalloc(ENV_FILE_MAX + 1);
    size_t n = fread(data, 1, ENV_FILE_MAX + 1, fp);
    bool bad = ferror(fp);
    fclose(fp);
    if (!bad && n <= ENV_FILE_MAX)
        data[n] = '\0';
    if (bad || n > ENV_FILE_MAX || strlen(data) != n) {
        snprintf(err, errlen, "%s: %s", path,
                 bad                ? "cannot read"
                 : n > ENV_FILE_MAX ? "larger than 1 MiB"
                                    : "holds a NUL byte");
        sodium_memzero(data, n);
        free(data);
        return NULL;
    }
    *len = n;
    return data;
}

static int env_file_read(struct env_file *f, const char *path, char *err, size_t errlen)
{
    memset(f, 0, sizeof(*f));
    f->path = path;
    size_t len = 0;
    char *data = slurp(path, &len, err, errlen);
    if (!data)
        return -1;
    int rc = 0;
    const char *p = data, *end = data + len;
    for (int line = 1; p < end && rc == 0; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        /* The line itself is not quoted back: it may hold SECRET_KEY. */
        const char *why = parse_line(f, p, line_end, line);
        if (why) {
            snprintf(err, errlen, "%s line %d: %s", path, line, why);
            rc = -1;
        }
        p = line_end + 1;
    }
    sodium_memzero(data, len);
    free(data);
    if (rc != 0)
        env_file_free(f);
    return rc;
}

/* ---- lookup: environment first, then each file in order ---- */

/* Looked up in order: the environment, then files[0], files[1]. */
struct sources {
    struct env_file files[2]; /* `.env.<APP_ENV>`, then `.env` */
    size_t nfiles;
};

static struct setting lookup(const struct sources *src, const char *name)
{
    struct setting s = {.name = name, .value = getenv(name)};
    for (size_t i = 0; !s.value && i < src->nfiles; i++) {
        const struct env_file *f = &src->files[i];
        for (size_t j = f->n; j-- > 0;) {
            if (strcmp(f->items[j].key, name) == 0) {
                s.value = f->items[j].value;
                s.file = f->path;
                s.line = f->items[j].line;
                break;
            }
        }
    }
    return s;
}

/* ---- validation, one function per variable ---- */

/* " (in .env line 3)" for values from a file, "" otherwise. */
static const char *origin(const struct setting *s, char *buf, size_t len)
{
    if (!s->file)
        return "";
    snprintf(buf, len, " (in %s line %d)", s->file, s->line);
    return buf;
}

static int bad_value(const struct setting *s, const char *expected, char *err, size_t errlen)
{
    char where[PATH_MAX + 32];
    snprintf(err, errlen, "%s: \"%.*s\"%s is not %s%s", s->name, SHOWN_VALUE_MAX, s->value,
             strlen(s->value) > SHOWN_VALUE_MAX ? "..." : "", expected,
             origin(s, where, sizeof(where)));
    return -1;
}

/* Strict decimal integer in [min, max]: no sign other than '-', no
 * spaces, no trailing characters. */
static int parse_int(const struct setting *s, long min, long max, int *out, char *err,
                     size_t errlen)
{
    char expected[64];
    snprintf(expected, sizeof(expected), "a number between %ld and %ld", min, max);
    const char *v = s->value;
    if (!((v[0] >= '0' && v[0] <= '9') || (v[0] == '-' && v[1] >= '0' && v[1] <= '9')))
        return bad_value(s, expected, err, errlen);
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > max)
        return bad_value(s, expected, err, errlen);
    *out = (int)n;
    return 0;
}

/* ---- per-environment defaults ---- */

static const struct env_defaults {
    const char *name;
    int pool_size;
    int log_level;
} env_defaults[] = {
    {"development", 20, LOG_DEBUG},
    {"staging", 10, LOG_INFO},
    {"production", 20, LOG_INFO},
};

static const struct env_defaults *defaults_of(const struct config *cfg)
{
    for (size_t i = 0; i < sizeof(env_defaults) / sizeof(env_defaults[0]); i++)
        if (cfg->app_env && strcmp(cfg->app_env, env_defaults[i].name) == 0)
            return &env_defaults[i];
    return &env_defaults[0];
}

static bool is_production(const struct config *cfg)
{
    return cfg->app_env && strcmp(cfg->app_env, "production") == 0;
}

typedef int parse_fn(struct config *cfg, const struct setting *s, char *err, size_t errlen);

static int parse_app_env(struct config *cfg, const struct setting *s, char *err, size_t errlen)
{
    static const char *const envs[] = {"development", "staging", "production"};
    for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
        if (strcasecmp(s->value, envs[i]) == 0) {
            cfg->app_env = xstrdup(envs[i]);
            return 0;
        }
    }
    return bad_value(s, "one of development, staging, production", err, errlen);
}

/* require, verify-ca and verify-full insist on TLS; the others do not. */
static bool sslmode_strong(const char *mode)
{
    return mode && (strcmp(mode, "require") == 0 || strcmp(mode, "verify-ca") == 0 ||
                    strcmp(mode, "verify-full") == 0);
}

/* A database URL into *out (DATABASE_URL, MIGRATIONS_DATABASE_URL). */
static int parse_url_into(struct config *cfg, const struct setting *s, char **out, char *err,
                          size_t errlen)
{
    struct dburl u;
    if (dburl_parse(s->value, &u, err, errlen) != 0) {
        char where[PATH_MAX + 32];
        size_t used = strlen(err);
        if (used < errlen)
            snprintf(err + used, errlen - used, "%s", origin(s, where, sizeof(where)));
        return -1;
    }
    int rc = 0;
    if (is_production(cfg) && u.kind == DBURL_POSTGRES && !sslmode_strong(u.sslmode)) {
        char where[PATH_MAX + 32];
        snprintf(err, errlen,
                 "%s: in production the connection to PostgreSQL must use TLS, but "
                 "sslmode is %s%s; fix: add sslmode=require (or sslmode=verify-full with "
                 "sslrootcert=/path/to/ca.pem) to the URL's query, e.g. ...?sslmode=require",
                 s->name, u.sslmode ? u.sslmode : "unset (libpq's default: prefer)",
                 origin(s, where, sizeof(where)));
        rc = -1;
    }
    dburl_free(&u);
    if (rc == 0)
        *out = xstrdup(s->value);
    return rc;
}

static int parse_database_url(struct config *cfg, const struct setting *s, char *err, size_t errlen)
{
    return parse_url_into(cfg, s, &cfg->database_url, err, errlen);
}

/* Unset: NULL (todo migrate and start-up migration use DATABASE_URL). */
static int parse_migrations_url(struct config *cfg, const struct setting *s, char *err,
                                size_t errlen)
{
    if (s->value == NULL)
        return 0;
    return parse_url_into(cfg, s, &cfg->migrations_database_url, err, errlen);
}

static int parse_host(struct config *cfg, const struct setting *s, char *err, size_t errlen)
{
    if (s->value[0] == '\0')
        return bad_value(s, "a host name or address (e.g. 127.0.0.1 or 0.0.0.0)", err, errlen);
    cfg->host = xstrdup(s->value);
    return 0;
}

static int parse_port(struct config *cfg, const struct setting *s, char *err, size_t errlen)
{
    return parse_int(s, 0, 65535, &cfg->port, err, errlen);
}

static int parse_workers(struct config *cfg, const struct setting *s, char *err, size_t errlen)
{
    if (s->value)
        return parse_int(s, 1, 256, &cfg->workers, err, errlen);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = cpus < 1 ? 1 : cpus > 256 ? 256 : (int)cpus;
    return 0;
}

static int parse_secret_key(struct config *cfg, const struct setting *s, char *err, size_t errlen)
{
    char where[PATH_MAX + 32];
    if (s->value && s->value[0] == '\0') {
        /* Never quote the value of SECRET_KEY (here it is empty anyway). */
        snprintf(err, errlen, "SECRET_KEY: is set but empty%s; unset it to use a random key",
                 origin(s, where, sizeof(where)));
        return -1;
    }
    if (is_production(cfg) && (!s->value || strlen(s->value) < CONFIG_SECRET_KEY_MIN_PRODUCTION)) {
        char len[64] = "unset";
        if (s->value)
            snprintf(len, sizeof(len), "only %zu bytes", strlen(s->value));
        snprintf(err, errlen,
                 "SECRET_KEY: is %s%s, and production needs at least %d random bytes to sign "
                 "tokens; fix: set SECRET_KEY, e.g. SECRET_KEY=$(openssl rand -hex 32)",
                 len, s->value ? origin(s, where, sizeof(where)) : "",
                 CONFIG_SECRET_KEY_MIN_PRODUCTION);
        return -1;
    }
    if (s->value) {
        cfg->secret_key_len = strlen(s->value);
        cfg->secret_key = xmalloc(cfg->secret_key_len);
        memcpy(cfg->secret_key, s->value, cfg->secret_key_len);
        return 0;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "SECRET_KEY: unset, and libsodium cannot make a random one");
        return -1;
    }
    cfg->secret_key_len = CONFIG_SECRET_KEY_GENERATED_LEN;
    cfg->secret_key = xmalloc(cfg->secret_key_len);
    randombytes_buf(cfg->secret_key, cfg->secret_key_len);
    cfg->secret_key_generated = true;
    return 0;
}

static int parse_expire(struct config *cfg, const struct setting *s, char *err, size_t errlen)
{
    return parse_int(s, 1, 525600, &cfg->access_token_expire_minutes, err, errlen);
}

static int parse_log_level(struct config *cfg, const struct setting *s, char *err, size_t errlen)
{
    if (!s->value) {
        cfg->log_level = defaults_of(cfg)->log_level;
        return 0;
    }
    int level = log_level_parse(s->value);
    if (level < 0)
        return bad_value(s, "one of debug, info, warning, error", err, errlen);
    cfg->log_level = level;
    return 0;
}

/* true/false, also 1/0, yes/no, on/off, in any case. */
static int parse_bool(const struct setting *s, bool *out, char *err, size_t errlen)
{
    static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no",
                                                                                 "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s->value, yes[i]) == 0 || strcasecmp(s->value, no[i]) == 0) {
            *out = strcasecmp(s->value, yes[i]) == 0;
            return 0;
        }
    }
    return bad_value(s, "true or false", err, errlen);
}

static int parse_migrate_on_start(struct config *cfg, const struct setting *s, char *err,
                                  size_t errlen)
{
    return parse_bool(s, &cfg->migrate_on_start, err, errlen);
}

static int parse_pool_size(struct config *cfg, const struct setting *s, char *err, size_t errlen)
{
    if (!s->value) {
        cfg->pool_size = defaults_of(cfg)->pool_size;
        return 0;
    }
    return parse_int(s, 1, 10000, &cfg->pool_size, err, errlen);
}

static int parse_pool_overflow(struct config *cfg, const struct setting *s, char *err,
                               size_t errlen)
{
    return parse_int(s, 0, 10000, &cfg->pool_max_overflow, err, errlen);
}

static int parse_pool_timeout(struct config *cfg, const struct setting *s, char *err, size_t errlen)
{
    return parse_int(s, 1, 3600, &cfg->pool_timeout_s, err, errlen);
}

static int parse_pool_recycle(struct config *cfg, const struct setting *s, char *err, size_t errlen)
{
    return parse_int(s, 0, 604800, &cfg->pool_recycle_s, err, errlen);
}

static int parse_pool_pre_ping(struct config *cfg, const struct setting *s, char *err,
                               size_t errlen)
{
    return parse_bool(s, &cfg->pool_pre_ping, err, errlen);
}

static int parse_prepared(struct config *cfg, const struct setting *s, char *err, size_t errlen)
{
    bool on = false;

    if (strcasecmp(s->value, "auto") == 0) {
        cfg->db_prepared_statements = -1;
        return 0;
    }
    if (parse_bool(s, &on, err, errlen) != 0)
        return bad_value(s, "true, false or auto", err, errlen);
    cfg->db_prepared_statements = on ? 1 : 0;
    return 0;
}

/* Every variable once: name, another name read when it is unset (NULL:
 * none), value when unset (NULL: the parser decides), the default as
 * documented, parser, meaning. APP_ENV comes first so later parsers can
 * depend on it. */
#define CONFIG_VARS(X)                                                                             \
    X("APP_ENV", NULL, "development", "development", parse_app_env,                                \
      "Deployment environment: development, staging or production. It picks the\n"                \
      "      defaults marked per environment and the file .env.<APP_ENV>. production\n"           \
      "      refuses to start without a SECRET_KEY of 32+ bytes, or with a PostgreSQL\n"           \
      "      DATABASE_URL whose sslmode is weaker than require.")                                  \
    X("DATABASE_URL", NULL, "sqlite:///todo.db", "sqlite:///todo.db", parse_database_url,          \
      "Database. SQLite: sqlite:///relative.db or sqlite:////absolute/path.db (the old\n"          \
      "      sqlite+aiosqlite:// spelling is accepted). PostgreSQL:\n"                             \
      "      postgresql://user:pass@host/db (also postgres:// and postgresql+asyncpg://),\n"      \
      "      with query parameters sslmode (ssl=require is read as sslmode=require),\n"           \
      "      sslrootcert, sslcert, sslkey, channel_binding, connect_timeout,\n"                   \
      "      application_name, options, target_session_attrs; others are refused.\n"             \
      "      Passwords are never logged.")                                                         \
    X("MIGRATIONS_DATABASE_URL", NULL, NULL, "DATABASE_URL", parse_migrations_url,                 \
      "The database `todo migrate` and start-up migrations use instead of\n"                       \
      "      DATABASE_URL (same spellings); on Neon, the direct endpoint while\n"                   \
      "      DATABASE_URL is the pooled (-pooler) one.")                                           \
    X("MIGRATE_ON_START", NULL, "false", "false", parse_migrate_on_start,                         \
      "staging and production: apply pending migrations at start-up (true) or\n"                  \
      "      refuse to start while any are pending (false: run `todo migrate up`).\n"             \
      "      development always applies them.")                                                    \
    X("HOST", NULL, "127.0.0.1", "127.0.0.1", parse_host,                                          \
      "Address to listen on (0.0.0.0 for all interfaces).")                                        \
    X("PORT", NULL, "8000", "8000", parse_port,                                                    \
      "TCP port to listen on, 0..65535 (0: any free port).")                                       \
    X("WORKERS", NULL, NULL, "number of online CPUs", parse_workers,                               \
      "Worker threads, 1..256; each runs its own event loop.")                                     \
    X("SECRET_KEY", NULL, NULL, "random; required in production", parse_secret_key,               \
      "Key that signs access tokens (HS256), used as raw bytes; production needs 32+.\n"          \
      "      When unset (development, staging) a random key is made at start-up and\n"           \
      "      tokens stop working when the server restarts.")                                       \
    X("ACCESS_TOKEN_EXPIRE_MINUTES", NULL, "30", "30", parse_expire,                               \
      "Lifetime of an access token in minutes, 1..525600.")                                        \
    X("LOG_LEVEL", NULL, NULL, "debug in development, info in staging and production",            \
      parse_log_level, "Least severe level logged: debug, info, warning or error.")                \
    X("POOL_SIZE", "NEON_POOL_SIZE", NULL, "20 in development, 10 in staging, 20 in production",   \
      parse_pool_size,                                                                             \
      "PostgreSQL: persistent connections of the whole server, 1..10000, shared out\n"            \
      "      among the workers (each gets at least one reader and one writer). The old\n"        \
      "      app's NEON_POOL_SIZE is read when POOL_SIZE is unset.")                               \
    X("POOL_MAX_OVERFLOW", NULL, "10", "10", parse_pool_overflow,                                  \
      "PostgreSQL: extra writer connections opened while writes wait for one and\n"               \
      "      closed when idle again, 0..10000. Keep instances x (POOL_SIZE +\n"                    \
      "      POOL_MAX_OVERFLOW) below the database's max_connections.")                            \
    X("POOL_TIMEOUT", NULL, "30", "30", parse_pool_timeout,                                        \
      "PostgreSQL: seconds a request waits for a connection, 1..3600; then it gets\n"             \
      "      503 with Retry-After.")                                                               \
    X("POOL_RECYCLE", NULL, "1800", "1800", parse_pool_recycle,                                    \
      "PostgreSQL: seconds after which an idle connection is replaced, 0..604800\n"               \
      "      (0: never).")                                                                         \
    X("POOL_PRE_PING", NULL, "true", "true", parse_pool_pre_ping,                                  \
      "PostgreSQL: check a connection that sat idle for a second or more before a\n"              \
      "      write uses it (true or false).")                                                      \
    X("DB_PREPARED_STATEMENTS", NULL, "auto", "auto", parse_prepared,                              \
      "PostgreSQL: named prepared statements: true, false, or auto (on, except for\n"             \
      "      a Neon pooler host, ep-...-pooler..., which is PgBouncer in transaction mode).")

struct var {
    const char *name;
    const char *alias;
    const char *unset_value;
    parse_fn *parse;
};

#define VAR_ENTRY(name, alias, unset, doc_default, fn, help) {name, alias, unset, fn},
static const struct var vars[] = {CONFIG_VARS(VAR_ENTRY)};

#define HELP_ENTRY(name, alias, unset, doc_default, fn, help)                                      \
    "  " name " (default: " doc_default ")\n      " help "\n"
const char config_help_text[] =
    "Environment variables (also read from the files .env.<APP_ENV>, then .env, in the\n"
    "working directory; the real environment wins, then .env.<APP_ENV>):\n" CONFIG_VARS(HELP_ENTRY);

/* ---- entry points ---- */

/* The value of vars[i]: the environment, then the files; then its alias
 * the same way; else unset_value (which may be NULL). */
static struct setting lookup_var(const struct sources *src, const struct var *v)
{
    struct setting s = lookup(src, v->name);
    if (!s.value && v->alias)
        s = lookup(src, v->alias);
    if (!s.value) {
        s.name = v->name;
        s.value = v->unset_value;
    }
    return s;
}

/* ".env" → ".env.production" (same directory). Caller frees. */
static char *env_specific_path(const char *env_file, const char *app_env)
{
    size_t n = strlen(env_file) + strlen(app_env) + 2;
    char *path = xmalloc(n);
    snprintf(path, n, "%s.%s", env_file, app_env);
    return path;
}

int config_load(struct config *cfg, const char *env_file, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    struct sources src = {0};
    char *specific = NULL;
    int rc = 0;
    /* `.env` first: it may name APP_ENV, which names the other file. */
    if (env_file) {
        if (env_file_read(&src.files[1], env_file, err, errlen) != 0)
            return -1;
        src.files[0].path = env_file;
        src.nfiles = 2;
    }
    struct setting app_env = lookup_var(&src, &vars[0]);
    rc = vars[0].parse(cfg, &app_env, err, errlen);
    if (rc == 0 && env_file) {
        specific = env_specific_path(env_file, cfg->app_env);
        rc = env_file_read(&src.files[0], specific, err, errlen);
    }
    for (size_t i = 1; i < sizeof(vars) / sizeof(vars[0]) && rc == 0; i++) {
        struct setting s = lookup_var(&src, &vars[i]);
        rc = vars[i].parse(cfg, &s, err, errlen);
    }
    for (size_t i = 0; i < src.nfiles; i++)
        env_file_free(&src.files[i]);
    free(specific);
    if (rc != 0)
        config_free(cfg);
    return rc;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    if (cfg->secret_key)
        sodium_memzero(cfg->secret_key, cfg->secret_key_len);
    free(cfg->secret_key);
    free(cfg->database_url);
    free(cfg->migrations_database_url);
    free(cfg->host);
    free(cfg->app_env);
    memset(cfg, 0, sizeof(*cfg));
}
