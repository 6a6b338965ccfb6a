#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <time.h>

#include "dbtool/dbconv.h"
#include "dbtool/dbrow.h"
#include "model/timefmt.h"

/* ---- helpers -------------------------------------------------------------- */

static const struct dbcol *col(const char *table, const char *name)
{
    const struct dbtable *t = dbrow_table(table);
    cr_assert_not_null(t);
    int i = dbrow_col_index(t, name);
    cr_assert_geq(i, 0, "no column %s.%s", table, name);
    return &t->cols[i];
}

static struct dbraw text(const char *s)
{
    return (struct dbraw){.kind = DBRAW_TEXT, .p = (const unsigned char *)s, .len = strlen(s)};
}

static struct dbraw textn(const char *s, size_t n)
{
    return (struct dbraw){.kind = DBRAW_TEXT, .p = (const unsigned char *)s, .len = n};
}

static struct dbraw integer(int64_t i)
{
    return (struct dbraw){.kind = DBRAW_INT, .i = i};
}

static struct dbraw real(double r)
{
    return (struct dbraw){.kind = DBRAW_REAL, .r = r};
}

static struct dbraw blob(const void *p, size_t n)
{
    return (struct dbraw){.kind = DBRAW_BLOB, .p = p, .len = n};
}

static const struct dbraw null_raw = {.kind = DBRAW_NULL};

static struct dbval conv_ok_tz(struct dbraw in, const struct dbcol *c, const struct dbconv_tz *tz)
{
    struct dbval v;
    char why[128] = "";
    memset(&v, 0x5a, sizeof(v));
    int rc = dbconv_value(&in, c, tz, &v, why, sizeof(why));
    cr_assert_eq(rc, 0, "%s: %.*s refused: %s", c->name, (int)in.len, (const char *)in.p, why);
    return v;
}

static struct dbval conv_ok(struct dbraw in, const struct dbcol *c)
{
    return conv_ok_tz(in, c, NULL);
}

/* The conversion fails and its reason contains `want`. */
static void conv_fails(struct dbraw in, const struct dbcol *c, const char *want)
{
    struct dbval v;
    char why[128] = "";
    int rc = dbconv_value(&in, c, NULL, &v, why, sizeof(why));
    cr_expect_eq(rc, -1, "%s: kind %d \"%.*s\" accepted", c->name, in.kind, (int)in.len,
                 in.p ? (const char *)in.p : "");
    cr_expect(strstr(why, want) != NULL, "reason \"%s\" lacks \"%s\"", why, want);
}

/* Epoch ms of a UTC civil time, computed by the C library. */
static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s, int ms)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static int64_t ts_ok(const char *s, const struct dbconv_tz *tz)
{
    return conv_ok_tz(text(s), col("users", "created_at"), tz).i;
}

/* ---- booleans ------------------------------------------------------------- */

