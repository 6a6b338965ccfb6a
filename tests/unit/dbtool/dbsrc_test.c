/*
 * dbtool/dbsrc: reading SQLite (current and legacy layouts) and, when
 * DATABASE_URL names PostgreSQL (scripts/with-pg --no-check --
 * build-X/tests/unit_dbtool), PostgreSQL — a database per test, made on
 * that cluster.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "dbtool/dbsrc.h"
#include "migrate/mdb.h"
#include "model/timefmt.h"
#include "util/xalloc.h"
#include "dbt_support.h"

/* ---- fixtures --------------------------------------------------------------- */

/* What a test made, removed by its suite's fini (which runs after a failed
 * assertion too). */
static char made_dbs[8][64];
static int nmade_dbs;

static void cleanup(void)
{
    tmp_files_remove();
    const char *base = getenv("DATABASE_URL");
    if (nmade_dbs > 0 && base != NULL) {
        PGconn *pg = PQconnectdb(base);
        for (int i = 0; i < nmade_dbs && PQstatus(pg) == CONNECTION_OK; i++) {
            char sql[128];
            snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", made_dbs[i]);
            PQclear(PQexec(pg, sql));
        }
        PQfinish(pg);
    }
    nmade_dbs = 0;
}

TestSuite(dbsrc_sqlite, .fini = cleanup);
TestSuite(dbsrc_legacy, .fini = cleanup);
TestSuite(dbsrc_pg, .fini = cleanup);
TestSuite(dbsrc_bench, .fini = cleanup);

/* A current-layout SQLite file (the real migrations); its connection. */
static sqlite3 *make_current(char *url, size_t n)
{
    char path[512], err[512];
    sqlite3 *db;

    tmp_db("dbsrc_test", url, n, path, sizeof(path));
    cr_assert_geq(mdb_up_embedded(url, 0, err, sizeof(err)), 1, "%s", err);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    return db;
}

static void sq_user(sqlite3 *db, const char *id, const char *email)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO users VALUES ('%s', '%s', 'hash', NULL, 1, "
             "'2024-03-01T12:00:00.000Z', '2024-03-02T12:00:00.000Z')",
             id, email);
    sq_exec(db, sql);
}

static void sq_todo(sqlite3 *db, const char *id, const char *user, const char *title,
                    const char *created)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO todos VALUES ('%s', '%s', '%s', NULL, 0, NULL, '%s', '%s', 1)", id,
             user, title, created, created);
    sq_exec(db, sql);
}

#define U1 "00000000-0000-7000-8000-000000000001"
#define U2 "00000000-0000-7000-8000-000000000002"
#define T(n) "10000000-0000-7000-8000-00000000000" #n

/* Rows collected from a scan as "col|col|..." text. */
struct rows {
    char *text[64];
    size_t n;
    int stop_after; /* return 9 from row_fn at this row (0: never) */
    struct {
        char *pk, *column, *value, *reason;
    } rej[16];
    size_t nrej;
    int reject_answer;
};

static int collect(void *ctx, const struct dbrow *r)
{
    struct rows *rs = ctx;
    struct buf b;

    cr_assert_lt(rs->n, 64);
    buf_init(&b, 1 << 20);
    for (size_t c = 0; c < r->t->ncols; c++) {
        if (c > 0)
            buf_append_char(&b, '|');
        dbrow_value_text(&r->v[c], r->t->cols[c].type, &b);
    }
    rs->text[rs->n++] = buf_take(&b, NULL);
    return rs->stop_after > 0 && (int)rs->n == rs->stop_after ? 9 : 0;
}

static int collect_keys(void *ctx, const struct dbrow *r)
{
    struct rows *rs = ctx;
    if (rs->n == 64)
        return 9; /* full */
    rs->text[rs->n++] = xstrdup(r->v[0].uuid);
    return 0;
}

static int on_reject(void *ctx, const struct dbreject *rej)
{
    struct rows *rs = ctx;
    cr_assert_lt(rs->nrej, 16);
    rs->rej[rs->nrej].pk = xstrdup(rej->pk);
    rs->rej[rs->nrej].column = xstrdup(rej->column);
    rs->rej[rs->nrej].value = xstrdup(rej->value);
    rs->rej[rs->nrej].reason = xstrdup(rej->reason);
    rs->nrej++;
    return rs->reject_answer;
}

static void rows_free(struct rows *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        free(rs->text[i]);
    for (size_t i = 0; i < rs->nrej; i++) {
        free(rs->rej[i].pk);
        free(rs->rej[i].column);
        free(rs->rej[i].value);
        free(rs->rej[i].reason);
    }
    memset(rs, 0, sizeof(*rs));
}

static struct dbsrc *open_ok(const char *url, enum dbsrc_layout layout)
{
    struct dbsrc_opts o = {.layout = layout};
    struct dbsrc *s = NULL;
    char err[512];

    cr_assert_eq(dbsrc_open(url, &o, &s, err, sizeof(err)), 0, "%s", err);
    return s;
}

static void open_fails(const char *url, enum dbsrc_layout layout, const char *want)
{
    struct dbsrc_opts o = {.layout = layout};
    struct dbsrc *s = (struct dbsrc *)1;
    char err[512] = "";

    cr_expect_eq(dbsrc_open(url, &o, &s, err, sizeof(err)), -1, "%s opened", url);
    cr_expect_null(s);
    cr_expect(strstr(err, want) != NULL, "\"%s\" lacks \"%s\"", err, want);
}

static int scan(struct dbsrc *s, const char *table, const char *lo, const char *hi,
                unsigned flags, struct rows *rs, bool rejects, char *err, size_t errlen)
{
    return dbsrc_scan(s, dbrow_table(table), lo, hi, flags,
                      flags & DBSRC_SCAN_KEYS_ONLY ? collect_keys : collect,
                      rejects ? on_reject : NULL, rs, err, errlen);
}

static void scan_ok(struct dbsrc *s, const char *table, const char *lo, const char *hi,
                    unsigned flags, struct rows *rs)
{
    char err[512];
    cr_assert_eq(scan(s, table, lo, hi, flags, rs, false, err, sizeof(err)), 0, "%s", err);
}

/* ---- SQLite, current layout ------------------------------------------------ */

