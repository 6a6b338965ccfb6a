/*
 * The SQLite backend (see store.h for the contract it implements).
 *
 * Reads run inline on the submitting worker's own read connection (WAL lets
 * them run beside the writer; a point read takes microseconds), copy the row
 * into the operation, and deliver `done` through a zero-delay timer on the
 * worker's loop: never inside the submit call.
 *
 * Writes become jobs for the one writer thread (sqlite_writer.h), which
 * commits them in groups and posts each back to the worker's receiver; the
 * receiver callback calls `done` (unless cancelled) and frees the operation.
 * Every write is atomic: it runs alone in its savepoint on the only write
 * connection, so read-check-write sequences (If-Match, upsert, ownership)
 * need no further locking.
 *
 * This file exports only store_backend_sqlite.
 */
#include "store/store_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate.h"
#include "model/uuid.h"
#include "store/sqlite_common.h"
#include "store/sqlite_writer.h"
#include "util/log.h"
#include "util/xalloc.h"

/* ---- state ------------------------------------------------------------- */

struct sq_store {
    char *path;
    sqlite3 *admin; /* migrations and schema checks */
    pthread_mutex_t admin_mutex; /* schema_version may run on any thread */
    struct sqlite_writer *writer;
};

/* Reader statement slots. The list and count statements come in one variant
 * per (sort, completed filter?, q filter?) so that each has a plan that uses
 * the matching index; their SQL is assembled from constant fragments. */
enum {
    R_PING,
    R_USER_BY_EMAIL,
    R_USER_BY_ID,
    R_TODO_GET,
    R_BEGIN,
    R_COMMIT,
    R_COUNT, /* 4 variants */
    R_LIST = R_COUNT + 4, /* 6 sorts x 4 variants */
    R_NSTMTS = R_LIST + 6 * 4,
};

struct sq_worker {
    struct store_worker super; /* first: store.c sees only this */
    struct sq_store *st;
    sqlite3 *db; /* this worker's read connection */
    sqlite3_stmt *stmts[R_NSTMTS];
    h2o_timeout_t zero; /* delivers inline reads on the next loop turn */
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver; /* write jobs come back here */
    h2o_linklist_t ops; /* every operation not yet freed, for detach */
};

/* One operation, read or write. Everything `done` sees lives here. */
struct store_op {
    struct sq_worker *w;
    store_done_fn *done; /* NULL once cancelled */
    void *ctx;
    h2o_linklist_t link; /* in w->ops */
    bool is_write;
    h2o_timeout_entry_t defer; /* reads */
    struct sqlite_job job;     /* writes; job.status/job.message hold every op's result */
    /* Write inputs, copied at submit. */
    char user_id[UUID_STR_LEN + 1];
    char id[UUID_STR_LEN + 1];
    struct todo_patch patch; /* owns copies of the caller's strings */
    int32_t if_match;
    int64_t now_ms;
    char *email, *password_hash, *name;
    /* Results. */
    bool created, has_user, has_todo, is_list;
    struct user user;
    struct todo todo;
    struct todo *todos;
    size_t ntodos;
    int64_t total;
    struct store__arena *arena; /* strings of user/todo/todos */
};

static struct sq_store *sq_store_of(struct sq_worker *w)
{
    return w->st;
}

/* ---- operation lifetime ------------------------------------------------ */

static struct store_op *op_new(struct store_worker *sw, store_done_fn *done, void *ctx)
{
    struct sq_worker *w = (struct sq_worker *)sw;
    struct store_op *op = xcalloc(1, sizeof(*op));

    op->w = w;
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
    op->w->super._outstanding--;
    free(op->patch.title);
    free(op->patch.description);
    free(op->email);
    free(op->password_hash);
    free(op->name);
    free(op->todos);
    store__arena_free(op->arena);
    free(op);
}