Test(dbconv_bool, accepted_forms)
{
    const struct dbcol *c = col("todos", "completed");
    const char *yes[] = {"1", "t", "T", "true", "TRUE", "True", " true ", "\tt\n"};
    const char *no[] = {"0", "f", "F", "false", "FALSE", "  0"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        cr_expect_eq(conv_ok(text(yes[i]), c).i, 1, "%s", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        cr_expect_eq(conv_ok(text(no[i]), c).i, 0, "%s", no[i]);
    cr_expect_eq(conv_ok(integer(1), c).i, 1);
    cr_expect_eq(conv_ok(integer(0), c).i, 0);
    cr_expect_eq(conv_ok(real(1.0), c).i, 1);
    cr_expect_eq(conv_ok(real(0.0), c).i, 0);
    cr_expect_not(conv_ok(integer(0), c).null);
}

Test(dbconv_bool, rejections)
{
    const struct dbcol *c = col("users", "is_active");
    const char *bad[] = {"2", "yes", "no", "", " ", "tru", "truee", "-1", "0.5", "on"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        conv_fails(text(bad[i]), c, "not a boolean");
    conv_fails(integer(2), c, "not a boolean");
    conv_fails(integer(-1), c, "not a boolean");
    conv_fails(real(0.5), c, "not a boolean");
    conv_fails(blob("\x01", 1), c, "not a boolean");
    conv_fails(null_raw, c, "NULL");
}

/* ---- timestamps ----------------------------------------------------------- */

Test(dbconv_ts, text_forms)
{
    int64_t base = utc_ms(2024, 3, 1, 12, 34, 56, 0);

    cr_expect_eq(ts_ok("2024-03-01 12:34:56", NULL), base);
    cr_expect_eq(ts_ok("2024-03-01T12:34:56", NULL), base);
    cr_expect_eq(ts_ok("2024-03-01t12:34:56Z", NULL), base);
    cr_expect_eq(ts_ok("2024-03-01 12:34:56.123456", NULL), base + 123);
    cr_expect_eq(ts_ok("2024-03-01 12:34:56.1", NULL), base + 100);
    cr_expect_eq(ts_ok("2024-03-01T12:34:56.999999999Z", NULL), base + 999);
    cr_expect_eq(ts_ok("2024-03-01 12:34", NULL), base - 56000);
    cr_expect_eq(ts_ok("2024-03-01", NULL), utc_ms(2024, 3, 1, 0, 0, 0, 0));
    cr_expect_eq(ts_ok(" 2024-03-01 12:34:56 ", NULL), base);
    /* The model's own format round-trips. */
    char canon[TIMEFMT_LEN + 1];
    timefmt_format(base + 7, canon);
    cr_expect_eq(ts_ok(canon, NULL), base + 7);
}

Test(dbconv_ts, offsets)
{
    int64_t base = utc_ms(2024, 3, 1, 12, 34, 56, 0);

    cr_expect_eq(ts_ok("2024-03-01 14:34:56+02:00", NULL), base);
    cr_expect_eq(ts_ok("2024-03-01 14:34:56+0200", NULL), base);
    cr_expect_eq(ts_ok("2024-03-01 14:34:56+02", NULL), base);
    cr_expect_eq(ts_ok("2024-03-01 07:04:56-05:30", NULL), base);
    cr_expect_eq(ts_ok("2024-03-01 07:04:56.250-0530", NULL), base + 250);
    /* PostgreSQL's text output, including a historic offset with seconds. */
    cr_expect_eq(ts_ok("2026-11-21 07:13:46.123+00", NULL), utc_ms(2026, 11, 21, 7, 13, 46, 123));
    cr_expect_eq(ts_ok("1890-01-01 00:53:28+00:53:28", NULL), utc_ms(1890, 1, 1, 0, 0, 0, 0));
    /* An explicit offset wins over the source zone. */
    char err[200];
    struct dbconv_tz *tz = dbconv_tz_open("Europe/Berlin", err, sizeof(err));
    cr_assert_not_null(tz, "%s", err);
    cr_expect_eq(ts_ok("2024-03-01 12:34:56Z", tz), base);
    cr_expect_eq(ts_ok("2024-03-01 12:34:56+00:00", tz), base);
    dbconv_tz_close(tz);
}

Test(dbconv_ts, epoch_numbers)
{
    cr_expect_eq(conv_ok(integer(1700000000), col("users", "created_at")).i, 1700000000000);
    cr_expect_eq(conv_ok(integer(1700000000123), col("users", "created_at")).i, 1700000000123);
    cr_expect_eq(conv_ok(integer(0), col("users", "created_at")).i, 0);
    cr_expect_eq(conv_ok(integer(-86400), col("users", "created_at")).i, -86400000);
    /* Just below 1e11 is seconds (year 5138); 1e11 itself is milliseconds. */
    cr_expect_eq(conv_ok(integer(99999999999), col("users", "created_at")).i, 99999999999000);
    cr_expect_eq(conv_ok(integer(100000000000), col("users", "created_at")).i, 100000000000);
    cr_expect_eq(conv_ok(real(1700000000.5), col("users", "created_at")).i, 1700000000500);
    cr_expect_eq(conv_ok(real(1.001), col("users", "created_at")).i, 1001);
    cr_expect_eq(conv_ok(real(-1.5), col("users", "created_at")).i, -1500);
    cr_expect_eq(conv_ok(real(1700000000123.0), col("users", "created_at")).i, 1700000000123);
    cr_expect_eq(ts_ok("1700000000", NULL), 1700000000000);
    cr_expect_eq(ts_ok("1700000000123", NULL), 1700000000123);
    cr_expect_eq(ts_ok("1700000000.25", NULL), 1700000000250);
    cr_expect_eq(ts_ok("+12", NULL), 12000);
    cr_expect_eq(ts_ok("-1.5", NULL), -1500);
}

Test(dbconv_ts, fractions_beyond_ms_truncate_toward_the_past)
{
    cr_expect_eq(ts_ok("1.0015", NULL), 1001);
    cr_expect_eq(ts_ok("1.0019999", NULL), 1001);
    cr_expect_eq(ts_ok("-0.0005", NULL), -1);
    cr_expect_eq(ts_ok("-0.0010", NULL), -1);
    cr_expect_eq(ts_ok("1700000000123.9", NULL), 1700000000123);
    cr_expect_eq(ts_ok("1969-12-31 23:59:59.9999", NULL), -1);
    cr_expect_eq(ts_ok("2024-03-01 12:00:00.0009", NULL), utc_ms(2024, 3, 1, 12, 0, 0, 0));
    cr_expect_eq(conv_ok(real(1.0009), col("users", "created_at")).i, 1000);
}

Test(dbconv_ts, impossible_dates_and_garbage)
{
    const struct dbcol *c = col("todos", "created_at");
    const char *impossible[] = {"2024-02-30", "2023-02-29 00:00:00", "2024-13-01 00:00:00",
                                "2024-00-10", "2024-04-31 10:00", "2024-03-01 24:00:00",
                                "2024-03-01 12:60:00", "2024-03-01 12:00:60",
                                "0000-06-01 00:00:00"};
    const char *garbage[] = {"", "yesterday", "2024-3-1", "2024-03-01 12", "2024-03-01 12:34:56.",
                             "2024-03-01 12:34:56 +02:00", "2024-03-01 12:34:56+2",
                             "2024-03-01 12:34:56+02:00x", "2024-03-01 12:34:56Zulu",
                             "2024/03/01", "1e9", "0x10", "12.", "--5",
                             "2024-03-01 12:34:56+24:00"};

    for (size_t i = 0; i < sizeof(impossible) / sizeof(impossible[0]); i++)
        conv_fails(text(impossible[i]), c, "not a timestamp");
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
        conv_fails(text(garbage[i]), c, "not a timestamp");
    cr_expect_eq(ts_ok("2024-02-29 23:59:59", NULL), utc_ms(2024, 2, 29, 23, 59, 59, 0));
    conv_fails(blob("2024", 4), c, "not a timestamp");
    conv_fails(real(1.0 / 0.0), c, "not a timestamp");
    conv_fails(null_raw, c, "NULL");
}

Test(dbconv_ts, years_0001_to_9999_only)
{
    const struct dbcol *c = col("todos", "updated_at");

    cr_expect_eq(ts_ok("0001-01-01 00:00:00", NULL), INT64_C(-62135596800000));
    cr_expect_eq(ts_ok("9999-12-31 23:59:59.999", NULL), INT64_C(253402300799999));
    conv_fails(text("9999-12-31 23:59:59.999-00:01"), c, "0001..9999");
    conv_fails(text("0001-01-01 00:00:00+00:01"), c, "0001..9999");
    conv_fails(integer(INT64_C(253402300800000)), c, "0001..9999");
    conv_fails(integer(INT64_C(-62135596800001)), c, "0001..9999");
    conv_fails(text("99999999999999999999"), c, "not a timestamp");
}

Test(dbconv_ts, nullable_column_keeps_null)
{
    struct dbval v = conv_ok(null_raw, col("todos", "completed_at"));
    cr_expect(v.null);
}

/* ---- time zones ----------------------------------------------------------- */

Test(dbconv_tz, berlin_summer_and_winter)
{
    char err[200];
    struct dbconv_tz *tz = dbconv_tz_open("Europe/Berlin", err, sizeof(err));
    cr_assert_not_null(tz, "%s", err);

    cr_expect_eq(ts_ok("2024-07-01 12:00:00", tz), utc_ms(2024, 7, 1, 10, 0, 0, 0));
    cr_expect_eq(ts_ok("2024-01-15 12:00:00.250", tz), utc_ms(2024, 1, 15, 11, 0, 0, 250));
    /* After the TZif file's last listed transition (2037): the footer rule. */
    cr_expect_eq(ts_ok("2050-07-01 12:00:00", tz), utc_ms(2050, 7, 1, 10, 0, 0, 0));
    cr_expect_eq(ts_ok("2050-12-01 12:00:00", tz), utc_ms(2050, 12, 1, 11, 0, 0, 0));
    /* Clocks forward on 2024-03-31 at 02:00 → 03:00: 02:30 does not exist
     * and is read with the offset before the change (+01), as PostgreSQL does. */
    cr_expect_eq(ts_ok("2024-03-31 02:30:00", tz), utc_ms(2024, 3, 31, 1, 30, 0, 0));
    cr_expect_eq(ts_ok("2024-03-31 03:00:00", tz), utc_ms(2024, 3, 31, 1, 0, 0, 0));
    /* Clocks back on 2024-10-27 at 03:00 → 02:00: 02:30 happens twice; the
     * later instant (+01) is taken, as PostgreSQL does. */
    cr_expect_eq(ts_ok("2024-10-27 02:30:00", tz), utc_ms(2024, 10, 27, 1, 30, 0, 0));
    cr_expect_eq(ts_ok("2024-10-27 01:59:59", tz), utc_ms(2024, 10, 26, 23, 59, 59, 0));
    /* Epoch numbers are absolute: the zone does not apply. */
    cr_expect_eq(conv_ok_tz(integer(1700000000), col("users", "created_at"), tz).i,
                 1700000000000);
    dbconv_tz_close(tz);
}

Test(dbconv_tz, fixed_offsets_and_utc)
{
    char err[200];
    const char *names[] = {"+05:30", "+0530", "-03", "UTC", "z"};
    const int64_t offs[] = {19800, 19800, -10800, 0, 0};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct dbconv_tz *tz = dbconv_tz_open(names[i], err, sizeof(err));
        cr_assert_not_null(tz, "%s: %s", names[i], err);
        cr_expect_eq(ts_ok("2024-01-01 00:00:00", tz), utc_ms(2024, 1, 1, 0, 0, 0, 0) -
                                                           offs[i] * 1000, "%s", names[i]);
        dbconv_tz_close(tz);
    }
}

Test(dbconv_tz, unknown_zones_are_refused)
{
    const char *bad[] = {"Mars/Olympus", "../../etc/passwd", "/etc/localtime", "+25:00",
                         "+05:3", "", "Europe/Berlin/", "Europe"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[200] = "";
        struct dbconv_tz *tz = dbconv_tz_open(bad[i], err, sizeof(err));
        cr_expect_null(tz, "\"%s\" accepted", bad[i]);
        dbconv_tz_close(tz);
        cr_expect(strstr(err, "--source-timezone") != NULL, "%s: %s", bad[i], err);
    }
    dbconv_tz_close(NULL);
}

/* The wall time of Unix second u in the process's TZ. */
static void wall(time_t u, struct tm *tm)
{
    localtime_r(&u, tm);
}

static bool same_wall(const struct tm *a, const struct tm *b)
{
    return a->tm_year == b->tm_year && a->tm_mon == b->tm_mon && a->tm_mday == b->tm_mday &&
           a->tm_hour == b->tm_hour && a->tm_min == b->tm_min && a->tm_sec == b->tm_sec;
}

/* Many random wall times in several zones (northern and southern DST,
 * half-hour offsets, historic changes, years past 2037) against the C
 * library's mktime, skipping times that occur twice or not at all. */
Test(dbconv_tz, agrees_with_the_c_library)
{
    const char *zones[] = {"Europe/Berlin", "America/New_York", "Australia/Sydney",
                           "Asia/Kolkata", "Europe/Moscow", "America/Sao_Paulo",
                           "Australia/Lord_Howe", "Pacific/Apia"};
    uint64_t x = 0x9e3779b97f4a7c15u;
    int checked = 0;

    for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
        char err[200];
        struct dbconv_tz *tz = dbconv_tz_open(zones[z], err, sizeof(err));
        cr_assert_not_null(tz, "%s: %s", zones[z], err);
        setenv("TZ", zones[z], 1);
        tzset();
        for (int i = 0; i < 3000; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            struct tm tm = {.tm_year = (int)(x % 200), /* 1900..2099 */
                            .tm_mon = (int)((x >> 8) % 12), .tm_mday = 1 + (int)((x >> 16) % 28),
                            .tm_hour = (int)((x >> 24) % 24), .tm_min = (int)((x >> 32) % 60),
                            .tm_sec = (int)((x >> 40) % 60), .tm_isdst = -1};
            struct tm want = tm, got;
            time_t u = mktime(&tm);
            bool unique = true;
            wall(u, &got);
            if (!same_wall(&got, &want))
                continue; /* a gap */
            for (int k = -8; k <= 8 && unique; k++) {
                struct tm other;
                wall(u + k * 900, &other);
                if (k != 0 && same_wall(&other, &want))
                    unique = false;
            }
            if (!unique)
                continue;
            char s[40];
            snprintf(s, sizeof(s), "%04d-%02d-%02d %02d:%02d:%02d", want.tm_year + 1900,
                     want.tm_mon + 1, want.tm_mday, want.tm_hour, want.tm_min, want.tm_sec);
            cr_expect_eq(ts_ok(s, tz), (int64_t)u * 1000, "%s %s", zones[z], s);
            checked++;
        }
        dbconv_tz_close(tz);
    }
    unsetenv("TZ");
    tzset();
    cr_expect_gt(checked, 20000, "only %d checked", checked);
}

/* ---- UUIDs ---------------------------------------------------------------- */

Test(dbconv_uuid, forms)
{
    const struct dbcol *c = col("users", "id");
    const char *want = "0190f1a2-b3c4-7d5e-8f60-718293a4b5c6";

    cr_expect_str_eq(conv_ok(text("0190f1a2b3c47d5e8f60718293a4b5c6"), c).uuid, want);
    cr_expect_str_eq(conv_ok(text("0190F1A2B3C47D5E8F60718293A4B5C6"), c).uuid, want);
    cr_expect_str_eq(conv_ok(text("0190F1A2-B3C4-7D5E-8F60-718293A4B5C6"), c).uuid, want);
    cr_expect_str_eq(conv_ok(text(want), c).uuid, want);
    const unsigned char b[16] = {0x01, 0x90, 0xf1, 0xa2, 0xb3, 0xc4, 0x7d, 0x5e,
                                 0x8f, 0x60, 0x71, 0x82, 0x93, 0xa4, 0xb5, 0xc6};
    cr_expect_str_eq(conv_ok(blob(b, 16), col("todos", "user_id")).uuid, want);
}

Test(dbconv_uuid, rejections)
{
    const struct dbcol *c = col("todos", "id");
    const unsigned char b[17] = {0};

    conv_fails(text("0190f1a2b3c47d5e8f60718293a4b5c"), c, "not a UUID");    /* 31 */
    conv_fails(text("0190f1a2b3c47d5e8f60718293a4b5c6a"), c, "not a UUID");  /* 33 */
    conv_fails(text("0190f1a2b3c47d5e8f60718293a4b5cg"), c, "not a UUID");
    conv_fails(text("0190f1a2-b3c4-7d5e-8f60_718293a4b5c6"), c, "not a UUID");
    conv_fails(text("{0190f1a2-b3c4-7d5e-8f60-718293a4b5c6}"), c, "not a UUID");
    conv_fails(text(""), c, "not a UUID");
    conv_fails(blob(b, 15), c, "not a UUID");
    conv_fails(blob(b, 17), c, "not a UUID");
    conv_fails(integer(12), c, "not a UUID");
    conv_fails(null_raw, c, "NULL");
}

/* ---- text ----------------------------------------------------------------- */

Test(dbconv_text, accepted)
{
    struct dbval v = conv_ok(text("Buy milk"), col("todos", "title"));
    cr_expect_eq(v.len, 8);
    cr_expect(memcmp(v.s, "Buy milk", 8) == 0);
    v = conv_ok(blob("caf\xc3\xa9", 5), col("todos", "description"));
    cr_expect_eq(v.len, 5);
    v = conv_ok(text(""), col("todos", "description"));
    cr_expect_eq(v.len, 0);
    cr_expect_not(v.null);
    cr_expect(conv_ok(null_raw, col("users", "name")).null);
    cr_expect(conv_ok(null_raw, col("todos", "description")).null);
}

/* A number's text lives in the dbval itself (out->uuid), so convert into a
 * local: conv_ok's by-value copy would point into the callee's frame. */
static void expect_number_text(struct dbraw in, const char *want)
{
    struct dbval v;
    char why[128] = "";
    cr_assert_eq(dbconv_value(&in, col("todos", "title"), NULL, &v, why, sizeof(why)), 0, "%s",
                 why);
    cr_expect(v.len == strlen(want) && memcmp(v.s, want, v.len) == 0, "got %.*s, want %s",
              (int)v.len, v.s, want);
}

Test(dbconv_text, numbers_become_text)
{
    expect_number_text(integer(123), "123");
    expect_number_text(integer(-9), "-9");
    expect_number_text(real(1.5), "1.5");
    expect_number_text(real(100.0), "100.0");
}

Test(dbconv_text, character_limits)
{
    char title[2 * 256 + 1];
    const struct dbcol *c = col("todos", "title");

    for (int i = 0; i < 256; i++)
        memcpy(title + 2 * i, "\xc3\xa9", 2); /* é: 2 bytes, 1 character */
    title[512] = '\0';
    conv_ok(textn(title, 510), c); /* 255 characters, 510 bytes */
    conv_fails(textn(title, 512), c, "title longer than 255 characters");
    conv_fails(text(""), c, "title is empty");
    char name[300];
    memset(name, 'n', sizeof(name));
    conv_ok(textn(name, 255), col("users", "name"));
    conv_fails(textn(name, 256), col("users", "name"), "name longer than 255");
    conv_fails(textn(name, 256), col("users", "email"), "email longer than 255");
    conv_ok(textn(name, 300), col("todos", "description"));
}

Test(dbconv_text, rejections)
{
    const struct dbcol *c = col("todos", "title");

    conv_fails(text("bad \xff byte"), c, "not valid UTF-8");
    conv_fails(text("\xc0\xaf"), c, "not valid UTF-8");        /* overlong '/' */
    conv_fails(text("\xed\xa0\x80"), c, "not valid UTF-8");    /* surrogate */
    conv_fails(text("cut \xe2\x82"), c, "not valid UTF-8");
    conv_fails(textn("nul\0byte", 8), c, "NUL byte");
    conv_fails(blob("a\0", 2), col("todos", "description"), "NUL byte");
    conv_fails(null_raw, c, "NULL");
    conv_fails(null_raw, col("users", "email"), "NULL");
    conv_fails(null_raw, col("users", "password_hash"), "NULL");
}

/* ---- integers ------------------------------------------------------------- */

Test(dbconv_int, version)
{
    const struct dbcol *c = col("todos", "version");

    cr_expect_eq(conv_ok(integer(1), c).i, 1);
    cr_expect_eq(conv_ok(integer(2147483647), c).i, 2147483647);
    cr_expect_eq(conv_ok(text(" 7 "), c).i, 7);
    cr_expect_eq(conv_ok(text("+7"), c).i, 7);
    cr_expect_eq(conv_ok(real(3.0), c).i, 3);
    conv_fails(integer(0), c, "version less than 1");
    conv_fails(integer(-4), c, "version less than 1");
    conv_fails(text("0"), c, "version less than 1");
    conv_fails(integer(2147483648), c, "version greater than 2147483647");
    conv_fails(real(3.5), c, "not an integer");
    conv_fails(text("abc"), c, "not an integer");
    conv_fails(text("1.0"), c, "not an integer");
    conv_fails(text(""), c, "not an integer");
    conv_fails(text("99999999999999999999999"), c, "not an integer");
    conv_fails(blob("\x01", 1), c, "not an integer");
    conv_fails(null_raw, c, "NULL");
}

/* ---- messages ------------------------------------------------------------- */

static char *raw_text(struct dbraw in)
{
    struct buf b;
    buf_init(&b, 1024);
    dbconv_raw_text(&in, &b);
    return buf_take(&b, NULL);
}

Test(dbconv_raw_text, forms)
{
    char *s;

    s = raw_text(text("2024-02-30"));
    cr_expect_str_eq(s, "\"2024-02-30\"");
    free(s);
    s = raw_text(textn("a\"b\\c\n\x01\xff\xc3\xa9", 10));
    cr_expect_str_eq(s, "\"a\\\"b\\\\c\\x0a\\x01\\xff\xc3\xa9\"");
    free(s);
    s = raw_text(integer(-42));
    cr_expect_str_eq(s, "-42");
    free(s);
    s = raw_text(real(0.5));
    cr_expect_str_eq(s, "0.5");
    free(s);
    s = raw_text(null_raw);
    cr_expect_str_eq(s, "NULL");
    free(s);
    s = raw_text(blob("\x01\xab\xff", 3));
    cr_expect_str_eq(s, "x'01abff'");
    free(s);
}

Test(dbconv_raw_text, long_values_are_shortened)
{
    char big[500];
    memset(big, 'x', sizeof(big));
    char *s = raw_text(textn(big, sizeof(big)));
    cr_expect_lt(strlen(s), 80);
    cr_expect(strstr(s, "...") != NULL, "%s", s);
    free(s);
    s = raw_text(blob(big, sizeof(big)));
    cr_expect_lt(strlen(s), 80);
    cr_expect(strstr(s, "...") != NULL, "%s", s);
    free(s);
    /* A multi-byte character is never cut in half. */
    char e[200];
    for (int i = 0; i < 100; i++)
        memcpy(e + 2 * i, "\xc3\xa9", 2);
    s = raw_text(textn(e + 1, 199));
    cr_expect(strstr(s, "\\xa9") == s + 1, "%s", s);
    size_t n = strlen(s);
    cr_expect(n > 4 && memcmp(s + n - 4, "\"...", 4) == 0);
    cr_expect(s[n - 5] == '\xa9', "the last character is whole");
    free(s);
}

/* ---- naive times against PostgreSQL ------------------------------------- */

#include <libpq-fe.h>

#include "util/dburl.h"

/* Wall times around every offset change of `zone` in 1900..2100 (found
 * with the C library, stepping hourly), each read by dbconv and by
 * PostgreSQL (`'...'::timestamp AT TIME ZONE zone`): the same instant,
 * including the times that occur twice or not at all. */
static int check_zone_against_pg(PGconn *pg, const char *zone)
{
    char err[200];
    struct dbconv_tz *tz = dbconv_tz_open(zone, err, sizeof(err));
    struct buf arr;
    char (*texts)[64] = malloc(sizeof(*texts) * 40000);
    int n = 0;

    cr_assert_not_null(tz, "%s", err);
    setenv("TZ", zone, 1);
    tzset();
    buf_init(&arr, 1 << 22);
    buf_append_char(&arr, '{');
    long prev_off = LONG_MIN;
    for (time_t u = -2208988800; u < 4102444800 && n < 39000; u += 3600) {
        struct tm tm;
        localtime_r(&u, &tm);
        if (prev_off != LONG_MIN && tm.tm_gmtoff != prev_off) {
            /* Local times from 3 h before to 3 h after, every 10 minutes,
             * by the offset before the change. */
            for (time_t l = u + prev_off - 3 * 3600; l <= u + prev_off + 3 * 3600; l += 600) {
                struct tm w;
                gmtime_r(&l, &w);
                snprintf(texts[n], sizeof(texts[n]), "%04d-%02d-%02d %02d:%02d:%02d",
                         w.tm_year + 1900, w.tm_mon + 1, w.tm_mday, w.tm_hour, w.tm_min,
                         w.tm_sec);
                buf_printf(&arr, "%s\"%s\"", n > 0 ? "," : "", texts[n]);
                n++;
            }
        }
        prev_off = tm.tm_gmtoff;
    }
    buf_append_char(&arr, '}');
    unsetenv("TZ");
    tzset();
    const char *params[2] = {arr.data, zone};
    PGresult *r = PQexecParams(pg,
                               "SELECT (extract(epoch FROM x::timestamp AT TIME ZONE $2) "
                               "* 1000)::int8 FROM unnest($1::text[]) WITH ORDINALITY AS a(x, o) "
                               "ORDER BY o",
                               2, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
    cr_assert_eq(PQntuples(r), n);
    for (int i = 0; i < n; i++) {
        int64_t want = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        cr_expect_eq(ts_ok(texts[i], tz), want, "%s %s", zone, texts[i]);
    }
    PQclear(r);
    buf_free(&arr);
    free(texts);
    dbconv_tz_close(tz);
    return n;
}

Test(dbconv_tz, naive_times_as_postgresql_reads_them, .timeout = 120)
{
    const char *url = getenv("DATABASE_URL");
    const char *zones[] = {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
                           "Europe/Moscow", "America/Sao_Paulo", "Pacific/Apia",
                           "Asia/Kolkata"};
    struct dburl u = {0};
    char err[256];

    if (url == NULL || strncmp(url, "postgres", 8) != 0)
        cr_skip_test("DATABASE_URL is not PostgreSQL (run under scripts/with-pg)");
    cr_assert_eq(dburl_parse(url, &u, err, sizeof(err)), 0, "%s", err);
    PGconn *pg = PQconnectdb(u.conninfo);
    dburl_free(&u);
    cr_assert_eq(PQstatus(pg), CONNECTION_OK, "%s", PQerrorMessage(pg));
    int total = 0;
    for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++)
        total += check_zone_against_pg(pg, zones[z]);
    cr_expect_gt(total, 5000);
    PQfinish(pg);
}
