/*
 * e2e: one todo at a time — POST, GET, PUT, PATCH, DELETE, ETags and
 * If-Match / If-None-Match, ownership.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct e2e_resp *with_header(const char *method, const char *path, const char *token,
                                    const char *ctype, const char *body, const char *hdr)
{
    struct e2e_req rq = {.method = method, .path = path, .token = token, .ctype = ctype,
                         .body = body, .hdr = {hdr}};
    return e2e_send(&rq);
}

static json_t *get_todo(const struct e2e_user *u, const char *id)
{
    struct e2e_resp *r = e2e_get(e2e_todo_path(id), u->token);
    E2E_STATUS(r, 200);
    E2E_TODO_SHAPE(r->json);
    json_t *t = json_incref(r->json);
    e2e_resp_free(r);
    return t;
}

#define EXPECT_JSON_EQ(a, b, what)                                                         \
    do {                                                                                   \
        char *ja_ = json_dumps((a), JSON_COMPACT | JSON_SORT_KEYS);                        \
        char *jb_ = json_dumps((b), JSON_COMPACT | JSON_SORT_KEYS);                        \
        cr_assert(json_equal((a), (b)), "%s:\n%s\nvs\n%s", (what), ja_, jb_);              \
        free(ja_);                                                                         \
        free(jb_);                                                                         \
    } while (0)

/* ---- create ---- */

Test(todos, create_201_location_etag_shape)
{
    struct e2e_user u;
    e2e_user_make(&u, "create");
    int64_t before = e2e_now_ms();
    struct e2e_resp *r = e2e_jreq("POST", "/api/v1/todos", u.token,
                                  json_pack("{s:s, s:s}", "title", "  Buy milk \t ",
                                            "description", "2 litres"));
    int64_t after = e2e_now_ms();
    E2E_STATUS(r, 201);
    E2E_TODO_SHAPE(r->json);
    const char *ct = e2e_header(r, "Content-Type");
    cr_assert(ct && strncmp(ct, "application/json", 16) == 0, "Content-Type %s", ct ? ct : "-");
    const char *id = e2e_str(r->json, "id");
    char want_loc[128];
    snprintf(want_loc, sizeof(want_loc), "/api/v1/todos/%s", id);
    const char *loc = e2e_header(r, "Location");
    cr_assert(loc, "no Location header");
    size_t ll = strlen(loc), wl = strlen(want_loc);
    cr_assert(ll >= wl && strcmp(loc + ll - wl, want_loc) == 0 &&
                  (ll == wl || strncmp(loc, e2e_base(), ll - wl) == 0),
              "Location '%s', want '%s'", loc, want_loc);
    const char *etag = e2e_header(r, "ETag");
    cr_assert_str_eq(etag ? etag : "(none)", "\"1\"");

    cr_assert_str_eq(e2e_str(r->json, "title"), "Buy milk", "title must be trimmed");
    cr_assert_str_eq(e2e_str(r->json, "description"), "2 litres");
    cr_assert(json_is_false(json_object_get(r->json, "completed")));
    cr_assert(json_is_null(json_object_get(r->json, "completed_at")));
    cr_assert_eq(e2e_int(r->json, "version"), 1);
    cr_assert_str_eq(e2e_str(r->json, "created_at"), e2e_str(r->json, "updated_at"));

    /* UUIDv7: version nibble 7, RFC 4122 variant, 48-bit ms timestamp ~ now */
    cr_assert_eq(id[14], '7', "id %s is not a UUIDv7", id);
    cr_assert(strchr("89ab", id[19]), "id %s has the wrong variant", id);
    char hex[13] = {0};
    memcpy(hex, id, 8);
    memcpy(hex + 8, id + 9, 4);
    int64_t uuid_ms = strtoll(hex, NULL, 16);
    cr_assert(uuid_ms >= before - 2000 && uuid_ms <= after + 2000,
              "UUIDv7 time %lld is not now (%lld)", (long long)uuid_ms, (long long)before);
    int64_t created = e2e_parse_ms(e2e_str(r->json, "created_at"));
    cr_assert(created >= before - 2000 && created <= after + 2000,
              "created_at %s is not now", e2e_str(r->json, "created_at"));
    e2e_resp_free(r);
}

Test(todos, create_defaults_and_completed)
{
    struct e2e_user u;
    e2e_user_make(&u, "defaults");
    json_t *t = e2e_todo_new(&u, "just a title");
    E2E_TODO_SHAPE(t);
    cr_assert(json_is_null(json_object_get(t, "description")));
    cr_assert(json_is_false(json_object_get(t, "completed")));
    cr_assert(json_is_null(json_object_get(t, "completed_at")));
    json_decref(t);

    t = e2e_todo_create(&u, json_pack("{s:s, s:n, s:b}", "title", "done already", "description",
                                      "completed", 1));
    E2E_TODO_SHAPE(t);
    cr_assert(json_is_true(json_object_get(t, "completed")));
    int64_t ca = e2e_parse_ms(e2e_str(t, "completed_at"));
    int64_t cr = e2e_parse_ms(e2e_str(t, "created_at"));
    cr_assert(ca >= cr - 1000 && ca <= cr + 1000, "completed_at should be the creation time");
    json_decref(t);
}

