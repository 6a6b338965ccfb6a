/*
 * e2e: operations — health, readiness, the OpenAPI document, the access
 * log, --help, configuration (env, .env, invalid values, defaults), signals
 * and durability across restarts. Tests that need their own server start a
 * short-lived one with e2e_server_start_or_fail().
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"

static const char *const env_vars[] = {"DATABASE_URL", "HOST", "PORT", "WORKERS", "SECRET_KEY",
                                       "ACCESS_TOKEN_EXPIRE_MINUTES", "LOG_LEVEL", NULL};

static void make_user_at(const char *base, struct e2e_user *u, const char *tag);

/* ---- health, readiness, OpenAPI ---- */

Test(ops, healthz_and_readyz_200)
{
    struct e2e_resp *r = e2e_get("/healthz", NULL);
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
    r = e2e_get("/readyz", NULL);
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
}

static json_t *load_openapi_file(void)
{
    const char *path = getenv("TODO_OPENAPI");
    cr_assert(path && *path, "TODO_OPENAPI is not set");
    json_error_t err;
    json_t *doc = json_load_file(path, 0, &err);
    cr_assert(doc, "%s: not JSON: %s at line %d", path, err.text, err.line);
    return doc;
}

/* The operation object for `method` on a path matching `pattern`, where
 * "{}" in the pattern matches any "{name}" template segment. */
static json_t *find_op(json_t *paths, const char *pattern, const char *method)
{
    const char *key;
    json_t *item;
    json_object_foreach(paths, key, item) {
        const char *p = pattern, *k = key;
        while (*p && *k) {
            if (p[0] == '{' && p[1] == '}' && *k == '{') {
                while (*k && *k != '}')
                    k++;
                if (!*k)
                    break;
                k++;
                p += 2;
            } else if (*p == *k) {
                p++;
                k++;
            } else {
                break;
            }
        }
        if (!*p && !*k)
            return json_object_get(item, method);
    }
    return NULL;
}

static void check_openapi_doc(json_t *doc, const char *what)
{
    const char *ver = e2e_str(doc, "openapi");
    cr_assert(ver && strncmp(ver, "3.1.", 4) == 0, "%s: openapi is '%s', want 3.1.x", what,
              ver ? ver : "(none)");
    cr_assert(json_is_object(json_object_get(doc, "info")), "%s: no info", what);
    json_t *paths = json_object_get(doc, "paths");
    cr_assert(json_is_object(paths), "%s: no paths", what);
    static const struct {
        const char *path, *method;
    } routes[] = {
        {"/api/v1/auth/register", "post"}, {"/api/v1/auth/login", "post"},
        {"/api/v1/auth/token", "post"},    {"/api/v1/auth/me", "get"},
        {"/api/v1/todos", "get"},          {"/api/v1/todos", "post"},
        {"/api/v1/todos/{}", "get"},       {"/api/v1/todos/{}", "put"},
        {"/api/v1/todos/{}", "patch"},     {"/api/v1/todos/{}", "delete"},
        {"/healthz", "get"},               {"/readyz", "get"},
        {"/api/v1/openapi.json", "get"},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        json_t *op = find_op(paths, routes[i].path, routes[i].method);
        cr_assert(json_is_object(op), "%s: paths lacks %s %s", what, routes[i].method,
                  routes[i].path);
        cr_assert(json_is_object(json_object_get(op, "responses")), "%s: %s %s has no responses",
                  what, routes[i].method, routes[i].path);
    }
}

Test(ops, openapi_served_equals_repo_file)
{
    json_t *file = load_openapi_file();
    check_openapi_doc(file, "docs/openapi.json");
    struct e2e_resp *r = e2e_get("/api/v1/openapi.json", NULL);
    E2E_STATUS(r, 200);
    const char *ct = e2e_header(r, "Content-Type");
    cr_assert(ct && strncmp(ct, "application/json", 16) == 0, "Content-Type %s", ct ? ct : "-");
    cr_assert(r->json, "served document is not JSON");
    check_openapi_doc(r->json, "served document");
    cr_assert(json_equal(r->json, file), "the served document differs from docs/openapi.json");
    e2e_resp_free(r);
    json_decref(file);
}

/* ---- access log ---- */

/* The first complete log line containing `needle` (caller frees), waiting
 * up to 3 s for it to appear. */
static char *log_line_with(const char *log, const char *needle)
{
    if (!e2e_log_wait(log, needle, 3000))
        return NULL;
    char *text = e2e_read_file(log, NULL);
    char *hit = strstr(text, needle);
    char *start = hit;
    while (start > text && start[-1] != '\n')
        start--;
    char *end = strchr(hit, '\n');
    size_t n = end ? (size_t)(end - start) : strlen(start);
    char *line = strndup(start, n);
    free(text);
    return line;
}

