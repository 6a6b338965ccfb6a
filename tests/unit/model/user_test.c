#include <criterion/criterion.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "model/user.h"
#include "util/buf.h"

static const char *error_for(const struct field_errors *e, const char *field)
{
    for (size_t i = 0; i < e->count; i++)
        if (strcmp(e->items[i].field, field) == 0)
            return e->items[i].message;
    return NULL;
}

static int reg(const char *body, struct user_registration *r, struct field_errors *errs)
{
    struct json_error jerr;
    return user_registration_decode(body, strlen(body), r, &jerr, errs);
}

static int creds_json(const char *body, struct user_credentials *c, struct field_errors *errs)
{
    struct json_error jerr;
    return user_credentials_decode_json(body, strlen(body), c, &jerr, errs);
}

static int creds_form(const char *body, struct user_credentials *c, struct field_errors *errs)
{
    return user_credentials_decode_form(body, strlen(body), c, errs);
}

/* ---- email normalisation ------------------------------------------------ */

static void check_email(const char *in, const char *expected)
{
    char *out = user_email_normalize(in, strlen(in));
    if (!expected) {
        cr_expect_null(out, "\"%s\" accepted as \"%s\"", in, out ? out : "");
    } else {
        cr_assert_not_null(out, "\"%s\" rejected", in);
        cr_expect_str_eq(out, expected);
    }
    free(out);
}

Test(user_email, normalises)
{
    check_email("alice@example.com", "alice@example.com");
    check_email("  Alice@Example.COM \n", "alice@example.com");
    check_email("\xc2\xa0" "bob@x.io\t", "bob@x.io");
    check_email("a@b", "a@b");
    check_email("J\xc3\x9cRGEN@b\xc3\xbc" "cher.de", "j\xc3\x9crgen@b\xc3\xbc" "cher.de");
}

Test(user_email, rejects)
{
    check_email("", NULL);
    check_email("   ", NULL);
    check_email("alice", NULL);
    check_email("@example.com", NULL);
    check_email("alice@", NULL);
    check_email("a@b@c", NULL);
    check_email("al ice@example.com", NULL);
    check_email("alice@exa\tmple.com", NULL);
    check_email("alice@example.com\x01", NULL);
    check_email("ali\x7f" "ce@example.com", NULL);
    check_email("alice@ex\xc2\xa0" "ample.com", NULL); /* NBSP inside */
    check_email("alice@ex\xff.com", NULL);             /* not UTF-8 */
    cr_expect_null(user_email_normalize("a\0b@c", 5));
}

Test(user_email, length_limit_in_bytes_after_trim)
{
    char s[300];
    memset(s, 'a', sizeof(s));
    memcpy(s + 250, "@b.io", 5); /* 255 bytes */
    cr_expect_null(user_email_normalize(s, 255));
    memcpy(s + 249, "@b.io", 5); /* 254 bytes */
    char *out = user_email_normalize(s, 254);
    cr_assert_not_null(out);
    cr_expect_eq(strlen(out), 254);
    free(out);
    /* Surrounding spaces do not count. */
    char padded[300];
    padded[0] = ' ';
    memcpy(padded + 1, s, 254);
    padded[255] = ' ';
    out = user_email_normalize(padded, 256);
    cr_assert_not_null(out);
    free(out);
}

/* ---- registration --------------------------------------------------------- */

Test(user_registration, ok_without_name)
{
    struct user_registration r;
    struct field_errors errs;
    cr_assert_eq(reg("{\"email\":\" Bob@Example.com \",\"password\":\"correct horse\"}", &r, &errs),
                 0);
    cr_expect_str_eq(r.email, "bob@example.com");
    cr_expect_str_eq(r.password, "correct horse");
    cr_expect_null(r.name);
    user_registration_free(&r);
    cr_expect_null(r.password);
    cr_expect_null(r.email);
}

Test(user_registration, ok_with_name_and_null_name)
{
    struct user_registration r;
    struct field_errors errs;
    cr_assert_eq(
        reg("{\"email\":\"a@b.c\",\"password\":\"12345678\",\"name\":\" Ann \"}", &r, &errs), 0);
    cr_expect_str_eq(r.name, " Ann ");
    user_registration_free(&r);
    cr_assert_eq(reg("{\"email\":\"a@b.c\",\"password\":\"12345678\",\"name\":null}", &r, &errs),
                 0);
    cr_expect_null(r.name);
    user_registration_free(&r);
}

