/*
 * http/app: the state a request handler can reach.
 *
 * `struct app` is built once by `todo serve` on the main thread and is
 * read-only once the workers start: every worker shares it without locks.
 * `struct http_worker` belongs to one worker thread: only that thread touches
 * it (the offload and store threads talk to it through h2o_multithread
 * messages). A handler finds its worker with http_worker_of(req).
 */
#ifndef TODO_HTTP_APP_H
#define TODO_HTTP_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "http/offload.h"

struct store;
struct store_worker;
struct offload;
struct token_cache;

struct app {
    struct store *store;
    const unsigned char *secret_key;
    size_t secret_key_len;
    int64_t token_lifetime_s;
    const char *openapi_json; /* the embedded docs/openapi.json */
    size_t openapi_json_len;
    uint32_t process_tag; /* random, prefixes request ids */
    struct offload *offload; /* password hashing pool, shared by all workers */
};

struct http_worker {
    const struct app *app;
    unsigned id;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    struct store_worker *store;
    struct offload *offload;
    struct offload_client offload_client; /* offload completions for this thread */
    struct token_cache *tokens;           /* tokens this thread already verified */
    size_t inflight;   /* requests not yet answered and fully sent (reqctx alive) */
    uint64_t next_seq; /* request counter, for request ids */
    h2o_linklist_t requests; /* every live reqctx (reqctx._link) */
    bool closing; /* the store is being detached: new requests get 503 */
};

static inline struct http_worker *http_worker_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(struct http_worker, ctx, req->conn->ctx);
}

#endif
