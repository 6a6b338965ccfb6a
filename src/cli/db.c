#include "cli/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "dbtool/dbbackup.h"
#include "dbtool/dbconv.h"
#include "dbtool/dbcopy.h"
#include "dbtool/dbverify.h"
#include "util/buf.h"
#include "util/dburl.h"
#include "util/xalloc.h"

#define ERRLEN 2048
#define BATCH_MAX 1000000
#define MAX_REPORT 100

/* ---- options --------------------------------------------------------------- */

enum opt_id {
    O_FROM,
    O_TO,
    O_TRUNCATE,
    O_DRY_RUN,
    O_NO_MIGRATE,
    O_BATCH_SIZE,
    O_FROM_LAYOUT,
    O_SOURCE_TZ,
    O_ON_ERROR,
    O_REJECT_FILE,
    O_JSON,
    O_SOURCE,
    O_TARGET,
    O_SOURCE_LAYOUT,
    O_URL,
    O_FORCE,
};
#define OPT(id) (1u << (id))

/* Indexed by enum opt_id. */
static const struct cli_opt options[] = {
    {"from", true, O_FROM},
    {"to", true, O_TO},
    {"truncate", false, O_TRUNCATE},
    {"dry-run", false, O_DRY_RUN},
    {"no-migrate", false, O_NO_MIGRATE},
    {"batch-size", true, O_BATCH_SIZE},
    {"from-layout", true, O_FROM_LAYOUT},
    {"source-timezone", true, O_SOURCE_TZ},
    {"on-error", true, O_ON_ERROR},
    {"reject-file", true, O_REJECT_FILE},
    {"json", false, O_JSON},
    {"source", true, O_SOURCE},
    {"target", true, O_TARGET},
    {"source-layout", true, O_SOURCE_LAYOUT},
    {"database-url", true, O_URL},
    {"force", false, O_FORCE},
    {NULL, false, 0},
};

struct dargs {
    char cmd[32]; /* "db copy", for messages */
    unsigned allowed, seen;
    const char *from, *to, *source, *target, *url, *tz, *reject_file;
    enum dbsrc_layout layout;
    bool truncate, dry_run, no_migrate, skip_errors, json, force;
    int64_t batch;
    struct cli_args a;
};

static int parse_layout(const char *v, enum dbsrc_layout *out)
{
    if (strcmp(v, "auto") == 0)
        *out = DBSRC_LAYOUT_AUTO;
    else if (strcmp(v, "current") == 0)
        *out = DBSRC_LAYOUT_CURRENT;
    else if (strcmp(v, "legacy") == 0)
        *out = DBSRC_LAYOUT_LEGACY;
    else
        return -1;
    return 0;
}

/* The value's checks; 0, or -1 after a usage error naming the option. */
static int check_value(struct dargs *d, int id, const char *v)
{
    const char *name = options[id].name;

    switch (id) {
    case O_BATCH_SIZE:
        if (cli_parse_int64(v, 1, BATCH_MAX, &d->batch) != 0) {
            cli_usage_error(d->cmd, "invalid value '%s' for --%s (1 to %d rows)", v, name,
                            BATCH_MAX);
            return -1;
        }
        return 0;
    case O_FROM_LAYOUT:
    case O_SOURCE_LAYOUT:
        if (parse_layout(v, &d->layout) != 0) {
            cli_usage_error(d->cmd, "invalid value '%s' for --%s (auto, current or legacy)", v,
                            name);
            return -1;
        }
        return 0;
    case O_ON_ERROR:
        if (strcmp(v, "stop") != 0 && strcmp(v, "skip") != 0) {
            cli_usage_error(d->cmd, "invalid value '%s' for --%s (stop or skip)", v, name);
            return -1;
        }
        d->skip_errors = strcmp(v, "skip") == 0;
        return 0;
    default:
        if (options[id].has_arg && v[0] == '\0') {
            cli_usage_error(d->cmd, "--%s needs a non-empty value", name);
            return -1;
        }
        return 0;
    }
}

