#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "model/timefmt.h"
#include "util/xalloc.h"

static void vmessage(const char *cmd, const char *fmt, va_list ap)
{
    fprintf(stderr, "todo %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmessage(cmd, fmt, ap);
    va_end(ap);
    return CLI_EXIT_FAILURE;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmessage(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'todo %s --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

static const struct cli_opt *find_opt(const struct cli_opt *opts, const char *name, size_t len)
{
    for (const struct cli_opt *o = opts; o->name != NULL; o++) {
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    }
    return NULL;
}

/* One "--name[=value]" at argv[*i]; may consume the next argument. */
static int parse_long(const char *cmd, int argc, char **argv, int *i, const struct cli_opt *opts,
                      cli_opt_fn *fn, void *ctx, struct cli_args *out)
{
    const char *name = argv[*i] + 2, *eq = strchr(name, '=');
    size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    const struct cli_opt *o = find_opt(opts, name, len);
    const char *value = eq != NULL ? eq + 1 : NULL;

    if (len == 4 && strncmp(name, "help", 4) == 0 && eq == NULL) {
        out->help = true;
        return 0;
    }
    if (o == NULL)
        return cli_usage_error(cmd, "unknown option '--%.*s'", (int)len, name);
    if (!o->has_arg && eq != NULL)
        return cli_usage_error(cmd, "option '--%s' takes no value", o->name);
    if (o->has_arg && value == NULL) {
        if (*i + 1 >= argc)
            return cli_usage_error(cmd, "option '--%s' needs a value", o->name);
        value = argv[++*i];
    }
    return fn(ctx, o->id, value) == 0 ? 0 : CLI_EXIT_USAGE;
}

int cli_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts,
              cli_opt_fn *fn, void *ctx, struct cli_args *out)
{
    bool options = true;

    memset(out, 0, sizeof(*out));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && strcmp(a, "--") == 0) {
            options = false;
        } else if (options && strncmp(a, "--", 2) == 0) {
            int rc = parse_long(cmd, argc, argv, &i, opts, fn, ctx, out);
            if (rc != 0)
                return rc;
        } else if (options && strcmp(a, "-h") == 0) {
            out->help = true;
        } else if (options && a[0] == '-' && a[1] != '\0') {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        } else if (out->npos == CLI_MAX_POSITIONAL) {
            return cli_usage_error(cmd, "too many arguments");
        } else {
            out->pos[out->npos++] = a;
        }
    }
    return 0;
}

bool cli_subcommand(const char *group, int argc, char **argv, const void *table, size_t count,
                    size_t stride, void (*usage)(FILE *out), size_t *index, int *exit_code)
{
    if (argc < 2) {
        usage(stderr);
        *exit_code = CLI_EXIT_USAGE;
        return false;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        *exit_code = CLI_EXIT_OK;
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        const char *const *name = (const void *)((const char *)table + i * stride);
        if (strcmp(argv[1], *name) == 0) {
            *index = i;
            return true;
        }
    }
    *exit_code = cli_usage_error(group, "unknown command '%s'", argv[1]);
    return false;
}

int cli_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    long long v;

    if (!((s[0] >= '0' && s[0] <= '9') || (s[0] == '-' && s[1] >= '0' && s[1] <= '9')))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_version(const char *s, int64_t *out)
{
    return s[0] == '-' ? -1 : cli_parse_int64(s, 0, 999999999, out);
}

int cli_parse_seconds(const char *s, double max_s, int *ms)
{
    char *end = NULL;
    double v;

    if (!(s[0] >= '0' && s[0] <= '9'))
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v <= 0 || v > max_s)
        return -1;
    *ms = (int)(v * 1000.0 + 0.5);
    if (*ms == 0)
        *ms = 1;
    return 0;
}

int cli_database_url(const char *given, bool migrations, char **url, char *err, size_t errlen)
{
    struct config cfg;

    if (given != NULL) {
        *url = xstrdup(given);
        return 0;
    }
    if (config_load(&cfg, ".env", err, errlen) != 0)
        return -1;
    *url = xstrdup(migrations && cfg.migrations_database_url != NULL
                       ? cfg.migrations_database_url
                       : cfg.database_url);
    config_free(&cfg);
    return 0;
}

void cli_print_json(json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (text != NULL) {
        fputs(text, stdout);
        fputc('\n', stdout);
        free(text);
    }
    json_decref(j);
}

const char *cli_time(int64_t ms, char buf[32])
{
    char t[TIMEFMT_LEN + 1];

    timefmt_format(ms, t);
    snprintf(buf, 32, "%s", t);
    return buf;
}
