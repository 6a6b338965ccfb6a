#include "store/pg_resolve.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/xalloc.h"

/*
 * Shared between the loop and the helper thread. Both hold a reference;
 * whoever drops the last one frees it. The helper writes its results and
 * then, unless cancelled, signals `efd`, under `mutex`; the loop reads them
 * only after the signal, so the mutex orders the writes before the reads.
 */
struct pg_resolve {
    pthread_mutex_t mutex;
    int refs;        /* under mutex */
    bool cancelled;  /* under mutex */
    int efd;         /* eventfd, the helper's end; closed by the last owner */
    /* loop side */
    h2o_loop_t *loop;
    h2o_socket_t *sock; /* watches a dup() of efd */
    int sock_fd;
    pg_resolve_cb *cb;
    void *data;
    /* inputs (read by the helper) */
    char *hosts; /* libpq's host list */
    char *ports; /* libpq's port list, or NULL */
    /* results (written by the helper) */
    char *host, *hostaddr, *port;
    char error[256];
};

/* ---- host lists -------------------------------------------------------- */

static bool is_socket_dir(const char *h)
{
    return h[0] == '/' || h[0] == '@';
}

static bool is_ip_literal(const char *h)
{
    unsigned char addr[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, h, addr) == 1 || inet_pton(AF_INET6, h, addr) == 1;
}

/* Split a comma-separated list (as libpq does; empty entries stay). The
 * array and its strings are one allocation: free(list). */
static char **split(const char *s, size_t *n)
{
    size_t count = 1, len = strlen(s);
    char **list;
    char *copy;

    for (const char *p = s; *p != '\0'; p++)
        count += *p == ',';
    list = xmalloc(count * sizeof(*list) + len + 1);
    copy = (char *)(list + count);
    memcpy(copy, s, len + 1);
    *n = 0;
    for (char *p = copy;;) {
        list[(*n)++] = p;
        p = strchr(p, ',');
        if (p == NULL)
            break;
        *p++ = '\0';
    }
    return list;
}

/* The host, hostaddr and port options of a conninfo (copies; NULL when
 * unset or empty). -1 when libpq cannot parse it. */
static int conninfo_hosts(const char *conninfo, char **host, char **hostaddr, char **port)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);

    *host = *hostaddr = *port = NULL;
    if (opts == NULL)
        return -1;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        char **dst = strcmp(o->keyword, "host") == 0       ? host
                     : strcmp(o->keyword, "hostaddr") == 0 ? hostaddr
                     : strcmp(o->keyword, "port") == 0     ? port
                                                           : NULL;
        if (dst != NULL && o->val != NULL && o->val[0] != '\0')
            *dst = xstrdup(o->val);
    }
    PQconninfoFree(opts);
    return 0;
}

bool pg_resolve_needed(const char *conninfo)
{
    char *host, *hostaddr, *port;
    bool needed = false;

    if (conninfo_hosts(conninfo, &host, &hostaddr, &port) == 0 && host != NULL &&
        hostaddr == NULL) {
        size_t n;
        char **list = split(host, &n);
        for (size_t i = 0; i < n && !needed; i++)
            needed = list[i][0] != '\0' && !is_socket_dir(list[i]) && !is_ip_literal(list[i]);
        free(list);
    }
    free(host);
    free(hostaddr);
    free(port);
    return needed;
}

/* ---- the helper thread ------------------------------------------------- */

struct lists {
    struct buf host, hostaddr, port;
    size_t n;
};

static void add_entry(struct lists *l, const char *host, const char *addr, const char *port)
{
    if (l->n++ > 0) {
        buf_append_char(&l->host, ',');
        buf_append_char(&l->hostaddr, ',');
        buf_append_char(&l->port, ',');
    }
    buf_append_str(&l->host, host);
    buf_append_str(&l->hostaddr, addr);
    buf_append_str(&l->port, port);
}

/* The addresses of `name` as entries; 0, or an EAI_* code. */
static int resolve_name(struct lists *l, const char *name, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    char seen[PG_RESOLVE_MAX_ADDRS][INET6_ADDRSTRLEN];
    size_t nseen = 0;
    int rc = getaddrinfo(name, NULL, &hints, &res);

    if (rc != 0)
        return rc;
    for (struct addrinfo *ai = res; ai != NULL && nseen < PG_RESOLVE_MAX_ADDRS; ai = ai->ai_next) {
        char text[INET6_ADDRSTRLEN];
        const void *a = ai->ai_family == AF_INET
                            ? (const void *)&((const struct sockaddr_in *)ai->ai_addr)->sin_addr
                            : (const void *)&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        bool dup = false;
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            inet_ntop(ai->ai_family, a, text, sizeof(text)) == NULL)
            continue;
        for (size_t i = 0; i < nseen && !dup; i++)
            dup = strcmp(seen[i], text) == 0;
        if (dup)
            continue;
        snprintf(seen[nseen++], sizeof(seen[0]), "%s", text);
        add_entry(l, name, text, port);
    }
    freeaddrinfo(res);
    return nseen > 0 ? 0 : EAI_NONAME;
}

