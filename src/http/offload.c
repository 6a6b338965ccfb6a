#include "http/offload.h"

#include <pthread.h>
#include <stdlib.h>

#include "util/xalloc.h"

struct offload {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    h2o_linklist_t queue; /* of offload_job._msg.link */
    bool stopping;
    unsigned nthreads;
    pthread_t *threads;
};

static void *offload_thread(void *arg)
{
    struct offload *o = arg;
    pthread_mutex_lock(&o->mutex);
    for (;;) {
        while (h2o_linklist_is_empty(&o->queue) && !o->stopping)
            pthread_cond_wait(&o->cond, &o->mutex);
        if (h2o_linklist_is_empty(&o->queue))
            break;
        struct offload_job *job =
            H2O_STRUCT_FROM_MEMBER(struct offload_job, _msg.link, o->queue.next);
        h2o_linklist_unlink(&job->_msg.link);
        bool cancelled = job->_cancelled;
        struct offload_client *c = job->_client;
        pthread_mutex_unlock(&o->mutex);
        if (!cancelled)
            job->work(job);
        /* The job may be freed as soon as it is posted, and the client
         * closed once it has it back: send_message still writes to the
         * client's queue after handing the message over, so the client
         * waits for _posting to drop (offload_client_close). */
        atomic_fetch_add(&c->_posting, 1);
        h2o_multithread_send_message(&c->_receiver, &job->_msg);
        atomic_fetch_sub(&c->_posting, 1);
        pthread_mutex_lock(&o->mutex);
    }
    pthread_mutex_unlock(&o->mutex);
    return NULL;
}

struct offload *offload_start(unsigned nthreads)
{
    struct offload *o = xcalloc(1, sizeof(*o));
    pthread_mutex_init(&o->mutex, NULL);
    pthread_cond_init(&o->cond, NULL);
    h2o_linklist_init_anchor(&o->queue);
    o->nthreads = nthreads;
    o->threads = xcalloc(nthreads, sizeof(*o->threads));
    for (unsigned i = 0; i < nthreads; i++)
        h2o_multithread_create_thread(&o->threads[i], NULL, offload_thread, o);
    return o;
}

void offload_stop(struct offload *o)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->mutex);
    o->stopping = true;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->mutex);
    for (unsigned i = 0; i < o->nthreads; i++)
        pthread_join(o->threads[i], NULL);
    pthread_cond_destroy(&o->cond);
    pthread_mutex_destroy(&o->mutex);
    free(o->threads);
    free(o);
}

static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct offload_client *c = H2O_STRUCT_FROM_MEMBER(struct offload_client, _receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        struct offload_job *job =
            H2O_STRUCT_FROM_MEMBER(struct offload_job, _msg.link, messages->next);
        h2o_linklist_unlink(&job->_msg.link);
        c->pending--;
        job->done(job, job->_cancelled);
    }
}

void offload_client_open(struct offload_client *c, h2o_loop_t *loop)
{
    c->_loop = loop;
    c->_queue = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(c->_queue, &c->_receiver, on_messages);
    atomic_init(&c->_posting, 0);
    c->pending = 0;
}

void offload_client_close(struct offload_client *c)
{
    while (c->pending > 0 || atomic_load(&c->_posting) > 0)
        h2o_evloop_run(c->_loop, 10);
    h2o_multithread_unregister_receiver(c->_queue, &c->_receiver);
    h2o_multithread_destroy_queue(c->_queue);
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR < 3
    free(c->_queue); /* h2o before 2.3.0 does not free it (upstream commit 6b0a76e) */
#endif
    c->_queue = NULL;
}

void offload_submit(struct offload *o, struct offload_client *c, struct offload_job *job)
{
    job->_pool = o;
    job->_client = c;
    job->_cancelled = false;
    job->_msg.link.next = job->_msg.link.prev = NULL;
    c->pending++;
    pthread_mutex_lock(&o->mutex);
    h2o_linklist_insert(&o->queue, &job->_msg.link);
    pthread_cond_signal(&o->cond);
    pthread_mutex_unlock(&o->mutex);
}

void offload_cancel(struct offload_job *job)
{
    pthread_mutex_lock(&job->_pool->mutex);
    job->_cancelled = true;
    pthread_mutex_unlock(&job->_pool->mutex);
}
