/*
 * Fuzz target: UUIDs from paths, bodies and SQLite values through
 * uuid_parse(). An accepted UUID must come out canonical (36 characters,
 * lower-case hex, hyphens at 8/13/18/23) with the input's hex digits, and
 * parse to itself again; a rejected one must leave `out` untouched.
 */
#include <ctype.h>
#include <stdbool.h>

#include "fuzz.h"
#include "model/uuid.h"

static void check_canonical(const char *u)
{
    FUZZ_CHECK(strlen(u) == UUID_STR_LEN);
    for (size_t i = 0; i < UUID_STR_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            FUZZ_CHECK(u[i] == '-');
        else
            FUZZ_CHECK((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'f'));
    }
}

/* The input's hex digits, lower-cased, must be the output's. */
static void check_same_digits(const uint8_t *data, size_t size, const char *u)
{
    char in[33], out[33];
    size_t n = 0, m = 0;
    for (size_t i = 0; i < size; i++)
        if (data[i] != '-') {
            FUZZ_CHECK(n < 32 && isxdigit(data[i]));
            in[n++] = (char)tolower(data[i]);
        }
    for (size_t i = 0; i < UUID_STR_LEN; i++)
        if (u[i] != '-')
            out[m++] = u[i];
    FUZZ_CHECK(n == 32 && m == 32 && memcmp(in, out, 32) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char u[UUID_STR_LEN + 1], again[UUID_STR_LEN + 1];
    memset(u, 'X', sizeof(u));
    if (!uuid_parse((const char *)data, size, u)) {
        for (size_t i = 0; i < sizeof(u); i++)
            FUZZ_CHECK(u[i] == 'X');
        return 0;
    }
    FUZZ_CHECK(size == UUID_STR_LEN || size == 32);
    check_canonical(u);
    check_same_digits(data, size, u);
    FUZZ_CHECK(uuid_parse(u, UUID_STR_LEN, again) && memcmp(u, again, sizeof(u)) == 0);
    return 0;
}