static void deliver(struct store_op *op)
{
    struct store_result res = {
        .status = op->job.status,
        .message = op->job.message[0] != '\0' ? op->job.message : NULL,
    };

    if (op->done == NULL)
        return;
    if (res.status == STORE_OK) {
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

static void on_deferred(h2o_timeout_entry_t *entry)
{
    struct store_op *op = H2O_STRUCT_FROM_MEMBER(struct store_op, defer, entry);

    deliver(op);
    op_free(op);
}

/* A read has its result: hand it to the loop (never call done from here). */
static int read_submitted(struct store_op *op, struct store_op **out)
{
    op->defer.cb = on_deferred;
    h2o_timeout_link(op->w->super._loop, &op->w->zero, &op->defer);
    if (out != NULL)
        *out = op;
    return 0;
}

static void on_jobs_back(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        struct sqlite_job *job = sqlite_job_from_link(messages->next);
        struct store_op *op = H2O_STRUCT_FROM_MEMBER(struct store_op, job, job);
        h2o_linklist_unlink(&job->_msg.link);
        deliver(op);
        op_free(op);
    }
}

static int write_submit(struct store_op *op, sqlite_job_run_fn *run, struct store_op **out)
{
    int rc;

    op->is_write = true;
    op->job.run = run;
    op->job.receiver = &op->w->receiver;
    rc = sqlite_writer_submit(sq_store_of(op->w)->writer, &op->job);
    if (rc != 0) {
        op_free(op);
        return rc;
    }
    if (out != NULL)
        *out = op;
    return 0;
}

static void sq_op_cancel(struct store_op *op)
{
    if (!op->is_write) {
        h2o_timeout_unlink(&op->defer);
        op_free(op);
    } else if (sqlite_writer_cancel(sq_store_of(op->w)->writer, &op->job)) {
        op_free(op);
    } else {
        /* The writer has it: it comes back through the receiver, which then
         * only frees it. The write itself may still commit. */
        op->done = NULL;
    }
}

/* ---- reads (worker thread, inline) ------------------------------------- */

static int rfail(struct store_op *op, int rc)
{
    return store__sqlite_fail(op->w->db, rc, op->job.message, sizeof(op->job.message));
}

static sqlite3_stmt *rprepare(struct store_op *op, int slot, const char *sql)
{
    return store__sqlite_prepare(op->w->db, &op->w->stmts[slot], sql, op->job.message,
                                 sizeof(op->job.message));
}

/* Readiness: the database answers and its schema is the newest embedded
 * one. A missing table, an error or another version is UNAVAILABLE. */
static int ping_run(struct store_op *op)
{
    sqlite3_stmt *st =
        rprepare(op, R_PING, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    int64_t want = migrate_latest_version("sqlite"), have;
    int rc;

    if (st == NULL)
        return STORE_UNAVAILABLE;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        rfail(op, rc);
        store__sqlite_reset(st);
        return STORE_UNAVAILABLE;
    }
    have = sqlite3_column_int64(st, 0);
    store__sqlite_reset(st);
    if (have != want) {
        snprintf(op->job.message, sizeof(op->job.message),
                 "schema at version %lld, expected %lld", (long long)have, (long long)want);
        return STORE_UNAVAILABLE;
    }
    return STORE_OK;
}

static int sq_ping(struct store_worker *w, store_done_fn *done, void *ctx, struct store_op **out)
{
    struct store_op *op = op_new(w, done, ctx);

    op->job.status = ping_run(op);
    return read_submitted(op, out);
}

static int user_lookup(struct store_worker *w, int slot, const char *sql, const char *key,
                       store_done_fn *done, void *ctx, struct store_op **out)
{
    struct store_op *op;
    sqlite3_stmt *st;

    if (key == NULL)
        return STORE_INVALID;
    op = op_new(w, done, ctx);
    st = rprepare(op, slot, sql);
    if (st == NULL) {
        op->job.status = STORE_INTERNAL;
    } else {
        op->job.status = store__sqlite_one_user(op->w->db, st, store__sqlite_bind_text(st, 1, key),
                                                &op->user, &op->arena, op->job.message,
                                                sizeof(op->job.message));
        op->has_user = op->job.status == STORE_OK;
    }
    return read_submitted(op, out);
}

static int sq_user_by_email(struct store_worker *w, const char *email, store_done_fn *done,
                            void *ctx, struct store_op **out)
{
    return user_lookup(w, R_USER_BY_EMAIL,
                       "SELECT " STORE__SQLITE_USER_COLS " FROM users WHERE email = ?1", email,
                       done, ctx, out);
}

static int sq_user_by_id(struct store_worker *w, const char *id, store_done_fn *done, void *ctx,
                         struct store_op **out)
{
    return user_lookup(w, R_USER_BY_ID,
                       "SELECT " STORE__SQLITE_USER_COLS " FROM users WHERE id = ?1", id, done,
                       ctx, out);
}

static int sq_todo_get(struct store_worker *w, const char *user_id, const char *id,
                       store_done_fn *done, void *ctx, struct store_op **out)
{
    struct store_op *op;
    sqlite3_stmt *st;

    if (user_id == NULL || id == NULL)
        return STORE_INVALID;
    op = op_new(w, done, ctx);
    st = rprepare(op, R_TODO_GET,
                  "SELECT " STORE__SQLITE_TODO_COLS " FROM todos WHERE id = ?1 AND user_id = ?2");
    if (st == NULL) {
        op->job.status = STORE_INTERNAL;
    } else {
        int rc = store__sqlite_bind_text(st, 1, id);
        if (rc == SQLITE_OK)
            rc = store__sqlite_bind_text(st, 2, user_id);
        op->job.status = store__sqlite_one_todo(op->w->db, st, rc, &op->todo, &op->arena,
                                                op->job.message, sizeof(op->job.message));
        op->has_todo = op->job.status == STORE_OK;
    }
    return read_submitted(op, out);
}

/* ---- todo_list --------------------------------------------------------- */

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

/* The list (count = false) or count statement for this filter shape. */
static sqlite3_stmt *list_stmt(struct store_op *op, bool count, const struct todo_query *q)
{
    bool has_c = q->completed >= 0, has_q = q->q != NULL;
    int variant = (has_c ? 2 : 0) + (has_q ? 1 : 0);
    int slot = count ? R_COUNT + variant : R_LIST + (int)q->sort * 4 + variant;
    char sql[512];
    int n;

    if (op->w->stmts[slot] != NULL)
        return op->w->stmts[slot];
    n = snprintf(sql, sizeof(sql), "SELECT %s FROM todos WHERE user_id = ?1%s%s%s%s%s",
                 count ? "count(*)" : STORE__SQLITE_TODO_COLS,
                 has_c ? " AND completed = ?2" : "",
                 has_q ? " AND (todo_icontains(title, ?3) OR todo_icontains(description, ?3))"
                       : "",
                 count ? "" : " ORDER BY ", count ? "" : list_order[q->sort],
                 count ? "" : " LIMIT ?4 OFFSET ?5");
    if (n < 0 || (size_t)n >= sizeof(sql)) {
        snprintf(op->job.message, sizeof(op->job.message), "list query too long");
        return NULL;
    }
    return rprepare(op, slot, sql);
}

static int bind_filter(sqlite3_stmt *st, const struct todo_query *q)
{
    int rc = store__sqlite_bind_text(st, 1, q->user_id);

    if (rc == SQLITE_OK && q->completed >= 0)
        rc = sqlite3_bind_int(st, 2, q->completed);
    if (rc == SQLITE_OK && q->q != NULL)
        rc = store__sqlite_bind_text(st, 3, q->q);
    return rc;
}

static void push_todo(struct store_op *op, size_t *cap, const struct todo *t)
{
    if (op->ntodos == *cap) {
        *cap = *cap == 0 ? 16 : *cap * 2;
        op->todos = xrealloc(op->todos, *cap * sizeof(*op->todos));
    }
    op->todos[op->ntodos++] = *t;
}

static int list_rows(struct store_op *op, const struct todo_query *q)
{
    sqlite3_stmt *st = list_stmt(op, false, q);
    size_t cap = 0;
    int rc, status = STORE_OK;

    if (st == NULL)
        return STORE_INTERNAL;
    rc = bind_filter(st, q);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 4, q->limit);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 5, q->offset);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct todo t;
        status = store__sqlite_read_todo(st, &t, &op->arena, op->job.message,
                                         sizeof(op->job.message));
        if (status != STORE_OK)
            break;
        push_todo(op, &cap, &t);
        rc = SQLITE_OK;
    }
    if (status == STORE_OK && rc != SQLITE_DONE)
        status = rfail(op, rc);
    store__sqlite_reset(st);
    return status;
}

