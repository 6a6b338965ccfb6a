/*
 * http/router: a static route table {method, pattern, handler}.
 *
 * Patterns are literal path segments and `{name}` segments that match one
 * non-empty segment (the value is handed to the handler as rc->param).
 * router_dispatch() calls the matching handler, or answers 404 (no pattern
 * matches the path) or 405 with an `Allow` header (the path matches, the
 * method does not). Pure matching plus one response; worker thread.
 */
#ifndef TODO_HTTP_ROUTER_H
#define TODO_HTTP_ROUTER_H

#include <stddef.h>

#include "http/reqctx.h"

typedef void route_handler_fn(struct reqctx *rc);

struct route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/api/v1/todos/{id}" */
    route_handler_fn *handler;
};

/* Match `path` against `pattern`: 1 on match (param set when the pattern has
 * a `{}` segment, else NULL), 0 otherwise. */
int router_match_path(const char *pattern, const char *path, size_t path_len, const char **param,
                      size_t *param_len);

void router_dispatch(const struct route *routes, size_t nroutes, struct reqctx *rc);

#endif
