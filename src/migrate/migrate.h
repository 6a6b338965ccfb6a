/*
 * migrate: the schema migration runner, shared by server start-up and the
 * `todo migrate` CLI.
 *
 * Migrations are SQL files migrations/<dialect>/NNNN_name.up.sql (and
 * .down.sql), embedded into the binary at build time (embedded_migrations.c,
 * generated) or read from a directory (migrate/source.h). Each applied
 * migration is recorded in schema_migrations(version, name, checksum
 * (SHA-256 hex of the up file), applied_at, duration_ms); the runner owns
 * that table, no migration file creates or drops it.
 *
 * Guarantees
 *   - Each migration runs in its own transaction, which begins by taking the
 *     migrators' lock (SQLite: BEGIN IMMEDIATE; PostgreSQL:
 *     pg_advisory_xact_lock) and re-reading the applied versions: of several
 *     concurrent migrators exactly one applies each migration.
 *   - Statements run one at a time (migrate/sqlsplit.h): a failure rolls the
 *     migration back and names the file, the statement and its line.
 *   - A file whose first line is `-- migrate:no-transaction` runs alone,
 *     outside any transaction, under a session lock (db->lock_session); a
 *     backend without one refuses it. A failure then leaves the statements
 *     before the failing one applied, and the message says so.
 *   - An applied migration whose file changed (checksum) stops `apply`
 *     unless allow_changed; applied versions missing below the newest one
 *     stop it too (out-of-order histories are refused, never guessed at).
 *
 * The runner is dialect-neutral: a backend gives it a `struct migrate_db`
 * of blocking callbacks. One thread at a time; blocking.
 */
#ifndef TODO_MIGRATE_MIGRATE_H
#define TODO_MIGRATE_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The first line that makes a migration run outside a transaction. */
#define MIGRATE_NO_TRANSACTION_MARK "-- migrate:no-transaction"

/* The PostgreSQL advisory lock key every migrator of a database takes
 * (transaction-level around each migration; session-level around a
 * no-transaction one). Any constant, the same in every process. */
#define MIGRATE_PG_LOCK_KEY "7745120923551030881"

struct migration {
    int64_t version;   /* NNNN */
    const char *name;  /* "init" */
    const char *up_sql;
    const char *down_sql; /* NULL when there is no down file */
};

/* One row of schema_migrations. Strings owned by the array
 * (migrate_applied_free). */
struct migrate_applied {
    int64_t version;
    char *name;
    char *checksum;
    int64_t applied_at_ms;
    int64_t duration_ms;
};
void migrate_applied_free(struct migrate_applied *rows, size_t n); /* NULL accepted */

/* The embedded migrations for `dialect` ("sqlite", "postgres"), ascending. */
const struct migration *migrate_embedded(const char *dialect, size_t *count);

/* Blocking database access a backend provides to the runner. Each returns
 * 0 or -1 with a message in err. */
struct migrate_db {
    void *conn;
    const char *dialect;
    /* Begin a transaction that excludes other migrators (SQLite: BEGIN
     * IMMEDIATE; PostgreSQL: BEGIN + pg_advisory_xact_lock). */
    int (*begin)(void *conn, char *err, size_t errlen);
    int (*commit)(void *conn, char *err, size_t errlen);
    int (*rollback)(void *conn);
    /* Execute one statement (older backends accept several) with no
     * parameters. */
    int (*exec)(void *conn, const char *sql, char *err, size_t errlen);
    /* Highest applied version (0 when none; creates schema_migrations if
     * missing). Inside or outside the runner's transaction. */
    int (*current_version)(void *conn, int64_t *version, char *err, size_t errlen);
    int (*record)(void *conn, const struct migration *m, const char *checksum_hex,
                  int64_t applied_at_ms, int64_t duration_ms, char *err, size_t errlen);

    /* Optional: NULL when the backend lacks it (the runner then skips the
     * checksum and history checks, and refuses `revert`/no-transaction
     * migrations with a message pointing at `todo migrate`). */
    /* Every row of schema_migrations, ascending by version (none when the
     * table does not exist: never creates it). *rows NULL when n is 0. */
    int (*applied)(void *conn, struct migrate_applied **rows, size_t *n, char *err,
                   size_t errlen);
    /* Delete the row of `version` (inside the runner's transaction). */
    int (*unrecord)(void *conn, int64_t version, char *err, size_t errlen);
    /* Take / release the migrators' lock for a no-transaction migration:
     * 0, or -1 with the reason (timeout, or a connection that cannot hold
     * one, e.g. a transaction pooler). */
    int (*lock_session)(void *conn, char *err, size_t errlen);
    void (*unlock_session)(void *conn);
};

/* ---- running ------------------------------------------------------------ */

