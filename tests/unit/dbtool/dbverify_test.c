/*
 * dbtool/dbverify on real databases: SQLite files under TEST_TMPDIR, and
 * PostgreSQL databases of the tests' own (CREATE DATABASE on
 * WITH_PG_CLUSTER_URL, else DATABASE_URL) when DATABASE_URL names a
 * PostgreSQL server (scripts/with-pg -- build/tests/unit_dbtool); the
 * PostgreSQL tests skip otherwise.
 *
 * Both sides are filled independently from one generated data set (not by
 * `todo db copy`), then the target is changed by hand with SQL, and the
 * report must name exactly those rows, in key order, with the differing
 * columns. Small chunk_rows / leaf_rows make the bisection run on a few
 * hundred rows.
 */
#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "dbtool/dbverify.h"
#include "migrate/mdb.h"
#include "model/timefmt.h"
#include "util/buf.h"

#define BASE_MS 1763709226123LL /* 2025-11-21T07:13:46.123Z */
#define ID_LOW "00000000-0000-4000-8000-000000000001"
#define ID_HIGH "ffffffff-ffff-4fff-bfff-fffffffffffe"

/* ---- databases ---------------------------------------------------------- */

struct tdb {
    bool pg;
    char url[1024];
    char path[700]; /* SQLite */
    char name[64];  /* PostgreSQL database */
};

static bool pg_available(void)
{
    const char *u = getenv("DATABASE_URL");
    return u != NULL && strncmp(u, "postgres", 8) == 0;
}

static void need_pg(void)
{
    if (!pg_available())
        cr_skip_test("PostgreSQL only (DATABASE_URL is not postgres; run under scripts/with-pg)");
}

/* `base` with its database name replaced by `name`. */
static void pg_url_with_db(const char *base, const char *name, char *out, size_t len)
{
    const char *scheme = strstr(base, "://");
    cr_assert_not_null(scheme);
    const char *slash = strchr(scheme + 3, '/');
    const char *query = strchr(scheme + 3, '?');
    if (slash != NULL && query != NULL && query < slash)
        slash = query;
    int head = slash != NULL ? (int)(slash - base) : (int)strlen(base);
    snprintf(out, len, "%.*s/%s%s", head, base, name, query != NULL ? query : "");
}

static void pg_exec(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%.200s: %s", sql,
              PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static const char *pg_admin_url(void)
{
    const char *c = getenv("WITH_PG_CLUSTER_URL");
    return c != NULL && c[0] != '\0' ? c : getenv("DATABASE_URL");
}

/* A new empty database; `migrate` brings it to the head schema. */
static void tdb_new(struct tdb *d, bool pg, bool migrate)
{
    static int seq;
    memset(d, 0, sizeof(*d));
    d->pg = pg;
    if (pg) {
        char sql[128];
        snprintf(d->name, sizeof(d->name), "dbverify_%d_%d", (int)getpid(), seq++);
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", d->name);
        pg_exec(pg_admin_url(), sql);
        pg_url_with_db(pg_admin_url(), d->name, d->url, sizeof(d->url));
    } else {
        const char *tmp = getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp";
        char *abs = realpath(tmp, NULL);
        cr_assert_not_null(abs, "TEST_TMPDIR %s", tmp);
        snprintf(d->path, sizeof(d->path), "%s/dbverify-%d-%d.db", abs, (int)getpid(), seq++);
        free(abs);
        unlink(d->path);
        snprintf(d->url, sizeof(d->url), "sqlite:///%s", d->path);
    }
    if (migrate) {
        char err[512] = "";
        cr_assert_geq(mdb_up_embedded(d->url, 10, err, sizeof(err)), 0, "migrate: %s", err);
    }
}

/* DATABASE_URL's own database, at the head schema and emptied (so that a
 * run under scripts/with-pg leaves schema_migrations there, as it checks). */
static void tdb_shared_pg(struct tdb *d)
{
    char err[512] = "";
    memset(d, 0, sizeof(*d));
    d->pg = true;
    snprintf(d->url, sizeof(d->url), "%s", getenv("DATABASE_URL"));
    cr_assert_geq(mdb_up_embedded(d->url, 10, err, sizeof(err)), 0, "migrate: %s", err);
    pg_exec(d->url, "TRUNCATE users, todos");
}

static void tdb_drop(struct tdb *d)
{
    if (d->pg && d->name[0] == '\0') {
        pg_exec(d->url, "TRUNCATE users, todos");
        return;
    }
    if (d->pg) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", d->name);
        pg_exec(pg_admin_url(), sql);
        return;
    }
    char p[800];
    unlink(d->path);
    snprintf(p, sizeof(p), "%s-wal", d->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", d->path);
    unlink(p);
}

static void tdb_exec(const struct tdb *d, const char *sql)
{
    if (d->pg) {
        pg_exec(d->url, sql);
        return;
    }
    sqlite3 *db = NULL;
    char *msg = NULL;
    cr_assert_eq(sqlite3_open(d->path, &db), SQLITE_OK);
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%.200s: %s", sql, msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
}

static void tdb_execf(const struct tdb *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void tdb_execf(const struct tdb *d, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    tdb_exec(d, sql);
}

/* ---- a generated data set ------------------------------------------------- */

struct tuser {
    char id[37];
    char email[64], hash[96], name[64];
    bool has_name, active;
    int64_t created, updated;
};

struct ttodo {
    char id[37], user_id[37];
    char title[64], desc[64];
    bool has_desc, completed;
    int64_t completed_at; /* < 0: NULL */
    int64_t created, updated;
    int version;
};

struct tdata {
    struct tuser *u;
    size_t nu;
    struct ttodo *t;
    size_t nt;
};

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A random-looking canonical (version 4) uuid; the order of generation is
 * not the key order. */
static void gen_uuid(uint64_t *state, char out[37])
{
    uint64_t a = splitmix(state), b = splitmix(state);
    snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)((a >> 16) & 0xffff), (unsigned)(a & 0xfff),
             (unsigned)(0x8000 | ((b >> 48) & 0x3fff)),
             (unsigned long long)(b & 0xffffffffffffULL));
}

