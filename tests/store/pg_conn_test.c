/*
 * store/pg_conn against a real PostgreSQL server (tests/store/pg_cluster.h).
 *
 * Every test drives its own h2o evloop until a condition holds or a
 * deadline passes (a hang is a failure, not a stuck run).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pg_cluster.h"
#include "store/pg_conn.h"

#define DEADLINE_MS 15000

/* ---- per test ----------------------------------------------------------- */

static h2o_loop_t *loop;
static h2o_timeout_t zero;
static const char *url;
static int ready_calls, broken_calls;
static bool in_call; /* set around pg_conn_send/sync: no callback may see it */
static int cb_inside_call;

static void setup(void)
{
    url = pg_cluster_url();
    loop = h2o_evloop_create();
    h2o_timeout_init(loop, &zero, 0);
    ready_calls = broken_calls = cb_inside_call = 0;
    in_call = false;
}

static void teardown(void)
{
    if (loop == NULL)
        return;
    /* Let closed sockets be released before the loop goes. */
    h2o_evloop_run(loop, 0);
    h2o_timeout_dispose(loop, &zero);
    h2o_evloop_destroy(loop);
    loop = NULL;
}

TestSuite(pg_conn, .init = setup, .fini = teardown, .timeout = 60);

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the loop until *flag is true; fail after DEADLINE_MS. */
static void run_until(const bool *flag, const char *what)
{
    int64_t end = mono_ms() + DEADLINE_MS;

    while (!*flag) {
        cr_assert_lt(mono_ms(), end, "timed out waiting for %s", what);
        h2o_evloop_run(loop, 10);
    }
}

static void on_state(struct pg_conn *c, void *data)
{
    bool *flag = data;

    if (in_call)
        cb_inside_call++;
    if (pg_conn_state(c) == PG_CONN_BROKEN)
        broken_calls++;
    else
        ready_calls++;
    if (flag != NULL)
        *flag = true;
}

static struct pg_conn *open_conn_with(const char *conninfo, bool prepared, bool *flag)
{
    struct pg_conn_options o = {
        .conninfo = conninfo,
        .prepared = prepared,
        .zero_timeout = &zero,
        .on_state = on_state,
        .data = flag,
    };
    return pg_conn_new(loop, &o);
}

static bool state_changed;

/* A ready connection to the test database. */
static struct pg_conn *connect_ok(bool prepared)
{
    struct pg_conn *c;

    state_changed = false;
    c = open_conn_with(url, prepared, &state_changed);
    cr_assert_neq(pg_conn_state(c), PG_CONN_BROKEN, "connect: %s", pg_conn_error(c));
    run_until(&state_changed, "the connection");
    cr_assert_eq(pg_conn_state(c), PG_CONN_IDLE, "connect: %s", pg_conn_error(c));
    cr_assert_eq(ready_calls, 1);
    return c;
}

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* A blocking side connection, for setting up and checking from outside. */
static PGconn *side(void)
{
    PGconn *pg = PQconnectdb(url);

    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "side connection: %s", PQerrorMessage(pg));
    PQsetNoticeProcessor(pg, quiet, NULL);
    return pg;
}

static void side_exec(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);

    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
              PQresultErrorMessage(r));
    PQclear(r);
}

static long side_long(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    long v;

    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

/* ---- a recording query --------------------------------------------------- */

struct rec {
    struct pg_query q;
    bool done;
    bool got_null;
    ExecStatusType status;
    char value[128];
    char sqlstate[6];
    int order; /* 1-based arrival order */
};

static int arrivals;

static void on_rec(struct pg_query *q, const PGresult *res)
{
    struct rec *r = H2O_STRUCT_FROM_MEMBER(struct rec, q, q);

    if (in_call)
        cb_inside_call++;
    cr_assert(!r->done, "a query callback ran twice");
    r->done = true;
    r->order = ++arrivals;
    r->got_null = res == NULL;
    if (res == NULL)
        return;
    r->status = PQresultStatus(res);
    const char *ss = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", ss != NULL ? ss : "");
    if (r->status == PGRES_TUPLES_OK && PQntuples(res) > 0)
        snprintf(r->value, sizeof(r->value), "%s", PQgetvalue(res, 0, 0));
}

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    r->q.cb = on_rec;
}

static const struct pg_stmt ECHO = {
    .id = 0, .name = "t_echo", .sql = "SELECT $1::int + 0", .nparams = 1};
