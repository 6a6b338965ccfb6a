/*
 * auth/token: access tokens, JWT HS256 (via libjwt) with claims
 * sub (user id), email, iat, exp.
 *
 * The key is the raw SECRET_KEY bytes. token_verify() checks the algorithm
 * is exactly HS256, the signature, that exp is in the future and that sub
 * is a UUID. Thread-safe; no shared state.
 */
#ifndef TODO_AUTH_TOKEN_H
#define TODO_AUTH_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "model/uuid.h"

struct token_claims {
    char sub[UUID_STR_LEN + 1];
    int64_t iat;
    int64_t exp;
};

/* A new token (caller frees) or NULL on failure. */
char *token_issue(const unsigned char *key, size_t key_len, const char *user_id,
                  const char *email, int64_t now_s, int64_t lifetime_s);

/* 0 and `out` filled when `token[0..len)` is valid at `now_s`; -1 otherwise
 * (malformed, wrong algorithm, bad signature, expired, bad sub). */
__attribute__((warn_unused_result)) int token_verify(const unsigned char *key, size_t key_len,
                                                     const char *token, size_t len, int64_t now_s,
                                                     struct token_claims *out);

#endif
