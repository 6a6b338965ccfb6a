/*
 * The PostgreSQL backend (see store.h for the contract it implements).
 *
 * Each worker owns a pg_pool (pg_pool.h) on its loop: readers, on which
 * reads are pipelined, and writers, each running one write operation (or
 * one batch of creates) at a time under its own Syncs. The pool's sizes are
 * the worker's share of the store_options totals (one reader, the rest
 * writers, plus overflow writers). A reader keeps one Sync in flight at a
 * time (serial_syncs): the reads that arrive meanwhile wait and go out
 * together, under one Sync, when it was answered. That makes the batches
 * several times larger than one per loop iteration when the server is not
 * saturated (on this 2-core machine, nearly idle: 0.06 against 0.48
 * transactions per GET, half the CPU per GET in the server and in
 * PostgreSQL: docs/PERFORMANCE.md), and a transaction-mode pooler needs it
 * anyway (pg_pool.h).
 *
 * Start-up (open) needs no database: the URL is checked, and with
 * _opts.migrate a pg_boot thread (pg_boot.h) applies the migrations as soon
 * as the database answers; until then every request but the readiness ping
 * is refused with STORE_UNAVAILABLE. The ping reads the schema version on a
 * reader: ready means reachable and migrated.
 *
 * Reads: one statement each (a list may add a count); a todo is read by id
 * alone and its owner compared on the row, so that the plan is the primary
 * key's whatever the table's statistics. A read whose
 * connection broke, whose batch was aborted by another query's error, or
 * which hit a retryable server error is retried (twice at most), alone in
 * its own Sync.
 *
 * Todo creates are committed in groups: the creates queued on a worker
 * during a loop iteration go out together, each group one implicit
 * transaction (one INSERT of all its rows, from arrays, and a Sync) on one
 * writer, so that concurrent creates share a statement, a commit and its
 * WAL flush; an error in a group rolls it back and its creates then run one
 * by one as below (see "create batches"). Every other write runs on a writer held for the whole
 * operation, never sharing a Sync with another request. An outcome is acted
 * on only once the Sync that commits it answered. Creating a user and
 * changing a password are one statement each (as is a create run alone). PUT, PATCH and
 * DELETE are one transaction over two round trips: BEGIN + SET LOCAL
 * statement_timeout (set_config(..., true), the pool timeout: a write
 * waiting on a lock answers STORE_UNAVAILABLE rather than hang) + SELECT
 * ... FOR UPDATE, then the change computed in C (model/todo.h, the same
 * code as the SQLite backend) + COMMIT, or ROLLBACK when nothing is to be
 * written. The row lock serialises concurrent writers of a todo. Serialization failures,
 * deadlocks and a PUT losing the race to insert a new id run the operation
 * again (WRITE_ATTEMPTS in all). A write whose connection broke after it was
 * sent is STORE_UNAVAILABLE: it may or may not have committed. No session
 * state is used (no session SET, no session locks), so everything works through
 * PgBouncer in transaction mode (with prepared statements off).
 *
 * Values: parameters are sent as text (a batch of creates: one array
 * literal per column; timestamps as RFC 3339 UTC text with milliseconds,
 * which PostgreSQL reads the same whatever the session's DateStyle or
 * TimeZone); results come back in binary (uuid as 16 bytes,
 * timestamptz as microseconds since 2000-01-01 UTC), which involves no
 * session setting at all and is cheaper for both sides.
 *
 * This file exports only store_backend_pg.
 */

#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "migrate/migrate.h"
#include "model/timefmt.h"
#include "model/uuid.h"
#include "store/pg_admin.h"
#include "store/pg_boot.h"
#include "store/pg_conn.h"
#include "store/pg_pool.h"
#include "store/store_int.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xalloc.h"

#define READ_RETRIES 2
#define WRITE_ATTEMPTS 10
#define POOL_TIMEOUT_MS 30000
#define POOL_MAX_WAITERS 8192
#define WRITERS_PER_WORKER 8
#define READERS_PER_WORKER 1

/* ---- statements -------------------------------------------------------- */

#define TODO_COLS                                                                                  \
    "id, user_id, title, description, completed, completed_at, created_at, updated_at, version"
#define USER_COLS "id, email, password_hash, name, is_active, created_at, updated_at"

enum {
    S_PING,
    S_USER_BY_EMAIL,
    S_USER_BY_ID,
    S_TODO_GET,
    S_USER_INSERT,
    S_USER_SET_HASH,
    S_TODO_LOAD,
    S_TODO_INSERT,
    S_TODO_INSERT_IF_ABSENT,
    S_TODO_INSERT_MANY,
    S_TODO_UPDATE,
    S_TODO_DELETE,
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_TIMEOUT,
    S_COUNT,                  /* 4 filter variants */
    S_LIST = S_COUNT + 4,     /* 6 sorts x 4 filter variants */
    S_NSTMTS = S_LIST + 6 * 4,
};

_Static_assert(S_NSTMTS <= PG_POOL_STMT_ID, "too many statements for pg_conn");

