/*
 * store/pg_pool against a real PostgreSQL server (tests/store/pg_cluster.h):
 * exclusive writers, FIFO waiting, wait deadlines, the waiter cap, a
 * database that cannot be reached, replacement of broken connections,
 * overflow writers, recycling and pre-ping.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pg_cluster.h"
#include "store/pg_pool.h"

#define DEADLINE_MS 15000

static h2o_loop_t *loop;
static struct pg_pool *pool;

static void setup(void)
{
    loop = h2o_evloop_create();
    pool = NULL;
}

static void teardown(void)
{
    pg_pool_free(pool);
    h2o_evloop_run(loop, 0);
    h2o_evloop_destroy(loop);
}

TestSuite(pg_pool, .init = setup, .fini = teardown, .timeout = 60);

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct pg_pool *new_pool(const char *conninfo, unsigned nwriters, uint64_t timeout_ms,
                                size_t max_waiters)
{
    struct pg_pool_options o = {
        .conninfo = conninfo,
        .prepared = true,
        .nreaders = 1,
        .nwriters = nwriters,
        .timeout_ms = timeout_ms,
        .max_waiters = max_waiters,
    };
    return pg_pool_new(loop, &o);
}

static void run_until_up(void)
{
    int64_t end = mono_ms() + DEADLINE_MS;

    while (!pg_pool_up(pool) || pg_pool_reader(pool) == NULL) {
        cr_assert_lt(mono_ms(), end, "the pool never came up: %s", pg_pool_error(pool));
        h2o_evloop_run(loop, 10);
    }
}

struct waiter {
    struct pg_pool_waiter wt;
    int calls;
    struct pg_conn *got;
    int order;
};

static int arrivals;

static void on_wait(struct pg_pool_waiter *wt, struct pg_conn *c)
{
    struct waiter *w = H2O_STRUCT_FROM_MEMBER(struct waiter, wt, wt);

    w->calls++;
    w->got = c;
    w->order = ++arrivals;
}

static void run_until_called(struct waiter *w)
{
    int64_t end = mono_ms() + DEADLINE_MS;

    while (w->calls == 0) {
        cr_assert_lt(mono_ms(), end, "the waiter was never answered");
        h2o_evloop_run(loop, 10);
    }
}

/* Take the one writer (connecting at first). */
static struct pg_conn *take_writer_eventually(void)
{
    int64_t end = mono_ms() + DEADLINE_MS;
    struct pg_conn *c;

    while ((c = pg_pool_take_writer(pool)) == NULL) {
        cr_assert_lt(mono_ms(), end, "no writer: %s", pg_pool_error(pool));
        h2o_evloop_run(loop, 10);
    }
    return c;
}

Test(pg_pool, writers_are_exclusive_and_waiters_served_in_order)
{
    struct waiter a = {.wt.cb = on_wait}, b = {.wt.cb = on_wait};
    struct pg_conn *c;

    pool = new_pool(pg_cluster_url(), 1, 10000, 0);
    run_until_up();
    c = take_writer_eventually();
    cr_assert_null(pg_pool_take_writer(pool), "the only writer is held");
    arrivals = 0;
    cr_assert_eq(pg_pool_wait(pool, PG_POOL_WRITER, &a.wt), 0);
    cr_assert_eq(pg_pool_wait(pool, PG_POOL_WRITER, &b.wt), 0);
    h2o_evloop_run(loop, 1);
    cr_assert_eq(a.calls + b.calls, 0, "nobody is served while the writer is held");
    pg_pool_release_writer(pool, c);
    cr_assert_eq(a.calls, 1, "the first waiter gets the writer back");
    cr_assert_eq(a.got, c);
    cr_assert_eq(b.calls, 0);
    pg_pool_release_writer(pool, a.got);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(b.got, c);
    pg_pool_release_writer(pool, b.got);
    cr_assert_eq(pg_pool_take_writer(pool), c, "free again");
    pg_pool_release_writer(pool, c);
}

