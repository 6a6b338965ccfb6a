#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "http/offload.h"

/* One job: `work` optionally waits until the test opens the gate, so the
 * test controls which jobs a pool thread holds. */
struct test_job {
    struct offload_job job; /* first */
    bool block;
    atomic_bool *ran;     /* set by work */
    int *done_calls;      /* incremented by done */
    int *done_cancelled;  /* incremented by done when cancelled */
};

static pthread_mutex_t gate_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_int blocked; /* jobs waiting at the gate */

static void gate_reset(void)
{
    gate_open = false;
    atomic_store(&blocked, 0);
}

static void gate_release(void)
{
    pthread_mutex_lock(&gate_mutex);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_mutex);
}

static void test_work(struct offload_job *job)
{
    struct test_job *j = (struct test_job *)job;
    atomic_store(j->ran, true);
    if (!j->block)
        return;
    atomic_fetch_add(&blocked, 1);
    pthread_mutex_lock(&gate_mutex);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_mutex);
    pthread_mutex_unlock(&gate_mutex);
}

static void test_done(struct offload_job *job, bool cancelled)
{
    struct test_job *j = (struct test_job *)job;
    (*j->done_calls)++;
    if (cancelled)
        (*j->done_cancelled)++;
    free(j);
}

static struct test_job *job_new(bool block, atomic_bool *ran, int *calls, int *cancelled)
{
    struct test_job *j = calloc(1, sizeof(*j));
    cr_assert_not_null(j);
    j->job.work = test_work;
    j->job.done = test_done;
    j->block = block;
    j->ran = ran;
    j->done_calls = calls;
    j->done_cancelled = cancelled;
    return j;
}

static void wait_blocked(int n)
{
    for (int i = 0; i < 5000 && atomic_load(&blocked) < n; i++)
        usleep(1000);
    cr_assert_eq(atomic_load(&blocked), n, "the pool threads did not take the blocking jobs");
}

/* Closing a client with jobs still out must wait for every one of them
 * (cancelled or not) to come back through its loop, and then close cleanly. */
Test(offload, close_waits_for_jobs_in_flight, .timeout = 30)
{
    enum { N = 8 };
    gate_reset();
    struct offload *o = offload_start(2);
    h2o_evloop_t *loop = h2o_evloop_create();
    struct offload_client c;
    offload_client_open(&c, loop);

    atomic_bool ran[N];
    int calls = 0, cancelled = 0;
    struct test_job *jobs[N];
    for (int i = 0; i < N; i++) {
        atomic_init(&ran[i], false);
        jobs[i] = job_new(i < 2, &ran[i], &calls, &cancelled);
        offload_submit(o, &c, &jobs[i]->job);
    }
    wait_blocked(2); /* both threads busy with jobs 0 and 1 */
    for (int i = 0; i < N; i += 2)
        offload_cancel(&jobs[i]->job); /* jobs may be freed from here on */
    gate_release();
    offload_client_close(&c);

    cr_assert_eq(calls, N, "close returned with %d of %d jobs back", calls, N);
    cr_assert_eq(cancelled, N / 2);
    cr_assert_eq(c.pending, 0);
    offload_stop(o);
    h2o_evloop_destroy(loop);
}

/* A job cancelled before a pool thread takes it is not run, and still comes
 * back once, as cancelled. */
Test(offload, cancelled_queued_job_does_not_run, .timeout = 30)
{
    gate_reset();
    struct offload *o = offload_start(1);
    h2o_evloop_t *loop = h2o_evloop_create();
    struct offload_client c;
    offload_client_open(&c, loop);

    atomic_bool ran_blocker, ran_victim;
    atomic_init(&ran_blocker, false);
    atomic_init(&ran_victim, false);
    int calls = 0, cancelled = 0;
    offload_submit(o, &c, &job_new(true, &ran_blocker, &calls, &cancelled)->job);
    wait_blocked(1);
    struct test_job *victim = job_new(false, &ran_victim, &calls, &cancelled);
    offload_submit(o, &c, &victim->job);
    offload_cancel(&victim->job);
    gate_release();
    offload_client_close(&c);

    cr_assert_eq(calls, 2);
    cr_assert_eq(cancelled, 1);
    cr_assert(atomic_load(&ran_blocker));
    cr_assert(!atomic_load(&ran_victim), "a job cancelled while queued still ran its work");
    offload_stop(o);
    h2o_evloop_destroy(loop);
}
