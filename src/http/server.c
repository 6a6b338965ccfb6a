#include "http/server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/api.h"
#include "auth/token_cache.h"
#include "http/reqctx.h"
#include "http/respond.h"
#include "model/timefmt.h"
#include "store/store.h"
#include "util/log.h"
#include "util/xalloc.h"

struct worker_thread {
    struct http_worker w; /* first: handlers reach it through the h2o context */
    pthread_t tid;
    int listen_fd;
    h2o_socket_t *listener;
    h2o_accept_ctx_t accept_ctx;
    h2o_globalconf_t *globalconf;
    h2o_multithread_queue_t *control_queue;
    h2o_multithread_receiver_t control_receiver;
    h2o_multithread_message_t stop_message;
    pthread_barrier_t *ready; /* all workers attached before `listening` is logged */
    bool stopping;
};

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    struct http_worker *w = http_worker_of(req);
    struct reqctx *rc = reqctx_new(req, w);
    if (w->closing) /* a keep-alive connection's request while the store detaches */
        respond_problem(rc, 503, NULL, "The server is shutting down.");
    else
        api_dispatch(rc);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct worker_thread *t = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < 16; i++) { /* bounded, so one busy listener cannot starve the loop */
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        h2o_accept(&t->accept_ctx, sock);
    }
}

static void stop_accepting(struct worker_thread *t)
{
    if (t->listener == NULL)
        return;
    h2o_socket_read_stop(t->listener);
    h2o_socket_close(t->listener); /* closes listen_fd */
    t->listener = NULL;
}

static void on_control(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct worker_thread *t = H2O_STRUCT_FROM_MEMBER(struct worker_thread, control_receiver,
                                                     receiver);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    t->stopping = true;
    stop_accepting(t);
    h2o_context_request_shutdown(&t->w.ctx);
}