static int on_option(void *ctx, int id, const char *v)
{
    struct dargs *d = ctx;

    if (!(d->allowed & OPT(id))) {
        cli_usage_error(d->cmd, "option '--%s' does not apply to this command", options[id].name);
        return -1;
    }
    if (d->seen & OPT(id)) {
        cli_usage_error(d->cmd, "option '--%s' given twice", options[id].name);
        return -1;
    }
    d->seen |= OPT(id);
    if (check_value(d, id, v) != 0)
        return -1;
    switch (id) {
    case O_FROM:
        d->from = v;
        break;
    case O_TO:
        d->to = v;
        break;
    case O_SOURCE:
        d->source = v;
        break;
    case O_TARGET:
        d->target = v;
        break;
    case O_URL:
        d->url = v;
        break;
    case O_SOURCE_TZ:
        d->tz = v;
        break;
    case O_REJECT_FILE:
        d->reject_file = v;
        break;
    case O_TRUNCATE:
        d->truncate = true;
        break;
    case O_DRY_RUN:
        d->dry_run = true;
        break;
    case O_NO_MIGRATE:
        d->no_migrate = true;
        break;
    case O_JSON:
        d->json = true;
        break;
    case O_FORCE:
        d->force = true;
        break;
    case O_BATCH_SIZE:
    case O_FROM_LAYOUT:
    case O_SOURCE_LAYOUT:
    case O_ON_ERROR:
        break; /* stored by check_value */
    default:
        abort();
    }
    return 0;
}

/* ---- database arguments ----------------------------------------------------- */

/* True when s starts with a URL scheme: a letter, then letters, digits,
 * '+', '-' or '.', then ':'. */
static bool has_scheme(const char *s)
{
    size_t i = 0;

    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return false;
    while (s[i] != '\0' && s[i] != ':' && s[i] != '/') {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '-' || c == '.'))
            return false;
        i++;
    }
    return s[i] == ':';
}

/* A plain file path as a sqlite:/// URL ('%', '?' and '#' escaped, so the
 * URL parser gives the path back unchanged). */
static char *path_to_url(const char *path)
{
    struct buf b;

    buf_init(&b, 1u << 20);
    buf_append_str(&b, "sqlite:///");
    for (const char *p = path; *p != '\0'; p++) {
        if (*p == '%' || *p == '?' || *p == '#')
            buf_printf(&b, "%%%02X", (unsigned char)*p);
        else
            buf_append_char(&b, *p);
    }
    return buf_take(&b, NULL);
}

/* A database argument (a URL in DATABASE_URL's spellings, or a plain SQLite
 * file path) as a URL in *url and parsed in *u. 0, or -1 with a message
 * that names `what` ("--from") instead of DATABASE_URL. */
static int db_arg(const char *what, const char *v, char **url, struct dburl *u, char *err,
                  size_t errlen)
{
    char perr[ERRLEN];

    *url = has_scheme(v) ? xstrdup(v) : path_to_url(v);
    if (dburl_parse(*url, u, perr, sizeof(perr)) == 0)
        return 0;
    free(*url);
    *url = NULL;
    const char *rest = strncmp(perr, "DATABASE_URL", 12) == 0 ? perr + 12 : perr;
    snprintf(err, errlen, "%.40s%s%.1800s%s", what,
             rest[0] == ':' || rest[0] == ' ' ? "" : ": ", rest,
             has_scheme(v) && strstr(v, "://") == NULL
                 ? " (a SQLite file whose name has a ':' is written ./NAME)"
                 : "");
    return -1;
}

/* True when both name the same database (same SQLite file, or the same
 * PostgreSQL connection string; other spellings of one server are not
 * recognised). */