Test(ops, access_log_line_per_request)
{
    const char *log = getenv(E2E_ENV_SERVER_LOG);
    cr_assert(log, "E2E_SERVER_LOG not set");
    char hex[17], path[64], needle[80];
    e2e_random_hex(hex, 16);
    snprintf(path, sizeof(path), "/e2e-probe-%s", hex);
    struct e2e_resp *r = e2e_get(path, NULL);
    E2E_PROBLEM(r, 404);
    snprintf(needle, sizeof(needle), "%s", path);
    char *line = log_line_with(log, needle);
    cr_assert(line, "no access log line for %s in %s", path, log);
    char *v;
    struct {
        const char *key, *want;
    } kv[] = {{"msg", "request"}, {"method", "GET"}, {"path", path}, {"status", "404"}};
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
        v = e2e_logfmt_get(line, kv[i].key);
        cr_assert(v && strcmp(v, kv[i].want) == 0, "access log %s=%s, want %s: %s", kv[i].key,
                  v ? v : "(missing)", kv[i].want, line);
        free(v);
    }
    v = e2e_logfmt_get(line, "bytes");
    cr_assert(v && strtol(v, NULL, 10) == (long)r->len, "bytes=%s, body was %zu: %s",
              v ? v : "(missing)", r->len, line);
    free(v);
    v = e2e_logfmt_get(line, "duration_ms");
    char *end = NULL;
    cr_assert(v && *v && (strtod(v, &end), *end == '\0') && strtod(v, NULL) >= 0,
              "duration_ms=%s: %s", v ? v : "(missing)", line);
    free(v);
    v = e2e_logfmt_get(line, "request_id");
    cr_assert(v && *v, "request_id missing: %s", line);
    free(v);
    v = e2e_logfmt_get(line, "level");
    cr_assert(v && *v, "level missing: %s", line);
    free(v);
    v = e2e_logfmt_get(line, "time");
    cr_assert(v && *v, "time missing: %s", line);
    free(v);
    free(line);
    e2e_resp_free(r);

    /* request ids differ between requests */
    char *ids[2];
    for (int i = 0; i < 2; i++) {
        e2e_random_hex(hex, 16);
        snprintf(path, sizeof(path), "/e2e-probe-%s", hex);
        r = e2e_get(path, NULL);
        e2e_resp_free(r);
        line = log_line_with(log, path);
        cr_assert(line);
        ids[i] = e2e_logfmt_get(line, "request_id");
        free(line);
    }
    cr_assert(ids[0] && ids[1] && strcmp(ids[0], ids[1]) != 0, "request ids repeat");
    free(ids[0]);
    free(ids[1]);
}

Test(ops, log_never_holds_passwords_or_tokens)
{
    const char *log = getenv(E2E_ENV_SERVER_LOG);
    cr_assert(log);
    struct e2e_user u;
    e2e_user_make(&u, "secretlog");
    struct e2e_resp *r = e2e_login(NULL, u.email, "wrong-secret-password-xyz");
    e2e_resp_free(r);
    r = e2e_get("/api/v1/auth/me?probe=1", u.token); /* 400 or 200; either is logged */
    e2e_resp_free(r);
    r = e2e_get("/api/v1/auth/me", u.token);
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
    /* wait until the last request is logged, then look */
    cr_assert(e2e_log_wait(log, "path=/api/v1/auth/me", 3000), "no access log line");
    char *text = e2e_read_file(log, NULL);
    cr_assert(!strstr(text, u.password), "the log holds a password");
    cr_assert(!strstr(text, "wrong-secret-password-xyz"), "the log holds a password");
    const char *sig = strrchr(u.token, '.');
    cr_assert(!strstr(text, sig + 1), "the log holds a token");
    cr_assert(!strstr(text, E2E_SECRET_KEY), "the log holds SECRET_KEY");
    free(text);
}

Test(ops, startup_line_names_address_and_database)
{
    const char *log = getenv(E2E_ENV_SERVER_LOG);
    const char *base = e2e_base();
    cr_assert(log);
    char *line = log_line_with(log, "listening");
    cr_assert(line, "no listening line");
    char *addr = e2e_logfmt_get(line, "addr");
    cr_assert(addr && strcmp(addr, base + strlen("http://")) == 0, "addr=%s, base %s", addr,
              base);
    char *db = e2e_logfmt_get(line, "database");
    cr_assert(db && *db, "database missing in: %s", line);
    const char *url = getenv(E2E_ENV_DB_URL);
    /* a password in DATABASE_URL (user:password@) must not be printed */
    const char *at = url ? strchr(url, '@') : NULL;
    const char *colon = NULL;
    if (at) {
        const char *p = strstr(url, "://");
        p = p ? p + 3 : url;
        colon = memchr(p, ':', (size_t)(at - p));
    }
    if (colon && at - colon > 1) {
        char *pw = strndup(colon + 1, (size_t)(at - colon - 1));
        cr_assert(!strstr(line, pw), "the start-up line prints the database password: %s", line);
        free(pw);
    } else if (url && strncmp(url, "sqlite", 6) == 0) {
        cr_assert(strstr(db, "todo.db"), "database=%s does not say which file", db);
    }
    free(db);
    free(addr);
    free(line);
}

/* ---- --help ---- */

static void expect_help(const char *const *args)
{
    char *out = NULL;
    int st = e2e_run(args, NULL, &out, 10000);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "todo %s %s: %s: %s",
              args[0], args[1] ? args[1] : "", e2e_status_text(st), out ? out : "");
    for (int i = 0; env_vars[i]; i++)
        cr_assert(strstr(out, env_vars[i]), "todo %s %s does not document %s:\n%s", args[0],
                  args[1] ? args[1] : "", env_vars[i], out);
    free(out);
}

Test(ops, help_documents_every_variable)
{
    static const char *const a1[] = {"--help", NULL};
    static const char *const a2[] = {"serve", "--help", NULL};
    expect_help(a1);
    expect_help(a2);
}

/* ---- configuration ---- */

/* Start with `set` overriding the defaults, expect a non-zero exit within
 * 10 s, output naming `var`, and nothing listening. */
