/*
 * Fuzz target: the JSON account bodies, POST /auth/register through
 * user_registration_decode() and POST /auth/login through
 * user_credentials_decode_json(). A registration that decodes must satisfy
 * every rule of model/user.h, and user_json_append() of the user made from
 * it must parse back (jansson) to the same email and name.
 */
#include <stdbool.h>

#include <jansson.h>

#include "fuzz.h"
#include "model/user.h"
#include "util/buf.h"
#include "util/utf8.h"

#define USER_ID "0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7c"
#define CREDENTIAL_MAX 1024 /* bytes, model/user.h */

static bool json_str_is(json_t *v, const char *s)
{
    return json_is_string(v) && json_string_length(v) == strlen(s) &&
           memcmp(json_string_value(v), s, strlen(s)) == 0;
}

static void check_failure(int rc, size_t size, const struct json_error *jerr,
                          const struct field_errors *errs)
{
    FUZZ_CHECK(rc == TODO_EJSON || rc == TODO_EINVALID);
    if (rc == TODO_EJSON)
        FUZZ_CHECK(jerr->position <= size && memchr(jerr->text, '\0', sizeof(jerr->text)));
    else
        FUZZ_CHECK(errs->count > 0);
}

/* Normalised: what user_email_normalize() gives back unchanged. */
static void check_email(const char *email)
{
    size_t len = strlen(email);
    FUZZ_CHECK(len > 0 && len <= USER_EMAIL_MAX && utf8_valid(email, len));
    for (const char *c = email; *c; c++)
        FUZZ_CHECK(!(*c >= 'A' && *c <= 'Z'));
    const char *at = strchr(email, '@');
    FUZZ_CHECK(at && at > email && at[1] != '\0' && !strchr(at + 1, '@'));
    char *again = user_email_normalize(email, len);
    FUZZ_CHECK(again && strcmp(again, email) == 0);
    free(again);
}

static void check_user_json(const struct user_registration *r)
{
    struct user u = {USER_ID, r->email, "$argon2id$v=19$m=65536,t=2,p=1$x$y", r->name, true, 0, 0};
    struct buf b;
    json_error_t err;

    buf_init(&b, 1 << 20);
    user_json_append(&b, &u);
    FUZZ_CHECK(!b.overflow && b.data && utf8_valid(b.data, b.len));
    json_t *o = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &err);
    if (!o)
        fprintf(stderr, "invalid JSON (%s at %d): %s\n", err.text, err.position, b.data);
    FUZZ_CHECK(json_is_object(o));
    FUZZ_CHECK(json_str_is(json_object_get(o, "id"), USER_ID));
    FUZZ_CHECK(json_str_is(json_object_get(o, "email"), r->email));
    json_t *name = json_object_get(o, "name");
    FUZZ_CHECK(r->name ? json_str_is(name, r->name) : json_is_null(name));
    FUZZ_CHECK(json_object_size(o) == 4 && json_is_string(json_object_get(o, "created_at")));
    json_decref(o);
    buf_free(&b);
}

static void fuzz_registration(const char *body, size_t size)
{
    struct user_registration r;
    struct json_error jerr;
    struct field_errors errs;
    int rc = user_registration_decode(body, size, &r, &jerr, &errs);
    if (rc != 0) {
        check_failure(rc, size, &jerr, &errs);
        FUZZ_CHECK(!r.email && !r.password && !r.name);
        return;
    }
    FUZZ_CHECK(errs.count == 0 && r.email && r.password);
    check_email(r.email);
    size_t plen = strlen(r.password);
    FUZZ_CHECK(utf8_valid(r.password, plen));
    FUZZ_CHECK(utf8_count(r.password, plen) >= USER_PASSWORD_MIN &&
               utf8_count(r.password, plen) <= USER_PASSWORD_MAX);
    if (r.name)
        FUZZ_CHECK(utf8_valid(r.name, strlen(r.name)) &&
                   utf8_count(r.name, strlen(r.name)) <= USER_NAME_MAX);
    check_user_json(&r);
    user_registration_free(&r);
    FUZZ_CHECK(!r.email && !r.password && !r.name);
}

static void fuzz_credentials(const char *body, size_t size)
{
    struct user_credentials c;
    struct json_error jerr;
    struct field_errors errs;
    int rc = user_credentials_decode_json(body, size, &c, &jerr, &errs);
    if (rc != 0) {
        check_failure(rc, size, &jerr, &errs);
        FUZZ_CHECK(!c.email && !c.password);
        return;
    }
    FUZZ_CHECK(errs.count == 0 && c.email && c.password);
    FUZZ_CHECK(strlen(c.email) <= CREDENTIAL_MAX && strlen(c.password) <= CREDENTIAL_MAX);
    for (const char *p = c.email; *p; p++)
        FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'));
    user_credentials_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    fuzz_registration(body, size);
    fuzz_credentials(body, size);
    /* Also the normaliser on its own, on raw bytes (not just JSON strings). */
    char *email = user_email_normalize(body, size);
    if (email) {
        check_email(email);
        free(email);
    }
    return 0;
}
