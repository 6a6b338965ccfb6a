/*
 * dbtool/dbcopy (and the connection handling of dbsrc/dbdst it relies on):
 * what a copy refuses and what its messages say — a SQLite target whose
 * directory is missing, a target migrated by a newer todo, a URL's
 * connect_timeout, a password libpq would misread refused before it can
 * reach a message — and, when DATABASE_URL names PostgreSQL
 * (scripts/with-pg --no-check -- build-X/tests/unit_dbtool), a missing
 * target database and a target whose statement_timeout would cut the load.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "dbtool/dbcopy.h"
#include "dbtool/dbdst.h"
#include "dbtool/dbverify.h"
#include "migrate/mdb.h"
#include "dbt_support.h"

/* ---- fixtures --------------------------------------------------------------- */

static char made_db[64];

static void cleanup(void)
{
    tmp_files_remove();
    const char *base = getenv("DATABASE_URL");
    if (made_db[0] != '\0' && base != NULL) {
        PGconn *pg = PQconnectdb(base);
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", made_db);
        if (PQstatus(pg) == CONNECTION_OK)
            PQclear(PQexec(pg, sql));
        PQfinish(pg);
        made_db[0] = '\0';
    }
}

TestSuite(dbcopy, .fini = cleanup);
TestSuite(dbcopy_pg, .fini = cleanup);

/* A current-layout source with one user and `todos` todos. */
static void make_source(char *url, size_t n, int todos)
{
    char path[512], err[512], sql[1024];
    sqlite3 *db;

    tmp_db("dbcopy_test", url, n, path, sizeof(path));
    cr_assert_geq(mdb_up_embedded(url, 0, err, sizeof(err)), 1, "%s", err);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sq_exec(db, "INSERT INTO users VALUES ('00000000-0000-7000-8000-000000000001', 'a@x.org', "
                "'hash', NULL, 1, '2024-03-01T12:00:00.000Z', '2024-03-02T12:00:00.000Z')");
    snprintf(sql, sizeof(sql),
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
             "INSERT INTO todos SELECT printf('10000000-0000-7000-8000-%%012d', i), "
             "'00000000-0000-7000-8000-000000000001', 'todo ' || i, NULL, 0, NULL, "
             "'2024-03-01T12:00:00.000Z', '2024-03-01T12:00:00.000Z', 1 FROM n",
             todos);
    sq_exec(db, sql);
    sqlite3_close(db);
}