static const struct pg_stmt fixed_stmts[] = {
    {S_PING, "todo_ping", "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, true},
    {S_USER_BY_EMAIL, "todo_user_by_email", "SELECT " USER_COLS " FROM users WHERE email = $1", 1,
     true},
    {S_USER_BY_ID, "todo_user_by_id", "SELECT " USER_COLS " FROM users WHERE id = $1::uuid", 1,
     true},
    /* By id alone, the owner checked on the row (read_parse): a plan on the
     * primary key whatever the statistics (with "AND user_id = $2" an
     * unanalysed table is read through todos_user_completed, every todo of
     * the user per GET: docs/PERFORMANCE.md). */
    {S_TODO_GET, "todo_get", "SELECT " TODO_COLS " FROM todos WHERE id = $1::uuid", 1, true},
    {S_USER_INSERT, "todo_user_insert",
     "INSERT INTO users (" USER_COLS ") VALUES ($1::uuid, $2, $3, $4, true, $5::timestamptz,"
     " $5::timestamptz)",
     5, true},
    {S_USER_SET_HASH, "todo_user_set_hash",
     "UPDATE users SET password_hash = $2, updated_at = $3::timestamptz WHERE id = $1::uuid"
     " RETURNING " USER_COLS,
     3, true},
    {S_TODO_LOAD, "todo_load", "SELECT " TODO_COLS " FROM todos WHERE id = $1::uuid FOR UPDATE", 1,
     true},
    {S_TODO_INSERT, "todo_insert",
     "INSERT INTO todos (" TODO_COLS ") VALUES ($1::uuid, $2::uuid, $3, $4, $5::boolean,"
     " $6::timestamptz, $7::timestamptz, $8::timestamptz, $9::integer) RETURNING version",
     9, true},
    {S_TODO_INSERT_IF_ABSENT, "todo_insert_if_absent",
     "INSERT INTO todos (" TODO_COLS ") VALUES ($1::uuid, $2::uuid, $3, $4, $5::boolean,"
     " $6::timestamptz, $7::timestamptz, $8::timestamptz, $9::integer)"
     " ON CONFLICT (id) DO NOTHING RETURNING version",
     9, true},
    /* A batch of creates (see "create batches"): one array per column, in
     * the order of TODO_COLS, each a text array literal (batch_columns). */
    {S_TODO_INSERT_MANY, "todo_insert_many",
     "INSERT INTO todos (" TODO_COLS ") SELECT * FROM unnest($1::uuid[], $2::uuid[],"
     " $3::text[], $4::text[], $5::boolean[], $6::timestamptz[], $7::timestamptz[],"
     " $8::timestamptz[], $9::integer[]) ON CONFLICT (id) DO NOTHING RETURNING id",
     9, true},
    {S_TODO_UPDATE, "todo_update",
     "UPDATE todos SET title = $3, description = $4, completed = $5::boolean,"
     " completed_at = $6::timestamptz, created_at = $7::timestamptz,"
     " updated_at = $8::timestamptz, version = $9::integer"
     " WHERE id = $1::uuid AND user_id = $2::uuid RETURNING version",
     9, true},
    {S_TODO_DELETE, "todo_delete",
     "DELETE FROM todos WHERE id = $1::uuid AND user_id = $2::uuid RETURNING version", 2, true},
    {S_BEGIN, "todo_begin", "BEGIN", 0, false},
    {S_COMMIT, "todo_commit", "COMMIT", 0, false},
    {S_ROLLBACK, "todo_rollback", "ROLLBACK", 0, false},
    /* SET LOCAL statement_timeout, with a parameter (SET takes none). */
    {S_TIMEOUT, "todo_timeout", "SELECT set_config('statement_timeout', $1, true)", 1, false},
};

static const char *const list_order[] = {
    [TODO_SORT_CREATED_AT_DESC] = "created_at DESC, id DESC",
    [TODO_SORT_CREATED_AT] = "created_at, id",
    [TODO_SORT_UPDATED_AT] = "updated_at, id",
    [TODO_SORT_UPDATED_AT_DESC] = "updated_at DESC, id DESC",
    [TODO_SORT_TITLE] = "title, id",
    [TODO_SORT_TITLE_DESC] = "title DESC, id DESC",
};
_Static_assert(sizeof(list_order) / sizeof(list_order[0]) == TODO_SORT_TITLE_DESC + 1,
               "one ORDER BY per enum todo_sort (store__query_valid checks the range)");
#define NSORTS (sizeof(list_order) / sizeof(list_order[0]))

/* ---- state ------------------------------------------------------------- */

struct pg_store {
    char *conninfo;
    bool prepared;
    struct store_options o;
    struct pg_admin *admin; /* schema_version and migrate_db, connected on first use */
    struct pg_boot *boot;   /* start-up migrations (NULL: none asked for) */
    int64_t schema_latest;  /* the newest embedded migration */
    char statement_timeout[16]; /* ms, for write transactions (= the pool timeout) */
    /* The list and count statements, built once at open (read-only after). */
    struct pg_stmt list_stmts[4 + NSORTS * 4];
    char list_sql[4 + NSORTS * 4][640];
    char list_names[4 + NSORTS * 4][32];
};

struct pg_worker {
    struct store_worker super; /* first: store.c sees only this */
    struct pg_store *st;
    struct pg_pool *pool;
    h2o_timeout_t zero;   /* results known without asking the database */
    h2o_linklist_t ops;   /* every operation not yet freed, for detach */
    /* Group commit of creates (see "create batches" below). */
    h2o_linklist_t create_q;    /* creates waiting for a batch, oldest first */
    size_t ncreate_q;
    h2o_timeout_entry_t batch_defer; /* forms batches at the end of the loop iteration */
    struct pg_pool_waiter batch_waiter; /* waiting for a writer for the next batch */
    h2o_linklist_t batches;     /* batches in flight */
    unsigned nbatches;
    unsigned max_batches;       /* in flight at once */
};

/* One transaction of creates on one writer: one INSERT of every row, and
 * its Sync (the Sync's implicit transaction commits it). */
struct create_batch {
    struct pg_worker *w;
    h2o_linklist_t link;  /* in w->batches */
    h2o_linklist_t ops;   /* its operations (store_op.qlink), in submission order */
    struct store_op **rows; /* the operations inserted, by id (no id twice) */
    size_t nrows;
    struct pg_conn *conn; /* the writer, held */
    struct pg_query insert;
    struct pg_query sync;
    int inflight;         /* queries and sync queued and not yet answered */
    bool sync_sent;       /* else nothing can have committed */
    bool lost;            /* the connection broke under it */
    bool failed;          /* an error: the transaction rolled back */
};

enum op_kind {
    OP_PING,
    OP_USER_BY_EMAIL,
    OP_USER_BY_ID,
    OP_TODO_GET,
    OP_TODO_LIST,
    OP_USER_CREATE,
    OP_USER_SET_HASH,
    OP_TODO_CREATE,
    OP_TODO_PUT,
    OP_TODO_PATCH,
    OP_TODO_DELETE,
};

/* What a write operation's statement in flight does. */
enum write_step {
    STEP_USER,     /* autocommit: INSERT INTO users / UPDATE users */
    STEP_CREATE,   /* autocommit: INSERT INTO todos */
    STEP_LOAD,     /* BEGIN; SELECT ... FOR UPDATE */
    STEP_INSERT,   /* INSERT ... ON CONFLICT DO NOTHING; COMMIT (PUT of a new id) */
    STEP_UPDATE,   /* UPDATE; COMMIT */
    STEP_DELETE,   /* DELETE; COMMIT */
    STEP_ROLLBACK, /* ROLLBACK: nothing to write, or an error */
};

struct store_op {
    struct pg_worker *w;
    store_done_fn *done; /* NULL once cancelled */
    void *ctx;
    h2o_linklist_t link; /* in w->ops */
    h2o_linklist_t qlink; /* creates: in w->create_q, then in its batch's ops */
    struct create_batch *batch; /* creates: the batch it is in flight in */
    size_t batch_pos;           /* creates: its place in the batch's ops */
    enum op_kind kind;
    struct pg_pool_waiter waiter;
    h2o_timeout_entry_t defer;
    struct pg_conn *conn; /* the connection the statement in flight is on */
    struct pg_query q;    /* the statement in flight */
    struct pg_query q2;   /* writes: BEGIN, COMMIT or ROLLBACK around it */
    struct pg_query q3;   /* writes: the transaction's statement timeout */
    struct pg_query sync; /* writes: the step's Sync */
    int inflight;         /* writes: q, q2, sync queued and not yet answered */
    bool held;            /* conn is a writer taken from the pool */
    enum write_step step;
    bool counting;        /* list: the count statement is in flight */
    int attempts;
    /* The outcome of the statement in flight (writes: of its step). */
    int status;
    char message[512];
    bool lost;            /* the connection broke under the statement */
    bool retry;           /* a transient error: run the operation again */
    bool retry_after_rollback;
    int final;            /* writes: the status to deliver once the step ends */
    long affected;
    bool has_row;
    /* Inputs, copied at submit. */
    char user_id[UUID_STR_LEN + 1];
    char id[UUID_STR_LEN + 1];
    struct todo_patch patch;
    int32_t if_match;
    int64_t now_ms;
    char *email, *password_hash, *name, *q_text;
    struct todo_query tq;
    /* Results. */
    bool created, has_user, has_todo, is_list;
    struct user user;
    struct todo todo;
    struct todo *todos;
    size_t ntodos;
    int64_t total;
    struct store__arena *arena;
};

/* ---- operation lifetime ------------------------------------------------ */

static struct store_op *op_new(struct store_worker *sw, enum op_kind kind, store_done_fn *done,
                               void *ctx)
{
    struct pg_worker *w = (struct pg_worker *)sw;
    struct store_op *op = xcalloc(1, sizeof(*op));

    op->w = w;
    op->kind = kind;
    op->done = done;
    op->ctx = ctx;
    op->if_match = STORE_IF_MATCH_NONE;
    h2o_linklist_insert(&w->ops, &op->link);
    w->super._outstanding++;
    return op;
}

static void op_free(struct store_op *op)
{
    h2o_linklist_unlink(&op->link);
    if (h2o_linklist_is_linked(&op->qlink)) {
        h2o_linklist_unlink(&op->qlink);
        if (op->batch == NULL)
            op->w->ncreate_q--;
    }
    op->w->super._outstanding--;
    free(op->patch.title);
    free(op->patch.description);
    free(op->email);
    free(op->password_hash);
    free(op->name);
    free(op->q_text);
    free(op->todos);
    store__arena_free(op->arena);
    free(op);
}

static void set_message(struct store_op *op, const char *msg)
{
    size_t n;

    snprintf(op->message, sizeof(op->message), "%s", msg != NULL ? msg : "");
    n = strlen(op->message);
    while (n > 0 && (op->message[n - 1] == '\n' || op->message[n - 1] == ' '))
        op->message[--n] = '\0';
}

/* Give a held writer back to the pool (it replaces it when broken). */
static void release_conn(struct store_op *op)
{
    if (op->held)
        pg_pool_release_writer(op->w->pool, op->conn);
    op->held = false;
    op->conn = NULL;
}

/* The end: call done (unless cancelled) and free. Never inside a submit. */
static void finish(struct store_op *op, int status)
{
    struct store_result res = {.status = status, .message = op->message[0] ? op->message : NULL};

    release_conn(op);
    if (op->done != NULL) {
        if (status == STORE_OK) {
            res.created = op->created;
            res.user = op->has_user ? &op->user : NULL;
            res.todo = op->has_todo ? &op->todo : NULL;
            if (op->is_list) {
                res.todos = op->todos;
                res.ntodos = op->ntodos;
                res.total = op->total;
            }
        }
        op->done(op->ctx, &res);
    }
    op_free(op);
}

static void on_deferred(h2o_timeout_entry_t *entry)
{
    struct store_op *op = H2O_STRUCT_FROM_MEMBER(struct store_op, defer, entry);

    finish(op, op->status);
}

/* A result known without the database (a garbage id): deliver it from the
 * loop, never inside the submit call. */
static int finish_later(struct store_op *op, int status, struct store_op **out)
{
    op->status = status;
    op->defer.cb = on_deferred;
    h2o_timeout_link(op->w->super._loop, &op->w->zero, &op->defer);
    if (out != NULL)
        *out = op;
    return 0;
}

static void pg_op_cancel(struct store_op *op)
{
    if (op->batch == NULL && h2o_linklist_is_linked(&op->qlink)) {
        op_free(op); /* a create not yet in a batch */
    } else if (h2o_timeout_is_linked(&op->defer)) {
        h2o_timeout_unlink(&op->defer);
        op_free(op);
    } else if (h2o_linklist_is_linked(&op->waiter._link)) {
        pg_pool_cancel_wait(op->w->pool, &op->waiter);
        op_free(op);
    } else {
        /* A statement is in flight: its callback frees the operation. The
         * write may still commit. */
        op->done = NULL;
    }
}

/* ---- result decoding (binary format) ----------------------------------- */

static int bad_value(struct store_op *op, const PGresult *r, int col)
{
    snprintf(op->message, sizeof(op->message), "unexpected value in column %s",
             PQfname(r, col) != NULL ? PQfname(r, col) : "?");
    return STORE_INTERNAL;
}

/* A binary uuid (16 bytes) as canonical text. */
static int col_uuid(struct store_op *op, const PGresult *r, int row, int col,
                    char out[UUID_STR_LEN + 1])
{
    if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 16)
        return bad_value(op, r, col);
    uuid_format((const unsigned char *)PQgetvalue(r, row, col), out);
    return STORE_OK;
}

static int col_text(struct store_op *op, const PGresult *r, int row, int col, bool nullable,
                    const char **out)
{
    if (PQgetisnull(r, row, col)) {
        *out = NULL;
        return nullable ? STORE_OK : bad_value(op, r, col);
    }
    *out = store__arena_strndup(&op->arena, PQgetvalue(r, row, col),
                                (size_t)PQgetlength(r, row, col));
    return STORE_OK;
}

static int col_bool(struct store_op *op, const PGresult *r, int row, int col, bool *out)
{
    if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 1)
        return bad_value(op, r, col);
    *out = PQgetvalue(r, row, col)[0] != 0;
    return STORE_OK;
}

static uint64_t be64(const char *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return be64toh(v);
}

static int col_int(struct store_op *op, const PGresult *r, int row, int col, int64_t *out)
{
    int len = PQgetlength(r, row, col);
    uint32_t v32;

    if (PQgetisnull(r, row, col) || (len != 4 && len != 8))
        return bad_value(op, r, col);
    if (len == 8) {
        *out = (int64_t)be64(PQgetvalue(r, row, col));
        return STORE_OK;
    }
    memcpy(&v32, PQgetvalue(r, row, col), 4);
    *out = (int32_t)be32toh(v32);
    return STORE_OK;
}