static void gen_user(struct tuser *u, uint64_t *state, size_t i)
{
    memset(u, 0, sizeof(*u));
    gen_uuid(state, u->id);
    snprintf(u->email, sizeof(u->email), "user%zu@example.com", i);
    snprintf(u->hash, sizeof(u->hash), "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$hash%zu", i);
    u->has_name = i % 3 != 0;
    snprintf(u->name, sizeof(u->name), "Nàme %zu", i);
    u->active = i % 5 != 0;
    u->created = BASE_MS + (int64_t)i * 1000;
    u->updated = u->created + 500;
}

static void gen_todo(struct ttodo *t, uint64_t *state, size_t j, const struct tuser *u)
{
    memset(t, 0, sizeof(*t));
    gen_uuid(state, t->id);
    memcpy(t->user_id, u->id, sizeof(t->user_id));
    snprintf(t->title, sizeof(t->title), "Todo %zu — ünïcode", j);
    t->has_desc = j % 4 != 0;
    snprintf(t->desc, sizeof(t->desc), "description of %zu", j);
    t->completed = j % 2 == 1;
    t->completed_at = t->completed ? BASE_MS + (int64_t)j * 7 + 3 : -1;
    t->created = BASE_MS + (int64_t)j * 1001;
    t->updated = t->created + (int64_t)(j % 13);
    t->version = 1 + (int)(j % 3);
}

static struct tdata gen_data(uint64_t seed, size_t nu, size_t nt)
{
    struct tdata d = {.nu = nu, .nt = nt};
    d.u = calloc(nu ? nu : 1, sizeof(*d.u));
    d.t = calloc(nt ? nt : 1, sizeof(*d.t));
    for (size_t i = 0; i < nu; i++)
        gen_user(&d.u[i], &seed, i);
    for (size_t j = 0; j < nt; j++)
        gen_todo(&d.t[j], &seed, j, &d.u[j % nu]);
    return d;
}

static void free_data(struct tdata *d)
{
    free(d->u);
    free(d->t);
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct ttodo *)a)->id, ((const struct ttodo *)b)->id);
}

/* The todos sorted by id (a copy). */
static struct ttodo *sorted_todos(const struct tdata *d)
{
    struct ttodo *s = malloc((d->nt ? d->nt : 1) * sizeof(*s));
    memcpy(s, d->t, d->nt * sizeof(*s));
    qsort(s, d->nt, sizeof(*s), by_id);
    return s;
}

static const char *lit_bool(const struct tdb *d, bool b)
{
    if (d->pg)
        return b ? "true" : "false";
    return b ? "1" : "0";
}

static void lit_ts(struct buf *b, int64_t ms)
{
    char ts[TIMEFMT_LEN + 1];
    timefmt_format(ms, ts);
    buf_printf(b, "'%s'", ts);
}

static void sql_user(struct buf *b, const struct tdb *d, const struct tuser *u)
{
    buf_printf(b, "INSERT INTO users VALUES ('%s', '%s', '%s', ", u->id, u->email, u->hash);
    if (u->has_name)
        buf_printf(b, "'%s', ", u->name);
    else
        buf_append_str(b, "NULL, ");
    buf_printf(b, "%s, ", lit_bool(d, u->active));
    lit_ts(b, u->created);
    buf_append_str(b, ", ");
    lit_ts(b, u->updated);
    buf_append_str(b, ");\n");
}

static void sql_todo(struct buf *b, const struct tdb *d, const struct ttodo *t)
{
    buf_printf(b, "INSERT INTO todos VALUES ('%s', '%s', '%s', ", t->id, t->user_id, t->title);
    if (t->has_desc)
        buf_printf(b, "'%s', ", t->desc);
    else
        buf_append_str(b, "NULL, ");
    buf_printf(b, "%s, ", lit_bool(d, t->completed));
    if (t->completed_at >= 0)
        lit_ts(b, t->completed_at);
    else
        buf_append_str(b, "NULL");
    buf_append_str(b, ", ");
    lit_ts(b, t->created);
    buf_append_str(b, ", ");
    lit_ts(b, t->updated);
    buf_printf(b, ", %d);\n", t->version);
}

static void tdb_load(const struct tdb *d, const struct tdata *data)
{
    struct buf b;
    buf_init(&b, SIZE_MAX);
    buf_append_str(&b, "BEGIN;\n");
    for (size_t i = 0; i < data->nu; i++)
        sql_user(&b, d, &data->u[i]);
    for (size_t j = 0; j < data->nt; j++)
        sql_todo(&b, d, &data->t[j]);
    buf_append_str(&b, "COMMIT;\n");
    tdb_exec(d, b.data);
    buf_free(&b);
}

