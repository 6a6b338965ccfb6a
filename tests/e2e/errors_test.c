/*
 * e2e: the error contract — every error is application/problem+json with
 * {type, title, status, detail}; 400 malformed JSON (with the byte offset),
 * 422 validation (errors[] naming fields), 404, 405 + Allow, 413, 415, 400
 * bad query parameters; and nothing crashes on hostile input.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static struct e2e_resp *send_ct(const char *method, const char *path, const char *token,
                                const char *ctype, const char *body, size_t len)
{
    struct e2e_req rq = {.method = method, .path = path, .token = token, .ctype = ctype,
                         .body = body, .len = len};
    return e2e_send(&rq);
}

static bool has_digit(const char *s)
{
    for (; s && *s; s++)
        if (isdigit((unsigned char)*s))
            return true;
    return false;
}

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; hay && *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return false;
}

static void expect_malformed(const char *path, const char *token, const char *body, size_t len)
{
    struct e2e_resp *r = send_ct(strstr(path, "/todos/") ? "PATCH" : "POST", path, token,
                                 "application/json", body, len);
    E2E_PROBLEM(r, 400);
    const char *d = e2e_str(r->json, "detail");
    cr_assert((contains_ci(d, "offset") || contains_ci(d, "byte") || contains_ci(d, "position")) &&
                  has_digit(d),
              "%s: malformed JSON detail should name the byte offset: '%s'", r->what, d);
    e2e_resp_free(r);
}

Test(errors, malformed_json_400_names_offset)
{
    struct e2e_user u;
    e2e_user_make(&u, "malformed");
    json_t *t = e2e_todo_new(&u, "target");
    char tpath[100];
    snprintf(tpath, sizeof(tpath), "/api/v1/todos/%s", e2e_str(t, "id"));
    const char *bodies[] = {
        "{\"title\": \"x\",}", "{\"title\": \"x\"", "{title: \"x\"}", "{\"title\": 'x'}",
        "nul",                 "{\"title\": \"x\"} trailing", "{\"title\": \"\\q\"}",
        NULL,
    };
    for (int i = 0; bodies[i]; i++) {
        expect_malformed("/api/v1/todos", u.token, bodies[i], 0);
        expect_malformed(tpath, u.token, bodies[i], 0);
        expect_malformed("/api/v1/auth/register", NULL, bodies[i], 0);
        expect_malformed("/api/v1/auth/login", NULL, bodies[i], 0);
    }
    /* an empty body is malformed JSON too */
    struct e2e_resp *r = send_ct("POST", "/api/v1/todos", u.token, "application/json", "", 0);
    E2E_PROBLEM(r, 400);
    e2e_resp_free(r);
    /* PUT as well */
    char id[37], ppath[100];
    e2e_uuid_v4(id);
    snprintf(ppath, sizeof(ppath), "/api/v1/todos/%s", id);
    r = send_ct("PUT", ppath, u.token, "application/json", "{\"title\": ", 0);
    E2E_PROBLEM(r, 400);
    e2e_resp_free(r);
    json_decref(t);
}

Test(errors, malformed_json_offset_is_the_right_one)
{
    struct e2e_user u;
    e2e_user_make(&u, "offset");
    /* the error is at byte 40 or so; the detail must carry a number in the
     * neighbourhood, not e.g. a line number of 1 */
    const char *body = "{\"title\": \"aaaaaaaaaaaaaaaaaaaaaaaaa\", , \"completed\": true}";
    struct e2e_resp *r = send_ct("POST", "/api/v1/todos", u.token, "application/json", body, 0);
    E2E_PROBLEM(r, 400);
    const char *d = e2e_str(r->json, "detail");
    bool near = false;
    for (const char *p = d; *p; p++) {
        if (isdigit((unsigned char)*p) && (p == d || !isdigit((unsigned char)p[-1]))) {
            long v = strtol(p, NULL, 10);
            near |= v >= 36 && v <= 42;
        }
    }
    cr_assert(near, "detail '%s' does not name the offset of the error (~38)", d);
    e2e_resp_free(r);
}

