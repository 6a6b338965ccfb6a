#include "migrate/mdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "migrate/mdb_int.h"
#include "migrate/source.h"
#include "util/dburl.h"
#include "util/xalloc.h"

int mdb_open(const char *url, const struct mdb_opts *o, struct mdb **out, char *err,
             size_t errlen)
{
    struct dburl u = {0};
    struct mdb_opts opts = *o;
    int rc;

    *out = NULL;
    if (opts.lock_timeout_ms <= 0)
        opts.lock_timeout_ms = MDB_LOCK_TIMEOUT_MS_DEFAULT;
    if (dburl_parse(url, &u, err, errlen) != 0)
        return -1;
    if (u.kind == DBURL_SQLITE)
        rc = mdb__sqlite_open(u.path, &opts, out, err, errlen);
    else
        rc = mdb__pg_open(u.conninfo, u.redacted, &opts, out, err, errlen);
    if (rc == 0) {
        (*out)->label = xstrdup(u.redacted);
        (*out)->lock_timeout_ms = opts.lock_timeout_ms;
    }
    dburl_free(&u);
    return rc;
}

void mdb_close(struct mdb *db)
{
    char *label;

    if (db == NULL)
        return;
    label = db->label;
    db->ops->close(db);
    free(label);
}

const char *mdb_dialect(const struct mdb *db)
{
    return db->ops->dialect;
}

const char *mdb_label(const struct mdb *db)
{
    return db->label;
}

bool mdb_missing(const struct mdb *db)
{
    return db->missing;
}

void mdb_migrate_db(struct mdb *db, struct migrate_db *out)
{
    db->ops->migrate_db(db, out);
}

int mdb_alembic_version(struct mdb *db, char **rev, char *err, size_t errlen)
{
    *rev = NULL;
    return db->ops->alembic_version(db, rev, err, errlen);
}

int mdb_describe(struct mdb *db, struct schema_desc *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (db->ops->describe(db, out, err, errlen) != 0) {
        schema_desc_free(out);
        return -1;
    }
    schema_desc_finish(out);
    return 0;
}

int mdb_describe_expected(struct mdb *db, const struct migration *list, size_t n, int64_t upto,
                          struct schema_desc *out, char *err, size_t errlen)
{
    size_t k = 0;

    while (k < n && list[k].version <= upto)
        k++;
    memset(out, 0, sizeof(*out));
    if (db->ops->describe_expected(db, list, k, out, err, errlen) != 0) {
        schema_desc_free(out);
        return -1;
    }
    schema_desc_finish(out);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int mdb_wait(const char *url, int timeout_ms, int64_t *waited_ms, char *err, size_t errlen)
{
    struct dburl u = {0};
    int64_t start = now_ms(), left;
    int rc;

    if (dburl_parse(url, &u, err, errlen) != 0)
        return -1;
    for (;;) {
        left = start + timeout_ms - now_ms();
        rc = u.kind == DBURL_SQLITE ? mdb__sqlite_probe(u.path, err, errlen)
                                    : mdb__pg_probe(u.conninfo, left > 0 ? (int)left : 1, err,
                                                    errlen);
        if (rc == 0 || u.kind == DBURL_SQLITE)
            break;
        left = start + timeout_ms - now_ms();
        if (left <= 0)
            break;
        struct timespec nap = {0, (left < 250 ? left : 250) * 1000000L};
        nanosleep(&nap, NULL);
    }
    *waited_ms = now_ms() - start;
    dburl_free(&u);
    return rc;
}

int mdb_pending_count(const char *url, int connect_timeout_s, char *err, size_t errlen)
{
    struct mdb_opts o = {.connect_timeout_s = connect_timeout_s};
    struct migrate_source src;
    struct migrate_status st;
    struct migrate_db cb;
    struct mdb *db;
    int pending = -1;

    if (mdb_open(url, &o, &db, err, errlen) != 0)
        return -1;
    if (migrate_source_open(&src, NULL, mdb_dialect(db), err, errlen) == 0) {
        mdb_migrate_db(db, &cb);
        if (migrate_status_read(&cb, src.list, src.n, &st, err, errlen) == 0) {
            pending = (int)st.npending;
            migrate_status_free(&st);
        }
        migrate_source_close(&src);
    }
    mdb_close(db);
    return pending;
}

int mdb_up_embedded(const char *url, int connect_timeout_s, char *err, size_t errlen)
{
    struct mdb_opts o = {.connect_timeout_s = connect_timeout_s, .create = true};
    struct migrate_db cb;
    struct mdb *db;
    int applied;

    if (mdb_open(url, &o, &db, err, errlen) != 0)
        return -1;
    mdb_migrate_db(db, &cb);
    applied = migrate_up(&cb, err, errlen);
    mdb_close(db);
    return applied;
}
