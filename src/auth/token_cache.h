/*
 * auth/token_cache: a small per-thread memory of access tokens that already
 * passed token_verify(), so the common case (a client sending the same token
 * on every request) skips the HMAC and the JSON parse.
 *
 * Safe by construction: an entry is found only when the presented token is
 * byte-for-byte the one that verified (under the same key, which is fixed
 * for the process), and it is served only while its `exp` is still in the
 * future. Everything else goes through token_verify().
 *
 * Direct-mapped, TOKEN_CACHE_SLOTS entries, no allocation after creation.
 * Not thread-safe: each worker thread owns one.
 */
#ifndef TODO_AUTH_TOKEN_CACHE_H
#define TODO_AUTH_TOKEN_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "auth/token.h"

#define TOKEN_CACHE_SLOTS 256
#define TOKEN_CACHE_TOKEN_MAX 512 /* longer tokens are simply not cached */

struct token_cache;

struct token_cache *token_cache_new(void);
void token_cache_free(struct token_cache *c); /* NULL accepted */

/* Verify through the cache: the same contract as token_verify(). */
__attribute__((warn_unused_result)) int token_cache_verify(struct token_cache *c,
                                                           const unsigned char *key,
                                                           size_t key_len, const char *token,
                                                           size_t len, int64_t now_s,
                                                           struct token_claims *out);

#endif
