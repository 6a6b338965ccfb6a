#include "cli/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "migrate/mdb.h"
#include "migrate/migrate.h"
#include "migrate/schema_check.h"
#include "migrate/source.h"
#include "util/xalloc.h"

#define ERRLEN 2048
#define WAIT_TIMEOUT_MS_DEFAULT 60000
#define DEFAULT_DIR "migrations"

/* ---- options --------------------------------------------------------------- */

enum opt_id {
    O_URL,
    O_DIR,
    O_LOCK_TIMEOUT,
    O_ALLOW_CHANGED,
    O_JSON,
    O_EXIT_CODE,
    O_TO,
    O_STEPS,
    O_TIMEOUT,
};
#define OPT(id) (1u << (id))
#define COMMON (OPT(O_URL) | OPT(O_DIR) | OPT(O_LOCK_TIMEOUT))

static const struct cli_opt options[] = {
    {"database-url", true, O_URL},  {"dir", true, O_DIR},
    {"lock-timeout", true, O_LOCK_TIMEOUT}, {"allow-changed", false, O_ALLOW_CHANGED},
    {"json", false, O_JSON},        {"exit-code", false, O_EXIT_CODE},
    {"to", true, O_TO},             {"steps", true, O_STEPS},
    {"timeout", true, O_TIMEOUT},   {NULL, false, 0},
};

struct margs {
    char cmd[32]; /* "migrate up", for messages */
    unsigned allowed;
    const char *url, *dir;
    int lock_timeout_ms, timeout_ms;
    bool allow_changed, json, exit_code, has_to, has_steps;
    int64_t to, steps;
    struct cli_args a;
};

static int on_option(void *ctx, int id, const char *v)
{
    struct margs *m = ctx;
    int rc = 0;

    if (!(m->allowed & OPT(id))) {
        cli_usage_error(m->cmd, "option '--%s' does not apply to this command", options[id].name);
        return -1;
    }
    switch (id) {
    case O_URL:
        m->url = v;
        break;
    case O_DIR:
        m->dir = v;
        break;
    case O_LOCK_TIMEOUT:
        rc = cli_parse_seconds(v, 86400, &m->lock_timeout_ms);
        break;
    case O_TIMEOUT:
        rc = cli_parse_seconds(v, 86400, &m->timeout_ms);
        break;
    case O_ALLOW_CHANGED:
        m->allow_changed = true;
        break;
    case O_JSON:
        m->json = true;
        break;
    case O_EXIT_CODE:
        m->exit_code = true;
        break;
    case O_TO:
        m->has_to = true;
        rc = cli_parse_version(v, &m->to);
        break;
    case O_STEPS:
        m->has_steps = true;
        rc = cli_parse_int64(v, 1, 1000000, &m->steps);
        break;
    default:
        abort();
    }
    if (rc != 0) {
        cli_usage_error(m->cmd, "invalid value '%s' for --%s", v, options[id].name);
        return -1;
    }
    return 0;
}

/* ---- the database and the migrations a command works on ------------------- */

struct session {
    struct mdb *db;
    struct migrate_source src;
    struct migrate_db cb;
};

/* Open both; CLI_EXIT_OK, or CLI_EXIT_FAILURE after saying why. */
static int session_open(const struct margs *m, bool create, struct session *s)
{
    struct mdb_opts o = {.lock_timeout_ms = m->lock_timeout_ms, .create = create};
    char err[ERRLEN];
    char *url = NULL;

    memset(s, 0, sizeof(*s));
    if (cli_database_url(m->url, true, &url, err, sizeof(err)) != 0)
        return cli_fail(m->cmd, "%s", err);
    if (mdb_open(url, &o, &s->db, err, sizeof(err)) != 0) {
        free(url);
        return cli_fail(m->cmd, "%s", err);
    }
    free(url);
    if (migrate_source_open(&s->src, m->dir, mdb_dialect(s->db), err, sizeof(err)) != 0) {
        mdb_close(s->db);
        return cli_fail(m->cmd, "%s", err);
    }
    mdb_migrate_db(s->db, &s->cb);
    return CLI_EXIT_OK;
}

