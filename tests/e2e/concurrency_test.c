/*
 * e2e: the concurrency rules — racing registrations, PUTs, If-Match PATCHes,
 * and bursts of writes — with real threads, each request on its own
 * connection, released together by a barrier.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define N 8

struct race {
    const char *token;
    const char *path;
    const char *method;
    const char *hdr;
    char *bodies[N];
    long status[N];
    char *resp[N];
};

static void race_one(int i, void *arg)
{
    struct race *rc = arg;
    struct e2e_req rq = {.method = rc->method, .path = rc->path, .token = rc->token,
                         .ctype = rc->bodies[i] ? "application/json" : NULL,
                         .body = rc->bodies[i], .hdr = {rc->hdr}};
    struct e2e_resp *r = e2e_send(&rq);
    rc->status[i] = r->status;
    rc->resp[i] = strdup(r->body);
    e2e_resp_free(r);
}

static void race_free(struct race *rc)
{
    for (int i = 0; i < N; i++) {
        free(rc->bodies[i]);
        free(rc->resp[i]);
    }
}

static int count(const struct race *rc, long status)
{
    int n = 0;
    for (int i = 0; i < N; i++)
        n += rc->status[i] == status;
    return n;
}

static const char *statuses(const struct race *rc)
{
    static char buf[128];
    size_t n = 0;
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%ld ", rc->status[i]);
    return buf;
}

Test(concurrency, register_same_email_one_201_rest_409, .timeout = 120)
{
    char email[192];
    e2e_unique_email(email, sizeof(email), "race");
    struct race rc = {.method = "POST", .path = "/api/v1/auth/register"};
    for (int i = 0; i < N; i++) {
        json_t *b = json_pack("{s:s, s:s}", "email", email, "password", "race-password");
        rc.bodies[i] = json_dumps(b, JSON_COMPACT);
        json_decref(b);
    }
    e2e_parallel(N, race_one, &rc);
    cr_assert_eq(count(&rc, 201), 1, "want exactly one 201: %s", statuses(&rc));
    cr_assert_eq(count(&rc, 409), N - 1, "want %d x 409: %s", N - 1, statuses(&rc));
    for (int i = 0; i < N; i++) {
        if (rc.status[i] == 409)
            cr_assert(strstr(rc.resp[i], "\"status\"") && strstr(rc.resp[i], "409"),
                      "409 is not a problem: %s", rc.resp[i]);
    }
    /* and the winner's account works */
    struct e2e_resp *r = e2e_login(NULL, email, "race-password");
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
    race_free(&rc);
}

Test(concurrency, put_same_new_id_one_201_rest_200, .timeout = 60)
{
    struct e2e_user u;
    e2e_user_make(&u, "raceput");
    char id[37], path[100];
    e2e_uuid_v4(id);
    snprintf(path, sizeof(path), "/api/v1/todos/%s", id);
    struct race rc = {.method = "PUT", .path = path, .token = u.token};
    for (int i = 0; i < N; i++) {
        char body[64];
        snprintf(body, sizeof(body), "{\"title\": \"put %d\"}", i);
        rc.bodies[i] = strdup(body);
    }
    e2e_parallel(N, race_one, &rc);
    cr_assert_eq(count(&rc, 201), 1, "want exactly one 201: %s", statuses(&rc));
    cr_assert_eq(count(&rc, 200), N - 1, "want %d x 200: %s", N - 1, statuses(&rc));
    struct e2e_resp *r = e2e_get(path, u.token);
    E2E_STATUS(r, 200);
    /* one creation plus N-1 real replacements (all titles differ) */
    cr_assert_eq(e2e_int(r->json, "version"), N, "version after %d PUTs: %s", N, e2e_excerpt(r));
    e2e_resp_free(r);
    r = e2e_get("/api/v1/todos", u.token);
    cr_assert_eq(e2e_int(r->json, "total"), 1, "%s", e2e_excerpt(r));
    e2e_resp_free(r);
    race_free(&rc);
}

Test(concurrency, patch_same_if_match_one_200_rest_412, .timeout = 60)
{
    struct e2e_user u;
    e2e_user_make(&u, "racepatch");
    json_t *t = e2e_todo_new(&u, "original");
    char path[100];
    snprintf(path, sizeof(path), "/api/v1/todos/%s", e2e_str(t, "id"));
    struct race rc = {.method = "PATCH", .path = path, .token = u.token, .hdr = "If-Match: \"1\""};
    for (int i = 0; i < N; i++) {
        char body[64];
        snprintf(body, sizeof(body), "{\"title\": \"patch %d\"}", i);
        rc.bodies[i] = strdup(body);
    }
    e2e_parallel(N, race_one, &rc);
    cr_assert_eq(count(&rc, 200), 1, "want exactly one 200: %s", statuses(&rc));
    cr_assert_eq(count(&rc, 412), N - 1, "want %d x 412: %s", N - 1, statuses(&rc));
    int winner = -1;
    for (int i = 0; i < N; i++)
        if (rc.status[i] == 200)
            winner = i;
    struct e2e_resp *r = e2e_get(path, u.token);
    E2E_STATUS(r, 200);
    cr_assert_eq(e2e_int(r->json, "version"), 2, "%s", e2e_excerpt(r));
    char want[32];
    snprintf(want, sizeof(want), "patch %d", winner);
    cr_assert_str_eq(e2e_str(r->json, "title"), want, "the stored title is not the winner's");
    e2e_resp_free(r);
    json_decref(t);
    race_free(&rc);
}

