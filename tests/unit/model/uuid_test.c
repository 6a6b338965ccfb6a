#include <criterion/criterion.h>

#include <pthread.h>
#include <sodium.h>
#include <string.h>

#include "model/uuid.h"

static void setup(void)
{
    cr_assert_geq(sodium_init(), 0);
}

static int hexval(char c)
{
    return c >= 'a' ? c - 'a' + 10 : c - '0';
}

static void check_canonical(const char *s)
{
    cr_assert_eq(strlen(s), UUID_STR_LEN, "%s", s);
    for (int i = 0; i < UUID_STR_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            cr_assert_eq(s[i], '-', "%s", s);
        else
            cr_assert((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'), "%s", s);
    }
}

static uint64_t timestamp_of(const char *s)
{
    uint64_t ms = 0;
    for (int i = 0; i < 13; i++)
        if (s[i] != '-')
            ms = ms << 4 | (uint64_t)hexval(s[i]);
    return ms;
}

TestSuite(uuid, .init = setup);

Test(uuid, v7_layout)
{
    char id[UUID_STR_LEN + 1];
    int64_t now = 1763709226123; /* 0x019aa5430c8b */
    uuid_v7(now, id);
    check_canonical(id);
    cr_expect_eq(strncmp(id, "019aa543-0c8b-7", 15), 0, "%s", id);
    cr_expect_eq(id[14], '7');                            /* version */
    cr_expect(strchr("89ab", id[19]) != NULL, "%s", id); /* variant 10 */
    cr_expect_eq(timestamp_of(id), (uint64_t)now);
}

Test(uuid, v7_epoch_zero_and_bits_over_many)
{
    for (int i = 0; i < 1000; i++) {
        char id[UUID_STR_LEN + 1];
        int64_t now = (int64_t)i * 7919;
        uuid_v7(now, id);
        check_canonical(id);
        cr_assert_eq(id[14], '7', "%s", id);
        cr_assert(strchr("89ab", id[19]) != NULL, "%s", id);
        cr_assert_eq(timestamp_of(id), (uint64_t)now);
    }
}

Test(uuid, v7_random_part_differs)
{
    char a[UUID_STR_LEN + 1], b[UUID_STR_LEN + 1];
    uuid_v7(1000, a);
    uuid_v7(2000, b);
    cr_expect_neq(strcmp(a + 15, b + 15), 0); /* fresh random bits per millisecond */
}

Test(uuid, v7_monotonic_within_one_millisecond)
{
    char prev[UUID_STR_LEN + 1], cur[UUID_STR_LEN + 1];
    uuid_v7(1763709226123, prev);
    for (int i = 0; i < 10000; i++) {
        uuid_v7(1763709226123, cur);
        cr_assert_gt(strcmp(cur, prev), 0, "%s !> %s", cur, prev);
        cr_assert_eq(cur[14], '7');
        cr_assert(strchr("89ab", cur[19]) != NULL, "%s", cur);
        memcpy(prev, cur, sizeof(cur));
    }
}

Test(uuid, v7_orders_by_time)
{
    char a[UUID_STR_LEN + 1], b[UUID_STR_LEN + 1];
    for (int64_t ms = 1700000000000; ms < 1700000000000 + 500; ms++) {
        uuid_v7(ms, a);
        uuid_v7(ms + 1, b);
        cr_assert_lt(strcmp(a, b), 0, "%s !< %s", a, b);
    }
}

static void *make_many(void *arg)
{
    char(*ids)[UUID_STR_LEN + 1] = arg;
    for (int i = 0; i < 500; i++)
        uuid_v7(1763709226123, ids[i]);
    return NULL;
}

Test(uuid, v7_unique_across_threads)
{
    static char ids[4][500][UUID_STR_LEN + 1];
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, make_many, ids[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4 * 500; i++)
        for (int j = i + 1; j < 4 * 500; j++)
            cr_assert_neq(strcmp(ids[i / 500][i % 500], ids[j / 500][j % 500]), 0);
}

Test(uuid, parse_hyphenated_any_case)
{
    char out[UUID_STR_LEN + 1];
    const char *in = "0190A0B0-C0D0-7E0F-8A1B-2C3D4E5F6A7B";
    cr_assert(uuid_parse(in, strlen(in), out));
    cr_expect_str_eq(out, "0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7b");
    in = "0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7b";
    cr_assert(uuid_parse(in, strlen(in), out));
    cr_expect_str_eq(out, in);
}

Test(uuid, parse_32_hex)
{
    char out[UUID_STR_LEN + 1];
    const char *in = "0190A0B0c0d07e0f8a1b2c3d4e5f6a7b";
    cr_assert(uuid_parse(in, strlen(in), out));
    cr_expect_str_eq(out, "0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7b");
}

Test(uuid, parse_any_version_and_nil)
{
    char out[UUID_STR_LEN + 1];
    const char *v4 = "f47ac10b-58cc-4372-a567-0e02b2c3d479";
    cr_expect(uuid_parse(v4, strlen(v4), out));
    cr_expect_str_eq(out, v4);
    const char *nil = "00000000-0000-0000-0000-000000000000";
    cr_expect(uuid_parse(nil, strlen(nil), out));
}

Test(uuid, parse_round_trips_generated)
{
    char id[UUID_STR_LEN + 1], out[UUID_STR_LEN + 1];
    uuid_v7(1763709226123, id);
    cr_assert(uuid_parse(id, UUID_STR_LEN, out));
    cr_expect_str_eq(out, id);
}

Test(uuid, parse_rejects)
{
    const char *bad[] = {
        "",
        "0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7",   /* 35 */
        "0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7bc", /* 37 */
        "0190a0b0c0d0-7e0f-8a1b-2c3d4e5f6a7b-",  /* hyphens misplaced */
        "0190a0b0-c0d07e0f-8a1b-2c3d-4e5f6a7b",
        "0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7g", /* non-hex */
        "0190a0b0_c0d0_7e0f_8a1b_2c3d4e5f6a7b",
        "{0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a}",
        "0190a0b0c0d07e0f8a1b2c3d4e5f6a7",      /* 31 */
        "0190a0b0c0d07e0f8a1b2c3d4e5f6a7z",
        "0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7 ",
        "x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char out[UUID_STR_LEN + 1] = "untouched";
        cr_expect_not(uuid_parse(bad[i], strlen(bad[i]), out), "\"%s\"", bad[i]);
        cr_expect_str_eq(out, "untouched");
    }
}

Test(uuid, parse_respects_length)
{
    char out[UUID_STR_LEN + 1];
    const char *s = "0190a0b0-c0d0-7e0f-8a1b-2c3d4e5f6a7bEXTRA";
    cr_expect(uuid_parse(s, UUID_STR_LEN, out));
    cr_expect_not(uuid_parse(s, strlen(s), out));
}