static const struct pg_stmt DIV = {
    .id = 1, .name = "t_div", .sql = "SELECT 1 / $1::int", .nparams = 1};
static const struct pg_stmt SLEEP = {
    .id = 2, .name = "t_sleep", .sql = "SELECT pg_sleep($1::float8)", .nparams = 1};
static const struct pg_stmt INSERT_T = {
    .id = 3, .name = "t_insert", .sql = "INSERT INTO pgc_t (a) VALUES ($1::int)", .nparams = 1};
static const struct pg_stmt LENGTH = {
    .id = 4, .name = "t_length", .sql = "SELECT length($1::text)", .nparams = 1};
static const struct pg_stmt PID = {
    .id = 5, .name = "t_pid", .sql = "SELECT pg_backend_pid()", .nparams = 0};

static void send_ok(struct pg_conn *c, const struct pg_stmt *st, const char *arg, struct rec *r)
{
    const char *values[1] = {arg};

    rec_init(r);
    in_call = true;
    int rc = pg_conn_send(c, st, values, &r->q);
    in_call = false;
    cr_assert_eq(rc, 0, "send %s: %s", st->name, pg_conn_error(c));
}

static void sync_ok(struct pg_conn *c, struct rec *r)
{
    if (r != NULL)
        rec_init(r);
    in_call = true;
    int rc = pg_conn_sync(c, r != NULL ? &r->q : NULL);
    in_call = false;
    cr_assert_eq(rc, 0, "sync: %s", pg_conn_error(c));
}

/* ---- tests --------------------------------------------------------------- */

Test(pg_conn, connects_without_blocking_and_reports_ready_once)
{
    struct pg_conn *c = connect_ok(true);

    cr_assert_gt(PQbackendPID(pg_conn_pgconn(c)), 0);
    cr_assert_eq(PQpipelineStatus(pg_conn_pgconn(c)), PQ_PIPELINE_ON);
    cr_assert_eq(PQisnonblocking(pg_conn_pgconn(c)), 1);
    cr_assert(pg_conn_is_idle(c));
    struct rec pid;
    send_ok(c, &PID, NULL, &pid);
    pg_conn_sync_later(c);
    run_until(&pid.done, "pg_backend_pid()");
    cr_assert_eq(strtol(pid.value, NULL, 10), PQbackendPID(pg_conn_pgconn(c)));
    for (int i = 0; i < 5; i++)
        h2o_evloop_run(loop, 1);
    cr_assert_eq(ready_calls, 1);
    cr_assert_eq(broken_calls, 0);
    pg_conn_free(c);
}

Test(pg_conn, pipelined_queries_share_one_sync_and_answer_in_order)
{
    struct pg_conn *c = connect_ok(true);
    enum { N = 200 };
    static struct rec recs[N];
    char arg[16];

    arrivals = 0;
    for (int i = 0; i < N; i++) {
        snprintf(arg, sizeof(arg), "%d", i * 7);
        send_ok(c, &ECHO, arg, &recs[i]);
    }
    pg_conn_sync_later(c);
    cr_assert_eq(pg_conn_pending(c), N + 1, "the sync is queued later, by the loop");
    run_until(&recs[N - 1].done, "the last result");
    for (int i = 0; i < N; i++) {
        snprintf(arg, sizeof(arg), "%d", i * 7);
        cr_assert_eq(recs[i].status, PGRES_TUPLES_OK, "query %d", i);
        cr_assert_str_eq(recs[i].value, arg);
        cr_assert_eq(recs[i].order, i + 1, "results arrive in the order sent");
    }
    while (pg_conn_pending(c) > 0)
        h2o_evloop_run(loop, 10);
    cr_assert(pg_conn_is_idle(c));
    cr_assert_eq(cb_inside_call, 0, "a callback ran inside send/sync");
    pg_conn_free(c);
}

Test(pg_conn, an_error_aborts_the_rest_of_its_batch_only)
{
    struct pg_conn *c = connect_ok(true);
    struct rec ok1, bad, aborted, s1, after;

    send_ok(c, &ECHO, "1", &ok1);
    send_ok(c, &DIV, "0", &bad);
    send_ok(c, &ECHO, "3", &aborted);
    sync_ok(c, &s1);
    run_until(&s1.done, "the sync");
    cr_assert_eq(ok1.status, PGRES_TUPLES_OK);
    cr_assert_eq(bad.status, PGRES_FATAL_ERROR);
    cr_assert_str_eq(bad.sqlstate, "22012", "division_by_zero");
    cr_assert_eq(aborted.status, PGRES_PIPELINE_ABORTED);
    cr_assert_eq(s1.status, PGRES_PIPELINE_SYNC);
    /* The next batch runs normally on the same connection. */
    send_ok(c, &ECHO, "4", &after);
    pg_conn_sync_later(c);
    run_until(&after.done, "the next batch");
    cr_assert_eq(after.status, PGRES_TUPLES_OK);
    cr_assert_str_eq(after.value, "4");
    pg_conn_free(c);
}

