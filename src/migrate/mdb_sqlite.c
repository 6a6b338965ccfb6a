/*
 * migrate/mdb_sqlite: the SQLite side of migrate/mdb.h, and the runner's
 * callbacks on any SQLite connection (mdb_sqlite_callbacks: the server's
 * start-up uses them too).
 */
#include "migrate/mdb.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "migrate/mdb_int.h"
#include "model/timefmt.h"
#include "util/buf.h"
#include "util/xalloc.h"

struct mdb_sq {
    struct mdb base;
    sqlite3 *db;
};

/* The connection's busy timeout (PRAGMA busy_timeout), 0 if unknown. */
static int64_t busy_timeout_ms(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int64_t ms = 0;

    if (sqlite3_prepare_v2(db, "PRAGMA busy_timeout", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        ms = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return ms;
}

/* SQLite's message; for "database is locked" (the busy timeout ran out:
 * another migrator or a long write holds the lock) one that says so. */
static int fail(sqlite3 *db, char *err, size_t errlen)
{
    if ((sqlite3_errcode(db) & 0xff) != SQLITE_BUSY) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        return -1;
    }
    int64_t busy_ms = busy_timeout_ms(db);
    snprintf(err, errlen,
             "the database is locked by another migrator or a long write; gave up after %.1f s"
             " (--lock-timeout)",
             (double)busy_ms / 1000.0);
    return -1;
}

/* Run every statement of `sql`, discarding rows. */
static int exec_all(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    const char *tail = sql;

    while (*tail != '\0') {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(db, tail, -1, &st, &tail);
        if (rc != SQLITE_OK)
            return fail(db, err, errlen);
        if (st == NULL)
            break; /* only blank space and comments were left */
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            ;
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return fail(db, err, errlen);
    }
    return 0;
}

/* The one integer `sql` yields (bound ?1 = arg when arg is not NULL). */
static int query_int(sqlite3 *db, const char *sql, const char *arg, int64_t *out, char *err,
                     size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    if (rc == SQLITE_OK && arg != NULL)
        rc = sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        fail(db, err, errlen);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

static int table_exists(sqlite3 *db, const char *name, bool *yes, char *err, size_t errlen)
{
    int64_t n = 0;

    if (query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                  name, &n, err, errlen) != 0)
        return -1;
    *yes = n > 0;
    return 0;
}

/* ---- the runner's callbacks (conn is the sqlite3 handle) ----------------- */

static int cb_exec(void *conn, const char *sql, char *err, size_t errlen)
{
    return exec_all(conn, sql, err, errlen);
}

/* Foreign keys are off inside a migration (PRAGMA foreign_keys is a no-op
 * inside a transaction, hence before BEGIN): a table rebuild must not
 * cascade, and the check before COMMIT catches what it broke. */
static int cb_begin(void *conn, char *err, size_t errlen)
{
    sqlite3 *db = conn;

    if (exec_all(db, "PRAGMA foreign_keys = OFF", err, errlen) != 0)
        return -1;
    if (exec_all(db, "BEGIN IMMEDIATE", err, errlen) == 0)
        return 0;
    char ignored[8];
    exec_all(db, "PRAGMA foreign_keys = ON", ignored, sizeof(ignored));
    return -1;
}

/* The first row PRAGMA foreign_key_check reports, as an error. */
static int check_foreign_keys(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(err, errlen,
                 "foreign key check failed: a row of %s (rowid %lld) references a missing row"
                 " of %s",
                 (const char *)sqlite3_column_text(st, 0), (long long)sqlite3_column_int64(st, 1),
                 (const char *)sqlite3_column_text(st, 2));
    else if (rc != SQLITE_DONE)
        fail(db, err, errlen);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int cb_commit(void *conn, char *err, size_t errlen)
{
    sqlite3 *db = conn;

    if (check_foreign_keys(db, err, errlen) != 0 || exec_all(db, "COMMIT", err, errlen) != 0)
        return -1;
    return exec_all(db, "PRAGMA foreign_keys = ON", err, errlen);
}

static int cb_rollback(void *conn)
{
    sqlite3 *db = conn;
    char err[8];
    int rc = 0;

    if (!sqlite3_get_autocommit(db)) /* an error may already have ended it */
        rc = exec_all(db, "ROLLBACK", err, sizeof(err));
    exec_all(db, "PRAGMA foreign_keys = ON", err, sizeof(err));
    return rc;
}

static int cb_current_version(void *conn, int64_t *version, char *err, size_t errlen)
{
    sqlite3 *db = conn;
    bool exists = false;

    /* Look first: CREATE TABLE IF NOT EXISTS would take the write lock. */
    if (table_exists(db, "schema_migrations", &exists, err, errlen) != 0)
        return -1;
    if (!exists && exec_all(db, migrate_table_sql("sqlite"), err, errlen) != 0)
        return -1;
    return query_int(db, "SELECT coalesce(max(version), 0) FROM schema_migrations", NULL, version,
                     err, errlen);
}

static int cb_record(void *conn, const struct migration *m, const char *checksum_hex,
                     int64_t applied_at_ms, int64_t duration_ms, char *err, size_t errlen)
{
    sqlite3 *db = conn;
    char applied[TIMEFMT_LEN + 1];
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "INSERT INTO schema_migrations"
                                " (version, name, checksum, applied_at, duration_ms)"
                                " VALUES (?1, ?2, ?3, ?4, ?5)",
                                -1, &st, NULL);

    timefmt_format(applied_at_ms, applied);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, m->version);
        sqlite3_bind_text(st, 2, m->name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, checksum_hex, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, applied, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 5, duration_ms);
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE)
        fail(db, err, errlen);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int cb_unrecord(void *conn, int64_t version, char *err, size_t errlen)
{
    sqlite3 *db = conn;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "DELETE FROM schema_migrations WHERE version = ?1", -1, &st,
                                NULL);

    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, version);
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE)
        fail(db, err, errlen);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static char *column_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);

    return xstrdup(s != NULL ? (const char *)s : "");
}

