/*
 * Helpers shared by the unit_dbtool test files: temporary SQLite files
 * (remembered until tmp_files_remove, which a suite's fini calls), running
 * SQL that must succeed on a SQLite or PostgreSQL connection, and skipping a
 * test when DATABASE_URL does not name PostgreSQL. Each fails (or skips) the
 * calling Criterion test; none takes ownership of its arguments.
 * Single-threaded (tests run with --jobs 1).
 */
#ifndef TESTS_DBT_SUPPORT_H
#define TESTS_DBT_SUPPORT_H

#include <stddef.h>

#include <libpq-fe.h>
#include <sqlite3.h>

/* TEST_TMPDIR, or /tmp without it. */
const char *tmp_dir(void);

/* A new SQLite file's URL in `url` (its path in `path`):
 * <tmp_dir>/<tag>_<pid>_<seq>.db, with any old file and its -wal/-shm
 * removed; remembered for tmp_files_remove. */
char *tmp_db(const char *tag, char *url, size_t n, char *path, size_t pn);

/* Remember `path` (at most 16 at a time) for tmp_files_remove. */
void tmp_file_track(const char *path);

/* Unlink every remembered file with its -wal and -shm; forget them. */
void tmp_files_remove(void);

/* Run `sql` on `db`; the test fails with SQLite's message otherwise. */
void sq_exec(sqlite3 *db, const char *sql);

/* Run `sql` on `pg`; the test fails unless it returned OK or rows. */
void pg_ok(PGconn *pg, const char *sql);

/* DATABASE_URL when it names PostgreSQL; otherwise the test is skipped. */
const char *pg_url_or_skip(void);

#endif
