/*
 * dbtool/dbrow: the tables `todo db copy|verify` move, and one row of them
 * in canonical form — the form both databases' values are converted to
 * before they are written or compared.
 *
 * Tables (dbrow_tables, in copy order: parents first)
 *   users(id uuid PK, email text ≤255, password_hash text, name text? ≤255,
 *         is_active bool, created_at ts, updated_at ts)
 *   todos(id uuid PK, user_id uuid → users.id, title text 1..255,
 *         description text?, completed bool, completed_at ts?, created_at ts,
 *         updated_at ts, version int ≥1)
 * cols[0] is always the primary key. These are the tables of migration
 * 0001; a later migration that changes them must change this file too
 * (tests/unit/dbtool compares it with the live schema).
 *
 * Canonical values (struct dbval)
 *   UUID: 36 lower-case characters + NUL in `uuid`.
 *   TEXT: `s`/`len`, valid UTF-8 without NUL bytes, borrowed (valid until
 *         the producer's next row); a number converted to text points into
 *         the dbval's own `uuid` buffer, so a struct dbval (or dbrow) copied
 *         by value must have its TEXT values copied or re-pointed.
 *   BOOL: i = 0 or 1.   TS: i = Unix epoch milliseconds (UTC).   INT: i.
 *   null: true for SQL NULL (only in nullable columns).
 *
 * Canonical text (dbrow_value_text): UUID as is; TEXT as is; BOOL "t"/"f";
 * TS as model/timefmt ("2026-11-21T07:13:46.123Z"); INT in decimal.
 *
 * Digest encoding (dbrow_digest_update): per column in order, binary —
 * the bytes PostgreSQL's send functions produce, so that PostgreSQL can
 * compute it cheaply (dbrow_pg_digest_sql):
 *   a nullable column first gets one byte, 0x00 for NULL (nothing follows)
 *   or 0x01; then UUID: its 16 bytes; TEXT: byte length (4 bytes,
 *   big-endian) and the UTF-8 bytes; BOOL: one byte 0/1; TS: microseconds
 *   since 2000-01-01T00:00:00Z (8 bytes, big-endian, two's complement; a
 *   whole number of milliseconds); INT: 8 bytes, big-endian.
 * Rows are concatenated in primary-key order, no separator (the encoding
 * is self-delimiting). MD5 over that stream is a range's digest.
 * dbrow_pg_digest_sql() is the same encoding computed by PostgreSQL, so a
 * range of a PostgreSQL table is digested where it lives.
 *
 * Pure; any thread.
 */
#ifndef TODO_DBTOOL_DBROW_H
#define TODO_DBTOOL_DBROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "util/buf.h"

#define DBROW_MAX_COLS 12
#define DBROW_UUID_LEN 36

enum dbcol_type { DBCOL_UUID, DBCOL_TEXT, DBCOL_BOOL, DBCOL_TS, DBCOL_INT };

struct dbcol {
    const char *name;
    enum dbcol_type type;
    bool nullable;
    int64_t min;          /* TEXT: minimum characters; INT: minimum value */
    int64_t max;          /* TEXT: maximum characters (0: none); INT: maximum */
    const char *references; /* "users" for todos.user_id, else NULL */
};

struct dbtable {
    const char *name;
    const struct dbcol *cols;
    size_t ncols;
};

/* users, todos (copy order). */
const struct dbtable *dbrow_tables(size_t *n);
/* The table called `name`, or NULL. */
const struct dbtable *dbrow_table(const char *name);
/* Index of column `name` in t, or -1. */
int dbrow_col_index(const struct dbtable *t, const char *name);

struct dbval {
    bool null;
    int64_t i;
    char uuid[DBROW_UUID_LEN + 1];
    const char *s;
    size_t len;
};

struct dbrow {
    const struct dbtable *t;
    struct dbval v[DBROW_MAX_COLS];
};

/* The primary key's canonical text (v[0].uuid). */
static inline const char *dbrow_pk(const struct dbrow *r)
{
    return r->v[0].uuid;
}

/* Append the canonical text of v (a column of `type`; "NULL" for null) to out. */
void dbrow_value_text(const struct dbval *v, enum dbcol_type type, struct buf *out);

/* True when column c of a and b hold the same canonical value. */
bool dbrow_value_equal(const struct dbval *a, const struct dbval *b, enum dbcol_type type);

/* Feed row r's digest encoding to an initialised MD5 context. */
void dbrow_digest_update(EVP_MD_CTX *md, const struct dbrow *r);

/* A SQL expression (static text) evaluating, for one row of t in
 * PostgreSQL, to the row's digest encoding as bytea; used as
 * md5(coalesce(string_agg(<expr>, ''::bytea ORDER BY id), '')). Timestamps
 * are truncated to milliseconds in UTC whatever the session's TimeZone;
 * the server encoding must be UTF8 (the text bytes are sent as stored). */
const char *dbrow_pg_digest_sql(const struct dbtable *t);

#endif
