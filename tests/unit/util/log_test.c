#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

/* Run log_kv-producing code with stderr sent to a temporary file; return
 * what was written (static storage). */
static char captured[8192];

static FILE *capture_begin(int *saved)
{
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    fflush(stderr);
    *saved = dup(STDERR_FILENO);
    cr_assert_geq(*saved, 0);
    cr_assert_geq(dup2(fileno(f), STDERR_FILENO), 0);
    return f;
}

static const char *capture_end(FILE *f, int saved)
{
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(f);
    size_t n = fread(captured, 1, sizeof(captured) - 1, f);
    captured[n] = '\0';
    fclose(f);
    return captured;
}

static void setup(void)
{
    log_set_level(LOG_DEBUG);
}

TestSuite(log, .init = setup);

Test(log, line_shape)
{
    int saved;
    FILE *f = capture_begin(&saved);
    log_kv(LOG_INFO, "listening", "addr", "127.0.0.1:8000", "db", "sqlite:///todo.db", NULL);
    const char *out = capture_end(f, saved);
    /* time=YYYY-MM-DDTHH:MM:SS.mmmZ */
    cr_assert_eq(strncmp(out, "time=", 5), 0, "%s", out);
    const char *t = out + 5;
    for (int i = 0; i < 24; i++) {
        char c = t[i];
        if (i == 4 || i == 7)
            cr_assert_eq(c, '-', "%s", out);
        else if (i == 10)
            cr_assert_eq(c, 'T', "%s", out);
        else if (i == 13 || i == 16)
            cr_assert_eq(c, ':', "%s", out);
        else if (i == 19)
            cr_assert_eq(c, '.', "%s", out);
        else if (i == 23)
            cr_assert_eq(c, 'Z', "%s", out);
        else
            cr_assert(c >= '0' && c <= '9', "%s", out);
    }
    cr_expect_str_eq(t + 24, " level=info msg=listening addr=127.0.0.1:8000 "
                             "db=sqlite:///todo.db\n");
}

Test(log, values_quoted_when_needed)
{
    int saved;
    FILE *f = capture_begin(&saved);
    log_kv(LOG_WARN, "m", "a", "two words", "b", "k=v", "c", "say \"hi\"", "d", "back\\slash",
           "e", "line\nbreak\ttab\x01", "f", "", "g", "plain", NULL);
    const char *out = capture_end(f, saved);
    const char *rest = strstr(out, " level=warn ");
    cr_assert_not_null(rest, "%s", out);
    cr_expect_str_eq(rest, " level=warn msg=m a=\"two words\" b=\"k=v\" c=\"say \\\"hi\\\"\" "
                           "d=back\\slash e=\"line\\nbreak\\ttab\\u0001\" f=\"\" g=plain\n");
}

Test(log, level_filtering)
{
    int saved;
    log_set_level(LOG_WARN);
    cr_expect_not(log_enabled(LOG_INFO));
    cr_expect(log_enabled(LOG_WARN));
    cr_expect(log_enabled(LOG_ERROR));
    cr_expect_eq(log_get_level(), LOG_WARN);
    FILE *f = capture_begin(&saved);
    log_kv(LOG_INFO, "hidden", NULL);
    log_kv(LOG_DEBUG, "hidden", NULL);
    log_kv(LOG_ERROR, "shown", NULL);
    const char *out = capture_end(f, saved);
    cr_expect_null(strstr(out, "hidden"));
    cr_expect_not_null(strstr(out, "level=error msg=shown\n"));
    cr_expect_eq(strchr(out, '\n'), out + strlen(out) - 1); /* one line */
}

Test(log, always_ignores_the_level)
{
    int saved;
    log_set_level(LOG_ERROR);
    FILE *f = capture_begin(&saved);
    log_kv(LOG_INFO, "hidden", NULL);
    log_kv_always(LOG_INFO, "listening", "addr", "127.0.0.1:8000", NULL);
    const char *out = capture_end(f, saved);
    cr_expect_null(strstr(out, "hidden"));
    cr_expect_not_null(strstr(out, " level=info msg=listening addr=127.0.0.1:8000\n"), "%s", out);
}

Test(log, long_line_truncated_but_terminated)
{
    static char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    int saved;
    FILE *f = capture_begin(&saved);
    log_kv(LOG_INFO, "big", "v", big, NULL);
    log_kv(LOG_INFO, "next", NULL);
    const char *out = capture_end(f, saved);
    const char *nl = strchr(out, '\n');
    cr_assert_not_null(nl);
    cr_expect_leq((size_t)(nl - out) + 1, 2048);
    cr_expect_geq((size_t)(nl - out) + 1, 2000);
    cr_expect_not_null(strstr(nl + 1, "msg=next\n"));
}

Test(log, null_value_ends_the_list)
{
    int saved;
    FILE *f = capture_begin(&saved);
    log_kv(LOG_INFO, "m", "k", (const char *)NULL, NULL);
    const char *out = capture_end(f, saved);
    cr_expect_not_null(strstr(out, "msg=m k=\"\"\n"), "%s", out);
}

Test(log, parse_levels)
{
    cr_expect_eq(log_level_parse("debug"), LOG_DEBUG);
    cr_expect_eq(log_level_parse("INFO"), LOG_INFO);
    cr_expect_eq(log_level_parse("Warning"), LOG_WARN);
    cr_expect_eq(log_level_parse("warn"), LOG_WARN);
    cr_expect_eq(log_level_parse("error"), LOG_ERROR);
    cr_expect_eq(log_level_parse("trace"), -1);
    cr_expect_eq(log_level_parse(""), -1);
    cr_expect_eq(log_level_parse(NULL), -1);
}