Test(errors, invalid_utf8_and_nul_rejected)
{
    struct e2e_user u;
    e2e_user_make(&u, "utf8");
    const char *bad[] = {"{\"title\": \"\xff\xfe\"}", "{\"title\": \"\xc3\"}",
                         "{\"title\": \"\xed\xa0\x80\"}", NULL};
    for (int i = 0; bad[i]; i++) {
        struct e2e_resp *r = send_ct("POST", "/api/v1/todos", u.token, "application/json",
                                     bad[i], 0);
        cr_assert(r->status == 400 || r->status == 422, "invalid UTF-8 %d: %ld", i, r->status);
        E2E_PROBLEM(r, (int)r->status);
        e2e_resp_free(r);
    }
    struct e2e_resp *r = send_ct("POST", "/api/v1/todos", u.token, "application/json",
                                 "{\"title\": \"a\\u0000b\"}", 0);
    cr_assert(r->status == 400 || r->status == 422 || r->status == 201,
              "NUL escape: %ld %s", r->status, e2e_excerpt(r));
    if (r->status != 201) {
        E2E_PROBLEM(r, (int)r->status);
    } else {
        /* accepted: then stored whole, not cut at the NUL */
        json_t *title = json_object_get(r->json, "title");
        cr_assert(json_string_length(title) == 3 &&
                      memcmp(json_string_value(title), "a\0b", 3) == 0,
                  "a title with U+0000 was accepted but changed: %s", e2e_excerpt(r));
    }
    e2e_resp_free(r);
    r = e2e_get("/api/v1/todos", u.token);
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
}

