#include "http/reqctx.h"

#include <stdio.h>
#include <string.h>

#include "http/offload.h"
#include "store/store.h"

static void cancel_async(struct reqctx *rc)
{
    if (rc->op != NULL) {
        store_op_cancel(rc->worker->store, rc->op);
        rc->op = NULL;
    }
    if (rc->job != NULL) {
        offload_cancel(rc->job);
        rc->job = NULL;
    }
}

static void reqctx_dispose(void *p)
{
    struct reqctx *rc = p;
    cancel_async(rc);
    h2o_linklist_unlink(&rc->_link);
    rc->worker->inflight--;
}

void reqctx_cancel_all(struct http_worker *w)
{
    for (h2o_linklist_t *n = w->requests.next; n != &w->requests; n = n->next)
        cancel_async(H2O_STRUCT_FROM_MEMBER(struct reqctx, _link, n));
}

struct reqctx *reqctx_new(h2o_req_t *req, struct http_worker *w)
{
    struct reqctx *rc = h2o_mem_alloc_shared(&req->pool, sizeof(*rc), reqctx_dispose);
    memset(rc, 0, sizeof(*rc));
    rc->req = req;
    rc->worker = w;
    clock_gettime(CLOCK_MONOTONIC, &rc->started);
    snprintf(rc->request_id, sizeof(rc->request_id), "%08x-%u-%llx", w->app->process_tag, w->id,
             (unsigned long long)++w->next_seq);
    h2o_linklist_insert(&w->requests, &rc->_link);
    w->inflight++;
    return rc;
}

const char *reqctx_header(const struct reqctx *rc, const h2o_token_t *token, size_t *len)
{
    ssize_t i = h2o_find_header(&rc->req->headers, token, -1);
    if (i < 0) {
        *len = 0;
        return NULL;
    }
    *len = rc->req->headers.entries[i].value.len;
    return rc->req->headers.entries[i].value.base;
}

const char *reqctx_query(const struct reqctx *rc, size_t *len)
{
    const h2o_req_t *req = rc->req;
    if (req->query_at == SIZE_MAX) {
        *len = 0;
        return "";
    }
    *len = req->path.len - req->query_at - 1;
    return req->path.base + req->query_at + 1;
}
