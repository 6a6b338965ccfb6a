/*
 * dbtool/dbsrc: the reader. SQLite (current and legacy layouts) is read
 * with one prepared statement per scan, converting each stored value with
 * dbtool/dbconv; PostgreSQL through a cursor in a REPEATABLE READ READ
 * ONLY transaction, fetched in batches in binary format (uuid, bool, int8
 * and timestamptz arrive as fixed-size binary values: nothing to parse).
 * One struct dbrow is reused for every row: no per-row allocation.
 */
#include "dbtool/dbsrc.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "migrate/migrate.h"
#include "model/uuid.h"
#include "store/pg_conn.h"
#include "util/civil.h"
#include "util/dburl.h"
#include "util/hex.h"
#include "util/utf8.h"
#include "util/xalloc.h"

#define BATCH_ROWS_DEFAULT 10000
#define CONNECT_TIMEOUT_DEFAULT 10
#define SQLITE_BUSY_MS 10000
/* PostgreSQL's binary timestamptz: microseconds since 2000-01-01 UTC. */
#define PG_EPOCH_MS INT64_C(946684800000)
#define MS_MIN INT64_C(-62135596800000)
#define MS_MAX INT64_C(253402300799999)

struct dbsrc {
    bool pg;
    char *label;
    enum dbsrc_layout layout;
    int64_t version;
    char *alembic;
    const struct dbconv_tz *tz;
    int64_t batch;
    sqlite3 *db;
    PGconn *conn;
    bool pg_fk;       /* PostgreSQL: a validated todos.user_id → users(id) foreign key */
    /* The canonical user_ids that todos of the snapshot name but no user has
     * (any stored uuid form matches), sorted; loaded by the first scan of
     * todos (orphans_loaded). */
    char (*orphans)[DBROW_UUID_LEN + 1];
    size_t norphans;
    bool orphans_loaded;
    char *pg_encoding; /* PostgreSQL: server_encoding */
    unsigned cursors; /* PostgreSQL: cursor names */
    struct dbrow row; /* the row handed to callbacks, reused */
};

/* One scan's parameters and state. */
struct scan {
    struct dbsrc *s;
    const struct dbtable *t;
    unsigned flags;
    dbsrc_row_fn *row_fn;
    dbsrc_reject_fn *reject_fn;
    void *ctx;
    char *err;
    size_t errlen;
    size_t ncols; /* columns converted: t->ncols, or 1 for keys only */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- rows: conversion and rejection (both dialects) ----------------------- */

/* The stored primary key as a user should see it. */
static void pk_text(const struct dbraw *raw, struct buf *out)
{
    bool plain = raw->kind == DBRAW_TEXT && raw->len > 0 && raw->len <= 64;

    for (size_t i = 0; plain && i < raw->len; i++)
        plain = raw->p[i] > 0x20 && raw->p[i] < 0x7f && raw->p[i] != '"';
    if (plain)
        buf_append(out, raw->p, raw->len);
    else
        dbconv_raw_text(raw, out);
}

/* Report a row that cannot be read: to reject_fn (its answer returned), or
 * as the scan's error (-1). */
static int reject(struct scan *sc, const struct dbraw *pk, const char *column,
                  const struct dbraw *value, const char *value_text, const char *reason)
{
    struct buf pkb, vb;
    int rc;

    buf_init(&pkb, 4096);
    buf_init(&vb, 4096);
    pk_text(pk, &pkb);
    if (value_text != NULL)
        buf_append_str(&vb, value_text);
    else
        dbconv_raw_text(value, &vb);
    if (sc->reject_fn != NULL) {
        struct dbreject rej = {sc->t, pkb.data, column, vb.data, reason};
        rc = sc->reject_fn(sc->ctx, &rej);
    } else {
        set_err(sc->err, sc->errlen, "%s: table %s, id %s, column %s: %s (value %s)",
                sc->s->label, sc->t->name, pkb.data, column, reason, vb.data);
        rc = -1;
    }
    buf_free(&pkb);
    buf_free(&vb);
    return rc;
}

/* Convert column c's raw value into the row: true, or false with *stop
 * set to what reject() says (0: skip the row and go on). */
static bool convert(struct scan *sc, size_t c, const struct dbraw *raw, const struct dbraw *pk,
                    int *stop)
{
    char why[160];
    const struct dbcol *col = &sc->t->cols[c];

    if (dbconv_value(raw, col, sc->s->tz, &sc->s->row.v[c], why, sizeof(why)) == 0)
        return true;
    *stop = reject(sc, pk, col->name, raw, NULL, why);
    return false;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, DBROW_UUID_LEN);
}

/* The row is converted: check its user (a todo), hand it over. 0 go on,
 * else stop. */
static int deliver(struct scan *sc, const struct dbraw *pk, const struct dbraw *user_id)
{
    struct dbsrc *s = sc->s;

    if (s->norphans > 0 && sc->ncols > 1 && user_id != NULL &&
        bsearch(s->row.v[1].uuid, s->orphans, s->norphans, sizeof(s->orphans[0]), cmp_id))
        return reject(sc, pk, "user_id", user_id, NULL, "no user with this id");
    return sc->row_fn(sc->ctx, &s->row);
}

/* A range bound as canonical uuid text; false when it is not a UUID. */
static bool bound_ok(const char *b, char out[DBROW_UUID_LEN + 1])
{
    return b == NULL || uuid_parse(b, strlen(b), out);
}

/* ---- SQLite ----------------------------------------------------------------- */

/* The legacy app compared emails as typed; the new one trims and
 * lower-cases (ASCII) them (model/user.h), so that is the import's form
 * and the key two users must not share. */
static void email_key_fn(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) != SQLITE_TEXT) {
        sqlite3_result_value(cx, argv[0]);
        return;
    }
    const char *s = (const char *)sqlite3_value_text(argv[0]);
    size_t n = (size_t)sqlite3_value_bytes(argv[0]), start, end;
    utf8_trim(s, n, &start, &end);
    char *out = sqlite3_malloc64(end - start + 1);
    if (out == NULL) {
        sqlite3_result_error_nomem(cx);
        return;
    }
    for (size_t i = start; i < end; i++)
        out[i - start] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] + 32) : s[i];
    sqlite3_result_text64(cx, out, end - start, sqlite3_free, SQLITE_UTF8);
}

static int sq_fail(struct dbsrc *s, const char *what, char *err, size_t errlen)
{
    set_err(err, errlen, "%s: %s: %s", s->label, what, sqlite3_errmsg(s->db));
    return -1;
}

static int sq_exec(struct dbsrc *s, const char *sql, char *err, size_t errlen)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sq_fail(s, sql, err, errlen);
    return 0;
}

