/*
 * tests/cli/cli_support: see cli_support.h.
 */
#include "cli_support.h"

#include <criterion/criterion.h>
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>
#include <sqlite3.h>

/* ---- small helpers -------------------------------------------------------- */

int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

__attribute__((format(printf, 1, 0)))
static char *vxfmt(const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    cr_assert_geq(n, 0);
    char *p = malloc((size_t)n + 1);
    cr_assert_not_null(p);
    vsnprintf(p, (size_t)n + 1, fmt, again);
    va_end(again);
    return p;
}

char *xfmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = vxfmt(fmt, ap);
    va_end(ap);
    return p;
}

char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t len = 0, got;
    if (f == NULL)
        return strdup("");
    do {
        data = realloc(data, len + 65537);
        cr_assert_not_null(data);
        got = fread(data + len, 1, 65536, f);
        len += got;
    } while (got > 0);
    fclose(f);
    data[len] = '\0';
    return data;
}

void write_text(const char *path, const char *text, const char *mode)
{
    FILE *f = fopen(path, mode);
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void rm_tree(const char *dir)
{
    if (dir[0] != '\0')
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Every directory temp_dir made, removed at exit even when an assertion
 * ended the test early (Criterion returns from the test worker's main). */
static char *made_dirs[256];
static size_t nmade;

static void remove_made_dirs(void)
{
    for (size_t i = 0; i < nmade; i++) {
        rm_tree(made_dirs[i]);
        free(made_dirs[i]);
    }
    nmade = 0;
}

void temp_dir(char *out, size_t len)
{
    const char *base = getenv("TEST_TMPDIR");
    snprintf(out, len, "%s/cli-XXXXXX", base != NULL ? base : "/tmp");
    cr_assert_not_null(mkdtemp(out), "mkdtemp %s: %s", out, strerror(errno));
    char *real = realpath(out, NULL);
    cr_assert_not_null(real);
    snprintf(out, len, "%s", real);
    if (nmade == 0)
        atexit(remove_made_dirs);
    if (nmade < sizeof(made_dirs) / sizeof(made_dirs[0]))
        made_dirs[nmade++] = real;
    else
        free(real);
}

const char *env_or_fail(const char *name)
{
    const char *v = getenv(name);
    cr_assert(v != NULL && v[0] != '\0', "%s is not set (run through meson test)", name);
    return v;
}

bool pg_mode(void)
{
    const char *u = getenv("DATABASE_URL");
    return u != NULL && strncmp(u, "postgres", 8) == 0;
}

void uuid_v4(char out[37])
{
    unsigned char r[16];
    char h[33];
    cr_assert_eq(getrandom(r, sizeof(r), 0), (ssize_t)sizeof(r));
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    for (int i = 0; i < 16; i++)
        snprintf(h + 2 * i, 3, "%02x", r[i]);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

void uuid_hex32(const char *canon, char out[33])
{
    size_t j = 0;
    for (size_t i = 0; canon[i] != '\0' && j < 32; i++) {
        if (canon[i] != '-')
            out[j++] = canon[i];
    }
    out[j] = '\0';
}

/* ---- running the binary ---------------------------------------------------- */

char **todo_argv(const char *const *args)
{
    size_t n = 0;
    while (args[n] != NULL)
        n++;
    char **argv = calloc(n + 2, sizeof(*argv));
    cr_assert_not_null(argv);
    argv[0] = (char *)(uintptr_t)env_or_fail("TODO_BIN");
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = (char *)(uintptr_t)args[i];
    return argv;
}

void proc_start(struct proc *p, const char *const *args, const char *const *env,
                const char *cwd)
{
    static int seq;
    const char *tmp = getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp";
    char **argv = todo_argv(args);

    snprintf(p->outp, sizeof(p->outp), "%s/clirun-%d-%d.out", tmp, (int)getpid(), seq);
    snprintf(p->errp, sizeof(p->errp), "%s/clirun-%d-%d.err", tmp, (int)getpid(), seq++);
    fflush(NULL);
    p->pid = fork();
    cr_assert_neq(p->pid, -1);
    if (p->pid == 0) {
        int o = open(p->outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(p->errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int nul = open("/dev/null", O_RDONLY);
        if (o < 0 || e < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(127);
        for (int i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)(uintptr_t)env[i]);
        if (cwd != NULL && chdir(cwd) != 0)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    free(argv);
}

bool proc_running(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    cr_assert_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT), 0, "waitid %d: %s",
                 (int)pid, strerror(errno));
    return si.si_pid == 0;
}

struct run proc_finish(struct proc *p, int timeout_ms)
{
    struct run r = {.status = -1};
    int64_t end = mono_ms() + timeout_ms;
    int st = 0;
    pid_t got;

    struct rusage ru = {0};
    while ((got = wait4(p->pid, &st, WNOHANG, &ru)) == 0 && mono_ms() < end)
        sleep_ms(10);
    if (got == 0) {
        kill(p->pid, SIGKILL);
        wait4(p->pid, &st, 0, &ru);
    } else if (WIFEXITED(st)) {
        r.status = WEXITSTATUS(st);
    }
    r.maxrss_kb = ru.ru_maxrss;
    r.out = read_all(p->outp);
    r.err = read_all(p->errp);
    unlink(p->outp);
    unlink(p->errp);
    return r;
}

struct run run_env(const char *const *env, const char *cwd, const char *const *args)
{
    struct proc p;
    proc_start(&p, args, env, cwd);
    return proc_finish(&p, RUN_TIMEOUT_MS);
}

void run_expect(int code, const char *const *args)
{
    struct run r = run_env(NULL, NULL, args);
    EXPECT_EXIT(r, code);
    run_free(&r);
}

void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

json_t *json_of(const struct run *r)
{
    json_error_t e;
    json_t *j = json_loads(r->out, 0, &e);
    cr_assert_not_null(j, "stdout is not JSON (%s, line %d): %s\nstderr: %s", e.text, e.line,
                       r->out, r->err);
    return j;
}

long long jint(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "no integer '%s' in %s", key, json_dumps(o, JSON_COMPACT));
    return json_integer_value(v);
}

/* ---- databases --------------------------------------------------------------- */

static void pg_url_with_db(const char *base, const char *name, char *out, size_t len)
{
    const char *scheme = strstr(base, "://");
    cr_assert_not_null(scheme);
    const char *slash = strchr(scheme + 3, '/');
    const char *query = strchr(scheme + 3, '?');
    int head = slash != NULL ? (int)(slash - base) : (int)strlen(base);
    if (query != NULL && (slash == NULL || query < slash))
        head = (int)(query - base);
    snprintf(out, len, "%.*s/%s%s", head, base, name, query != NULL ? query : "");
}

static const char *pg_admin_url(void)
{
    const char *a = getenv("WITH_PG_CLUSTER_URL");
    return a != NULL && a[0] != '\0' ? a : env_or_fail("DATABASE_URL");
}

static PGconn *pg_connect(const char *url)
{
    PGconn *c = PQconnectdb(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    return c;
}

static void pg_exec_url(const char *url, const char *sql)
{
    PGconn *c = pg_connect(url);
    PGresult *r = PQexec(c, sql);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%.300s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

void tdb_sqlite(struct tdb *d)
{
    memset(d, 0, sizeof(*d));
    temp_dir(d->dir, sizeof(d->dir));
    snprintf(d->path, sizeof(d->path), "%s/test.db", d->dir);
    snprintf(d->url, sizeof(d->url), "sqlite:///%s", d->path);
}

void tdb_pg(struct tdb *d)
{
    static int seq;
    char sql[128];
    cr_assert(pg_mode());
    memset(d, 0, sizeof(*d));
    d->pg = true;
    snprintf(d->name, sizeof(d->name), "dbt_%d_%d_%ld", (int)getpid(), seq++, (long)time(NULL));
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", d->name);
    pg_exec_url(pg_admin_url(), sql);
    pg_url_with_db(pg_admin_url(), d->name, d->url, sizeof(d->url));
}

void tdb_target(struct tdb *d)
{
    if (pg_mode())
        tdb_pg(d);
    else
        tdb_sqlite(d);
}

void tdb_shared(struct tdb *d)
{
    if (!pg_mode()) {
        tdb_sqlite(d);
        return;
    }
    memset(d, 0, sizeof(*d));
    d->pg = true;
    snprintf(d->url, sizeof(d->url), "%s", env_or_fail("DATABASE_URL"));
}

void tdb_done(struct tdb *d)
{
    if (d->pg && d->name[0] != '\0') {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", d->name);
        PGconn *c = PQconnectdb(pg_admin_url());
        PQclear(PQexec(c, sql));
        PQfinish(c);
        d->name[0] = '\0';
    }
    if (!d->pg && d->dir[0] != '\0') {
        rm_tree(d->dir);
        d->dir[0] = '\0';
    }
}

static sqlite3 *lite_open(const struct tdb *d, bool rw)
{
    sqlite3 *db = NULL;
    int flags = rw ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
    int rc = sqlite3_open_v2(d->path, &db, flags, NULL);
    cr_assert_eq(rc, SQLITE_OK, "open %s: %s", d->path, sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 20000);
    return db;
}

void sql_exec(const struct tdb *d, const char *sql)
{
    if (d->pg) {
        pg_exec_url(d->url, sql);
        return;
    }
    sqlite3 *db = lite_open(d, true);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%.300s: %s", sql, msg ? msg : "");
    sqlite3_close(db);
}

void sql_execf(const struct tdb *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = vxfmt(fmt, ap);
    va_end(ap);
    sql_exec(d, sql);
    free(sql);
}

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        cr_assert_not_null(b->p);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* rows of sql; first_only: just the first column of the first row (NULL if none). */
static char *query(const struct tdb *d, const char *sql, bool first_only)
{
    struct sbuf b = {0};
    sb_add(&b, "", 0);
    if (d->pg) {
        PGconn *c = pg_connect(d->url);
        PGresult *r = PQexec(c, sql);
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%.300s: %s", sql, PQerrorMessage(c));
        if (first_only && PQntuples(r) == 0) {
            PQclear(r);
            PQfinish(c);
            free(b.p);
            return NULL;
        }
        for (int i = 0; i < PQntuples(r); i++) {
            for (int j = 0; j < PQnfields(r); j++) {
                if (j > 0)
                    sb_str(&b, "|");
                sb_str(&b, PQgetisnull(r, i, j) ? "<NULL>" : PQgetvalue(r, i, j));
                if (first_only)
                    break;
            }
            if (first_only)
                break;
            sb_str(&b, "\n");
        }
        PQclear(r);
        PQfinish(c);
        return b.p;
    }
    sqlite3 *db = lite_open(d, false);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%.300s: %s", sql,
                 sqlite3_errmsg(db));
    int rc, rows = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rows++;
        for (int j = 0; j < sqlite3_column_count(st); j++) {
            if (j > 0)
                sb_str(&b, "|");
            if (sqlite3_column_type(st, j) == SQLITE_NULL)
                sb_str(&b, "<NULL>");
            else
                sb_add(&b, (const char *)sqlite3_column_text(st, j),
                       (size_t)sqlite3_column_bytes(st, j));
            if (first_only)
                break;
        }
        if (first_only)
            break;
        sb_str(&b, "\n");
    }
    cr_assert(rc == SQLITE_DONE || rc == SQLITE_ROW, "%.300s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (first_only && rows == 0) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *sql_text(const struct tdb *d, const char *sql)
{
    return query(d, sql, true);
}

char *sql_rows(const struct tdb *d, const char *sql)
{
    return query(d, sql, false);
}

long long sql_int(const struct tdb *d, const char *sql)
{
    char *t = sql_text(d, sql);
    cr_assert_not_null(t, "no row: %s", sql);
    long long v = strtoll(t, NULL, 10);
    free(t);
    return v;
}

long long table_exists(const struct tdb *d, const char *name)
{
    char sql[256];
    if (d->pg)
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_tables WHERE schemaname ="
                                   " current_schema() AND tablename = '%s'", name);
    else
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND"
                                   " name = '%s'", name);
    return sql_int(d, sql);
}

long long column_exists(const struct tdb *d, const char *table, const char *column)
{
    char sql[256];
    if (d->pg)
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM information_schema.columns WHERE"
                                   " table_schema = current_schema() AND table_name = '%s' AND"
                                   " column_name = '%s'", table, column);
    else
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM pragma_table_info('%s') WHERE name ="
                                   " '%s'", table, column);
    return sql_int(d, sql);
}

char *schema_dump(const struct tdb *d)
{
    if (!d->pg)
        return sql_rows(d, "SELECT type || ' ' || name || ' ' || coalesce(sql, '')"
                           " FROM sqlite_schema ORDER BY name");
    char *s = sql_text(
        d, "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
           " SELECT table_name || '.' || column_name || ' ' || data_type || ' ' ||"
           "  is_nullable || ' ' || coalesce(column_default, '') AS x"
           "  FROM information_schema.columns WHERE table_schema = current_schema()"
           " UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()"
           " UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint"
           "  WHERE connamespace = current_schema()::regnamespace) s");
    cr_assert_not_null(s);
    return s;
}

static bool is_ts_col(const char *c)
{
    return strcmp(c, "created_at") == 0 || strcmp(c, "updated_at") == 0 ||
           strcmp(c, "completed_at") == 0;
}

static bool is_bool_col(const char *c)
{
    return strcmp(c, "is_active") == 0 || strcmp(c, "completed") == 0;
}

/* The canonical-text SQL expression for column c. */
static char *canon_expr(const struct tdb *d, const char *c)
{
    if (!d->pg)
        return strdup(c);
    if (is_ts_col(c))
        return xfmt("to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')", c);
    if (is_bool_col(c))
        return xfmt("%s::int", c);
    if (strcmp(c, "id") == 0 || strcmp(c, "user_id") == 0)
        return xfmt("%s::text", c);
    return strdup(c);
}

static const char *const user_cols[] = {"id", "email", "password_hash", "name", "is_active",
                                        "created_at", "updated_at", NULL};
static const char *const todo_cols[] = {"id", "user_id", "title", "description", "completed",
                                        "completed_at", "created_at", "updated_at", "version",
                                        NULL};

static char *canon_table(const struct tdb *d, const char *table, const char *const *cols)
{
    struct sbuf b = {0};
    sb_str(&b, "SELECT ");
    for (int i = 0; cols[i] != NULL; i++) {
        char *e = canon_expr(d, cols[i]);
        if (i > 0)
            sb_str(&b, ", ");
        sb_str(&b, e);
        free(e);
    }
    sb_str(&b, " FROM ");
    sb_str(&b, table);
    sb_str(&b, " ORDER BY id");
    char *rows = sql_rows(d, b.p);
    free(b.p);
    return rows;
}

char *canon_users(const struct tdb *d)
{
    return canon_table(d, "users", user_cols);
}

char *canon_todos(const struct tdb *d)
{
    return canon_table(d, "todos", todo_cols);
}

char *canon_value(const struct tdb *d, const char *table, const char *id, const char *column)
{
    char *e = canon_expr(d, column);
    char *sql = xfmt("SELECT %s FROM %s WHERE id = '%s'", e, table, id);
    char *v = sql_text(d, sql);
    cr_assert_not_null(v, "no row %s.%s in the target (%s)", table, id, d->url);
    free(sql);
    free(e);
    return v;
}

void migrate_up(const struct tdb *d)
{
    struct run r = RUN("migrate", "up", "--database-url", d->url);
    EXPECT_EXIT(r, 0);
    run_free(&r);
}

/* A uuid v4 from SQLite's randomblob, as an expression over column h
 * (hex(randomblob(16))). */
#define LITE_UUID                                                                                  \
    "lower(substr(h,1,8)||'-'||substr(h,9,4)||'-4'||substr(h,14,3)||'-a'||substr(h,18,3)||'-'||" \
    "substr(h,21,12))"

void make_current(const struct tdb *d, int nusers, int ntodos)
{
    cr_assert(!d->pg);
    migrate_up(d);
    char *sql = xfmt(
        "PRAGMA journal_mode = WAL;"
        "BEGIN;"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
        " INSERT INTO users (id, email, password_hash, name, is_active, created_at, updated_at)"
        " SELECT " LITE_UUID ", 'user' || i || '.' || lower(hex(randomblob(4))) || '@example.com',"
        "  '$argon2id$v=19$m=65536,t=2,p=1$' || hex(randomblob(16)) || '$' || hex(randomblob(32)),"
        "  CASE i %% 5 WHEN 0 THEN NULL WHEN 1 THEN 'Zoë ''O''Brien'' \\ ' || i"
        "   WHEN 2 THEN 'tab' || char(9) || 'nl' || char(10) || i ELSE 'User ' || i END,"
        "  CASE WHEN i %% 7 = 0 THEN 0 ELSE 1 END,"
        "  strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 1500000000 + i * 1000.125, 'unixepoch'),"
        "  strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 1600000000 + i * 77.5, 'unixepoch')"
        " FROM (SELECT i, hex(randomblob(16)) AS h FROM n);"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
        " INSERT INTO todos (id, user_id, title, description, completed, completed_at,"
        "  created_at, updated_at, version)"
        " SELECT " LITE_UUID ", (SELECT id FROM users WHERE rowid = (i %% %d) + 1),"
        "  CASE i %% 10 WHEN 0 THEN 'Émoji 🎉 \"quoted\" \\back\\slash ' || i"
        "   WHEN 1 THEN 'tab' || char(9) || 'and newline' || char(10) || i"
        "   WHEN 2 THEN replace(hex(zeroblob(85)), '00', 'é€x')"
        "   WHEN 3 THEN 'x' ELSE 'Todo number ' || i END,"
        "  CASE WHEN i %% 3 = 0 THEN NULL WHEN i %% 97 = 1 THEN replace(hex(zeroblob(5000)),"
        "   '00', 'dé') WHEN i %% 3 = 1 THEN '' ELSE 'Description ' || i || ' ''quoted''' END,"
        "  CASE WHEN i %% 4 = 0 THEN 1 ELSE 0 END,"
        "  CASE WHEN i %% 4 = 0 THEN strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ',"
        "   1700000000 + i * 3.001, 'unixepoch') END,"
        "  CASE WHEN i %% 50 = 0 THEN strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', -315619200 - i * 1.5,"
        "   'unixepoch') ELSE strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 1650000000 + i * 1.001,"
        "   'unixepoch') END,"
        "  strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 1690000000 + i * 2.002, 'unixepoch'),"
        "  1 + i %% 5"
        " FROM (SELECT i, hex(randomblob(16)) AS h FROM n);"
        "COMMIT;",
        nusers, ntodos, nusers);
    sql_exec(d, sql);
    free(sql);
    char q[64];
    snprintf(q, sizeof(q), "SELECT count(*) FROM todos");
    cr_assert_eq(sql_int(d, q), ntodos);
}

void make_bulk(const struct tdb *d, int nusers, int ntodos, int desc_chars)
{
    cr_assert(!d->pg);
    migrate_up(d);
    char *idx = sql_rows(d, "SELECT sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL"
                            " AND tbl_name = 'todos'");
    char *sql = xfmt(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -131072;"
        "BEGIN;"
        "DROP INDEX todos_user_created; DROP INDEX todos_user_updated;"
        "DROP INDEX todos_user_title; DROP INDEX todos_user_completed;"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
        " INSERT INTO users (id, email, password_hash, name, is_active, created_at, updated_at)"
        " SELECT " LITE_UUID ", 'bulk' || i || '@example.com', 'h', NULL, 1,"
        "  strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 1500000000 + i * 1000.125, 'unixepoch'),"
        "  strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 1500000000 + i * 1000.125, 'unixepoch')"
        " FROM (SELECT i, hex(randomblob(16)) AS h FROM n);"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
        " INSERT INTO todos (id, user_id, title, description, completed, completed_at,"
        "  created_at, updated_at, version)"
        " SELECT " LITE_UUID ", (SELECT id FROM users WHERE rowid = (i %% %d) + 1),"
        "  'Todo number ' || i, substr(hex(randomblob(%d)), 1, %d), i %% 2,"
        "  CASE WHEN i %% 2 = 1 THEN strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 1700000000 + i,"
        "   'unixepoch') END,"
        "  strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 1650000000 + i * 1.001, 'unixepoch'),"
        "  strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', 1690000000 + i * 2.002, 'unixepoch'), 1"
        " FROM (SELECT i, hex(randomblob(16)) AS h FROM n);"
        "COMMIT;",
        nusers, ntodos, nusers, desc_chars / 2 + 1, desc_chars);
    sql_exec(d, sql);
    free(sql);
    /* the indexes again, from the migration's own text */
    struct sbuf b = {0};
    sb_str(&b, "BEGIN;");
    for (char *line = idx, *nl; *line != '\0'; line = nl + 1) {
        nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        *nl = '\0';
        sb_str(&b, line);
        sb_str(&b, ";");
    }
    sb_str(&b, "COMMIT; PRAGMA journal_mode = WAL;");
    sql_exec(d, b.p);
    free(b.p);
    free(idx);
    cr_assert_eq(sql_int(d, "SELECT count(*) FROM todos"), ntodos);
    cr_assert_eq(sql_int(d, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND"
                            " tbl_name = 'todos' AND sql IS NOT NULL"),
                 4);
}

/* ---- the legacy layout ----------------------------------------------------------- */

void legacy_schema(const struct tdb *d, bool strict)
{
    const char *nn = strict ? " NOT NULL" : "";
    char *sql = xfmt(
        "CREATE TABLE users (id CHAR(32) NOT NULL, email VARCHAR(255)%s,"
        " password_hash VARCHAR(255)%s, name VARCHAR(255), created_at DATETIME%s,"
        " updated_at DATETIME, is_active BOOLEAN%s, PRIMARY KEY (id));"
        "CREATE UNIQUE INDEX ix_users_email ON users (email);"
        "CREATE TABLE tasks (id CHAR(32) NOT NULL, user_id CHAR(32)%s, title VARCHAR(255)%s,"
        " description TEXT, completed BOOLEAN%s, completed_at DATETIME, created_at DATETIME%s,"
        " updated_at DATETIME, PRIMARY KEY (id), FOREIGN KEY(user_id) REFERENCES users (id));"
        "CREATE INDEX ix_tasks_user_id ON tasks (user_id);"
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL,"
        " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));"
        "INSERT INTO alembic_version VALUES ('4b1f2c3d9e8a');",
        nn, nn, nn, nn, nn, nn, nn, nn);
    sql_exec(d, sql);
    free(sql);
}

void bcrypt_hash(const char *password, const char *prefix, int cost, char *out, size_t outlen)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    cr_assert_not_null(crypt_gensalt_rn(prefix, (unsigned long)cost, NULL, 0, salt, sizeof(salt)),
                       "crypt_gensalt_rn(%s, %d): %s", prefix, cost, strerror(errno));
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    cr_assert_not_null(cd);
    const char *h = crypt_r(password, salt, cd);
    cr_assert(h != NULL && h[0] == '$', "crypt_r failed for %s", salt);
    cr_assert_eq(strncmp(h, prefix, strlen(prefix)), 0, "%s does not start with %s", h, prefix);
    snprintf(out, outlen, "%s", h);
    free(cd);
}

/* ---- todo serve + HTTP ---------------------------------------------------------- */

static int listening_port(const char *log)
{
    const char *l = strstr(log, "msg=listening");
    if (l == NULL || strchr(l, '\n') == NULL)
        return 0;
    const char *a = strstr(l, "addr=");
    if (a == NULL || a > strchr(l, '\n'))
        return 0;
    const char *colon = strchr(a, ':');
    return colon != NULL ? (int)strtol(colon + 1, NULL, 10) : 0;
}

void server_start(struct server *s, const char *database_url)
{
    memset(s, 0, sizeof(*s));
    temp_dir(s->dir, sizeof(s->dir));
    snprintf(s->log, sizeof(s->log), "%s/server.log", s->dir);
    char *dbenv = xfmt("DATABASE_URL=%s", database_url);
    const char *bin = env_or_fail("TODO_BIN");
    fflush(NULL);
    s->pid = fork();
    cr_assert_neq(s->pid, -1);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion ends the test process */
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int nul = open("/dev/null", O_RDONLY);
        if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ||
            chdir(s->dir) != 0)
            _exit(126);
        static const char *const unset[] = {"MIGRATIONS_DATABASE_URL", "MIGRATE_ON_START",
                                            "POOL_SIZE", "NEON_POOL_SIZE", "LOG_FORMAT", NULL};
        for (int i = 0; unset[i] != NULL; i++)
            unsetenv(unset[i]);
        putenv(dbenv);
        putenv((char *)"APP_ENV=development");
        putenv((char *)"HOST=127.0.0.1");
        putenv((char *)"PORT=0");
        putenv((char *)"WORKERS=1");
        putenv((char *)"POOL_SIZE=4");
        putenv((char *)"LOG_LEVEL=info");
        putenv((char *)"ACCESS_TOKEN_EXPIRE_MINUTES=30");
        putenv((char *)"SECRET_KEY=cli-db-test-secret-key-0123456789abcdef-not-for-prod");
        execl(bin, bin, "serve", (char *)NULL);
        _exit(127);
    }
    free(dbenv);
    int64_t end = mono_ms() + 15000;
    while (s->port == 0) {
        char *log = read_all(s->log);
        s->port = listening_port(log);
        int st;
        if (s->port == 0 && waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            cr_assert_fail("todo serve exited before listening: %s", log);
        }
        if (s->port == 0 && mono_ms() > end) {
            server_stop(s);
            cr_assert_fail("todo serve: no listening line in 15 s: %s", log);
        }
        free(log);
        if (s->port == 0)
            sleep_ms(20);
    }
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
    for (;;) {
        struct http h = http_call(s, "GET", "/readyz", NULL, NULL);
        long st = h.status;
        http_free(&h);
        if (st == 200)
            break;
        if (mono_ms() > end) {
            char *log = read_all(s->log);
            server_stop(s);
            cr_assert_fail("todo serve: /readyz answers %ld: %s", st, log);
        }
        sleep_ms(50);
    }
}

