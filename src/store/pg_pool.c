#include "store/pg_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/pg_resolve.h"
#include "util/log.h"
#include "util/xalloc.h"

#define TICK_MS 100
#define MAINTENANCE_MS 1000
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
/* A connection attempt that takes longer is abandoned (libpq enforces
 * connect_timeout only in its blocking calls). */
#define CONNECT_TIMEOUT_MS 10000
/* Host names are looked up again after this, or after a failed attempt. */
#define RESOLVE_TTL_MS 60000

struct slot {
    struct pg_pool *pool;
    struct pg_conn *c;  /* NULL while waiting to reconnect, or dormant */
    enum pg_pool_kind kind;
    bool overflow;      /* an overflow writer: connected only while writes wait */
    bool dormant;       /* overflow, unwanted: no connection and no retry */
    bool held;          /* writers: checked out */
    bool pinging;       /* writers: a pre-ping is in flight (not available) */
    bool ping_failed;
    bool ready_seen;    /* c got ready (else it is still a connection attempt) */
    bool awaiting_dns;  /* c == NULL: connects when the host lookup is done */
    unsigned failures;  /* consecutive failed connection attempts */
    uint64_t retry_at;  /* c == NULL: when to try again */
    uint64_t started_at; /* c != NULL: when the attempt began */
    uint64_t born_at;   /* c ready: when (for recycling) */
    uint64_t idle_since; /* writers: when last given back (pre-ping, overflow idling) */
    struct pg_query ping_q, ping_sync;
};

struct pg_pool {
    h2o_loop_t *loop;
    char *conninfo;
    struct pg_pool_options o;
    h2o_timeout_t zero;  /* for the connections' deferred syncs and reports */
    h2o_timeout_t tick;  /* reconnects and wait deadlines */
    h2o_timeout_entry_t tick_entry;
    h2o_timeout_entry_t check_entry; /* answers waiters after a failure, from the loop */
    h2o_timeout_t maintenance; /* recycling, idle overflow writers */
    h2o_timeout_entry_t maintenance_entry;
    struct slot *slots;  /* readers, then writers, then overflow writers */
    unsigned nslots;
    unsigned next_reader;
    unsigned connecting; /* attempts in progress */
    bool down;           /* the last attempt failed and none succeeded since */
    bool resolve;        /* the conninfo names hosts: looked up off the loop */
    struct pg_resolve *resolving; /* a lookup in flight */
    struct pg_resolve *resolved;  /* the last successful one, whose lists connect */
    uint64_t resolved_at;
    bool resolved_stale; /* an attempt failed since: look up again */
    h2o_linklist_t waiters[2]; /* by kind */
    size_t nwaiters[2];
    uint64_t rng;
    char error[512];
};

static void connect_slot(struct slot *s);
static void arm_tick(struct pg_pool *p);
static void on_maintenance(h2o_timeout_entry_t *entry);
static void on_ping_result(struct pg_query *q, const PGresult *res);
static void on_ping_sync(struct pg_query *q, const PGresult *res);
static bool too_old(const struct pg_pool *p, const struct slot *s);
static void on_reader_sync(struct pg_conn *c, void *data);

/* ---- helpers ----------------------------------------------------------- */

