/*
 * dbtool/dbbackup: `todo db backup` (see dbbackup.h): check the paths,
 * open the source read-only (WAL: one read transaction), copy it with
 * sqlite3_backup_step into a mkostemp file next to `to`, switch the copy to
 * journal_mode=DELETE, integrity_check, fsync, rename into place, fsync the
 * directory.
 */
#include "dbtool/dbbackup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "util/xalloc.h"

/* Pages per sqlite3_backup_step: a few hundred pages (about 1 MiB at the
 * default 4 KiB page size) keeps each read lock short. */
#define STEP_PAGES 256
/* A rollback-journal source that another connection writes to restarts the
 * backup at its next step; after this many restarts the whole copy is made in
 * one step (one read lock for the whole copy), so the backup ends. */
#define MAX_RESTARTS 3
/* How long a busy or locked source is waited for, in all, and per retry. */
#define BUSY_WAIT_MS 60000
#define BUSY_SLEEP_MS 10

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "<path><suffix>", newly allocated. */
static char *path_with(const char *path, const char *suffix)
{
    size_t len = strlen(path) + strlen(suffix) + 1;
    char *out = xmalloc(len);

    snprintf(out, len, "%s%s", path, suffix);
    return out;
}

/* True when "<path><suffix>" exists and is not empty. */
static bool nonempty_sibling(const char *path, const char *suffix)
{
    char *p = path_with(path, suffix);
    struct stat st;
    bool yes = stat(p, &st) == 0 && st.st_size > 0;

    free(p);
    return yes;
}

/* The source must be an existing regular file; `to` must not exist (unless
 * force), must not be the source, and must not have a journal of its own
 * that SQLite would replay over the new copy. */
static int check_paths(const char *path, const char *to, bool force, char *err, size_t errlen)
{
    struct stat src, dst;

    if (stat(path, &src) != 0)
        return fail(err, errlen, "cannot back up %s: %s", path, strerror(errno));
    if (!S_ISREG(src.st_mode))
        return fail(err, errlen, "cannot back up %s: not a regular file", path);
    if (stat(to, &dst) != 0) {
        if (errno == ENOENT)
            return 0;
        return fail(err, errlen, "cannot write the backup to %s: %s", to, strerror(errno));
    }
    if (dst.st_dev == src.st_dev && dst.st_ino == src.st_ino)
        return fail(err, errlen, "%s is the database itself; choose another backup file", to);
    if (!force)
        return fail(err, errlen, "%s already exists (--force replaces it)", to);
    if (!S_ISREG(dst.st_mode))
        return fail(err, errlen, "cannot replace %s: not a regular file", to);
    if (nonempty_sibling(to, "-wal") || nonempty_sibling(to, "-journal"))
        return fail(err, errlen,
                    "will not replace %s: it has a -wal or -journal file (the database is in use"
                    " or was not closed cleanly), which SQLite would apply to the new copy",
                    to);
    return 0;
}

/* The source's busy handler: retry every millisecond, for BUSY_WAIT_MS in
 * all. SQLite's own handler sleeps up to 100 ms between tries, and a reader
 * that sleeps that long keeps missing the short gaps between a busy
 * writer's commits (rollback-journal mode). */
static int on_busy(void *ctx, int tries)
{
    (void)ctx;
    if (tries >= BUSY_WAIT_MS)
        return 0;
    sqlite3_sleep(1);
    return 1;
}

/* Read-only; fails on a file that is not a SQLite database. `snapshot`:
 * the source is in WAL mode and a read transaction is now held on it. */
static int open_source(const char *path, sqlite3 **out, bool *snapshot, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);

    *snapshot = false;
    if (rc != SQLITE_OK)
        goto fail;
    sqlite3_busy_handler(db, on_busy, NULL);
    rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    if (rc != SQLITE_OK || (rc = sqlite3_step(st)) != SQLITE_ROW)
        goto fail;
    *snapshot = strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    st = NULL;
    /* In WAL mode one read transaction gives every backup step the same
     * snapshot, so concurrent writers neither wait nor restart the copy. */
    if (*snapshot && ((rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL)) != SQLITE_OK ||
                      (rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL,
                                         NULL)) != SQLITE_OK))
        goto fail;
    *out = db;
    return 0;
fail:
    fail(err, errlen, "cannot back up %s: %s", path,
         db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_finalize(st);
    sqlite3_close(db);
    *snapshot = false;
    return -1;
}

/* Copy every page of src into dst; pages copied in *pages. */
static int run_backup(sqlite3 *src, sqlite3 *dst, const char *path, int64_t *pages, char *err,
                      size_t errlen)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    int rc = SQLITE_OK, restarts = 0, waited_ms = 0, done = 0;

    if (b == NULL)
        return fail(err, errlen, "cannot back up %s: %s", path, sqlite3_errmsg(dst));
    for (;;) {
        rc = sqlite3_backup_step(b, restarts >= MAX_RESTARTS ? -1 : STEP_PAGES);
        if (rc == SQLITE_DONE)
            break;
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
            if (waited_ms >= BUSY_WAIT_MS)
                break;
            sqlite3_sleep(BUSY_SLEEP_MS);
            waited_ms += BUSY_SLEEP_MS;
            continue;
        }
        if (rc != SQLITE_OK)
            break;
        int now = sqlite3_backup_pagecount(b) - sqlite3_backup_remaining(b);
        if (now <= done)
            restarts++; /* another connection wrote: SQLite started over */
        done = now;
    }
    *pages = sqlite3_backup_pagecount(b);
    int frc = sqlite3_backup_finish(b);
    if (rc == SQLITE_DONE && frc == SQLITE_OK)
        return 0;
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return fail(err, errlen, "cannot back up %s: the database stayed locked for %d s", path,
                    BUSY_WAIT_MS / 1000);
    return fail(err, errlen, "cannot back up %s: %s", path,
                sqlite3_errstr(rc != SQLITE_DONE ? rc : frc));
}