static int list_count(struct store_op *op, const struct todo_query *q)
{
    sqlite3_stmt *st;
    int rc, status = STORE_OK;

    /* A page that is neither empty nor full tells the total by itself. */
    if (op->ntodos > 0 && op->ntodos < (size_t)q->limit) {
        op->total = q->offset + (int64_t)op->ntodos;
        return STORE_OK;
    }
    if (op->ntodos == 0 && q->offset == 0) {
        op->total = 0;
        return STORE_OK;
    }
    st = list_stmt(op, true, q);
    if (st == NULL)
        return STORE_INTERNAL;
    rc = bind_filter(st, q);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        op->total = sqlite3_column_int64(st, 0);
    else
        status = rfail(op, rc);
    store__sqlite_reset(st);
    return status;
}

/* Rows and count come from one read transaction, so they agree. */
static int list_run(struct store_op *op, const struct todo_query *q)
{
    sqlite3_stmt *begin = rprepare(op, R_BEGIN, "BEGIN");
    sqlite3_stmt *commit = begin != NULL ? rprepare(op, R_COMMIT, "COMMIT") : NULL;
    int rc, status;

    if (commit == NULL)
        return STORE_INTERNAL;
    rc = sqlite3_step(begin);
    sqlite3_reset(begin);
    if (rc != SQLITE_DONE)
        return rfail(op, rc);
    status = list_rows(op, q);
    if (status == STORE_OK)
        status = list_count(op, q);
    rc = sqlite3_step(commit);
    sqlite3_reset(commit);
    if (rc != SQLITE_DONE && status == STORE_OK)
        status = rfail(op, rc);
    if (!sqlite3_get_autocommit(op->w->db))
        sqlite3_exec(op->w->db, "ROLLBACK", NULL, NULL, NULL);
    return status;
}

