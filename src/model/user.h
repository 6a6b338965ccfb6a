/*
 * model/user: the user account record, registration/login input and its JSON.
 *
 * Pure: no I/O, callable from any thread. A `struct user` never owns its
 * strings (the store or the caller says how long they live). The decoded
 * input structs own theirs: free them with their *_free function, which also
 * wipes the password (sodium_memzero).
 *
 * Errors: as model/todo.h (TODO_EJSON with `jerr`, TODO_EINVALID with `errs`).
 */
#ifndef TODO_MODEL_USER_H
#define TODO_MODEL_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/field_errors.h"
#include "model/todo.h"
#include "model/uuid.h"

struct buf;

#define USER_EMAIL_MAX 254
#define USER_PASSWORD_MIN 8   /* characters */
#define USER_PASSWORD_MAX 128 /* characters */
#define USER_NAME_MAX 255     /* characters */

struct user {
    char id[UUID_STR_LEN + 1];
    const char *email;         /* normalised: trimmed, lower-case */
    const char *password_hash; /* Argon2id "$argon2id$..." or legacy bcrypt "$2b$..." */
    const char *name;          /* NULL means null */
    bool is_active;
    int64_t created_at_ms;
    int64_t updated_at_ms;
};

/* POST /auth/register body {email, password, name?}. */
struct user_registration {
    char *email; /* normalised */
    char *password;
    char *name; /* NULL when absent or null */
};

/* POST /auth/login JSON {email, password} or /auth/token form {username, password}.
 * Both are required strings of at most 1024 bytes; nothing else is checked
 * (a wrong value simply fails the login). Unknown fields → TODO_EINVALID. */
struct user_credentials {
    char *email; /* normalised (trimmed, lower-cased) but not otherwise validated */
    char *password;
};

__attribute__((warn_unused_result)) int user_registration_decode(const char *body, size_t len,
                                                                 struct user_registration *out,
                                                                 struct json_error *jerr,
                                                                 struct field_errors *errs);
void user_registration_free(struct user_registration *r);

__attribute__((warn_unused_result)) int user_credentials_decode_json(const char *body, size_t len,
                                                                     struct user_credentials *out,
                                                                     struct json_error *jerr,
                                                                     struct field_errors *errs);
/* application/x-www-form-urlencoded `username=..&password=..` (other OAuth2
 * fields such as grant_type and scope are accepted and ignored). Returns 0 or
 * TODO_EINVALID. */
__attribute__((warn_unused_result)) int user_credentials_decode_form(const char *body, size_t len,
                                                                     struct user_credentials *out,
                                                                     struct field_errors *errs);
void user_credentials_free(struct user_credentials *c);

/* Trim and lower-case (ASCII) `in` into a new string (caller frees); NULL
 * when it does not look like an address (one @, non-empty local and domain
 * parts, at most USER_EMAIL_MAX bytes, valid UTF-8 without whitespace or
 * control characters). */
char *user_email_normalize(const char *in, size_t len);

/* Append {id, email, name, created_at} to `b` (never the hash). */
void user_json_append(struct buf *b, const struct user *u);

#endif
