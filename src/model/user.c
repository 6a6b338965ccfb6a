#include "model/user.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "model/decode.h"
#include "model/timefmt.h"
#include "util/buf.h"
#include "util/urlenc.h"
#include "util/utf8.h"
#include "util/xalloc.h"

/* Login input is not validated like registration input, only kept sane. */
#define CREDENTIAL_SANITY_MAX 1024 /* bytes */

static const char *const registration_fields[] = {"email", "password", "name", NULL};
static const char *const credential_fields[] = {"email", "password", NULL};
/* OAuth2 password-flow fields that /auth/token accepts and ignores. */
static const char *const form_ignored[] = {"grant_type", "scope", "client_id", "client_secret",
                                           NULL};

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

static void wipe_free(char *s)
{
    if (!s)
        return;
    sodium_memzero(s, strlen(s));
    free(s);
}

/* A new copy of s[0..len) with ASCII letters lower-cased. */
static char *lower_dup(const char *s, size_t len)
{
    char *out = xstrndup(s, len);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return out;
}

/* Trimmed and lower-cased copy of s[0..len) (credentials: no validation). */
static char *trim_lower(const char *s, size_t len)
{
    size_t start, end;
    utf8_trim(s, len, &start, &end);
    return lower_dup(s + start, end - start);
}

/* No control character, no whitespace, valid UTF-8; exactly one '@' with
 * something on both sides. */
static bool email_shape_ok(const char *s, size_t len)
{
    size_t at = len, ats = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_next(s + i, len - i, &cp);
        if (n == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || utf8_is_space(cp))
            return false;
        if (cp == '@') {
            at = i;
            ats++;
        }
        i += n;
    }
    return ats == 1 && at > 0 && at + 1 < len;
}

char *user_email_normalize(const char *in, size_t len)
{
    size_t start, end;
    utf8_trim(in, len, &start, &end);
    size_t n = end - start;
    if (n == 0 || n > USER_EMAIL_MAX || !email_shape_ok(in + start, n))
        return NULL;
    return lower_dup(in + start, n);
}

static void decode_email(json_t *root, struct user_registration *r, struct field_errors *errs)
{
    json_t *v = json_object_get(root, "email");
    if (!v) {
        field_errors_add(errs, "email", "is required");
        return;
    }
    if (!json_is_string(v)) {
        field_errors_add(errs, "email", "must be a string");
        return;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v), start, end;
    utf8_trim(s, len, &start, &end);
    if (end - start > USER_EMAIL_MAX) {
        field_errors_add(errs, "email", "must be at most %d characters", USER_EMAIL_MAX);
        return;
    }
    r->email = user_email_normalize(s, len);
    if (!r->email)
        field_errors_add(errs, "email", "must be a valid email address");
}

static void decode_password(json_t *root, struct user_registration *r, struct field_errors *errs)
{
    json_t *v = json_object_get(root, "password");
    if (!v) {
        field_errors_add(errs, "password", "is required");
        return;
    }
    if (!json_is_string(v)) {
        field_errors_add(errs, "password", "must be a string");
        return;
    }
    size_t len = json_string_length(v);
    size_t chars = utf8_count(json_string_value(v), len);
    if (chars < USER_PASSWORD_MIN || chars > USER_PASSWORD_MAX) {
        field_errors_add(errs, "password", "must be %d to %d characters", USER_PASSWORD_MIN,
                         USER_PASSWORD_MAX);
        return;
    }
    r->password = xstrndup(json_string_value(v), len);
}

static void decode_name(json_t *root, struct user_registration *r, struct field_errors *errs)
{
    json_t *v = json_object_get(root, "name");
    if (!v || json_is_null(v))
        return;
    if (!json_is_string(v)) {
        field_errors_add(errs, "name", "must be a string or null");
        return;
    }
    size_t len = json_string_length(v);
    if (utf8_count(json_string_value(v), len) > USER_NAME_MAX) {
        field_errors_add(errs, "name", "must be at most %d characters", USER_NAME_MAX);
        return;
    }
    r->name = xstrndup(json_string_value(v), len);
}

int user_registration_decode(const char *body, size_t len, struct user_registration *out,
                             struct json_error *jerr, struct field_errors *errs)
{
    struct user_registration r = {0};
    int rc;

    memset(out, 0, sizeof(*out));
    field_errors_init(errs);
    json_t *root = decode_object(body, len, jerr, errs, &rc);
    if (!root)
        return rc;
    decode_email(root, &r, errs);
    decode_password(root, &r, errs);
    decode_name(root, &r, errs);
    decode_unknown_fields(root, registration_fields, errs);
    json_decref(root);
    if (errs->count > 0) {
        user_registration_free(&r);
        return TODO_EINVALID;
    }
    *out = r;
    return 0;
}

void user_registration_free(struct user_registration *r)
{
    if (!r)
        return;
    free(r->email);
    wipe_free(r->password);
    free(r->name);
    memset(r, 0, sizeof(*r));
}

/* A required string of at most CREDENTIAL_SANITY_MAX bytes, or NULL with an
 * error on `field`. */
