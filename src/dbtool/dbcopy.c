/*
 * dbtool/dbcopy: `todo db copy` (see dbcopy.h): source → target, one table
 * at a time, rows streamed from dbsrc_scan's callback straight into
 * dbdst_put, so memory holds one row plus the writer's chunk.
 */
#include "dbtool/dbcopy.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dbtool/dbdst.h"
#include "migrate/mdb.h"
#include "migrate/migrate.h"
#include "model/uuid.h"
#include "util/buf.h"
#include "util/dburl.h"
#include "util/utf8.h"
#include "util/xalloc.h"

#define PROGRESS_EVERY_NS 200000000LL /* at most ~5 lines a second */
#define CHECK_EVERY_ROWS 4096         /* read the clock this often */

/* The ids of rejected users (canonical text), so their todos are rejected
 * too: an open-addressing hash set, as large as the rejections. */
struct idset {
    char (*slot)[DBROW_UUID_LEN + 1];
    size_t cap, n;
};

struct copy_ctx {
    const struct dbcopy_opts *o;
    struct dbdst *dst; /* NULL in a dry run */
    const struct dbtable *t;
    bool todos;
    int user_col; /* todos.user_id */
    struct dbcopy_table_result *tr;
    FILE *rejects;
    struct idset rejected_users;
    /* progress */
    int64_t total, start_ns, last_ns;
    /* the error that stopped a scan from inside a callback */
    char *err;
    size_t errlen;
};

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- rejected users ------------------------------------------------------- */

static uint64_t id_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static bool idset_has(const struct idset *set, const char *id)
{
    if (set->n == 0)
        return false;
    for (size_t i = id_hash(id) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        if (set->slot[i][0] == '\0')
            return false;
        if (strcmp(set->slot[i], id) == 0)
            return true;
    }
}

static void idset_put_slot(struct idset *set, const char *id)
{
    size_t i = id_hash(id) & (set->cap - 1);

    while (set->slot[i][0] != '\0') {
        if (strcmp(set->slot[i], id) == 0)
            return;
        i = (i + 1) & (set->cap - 1);
    }
    snprintf(set->slot[i], sizeof(set->slot[i]), "%s", id);
    set->n++;
}

static void idset_add(struct idset *set, const char *id)
{
    if ((set->n + 1) * 2 > set->cap) {
        struct idset bigger = {.cap = set->cap != 0 ? set->cap * 2 : 64};
        bigger.slot = xcalloc(bigger.cap, sizeof(*bigger.slot));
        for (size_t i = 0; i < set->cap; i++)
            if (set->slot[i][0] != '\0')
                idset_put_slot(&bigger, set->slot[i]);
        free(set->slot);
        *set = bigger;
    }
    idset_put_slot(set, id);
}

static void idset_free(struct idset *set)
{
    free(set->slot);
    memset(set, 0, sizeof(*set));
}

/* ---- progress ------------------------------------------------------------- */

/* 1234567 → "1,234,567" */
static void thousands(int64_t v, char *out, size_t outlen)
{
    char digits[32];
    size_t n, k = 0;

    snprintf(digits, sizeof(digits), "%lld", (long long)(v < 0 ? 0 : v));
    n = strlen(digits);
    for (size_t i = 0; i < n && k + 2 < outlen; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            out[k++] = ',';
        out[k++] = digits[i];
    }
    out[k] = '\0';
}

static void progress_line(struct copy_ctx *c, bool final)
{
    char done[32], total[32], rate[32], eta[32] = "";
    double secs = (double)(now_ns() - c->start_ns) / 1e9;
    int64_t n = c->tr->read;
    double rps = secs > 0 ? (double)n / secs : 0;

    thousands(n, done, sizeof(done));
    thousands(c->total, total, sizeof(total));
    thousands((int64_t)rps, rate, sizeof(rate));
    if (!final && rps > 0 && c->total > n)
        snprintf(eta, sizeof(eta), "  ETA %.0fs", (double)(c->total - n) / rps);
    fprintf(stderr, "\r%-6s %s / %s rows  %s rows/s%s\033[K%s", c->t->name, done, total, rate,
            eta, final ? "\n" : "");
    fflush(stderr);
}

static void progress_tick(struct copy_ctx *c)
{
    int64_t t;

    if (!c->o->progress || c->tr->read % CHECK_EVERY_ROWS != 0)
        return;
    t = now_ns();
    if (t - c->last_ns < PROGRESS_EVERY_NS)
        return;
    c->last_ns = t;
    progress_line(c, false);
}

/* ---- rejects -------------------------------------------------------------- */

/* A JSON string of text that may not be valid UTF-8 (a stored id can be
 * anything): invalid bytes become U+FFFD. */