static void expect_config_error(const char *kv, const char *var, bool with_port)
{
    char portkv[32];
    int port = e2e_free_port();
    snprintf(portkv, sizeof(portkv), "PORT=%d", port);
    const char *set[] = {with_port ? portkv : kv, with_port ? kv : NULL, NULL};
    struct e2e_server s;
    char err[512];
    struct e2e_server_opts o = {.set = set};
    cr_assert_eq(e2e_server_spawn(&s, &o, err, sizeof(err)), 0, "%s", err);
    int st = 0;
    int waited = e2e_server_wait(&s, 10000, &st);
    char *out = e2e_read_file(s.log, NULL);
    if (waited != 0) {
        bool open_ = with_port && e2e_port_open(port);
        e2e_server_stop(&s, SIGKILL, 2000);
        e2e_server_cleanup(&s);
        cr_assert_fail("%s: the server kept running (listening: %d): %s", kv, open_, out);
    }
    e2e_server_cleanup(&s);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "%s: want a non-zero exit, it %s",
              kv, e2e_status_text(st));
    cr_assert(strstr(out, var), "%s: the message does not name %s: %s", kv, var, out);
    cr_assert(!strstr(out, "msg=listening") && !strstr(out, "msg=\"listening\""),
              "%s: it listened before failing: %s", kv, out);
    if (with_port)
        cr_assert(!e2e_port_open(port), "%s: something listens on %d", kv, port);
    free(out);
}

Test(ops, invalid_port_exits_naming_it)
{
    expect_config_error("PORT=abc", "PORT", false);
    expect_config_error("PORT=70000", "PORT", false);
    expect_config_error("PORT=-1", "PORT", false);
}

Test(ops, invalid_workers_exits_naming_it)
{
    expect_config_error("WORKERS=0", "WORKERS", true);
    expect_config_error("WORKERS=abc", "WORKERS", true);
}

Test(ops, invalid_database_url_exits_naming_it)
{
    expect_config_error("DATABASE_URL=mysql://x", "DATABASE_URL", true);
    expect_config_error("DATABASE_URL=not a url", "DATABASE_URL", true);
}

Test(ops, invalid_other_variables_exit_naming_them)
{
    expect_config_error("ACCESS_TOKEN_EXPIRE_MINUTES=0", "ACCESS_TOKEN_EXPIRE_MINUTES", true);
    expect_config_error("ACCESS_TOKEN_EXPIRE_MINUTES=soon", "ACCESS_TOKEN_EXPIRE_MINUTES", true);
    expect_config_error("LOG_LEVEL=loud", "LOG_LEVEL", true);
}

static long long login_expires_in(const char *base)
{
    char email[192];
    e2e_unique_email(email, sizeof(email), "cfg");
    json_t *b = json_pack("{s:s, s:s}", "email", email, "password", "cfg-password");
    char *text = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    struct e2e_req rq = {.method = "POST", .base = base, .path = "/api/v1/auth/register",
                         .ctype = "application/json", .body = text};
    struct e2e_resp *r = e2e_send(&rq);
    E2E_STATUS(r, 201);
    e2e_resp_free(r);
    free(text);
    r = e2e_login(base, email, "cfg-password");
    E2E_STATUS(r, 200);
    long long v = e2e_int(r->json, "expires_in");
    e2e_resp_free(r);
    return v;
}

Test(ops, dotenv_is_read_and_environment_wins, .timeout = 60)
{
    char dir[256];
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/todo-e2e-env-XXXXXX", t && *t ? t : "/tmp");
    cr_assert(mkdtemp(dir));
    char envpath[300];
    snprintf(envpath, sizeof(envpath), "%s/.env", dir);
    /* HOST here is unusable (TEST-NET-3); the real environment's HOST must win.
     * ACCESS_TOKEN_EXPIRE_MINUTES is not in the environment: .env supplies it. */
    cr_assert_eq(e2e_write_file(envpath, "# settings for the e2e test\n"
                                         "\n"
                                         "ACCESS_TOKEN_EXPIRE_MINUTES=7\n"
                                         "HOST=203.0.113.1\n"),
                 0);
    static const char *const unset[] = {"ACCESS_TOKEN_EXPIRE_MINUTES", NULL};
    struct e2e_server s;
    struct e2e_server_opts o = {.dir = dir, .unset = unset};
    e2e_server_start_or_fail(&s, &o);
    long long exp = login_expires_in(s.base);
    int st = e2e_server_stop(&s, SIGTERM, 15000);
    s.own_dir = true;
    e2e_server_cleanup(&s);
    cr_assert_eq(exp, 7 * 60, "expires_in %lld: ACCESS_TOKEN_EXPIRE_MINUTES from .env not used",
                 exp);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "after SIGTERM the server %s",
              e2e_status_text(st));
}

Test(ops, missing_secret_key_warns_and_still_works, .timeout = 60)
{
    static const char *const unset[] = {"SECRET_KEY", NULL};
    struct e2e_server s;
    struct e2e_server_opts o = {.unset = unset};
    e2e_server_start_or_fail(&s, &o);
    long long exp = login_expires_in(s.base);
    cr_assert_eq(exp, E2E_EXPIRE_MINUTES * 60);
    /* the generated key is not the harness key: a token forged with it fails */
    struct e2e_user u;
    make_user_at(s.base, &u, "nokey");
    struct e2e_req rq = {.base = s.base, .path = "/api/v1/auth/me", .token = u.token};
    struct e2e_resp *r = e2e_send(&rq);
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
    char *forged = e2e_jwt_forge(u.id, u.email, 600);
    rq.token = forged;
    r = e2e_send(&rq);
    E2E_401_BEARER(r);
    e2e_resp_free(r);
    free(forged);
    char *text = e2e_read_file(s.log, NULL);
    bool warned = false;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        char *l = strndup(line, nl ? (size_t)(nl - line) : strlen(line));
        char *level = e2e_logfmt_get(l, "level");
        if (level && strncmp(level, "warn", 4) == 0 && strstr(l, "SECRET_KEY"))
            warned = true;
        free(level);
        free(l);
        line = nl ? nl + 1 : NULL;
    }
    e2e_server_stop(&s, SIGTERM, 15000);
    e2e_server_cleanup(&s);
    cr_assert(warned, "no level=warn line mentioning SECRET_KEY: %s", text);
    free(text);
}

