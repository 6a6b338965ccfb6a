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
        {"host=h password=pw dbname=d", "host=h password=*** dbname=d"},
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

Test(dburl, errors_never_hold_password)
{
    const char *bad[] = {
        "sqlite://u:topsecret@host/x.db",
        "sqlite://u:topsecret@host/x.db?q",
        "ftp://u:topsecret@host/x",
        "u:topsecret@host/x://",
        "u:topsecret@host",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        parse_fails(bad[i]);
        cr_assert_null(strstr(err, "topsecret"), "password leaked: %s", err);
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
