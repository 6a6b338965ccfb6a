/*
 * tests/e2e/harness: drive the real `todo serve` binary over loopback HTTP.
 *
 * The runner process (Criterion's, before it spawns any test) starts ONE
 * server in ReportHook(PRE_ALL) and publishes its base URL in E2E_BASE_URL
 * and its stderr log file in E2E_SERVER_LOG; test workers inherit both (BoxFort
 * fork+execs them with the runner's environment). Before publishing, it
 * checks that the server uses the database it was given (the listening
 * line's database=: postgres...HOST:PORT for a PostgreSQL URL, sqlite...
 * otherwise) and that /readyz answers 200 within 20 s; otherwise every test
 * fails with the reason. ReportHook(POST_ALL) stops it with SIGTERM and
 * checks exit status 0; main() prints `N passed, N failed`.
 *
 * Server environment: DATABASE_URL passes through when the test process has
 * it, otherwise a fresh temporary SQLite file per run; HOST=127.0.0.1, PORT=0,
 * WORKERS=2, SECRET_KEY=E2E_SECRET_KEY, ACCESS_TOKEN_EXPIRE_MINUTES=30,
 * LOG_LEVEL=info; working directory a fresh temporary directory. The server's
 * stderr goes straight to a file (it can never block on a pipe); the port is
 * learnt from its `msg=listening addr=127.0.0.1:PORT` line.
 *
 * Client: every request uses its own curl easy handle, so the functions are
 * safe from several threads at once (call e2e_init() before starting them;
 * e2e_parallel() does). Responses are owned by the caller: e2e_resp_free().
 *
 * Assertion helpers (E2E_* macros) use Criterion's cr_assert and so may only
 * be called from a test worker (or a thread of one, for plain request calls
 * without asserts).
 */
#ifndef TODO_TESTS_E2E_HARNESS_H
#define TODO_TESTS_E2E_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <criterion/criterion.h>
#include <jansson.h>

#define E2E_ENV_BASE_URL "E2E_BASE_URL"
#define E2E_ENV_SERVER_LOG "E2E_SERVER_LOG"
#define E2E_ENV_DB_URL "E2E_DATABASE_URL"
#define E2E_ENV_START_ERROR "E2E_START_ERROR"

/* The SECRET_KEY every harness-started server gets (raw bytes, >= 32). */
#define E2E_SECRET_KEY "e2e-test-secret-key-0123456789abcdef-do-not-use-in-prod"
#define E2E_EXPIRE_MINUTES 30

#define E2E_MAX_HEADERS 64

/* ---- HTTP client ---- */

struct e2e_header {
    char *name;
    char *value;
};

struct e2e_resp {
    long status;       /* 0 when the transfer failed (see error) */
    char error[256];   /* curl's error text, empty on success */
    char *body;        /* NUL-terminated (body may hold NULs; use len) */
    size_t len;
    size_t nheaders;   /* headers of the final response only */
    struct e2e_header headers[E2E_MAX_HEADERS];
    json_t *json;      /* parsed body, NULL when empty or not JSON */
    char what[160];    /* "METHOD path" for messages */
};

struct e2e_req {
    const char *method; /* NULL: GET */
    const char *base;   /* NULL: the shared server (E2E_BASE_URL) */
    const char *path;   /* appended to base */
    const char *token;  /* NULL: no Authorization header */
    const char *ctype;  /* Content-Type; NULL: none at all */
    const char *body;   /* NULL: no body */
    size_t len;         /* body length; 0 with a body: strlen(body) */
    const char *hdr[8]; /* extra "Name: value" lines, NULL-terminated */
    bool chunked;       /* send the body with Transfer-Encoding: chunked */
    bool expect_100;    /* keep curl's Expect: 100-continue (off by default) */
};

void e2e_init(void);
struct e2e_resp *e2e_send(const struct e2e_req *rq);
struct e2e_resp *e2e_get(const char *path, const char *token);
/* Send `body` (stolen, may be NULL) as application/json. */
struct e2e_resp *e2e_jreq(const char *method, const char *path, const char *token, json_t *body);
/* Send a raw JSON text as application/json. */
struct e2e_resp *e2e_raw(const char *method, const char *path, const char *token,
                         const char *body);
void e2e_resp_free(struct e2e_resp *r);
/* Case-insensitive header lookup; NULL when absent. */
const char *e2e_header(const struct e2e_resp *r, const char *name);
/* A short printable excerpt of the body for failure messages (static buffer
 * per thread). */