/* One integer (or text) from a one-row query; *found false when no row. */
static int sq_one(struct dbsrc *s, const char *sql, int64_t *i, char **text, bool *found,
                  char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sq_fail(s, sql, err, errlen);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (i != NULL)
            *i = sqlite3_column_int64(st, 0);
        if (text != NULL) {
            const char *t = (const char *)sqlite3_column_text(st, 0);
            *text = xstrdup(t != NULL ? t : "");
        }
    }
    *found = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        sq_fail(s, sql, err, errlen);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

static int sq_has_table(struct dbsrc *s, const char *name, bool *yes, char *err, size_t errlen)
{
    char sql[160];
    int64_t n = 0;

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '%s'", name);
    if (sq_one(s, sql, &n, NULL, yes, err, errlen) != 0)
        return -1;
    *yes = n > 0;
    return 0;
}

/* The columns the layout's SELECT (sq_select) reads from each table. */
static const char *const legacy_users_cols[] = {
    "id", "email", "password_hash", "name", "is_active", "created_at", "updated_at", NULL};
static const char *const legacy_tasks_cols[] = {
    "id", "user_id", "title", "description", "completed", "completed_at", "created_at",
    "updated_at", NULL};

/* Every name of `cols` (NULL-terminated; or, with cols NULL, of t's
 * columns) must be a column of `table`: else one message listing the
 * missing ones, before anything is read or written. */
static int sq_check_columns(struct dbsrc *s, const char *table, const char *const *cols,
                            const struct dbtable *t, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    struct buf missing;
    int rc = 0;

    if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1,
                           &st, NULL) != SQLITE_OK)
        return sq_fail(s, "reading columns", err, errlen);
    buf_init(&missing, 4096);
    for (size_t i = 0; cols != NULL ? cols[i] != NULL : i < t->ncols; i++) {
        const char *name = cols != NULL ? cols[i] : t->cols[i].name;
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        sqlite3_reset(st);
        if (step == SQLITE_DONE)
            buf_printf(&missing, "%s%s", missing.len > 0 ? ", " : "", name);
        else if (step != SQLITE_ROW)
            rc = sq_fail(s, "reading columns", err, errlen);
    }
    sqlite3_finalize(st);
    if (rc == 0 && missing.len > 0) {
        set_err(err, errlen, "%s: table %s has no column %s, which the %s layout needs",
                s->label, table, missing.data,
                s->layout == DBSRC_LAYOUT_LEGACY ? "legacy" : "current");
        rc = -1;
    }
    buf_free(&missing);
    return rc;
}

/* Two users whose emails are the same once normalised: refused. */
static int sq_email_collisions(struct dbsrc *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    char *prev_key = NULL, *prev_id = NULL;
    int rc, ret = 0;
    const char *sql = "SELECT CAST(id AS TEXT), todo_email_key(email) AS k FROM users "
                      "WHERE email IS NOT NULL ORDER BY k";

    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sq_fail(s, "reading users' emails", err, errlen);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const char *key = (const char *)sqlite3_column_text(st, 1);
        if (id == NULL || key == NULL)
            continue;
        if (prev_key != NULL && strcmp(prev_key, key) == 0) {
            set_err(err, errlen,
                    "%s: users %s and %s have the same email once lower-cased (\"%.100s\"); "
                    "make them distinct in the source first",
                    s->label, prev_id, id, key);
            ret = -1;
            break;
        }
        free(prev_key);
        free(prev_id);
        prev_key = xstrdup(key);
        prev_id = xstrdup(id);
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = sq_fail(s, "reading users' emails", err, errlen);
    free(prev_key);
    free(prev_id);
    sqlite3_finalize(st);
    return ret;
}

static int64_t embedded_head(const char *dialect)
{
    size_t n = 0;
    const struct migration *m = migrate_embedded(dialect, &n);

    return n > 0 ? m[n - 1].version : 0;
}

static int sq_current(struct dbsrc *s, char *err, size_t errlen)
{
    bool users, todos, sm, found;
    int64_t head = embedded_head("sqlite");

    if (sq_has_table(s, "users", &users, err, errlen) != 0 ||
        sq_has_table(s, "todos", &todos, err, errlen) != 0 ||
        sq_has_table(s, "schema_migrations", &sm, err, errlen) != 0)
        return -1;
    if (!sm || !users || !todos) {
        set_err(err, errlen,
                "%s: not a todo database (no %s table); for the old Python app's files use "
                "--from-layout legacy",
                s->label, !sm ? "schema_migrations" : !users ? "users" : "todos");
        return -1;
    }
    if (sq_one(s, "SELECT coalesce(max(version), 0) FROM schema_migrations", &s->version, NULL,
               &found, err, errlen) != 0)
        return -1;
    if (s->version > head) {
        set_err(err, errlen,
                "%s: schema version %" PRId64 " is newer than this todo knows (%" PRId64
                "); use a newer todo",
                s->label, s->version, head);
        return -1;
    }
    if (s->version < 1) {
        set_err(err, errlen, "%s: no migration applied (run `todo migrate up` on it first)",
                s->label);
        return -1;
    }
    return sq_check_columns(s, "users", NULL, dbrow_table("users"), err, errlen) == 0 &&
                   sq_check_columns(s, "todos", NULL, dbrow_table("todos"), err, errlen) == 0
               ? 0
               : -1;
}

static int sq_legacy(struct dbsrc *s, char *err, size_t errlen)
{
    bool users, tasks, alembic, found = false;

    if (sq_has_table(s, "users", &users, err, errlen) != 0 ||
        sq_has_table(s, "tasks", &tasks, err, errlen) != 0 ||
        sq_has_table(s, "alembic_version", &alembic, err, errlen) != 0)
        return -1;
    if (!users || !tasks) {
        set_err(err, errlen, "%s: not the legacy layout (no %s table)", s->label,
                !users ? "users" : "tasks");
        return -1;
    }
    if (sq_check_columns(s, "users", legacy_users_cols, NULL, err, errlen) != 0 ||
        sq_check_columns(s, "tasks", legacy_tasks_cols, NULL, err, errlen) != 0)
        return -1;
    if (alembic && sq_one(s, "SELECT group_concat(version_num, ',') FROM alembic_version", NULL,
                          &s->alembic, &found, err, errlen) != 0)
        return -1;
    if (s->alembic == NULL)
        s->alembic = xstrdup("");
    return sq_email_collisions(s, err, errlen);
}