static bool same_database(const struct dburl *a, const struct dburl *b)
{
    struct stat sa, sb;

    if (a->kind != b->kind)
        return false;
    if (a->kind == DBURL_POSTGRES)
        return strcmp(a->conninfo, b->conninfo) == 0;
    if (stat(a->path, &sa) == 0 && stat(b->path, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return strcmp(a->path, b->path) == 0;
}

/* Two database arguments; CLI_EXIT_OK or CLI_EXIT_USAGE after saying why. */
static int db_pair(const struct dargs *d, const char *na, const char *a, const char *nb,
                   const char *b, char **ua, char **ub, struct dburl *pa, struct dburl *pb)
{
    char err[ERRLEN];

    *ua = *ub = NULL;
    memset(pa, 0, sizeof(*pa));
    memset(pb, 0, sizeof(*pb));
    if (a == NULL || b == NULL)
        return cli_usage_error(d->cmd, "missing --%s (a database URL or a SQLite file path)",
                               a == NULL ? na : nb);
    char what[32];
    snprintf(what, sizeof(what), "--%s", na);
    if (db_arg(what, a, ua, pa, err, sizeof(err)) != 0)
        return cli_usage_error(d->cmd, "%s", err);
    snprintf(what, sizeof(what), "--%s", nb);
    if (db_arg(what, b, ub, pb, err, sizeof(err)) != 0) {
        free(*ua);
        dburl_free(pa);
        *ua = NULL;
        return cli_usage_error(d->cmd, "%s", err);
    }
    if (same_database(pa, pb)) {
        free(*ua);
        free(*ub);
        dburl_free(pa);
        dburl_free(pb);
        *ua = *ub = NULL;
        return cli_usage_error(d->cmd, "--%s and --%s name the same database", na, nb);
    }
    return CLI_EXIT_OK;
}

static int check_timezone(const struct dargs *d)
{
    char err[ERRLEN];
    struct dbconv_tz *tz;

    if (d->tz == NULL)
        return CLI_EXIT_OK;
    tz = dbconv_tz_open(d->tz, err, sizeof(err));
    if (tz == NULL)
        return cli_usage_error(d->cmd, "%s", err);
    dbconv_tz_close(tz);
    return CLI_EXIT_OK;
}

static const char *layout_name(enum dbsrc_layout l)
{
    switch (l) {
    case DBSRC_LAYOUT_AUTO:
        return NULL; /* not detected (the run stopped before) */
    case DBSRC_LAYOUT_CURRENT:
        return "current";
    case DBSRC_LAYOUT_LEGACY:
        return "legacy";
    default:
        abort();
    }
}

static const char *layout_text(enum dbsrc_layout l)
{
    switch (l) {
    case DBSRC_LAYOUT_AUTO:
        return "layout not detected";
    case DBSRC_LAYOUT_CURRENT:
        return "current layout";
    case DBSRC_LAYOUT_LEGACY:
        return "legacy layout: the old app's users and tasks";
    default:
        abort();
    }
}

/* Seconds as whole milliseconds, for JSON (exact integers, no float noise). */
static json_int_t ms(double seconds)
{
    return (json_int_t)(seconds * 1000.0 + 0.5);
}

/* ---- copy ---------------------------------------------------------------------- */

struct copy_totals {
    int64_t read, written, rejected;
};

static struct copy_totals copy_totals(const struct dbcopy_result *r)
{
    struct copy_totals t = {0};

    for (size_t i = 0; i < r->ntables; i++) {
        t.read += r->tables[i].read;
        t.written += r->tables[i].written;
        t.rejected += r->tables[i].rejected;
    }
    return t;
}

static void copy_json(const struct dargs *d, const struct dburl *from, const struct dburl *to,
                      const struct dbcopy_result *r, const char *error)
{
    struct copy_totals t = copy_totals(r);
    bool nothing = d->dry_run || error != NULL; /* written: 0 */
    json_t *tables = json_array();
    const char *layout = layout_name(r->layout);

    for (size_t i = 0; i < r->ntables; i++) {
        const struct dbcopy_table_result *x = &r->tables[i];
        json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I}", "table", x->table, "read",
                              (json_int_t)x->read, "written",
                              (json_int_t)(nothing ? 0 : x->written), "rejected",
                              (json_int_t)x->rejected, "ms", ms(x->seconds));
        if (d->dry_run)
            json_object_set_new(o, "would_write", json_integer(x->written));
        json_array_append_new(tables, o);
    }
    json_t *total = json_pack("{s:I, s:I, s:I, s:I}", "read", (json_int_t)t.read, "written",
                              (json_int_t)(nothing ? 0 : t.written), "rejected",
                              (json_int_t)t.rejected, "ms", ms(r->seconds));
    if (d->dry_run)
        json_object_set_new(total, "would_write", json_integer(t.written));
    cli_print_json(json_pack(
        "{s:b, s:b, s:s, s:s, s:s?, s:I, s:I, s:o, s:o, s:s?, s:s?}", "ok", error == NULL,
        "dry_run", d->dry_run, "source", from->redacted, "target", to->redacted, "layout",
        layout, "migrations_applied", (json_int_t)r->migrations_applied, "migrations_pending",
        (json_int_t)r->migrations_pending, "tables", tables, "total", total, "reject_file",
        d->skip_errors ? d->reject_file : NULL, "error", error));
}

