#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "util/dburl.h"

static char err[512];

static struct dburl parse_ok(const char *url)
{
    struct dburl u;
    err[0] = '\0';
    int rc = dburl_parse(url, &u, err, sizeof(err));
    cr_assert_eq(rc, 0, "dburl_parse(%s) failed: %s", url, err);
    return u;
}

static void parse_fails(const char *url)
{
    struct dburl u;
    err[0] = '\0';
    int rc = dburl_parse(url, &u, err, sizeof(err));
    cr_assert_eq(rc, -1, "dburl_parse(%s) should fail", url);
    cr_assert_null(u.path);
    cr_assert_null(u.conninfo);
    cr_assert_null(u.redacted);
    cr_assert(strncmp(err, "DATABASE_URL", 12) == 0, "error names the variable: %s", err);
}

Test(dburl, sqlite_relative)
{
    struct dburl u = parse_ok("sqlite:///relative.db");
    cr_assert_eq(u.kind, DBURL_SQLITE);
    cr_assert_str_eq(u.path, "relative.db");
    cr_assert_null(u.conninfo);
    cr_assert_str_eq(u.redacted, "sqlite:///relative.db");
    dburl_free(&u);
}

Test(dburl, sqlite_relative_subdir)
{
    struct dburl u = parse_ok("sqlite:///data/todo.db");
    cr_assert_str_eq(u.path, "data/todo.db");
    dburl_free(&u);
}

Test(dburl, sqlite_absolute)
{
    struct dburl u = parse_ok("sqlite:////abs/x.db");
    cr_assert_eq(u.kind, DBURL_SQLITE);
    cr_assert_str_eq(u.path, "/abs/x.db");
    dburl_free(&u);
}

Test(dburl, sqlite_aiosqlite_spelling)
{
    struct dburl u = parse_ok("sqlite+aiosqlite:///./app.db");
    cr_assert_eq(u.kind, DBURL_SQLITE);
    cr_assert_str_eq(u.path, "./app.db");
    dburl_free(&u);
    u = parse_ok("sqlite+aiosqlite:////tmp/app.db");
    cr_assert_str_eq(u.path, "/tmp/app.db");
    dburl_free(&u);
}

Test(dburl, scheme_is_case_insensitive)
{
    struct dburl u = parse_ok("SQLite:///x.db");
    cr_assert_eq(u.kind, DBURL_SQLITE);
    cr_assert_str_eq(u.path, "x.db");
    dburl_free(&u);
}

Test(dburl, sqlite_percent_decoding)
{
    struct dburl u = parse_ok("sqlite:///my%20todos.db");
    cr_assert_str_eq(u.path, "my todos.db");
    dburl_free(&u);
    u = parse_ok("sqlite:///a+b%2Bc%23d.db");
    cr_assert_str_eq(u.path, "a+b+c#d.db");
    dburl_free(&u);
}

Test(dburl, sqlite_bad_percent_escape)
{
    parse_fails("sqlite:///bad%zz.db");
    parse_fails("sqlite:///trailing%2");
    parse_fails("sqlite:///trailing%");
    parse_fails("sqlite:///nul%00byte");
}

Test(dburl, sqlite_empty_path)
{
    parse_fails("sqlite://");
    cr_assert(strstr(err, "has no file path"), "%s", err);
    parse_fails("sqlite:///");
    cr_assert(strstr(err, "has no file path"), "%s", err);
}

Test(dburl, sqlite_with_host)
{
    parse_fails("sqlite://host/x.db");
    cr_assert(strstr(err, "three slashes"), "%s", err);
    cr_assert(strstr(err, "sqlite://host/x.db"), "%s", err);
    parse_fails("sqlite://todo.db");
    cr_assert(strstr(err, "three slashes"), "%s", err);
}

Test(dburl, sqlite_query_rejected)
{
    parse_fails("sqlite:///x.db?mode=ro");
    cr_assert(strstr(err, "query"), "%s", err);
}

Test(dburl, unknown_scheme_lists_accepted)
{
    parse_fails("mysql://u:secretpw@h/db");
    cr_assert(strstr(err, "\"mysql\""), "%s", err);
    cr_assert(strstr(err, "sqlite:///"), "%s", err);
    cr_assert(strstr(err, "postgresql://"), "%s", err);
    cr_assert(strstr(err, "postgresql+asyncpg://"), "%s", err);
    cr_assert_null(strstr(err, "secretpw"), "password leaked: %s", err);
}

Test(dburl, not_a_url)
{
    parse_fails("todo.db");
    cr_assert(strstr(err, "sqlite:///"), "%s", err);
    parse_fails("sqlite:todo.db");
    parse_fails("");
    parse_fails(NULL);
}

