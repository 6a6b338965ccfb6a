/*
 * tests/fuzz/fuzz.h: what every libFuzzer target shares.
 *
 * A target defines LLVMFuzzerTestOneInput(); a property it checks fails with
 * FUZZ_CHECK, which prints the condition and abort()s so libFuzzer saves the
 * input as a crash reproducer. Single-threaded, like libFuzzer's callback.
 */
#ifndef TODO_TESTS_FUZZ_H
#define TODO_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A NUL-terminated copy of the input (caller frees), for the parsers that
 * take C strings; the text ends at the first NUL byte, as it would there. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