uint64_t pg_pool_backoff_ms(unsigned failures, uint64_t *rng)
{
    uint64_t d = BACKOFF_FIRST_MS;

    for (unsigned i = 1; i < failures && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    /* xorshift64: jitter only, no need for more. */
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    return d / 2 + *rng % (d / 2 + 1);
}

static uint64_t backoff_ms(struct pg_pool *p, unsigned failures)
{
    return pg_pool_backoff_ms(failures, &p->rng);
}

static struct slot *slot_of(struct pg_pool *p, const struct pg_conn *c)
{
    for (unsigned i = 0; i < p->nslots; i++) {
        if (p->slots[i].c == c)
            return &p->slots[i];
    }
    return NULL;
}

static bool is_ready(const struct slot *s)
{
    enum pg_conn_state st = s->c != NULL ? pg_conn_state(s->c) : PG_CONN_BROKEN;

    return st == PG_CONN_IDLE || st == PG_CONN_BUSY;
}

static void set_error(struct pg_pool *p, const char *msg)
{
    snprintf(p->error, sizeof(p->error), "%s", msg);
}

/* ---- waiters ----------------------------------------------------------- */

static struct pg_pool_waiter *first_waiter(struct pg_pool *p, enum pg_pool_kind kind)
{
    h2o_linklist_t *l = &p->waiters[kind];

    return h2o_linklist_is_empty(l) ? NULL
                                    : H2O_STRUCT_FROM_MEMBER(struct pg_pool_waiter, _link, l->next);
}

static void unqueue(struct pg_pool *p, struct pg_pool_waiter *wt)
{
    h2o_linklist_unlink(&wt->_link);
    p->nwaiters[wt->_kind]--;
}

static void answer(struct pg_pool *p, struct pg_pool_waiter *wt, struct pg_conn *c)
{
    unqueue(p, wt);
    wt->cb(wt, c);
}

/* Hand ready connections to whoever waits for them. */
static void serve_waiters(struct pg_pool *p)
{
    struct pg_pool_waiter *wt;
    struct pg_conn *c;

    while ((wt = first_waiter(p, PG_POOL_READER)) != NULL && (c = pg_pool_reader(p)) != NULL)
        answer(p, wt, c);
    while ((wt = first_waiter(p, PG_POOL_WRITER)) != NULL &&
           (c = pg_pool_take_writer(p)) != NULL)
        answer(p, wt, c);
}

static void fail_waiters(struct pg_pool *p, enum pg_pool_kind kind)
{
    struct pg_pool_waiter *wt;

    while ((wt = first_waiter(p, kind)) != NULL)
        answer(p, wt, NULL);
}

static void expire_waiters(struct pg_pool *p, uint64_t now)
{
    for (int k = 0; k < 2; k++) {
        struct pg_pool_waiter *wt;
        while ((wt = first_waiter(p, (enum pg_pool_kind)k)) != NULL &&
               now - wt->_since >= p->o.timeout_ms) {
            set_error(p, "timed out waiting for a database connection");
            answer(p, wt, NULL);
        }
    }
}

/* ---- connections ------------------------------------------------------- */

static bool kind_ready(struct pg_pool *p, enum pg_pool_kind kind)
{
    for (unsigned i = 0; i < p->nslots; i++) {
        if (p->slots[i].kind == kind && is_ready(&p->slots[i]))
            return true;
    }
    return false;
}

/* Waiters of a kind with nothing alive get NULL once the pool is down. Runs
 * from the loop (check_entry), never inside a caller's call. */
static void on_check(h2o_timeout_entry_t *entry)
{
    struct pg_pool *p = H2O_STRUCT_FROM_MEMBER(struct pg_pool, check_entry, entry);

    if (!p->down)
        return;
    for (int k = 0; k < 2; k++) {
        if (!kind_ready(p, (enum pg_pool_kind)k))
            fail_waiters(p, (enum pg_pool_kind)k);
    }
}

/* A connection attempt failed: back off; the slot stays empty until then. */
static void attempt_failed(struct slot *s, const char *why)
{
    struct pg_pool *p = s->pool;

    s->failures++;
    s->retry_at = h2o_now(p->loop) + backoff_ms(p, s->failures);
    p->resolved_stale = true; /* the address may have moved */
    if (!p->down)
        log_kv(LOG_WARN, "postgres: cannot connect", "error", why, NULL);
    set_error(p, why);
    p->down = true;
    if (!h2o_timeout_is_linked(&p->check_entry))
        h2o_timeout_link(p->loop, &p->zero, &p->check_entry);
    arm_tick(p);
}

/* Empty the slot and connect again now (from the loop) or at retry_at. */
static void drop_conn(struct slot *s)
{
    pg_conn_free(s->c);
    s->c = NULL;
    s->ready_seen = false;
    s->pinging = false;
}

/* An overflow slot is (re)connected only while writes wait for a writer. */
static bool overflow_wanted(const struct pg_pool *p)
{
    return p->nwaiters[PG_POOL_WRITER] > 0;
}

/* Drop the slot's connection and open a new one, or leave an unwanted
 * overflow slot dormant. */
static void replace_conn(struct slot *s)
{
    drop_conn(s);
    if (s->overflow && !overflow_wanted(s->pool)) {
        s->dormant = true;
        return;
    }
    connect_slot(s);
}

static void on_conn_state(struct pg_conn *c, void *data)
{
    struct slot *s = data;
    struct pg_pool *p = s->pool;

    if (pg_conn_state(c) != PG_CONN_BROKEN) { /* ready */
        p->connecting--;
        s->ready_seen = true;
        s->failures = 0;
        s->born_at = s->idle_since = h2o_now(p->loop);
        p->down = false;
        p->error[0] = '\0';
        /* The database is back: reconnect every empty slot now. */
        for (unsigned i = 0; i < p->nslots; i++) {
            if (p->slots[i].c == NULL && !p->slots[i].dormant)
                connect_slot(&p->slots[i]);
        }
        serve_waiters(p);
        return;
    }
    if (!s->ready_seen) { /* the attempt failed */
        char why[512];
        snprintf(why, sizeof(why), "%s", pg_conn_error(c));
        p->connecting--;
        drop_conn(s);
        attempt_failed(s, why);
        return;
    }
    log_kv(LOG_WARN, "postgres: connection lost", "error", pg_conn_error(c), NULL);
    /* A held writer is replaced when its holder gives it back. */
    if (!s->held)
        replace_conn(s);
}

static bool lookup_fresh(const struct pg_pool *p)
{
    return p->resolved != NULL && !p->resolved_stale &&
           h2o_now(p->loop) - p->resolved_at < RESOLVE_TTL_MS;
}

/* The host lookup finished (from the loop): connect the slots waiting for
 * it. A failed lookup falls back on the previous addresses, if any. */
static void on_resolved(struct pg_resolve *r, void *data)
{
    struct pg_pool *p = data;
    char error[512] = "";

    p->resolving = NULL;
    if (pg_resolve_error(r) != NULL)
        snprintf(error, sizeof(error), "%s", pg_resolve_error(r));
    if (error[0] == '\0') {
        pg_resolve_free(p->resolved);
        p->resolved = r;
        p->resolved_at = h2o_now(p->loop);
        p->resolved_stale = false;
    } else {
        pg_resolve_free(r);
        if (p->resolved != NULL)
            log_kv(LOG_WARN, "postgres: host lookup failed; using the previous addresses",
                   "error", error, NULL);
    }
    for (unsigned i = 0; i < p->nslots; i++) {
        struct slot *s = &p->slots[i];
        if (!s->awaiting_dns || s->c != NULL)
            continue;
        s->awaiting_dns = false;
        if (p->resolved == NULL)
            attempt_failed(s, error);
        else
            connect_slot(s);
    }
}

/* Start a connection in an empty slot. Runs no callback. When the host
 * names need looking up (again), the slot waits for that instead. */
static void connect_slot(struct slot *s)
{
    struct pg_pool *p = s->pool;
    struct pg_conn_options o = {
        .conninfo = p->conninfo,
        .prepared = p->o.prepared,
        .zero_timeout = &p->zero,
        .on_state = on_conn_state,
        .on_sync = p->o.serial_syncs && s->kind == PG_POOL_READER ? on_reader_sync : NULL,
        .data = s,
    };

    if (p->resolve && !lookup_fresh(p)) {
        s->awaiting_dns = true;
        if (p->resolving == NULL)
            p->resolving = pg_resolve_start(p->loop, p->conninfo, on_resolved, p);
        return;
    }
    s->awaiting_dns = false;
    if (p->resolved != NULL) {
        o.host = pg_resolve_host(p->resolved);
        o.hostaddr = pg_resolve_hostaddr(p->resolved);
        o.port = pg_resolve_port(p->resolved);
    }
    s->ready_seen = false;
    s->started_at = h2o_now(p->loop);
    s->c = pg_conn_new(p->loop, &o);
    if (pg_conn_state(s->c) == PG_CONN_BROKEN) {
        char why[512];
        snprintf(why, sizeof(why), "%s", pg_conn_error(s->c));
        drop_conn(s);
        attempt_failed(s, why);
        return;
    }
    p->connecting++;
    arm_tick(p); /* watches the attempt's deadline */
}

/* ---- the tick: reconnects and wait deadlines --------------------------- */

static bool tick_needed(struct pg_pool *p)
{
    if (!h2o_linklist_is_empty(&p->waiters[0]) || !h2o_linklist_is_empty(&p->waiters[1]))
        return true;
    for (unsigned i = 0; i < p->nslots; i++) {
        if (!p->slots[i].dormant && (p->slots[i].c == NULL || !p->slots[i].ready_seen))
            return true;
    }
    return false;
}

static void arm_tick(struct pg_pool *p)
{
    if (!h2o_timeout_is_linked(&p->tick_entry) && tick_needed(p))
        h2o_timeout_link(p->loop, &p->tick, &p->tick_entry);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    struct pg_pool *p = H2O_STRUCT_FROM_MEMBER(struct pg_pool, tick_entry, entry);
    uint64_t now = h2o_now(p->loop);

    for (unsigned i = 0; i < p->nslots; i++) {
        struct slot *s = &p->slots[i];
        if (s->c != NULL && !s->ready_seen && now - s->started_at >= CONNECT_TIMEOUT_MS) {
            p->connecting--;
            drop_conn(s);
            attempt_failed(s, "timed out connecting to the database");
            continue;
        }
        if (s->c == NULL && s->overflow && !overflow_wanted(p))
            s->dormant = true;
        if (s->c != NULL || s->dormant || s->awaiting_dns || now < s->retry_at)
            continue;
        /* While the database is down, one probe at a time. */
        if (p->down && p->connecting > 0) {
            s->retry_at = now + backoff_ms(p, s->failures);
            continue;
        }
        connect_slot(s);
    }
    expire_waiters(p, now);
    arm_tick(p);
}

/* ---- maintenance: recycling, idle overflow writers ------------------- */

/* Every MAINTENANCE_MS: replace one idle connection of each kind that is
 * older than recycle_ms (one at a time, so the others keep serving). A
 * reader is idle when nothing is pipelined on it; a writer when not held. */
static void recycle_one(struct pg_pool *p)
{
    bool done[2] = {false, false};

    if (p->o.recycle_ms == 0)
        return;
    for (unsigned i = 0; i < p->nslots && !p->down; i++) {
        struct slot *s = &p->slots[i];
        if (done[s->kind] || s->held || s->pinging || !is_ready(s) || !too_old(p, s) ||
            pg_conn_pending(s->c) > 0)
            continue;
        replace_conn(s);
        done[s->kind] = true;
    }
}

/* Close the overflow writers that nobody held for overflow_idle_ms, unless
 * writes wait. */
static void close_idle_overflow(struct pg_pool *p)
{
    uint64_t now = h2o_now(p->loop);

    for (unsigned i = p->o.nreaders + p->o.nwriters; i < p->nslots; i++) {
        struct slot *s = &p->slots[i];
        if (overflow_wanted(p))
            return;
        if (s->held || s->pinging || !is_ready(s) || pg_conn_pending(s->c) > 0 ||
            now - s->idle_since < p->o.overflow_idle_ms)
            continue;
        drop_conn(s);
        s->dormant = true;
    }
}

static void on_maintenance(h2o_timeout_entry_t *entry)
{
    struct pg_pool *p = H2O_STRUCT_FROM_MEMBER(struct pg_pool, maintenance_entry, entry);

    recycle_one(p);
    close_idle_overflow(p);
    h2o_timeout_link(p->loop, &p->maintenance, &p->maintenance_entry);
}

/* ---- public ------------------------------------------------------------ */

struct pg_pool *pg_pool_new(h2o_loop_t *loop, const struct pg_pool_options *opts)
{
    struct pg_pool *p = xcalloc(1, sizeof(*p));
    struct timespec ts;

    p->loop = loop;
    p->o = *opts;
    p->conninfo = xstrdup(opts->conninfo);
    p->o.conninfo = p->conninfo;
    p->resolve = pg_resolve_needed(p->conninfo);
    if (p->o.nreaders == 0)
        p->o.nreaders = 1;
    if (p->o.nwriters == 0)
        p->o.nwriters = 1;
    if (p->o.timeout_ms == 0)
        p->o.timeout_ms = PG_POOL_DEFAULT_TIMEOUT_MS;
    if (p->o.overflow_idle_ms == 0)
        p->o.overflow_idle_ms = PG_POOL_OVERFLOW_IDLE_MS;
    clock_gettime(CLOCK_REALTIME, &ts);
    p->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)p ^ 0x9e3779b97f4a7c15ull;
    h2o_timeout_init(loop, &p->zero, 0);
    h2o_timeout_init(loop, &p->tick, TICK_MS);
    h2o_timeout_init(loop, &p->maintenance, MAINTENANCE_MS);
    p->tick_entry.cb = on_tick;
    p->check_entry.cb = on_check;
    p->maintenance_entry.cb = on_maintenance;
    h2o_linklist_init_anchor(&p->waiters[PG_POOL_READER]);
    h2o_linklist_init_anchor(&p->waiters[PG_POOL_WRITER]);
    p->nslots = p->o.nreaders + p->o.nwriters + p->o.noverflow;
    p->slots = xcalloc(p->nslots, sizeof(*p->slots));
    for (unsigned i = 0; i < p->nslots; i++) {
        struct slot *sl = &p->slots[i];
        sl->pool = p;
        sl->kind = i < p->o.nreaders ? PG_POOL_READER : PG_POOL_WRITER;
        sl->overflow = sl->dormant = i >= p->o.nreaders + p->o.nwriters;
        sl->ping_q.cb = on_ping_result;
        sl->ping_sync.cb = on_ping_sync;
        if (!sl->dormant)
            connect_slot(sl);
    }
    if (p->o.recycle_ms > 0 || p->o.noverflow > 0)
        h2o_timeout_link(loop, &p->maintenance, &p->maintenance_entry);
    return p;
}