Test(dbsrc_sqlite, current_layout_in_key_order)
{
    char url[600];
    sqlite3 *db = make_current(url, sizeof(url));
    struct rows rs = {0};

    sq_user(db, U2, "b@x.org");
    sq_user(db, U1, "a@x.org");
    sq_todo(db, T(3), U1, "three", "2024-01-03T00:00:00.000Z");
    sq_todo(db, T(1), U2, "one", "2024-01-01T00:00:00.000Z");
    sq_todo(db, T(2), U1, "two", "2024-01-02T00:00:00.000Z");
    sqlite3_close(db);

    struct dbsrc *s = open_ok(url, DBSRC_LAYOUT_AUTO);
    cr_expect_eq(dbsrc_layout(s), DBSRC_LAYOUT_CURRENT);
    cr_expect_eq(dbsrc_version(s), migrate_latest_version("sqlite"));
    cr_expect_null(dbsrc_alembic_revision(s));
    cr_expect_str_eq(dbsrc_dialect(s), "sqlite");
    cr_expect(strstr(dbsrc_label(s), "dbsrc_test_") != NULL);
    int64_t n = 0;
    char err[512];
    cr_assert_eq(dbsrc_count(s, dbrow_table("todos"), &n, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(n, 3);
    cr_assert_eq(dbsrc_count(s, dbrow_table("users"), &n, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(n, 2);

    scan_ok(s, "users", NULL, NULL, 0, &rs);
    cr_assert_eq(rs.n, 2);
    cr_expect_str_eq(rs.text[0], U1 "|a@x.org|hash|NULL|t|2024-03-01T12:00:00.000Z|"
                                    "2024-03-02T12:00:00.000Z");
    cr_expect(strncmp(rs.text[1], U2, 36) == 0);
    rows_free(&rs);

    scan_ok(s, "todos", NULL, NULL, 0, &rs);
    cr_assert_eq(rs.n, 3);
    cr_expect_str_eq(rs.text[0], T(1) "|" U2 "|one|NULL|f|NULL|2024-01-01T00:00:00.000Z|"
                                      "2024-01-01T00:00:00.000Z|1");
    cr_expect(strncmp(rs.text[1], T(2), 36) == 0);
    cr_expect(strncmp(rs.text[2], T(3), 36) == 0);
    rows_free(&rs);

    /* Any order: the same rows. */
    scan_ok(s, "todos", NULL, NULL, DBSRC_SCAN_ANY_ORDER, &rs);
    cr_expect_eq(rs.n, 3);
    rows_free(&rs);
    dbsrc_close(s);
}

Test(dbsrc_sqlite, ranges_and_keys_only)
{
    char url[600];
    sqlite3 *db = make_current(url, sizeof(url));
    struct rows rs = {0};

    sq_user(db, U1, "a@x.org");
    for (int i = 1; i <= 5; i++) {
        char id[40];
        snprintf(id, sizeof(id), "10000000-0000-7000-8000-00000000000%d", i);
        sq_todo(db, id, U1, "t", "2024-01-01T00:00:00.000Z");
    }
    sqlite3_close(db);
    struct dbsrc *s = open_ok(url, DBSRC_LAYOUT_CURRENT);

    scan_ok(s, "todos", T(1), T(3), 0, &rs); /* (1, 3] */
    cr_assert_eq(rs.n, 2);
    cr_expect(strncmp(rs.text[0], T(2), 36) == 0);
    cr_expect(strncmp(rs.text[1], T(3), 36) == 0);
    rows_free(&rs);
    scan_ok(s, "todos", NULL, T(2), DBSRC_SCAN_KEYS_ONLY, &rs);
    cr_assert_eq(rs.n, 2);
    cr_expect_str_eq(rs.text[0], T(1));
    cr_expect_str_eq(rs.text[1], T(2));
    rows_free(&rs);
    scan_ok(s, "todos", T(4), NULL, DBSRC_SCAN_KEYS_ONLY, &rs);
    cr_assert_eq(rs.n, 1);
    cr_expect_str_eq(rs.text[0], T(5));
    rows_free(&rs);
    /* Bounds in any UUID spelling. */
    scan_ok(s, "todos", "1000000000007000800000000000000" "3", NULL, DBSRC_SCAN_KEYS_ONLY, &rs);
    cr_expect_eq(rs.n, 2);
    rows_free(&rs);
    char err[256] = "";
    cr_expect_eq(scan(s, "todos", "nope", NULL, 0, &rs, false, err, sizeof(err)), -1);
    cr_expect(strstr(err, "not a UUID") != NULL, "%s", err);

    /* The row callback stops the scan with its own value. */
    rs.stop_after = 2;
    cr_expect_eq(scan(s, "todos", NULL, NULL, 0, &rs, false, err, sizeof(err)), 9);
    cr_expect_eq(rs.n, 2);
    rows_free(&rs);

    /* Digest of a range = MD5 of the rows' encoding. */
    unsigned char md[16], want[16];
    int64_t rows = 0;
    cr_assert_eq(dbsrc_digest(s, dbrow_table("todos"), T(1), T(4), md, &rows, err, sizeof(err)),
                 0, "%s", err);
    cr_expect_eq(rows, 3);
    cr_assert_eq(dbsrc_digest(s, dbrow_table("todos"), T(4), T(4), want, &rows, err,
                              sizeof(err)), 0);
    cr_expect_eq(rows, 0);
    unsigned int len;
    unsigned char empty[16];
    EVP_Digest("", 0, empty, &len, EVP_md5(), NULL);
    cr_expect_arr_eq(want, empty, 16);
    cr_expect_arr_neq(md, empty, 16);
    dbsrc_close(s);
}

/* ---- bucket digests (both dialects) ------------------------------------------ */

#define B_FIRST "00000000-0000-0000-0000-000000000000"
#define B_LAST "f0000000-0000-0000-0000-000000000000"
#define MAX_BUCKETS 64

/* dbsrc_digest_buckets over `bounds`, each bucket checked against
 * dbsrc_digest of its range; the buckets' rows (and digests) returned. */
static void buckets_ok(struct dbsrc *s, const char *table, const char *const *bounds, size_t nb,
                       int64_t *rows, unsigned char (*md)[16])
{
    char err[512];

    cr_assert_lt(nb, MAX_BUCKETS);
    for (size_t i = 0; i <= nb; i++)
        rows[i] = -7; /* every entry must be written */
    cr_assert_eq(dbsrc_digest_buckets(s, dbrow_table(table), bounds, nb, md, rows, err,
                                      sizeof(err)), 0, "%s", err);
    for (size_t i = 0; i <= nb; i++) {
        unsigned char want[16];
        int64_t n = -1;
        cr_assert_eq(dbsrc_digest(s, dbrow_table(table), i > 0 ? bounds[i - 1] : NULL,
                                  i < nb ? bounds[i] : NULL, want, &n, err, sizeof(err)), 0,
                     "%s", err);
        cr_expect_eq(rows[i], n, "%s bucket %zu of %zu: %lld rows, its range %lld",
                     dbsrc_dialect(s), i, nb + 1, (long long)rows[i], (long long)n);
        cr_expect_arr_eq(md[i], want, 16, "%s bucket %zu of %zu: digest differs from its range's",
                         dbsrc_dialect(s), i, nb + 1);
    }
}

static void expect_rows(const int64_t *rows, const int64_t *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(rows[i], want[i], "%s: bucket %zu has %lld rows, want %lld", what, i,
                     (long long)rows[i], (long long)want[i]);
}

static void buckets_fail(struct dbsrc *s, const char *const *bounds, size_t nb, const char *want)
{
    unsigned char md[MAX_BUCKETS][16];
    int64_t rows[MAX_BUCKETS];
    char err[512] = "";

    cr_expect_eq(dbsrc_digest_buckets(s, dbrow_table("todos"), bounds, nb, md, rows, err,
                                      sizeof(err)), -1);
    cr_expect(strstr(err, want) != NULL, "\"%s\" lacks \"%s\"", err, want);
}

/* The todos T(1)..T(5) (ranges_and_keys_only's rows) cut every way: a key
 * equal to a bound closes that bound's bucket; buckets before the first
 * key, between keys and after the last stay empty. `md` gets the digests
 * of the cut {B_FIRST, T(3), T(5), B_LAST}, to compare across dialects. */
static void bucket_cases(struct dbsrc *s, unsigned char (*cut)[16])
{
    unsigned char md[MAX_BUCKETS][16], empty[16];
    int64_t rows[MAX_BUCKETS];
    unsigned int len;

    EVP_Digest("", 0, empty, &len, EVP_md5(), NULL);
    const char *on_keys[] = {T(2), T(4)};
    buckets_ok(s, "todos", on_keys, 2, rows, md);
    expect_rows(rows, (const int64_t[]){2, 2, 1}, 3, "bounds on keys");

    const char *edges[] = {B_FIRST, T(3), T(5), B_LAST};
    buckets_ok(s, "todos", edges, 4, rows, cut);
    expect_rows(rows, (const int64_t[]){0, 3, 2, 0, 0}, 5, "bounds around the keys");
    cr_expect_arr_eq(cut[0], empty, 16);
    cr_expect_arr_eq(cut[3], empty, 16);
    cr_expect_arr_eq(cut[4], empty, 16);

    buckets_ok(s, "todos", NULL, 0, rows, md); /* no bound: one bucket, every row */
    expect_rows(rows, (const int64_t[]){5}, 1, "no bounds");

    const char *every[] = {T(1), T(2), T(3), T(4), T(5)};
    buckets_ok(s, "todos", every, 5, rows, md);
    expect_rows(rows, (const int64_t[]){1, 1, 1, 1, 1, 0}, 6, "a bound per key");

    /* Any UUID spelling; the bounds are canonicalised. */
    const char *spelled[] = {"1000000000007000800000000000000" "3", B_LAST};
    unsigned char md2[MAX_BUCKETS][16];
    int64_t rows2[MAX_BUCKETS];
    buckets_ok(s, "todos", spelled, 2, rows2, md2);
    expect_rows(rows2, (const int64_t[]){3, 2, 0}, 3, "32-digit bound");

    /* Users: three buckets of a table with one row. */
    const char *around_user[] = {B_FIRST, B_LAST};
    buckets_ok(s, "users", around_user, 2, rows, md);
    expect_rows(rows, (const int64_t[]){0, 1, 0}, 3, "users");

    buckets_fail(s, (const char *[]){T(3), T(2)}, 2, "ascending");
    buckets_fail(s, (const char *[]){T(3), T(3)}, 2, "ascending");
    buckets_fail(s, (const char *[]){T(3), "nope"}, 2, "not a UUID");
    buckets_fail(s, (const char *[]){NULL}, 1, "not a UUID");
}

/* An empty table: every bucket empty, MD5 of nothing. */
static void bucket_empty_table(struct dbsrc *s)
{
    unsigned char md[MAX_BUCKETS][16], empty[16];
    int64_t rows[MAX_BUCKETS];
    unsigned int len;

    EVP_Digest("", 0, empty, &len, EVP_md5(), NULL);
    const char *bounds[] = {T(2), T(4)};
    buckets_ok(s, "todos", bounds, 2, rows, md);
    expect_rows(rows, (const int64_t[]){0, 0, 0}, 3, "empty table");
    for (size_t i = 0; i < 3; i++)
        cr_expect_arr_eq(md[i], empty, 16);
    buckets_ok(s, "todos", NULL, 0, rows, md);
    expect_rows(rows, (const int64_t[]){0}, 1, "empty table, no bounds");
    cr_expect_arr_eq(md[0], empty, 16);
}

/* The rows of ranges_and_keys_only, in a new SQLite file. */
static char *sq_five_todos(char *url, size_t n)
{
    sqlite3 *db = make_current(url, n);

    sq_user(db, U1, "a@x.org");
    for (int i = 1; i <= 5; i++) {
        char id[40];
        snprintf(id, sizeof(id), "10000000-0000-7000-8000-00000000000%d", i);
        sq_todo(db, id, U1, "t", "2024-01-01T00:00:00.000Z");
    }
    sqlite3_close(db);
    return url;
}

Test(dbsrc_sqlite, bucket_digests_are_the_ranges_digests)
{
    char url[600], eurl[600];
    unsigned char cut[MAX_BUCKETS][16];

    struct dbsrc *s = open_ok(sq_five_todos(url, sizeof(url)), DBSRC_LAYOUT_CURRENT);
    bucket_cases(s, cut);
    dbsrc_close(s);
    sqlite3_close(make_current(eurl, sizeof(eurl)));
    s = open_ok(eurl, DBSRC_LAYOUT_CURRENT);
    bucket_empty_table(s);
    dbsrc_close(s);
}

/* A row that cannot be converted stops the pass with the scan's message. */
Test(dbsrc_sqlite, bucket_digests_stop_at_an_unconvertible_row)
{
    char url[600], err[512] = "";
    sqlite3 *db = make_current(url, sizeof(url));
    unsigned char md[4][16];
    int64_t rows[4];

    sq_user(db, U1, "a@x.org");
    sq_todo(db, T(1), U1, "t", "2024-01-01T00:00:00.000Z");
    sq_todo(db, T(2), U1, "t", "not a time at all, 24 ch");
    sqlite3_close(db);
    struct dbsrc *s = open_ok(url, DBSRC_LAYOUT_CURRENT);
    const char *bounds[] = {T(1)};
    cr_expect_eq(dbsrc_digest_buckets(s, dbrow_table("todos"), bounds, 1, md, rows, err,
                                      sizeof(err)), -1);
    cr_expect(strstr(err, T(2)) != NULL && strstr(err, "created_at") != NULL, "%s", err);
    dbsrc_close(s);
}

Test(dbsrc_sqlite, rejects_bad_values_and_orphans)
{
    char url[600];
    sqlite3 *db = make_current(url, sizeof(url));
    struct rows rs = {0};
    char err[512] = "";

    sq_user(db, U1, "a@x.org");
    sq_todo(db, T(1), U1, "fine", "2024-01-01T00:00:00.000Z");
    sq_todo(db, T(2), U1, "impossible", "2024-02-30T00:00:00.000Z"); /* passes the CHECK */
    sq_todo(db, T(3), U2, "orphan", "2024-01-01T00:00:00.000Z");     /* foreign keys off */
    sq_todo(db, T(4), U1, "fine too", "2024-01-01T00:00:00.000Z");
    sqlite3_close(db);
    struct dbsrc *s = open_ok(url, DBSRC_LAYOUT_AUTO);

    /* Without a reject callback: the first bad row stops the scan. */
    cr_expect_eq(scan(s, "todos", NULL, NULL, 0, &rs, false, err, sizeof(err)), -1);
    cr_expect(strstr(err, "todos") && strstr(err, T(2)) && strstr(err, "created_at") &&
                  strstr(err, "\"2024-02-30T00:00:00.000Z\"") && strstr(err, "not a timestamp"),
              "%s", err);
    rows_free(&rs);

    /* With one that skips: both bad rows reported, the rest delivered. */
    cr_expect_eq(scan(s, "todos", NULL, NULL, 0, &rs, true, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(rs.n, 2);
    cr_assert_eq(rs.nrej, 2);
    cr_expect_str_eq(rs.rej[0].pk, T(2));
    cr_expect_str_eq(rs.rej[0].column, "created_at");
    cr_expect_str_eq(rs.rej[1].pk, T(3));
    cr_expect_str_eq(rs.rej[1].column, "user_id");
    cr_expect_str_eq(rs.rej[1].value, "\"" U2 "\"");
    cr_expect_str_eq(rs.rej[1].reason, "no user with this id");
    rows_free(&rs);

    /* A reject callback that stops: its value comes back (1 too). */
    for (int answer = 1; answer <= 5; answer += 4) {
        rs.reject_answer = answer;
        cr_expect_eq(scan(s, "todos", NULL, NULL, 0, &rs, true, err, sizeof(err)), answer);
        cr_expect_eq(rs.nrej, 1);
        cr_expect_eq(rs.n, 1);
        rows_free(&rs);
    }

    /* Digests refuse rows that cannot be converted. */
    unsigned char md[16];
    int64_t rows;
    cr_expect_eq(dbsrc_digest(s, dbrow_table("todos"), NULL, NULL, md, &rows, err, sizeof(err)),
                 -1);
    cr_expect(strstr(err, T(2)) != NULL, "%s", err);
    dbsrc_close(s);
}

Test(dbsrc_sqlite, stored_ids_out_of_form_break_ordered_scans_only)
{
    char url[600];
    sqlite3 *db = make_current(url, sizeof(url));
    struct rows rs = {0};
    char err[512] = "";

    sq_user(db, U1, "a@x.org");
    sq_user(db, "ABCDEF00-0000-7000-8000-000000000001", "b@x.org");
    sqlite3_close(db);
    struct dbsrc *s = open_ok(url, DBSRC_LAYOUT_AUTO);
    cr_expect_eq(scan(s, "users", NULL, NULL, 0, &rs, false, err, sizeof(err)), -1);
    cr_expect(strstr(err, "ABCDEF00-0000-7000-8000-000000000001") != NULL, "%s", err);
    rows_free(&rs);
    scan_ok(s, "users", NULL, NULL, DBSRC_SCAN_ANY_ORDER, &rs);
    cr_expect_eq(rs.n, 2);
    rows_free(&rs);
    dbsrc_close(s);
}

Test(dbsrc_sqlite, refuses_what_it_cannot_read)
{
    char url[600], path[512];
    sqlite3 *db;

    tmp_db("dbsrc_test", url, sizeof(url), path, sizeof(path));
    open_fails(url, DBSRC_LAYOUT_AUTO, "no such file");
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sq_exec(db, "CREATE TABLE notes (x)");
    open_fails(url, DBSRC_LAYOUT_AUTO, "not a todo database");
    open_fails(url, DBSRC_LAYOUT_LEGACY, "not the legacy layout");
    sqlite3_close(db);

    db = make_current(url, sizeof(url));
    sq_exec(db, "INSERT INTO schema_migrations (version, name, checksum, applied_at, "
                "duration_ms) VALUES (9999, 'future', 'x', '2030-01-01T00:00:00.000Z', 1)");
    sqlite3_close(db);
    open_fails(url, DBSRC_LAYOUT_AUTO, "schema version 9999 is newer");
    open_fails("mysql://x/y", DBSRC_LAYOUT_AUTO, "DATABASE_URL");
}

/* The source's snapshot: writes after dbsrc_open are not seen. */
Test(dbsrc_sqlite, snapshot)
{
    char url[600];
    sqlite3 *db = make_current(url, sizeof(url));
    char err[256];
    int64_t n = -1;

    sq_user(db, U1, "a@x.org");
    struct dbsrc *s = open_ok(url, DBSRC_LAYOUT_AUTO);
    sq_user(db, U2, "b@x.org"); /* WAL: the writer does not wait for the reader */
    cr_assert_eq(dbsrc_count(s, dbrow_table("users"), &n, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(n, 1);
    dbsrc_close(s);
    s = open_ok(url, DBSRC_LAYOUT_AUTO);
    cr_assert_eq(dbsrc_count(s, dbrow_table("users"), &n, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(n, 2);
    dbsrc_close(s);
    sqlite3_close(db);
}

/* ---- SQLite, legacy layout --------------------------------------------------- */

static const char legacy_schema[] =
    "CREATE TABLE users (id CHAR(32) NOT NULL PRIMARY KEY, email VARCHAR NOT NULL, "
    "  password_hash VARCHAR NOT NULL, name VARCHAR, created_at DATETIME NOT NULL, "
    "  updated_at DATETIME, is_active BOOLEAN NOT NULL);"
    "CREATE UNIQUE INDEX ix_users_email ON users (email);"
    "CREATE TABLE tasks (id CHAR(32) NOT NULL PRIMARY KEY, "
    "  user_id CHAR(32) NOT NULL REFERENCES users (id), title VARCHAR NOT NULL, "
    "  description TEXT, completed BOOLEAN NOT NULL, completed_at DATETIME, "
    "  created_at DATETIME NOT NULL, updated_at DATETIME);"
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);"
    "INSERT INTO alembic_version VALUES ('3f2a1b9c0d7e');";

#define LU1 "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
#define LU1_CANON "0a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f9"
#define LU2 "ffeeddccbbaa49988776655443322110"
#define LT1 "11111111111141118111111111111111"
#define LT2 "22222222222242228222222222222222"

static sqlite3 *make_legacy(char *url, size_t n)
{
    char path[512];
    sqlite3 *db;

    tmp_db("dbsrc_test", url, n, path, sizeof(path));
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sq_exec(db, legacy_schema);
    sq_exec(db, "INSERT INTO users VALUES "
                "('" LU1 "', ' Alice@Example.COM', "
                "'$2b$12$abcdefghijklmnopqrstuuJ0eVnD7Ag7mNn3Xo3YbxZ6w3aQ1Qf7a', 'Alice', "
                "'2024-03-01 12:34:56.123456', NULL, 1),"
                "('" LU2 "', 'bob@example.com', '$2a$12$xyz', NULL, "
                "'2023-12-31 23:59:59', '2024-01-01 00:00:00.5', 0)");
    sq_exec(db, "INSERT INTO tasks VALUES "
                "('" LT2 "', '" LU1 "', 'Second', NULL, 0, NULL, '2024-03-02 08:00:00', NULL),"
                "('" LT1 "', '" LU2 "', 'First', 'with text', 1, '2024-03-03 09:00:00.999999', "
                " '2024-03-01 08:00:00', '2024-03-03 09:00:00.999999')");
    return db;
}

Test(dbsrc_legacy, read_as_the_current_tables)
{
    char url[600];
    sqlite3 *db = make_legacy(url, sizeof(url));
    struct rows rs = {0};
    sqlite3_close(db);

    struct dbsrc *s = open_ok(url, DBSRC_LAYOUT_AUTO);
    cr_expect_eq(dbsrc_layout(s), DBSRC_LAYOUT_LEGACY);
    cr_expect_eq(dbsrc_version(s), 0);
    cr_expect_str_eq(dbsrc_alembic_revision(s), "3f2a1b9c0d7e");
    int64_t n = 0;
    char err[512];
    cr_assert_eq(dbsrc_count(s, dbrow_table("todos"), &n, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(n, 2);

    scan_ok(s, "users", NULL, NULL, 0, &rs);
    cr_assert_eq(rs.n, 2);
    cr_expect_str_eq(rs.text[0],
                     LU1_CANON "|alice@example.com|"
                               "$2b$12$abcdefghijklmnopqrstuuJ0eVnD7Ag7mNn3Xo3YbxZ6w3aQ1Qf7a|"
                               "Alice|t|2024-03-01T12:34:56.123Z|2024-03-01T12:34:56.123Z");
    cr_expect_str_eq(rs.text[1], "ffeeddcc-bbaa-4998-8776-655443322110|bob@example.com|"
                                 "$2a$12$xyz|NULL|f|2023-12-31T23:59:59.000Z|"
                                 "2024-01-01T00:00:00.500Z");
    rows_free(&rs);

    scan_ok(s, "todos", NULL, NULL, 0, &rs);
    cr_assert_eq(rs.n, 2);
    cr_expect_str_eq(rs.text[0], "11111111-1111-4111-8111-111111111111|"
                                 "ffeeddcc-bbaa-4998-8776-655443322110|First|with text|t|"
                                 "2024-03-03T09:00:00.999Z|2024-03-01T08:00:00.000Z|"
                                 "2024-03-03T09:00:00.999Z|1");
    cr_expect_str_eq(rs.text[1], "22222222-2222-4222-8222-222222222222|" LU1_CANON "|Second|"
                                 "NULL|f|NULL|2024-03-02T08:00:00.000Z|"
                                 "2024-03-02T08:00:00.000Z|1");
    rows_free(&rs);

    /* Ranges take canonical bounds. */
    scan_ok(s, "todos", "11111111-1111-4111-8111-111111111111", NULL, DBSRC_SCAN_KEYS_ONLY, &rs);
    cr_assert_eq(rs.n, 1);
    cr_expect_str_eq(rs.text[0], "22222222-2222-4222-8222-222222222222");
    rows_free(&rs);
    dbsrc_close(s);

    /* A naive DATETIME in the source zone. */
    struct dbconv_tz *tz = dbconv_tz_open("Europe/Berlin", err, sizeof(err));
    struct dbsrc_opts o = {.tz = tz};
    cr_assert_eq(dbsrc_open(url, &o, &s, err, sizeof(err)), 0, "%s", err);
    scan_ok(s, "users", NULL, LU1_CANON, 0, &rs);
    cr_assert_eq(rs.n, 1);
    cr_expect(strstr(rs.text[0], "|2024-03-01T11:34:56.123Z|") != NULL, "%s", rs.text[0]);
    rows_free(&rs);
    dbsrc_close(s);
    dbconv_tz_close(tz);
}

Test(dbsrc_legacy, email_collision_names_both_users)
{
    char url[600];
    sqlite3 *db = make_legacy(url, sizeof(url));
    sq_exec(db, "INSERT INTO users VALUES ('" LT1 "', 'alice@example.com', 'h', NULL, "
                "'2024-01-01 00:00:00', NULL, 1)");
    sqlite3_close(db);
    open_fails(url, DBSRC_LAYOUT_AUTO, "same email");
    open_fails(url, DBSRC_LAYOUT_LEGACY, LU1);
    open_fails(url, DBSRC_LAYOUT_LEGACY, LT1);
}

/* A legacy file whose tables lack columns the import reads: one message at
 * open naming every missing column (not the SQL that failed on the first). */
Test(dbsrc_legacy, missing_columns_are_named_at_open)
{
    char url[600], path[512];
    sqlite3 *db;

    tmp_db("dbsrc_test", url, sizeof(url), path, sizeof(path));
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sq_exec(db, "CREATE TABLE users (id CHAR(32) PRIMARY KEY, email VARCHAR NOT NULL, "
                "  password_hash VARCHAR NOT NULL, created_at DATETIME NOT NULL);"
                "CREATE TABLE tasks (id CHAR(32) PRIMARY KEY, user_id CHAR(32), title VARCHAR, "
                "  description TEXT, completed BOOLEAN, completed_at DATETIME, "
                "  created_at DATETIME, updated_at DATETIME);"
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);"
                "INSERT INTO alembic_version VALUES ('0001');");
    open_fails(url, DBSRC_LAYOUT_AUTO, "table users has no column name, is_active, updated_at");
    sq_exec(db, "ALTER TABLE users ADD COLUMN name VARCHAR;"
                "ALTER TABLE users ADD COLUMN is_active BOOLEAN;"
                "ALTER TABLE users ADD COLUMN updated_at DATETIME;"
                "ALTER TABLE tasks DROP COLUMN completed_at");
    open_fails(url, DBSRC_LAYOUT_LEGACY, "table tasks has no column completed_at, which the "
                                         "legacy layout needs");
    sq_exec(db, "ALTER TABLE tasks ADD COLUMN completed_at DATETIME");
    struct dbsrc *s = open_ok(url, DBSRC_LAYOUT_AUTO);
    dbsrc_close(s);
    sqlite3_close(db);
}

/* A user_id names its user whatever uuid form each is stored in. */
Test(dbsrc_legacy, user_ids_in_other_forms_name_their_users)
{
    char url[600], err[512];
    sqlite3 *db = make_legacy(url, sizeof(url));
    struct rows rs = {0};

    sq_exec(db, "INSERT INTO users VALUES ('AAAAAAAA00004000800000000000000A', 'up@x', 'h', NULL, "
                "'2024-01-01 00:00:00', NULL, 1)");
    sq_exec(db, "INSERT INTO tasks VALUES "
                "('55555555555545558555555555555555', '0A1B2C3D4E5F40718293A4B5C6D7E8F9', 'a', "
                " NULL, 0, NULL, '2024-01-01 00:00:00', NULL),"
                "('66666666666646668666666666666666', '" LU1_CANON "', 'b', NULL, 0, NULL, "
                " '2024-01-01 00:00:00', NULL),"
                "('77777777777747778777777777777777', x'0a1b2c3d4e5f40718293a4b5c6d7e8f9', 'c', "
                " NULL, 0, NULL, '2024-01-01 00:00:00', NULL),"
                "('88888888888848888888888888888888', 'aaaaaaaa-0000-4000-8000-00000000000a', 'd', "
                " NULL, 0, NULL, '2024-01-01 00:00:00', NULL),"
                "('99999999999949998999999999999999', 'bbbbbbbb00004000800000000000000b', 'e', "
                " NULL, 0, NULL, '2024-01-01 00:00:00', NULL)");
    sqlite3_close(db);
    struct dbsrc *s = open_ok(url, DBSRC_LAYOUT_LEGACY);
    cr_expect_eq(scan(s, "todos", NULL, NULL, DBSRC_SCAN_ANY_ORDER, &rs, true, err, sizeof(err)),
                 0, "%s", err);
    cr_expect_eq(rs.n, 6);
    cr_assert_eq(rs.nrej, 1);
    cr_expect_str_eq(rs.rej[0].pk, "99999999999949998999999999999999");
    cr_expect_str_eq(rs.rej[0].reason, "no user with this id");
    for (size_t i = 0; i < rs.n; i++)
        if (strstr(rs.text[i], "|a|") || strstr(rs.text[i], "|b|") || strstr(rs.text[i], "|c|"))
            cr_expect(strstr(rs.text[i], "|" LU1_CANON "|") != NULL, "%s", rs.text[i]);
    rows_free(&rs);
    dbsrc_close(s);
}

Test(dbsrc_legacy, orphan_tasks_and_bad_booleans_are_rejected)
{
    char url[600];
    sqlite3 *db = make_legacy(url, sizeof(url));
    struct rows rs = {0};
    char err[512];

    sq_exec(db, "INSERT INTO tasks VALUES ('33333333333343338333333333333333', "
                "'99999999999949998999999999999999', 'lost', NULL, 0, NULL, "
                "'2024-01-01 00:00:00', NULL),"
                "('44444444444444448444444444444444', '" LU1 "', 'odd', NULL, 'maybe', NULL, "
                "'2024-01-01 00:00:00', NULL)");
    sqlite3_close(db);
    struct dbsrc *s = open_ok(url, DBSRC_LAYOUT_LEGACY);
    cr_expect_eq(scan(s, "todos", NULL, NULL, 0, &rs, true, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(rs.n, 2);
    cr_assert_eq(rs.nrej, 2);
    cr_expect_str_eq(rs.rej[0].pk, "33333333333343338333333333333333");
    cr_expect_str_eq(rs.rej[0].reason, "no user with this id");
    cr_expect_str_eq(rs.rej[1].column, "completed");
    cr_expect_str_eq(rs.rej[1].value, "\"maybe\"");
    cr_expect_str_eq(rs.rej[1].reason, "not a boolean");
    rows_free(&rs);
    dbsrc_close(s);
}

/* ---- PostgreSQL ------------------------------------------------------------------ */

/* A fresh database on the cluster, migrated to head: its URL (static). */
static const char *pg_fresh_db(void)
{
    static char url[600];
    static int seq;
    const char *base = pg_url_or_skip();
    const char *slash = strrchr(base, '/');
    char name[64], sql[128], err[512];

    cr_assert_not_null(slash);
    snprintf(name, sizeof(name), "dbsrc_%d_%d", (int)getpid(), ++seq);
    cr_assert_lt(nmade_dbs, 8);
    snprintf(made_dbs[nmade_dbs++], sizeof(made_dbs[0]), "%s", name);
    PGconn *admin = PQconnectdb(base);
    cr_assert_eq(PQstatus(admin), CONNECTION_OK, "%s", PQerrorMessage(admin));
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", name);
    pg_ok(admin, sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    pg_ok(admin, sql);
    PQfinish(admin);
    snprintf(url, sizeof(url), "%.*s/%s", (int)(slash - base), base, name);
    cr_assert_geq(mdb_up_embedded(url, 0, err, sizeof(err)), 1, "%s", err);
    return url;
}

static PGconn *pg_conn(const char *url)
{
    PGconn *pg = PQconnectdb(url);
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
    return pg;
}

/* The same users and todos into a SQLite file (canonical text) and a
 * PostgreSQL database: n todos with every kind of value. */
static void fill_both(sqlite3 *db, PGconn *pg, int n)
{
    sqlite3_stmt *su, *st;
    const char *usql = "INSERT INTO users VALUES ($1, $2, $3, $4, $5, $6, $7)";
    const char *tsql = "INSERT INTO todos VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

    cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO users VALUES (?1,?2,?3,?4,?5,?6,?7)", -1, &su,
                                    NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO todos VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                                    -1, &st, NULL), SQLITE_OK);
    sq_exec(db, "BEGIN");
    pg_ok(pg, "BEGIN");
    for (int u = 0; u < 3; u++) {
        char id[40], email[40], created[TIMEFMT_LEN + 1];
        snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012d", u + 1);
        snprintf(email, sizeof(email), "user%d@example.org", u);
        timefmt_format(-62135596800000 + u * INT64_C(86400000) * 365 * 3000, created);
        const char *v[7] = {id, email, "$argon2id$h", u == 1 ? NULL : "Zoë 🥛",
                            u == 2 ? "0" : "1", created, "9999-12-31T23:59:59.999Z"};
        for (int c = 0; c < 7; c++)
            if (v[c] != NULL)
                sqlite3_bind_text(su, c + 1, v[c], -1, SQLITE_TRANSIENT);
            else
                sqlite3_bind_null(su, c + 1);
        sqlite3_bind_int(su, 5, u == 2 ? 0 : 1);
        cr_assert_eq(sqlite3_step(su), SQLITE_DONE, "%s", sqlite3_errmsg(db));
        sqlite3_reset(su);
        const char *pv[7] = {v[0], v[1], v[2], v[3], u == 2 ? "f" : "t", v[5], v[6]};
        PGresult *r = PQexecParams(pg, usql, 7, NULL, pv, NULL, NULL, 0);
        cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(pg));
        PQclear(r);
    }
    for (int i = 0; i < n; i++) {
        char id[40], user[40], title[300], desc[64], ver[16], t1[25], t2[25], t3[25];
        unsigned h = (unsigned)i * 2654435761u;
        snprintf(id, sizeof(id), "%08x-%04x-7%03x-8%03x-%012x", h, i & 0xffff, i & 0xfff,
                 (h >> 4) & 0xfff, i);
        snprintf(user, sizeof(user), "00000000-0000-7000-8000-%012d", 1 + i % 3);
        snprintf(title, sizeof(title), "todo %d %s", i, i % 5 == 0 ? "ünïcødé ✓" : "");
        snprintf(desc, sizeof(desc), "description %d", i);
        snprintf(ver, sizeof(ver), "%d", 1 + i * 7);
        timefmt_format(1700000000000 + (int64_t)i * 1234567, t1);
        timefmt_format(-1000000 - (int64_t)i * 99991, t2);
        timefmt_format(1700000000000 + (int64_t)i * 7654321, t3);
        const char *v[9] = {id, user, title, i % 3 == 0 ? NULL : i % 3 == 1 ? "" : desc,
                            i % 2 ? "1" : "0", i % 4 == 0 ? NULL : t1, t2, t3, ver};
        for (int c = 0; c < 9; c++)
            if (v[c] != NULL)
                sqlite3_bind_text(st, c + 1, v[c], -1, SQLITE_TRANSIENT);
            else
                sqlite3_bind_null(st, c + 1);
        sqlite3_bind_int(st, 5, i % 2);
        sqlite3_bind_int(st, 9, 1 + i * 7);
        cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(db));
        sqlite3_reset(st);
        v[4] = i % 2 ? "t" : "f";
        PGresult *r = PQexecParams(pg, tsql, 9, NULL, v, NULL, NULL, 0);
        cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(pg));
        PQclear(r);
    }
    sq_exec(db, "COMMIT");
    pg_ok(pg, "COMMIT");
    sqlite3_finalize(su);
    sqlite3_finalize(st);
}

static void digest_of(struct dbsrc *s, const char *table, const char *lo, const char *hi,
                      unsigned char md[16], int64_t *rows)
{
    char err[512];
    cr_assert_eq(dbsrc_digest(s, dbrow_table(table), lo, hi, md, rows, err, sizeof(err)), 0,
                 "%s", err);
}

Test(dbsrc_pg, same_rows_and_digests_as_sqlite)
{
    const char *pgurl = pg_fresh_db();
    char squrl[600];
    sqlite3 *db = make_current(squrl, sizeof(squrl));
    PGconn *pg = pg_conn(pgurl);
    struct rows a = {0}, b = {0};

    fill_both(db, pg, 300);
    sqlite3_close(db);
    PQfinish(pg);
    struct dbsrc *sq = open_ok(squrl, DBSRC_LAYOUT_AUTO);
    struct dbsrc_opts o = {.batch_rows = 7};
    struct dbsrc *ps = NULL;
    char err[512];
    cr_assert_eq(dbsrc_open(pgurl, &o, &ps, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(dbsrc_dialect(ps), "postgres");
    cr_expect_eq(dbsrc_version(ps), migrate_latest_version("postgres"));

    size_t nt = 0;
    const struct dbtable *t = dbrow_tables(&nt);
    for (size_t i = 0; i < nt; i++) {
        unsigned char m1[16], m2[16];
        int64_t r1 = -1, r2 = -2, c1 = 0, c2 = 0;
        digest_of(sq, t[i].name, NULL, NULL, m1, &r1);
        digest_of(ps, t[i].name, NULL, NULL, m2, &r2);
        cr_expect_eq(r1, r2);
        cr_expect_arr_eq(m1, m2, 16, "%s: digests differ", t[i].name);
        cr_assert_eq(dbsrc_count(sq, &t[i], &c1, err, sizeof(err)), 0);
        cr_assert_eq(dbsrc_count(ps, &t[i], &c2, err, sizeof(err)), 0);
        cr_expect_eq(c1, r1);
        cr_expect_eq(c2, r2);
    }
    /* Ranges too: (lo, hi] from the keys of a keys-only scan. */
    struct rows keys = {0};
    scan_ok(sq, "users", NULL, NULL, DBSRC_SCAN_KEYS_ONLY, &keys);
    cr_assert_eq(keys.n, 3);
    unsigned char m1[16], m2[16];
    int64_t r1, r2;
    digest_of(sq, "users", keys.text[0], keys.text[2], m1, &r1);
    digest_of(ps, "users", keys.text[0], keys.text[2], m2, &r2);
    cr_expect_eq(r1, 2);
    cr_expect_eq(r2, 2);
    cr_expect_arr_eq(m1, m2, 16);
    digest_of(ps, "todos", "80000000-0000-0000-0000-000000000000", NULL, m2, &r2);
    digest_of(sq, "todos", "80000000-0000-0000-0000-000000000000", NULL, m1, &r1);
    cr_expect_gt(r1, 0);
    cr_expect_eq(r1, r2);
    cr_expect_arr_eq(m1, m2, 16);
    rows_free(&keys);

    /* Row by row, through the batched cursor (7 at a time). */
    scan_ok(sq, "users", NULL, NULL, 0, &a);
    scan_ok(ps, "users", NULL, NULL, 0, &b);
    cr_assert_eq(a.n, b.n);
    for (size_t i = 0; i < a.n; i++)
        cr_expect_str_eq(a.text[i], b.text[i]);
    rows_free(&a);
    rows_free(&b);
    scan_ok(ps, "todos", "40000000-0000-0000-0000-000000000000",
            "48000000-0000-0000-0000-000000000000", 0, &b);
    scan_ok(sq, "todos", "40000000-0000-0000-0000-000000000000",
            "48000000-0000-0000-0000-000000000000", 0, &a);
    cr_assert_eq(a.n, b.n);
    cr_expect_gt(a.n, 2);
    for (size_t i = 0; i < a.n; i++)
        cr_expect_str_eq(a.text[i], b.text[i]);
    rows_free(&a);
    rows_free(&b);

    /* A scan stopped in the middle (a batch in flight) leaves the source
     * usable, and the next scans see the same rows. */
    for (int k = 0; k < 3; k++) {
        b.stop_after = 10;
        cr_expect_eq(scan(ps, "todos", NULL, NULL, 0, &b, false, err, sizeof(err)), 9);
        cr_expect_eq(b.n, 10);
        rows_free(&b);
    }
    int64_t c = 0;
    cr_assert_eq(dbsrc_count(ps, dbrow_table("todos"), &c, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(c, 300);
    cr_expect_eq(scan(ps, "todos", NULL, NULL, DBSRC_SCAN_KEYS_ONLY, &b, false, err,
                      sizeof(err)), 9); /* collect_keys stops at its array's size */
    cr_expect_eq(b.n, 64);
    rows_free(&b);
    dbsrc_close(sq);
    dbsrc_close(ps);
}

/* The same five todos in PostgreSQL: the same buckets, the same digests
 * as SQLite's, and each bucket's digest its range's. */
Test(dbsrc_pg, bucket_digests_are_the_ranges_digests)
{
    const char *pgurl = pg_fresh_db();
    char squrl[600];
    unsigned char sqcut[MAX_BUCKETS][16], pgcut[MAX_BUCKETS][16];

    PGconn *pg = pg_conn(pgurl);
    pg_ok(pg, "INSERT INTO users VALUES ('" U1 "', 'a@x.org', 'hash', NULL, true, "
              "'2024-03-01T12:00:00.000Z', '2024-03-02T12:00:00.000Z')");
    for (int i = 1; i <= 5; i++) {
        char sql[300];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO todos VALUES ('10000000-0000-7000-8000-00000000000%d', '" U1
                 "', 't', NULL, false, NULL, '2024-01-01T00:00:00.000Z', "
                 "'2024-01-01T00:00:00.000Z', 1)",
                 i);
        pg_ok(pg, sql);
    }
    struct dbsrc *sq = open_ok(sq_five_todos(squrl, sizeof(squrl)), DBSRC_LAYOUT_CURRENT);
    struct dbsrc *ps = open_ok(pgurl, DBSRC_LAYOUT_AUTO);
    bucket_cases(sq, sqcut);
    bucket_cases(ps, pgcut);
    for (size_t i = 0; i < 5; i++)
        cr_expect_arr_eq(sqcut[i], pgcut[i], 16, "bucket %zu: SQLite and PostgreSQL differ", i);
    dbsrc_close(ps);
    /* Empty: the same database once its todos are gone. */
    pg_ok(pg, "DELETE FROM todos");
    PQfinish(pg);
    ps = open_ok(pgurl, DBSRC_LAYOUT_AUTO);
    bucket_empty_table(ps);
    dbsrc_close(ps);
    dbsrc_close(sq);
}

struct key_list {
    char (*k)[DBROW_UUID_LEN + 1];
    size_t n;
};

static int key_list_add(void *ctx, const struct dbrow *r)
{
    struct key_list *kl = ctx;
    kl->k = xrealloc(kl->k, (kl->n + 1) * sizeof(*kl->k));
    memcpy(kl->k[kl->n++], r->v[0].uuid, sizeof(kl->k[0]));
    return 0;
}

/* fill_both's 300 todos of every kind of value, cut at every 7th key (the
 * way verify cuts them): SQLite and PostgreSQL agree bucket by bucket. */
Test(dbsrc_pg, bucket_digests_agree_across_dialects)
{
    const char *pgurl = pg_fresh_db();
    char squrl[600], err[512];
    sqlite3 *db = make_current(squrl, sizeof(squrl));
    PGconn *pg = pg_conn(pgurl);
    struct key_list kl = {0};

    fill_both(db, pg, 300);
    sqlite3_close(db);
    PQfinish(pg);
    struct dbsrc *sq = open_ok(squrl, DBSRC_LAYOUT_AUTO);
    struct dbsrc *ps = open_ok(pgurl, DBSRC_LAYOUT_AUTO);
    cr_assert_eq(dbsrc_scan(sq, dbrow_table("todos"), NULL, NULL, DBSRC_SCAN_KEYS_ONLY,
                            key_list_add, NULL, &kl, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(kl.n, 300);
    const char *bounds[MAX_BUCKETS];
    size_t nb = 0;
    for (size_t i = 6; i < kl.n; i += 7)
        bounds[nb++] = kl.k[i];
    unsigned char m1[MAX_BUCKETS][16], m2[MAX_BUCKETS][16];
    int64_t r1[MAX_BUCKETS], r2[MAX_BUCKETS], total = 0;
    buckets_ok(sq, "todos", bounds, nb, r1, m1);
    buckets_ok(ps, "todos", bounds, nb, r2, m2);
    for (size_t i = 0; i <= nb; i++) {
        cr_expect_eq(r1[i], i < nb ? 7 : 300 % 7, "bucket %zu", i);
        cr_expect_eq(r1[i], r2[i]);
        cr_expect_arr_eq(m1[i], m2[i], 16, "bucket %zu: SQLite and PostgreSQL differ", i);
        total += r2[i];
    }
    cr_expect_eq(total, 300);
    free(kl.k);
    dbsrc_close(sq);
    dbsrc_close(ps);
}

Test(dbsrc_pg, snapshot_microseconds_and_orphans)
{
    const char *url = pg_fresh_db();
    PGconn *pg = pg_conn(url);
    struct rows rs = {0};
    char err[512];
    int64_t n = -1;

    pg_ok(pg, "INSERT INTO users VALUES ('" U1 "', 'a@x', 'h', NULL, true, "
              "'2024-03-01 12:00:00.123999+00', '1969-12-31 23:59:59.9999+00')");
    struct dbsrc *s = open_ok(url, DBSRC_LAYOUT_AUTO);
    pg_ok(pg, "INSERT INTO users VALUES ('" U2 "', 'b@x', 'h', NULL, true, now(), now())");
    cr_assert_eq(dbsrc_count(s, dbrow_table("users"), &n, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(n, 1, "the snapshot does not see later writes");
    scan_ok(s, "users", NULL, NULL, 0, &rs);
    cr_assert_eq(rs.n, 1);
    cr_expect_str_eq(rs.text[0], U1 "|a@x|h|NULL|t|2024-03-01T12:00:00.123Z|"
                                    "1969-12-31T23:59:59.999Z");
    rows_free(&rs);
    dbsrc_close(s);

    /* Without the foreign key, a todo of no user is rejected. */
    pg_ok(pg, "ALTER TABLE todos DROP CONSTRAINT todos_user_id_fkey");
    pg_ok(pg, "INSERT INTO todos VALUES ('" T(1) "', '" U1 "', 'ok', NULL, false, NULL, now(), "
              "now(), 1), ('" T(2) "', '" T(9) "', 'lost', NULL, false, NULL, now(), now(), 1),"
              "('" T(3) "', '" U1 "', 'far', NULL, false, NULL, 'infinity', now(), 1),"
              "('" T(4) "', '" U1 "', 'later', NULL, false, NULL, now(), "
              " '10000-01-01 00:00:00.25+00', 1),"
              "('" T(5) "', '" U1 "', 'earlier', NULL, false, '0001-12-31 23:00:00+00 BC', "
              " now(), now(), 1)");
    s = open_ok(url, DBSRC_LAYOUT_AUTO);
    cr_expect_eq(scan(s, "todos", NULL, NULL, 0, &rs, true, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(rs.n, 1);
    cr_assert_eq(rs.nrej, 4);
    cr_expect_str_eq(rs.rej[0].pk, T(2));
    cr_expect_str_eq(rs.rej[0].column, "user_id");
    cr_expect_str_eq(rs.rej[0].reason, "no user with this id");
    cr_expect_str_eq(rs.rej[1].pk, T(3));
    cr_expect_str_eq(rs.rej[1].column, "created_at");
    cr_expect_str_eq(rs.rej[1].value, "infinity");
    cr_expect_str_eq(rs.rej[2].column, "updated_at");
    cr_expect_str_eq(rs.rej[2].value, "10000-01-01 00:00:00.250000+00");
    cr_expect_str_eq(rs.rej[2].reason, "timestamp outside the years 0001..9999");
    cr_expect_str_eq(rs.rej[3].column, "completed_at");
    cr_expect_str_eq(rs.rej[3].value, "0001-12-31 23:00:00.000000+00 BC");
    rows_free(&rs);
    /* Without a reject callback, the error names the row. */
    cr_expect_eq(scan(s, "todos", NULL, NULL, DBSRC_SCAN_ANY_ORDER, &rs, false, err, sizeof(err)),
                 -1);
    cr_expect(strstr(err, "no user with this id") != NULL, "%s", err);
    rows_free(&rs);
    dbsrc_close(s);
    PQfinish(pg);
}

/* A legacy file and a PostgreSQL copy of what it reads as (the rows'
 * canonical text inserted): the same digests. */
Test(dbsrc_pg, legacy_digests_match_a_postgresql_copy)
{
    const char *pgurl = pg_fresh_db();
    char squrl[600];
    sqlite3 *db = make_legacy(squrl, sizeof(squrl));
    sqlite3_close(db);
    struct dbsrc *sq = open_ok(squrl, DBSRC_LAYOUT_LEGACY);
    PGconn *pg = pg_conn(pgurl);
    size_t nt = 0;
    const struct dbtable *t = dbrow_tables(&nt);

    for (size_t i = 0; i < nt; i++) {
        struct rows rs = {0};
        scan_ok(sq, t[i].name, NULL, NULL, 0, &rs);
        cr_assert_gt(rs.n, 0);
        for (size_t k = 0; k < rs.n; k++) {
            const char *v[DBROW_MAX_COLS];
            char *save = NULL, *tok = strtok_r(rs.text[k], "|", &save);
            char sql[200];
            size_t c = 0;
            for (; tok != NULL && c < t[i].ncols; tok = strtok_r(NULL, "|", &save))
                v[c++] = strcmp(tok, "NULL") == 0 ? NULL : tok;
            cr_assert_eq(c, t[i].ncols);
            snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES ($1, $2, $3, $4, $5, $6, $7%s)",
                     t[i].name, t[i].ncols == 9 ? ", $8, $9" : "");
            PGresult *r = PQexecParams(pg, sql, (int)c, NULL, v, NULL, NULL, 0);
            cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(pg));
            PQclear(r);
        }
        rows_free(&rs);
    }
    PQfinish(pg);
    struct dbsrc *ps = open_ok(pgurl, DBSRC_LAYOUT_AUTO);
    for (size_t i = 0; i < nt; i++) {
        unsigned char m1[16], m2[16];
        int64_t r1 = -1, r2 = -2;
        digest_of(sq, t[i].name, NULL, NULL, m1, &r1);
        digest_of(ps, t[i].name, NULL, NULL, m2, &r2);
        cr_expect_eq(r1, r2);
        cr_expect_gt(r1, 1);
        cr_expect_arr_eq(m1, m2, 16, "%s", t[i].name);
    }
    dbsrc_close(sq);
    dbsrc_close(ps);
}

Test(dbsrc_pg, refuses_unknown_versions_and_legacy)
{
    const char *url = pg_fresh_db();
    PGconn *pg = pg_conn(url);

    open_fails(url, DBSRC_LAYOUT_LEGACY, "SQLite files only");
    pg_ok(pg, "INSERT INTO schema_migrations (version, name, checksum, applied_at, duration_ms) "
              "VALUES (9999, 'future', 'x', now(), 1)");
    open_fails(url, DBSRC_LAYOUT_AUTO, "schema version 9999 is newer");
    PQfinish(pg);
    open_fails("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", DBSRC_LAYOUT_AUTO,
               "cannot connect");
}

/* ---- speed (only when DBSRC_BENCH_ROWS is set) --------------------------------- */

static int count_row(void *ctx, const struct dbrow *r)
{
    (void)r;
    (*(int64_t *)ctx)++;
    return 0;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* DBSRC_BENCH_ROWS=1000000 build-X/tests/unit_dbtool --filter 'dbsrc_bench/read_speed'
 * (under scripts/with-pg for PostgreSQL as well). */
Test(dbsrc_bench, read_speed, .timeout = 600)
{
    const char *env = getenv("DBSRC_BENCH_ROWS");
    if (env == NULL)
        cr_skip_test("DBSRC_BENCH_ROWS not set");
    int64_t n = strtoll(env, NULL, 10);
    char url[600], err[512];
    const char *keep = getenv("DBSRC_BENCH_FILE"); /* reuse a generated file */
    if (keep != NULL && access(keep, R_OK) == 0) {
        snprintf(url, sizeof(url), "sqlite:///%s", keep);
        goto read;
    }
    sqlite3 *db = make_current(url, sizeof(url));

    sq_exec(db, "PRAGMA synchronous = OFF");
    sq_exec(db, "BEGIN");
    for (int u = 0; u < 1000; u++) {
        char id[40], email[40];
        snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012d", u);
        snprintf(email, sizeof(email), "u%d@example.org", u);
        sq_user(db, id, email);
    }
    sq_exec(db, "DROP INDEX todos_user_created; DROP INDEX todos_user_updated;"
                "DROP INDEX todos_user_title; DROP INDEX todos_user_completed");
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO todos VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                                        "?7, 1)", -1, &st, NULL), SQLITE_OK);
    for (int64_t i = 0; i < n; i++) {
        char id[48], user[40], ts[TIMEFMT_LEN + 1], title[64];
        snprintf(id, sizeof(id), "01900000-0000-7000-8000-%012lld", (long long)i);
        snprintf(user, sizeof(user), "00000000-0000-7000-8000-%012d", (int)(i % 1000));
        snprintf(title, sizeof(title), "Todo number %lld", (long long)i);
        timefmt_format(1700000000000 + i * 1000, ts);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, user, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, title, -1, SQLITE_TRANSIENT);
        if (i % 2)
            sqlite3_bind_text(st, 4, "Some description of moderate length", -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 4);
        sqlite3_bind_int(st, 5, (int)(i % 2));
        if (i % 2)
            sqlite3_bind_text(st, 6, ts, -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_null(st, 6);
        sqlite3_bind_text(st, 7, ts, -1, SQLITE_TRANSIENT);
        cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sq_exec(db, "COMMIT");
    /* The migration's indexes, built after the load (faster). */
    sq_exec(db, "CREATE INDEX todos_user_created ON todos (user_id, created_at, id);"
                "CREATE INDEX todos_user_updated ON todos (user_id, updated_at, id);"
                "CREATE INDEX todos_user_title ON todos (user_id, title, id);"
                "CREATE INDEX todos_user_completed ON todos (user_id, completed)");
    sqlite3_close(db);
    if (keep != NULL) {
        rename(url + strlen("sqlite:///"), keep);
        snprintf(url, sizeof(url), "sqlite:///%s", keep);
    }
read:;
    const char *pgurl = getenv("DATABASE_URL");
    bool pg = pgurl != NULL && strncmp(pgurl, "postgres", 8) == 0;
    if (getenv("DBSRC_BENCH_PGURL") != NULL) { /* a database filled before */
        pgurl = getenv("DBSRC_BENCH_PGURL");
        pg = true;
    } else if (pg) { /* the same rows into PostgreSQL, by the server itself */
        pgurl = pg_fresh_db();
        PGconn *c = pg_conn(pgurl);
        char sql[1024];
        pg_ok(c, "INSERT INTO users SELECT ('00000000-0000-7000-8000-' || lpad(u::text, 12, "
                 "'0'))::uuid, 'u' || u || '@example.org', 'hash', NULL, true, now(), now() "
                 "FROM generate_series(0, 999) u");
        snprintf(sql, sizeof(sql),
                 "INSERT INTO todos SELECT ('01900000-0000-7000-8000-' || lpad(i::text, 12, "
                 "'0'))::uuid, ('00000000-0000-7000-8000-' || lpad((i %% 1000)::text, 12, "
                 "'0'))::uuid, 'Todo number ' || i, CASE WHEN i %% 2 = 1 THEN 'Some "
                 "description of moderate length' END, i %% 2 = 1, CASE WHEN i %% 2 = 1 THEN "
                 "to_timestamp(1700000000 + i) END, to_timestamp(1700000000 + i), "
                 "to_timestamp(1700000000 + i), 1 FROM generate_series(0, %lld) i",
                 (long long)n - 1);
        pg_ok(c, sql);
        pg_ok(c, "VACUUM ANALYZE todos");
        PQfinish(c);
    }

    for (int k = 0; k < (pg ? 2 : 1); k++) {
        const char *u = k == 0 ? url : pgurl;
        for (int ordered = 0; ordered < 2; ordered++) {
            struct dbsrc *s = open_ok(u, DBSRC_LAYOUT_AUTO);
            int64_t rows = 0;
            double t0 = now_s(), c0 = cpu_s();
            cr_assert_eq(dbsrc_scan(s, dbrow_table("todos"), NULL, NULL,
                                    ordered ? 0 : DBSRC_SCAN_ANY_ORDER, count_row, NULL, &rows,
                                    err, sizeof(err)), 0, "%s", err);
            double dt = now_s() - t0, dc = cpu_s() - c0;
            cr_expect_eq(rows, n);
            fprintf(stderr,
                    "dbsrc bench: %-8s %-9s %lld todos in %.3f s (%.3f s CPU here) = %.0f "
                    "rows/s\n",
                    dbsrc_dialect(s), ordered ? "ordered" : "any order", (long long)rows, dt, dc,
                    (double)rows / dt);
            dbsrc_close(s);
        }
        struct dbsrc *s = open_ok(u, DBSRC_LAYOUT_AUTO);
        unsigned char md[16];
        int64_t rows = 0;
        double t0 = now_s(), c0 = cpu_s();
        digest_of(s, "todos", NULL, NULL, md, &rows);
        fprintf(stderr, "dbsrc bench: %-8s digest    %lld todos in %.3f s (%.3f s CPU here)\n",
                dbsrc_dialect(s), (long long)rows, now_s() - t0, cpu_s() - c0);
        /* As verify digests: ranges of 10,000 keys. */
        int64_t total = 0;
        t0 = now_s();
        c0 = cpu_s();
        for (int64_t lo = -1; lo < n - 1; lo += 10000) {
            char blo[48], bhi[48];
            snprintf(blo, sizeof(blo), "01900000-0000-7000-8000-%012lld", (long long)lo);
            snprintf(bhi, sizeof(bhi), "01900000-0000-7000-8000-%012lld", (long long)lo + 10000);
            digest_of(s, "todos", lo < 0 ? NULL : blo, lo + 10000 >= n - 1 ? NULL : bhi, md,
                      &rows);
            total += rows;
        }
        cr_expect_eq(total, n);
        fprintf(stderr,
                "dbsrc bench: %-8s digests of 10,000-key ranges: %lld todos in %.3f s (%.3f s "
                "CPU here)\n",
                dbsrc_dialect(s), (long long)total, now_s() - t0, cpu_s() - c0);
        /* As verify digests now: the same ranges as buckets, in one pass. */
        size_t nb = n > 1 ? (size_t)((n - 2) / 10000) + 1 : 0;
        char (*bk)[48] = xcalloc(nb + 1, sizeof(*bk));
        const char **bp = xcalloc(nb + 1, sizeof(*bp));
        unsigned char(*bmd)[16] = xcalloc(nb + 1, sizeof(*bmd));
        int64_t *brows = xcalloc(nb + 1, sizeof(*brows));
        for (size_t i = 0; i < nb; i++) {
            snprintf(bk[i], sizeof(bk[i]), "01900000-0000-7000-8000-%012lld",
                     (long long)(i * 10000 + 9999));
            bp[i] = bk[i];
        }
        t0 = now_s();
        c0 = cpu_s();
        cr_assert_eq(dbsrc_digest_buckets(s, dbrow_table("todos"), bp, nb, bmd, brows, err,
                                          sizeof(err)), 0, "%s", err);
        total = 0;
        for (size_t i = 0; i <= nb; i++)
            total += brows[i];
        cr_expect_eq(total, n);
        fprintf(stderr,
                "dbsrc bench: %-8s bucket digests (%zu buckets, one pass): %lld todos in %.3f s "
                "(%.3f s CPU here)\n",
                dbsrc_dialect(s), nb + 1, (long long)total, now_s() - t0, cpu_s() - c0);
        free(bk);
        free(bp);
        free(bmd);
        free(brows);
        dbsrc_close(s);
    }
}
