/*
 * store/pg_resolve: the host names of a libpq conninfo, resolved on a
 * helper thread (internal to src/store/; names pg_resolve_*).
 *
 * libpq resolves host names with a blocking getaddrinfo() inside
 * PQconnectStartParams/PQconnectPoll, which would stall a worker's event
 * loop (every request of that worker) for as long as DNS takes. The pool
 * resolves first, here, and then connects with both lists:
 *   host=<name,...>  hostaddr=<address,...>  [port=<port,...>]
 * libpq connects to `hostaddr` without any lookup and still uses `host` for
 * TLS (SNI, and the name sslmode=verify-full checks) and for the password
 * file. A name with several addresses becomes several entries (the name
 * repeated), which libpq tries in turn; at most PG_RESOLVE_MAX_ADDRS each.
 * Entries that are Unix-socket directories or IP literals stay as they are
 * (their hostaddr entry is empty or the literal). When the conninfo already
 * has a hostaddr, or names no host (the default Unix socket), nothing needs
 * resolving.
 *
 * Threads: pg_resolve_start/free and the callback on the loop's thread; the
 * lookup on a detached helper thread, which hands its result back through
 * an eventfd watched by the loop. pg_resolve_free before the callback ran
 * cancels it: the callback never runs, and the helper frees the shared
 * state when its lookup returns.
 */
#ifndef TODO_STORE_PG_RESOLVE_H
#define TODO_STORE_PG_RESOLVE_H

#include <stdbool.h>

#include <h2o.h>

#define PG_RESOLVE_MAX_ADDRS 8

struct pg_resolve;

/* Runs once, on the loop, when the lookup finished (successfully or not). */
typedef void pg_resolve_cb(struct pg_resolve *r, void *data);

/* True when `conninfo` (URI or key=value) names a host that needs a lookup
 * and gives no hostaddr. Any thread; never blocks. */
bool pg_resolve_needed(const char *conninfo);

/* Start looking up the host names of `conninfo`. Never NULL. */
struct pg_resolve *pg_resolve_start(h2o_loop_t *loop, const char *conninfo, pg_resolve_cb *cb,
                                    void *data);
/* Cancel (before the callback) or release (after it). NULL accepted. */
void pg_resolve_free(struct pg_resolve *r);

/* After the callback: the lists for pg_conn (NULL error on success). `port`
 * is NULL when the conninfo's single port (or none) applies to all. */
const char *pg_resolve_error(const struct pg_resolve *r);
const char *pg_resolve_host(const struct pg_resolve *r);
const char *pg_resolve_hostaddr(const struct pg_resolve *r);
const char *pg_resolve_port(const struct pg_resolve *r);

#endif
