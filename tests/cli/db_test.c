/*
 * tests/cli/db_test: `todo db copy | verify | backup` driven as a user
 * drives them — the real binary (TODO_BIN), its exit codes, its output and
 * --json — and the databases read back with their own clients (sqlite3,
 * libpq), never with the code under test (tests/cli/cli_support.h).
 *
 * The suite runs twice (tests/meson.build): alone, where every target is a
 * SQLite file (SQLite -> SQLite), and under scripts/with-pg, where targets
 * are fresh PostgreSQL databases (CREATE DATABASE on WITH_PG_CLUSTER_URL)
 * and the round trip goes through DATABASE_URL itself (the `todo` database
 * with-pg checks). Tests that only mean something on PostgreSQL skip
 * themselves without it.
 *
 * Covered (issue 5, "Tests"): the round trip SQLite -> PostgreSQL -> SQLite
 * with verify both ways; the old Python app's legacy layout imported and
 * its users logging in through the API with their bcrypt passwords (and
 * re-hashed to Argon2id); each conversion rule and each rejection, with
 * --on-error=skip --reject-file; kill -9 in the middle of a copy; verify
 * naming rows changed, deleted and added by hand; --dry-run; --truncate;
 * --no-migrate; backup while a writer keeps writing, --force, and the
 * pg_dump hint; --json. Also: one snapshot of a source being written, the
 * copy's memory staying bounded, progress on a terminal, the old app's URL
 * spellings, and that no password is ever printed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "cli_support.h"

/* ---- helpers of this file -------------------------------------------------------- */

/* The object of tables[] whose "table" is `name` in a copy or verify --json. */
static json_t *json_table(json_t *j, const char *name)
{
    json_t *tables = json_object_get(j, "tables");
    size_t i;
    json_t *t;
    cr_assert(json_is_array(tables), "no tables[] in the JSON");
    json_array_foreach(tables, i, t) {
        const char *n = json_string_value(json_object_get(t, "table"));
        if (n != NULL && strcmp(n, name) == 0)
            return t;
    }
    cr_assert_fail("no table '%s' in the JSON tables[]", name);
    return NULL;
}

/* stdout + stderr of a run, for "is it mentioned anywhere" checks. */
static char *both(const struct run *r)
{
    return xfmt("%s\n%s", r->out, r->err);
}

static void expect_same(const char *what, const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return;
    size_t i = 0;
    while (a[i] != '\0' && a[i] == b[i])
        i++;
    size_t from = i > 200 ? i - 200 : 0;
    cr_assert_fail("%s differ at byte %zu:\n--- first:\n%.400s\n--- second:\n%.400s", what, i,
                   a + from, b + from);
}

/* users + todos of d in canonical text. */
static char *canon_all(const struct tdb *d)
{
    char *u = canon_users(d), *t = canon_todos(d);
    char *all = xfmt("USERS\n%sTODOS\n%s", u, t);
    free(u);
    free(t);
    return all;
}

static long long count_rows(const struct tdb *d, const char *table)
{
    char sql[64];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
    return sql_int(d, sql);
}

static void copy_ok(const char *from, const char *to)
{
    EXPECT_RUN(0, "db", "copy", "--from", from, "--to", to);
}

static void verify_expect(const char *source, const char *target, int code)
{
    struct run r = RUN("db", "verify", "--source", source, "--target", target);
    EXPECT_EXIT(r, code);
    if (code == 0)
        EXPECT_IN(r.out, "identical");
    run_free(&r);
}

/* Either form of a legacy key appears in text (stored hex or canonical). */
static void expect_key(const char *text, const char *canon)
{
    char hex[33];
    uuid_hex32(canon, hex);
    cr_assert(strstr(text, hex) != NULL || strstr(text, canon) != NULL,
              "neither %s nor %s in:\n%s", hex, canon, text);
}

/* A fresh uuid, canonical and as the old app stored it (32 hex digits). */
static void new_uuid(char canon[37], char hex[33])
{
    uuid_v4(canon);
    uuid_hex32(canon, hex);
}

/* table.column of row id in d, in canonical text (canon_value), is want;
 * fmt (printf) says what the test stored there. */
__attribute__((format(printf, 6, 7)))
static void expect_value(const struct tdb *d, const char *table, const char *id,
                         const char *column, const char *want, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    char *v = canon_value(d, table, id, column);
    cr_assert_str_eq(v, want, "%s.%s of %s is \"%s\", expected \"%s\" (%s)", table, column, id,
                     v, want, why);
    free(v);
}

/* The counts of tables[] `table` in a copy --json. */
static void expect_copied(json_t *j, const char *table, long long read, long long written,
                          long long rejected)
{
    json_t *t = json_table(j, table);
    cr_assert_eq(jint(t, "read"), read, "%s read", table);
    cr_assert_eq(jint(t, "written"), written, "%s written", table);
    cr_assert_eq(jint(t, "rejected"), rejected, "%s rejected", table);
}

/* users + todos of d are still `before` (canon_all), which is freed. */
static void expect_unchanged(const struct tdb *d, char *before, const char *what)
{
    char *after = canon_all(d);
    expect_same(what, before, after);
    free(after);
    free(before);
}

/* A refused copy left no users in d (which may not exist, or have no
 * tables, when the copy stopped before migrating it). */
static void expect_no_users(const struct tdb *d)
{
    if ((d->pg || file_exists(d->path)) && table_exists(d, "users"))
        cr_assert_eq(count_rows(d, "users"), 0, "users written by a refused copy");
}

/* The usual pair of a test (.init = source_and_target, .fini = pair_done):
 * src, an empty SQLite file; dst, an empty target (PostgreSQL under
 * with-pg, SQLite otherwise). */
static struct tdb src, dst;

static void source_and_target(void)
{
    tdb_sqlite(&src);
    tdb_target(&dst);
}

static void pair_done(void)
{
    tdb_done(&src);
    tdb_done(&dst);
}

#define PAIR .init = source_and_target, .fini = pair_done

/* ---- usage ------------------------------------------------------------------------- */

Test(cli_db, usage_and_help, .timeout = 60)
{
    struct run r = RUN("db");
    EXPECT_EXIT(r, 2);
    run_free(&r);
    r = RUN("db", "--help");
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "copy");
    EXPECT_IN(r.out, "verify");
    EXPECT_IN(r.out, "backup");
    run_free(&r);
    static const char *const subs[] = {"copy", "verify", "backup"};
    for (int i = 0; i < 3; i++) {
        char want[64];
        r = RUN("db", subs[i], "--help");
        EXPECT_EXIT(r, 0);
        snprintf(want, sizeof(want), "Usage: todo db %s", subs[i]);
        EXPECT_IN(r.out, want);
        run_free(&r);
    }
    const char *const bad[][9] = {
        {"db", "bogus"},
        {"db", "copy", "--from", "a.db"},
        {"db", "copy", "--to", "b.db"},
        {"db", "copy", "--from", "a.db", "--to", "b.db", "--on-error=skip"},
        {"db", "copy", "--from", "a.db", "--to", "b.db", "--on-error=ignore"},
        {"db", "copy", "--from", "a.db", "--to", "b.db", "--reject-file", "r.jsonl"},
        {"db", "copy", "--from", "a.db", "--to", "b.db", "--batch-size", "0"},
        {"db", "copy", "--from", "a.db", "--to", "b.db", "--from-layout", "ancient"},
        {"db", "copy", "--from", "a.db", "--to", "b.db", "--source-timezone", "Mars/Olympus"},
        {"db", "copy", "--from", "a.db", "--to", "a.db"},
        {"db", "copy", "--from", "a.db", "--to", "b.db", "--force"},
        {"db", "verify", "--source", "a.db"},
        {"db", "verify", "--source", "a.db", "--target", "./a.db"},
        {"db", "verify", "--source", "a.db", "--target", "b.db", "--truncate"},
        {"db", "backup"},
        {"db", "backup", "--to", "x.db", "--bogus"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = run_env(NULL, NULL, bad[i]);
        cr_assert_eq(r.status, 2, "todo %s %s %s %s %s %s %s: exit %d, expected 2\n%s%s",
                     bad[i][0], bad[i][1], bad[i][2] ? bad[i][2] : "", bad[i][3] ? bad[i][3] : "",
                     bad[i][4] ? bad[i][4] : "", bad[i][5] ? bad[i][5] : "",
                     bad[i][6] ? bad[i][6] : "", r.status, r.out, r.err);
        run_free(&r);
    }
    r = RUN("db", "copy", "--from", "a.db", "--to", "b.db", "--source-timezone", "Mars/Olympus");
    EXPECT_IN(r.err, "--source-timezone");
    run_free(&r);
    r = RUN("db", "copy", "--from", "a.db", "--to", "b.db", "--on-error=skip");
    EXPECT_IN(r.err, "--reject-file");
    run_free(&r);
}

/* d's schema is what `todo migrate up` makes on a fresh database. */
static void expect_migrated_schema(const struct tdb *d)
{
    struct tdb fresh;
    if (d->pg)
        tdb_pg(&fresh);
    else
        tdb_sqlite(&fresh);
    migrate_up(&fresh);
    const char *q =
        d->pg ? "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()"
                " UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE connamespace = current_schema()::regnamespace ORDER BY 1"
              : "SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_schema"
                " WHERE name NOT LIKE 'sqlite_%' ORDER BY name";
    char *want = sql_rows(&fresh, q), *got = sql_rows(d, q);
    expect_same("schema of a freshly migrated database and of the copy's target", want, got);
    free(want);
    free(got);
    tdb_done(&fresh);
}

/* ---- round trip ---------------------------------------------------------------------- */

/* SQLite -> PostgreSQL (DATABASE_URL) -> SQLite, identical, verify passing
 * every way; without PostgreSQL, SQLite -> SQLite -> SQLite. */
