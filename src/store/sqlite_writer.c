#include "store/sqlite_writer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_common.h"
#include "store/store.h"
#include "util/xalloc.h"

/* Transaction control statements, prepared once. */
enum {
    TX_BEGIN,
    TX_COMMIT,
    TX_ROLLBACK,
    TX_SAVEPOINT,
    TX_RELEASE,
    TX_ROLLBACK_TO,
    TX_COUNT,
};

static const char *const tx_sql[TX_COUNT] = {
    [TX_BEGIN] = "BEGIN IMMEDIATE",
    [TX_COMMIT] = "COMMIT",
    [TX_ROLLBACK] = "ROLLBACK",
    [TX_SAVEPOINT] = "SAVEPOINT job",
    [TX_RELEASE] = "RELEASE job",
    [TX_ROLLBACK_TO] = "ROLLBACK TO job",
};

struct sqlite_writer {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    h2o_linklist_t queue; /* of sqlite_job._queued, guarded by mutex */
    size_t queued;
    bool stop;
    uint64_t njobs, ngroups; /* guarded by mutex */
    pthread_t thread;
    /* Writer thread only (after start). */
    struct sqlite_wconn conn;
    sqlite3_stmt *tx[TX_COUNT];
};

/* Step a transaction statement; SQLITE_DONE or the error code. */
static int tx_step(struct sqlite_writer *w, int which)
{
    sqlite3_stmt *st = w->tx[which];
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    return rc;
}

/* Give every job of jobs[0..n) that still says OK the status `status`. */
static void fail_ok_jobs(struct sqlite_job **jobs, size_t n, int status, const char *why)
{
    for (size_t i = 0; i < n; i++) {
        if (jobs[i]->status == STORE_OK) {
            jobs[i]->status = status;
            snprintf(jobs[i]->message, sizeof(jobs[i]->message), "%s", why);
        }
    }
}

static int txn_status(int rc)
{
    return store__sqlite_status(rc) == STORE_UNAVAILABLE ? STORE_UNAVAILABLE : STORE_INTERNAL;
}

/* Run one job inside its savepoint. Returns 0 while the enclosing
 * transaction is intact, -1 when an error ended or broke it. */
static int run_job(struct sqlite_writer *w, struct sqlite_job *job)
{
    sqlite3 *db = w->conn.db;
    int rc = tx_step(w, TX_SAVEPOINT);

    job->message[0] = '\0';
    if (rc != SQLITE_DONE) {
        job->status = store__sqlite_fail(db, rc, job->message, sizeof(job->message));
        return sqlite3_get_autocommit(db) ? -1 : 0;
    }
    job->status = job->run(job, &w->conn);
    if (job->status == STORE_OK) {
        rc = tx_step(w, TX_RELEASE);
        if (rc == SQLITE_DONE)
            return 0;
        job->status = store__sqlite_fail(db, rc, job->message, sizeof(job->message));
    }
    /* Some errors (SQLITE_FULL, IOERR, ...) roll back the whole transaction
     * on their own: then nothing of the group so far is there to keep. */
    if (sqlite3_get_autocommit(db))
        return -1;
    if (tx_step(w, TX_ROLLBACK_TO) != SQLITE_DONE || tx_step(w, TX_RELEASE) != SQLITE_DONE)
        return -1;
    return 0;
}

/* Run jobs[0..n) in as few transactions as possible: normally one. */
static void run_group(struct sqlite_writer *w, struct sqlite_job **jobs, size_t n)
{
    sqlite3 *db = w->conn.db;
    char why[SQLITE_JOB_MSG];
    size_t i = 0;

    while (i < n) {
        size_t first = i;
        int rc = tx_step(w, TX_BEGIN);
        if (rc != SQLITE_DONE) {
            snprintf(why, sizeof(why), "begin: %s", sqlite3_errmsg(db));
            for (; i < n; i++)
                jobs[i]->status = STORE_OK; /* so that fail_ok_jobs marks it */
            fail_ok_jobs(jobs + first, n - first, txn_status(rc), why);
            return;
        }
        bool broken = false;
        while (i < n && !broken)
            broken = run_job(w, jobs[i++]) != 0;
        if (broken) {
            snprintf(why, sizeof(why), "transaction rolled back: %s", sqlite3_errmsg(db));
            if (!sqlite3_get_autocommit(db))
                tx_step(w, TX_ROLLBACK);
            fail_ok_jobs(jobs + first, i - first, STORE_INTERNAL, why);
            continue; /* the rest in a new transaction */
        }
        rc = tx_step(w, TX_COMMIT);
        if (rc != SQLITE_DONE) {
            snprintf(why, sizeof(why), "commit: %s", sqlite3_errmsg(db));
            if (!sqlite3_get_autocommit(db))
                tx_step(w, TX_ROLLBACK);
            fail_ok_jobs(jobs + first, i - first, txn_status(rc), why);
        }
    }
}

