#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "util/log.h"

static const char *const VARS[] = {
    "APP_ENV",
    "DATABASE_URL",
    "HOST",
    "PORT",
    "WORKERS",
    "SECRET_KEY",
    "ACCESS_TOKEN_EXPIRE_MINUTES",
    "LOG_LEVEL",
    "POOL_SIZE",
    "NEON_POOL_SIZE",
    "POOL_MAX_OVERFLOW",
    "POOL_TIMEOUT",
    "POOL_RECYCLE",
    "POOL_PRE_PING",
    "DB_PREPARED_STATEMENTS",
};

static char env_path[4096];
static char err[1024];
static struct config cfg;

/* Each Criterion test runs in its own process: env changes stay local. */
static void setup(void)
{
    for (size_t i = 0; i < sizeof(VARS) / sizeof(VARS[0]); i++)
        unsetenv(VARS[i]);
    env_path[0] = '\0';
    err[0] = '\0';
}

static void teardown(void)
{
    config_free(&cfg);
    if (env_path[0])
        unlink(env_path);
}

TestSuite(config, .init = setup, .fini = teardown);

/* A temporary .env file holding `content`; its path. */
static const char *write_env(const char *content)
{
    const char *dir = getenv("TEST_TMPDIR");
    snprintf(env_path, sizeof(env_path), "%s/config_test_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(env_path);
    cr_assert_geq(fd, 0, "mkstemp %s", env_path);
    size_t n = strlen(content);
    cr_assert_eq(write(fd, content, n), (ssize_t)n);
    close(fd);
    return env_path;
}

static void load_ok(const char *file)
{
    int rc = config_load(&cfg, file, err, sizeof(err));
    cr_assert_eq(rc, 0, "config_load failed: %s", err);
}

/* Loading fails and the message contains each of the NULL-terminated needles. */
static void load_fails(const char *file, ...)
{
    int rc = config_load(&cfg, file, err, sizeof(err));
    cr_assert_eq(rc, -1, "config_load should fail");
    cr_assert_null(cfg.database_url);
    cr_assert_null(cfg.host);
    cr_assert_null(cfg.secret_key);
    cr_assert_null(cfg.app_env);
    va_list ap;
    va_start(ap, file);
    for (const char *s; (s = va_arg(ap, const char *));)
        cr_assert(strstr(err, s), "error \"%s\" lacks \"%s\"", err, s);
    va_end(ap);
}

static void env_fails(const char *name, const char *value, const char *needle)
{
    setenv(name, value, 1);
    char quoted[256];
    snprintf(quoted, sizeof(quoted), "\"%s\"", value);
    load_fails(NULL, name, needle, quoted, NULL);
    cr_assert(strncmp(err, name, strlen(name)) == 0, "error starts with the name: %s", err);
    unsetenv(name);
}

Test(config, defaults)
{
    load_ok(NULL);
    cr_assert_str_eq(cfg.database_url, "sqlite:///todo.db");
    cr_assert_str_eq(cfg.host, "127.0.0.1");
    cr_assert_eq(cfg.port, 8000);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cr_assert_eq(cfg.workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    cr_assert_eq(cfg.access_token_expire_minutes, 30);
    cr_assert_eq(cfg.log_level, LOG_DEBUG, "development logs at debug");
    cr_assert_str_eq(cfg.app_env, "development");
    cr_assert_eq(cfg.pool_size, 20);
    cr_assert_eq(cfg.pool_max_overflow, 10);
    cr_assert_eq(cfg.pool_timeout_s, 30);
    cr_assert_eq(cfg.pool_recycle_s, 1800);
    cr_assert(cfg.pool_pre_ping);
    cr_assert_eq(cfg.db_prepared_statements, -1, "auto");
    cr_assert(cfg.secret_key_generated);
    cr_assert_eq(cfg.secret_key_len, CONFIG_SECRET_KEY_GENERATED_LEN);
}

Test(config, generated_keys_differ)
{
    load_ok(NULL);
    unsigned char first[CONFIG_SECRET_KEY_GENERATED_LEN];
    memcpy(first, cfg.secret_key, sizeof(first));
    config_free(&cfg);
    load_ok(NULL);
    cr_assert_neq(memcmp(first, cfg.secret_key, sizeof(first)), 0);
}

Test(config, from_environment)
{
    setenv("DATABASE_URL", "sqlite:////var/lib/todo/x.db", 1);
    setenv("HOST", "0.0.0.0", 1);
    setenv("PORT", "9090", 1);
    setenv("WORKERS", "3", 1);
    setenv("SECRET_KEY", "k3y", 1);
    setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "525600", 1);
    setenv("LOG_LEVEL", "WARNING", 1);
    setenv("APP_ENV", "Staging", 1);
    load_ok(NULL);
    cr_assert_str_eq(cfg.database_url, "sqlite:////var/lib/todo/x.db");
    cr_assert_str_eq(cfg.host, "0.0.0.0");
    cr_assert_eq(cfg.port, 9090);
    cr_assert_eq(cfg.workers, 3);
    cr_assert_not(cfg.secret_key_generated);
    cr_assert_eq(cfg.secret_key_len, 3);
    cr_assert_eq(memcmp(cfg.secret_key, "k3y", 3), 0);
    cr_assert_eq(cfg.access_token_expire_minutes, 525600);
    cr_assert_eq(cfg.log_level, LOG_WARN);
    cr_assert_str_eq(cfg.app_env, "staging");
}

Test(config, boundaries_accepted)
{
    setenv("PORT", "0", 1);
    setenv("WORKERS", "256", 1);
    setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "1", 1);
    load_ok(NULL);
    cr_assert_eq(cfg.port, 0);
    cr_assert_eq(cfg.workers, 256);
    cr_assert_eq(cfg.access_token_expire_minutes, 1);
    config_free(&cfg);
    setenv("PORT", "65535", 1);
    setenv("WORKERS", "1", 1);
    load_ok(NULL);
    cr_assert_eq(cfg.port, 65535);
    cr_assert_eq(cfg.workers, 1);
}

