/*
 * Fuzz target: RFC 3339 timestamps (API input, SQLite values) through
 * timefmt_parse(). Whatever parses must format and parse back to the same
 * millisecond; and any int64 (the input's first 8 bytes) must format to a
 * canonical text that parses back to it, clamped to years 0000-9999.
 */
#include <inttypes.h>

#include "fuzz.h"
#include "model/timefmt.h"

#define MS_MIN INT64_C(-62167219200000)  /* 0000-01-01T00:00:00.000Z */
#define MS_MAX INT64_C(253402300799999)  /* 9999-12-31T23:59:59.999Z */

static void check_canonical(const char *text)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    FUZZ_CHECK(strlen(text) == TIMEFMT_LEN);
    for (size_t i = 0; i < TIMEFMT_LEN; i++)
        FUZZ_CHECK(shape[i] == 'd' ? text[i] >= '0' && text[i] <= '9' : text[i] == shape[i]);
}

/* format(ms) must be canonical and parse back to `expect`. */
static void check_format(int64_t ms, int64_t expect)
{
    char text[TIMEFMT_LEN + 1];
    int64_t back = 0;
    timefmt_format(ms, text);
    check_canonical(text);
    if (timefmt_parse(text, TIMEFMT_LEN, &back) != 0 || back != expect) {
        fprintf(stderr, "%" PRId64 " -> %s -> %" PRId64 "\n", ms, text, back);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t ms = 0;
    if (timefmt_parse((const char *)data, size, &ms) == 0)
        check_format(ms, ms);
    if (size >= sizeof(int64_t)) {
        int64_t v;
        memcpy(&v, data, sizeof(v));
        check_format(v, v < MS_MIN ? MS_MIN : v > MS_MAX ? MS_MAX : v);
    }
    return 0;
}