Test(cli_db, round_trip_is_identical_and_verify_passes_both_ways, .timeout = 180)
{
    struct tdb a, mid, b;
    tdb_sqlite(&a);
    make_current(&a, 60, 3000);
    /* extremes: the first and last representable milliseconds, 4-byte
     * characters up to the 255-character limit, the largest version */
    char xu[37], xt[37];
    uuid_v4(xu);
    uuid_v4(xt);
    char *sql = xfmt(
        "DELETE FROM todos WHERE rowid = 1;"
        "INSERT INTO users VALUES ('%s', 'extreme@example.com', 'h', '🎉 名前', 0,"
        " '0001-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z');"
        "INSERT INTO todos VALUES ('%s', '%s', replace(hex(zeroblob(255)), '00', '🎉'),"
        " 'e' || char(769) || ' combining, NBSP' || char(160) || 'end  ', 1,"
        " '1969-12-31T23:59:59.999Z', '1970-01-01T00:00:00.000Z', '2038-01-19T03:14:08.000Z',"
        " 2147483647);",
        xu, xt, xu);
    sql_exec(&a, sql);
    free(sql);
    tdb_shared(&mid);
    tdb_sqlite(&b);

    struct run r = RUN("db", "copy", "--from", a.url, "--to", mid.url, "--truncate", "--json");
    EXPECT_EXIT(r, 0);
    json_t *j = json_of(&r);
    cr_assert(json_is_true(json_object_get(j, "ok")));
    cr_assert_str_eq(json_string_value(json_object_get(j, "layout")), "current");
    expect_copied(j, "users", 61, 61, 0);
    expect_copied(j, "todos", 3000, 3000, 0);
    json_decref(j);
    run_free(&r);

    /* the way back in small batches (a PostgreSQL source: a cursor fetched
     * 7 rows at a time); the text summary; quiet on stderr when stderr is
     * not a terminal */
    r = RUN("db", "copy", "--from", mid.url, "--to", b.url, "--batch-size", "7");
    EXPECT_EXIT(r, 0);
    cr_assert_str_empty(r.err, "stderr is not a terminal: nothing expected there: %s", r.err);
    EXPECT_IN(r.out, "copied 3061 rows in ");
    EXPECT_IN(r.out, "(current layout)");
    EXPECT_IN(r.out, "TABLE ");
    cr_assert(strstr(r.out, "\nusers ") && strstr(r.out, "\ntodos ") && strstr(r.out, "\ntotal "),
              "summary table rows missing: %s", r.out);
    run_free(&r);

    char *ca = canon_all(&a), *cm = canon_all(&mid), *cb = canon_all(&b);
    expect_same("source and middle", ca, cm);
    expect_same("source and round-tripped copy", ca, cb);
    /* byte-identical stored values, not only canonical ones */
    char *ra = sql_rows(&a, "SELECT * FROM todos ORDER BY id");
    char *rb = sql_rows(&b, "SELECT * FROM todos ORDER BY id");
    expect_same("stored todos", ra, rb);
    free(ra);
    free(rb);

    verify_expect(a.url, mid.url, 0);
    verify_expect(mid.url, a.url, 0);
    verify_expect(mid.url, b.url, 0);
    verify_expect(b.url, mid.url, 0);
    verify_expect(a.url, b.url, 0);

    r = RUN("db", "verify", "--source", a.url, "--target", mid.url, "--json");
    EXPECT_EXIT(r, 0);
    j = json_of(&r);
    cr_assert(json_is_true(json_object_get(j, "identical")));
    cr_assert_eq(jint(json_table(j, "todos"), "source_rows"), 3000);
    cr_assert_eq(jint(json_table(j, "todos"), "target_rows"), 3000);
    cr_assert_eq(jint(json_table(j, "users"), "target_rows"), 61);
    json_decref(j);
    run_free(&r);

    /* the schema the copies leave is the migrations' (indexes and
     * constraints rebuilt with their names) */
    expect_migrated_schema(&mid);
    expect_migrated_schema(&b);
    free(ca);
    free(cm);
    free(cb);
    tdb_done(&a);
    tdb_done(&mid);
    tdb_done(&b);
}

/* ---- legacy layout: import, log in ------------------------------------------------------ */

struct legacy_user {
    const char *email, *password, *prefix;
    int cost;
    int active;
    char id[37];
};

struct legacy_task {
    int user; /* index into users */
    const char *title;
    int completed;
    char id[37];
};

static struct legacy_user lusers[] = {
    {"Alice.Smith@Example.COM", "alice-Secret-1", "$2b$", 4, 1, ""},
    {"BOB@Example.org", "bob pässwörd ✓", "$2a$", 4, 1, ""},
    {"Carol@example.NET", "carol-cost-12", "$2b$", 12, 1, ""},
    {"dave@example.com", "dave-inactive", "$2b$", 4, 0, ""},
    {"Eve@Example.com", "eve has no tasks", "$2a$", 4, 1, ""},
    {"Frank@Example.com", "frank-2y", "$2y$", 4, 1, ""},
};
#define NLUSERS (sizeof(lusers) / sizeof(lusers[0]))

static struct legacy_task ltasks[] = {
    {0, "Buy milk", 0, ""},          {0, "Write the report", 1, ""},
    {0, "Café ☕ at noon", 0, ""},    {1, "Fix the bike", 1, ""},
    {5, "Frank’s only task", 1, ""},
    {1, "Call \"mum\"", 0, ""},       {2, "Learn bcrypt", 0, ""},
    {3, "Inactive user’s task", 0, ""},
};
#define NLTASKS (sizeof(ltasks) / sizeof(ltasks[0]))

/* The old app's database, as it left it: realistic DDL, hex ids, bcrypt,
 * mixed-case emails, DATETIME text with microseconds, NULL updated_at. */
static void make_legacy_app_db(const struct tdb *d)
{
    legacy_schema(d, true);
    for (size_t i = 0; i < NLUSERS; i++) {
        char hash[256], hex[33];
        new_uuid(lusers[i].id, hex);
        bcrypt_hash(lusers[i].password, lusers[i].prefix, lusers[i].cost, hash, sizeof(hash));
        sql_execf(d,
                  "INSERT INTO users VALUES ('%s', '%s', '%s', %s,"
                  " '2019-05-06 07:08:%02zu.123456', %s, %d)",
                  hex, lusers[i].email, hash, i % 2 ? "NULL" : "'Name é'", i,
                  i % 2 ? "'2020-01-02 03:04:05.678901'" : "NULL", lusers[i].active);
    }
    for (size_t i = 0; i < NLTASKS; i++) {
        char hex[33], uhex[33];
        new_uuid(ltasks[i].id, hex);
        uuid_hex32(lusers[ltasks[i].user].id, uhex);
        sql_execf(d,
                  "INSERT INTO tasks VALUES ('%s', '%s', '%s', %s, %d, %s,"
                  " '2021-02-03 04:05:%02zu.987654', %s)",
                  hex, uhex, ltasks[i].title, i % 3 ? "'some words'" : "NULL",
                  ltasks[i].completed,
                  ltasks[i].completed ? "'2021-02-04 10:00:00.000001'" : "NULL", i,
                  i % 2 ? "NULL" : "'2021-02-05 06:07:08.999999'");
    }
}

static char *lower_dup(const char *s)
{
    char *o = strdup(s);
    for (char *p = o; *p; p++)
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    return o;
}

static char *login(const struct server *s, const char *email, const char *password, long want)
{
    json_t *b = json_pack("{s:s, s:s}", "email", email, "password", password);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    struct http h = http_call(s, "POST", "/api/v1/auth/login", NULL, body);
    free(body);
    if (h.status != want) {
        char *log = read_all(s->log);
        cr_assert_fail("login %s: %ld, expected %ld: %s\nserver log:\n%s", email, h.status, want,
                       h.body, log);
    }
    char *tok = NULL;
    if (want == 200) {
        const char *t = json_string_value(json_object_get(h.json, "access_token"));
        cr_assert_not_null(t, "no access_token: %s", h.body);
        tok = strdup(t);
    }
    http_free(&h);
    return tok;
}

/* The todos the API lists for the token's user match the legacy tasks of user ui. */
static void check_todos(const struct server *s, const char *token, size_t ui)
{
    struct http h = http_call(s, "GET", "/api/v1/todos?limit=1000", token, NULL);
    cr_assert_eq(h.status, 200, "GET /api/v1/todos: %ld %s", h.status, h.body);
    json_t *items = json_object_get(h.json, "items");
    cr_assert(json_is_array(items), "no items: %s", h.body);
    size_t want = 0;
    for (size_t i = 0; i < NLTASKS; i++) {
        if ((size_t)ltasks[i].user != ui)
            continue;
        want++;
        bool found = false;
        size_t k;
        json_t *t;
        json_array_foreach(items, k, t) {
            const char *id = json_string_value(json_object_get(t, "id"));
            if (id == NULL || strcmp(id, ltasks[i].id) != 0)
                continue;
            found = true;
            cr_assert_str_eq(json_string_value(json_object_get(t, "title")), ltasks[i].title);
            cr_assert_eq(json_is_true(json_object_get(t, "completed")), ltasks[i].completed == 1,
                         "completed of %s", id);
            cr_assert_eq(json_integer_value(json_object_get(t, "version")), 1);
        }
        cr_assert(found, "todo %s (%s) not listed for user %zu: %s", ltasks[i].id,
                  ltasks[i].title, ui, h.body);
    }
    cr_assert_eq(json_array_size(items), want, "user %zu: %zu todos listed, expected %zu: %s", ui,
                 json_array_size(items), want, h.body);
    http_free(&h);
}

/* Import into target (named to the CLI and the server as to_url, NULL: its
 * URL) and log in. */
