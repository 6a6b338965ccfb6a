/*
 * migrate: the schema migration runner (start-up half; the later
 * `todo migrate` CLI grows on it).
 *
 * Migrations are SQL files migrations/<dialect>/NNNN_name.up.sql (and
 * .down.sql), embedded into the binary at build time (embedded_migrations.c,
 * generated). Each applied migration is recorded in
 * schema_migrations(version, name, checksum (SHA-256 hex of the up file),
 * applied_at, duration_ms).
 *
 * The runner is dialect-neutral: a backend gives it a `struct migrate_db`
 * of blocking callbacks. Main thread (or CLI) only; blocking.
 */
#ifndef TODO_MIGRATE_MIGRATE_H
#define TODO_MIGRATE_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

struct migration {
    int64_t version;   /* NNNN */
    const char *name;  /* "init" */
    const char *up_sql;
    const char *down_sql; /* NULL when there is no down file */
};

/* The embedded migrations for `dialect` ("sqlite", "postgres"), ascending. */
const struct migration *migrate_embedded(const char *dialect, size_t *count);

/* Blocking database access a backend provides to the runner. Each returns
 * 0 or -1 with a message in err. */
struct migrate_db {
    void *conn;
    const char *dialect;
    /* Begin a transaction that excludes other migrators (SQLite: BEGIN IMMEDIATE). */
    int (*begin)(void *conn, char *err, size_t errlen);
    int (*commit)(void *conn, char *err, size_t errlen);
    int (*rollback)(void *conn);
    /* Execute one or more statements with no parameters. */
    int (*exec)(void *conn, const char *sql, char *err, size_t errlen);
    /* Highest applied version (0 when none; creates schema_migrations if missing). */
    int (*current_version)(void *conn, int64_t *version, char *err, size_t errlen);
    int (*record)(void *conn, const struct migration *m, const char *checksum_hex,
                  int64_t applied_at_ms, int64_t duration_ms, char *err, size_t errlen);
};

/* Apply every pending embedded migration, each in its own transaction.
 * Returns the number applied, or -1 with a message naming the migration file. */
int migrate_up(const struct migrate_db *db, char *err, size_t errlen);

/* migrate_up over an explicit list (ascending versions) instead of the
 * embedded one: for tests and `--dir` sources. Each pending migration runs
 * as begin → re-read the applied version (another process may have applied
 * it meanwhile) → exec up_sql → record → commit; on failure it rolls back and
 * returns -1 with "NNNN_name.up.sql: <database message>" in err. */
int migrate_up_list(const struct migrate_db *db, const struct migration *list, size_t n, char *err,
                    size_t errlen);

/* The newest version among the embedded migrations of `dialect` (0 if none). */
int64_t migrate_latest_version(const char *dialect);

/* The CREATE TABLE IF NOT EXISTS statement for schema_migrations in
 * `dialect` ("sqlite", "postgres"); NULL for an unknown dialect. Backends run
 * it from their current_version callback, so the runner owns this table and
 * no migration file creates or drops it. */
const char *migrate_table_sql(const char *dialect);

/* SHA-256 of `sql` as 64 lower-case hex characters + NUL. */
void migrate_checksum(const char *sql, char out[65]);

#endif
