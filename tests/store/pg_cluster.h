/*
 * tests/store/pg_cluster: the throwaway PostgreSQL cluster of the store_pg
 * suite.
 *
 * The runner process starts it with scripts/pg-test-cluster in
 * ReportHook(PRE_ALL) and removes it in POST_ALL; test processes (forked
 * after PRE_ALL) find its URL and directory in the environment. PG_TEST_URL,
 * when set, names an existing server instead (then the tests that stop and
 * start the server skip themselves). Without the PostgreSQL binaries every
 * test skips itself with a message.
 */
#ifndef TODO_TESTS_STORE_PG_CLUSTER_H
#define TODO_TESTS_STORE_PG_CLUSTER_H

#include <stdbool.h>

/* The database URL; skips the calling test when there is no server. */
const char *pg_cluster_url(void);
/* True when this run owns the cluster (so it may stop and start it). */
bool pg_cluster_owned(void);
/* Stop the server, keeping its data and port (`pg-test-cluster halt`). */
void pg_cluster_halt(void);
/* Start it again on the same port. */
void pg_cluster_start(void);

#endif
