/*
 * store: THE storage contract. The API layer talks to the database only
 * through this header; it never sees SQL. Backends (store_sqlite.c,
 * store_pg.c) each export one `const struct store_backend` and nothing else.
 *
 * Objects
 *   struct store         one per process: opened from DATABASE_URL by
 *                        store_open() on the main thread, closed by
 *                        store_close() after every worker has detached.
 *   struct store_worker  one per worker thread: store_worker_attach() on that
 *                        thread, with that thread's h2o loop; every operation
 *                        is submitted on a store_worker from its own thread.
 *
 * The async rule (both backends obey it; tests check it)
 *   A submit call (store_todo_get, store_user_create, ...) either
 *   - returns < 0 (a STORE_* status): `done` is never called; or
 *   - returns 0: `done` is called exactly once, later, on the submitting
 *     worker's loop thread, never from inside the submit call.
 *   `*op_out` (may be NULL) receives a handle for store_op_cancel().
 *
 * Cancel: store_op_cancel(op), on the submitting thread, before `done` ran,
 *   guarantees `done` will never be called. The operation itself may still
 *   run to completion (a write may commit); its result is dropped and the
 *   store frees everything. Use it from a request's dispose hook.
 *
 * Ownership
 *   - Submit calls copy everything they need from the request struct: the
 *     caller may free its inputs as soon as the call returns.
 *   - `struct store_result` and every pointer in it are borrowed: valid only
 *     until `done` returns. Copy what you keep.
 *
 * Errors: STORE_* statuses. `res->message` is for logs (never shown to
 *   clients for STORE_INTERNAL); store_strerror() names each status.
 *
 * Todos are always addressed by (user_id, id): a todo of another user is
 * STORE_NOT_FOUND, exactly like a missing one, and is never written.
 */
#ifndef TODO_STORE_STORE_H
#define TODO_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "model/todo.h"
#include "model/user.h"

enum store_status {
    STORE_OK = 0,
    STORE_NOT_FOUND = -1,
    STORE_CONFLICT = -2,            /* unique violation: email taken */
    STORE_PRECONDITION_FAILED = -3, /* If-Match did not match */
    STORE_INVALID = -4,             /* a constraint the model did not catch */
    STORE_UNAVAILABLE = -5,         /* database busy/unreachable: retry later */
    STORE_INTERNAL = -6,
};
const char *store_strerror(int status);

/* If-Match values besides a version number. */
#define STORE_IF_MATCH_NONE (-1) /* no If-Match header */
#define STORE_IF_MATCH_ANY (-2)  /* If-Match: *  (the todo must exist) */

struct store_result {
    int status;          /* enum store_status */
    const char *message; /* detail for the log; may be NULL */
    bool created;        /* todo_create, todo_put: true when the row was inserted */
    const struct user *user;   /* user ops */
    const struct todo *todo;   /* single-todo ops (not delete) */
    const struct todo *todos;  /* todo_list: `ntodos` items */
    size_t ntodos;
    int64_t total; /* todo_list: rows matching the filter, ignoring limit/offset */
};

typedef void store_done_fn(void *ctx, const struct store_result *res);

struct store;
struct store_worker;
struct store_op;
struct migrate_db;

/* ---- requests ---------------------------------------------------------- */

enum todo_sort {
    TODO_SORT_CREATED_AT_DESC = 0, /* default */
    TODO_SORT_CREATED_AT,
    TODO_SORT_UPDATED_AT,
    TODO_SORT_UPDATED_AT_DESC,
    TODO_SORT_TITLE,
    TODO_SORT_TITLE_DESC,
};

struct todo_query {
    const char *user_id;
    int limit;      /* 1..1000 */
    int64_t offset; /* >= 0 */
    int completed;  /* -1 any, 0 false, 1 true */
    const char *q;  /* NULL or a literal, case-insensitive substring of title or description */
    enum todo_sort sort; /* ties broken by id in the same direction */
};

/* create / put / patch / delete of one todo. `user_id` and `id` must be UUIDs
 * (any case; stored canonical) and `patch` must be present (create/put: with
 * a title), else the submit call returns STORE_INVALID. */
struct todo_write {
    const char *user_id;
    const char *id;     /* create: the new id; others: the addressed id */
    const struct todo_patch *patch; /* create/put: complete; patch: partial; delete: NULL */
    int32_t if_match;   /* a version, STORE_IF_MATCH_NONE or STORE_IF_MATCH_ANY */
    int64_t now_ms;     /* the request's clock, for created_at/updated_at */
};

struct user_new {
    const char *id;
    const char *email; /* normalised */
    const char *password_hash;
    const char *name; /* may be NULL */
    int64_t now_ms;
};

/* ---- the backend vtable (implemented by store_*.c, used via wrappers) --- */

