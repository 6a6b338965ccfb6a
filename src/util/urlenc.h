/*
 * util/urlenc: application/x-www-form-urlencoded decoding, shared by the
 * query-string parser and the OAuth2 form body. Pure; any thread.
 */
#ifndef TODO_UTIL_URLENC_H
#define TODO_UTIL_URLENC_H

#include <stdbool.h>
#include <stddef.h>

/* Percent-decode `s[0..len)` into `out` ('+' → space). Returns the decoded
 * length, or -1 on a bad escape (% not followed by two hex digits). `out`
 * needs `len + 1` bytes; the result is NUL-terminated. */
long urlenc_decode(const char *s, size_t len, char *out);

/* Iterate `name=value` pairs separated by '&' (empty pairs are skipped; a
 * pair without '=' has an empty value): returns false at the end.
 * `*pos` starts at 0. The name and value are raw (still encoded). */
bool urlenc_next_pair(const char *s, size_t len, size_t *pos, const char **name,
                      size_t *name_len, const char **value, size_t *value_len);

#endif