static void tdb_add_todo(const struct tdb *d, const struct ttodo *t)
{
    struct buf b;
    buf_init(&b, SIZE_MAX);
    sql_todo(&b, d, t);
    tdb_exec(d, b.data);
    buf_free(&b);
}

/* A todo for `user` with key `id` (an EXTRA row on a target). */
static struct ttodo extra_todo(const char *id, const struct tuser *user)
{
    struct ttodo t;
    uint64_t st = 42;
    gen_todo(&t, &st, 99999, user);
    snprintf(t.id, sizeof(t.id), "%s", id);
    return t;
}

/* A key just above `id` (its last hex digit + 1; the digit is not 'f'). */
static void key_after(const char *id, char out[37])
{
    memcpy(out, id, 37);
    char *c = &out[35];
    cr_assert_neq(*c, 'f', "pick another key");
    *c = *c == '9' ? 'a' : (char)(*c + 1);
}

/* ---- running and checking ---------------------------------------------------- */

struct expect {
    enum dbverify_kind kind;
    char id[37];
    const char *columns;
};

struct expected {
    struct expect e[64];
    size_t n;
};

static void expect_add(struct expected *x, enum dbverify_kind kind, const char *id,
                       const char *columns)
{
    cr_assert_lt(x->n, sizeof(x->e) / sizeof(x->e[0]));
    x->e[x->n].kind = kind;
    snprintf(x->e[x->n].id, sizeof(x->e[x->n].id), "%s", id);
    x->e[x->n].columns = columns;
    x->n++;
}

static int expect_cmp(const void *a, const void *b)
{
    return strcmp(((const struct expect *)a)->id, ((const struct expect *)b)->id);
}

static int verify(const struct tdb *src, const struct tdb *dst, int64_t chunk, int64_t leaf,
                  size_t max_report, struct dbverify_result *res, char *err, size_t errlen)
{
    struct dbverify_opts o = {.source = src->url, .target = dst->url, .chunk_rows = chunk,
                              .leaf_rows = leaf, .max_report = max_report};
    err[0] = '\0';
    return dbverify_run(&o, res, err, errlen);
}

static const struct dbverify_table *table_of(const struct dbverify_result *res, const char *name)
{
    for (size_t i = 0; i < res->ntables; i++)
        if (strcmp(res->tables[i].table, name) == 0)
            return &res->tables[i];
    cr_assert_fail("no table %s in the result", name);
    return NULL;
}

static const char *kind_name(enum dbverify_kind k)
{
    return k == DBVERIFY_MISSING ? "MISSING" : k == DBVERIFY_EXTRA ? "EXTRA" : "DIFFERENT";
}

/* The report of `table` is exactly `x` (every one named, in key order). */
static void check_table(const struct dbverify_result *res, const char *table,
                        struct expected *x, int64_t source_rows, int64_t target_rows)
{
    const struct dbverify_table *tr = table_of(res, table);
    int64_t n[3] = {0, 0, 0};

    qsort(x->e, x->n, sizeof(x->e[0]), expect_cmp);
    for (size_t i = 0; i < x->n; i++)
        n[x->e[i].kind]++;
    cr_expect_eq(tr->source_rows, source_rows, "%s source rows", table);
    cr_expect_eq(tr->target_rows, target_rows, "%s target rows", table);
    cr_expect_eq(tr->missing, n[DBVERIFY_MISSING], "%s missing", table);
    cr_expect_eq(tr->extra, n[DBVERIFY_EXTRA], "%s extra", table);
    cr_expect_eq(tr->different, n[DBVERIFY_DIFFERENT], "%s different", table);
    cr_assert_eq(tr->ndiffs, x->n, "%s: %zu differences reported, %zu expected", table,
                 tr->ndiffs, x->n);
    for (size_t i = 0; i < x->n; i++) {
        const struct dbverify_diff *d = &tr->diffs[i];
        cr_expect_str_eq(d->id, x->e[i].id, "%s #%zu", table, i);
        cr_expect_eq(d->kind, x->e[i].kind, "%s %s: %s, expected %s", table, d->id,
                     kind_name(d->kind), kind_name(x->e[i].kind));
        if (x->e[i].columns == NULL)
            cr_expect_null(d->columns, "%s %s columns %s", table, d->id, d->columns);
        else
            cr_expect(d->columns != NULL && strcmp(d->columns, x->e[i].columns) == 0,
                      "%s %s: columns \"%s\", expected \"%s\"", table, d->id,
                      d->columns ? d->columns : "(null)", x->e[i].columns);
    }
}

static void expect_identical(const struct tdb *src, const struct tdb *dst, int64_t chunk,
                             int64_t leaf, int64_t users, int64_t todos)
{
    struct dbverify_result res;
    char err[1024];
    int rc = verify(src, dst, chunk, leaf, 0, &res, err, sizeof(err));
    cr_assert_eq(rc, 0, "verify: rc %d: %s", rc, err);
    cr_expect(res.identical);
    cr_assert_eq(res.ntables, 2);
    struct expected none = {.n = 0};
    check_table(&res, "users", &none, users, users);
    check_table(&res, "todos", &none, todos, todos);
    cr_expect_eq(res.source_layout, DBSRC_LAYOUT_CURRENT);
    dbverify_result_free(&res);
}

/* ---- identical ---------------------------------------------------------------- */

