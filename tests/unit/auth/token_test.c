#include <criterion/criterion.h>
#include <jwt.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/token.h"

static const unsigned char KEY[] = "test-secret-key-0123456789abcdef";
#define KEY_LEN (sizeof(KEY) - 1)
static const char USER[] = "0190f5a8-8a8e-7c1e-9a6f-0123456789ab";
static const int64_t NOW = 1700000000;

static void setup(void)
{
    cr_assert_geq(sodium_init(), 0);
}

TestSuite(token, .init = setup);

typedef int verify_fn(const unsigned char *, size_t, const char *, size_t, int64_t,
                      struct token_claims *);

/* Both verifiers must agree on every token; returns their common answer. */
static int verify_both(const unsigned char *key, size_t key_len, const char *tok, size_t len,
                       int64_t now, struct token_claims *out)
{
    struct token_claims a = {0}, b = {0};
    int ra = token_verify(key, key_len, tok, len, now, &a);
    int rb = token_verify_libjwt(key, key_len, tok, len, now, &b);
    cr_assert_eq(ra, rb, "fast=%d libjwt=%d disagree on %.*s", ra, rb, (int)len, tok);
    if (ra == 0) {
        cr_assert_str_eq(a.sub, b.sub);
        cr_assert_eq(a.iat, b.iat);
        cr_assert_eq(a.exp, b.exp);
        if (out)
            *out = a;
    }
    return ra;
}

static int check(const char *tok, int64_t now, struct token_claims *out)
{
    return verify_both(KEY, KEY_LEN, tok, strlen(tok), now, out);
}

static char *b64url(const void *data, size_t len)
{
    size_t cap = sodium_base64_encoded_len(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *s = malloc(cap);
    cr_assert_not_null(s);
    sodium_bin2base64(s, cap, data, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return s;
}

/* header.payload.signature made by hand: HMAC-SHA256 via libsodium (an
 * implementation independent of the verifier's OpenSSL), or an empty
 * signature when key is NULL. */
static char *craft(const char *header, const char *payload, const unsigned char *key,
                   size_t key_len)
{
    char *h = b64url(header, strlen(header));
    char *p = b64url(payload, strlen(payload));
    size_t n = strlen(h) + strlen(p) + 64;
    char *tok = malloc(n);
    cr_assert_not_null(tok);
    snprintf(tok, n, "%s.%s", h, p);
    char *sig = NULL;
    if (key) {
        unsigned char mac[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, key, key_len);
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)tok, strlen(tok));
        crypto_auth_hmacsha256_final(&st, mac);
        sig = b64url(mac, sizeof(mac));
    }
    size_t used = strlen(tok);
    snprintf(tok + used, n - used, ".%s", sig ? sig : "");
    free(h);
    free(p);
    free(sig);
    return tok;
}