/* PRAGMA integrity_check must answer one row, "ok". */
static int integrity_check(sqlite3 *db, const char *to, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    int out = -1;

    if (rc != SQLITE_OK || (rc = sqlite3_step(st)) != SQLITE_ROW) {
        fail(err, errlen, "integrity_check of the backup for %s failed: %s", to,
             sqlite3_errmsg(db));
        goto out;
    }
    const char *first = (const char *)sqlite3_column_text(st, 0);
    if (first == NULL || strcmp(first, "ok") != 0) {
        fail(err, errlen, "integrity_check of the backup for %s failed: %s", to,
             first != NULL ? first : "NULL");
        goto out;
    }
    out = 0;
out:
    sqlite3_finalize(st);
    return out;
}

/* Make the copy one self-contained file (no -wal beside it), check it. */
static int finish_copy(sqlite3 *dst, const char *to, char *err, size_t errlen)
{
    if (sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK)
        return fail(err, errlen, "cannot finish the backup for %s: %s", to, sqlite3_errmsg(dst));
    return integrity_check(dst, to, err, errlen);
}

static void remove_temp(const char *tmp)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};

    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char *p = path_with(tmp, suffixes[i]);
        unlink(p);
        free(p);
    }
}

static int fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash == NULL ? xstrdup(".")
                : slash == path ? xstrdup("/")
                                : xstrndup(path, (size_t)(slash - path));
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;

    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

/* Move tmp to `to`: replacing it only with force; without, an existing
 * `to` (even one created meanwhile) is never overwritten. */
static int install(const char *tmp, const char *to, bool force, char *err, size_t errlen)
{
    if (force) {
        if (rename(tmp, to) != 0)
            return fail(err, errlen, "cannot write the backup to %s: %s", to, strerror(errno));
    } else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, to, RENAME_NOREPLACE) != 0) {
        if (errno == EEXIST)
            return fail(err, errlen, "%s already exists (--force replaces it)", to);
        if (errno != EINVAL && errno != ENOSYS)
            return fail(err, errlen, "cannot write the backup to %s: %s", to, strerror(errno));
        /* A file system without RENAME_NOREPLACE: link() never replaces. */
        if (link(tmp, to) != 0)
            return fail(err, errlen, "%s: %s", to,
                        errno == EEXIST ? "already exists (--force replaces it)"
                                        : strerror(errno));
        unlink(tmp);
    }
    if (fsync_dir_of(to) != 0)
        return fail(err, errlen, "cannot sync the directory of %s: %s", to, strerror(errno));
    return 0;
}

int dbbackup_sqlite(const char *path, const char *to, bool force, struct dbbackup_result *res,
                    char *err, size_t errlen)
{
    double t0 = now_s();
    sqlite3 *src = NULL, *dst = NULL;
    char *tmp = path_with(to, ".tmp-XXXXXX");
    bool snapshot = false, tmp_made = false;
    struct stat st;
    int fd = -1, rc = -1;

    memset(res, 0, sizeof(*res));
    if (check_paths(path, to, force, err, errlen) != 0 ||
        open_source(path, &src, &snapshot, err, errlen) != 0)
        goto out;
    fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600: the copy holds password hashes */
    if (fd < 0) {
        fail(err, errlen, "cannot create a file next to %s: %s", to, strerror(errno));
        goto out;
    }
    tmp_made = true;
    if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        fail(err, errlen, "cannot write %s: %s", tmp, sqlite3_errmsg(dst));
        goto out;
    }
    if (run_backup(src, dst, path, &res->pages, err, errlen) != 0)
        goto out;
    if (snapshot)
        sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(src);
    src = NULL;
    if (finish_copy(dst, to, err, errlen) != 0)
        goto out;
    if (sqlite3_close(dst) != SQLITE_OK) {
        fail(err, errlen, "cannot close %s: %s", tmp, sqlite3_errmsg(dst));
        goto out;
    }
    dst = NULL;
    if (fsync(fd) != 0 || fstat(fd, &st) != 0) {
        fail(err, errlen, "cannot sync %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (install(tmp, to, force, err, errlen) != 0)
        goto out;
    tmp_made = false;
    res->bytes = st.st_size;
    res->seconds = now_s() - t0;
    rc = 0;
out:
    sqlite3_close(dst);
    sqlite3_close(src); /* ends the read transaction, if still open */
    if (fd >= 0)
        close(fd);
    if (tmp_made)
        remove_temp(tmp);
    free(tmp);
    return rc;
}
