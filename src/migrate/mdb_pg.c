/*
 * migrate/mdb_pg: the PostgreSQL side of migrate/mdb.h: one blocking libpq
 * connection of the CLI's own.
 *
 * Two "sessions" share the connection: the live one (the runner's callbacks
 * for `up`, `down`, ...: each migration's transaction takes the advisory
 * lock) and, during `check`, a scratch one whose transactions set
 * `search_path` to a private schema first (SET LOCAL, so it also holds
 * through a transaction pooler) and take no lock.
 */
#include "migrate/mdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "migrate/mdb_int.h"
#include "store/pg_conn.h"
#include "util/xalloc.h"

#define CONNECT_TIMEOUT_S "10"
#define LOCK_RETRY_MS 200

struct pg_session {
    PGconn *pg;
    struct mdb *owner; /* label, lock_timeout_ms */
    bool pooler;       /* a Neon -pooler host: no session state */
    bool in_tx;
    char *search_path; /* scratch: "todo_check_..., <original>"; NULL: live */
};

struct mdb_pg {
    struct mdb base;
    struct pg_session live;
};

/* The server's message as one line: primary text, detail, hint, SQLSTATE. */
static void result_error(PGconn *pg, const PGresult *r, char *err, size_t errlen)
{
    const char *primary = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *hint = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_HINT) : NULL;
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    size_t n = 0;

    if (primary != NULL)
        snprintf(err, errlen, "%s%s%s%s%s%s%s", primary, detail ? "; detail: " : "",
                 detail ? detail : "", hint ? "; hint: " : "", hint ? hint : "",
                 state ? "; SQLSTATE " : "", state ? state : "");
    else {
        const char *msg = PQerrorMessage(pg);
        snprintf(err, errlen, "%s%s", msg[0] != '\0' ? msg : "unknown error",
                 pg_conn_error_hint(msg));
    }
    for (size_t i = 0; err[i] != '\0'; i++) { /* one line, single spaces */
        char ch = err[i] == '\n' || err[i] == '\t' || err[i] == '\r' ? ' ' : err[i];
        if (ch == ' ' && (n == 0 || err[n - 1] == ' '))
            continue;
        err[n++] = ch;
    }
    while (n > 0 && err[n - 1] == ' ')
        n--;
    err[n] = '\0';
}

static bool sqlstate_is(const PGresult *r, const char *state)
{
    const char *s = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    return s != NULL && strcmp(s, state) == 0;
}

/* Run `sql` with up to 2 text parameters; the result (caller PQclear) or
 * NULL with the error in err. `state` (may be NULL) gets whether the
 * SQLSTATE was `want_state`. */
static PGresult *query(struct pg_session *s, const char *sql, int nparams,
                       const char *const *params, const char *want_state, bool *state, char *err,
                       size_t errlen)
{
    PGresult *r = nparams > 0 ? PQexecParams(s->pg, sql, nparams, NULL, params, NULL, NULL, 0)
                              : PQexec(s->pg, sql);
    ExecStatusType st = PQresultStatus(r);

    if (state != NULL)
        *state = want_state != NULL && sqlstate_is(r, want_state);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    result_error(s->pg, r, err, errlen);
    PQclear(r);
    return NULL;
}

