#include "store/pg_conn.h"

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xalloc.h"

/* What a queued item waits for. */
enum item_kind {
    ITEM_PREPARE, /* internal: a PQsendPrepare; no pg_query of the caller */
    ITEM_QUERY,   /* one result, then NULL */
    ITEM_SYNC,    /* PGRES_PIPELINE_SYNC (errors at commit come before it) */
};

/* Per-connection state of a prepared statement. */
enum { STMT_NONE, STMT_SENT, STMT_READY };

/* An internal item (prepare, or a sync nobody waits for). */
struct internal_item {
    struct pg_query q;
    unsigned stmt_id;
};

struct pg_conn {
    h2o_loop_t *loop;
    PGconn *pg;
    enum pg_conn_state state;
    enum pg_conn_state reported; /* the last state the owner was told about */
    bool prepared;
    h2o_socket_t *sock;        /* wraps a dup() of PQsocket() */
    dev_t sock_dev;            /* identity of the wrapped socket: PQsocket() */
    ino_t sock_ino;            /* may return the same number for a new one */
    bool reading, write_armed;
    PostgresPollingStatusType poll; /* CONNECTING: what PQconnectPoll wants */
    h2o_linklist_t queue;      /* struct pg_query, in the order sent */
    size_t npending;
    size_t nsyncs;             /* Syncs sent and not yet answered */
    bool unsynced;             /* queries sent since the last Sync */
    bool need_flush;           /* a Sync was queued inside a callback */
    h2o_timeout_t *zero;
    h2o_timeout_entry_t sync_entry;   /* pg_conn_sync_later */
    h2o_timeout_entry_t notify_entry; /* state changes seen outside advance */
    int depth;                 /* > 0 while inside advance (callbacks) */
    bool free_requested;
    pg_conn_state_cb *on_state;
    pg_conn_state_cb *on_sync;
    void *data;
    unsigned char stmts[PG_CONN_MAX_STMTS];
    /* The error of a PREPARE that failed in the current batch, handed to the
     * queries of that statement instead of their PGRES_PIPELINE_ABORTED. */
    PGresult *prep_err;
    unsigned prep_err_stmt;
    char error[512];
};

static void advance(struct pg_conn *c, bool readable);

/* ---- helpers ----------------------------------------------------------- */

/* Keep the first cause, as one line: libpq's messages span several lines
 * ("...\n\tIs the server running..."); log lines must not. */
static void set_error(struct pg_conn *c, const char *prefix)
{
    const char *msg = c->pg != NULL ? PQerrorMessage(c->pg) : "";
    size_t n = 0;

    if (c->error[0] != '\0')
        return;
    snprintf(c->error, sizeof(c->error), "%s%s%s%s", prefix, msg[0] != '\0' ? ": " : "", msg,
             pg_conn_error_hint(msg));
    for (size_t i = 0; c->error[i] != '\0'; i++) {
        char ch = c->error[i] == '\n' || c->error[i] == '\t' ? ' ' : c->error[i];
        if (ch == ' ' && (n == 0 || c->error[n - 1] == ' '))
            continue;
        c->error[n++] = ch;
    }
    while (n > 0 && c->error[n - 1] == ' ')
        n--;
    c->error[n] = '\0';
}

static void close_socket(struct pg_conn *c)
{
    if (c->sock != NULL) {
        h2o_socket_close(c->sock); /* closes the dup, not libpq's fd */
        c->sock = NULL;
    }
    c->reading = false;
    c->write_armed = false;
}

static void on_readable(h2o_socket_t *sock, const char *err);
static void on_writable(h2o_socket_t *sock, const char *err);

/* Make c->sock watch PQsocket(), re-wrapping when the socket changed: libpq
 * may close it and open another (next host, SSL retry) during connect,
 * possibly under the same number, so compare identities, not numbers. */
