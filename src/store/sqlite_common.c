#include "store/sqlite_common.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "migrate/mdb.h"
#include "migrate/migrate.h"
#include "model/timefmt.h"
#include "util/utf8.h"
#include "util/xalloc.h"

/* Writers wait this long for the write lock held by another process (a
 * second server, `todo migrate`); readers in WAL mode almost never wait, and
 * a worker's loop must not stall long, so theirs is short. */
#define BUSY_TIMEOUT_WRITE_MS 5000
#define BUSY_TIMEOUT_READ_MS 250

/* ---- todo_icontains(haystack, needle) ----------------------------------- */

/* SQLite's lower() and LIKE fold ASCII only. The list filter `q` must match
 * "Éclair" for "éclair", so this function folds both strings with the C
 * library's Unicode lower-case mapping (towlower_l in the C.UTF-8 locale:
 * simple one-to-one mappings, no ß → ss, the same level as PostgreSQL's
 * lower()) and then looks for a literal substring: `%` and `_` are ordinary
 * characters. Without C.UTF-8 it falls back to ASCII folding. */

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static uint32_t fold_cp(locale_t loc, uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp;
    if (loc == (locale_t)0)
        return cp;
    wint_t lc = towlower_l((wint_t)cp, loc);
    /* Never produce something utf8_put cannot encode or a surrogate. */
    if (lc > 0x10ffff || (lc >= 0xd800 && lc <= 0xdfff))
        return cp;
    return (uint32_t)lc;
}

/* Fold s[0..len) into out, which holds at least 2 * len bytes: a folded
 * character is never more than 1.5 times as long as the original (ASCII
 * stays ASCII). Malformed bytes are copied as they are. Returns the length. */
static size_t fold(locale_t loc, const char *s, size_t len, char *out)
{
    size_t i = 0, o = 0;

    while (i < len) {
        uint32_t cp;
        size_t n = utf8_next(s + i, len - i, &cp);
        if (n == 0) {
            out[o++] = s[i++];
            continue;
        }
        o += utf8_put(fold_cp(loc, cp), out + o);
        i += n;
    }
    return o;
}

static void icontains_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    char stack[1024];
    const char *h, *n;
    size_t hlen, nlen;
    char *buf;
    locale_t loc = (locale_t)sqlite3_user_data(ctx);

    (void)argc;
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL || sqlite3_value_type(argv[1]) == SQLITE_NULL)
        return; /* result NULL */
    h = (const char *)sqlite3_value_text(argv[0]);
    hlen = (size_t)sqlite3_value_bytes(argv[0]);
    n = (const char *)sqlite3_value_text(argv[1]);
    nlen = (size_t)sqlite3_value_bytes(argv[1]);
    if (h == NULL || n == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    size_t need = 2 * (hlen + nlen);
    buf = need <= sizeof(stack) ? stack : xmalloc(need);
    size_t fh = fold(loc, h, hlen, buf);
    size_t fn = fold(loc, n, nlen, buf + fh);
    sqlite3_result_int(ctx, fn == 0 || memmem(buf, fh, buf + fh, fn) != NULL);
    if (buf != stack)
        free(buf);
}

static void free_locale(void *p)
{
    if (p != NULL)
        freelocale((locale_t)p);
}

static int register_functions(sqlite3 *db)
{
    locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);

    /* On failure sqlite3_create_function_v2 calls the destructor itself. */
    return sqlite3_create_function_v2(db, "todo_icontains", 2,
                                      SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                      (void *)loc, icontains_fn, NULL, NULL, free_locale);
}

/* ---- connections ------------------------------------------------------- */

static int exec_simple(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
    }
    return rc;
}

/* journal_mode=WAL answers with the mode in force: anything but "wal" means
 * it could not be set (e.g. a read-only directory). */
static int set_wal(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        rc = mode != NULL && strcmp(mode, "wal") == 0 ? SQLITE_OK : SQLITE_ERROR;
        if (rc != SQLITE_OK)
            snprintf(err, errlen, "cannot enable WAL (journal_mode is %s)",
                     mode != NULL ? mode : "unknown");
    } else {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return rc;
}

static int configure(sqlite3 *db, enum store__sqlite_role role, char *err, size_t errlen)
{
    int rc;

    sqlite3_extended_result_codes(db, 1);
    rc = sqlite3_busy_timeout(db, role == STORE__SQLITE_READER ? BUSY_TIMEOUT_READ_MS
                                                               : BUSY_TIMEOUT_WRITE_MS);
    if (rc == SQLITE_OK && role == STORE__SQLITE_ADMIN)
        rc = set_wal(db, err, errlen);
    else if (rc != SQLITE_OK)
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    if (rc == SQLITE_OK)
        rc = exec_simple(db, "PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL", err, errlen);
    if (rc == SQLITE_OK && role == STORE__SQLITE_READER)
        rc = exec_simple(db, "PRAGMA query_only=ON", err, errlen);
    /* The writer runs each job in a SAVEPOINT: SQLite keeps the pages a
     * savepoint may have to restore in a sub-journal, which by default
     * spills to a temporary file after 64 KiB. Measured: ~11 pwrite()s to
     * /var/tmp per write, the largest cost of a group commit. In memory it
     * costs a few MiB at most for a full group. */
    if (rc == SQLITE_OK && role == STORE__SQLITE_WRITER)
        rc = exec_simple(db, "PRAGMA temp_store=MEMORY", err, errlen);
    if (rc == SQLITE_OK) {
        rc = register_functions(db);
        if (rc != SQLITE_OK)
            snprintf(err, errlen, "%s", sqlite3_errmsg(db));
    }
    return rc;
}