Test(pg_pool, a_wait_ends_at_its_deadline)
{
    struct waiter a = {.wt.cb = on_wait};
    struct pg_conn *c;
    int64_t started;

    pool = new_pool(pg_cluster_url(), 1, 300, 0);
    run_until_up();
    c = take_writer_eventually();
    started = mono_ms();
    cr_assert_eq(pg_pool_wait(pool, PG_POOL_WRITER, &a.wt), 0);
    run_until_called(&a);
    cr_assert_null(a.got);
    cr_assert_geq(mono_ms() - started, 250);
    cr_assert_not_null(strstr(pg_pool_error(pool), "timed out"), "%s", pg_pool_error(pool));
    pg_pool_release_writer(pool, c);
}

Test(pg_pool, the_wait_queue_is_capped)
{
    struct waiter w[3] = {{.wt.cb = on_wait}, {.wt.cb = on_wait}, {.wt.cb = on_wait}};
    struct pg_conn *c;

    pool = new_pool(pg_cluster_url(), 1, 10000, 2);
    run_until_up();
    c = take_writer_eventually();
    cr_assert_eq(pg_pool_wait(pool, PG_POOL_WRITER, &w[0].wt), 0);
    cr_assert_eq(pg_pool_wait(pool, PG_POOL_WRITER, &w[1].wt), 0);
    cr_assert_eq(pg_pool_wait(pool, PG_POOL_WRITER, &w[2].wt), -1, "full");
    pg_pool_cancel_wait(pool, &w[0].wt);
    cr_assert_eq(pg_pool_wait(pool, PG_POOL_WRITER, &w[2].wt), 0, "room again after a cancel");
    pg_pool_release_writer(pool, c);
    cr_assert_eq(w[0].calls, 0, "a cancelled waiter is never answered");
    cr_assert_eq(w[1].calls, 1);
    pg_pool_release_writer(pool, w[1].got);
    cr_assert_eq(w[2].calls, 1);
    pg_pool_release_writer(pool, w[2].got);
}

Test(pg_pool, an_unreachable_database_refuses_waiters)
{
    struct waiter a = {.wt.cb = on_wait}, b = {.wt.cb = on_wait};
    int64_t end = mono_ms() + DEADLINE_MS;

    (void)pg_cluster_url(); /* skip without PostgreSQL, like the others */
    pool = new_pool("postgresql://postgres@127.0.0.1:1/todo", 2, 10000, 0);
    /* Queued before the first attempt failed: answered NULL, not left. */
    int rc = pg_pool_wait(pool, PG_POOL_READER, &a.wt);
    if (rc == 0)
        run_until_called(&a);
    cr_assert_null(a.got);
    cr_assert(!pg_pool_up(pool));
    while (pg_pool_wait(pool, PG_POOL_WRITER, &b.wt) == 0) {
        run_until_called(&b);
        cr_assert_null(b.got);
        b.calls = 0;
        cr_assert_lt(mono_ms(), end);
    }
    cr_assert_str_neq(pg_pool_error(pool), "", "the pool says why");
    cr_assert_null(pg_pool_reader(pool));
    cr_assert_null(pg_pool_take_writer(pool));
}

static void kill_backend(struct pg_conn *c)
{
    PGconn *pg = PQconnectdb(pg_cluster_url());
    char sql[96];

    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)",
             PQbackendPID(pg_conn_pgconn(c)));
    PQclear(PQexec(pg, sql));
    PQfinish(pg);
}

Test(pg_pool, broken_connections_are_replaced)
{
    struct pg_conn *c, *again;
    int pid;
    int64_t end;

    pool = new_pool(pg_cluster_url(), 1, 10000, 0);
    run_until_up();
    /* A held writer that breaks is replaced when given back. */
    c = take_writer_eventually();
    pid = PQbackendPID(pg_conn_pgconn(c));
    kill_backend(c);
    end = mono_ms() + DEADLINE_MS;
    while (pg_conn_state(c) != PG_CONN_BROKEN) {
        cr_assert_lt(mono_ms(), end);
        h2o_evloop_run(loop, 10);
    }
    pg_pool_release_writer(pool, c);
    again = take_writer_eventually();
    cr_assert_neq(PQbackendPID(pg_conn_pgconn(again)), pid, "a new connection");
    pg_pool_release_writer(pool, again);
    /* A reader that breaks is replaced by itself. */
    c = pg_pool_reader(pool);
    pid = PQbackendPID(pg_conn_pgconn(c));
    kill_backend(c);
    end = mono_ms() + DEADLINE_MS;
    for (;;) {
        struct pg_conn *r = pg_pool_reader(pool);
        if (r != NULL && PQbackendPID(pg_conn_pgconn(r)) != pid)
            break;
        cr_assert_lt(mono_ms(), end, "the reader was not replaced");
        h2o_evloop_run(loop, 10);
    }
}