void server_stop(struct server *s)
{
    if (s->pid > 0) {
        int st;
        kill(s->pid, SIGTERM);
        int64_t end = mono_ms() + 10000;
        while (waitpid(s->pid, &st, WNOHANG) == 0) {
            if (mono_ms() > end) {
                kill(s->pid, SIGKILL);
                waitpid(s->pid, &st, 0);
                break;
            }
            sleep_ms(20);
        }
        s->pid = 0;
    }
    rm_tree(s->dir);
    s->dir[0] = '\0';
}

struct cbuf {
    char *p;
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct cbuf *b = ud;
    size_t add = size * n;
    b->p = realloc(b->p, b->len + add + 1);
    if (b->p == NULL)
        abort();
    memcpy(b->p + b->len, p, add);
    b->len += add;
    b->p[b->len] = '\0';
    return add;
}

struct http http_call(const struct server *s, const char *method, const char *path,
                      const char *token, const char *body)
{
    struct http h = {0};
    struct cbuf b = {0};
    struct curl_slist *hdr = NULL;
    char url[1024], auth[4096];
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    hdr = curl_slist_append(hdr, "Expect:");
    if (body != NULL) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hdr = curl_slist_append(hdr, auth);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h.status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    h.body = b.p != NULL ? b.p : strdup("");
    h.json = json_loads(h.body, 0, NULL);
    return h;
}

void http_free(struct http *h)
{
    free(h->body);
    json_decref(h->json);
    memset(h, 0, sizeof(*h));
}
