/*
 * e2e: PostgreSQL failure handling and settings, on the real binary. Each
 * test that stops, kills or reconfigures a database starts a throwaway
 * cluster of its own with scripts/pg-test-cluster (so the shared server's
 * database is never disturbed) and servers of its own on it:
 *   - the database down at start: the server starts anyway, /readyz and
 *     requests answer 503 problem+json with Retry-After, and once the
 *     cluster is started the same process migrates and becomes ready;
 *   - every backend killed (pg_terminate_backend) during a write load: no
 *     request hangs, each POST answers 201 or 503, every 201 exists
 *     afterwards, and the server recovers by itself;
 *   - POOL_TIMEOUT: a write that cannot get a connection in time gets 503
 *     with Retry-After, and so does one stuck behind a row lock (the write
 *     transaction's statement timeout);
 *   - TLS: sslmode=verify-full with the right CA is ready, with a wrong CA
 *     the server starts but is not ready, and its log says why;
 *   - production refuses a PostgreSQL URL without sslmode=require, and any
 *     environment refuses unknown URL parameters, naming them.
 *
 * The suite runs only when DATABASE_URL is a PostgreSQL URL (make test's
 * PostgreSQL runs); otherwise every test skips with a message.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define PSQL "/usr/lib/postgresql/15/bin/psql"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Skip unless the suite runs against PostgreSQL with the tools at hand. */
static void pg_only(void)
{
    const char *url = getenv("DATABASE_URL");
    if (!url || strncasecmp(url, "postgres", 8) != 0)
        cr_skip_test("pg: DATABASE_URL is not a PostgreSQL URL: the PostgreSQL fault tests "
                     "run in make test's PostgreSQL pass");
    if (access(PSQL, X_OK) != 0)
        cr_skip_test("pg: no %s (install postgresql-15)", PSQL);
}

/* ---- a cluster of the test's own -------------------------------------- */

struct cluster {
    char script[PATH_MAX];
    char dir[256];   /* holds pg/ (the cluster) and certs/ */
    char url[512];   /* postgresql://postgres@127.0.0.1:PORT/todo */
    int port;
};

/* The test's cluster: static, because teardown (after the test function
 * returned) removes it. */
static struct cluster the_cluster;
static bool cluster_made;

/* scripts/pg-test-cluster: $PG_TEST_CLUSTER, or beside docs/openapi.json
 * ($TODO_OPENAPI, set by tests/meson.build) in the source tree. */
static void find_script(struct cluster *c)
{
    const char *env = getenv("PG_TEST_CLUSTER");
    const char *openapi = getenv("TODO_OPENAPI");
    char guess[PATH_MAX] = "";
    if (openapi) {
        const char *docs = strstr(openapi, "docs/openapi.json");
        if (docs)
            snprintf(guess, sizeof(guess), "%.*sscripts/pg-test-cluster", (int)(docs - openapi),
                     openapi);
    }
    const char *candidates[] = {env, guess};
    for (int i = 0; i < 2; i++) {
        if (candidates[i] && *candidates[i] && access(candidates[i], X_OK) == 0 &&
            realpath(candidates[i], c->script))
            return;
    }
    cr_skip_test("pg: scripts/pg-test-cluster not found (set PG_TEST_CLUSTER)");
}

/* `pg-test-cluster ARGS`; the first output line into out (may be NULL). */
static int script_run(const struct cluster *c, const char *args, char *out, size_t outlen)
{
    char line[PATH_MAX + 1024];
    if (snprintf(line, sizeof(line), "'%s' %s", c->script, args) >= (int)sizeof(line))
        return -1;
    FILE *p = popen(line, "r");
    if (!p)
        return -1;
    if (out && fgets(out, (int)outlen, p))
        out[strcspn(out, "\n")] = '\0';
    return pclose(p) == 0 ? 0 : -1;
}

static void cluster_remove(struct cluster *c);

