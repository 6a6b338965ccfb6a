/*
 * http/offload: a small thread pool for slow CPU work (Argon2id password
 * hashing, ~50 ms each) so that event-loop threads never block on it.
 *
 * A worker thread submits a job it allocated (embed `struct offload_job` as
 * the first member of your own struct). `work` runs on a pool thread and must
 * touch only the job's own memory. Then `done` runs on the submitting
 * worker's loop thread, exactly once, never inside offload_submit(); `done`
 * owns the job and frees it. offload_cancel() (worker thread) marks the job:
 * `done` then sees `cancelled` (the request it served is gone, so `done` must
 * just free the job), and a job no pool thread has taken yet is not run.
 *
 * Each worker thread owns one `struct offload_client` (its receiver on its
 * loop). offload_client_close() runs that loop until every submitted job has
 * come back (cancel them first to make that quick) and no pool thread is
 * still inside h2o_multithread_send_message() for it, then closes.
 */
#ifndef TODO_HTTP_OFFLOAD_H
#define TODO_HTTP_OFFLOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>

struct offload;
struct offload_job;

typedef void offload_work_fn(struct offload_job *job);
typedef void offload_done_fn(struct offload_job *job, bool cancelled);

struct offload_job {
    offload_work_fn *work;
    offload_done_fn *done;
    h2o_multithread_message_t _msg;
    struct offload *_pool;
    struct offload_client *_client;
    bool _cancelled; /* guarded by the pool's mutex until the job comes back */
};

struct offload_client {
    h2o_loop_t *_loop;
    h2o_multithread_queue_t *_queue;
    h2o_multithread_receiver_t _receiver;
    atomic_uint _posting; /* pool threads inside send_message for this client */
    size_t pending;       /* submitted, `done` not yet run */
};

struct offload *offload_start(unsigned nthreads);
/* Stop and join the threads; every client must have closed. NULL accepted. */
void offload_stop(struct offload *o);

void offload_client_open(struct offload_client *c, h2o_loop_t *loop);
/* Drain (see above) and close; outside any callback of the client's loop. */
void offload_client_close(struct offload_client *c);

void offload_submit(struct offload *o, struct offload_client *c, struct offload_job *job);
void offload_cancel(struct offload_job *job);

#endif