Test(todos, title_length_in_characters)
{
    struct e2e_user u;
    e2e_user_make(&u, "titlelen");
    /* 255 two-byte characters (510 bytes), padded with spaces that are trimmed */
    char *t255 = e2e_repeat("\xc3\xa9", 255);
    size_t tl = strlen(t255);
    char *padded = e2e_repeat(" ", tl + 4);
    memcpy(padded + 2, t255, tl);
    json_t *t = e2e_todo_create(&u, json_pack("{s:s}", "title", padded));
    cr_assert_str_eq(e2e_str(t, "title"), t255);
    json_decref(t);
    /* 255 four-byte characters */
    char *e255 = e2e_repeat("\xf0\x9f\x98\x80", 255);
    t = e2e_todo_create(&u, json_pack("{s:s}", "title", e255));
    cr_assert_str_eq(e2e_str(t, "title"), e255);
    json_decref(t);

    char *t256 = e2e_repeat("\xc3\xa9", 256);
    char *a256 = e2e_repeat("a", 256);
    const char *bad[] = {t256, a256, "", "   ", NULL};
    for (int i = 0; bad[i]; i++) {
        struct e2e_resp *r = e2e_jreq("POST", "/api/v1/todos", u.token,
                                      json_pack("{s:s}", "title", bad[i]));
        E2E_422_FIELDS(r, "title");
        e2e_resp_free(r);
    }
    struct e2e_resp *r = e2e_raw("POST", "/api/v1/todos", u.token, "{\"description\": \"d\"}");
    E2E_422_FIELDS(r, "title");
    e2e_resp_free(r);
    r = e2e_raw("POST", "/api/v1/todos", u.token, "{\"title\": null}");
    E2E_422_FIELDS(r, "title");
    e2e_resp_free(r);
    free(t255);
    free(padded);
    free(e255);
    free(t256);
    free(a256);
}

Test(todos, description_length_in_characters)
{
    struct e2e_user u;
    e2e_user_make(&u, "desclen");
    char *d10000 = e2e_repeat("\xe2\x82\xac", 10000); /* 30000 bytes */
    json_t *t = e2e_todo_create(&u, json_pack("{s:s, s:s}", "title", "long", "description",
                                              d10000));
    cr_assert_str_eq(e2e_str(t, "description"), d10000);
    json_t *again = get_todo(&u, e2e_str(t, "id"));
    EXPECT_JSON_EQ(again, t, "GET differs from the POST answer");
    json_decref(again);
    json_decref(t);

    char *d10001 = e2e_repeat("\xe2\x82\xac", 10001);
    struct e2e_resp *r = e2e_jreq("POST", "/api/v1/todos", u.token,
                                  json_pack("{s:s, s:s}", "title", "too long", "description",
                                            d10001));
    E2E_422_FIELDS(r, "description");
    e2e_resp_free(r);
    free(d10000);
    free(d10001);
}

