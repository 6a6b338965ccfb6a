#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "model/timefmt.h"

static void check_format(int64_t ms, const char *expected)
{
    char out[TIMEFMT_LEN + 1];
    memset(out, 'X', sizeof(out));
    timefmt_format(ms, out);
    cr_expect_str_eq(out, expected, "format(%lld)", (long long)ms);
    cr_expect_eq(strlen(out), TIMEFMT_LEN);
}

static int64_t parse_ok(const char *s)
{
    int64_t ms = 0;
    cr_assert_eq(timefmt_parse(s, strlen(s), &ms), 0, "parse(\"%s\") failed", s);
    return ms;
}

static void check_parse_fails(const char *s)
{
    int64_t ms = 12345;
    cr_expect_eq(timefmt_parse(s, strlen(s), &ms), -1, "parse(\"%s\") succeeded", s);
    cr_expect_eq(ms, 12345, "parse(\"%s\") touched *ms", s);
}

Test(timefmt, format_known_values)
{
    check_format(0, "1970-01-01T00:00:00.000Z");
    check_format(1, "1970-01-01T00:00:00.001Z");
    check_format(-1, "1969-12-31T23:59:59.999Z");
    check_format(1763709226123, "2025-11-21T07:13:46.123Z");
    check_format(1709208000000, "2024-02-29T12:00:00.000Z");
    check_format(951868799999, "2000-02-29T23:59:59.999Z");
    check_format(-2203891200000, "1900-03-01T00:00:00.000Z");
    check_format(253402300799999, "9999-12-31T23:59:59.999Z");
    check_format(-62135596800000, "0001-01-01T00:00:00.000Z");
    check_format(-62167219200000, "0000-01-01T00:00:00.000Z");
}

Test(timefmt, format_clamps_out_of_range)
{
    check_format(253402300800000, "9999-12-31T23:59:59.999Z");
    check_format(INT64_MAX, "9999-12-31T23:59:59.999Z");
    check_format(-62167219200001, "0000-01-01T00:00:00.000Z");
    check_format(INT64_MIN, "0000-01-01T00:00:00.000Z");
}

/* Cross-check against the C library over many spread-out instants. */
Test(timefmt, format_matches_gmtime)
{
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        /* 1900-01-01 .. 9999-12-31 */
        int64_t lo = -2208988800000, hi = 253402300799999;
        int64_t ms = lo + (int64_t)(x % (uint64_t)(hi - lo));
        time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
        struct tm tm;
        cr_assert_not_null(gmtime_r(&secs, &tm));
        char expected[64];
        snprintf(expected, sizeof(expected), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(ms - (int64_t)secs * 1000));
        char out[TIMEFMT_LEN + 1];
        timefmt_format(ms, out);
        cr_assert_str_eq(out, expected, "ms=%lld", (long long)ms);
        cr_assert_eq(parse_ok(out), ms);
    }
}

Test(timefmt, round_trip_edges)
{
    const int64_t values[] = {0, -1, 1, 951868799999, 951868800000, 1709208000000,
                              253402300799999, -62167219200000, 4107542399999 /* 2100-02-28 */};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char out[TIMEFMT_LEN + 1];
        timefmt_format(values[i], out);
        cr_expect_eq(parse_ok(out), values[i], "%s", out);
    }
}

Test(timefmt, parse_variants)
{
    cr_expect_eq(parse_ok("1970-01-01T00:00:00Z"), 0);
    cr_expect_eq(parse_ok("1970-01-01t00:00:00z"), 0);
    cr_expect_eq(parse_ok("1970-01-01 00:00:00Z"), 0);
    cr_expect_eq(parse_ok("1970-01-01T00:00:00.5Z"), 500);
    cr_expect_eq(parse_ok("1970-01-01T00:00:00.05Z"), 50);
    cr_expect_eq(parse_ok("1970-01-01T00:00:00.123456789Z"), 123);
    cr_expect_eq(parse_ok("1970-01-01T00:00:00.999999Z"), 999);
    cr_expect_eq(parse_ok("2025-11-21T07:13:46.123Z"), 1763709226123);
}

