#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

Test(buf, append_keeps_nul_terminated)
{
    struct buf b;
    buf_init(&b, 1024);
    cr_expect_null(b.data);
    buf_append(&b, "ab", 2);
    buf_append_str(&b, "cd");
    buf_append_char(&b, 'e');
    cr_expect_eq(b.len, 5);
    cr_expect_str_eq(b.data, "abcde");
    cr_expect_not(b.overflow);
    buf_free(&b);
    cr_expect_null(b.data);
    cr_expect_eq(b.len, 0);
}

Test(buf, empty_append_allocates)
{
    struct buf b;
    buf_init(&b, 16);
    buf_append(&b, "", 0);
    cr_assert_not_null(b.data);
    cr_expect_str_eq(b.data, "");
    buf_free(&b);
}

Test(buf, grows_past_initial_allocation)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    for (int i = 0; i < 10000; i++)
        buf_append_char(&b, (char)('a' + i % 26));
    cr_assert_eq(b.len, 10000);
    for (int i = 0; i < 10000; i++)
        cr_assert_eq(b.data[i], (char)('a' + i % 26));
    cr_expect_eq(b.data[10000], '\0');
    buf_free(&b);
}

Test(buf, cap_exact_fits_then_overflow_is_sticky)
{
    struct buf b;
    buf_init(&b, 4);
    buf_append(&b, "abcd", 4);
    cr_expect_not(b.overflow);
    cr_expect_str_eq(b.data, "abcd");
    buf_append_char(&b, 'x');
    cr_expect(b.overflow);
    cr_expect_str_eq(b.data, "abcd");
    buf_reset(&b);
    cr_expect_not(b.overflow);
    cr_expect_eq(b.len, 0);
    cr_expect_str_eq(b.data, "");
    buf_append(&b, "abc", 3);
    cr_expect_str_eq(b.data, "abc");
    buf_free(&b);
}

Test(buf, overflowing_append_is_dropped_whole_and_later_ones_too)
{
    struct buf b;
    buf_init(&b, 5);
    buf_append_str(&b, "abc");
    buf_append_str(&b, "def"); /* would exceed: dropped entirely */
    cr_expect(b.overflow);
    cr_expect_str_eq(b.data, "abc");
    buf_append_str(&b, "g"); /* would fit, but the output already has a hole */
    cr_expect_str_eq(b.data, "abc");
    buf_free(&b);
}

Test(buf, take_transfers_and_resets)
{
    struct buf b;
    size_t len = 99;
    buf_init(&b, 100);
    buf_append_str(&b, "hello");
    char *p = buf_take(&b, &len);
    cr_expect_eq(len, 5);
    cr_expect_str_eq(p, "hello");
    cr_expect_null(b.data);
    cr_expect_eq(b.len, 0);
    cr_expect_eq(b.cap, 100);
    free(p);
    /* An empty buffer still hands out a string. */
    p = buf_take(&b, &len);
    cr_assert_not_null(p);
    cr_expect_str_eq(p, "");
    cr_expect_eq(len, 0);
    free(p);
    buf_free(&b);
}

Test(buf, free_accepts_null)
{
    buf_free(NULL);
}

Test(buf, printf_small_and_large)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    buf_printf(&b, "%d-%s", 42, "x");
    cr_expect_str_eq(b.data, "42-x");
    char big[1000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    buf_printf(&b, "[%s]", big);
    cr_expect_eq(b.len, 4 + 1001);
    cr_expect_eq(b.data[4], '[');
    cr_expect_eq(b.data[5 + 998], 'z');
    cr_expect_eq(b.data[b.len - 1], ']');
    cr_expect_eq(b.data[b.len], '\0');
    buf_free(&b);
}

Test(buf, printf_respects_cap)
{
    struct buf b;
    buf_init(&b, 300);
    char big[400];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    buf_printf(&b, "%s", big);
    cr_expect(b.overflow);
    cr_expect_eq(b.len, 0);
    buf_free(&b);
}

static void check_json(const char *in, size_t len, const char *expected)
{
    struct buf b;
    buf_init(&b, 4096);
    buf_append_json_strn(&b, in, len);
    cr_expect_str_eq(b.data, expected);
    cr_expect_eq(b.len, strlen(expected));
    buf_free(&b);
}

Test(buf_json, plain)
{
    check_json("hello", 5, "\"hello\"");
    check_json("", 0, "\"\"");
}

Test(buf_json, quotes_and_backslashes)
{
    check_json("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    check_json("\"", 1, "\"\\\"\"");
}

Test(buf_json, control_characters_as_u00xx)
{
    check_json("\n\t\r\b\f", 5, "\"\\u000a\\u0009\\u000d\\u0008\\u000c\"");
    check_json("x\x01y\x1f", 4, "\"x\\u0001y\\u001f\"");
    check_json("a\0b", 3, "\"a\\u0000b\"");
    check_json("\x7f", 1, "\"\x7f\"");
}

Test(buf_json, unicode_passes_through)
{
    check_json("é日本🙂", strlen("é日本🙂"), "\"é日本🙂\"");
}

Test(buf_json, null_and_str)
{
    struct buf b;
    buf_init(&b, 64);
    buf_append_json_str(&b, NULL);
    buf_append_char(&b, ',');
    buf_append_json_str(&b, "a/b");
    cr_expect_str_eq(b.data, "null,\"a/b\"");
    buf_free(&b);
}

Test(buf_json, strn_uses_length_not_nul)
{
    check_json("abcdef", 3, "\"abc\"");
}

Test(buf_int, values)
{
    static const struct {
        int64_t v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {7, "7"},
        {-1, "-1"},
        {1234567890, "1234567890"},
        {INT64_MAX, "9223372036854775807"},
        {INT64_MIN, "-9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf b;
        buf_init(&b, 64);
        buf_append_int(&b, cases[i].v);
        cr_expect_str_eq(b.data, cases[i].text);
        buf_free(&b);
    }
}