static void identical(bool src_pg, bool dst_pg, bool shared_target)
{
    struct tdb s, t;
    struct tdata data = gen_data(1, 20, 150);
    tdb_new(&s, src_pg, true);
    if (shared_target)
        tdb_shared_pg(&t);
    else
        tdb_new(&t, dst_pg, true);
    tdb_load(&s, &data);
    tdb_load(&t, &data);
    expect_identical(&s, &t, 0, 0, 20, 150); /* defaults: one chunk */
    expect_identical(&s, &t, 16, 2, 20, 150);
    expect_identical(&s, &t, 1, 1, 20, 150);
    expect_identical(&t, &s, 7, 3, 20, 150); /* the other way */
    tdb_drop(&s);
    tdb_drop(&t);
    free_data(&data);
}

Test(dbverify, identical_sqlite_sqlite) { identical(false, false, false); }
Test(dbverify, identical_sqlite_pg) { need_pg(); identical(false, true, true); }
Test(dbverify, identical_pg_sqlite) { need_pg(); identical(true, false, false); }
Test(dbverify, identical_pg_pg) { need_pg(); identical(true, true, false); }

Test(dbverify, both_empty)
{
    struct tdb s, t;
    tdb_new(&s, false, true);
    tdb_new(&t, false, true);
    expect_identical(&s, &t, 4, 2, 0, 0);
    tdb_drop(&s);
    tdb_drop(&t);
}

/* ---- one kind of difference at a time ---------------------------------------- */

struct pair {
    struct tdb s, t;
    struct tdata data;
    struct ttodo *sorted;
};

static void pair_new(struct pair *p, bool src_pg, bool dst_pg, size_t nu, size_t nt)
{
    p->data = gen_data(7, nu, nt);
    tdb_new(&p->s, src_pg, true);
    tdb_new(&p->t, dst_pg, true);
    tdb_load(&p->s, &p->data);
    tdb_load(&p->t, &p->data);
    p->sorted = sorted_todos(&p->data);
}

static void pair_free(struct pair *p)
{
    tdb_drop(&p->s);
    tdb_drop(&p->t);
    free(p->sorted);
    free_data(&p->data);
}

/* Run with several chunk/leaf sizes; each must give the same report. */
static void check_sizes(struct pair *p, struct expected *users, struct expected *todos,
                        int64_t tgt_users, int64_t tgt_todos)
{
    static const int64_t sizes[][2] = {{0, 0}, {16, 2}, {7, 1}, {32, 5}, {1000, 1000}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct dbverify_result res;
        char err[1024];
        int rc = verify(&p->s, &p->t, sizes[i][0], sizes[i][1], 0, &res, err, sizeof(err));
        cr_assert_eq(rc, 1, "chunk %lld leaf %lld: rc %d: %s", (long long)sizes[i][0],
                     (long long)sizes[i][1], rc, err);
        cr_expect_not(res.identical);
        check_table(&res, "users", users, (int64_t)p->data.nu, tgt_users);
        check_table(&res, "todos", todos, (int64_t)p->data.nt, tgt_todos);
        dbverify_result_free(&res);
    }
}

Test(dbverify, changed_column_is_different)
{
    struct pair p;
    struct expected u = {.n = 0}, t = {.n = 0};
    pair_new(&p, false, false, 10, 100);
    tdb_execf(&p.t, "UPDATE todos SET title = 'changed' WHERE id = '%s'", p.sorted[37].id);
    expect_add(&t, DBVERIFY_DIFFERENT, p.sorted[37].id, "title");
    check_sizes(&p, &u, &t, 10, 100);
    pair_free(&p);
}

Test(dbverify, deleted_is_missing)
{
    struct pair p;
    struct expected u = {.n = 0}, t = {.n = 0};
    pair_new(&p, false, false, 10, 100);
    tdb_execf(&p.t, "DELETE FROM todos WHERE id = '%s'", p.sorted[0].id);
    tdb_execf(&p.t, "DELETE FROM todos WHERE id = '%s'", p.sorted[63].id);
    tdb_execf(&p.t, "DELETE FROM todos WHERE id = '%s'", p.sorted[99].id);
    expect_add(&t, DBVERIFY_MISSING, p.sorted[0].id, NULL);
    expect_add(&t, DBVERIFY_MISSING, p.sorted[63].id, NULL);
    expect_add(&t, DBVERIFY_MISSING, p.sorted[99].id, NULL);
    check_sizes(&p, &u, &t, 10, 97);
    pair_free(&p);
}

Test(dbverify, added_is_extra)
{
    struct pair p;
    struct expected u = {.n = 0}, t = {.n = 0};
    char mid[37];
    pair_new(&p, false, false, 10, 100);
    key_after(p.sorted[50].id, mid);
    cr_assert_lt(strcmp(mid, p.sorted[51].id), 0);
    const char *ids[] = {ID_LOW, mid, ID_HIGH};
    for (size_t i = 0; i < 3; i++) {
        struct ttodo x = extra_todo(ids[i], &p.data.u[3]);
        tdb_add_todo(&p.t, &x);
        expect_add(&t, DBVERIFY_EXTRA, ids[i], NULL);
    }
    check_sizes(&p, &u, &t, 10, 103);
    pair_free(&p);
}

/* ---- everything at once, in different and in the same ranges ------------------ */