static int wrap_socket(struct pg_conn *c)
{
    int fd = PQsocket(c->pg), dupfd;
    struct stat st;

    if (fd < 0 || fstat(fd, &st) != 0) {
        close_socket(c);
        return -1;
    }
    if (c->sock != NULL && st.st_dev == c->sock_dev && st.st_ino == c->sock_ino)
        return 0;
    close_socket(c);
    dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dupfd < 0)
        return -1;
    c->sock = h2o_evloop_socket_create(c->loop, dupfd, H2O_SOCKET_FLAG_DONT_READ);
    c->sock->data = c;
    c->sock_dev = st.st_dev;
    c->sock_ino = st.st_ino;
    return 0;
}

static void want_read(struct pg_conn *c, bool on)
{
    if (on && !c->reading)
        h2o_socket_read_start(c->sock, on_readable);
    else if (!on && c->reading)
        h2o_socket_read_stop(c->sock);
    c->reading = on;
}

static void want_write(struct pg_conn *c)
{
    if (!c->write_armed) {
        c->write_armed = true;
        h2o_socket_notify_write(c->sock, on_writable);
    }
}

/* A state change noticed outside advance(): report it from the loop. */
static void notify_later(struct pg_conn *c)
{
    if (!h2o_timeout_is_linked(&c->notify_entry))
        h2o_timeout_link(c->loop, c->zero, &c->notify_entry);
}

/* ---- the queue --------------------------------------------------------- */

static void push(struct pg_conn *c, struct pg_query *q, int kind, unsigned stmt)
{
    q->_kind = kind;
    q->_stmt = stmt;
    q->_res = NULL;
    h2o_linklist_insert(&c->queue, &q->_link);
    c->npending++;
}

static struct pg_query *head(struct pg_conn *c)
{
    return h2o_linklist_is_empty(&c->queue)
               ? NULL
               : H2O_STRUCT_FROM_MEMBER(struct pg_query, _link, c->queue.next);
}

static void on_internal(struct pg_query *q, const PGresult *res);

/* Queue a Sync item (after PQpipelineSync succeeded); `q` NULL: nobody waits. */
static void push_sync(struct pg_conn *c, struct pg_query *q)
{
    if (q == NULL) {
        struct internal_item *it = xcalloc(1, sizeof(*it));
        it->q.cb = on_internal;
        q = &it->q;
    }
    push(c, q, ITEM_SYNC, 0);
    c->nsyncs++;
    c->state = PG_CONN_BUSY;
    c->unsynced = false;
    h2o_timeout_unlink(&c->sync_entry);
}

/* Unlink the head and run its callback with its result (then cleared). */
static void complete(struct pg_conn *c, struct pg_query *q)
{
    PGresult *res = q->_res;
    const PGresult *answer = NULL;

    h2o_linklist_unlink(&q->_link);
    if (--c->npending == 0 && c->state == PG_CONN_BUSY)
        c->state = PG_CONN_IDLE; /* before the callback: it may reuse the connection */
    q->_res = NULL;
    if (q->_kind == ITEM_PREPARE) {
        struct internal_item *it = H2O_STRUCT_FROM_MEMBER(struct internal_item, q, q);
        bool ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
        c->stmts[it->stmt_id] = ok ? STMT_READY : STMT_NONE;
        if (res != NULL && PQresultStatus(res) == PGRES_FATAL_ERROR && c->prep_err == NULL) {
            c->prep_err = res; /* kept for the statement's queries */
            c->prep_err_stmt = it->stmt_id;
            res = NULL;
        }
    } else if (q->_kind == ITEM_QUERY && c->prep_err != NULL && q->_stmt == c->prep_err_stmt &&
               res != NULL && PQresultStatus(res) == PGRES_PIPELINE_ABORTED) {
        /* Not run because its PREPARE failed: that error is the answer
         * (borrowed from c->prep_err, which lives until the Sync). */
        PQclear(res);
        res = NULL;
        answer = c->prep_err;
    } else if (q->_kind == ITEM_SYNC) {
        PQclear(c->prep_err);
        c->prep_err = NULL;
        c->nsyncs--;
    }
    int kind = q->_kind; /* the callback may free q */
    if (q->cb != NULL)
        q->cb(q, answer != NULL ? answer : res);
    PQclear(res);
    if (kind == ITEM_SYNC && c->on_sync != NULL && c->state != PG_CONN_BROKEN &&
        !c->free_requested)
        c->on_sync(c, c->data);
}

