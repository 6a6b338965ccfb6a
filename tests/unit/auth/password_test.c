#include <criterion/criterion.h>
#include <crypt.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "auth/password.h"

static void setup(void)
{
    cr_assert_geq(sodium_init(), 0);
}

TestSuite(password, .init = setup);

/* A crypt(3) hash of `pw` with a fresh setting for `prefix` (low cost). */
static char *crypt_hash(const char *prefix, unsigned long cost, const char *pw)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    cr_assert_not_null(crypt_gensalt_rn(prefix, cost, NULL, 0, setting, sizeof(setting)),
                       "crypt_gensalt_rn(%s)", prefix);
    struct crypt_data *data = calloc(1, sizeof(*data));
    cr_assert_not_null(data);
    const char *h = crypt_r(pw, setting, data);
    cr_assert(h && h[0] != '*', "crypt_r failed for %s", setting);
    char *copy = strdup(h);
    free(data);
    cr_assert(strncmp(copy, prefix, strlen(prefix)) == 0, "%s has prefix %s", copy, prefix);
    return copy;
}


Test(password, argon2_round_trip)
{
    char h[PASSWORD_HASH_MAX];
    cr_assert_eq(password_hash("correct horse battery", h), 0);
    cr_assert(strncmp(h, "$argon2id$", 10) == 0, "%s", h);
    cr_assert_lt(strlen(h), PASSWORD_HASH_MAX);
    cr_assert_eq(password_verify(h, "correct horse battery"), PASSWORD_OK);
    cr_assert_eq(password_verify(h, "correct horse batterY"), PASSWORD_MISMATCH);
    cr_assert_eq(password_verify(h, ""), PASSWORD_MISMATCH);
    cr_assert_eq(password_verify(h, NULL), PASSWORD_MISMATCH);
}

Test(password, argon2_salted)
{
    char a[PASSWORD_HASH_MAX], b[PASSWORD_HASH_MAX];
    cr_assert_eq(password_hash("same password", a), 0);
    cr_assert_eq(password_hash("same password", b), 0);
    cr_assert_str_neq(a, b);
    cr_assert_eq(password_verify(a, "same password"), PASSWORD_OK);
    cr_assert_eq(password_verify(b, "same password"), PASSWORD_OK);
}

Test(password, argon2_utf8_password)
{
    char h[PASSWORD_HASH_MAX];
    cr_assert_eq(password_hash("pässwörd-密码", h), 0);
    cr_assert_eq(password_verify(h, "pässwörd-密码"), PASSWORD_OK);
    cr_assert_eq(password_verify(h, "passwort-密码"), PASSWORD_MISMATCH);
}

Test(password, argon2_weak_params_need_rehash)
{
    char h[PASSWORD_HASH_MAX];
    const char *pw = "weakly hashed";
    cr_assert_eq(crypto_pwhash_str(h, pw, strlen(pw), crypto_pwhash_OPSLIMIT_MIN,
                                   crypto_pwhash_MEMLIMIT_MIN),
                 0);
    cr_assert_eq(password_verify(h, pw), PASSWORD_OK_REHASH);
    cr_assert_eq(password_verify(h, "wrong"), PASSWORD_MISMATCH);
}

Test(password, argon2_tampered_hash)
{
    char h[PASSWORD_HASH_MAX];
    cr_assert_eq(password_hash("tamper me", h), 0);
    size_t n = strlen(h);
    h[n - 3] = h[n - 3] == 'A' ? 'B' : 'A';
    cr_assert_eq(password_verify(h, "tamper me"), PASSWORD_MISMATCH);
}

Test(password, bcrypt_2b)
{
    char *h = crypt_hash("$2b$", 4, "legacy-pass");
    cr_assert_eq(password_verify(h, "legacy-pass"), PASSWORD_OK_REHASH);
    cr_assert_eq(password_verify(h, "legacy-pasS"), PASSWORD_MISMATCH);
    cr_assert_eq(password_verify(h, ""), PASSWORD_MISMATCH);
    free(h);
}

Test(password, bcrypt_2a)
{
    char *h = crypt_hash("$2a$", 4, "old python app");
    cr_assert_eq(password_verify(h, "old python app"), PASSWORD_OK_REHASH);
    cr_assert_eq(password_verify(h, "old python ap"), PASSWORD_MISMATCH);
    free(h);
}

Test(password, bcrypt_2y)
{
    char *h = crypt_hash("$2y$", 4, "php era");
    cr_assert_eq(password_verify(h, "php era"), PASSWORD_OK_REHASH);
    cr_assert_eq(password_verify(h, "php erA"), PASSWORD_MISMATCH);
    free(h);
}

Test(password, bcrypt_tampered_and_truncated)
{
    char *h = crypt_hash("$2b$", 4, "legacy-pass");
    size_t n = strlen(h);
    h[n - 5] = h[n - 5] == 'a' ? 'b' : 'a';
    cr_assert_eq(password_verify(h, "legacy-pass"), PASSWORD_MISMATCH);
    h[n - 10] = '\0';
    cr_assert_eq(password_verify(h, "legacy-pass"), PASSWORD_MISMATCH);
    free(h);
}

Test(password, other_crypt_formats_are_not_accepted)
{
    /* A correct SHA-512-crypt hash: crypt(3) could verify it, but only
     * Argon2id and bcrypt are accepted. */
    char *h = crypt_hash("$6$", 5000, "right password");
    cr_assert_eq(password_verify(h, "right password"), PASSWORD_MISMATCH);
    free(h);
}

Test(password, garbage_hashes_mismatch)
{
    const char *bad[] = {
        NULL,
        "",
        "not a hash",
        "right password",
        "$2b$04$tooshort",
        "$2b$",
        "$argon2id$v=19$garbage",
        "$argon2id$",
        "*0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(password_verify(bad[i], "right password"), PASSWORD_MISMATCH, "hash %zu", i);
}

Test(password, overlong_hash_mismatch)
{
    char h[PASSWORD_HASH_MAX];
    cr_assert_eq(password_hash("pw", h), 0);
    char big[PASSWORD_HASH_MAX * 2];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, h, strlen(h));
    cr_assert_eq(password_verify(big, "pw"), PASSWORD_MISMATCH);
}
