/*
 * util/utf8: UTF-8 validation, character counting and whitespace trimming.
 * Pure; any thread.
 */
#ifndef TODO_UTIL_UTF8_H
#define TODO_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool utf8_valid(const char *s, size_t len);
/* Number of code points in valid UTF-8 s[0..len). */
size_t utf8_count(const char *s, size_t len);

/* Decode the character at s[0..len) (len > 0) into *cp: returns its length
 * in bytes, or 0 when the bytes there are not well-formed UTF-8. */
size_t utf8_next(const char *s, size_t len, uint32_t *cp);

/* True for the code points Python's str.isspace() accepts: ASCII
 * \t \n \v \f \r space, U+001C..U+001F, U+0085, U+00A0 and the Unicode
 * space separators (U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F,
 * U+3000). */
bool utf8_is_space(uint32_t cp);
/* Bounds [*start, *end) of s[0..len) without leading and trailing
 * whitespace (utf8_is_space). Stops at any malformed byte. */
void utf8_trim(const char *s, size_t len, size_t *start, size_t *end);

#endif
