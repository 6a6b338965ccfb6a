/*
 * config: the only reader of the environment. Loads settings once at
 * start-up from the process environment, then from `.env.<APP_ENV>`, then
 * from `.env` (both beside the `env_file` given, normally the working
 * directory's `.env`; earlier wins), validates them and fills `struct
 * config`. APP_ENV itself comes from the environment or `.env`. Nothing
 * else calls getenv().
 *
 * Variables (config_help_text lists each with its default and meaning):
 * APP_ENV (development | staging | production), DATABASE_URL, HOST, PORT,
 * WORKERS, SECRET_KEY, ACCESS_TOKEN_EXPIRE_MINUTES, LOG_LEVEL, and for
 * PostgreSQL POOL_SIZE (or the old NEON_POOL_SIZE), POOL_MAX_OVERFLOW,
 * POOL_TIMEOUT, POOL_RECYCLE, POOL_PRE_PING, DB_PREPARED_STATEMENTS.
 *
 * Per-environment defaults: LOG_LEVEL debug in development, info in
 * staging and production; POOL_SIZE 20 in development, 10 in staging, 20
 * in production. In production, start-up is refused (with the fix in the
 * message) when SECRET_KEY is unset or shorter than
 * CONFIG_SECRET_KEY_MIN_PRODUCTION bytes, and when DATABASE_URL is
 * PostgreSQL with an sslmode weaker than require (unset means libpq's
 * "prefer"). Elsewhere an unset SECRET_KEY is made at random
 * (`secret_key_generated` set so serve can warn).
 *
 * .env format: `KEY=value` lines; optional `export ` prefix; blank lines
 * and `#` comments; a `#` after whitespace ends an unquoted value; values
 * may be 'single-quoted' (literal) or "double-quoted" (\\ \" \n \t \r
 * escapes); surrounding whitespace is trimmed; later lines override earlier
 * ones; unknown keys are ignored. A missing file is an empty one. A set but
 * empty variable counts as set (and is then usually invalid).
 *
 * Errors: config_load() returns -1 with a message naming the variable and
 * the bad value (never SECRET_KEY's value; DATABASE_URL redacted), plus the
 * file and line when the value came from a file, or naming the file and
 * line of a malformed line, in `err`; the struct then holds nothing to
 * free. Integers are strict decimal (no spaces, signs other than '-', or
 * suffixes); booleans are true/false (also 1/0, yes/no, on/off). Main
 * thread only. config_free() wipes the secret key (NULL and a zeroed struct
 * are accepted).
 */
#ifndef TODO_CONFIG_CONFIG_H
#define TODO_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_SECRET_KEY_GENERATED_LEN 32
#define CONFIG_SECRET_KEY_MIN_PRODUCTION 32

struct config {
    char *database_url; /* as given (may hold a password: log dburl_redact() of it) */
    char *migrations_database_url; /* NULL when unset: then database_url */
    bool migrate_on_start;          /* staging/production: migrate instead of refusing */
    char *host;
    int port;    /* 1..65535 (0 allowed: pick a free port, for tests) */
    int workers; /* 1..256 */
    unsigned char *secret_key;
    size_t secret_key_len;
    bool secret_key_generated;
    int access_token_expire_minutes; /* 1..525600 */
    int log_level;                   /* enum log_level */
    char *app_env;                   /* development | staging | production */
    /* PostgreSQL connection pool, totals over all workers. */
    int pool_size;              /* 1..10000 */
    int pool_max_overflow;      /* 0..10000 */
    int pool_timeout_s;         /* 1..3600 */
    int pool_recycle_s;         /* 0..604800, 0: never */
    bool pool_pre_ping;
    int db_prepared_statements; /* -1 auto, 0 off, 1 on */
};

/* Load from the environment, `env_file`.<APP_ENV> and `env_file` (normally
 * ".env"; NULL: no files). */
__attribute__((warn_unused_result)) int config_load(struct config *cfg, const char *env_file,
                                                    char *err, size_t errlen);
void config_free(struct config *cfg);

/* One line per variable for `--help`: name, default, meaning. */
extern const char config_help_text[];

#endif
