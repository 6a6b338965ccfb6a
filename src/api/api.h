/*
 * api: the route table and the helpers every handler shares (body checks,
 * authentication, decode-error responses). Handlers live in auth_api.c,
 * todos_api.c and health_api.c. Worker thread only.
 *
 * Each helper that returns false has already answered the request; the
 * handler must then return without touching it again.
 */
#ifndef TODO_API_API_H
#define TODO_API_API_H

#include <stdbool.h>
#include <stddef.h>

#include "http/reqctx.h"
#include "model/field_errors.h"
#include "model/todo.h"

#define API_BODY_MAX (1024 * 1024) /* bytes; larger → 413 */

/* Dispatch a request through the route table (404/405 when nothing matches). */
void api_dispatch(struct reqctx *rc);

enum api_body_kind {
    API_BODY_JSON,         /* application/json */
    API_BODY_MERGE_PATCH,  /* application/merge-patch+json or application/json */
    API_BODY_FORM,         /* application/x-www-form-urlencoded */
};

/* Check size (413) and media type (415); on success point at the body. */
bool api_body(struct reqctx *rc, enum api_body_kind kind, const char **body, size_t *len);

/* Verify the bearer token; on success rc->user_id holds the user's id.
 * Otherwise answers 401 with WWW-Authenticate: Bearer. */
bool api_authenticate(struct reqctx *rc);

/* Answer a failed model decode: TODO_EJSON → 400 naming the byte offset,
 * TODO_EINVALID → 422 listing each field. */
void api_respond_decode_error(struct reqctx *rc, int status, const struct json_error *jerr,
                              const struct field_errors *errs);

/* Handlers (one per route). */
void auth_api_register(struct reqctx *rc);
void auth_api_login(struct reqctx *rc);
void auth_api_token(struct reqctx *rc);
void auth_api_me(struct reqctx *rc);
void todos_api_list(struct reqctx *rc);
void todos_api_create(struct reqctx *rc);
void todos_api_get(struct reqctx *rc);
void todos_api_put(struct reqctx *rc);
void todos_api_patch(struct reqctx *rc);
void todos_api_delete(struct reqctx *rc);
void health_api_healthz(struct reqctx *rc);
void health_api_readyz(struct reqctx *rc);
void health_api_openapi(struct reqctx *rc);

#endif