static void legacy_import_and_login(struct tdb *target, const char *to_url,
                                    const char *layout_flag)
{
    struct tdb legacy;
    tdb_sqlite(&legacy);
    make_legacy_app_db(&legacy);
    /* the old app's spelling of its own file */
    char *from = xfmt("sqlite+aiosqlite:///%s", legacy.path);
    if (to_url == NULL)
        to_url = target->url;

    struct run r = layout_flag != NULL
                       ? RUN("db", "copy", "--from", from, "--to", to_url,
                             "--from-layout", layout_flag, "--json")
                       : RUN("db", "copy", "--from", from, "--to", to_url, "--json");
    EXPECT_EXIT(r, 0);
    json_t *j = json_of(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "layout")), "legacy");
    expect_copied(j, "users", (long long)NLUSERS, (long long)NLUSERS, 0);
    expect_copied(j, "todos", (long long)NLTASKS, (long long)NLTASKS, 0);
    json_decref(j);
    run_free(&r);

    /* what the rows became */
    cr_assert_eq(count_rows(target, "users"), (long long)NLUSERS);
    cr_assert_eq(count_rows(target, "todos"), (long long)NLTASKS);
    cr_assert_eq(sql_int(target, "SELECT count(*) FROM todos WHERE version = 1"),
                 (long long)NLTASKS);
    for (size_t i = 0; i < NLUSERS; i++) {
        const char *id = lusers[i].id;
        char *email = lower_dup(lusers[i].email);
        expect_value(target, "users", id, "email", email, "user %zu: %s", i, lusers[i].email);
        free(email);
        char *wc = xfmt("2019-05-06T07:08:%02zu.123Z", i);
        expect_value(target, "users", id, "created_at", wc, "user %zu", i);
        expect_value(target, "users", id, "updated_at", i % 2 ? "2020-01-02T03:04:05.678Z" : wc,
                     "user %zu: a NULL updated_at must become created_at", i);
        free(wc);
        expect_value(target, "users", id, "is_active", lusers[i].active ? "1" : "0", "user %zu",
                     i);
        char *hash = canon_value(target, "users", id, "password_hash");
        cr_assert_eq(strncmp(hash, lusers[i].prefix, 4), 0, "hash of user %zu: %s", i, hash);
        free(hash);
        expect_value(target, "users", id, "name", i % 2 ? "<NULL>" : "Name é", "user %zu", i);
    }
    for (size_t i = 0; i < NLTASKS; i++) {
        const char *id = ltasks[i].id;
        expect_value(target, "todos", id, "user_id", lusers[ltasks[i].user].id, "task %zu", i);
        char *wc = xfmt("2021-02-03T04:05:%02zu.987Z", i);
        expect_value(target, "todos", id, "created_at", wc, "task %zu", i);
        expect_value(target, "todos", id, "updated_at", i % 2 ? wc : "2021-02-05T06:07:08.999Z",
                     "task %zu: a NULL updated_at must become created_at", i);
        free(wc);
        expect_value(target, "todos", id, "completed_at",
                     ltasks[i].completed ? "2021-02-04T10:00:00.000Z" : "<NULL>", "task %zu", i);
        expect_value(target, "todos", id, "description", i % 3 ? "some words" : "<NULL>",
                     "task %zu", i);
    }
    verify_expect(from, to_url, 0);
    r = RUN("db", "verify", "--source", from, "--target", to_url, "--source-layout",
            "legacy", "--json");
    EXPECT_EXIT(r, 0);
    j = json_of(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "source_layout")), "legacy");
    cr_assert_eq(jint(json_table(j, "todos"), "source_rows"), (long long)NLTASKS);
    json_decref(j);
    run_free(&r);

    /* log in through the API with the old passwords */
    struct server s;
    server_start(&s, to_url);
    for (size_t i = 0; i < NLUSERS; i++) {
        if (!lusers[i].active) {
            char *t = login(&s, lusers[i].email, lusers[i].password, 401);
            free(t);
            continue;
        }
        char *bad = login(&s, lusers[i].email, "not the password", 401);
        free(bad);
        char *tok = login(&s, lusers[i].email, lusers[i].password, 200);
        check_todos(&s, tok, i);
        free(tok);
        /* the bcrypt hash is replaced by Argon2id (the login does not wait) */
        char *hash = NULL;
        for (int64_t end = mono_ms() + 10000; mono_ms() < end; sleep_ms(50)) {
            free(hash);
            hash = canon_value(target, "users", lusers[i].id, "password_hash");
            if (strncmp(hash, "$argon2id$", 10) == 0)
                break;
        }
        cr_assert_eq(strncmp(hash, "$argon2id$", 10), 0, "user %zu not re-hashed: %s", i, hash);
        free(hash);
        char *lower = lower_dup(lusers[i].email);
        tok = login(&s, lower, lusers[i].password, 200);
        check_todos(&s, tok, i);
        free(tok);
        free(lower);
    }
    server_stop(&s);

    /* verify sees the re-hash as a difference in password_hash of user 0 */
    r = RUN("db", "verify", "--source", from, "--target", to_url);
    EXPECT_EXIT(r, 1);
    char *all = both(&r);
    EXPECT_IN(all, lusers[0].id);
    EXPECT_IN(all, "password_hash");
    EXPECT_IN(all, "different");
    EXPECT_NOT_IN(all, lusers[3].id); /* inactive: never logged in, unchanged */
    free(all);
    run_free(&r);
    free(from);
    tdb_done(&legacy);
}

Test(cli_db, legacy_import_into_sqlite_and_log_in_with_old_passwords, .timeout = 180)
{
    struct tdb t;
    tdb_sqlite(&t);
    legacy_import_and_login(&t, NULL, NULL);
    tdb_done(&t);
}

Test(cli_db, legacy_import_into_postgres_and_log_in_with_old_passwords, .timeout = 180)
{
    if (!pg_mode())
        cr_skip_test("needs PostgreSQL (DATABASE_URL)");
    struct tdb t;
    tdb_pg(&t);
    /* the old app's spellings: postgresql+asyncpg:// (also for the server) */
    char *url = xfmt("postgresql+asyncpg://%s", strstr(t.url, "://") + 3);
    legacy_import_and_login(&t, url, "legacy");
    free(url);
    tdb_done(&t);
}

Test(cli_db, legacy_emails_colliding_once_lower_cased_are_an_error_naming_both, PAIR, .timeout = 60)
{
    char a[37], b[37], ha[33], hb[33];
    legacy_schema(&src, true);
    new_uuid(a, ha);
    new_uuid(b, hb);
    sql_execf(&src,
              "INSERT INTO users VALUES ('%s', 'Ann@Example.com', 'x', NULL,"
              " '2020-01-01 00:00:00', NULL, 1);"
              "INSERT INTO users VALUES ('%s', 'ann@example.COM', 'y', NULL,"
              " '2020-01-01 00:00:00', NULL, 1);",
              ha, hb);
    struct run r = RUN("db", "copy", "--from", src.url, "--to", dst.url);
    EXPECT_EXIT(r, 1);
    expect_key(r.err, a);
    expect_key(r.err, b);
    run_free(&r);
    expect_no_users(&dst);
}

/* ---- conversion rules --------------------------------------------------------------------- */

struct conv_case {
    const char *stored;  /* SQL literal as stored in the legacy file */
    const char *want;    /* canonical text in the target */
};

/* completed (BOOLEAN) */
static const struct conv_case bool_cases[] = {
    {"0", "0"},         {"1", "1"},           {"'t'", "1"},     {"'f'", "0"},
    {"'true'", "1"},    {"'false'", "0"},     {"'TRUE'", "1"},  {"'False'", "0"},
    {"' t '", "1"},     {"'1'", "1"},         {"'0'", "0"},     {"1.0", "1"},
    {"0.0", "0"},       {"'T'", "1"},
};

/* created_at (DATETIME); naive values are UTC */
static const struct conv_case ts_cases[] = {
    {"'2021-03-04 05:06:07'", "2021-03-04T05:06:07.000Z"},
    {"'2021-03-04T05:06:07'", "2021-03-04T05:06:07.000Z"},
    {"'2021-03-04 05:06:07.1'", "2021-03-04T05:06:07.100Z"},
    {"'2021-03-04 05:06:07.123456'", "2021-03-04T05:06:07.123Z"},
    {"'2021-03-04 05:06:07.123999999'", "2021-03-04T05:06:07.123Z"},
    {"'2021-03-04T05:06:07Z'", "2021-03-04T05:06:07.000Z"},
    {"'2021-03-04T05:06:07.250Z'", "2021-03-04T05:06:07.250Z"},
    {"'2021-03-04 05:06:07+01:00'", "2021-03-04T04:06:07.000Z"},
    {"'2021-03-04 05:06:07.5-02:30'", "2021-03-04T07:36:07.500Z"},
    {"'2021-03-04T23:30:00+0530'", "2021-03-04T18:00:00.000Z"},
    {"'2021-03-04 01:00:00+05'", "2021-03-03T20:00:00.000Z"},
    {"'2021-03-04 05:06:07.123+00:00'", "2021-03-04T05:06:07.123Z"},
    {"'2021-03-04'", "2021-03-04T00:00:00.000Z"},
    {"'1969-07-20 20:17:40'", "1969-07-20T20:17:40.000Z"},
    {"1614834367", "2021-03-04T05:06:07.000Z"},
    {"'1614834367'", "2021-03-04T05:06:07.000Z"},
    {"1614834367.25", "2021-03-04T05:06:07.250Z"},
    {"1614834367123", "2021-03-04T05:06:07.123Z"},
    {"0", "1970-01-01T00:00:00.000Z"},
    {"-1", "1969-12-31T23:59:59.000Z"},
};

/* s with its hex digits a-f upper-cased, in place. */
static char *upper_hex(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)((*p >= 'a' && *p <= 'f') ? *p - 32 : *p);
    return s;
}

/* How an id is stored: 32 hex, 32 HEX, 36 canonical, 36 upper, 16-byte blob. */
static char *id_literal(const char *canon, int form)
{
    char hex[33];
    uuid_hex32(canon, hex);
    switch (form % 5) {
    case 0:
        return xfmt("'%s'", hex);
    case 1:
        return upper_hex(xfmt("'%s'", hex));
    case 2:
        return xfmt("'%s'", canon);
    case 3:
        return upper_hex(xfmt("'%s'", canon));
    default:
        return xfmt("X'%s'", hex);
    }
}

Test(cli_db, each_conversion_rule, PAIR, .timeout = 120)
{
    legacy_schema(&src, false);

    /* users: each id form; is_active and timestamps in several forms */
    char uid[5][37];
    static const char *const u_active[] = {"1", "'t'", "'false'", "'TRUE'", "0"};
    static const char *const u_created[] = {"'2020-01-01 00:00:00'", "'2020-01-01T00:00:00.5Z'",
                                            "1577836800", "'2020-01-01 01:00:00+01:00'",
                                            "1577836800000"};
    for (int i = 0; i < 5; i++) {
        uuid_v4(uid[i]);
        char *lit = id_literal(uid[i], i);
        sql_execf(&src, "INSERT INTO users VALUES (%s, 'conv%d@example.com', 'h', %s, %s, %s, %s)",
                  lit, i, i == 0 ? "NULL" : "'N'", u_created[i],
                  i == 2 ? "NULL" : "'2020-06-01 12:00:00'", u_active[i]);
        free(lit);
    }
    /* todos: one per boolean form, one per timestamp form; ids and user_ids
     * in every form (a user_id's form need not match its user's) */
    size_t nb = sizeof(bool_cases) / sizeof(bool_cases[0]);
    size_t nt = sizeof(ts_cases) / sizeof(ts_cases[0]);
    char (*tid)[37] = calloc(nb + nt, 37);
    for (size_t i = 0; i < nb + nt; i++) {
        uuid_v4(tid[i]);
        char *lit = id_literal(tid[i], (int)i);
        char *ulit = id_literal(uid[i % 5], (int)(i % 5)); /* as its user's id */
        const char *completed = i < nb ? bool_cases[i].stored : "0";
        const char *created = i < nb ? "'2022-02-02 02:02:02'" : ts_cases[i - nb].stored;
        sql_execf(&src, "INSERT INTO tasks VALUES (%s, %s, 'conversion %zu', %s, %s, %s, %s, %s)",
                  lit, ulit, i, i % 2 ? "NULL" : "X'68c3a97a'", completed,
                  i == 0 ? "'2022-03-03 03:03:03.333'" : "NULL", created,
                  i % 3 ? "NULL" : "'2023-01-01 00:00:00Z'");
        free(lit);
        free(ulit);
    }

    copy_ok(src.url, dst.url);
    cr_assert_eq(count_rows(&dst, "users"), 5);
    cr_assert_eq(count_rows(&dst, "todos"), (long long)(nb + nt));

    for (int i = 0; i < 5; i++) {
        expect_value(&dst, "users", uid[i], "is_active", (i == 0 || i == 1 || i == 3) ? "1" : "0",
                     "stored as %s", u_active[i]);
        expect_value(&dst, "users", uid[i], "created_at",
                     i == 1 ? "2020-01-01T00:00:00.500Z" : "2020-01-01T00:00:00.000Z",
                     "stored as %s", u_created[i]);
        expect_value(&dst, "users", uid[i], "updated_at",
                     i == 2 ? "2020-01-01T00:00:00.000Z" : "2020-06-01T12:00:00.000Z",
                     "user %d: NULL becomes created_at", i);
        expect_value(&dst, "users", uid[i], "name", i == 0 ? "<NULL>" : "N",
                     "user %d: NULL must stay NULL", i);
    }
    for (size_t i = 0; i < nb + nt; i++) {
        expect_value(&dst, "todos", tid[i], "completed", i < nb ? bool_cases[i].want : "0",
                     "stored as %s", i < nb ? bool_cases[i].stored : "0");
        const char *wc = i < nb ? "2022-02-02T02:02:02.000Z" : ts_cases[i - nb].want;
        expect_value(&dst, "todos", tid[i], "created_at", wc, "stored as %s",
                     i < nb ? "'2022-02-02 02:02:02'" : ts_cases[i - nb].stored);
        expect_value(&dst, "todos", tid[i], "updated_at", i % 3 ? wc : "2023-01-01T00:00:00.000Z",
                     "todo %zu: NULL becomes created_at", i);
        expect_value(&dst, "todos", tid[i], "user_id", uid[i % 5], "todo %zu", i);
        expect_value(&dst, "todos", tid[i], "description", i % 2 ? "<NULL>" : "héz", "todo %zu",
                     i);
        expect_value(&dst, "todos", tid[i], "completed_at",
                     i == 0 ? "2022-03-03T03:03:03.333Z" : "<NULL>", "todo %zu", i);
    }
    free(tid);
}