/* Create and start the test's cluster (with TLS from certs/ when `ssl`). */
static struct cluster *cluster_start(bool ssl)
{
    struct cluster *c = &the_cluster;
    char args[2048];
    memset(c, 0, sizeof(*c));
    find_script(c);
    snprintf(c->dir, sizeof(c->dir), "/tmp/todo-e2epg-XXXXXX");
    cr_assert_not_null(mkdtemp(c->dir));
    chmod(c->dir, 0755); /* the server may run as user postgres */
    cluster_made = true;
    if (ssl) {
        snprintf(args, sizeof(args), "certs '%s/certs'", c->dir);
        cr_assert_eq(script_run(c, args, NULL, 0), 0, "pg-test-cluster certs failed");
    }
    snprintf(args, sizeof(args), "%s%s%s start '%s/pg'", ssl ? "--ssl '" : "",
             ssl ? c->dir : "", ssl ? "/certs'" : "", c->dir);
    if (script_run(c, args, c->url, sizeof(c->url)) != 0) {
        cluster_remove(c);
        cluster_made = false;
        cr_assert_fail("pg-test-cluster start failed (see its stderr)");
    }
    const char *colon = strrchr(c->url, ':');
    c->port = colon ? (int)strtol(colon + 1, NULL, 10) : 0;
    cr_assert_gt(c->port, 0, "%s", c->url);
    return c;
}

static void cluster_cmd(struct cluster *c, const char *cmd)
{
    char args[512], out[512];
    snprintf(args, sizeof(args), "%s '%s/pg'", cmd, c->dir);
    cr_assert_eq(script_run(c, args, out, sizeof(out)), 0, "pg-test-cluster %s failed", cmd);
}

static void cluster_remove(struct cluster *c)
{
    char args[512];
    snprintf(args, sizeof(args), "stop '%s/pg'", c->dir);
    script_run(c, args, NULL, 0);
    snprintf(args, sizeof(args), "rm -rf '%s'", c->dir);
    if (system(args) != 0)
        fprintf(stderr, "pg: cannot remove %s\n", c->dir);
}

/* psql -c SQL on the cluster (role postgres, trust); 0 when it succeeded.
 * Its application_name is psql's, so killing 'todo' backends spares it. */
static int psql(const struct cluster *c, const char *sql)
{
    char line[2048];
    snprintf(line, sizeof(line), "%s '%s' -Atq -v ON_ERROR_STOP=1 -c \"%s\" >/dev/null 2>&1",
             PSQL, c->url, sql);
    return system(line) == 0 ? 0 : -1;
}

/* Poll until a backend matches `where` (SQL over pg_stat_activity; no row
 * makes the query fail with a division by zero); false after timeout_ms. */
static bool until_activity(const struct cluster *c, const char *where, int timeout_ms)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT 1 / count(*) FROM pg_stat_activity WHERE %s AND pid <> pg_backend_pid()",
             where);
    int64_t end = mono_ms() + timeout_ms;
    while (mono_ms() < end) {
        if (psql(c, sql) == 0)
            return true;
        usleep(20 * 1000);
    }
    return false;
}

/* The side session (psql) sits in its pg_sleep, its locks taken. */
#define SIDE_SLEEPING "application_name = 'psql' AND query LIKE '%pg_sleep%' AND state = 'active'"

static struct e2e_server *servers[4];
static int nservers;

static void teardown(void)
{
    for (int i = 0; i < nservers; i++) {
        if (servers[i]->pid > 0)
            e2e_server_stop(servers[i], SIGKILL, 5000);
        e2e_server_cleanup(servers[i]);
    }
    nservers = 0;
    if (cluster_made)
        cluster_remove(&the_cluster);
    cluster_made = false;
}

TestSuite(pg, .fini = teardown, .timeout = 240);

