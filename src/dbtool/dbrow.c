#include "dbtool/dbrow.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "model/timefmt.h"
#include "util/hex.h"

/* 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch, in Unix ms. */
#define DBROW_PG_EPOCH_MS INT64_C(946684800000)

/* Column order = migrations/<dialect>/0001_init.up.sql. */
static const struct dbcol users_cols[] = {
    {"id", DBCOL_UUID, false, 0, 0, NULL},
    {"email", DBCOL_TEXT, false, 0, 255, NULL},
    {"password_hash", DBCOL_TEXT, false, 0, 0, NULL},
    {"name", DBCOL_TEXT, true, 0, 255, NULL},
    {"is_active", DBCOL_BOOL, false, 0, 0, NULL},
    {"created_at", DBCOL_TS, false, 0, 0, NULL},
    {"updated_at", DBCOL_TS, false, 0, 0, NULL},
};

static const struct dbcol todos_cols[] = {
    {"id", DBCOL_UUID, false, 0, 0, NULL},
    {"user_id", DBCOL_UUID, false, 0, 0, "users"},
    {"title", DBCOL_TEXT, false, 1, 255, NULL},
    {"description", DBCOL_TEXT, true, 0, 0, NULL},
    {"completed", DBCOL_BOOL, false, 0, 0, NULL},
    {"completed_at", DBCOL_TS, true, 0, 0, NULL},
    {"created_at", DBCOL_TS, false, 0, 0, NULL},
    {"updated_at", DBCOL_TS, false, 0, 0, NULL},
    {"version", DBCOL_INT, false, 1, INT32_MAX, NULL},
};

static const struct dbtable tables[] = {
    {"users", users_cols, sizeof(users_cols) / sizeof(users_cols[0])},
    {"todos", todos_cols, sizeof(todos_cols) / sizeof(todos_cols[0])},
};

/* The PostgreSQL digest expressions, one per table, in column order (see
 * dbrow.h). Binary (bytea) pieces: PostgreSQL's own send functions give
 * the same big-endian bytes the client writes, and cost a fraction of
 * formatting text (to_char on three timestamps per row tripled the time
 * of a digest). */
#define PG_UUID(c) "uuid_send(" c ")"
#define PG_TEXT(c) "int4send(octet_length(" c ")) || textsend(" c ")"
#define PG_BOOL(c) "boolsend(" c ")"
#define PG_TS(c) "timestamp_send(date_trunc('milliseconds', " c " AT TIME ZONE 'UTC'))"
#define PG_INT(c) "int8send(" c "::int8)"
#define PG_NULLABLE(c, e)                                                                   \
    "CASE WHEN " c " IS NULL THEN '\\x00'::bytea ELSE '\\x01'::bytea || " e " END"

static const char users_digest_sql[] =
    PG_UUID("id") " || " PG_TEXT("email") " || " PG_TEXT("password_hash") " || "
    "(" PG_NULLABLE("name", PG_TEXT("name")) ") || " PG_BOOL("is_active") " || "
    PG_TS("created_at") " || " PG_TS("updated_at");

static const char todos_digest_sql[] =
    PG_UUID("id") " || " PG_UUID("user_id") " || " PG_TEXT("title") " || "
    "(" PG_NULLABLE("description", PG_TEXT("description")) ") || " PG_BOOL("completed") " || "
    "(" PG_NULLABLE("completed_at", PG_TS("completed_at")) ") || "
    PG_TS("created_at") " || " PG_TS("updated_at") " || " PG_INT("version");

const struct dbtable *dbrow_tables(size_t *n)
{
    *n = sizeof(tables) / sizeof(tables[0]);
    return tables;
}

const struct dbtable *dbrow_table(const char *name)
{
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
        if (strcmp(tables[i].name, name) == 0)
            return &tables[i];
    return NULL;
}