/* A user_id names its user whatever uuid form each is stored in (the rules
 * accept every form, so the target's foreign key holds). */
Test(cli_db, a_user_id_stored_in_another_uuid_form_names_its_user, PAIR, .timeout = 60)
{
    legacy_schema(&src, false);
    char u[37], t[5][37];
    uuid_v4(u);
    char *lit = id_literal(u, 0); /* 32 lower-case hex, as the old app stored it */
    sql_execf(&src,
              "INSERT INTO users VALUES (%s, 'form@example.com', 'h', NULL,"
              " '2020-01-01 00:00:00', NULL, 1)",
              lit);
    free(lit);
    for (int f = 0; f < 5; f++) {
        uuid_v4(t[f]);
        char *tl = id_literal(t[f], 0), *ul = id_literal(u, f);
        sql_execf(&src,
                  "INSERT INTO tasks VALUES (%s, %s, 'form %d', NULL, 0, NULL, '2020-01-01',"
                  " NULL)",
                  tl, ul, f);
        free(tl);
        free(ul);
    }
    copy_ok(src.url, dst.url);
    for (int f = 0; f < 5; f++)
        expect_value(&dst, "todos", t[f], "user_id", u, "user_id stored in form %d", f);
}

/* Naive timestamps in --source-timezone; values with an offset or epoch
 * numbers are not affected; verify needs the same zone. */
#define NTZ 6
Test(cli_db, naive_timestamps_in_the_source_timezone, PAIR, .timeout = 90)
{
    struct tdb dst2;
    tdb_sqlite(&dst2);
    legacy_schema(&src, true);
    char u[37], hu[33], t[NTZ][37];
    new_uuid(u, hu);
    sql_execf(&src,
              "INSERT INTO users VALUES ('%s', 'tz@example.com', 'h', NULL,"
              " '2021-03-04 05:06:07', '2021-07-04 05:06:07', 1)",
              hu);
    /* the last two: a wall-clock time that occurs twice in Berlin (the later
     * instant) and one that does not exist (the offset before the change),
     * as PostgreSQL reads them */
    static const char *const created[] = {"'2021-03-04 05:06:07'", "'2021-07-04 05:06:07.5'",
                                          "'2021-03-04 05:06:07Z'", "1614834367",
                                          "'2021-10-31 02:30:00'", "'2021-03-28 02:30:00'"};
    static const char *const berlin[] = {"2021-03-04T04:06:07.000Z", "2021-07-04T03:06:07.500Z",
                                         "2021-03-04T05:06:07.000Z", "2021-03-04T05:06:07.000Z",
                                         "2021-10-31T01:30:00.000Z", "2021-03-28T01:30:00.000Z"};
    static const char *const plus530[] = {"2021-03-03T23:36:07.000Z", "2021-07-03T23:36:07.500Z",
                                          "2021-03-04T05:06:07.000Z", "2021-03-04T05:06:07.000Z",
                                          "2021-10-30T21:00:00.000Z", "2021-03-27T21:00:00.000Z"};
    for (int i = 0; i < NTZ; i++) {
        char h[33];
        new_uuid(t[i], h);
        sql_execf(&src, "INSERT INTO tasks VALUES ('%s', '%s', 'tz %d', NULL, 0, NULL, %s, NULL)",
                  h, hu, i, created[i]);
    }
    EXPECT_RUN(0, "db", "copy", "--from", src.url, "--to", dst.url, "--source-timezone",
               "Europe/Berlin");
    for (int i = 0; i < NTZ; i++)
        expect_value(&dst, "todos", t[i], "created_at", berlin[i], "Europe/Berlin: %s",
                     created[i]);
    expect_value(&dst, "users", u, "created_at", "2021-03-04T04:06:07.000Z", "Europe/Berlin");
    expect_value(&dst, "users", u, "updated_at", "2021-07-04T03:06:07.000Z", "Europe/Berlin");

    EXPECT_RUN(0, "db", "verify", "--source", src.url, "--target", dst.url, "--source-timezone",
               "Europe/Berlin");
    struct run r = RUN("db", "verify", "--source", src.url, "--target", dst.url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.out, t[0]);
    EXPECT_IN(r.out, "created_at");
    EXPECT_NOT_IN(r.out, t[2]); /* had an offset: the same either way */
    run_free(&r);

    EXPECT_RUN(0, "db", "copy", "--from", src.url, "--to", dst2.url, "--source-timezone",
               "+05:30");
    for (int i = 0; i < NTZ; i++)
        expect_value(&dst2, "todos", t[i], "created_at", plus530[i], "+05:30: %s", created[i]);
    tdb_done(&dst2);
}

/* ---- rejections ----------------------------------------------------------------------------- */

struct bad_case {
    const char *table;    /* "users" or "tasks" */
    const char *column;   /* the column the message must name */
    const char *sql;      /* an INSERT with %s for the id (hex) [and %s the good user's hex] */
    const char *value;    /* what of the value the message must show */
};

static const struct bad_case bad_cases[] = {
    {"users", "is_active",
     "INSERT INTO users VALUES ('%s', 'b1@example.com', 'h', NULL, '2020-01-01 00:00:00', NULL,"
     " 'maybe-ish')",
     "maybe-ish"},
    {"users", "email",
     "INSERT INTO users VALUES ('%s', NULL, 'h', NULL, '2020-01-01 00:00:00', NULL, 1)", "NULL"},
    {"users", "created_at",
     "INSERT INTO users VALUES ('%s', 'b3@example.com', 'h', NULL, '10000-01-01 00:00:00', NULL,"
     " 1)",
     "10000-01-01"},
    {"tasks", "completed",
     "INSERT INTO tasks VALUES ('%s', '%s', 'ok', NULL, 'yes-please', NULL, '2020-01-01', NULL)",
     "yes-please"},
    {"tasks", "created_at",
     "INSERT INTO tasks VALUES ('%s', '%s', 'ok', NULL, 0, NULL, 'yesterday-ish', NULL)",
     "yesterday-ish"},
    {"tasks", "created_at",
     "INSERT INTO tasks VALUES ('%s', '%s', 'ok', NULL, 0, NULL, '2021-13-45 25:61:00', NULL)",
     "2021-13-45"},
    {"tasks", "completed_at",
     "INSERT INTO tasks VALUES ('%s', '%s', 'ok', NULL, 1, 'soon-ish', '2020-01-01', NULL)",
     "soon-ish"},
    {"tasks", "title",
     "INSERT INTO tasks VALUES ('%s', '%s', 'LongTitle-' || replace(hex(zeroblob(123)), '0', 'a'),"
     " NULL, 0, NULL, '2020-01-01', NULL)",
     "LongTitle-aaaa"},
    {"tasks", "title",
     "INSERT INTO tasks VALUES ('%s', '%s', '', NULL, 0, NULL, '2020-01-01', NULL)", "\"\""},
    {"tasks", "title",
     "INSERT INTO tasks VALUES ('%s', '%s', NULL, NULL, 0, NULL, '2020-01-01', NULL)", "NULL"},
    {"tasks", "title",
     "INSERT INTO tasks VALUES ('%s', '%s', X'41fffe42', NULL, 0, NULL, '2020-01-01', NULL)",
     "fffe"},
    {"tasks", "description",
     "INSERT INTO tasks VALUES ('%s', '%s', 'ok', X'610062', 0, NULL, '2020-01-01', NULL)", "00"},
    {"tasks", "user_id",
     "INSERT INTO tasks VALUES ('%s', '%s' || 'zz', 'ok', NULL, 0, NULL, '2020-01-01', NULL)",
     "zz"},
    {"tasks", "user_id",
     "INSERT INTO tasks VALUES ('%s', '%.31s', 'ok', NULL, 0, NULL, '2020-01-01', NULL)", NULL},
    {"tasks", "user_id",
     "INSERT INTO tasks VALUES ('%s', 'aaaaaaaabbbb4cccdddd111122223333', 'ok', NULL, 0, NULL,"
     " '2020-01-01', NULL)",
     "aaaaaaaabbbb4cccdddd111122223333"},
};

/* A legacy file holding one good user with one good todo (ids returned). */
static void make_good_legacy(const struct tdb *d, char user[37], char task[37])
{
    char hu[33], ht[33];
    legacy_schema(d, false);
    new_uuid(user, hu);
    new_uuid(task, ht);
    sql_execf(d,
              "INSERT INTO users VALUES ('%s', 'good@example.com', 'h', 'G',"
              " '2020-01-01 00:00:00', NULL, 1);"
              "INSERT INTO tasks VALUES ('%s', '%s', 'good', NULL, 0, NULL,"
              " '2020-01-01 00:00:00', NULL);",
              hu, ht, hu);
}

/* Every rejection: exit 1; the message names table, id, column, value; the
 * target (holding rows of an earlier copy, --truncate given) is unchanged. */