Test(config, from_file)
{
    load_ok(write_env("PORT=7000\n"
                      "HOST=10.0.0.1\n"
                      "SECRET_KEY=from-file-secret-0123456789abcdef\n"
                      "DATABASE_URL=sqlite+aiosqlite:///./app.db\n"
                      "LOG_LEVEL=debug\n"
                      "ACCESS_TOKEN_EXPIRE_MINUTES=60\n"
                      "WORKERS=2\n"
                      "APP_ENV=production\n"
                      "UNRELATED_SETTING=ignored\n"));
    cr_assert_eq(cfg.port, 7000);
    cr_assert_str_eq(cfg.host, "10.0.0.1");
    cr_assert_eq(cfg.secret_key_len, strlen("from-file-secret-0123456789abcdef"));
    cr_assert_eq(memcmp(cfg.secret_key, "from-file-secret-0123456789abcdef", cfg.secret_key_len),
                 0);
    cr_assert_not(cfg.secret_key_generated);
    cr_assert_str_eq(cfg.database_url, "sqlite+aiosqlite:///./app.db");
    cr_assert_eq(cfg.log_level, LOG_DEBUG);
    cr_assert_eq(cfg.access_token_expire_minutes, 60);
    cr_assert_eq(cfg.workers, 2);
    cr_assert_str_eq(cfg.app_env, "production");
}

Test(config, environment_wins_over_file)
{
    setenv("PORT", "9001", 1);
    setenv("SECRET_KEY", "env-secret", 1);
    load_ok(write_env("PORT=7000\nHOST=10.0.0.1\nSECRET_KEY=file-secret\n"));
    cr_assert_eq(cfg.port, 9001);
    cr_assert_str_eq(cfg.host, "10.0.0.1");
    cr_assert_eq(cfg.secret_key_len, strlen("env-secret"));
    cr_assert_eq(memcmp(cfg.secret_key, "env-secret", cfg.secret_key_len), 0);
}

Test(config, set_but_empty_in_environment_still_wins)
{
    setenv("HOST", "", 1);
    load_fails(write_env("HOST=10.0.0.1\n"), "HOST", NULL);
}

Test(config, missing_file_is_fine)
{
    load_ok("/nonexistent/dir/.env");
    cr_assert_eq(cfg.port, 8000);
}