#define STORE_CAP_GROUP_COMMIT (1u << 0)
#define STORE_CAP_PIPELINE (1u << 1)
/* open() applies the migrations itself when _opts.migrate is set (the
 * PostgreSQL backend: in the background until the database answers), so
 * store_open() does not run them. */
#define STORE_CAP_OWN_MIGRATIONS (1u << 2)

/* How to open a store (store_open_opts). A zeroed struct means: no
 * migrations, one worker, the backend's defaults. The pool settings are
 * totals over all workers (each worker gets its share, rounded up); the
 * SQLite backend ignores them. */
enum store_prepared {
    STORE_PREPARED_AUTO = 0, /* named prepared statements unless the host is a Neon pooler */
    STORE_PREPARED_ON,
    STORE_PREPARED_OFF,      /* unnamed statements only (PgBouncer in transaction mode) */
};

struct store_options {
    bool migrate;               /* apply pending migrations */
    unsigned workers;           /* worker threads sharing the pool (0: 1) */
    unsigned pool_size;         /* persistent connections (0: the backend's default) */
    unsigned pool_max_overflow; /* extra writers opened under load, closed when idle */
    unsigned pool_timeout_ms;   /* longest wait for a connection (0: 30 s) */
    unsigned pool_recycle_s;    /* replace connections older than this (0: never) */
    bool pool_pre_ping;         /* check a writer idle for a second or more before reuse */
    enum store_prepared prepared;
};

struct store_backend {
    const char *name;     /* "sqlite", "postgres" */
    const char *const *schemes; /* URL schemes it accepts, NULL-terminated */
    unsigned caps;
    /* open/close run on the main thread and may block. `target` is what
     * util/dburl.h parsed out of the URL: the SQLite file path, or the
     * PostgreSQL conninfo. */
    int (*open)(struct store *s, const char *target, char *err, size_t errlen);
    void (*close)(struct store *s);
    struct store_worker *(*worker_attach)(struct store *s, h2o_loop_t *loop);
    void (*worker_detach)(struct store_worker *w);
    /* Blocking: the schema version the database is at, or < 0. */
    int (*schema_version)(struct store *s, int64_t *version);
    /* Blocking admin section (main thread / CLI only): callbacks on the
     * backend's admin connection for the migration runner (migrate/migrate.h);
     * valid until close. */
    void (*migrate_db)(struct store *s, struct migrate_db *db);

    int (*ping)(struct store_worker *w, store_done_fn *done, void *ctx, struct store_op **op);
    int (*user_create)(struct store_worker *w, const struct user_new *u, store_done_fn *done,
                       void *ctx, struct store_op **op);
    int (*user_by_email)(struct store_worker *w, const char *email, store_done_fn *done, void *ctx,
                         struct store_op **op);
    int (*user_by_id)(struct store_worker *w, const char *id, store_done_fn *done, void *ctx,
                      struct store_op **op);
    int (*user_set_password_hash)(struct store_worker *w, const char *id, const char *hash,
                                  int64_t now_ms, store_done_fn *done, void *ctx,
                                  struct store_op **op);
    int (*todo_get)(struct store_worker *w, const char *user_id, const char *id,
                    store_done_fn *done, void *ctx, struct store_op **op);
    int (*todo_list)(struct store_worker *w, const struct todo_query *q, store_done_fn *done,
                     void *ctx, struct store_op **op);
    /* Insert; id collision → STORE_CONFLICT. */
    int (*todo_create)(struct store_worker *w, const struct todo_write *req, store_done_fn *done,
                       void *ctx, struct store_op **op);
    /* Upsert: insert (res->created) or replace; another user's id → NOT_FOUND. */
    int (*todo_put)(struct store_worker *w, const struct todo_write *req, store_done_fn *done,
                    void *ctx, struct store_op **op);
    /* Merge patch, atomically read-apply-write; no-op leaves the row as is. */
    int (*todo_patch)(struct store_worker *w, const struct todo_write *req, store_done_fn *done,
                      void *ctx, struct store_op **op);
    int (*todo_delete)(struct store_worker *w, const struct todo_write *req, store_done_fn *done,
                       void *ctx, struct store_op **op);
    void (*op_cancel)(struct store_op *op);
};

/* Private to store.c and the backends; callers treat it as opaque. */
struct store {
    const struct store_backend *_be;
    void *_priv; /* the backend's state */
    struct store_options _opts; /* as given to store_open_opts, for open() */
};

/* Private; every backend's worker struct starts with this. */
struct store_worker {
    struct store *_store;
    h2o_loop_t *_loop;
    /* Operations submitted on this worker that the store still holds
     * (pending, or cancelled but not yet drained). Worker thread only. */
    size_t _outstanding;
};

/* ---- public API -------------------------------------------------------- */

/* Open the database named by `url` (see util/dburl.h for the spellings):
 * picks the backend by scheme, connects, and applies pending migrations when
 * `migrate` is true. Returns NULL with a message in `err` (password-free). */