static int copy(const char *from, const char *to, bool dry_run, bool truncate, bool no_migrate,
                struct dbcopy_result *res, char *err, size_t errlen)
{
    struct dbcopy_opts o = {.from = from,
                            .to = to,
                            .dry_run = dry_run,
                            .truncate = truncate,
                            .no_migrate = no_migrate};
    err[0] = '\0';
    return dbcopy_run(&o, res, err, errlen);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- SQLite ----------------------------------------------------------------- */

/* A SQLite target is created, but not its directory: the message names the
 * directory (SQLite only says "unable to open database file"), in a dry run
 * too, and nothing is created. */
Test(dbcopy, sqlite_target_directory_must_exist)
{
    char src[600], to[700], dir[600], err[1024];
    struct dbcopy_result res;

    make_source(src, sizeof(src), 3);
    snprintf(dir, sizeof(dir), "%.400s/dbcopy_test_nodir_%d", tmp_dir(), (int)getpid());
    rmdir(dir);
    snprintf(to, sizeof(to), "sqlite:///%s/x.db", dir);
    for (int dry = 0; dry < 2; dry++) {
        cr_expect_eq(copy(src, to, dry, false, false, &res, err, sizeof(err)), -1);
        cr_expect(strstr(err, "does not exist") != NULL && strstr(err, dir) != NULL,
                  "dry %d: %s", dry, err);
        cr_expect_eq(access(dir, F_OK), -1, "%s was created", dir);
    }
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_expect_eq(copy(src, to, false, false, false, &res, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(res.tables[1].written, 3);
    char made[700];
    snprintf(made, sizeof(made), "%.400s/x.db", dir);
    tmp_file_track(made);
    cleanup();
    rmdir(dir);
}

/* A target at a schema version newer than this binary knows: refused with
 * a message saying so (not "run todo migrate up"), in every mode — also a
 * dry run, which used to report success. */
Test(dbcopy, target_newer_than_the_binary_is_refused)
{
    char src[600], to[600], path[512], err[1024];
    struct dbcopy_result res;
    sqlite3 *db;

    make_source(src, sizeof(src), 2);
    tmp_db("dbcopy_test", to, sizeof(to), path, sizeof(path));
    cr_assert_geq(mdb_up_embedded(to, 0, err, sizeof(err)), 1, "%s", err);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sq_exec(db, "INSERT INTO schema_migrations (version, name, checksum, applied_at, "
                "duration_ms) VALUES (9999, 'future', 'x', '2030-01-01T00:00:00.000Z', 1)");
    sqlite3_close(db);
    for (int mode = 0; mode < 4; mode++) {
        bool dry = mode == 1 || mode == 2, truncate = mode == 2, no_migrate = mode == 3;
        cr_expect_eq(copy(src, to, dry, truncate, no_migrate, &res, err, sizeof(err)), -1,
                     "mode %d copied", mode);
        cr_expect(strstr(err, "version 9999, newer than this todo knows") != NULL, "mode %d: %s",
                  mode, err);
        cr_expect(strstr(err, "migrate up") == NULL, "mode %d: %s", mode, err);
    }
    int64_t n = -1;
    cr_expect_eq(dbdst_count_url(to, dbrow_table("todos"), &n, err, sizeof(err)), -1);
}

/* ---- PostgreSQL URLs that need no server ----------------------------------- */

/* A server that accepts TCP connections and never answers: libpq waits for
 * connect_timeout. Returns the listening socket; *port its port. */
static int silent_server(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert_geq(fd, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 16), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* The URL's connect_timeout is the one used (it was overridden by the
 * built-in 10 s), by the reader and the writer alike. */
Test(dbcopy, connect_timeout_of_the_url_wins, .timeout = 60)
{
    char url[200], err[1024];
    int port, fd = silent_server(&port);
    struct dbsrc *s = NULL;
    struct dbdst *d = NULL;
    struct dbdst_opts dopts = {0};
    double t0;

    snprintf(url, sizeof(url), "postgresql://x@127.0.0.1:%d/db?connect_timeout=1&sslmode=disable",
             port);
    t0 = now_s();
    cr_expect_eq(dbsrc_open(url, NULL, &s, err, sizeof(err)), -1);
    cr_expect_lt(now_s() - t0, 5.0, "dbsrc_open waited %.1f s", now_s() - t0);
    cr_expect(strstr(err, "timeout") != NULL, "%s", err);
    t0 = now_s();
    cr_expect_eq(dbdst_open(url, &dopts, &d, err, sizeof(err)), -1);
    cr_expect_lt(now_s() - t0, 5.0, "dbdst_open waited %.1f s", now_s() - t0);
    close(fd);
}

/* A password with an unencoded '/' makes libpq read part of it as the
 * port, which its message quotes: copy (both directions) and verify show
 * "***" instead. */
Test(dbcopy, password_pieces_stay_out_of_libpq_messages)
{
    const char *pg = "postgresql://app:Secr3t/Tail@127.0.0.1:5432/db";
    char src[600], dst[600], path[512], err[1024];
    struct dbcopy_result res;
    struct dbverify_result vres;
    struct dbverify_opts vo = {0};

    make_source(src, sizeof(src), 1);
    tmp_db("dbcopy_test", dst, sizeof(dst), path, sizeof(path));
    cr_expect_eq(copy(src, pg, false, false, false, &res, err, sizeof(err)), -1);
    cr_expect(strstr(err, "Secr3t") == NULL && strstr(err, "%2F") != NULL, "%s", err);
    cr_expect_eq(copy(src, pg, true, false, false, &res, err, sizeof(err)), -1);
    cr_expect(strstr(err, "Secr3t") == NULL, "%s", err);
    cr_expect_eq(copy(pg, dst, false, false, false, &res, err, sizeof(err)), -1);
    cr_expect(strstr(err, "Secr3t") == NULL && strstr(err, "%2F") != NULL, "%s", err);
    vo.source = src;
    vo.target = pg;
    cr_expect_eq(dbverify_run(&vo, &vres, err, sizeof(err)), -1);
    cr_expect(strstr(err, "Secr3t") == NULL && strstr(err, "%2F") != NULL, "%s", err);
    dbverify_result_free(&vres);
}

/* ---- PostgreSQL ------------------------------------------------------------------ */

/* The URL of database `name` on the cluster of DATABASE_URL. */
static void pg_url_of(const char *name, char *out, size_t n)
{
    const char *base = pg_url_or_skip();
    const char *slash = strrchr(base, '/');

    cr_assert_not_null(slash);
    snprintf(out, n, "%.*s/%s", (int)(slash - base), base, name);
}

static void pg_exec_new_conn(const char *sql)
{
    PGconn *pg = PQconnectdb(getenv("DATABASE_URL"));
    PGresult *r = PQexec(pg, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
}

/* A target database that does not exist: the message says to create it. */
Test(dbcopy_pg, missing_database_names_the_fix)
{
    char src[600], to[700], err[2048];
    struct dbcopy_result res;

    pg_url_of("dbcopy_no_such_db", to, sizeof(to));
    make_source(src, sizeof(src), 1);
    for (int dry = 0; dry < 2; dry++) {
        cr_expect_eq(copy(src, to, dry, false, false, &res, err, sizeof(err)), -1);
        cr_expect(strstr(err, "does not exist") != NULL && strstr(err, "create it first") != NULL,
                  "dry %d: %s", dry, err);
    }
}

/* A statement_timeout set on the target database (or role) must not cut
 * the load: the copy's transaction turns it off. */
Test(dbcopy_pg, target_statement_timeout_does_not_cut_the_copy, .timeout = 120)
{
    char src[600], to[700], err[2048], sql[256];
    struct dbcopy_result res;

    pg_url_or_skip();
    snprintf(made_db, sizeof(made_db), "dbcopy_%d", (int)getpid());
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", made_db);
    pg_exec_new_conn(sql);
    pg_url_of(made_db, to, sizeof(to));
    cr_assert_geq(mdb_up_embedded(to, 0, err, sizeof(err)), 1, "%s", err);
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s SET statement_timeout = '300ms'", made_db);
    pg_exec_new_conn(sql);
    make_source(src, sizeof(src), 200000);
    cr_expect_eq(copy(src, to, false, false, false, &res, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(res.tables[1].written, 200000);
}