static int sq_open(struct dbsrc *s, const char *path, enum dbsrc_layout want, char *err,
                   size_t errlen)
{
    bool todos = false, tasks = false;

    if (access(path, F_OK) != 0) {
        set_err(err, errlen, "%s: no such file", s->label);
        return -1;
    }
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        return sq_fail(s, "cannot open", err, errlen);
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, SQLITE_BUSY_MS);
    sqlite3_create_function_v2(s->db, "todo_email_key", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                               NULL, email_key_fn, NULL, NULL, NULL);
    /* Reads go faster mapped; a large cache keeps the parents' index hot. */
    if (sq_exec(s, "PRAGMA mmap_size = 1073741824", err, errlen) != 0 ||
        sq_exec(s, "PRAGMA cache_size = -65536", err, errlen) != 0 ||
        sq_exec(s, "BEGIN", err, errlen) != 0)
        return -1;
    /* The first read starts the snapshot every later read sees. */
    if (sq_has_table(s, "todos", &todos, err, errlen) != 0 ||
        sq_has_table(s, "tasks", &tasks, err, errlen) != 0)
        return -1;
    if (want == DBSRC_LAYOUT_AUTO)
        want = tasks && !todos ? DBSRC_LAYOUT_LEGACY : DBSRC_LAYOUT_CURRENT;
    s->layout = want;
    return want == DBSRC_LAYOUT_LEGACY ? sq_legacy(s, err, errlen) : sq_current(s, err, errlen);
}

/* The SELECT of a table in a layout. */
static void sq_select(const struct dbsrc *s, const struct dbtable *t, bool keys, struct buf *q)
{
    bool legacy = s->layout == DBSRC_LAYOUT_LEGACY;
    bool users = strcmp(t->name, "users") == 0;

    if (keys)
        buf_append_str(q, "SELECT t.id");
    else if (users)
        buf_append_str(q, legacy ? "SELECT t.id, todo_email_key(t.email), t.password_hash, "
                                   "t.name, t.is_active, t.created_at, "
                                   "coalesce(t.updated_at, t.created_at)"
                                 : "SELECT t.id, t.email, t.password_hash, t.name, t.is_active, "
                                   "t.created_at, t.updated_at");
    else
        buf_append_str(q, legacy ? "SELECT t.id, t.user_id, t.title, t.description, t.completed, "
                                   "t.completed_at, t.created_at, "
                                   "coalesce(t.updated_at, t.created_at), 1"
                                 : "SELECT t.id, t.user_id, t.title, t.description, t.completed, "
                                   "t.completed_at, t.created_at, t.updated_at, t.version");
    buf_printf(q, " FROM %s t", users ? "users" : legacy ? "tasks" : "todos");
}

static int orphans_load(struct dbsrc *s, char *err, size_t errlen);

static void sq_raw(sqlite3_stmt *st, int c, struct dbraw *r)
{
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_INTEGER:
        r->kind = DBRAW_INT;
        r->i = sqlite3_column_int64(st, c);
        break;
    case SQLITE_FLOAT:
        r->kind = DBRAW_REAL;
        r->r = sqlite3_column_double(st, c);
        break;
    case SQLITE_TEXT:
        r->kind = DBRAW_TEXT;
        r->p = sqlite3_column_text(st, c);
        r->len = (size_t)sqlite3_column_bytes(st, c);
        break;
    case SQLITE_BLOB:
        r->kind = DBRAW_BLOB;
        r->p = sqlite3_column_blob(st, c);
        r->len = (size_t)sqlite3_column_bytes(st, c);
        break;
    default:
        r->kind = DBRAW_NULL;
        break;
    }
}

/* Is the stored id in the layout's form (so stored order = key order)? */
static bool sq_id_form_ok(const struct dbsrc *s, const struct dbraw *id, const char *canon)
{
    if (id->kind != DBRAW_TEXT)
        return false;
    if (s->layout == DBSRC_LAYOUT_CURRENT)
        return id->len == DBROW_UUID_LEN && memcmp(id->p, canon, DBROW_UUID_LEN) == 0;
    if (id->len != 32)
        return false;
    for (size_t i = 0, j = 0; i < DBROW_UUID_LEN; i++)
        if (canon[i] != '-' && canon[i] != (char)id->p[j++])
            return false;
    return true;
}

/* The bound in the layout's stored form (legacy: 32 hex digits). */
static void sq_bound(const struct dbsrc *s, const char *canon, char *out)
{
    size_t j = 0;

    for (size_t i = 0; i < DBROW_UUID_LEN; i++)
        if (s->layout == DBSRC_LAYOUT_CURRENT || canon[i] != '-')
            out[j++] = canon[i];
    out[j] = '\0';
}

static int sq_row(struct scan *sc, sqlite3_stmt *st)
{
    struct dbsrc *s = sc->s;
    struct dbraw raw[DBROW_MAX_COLS];
    int rc;

    for (size_t c = 0; c < sc->ncols; c++) {
        sq_raw(st, (int)c, &raw[c]);
        if (!convert(sc, c, &raw[c], &raw[0], &rc))
            return rc;
    }
    if (!(sc->flags & DBSRC_SCAN_ANY_ORDER) && !sq_id_form_ok(s, &raw[0], s->row.v[0].uuid)) {
        struct buf b;
        buf_init(&b, 4096);
        dbconv_raw_text(&raw[0], &b);
        set_err(sc->err, sc->errlen,
                "%s: table %s: the stored id %s is not in the form %s, so rows cannot be read "
                "in key order (todo db copy can still read them)",
                s->label, sc->t->name, b.data,
                s->layout == DBSRC_LAYOUT_CURRENT ? "of lower-case canonical UUID text"
                                                  : "of 32 lower-case hex digits");
        buf_free(&b);
        return -1;
    }
    return deliver(sc, &raw[0], sc->ncols > 1 ? &raw[1] : NULL);
}