Test(cli_db, each_rejection_names_the_row_and_leaves_the_target_unchanged, PAIR, .timeout = 150)
{
    make_current(&src, 3, 10);
    copy_ok(src.url, dst.url);
    char *before = canon_all(&dst);

    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct tdb bad_src;
        char gu[37], gt[37], bad[37], hb[33], hg[33];
        tdb_sqlite(&bad_src);
        make_good_legacy(&bad_src, gu, gt);
        new_uuid(bad, hb);
        uuid_hex32(gu, hg);
        sql_execf(&bad_src, c->sql, hb, hg);

        struct run r = RUN("db", "copy", "--from", bad_src.url, "--to", dst.url, "--truncate");
        cr_assert_eq(r.status, 1, "case %zu (%s.%s): exit %d, expected 1\n%s%s", i, c->table,
                     c->column, r.status, r.out, r.err);
        bool named_table = strcmp(c->table, "users") == 0
                               ? strstr(r.err, "users") != NULL
                               : strstr(r.err, "todos") != NULL || strstr(r.err, "tasks") != NULL;
        cr_assert(named_table, "case %zu: table %s not named: %s", i, c->table, r.err);
        expect_key(r.err, bad);
        cr_assert_not_null(strstr(r.err, c->column), "case %zu: column %s not named: %s", i,
                           c->column, r.err);
        if (c->value != NULL)
            cr_assert_not_null(strcasestr(r.err, c->value), "case %zu: value %s not shown: %s",
                               i, c->value, r.err);
        EXPECT_NOT_IN(r.err, gt); /* the good row is not blamed */
        run_free(&r);

        /* --dry-run finds it too */
        r = RUN("db", "copy", "--from", bad_src.url, "--to", dst.url, "--truncate", "--dry-run");
        cr_assert_eq(r.status, 1, "case %zu dry run: exit %d\n%s%s", i, r.status, r.out, r.err);
        expect_key(r.err, bad);
        run_free(&r);
        tdb_done(&bad_src);
    }
    expect_unchanged(&dst, before, "target before and after the rejected copies");
}

/* Two rows whose ids spell one uuid differently: the target's primary key
 * refuses them, and nothing is written. */
Test(cli_db, one_uuid_spelt_twice_fails_the_copy_and_writes_nothing, PAIR, .timeout = 60)
{
    char gu[37], gt[37], hg[33], ht[33];
    make_good_legacy(&src, gu, gt);
    uuid_hex32(gu, hg);
    uuid_hex32(gt, ht);
    /* the canonical spelling of the hex id already there */
    sql_execf(&src,
              "INSERT INTO tasks VALUES ('%s', '%s', 'twin', NULL, 0, NULL, '2020-01-01', NULL)",
              gt, hg);
    struct run r = RUN("db", "copy", "--from", src.url, "--to", dst.url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.out, "failed: nothing was written");
    run_free(&r);
    cr_assert_eq(count_rows(&dst, "users"), 0);
    cr_assert_eq(count_rows(&dst, "todos"), 0);
}

Test(cli_db, on_error_skip_writes_the_reject_file_and_copies_the_rest, PAIR, .timeout = 90)
{
    char gu[37], gt[37], bu[37], bt1[37], bt2[37], bt3[37], gt2[37];
    char hgu[33], hbu[33], h1[33], h2[33], h3[33], hg2[33];
    make_good_legacy(&src, gu, gt);
    uuid_hex32(gu, hgu);
    new_uuid(bu, hbu);
    new_uuid(bt1, h1);
    new_uuid(bt2, h2);
    new_uuid(bt3, h3);
    new_uuid(gt2, hg2);
    /* a bad user with two (good) todos; a bad todo of the good user; a
     * second good todo */
    sql_execf(&src,
              "INSERT INTO users VALUES ('%s', 'bad@example.com', 'h', NULL,"
              " '2020-01-01 00:00:00', NULL, 'perhaps');"
              "INSERT INTO tasks VALUES ('%s', '%s', 'of bad 1', NULL, 0, NULL,"
              " '2020-01-01', NULL);"
              "INSERT INTO tasks VALUES ('%s', '%s', 'of bad 2', NULL, 0, NULL,"
              " '2020-01-01', NULL);"
              "INSERT INTO tasks VALUES ('%s', '%s', 'bad time', NULL, 0, NULL,"
              " 'half past never', NULL);"
              "INSERT INTO tasks VALUES ('%s', '%s', 'good 2', NULL, 1, '2020-02-02',"
              " '2020-01-01', NULL);",
              hbu, h1, hbu, h2, hbu, h3, hgu, hg2, hgu);
    char rej[800];
    snprintf(rej, sizeof(rej), "%s/rejects.jsonl", src.dir);
    write_text(rej, "stale line from an earlier run\n", "w");

    struct run r = RUN("db", "copy", "--from", src.url, "--to", dst.url, "--on-error=skip",
                       "--reject-file", rej, "--json");
    EXPECT_EXIT(r, 0);
    json_t *j = json_of(&r);
    expect_copied(j, "users", 2, 1, 1);
    expect_copied(j, "todos", 5, 2, 3);
    json_decref(j);
    run_free(&r);

    cr_assert_eq(count_rows(&dst, "users"), 1);
    cr_assert_eq(count_rows(&dst, "todos"), 2);
    expect_value(&dst, "todos", gt2, "completed_at", "2020-02-02T00:00:00.000Z", "2020-02-02");

    char *text = read_all(rej);
    EXPECT_NOT_IN(text, "stale line");
    int lines = 0;
    bool seen_user = false, seen_t1 = false, seen_t2 = false, seen_t3 = false;
    for (char *line = text, *nl; *line != '\0'; line = nl + 1) {
        nl = strchr(line, '\n');
        cr_assert_not_null(nl, "reject file does not end with a newline: %s", line);
        *nl = '\0';
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        cr_assert_not_null(o, "reject line is not JSON (%s): %s", e.text, line);
        lines++;
        const char *table = json_string_value(json_object_get(o, "table"));
        const char *id = json_string_value(json_object_get(o, "id"));
        const char *column = json_string_value(json_object_get(o, "column"));
        const char *reason = json_string_value(json_object_get(o, "reason"));
        cr_assert(table && id && column && reason && json_object_get(o, "value"),
                  "reject line lacks table/id/column/value/reason: %s", line);
        if (strstr(id, hbu) || strstr(id, bu)) {
            seen_user = true;
            cr_assert_str_eq(table, "users");
            cr_assert_str_eq(column, "is_active");
            EXPECT_IN(json_string_value(json_object_get(o, "value")), "perhaps");
        } else if (strstr(id, h1) || strstr(id, bt1) || strstr(id, h2) || strstr(id, bt2)) {
            if (strstr(id, h1) || strstr(id, bt1))
                seen_t1 = true;
            else
                seen_t2 = true;
            cr_assert_str_eq(table, "todos");
            cr_assert_str_eq(column, "user_id");
            EXPECT_IN(json_string_value(json_object_get(o, "value")), bu);
            EXPECT_IN(reason, "its user was rejected");
        } else if (strstr(id, h3) || strstr(id, bt3)) {
            seen_t3 = true;
            cr_assert_str_eq(table, "todos");
            cr_assert_str_eq(column, "created_at");
            EXPECT_IN(json_string_value(json_object_get(o, "value")), "half past never");
        } else {
            cr_assert_fail("unexpected reject line: %s", line);
        }
        json_decref(o);
    }
    cr_assert_eq(lines, 4, "%d reject lines, expected 4", lines);
    cr_assert(seen_user && seen_t1 && seen_t2 && seen_t3);
    free(text);

    /* verify: the source still holds rows that cannot be converted, so it
     * cannot tell (exit 2, dbverify.h), naming one of them */
    r = RUN("db", "verify", "--source", src.url, "--target", dst.url);
    EXPECT_EXIT(r, 2);
    cr_assert(strstr(r.err, hbu) || strstr(r.err, h3), "no rejected row named: %s", r.err);
    run_free(&r);

    /* a dry run (and `--on-error skip` spelt with a space) writes the
     * reject file too, and nothing else */
    struct tdb dry;
    tdb_target(&dry);
    unlink(rej);
    r = RUN("db", "copy", "--from", src.url, "--to", dry.url, "--dry-run", "--on-error", "skip",
            "--reject-file", rej);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "4 rows rejected");
    run_free(&r);
    text = read_all(rej);
    cr_assert_eq(count_of(text, "\n"), 4, "dry run reject file: %s", text);
    free(text);
    if (dry.pg)
        cr_assert_eq(table_exists(&dry, "users"), 0);
    else
        cr_assert(!file_exists(dry.path));
    tdb_done(&dry);
}

/* ---- kill -9 in the middle of a copy --------------------------------------------------------- */

/* RssAnon of a live process in KiB (0 when gone). */
static long rss_anon_kb(pid_t pid)
{
    char path[64], *text;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    text = read_all(path);
    const char *p = strstr(text, "RssAnon:");
    long kb = p != NULL ? strtol(p + 8, NULL, 10) : 0;
    free(text);
    return kb;
}

/* Enough rows that the copy takes seconds, not milliseconds. */
#define KILL_TODOS 150000

/* The copy process is in the middle of loading todos. */
static bool copy_in_progress(const struct tdb *target)
{
    if (target->pg) {
        char *sql = xfmt("SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND"
                         " query ILIKE 'COPY%%todos%%' AND state = 'active'",
                         target->name);
        long long n = sql_int(target, sql);
        free(sql);
        return n > 0;
    }
    /* the target file (or its WAL) grows past what the migration made */
    struct stat st;
    char w[800];
    off_t size = 0;
    snprintf(w, sizeof(w), "%s-wal", target->path);
    if (stat(target->path, &st) == 0)
        size += st.st_size;
    if (stat(w, &st) == 0)
        size += st.st_size;
    return size > (8 << 20);
}