static void copy_text(const struct dargs *d, const struct dburl *from, const struct dburl *to,
                      const struct dbcopy_result *r, bool failed)
{
    struct copy_totals t = copy_totals(r);
    int64_t mig = d->dry_run ? r->migrations_pending : r->migrations_applied;

    printf("source  %s (%s)\n", from->redacted, layout_text(r->layout));
    printf("target  %s (%lld migration%s %s)\n", to->redacted, (long long)mig,
           mig == 1 ? "" : "s", d->dry_run ? "to apply" : "applied");
    if (r->ntables > 0) {
        printf("\n%-8s %12s %12s %10s %9s\n", "TABLE", "READ",
               d->dry_run ? "WOULD WRITE" : "WRITTEN", "REJECTED", "SECONDS");
        for (size_t i = 0; i < r->ntables; i++) {
            const struct dbcopy_table_result *x = &r->tables[i];
            printf("%-8s %12lld %12lld %10lld %9.2f\n", x->table, (long long)x->read,
                   failed ? 0LL : (long long)x->written, (long long)x->rejected, x->seconds);
        }
        printf("%-8s %12lld %12lld %10lld %9.2f\n", "total", (long long)t.read,
               failed ? 0LL : (long long)t.written, (long long)t.rejected, r->seconds);
    }
    putchar('\n');
    if (failed)
        printf("failed: nothing was written\n");
    else if (d->dry_run)
        printf("dry run: nothing was written; %lld rows would be written\n",
               (long long)t.written);
    else
        printf("copied %lld rows in %.1f s\n", (long long)t.written, r->seconds);
    if (!failed && t.rejected > 0 && d->reject_file != NULL)
        printf("%lld rows rejected, listed in %s\n", (long long)t.rejected, d->reject_file);
}

static int cmd_copy(struct dargs *d)
{
    struct dburl from, to;
    struct dbcopy_result res;
    char *ufrom, *uto, err[ERRLEN];
    int code;

    if (d->skip_errors && d->reject_file == NULL)
        return cli_usage_error(d->cmd, "--on-error=skip needs --reject-file FILE (where the"
                                       " rejected rows are written)");
    if (d->reject_file != NULL && !d->skip_errors)
        return cli_usage_error(d->cmd, "--reject-file applies only with --on-error=skip");
    code = check_timezone(d);
    if (code != CLI_EXIT_OK)
        return code;
    code = db_pair(d, "from", d->from, "to", d->to, &ufrom, &uto, &from, &to);
    if (code != CLI_EXIT_OK)
        return code;
    struct dbcopy_opts o = {.from = ufrom,
                            .to = uto,
                            .layout = d->layout,
                            .source_timezone = d->tz,
                            .truncate = d->truncate,
                            .dry_run = d->dry_run,
                            .no_migrate = d->no_migrate,
                            .skip_errors = d->skip_errors,
                            .reject_file = d->reject_file,
                            .batch_rows = d->batch,
                            .progress = isatty(STDERR_FILENO) == 1};
    memset(&res, 0, sizeof(res));
    res.dry_run = d->dry_run;
    err[0] = '\0';
    int rc = dbcopy_run(&o, &res, err, sizeof(err));
    fflush(stderr);
    if (rc != 0)
        code = cli_fail(d->cmd, "%s", err[0] != '\0' ? err : "the copy failed");
    if (d->json)
        copy_json(d, &from, &to, &res, rc != 0 ? err : NULL);
    else
        copy_text(d, &from, &to, &res, rc != 0);
    free(ufrom);
    free(uto);
    dburl_free(&from);
    dburl_free(&to);
    return code;
}

/* ---- verify ---------------------------------------------------------------------- */

