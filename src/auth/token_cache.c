#include "auth/token_cache.h"

#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

struct token_cache_entry {
    size_t len; /* 0: empty */
    struct token_claims claims;
    char token[TOKEN_CACHE_TOKEN_MAX];
};

struct token_cache {
    struct token_cache_entry slots[TOKEN_CACHE_SLOTS];
};

struct token_cache *token_cache_new(void)
{
    return xcalloc(1, sizeof(struct token_cache));
}

void token_cache_free(struct token_cache *c)
{
    free(c);
}

/* The token's last characters are its HMAC: already uniformly spread. */
static size_t slot_of(const char *token, size_t len)
{
    uint32_t h = 2166136261u;
    size_t from = len > 8 ? len - 8 : 0;
    for (size_t i = from; i < len; i++)
        h = (h ^ (unsigned char)token[i]) * 16777619u;
    return h % TOKEN_CACHE_SLOTS;
}

int token_cache_verify(struct token_cache *c, const unsigned char *key, size_t key_len,
                       const char *token, size_t len, int64_t now_s, struct token_claims *out)
{
    if (len == 0 || len > TOKEN_CACHE_TOKEN_MAX)
        return token_verify(key, key_len, token, len, now_s, out);
    struct token_cache_entry *e = &c->slots[slot_of(token, len)];
    if (e->len == len && memcmp(e->token, token, len) == 0 && e->claims.exp > now_s) {
        *out = e->claims;
        return 0;
    }
    if (token_verify(key, key_len, token, len, now_s, out) != 0)
        return -1;
    e->len = len;
    memcpy(e->token, token, len);
    e->claims = *out;
    return 0;
}
