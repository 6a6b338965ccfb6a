#include "cli/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "config/config.h"
#include "http/offload.h"
#include "http/server.h"
#include "migrate/mdb.h"
#include "store/store.h"
#include "util/dburl.h"
#include "util/log.h"

#define OFFLOAD_THREADS 2

extern const char embedded_openapi[];
extern const size_t embedded_openapi_len;

const char cli_serve_usage[] =
    "Usage: todo serve [--help]\n"
    "\n"
    "Run the HTTP/JSON API (under /api/v1) until SIGTERM or SIGINT, then finish\n"
    "in-flight requests and exit 0. Configuration comes from environment\n"
    "variables, then from the files .env.<APP_ENV> and .env in the working\n"
    "directory (the real environment wins). On start the database schema is\n"
    "created or updated; a PostgreSQL database that does not answer yet is\n"
    "waited for in the background (/readyz answers 503 until then).\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help and exit\n"
    "\n"
    "Environment variables:\n";

static void print_usage(FILE *out)
{
    fputs(cli_serve_usage, out);
    fputs(config_help_text, out);
}

static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            print_usage(stdout);
            return 0;
        }
        fprintf(stderr, "todo serve: unknown argument '%s'\n\n", argv[i]);
        print_usage(stderr);
        return 2;
    }
    return -1;
}

/* Seconds start-up waits for PostgreSQL to tell whether migrations are
 * pending (staging/production). */
#define PENDING_CHECK_CONNECT_S 5

/* Start-up migrations. development applies them (through
 * MIGRATIONS_DATABASE_URL when set: here; otherwise the store does, at
 * open). staging and production refuse to start while any is pending,
 * unless MIGRATE_ON_START=true; a database that cannot be asked is not a
 * reason to refuse (readiness waits for the schema). 0, or -1 with the
 * message printed. `*store_migrates` tells store_open whether to apply them. */
static int startup_migrations(const struct config *cfg, bool *store_migrates)
{
    const char *murl = cfg->migrations_database_url;
    bool apply = strcmp(cfg->app_env, "development") == 0 || cfg->migrate_on_start;
    char err[1024];
    int n;

    *store_migrates = apply && murl == NULL;
    if (apply && murl != NULL) {
        if (mdb_up_embedded(murl, PENDING_CHECK_CONNECT_S, err, sizeof(err)) < 0) {
            fprintf(stderr, "todo serve: migrations (MIGRATIONS_DATABASE_URL): %s\n", err);
            return -1;
        }
        return 0;
    }
    if (apply)
        return 0;
    n = mdb_pending_count(murl != NULL ? murl : cfg->database_url, PENDING_CHECK_CONNECT_S, err,
                          sizeof(err));
    if (n < 0) {
        log_kv(LOG_WARN, "cannot tell whether migrations are pending; starting anyway", "error",
               err, NULL);
        return 0;
    }
    if (n > 0) {
        fprintf(stderr,
                "todo serve: %d migration%s pending and APP_ENV=%s: apply %s with `todo migrate"
                " up` first, or set MIGRATE_ON_START=true\n",
                n, n == 1 ? " is" : "s are", cfg->app_env, n == 1 ? "it" : "them");
        return -1;
    }
    return 0;
}

static int serve(const struct config *cfg)
{
    char err[512];
    char *label = dburl_redact(cfg->database_url);
    int code = 1;
    struct offload *offload = NULL;

    http_server_block_signals(); /* before the first thread starts */
    bool store_migrates = false;
    if (startup_migrations(cfg, &store_migrates) != 0) {
        free(label);
        return 1;
    }
    struct store_options so = {
        .migrate = store_migrates,
        .workers = (unsigned)cfg->workers,
        .pool_size = (unsigned)cfg->pool_size,
        .pool_max_overflow = (unsigned)cfg->pool_max_overflow,
        .pool_timeout_ms = (unsigned)cfg->pool_timeout_s * 1000u,
        .pool_recycle_s = (unsigned)cfg->pool_recycle_s,
        .pool_pre_ping = cfg->pool_pre_ping,
        .prepared = cfg->db_prepared_statements < 0    ? STORE_PREPARED_AUTO
                    : cfg->db_prepared_statements == 0 ? STORE_PREPARED_OFF
                                                       : STORE_PREPARED_ON,
    };
    struct store *store = store_open_opts(cfg->database_url, &so, err, sizeof(err));
    if (store == NULL) {
        fprintf(stderr, "todo serve: %s\n", err);
        goto out;
    }
    if (cfg->secret_key_generated)
        log_kv(LOG_WARN, "SECRET_KEY is not set: using a random key, so tokens will not survive "
                         "a restart; set SECRET_KEY (32+ random bytes)", NULL);
    offload = offload_start(OFFLOAD_THREADS);
    struct app app = {
        .store = store,
        .secret_key = cfg->secret_key,
        .secret_key_len = cfg->secret_key_len,
        .token_lifetime_s = (int64_t)cfg->access_token_expire_minutes * 60,
        .openapi_json = embedded_openapi,
        .openapi_json_len = embedded_openapi_len,
        .process_tag = randombytes_random(),
        .offload = offload,
    };
    struct http_server_opts opts = {
        .host = cfg->host, .port = cfg->port, .workers = (unsigned)cfg->workers,
        .database_label = label,
    };
    if (http_server_run(&app, &opts, err, sizeof(err)) != 0) {
        fprintf(stderr, "todo serve: %s\n", err);
        goto out;
    }
    code = 0;
out:
    offload_stop(offload);
    store_close(store);
    free(label);
    if (code == 0)
        log_kv_always(LOG_INFO, "stopped", NULL);
    return code;
}

int cli_serve_main(int argc, char **argv)
{
    int code = parse_args(argc, argv);
    if (code >= 0)
        return code;
    if (sodium_init() < 0) {
        fprintf(stderr, "todo serve: libsodium failed to initialise\n");
        return 1;
    }
    struct config cfg;
    char err[512];
    if (config_load(&cfg, ".env", err, sizeof(err)) != 0) {
        fprintf(stderr, "todo serve: %s\n", err);
        return 1;
    }
    log_set_level(cfg.log_level);
    code = serve(&cfg);
    config_free(&cfg);
    return code;
}
