#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate.h"
#include "migrate/schema_check.h"
#include "migrate/sqlsplit.h"

/* Split and compare with the expected statements (NULL-terminated). */
static void expect_split(const char *dialect, const char *sql, const char *const *want)
{
    struct sql_stmt *s = NULL;
    size_t n = sqlsplit(dialect, sql, &s), k = 0;

    while (want[k] != NULL)
        k++;
    cr_assert_eq(n, k, "%s: %zu statements, expected %zu", dialect, n, k);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(s[i].len, strlen(want[i]), "statement %zu: '%.*s'", i + 1, (int)s[i].len,
                     s[i].text);
        cr_assert(memcmp(s[i].text, want[i], s[i].len) == 0, "statement %zu: '%.*s'", i + 1,
                  (int)s[i].len, s[i].text);
    }
    free(s);
}

Test(sqlsplit, plain_statements_comments_and_blank_ones)
{
    expect_split("sqlite",
                 "-- header\n\nCREATE TABLE a (x INTEGER);\n/* block; comment */\n;;\n"
                 "INSERT INTO a VALUES (1) ;  -- trailing; comment\nSELECT 2",
                 (const char *const[]){"CREATE TABLE a (x INTEGER)", "INSERT INTO a VALUES (1)",
                                       "SELECT 2", NULL});
    expect_split("postgres", "-- only a comment; really\n", (const char *const[]){NULL});
    expect_split("postgres", "", (const char *const[]){NULL});
}

Test(sqlsplit, semicolons_in_quotes_and_identifiers_do_not_split)
{
    expect_split("sqlite",
                 "INSERT INTO \"t;x\" VALUES ('a;b', 'it''s; fine');"
                 "SELECT [odd;name], `other;name` FROM t;",
                 (const char *const[]){"INSERT INTO \"t;x\" VALUES ('a;b', 'it''s; fine')",
                                       "SELECT [odd;name], `other;name` FROM t", NULL});
    expect_split("postgres", "SELECT E'a\\';b'; SELECT 'c\\'; SELECT 1",
                 (const char *const[]){"SELECT E'a\\';b'", "SELECT 'c\\'", "SELECT 1", NULL});
}

Test(sqlsplit, postgres_dollar_quotes_and_nested_comments)
{
    expect_split("postgres",
                 "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$;\n"
                 "CREATE FUNCTION g() RETURNS text AS $body$ SELECT 'x;$$;' $body$ LANGUAGE sql;\n"
                 "/* outer /* inner; */ still; comment */ SELECT $1::int;",
                 (const char *const[]){
                     "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; "
                     "END; $$",
                     "CREATE FUNCTION g() RETURNS text AS $body$ SELECT 'x;$$;' $body$ LANGUAGE "
                     "sql",
                     "SELECT $1::int", NULL});
}

Test(sqlsplit, sqlite_trigger_bodies_stay_whole)
{
    expect_split("sqlite",
                 "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 1;\n"
                 "  DELETE FROM b;\nEND;\nSELECT 1;",
                 (const char *const[]){"CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET "
                                       "x = 1;\n  DELETE FROM b;\nEND",
                                       "SELECT 1", NULL});
}

Test(sqlsplit, line_numbers_and_excerpts)
{
    struct sql_stmt *s = NULL;
    char buf[64];
    size_t n = sqlsplit("postgres", "-- one\n\nSELECT\n   1;\n\n  SELECT   2\n\t;", &s);

    cr_assert_eq(n, 2);
    cr_assert_eq(s[0].line, 3);
    cr_assert_eq(s[1].line, 6);
    cr_assert_str_eq(sqlsplit_excerpt(&s[0], 100, buf, sizeof(buf)), "SELECT 1");
    struct sql_stmt longer = {"SELECT aaaaaaaaaa, bbbbbbbbbb", 29, 1};
    cr_assert_str_eq(sqlsplit_excerpt(&longer, 12, buf, sizeof(buf)), "SELECT aaaaa...");
    free(s);
}

Test(sqlsplit, unterminated_quote_keeps_the_rest_together)
{
    expect_split("postgres", "SELECT 1; SELECT 'oops; SELECT 2;",
                 (const char *const[]){"SELECT 1", "SELECT 'oops; SELECT 2;", NULL});
}