void pg_pool_free(struct pg_pool *p)
{
    if (p == NULL)
        return;
    for (unsigned i = 0; i < p->nslots; i++)
        pg_conn_free(p->slots[i].c);
    pg_resolve_free(p->resolving);
    pg_resolve_free(p->resolved);
    h2o_timeout_unlink(&p->tick_entry);
    h2o_timeout_unlink(&p->check_entry);
    h2o_timeout_unlink(&p->maintenance_entry);
    h2o_timeout_dispose(p->loop, &p->maintenance);
    h2o_timeout_dispose(p->loop, &p->tick);
    h2o_timeout_dispose(p->loop, &p->zero);
    free(p->slots);
    free(p->conninfo);
    free(p);
}

/* serial_syncs: a reader whose Sync is answered takes the reads that
 * waited meanwhile (they form its next batch). */
static void on_reader_sync(struct pg_conn *c, void *data)
{
    struct slot *s = data;

    (void)c;
    serve_waiters(s->pool);
}

struct pg_conn *pg_pool_reader(struct pg_pool *p)
{
    for (unsigned n = 0; n < p->o.nreaders; n++) {
        struct slot *s = &p->slots[(p->next_reader + n) % p->o.nreaders];
        if (is_ready(s) && (!p->o.serial_syncs || pg_conn_syncs_in_flight(s->c) == 0)) {
            p->next_reader = (p->next_reader + n + 1) % p->o.nreaders;
            return s->c;
        }
    }
    return NULL;
}

