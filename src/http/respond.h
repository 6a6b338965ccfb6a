/*
 * http/respond: every response leaves through here.
 *
 * Sets Content-Type/Content-Length, the request id header, writes the access
 * log line (method, path, status, bytes, duration, request id), and marks the
 * request answered. Errors are application/problem+json (RFC 9457):
 * {type, title, status, detail[, errors][, request_id]}. The one table that
 * maps store statuses to HTTP statuses lives in respond.c.
 *
 * Worker thread only. Each request is answered exactly once; bodies passed
 * in are copied or taken (respond_json takes the buf's memory).
 */
#ifndef TODO_HTTP_RESPOND_H
#define TODO_HTTP_RESPOND_H

#include <stddef.h>

#include "http/reqctx.h"
#include "model/field_errors.h"
#include "store/store.h"
#include "util/buf.h"

/* Add a response header before answering (the value is copied). */
void respond_header(struct reqctx *rc, const h2o_token_t *token, const char *value, size_t len);
void respond_header_str(struct reqctx *rc, const char *name, const char *value, size_t len);

/* 2xx/3xx with a JSON body built in `body` (its memory is taken, `body` reset). */
void respond_json(struct reqctx *rc, int status, struct buf *body);
/* A body from static or long-lived memory (not copied). */
void respond_static(struct reqctx *rc, int status, const char *content_type, const char *body,
                    size_t len);
/* No body (204, 304). */
void respond_empty(struct reqctx *rc, int status);

/* problem+json. `detail` is printf-style; `errs` may be NULL. */
void respond_problem(struct reqctx *rc, int status, const struct field_errors *errs,
                     const char *detail_fmt, ...) __attribute__((format(printf, 4, 5)));
/* 401 with WWW-Authenticate: Bearer. */
void respond_unauthorized(struct reqctx *rc, const char *detail);
/* Map a failed store result to its HTTP problem (logs STORE_INTERNAL detail). */
void respond_store_error(struct reqctx *rc, const struct store_result *res);
/* Map the negative return of a store submit call. */
void respond_store_submit_error(struct reqctx *rc, int status);

#endif
