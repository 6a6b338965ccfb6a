/*
 * http/server: the worker threads that serve HTTP/1.1.
 *
 * http_server_run() binds one SO_REUSEPORT listener per worker (refusing to
 * share the port with another running process), logs one `listening` line,
 * starts the workers (each: its own h2o evloop and context, its own store
 * worker and offload client) and blocks until SIGTERM or SIGINT. Then each
 * worker stops accepting, finishes its in-flight requests (at most
 * HTTP_SHUTDOWN_GRACE_MS) and detaches from the store; the call returns 0.
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

int http_server_run(const struct app *app, const struct http_server_opts *opts, char *err,
                    size_t errlen);

#endif
