#include "store/pg_boot.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "migrate/migrate.h"
#include "store/pg_admin.h"
#include "store/pg_pool.h"
#include "util/log.h"
#include "util/xalloc.h"

enum outcome { PENDING, MIGRATED, UNREACHABLE, FAILED };

struct pg_boot {
    char *conninfo;
    pthread_t thread;
    pthread_mutex_t mutex; /* guards stop, first, first_err */
    pthread_cond_t cond;   /* stop was set, or first arrived */
    bool stop;
    enum outcome first;    /* of the first attempt */
    char first_err[512];
    atomic_bool done;
};

/* One attempt on a fresh admin connection: connect, migrate. */
static enum outcome attempt(const char *conninfo, char *err, size_t errlen)
{
    struct pg_admin *a = pg_admin_new(conninfo);
    struct migrate_db db;
    enum outcome o = MIGRATED;

    if (pg_admin_connect(a, err, errlen) != 0) {
        o = UNREACHABLE;
        goto out;
    }
    pg_admin_migrate_db(a, &db);
    if (migrate_up(&db, err, errlen) < 0)
        o = pg_admin_connected(a) ? FAILED : UNREACHABLE;
out:
    pg_admin_close(a);
    return o;
}

static void report_first(struct pg_boot *b, enum outcome o, const char *err)
{
    pthread_mutex_lock(&b->mutex);
    if (b->first == PENDING) {
        b->first = o;
        snprintf(b->first_err, sizeof(b->first_err), "%s", err);
        pthread_cond_broadcast(&b->cond);
    }
    pthread_mutex_unlock(&b->mutex);
}

static struct timespec deadline_in(uint64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Sleep `ms` unless stopped meanwhile; true when stopped. */
static bool nap(struct pg_boot *b, uint64_t ms)
{
    struct timespec until = deadline_in(ms);
    bool stop;

    pthread_mutex_lock(&b->mutex);
    while (!b->stop && pthread_cond_timedwait(&b->cond, &b->mutex, &until) != ETIMEDOUT)
        ;
    stop = b->stop;
    pthread_mutex_unlock(&b->mutex);
    return stop;
}

static void log_failure(enum outcome o, const char *err, char *last, size_t lastlen)
{
    if (strcmp(err, last) == 0)
        return; /* said already: no line every few seconds */
    snprintf(last, lastlen, "%s", err);
    if (o == UNREACHABLE)
        log_kv(LOG_WARN, "postgres: cannot reach the database; retrying", "error", err, NULL);
    else
        log_kv(LOG_ERROR, "postgres: cannot apply migrations; retrying", "error", err, NULL);
}

static void *run(void *arg)
{
    struct pg_boot *b = arg;
    char err[512], last[512] = "";
    unsigned failures = 0;
    uint64_t rng = (uint64_t)(uintptr_t)b ^ (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15ull;

    for (;;) {
        err[0] = '\0';
        enum outcome o = attempt(b->conninfo, err, sizeof(err));
        if (o == MIGRATED) {
            atomic_store(&b->done, true);
            if (failures > 0)
                log_kv(LOG_INFO, "postgres: database reachable; schema up to date", NULL);
            report_first(b, o, "");
            return NULL;
        }
        /* A first attempt that connected and failed stops the start-up:
         * pg_boot_start reports it, and there is no retrying to announce. */
        if (o != FAILED || failures > 0)
            log_failure(o, err, last, sizeof(last));
        report_first(b, o, err);
        if (nap(b, pg_pool_backoff_ms(++failures, &rng)))
            return NULL;
    }
}

struct pg_boot *pg_boot_start(const char *conninfo, unsigned wait_ms, char *err, size_t errlen)
{
    struct pg_boot *b = xcalloc(1, sizeof(*b));
    pthread_condattr_t ca;
    struct timespec until = deadline_in(wait_ms);
    enum outcome first;

    b->conninfo = xstrdup(conninfo);
    pthread_mutex_init(&b->mutex, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&b->done, false);
    if (pthread_create(&b->thread, NULL, run, b) != 0) {
        log_kv(LOG_ERROR, "pg_boot: cannot start a thread", NULL);
        abort();
    }
    pthread_mutex_lock(&b->mutex);
    while (b->first == PENDING && pthread_cond_timedwait(&b->cond, &b->mutex, &until) != ETIMEDOUT)
        ;
    first = b->first;
    if (first == FAILED)
        snprintf(err, errlen, "postgres: %s", b->first_err);
    pthread_mutex_unlock(&b->mutex);
    if (first == FAILED) {
        pg_boot_stop(b);
        return NULL;
    }
    if (first != MIGRATED)
        log_kv(LOG_WARN, "postgres: not ready yet; serving anyway (/readyz answers 503) and "
                         "applying migrations once the database answers", NULL);
    return b;
}

bool pg_boot_done(const struct pg_boot *b)
{
    return atomic_load(&b->done);
}

void pg_boot_stop(struct pg_boot *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->mutex);
    b->stop = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mutex);
    pthread_join(b->thread, NULL);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->mutex);
    free(b->conninfo);
    free(b);
}