static int sq_scan(struct scan *sc, const char *lo, const char *hi)
{
    struct dbsrc *s = sc->s;
    bool keys = sc->flags & DBSRC_SCAN_KEYS_ONLY;
    const char *idcol = "t.id";
    char blo[DBROW_UUID_LEN + 1], bhi[DBROW_UUID_LEN + 1];
    struct buf q;
    sqlite3_stmt *st = NULL;
    int rc, ret = 0, nb = 0;

    buf_init(&q, 4096);
    if (!keys && strcmp(sc->t->name, "todos") == 0 &&
        orphans_load(s, sc->err, sc->errlen) != 0) {
        ret = -1;
        goto out;
    }
    sq_select(s, sc->t, keys, &q);
    if (lo != NULL)
        buf_printf(&q, " WHERE %s > ?1", idcol);
    if (hi != NULL)
        buf_printf(&q, " %s %s <= ?2", lo != NULL ? "AND" : "WHERE", idcol);
    if (!(sc->flags & DBSRC_SCAN_ANY_ORDER))
        buf_printf(&q, " ORDER BY %s", idcol);
    if (sqlite3_prepare_v2(s->db, q.data, -1, &st, NULL) != SQLITE_OK) {
        ret = sq_fail(s, q.data, sc->err, sc->errlen);
        goto out;
    }
    if (lo != NULL) {
        sq_bound(s, lo, blo);
        sqlite3_bind_text(st, ++nb, blo, -1, SQLITE_STATIC);
    }
    if (hi != NULL) {
        sq_bound(s, hi, bhi);
        sqlite3_bind_text(st, 2, bhi, -1, SQLITE_STATIC);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((ret = sq_row(sc, st)) != 0)
            goto out;
    if (rc != SQLITE_DONE)
        ret = sq_fail(s, sc->t->name, sc->err, sc->errlen);
out:
    sqlite3_finalize(st);
    buf_free(&q);
    return ret;
}

static int sq_count(struct dbsrc *s, const struct dbtable *t, int64_t *n, char *err,
                    size_t errlen)
{
    bool found;
    const char *name = s->layout == DBSRC_LAYOUT_LEGACY && strcmp(t->name, "todos") == 0
                           ? "tasks"
                           : t->name;
    char sql[100];

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", name);
    return sq_one(s, sql, n, NULL, &found, err, errlen);
}

/* ---- PostgreSQL --------------------------------------------------------------- */

static int pg_fail(struct dbsrc *s, const char *what, const PGresult *r, char *err,
                   size_t errlen)
{
    const char *primary = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *msg = primary != NULL ? primary : PQerrorMessage(s->conn);
    char one[512];
    size_t n = 0;

    for (size_t i = 0; msg[i] != '\0' && n + 1 < sizeof(one); i++) { /* one line, single spaces */
        char ch = msg[i] == '\n' || msg[i] == '\r' || msg[i] == '\t' ? ' ' : msg[i];
        if (ch != ' ' || (n > 0 && one[n - 1] != ' '))
            one[n++] = ch;
    }
    while (n > 0 && one[n - 1] == ' ')
        n--;
    one[n] = '\0';
    set_err(err, errlen, "%s: %s: %s%s", s->label, what, one,
            primary == NULL ? pg_conn_error_hint(msg) : "");
    return -1;
}

/* Run sql (text results); the result, or NULL with err set. */
static PGresult *pg_query(struct dbsrc *s, const char *sql, int nparams,
                          const char *const *params, char *err, size_t errlen)
{
    PGresult *r = nparams > 0 ? PQexecParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0)
                              : PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(r);

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    pg_fail(s, sql, r, err, errlen);
    PQclear(r);
    return NULL;
}

static int pg_exec(struct dbsrc *s, const char *sql, char *err, size_t errlen)
{
    PGresult *r = pg_query(s, sql, 0, NULL, err, errlen);

    PQclear(r);
    return r != NULL ? 0 : -1;
}

/* The first value of a one-row query as text (caller frees); NULL for SQL
 * NULL. -1 on error. */
static int pg_value(struct dbsrc *s, const char *sql, char **out, char *err, size_t errlen)
{
    PGresult *r = pg_query(s, sql, 0, NULL, err, errlen);

    if (r == NULL)
        return -1;
    *out = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? xstrdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    return 0;
}

static int pg_current(struct dbsrc *s, char *err, size_t errlen)
{
    char *users = NULL, *todos = NULL, *tasks = NULL, *sm = NULL, *v = NULL, *fk = NULL;
    int64_t head = embedded_head("postgres");
    int ret = -1;

    if (pg_value(s, "SELECT to_regclass('users')::text", &users, err, errlen) != 0 ||
        pg_value(s, "SELECT to_regclass('todos')::text", &todos, err, errlen) != 0 ||
        pg_value(s, "SELECT to_regclass('tasks')::text", &tasks, err, errlen) != 0 ||
        pg_value(s, "SELECT to_regclass('schema_migrations')::text", &sm, err, errlen) != 0)
        goto out;
    if (s->layout == DBSRC_LAYOUT_LEGACY || (tasks != NULL && todos == NULL)) {
        set_err(err, errlen,
                "%s: the legacy layout (users/tasks) is read from SQLite files only", s->label);
        goto out;
    }
    if (sm == NULL || users == NULL || todos == NULL) {
        set_err(err, errlen, "%s: not a todo database (no %s table)", s->label,
                sm == NULL ? "schema_migrations" : users == NULL ? "users" : "todos");
        goto out;
    }
    if (pg_value(s, "SELECT coalesce(max(version), 0) FROM schema_migrations", &v, err,
                 errlen) != 0)
        goto out;
    s->version = strtoll(v, NULL, 10);
    if (s->version > head) {
        set_err(err, errlen,
                "%s: schema version %" PRId64 " is newer than this todo knows (%" PRId64
                "); use a newer todo",
                s->label, s->version, head);
        goto out;
    }
    if (s->version < 1) {
        set_err(err, errlen, "%s: no migration applied (run `todo migrate up` on it first)",
                s->label);
        goto out;
    }
    /* With a validated foreign key no todo can lack its user: the scan
     * then skips that test. */
    if (pg_value(s,
                 "SELECT 1 FROM pg_constraint WHERE conrelid = 'todos'::regclass AND "
                 "contype = 'f' AND confrelid = 'users'::regclass AND convalidated AND "
                 "conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = "
                 "'todos'::regclass AND attname = 'user_id')]::int2[]",
                 &fk, err, errlen) != 0)
        goto out;
    s->pg_fk = fk != NULL;
    if (pg_value(s, "SHOW server_encoding", &s->pg_encoding, err, errlen) != 0)
        goto out;
    s->layout = DBSRC_LAYOUT_CURRENT;
    ret = 0;
out:
    free(users);
    free(todos);
    free(tasks);
    free(sm);
    free(v);
    free(fk);
    return ret;
}

static int pg_open(struct dbsrc *s, const char *conninfo, const struct dbsrc_opts *o, char *err,
                   size_t errlen)
{
    char timeout[16];
    /* connect_timeout before dbname: a connect_timeout in the URL wins. */
    const char *keys[] = {"connect_timeout", "dbname", "client_encoding", NULL};
    const char *vals[] = {timeout, conninfo, "UTF8", NULL};

    snprintf(timeout, sizeof(timeout), "%d",
             o->connect_timeout_s > 0 ? o->connect_timeout_s : CONNECT_TIMEOUT_DEFAULT);
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(s->conn) != CONNECTION_OK)
        return pg_fail(s, "cannot connect", NULL, err, errlen);
    /* One snapshot for every read; SET LOCAL so it also holds through a
     * transaction pooler. Text values (digests, messages) in UTC. No
     * timeout a role may set cuts a long scan, or the snapshot while the
     * other side works. */
    if (pg_exec(s,
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
                "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; "
                "SET LOCAL statement_timeout = 0; "
                "SET LOCAL idle_in_transaction_session_timeout = 0; "
                "SET LOCAL work_mem = '64MB'",
                err, errlen) != 0)
        return -1;
    s->layout = o->layout;
    return pg_current(s, err, errlen);
}