/* timestamptz: microseconds since 2000-01-01 00:00:00 UTC; to Unix ms,
 * rounding down (values written by this server are whole milliseconds). */
static int col_time(struct store_op *op, const PGresult *r, int row, int col, bool *present,
                    int64_t *ms)
{
    const int64_t epoch_2000_ms = 946684800000LL;
    int64_t us;

    if (PQgetisnull(r, row, col) && present != NULL) {
        *present = false;
        *ms = 0;
        return STORE_OK;
    }
    if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8)
        return bad_value(op, r, col);
    us = (int64_t)be64(PQgetvalue(r, row, col));
    /* ±infinity are INT64_MAX/MIN: out of the model's range. */
    if (us <= -210866803200000000LL || us >= 253402300800000000LL)
        return bad_value(op, r, col);
    *ms = (us >= 0 ? us / 1000 : -((-us + 999) / 1000)) + epoch_2000_ms;
    if (present != NULL)
        *present = true;
    return STORE_OK;
}

/* A row of TODO_COLS. */
static int read_todo(struct store_op *op, const PGresult *r, int row, struct todo *t)
{
    int64_t version = 0;
    int rc;

    memset(t, 0, sizeof(*t));
    if ((rc = col_uuid(op, r, row, 0, t->id)) != STORE_OK ||
        (rc = col_uuid(op, r, row, 1, t->user_id)) != STORE_OK ||
        (rc = col_text(op, r, row, 2, false, &t->title)) != STORE_OK ||
        (rc = col_text(op, r, row, 3, true, &t->description)) != STORE_OK ||
        (rc = col_bool(op, r, row, 4, &t->completed)) != STORE_OK ||
        (rc = col_time(op, r, row, 5, &t->has_completed_at, &t->completed_at_ms)) != STORE_OK ||
        (rc = col_time(op, r, row, 6, NULL, &t->created_at_ms)) != STORE_OK ||
        (rc = col_time(op, r, row, 7, NULL, &t->updated_at_ms)) != STORE_OK ||
        (rc = col_int(op, r, row, 8, &version)) != STORE_OK)
        return rc;
    if (version < 1 || version > INT32_MAX)
        return bad_value(op, r, 8);
    t->version = (int32_t)version;
    return STORE_OK;
}

/* A row of USER_COLS. */
static int read_user(struct store_op *op, const PGresult *r, int row, struct user *u)
{
    int rc;

    memset(u, 0, sizeof(*u));
    if ((rc = col_uuid(op, r, row, 0, u->id)) != STORE_OK ||
        (rc = col_text(op, r, row, 1, false, &u->email)) != STORE_OK ||
        (rc = col_text(op, r, row, 2, false, &u->password_hash)) != STORE_OK ||
        (rc = col_text(op, r, row, 3, true, &u->name)) != STORE_OK ||
        (rc = col_bool(op, r, row, 4, &u->is_active)) != STORE_OK ||
        (rc = col_time(op, r, row, 5, NULL, &u->created_at_ms)) != STORE_OK ||
        (rc = col_time(op, r, row, 6, NULL, &u->updated_at_ms)) != STORE_OK)
        return rc;
    return STORE_OK;
}

/* ---- errors ------------------------------------------------------------ */

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Worth running again: the server lost the connection or the transaction
 * through no fault of the statement. */
static bool sqlstate_transient(const char *ss)
{
    return strcmp(ss, "40001") == 0    /* serialization_failure */
           || strcmp(ss, "40P01") == 0 /* deadlock_detected */
           || strcmp(ss, "26000") == 0 /* prepared statement gone (an aborted PREPARE) */
           || starts(ss, "08")         /* connection exceptions */
           || starts(ss, "57P");       /* admin shutdown, crash shutdown, cannot connect now */
}

/* STORE_* for a failed result, with its message kept for the log. */
static int status_of_error(struct store_op *op, const PGresult *r)
{
    const char *ss = PQresultErrorField(r, PG_DIAG_SQLSTATE);

    set_message(op, PQresultErrorMessage(r));
    if (ss == NULL)
        return STORE_UNAVAILABLE; /* libpq's own: the connection */
    if (strcmp(ss, "23505") == 0)
        return STORE_CONFLICT;
    if (starts(ss, "23") || starts(ss, "22"))
        return STORE_INVALID; /* integrity or data exception the model let through */
    if (sqlstate_transient(ss) || starts(ss, "53") || strcmp(ss, "57014") == 0)
        return STORE_UNAVAILABLE; /* + insufficient resources, statement timeout */
    return STORE_INTERNAL;
}

static bool result_transient(const PGresult *r)
{
    const char *ss;

    if (PQresultStatus(r) == PGRES_PIPELINE_ABORTED)
        return true;
    ss = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return PQresultStatus(r) == PGRES_FATAL_ERROR && (ss == NULL || sqlstate_transient(ss));
}

/* ---- parameters -------------------------------------------------------- */

struct todo_params {
    char completed[2];
    char completed_at[TIMEFMT_LEN + 1];
    char created_at[TIMEFMT_LEN + 1];
    char updated_at[TIMEFMT_LEN + 1];
    char version[16];
    const char *values[9];
};

/* $1..$9 in the order of TODO_COLS. */
static const char *const *todo_values(struct todo_params *p, const struct todo *t)
{
    snprintf(p->completed, sizeof(p->completed), "%s", t->completed ? "t" : "f");
    timefmt_format(t->completed_at_ms, p->completed_at);
    timefmt_format(t->created_at_ms, p->created_at);
    timefmt_format(t->updated_at_ms, p->updated_at);
    snprintf(p->version, sizeof(p->version), "%d", (int)t->version);
    p->values[0] = t->id;
    p->values[1] = t->user_id;
    p->values[2] = t->title;
    p->values[3] = t->description;
    p->values[4] = p->completed;
    p->values[5] = t->has_completed_at ? p->completed_at : NULL;
    p->values[6] = p->created_at;
    p->values[7] = p->updated_at;
    p->values[8] = p->version;
    return p->values;
}

/* ---- reads ------------------------------------------------------------- */

static const struct pg_stmt *list_stmt(struct store_op *op, bool count)
{
    const struct todo_query *q = &op->tq;
    int variant = (q->completed >= 0 ? 2 : 0) + (q->q != NULL ? 1 : 0);
    int i = count ? variant : 4 + (int)q->sort * 4 + variant;

    return &op->w->st->list_stmts[i];
}

/* The read's statement and its parameters (at most 5). */
static const struct pg_stmt *read_stmt(struct store_op *op, const char *values[5], char *buf1,
                                       char *buf2, size_t buflen)
{
    int n = 0;

    switch (op->kind) {
    case OP_PING:
        return &fixed_stmts[S_PING];
    case OP_USER_BY_EMAIL:
        values[0] = op->email;
        return &fixed_stmts[S_USER_BY_EMAIL];
    case OP_USER_BY_ID:
        values[0] = op->id;
        return &fixed_stmts[S_USER_BY_ID];
    case OP_TODO_GET:
        values[0] = op->id;
        return &fixed_stmts[S_TODO_GET];
    case OP_TODO_LIST:
        values[n++] = op->user_id;
        if (op->tq.completed >= 0)
            values[n++] = op->tq.completed ? "t" : "f";
        if (op->tq.q != NULL)
            values[n++] = op->tq.q;
        if (!op->counting) {
            snprintf(buf1, buflen, "%d", op->tq.limit);
            snprintf(buf2, buflen, "%lld", (long long)op->tq.offset);
            values[n++] = buf1;
            values[n++] = buf2;
        }
        return list_stmt(op, op->counting);
    default:
        log_kv(LOG_ERROR, "store_pg: not a read", NULL);
        abort();
    }
}

static void on_read_result(struct pg_query *q, const PGresult *res);
static void on_reader(struct pg_pool_waiter *wt, struct pg_conn *c);

/* Queue the read's statement on reader `c`, sharing the loop iteration's
 * Sync, or with a Sync of its own (`alone`: a retry, kept away from other
 * queries' errors). 0, or -1 when `c` refused it (it is broken now, and the
 * pool will not hand it out again). Runs no callback. */
static int read_send(struct store_op *op, struct pg_conn *c, bool alone)
{
    const char *values[5] = {NULL};
    char b1[24], b2[24];
    const struct pg_stmt *stmt = read_stmt(op, values, b1, b2, sizeof(b1));

    op->q.cb = on_read_result;
    if (pg_conn_send(c, stmt, values, &op->q) != 0)
        return -1;
    op->conn = c;
    if (!alone)
        pg_conn_sync_later(c);
    else
        (void)!pg_conn_sync(c, NULL); /* on failure the query is answered NULL */
    return 0;
}

/* Put the read on a ready reader, or queue it for one. 0, or -1 when the
 * pool is down (nothing queued). Runs no callback. */
static int read_place(struct store_op *op, bool alone)
{
    struct pg_conn *c;

    while ((c = pg_pool_reader(op->w->pool)) != NULL) {
        if (read_send(op, c, alone) == 0)
            return 0;
    }
    op->waiter.cb = on_reader;
    return pg_pool_wait(op->w->pool, PG_POOL_READER, &op->waiter);
}

/* From the loop: place the read again, or fail it. */
static void read_again(struct store_op *op, bool alone)
{
    if (read_place(op, alone) != 0) {
        set_message(op, pg_pool_error(op->w->pool));
        finish(op, STORE_UNAVAILABLE);
    }
}

static void on_reader(struct pg_pool_waiter *wt, struct pg_conn *c)
{
    struct store_op *op = H2O_STRUCT_FROM_MEMBER(struct store_op, waiter, wt);

    if (c == NULL) {
        set_message(op, pg_pool_error(op->w->pool));
        finish(op, STORE_UNAVAILABLE);
        return;
    }
    if (read_send(op, c, op->attempts > 0) != 0)
        read_again(op, true);
}