static void json_text(struct buf *b, const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    struct buf clean;

    if (s == NULL) {
        buf_append_str(b, "null");
        return;
    }
    if (utf8_valid(s, len)) {
        buf_append_json_strn(b, s, len);
        return;
    }
    buf_init(&clean, len * 3 + 16);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = utf8_next(s + i, len - i, &cp);
        if (k == 0 || !utf8_valid(s + i, k)) {
            buf_append_str(&clean, "\xef\xbf\xbd");
            i++;
        } else {
            buf_append(&clean, s + i, k);
            i += k;
        }
    }
    buf_append_json_strn(b, clean.data != NULL ? clean.data : "", clean.len);
    buf_free(&clean);
}

static int write_reject(struct copy_ctx *c, const struct dbtable *t, const char *pk,
                        const char *column, const char *value, const char *reason)
{
    struct buf line;
    int rc = 0;

    buf_init(&line, 1 << 20);
    buf_append_str(&line, "{\"table\":");
    json_text(&line, t->name);
    buf_append_str(&line, ",\"id\":");
    json_text(&line, pk);
    buf_append_str(&line, ",\"column\":");
    json_text(&line, column);
    buf_append_str(&line, ",\"value\":");
    json_text(&line, value);
    buf_append_str(&line, ",\"reason\":");
    json_text(&line, reason);
    buf_append_str(&line, "}\n");
    if (fwrite(line.data, 1, line.len, c->rejects) != line.len) {
        snprintf(c->err, c->errlen, "%s: %s", c->o->reject_file, strerror(errno));
        rc = 1;
    }
    buf_free(&line);
    return rc;
}

static int on_reject(void *ctx, const struct dbreject *rej)
{
    struct copy_ctx *c = ctx;
    char id[DBROW_UUID_LEN + 1];

    c->tr->read++;
    c->tr->rejected++;
    if (!c->todos && rej->pk != NULL)
        idset_add(&c->rejected_users,
                  uuid_parse(rej->pk, strlen(rej->pk), id) ? id : rej->pk);
    progress_tick(c);
    return write_reject(c, rej->t, rej->pk, rej->column, rej->value, rej->reason);
}

/* A todo whose user was rejected; its value shown as dbconv shows values. */
static int reject_orphan(struct copy_ctx *c, const struct dbrow *row)
{
    const char *uid = row->v[c->user_col].uuid;
    struct dbraw raw = {.kind = DBRAW_TEXT, .p = (const unsigned char *)uid, .len = strlen(uid)};
    struct buf value;
    int rc;

    c->tr->rejected++;
    progress_tick(c);
    buf_init(&value, 4096);
    dbconv_raw_text(&raw, &value);
    rc = write_reject(c, c->t, dbrow_pk(row), "user_id", value.data != NULL ? value.data : "",
                      "its user was rejected");
    buf_free(&value);
    return rc;
}

static int on_row(void *ctx, const struct dbrow *row)
{
    struct copy_ctx *c = ctx;

    c->tr->read++;
    if (c->todos && c->rejected_users.n > 0 &&
        idset_has(&c->rejected_users, row->v[c->user_col].uuid))
        return reject_orphan(c, row);
    if (c->dst != NULL && dbdst_put(c->dst, row, c->err, c->errlen) != 0)
        return 1;
    c->tr->written++;
    progress_tick(c);
    return 0;
}

/* ---- steps ---------------------------------------------------------------- */

/* Rows reach a SQLite target's primary-key index much faster in key order
 * (a 1M-row PostgreSQL -> SQLite copy took 77 s in random order), and a
 * PostgreSQL source sorts cheaply. A SQLite source is read in stored order
 * (it may hold ids in other forms, which an ordered scan refuses). */
static unsigned scan_flags(struct dbsrc *src, const struct dbdst *dst)
{
    bool ordered = dst != NULL && strcmp(dbdst_dialect(dst), "sqlite") == 0 &&
                   strcmp(dbsrc_dialect(src), "postgres") == 0;
    return ordered ? 0 : DBSRC_SCAN_ANY_ORDER;
}

static int copy_table(struct copy_ctx *c, struct dbsrc *src, const struct dbtable *t,
                      struct dbcopy_table_result *tr, char *err, size_t errlen)
{
    int64_t start = now_ns(), written = 0;
    int rc;

