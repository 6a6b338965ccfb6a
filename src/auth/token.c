#include "auth/token.h"

#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SIG_LEN 32     /* HMAC-SHA256 */
#define SIG_B64_LEN 43 /* base64url of 32 bytes, no padding */

/* base64url({"alg":"HS256","typ":"JWT"}): the header token_issue() writes
 * (libjwt) and most other issuers write; any other spelling is parsed. */
static const char std_header[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/* ---- issuing (libjwt) ---- */

char *token_issue(const unsigned char *key, size_t key_len, const char *user_id, const char *email,
                  int64_t now_s, int64_t lifetime_s)
{
    if (!key || key_len == 0 || key_len > INT_MAX || !user_id || !email)
        return NULL;
    jwt_t *jwt = NULL;
    char *tok = NULL;
    if (jwt_new(&jwt) != 0)
        goto out;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, key, (int)key_len) != 0 ||
        jwt_add_grant(jwt, "sub", user_id) != 0 || jwt_add_grant(jwt, "email", email) != 0 ||
        jwt_add_grant_int(jwt, "iat", (long)now_s) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)(now_s + lifetime_s)) != 0)
        goto out;
    tok = jwt_encode_str(jwt); /* malloc()ed by libjwt's default allocator */
out:
    jwt_free(jwt); /* scrubs its copy of the key */
    return tok;
}

/* ---- claims, shared by both verifiers ---- */

/* 0 and `out` filled when the payload object has an integer exp after
 * now, an integer nbf (if any) not after now, an integer iat (if any) and
 * a UUID sub. */
static int claims_check(const json_t *payload, int64_t now_s, struct token_claims *out)
{
    if (!json_is_object(payload))
        return -1;
    const json_t *exp = json_object_get(payload, "exp");
    const json_t *nbf = json_object_get(payload, "nbf");
    const json_t *iat = json_object_get(payload, "iat");
    const json_t *sub = json_object_get(payload, "sub");
    if (!json_is_integer(exp) || json_integer_value(exp) <= now_s)
        return -1;
    if (nbf && (!json_is_integer(nbf) || json_integer_value(nbf) > now_s))
        return -1;
    if (iat && !json_is_integer(iat))
        return -1;
    struct token_claims c = {0};
    if (!json_is_string(sub) || !uuid_parse(json_string_value(sub), json_string_length(sub), c.sub))
        return -1;
    c.exp = json_integer_value(exp);
    c.iat = iat ? json_integer_value(iat) : 0;
    *out = c;
    return 0;
}

/* ---- fast verifier: OpenSSL HMAC + jansson on the payload ---- */

/* One HMAC-SHA256 context per thread (fetching the algorithm costs more
 * than the MAC itself); freed when the thread exits. */
static pthread_once_t mac_once = PTHREAD_ONCE_INIT;
static pthread_key_t mac_tls;
static EVP_MAC *hmac_alg;

static void mac_ctx_free(void *ctx)
{
    EVP_MAC_CTX_free(ctx);
}

static void mac_init(void)
{
    if (pthread_key_create(&mac_tls, mac_ctx_free) == 0)
        hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static EVP_MAC_CTX *thread_mac_ctx(void)
{
    pthread_once(&mac_once, mac_init);
    if (!hmac_alg)
        return NULL;
    EVP_MAC_CTX *ctx = pthread_getspecific(mac_tls);
    if (ctx)
        return ctx;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    ctx = EVP_MAC_CTX_new(hmac_alg);
    if (!ctx || !EVP_MAC_CTX_set_params(ctx, params) || pthread_setspecific(mac_tls, ctx) != 0) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int hmac_sha256(const unsigned char *key, size_t key_len, const char *data, size_t len,
                       unsigned char mac[SIG_LEN])
{
    EVP_MAC_CTX *ctx = thread_mac_ctx();
    size_t mac_len = 0;
    if (!ctx || !EVP_MAC_init(ctx, key, key_len, NULL) ||
        !EVP_MAC_update(ctx, (const unsigned char *)data, len) ||
        !EVP_MAC_final(ctx, mac, &mac_len, SIG_LEN) || mac_len != SIG_LEN)
        return -1;
    return 0;
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Strict base64url without padding: rejects other characters, an
 * impossible length and non-zero spare bits (so each byte string has one
 * encoding). Returns the decoded length or -1. Not constant-time: its
 * input is the received token, never the key or the expected MAC. */
static long b64url_decode(const char *s, size_t len, unsigned char *out, size_t out_cap)
{
    if (len % 4 == 1 || len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0) > out_cap)
        return -1;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1))
        return -1;
    return (long)n;
}