struct store *store_open(const char *url, bool migrate, char *err, size_t errlen);
/* The same with every setting (store_open is this with only `migrate`).
 * PostgreSQL: fails only on a URL or settings that can never work; a
 * database that does not answer yet is connected to (and migrated) in the
 * background, and readiness (store_ping) says when it is done. */
struct store *store_open_opts(const char *url, const struct store_options *opts, char *err,
                              size_t errlen);
/* Close and free. Every worker must have detached first: otherwise nothing
 * is closed and -EBUSY is returned (a test asserts 0 to prove no operation
 * leaked). NULL is accepted (returns 0). */
int store_close(struct store *s);
const char *store_backend_name(const struct store *s);

/* On the worker thread, with that thread's loop. NULL on failure (logged). */
struct store_worker *store_worker_attach(struct store *s, h2o_loop_t *loop);
/* Detach, on the worker thread, outside any callback of its loop (e.g. after
 * the loop stopped): in-flight operations are cancelled (their `done` is
 * never called), and the loop is run until the store got back everything it
 * had handed to other threads. NULL is accepted. */
void store_worker_detach(struct store_worker *w);
/* Operations submitted on `w` and not yet completed, or cancelled but not yet
 * drained. Worker thread only. */
static inline size_t store_worker_outstanding(const struct store_worker *w)
{
    return w->_outstanding;
}

/* Blocking check for /readyz and start-up: 0 when the schema is at the
 * newest embedded migration, STORE_UNAVAILABLE/STORE_INTERNAL otherwise. */
int store_schema_current(struct store *s);

static inline void store_op_cancel(struct store_worker *w, struct store_op *op)
{
    if (op != NULL)
        w->_store->_be->op_cancel(op);
}

#define STORE__CALL(w, fn, ...) ((w)->_store->_be->fn((w), __VA_ARGS__))

/* Readiness, for /readyz: STORE_OK when the database answers and its schema
 * is at the newest embedded migration (the non-blocking form of
 * store_schema_current), STORE_UNAVAILABLE (with a message) otherwise. */
__attribute__((warn_unused_result)) static inline int
store_ping(struct store_worker *w, store_done_fn *done, void *ctx, struct store_op **op)
{
    return STORE__CALL(w, ping, done, ctx, op);
}
__attribute__((warn_unused_result)) static inline int
store_user_create(struct store_worker *w, const struct user_new *u, store_done_fn *done, void *ctx,
                  struct store_op **op)
{
    return STORE__CALL(w, user_create, u, done, ctx, op);
}
__attribute__((warn_unused_result)) static inline int
store_user_by_email(struct store_worker *w, const char *email, store_done_fn *done, void *ctx,
                    struct store_op **op)
{
    return STORE__CALL(w, user_by_email, email, done, ctx, op);
}
__attribute__((warn_unused_result)) static inline int
store_user_by_id(struct store_worker *w, const char *id, store_done_fn *done, void *ctx,
                 struct store_op **op)
{
    return STORE__CALL(w, user_by_id, id, done, ctx, op);
}
__attribute__((warn_unused_result)) static inline int
store_user_set_password_hash(struct store_worker *w, const char *id, const char *hash,
                             int64_t now_ms, store_done_fn *done, void *ctx, struct store_op **op)
{
    return STORE__CALL(w, user_set_password_hash, id, hash, now_ms, done, ctx, op);
}
__attribute__((warn_unused_result)) static inline int
store_todo_get(struct store_worker *w, const char *user_id, const char *id, store_done_fn *done,
               void *ctx, struct store_op **op)
{
    return STORE__CALL(w, todo_get, user_id, id, done, ctx, op);
}
__attribute__((warn_unused_result)) static inline int
store_todo_list(struct store_worker *w, const struct todo_query *q, store_done_fn *done, void *ctx,
                struct store_op **op)
{
    return STORE__CALL(w, todo_list, q, done, ctx, op);
}
__attribute__((warn_unused_result)) static inline int
store_todo_create(struct store_worker *w, const struct todo_write *req, store_done_fn *done,
                  void *ctx, struct store_op **op)
{
    return STORE__CALL(w, todo_create, req, done, ctx, op);
}
__attribute__((warn_unused_result)) static inline int
store_todo_put(struct store_worker *w, const struct todo_write *req, store_done_fn *done, void *ctx,
               struct store_op **op)
{
    return STORE__CALL(w, todo_put, req, done, ctx, op);
}
__attribute__((warn_unused_result)) static inline int
store_todo_patch(struct store_worker *w, const struct todo_write *req, store_done_fn *done,
                 void *ctx, struct store_op **op)
{
    return STORE__CALL(w, todo_patch, req, done, ctx, op);
}
__attribute__((warn_unused_result)) static inline int
store_todo_delete(struct store_worker *w, const struct todo_write *req, store_done_fn *done,
                  void *ctx, struct store_op **op)
{
    return STORE__CALL(w, todo_delete, req, done, ctx, op);
}

#endif