static int sq_todo_list(struct store_worker *w, const struct todo_query *q, store_done_fn *done,
                        void *ctx, struct store_op **out)
{
    struct store_op *op;

    if (!store__query_valid(q))
        return STORE_INVALID;
    op = op_new(w, done, ctx);
    op->is_list = true;
    op->job.status = list_run(op, q);
    return read_submitted(op, out);
}

/* ---- writes (writer thread, inside the job's savepoint) ---------------- */

enum {
    W_USER_INSERT,
    W_USER_SET_HASH,
    W_TODO_SELECT,
    W_TODO_INSERT,
    W_TODO_UPDATE,
    W_TODO_DELETE,
};

static struct store_op *op_of_job(struct sqlite_job *job)
{
    return H2O_STRUCT_FROM_MEMBER(struct store_op, job, job);
}

static sqlite3_stmt *wprepare(struct sqlite_job *job, struct sqlite_wconn *c, int slot,
                              const char *sql)
{
    return store__sqlite_prepare(c->db, &c->stmts[slot], sql, job->message, sizeof(job->message));
}

/* Step a statement that returns no rows; reset it either way. */
static int wexec(struct sqlite_job *job, struct sqlite_wconn *c, sqlite3_stmt *st, int bind_rc)
{
    int rc = bind_rc == SQLITE_OK ? sqlite3_step(st) : bind_rc;
    int status = rc == SQLITE_DONE ? STORE_OK
                                   : store__sqlite_fail(c->db, rc, job->message,
                                                        sizeof(job->message));

    store__sqlite_reset(st);
    return status;
}