static void session_close(struct session *s)
{
    migrate_source_close(&s->src);
    mdb_close(s->db);
}

/* "0002_add_order", or "version 0 (nothing applied)" */
static const char *position(const struct session *s, int64_t version, char *buf, size_t len)
{
    const struct migration *m = migrate_find(s->src.list, s->src.n, version);

    if (version == 0)
        snprintf(buf, len, "version 0 (nothing applied)");
    else if (m != NULL)
        snprintf(buf, len, "%04lld_%s", (long long)version, m->name);
    else
        snprintf(buf, len, "%04lld (not among the migrations)", (long long)version);
    return buf;
}

static char *alembic_message(const char *rev)
{
    const char *fmt =
        "this database is still managed by Alembic (alembic_version: %s) and todo has never"
        " migrated it, so `todo migrate` will not write over it. To adopt it: copy its data"
        " into a database made by `todo migrate up` (`todo db copy`); or, when its schema"
        " already is exactly what migration N gives, record that with `todo migrate stamp N`"
        " and confirm with `todo migrate check`";
    size_t len = strlen(fmt) + strlen(rev) + 1;
    char *out = xmalloc(len);

    snprintf(out, len, fmt, rev[0] != '\0' ? rev : "empty");
    return out;
}

/* ---- progress of up / down / stamp ----------------------------------------- */

struct progress {
    bool line_open; /* "applying X ... " printed, outcome not yet */
};

static void on_progress(void *ctx, enum migrate_event ev, const struct migration *m,
                        int64_t ms)
{
    struct progress *p = ctx;
    long long v = (long long)m->version;

    switch (ev) {
    case MIGRATE_EV_APPLYING:
    case MIGRATE_EV_REVERTING:
        printf("%s %04lld_%s ... ", ev == MIGRATE_EV_APPLYING ? "applying" : "reverting", v,
               m->name);
        p->line_open = true;
        break;
    case MIGRATE_EV_APPLIED:
    case MIGRATE_EV_REVERTED:
        printf("done in %lld ms\n", (long long)ms);
        p->line_open = false;
        break;
    case MIGRATE_EV_SKIPPED:
        printf("%04lld_%s: already done by another migrator\n", v, m->name);
        break;
    case MIGRATE_EV_NO_TX:
        printf("%04lld_%s runs outside a transaction (" MIGRATE_NO_TRANSACTION_MARK "), alone\n",
               v, m->name);
        break;
    case MIGRATE_EV_STAMPED:
        printf("recorded %04lld_%s as applied (not run)\n", v, m->name);
        break;
    case MIGRATE_EV_CHANGED:
        printf("warning: %04lld_%s.up.sql changed since it was applied; going on"
               " (--allow-changed)\n",
               v, m->name);
        break;
    default:
        abort();
    }
    fflush(stdout);
}

static void progress_failed(struct progress *p)
{
    if (p->line_open)
        printf("failed\n");
    p->line_open = false;
    fflush(stdout);
}

/* ---- status ------------------------------------------------------------------ */

static const char *problem_kind(enum migrate_problem_kind k)
{
    switch (k) {
    case MIGRATE_PROBLEM_CHANGED:
        return "changed";
    case MIGRATE_PROBLEM_UNKNOWN:
        return "unknown";
    case MIGRATE_PROBLEM_MISSING:
        return "missing";
    default:
        abort();
    }
}

static json_t *migration_json(const struct migration *m)
{
    char file[320];

    return json_pack("{s:I, s:s, s:s}", "version", (json_int_t)m->version, "name", m->name,
                     "file", migrate_file_name(m, false, file, sizeof(file)));
}

