/*
 * store/sqlite_common: what the two sides of the SQLite backend share — the
 * reader side (store_sqlite.c: one read connection per worker) and the writer
 * thread (sqlite_writer.c). Internal to src/store/ (names store__sqlite_*).
 *
 * Connections are opened with the settings every connection needs (WAL,
 * synchronous=FULL, foreign_keys=ON, a busy timeout, the todo_icontains()
 * SQL function) and are used by one thread at a time (SQLITE_OPEN_NOMUTEX).
 *
 * Statements are prepared once per connection into a slot the caller owns
 * (store__sqlite_prepare) and reused; store__sqlite_reset() after each use.
 * Only bound parameters carry values: no SQL is ever built from input.
 *
 * Errors: functions returning int give a STORE_* status and write the
 * SQLite message into `msg`.
 */
#ifndef TODO_STORE_SQLITE_COMMON_H
#define TODO_STORE_SQLITE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "model/todo.h"
#include "model/user.h"
#include "store/store_int.h"

struct migrate_db;

enum store__sqlite_role {
    STORE__SQLITE_ADMIN,  /* creates the file, sets WAL; migrations, schema checks */
    STORE__SQLITE_WRITER, /* the writer thread's connection */
    STORE__SQLITE_READER, /* a worker's connection: query_only, short busy timeout */
};

/* The columns store__sqlite_read_todo / _read_user expect, in order. */
#define STORE__SQLITE_TODO_COLS                                                                    \
    "id, user_id, title, description, completed, completed_at, created_at, updated_at, version"
#define STORE__SQLITE_USER_COLS "id, email, password_hash, name, is_active, created_at, updated_at"

/* Open `path` for `role`. Returns 0, or STORE_* with a message in err and
 * *out NULL. */
int store__sqlite_open(const char *path, enum store__sqlite_role role, sqlite3 **out, char *err,
                       size_t errlen);
/* Finalize the n statement slots (NULL ones skipped) and close; NULL db accepted. */
void store__sqlite_close(sqlite3 *db, sqlite3_stmt **slots, size_t n);

/* The statement in *slot, prepared from `sql` (a constant) on first use.
 * NULL on error, with the message in msg. */
sqlite3_stmt *store__sqlite_prepare(sqlite3 *db, sqlite3_stmt **slot, const char *sql, char *msg,
                                    size_t msglen);
/* Reset and clear the bindings, ready for the next use. */
void store__sqlite_reset(sqlite3_stmt *st);

/* STORE_* for an SQLite (extended) result code. */
int store__sqlite_status(int rc);
/* store__sqlite_status(rc), with sqlite3_errmsg(db) copied into msg. */
int store__sqlite_fail(sqlite3 *db, int rc, char *msg, size_t msglen);

/* Bind helpers: SQLITE_OK or an SQLite error code. */
int store__sqlite_bind_text(sqlite3_stmt *st, int idx, const char *s); /* NULL binds NULL */
int store__sqlite_bind_time(sqlite3_stmt *st, int idx, int64_t ms);

/* Decode the current row (STORE__SQLITE_*_COLS) into `t`/`u`; strings are
 * copied into *a. STORE_INTERNAL with a message when a value is malformed. */
int store__sqlite_read_todo(sqlite3_stmt *st, struct todo *t, struct store__arena **a, char *msg,
                            size_t msglen);
int store__sqlite_read_user(sqlite3_stmt *st, struct user *u, struct store__arena **a, char *msg,
                            size_t msglen);

/* Step `st` (bound, unless `bind_rc` says a bind failed) for at most one row
 * and decode it as above; reset `st` either way. STORE_OK with the row,
 * STORE_NOT_FOUND without one, or a STORE_* status with a message. */
int store__sqlite_one_todo(sqlite3 *db, sqlite3_stmt *st, int bind_rc, struct todo *t,
                           struct store__arena **a, char *msg, size_t msglen);
int store__sqlite_one_user(sqlite3 *db, sqlite3_stmt *st, int bind_rc, struct user *u,
                           struct store__arena **a, char *msg, size_t msglen);

/* The migration runner's callbacks on `db` (an ADMIN connection). */
void store__sqlite_migrate_db(sqlite3 *db, struct migrate_db *out);
/* Highest applied migration (0 when schema_migrations does not exist). */
int store__sqlite_schema_version(sqlite3 *db, int64_t *version, char *msg, size_t msglen);

#endif
