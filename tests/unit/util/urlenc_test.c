#include <criterion/criterion.h>

#include <string.h>

#include "util/urlenc.h"

static void check_decode(const char *in, const char *expected, long expected_len)
{
    char out[256];
    long n = urlenc_decode(in, strlen(in), out);
    cr_assert_eq(n, expected_len, "decode(\"%s\") = %ld", in, n);
    cr_expect_eq(memcmp(out, expected, (size_t)n), 0, "decode(\"%s\")", in);
    cr_expect_eq(out[n], '\0');
}

Test(urlenc, decode_plain_plus_and_percent)
{
    check_decode("", "", 0);
    check_decode("abc", "abc", 3);
    check_decode("a+b", "a b", 3);
    check_decode("a%20b", "a b", 3);
    check_decode("%2B%2b", "++", 2);
    check_decode("caf%C3%A9", "caf\xc3\xa9", 5);
    check_decode("%00x", "\0x", 2);
    check_decode("100%25", "100%", 4);
    check_decode("%26%3D", "&=", 2);
}

Test(urlenc, decode_bad_escapes)
{
    char out[16];
    const char *bad[] = {"%", "%2", "a%", "%zz", "%g0", "%0g", "ab%2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(urlenc_decode(bad[i], strlen(bad[i]), out), -1, "\"%s\"", bad[i]);
}

Test(urlenc, decode_respects_length)
{
    char out[8];
    cr_expect_eq(urlenc_decode("%41%42", 3, out), 1);
    cr_expect_str_eq(out, "A");
    cr_expect_eq(urlenc_decode("%41%42", 4, out), -1);
}

struct pair {
    const char *name;
    const char *value;
};

static size_t collect(const char *s, struct pair *out, char store[][2][64], size_t max)
{
    size_t pos = 0, n = 0, name_len, value_len;
    const char *name, *value;
    while (n < max && urlenc_next_pair(s, strlen(s), &pos, &name, &name_len, &value, &value_len)) {
        cr_assert_lt(name_len, 64);
        cr_assert_lt(value_len, 64);
        memcpy(store[n][0], name, name_len);
        store[n][0][name_len] = '\0';
        memcpy(store[n][1], value, value_len);
        store[n][1][value_len] = '\0';
        out[n].name = store[n][0];
        out[n].value = store[n][1];
        n++;
    }
    return n;
}

Test(urlenc, pairs_basic)
{
    struct pair p[8];
    char store[8][2][64];
    size_t n = collect("a=1&b=two&c=", p, store, 8);
    cr_assert_eq(n, 3);
    cr_expect_str_eq(p[0].name, "a");
    cr_expect_str_eq(p[0].value, "1");
    cr_expect_str_eq(p[1].name, "b");
    cr_expect_str_eq(p[1].value, "two");
    cr_expect_str_eq(p[2].name, "c");
    cr_expect_str_eq(p[2].value, "");
}

Test(urlenc, pairs_raw_and_edge_cases)
{
    struct pair p[8];
    char store[8][2][64];
    size_t n = collect("&&flag&x=a%20b=c&&", p, store, 8);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(p[0].name, "flag");
    cr_expect_str_eq(p[0].value, "");
    cr_expect_str_eq(p[1].name, "x");
    cr_expect_str_eq(p[1].value, "a%20b=c"); /* raw; only the first '=' splits */

    cr_expect_eq(collect("", p, store, 8), 0);
    cr_expect_eq(collect("&&&", p, store, 8), 0);
    n = collect("=v", p, store, 8);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(p[0].name, "");
    cr_expect_str_eq(p[0].value, "v");
}

Test(urlenc, pairs_stop_and_stay_stopped)
{
    size_t pos = 0, nl, vl;
    const char *name, *value;
    cr_expect(urlenc_next_pair("a=1", 3, &pos, &name, &nl, &value, &vl));
    cr_expect_not(urlenc_next_pair("a=1", 3, &pos, &name, &nl, &value, &vl));
    cr_expect_not(urlenc_next_pair("a=1", 3, &pos, &name, &nl, &value, &vl));
}