/* Pre-ping: a writer idle for PG_POOL_PRE_PING_IDLE_MS or more answers
 * "SELECT 1" before anyone gets it, so that a connection that died quietly
 * is replaced instead of failing a write. */
static const struct pg_stmt ping_stmt = {PG_POOL_STMT_ID, "todo_pool_ping", "SELECT 1", 0, false};

static bool needs_ping(const struct pg_pool *p, const struct slot *s)
{
    return p->o.pre_ping && h2o_now(p->loop) - s->idle_since >= PG_POOL_PRE_PING_IDLE_MS;
}

static void start_ping(struct slot *s)
{
    s->pinging = true;
    s->ping_failed = false;
    if (pg_conn_send(s->c, &ping_stmt, NULL, &s->ping_q) != 0 ||
        pg_conn_sync(s->c, &s->ping_sync) != 0) {
        /* Broken now: its state callback replaces it. */
        s->pinging = false;
    }
}

static void on_ping_result(struct pg_query *q, const PGresult *res)
{
    struct slot *s = H2O_STRUCT_FROM_MEMBER(struct slot, ping_q, q);

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        s->ping_failed = true;
}

static void on_ping_sync(struct pg_query *q, const PGresult *res)
{
    struct slot *s = H2O_STRUCT_FROM_MEMBER(struct slot, ping_sync, q);
    struct pg_pool *p = s->pool;

    s->pinging = false;
    if (res == NULL)
        return; /* broken: the state callback replaces it */
    if (s->ping_failed || PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
        log_kv(LOG_WARN, "postgres: an idle connection failed its pre-ping; replacing it", NULL);
        replace_conn(s);
        return;
    }
    s->idle_since = h2o_now(p->loop);
    serve_waiters(p);
}

