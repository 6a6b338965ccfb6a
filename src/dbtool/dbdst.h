/*
 * dbtool/dbdst: write canonical rows (dbtool/dbrow.h) into a target
 * database — PostgreSQL or SQLite, at the head schema version — inside ONE
 * transaction, so that an interrupted copy (kill -9, a lost connection)
 * leaves the target as it was.
 *
 * PostgreSQL: BEGIN; LOCK TABLE users, todos (waiting at most 60 s for a
 *   running server's transactions); SET LOCAL maintenance_work_mem (256 MB)
 *   and work_mem (64 MB: the foreign-key check's join), no statement or
 *   idle-in-transaction timeout (a role's setting would cut a long load);
 *   the tables
 *   must be empty (else the error names the table, its row count and
 *   --truncate) unless `truncate` (TRUNCATE users, todos inside the same
 *   transaction). Before loading, the tables' secondary indexes, unique
 *   and primary-key constraints and foreign keys are read from the catalog
 *   (pg_get_indexdef / pg_get_constraintdef) and dropped — still inside the
 *   transaction — and rebuilt with the same names and definitions after
 *   the last row (dbdst_commit), so the schema is exactly what the
 *   migrations made. Rows go through COPY ... FROM STDIN (FORMAT binary)
 *   with PQputCopyData, in chunks of about 1 MiB; each column must have
 *   the type that encoding writes (checked at dbdst_table_begin). A row the
 *   server refuses (NOT NULL, CHECK) stops the COPY at the next chunk.
 * SQLite: BEGIN IMMEDIATE (busy timeout 60 s); foreign keys checked with
 *   PRAGMA foreign_key_check before COMMIT; one prepared INSERT per table; the
 *   same emptiness rule (DELETE FROM for truncate). Secondary indexes are
 *   dropped and re-created from sqlite_master's SQL inside the
 *   transaction, like PostgreSQL.
 *
 * A constraint the rows violate (duplicate key, missing parent) fails
 * dbdst_put, dbdst_table_end or dbdst_commit with the database's message,
 * and nothing is written. dbdst_close without a successful commit rolls back.
 *
 * The caller brings the schema to the head version first (todo migrate's
 * code); dbdst_open refuses a target whose schema version is not the
 * newest embedded one: an older one naming `todo migrate up`, a newer one
 * saying it is newer than this binary knows.
 *
 * PostgreSQL connections: the URL's connect_timeout wins over
 * connect_timeout_s.
 *
 * Errors: -1 with a one-line message naming the target (redacted URL).
 * One thread; blocking.
 */
#ifndef TODO_DBTOOL_DBDST_H
#define TODO_DBTOOL_DBDST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbtool/dbrow.h"

struct dbdst;

struct dbdst_opts {
    bool truncate;         /* empty the tables first (same transaction) */
    int connect_timeout_s; /* PostgreSQL; 0: 10 */
};

/* Connect and begin the transaction (emptiness checked / truncated). */
int dbdst_open(const char *url, const struct dbdst_opts *o, struct dbdst **out, char *err,
               size_t errlen);
/* Roll back unless committed; close. NULL accepted. */
void dbdst_close(struct dbdst *d);

const char *dbdst_dialect(const struct dbdst *d);
const char *dbdst_label(const struct dbdst *d);

/* Start loading table t (tables in dbrow_tables order). */
int dbdst_table_begin(struct dbdst *d, const struct dbtable *t, char *err, size_t errlen);
/* One row of the current table. */
int dbdst_put(struct dbdst *d, const struct dbrow *r, char *err, size_t errlen);
/* End the current table (PostgreSQL: end COPY and read its result). */
int dbdst_table_end(struct dbdst *d, int64_t *rows_written, char *err, size_t errlen);
/* Rebuild what was dropped, check, COMMIT. 0: everything is durable. */
int dbdst_commit(struct dbdst *d, char *err, size_t errlen);

/* Rows in table t of the target (outside any copy; for messages and
 * --dry-run). A table, or a SQLite file, that does not exist yet has 0. A
 * target whose schema is newer than this binary knows is refused as
 * dbdst_open refuses it (an older one is fine: migrations would apply). */
int dbdst_count_url(const char *url, const struct dbtable *t, int64_t *n, char *err,
                    size_t errlen);

#endif