/* The SELECT of a table: every column cast to the type whose binary form
 * pg_row decodes. */
static void pg_select(const struct scan *sc, struct buf *q)
{
    static const char *const cast[] = {
        [DBCOL_UUID] = "uuid", [DBCOL_TEXT] = "text", [DBCOL_BOOL] = "bool",
        [DBCOL_TS] = "timestamptz", [DBCOL_INT] = "int8"};

    buf_append_str(q, "SELECT ");
    for (size_t c = 0; c < sc->ncols; c++)
        buf_printf(q, "%st.%s::%s", c > 0 ? ", " : "", sc->t->cols[c].name,
                   cast[sc->t->cols[c].type]);
    buf_printf(q, " FROM %s t", sc->t->name);
}

static int64_t be64(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | u[i];
    return (int64_t)v;
}

/* A timestamptz as PostgreSQL shows it in UTC ("infinity", "10000-01-01
 * 00:00:00.000000+00", "0001-12-31 23:59:59.000000+00 BC"), from its
 * binary value: no query while a FETCH may be in flight. */
static void pg_ts_text(int64_t us, char *out, size_t n)
{
    if (us == INT64_MAX || us == INT64_MIN) {
        snprintf(out, n, "%s", us == INT64_MAX ? "infinity" : "-infinity");
        return;
    }
    int64_t days = civil_floor_div(us, INT64_C(86400000000)) + 10957; /* since 1970 */
    int64_t tod = us - civil_floor_div(us, INT64_C(86400000000)) * INT64_C(86400000000);
    int64_t y, m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, n, "%04" PRId64 "-%02" PRId64 "-%02" PRId64 " %02" PRId64 ":%02" PRId64
             ":%02" PRId64 ".%06" PRId64 "+00%s",
             y > 0 ? y : 1 - y, m, d, tod / 3600000000, tod / 60000000 % 60,
             tod / 1000000 % 60, tod % 1000000, y > 0 ? "" : " BC");
}

static bool pg_ts_reject(struct scan *sc, const struct dbraw *pk, size_t c, int64_t us,
                         const char *why, int *stop)
{
    char text[160];

    pg_ts_text(us, text, sizeof(text));
    *stop = reject(sc, pk, sc->t->cols[c].name, NULL, text, why);
    return false;
}

/* Column c of row i (binary) into the row: true, or false with *stop set
 * (0: skip the row; -1: error, err set; else the reject callback's value). */
static bool pg_col(struct scan *sc, const PGresult *r, int i, size_t c, const struct dbraw *pk,
                   int *stop)
{
    const struct dbcol *col = &sc->t->cols[c];
    const char *p = PQgetvalue(r, i, (int)c);
    int len = PQgetlength(r, i, (int)c);
    struct dbraw raw = {.kind = DBRAW_NULL};
    struct dbval *v = &sc->s->row.v[c];

    if (PQgetisnull(r, i, (int)c))
        return convert(sc, c, &raw, pk, stop);
    switch (col->type) {
    case DBCOL_TS: {
        if (len != 8)
            break;
        int64_t us = be64(p);
        if (us == INT64_MAX || us == INT64_MIN)
            return pg_ts_reject(sc, pk, c, us, "not a timestamp", stop);
        int64_t ms = civil_floor_div(us, 1000) + PG_EPOCH_MS;
        if (ms < MS_MIN || ms > MS_MAX)
            return pg_ts_reject(sc, pk, c, us, "timestamp outside the years 0001..9999", stop);
        v->null = false;
        v->i = ms;
        return true;
    }
    case DBCOL_BOOL:
        raw = (struct dbraw){.kind = DBRAW_INT, .i = len == 1 ? p[0] != 0 : -1};
        break;
    case DBCOL_INT:
        raw = (struct dbraw){.kind = DBRAW_INT, .i = len == 8 ? be64(p) : INT64_MIN};
        break;
    case DBCOL_UUID:
    case DBCOL_TEXT:
        raw = (struct dbraw){.kind = col->type == DBCOL_UUID ? DBRAW_BLOB : DBRAW_TEXT,
                             .p = (const unsigned char *)p, .len = (size_t)len};
        break;
    }
    if (raw.kind == DBRAW_NULL) {
        set_err(sc->err, sc->errlen, "%s: %s.%s: unexpected binary value of %d bytes",
                sc->s->label, sc->t->name, col->name, len);
        *stop = -1;
        return false;
    }
    return convert(sc, c, &raw, pk, stop);
}

static int pg_row(struct scan *sc, const PGresult *r, int i)
{
    struct dbraw pk = {.kind = DBRAW_TEXT}, uid = {.kind = DBRAW_TEXT};
    int rc;

    for (size_t c = 0; c < sc->ncols; c++) {
        if (!pg_col(sc, r, i, c, &pk, &rc))
            return rc;
        if (c == 0) { /* later rejects name the row by its canonical id */
            pk.p = (const unsigned char *)sc->s->row.v[0].uuid;
            pk.len = DBROW_UUID_LEN;
        }
    }
    if (sc->ncols > 1) {
        uid.p = (const unsigned char *)sc->s->row.v[1].uuid;
        uid.len = DBROW_UUID_LEN;
    }
    return deliver(sc, &pk, sc->ncols > 1 ? &uid : NULL);
}

/* Send a FETCH (binary results) without waiting for it. */
static int pg_send_fetch(struct dbsrc *s, const char *fetch, char *err, size_t errlen)
{
    if (PQsendQueryParams(s->conn, fetch, 0, NULL, NULL, NULL, NULL, 1) == 1)
        return 0;
    return pg_fail(s, fetch, NULL, err, errlen);
}

/* The result of the query sent last (rows), or NULL with err set; the
 * connection is ready for the next query either way. */
static PGresult *pg_collect(struct dbsrc *s, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQgetResult(s->conn), *extra;

    while ((extra = PQgetResult(s->conn)) != NULL)
        PQclear(extra);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        return r;
    pg_fail(s, what, r, err, errlen);
    PQclear(r);
    return NULL;
}