Test(config, unreadable_file_is_an_error)
{
    const char *dir = getenv("TEST_TMPDIR");
    load_fails(dir && *dir ? dir : "/tmp", "cannot read", NULL);
}

Test(config, file_syntax)
{
    load_ok(write_env("# a comment\n"
                      "\n"
                      "   \n"
                      "  # indented comment\n"
                      "export PORT=7001\n"
                      "export\tWORKERS = 4  \n"
                      "HOST = \"  spaced host  \"   # trailing comment\n"
                      "SECRET_KEY='single # not a comment \\n'\n"
                      "LOG_LEVEL=error # comment after a value\n"
                      "APP_ENV=staging\r\n"
                      "DATABASE_URL=sqlite:///with%23hash.db\n"));
    cr_assert_eq(cfg.port, 7001);
    cr_assert_eq(cfg.workers, 4);
    cr_assert_str_eq(cfg.host, "  spaced host  ");
    const char *want = "single # not a comment \\n";
    cr_assert_eq(cfg.secret_key_len, strlen(want));
    cr_assert_eq(memcmp(cfg.secret_key, want, cfg.secret_key_len), 0);
    cr_assert_eq(cfg.log_level, LOG_ERROR);
    cr_assert_str_eq(cfg.app_env, "staging");
    cr_assert_str_eq(cfg.database_url, "sqlite:///with%23hash.db");
}

Test(config, hash_without_space_is_not_a_comment)
{
    load_ok(write_env("SECRET_KEY=abc#def\n"));
    cr_assert_eq(cfg.secret_key_len, 7);
    cr_assert_eq(memcmp(cfg.secret_key, "abc#def", 7), 0);
}

Test(config, double_quote_escapes)
{
    load_ok(write_env("SECRET_KEY=\"a\\\"b\\\\c\\nd\\te\\x\"\n"));
    const char *want = "a\"b\\c\nd\te\\x";
    cr_assert_eq(cfg.secret_key_len, strlen(want));
    cr_assert_eq(memcmp(cfg.secret_key, want, cfg.secret_key_len), 0);
}

Test(config, later_line_wins)
{
    load_ok(write_env("PORT=7000\nPORT=7002\n"));
    cr_assert_eq(cfg.port, 7002);
}

Test(config, last_line_without_newline)
{
    load_ok(write_env("PORT=7003"));
    cr_assert_eq(cfg.port, 7003);
}

Test(config, malformed_lines_name_file_and_line)
{
    const char *bad[] = {
        "JUSTAKEY",
        "=value",
        "1KEY=x",
        "KEY-NAME=x",
        "KEY value",
        "KEY=\"unterminated",
        "KEY='unterminated",
        "KEY=\"quoted\" trailing",
        "export",
        "export =x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char content[256];
        snprintf(content, sizeof(content), "# ok\nPORT=7000\n\n%s\nHOST=x\n", bad[i]);
        const char *path = write_env(content);
        load_fails(path, path, "line 4", NULL);
        unlink(env_path);
        env_path[0] = '\0';
    }
}

Test(config, malformed_line_does_not_echo_secrets)
{
    const char *path = write_env("SECRET_KEY=\"hunter2-very-secret\n");
    load_fails(path, "line 1", NULL);
    cr_assert_null(strstr(err, "hunter2"), "%s", err);
}

Test(config, nul_byte_in_file)
{
    const char *path = write_env("PORT=1");
    FILE *fp = fopen(path, "ab");
    cr_assert_not_null(fp);
    fputc('\0', fp);
    fputs("\nHOST=x\n", fp);
    fclose(fp);
    load_fails(path, "NUL", NULL);
}

