/*
 * migrate/mdb_int: what mdb.c and its two dialects (mdb_sqlite.c, mdb_pg.c)
 * share, and nobody else.
 */
#ifndef TODO_MIGRATE_MDB_INT_H
#define TODO_MIGRATE_MDB_INT_H

#include "migrate/mdb.h"

struct mdb_ops {
    const char *dialect;
    void (*close)(struct mdb *db);
    void (*migrate_db)(struct mdb *db, struct migrate_db *out);
    int (*alembic_version)(struct mdb *db, char **rev, char *err, size_t errlen);
    int (*describe)(struct mdb *db, struct schema_desc *out, char *err, size_t errlen);
    int (*describe_expected)(struct mdb *db, const struct migration *list, size_t n,
                             struct schema_desc *out, char *err, size_t errlen);
};

/* Each dialect's connection struct starts with this. */
struct mdb {
    const struct mdb_ops *ops;
    char *label; /* redacted URL */
    bool missing;
    int lock_timeout_ms;
};

/* Open; fill the dialect part and base->ops; mdb.c sets label, missing
 * (SQLite) and lock_timeout_ms. */
int mdb__sqlite_open(const char *path, const struct mdb_opts *o, struct mdb **out, char *err,
                     size_t errlen);
int mdb__pg_open(const char *conninfo, const char *label, const struct mdb_opts *o,
                 struct mdb **out, char *err, size_t errlen);
/* One connection attempt and a trivial query: 0, or -1 with the reason. */
int mdb__sqlite_probe(const char *path, char *err, size_t errlen);
int mdb__pg_probe(const char *conninfo, int timeout_ms, char *err, size_t errlen);

#endif