static void mixed(bool src_pg, bool dst_pg)
{
    struct pair p;
    struct expected u = {.n = 0}, t = {.n = 0};
    char near100[37], near150[37];
    pair_new(&p, src_pg, dst_pg, 12, 200);
    const struct tdb *d = &p.t;
    struct ttodo *s = p.sorted;

    /* Changed rows: counts stay equal, the digests differ. */
    tdb_execf(d, "UPDATE todos SET title = 'changed' WHERE id = '%s'", s[5].id);
    expect_add(&t, DBVERIFY_DIFFERENT, s[5].id, "title");
    tdb_execf(d, "UPDATE todos SET completed = %s, completed_at = %s WHERE id = '%s'",
              lit_bool(d, !s[40].completed),
              s[40].completed ? "NULL" : "'2030-01-01T00:00:00.000Z'", s[40].id);
    expect_add(&t, DBVERIFY_DIFFERENT, s[40].id, "completed, completed_at");
    tdb_execf(d, "UPDATE todos SET description = %s WHERE id = '%s'",
              s[41].has_desc ? "NULL" : "'now described'", s[41].id);
    expect_add(&t, DBVERIFY_DIFFERENT, s[41].id, "description");
    {
        char ts[TIMEFMT_LEN + 1];
        timefmt_format(s[180].updated + 1, ts); /* one millisecond */
        tdb_execf(d, "UPDATE todos SET updated_at = '%s' WHERE id = '%s'", ts, s[180].id);
        expect_add(&t, DBVERIFY_DIFFERENT, s[180].id, "updated_at");
    }
    tdb_execf(d, "UPDATE todos SET version = version + 1, user_id = '%s' WHERE id = '%s'",
              strcmp(s[190].user_id, p.data.u[0].id) == 0 ? p.data.u[1].id : p.data.u[0].id,
              s[190].id);
    expect_add(&t, DBVERIFY_DIFFERENT, s[190].id, "user_id, version");

    /* Deleted. */
    tdb_execf(d, "DELETE FROM todos WHERE id = '%s'", s[70].id);
    expect_add(&t, DBVERIFY_MISSING, s[70].id, NULL);
    /* Deleted and another added in the same range: the counts match. */
    key_after(s[100].id, near100);
    cr_assert_lt(strcmp(near100, s[101].id), 0);
    tdb_execf(d, "DELETE FROM todos WHERE id = '%s'", s[100].id);
    expect_add(&t, DBVERIFY_MISSING, s[100].id, NULL);
    struct ttodo x = extra_todo(near100, &p.data.u[2]);
    tdb_add_todo(d, &x);
    expect_add(&t, DBVERIFY_EXTRA, near100, NULL);
    /* Added: before the first key, in the middle, after the last key. */
    key_after(s[150].id, near150);
    cr_assert_lt(strcmp(near150, s[151].id), 0);
    const char *ids[] = {ID_LOW, near150, ID_HIGH};
    for (size_t i = 0; i < 3; i++) {
        struct ttodo e = extra_todo(ids[i], &p.data.u[4]);
        tdb_add_todo(d, &e);
        expect_add(&t, DBVERIFY_EXTRA, ids[i], NULL);
    }

    /* Users: two changed, one added. */
    tdb_execf(d, "UPDATE users SET email = 'other@example.com' WHERE id = '%s'", p.data.u[3].id);
    expect_add(&u, DBVERIFY_DIFFERENT, p.data.u[3].id, "email");
    tdb_execf(d, "UPDATE users SET is_active = %s, name = 'Renamed', "
                 "updated_at = '2031-02-03T04:05:06.789Z' WHERE id = '%s'",
              lit_bool(d, !p.data.u[6].active), p.data.u[6].id);
    expect_add(&u, DBVERIFY_DIFFERENT, p.data.u[6].id, "name, is_active, updated_at");
    struct tuser nu;
    uint64_t st = 99;
    gen_user(&nu, &st, 1000);
    struct buf b;
    buf_init(&b, SIZE_MAX);
    sql_user(&b, d, &nu);
    tdb_exec(d, b.data);
    buf_free(&b);
    expect_add(&u, DBVERIFY_EXTRA, nu.id, NULL);

    check_sizes(&p, &u, &t, 13, 200 - 2 + 1 + 3);
    pair_free(&p);
}

Test(dbverify, mixed_sqlite_sqlite) { mixed(false, false); }
Test(dbverify, mixed_sqlite_pg) { need_pg(); mixed(false, true); }
Test(dbverify, mixed_pg_sqlite) { need_pg(); mixed(true, false); }
Test(dbverify, mixed_pg_pg) { need_pg(); mixed(true, true); }

/* ---- ranges where one side is empty or much larger ------------------------------ */

static void empty_target(bool src_pg, bool dst_pg)
{
    struct tdb s, t;
    struct tdata data = gen_data(3, 5, 40);
    struct expected u = {.n = 0}, x = {.n = 0};
    tdb_new(&s, src_pg, true);
    tdb_new(&t, dst_pg, true);
    tdb_load(&s, &data);
    for (size_t i = 0; i < data.nu; i++)
        expect_add(&u, DBVERIFY_MISSING, data.u[i].id, NULL);
    for (size_t j = 0; j < data.nt; j++)
        expect_add(&x, DBVERIFY_MISSING, data.t[j].id, NULL);
    struct dbverify_result res;
    char err[1024];
    cr_assert_eq(verify(&s, &t, 16, 4, 1000, &res, err, sizeof(err)), 1, "%s", err);
    check_table(&res, "users", &u, 5, 0);
    check_table(&res, "todos", &x, 40, 0);
    dbverify_result_free(&res);
    /* The other way round every row is extra. */
    for (size_t i = 0; i < u.n; i++)
        u.e[i].kind = DBVERIFY_EXTRA;
    for (size_t i = 0; i < x.n; i++)
        x.e[i].kind = DBVERIFY_EXTRA;
    cr_assert_eq(verify(&t, &s, 16, 4, 1000, &res, err, sizeof(err)), 1, "%s", err);
    check_table(&res, "users", &u, 0, 5);
    check_table(&res, "todos", &x, 0, 40);
    dbverify_result_free(&res);
    tdb_drop(&s);
    tdb_drop(&t);
    free_data(&data);
}