Test(ops, defaults_without_any_configuration, .timeout = 60)
{
    if (e2e_port_open(8000))
        cr_skip_test("port 8000 is in use here");
    /* nothing but PATH (and sanitizer settings, if any) */
    struct e2e_server s;
    char err[2048];
    struct e2e_server_opts o = {.no_defaults = true, .empty_env = true};
    if (e2e_server_start(&s, &o, err, sizeof(err)) != 0) {
        e2e_server_cleanup(&s);
        cr_assert_fail("todo serve without configuration: %s", err);
    }
    char *line = log_line_with(s.log, "listening");
    char *addr = line ? e2e_logfmt_get(line, "addr") : NULL;
    char *db = line ? e2e_logfmt_get(line, "database") : NULL;
    char dbfile[320];
    snprintf(dbfile, sizeof(dbfile), "%s/todo.db", s.dir);
    struct stat st;
    bool created = stat(dbfile, &st) == 0;
    struct e2e_req rq = {.base = s.base, .path = "/readyz"};
    struct e2e_resp *r = e2e_send(&rq);
    long ready = r->status;
    e2e_resp_free(r);
    char *text = e2e_read_file(s.log, NULL);
    int ex = e2e_server_stop(&s, SIGTERM, 15000);
    e2e_server_cleanup(&s);
    cr_assert(addr && strcmp(addr, "127.0.0.1:8000") == 0, "default addr=%s", addr);
    cr_assert(db && strstr(db, "todo.db"), "default database=%s", db);
    cr_assert(created, "./todo.db was not created in the working directory");
    cr_assert_eq(ready, 200, "schema applied on first start: /readyz %ld", ready);
    cr_assert(strstr(text, "SECRET_KEY"), "no SECRET_KEY warning: %s", text);
    cr_assert(ex != -1 && WIFEXITED(ex) && WEXITSTATUS(ex) == 0, "after SIGTERM the server %s",
              e2e_status_text(ex));
    free(text);
    free(addr);
    free(db);
    free(line);
}

static void expect_sqlite_file(const char *url_fmt, const char *file, bool absolute)
{
    struct e2e_server s;
    char dir[256], url[400], err[2048];
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/todo-e2e-url-XXXXXX", t && *t ? t : "/tmp");
    cr_assert(mkdtemp(dir));
    if (absolute)
        snprintf(url, sizeof(url), url_fmt, dir);
    else
        snprintf(url, sizeof(url), "%s", url_fmt);
    struct e2e_server_opts o = {.dir = dir, .database_url = url};
    int rc = e2e_server_start(&s, &o, err, sizeof(err));
    s.own_dir = true;
    if (rc != 0) {
        e2e_server_cleanup(&s);
        cr_assert_fail("DATABASE_URL=%s: %s", url, err);
    }
    long long exp = login_expires_in(s.base);
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    struct stat st;
    bool exists = stat(path, &st) == 0;
    e2e_server_stop(&s, SIGTERM, 15000);
    e2e_server_cleanup(&s);
    cr_assert_eq(exp, E2E_EXPIRE_MINUTES * 60);
    cr_assert(exists, "DATABASE_URL=%s did not create %s", url, path);
}

Test(ops, sqlite_url_spellings, .timeout = 60)
{
    expect_sqlite_file("sqlite:///%s/abs.db", "abs.db", true);
    expect_sqlite_file("sqlite+aiosqlite:///%s/legacy.db", "legacy.db", true);
    expect_sqlite_file("sqlite:///relative.db", "relative.db", false);
}

/* The first level=info line of `text` other than the start-up and stop lines
 * that are shown whatever LOG_LEVEL says (listening, shutting down, stopped);
 * NULL when there is none. */
static const char *info_line_not_always_shown(const char *text)
{
    static const char *const always[] = {"listening", "shutting down", "stopped", NULL};
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char *copy = strndup(line, n);
        if (!copy)
            abort();
        char *level = e2e_logfmt_get(copy, "level");
        char *msg = e2e_logfmt_get(copy, "msg");
        bool shown = level && strcmp(level, "info") == 0;
        for (int i = 0; shown && msg && always[i]; i++)
            shown = strcmp(msg, always[i]) != 0;
        free(level);
        free(msg);
        free(copy);
        if (shown)
            return line;
        line = nl ? nl + 1 : NULL;
    }
    return NULL;
}

