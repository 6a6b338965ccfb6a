/*
 * tests/cli/cli_support: what every CLI suite (tests/cli/<name>_test.c)
 * needs to drive `todo` as a user does — the real binary (TODO_BIN), its
 * exit codes and output; databases of a test's own (a fresh SQLite file, or
 * a fresh PostgreSQL database made with CREATE DATABASE on
 * WITH_PG_CLUSTER_URL), or the suite's shared DATABASE_URL; reading them
 * back through the databases' own clients (sqlite3, libpq), never through
 * the code under test; the old Python app's "legacy" SQLite layout, with
 * bcrypt hashes made by libxcrypt; and `todo serve` on a database with a
 * small libcurl client.
 *
 * Failures are Criterion assertions (cr_assert), so call the functions from
 * a test body or its .init/.fini; a test's helper thread may use only
 * mono_ms, sleep_ms, and xfmt and uuid_v4 (which fail only when out of
 * memory or entropy). Strings returned are malloc'd; the caller frees them.
 * Directories made by temp_dir are removed at exit even when an assertion
 * ended the test early; a started server dies with the test process.
 * Databases made by tdb_pg are dropped by tdb_done; the shared one
 * (tdb_shared) never is.
 */
#ifndef TODO_TESTS_CLI_CLI_SUPPORT_H
#define TODO_TESTS_CLI_CLI_SUPPORT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define RUN_TIMEOUT_MS 120000

/* ---- small helpers ---- */

int64_t mono_ms(void);
void sleep_ms(int ms);
char *read_all(const char *path); /* "" when missing */
/* fopen(path, mode) ("w" or "a"), text written, closed. */
void write_text(const char *path, const char *text, const char *mode);
/* How many times needle occurs in hay (overlapping ones too). */
int count_of(const char *hay, const char *needle);
bool file_exists(const char *path);
/* A fresh directory under TEST_TMPDIR (or /tmp); rm_tree removes it. */
void temp_dir(char *out, size_t len);
void rm_tree(const char *dir);
const char *env_or_fail(const char *name);
/* DATABASE_URL names PostgreSQL (the suite runs under scripts/with-pg). */
bool pg_mode(void);
/* A random RFC 4122 v4 uuid, lower-case canonical. */
void uuid_v4(char out[37]);
/* The same uuid as 32 hex digits (no hyphens), lower-case. */
void uuid_hex32(const char *canon, char out[33]);
/* printf into a malloc'd string. */
char *xfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- running the binary ---- */

struct run {
    int status; /* exit code; -1 when killed or timed out */
    char *out, *err;
    long maxrss_kb; /* the process's peak resident set */
};

struct proc {
    pid_t pid;
    char outp[PATH_MAX], errp[PATH_MAX]; /* its stdout and stderr, as they grow */
};

/* argv for execv: TODO_BIN, then args (NULL-terminated, without argv[0]).
 * The caller frees the array (not the strings, which stay the caller's). */
char **todo_argv(const char *const *args);
/* Start TODO_BIN with args, stdin on /dev/null, env ("NAME=value" added to
 * the test's environment, NULL-terminated or NULL), in directory cwd (NULL:
 * the test's). */
void proc_start(struct proc *p, const char *const *args, const char *const *env,
                const char *cwd);
/* True while pid (a child) has not exited; it is not reaped. */
bool proc_running(pid_t pid);
/* Wait (killing after timeout_ms) and collect the output. */
struct run proc_finish(struct proc *p, int timeout_ms);
struct run run_env(const char *const *env, const char *cwd, const char *const *args);
void run_free(struct run *r);
/* Run args; assert the exit code (naming stdout and stderr otherwise). */
void run_expect(int code, const char *const *args);

#define RUN(...) run_env(NULL, NULL, (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_RUN(code, ...) run_expect((code), (const char *const[]){__VA_ARGS__, NULL})

#define EXPECT_EXIT(r, code)                                                                       \
    cr_assert_eq((r).status, (code), "exit %d, expected %d\nstdout:\n%s\nstderr:\n%s", (r).status, \
                 (code), (r).out, (r).err)
#define EXPECT_IN(text, needle)                                                                    \
    cr_assert_not_null(strstr((text), (needle)), "'%s' not in:\n%s", (needle), (text))
#define EXPECT_NOT_IN(text, needle)                                                                \
    cr_assert_null(strstr((text), (needle)), "'%s' should not be in:\n%s", (needle), (text))

