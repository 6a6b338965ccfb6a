/*
 * tests/e2e/review_test: regressions found in a review of the HTTP layer.
 *
 * - 204 and 304 carry no Content-Length (RFC 9110 8.6).
 * - problem+json stays valid UTF-8 JSON when it echoes request bytes.
 * - SIGTERM waits for a response that is still being written.
 * - SIGTERM whose grace period runs out while password hashes are queued
 *   exits 0 (it used to crash: a hash finishing after the store detached
 *   submitted to the freed store worker).
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* ---- HTTP semantics -------------------------------------------------------- */

Test(review, no_content_length_on_204_and_304)
{
    struct e2e_user u;
    e2e_user_make(&u, "review-cl");
    json_t *t = e2e_todo_new(&u, "conditional");
    const char *path = e2e_todo_path(e2e_str(t, "id"));

    struct e2e_req rq = {.path = path, .token = u.token, .hdr = {"If-None-Match: \"1\""}};
    struct e2e_resp *r = e2e_send(&rq);
    E2E_STATUS(r, 304);
    cr_assert_str_eq(e2e_header(r, "etag"), "\"1\"");
    cr_assert_null(e2e_header(r, "content-length"), "304 with Content-Length: %s",
                   e2e_header(r, "content-length"));
    e2e_resp_free(r);

    struct e2e_req del = {.method = "DELETE", .path = path, .token = u.token};
    r = e2e_send(&del);
    E2E_STATUS(r, 204);
    cr_assert_null(e2e_header(r, "content-length"), "204 with Content-Length: %s",
                   e2e_header(r, "content-length"));
    cr_assert_eq(r->len, 0);
    e2e_resp_free(r);

    /* The connection is still usable after a body-less answer. */
    r = e2e_get(path, u.token);
    E2E_PROBLEM(r, 404);
    e2e_resp_free(r);
    json_decref(t);
}

Test(review, problem_json_is_valid_utf8)
{
    struct e2e_user u;
    e2e_user_make(&u, "review-utf8");

    /* A path parameter echoed in the detail. */
    struct e2e_req put = {.method = "PUT", .path = "/api/v1/todos/%FF%FEx", .token = u.token,
                          .ctype = "application/json", .body = "{\"title\": \"t\"}"};
    struct e2e_resp *r = e2e_send(&put);
    cr_assert_not_null(r->json, "400 body is not valid JSON: %s", e2e_excerpt(r));
    E2E_PROBLEM(r, 400);
    e2e_resp_free(r);

    /* An unknown path echoed in the detail. */
    r = e2e_get("/no%C3/such%FFroute", NULL);
    cr_assert_not_null(r->json, "404 body is not valid JSON: %s", e2e_excerpt(r));
    E2E_PROBLEM(r, 404);
    e2e_resp_free(r);

    /* A form field name echoed in errors[].field. */
    static const char form[] = "username=a%40b.co&password=xxxxxxxxx&\xff\xfe=1";
    struct e2e_req tok = {.method = "POST", .path = "/api/v1/auth/token",
                          .ctype = "application/x-www-form-urlencoded", .body = form,
                          .len = sizeof(form) - 1};
    r = e2e_send(&tok);
    cr_assert_not_null(r->json, "422 body is not valid JSON: %s", e2e_excerpt(r));
    E2E_PROBLEM(r, 422);
    e2e_resp_free(r);
}

/* ---- shutdown -------------------------------------------------------------- */

static int connect_port(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s",
              strerror(errno));
    return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        cr_assert(w > 0, "write: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

/* Everything until EOF (or 60 s of silence); caller frees. */
static char *read_to_eof(int fd, size_t *len)
{
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 60000) <= 0)
            break;
        if (got + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        ssize_t k = read(fd, buf + got, cap - got - 1);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *register_body(const char *tag)
{
    char email[192];
    e2e_unique_email(email, sizeof(email), tag);
    json_t *b = json_pack("{s:s, s:s}", "email", email, "password", "review-password");
    char *text = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return text;
}

/* Register + log in on server `s`; the token into `token`. */
static void user_at(const struct e2e_server *s, char *token, size_t toklen)
{
    char *body = register_body("review-user");
    struct e2e_req rq = {.method = "POST", .base = s->base, .path = "/api/v1/auth/register",
                         .ctype = "application/json", .body = body};
    struct e2e_resp *r = e2e_send(&rq);
    E2E_STATUS(r, 201);
    e2e_resp_free(r);
    json_t *j = json_loads(body, 0, NULL);
    r = e2e_login(s->base, e2e_str(j, "email"), "review-password");
    E2E_STATUS(r, 200);
    snprintf(token, toklen, "%s", e2e_str(r->json, "access_token"));
    e2e_resp_free(r);
    json_decref(j);
    free(body);
}

static void stop_and_check(struct e2e_server *s, int timeout_ms)
{
    int st = 0;
    int waited = e2e_server_wait(s, timeout_ms, &st);
    char *log = e2e_read_file(s->log, NULL);
    if (waited != 0)
        e2e_server_stop(s, SIGKILL, 2000);
    e2e_server_cleanup(s);
    size_t ll = log ? strlen(log) : 0;
    cr_assert(waited == 0, "no exit within %d ms of SIGTERM", timeout_ms);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "after SIGTERM the server %s; log:\n%s",
              e2e_status_text(st), ll > 3000 ? log + ll - 3000 : (log ? log : ""));
    free(log);
}

