/*
 * util/utf8: UTF-8 validation and character counting. Pure; any thread.
 */
#ifndef TODO_UTIL_UTF8_H
#define TODO_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool utf8_valid(const char *s, size_t len);
/* Number of code points in valid UTF-8 s[0..len). */
size_t utf8_count(const char *s, size_t len);

#endif
