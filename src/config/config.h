/*
 * config: the only reader of the environment. Loads settings once at
 * start-up from the process environment, then from a `.env` file in the
 * working directory (the real environment wins), validates them and fills
 * `struct config`. Nothing else calls getenv().
 *
 * Variables: DATABASE_URL (default sqlite:///todo.db), HOST (127.0.0.1),
 * PORT (8000), WORKERS (CPU count), SECRET_KEY (random when unset, with
 * `secret_key_generated` set so serve can warn), ACCESS_TOKEN_EXPIRE_MINUTES
 * (30), LOG_LEVEL (info), APP_ENV (development).
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
 * suffixes). Main thread only. config_free() wipes the secret key (NULL
 * and a zeroed struct are accepted).
 */
#ifndef TODO_CONFIG_CONFIG_H
#define TODO_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CONFIG_SECRET_KEY_GENERATED_LEN 32

struct config {
    char *database_url; /* as given (may hold a password: log dburl_redact() of it) */
    char *host;
    int port;    /* 1..65535 (0 allowed: pick a free port, for tests) */
    int workers; /* 1..256 */
    unsigned char *secret_key;
    size_t secret_key_len;
    bool secret_key_generated;
    int access_token_expire_minutes; /* 1..525600 */
    int log_level;                   /* enum log_level */
    char *app_env;                   /* development | staging | production */
};

/* Load from the environment and `env_file` (normally ".env"; NULL: none). */
__attribute__((warn_unused_result)) int config_load(struct config *cfg, const char *env_file,
                                                    char *err, size_t errlen);
void config_free(struct config *cfg);

/* One line per variable for `--help`: name, default, meaning. */
extern const char config_help_text[];

#endif