/* Start `todo serve` on `url` with extra NAME=value settings. */
static void server_start(struct e2e_server *s, const char *url, const char *const *set)
{
    struct e2e_server_opts o = {.database_url = url, .set = set};
    e2e_server_start_or_fail(s, &o);
    servers[nservers++] = s;
}

/* ---- HTTP helpers on a given server -------------------------------------- */

static struct e2e_resp *get_at(const struct e2e_server *s, const char *path, const char *token)
{
    struct e2e_req rq = {.base = s->base, .path = path, .token = token};
    return e2e_send(&rq);
}

static struct e2e_resp *post_at(const struct e2e_server *s, const char *path, const char *token,
                                const char *json)
{
    struct e2e_req rq = {.method = "POST", .base = s->base, .path = path, .token = token,
                         .ctype = "application/json", .body = json};
    return e2e_send(&rq);
}

static void user_at(const struct e2e_server *s, struct e2e_user *u)
{
    memset(u, 0, sizeof(*u));
    e2e_unique_email(u->email, sizeof(u->email), "pg");
    snprintf(u->password, sizeof(u->password), "pg-fault-password");
    char body[512];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", u->email, u->password);
    struct e2e_resp *r = post_at(s, "/api/v1/auth/register", NULL, body);
    E2E_STATUS(r, 201);
    snprintf(u->id, sizeof(u->id), "%s", e2e_str(r->json, "id"));
    e2e_resp_free(r);
    r = e2e_login(s->base, u->email, u->password);
    E2E_STATUS(r, 200);
    snprintf(u->token, sizeof(u->token), "%s", e2e_str(r->json, "access_token"));
    e2e_resp_free(r);
}

/* A 503 problem+json with Retry-After. */
static void check_503(const struct e2e_resp *r)
{
    E2E_PROBLEM(r, 503);
    const char *ra = e2e_header(r, "Retry-After");
    cr_assert(ra && strtol(ra, NULL, 10) >= 1, "%s: no Retry-After", r->what);
}

/* Poll /readyz until 200; false after timeout_ms. */
static bool wait_ready(const struct e2e_server *s, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    while (mono_ms() < end) {
        struct e2e_resp *r = get_at(s, "/readyz", NULL);
        long st = r->status;
        e2e_resp_free(r);
        if (st == 200)
            return true;
        usleep(100 * 1000);
    }
    return false;
}

/* ---- the database down at start ------------------------------------------ */

