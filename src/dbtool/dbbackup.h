/*
 * dbtool/dbbackup: `todo db backup` — a consistent copy of a SQLite
 * database while the server keeps running, with SQLite's online backup API
 * (sqlite3_backup_step in steps of a few hundred pages, so writers are
 * never blocked for long), written to a temporary file next to `to`,
 * checked with PRAGMA integrity_check, fsynced and renamed into place. An
 * existing `to` is refused unless `force` (never overwritten otherwise, even
 * if it appears meanwhile); `to` naming the source, or an old `to` that has
 * a -wal / -journal file SQLite would replay over the copy, is refused even
 * with force. The source is opened read-only and never changed; a source
 * that does not exist is an error (never created).
 *
 * Consistency: a WAL source is read in one read transaction, so every step
 * sees the same snapshot and writers neither wait nor restart the copy. A
 * rollback-journal source restarts the copy whenever another connection
 * commits; after 3 restarts the whole copy is made in one step (writers then
 * wait for it). The copy is left in journal_mode=DELETE (one
 * self-contained file), with mode 0600 (it holds password hashes); on
 * failure `to` is untouched and the temporary file removed.
 *
 * Errors: -1 with a one-line message naming the file. Blocking.
 */
#ifndef TODO_DBTOOL_DBBACKUP_H
#define TODO_DBTOOL_DBBACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dbbackup_result {
    int64_t pages;
    int64_t bytes;
    double seconds;
};

int dbbackup_sqlite(const char *path, const char *to, bool force, struct dbbackup_result *res,
                    char *err, size_t errlen);

#endif