const char *e2e_excerpt(const struct e2e_resp *r);
/* The shared server's base URL ("http://127.0.0.1:PORT"); fails the test when
 * the runner could not start it. */
const char *e2e_base(void);

/* ---- assertions ---- */

#define E2E_STATUS(r, st)                                                                  \
    cr_assert_eq((r)->status, (long)(st), "%s: expected %d, got %ld %s %s", (r)->what,    \
                 (int)(st), (r)->status, (r)->error, e2e_excerpt(r))

/* The response is an RFC 9457 problem: status, application/problem+json,
 * {type: str, title: str, status: st, detail: str}. */
void e2e_check_problem(const struct e2e_resp *r, int st, const char *file, int line);
#define E2E_PROBLEM(r, st) e2e_check_problem((r), (st), __FILE__, __LINE__)

/* True when `errors` holds an entry whose field is `field`. */
bool e2e_problem_has_field(const struct e2e_resp *r, const char *field);
/* True when `errors` names `field` or the detail mentions it. */
bool e2e_problem_names(const struct e2e_resp *r, const char *name);
#define E2E_NAMES_FIELD(r, f)                                                              \
    cr_assert(e2e_problem_has_field((r), (f)), "%s: errors[] does not name field '%s': %s", \
              (r)->what, (f), e2e_excerpt(r))

/* A 422 naming each field in the NULL-terminated list. */
#define E2E_422_FIELDS(r, ...)                                                             \
    do {                                                                                   \
        const char *e2e_f_[] = {__VA_ARGS__, NULL};                                        \
        E2E_PROBLEM((r), 422);                                                             \
        for (int e2e_i_ = 0; e2e_f_[e2e_i_]; e2e_i_++)                                     \
            E2E_NAMES_FIELD((r), e2e_f_[e2e_i_]);                                          \
    } while (0)

/* 401 problem with WWW-Authenticate: Bearer... */
void e2e_check_401_bearer(const struct e2e_resp *r, const char *file, int line);
#define E2E_401_BEARER(r) e2e_check_401_bearer((r), __FILE__, __LINE__)

/* The problem body as canonical JSON text (sorted keys) without the
 * per-request "request_id" member and with `id` (may be NULL) replaced by
 * "<ID>", so that two answers can be compared for sameness. Caller frees. */
char *e2e_problem_canonical(const struct e2e_resp *r, const char *id);

/* ---- users ---- */

struct e2e_user {
    char email[192];
    char password[96];
    char id[64];
    char token[2048];
};

/* "tag-<16 hex>@e2e.example.com" into out. */
void e2e_unique_email(char *out, size_t outlen, const char *tag);
/* Register a fresh user (201) and log in (200); fails the test otherwise. */
void e2e_user_make(struct e2e_user *u, const char *tag);
/* Login; returns the response (caller frees). */
struct e2e_resp *e2e_login(const char *base, const char *email, const char *password);

/* ---- todos ---- */

/* POST a todo (body stolen); asserts 201 and returns the body (caller decrefs). */
json_t *e2e_todo_create(const struct e2e_user *u, json_t *body);
/* POST {"title": title}; returns the body. */
json_t *e2e_todo_new(const struct e2e_user *u, const char *title);
/* Check the todo JSON shape: exactly the 8 fields, their types, formats. */
void e2e_check_todo(const json_t *t, const char *file, int line);
#define E2E_TODO_SHAPE(t) e2e_check_todo((t), __FILE__, __LINE__)
/* "/api/v1/todos/<id>" */
const char *e2e_todo_path(const char *id);

/* ---- values ---- */

const char *e2e_str(const json_t *obj, const char *key);         /* NULL if not a string */
long long e2e_int(const json_t *obj, const char *key);           /* -1 if not an integer */
bool e2e_is_uuid(const char *s);                                 /* canonical lower-case */
bool e2e_is_rfc3339_ms(const char *s);                           /* YYYY-MM-DDTHH:MM:SS.mmmZ */
int64_t e2e_parse_ms(const char *s);                             /* -1 when not rfc3339 ms */
int64_t e2e_now_ms(void);
void e2e_uuid_v4(char out[37]);                                  /* random, lower-case */
/* caller frees */
char *e2e_repeat(const char *unit, size_t n) __attribute__((returns_nonnull));
void e2e_random_hex(char *out, size_t nhex);                     /* nhex chars + NUL */
/* caller frees */
char *e2e_urlencode(const char *s) __attribute__((returns_nonnull));
/* Replace every occurrence of `needle` in `hay` with `with` (caller frees). */
char *e2e_replace(const char *hay, const char *needle, const char *with)
    __attribute__((returns_nonnull));