    memset(tr, 0, sizeof(*tr));
    tr->table = t->name;
    c->t = t;
    c->tr = tr;
    c->todos = strcmp(t->name, "todos") == 0;
    c->user_col = dbrow_col_index(t, "user_id");
    c->total = 0;
    c->start_ns = c->last_ns = start;
    if (c->o->progress && dbsrc_count(src, t, &c->total, err, errlen) != 0)
        return -1;
    if (c->dst != NULL && dbdst_table_begin(c->dst, t, err, errlen) != 0)
        return -1;
    rc = dbsrc_scan(src, t, NULL, NULL, scan_flags(src, c->dst), on_row,
                    c->o->skip_errors ? on_reject : NULL, c, err, errlen);
    if (rc > 0)
        snprintf(err, errlen, "%s", c->err);
    if (rc != 0)
        return -1;
    if (c->dst != NULL) {
        if (dbdst_table_end(c->dst, &written, err, errlen) != 0)
            return -1;
        if (written != tr->written) {
            snprintf(err, errlen, "%s: %s: %lld rows sent but %lld written",
                     dbdst_label(c->dst), t->name, (long long)tr->written, (long long)written);
            return -1;
        }
    }
    tr->seconds = (double)(now_ns() - start) / 1e9;
    if (c->o->progress)
        progress_line(c, true);
    return 0;
}

/* A SQLite target is created if missing: its directory must exist and be
 * writable (SQLite would only say "unable to open database file"). */
static int check_sqlite_dir(const char *url, char *err, size_t errlen)
{
    struct dburl u = {0};
    char ignored[256];
    int rc = 0;

    if (dburl_parse(url, &u, ignored, sizeof(ignored)) != 0 || u.kind != DBURL_SQLITE)
        goto out;
    char *copy = xstrdup(u.path);
    const char *dir = dirname(copy);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: the directory %s does not exist; create it first (mkdir -p %s)",
                 u.redacted, dir, dir);
        rc = -1;
    } else if (access(dir, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "%s: cannot write in the directory %s: %s", u.redacted, dir,
                 strerror(errno));
        rc = -1;
    }
    free(copy);
out:
    dburl_free(&u);
    return rc;
}

/* libpq's 'database "x" does not exist' says what is wrong, not what to
 * do: the copy creates the tables, never the database. */
static void hint_missing_database(char *err, size_t errlen)
{
    size_t len = strlen(err);

    if (strstr(err, "FATAL: database \"") == NULL && strstr(err, "FATAL:  database \"") == NULL)
        return;
    if (strstr(err, "\" does not exist") == NULL)
        return;
    snprintf(err + len, errlen - len,
             " (create it first, e.g. createdb or CREATE DATABASE, or in the Neon console;"
             " todo db copy creates the tables, not the database)");
}

/* Bring the target to head (as `todo migrate up`), or with no_migrate
 * refuse one that is not there; dry_run only counts what is pending. */
static int prepare_target(const struct dbcopy_opts *o, struct dbcopy_result *res, char *err,
                          size_t errlen)
{
    struct mdb_opts mo = {.create = true};
    struct migrate_db cb;
    struct mdb *db = NULL;
    int n;

    if (check_sqlite_dir(o->to, err, errlen) != 0)
        return -1;
    if (o->dry_run || o->no_migrate) {
        n = mdb_pending_count(o->to, 0, err, errlen);
        if (n < 0)
            return -1;
        res->migrations_pending = n;
        if (n > 0 && !o->dry_run) {
            char *label = dburl_redact(o->to);
            snprintf(err, errlen,
                     "%s: %d migration(s) pending (--no-migrate); run `todo migrate up` on it"
                     " first",
                     label, n);
            free(label);
            return -1;
        }
        return 0;
    }
    if (mdb_open(o->to, &mo, &db, err, errlen) != 0)
        return -1;
    mdb_migrate_db(db, &cb);
    n = migrate_up(&cb, err, errlen);
    mdb_close(db);
    if (n < 0)
        return -1;
    res->migrations_applied = n;
    return 0;
}

/* Dry run: the target's schema must not be newer than this binary knows,
 * and its tables must be empty unless truncate (a table the pending
 * migrations would create has no rows). */
static int dry_check_target(const struct dbcopy_opts *o, char *err, size_t errlen)
{
    size_t nt;
    const struct dbtable *tables = dbrow_tables(&nt);

    for (size_t i = 0; i < nt; i++) {
        int64_t n;
        if (dbdst_count_url(o->to, &tables[i], &n, err, errlen) != 0)
            return -1;
        if (o->truncate)
            return 0; /* the version is checked; the rows do not matter */
        if (n > 0) {
            char *label = dburl_redact(o->to);
            snprintf(err, errlen,
                     "%s: table %s is not empty (%lld rows); use --truncate to replace them",
                     label, tables[i].name, (long long)n);
            free(label);
            return -1;
        }
    }
    return 0;
}

/* The same database on both sides would have the copy wait for its own
 * snapshot (PostgreSQL) or replace the rows it reads (SQLite). Only the
 * obvious cases are caught: the same file, the same connection string. */
