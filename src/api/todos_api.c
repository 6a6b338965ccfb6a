/*
 * api/todos_api: list, create, get, put (upsert), patch (RFC 7396), delete.
 *
 * Every route authenticates first; the store addresses todos by
 * (user_id, id), so another user's todo is a plain 404. ETag is the quoted
 * version; If-Match guards writes (412), If-None-Match makes GET answer 304.
 */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/params.h"
#include "http/respond.h"
#include "model/timefmt.h"
#include "store/store.h"
#include "util/xalloc.h"

#define TODOS_PATH "/api/v1/todos/"

static void set_etag(struct reqctx *rc, int32_t version)
{
    char etag[16];
    int n = snprintf(etag, sizeof(etag), "\"%d\"", (int)version);
    respond_header(rc, H2O_TOKEN_ETAG, etag, (size_t)n);
}

static void respond_todo(struct reqctx *rc, int status, const struct todo *t)
{
    struct buf b;
    buf_init(&b, 256 * 1024);
    todo_json_append(&b, t);
    set_etag(rc, t->version);
    respond_json(rc, status, &b);
    buf_free(&b);
}

/* Parse one entity tag `"N"` or `W/"N"` into a version; -1 when it is not one. */
static int64_t etag_version(const char *s, size_t len, bool allow_weak)
{
    if (allow_weak && len >= 2 && s[0] == 'W' && s[1] == '/') {
        s += 2;
        len -= 2;
    }
    if (len < 3 || len > 12 || s[0] != '"' || s[len - 1] != '"')
        return -1;
    int64_t v = 0;
    for (size_t i = 1; i + 1 < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= INT32_MAX ? v : -1;
}

/* Does an If-None-Match list match `version` (weak comparison)? */
static bool none_match_hits(const char *v, size_t len, int32_t version)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end == start)
            continue;
        if (end - start == 1 && v[start] == '*')
            return true;
        if (etag_version(v + start, end - start, true) == version)
            return true;
    }
    return false;
}

/* If-Match → a version, STORE_IF_MATCH_ANY or STORE_IF_MATCH_NONE. A value
 * that is not one of our tags (strong comparison) can never match: 0. */
static int32_t if_match_of(struct reqctx *rc)
{
    size_t len;
    const char *v = reqctx_header(rc, H2O_TOKEN_IF_MATCH, &len);
    if (v == NULL)
        return STORE_IF_MATCH_NONE;
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len == 1 && *v == '*')
        return STORE_IF_MATCH_ANY;
    int64_t version = etag_version(v, len, false);
    return version > 0 ? (int32_t)version : 0;
}

static void respond_no_todo(struct reqctx *rc)
{
    respond_problem(rc, 404, NULL, "No todo with this id.");
}

/* The {id} path parameter as a canonical UUID; false when it is not one. */
static bool path_id(struct reqctx *rc, char id[UUID_STR_LEN + 1])
{
    return rc->param != NULL && uuid_parse(rc->param, rc->param_len, id);
}

/* Authenticate, then read the {id} of an existing todo. False once it has
 * answered: 401, or 404 for an id that is not a UUID (no todo has it). */
static bool todo_route(struct reqctx *rc, char id[UUID_STR_LEN + 1])
{
    if (!api_authenticate(rc))
        return false;
    if (path_id(rc, id))
        return true;
    respond_no_todo(rc);
    return false;
}

/* ---- list ------------------------------------------------------------------ */

static void list_done(void *ctx, const struct store_result *res)
{
    struct reqctx *rc = ctx;
    rc->op = NULL;
    if (res->status != STORE_OK) {
        respond_store_error(rc, res);
        return;
    }
    const struct todo_query *q = rc->state;
    struct buf b;
    buf_init(&b, 64 * 1024 * 1024);
    buf_append_str(&b, "{\"items\":[");
    for (size_t i = 0; i < res->ntodos; i++) {
        if (i > 0)
            buf_append_char(&b, ',');
        todo_json_append(&b, &res->todos[i]);
    }
    buf_append_str(&b, "],\"total\":");
    buf_append_int(&b, res->total);
    buf_append_str(&b, ",\"limit\":");
    buf_append_int(&b, q->limit);
    buf_append_str(&b, ",\"offset\":");
    buf_append_int(&b, q->offset);
    buf_append_char(&b, '}');
    respond_json(rc, 200, &b);
    buf_free(&b);
}

void todos_api_list(struct reqctx *rc)
{
    if (!api_authenticate(rc))
        return;
    size_t qlen;
    const char *qs = reqctx_query(rc, &qlen);
    char *scratch = h2o_mem_alloc_pool(&rc->req->pool, qlen + 1);
    struct todo_query *q = h2o_mem_alloc_pool(&rc->req->pool, sizeof(*q));
    struct field_errors errs;
    field_errors_init(&errs);
    if (params_todo_query(qs, qlen, scratch, q, &errs) != 0) {
        respond_problem(rc, 400, &errs, "Invalid query parameter '%s': %s", errs.items[0].field,
                        errs.items[0].message);
        return;
    }
    q->user_id = rc->user_id;
    rc->state = q;
    int st = store_todo_list(rc->worker->store, q, list_done, rc, &rc->op);
    if (st < 0)
        respond_store_submit_error(rc, st);
}