struct pg_conn *pg_pool_take_writer(struct pg_pool *p)
{
    for (unsigned i = p->o.nreaders; i < p->nslots; i++) {
        struct slot *s = &p->slots[i];
        if (s->held || s->pinging || !is_ready(s))
            continue;
        if (!pg_conn_is_idle(s->c)) {
            /* Left with a transaction open or results pending: replace it
             * (from the tick: this may run inside a caller's submit). */
            drop_conn(s);
            s->retry_at = 0;
            arm_tick(p);
            continue;
        }
        if (needs_ping(p, s)) {
            start_ping(s); /* available again once it answered */
            continue;
        }
        s->held = true;
        return s->c;
    }
    return NULL;
}

/* Past POOL_RECYCLE: replace rather than reuse. */
static bool too_old(const struct pg_pool *p, const struct slot *s)
{
    return p->o.recycle_ms > 0 && h2o_now(p->loop) - s->born_at >= p->o.recycle_ms;
}

void pg_pool_release_writer(struct pg_pool *p, struct pg_conn *c)
{
    struct slot *s = slot_of(p, c);

    if (s == NULL || !s->held)
        return;
    s->held = false;
    s->idle_since = h2o_now(p->loop);
    if (pg_conn_state(c) == PG_CONN_BROKEN || !pg_conn_is_idle(c) || too_old(p, s)) {
        replace_conn(s);
        return;
    }
    serve_waiters(p);
}