/* ---- overflow, recycling, pre-ping --------------------------------------- */

static int backend_pid(struct pg_conn *c)
{
    return PQbackendPID(pg_conn_pgconn(c));
}

/* Run the loop for `ms`. */
static void run_for(int64_t ms)
{
    int64_t end = mono_ms() + ms;

    while (mono_ms() < end)
        h2o_evloop_run(loop, 10);
}

/* Does the server still have backend `pid`? (A closed connection's backend
 * leaves shortly after.) */
static bool backend_alive(int pid)
{
    PGconn *pg = PQconnectdb(pg_cluster_url());
    char sql[128];
    bool alive;

    cr_assert_eq(PQstatus(pg), CONNECTION_OK);
    snprintf(sql, sizeof(sql), "SELECT 1 FROM pg_stat_activity WHERE pid = %d", pid);
    PGresult *r = PQexec(pg, sql);
    alive = PQntuples(r) == 1;
    PQclear(r);
    PQfinish(pg);
    return alive;
}

Test(pg_pool, overflow_writers_open_under_load_and_close_when_idle)
{
    struct pg_pool_options o = {.conninfo = pg_cluster_url(), .prepared = true, .nreaders = 1,
                                .nwriters = 1, .noverflow = 1, .timeout_ms = 10000,
                                .overflow_idle_ms = 1500};
    struct waiter a = {.wt.cb = on_wait}, b = {.wt.cb = on_wait};
    struct pg_conn *c;

    pool = pg_pool_new(loop, &o);
    run_until_up();
    c = take_writer_eventually();
    cr_assert_eq(pg_pool_open_connections(pool), 2, "the overflow slot starts closed");
    /* A write waits: an overflow writer is opened for it. */
    cr_assert_eq(pg_pool_wait(pool, PG_POOL_WRITER, &a.wt), 0);
    run_until_called(&a);
    cr_assert_not_null(a.got, "%s", pg_pool_error(pool));
    cr_assert_neq(a.got, c, "a new connection, not the held one");
    int pid = backend_pid(a.got);
    /* Both held: the next one waits (the overflow is used up). */
    cr_assert_eq(pg_pool_wait(pool, PG_POOL_WRITER, &b.wt), 0);
    run_for(200);
    cr_assert_eq(b.calls, 0);
    /* Given back with a write waiting: it serves that one. */
    pg_pool_release_writer(pool, a.got);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(b.got, a.got);
    /* Given back with nobody waiting: the overflow connection stays for a
     * while, and a write arriving meanwhile gets it without a new
     * connection. */
    pg_pool_release_writer(pool, b.got);
    cr_assert_eq(pg_pool_open_connections(pool), 3, "kept while idle for less than the limit");
    run_for(300);
    struct pg_conn *again = pg_pool_take_writer(pool);
    cr_assert_eq(again, b.got, "the idle overflow writer is reused");
    cr_assert_eq(backend_pid(again), pid, "the same backend");
    int64_t released = mono_ms();
    pg_pool_release_writer(pool, again);
    /* Idle for overflow_idle_ms: closed. */
    int64_t end = mono_ms() + DEADLINE_MS;
    while (pg_pool_open_connections(pool) > 2) {
        cr_assert_lt(mono_ms(), end, "the idle overflow writer was never closed");
        run_for(50);
    }
    cr_assert_geq(mono_ms() - released, 1500 - 100, "closed before its idle time");
    while (backend_alive(pid)) {
        cr_assert_lt(mono_ms(), end, "the overflow backend stayed");
        run_for(50);
    }
    pg_pool_release_writer(pool, c);
}

