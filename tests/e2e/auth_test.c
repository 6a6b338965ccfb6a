/*
 * e2e: accounts and tokens — /api/v1/auth/register, /login, /token, /me.
 */
#include <string.h>
#include <time.h>

#include "harness.h"

static struct e2e_resp *register_user(const char *email, const char *password)
{
    return e2e_jreq("POST", "/api/v1/auth/register", NULL,
                    json_pack("{s:s, s:s}", "email", email, "password", password));
}

static void expect_user_body(const struct e2e_resp *r, const char *email, const char *name)
{
    const json_t *u = r->json;
    cr_assert(json_is_object(u), "%s: not an object: %s", r->what, e2e_excerpt(r));
    cr_assert_eq(json_object_size(u), 4,
                 "%s: user must be exactly {id, email, name, created_at}: %s", r->what,
                 e2e_excerpt(r));
    cr_assert(e2e_is_uuid(e2e_str(u, "id")), "%s: id: %s", r->what, e2e_excerpt(r));
    cr_assert_str_eq(e2e_str(u, "email") ? e2e_str(u, "email") : "(none)", email, "%s: %s",
                     r->what, e2e_excerpt(r));
    json_t *n = json_object_get(u, "name");
    if (name)
        cr_assert(json_is_string(n) && strcmp(json_string_value(n), name) == 0,
                  "%s: name should be '%s': %s", r->what, name, e2e_excerpt(r));
    else
        cr_assert(json_is_null(n), "%s: name should be null: %s", r->what, e2e_excerpt(r));
    int64_t created = e2e_parse_ms(e2e_str(u, "created_at"));
    cr_assert(created > 0, "%s: created_at not RFC 3339 with ms and Z: %s", r->what,
              e2e_excerpt(r));
    cr_assert(llabs((long long)(created - e2e_now_ms())) < 120000,
              "%s: created_at far from now: %s", r->what, e2e_excerpt(r));
    cr_assert(!strstr(r->body, "password") && !strstr(r->body, "$argon2"),
              "%s: the response leaks password material: %s", r->what, e2e_excerpt(r));
    const char *ct = e2e_header(r, "Content-Type");
    cr_assert(ct && strncmp(ct, "application/json", 16) == 0, "%s: Content-Type %s", r->what,
              ct ? ct : "(none)");
}

/* ---- register ---- */

