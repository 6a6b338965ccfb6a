#include "http/respond.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "util/log.h"
#include "util/utf8.h"
#include "util/xalloc.h"

#define PROBLEM_JSON "application/problem+json"
#define JSON "application/json"

/* The one store-status → HTTP table. */
static const struct {
    int store_status;
    int http_status;
    const char *detail;
} store_http_map[] = {
    {STORE_NOT_FOUND, 404, "The resource does not exist."},
    {STORE_CONFLICT, 409, "The resource already exists."},
    {STORE_PRECONDITION_FAILED, 412, "If-Match does not match the current version."},
    {STORE_INVALID, 422, "The request breaks a data constraint."},
    {STORE_UNAVAILABLE, 503, "The database is unavailable; retry shortly."},
    {STORE_INTERNAL, 500, "An internal error occurred."},
};

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

static void access_log(struct reqctx *rc, int status, size_t bytes)
{
    if (!log_enabled(LOG_INFO))
        return;
    h2o_req_t *req = rc->req;
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    char method[16], path[512], status_s[8], bytes_s[24], dur[32];
    snprintf(method, sizeof(method), "%.*s", (int)req->method.len, req->method.base);
    snprintf(path, sizeof(path), "%.*s", (int)path_len, req->path.base);
    snprintf(status_s, sizeof(status_s), "%d", status);
    snprintf(bytes_s, sizeof(bytes_s), "%zu", bytes);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double ms = (double)(now.tv_sec - rc->started.tv_sec) * 1e3 +
                (double)(now.tv_nsec - rc->started.tv_nsec) / 1e6;
    snprintf(dur, sizeof(dur), "%.3f", ms);
    log_kv(LOG_INFO, "request", "method", method, "path", path, "status", status_s, "bytes",
           bytes_s, "duration_ms", dur, "request_id", rc->request_id, NULL);
}

static void free_owned(void *p)
{
    free(*(char **)p);
}

/* The single exit: every response body passes here. `body` must live as
 * long as the request (static, or in req->pool). */
static void send_response(struct reqctx *rc, int status, const char *content_type,
                          const char *body, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_req_t *req = rc->req;

    assert(!rc->responded);
    rc->responded = true;
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    if (content_type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                       strlen(content_type));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL,
                          rc->request_id, strlen(rc->request_id));
    /* RFC 9110 8.6: no Content-Length on a 204, and on a 304 only the 200's
     * length; SIZE_MAX makes h2o send none (neither response has a body). */
    req->res.content_length = status == 204 || status == 304 ? SIZE_MAX : len;
    access_log(rc, status, len);
    h2o_start_response(req, &generator);
    h2o_iovec_t buf = h2o_iovec_init(body, len);
    h2o_send(req, &buf, len != 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
}

void respond_header(struct reqctx *rc, const h2o_token_t *token, const char *value, size_t len)
{
    h2o_req_t *req = rc->req;
    h2o_add_header(&req->pool, &req->res.headers, token, NULL,
                   h2o_strdup(&req->pool, value, len).base, len);
}

void respond_header_str(struct reqctx *rc, const char *name, const char *value, size_t len)
{
    h2o_req_t *req = rc->req;
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL,
                          h2o_strdup(&req->pool, value, len).base, len);
}

static void send_buf(struct reqctx *rc, int status, const char *content_type, struct buf *body)
{
    size_t len;
    char *data = buf_take(body, &len);
    char **slot = h2o_mem_alloc_shared(&rc->req->pool, sizeof(*slot), free_owned);
    *slot = data;
    send_response(rc, status, content_type, data, len);
}

void respond_json(struct reqctx *rc, int status, struct buf *body)
{
    send_buf(rc, status, JSON, body);
}

void respond_static(struct reqctx *rc, int status, const char *content_type, const char *body,
                    size_t len)
{
    send_response(rc, status, content_type, body, len);
}

