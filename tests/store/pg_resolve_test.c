/*
 * store/pg_resolve and the pool's use of it: host names are looked up on a
 * helper thread, never on the loop's, and libpq then connects to the
 * address while keeping the name (for TLS).
 *
 * getaddrinfo() is interposed for this test binary: the definition below
 * wins over libc's for libpq too (the executable exports it), records which
 * thread asked for a lookup, and can add a delay, which must not stall the
 * loop. Calls with AI_NUMERICHOST (libpq converting a hostaddr) do no DNS
 * and are not counted.
 */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pg_cluster.h"
#include "store/pg_pool.h"
#include "store/pg_resolve.h"

#define DEADLINE_MS 15000

static pthread_t loop_thread;
static atomic_bool tracking;
static atomic_int calls_on_loop, calls_elsewhere;
static atomic_int delay_ms;

typedef int getaddrinfo_fn(const char *, const char *, const struct addrinfo *,
                           struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static getaddrinfo_fn *real;

    if (real == NULL)
        real = (getaddrinfo_fn *)dlsym(RTLD_NEXT, "getaddrinfo");
    if (atomic_load(&tracking) && !(hints != NULL && (hints->ai_flags & AI_NUMERICHOST))) {
        if (pthread_equal(pthread_self(), loop_thread))
            atomic_fetch_add(&calls_on_loop, 1);
        else
            atomic_fetch_add(&calls_elsewhere, 1);
        if (atomic_load(&delay_ms) > 0)
            usleep((useconds_t)atomic_load(&delay_ms) * 1000);
    }
    return real(node, service, hints, res);
}

static h2o_loop_t *loop;
static struct pg_pool *pool;

static void setup(void)
{
    loop = h2o_evloop_create();
    pool = NULL;
    loop_thread = pthread_self();
}

static h2o_timeout_t tick_timeout;
static h2o_timeout_entry_t tick_entry;
static bool ticking;

static void teardown(void)
{
    atomic_store(&tracking, false);
    if (ticking) {
        h2o_timeout_unlink(&tick_entry);
        h2o_timeout_dispose(loop, &tick_timeout);
    }
    pg_pool_free(pool);
    h2o_evloop_run(loop, 0);
    h2o_evloop_destroy(loop);
}

TestSuite(pg_resolve, .init = setup, .fini = teardown, .timeout = 60);

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The cluster's URL with `host` instead of 127.0.0.1. */
static void url_with_host(const char *host, char *out, size_t len)
{
    const char *url = pg_cluster_url();
    const char *at = strstr(url, "@127.0.0.1:");

    cr_assert_not_null(at, "unexpected cluster URL %s", url);
    snprintf(out, len, "%.*s@%s%s", (int)(at - url), url, host, at + strlen("@127.0.0.1"));
}

/* A timer that counts loop iterations with a 10 ms period. */
static int ticks;

static void on_tick(h2o_timeout_entry_t *e)
{
    ticks++;
    h2o_timeout_link(loop, &tick_timeout, e);
}

Test(pg_resolve, host_names_are_looked_up_off_the_loop)
{
    char url[512];
    struct pg_conn *c = NULL;

    url_with_host("localhost", url, sizeof(url));
    struct pg_pool_options o = {.conninfo = url, .prepared = true, .nreaders = 1, .nwriters = 2,
                                .timeout_ms = 10000};
    h2o_timeout_init(loop, &tick_timeout, 10);
    tick_entry.cb = on_tick;
    h2o_timeout_link(loop, &tick_timeout, &tick_entry);
    ticking = true;
    atomic_store(&delay_ms, 400);
    atomic_store(&tracking, true);
    int64_t started = mono_ms();
    pool = pg_pool_new(loop, &o);
    cr_assert_lt(mono_ms() - started, 100, "pg_pool_new blocked on the lookup");
    /* While the lookup sleeps 400 ms on its thread, the loop keeps going. */
    while (mono_ms() - started < 300)
        h2o_evloop_run(loop, 10);
    cr_assert_geq(ticks, 10, "the loop stalled: %d ticks in 300 ms", ticks);
    int64_t end = mono_ms() + DEADLINE_MS;
    while ((c = pg_pool_reader(pool)) == NULL) {
        cr_assert_lt(mono_ms(), end, "never connected: %s", pg_pool_error(pool));
        h2o_evloop_run(loop, 10);
    }
    cr_assert_eq(atomic_load(&calls_on_loop), 0, "getaddrinfo ran on the loop thread");
    cr_assert_geq(atomic_load(&calls_elsewhere), 1, "no lookup happened at all");
    /* libpq kept the name and connected to the address. */
    cr_assert_str_eq(PQhost(pg_conn_pgconn(c)), "localhost");
    cr_assert_str_eq(PQhostaddr(pg_conn_pgconn(c)), "127.0.0.1");
}