static void worker_setup(struct worker_thread *t)
{
    t->w.loop = h2o_evloop_create();
    h2o_context_init(&t->w.ctx, t->w.loop, t->globalconf);
    t->accept_ctx.ctx = &t->w.ctx;
    t->accept_ctx.hosts = t->globalconf->hosts;
    h2o_linklist_init_anchor(&t->w.requests);
    t->w.store = store_worker_attach(t->w.app->store, t->w.loop);
    offload_client_open(&t->w.offload_client, t->w.loop);
    t->w.tokens = token_cache_new();
    t->control_queue = h2o_multithread_create_queue(t->w.loop);
    h2o_multithread_register_receiver(t->control_queue, &t->control_receiver, on_control);
    t->listener = h2o_evloop_socket_create(t->w.loop, t->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    t->listener->data = t;
    if (t->w.store != NULL)
        h2o_socket_read_start(t->listener, on_accept);
    else
        stop_accepting(t); /* http_server_run sees it, fails start-up and stops us */
}

/* The detach and the offload drain below run the loop: idle keep-alive
 * connections may still deliver requests then, so `closing` turns them away
 * before they reach the store, and every completion of a request the grace
 * period gave up on is cancelled first (none may run on a detached store). */
static void worker_teardown(struct worker_thread *t)
{
    t->w.closing = true;
    reqctx_cancel_all(&t->w);
    store_worker_detach(t->w.store);
    t->w.store = NULL;
    offload_client_close(&t->w.offload_client); /* waits for cancelled jobs */
    token_cache_free(t->w.tokens);
    h2o_multithread_unregister_receiver(t->control_queue, &t->control_receiver);
    h2o_multithread_destroy_queue(t->control_queue);
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR < 3
    free(t->control_queue); /* h2o before 2.3.0 does not free it */
#endif
}

/* h2o 2.2.5 keeps freed socket buffers in a thread-local cache; a thread
 * that ends must empty it or LeakSanitizer reports them. */
static void free_socket_buffer_cache(void)
{
    h2o_mem_recycle_t *r = &h2o_socket_buffer_prototype.allocator;
    while (r->cnt > 0)
        free(h2o_mem_alloc_recycle(r, 0));
}

static void *worker_main(void *arg)
{
    struct worker_thread *t = arg;
    worker_setup(t);
    pthread_barrier_wait(t->ready);

    int64_t deadline = 0;
    for (;;) {
        if (t->stopping) {
            int64_t now = timefmt_now_ms();
            if (deadline == 0)
                deadline = now + HTTP_SHUTDOWN_GRACE_MS;
            if (t->w.inflight == 0 || now >= deadline)
                break;
        }
        h2o_evloop_run(t->w.loop, t->stopping ? 50 : INT32_MAX); /* -1 on EINTR: keep going */
    }
    if (t->w.inflight > 0)
        log_kv(LOG_WARN, "shutdown grace period over; dropping requests", NULL);
    worker_teardown(t);
    free_socket_buffer_cache();
    return NULL;
}

/* ---- listening sockets ------------------------------------------------------ */

static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *sslen,
                   char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char port_s[8];
    snprintf(port_s, sizeof(port_s), "%d", port);
    int rc = getaddrinfo(host, port_s, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "HOST: cannot resolve \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

static int get_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* One SO_REUSEPORT listener; returns the fd or -1 with errno set. */
static int bind_listener(const struct sockaddr_storage *ss, socklen_t sslen, bool reuseport)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
    if (bind(fd, (const struct sockaddr *)ss, sslen) != 0 || listen(fd, SOMAXCONN) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Bind `n` listeners on one port. A plain bind first proves no other process
 * holds the port (with SO_REUSEPORT alone, a second instance would silently
 * share it and steal requests). */
static int bind_all(struct worker_thread *threads, unsigned n, const struct http_server_opts *o,
                    int *bound_port, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (resolve(o->host, o->port, &ss, &sslen, err, errlen) != 0)
        return -1;
    if (o->port != 0) {
        int probe = bind_listener(&ss, sslen, false);
        if (probe < 0)
            goto fail;
        close(probe);
    }
    for (unsigned i = 0; i < n; i++) {
        threads[i].listen_fd = bind_listener(&ss, sslen, true);
        if (threads[i].listen_fd < 0)
            goto fail;
        if (i == 0) {
            struct sockaddr_storage got;
            socklen_t gotlen = sizeof(got);
            getsockname(threads[0].listen_fd, (struct sockaddr *)&got, &gotlen);
            set_port(&ss, get_port(&got));
            *bound_port = get_port(&got);
        }
    }
    return 0;
fail:
    snprintf(err, errlen, "cannot listen on %s:%d: %s%s", o->host, o->port, strerror(errno),
             errno == EADDRINUSE ? " (is another todo server running? set PORT)" : "");
    for (unsigned i = 0; i < n; i++)
        if (threads[i].listen_fd >= 0)
            close(threads[i].listen_fd);
    return -1;
}

static void log_listening(const struct http_server_opts *o, int port)
{
    char addr[300], workers[16];
    bool v6 = strchr(o->host, ':') != NULL;
    snprintf(addr, sizeof(addr), v6 ? "[%s]:%d" : "%s:%d", o->host, port);
    snprintf(workers, sizeof(workers), "%u", o->workers);
    log_kv_always(LOG_INFO, "listening", "addr", addr, "database", o->database_label, "workers",
                  workers, NULL);
}

static void wait_for_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    log_kv_always(LOG_INFO, "shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
}

void http_server_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void init_globalconf(h2o_globalconf_t *gc)
{
    h2o_config_init(gc);
    gc->server_name = h2o_iovec_init(H2O_STRLIT("todo"));
    gc->max_request_entity_size = HTTP_MAX_ENTITY;
    /* HTTP/1.1 only: no cleartext HTTP/2 (Upgrade: h2c or prior knowledge).
     * An HTTP/2 stream reset would free a request under a pending store op. */
    gc->http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *host = h2o_config_register_host(gc, h2o_iovec_init(H2O_STRLIT("default")),
                                                    65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_req;
}

static struct worker_thread *volatile stopped_threads;

int http_server_run(const struct app *app, const struct http_server_opts *opts, char *err,
                    size_t errlen)
{
    unsigned n = opts->workers;
    struct worker_thread *threads = xcalloc(n, sizeof(*threads));
    for (unsigned i = 0; i < n; i++)
        threads[i].listen_fd = -1;
    int port = 0;
    if (bind_all(threads, n, opts, &port, err, errlen) != 0) {
        free(threads);
        return -1;
    }
    static h2o_globalconf_t globalconf;
    init_globalconf(&globalconf);
    http_server_block_signals();

    pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, n + 1);
    for (unsigned i = 0; i < n; i++) {
        struct worker_thread *t = &threads[i];
        t->w.app = app;
        t->w.id = i;
        t->w.offload = app->offload;
        t->globalconf = &globalconf;
        t->ready = &ready;
        h2o_multithread_create_thread(&t->tid, NULL, worker_main, t);
    }
    pthread_barrier_wait(&ready);
    bool attached = true;
    for (unsigned i = 0; i < n; i++)
        attached = attached && threads[i].w.store != NULL;
    if (attached) {
        log_listening(opts, port);
        wait_for_signal();
    } else {
        snprintf(err, errlen, "a worker could not open its database connection (see the log)");
    }
    for (unsigned i = 0; i < n; i++)
        h2o_multithread_send_message(&threads[i].control_receiver, &threads[i].stop_message);
    for (unsigned i = 0; i < n; i++)
        pthread_join(threads[i].tid, NULL);
    pthread_barrier_destroy(&ready);
    /* The loops and contexts are not disposed: idle keep-alive connections
     * still hang off them and the process is about to exit. Keeping them
     * reachable tells LeakSanitizer this is deliberate. */
    stopped_threads = threads;
    return attached ? 0 : -1;
}