static int user_create_run(struct sqlite_job *job, struct sqlite_wconn *c)
{
    struct store_op *op = op_of_job(job);
    sqlite3_stmt *st = wprepare(job, c, W_USER_INSERT,
                                "INSERT INTO users (id, email, password_hash, name, is_active,"
                                " created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)");
    int rc;

    if (st == NULL)
        return STORE_INTERNAL;
    rc = store__sqlite_bind_text(st, 1, op->id);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_text(st, 2, op->email);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_text(st, 3, op->password_hash);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_text(st, 4, op->name);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_time(st, 5, op->now_ms);
    rc = wexec(job, c, st, rc);
    if (rc != STORE_OK)
        return rc;
    memcpy(op->user.id, op->id, sizeof(op->user.id));
    op->user.email = op->email;
    op->user.password_hash = op->password_hash;
    op->user.name = op->name;
    op->user.is_active = true;
    op->user.created_at_ms = op->user.updated_at_ms = op->now_ms;
    op->has_user = true;
    return STORE_OK;
}

static int user_set_hash_run(struct sqlite_job *job, struct sqlite_wconn *c)
{
    struct store_op *op = op_of_job(job);
    sqlite3_stmt *st = wprepare(job, c, W_USER_SET_HASH,
                                "UPDATE users SET password_hash = ?2, updated_at = ?3"
                                " WHERE id = ?1 RETURNING " STORE__SQLITE_USER_COLS);
    int rc;

    if (st == NULL)
        return STORE_INTERNAL;
    rc = store__sqlite_bind_text(st, 1, op->id);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_text(st, 2, op->password_hash);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_time(st, 3, op->now_ms);
    rc = store__sqlite_one_user(c->db, st, rc, &op->user, &op->arena, job->message,
                                sizeof(job->message));
    op->has_user = rc == STORE_OK;
    return rc;
}

/* Load todo `op->id` (whoever owns it) into op->todo: OK or NOT_FOUND. */
static int todo_load(struct sqlite_job *job, struct sqlite_wconn *c)
{
    struct store_op *op = op_of_job(job);
    sqlite3_stmt *st = wprepare(job, c, W_TODO_SELECT,
                                "SELECT " STORE__SQLITE_TODO_COLS " FROM todos WHERE id = ?1");

    if (st == NULL)
        return STORE_INTERNAL;
    return store__sqlite_one_todo(c->db, st, store__sqlite_bind_text(st, 1, op->id), &op->todo,
                                  &op->arena, job->message, sizeof(job->message));
}

/* Bind every column of `t` as ?1..?9 (id, user_id, title, description,
 * completed, completed_at, created_at, updated_at, version). */
static int bind_todo(sqlite3_stmt *st, const struct todo *t)
{
    int rc = store__sqlite_bind_text(st, 1, t->id);

    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_text(st, 2, t->user_id);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_text(st, 3, t->title);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_text(st, 4, t->description);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 5, t->completed ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = t->has_completed_at ? store__sqlite_bind_time(st, 6, t->completed_at_ms)
                                 : sqlite3_bind_null(st, 6);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_time(st, 7, t->created_at_ms);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_time(st, 8, t->updated_at_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 9, t->version);
    return rc;
}

