#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "auth/token_cache.h"

static const unsigned char KEY[] = "token-cache-test-key-of-32-bytes!";
#define KEY_LEN (sizeof(KEY) - 1)
static const char *USER = "01a1fd07-7572-709d-9aca-04386dab44c5";
#define NOW 1800000000

static char *issue(int64_t now, int64_t lifetime)
{
    char *t = token_issue(KEY, KEY_LEN, USER, "u@example.com", now, lifetime);
    cr_assert_not_null(t);
    return t;
}

Test(token_cache, verifies_and_serves_repeats)
{
    struct token_cache *c = token_cache_new();
    char *t = issue(NOW, 600);
    struct token_claims a, b;
    cr_assert_eq(token_cache_verify(c, KEY, KEY_LEN, t, strlen(t), NOW, &a), 0);
    cr_assert_eq(token_cache_verify(c, KEY, KEY_LEN, t, strlen(t), NOW + 1, &b), 0);
    cr_assert_str_eq(a.sub, USER);
    cr_assert_str_eq(b.sub, USER);
    cr_assert_eq(a.exp, b.exp);
    free(t);
    token_cache_free(c);
}

Test(token_cache, cached_token_expires)
{
    struct token_cache *c = token_cache_new();
    char *t = issue(NOW, 60);
    struct token_claims out;
    cr_assert_eq(token_cache_verify(c, KEY, KEY_LEN, t, strlen(t), NOW, &out), 0);
    cr_assert_eq(token_cache_verify(c, KEY, KEY_LEN, t, strlen(t), NOW + 60, &out), -1);
    cr_assert_eq(token_cache_verify(c, KEY, KEY_LEN, t, strlen(t), NOW + 3600, &out), -1);
    free(t);
    token_cache_free(c);
}

Test(token_cache, one_changed_byte_is_verified_again_and_fails)
{
    struct token_cache *c = token_cache_new();
    char *t = issue(NOW, 600);
    size_t len = strlen(t);
    struct token_claims out;
    cr_assert_eq(token_cache_verify(c, KEY, KEY_LEN, t, len, NOW, &out), 0);
    for (size_t i = 0; i < len; i++) {
        char *bad = strdup(t);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        cr_expect_eq(token_cache_verify(c, KEY, KEY_LEN, bad, len, NOW, &out), -1,
                     "byte %zu changed still verified", i);
        free(bad);
    }
    /* A prefix of a cached token is not the cached token. */
    cr_assert_eq(token_cache_verify(c, KEY, KEY_LEN, t, len - 1, NOW, &out), -1);
    free(t);
    token_cache_free(c);
}

Test(token_cache, invalid_tokens_are_never_cached)
{
    struct token_cache *c = token_cache_new();
    char *t = issue(NOW, 600);
    static const unsigned char OTHER[] = "another-key-another-key-another!!";
    struct token_claims out;
    /* Fails under another key, and must keep failing (not cached as valid). */
    cr_assert_eq(token_cache_verify(c, OTHER, sizeof(OTHER) - 1, t, strlen(t), NOW, &out), -1);
    cr_assert_eq(token_cache_verify(c, OTHER, sizeof(OTHER) - 1, t, strlen(t), NOW, &out), -1);
    free(t);
    token_cache_free(c);
}

Test(token_cache, many_tokens_share_slots_correctly)
{
    struct token_cache *c = token_cache_new();
    enum { N = 3 * TOKEN_CACHE_SLOTS };
    char *tokens[N];
    struct token_claims out;
    for (int i = 0; i < N; i++) {
        tokens[i] = issue(NOW + i, 3600);
        cr_assert_eq(token_cache_verify(c, KEY, KEY_LEN, tokens[i], strlen(tokens[i]), NOW + i,
                                        &out), 0);
        cr_assert_eq(out.iat, NOW + i);
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(token_cache_verify(c, KEY, KEY_LEN, tokens[i], strlen(tokens[i]), NOW + N,
                                        &out), 0);
        cr_assert_eq(out.iat, NOW + i, "token %d answered with another token's claims", i);
        free(tokens[i]);
    }
    token_cache_free(c);
}