/* Keep the most telling result of an item: the first error wins. */
static void keep_result(struct pg_query *q, PGresult *res)
{
    if (q->_res == NULL) {
        q->_res = res;
    } else if (PQresultStatus(q->_res) != PGRES_FATAL_ERROR &&
               PQresultStatus(res) == PGRES_FATAL_ERROR) {
        PQclear(q->_res);
        q->_res = res;
    } else {
        PQclear(res);
    }
}

/* Dispatch every result libpq has complete. Returns the number of items
 * answered. Stops when libpq would block, the queue is empty, or the
 * connection went bad (the caller then breaks it). */
static size_t drain(struct pg_conn *c)
{
    size_t done = 0;
    int nulls = 0;
    struct pg_query *q;

    while ((q = head(c)) != NULL && !c->free_requested && PQstatus(c->pg) == CONNECTION_OK &&
           !PQisBusy(c->pg)) {
        PGresult *res = PQgetResult(c->pg);
        nulls = res == NULL ? nulls + 1 : 0;
        if (q->_kind == ITEM_SYNC) {
            /* One NULL ends a commit-time error's results; a second means
             * the sync has not arrived yet. */
            if (res == NULL && (q->_res == NULL || nulls > 1))
                break;
            if (res == NULL)
                continue;
            if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
                keep_result(q, res); /* an error raised at commit */
                continue;
            }
            keep_result(q, res);
            complete(c, q);
            done++;
        } else if (res != NULL) {
            keep_result(q, res);
        } else if (q->_res == NULL) {
            /* NULL before any result: libpq and the queue disagree. */
            snprintf(c->error, sizeof(c->error), "pipeline out of step");
            return done;
        } else {
            complete(c, q);
            done++;
        }
    }
    return done;
}

/* ---- transitions ------------------------------------------------------- */

/* Enter BROKEN without running callbacks (safe anywhere); advance() later
 * answers what is queued. */
static void mark_broken(struct pg_conn *c, const char *why)
{
    set_error(c, why);
    c->state = PG_CONN_BROKEN;
    close_socket(c);
    h2o_timeout_unlink(&c->sync_entry);
}

/* Enter BROKEN and answer everything queued with NULL, in order. Inside
 * advance() only. */
static void fail(struct pg_conn *c, const char *why)
{
    struct pg_query *q;

    mark_broken(c, why);
    while ((q = head(c)) != NULL && !c->free_requested) {
        PQclear(q->_res);
        q->_res = NULL;
        complete(c, q);
    }
}

static void connected(struct pg_conn *c)
{
    if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
        fail(c, "cannot enter pipeline mode");
        return;
    }
    c->state = PG_CONN_IDLE;
    want_read(c, true);
}

static void connect_step(struct pg_conn *c)
{
    c->poll = PQconnectPoll(c->pg);
    if (c->poll != PGRES_POLLING_FAILED && wrap_socket(c) != 0) {
        fail(c, "connection has no socket");
        return;
    }
    switch (c->poll) {
    case PGRES_POLLING_OK:
        connected(c);
        break;
    case PGRES_POLLING_READING:
        want_read(c, true);
        break;
    case PGRES_POLLING_WRITING:
        want_read(c, false);
        want_write(c);
        break;
    case PGRES_POLLING_FAILED:
        fail(c, "connection failed");
        break;
    default:
        /* PGRES_POLLING_ACTIVE is unused by libpq since 9.x. */
        fail(c, "unexpected PQconnectPoll status");
        break;
    }
}

