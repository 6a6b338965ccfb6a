#include "migrate/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "migrate/sqlsplit.h"
#include "model/timefmt.h"
#include "util/xalloc.h"

/* schema_migrations in each dialect. The runner owns this table (migration
 * files never create or drop it) so that `migrate down` of the first
 * migration still has a history to update. */
static const char sqlite_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
    "    version     INTEGER NOT NULL PRIMARY KEY,\n"
    "    name        TEXT    NOT NULL,\n"
    "    checksum    TEXT    NOT NULL,\n"
    "    applied_at  TEXT    NOT NULL,\n"
    "    duration_ms INTEGER NOT NULL\n"
    ") STRICT";

static const char postgres_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
    "    version     bigint       NOT NULL PRIMARY KEY,\n"
    "    name        varchar(255) NOT NULL,\n"
    "    checksum    varchar(64)  NOT NULL,\n"
    "    applied_at  timestamptz  NOT NULL,\n"
    "    duration_ms bigint       NOT NULL\n"
    ")";

const char *migrate_table_sql(const char *dialect)
{
    if (strcmp(dialect, "sqlite") == 0)
        return sqlite_table_sql;
    if (strcmp(dialect, "postgres") == 0)
        return postgres_table_sql;
    return NULL;
}

void migrate_checksum(const char *sql, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    /* EVP_Digest only fails on allocation failure inside OpenSSL; a checksum
     * of all zeroes would then be recorded, so treat it as fatal instead. */
    if (EVP_Digest(sql, strlen(sql), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        fprintf(stderr, "migrate: SHA-256 failed\n");
        abort();
    }
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[64] = '\0';
}

int64_t migrate_latest_version(const char *dialect)
{
    size_t n = 0;
    const struct migration *list = migrate_embedded(dialect, &n);

    return n == 0 ? 0 : list[n - 1].version;
}

bool migrate_no_transaction(const char *sql)
{
    size_t mark = strlen(MIGRATE_NO_TRANSACTION_MARK);

    if (strncmp(sql, MIGRATE_NO_TRANSACTION_MARK, mark) != 0)
        return false;
    for (const char *p = sql + mark; *p != '\0' && *p != '\n'; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r')
            return false;
    }
    return true;
}

const char *migrate_file_name(const struct migration *m, bool down, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "%04lld_%s.%s.sql", (long long)m->version, m->name,
             down ? "down" : "up");
    return buf;
}

const struct migration *migrate_find(const struct migration *list, size_t n, int64_t version)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i].version == version)
            return &list[i];
    }
    return NULL;
}