static const char HS256[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static char *craft_payload(const char *payload)
{
    return craft(HS256, payload, KEY, KEY_LEN);
}

Test(token, round_trip)
{
    char *tok = token_issue(KEY, KEY_LEN, USER, "a@example.com", NOW, 1800);
    cr_assert_not_null(tok);
    struct token_claims c;
    cr_assert_eq(check(tok, NOW, &c), 0);
    cr_assert_str_eq(c.sub, USER);
    cr_assert_eq(c.iat, NOW);
    cr_assert_eq(c.exp, NOW + 1800);
    cr_assert_eq(check(tok, NOW + 1799, &c), 0);
    free(tok);
}

Test(token, issued_claims_are_numbers_and_email)
{
    char *tok = token_issue(KEY, KEY_LEN, USER, "a@example.com", NOW, 60);
    cr_assert_not_null(tok);
    jwt_t *jwt = NULL;
    cr_assert_eq(jwt_decode(&jwt, tok, KEY, (int)KEY_LEN), 0);
    cr_assert_eq(jwt_get_alg(jwt), JWT_ALG_HS256);
    cr_assert_str_eq(jwt_get_grant(jwt, "email"), "a@example.com");
    cr_assert_str_eq(jwt_get_grant(jwt, "sub"), USER);
    cr_assert_eq(jwt_get_grant_int(jwt, "iat"), NOW);
    cr_assert_eq(jwt_get_grant_int(jwt, "exp"), NOW + 60);
    jwt_free(jwt);
    free(tok);
}

Test(token, issue_rejects_bad_arguments)
{
    cr_assert_null(token_issue(KEY, 0, USER, "a@example.com", NOW, 60));
    cr_assert_null(token_issue(NULL, KEY_LEN, USER, "a@example.com", NOW, 60));
    cr_assert_null(token_issue(KEY, KEY_LEN, NULL, "a@example.com", NOW, 60));
    cr_assert_null(token_issue(KEY, KEY_LEN, USER, NULL, NOW, 60));
}

Test(token, expired)
{
    char *tok = token_issue(KEY, KEY_LEN, USER, "a@example.com", NOW, 1800);
    cr_assert_eq(check(tok, NOW + 1800, NULL), -1, "exp == now is expired");
    cr_assert_eq(check(tok, NOW + 100000, NULL), -1);
    free(tok);
}

Test(token, wrong_key)
{
    char *tok = token_issue(KEY, KEY_LEN, USER, "a@example.com", NOW, 1800);
    static const unsigned char other[] = "test-secret-key-0123456789abcdeF";
    cr_assert_eq(verify_both(other, sizeof(other) - 1, tok, strlen(tok), NOW, NULL), -1);
    cr_assert_eq(verify_both(KEY, KEY_LEN - 1, tok, strlen(tok), NOW, NULL), -1);
    cr_assert_eq(verify_both(KEY, 0, tok, strlen(tok), NOW, NULL), -1);
    free(tok);
}

Test(token, tampering_any_byte_fails)
{
    char *tok = token_issue(KEY, KEY_LEN, USER, "a@example.com", NOW, 1800);
    size_t n = strlen(tok);
    const char *sig = strrchr(tok, '.') + 1;
    size_t last = n - 1;
    for (size_t i = 0; i < n; i++) {
        /* The last signature character carries 2 unused bits: a decoder
         * may ignore them, but a strict one (ours) must not. Test it
         * below with token_verify alone. */
        if (i == last)
            continue;
        char saved = tok[i];
        tok[i] = saved == 'A' ? 'B' : 'A';
        if (saved == '.')
            tok[i] = 'x';
        cr_assert_eq(check(tok, NOW, NULL), -1, "byte %zu (%c) tampered", i, saved);
        tok[i] = saved;
    }
    cr_assert(sig > tok);
    cr_assert_eq(check(tok, NOW, NULL), 0, "restored token verifies");
    free(tok);
}

Test(token, signature_trailing_bits_strict)
{
    char *tok = token_issue(KEY, KEY_LEN, USER, "a@example.com", NOW, 1800);
    size_t n = strlen(tok);
    struct token_claims c;
    /* 43 base64 chars = 258 bits for a 256-bit MAC: flipping only the two
     * spare bits keeps the MAC bytes; a strict decoder rejects it. */
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(alphabet, tok[n - 1]) - alphabet);
    cr_assert_eq(v & 3, 0);
    tok[n - 1] = alphabet[v | 1];
    cr_assert_eq(token_verify(KEY, KEY_LEN, tok, n, NOW, &c), -1);
    free(tok);
}

Test(token, tampered_payload_resigned_with_other_key)
{
    static const unsigned char other[] = "attacker";
    char *tok =
        craft(HS256, "{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\",\"exp\":1900000000}", other,
              sizeof(other) - 1);
    cr_assert_eq(check(tok, NOW, NULL), -1);
    free(tok);
}

Test(token, handmade_token_with_right_key_verifies)
{
    char *tok = craft_payload("{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\","
                              "\"exp\":1700000100,\"iat\":1699999000}");
    struct token_claims c;
    cr_assert_eq(check(tok, NOW, &c), 0);
    cr_assert_str_eq(c.sub, USER);
    cr_assert_eq(c.exp, 1700000100);
    cr_assert_eq(c.iat, 1699999000);
    free(tok);
}

Test(token, other_header_spellings)
{
    const char *ok[] = {
        "{\"typ\":\"JWT\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\"}",
        "{ \"alg\" : \"HS256\" , \"kid\" : \"k1\" }",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *tok = craft(ok[i],
                          "{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\","
                          "\"exp\":1900000000}",
                          KEY, KEY_LEN);
        cr_assert_eq(check(tok, NOW, NULL), 0, "header %s", ok[i]);
        free(tok);
    }
}

Test(token, bad_headers_with_valid_signature)
{
    const char *bad[] = {
        "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
        "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"none\",\"typ\":\"JWT\"}",
        "{\"typ\":\"JWT\"}",
        "{\"alg\":null}",
        "{\"alg\":256}",
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
        "[\"HS256\"]",
        "not json",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *tok = craft(bad[i],
                          "{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\","
                          "\"exp\":1900000000}",
                          KEY, KEY_LEN);
        cr_assert_eq(check(tok, NOW, NULL), -1, "header %s", bad[i]);
        free(tok);
    }
}