Test(errors, hostile_json_does_not_crash)
{
    struct e2e_user u;
    e2e_user_make(&u, "hostile");
    char *deep = malloc(200100);
    size_t n = 0;
    n += (size_t)snprintf(deep, 64, "{\"title\": ");
    for (int i = 0; i < 100000; i++)
        deep[n++] = '[';
    for (int i = 0; i < 100000; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    const char *odd[] = {deep,
                         "{\"title\": \"x\", \"completed\": 1e999999}",
                         "{\"title\": \"x\", \"description\": -0.0e-99999}",
                         "{\"title\": \"x\", \"title\": \"y\"}",
                         "{\"\": 1}",
                         "{\"title\": {\"title\": {\"title\": \"x\"}}}",
                         NULL};
    for (int i = 0; odd[i]; i++) {
        struct e2e_resp *r = send_ct("POST", "/api/v1/todos", u.token, "application/json",
                                     odd[i], 0);
        cr_assert(r->status == 400 || r->status == 422 || r->status == 201,
                  "hostile body %d: %ld %s", i, r->status, e2e_excerpt(r));
        if (r->status != 201)
            E2E_PROBLEM(r, (int)r->status);
        e2e_resp_free(r);
    }
    free(deep);
    struct e2e_resp *r = e2e_get("/healthz", NULL);
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
}

Test(errors, validation_422_names_every_field)
{
    struct e2e_user u;
    e2e_user_make(&u, "v422");
    struct e2e_resp *r = send_ct("POST", "/api/v1/todos", u.token, "application/json",
                                 "{\"title\": 1, \"description\": 2, \"completed\": \"x\", "
                                 "\"extra\": true, \"more\": null}",
                                 0);
    E2E_422_FIELDS(r, "title", "description", "completed", "extra", "more");
    e2e_resp_free(r);
}

Test(errors, unknown_route_404)
{
    char id[37], p1[120];
    e2e_uuid_v4(id);
    snprintf(p1, sizeof(p1), "/api/v1/todos/%s/extra", id);
    const char *paths[] = {"/nope", "/api/v1/nope", "/api/v2/todos", "/api/v1", "/api/v1/auth",
                           p1, "/api/v1/auth/me/more", "/healthz/x", "/", NULL};
    for (int i = 0; paths[i]; i++) {
        struct e2e_resp *r = e2e_get(paths[i], NULL);
        E2E_PROBLEM(r, 404);
        e2e_resp_free(r);
        r = send_ct("POST", paths[i], NULL, "application/json", "{}", 0);
        E2E_PROBLEM(r, 404);
        e2e_resp_free(r);
    }
}

static bool allow_has(const char *allow, const char *m)
{
    size_t ml = strlen(m);
    for (const char *p = allow; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if ((size_t)(e - p) == ml && strncmp(p, m, ml) == 0)
            return true;
        p = e;
    }
    return false;
}

static void expect_405(const char *method, const char *path, const char *token,
                       const char *const *allowed)
{
    struct e2e_req rq = {.method = method, .path = path, .token = token};
    if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
        strcmp(method, "PATCH") == 0) {
        rq.ctype = "application/json";
        rq.body = "{}";
    }
    struct e2e_resp *r = e2e_send(&rq);
    E2E_PROBLEM(r, 405);
    const char *allow = e2e_header(r, "Allow");
    cr_assert(allow, "%s: 405 without Allow", r->what);
    for (int i = 0; allowed[i]; i++)
        cr_assert(allow_has(allow, allowed[i]), "%s: Allow '%s' lacks %s", r->what, allow,
                  allowed[i]);
    /* nothing else, except HEAD/OPTIONS */
    static const char *const all[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
    for (int i = 0; all[i]; i++) {
        bool expected = false;
        for (int k = 0; allowed[k]; k++)
            expected |= strcmp(allowed[k], all[i]) == 0;
        cr_assert(expected || !allow_has(allow, all[i]), "%s: Allow '%s' lists %s", r->what,
                  allow, all[i]);
    }
    e2e_resp_free(r);
}

Test(errors, wrong_method_405_with_allow)
{
    struct e2e_user u;
    e2e_user_make(&u, "m405");
    json_t *t = e2e_todo_new(&u, "x");
    char tpath[100];
    snprintf(tpath, sizeof(tpath), "/api/v1/todos/%s", e2e_str(t, "id"));
    static const char *const coll[] = {"GET", "POST", NULL};
    static const char *const item[] = {"GET", "PUT", "PATCH", "DELETE", NULL};
    static const char *const post[] = {"POST", NULL};
    static const char *const get[] = {"GET", NULL};
    expect_405("DELETE", "/api/v1/todos", u.token, coll);
    expect_405("PUT", "/api/v1/todos", u.token, coll);
    expect_405("PATCH", "/api/v1/todos", u.token, coll);
    expect_405("POST", tpath, u.token, item);
    expect_405("GET", "/api/v1/auth/register", NULL, post);
    expect_405("DELETE", "/api/v1/auth/register", NULL, post);
    expect_405("GET", "/api/v1/auth/login", NULL, post);
    expect_405("GET", "/api/v1/auth/token", NULL, post);
    expect_405("POST", "/api/v1/auth/me", u.token, get);
    expect_405("POST", "/healthz", NULL, get);
    expect_405("DELETE", "/readyz", NULL, get);
    expect_405("PUT", "/api/v1/openapi.json", NULL, get);
    json_decref(t);
}

#define MIB (1024 * 1024)

/* A JSON body of exactly `len` bytes: a title and a long description. */
static char *json_of_size(size_t len)
{
    const char *head = "{\"title\": \"big\", \"description\": \"";
    const char *tail = "\"}";
    char *b = malloc(len + 1);
    size_t hl = strlen(head), tl = strlen(tail);
    memcpy(b, head, hl);
    memset(b + hl, 'x', len - hl - tl);
    memcpy(b + len - tl, tail, tl);
    b[len] = '\0';
    return b;
}

Test(errors, body_over_1mib_413, .timeout = 60)
{
    struct e2e_user u;
    e2e_user_make(&u, "big");
    char *at_limit = json_of_size(MIB);
    struct e2e_resp *r = send_ct("POST", "/api/v1/todos", u.token, "application/json", at_limit,
                                 MIB);
    /* exactly 1 MiB is allowed through to validation: description too long */
    E2E_422_FIELDS(r, "description");
    e2e_resp_free(r);

    char *over = json_of_size(MIB + 1);
    r = send_ct("POST", "/api/v1/todos", u.token, "application/json", over, MIB + 1);
    E2E_PROBLEM(r, 413);
    e2e_resp_free(r);

    /* with Expect: 100-continue, as curl and many clients send it */
    struct e2e_req rq = {.method = "POST", .path = "/api/v1/todos", .token = u.token,
                         .ctype = "application/json", .body = over, .len = MIB + 1,
                         .expect_100 = true};
    r = e2e_send(&rq);
    E2E_PROBLEM(r, 413);
    e2e_resp_free(r);

    /* chunked, no Content-Length */
    char *huge = json_of_size(2 * MIB);
    struct e2e_req ch = {.method = "POST", .path = "/api/v1/todos", .token = u.token,
                         .ctype = "application/json", .body = huge, .len = 2 * MIB,
                         .chunked = true};
    r = e2e_send(&ch);
    E2E_PROBLEM(r, 413);
    e2e_resp_free(r);

    /* on other routes too, and without a token */
    r = send_ct("POST", "/api/v1/auth/register", NULL, "application/json", huge, 2 * MIB);
    E2E_PROBLEM(r, 413);
    e2e_resp_free(r);
    free(at_limit);
    free(over);
    free(huge);

    r = e2e_get("/api/v1/todos", u.token);
    cr_assert_eq(e2e_int(r->json, "total"), 0, "%s", e2e_excerpt(r));
    e2e_resp_free(r);
}

Test(errors, non_json_content_type_415)
{
    struct e2e_user u;
    e2e_user_make(&u, "ct415");
    json_t *t = e2e_todo_new(&u, "x");
    char tpath[100], newpath[100], id[37];
    snprintf(tpath, sizeof(tpath), "/api/v1/todos/%s", e2e_str(t, "id"));
    e2e_uuid_v4(id);
    snprintf(newpath, sizeof(newpath), "/api/v1/todos/%s", id);
    const char *body = "{\"title\": \"y\"}";
    const char *types[] = {"text/plain", "application/x-www-form-urlencoded", "text/html",
                           "application/xml", "multipart/form-data; boundary=x", NULL};
    for (int i = 0; types[i]; i++) {
        struct e2e_resp *r = send_ct("POST", "/api/v1/todos", u.token, types[i], body, 0);
        E2E_PROBLEM(r, 415);
        e2e_resp_free(r);
        r = send_ct("PUT", newpath, u.token, types[i], body, 0);
        E2E_PROBLEM(r, 415);
        e2e_resp_free(r);
        r = send_ct("PATCH", tpath, u.token, types[i], body, 0);
        E2E_PROBLEM(r, 415);
        e2e_resp_free(r);
        r = send_ct("POST", "/api/v1/auth/register", NULL, types[i],
                    "{\"email\": \"a@b.c\", \"password\": \"12345678\"}", 0);
        E2E_PROBLEM(r, 415);
        e2e_resp_free(r);
    }
    struct e2e_resp *r = send_ct("POST", "/api/v1/auth/login", NULL, "text/plain",
                                 "{\"email\": \"a@b.c\", \"password\": \"12345678\"}", 0);
    E2E_PROBLEM(r, 415);
    e2e_resp_free(r);
    /* nothing was created or changed */
    r = e2e_get("/api/v1/todos", u.token);
    cr_assert_eq(e2e_int(r->json, "total"), 1, "%s", e2e_excerpt(r));
    e2e_resp_free(r);
    r = e2e_get(tpath, u.token);
    cr_assert_str_eq(e2e_str(r->json, "title"), "x");
    e2e_resp_free(r);
    json_decref(t);
}

Test(errors, missing_content_type_415)
{
    struct e2e_user u;
    e2e_user_make(&u, "noct");
    struct e2e_resp *r = send_ct("POST", "/api/v1/todos", u.token, NULL, "{\"title\": \"y\"}", 0);
    E2E_PROBLEM(r, 415);
    e2e_resp_free(r);
}

Test(errors, json_content_type_variants_accepted)
{
    struct e2e_user u;
    e2e_user_make(&u, "ctok");
    const char *ok[] = {"application/json; charset=utf-8", "application/json;charset=UTF-8",
                        "Application/JSON", NULL};
    for (int i = 0; ok[i]; i++) {
        struct e2e_resp *r = send_ct("POST", "/api/v1/todos", u.token, ok[i],
                                     "{\"title\": \"ct\"}", 0);
        E2E_STATUS(r, 201);
        e2e_resp_free(r);
    }
}

static void expect_bad_query(const struct e2e_user *u, const char *qs, const char *param)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/todos?%s", qs);
    struct e2e_resp *r = e2e_get(path, u->token);
    E2E_PROBLEM(r, 400);
    cr_assert(e2e_problem_names(r, param), "%s: the 400 does not name '%s': %s", r->what, param,
              e2e_excerpt(r));
    e2e_resp_free(r);
}

