/*
 * store/pg_boot: the PostgreSQL backend's start-up migrations, which wait
 * for the database (internal to src/store/; names pg_boot_*).
 *
 * `todo serve` must start while PostgreSQL is unreachable (a Neon compute
 * waking from scale-to-zero takes seconds) and become ready by itself once
 * it answers. pg_boot_start() starts one thread that connects with its own
 * blocking admin connection (pg_admin.h), applies pending migrations, and
 * retries after a failure with capped exponential backoff and jitter
 * (pg_pool_backoff_ms: 100 ms doubling to 5 s, then a random 50-100 % of
 * it) until it succeeds or is stopped. Failures are
 * logged when their message changes, success after a failure once.
 *
 * pg_boot_start() waits up to `wait_ms` for the outcome of the first
 * attempt, so a reachable database is migrated before the server listens:
 *   - migrated: returns the handle, done;
 *   - cannot connect, or no outcome in time: returns the handle (and logs);
 *     the thread goes on retrying;
 *   - connected but a migration failed: returns NULL with the message (a
 *     broken migration or a checksum mismatch stops start-up, as it would
 *     with the database up).
 *
 * Threads: start and stop on one thread (the main thread); pg_boot_done()
 * from any thread. pg_boot_stop() interrupts the backoff at once; an
 * attempt in progress finishes first (a connect takes at most its
 * connect_timeout).
 */
#ifndef TODO_STORE_PG_BOOT_H
#define TODO_STORE_PG_BOOT_H

#include <stdbool.h>
#include <stddef.h>

struct pg_boot;

/* NULL with a message in err when the first attempt connected and failed. */
struct pg_boot *pg_boot_start(const char *conninfo, unsigned wait_ms, char *err, size_t errlen);
/* True once the migrations are applied. */
bool pg_boot_done(const struct pg_boot *b);
/* Stop the thread and free. NULL accepted. */
void pg_boot_stop(struct pg_boot *b);

#endif