Test(timefmt, parse_offsets)
{
    cr_expect_eq(parse_ok("1970-01-01T05:30:00+05:30"), 0);
    cr_expect_eq(parse_ok("1969-12-31T19:00:00-05:00"), 0);
    cr_expect_eq(parse_ok("1970-01-01T00:00:00+00:00"), 0);
    cr_expect_eq(parse_ok("1970-01-01T00:00:00-00:00"), 0);
    cr_expect_eq(parse_ok("2025-11-21T12:43:46.123+05:30"), 1763709226123);
    cr_expect_eq(parse_ok("1970-01-01T00:00:00.001+23:59"), 1 - (23 * 60 + 59) * 60000LL);
}

/* Found by tests/fuzz/fuzz_timefmt: an offset could carry the edge years out
 * of the range timefmt_format() writes, so the text did not round-trip. */
Test(timefmt, parse_rejects_offsets_beyond_the_range)
{
    check_parse_fails("0000-01-01T00:00:00+00:01");
    check_parse_fails("0000-01-01T00:00:00.999+00:01");
    check_parse_fails("9999-12-31T23:59:59.999-00:01");
    check_parse_fails("9999-12-31T23:59:00-23:59");
    cr_expect_eq(parse_ok("0000-01-01T00:01:00+00:01"), -62167219200000);
    cr_expect_eq(parse_ok("0000-01-01T00:00:00-00:01"), -62167219200000 + 60000);
    cr_expect_eq(parse_ok("9999-12-31T23:58:59.999-00:01"), 253402300799999);
    cr_expect_eq(parse_ok("9999-12-31T23:59:59.999+23:59"), 253402300799999 - 86340000);
}

Test(timefmt, parse_leap_years)
{
    parse_ok("2000-02-29T00:00:00Z");
    parse_ok("2024-02-29T00:00:00Z");
    parse_ok("1600-02-29T00:00:00Z");
    check_parse_fails("1900-02-29T00:00:00Z");
    check_parse_fails("2100-02-29T00:00:00Z");
    check_parse_fails("2023-02-29T00:00:00Z");
}

Test(timefmt, parse_rejects)
{
    const char *bad[] = {
        "",
        "2025",
        "2025-11-21",
        "2025-11-21T07:13:46",        /* no zone */
        "2025-11-21T07:13:46.Z",      /* empty fraction */
        "2025-11-21T07:13:46.123",    /* no zone */
        "2025-11-21T07:13:46.123ZZ",  /* trailing */
        "2025-11-21T07:13:46.123Z ",  /* trailing space */
        " 2025-11-21T07:13:46Z",
        "2025-13-01T00:00:00Z",
        "2025-00-01T00:00:00Z",
        "2025-04-31T00:00:00Z",
        "2025-01-00T00:00:00Z",
        "2025-01-01T24:00:00Z",
        "2025-01-01T00:60:00Z",
        "2025-01-01T00:00:60Z",       /* leap second */
        "2025-01-01T00:00:00+24:00",
        "2025-01-01T00:00:00+05:60",
        "2025-01-01T00:00:00+0530",
        "2025-01-01T00:00:00+05",
        "2025-1-01T00:00:00Z",
        "25-01-01T00:00:00Z",
        "2025/01/01T00:00:00Z",
        "2025-01-01X00:00:00Z",
        "2025-01-01T00:00:00Y",
        "+2025-01-01T00:00:00Z",
        "2025-01-01T0a:00:00Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_parse_fails(bad[i]);
}

Test(timefmt, parse_respects_length)
{
    const char *s = "1970-01-01T00:00:00.000Zgarbage";
    int64_t ms = -5;
    cr_expect_eq(timefmt_parse(s, 24, &ms), 0);
    cr_expect_eq(ms, 0);
    cr_expect_eq(timefmt_parse(s, 23, &ms), -1);
}

Test(timefmt, now_is_current)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t now = timefmt_now_ms();
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t after = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    cr_expect_geq(now, before);
    cr_expect_leq(now, after);
    cr_expect_gt(now, 1700000000000); /* after 2023 */
}