static const char *kind_name(enum dbverify_kind k, bool upper)
{
    switch (k) {
    case DBVERIFY_MISSING:
        return upper ? "MISSING" : "missing";
    case DBVERIFY_EXTRA:
        return upper ? "EXTRA" : "extra";
    case DBVERIFY_DIFFERENT:
        return upper ? "DIFFERENT" : "different";
    default:
        abort();
    }
}

static int64_t more_diffs(const struct dbverify_table *t)
{
    return t->missing + t->extra + t->different - (int64_t)t->ndiffs;
}

/* "title, updated_at" as ["title", "updated_at"]. */
static json_t *columns_json(const char *cols)
{
    json_t *arr = json_array();

    while (cols != NULL && *cols != '\0') {
        size_t n = strcspn(cols, ",");
        size_t end = n;
        while (end > 0 && cols[end - 1] == ' ')
            end--;
        json_array_append_new(arr, json_stringn(cols, end));
        cols += n;
        while (*cols == ',' || *cols == ' ')
            cols++;
    }
    return arr;
}

static void verify_json(const struct dburl *src, const struct dburl *dst,
                        const struct dbverify_result *r, const char *error)
{
    json_t *tables = json_array();

    for (size_t i = 0; i < r->ntables; i++) {
        const struct dbverify_table *t = &r->tables[i];
        json_t *diffs = json_array();
        for (size_t k = 0; k < t->ndiffs; k++) {
            const struct dbverify_diff *x = &t->diffs[k];
            json_t *o = json_pack("{s:s, s:s}", "kind", kind_name(x->kind, false), "id", x->id);
            if (x->kind == DBVERIFY_DIFFERENT)
                json_object_set_new(o, "columns", columns_json(x->columns));
            json_array_append_new(diffs, o);
        }
        json_array_append_new(
            tables, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:I}", "table", t->table,
                              "source_rows", (json_int_t)t->source_rows, "target_rows",
                              (json_int_t)t->target_rows, "missing", (json_int_t)t->missing,
                              "extra", (json_int_t)t->extra, "different",
                              (json_int_t)t->different, "ms", ms(t->seconds), "differences",
                              diffs, "more", (json_int_t)more_diffs(t)));
    }
    cli_print_json(json_pack("{s:o, s:s, s:s, s:s?, s:o, s:s?}", "identical",
                             error != NULL ? json_null() : json_boolean(r->identical), "source",
                             src->redacted, "target", dst->redacted, "source_layout",
                             layout_name(r->source_layout), "tables", tables, "error", error));
}

static void verify_text(const struct dburl *src, const struct dburl *dst,
                        const struct dbverify_result *r)
{
    printf("source  %s (%s)\n", src->redacted, layout_text(r->source_layout));
    printf("target  %s\n", dst->redacted);
    printf("\n%-8s %12s %12s %9s %9s %9s %9s\n", "TABLE", "SOURCE", "TARGET", "MISSING",
           "EXTRA", "DIFFERENT", "SECONDS");
    for (size_t i = 0; i < r->ntables; i++) {
        const struct dbverify_table *t = &r->tables[i];
        printf("%-8s %12lld %12lld %9lld %9lld %9lld %9.2f\n", t->table,
               (long long)t->source_rows, (long long)t->target_rows, (long long)t->missing,
               (long long)t->extra, (long long)t->different, t->seconds);
    }
    if (!r->identical)
        putchar('\n');
    for (size_t i = 0; i < r->ntables; i++) {
        const struct dbverify_table *t = &r->tables[i];
        for (size_t k = 0; k < t->ndiffs; k++) {
            const struct dbverify_diff *x = &t->diffs[k];
            printf("%-9s %s %s", kind_name(x->kind, true), t->table, x->id);
            if (x->kind == DBVERIFY_DIFFERENT && x->columns != NULL)
                printf(" columns: %s", x->columns);
            putchar('\n');
        }
        if (more_diffs(t) > 0)
            printf("\u2026and %lld more differences in %s\n", (long long)more_diffs(t),
                   t->table);
    }
    printf("\n%s\n", r->identical ? "identical" : "different");
}