/* Decode one base64url segment and parse it as a JSON object. */
static json_t *segment_json(const char *s, size_t len)
{
    unsigned char buf[TOKEN_MAX_LEN];
    long n = b64url_decode(s, len, buf, sizeof(buf));
    if (n <= 0)
        return NULL;
    json_t *j = json_loadb((const char *)buf, (size_t)n, 0, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* The header must say alg HS256 and carry no `crit` extensions. */
static bool header_ok(const char *s, size_t len)
{
    if (len == sizeof(std_header) - 1 && memcmp(s, std_header, len) == 0)
        return true;
    json_t *h = segment_json(s, len);
    const json_t *alg = json_object_get(h, "alg");
    bool ok = json_is_string(alg) && strcmp(json_string_value(alg), "HS256") == 0 &&
              json_string_length(alg) == 5 && !json_object_get(h, "crit");
    json_decref(h);
    return ok;
}

int token_verify(const unsigned char *key, size_t key_len, const char *token, size_t len,
                 int64_t now_s, struct token_claims *out)
{
    if (!key || key_len == 0 || !token || len == 0 || len > TOKEN_MAX_LEN)
        return -1;
    const char *end = token + len;
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
    if (!dot2 || dot1 == token || dot2 == dot1 + 1 || (size_t)(end - dot2 - 1) != SIG_B64_LEN)
        return -1; /* also rejects a fourth part: its '.' would be in the signature */

    unsigned char want[SIG_LEN], got[SIG_LEN];
    if (hmac_sha256(key, key_len, token, (size_t)(dot2 - token), want) != 0 ||
        b64url_decode(dot2 + 1, SIG_B64_LEN, got, sizeof(got)) != SIG_LEN ||
        CRYPTO_memcmp(want, got, SIG_LEN) != 0)
        return -1;
    if (!header_ok(token, (size_t)(dot1 - token)))
        return -1;

    json_t *payload = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    int rc = claims_check(payload, now_s, out);
    json_decref(payload);
    return rc;
}

/* ---- reference verifier: libjwt ---- */

int token_verify_libjwt(const unsigned char *key, size_t key_len, const char *token, size_t len,
                        int64_t now_s, struct token_claims *out)
{
    if (!key || key_len == 0 || key_len > INT_MAX || !token || len == 0 || len > TOKEN_MAX_LEN ||
        memchr(token, '\0', len))
        return -1;
    char buf[TOKEN_MAX_LEN + 1];
    memcpy(buf, token, len);
    buf[len] = '\0';

    int rc = -1;
    jwt_t *jwt = NULL;
    char *grants = NULL;
    json_t *payload = NULL;
    /* With a key, libjwt refuses alg "none"; any other algorithm it can
     * check with this key would pass, hence the explicit HS256 test. */
    if (jwt_decode(&jwt, buf, key, (int)key_len) != 0 || jwt_get_alg(jwt) != JWT_ALG_HS256)
        goto out;
    char *crit = jwt_get_headers_json(jwt, "crit");
    bool has_crit = crit != NULL;
    free(crit);
    if (has_crit)
        goto out;
    grants = jwt_get_grants_json(jwt, NULL);
    payload = grants ? json_loads(grants, 0, NULL) : NULL;
    rc = claims_check(payload, now_s, out);
out:
    json_decref(payload);
    free(grants);
    jwt_free(jwt);
    return rc;
}