static int pg_scan(struct scan *sc, const char *lo, const char *hi)
{
    struct dbsrc *s = sc->s;
    char cursor[32], fetch[64];
    struct buf q;
    int ret = 0;
    PGresult *r = NULL;
    bool declared = false, in_flight = false;

    snprintf(cursor, sizeof(cursor), "dbsrc_%u", ++s->cursors);
    snprintf(fetch, sizeof(fetch), "FETCH %" PRId64 " FROM %s", s->batch, cursor);
    buf_init(&q, 1 << 16);
    if (sc->ncols > 1 && strcmp(sc->t->name, "todos") == 0 &&
        orphans_load(s, sc->err, sc->errlen) != 0) {
        ret = -1;
        goto out;
    }
    buf_printf(&q, "DECLARE %s NO SCROLL CURSOR FOR ", cursor);
    pg_select(sc, &q);
    /* The bounds are canonical UUIDs (checked): safe as literals. */
    if (lo != NULL)
        buf_printf(&q, " WHERE t.id > '%s'::uuid", lo);
    if (hi != NULL)
        buf_printf(&q, " %s t.id <= '%s'::uuid", lo != NULL ? "AND" : "WHERE", hi);
    if (!(sc->flags & DBSRC_SCAN_ANY_ORDER))
        buf_append_str(&q, " ORDER BY t.id");
    if (pg_exec(s, q.data, sc->err, sc->errlen) != 0) {
        ret = -1;
        goto out;
    }
    declared = true;
    /* The next batch is asked for before this one is converted, so the
     * server produces it meanwhile (as it would stream a COPY). */
    in_flight = pg_send_fetch(s, fetch, sc->err, sc->errlen) == 0;
    if (!in_flight) {
        ret = -1;
        goto out;
    }
    for (;;) {
        in_flight = false;
        if ((r = pg_collect(s, sc->t->name, sc->err, sc->errlen)) == NULL) {
            ret = -1;
            declared = false; /* the transaction is failed: nothing to close */
            goto out;
        }
        int n = PQntuples(r);
        if (n == s->batch) {
            if (pg_send_fetch(s, fetch, sc->err, sc->errlen) != 0) {
                ret = -1;
                goto out;
            }
            in_flight = true;
        }
        for (int i = 0; i < n; i++)
            if ((ret = pg_row(sc, r, i)) != 0)
                goto out;
        PQclear(r);
        r = NULL;
        if (!in_flight)
            break;
    }
out:
    PQclear(r);
    if (in_flight) /* stopped early: drop the batch asked for */
        while ((r = PQgetResult(s->conn)) != NULL)
            PQclear(r);
    if (declared) { /* a stopped scan's cursor is closed too */
        char close_err[256];
        buf_reset(&q);
        buf_printf(&q, "CLOSE %s", cursor);
        if (pg_exec(s, q.data, close_err, sizeof(close_err)) != 0 && ret == 0) {
            set_err(sc->err, sc->errlen, "%s", close_err);
            ret = -1;
        }
    }
    buf_free(&q);
    return ret;
}

