/*
 * http/server: the worker threads that serve HTTP/1.1.
 *
 * http_server_run() binds one SO_REUSEPORT listener per worker (refusing to
 * share the port with another running process), logs one `listening` line,
 * starts the workers (each: its own h2o evloop and context, its own store
 * worker and offload client) and blocks until SIGTERM or SIGINT. Then each
 * worker stops accepting, finishes its in-flight requests (until each response
 * is fully written, at most HTTP_SHUTDOWN_GRACE_MS), cancels what is left,
 * and detaches from the store (a request arriving on an open keep-alive
 * connection meanwhile gets 503); the call returns 0.
 * Start-up failures return -1 with a message in `err`.
 *
 * Main thread only; the app must stay alive and unchanged until it returns.
 */
#ifndef TODO_HTTP_SERVER_H
#define TODO_HTTP_SERVER_H

#include <stddef.h>

#include "http/app.h"

#define HTTP_SHUTDOWN_GRACE_MS 10000
#define HTTP_MAX_ENTITY (16 * 1024 * 1024) /* h2o itself refuses larger bodies */

struct http_server_opts {
    const char *host;
    int port; /* 0: pick a free port (logged) */
    unsigned workers;
    const char *database_label; /* password-free, for the start-up line */
};

/* Block SIGTERM/SIGINT (and ignore SIGPIPE) in the calling thread. Call it on
 * the main thread before any other thread starts (store writer, offload pool,
 * database boot): threads inherit the mask, so the signals reach only
 * http_server_run's sigwait and a second SIGTERM cannot kill the process
 * mid-drain. */
void http_server_block_signals(void);

int http_server_run(const struct app *app, const struct http_server_opts *opts, char *err,
                    size_t errlen);

#endif
