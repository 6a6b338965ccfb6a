/*
 * model/uuid: UUIDv7 generation (RFC 9562), parsing and canonical text.
 *
 * Canonical text is 36 characters, lower-case, hyphenated. Thread-safe
 * (randomness from libsodium's randombytes_buf; call sodium_init() first).
 */
#ifndef TODO_MODEL_UUID_H
#define TODO_MODEL_UUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UUID_STR_LEN 36

/* A new UUIDv7 for the given Unix time in milliseconds, as canonical text.
 * Ids made by one thread with the same `now_ms` increase strictly (the
 * random bits act as a counter with random steps). */
void uuid_v7(int64_t now_ms, char out[UUID_STR_LEN + 1]);

/* The 16 bytes of a UUID as canonical (lower-case, hyphenated) text. */
void uuid_format(const unsigned char u[16], char out[UUID_STR_LEN + 1]);

/* Parse `s` (36-character hyphenated or 32 hex digits, any case) into
 * canonical text. Returns false (out untouched) when it is not a UUID. */
bool uuid_parse(const char *s, size_t len, char out[UUID_STR_LEN + 1]);

#endif