/* Requests wait for the start-up migrations: before them the tables may
 * not exist (the readiness ping is exempt: it says why). */
static bool migrations_pending(const struct store_op *op)
{
    const struct pg_store *st = op->w->st;

    return op->kind != OP_PING && st->boot != NULL && !pg_boot_done(st->boot);
}

/* The submit side of every read: 0, or STORE_UNAVAILABLE (op freed). */
static int read_submit(struct store_op *op, struct store_op **out)
{
    if (migrations_pending(op) || read_place(op, false) != 0) {
        op_free(op);
        return STORE_UNAVAILABLE;
    }
    if (out != NULL)
        *out = op;
    return 0;
}

/* Rows of a list: collect, and decide whether the total needs a count. */
static int list_rows(struct store_op *op, const PGresult *r)
{
    int n = PQntuples(r), rc;

    op->todos = n > 0 ? xcalloc((size_t)n, sizeof(*op->todos)) : NULL;
    for (int i = 0; i < n; i++) {
        if ((rc = read_todo(op, r, i, &op->todos[i])) != STORE_OK)
            return rc;
    }
    op->ntodos = (size_t)n;
    op->is_list = true;
    return STORE_OK;
}

/* Readiness: the database answered and its schema is the newest. */
static int ping_parse(struct store_op *op, const PGresult *r)
{
    const char *ss = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    int64_t have = 0, want = op->w->st->schema_latest;

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        if (ss != NULL && strcmp(ss, "42P01") == 0) { /* undefined_table */
            set_message(op, "the database has no schema yet (migrations not applied)");
            return STORE_UNAVAILABLE;
        }
        status_of_error(op, r);
        return STORE_UNAVAILABLE;
    }
    if (PQntuples(r) != 1 || col_int(op, r, 0, 0, &have) != STORE_OK)
        return STORE_UNAVAILABLE;
    if (have != want) {
        snprintf(op->message, sizeof(op->message), "schema at version %lld, expected %lld",
                 (long long)have, (long long)want);
        return STORE_UNAVAILABLE;
    }
    return STORE_OK;
}

/* Parse a read's result into the operation. */
static int read_parse(struct store_op *op, const PGresult *r)
{
    int64_t count = 0;
    int rc;

    if (op->kind == OP_PING)
        return ping_parse(op, r);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return status_of_error(op, r);
    if (op->kind == OP_TODO_LIST) {
        if (!op->counting)
            return list_rows(op, r);
        if (PQntuples(r) != 1)
            return bad_value(op, r, 0);
        rc = col_int(op, r, 0, 0, &count);
        op->total = count;
        return rc;
    }
    if (PQntuples(r) == 0)
        return STORE_NOT_FOUND;
    switch (op->kind) {
    case OP_USER_BY_EMAIL:
    case OP_USER_BY_ID:
        rc = read_user(op, r, 0, &op->user);
        op->has_user = rc == STORE_OK;
        return rc;
    case OP_TODO_GET:
        rc = read_todo(op, r, 0, &op->todo);
        if (rc == STORE_OK && strcmp(op->todo.user_id, op->user_id) != 0)
            return STORE_NOT_FOUND; /* another user's is exactly like a missing one */
        op->has_todo = rc == STORE_OK;
        return rc;
    default:
        return STORE_OK;
    }
}

/* After the rows of a list: the total, from the page itself when it is
 * neither empty nor full (as the SQLite backend does), else by counting. */
static bool list_needs_count(struct store_op *op)
{
    if (op->ntodos > 0 && op->ntodos < (size_t)op->tq.limit) {
        op->total = op->tq.offset + (int64_t)op->ntodos;
        return false;
    }
    if (op->ntodos == 0 && op->tq.offset == 0) {
        op->total = 0;
        return false;
    }
    return true;
}

static void on_read_result(struct pg_query *q, const PGresult *res)
{
    struct store_op *op = H2O_STRUCT_FROM_MEMBER(struct store_op, q, q);
    int status;

    op->conn = NULL;
    if (op->done == NULL) {
        op_free(op); /* cancelled */
        return;
    }
    if ((res == NULL || result_transient(res)) && op->attempts < READ_RETRIES) {
        op->attempts++;
        read_again(op, true);
        return;
    }
    if (res == NULL) {
        set_message(op, "connection to the database lost");
        finish(op, STORE_UNAVAILABLE);
        return;
    }
    status = read_parse(op, res);
    if (status == STORE_OK && op->kind == OP_TODO_LIST && !op->counting &&
        list_needs_count(op)) {
        op->counting = true;
        op->attempts = 0;
        read_again(op, false);
        return;
    }
    finish(op, status);
}

/* ---- read submission --------------------------------------------------- */

static int pg_ping(struct store_worker *w, store_done_fn *done, void *ctx, struct store_op **out)
{
    return read_submit(op_new(w, OP_PING, done, ctx), out);
}

static int pg_user_by_email(struct store_worker *w, const char *email, store_done_fn *done,
                            void *ctx, struct store_op **out)
{
    struct store_op *op;

    if (email == NULL)
        return STORE_INVALID;
    op = op_new(w, OP_USER_BY_EMAIL, done, ctx);
    op->email = xstrdup(email);
    return read_submit(op, out);
}

static int pg_user_by_id(struct store_worker *w, const char *id, store_done_fn *done, void *ctx,
                         struct store_op **out)
{
    struct store_op *op;

    if (id == NULL)
        return STORE_INVALID;
    op = op_new(w, OP_USER_BY_ID, done, ctx);
    if (!store__copy_uuid(op->id, id))
        return finish_later(op, STORE_NOT_FOUND, out); /* no such id can exist */
    return read_submit(op, out);
}

static int pg_todo_get(struct store_worker *w, const char *user_id, const char *id,
                       store_done_fn *done, void *ctx, struct store_op **out)
{
    struct store_op *op;

    if (user_id == NULL || id == NULL)
        return STORE_INVALID;
    op = op_new(w, OP_TODO_GET, done, ctx);
    if (!store__copy_uuid(op->id, id) || !store__copy_uuid(op->user_id, user_id))
        return finish_later(op, STORE_NOT_FOUND, out);
    return read_submit(op, out);
}

static int pg_todo_list(struct store_worker *w, const struct todo_query *q, store_done_fn *done,
                        void *ctx, struct store_op **out)
{
    struct store_op *op;

    if (!store__query_valid(q))
        return STORE_INVALID;
    op = op_new(w, OP_TODO_LIST, done, ctx);
    op->tq = *q;
    op->is_list = true;
    op->q_text = q->q != NULL ? xstrdup(q->q) : NULL;
    op->tq.q = op->q_text;
    op->tq.user_id = op->user_id;
    if (!store__copy_uuid(op->user_id, q->user_id))
        return finish_later(op, STORE_OK, out); /* nobody's: an empty page */
    return read_submit(op, out);
}

/* ---- writes ------------------------------------------------------------ */

/*
 * Steps. A single-statement write (user insert, password change, todo
 * create) is one autocommit statement. PUT, PATCH and DELETE read, decide in
 * C and write, in one transaction spanning two Syncs:
 *   STEP_LOAD:   BEGIN; SELECT ... FOR UPDATE          (the row is locked)
 *   STEP_UPDATE: UPDATE ... RETURNING; COMMIT   or STEP_DELETE / STEP_INSERT
 *   STEP_ROLLBACK: ROLLBACK, when the decision (or an error) writes nothing.
 * The lock serialises concurrent writers of one row, so no write is lost and
 * none needs optimistic retries; only a PUT racing another PUT of the same
 * new id (its INSERT ... ON CONFLICT DO NOTHING inserts nothing) runs again,
 * and then finds the row. Serialization failures and deadlocks roll back and
 * run the operation again, WRITE_ATTEMPTS times at most.
 */

static void on_write_result(struct pg_query *q, const PGresult *res);
static void on_tx_result(struct pg_query *q, const PGresult *res);
static void on_timeout_result(struct pg_query *q, const PGresult *res);
static void on_write_sync(struct pg_query *q, const PGresult *res);
static void on_writer(struct pg_pool_waiter *wt, struct pg_conn *c);
static void step_done(struct store_op *op);

/* The statement of a step and its parameters. */
static const struct pg_stmt *step_stmt(struct store_op *op, const char *values[5],
                                       const char *const **v, struct todo_params *tp, char *ts)
{
    *v = values;
    switch (op->step) {
    case STEP_USER:
        timefmt_format(op->now_ms, ts);
        values[0] = op->id;
        values[1] = op->kind == OP_USER_CREATE ? op->email : op->password_hash;
        values[2] = op->kind == OP_USER_CREATE ? op->password_hash : ts;
        values[3] = op->name;
        values[4] = ts;
        return &fixed_stmts[op->kind == OP_USER_CREATE ? S_USER_INSERT : S_USER_SET_HASH];
    case STEP_CREATE:
        *v = todo_values(tp, &op->todo);
        return &fixed_stmts[S_TODO_INSERT];
    case STEP_LOAD:
        values[0] = op->id;
        return &fixed_stmts[S_TODO_LOAD];
    case STEP_INSERT:
        *v = todo_values(tp, &op->todo);
        return &fixed_stmts[S_TODO_INSERT_IF_ABSENT];
    case STEP_UPDATE:
        *v = todo_values(tp, &op->todo);
        return &fixed_stmts[S_TODO_UPDATE];
    case STEP_DELETE:
        values[0] = op->id;
        values[1] = op->user_id;
        return &fixed_stmts[S_TODO_DELETE];
    default:
        return NULL; /* STEP_ROLLBACK: no statement of its own */
    }
}

/* The transaction statement sent before (BEGIN) or after (COMMIT) the
 * step's statement, or alone (ROLLBACK); NULL for autocommit steps. */