static int cb_applied(void *conn, struct migrate_applied **rows, size_t *n, char *err,
                      size_t errlen)
{
    sqlite3 *db = conn;
    sqlite3_stmt *st = NULL;
    bool exists = false;
    int rc;

    *rows = NULL;
    *n = 0;
    if (table_exists(db, "schema_migrations", &exists, err, errlen) != 0)
        return -1;
    if (!exists)
        return 0;
    rc = sqlite3_prepare_v2(db,
                            "SELECT version, name, checksum, applied_at, duration_ms"
                            " FROM schema_migrations ORDER BY version",
                            -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct migrate_applied a = {
            .version = sqlite3_column_int64(st, 0),
            .name = column_dup(st, 1),
            .checksum = column_dup(st, 2),
            .duration_ms = sqlite3_column_int64(st, 4),
        };
        const char *at = (const char *)sqlite3_column_text(st, 3);
        if (at == NULL || timefmt_parse(at, strlen(at), &a.applied_at_ms) != 0)
            a.applied_at_ms = 0;
        *rows = xrealloc(*rows, (*n + 1) * sizeof(**rows));
        (*rows)[(*n)++] = a;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        fail(db, err, errlen);
        migrate_applied_free(*rows, *n);
        *rows = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

/* SQLite has no lock that outlives a transaction: a no-transaction
 * migration relies on the version re-check alone (docs/migrations.md). */
static int cb_lock_session(void *conn, char *err, size_t errlen)
{
    (void)conn;
    (void)err;
    (void)errlen;
    return 0;
}

static void cb_unlock_session(void *conn)
{
    (void)conn;
}

void mdb_sqlite_callbacks(struct sqlite3 *db, struct migrate_db *out)
{
    *out = (struct migrate_db){
        .conn = db,
        .dialect = "sqlite",
        .begin = cb_begin,
        .commit = cb_commit,
        .rollback = cb_rollback,
        .exec = cb_exec,
        .current_version = cb_current_version,
        .record = cb_record,
        .applied = cb_applied,
        .unrecord = cb_unrecord,
        .lock_session = cb_lock_session,
        .unlock_session = cb_unlock_session,
    };
}

/* ---- introspection -------------------------------------------------------- */

struct desc_ctx {
    struct schema_desc *out;
    const char *table;
};

static void add_check(void *ctx, const char *expr)
{
    struct desc_ctx *c = ctx;
    struct buf key;

    buf_init(&key, 1 << 20);
    buf_printf(&key, "check %s: %s", c->table, expr);
    schema_desc_add(c->out, key.data, "");
    buf_free(&key);
}

static const char *text_or(sqlite3_stmt *st, int i, const char *dflt)
{
    const unsigned char *s = sqlite3_column_text(st, i);

    return s != NULL ? (const char *)s : dflt;
}

static int describe_columns(sqlite3 *db, const char *table, struct schema_desc *out, char *err,
                            size_t errlen)
{
    static const char *const hidden[] = {"", " hidden", " generated virtual",
                                         " generated stored"};
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT name, type, \"notnull\", dflt_value, pk, hidden"
                                " FROM pragma_table_xinfo(?1)",
                                -1, &st, NULL);
    struct buf key, val;

    buf_init(&key, 1 << 20);
    buf_init(&val, 1 << 20);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, table, -1, SQLITE_TRANSIENT);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int h = sqlite3_column_int(st, 5);
        buf_reset(&key);
        buf_reset(&val);
        buf_printf(&key, "column %s.%s", table, text_or(st, 0, ""));
        buf_append_str(&val, text_or(st, 1, ""));
        if (sqlite3_column_int(st, 2))
            buf_append_str(&val, " not null");
        if (sqlite3_column_type(st, 3) != SQLITE_NULL)
            buf_printf(&val, " default %s", text_or(st, 3, ""));
        if (sqlite3_column_int(st, 4))
            buf_printf(&val, " primary key %d", sqlite3_column_int(st, 4));
        buf_append_str(&val, hidden[h >= 0 && h <= 3 ? h : 1]);
        schema_desc_add(out, key.data, val.data);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE)
        fail(db, err, errlen);
    sqlite3_finalize(st);
    buf_free(&key);
    buf_free(&val);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int describe_foreign_keys(sqlite3 *db, const char *table, struct schema_desc *out,
                                 char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete,"
                                " match FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
                                -1, &st, NULL);
    struct buf from, to, val;
    int64_t id = -1;

    buf_init(&from, 1 << 20);
    buf_init(&to, 1 << 20);
    buf_init(&val, 1 << 20);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, table, -1, SQLITE_TRANSIENT);
    while (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        bool row = rc == SQLITE_ROW;
        if (id >= 0 && (!row || sqlite3_column_int64(st, 0) != id)) {
            buf_printf(&from, ")");
            buf_printf(&to, ")%s", val.data);
            schema_desc_add(out, from.data, to.data);
            id = -1;
        }
        if (!row)
            break;
        if (id < 0) {
            id = sqlite3_column_int64(st, 0);
            buf_reset(&from);
            buf_reset(&to);
            buf_reset(&val);
            buf_printf(&from, "foreign key %s(", table);
            buf_printf(&to, "references %s(", text_or(st, 1, ""));
            buf_printf(&val, " on update %s on delete %s match %s", text_or(st, 4, ""),
                       text_or(st, 5, ""), text_or(st, 6, ""));
        } else {
            buf_append_str(&from, ", ");
            buf_append_str(&to, ", ");
        }
        buf_append_str(&from, text_or(st, 2, ""));
        buf_append_str(&to, text_or(st, 3, ""));
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE)
        fail(db, err, errlen);
    sqlite3_finalize(st);
    buf_free(&from);
    buf_free(&to);
    buf_free(&val);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Index `name` of `table`: its CREATE INDEX text, or for an automatic one
 * (PRIMARY KEY, UNIQUE) its columns. */
