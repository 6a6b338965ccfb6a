/*
 * api/health_api: liveness (/healthz), readiness (/readyz: store_ping, i.e.
 * the database answers and its schema is at the newest embedded migration
 * now) and the OpenAPI document.
 */
#include "api/api.h"

#include "http/respond.h"
#include "store/store.h"

void health_api_healthz(struct reqctx *rc)
{
    static const char body[] = "{\"status\":\"ok\"}";
    respond_static(rc, 200, "application/json", body, sizeof(body) - 1);
}

static void ready_done(void *ctx, const struct store_result *res)
{
    struct reqctx *rc = ctx;
    rc->op = NULL;
    if (res->status != STORE_OK) {
        respond_header(rc, H2O_TOKEN_RETRY_AFTER, H2O_STRLIT("1"));
        respond_problem(rc, 503, NULL, "The database is not answering.");
        return;
    }
    static const char body[] = "{\"status\":\"ready\"}";
    respond_static(rc, 200, "application/json", body, sizeof(body) - 1);
}

void health_api_readyz(struct reqctx *rc)
{
    int st = store_ping(rc->worker->store, ready_done, rc, &rc->op);
    if (st < 0) {
        respond_header(rc, H2O_TOKEN_RETRY_AFTER, H2O_STRLIT("1"));
        respond_problem(rc, 503, NULL, "The database is not available.");
    }
}

void health_api_openapi(struct reqctx *rc)
{
    const struct app *app = rc->worker->app;
    respond_static(rc, 200, "application/json", app->openapi_json, app->openapi_json_len);
}
