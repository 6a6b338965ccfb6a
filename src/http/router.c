#include "http/router.h"

#include <string.h>

#include "http/respond.h"

int router_match_path(const char *pattern, const char *path, size_t path_len, const char **param,
                      size_t *param_len)
{
    const char *p = pattern, *s = path, *end = path + path_len;
    *param = NULL;
    *param_len = 0;
    while (*p != '\0') {
        if (*p == '{') {
            const char *seg_end = memchr(s, '/', (size_t)(end - s));
            if (seg_end == NULL)
                seg_end = end;
            if (seg_end == s)
                return 0;
            *param = s;
            *param_len = (size_t)(seg_end - s);
            s = seg_end;
            p = strchr(p, '}');
            if (p == NULL)
                return 0;
            p++;
            continue;
        }
        if (s == end || *s != *p)
            return 0;
        p++;
        s++;
    }
    return s == end;
}

void router_dispatch(const struct route *routes, size_t nroutes, struct reqctx *rc)
{
    h2o_req_t *req = rc->req;
    const char *path = req->path_normalized.base;
    size_t path_len = req->path_normalized.len;
    char allow[64] = "";
    size_t allow_len = 0;

    for (size_t i = 0; i < nroutes; i++) {
        const char *param;
        size_t param_len;
        if (!router_match_path(routes[i].pattern, path, path_len, &param, &param_len))
            continue;
        if (h2o_memis(req->method.base, req->method.len, routes[i].method,
                      strlen(routes[i].method))) {
            if (param != NULL) {
                rc->param = h2o_strdup(&req->pool, param, param_len).base;
                rc->param_len = param_len;
            }
            routes[i].handler(rc);
            return;
        }
        size_t mlen = strlen(routes[i].method);
        if (allow_len + mlen + 2 < sizeof(allow)) {
            if (allow_len > 0) {
                memcpy(allow + allow_len, ", ", 2);
                allow_len += 2;
            }
            memcpy(allow + allow_len, routes[i].method, mlen + 1);
            allow_len += mlen;
        }
    }
    if (allow_len == 0) {
        respond_problem(rc, 404, NULL, "No route matches %.*s.", (int)path_len, path);
        return;
    }
    respond_header(rc, H2O_TOKEN_ALLOW, allow, allow_len);
    respond_problem(rc, 405, NULL, "Method %.*s is not allowed here; allowed: %s.",
                    (int)req->method.len, req->method.base, allow);
}