Test(ops, log_level_error_silences_access_log, .timeout = 60)
{
    int port = e2e_free_port();
    char portkv[32];
    snprintf(portkv, sizeof(portkv), "PORT=%d", port);
    const char *set[] = {"LOG_LEVEL=error", portkv, NULL};
    struct e2e_server s;
    char err[512];
    struct e2e_server_opts o = {.set = set};
    cr_assert_eq(e2e_server_spawn(&s, &o, err, sizeof(err)), 0, "%s", err);
    bool up = false;
    for (int i = 0; i < 1000 && !up; i++) {
        up = e2e_port_open(port);
        if (!up)
            usleep(10000);
    }
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    long status = 0;
    if (up) {
        struct e2e_req rq = {.base = base, .path = "/healthz"};
        struct e2e_resp *r = e2e_send(&rq);
        status = r->status;
        e2e_resp_free(r);
        usleep(200000);
    }
    char *text = e2e_read_file(s.log, NULL);
    int st = e2e_server_stop(&s, SIGTERM, 15000);
    e2e_server_cleanup(&s);
    cr_assert(up, "LOG_LEVEL=error: never listened on %d: %s", port, text);
    cr_assert_eq(status, 200);
    cr_assert(!strstr(text, "msg=request"), "LOG_LEVEL=error still logs requests: %s", text);
    const char *info = info_line_not_always_shown(text);
    cr_assert(!info, "LOG_LEVEL=error still logs info lines: %.300s (whole log: %s)", info, text);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "after SIGTERM the server %s",
              e2e_status_text(st));
    free(text);
}

Test(ops, second_instance_on_the_same_port_is_refused, .timeout = 60)
{
    int port = e2e_free_port();
    char portkv[32];
    snprintf(portkv, sizeof(portkv), "PORT=%d", port);
    const char *set[] = {portkv, NULL};
    struct e2e_server a, b;
    struct e2e_server_opts o = {.set = set};
    e2e_server_start_or_fail(&a, &o);
    char err[512];
    cr_assert_eq(e2e_server_spawn(&b, &o, err, sizeof(err)), 0, "%s", err);
    int st = 0;
    int waited = e2e_server_wait(&b, 10000, &st);
    char *out = e2e_read_file(b.log, NULL);
    if (waited != 0)
        e2e_server_stop(&b, SIGKILL, 2000);
    e2e_server_cleanup(&b);
    e2e_server_stop(&a, SIGTERM, 15000);
    e2e_server_cleanup(&a);
    cr_assert(waited == 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
              "a second server on port %d must fail to start, not share the port: %s", port, out);
    free(out);
}

/* ---- signals and durability ---- */

static void expect_clean_exit(struct e2e_server *s, int sig)
{
    int st = e2e_server_stop(s, sig, 15000);
    char *text = e2e_read_file(s->log, NULL);
    cr_assert(st != -1, "no exit within 15 s of signal %d: %s", sig, text);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "after signal %d the server %s: %s", sig,
              e2e_status_text(st), text);
    free(text);
}

Test(ops, sigint_exits_zero, .timeout = 60)
{
    struct e2e_server s;
    e2e_server_start_or_fail(&s, NULL);
    struct e2e_req rq = {.base = s.base, .path = "/healthz"};
    struct e2e_resp *r = e2e_send(&rq);
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
    expect_clean_exit(&s, SIGINT);
    e2e_server_cleanup(&s);
}

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s",
              strerror(errno));
    return fd;
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

#define INFLIGHT 12

/* True when the server on 127.0.0.1:port has accepted every queued
 * connection (listen socket rx_queue 0) and read every byte sent to it
 * (established sockets with that local port: rx_queue 0), per /proc/net/tcp. */
static bool server_read_everything(int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return true;
    char line[512];
    bool all = true;
    if (!fgets(line, sizeof(line), f)) { /* header */
        fclose(f);
        return true;
    }
    while (fgets(line, sizeof(line), f)) {
        unsigned lport = 0, st = 0;
        unsigned long txq = 0, rxq = 0;
        if (sscanf(line, " %*d: %*x:%x %*x:%*x %x %lx:%lx", &lport, &st, &txq, &rxq) != 4)
            continue;
        if ((int)lport == port && (st == 0x0A || st == 0x01) && rxq > 0)
            all = false;
    }
    fclose(f);
    return all;
}

Test(ops, sigterm_finishes_requests_in_flight, .timeout = 90)
{
    struct e2e_server s;
    e2e_server_start_or_fail(&s, NULL);
    char email[192];
    e2e_unique_email(email, sizeof(email), "drain");
    json_t *b = json_pack("{s:s, s:s}", "email", email, "password", "drain-password");
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    struct e2e_req rq = {.method = "POST", .base = s.base, .path = "/api/v1/auth/register",
                         .ctype = "application/json", .body = body};
    struct e2e_resp *r = e2e_send(&rq);
    E2E_STATUS(r, 201);
    e2e_resp_free(r);

    /* INFLIGHT logins (each an Argon2id verification) sent at once on raw
     * connections; SIGTERM while they are being worked on */
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     strlen(body), body);
    int fds[INFLIGHT];
    for (int i = 0; i < INFLIGHT; i++) {
        fds[i] = connect_port(s.port);
        cr_assert(write_all(fds[i], req, (size_t)n));
    }
    /* SIGTERM only once every request is inside the server (accepted and
     * read): then each of them is in flight and must be answered */
    bool inside = false;
    for (int i = 0; i < 1000 && !(inside = server_read_everything(s.port)); i++)
        usleep(5000);
    cr_assert(inside, "the server did not accept and read the requests within 5 s");
    usleep(20000);
    struct pollfd pfd[INFLIGHT];
    for (int i = 0; i < INFLIGHT; i++)
        pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    int done_before = poll(pfd, INFLIGHT, 0);
    kill(s.pid, SIGTERM);

    int ok = 0;
    char first_bad[256] = "";
    for (int i = 0; i < INFLIGHT; i++) {
        char buf[8192];
        size_t got = 0;
        for (;;) {
            struct pollfd p = {.fd = fds[i], .events = POLLIN};
            if (poll(&p, 1, 30000) <= 0)
                break;
            ssize_t k = read(fds[i], buf + got, sizeof(buf) - 1 - got);
            if (k <= 0)
                break;
            got += (size_t)k;
            if (got >= sizeof(buf) - 1)
                break;
        }
        buf[got] = '\0';
        if (strncmp(buf, "HTTP/1.1 200", 12) == 0 && strstr(buf, "access_token"))
            ok++;
        else if (!first_bad[0])
            snprintf(first_bad, sizeof(first_bad), "connection %d got: %.200s", i,
                     got ? buf : "(nothing)");
        close(fds[i]);
    }
    int st = 0;
    int waited = e2e_server_wait(&s, 15000, &st);
    char *text = e2e_read_file(s.log, NULL);
    if (waited != 0)
        e2e_server_stop(&s, SIGKILL, 2000);
    e2e_server_cleanup(&s);
    free(body);
    cr_log_info("sigterm drain: %d of %d answered before SIGTERM", done_before, INFLIGHT);
    cr_assert(done_before < INFLIGHT, "every login finished before SIGTERM; the test proved "
              "nothing (make the burst bigger)");
    size_t tl = strlen(text);
    cr_assert_eq(ok, INFLIGHT, "%d of %d in-flight requests completed after SIGTERM; %s\n"
                 "server log (end):\n%s", ok, INFLIGHT, first_bad,
                 tl > 3000 ? text + tl - 3000 : text);
    cr_assert(waited == 0, "no exit within 15 s of SIGTERM");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "after SIGTERM the server %s: %s",
              e2e_status_text(st), text);
    free(text);
}