static const char *credential_string(json_t *root, const char *field, size_t *len,
                                     struct field_errors *errs)
{
    json_t *v = json_object_get(root, field);
    if (!v) {
        field_errors_add(errs, field, "is required");
        return NULL;
    }
    if (!json_is_string(v)) {
        field_errors_add(errs, field, "must be a string");
        return NULL;
    }
    *len = json_string_length(v);
    if (*len > CREDENTIAL_SANITY_MAX) {
        field_errors_add(errs, field, "is too long");
        return NULL;
    }
    return json_string_value(v);
}

int user_credentials_decode_json(const char *body, size_t len, struct user_credentials *out,
                                 struct json_error *jerr, struct field_errors *errs)
{
    struct user_credentials c = {0};
    size_t n = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    field_errors_init(errs);
    json_t *root = decode_object(body, len, jerr, errs, &rc);
    if (!root)
        return rc;
    const char *email = credential_string(root, "email", &n, errs);
    if (email)
        c.email = trim_lower(email, n);
    const char *password = credential_string(root, "password", &n, errs);
    if (password)
        c.password = xstrndup(password, n);
    decode_unknown_fields(root, credential_fields, errs);
    json_decref(root);
    if (errs->count > 0) {
        user_credentials_free(&c);
        return TODO_EINVALID;
    }
    *out = c;
    return 0;
}

/* Decode one form value into a new string; NULL with an error on `field`
 * when it is badly encoded, not UTF-8, contains NUL or is too long. */
static char *form_value(const char *field, const char *raw, size_t raw_len,
                        struct field_errors *errs)
{
    char *v = xmalloc(raw_len + 1);
    long n = urlenc_decode(raw, raw_len, v);
    const char *problem = NULL;
    if (n < 0)
        problem = "has an invalid percent-encoding";
    else if (memchr(v, '\0', (size_t)n))
        problem = "must not contain NUL characters";
    else if (!utf8_valid(v, (size_t)n))
        problem = "must be valid UTF-8";
    else if ((size_t)n > CREDENTIAL_SANITY_MAX)
        problem = "is too long";
    if (!problem)
        return v;
    sodium_memzero(v, raw_len + 1);
    free(v);
    field_errors_add(errs, field, "%s", problem);
    return NULL;
}

/* Decode a form field name into `out` (64 bytes); a name that does not fit
 * or decode is kept raw (truncated) so the error can still name it. */
static void form_name(const char *raw, size_t raw_len, char out[64])
{
    if (raw_len < 64) {
        char tmp[64];
        long n = urlenc_decode(raw, raw_len, tmp);
        if (n >= 0 && !memchr(tmp, '\0', (size_t)n)) {
            memcpy(out, tmp, (size_t)n + 1);
            return;
        }
    }
    snprintf(out, 64, "%.*s", (int)(raw_len < 63 ? raw_len : 63), raw);
}

/* Store a decoded form value in *slot, or report a repeat. */
static void form_set(char **slot, const char *field, const char *raw, size_t raw_len,
                     bool *seen, struct field_errors *errs)
{
    if (*seen) {
        field_errors_add(errs, field, "must not be repeated");
        return;
    }
    *seen = true;
    *slot = form_value(field, raw, raw_len, errs);
}

int user_credentials_decode_form(const char *body, size_t len, struct user_credentials *out,
                                 struct field_errors *errs)
{
    struct user_credentials c = {0};
    bool seen_user = false, seen_password = false;
    char *username = NULL;
    size_t pos = 0, name_len, value_len;
    const char *name, *value;

    memset(out, 0, sizeof(*out));
    field_errors_init(errs);
    while (urlenc_next_pair(body, len, &pos, &name, &name_len, &value, &value_len)) {
        char key[64];
        form_name(name, name_len, key);
        if (strcmp(key, "username") == 0)
            form_set(&username, "username", value, value_len, &seen_user, errs);
        else if (strcmp(key, "password") == 0)
            form_set(&c.password, "password", value, value_len, &seen_password, errs);
        else if (!in_list(key, form_ignored))
            field_errors_add(errs, key, "unknown field");
    }
    if (!seen_user)
        field_errors_add(errs, "username", "is required");
    if (!seen_password)
        field_errors_add(errs, "password", "is required");
    if (username) {
        c.email = trim_lower(username, strlen(username));
        free(username);
    }
    if (errs->count > 0) {
        user_credentials_free(&c);
        return TODO_EINVALID;
    }
    *out = c;
    return 0;
}

void user_credentials_free(struct user_credentials *c)
{
    if (!c)
        return;
    free(c->email);
    wipe_free(c->password);
    memset(c, 0, sizeof(*c));
}

void user_json_append(struct buf *b, const struct user *u)
{
    char created[TIMEFMT_LEN + 1];
    timefmt_format(u->created_at_ms, created);
    buf_append_str(b, "{\"id\":");
    buf_append_json_str(b, u->id);
    buf_append_str(b, ",\"email\":");
    buf_append_json_str(b, u->email ? u->email : "");
    buf_append_str(b, ",\"name\":");
    buf_append_json_str(b, u->name);
    buf_append_str(b, ",\"created_at\":\"");
    buf_append(b, created, TIMEFMT_LEN);
    buf_append_str(b, "\"}");
}
