#include "store/pg_admin.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "migrate/migrate.h"
#include "model/timefmt.h"
#include "store/store.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Any constant: the lock every migrator of this schema takes. */
#define MIGRATION_LOCK_KEY "7745120923551030881"

struct pg_admin {
    PGconn *pg;
    pthread_mutex_t mutex;
    bool in_tx; /* between the runner's begin and commit/rollback */
};

/* libpq's message without the trailing newline. */
static void copy_error(const char *msg, char *err, size_t errlen)
{
    size_t n;

    snprintf(err, errlen, "%s", msg != NULL && msg[0] != '\0' ? msg : "unknown error");
    n = strlen(err);
    while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
        err[--n] = '\0';
}

/* Server notices ("already exists, skipping") go to the debug log. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    if (log_enabled(LOG_DEBUG))
        log_kv(LOG_DEBUG, "postgres notice", "message", message, NULL);
}

static PGconn *connect_blocking(const char *conninfo)
{
    static const char *const keys[] = {"dbname", "fallback_application_name", NULL};
    const char *values[] = {conninfo, "todo", NULL};

    return PQconnectdbParams(keys, values, 1);
}

struct pg_admin *pg_admin_open(const char *conninfo, char *err, size_t errlen)
{
    struct pg_admin *a;
    PGconn *pg = connect_blocking(conninfo);

    if (pg == NULL) {
        snprintf(err, errlen, "postgres: out of memory");
        return NULL;
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        char msg[512];
        copy_error(PQerrorMessage(pg), msg, sizeof(msg));
        snprintf(err, errlen, "postgres: cannot connect: %s", msg);
        PQfinish(pg);
        return NULL;
    }
    a = xcalloc(1, sizeof(*a));
    a->pg = pg;
    PQsetNoticeProcessor(pg, on_notice, NULL);
    pthread_mutex_init(&a->mutex, NULL);
    return a;
}

void pg_admin_close(struct pg_admin *a)
{
    if (a == NULL)
        return;
    PQfinish(a->pg);
    pthread_mutex_destroy(&a->mutex);
    free(a);
}

/* Outside a transaction, a connection found broken is reset once. */
static void ensure_connected(struct pg_admin *a)
{
    if (PQstatus(a->pg) != CONNECTION_OK && !a->in_tx)
        PQreset(a->pg);
}

/* Run `sql` (no parameters; may hold several statements). 0 or -1. */
static int exec(struct pg_admin *a, const char *sql, char *err, size_t errlen)
{
    PGresult *r;
    int rc = 0;

    ensure_connected(a);
    r = PQexec(a->pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        copy_error(r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(a->pg), err, errlen);
        rc = -1;
    }
    PQclear(r);
    return rc;
}

/* The one-value result of `sql` as an integer. */
static int query_int(struct pg_admin *a, const char *sql, int64_t *out, char *err, size_t errlen,
                     const char **sqlstate_out)
{
    PGresult *r;
    int rc = -1;

    ensure_connected(a);
    r = PQexec(a->pg, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 1) {
        *out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        rc = 0;
    } else {
        const char *ss = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        if (sqlstate_out != NULL)
            *sqlstate_out = ss != NULL && strcmp(ss, "42P01") == 0 ? "42P01" : "";
        copy_error(r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(a->pg), err, errlen);
    }
    PQclear(r);
    return rc;
}

/* ---- the runner's callbacks -------------------------------------------- */

static int mig_rollback(void *conn)
{
    struct pg_admin *a = conn;
    char err[8];
    int rc = exec(a, "ROLLBACK", err, sizeof(err));

    a->in_tx = false;
    return rc;
}

static int mig_begin(void *conn, char *err, size_t errlen)
{
    struct pg_admin *a = conn;

    if (exec(a, "BEGIN", err, errlen) != 0)
        return -1;
    a->in_tx = true;
    /* Released at commit/rollback: excludes other migrators meanwhile. */
    if (exec(a, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY ")", err, errlen) != 0) {
        mig_rollback(a);
        return -1;
    }
    return 0;
}

