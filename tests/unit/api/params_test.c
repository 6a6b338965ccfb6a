#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "api/params.h"

struct parsed {
    struct todo_query q;
    struct field_errors errs;
    char *scratch;
    int rc;
};

static void parse(const char *qs, struct parsed *p)
{
    size_t len = strlen(qs);
    /* Exactly the documented minimum, so ASan catches any overrun. */
    p->scratch = malloc(len + 1);
    cr_assert_not_null(p->scratch);
    p->rc = params_todo_query(qs, len, p->scratch, &p->q, &p->errs);
}

static void done(struct parsed *p)
{
    free(p->scratch);
}

static const char *error_for(const struct field_errors *e, const char *field)
{
    for (size_t i = 0; i < e->count; i++)
        if (strcmp(e->items[i].field, field) == 0)
            return e->items[i].message;
    return NULL;
}

/* `qs` must fail with exactly one error, on `field`, whose message contains `needle`. */
static void check_error(const char *qs, const char *field, const char *needle)
{
    struct parsed p;
    parse(qs, &p);
    cr_expect_eq(p.rc, -1, "\"%s\" accepted", qs);
    cr_expect_eq(p.errs.count, 1, "\"%s\": %zu errors", qs, p.errs.count);
    const char *msg = error_for(&p.errs, field);
    cr_expect_not_null(msg, "\"%s\": no error on %s", qs, field);
    if (msg && needle)
        cr_expect_not_null(strstr(msg, needle), "\"%s\": message \"%s\"", qs, msg);
    done(&p);
}

Test(params, defaults)
{
    struct parsed p;
    parse("", &p);
    cr_assert_eq(p.rc, 0);
    cr_expect_null(p.q.user_id);
    cr_expect_eq(p.q.limit, PARAMS_LIMIT_DEFAULT);
    cr_expect_eq(p.q.offset, 0);
    cr_expect_eq(p.q.completed, -1);
    cr_expect_null(p.q.q);
    cr_expect_eq(p.q.sort, TODO_SORT_CREATED_AT_DESC);
    cr_expect_eq(p.errs.count, 0);
    done(&p);
}

Test(params, all_parameters)
{
    const char *qs = "limit=20&offset=40&completed=true&q=buy+milk%21&sort=title";
    struct parsed p;
    parse(qs, &p);
    cr_assert_eq(p.rc, 0);
    cr_expect_eq(p.q.limit, 20);
    cr_expect_eq(p.q.offset, 40);
    cr_expect_eq(p.q.completed, 1);
    cr_expect_str_eq(p.q.q, "buy milk!");
    cr_expect_eq(p.q.sort, TODO_SORT_TITLE);
    cr_expect_geq(p.q.q, p.scratch); /* q lives in the caller's scratch */
    cr_expect_lt(p.q.q, p.scratch + strlen(qs) + 1);
    done(&p);
}

Test(params, limit_bounds)
{
    struct parsed p;
    parse("limit=1", &p);
    cr_expect_eq(p.rc, 0);
    cr_expect_eq(p.q.limit, 1);
    done(&p);
    parse("limit=1000", &p);
    cr_expect_eq(p.rc, 0);
    cr_expect_eq(p.q.limit, 1000);
    done(&p);
    parse("limit=007", &p);
    cr_expect_eq(p.rc, 0);
    cr_expect_eq(p.q.limit, 7);
    done(&p);
}