Test(pg_pool, connections_are_recycled_after_their_age)
{
    struct pg_pool_options o = {.conninfo = pg_cluster_url(), .prepared = true, .nreaders = 1,
                                .nwriters = 1, .timeout_ms = 10000, .recycle_ms = 600};
    struct pg_conn *c;

    pool = pg_pool_new(loop, &o);
    run_until_up();
    c = take_writer_eventually();
    int writer = backend_pid(c), reader = backend_pid(pg_pool_reader(pool));
    pg_pool_release_writer(pool, c);
    run_for(200);
    c = take_writer_eventually();
    cr_assert_eq(backend_pid(c), writer, "young: reused");
    pg_pool_release_writer(pool, c);
    /* Older than recycle_ms: replaced while idle, both kinds. */
    int64_t end = mono_ms() + DEADLINE_MS;
    for (;;) {
        struct pg_conn *r = pg_pool_reader(pool);
        c = pg_pool_take_writer(pool);
        bool renewed = r != NULL && c != NULL && backend_pid(r) != reader &&
                       backend_pid(c) != writer;
        if (c != NULL)
            pg_pool_release_writer(pool, c);
        if (renewed)
            break;
        cr_assert_lt(mono_ms(), end, "not recycled");
        run_for(50);
    }
}

Test(pg_pool, recycling_off_keeps_connections)
{
    struct pg_pool_options o = {.conninfo = pg_cluster_url(), .prepared = true, .nreaders = 1,
                                .nwriters = 1, .timeout_ms = 10000};
    struct pg_conn *c;

    pool = pg_pool_new(loop, &o);
    run_until_up();
    c = take_writer_eventually();
    int writer = backend_pid(c), reader = backend_pid(pg_pool_reader(pool));
    pg_pool_release_writer(pool, c);
    run_for(2500);
    c = take_writer_eventually();
    cr_assert_eq(backend_pid(c), writer);
    cr_assert_eq(backend_pid(pg_pool_reader(pool)), reader);
    pg_pool_release_writer(pool, c);
}

