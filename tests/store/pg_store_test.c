/*
 * The PostgreSQL backend (store_pg.c) on a real server
 * (tests/store/pg_cluster.h): what the backend-neutral conformance suite
 * cannot show — migrations in PostgreSQL, values independent of session
 * settings, reads retried after a lost connection, killed backends under a
 * write load, a database that is down and comes back.
 *
 * The backend is driven through its vtable (store_backend_pg) and the
 * store.h wrappers, so these tests do not depend on the registry in store.c.
 */
#include <criterion/criterion.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "migrate/migrate.h"
#include "model/timefmt.h"
#include "model/uuid.h"
#include "pg_cluster.h"
#include "store/store_int.h"

#define T0 1800000000000LL
#define DEADLINE_MS 30000

static struct store S;
static h2o_loop_t *loop;
static struct store_worker *W;
static char dbname[64]; /* a database of this test's own, or "" */

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static PGconn *side_to(const char *url)
{
    PGconn *pg = PQconnectdb(url);

    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "side connection: %s", PQerrorMessage(pg));
    PQsetNoticeProcessor(pg, quiet, NULL);
    return pg;
}

static void side_exec(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);

    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

static char *side_text(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    char *v;

    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    cr_assert_eq(PQntuples(r), 1, "%s", sql);
    v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* The cluster's URL with another database name. */
static void url_for(const char *db, char *out, size_t outlen)
{
    const char *url = pg_cluster_url();
    const char *slash = strrchr(url, '/');

    snprintf(out, outlen, "%.*s/%s", (int)(slash - url), url, db);
}

/* A fresh database for this test (dropped in teardown); its URL. */
static void fresh_database(char *url, size_t urllen)
{
    PGconn *pg = side_to(pg_cluster_url());
    char sql[128];

    snprintf(dbname, sizeof(dbname), "t_%d_%lld", (int)getpid(), (long long)mono_ms());
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
    side_exec(pg, sql);
    PQfinish(pg);
    url_for(dbname, url, urllen);
}

static void open_store(const char *url)
{
    char err[512];

    S = (struct store){._be = &store_backend_pg};
    cr_assert_eq(store_backend_pg.open(&S, url, err, sizeof(err)), 0, "open: %s", err);
}

static int migrate(char *err, size_t errlen)
{
    struct migrate_db db;

    store_backend_pg.migrate_db(&S, &db);
    return migrate_up(&db, err, errlen);
}

static void attach(void)
{
    W = store_backend_pg.worker_attach(&S, loop);
    cr_assert_not_null(W);
}

static void setup(void)
{
    cr_assert(sodium_init() >= 0);
    dbname[0] = '\0';
    W = NULL;
    S._priv = NULL;
    loop = h2o_evloop_create();
}

static void teardown(void)
{
    if (W != NULL) {
        store_backend_pg.worker_detach(W);
        W = NULL;
    }
    if (S._priv != NULL)
        store_backend_pg.close(&S);
    h2o_evloop_run(loop, 0);
    h2o_evloop_destroy(loop);
    if (dbname[0] != '\0' && getenv("PG_CLUSTER_TEST_URL") != NULL) {
        PGconn *pg = PQconnectdb(getenv("PG_CLUSTER_TEST_URL"));
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
        PQclear(PQexec(pg, sql));
        PQfinish(pg);
    }
}

TestSuite(store_pg, .init = setup, .fini = teardown, .timeout = 120);

/* ---- completions -------------------------------------------------------- */

struct box {
    int calls;
    int status;
    char message[256];
    bool has_todo;
    struct todo todo; /* strings not kept */
    int64_t user_created_at;
    char title[64];
};

static void on_done(void *ctx, const struct store_result *res)
{
    struct box *b = ctx;

    b->calls++;
    b->status = res->status;
    snprintf(b->message, sizeof(b->message), "%s", res->message != NULL ? res->message : "");
    if (res->todo != NULL) {
        b->has_todo = true;
        b->todo = *res->todo;
        snprintf(b->title, sizeof(b->title), "%s", res->todo->title);
        b->todo.title = NULL;
        b->todo.description = NULL;
    }
    if (res->user != NULL)
        b->user_created_at = res->user->created_at_ms;
}

static void wait_for(const int *calls, int n, int64_t ms)
{
    int64_t end = mono_ms() + ms;

    while (*calls < n) {
        cr_assert_lt(mono_ms(), end, "timed out: %d of %d completions", *calls, n);
        h2o_evloop_run(loop, 10);
    }
}

/* Submit and wait: the status, or the submit's negative return. */
#define RUN(b, call)                                                                               \
    ({                                                                                             \
        int rc_ = (call);                                                                          \
        cr_assert_eq((b)->calls, 0, "done ran inside the submit call");                            \
        if (rc_ == 0)                                                                              \
            wait_for(&(b)->calls, 1, DEADLINE_MS);                                                 \
        rc_ == 0 ? (b)->status : rc_;                                                              \
    })

static void make_user(char id[UUID_STR_LEN + 1], int64_t now)
{
    char email[96];
    struct box b = {0};

    uuid_v7(timefmt_now_ms(), id);
    snprintf(email, sizeof(email), "u-%s@example.test", id);
    struct user_new u = {.id = id, .email = email, .password_hash = "$argon2id$x", .now_ms = now};
    cr_assert_eq(RUN(&b, store_user_create(W, &u, on_done, &b, NULL)), STORE_OK, "%s", b.message);
}

static int create_todo(const char *user, const char *id, const char *title, int64_t now,
                       struct box *b)
{
    char copy[64];
    struct todo_patch p = {.has_title = true, .has_description = true, .has_completed = true,
                           .completed = true, .title = copy};

    snprintf(copy, sizeof(copy), "%s", title);
    struct todo_write wr = {.user_id = user, .id = id, .patch = &p,
                            .if_match = STORE_IF_MATCH_NONE, .now_ms = now};
    return store_todo_create(W, &wr, on_done, b, NULL);
}

/* ---- migrations ---------------------------------------------------------- */

Test(store_pg, migrations_create_native_types_once)
{
    char url[512], err[512];
    size_t n = 0;
    int64_t version = -1;

    migrate_embedded("postgres", &n);
    cr_assert_gt(n, 0);
    fresh_database(url, sizeof(url));
    open_store(url);
    cr_assert_eq(store_backend_pg.schema_version(&S, &version), STORE_OK);
    cr_assert_eq(version, 0, "nothing applied yet");
    cr_assert_eq(migrate(err, sizeof(err)), (int)n, "%s", err);
    cr_assert_eq(store_backend_pg.schema_version(&S, &version), STORE_OK);
    cr_assert_eq(version, migrate_latest_version("postgres"));
    cr_assert_eq(migrate(err, sizeof(err)), 0, "a second run applies nothing: %s", err);

    PGconn *pg = side_to(url);
    static const char *const want[][2] = {
        {"id", "uuid"},
        {"user_id", "uuid"},
        {"title", "character varying"},
        {"description", "text"},
        {"completed", "boolean"},
        {"completed_at", "timestamp with time zone"},
        {"created_at", "timestamp with time zone"},
        {"version", "integer"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT data_type FROM information_schema.columns"
                 " WHERE table_name = 'todos' AND column_name = '%s'",
                 want[i][0]);
        char *type = side_text(pg, sql);
        cr_expect_str_eq(type, want[i][1], "todos.%s", want[i][0]);
        free(type);
    }
    char *checksum = side_text(pg, "SELECT checksum FROM schema_migrations WHERE version = 1");
    cr_assert_eq(strlen(checksum), 64);
    free(checksum);
    PQfinish(pg);
}

struct starter {
    const char *url;
    int applied;
    char err[512];
};

static void *start_one(void *arg)
{
    struct starter *st = arg;
    struct store s = {._be = &store_backend_pg};
    struct migrate_db db;

    if (store_backend_pg.open(&s, st->url, st->err, sizeof(st->err)) != 0) {
        st->applied = -2;
        return NULL;
    }
    store_backend_pg.migrate_db(&s, &db);
    st->applied = migrate_up(&db, st->err, sizeof(st->err));
    store_backend_pg.close(&s);
    return NULL;
}

Test(store_pg, concurrent_starters_apply_each_migration_once)
{
    char url[512];
    struct starter st[4];
    pthread_t th[4];
    size_t n = 0;
    int total = 0;

    migrate_embedded("postgres", &n);
    fresh_database(url, sizeof(url));
    for (int i = 0; i < 4; i++) {
        st[i] = (struct starter){.url = url};
        cr_assert_eq(pthread_create(&th[i], NULL, start_one, &st[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_geq(st[i].applied, 0, "starter %d: %s", i, st[i].err);
        total += st[i].applied;
    }
    cr_assert_eq(total, (int)n);
}

/* ---- values ------------------------------------------------------------ */

/* Timestamps and booleans come back exactly whatever the session's
 * TimeZone and DateStyle (set here as the database's defaults). */
Test(store_pg, values_do_not_depend_on_session_settings)
{
    char url[512], err[512], user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    static const int64_t times[] = {T0 + 123, -1, 0, 1, 253402300799999LL, -62135596800000LL};
    PGconn *pg;
    char sql[256];

    fresh_database(url, sizeof(url));
    pg = side_to(pg_cluster_url());
    snprintf(sql, sizeof(sql),
             "ALTER DATABASE %s SET timezone = 'Asia/Kathmandu'; ALTER DATABASE %s SET"
             " datestyle = 'SQL, DMY'",
             dbname, dbname);
    side_exec(pg, sql);
    PQfinish(pg);
    open_store(url);
    cr_assert_geq(migrate(err, sizeof(err)), 0, "%s", err);
    attach();
    make_user(user, T0);
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        struct box b = {0}, g = {0};
        uuid_v7(timefmt_now_ms(), id);
        cr_assert_eq(RUN(&b, create_todo(user, id, "t", times[i], &b)), STORE_OK, "%s",
                     b.message);
        cr_assert_eq(RUN(&g, store_todo_get(W, user, id, on_done, &g, NULL)), STORE_OK);
        cr_assert_eq(g.todo.created_at_ms, times[i], "time %zu", i);
        cr_assert_eq(g.todo.updated_at_ms, times[i]);
        cr_assert(g.todo.completed && g.todo.has_completed_at);
        cr_assert_eq(g.todo.completed_at_ms, times[i]);
    }
    /* And what the server stored is the UTC instant, not a local reading. */
    pg = side_to(url);
    snprintf(sql, sizeof(sql),
             "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')"
             " FROM todos WHERE user_id = '%s' ORDER BY created_at DESC LIMIT 1",
             user);
    char *text = side_text(pg, sql);
    cr_assert_str_eq(text, "9999-12-31T23:59:59.999");
    free(text);
    PQfinish(pg);
}

/* ---- pipelining and failures -------------------------------------------- */

static void open_default(void)
{
    char err[512];

    open_store(pg_cluster_url());
    cr_assert_geq(migrate(err, sizeof(err)), 0, "%s", err);
    attach();
}

Test(store_pg, many_reads_of_one_iteration_complete)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    enum { N = 500 };
    static struct box b[N];
    struct box c = {0};
    int done = 0;

    open_default();
    make_user(user, T0);
    uuid_v7(timefmt_now_ms(), id);
    cr_assert_eq(RUN(&c, create_todo(user, id, "shared", T0, &c)), STORE_OK);
    memset(b, 0, sizeof(b));
    for (int i = 0; i < N; i++)
        cr_assert_eq(store_todo_get(W, user, id, on_done, &b[i], NULL), 0);
    cr_assert_eq(store_worker_outstanding(W), N);
    int64_t end = mono_ms() + DEADLINE_MS;
    while (done < N) {
        cr_assert_lt(mono_ms(), end);
        h2o_evloop_run(loop, 10);
        done = 0;
        for (int i = 0; i < N; i++)
            done += b[i].calls;
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(b[i].calls, 1);
        cr_assert_eq(b[i].status, STORE_OK, "read %d: %s", i, b[i].message);
        cr_assert_str_eq(b[i].title, "shared");
    }
    cr_assert_eq(store_worker_outstanding(W), 0);
}

/* Kill every backend of this database except the caller's. */
static void kill_backends(void)
{
    PGconn *pg = side_to(pg_cluster_url());

    side_exec(pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                  " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                  " AND application_name = 'todo'");
    PQfinish(pg);
}

Test(store_pg, a_read_on_a_killed_connection_is_retried)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b = {0}, c = {0};

    open_default();
    make_user(user, T0);
    uuid_v7(timefmt_now_ms(), id);
    cr_assert_eq(RUN(&c, create_todo(user, id, "survives", T0, &c)), STORE_OK);
    kill_backends();
    usleep(50 * 1000);
    /* The loop has not seen the deaths yet: the read goes to a dead
     * connection, fails, and is retried on a new one. */
    cr_assert_eq(RUN(&b, store_todo_get(W, user, id, on_done, &b, NULL)), STORE_OK, "%s",
                 b.message);
    cr_assert_str_eq(b.title, "survives");
}

Test(store_pg, killed_backends_under_a_write_load)
{
    char user[UUID_STR_LEN + 1];
    enum { N = 600 };
    static struct box b[N];
    static char ids[N][UUID_STR_LEN + 1];
    int submitted = 0, completed = 0, ok = 0, unavailable = 0;
    bool killed = false;

    open_default();
    make_user(user, T0);
    memset(b, 0, sizeof(b));
    int64_t end = mono_ms() + DEADLINE_MS;
    while (completed < N) {
        cr_assert_lt(mono_ms(), end, "hung: %d of %d answered", completed, N);
        while (submitted < N && submitted - completed < 64) {
            uuid_v7(timefmt_now_ms(), ids[submitted]);
            int rc = create_todo(user, ids[submitted], "load", T0 + submitted, &b[submitted]);
            if (rc != 0) { /* the pool is down for a moment: answered at once */
                b[submitted].calls = 1;
                b[submitted].status = rc;
            }
            submitted++;
        }
        if (!killed && completed >= N / 3) {
            kill_backends();
            killed = true;
        }
        h2o_evloop_run(loop, 10);
        completed = 0;
        for (int i = 0; i < submitted; i++)
            completed += b[i].calls > 0;
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(b[i].calls, 1, "write %d answered %d times", i, b[i].calls);
        cr_assert(b[i].status == STORE_OK || b[i].status == STORE_UNAVAILABLE,
                  "write %d: %s (%s)", i, store_strerror(b[i].status), b[i].message);
        ok += b[i].status == STORE_OK;
        unavailable += b[i].status == STORE_UNAVAILABLE;
    }
    cr_assert_gt(ok, N / 3, "most writes succeed");
    /* Every acknowledged write is there. */
    for (int i = 0; i < N; i++) {
        if (b[i].status != STORE_OK)
            continue;
        struct box g = {0};
        cr_assert_eq(RUN(&g, store_todo_get(W, user, ids[i], on_done, &g, NULL)), STORE_OK,
                     "acknowledged write %d is missing", i);
    }
    /* And the store has recovered by itself. */
    struct box after = {0};
    char id[UUID_STR_LEN + 1];
    uuid_v7(timefmt_now_ms(), id);
    cr_assert_eq(RUN(&after, create_todo(user, id, "after", T0, &after)), STORE_OK, "%s",
                 after.message);
    fprintf(stderr, "store_pg: %d ok, %d unavailable after killing the backends\n", ok,
            unavailable);
}

Test(store_pg, database_down_then_up_without_reattaching)
{
    char user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box b = {0};
    int rc;

    if (!pg_cluster_owned())
        cr_skip_test("PG_TEST_URL names a server this test must not stop");
    open_default();
    make_user(user, T0);
    store_backend_pg.worker_detach(W);
    W = NULL;
    pg_cluster_halt();
    attach();
    /* Down: answered UNAVAILABLE quickly, never a hang. */
    int64_t started = mono_ms();
    rc = store_ping(W, on_done, &b, NULL);
    if (rc == 0) {
        wait_for(&b.calls, 1, 10000);
        rc = b.status;
    }
    cr_assert_eq(rc, STORE_UNAVAILABLE);
    cr_assert_lt(mono_ms() - started, 10000);
    pg_cluster_start();
    /* Up again: the same worker becomes ready by itself. */
    int64_t end = mono_ms() + DEADLINE_MS;
    for (;;) {
        struct box p = {0};
        rc = store_ping(W, on_done, &p, NULL);
        if (rc == 0) {
            wait_for(&p.calls, 1, DEADLINE_MS);
            rc = p.status;
        }
        if (rc == STORE_OK)
            break;
        cr_assert_lt(mono_ms(), end, "never became ready");
        for (int i = 0; i < 20; i++)
            h2o_evloop_run(loop, 10);
    }
    struct box c = {0};
    uuid_v7(timefmt_now_ms(), id);
    cr_assert_eq(RUN(&c, create_todo(user, id, "after restart", T0, &c)), STORE_OK, "%s",
                 c.message);
}

/* ---- start-up: open never needs the database ------------------------------ */

/* The backend's open with start-up migrations, as store_open_opts does it. */
static int open_migrating(const char *url, char *err, size_t errlen)
{
    S = (struct store){._be = &store_backend_pg, ._opts = {.migrate = true}};
    return store_backend_pg.open(&S, url, err, errlen);
}

/* store_ping's outcome: the submit's refusal or the completion's status. */
static int ping_now(char *message, size_t len)
{
    struct box p = {0};
    int rc = store_ping(W, on_done, &p, NULL);

    if (rc == 0) {
        wait_for(&p.calls, 1, DEADLINE_MS);
        rc = p.status;
    }
    if (message != NULL)
        snprintf(message, len, "%s", p.message);
    return rc;
}

Test(store_pg, open_with_the_database_down_then_ready_without_reopening)
{
    char url[512], err[512], msg[256], user[UUID_STR_LEN + 1];
    struct box g = {0};

    if (!pg_cluster_owned())
        cr_skip_test("PG_TEST_URL names a server this test must not stop");
    fresh_database(url, sizeof(url));
    pg_cluster_halt();
    int64_t started = mono_ms();
    cr_assert_eq(open_migrating(url, err, sizeof(err)), 0, "open failed: %s", err);
    cr_assert_lt(mono_ms() - started, 3000, "open waited for an unreachable database");
    attach();
    /* Not ready, and requests are refused at once, not left hanging. */
    cr_assert_eq(ping_now(NULL, 0), STORE_UNAVAILABLE);
    int rc = store_todo_get(W, "0190f1f0-0000-7000-8000-000000000001",
                            "0190f1f0-0000-7000-8000-000000000002", on_done, &g, NULL);
    if (rc == 0) {
        wait_for(&g.calls, 1, DEADLINE_MS);
        rc = g.status;
    }
    cr_assert_eq(rc, STORE_UNAVAILABLE);
    /* The database comes up: migrations are applied and the same store
     * becomes ready by itself. */
    pg_cluster_start();
    int64_t end = mono_ms() + DEADLINE_MS;
    while ((rc = ping_now(msg, sizeof(msg))) != STORE_OK) {
        cr_assert_lt(mono_ms(), end, "never became ready: %s", msg);
        for (int i = 0; i < 10; i++)
            h2o_evloop_run(loop, 10);
    }
    int64_t version = 0;
    cr_assert_eq(store_backend_pg.schema_version(&S, &version), STORE_OK);
    cr_assert_eq(version, migrate_latest_version("postgres"));
    make_user(user, T0);
}

Test(store_pg, a_reachable_database_is_migrated_before_open_returns)
{
    char url[512], err[512];
    int64_t version = 0;

    fresh_database(url, sizeof(url));
    cr_assert_eq(open_migrating(url, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(store_backend_pg.schema_version(&S, &version), STORE_OK);
    cr_assert_eq(version, migrate_latest_version("postgres"));
    attach();
    cr_assert_eq(ping_now(NULL, 0), STORE_OK);
}

Test(store_pg, ping_says_when_the_schema_is_missing)
{
    char url[512], msg[256];

    fresh_database(url, sizeof(url));
    open_store(url); /* no migrations asked for */
    attach();
    int64_t end = mono_ms() + DEADLINE_MS;
    int rc;
    /* UNAVAILABLE while the pool connects, then because of the schema. */
    while ((rc = ping_now(msg, sizeof(msg))) == STORE_UNAVAILABLE && strstr(msg, "schema") == NULL)
        cr_assert_lt(mono_ms(), end, "%s", msg);
    cr_assert_eq(rc, STORE_UNAVAILABLE);
    cr_assert(strstr(msg, "no schema"), "%s", msg);
}

Test(store_pg, a_failing_migration_at_start_is_fatal)
{
    char url[512], err[512];
    PGconn *pg;

    fresh_database(url, sizeof(url));
    pg = side_to(url);
    side_exec(pg, "CREATE TABLE users (x integer)"); /* 0001 cannot create it */
    PQfinish(pg);
    cr_assert_eq(open_migrating(url, err, sizeof(err)), -1);
    cr_assert(strstr(err, "already exists"), "%s", err);
    cr_assert_null(S._priv, "nothing left open");
}

Test(store_pg, a_url_that_can_never_work_fails_at_open)
{
    static const struct {
        const char *url, *needle;
    } bad[] = {
        {"postgresql://u:hunter22@[::1/todo", "malformed"},
        {"postgresql://u:hunter22@h/todo?sslmode=bogus", "sslmode"},
        {"postgresql://u:hunter22@h/todo?sslmde=require", "\"sslmde\""},
        {"postgresql://u:hunter22@h/todo?ssl=require&sslmode=disable", "disagree"},
    };
    char err[512];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t started = mono_ms();
        struct store *s = store_open(bad[i].url, true, err, sizeof(err));
        cr_assert_null(s, "%s opened", bad[i].url);
        cr_assert(strstr(err, bad[i].needle), "%s: %s", bad[i].url, err);
        cr_assert_null(strstr(err, "hunter22"), "password in: %s", err);
        cr_assert_lt(mono_ms() - started, 1000, "%s: it tried to connect", bad[i].url);
    }
}

/* ---- pool settings ----------------------------------------------------- */

static int count_backends(const char *db)
{
    PGconn *pg = side_to(pg_cluster_url());
    char sql[256];

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'"
             " AND application_name = 'todo'",
             db);
    char *n = side_text(pg, sql);
    int count = (int)strtol(n, NULL, 10);
    free(n);
    PQfinish(pg);
    return count;
}

Test(store_pg, pool_size_is_shared_out_among_workers)
{
    char url[512], err[512];

    fresh_database(url, sizeof(url));
    S = (struct store){._be = &store_backend_pg,
                       ._opts = {.migrate = true, .workers = 2, .pool_size = 5}};
    cr_assert_eq(store_backend_pg.open(&S, url, err, sizeof(err)), 0, "%s", err);
    attach(); /* one worker of two: its share is 3 = 1 reader + 2 writers */
    cr_assert_eq(ping_now(NULL, 0), STORE_OK);
    int64_t end = mono_ms() + DEADLINE_MS;
    int n;
    while ((n = count_backends(dbname)) != 3) {
        cr_assert_lt(mono_ms(), end, "%d backends, expected 3", n);
        for (int i = 0; i < 10; i++)
            h2o_evloop_run(loop, 10);
    }
}

struct locker {
    const char *url;
    char sql[512]; /* run after BEGIN, then hold_ms, then ROLLBACK */
    int hold_ms;
    bool locked;
};

/* Run l->sql in a transaction of a side connection and keep it open for
 * hold_ms (its locks held), then roll back. */
static void *hold_lock(void *arg)
{
    struct locker *l = arg;
    PGconn *pg = PQconnectdb(l->url);

    PQclear(PQexec(pg, "BEGIN"));
    PQclear(PQexec(pg, l->sql));
    __atomic_store_n(&l->locked, true, __ATOMIC_SEQ_CST);
    usleep((useconds_t)l->hold_ms * 1000);
    PQclear(PQexec(pg, "ROLLBACK"));
    PQfinish(pg);
    return NULL;
}

static void start_locker(struct locker *l, pthread_t *th)
{
    cr_assert_eq(pthread_create(th, NULL, hold_lock, l), 0);
    while (!__atomic_load_n(&l->locked, __ATOMIC_SEQ_CST))
        usleep(1000);
}

/* One writer, no overflow, a 400 ms wait at most; up and migrated. */
static void open_one_writer(char *url, size_t urllen)
{
    char err[512];

    fresh_database(url, urllen);
    S = (struct store){._be = &store_backend_pg,
                       ._opts = {.migrate = true, .workers = 1, .pool_size = 2,
                                 .pool_timeout_ms = 400}};
    cr_assert_eq(store_backend_pg.open(&S, url, err, sizeof(err)), 0, "%s", err);
    attach();
    /* Up first (this also brings the loop's clock, which the pool's
     * deadlines use, past the time the migrations took). */
    int64_t end = mono_ms() + DEADLINE_MS;
    while (ping_now(NULL, 0) != STORE_OK) {
        cr_assert_lt(mono_ms(), end, "never ready");
        h2o_evloop_run(loop, 10);
    }
}

Test(store_pg, a_request_that_cannot_get_a_connection_in_time_is_unavailable)
{
    char url[512], user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1], other[UUID_STR_LEN + 1];
    struct box held = {0}, late = {0};
    pthread_t th;

    open_one_writer(url, sizeof(url));
    make_user(user, T0);
    /* A side transaction inserts an email and keeps it uncommitted: a user
     * insert of the same email waits on the unique index (an autocommit
     * statement, no statement timeout), holding the only writer. */
    struct locker l = {.url = url, .hold_ms = 1500};
    snprintf(l.sql, sizeof(l.sql),
             "INSERT INTO users (id, email, password_hash, is_active, created_at, updated_at)"
             " VALUES (gen_random_uuid(), 'dup@example.test', 'x', true, now(), now())");
    start_locker(&l, &th);
    uuid_v7(timefmt_now_ms(), other);
    struct user_new nu = {.id = other, .email = "dup@example.test", .password_hash = "$x",
                          .now_ms = T0};
    cr_assert_eq(store_user_create(W, &nu, on_done, &held, NULL), 0);
    for (int i = 0; i < 10; i++)
        h2o_evloop_run(loop, 10);
    /* This write gets no connection within the timeout. */
    uuid_v7(timefmt_now_ms(), id);
    int64_t started = mono_ms();
    cr_assert_eq(RUN(&late, create_todo(user, id, "late", T0, &late)), STORE_UNAVAILABLE);
    int64_t waited = mono_ms() - started;
    cr_assert_geq(waited, 350, "answered after %lld ms", (long long)waited);
    cr_assert_lt(waited, 1200, "answered after %lld ms", (long long)waited);
    cr_assert(strstr(late.message, "timed out"), "%s", late.message);
    /* The side transaction rolls back: the held insert then succeeds. */
    wait_for(&held.calls, 1, DEADLINE_MS);
    cr_assert_eq(held.status, STORE_OK, "%s", held.message);
    pthread_join(th, NULL);
}

Test(store_pg, a_write_waiting_on_a_row_lock_ends_at_the_statement_timeout)
{
    char url[512], user[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct box c = {0}, held = {0}, again = {0}, g = {0};
    struct todo_patch p = {.has_completed = true, .completed = false};
    pthread_t th;

    open_one_writer(url, sizeof(url));
    make_user(user, T0);
    uuid_v7(timefmt_now_ms(), id);
    cr_assert_eq(RUN(&c, create_todo(user, id, "locked", T0, &c)), STORE_OK);
    struct locker l = {.url = url, .hold_ms = 2000};
    snprintf(l.sql, sizeof(l.sql), "SELECT 1 FROM todos WHERE id = '%s' FOR UPDATE", id);
    start_locker(&l, &th);
    /* The PATCH waits on the row lock no longer than its transaction's
     * statement timeout (the pool timeout, 400 ms), long before the side
     * session lets go (2 s). */
    struct todo_write wr = {.user_id = user, .id = id, .patch = &p,
                            .if_match = STORE_IF_MATCH_NONE, .now_ms = T0 + 1};
    int64_t started = mono_ms();
    cr_assert_eq(RUN(&held, store_todo_patch(W, &wr, on_done, &held, NULL)), STORE_UNAVAILABLE);
    int64_t waited = mono_ms() - started;
    cr_assert(strstr(held.message, "statement timeout"), "%s", held.message);
    cr_assert_geq(waited, 350, "answered after %lld ms", (long long)waited);
    cr_assert_lt(waited, 1500, "answered after %lld ms", (long long)waited);
    /* Nothing was written, and the writer is usable again. */
    cr_assert_eq(RUN(&g, store_todo_get(W, user, id, on_done, &g, NULL)), STORE_OK);
    cr_assert(g.todo.completed, "the timed-out PATCH was applied");
    cr_assert_eq(g.todo.version, 1);
    pthread_join(th, NULL);
    cr_assert_eq(RUN(&again, store_todo_patch(W, &wr, on_done, &again, NULL)), STORE_OK, "%s",
                 again.message);
    cr_assert(again.has_todo && !again.todo.completed && again.todo.version == 2);
}

/* ---- group commit of creates ---------------------------------------------- */

static void wait_all(struct box *b, int n)
{
    int64_t end = mono_ms() + DEADLINE_MS;
    int done;

    do {
        cr_assert_lt(mono_ms(), end, "creates never all answered");
        h2o_evloop_run(loop, 10);
        done = 0;
        for (int i = 0; i < n; i++)
            done += b[i].calls;
    } while (done < n);
}

/* How many transactions wrote the user's todos (their distinct xmin). */
static long writing_transactions(const char *user)
{
    PGconn *pg = side_to(pg_cluster_url());
    char sql[192];

    snprintf(sql, sizeof(sql),
             "SELECT count(DISTINCT xmin::text) FROM todos WHERE user_id = '%s'", user);
    char *n = side_text(pg, sql);
    long v = strtol(n, NULL, 10);
    free(n);
    PQfinish(pg);
    return v;
}

Test(store_pg, creates_of_one_iteration_share_one_commit)
{
    char user[UUID_STR_LEN + 1];
    enum { N = 100 };
    static struct box b[N];
    static char ids[N][UUID_STR_LEN + 1];

    open_default();
    make_user(user, T0);
    memset(b, 0, sizeof(b));
    for (int i = 0; i < N; i++) {
        uuid_v7(timefmt_now_ms(), ids[i]);
        cr_assert_eq(create_todo(user, ids[i], "grouped", T0 + i, &b[i]), 0);
        cr_assert_eq(b[i].calls, 0, "done ran inside the submit call");
    }
    wait_all(b, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(b[i].calls, 1);
        cr_assert_eq(b[i].status, STORE_OK, "create %d: %s", i, b[i].message);
        cr_assert(b[i].has_todo && b[i].todo.version == 1);
        cr_assert_str_eq(b[i].todo.id, ids[i]);
    }
    long xacts = writing_transactions(user);
    cr_assert_leq(xacts, 2, "%ld transactions for %d creates submitted together", xacts, N);
    cr_assert_eq(store_worker_outstanding(W), 0);
}

Test(store_pg, a_failing_create_never_fails_the_others_of_its_batch)
{
    char user[UUID_STR_LEN + 1], nobody[UUID_STR_LEN + 1], taken[UUID_STR_LEN + 1];
    char twice[UUID_STR_LEN + 1];
    enum { N = 24 };
    static struct box b[N];
    static char ids[N][UUID_STR_LEN + 1];
    struct box first = {0};

    open_default();
    make_user(user, T0);
    uuid_v7(timefmt_now_ms(), nobody); /* no such user: a foreign key error */
    uuid_v7(timefmt_now_ms(), taken);
    cr_assert_eq(RUN(&first, create_todo(user, taken, "first", T0, &first)), STORE_OK);
    uuid_v7(timefmt_now_ms(), twice);
    memset(b, 0, sizeof(b));
    /* One iteration: 20 ordinary creates; one for a user that does not
     * exist (an error: the whole batch rolls back, then runs op by op); one
     * of an id already taken; the same new id twice. */
    for (int i = 0; i < N; i++) {
        const char *owner = i == 7 ? nobody : user;
        if (i == 3)
            memcpy(ids[i], taken, sizeof(taken));
        else if (i == 11 || i == 12)
            memcpy(ids[i], twice, sizeof(twice));
        else
            uuid_v7(timefmt_now_ms(), ids[i]);
        cr_assert_eq(create_todo(owner, ids[i], "mixed", T0 + i, &b[i]), 0);
    }
    wait_all(b, N);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(b[i].calls, 1, "create %d answered %d times", i, b[i].calls);
        if (i == 7)
            cr_assert_eq(b[i].status, STORE_INVALID, "%s", store_strerror(b[i].status));
        else if (i == 3)
            cr_assert_eq(b[i].status, STORE_CONFLICT, "%s", store_strerror(b[i].status));
        else if (i != 11 && i != 12)
            cr_assert_eq(b[i].status, STORE_OK, "create %d: %s", i, b[i].message);
        ok += b[i].status == STORE_OK;
    }
    /* Exactly one of the two creates of one id wins. */
    cr_assert_eq((b[11].status == STORE_OK) + (b[12].status == STORE_OK), 1);
    cr_assert_eq((b[11].status == STORE_CONFLICT) + (b[12].status == STORE_CONFLICT), 1);
    /* What was acknowledged is there, and nothing else. */
    PGconn *pg = side_to(pg_cluster_url());
    char sql[192];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM todos WHERE user_id = '%s'", user);
    char *n = side_text(pg, sql);
    cr_assert_eq(strtol(n, NULL, 10), ok + 1, "%s rows for %d acknowledged creates + 1", n, ok);
    free(n);
    snprintf(sql, sizeof(sql), "SELECT title FROM todos WHERE id = '%s'", taken);
    n = side_text(pg, sql);
    cr_assert_str_eq(n, "first", "the conflicting create changed the existing todo");
    free(n);
    PQfinish(pg);
    cr_assert_eq(store_worker_outstanding(W), 0);
}

Test(store_pg, cancelled_creates_in_a_batch_never_complete)
{
    char user[UUID_STR_LEN + 1];
    enum { N = 40 };
    static struct box b[N];
    static char ids[N][UUID_STR_LEN + 1];
    static struct store_op *ops[N];

    open_default();
    make_user(user, T0);
    memset(b, 0, sizeof(b));
    for (int i = 0; i < N; i++) {
        char copy[16] = "cancelled";
        struct todo_patch p = {.has_title = true, .title = copy};
        uuid_v7(timefmt_now_ms(), ids[i]);
        struct todo_write wr = {.user_id = user, .id = ids[i], .patch = &p,
                                .if_match = STORE_IF_MATCH_NONE, .now_ms = T0};
        cr_assert_eq(store_todo_create(W, &wr, on_done, &b[i], &ops[i]), 0);
        if (i % 2 == 0)
            store_op_cancel(W, ops[i]); /* still queued: never sent */
    }
    h2o_evloop_run(loop, 0); /* the batch goes out */
    for (int i = 1; i < N; i += 4)
        store_op_cancel(W, ops[i]); /* in flight: may commit, done never runs */
    int64_t end = mono_ms() + DEADLINE_MS;
    while (store_worker_outstanding(W) > 0) {
        cr_assert_lt(mono_ms(), end, "%zu operations never ended", store_worker_outstanding(W));
        h2o_evloop_run(loop, 10);
    }
    PGconn *pg = side_to(pg_cluster_url());
    for (int i = 0; i < N; i++) {
        bool cancelled = i % 2 == 0 || i % 4 == 1;
        cr_assert_eq(b[i].calls, cancelled ? 0 : 1, "create %d: %d calls", i, b[i].calls);
        if (!cancelled)
            cr_assert_eq(b[i].status, STORE_OK, "%s", b[i].message);
        if (i % 2 == 0) {
            char sql[128];
            snprintf(sql, sizeof(sql), "SELECT count(*) FROM todos WHERE id = '%.36s'", ids[i]);
            char *n = side_text(pg, sql);
            cr_assert_str_eq(n, "0", "a create cancelled before it was sent was written");
            free(n);
        }
    }
    PQfinish(pg);
}

/* One value of the todo `id` as text, by a side connection ("(null)" for
 * SQL NULL, which no value below is). */
static char *todo_value(PGconn *pg, const char *id, const char *expr)
{
    char sql[640];
    int n = snprintf(sql, sizeof(sql),
                     "SELECT coalesce((%s)::text, '(null)') FROM todos WHERE id = '%.36s'", expr,
                     id);

    cr_assert(n > 0 && (size_t)n < sizeof(sql));
    return side_text(pg, sql);
}

Test(store_pg, a_batch_writes_every_value_as_given_and_each_id_once)
{
    /* Everything special in an array literal, and in SQL. */
    static const char *const texts[] = {
        "plain", "with \"quotes\"", "back\\slash \\\" \\\\", "{braces},commas", "NULL",
        " spaced ", "ünïcødé ✓", "tab\there", "new\nline", "'single' quotes; --",
    };
    enum { NT = sizeof(texts) / sizeof(texts[0]), N = NT + 4 };
    static struct box b[N];
    static char ids[N][UUID_STR_LEN + 1];
    char user[UUID_STR_LEN + 1], taken[UUID_STR_LEN + 1], twice[UUID_STR_LEN + 1];
    struct box first = {0};

    open_default();
    make_user(user, T0);
    uuid_v7(timefmt_now_ms(), taken);
    cr_assert_eq(RUN(&first, create_todo(user, taken, "first", T0, &first)), STORE_OK);
    uuid_v7(timefmt_now_ms(), twice);
    memset(b, 0, sizeof(b));
    /* One iteration, no error: NT creates with odd texts (title i,
     * description the next one, or NULL / "" for two of them), an id
     * already taken, the same new id twice, then an uppercase spelling of it. */
    for (int i = 0; i < N; i++) {
        char title[64], desc[64];
        struct todo_patch p = {.has_title = true, .has_description = true,
                               .has_completed = true, .completed = i % 2 == 0, .title = title,
                               .description = desc};
        snprintf(title, sizeof(title), "%s", i < NT ? texts[i] : "dup");
        snprintf(desc, sizeof(desc), "%s", texts[(i + 1) % NT]);
        if (i == 2)
            p.description = NULL;
        if (i == 3)
            desc[0] = '\0';
        if (i == NT)
            memcpy(ids[i], taken, sizeof(taken));
        else if (i > NT)
            memcpy(ids[i], twice, sizeof(twice));
        else
            uuid_v7(timefmt_now_ms(), ids[i]);
        if (i == N - 1)
            for (char *c = ids[i]; *c; c++)
                *c = (char)(*c >= 'a' && *c <= 'f' ? *c - 'a' + 'A' : *c);
        struct todo_write wr = {.user_id = user, .id = ids[i], .patch = &p,
                                .if_match = STORE_IF_MATCH_NONE, .now_ms = T0 + i};
        cr_assert_eq(store_todo_create(W, &wr, on_done, &b[i], NULL), 0);
    }
    wait_all(b, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(b[i].calls, 1, "create %d answered %d times", i, b[i].calls);
        if (i == NT || i >= NT + 2) {
            cr_assert_eq(b[i].status, STORE_CONFLICT, "create %d: %s", i,
                         store_strerror(b[i].status));
            cr_assert(!b[i].has_todo);
        } else {
            /* The first create of the id twice wins, in submission order. */
            cr_assert_eq(b[i].status, STORE_OK, "create %d: %s", i, b[i].message);
            cr_assert(b[i].has_todo && b[i].todo.version == 1);
        }
    }
    cr_assert_eq(writing_transactions(user), 2, "the batch was not one transaction");
    PGconn *pg = side_to(pg_cluster_url());
    for (int i = 0; i <= NT; i++) {
        char *v = todo_value(pg, ids[i], "title");
        cr_assert_str_eq(v, i < NT ? texts[i] : "first", "create %d", i);
        free(v);
        if (i == NT)
            break;
        v = todo_value(pg, ids[i], "description");
        cr_assert_str_eq(v, i == 2 ? "(null)" : i == 3 ? "" : texts[(i + 1) % NT], "create %d", i);
        free(v);
        v = todo_value(pg, ids[i], "(extract(epoch FROM created_at) * 1000)::bigint");
        cr_assert_eq(strtoll(v, NULL, 10), T0 + i, "create %d: created_at %s", i, v);
        free(v);
        v = todo_value(pg, ids[i], "completed_at IS NOT NULL AND completed = true");
        cr_assert_str_eq(v, i % 2 == 0 ? "true" : "false", "create %d", i);
        free(v);
    }
    char *v =
        todo_value(pg, twice, "title || ' ' || (extract(epoch FROM created_at) * 1000)::bigint");
    char want[64];
    snprintf(want, sizeof(want), "dup %lld", (long long)(T0 + NT + 1));
    cr_assert_str_eq(v, want, "the second create of one id was written");
    free(v);
    PQfinish(pg);
    cr_assert_eq(store_worker_outstanding(W), 0);
}
