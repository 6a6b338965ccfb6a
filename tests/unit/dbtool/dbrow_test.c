#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "dbtool/dbconv.h"
#include "dbtool/dbrow.h"
#include "migrate/migrate.h"
#include "model/timefmt.h"
#include "util/dburl.h"
#include "dbt_support.h"

/* ---- tables ---------------------------------------------------------------- */

Test(dbrow, tables_in_copy_order)
{
    size_t n = 0;
    const struct dbtable *t = dbrow_tables(&n);

    cr_assert_eq(n, 2);
    cr_expect_str_eq(t[0].name, "users");
    cr_expect_str_eq(t[1].name, "todos");
    cr_expect_eq(dbrow_table("users"), &t[0]);
    cr_expect_eq(dbrow_table("todos"), &t[1]);
    cr_expect_null(dbrow_table("tasks"));
    for (size_t i = 0; i < n; i++) {
        cr_expect_str_eq(t[i].cols[0].name, "id");
        cr_expect_eq(t[i].cols[0].type, DBCOL_UUID);
        cr_expect_leq(t[i].ncols, DBROW_MAX_COLS);
    }
    cr_expect_eq(dbrow_col_index(&t[1], "version"), 8);
    cr_expect_eq(dbrow_col_index(&t[1], "nope"), -1);
    cr_expect_str_eq(t[1].cols[dbrow_col_index(&t[1], "user_id")].references, "users");
}

/* Column names, order and nullability match a schema built by the embedded
 * migrations (SQLite). */
Test(dbrow, matches_the_sqlite_migrations)
{
    sqlite3 *db = NULL;
    size_t nm = 0, nt = 0;
    const struct migration *m = migrate_embedded("sqlite", &nm);
    const struct dbtable *t = dbrow_tables(&nt);

    cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    for (size_t i = 0; i < nm; i++)
        cr_assert_eq(sqlite3_exec(db, m[i].up_sql, NULL, NULL, NULL), SQLITE_OK, "%s",
                     sqlite3_errmsg(db));
    for (size_t i = 0; i < nt; i++) {
        char sql[100];
        sqlite3_stmt *st;
        size_t c = 0;
        snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", t[i].name);
        cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
            cr_assert_lt(c, t[i].ncols, "%s has more columns", t[i].name);
            cr_expect_str_eq((const char *)sqlite3_column_text(st, 1), t[i].cols[c].name);
            cr_expect_eq(sqlite3_column_int(st, 3) == 0, t[i].cols[c].nullable, "%s.%s",
                         t[i].name, t[i].cols[c].name);
            c++;
        }
        cr_expect_eq(c, t[i].ncols, "%s", t[i].name);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

/* ---- values ---------------------------------------------------------------- */

static char *value_text(const struct dbval *v, enum dbcol_type type)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    dbrow_value_text(v, type, &b);
    return buf_take(&b, NULL);
}

Test(dbrow, value_text)
{
    struct dbval v = {0};
    char *s;

    memcpy(v.uuid, "0190f1a2-b3c4-7d5e-8f60-718293a4b5c6", 37);
    s = value_text(&v, DBCOL_UUID);
    cr_expect_str_eq(s, "0190f1a2-b3c4-7d5e-8f60-718293a4b5c6");
    free(s);
    v.s = "héllo";
    v.len = strlen(v.s);
    s = value_text(&v, DBCOL_TEXT);
    cr_expect_str_eq(s, "héllo");
    free(s);
    v.i = 1;
    s = value_text(&v, DBCOL_BOOL);
    cr_expect_str_eq(s, "t");
    free(s);
    v.i = 0;
    s = value_text(&v, DBCOL_BOOL);
    cr_expect_str_eq(s, "f");
    free(s);
    v.i = 1763709226123;
    s = value_text(&v, DBCOL_TS);
    cr_expect_str_eq(s, "2025-11-21T07:13:46.123Z");
    free(s);
    v.i = -42;
    s = value_text(&v, DBCOL_INT);
    cr_expect_str_eq(s, "-42");
    free(s);
    v.null = true;
    s = value_text(&v, DBCOL_TEXT);
    cr_expect_str_eq(s, "NULL");
    free(s);
}