Test(token, alg_none_rejected)
{
    const char *payload = "{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\",\"exp\":1900000000}";
    char *tok = craft("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, NULL, 0);
    cr_assert_eq(tok[strlen(tok) - 1], '.', "unsigned form ends with a dot");
    cr_assert_eq(check(tok, NOW, NULL), -1);
    free(tok);
    /* Upper-case spelling some libraries accept. */
    tok = craft("{\"alg\":\"None\",\"typ\":\"JWT\"}", payload, NULL, 0);
    cr_assert_eq(check(tok, NOW, NULL), -1);
    free(tok);
}

Test(token, hs512_token_rejected)
{
    jwt_t *jwt = NULL;
    cr_assert_eq(jwt_new(&jwt), 0);
    cr_assert_eq(jwt_set_alg(jwt, JWT_ALG_HS512, KEY, (int)KEY_LEN), 0);
    cr_assert_eq(jwt_add_grant(jwt, "sub", USER), 0);
    cr_assert_eq(jwt_add_grant_int(jwt, "exp", NOW + 1000), 0);
    char *tok = jwt_encode_str(jwt);
    cr_assert_not_null(tok);
    /* libjwt itself accepts it with our key: the alg check is ours. */
    jwt_t *dec = NULL;
    cr_assert_eq(jwt_decode(&dec, tok, KEY, (int)KEY_LEN), 0);
    jwt_free(dec);
    cr_assert_eq(check(tok, NOW, NULL), -1);
    free(tok);
    jwt_free(jwt);
}

Test(token, malformed_strings)
{
    char *good = token_issue(KEY, KEY_LEN, USER, "a@example.com", NOW, 1800);
    const char *dot1 = strchr(good, '.');
    const char *dot2 = strrchr(good, '.');
    char buf[2048];
    const char *bad[] = {"", ".", "..", "...", "abc", "abc.def", "abc.def.ghi", "a.b.c.d"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(check(bad[i], NOW, NULL), -1, "%s", bad[i]);

    /* header and payload only (2 parts) */
    snprintf(buf, sizeof(buf), "%.*s", (int)(dot2 - good), good);
    cr_assert_eq(check(buf, NOW, NULL), -1);
    /* a fourth part */
    snprintf(buf, sizeof(buf), "%s.%s", good, "AAAA");
    cr_assert_eq(check(buf, NOW, NULL), -1);
    /* empty header / payload */
    snprintf(buf, sizeof(buf), "%s", dot1);
    cr_assert_eq(check(buf, NOW, NULL), -1);
    snprintf(buf, sizeof(buf), "%.*s.%s", (int)(dot1 - good), good, dot2);
    cr_assert_eq(check(buf, NOW, NULL), -1);
    /* padding, bad characters and whitespace in the signature */
    snprintf(buf, sizeof(buf), "%s=", good);
    cr_assert_eq(check(buf, NOW, NULL), -1);
    snprintf(buf, sizeof(buf), "%s ", good);
    cr_assert_eq(check(buf, NOW, NULL), -1);
    snprintf(buf, sizeof(buf), " %s", good);
    cr_assert_eq(check(buf, NOW, NULL), -1);
    snprintf(buf, sizeof(buf), "%s", good);
    buf[strlen(buf) - 3] = '+';
    cr_assert_eq(check(buf, NOW, NULL), -1);
    snprintf(buf, sizeof(buf), "%s", good);
    buf[(size_t)(dot1 - good) + 3] = '!';
    cr_assert_eq(check(buf, NOW, NULL), -1);
    free(good);
}

Test(token, length_is_respected)
{
    char *tok = token_issue(KEY, KEY_LEN, USER, "a@example.com", NOW, 1800);
    size_t n = strlen(tok);
    char *framed = malloc(n + 16);
    cr_assert_not_null(framed);
    /* Not NUL-terminated: the token is followed by more bytes. */
    memcpy(framed, tok, n);
    memcpy(framed + n, "XYZ, trailing", 14);
    cr_assert_eq(verify_both(KEY, KEY_LEN, framed, n, NOW, NULL), 0);
    cr_assert_eq(verify_both(KEY, KEY_LEN, framed, n + 1, NOW, NULL), -1);
    cr_assert_eq(verify_both(KEY, KEY_LEN, framed, n - 1, NOW, NULL), -1);
    cr_assert_eq(verify_both(KEY, KEY_LEN, framed, 0, NOW, NULL), -1);
    cr_assert_eq(verify_both(KEY, KEY_LEN, NULL, 10, NOW, NULL), -1);
    free(framed);
    free(tok);
}

Test(token, oversized_rejected)
{
    /* A valid token whose email claim pushes it over TOKEN_MAX_LEN. */
    char email[TOKEN_MAX_LEN];
    memset(email, 'e', sizeof(email) - 20);
    snprintf(email + sizeof(email) - 20, 20, "@example.com");
    char *tok = token_issue(KEY, KEY_LEN, USER, email, NOW, 1800);
    cr_assert_not_null(tok);
    cr_assert_gt(strlen(tok), TOKEN_MAX_LEN);
    cr_assert_eq(check(tok, NOW, NULL), -1);
    free(tok);
    /* Just under the limit still works. */
    memset(email, 'e', sizeof(email));
    snprintf(email + 2000, 20, "@example.com");
    tok = token_issue(KEY, KEY_LEN, USER, email, NOW, 1800);
    cr_assert_lt(strlen(tok), TOKEN_MAX_LEN);
    cr_assert_eq(check(tok, NOW, NULL), 0);
    free(tok);
}

Test(token, claims_rules)
{
    struct {
        const char *payload;
        int want;
    } cases[] = {
        {"{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\",\"exp\":1900000000}", 0},
        {"{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\"}", -1}, /* no exp */
        {"{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\",\"exp\":\"1900000000\"}", -1},
        {"{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\",\"exp\":1.9e9}", -1},
        {"{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\",\"exp\":null}", -1},
        {"{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\",\"exp\":1700000000}", -1}, /* = now */
        {"{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\",\"exp\":1700000001}", 0},
        {"{\"exp\":1900000000}", -1}, /* no sub */
        {"{\"sub\":null,\"exp\":1900000000}", -1},
        {"{\"sub\":42,\"exp\":1900000000}", -1},
        {"{\"sub\":\"\",\"exp\":1900000000}", -1},
        {"{\"sub\":\"user-42\",\"exp\":1900000000}", -1},
        {"{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab \",\"exp\":1900000000}", -1},
        {"{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789zz\",\"exp\":1900000000}", -1},
        {"{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\",\"exp\":1900000000,"
         "\"iat\":\"yesterday\"}",
         -1},
        {"{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\",\"exp\":1900000000,"
         "\"nbf\":1700000000}",
         0},
        {"{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\",\"exp\":1900000000,"
         "\"nbf\":1700000001}",
         -1},
        {"{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\",\"exp\":1900000000,"
         "\"extra\":{\"nested\":[1,2,3]}}",
         0},
        {"[\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\"]", -1},
        {"null", -1},
        {"{\"sub\":\"0190f5a8-8a8e-7c1e-9a6f-0123456789ab\",\"exp\":1900000000", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *tok = craft_payload(cases[i].payload);
        cr_assert_eq(check(tok, NOW, NULL), cases[i].want, "payload %s", cases[i].payload);
        free(tok);
    }
}

Test(token, sub_canonicalised)
{
    char *tok = craft_payload("{\"sub\":\"0190F5A8-8A8E-7C1E-9A6F-0123456789AB\","
                              "\"exp\":1900000000}");
    struct token_claims c;
    cr_assert_eq(check(tok, NOW, &c), 0);
    cr_assert_str_eq(c.sub, USER);
    free(tok);
}

Test(token, sub_not_uuid_from_issue)
{
    char *tok = token_issue(KEY, KEY_LEN, "not-a-uuid", "a@example.com", NOW, 1800);
    cr_assert_not_null(tok);
    cr_assert_eq(check(tok, NOW, NULL), -1);
    free(tok);
}

Test(token, out_untouched_on_failure)
{
    char *tok = token_issue(KEY, KEY_LEN, USER, "a@example.com", NOW, 10);
    struct token_claims c;
    memset(&c, 0x5a, sizeof(c));
    cr_assert_eq(token_verify(KEY, KEY_LEN, tok, strlen(tok), NOW + 10, &c), -1);
    for (size_t i = 0; i < sizeof(c); i++)
        cr_assert_eq(((unsigned char *)&c)[i], 0x5a);
    free(tok);
}

struct thread_arg {
    const char *good, *bad;
    int ok;
};

static void *verify_many(void *p)
{
    struct thread_arg *a = p;
    struct token_claims c;
    for (int i = 0; i < 2000; i++) {
        if (token_verify(KEY, KEY_LEN, a->good, strlen(a->good), NOW, &c) != 0 ||
            strcmp(c.sub, USER) != 0 ||
            token_verify(KEY, KEY_LEN, a->bad, strlen(a->bad), NOW, &c) != -1)
            return NULL;
    }
    a->ok = 1;
    return NULL;
}

/* Each thread has its own HMAC context; threads that exit free theirs. */
Test(token, concurrent_threads)
{
    char *good = token_issue(KEY, KEY_LEN, USER, "a@example.com", NOW, 1800);
    char *bad = token_issue(KEY, KEY_LEN - 1, USER, "a@example.com", NOW, 1800);
    struct thread_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){good, bad, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, verify_many, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_assert_eq(args[i].ok, 1, "thread %d", i);
    }
    free(good);
    free(bad);
}