Test(auth, register_201_normalises_email)
{
    char email[192], messy[220];
    e2e_unique_email(email, sizeof(email), "norm");
    /* "  MiXeD...@E2E.EXAMPLE.COM  " */
    snprintf(messy, sizeof(messy), "  %s  ", email);
    for (char *p = messy; *p; p++) {
        if ((p - messy) % 2 == 0 && *p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    }
    struct e2e_resp *r = e2e_jreq("POST", "/api/v1/auth/register", NULL,
                                  json_pack("{s:s, s:s, s:s}", "email", messy, "password",
                                            "correct horse", "name", "Ada Lovelace"));
    E2E_STATUS(r, 201);
    expect_user_body(r, email, "Ada Lovelace");
    e2e_resp_free(r);
}

Test(auth, register_duplicate_409_any_case)
{
    char email[192], upper[220];
    e2e_unique_email(email, sizeof(email), "dup");
    struct e2e_resp *r = register_user(email, "password-1");
    E2E_STATUS(r, 201);
    e2e_resp_free(r);

    r = register_user(email, "password-2");
    E2E_PROBLEM(r, 409);
    e2e_resp_free(r);

    snprintf(upper, sizeof(upper), " %s ", email);
    for (char *p = upper; *p; p++)
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    r = register_user(upper, "password-3");
    E2E_PROBLEM(r, 409);
    e2e_resp_free(r);
}

Test(auth, register_invalid_emails_422)
{
    char hex[17];
    e2e_random_hex(hex, 16);
    char at2[80], nodom[80], noloc[80], spaced[80];
    snprintf(at2, sizeof(at2), "a-%s@b@example.com", hex);
    snprintf(nodom, sizeof(nodom), "nodomain-%s@", hex);
    snprintf(noloc, sizeof(noloc), "@%s.example.com", hex);
    snprintf(spaced, sizeof(spaced), "   ");
    const char *bad[] = {"", "plainaddress", at2, nodom, noloc, spaced, "@", NULL};
    for (int i = 0; bad[i]; i++) {
        struct e2e_resp *r = register_user(bad[i], "password-ok");
        E2E_422_FIELDS(r, "email");
        e2e_resp_free(r);
    }
}

Test(auth, register_email_length_limit)
{
    /* 255 characters: rejected; 254: accepted. */
    char hex[17];
    e2e_random_hex(hex, 16);
    const char *domain = "@e2e.example.com";
    size_t local255 = 255 - strlen(domain);
    char *local = e2e_repeat("x", local255);
    memcpy(local, hex, 16);
    char email[300];
    snprintf(email, sizeof(email), "%s%s", local, domain);
    cr_assert_eq(strlen(email), 255);
    struct e2e_resp *r = register_user(email, "password-ok");
    E2E_422_FIELDS(r, "email");
    e2e_resp_free(r);

    snprintf(email, sizeof(email), "%s%s", local + 1, domain);
    cr_assert_eq(strlen(email), 254);
    r = register_user(email, "password-ok");
    E2E_STATUS(r, 201);
    e2e_resp_free(r);
    free(local);
}

Test(auth, register_password_out_of_range_422)
{
    char email[192];
    e2e_unique_email(email, sizeof(email), "pwbad");
    char *p7 = e2e_repeat("a", 7), *p129 = e2e_repeat("a", 129);
    /* 7 characters in 21 bytes, 129 characters in 258 bytes: characters count. */
    char *m7 = e2e_repeat("\xe2\x82\xac", 7), *m129 = e2e_repeat("\xc3\xa9", 129);
    const char *bad[] = {"", p7, p129, m7, m129, NULL};
    for (int i = 0; bad[i]; i++) {
        struct e2e_resp *r = register_user(email, bad[i]);
        E2E_422_FIELDS(r, "password");
        e2e_resp_free(r);
    }
    /* none of them created the account */
    struct e2e_resp *r = register_user(email, "a-valid-password");
    E2E_STATUS(r, 201);
    e2e_resp_free(r);
    free(p7);
    free(p129);
    free(m7);
    free(m129);
}

Test(auth, register_password_bounds_accepted, .timeout = 60)
{
    char *p8 = e2e_repeat("b", 8), *p128 = e2e_repeat("c", 128);
    /* 8 characters in 16 bytes; 128 characters in 256 bytes (> 128 bytes). */
    char *m8 = e2e_repeat("\xc3\xa9", 8), *m128 = e2e_repeat("\xc3\xa9", 128);
    const char *good[] = {p8, p128, m8, m128, NULL};
    for (int i = 0; good[i]; i++) {
        char email[192];
        e2e_unique_email(email, sizeof(email), "pwok");
        struct e2e_resp *r = register_user(email, good[i]);
        E2E_STATUS(r, 201);
        e2e_resp_free(r);
        if (i == 3) {
            /* and the multibyte password logs in */
            r = e2e_login(NULL, email, good[i]);
            E2E_STATUS(r, 200);
            e2e_resp_free(r);
        }
    }
    free(p8);
    free(p128);
    free(m8);
    free(m128);
}

Test(auth, register_missing_and_wrong_types_422)
{
    struct e2e_resp *r = e2e_raw("POST", "/api/v1/auth/register", NULL, "{}");
    E2E_422_FIELDS(r, "email", "password");
    e2e_resp_free(r);

    r = e2e_raw("POST", "/api/v1/auth/register", NULL,
                "{\"email\": 5, \"password\": true, \"name\": 7}");
    E2E_422_FIELDS(r, "email", "password", "name");
    e2e_resp_free(r);

    char email[192];
    e2e_unique_email(email, sizeof(email), "unk");
    r = e2e_jreq("POST", "/api/v1/auth/register", NULL,
                 json_pack("{s:s, s:s, s:b}", "email", email, "password", "password-ok",
                           "is_admin", 1));
    E2E_422_FIELDS(r, "is_admin");
    e2e_resp_free(r);
}

/* ---- login ---- */

Test(auth, login_200_token_shape)
{
    struct e2e_user u;
    char email[192];
    e2e_unique_email(email, sizeof(email), "login");
    struct e2e_resp *r = register_user(email, "login-password");
    E2E_STATUS(r, 201);
    snprintf(u.id, sizeof(u.id), "%s", e2e_str(r->json, "id"));
    e2e_resp_free(r);

    long long before = (long long)time(NULL);
    r = e2e_login(NULL, email, "login-password");
    E2E_STATUS(r, 200);
    const char *ct = e2e_header(r, "Content-Type");
    cr_assert(ct && strncmp(ct, "application/json", 16) == 0, "Content-Type %s", ct ? ct : "-");
    cr_assert_eq(json_object_size(r->json), 3,
                 "login body must be {access_token, token_type, expires_in}: %s", e2e_excerpt(r));
    cr_assert_str_eq(e2e_str(r->json, "token_type") ? e2e_str(r->json, "token_type") : "-",
                     "bearer");
    cr_assert_eq(e2e_int(r->json, "expires_in"), E2E_EXPIRE_MINUTES * 60, "%s", e2e_excerpt(r));
    const char *tok = e2e_str(r->json, "access_token");
    cr_assert(tok, "%s", e2e_excerpt(r));

    cr_assert(e2e_jwt_verify(tok), "token is not HS256-signed with SECRET_KEY: %s", tok);
    json_t *pl = e2e_jwt_payload(tok);
    cr_assert(pl, "token payload is not JSON: %s", tok);
    cr_assert_str_eq(e2e_str(pl, "sub") ? e2e_str(pl, "sub") : "-", u.id);
    cr_assert_str_eq(e2e_str(pl, "email") ? e2e_str(pl, "email") : "-", email);
    long long iat = e2e_int(pl, "iat"), exp = e2e_int(pl, "exp");
    cr_assert(iat >= before - 5 && iat <= before + 60, "iat %lld vs now %lld", iat, before);
    cr_assert_eq(exp - iat, E2E_EXPIRE_MINUTES * 60, "exp - iat = %lld", exp - iat);
    json_decref(pl);
    e2e_resp_free(r);
}

Test(auth, login_email_is_normalised)
{
    struct e2e_user u;
    e2e_user_make(&u, "lnorm");
    char upper[220];
    snprintf(upper, sizeof(upper), "  %s ", u.email);
    for (char *p = upper; *p; p++)
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    struct e2e_resp *r = e2e_login(NULL, upper, u.password);
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
}

Test(auth, login_wrong_password_and_unknown_email_identical_401)
{
    struct e2e_user u;
    e2e_user_make(&u, "l401");
    struct e2e_resp *a = e2e_login(NULL, u.email, "not-the-password");
    E2E_PROBLEM(a, 401);
    char other[192];
    e2e_unique_email(other, sizeof(other), "nobody");
    struct e2e_resp *b = e2e_login(NULL, other, "not-the-password");
    E2E_PROBLEM(b, 401);
    char *ca = e2e_problem_canonical(a, NULL), *cb = e2e_problem_canonical(b, NULL);
    cr_assert_str_eq(ca, cb, "wrong password and unknown email must answer the same 401");
    free(ca);
    free(cb);
    const char *wa = e2e_header(a, "WWW-Authenticate"), *wb = e2e_header(b, "WWW-Authenticate");
    cr_assert((wa == NULL) == (wb == NULL) && (!wa || strcmp(wa, wb) == 0),
              "WWW-Authenticate differs between the two 401s");
    e2e_resp_free(a);
    e2e_resp_free(b);
}

Test(auth, login_bad_body_422)
{
    struct e2e_resp *r = e2e_raw("POST", "/api/v1/auth/login", NULL, "{}");
    E2E_422_FIELDS(r, "email", "password");
    e2e_resp_free(r);
    r = e2e_raw("POST", "/api/v1/auth/login", NULL, "{\"email\": 1, \"password\": \"x\"}");
    E2E_422_FIELDS(r, "email");
    e2e_resp_free(r);
}

/* ---- /auth/token (OAuth2 password form) ---- */

static struct e2e_resp *token_form(const char *body)
{
    struct e2e_req rq = {.method = "POST", .path = "/api/v1/auth/token",
                         .ctype = "application/x-www-form-urlencoded", .body = body};
    return e2e_send(&rq);
}

Test(auth, token_form_200_same_answer)
{
    struct e2e_user u;
    e2e_user_make(&u, "form");
    char *ue = e2e_urlencode(u.email), *up = e2e_urlencode(u.password);
    char body[600];
    snprintf(body, sizeof(body), "grant_type=password&username=%s&password=%s&scope=", ue, up);
    struct e2e_resp *r = token_form(body);
    E2E_STATUS(r, 200);
    cr_assert_str_eq(e2e_str(r->json, "token_type") ? e2e_str(r->json, "token_type") : "-",
                     "bearer");
    cr_assert_eq(e2e_int(r->json, "expires_in"), E2E_EXPIRE_MINUTES * 60);
    const char *tok = e2e_str(r->json, "access_token");
    cr_assert(tok && e2e_jwt_verify(tok), "%s", e2e_excerpt(r));
    struct e2e_resp *me = e2e_get("/api/v1/auth/me", tok);
    E2E_STATUS(me, 200);
    cr_assert_str_eq(e2e_str(me->json, "id"), u.id);
    e2e_resp_free(me);
    e2e_resp_free(r);

    /* a wrong password answers exactly like the JSON login */
    snprintf(body, sizeof(body), "username=%s&password=wrong-password&grant_type=password", ue);
    r = token_form(body);
    E2E_PROBLEM(r, 401);
    struct e2e_resp *j = e2e_login(NULL, u.email, "wrong-password");
    E2E_PROBLEM(j, 401);
    char *cr = e2e_problem_canonical(r, NULL), *cj = e2e_problem_canonical(j, NULL);
    cr_assert_str_eq(cr, cj, "form and JSON login 401 bodies differ");
    free(cr);
    free(cj);
    e2e_resp_free(j);
    e2e_resp_free(r);
    free(ue);
    free(up);
}

Test(auth, token_form_missing_fields_422)
{
    struct e2e_resp *r = token_form("grant_type=password&password=whatever1");
    E2E_422_FIELDS(r, "username");
    e2e_resp_free(r);
    r = token_form("grant_type=password&username=someone%40example.com");
    E2E_422_FIELDS(r, "password");
    e2e_resp_free(r);
}

/* ---- /auth/me and token checking ---- */

Test(auth, me_200_current_user)
{
    char email[192];
    e2e_unique_email(email, sizeof(email), "me");
    struct e2e_resp *reg = register_user(email, "me-password");
    E2E_STATUS(reg, 201);
    expect_user_body(reg, email, NULL);
    struct e2e_resp *l = e2e_login(NULL, email, "me-password");
    E2E_STATUS(l, 200);
    struct e2e_resp *me = e2e_get("/api/v1/auth/me", e2e_str(l->json, "access_token"));
    E2E_STATUS(me, 200);
    expect_user_body(me, email, NULL);
    cr_assert(json_equal(me->json, reg->json), "/auth/me differs from the registration answer:"
              "\n%s\nvs\n%s", me->body, reg->body);
    e2e_resp_free(me);
    e2e_resp_free(l);
    e2e_resp_free(reg);
}

Test(auth, forged_token_with_the_key_is_accepted)
{
    /* Control for the rejection tests below: the harness forges tokens the
     * way the server signs them, so a rejection means the server caught the
     * defect we planted, not that our forging is wrong. */
    struct e2e_user u;
    e2e_user_make(&u, "forge");
    char *tok = e2e_jwt_forge(u.id, u.email, 600);
    struct e2e_resp *r = e2e_get("/api/v1/auth/me", tok);
    E2E_STATUS(r, 200);
    cr_assert_str_eq(e2e_str(r->json, "id"), u.id);
    e2e_resp_free(r);
    free(tok);
}

static void expect_rejected_header(const char *auth_header)
{
    struct e2e_req rq = {.method = "GET", .path = "/api/v1/auth/me", .hdr = {auth_header}};
    struct e2e_resp *r = e2e_send(&rq);
    E2E_401_BEARER(r);
    e2e_resp_free(r);
}

static void expect_rejected_token(const char *tok)
{
    struct e2e_resp *r = e2e_get("/api/v1/auth/me", tok);
    E2E_401_BEARER(r);
    e2e_resp_free(r);
    /* and on a todo route too */
    r = e2e_get("/api/v1/todos", tok);
    E2E_401_BEARER(r);
    e2e_resp_free(r);
}

Test(auth, missing_token_401)
{
    struct e2e_resp *r = e2e_get("/api/v1/auth/me", NULL);
    E2E_401_BEARER(r);
    e2e_resp_free(r);
}

Test(auth, malformed_authorization_401)
{
    expect_rejected_header("Authorization: Bearer");
    expect_rejected_header("Authorization: Bearer ");
    expect_rejected_header("Authorization: Bearer not-a-jwt");
    expect_rejected_header("Authorization: Bearer a.b");
    expect_rejected_header("Authorization: Bearer a.b.c");
    expect_rejected_header("Authorization: Bearer ....");
    expect_rejected_header("Authorization: Basic dXNlcjpwYXNzd29yZA==");
    expect_rejected_header("Authorization: Token abc");
}

Test(auth, bad_signature_401)
{
    struct e2e_user u;
    e2e_user_make(&u, "badsig");
    char payload[400];
    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"email\":\"%s\",\"iat\":%ld,\"exp\":%ld}",
             u.id, u.email, (long)time(NULL), (long)time(NULL) + 600);
    const char *other = "another-secret-key-of-at-least-32-bytes!!";
    char *tok = e2e_jwt_sign("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, other, strlen(other));
    expect_rejected_token(tok);
    free(tok);

    /* a real token whose signature has one character changed */
    char *bad = strdup(u.token);
    char *last = bad + strlen(bad) - 2;
    *last = *last == 'A' ? 'B' : 'A';
    expect_rejected_token(bad);
    free(bad);
}

Test(auth, tampered_payload_401)
{
    struct e2e_user a, b;
    e2e_user_make(&a, "tampa");
    e2e_user_make(&b, "tampb");
    /* b's signature on a payload claiming to be a */
    const char *d1 = strchr(b.token, '.');
    const char *d2 = strrchr(b.token, '.');
    char *forged_for_a = e2e_jwt_forge(a.id, a.email, 600);
    const char *fd1 = strchr(forged_for_a, '.');
    const char *fd2 = strrchr(forged_for_a, '.');
    char tok[4096];
    snprintf(tok, sizeof(tok), "%.*s.%.*s%s", (int)(d1 - b.token), b.token, (int)(fd2 - fd1 - 1),
             fd1 + 1, d2);
    expect_rejected_token(tok);
    free(forged_for_a);
}

Test(auth, expired_token_401)
{
    struct e2e_user u;
    e2e_user_make(&u, "expired");
    char *tok = e2e_jwt_forge(u.id, u.email, -120);
    expect_rejected_token(tok);
    free(tok);
}

Test(auth, alg_none_and_other_algs_401)
{
    struct e2e_user u;
    e2e_user_make(&u, "algnone");
    char payload[400];
    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"email\":\"%s\",\"iat\":%ld,\"exp\":%ld}",
             u.id, u.email, (long)time(NULL), (long)time(NULL) + 600);
    char *none = e2e_jwt_sign("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, NULL, 0);
    expect_rejected_token(none);
    /* alg none but a valid HMAC appended anyway */
    char *none_signed = e2e_jwt_sign("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload,
                                     E2E_SECRET_KEY, strlen(E2E_SECRET_KEY));
    expect_rejected_token(none_signed);
    /* header claims HS512 (signature is HS256 with the right key) */
    char *hs512 = e2e_jwt_sign("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", payload, E2E_SECRET_KEY,
                               strlen(E2E_SECRET_KEY));
    expect_rejected_token(hs512);
    free(none);
    free(none_signed);
    free(hs512);
}

Test(auth, token_for_unknown_or_invalid_sub_401)
{
    /* A well-signed token for a user that does not exist: /auth/me cannot
     * answer with a user. (Todo routes need not look the user up: such a
     * token can only come from someone holding SECRET_KEY, and it sees an
     * empty list.) */
    char id[37];
    e2e_uuid_v4(id);
    char *tok = e2e_jwt_forge(id, "ghost@e2e.example.com", 600);
    struct e2e_resp *r = e2e_get("/api/v1/auth/me", tok);
    E2E_401_BEARER(r);
    e2e_resp_free(r);
    free(tok);
    tok = e2e_jwt_forge("not-a-uuid", "ghost@e2e.example.com", 600);
    expect_rejected_token(tok);
    free(tok);
}

Test(auth, todo_routes_require_a_token)
{
    char id[37];
    e2e_uuid_v4(id);
    char path[100];
    snprintf(path, sizeof(path), "/api/v1/todos/%s", id);
    struct {
        const char *method, *path, *body;
    } routes[] = {
        {"GET", "/api/v1/todos", NULL},     {"POST", "/api/v1/todos", "{\"title\":\"x\"}"},
        {"GET", path, NULL},                {"PUT", path, "{\"title\":\"x\"}"},
        {"PATCH", path, "{\"title\":\"x\"}"}, {"DELETE", path, NULL},
        {"GET", "/api/v1/auth/me", NULL},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        struct e2e_req rq = {.method = routes[i].method, .path = routes[i].path,
                             .body = routes[i].body,
                             .ctype = routes[i].body ? "application/json" : NULL};
        struct e2e_resp *r = e2e_send(&rq);
        E2E_401_BEARER(r);
        e2e_resp_free(r);
    }
}

Test(auth, password_is_not_trimmed, .timeout = 60)
{
    char email[192];
    e2e_unique_email(email, sizeof(email), "pwspace");
    struct e2e_resp *r = register_user(email, "  spaced pass  ");
    E2E_STATUS(r, 201);
    e2e_resp_free(r);
    r = e2e_login(NULL, email, "spaced pass");
    E2E_PROBLEM(r, 401);
    e2e_resp_free(r);
    r = e2e_login(NULL, email, "  spaced pass  ");
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
}

Test(auth, bearer_scheme_is_case_insensitive)
{
    /* RFC 9110 11.1: the authentication scheme is a case-insensitive token */
    struct e2e_user u;
    e2e_user_make(&u, "bearercase");
    char hdr[2200];
    snprintf(hdr, sizeof(hdr), "Authorization: bearer %s", u.token);
    struct e2e_req rq = {.method = "GET", .path = "/api/v1/auth/me", .hdr = {hdr}};
    struct e2e_resp *r = e2e_send(&rq);
    E2E_STATUS(r, 200);
    e2e_resp_free(r);
}

Test(auth, register_email_is_trimmed_before_the_length_check)
{
    char hex[17];
    e2e_random_hex(hex, 16);
    const char *domain = "@e2e.example.com";
    char *local = e2e_repeat("y", 254 - strlen(domain));
    memcpy(local, hex, 16);
    char email[300];
    snprintf(email, sizeof(email), "   %s%s   ", local, domain);
    struct e2e_resp *r = register_user(email, "password-ok");
    E2E_STATUS(r, 201);
    cr_assert_eq(strlen(e2e_str(r->json, "email")), 254);
    e2e_resp_free(r);
    free(local);
}