/* Register + login on `base`; fills u. */
static void make_user_at(const char *base, struct e2e_user *u, const char *tag)
{
    memset(u, 0, sizeof(*u));
    e2e_unique_email(u->email, sizeof(u->email), tag);
    snprintf(u->password, sizeof(u->password), "restart-password");
    json_t *b = json_pack("{s:s, s:s}", "email", u->email, "password", u->password);
    char *text = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    struct e2e_req rq = {.method = "POST", .base = base, .path = "/api/v1/auth/register",
                         .ctype = "application/json", .body = text};
    struct e2e_resp *r = e2e_send(&rq);
    free(text);
    E2E_STATUS(r, 201);
    snprintf(u->id, sizeof(u->id), "%s", e2e_str(r->json, "id"));
    e2e_resp_free(r);
    r = e2e_login(base, u->email, u->password);
    E2E_STATUS(r, 200);
    snprintf(u->token, sizeof(u->token), "%s", e2e_str(r->json, "access_token"));
    e2e_resp_free(r);
}

static json_t *post_at(const char *base, const struct e2e_user *u, const char *title)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"title\": \"%s\", \"description\": \"durable\"}", title);
    struct e2e_req rq = {.method = "POST", .base = base, .path = "/api/v1/todos",
                         .token = u->token, .ctype = "application/json", .body = body};
    struct e2e_resp *r = e2e_send(&rq);
    E2E_STATUS(r, 201);
    json_t *t = json_incref(r->json);
    e2e_resp_free(r);
    return t;
}

static struct e2e_resp *get_at(const char *base, const char *path, const char *token)
{
    struct e2e_req rq = {.base = base, .path = path, .token = token};
    return e2e_send(&rq);
}

/* Restart on the same working directory and database. */
static void restart(struct e2e_server *s)
{
    char dir[256], db[512];
    snprintf(dir, sizeof(dir), "%s", s->dir);
    snprintf(db, sizeof(db), "%s", s->db_url);
    bool own = s->own_dir;
    struct e2e_server_opts o = {.dir = dir, .database_url = db};
    e2e_server_start_or_fail(s, &o);
    s->own_dir = own;
}

Test(ops, data_survives_a_restart, .timeout = 90)
{
    struct e2e_server s;
    e2e_server_start_or_fail(&s, NULL);
    struct e2e_user u;
    make_user_at(s.base, &u, "restart");
    json_t *t = post_at(s.base, &u, "survivor");
    expect_clean_exit(&s, SIGTERM);
    if (strncmp(s.db_url, "sqlite", 6) == 0) {
        /* closed cleanly: the last connection checkpoints and removes the WAL */
        char wal[600];
        snprintf(wal, sizeof(wal), "%s/todo.db-wal", s.dir);
        struct stat st;
        cr_assert(stat(wal, &st) != 0 || st.st_size == 0,
                  "SIGTERM left a %lld-byte WAL: the database was not closed cleanly",
                  (long long)st.st_size);
    }

    restart(&s);
    /* the old token still works: same SECRET_KEY */
    struct e2e_resp *r = get_at(s.base, e2e_todo_path(e2e_str(t, "id")), u.token);
    E2E_STATUS(r, 200);
    cr_assert(json_equal(r->json, t), "after restart: %s", e2e_excerpt(r));
    e2e_resp_free(r);
    r = e2e_login(s.base, u.email, u.password);
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
    expect_clean_exit(&s, SIGTERM);
    e2e_server_cleanup(&s);
    json_decref(t);
}

#define DURABLE 20