Test(params, limit_errors)
{
    const char *bad[] = {"limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=1.5",
                         "limit=10x", "limit=99999999999999999999999", "limit=+", "limit=%20",
                         "limit=1e3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_error(bad[i], "limit", "between 1 and 1000");
}

Test(params, offset)
{
    struct parsed p;
    parse("offset=0", &p);
    cr_expect_eq(p.rc, 0);
    cr_expect_eq(p.q.offset, 0);
    done(&p);
    parse("offset=9223372036854775807", &p);
    cr_expect_eq(p.rc, 0);
    cr_expect_eq(p.q.offset, INT64_MAX);
    done(&p);
    const char *bad[] = {"offset=-1", "offset=9223372036854775808", "offset=x", "offset=1_000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_error(bad[i], "offset", "between 0 and");
}

Test(params, completed)
{
    struct parsed p;
    parse("completed=false", &p);
    cr_expect_eq(p.rc, 0);
    cr_expect_eq(p.q.completed, 0);
    done(&p);
    const char *bad[] = {"completed=1", "completed=TRUE", "completed=yes", "completed=true%20"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_error(bad[i], "completed", "true or false");
}

Test(params, sort_values)
{
    static const struct {
        const char *qs;
        enum todo_sort sort;
    } ok[] = {
        {"sort=created_at", TODO_SORT_CREATED_AT},
        {"sort=-created_at", TODO_SORT_CREATED_AT_DESC},
        {"sort=updated_at", TODO_SORT_UPDATED_AT},
        {"sort=-updated_at", TODO_SORT_UPDATED_AT_DESC},
        {"sort=title", TODO_SORT_TITLE},
        {"sort=-title", TODO_SORT_TITLE_DESC},
        {"sort=%2Dtitle", TODO_SORT_TITLE_DESC},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct parsed p;
        parse(ok[i].qs, &p);
        cr_expect_eq(p.rc, 0, "%s", ok[i].qs);
        cr_expect_eq(p.q.sort, ok[i].sort, "%s", ok[i].qs);
        done(&p);
    }
    const char *bad[] = {"sort=id", "sort=Title", "sort=+title", "sort=title,created_at",
                         "sort=titl"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_error(bad[i], "sort", "must be one of");
}

Test(params, empty_values_rejected_except_q)
{
    check_error("limit=", "limit", "empty");
    check_error("offset=", "offset", "empty");
    check_error("completed=", "completed", "empty");
    check_error("sort=", "sort", "empty");
    check_error("limit", "limit", "empty");

    struct parsed p;
    parse("q=", &p);
    cr_expect_eq(p.rc, 0);
    cr_expect_null(p.q.q);
    done(&p);
    parse("q", &p);
    cr_expect_eq(p.rc, 0);
    cr_expect_null(p.q.q);
    done(&p);
}

Test(params, q_decoding)
{
    struct parsed p;
    parse("q=50%25+off_%E6%97%A5", &p);
    cr_assert_eq(p.rc, 0);
    cr_expect_str_eq(p.q.q, "50% off_\xe6\x97\xa5");
    done(&p);
    parse("q=%20", &p); /* a space is a real filter, not empty */
    cr_assert_eq(p.rc, 0);
    cr_expect_str_eq(p.q.q, " ");
    done(&p);
}

Test(params, q_errors)
{
    check_error("q=%zz", "q", "percent-encoding");
    check_error("q=abc%", "q", "percent-encoding");
    check_error("q=%ff", "q", "UTF-8");
    check_error("q=%C0%AF", "q", "UTF-8");
    check_error("q=a%00b", "q", "NUL");
}

Test(params, q_length_in_characters)
{
    /* 255 × "é" percent-encoded = 255 characters: OK; 256: too long. */
    char qs[4000];
    size_t o = 0;
    o += (size_t)snprintf(qs, sizeof(qs), "q=");
    for (int i = 0; i < 255; i++)
        o += (size_t)snprintf(qs + o, sizeof(qs) - o, "%%C3%%A9");
    struct parsed p;
    parse(qs, &p);
    cr_expect_eq(p.rc, 0);
    cr_expect_eq(strlen(p.q.q), 510);
    done(&p);
    snprintf(qs + o, sizeof(qs) - o, "%%C3%%A9");
    check_error(qs, "q", "at most 255 characters");
}

Test(params, unknown_parameter)
{
    check_error("page=2", "page", "unknown query parameter");
    check_error("Limit=2", "Limit", "unknown query parameter");
    check_error("limit=5&user_id=x", "user_id", "unknown query parameter");
}

Test(params, repeated_parameter)
{
    check_error("limit=5&limit=6", "limit", "repeated");
    check_error("q=a&q=b", "q", "repeated");
    check_error("sort=title&sort=title", "sort", "repeated");
}

Test(params, encoded_names_and_empty_pairs)
{
    struct parsed p;
    parse("&&li%6Dit=3&&", &p);
    cr_expect_eq(p.rc, 0);
    cr_expect_eq(p.q.limit, 3);
    done(&p);
}

Test(params, every_error_reported)
{
    struct parsed p;
    parse("limit=0&offset=-5&completed=maybe&sort=nope&q=%zz&x=1", &p);
    cr_assert_eq(p.rc, -1);
    cr_expect_eq(p.errs.count, 6);
    const char *fields[] = {"limit", "offset", "completed", "sort", "q", "x"};
    for (size_t i = 0; i < 6; i++)
        cr_expect_not_null(error_for(&p.errs, fields[i]), "%s", fields[i]);
    done(&p);
}

Test(params, q_survives_later_values_in_scratch)
{
    struct parsed p;
    parse("q=hello%20world&sort=-title&limit=5&offset=10&completed=true", &p);
    cr_assert_eq(p.rc, 0);
    cr_expect_str_eq(p.q.q, "hello world");
    cr_expect_eq(p.q.sort, TODO_SORT_TITLE_DESC);
    cr_expect_eq(p.q.limit, 5);
    cr_expect_eq(p.q.offset, 10);
    done(&p);
}