Test(dbverify, empty_side_sqlite) { empty_target(false, false); }
Test(dbverify, empty_side_pg) { need_pg(); empty_target(false, true); }

/* A source whose key count is an exact multiple of chunk_rows, and a target
 * with many rows before the first and after the last source key. */
Test(dbverify, many_extra_outside_the_source_keys)
{
    struct pair p;
    struct expected u = {.n = 0}, t = {.n = 0};
    pair_new(&p, false, false, 4, 48);
    struct buf b;
    buf_init(&b, SIZE_MAX);
    buf_append_str(&b, "BEGIN;\n");
    for (int i = 0; i < 30; i++) {
        char lo[37], hi[37];
        snprintf(lo, sizeof(lo), "00000000-0000-4000-8000-%012d", i + 1);
        snprintf(hi, sizeof(hi), "ffffffff-ffff-4fff-bfff-%012d", i + 1);
        struct ttodo a = extra_todo(lo, &p.data.u[1]), z = extra_todo(hi, &p.data.u[2]);
        sql_todo(&b, &p.t, &a);
        sql_todo(&b, &p.t, &z);
        expect_add(&t, DBVERIFY_EXTRA, lo, NULL);
        expect_add(&t, DBVERIFY_EXTRA, hi, NULL);
    }
    buf_append_str(&b, "COMMIT;\n");
    tdb_exec(&p.t, b.data);
    buf_free(&b);
    static const int64_t sizes[][2] = {{16, 4}, {48, 2}, {12, 1}, {0, 0}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct dbverify_result res;
        char err[1024];
        int rc = verify(&p.s, &p.t, sizes[i][0], sizes[i][1], 0, &res, err, sizeof(err));
        cr_assert_eq(rc, 1, "rc %d: %s", rc, err);
        check_table(&res, "users", &u, 4, 4);
        check_table(&res, "todos", &t, 48, 108);
        dbverify_result_free(&res);
    }
    pair_free(&p);
}

/* ---- differences at bucket bounds -------------------------------------------------- */

/* 100 source todos cut every 10 keys: the bounds are sorted[9], [19], ...,
 * [99] (the last bucket, after [99], holds no source key). Differences on
 * a bound, just after one, just before one, and in the last bucket are
 * each found, whatever the leaf size. */
static void on_bounds(bool src_pg, bool dst_pg)
{
    struct pair p;
    struct expected u = {.n = 0}, t = {.n = 0};
    char after29[37];
    pair_new(&p, src_pg, dst_pg, 6, 100);
    struct ttodo *s = p.sorted;

    tdb_execf(&p.t, "UPDATE todos SET version = version + 1 WHERE id = '%s'", s[9].id);
    expect_add(&t, DBVERIFY_DIFFERENT, s[9].id, "version");
    tdb_execf(&p.t, "DELETE FROM todos WHERE id IN ('%s', '%s', '%s')", s[19].id, s[20].id,
              s[38].id);
    expect_add(&t, DBVERIFY_MISSING, s[19].id, NULL);
    expect_add(&t, DBVERIFY_MISSING, s[20].id, NULL);
    expect_add(&t, DBVERIFY_MISSING, s[38].id, NULL);
    key_after(s[29].id, after29);
    cr_assert_lt(strcmp(after29, s[30].id), 0);
    tdb_execf(&p.t, "UPDATE todos SET title = 'last' WHERE id = '%s'", s[99].id);
    expect_add(&t, DBVERIFY_DIFFERENT, s[99].id, "title");
    const char *ids[] = {after29, ID_HIGH};
    for (size_t i = 0; i < 2; i++) {
        struct ttodo x = extra_todo(ids[i], &p.data.u[2]);
        tdb_add_todo(&p.t, &x);
        expect_add(&t, DBVERIFY_EXTRA, ids[i], NULL);
    }
    static const int64_t sizes[][2] = {{10, 1}, {10, 3}, {10, 64}, {20, 2}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct dbverify_result res;
        char err[1024];
        int rc = verify(&p.s, &p.t, sizes[i][0], sizes[i][1], 0, &res, err, sizeof(err));
        cr_assert_eq(rc, 1, "chunk %lld leaf %lld: rc %d: %s", (long long)sizes[i][0],
                     (long long)sizes[i][1], rc, err);
        check_table(&res, "users", &u, 6, 6);
        check_table(&res, "todos", &t, 100, 99);
        dbverify_result_free(&res);
    }
    pair_free(&p);
}

Test(dbverify, differences_on_bucket_bounds_sqlite) { on_bounds(false, false); }
Test(dbverify, differences_on_bucket_bounds_sqlite_pg) { need_pg(); on_bounds(false, true); }
Test(dbverify, differences_on_bucket_bounds_pg_sqlite) { need_pg(); on_bounds(true, false); }

