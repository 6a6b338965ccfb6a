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
 * Calls are serialised by a mutex (schema_version may be asked from any
 * thread). A connection found broken is reset once before giving up.
 * Errors: -1 / STORE_* with libpq's message, which never holds a password.
 */
#ifndef TODO_STORE_PG_ADMIN_H
#define TODO_STORE_PG_ADMIN_H

#include <stddef.h>
#include <stdint.h>

struct pg_admin;
struct migrate_db;

/* Connect (blocking). NULL with a message in err. */
struct pg_admin *pg_admin_open(const char *conninfo, char *err, size_t errlen);
void pg_admin_close(struct pg_admin *a); /* NULL accepted */

/* The migration runner's callbacks on this connection. */
void pg_admin_migrate_db(struct pg_admin *a, struct migrate_db *out);
/* Highest applied migration (0 when schema_migrations does not exist):
 * STORE_OK, or STORE_UNAVAILABLE / STORE_INTERNAL with a message. */
int pg_admin_schema_version(struct pg_admin *a, int64_t *version, char *msg, size_t msglen);

#endif