int store__sqlite_open(const char *path, enum store__sqlite_role role, sqlite3 **out, char *err,
                       size_t errlen)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    int rc;

    *out = NULL;
    if (role == STORE__SQLITE_ADMIN)
        flags |= SQLITE_OPEN_CREATE;
    rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto out;
    }
    rc = configure(db, role, err, errlen);

out:
    if (rc != SQLITE_OK) {
        sqlite3_close(db);
        return store__sqlite_status(rc);
    }
    *out = db;
    return STORE_OK;
}

void store__sqlite_close(sqlite3 *db, sqlite3_stmt **slots, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sqlite3_finalize(slots[i]);
        slots[i] = NULL;
    }
    /* Every statement is finalized, so this cannot fail with SQLITE_BUSY. */
    sqlite3_close(db);
}

sqlite3_stmt *store__sqlite_prepare(sqlite3 *db, sqlite3_stmt **slot, const char *sql, char *msg,
                                    size_t msglen)
{
    if (*slot == NULL &&
        sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) != SQLITE_OK) {
        snprintf(msg, msglen, "%s", sqlite3_errmsg(db));
        *slot = NULL;
    }
    return *slot;
}

void store__sqlite_reset(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

int store__sqlite_status(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return STORE_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return STORE_UNAVAILABLE;
    case SQLITE_CONSTRAINT:
        if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
            return STORE_CONFLICT;
        return STORE_INVALID;
    default:
        return STORE_INTERNAL;
    }
}

int store__sqlite_fail(sqlite3 *db, int rc, char *msg, size_t msglen)
{
    snprintf(msg, msglen, "%s", sqlite3_errmsg(db));
    return store__sqlite_status(rc);
}

int store__sqlite_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
    if (s == NULL)
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
}

int store__sqlite_bind_time(sqlite3_stmt *st, int idx, int64_t ms)
{
    char text[TIMEFMT_LEN + 1];

    timefmt_format(ms, text);
    return sqlite3_bind_text(st, idx, text, TIMEFMT_LEN, SQLITE_TRANSIENT);
}

/* ---- rows -------------------------------------------------------------- */

/* Column values as they come out of the database are external input: a
 * malformed one is reported (STORE_INTERNAL, naming the column), never
 * trusted. */

static int bad_column(sqlite3_stmt *st, int col, char *msg, size_t msglen)
{
    snprintf(msg, msglen, "malformed value in column %s", sqlite3_column_name(st, col));
    return STORE_INTERNAL;
}

static int col_uuid(sqlite3_stmt *st, int col, char out[UUID_STR_LEN + 1], char *msg,
                    size_t msglen)
{
    const char *s = (const char *)sqlite3_column_text(st, col);

    if (s == NULL || sqlite3_column_bytes(st, col) != UUID_STR_LEN)
        return bad_column(st, col, msg, msglen);
    memcpy(out, s, UUID_STR_LEN);
    out[UUID_STR_LEN] = '\0';
    return STORE_OK;
}

/* Text (NULL allowed when `nullable`) copied into the arena. */
static int col_text(sqlite3_stmt *st, int col, bool nullable, const char **out,
                    struct store__arena **a, char *msg, size_t msglen)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        *out = NULL;
        return nullable ? STORE_OK : bad_column(st, col, msg, msglen);
    }
    const char *s = (const char *)sqlite3_column_text(st, col);
    if (s == NULL)
        return bad_column(st, col, msg, msglen);
    *out = store__arena_strndup(a, s, (size_t)sqlite3_column_bytes(st, col));
    return STORE_OK;
}

static int col_time(sqlite3_stmt *st, int col, bool *present, int64_t *ms, char *msg,
                    size_t msglen)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL && present != NULL) {
        *present = false;
        *ms = 0;
        return STORE_OK;
    }
    const char *s = (const char *)sqlite3_column_text(st, col);
    if (s == NULL || timefmt_parse(s, (size_t)sqlite3_column_bytes(st, col), ms) != 0)
        return bad_column(st, col, msg, msglen);
    if (present != NULL)
        *present = true;
    return STORE_OK;
}

static int col_bool(sqlite3_stmt *st, int col, bool *out, char *msg, size_t msglen)
{
    if (sqlite3_column_type(st, col) != SQLITE_INTEGER)
        return bad_column(st, col, msg, msglen);
    sqlite3_int64 v = sqlite3_column_int64(st, col);
    if (v != 0 && v != 1)
        return bad_column(st, col, msg, msglen);
    *out = v == 1;
    return STORE_OK;
}