static void status_json(const struct session *s, const struct migrate_status *st,
                        const char *alembic, bool unadopted)
{
    json_t *pending = json_array(), *problems = json_array(), *al = json_null();
    char *msg = unadopted ? alembic_message(alembic) : NULL;

    for (size_t i = 0; i < st->npending; i++)
        json_array_append_new(pending, migration_json(st->pending[i]));
    for (size_t i = 0; i < st->nproblems; i++)
        json_array_append_new(problems,
                              json_pack("{s:s, s:I, s:s}", "kind",
                                        problem_kind(st->problems[i].kind), "version",
                                        (json_int_t)st->problems[i].version, "message",
                                        st->problems[i].message));
    if (alembic != NULL) {
        json_decref(al);
        al = json_pack("{s:s, s:b, s:s?}", "version", alembic, "adopted", !unadopted, "message",
                       msg);
    }
    cli_print_json(json_pack(
        "{s:s, s:s, s:b, s:s, s:I, s:I, s:o, s:o, s:o}", "database", mdb_label(s->db), "dialect",
        mdb_dialect(s->db), "database_exists", !mdb_missing(s->db), "migrations",
        s->src.dir != NULL ? s->src.dir : "embedded", "current", (json_int_t)st->current,
        "latest", (json_int_t)st->latest, "pending", pending, "problems", problems, "alembic",
        al));
    free(msg);
}

static void status_text(const struct session *s, const struct migrate_status *st,
                        const char *alembic, bool unadopted)
{
    char buf[400], t[32];

    printf("database:   %s (%s)%s\n", mdb_label(s->db), mdb_dialect(s->db),
           mdb_missing(s->db) ? ", the file does not exist yet" : "");
    printf("migrations: %s%s, %zu, newest %s\n", s->src.dir != NULL ? "from " : "embedded",
           s->src.dir != NULL ? s->src.dir : "", s->src.n,
           position(s, st->latest, buf, sizeof(buf)));
    printf("current:    %s", position(s, st->current, buf, sizeof(buf)));
    for (size_t i = 0; i < st->napplied; i++) {
        if (st->applied[i].version == st->current)
            printf(", applied %s in %lld ms", cli_time(st->applied[i].applied_at_ms, t),
                   (long long)st->applied[i].duration_ms);
    }
    printf("\npending:    %zu%s\n", st->npending, st->npending == 0 ? " (up to date)" : "");
    for (size_t i = 0; i < st->npending; i++)
        printf("  %04lld_%s\n", (long long)st->pending[i]->version, st->pending[i]->name);
    for (size_t i = 0; i < st->nproblems; i++)
        printf("problem:    %s\n", st->problems[i].message);
    if (alembic != NULL && unadopted) {
        char *msg = alembic_message(alembic);
        printf("alembic:    %s\n", msg);
        free(msg);
    } else if (alembic != NULL) {
        printf("alembic:    an alembic_version table (%s) is left over; todo manages this"
               " database (adopted)\n",
               alembic);
    }
}

/* The applied history and the Alembic marker; CLI_EXIT_OK or FAILURE. */
static int read_state(const struct margs *m, struct session *s, struct migrate_status *st,
                      char **alembic)
{
    char err[ERRLEN];

    *alembic = NULL;
    if (migrate_status_read(&s->cb, s->src.list, s->src.n, st, err, sizeof(err)) != 0)
        return cli_fail(m->cmd, "%s", err);
    if (mdb_alembic_version(s->db, alembic, err, sizeof(err)) != 0) {
        migrate_status_free(st);
        return cli_fail(m->cmd, "%s", err);
    }
    return CLI_EXIT_OK;
}

static int cmd_status(struct margs *m)
{
    struct session s;
    struct migrate_status st;
    char *alembic;
    int code = session_open(m, false, &s);

    if (code != CLI_EXIT_OK)
        return code;
    code = read_state(m, &s, &st, &alembic);
    if (code == CLI_EXIT_OK) {
        bool unadopted = alembic != NULL && st.napplied == 0;
        if (m->json)
            status_json(&s, &st, alembic, unadopted);
        else
            status_text(&s, &st, alembic, unadopted);
        if (m->exit_code && (st.npending > 0 || st.nproblems > 0 || unadopted))
            code = CLI_EXIT_FAILURE;
        migrate_status_free(&st);
        free(alembic);
    }
    session_close(&s);
    return code;
}

/* ---- history ------------------------------------------------------------------ */

struct hist_row {
    int64_t version;
    const char *name;
    const char *state;
    const struct migrate_applied *applied; /* NULL: not applied */
};

static int by_version(const void *a, const void *b)
{
    const struct hist_row *x = a, *y = b;

    return x->version < y->version ? -1 : x->version > y->version;
}