static int cmd_verify(struct dargs *d)
{
    struct dburl src, dst;
    struct dbverify_result res;
    char *usrc, *udst, err[ERRLEN];
    int code = check_timezone(d);

    if (code != CLI_EXIT_OK)
        return code;
    code = db_pair(d, "source", d->source, "target", d->target, &usrc, &udst, &src, &dst);
    if (code != CLI_EXIT_OK)
        return code;
    struct dbverify_opts o = {.source = usrc,
                              .target = udst,
                              .source_layout = d->layout,
                              .source_timezone = d->tz,
                              .max_report = MAX_REPORT};
    memset(&res, 0, sizeof(res));
    err[0] = '\0';
    int rc = dbverify_run(&o, &res, err, sizeof(err));
    if (rc < 0) {
        cli_fail(d->cmd, "%s", err[0] != '\0' ? err : "the verification failed");
        code = CLI_EXIT_USAGE; /* verify: 2 means "could not tell" */
    } else {
        code = rc == 0 && res.identical ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
        res.identical = code == CLI_EXIT_OK;
    }
    if (d->json)
        verify_json(&src, &dst, &res, rc < 0 ? err : NULL);
    else if (rc >= 0)
        verify_text(&src, &dst, &res);
    dbverify_result_free(&res);
    free(usrc);
    free(udst);
    dburl_free(&src);
    dburl_free(&dst);
    return code;
}

/* ---- backup ------------------------------------------------------------------------ */

/* s in single quotes for a POSIX shell. */
static void shell_quote(struct buf *b, const char *s)
{
    buf_append_char(b, '\'');
    for (; *s != '\0'; s++) {
        if (*s == '\'')
            buf_append_str(b, "'\\''");
        else
            buf_append_char(b, *s);
    }
    buf_append_char(b, '\'');
}

/* The redacted URI without its "***" password, so that the pg_dump command
 * takes the password from PGPASSWORD or ~/.pgpass: ":***@" in the userinfo
 * and every "...password=***" query parameter are removed. */
static char *strip_redacted_password(const char *conninfo)
{
    char *red = dburl_redact(conninfo);
    char *q = strchr(red, '?');
    char *at = strstr(red, ":***@");
    const char *scheme_end = strstr(red, "://");
    struct buf b;

    buf_init(&b, 1u << 20);
    if (at != NULL && scheme_end != NULL && scheme_end < at && (q == NULL || at < q)) {
        buf_append(&b, red, (size_t)(at - red));
        buf_append_str(&b, at + 4);
    } else {
        buf_append_str(&b, red);
    }
    free(red);
    red = buf_take(&b, NULL);
    q = strchr(red, '?');
    if (q == NULL)
        return red;
    buf_append(&b, red, (size_t)(q - red));
    char sep = '?';
    for (char *p = q + 1; *p != '\0';) {
        size_t n = strcspn(p, "&");
        bool secret = n >= 4 && strncmp(p + n - 4, "=***", 4) == 0;
        if (!secret) {
            buf_append_char(&b, sep);
            buf_append(&b, p, n);
            sep = '&';
        }
        p += n;
        if (*p == '&')
            p++;
    }
    free(red);
    return buf_take(&b, NULL);
}

static int pg_dump_hint(const struct dargs *d, const struct dburl *u)
{
    char *uri = strip_redacted_password(u->conninfo);
    struct buf b;

    buf_init(&b, 1u << 20);
    buf_append_str(&b, "pg_dump --format=custom --file=");
    shell_quote(&b, d->to);
    buf_append_char(&b, ' ');
    shell_quote(&b, uri);
    fprintf(stderr,
            "todo %s: %s is a PostgreSQL database; todo db backup copies SQLite files only."
            " Back it up with pg_dump:\n"
            "  %s\n"
            "Give the password through PGPASSWORD or ~/.pgpass (it is not shown here).\n",
            d->cmd, u->redacted, b.data);
    buf_free(&b);
    free(uri);
    return CLI_EXIT_USAGE;
}