Test(ops, acknowledged_writes_survive_kill_9, .timeout = 90)
{
    struct e2e_server s;
    e2e_server_start_or_fail(&s, NULL);
    struct e2e_user u;
    make_user_at(s.base, &u, "kill9");
    json_t *todos[DURABLE];
    for (int i = 0; i < DURABLE; i++) {
        char title[32];
        snprintf(title, sizeof(title), "durable %d", i);
        todos[i] = post_at(s.base, &u, title);
    }
    /* and one PATCH acknowledged just before the kill */
    char body[64];
    snprintf(body, sizeof(body), "{\"completed\": true}");
    struct e2e_req rq = {.method = "PATCH", .base = s.base,
                         .path = e2e_todo_path(e2e_str(todos[DURABLE - 1], "id")),
                         .token = u.token, .ctype = "application/json", .body = body};
    struct e2e_resp *r = e2e_send(&rq);
    E2E_STATUS(r, 200);
    json_decref(todos[DURABLE - 1]);
    todos[DURABLE - 1] = json_incref(r->json);
    e2e_resp_free(r);
    kill(s.pid, SIGKILL);
    int st;
    cr_assert_eq(e2e_server_wait(&s, 10000, &st), 0);

    restart(&s);
    for (int i = 0; i < DURABLE; i++) {
        r = get_at(s.base, e2e_todo_path(e2e_str(todos[i], "id")), u.token);
        E2E_STATUS(r, 200);
        cr_assert(json_equal(r->json, todos[i]), "todo %d after kill -9: %s", i, e2e_excerpt(r));
        e2e_resp_free(r);
        json_decref(todos[i]);
    }
    r = get_at(s.base, "/api/v1/todos?limit=1000", u.token);
    cr_assert_eq(e2e_int(r->json, "total"), DURABLE);
    e2e_resp_free(r);
    expect_clean_exit(&s, SIGTERM);
    e2e_server_cleanup(&s);
}

/* `url` with its database (the path) replaced by `db`, into out. */
static void url_with_db(char *out, size_t outlen, const char *url, const char *db)
{
    const char *auth = strstr(url, "://");
    const char *slash = auth ? strchr(auth + 3, '/') : NULL;
    cr_assert(slash, "no database in %s", url);
    const char *rest = slash + 1 + strcspn(slash + 1, "?#");
    snprintf(out, outlen, "%.*s/%s%s", (int)(slash - url), url, db, rest);
}

/* A shell command running psql (no psqlrc, errors fatal) on `url` with `sql`. */
static void psql_cmd(char *out, size_t outlen, const char *url, const char *sql)
{
    const char *bindir = getenv("PG_BINDIR");
    snprintf(out, outlen, "'%s/psql' -X -Atq -v ON_ERROR_STOP=1 -d '%s' -c '%s' 2>&1",
             bindir && *bindir ? bindir : "/usr/lib/postgresql/15/bin", url, sql);
}

static int psql(const char *url, const char *sql)
{
    char cmd[1400];
    psql_cmd(cmd, sizeof(cmd), url, sql);
    return system(cmd);
}

/* Where the schema test runs: its own SQLite file, or its own database in
 * the PostgreSQL cluster of scripts/with-pg (through PgBouncer when
 * DATABASE_URL points there); `forget` empties schema_migrations. */
struct schema_db {
    char dir[256];        /* SQLite: the temp dir */
    char url[600];        /* for the server */
    char admin[600];      /* PostgreSQL: the cluster itself, database `name` */
    char cluster[600];    /* PostgreSQL: the cluster, its own database */
    char name[64];
    char forget[1400];    /* shell command emptying schema_migrations */
};

static void schema_db_make(struct schema_db *d)
{
    const char *ext = getenv("DATABASE_URL");
    memset(d, 0, sizeof(*d));
    if (!ext || !*ext || strncmp(ext, "sqlite", 6) == 0) {
        if (access("/usr/bin/sqlite3", X_OK) != 0)
            cr_skip_test("no sqlite3 command");
        const char *t = getenv("TMPDIR");
        snprintf(d->dir, sizeof(d->dir), "%s/todo-e2e-ready-XXXXXX", t && *t ? t : "/tmp");
        cr_assert(mkdtemp(d->dir));
        snprintf(d->url, sizeof(d->url), "sqlite:///%s/todo.db", d->dir);
        snprintf(d->forget, sizeof(d->forget),
                 "sqlite3 -cmd '.timeout 5000' '%s/todo.db' 'DELETE FROM schema_migrations;' 2>&1",
                 d->dir);
        return;
    }
    const char *cluster = getenv("WITH_PG_CLUSTER_URL");
    if (!cluster || !*cluster)
        cr_skip_test("PostgreSQL without scripts/with-pg (WITH_PG_CLUSTER_URL): cannot make a "
                     "database of its own");
    char hex[17];
    e2e_random_hex(hex, 16);
    snprintf(d->name, sizeof(d->name), "todo_ready_%s", hex);
    snprintf(d->cluster, sizeof(d->cluster), "%s", cluster);
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", d->name);
    cr_assert_eq(psql(cluster, sql), 0, "psql: %s failed", sql);
    url_with_db(d->url, sizeof(d->url), ext, d->name);
    url_with_db(d->admin, sizeof(d->admin), cluster, d->name);
    psql_cmd(d->forget, sizeof(d->forget), d->admin, "DELETE FROM schema_migrations");
}

static void schema_db_drop(struct schema_db *d)
{
    if (d->name[0]) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", d->name);
        cr_expect_eq(psql(d->cluster, sql), 0, "psql: %s failed", sql);
    }
}