Test(dburl, postgres_spellings)
{
    const char *in[] = {
        "postgresql://u@h:5432/db",
        "postgres://u@h:5432/db",
        "postgresql+asyncpg://u@h:5432/db",
    };
    for (size_t i = 0; i < 3; i++) {
        struct dburl u = parse_ok(in[i]);
        cr_assert_eq(u.kind, DBURL_POSTGRES);
        cr_assert_null(u.path);
        cr_assert_str_eq(u.conninfo, "postgresql://u@h:5432/db", "from %s", in[i]);
        cr_assert_str_eq(u.redacted, in[i]);
        dburl_free(&u);
    }
}

Test(dburl, postgres_keeps_query)
{
    struct dburl u = parse_ok("postgresql+asyncpg://u:pw@ep-x.neon.tech/todo?sslmode=require");
    cr_assert_str_eq(u.conninfo, "postgresql://u:pw@ep-x.neon.tech/todo?sslmode=require");
    cr_assert_str_eq(u.redacted, "postgresql+asyncpg://u:***@ep-x.neon.tech/todo?sslmode=require");
    dburl_free(&u);
}

Test(dburl, redaction)
{
    struct {
        const char *in, *want;
    } cases[] = {
        {"postgresql://user:s3cret@host/db", "postgresql://user:***@host/db"},
        {"postgresql://user@host/db", "postgresql://user@host/db"},
        {"postgresql://host:5432/db", "postgresql://host:5432/db"},
        {"postgresql://user:@host/db", "postgresql://user:***@host/db"},
        {"postgresql://user:p@ss@host/db", "postgresql://user:***@host/db"},
        {"postgresql://user:pa/ss@host/db", "postgresql://user:***@host/db"},
        {"postgresql://h/db?user=u&password=pw&sslmode=require",
         "postgresql://h/db?user=u&password=***&sslmode=require"},
        {"postgresql://u:a@h/db?password=b", "postgresql://u:***@h/db?password=***"},
        {"u:secret@host/db", "u:***@host/db"},
        {"u:secret@host/x://", "u:***@host/x://"},
        /* key=value form (no scheme): values may be quoted, so to the end */
        {"host=h password=pw dbname=d", "host=h password=***"},
        {"host=h password = 'p w' dbname=d", "host=h password =***"},
        {"sqlite:///todo.db", "sqlite:///todo.db"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *r = dburl_redact(cases[i].in);
        cr_assert_str_eq(r, cases[i].want, "redact(%s)", cases[i].in);
        free(r);
    }
    cr_assert_null(dburl_redact(NULL));
}

static void assert_redacted(const char *in, const char *want)
{
    char *r = dburl_redact(in);
    cr_assert_str_eq(r, want, "redact(%s)", in);
    free(r);
}

/* libpq ends the userinfo at the first '@' before the first '/': '?' and '#'
 * belong to the password (reproducers found by fuzz_dburl). */
Test(dburl, userinfo_password_with_question_mark)
{
    assert_redacted("postgresql://u:pa?ss@host/db", "postgresql://u:***@host/db");
    assert_redacted("postgresql://u:pa?ss@host/db?sslmode=require",
                    "postgresql://u:***@host/db?sslmode=require");
}

Test(dburl, userinfo_password_with_hash)
{
    assert_redacted("postgresql://u:pa#ss@host/db", "postgresql://u:***@host/db");
    assert_redacted("postgresql://u:a?b#c&d=e@host/db", "postgresql://u:***@host/db");
}

/* libpq percent-decodes parameter names: pass%77ord is password. */
Test(dburl, encoded_password_parameter_name)
{
    assert_redacted("postgresql://u@host/db?pass%77ord=hunter22",
                    "postgresql://u@host/db?pass%77ord=***");
    assert_redacted("postgresql://h/db?%70%61%73%73%77%6F%72%64=hunter22&sslmode=require",
                    "postgresql://h/db?%70%61%73%73%77%6F%72%64=***&sslmode=require");
    assert_redacted("postgresql://h/db?PassWord=x1", "postgresql://h/db?PassWord=***");
    /* Decoded once, as libpq does: pass%2577ord is "pass%77ord", not a password. */
    assert_redacted("postgresql://h/db?pass%2577ord=x1", "postgresql://h/db?pass%2577ord=x1");
}

Test(dburl, other_password_parameters)
{
    assert_redacted("postgresql://h/db?sslpassword=k1&x=1", "postgresql://h/db?sslpassword=***&x=1");
    assert_redacted("postgresql://h/db? password =x1", "postgresql://h/db? password =***");
    assert_redacted("postgresql://h/db?password%20=x1", "postgresql://h/db?password%20=***");
    /* libpq's URI value ends at '&' only: white space does not end it. */
    assert_redacted("postgresql://h/db?password=a b&c=d", "postgresql://h/db?password=***&c=d");
    assert_redacted("postgresql://h/db?password=", "postgresql://h/db?password=***");
    assert_redacted("postgresql://h/db?password=a=b", "postgresql://h/db?password=***");
    assert_redacted("postgresql://h/db?passwords=x1", "postgresql://h/db?passwords=x1");
    assert_redacted("postgresql://h/db?db_password=x1&a=b", "postgresql://h/db?db_password=***&a=b");
    assert_redacted("postgresql://h/db?a=1?password=x1", "postgresql://h/db?a=1?password=***");
    assert_redacted("postgresql://h/db?a=password=x1&b=2", "postgresql://h/db?a=password=***&b=2");
    assert_redacted("postgresql://h/db?password=x1&password=y2",
                    "postgresql://h/db?password=***&password=***");
    /* libpq rejects %00; a C-string reader would stop there: hidden too. */
    assert_redacted("postgresql://h/db?password%00=x1", "postgresql://h/db?password%00=***");
    assert_redacted("postgresql://h/db?password%00x=x1", "postgresql://h/db?password%00x=***");
}

Test(dburl, userinfo_ends_at_last_at_before_slash)
{
    assert_redacted("postgresql://u:a@b@c@host/db", "postgresql://u:***@host/db");
    assert_redacted("postgresql://u@x:pw@host/db", "postgresql://u@***@host/db");
    assert_redacted("postgresql://@host/db", "postgresql://@host/db");
    assert_redacted("postgresql://:pw@host/db", "postgresql://:***@host/db");
    assert_redacted("postgresql://u:pw@h1:5432,h2:5433/db?user=a@b",
                    "postgresql://u:***@h1:5432,h2:5433/db?user=a@b");
    /* An '@' after the first '/' with no ':' before it: no password. */
    assert_redacted("postgresql://host/db?user=a@b", "postgresql://host/db?user=a@b");
    assert_redacted("sqlite:////tmp/a:b@c.db", "sqlite:////tmp/a:b@c.db");
}

/* A password holding '/' is not libpq's, but it is hidden anyway. */
Test(dburl, unencoded_slash_over_redacts)
{
    assert_redacted("postgresql://u:p/w?x#y@h/db", "postgresql://u:***@h/db");
    assert_redacted("postgresql://h:5432/db?user=a@b", "postgresql://h:***@b");
}

/* A password parameter inside the userinfo, or a userinfo '@' inside a
 * password value: the hidden stretches merge. */
Test(dburl, overlapping_rules)
{
    assert_redacted("postgresql://h/db?password=p@ss", "postgresql://h/db?password=***");
    assert_redacted("postgresql://h:1/db?password=p@ss", "postgresql://h:***");
    assert_redacted("postgresql://u:x&password=y@h/db", "postgresql://u:***");
    assert_redacted("postgresql://u:@h/db?password=&a=1", "postgresql://u:***@h/db?password=***&a=1");
}

Test(dburl, errors_never_hold_password)
{
    struct {
        const char *url, *secret;
    } bad[] = {
        {"sqlite://u:topsecret@host/x.db", "topsecret"},
        {"sqlite://u:topsecret@host/x.db?q", "topsecret"},
        {"ftp://u:topsecret@host/x", "topsecret"},
        {"u:topsecret@host/x://", "topsecret"},
        {"u:topsecret@host", "topsecret"},
        {"sqlite://u:top?secret@host/x.db", "top?secret"},
        {"sqlite://u:top#secret@host/x.db", "top#secret"},
        {"sqlite://u:top/secret@host/x.db", "top/secret"},
        {"sqlite:///x.db?pass%77ord=topsecret", "topsecret"},
        {"sqlite:///x.db?a=1&password=topsecret", "topsecret"},
        {"host=h password='top secret'", "top secret"},
        {"ftp://h/x?pass%77ord=topsecret", "topsecret"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        parse_fails(bad[i].url);
        cr_assert_null(strstr(err, bad[i].secret), "password leaked: %s", err);
        cr_assert(strstr(err, "***"), "redacted form shown: %s", err);
    }
}

Test(dburl, free_accepts_null_and_twice)
{
    dburl_free(NULL);
    struct dburl u = parse_ok("sqlite:///x.db");
    dburl_free(&u);
    dburl_free(&u);
}

/* libpq ends the host part at a '/' in the password ("pa/ss"), takes "pa"
 * for the port and quotes it in its messages: refused, naming the fix,
 * without the password. */
Test(dburl, slash_in_password_is_refused_naming_the_fix)
{
    struct dburl u;
    cr_assert_eq(dburl_parse("postgresql://app:pa/ss@host/db", &u, err, sizeof(err)), -1);
    cr_expect(strstr(err, "%2F") != NULL, "%s", err);
    cr_expect(strstr(err, "pa/ss") == NULL, "%s", err);
    cr_expect(strstr(err, "ss@") == NULL, "%s", err);
    cr_assert_eq(dburl_parse("postgresql://app:pa%2Fss@host/db", &u, err, sizeof(err)), 0, "%s",
                 err);
    dburl_free(&u);
    /* An '@' only in the query (a user name parameter) is no such case. */
    cr_assert_eq(dburl_parse("postgresql://host:5432/db?user=a@b", &u, err, sizeof(err)), 0, "%s",
                 err);
    dburl_free(&u);
}