/* pg_prepared_statements is per session: ask through the connection itself. */
static long prepared_here(struct pg_conn *c, const char *name)
{
    static const struct pg_stmt COUNT = {
        .id = 6,
        .name = "t_count_prepared",
        .sql = "SELECT count(*) FROM pg_prepared_statements WHERE name = $1",
        .nparams = 1};
    struct rec r;

    send_ok(c, &COUNT, name, &r);
    pg_conn_sync_later(c);
    run_until(&r.done, "pg_prepared_statements");
    cr_assert_eq(r.status, PGRES_TUPLES_OK);
    return strtol(r.value, NULL, 10);
}

Test(pg_conn, prepared_statements_are_named_and_cached_when_on)
{
    struct pg_conn *c = connect_ok(true);
    struct rec a, b;

    send_ok(c, &ECHO, "5", &a);
    send_ok(c, &ECHO, "6", &b); /* same batch: prepared once */
    pg_conn_sync_later(c);
    run_until(&b.done, "two echoes");
    cr_assert_str_eq(a.value, "5");
    cr_assert_str_eq(b.value, "6");
    cr_assert_eq(prepared_here(c, "t_echo"), 1);
    send_ok(c, &ECHO, "7", &a); /* later batch: reuses it (a second PREPARE would fail) */
    pg_conn_sync_later(c);
    run_until(&a.done, "a third echo");
    cr_assert_eq(a.status, PGRES_TUPLES_OK, "%s", a.sqlstate);
    cr_assert_str_eq(a.value, "7");
    pg_conn_free(c);
}

Test(pg_conn, unnamed_statements_only_when_prepared_is_off)
{
    struct pg_conn *c = connect_ok(false);
    struct rec a;

    send_ok(c, &ECHO, "8", &a);
    pg_conn_sync_later(c);
    run_until(&a.done, "an echo");
    cr_assert_str_eq(a.value, "8");
    cr_assert_eq(prepared_here(c, "t_echo"), 0);
    cr_assert_eq(prepared_here(c, "t_count_prepared"), 0);
    pg_conn_free(c);
}

Test(pg_conn, a_write_is_committed_when_its_sync_answers)
{
    PGconn *pg = side();
    struct pg_conn *c;
    struct rec ins, s;

    side_exec(pg, "DROP TABLE IF EXISTS pgc_t; CREATE TABLE pgc_t (a int PRIMARY KEY)");
    c = connect_ok(true);
    send_ok(c, &INSERT_T, "42", &ins);
    sync_ok(c, &s);
    run_until(&s.done, "the commit");
    cr_assert_eq(ins.status, PGRES_COMMAND_OK);
    cr_assert_eq(s.status, PGRES_PIPELINE_SYNC);
    cr_assert(ins.order < s.order);
    cr_assert_eq(side_long(pg, "SELECT count(*) FROM pgc_t WHERE a = 42"), 1);
    /* A unique violation is the insert's own error. */
    send_ok(c, &INSERT_T, "42", &ins);
    sync_ok(c, &s);
    run_until(&s.done, "the second insert");
    cr_assert_eq(ins.status, PGRES_FATAL_ERROR);
    cr_assert_str_eq(ins.sqlstate, "23505");
    cr_assert_eq(s.status, PGRES_PIPELINE_SYNC);
    pg_conn_free(c);
    PQfinish(pg);
}