static int run(struct pg_session *s, const char *sql, char *err, size_t errlen)
{
    PGresult *r = query(s, sql, 0, NULL, NULL, NULL, err, errlen);

    PQclear(r);
    return r != NULL ? 0 : -1;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- transactions ---------------------------------------------------------- */

static int set_scratch_path(struct pg_session *s, bool local, char *err, size_t errlen)
{
    char sql[512];

    snprintf(sql, sizeof(sql), "SET %s search_path TO %s", local ? "LOCAL" : "SESSION",
             s->search_path);
    return run(s, sql, err, errlen);
}

/* BEGIN; the scratch schema's search path; with `lock`, the migrators'
 * advisory lock, waiting at most lock_timeout_ms. */
static int tx_begin(struct pg_session *s, bool lock, char *err, size_t errlen)
{
    char sql[128];
    bool timed_out = false;
    PGresult *r;

    if (run(s, "BEGIN", err, errlen) != 0)
        return -1;
    s->in_tx = true;
    if (s->search_path != NULL) {
        if (set_scratch_path(s, true, err, errlen) != 0)
            goto fail;
        return 0;
    }
    if (!lock)
        return 0;
    snprintf(sql, sizeof(sql), "SET LOCAL lock_timeout = %d", s->owner->lock_timeout_ms);
    if (run(s, sql, err, errlen) != 0)
        goto fail;
    r = query(s, "SELECT pg_advisory_xact_lock(" MIGRATE_PG_LOCK_KEY ")", 0, NULL, "55P03",
              &timed_out, err, errlen);
    PQclear(r);
    if (r == NULL) {
        if (timed_out)
            snprintf(err, errlen,
                     "another migrator holds the migration lock; gave up after %.1f s"
                     " (--lock-timeout)",
                     s->owner->lock_timeout_ms / 1000.0);
        goto fail;
    }
    /* The migration's own statements wait as long as they need. */
    if (run(s, "SET LOCAL lock_timeout TO DEFAULT", err, errlen) != 0)
        goto fail;
    return 0;
fail: {
    char ignored[8];
    run(s, "ROLLBACK", ignored, sizeof(ignored));
    s->in_tx = false;
    return -1;
}
}

static int tx_commit(struct pg_session *s, char *err, size_t errlen)
{
    PGresult *r = query(s, "COMMIT", 0, NULL, NULL, NULL, err, errlen);
    int rc = 0;

    /* COMMIT of a failed transaction "succeeds" as ROLLBACK. */
    if (r != NULL && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        snprintf(err, errlen, "the transaction was rolled back");
        rc = -1;
    }
    if (r == NULL)
        rc = -1;
    PQclear(r);
    s->in_tx = false;
    return rc;
}

static int tx_rollback(struct pg_session *s)
{
    char ignored[8];
    int rc = run(s, "ROLLBACK", ignored, sizeof(ignored));

    s->in_tx = false;
    return rc;
}

/* ---- the runner's callbacks (conn is a struct pg_session) ------------------ */

static int cb_begin(void *conn, char *err, size_t errlen)
{
    return tx_begin(conn, true, err, errlen);
}

static int cb_commit(void *conn, char *err, size_t errlen)
{
    return tx_commit(conn, err, errlen);
}

static int cb_rollback(void *conn)
{
    return tx_rollback(conn);
}

/* Outside a transaction in the scratch schema (a no-transaction migration),
 * the search path is set for the session around the statement. */
static int cb_exec(void *conn, const char *sql, char *err, size_t errlen)
{
    struct pg_session *s = conn;
    char ignored[8];
    int rc;

    if (s->search_path == NULL || s->in_tx)
        return run(s, sql, err, errlen);
    if (set_scratch_path(s, false, err, errlen) != 0)
        return -1;
    rc = run(s, sql, err, errlen);
    run(s, "RESET search_path", ignored, sizeof(ignored));
    return rc;
}

static int query_int(struct pg_session *s, const char *sql, int64_t *out, char *err,
                     size_t errlen)
{
    PGresult *r = query(s, sql, 0, NULL, NULL, NULL, err, errlen);
    int rc = -1;

    if (r != NULL && PQntuples(r) == 1 && PQnfields(r) == 1) {
        *out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        rc = 0;
    } else if (r != NULL) {
        snprintf(err, errlen, "unexpected result for %s", sql);
    }
    PQclear(r);
    return rc;
}

/* Create schema_migrations if needed and read the highest version; outside
 * the runner's transaction in one of its own under the lock (two concurrent
 * CREATE TABLE IF NOT EXISTS can otherwise collide). */
static int cb_current_version(void *conn, int64_t *version, char *err, size_t errlen)
{
    struct pg_session *s = conn;
    bool own = !s->in_tx;
    int rc;

    if (own && tx_begin(s, true, err, errlen) != 0)
        return -1;
    rc = run(s, migrate_table_sql("postgres"), err, errlen);
    if (rc == 0)
        rc = query_int(s, "SELECT coalesce(max(version), 0) FROM schema_migrations", version, err,
                       errlen);
    if (own) {
        if (rc == 0)
            rc = tx_commit(s, err, errlen);
        else
            tx_rollback(s);
    }
    return rc;
}

static int cb_record(void *conn, const struct migration *m, const char *checksum_hex,
                     int64_t applied_at_ms, int64_t duration_ms, char *err, size_t errlen)
{
    struct pg_session *s = conn;
    char version[24], applied[24], duration[24];
    const char *values[5] = {version, m->name, checksum_hex, applied, duration};
    PGresult *r;

    snprintf(version, sizeof(version), "%lld", (long long)m->version);
    snprintf(applied, sizeof(applied), "%lld", (long long)applied_at_ms);
    snprintf(duration, sizeof(duration), "%lld", (long long)duration_ms);
    r = PQexecParams(s->pg,
                     "INSERT INTO schema_migrations (version, name, checksum, applied_at,"
                     " duration_ms) VALUES ($1::bigint, $2, $3,"
                     " to_timestamp($4::bigint / 1000.0), $5::bigint)",
                     5, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        result_error(s->pg, r, err, errlen);
        PQclear(r);
        return -1;
    }
    PQclear(r);
    return 0;
}

static int cb_unrecord(void *conn, int64_t version, char *err, size_t errlen)
{
    struct pg_session *s = conn;
    char v[24];
    const char *values[1] = {v};
    PGresult *r;

    snprintf(v, sizeof(v), "%lld", (long long)version);
    r = query(s, "DELETE FROM schema_migrations WHERE version = $1::bigint", 1, values, NULL,
              NULL, err, errlen);
    PQclear(r);
    return r != NULL ? 0 : -1;
}

/* Does `name` resolve in the search path (the session's, or the scratch
 * one inside a transaction)? */
static int relation_exists(struct pg_session *s, const char *name, bool *yes, char *err,
                           size_t errlen)
{
    const char *values[1] = {name};
    PGresult *r = query(s, "SELECT to_regclass($1) IS NOT NULL", 1, values, NULL, NULL, err,
                        errlen);

    if (r == NULL)
        return -1;
    *yes = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return 0;
}

static int read_applied(struct pg_session *s, struct migrate_applied **rows, size_t *n,
                        char *err, size_t errlen)
{
    bool exists = false;
    PGresult *r;

    if (relation_exists(s, "schema_migrations", &exists, err, errlen) != 0)
        return -1;
    if (!exists)
        return 0;
    r = query(s,
              "SELECT version, name, checksum,"
              " (extract(epoch FROM applied_at) * 1000)::bigint, duration_ms"
              " FROM schema_migrations ORDER BY version",
              0, NULL, NULL, NULL, err, errlen);
    if (r == NULL)
        return -1;
    *n = (size_t)PQntuples(r);
    *rows = *n > 0 ? xcalloc(*n, sizeof(**rows)) : NULL;
    for (size_t i = 0; i < *n; i++) {
        (*rows)[i] = (struct migrate_applied){
            .version = strtoll(PQgetvalue(r, (int)i, 0), NULL, 10),
            .name = xstrdup(PQgetvalue(r, (int)i, 1)),
            .checksum = xstrdup(PQgetvalue(r, (int)i, 2)),
            .applied_at_ms = strtoll(PQgetvalue(r, (int)i, 3), NULL, 10),
            .duration_ms = strtoll(PQgetvalue(r, (int)i, 4), NULL, 10),
        };
    }
    PQclear(r);
    return 0;
}

/* Read-only: inside the caller's transaction, or in a short one of its own
 * without the lock (status must not wait for a running migrator). */
static int cb_applied(void *conn, struct migrate_applied **rows, size_t *n, char *err,
                      size_t errlen)
{
    struct pg_session *s = conn;
    bool own = !s->in_tx;
    int rc;

    *rows = NULL;
    *n = 0;
    if (own && tx_begin(s, false, err, errlen) != 0)
        return -1;
    rc = read_applied(s, rows, n, err, errlen);
    if (own) {
        if (rc == 0)
            rc = tx_commit(s, err, errlen);
        else
            tx_rollback(s);
    }
    if (rc != 0) {
        migrate_applied_free(*rows, *n);
        *rows = NULL;
        *n = 0;
    }
    return rc;
}

/* The redacted URL with "-pooler" taken out of the host: Neon's direct
 * endpoint. Caller frees. */
static char *direct_url(const char *label)
{
    const char *at = strstr(label, "-pooler.");
    size_t len = strlen(label);
    char *out = xmalloc(len + 1);

    if (at == NULL) {
        memcpy(out, label, len + 1);
        return out;
    }
    size_t head = (size_t)(at - label);
    memcpy(out, label, head);
    memcpy(out + head, at + 7, len - head - 7 + 1);
    return out;
}

static int cb_lock_session(void *conn, char *err, size_t errlen)
{
    struct pg_session *s = conn;
    int64_t deadline = mono_ms() + s->owner->lock_timeout_ms;

    if (s->search_path != NULL)
        return 0; /* the scratch schema is private */
    if (s->pooler) {
        char *direct = direct_url(s->owner->label);
        snprintf(err, errlen,
                 "runs outside a transaction (" MIGRATE_NO_TRANSACTION_MARK ") and needs a"
                 " session lock, which the pooled endpoint %s cannot hold: run it against the"
                 " direct endpoint, e.g. MIGRATIONS_DATABASE_URL=%s",
                 s->owner->label, direct);
        free(direct);
        return -1;
    }
    for (;;) {
        int64_t got = 0;
        if (query_int(s, "SELECT pg_try_advisory_lock(" MIGRATE_PG_LOCK_KEY ")::int", &got, err,
                      errlen) != 0)
            return -1;
        if (got == 1)
            return 0;
        if (mono_ms() >= deadline)
            break;
        nap_ms(LOCK_RETRY_MS);
    }
    snprintf(err, errlen,
             "another migrator holds the migration lock; gave up after %.1f s (--lock-timeout)",
             s->owner->lock_timeout_ms / 1000.0);
    return -1;
}

static void cb_unlock_session(void *conn)
{
    struct pg_session *s = conn;
    char ignored[8];

    if (s->search_path == NULL)
        run(s, "SELECT pg_advisory_unlock(" MIGRATE_PG_LOCK_KEY ")", ignored, sizeof(ignored));
}

static void session_callbacks(struct pg_session *s, struct migrate_db *out)
{
    *out = (struct migrate_db){
        .conn = s,
        .dialect = "postgres",
        .begin = cb_begin,
        .commit = cb_commit,
        .rollback = cb_rollback,
        .exec = cb_exec,
        .current_version = cb_current_version,
        .record = cb_record,
        .applied = cb_applied,
        .unrecord = cb_unrecord,
        .lock_session = cb_lock_session,
        .unlock_session = cb_unlock_session,
    };
}

/* ---- introspection ---------------------------------------------------------- */

/* Each query takes the schema as $1 and yields (key, value) text pairs. */
static const char *const describe_sql[] = {
    /* tables and views */
    "SELECT CASE c.relkind WHEN 'v' THEN 'view ' WHEN 'm' THEN 'materialized view '"
    "  ELSE 'table ' END || c.relname,"
    " CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid, true)"
    "  ELSE concat_ws(' ', CASE c.relkind WHEN 'p' THEN 'partitioned' END,"
    "   CASE c.relpersistence WHEN 'u' THEN 'unlogged' END) END"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm')",
    /* columns */
    "SELECT 'column ' || c.relname || '.' || a.attname,"
    " concat_ws(' ', format_type(a.atttypid, a.atttypmod),"
    "  CASE WHEN a.attnotnull THEN 'not null' END,"
    "  CASE WHEN d.adbin IS NOT NULL AND a.attgenerated = '' THEN"
    "   'default ' || pg_get_expr(d.adbin, d.adrelid) END,"
    "  CASE WHEN a.attgenerated = 's' THEN"
    "   'generated always as (' || pg_get_expr(d.adbin, d.adrelid) || ') stored' END,"
    "  CASE a.attidentity WHEN 'a' THEN 'identity always' WHEN 'd' THEN 'identity by default'"
    "  END,"
    "  CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN"
    "   'collate ' || quote_ident(co.collname) END)"
    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid"
    " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
    " LEFT JOIN pg_collation co ON co.oid = a.attcollation"
    " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0"
    " AND NOT a.attisdropped",
    /* indexes */
    "SELECT 'index ' || i.relname,"
    " replace(pg_get_indexdef(i.oid), ' ' || quote_ident($1) || '.', ' ')"
    " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
    " JOIN pg_namespace n ON n.oid = i.relnamespace WHERE n.nspname = $1",
    /* constraints */
    "SELECT 'constraint ' || t.relname || '.' || c.conname, pg_get_constraintdef(c.oid, true)"
    " FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
    " JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = $1",
    /* triggers */
    "SELECT 'trigger ' || t.relname || '.' || g.tgname,"
    " replace(pg_get_triggerdef(g.oid, true), ' ' || quote_ident($1) || '.', ' ')"
    " FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid"
    " JOIN pg_namespace n ON n.oid = t.relnamespace"
    " WHERE n.nspname = $1 AND NOT g.tgisinternal",
};

static int describe_schema(struct pg_session *s, const char *schema, struct schema_desc *out,
                           char *err, size_t errlen)
{
    const char *values[1] = {schema};

    for (size_t q = 0; q < sizeof(describe_sql) / sizeof(describe_sql[0]); q++) {
        PGresult *r = query(s, describe_sql[q], 1, values, NULL, NULL, err, errlen);
        if (r == NULL)
            return -1;
        for (int i = 0; i < PQntuples(r); i++) {
            const char *v = PQgetvalue(r, i, 1);
            char *norm = schema_sql_normalize(v, strlen(v));
            schema_desc_add(out, PQgetvalue(r, i, 0), norm);
            free(norm);
        }
        PQclear(r);
    }
    return 0;
}

static int pg_describe(struct mdb *base, struct schema_desc *out, char *err, size_t errlen)
{
    struct pg_session *s = &((struct mdb_pg *)base)->live;
    PGresult *r = query(s, "SELECT current_schema()", 0, NULL, NULL, NULL, err, errlen);
    int rc;

    if (r == NULL)
        return -1;
    if (PQgetisnull(r, 0, 0)) {
        snprintf(err, errlen, "no current schema: search_path names no schema that exists");
        PQclear(r);
        return -1;
    }
    rc = describe_schema(s, PQgetvalue(r, 0, 0), out, err, errlen);
    PQclear(r);
    return rc;
}

/* Apply the list in a fresh schema and describe it there. */
static int scratch_run(struct pg_session *scr, const char *schema, const struct migration *list,
                       size_t n, struct schema_desc *out, char *err, size_t errlen)
{
    struct migrate_db cb;

    session_callbacks(scr, &cb);
    if (migrate_apply(&cb, list, n, NULL, err, errlen) < 0) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", err);
        snprintf(err, errlen, "applying the migrations to a scratch schema: %s", msg);
        return -1;
    }
    if (tx_begin(scr, false, err, errlen) != 0)
        return -1;
    if (describe_schema(scr, schema, out, err, errlen) != 0) {
        tx_rollback(scr);
        return -1;
    }
    return tx_commit(scr, err, errlen);
}