/* ---- get ------------------------------------------------------------------- */

static void get_done(void *ctx, const struct store_result *res)
{
    struct reqctx *rc = ctx;
    rc->op = NULL;
    if (res->status == STORE_NOT_FOUND) {
        respond_no_todo(rc);
        return;
    }
    if (res->status != STORE_OK) {
        respond_store_error(rc, res);
        return;
    }
    size_t len;
    const char *inm = reqctx_header(rc, H2O_TOKEN_IF_NONE_MATCH, &len);
    if (inm != NULL && none_match_hits(inm, len, res->todo->version)) {
        set_etag(rc, res->todo->version);
        respond_empty(rc, 304);
        return;
    }
    respond_todo(rc, 200, res->todo);
}

void todos_api_get(struct reqctx *rc)
{
    char id[UUID_STR_LEN + 1];
    if (!todo_route(rc, id))
        return;
    int st = store_todo_get(rc->worker->store, rc->user_id, id, get_done, rc, &rc->op);
    if (st < 0)
        respond_store_submit_error(rc, st);
}

/* ---- writes ------------------------------------------------------------------ */

static void write_done(void *ctx, const struct store_result *res)
{
    struct reqctx *rc = ctx;
    rc->op = NULL;
    if (res->status == STORE_NOT_FOUND) {
        respond_no_todo(rc);
        return;
    }
    if (res->status != STORE_OK) {
        respond_store_error(rc, res);
        return;
    }
    if (res->todo == NULL) { /* delete */
        respond_empty(rc, 204);
        return;
    }
    bool created = res->created;
    if (created) {
        char location[sizeof(TODOS_PATH) + UUID_STR_LEN];
        int n = snprintf(location, sizeof(location), TODOS_PATH "%s", res->todo->id);
        respond_header(rc, H2O_TOKEN_LOCATION, location, (size_t)n);
    }
    respond_todo(rc, created ? 201 : 200, res->todo);
}

typedef int write_submit_fn(struct store_worker *w, const struct todo_write *req,
                            store_done_fn *done, void *ctx, struct store_op **op);

/* Decode the body in `mode` and submit the write for todo `id`. */
static void submit_write(struct reqctx *rc, enum api_body_kind kind, enum todo_decode_mode mode,
                         const char *id, write_submit_fn *submit)
{
    const char *body;
    size_t len;
    if (!api_body(rc, kind, &body, &len))
        return;
    struct todo_patch patch;
    struct json_error jerr;
    struct field_errors errs;
    field_errors_init(&errs);
    int st = todo_patch_decode(body, len, mode, &patch, &jerr, &errs);
    if (st != 0) {
        api_respond_decode_error(rc, st, &jerr, &errs);
        return;
    }
    struct todo_write w = {
        .user_id = rc->user_id, .id = id, .patch = &patch,
        .if_match = if_match_of(rc), .now_ms = timefmt_now_ms(),
    };
    st = submit(rc->worker->store, &w, write_done, rc, &rc->op);
    todo_patch_free(&patch);
    if (st < 0)
        respond_store_submit_error(rc, st);
}

void todos_api_create(struct reqctx *rc)
{
    if (!api_authenticate(rc))
        return;
    char id[UUID_STR_LEN + 1];
    uuid_v7(timefmt_now_ms(), id);
    submit_write(rc, API_BODY_JSON, TODO_DECODE_CREATE, id, store_todo_create);
}

void todos_api_put(struct reqctx *rc)
{
    if (!api_authenticate(rc))
        return;
    char id[UUID_STR_LEN + 1];
    if (!path_id(rc, id)) { /* PUT would create the todo under it: a bad id is a 400 */
        respond_problem(rc, 400, NULL, "'%s' is not a valid UUID.", rc->param);
        return;
    }
    submit_write(rc, API_BODY_JSON, TODO_DECODE_REPLACE, id, store_todo_put);
}

void todos_api_patch(struct reqctx *rc)
{
    char id[UUID_STR_LEN + 1];
    if (todo_route(rc, id))
        submit_write(rc, API_BODY_MERGE_PATCH, TODO_DECODE_PATCH, id, store_todo_patch);
}

void todos_api_delete(struct reqctx *rc)
{
    char id[UUID_STR_LEN + 1];
    if (!todo_route(rc, id))
        return;
    struct todo_write w = {
        .user_id = rc->user_id, .id = id, .patch = NULL,
        .if_match = if_match_of(rc), .now_ms = timefmt_now_ms(),
    };
    int st = store_todo_delete(rc->worker->store, &w, write_done, rc, &rc->op);
    if (st < 0)
        respond_store_submit_error(rc, st);
}
