#include "api/api.h"

#include <string.h>
#include <strings.h>

#include "auth/token_cache.h"
#include "http/respond.h"
#include "http/router.h"
#include "model/timefmt.h"

static const struct route routes[] = {
    {"POST", "/api/v1/auth/register", auth_api_register},
    {"POST", "/api/v1/auth/login", auth_api_login},
    {"POST", "/api/v1/auth/token", auth_api_token},
    {"GET", "/api/v1/auth/me", auth_api_me},
    {"GET", "/api/v1/todos", todos_api_list},
    {"POST", "/api/v1/todos", todos_api_create},
    {"GET", "/api/v1/todos/{id}", todos_api_get},
    {"PUT", "/api/v1/todos/{id}", todos_api_put},
    {"PATCH", "/api/v1/todos/{id}", todos_api_patch},
    {"DELETE", "/api/v1/todos/{id}", todos_api_delete},
    {"GET", "/healthz", health_api_healthz},
    {"GET", "/readyz", health_api_readyz},
    {"GET", "/api/v1/openapi.json", health_api_openapi},
};

void api_dispatch(struct reqctx *rc)
{
    router_dispatch(routes, sizeof(routes) / sizeof(routes[0]), rc);
}

/* The media type of a Content-Type value: up to ';', trimmed, lower-case
 * compared. */
static bool media_type_is(const char *value, size_t len, const char *want)
{
    const char *semi = memchr(value, ';', len);
    if (semi != NULL)
        len = (size_t)(semi - value);
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    while (len > 0 && (*value == ' ' || *value == '\t')) {
        value++;
        len--;
    }
    return len == strlen(want) && strncasecmp(value, want, len) == 0;
}

static const char *const body_types[][3] = {
    [API_BODY_JSON] = {"application/json", NULL, NULL},
    [API_BODY_MERGE_PATCH] = {"application/merge-patch+json", "application/json", NULL},
    [API_BODY_FORM] = {"application/x-www-form-urlencoded", NULL, NULL},
};

bool api_body(struct reqctx *rc, enum api_body_kind kind, const char **body, size_t *len)
{
    h2o_req_t *req = rc->req;
    if (req->entity.len > API_BODY_MAX) {
        respond_problem(rc, 413, NULL, "The request body is larger than %d bytes.", API_BODY_MAX);
        return false;
    }
    size_t ct_len;
    const char *ct = reqctx_header(rc, H2O_TOKEN_CONTENT_TYPE, &ct_len);
    const char *const *types = body_types[kind];
    for (size_t i = 0; ct != NULL && types[i] != NULL; i++) {
        if (media_type_is(ct, ct_len, types[i])) {
            *body = req->entity.base != NULL ? req->entity.base : "";
            *len = req->entity.len;
            return true;
        }
    }
    respond_problem(rc, 415, NULL, "Content-Type must be %s%s%s.", types[0],
                    types[1] != NULL ? " or " : "", types[1] != NULL ? types[1] : "");
    return false;
}

bool api_authenticate(struct reqctx *rc)
{
    size_t len;
    const char *auth = reqctx_header(rc, H2O_TOKEN_AUTHORIZATION, &len);
    if (auth == NULL) {
        respond_unauthorized(rc, "Missing bearer token.");
        return false;
    }
    if (len < 7 || strncasecmp(auth, "Bearer ", 7) != 0) {
        respond_unauthorized(rc, "The Authorization header must be 'Bearer <token>'.");
        return false;
    }
    auth += 7;
    len -= 7;
    while (len > 0 && *auth == ' ') {
        auth++;
        len--;
    }
    const struct app *app = rc->worker->app;
    struct token_claims claims;
    if (token_cache_verify(rc->worker->tokens, app->secret_key, app->secret_key_len, auth, len,
                           timefmt_now_ms() / 1000, &claims) != 0) {
        respond_unauthorized(rc, "The token is invalid or has expired.");
        return false;
    }
    memcpy(rc->user_id, claims.sub, sizeof(rc->user_id));
    return true;
}

void api_respond_decode_error(struct reqctx *rc, int status, const struct json_error *jerr,
                              const struct field_errors *errs)
{
    if (status == TODO_EJSON) {
        respond_problem(rc, 400, NULL, "Malformed JSON at byte offset %zu: %s", jerr->position,
                        jerr->text);
        return;
    }
    respond_problem(rc, 422, errs, "The request body has invalid fields.");
}
