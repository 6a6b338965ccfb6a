#include "auth/password.h"

#include <crypt.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

_Static_assert(PASSWORD_HASH_MAX == crypto_pwhash_STRBYTES, "PASSWORD_HASH_MAX mismatch");

#define OPSLIMIT crypto_pwhash_OPSLIMIT_INTERACTIVE
#define MEMLIMIT crypto_pwhash_MEMLIMIT_INTERACTIVE

/* A valid Argon2id hash of a fixed string, made once: unknown hashes are
 * "verified" against it so they cost the same time as a real check. */
static char dummy_hash[PASSWORD_HASH_MAX];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_init(void)
{
    static const char phrase[] = "todo: timing equaliser, never a real password";
    if (sodium_init() < 0 ||
        crypto_pwhash_str(dummy_hash, phrase, sizeof(phrase) - 1, OPSLIMIT, MEMLIMIT) != 0)
        dummy_hash[0] = '\0';
}

int password_hash(const char *password, char out[PASSWORD_HASH_MAX])
{
    if (!password)
        return -1;
    if (crypto_pwhash_str(out, password, strlen(password), OPSLIMIT, MEMLIMIT) != 0)
        return -1;
    return 0;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool is_bcrypt(const char *hash)
{
    return has_prefix(hash, "$2a$") || has_prefix(hash, "$2b$") || has_prefix(hash, "$2y$");
}

static enum password_check verify_argon2(const char *hash, const char *password)
{
    if (crypto_pwhash_str_verify(hash, password, strlen(password)) != 0)
        return PASSWORD_MISMATCH;
    /* 1: weaker parameters or argon2i; -1 cannot follow a successful verify
     * of a well-formed hash, but upgrading is the safe answer. */
    if (crypto_pwhash_str_needs_rehash(hash, OPSLIMIT, MEMLIMIT) != 0)
        return PASSWORD_OK_REHASH;
    return PASSWORD_OK;
}

/* A bcrypt match is always PASSWORD_OK_REHASH: new hashes are Argon2id. */
static enum password_check verify_bcrypt(const char *hash, const char *password)
{
    enum password_check rc = PASSWORD_MISMATCH;
    /* struct crypt_data is tens of KiB: keep it off the offload thread's stack. */
    struct crypt_data *data = xcalloc(1, sizeof(*data));
    /* crypt_rn, not crypt_r: sanitizer runtimes intercept crypt_r, and a
     * --as-needed link whose only libcrypt symbol is crypt_r then drops
     * libcrypt and calls a NULL pointer. crypt_rn returns NULL on failure. */
    const char *out = crypt_rn(password, hash, data, (int)sizeof(*data));
    size_t n = strlen(hash);
    if (out && out[0] != '*' && strlen(out) == n && sodium_memcmp(out, hash, n) == 0)
        rc = PASSWORD_OK_REHASH;
    sodium_memzero(data, sizeof(*data));
    free(data);
    return rc;
}

static enum password_check verify_dummy(const char *password)
{
    pthread_once(&dummy_once, dummy_init);
    if (dummy_hash[0] != '\0') {
        /* Only the cost matters: any outcome is a mismatch. */
        int ignored = crypto_pwhash_str_verify(dummy_hash, password, strlen(password));
        (void)ignored;
    }
    return PASSWORD_MISMATCH;
}

enum password_check password_verify(const char *hash, const char *password)
{
    if (!password)
        password = "";
    /* libsodium reads at most crypto_pwhash_STRBYTES of an encoded hash. */
    if (!hash || strnlen(hash, PASSWORD_HASH_MAX) >= PASSWORD_HASH_MAX)
        return verify_dummy(password);
    if (has_prefix(hash, "$argon2"))
        return verify_argon2(hash, password);
    if (is_bcrypt(hash))
        return verify_bcrypt(hash, password);
    return verify_dummy(password);
}