static int cmd_backup(struct dargs *d)
{
    struct dburl u = {0};
    struct dbbackup_result res;
    char *given = NULL, *url = NULL, err[ERRLEN];
    int code = CLI_EXIT_OK;

    if (d->to == NULL)
        return cli_usage_error(d->cmd, "missing --to FILE (where the backup goes)");
    if (d->url != NULL) {
        if (db_arg("--database-url", d->url, &url, &u, err, sizeof(err)) != 0)
            return cli_usage_error(d->cmd, "%s", err);
    } else {
        if (cli_database_url(NULL, false, &given, err, sizeof(err)) != 0)
            return cli_fail(d->cmd, "%s", err);
        int rc = db_arg("DATABASE_URL", given, &url, &u, err, sizeof(err));
        free(given);
        if (rc != 0)
            return cli_fail(d->cmd, "%s", err);
    }
    if (u.kind == DBURL_POSTGRES) {
        code = pg_dump_hint(d, &u);
        goto out;
    }
    if (dbbackup_sqlite(u.path, d->to, d->force, &res, err, sizeof(err)) != 0) {
        code = cli_fail(d->cmd, "%s", err);
        goto out;
    }
    printf("backed up %s to %s: %lld pages, %lld bytes, integrity_check ok, %.2f s\n", u.redacted,
           d->to, (long long)res.pages, (long long)res.bytes, res.seconds);
out:
    free(url);
    dburl_free(&u);
    return code;
}

/* ---- dispatch ---------------------------------------------------------------------- */

#define DB_ARGS_HELP                                                                               \
    "Databases are given as DATABASE_URL spells them (sqlite:///relative.db,\n"                   \
    "sqlite:////absolute.db, postgresql://user:pass@host/db?sslmode=require, ...)\n"              \
    "or as a plain SQLite file path (a value with no \"scheme:\" in front:\n"                     \
    "todo.db, ./data/todo.db, /var/lib/todo/todo.db). Passwords are never printed.\n"

struct subcmd {
    const char *name;
    unsigned allowed;
    int (*run)(struct dargs *d);
    const char *usage;
};

static const struct subcmd subcmds[] = {
    {"copy",
     OPT(O_FROM) | OPT(O_TO) | OPT(O_TRUNCATE) | OPT(O_DRY_RUN) | OPT(O_NO_MIGRATE) |
         OPT(O_BATCH_SIZE) | OPT(O_FROM_LAYOUT) | OPT(O_SOURCE_TZ) | OPT(O_ON_ERROR) |
         OPT(O_REJECT_FILE) | OPT(O_JSON),
     cmd_copy,
     "Usage: todo db copy --from URL --to URL [options]\n\n"
     "Copy every user and todo from one database to another (SQLite -> PostgreSQL,\n"
     "PostgreSQL -> SQLite, SQLite -> SQLite, PostgreSQL -> PostgreSQL) in ONE\n"
     "transaction on the target: interrupted, it leaves the target as it was. The\n"
     "target is first brought to the newest schema version (like `todo migrate up`;\n"
     "a SQLite target file is created) and must hold no users or todos.\n\n"
     "  --from URL               the source database (also the old Python app's\n"
     "                           SQLite file, the legacy layout)\n"
     "  --to URL                 the target database\n"
     "  --truncate               empty the target's tables first (same transaction)\n"
     "  --dry-run                read and convert everything, write nothing\n"
     "  --no-migrate             refuse a target not at the newest version instead\n"
     "                           of migrating it\n"
     "  --batch-size N           rows read per batch (default 10000, 1 to 1000000)\n"
     "  --from-layout L          auto (default), current or legacy\n"
     "  --source-timezone ZONE   zone of timestamps stored without an offset: UTC\n"
     "                           (default), +02:00, or a name like Europe/Berlin\n"
     "  --on-error=stop|skip     stop at the first value that cannot be converted\n"
     "                           (default), or skip its row (needs --reject-file)\n"
     "  --reject-file FILE       with skip: each rejected row as a JSON line\n"
     "  --json                   print the summary as one JSON object\n\n" DB_ARGS_HELP
     "\nExamples:\n"
     "  todo db copy --from todo.db --to \"$NEON_URL\"\n"
     "  todo db copy --from sqlite:///old_app.db --to \"$NEON_URL\" --dry-run\n"
     "  todo db copy --from \"$NEON_URL\" --to back.db\n"
     "  todo db copy --from old.db --to \"$NEON_URL\" --truncate \\\n"
     "      --on-error=skip --reject-file rejects.jsonl --source-timezone Europe/Berlin\n"
     "\nExit: 0 copied (or the dry run found nothing wrong), 1 failed (nothing was\n"
     "written), 2 usage error. Guide: docs/dbtool.md\n"},
    {"verify", OPT(O_SOURCE) | OPT(O_TARGET) | OPT(O_SOURCE_LAYOUT) | OPT(O_SOURCE_TZ) |
                   OPT(O_JSON),
     cmd_verify,
     "Usage: todo db verify --source URL --target URL [options]\n\n"
     "Prove that the target holds exactly the source's users and todos, after\n"
     "normalising both the way `todo db copy` converts them: row counts, then\n"
     "checksums over primary-key ranges, bisecting the ranges that differ down to\n"
     "rows. Prints every missing, extra and different row (the first 100 of each\n"
     "table, then a count) and, last, \"identical\" or \"different\". Writes nothing.\n\n"
     "  --source URL             the database copied from\n"
     "  --target URL             the database copied to\n"
     "  --source-layout L        auto (default), current or legacy\n"
     "  --source-timezone ZONE   as given to `todo db copy` (default UTC)\n"
     "  --json                   print one JSON object\n\n" DB_ARGS_HELP
     "\nExamples:\n"
     "  todo db verify --source todo.db --target \"$NEON_URL\"\n"
     "  todo db verify --source \"$NEON_URL\" --target back.db --json\n"
     "\nExit: 0 identical, 1 different, 2 error or usage error. Guide: docs/dbtool.md\n"},
    {"backup", OPT(O_URL) | OPT(O_TO) | OPT(O_FORCE), cmd_backup,
     "Usage: todo db backup [--database-url URL] --to FILE [--force]\n\n"
     "Take a consistent copy of a SQLite database while the server keeps running\n"
     "(SQLite's online backup API), check it with PRAGMA integrity_check and only\n"
     "then move it to FILE. For a PostgreSQL database, print the pg_dump command to\n"
     "use instead (and exit 2).\n\n"
     "  --database-url URL   the database (default: DATABASE_URL, from the\n"
     "                       environment, .env.<APP_ENV> or .env; else sqlite:///todo.db);\n"
     "                       a plain file path works too\n"
     "  --to FILE            where the copy goes (created readable by its owner only)\n"
     "  --force              replace FILE if it exists\n"
     "\nExamples:\n"
     "  todo db backup --to backups/todo-$(date +%F).db\n"
     "  todo db backup --database-url /var/lib/todo/todo.db --to /backup/todo.db --force\n"
     "\nExit: 0 done, 1 failed (FILE untouched), 2 usage error or a PostgreSQL URL.\n"
     "Guide: docs/dbtool.md\n"},
};

