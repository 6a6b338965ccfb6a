/*
 * auth/password: password hashing and verification.
 *
 * New hashes are Argon2id in libsodium's encoded form (crypto_pwhash_str,
 * "interactive" limits). Verification also accepts the old Python app's
 * bcrypt hashes ($2a$/$2b$/$2y$, via libxcrypt crypt_rn) and says when a
 * hash should be upgraded. Passwords are never logged.
 *
 * These calls are slow on purpose (tens of milliseconds, 64 MiB): never call
 * them on an event-loop thread; the API runs them on the offload pool.
 * Thread-safe (call sodium_init() once first).
 */
#ifndef TODO_AUTH_PASSWORD_H
#define TODO_AUTH_PASSWORD_H

#include <stddef.h>

#define PASSWORD_HASH_MAX 128 /* crypto_pwhash_STRBYTES */

enum password_check {
    PASSWORD_MISMATCH = 0,
    PASSWORD_OK = 1,
    PASSWORD_OK_REHASH = 2, /* correct, but the hash is legacy/weaker: store a new one */
};

/* Hash into `out` (NUL-terminated). Returns 0, or -1 on failure (OOM in libsodium). */
__attribute__((warn_unused_result)) int password_hash(const char *password,
                                                      char out[PASSWORD_HASH_MAX]);

/* Check `password` against `hash`. A NULL or unknown-format hash is a
 * mismatch that still costs about as much time as a real check, so a
 * missing user cannot be told from a wrong password by timing. */
enum password_check password_verify(const char *hash, const char *password);

#endif
