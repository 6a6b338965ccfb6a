/*
 * store/sqlite_writer: the SQLite backend's one writer thread (internal to
 * src/store/).
 *
 * One thread owns the write connection. Worker threads submit jobs; the
 * writer takes everything queued (at most SQLITE_WRITER_GROUP_MAX jobs, so a
 * group's latency stays bounded), runs BEGIN IMMEDIATE, each job inside its
 * own SAVEPOINT (a failing job is rolled back to its savepoint alone and the
 * others still commit), COMMIT once — one fsync for the whole group with
 * synchronous=FULL — and then posts every job back to its submitter with
 * h2o_multithread_send_message(job->receiver, ...). The submitter's receiver
 * callback runs on the submitter's loop thread (see sqlite_job_from_link).
 *
 * Ownership and threads
 *   - submit → the job belongs to the writer: it runs job->run() on its own
 *     thread, which reads the job's inputs and writes its outputs; the
 *     submitter touches neither until the job comes back.
 *   - The job comes back exactly once through its receiver; from then on the
 *     submitter owns it again (and frees it). The message hand-off (a mutex
 *     inside h2o) orders the writer's writes before the receiver's reads.
 *   - sqlite_writer_cancel() takes a job back if the writer has not taken it
 *     yet; otherwise the job still comes back through the receiver.
 *
 * Status: job->status is run()'s return (a STORE_* status, with job->message
 * for failures), except that a job whose transaction did not commit (BEGIN
 * or COMMIT failed, or an error rolled the whole transaction back) gets
 * STORE_UNAVAILABLE (busy) or STORE_INTERNAL: never STORE_OK for a write
 * that is not durable.
 */
#ifndef TODO_STORE_SQLITE_WRITER_H
#define TODO_STORE_SQLITE_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <sqlite3.h>

#define SQLITE_WRITER_GROUP_MAX 256   /* jobs per transaction */
#define SQLITE_WRITER_QUEUE_MAX 65536 /* queued jobs; beyond it submit says UNAVAILABLE */
#define SQLITE_WRITER_NSTMTS 16       /* statement slots run() may use */
#define SQLITE_JOB_MSG 256

struct sqlite_writer;
struct sqlite_job;

/* The write connection as run() sees it: `stmts` are slots for
 * store__sqlite_prepare (the caller numbers them; the writer finalizes them
 * at stop). */
struct sqlite_wconn {
    sqlite3 *db;
    sqlite3_stmt *stmts[SQLITE_WRITER_NSTMTS];
};

/* Runs on the writer thread inside the job's savepoint. Returns STORE_OK, or
 * a STORE_* status with a message in job->message (the savepoint is then
 * rolled back). */
typedef int sqlite_job_run_fn(struct sqlite_job *job, struct sqlite_wconn *c);

/* Embed in the submitter's operation; zero it before use. */
struct sqlite_job {
    sqlite_job_run_fn *run;
    h2o_multithread_receiver_t *receiver; /* where the job comes back */
    int status;                          /* set by the writer */
    char message[SQLITE_JOB_MSG];
    /* private to the writer */
    h2o_multithread_message_t _msg;
    h2o_linklist_t _queued;
};

/* Open the write connection to `path` (the database must exist) and start the
 * thread. NULL with a message on failure. Main thread. */
struct sqlite_writer *sqlite_writer_start(const char *path, char *err, size_t errlen);
/* Run what is still queued, stop the thread, close the connection. Every job
 * must have come back before the receivers go away. NULL accepted. */
void sqlite_writer_stop(struct sqlite_writer *w);

/* Queue `job` (run and receiver set). 0, or STORE_UNAVAILABLE when the queue
 * is full or the writer is stopping (the job is then not queued). Any thread. */
__attribute__((warn_unused_result)) int sqlite_writer_submit(struct sqlite_writer *w,
                                                             struct sqlite_job *job);
/* True when `job` was still queued and is now removed (it will never come
 * back: the caller frees it); false when the writer has it (it will come
 * back through its receiver). */
bool sqlite_writer_cancel(struct sqlite_writer *w, struct sqlite_job *job);

/* Wait until the writer is not inside h2o_multithread_send_message(): that
 * call still reads the receiver's queue after the message is visible to the
 * worker. A worker that has got all its jobs back calls this before it
 * destroys its queue. Any thread. */
void sqlite_writer_quiesce(struct sqlite_writer *w);

/* Jobs and groups (transactions) run so far. Any thread. */
void sqlite_writer_stats(struct sqlite_writer *w, uint64_t *jobs, uint64_t *groups);

/* The job a receiver callback got in its `messages` list. */
static inline struct sqlite_job *sqlite_job_from_link(h2o_linklist_t *link)
{
    return H2O_STRUCT_FROM_MEMBER(struct sqlite_job, _msg.link, link);
}

#endif
