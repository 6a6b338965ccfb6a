/*
 * dbtool/dbbackup: the copy holds the source's data, is checked and
 * self-contained; existing files are refused without force; failures leave
 * nothing behind; a backup taken while another connection keeps writing is
 * one consistent snapshot.
 */
#include "dbtool/dbbackup.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sqlite3.h>

static char dir[512];

static void setup(void)
{
    const char *base = getenv("TEST_TMPDIR");

    snprintf(dir, sizeof(dir), "%s/dbbackup-XXXXXX", base != NULL ? base : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

TestSuite(dbbackup, .init = setup, .fini = teardown, .timeout = 120);

static char *path(const char *name)
{
    static char bufs[4][1024];
    static int k;
    char *b = bufs[k++ % 4];

    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

static sqlite3 *open_db(const char *p)
{
    sqlite3 *db = NULL;

    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    return db;
}

static void exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql,
                 msg != NULL ? msg : "");
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v;

    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static char *query_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    char *v;

    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

/* A database of `rows` rows with ~200 bytes each, in journal mode `mode`. */
static void make_db(const char *p, const char *mode, int rows)
{
    sqlite3 *db = open_db(p);
    char sql[256];

    snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", mode);
    exec(db, sql);
    exec(db, "CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT NOT NULL);"
             "CREATE TABLE b(id INTEGER PRIMARY KEY, v TEXT NOT NULL);"
             "CREATE INDEX a_v ON a(v)");
    snprintf(sql, sizeof(sql),
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
             " INSERT INTO a SELECT i, printf('%%d-%%s', i, hex(randomblob(96))) FROM n",
             rows);
    exec(db, "BEGIN");
    exec(db, sql);
    exec(db, "INSERT INTO b SELECT id, v FROM a");
    exec(db, "COMMIT");
    sqlite3_close(db);
}

/* A digest of the data: count and a checksum over every value. */
static void data_sum(const char *p, int64_t *rows, int64_t *sum)
{
    sqlite3 *db = open_db(p);

    *rows = query_int(db, "SELECT count(*) FROM a");
    *sum = query_int(db, "SELECT total(id * length(v)) + total(unicode(substr(v, -1)))"
                         " FROM a");
    sqlite3_close(db);
}

static int count_entries(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    cr_assert_not_null(d);
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static bool exists(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0;
}

static void write_file(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");

    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *p)
{
    static char buf[256];
    FILE *f = fopen(p, "r");
    size_t n;

    cr_assert_not_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

Test(dbbackup, copies_the_data_checked_and_self_contained)
{
    struct dbbackup_result r;
    char err[512] = "";
    int64_t n1, s1, n2, s2;
    struct stat st;

    make_db(path("src.db"), "wal", 3000);
    data_sum(path("src.db"), &n1, &s1);
    cr_assert_eq(dbbackup_sqlite(path("src.db"), path("copy.db"), false, &r, err, sizeof(err)),
                 0, "%s", err);
    data_sum(path("copy.db"), &n2, &s2);
    cr_expect_eq(n2, 3000);
    cr_expect_eq(n1, n2);
    cr_expect_eq(s1, s2);
    cr_assert_eq(stat(path("copy.db"), &st), 0);
    cr_expect_eq(r.bytes, st.st_size);
    cr_expect_gt(r.pages, 10);
    cr_expect_eq(r.pages * 4096, r.bytes); /* default page size */
    cr_expect_geq(r.seconds, 0.0);
    cr_expect_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);

    sqlite3 *db = open_db(path("copy.db"));
    char *mode = query_text(db, "PRAGMA journal_mode");
    cr_expect_str_eq(mode, "delete"); /* one file, no -wal needed */
    free(mode);
    char *ok = query_text(db, "PRAGMA integrity_check");
    cr_expect_str_eq(ok, "ok");
    free(ok);
    cr_expect_eq(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'a_v'"), 1);
    sqlite3_close(db);
    /* Nothing left behind but the source, its WAL files and the copy. */
    cr_expect_not(exists(path("copy.db-wal")));
    cr_expect_not(exists(path("copy.db-journal")));
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        cr_expect_null(strstr(e->d_name, ".tmp-"), "left over: %s", e->d_name);
    closedir(d);
}

Test(dbbackup, rollback_journal_source)
{
    struct dbbackup_result r;
    char err[512] = "";
    int64_t n1, s1, n2, s2;

    make_db(path("src.db"), "delete", 500);
    data_sum(path("src.db"), &n1, &s1);
    cr_assert_eq(dbbackup_sqlite(path("src.db"), path("copy.db"), false, &r, err, sizeof(err)),
                 0, "%s", err);
    data_sum(path("copy.db"), &n2, &s2);
    cr_expect_eq(n1, n2);
    cr_expect_eq(s1, s2);
}

Test(dbbackup, source_file_is_not_changed)
{
    struct dbbackup_result r;
    char err[512] = "";
    struct stat a, b;

    make_db(path("src.db"), "delete", 200);
    cr_assert_eq(stat(path("src.db"), &a), 0);
    sleep(1); /* a write would move mtime */
    cr_assert_eq(dbbackup_sqlite(path("src.db"), path("copy.db"), false, &r, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(stat(path("src.db"), &b), 0);
    cr_expect_eq(a.st_size, b.st_size);
    cr_expect_eq(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
    cr_expect_eq(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
}

Test(dbbackup, refuses_an_existing_file_without_force)
{
    struct dbbackup_result r;
    char err[512] = "";
    int64_t n, s;

    make_db(path("src.db"), "wal", 100);
    write_file(path("old.db"), "precious");
    cr_expect_eq(dbbackup_sqlite(path("src.db"), path("old.db"), false, &r, err, sizeof(err)),
                 -1);
    cr_expect_not_null(strstr(err, "old.db already exists (--force replaces it)"), "%s", err);
    cr_expect_str_eq(read_file(path("old.db")), "precious");

    cr_assert_eq(dbbackup_sqlite(path("src.db"), path("old.db"), true, &r, err, sizeof(err)), 0,
                 "%s", err);
    data_sum(path("old.db"), &n, &s);
    cr_expect_eq(n, 100);
}

Test(dbbackup, missing_source_is_an_error_and_not_created)
{
    struct dbbackup_result r;
    char err[512] = "";

    cr_expect_eq(dbbackup_sqlite(path("none.db"), path("copy.db"), false, &r, err, sizeof(err)),
                 -1);
    cr_expect_not_null(strstr(err, "none.db"), "%s", err);
    cr_expect_not_null(strstr(err, "No such file"), "%s", err);
    cr_expect_not(exists(path("none.db")));
    cr_expect_not(exists(path("copy.db")));
    cr_expect_eq(count_entries(), 0);
}

Test(dbbackup, not_a_database_leaves_nothing)
{
    struct dbbackup_result r;
    char err[512] = "";

    write_file(path("junk.db"), "this is not a SQLite database, just some text long enough"
                                " to fill more than the hundred bytes of a header....");
    cr_expect_eq(dbbackup_sqlite(path("junk.db"), path("copy.db"), false, &r, err, sizeof(err)),
                 -1);
    cr_expect_not_null(strstr(err, "not a database"), "%s", err);
    cr_expect_not(exists(path("copy.db")));
    cr_expect_eq(count_entries(), 1, "temporary files left behind");
}

Test(dbbackup, refuses_to_overwrite_the_source_even_with_force)
{
    struct dbbackup_result r;
    char err[512] = "";
    int64_t n, s;

    make_db(path("src.db"), "delete", 50);
    cr_assert_eq(link(path("src.db"), path("alias.db")), 0);
    cr_expect_eq(dbbackup_sqlite(path("src.db"), path("alias.db"), true, &r, err, sizeof(err)),
                 -1);
    cr_expect_not_null(strstr(err, "is the database itself"), "%s", err);
    data_sum(path("src.db"), &n, &s);
    cr_expect_eq(n, 50);
}

Test(dbbackup, refuses_to_replace_a_file_with_a_journal)
{
    struct dbbackup_result r;
    char err[512] = "";

    make_db(path("src.db"), "delete", 10);
    write_file(path("old.db"), "x");
    write_file(path("old.db-wal"), "frames");
    cr_expect_eq(dbbackup_sqlite(path("src.db"), path("old.db"), true, &r, err, sizeof(err)),
                 -1);
    cr_expect_not_null(strstr(err, "-wal or -journal"), "%s", err);
    cr_expect_str_eq(read_file(path("old.db")), "x");
}

Test(dbbackup, missing_target_directory)
{
    struct dbbackup_result r;
    char err[512] = "";

    make_db(path("src.db"), "wal", 10);
    cr_expect_eq(dbbackup_sqlite(path("src.db"), path("nodir/copy.db"), false, &r, err,
                                 sizeof(err)),
                 -1);
    cr_expect_not_null(strstr(err, "cannot create a file next to"), "%s", err);
}

/* ---- a backup while another connection keeps writing ----------------------- */

struct writer {
    const char *path;
    atomic_bool stop;
    atomic_long commits;
};

/* Each transaction adds the same id to a and b, so a consistent snapshot
 * has a and b equal. */
static void *write_loop(void *arg)
{
    struct writer *w = arg;
    sqlite3 *db = NULL;
    long id = 1000000;

    if (sqlite3_open(w->path, &db) != SQLITE_OK)
        return NULL;
    sqlite3_busy_timeout(db, 10000);
    while (!atomic_load(&w->stop)) {
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "BEGIN IMMEDIATE; INSERT INTO a VALUES (%ld, hex(randomblob(200)));"
                 " INSERT INTO b SELECT id, v FROM a WHERE id = %ld;"
                 " UPDATE a SET v = v || 'x' WHERE id = %ld; UPDATE b SET v = v || 'x'"
                 " WHERE id = %ld; COMMIT",
                 id, id, id % 2000 + 1, id % 2000 + 1);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
            atomic_fetch_add(&w->commits, 1);
        else
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        id++;
    }
    sqlite3_close(db);
    return NULL;
}

static void backup_while_writing(const char *mode)
{
    struct writer w = {.path = path("live.db")};
    struct dbbackup_result r;
    char err[512] = "";
    pthread_t th;
    int64_t before, after;

    make_db(w.path, mode, 40000); /* ~20 MB: many backup steps */
    sqlite3 *db = open_db(w.path);
    before = query_int(db, "SELECT count(*) FROM a");
    cr_assert_eq(pthread_create(&th, NULL, write_loop, &w), 0);
    while (atomic_load(&w.commits) < 20)
        usleep(1000);
    long at_start = atomic_load(&w.commits);
    int rc = dbbackup_sqlite(w.path, path("snap.db"), false, &r, err, sizeof(err));
    long at_end = atomic_load(&w.commits);
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    after = query_int(db, "SELECT count(*) FROM a");
    sqlite3_close(db);

    cr_assert_eq(rc, 0, "%s", err);
    /* In WAL mode the writer never waits for the backup. */
    if (strcmp(mode, "wal") == 0)
        cr_expect_gt(at_end, at_start, "the writer made no progress during the backup");
    sqlite3 *copy = open_db(path("snap.db"));
    char *ok = query_text(copy, "PRAGMA integrity_check");
    cr_expect_str_eq(ok, "ok");
    free(ok);
    int64_t n = query_int(copy, "SELECT count(*) FROM a");
    cr_expect_geq(n, before + 20);
    cr_expect_leq(n, after);
    /* One snapshot: a and b hold exactly the same rows. */
    cr_expect_eq(query_int(copy, "SELECT count(*) FROM b"), n);
    cr_expect_eq(query_int(copy, "SELECT count(*) FROM a JOIN b USING (id) WHERE a.v = b.v"),
                 n);
    sqlite3_close(copy);
}

Test(dbbackup, consistent_while_another_connection_writes_wal)
{
    backup_while_writing("wal");
}

Test(dbbackup, consistent_while_another_connection_writes_rollback_journal)
{
    backup_while_writing("delete");
}