static void *writer_main(void *arg)
{
    struct sqlite_writer *w = arg;
    struct sqlite_job *jobs[SQLITE_WRITER_GROUP_MAX];

    pthread_mutex_lock(&w->mutex);
    for (;;) {
        while (h2o_linklist_is_empty(&w->queue) && !w->stop)
            pthread_cond_wait(&w->cond, &w->mutex);
        if (h2o_linklist_is_empty(&w->queue))
            break; /* stopping, and nothing left */
        size_t n = 0;
        while (n < SQLITE_WRITER_GROUP_MAX && !h2o_linklist_is_empty(&w->queue)) {
            struct sqlite_job *job =
                H2O_STRUCT_FROM_MEMBER(struct sqlite_job, _queued, w->queue.next);
            h2o_linklist_unlink(&job->_queued);
            jobs[n++] = job;
        }
        w->queued -= n;
        w->njobs += n;
        w->ngroups++;
        pthread_mutex_unlock(&w->mutex);

        run_group(w, jobs, n);
        /* After send_message the job belongs to its worker again: read the
         * receiver first and touch nothing afterwards. The sends happen under
         * the mutex so that sqlite_writer_quiesce() can wait them out. */
        pthread_mutex_lock(&w->mutex);
        for (size_t i = 0; i < n; i++) {
            h2o_multithread_receiver_t *r = jobs[i]->receiver;
            h2o_multithread_send_message(r, &jobs[i]->_msg);
        }
    }
    pthread_mutex_unlock(&w->mutex);
    return NULL;
}

void sqlite_writer_quiesce(struct sqlite_writer *w)
{
    pthread_mutex_lock(&w->mutex);
    pthread_mutex_unlock(&w->mutex);
}

static void close_conn(struct sqlite_writer *w)
{
    for (int i = 0; i < TX_COUNT; i++) {
        sqlite3_finalize(w->tx[i]);
        w->tx[i] = NULL;
    }
    store__sqlite_close(w->conn.db, w->conn.stmts, SQLITE_WRITER_NSTMTS);
    w->conn.db = NULL;
}

struct sqlite_writer *sqlite_writer_start(const char *path, char *err, size_t errlen)
{
    struct sqlite_writer *w = xcalloc(1, sizeof(*w));

    if (store__sqlite_open(path, STORE__SQLITE_WRITER, &w->conn.db, err, errlen) != STORE_OK)
        goto fail;
    for (int i = 0; i < TX_COUNT; i++) {
        if (store__sqlite_prepare(w->conn.db, &w->tx[i], tx_sql[i], err, errlen) == NULL)
            goto fail;
    }
    pthread_mutex_init(&w->mutex, NULL);
    pthread_cond_init(&w->cond, NULL);
    h2o_linklist_init_anchor(&w->queue);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        snprintf(err, errlen, "cannot start the SQLite writer thread");
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->mutex);
        goto fail;
    }
    return w;

fail:
    close_conn(w);
    free(w);
    return NULL;
}

void sqlite_writer_stop(struct sqlite_writer *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mutex);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mutex);
    pthread_join(w->thread, NULL);
    close_conn(w);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mutex);
    free(w);
}

int sqlite_writer_submit(struct sqlite_writer *w, struct sqlite_job *job)
{
    int rc = 0;

    pthread_mutex_lock(&w->mutex);
    if (w->stop || w->queued >= SQLITE_WRITER_QUEUE_MAX) {
        rc = STORE_UNAVAILABLE;
    } else {
        bool was_empty = h2o_linklist_is_empty(&w->queue);
        h2o_linklist_insert(&w->queue, &job->_queued);
        w->queued++;
        /* The writer only sleeps on an empty queue. */
        if (was_empty)
            pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->mutex);
    return rc;
}

bool sqlite_writer_cancel(struct sqlite_writer *w, struct sqlite_job *job)
{
    bool removed = false;

    pthread_mutex_lock(&w->mutex);
    if (h2o_linklist_is_linked(&job->_queued)) {
        h2o_linklist_unlink(&job->_queued);
        w->queued--;
        removed = true;
    }
    pthread_mutex_unlock(&w->mutex);
    return removed;
}

void sqlite_writer_stats(struct sqlite_writer *w, uint64_t *jobs, uint64_t *groups)
{
    pthread_mutex_lock(&w->mutex);
    *jobs = w->njobs;
    *groups = w->ngroups;
    pthread_mutex_unlock(&w->mutex);
}