Test(dbrow, value_equality)
{
    struct dbval a = {0}, b = {0};

    a.s = "abc";
    b.s = "abcd";
    a.len = b.len = 3;
    cr_expect(dbrow_value_equal(&a, &b, DBCOL_TEXT));
    b.len = 4;
    cr_expect_not(dbrow_value_equal(&a, &b, DBCOL_TEXT));
    a.len = b.len = 0;
    a.s = NULL;
    cr_expect(dbrow_value_equal(&a, &b, DBCOL_TEXT));
    b.null = true;
    cr_expect_not(dbrow_value_equal(&a, &b, DBCOL_TEXT), "NULL differs from empty text");
    a.null = true;
    cr_expect(dbrow_value_equal(&a, &b, DBCOL_TEXT));
    a.null = b.null = false;
    a.i = 5;
    b.i = 6;
    cr_expect_not(dbrow_value_equal(&a, &b, DBCOL_TS));
    cr_expect_not(dbrow_value_equal(&a, &b, DBCOL_INT));
    b.i = 5;
    cr_expect(dbrow_value_equal(&a, &b, DBCOL_INT));
    memcpy(a.uuid, "0190f1a2-b3c4-7d5e-8f60-718293a4b5c6", 37);
    memcpy(b.uuid, "0190f1a2-b3c4-7d5e-8f60-718293a4b5c7", 37);
    cr_expect_not(dbrow_value_equal(&a, &b, DBCOL_UUID));
    b.uuid[35] = '6';
    cr_expect(dbrow_value_equal(&a, &b, DBCOL_UUID));
}

/* ---- digest ---------------------------------------------------------------- */

static void md5_of(const void *p, size_t n, unsigned char out[16])
{
    unsigned int len = 0;
    EVP_Digest(p, n, out, &len, EVP_md5(), NULL);
}

static void digest_rows(const struct dbrow *rows, size_t n, unsigned char out[16])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;

    EVP_DigestInit_ex(md, EVP_md5(), NULL);
    for (size_t i = 0; i < n; i++)
        dbrow_digest_update(md, &rows[i]);
    EVP_DigestFinal_ex(md, out, &len);
    EVP_MD_CTX_free(md);
}

/* Big-endian bytes of v into b. */
static void put_be(struct buf *b, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--)
        buf_append_char(b, (char)(v >> (8 * i) & 0xff));
}

static void put_uuid(struct buf *b, const char *u)
{
    for (const char *p = u; *p != '\0'; p += 2) {
        if (*p == '-')
            p++;
        unsigned int x;
        cr_assert_eq(sscanf(p, "%2x", &x), 1);
        buf_append_char(b, (char)x);
    }
}

Test(dbrow, digest_encoding)
{
    const struct dbtable *t = dbrow_table("todos");
    struct dbrow r = {.t = t};
    unsigned char got[16], want[16];
    struct buf b;

    memcpy(r.v[0].uuid, "0190f1a2-b3c4-7d5e-8f60-718293a4b5c6", 37);
    memcpy(r.v[1].uuid, "0190f1a2-0000-7d5e-8f60-718293a4b5c6", 37);
    r.v[2].s = "Buy 🥛";
    r.v[2].len = strlen(r.v[2].s);
    r.v[3].null = true;
    r.v[4].i = 1;
    r.v[5].null = true;
    r.v[6].i = 0;
    r.v[7].i = -1;
    r.v[8].i = 12;
    /* The bytes, written out independently of dbrow.c. */
    buf_init(&b, 1 << 20);
    put_uuid(&b, r.v[0].uuid);
    put_uuid(&b, r.v[1].uuid);
    put_be(&b, 8, 4);
    buf_append_str(&b, "Buy 🥛");
    buf_append_char(&b, 0); /* description: NULL */
    buf_append_char(&b, 1); /* completed */
    buf_append_char(&b, 0); /* completed_at: NULL */
    put_be(&b, (uint64_t)(INT64_C(-946684800000) * 1000), 8); /* 1970 in PostgreSQL's epoch */
    put_be(&b, (uint64_t)(INT64_C(-946684800001) * 1000), 8);
    put_be(&b, 12, 8);
    cr_expect_eq(b.len, 16 + 16 + 4 + 8 + 1 + 1 + 1 + 8 + 8 + 8);
    size_t one = b.len;
    digest_rows(&r, 1, got);
    md5_of(b.data, b.len, want);
    cr_expect_arr_eq(got, want, 16);

    /* Two rows: the streams concatenate; a long text passes the buffer. */
    struct dbrow rows[2] = {r, r};
    size_t big_len = 100000;
    char *big = malloc(big_len);
    memset(big, 'q', big_len);
    rows[1].v[3].null = false;
    rows[1].v[3].s = big;
    rows[1].v[3].len = big_len;
    char *first = malloc(one); /* b.data may move while appending */
    memcpy(first, b.data, one);
    buf_append(&b, first, 16 + 16 + 4 + 8);
    buf_append_char(&b, 1);
    put_be(&b, big_len, 4);
    buf_append(&b, big, big_len);
    buf_append(&b, first + 16 + 16 + 4 + 8 + 1, one - (16 + 16 + 4 + 8 + 1));
    free(first);
    digest_rows(rows, 2, got);
    md5_of(b.data, b.len, want);
    cr_expect_arr_eq(got, want, 16);
    buf_free(&b);
    free(big);
}

