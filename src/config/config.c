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

struct sources {
    struct env_file files[1]; /* `.env`; the environment issue adds `.env.<APP_ENV>` first */
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

static int parse_database_url(struct config *cfg, const struct setting *s, char *err, size_t errlen)
{
    struct dburl u;
    if (dburl_parse(s->value, &u, err, errlen) != 0) {
        char where[PATH_MAX + 32];
        size_t used = strlen(err);
        if (used < errlen)
            snprintf(err + used, errlen - used, "%s", origin(s, where, sizeof(where)));
        return -1;
    }
    dburl_free(&u);
    cfg->database_url = xstrdup(s->value);
    return 0;
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
    int level = log_level_parse(s->value);
    if (level < 0)
        return bad_value(s, "one of debug, info, warning, error", err, errlen);
    cfg->log_level = level;
    return 0;
}

/* Every variable once: name, value when unset (NULL: the parser decides),
 * the default as documented, parser, meaning. APP_ENV comes first so later
 * parsers can depend on it. */
#define CONFIG_VARS(X)                                                                             \
    X("APP_ENV", "development", "development", parse_app_env,                                      \
      "Deployment environment: development, staging or production.")                               \
    X("DATABASE_URL", "sqlite:///todo.db", "sqlite:///todo.db", parse_database_url,                \
      "Database. SQLite: sqlite:///relative.db or sqlite:////absolute/path.db (the old\n"          \
      "      sqlite+aiosqlite:// spelling is accepted). PostgreSQL:\n"                             \
      "      postgresql://user:pass@host/db (also postgres:// and postgresql+asyncpg://).\n"       \
      "      Passwords are never logged.")                                                         \
    X("HOST", "127.0.0.1", "127.0.0.1", parse_host,                                                \
      "Address to listen on (0.0.0.0 for all interfaces).")                                        \
    X("PORT", "8000", "8000", parse_port, "TCP port to listen on, 0..65535 (0: any free port).")   \
    X("WORKERS", NULL, "number of online CPUs", parse_workers,                                     \
      "Worker threads, 1..256; each runs its own event loop.")                                     \
    X("SECRET_KEY", NULL, "random", parse_secret_key,                                              \
      "Key that signs access tokens (HS256), used as raw bytes. When unset a random key is\n"      \
      "      made at start-up and tokens stop working when the server restarts.")                  \
    X("ACCESS_TOKEN_EXPIRE_MINUTES", "30", "30", parse_expire,                                     \
      "Lifetime of an access token in minutes, 1..525600.")                                        \
    X("LOG_LEVEL", "info", "info", parse_log_level,                                                \
      "Least severe level logged: debug, info, warning or error.")

struct var {
    const char *name;
    const char *unset_value;
    parse_fn *parse;
};

#define VAR_ENTRY(name, unset, doc_default, fn, help) {name, unset, fn},
static const struct var vars[] = {CONFIG_VARS(VAR_ENTRY)};

#define HELP_ENTRY(name, unset, doc_default, fn, help)                                             \
    "  " name " (default: " doc_default ")\n      " help "\n"
const char config_help_text[] =
    "Environment variables (also read from a .env file in the working directory;\n"
    "the real environment wins):\n" CONFIG_VARS(HELP_ENTRY);

/* ---- entry points ---- */

int config_load(struct config *cfg, const char *env_file, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    struct sources src = {0};
    if (env_file) {
        if (env_file_read(&src.files[0], env_file, err, errlen) != 0)
            return -1;
        src.nfiles = 1;
    }
    int rc = 0;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]) && rc == 0; i++) {
        struct setting s = lookup(&src, vars[i].name);
        if (!s.value)
            s.value = vars[i].unset_value;
        rc = vars[i].parse(cfg, &s, err, errlen);
    }
    for (size_t i = 0; i < src.nfiles; i++)
        env_file_free(&src.files[i]);
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
    free(cfg->host);
    free(cfg->app_env);
    memset(cfg, 0, sizeof(*cfg));
}
