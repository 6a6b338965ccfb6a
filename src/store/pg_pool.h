/*
 * store/pg_pool: one worker's PostgreSQL connections (internal to
 * src/store/; names pg_pool_*).
 *
 * Two kinds of connection, each a struct pg_conn on the worker's loop:
 *   - readers: shared. Any number of read queries are pipelined on one
 *     reader, all queries of a loop iteration sharing one Sync. With
 *     `serial_syncs` (what store_pg uses), a reader whose Sync is still
 *     unanswered is not handed out: the reads wait (pg_pool_wait) and form
 *     its next batch when the answer came, so batches grow with the load
 *     instead of one per loop iteration. A transaction-mode pooler such as
 *     PgBouncer needs it: PgBouncer 1.18 may move a connection to another
 *     server when a ReadyForQuery arrives while the client's next batch is
 *     half sent, which splits Parse from Bind and mixes up answers
 *     (pgbouncer issue 759); one Sync in flight never gives it the chance.
 *   - writers: exclusive. A write operation takes one (pg_pool_take_writer /
 *     pg_pool_wait), runs its transaction alone on it (own Sync), and gives
 *     it back (pg_pool_release_writer). A writer given back with anything
 *     pending or a transaction open is discarded and replaced.
 *
 * Overflow writers (`noverflow`): extra writer slots, connected when writes
 * wait for a writer, and kept while in use: one that stayed idle (not held)
 * for `overflow_idle_ms` with no write waiting is closed (checked every
 * second), as is one that fails to connect when nobody waits any more.
 * Writers are handed out in slot order, so the fixed ones are used first
 * and the overflow ones fall idle when the load falls. (Closing them at
 * once when given back made a busy pool open and close tens of backends a
 * second, nearly doubling PostgreSQL's CPU per insert: docs/PERFORMANCE.md.)
 *
 * Recycling (`recycle_ms` > 0): every second, one idle connection of each
 * kind older than recycle_ms is replaced; a writer given back past that
 * age is replaced at once. Pre-ping (`pre_ping`): a writer idle for
 * PG_POOL_PRE_PING_IDLE_MS or more first answers "SELECT 1" (in the
 * meantime it is not handed out, so the taker waits); if it fails, it is
 * replaced. Readers are not pinged: a read on a broken connection is
 * retried (store_pg.c), which a write cannot be.
 *
 * Every other slot connects at pg_pool_new. A connection that breaks is replaced
 * at once; a connection attempt that fails is retried with capped
 * exponential backoff and jitter (100 ms doubling to 5 s). While no attempt
 * has succeeded since the last failure the pool is "down": waiting is then
 * pointless, so pg_pool_wait refuses and queued waiters are answered with
 * NULL. While the database is down only one connection attempt runs at a time.
 *
 * Host names: when the conninfo names hosts (not addresses or a socket
 * directory), they are looked up on a helper thread (pg_resolve.h) before
 * connecting, and connections get host=<name> hostaddr=<address>, so that
 * libpq never blocks the loop on DNS and TLS still checks the name. The
 * addresses are reused for RESOLVE_TTL (60 s) and looked up again after
 * any failed attempt; a failed lookup falls back on the previous ones.
 *
 * Waiting: pg_pool_wait queues a waiter (FIFO per kind, at most
 * `max_waiters`: beyond that it refuses, and the request gets a 503). Its callback runs
 * later, from the loop, exactly once: with a connection (a ready reader, or
 * a writer now held by the caller), or with NULL when the pool went down or
 * the wait exceeded `timeout_ms` (pg_pool_error() says why). Cancel with
 * pg_pool_cancel_wait before it ran.
 *
 * Threads: the pool and its connections belong to the loop's thread.
 * pg_pool_free closes every connection without running any callback.
 */
#ifndef TODO_STORE_PG_POOL_H
#define TODO_STORE_PG_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "store/pg_conn.h"

enum pg_pool_kind { PG_POOL_READER, PG_POOL_WRITER };

#define PG_POOL_DEFAULT_TIMEOUT_MS 30000
#define PG_POOL_PRE_PING_IDLE_MS 1000
#define PG_POOL_OVERFLOW_IDLE_MS 10000
/* The pre-ping's statement slot (pg_stmt.id): the store's ids stay below. */
#define PG_POOL_STMT_ID (PG_CONN_MAX_STMTS - 1)

struct pg_pool_options {
    const char *conninfo; /* copied */
    bool prepared;        /* named prepared statements (off for PgBouncer) */
    unsigned nreaders;    /* >= 1 */
    unsigned nwriters;    /* >= 1 */
    unsigned noverflow;   /* overflow writers, opened on demand */
    uint64_t timeout_ms;  /* longest wait for a connection (0: the default) */
    uint64_t recycle_ms;  /* replace connections older than this (0: never) */
    bool pre_ping;        /* ping writers idle for a second or more before use */
    bool serial_syncs;    /* readers: one Sync in flight at a time (see above) */
    size_t max_waiters;   /* per kind; beyond it pg_pool_wait refuses (0: no cap) */
    uint64_t overflow_idle_ms; /* close an overflow writer idle this long (0: the default) */
};

struct pg_pool;
struct pg_pool_waiter;

/* `c` is NULL when no connection could be had (see pg_pool_error). */
typedef void pg_pool_wait_cb(struct pg_pool_waiter *wt, struct pg_conn *c);

/* Embed in the caller's operation; set cb. */
struct pg_pool_waiter {
    pg_pool_wait_cb *cb;
    /* private */
    h2o_linklist_t _link;
    uint64_t _since;
    enum pg_pool_kind _kind;
};

struct pg_pool *pg_pool_new(h2o_loop_t *loop, const struct pg_pool_options *opts);
void pg_pool_free(struct pg_pool *p); /* NULL accepted */

/* A ready reader now (round robin), or NULL. */
struct pg_conn *pg_pool_reader(struct pg_pool *p);
/* A ready, idle writer now, held by the caller until released; or NULL. */
struct pg_conn *pg_pool_take_writer(struct pg_pool *p);
/* Give a held writer back. Called with a broken or busy connection, the pool
 * replaces it. */
void pg_pool_release_writer(struct pg_pool *p, struct pg_conn *c);

/* Queue `wt` for a connection of `kind`. 0, or -1 when the pool is down or
 * the queue is full (nothing queued, the callback never runs). */
__attribute__((warn_unused_result)) int pg_pool_wait(struct pg_pool *p, enum pg_pool_kind kind,
                                                     struct pg_pool_waiter *wt);
/* Unqueue a waiter whose callback has not run; no-op otherwise. */
void pg_pool_cancel_wait(struct pg_pool *p, struct pg_pool_waiter *wt);

/* The wait before connection attempt number `failures` + 1: 100 ms doubling
 * per failure up to 5 s, then a random 50-100 % of it (jitter, so that
 * workers and servers do not retry in step). `rng`: any non-zero seed,
 * updated. Any thread. */
uint64_t pg_pool_backoff_ms(unsigned failures, uint64_t *rng);

/* Connections open or opening (for tests and logs). */
unsigned pg_pool_open_connections(const struct pg_pool *p);

/* True when at least one connection is ready. */
bool pg_pool_up(const struct pg_pool *p);
/* Why the pool is down or a wait failed (password-free); "" otherwise. */
const char *pg_pool_error(const struct pg_pool *p);

#endif