Test(cli_db, kill_9_in_the_middle_of_a_copy_leaves_the_target_empty, PAIR, .timeout = 240)
{
    make_bulk(&src, 1000, KILL_TODOS, 600);

    struct proc p;
    const char *args[] = {"db", "copy", "--from", src.url, "--to", dst.url, NULL};
    int64_t started = mono_ms();
    proc_start(&p, args, NULL, NULL);
    bool seen = false;
    int st;
    for (int64_t end = mono_ms() + 60000; mono_ms() < end && !seen; sleep_ms(10)) {
        cr_assert_eq(waitpid(p.pid, &st, WNOHANG), 0,
                     "the copy ended before it could be killed (too fast?)");
        seen = copy_in_progress(&dst);
    }
    cr_assert(seen, "never saw the copy loading todos");
    cr_log_info("copy loading todos after %lld ms", (long long)(mono_ms() - started));
    sleep_ms(dst.pg ? 300 : 50);
    cr_assert_eq(waitpid(p.pid, &st, WNOHANG), 0, "the copy ended before it could be killed");
    kill(p.pid, SIGKILL);
    struct run r = proc_finish(&p, 10000);
    cr_assert_eq(r.status, -1);
    run_free(&r);

    if (!dst.pg)
        sql_exec(&dst, "BEGIN IMMEDIATE; ROLLBACK;"); /* a hot journal is rolled back */
    cr_assert_eq(count_rows(&dst, "users"), 0, "users left after kill -9");
    cr_assert_eq(count_rows(&dst, "todos"), 0, "todos left after kill -9");
    if (dst.pg) {
        /* the dropped indexes and constraints are back (rolled back) */
        cr_assert_eq(sql_int(&dst, "SELECT count(*) FROM pg_indexes WHERE tablename = 'todos'"),
                     5);
        cr_assert_eq(sql_int(&dst, "SELECT count(*) FROM pg_constraint WHERE conrelid ="
                                   " 'todos'::regclass AND contype = 'f'"),
                     1);
    } else {
        char *ic = sql_text(&dst, "PRAGMA integrity_check");
        cr_assert_str_eq(ic, "ok");
        free(ic);
    }

    /* the re-run, watching the copy's anonymous memory (heap, caches; not
     * the file pages it maps): bounded, not growing with the rows */
    proc_start(&p, args, NULL, NULL);
    long peak = 0;
    while (proc_running(p.pid)) { /* (not reaped: proc_finish does) */
        long kb = rss_anon_kb(p.pid);
        peak = kb > peak ? kb : peak;
        sleep_ms(20);
    }
    r = proc_finish(&p, 120000);
    EXPECT_EXIT(r, 0);
    cr_log_info("copy of %d todos: peak RssAnon %ld KiB, peak RSS %ld KiB", KILL_TODOS, peak,
                r.maxrss_kb);
    run_free(&r);
    /* SQLite page caches of 64 MiB (source, and SQLite target) are allowed;
     * the todos' descriptions alone are ~90 MB */
#if !defined(__SANITIZE_ADDRESS__) /* ASan's shadow and quarantine are anonymous memory */
    long bound_kb = (dst.pg ? 96 : 160) * 1024;
    cr_assert_lt(peak, bound_kb, "the copy's memory grew to %ld KiB", peak);
#endif
    cr_assert_eq(count_rows(&dst, "todos"), KILL_TODOS);
    verify_expect(src.url, dst.url, 0);
}

/* ---- verify finds what was changed by hand --------------------------------------------------- */

Test(cli_db, verify_names_rows_changed_deleted_and_added_on_the_target, PAIR, .timeout = 120)
{
    make_current(&src, 40, 3000);
    copy_ok(src.url, dst.url);
    verify_expect(src.url, dst.url, 0);

    char *ids = sql_rows(&src, "SELECT id FROM todos ORDER BY id");
    char changed[37], ms_changed[37], deleted[37], added[37], uchanged[37], uadded[37];
    /* rows spread through the key space: first, middle, last */
    snprintf(changed, sizeof(changed), "%.36s", ids);
    snprintf(ms_changed, sizeof(ms_changed), "%.36s", ids + 37 * 1500);
    snprintf(deleted, sizeof(deleted), "%.36s", ids + 37 * 2999);
    free(ids);
    char *uid = sql_text(&src, "SELECT id FROM users ORDER BY id LIMIT 1 OFFSET 20");
    snprintf(uchanged, sizeof(uchanged), "%s", uid);
    free(uid);
    uuid_v4(added);
    uuid_v4(uadded);

    /* updated_at moved by one millisecond */
    char *upd = canon_value(&dst, "todos", ms_changed, "updated_at");
    upd[22] = upd[22] == '9' ? '8' : (char)(upd[22] + 1);
    sql_execf(&dst,
              "UPDATE todos SET title = 'changed by hand' WHERE id = '%s';"
              "UPDATE todos SET updated_at = '%s' WHERE id = '%s';"
              "DELETE FROM todos WHERE id = '%s';"
              "UPDATE users SET is_active = %s WHERE id = '%s';"
              "INSERT INTO users (id, email, password_hash, name, is_active, created_at,"
              " updated_at) VALUES ('%s', 'added@example.com', 'h', NULL, %s,"
              " '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z');"
              "INSERT INTO todos (id, user_id, title, description, completed,"
              " completed_at, created_at, updated_at, version) VALUES ('%s', '%s', 'added',"
              " NULL, %s, NULL, '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z', 1);",
              changed, upd, ms_changed, deleted,
              dst.pg ? "NOT is_active" : "1 - is_active", uchanged, uadded,
              dst.pg ? "true" : "1", added, uadded, dst.pg ? "false" : "0");
    free(upd);
    /* extra rows before the first and after the last source key */
    static const char *const edge[] = {"00000000-0000-4000-8000-000000000000",
                                       "ffffffff-ffff-4fff-bfff-ffffffffffff"};
    for (int i = 0; i < 2; i++)
        sql_execf(&dst,
                  "INSERT INTO todos (id, user_id, title, description, completed, completed_at,"
                  " created_at, updated_at, version) VALUES ('%s', '%s', 'edge', NULL, %s, NULL,"
                  " '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z', 1);",
                  edge[i], uadded, dst.pg ? "false" : "0");

    struct run r = RUN("db", "verify", "--source", src.url, "--target", dst.url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.out, "different");
    /* each named, with its kind and differing columns, on its own line */
    char *want[] = {
        xfmt("DIFFERENT todos %s columns: title", changed),
        xfmt("DIFFERENT todos %s columns: updated_at", ms_changed),
        xfmt("MISSING   todos %s", deleted),
        xfmt("EXTRA     todos %s", added),
        xfmt("DIFFERENT users %s columns: is_active", uchanged),
        xfmt("EXTRA     users %s", uadded),
        xfmt("EXTRA     todos %s", edge[0]),
        xfmt("EXTRA     todos %s", edge[1]),
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        EXPECT_IN(r.out, want[i]);
        free(want[i]);
    }
    run_free(&r);

    r = RUN("db", "verify", "--source", src.url, "--target", dst.url, "--json");
    EXPECT_EXIT(r, 1);
    json_t *j = json_of(&r);
    cr_assert(json_is_false(json_object_get(j, "identical")));
    json_t *t = json_table(j, "todos");
    cr_assert_eq(jint(t, "missing"), 1);
    cr_assert_eq(jint(t, "extra"), 3);
    cr_assert_eq(jint(t, "different"), 2);
    cr_assert_eq(jint(t, "source_rows"), 3000);
    cr_assert_eq(jint(t, "target_rows"), 3002);
    json_t *diffs = json_object_get(t, "differences");
    cr_assert_eq(json_array_size(diffs), 6);
    size_t k;
    json_t *o;
    int hits = 0;
    json_array_foreach(diffs, k, o) {
        const char *id = json_string_value(json_object_get(o, "id"));
        const char *kind = json_string_value(json_object_get(o, "kind"));
        cr_assert(id && kind);
        if (strcmp(id, changed) == 0 || strcmp(id, ms_changed) == 0) {
            cr_assert_str_eq(kind, "different");
            json_t *cols = json_object_get(o, "columns");
            cr_assert_eq(json_array_size(cols), 1);
            cr_assert_str_eq(json_string_value(json_array_get(cols, 0)),
                             strcmp(id, changed) == 0 ? "title" : "updated_at");
            hits++;
        } else if (strcmp(id, deleted) == 0) {
            cr_assert_str_eq(kind, "missing");
            hits++;
        } else if (strcmp(id, added) == 0 || strcmp(id, edge[0]) == 0 ||
                   strcmp(id, edge[1]) == 0) {
            cr_assert_str_eq(kind, "extra");
            hits++;
        }
    }
    cr_assert_eq(hits, 6);
    t = json_table(j, "users");
    cr_assert_eq(jint(t, "different"), 1);
    cr_assert_eq(jint(t, "extra"), 1);
    cr_assert_eq(jint(t, "missing"), 0);
    json_decref(j);
    run_free(&r);
}

/* A source row that cannot be converted: verify cannot tell (exit 2), and
 * names the row as copy would. */
Test(cli_db, verify_of_an_unconvertible_source_row_is_an_error, PAIR, .timeout = 60)
{
    char gu[37], gt[37], bad[37], hb[33], hg[33];
    make_good_legacy(&src, gu, gt);
    copy_ok(src.url, dst.url);
    new_uuid(bad, hb);
    uuid_hex32(gu, hg);
    sql_execf(&src,
              "INSERT INTO tasks VALUES ('%s', '%s', 'ok', NULL, 'sometimes', NULL,"
              " '2020-01-01', NULL)",
              hb, hg);
    struct run r = RUN("db", "verify", "--source", src.url, "--target", dst.url);
    EXPECT_EXIT(r, 2);
    expect_key(r.err, bad);
    EXPECT_IN(r.err, "completed");
    EXPECT_IN(r.err, "sometimes");
    EXPECT_NOT_IN(r.out, "identical");
    run_free(&r);
}

/* More differences than the report keeps: the first 100, then a count. */
Test(cli_db, verify_reports_the_first_100_then_a_count, PAIR, .timeout = 90)
{
    make_current(&src, 10, 2000);
    copy_ok(src.url, dst.url);
    sql_exec(&dst, "DELETE FROM todos WHERE id IN (SELECT id FROM todos ORDER BY id LIMIT 250)");
    struct run r = RUN("db", "verify", "--source", src.url, "--target", dst.url, "--json");
    EXPECT_EXIT(r, 1);
    json_t *j = json_of(&r);
    json_t *t = json_table(j, "todos");
    cr_assert_eq(jint(t, "missing"), 250);
    cr_assert_eq(json_array_size(json_object_get(t, "differences")), 100);
    cr_assert_eq(jint(t, "more"), 150);
    json_decref(j);
    run_free(&r);
}

/* ---- dry run, truncate, no-migrate, versions ------------------------------------------------- */

Test(cli_db, dry_run_writes_nothing, PAIR, .timeout = 90)
{
    struct tdb lite;
    tdb_sqlite(&lite);
    make_current(&src, 5, 50);

    struct run r = RUN("db", "copy", "--from", src.url, "--to", lite.url, "--dry-run", "--json");
    EXPECT_EXIT(r, 0);
    json_t *j = json_of(&r);
    cr_assert(json_is_true(json_object_get(j, "dry_run")));
    cr_assert_eq(jint(json_table(j, "todos"), "read"), 50);
    cr_assert_eq(jint(json_table(j, "todos"), "written"), 0);
    cr_assert_eq(jint(json_table(j, "todos"), "would_write"), 50);
    cr_assert_gt(jint(j, "migrations_pending"), 0);
    json_decref(j);
    run_free(&r);
    cr_assert(!file_exists(lite.path), "--dry-run created the SQLite target %s", lite.path);

    if (dst.pg) {
        EXPECT_RUN(0, "db", "copy", "--from", src.url, "--to", dst.url, "--dry-run");
        cr_assert_eq(table_exists(&dst, "schema_migrations"), 0, "--dry-run migrated the target");
        cr_assert_eq(table_exists(&dst, "users"), 0, "--dry-run created tables");
    }

    /* a migrated target with rows: refused without --truncate, and with it
     * nothing is emptied */
    copy_ok(src.url, dst.url);
    char *before = canon_all(&dst);
    r = RUN("db", "copy", "--from", src.url, "--to", dst.url, "--dry-run");
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.err, "--truncate");
    run_free(&r);
    sql_exec(&src, "DELETE FROM todos WHERE rowid % 2 = 0");
    r = RUN("db", "copy", "--from", src.url, "--to", dst.url, "--dry-run", "--truncate", "--json");
    EXPECT_EXIT(r, 0);
    j = json_of(&r);
    cr_assert_eq(jint(json_table(j, "todos"), "would_write"), 25);
    json_decref(j);
    run_free(&r);
    expect_unchanged(&dst, before, "target before and after --dry-run --truncate");
    tdb_done(&lite);
}

