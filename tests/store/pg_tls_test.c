/*
 * TLS to PostgreSQL: a throwaway CA and server certificate (for the name
 * "localhost" only) made with openssl by `pg-test-cluster certs`, a cluster
 * of this test's own with TLS on (`pg-test-cluster --ssl`), and the pool
 * and the store connecting with sslmode=verify-full + sslrootcert. The host
 * name is looked up off the loop (pg_resolve.h) and libpq connects to the
 * address, so these tests also show that the certificate is still checked
 * against the name. A wrong CA and a name the certificate does not hold
 * fail, with messages that say so.
 */
#include <criterion/criterion.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/pg_pool.h"
#include "store/store.h"

#define DEADLINE_MS 20000

static char dir[PATH_MAX];
static char script[PATH_MAX];
static int port;
static h2o_loop_t *loop;
static struct pg_pool *pool;

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run `script ARGS`; its first output line into `out` (may be NULL). */
static int run(const char *args, char *out, size_t outlen)
{
    char line[PATH_MAX * 3];
    FILE *p;

    if (snprintf(line, sizeof(line), "'%s' %s", script, args) >= (int)sizeof(line))
        return -1;
    p = popen(line, "r");
    if (p == NULL)
        return -1;
    if (out != NULL && fgets(out, (int)outlen, p) != NULL)
        out[strcspn(out, "\n")] = '\0';
    return pclose(p) == 0 ? 0 : -1;
}