/* md5()'s 32 hex digits into 16 bytes; -1 at a character that is not one. */
static int hex_md5(const char *hex, unsigned char md5[16])
{
    for (int i = 0; i < 16; i++) {
        int hi = hex_digit(hex[2 * i]);
        int lo = hi < 0 ? -1 : hex_digit(hex[2 * i + 1]);

        if (lo < 0)
            return -1;
        md5[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* The digest hashes text as the server stores it (textsend). */
static int pg_digest_encoding_ok(struct dbsrc *s, char *err, size_t errlen)
{
    if (s->pg_encoding != NULL &&
        (strcmp(s->pg_encoding, "UTF8") == 0 || strcmp(s->pg_encoding, "SQL_ASCII") == 0))
        return 0;
    set_err(err, errlen, "%s: server_encoding %s: digests need a UTF8 database", s->label,
            s->pg_encoding != NULL ? s->pg_encoding : "unknown");
    return -1;
}

static int pg_digest(struct dbsrc *s, const struct dbtable *t, const char *lo, const char *hi,
                     unsigned char md5[16], int64_t *rows, char *err, size_t errlen)
{
    struct buf q;
    int ret = -1;

    if (pg_digest_encoding_ok(s, err, errlen) != 0)
        return -1;
    buf_init(&q, 1 << 16);
    buf_printf(&q,
               "SELECT md5(coalesce(string_agg(%s, ''::bytea ORDER BY id), ''::bytea)), "
               "count(*) FROM %s",
               dbrow_pg_digest_sql(t), t->name);
    if (lo != NULL)
        buf_printf(&q, " WHERE id > '%s'::uuid", lo);
    if (hi != NULL)
        buf_printf(&q, " %s id <= '%s'::uuid", lo != NULL ? "AND" : "WHERE", hi);
    PGresult *r = pg_query(s, q.data, 0, NULL, err, errlen);
    if (r == NULL)
        goto out;
    if (PQntuples(r) != 1 || hex_md5(PQgetvalue(r, 0, 0), md5) != 0) {
        set_err(err, errlen, "%s: %s: unexpected digest result", s->label, t->name);
        PQclear(r);
        goto out;
    }
    *rows = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    ret = 0;
out:
    buf_free(&q);
    return ret;
}

/* ---- the interface ------------------------------------------------------------ */

/* Add the canonical form of a stored user id to the set (unconvertible
 * ids are left out: their rows are rejected for the value itself). */
static void orphans_add(struct dbsrc *s, const struct dbraw *raw, size_t *alloc)
{
    const struct dbcol *col = &dbrow_table("todos")->cols[1];
    struct dbval v;
    char why[128];

    if (dbconv_value(raw, col, NULL, &v, why, sizeof(why)) != 0 || v.null)
        return;
    if (s->norphans == *alloc) {
        *alloc = *alloc > 0 ? 2 * *alloc : 16;
        s->orphans = xrealloc(s->orphans, *alloc * sizeof(s->orphans[0]));
    }
    memcpy(s->orphans[s->norphans++], v.uuid, sizeof(s->orphans[0]));
}

static void orphans_sort(struct dbsrc *s)
{
    size_t k = 0;

    qsort(s->orphans, s->norphans, sizeof(s->orphans[0]), cmp_id);
    for (size_t i = 0; i < s->norphans; i++)
        if (k == 0 || cmp_id(s->orphans[k - 1], s->orphans[i]) != 0)
            memmove(s->orphans[k++], s->orphans[i], sizeof(s->orphans[0]));
    s->norphans = k;
}

/* Run sql and add column 0 of each row to the set. */
static int sq_collect_ids(struct dbsrc *s, const char *sql, size_t *alloc, char *err,
                          size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sq_fail(s, sql, err, errlen);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dbraw raw;
        sq_raw(st, 0, &raw);
        orphans_add(s, &raw, alloc);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sq_fail(s, sql, err, errlen);
}

/* SQLite: the user ids todos name that match no users.id as stored text
 * (one pass over the user_id index: normally none), then, if any, one
 * pass over users drops those a user has in another uuid form. */
static int sq_orphans(struct dbsrc *s, char *err, size_t errlen)
{
    const char *todos = s->layout == DBSRC_LAYOUT_LEGACY ? "tasks" : "todos";
    char sql[300];
    size_t alloc = 0, k = 0;
    sqlite3_stmt *st = NULL;
    int rc;

    snprintf(sql, sizeof(sql),
             "SELECT d.uid FROM (SELECT DISTINCT user_id AS uid FROM %s) d "
             "WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = d.uid)",
             todos);
    if (sq_collect_ids(s, sql, &alloc, err, errlen) != 0)
        return -1;
    if (s->norphans == 0)
        return 0;
    orphans_sort(s);
    bool *found = xcalloc(s->norphans, sizeof(bool));
    if (sqlite3_prepare_v2(s->db, "SELECT id FROM users", -1, &st, NULL) != SQLITE_OK) {
        free(found);
        return sq_fail(s, "reading users' ids", err, errlen);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dbraw raw;
        struct dbval v;
        char why[128];
        sq_raw(st, 0, &raw);
        if (dbconv_value(&raw, &dbrow_table("users")->cols[0], NULL, &v, why, sizeof(why)) != 0)
            continue;
        char(*hit)[DBROW_UUID_LEN + 1] =
            bsearch(v.uuid, s->orphans, s->norphans, sizeof(s->orphans[0]), cmp_id);
        if (hit != NULL)
            found[hit - s->orphans] = true;
    }
    sqlite3_finalize(st);
    for (size_t i = 0; i < s->norphans; i++)
        if (!found[i])
            memmove(s->orphans[k++], s->orphans[i], sizeof(s->orphans[0]));
    s->norphans = k;
    free(found);
    return rc == SQLITE_DONE ? 0 : sq_fail(s, "reading users' ids", err, errlen);
}

/* PostgreSQL: none with a validated foreign key; else one anti-join. */
static int pg_orphans(struct dbsrc *s, char *err, size_t errlen)
{
    size_t alloc = 0;

    if (s->pg_fk)
        return 0;
    PGresult *r = pg_query(s,
                           "SELECT DISTINCT t.user_id::text FROM todos t WHERE NOT EXISTS "
                           "(SELECT 1 FROM users u WHERE u.id = t.user_id)",
                           0, NULL, err, errlen);
    if (r == NULL)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        struct dbraw raw = {.kind = DBRAW_TEXT,
                            .p = (const unsigned char *)PQgetvalue(r, i, 0),
                            .len = (size_t)PQgetlength(r, i, 0)};
        orphans_add(s, &raw, &alloc);
    }
    PQclear(r);
    orphans_sort(s);
    return 0;
}

static int orphans_load(struct dbsrc *s, char *err, size_t errlen)
{
    if (s->orphans_loaded)
        return 0;
    if ((s->pg ? pg_orphans(s, err, errlen) : sq_orphans(s, err, errlen)) != 0) {
        s->norphans = 0;
        return -1;
    }
    s->orphans_loaded = true;
    return 0;
}

int dbsrc_open(const char *url, const struct dbsrc_opts *o, struct dbsrc **out, char *err,
               size_t errlen)
{
    static const struct dbsrc_opts defaults = {0};
    struct dburl u = {0};
    struct dbsrc *s = NULL;
    int rc;

    *out = NULL;
    if (o == NULL)
        o = &defaults;
    if (dburl_parse(url, &u, err, errlen) != 0)
        return -1;
    s = xcalloc(1, sizeof(*s));
    s->label = xstrdup(u.redacted);
    s->tz = o->tz;
    s->batch = o->batch_rows > 0 ? o->batch_rows : BATCH_ROWS_DEFAULT;
    s->pg = u.kind == DBURL_POSTGRES;
    if (s->pg)
        rc = pg_open(s, u.conninfo, o, err, errlen);
    else
        rc = sq_open(s, u.path, o->layout, err, errlen);
    dburl_free(&u);
    if (rc != 0) {
        dbsrc_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void dbsrc_close(struct dbsrc *s)
{
    if (s == NULL)
        return;
    if (s->db != NULL) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(s->db);
    }
    if (s->conn != NULL) {
        PQclear(PQexec(s->conn, "ROLLBACK"));
        PQfinish(s->conn);
    }
    free(s->label);
    free(s->alembic);
    free(s->pg_encoding);
    free(s->orphans);
    free(s);
}

const char *dbsrc_dialect(const struct dbsrc *s)
{
    return s->pg ? "postgres" : "sqlite";
}

const char *dbsrc_label(const struct dbsrc *s)
{
    return s->label;
}

enum dbsrc_layout dbsrc_layout(const struct dbsrc *s)
{
    return s->layout;
}

int64_t dbsrc_version(const struct dbsrc *s)
{
    return s->layout == DBSRC_LAYOUT_LEGACY ? 0 : s->version;
}

const char *dbsrc_alembic_revision(const struct dbsrc *s)
{
    return s->layout == DBSRC_LAYOUT_LEGACY ? s->alembic : NULL;
}

int dbsrc_count(struct dbsrc *s, const struct dbtable *t, int64_t *n, char *err, size_t errlen)
{
    char sql[100];
    char *v = NULL;

    if (!s->pg)
        return sq_count(s, t, n, err, errlen);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", t->name);
    if (pg_value(s, sql, &v, err, errlen) != 0)
        return -1;
    *n = v != NULL ? strtoll(v, NULL, 10) : 0;
    free(v);
    return 0;
}

int dbsrc_scan(struct dbsrc *s, const struct dbtable *t, const char *lo, const char *hi,
               unsigned flags, dbsrc_row_fn *row_fn, dbsrc_reject_fn *reject_fn, void *ctx,
               char *err, size_t errlen)
{
    char clo[DBROW_UUID_LEN + 1], chi[DBROW_UUID_LEN + 1];
    struct scan sc = {s, t, flags, row_fn, reject_fn, ctx, err, errlen,
                      flags & DBSRC_SCAN_KEYS_ONLY ? 1 : t->ncols};

    if (!bound_ok(lo, clo) || !bound_ok(hi, chi)) {
        set_err(err, errlen, "%s: %s: a range bound is not a UUID", s->label, t->name);
        return -1;
    }
    s->row.t = t;
    memset(s->row.v, 0, sizeof(s->row.v));
    return s->pg ? pg_scan(&sc, lo ? clo : NULL, hi ? chi : NULL)
                 : sq_scan(&sc, lo ? clo : NULL, hi ? chi : NULL);
}

struct digest_ctx {
    EVP_MD_CTX *md;
    int64_t rows;
};

static int digest_row(void *ctx, const struct dbrow *row)
{
    struct digest_ctx *d = ctx;

    dbrow_digest_update(d->md, row);
    d->rows++;
    return 0;
}

int dbsrc_digest(struct dbsrc *s, const struct dbtable *t, const char *lo, const char *hi,
                 unsigned char md5[16], int64_t *rows, char *err, size_t errlen)
{
    char clo[DBROW_UUID_LEN + 1], chi[DBROW_UUID_LEN + 1];
    struct digest_ctx d = {EVP_MD_CTX_new(), 0};
    unsigned int len = 0;
    int rc;

    if (!bound_ok(lo, clo) || !bound_ok(hi, chi)) {
        set_err(err, errlen, "%s: %s: a range bound is not a UUID", s->label, t->name);
        EVP_MD_CTX_free(d.md);
        return -1;
    }
    if (s->pg) {
        EVP_MD_CTX_free(d.md);
        return pg_digest(s, t, lo ? clo : NULL, hi ? chi : NULL, md5, rows, err, errlen);
    }
    if (d.md == NULL)
        abort();
    EVP_DigestInit_ex(d.md, EVP_md5(), NULL);
    rc = dbsrc_scan(s, t, lo, hi, 0, digest_row, NULL, &d, err, errlen);
    EVP_DigestFinal_ex(d.md, md5, &len);
    EVP_MD_CTX_free(d.md);
    if (rc != 0)
        return -1;
    *rows = d.rows;
    return 0;
}

/* ---- bucket digests ----------------------------------------------------------- */

/* PostgreSQL: one query. width_bucket(id, bounds) counts the bounds <= id;
 * a key equal to a bound belongs to the bucket that bound closes, hence
 * the one subtracted. The inner ORDER BY (bucket, id) lets the grouping
 * read each bucket's rows in key order after one sort (the aggregate's
 * own ORDER BY id keeps the digest right whatever the plan). Buckets
 * without rows are absent from the result: they keep the empty digest. */
static int pg_digest_buckets(struct dbsrc *s, const struct dbtable *t,
                             const char (*keys)[DBROW_UUID_LEN + 1], size_t nbounds,
                             unsigned char (*md5)[16], int64_t *rows, char *err, size_t errlen)
{
    struct buf q, arr;
    int ret = -1;

    if (pg_digest_encoding_ok(s, err, errlen) != 0)
        return -1;
    buf_init(&q, 1 << 16);
    buf_init(&arr, SIZE_MAX);
    buf_append_char(&arr, '{');
    for (size_t i = 0; i < nbounds; i++)
        buf_printf(&arr, "%s%s", i > 0 ? "," : "", keys[i]);
    buf_append_char(&arr, '}');
    buf_printf(&q,
               "SELECT b, md5(coalesce(string_agg(e, ''::bytea ORDER BY id), ''::bytea)), "
               "count(*) FROM (SELECT w - (w > 0 AND id = ($1::uuid[])[w])::int AS b, id, "
               "%s AS e FROM (SELECT width_bucket(id, $1::uuid[]) AS w, * FROM %s) t0 "
               "ORDER BY 1, 2) t GROUP BY b ORDER BY b",
               dbrow_pg_digest_sql(t), t->name);
    const char *params[] = {arr.data};
    PGresult *r = pg_query(s, q.data, 1, params, err, errlen);
    if (r == NULL)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        long long b = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        if (b < 0 || (unsigned long long)b > nbounds ||
            hex_md5(PQgetvalue(r, i, 1), md5[b]) != 0) {
            set_err(err, errlen, "%s: %s: unexpected bucket digest result", s->label, t->name);
            PQclear(r);
            goto out;
        }
        rows[b] = strtoll(PQgetvalue(r, i, 2), NULL, 10);
    }
    PQclear(r);
    ret = 0;
out:
    buf_free(&arr);
    buf_free(&q);
    return ret;
}

struct bucket_ctx {
    EVP_MD_CTX *md;
    const char (*keys)[DBROW_UUID_LEN + 1];
    size_t nbounds, cur;
    unsigned char (*md5)[16];
    int64_t *rows;
};

static void bucket_close(struct bucket_ctx *b)
{
    unsigned int len = 0;

    EVP_DigestFinal_ex(b->md, b->md5[b->cur], &len);
    EVP_DigestInit_ex(b->md, EVP_md5(), NULL);
    b->cur++;
}

static int bucket_row(void *ctx, const struct dbrow *row)
{
    struct bucket_ctx *b = ctx;
    const char *pk = dbrow_pk(row);

    while (b->cur < b->nbounds && strcmp(pk, b->keys[b->cur]) > 0)
        bucket_close(b);
    dbrow_digest_update(b->md, row);
    b->rows[b->cur]++;
    return 0;
}

/* SQLite: one scan in key order, each row into its bucket's MD5. */
static int sq_digest_buckets(struct dbsrc *s, const struct dbtable *t,
                             const char (*keys)[DBROW_UUID_LEN + 1], size_t nbounds,
                             unsigned char (*md5)[16], int64_t *rows, char *err, size_t errlen)
{
    struct bucket_ctx b = {EVP_MD_CTX_new(), keys, nbounds, 0, md5, rows};
    int rc;

    if (b.md == NULL || !EVP_DigestInit_ex(b.md, EVP_md5(), NULL))
        abort(); /* out of memory */
    rc = dbsrc_scan(s, t, NULL, NULL, 0, bucket_row, NULL, &b, err, errlen);
    while (rc == 0 && b.cur <= nbounds)
        bucket_close(&b);
    EVP_MD_CTX_free(b.md);
    return rc == 0 ? 0 : -1;
}

int dbsrc_digest_buckets(struct dbsrc *s, const struct dbtable *t, const char *const *bounds,
                         size_t nbounds, unsigned char (*md5)[16], int64_t *rows, char *err,
                         size_t errlen)
{
    char (*keys)[DBROW_UUID_LEN + 1] = xmalloc((nbounds + 1) * sizeof(*keys));
    unsigned char empty[16];
    int rc = -1;

    for (size_t i = 0; i < nbounds; i++) {
        if (bounds[i] == NULL || !bound_ok(bounds[i], keys[i])) {
            set_err(err, errlen, "%s: %s: a bucket bound is not a UUID", s->label, t->name);
            goto out;
        }
        if (i > 0 && strcmp(keys[i - 1], keys[i]) >= 0) {
            set_err(err, errlen, "%s: %s: bucket bounds not in strictly ascending order",
                    s->label, t->name);
            goto out;
        }
    }
    if (!EVP_Digest("", 0, empty, NULL, EVP_md5(), NULL))
        abort();
    for (size_t i = 0; i <= nbounds; i++) {
        memcpy(md5[i], empty, sizeof(empty));
        rows[i] = 0;
    }
    rc = s->pg ? pg_digest_buckets(s, t, keys, nbounds, md5, rows, err, errlen)
               : sq_digest_buckets(s, t, keys, nbounds, md5, rows, err, errlen);
out:
    free(keys);
    return rc;
}