/* Fill r's results from r->hosts and r->ports. */
static void resolve_all(struct pg_resolve *r)
{
    size_t nhosts, nports = 0;
    char **hosts = split(r->hosts, &nhosts);
    char **ports = r->ports != NULL ? split(r->ports, &nports) : NULL;
    struct lists l = {.n = 0};

    buf_init(&l.host, SIZE_MAX);
    buf_init(&l.hostaddr, SIZE_MAX);
    buf_init(&l.port, SIZE_MAX);
    for (size_t i = 0; i < nhosts; i++) {
        const char *h = hosts[i];
        const char *port = nports > 1 && i < nports ? ports[i] : nports == 1 ? ports[0] : "";
        if (h[0] == '\0' || is_socket_dir(h)) {
            add_entry(&l, h, "", port);
        } else if (is_ip_literal(h)) {
            add_entry(&l, h, h, port);
        } else {
            int rc = resolve_name(&l, h, port);
            if (rc != 0 && r->error[0] == '\0')
                snprintf(r->error, sizeof(r->error), "cannot resolve host \"%s\": %s", h,
                         gai_strerror(rc));
        }
    }
    if (l.n > 0) {
        r->error[0] = '\0'; /* another host will do: libpq tries them in turn */
        r->host = buf_take(&l.host, NULL);
        r->hostaddr = buf_take(&l.hostaddr, NULL);
        r->port = nports > 1 ? buf_take(&l.port, NULL) : NULL;
    } else if (r->error[0] == '\0') {
        snprintf(r->error, sizeof(r->error), "no host to connect to");
    }
    buf_free(&l.host);
    buf_free(&l.hostaddr);
    buf_free(&l.port);
    free(hosts);
    free(ports);
}

static void destroy(struct pg_resolve *r)
{
    close(r->efd);
    pthread_mutex_destroy(&r->mutex);
    free(r->hosts);
    free(r->ports);
    free(r->host);
    free(r->hostaddr);
    free(r->port);
    free(r);
}

/* Drop one reference; the last one frees. */
static void unref(struct pg_resolve *r)
{
    bool last;

    pthread_mutex_lock(&r->mutex);
    last = --r->refs == 0;
    pthread_mutex_unlock(&r->mutex);
    if (last)
        destroy(r);
}

static void *helper(void *arg)
{
    struct pg_resolve *r = arg;
    uint64_t one = 1;
    bool last;

    resolve_all(r);
    pthread_mutex_lock(&r->mutex);
    if (!r->cancelled && write(r->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        log_kv(LOG_ERROR, "pg_resolve: cannot signal the loop", NULL);
    last = --r->refs == 0;
    pthread_mutex_unlock(&r->mutex);
    if (last)
        destroy(r);
    return NULL;
}

/* ---- the loop side ----------------------------------------------------- */

static void close_sock(struct pg_resolve *r)
{
    if (r->sock != NULL) {
        h2o_socket_close(r->sock); /* closes the dup */
        r->sock = NULL;
    }
}

static void on_signal(h2o_socket_t *sock, const char *err)
{
    struct pg_resolve *r = sock->data;
    uint64_t v;

    (void)err;
    if (read(r->sock_fd, &v, sizeof(v)) < 0) {
        /* EAGAIN only: the signal was consumed already. */
    }
    close_sock(r);
    /* Pairs with the helper's unlock: its results are visible from here. */
    pthread_mutex_lock(&r->mutex);
    pthread_mutex_unlock(&r->mutex);
    r->cb(r, r->data);
}

/* Start the helper thread, detached; dies on failure (like OOM). */
static void start_helper(struct pg_resolve *r)
{
    pthread_attr_t attr;
    pthread_t t;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, helper, r) != 0) {
        log_kv(LOG_ERROR, "pg_resolve: cannot start a thread", NULL);
        abort();
    }
    pthread_attr_destroy(&attr);
}

struct pg_resolve *pg_resolve_start(h2o_loop_t *loop, const char *conninfo, pg_resolve_cb *cb,
                                    void *data)
{
    struct pg_resolve *r = xcalloc(1, sizeof(*r));
    char *hostaddr = NULL;

    pthread_mutex_init(&r->mutex, NULL);
    r->refs = 2;
    r->loop = loop;
    r->cb = cb;
    r->data = data;
    if (conninfo_hosts(conninfo, &r->hosts, &hostaddr, &r->ports) != 0 || r->hosts == NULL)
        r->hosts = r->hosts != NULL ? r->hosts : xstrdup("");
    free(hostaddr);
    r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r->sock_fd = r->efd >= 0 ? fcntl(r->efd, F_DUPFD_CLOEXEC, 0) : -1;
    if (r->efd < 0 || r->sock_fd < 0) {
        log_kv(LOG_ERROR, "pg_resolve: out of file descriptors", NULL);
        abort();
    }
    r->sock = h2o_evloop_socket_create(loop, r->sock_fd, H2O_SOCKET_FLAG_DONT_READ);
    r->sock->data = r;
    h2o_socket_read_start(r->sock, on_signal);
    start_helper(r);
    return r;
}

void pg_resolve_free(struct pg_resolve *r)
{
    if (r == NULL)
        return;
    close_sock(r);
    pthread_mutex_lock(&r->mutex);
    r->cancelled = true;
    pthread_mutex_unlock(&r->mutex);
    unref(r);
}

const char *pg_resolve_error(const struct pg_resolve *r)
{
    return r->error[0] != '\0' ? r->error : NULL;
}

const char *pg_resolve_host(const struct pg_resolve *r)
{
    return r->host;
}

const char *pg_resolve_hostaddr(const struct pg_resolve *r)
{
    return r->hostaddr;
}

const char *pg_resolve_port(const struct pg_resolve *r)
{
    return r->port;
}
