/*
 * dbtool/dbcopy: `todo db copy` — the whole copy of users and todos from a
 * source database to a target (SQLite → PostgreSQL, PostgreSQL → SQLite,
 * SQLite → SQLite, PostgreSQL → PostgreSQL), as one transaction on the
 * target.
 *
 * Steps: open the source (dbtool/dbsrc.h; its schema version must be one
 * the embedded migrations know); bring the target to the head version
 * with the migration runner (migrate/mdb.h: the same code as `todo
 * migrate up`; a SQLite target file is created) — or, with no_migrate,
 * refuse a target that is not at head, naming `todo migrate up`; open the
 * target writer (dbtool/dbdst.h), stream each table from source to target,
 * commit. dry_run reads and converts everything, checks the target (exists
 * and reachable, its schema not newer than this binary knows, empty unless
 * truncate, pending migrations reported), and writes nothing at all (no
 * migration either). A SQLite target's directory must exist and be
 * writable (the file itself is created), in both modes. A source and target that
 * are obviously the same database (the same SQLite file, the same
 * PostgreSQL connection string) are refused.
 *
 * Rejections: without skip_errors the first value that cannot be
 * converted stops the copy (-1, err names table, primary key, column,
 * value, reason) and nothing is written. With skip_errors each rejected
 * row is appended to reject_file (JSON lines: {"table","id","column",
 * "value","reason"}; the file is created or truncated, required then) and
 * the rest is copied; todos of a rejected user are rejected too (reason
 * "its user was rejected").
 *
 * Progress: when `progress` (the CLI sets it when stderr is a terminal)
 * one line per table on stderr, rewritten in place at most ~5 times a
 * second: "todos  412,000 / 1,000,000 rows  205,113 rows/s  ETA 3s".
 *
 * The result holds one entry per table (rows read, written, rejected,
 * seconds); the caller prints it. Blocking; main thread (progress and
 * dbconv_tz).
 */
#ifndef TODO_DBTOOL_DBCOPY_H
#define TODO_DBTOOL_DBCOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbtool/dbsrc.h"

struct dbcopy_opts {
    const char *from, *to;          /* URLs */
    enum dbsrc_layout layout;       /* --from-layout; AUTO */
    const char *source_timezone;    /* NULL: UTC */
    bool truncate, dry_run, no_migrate;
    bool skip_errors;               /* --on-error=skip */
    const char *reject_file;        /* required with skip_errors */
    int64_t batch_rows;             /* 0: 10000 */
    bool progress;
};

struct dbcopy_table_result {
    const char *table; /* static */
    /* read = written + rejected; in a dry run `written` counts the rows
     * that would be written. */
    int64_t read, written, rejected;
    double seconds;
};

struct dbcopy_result {
    struct dbcopy_table_result tables[4];
    size_t ntables;
    int64_t migrations_applied; /* on the target, before the copy */
    int64_t migrations_pending; /* dry_run: what a real run would apply */
    enum dbsrc_layout layout;   /* what the source turned out to be */
    double seconds;             /* whole run */
    bool dry_run;
};

/* 0 when the copy committed (or the dry run found nothing wrong), -1 with
 * a one-line message when nothing was written: no password (a URL that
 * libpq would misread so as to quote pieces of its password is refused by
 * util/dburl.h before any connection); a PostgreSQL target
 * database that does not exist gets a hint to create it. `res` is
 * filled as far as the run got either way. */
int dbcopy_run(const struct dbcopy_opts *o, struct dbcopy_result *res, char *err, size_t errlen);

#endif