void migrate_applied_free(struct migrate_applied *rows, size_t n)
{
    if (rows == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(rows[i].name);
        free(rows[i].checksum);
    }
    free(rows);
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Prefix `err` (which holds the database's message) with `what`. */
static void prefix_error(const char *what, char *err, size_t errlen)
{
    char *msg = xstrdup(err);

    snprintf(err, errlen, "%s: %s", what, msg);
    free(msg);
}

static void progress(const struct migrate_run_opts *o, enum migrate_event ev,
                     const struct migration *m, int64_t duration_ms)
{
    if (o->progress != NULL)
        o->progress(o->ctx, ev, m, duration_ms);
}

/* ---- statements ---------------------------------------------------------- */

/* Run the statements of `sql` one at a time. On failure err says which
 * (file, number, line, text) and why; *failed_at is its 1-based number. */
static int run_statements(const struct migrate_db *db, const char *file, const char *sql,
                          size_t *failed_at, char *err, size_t errlen)
{
    struct sql_stmt *stmts = NULL;
    size_t n = sqlsplit(db->dialect, sql, &stmts);
    int rc = 0;

    *failed_at = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *text = xstrndup(stmts[i].text, stmts[i].len);
        if (db->exec(db->conn, text, err, errlen) != 0) {
            char what[512], excerpt[160];
            snprintf(what, sizeof(what), "%s: statement %zu (line %d) failed: %s", file, i + 1,
                     stmts[i].line, sqlsplit_excerpt(&stmts[i], 120, excerpt, sizeof(excerpt)));
            prefix_error(what, err, errlen);
            *failed_at = i + 1;
            rc = -1;
        }
        free(text);
    }
    free(stmts);
    return rc;
}

/* ---- apply --------------------------------------------------------------- */

static int record(const struct migrate_db *db, const struct migration *m, int64_t duration_ms,
                  char *err, size_t errlen)
{
    char checksum[65];

    migrate_checksum(m->up_sql, checksum);
    return db->record(db->conn, m, checksum, timefmt_now_ms(), duration_ms, err, errlen);
}

/* Apply one migration in its own transaction. Returns 1 when applied, 0 when
 * another migrator got there first, -1 on error (rolled back). */
static int apply_one(const struct migrate_db *db, const struct migration *m,
                     const struct migrate_run_opts *o, char *err, size_t errlen)
{
    char file[320];
    int64_t current = 0, started, took;
    size_t failed_at;

    migrate_file_name(m, false, file, sizeof(file));
    if (db->begin(db->conn, err, errlen) != 0)
        goto fail_nobegin;
    /* Re-read inside the transaction: it excludes other migrators, so the
     * answer cannot change before commit. */
    if (db->current_version(db->conn, &current, err, errlen) != 0)
        goto fail;
    if (current >= m->version) {
        db->rollback(db->conn);
        progress(o, MIGRATE_EV_SKIPPED, m, 0);
        return 0;
    }
    progress(o, MIGRATE_EV_APPLYING, m, 0);
    started = monotonic_ms();
    if (run_statements(db, file, m->up_sql, &failed_at, err, errlen) != 0) {
        db->rollback(db->conn);
        return -1;
    }
    took = monotonic_ms() - started;
    if (record(db, m, took, err, errlen) != 0 || db->commit(db->conn, err, errlen) != 0)
        goto fail;
    progress(o, MIGRATE_EV_APPLIED, m, took);
    return 1;

fail:
    db->rollback(db->conn);
fail_nobegin:
    prefix_error(file, err, errlen);
    return -1;
}

/* The message for a no-transaction migration that failed at statement k. */
static void partial_error(size_t failed_at, char *err, size_t errlen)
{
    size_t used = strlen(err);

    if (failed_at > 1 && used < errlen)
        snprintf(err + used, errlen - used,
                 " (this migration runs without a transaction: statements 1..%zu stay"
                 " applied; undo or complete them by hand before retrying)",
                 failed_at - 1);
}

/* Run `sql` of m outside any transaction, under the session lock, then
 * record (apply) or unrecord (revert) it in a transaction of its own.
 * Returns 1 done, 0 when another migrator got there first, -1. */
static int run_alone(const struct migrate_db *db, const struct migration *m, bool down,
                     const struct migrate_run_opts *o, char *err, size_t errlen)
{
    char file[320];
    int64_t current = 0, started, took;
    size_t failed_at;
    int rc = -1;

    migrate_file_name(m, down, file, sizeof(file));
    if (db->lock_session == NULL || db->unlock_session == NULL) {
        snprintf(err, errlen,
                 "%s runs outside a transaction (" MIGRATE_NO_TRANSACTION_MARK
                 "), which start-up does not do: apply it with `todo migrate %s`",
                 file, down ? "down" : "up");
        return -1;
    }
    if (db->lock_session(db->conn, err, errlen) != 0) {
        prefix_error(file, err, errlen);
        return -1;
    }
    if (db->current_version(db->conn, &current, err, errlen) != 0) {
        prefix_error(file, err, errlen);
        goto out;
    }
    if (down && current > m->version) {
        snprintf(err, errlen, "%s: another migrator applied %04lld meanwhile; nothing was reverted",
                 file, (long long)current);
        goto out;
    }
    if (down ? current < m->version : current >= m->version) {
        progress(o, MIGRATE_EV_SKIPPED, m, 0);
        rc = 0;
        goto out;
    }
    progress(o, MIGRATE_EV_NO_TX, m, 0);
    progress(o, down ? MIGRATE_EV_REVERTING : MIGRATE_EV_APPLYING, m, 0);
    started = monotonic_ms();
    if (run_statements(db, file, down ? m->down_sql : m->up_sql, &failed_at, err, errlen) != 0) {
        partial_error(failed_at, err, errlen);
        goto out;
    }
    took = monotonic_ms() - started;
    if (db->begin(db->conn, err, errlen) != 0) {
        prefix_error(file, err, errlen);
        goto out;
    }
    if ((down ? db->unrecord(db->conn, m->version, err, errlen)
              : record(db, m, took, err, errlen)) != 0 ||
        db->commit(db->conn, err, errlen) != 0) {
        db->rollback(db->conn);
        prefix_error(file, err, errlen);
        goto out;
    }
    progress(o, down ? MIGRATE_EV_REVERTED : MIGRATE_EV_APPLIED, m, took);
    rc = 1;
out:
    db->unlock_session(db->conn);
    return rc;
}

static int check_order(const struct migration *list, size_t n, char *err, size_t errlen)
{
    for (size_t i = 1; i < n; i++) {
        if (list[i].version <= list[i - 1].version) {
            snprintf(err, errlen, "%04lld_%s.up.sql: versions out of order",
                     (long long)list[i].version, list[i].name);
            return -1;
        }
    }
    return 0;
}

/* Stop on problems `apply` must not run past: a changed file (unless
 * allowed) or a hole in the history. */
static int check_history(const struct migrate_db *db, const struct migration *list, size_t n,
                         const struct migrate_run_opts *o, char *err, size_t errlen)
{
    struct migrate_status st;
    int rc = 0;

    if (db->applied == NULL)
        return 0;
    if (migrate_status_read(db, list, n, &st, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < st.nproblems && rc == 0; i++) {
        const struct migrate_problem *p = &st.problems[i];
        if (p->kind == MIGRATE_PROBLEM_MISSING) {
            snprintf(err, errlen, "%s", p->message);
            rc = -1;
        } else if (p->kind == MIGRATE_PROBLEM_CHANGED && !o->allow_changed) {
            snprintf(err, errlen,
                     "%s; restore the file as it was applied (a change belongs in a new"
                     " migration: `todo migrate new NAME`), or pass --allow-changed",
                     p->message);
            rc = -1;
        } else if (p->kind == MIGRATE_PROBLEM_CHANGED) {
            progress(o, MIGRATE_EV_CHANGED, migrate_find(list, n, p->version), 0);
        }
    }
    migrate_status_free(&st);
    return rc;
}

int migrate_apply(const struct migrate_db *db, const struct migration *list, size_t n,
                  const struct migrate_run_opts *opts, char *err, size_t errlen)
{
    static const struct migrate_run_opts defaults;
    const struct migrate_run_opts *o = opts != NULL ? opts : &defaults;
    int64_t current = 0;
    int applied = 0;

    if (errlen > 0)
        err[0] = '\0';
    if (check_order(list, n, err, errlen) != 0)
        return -1;
    if (o->target != 0 && migrate_find(list, n, o->target) == NULL) {
        snprintf(err, errlen, "there is no migration %04lld", (long long)o->target);
        return -1;
    }
    /* A first read outside any transaction skips the common case (nothing
     * pending) without taking the write lock. */
    if (db->current_version(db->conn, &current, err, errlen) != 0)
        return -1;
    if (check_history(db, list, n, o, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const struct migration *m = &list[i];
        if (m->version <= current)
            continue;
        if (o->target != 0 && m->version > o->target)
            break;
        int rc = migrate_no_transaction(m->up_sql) ? run_alone(db, m, false, o, err, errlen)
                                                   : apply_one(db, m, o, err, errlen);
        if (rc < 0)
            return -1;
        applied += rc;
    }
    return applied;
}

int migrate_up_list(const struct migrate_db *db, const struct migration *list, size_t n, char *err,
                    size_t errlen)
{
    return migrate_apply(db, list, n, NULL, err, errlen);
}

int migrate_up(const struct migrate_db *db, char *err, size_t errlen)
{
    size_t n = 0;
    const struct migration *list = migrate_embedded(db->dialect, &n);

    if (list == NULL) {
        snprintf(err, errlen, "no migrations embedded for dialect %s", db->dialect);
        return -1;
    }
    return migrate_up_list(db, list, n, err, errlen);
}

/* ---- revert -------------------------------------------------------------- */

/* Revert m (the newest applied) in its own transaction: 1, 0 when another
 * migrator reverted it meanwhile, -1. */
static int revert_one(const struct migrate_db *db, const struct migration *m,
                      const struct migrate_run_opts *o, char *err, size_t errlen)
{
    char file[320];
    int64_t current = 0, started, took;
    size_t failed_at;

    migrate_file_name(m, true, file, sizeof(file));
    if (db->begin(db->conn, err, errlen) != 0)
        goto fail_nobegin;
    if (db->current_version(db->conn, &current, err, errlen) != 0)
        goto fail;
    if (current < m->version) {
        db->rollback(db->conn);
        progress(o, MIGRATE_EV_SKIPPED, m, 0);
        return 0;
    }
    if (current > m->version) {
        db->rollback(db->conn);
        snprintf(err, errlen,
                 "%s: another migrator applied %04lld meanwhile; nothing was reverted here", file,
                 (long long)current);
        return -1;
    }
    progress(o, MIGRATE_EV_REVERTING, m, 0);
    started = monotonic_ms();
    if (run_statements(db, file, m->down_sql, &failed_at, err, errlen) != 0) {
        db->rollback(db->conn);
        return -1;
    }
    took = monotonic_ms() - started;
    if (db->unrecord(db->conn, m->version, err, errlen) != 0 ||
        db->commit(db->conn, err, errlen) != 0)
        goto fail;
    progress(o, MIGRATE_EV_REVERTED, m, took);
    return 1;

fail:
    db->rollback(db->conn);
fail_nobegin:
    prefix_error(file, err, errlen);
    return -1;
}

/* The migrations to revert, newest first, checked before anything runs. */
static const struct migration **revert_plan(const struct migrate_status *st,
                                            const struct migration *list, size_t n,
                                            const struct migrate_run_opts *o, size_t *count,
                                            char *err, size_t errlen)
{
    const struct migration **plan = xcalloc(st->napplied + 1, sizeof(*plan));
    size_t k = 0;

    for (size_t i = st->napplied; i-- > 0;) {
        const struct migrate_applied *a = &st->applied[i];
        if (o->steps > 0 ? (int64_t)k >= o->steps : a->version <= o->target)
            break;
        const struct migration *m = migrate_find(list, n, a->version);
        if (m == NULL) {
            snprintf(err, errlen,
                     "applied version %04lld (%s) is not among the migrations, so it cannot be"
                     " reverted; nothing was reverted",
                     (long long)a->version, a->name);
            goto fail;
        }
        if (m->down_sql == NULL) {
            snprintf(err, errlen,
                     "%04lld_%s has no down file (%04lld_%s.down.sql), so it cannot be"
                     " reverted; nothing was reverted",
                     (long long)m->version, m->name, (long long)m->version, m->name);
            goto fail;
        }
        plan[k++] = m;
    }
    *count = k;
    return plan;
fail:
    free(plan);
    return NULL;
}

int migrate_revert(const struct migrate_db *db, const struct migration *list, size_t n,
                   const struct migrate_run_opts *opts, char *err, size_t errlen)
{
    static const struct migrate_run_opts defaults;
    const struct migrate_run_opts *o = opts != NULL ? opts : &defaults;
    struct migrate_status st;
    const struct migration **plan;
    size_t count = 0;
    int reverted = 0, rc = 0;

    if (errlen > 0)
        err[0] = '\0';
    if (db->applied == NULL || db->unrecord == NULL) {
        snprintf(err, errlen, "this connection cannot revert migrations");
        return -1;
    }
    if (check_order(list, n, err, errlen) != 0)
        return -1;
    if (migrate_status_read(db, list, n, &st, err, errlen) != 0)
        return -1;
    plan = revert_plan(&st, list, n, o, &count, err, errlen);
    migrate_status_free(&st);
    if (plan == NULL)
        return -1;
    for (size_t i = 0; i < count && rc >= 0; i++) {
        if (migrate_no_transaction(plan[i]->down_sql))
            rc = run_alone(db, plan[i], true, o, err, errlen);
        else
            rc = revert_one(db, plan[i], o, err, errlen);
        if (rc > 0)
            reverted++;
    }
    free(plan);
    return rc < 0 ? -1 : reverted;
}

/* ---- stamp --------------------------------------------------------------- */

static bool is_applied(const struct migrate_status *st, int64_t version)
{
    for (size_t i = 0; i < st->napplied; i++) {
        if (st->applied[i].version == version)
            return true;
    }
    return false;
}

int migrate_stamp(const struct migrate_db *db, const struct migration *list, size_t n,
                  int64_t version, const struct migrate_run_opts *opts, char *err, size_t errlen)
{
    static const struct migrate_run_opts defaults;
    const struct migrate_run_opts *o = opts != NULL ? opts : &defaults;
    struct migrate_status st = {0};
    int64_t current = 0;
    int stamped = 0;

    if (errlen > 0)
        err[0] = '\0';
    if (check_order(list, n, err, errlen) != 0)
        return -1;
    if (migrate_find(list, n, version) == NULL) {
        snprintf(err, errlen, "there is no migration %04lld", (long long)version);
        return -1;
    }
    if (db->current_version(db->conn, &current, err, errlen) != 0)
        return -1;
    if (db->begin(db->conn, err, errlen) != 0)
        return -1;
    if (db->current_version(db->conn, &current, err, errlen) != 0 ||
        (db->applied != NULL && migrate_status_read(db, list, n, &st, err, errlen) != 0))
        goto fail;
    if (current > version) {
        snprintf(err, errlen,
                 "the database is at %04lld, newer than %04lld: stamp only moves forward (to go"
                 " back, `todo migrate down --to %lld`)",
                 (long long)current, (long long)version, (long long)version);
        goto fail;
    }
    for (size_t i = 0; i < n && list[i].version <= version; i++) {
        bool done = db->applied != NULL ? is_applied(&st, list[i].version)
                                        : list[i].version <= current;
        if (done)
            continue;
        if (record(db, &list[i], 0, err, errlen) != 0)
            goto fail;
        stamped++;
    }
    if (db->commit(db->conn, err, errlen) != 0)
        goto fail;
    for (size_t i = 0; i < n && list[i].version <= version; i++) {
        if (db->applied != NULL ? !is_applied(&st, list[i].version) : list[i].version > current)
            progress(o, MIGRATE_EV_STAMPED, &list[i], 0);
    }
    migrate_status_free(&st);
    return stamped;
fail:
    db->rollback(db->conn);
    migrate_status_free(&st);
    return -1;
}

/* ---- status -------------------------------------------------------------- */

static void add_problem(struct migrate_status *st, enum migrate_problem_kind kind,
                        int64_t version, const char *message)
{
    st->problems = xrealloc(st->problems, (st->nproblems + 1) * sizeof(*st->problems));
    st->problems[st->nproblems++] = (struct migrate_problem){kind, version, xstrdup(message)};
}

static void find_problems(struct migrate_status *st, const struct migration *list, size_t n)
{
    char msg[512], file[320], sum[65];

    for (size_t i = 0; i < st->napplied; i++) {
        const struct migrate_applied *a = &st->applied[i];
        const struct migration *m = migrate_find(list, n, a->version);
        if (m == NULL) {
            snprintf(msg, sizeof(msg),
                     "applied version %04lld (%s) is not among the migrations (applied by a"
                     " newer build, or from another --dir?)",
                     (long long)a->version, a->name);
            add_problem(st, MIGRATE_PROBLEM_UNKNOWN, a->version, msg);
            continue;
        }
        migrate_checksum(m->up_sql, sum);
        if (strcmp(sum, a->checksum) != 0) {
            snprintf(msg, sizeof(msg),
                     "%s has changed since it was applied (recorded SHA-256 %.12s..., the file's"
                     " is now %.12s...)",
                     migrate_file_name(m, false, file, sizeof(file)), a->checksum, sum);
            add_problem(st, MIGRATE_PROBLEM_CHANGED, a->version, msg);
        }
    }
    for (size_t i = 0; i < n && list[i].version < st->current; i++) {
        if (!is_applied(st, list[i].version)) {
            snprintf(msg, sizeof(msg),
                     "%s is not applied, but the newer %04lld is: apply or remove it by hand"
                     " (out-of-order histories are not guessed at)",
                     migrate_file_name(&list[i], false, file, sizeof(file)),
                     (long long)st->current);
            add_problem(st, MIGRATE_PROBLEM_MISSING, list[i].version, msg);
        }
    }
}

void migrate_status_build(struct migrate_status *st, struct migrate_applied *applied,
                          size_t napplied, const struct migration *list, size_t n)
{
    memset(st, 0, sizeof(*st));
    st->applied = applied;
    st->napplied = napplied;
    for (size_t i = 0; i < napplied; i++) {
        if (applied[i].version > st->current)
            st->current = applied[i].version;
    }
    st->latest = n > 0 ? list[n - 1].version : 0;
    st->pending = xcalloc(n + 1, sizeof(*st->pending));
    for (size_t i = 0; i < n; i++) {
        if (list[i].version > st->current)
            st->pending[st->npending++] = &list[i];
    }
    find_problems(st, list, n);
}

int migrate_status_read(const struct migrate_db *db, const struct migration *list, size_t n,
                        struct migrate_status *st, char *err, size_t errlen)
{
    struct migrate_applied *rows = NULL;
    size_t nrows = 0;

    memset(st, 0, sizeof(*st));
    if (db->applied(db->conn, &rows, &nrows, err, errlen) != 0)
        return -1;
    migrate_status_build(st, rows, nrows, list, n);
    return 0;
}

void migrate_status_free(struct migrate_status *st)
{
    if (st == NULL)
        return;
    migrate_applied_free(st->applied, st->napplied);
    free(st->pending);
    for (size_t i = 0; i < st->nproblems; i++)
        free(st->problems[i].message);
    free(st->problems);
    memset(st, 0, sizeof(*st));
}