/* Connected: read what arrived, dispatch results, flush what is queued,
 * until neither makes progress. */
static void io_step(struct pg_conn *c, bool readable)
{
    if (readable && PQconsumeInput(c->pg) != 1) {
        fail(c, "connection lost");
        return;
    }
    for (;;) {
        size_t n = drain(c);
        if (c->free_requested)
            return;
        if (PQstatus(c->pg) != CONNECTION_OK || c->error[0] != '\0') {
            fail(c, "connection lost");
            return;
        }
        c->need_flush = false;
        int rc = PQflush(c->pg);
        if (rc < 0) {
            fail(c, "cannot send");
            return;
        }
        if (rc == 1)
            want_write(c);
        if (n == 0)
            break;
    }
    if (c->npending == 0)
        c->state = PG_CONN_IDLE;
}

/* Tell the owner, once each, that the connection is ready or broken. */
static void report(struct pg_conn *c)
{
    for (;;) {
        enum pg_conn_state s = c->state;
        bool ready = c->reported == PG_CONN_CONNECTING && (s == PG_CONN_IDLE || s == PG_CONN_BUSY);
        bool broken = c->reported != PG_CONN_BROKEN && s == PG_CONN_BROKEN;

        if (c->free_requested || (!ready && !broken))
            return;
        c->reported = broken ? PG_CONN_BROKEN : PG_CONN_IDLE;
        if (c->on_state != NULL) {
            c->depth++;
            c->on_state(c, c->data);
            c->depth--;
        }
    }
}

static void destroy(struct pg_conn *c)
{
    struct pg_query *q;

    close_socket(c);
    h2o_timeout_unlink(&c->sync_entry);
    h2o_timeout_unlink(&c->notify_entry);
    /* Forget the caller's queries; free our own items. */
    while ((q = head(c)) != NULL) {
        h2o_linklist_unlink(&q->_link);
        PQclear(q->_res);
        q->_res = NULL;
        if (q->cb == on_internal)
            free(H2O_STRUCT_FROM_MEMBER(struct internal_item, q, q));
    }
    PQclear(c->prep_err);
    PQfinish(c->pg);
    free(c);
}

static void advance(struct pg_conn *c, bool readable)
{
    c->depth++;
    switch (c->state) {
    case PG_CONN_CONNECTING:
        connect_step(c);
        break;
    case PG_CONN_IDLE:
    case PG_CONN_BUSY:
        io_step(c, readable);
        break;
    case PG_CONN_BROKEN:
        fail(c, "broken"); /* answers what mark_broken left queued */
        break;
    default:
        log_kv(LOG_ERROR, "pg_conn: unknown state", NULL);
        abort();
    }
    c->depth--;
    /* The owner's state callback may queue queries: flush them too. */
    while (c->depth == 0 && !c->free_requested) {
        report(c);
        if (!c->need_flush || c->state == PG_CONN_BROKEN || c->free_requested)
            break;
        c->depth++;
        io_step(c, false);
        c->depth--;
    }
    if (c->depth == 0 && c->free_requested)
        destroy(c);
}

/* ---- event callbacks --------------------------------------------------- */

static void on_readable(h2o_socket_t *sock, const char *err)
{
    (void)err; /* DONT_READ: h2o never reads, so never fails */
    advance(sock->data, true);
}

static void on_writable(h2o_socket_t *sock, const char *err)
{
    struct pg_conn *c = sock->data;

    (void)err; /* libpq's next write reports the error */
    c->write_armed = false;
    advance(c, false);
}