static const struct migrate_applied *applied_row(const struct migrate_status *st, int64_t v)
{
    for (size_t i = 0; i < st->napplied; i++) {
        if (st->applied[i].version == v)
            return &st->applied[i];
    }
    return NULL;
}

static const char *problem_state(const struct migrate_status *st, int64_t v, const char *dflt)
{
    for (size_t i = 0; i < st->nproblems; i++) {
        if (st->problems[i].version == v)
            return problem_kind(st->problems[i].kind);
    }
    return dflt;
}

/* Every known migration and every applied row, by version. */
static struct hist_row *history_rows(const struct session *s, const struct migrate_status *st,
                                     size_t *n)
{
    struct hist_row *rows = xcalloc(s->src.n + st->napplied + 1, sizeof(*rows));
    size_t k = 0;

    for (size_t i = 0; i < s->src.n; i++) {
        const struct migration *mg = &s->src.list[i];
        const struct migrate_applied *a = applied_row(st, mg->version);
        rows[k++] = (struct hist_row){mg->version, mg->name,
                                      problem_state(st, mg->version, a ? "applied" : "pending"),
                                      a};
    }
    for (size_t i = 0; i < st->napplied; i++) {
        if (migrate_find(s->src.list, s->src.n, st->applied[i].version) == NULL)
            rows[k++] = (struct hist_row){st->applied[i].version, st->applied[i].name, "unknown",
                                          &st->applied[i]};
    }
    qsort(rows, k, sizeof(*rows), by_version);
    *n = k;
    return rows;
}

static void history_print(const struct hist_row *rows, size_t n, bool json)
{
    json_t *arr = json ? json_array() : NULL;
    char t[32];

    if (!json)
        printf("%-8s %-32s %-8s %-24s %s\n", "VERSION", "NAME", "STATE", "APPLIED AT",
               "DURATION");
    for (size_t i = 0; i < n; i++) {
        const struct hist_row *r = &rows[i];
        if (json) {
            json_array_append_new(
                arr, json_pack("{s:I, s:s, s:s, s:o, s:o, s:o}", "version", (json_int_t)r->version,
                               "name", r->name, "state", r->state, "applied_at",
                               r->applied ? json_string(cli_time(r->applied->applied_at_ms, t))
                                          : json_null(),
                               "duration_ms",
                               r->applied ? json_integer(r->applied->duration_ms) : json_null(),
                               "checksum",
                               r->applied ? json_string(r->applied->checksum) : json_null()));
            continue;
        }
        char dur[32] = "-";
        if (r->applied)
            snprintf(dur, sizeof(dur), "%lld ms", (long long)r->applied->duration_ms);
        printf("%04lld     %-32s %-8s %-24s %s\n", (long long)r->version, r->name, r->state,
               r->applied ? cli_time(r->applied->applied_at_ms, t) : "-", dur);
    }
    if (json)
        cli_print_json(arr);
}

static int cmd_history(struct margs *m)
{
    struct session s;
    struct migrate_status st;
    char *alembic;
    size_t n;
    int code = session_open(m, false, &s);

    if (code != CLI_EXIT_OK)
        return code;
    code = read_state(m, &s, &st, &alembic);
    if (code == CLI_EXIT_OK) {
        struct hist_row *rows = history_rows(&s, &st, &n);
        history_print(rows, n, m->json);
        free(rows);
        migrate_status_free(&st);
        free(alembic);
    }
    session_close(&s);
    return code;
}

/* ---- up / down / stamp ------------------------------------------------------------ */

/* Refuse to write to a database Alembic still manages. */
static int refuse_alembic(const struct margs *m, struct session *s)
{
    struct migrate_status st;
    char *alembic;
    int code = read_state(m, s, &st, &alembic);

    if (code == CLI_EXIT_OK && alembic != NULL && st.napplied == 0) {
        char *msg = alembic_message(alembic);
        code = cli_fail(m->cmd, "%s", msg);
        free(msg);
    }
    migrate_status_free(&st); /* zeroed when read_state failed */
    free(alembic);
    return code;
}

