/*
 * dbtool/dbdst: the writer of `todo db copy` (see dbdst.h). One struct for
 * both dialects; the functions below branch on `pg` once, at the top.
 *
 * PostgreSQL rows are encoded straight into COPY's binary format (no text
 * to parse on the server: uuid 16 bytes, boolean 1 byte, timestamptz int64
 * microseconds since 2000-01-01, integer int4, text its UTF-8 bytes) and
 * handed to libpq about 1 MiB at a time. The secondary indexes and the
 * primary-key, unique and foreign-key constraints are dropped after BEGIN
 * and rebuilt before COMMIT: one sorted build per index is several times
 * cheaper than a million random B-tree insertions, and a foreign key is
 * validated with one join instead of a lookup per row.
 */
#include "dbtool/dbdst.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "migrate/migrate.h"
#include "model/timefmt.h"
#include "util/dburl.h"
#include "util/hex.h"
#include "util/xalloc.h"

#define CHUNK_BYTES (1024 * 1024)
#define CONNECT_TIMEOUT_S 10
#define PG_MAINTENANCE_WORK_MEM "256MB"
#define PG_LOCK_TIMEOUT "60s"
#define SQLITE_BUSY_MS 60000
#define SQLITE_CACHE_PRAGMA "PRAGMA cache_size = -65536" /* KiB: 64 MiB */

/* Milliseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
#define PG_EPOCH_MS INT64_C(946684800000)

struct dbdst {
    bool pg;
    char *label;   /* redacted URL */
    bool in_tx;    /* a transaction is open */
    bool in_copy;  /* PostgreSQL: COPY IN is running */
    const struct dbtable *cur;
    int64_t rows;  /* of the current table */

    /* PostgreSQL */
    PGconn *conn;
    unsigned char *chunk; /* CHUNK_BYTES + room for one row beyond */
    size_t clen, ccap;
    /* DDL to run at commit, in order (rebuilds of what was dropped). */
    char **rebuild;
    size_t nrebuild;

    /* SQLite */
    sqlite3 *db;
    sqlite3_stmt *ins;
};

/* ---- messages -------------------------------------------------------------- */

/* One line: newlines and tabs become single spaces. */
static void one_line(char *s)
{
    size_t n = 0;

    for (size_t i = 0; s[i] != '\0'; i++) {
        char ch = s[i] == '\n' || s[i] == '\t' || s[i] == '\r' ? ' ' : s[i];
        if (ch == ' ' && (n == 0 || s[n - 1] == ' '))
            continue;
        s[n++] = ch;
    }
    while (n > 0 && s[n - 1] == ' ')
        n--;
    s[n] = '\0';
}

/* "<label>: <what>: <the server's message>" */
static void pg_error(struct dbdst *d, const PGresult *r, const char *what, char *err,
                     size_t errlen)
{
    const char *primary = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *context = r != NULL ? PQresultErrorField(r, PG_DIAG_CONTEXT) : NULL;

    if (primary != NULL)
        snprintf(err, errlen, "%s: %s: %s%s%s%s%s", d->label, what, primary,
                 detail ? "; detail: " : "", detail ? detail : "", context ? "; context: " : "",
                 context ? context : "");
    else
        snprintf(err, errlen, "%s: %s: %s", d->label, what, PQerrorMessage(d->conn));
    one_line(err);
}

static void sq_error(struct dbdst *d, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s: %s", d->label, what, sqlite3_errmsg(d->db));
    one_line(err);
}

static void add_rebuild(struct dbdst *d, const char *sql)
{
    d->rebuild = xrealloc(d->rebuild, (d->nrebuild + 1) * sizeof(*d->rebuild));
    d->rebuild[d->nrebuild++] = xstrdup(sql);
}

/* ---- PostgreSQL: statements ------------------------------------------------ */