/* stdout parsed as JSON (fails the test otherwise). */
json_t *json_of(const struct run *r);
/* The integer o[key] (fails the test when it is not one). */
long long jint(const json_t *o, const char *key);

/* ---- databases ---- */

struct tdb {
    char url[1024];
    char path[700]; /* SQLite file */
    char dir[600];  /* SQLite: its directory (removed by tdb_done) */
    char name[64];  /* PostgreSQL: database name (dropped by tdb_done; "" for tdb_shared) */
    bool pg;
};

/* A SQLite URL for a file that does not exist yet, in a fresh directory. */
void tdb_sqlite(struct tdb *d);
/* A fresh, empty PostgreSQL database (pg_mode() only). */
void tdb_pg(struct tdb *d);
/* PostgreSQL in pg_mode(), SQLite otherwise. */
void tdb_target(struct tdb *d);
/* DATABASE_URL itself in pg_mode() (never dropped: with-pg checks it), a
 * fresh SQLite file otherwise. */
void tdb_shared(struct tdb *d);
/* Drop / remove what tdb_pg / tdb_sqlite made; a zeroed or done d is fine. */
void tdb_done(struct tdb *d);

void sql_exec(const struct tdb *d, const char *sql);
/* sql_exec of a printf-formatted statement. */
void sql_execf(const struct tdb *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long long sql_int(const struct tdb *d, const char *sql);
/* The first column of the first row as text ("<NULL>" for NULL; NULL when
 * there is no row). */
char *sql_text(const struct tdb *d, const char *sql);
/* Every row of `sql`, columns joined by '|', rows by '\n'; NULL as <NULL>. */
char *sql_rows(const struct tdb *d, const char *sql);
/* 1 when table `name` exists (0 otherwise). */
long long table_exists(const struct tdb *d, const char *name);
/* 1 when table.column exists (0 otherwise). */
long long column_exists(const struct tdb *d, const char *table, const char *column);
/* The schema as text, by the database's own catalog (columns with types and
 * defaults, indexes, constraints on PostgreSQL; sqlite_schema on SQLite). */
char *schema_dump(const struct tdb *d);

/* users and todos in canonical text (uuids lower-case, booleans 0/1,
 * timestamps "YYYY-MM-DDTHH:MM:SS.mmmZ" UTC), ordered by id, read with the
 * database's own SQL. The target must be at the head schema. */
char *canon_users(const struct tdb *d);
char *canon_todos(const struct tdb *d);
/* One column of one row in canonical text (see above); NULL as "<NULL>". */
char *canon_value(const struct tdb *d, const char *table, const char *id, const char *column);

/* `todo migrate up` on d (exit 0 asserted). */
void migrate_up(const struct tdb *d);
/* A current-layout SQLite database (migrated with `todo migrate up`) with
 * nusers users and ntodos todos of varied content (Unicode, 255-character
 * titles, NULLs, long descriptions, pre-1970 times, versions > 1). */
void make_current(const struct tdb *d, int nusers, int ntodos);

/* A big current-layout SQLite database, made fast (secondary indexes built
 * after the rows): nusers users, ntodos todos with desc_chars characters of
 * random hex in their descriptions. */
void make_bulk(const struct tdb *d, int nusers, int ntodos, int desc_chars);

/* ---- the legacy layout ---- */

/* Create the old app's tables (users, tasks, alembic_version) in the SQLite
 * file d. strict: with the NOT NULL constraints the old app had; loose: no
 * constraints beyond the primary keys (so bad values can be stored). */
void legacy_schema(const struct tdb *d, bool strict);
/* A bcrypt hash made by libxcrypt: prefix "$2b$" or "$2a$", cost 4..12. */
void bcrypt_hash(const char *password, const char *prefix, int cost, char *out, size_t outlen);

/* ---- todo serve + HTTP ---- */

struct server {
    pid_t pid;
    int port;
    char base[64];
    char dir[600];
    char log[700];
};

/* Start `todo serve` on database_url (127.0.0.1, a free port, 1 worker) and
 * wait until /readyz answers 200. */
void server_start(struct server *s, const char *database_url);
void server_stop(struct server *s);

struct http {
    long status;
    char *body;
    json_t *json; /* NULL when not JSON */
};

/* method + base + path, JSON body (may be NULL), bearer token (may be NULL). */
struct http http_call(const struct server *s, const char *method, const char *path,
                      const char *token, const char *body);
void http_free(struct http *h);

#endif
