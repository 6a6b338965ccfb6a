/*
 * http/reqctx: the per-request context every handler receives.
 *
 * Created by the root handler for every request in the request's memory pool
 * (h2o_mem_alloc_shared), so it lives exactly as long as the request. Its
 * dispose hook runs when h2o frees the request (the response is fully
 * written, or the connection failed): it cancels the in-flight store
 * operation or offload job, so no completion ever reaches a dead request
 * (STYLE.md rule 7), and decrements the worker's in-flight count, which
 * therefore covers a response until its last byte is written. Worker thread
 * only.
 *
 * A handler that starts an asynchronous step stores its handle in `op` or
 * `job`, and clears it in the completion callback before doing anything else.
 */
#ifndef TODO_HTTP_REQCTX_H
#define TODO_HTTP_REQCTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <h2o.h>

#include "http/app.h"
#include "model/uuid.h"

struct store_op;
struct offload_job;

struct reqctx {
    h2o_req_t *req;
    struct http_worker *worker;
    struct store_op *op;     /* in-flight store operation, or NULL */
    struct offload_job *job; /* in-flight offload job, or NULL */
    void *state;             /* the handler's own state, in req->pool */
    const char *param;       /* path parameter ({id}), NUL-terminated, or NULL */
    size_t param_len;
    char user_id[UUID_STR_LEN + 1]; /* set by api_authenticate() */
    char request_id[32];
    struct timespec started; /* CLOCK_MONOTONIC, for the access log */
    bool responded;
    h2o_linklist_t _link; /* in worker->requests */
};

struct reqctx *reqctx_new(h2o_req_t *req, struct http_worker *w);

/* Shutdown, before store_worker_detach(): cancel the store operation and the
 * offload job of every request still alive, so that none of their
 * completions runs; those requests stay unanswered. */
void reqctx_cancel_all(struct http_worker *w);

/* The request's header `token` value, or NULL (value in *len). */
const char *reqctx_header(const struct reqctx *rc, const h2o_token_t *token, size_t *len);

/* The query string after '?', or "" (length in *len). */
const char *reqctx_query(const struct reqctx *rc, size_t *len);

#endif
