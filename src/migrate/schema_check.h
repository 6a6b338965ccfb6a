/*
 * migrate/schema_check: `todo migrate check` — a schema as a sorted list of
 * (key, value) facts, and the difference between two such lists.
 *
 * A backend's introspection (migrate/mdb.h) describes a live schema as
 * facts such as
 *   key "column todos.title"          value "varchar(255) not null collate C"
 *   key "index todos_user_created"    value "CREATE INDEX ... (user_id, ...)"
 *   key "constraint todos.todos_pkey" value "PRIMARY KEY (id)"
 *   key "check todos: length(id) = 36" value ""   (SQLite: from the table's SQL)
 * The same introspection of a scratch database to which the migrations were
 * applied gives the expected facts; schema_diff() lists what differs: a key
 * on one side only (extra in the database, or missing from it) or one key
 * with two values (changed).
 *
 * Ownership: a schema_desc owns copies of its strings; a diff points into
 * the two descs it came from (free it before them). Pure; any thread.
 */
#ifndef TODO_MIGRATE_SCHEMA_CHECK_H
#define TODO_MIGRATE_SCHEMA_CHECK_H

#include <stddef.h>

struct schema_item {
    char *key;
    char *value;
};

struct schema_desc {
    struct schema_item *items; /* sorted by key, keys unique, after schema_desc_finish */
    size_t n;
    size_t _cap;
};

/* Append a copy of (key, value); value NULL is stored as "". */
void schema_desc_add(struct schema_desc *d, const char *key, const char *value);
/* Sort by key; a repeated key gets " (2)", " (3)"... appended. */
void schema_desc_finish(struct schema_desc *d);
void schema_desc_free(struct schema_desc *d); /* NULL and a zeroed one accepted */

enum schema_diff_kind {
    SCHEMA_DIFF_EXTRA,   /* in the database only */
    SCHEMA_DIFF_MISSING, /* expected by the migrations, absent from the database */
    SCHEMA_DIFF_CHANGED, /* both, with different values */
};

struct schema_diff {
    enum schema_diff_kind kind;
    const char *key;
    const char *live;     /* NULL for MISSING */
    const char *expected; /* NULL for EXTRA */
};

/* Differences between two finished descs, in key order. Returns the count;
 * *out (caller frees; NULL when 0). */
size_t schema_diff(const struct schema_desc *live, const struct schema_desc *expected,
                   struct schema_diff **out);

/* `sql` with each run of blank space and comments outside quotes made one
 * space, none after '(' or before ')' and ','. Caller frees. */
char *schema_sql_normalize(const char *sql, size_t len);

/* Each CHECK (...) constraint in a CREATE TABLE text: fn(ctx, expr) with
 * the normalized expression inside the parentheses. */
void schema_sql_checks(const char *sql, void (*fn)(void *ctx, const char *expr), void *ctx);

#endif