static PGresult *pg_query(struct dbdst *d, const char *sql, int nparams, const char *const *params,
                          const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexecParams(d->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    pg_error(d, r, what, err, errlen);
    PQclear(r);
    return NULL;
}

static int pg_run(struct dbdst *d, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = pg_query(d, sql, 0, NULL, what != NULL ? what : sql, err, errlen);

    PQclear(r);
    return r != NULL ? 0 : -1;
}

/* One integer the query returns (0 when it returns NULL or no row). */
static int pg_int(struct dbdst *d, const char *sql, int nparams, const char *const *params,
                  int64_t *out, char *err, size_t errlen)
{
    PGresult *r = pg_query(d, sql, nparams, params, sql, err, errlen);

    if (r == NULL)
        return -1;
    *out = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return 0;
}

static void on_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *pg_connect(const char *conninfo, int timeout_s)
{
    char timeout[16];
    /* connect_timeout before dbname: a connect_timeout in the URL wins. */
    const char *keys[] = {"connect_timeout", "dbname", "fallback_application_name",
                          "client_encoding", NULL};
    const char *values[] = {timeout, conninfo, "todo db", "UTF8", NULL};
    PGconn *pg;

    snprintf(timeout, sizeof(timeout), "%d", timeout_s > 0 ? timeout_s : CONNECT_TIMEOUT_S);
    pg = PQconnectdbParams(keys, values, 1);
    if (pg == NULL) {
        fprintf(stderr, "todo db: out of memory\n");
        abort();
    }
    PQsetNoticeProcessor(pg, on_notice, NULL);
    return pg;
}

/* ---- SQLite: statements ---------------------------------------------------- */

static int sq_exec(struct dbdst *d, const char *sql, char *err, size_t errlen)
{
    if (sqlite3_exec(d->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        sq_error(d, sql, err, errlen);
        return -1;
    }
    return 0;
}

/* One integer a query returns; 0 when it returns no row or NULL. */
static int sq_int(struct dbdst *d, const char *sql, int64_t *out, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc;

    *out = 0;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK) {
        sq_error(d, sql, err, errlen);
        return -1;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        sq_error(d, sql, err, errlen);
        return -1;
    }
    return 0;
}

/* ---- both dialects ------------------------------------------------------------ */

/* One integer a query without parameters returns; 0 for no row or NULL. */
static int dst_int(struct dbdst *d, const char *sql, int64_t *out, char *err, size_t errlen)
{
    return d->pg ? pg_int(d, sql, 0, NULL, out, err, errlen) : sq_int(d, sql, out, err, errlen);
}

/* Empty, or truncated; err names the table, its rows and --truncate. */
static int dst_empty(struct dbdst *d, bool truncate, char *err, size_t errlen)
{
    static const char *const names[] = {"users", "todos"};
    char sql[128];
    int64_t n;

    if (truncate)
        return d->pg ? pg_run(d, "TRUNCATE users, todos", NULL, err, errlen)
                     : sq_exec(d, "DELETE FROM todos; DELETE FROM users", err, errlen);
    for (size_t i = 0; i < 2; i++) {
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", names[i]);
        if (dst_int(d, sql, &n, err, errlen) != 0)
            return -1;
        if (n > 0) {
            snprintf(err, errlen,
                     "%s: table %s is not empty (%lld rows); use --truncate to replace them",
                     d->label, names[i], (long long)n);
            return -1;
        }
    }
    return 0;
}

/* The target's schema version (0 without schema_migrations) must be the
 * newest embedded one (with older_ok, only not newer: a dry run's pending
 * migrations would bring it there). */
static int check_version(struct dbdst *d, bool older_ok, char *err, size_t errlen)
{
    const char *has_sql = d->pg ? "SELECT count(*) FROM pg_class"
                                  " WHERE oid = to_regclass('schema_migrations')"
                                : "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
                                  " AND name = 'schema_migrations'";
    int64_t head = migrate_latest_version(d->pg ? "postgres" : "sqlite");
    int64_t has, version = 0;

    if (dst_int(d, has_sql, &has, err, errlen) != 0 ||
        (has != 0 && dst_int(d, "SELECT max(version) FROM schema_migrations", &version, err,
                             errlen) != 0))
        return -1;
    if (version == head || (older_ok && version < head))
        return 0;
    if (version > head)
        snprintf(err, errlen,
                 "%s: the schema is at version %lld, newer than this todo knows (%lld); copy"
                 " with the todo that migrated it",
                 d->label, (long long)version, (long long)head);
    else
        snprintf(err, errlen,
                 "%s: the schema is at version %lld, not %lld (the newest this binary knows);"
                 " run `todo migrate up` on it first",
                 d->label, (long long)version, (long long)head);
    return -1;
}

/* Statements to drop (column 0) and rebuild (column 1) the constraints
 * (primary keys, unique, exclusion, foreign keys, including other tables'
 * foreign keys that reference these) and the indexes that back no
 * constraint. Drop order: foreign keys first (they depend on the keys they
 * reference); rebuild order: the reverse. CHECK and NOT NULL stay: they
 * cost little per row and cannot be checked any cheaper later. */
static const char *const pg_deferred_sql =
    "WITH t(oid) AS (VALUES ('users'::regclass), ('todos'::regclass))"
    " SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname),"
    "  format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,"
    "   pg_get_constraintdef(c.oid)),"
    "  CASE c.contype WHEN 'f' THEN 0 ELSE 1 END AS ord, c.conname"
    " FROM pg_constraint c"
    " WHERE c.contype IN ('p', 'u', 'x', 'f')"
    "  AND (c.conrelid IN (SELECT oid FROM t) OR c.confrelid IN (SELECT oid FROM t))"
    " UNION ALL"
    " SELECT format('DROP INDEX %s', x.indexrelid::regclass), pg_get_indexdef(x.indexrelid),"
    "  2, x.indexrelid::regclass::text"
    " FROM pg_index x WHERE x.indrelid IN (SELECT oid FROM t)"
    "  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid"
    "   AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x'))"
    " ORDER BY 3, 4";

static int pg_defer(struct dbdst *d, char *err, size_t errlen)
{
    PGresult *r = pg_query(d, pg_deferred_sql, 0, NULL, "reading indexes and constraints", err,
                           errlen);
    int n;

    if (r == NULL)
        return -1;
    n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        if (pg_run(d, PQgetvalue(r, i, 0), NULL, err, errlen) != 0) {
            PQclear(r);
            return -1;
        }
    }
    for (int i = n - 1; i >= 0; i--)
        add_rebuild(d, PQgetvalue(r, i, 1));
    PQclear(r);
    return 0;
}

