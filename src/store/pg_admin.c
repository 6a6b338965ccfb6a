#include "store/pg_admin.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "migrate/migrate.h"
#include "model/timefmt.h"
#include "store/pg_conn.h"
#include "store/store.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Any constant: the lock every migrator of this schema takes. */
#define MIGRATION_LOCK_KEY "7745120923551030881"

struct pg_admin {
    char *conninfo;
    PGconn *pg; /* NULL until the first call that needs it */
    pthread_mutex_t mutex;
    bool in_tx; /* between the runner's begin and commit/rollback */
};

/* libpq's message as one line: its messages span several ("...\n\tIs
 * the server running..."), log lines must not. */
static void copy_error(const char *msg, char *err, size_t errlen)
{
    size_t n = 0;

    snprintf(err, errlen, "%s%s", msg != NULL && msg[0] != '\0' ? msg : "unknown error",
             pg_conn_error_hint(msg));
    for (size_t i = 0; err[i] != '\0'; i++) {
        char ch = err[i] == '\n' || err[i] == '\t' || err[i] == '\r' ? ' ' : err[i];
        if (ch == ' ' && (n == 0 || err[n - 1] == ' '))
            continue;
        err[n++] = ch;
    }
    while (n > 0 && err[n - 1] == ' ')
        n--;
    err[n] = '\0';
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
    /* Later keys win over earlier ones, and the expanded URL sits at
     * "dbname": a connect_timeout in the URL overrides the default. */
    static const char *const keys[] = {"connect_timeout", "dbname", "fallback_application_name",
                                       NULL};
    const char *values[] = {PG_ADMIN_CONNECT_TIMEOUT, conninfo, "todo", NULL};
    PGconn *pg = PQconnectdbParams(keys, values, 1);

    if (pg == NULL) {
        log_kv(LOG_ERROR, "postgres: out of memory", NULL);
        abort();
    }
    PQsetNoticeProcessor(pg, on_notice, NULL);
    return pg;
}

struct pg_admin *pg_admin_new(const char *conninfo)
{
    struct pg_admin *a = xcalloc(1, sizeof(*a));

    a->conninfo = xstrdup(conninfo);
    pthread_mutex_init(&a->mutex, NULL);
    return a;
}

void pg_admin_close(struct pg_admin *a)
{
    if (a == NULL)
        return;
    if (a->pg != NULL)
        PQfinish(a->pg);
    pthread_mutex_destroy(&a->mutex);
    free(a->conninfo);
    free(a);
}

/* Connect when there is no connection yet; outside a transaction, reset a
 * broken one (once per call). */
static void ensure_connected(struct pg_admin *a)
{
    if (a->pg == NULL)
        a->pg = connect_blocking(a->conninfo);
    else if (PQstatus(a->pg) != CONNECTION_OK && !a->in_tx)
        PQreset(a->pg);
}

int pg_admin_connect(struct pg_admin *a, char *err, size_t errlen)
{
    ensure_connected(a);
    if (PQstatus(a->pg) == CONNECTION_OK)
        return 0;
    copy_error(PQerrorMessage(a->pg), err, errlen);
    return -1;
}

bool pg_admin_connected(const struct pg_admin *a)
{
    return a->pg != NULL && PQstatus(a->pg) == CONNECTION_OK;
}

/* Run `sql` (no parameters; may hold several statements). 0 or -1. */
static int exec(struct pg_admin *a, const char *sql, char *err, size_t errlen)
{
    PGresult *r;
    int rc = 0;

    if (pg_admin_connect(a, err, errlen) != 0)
        return -1;
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

    if (pg_admin_connect(a, err, errlen) != 0) {
        if (sqlstate_out != NULL)
            *sqlstate_out = "";
        return -1;
    }
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
            status = pg_admin_connected(a) ? STORE_INTERNAL : STORE_UNAVAILABLE;
    }
    pthread_mutex_unlock(&a->mutex);
    return status;
}