static void print_outcome(struct session *s, const char *what, int count)
{
    char err[ERRLEN], buf[400];
    int64_t v = 0;

    if (s->cb.current_version(s->cb.conn, &v, err, sizeof(err)) != 0) {
        printf("%s %d\n", what, count);
        return;
    }
    if (count == 0)
        printf("nothing to do: the database is at %s\n", position(s, v, buf, sizeof(buf)));
    else
        printf("%s %d migration%s: the database is at %s\n", what, count, count == 1 ? "" : "s",
               position(s, v, buf, sizeof(buf)));
}

/* A run's ending: its outcome, or (after closing an open progress line, if
 * p) its error. */
static int finish_run(struct margs *m, struct session *s, struct progress *p, int n,
                      const char *err, const char *what)
{
    if (n >= 0) {
        print_outcome(s, what, n);
        return CLI_EXIT_OK;
    }
    if (p != NULL)
        progress_failed(p);
    return cli_fail(m->cmd, "%s", err);
}

static int cmd_up(struct margs *m)
{
    struct session s;
    struct progress p = {0};
    char err[ERRLEN];
    int code, n;

    if (m->has_to && m->to == 0)
        return cli_usage_error(m->cmd, "--to needs a migration version (1 or more)");
    code = session_open(m, true, &s);
    if (code != CLI_EXIT_OK)
        return code;
    code = refuse_alembic(m, &s);
    if (code == CLI_EXIT_OK) {
        struct migrate_run_opts o = {.target = m->has_to ? m->to : 0,
                                     .allow_changed = m->allow_changed,
                                     .progress = on_progress,
                                     .ctx = &p};
        n = migrate_apply(&s.cb, s.src.list, s.src.n, &o, err, sizeof(err));
        code = finish_run(m, &s, &p, n, err, "applied");
    }
    session_close(&s);
    return code;
}

static int cmd_down(struct margs *m)
{
    struct session s;
    struct progress p = {0};
    char err[ERRLEN];
    int code, n;

    if (m->has_to && m->has_steps)
        return cli_usage_error(m->cmd, "--to and --steps exclude each other");
    code = session_open(m, false, &s); /* a missing file has nothing to revert */
    if (code != CLI_EXIT_OK)
        return code;
    if (m->has_to && m->to != 0 && migrate_find(s.src.list, s.src.n, m->to) == NULL) {
        session_close(&s);
        return cli_fail(m->cmd, "there is no migration %04lld", (long long)m->to);
    }
    struct migrate_run_opts o = {.target = m->has_to ? m->to : 0,
                                 .steps = m->has_steps ? m->steps : m->has_to ? 0 : 1,
                                 .progress = on_progress,
                                 .ctx = &p};
    n = migrate_revert(&s.cb, s.src.list, s.src.n, &o, err, sizeof(err));
    code = finish_run(m, &s, &p, n, err, "reverted");
    session_close(&s);
    return code;
}

static int cmd_stamp(struct margs *m)
{
    struct session s;
    struct progress p = {0};
    char err[ERRLEN];
    int64_t version;
    int code, n;

    if (cli_parse_version(m->a.pos[0], &version) != 0 || version == 0)
        return cli_usage_error(m->cmd, "'%s' is not a migration version (e.g. 2 or 0002)",
                               m->a.pos[0]);
    code = session_open(m, true, &s);
    if (code != CLI_EXIT_OK)
        return code;
    struct migrate_run_opts o = {.progress = on_progress, .ctx = &p};
    n = migrate_stamp(&s.cb, s.src.list, s.src.n, version, &o, err, sizeof(err));
    code = finish_run(m, &s, NULL, n, err, "recorded");
    session_close(&s);
    return code;
}

/* ---- new ---------------------------------------------------------------------------- */