/* A response bigger than the socket buffers, to a client that has not read
 * it yet: the server must keep writing it after SIGTERM, not exit under it. */
struct big_todos {
    const char *base;
    const char *token;
    const char *body;
    int per_thread;
    int failed; /* atomic enough: only ever set to 1 */
};

static void create_big_todos(int i, void *arg)
{
    (void)i;
    struct big_todos *b = arg;
    for (int k = 0; k < b->per_thread; k++) {
        struct e2e_req rq = {.method = "POST", .base = b->base, .path = "/api/v1/todos",
                             .token = b->token, .ctype = "application/json", .body = b->body};
        struct e2e_resp *r = e2e_send(&rq);
        if (r->status != 201)
            b->failed = 1;
        e2e_resp_free(r);
    }
}

/* 10 MB of todos: more than the kernel's socket buffers (tcp_wmem max 4 MB)
 * can take off the server's hands. */
Test(review, sigterm_waits_for_response_being_written, .timeout = 180)
{
    enum { NTODOS = 1000, THREADS = 8 };
    struct e2e_server s;
    e2e_server_start_or_fail(&s, NULL);
    char token[2048];
    user_at(&s, token, sizeof(token));
    char *desc = e2e_repeat("d", 10000);
    json_t *b = json_pack("{s:s, s:s}", "title", "big", "description", desc);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    free(desc);
    struct big_todos bt = {.base = s.base, .token = token, .body = body,
                           .per_thread = NTODOS / THREADS};
    e2e_parallel(THREADS, create_big_todos, &bt);
    free(body);
    cr_assert(!bt.failed, "creating the todos failed");

    int fd = connect_port(s.port, 4096);
    char req[3072];
    int n = snprintf(req, sizeof(req),
                     "GET /api/v1/todos?limit=%d HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer %s\r\nConnection: close\r\n\r\n",
                     NTODOS, token);
    write_all(fd, req, (size_t)n);
    /* Let the server build the response and fill the socket buffers. */
    cr_assert(e2e_log_wait(s.log, "path=/api/v1/todos status=200", 10000),
              "the list request was not answered");
    usleep(200000);
    kill(s.pid, SIGTERM);
    usleep(300000);

    size_t len;
    char *resp = read_to_eof(fd, &len);
    close(fd);
    const char *sep = strstr(resp, "\r\n\r\n");
    cr_assert_not_null(sep, "no complete header block (%zu bytes)", len);
    const char *cl = strcasestr(resp, "\r\ncontent-length: ");
    cr_assert(cl != NULL && cl < sep, "no Content-Length");
    size_t want = strtoul(cl + 18, NULL, 10);
    size_t have = len - (size_t)(sep + 4 - resp);
    cr_assert_gt(want, 8000000, "the response (%zu bytes) is too small to prove anything", want);
    cr_assert_eq(have, want, "the body was cut after SIGTERM: %zu of %zu bytes", have, want);
    free(resp);
    stop_and_check(&s, 20000);
}

/* SIGTERM with more password hashing queued than the grace period can
 * finish: the server drops those requests and must still exit 0. */
Test(review, sigterm_grace_over_with_hashes_queued, .timeout = 180)
{
    struct e2e_server s;
    e2e_server_start_or_fail(&s, NULL);

    /* How long one registration (one Argon2id hash) takes here. */
    char *one = register_body("review-probe");
    struct e2e_req rq = {.method = "POST", .base = s.base, .path = "/api/v1/auth/register",
                         .ctype = "application/json", .body = one};
    double t0 = now_s();
    struct e2e_resp *r = e2e_send(&rq);
    double per = now_s() - t0;
    E2E_STATUS(r, 201);
    e2e_resp_free(r);
    free(one);
    /* Enough for 2x the 10 s grace period on the 2 offload threads. */
    int nconn = (int)(2 * 10.0 * 2 / (per > 0.005 ? per : 0.005)) + 20;
    if (nconn > 3000)
        nconn = 3000;
    cr_log_info("one registration took %.0f ms; sending %d", per * 1e3, nconn);

    int *fds = calloc((size_t)nconn, sizeof(*fds));
    cr_assert_not_null(fds);
    for (int i = 0; i < nconn; i++) {
        char *body = register_body("review-burst");
        char req[1024];
        int n = snprintf(req, sizeof(req),
                         "POST /api/v1/auth/register HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n%s",
                         strlen(body), body);
        free(body);
        fds[i] = connect_port(s.port, 0);
        write_all(fds[i], req, (size_t)n);
    }
    sleep(1);
    kill(s.pid, SIGTERM);
    cr_assert(e2e_log_wait(s.log, "grace period over", 30000),
              "the grace period did not run out: the test proved nothing");
    stop_and_check(&s, 30000);
    for (int i = 0; i < nconn; i++)
        close(fds[i]);
    free(fds);
}