int dbrow_col_index(const struct dbtable *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* The canonical text of a non-TEXT, non-null value into out (≥ 40 bytes);
 * returns its length. */
static size_t scalar_text(const struct dbval *v, enum dbcol_type type, char *out)
{
    switch (type) {
    case DBCOL_UUID:
        memcpy(out, v->uuid, DBROW_UUID_LEN + 1);
        return DBROW_UUID_LEN;
    case DBCOL_BOOL:
        out[0] = v->i ? 't' : 'f';
        out[1] = '\0';
        return 1;
    case DBCOL_TS:
        timefmt_format(v->i, out);
        return TIMEFMT_LEN;
    case DBCOL_INT:
        return (size_t)snprintf(out, 40, "%" PRId64, v->i);
    case DBCOL_TEXT:
        break;
    }
    assert(!"scalar_text: unknown column type");
    return 0;
}

void dbrow_value_text(const struct dbval *v, enum dbcol_type type, struct buf *out)
{
    char tmp[48];

    if (v->null)
        buf_append_str(out, "NULL");
    else if (type == DBCOL_TEXT)
        buf_append(out, v->s, v->len);
    else
        buf_append(out, tmp, scalar_text(v, type, tmp));
}

bool dbrow_value_equal(const struct dbval *a, const struct dbval *b, enum dbcol_type type)
{
    if (a->null || b->null)
        return a->null == b->null;
    switch (type) {
    case DBCOL_UUID:
        return memcmp(a->uuid, b->uuid, DBROW_UUID_LEN) == 0;
    case DBCOL_TEXT:
        return a->len == b->len && (a->len == 0 || memcmp(a->s, b->s, a->len) == 0);
    case DBCOL_BOOL:
        return (a->i != 0) == (b->i != 0);
    case DBCOL_TS:
    case DBCOL_INT:
        return a->i == b->i;
    }
    assert(!"dbrow_value_equal: unknown column type");
    return false;
}

/* Rows are encoded into a stack buffer and fed to MD5 in few calls; a text
 * longer than what is left goes to MD5 directly. */
struct enc {
    EVP_MD_CTX *md;
    size_t len;
    unsigned char b[4096];
};

static void enc_flush(struct enc *e)
{
    if (e->len > 0)
        EVP_DigestUpdate(e->md, e->b, e->len);
    e->len = 0;
}

static void enc_put(struct enc *e, const void *p, size_t n)
{
    if (n > sizeof(e->b) - e->len) {
        enc_flush(e);
        if (n > sizeof(e->b) / 2) {
            EVP_DigestUpdate(e->md, p, n);
            return;
        }
    }
    memcpy(e->b + e->len, p, n);
    e->len += n;
}

static void enc_be(struct enc *e, uint64_t v, int bytes)
{
    unsigned char b[8];

    for (int i = bytes - 1; i >= 0; i--) {
        b[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    enc_put(e, b, (size_t)bytes);
}

static void enc_uuid(struct enc *e, const char *u)
{
    unsigned char b[16];

    for (int i = 0, k = 0; i < 16; i++, k += 2) {
        if (u[k] == '-')
            k++;
        b[i] = (unsigned char)(hex_digit(u[k]) << 4 | hex_digit(u[k + 1]));
    }
    enc_put(e, b, sizeof(b));
}

void dbrow_digest_update(EVP_MD_CTX *md, const struct dbrow *r)
{
    struct enc e = {.md = md, .len = 0};

    for (size_t c = 0; c < r->t->ncols; c++) {
        const struct dbval *v = &r->v[c];
        const struct dbcol *col = &r->t->cols[c];

        if (col->nullable)
            enc_put(&e, v->null ? "\x00" : "\x01", 1);
        if (v->null)
            continue;
        switch (col->type) {
        case DBCOL_UUID:
            enc_uuid(&e, v->uuid);
            break;
        case DBCOL_TEXT:
            enc_be(&e, (uint64_t)v->len, 4);
            enc_put(&e, v->s, v->len);
            break;
        case DBCOL_BOOL:
            enc_put(&e, v->i ? "\x01" : "\x00", 1);
            break;
        case DBCOL_TS:
            enc_be(&e, (uint64_t)((v->i - DBROW_PG_EPOCH_MS) * 1000), 8);
            break;
        case DBCOL_INT:
            enc_be(&e, (uint64_t)v->i, 8);
            break;
        }
    }
    enc_flush(&e);
}

const char *dbrow_pg_digest_sql(const struct dbtable *t)
{
    if (strcmp(t->name, "users") == 0)
        return users_digest_sql;
    if (strcmp(t->name, "todos") == 0)
        return todos_digest_sql;
    assert(!"dbrow_pg_digest_sql: not a dbrow table");
    return NULL;
}