Test(pg, down_at_start_then_ready_without_restart)
{
    static struct e2e_server s; /* outlives the test body: the suite teardown stops it */
    struct e2e_user u;

    pg_only();
    struct cluster *c = cluster_start(false);
    cluster_cmd(c, "halt");
    int64_t started = mono_ms();
    server_start(&s, c->url, NULL);
    cr_assert_lt(mono_ms() - started, 5000, "start-up waited for the database");

    struct e2e_resp *r = get_at(&s, "/healthz", NULL);
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
    r = get_at(&s, "/readyz", NULL);
    check_503(r);
    e2e_resp_free(r);
    /* A request that needs the database is answered at once, not held. */
    int64_t t = mono_ms();
    r = post_at(&s, "/api/v1/auth/register", NULL,
                "{\"email\":\"early@e2e.example.com\",\"password\":\"pg-fault-password\"}");
    check_503(r);
    e2e_resp_free(r);
    cr_assert_lt(mono_ms() - t, 3000, "the request waited for the database");
    cr_assert(e2e_log_wait(s.log, "cannot reach the database", 5000),
              "the log does not say why it is not ready");

    /* The database comes up: the same process migrates and becomes ready. */
    cluster_cmd(c, "start");
    cr_assert(wait_ready(&s, 30000), "not ready 30 s after the database came up");
    cr_assert_eq(kill(s.pid, 0), 0, "the server is gone");
    cr_assert(e2e_log_wait(s.log, "schema up to date", 1000), "no migration after the start");
    user_at(&s, &u);
    r = post_at(&s, "/api/v1/todos", u.token, "{\"title\":\"after the database came up\"}");
    E2E_STATUS(r, 201);
    e2e_resp_free(r);
    int st = e2e_server_stop(&s, SIGTERM, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", e2e_status_text(st));
}

/* ---- killed backends under a write load ---------------------------------- */

#define LOAD_THREADS 8
#define LOAD_PER_THREAD 60

struct load {
    const struct e2e_server *s;
    const struct e2e_user *u;
    atomic_int done;
    long status[LOAD_THREADS][LOAD_PER_THREAD];
    int64_t ms[LOAD_THREADS][LOAD_PER_THREAD];
    char id[LOAD_THREADS][LOAD_PER_THREAD][40];
    char error[LOAD_THREADS][600];
};

static void load_thread(int i, void *arg)
{
    struct load *l = arg;
    for (int k = 0; k < LOAD_PER_THREAD; k++) {
        char body[96];
        snprintf(body, sizeof(body), "{\"title\":\"load %d.%d\"}", i, k);
        int64_t t = mono_ms();
        struct e2e_resp *r = post_at(l->s, "/api/v1/todos", l->u->token, body);
        l->ms[i][k] = mono_ms() - t;
        l->status[i][k] = r->status;
        if (r->status == 201 && e2e_str(r->json, "id"))
            snprintf(l->id[i][k], sizeof(l->id[i][k]), "%s", e2e_str(r->json, "id"));
        else if (r->status != 503 && !l->error[i][0])
            (void)!snprintf(l->error[i], sizeof(l->error[i]), "%ld %s %s", r->status, r->error,
                     e2e_excerpt(r));
        e2e_resp_free(r);
        atomic_fetch_add(&l->done, 1);
    }
}

struct killer {
    const struct cluster *c;
    struct load *l;
    int kills;
};

/* Kill every backend of the server twice while the load runs. */
static void *kill_thread(void *arg)
{
    struct killer *k = arg;
    const int total = LOAD_THREADS * LOAD_PER_THREAD;
    int at[] = {total / 4, total / 2};
    for (int i = 0; i < 2; i++) {
        while (atomic_load(&k->l->done) < at[i])
            usleep(1000);
        if (psql(k->c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                       " WHERE application_name = 'todo'") == 0)
            k->kills++;
    }
    return NULL;
}

Test(pg, killed_backends_during_a_write_load)
{
    static struct load l; /* large */
    static struct e2e_server s; /* outlives the test body: the suite teardown stops it */
    struct e2e_user u;
    static const char *const set[] = {"POOL_TIMEOUT=5", NULL};

    pg_only();
    struct cluster *c = cluster_start(false);
    server_start(&s, c->url, set);
    cr_assert(wait_ready(&s, 20000), "never ready");
    user_at(&s, &u);
    memset(&l, 0, sizeof(l));
    l.s = &s;
    l.u = &u;
    struct killer k = {.c = c, .l = &l};
    pthread_t kt;
    cr_assert_eq(pthread_create(&kt, NULL, kill_thread, &k), 0);
    e2e_parallel(LOAD_THREADS, load_thread, &l);
    pthread_join(kt, NULL);
    cr_assert_eq(k.kills, 2, "psql could not kill the backends");

    int created = 0, unavailable = 0;
    int64_t slowest = 0;
    for (int i = 0; i < LOAD_THREADS; i++) {
        cr_assert_eq(l.error[i][0], '\0', "thread %d: a POST answered neither 201 nor 503: %s",
                     i, l.error[i]);
        for (int j = 0; j < LOAD_PER_THREAD; j++) {
            created += l.status[i][j] == 201;
            unavailable += l.status[i][j] == 503;
            slowest = l.ms[i][j] > slowest ? l.ms[i][j] : slowest;
        }
    }
    cr_assert_eq(created + unavailable, LOAD_THREADS * LOAD_PER_THREAD);
    /* No hang: nothing waited much past POOL_TIMEOUT (5 s). */
    cr_assert_lt(slowest, 8000, "a POST took %lld ms", (long long)slowest);
    cr_assert_gt(created, LOAD_THREADS * LOAD_PER_THREAD / 2, "most writes succeed");
    /* Every write answered 201 is there. */
    for (int i = 0; i < LOAD_THREADS; i++) {
        for (int j = 0; j < LOAD_PER_THREAD; j++) {
            if (l.status[i][j] != 201)
                continue;
            struct e2e_resp *r = get_at(&s, e2e_todo_path(l.id[i][j]), u.token);
            cr_assert_eq(r->status, 200, "acknowledged todo %s is missing: %ld", l.id[i][j],
                         r->status);
            e2e_resp_free(r);
        }
    }
    /* And the server has recovered by itself. */
    cr_assert(wait_ready(&s, 10000), "not ready after the kills");
    struct e2e_resp *r = post_at(&s, "/api/v1/todos", u.token, "{\"title\":\"after\"}");
    E2E_STATUS(r, 201);
    e2e_resp_free(r);
    fprintf(stderr, "pg: %d created, %d unavailable, slowest %lld ms, after killing every "
                    "backend twice\n", created, unavailable, (long long)slowest);
}

/* ---- POOL_TIMEOUT ----------------------------------------------------------- */

struct patcher {
    const struct e2e_server *s;
    const struct e2e_user *u;
    const char *id;
    long status;
    int64_t ms;
};

static void *patch_thread(void *arg)
{
    struct patcher *p = arg;
    struct e2e_req rq = {.method = "PATCH", .base = p->s->base, .path = e2e_todo_path(p->id),
                         .token = p->u->token, .ctype = "application/merge-patch+json",
                         .body = "{\"completed\":true}"};
    int64_t t = mono_ms();
    struct e2e_resp *r = e2e_send(&rq);
    p->ms = mono_ms() - t;
    p->status = r->status;
    e2e_resp_free(r);
    return NULL;
}

struct locker {
    const struct cluster *c;
    char sql[512];
    int rc;
};

static void *lock_thread(void *arg)
{
    struct locker *l = arg;
    l->rc = psql(l->c, l->sql);
    return NULL;
}

struct registrar {
    const struct e2e_server *s;
    const char *email;
    long status;
};

static void *register_thread(void *arg)
{
    struct registrar *g = arg;
    char body[256];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"pg-fault-password\"}",
             g->email);
    struct e2e_resp *r = post_at(g->s, "/api/v1/auth/register", NULL, body);
    g->status = r->status;
    e2e_resp_free(r);
    return NULL;
}