static void on_sync_timer(h2o_timeout_entry_t *entry)
{
    struct pg_conn *c = H2O_STRUCT_FROM_MEMBER(struct pg_conn, sync_entry, entry);

    if (c->unsynced && (c->state == PG_CONN_IDLE || c->state == PG_CONN_BUSY)) {
        if (PQpipelineSync(c->pg) == 1)
            push_sync(c, NULL);
        else
            mark_broken(c, "cannot queue a sync");
    }
    /* From the loop: flush, dispatch and report freely. */
    advance(c, false);
}

static void on_notify_timer(h2o_timeout_entry_t *entry)
{
    advance(H2O_STRUCT_FROM_MEMBER(struct pg_conn, notify_entry, entry), false);
}

static void on_internal(struct pg_query *q, const PGresult *res)
{
    struct internal_item *it = H2O_STRUCT_FROM_MEMBER(struct internal_item, q, q);

    (void)res;
    free(it);
}

/* Server notices (NOTICE, WARNING) go to the debug log, not stderr. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    if (log_enabled(LOG_DEBUG))
        log_kv(LOG_DEBUG, "postgres notice", "message", message, NULL);
}

/* ---- public ------------------------------------------------------------ */

struct pg_conn *pg_conn_new(h2o_loop_t *loop, const struct pg_conn_options *opts)
{
    /* Later keys override the expanded "dbname" (libpq: the last non-empty
     * value of a keyword wins); NULL values are skipped. The TCP settings
     * come first (the URL cannot carry them: util/dburl.h): a peer that
     * vanished without a FIN or RST (a network partition, a NAT dropping
     * the flow) is found out within about PG_CONN_DEAD_PEER_S seconds,
     * idle or not, so that no request waits on it for the kernel's default
     * two hours. */
    static const char *const keys[] = {"keepalives_idle", "keepalives_interval",
                                       "keepalives_count", "tcp_user_timeout", "dbname", "host",
                                       "hostaddr", "port", "fallback_application_name", NULL};
    const char *values[] = {"10", "5", "3", "20000", opts->conninfo, opts->host, opts->hostaddr,
                            opts->port, "todo", NULL};
    struct pg_conn *c = xcalloc(1, sizeof(*c));

    c->loop = loop;
    c->prepared = opts->prepared;
    c->zero = opts->zero_timeout;
    c->on_state = opts->on_state;
    c->on_sync = opts->on_sync;
    c->data = opts->data;
    h2o_linklist_init_anchor(&c->queue);
    c->sync_entry.cb = on_sync_timer;
    c->notify_entry.cb = on_notify_timer;
    c->state = c->reported = PG_CONN_CONNECTING;
    /* expand_dbname = 1: "dbname" may hold a whole URI or conninfo string. */
    c->pg = PQconnectStartParams(keys, values, 1);
    if (c->pg == NULL) {
        log_kv(LOG_ERROR, "pg_conn: out of memory", NULL);
        abort();
    }
    PQsetNoticeProcessor(c->pg, on_notice, NULL);
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        fail(c, "cannot connect");
        c->reported = PG_CONN_BROKEN; /* the caller sees it on return */
        return c;
    }
    /* PQconnectStartParams made the socket and started connect(): wait until
     * it is writable, then let PQconnectPoll go on. */
    if (wrap_socket(c) != 0) {
        fail(c, "connection has no socket");
        c->reported = PG_CONN_BROKEN;
        return c;
    }
    want_write(c);
    return c;
}

void pg_conn_free(struct pg_conn *c)
{
    if (c == NULL)
        return;
    if (c->depth > 0) {
        c->free_requested = true;
        return;
    }
    destroy(c);
}

enum pg_conn_state pg_conn_state(const struct pg_conn *c)
{
    return c->state;
}

const char *pg_conn_error(const struct pg_conn *c)
{
    return c->error;
}

size_t pg_conn_pending(const struct pg_conn *c)
{
    return c->npending;
}

size_t pg_conn_syncs_in_flight(const struct pg_conn *c)
{
    return c->nsyncs;
}