static int todo_insert(struct sqlite_job *job, struct sqlite_wconn *c, const struct todo *t)
{
    sqlite3_stmt *st = wprepare(job, c, W_TODO_INSERT,
                                "INSERT INTO todos (" STORE__SQLITE_TODO_COLS
                                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");

    return st == NULL ? STORE_INTERNAL : wexec(job, c, st, bind_todo(st, t));
}

static int todo_update(struct sqlite_job *job, struct sqlite_wconn *c, const struct todo *t)
{
    sqlite3_stmt *st = wprepare(job, c, W_TODO_UPDATE,
                                "UPDATE todos SET title = ?3, description = ?4, completed = ?5,"
                                " completed_at = ?6, created_at = ?7, updated_at = ?8,"
                                " version = ?9 WHERE id = ?1 AND user_id = ?2");

    return st == NULL ? STORE_INTERNAL : wexec(job, c, st, bind_todo(st, t));
}

static int precondition_failed(struct sqlite_job *job, const char *why)
{
    snprintf(job->message, sizeof(job->message), "%s", why);
    return STORE_PRECONDITION_FAILED;
}

/* Given todo_load's `status`, check ownership and If-Match: OK with the row
 * in op->todo, NOT_FOUND (absent or another user's), PRECONDITION_FAILED. */
static int todo_check_own(struct sqlite_job *job, int status)
{
    struct store_op *op = op_of_job(job);

    if (status == STORE_OK && strcmp(op->todo.user_id, op->user_id) != 0)
        status = STORE_NOT_FOUND; /* exactly like a missing one */
    if (status != STORE_OK)
        return status;
    if (op->if_match >= 0 && op->todo.version != op->if_match)
        return precondition_failed(job, "version does not match If-Match");
    return STORE_OK;
}

static int todo_create_run(struct sqlite_job *job, struct sqlite_wconn *c)
{
    struct store_op *op = op_of_job(job);
    int status;

    todo_init_new(&op->todo, op->id, op->user_id, &op->patch, op->now_ms);
    status = todo_insert(job, c, &op->todo);
    op->has_todo = op->created = status == STORE_OK;
    return status;
}

/* Apply the patch to the loaded row; write only when something changed. */
static int todo_apply_and_update(struct sqlite_job *job, struct sqlite_wconn *c)
{
    struct store_op *op = op_of_job(job);
    int status = STORE_OK;

    if (todo_apply(&op->todo, &op->patch, op->now_ms))
        status = todo_update(job, c, &op->todo);
    op->has_todo = status == STORE_OK;
    return status;
}

static int todo_put_run(struct sqlite_job *job, struct sqlite_wconn *c)
{
    struct store_op *op = op_of_job(job);
    int status = todo_load(job, c);

    if (status == STORE_NOT_FOUND) {
        /* If-Match (a version or *) asks for an existing representation. */
        if (op->if_match != STORE_IF_MATCH_NONE)
            return precondition_failed(job, "If-Match on a todo that does not exist");
        return todo_create_run(job, c);
    }
    status = todo_check_own(job, status);
    return status != STORE_OK ? status : todo_apply_and_update(job, c);
}

static int todo_patch_run(struct sqlite_job *job, struct sqlite_wconn *c)
{
    int status = todo_check_own(job, todo_load(job, c));

    return status != STORE_OK ? status : todo_apply_and_update(job, c);
}

static int todo_delete_run(struct sqlite_job *job, struct sqlite_wconn *c)
{
    struct store_op *op = op_of_job(job);
    int status = todo_check_own(job, todo_load(job, c));
    sqlite3_stmt *st;
    int rc;

    if (status != STORE_OK)
        return status;
    st = wprepare(job, c, W_TODO_DELETE, "DELETE FROM todos WHERE id = ?1 AND user_id = ?2");
    if (st == NULL)
        return STORE_INTERNAL;
    rc = store__sqlite_bind_text(st, 1, op->id);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_text(st, 2, op->user_id);
    return wexec(job, c, st, rc);
}

/* ---- write submission (worker thread) ---------------------------------- */

static int sq_user_create(struct store_worker *w, const struct user_new *u, store_done_fn *done,
                          void *ctx, struct store_op **out)
{
    struct store_op *op;
    char id[UUID_STR_LEN + 1];

    if (u == NULL || !store__copy_uuid(id, u->id) || u->email == NULL || u->password_hash == NULL)
        return STORE_INVALID;
    op = op_new(w, done, ctx);
    memcpy(op->id, id, sizeof(id));
    op->email = xstrdup(u->email);
    op->password_hash = xstrdup(u->password_hash);
    op->name = u->name != NULL ? xstrdup(u->name) : NULL;
    op->now_ms = u->now_ms;
    return write_submit(op, user_create_run, out);
}

static int sq_user_set_password_hash(struct store_worker *w, const char *id, const char *hash,
                                     int64_t now_ms, store_done_fn *done, void *ctx,
                                     struct store_op **out)
{
    struct store_op *op;
    char uid[UUID_STR_LEN + 1];

    if (!store__copy_uuid(uid, id) || hash == NULL)
        return STORE_INVALID;
    op = op_new(w, done, ctx);
    memcpy(op->id, uid, sizeof(uid));
    op->password_hash = xstrdup(hash);
    op->now_ms = now_ms;
    return write_submit(op, user_set_hash_run, out);
}

/* Validate and copy a todo write; NULL (and *status) when invalid. A
 * complete patch (create/put) must carry a title. */
static struct store_op *todo_write_op(struct store_worker *w, const struct todo_write *req,
                                      bool need_patch, bool complete, store_done_fn *done,
                                      void *ctx, int *status)
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
    op = op_new(w, done, ctx);
    memcpy(op->user_id, uid, sizeof(uid));
    memcpy(op->id, id, sizeof(id));
    if (need_patch)
        store__copy_patch(&op->patch, req->patch);
    op->if_match = req->if_match;
    op->now_ms = req->now_ms;
    *status = STORE_OK;
    return op;
}