static const struct pg_stmt *step_tx_stmt(enum write_step step)
{
    switch (step) {
    case STEP_LOAD:
        return &fixed_stmts[S_BEGIN];
    case STEP_INSERT:
    case STEP_UPDATE:
    case STEP_DELETE:
        return &fixed_stmts[S_COMMIT];
    case STEP_ROLLBACK:
        return &fixed_stmts[S_ROLLBACK];
    default:
        return NULL;
    }
}

/* Queue one item of the step; false when the connection refused it. */
static bool step_queue(struct store_op *op, const struct pg_stmt *stmt, const char *const *v,
                       struct pg_query *q)
{
    if (pg_conn_send(op->conn, stmt, v, q) != 0)
        return false;
    op->inflight++;
    return true;
}

/* Send op->step's statements and their own Sync on the held writer. The step
 * ends when every item queued has answered (step_item_done). 0, or -1 when
 * the connection refused the first item (it is broken; nothing is queued).
 * A refusal after that leaves the step "lost": the items queued answer NULL. */
static int write_send(struct store_op *op)
{
    struct todo_params tp;
    const char *values[5] = {NULL};
    const char *const *v;
    char ts[TIMEFMT_LEN + 1];
    const struct pg_stmt *stmt = step_stmt(op, values, &v, &tp, ts);
    const struct pg_stmt *tx = step_tx_stmt(op->step);
    bool ok = true;

    op->status = STORE_OK;
    op->lost = op->retry = op->has_row = false;
    op->affected = 0;
    op->inflight = 0;
    op->q.cb = on_write_result;
    op->q2.cb = on_tx_result;
    op->q3.cb = on_timeout_result;
    op->sync.cb = on_write_sync;
    if (op->step == STEP_LOAD) {
        const char *ms[1] = {op->w->st->statement_timeout};
        ok = step_queue(op, tx, NULL, &op->q2) && /* BEGIN */
             step_queue(op, &fixed_stmts[S_TIMEOUT], ms, &op->q3);
    }
    if (ok && stmt != NULL)
        ok = step_queue(op, stmt, v, &op->q);
    if (ok && tx != NULL && op->step != STEP_LOAD)
        ok = step_queue(op, tx, NULL, &op->q2); /* COMMIT or ROLLBACK */
    if (ok && pg_conn_sync(op->conn, &op->sync) == 0)
        op->inflight++;
    else
        op->lost = true;
    return op->inflight == 0 ? -1 : 0;
}

static enum write_step first_step(enum op_kind kind)
{
    switch (kind) {
    case OP_USER_CREATE:
    case OP_USER_SET_HASH:
        return STEP_USER;
    case OP_TODO_CREATE:
        return STEP_CREATE;
    default:
        return STEP_LOAD;
    }
}

/* Start the operation from its first step on the held writer `c`. 0, or
 * -1 when `c` refused it (it is broken; given back). Runs no callback. */
static int write_begin(struct store_op *op, struct pg_conn *c)
{
    op->conn = c;
    op->held = true;
    op->step = first_step(op->kind);
    op->message[0] = '\0';
    if (op->kind == OP_TODO_CREATE)
        todo_init_new(&op->todo, op->id, op->user_id, &op->patch, op->now_ms);
    if (write_send(op) == 0)
        return 0;
    release_conn(op);
    return -1;
}

/* Begin on a free writer, or queue for one. 0, or -1 when the pool is down
 * (nothing queued). Runs no callback. */
static int write_place(struct store_op *op)
{
    struct pg_conn *c;

    while ((c = pg_pool_take_writer(op->w->pool)) != NULL) {
        if (write_begin(op, c) == 0)
            return 0;
    }
    op->waiter.cb = on_writer;
    return pg_pool_wait(op->w->pool, PG_POOL_WRITER, &op->waiter);
}

/* From the loop, with no transaction open: run the whole operation again
 * (bounded), or fail it. */
static void write_again(struct store_op *op)
{
    release_conn(op);
    if (op->attempts++ >= WRITE_ATTEMPTS) {
        if (op->message[0] == '\0')
            set_message(op, "gave up after repeated conflicts or connection failures");
        finish(op, STORE_UNAVAILABLE);
        return;
    }
    if (write_place(op) != 0) {
        set_message(op, pg_pool_error(op->w->pool));
        finish(op, STORE_UNAVAILABLE);
    }
}

static void on_writer(struct pg_pool_waiter *wt, struct pg_conn *c)
{
    struct store_op *op = H2O_STRUCT_FROM_MEMBER(struct store_op, waiter, wt);

    if (c == NULL) {
        set_message(op, pg_pool_error(op->w->pool));
        finish(op, STORE_UNAVAILABLE);
        return;
    }
    if (write_begin(op, c) != 0)
        write_again(op);
}

/* An error result of the step: keep the first. */
static void step_error(struct store_op *op, const PGresult *res)
{
    if (op->status != STORE_OK || PQresultStatus(res) == PGRES_PIPELINE_ABORTED)
        return;
    op->retry = result_transient(res);
    op->status = status_of_error(op, res);
}

/* The step's main statement: its rows, or its error. */
static void on_write_result(struct pg_query *q, const PGresult *res)
{
    struct store_op *op = H2O_STRUCT_FROM_MEMBER(struct store_op, q, q);
    ExecStatusType st;

    st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (res == NULL) {
        op->lost = true;
    } else if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        step_error(op, res);
    } else {
        /* Every todo write says RETURNING: rows returned = rows changed. */
        op->affected = st == PGRES_TUPLES_OK ? PQntuples(res) : 0;
        op->has_row = op->affected > 0;
        if (op->has_row && op->step == STEP_LOAD)
            op->status = read_todo(op, res, 0, &op->todo);
        else if (op->has_row && op->step == STEP_USER)
            op->status = read_user(op, res, 0, &op->user);
    }
    if (--op->inflight == 0)
        step_done(op);
}

/* A side statement of the step, whose only news is an error: NULL means the
 * connection was lost, any status but ok an error. */
static void on_side_result(struct store_op *op, const PGresult *res, ExecStatusType ok)
{
    if (res == NULL)
        op->lost = true;
    else if (PQresultStatus(res) != ok)
        step_error(op, res);
    if (--op->inflight == 0)
        step_done(op);
}

/* BEGIN, COMMIT or ROLLBACK (a failed COMMIT means nothing was written). */
static void on_tx_result(struct pg_query *q, const PGresult *res)
{
    on_side_result(H2O_STRUCT_FROM_MEMBER(struct store_op, q2, q), res, PGRES_COMMAND_OK);
}

/* The transaction's SET LOCAL statement_timeout. */
static void on_timeout_result(struct pg_query *q, const PGresult *res)
{
    on_side_result(H2O_STRUCT_FROM_MEMBER(struct store_op, q3, q), res, PGRES_TUPLES_OK);
}

/* The step's Sync: ReadyForQuery arrived (an error raised at commit comes
 * instead of PGRES_PIPELINE_SYNC). */
static void on_write_sync(struct pg_query *q, const PGresult *res)
{
    on_side_result(H2O_STRUCT_FROM_MEMBER(struct store_op, sync, q), res, PGRES_PIPELINE_SYNC);
}

/* ---- write steps: what an answered step leads to ------------------------ */

/* The loaded row (op->todo) against ownership and If-Match. */
static int check_loaded(struct store_op *op)
{
    if (!op->has_row || strcmp(op->todo.user_id, op->user_id) != 0)
        return STORE_NOT_FOUND; /* another user's is exactly like a missing one */
    if (op->if_match >= 0 && op->todo.version != op->if_match) {
        set_message(op, "version does not match If-Match");
        return STORE_PRECONDITION_FAILED;
    }
    return STORE_OK;
}

/* After STEP_LOAD (row locked): the next write step (returns 1), or the
 * final status, which STEP_ROLLBACK then delivers. */
static int after_load(struct store_op *op)
{
    int status;

    if (!op->has_row && op->kind == OP_TODO_PUT) {
        /* If-Match (a version or *) asks for an existing representation. */
        if (op->if_match != STORE_IF_MATCH_NONE) {
            set_message(op, "If-Match on a todo that does not exist");
            return STORE_PRECONDITION_FAILED;
        }
        todo_init_new(&op->todo, op->id, op->user_id, &op->patch, op->now_ms);
        op->step = STEP_INSERT;
        return 1;
    }
    if ((status = check_loaded(op)) != STORE_OK)
        return status;
    if (op->kind == OP_TODO_DELETE) {
        op->step = STEP_DELETE;
        return 1;
    }
    op->has_todo = true;
    if (!todo_apply(&op->todo, &op->patch, op->now_ms))
        return STORE_OK; /* a no-op leaves the row as it is */
    op->step = STEP_UPDATE;
    return 1;
}

/* An answered step without error: 1 to go on with op->step, 0 to run the
 * whole operation again, or 2 for done with op->final set. */
static int after_step(struct store_op *op)
{
    switch (op->step) {
    case STEP_USER:
        if (op->kind == OP_USER_SET_HASH && !op->has_row) {
            op->final = STORE_NOT_FOUND;
            return 2;
        }
        if (op->kind == OP_USER_CREATE) {
            memcpy(op->user.id, op->id, sizeof(op->user.id));
            op->user.email = op->email;
            op->user.password_hash = op->password_hash;
            op->user.name = op->name;
            op->user.is_active = true;
            op->user.created_at_ms = op->user.updated_at_ms = op->now_ms;
        }
        op->has_user = true;
        op->final = STORE_OK;
        return 2;
    case STEP_LOAD: {
        int next = after_load(op);
        if (next == 1)
            return 1;
        op->final = next;
        op->step = STEP_ROLLBACK; /* decided without writing */
        return 1;
    }
    case STEP_CREATE:
    case STEP_INSERT:
        if (op->affected != 1)
            return 0; /* PUT: another PUT inserted this id meanwhile */
        op->created = op->has_todo = true;
        op->final = STORE_OK;
        return 2;
    case STEP_UPDATE:
    case STEP_DELETE:
        if (op->affected != 1)
            return 0; /* cannot happen under the lock; be safe */
        op->final = STORE_OK;
        return 2;
    case STEP_ROLLBACK:
        return op->retry_after_rollback ? 0 : 2;
    default:
        log_kv(LOG_ERROR, "store_pg: unknown write step", NULL);
        abort();
    }
}