Test(ops, readyz_503_when_schema_is_not_current, .timeout = 60)
{
    struct schema_db d;
    schema_db_make(&d);
    struct e2e_server s;
    char err[2048];
    struct e2e_server_opts o = {.dir = d.dir[0] ? d.dir : NULL, .database_url = d.url};
    int rc = e2e_server_start(&s, &o, err, sizeof(err));
    if (d.dir[0])
        s.own_dir = true;
    if (rc != 0) {
        e2e_server_cleanup(&s);
        schema_db_drop(&d);
        cr_assert_fail("%s", err);
    }
    struct e2e_resp *r = get_at(s.base, "/readyz", NULL);
    long before = r->status;
    e2e_resp_free(r);
    int sh = system(d.forget);
    r = get_at(s.base, "/readyz", NULL);
    struct e2e_resp *h = get_at(s.base, "/healthz", NULL);
    long healthz = h->status;
    e2e_resp_free(h);
    e2e_server_stop(&s, SIGTERM, 15000);
    e2e_server_cleanup(&s);
    schema_db_drop(&d);
    cr_assert_eq(before, 200);
    cr_assert_eq(sh, 0, "%s failed", d.forget);
    E2E_PROBLEM(r, 503);
    cr_assert_eq(healthz, 200, "/healthz answers 200 while the process runs");
    e2e_resp_free(r);
}

/* ---- PgBouncer (scripts/with-pg --pgbouncer) ---- */

struct pooler_run {
    const char *base;
    const struct e2e_user *u;
    int bad;               /* requests not answered as expected */
    char first_bad[300];
    pthread_mutex_t mu;
};

static void pooler_expect(struct pooler_run *p, struct e2e_resp *r, long want)
{
    if (r->status == want)
        return;
    pthread_mutex_lock(&p->mu);
    if (p->bad++ == 0)
        snprintf(p->first_bad, sizeof(p->first_bad), "%.60s: %ld %.60s %.160s", r->what, r->status,
                 r->error, e2e_excerpt(r));
    pthread_mutex_unlock(&p->mu);
}

/* Create, read and list a few todos: reads and writes on every connection. */
static void pooler_worker(int i, void *arg)
{
    struct pooler_run *p = arg;
    for (int k = 0; k < 5; k++) {
        char body[96];
        snprintf(body, sizeof(body), "{\"title\": \"pooler %d.%d\"}", i, k);
        struct e2e_req rq = {.method = "POST", .base = p->base, .path = "/api/v1/todos",
                             .token = p->u->token, .ctype = "application/json", .body = body};
        struct e2e_resp *r = e2e_send(&rq);
        pooler_expect(p, r, 201);
        const char *id = r->status == 201 ? e2e_str(r->json, "id") : NULL;
        if (id) {
            struct e2e_resp *g = get_at(p->base, e2e_todo_path(id), p->u->token);
            pooler_expect(p, g, 200);
            e2e_resp_free(g);
        }
        e2e_resp_free(r);
        r = get_at(p->base, "/api/v1/todos?limit=5", p->u->token);
        pooler_expect(p, r, 200);
        e2e_resp_free(r);
    }
}

/* Through PgBouncer in transaction mode, a host named like a Neon pooler
 * endpoint (a first label ending in -pooler) turns named prepared statements
 * off by itself, without DB_PREPARED_STATEMENTS. With them on, most requests
 * fail through PgBouncer (`DB_PREPARED_STATEMENTS=true scripts/with-pg
 * --pgbouncer -- ...` shows it), so this load is enough to tell. */
Test(ops, pgbouncer_pooler_host_needs_no_setting, .timeout = 90)
{
    const char *port = getenv("WITH_PG_PGBOUNCER_PORT");
    if (!port || !*port)
        cr_skip_test("needs PgBouncer from scripts/with-pg --pgbouncer");
    char url[160];
    snprintf(url, sizeof(url), "postgresql://postgres@pgbouncer-pooler:%s/todo?hostaddr=127.0.0.1",
             port);
    const char *const unset[] = {"DB_PREPARED_STATEMENTS", NULL};
    struct e2e_server_opts o = {.database_url = url, .unset = unset};
    struct e2e_server s;
    char err[1024];
    e2e_server_start_or_fail(&s, &o);
    if (e2e_server_wait_ready(&s, 20000, err, sizeof(err)) != 0) {
        e2e_server_stop(&s, SIGKILL, 5000);
        e2e_server_cleanup(&s);
        cr_assert_fail("%s", err);
    }
    struct e2e_user u;
    make_user_at(s.base, &u, "pooler");
    struct pooler_run p = {.base = s.base, .u = &u};
    pthread_mutex_init(&p.mu, NULL);
    e2e_parallel(8, pooler_worker, &p);
    pthread_mutex_destroy(&p.mu);
    int st = e2e_server_stop(&s, SIGTERM, 15000);
    e2e_server_cleanup(&s);
    cr_assert_eq(p.bad, 0, "%d of 120 requests failed through PgBouncer; first: %s", p.bad,
                 p.first_bad);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "server %s",
              e2e_status_text(st));
}

Test(ops, keep_alive_connection_serves_many_requests)
{
    e2e_init();
    CURL *c = curl_easy_init();
    char url[128];
    long conns = 0, status = 0;
    FILE *sink = fopen("/dev/null", "w");
    for (int i = 0; i < 20; i++) {
        snprintf(url, sizeof(url), "%s%s", e2e_base(), i % 2 ? "/healthz" : "/nope");
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
        cr_assert_eq(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        cr_assert_eq(status, i % 2 ? 200 : 404);
        long n = 0;
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &n);
        conns += n;
    }
    curl_easy_cleanup(c);
    fclose(sink);
    cr_assert_eq(conns, 1, "20 requests used %ld connections; keep-alive is broken", conns);
}
