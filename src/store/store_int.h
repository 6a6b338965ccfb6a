/*
 * store/store_int: what store.c and the backends share, and nobody else.
 *
 * - The backends' exported tables (each backend file exports exactly one).
 * - struct store__arena: a chunked string arena that an operation uses to own
 *   the strings of its result (sqlite3_column_* and PGresult pointers die at
 *   the next step); pointers stay valid until store__arena_free(). One
 *   owner, one thread at a time.
 */
#ifndef TODO_STORE_STORE_INT_H
#define TODO_STORE_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

extern const struct store_backend store_backend_sqlite;
extern const struct store_backend store_backend_pg;

struct store__arena;

/* Submit-side checks and copies both backends share. */
/* Canonicalise UUID text `s` into `out`; false when NULL or not a UUID. */
bool store__copy_uuid(char out[UUID_STR_LEN + 1], const char *s);
/* A query a backend can run: user set, limit 1..1000, offset >= 0, known
 * completed filter and sort. */
bool store__query_valid(const struct todo_query *q);
/* `*dst` = `*src` with its strings duplicated (free with todo_patch_free). */
void store__copy_patch(struct todo_patch *dst, const struct todo_patch *src);

/* Copy s[0..len) plus a NUL into `*a` (created on first use); never NULL. */
char *store__arena_strndup(struct store__arena **a, const char *s, size_t len);
/* Free every block; NULL accepted. */
void store__arena_free(struct store__arena *a);

#endif