Test(migrate, no_transaction_mark_is_the_exact_first_line)
{
    cr_assert(migrate_no_transaction("-- migrate:no-transaction\nCREATE INDEX ..."));
    cr_assert(migrate_no_transaction("-- migrate:no-transaction  \r\nVACUUM"));
    cr_assert(migrate_no_transaction("-- migrate:no-transaction"));
    cr_assert_not(migrate_no_transaction("\n-- migrate:no-transaction\n"));
    cr_assert_not(migrate_no_transaction("-- migrate:no-transactions\n"));
    cr_assert_not(migrate_no_transaction("-- migrate:no-transaction please\n"));
}

Test(schema_check, diff_lists_extra_missing_and_changed_in_key_order)
{
    struct schema_desc live = {0}, want = {0};
    struct schema_diff *d = NULL;

    schema_desc_add(&live, "column t.b", "integer");
    schema_desc_add(&live, "column t.a", "text not null");
    schema_desc_add(&live, "index extra", "CREATE INDEX extra ON t (b)");
    schema_desc_add(&want, "column t.a", "text");
    schema_desc_add(&want, "column t.b", "integer");
    schema_desc_add(&want, "constraint t.pk", "PRIMARY KEY (a)");
    schema_desc_finish(&live);
    schema_desc_finish(&want);
    size_t n = schema_diff(&live, &want, &d);
    cr_assert_eq(n, 3);
    cr_assert_eq(d[0].kind, SCHEMA_DIFF_CHANGED);
    cr_assert_str_eq(d[0].key, "column t.a");
    cr_assert_str_eq(d[0].live, "text not null");
    cr_assert_str_eq(d[0].expected, "text");
    cr_assert_eq(d[1].kind, SCHEMA_DIFF_MISSING);
    cr_assert_str_eq(d[1].key, "constraint t.pk");
    cr_assert_null(d[1].live);
    cr_assert_eq(d[2].kind, SCHEMA_DIFF_EXTRA);
    cr_assert_str_eq(d[2].key, "index extra");
    free(d);
    cr_assert_eq(schema_diff(&live, &live, &d), 0);
    cr_assert_null(d);
    schema_desc_free(&live);
    schema_desc_free(&want);
}

Test(schema_check, repeated_keys_are_numbered)
{
    struct schema_desc a = {0};

    schema_desc_add(&a, "check t: x > 0", "");
    schema_desc_add(&a, "check t: x > 0", "");
    schema_desc_add(&a, "check t: x > 0", "");
    schema_desc_finish(&a);
    cr_assert_eq(a.n, 3);
    cr_assert_str_eq(a.items[0].key, "check t: x > 0");
    cr_assert_str_eq(a.items[1].key, "check t: x > 0 (2)");
    cr_assert_str_eq(a.items[2].key, "check t: x > 0 (3)");
    schema_desc_free(&a);
}

static void collect(void *ctx, const char *expr)
{
    struct schema_desc *d = ctx;
    schema_desc_add(d, expr, "");
}

Test(schema_check, checks_are_found_in_table_sql_outside_quotes)
{
    struct schema_desc d = {0};

    schema_sql_checks("CREATE TABLE t (\n  a TEXT CHECK (length(a)   = 36), -- check (no)\n"
                      "  \"check\" INTEGER CHECK(\"check\" IN (0, 1)),\n"
                      "  b TEXT DEFAULT 'check (x)',\n  CONSTRAINT c CHECK ( a <> b )\n)",
                      collect, &d);
    cr_assert_eq(d.n, 3);
    cr_assert_str_eq(d.items[0].key, "length(a) = 36");
    cr_assert_str_eq(d.items[1].key, "\"check\" IN (0, 1)");
    cr_assert_str_eq(d.items[2].key, "a <> b");
    schema_desc_free(&d);
    const char *sql = "CREATE  INDEX x\n ON t ( a ,b ) -- c\n";
    char *norm = schema_sql_normalize(sql, strlen(sql));
    cr_assert_str_eq(norm, "CREATE INDEX x ON t (a,b)");
    free(norm);
}