static int index_value(sqlite3 *db, const char *name, bool unique, const char *origin,
                       const char *table, struct buf *val, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_schema WHERE type = 'index' AND"
                                    " name = ?1 AND sql IS NOT NULL", -1, &st, NULL);
    bool first = true;

    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *sql = text_or(st, 0, "");
        char *norm = schema_sql_normalize(sql, strlen(sql));
        buf_append_str(val, norm);
        free(norm);
        rc = SQLITE_DONE;
    } else if (rc == SQLITE_DONE) {
        sqlite3_finalize(st);
        buf_printf(val, "automatic (%s)%s on %s (", origin, unique ? " unique" : "", table);
        rc = sqlite3_prepare_v2(db, "SELECT name FROM pragma_index_info(?1) ORDER BY seqno", -1,
                                &st, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            buf_printf(val, "%s%s", first ? "" : ", ", text_or(st, 0, "<expression>"));
            first = false;
            rc = SQLITE_OK;
        }
        buf_append_str(val, ")");
    }
    if (rc != SQLITE_DONE)
        fail(db, err, errlen);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int describe_indexes(sqlite3 *db, const char *table, struct schema_desc *out, char *err,
                            size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT name, \"unique\", origin FROM pragma_index_list(?1)",
                                -1, &st, NULL);
    struct buf key, val;

    buf_init(&key, 1 << 20);
    buf_init(&val, 1 << 20);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, table, -1, SQLITE_TRANSIENT);
    bool failed = false;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        char *name = xstrdup(text_or(st, 0, ""));
        char *origin = xstrdup(text_or(st, 2, ""));
        buf_reset(&key);
        buf_reset(&val);
        buf_printf(&key, "index %s", name);
        failed = index_value(db, name, sqlite3_column_int(st, 1) != 0, origin, table, &val, err,
                             errlen) != 0;
        if (!failed)
            schema_desc_add(out, key.data, val.data);
        free(name);
        free(origin);
        rc = failed ? SQLITE_ERROR : SQLITE_OK;
    }
    if (rc != SQLITE_DONE && !failed)
        fail(db, err, errlen);
    sqlite3_finalize(st);
    buf_free(&key);
    buf_free(&val);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int describe_table(sqlite3 *db, const char *table, const char *sql,
                          struct schema_desc *out, char *err, size_t errlen)
{
    struct desc_ctx ctx = {out, table};
    struct buf key;
    int64_t strict = 0, wr = 0;