static int pg_describe_expected(struct mdb *base, const struct migration *list, size_t n,
                                struct schema_desc *out, char *err, size_t errlen)
{
    struct pg_session *live = &((struct mdb_pg *)base)->live;
    struct pg_session scr = *live;
    char schema[64], sql[256], ignored[8];
    unsigned char rnd[4] = {0};
    PGresult *r;
    int rc;

    /* Should getrandom fail, the pid alone still keeps the name unique. */
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        memset(rnd, 0, sizeof(rnd));
    snprintf(schema, sizeof(schema), "todo_check_%ld_%02x%02x%02x%02x", (long)getpid(), rnd[0],
             rnd[1], rnd[2], rnd[3]);
    r = query(live, "SELECT current_setting('search_path')", 0, NULL, NULL, NULL, err, errlen);
    if (r == NULL)
        return -1;
    scr.in_tx = false;
    size_t len = strlen(schema) + strlen(PQgetvalue(r, 0, 0)) + 3;
    scr.search_path = xmalloc(len);
    snprintf(scr.search_path, len, "%s, %s", schema, PQgetvalue(r, 0, 0));
    PQclear(r);
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
    rc = run(live, sql, err, errlen);
    if (rc == 0) {
        rc = scratch_run(&scr, schema, list, n, out, err, errlen);
        if (PQtransactionStatus(live->pg) != PQTRANS_IDLE)
            run(live, "ROLLBACK", ignored, sizeof(ignored));
        snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", schema);
        if (run(live, sql, rc == 0 ? err : ignored, rc == 0 ? errlen : sizeof(ignored)) != 0)
            rc = -1;
    }
    free(scr.search_path);
    return rc;
}