Test(cli_db, non_empty_target_needs_truncate, PAIR, .timeout = 90)
{
    make_current(&src, 8, 200);
    copy_ok(src.url, dst.url);
    /* the source changes: 50 todos gone, a user and todos added on the target */
    sql_exec(&src, "DELETE FROM todos WHERE rowid <= 50");
    char *before = canon_all(&dst);

    struct run r = RUN("db", "copy", "--from", src.url, "--to", dst.url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.err, "--truncate");
    EXPECT_IN(r.out, "failed: nothing was written");
    cr_assert(strstr(r.err, "users") != NULL || strstr(r.err, "todos") != NULL,
              "the message names no table: %s", r.err);
    run_free(&r);
    r = RUN("db", "copy", "--from", src.url, "--to", dst.url, "--json");
    EXPECT_EXIT(r, 1);
    json_t *j = json_of(&r);
    cr_assert(json_is_false(json_object_get(j, "ok")));
    const char *e = json_string_value(json_object_get(j, "error"));
    cr_assert(e != NULL && strstr(e, "--truncate") != NULL, "error: %s", e ? e : "(none)");
    cr_assert_eq(jint(json_object_get(j, "total"), "written"), 0);
    json_decref(j);
    run_free(&r);
    expect_unchanged(&dst, before, "target refused");

    EXPECT_RUN(0, "db", "copy", "--from", src.url, "--to", dst.url, "--truncate");
    cr_assert_eq(count_rows(&dst, "todos"), 150);
    verify_expect(src.url, dst.url, 0);
}

Test(cli_db, no_migrate_refuses_an_unmigrated_target, PAIR, .timeout = 60)
{
    make_current(&src, 2, 5);
    struct run r = RUN("db", "copy", "--from", src.url, "--to", dst.url, "--no-migrate");
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.err, "todo migrate up");
    run_free(&r);
    if (dst.pg || file_exists(dst.path))
        cr_assert_eq(table_exists(&dst, "users"), 0, "--no-migrate created tables");
    migrate_up(&dst);
    r = RUN("db", "copy", "--from", src.url, "--to", dst.url, "--no-migrate", "--json");
    EXPECT_EXIT(r, 0);
    json_t *j = json_of(&r);
    cr_assert_eq(jint(j, "migrations_applied"), 0);
    json_decref(j);
    run_free(&r);
    verify_expect(src.url, dst.url, 0);
}

Test(cli_db, a_source_at_an_unknown_version_is_refused, PAIR, .timeout = 60)
{
    make_current(&src, 2, 5);
    sql_exec(&src, "INSERT INTO schema_migrations VALUES (9999, 'from_the_future', 'x',"
                   " '2030-01-01T00:00:00.000Z', 1)");
    struct run r = RUN("db", "copy", "--from", src.url, "--to", dst.url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.err, "9999");
    run_free(&r);
    expect_no_users(&dst);
}

/* A target migrated by a newer binary, and a layout forced against what the
 * source is: refused, nothing written. */
Test(cli_db, a_target_at_an_unknown_version_or_a_wrong_layout_is_refused, PAIR, .timeout = 60)
{
    struct tdb leg; /* src: the current layout */
    char gu[37], gt[37];
    tdb_sqlite(&leg);
    make_current(&src, 2, 5);
    make_good_legacy(&leg, gu, gt);

    EXPECT_RUN(1, "db", "copy", "--from", leg.url, "--to", dst.url, "--from-layout", "current");
    EXPECT_RUN(1, "db", "copy", "--from", src.url, "--to", dst.url, "--from-layout", "legacy");
    expect_no_users(&dst);

    migrate_up(&dst);
    sql_exec(&dst, dst.pg ? "INSERT INTO schema_migrations VALUES (9999, 'from_the_future', 'x',"
                            " now(), 1)"
                          : "INSERT INTO schema_migrations VALUES (9999, 'from_the_future', 'x',"
                            " '2030-01-01T00:00:00.000Z', 1)");
    struct run r = RUN("db", "copy", "--from", src.url, "--to", dst.url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.err, "9999");
    run_free(&r);
    cr_assert_eq(count_rows(&dst, "users"), 0);
    cr_assert_eq(sql_int(&dst, "SELECT count(*) FROM schema_migrations WHERE version = 9999"), 1);
    tdb_done(&leg);
}

/* PostgreSQL -> PostgreSQL: identical, verify passes. */
Test(cli_db, postgres_to_postgres, .timeout = 90)
{
    if (!pg_mode())
        cr_skip_test("needs PostgreSQL (DATABASE_URL)");
    struct tdb seed, a, b;
    tdb_sqlite(&seed);
    tdb_pg(&a);
    tdb_pg(&b);
    make_current(&seed, 10, 500);
    copy_ok(seed.url, a.url);
    copy_ok(a.url, b.url);
    char *ca = canon_all(&a), *cb = canon_all(&b);
    expect_same("PostgreSQL copies", ca, cb);
    free(ca);
    free(cb);
    verify_expect(a.url, b.url, 0);
    tdb_done(&seed);
    tdb_done(&a);
    tdb_done(&b);
}

/* A PostgreSQL source may hold microseconds (the column is timestamptz) and
 * its sessions may default to another TimeZone: the way back truncates to
 * UTC milliseconds, and verify compares the same way on both sides. */
Test(cli_db, postgres_source_with_microseconds_and_another_timezone, .timeout = 90)
{
    if (!pg_mode())
        cr_skip_test("needs PostgreSQL (DATABASE_URL)");
    struct tdb pg, lite;
    tdb_pg(&pg);
    tdb_sqlite(&lite);
    migrate_up(&pg);
    sql_execf(&pg, "ALTER DATABASE %s SET TimeZone = 'America/New_York'", pg.name);
    char u[37], t[4][37];
    uuid_v4(u);
    for (int i = 0; i < 4; i++)
        uuid_v4(t[i]);
    static const char *const stored[] = {
        "2026-11-21 07:13:46.123999+00", "1969-12-31 23:59:59.9995+00",
        "2021-03-04 05:06:07.000001-05", "2000-02-29 12:00:00+05:30"};
    static const char *const want[] = {"2026-11-21T07:13:46.123Z", "1969-12-31T23:59:59.999Z",
                                       "2021-03-04T10:06:07.000Z", "2000-02-29T06:30:00.000Z"};
    sql_execf(&pg,
              "INSERT INTO users VALUES ('%s', 'pg@example.com', 'h', NULL, true,"
              " '2020-01-01 00:00:00.5555+00', '2020-01-01 00:00:00.5555+00')",
              u);
    for (int i = 0; i < 4; i++)
        sql_execf(&pg,
                  "INSERT INTO todos VALUES ('%s', '%s', 'pg %d', NULL, %s, %s, '%s', '%s', 3)",
                  t[i], u, i, i % 2 ? "true" : "false", i % 2 ? "now()" : "NULL", stored[i],
                  stored[i]);
    copy_ok(pg.url, lite.url);
    for (int i = 0; i < 4; i++)
        expect_value(&lite, "todos", t[i], "created_at", want[i], "PostgreSQL %s", stored[i]);
    expect_value(&lite, "users", u, "created_at", "2020-01-01T00:00:00.555Z",
                 "PostgreSQL 2020-01-01 00:00:00.5555+00");
    verify_expect(pg.url, lite.url, 0);
    verify_expect(lite.url, pg.url, 0);
    tdb_done(&pg);
    tdb_done(&lite);
}

/* Run TODO_BIN args with stderr on a pseudo-terminal; what the terminal
 * showed into *term (caller frees). Returns the exit status. */
static int run_on_terminal(const char *const *args, char **term)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    cr_assert_geq(m, 0, "posix_openpt: %s", strerror(errno));
    cr_assert_eq(grantpt(m), 0);
    cr_assert_eq(unlockpt(m), 0);
    char *name = ptsname(m);
    cr_assert_not_null(name);
    char **argv = todo_argv(args);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int sl = open(name, O_RDWR | O_NOCTTY);
        int nul = open("/dev/null", O_RDWR);
        if (sl < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(sl, 2) < 0)
            _exit(127);
        close(m);
        execv(argv[0], argv);
        _exit(127);
    }
    free(argv);
    char *out = NULL;
    size_t len = 0;
    for (;;) {
        char buf[4096];
        ssize_t got = read(m, buf, sizeof(buf));
        if (got <= 0)
            break; /* EIO once the child (the last holder of the slave) exits */
        out = realloc(out, len + (size_t)got + 1);
        cr_assert_not_null(out);
        memcpy(out + len, buf, (size_t)got);
        len += (size_t)got;
        out[len] = '\0';
    }
    int st;
    waitpid(pid, &st, 0);
    close(m);
    *term = out != NULL ? out : strdup("");
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* On a terminal: a progress line per table on stderr; the summary on stdout
 * is unaffected. */
Test(cli_db, progress_on_a_terminal, PAIR, .timeout = 60)
{
    make_current(&src, 20, 3000);
    char *term = NULL;
    const char *args[] = {"db", "copy", "--from", src.url, "--to", dst.url, NULL};
    int st = run_on_terminal(args, &term);
    cr_assert_eq(st, 0, "exit %d: %s", st, term);
    EXPECT_IN(term, "users");
    EXPECT_IN(term, "todos");
    EXPECT_IN(term, "rows/s");
    EXPECT_IN(term, "3,000");
    free(term);
    cr_assert_eq(count_rows(&dst, "todos"), 3000);
}

/* ---- backup ---------------------------------------------------------------------------------- */

struct writer {
    const char *path;   /* SQLite file, or */
    const char *pg_url; /* a PostgreSQL database */
    atomic_bool stop;
    atomic_int commits;
    char error[256];
};

/* One writer transaction: a user and three todos of it. */
static char *writer_sql(int i, bool pg)
{
    char u[37], t[3][37];
    uuid_v4(u);
    for (int k = 0; k < 3; k++)
        uuid_v4(t[k]);
    const char *ts = "'2024-01-01T00:00:00.000Z'";
    return xfmt("BEGIN%s;"
                "INSERT INTO users VALUES ('%s', 'w%d-%s@example.com', 'h', NULL, %s, %s, %s);"
                "INSERT INTO todos (id, user_id, title, created_at, updated_at) VALUES"
                " ('%s', '%s', 'w', %s, %s), ('%s', '%s', 'w', %s, %s), ('%s', '%s', 'w', %s, %s);"
                "COMMIT;",
                pg ? "" : " IMMEDIATE", u, i, u, pg ? "true" : "1", ts, ts, t[0], u, ts, ts, t[1],
                u, ts, ts, t[2], u, ts, ts);
}