Test(concurrency, patches_without_if_match_lose_no_update, .timeout = 60)
{
    struct e2e_user u;
    e2e_user_make(&u, "racelost");
    json_t *t = e2e_todo_new(&u, "base");
    char path[100];
    snprintf(path, sizeof(path), "/api/v1/todos/%s", e2e_str(t, "id"));
    struct race rc = {.method = "PATCH", .path = path, .token = u.token};
    for (int i = 0; i < N; i++) {
        char body[64];
        snprintf(body, sizeof(body), "{\"title\": \"t%d\"}", i);
        rc.bodies[i] = strdup(body);
    }
    e2e_parallel(N, race_one, &rc);
    cr_assert_eq(count(&rc, 200), N, "%s", statuses(&rc));
    struct e2e_resp *r = e2e_get(path, u.token);
    cr_assert_eq(e2e_int(r->json, "version"), 1 + N, "each PATCH must count once: %s",
                 e2e_excerpt(r));
    e2e_resp_free(r);
    json_decref(t);
    race_free(&rc);
}

#define BURST 12

struct burst {
    const char *token;
    char ids[N][BURST][37];
    long bad_status[N];
};

static void burst_one(int i, void *arg)
{
    struct burst *b = arg;
    for (int k = 0; k < BURST; k++) {
        char body[64];
        snprintf(body, sizeof(body), "{\"title\": \"burst %d/%d\"}", i, k);
        struct e2e_req rq = {.method = "POST", .path = "/api/v1/todos", .token = b->token,
                             .ctype = "application/json", .body = body};
        struct e2e_resp *r = e2e_send(&rq);
        const char *id = r->status == 201 ? e2e_str(r->json, "id") : NULL;
        if (!id) {
            b->bad_status[i] = r->status ? r->status : -1;
            e2e_resp_free(r);
            return;
        }
        snprintf(b->ids[i][k], 37, "%s", id);
        e2e_resp_free(r);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

Test(concurrency, write_burst_all_acknowledged_and_listed, .timeout = 120)
{
    struct e2e_user u;
    e2e_user_make(&u, "burst");
    struct burst *b = calloc(1, sizeof(*b));
    b->token = u.token;
    e2e_parallel(N, burst_one, b);
    for (int i = 0; i < N; i++)
        cr_assert_eq(b->bad_status[i], 0, "thread %d got status %ld", i, b->bad_status[i]);
    struct e2e_resp *r = e2e_get("/api/v1/todos?limit=1000&sort=created_at", u.token);
    E2E_STATUS(r, 200);
    cr_assert_eq(e2e_int(r->json, "total"), N * BURST, "%s", e2e_excerpt(r));
    const char *sent[N * BURST], *got[N * BURST];
    for (int i = 0; i < N * BURST; i++) {
        sent[i] = b->ids[i / BURST][i % BURST];
        got[i] = e2e_str(json_array_get(json_object_get(r->json, "items"), (size_t)i), "id");
        cr_assert(got[i], "item %d missing", i);
    }
    qsort(sent, N * BURST, sizeof(char *), cmp_str);
    qsort(got, N * BURST, sizeof(char *), cmp_str);
    for (int i = 0; i < N * BURST; i++) {
        cr_assert_str_eq(sent[i], got[i], "acknowledged ids and listed ids differ");
        if (i)
            cr_assert_str_neq(sent[i], sent[i - 1], "the server issued one id twice");
    }
    e2e_resp_free(r);
    free(b);
}

Test(concurrency, delete_same_todo_one_204_rest_404, .timeout = 60)
{
    struct e2e_user u;
    e2e_user_make(&u, "racedel");
    json_t *t = e2e_todo_new(&u, "doomed");
    char path[100];
    snprintf(path, sizeof(path), "/api/v1/todos/%s", e2e_str(t, "id"));
    struct race rc = {.method = "DELETE", .path = path, .token = u.token};
    e2e_parallel(N, race_one, &rc);
    cr_assert_eq(count(&rc, 204), 1, "want exactly one 204: %s", statuses(&rc));
    cr_assert_eq(count(&rc, 404), N - 1, "want %d x 404: %s", N - 1, statuses(&rc));
    json_decref(t);
    race_free(&rc);
}
