/*
 * auth/token: access tokens, JWT HS256 with claims sub (user id), email,
 * iat, exp.
 *
 * The key is the raw SECRET_KEY bytes. token_issue() uses libjwt.
 * token_verify() runs on every authenticated request, so it is a direct
 * implementation (OpenSSL HMAC-SHA256, a strict base64url decoder, jansson
 * for the payload), several times faster than libjwt's decoder; it checks the
 * header's alg is exactly "HS256" (no `crit`), the signature (constant
 * time), that exp is an integer in the future, nbf (if any) is not in the
 * future, iat (if any) is an integer, and sub is a UUID (returned in
 * canonical form). token_verify_libjwt() makes the same decision through
 * libjwt; it is the slower reference the tests compare against.
 *
 * Thread-safe. The only shared state is an HMAC context per thread
 * (created on first use, freed at thread exit).
 */
#ifndef TODO_AUTH_TOKEN_H
#define TODO_AUTH_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "model/uuid.h"

#define TOKEN_MAX_LEN 4096 /* longer tokens are rejected unread */

struct token_claims {
    char sub[UUID_STR_LEN + 1];
    int64_t iat;
    int64_t exp;
};

/* A new token (caller frees with free()) or NULL on failure (empty key,
 * NULL argument, OOM). */
char *token_issue(const unsigned char *key, size_t key_len, const char *user_id, const char *email,
                  int64_t now_s, int64_t lifetime_s);

/* 0 and `out` filled when `token[0..len)` is valid at `now_s`; -1 otherwise
 * (malformed, wrong algorithm, bad signature, expired, bad sub). */
__attribute__((warn_unused_result)) int token_verify(const unsigned char *key, size_t key_len,
                                                     const char *token, size_t len, int64_t now_s,
                                                     struct token_claims *out);

/* Same contract and decisions as token_verify(), through libjwt's decoder
 * (slower; for tests and diagnostics). */
__attribute__((warn_unused_result)) int token_verify_libjwt(const unsigned char *key,
                                                            size_t key_len, const char *token,
                                                            size_t len, int64_t now_s,
                                                            struct token_claims *out);

#endif