/* The backend's last statement, as pg_stat_activity shows it. */
static char *last_query(int pid)
{
    PGconn *pg = PQconnectdb(pg_cluster_url());
    char sql[128];

    snprintf(sql, sizeof(sql), "SELECT query FROM pg_stat_activity WHERE pid = %d", pid);
    PGresult *r = PQexec(pg, sql);
    char *q = strdup(PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    PQfinish(pg);
    return q;
}

Test(pg_pool, pre_ping_checks_an_idle_writer_and_replaces_a_dead_one)
{
    struct pg_pool_options o = {.conninfo = pg_cluster_url(), .prepared = true, .nreaders = 1,
                                .nwriters = 1, .timeout_ms = 10000, .pre_ping = true};
    struct waiter a = {.wt.cb = on_wait}, b = {.wt.cb = on_wait};
    struct pg_conn *c;

    pool = pg_pool_new(loop, &o);
    run_until_up();
    c = take_writer_eventually();
    int pid = backend_pid(c);
    pg_pool_release_writer(pool, c);
    /* Used again at once: no ping. */
    c = pg_pool_take_writer(pool);
    cr_assert_not_null(c);
    pg_pool_release_writer(pool, c);
    /* Idle for over a second: it answers a ping before anyone gets it. */
    run_for(PG_POOL_PRE_PING_IDLE_MS + 200);
    cr_assert_null(pg_pool_take_writer(pool), "handed out without a ping");
    cr_assert_eq(pg_pool_wait(pool, PG_POOL_WRITER, &a.wt), 0);
    run_until_called(&a);
    cr_assert_eq(a.got, c, "the same connection, after its ping");
    char *q = last_query(pid);
    cr_assert_str_eq(q, "SELECT 1", "the ping did not reach the server");
    free(q);
    pg_pool_release_writer(pool, a.got);
    /* Idle, then killed without the loop noticing: the ping finds out and
     * the waiter gets a fresh connection instead of a dead one. */
    run_for(PG_POOL_PRE_PING_IDLE_MS + 200);
    kill_backend(c);
    usleep(100 * 1000);
    cr_assert_null(pg_pool_take_writer(pool));
    cr_assert_eq(pg_pool_wait(pool, PG_POOL_WRITER, &b.wt), 0);
    run_until_called(&b);
    cr_assert_not_null(b.got, "%s", pg_pool_error(pool));
    cr_assert_neq(backend_pid(b.got), pid, "a new connection");
    cr_assert_eq(pg_conn_state(b.got), PG_CONN_IDLE);
    pg_pool_release_writer(pool, b.got);
}

Test(pg_pool, without_pre_ping_an_idle_writer_is_handed_out_at_once)
{
    struct pg_pool_options o = {.conninfo = pg_cluster_url(), .prepared = true, .nreaders = 1,
                                .nwriters = 1, .timeout_ms = 10000};
    struct pg_conn *c;

    pool = pg_pool_new(loop, &o);
    run_until_up();
    c = take_writer_eventually();
    pg_pool_release_writer(pool, c);
    run_for(PG_POOL_PRE_PING_IDLE_MS + 200);
    cr_assert_eq(pg_pool_take_writer(pool), c);
    pg_pool_release_writer(pool, c);
}

/* ---- serial Syncs (a transaction-mode pooler in between) ------------------ */

static struct pg_stmt one_stmt = {0, "pool_test_one", "SELECT 1", 0, false};

struct answer {
    struct pg_query q;
    int calls;
};

static void on_answer(struct pg_query *q, const PGresult *res)
{
    struct answer *a = H2O_STRUCT_FROM_MEMBER(struct answer, q, q);

    (void)res;
    a->calls++;
}

Test(pg_pool, serial_syncs_keep_one_batch_in_flight_per_reader)
{
    struct pg_pool_options o = {.conninfo = pg_cluster_url(), .prepared = false, .nreaders = 1,
                                .nwriters = 1, .timeout_ms = 10000, .serial_syncs = true};
    struct answer a = {.q.cb = on_answer}, b = {.q.cb = on_answer};
    struct waiter w = {.wt.cb = on_wait};

    pool = pg_pool_new(loop, &o);
    run_until_up();
    struct pg_conn *r = pg_pool_reader(pool);
    cr_assert_eq(pg_conn_send(r, &one_stmt, NULL, &a.q), 0);
    /* Not synced yet: more reads may join the batch. */
    cr_assert_eq(pg_pool_reader(pool), r);
    cr_assert_eq(pg_conn_send(r, &one_stmt, NULL, &b.q), 0);
    cr_assert_eq(pg_conn_sync(r, NULL), 0);
    /* Synced and unanswered: the reader is not handed out; a read waits. */
    cr_assert_null(pg_pool_reader(pool));
    cr_assert_eq(pg_pool_wait(pool, PG_POOL_READER, &w.wt), 0);
    run_until_called(&w);
    cr_assert_eq(w.got, r, "served by the same reader once its Sync was answered");
    cr_assert_eq(a.calls + b.calls, 2, "after the batch's answers");
    cr_assert_eq(pg_conn_syncs_in_flight(r), 0);
}

Test(pg_pool, without_serial_syncs_batches_overlap)
{
    struct pg_pool_options o = {.conninfo = pg_cluster_url(), .prepared = true, .nreaders = 1,
                                .nwriters = 1, .timeout_ms = 10000};
    struct answer a = {.q.cb = on_answer};

    pool = pg_pool_new(loop, &o);
    run_until_up();
    struct pg_conn *r = pg_pool_reader(pool);
    cr_assert_eq(pg_conn_send(r, &one_stmt, NULL, &a.q), 0);
    cr_assert_eq(pg_conn_sync(r, NULL), 0);
    cr_assert_eq(pg_conn_syncs_in_flight(r), 1);
    cr_assert_eq(pg_pool_reader(pool), r, "pipelined past an unanswered Sync");
    int64_t end = mono_ms() + DEADLINE_MS;
    while (a.calls == 0) {
        cr_assert_lt(mono_ms(), end);
        h2o_evloop_run(loop, 10);
    }
}
