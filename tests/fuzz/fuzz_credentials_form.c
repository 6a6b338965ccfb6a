/*
 * Fuzz target: the OAuth2 password-flow form body of POST /auth/token
 * (application/x-www-form-urlencoded) through user_credentials_decode_form().
 * Decoded credentials must be valid UTF-8 without NUL, at most 1024 bytes,
 * the username trimmed and lower-cased; a failure names its fields.
 */
#include <stdbool.h>

#include "fuzz.h"
#include "model/user.h"
#include "util/utf8.h"

#define CREDENTIAL_MAX 1024 /* bytes, model/user.h */

static void check_value(const char *s)
{
    size_t len = strlen(s);
    FUZZ_CHECK(len <= CREDENTIAL_MAX && utf8_valid(s, len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct user_credentials c;
    struct field_errors errs;
    int rc = user_credentials_decode_form((const char *)data, size, &c, &errs);
    if (rc != 0) {
        FUZZ_CHECK(rc == TODO_EINVALID && errs.count > 0 && !c.email && !c.password);
        for (size_t i = 0; i < errs.count; i++)
            FUZZ_CHECK(memchr(errs.items[i].field, '\0', sizeof(errs.items[i].field)) &&
                       errs.items[i].message[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(errs.count == 0 && c.email && c.password);
    check_value(c.email);
    check_value(c.password);
    size_t len = strlen(c.email), start, end;
    utf8_trim(c.email, len, &start, &end);
    FUZZ_CHECK(start == 0 && end == len);
    for (const char *p = c.email; *p; p++)
        FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'));
    /* Both fields were given, so the body names them (maybe encoded). */
    FUZZ_CHECK(size >= strlen("username&password"));
    user_credentials_free(&c);
    FUZZ_CHECK(!c.email && !c.password);
    return 0;
}