/* One worker with one writer, no overflow, a 1 s wait at most. */
static const char *const one_writer[] = {"WORKERS=1", "POOL_SIZE=2", "POOL_MAX_OVERFLOW=0",
                                         "POOL_TIMEOUT=1", NULL};

Test(pg, a_write_that_gets_no_connection_in_time_is_503)
{
    static struct e2e_server s; /* outlives the test body: the suite teardown stops it */
    struct e2e_user u;
    char email[192];

    pg_only();
    struct cluster *c = cluster_start(false);
    server_start(&s, c->url, one_writer);
    cr_assert(wait_ready(&s, 20000), "never ready");
    user_at(&s, &u);
    /* A side session inserts a user and keeps its transaction open for
     * 4 s: registering the same email waits on the unique index (an
     * autocommit INSERT, no statement timeout), holding the only writer. */
    e2e_unique_email(email, sizeof(email), "dup");
    struct locker lk = {.c = c};
    snprintf(lk.sql, sizeof(lk.sql),
             "BEGIN; INSERT INTO users (id, email, password_hash, is_active, created_at,"
             " updated_at) VALUES (gen_random_uuid(), '%s', 'x', true, now(), now());"
             " SELECT pg_sleep(4); ROLLBACK",
             email);
    pthread_t lt, gt;
    cr_assert_eq(pthread_create(&lt, NULL, lock_thread, &lk), 0);
    cr_assert(until_activity(c, SIDE_SLEEPING, 3000), "the side session never got going");
    struct registrar g = {.s = &s, .email = email};
    cr_assert_eq(pthread_create(&gt, NULL, register_thread, &g), 0);
    /* Until the registration (hashed first, off the loop) waits on the
     * index: one of the server's backends waits for a lock. */
    cr_assert(until_activity(c, "application_name = 'todo' AND wait_event_type = 'Lock'", 3000),
              "the registration never waited on the index");
    int64_t t0 = mono_ms();
    struct e2e_resp *r = post_at(&s, "/api/v1/todos", u.token, "{\"title\":\"no writer\"}");
    int64_t waited = mono_ms() - t0;
    check_503(r);
    e2e_resp_free(r);
    cr_assert_geq(waited, 800, "answered after %lld ms: not a pool wait", (long long)waited);
    cr_assert_lt(waited, 3000, "answered after %lld ms", (long long)waited);
    pthread_join(gt, NULL);
    pthread_join(lt, NULL);
    cr_assert_eq(lk.rc, 0, "psql failed to hold the insert");
    cr_assert_eq(g.status, 201, "the side insert rolled back: the registration succeeds");
    r = post_at(&s, "/api/v1/todos", u.token, "{\"title\":\"the writer is free again\"}");
    E2E_STATUS(r, 201);
    e2e_resp_free(r);
}