/* ---- the report's limit ---------------------------------------------------------- */

Test(dbverify, beyond_max_report_counted)
{
    struct pair p;
    pair_new(&p, false, false, 6, 120);
    for (size_t i = 0; i < 25; i++)
        tdb_execf(&p.t, "DELETE FROM todos WHERE id = '%s'", p.sorted[i * 4 + 1].id);
    for (size_t i = 0; i < 7; i++)
        tdb_execf(&p.t, "UPDATE todos SET title = 'x' WHERE id = '%s'", p.sorted[i * 4 + 2].id);
    struct dbverify_result res;
    char err[1024];
    cr_assert_eq(verify(&p.s, &p.t, 16, 2, 10, &res, err, sizeof(err)), 1, "%s", err);
    const struct dbverify_table *tr = table_of(&res, "todos");
    cr_expect_eq(tr->missing, 25);
    cr_expect_eq(tr->different, 7);
    cr_expect_eq(tr->extra, 0);
    cr_assert_eq(tr->ndiffs, 10);
    /* The first ten in key order: sorted[1] missing, [2] different, [5], [6], ... */
    for (size_t k = 0; k < 10; k++) {
        size_t pos = (k / 2) * 4 + 1 + k % 2;
        cr_expect_str_eq(tr->diffs[k].id, p.sorted[pos].id, "#%zu", k);
        cr_expect_eq(tr->diffs[k].kind, k % 2 ? DBVERIFY_DIFFERENT : DBVERIFY_MISSING);
    }
    cr_expect_eq(table_of(&res, "users")->ndiffs, 0);
    dbverify_result_free(&res);
    pair_free(&p);
}

/* ---- the legacy layout as a source ----------------------------------------------- */

/* 32 hex digits from a canonical uuid (upper-case when `upper`). */
static void hex32(const char *id, bool upper, char out[33])
{
    size_t n = 0;
    for (const char *c = id; *c; c++)
        if (*c != '-')
            out[n++] = upper ? (char)(*c >= 'a' ? *c - 32 : *c) : *c;
    out[n] = '\0';
}

/* "YYYY-MM-DD HH:MM:SS.mmm000", naive, `offset_ms` added to UTC. */
static void naive_ts(int64_t ms, int64_t offset_ms, char out[32])
{
    char ts[TIMEFMT_LEN + 1];
    timefmt_format(ms + offset_ms, ts);
    snprintf(out, 32, "%.10s %.12s000", ts, ts + 11);
}

/* The Python app's SQLite file holding `data` (naive times in a zone
 * `offset_ms` ahead of UTC); upper-case emails; NULL updated_at on every
 * third row where the data has updated = created. */
static void legacy_db(struct tdb *d, struct tdata *data, int64_t offset_ms)
{
    struct buf b;
    char c[32], u[32], ca[32], id[33], uid[33];
    tdb_new(d, false, false);
    buf_init(&b, SIZE_MAX);
    buf_append_str(&b,
                   "BEGIN;\n"
                   "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);\n"
                   "INSERT INTO alembic_version VALUES ('a1b2c3d4e5f6');\n"
                   "CREATE TABLE users (id CHAR(32) NOT NULL PRIMARY KEY, email VARCHAR NOT NULL,"
                   " password_hash VARCHAR NOT NULL, name VARCHAR, created_at DATETIME NOT NULL,"
                   " updated_at DATETIME, is_active BOOLEAN NOT NULL);\n"
                   "CREATE UNIQUE INDEX ix_users_email ON users (email);\n"
                   "CREATE TABLE tasks (id CHAR(32) NOT NULL PRIMARY KEY, user_id CHAR(32) NOT "
                   "NULL REFERENCES users (id), title VARCHAR NOT NULL, description TEXT,"
                   " completed BOOLEAN NOT NULL, completed_at DATETIME, created_at DATETIME NOT"
                   " NULL, updated_at DATETIME);\n");
    for (size_t i = 0; i < data->nu; i++) {
        struct tuser *x = &data->u[i];
        char email[64];
        snprintf(email, sizeof(email), "%s", x->email);
        email[0] = 'U'; /* "User3@example.com": lower-cased on import */
        if (i % 3 == 0)
            x->updated = x->created;
        naive_ts(x->created, offset_ms, c);
        naive_ts(x->updated, offset_ms, u);
        hex32(x->id, false, id);
        buf_printf(&b, "INSERT INTO users VALUES ('%s', '%s', '%s', %s%s%s, '%s', ", id, email,
                   x->hash, x->has_name ? "'" : "", x->has_name ? x->name : "NULL",
                   x->has_name ? "'" : "", c);
        if (i % 3 == 0)
            buf_append_str(&b, "NULL");
        else
            buf_printf(&b, "'%s'", u);
        buf_printf(&b, ", %d);\n", x->active ? 1 : 0);
    }
    for (size_t j = 0; j < data->nt; j++) {
        struct ttodo *x = &data->t[j];
        x->version = 1;
        if (j % 3 == 0)
            x->updated = x->created;
        naive_ts(x->created, offset_ms, c);
        naive_ts(x->updated, offset_ms, u);
        hex32(x->id, false, id);
        hex32(x->user_id, false, uid);
        buf_printf(&b, "INSERT INTO tasks VALUES ('%s', '%s', '%s', ", id, uid, x->title);
        if (x->has_desc)
            buf_printf(&b, "'%s', ", x->desc);
        else
            buf_append_str(&b, "NULL, ");
        buf_printf(&b, "%d, ", x->completed ? 1 : 0);
        if (x->completed_at >= 0) {
            naive_ts(x->completed_at, offset_ms, ca);
            buf_printf(&b, "'%s', ", ca);
        } else {
            buf_append_str(&b, "NULL, ");
        }
        buf_printf(&b, "'%s', ", c);
        if (j % 3 == 0)
            buf_append_str(&b, "NULL");
        else
            buf_printf(&b, "'%s'", u);
        buf_append_str(&b, ");\n");
    }
    buf_append_str(&b, "COMMIT;\n");
    tdb_exec(d, b.data);
    buf_free(&b);
}