    if (query_int(db, "SELECT strict FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
                  table, &strict, err, errlen) != 0 ||
        query_int(db, "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
                  table, &wr, err, errlen) != 0)
        return -1;
    buf_init(&key, 1 << 20);
    buf_printf(&key, "table %s", table);
    schema_desc_add(out, key.data,
                    strict && wr ? "strict, without rowid" : strict ? "strict"
                                                     : wr           ? "without rowid"
                                                                    : "");
    buf_free(&key);
    schema_sql_checks(sql, add_check, &ctx);
    if (describe_columns(db, table, out, err, errlen) != 0 ||
        describe_foreign_keys(db, table, out, err, errlen) != 0 ||
        describe_indexes(db, table, out, err, errlen) != 0)
        return -1;
    return 0;
}

static int describe(sqlite3 *db, struct schema_desc *out, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT type, name, coalesce(sql, '') FROM sqlite_schema"
                                " WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                                " AND type IN ('table', 'view', 'trigger') ORDER BY name",
                                -1, &st, NULL);
    struct buf key;

    bool failed = false;

    buf_init(&key, 1 << 20);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        char *type = xstrdup(text_or(st, 0, ""));
        char *name = xstrdup(text_or(st, 1, ""));
        char *sql = xstrdup(text_or(st, 2, ""));
        if (strcmp(type, "table") == 0) {
            failed = describe_table(db, name, sql, out, err, errlen) != 0;
        } else {
            char *norm = schema_sql_normalize(sql, strlen(sql));
            buf_reset(&key);
            buf_printf(&key, "%s %s", type, name);
            schema_desc_add(out, key.data, norm);
            free(norm);
        }
        free(type);
        free(name);
        free(sql);
        rc = failed ? SQLITE_ERROR : SQLITE_OK;
    }
    if (rc != SQLITE_DONE && !failed)
        fail(db, err, errlen);
    sqlite3_finalize(st);
    buf_free(&key);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- struct mdb ------------------------------------------------------------ */

static void sq_close(struct mdb *base)
{
    struct mdb_sq *s = (struct mdb_sq *)base;

    sqlite3_close_v2(s->db);
    free(s);
}

static void sq_migrate_db(struct mdb *base, struct migrate_db *out)
{
    mdb_sqlite_callbacks(((struct mdb_sq *)base)->db, out);
}