Test(todos, create_wrong_types_and_unknown_fields_422)
{
    struct e2e_user u;
    e2e_user_make(&u, "types");
    struct {
        const char *body;
        const char *field;
    } cases[] = {
        {"{\"title\": 5}", "title"},
        {"{\"title\": [\"x\"]}", "title"},
        {"{\"title\": \"x\", \"completed\": \"yes\"}", "completed"},
        {"{\"title\": \"x\", \"completed\": 1}", "completed"},
        {"{\"title\": \"x\", \"completed\": null}", "completed"},
        {"{\"title\": \"x\", \"description\": 5}", "description"},
        {"{\"title\": \"x\", \"description\": {}}", "description"},
        {"{\"title\": \"x\", \"foo\": 1}", "foo"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct e2e_resp *r = e2e_raw("POST", "/api/v1/todos", u.token, cases[i].body);
        E2E_422_FIELDS(r, cases[i].field);
        e2e_resp_free(r);
    }
    struct e2e_resp *r = e2e_raw("POST", "/api/v1/todos", u.token,
                                 "{\"title\": 1, \"description\": 2, \"completed\": \"x\", "
                                 "\"extra\": true}");
    E2E_422_FIELDS(r, "title", "description", "completed", "extra");
    e2e_resp_free(r);
    /* well-formed JSON that is not an object */
    const char *not_obj[] = {"[]", "\"title\"", "42", "null", NULL};
    for (int i = 0; not_obj[i]; i++) {
        r = e2e_raw("POST", "/api/v1/todos", u.token, not_obj[i]);
        E2E_PROBLEM(r, 422);
        e2e_resp_free(r);
    }
    /* nothing of the above was created */
    r = e2e_get("/api/v1/todos", u.token);
    E2E_STATUS(r, 200);
    cr_assert_eq(e2e_int(r->json, "total"), 0, "a rejected POST created something: %s",
                 e2e_excerpt(r));
    e2e_resp_free(r);
}

/* ---- get ---- */

Test(todos, get_200_etag_and_304)
{
    struct e2e_user u;
    e2e_user_make(&u, "get");
    json_t *t = e2e_todo_new(&u, "read me");
    const char *id = e2e_str(t, "id");
    struct e2e_resp *r = e2e_get(e2e_todo_path(id), u.token);
    E2E_STATUS(r, 200);
    EXPECT_JSON_EQ(r->json, t, "GET differs from POST");
    cr_assert_str_eq(e2e_header(r, "ETag") ? e2e_header(r, "ETag") : "(none)", "\"1\"");
    e2e_resp_free(r);

    r = with_header("GET", e2e_todo_path(id), u.token, NULL, NULL, "If-None-Match: \"1\"");
    E2E_STATUS(r, 304);
    cr_assert_eq(r->len, 0, "304 must have no body: %s", e2e_excerpt(r));
    cr_assert_str_eq(e2e_header(r, "ETag") ? e2e_header(r, "ETag") : "(none)", "\"1\"",
                     "a 304 must carry the ETag (RFC 9110 15.4.5)");
    e2e_resp_free(r);

    r = with_header("GET", e2e_todo_path(id), u.token, NULL, NULL, "If-None-Match: \"7\"");
    E2E_STATUS(r, 200);
    EXPECT_JSON_EQ(r->json, t, "GET with a non-matching If-None-Match");
    e2e_resp_free(r);

    /* after a change the old ETag no longer matches */
    r = e2e_raw("PATCH", e2e_todo_path(id), u.token, "{\"title\": \"changed\"}");
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
    r = with_header("GET", e2e_todo_path(id), u.token, NULL, NULL, "If-None-Match: \"1\"");
    E2E_STATUS(r, 200);
    cr_assert_str_eq(e2e_header(r, "ETag") ? e2e_header(r, "ETag") : "(none)", "\"2\"");
    cr_assert_str_eq(e2e_str(r->json, "title"), "changed");
    e2e_resp_free(r);
    r = with_header("GET", e2e_todo_path(id), u.token, NULL, NULL, "If-None-Match: \"2\"");
    E2E_STATUS(r, 304);
    cr_assert_eq(r->len, 0);
    e2e_resp_free(r);
    json_decref(t);
}

Test(todos, get_missing_404_and_invalid_id)
{
    struct e2e_user u;
    e2e_user_make(&u, "get404");
    char id[37];
    e2e_uuid_v4(id);
    struct e2e_resp *r = e2e_get(e2e_todo_path(id), u.token);
    E2E_PROBLEM(r, 404);
    e2e_resp_free(r);
    /* a non-UUID id: not found or bad request, but a problem either way */
    r = e2e_get("/api/v1/todos/not-a-uuid", u.token);
    cr_assert(r->status == 400 || r->status == 404, "GET non-UUID id: %ld", r->status);
    E2E_PROBLEM(r, (int)r->status);
    e2e_resp_free(r);
}

/* ---- put ---- */

Test(todos, put_creates_201_with_client_id)
{
    struct e2e_user u;
    e2e_user_make(&u, "putnew");
    char id[37];
    e2e_uuid_v4(id); /* any valid UUID, not only v7 */
    struct e2e_resp *r = e2e_jreq("PUT", e2e_todo_path(id), u.token,
                                  json_pack("{s:s, s:s, s:b}", "title", " from put ",
                                            "description", "d", "completed", 1));
    E2E_STATUS(r, 201);
    E2E_TODO_SHAPE(r->json);
    cr_assert_str_eq(e2e_str(r->json, "id"), id);
    cr_assert_str_eq(e2e_str(r->json, "title"), "from put");
    cr_assert_str_eq(e2e_str(r->json, "description"), "d");
    cr_assert(json_is_true(json_object_get(r->json, "completed")));
    cr_assert_eq(e2e_int(r->json, "version"), 1);
    json_t *got = get_todo(&u, id);
    EXPECT_JSON_EQ(got, r->json, "GET after PUT-create");
    json_decref(got);
    e2e_resp_free(r);
}

Test(todos, put_uppercase_id_is_canonicalised)
{
    struct e2e_user u;
    e2e_user_make(&u, "putupper");
    char id[37], upper[37];
    e2e_uuid_v4(id);
    for (int i = 0; i < 37; i++)
        upper[i] = (char)(id[i] >= 'a' && id[i] <= 'f' ? id[i] - 'a' + 'A' : id[i]);
    struct e2e_resp *r = e2e_jreq("PUT", e2e_todo_path(upper), u.token,
                                  json_pack("{s:s}", "title", "upper"));
    E2E_STATUS(r, 201);
    cr_assert_str_eq(e2e_str(r->json, "id"), id, "the id must come back in canonical lower case");
    e2e_resp_free(r);
    json_t *got = get_todo(&u, id);
    json_decref(got);
    r = e2e_get(e2e_todo_path(upper), u.token);
    E2E_STATUS(r, 200);
    cr_assert_str_eq(e2e_str(r->json, "id"), id);
    e2e_resp_free(r);
    /* the same todo, not a second one */
    r = e2e_jreq("PUT", e2e_todo_path(id), u.token, json_pack("{s:s}", "title", "lower"));
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
    r = e2e_get("/api/v1/todos", u.token);
    cr_assert_eq(e2e_int(r->json, "total"), 1, "%s", e2e_excerpt(r));
    e2e_resp_free(r);
}

Test(todos, put_replace_200_resets_omitted_fields)
{
    struct e2e_user u;
    e2e_user_make(&u, "putrep");
    json_t *t = e2e_todo_create(&u, json_pack("{s:s, s:s, s:b}", "title", "orig", "description",
                                              "desc", "completed", 1));
    const char *id = e2e_str(t, "id");
    usleep(5000);
    struct e2e_resp *r = e2e_jreq("PUT", e2e_todo_path(id), u.token,
                                  json_pack("{s:s}", "title", "replaced"));
    E2E_STATUS(r, 200);
    E2E_TODO_SHAPE(r->json);
    cr_assert_str_eq(e2e_str(r->json, "id"), id);
    cr_assert_str_eq(e2e_str(r->json, "title"), "replaced");
    cr_assert(json_is_null(json_object_get(r->json, "description")),
              "PUT without description must reset it to null: %s", e2e_excerpt(r));
    cr_assert(json_is_false(json_object_get(r->json, "completed")),
              "PUT without completed must reset it to false: %s", e2e_excerpt(r));
    cr_assert(json_is_null(json_object_get(r->json, "completed_at")));
    cr_assert_eq(e2e_int(r->json, "version"), 2);
    cr_assert_str_eq(e2e_str(r->json, "created_at"), e2e_str(t, "created_at"),
                     "PUT must keep created_at");
    cr_assert(e2e_parse_ms(e2e_str(r->json, "updated_at")) >
                  e2e_parse_ms(e2e_str(t, "updated_at")),
              "updated_at must move on a change");
    json_t *got = get_todo(&u, id);
    EXPECT_JSON_EQ(got, r->json, "GET after PUT-replace");
    json_decref(got);
    e2e_resp_free(r);
    json_decref(t);
}

Test(todos, put_same_representation_is_a_noop)
{
    struct e2e_user u;
    e2e_user_make(&u, "putnoop");
    json_t *t = e2e_todo_create(&u, json_pack("{s:s, s:s}", "title", "same", "description", "d"));
    const char *id = e2e_str(t, "id");
    usleep(5000);
    struct e2e_resp *r = e2e_jreq("PUT", e2e_todo_path(id), u.token,
                                  json_pack("{s:s, s:s, s:b}", "title", "same", "description",
                                            "d", "completed", 0));
    E2E_STATUS(r, 200);
    EXPECT_JSON_EQ(r->json, t, "a PUT with identical content must change nothing");
    e2e_resp_free(r);
    json_decref(t);
}

Test(todos, put_invalid_id_400)
{
    struct e2e_user u;
    e2e_user_make(&u, "put400");
    const char *bad[] = {"not-a-uuid", "12345678-1234-1234-1234-12345678901",
                         "12345678-1234-1234-1234-1234567890123",
                         "g2345678-1234-1234-1234-123456789012", "123", NULL};
    for (int i = 0; bad[i]; i++) {
        struct e2e_resp *r = e2e_jreq("PUT", e2e_todo_path(bad[i]), u.token,
                                      json_pack("{s:s}", "title", "x"));
        E2E_PROBLEM(r, 400);
        e2e_resp_free(r);
    }
    struct e2e_resp *r = e2e_get("/api/v1/todos", u.token);
    cr_assert_eq(e2e_int(r->json, "total"), 0);
    e2e_resp_free(r);
}

Test(todos, put_validation_422)
{
    struct e2e_user u;
    e2e_user_make(&u, "put422");
    json_t *t = e2e_todo_new(&u, "keep");
    const char *id = e2e_str(t, "id");
    struct {
        const char *body;
        const char *field;
    } cases[] = {
        {"{}", "title"},
        {"{\"title\": null}", "title"},
        {"{\"title\": \"x\", \"completed\": null}", "completed"},
        {"{\"title\": \"   \"}", "title"},
        {"{\"title\": \"x\", \"version\": 3}", "version"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct e2e_resp *r = e2e_raw("PUT", e2e_todo_path(id), u.token, cases[i].body);
        E2E_422_FIELDS(r, cases[i].field);
        e2e_resp_free(r);
    }
    json_t *got = get_todo(&u, id);
    EXPECT_JSON_EQ(got, t, "a rejected PUT changed the todo");
    json_decref(got);
    /* description: null is fine */
    struct e2e_resp *r = e2e_raw("PUT", e2e_todo_path(id), u.token,
                                 "{\"title\": \"keep\", \"description\": null}");
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
    json_decref(t);
}

Test(todos, put_on_another_users_todo_404_unchanged)
{
    struct e2e_user a, b;
    e2e_user_make(&a, "owner");
    e2e_user_make(&b, "intruder");
    json_t *t = e2e_todo_create(&a, json_pack("{s:s, s:s}", "title", "mine", "description", "d"));
    const char *id = e2e_str(t, "id");
    struct e2e_resp *r = e2e_jreq("PUT", e2e_todo_path(id), b.token,
                                  json_pack("{s:s}", "title", "stolen"));
    E2E_PROBLEM(r, 404);
    e2e_resp_free(r);
    json_t *got = get_todo(&a, id);
    EXPECT_JSON_EQ(got, t, "another user's PUT changed the todo");
    json_decref(got);
    r = e2e_get("/api/v1/todos", b.token);
    cr_assert_eq(e2e_int(r->json, "total"), 0, "the intruder got a todo: %s", e2e_excerpt(r));
    e2e_resp_free(r);
    json_decref(t);
}

/* ---- patch ---- */

Test(todos, patch_changes_only_given_fields)
{
    struct e2e_user u;
    e2e_user_make(&u, "patch");
    json_t *t = e2e_todo_create(&u, json_pack("{s:s, s:s}", "title", "t", "description", "d"));
    const char *id = e2e_str(t, "id");
    usleep(5000);

    /* application/merge-patch+json */
    struct e2e_resp *r = with_header("PATCH", e2e_todo_path(id), u.token,
                                     "application/merge-patch+json", "{\"completed\": true}",
                                     NULL);
    E2E_STATUS(r, 200);
    E2E_TODO_SHAPE(r->json);
    cr_assert_str_eq(e2e_str(r->json, "title"), "t");
    cr_assert_str_eq(e2e_str(r->json, "description"), "d");
    cr_assert(json_is_true(json_object_get(r->json, "completed")));
    int64_t ca = e2e_parse_ms(e2e_str(r->json, "completed_at"));
    cr_assert(ca >= e2e_parse_ms(e2e_str(t, "created_at")), "completed_at before creation");
    cr_assert_eq(e2e_int(r->json, "version"), 2);
    cr_assert_str_eq(e2e_str(r->json, "created_at"), e2e_str(t, "created_at"));
    cr_assert(e2e_parse_ms(e2e_str(r->json, "updated_at")) >
              e2e_parse_ms(e2e_str(t, "updated_at")));
    char *completed_at = strdup(e2e_str(r->json, "completed_at"));
    e2e_resp_free(r);

    /* application/json; a title change keeps completed_at */
    usleep(5000);
    r = e2e_raw("PATCH", e2e_todo_path(id), u.token, "{\"title\": \"  t2  \"}");
    E2E_STATUS(r, 200);
    cr_assert_str_eq(e2e_str(r->json, "title"), "t2");
    cr_assert_str_eq(e2e_str(r->json, "completed_at"), completed_at,
                     "completed_at must not move when completed does not change");
    cr_assert_eq(e2e_int(r->json, "version"), 3);
    e2e_resp_free(r);

    /* description: null clears it */
    r = e2e_raw("PATCH", e2e_todo_path(id), u.token, "{\"description\": null}");
    E2E_STATUS(r, 200);
    cr_assert(json_is_null(json_object_get(r->json, "description")), "%s", e2e_excerpt(r));
    cr_assert_eq(e2e_int(r->json, "version"), 4);
    e2e_resp_free(r);

    /* completed false clears completed_at */
    r = e2e_raw("PATCH", e2e_todo_path(id), u.token, "{\"completed\": false}");
    E2E_STATUS(r, 200);
    cr_assert(json_is_false(json_object_get(r->json, "completed")));
    cr_assert(json_is_null(json_object_get(r->json, "completed_at")), "%s", e2e_excerpt(r));
    cr_assert_eq(e2e_int(r->json, "version"), 5);
    json_t *got = get_todo(&u, id);
    EXPECT_JSON_EQ(got, r->json, "GET after PATCHes");
    json_decref(got);
    e2e_resp_free(r);

    r = e2e_get(e2e_todo_path(id), u.token);
    cr_assert_str_eq(e2e_header(r, "ETag") ? e2e_header(r, "ETag") : "-", "\"5\"");
    e2e_resp_free(r);
    free(completed_at);
    json_decref(t);
}

Test(todos, patch_noop_keeps_version_and_updated_at)
{
    struct e2e_user u;
    e2e_user_make(&u, "patchnoop");
    json_t *t = e2e_todo_create(&u, json_pack("{s:s, s:s}", "title", "same", "description", "d"));
    const char *id = e2e_str(t, "id");
    usleep(5000);
    const char *noops[] = {"{}", "{\"title\": \"same\"}", "{\"title\": \" same \"}",
                           "{\"completed\": false}", "{\"description\": \"d\"}",
                           "{\"title\": \"same\", \"description\": \"d\", \"completed\": false}",
                           NULL};
    for (int i = 0; noops[i]; i++) {
        struct e2e_resp *r = e2e_raw("PATCH", e2e_todo_path(id), u.token, noops[i]);
        E2E_STATUS(r, 200);
        EXPECT_JSON_EQ(r->json, t, noops[i]);
        e2e_resp_free(r);
    }
    json_t *got = get_todo(&u, id);
    EXPECT_JSON_EQ(got, t, "no-op PATCHes changed the todo");
    json_decref(got);
    json_decref(t);
}

Test(todos, patch_null_title_or_completed_422_unchanged)
{
    struct e2e_user u;
    e2e_user_make(&u, "patchnull");
    json_t *t = e2e_todo_create(&u, json_pack("{s:s, s:s}", "title", "t", "description", "d"));
    const char *id = e2e_str(t, "id");
    struct {
        const char *body;
        const char *field;
    } cases[] = {
        {"{\"title\": null}", "title"},
        {"{\"completed\": null}", "completed"},
        {"{\"title\": \"\"}", "title"},
        {"{\"title\": 3}", "title"},
        {"{\"completed\": \"true\"}", "completed"},
        {"{\"description\": false}", "description"},
        {"{\"foo\": 1}", "foo"},
        {"{\"id\": \"00000000-0000-7000-8000-000000000000\"}", "id"},
        /* a valid change together with an invalid one applies neither */
        {"{\"title\": \"new\", \"completed\": null}", "completed"},
        {"{\"description\": \"new\", \"title\": null}", "title"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct e2e_resp *r = e2e_raw("PATCH", e2e_todo_path(id), u.token, cases[i].body);
        E2E_422_FIELDS(r, cases[i].field);
        e2e_resp_free(r);
    }
    char *t256 = e2e_repeat("x", 256);
    struct e2e_resp *r = e2e_jreq("PATCH", e2e_todo_path(id), u.token,
                                  json_pack("{s:s}", "title", t256));
    E2E_422_FIELDS(r, "title");
    e2e_resp_free(r);
    free(t256);
    const char *not_obj[] = {"[]", "\"x\"", "null", "7", NULL};
    for (int i = 0; not_obj[i]; i++) {
        r = e2e_raw("PATCH", e2e_todo_path(id), u.token, not_obj[i]);
        E2E_PROBLEM(r, 422);
        e2e_resp_free(r);
    }
    json_t *got = get_todo(&u, id);
    EXPECT_JSON_EQ(got, t, "a rejected PATCH changed the todo");
    json_decref(got);
    json_decref(t);
}

Test(todos, version_increments_by_one_per_change)
{
    struct e2e_user u;
    e2e_user_make(&u, "version");
    json_t *t = e2e_todo_new(&u, "v");
    const char *id = e2e_str(t, "id");
    for (int i = 2; i <= 6; i++) {
        char body[64];
        snprintf(body, sizeof(body), "{\"title\": \"v%d\"}", i);
        struct e2e_resp *r = e2e_raw("PATCH", e2e_todo_path(id), u.token, body);
        E2E_STATUS(r, 200);
        cr_assert_eq(e2e_int(r->json, "version"), i, "%s", e2e_excerpt(r));
        e2e_resp_free(r);
    }
    struct e2e_resp *r = e2e_jreq("PUT", e2e_todo_path(id), u.token,
                                  json_pack("{s:s}", "title", "v7"));
    E2E_STATUS(r, 200);
    cr_assert_eq(e2e_int(r->json, "version"), 7);
    e2e_resp_free(r);
    json_decref(t);
}

/* ---- If-Match ---- */

static json_t *todo_at_version2(const struct e2e_user *u)
{
    json_t *t = e2e_todo_create(u, json_pack("{s:s, s:s}", "title", "v1", "description", "d"));
    struct e2e_resp *r = e2e_raw("PATCH", e2e_todo_path(e2e_str(t, "id")), u->token,
                                 "{\"title\": \"v2\"}");
    E2E_STATUS(r, 200);
    cr_assert_eq(e2e_int(r->json, "version"), 2);
    json_t *t2 = json_incref(r->json);
    e2e_resp_free(r);
    json_decref(t);
    return t2;
}

Test(todos, if_match_put)
{
    struct e2e_user u;
    e2e_user_make(&u, "ifmput");
    json_t *t = todo_at_version2(&u);
    const char *id = e2e_str(t, "id");
    struct e2e_resp *r = with_header("PUT", e2e_todo_path(id), u.token, "application/json",
                                     "{\"title\": \"stale\"}", "If-Match: \"1\"");
    E2E_PROBLEM(r, 412);
    e2e_resp_free(r);
    json_t *got = get_todo(&u, id);
    EXPECT_JSON_EQ(got, t, "a 412 PUT changed the todo");
    json_decref(got);
    r = with_header("PUT", e2e_todo_path(id), u.token, "application/json",
                    "{\"title\": \"fresh\"}", "If-Match: \"2\"");
    E2E_STATUS(r, 200);
    cr_assert_str_eq(e2e_str(r->json, "title"), "fresh");
    cr_assert_eq(e2e_int(r->json, "version"), 3);
    e2e_resp_free(r);
    json_decref(t);
}

Test(todos, if_match_patch)
{
    struct e2e_user u;
    e2e_user_make(&u, "ifmpatch");
    json_t *t = todo_at_version2(&u);
    const char *id = e2e_str(t, "id");
    struct e2e_resp *r = with_header("PATCH", e2e_todo_path(id), u.token, "application/json",
                                     "{\"completed\": true}", "If-Match: \"1\"");
    E2E_PROBLEM(r, 412);
    e2e_resp_free(r);
    json_t *got = get_todo(&u, id);
    EXPECT_JSON_EQ(got, t, "a 412 PATCH changed the todo");
    json_decref(got);
    r = with_header("PATCH", e2e_todo_path(id), u.token, "application/merge-patch+json",
                    "{\"completed\": true}", "If-Match: \"2\"");
    E2E_STATUS(r, 200);
    cr_assert_eq(e2e_int(r->json, "version"), 3);
    e2e_resp_free(r);
    json_decref(t);
}

Test(todos, if_match_delete)
{
    struct e2e_user u;
    e2e_user_make(&u, "ifmdel");
    json_t *t = todo_at_version2(&u);
    const char *id = e2e_str(t, "id");
    struct e2e_resp *r = with_header("DELETE", e2e_todo_path(id), u.token, NULL, NULL,
                                     "If-Match: \"1\"");
    E2E_PROBLEM(r, 412);
    e2e_resp_free(r);
    json_t *got = get_todo(&u, id);
    EXPECT_JSON_EQ(got, t, "a 412 DELETE changed the todo");
    json_decref(got);
    r = with_header("DELETE", e2e_todo_path(id), u.token, NULL, NULL, "If-Match: \"2\"");
    E2E_STATUS(r, 204);
    e2e_resp_free(r);
    r = e2e_get(e2e_todo_path(id), u.token);
    E2E_PROBLEM(r, 404);
    e2e_resp_free(r);
    json_decref(t);
}

/* ---- delete ---- */

Test(todos, delete_204_then_404)
{
    struct e2e_user u;
    e2e_user_make(&u, "delete");
    json_t *t = e2e_todo_new(&u, "bye");
    json_t *keep = e2e_todo_new(&u, "stay");
    const char *id = e2e_str(t, "id");
    struct e2e_resp *r = with_header("DELETE", e2e_todo_path(id), u.token, NULL, NULL, NULL);
    E2E_STATUS(r, 204);
    cr_assert_eq(r->len, 0, "204 with a body: %s", e2e_excerpt(r));
    e2e_resp_free(r);
    r = e2e_get(e2e_todo_path(id), u.token);
    E2E_PROBLEM(r, 404);
    e2e_resp_free(r);
    r = with_header("DELETE", e2e_todo_path(id), u.token, NULL, NULL, NULL);
    E2E_PROBLEM(r, 404);
    e2e_resp_free(r);
    r = e2e_raw("PATCH", e2e_todo_path(id), u.token, "{\"title\": \"zombie\"}");
    E2E_PROBLEM(r, 404);
    e2e_resp_free(r);
    r = e2e_get("/api/v1/todos", u.token);
    cr_assert_eq(e2e_int(r->json, "total"), 1, "%s", e2e_excerpt(r));
    e2e_resp_free(r);
    json_t *got = get_todo(&u, e2e_str(keep, "id"));
    json_decref(got);
    json_decref(keep);
    json_decref(t);
}

/* ---- ownership ---- */

static void expect_same_404(const char *what, struct e2e_resp *theirs, const char *their_id,
                            struct e2e_resp *missing, const char *missing_id)
{
    E2E_PROBLEM(theirs, 404);
    E2E_PROBLEM(missing, 404);
    char *a = e2e_problem_canonical(theirs, their_id);
    char *b = e2e_problem_canonical(missing, missing_id);
    cr_assert_str_eq(a, b, "%s: another user's todo must answer exactly like a missing one", what);
    free(a);
    free(b);
    const char *ha = e2e_header(theirs, "ETag"), *hb = e2e_header(missing, "ETag");
    cr_assert(!ha && !hb, "%s: a 404 with an ETag", what);
}

Test(todos, other_users_todo_is_404_like_missing)
{
    struct e2e_user a, b;
    e2e_user_make(&a, "alice");
    e2e_user_make(&b, "bob");
    json_t *t = e2e_todo_create(&a, json_pack("{s:s, s:s}", "title", "private", "description",
                                              "secret"));
    const char *id = e2e_str(t, "id");
    char missing[37];
    e2e_uuid_v4(missing);
    char mpath[100];
    snprintf(mpath, sizeof(mpath), "/api/v1/todos/%s", missing);

    struct e2e_resp *x = e2e_get(e2e_todo_path(id), b.token);
    struct e2e_resp *y = e2e_get(mpath, b.token);
    expect_same_404("GET", x, id, y, missing);
    e2e_resp_free(x);
    e2e_resp_free(y);

    x = e2e_raw("PATCH", e2e_todo_path(id), b.token, "{\"title\": \"mine now\"}");
    y = e2e_raw("PATCH", mpath, b.token, "{\"title\": \"mine now\"}");
    expect_same_404("PATCH", x, id, y, missing);
    e2e_resp_free(x);
    e2e_resp_free(y);

    x = with_header("DELETE", e2e_todo_path(id), b.token, NULL, NULL, NULL);
    y = with_header("DELETE", mpath, b.token, NULL, NULL, NULL);
    expect_same_404("DELETE", x, id, y, missing);
    e2e_resp_free(x);
    e2e_resp_free(y);

    /* with If-Match / If-None-Match too: still 404, never 412/304 */
    x = with_header("PATCH", e2e_todo_path(id), b.token, "application/json",
                    "{\"title\": \"x\"}", "If-Match: \"1\"");
    E2E_PROBLEM(x, 404);
    e2e_resp_free(x);
    x = with_header("GET", e2e_todo_path(id), b.token, NULL, NULL, "If-None-Match: \"1\"");
    E2E_PROBLEM(x, 404);
    e2e_resp_free(x);

    json_t *got = get_todo(&a, id);
    EXPECT_JSON_EQ(got, t, "bob's requests changed alice's todo");
    json_decref(got);
    json_decref(t);
}

/* ---- encoding ---- */

Test(todos, special_characters_round_trip)
{
    struct e2e_user u;
    e2e_user_make(&u, "escape");
    /* quotes, backslashes, control characters, U+2028, a 4-byte character
     * sent as a surrogate-pair escape, HTML-ish text, multibyte */
    const char *body = "{\"title\": \"q\\\"b\\\\s\\/n\\nt\\tc\\u0001\\u001f \\u2028 "
                       "\\ud83d\\ude00 </script> \\u00e9\xc3\xa9\","
                       " \"description\": \"line1\\r\\nline2 \\\\\\\"\"}";
    const char *want_title = "q\"b\\s/n\nt\tc\x01\x1f \xe2\x80\xa8 \xf0\x9f\x98\x80 </script> "
                             "\xc3\xa9\xc3\xa9";
    const char *want_desc = "line1\r\nline2 \\\"";
    struct e2e_resp *r = e2e_raw("POST", "/api/v1/todos", u.token, body);
    E2E_STATUS(r, 201);
    cr_assert(r->json, "the answer is not valid JSON: %s", e2e_excerpt(r));
    cr_assert_str_eq(e2e_str(r->json, "title"), want_title);
    cr_assert_str_eq(e2e_str(r->json, "description"), want_desc);
    const char *id = e2e_str(r->json, "id");
    json_t *got = get_todo(&u, id);
    cr_assert_str_eq(e2e_str(got, "title"), want_title);
    cr_assert_str_eq(e2e_str(got, "description"), want_desc);
    json_decref(got);
    struct e2e_resp *l = e2e_get("/api/v1/todos", u.token);
    E2E_STATUS(l, 200);
    cr_assert(l->json, "the list is not valid JSON: %s", e2e_excerpt(l));
    json_t *item = json_array_get(json_object_get(l->json, "items"), 0);
    cr_assert_str_eq(e2e_str(item, "title"), want_title);
    e2e_resp_free(l);
    e2e_resp_free(r);
}

Test(todos, write_answers_carry_a_matching_etag)
{
    struct e2e_user u;
    e2e_user_make(&u, "etagw");
    json_t *t = e2e_todo_new(&u, "e");
    const char *id = e2e_str(t, "id");
    struct e2e_resp *r = e2e_raw("PATCH", e2e_todo_path(id), u.token, "{\"title\": \"e2\"}");
    E2E_STATUS(r, 200);
    const char *etag = e2e_header(r, "ETag");
    cr_assert(!etag || strcmp(etag, "\"2\"") == 0, "PATCH answer ETag %s, version 2", etag);
    e2e_resp_free(r);
    r = e2e_raw("PUT", e2e_todo_path(id), u.token, "{\"title\": \"e3\"}");
    E2E_STATUS(r, 200);
    etag = e2e_header(r, "ETag");
    cr_assert(!etag || strcmp(etag, "\"3\"") == 0, "PUT answer ETag %s, version 3", etag);
    e2e_resp_free(r);
    json_decref(t);
}
