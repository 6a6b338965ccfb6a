/*
 * store/pg_admin: the PostgreSQL backend's blocking admin connection
 * (internal to src/store/; names pg_admin_*): migrations and schema checks,
 * on the main thread or the CLI, never on a worker's loop.
 *
 * Migrations run each in a transaction that first takes a transaction-level
 * advisory lock (pg_advisory_xact_lock), so two servers starting together
 * apply each migration once; no session state is left behind, so this works
 * through PgBouncer in transaction mode too.
 *
 * Connecting is lazy: pg_admin_new() only copies the conninfo; the first
 * call that needs the server connects (blocking, at most connect_timeout
 * seconds: the URL's, else PG_ADMIN_CONNECT_TIMEOUT), so a database that
 * is down makes calls fail, never the creation.
 *
 * schema_version calls are serialised by a mutex (it may be asked from any
 * thread); the runner's callbacks belong to one thread at a time. A
 * connection found broken outside a transaction is reset once before giving
 * up. Errors: -1 / STORE_* with libpq's message, which never holds a
 * password.
 */
#ifndef TODO_STORE_PG_ADMIN_H
#define TODO_STORE_PG_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pg_admin;
struct migrate_db;

#define PG_ADMIN_CONNECT_TIMEOUT "10" /* seconds, when the URL sets none */

/* Never connects, never fails. */
struct pg_admin *pg_admin_new(const char *conninfo);
void pg_admin_close(struct pg_admin *a); /* NULL accepted */
/* Connect now unless connected (blocking). 0, or -1 with libpq's message. */
__attribute__((warn_unused_result)) int pg_admin_connect(struct pg_admin *a, char *err,
                                                         size_t errlen);
/* True when the connection is up (as of the last call). */
bool pg_admin_connected(const struct pg_admin *a);

/* The migration runner's callbacks on this connection. */
void pg_admin_migrate_db(struct pg_admin *a, struct migrate_db *out);
/* Highest applied migration (0 when schema_migrations does not exist):
 * STORE_OK, or STORE_UNAVAILABLE / STORE_INTERNAL with a message. */
int pg_admin_schema_version(struct pg_admin *a, int64_t *version, char *msg, size_t msglen);

#endif