/* A TLS cluster in a fresh directory; skips without PostgreSQL or openssl. */
static void setup(void)
{
    const char *env = getenv("PG_TEST_CLUSTER");
    const char *bindir = getenv("PG_BINDIR");
    char initdb[PATH_MAX], url[512], args[PATH_MAX * 2 + 64];

    loop = h2o_evloop_create();
    pool = NULL;
    dir[0] = '\0';
    snprintf(initdb, sizeof(initdb), "%s/initdb",
             bindir != NULL ? bindir : "/usr/lib/postgresql/15/bin");
    if (access(initdb, X_OK) != 0 || access("/usr/bin/openssl", X_OK) != 0)
        cr_skip_test("no PostgreSQL binaries or openssl: skipping the TLS tests");
    if (env == NULL || realpath(env, script) == NULL)
        cr_skip_test("PG_TEST_CLUSTER is not set (run through meson test)");
    snprintf(dir, sizeof(dir), "/tmp/todo-pgtls-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    chmod(dir, 0755); /* the server runs as another user when we are root */
    (void)!snprintf(args, sizeof(args), "certs '%s/certs'", dir);
    cr_assert_eq(run(args, NULL, 0), 0, "pg-test-cluster certs failed");
    snprintf(args, sizeof(args), "--ssl '%s/certs' start '%s/pg'", dir, dir);
    cr_assert_eq(run(args, url, sizeof(url)), 0, "cannot start a TLS cluster");
    const char *colon = strrchr(url, ':');
    cr_assert_not_null(colon, "%s", url);
    port = (int)strtol(colon + 1, NULL, 10);
    cr_assert_gt(port, 0, "%s", url);
}

static void teardown(void)
{
    char args[PATH_MAX * 2];

    pg_pool_free(pool);
    h2o_evloop_run(loop, 0);
    h2o_evloop_destroy(loop);
    if (dir[0] != '\0') {
        snprintf(args, sizeof(args), "stop '%s/pg'", dir);
        run(args, NULL, 0);
        snprintf(args, sizeof(args), "rm -rf '%s'", dir);
        if (system(args) != 0)
            fprintf(stderr, "pg_tls: cannot remove %s\n", dir);
    }
}

TestSuite(pg_tls, .init = setup, .fini = teardown, .timeout = 120);

/* postgresql://postgres@HOST:PORT/todo?sslmode=MODE&sslrootcert=DIR/certs/CA */
static void url_for(char *out, size_t len, const char *host, const char *mode, const char *ca)
{
    snprintf(out, len, "postgresql://postgres@%s:%d/todo?sslmode=%s&sslrootcert=%s/certs/%s",
             host, port, mode, dir, ca);
}

static struct pg_pool *pool_for(const char *url)
{
    struct pg_pool_options o = {.conninfo = url, .prepared = true, .nreaders = 1, .nwriters = 1,
                                .timeout_ms = 10000};
    return pg_pool_new(loop, &o);
}

/* Run until the pool has a reader, or its error contains `needle`. */
static struct pg_conn *until_up_or(const char *needle)
{
    int64_t end = mono_ms() + DEADLINE_MS;
    struct pg_conn *c;

    while ((c = pg_pool_reader(pool)) == NULL &&
           (needle == NULL || strstr(pg_pool_error(pool), needle) == NULL)) {
        cr_assert_lt(mono_ms(), end, "neither up nor failed: \"%s\"", pg_pool_error(pool));
        h2o_evloop_run(loop, 10);
    }
    return c;
}

Test(pg_tls, verify_full_connects_by_name_to_the_address)
{
    char url[PATH_MAX + 128];

    url_for(url, sizeof(url), "localhost", "verify-full", "ca.crt");
    pool = pool_for(url);
    struct pg_conn *c = until_up_or(NULL);
    PGconn *pg = pg_conn_pgconn(c);
    cr_assert_eq(PQsslInUse(pg), 1, "not TLS");
    cr_assert_str_eq(PQhost(pg), "localhost");
    cr_assert_str_eq(PQhostaddr(pg), "127.0.0.1", "connected without the looked-up address");
    cr_assert_not_null(PQsslAttribute(pg, "protocol"));
}

Test(pg_tls, a_wrong_ca_fails_with_a_clear_message)
{
    char url[PATH_MAX + 128];

    url_for(url, sizeof(url), "localhost", "verify-full", "other-ca.crt");
    pool = pool_for(url);
    cr_assert_null(until_up_or("certificate verify failed"));
    const char *e = pg_pool_error(pool);
    cr_assert(strstr(e, "sslrootcert"), "no hint in: %s", e);
    cr_assert(!pg_pool_up(pool));
}

Test(pg_tls, a_name_the_certificate_does_not_hold_fails)
{
    char url[PATH_MAX + 128];

    /* The certificate names "localhost" only: connecting as 127.0.0.1
     * encrypts but is refused by verify-full (and by nothing weaker). */
    url_for(url, sizeof(url), "127.0.0.1", "verify-full", "ca.crt");
    pool = pool_for(url);
    cr_assert_null(until_up_or("does not match host name"));
    pg_pool_free(pool);
    url_for(url, sizeof(url), "127.0.0.1", "verify-ca", "ca.crt");
    pool = pool_for(url);
    cr_assert_not_null(until_up_or(NULL));
}

/* ---- the whole store ---------------------------------------------------- */

static int ping_status;
static int ping_calls;

static void on_ping(void *ctx, const struct store_result *res)
{
    (void)ctx;
    ping_calls++;
    ping_status = res->status;
}

static int ping(struct store_worker *w)
{
    int rc;

    ping_calls = 0;
    rc = store_ping(w, on_ping, NULL, NULL);
    if (rc != 0)
        return rc;
    int64_t end = mono_ms() + DEADLINE_MS;
    while (ping_calls == 0) {
        cr_assert_lt(mono_ms(), end);
        h2o_evloop_run(loop, 10);
    }
    return ping_status;
}

Test(pg_tls, the_store_migrates_and_serves_over_verify_full)
{
    char url[PATH_MAX + 128], err[512];
    struct store_options o = {.migrate = true, .workers = 1, .pool_size = 2};

    url_for(url, sizeof(url), "localhost", "verify-full", "ca.crt");
    struct store *s = store_open_opts(url, &o, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(store_schema_current(s), STORE_OK, "migrated at open, over TLS");
    struct store_worker *w = store_worker_attach(s, loop);
    int64_t end = mono_ms() + DEADLINE_MS;
    while (ping(w) != STORE_OK) {
        cr_assert_lt(mono_ms(), end, "never ready");
        h2o_evloop_run(loop, 50);
    }
    store_worker_detach(w);
    cr_assert_eq(store_close(s), 0);
}

Test(pg_tls, the_store_starts_with_a_wrong_ca_but_is_not_ready)
{
    char url[PATH_MAX + 128], err[512];
    struct store_options o = {.migrate = true, .workers = 1, .pool_size = 2};

    url_for(url, sizeof(url), "localhost", "verify-full", "other-ca.crt");
    struct store *s = store_open_opts(url, &o, err, sizeof(err));
    cr_assert_not_null(s, "a TLS failure is not a reason to refuse to start: %s", err);
    struct store_worker *w = store_worker_attach(s, loop);
    for (int i = 0; i < 20; i++)
        h2o_evloop_run(loop, 10);
    cr_assert_eq(ping(w), STORE_UNAVAILABLE);
    store_worker_detach(w);
    cr_assert_eq(store_close(s), 0);
}