#define NSUBCMDS (sizeof(subcmds) / sizeof(subcmds[0]))

static void usage(FILE *out)
{
    fputs("Usage: todo db <command> [options]\n\n"
          "Move users and todos between SQLite and PostgreSQL, prove the copy, back up\n"
          "SQLite (docs/dbtool.md).\n\n"
          "Commands:\n"
          "  copy --from URL --to URL         copy everything, in one target transaction\n"
          "  verify --source URL --target URL prove the target holds exactly the source\n"
          "  backup --to FILE                 online backup of the SQLite database\n\n"
          "Each takes --help. Exit codes: 0 success (verify: identical), 1 failure\n"
          "(verify: different), 2 usage error (verify: also any error; backup: also a\n"
          "PostgreSQL URL, with the pg_dump command to use).\n",
          out);
}

int cli_db_main(int argc, char **argv)
{
    const struct subcmd *sub;
    struct dargs d = {0};
    size_t index;
    int code;

    if (!cli_subcommand("db", argc, argv, subcmds, NSUBCMDS, sizeof(subcmds[0]), usage, &index,
                        &code))
        return code;
    sub = &subcmds[index];
    snprintf(d.cmd, sizeof(d.cmd), "db %s", sub->name);
    d.allowed = sub->allowed;
    code = cli_parse(d.cmd, argc - 1, argv + 1, options, on_option, &d, &d.a);
    if (code != 0)
        return code;
    if (d.a.help) {
        fputs(sub->usage, stdout);
        return CLI_EXIT_OK;
    }
    if (d.a.npos > 0)
        return cli_usage_error(d.cmd, "unexpected argument '%s'", d.a.pos[0]);
    return sub->run(&d);
}