static int sq_alembic_version(struct mdb *base, char **rev, char *err, size_t errlen)
{
    sqlite3 *db = ((struct mdb_sq *)base)->db;
    sqlite3_stmt *st = NULL;
    bool exists = false;
    int rc;

    if (table_exists(db, "alembic_version", &exists, err, errlen) != 0)
        return -1;
    if (!exists)
        return 0;
    rc = sqlite3_prepare_v2(db, "SELECT coalesce(group_concat(version_num, ','), '')"
                                " FROM alembic_version", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        *rev = xstrdup(text_or(st, 0, ""));
    else
        fail(db, err, errlen);
    sqlite3_finalize(st);
    return *rev != NULL ? 0 : -1;
}

static int sq_describe(struct mdb *base, struct schema_desc *out, char *err, size_t errlen)
{
    return describe(((struct mdb_sq *)base)->db, out, err, errlen);
}

/* Apply the list to an in-memory database with the same runner and describe
 * that. */
static int sq_describe_expected(struct mdb *base, const struct migration *list, size_t n,
                                struct schema_desc *out, char *err, size_t errlen)
{
    sqlite3 *mem = NULL;
    struct migrate_db cb;
    int64_t v;
    int rc = -1;

    (void)base;
    if (sqlite3_open_v2(":memory:", &mem, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "cannot open an in-memory database");
        goto out;
    }
    mdb_sqlite_callbacks(mem, &cb);
    if (cb_current_version(mem, &v, err, errlen) != 0 ||
        migrate_apply(&cb, list, n, NULL, err, errlen) < 0)
        goto out;
    rc = describe(mem, out, err, errlen);
out:
    sqlite3_close_v2(mem);
    return rc;
}

static const struct mdb_ops sqlite_ops = {
    .dialect = "sqlite",
    .close = sq_close,
    .migrate_db = sq_migrate_db,
    .alembic_version = sq_alembic_version,
    .describe = sq_describe,
    .describe_expected = sq_describe_expected,
};

int mdb__sqlite_open(const char *path, const struct mdb_opts *o, struct mdb **out, char *err,
                     size_t errlen)
{
    struct mdb_sq *s = xcalloc(1, sizeof(*s));
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    char ignored[8];

    s->base.ops = &sqlite_ops;
    if (access(path, F_OK) != 0 && !o->create)
        s->base.missing = true;
    if (o->create)
        flags |= SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(s->base.missing ? ":memory:" : path, &s->db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path,
                 s->db != NULL ? sqlite3_errmsg(s->db) : "cannot open");
        sqlite3_close_v2(s->db);
        free(s);
        return -1;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, o->lock_timeout_ms);
    /* The server's settings: WAL is a property of the file, set once. */
    if ((!s->base.missing && exec_all(s->db, "PRAGMA journal_mode = WAL", err, errlen) != 0) ||
        exec_all(s->db, "PRAGMA foreign_keys = ON", ignored, sizeof(ignored)) != 0 ||
        exec_all(s->db, "SELECT count(*) FROM sqlite_schema", err, errlen) != 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", err);
        snprintf(err, errlen, "%s: %s", path, msg);
        sqlite3_close_v2(s->db);
        free(s);
        return -1;
    }
    *out = &s->base;
    return 0;
}

int mdb__sqlite_probe(const char *path, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    int rc;

    if (access(path, F_OK) != 0) {
        char *copy = xstrdup(path);
        const char *dir = dirname(copy);
        rc = access(dir, W_OK | X_OK);
        if (rc != 0)
            snprintf(err, errlen, "%s: the file does not exist and %s is not writable: %s", path,
                     dir, strerror(errno));
        free(copy);
        return rc == 0 ? 0 : -1;
    }
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = exec_all(db, "SELECT count(*) FROM sqlite_schema", err, errlen) == 0 ? SQLITE_OK
                                                                                   : SQLITE_ERROR;
    else
        snprintf(err, errlen, "%s: %s", path, db != NULL ? sqlite3_errmsg(db) : "cannot open");
    sqlite3_close_v2(db);
    return rc == SQLITE_OK ? 0 : -1;
}
