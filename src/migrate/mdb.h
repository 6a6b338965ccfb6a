/*
 * migrate/mdb: the `todo migrate` CLI's own blocking connection to the
 * database a URL names (SQLite or PostgreSQL), and everything the CLI asks
 * of it: the runner's callbacks (migrate/migrate.h), the Alembic marker,
 * schema introspection for `check`, and waiting for a database to accept
 * connections. The CLI runs no event loop, so plain blocking libpq is used
 * (never the server's pg_conn/pg_pool).
 *
 * SQLite: opened with a busy timeout of lock_timeout_ms, so BEGIN IMMEDIATE
 *   waits that long for another migrator. Migrations run with foreign_keys
 *   OFF (PRAGMA foreign_key_check must pass before COMMIT): that is what the
 *   table-rebuild pattern needs, and DROP TABLE then never cascades. A file
 *   that does not exist is created (WAL) only with `create`; otherwise the
 *   connection is an empty in-memory database and mdb_missing() is true.
 * PostgreSQL: each migration's transaction takes pg_advisory_xact_lock
 *   (MIGRATE_PG_LOCK_KEY) with lock_timeout = lock_timeout_ms, so it works
 *   through PgBouncer in transaction mode; a no-transaction migration takes
 *   the session lock with pg_try_advisory_lock, retried until the same
 *   timeout, and is refused through a Neon "-pooler" host (a session lock
 *   means nothing there) with a message naming the direct host.
 *
 * Errors: -1 with a one-line message in err (never a password). One thread;
 * blocking.
 */
#ifndef TODO_MIGRATE_MDB_H
#define TODO_MIGRATE_MDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migrate/migrate.h"
#include "migrate/schema_check.h"

#define MDB_LOCK_TIMEOUT_MS_DEFAULT 60000

struct mdb;
struct sqlite3;

struct mdb_opts {
    int lock_timeout_ms;   /* waiting for other migrators; 0: MDB_LOCK_TIMEOUT_MS_DEFAULT */
    bool create;           /* SQLite: create the file when missing */
    int connect_timeout_s; /* PostgreSQL: 0: the URL's connect_timeout, else 10 s */
};

/* Connect (PostgreSQL: blocking, at most connect_timeout_s). */
__attribute__((warn_unused_result)) int mdb_open(const char *url, const struct mdb_opts *o,
                                                 struct mdb **out, char *err, size_t errlen);
void mdb_close(struct mdb *db); /* NULL accepted */

const char *mdb_dialect(const struct mdb *db); /* "sqlite", "postgres" */
const char *mdb_label(const struct mdb *db);   /* the URL, password redacted */
/* SQLite: the file did not exist (nothing was created). */
bool mdb_missing(const struct mdb *db);

/* The runner's callbacks on this connection (valid until mdb_close). */
void mdb_migrate_db(struct mdb *db, struct migrate_db *out);

/* Alembic's marker: 0 with *rev NULL when there is no alembic_version
 * table, or its revision(s) (comma-separated; "" when the table is empty;
 * caller frees). -1 on error. */
int mdb_alembic_version(struct mdb *db, char **rev, char *err, size_t errlen);

/* Describe the live schema (SQLite: the main database; PostgreSQL: the
 * current schema). `out` is finished; free with schema_desc_free. */
int mdb_describe(struct mdb *db, struct schema_desc *out, char *err, size_t errlen);
/* Describe what the migrations of `list` up to `upto` (0: none) produce:
 * they are applied by the runner to a scratch database (SQLite: in memory;
 * PostgreSQL: a schema todo_check_<pid>_<random> on this connection,
 * dropped afterwards), then described like mdb_describe. */
int mdb_describe_expected(struct mdb *db, const struct migration *list, size_t n, int64_t upto,
                          struct schema_desc *out, char *err, size_t errlen);

/* Wait until the database of `url` accepts connections and answers a query
 * (PostgreSQL: retrying every ~250 ms, including "the database system is
 * starting up"; SQLite: the file opens, or could be created). 0 with the
 * time waited, or -1 after timeout_ms with the last error. */
int mdb_wait(const char *url, int timeout_ms, int64_t *waited_ms, char *err, size_t errlen);

/* For start-up in staging and production: how many of the embedded
 * migrations the database of `url` lacks (>= 0; a missing SQLite file lacks
 * them all), or -1 with a message when that cannot be read (PostgreSQL not
 * answering within connect_timeout_s). Read-only. */
int mdb_pending_count(const char *url, int connect_timeout_s, char *err, size_t errlen);

/* For start-up with MIGRATIONS_DATABASE_URL: apply the pending embedded
 * migrations to the database of `url` on a connection of its own (what
 * `todo migrate up` does). The number applied, or -1 with a message. */
int mdb_up_embedded(const char *url, int connect_timeout_s, char *err, size_t errlen);

/* The runner's callbacks on an SQLite connection the caller owns (the
 * server's admin connection): the same code the CLI uses. Stateless: conn
 * is `db` itself, valid while it is open. */
void mdb_sqlite_callbacks(struct sqlite3 *db, struct migrate_db *out);

#endif