Test(config, bad_port)
{
    const char *bad[] = {"abc",
                         "65536",
                         "-1",
                         " 80",
                         "80 ",
                         "",
                         "0x50",
                         "+80",
                         "8e3",
                         "80.0",
                         "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        env_fails("PORT", bad[i], "is not a number between 0 and 65535");
}

Test(config, bad_port_message_exact)
{
    setenv("PORT", "abc", 1);
    load_fails(NULL, NULL);
    cr_assert_str_eq(err, "PORT: \"abc\" is not a number between 0 and 65535");
}

Test(config, bad_port_in_file_names_line)
{
    const char *path = write_env("HOST=h\nPORT=http\n");
    load_fails(path, "PORT: \"http\"", path, "line 2", NULL);
}

Test(config, bad_workers)
{
    const char *bad[] = {"0", "257", "-3", "two", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        env_fails("WORKERS", bad[i], "between 1 and 256");
}

Test(config, bad_expire_minutes)
{
    const char *bad[] = {"0", "525601", "30m", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        env_fails("ACCESS_TOKEN_EXPIRE_MINUTES", bad[i], "between 1 and 525600");
}

Test(config, bad_log_level)
{
    env_fails("LOG_LEVEL", "verbose", "debug, info, warning, error");
    env_fails("LOG_LEVEL", "", "debug, info, warning, error");
}

Test(config, bad_app_env)
{
    env_fails("APP_ENV", "prod", "development, staging, production");
    env_fails("APP_ENV", "", "development, staging, production");
}

Test(config, bad_host)
{
    env_fails("HOST", "", "host");
}

Test(config, bad_database_url)
{
    setenv("DATABASE_URL", "mysql://admin:pa55word@db/todo", 1);
    load_fails(NULL, "DATABASE_URL", "mysql", NULL);
    cr_assert_null(strstr(err, "pa55word"), "password leaked: %s", err);
    setenv("DATABASE_URL", "sqlite://", 1);
    load_fails(NULL, "DATABASE_URL", "no file path", NULL);
    setenv("DATABASE_URL", "", 1);
    load_fails(NULL, "DATABASE_URL", NULL);
}

Test(config, bad_database_url_in_file_names_line)
{
    const char *path = write_env("\nDATABASE_URL=postgres+psycopg://u:pa55word@h/db\n");
    load_fails(path, "DATABASE_URL", path, "line 2", NULL);
    cr_assert_null(strstr(err, "pa55word"), "password leaked: %s", err);
}

Test(config, postgres_url_accepted)
{
    setenv("DATABASE_URL", "postgresql+asyncpg://u:pw@host/db", 1);
    load_ok(NULL);
    cr_assert_str_eq(cfg.database_url, "postgresql+asyncpg://u:pw@host/db");
}

Test(config, empty_secret_key)
{
    setenv("SECRET_KEY", "", 1);
    load_fails(NULL, "SECRET_KEY", "empty", NULL);
}

Test(config, short_secret_key_accepted_for_now)
{
    setenv("SECRET_KEY", "x", 1);
    load_ok(NULL);
    cr_assert_eq(cfg.secret_key_len, 1);
    cr_assert_not(cfg.secret_key_generated);
}

Test(config, later_error_frees_earlier_values)
{
    /* DATABASE_URL and HOST parse before LOG_LEVEL fails: nothing is left. */
    setenv("LOG_LEVEL", "loud", 1);
    load_fails(NULL, "LOG_LEVEL", NULL);
    cr_assert_eq(cfg.port, 0);
}

Test(config, help_lists_every_variable)
{
    for (size_t i = 0; i < sizeof(VARS) / sizeof(VARS[0]); i++)
        cr_assert(strstr(config_help_text, VARS[i]), "help lacks %s", VARS[i]);
    cr_assert(strstr(config_help_text, "sqlite:///todo.db"));
    cr_assert(strstr(config_help_text, "8000"));
    cr_assert(strstr(config_help_text, ".env"));
}

Test(config, free_is_idempotent)
{
    struct config zero = {0};
    config_free(&zero);
    config_free(NULL);
    load_ok(NULL);
    config_free(&cfg);
    cr_assert_null(cfg.secret_key);
    config_free(&cfg);
}

/* ---- environments: .env.<APP_ENV>, defaults, production rules ---- */

static char dir_path[4096];
static char file_paths[2][4200];

/* `.env` (and `.env.<env>` when `specific` is not NULL) in a fresh
 * directory; the path of `.env`. Removed by remove_env_dir(). */
static const char *write_env_dir(const char *dotenv, const char *env, const char *specific)
{
    const char *tmp = getenv("TEST_TMPDIR");
    snprintf(dir_path, sizeof(dir_path), "%s/config_dir_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir_path));
    snprintf(file_paths[0], sizeof(file_paths[0]), "%s/.env", dir_path);
    snprintf(file_paths[1], sizeof(file_paths[1]), "%s/.env.%s", dir_path, env ? env : "none");
    const char *texts[2] = {dotenv, specific};
    for (int i = 0; i < 2; i++) {
        if (!texts[i])
            continue;
        FILE *f = fopen(file_paths[i], "w");
        cr_assert_not_null(f);
        fputs(texts[i], f);
        fclose(f);
    }
    return file_paths[0];
}

static void remove_env_dir(void)
{
    unlink(file_paths[0]);
    unlink(file_paths[1]);
    rmdir(dir_path);
}

#define KEY32 "0123456789abcdef0123456789abcdef"

Test(config, env_specific_file_sits_between_environment_and_dotenv)
{
    setenv("HOST", "10.9.9.9", 1);
    const char *path = write_env_dir("APP_ENV=staging\nPORT=1111\nHOST=10.0.0.1\nWORKERS=3\n",
                                     "staging", "PORT=2222\nHOST=10.0.0.2\nLOG_LEVEL=error\n");
    int rc = config_load(&cfg, path, err, sizeof(err));
    remove_env_dir();
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(cfg.app_env, "staging");
    cr_assert_str_eq(cfg.host, "10.9.9.9", "the environment wins");
    cr_assert_eq(cfg.port, 2222, ".env.staging wins over .env");
    cr_assert_eq(cfg.workers, 3, ".env still supplies the rest");
    cr_assert_eq(cfg.log_level, LOG_ERROR);
}

Test(config, app_env_from_environment_picks_the_file)
{
    setenv("APP_ENV", "production", 1);
    const char *path = write_env_dir(
        "SECRET_KEY=short\n", "production",
        "SECRET_KEY=" KEY32 "\n"
        "DATABASE_URL=postgresql://user:pass@ep-xxx-123456.us-east-2.aws.neon.tech/todo"
        "?sslmode=require&channel_binding=require\n");
    int rc = config_load(&cfg, path, err, sizeof(err));
    remove_env_dir();
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(cfg.secret_key_len, 32, ".env.production wins over .env");
    cr_assert(strstr(cfg.database_url, "neon.tech"));
}

Test(config, a_file_for_another_environment_is_not_read)
{
    const char *path = write_env_dir("PORT=1111\n", "production", "PORT=2222\n");
    int rc = config_load(&cfg, path, err, sizeof(err));
    remove_env_dir();
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(cfg.port, 1111, "development must not read .env.production");
}

Test(config, an_error_in_the_env_specific_file_names_it)
{
    const char *path = write_env_dir("APP_ENV=staging\n", "staging", "\nPORT=abc\n");
    int rc = config_load(&cfg, path, err, sizeof(err));
    remove_env_dir();
    cr_assert_eq(rc, -1);
    cr_assert(strstr(err, ".env.staging line 2"), "%s", err);
}

Test(config, per_environment_defaults)
{
    static const struct {
        const char *env;
        int pool_size, log_level;
    } want[] = {
        {"development", 20, LOG_DEBUG},
        {"staging", 10, LOG_INFO},
        {"production", 20, LOG_INFO},
    };
    setenv("SECRET_KEY", KEY32, 1);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        setenv("APP_ENV", want[i].env, 1);
        load_ok(NULL);
        cr_assert_eq(cfg.pool_size, want[i].pool_size, "%s", want[i].env);
        cr_assert_eq(cfg.log_level, want[i].log_level, "%s", want[i].env);
        config_free(&cfg);
    }
    /* Explicit values still win. */
    setenv("POOL_SIZE", "3", 1);
    setenv("LOG_LEVEL", "error", 1);
    load_ok(NULL);
    cr_assert_eq(cfg.pool_size, 3);
    cr_assert_eq(cfg.log_level, LOG_ERROR);
}

Test(config, production_needs_a_secret_key)
{
    setenv("APP_ENV", "production", 1);
    load_fails(NULL, "SECRET_KEY", "unset", "production", "32", "openssl rand", NULL);
}

Test(config, production_needs_a_long_secret_key)
{
    setenv("APP_ENV", "production", 1);
    setenv("SECRET_KEY", "short-secret-1234567890-abcdefg", 1); /* 31 bytes */
    load_fails(NULL, "SECRET_KEY", "31 bytes", "32", NULL);
    cr_assert_null(strstr(err, "short-secret"), "the key leaked: %s", err);
    setenv("SECRET_KEY", KEY32, 1);
    load_ok(NULL);
    cr_assert_eq(cfg.secret_key_len, 32);
}

Test(config, production_needs_tls_to_postgres)
{
    static const char *const weak[] = {
        "postgresql://u:hunter22@db.example.com/todo",
        "postgresql://u:hunter22@db.example.com/todo?sslmode=prefer",
        "postgresql://u:hunter22@db.example.com/todo?sslmode=allow",
        "postgres://u:hunter22@db.example.com/todo?ssl=disable",
    };
    static const char *const strong[] = {
        "postgresql://u:hunter22@db.example.com/todo?sslmode=require",
        "postgresql+asyncpg://u:hunter22@db.example.com/todo?ssl=require",
        "postgresql://u:hunter22@db.example.com/todo?sslmode=verify-full&sslrootcert=/ca.pem",
        "postgresql://u:hunter22@db.example.com/todo?sslmode=verify-ca",
        "sqlite:///todo.db",
    };
    setenv("APP_ENV", "production", 1);
    setenv("SECRET_KEY", KEY32, 1);
    for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
        setenv("DATABASE_URL", weak[i], 1);
        load_fails(NULL, "DATABASE_URL", "TLS", "sslmode=require", NULL);
        cr_assert_null(strstr(err, "hunter22"), "password leaked: %s", err);
    }
    for (size_t i = 0; i < sizeof(strong) / sizeof(strong[0]); i++) {
        setenv("DATABASE_URL", strong[i], 1);
        load_ok(NULL);
        config_free(&cfg);
    }
}

Test(config, staging_allows_what_production_refuses)
{
    setenv("APP_ENV", "staging", 1);
    setenv("DATABASE_URL", "postgresql://u@db.example.com/todo", 1);
    load_ok(NULL);
    cr_assert(cfg.secret_key_generated);
}

Test(config, pool_settings)
{
    setenv("POOL_SIZE", "7", 1);
    setenv("POOL_MAX_OVERFLOW", "0", 1);
    setenv("POOL_TIMEOUT", "5", 1);
    setenv("POOL_RECYCLE", "0", 1);
    setenv("POOL_PRE_PING", "False", 1);
    setenv("DB_PREPARED_STATEMENTS", "false", 1);
    load_ok(NULL);
    cr_assert_eq(cfg.pool_size, 7);
    cr_assert_eq(cfg.pool_max_overflow, 0);
    cr_assert_eq(cfg.pool_timeout_s, 5);
    cr_assert_eq(cfg.pool_recycle_s, 0);
    cr_assert_not(cfg.pool_pre_ping);
    cr_assert_eq(cfg.db_prepared_statements, 0);
    config_free(&cfg);
    setenv("POOL_PRE_PING", "on", 1);
    setenv("DB_PREPARED_STATEMENTS", "TRUE", 1);
    load_ok(NULL);
    cr_assert(cfg.pool_pre_ping);
    cr_assert_eq(cfg.db_prepared_statements, 1);
    config_free(&cfg);
    setenv("DB_PREPARED_STATEMENTS", "auto", 1);
    load_ok(NULL);
    cr_assert_eq(cfg.db_prepared_statements, -1);
}

Test(config, neon_pool_size_is_read_when_pool_size_is_unset)
{
    setenv("NEON_POOL_SIZE", "12", 1);
    load_ok(NULL);
    cr_assert_eq(cfg.pool_size, 12);
    config_free(&cfg);
    setenv("POOL_SIZE", "4", 1);
    load_ok(NULL);
    cr_assert_eq(cfg.pool_size, 4, "POOL_SIZE wins");
    config_free(&cfg);
    unsetenv("POOL_SIZE");
    setenv("NEON_POOL_SIZE", "many", 1);
    load_fails(NULL, "NEON_POOL_SIZE", "\"many\"", NULL);
}

Test(config, bad_pool_settings)
{
    env_fails("POOL_SIZE", "0", "between 1 and 10000");
    env_fails("POOL_MAX_OVERFLOW", "-1", "between 0 and 10000");
    env_fails("POOL_TIMEOUT", "0", "between 1 and 3600");
    env_fails("POOL_RECYCLE", "1h", "between 0 and 604800");
    env_fails("POOL_PRE_PING", "maybe", "true or false");
    env_fails("DB_PREPARED_STATEMENTS", "sometimes", "true, false or auto");
}

Test(config, database_url_query_parameters)
{
    setenv("DATABASE_URL", "postgresql+asyncpg://u:pw@h/todo?ssl=require&application_name=x", 1);
    load_ok(NULL);
    config_free(&cfg);
    setenv("DATABASE_URL", "postgresql://u:hunter22@h/todo?sslmode=require&pool_size=5", 1);
    load_fails(NULL, "DATABASE_URL", "unknown query parameter", "\"pool_size\"", NULL);
    cr_assert_null(strstr(err, "hunter22"), "password leaked: %s", err);
    setenv("DATABASE_URL", "postgresql://u@h/todo?channel_binding=maybe", 1);
    load_fails(NULL, "DATABASE_URL", "channel_binding", NULL);
}

Test(config, help_documents_environments_and_the_pool)
{
    cr_assert(strstr(config_help_text, ".env.<APP_ENV>"));
    cr_assert(strstr(config_help_text, "NEON_POOL_SIZE"));
    cr_assert(strstr(config_help_text, "20 in development, 10 in staging, 20 in production"));
    cr_assert(strstr(config_help_text, "debug in development"));
    cr_assert(strstr(config_help_text, "ssl=require"));
}

/* The repository's example files: `name` in the source tree, found from
 * the build directory (TEST_TMPDIR is <build>/tests) and this file's path. */
static void source_file(const char *name, char *out, size_t outlen)
{
    const char *tmp = getenv("TEST_TMPDIR");
    const char *at = strstr(__FILE__, "tests/unit/config/");
    if (!tmp || !at)
        cr_skip_test("TEST_TMPDIR not set: run through meson test");
    snprintf(out, outlen, "%s/../%.*s%s", tmp, (int)(at - __FILE__), __FILE__, name);
    if (access(out, R_OK) != 0)
        cr_skip_test("%s not found", out);
}

Test(config, the_example_files_load)
{
    char path[4096];
    source_file(".env.example", path, sizeof(path));
    load_ok(path);
    cr_assert_str_eq(cfg.database_url, "sqlite:///todo.db");
    config_free(&cfg);

    /* .env.production.example as .env.production: only SECRET_KEY is
     * missing, and the refusal says how to set it. */
    char prod[4096];
    source_file(".env.production.example", prod, sizeof(prod));
    const char *tmp = getenv("TEST_TMPDIR");
    char dir[4096], dotenv[4200], specific[4200];
    snprintf(dir, sizeof(dir), "%s/config_examples_XXXXXX", tmp);
    cr_assert_not_null(mkdtemp(dir));
    snprintf(dotenv, sizeof(dotenv), "%s/.env", dir);
    snprintf(specific, sizeof(specific), "%s/.env.production", dir);
    cr_assert_eq(symlink(prod, specific), 0);
    setenv("APP_ENV", "production", 1);
    int rc = config_load(&cfg, dotenv, err, sizeof(err));
    cr_expect_eq(rc, -1);
    cr_expect(strstr(err, "SECRET_KEY") && strstr(err, "openssl rand"), "%s", err);
    config_free(&cfg);
    setenv("SECRET_KEY", KEY32, 1);
    rc = config_load(&cfg, dotenv, err, sizeof(err));
    unlink(specific);
    rmdir(dir);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(strstr(cfg.database_url, "ep-xxx-123456.us-east-2.aws.neon.tech/todo?sslmode=require"
                                       "&channel_binding=require"));
    cr_assert_eq(cfg.pool_size, 20);
}