enum migrate_event {
    MIGRATE_EV_APPLYING,   /* about to apply m */
    MIGRATE_EV_APPLIED,    /* m applied and committed (duration_ms set) */
    MIGRATE_EV_SKIPPED,    /* m was applied meanwhile by another migrator */
    MIGRATE_EV_NO_TX,      /* m runs outside a transaction, alone */
    MIGRATE_EV_REVERTING,  /* about to run m's down file */
    MIGRATE_EV_REVERTED,   /* m reverted and committed */
    MIGRATE_EV_STAMPED,    /* m recorded as applied without running it */
    MIGRATE_EV_CHANGED,    /* m's file changed since it was applied (allowed) */
};
typedef void migrate_progress_fn(void *ctx, enum migrate_event ev, const struct migration *m,
                                 int64_t duration_ms);

struct migrate_run_opts {
    /* apply: the highest version to apply (0: all). revert: the version to
     * keep (everything above it is reverted; 0: revert all). */
    int64_t target;
    /* revert: revert this many (newest first) instead of down to target. */
    int64_t steps;
    bool allow_changed;           /* apply despite changed applied files */
    migrate_progress_fn *progress; /* may be NULL */
    void *ctx;
};

/* Apply the pending migrations of `list` (ascending) up to o->target.
 * Returns the number applied (0: nothing to do), or -1 with a message
 * naming the file (and statement) in err. `o` may be NULL (defaults). */
int migrate_apply(const struct migrate_db *db, const struct migration *list, size_t n,
                  const struct migrate_run_opts *o, char *err, size_t errlen);

/* Revert applied migrations newest first, with their down files, each in
 * its own transaction, down to o->target or o->steps of them. Refuses
 * before changing anything when one of them has no down file or is not in
 * `list`. Returns the number reverted, or -1. Needs db->applied and
 * db->unrecord. */
int migrate_revert(const struct migrate_db *db, const struct migration *list, size_t n,
                   const struct migrate_run_opts *o, char *err, size_t errlen);

/* Record every migration of `list` up to `version` (which must be in it)
 * that is not applied yet as applied, without running it, in one
 * transaction (adopting a database whose schema already has them). Refuses
 * when a newer version is applied. Returns the number recorded, or -1. */
int migrate_stamp(const struct migrate_db *db, const struct migration *list, size_t n,
                  int64_t version, const struct migrate_run_opts *o, char *err, size_t errlen);

/* Apply every pending embedded migration (start-up). */
int migrate_up(const struct migrate_db *db, char *err, size_t errlen);
/* migrate_apply(db, list, n, NULL, ...): for tests and start-up. */
int migrate_up_list(const struct migrate_db *db, const struct migration *list, size_t n, char *err,
                    size_t errlen);

/* ---- status ------------------------------------------------------------- */

enum migrate_problem_kind {
    MIGRATE_PROBLEM_CHANGED, /* applied, and its up file changed since */
    MIGRATE_PROBLEM_UNKNOWN, /* applied, but not among the migrations */
    MIGRATE_PROBLEM_MISSING, /* not applied, but a newer version is */
};

struct migrate_problem {
    enum migrate_problem_kind kind;
    int64_t version;
    char *message; /* one line, names the file */
};

struct migrate_status {
    int64_t current; /* highest applied version, 0 when none */
    int64_t latest;  /* newest version in the list, 0 when none */
    struct migrate_applied *applied; /* ascending */
    size_t napplied;
    const struct migration **pending; /* into the list: newer than current */
    size_t npending;
    struct migrate_problem *problems;
    size_t nproblems;
};

/* Compare applied rows (ascending) with `list`. Never fails; takes
 * ownership of `applied`. Free with migrate_status_free. */
void migrate_status_build(struct migrate_status *st, struct migrate_applied *applied,
                          size_t napplied, const struct migration *list, size_t n);
/* Read schema_migrations through db->applied (which must exist) and build. */
int migrate_status_read(const struct migrate_db *db, const struct migration *list, size_t n,
                        struct migrate_status *st, char *err, size_t errlen);
void migrate_status_free(struct migrate_status *st);

/* ---- helpers ------------------------------------------------------------ */

/* The newest version among the embedded migrations of `dialect` (0 if none). */
int64_t migrate_latest_version(const char *dialect);

/* The CREATE TABLE IF NOT EXISTS statement for schema_migrations in
 * `dialect` ("sqlite", "postgres"); NULL for an unknown dialect. Backends run
 * it from their current_version callback. */
const char *migrate_table_sql(const char *dialect);

/* SHA-256 of `sql` as 64 lower-case hex characters + NUL. */
void migrate_checksum(const char *sql, char out[65]);

/* True when the first line of `sql` is MIGRATE_NO_TRANSACTION_MARK
 * (trailing blanks allowed). */
bool migrate_no_transaction(const char *sql);

/* "0003_add_order.up.sql" (or .down.sql) into buf; returns buf. */
const char *migrate_file_name(const struct migration *m, bool down, char *buf, size_t buflen);

/* The migration of `version` in `list`, or NULL. */
const struct migration *migrate_find(const struct migration *list, size_t n, int64_t version);

#endif
