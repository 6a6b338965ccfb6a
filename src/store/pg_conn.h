/*
 * store/pg_conn: one non-blocking libpq connection on an h2o evloop, in
 * pipeline mode (internal to src/store/; names pg_conn_*).
 *
 * State machine (one advance function drives every transition):
 *
 *   CONNECTING --ready--> IDLE <--> BUSY      (BUSY: queries or syncs in flight)
 *        |                  |        |
 *        +------------------+--------+--> BROKEN (terminal: free and replace it)
 *
 *   - CONNECTING: PQconnectStartParams + PQconnectPoll; PQsocket() is re-read
 *     after every step and the h2o socket re-wrapped when it changed.
 *   - Once connected: PQsetnonblocking(1) and PQenterPipelineMode. Queries are
 *     queued with pg_conn_send(); a Sync (pg_conn_sync, or pg_conn_sync_later
 *     for one Sync per loop iteration) ends an implicit transaction and flushes.
 *     Every flush is followed by draining PQgetResult (libpq may have read
 *     results while flushing), and every readable event by PQconsumeInput +
 *     drain. PQflush returning 1 arms h2o_socket_notify_write.
 *   - BROKEN: the connection failed (connect error, I/O error, server gone).
 *     Every query and sync still queued gets its callback with res == NULL,
 *     in order; pg_conn_error() says why.
 *
 * The socket is watched through a dup() of PQsocket() wrapped with
 * h2o_evloop_socket_create(..., H2O_SOCKET_FLAG_DONT_READ): libpq does all
 * reading; the h2o socket (and so the dup) is closed before PQfinish.
 * Nothing here blocks, and PQcancel is never called.
 *
 * Threads: a pg_conn belongs to the thread of its loop; every call and every
 * callback happens there.
 *
 * Callbacks
 *   - A query's callback runs exactly once, with its result (borrowed: cleared
 *     when the callback returns) or NULL when the connection broke first. It
 *     may call pg_conn_send/pg_conn_sync on the same connection (they are
 *     flushed after the callback returns) but must not free the connection:
 *     pg_conn_free() from inside a callback is deferred until it returns.
 *   - The owner's state callback runs once when the connection becomes ready
 *     (CONNECTING → IDLE) and once when it breaks (→ BROKEN, after the queued
 *     queries were answered), from the loop, never from inside
 *     pg_conn_new/send/sync/free; it may free the connection or send on it.
 *   - Callbacks never run inside pg_conn_send/pg_conn_sync/pg_conn_free.
 *   - A sync's callback (pg_conn_sync with a query) runs when the Sync's
 *     ReadyForQuery arrived: the implicit transaction before it committed when
 *     res is PGRES_PIPELINE_SYNC. An error raised at commit time (deferred
 *     constraint) is passed instead as a PGRES_FATAL_ERROR result.
 *
 * Ownership: struct pg_query is the caller's (embed it in the operation) and
 * must stay valid until its callback ran or the connection was freed
 * (pg_conn_free never calls query callbacks: the owner frees what it queued).
 */
#ifndef TODO_STORE_PG_CONN_H
#define TODO_STORE_PG_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>
#include <libpq-fe.h>

#define PG_CONN_MAX_STMTS 64 /* pg_stmt.id range */
/* TCP keepalives (10 s idle, then 3 probes 5 s apart) and a 20 s
 * tcp_user_timeout on every connection: a dead peer breaks it in ~25 s. */
#define PG_CONN_DEAD_PEER_S 25

enum pg_conn_state {
    PG_CONN_CONNECTING,
    PG_CONN_IDLE,
    PG_CONN_BUSY,
    PG_CONN_BROKEN,
};

struct pg_conn;
struct pg_query;

/* `res` is borrowed; NULL when the connection broke before the result came. */
typedef void pg_query_cb(struct pg_query *q, const PGresult *res);
typedef void pg_conn_state_cb(struct pg_conn *c, void *data);

/* A statement the store uses, defined once (static const). With prepared
 * statements on, the connection prepares it under `name` on first use and
 * reuses it; off, it is sent unnamed every time (PQsendQueryParams). */