static int cmd_new(struct margs *m)
{
    char err[ERRLEN];
    char **paths = NULL;
    size_t n = 0;
    int64_t version;

    if (!migrate_name_valid(m->a.pos[0]))
        return cli_usage_error(m->cmd,
                               "invalid name '%s': use lower-case letters, digits and _ (at"
                               " most %d)",
                               m->a.pos[0], MIGRATE_NAME_MAX);
    if (migrate_new(m->dir != NULL ? m->dir : DEFAULT_DIR, m->a.pos[0], &version, &paths, &n, err,
                    sizeof(err)) != 0)
        return cli_fail(m->cmd, "%s", err);
    printf("created migration %04lld_%s:\n", (long long)version, m->a.pos[0]);
    for (size_t i = 0; i < n; i++) {
        printf("  %s\n", paths[i]);
        free(paths[i]);
    }
    free(paths);
    if (m->dir == NULL)
        printf("The binary embeds migrations/ at build time: list the new files in the"
               " embedded_migrations inputs of meson.build, then rebuild.\n");
    return CLI_EXIT_OK;
}

/* ---- check ---------------------------------------------------------------------------- */

static const char *diff_kind(enum schema_diff_kind k)
{
    switch (k) {
    case SCHEMA_DIFF_EXTRA:
        return "extra";
    case SCHEMA_DIFF_MISSING:
        return "missing";
    case SCHEMA_DIFF_CHANGED:
        return "changed";
    default:
        abort();
    }
}

/* One "extra" or "missing" line. */
static void check_line(const struct schema_diff *d)
{
    const char *value = d->live != NULL ? d->live : d->expected;
    const char *why = d->kind == SCHEMA_DIFF_EXTRA
                          ? "in the database only"
                          : "the migrations create it; the database lacks it";

    printf("  %-8s %s%s%s   (%s)\n", diff_kind(d->kind), d->key, value[0] != '\0' ? ": " : "",
           value, why);
}

static void check_print(const struct margs *m, const struct session *s, int64_t current,
                        size_t npending, size_t compared, const struct schema_diff *d, size_t n)
{
    char buf[400];

    if (m->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s?, s:s?}", "kind",
                                                 diff_kind(d[i].kind), "object", d[i].key,
                                                 "database", d[i].live, "migrations",
                                                 d[i].expected));
        cli_print_json(json_pack("{s:b, s:s, s:I, s:I, s:I, s:o}", "identical", n == 0,
                                 "database", mdb_label(s->db), "version", (json_int_t)current,
                                 "pending", (json_int_t)npending, "compared",
                                 (json_int_t)compared, "differences", arr));
        return;
    }
    position(s, current, buf, sizeof(buf));
    if (n == 0)
        printf("the schema is what the migrations up to %s give (%zu objects compared)\n", buf,
               compared);
    else
        printf("drift: the database differs from what the migrations up to %s give:\n", buf);
    for (size_t i = 0; i < n; i++) {
        if (d[i].kind == SCHEMA_DIFF_CHANGED)
            printf("  changed  %s\n             database:   %s\n             migrations: %s\n",
                   d[i].key, d[i].live, d[i].expected);
        else
            check_line(&d[i]);
    }
    if (npending > 0)
        printf("note: %zu migration%s pending, not part of this comparison (`todo migrate up`)\n",
               npending, npending == 1 ? " is" : "s are");
}

static int cmd_check(struct margs *m)
{
    struct session s;
    struct migrate_status st;
    struct schema_desc live = {0}, want = {0};
    struct schema_diff *diff = NULL;
    char err[ERRLEN], *alembic = NULL;
    size_t n;
    int code = session_open(m, false, &s);

    if (code != CLI_EXIT_OK)
        return code;
    if (mdb_missing(s.db)) {
        code = cli_fail(m->cmd, "%s: the database file does not exist (`todo migrate up` creates"
                                " it)", mdb_label(s.db));
        goto out;
    }
    code = read_state(m, &s, &st, &alembic);
    if (code != CLI_EXIT_OK)
        goto out;
    if (mdb_describe(s.db, &live, err, sizeof(err)) != 0 ||
        mdb_describe_expected(s.db, s.src.list, s.src.n, st.current, &want, err, sizeof(err)) !=
            0) {
        code = cli_fail(m->cmd, "%s", err);
    } else {
        n = schema_diff(&live, &want, &diff);
        check_print(m, &s, st.current, st.npending, want.n, diff, n);
        code = n == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
    }
    for (size_t i = 0; i < st.nproblems && !m->json; i++)
        fprintf(stderr, "todo %s: note: %s\n", m->cmd, st.problems[i].message);
    free(diff);
    schema_desc_free(&live);
    schema_desc_free(&want);
    migrate_status_free(&st);
    free(alembic);
out:
    session_close(&s);
    return code;
}