static int pg_alembic_version(struct mdb *base, char **rev, char *err, size_t errlen)
{
    struct pg_session *s = &((struct mdb_pg *)base)->live;
    bool exists = false;
    PGresult *r;

    if (relation_exists(s, "alembic_version", &exists, err, errlen) != 0)
        return -1;
    if (!exists)
        return 0;
    r = query(s, "SELECT coalesce(string_agg(version_num::text, ','), '') FROM alembic_version",
              0, NULL, NULL, NULL, err, errlen);
    if (r == NULL)
        return -1;
    *rev = xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

/* ---- struct mdb --------------------------------------------------------------- */

static void pg_close(struct mdb *base)
{
    struct mdb_pg *p = (struct mdb_pg *)base;

    PQfinish(p->live.pg);
    free(p);
}

static void pg_migrate_db(struct mdb *base, struct migrate_db *out)
{
    session_callbacks(&((struct mdb_pg *)base)->live, out);
}

static const struct mdb_ops pg_ops = {
    .dialect = "postgres",
    .close = pg_close,
    .migrate_db = pg_migrate_db,
    .alembic_version = pg_alembic_version,
    .describe = pg_describe,
    .describe_expected = pg_describe_expected,
};

/* Server notices ("already exists, skipping") are not for the CLI's user. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Blocking connect. `timeout_s` NULL: the URL's connect_timeout, else 10 s;
 * otherwise this one wins over the URL's. */
static PGconn *connect_blocking(const char *conninfo, const char *timeout_s)
{
    const char *keys[] = {"connect_timeout", "dbname", "fallback_application_name",
                          timeout_s != NULL ? "connect_timeout" : NULL, NULL};
    const char *values[] = {CONNECT_TIMEOUT_S, conninfo, "todo migrate", timeout_s, NULL};
    PGconn *pg = PQconnectdbParams(keys, values, 1);

    if (pg == NULL) {
        fprintf(stderr, "todo migrate: out of memory\n");
        abort();
    }
    PQsetNoticeProcessor(pg, on_notice, NULL);
    return pg;
}

int mdb__pg_open(const char *conninfo, const char *label, const struct mdb_opts *o,
                 struct mdb **out, char *err, size_t errlen)
{
    struct mdb_pg *p;
    char timeout[16];
    PGconn *pg;

    snprintf(timeout, sizeof(timeout), "%d", o->connect_timeout_s);
    pg = connect_blocking(conninfo, o->connect_timeout_s > 0 ? timeout : NULL);
    if (PQstatus(pg) != CONNECTION_OK) {
        char msg[1024];
        result_error(pg, NULL, msg, sizeof(msg));
        snprintf(err, errlen, "%s: %s", label, msg);
        PQfinish(pg);
        return -1;
    }
    p = xcalloc(1, sizeof(*p));
    p->base.ops = &pg_ops;
    p->live = (struct pg_session){
        .pg = pg,
        .owner = &p->base,
        .pooler = pg_conn_host_is_pooler(conninfo),
    };
    *out = &p->base;
    return 0;
}

int mdb__pg_probe(const char *conninfo, int timeout_ms, char *err, size_t errlen)
{
    char timeout[16];
    PGconn *pg;
    PGresult *r;
    int rc = -1;

    /* libpq's smallest useful connect_timeout is 2 s. */
    snprintf(timeout, sizeof(timeout), "%d", timeout_ms < 2000 ? 2 : (timeout_ms + 999) / 1000);
    pg = connect_blocking(conninfo, timeout);
    if (PQstatus(pg) != CONNECTION_OK) {
        result_error(pg, NULL, err, errlen);
        PQfinish(pg);
        return -1;
    }
    r = PQexec(pg, "SELECT 1");
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        rc = 0;
    else
        result_error(pg, r, err, errlen);
    PQclear(r);
    PQfinish(pg);
    return rc;
}