Test(user_registration, password_length_in_characters)
{
    struct user_registration r;
    struct field_errors errs;
    /* 8 characters of 2 bytes each: OK; 7 × 'é' = 14 bytes: too short. */
    cr_expect_eq(reg("{\"email\":\"a@b.c\",\"password\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                     "\xc3\xa9\xc3\xa9\xc3\xa9\"}",
                     &r, &errs),
                 0);
    user_registration_free(&r);
    cr_expect_eq(reg("{\"email\":\"a@b.c\",\"password\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                     "\xc3\xa9\xc3\xa9\"}",
                     &r, &errs),
                 TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "password"), "must be 8 to 128 characters");
    cr_expect_eq(reg("{\"email\":\"a@b.c\",\"password\":\"1234567\"}", &r, &errs), TODO_EINVALID);

    char body[512];
    char pw[130];
    memset(pw, 'p', 128);
    pw[128] = '\0';
    snprintf(body, sizeof(body), "{\"email\":\"a@b.c\",\"password\":\"%s\"}", pw);
    cr_expect_eq(reg(body, &r, &errs), 0);
    user_registration_free(&r);
    pw[128] = 'p';
    pw[129] = '\0';
    snprintf(body, sizeof(body), "{\"email\":\"a@b.c\",\"password\":\"%s\"}", pw);
    cr_expect_eq(reg(body, &r, &errs), TODO_EINVALID);
    cr_expect_not_null(error_for(&errs, "password"));
}

Test(user_registration, all_errors_collected)
{
    struct user_registration r;
    struct field_errors errs;
    cr_assert_eq(reg("{\"email\":\"nope\",\"password\":5,\"name\":[],\"admin\":true}", &r, &errs),
                 TODO_EINVALID);
    cr_expect_eq(errs.count, 4);
    cr_expect_str_eq(error_for(&errs, "email"), "must be a valid email address");
    cr_expect_str_eq(error_for(&errs, "password"), "must be a string");
    cr_expect_str_eq(error_for(&errs, "name"), "must be a string or null");
    cr_expect_str_eq(error_for(&errs, "admin"), "unknown field");
    cr_expect_null(r.email);
    cr_expect_null(r.password);
}

Test(user_registration, required_fields)
{
    struct user_registration r;
    struct field_errors errs;
    cr_assert_eq(reg("{}", &r, &errs), TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "email"), "is required");
    cr_expect_str_eq(error_for(&errs, "password"), "is required");
    cr_expect_null(error_for(&errs, "name"));
    cr_assert_eq(reg("{\"email\":null,\"password\":null}", &r, &errs), TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "email"), "must be a string");
    cr_expect_str_eq(error_for(&errs, "password"), "must be a string");
}

Test(user_registration, long_email_and_name)
{
    struct user_registration r;
    struct field_errors errs;
    char body[2048], local[300], name[300];
    memset(local, 'a', 250);
    local[250] = '\0';
    snprintf(body, sizeof(body), "{\"email\":\"%s@b.io\",\"password\":\"12345678\"}", local);
    cr_expect_eq(reg(body, &r, &errs), TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "email"), "must be at most 254 characters");

    memset(name, 'n', 256);
    name[256] = '\0';
    snprintf(body, sizeof(body), "{\"email\":\"a@b.io\",\"password\":\"12345678\",\"name\":\"%s\"}",
             name);
    cr_expect_eq(reg(body, &r, &errs), TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "name"), "must be at most 255 characters");
    name[255] = '\0';
    snprintf(body, sizeof(body), "{\"email\":\"a@b.io\",\"password\":\"12345678\",\"name\":\"%s\"}",
             name);
    cr_expect_eq(reg(body, &r, &errs), 0);
    user_registration_free(&r);
}

Test(user_registration, malformed_and_non_object)
{
    struct user_registration r;
    struct field_errors errs;
    struct json_error jerr = {0};
    cr_expect_eq(user_registration_decode("{\"email\":", 9, &r, &jerr, &errs), TODO_EJSON);
    cr_expect_eq(jerr.position, 9);
    cr_expect_eq(reg("[1]", &r, &errs), TODO_EINVALID);
    cr_expect_not_null(error_for(&errs, "body"));
}

Test(user_registration, free_accepts_null)
{
    user_registration_free(NULL);
    user_credentials_free(NULL);
}

/* ---- credentials (JSON) -------------------------------------------------- */

Test(user_credentials_json, normalised_not_validated)
{
    struct user_credentials c;
    struct field_errors errs;
    cr_assert_eq(creds_json("{\"email\":\"  NotAnEmail \",\"password\":\"x\"}", &c, &errs), 0);
    cr_expect_str_eq(c.email, "notanemail");
    cr_expect_str_eq(c.password, "x");
    user_credentials_free(&c);
    cr_expect_null(c.password);
}