static int pg_open(struct dbdst *d, const char *conninfo, const struct dbdst_opts *o, char *err,
                   size_t errlen)
{
    d->conn = pg_connect(conninfo, o->connect_timeout_s);
    if (PQstatus(d->conn) != CONNECTION_OK) {
        pg_error(d, NULL, "cannot connect", err, errlen);
        return -1;
    }
    if (check_version(d, false, err, errlen) != 0)
        return -1;
    if (pg_run(d, "BEGIN", NULL, err, errlen) != 0)
        return -1;
    d->in_tx = true;
    /* Waiting behind a running server's transactions is fine; forever is not. */
    if (pg_run(d, "SET LOCAL lock_timeout = '" PG_LOCK_TIMEOUT "'", NULL, err, errlen) != 0 ||
        pg_run(d, "LOCK TABLE users, todos IN ACCESS EXCLUSIVE MODE", "locking users, todos", err,
               errlen) != 0 ||
        pg_run(d, "SET LOCAL lock_timeout TO DEFAULT", NULL, err, errlen) != 0 ||
        pg_run(d, "SET LOCAL maintenance_work_mem = '" PG_MAINTENANCE_WORK_MEM "'", NULL, err,
               errlen) != 0 ||
        pg_run(d, "SET LOCAL work_mem = '64MB'", NULL, err, errlen) != 0 ||
        pg_run(d, "SET LOCAL statement_timeout = 0", NULL, err, errlen) != 0 ||
        pg_run(d, "SET LOCAL idle_in_transaction_session_timeout = 0", NULL, err, errlen) != 0 ||
        dst_empty(d, o->truncate, err, errlen) != 0 || pg_defer(d, err, errlen) != 0)
        return -1;
    d->chunk = xmalloc(CHUNK_BYTES + 64 * 1024);
    d->ccap = CHUNK_BYTES;
    return 0;
}

/* ---- PostgreSQL: binary COPY ----------------------------------------------- */

static const unsigned char copy_header[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r',
                                              '\n', 0,   0,   0,   0,   0,   0,   0,   0,   0};

/* Room for n more bytes; a row larger than the spare room grows the buffer. */
static unsigned char *chunk_room(struct dbdst *d, size_t n)
{
    size_t alloc = d->ccap + 64 * 1024;

    if (d->clen + n > alloc) {
        alloc = d->clen + n;
        d->chunk = xrealloc(d->chunk, alloc);
        d->ccap = alloc - 64 * 1024;
    }
    return d->chunk + d->clen;
}

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