Test(pg_resolve, an_unknown_host_leaves_the_pool_down_with_a_message)
{
    char url[512];
    struct pg_pool_options o = {.conninfo = NULL, .prepared = true, .nreaders = 1, .nwriters = 1,
                                .timeout_ms = 10000};

    url_with_host("no-such-host.invalid", url, sizeof(url));
    o.conninfo = url;
    atomic_store(&tracking, true);
    pool = pg_pool_new(loop, &o);
    int64_t end = mono_ms() + DEADLINE_MS;
    while (strstr(pg_pool_error(pool), "cannot resolve") == NULL) {
        cr_assert_lt(mono_ms(), end, "error: \"%s\"", pg_pool_error(pool));
        h2o_evloop_run(loop, 10);
    }
    cr_assert(strstr(pg_pool_error(pool), "no-such-host.invalid"), "%s", pg_pool_error(pool));
    cr_assert(!pg_pool_up(pool));
    cr_assert_eq(atomic_load(&calls_on_loop), 0, "getaddrinfo ran on the loop thread");
}

Test(pg_resolve, which_conninfos_need_a_lookup)
{
    static const struct {
        const char *conninfo;
        bool needed;
    } cases[] = {
        {"postgresql://u@db.example.com/todo", true},
        {"postgresql://u@localhost:5432/todo", true},
        {"postgresql://u@127.0.0.1:5432/todo", false},
        {"postgresql://u@[::1]:5432/todo", false},
        {"postgresql:///todo?host=/var/run/postgresql", false},
        {"postgresql:///todo", false},
        {"postgresql://u@db.example.com/todo?hostaddr=10.0.0.1", false},
        {"host=127.0.0.1,db.example.com dbname=todo", true},
        {"host=/tmp,10.0.0.2 dbname=todo", false},
        {"postgresql://[::1/todo", false}, /* unparsable: libpq reports it */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_eq(pg_resolve_needed(cases[i].conninfo), cases[i].needed, "%s",
                     cases[i].conninfo);
}

struct result {
    int calls;
    char error[256], host[256], hostaddr[256], port[256];
};

static void on_resolved(struct pg_resolve *r, void *data)
{
    struct result *res = data;
    const char *v;

    res->calls++;
    snprintf(res->error, sizeof(res->error), "%s", (v = pg_resolve_error(r)) ? v : "");
    snprintf(res->host, sizeof(res->host), "%s", (v = pg_resolve_host(r)) ? v : "(null)");
    snprintf(res->hostaddr, sizeof(res->hostaddr), "%s",
             (v = pg_resolve_hostaddr(r)) ? v : "(null)");
    snprintf(res->port, sizeof(res->port), "%s", (v = pg_resolve_port(r)) ? v : "(null)");
}

static void resolve_wait(const char *conninfo, struct result *res)
{
    struct pg_resolve *r = pg_resolve_start(loop, conninfo, on_resolved, res);
    int64_t end = mono_ms() + DEADLINE_MS;

    cr_assert_eq(res->calls, 0, "called inside start");
    while (res->calls == 0) {
        cr_assert_lt(mono_ms(), end, "never answered");
        h2o_evloop_run(loop, 10);
    }
    pg_resolve_free(r);
    cr_assert_eq(res->calls, 1);
}

Test(pg_resolve, lists_keep_every_entry_aligned)
{
    struct result a = {0}, b = {0}, c = {0};

    resolve_wait("postgresql://u@localhost:5433,127.0.0.1:5434,[::1]:5435/todo", &a);
    cr_assert_str_eq(a.error, "");
    cr_assert_str_eq(a.host, "localhost,127.0.0.1,::1");
    cr_assert_str_eq(a.hostaddr, "127.0.0.1,127.0.0.1,::1");
    cr_assert_str_eq(a.port, "5433,5434,5435", "one port per entry");
    /* One port applies to all: no port list. A socket directory stays. */
    resolve_wait("host=localhost,/tmp port=5432 dbname=todo", &b);
    cr_assert_str_eq(b.host, "localhost,/tmp");
    cr_assert_str_eq(b.hostaddr, "127.0.0.1,");
    cr_assert_str_eq(b.port, "(null)");
    /* A name that does not resolve, beside one that does: the other serves. */
    resolve_wait("host=no-such-host.invalid,localhost dbname=todo", &c);
    cr_assert_str_eq(c.error, "");
    cr_assert_str_eq(c.host, "localhost");
}

Test(pg_resolve, a_failed_lookup_says_which_host)
{
    struct result a = {0};

    resolve_wait("postgresql://u@no-such-host.invalid/todo", &a);
    cr_assert(strstr(a.error, "cannot resolve host \"no-such-host.invalid\""), "%s", a.error);
    cr_assert_str_eq(a.host, "(null)");
}

Test(pg_resolve, a_cancelled_lookup_never_calls_back)
{
    struct result a = {0};

    atomic_store(&delay_ms, 200);
    atomic_store(&tracking, true);
    struct pg_resolve *r = pg_resolve_start(loop, "postgresql://u@localhost/todo", on_resolved, &a);
    pg_resolve_free(r);
    int64_t end = mono_ms() + 500;
    while (mono_ms() < end)
        h2o_evloop_run(loop, 10);
    cr_assert_eq(a.calls, 0);
    cr_assert_eq(atomic_load(&calls_elsewhere), 1, "the helper did run");
}