Test(pg_conn, an_error_at_commit_reaches_the_sync)
{
    PGconn *pg = side();
    struct pg_conn *c;
    struct rec i1, i2, s, after;

    side_exec(pg, "DROP TABLE IF EXISTS pgc_t; CREATE TABLE pgc_t (a int,"
                  " CONSTRAINT pgc_u UNIQUE (a) DEFERRABLE INITIALLY DEFERRED)");
    c = connect_ok(true);
    send_ok(c, &INSERT_T, "1", &i1);
    send_ok(c, &INSERT_T, "1", &i2);
    sync_ok(c, &s);
    run_until(&s.done, "the failed commit");
    cr_assert_eq(i1.status, PGRES_COMMAND_OK);
    cr_assert_eq(i2.status, PGRES_COMMAND_OK, "the check is deferred to commit");
    cr_assert_eq(s.status, PGRES_FATAL_ERROR, "the commit failed: the sync says so");
    cr_assert_str_eq(s.sqlstate, "23505");
    cr_assert_eq(side_long(pg, "SELECT count(*) FROM pgc_t"), 0, "nothing committed");
    send_ok(c, &ECHO, "9", &after);
    pg_conn_sync_later(c);
    run_until(&after.done, "a query after it");
    cr_assert_str_eq(after.value, "9");
    pg_conn_free(c);
    PQfinish(pg);
}

Test(pg_conn, a_large_request_is_flushed_through_write_readiness)
{
    struct pg_conn *c = connect_ok(true);
    size_t n = 16 * 1024 * 1024;
    char *big = malloc(n + 1);
    struct rec r;

    memset(big, 'x', n);
    big[n] = '\0';
    send_ok(c, &LENGTH, big, &r);
    sync_ok(c, NULL);
    free(big); /* libpq copied it */
    run_until(&r.done, "length() of 16 MiB");
    cr_assert_eq(r.status, PGRES_TUPLES_OK);
    cr_assert_eq(strtol(r.value, NULL, 10), (long)n);
    pg_conn_free(c);
}

Test(pg_conn, refused_connection_breaks_without_hanging)
{
    char conninfo[256];
    struct pg_conn *c;
    bool changed = false;

    /* Port 1: nobody listens there. */
    snprintf(conninfo, sizeof(conninfo),
             "postgresql://postgres:s3cr3t-pw@127.0.0.1:1/todo?connect_timeout=5");
    c = open_conn_with(conninfo, true, &changed);
    if (pg_conn_state(c) != PG_CONN_BROKEN)
        run_until(&changed, "the failure");
    cr_assert_eq(pg_conn_state(c), PG_CONN_BROKEN);
    cr_assert_eq(ready_calls, 0);
    cr_assert_str_neq(pg_conn_error(c), "");
    cr_assert_null(strstr(pg_conn_error(c), "s3cr3t"), "password in: %s", pg_conn_error(c));
    pg_conn_free(c);
}

Test(pg_conn, bad_conninfo_is_broken_at_once)
{
    bool changed = false;
    struct pg_conn *c = open_conn_with("postgresql://[::1", true, &changed);

    cr_assert_eq(pg_conn_state(c), PG_CONN_BROKEN);
    cr_assert_str_neq(pg_conn_error(c), "");
    h2o_evloop_run(loop, 1);
    cr_assert(!changed, "no state callback for a connection broken at creation");
    pg_conn_free(c);
}

/* Kill the connection's backend from a side connection. */
static void terminate(PGconn *pg, struct pg_conn *c)
{
    char sql[128];

    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", PQbackendPID(pg_conn_pgconn(c)));
    side_exec(pg, sql);
}

Test(pg_conn, a_killed_idle_connection_is_reported_broken)
{
    PGconn *pg = side();
    struct pg_conn *c = connect_ok(true);

    state_changed = false;
    terminate(pg, c);
    run_until(&state_changed, "the broken report");
    cr_assert_eq(pg_conn_state(c), PG_CONN_BROKEN);
    cr_assert_eq(broken_calls, 1);
    cr_assert_str_neq(pg_conn_error(c), "");
    pg_conn_free(c);
    PQfinish(pg);
}

Test(pg_conn, queries_on_a_killed_connection_are_answered)
{
    PGconn *pg = side();
    struct pg_conn *c = connect_ok(true);
    struct rec slow, next, s;

    send_ok(c, &SLEEP, "30", &slow);
    sync_ok(c, NULL);
    send_ok(c, &ECHO, "1", &next);
    sync_ok(c, &s);
    state_changed = false;
    usleep(100 * 1000);
    terminate(pg, c);
    run_until(&state_changed, "the broken report");
    cr_assert(slow.done && next.done && s.done, "every queued query was answered");
    cr_assert(slow.got_null || slow.status == PGRES_FATAL_ERROR);
    cr_assert(next.got_null, "a query behind the failure gets NULL");
    cr_assert(s.got_null);
    cr_assert(slow.order < next.order && next.order < s.order, "in order");
    cr_assert_eq(pg_conn_state(c), PG_CONN_BROKEN);
    cr_assert_eq(pg_conn_send(c, &ECHO, (const char *const[]){"1"}, &next.q), -1,
                 "a broken connection takes nothing");
    pg_conn_free(c);
    PQfinish(pg);
}