/* Each transaction adds one user and three todos, so a consistent copy
 * holds exactly three new todos per new user. (No assertions: a thread.) */
static void *writer_main(void *arg)
{
    struct writer *w = arg;
    sqlite3 *db = NULL;
    PGconn *pc = NULL;
    if (w->pg_url != NULL) {
        pc = PQconnectdb(w->pg_url);
        if (PQstatus(pc) != CONNECTION_OK) {
            snprintf(w->error, sizeof(w->error), "writer: %s", PQerrorMessage(pc));
            goto out;
        }
    } else {
        if (sqlite3_open(w->path, &db) != SQLITE_OK) {
            snprintf(w->error, sizeof(w->error), "writer: cannot open %s", w->path);
            goto out;
        }
        sqlite3_busy_timeout(db, 10000);
    }
    for (int i = 0; !atomic_load(&w->stop); i++) {
        char *sql = writer_sql(i, pc != NULL);
        if (pc != NULL) {
            PGresult *r = PQexec(pc, sql);
            bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            PQclear(r);
            if (!ok)
                snprintf(w->error, sizeof(w->error), "writer: %s", PQerrorMessage(pc));
        } else {
            char *msg = NULL;
            if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
                snprintf(w->error, sizeof(w->error), "writer: %s", msg ? msg : "?");
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            }
            sqlite3_free(msg);
        }
        free(sql);
        if (w->error[0] != '\0')
            break;
        atomic_fetch_add(&w->commits, 1);
        sleep_ms(2);
    }
out:
    sqlite3_close(db);
    PQfinish(pc);
    return NULL;
}

/* Run args (exit 0 asserted) while w keeps committing: w is started before
 * and stopped after; the commits it had made when args started and ended
 * into *at_start and *at_end (what: "backup" or "copy", for messages). */
static void run_while_writing(struct writer *w, const char *const *args, const char *what,
                              int *at_start, int *at_end)
{
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, writer_main, w), 0);
    while (atomic_load(&w->commits) < 5 && w->error[0] == '\0')
        sleep_ms(5);
    *at_start = atomic_load(&w->commits);
    struct run r = run_env(NULL, NULL, args);
    *at_end = atomic_load(&w->commits);
    atomic_store(&w->stop, true);
    pthread_join(th, NULL);
    cr_assert_str_empty(w->error, "%s", w->error);
    EXPECT_EXIT(r, 0);
    run_free(&r);
    cr_assert_gt(*at_end, *at_start, "the writer did not write while the %s ran", what);
}

/* d holds whole writer transactions, from one snapshot taken between
 * at_start and at_end commits: 3 new todos per new user (beyond the
 * nusers and ntodos it started with). */
static void expect_one_snapshot(const struct tdb *d, int nusers, int ntodos, int at_start,
                                int at_end, const char *what)
{
    long long users = count_rows(d, "users") - nusers, todos = count_rows(d, "todos") - ntodos;
    cr_assert_eq(todos, 3 * users, "%s: not one snapshot: %lld new users, %lld new todos", what,
                 users, todos);
    cr_assert_geq(users, at_start, "the %s misses commits made before it started", what);
    cr_assert_leq(users, at_end, "the %s holds commits made after it ended", what);
}

static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    cr_assert_not_null(d);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A backup taken while a writer keeps committing: WAL (the server's mode),
 * or a rollback journal. */
static void backup_while_writing(bool wal)
{
    struct tdb db, bk;
    char bdir[600], to[700];
    int at_start, at_end;
    tdb_sqlite(&db);
    make_current(&db, 50, 40000); /* WAL, some megabytes */
    if (!wal)
        sql_exec(&db, "PRAGMA journal_mode = DELETE");
    temp_dir(bdir, sizeof(bdir));
    snprintf(to, sizeof(to), "%s/backup.db", bdir);

    struct writer w = {.path = db.path};
    run_while_writing(&w,
                      (const char *const[]){"db", "backup", "--database-url", db.url, "--to", to,
                                            NULL},
                      "backup", &at_start, &at_end);

    memset(&bk, 0, sizeof(bk));
    snprintf(bk.path, sizeof(bk.path), "%s", to);
    char *ic = sql_text(&bk, "PRAGMA integrity_check");
    cr_assert_str_eq(ic, "ok");
    free(ic);
    char *fk = sql_rows(&bk, "PRAGMA foreign_key_check");
    cr_assert_str_empty(fk, "foreign_key_check: %s", fk);
    free(fk);
    expect_one_snapshot(&bk, 50, 40000, at_start, at_end, "backup");
    /* the schema came along (migrations table too) */
    cr_assert_eq(table_exists(&bk, "schema_migrations"), 1);
    cr_assert_eq(dir_entries(bdir), 1, "leftover temporary files next to the backup");
    struct stat st;
    cr_assert_eq(stat(to, &st), 0);
    cr_assert_eq(st.st_mode & 077, 0, "backup readable by others: %o", st.st_mode & 0777);

    /* a backup restores: copy it to a fresh target and verify */
    struct tdb restored;
    tdb_target(&restored);
    char *burl = xfmt("sqlite:///%s", to);
    copy_ok(burl, restored.url);
    verify_expect(burl, restored.url, 0);
    free(burl);
    tdb_done(&restored);
    rm_tree(bdir);
    tdb_done(&db);
}

Test(cli_db, backup_is_consistent_while_a_writer_keeps_writing, .timeout = 120)
{
    backup_while_writing(true);
}

Test(cli_db, backup_of_a_rollback_journal_database_while_a_writer_keeps_writing, .timeout = 120)
{
    backup_while_writing(false);
}

Test(cli_db, backup_refuses_an_existing_file_without_force, .timeout = 60)
{
    struct tdb db;
    char to[700];
    tdb_sqlite(&db);
    make_current(&db, 3, 30);
    snprintf(to, sizeof(to), "%s/existing.db", db.dir);
    write_text(to, "precious\n", "w");

    struct run r = RUN("db", "backup", "--database-url", db.url, "--to", to);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.err, "--force");
    run_free(&r);
    char *text = read_all(to);
    cr_assert_str_eq(text, "precious\n");
    free(text);

    /* DATABASE_URL from the environment, --force */
    char *env = xfmt("DATABASE_URL=%s", db.url);
    const char *envv[] = {env, NULL};
    r = run_env(envv, NULL, (const char *const[]){"db", "backup", "--to", to, "--force", NULL});
    EXPECT_EXIT(r, 0);
    run_free(&r);
    free(env);
    struct tdb bk = {0};
    snprintf(bk.path, sizeof(bk.path), "%s", to);
    cr_assert_eq(count_rows(&bk, "todos"), 30);

    /* a source that does not exist: an error, nothing created */
    char missing[800], to2[800];
    snprintf(missing, sizeof(missing), "%s/missing.db", db.dir);
    snprintf(to2, sizeof(to2), "%s/b2.db", db.dir);
    char *murl = xfmt("sqlite:///%s", missing);
    EXPECT_RUN(1, "db", "backup", "--database-url", murl, "--to", to2);
    free(murl);
    cr_assert(!file_exists(missing), "backup created its source");
    cr_assert(!file_exists(to2));
    tdb_done(&db);
}

Test(cli_db, backup_of_postgres_prints_pg_dump_without_the_password, .timeout = 30)
{
    char dir[600], to[700];
    temp_dir(dir, sizeof(dir));
    snprintf(to, sizeof(to), "%s/pg.dump", dir);
    struct run r = RUN("db", "backup", "--database-url",
                       "postgresql://alice:s3cr3t-pw@db.example.com:5433/app?sslmode=require",
                       "--to", to);
    EXPECT_EXIT(r, 2);
    char *all = both(&r);
    EXPECT_IN(all, "pg_dump");
    EXPECT_IN(all, "db.example.com");
    EXPECT_IN(all, "5433");
    EXPECT_IN(all, "app");
    EXPECT_IN(all, to);
    EXPECT_NOT_IN(all, "s3cr3t-pw");
    free(all);
    run_free(&r);
    cr_assert(!file_exists(to));
    rm_tree(dir);
}

/* Passwords never appear in any output of copy or verify. */
Test(cli_db, no_password_in_copy_or_verify_output, .timeout = 60)
{
    struct tdb db;
    tdb_sqlite(&db);
    make_current(&db, 1, 1);
    const char *url = "postgresql://bob:hunter2-secret@127.0.0.1:1/nope?connect_timeout=2";
    struct run r = RUN("db", "copy", "--from", db.url, "--to", url, "--json");
    cr_assert_neq(r.status, 0);
    char *all = both(&r);
    EXPECT_NOT_IN(all, "hunter2-secret");
    free(all);
    if (r.out[0] != '\0')
        json_decref(json_of(&r));
    run_free(&r);
    r = RUN("db", "verify", "--source", db.url, "--target", url, "--json");
    EXPECT_EXIT(r, 2);
    all = both(&r);
    EXPECT_NOT_IN(all, "hunter2-secret");
    free(all);
    json_t *j = json_of(&r);
    cr_assert(json_is_null(json_object_get(j, "identical")));
    cr_assert(json_is_string(json_object_get(j, "error")));
    json_decref(j);
    run_free(&r);
    tdb_done(&db);
}

/* copy reads one snapshot of a SQLite source that a writer keeps changing:
 * whole transactions or nothing of them. */
Test(cli_db, copy_reads_one_snapshot_while_a_writer_keeps_writing, .timeout = 120)
{
    /* SQLite source -> SQLite; on PostgreSQL: a PostgreSQL source -> SQLite */
    struct tdb lite, pgsrc, out, *from = &lite;
    int at_start, at_end;
    tdb_sqlite(&lite);
    make_current(&lite, 50, 20000);
    memset(&pgsrc, 0, sizeof(pgsrc));
    if (pg_mode()) {
        tdb_pg(&pgsrc);
        copy_ok(lite.url, pgsrc.url);
        from = &pgsrc;
    }
    tdb_sqlite(&out);
    migrate_up(&out);

    struct writer w = {.path = lite.path, .pg_url = from->pg ? from->url : NULL};
    run_while_writing(&w,
                      (const char *const[]){"db", "copy", "--from", from->url, "--to", out.url,
                                            "--batch-size", "1000", NULL},
                      "copy", &at_start, &at_end);
    expect_one_snapshot(&out, 50, 20000, at_start, at_end, "copy");
    tdb_done(&lite);
    tdb_done(&pgsrc);
    tdb_done(&out);
}