/* ---- tokens (JWT) ---- */

/* base64url(header).base64url(payload).signature where the signature is
 * HMAC-SHA256 over the first two parts with `key` (NULL: empty signature).
 * Caller frees. */
char *e2e_jwt_sign(const char *header_json, const char *payload_json, const void *key,
                   size_t keylen);
/* HS256 token for sub/email expiring at now + exp_offset_s, signed with the
 * harness key. */
char *e2e_jwt_forge(const char *sub, const char *email, long exp_offset_s);
/* Decode the payload of a JWT into JSON (NULL when malformed). */
json_t *e2e_jwt_payload(const char *token);
/* True when token's signature is a valid HS256 MAC under the harness key. */
bool e2e_jwt_verify(const char *token);

/* ---- concurrency ---- */

typedef void e2e_thread_fn(int i, void *arg);
/* Run fn(0..n-1, arg) on n threads released together by a barrier. */
void e2e_parallel(int n, e2e_thread_fn *fn, void *arg);

/* ---- servers ---- */

struct e2e_server {
    pid_t pid;
    int port;
    char base[64];
    char dir[256];     /* working directory */
    char log[320];     /* the server's stderr (and stdout) */
    char db_url[512];  /* what DATABASE_URL was set to ("" when unset) */
    bool own_dir;
};

struct e2e_server_opts {
    const char *dir;            /* working directory; NULL: a fresh temp dir */
    const char *database_url;   /* NULL: E2E default (env pass-through or temp sqlite) */
    const char *const *set;     /* "NAME=value" overriding the defaults, NULL-terminated */
    const char *const *unset;   /* names not to pass at all, NULL-terminated */
    const char *const *args;    /* argv after `todo`, NULL: {"serve"} */
    bool no_defaults;           /* pass none of the harness defaults */
    bool empty_env;             /* inherit only PATH and *SAN_OPTIONS from the test */
};

/* Start and wait (10 s) for the listening line. 0, or -1 with a reason in
 * err (the server has then been killed and reaped). */
int e2e_server_start(struct e2e_server *s, const struct e2e_server_opts *o, char *err,
                     size_t errlen);
/* Start without waiting for anything. 0 or -1. */
int e2e_server_spawn(struct e2e_server *s, const struct e2e_server_opts *o, char *err,
                     size_t errlen);
/* Wait up to timeout_ms for exit; 0 and *wstatus, or -1 on timeout. */
int e2e_server_wait(struct e2e_server *s, int timeout_ms, int *wstatus);
/* kill(sig) then wait (SIGKILL after timeout_ms). Returns the wait status. */
int e2e_server_stop(struct e2e_server *s, int sig, int timeout_ms);
/* Remove the working dir when the harness created it. */
void e2e_server_cleanup(struct e2e_server *s);
/* Wait until `needle` appears in the server log (polling); true if found. */
bool e2e_log_wait(const char *log_path, const char *needle, int timeout_ms);
/* Start a server for one test; fails the test on error. */
void e2e_server_start_or_fail(struct e2e_server *s, const struct e2e_server_opts *o);
/* Wait up to timeout_ms for /readyz 200 (a PostgreSQL server listens before
 * its pool has connected). 0, or -1 with a reason in err. No assertion: the
 * runner process may call it. */
int e2e_server_wait_ready(const struct e2e_server *s, int timeout_ms, char *err, size_t errlen);

/* Whole file (NUL-terminated; caller frees) or NULL. */
char *e2e_read_file(const char *path, size_t *len);
int e2e_write_file(const char *path, const char *text);
/* The value of `key` in a logfmt line (unquoted, caller frees) or NULL. */
char *e2e_logfmt_get(const char *line, const char *key);
/* A free TCP port on 127.0.0.1 (bound then released). */
int e2e_free_port(void);
/* True when something accepts TCP connections on 127.0.0.1:port. */
bool e2e_port_open(int port);

/* Run `TODO_BIN args...` with environment `env` (NULL-terminated
 * NAME=value list; besides it only PATH and the *SAN_OPTIONS variables of the
 * test run), capture stdout+stderr into *out
 * (caller frees). Returns the wait status, or -1 (timeout: killed). */
int e2e_run(const char *const *args, const char *const *env, char **out, int timeout_ms);
const char *e2e_todo_bin(void);
/* "exited with status N" / "killed by signal N" / "did not exit" (-1), for
 * messages (static buffer per thread). */
const char *e2e_status_text(int wstatus);

#endif