Test(dbrow, digest_tells_null_from_empty)
{
    const struct dbtable *t = dbrow_table("users");
    struct dbrow a = {.t = t}, b;
    unsigned char da[16], db[16];

    memcpy(a.v[0].uuid, "0190f1a2-b3c4-7d5e-8f60-718293a4b5c6", 37);
    a.v[1].s = a.v[2].s = "x";
    a.v[1].len = a.v[2].len = 1;
    a.v[3].null = true;
    b = a;
    b.v[3].null = false;
    b.v[3].s = "";
    b.v[3].len = 0;
    digest_rows(&a, 1, da);
    digest_rows(&b, 1, db);
    cr_expect_arr_neq(da, db, 16);
}

/* ---- PostgreSQL: dbrow_pg_digest_sql = dbrow_digest_update --------------- */

static PGconn *pg_connect_or_skip(void)
{
    const char *url = pg_url_or_skip();
    struct dburl u = {0};
    char err[256];

    cr_assert_eq(dburl_parse(url, &u, err, sizeof(err)), 0, "%s", err);
    PGconn *pg = PQconnectdb(u.conninfo);
    dburl_free(&u);
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
    return pg;
}

/* Read table t back as text, convert every value as dbsrc does, and
 * digest client-side. */
static void client_digest(PGconn *pg, const struct dbtable *t, unsigned char out[16],
                          int *nrows)
{
    char sql[200];
    struct dbrow row = {.t = t};
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;

    snprintf(sql, sizeof(sql), "SELECT * FROM %s ORDER BY id", t->name);
    PGresult *r = PQexec(pg, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
    cr_assert_eq((size_t)PQnfields(r), t->ncols);
    EVP_DigestInit_ex(md, EVP_md5(), NULL);
    for (int i = 0; i < PQntuples(r); i++) {
        for (size_t c = 0; c < t->ncols; c++) {
            struct dbraw raw = {.kind = DBRAW_NULL};
            char why[128];
            if (!PQgetisnull(r, i, (int)c)) {
                raw.kind = DBRAW_TEXT;
                raw.p = (const unsigned char *)PQgetvalue(r, i, (int)c);
                raw.len = (size_t)PQgetlength(r, i, (int)c);
            }
            cr_assert_eq(dbconv_value(&raw, &t->cols[c], NULL, &row.v[c], why, sizeof(why)), 0,
                         "%s.%s %s: %s", t->name, t->cols[c].name, PQgetvalue(r, i, (int)c),
                         why);
        }
        dbrow_digest_update(md, &row);
    }
    *nrows = PQntuples(r);
    EVP_DigestFinal_ex(md, out, &len);
    EVP_MD_CTX_free(md);
    PQclear(r);
}

static void server_digest(PGconn *pg, const struct dbtable *t, unsigned char out[16])
{
    struct buf q;
    buf_init(&q, 1 << 16);
    buf_printf(&q, "SELECT md5(coalesce(string_agg(%s, ''::bytea ORDER BY id), ''::bytea)) "
                   "FROM %s",
               dbrow_pg_digest_sql(t), t->name);
    PGresult *r = PQexec(pg, q.data);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
    const char *hex = PQgetvalue(r, 0, 0);
    cr_assert_eq(strlen(hex), 32);
    for (int i = 0; i < 16; i++) {
        unsigned int byte;
        cr_assert_eq(sscanf(hex + 2 * i, "%2x", &byte), 1);
        out[i] = (unsigned char)byte;
    }
    PQclear(r);
    buf_free(&q);
}

/* Rows with every kind of value: NULLs, empty and multi-byte text,
 * microseconds (truncated), years 0001 and 9999, timestamps before 1970,
 * large versions. */
static void pg_fill(PGconn *pg)
{
    pg_ok(pg, "INSERT INTO users VALUES "
              "('0190f1a2-b3c4-7d5e-8f60-718293a4b5c6', 'a@x.org', '$argon2id$v=19$...', NULL, "
              " true, '2024-03-01T12:34:56.123456Z', '2024-03-01 12:34:56.999999+00'),"
              "('ffffffff-ffff-ffff-ffff-ffffffffffff', 'b@x.org', 'h', 'Zoë 🥛', false, "
              " '0001-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z'),"
              "('00000000-0000-0000-0000-000000000000', 'c@x.org', '', '', true, "
              " '1969-12-31T23:59:59.9995Z', '1900-02-28 23:00:00-05:30')");
    pg_ok(pg, "INSERT INTO todos SELECT "
              " md5(i::text)::uuid, "
              " (ARRAY['0190f1a2-b3c4-7d5e-8f60-718293a4b5c6', "
              "        'ffffffff-ffff-ffff-ffff-ffffffffffff'])[1 + i % 2]::uuid, "
              " 'title ' || i || repeat('é', i % 7), "
              " CASE WHEN i % 3 = 0 THEN NULL WHEN i % 3 = 1 THEN '' "
              "      ELSE repeat('desc ünï ', i) END, "
              " i % 2 = 0, "
              " CASE WHEN i % 4 = 0 THEN NULL ELSE "
              "   timestamptz '2024-01-01 00:00:00Z' + i * interval '1 day 1.234567 s' END, "
              " timestamptz '1950-06-01 00:00:00Z' - i * interval '17 days 3.0001 s', "
              " timestamptz '2038-01-19 03:14:07Z' + i * interval '1 hour', "
              " 1 + i * 1000003 "
              "FROM generate_series(1, 500) AS i");
}

Test(dbrow, pg_digest_sql_matches_client_digest)
{
    PGconn *pg = pg_connect_or_skip();
    size_t nm = 0, nt = 0;
    const struct migration *m = migrate_embedded("postgres", &nm);
    const struct dbtable *t = dbrow_tables(&nt);
    char sql[200];

    snprintf(sql, sizeof(sql), "CREATE SCHEMA dbrow_test_%d; SET search_path = dbrow_test_%d",
             (int)getpid(), (int)getpid());
    pg_ok(pg, sql);
    for (size_t i = 0; i < nm; i++)
        pg_ok(pg, m[i].up_sql);
    /* The tables match the PostgreSQL migrations too. */
    for (size_t i = 0; i < nt; i++) {
        const char *params[1] = {t[i].name};
        PGresult *r = PQexecParams(pg,
                                   "SELECT column_name, is_nullable "
                                   "FROM information_schema.columns "
                                   "WHERE table_schema = current_schema() AND table_name = $1 "
                                   "ORDER BY ordinal_position",
                                   1, NULL, params, NULL, NULL, 0);
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
        cr_assert_eq((size_t)PQntuples(r), t[i].ncols, "%s", t[i].name);
        for (size_t c = 0; c < t[i].ncols; c++) {
            cr_expect_str_eq(PQgetvalue(r, (int)c, 0), t[i].cols[c].name);
            cr_expect_eq(strcmp(PQgetvalue(r, (int)c, 1), "YES") == 0, t[i].cols[c].nullable,
                         "%s.%s", t[i].name, t[i].cols[c].name);
        }
        PQclear(r);
    }
    pg_fill(pg);
    for (size_t i = 0; i < nt; i++) {
        unsigned char c[16], s[16];
        int n = 0;
        /* Read as dbsrc reads (UTC); digest in an odd zone: the server's
         * expression must still format in UTC. */
        pg_ok(pg, "SET TimeZone = 'UTC'");
        client_digest(pg, &t[i], c, &n);
        pg_ok(pg, "SET TimeZone = 'Pacific/Chatham'");
        server_digest(pg, &t[i], s);
        cr_expect_gt(n, 2, "%s is empty", t[i].name);
        cr_expect_arr_eq(c, s, 16, "%s: PostgreSQL's digest differs from the client's",
                         t[i].name);
    }
    /* A change in one value changes the server's digest. */
    unsigned char before[16], after[16];
    server_digest(pg, &t[1], before);
    pg_ok(pg, "UPDATE todos SET updated_at = updated_at + interval '1 ms' "
              "WHERE id = md5('7')::uuid");
    server_digest(pg, &t[1], after);
    cr_expect_arr_neq(before, after, 16);
    snprintf(sql, sizeof(sql), "DROP SCHEMA dbrow_test_%d CASCADE", (int)getpid());
    pg_ok(pg, sql);
    PQfinish(pg);
}
