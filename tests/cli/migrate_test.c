/*
 * tests/cli/migrate_test: `todo migrate` driven as a user drives it — the
 * real binary (TODO_BIN), its exit codes and output — on SQLite, and on
 * PostgreSQL when DATABASE_URL names one (tests/meson.build runs the suite a
 * second time under scripts/with-pg). The helpers are tests/cli/cli_support.h.
 *
 * Each test gets a database of its own: a fresh SQLite file, or a fresh
 * PostgreSQL database (CREATE DATABASE on WITH_PG_CLUSTER_URL), except the
 * round trip, which on PostgreSQL uses DATABASE_URL itself (so with-pg's
 * check that the cluster's `todo` database was migrated means something).
 * Migration trees for --dir are made from the repository's migrations/
 * (TODO_MIGRATIONS) plus files written by the test.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "cli_support.h"

/* ---- migration trees for --dir -------------------------------------------------- */

static const char *dialect(const struct tdb *d)
{
    return d->pg ? "postgres" : "sqlite";
}

static void copy_file(const char *from, const char *to)
{
    char *text = read_all(from);
    cr_assert(text[0] != '\0', "%s is empty or missing", from);
    write_text(to, text, "w");
    free(text);
}

/* DIR/<dialect>/ holding the repository's 0001_init pair. */
static void tree_make(const struct tdb *d, char *dir, size_t len)
{
    const char *src = env_or_fail("TODO_MIGRATIONS");
    char sub[PATH_MAX + 16], from[PATH_MAX + 64], to[PATH_MAX + 64];

    temp_dir(dir, len);
    snprintf(sub, sizeof(sub), "%s/%s", dir, dialect(d));
    cr_assert_eq(mkdir(sub, 0755), 0);
    for (int down = 0; down < 2; down++) {
        const char *file = down ? "0001_init.down.sql" : "0001_init.up.sql";
        snprintf(from, sizeof(from), "%s/%s/%s", src, dialect(d), file);
        snprintf(to, sizeof(to), "%s/%s", sub, file);
        copy_file(from, to);
    }
}

/* Write DIR/<dialect>/<file> with the text for this test's dialect. */
static void tree_put(const struct tdb *d, const char *dir, const char *file,
                     const char *sqlite_text, const char *pg_text)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s/%s", dir, dialect(d), file);
    write_text(path, d->pg ? pg_text : sqlite_text, "w");
}

/* ---- usage --------------------------------------------------------------------- */

Test(cli_migrate, usage_errors_exit_2_and_help_exits_0)
{
    static const char *const cmds[] = {"status", "up", "down", "history", "new",
                                       "stamp", "check", "wait"};
    struct run r;

    EXPECT_RUN(2, "migrate");
    r = RUN("migrate", "--help");
    EXPECT_EXIT(r, 0);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        EXPECT_IN(r.out, cmds[i]);
    run_free(&r);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char want[64];
        r = RUN("migrate", cmds[i], "--help");
        EXPECT_EXIT(r, 0);
        snprintf(want, sizeof(want), "Usage: todo migrate %s", cmds[i]);
        EXPECT_IN(r.out, want);
        EXPECT_IN(r.out, "Exit:");
        run_free(&r);
    }
    const char *const bad[][7] = {
        {"migrate", "bogus"},
        {"migrate", "up", "--bogus"},
        {"migrate", "up", "--to", "x"},
        {"migrate", "up", "--to"},
        {"migrate", "up", "extra"},
        {"migrate", "stamp"},
        {"migrate", "stamp", "two"},
        {"migrate", "new", "Bad-Name"},
        {"migrate", "status", "--steps", "1"},
        {"migrate", "down", "--to", "1", "--steps", "1"},
        {"migrate", "down", "--steps", "0"},
        {"migrate", "up", "--lock-timeout", "-1"},
        {"migrate", "wait", "--timeout", "soon"},
        {"migrate", "status", "--json=yes"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = run_env(NULL, NULL, bad[i]);
        cr_assert_eq(r.status, 2, "%s %s %s: exit %d\n%s", bad[i][1], bad[i][2] ? bad[i][2] : "",
                     bad[i][3] ? bad[i][3] : "", r.status, r.err);
        EXPECT_IN(r.err, "todo migrate");
        run_free(&r);
    }
    r = RUN("--help");
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "migrate");
    run_free(&r);
}