Test(pg, a_write_stuck_behind_a_row_lock_is_503_within_pool_timeout)
{
    static struct e2e_server s; /* outlives the test body: the suite teardown stops it */
    struct e2e_user u;

    pg_only();
    struct cluster *c = cluster_start(false);
    server_start(&s, c->url, one_writer);
    cr_assert(wait_ready(&s, 20000), "never ready");
    user_at(&s, &u);
    struct e2e_resp *r = post_at(&s, "/api/v1/todos", u.token, "{\"title\":\"locked\"}");
    E2E_STATUS(r, 201);
    char id[40];
    snprintf(id, sizeof(id), "%s", e2e_str(r->json, "id"));
    e2e_resp_free(r);
    /* A side session holds the row for 4 s: a PATCH of it waits no longer
     * than POOL_TIMEOUT (its transaction's statement timeout), then 503. */
    struct locker lk = {.c = c};
    snprintf(lk.sql, sizeof(lk.sql),
             "BEGIN; SELECT 1 FROM todos WHERE id = '%s' FOR UPDATE; SELECT pg_sleep(4); COMMIT",
             id);
    pthread_t lt;
    cr_assert_eq(pthread_create(&lt, NULL, lock_thread, &lk), 0);
    cr_assert(until_activity(c, SIDE_SLEEPING, 3000), "the side session never got going");
    struct patcher p = {.s = &s, .u = &u, .id = id};
    patch_thread(&p);
    cr_assert_eq(p.status, 503, "the PATCH stuck behind the lock: %ld", p.status);
    cr_assert_geq(p.ms, 800, "the PATCH took %lld ms: no lock wait?", (long long)p.ms);
    cr_assert_lt(p.ms, 3000, "the PATCH took %lld ms", (long long)p.ms);
    /* Nothing was written; the writer serves the next request at once. */
    r = get_at(&s, e2e_todo_path(id), u.token);
    E2E_STATUS(r, 200);
    cr_assert(json_is_false(json_object_get(r->json, "completed")));
    e2e_resp_free(r);
    r = post_at(&s, "/api/v1/todos", u.token, "{\"title\":\"the writer is free again\"}");
    E2E_STATUS(r, 201);
    e2e_resp_free(r);
    pthread_join(lt, NULL);
    cr_assert_eq(lk.rc, 0, "psql failed to hold the lock");
}