static bool same_database(const char *from, const char *to)
{
    struct dburl a = {0}, b = {0};
    char ignored[256];
    struct stat sa, sb;
    bool same = false;

    if (dburl_parse(from, &a, ignored, sizeof(ignored)) != 0 ||
        dburl_parse(to, &b, ignored, sizeof(ignored)) != 0)
        goto out;
    if (a.kind != b.kind)
        goto out;
    if (a.kind == DBURL_SQLITE)
        same = stat(a.path, &sa) == 0 && stat(b.path, &sb) == 0 && sa.st_dev == sb.st_dev &&
               sa.st_ino == sb.st_ino;
    else
        same = strcmp(a.conninfo, b.conninfo) == 0;
out:
    dburl_free(&a);
    dburl_free(&b);
    return same;
}

static int check_opts(const struct dbcopy_opts *o, char *err, size_t errlen)
{
    if (o->from == NULL || o->to == NULL) {
        snprintf(err, errlen, "both a source and a target URL are needed");
        return -1;
    }
    if (same_database(o->from, o->to)) {
        char *label = dburl_redact(o->to);
        snprintf(err, errlen, "%s: the source and the target are the same database", label);
        free(label);
        return -1;
    }
    if (o->skip_errors && (o->reject_file == NULL || o->reject_file[0] == '\0')) {
        snprintf(err, errlen, "--on-error=skip needs --reject-file FILE");
        return -1;
    }
    return 0;
}

static int run_copy(const struct dbcopy_opts *o, struct dbcopy_result *res, struct copy_ctx *c,
                    struct dbsrc *src, char *err, size_t errlen)
{
    struct dbdst_opts dopts = {.truncate = o->truncate};
    size_t nt;
    const struct dbtable *tables = dbrow_tables(&nt);

    if (prepare_target(o, res, err, errlen) != 0 ||
        (o->dry_run ? dry_check_target(o, err, errlen)
                    : dbdst_open(o->to, &dopts, &c->dst, err, errlen)) != 0) {
        hint_missing_database(err, errlen);
        return -1;
    }
    for (size_t i = 0; i < nt && i < sizeof(res->tables) / sizeof(res->tables[0]); i++) {
        res->ntables = i + 1;
        if (copy_table(c, src, &tables[i], &res->tables[i], err, errlen) != 0)
            return -1;
    }
    /* The report is complete before anything is committed. */
    if (c->rejects != NULL && fflush(c->rejects) != 0) {
        snprintf(err, errlen, "%s: %s", o->reject_file, strerror(errno));
        return -1;
    }
    if (c->dst == NULL)
        return 0;
    if (o->progress) {
        fprintf(stderr, "rebuilding indexes and constraints, committing ...");
        fflush(stderr);
    }
    if (dbdst_commit(c->dst, err, errlen) != 0) {
        if (o->progress)
            fprintf(stderr, "\n");
        return -1;
    }
    if (o->progress)
        fprintf(stderr, " done\n");
    return 0;
}

int dbcopy_run(const struct dbcopy_opts *o, struct dbcopy_result *res, char *err, size_t errlen)
{
    struct copy_ctx c = {.o = o};
    struct dbsrc_opts sopts = {.layout = o->layout, .batch_rows = o->batch_rows};
    struct dbconv_tz *tz = NULL;
    struct dbsrc *src = NULL;
    int64_t start = now_ns();
    char cberr[1024] = "";
    int rc = -1;

    memset(res, 0, sizeof(*res));
    res->dry_run = o->dry_run;
    c.err = cberr;
    c.errlen = sizeof(cberr);
    if (check_opts(o, err, errlen) != 0)
        return -1;
    if (o->source_timezone != NULL &&
        (tz = dbconv_tz_open(o->source_timezone, err, errlen)) == NULL)
        return -1;
    sopts.tz = tz;
    if (dbsrc_open(o->from, &sopts, &src, err, errlen) != 0)
        goto out;
    res->layout = dbsrc_layout(src);
    if (o->skip_errors && (c.rejects = fopen(o->reject_file, "w")) == NULL) {
        snprintf(err, errlen, "%s: %s", o->reject_file, strerror(errno));
        goto out;
    }
    rc = run_copy(o, res, &c, src, err, errlen);
out:
    if (c.rejects != NULL && fclose(c.rejects) != 0 && rc == 0) {
        snprintf(err, errlen, "%s: %s", o->reject_file, strerror(errno));
        rc = -1; /* the copy committed, but its report is incomplete */
    }
    dbdst_close(c.dst);
    dbsrc_close(src);
    dbconv_tz_close(tz);
    idset_free(&c.rejected_users);
    res->seconds = (double)(now_ns() - start) / 1e9;
    return rc;
}