static void legacy(bool dst_pg)
{
    struct tdb s, t;
    struct tdata data = gen_data(11, 9, 90);
    legacy_db(&s, &data, 0);
    tdb_new(&t, dst_pg, true);
    tdb_load(&t, &data); /* the current form of the same rows */

    struct dbverify_result res;
    char err[1024];
    int rc = verify(&s, &t, 16, 2, 0, &res, err, sizeof(err));
    cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
    cr_expect_eq(res.source_layout, DBSRC_LAYOUT_LEGACY);
    dbverify_result_free(&res);

    struct ttodo *sorted = sorted_todos(&data);
    struct expected u = {.n = 0}, x = {.n = 0};
    tdb_execf(&t, "UPDATE todos SET version = 2 WHERE id = '%s'", sorted[17].id);
    expect_add(&x, DBVERIFY_DIFFERENT, sorted[17].id, "version");
    tdb_execf(&t, "DELETE FROM todos WHERE id = '%s'", sorted[60].id);
    expect_add(&x, DBVERIFY_MISSING, sorted[60].id, NULL);
    tdb_execf(&t, "UPDATE users SET email = 'User1@example.com' WHERE id = '%s'",
              data.u[1].id);
    expect_add(&u, DBVERIFY_DIFFERENT, data.u[1].id, "email");
    rc = verify(&s, &t, 16, 2, 0, &res, err, sizeof(err));
    cr_assert_eq(rc, 1, "rc %d: %s", rc, err);
    check_table(&res, "users", &u, 9, 9);
    check_table(&res, "todos", &x, 90, 89);
    dbverify_result_free(&res);
    free(sorted);
    tdb_drop(&s);
    tdb_drop(&t);
    free_data(&data);
}

Test(dbverify, legacy_source_sqlite) { legacy(false); }
Test(dbverify, legacy_source_pg) { need_pg(); legacy(true); }

/* Naive legacy times in the source's zone compare equal to their UTC
 * values; without the zone they differ. */
Test(dbverify, legacy_source_timezone)
{
    struct tdb s, t;
    struct tdata data = gen_data(12, 3, 20);
    legacy_db(&s, &data, 2 * 3600 * 1000);
    tdb_new(&t, false, true);
    tdb_load(&t, &data);
    struct dbverify_opts o = {.source = s.url, .target = t.url, .chunk_rows = 8,
                              .leaf_rows = 2, .source_timezone = "+02:00"};
    struct dbverify_result res;
    char err[1024] = "";
    int rc = dbverify_run(&o, &res, err, sizeof(err));
    cr_expect_eq(rc, 0, "rc %d: %s", rc, err);
    dbverify_result_free(&res);
    o.source_timezone = NULL;
    rc = dbverify_run(&o, &res, err, sizeof(err));
    cr_expect_eq(rc, 1, "rc %d: %s", rc, err);
    cr_expect_eq(table_of(&res, "todos")->different, 20);
    cr_expect_eq(table_of(&res, "users")->different, 3);
    dbverify_result_free(&res);
    tdb_drop(&s);
    tdb_drop(&t);
    free_data(&data);
}

/* ---- errors ------------------------------------------------------------------------ */

Test(dbverify, unconvertible_source_row_is_an_error)
{
    struct tdb s, t;
    struct tdata data = gen_data(13, 3, 20);
    char id[33];
    legacy_db(&s, &data, 0);
    tdb_new(&t, false, true);
    tdb_load(&t, &data);
    hex32(data.t[4].id, false, id);
    tdb_execf(&s, "UPDATE tasks SET completed = 'maybe' WHERE id = '%s'", id);
    struct dbverify_result res;
    char err[1024];
    int rc = verify(&s, &t, 8, 2, 0, &res, err, sizeof(err));
    cr_expect_eq(rc, -1, "rc %d", rc);
    cr_expect(strstr(err, id) != NULL, "the key in: %s", err);
    cr_expect(strstr(err, "completed") != NULL, "the column in: %s", err);
    cr_expect(strstr(err, "maybe") != NULL, "the value in: %s", err);
    dbverify_result_free(&res);
    tdb_drop(&s);
    tdb_drop(&t);
    free_data(&data);
}

Test(dbverify, unreachable_target_is_an_error)
{
    struct tdb s;
    tdb_new(&s, false, true);
    struct dbverify_opts o = {.source = s.url, .target = "sqlite:////nonexistent-dir/x.db"};
    struct dbverify_result res;
    char err[1024] = "";
    cr_expect_eq(dbverify_run(&o, &res, err, sizeof(err)), -1);
    cr_expect_neq(err[0], '\0');
    cr_expect_not(res.identical);
    dbverify_result_free(&res);
    tdb_drop(&s);
}
