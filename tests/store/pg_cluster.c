#include "pg_cluster.h"

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENV_URL "PG_CLUSTER_TEST_URL"
#define ENV_DIR "PG_CLUSTER_TEST_DIR"
#define ENV_SCRIPT "PG_CLUSTER_TEST_SCRIPT"

static char cluster_dir[PATH_MAX];
static char script[PATH_MAX];

/* scripts/pg-test-cluster: $PG_TEST_CLUSTER (set by tests/meson.build), or
 * found from the build directory and this file's path relative to it. */
static bool find_script(void)
{
    const char *env = getenv("PG_TEST_CLUSTER");
    const char *tmp = getenv("TEST_TMPDIR");
    const char *at = strstr(__FILE__, "tests/store/");
    char derived[PATH_MAX] = "";
    const char *candidates[3] = {env, derived, "scripts/pg-test-cluster"};

    if (tmp != NULL && at != NULL)
        snprintf(derived, sizeof(derived), "%s/../%.*s/scripts/pg-test-cluster", tmp,
                 (int)(at - __FILE__), __FILE__);
    for (int i = 0; i < 3; i++) {
        if (candidates[i] != NULL && candidates[i][0] != '\0' &&
            access(candidates[i], X_OK) == 0 && realpath(candidates[i], script) != NULL)
            return true;
    }
    return false;
}

/* Run `pg-test-cluster CMD DIR`; its first output line into `out`. */
static int run_script(const char *s, const char *dir, const char *cmd, char *out, size_t outlen)
{
    char line[PATH_MAX * 2 + 32];
    FILE *p;

    snprintf(line, sizeof(line), "'%s' %s '%s'", s, cmd, dir);
    p = popen(line, "r");
    if (p == NULL)
        return -1;
    if (out != NULL && fgets(out, (int)outlen, p) != NULL)
        out[strcspn(out, "\n")] = '\0';
    return pclose(p) == 0 ? 0 : -1;
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    char url[512] = "";
    const char *bindir = getenv("PG_BINDIR");
    char initdb[PATH_MAX];

    (void)set;
    if (getenv("PG_TEST_URL") != NULL) {
        setenv(ENV_URL, getenv("PG_TEST_URL"), 1);
        return;
    }
    snprintf(initdb, sizeof(initdb), "%s/initdb",
             bindir != NULL ? bindir : "/usr/lib/postgresql/15/bin");
    if (access(initdb, X_OK) != 0) {
        fprintf(stderr, "store_pg: no PostgreSQL binaries (%s; install postgresql-15):"
                        " skipping every test\n", initdb);
        return;
    }
    if (!find_script()) {
        fprintf(stderr, "store_pg: scripts/pg-test-cluster not found (set PG_TEST_CLUSTER)\n");
        setenv(ENV_URL, "failed", 1);
        return;
    }
    snprintf(cluster_dir, sizeof(cluster_dir), "/tmp/todo-pgtest-XXXXXX");
    if (mkdtemp(cluster_dir) == NULL || run_script(script, cluster_dir, "start", url,
                                                   sizeof(url)) != 0) {
        fprintf(stderr, "store_pg: cannot start a cluster in %s\n", cluster_dir);
        setenv(ENV_URL, "failed", 1);
        return;
    }
    setenv(ENV_URL, url, 1);
    setenv(ENV_DIR, cluster_dir, 1);
    setenv(ENV_SCRIPT, script, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    if (cluster_dir[0] != '\0')
        run_script(script, cluster_dir, "stop", NULL, 0);
}

const char *pg_cluster_url(void)
{
    const char *url = getenv(ENV_URL);

    if (url == NULL)
        cr_skip_test("no PostgreSQL for this test (see the runner's message)");
    cr_assert_str_neq(url, "failed", "the test cluster did not start");
    return url;
}

bool pg_cluster_owned(void)
{
    return getenv(ENV_DIR) != NULL && getenv(ENV_SCRIPT) != NULL;
}

void pg_cluster_halt(void)
{
    cr_assert(pg_cluster_owned());
    cr_assert_eq(run_script(getenv(ENV_SCRIPT), getenv(ENV_DIR), "halt", NULL, 0), 0,
                 "pg-test-cluster halt");
}

void pg_cluster_start(void)
{
    char url[512];

    cr_assert(pg_cluster_owned());
    cr_assert_eq(run_script(getenv(ENV_SCRIPT), getenv(ENV_DIR), "start", url, sizeof(url)), 0,
                 "pg-test-cluster start");
    cr_assert_str_eq(url, getenv(ENV_URL), "restarted on another port");
}