/* pg_conn_free from inside a query callback is deferred until it returns. */
static struct pg_conn *to_free;

static void free_in_cb(struct pg_query *q, const PGresult *res)
{
    on_rec(q, res);
    pg_conn_free(to_free);
}

Test(pg_conn, free_inside_a_callback_is_safe)
{
    struct pg_conn *c = connect_ok(true);
    struct rec a, b;

    send_ok(c, &ECHO, "1", &a);
    a.q.cb = free_in_cb;
    send_ok(c, &ECHO, "2", &b);
    to_free = c;
    pg_conn_sync_later(c);
    run_until(&a.done, "the first result");
    for (int i = 0; i < 10; i++)
        h2o_evloop_run(loop, 1);
    cr_assert(!b.done, "no callback after the connection was freed");
}

static struct pg_conn *chain_conn;
static struct rec chained;

/* Answer a result by queueing another query and a sync on the same
 * connection: they are flushed when the callback returns. */
static void chain_cb(struct pg_query *q, const PGresult *res)
{
    const char *v[1] = {"12"};

    on_rec(q, res);
    cr_assert_eq(pg_conn_send(chain_conn, &ECHO, v, &chained.q), 0);
    cr_assert_eq(pg_conn_sync(chain_conn, NULL), 0);
}

Test(pg_conn, a_callback_may_send_on_its_own_connection)
{
    struct pg_conn *c = connect_ok(true);
    struct rec first;

    chain_conn = c;
    rec_init(&chained);
    send_ok(c, &ECHO, "11", &first);
    first.q.cb = chain_cb;
    pg_conn_sync_later(c);
    run_until(&chained.done, "the chained query");
    cr_assert_str_eq(first.value, "11");
    cr_assert_str_eq(chained.value, "12");
    cr_assert(first.order < chained.order);
    pg_conn_free(c);
}

Test(pg_conn, neon_pooler_hosts_are_recognised)
{
    static const struct {
        const char *conninfo;
        bool pooler;
    } cases[] = {
        {"postgresql://u:p@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/db", true},
        {"postgresql://u:p@ep-cool-darkness-123456.us-east-2.aws.neon.tech/db", false},
        {"postgres://ep-x-pooler/db?sslmode=require", true},
        {"host=ep-x-pooler.eu-central-1.aws.neon.tech dbname=todo", true},
        {"host=db.example.com,ep-x-pooler.example.com dbname=todo", false}, /* first host */
        {"postgresql://127.0.0.1:5432/todo", false},
        {"postgresql://pooler.example.com/todo", false},
        {"postgresql://my-pooler-host.example.com/todo", false},
        {"not a conninfo ===", false},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_eq(pg_conn_host_is_pooler(cases[i].conninfo), cases[i].pooler, "%s",
                     cases[i].conninfo);
}

/* The value of option `key` of a live connection, or "" (PQconninfo). */
static void option_of(PGconn *pg, const char *key, char *out, size_t len)
{
    PQconninfoOption *opts = PQconninfo(pg);

    out[0] = '\0';
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
        if (strcmp(o->keyword, key) == 0 && o->val != NULL)
            snprintf(out, len, "%s", o->val);
    }
    PQconninfoFree(opts);
}

Test(pg_conn, a_dead_peer_is_bounded_by_keepalives_and_a_user_timeout)
{
    struct pg_conn *c = connect_ok(true);
    char v[64];

    option_of(pg_conn_pgconn(c), "keepalives_idle", v, sizeof(v));
    cr_assert_str_eq(v, "10");
    option_of(pg_conn_pgconn(c), "keepalives_interval", v, sizeof(v));
    cr_assert_str_eq(v, "5");
    option_of(pg_conn_pgconn(c), "keepalives_count", v, sizeof(v));
    cr_assert_str_eq(v, "3");
    option_of(pg_conn_pgconn(c), "tcp_user_timeout", v, sizeof(v));
    cr_assert_str_eq(v, "20000");
    cr_assert_leq(10 + 5 * 3, PG_CONN_DEAD_PEER_S);
    pg_conn_free(c);
}