struct pg_stmt {
    unsigned id;      /* unique, < PG_CONN_MAX_STMTS: the per-connection cache slot */
    const char *name; /* unique server-side name */
    const char *sql;
    int nparams;
    bool binary;      /* results in binary format */
};

/* Embed in the caller's operation; set cb, leave the rest zeroed. */
struct pg_query {
    pg_query_cb *cb;
    /* private */
    h2o_linklist_t _link;
    PGresult *_res;
    int _kind;
    unsigned _stmt;
};

struct pg_conn_options {
    const char *conninfo;        /* a libpq URI or key=value string */
    /* Overrides of the conninfo's (NULL: none): the pool passes the host
     * names it resolved off the loop (pg_resolve.h) with their addresses,
     * so that libpq does no DNS lookup here. */
    const char *host, *hostaddr, *port;
    bool prepared;               /* named, cached prepared statements */
    h2o_timeout_t *zero_timeout; /* a 0 ms timeout of the loop, for pg_conn_sync_later */
    pg_conn_state_cb *on_state;
    /* Optional: runs after each Sync was answered (its queries' callbacks
     * ran), from the loop, unless the connection broke; it may send on the
     * connection. */
    pg_conn_state_cb *on_sync;
    void *data;
};

/* Start connecting (never blocks, as long as the conninfo needs no DNS
 * lookup: see pg_resolve.h). Always returns a connection: check
 * pg_conn_state(), it may already be BROKEN (bad conninfo); its state
 * callback then never runs for that. */
struct pg_conn *pg_conn_new(h2o_loop_t *loop, const struct pg_conn_options *opts);
/* Close (h2o socket first, then PQfinish) and free; queued queries are
 * forgotten without callbacks. Deferred when called inside a callback of
 * this connection. NULL accepted. */
void pg_conn_free(struct pg_conn *c);

enum pg_conn_state pg_conn_state(const struct pg_conn *c);
/* Why the connection broke (libpq's message; no password); "" otherwise. */
const char *pg_conn_error(const struct pg_conn *c);
/* Queries and syncs queued and not yet answered. */
size_t pg_conn_pending(const struct pg_conn *c);
/* Syncs sent and not yet answered (each ends one implicit transaction). */
size_t pg_conn_syncs_in_flight(const struct pg_conn *c);
/* True when connected, nothing is pending and no transaction is open. */
bool pg_conn_is_idle(const struct pg_conn *c);
/* The libpq connection, for inspection (PQbackendPID, PQparameterStatus). */
PGconn *pg_conn_pgconn(const struct pg_conn *c);

/* Queue `stmt` with text parameters (NULL value = SQL NULL). IDLE or BUSY
 * only. Returns 0, or -1 when libpq refused (the connection is then
 * BROKEN, reported through the state callback). Nothing is sent before the
 * next sync. */
__attribute__((warn_unused_result)) int pg_conn_send(struct pg_conn *c, const struct pg_stmt *stmt,
                                                     const char *const *values,
                                                     struct pg_query *q);
/* Queue a Sync now and flush. `q` (may be NULL) gets the sync's result. */
__attribute__((warn_unused_result)) int pg_conn_sync(struct pg_conn *c, struct pg_query *q);
/* Queue a Sync at the end of this loop iteration, shared by every query
 * queued until then (one write() for all of them). */
void pg_conn_sync_later(struct pg_conn *c);

/* True when the first host of `conninfo` (URI or key=value) is a Neon
 * pooler endpoint: its first label ends in "-pooler"
 * ("ep-cool-name-123456-pooler.us-east-2.aws.neon.tech"). Such an endpoint
 * is PgBouncer in transaction mode, which cannot keep named prepared
 * statements. Any thread. */
bool pg_conn_host_is_pooler(const char *conninfo);

/* A hint to append to libpq's message `msg` ("" when none): libpq says only
 * "certificate verify failed" when sslrootcert does not hold the server's
 * CA. Any thread. */
const char *pg_conn_error_hint(const char *msg);

/* Drive the state machine now (what socket events do): for tests and for
 * owners that changed something outside a callback. */
void pg_conn_advance(struct pg_conn *c);

#endif