/* The step's connection broke. A load or rollback wrote nothing: run it
 * again elsewhere. A write may or may not have committed: UNAVAILABLE. */
static void step_lost(struct store_op *op)
{
    if (op->step == STEP_LOAD || (op->step == STEP_ROLLBACK && op->retry_after_rollback)) {
        write_again(op);
        return;
    }
    if (op->step == STEP_ROLLBACK) {
        finish(op, op->final);
        return;
    }
    set_message(op, "connection to the database lost during a write; it may not have committed");
    finish(op, STORE_UNAVAILABLE);
}

static bool tx_open(struct store_op *op)
{
    PGTransactionStatusType ts = PQtransactionStatus(pg_conn_pgconn(op->conn));

    return ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR;
}

/* The step failed: roll back first if its transaction is still open, then
 * run again (transient errors) or deliver the error. */
static void step_failed(struct store_op *op)
{
    if (op->step != STEP_ROLLBACK) {
        op->final = op->status;
        op->retry_after_rollback = op->retry;
        if (tx_open(op)) {
            op->step = STEP_ROLLBACK;
            if (write_send(op) == 0)
                return;
            /* Broken: the server rolls back by itself. */
        }
    }
    /* (A failed ROLLBACK leaves the writer to the pool, which replaces it.) */
    if (op->retry_after_rollback)
        write_again(op);
    else
        finish(op, op->final);
}

/* Every item of the step answered: decide what comes next. */
static void step_done(struct store_op *op)
{
    int next;

    if (op->done == NULL) {
        /* Cancelled: stop at this step boundary. A writer left inside a
         * transaction is replaced by the pool (the server rolls back). */
        release_conn(op);
        op_free(op);
        return;
    }
    if (op->lost) {
        step_lost(op);
        return;
    }
    if (op->status != STORE_OK) {
        step_failed(op);
        return;
    }
    next = after_step(op);
    if (next == 1 && write_send(op) == 0)
        return;
    if (next == 2) {
        finish(op, op->final);
        return;
    }
    /* Run it all again: the writer broke before the next step was sent
     * (the server rolls back any open transaction), or a PUT lost the race
     * to insert a new id. */
    write_again(op);
}

/* ---- write submission -------------------------------------------------- */

/* 0 (started or queued), or STORE_UNAVAILABLE (op freed). */
static int write_submit(struct store_op *op, struct store_op **out)
{
    op->attempts = 1;
    if (migrations_pending(op) || write_place(op) != 0) {
        op_free(op);
        return STORE_UNAVAILABLE;
    }
    if (out != NULL)
        *out = op;
    return 0;
}

static int pg_user_create(struct store_worker *w, const struct user_new *u, store_done_fn *done,
                          void *ctx, struct store_op **out)
{
    struct store_op *op;
    char id[UUID_STR_LEN + 1];

    if (u == NULL || !store__copy_uuid(id, u->id) || u->email == NULL || u->password_hash == NULL)
        return STORE_INVALID;
    op = op_new(w, OP_USER_CREATE, done, ctx);
    memcpy(op->id, id, sizeof(id));
    op->email = xstrdup(u->email);
    op->password_hash = xstrdup(u->password_hash);
    op->name = u->name != NULL ? xstrdup(u->name) : NULL;
    op->now_ms = u->now_ms;
    return write_submit(op, out);
}

static int pg_user_set_password_hash(struct store_worker *w, const char *id, const char *hash,
                                     int64_t now_ms, store_done_fn *done, void *ctx,
                                     struct store_op **out)
{
    struct store_op *op;
    char uid[UUID_STR_LEN + 1];

    if (!store__copy_uuid(uid, id) || hash == NULL)
        return STORE_INVALID;
    op = op_new(w, OP_USER_SET_HASH, done, ctx);
    memcpy(op->id, uid, sizeof(uid));
    op->password_hash = xstrdup(hash);
    op->now_ms = now_ms;
    return write_submit(op, out);
}

/* Validate and copy a todo write; NULL (and *status) when invalid. A
 * complete patch (create/put) must carry a title. */
static struct store_op *todo_write_op(struct store_worker *w, enum op_kind kind,
                                      const struct todo_write *req, bool need_patch,
                                      bool complete, store_done_fn *done, void *ctx, int *status)
{
    char uid[UUID_STR_LEN + 1], id[UUID_STR_LEN + 1];
    struct store_op *op;

    *status = STORE_INVALID;
    if (req == NULL || !store__copy_uuid(uid, req->user_id) || !store__copy_uuid(id, req->id))
        return NULL;
    if (need_patch && (req->patch == NULL || (complete && !req->patch->has_title) ||
                       (req->patch->has_title && req->patch->title == NULL)))
        return NULL;
    if (req->if_match < 0 && req->if_match != STORE_IF_MATCH_NONE &&
        req->if_match != STORE_IF_MATCH_ANY)
        return NULL;
    op = op_new(w, kind, done, ctx);
    memcpy(op->user_id, uid, sizeof(uid));
    memcpy(op->id, id, sizeof(id));
    if (need_patch)
        store__copy_patch(&op->patch, req->patch);
    op->if_match = req->if_match;
    op->now_ms = req->now_ms;
    *status = STORE_OK;
    return op;
}

static int todo_write_submit(struct store_worker *w, enum op_kind kind,
                             const struct todo_write *req, bool need_patch, bool complete,
                             store_done_fn *done, void *ctx, struct store_op **out)
{
    int status;
    struct store_op *op = todo_write_op(w, kind, req, need_patch, complete, done, ctx, &status);

    return op == NULL ? status : write_submit(op, out);
}

static int create_submit(struct store_op *op, struct store_op **out);

static int pg_todo_create(struct store_worker *w, const struct todo_write *req,
                          store_done_fn *done, void *ctx, struct store_op **out)
{
    int status;
    struct store_op *op = todo_write_op(w, OP_TODO_CREATE, req, true, true, done, ctx, &status);

    return op == NULL ? status : create_submit(op, out);
}

static int pg_todo_put(struct store_worker *w, const struct todo_write *req, store_done_fn *done,
                       void *ctx, struct store_op **out)
{
    return todo_write_submit(w, OP_TODO_PUT, req, true, true, done, ctx, out);
}

static int pg_todo_patch(struct store_worker *w, const struct todo_write *req,
                         store_done_fn *done, void *ctx, struct store_op **out)
{
    return todo_write_submit(w, OP_TODO_PATCH, req, true, false, done, ctx, out);
}

static int pg_todo_delete(struct store_worker *w, const struct todo_write *req,
                          store_done_fn *done, void *ctx, struct store_op **out)
{
    return todo_write_submit(w, OP_TODO_DELETE, req, false, false, done, ctx, out);
}

/* ---- create batches (group commit) -------------------------------------- */

/*
 * Creates do not take a writer each: they queue on the worker (create_q),
 * and at the end of the loop iteration (batch_defer) the queue is sent as
 * batches of at most BATCH_MAX, at most w->max_batches in flight, each on
 * one held writer as ONE statement and a Sync: INSERT ... SELECT * FROM
 * unnest(one array per column) ON CONFLICT (id) DO NOTHING RETURNING id. The
 * Sync's implicit transaction commits it (no BEGIN, no session state, so
 * PgBouncer in transaction mode is fine). Concurrent creates then share one
 * statement, one commit and one WAL flush, as the SQLite writer's groups
 * do. The rows go in id order (two batches never wait on each other's
 * uncommitted ids in opposite orders), each id once: a create of an id an
 * earlier create of the batch has is not sent.
 *
 *   - The INSERT and the Sync answered, the Sync with PGRES_PIPELINE_SYNC:
 *     the transaction committed. A create whose id the INSERT returned is
 *     STORE_OK; any other met an existing id (committed, or earlier in this
 *     batch) and is STORE_CONFLICT. Only then does any done run.
 *   - Any error (the INSERT's, or the commit's): the server rolled the whole
 *     batch back and nothing was written. Every operation of the batch then
 *     runs again alone, through the ordinary write path (its own
 *     transaction and retries, WRITE_ATTEMPTS in all), so a failing create
 *     never fails or changes the others.
 *   - The connection broke after the Sync was sent: the batch may or may not
 *     have committed, so each of its creates is STORE_UNAVAILABLE (as a lone
 *     write would be); before the Sync was sent nothing can have committed,
 *     and each runs again alone.
 */

#define BATCH_MAX 256
/* Batches in flight per worker: more lets a create go out at once instead
 * of waiting for a batch to come back, fewer makes bigger batches (less
 * CPU per create); each holds a writer, the rest stay for other writes. */
#define BATCHES_PER_WORKER 4
/* A column's array literal: 256 descriptions of 10,000 characters, each
 * byte escaped, fit many times over. */
#define BATCH_COLUMN_CAP ((size_t)256 << 20)
#define NCOLS 9 /* TODO_COLS */

static void batch_pump(struct pg_worker *w);

static void batch_free(struct create_batch *b)
{
    h2o_linklist_unlink(&b->link);
    b->w->nbatches--;
    free(b->rows);
    free(b);
}

/* Take op out of its batch and run it alone (or give up). From the loop. */
static void create_alone(struct store_op *op)
{
    h2o_linklist_unlink(&op->qlink);
    op->batch = NULL;
    op->conn = NULL;
    if (op->done == NULL) {
        op_free(op);
        return;
    }
    write_again(op);
}