/* Canonical uuid text into 16 bytes; -1 if it is not one. */
static int uuid_bytes(const char *s, unsigned char out[16])
{
    size_t k = 0;

    for (size_t i = 0; i < DBROW_UUID_LEN; i++) {
        int hi, lo;
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return -1;
            continue;
        }
        hi = hex_digit(s[i]);
        lo = hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[k++] = (unsigned char)(hi << 4 | lo);
        i++;
    }
    return s[DBROW_UUID_LEN] == '\0' ? 0 : -1;
}

/* The field's bytes (length word included) of one value. */
static int pg_field(struct dbdst *d, const struct dbcol *c, const struct dbval *v, char *err,
                    size_t errlen)
{
    unsigned char *p;

    if (v->null) {
        put_u32(chunk_room(d, 4), UINT32_MAX);
        d->clen += 4;
        return 0;
    }
    switch (c->type) {
    case DBCOL_UUID:
        p = chunk_room(d, 20);
        put_u32(p, 16);
        if (uuid_bytes(v->uuid, p + 4) != 0) {
            snprintf(err, errlen, "%s: column %s: not a canonical uuid", d->cur->name, c->name);
            return -1;
        }
        d->clen += 20;
        return 0;
    case DBCOL_TEXT:
        if (v->len > INT32_MAX) {
            snprintf(err, errlen, "%s: column %s: value too long", d->cur->name, c->name);
            return -1;
        }
        p = chunk_room(d, 4 + v->len);
        put_u32(p, (uint32_t)v->len);
        if (v->len > 0)
            memcpy(p + 4, v->s, v->len);
        d->clen += 4 + v->len;
        return 0;
    case DBCOL_BOOL:
        p = chunk_room(d, 5);
        put_u32(p, 1);
        p[4] = v->i != 0;
        d->clen += 5;
        return 0;
    case DBCOL_TS:
        p = chunk_room(d, 12);
        put_u32(p, 8);
        put_u64(p + 4, (uint64_t)((v->i - PG_EPOCH_MS) * 1000));
        d->clen += 12;
        return 0;
    case DBCOL_INT:
        if (v->i < INT32_MIN || v->i > INT32_MAX) {
            snprintf(err, errlen, "%s: column %s: %lld is out of range for integer",
                     d->cur->name, c->name, (long long)v->i);
            return -1;
        }
        p = chunk_room(d, 8);
        put_u32(p, 4);
        put_u32(p + 4, (uint32_t)(int32_t)v->i);
        d->clen += 8;
        return 0;
    default:
        fprintf(stderr, "dbdst: unknown column type %d\n", (int)c->type);
        abort();
    }
}

/* End COPY (aborting it when `abort_msg`) and read its results: 0 with the
 * rows the server wrote, or -1 with the server's error (a NOT NULL or
 * CHECK the rows break), or with `fallback` when the server gave none. */
static int pg_copy_finish(struct dbdst *d, const char *abort_msg, const char *fallback,
                          int64_t *rows, char *err, size_t errlen)
{
    char what[128];
    PGresult *r;
    int rc = 0;

    /* Fails when the server already ended COPY with an error: read it below. */
    if (PQputCopyEnd(d->conn, abort_msg) != 1 && fallback == NULL)
        fallback = "ending COPY";
    d->in_copy = false;
    snprintf(what, sizeof(what), "COPY %s", d->cur->name);
    while ((r = PQgetResult(d->conn)) != NULL) {
        if (PQresultStatus(r) == PGRES_COMMAND_OK && rows != NULL) {
            *rows = strtoll(PQcmdTuples(r), NULL, 10);
        } else if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0) {
            pg_error(d, r, what, err, errlen);
            rc = -1;
        }
        PQclear(r);
    }
    if (rc == 0 && (abort_msg != NULL || fallback != NULL)) {
        pg_error(d, NULL, fallback != NULL ? fallback : what, err, errlen);
        rc = -1;
    }
    return rc;
}

/* Hand the chunk to libpq. When the server has stopped the COPY (an error
 * on an earlier row), its message is read and returned. */