/* ---- round trip ------------------------------------------------------------------- */

Test(cli_migrate, up_down_up_round_trip_leaves_an_identical_schema)
{
    struct tdb d;
    struct run r;

    tdb_shared(&d);
    r = RUN("migrate", "status", "--json", "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    json_t *j = json_of(&r);
    long long latest = jint(j, "latest");
    cr_assert_gt(latest, 0);
    json_decref(j);
    run_free(&r);

    r = RUN("migrate", "up", "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "applying 0001_init");
    run_free(&r);
    char *first = schema_dump(&d);
    EXPECT_RUN(0, "migrate", "check", "--database-url", d.url);
    r = RUN("migrate", "history", "--json", "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    j = json_of(&r);
    cr_assert_eq((long long)json_array_size(j), latest);
    for (size_t i = 0; i < json_array_size(j); i++)
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(j, i), "state")),
                         "applied");
    json_decref(j);
    run_free(&r);

    r = RUN("migrate", "down", "--to", "0", "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "reverting 0001_init");
    run_free(&r);
    cr_assert_eq(table_exists(&d, "todos"), 0);
    cr_assert_eq(table_exists(&d, "users"), 0);
    r = RUN("migrate", "status", "--json", "--exit-code", "--database-url", d.url);
    EXPECT_EXIT(r, 1); /* pending again */
    j = json_of(&r);
    cr_assert_eq(jint(j, "current"), 0);
    cr_assert_eq((long long)json_array_size(json_object_get(j, "pending")), latest);
    json_decref(j);
    run_free(&r);

    EXPECT_RUN(0, "migrate", "up", "--database-url", d.url);
    char *second = schema_dump(&d);
    cr_assert_str_eq(first, second, "the schema differs after down and up again");
    r = RUN("migrate", "check", "--json", "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    j = json_of(&r);
    cr_assert(json_is_true(json_object_get(j, "identical")));
    cr_assert_eq(json_array_size(json_object_get(j, "differences")), 0);
    cr_assert_gt(jint(j, "compared"), 10);
    json_decref(j);
    run_free(&r);
    r = RUN("migrate", "up", "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "nothing to do");
    run_free(&r);
    free(first);
    free(second);
    tdb_done(&d);
}

/* ---- failures ------------------------------------------------------------------------ */

Test(cli_migrate, broken_migration_is_rolled_back_and_named)
{
    struct tdb d;
    struct run r;
    char dir[PATH_MAX];

    tdb_target(&d);
    tree_make(&d, dir, sizeof(dir));
    tree_put(&d, dir, "0002_broken.up.sql",
             "-- a migration that fails at its third statement\n"
             "CREATE TABLE audit (x TEXT);\n"
             "ALTER TABLE todos ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;\n"
             "INSERT INTO nowhere VALUES (1);\n",
             "-- a migration that fails at its third statement\n"
             "CREATE TABLE audit (x text);\n"
             "ALTER TABLE todos ADD COLUMN priority integer NOT NULL DEFAULT 0;\n"
             "INSERT INTO nowhere VALUES (1);\n");
    tree_put(&d, dir, "0003_never.up.sql", "CREATE TABLE never (x INTEGER);\n",
             "CREATE TABLE never (x integer);\n");

    r = RUN("migrate", "up", "--dir", dir, "--database-url", d.url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.out, "applying 0001_init ... done");
    EXPECT_IN(r.out, "applying 0002_broken ... failed");
    EXPECT_IN(r.err, "0002_broken.up.sql");
    EXPECT_IN(r.err, "statement 3 (line 4)");
    EXPECT_IN(r.err, "INSERT INTO nowhere VALUES (1)");
    EXPECT_IN(r.err, "nowhere");
    cr_assert_null(strstr(r.out, "0003_never"), "went on after the failure:\n%s", r.out);
    run_free(&r);

    /* Exactly at the previous version: nothing of 0002 is left. */
    cr_assert_eq(table_exists(&d, "audit"), 0);
    cr_assert_eq(table_exists(&d, "never"), 0);
    cr_assert_eq(column_exists(&d, "todos", "priority"), 0);
    cr_assert_eq(sql_int(&d, "SELECT max(version) FROM schema_migrations"), 1);
    EXPECT_RUN(0, "migrate", "check", "--dir", dir, "--database-url", d.url);

    /* Fixed, it goes on from there. */
    tree_put(&d, dir, "0002_broken.up.sql", "CREATE TABLE audit (x TEXT);\n",
             "CREATE TABLE audit (x text);\n");
    r = RUN("migrate", "up", "--dir", dir, "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "applied 2 migrations");
    run_free(&r);
    cr_assert_eq(table_exists(&d, "never"), 1);
    rm_tree(dir);
    tdb_done(&d);
}

Test(cli_migrate, changed_checksum_stops_up_unless_allowed)
{
    struct tdb d;
    struct run r;
    char dir[PATH_MAX], path[PATH_MAX * 2];

    tdb_target(&d);
    tree_make(&d, dir, sizeof(dir));
    EXPECT_RUN(0, "migrate", "up", "--dir", dir, "--database-url", d.url);
    tree_put(&d, dir, "0002_next.up.sql", "CREATE TABLE next (x INTEGER);\n",
             "CREATE TABLE next (x integer);\n");
    snprintf(path, sizeof(path), "%s/%s/0001_init.up.sql", dir, dialect(&d));
    write_text(path, "-- edited after it was applied\n", "a");

    r = RUN("migrate", "up", "--dir", dir, "--database-url", d.url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.err, "0001_init.up.sql has changed since it was applied");
    EXPECT_IN(r.err, "--allow-changed");
    run_free(&r);
    cr_assert_eq(table_exists(&d, "next"), 0, "up went on despite the changed file");

    r = RUN("migrate", "status", "--exit-code", "--dir", dir, "--database-url", d.url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.out, "problem:");
    EXPECT_IN(r.out, "0001_init.up.sql");
    run_free(&r);
    r = RUN("migrate", "status", "--json", "--dir", dir, "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    json_t *j = json_of(&r);
    json_t *p = json_array_get(json_object_get(j, "problems"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(p, "kind")), "changed");
    cr_assert_eq(jint(p, "version"), 1);
    json_decref(j);
    run_free(&r);
    r = RUN("migrate", "history", "--dir", dir, "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "changed");
    run_free(&r);

    r = RUN("migrate", "up", "--allow-changed", "--dir", dir, "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "warning: 0001_init.up.sql changed");
    EXPECT_IN(r.out, "applying 0002_next");
    run_free(&r);
    cr_assert_eq(table_exists(&d, "next"), 1);
    rm_tree(dir);
    tdb_done(&d);
}

Test(cli_migrate, down_refuses_a_migration_without_down_file)
{
    struct tdb d;
    struct run r;
    char dir[PATH_MAX];

    tdb_target(&d);
    tree_make(&d, dir, sizeof(dir));
    tree_put(&d, dir, "0002_oneway.up.sql", "CREATE TABLE oneway (x INTEGER);\n",
             "CREATE TABLE oneway (x integer);\n");
    EXPECT_RUN(0, "migrate", "up", "--dir", dir, "--database-url", d.url);
    r = RUN("migrate", "down", "--to", "0", "--dir", dir, "--database-url", d.url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.err, "0002_oneway.down.sql");
    EXPECT_IN(r.err, "nothing was reverted");
    run_free(&r);
    cr_assert_eq(table_exists(&d, "oneway"), 1);
    cr_assert_eq(table_exists(&d, "todos"), 1);
    cr_assert_eq(sql_int(&d, "SELECT max(version) FROM schema_migrations"), 2);
    rm_tree(dir);
    tdb_done(&d);
}

/* ---- no-transaction migrations ---------------------------------------------------------- */

Test(cli_migrate, no_transaction_migration_runs_alone)
{
    struct tdb d;
    struct run r;
    char dir[PATH_MAX];

    tdb_target(&d);
    tree_make(&d, dir, sizeof(dir));
    tree_put(&d, dir, "0002_title_index.up.sql",
             "-- migrate:no-transaction\n"
             "CREATE INDEX todos_title_only ON todos (title);\n"
             "VACUUM;\n",
             "-- migrate:no-transaction\n"
             "CREATE INDEX CONCURRENTLY todos_title_only ON todos (title);\n");
    tree_put(&d, dir, "0002_title_index.down.sql", "DROP INDEX todos_title_only;\n",
             "DROP INDEX todos_title_only;\n");
    r = RUN("migrate", "up", "--dir", dir, "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "0002_title_index runs outside a transaction");
    EXPECT_IN(r.out, "applying 0002_title_index ... done");
    run_free(&r);
    EXPECT_RUN(0, "migrate", "check", "--dir", dir, "--database-url", d.url);
    r = RUN("migrate", "down", "--dir", dir, "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "reverting 0002_title_index ... done");
    run_free(&r);
    EXPECT_RUN(0, "migrate", "check", "--dir", dir, "--database-url", d.url);
    rm_tree(dir);
    tdb_done(&d);
}

Test(cli_migrate, pooler_host_refuses_a_no_transaction_migration)
{
    struct tdb d;
    struct run r;
    char dir[PATH_MAX], url[1200];

    if (!pg_mode())
        cr_skip_test("PostgreSQL only (DATABASE_URL is not postgres)");
    tdb_target(&d);
    /* A Neon-style pooler host name, connected through hostaddr to the
     * test cluster: the tool knows the endpoint only by its name. */
    const char *at = strchr(strstr(d.url, "://") + 3, '@');
    const char *colon = strchr(at, ':');
    cr_assert_not_null(colon);
    snprintf(url, sizeof(url), "%.*sep-test-123-pooler.example.com%s?hostaddr=127.0.0.1",
             (int)(at + 1 - d.url), d.url, colon);
    tree_make(&d, dir, sizeof(dir));
    tree_put(&d, dir, "0002_concurrently.up.sql", "",
             "-- migrate:no-transaction\n"
             "CREATE INDEX CONCURRENTLY todos_title_only ON todos (title);\n");
    r = RUN("migrate", "up", "--dir", dir, "--database-url", url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.out, "applying 0001_init ... done");
    EXPECT_IN(r.err, "0002_concurrently.up.sql");
    EXPECT_IN(r.err, "ep-test-123.example.com");
    EXPECT_IN(r.err, "MIGRATIONS_DATABASE_URL");
    run_free(&r);
    cr_assert_eq(sql_int(&d, "SELECT max(version) FROM schema_migrations"), 1);
    rm_tree(dir);
    tdb_done(&d);
}

/* ---- concurrency ------------------------------------------------------------------------ */

#define RACERS 4

Test(cli_migrate, concurrent_up_processes_apply_each_migration_once)
{
    struct tdb d;
    struct proc p[RACERS];
    struct run r[RACERS];
    char dir[PATH_MAX];
    int applying1 = 0, applying2 = 0, applying3 = 0;

    tdb_target(&d);
    tree_make(&d, dir, sizeof(dir));
    /* Slow enough that the others arrive while it runs. */
    tree_put(&d, dir, "0002_slow.up.sql",
             "CREATE TABLE slow AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1"
             " FROM c WHERE x < 300000) SELECT count(*) AS n FROM c;\n",
             "SELECT pg_sleep(0.5);\nCREATE TABLE slow (n integer);\n");
    tree_put(&d, dir, "0003_after.up.sql", "CREATE TABLE after_slow (x INTEGER);\n",
             "CREATE TABLE after_slow (x integer);\n");
    for (int i = 0; i < RACERS; i++)
        proc_start(&p[i], (const char *const[]){"migrate", "up", "--dir", dir,
                                                "--database-url", d.url, NULL},
                   NULL, NULL);
    for (int i = 0; i < RACERS; i++) {
        r[i] = proc_finish(&p[i], RUN_TIMEOUT_MS);
        EXPECT_EXIT(r[i], 0);
        applying1 += count_of(r[i].out, "applying 0001_init");
        applying2 += count_of(r[i].out, "applying 0002_slow");
        applying3 += count_of(r[i].out, "applying 0003_after");
    }
    cr_assert_eq(applying1, 1, "0001 applied %d times", applying1);
    cr_assert_eq(applying2, 1, "0002 applied %d times", applying2);
    cr_assert_eq(applying3, 1, "0003 applied %d times", applying3);
    for (int i = 0; i < RACERS; i++) {
        EXPECT_IN(r[i].out, "the database is at 0003_after");
        run_free(&r[i]);
    }
    cr_assert_eq(sql_int(&d, "SELECT count(*) FROM schema_migrations"), 3);
    rm_tree(dir);
    tdb_done(&d);
}

Test(cli_migrate, lock_timeout_gives_up_with_a_clear_error)
{
    struct tdb d;
    struct run r;

    tdb_target(&d);
    /* stamp needs a real version */
    EXPECT_RUN(2, "migrate", "stamp", "0", "--database-url", d.url);
    /* Hold the migrators' lock from outside. */
    sqlite3 *lite = NULL;
    PGconn *pg = NULL;
    if (d.pg) {
        pg = PQconnectdb(d.url);
        cr_assert_eq(PQstatus(pg), CONNECTION_OK);
        PGresult *res = PQexec(pg, "SELECT pg_advisory_lock(7745120923551030881)");
        cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
        PQclear(res);
    } else {
        cr_assert_eq(sqlite3_open(d.path, &lite), SQLITE_OK);
        cr_assert_eq(sqlite3_exec(lite, "PRAGMA journal_mode = WAL; BEGIN IMMEDIATE", NULL, NULL,
                                  NULL),
                     SQLITE_OK);
    }
    int64_t t0 = mono_ms();
    r = RUN("migrate", "up", "--lock-timeout", "0.5", "--database-url", d.url);
    int64_t took = mono_ms() - t0;
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.err, "--lock-timeout");
    cr_assert_lt(took, 15000, "took %lld ms", (long long)took);
    run_free(&r);
    if (pg != NULL)
        PQfinish(pg);
    if (lite != NULL)
        sqlite3_close(lite);
    EXPECT_RUN(0, "migrate", "up", "--lock-timeout", "5", "--database-url", d.url);
    tdb_done(&d);
}

/* ---- check ------------------------------------------------------------------------------- */

Test(cli_migrate, check_reports_a_column_added_by_hand)
{
    struct tdb d;
    struct run r;

    tdb_target(&d);
    EXPECT_RUN(0, "migrate", "up", "--database-url", d.url);
    sql_exec(&d, "ALTER TABLE todos ADD COLUMN priority INTEGER");
    sql_exec(&d, "DROP INDEX todos_user_title");

    r = RUN("migrate", "check", "--database-url", d.url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.out, "drift");
    EXPECT_IN(r.out, "extra    column todos.priority");
    EXPECT_IN(r.out, "missing  index todos_user_title");
    run_free(&r);
    r = RUN("migrate", "check", "--json", "--database-url", d.url);
    EXPECT_EXIT(r, 1);
    json_t *j = json_of(&r);
    cr_assert(json_is_false(json_object_get(j, "identical")));
    json_t *diffs = json_object_get(j, "differences");
    cr_assert_eq(json_array_size(diffs), 2, "%s", r.out);
    bool column = false;
    for (size_t i = 0; i < json_array_size(diffs); i++) {
        json_t *e = json_array_get(diffs, i);
        if (strcmp(json_string_value(json_object_get(e, "object")), "column todos.priority") ==
            0) {
            column = true;
            cr_assert_str_eq(json_string_value(json_object_get(e, "kind")), "extra");
            cr_assert(json_is_null(json_object_get(e, "migrations")));
        }
    }
    cr_assert(column, "%s", r.out);
    json_decref(j);
    run_free(&r);

    /* A changed default is reported as changed. */
    sql_exec(&d, "ALTER TABLE todos DROP COLUMN priority");
    sql_exec(&d, "CREATE INDEX todos_user_title ON todos (user_id, title, id)");
    EXPECT_RUN(0, "migrate", "check", "--database-url", d.url);
    if (d.pg) {
        sql_exec(&d, "ALTER TABLE todos ALTER COLUMN version SET DEFAULT 2");
        r = RUN("migrate", "check", "--database-url", d.url);
        EXPECT_EXIT(r, 1);
        EXPECT_IN(r.out, "changed  column todos.version");
        run_free(&r);
    }
    tdb_done(&d);
}

/* ---- stamp, Alembic --------------------------------------------------------------------- */

Test(cli_migrate, stamp_records_without_running)
{
    struct tdb d;
    struct run r;

    tdb_target(&d);
    r = RUN("migrate", "stamp", "0001", "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "recorded 0001_init as applied (not run)");
    run_free(&r);
    cr_assert_eq(table_exists(&d, "todos"), 0, "stamp ran the migration");
    cr_assert_eq(sql_int(&d, "SELECT max(version) FROM schema_migrations"), 1);
    r = RUN("migrate", "stamp", "1", "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "nothing to do");
    run_free(&r);
    r = RUN("migrate", "stamp", "999", "--database-url", d.url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.err, "there is no migration 0999");
    run_free(&r);
    tdb_done(&d);
}

Test(cli_migrate, alembic_database_is_reported_and_never_written_over)
{
    struct tdb d;
    struct run r;
    char path[PATH_MAX + 64];

    tdb_target(&d);
    sql_exec(&d, "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)");
    sql_exec(&d, "INSERT INTO alembic_version VALUES ('3f2a9c1b7d4e')");
    r = RUN("migrate", "status", "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "Alembic");
    EXPECT_IN(r.out, "3f2a9c1b7d4e");
    EXPECT_IN(r.out, "todo migrate stamp");
    EXPECT_IN(r.out, "todo db copy");
    run_free(&r);
    r = RUN("migrate", "status", "--exit-code", "--json", "--database-url", d.url);
    EXPECT_EXIT(r, 1);
    json_t *j = json_of(&r);
    json_t *al = json_object_get(j, "alembic");
    cr_assert_str_eq(json_string_value(json_object_get(al, "version")), "3f2a9c1b7d4e");
    cr_assert(json_is_false(json_object_get(al, "adopted")));
    json_decref(j);
    run_free(&r);

    r = RUN("migrate", "up", "--database-url", d.url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.err, "Alembic");
    run_free(&r);
    cr_assert_eq(table_exists(&d, "todos"), 0, "up wrote over an Alembic database");
    cr_assert_eq(table_exists(&d, "schema_migrations"), 0);

    /* The adoption path: the schema is (made) what 0001 gives; stamp it. */
    snprintf(path, sizeof(path), "%s/%s/0001_init.up.sql", env_or_fail("TODO_MIGRATIONS"),
             dialect(&d));
    char *init = read_all(path);
    sql_exec(&d, init);
    free(init);
    EXPECT_RUN(0, "migrate", "stamp", "1", "--database-url", d.url);
    r = RUN("migrate", "status", "--exit-code", "--database-url", d.url);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "adopted");
    run_free(&r);
    r = RUN("migrate", "check", "--database-url", d.url);
    EXPECT_EXIT(r, 1); /* the leftover alembic_version table */
    EXPECT_IN(r.out, "extra    table alembic_version");
    run_free(&r);
    sql_exec(&d, "DROP TABLE alembic_version");
    EXPECT_RUN(0, "migrate", "check", "--database-url", d.url);
    tdb_done(&d);
}

/* ---- new -------------------------------------------------------------------------------- */

Test(cli_migrate, new_creates_the_next_numbered_pair_for_every_dialect)
{
    char dir[PATH_MAX], path[PATH_MAX * 2];
    struct run r;
    struct stat sb;

    temp_dir(dir, sizeof(dir));
    /* Default: ./migrations/ of the working directory. */
    r = run_env(NULL, dir, (const char *const[]){"migrate", "new", "add_tags", NULL});
    EXPECT_EXIT(r, 0);
    run_free(&r);
    static const char *const files[] = {"sqlite/0001_add_tags.up.sql",
                                        "sqlite/0001_add_tags.down.sql",
                                        "postgres/0001_add_tags.up.sql",
                                        "postgres/0001_add_tags.down.sql"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/migrations/%s", dir, files[i]);
        cr_assert_eq(stat(path, &sb), 0, "%s missing", path);
    }
    snprintf(path, sizeof(path), "%s/migrations/postgres/0007_later.up.sql", dir);
    write_text(path, "SELECT 1;\n", "w");
    snprintf(path, sizeof(path), "%s/migrations", dir);
    r = RUN("migrate", "new", "add_index", "--dir", path);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "0008_add_index");
    run_free(&r);
    snprintf(path, sizeof(path), "%s/migrations/sqlite/0008_add_index.up.sql", dir);
    char *text = read_all(path);
    EXPECT_IN(text, "migrate:no-transaction");
    EXPECT_IN(text, "table-rebuild");
    free(text);
    /* The template is a valid (empty) migration: the tree loads and runs. */
    snprintf(path, sizeof(path), "%s/migrations", dir);
    char url[PATH_MAX + 32];
    snprintf(url, sizeof(url), "sqlite:///%s/t.db", dir);
    char sqlite_dir[PATH_MAX * 2];
    snprintf(sqlite_dir, sizeof(sqlite_dir), "%s/migrations/sqlite/0007_later.up.sql", dir);
    write_text(sqlite_dir, "SELECT 1;\n", "w");
    r = RUN("migrate", "up", "--dir", path, "--database-url", url);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "applied 3 migrations");
    run_free(&r);
    /* A name that exists is never overwritten; a bad file name is named. */
    snprintf(path, sizeof(path), "%s/migrations/sqlite/notes.sql", dir);
    write_text(path, "SELECT 1;\n", "w");
    snprintf(path, sizeof(path), "%s/migrations", dir);
    r = RUN("migrate", "status", "--dir", path, "--database-url", url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.err, "notes.sql");
    run_free(&r);
    rm_tree(dir);
}

/* ---- wait -------------------------------------------------------------------------------- */

/* `pg-test-cluster CMD DIR`: its first output line into out (may be NULL);
 * on failure, everything it said goes to the test's message. */
static int cluster_script(const char *cmd, const char *dir, char *out, size_t outlen)
{
    char line[PATH_MAX * 3], said[4096] = "";
    size_t n = 0;
    snprintf(line, sizeof(line), "'%s' %s '%s' 2>&1", env_or_fail("PG_TEST_CLUSTER"), cmd, dir);
    FILE *p = popen(line, "r");
    cr_assert_not_null(p);
    n = fread(said, 1, sizeof(said) - 1, p);
    said[n] = '\0';
    int rc = pclose(p) == 0 ? 0 : -1;
    cr_assert_eq(rc, 0, "pg-test-cluster %s %s failed:\n%s", cmd, dir, said);
    if (out != NULL) {
        snprintf(out, outlen, "%s", said);
        out[strcspn(out, "\n")] = '\0';
    }
    return rc;
}

Test(cli_migrate, wait_returns_once_a_stopped_cluster_is_started)
{
    char dir[PATH_MAX] = "/tmp/todo-cliwait-XXXXXX", url[512] = "";
    struct run r;
    struct proc p;
    int st;

    if (!pg_mode())
        cr_skip_test("PostgreSQL only (DATABASE_URL is not postgres)");
    cr_assert_not_null(mkdtemp(dir));
    chmod(dir, 0755);
    strncat(dir, "/pg", sizeof(dir) - strlen(dir) - 1);
    cr_assert_eq(cluster_script("start", dir, url, sizeof(url)), 0, "pg-test-cluster start");
    cr_assert_eq(cluster_script("halt", dir, NULL, 0), 0);

    r = RUN("migrate", "wait", "--timeout", "1", "--database-url", url);
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.err, "gave up after");
    run_free(&r);

    proc_start(&p, (const char *const[]){"migrate", "wait", "--timeout", "60", "--database-url",
                                         url, NULL},
               NULL, NULL);
    sleep_ms(1500);
    cr_assert_eq(waitpid(p.pid, &st, WNOHANG), 0, "wait returned while the cluster was down");
    cr_assert_eq(cluster_script("start", dir, NULL, 0), 0);
    int64_t t0 = mono_ms();
    r = proc_finish(&p, 30000);
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "accepts connections");
    cr_assert_lt(mono_ms() - t0, 10000, "wait noticed the start late");
    run_free(&r);
    EXPECT_RUN(0, "migrate", "up", "--database-url", url);
    cluster_script("stop", dir, NULL, 0);
    dir[strlen(dir) - 3] = '\0';
    rmdir(dir);
}

Test(cli_migrate, wait_on_sqlite_checks_the_file_can_be_opened)
{
    struct tdb d;
    char url[PATH_MAX + 64];

    if (pg_mode())
        cr_skip_test("SQLite only");
    tdb_target(&d);
    EXPECT_RUN(0, "migrate", "wait", "--database-url", d.url);
    snprintf(url, sizeof(url), "sqlite:///%s/no/such/dir/x.db", d.dir);
    EXPECT_RUN(1, "migrate", "wait", "--timeout", "1", "--database-url", url);
    tdb_done(&d);
}

/* ---- which database ----------------------------------------------------------------------- */

Test(cli_migrate, migrations_database_url_wins_over_database_url)
{
    struct tdb d;
    struct run r;
    char m_env[1100], d_env[PATH_MAX + 64];

    tdb_target(&d);
    snprintf(m_env, sizeof(m_env), "MIGRATIONS_DATABASE_URL=%s", d.url);
    snprintf(d_env, sizeof(d_env), "DATABASE_URL=sqlite:////nonexistent-dir-%d/x.db",
             (int)getpid());
    r = run_env((const char *const[]){m_env, d_env, NULL}, NULL,
                (const char *const[]){"migrate", "up", NULL});
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "applying 0001_init");
    run_free(&r);
    cr_assert_eq(table_exists(&d, "todos"), 1);
    /* --database-url wins over both. */
    r = run_env((const char *const[]){m_env, d_env, NULL}, NULL,
                (const char *const[]){"migrate", "status", "--database-url", d_env + 13, NULL});
    EXPECT_EXIT(r, 0);
    EXPECT_IN(r.out, "nonexistent-dir");
    run_free(&r);
    tdb_done(&d);
}

/* ---- start-up ------------------------------------------------------------------------------ */

/* Start `todo serve`, wait for its listening line, stop it with SIGTERM:
 * it must exit 0. */
static void serve_until_listening(const char *const *env, const char *cwd)
{
    struct proc p;
    int64_t end = mono_ms() + 20000;
    bool listening = false;

    proc_start(&p, (const char *const[]){"serve", NULL}, env, cwd);
    while (!listening && mono_ms() < end && proc_running(p.pid)) {
        char *err = read_all(p.errp);
        listening = strstr(err, "listening") != NULL;
        free(err);
        if (!listening)
            sleep_ms(50);
    }
    if (listening)
        kill(p.pid, SIGTERM);
    struct run r = proc_finish(&p, 20000);
    cr_assert(listening, "serve did not start (exit %d):\n%s", r.status, r.err);
    EXPECT_EXIT(r, 0);
    run_free(&r);
}

/* Enable once `todo serve` applies the start-up policy (APP_ENV staging /
 * production refuses to start while migrations are pending, unless
 * MIGRATE_ON_START=true): the change to src/cli/serve.c and src/config/ is
 * with the lead (report of issue 4). */
Test(cli_migrate, startup_refuses_in_production_with_pending_migrations)
{
    struct tdb d;
    struct run r;
    char url_env[1100], dir[PATH_MAX];

    tdb_target(&d);
    temp_dir(dir, sizeof(dir));
    snprintf(url_env, sizeof(url_env), "DATABASE_URL=%s", d.url);
    /* PostgreSQL without TLS is refused in production: staging there. */
    const char *const env[] = {url_env, d.pg ? "APP_ENV=staging" : "APP_ENV=production",
                               "SECRET_KEY=0123456789abcdef0123456789abcdef-test", "PORT=0",
                               "HOST=127.0.0.1", "MIGRATE_ON_START=false", NULL};
    r = run_env(env, dir, (const char *const[]){"serve", NULL});
    EXPECT_EXIT(r, 1);
    EXPECT_IN(r.err, "todo migrate up");
    EXPECT_IN(r.err, "MIGRATE_ON_START");
    run_free(&r);
    cr_assert(!d.pg && access(d.path, F_OK) != 0 ? true : table_exists(&d, "todos") == 0,
              "serve migrated in production");

    /* MIGRATE_ON_START=true: it migrates and serves. */
    const char *const env_on[] = {url_env, env[1], env[2], env[3], env[4],
                                  "MIGRATE_ON_START=true", NULL};
    serve_until_listening(env_on, dir);
    cr_assert_eq(table_exists(&d, "todos"), 1);
    /* Up to date: it starts without MIGRATE_ON_START. */
    serve_until_listening(env, dir);
    tdb_done(&d);
    rm_tree(dir);
}