static void batch_done(struct create_batch *b)
{
    struct pg_worker *w = b->w;

    pg_pool_release_writer(w->pool, b->conn);
    while (!h2o_linklist_is_empty(&b->ops)) {
        struct store_op *op = H2O_STRUCT_FROM_MEMBER(struct store_op, qlink, b->ops.next);
        if (b->failed || (b->lost && !b->sync_sent)) {
            create_alone(op);
            continue;
        }
        h2o_linklist_unlink(&op->qlink);
        op->batch = NULL;
        op->conn = NULL;
        if (b->lost) {
            set_message(op, "connection to the database lost during a write; it may not have"
                            " committed");
            op->status = STORE_UNAVAILABLE;
        } else if (op->status == STORE_CONFLICT) {
            set_message(op, "a todo with this id already exists");
        }
        if (op->done == NULL)
            op_free(op);
        else
            finish(op, op->status);
    }
    batch_free(b);
    batch_pump(w);
}

static void batch_item_done(struct create_batch *b)
{
    if (--b->inflight == 0)
        batch_done(b);
}

/* bsearch: canonical id text against a row's operation. */
static int row_id_cmp(const void *key, const void *elem)
{
    return strcmp(key, (*(struct store_op *const *)elem)->id);
}

/* The ids the INSERT returned: those creates wrote their row. */
static void batch_mark_created(struct create_batch *b, const PGresult *res)
{
    char id[UUID_STR_LEN + 1];
    struct store_op **row;

    for (int i = 0; i < PQntuples(res); i++) {
        row = NULL;
        if (!PQgetisnull(res, i, 0) && PQgetlength(res, i, 0) == 16) {
            uuid_format((const unsigned char *)PQgetvalue(res, i, 0), id);
            row = bsearch(id, b->rows, b->nrows, sizeof(*b->rows), row_id_cmp);
        }
        if (row == NULL) {
            log_kv(LOG_ERROR, "store_pg: a batch INSERT returned an id it was not given", NULL);
            continue;
        }
        (*row)->status = STORE_OK;
        (*row)->created = (*row)->has_todo = true;
    }
}

static void on_batch_insert(struct pg_query *q, const PGresult *res)
{
    struct create_batch *b = H2O_STRUCT_FROM_MEMBER(struct create_batch, insert, q);

    if (res == NULL)
        b->lost = true;
    else if (PQresultStatus(res) != PGRES_TUPLES_OK)
        b->failed = true; /* its creates run alone, each with its own error */
    else
        batch_mark_created(b, res);
    batch_item_done(b);
}

static void on_batch_sync(struct pg_query *q, const PGresult *res)
{
    struct create_batch *b = H2O_STRUCT_FROM_MEMBER(struct create_batch, sync, q);

    if (res == NULL)
        b->lost = true;
    else if (PQresultStatus(res) != PGRES_PIPELINE_SYNC)
        b->failed = true; /* the commit failed */
    batch_item_done(b);
}

/* qsort: by id, then by place in the batch. */
static int row_cmp(const void *a, const void *b)
{
    const struct store_op *x = *(struct store_op *const *)a;
    const struct store_op *y = *(struct store_op *const *)b;
    int c = strcmp(x->id, y->id);

    return c != 0 ? c : (x->batch_pos > y->batch_pos) - (x->batch_pos < y->batch_pos);
}

/* Move up to BATCH_MAX queued creates into b, each STORE_CONFLICT until
 * its id comes back, and list its rows: by id, the first create of each. */
static void batch_take(struct pg_worker *w, struct create_batch *b)
{
    size_t n = 0, kept = 0;

    b->rows = xmalloc(BATCH_MAX * sizeof(*b->rows));
    while (n < BATCH_MAX && !h2o_linklist_is_empty(&w->create_q)) {
        struct store_op *op = H2O_STRUCT_FROM_MEMBER(struct store_op, qlink, w->create_q.next);
        h2o_linklist_unlink(&op->qlink);
        w->ncreate_q--;
        h2o_linklist_insert(&b->ops, &op->qlink);
        op->batch = b;
        op->conn = b->conn;
        op->batch_pos = n;
        op->status = STORE_CONFLICT;
        todo_init_new(&op->todo, op->id, op->user_id, &op->patch, op->now_ms);
        b->rows[n++] = op;
    }
    qsort(b->rows, n, sizeof(*b->rows), row_cmp);
    for (size_t i = 0; i < n; i++) {
        if (kept == 0 || strcmp(b->rows[i]->id, b->rows[kept - 1]->id) != 0)
            b->rows[kept++] = b->rows[i];
    }
    b->nrows = kept;
}

/* An element of an array literal: NULL, or double-quoted with " and \
 * escaped (the only characters special inside quotes). */
static void array_elem(struct buf *col, const char *v)
{
    size_t n;

    if (v == NULL) {
        buf_append(col, "NULL", 4);
        return;
    }
    buf_append_char(col, '"');
    while (*v != '\0') {
        n = strcspn(v, "\"\\");
        buf_append(col, v, n);
        v += n;
        if (*v != '\0') {
            buf_append_char(col, '\\');
            buf_append_char(col, *v++);
        }
    }
    buf_append_char(col, '"');
}

/* The batch's rows as one text array literal per column ($1..$9). False
 * when one would exceed BATCH_COLUMN_CAP. The caller frees cols. */
static bool batch_columns(const struct create_batch *b, struct buf cols[NCOLS],
                          const char *values[NCOLS])
{
    bool ok = true;

    for (int j = 0; j < NCOLS; j++) {
        buf_init(&cols[j], BATCH_COLUMN_CAP);
        buf_append_char(&cols[j], '{');
    }
    for (size_t i = 0; i < b->nrows; i++) {
        struct todo_params tp;
        const char *const *v = todo_values(&tp, &b->rows[i]->todo);
        for (int j = 0; j < NCOLS; j++) {
            if (i > 0)
                buf_append_char(&cols[j], ',');
            array_elem(&cols[j], v[j]);
        }
    }
    for (int j = 0; j < NCOLS; j++) {
        buf_append_char(&cols[j], '}');
        ok = ok && !cols[j].overflow;
        values[j] = cols[j].data;
    }
    return ok;
}

/* Move up to BATCH_MAX queued creates into a new batch on the held writer
 * `c` and send it. From the loop. */
static void batch_send(struct pg_worker *w, struct pg_conn *c)
{
    struct create_batch *b = xcalloc(1, sizeof(*b));
    struct buf cols[NCOLS];
    const char *values[NCOLS];
    bool ok;

    b->w = w;
    b->conn = c;
    h2o_linklist_init_anchor(&b->ops);
    h2o_linklist_insert(&w->batches, &b->link);
    w->nbatches++;
    batch_take(w, b);
    ok = batch_columns(b, cols, values);
    b->insert.cb = on_batch_insert;
    /* libpq copies the parameters into its output buffer. */
    ok = ok && pg_conn_send(c, &fixed_stmts[S_TODO_INSERT_MANY], values, &b->insert) == 0;
    for (int j = 0; j < NCOLS; j++)
        buf_free(&cols[j]);
    b->inflight += ok;
    b->sync.cb = on_batch_sync;
    b->sync_sent = ok && pg_conn_sync(c, &b->sync) == 0;
    b->inflight += b->sync_sent;
    if (!b->sync_sent)
        b->lost = true;
    if (b->inflight == 0)
        batch_done(b); /* nothing queued: nothing sent; each runs alone */
}

static void fail_queued_creates(struct pg_worker *w)
{
    while (!h2o_linklist_is_empty(&w->create_q)) {
        struct store_op *op = H2O_STRUCT_FROM_MEMBER(struct store_op, qlink, w->create_q.next);
        h2o_linklist_unlink(&op->qlink);
        w->ncreate_q--;
        set_message(op, pg_pool_error(w->pool));
        finish(op, STORE_UNAVAILABLE);
    }
}

static void on_batch_writer(struct pg_pool_waiter *wt, struct pg_conn *c)
{
    struct pg_worker *w = H2O_STRUCT_FROM_MEMBER(struct pg_worker, batch_waiter, wt);

    if (c == NULL) {
        fail_queued_creates(w);
        return;
    }
    if (h2o_linklist_is_empty(&w->create_q)) {
        pg_pool_release_writer(w->pool, c);
        return;
    }
    batch_send(w, c);
    batch_pump(w);
}

/* Send what is queued, as far as writers and the in-flight limit allow, or
 * wait for a writer. From the loop only (it may call done). */
static void batch_pump(struct pg_worker *w)
{
    while (!h2o_linklist_is_empty(&w->create_q) && w->nbatches < w->max_batches &&
           !h2o_linklist_is_linked(&w->batch_waiter._link)) {
        struct pg_conn *c = pg_pool_take_writer(w->pool);
        if (c != NULL) {
            batch_send(w, c);
            continue;
        }
        w->batch_waiter.cb = on_batch_writer;
        if (pg_pool_wait(w->pool, PG_POOL_WRITER, &w->batch_waiter) != 0)
            fail_queued_creates(w);
        return;
    }
}

static void on_batch_defer(h2o_timeout_entry_t *entry)
{
    batch_pump(H2O_STRUCT_FROM_MEMBER(struct pg_worker, batch_defer, entry));
}

/* Queue a create for the next batch. 0, or STORE_UNAVAILABLE (op freed). */
static int create_submit(struct store_op *op, struct store_op **out)
{
    struct pg_worker *w = op->w;

    op->attempts = 1;
    if (migrations_pending(op) || w->ncreate_q >= POOL_MAX_WAITERS) {
        op_free(op);
        return STORE_UNAVAILABLE;
    }
    h2o_linklist_insert(&w->create_q, &op->qlink);
    w->ncreate_q++;
    if (!h2o_timeout_is_linked(&w->batch_defer))
        h2o_timeout_link(w->super._loop, &w->zero, &w->batch_defer);
    if (out != NULL)
        *out = op;
    return 0;
}

