#include "migrate/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "model/timefmt.h"

/* schema_migrations in each dialect. The runner owns this table (migration
 * files never create or drop it) so that `migrate down` of the first
 * migration still has a history to update. */
static const char sqlite_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
    "    version     INTEGER NOT NULL PRIMARY KEY,\n"
    "    name        TEXT    NOT NULL,\n"
    "    checksum    TEXT    NOT NULL,\n"
    "    applied_at  TEXT    NOT NULL,\n"
    "    duration_ms INTEGER NOT NULL\n"
    ") STRICT";

static const char postgres_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
    "    version     bigint       NOT NULL PRIMARY KEY,\n"
    "    name        varchar(255) NOT NULL,\n"
    "    checksum    varchar(64)  NOT NULL,\n"
    "    applied_at  timestamptz  NOT NULL,\n"
    "    duration_ms bigint       NOT NULL\n"
    ")";

const char *migrate_table_sql(const char *dialect)
{
    if (strcmp(dialect, "sqlite") == 0)
        return sqlite_table_sql;
    if (strcmp(dialect, "postgres") == 0)
        return postgres_table_sql;
    return NULL;
}

void migrate_checksum(const char *sql, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    /* EVP_Digest only fails on allocation failure inside OpenSSL; a checksum
     * of all zeroes would then be recorded, so treat it as fatal instead. */
    if (EVP_Digest(sql, strlen(sql), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        fprintf(stderr, "migrate: SHA-256 failed\n");
        abort();
    }
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[64] = '\0';
}

int64_t migrate_latest_version(const char *dialect)
{
    size_t n = 0;
    const struct migration *list = migrate_embedded(dialect, &n);

    return n == 0 ? 0 : list[n - 1].version;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Prefix `err` (which holds the database's message) with the file name. */
static void name_error(const struct migration *m, char *err, size_t errlen)
{
    char msg[512];

    snprintf(msg, sizeof(msg), "%s", err);
    snprintf(err, errlen, "%04lld_%s.up.sql: %s", (long long)m->version, m->name, msg);
}

/* Apply one migration in its own transaction. Returns 1 when applied, 0 when
 * another migrator got there first, -1 on error (rolled back). */
static int apply_one(const struct migrate_db *db, const struct migration *m, char *err,
                     size_t errlen)
{
    char checksum[65];
    int64_t current = 0, started;

    if (db->begin(db->conn, err, errlen) != 0)
        goto fail_nobegin;
    /* Re-read inside the transaction: it excludes other migrators, so the
     * answer cannot change before commit. */
    if (db->current_version(db->conn, &current, err, errlen) != 0)
        goto fail;
    if (current >= m->version) {
        db->rollback(db->conn);
        return 0;
    }
    started = monotonic_ms();
    if (db->exec(db->conn, m->up_sql, err, errlen) != 0)
        goto fail;
    migrate_checksum(m->up_sql, checksum);
    if (db->record(db->conn, m, checksum, timefmt_now_ms(), monotonic_ms() - started, err,
                   errlen) != 0)
        goto fail;
    if (db->commit(db->conn, err, errlen) != 0)
        goto fail;
    return 1;

fail:
    db->rollback(db->conn);
fail_nobegin:
    name_error(m, err, errlen);
    return -1;
}

int migrate_up_list(const struct migrate_db *db, const struct migration *list, size_t n, char *err,
                    size_t errlen)
{
    int64_t current = 0;
    int applied = 0;

    if (errlen > 0)
        err[0] = '\0';
    /* A first read outside any transaction skips the common case (nothing
     * pending) without taking the write lock. */
    if (db->current_version(db->conn, &current, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && list[i].version <= list[i - 1].version) {
            snprintf(err, errlen, "%04lld_%s.up.sql: versions out of order",
                     (long long)list[i].version, list[i].name);
            return -1;
        }
        if (list[i].version <= current)
            continue;
        int rc = apply_one(db, &list[i], err, errlen);
        if (rc < 0)
            return -1;
        applied += rc;
    }
    return applied;
}

int migrate_up(const struct migrate_db *db, char *err, size_t errlen)
{
    size_t n = 0;
    const struct migration *list = migrate_embedded(db->dialect, &n);

    if (list == NULL) {
        snprintf(err, errlen, "no migrations embedded for dialect %s", db->dialect);
        return -1;
    }
    return migrate_up_list(db, list, n, err, errlen);
}