static int todo_write_submit(struct store_worker *w, const struct todo_write *req, bool need_patch,
                             bool complete, sqlite_job_run_fn *run, store_done_fn *done, void *ctx,
                             struct store_op **out)
{
    int status;
    struct store_op *op = todo_write_op(w, req, need_patch, complete, done, ctx, &status);

    return op == NULL ? status : write_submit(op, run, out);
}

static int sq_todo_create(struct store_worker *w, const struct todo_write *req,
                          store_done_fn *done, void *ctx, struct store_op **out)
{
    return todo_write_submit(w, req, true, true, todo_create_run, done, ctx, out);
}

static int sq_todo_put(struct store_worker *w, const struct todo_write *req, store_done_fn *done,
                       void *ctx, struct store_op **out)
{
    return todo_write_submit(w, req, true, true, todo_put_run, done, ctx, out);
}

static int sq_todo_patch(struct store_worker *w, const struct todo_write *req,
                         store_done_fn *done, void *ctx, struct store_op **out)
{
    return todo_write_submit(w, req, true, false, todo_patch_run, done, ctx, out);
}

static int sq_todo_delete(struct store_worker *w, const struct todo_write *req,
                          store_done_fn *done, void *ctx, struct store_op **out)
{
    return todo_write_submit(w, req, false, false, todo_delete_run, done, ctx, out);
}

/* ---- store and workers ------------------------------------------------- */

static void sq_close(struct store *s)
{
    struct sq_store *st = s->_priv;
    uint64_t jobs = 0, groups = 0;

    if (st == NULL)
        return;
    if (st->writer != NULL) {
        sqlite_writer_stats(st->writer, &jobs, &groups);
        sqlite_writer_stop(st->writer);
        if (log_enabled(LOG_DEBUG)) {
            char j[32], g[32];
            snprintf(j, sizeof(j), "%llu", (unsigned long long)jobs);
            snprintf(g, sizeof(g), "%llu", (unsigned long long)groups);
            log_kv(LOG_DEBUG, "sqlite writer stopped", "jobs", j, "transactions", g, NULL);
        }
    }
    store__sqlite_close(st->admin, NULL, 0);
    pthread_mutex_destroy(&st->admin_mutex);
    free(st->path);
    free(st);
    s->_priv = NULL;
}

static int sq_open(struct store *s, const char *path, char *err, size_t errlen)
{
    struct sq_store *st;

    /* Readers and the writer use separate connections, so they must name the
     * same file: an in-memory or URI database would give each its own. */
    if (path == NULL || path[0] == '\0' || strcmp(path, ":memory:") == 0 ||
        strncmp(path, "file:", 5) == 0) {
        snprintf(err, errlen, "sqlite: a database file path is required");
        return -1;
    }
    st = xcalloc(1, sizeof(*st));
    st->path = xstrdup(path);
    pthread_mutex_init(&st->admin_mutex, NULL);
    s->_priv = st;
    if (store__sqlite_open(path, STORE__SQLITE_ADMIN, &st->admin, err, errlen) != STORE_OK)
        goto fail;
    st->writer = sqlite_writer_start(path, err, errlen);
    if (st->writer == NULL)
        goto fail;
    return 0;

fail:
    sq_close(s);
    return -1;
}