bool pg_conn_is_idle(const struct pg_conn *c)
{
    return c->state == PG_CONN_IDLE && c->npending == 0 &&
           PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

PGconn *pg_conn_pgconn(const struct pg_conn *c)
{
    return c->pg;
}

/* A send failed inside libpq: the connection is unusable. Callbacks must
 * not run inside the caller's send, so the queue is answered from the loop. */
static int send_failed(struct pg_conn *c)
{
    mark_broken(c, "cannot queue a query");
    if (c->depth == 0)
        notify_later(c);
    return -1;
}

/* Queue PQsendPrepare for `stmt` unless this connection has it already. */
static int prepare_once(struct pg_conn *c, const struct pg_stmt *stmt)
{
    struct internal_item *it;

    if (c->stmts[stmt->id] != STMT_NONE)
        return 0;
    if (PQsendPrepare(c->pg, stmt->name, stmt->sql, stmt->nparams, NULL) != 1)
        return -1;
    it = xcalloc(1, sizeof(*it));
    it->q.cb = on_internal;
    it->stmt_id = stmt->id;
    push(c, &it->q, ITEM_PREPARE, stmt->id);
    c->stmts[stmt->id] = STMT_SENT;
    return 0;
}

int pg_conn_send(struct pg_conn *c, const struct pg_stmt *stmt, const char *const *values,
                 struct pg_query *q)
{
    int fmt = stmt->binary ? 1 : 0, ok;

    assert(stmt->id < PG_CONN_MAX_STMTS);
    if (c->state != PG_CONN_IDLE && c->state != PG_CONN_BUSY)
        return -1;
    if (c->prepared) {
        if (prepare_once(c, stmt) != 0)
            return send_failed(c);
        ok = PQsendQueryPrepared(c->pg, stmt->name, stmt->nparams, values, NULL, NULL, fmt);
    } else {
        ok = PQsendQueryParams(c->pg, stmt->sql, stmt->nparams, NULL, values, NULL, NULL, fmt);
    }
    if (ok != 1)
        return send_failed(c);
    push(c, q, ITEM_QUERY, stmt->id);
    c->state = PG_CONN_BUSY;
    c->unsynced = true;
    return 0;
}

int pg_conn_sync(struct pg_conn *c, struct pg_query *q)
{
    int rc;

    if (c->state != PG_CONN_IDLE && c->state != PG_CONN_BUSY)
        return -1;
    if (PQpipelineSync(c->pg) != 1)
        return send_failed(c);
    push_sync(c, q);
    if (c->depth > 0) {
        c->need_flush = true; /* the advance() running this callback flushes after it */
        return 0;
    }
    /* Flush now (one write() in the common case) but dispatch nothing here:
     * results libpq read while flushing are handled from the loop. */
    rc = PQflush(c->pg);
    if (rc < 0)
        return send_failed(c);
    if (rc == 1)
        want_write(c);
    notify_later(c);
    return 0;
}

void pg_conn_sync_later(struct pg_conn *c)
{
    if (!h2o_timeout_is_linked(&c->sync_entry))
        h2o_timeout_link(c->loop, c->zero, &c->sync_entry);
}

void pg_conn_advance(struct pg_conn *c)
{
    advance(c, false);
}

const char *pg_conn_error_hint(const char *msg)
{
    if (msg != NULL && strstr(msg, "certificate verify failed") != NULL)
        return " (the server's TLS certificate is not signed by a CA in sslrootcert, or"
               " it has expired: check sslrootcert in DATABASE_URL)";
    return "";
}

bool pg_conn_host_is_pooler(const char *conninfo)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    bool pooler = false;

    if (opts == NULL)
        return false;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "host") != 0 || o->val == NULL)
            continue;
        size_t label = strcspn(o->val, ".,");
        pooler = label >= 7 && strncmp(o->val + label - 7, "-pooler", 7) == 0;
    }
    PQconninfoFree(opts);
    return pooler;
}