/* ---- store and workers ------------------------------------------------- */

/* The list (rows) and count statements for every sort and filter shape.
 * Parameters are numbered densely ($1 user, then completed and q when
 * present, then limit and offset): PostgreSQL must see every one used. */
static void build_list_stmts(struct pg_store *st)
{
    for (int i = 0; i < 4 + (int)NSORTS * 4; i++) {
        bool count = i < 4;
        int variant = count ? i : (i - 4) % 4, sort = count ? 0 : (i - 4) / 4;
        bool has_c = variant & 2, has_q = variant & 1;
        int n = 1;
        char cond_c[48] = "", cond_q[200] = "", tail[96] = "";

        if (has_c)
            snprintf(cond_c, sizeof(cond_c), " AND completed = $%d::boolean", ++n);
        if (has_q) {
            n++;
            /* A literal substring, case-folded with the database's default
             * collation (title's own "C" collation would fold ASCII only). */
            snprintf(cond_q, sizeof(cond_q),
                     " AND (strpos(lower(title COLLATE \"default\"), lower($%d::text)) > 0"
                     " OR strpos(lower(description), lower($%d::text)) > 0)",
                     n, n);
        }
        if (!count)
            snprintf(tail, sizeof(tail), " ORDER BY %s LIMIT $%d::integer OFFSET $%d::bigint",
                     list_order[sort], n + 1, n + 2);
        snprintf(st->list_sql[i], sizeof(st->list_sql[i]),
                 "SELECT %s FROM todos WHERE user_id = $1::uuid%s%s%s",
                 count ? "count(*)" : TODO_COLS, cond_c, cond_q, tail);
        if (count)
            snprintf(st->list_names[i], sizeof(st->list_names[i]), "todo_count_%d", variant);
        else
            snprintf(st->list_names[i], sizeof(st->list_names[i]), "todo_list_%d_%d", sort,
                     variant);
        st->list_stmts[i] = (struct pg_stmt){
            .id = (unsigned)(S_COUNT + i),
            .name = st->list_names[i],
            .sql = st->list_sql[i],
            .nparams = count ? n : n + 2,
            .binary = true,
        };
    }
}

static void pg_close(struct store *s)
{
    struct pg_store *st = s->_priv;

    if (st == NULL)
        return;
    pg_boot_stop(st->boot);
    pg_admin_close(st->admin);
    free(st->conninfo);
    free(st);
    s->_priv = NULL;
}

/* What libpq says about a conninfo it cannot parse, without the quoted
 * parts (they may be a piece of the password). */
static void conninfo_error(const char *msg, char *err, size_t errlen)
{
    size_t n = 0;
    bool quoted = false;

    n = (size_t)snprintf(err, errlen, "postgres: the connection URL is malformed: ");
    for (const char *p = msg != NULL ? msg : ""; *p != '\0' && n + 4 < errlen; p++) {
        if (*p == '"') {
            quoted = !quoted;
            if (quoted) {
                memcpy(err + n, "\"...", 4);
                n += 4;
            } else {
                err[n++] = '"';
            }
        } else if (!quoted && *p != '\n') {
            err[n++] = *p;
        }
    }
    err[n < errlen ? n : errlen - 1] = '\0';
}

/* Wait this long at open for the start-up migrations' first attempt. */
#define OPEN_WAIT_MS 5000

static int pg_open(struct store *s, const char *conninfo, char *err, size_t errlen)
{
    struct pg_store *st;
    PQconninfoOption *parsed;
    char *msg = NULL;

    if (conninfo == NULL || conninfo[0] == '\0') {
        snprintf(err, errlen, "postgres: a connection URL is required");
        return -1;
    }
    /* Refuse now what can never connect; a server that does not answer
     * yet is not an error (see pg_boot.h and the pool's retries). */
    parsed = PQconninfoParse(conninfo, &msg);
    if (parsed == NULL) {
        conninfo_error(msg, err, errlen);
        PQfreemem(msg);
        return -1;
    }
    PQconninfoFree(parsed);
    st = xcalloc(1, sizeof(*st));
    st->conninfo = xstrdup(conninfo);
    st->o = s->_opts;
    /* Named prepared statements, unless PgBouncer in transaction mode is in
     * between (it cannot keep them): a Neon pooler endpoint. */
    st->prepared = st->o.prepared == STORE_PREPARED_ON ||
                   (st->o.prepared == STORE_PREPARED_AUTO && !pg_conn_host_is_pooler(conninfo));
    st->schema_latest = migrate_latest_version("postgres");
    snprintf(st->statement_timeout, sizeof(st->statement_timeout), "%u",
             st->o.pool_timeout_ms > 0 ? st->o.pool_timeout_ms : POOL_TIMEOUT_MS);
    build_list_stmts(st);
    st->admin = pg_admin_new(conninfo);
    s->_priv = st;
    if (st->o.migrate) {
        st->boot = pg_boot_start(conninfo, OPEN_WAIT_MS, err, errlen);
        if (st->boot == NULL) {
            pg_close(s);
            return -1;
        }
    }
    return 0;
}

static int pg_schema_version(struct store *s, int64_t *version)
{
    struct pg_store *st = s->_priv;
    char msg[256];
    int status = pg_admin_schema_version(st->admin, version, msg, sizeof(msg));

    if (status != STORE_OK)
        log_kv(LOG_WARN, "postgres: cannot read the schema version", "error", msg, NULL);
    return status;
}

static void pg_migrate_db(struct store *s, struct migrate_db *db)
{
    struct pg_store *st = s->_priv;

    pg_admin_migrate_db(st->admin, db);
}

/* A worker's share of a total: total / workers, rounded up. */
static unsigned share(unsigned total, unsigned workers)
{
    return (total + workers - 1) / workers;
}

/* The pool of one worker, from the store's options (totals over all
 * workers): one reader and the rest of the share as writers. */
static struct pg_pool_options pool_options(const struct pg_store *st)
{
    unsigned workers = st->o.workers > 0 ? st->o.workers : 1;
    unsigned size = st->o.pool_size > 0 ? share(st->o.pool_size, workers)
                                        : READERS_PER_WORKER + WRITERS_PER_WORKER;

    return (struct pg_pool_options){
        .conninfo = st->conninfo,
        .prepared = st->prepared,
        .nreaders = READERS_PER_WORKER,
        .nwriters = size > READERS_PER_WORKER ? size - READERS_PER_WORKER : 1,
        .noverflow = share(st->o.pool_max_overflow, workers),
        .timeout_ms = st->o.pool_timeout_ms > 0 ? st->o.pool_timeout_ms : POOL_TIMEOUT_MS,
        .recycle_ms = (uint64_t)st->o.pool_recycle_s * 1000,
        .pre_ping = st->o.pool_pre_ping,
        /* One Sync in flight per reader: bigger batches (top comment), and
         * what a transaction-mode pooler needs. */
        .serial_syncs = true,
        .max_waiters = POOL_MAX_WAITERS,
    };
}

static struct store_worker *pg_worker_attach(struct store *s, h2o_loop_t *loop)
{
    struct pg_store *st = s->_priv;
    struct pg_worker *w = xcalloc(1, sizeof(*w));
    struct pg_pool_options o = pool_options(st);

    w->super._store = s;
    w->super._loop = loop;
    w->st = st;
    h2o_linklist_init_anchor(&w->ops);
    h2o_linklist_init_anchor(&w->create_q);
    h2o_linklist_init_anchor(&w->batches);
    h2o_timeout_init(loop, &w->zero, 0);
    w->batch_defer.cb = on_batch_defer;
    w->max_batches = BATCHES_PER_WORKER;
    w->pool = pg_pool_new(loop, &o);
    return &w->super;
}

static void pg_worker_detach(struct store_worker *sw)
{
    struct pg_worker *w = (struct pg_worker *)sw;
    h2o_linklist_t *node;

    /* Nothing runs on other threads: closing the connections drops every
     * statement in flight (their callbacks never run), then the operations
     * go. A write in flight may or may not commit. */
    for (node = w->ops.next; node != &w->ops; node = node->next) {
        struct store_op *op = H2O_STRUCT_FROM_MEMBER(struct store_op, link, node);
        h2o_timeout_unlink(&op->defer);
        pg_pool_cancel_wait(w->pool, &op->waiter);
    }
    h2o_timeout_unlink(&w->batch_defer);
    pg_pool_cancel_wait(w->pool, &w->batch_waiter);
    pg_pool_free(w->pool);
    while (!h2o_linklist_is_empty(&w->ops))
        op_free(H2O_STRUCT_FROM_MEMBER(struct store_op, link, w->ops.next));
    while (!h2o_linklist_is_empty(&w->batches)) /* empty now */
        batch_free(H2O_STRUCT_FROM_MEMBER(struct create_batch, link, w->batches.next));
    h2o_timeout_dispose(w->super._loop, &w->zero);
    free(w);
}

static const char *const pg_schemes[] = {"postgresql", "postgres", "postgresql+asyncpg", NULL};

const struct store_backend store_backend_pg = {
    .name = "postgres",
    .schemes = pg_schemes,
    .caps = STORE_CAP_PIPELINE | STORE_CAP_OWN_MIGRATIONS,
    .open = pg_open,
    .close = pg_close,
    .worker_attach = pg_worker_attach,
    .worker_detach = pg_worker_detach,
    .schema_version = pg_schema_version,
    .migrate_db = pg_migrate_db,
    .ping = pg_ping,
    .user_create = pg_user_create,
    .user_by_email = pg_user_by_email,
    .user_by_id = pg_user_by_id,
    .user_set_password_hash = pg_user_set_password_hash,
    .todo_get = pg_todo_get,
    .todo_list = pg_todo_list,
    .todo_create = pg_todo_create,
    .todo_put = pg_todo_put,
    .todo_patch = pg_todo_patch,
    .todo_delete = pg_todo_delete,
    .op_cancel = pg_op_cancel,
};
