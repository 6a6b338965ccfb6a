/* Helpers shared by the unit_dbtool test files: see dbt_support.h. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbt_support.h"

static char made_files[16][512];
static int nmade_files;

const char *tmp_dir(void)
{
    return getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp";
}

/* Unlink `path` and its -wal and -shm. */
static void unlink_db(const char *path)
{
    char side[600];

    unlink(path);
    snprintf(side, sizeof(side), "%.500s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%.500s-shm", path);
    unlink(side);
}

char *tmp_db(const char *tag, char *url, size_t n, char *path, size_t pn)
{
    static int seq;

    snprintf(path, pn, "%s/%s_%d_%d.db", tmp_dir(), tag, (int)getpid(), ++seq);
    tmp_file_track(path);
    unlink_db(path);
    snprintf(url, n, "sqlite:///%s", path);
    return url;
}

void tmp_file_track(const char *path)
{
    cr_assert_lt(nmade_files, 16);
    snprintf(made_files[nmade_files++], sizeof(made_files[0]), "%s", path);
}

void tmp_files_remove(void)
{
    for (int i = 0; i < nmade_files; i++)
        unlink_db(made_files[i]);
    nmade_files = 0;
}

void sq_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql, msg);
}

void pg_ok(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
              PQerrorMessage(pg));
    PQclear(r);
}

const char *pg_url_or_skip(void)
{
    const char *url = getenv("DATABASE_URL");
    if (url == NULL || strncmp(url, "postgres", 8) != 0)
        cr_skip_test("DATABASE_URL is not PostgreSQL (run under scripts/with-pg)");
    return url;
}