static int sq_schema_version(struct store *s, int64_t *version)
{
    struct sq_store *st = s->_priv;
    char msg[256];
    int status;

    pthread_mutex_lock(&st->admin_mutex);
    status = store__sqlite_schema_version(st->admin, version, msg, sizeof(msg));
    pthread_mutex_unlock(&st->admin_mutex);
    if (status != STORE_OK)
        log_kv(LOG_WARN, "sqlite: cannot read the schema version", "error", msg, NULL);
    return status;
}

static void sq_migrate_db(struct store *s, struct migrate_db *db)
{
    struct sq_store *st = s->_priv;

    store__sqlite_migrate_db(st->admin, db);
}

static struct store_worker *sq_worker_attach(struct store *s, h2o_loop_t *loop)
{
    struct sq_store *st = s->_priv;
    struct sq_worker *w = xcalloc(1, sizeof(*w));
    char err[256];

    if (store__sqlite_open(st->path, STORE__SQLITE_READER, &w->db, err, sizeof(err)) !=
        STORE_OK) {
        log_kv(LOG_ERROR, "sqlite: cannot open a read connection", "error", err, NULL);
        free(w);
        return NULL;
    }
    w->super._store = s;
    w->super._loop = loop;
    w->st = st;
    h2o_linklist_init_anchor(&w->ops);
    h2o_timeout_init(loop, &w->zero, 0);
    w->queue = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(w->queue, &w->receiver, on_jobs_back);
    return &w->super;
}

static void sq_worker_detach(struct store_worker *sw)
{
    struct sq_worker *w = (struct sq_worker *)sw;
    h2o_linklist_t *node, *next;

    for (node = w->ops.next; node != &w->ops; node = next) {
        next = node->next;
        struct store_op *op = H2O_STRUCT_FROM_MEMBER(struct store_op, link, node);
        if (op->done != NULL || !op->is_write)
            sq_op_cancel(op);
    }
    /* Cancelled jobs the writer had taken still come back through the
     * receiver, which frees them; the queue can go only after that. */
    while (w->super._outstanding > 0)
        h2o_evloop_run(w->super._loop, 10);
    sqlite_writer_quiesce(sq_store_of(w)->writer);
    h2o_multithread_unregister_receiver(w->queue, &w->receiver);
    h2o_multithread_destroy_queue(w->queue);
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR < 3
    /* h2o before 2.3.0 (Debian ships 2.2.5) closes the queue's pipe but
     * never frees the queue itself (upstream commit 6b0a76e). */
    free(w->queue);
#endif
    h2o_timeout_dispose(w->super._loop, &w->zero);
    store__sqlite_close(w->db, w->stmts, R_NSTMTS);
    free(w);
}

static const char *const sqlite_schemes[] = {"sqlite", "sqlite+aiosqlite", NULL};

const struct store_backend store_backend_sqlite = {
    .name = "sqlite",
    .schemes = sqlite_schemes,
    .caps = STORE_CAP_GROUP_COMMIT,
    .open = sq_open,
    .close = sq_close,
    .worker_attach = sq_worker_attach,
    .worker_detach = sq_worker_detach,
    .schema_version = sq_schema_version,
    .migrate_db = sq_migrate_db,
    .ping = sq_ping,
    .user_create = sq_user_create,
    .user_by_email = sq_user_by_email,
    .user_by_id = sq_user_by_id,
    .user_set_password_hash = sq_user_set_password_hash,
    .todo_get = sq_todo_get,
    .todo_list = sq_todo_list,
    .todo_create = sq_todo_create,
    .todo_put = sq_todo_put,
    .todo_patch = sq_todo_patch,
    .todo_delete = sq_todo_delete,
    .op_cancel = sq_op_cancel,
};
