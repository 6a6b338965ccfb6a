/*
 * store/store_pg: the PostgreSQL backend's one exported symbol, for the
 * registry in store.c (internal to src/store/).
 */
#ifndef TODO_STORE_STORE_PG_H
#define TODO_STORE_STORE_PG_H

#include "store/store.h"

extern const struct store_backend store_backend_pg;

#endif