static int mig_commit(void *conn, char *err, size_t errlen)
{
    struct pg_admin *a = conn;
    PGresult *r = PQexec(a->pg, "COMMIT");
    int rc = 0;

    /* COMMIT of a failed transaction "succeeds" as ROLLBACK. */
    if (PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        copy_error(PQresultStatus(r) == PGRES_COMMAND_OK ? "the transaction was rolled back"
                   : r != NULL                           ? PQresultErrorMessage(r)
                                                         : PQerrorMessage(a->pg),
                   err, errlen);
        rc = -1;
    }
    PQclear(r);
    a->in_tx = false;
    return rc;
}

static int mig_exec(void *conn, const char *sql, char *err, size_t errlen)
{
    return exec(conn, sql, err, errlen);
}

/* Create schema_migrations if needed and read the highest version. Outside
 * the runner's transaction, in one of its own under the migration lock (two
 * concurrent CREATE TABLE IF NOT EXISTS can otherwise collide). */
static int mig_current_version(void *conn, int64_t *version, char *err, size_t errlen)
{
    struct pg_admin *a = conn;
    bool own_tx = !a->in_tx;
    int rc;

    if (own_tx && mig_begin(a, err, errlen) != 0)
        return -1;
    rc = exec(a, migrate_table_sql("postgres"), err, errlen);
    if (rc == 0)
        rc = query_int(a, "SELECT COALESCE(max(version), 0) FROM schema_migrations", version, err,
                       errlen, NULL);
    if (own_tx) {
        if (rc == 0)
            rc = mig_commit(a, err, errlen);
        else
            mig_rollback(a);
    }
    return rc;
}

static int mig_record(void *conn, const struct migration *m, const char *checksum_hex,
                      int64_t applied_at_ms, int64_t duration_ms, char *err, size_t errlen)
{
    struct pg_admin *a = conn;
    char version[24], applied[TIMEFMT_LEN + 1], duration[24];
    const char *values[5] = {version, m->name, checksum_hex, applied, duration};
    PGresult *r;
    int rc = 0;

    snprintf(version, sizeof(version), "%lld", (long long)m->version);
    timefmt_format(applied_at_ms, applied);
    snprintf(duration, sizeof(duration), "%lld", (long long)duration_ms);
    r = PQexecParams(a->pg,
                     "INSERT INTO schema_migrations (version, name, checksum, applied_at,"
                     " duration_ms) VALUES ($1::bigint, $2, $3, $4::timestamptz, $5::bigint)",
                     5, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        copy_error(r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(a->pg), err, errlen);
        rc = -1;
    }
    PQclear(r);
    return rc;
}

void pg_admin_migrate_db(struct pg_admin *a, struct migrate_db *out)
{
    *out = (struct migrate_db){
        .conn = a,
        .dialect = "postgres",
        .begin = mig_begin,
        .commit = mig_commit,
        .rollback = mig_rollback,
        .exec = mig_exec,
        .current_version = mig_current_version,
        .record = mig_record,
    };
}

int pg_admin_schema_version(struct pg_admin *a, int64_t *version, char *msg, size_t msglen)
{
    const char *sqlstate = "";
    int status = STORE_OK;

    pthread_mutex_lock(&a->mutex);
    if (query_int(a, "SELECT COALESCE(max(version), 0) FROM schema_migrations", version, msg,
                  msglen, &sqlstate) != 0) {
        if (strcmp(sqlstate, "42P01") == 0) /* undefined_table: nothing applied */
            *version = 0;
        else
            status = PQstatus(a->pg) == CONNECTION_OK ? STORE_INTERNAL : STORE_UNAVAILABLE;
    }
    pthread_mutex_unlock(&a->mutex);
    return status;
}