static int pg_flush(struct dbdst *d, char *err, size_t errlen)
{
    if (d->clen == 0)
        return 0;
    if (PQputCopyData(d->conn, (const char *)d->chunk, (int)d->clen) != 1) {
        pg_copy_finish(d, "aborted", "sending rows", NULL, err, errlen);
        return -1;
    }
    d->clen = 0;
    return 0;
}

/* The types the binary encoding above writes, per column type. */
static bool pg_type_ok(enum dbcol_type t, const char *pgtype)
{
    switch (t) {
    case DBCOL_UUID:
        return strcmp(pgtype, "uuid") == 0;
    case DBCOL_TEXT:
        return strcmp(pgtype, "text") == 0 || strcmp(pgtype, "character varying") == 0;
    case DBCOL_BOOL:
        return strcmp(pgtype, "boolean") == 0;
    case DBCOL_TS:
        return strcmp(pgtype, "timestamp with time zone") == 0;
    case DBCOL_INT:
        return strcmp(pgtype, "integer") == 0;
    default:
        return false;
    }
}

/* Binary COPY has no conversions: every column must have the type the
 * encoding writes (a later migration that changes one must change this). */
static int pg_check_types(struct dbdst *d, const struct dbtable *t, char *err, size_t errlen)
{
    const char *params[2] = {t->name, NULL};
    PGresult *r;

    for (size_t i = 0; i < t->ncols; i++) {
        params[1] = t->cols[i].name;
        r = pg_query(d,
                     "SELECT format_type(atttypid, NULL) FROM pg_attribute"
                     " WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped",
                     2, params, "reading column types", err, errlen);
        if (r == NULL)
            return -1;
        if (PQntuples(r) != 1 || !pg_type_ok(t->cols[i].type, PQgetvalue(r, 0, 0))) {
            snprintf(err, errlen, "%s: column %s.%s has type %s, which this copy cannot write",
                     d->label, t->name, t->cols[i].name,
                     PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "(missing)");
            PQclear(r);
            return -1;
        }
        PQclear(r);
    }
    return 0;
}

static int pg_table_begin(struct dbdst *d, const struct dbtable *t, char *err, size_t errlen)
{
    char sql[512];
    size_t n;
    PGresult *r;

    if (pg_check_types(d, t, err, errlen) != 0)
        return -1;
    n = (size_t)snprintf(sql, sizeof(sql), "COPY %s (", t->name);
    for (size_t i = 0; i < t->ncols && n < sizeof(sql); i++)
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s%s", i > 0 ? ", " : "",
                              t->cols[i].name);
    if (n < sizeof(sql))
        snprintf(sql + n, sizeof(sql) - n, ") FROM STDIN (FORMAT binary)");
    r = PQexec(d->conn, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        pg_error(d, r, "COPY", err, errlen);
        PQclear(r);
        return -1;
    }
    PQclear(r);
    d->in_copy = true;
    d->clen = 0;
    memcpy(chunk_room(d, sizeof(copy_header)), copy_header, sizeof(copy_header));
    d->clen += sizeof(copy_header);
    return 0;
}

static int pg_put(struct dbdst *d, const struct dbrow *r, char *err, size_t errlen)
{
    const struct dbtable *t = d->cur;

    put_u16(chunk_room(d, 2), (uint16_t)t->ncols);
    d->clen += 2;
    for (size_t i = 0; i < t->ncols; i++)
        if (pg_field(d, &t->cols[i], &r->v[i], err, errlen) != 0)
            return -1;
    if (d->clen >= d->ccap)
        return pg_flush(d, err, errlen);
    return 0;
}

/* Send the trailer and the rest, end COPY, read its result. */
static int pg_table_end(struct dbdst *d, int64_t *rows, char *err, size_t errlen)
{
    put_u16(chunk_room(d, 2), UINT16_MAX); /* trailer: -1 */
    d->clen += 2;
    if (pg_flush(d, err, errlen) != 0)
        return -1;
    return pg_copy_finish(d, NULL, NULL, rows, err, errlen);
}

/* Rebuild what pg_defer dropped, then COMMIT. The durability of the
 * commit is the server's (synchronous_commit as configured). */