/* ---- TLS ----------------------------------------------------------------------- */

Test(pg, tls_verify_full_is_ready_and_a_wrong_ca_is_not)
{
    static struct e2e_server good, bad; /* outlives the test body: the suite teardown stops it */
    struct e2e_user u;
    char url[1024];

    pg_only();
    struct cluster *c = cluster_start(true);
    snprintf(url, sizeof(url),
             "postgresql://postgres@localhost:%d/todo?sslmode=verify-full&sslrootcert=%s/certs/"
             "ca.crt",
             c->port, c->dir);
    server_start(&good, url, NULL);
    cr_assert(wait_ready(&good, 20000), "verify-full with the right CA is not ready");
    user_at(&good, &u);
    struct e2e_resp *r = post_at(&good, "/api/v1/todos", u.token, "{\"title\":\"over TLS\"}");
    E2E_STATUS(r, 201);
    e2e_resp_free(r);
    cr_assert_eq(psql(c, "SELECT 1 FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                          " WHERE a.application_name = 'todo' AND s.ssl HAVING count(*) > 0"),
                 0);

    snprintf(url, sizeof(url),
             "postgresql://postgres@localhost:%d/todo?sslmode=verify-full&sslrootcert=%s/certs/"
             "other-ca.crt",
             c->port, c->dir);
    server_start(&bad, url, NULL);
    r = get_at(&bad, "/readyz", NULL);
    check_503(r);
    e2e_resp_free(r);
    cr_assert(e2e_log_wait(bad.log, "certificate verify failed", 5000),
              "the log does not name the certificate problem");
    cr_assert(e2e_log_wait(bad.log, "sslrootcert", 1000), "no hint about sslrootcert");
}

/* ---- refused configurations ---------------------------------------------------- */

/* Run `todo serve` with `env`; it must exit 1 within 10 s, saying each of
 * the NULL-terminated needles (and never `secret`). */
static void refuses(const char *const *env, const char *secret, const char *const *needles)
{
    static const char *const args[] = {"serve", NULL};
    char *out = NULL;
    int st = e2e_run(args, env, &out, 10000);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: %s", e2e_status_text(st),
              out ? out : "");
    for (int i = 0; needles[i]; i++)
        cr_assert(strstr(out, needles[i]), "no \"%s\" in: %s", needles[i], out);
    cr_assert_null(strstr(out, secret), "the password leaked: %s", out);
    free(out);
}

Test(pg, production_refuses_postgres_without_tls)
{
    pg_only();
    static const char *const env[] = {
        "APP_ENV=production", "SECRET_KEY=" E2E_SECRET_KEY, "PORT=0",
        "DATABASE_URL=postgresql://todo:hunter22secret@db.example.com/todo?sslmode=prefer", NULL};
    static const char *const needles[] = {"DATABASE_URL", "TLS", "sslmode=require", NULL};
    refuses(env, "hunter22secret", needles);
}

Test(pg, production_refuses_a_short_secret_key)
{
    pg_only();
    static const char *const env[] = {
        "APP_ENV=production", "SECRET_KEY=too-short", "PORT=0",
        "DATABASE_URL=postgresql://todo:hunter22secret@db.example.com/todo?sslmode=require", NULL};
    static const char *const needles[] = {"SECRET_KEY", "32", "openssl rand", NULL};
    refuses(env, "too-short", needles);
}

Test(pg, unknown_url_parameters_are_refused_by_name)
{
    pg_only();
    static const char *const env[] = {
        "PORT=0",
        "DATABASE_URL=postgresql+asyncpg://todo:hunter22secret@db.example.com/todo"
        "?ssl=require&prepared_statement_cache_size=0",
        NULL};
    static const char *const needles[] = {"unknown query parameter",
                                          "\"prepared_statement_cache_size\"", NULL};
    refuses(env, "hunter22secret", needles);
}