int store__sqlite_read_todo(sqlite3_stmt *st, struct todo *t, struct store__arena **a, char *msg,
                            size_t msglen)
{
    int rc;

    memset(t, 0, sizeof(*t));
    if ((rc = col_uuid(st, 0, t->id, msg, msglen)) != STORE_OK ||
        (rc = col_uuid(st, 1, t->user_id, msg, msglen)) != STORE_OK ||
        (rc = col_text(st, 2, false, &t->title, a, msg, msglen)) != STORE_OK ||
        (rc = col_text(st, 3, true, &t->description, a, msg, msglen)) != STORE_OK ||
        (rc = col_bool(st, 4, &t->completed, msg, msglen)) != STORE_OK ||
        (rc = col_time(st, 5, &t->has_completed_at, &t->completed_at_ms, msg, msglen)) !=
            STORE_OK ||
        (rc = col_time(st, 6, NULL, &t->created_at_ms, msg, msglen)) != STORE_OK ||
        (rc = col_time(st, 7, NULL, &t->updated_at_ms, msg, msglen)) != STORE_OK)
        return rc;
    sqlite3_int64 v = sqlite3_column_int64(st, 8);
    if (sqlite3_column_type(st, 8) != SQLITE_INTEGER || v < 1 || v > INT32_MAX)
        return bad_column(st, 8, msg, msglen);
    t->version = (int32_t)v;
    return STORE_OK;
}

int store__sqlite_read_user(sqlite3_stmt *st, struct user *u, struct store__arena **a, char *msg,
                            size_t msglen)
{
    int rc;

    memset(u, 0, sizeof(*u));
    if ((rc = col_uuid(st, 0, u->id, msg, msglen)) != STORE_OK ||
        (rc = col_text(st, 1, false, &u->email, a, msg, msglen)) != STORE_OK ||
        (rc = col_text(st, 2, false, &u->password_hash, a, msg, msglen)) != STORE_OK ||
        (rc = col_text(st, 3, true, &u->name, a, msg, msglen)) != STORE_OK ||
        (rc = col_bool(st, 4, &u->is_active, msg, msglen)) != STORE_OK ||
        (rc = col_time(st, 5, NULL, &u->created_at_ms, msg, msglen)) != STORE_OK ||
        (rc = col_time(st, 6, NULL, &u->updated_at_ms, msg, msglen)) != STORE_OK)
        return rc;
    return STORE_OK;
}

/* SQLITE_ROW → OK, SQLITE_DONE → NOT_FOUND, else the error's status. */
static int step_row(sqlite3 *db, sqlite3_stmt *st, int bind_rc, char *msg, size_t msglen)
{
    int rc = bind_rc == SQLITE_OK ? sqlite3_step(st) : bind_rc;

    if (rc == SQLITE_ROW)
        return STORE_OK;
    if (rc == SQLITE_DONE)
        return STORE_NOT_FOUND;
    return store__sqlite_fail(db, rc, msg, msglen);
}

int store__sqlite_one_todo(sqlite3 *db, sqlite3_stmt *st, int bind_rc, struct todo *t,
                           struct store__arena **a, char *msg, size_t msglen)
{
    int status = step_row(db, st, bind_rc, msg, msglen);

    if (status == STORE_OK)
        status = store__sqlite_read_todo(st, t, a, msg, msglen);
    store__sqlite_reset(st);
    return status;
}

int store__sqlite_one_user(sqlite3 *db, sqlite3_stmt *st, int bind_rc, struct user *u,
                           struct store__arena **a, char *msg, size_t msglen)
{
    int status = step_row(db, st, bind_rc, msg, msglen);

    if (status == STORE_OK)
        status = store__sqlite_read_user(st, u, a, msg, msglen);
    store__sqlite_reset(st);
    return status;
}

/* ---- migrations -------------------------------------------------------- */

/* The runner's callbacks are the ones `todo migrate` uses (migrate/mdb.h):
 * BEGIN IMMEDIATE under the busy timeout, foreign keys off inside a
 * migration and checked before COMMIT, the applied-history reads. */
void store__sqlite_migrate_db(sqlite3 *db, struct migrate_db *out)
{
    mdb_sqlite_callbacks(db, out);
}

int store__sqlite_schema_version(sqlite3 *db, int64_t *version, char *msg, size_t msglen)
{
    static const char *const queries[] = {
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'",
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
    };
    int rc = SQLITE_OK;

    /* Read-only: a database nobody migrated yet is at version 0. The second
     * query only compiles once the table exists, hence two steps. */
    *version = 0;
    for (size_t i = 0; i < 2 && rc == SQLITE_OK; i++) {
        sqlite3_stmt *st = NULL;
        int64_t v = 0;
        rc = sqlite3_prepare_v2(db, queries[i], -1, &st, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            v = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        } else {
            snprintf(msg, msglen, "%s", sqlite3_errmsg(db));
        }
        sqlite3_finalize(st);
        if (rc == SQLITE_OK && i == 0 && v == 0)
            break;
        if (rc == SQLITE_OK && i == 1)
            *version = v;
    }
    return store__sqlite_status(rc);
}