static int pg_commit(struct dbdst *d, char *err, size_t errlen)
{
    PGresult *r;
    int rc = 0;

    for (size_t i = 0; i < d->nrebuild; i++)
        if (pg_run(d, d->rebuild[i], d->rebuild[i], err, errlen) != 0)
            return -1;
    r = pg_query(d, "COMMIT", 0, NULL, "COMMIT", err, errlen);
    if (r == NULL)
        rc = -1;
    else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        snprintf(err, errlen, "%s: the transaction was rolled back", d->label);
        rc = -1;
    }
    PQclear(r);
    d->in_tx = false;
    return rc;
}

/* ---- SQLite ------------------------------------------------------------------ */

/* Drop the tables' own indexes (not the automatic ones of PRIMARY KEY and
 * UNIQUE, which cannot be) and keep their SQL for dbdst_commit. */
static int sq_defer(struct dbdst *d, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    char **names = NULL;
    size_t n = 0;
    int rc;

    if (sqlite3_prepare_v2(d->db,
                           "SELECT name, sql FROM sqlite_schema WHERE type = 'index'"
                           " AND sql IS NOT NULL AND tbl_name IN ('users', 'todos')"
                           " ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK) {
        sq_error(d, "reading indexes", err, errlen);
        return -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        names = xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = sqlite3_mprintf("DROP INDEX \"%w\"", (const char *)sqlite3_column_text(st, 0));
        add_rebuild(d, (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        sq_error(d, "reading indexes", err, errlen);
    for (size_t i = 0; i < n; i++) {
        if (rc == SQLITE_DONE && sq_exec(d, names[i], err, errlen) != 0)
            rc = SQLITE_ERROR;
        sqlite3_free(names[i]);
    }
    free(names);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int sq_open(struct dbdst *d, const char *path, const struct dbdst_opts *o, char *err,
                   size_t errlen)
{
    if (access(path, F_OK) != 0) {
        snprintf(err, errlen, "%s: %s", d->label, strerror(errno));
        return -1;
    }
    if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        sq_error(d, "cannot open", err, errlen);
        return -1;
    }
    sqlite3_extended_result_codes(d->db, 1);
    sqlite3_busy_timeout(d->db, SQLITE_BUSY_MS);
    /* Foreign keys are checked once, before COMMIT (PRAGMA foreign_key_check):
     * the pragma must be set outside a transaction. */
    if (sq_exec(d, "PRAGMA foreign_keys = OFF", err, errlen) != 0 ||
        sq_exec(d, SQLITE_CACHE_PRAGMA, err, errlen) != 0 ||
        check_version(d, false, err, errlen) != 0)
        return -1;
    if (sq_exec(d, "BEGIN IMMEDIATE", err, errlen) != 0)
        return -1;
    d->in_tx = true;
    return dst_empty(d, o->truncate, err, errlen) == 0 && sq_defer(d, err, errlen) == 0 ? 0 : -1;
}

static int sq_table_begin(struct dbdst *d, const struct dbtable *t, char *err, size_t errlen)
{
    struct buf sql;
    int rc;

    buf_init(&sql, 4096);
    buf_printf(&sql, "INSERT INTO %s (", t->name);
    for (size_t i = 0; i < t->ncols; i++)
        buf_printf(&sql, "%s%s", i > 0 ? ", " : "", t->cols[i].name);
    buf_append_str(&sql, ") VALUES (");
    for (size_t i = 0; i < t->ncols; i++)
        buf_append_str(&sql, i > 0 ? ", ?" : "?");
    buf_append_char(&sql, ')');
    rc = sqlite3_prepare_v3(d->db, sql.data, -1, SQLITE_PREPARE_PERSISTENT, &d->ins, NULL);
    if (rc != SQLITE_OK)
        sq_error(d, sql.data, err, errlen);
    buf_free(&sql);
    return rc == SQLITE_OK ? 0 : -1;
}

/* The SQLite schema's storage forms: uuid and timestamp as text
 * (model/timefmt), booleans 0/1. */
static int sq_put(struct dbdst *d, const struct dbrow *r, char *err, size_t errlen)
{
    const struct dbtable *t = d->cur;
    char ts[DBROW_MAX_COLS][TIMEFMT_LEN + 1];
    int rc;

    for (size_t i = 0; i < t->ncols; i++) {
        const struct dbval *v = &r->v[i];
        int col = (int)i + 1;
        if (v->null) {
            sqlite3_bind_null(d->ins, col);
            continue;
        }
        switch (t->cols[i].type) {
        case DBCOL_UUID:
            sqlite3_bind_text(d->ins, col, v->uuid, DBROW_UUID_LEN, SQLITE_STATIC);
            break;
        case DBCOL_TEXT:
            sqlite3_bind_text64(d->ins, col, v->s != NULL ? v->s : "", v->len, SQLITE_STATIC,
                                SQLITE_UTF8);
            break;
        case DBCOL_TS:
            timefmt_format(v->i, ts[i]);
            sqlite3_bind_text(d->ins, col, ts[i], TIMEFMT_LEN, SQLITE_STATIC);
            break;
        case DBCOL_BOOL:
        case DBCOL_INT:
            sqlite3_bind_int64(d->ins, col, v->i);
            break;
        default:
            fprintf(stderr, "dbdst: unknown column type %d\n", (int)t->cols[i].type);
            abort();
        }
    }
    rc = sqlite3_step(d->ins);
    sqlite3_reset(d->ins);
    if (rc != SQLITE_DONE) {
        char what[128];
        snprintf(what, sizeof(what), "INSERT INTO %s (id %s)", t->name, dbrow_pk(r));
        sq_error(d, what, err, errlen);
        return -1;
    }
    return 0;
}

/* The first row PRAGMA foreign_key_check reports, as an error. */
static int sq_fk_check(struct dbdst *d, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(d->db, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK) {
        sq_error(d, "PRAGMA foreign_key_check", err, errlen);
        return -1;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(err, errlen,
                 "%s: FOREIGN KEY constraint failed: a row of %s (rowid %lld) references a"
                 " missing row of %s",
                 d->label, (const char *)sqlite3_column_text(st, 0),
                 (long long)sqlite3_column_int64(st, 1), (const char *)sqlite3_column_text(st, 2));
    else if (rc != SQLITE_DONE)
        sq_error(d, "PRAGMA foreign_key_check", err, errlen);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int sq_commit(struct dbdst *d, char *err, size_t errlen)
{
    for (size_t i = 0; i < d->nrebuild; i++)
        if (sq_exec(d, d->rebuild[i], err, errlen) != 0)
            return -1;
    if (sq_fk_check(d, err, errlen) != 0 || sq_exec(d, "COMMIT", err, errlen) != 0)
        return -1;
    d->in_tx = false;
    return 0;
}

/* ---- the interface --------------------------------------------------------- */

/* A target for `url`, not connected yet; `u` holds the parsed URL (the
 * caller frees it). NULL with err set when the URL is bad. */
static struct dbdst *dst_new(const char *url, struct dburl *u, char *err, size_t errlen)
{
    struct dbdst *d;

    if (dburl_parse(url, u, err, errlen) != 0)
        return NULL;
    d = xcalloc(1, sizeof(*d));
    d->pg = u->kind == DBURL_POSTGRES;
    d->label = xstrdup(u->redacted);
    return d;
}

int dbdst_open(const char *url, const struct dbdst_opts *o, struct dbdst **out, char *err,
               size_t errlen)
{
    struct dburl u = {0};
    struct dbdst *d;
    int rc;

    *out = NULL;
    if ((d = dst_new(url, &u, err, errlen)) == NULL)
        return -1;
    rc = d->pg ? pg_open(d, u.conninfo, o, err, errlen) : sq_open(d, u.path, o, err, errlen);
    dburl_free(&u);
    if (rc != 0) {
        dbdst_close(d);
        return -1;
    }
    *out = d;
    return 0;
}

void dbdst_close(struct dbdst *d)
{
    if (d == NULL)
        return;
    if (d->pg && d->conn != NULL) {
        if (d->in_copy) {
            char ignored[8];
            pg_copy_finish(d, "aborted", NULL, NULL, ignored, sizeof(ignored));
        }
        if (d->in_tx)
            PQclear(PQexec(d->conn, "ROLLBACK"));
        PQfinish(d->conn);
    }
    if (!d->pg && d->db != NULL) {
        sqlite3_finalize(d->ins);
        if (d->in_tx)
            sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(d->db);
    }
    for (size_t i = 0; i < d->nrebuild; i++)
        free(d->rebuild[i]);
    free(d->rebuild);
    free(d->chunk);
    free(d->label);
    free(d);
}

const char *dbdst_dialect(const struct dbdst *d)
{
    return d->pg ? "postgres" : "sqlite";
}

const char *dbdst_label(const struct dbdst *d)
{
    return d->label;
}

int dbdst_table_begin(struct dbdst *d, const struct dbtable *t, char *err, size_t errlen)
{
    if (d->cur != NULL || !d->in_tx) {
        snprintf(err, errlen, "%s: dbdst_table_begin out of order", d->label);
        return -1;
    }
    d->cur = t;
    d->rows = 0;
    if ((d->pg ? pg_table_begin(d, t, err, errlen) : sq_table_begin(d, t, err, errlen)) != 0) {
        d->cur = NULL;
        return -1;
    }
    return 0;
}

int dbdst_put(struct dbdst *d, const struct dbrow *r, char *err, size_t errlen)
{
    if (d->cur == NULL) {
        snprintf(err, errlen, "%s: dbdst_put outside a table", d->label);
        return -1;
    }
    if ((d->pg ? pg_put(d, r, err, errlen) : sq_put(d, r, err, errlen)) != 0)
        return -1;
    d->rows++;
    return 0;
}

int dbdst_table_end(struct dbdst *d, int64_t *rows_written, char *err, size_t errlen)
{
    int rc;

    if (d->cur == NULL) {
        snprintf(err, errlen, "%s: dbdst_table_end outside a table", d->label);
        return -1;
    }
    *rows_written = d->rows;
    if (d->pg) {
        rc = pg_table_end(d, rows_written, err, errlen);
    } else {
        rc = 0;
        sqlite3_finalize(d->ins);
        d->ins = NULL;
    }
    d->cur = NULL;
    return rc;
}

int dbdst_commit(struct dbdst *d, char *err, size_t errlen)
{
    if (d->cur != NULL || !d->in_tx) {
        snprintf(err, errlen, "%s: dbdst_commit out of order", d->label);
        return -1;
    }
    return d->pg ? pg_commit(d, err, errlen) : sq_commit(d, err, errlen);
}

/* ---- counting outside a copy ----------------------------------------------- */

static int count_pg(struct dbdst *d, const char *conninfo, const struct dbtable *t, int64_t *n,
                    char *err, size_t errlen)
{
    const char *params[1] = {t->name};
    int64_t has;
    char sql[128];

    d->conn = pg_connect(conninfo, 0);
    if (PQstatus(d->conn) != CONNECTION_OK) {
        pg_error(d, NULL, "cannot connect", err, errlen);
        return -1;
    }
    if (check_version(d, true, err, errlen) != 0)
        return -1;
    if (pg_int(d, "SELECT count(*) FROM pg_class WHERE oid = to_regclass($1)", 1, params, &has,
               err, errlen) != 0)
        return -1;
    if (has == 0)
        return 0;
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", t->name);
    return pg_int(d, sql, 0, NULL, n, err, errlen);
}

static int count_sqlite(struct dbdst *d, const char *path, const struct dbtable *t, int64_t *n,
                        char *err, size_t errlen)
{
    char sql[128];
    int64_t has;

    if (access(path, F_OK) != 0)
        return 0; /* it would be created */
    if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        sq_error(d, "cannot open", err, errlen);
        return -1;
    }
    sqlite3_busy_timeout(d->db, SQLITE_BUSY_MS);
    if (check_version(d, true, err, errlen) != 0)
        return -1;
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '%s'", t->name);
    if (sq_int(d, sql, &has, err, errlen) != 0)
        return -1;
    if (has == 0)
        return 0;
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", t->name);
    return sq_int(d, sql, n, err, errlen);
}

int dbdst_count_url(const char *url, const struct dbtable *t, int64_t *n, char *err,
                    size_t errlen)
{
    struct dburl u = {0};
    struct dbdst *d;
    int rc;

    *n = 0;
    if ((d = dst_new(url, &u, err, errlen)) == NULL)
        return -1;
    rc = d->pg ? count_pg(d, u.conninfo, t, n, err, errlen)
               : count_sqlite(d, u.path, t, n, err, errlen);
    dburl_free(&u);
    dbdst_close(d);
    return rc;
}