Test(errors, bad_query_parameters_400)
{
    struct e2e_user u;
    e2e_user_make(&u, "q400");
    expect_bad_query(&u, "limit=0", "limit");
    expect_bad_query(&u, "limit=1001", "limit");
    expect_bad_query(&u, "limit=-1", "limit");
    expect_bad_query(&u, "limit=abc", "limit");
    expect_bad_query(&u, "limit=10abc", "limit");
    expect_bad_query(&u, "limit=", "limit");
    expect_bad_query(&u, "limit=99999999999999999999", "limit");
    expect_bad_query(&u, "offset=-1", "offset");
    expect_bad_query(&u, "offset=x", "offset");
    expect_bad_query(&u, "completed=maybe", "completed");
    expect_bad_query(&u, "completed=1", "completed");
    expect_bad_query(&u, "sort=bogus", "sort");
    expect_bad_query(&u, "sort=id", "sort");
    expect_bad_query(&u, "sort=--title", "sort");
    expect_bad_query(&u, "foo=1", "foo");
    expect_bad_query(&u, "limit=5&bogus=1", "bogus");
    expect_bad_query(&u, "sort=title&completed=perhaps", "completed");
    expect_bad_query(&u, "completed=", "completed");
    expect_bad_query(&u, "sort=", "sort");
    expect_bad_query(&u, "limit=1e2", "limit");
    expect_bad_query(&u, "limit=5.0", "limit");
    expect_bad_query(&u, "offset=99999999999999999999", "offset");
    expect_bad_query(&u, "q=%ZZ", "q");
    expect_bad_query(&u, "q=%", "q");
    expect_bad_query(&u, "q=%FF%FE", "q");
}

Test(errors, good_query_parameters_200)
{
    struct e2e_user u;
    e2e_user_make(&u, "q200");
    const char *ok[] = {"limit=1",        "limit=1000",     "offset=0",       "completed=true",
                        "completed=false", "sort=created_at", "sort=-created_at",
                        "sort=updated_at", "sort=-updated_at", "sort=title",    "sort=-title",
                        "q=",             "q=%25%5F",       "q=a+b",
                        "limit=10&offset=20&completed=false&sort=title&q=x",    NULL};
    for (int i = 0; ok[i]; i++) {
        char path[256];
        snprintf(path, sizeof(path), "/api/v1/todos?%s", ok[i]);
        struct e2e_resp *r = e2e_get(path, u.token);
        E2E_STATUS(r, 200);
        e2e_resp_free(r);
    }
}