/* A writer waits: open a dormant overflow slot unless enough are already
 * connecting for the writes waiting. */
static void wake_overflow(struct pg_pool *p)
{
    size_t opening = 0;

    for (unsigned i = p->o.nreaders + p->o.nwriters; i < p->nslots; i++) {
        struct slot *s = &p->slots[i];
        if (!s->dormant && !s->ready_seen)
            opening++;
    }
    for (unsigned i = p->o.nreaders + p->o.nwriters; i < p->nslots; i++) {
        struct slot *s = &p->slots[i];
        if (opening >= p->nwaiters[PG_POOL_WRITER])
            return;
        if (s->dormant) {
            s->dormant = false;
            s->failures = 0;
            connect_slot(s); /* runs no callback: fine inside a submit */
            opening++;
        }
    }
}

int pg_pool_wait(struct pg_pool *p, enum pg_pool_kind kind, struct pg_pool_waiter *wt)
{
    if (p->down && !kind_ready(p, kind))
        return -1;
    if (p->o.max_waiters > 0 && p->nwaiters[kind] >= p->o.max_waiters) {
        set_error(p, "too many requests waiting for a database connection");
        return -1;
    }
    p->nwaiters[kind]++;
    wt->_kind = kind;
    wt->_since = h2o_now(p->loop);
    h2o_linklist_insert(&p->waiters[kind], &wt->_link);
    if (kind == PG_POOL_WRITER && p->o.noverflow > 0)
        wake_overflow(p);
    arm_tick(p);
    return 0;
}

void pg_pool_cancel_wait(struct pg_pool *p, struct pg_pool_waiter *wt)
{
    if (h2o_linklist_is_linked(&wt->_link))
        unqueue(p, wt);
}

unsigned pg_pool_open_connections(const struct pg_pool *p)
{
    unsigned n = 0;

    for (unsigned i = 0; i < p->nslots; i++)
        n += p->slots[i].c != NULL;
    return n;
}

bool pg_pool_up(const struct pg_pool *p)
{
    for (unsigned i = 0; i < p->nslots; i++) {
        if (is_ready(&p->slots[i]))
            return true;
    }
    return false;
}

const char *pg_pool_error(const struct pg_pool *p)
{
    return p->error;
}