void respond_empty(struct reqctx *rc, int status)
{
    send_response(rc, status, NULL, NULL, 0);
}

/* A JSON string of `s`, which may hold request bytes (a path, a form field
 * name) or be cut mid-character: every malformed byte becomes U+FFFD, so the
 * body stays valid UTF-8 JSON. */
static void append_json_text(struct buf *b, const char *s)
{
    size_t len = strlen(s), run = 0, i = 0;
    struct buf tmp;
    buf_init(&tmp, 4 * len + 1);
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_next(s + i, len - i, &cp);
        if (n > 0) {
            i += n;
            continue;
        }
        buf_append(&tmp, s + run, i - run);
        buf_append_str(&tmp, "\xef\xbf\xbd");
        run = ++i;
    }
    buf_append(&tmp, s + run, len - run);
    buf_append_json_strn(b, tmp.data != NULL ? tmp.data : "", tmp.len);
    buf_free(&tmp);
}

static void problem_vsend(struct reqctx *rc, int status, const struct field_errors *errs,
                          const char *detail_fmt, va_list ap)
{
    char detail[512];
    vsnprintf(detail, sizeof(detail), detail_fmt, ap);

    struct buf b;
    buf_init(&b, 64 * 1024);
    buf_append_str(&b, "{\"type\":\"about:blank\",\"title\":");
    buf_append_json_str(&b, reason_phrase(status));
    buf_printf(&b, ",\"status\":%d,\"detail\":", status);
    append_json_text(&b, detail);
    if (errs != NULL && errs->count > 0) {
        buf_append_str(&b, ",\"errors\":[");
        for (size_t i = 0; i < errs->count; i++) {
            buf_append_str(&b, i == 0 ? "{\"field\":" : ",{\"field\":");
            append_json_text(&b, errs->items[i].field);
            buf_append_str(&b, ",\"message\":");
            append_json_text(&b, errs->items[i].message);
            buf_append_char(&b, '}');
        }
        buf_append_char(&b, ']');
    }
    buf_append_str(&b, ",\"request_id\":");
    buf_append_json_str(&b, rc->request_id);
    buf_append_char(&b, '}');
    send_buf(rc, status, PROBLEM_JSON, &b);
    buf_free(&b);
}

void respond_problem(struct reqctx *rc, int status, const struct field_errors *errs,
                     const char *detail_fmt, ...)
{
    va_list ap;
    va_start(ap, detail_fmt);
    problem_vsend(rc, status, errs, detail_fmt, ap);
    va_end(ap);
}

void respond_unauthorized(struct reqctx *rc, const char *detail)
{
    respond_header(rc, H2O_TOKEN_WWW_AUTHENTICATE, H2O_STRLIT("Bearer"));
    respond_problem(rc, 401, NULL, "%s", detail);
}

static void respond_store_status(struct reqctx *rc, int status, const char *message)
{
    for (size_t i = 0; i < sizeof(store_http_map) / sizeof(store_http_map[0]); i++) {
        if (store_http_map[i].store_status != status)
            continue;
        int http = store_http_map[i].http_status;
        if (http >= 500)
            log_kv(LOG_ERROR, "store error", "request_id", rc->request_id, "status",
                   store_strerror(status), "detail", message != NULL ? message : "", NULL);
        if (http == 503)
            respond_header(rc, H2O_TOKEN_RETRY_AFTER, H2O_STRLIT("1"));
        respond_problem(rc, http, NULL, "%s", store_http_map[i].detail);
        return;
    }
    log_kv(LOG_ERROR, "unexpected store status", "request_id", rc->request_id, "status",
           store_strerror(status), NULL);
    respond_problem(rc, 500, NULL, "An internal error occurred.");
}

void respond_store_error(struct reqctx *rc, const struct store_result *res)
{
    respond_store_status(rc, res->status, res->message);
}

void respond_store_submit_error(struct reqctx *rc, int status)
{
    respond_store_status(rc, status, "submit failed");
}