/* ---- wait ------------------------------------------------------------------------------ */

static int cmd_wait(struct margs *m)
{
    char err[ERRLEN];
    char *url = NULL;
    int64_t waited = 0;
    int timeout = m->timeout_ms > 0 ? m->timeout_ms : WAIT_TIMEOUT_MS_DEFAULT;

    if (cli_database_url(m->url, true, &url, err, sizeof(err)) != 0)
        return cli_fail(m->cmd, "%s", err);
    int rc = mdb_wait(url, timeout, &waited, err, sizeof(err));
    free(url);
    if (rc != 0)
        return cli_fail(m->cmd, "the database does not accept connections; gave up after %.1f s:"
                                " %s", waited / 1000.0, err);
    printf("the database accepts connections (waited %.1f s)\n", waited / 1000.0);
    return CLI_EXIT_OK;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

#define COMMON_HELP                                                                                \
    "  --database-url URL   the database (default: MIGRATIONS_DATABASE_URL, else\n"                \
    "                       DATABASE_URL, else sqlite:///todo.db)\n"                              \
    "  --dir DIR            run the migrations in DIR/<dialect>/ instead of the\n"                 \
    "                       embedded ones (laid out like the repository's migrations/)\n"        \
    "  --lock-timeout S     wait at most S seconds for another migrator (default 60)\n"

struct subcmd {
    const char *name;
    unsigned allowed;
    int npos; /* positional arguments required (exactly) */
    int (*run)(struct margs *m);
    const char *usage;
};

static const struct subcmd subcmds[] = {
    {"status", COMMON | OPT(O_JSON) | OPT(O_EXIT_CODE), 0, cmd_status,
     "Usage: todo migrate status [--exit-code] [--json] [options]\n\n"
     "Show the current version, the pending migrations and any problem: an applied\n"
     "migration whose file changed, an applied version not among the migrations, a\n"
     "hole in the history, a database still managed by Alembic (with the way to\n"
     "adopt it). Writes nothing.\n\n"
     "  --exit-code          exit 1 while migrations are pending or a problem is shown\n"
     "  --json               print one JSON object\n" COMMON_HELP
     "\nExit: 0 ok (also with pending migrations, unless --exit-code), 1 failure, 2 usage.\n"},
    {"up", COMMON | OPT(O_TO) | OPT(O_ALLOW_CHANGED), 0, cmd_up,
     "Usage: todo migrate up [--to V] [--allow-changed] [options]\n\n"
     "Apply the pending migrations in order, each in its own transaction (or alone,\n"
     "outside one, when its first line is `" MIGRATE_NO_TRANSACTION_MARK "`). A failing\n"
     "migration is rolled back and named with its failing statement; the ones before\n"
     "it stay applied. Safe to run from several processes at once.\n\n"
     "  --to V               stop after version V (2 and 0002 mean the same)\n"
     "  --allow-changed      go on although an applied migration's file changed\n" COMMON_HELP
     "\nExit: 0 applied or nothing to do, 1 failure, 2 usage.\n"},
    {"down", COMMON | OPT(O_TO) | OPT(O_STEPS), 0, cmd_down,
     "Usage: todo migrate down [--to V | --steps N] [options]\n\n"
     "Revert applied migrations, newest first, with their .down.sql files, each in\n"
     "its own transaction. Without --to or --steps, reverts one. Refuses (changing\n"
     "nothing) when one of them has no down file.\n\n"
     "  --to V               keep V and everything before it (0: revert all)\n"
     "  --steps N            revert the N newest\n" COMMON_HELP
     "\nExit: 0 reverted or nothing to do, 1 failure, 2 usage.\n"},
    {"history", COMMON | OPT(O_JSON), 0, cmd_history,
     "Usage: todo migrate history [--json] [options]\n\n"
     "List every migration with its state (applied, pending, changed, missing,\n"
     "unknown), when it was applied and how long it took.\n\n"
     "  --json               print a JSON array\n" COMMON_HELP
     "\nExit: 0 ok, 1 failure, 2 usage.\n"},
    {"new", OPT(O_DIR), 1, cmd_new,
     "Usage: todo migrate new NAME [--dir DIR]\n\n"
     "Create the next numbered pair NNNN_NAME.up.sql / .down.sql for every dialect\n"
     "in ./migrations/ (or DIR), from a commented template. NAME: lower-case\n"
     "letters, digits and _.\n\n"
     "  --dir DIR            the migrations directory (default: migrations)\n"
     "\nExit: 0 created, 1 failure, 2 usage.\n"},
    {"stamp", COMMON, 1, cmd_stamp,
     "Usage: todo migrate stamp V [options]\n\n"
     "Record version V (2 and 0002 mean the same), and every earlier one not yet\n"
     "recorded, as applied without running them: adopting a database whose schema\n"
     "already is what they produce. Only moves forward.\n\n" COMMON_HELP
     "\nExit: 0 recorded, 1 failure, 2 usage.\n"},
    {"check", COMMON | OPT(O_JSON), 0, cmd_check,
     "Usage: todo migrate check [--json] [options]\n\n"
     "Compare the live schema (tables, columns and types, nullability, defaults,\n"
     "indexes, constraints, views, triggers) with what the migrations up to the\n"
     "current version produce in a scratch database (SQLite: in memory; PostgreSQL:\n"
     "a temporary schema), and print the differences.\n\n"
     "  --json               print one JSON object\n" COMMON_HELP
     "\nExit: 0 identical, 1 drift or failure, 2 usage.\n"},
    {"wait", OPT(O_URL) | OPT(O_TIMEOUT), 0, cmd_wait,
     "Usage: todo migrate wait [--timeout S] [--database-url URL]\n\n"
     "Wait until the database accepts connections and answers a query (a Neon\n"
     "endpoint waking up, a deploy script waiting for its database).\n\n"
     "  --timeout S          give up after S seconds (default 60)\n"
     "  --database-url URL   as for the other commands\n"
     "\nExit: 0 ready, 1 gave up, 2 usage.\n"},
};

#define NSUBCMDS (sizeof(subcmds) / sizeof(subcmds[0]))

static void usage(FILE *out)
{
    fputs("Usage: todo migrate <command> [options]\n\n"
          "Versioned schema migrations for SQLite and PostgreSQL (docs/migrations.md).\n\n"
          "Commands:\n"
          "  status [--exit-code]        current version, pending migrations, problems\n"
          "  up [--to V]                 apply pending migrations\n"
          "  down [--to V | --steps N]   revert with the .down.sql files\n"
          "  history                     every migration, when applied, how long\n"
          "  new NAME                    create the next numbered up/down pair\n"
          "  stamp V                     record V as applied without running it\n"
          "  check                       compare the live schema with the migrations\n"
          "  wait [--timeout S]          wait until the database accepts connections\n\n"
          "Each takes --help. Exit codes: 0 success, 1 failure or drift, 2 usage error.\n",
          out);
}

int cli_migrate_main(int argc, char **argv)
{
    const struct subcmd *sub;
    struct margs m = {0};
    size_t index;
    int code;

    if (!cli_subcommand("migrate", argc, argv, subcmds, NSUBCMDS, sizeof(subcmds[0]), usage, &index,
                        &code))
        return code;
    sub = &subcmds[index];
    snprintf(m.cmd, sizeof(m.cmd), "migrate %s", sub->name);
    m.allowed = sub->allowed;
    code = cli_parse(m.cmd, argc - 1, argv + 1, options, on_option, &m, &m.a);
    if (code != 0)
        return code;
    if (m.a.help) {
        fputs(sub->usage, stdout);
        return CLI_EXIT_OK;
    }
    if (m.a.npos != sub->npos)
        return m.a.npos < sub->npos
                   ? cli_usage_error(m.cmd, "missing argument")
                   : cli_usage_error(m.cmd, "unexpected argument '%s'", m.a.pos[sub->npos]);
    return sub->run(&m);
}