Test(user_credentials_json, errors)
{
    struct user_credentials c;
    struct field_errors errs;
    cr_assert_eq(creds_json("{\"password\":1,\"name\":\"x\"}", &c, &errs), TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "email"), "is required");
    cr_expect_str_eq(error_for(&errs, "password"), "must be a string");
    cr_expect_str_eq(error_for(&errs, "name"), "unknown field");
    cr_expect_null(c.email);

    char body[3000];
    char big[1100];
    memset(big, 'x', 1025);
    big[1025] = '\0';
    snprintf(body, sizeof(body), "{\"email\":\"a@b\",\"password\":\"%s\"}", big);
    cr_expect_eq(creds_json(body, &c, &errs), TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "password"), "is too long");
    big[1024] = '\0';
    snprintf(body, sizeof(body), "{\"email\":\"a@b\",\"password\":\"%s\"}", big);
    cr_expect_eq(creds_json(body, &c, &errs), 0);
    user_credentials_free(&c);

    struct json_error jerr;
    cr_expect_eq(user_credentials_decode_json("nope", 4, &c, &jerr, &errs), TODO_EJSON);
}

/* ---- credentials (form) -------------------------------------------------- */

Test(user_credentials_form, username_and_password)
{
    struct user_credentials c;
    struct field_errors errs;
    cr_assert_eq(creds_form("username=Alice%40Example.com&password=p%40ss+word%21", &c, &errs), 0);
    cr_expect_str_eq(c.email, "alice@example.com");
    cr_expect_str_eq(c.password, "p@ss word!");
    user_credentials_free(&c);
}

Test(user_credentials_form, oauth_fields_ignored)
{
    struct user_credentials c;
    struct field_errors errs;
    cr_assert_eq(creds_form("grant_type=password&username=a%40b.c&password=secret12&scope=&"
                            "client_id=x&client_secret=%zz",
                            &c, &errs),
                 0);
    cr_expect_str_eq(c.email, "a@b.c");
    cr_expect_str_eq(c.password, "secret12");
    user_credentials_free(&c);
}

Test(user_credentials_form, errors)
{
    struct user_credentials c;
    struct field_errors errs;
    cr_assert_eq(creds_form("", &c, &errs), TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "username"), "is required");
    cr_expect_str_eq(error_for(&errs, "password"), "is required");

    cr_assert_eq(creds_form("username=a&password=b&foo=1", &c, &errs), TODO_EINVALID);
    cr_expect_eq(errs.count, 1);
    cr_expect_str_eq(error_for(&errs, "foo"), "unknown field");
    cr_expect_null(c.email);

    cr_assert_eq(creds_form("username=a&username=b&password=c", &c, &errs), TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "username"), "must not be repeated");

    cr_assert_eq(creds_form("username=a&password=%zz", &c, &errs), TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "password"), "has an invalid percent-encoding");

    cr_assert_eq(creds_form("username=a&password=%ff", &c, &errs), TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "password"), "must be valid UTF-8");

    cr_assert_eq(creds_form("username=a%00b&password=x", &c, &errs), TODO_EINVALID);
    cr_expect_str_eq(error_for(&errs, "username"), "must not contain NUL characters");

    /* An encoded field name is decoded before it is looked up. */
    cr_assert_eq(creds_form("user%6Eame=a&pass%77ord=x", &c, &errs), 0);
    cr_expect_str_eq(c.email, "a");
    user_credentials_free(&c);
}

/* ---- JSON output -------------------------------------------------------- */

Test(user_json, shape)
{
    struct user u = {
        .id = "0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7b",
        .email = "a@b.c",
        .password_hash = "$argon2id$secret",
        .name = NULL,
        .is_active = true,
        .created_at_ms = 1763709226123,
        .updated_at_ms = 1763709226999,
    };
    struct buf b;
    buf_init(&b, 4096);
    user_json_append(&b, &u);
    cr_expect_str_eq(b.data, "{\"id\":\"0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7b\",\"email\":\"a@b.c\","
                             "\"name\":null,\"created_at\":\"2025-11-21T07:13:46.123Z\"}");
    cr_expect_null(strstr(b.data, "argon2"));
    buf_reset(&b);
    u.name = "Ann \"the\" Admin";
    user_json_append(&b, &u);
    json_t *root = json_loadb(b.data, b.len, 0, NULL);
    cr_assert_not_null(root);
    cr_expect_str_eq(json_string_value(json_object_get(root, "name")), u.name);
    cr_expect_eq(json_object_size(root), 4);
    json_decref(root);
    buf_free(&b);
}
