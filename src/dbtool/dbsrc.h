/*
 * dbtool/dbsrc: read the users and todos of a database — SQLite (the
 * current schema, or the old Python app's "legacy" layout) or PostgreSQL —
 * as canonical rows (dbtool/dbrow.h), streaming, in primary-key order.
 * Both `todo db copy` (as its source) and `todo db verify` (both sides) read
 * through it.
 *
 * Layouts
 *   current: the tables of migrations/<dialect>/ (schema_migrations gives
 *            the version; dbsrc_open refuses a version newer than the
 *            embedded migrations know, or one without the tables; SQLite:
 *            or without one of their columns, all named).
 *   legacy:  SQLite only — users(id CHAR(32) hex, email, password_hash,
 *            name, created_at, updated_at NULL, is_active) and
 *            tasks(id, user_id, title, description, completed,
 *            completed_at, created_at, updated_at NULL) plus
 *            alembic_version (a missing column makes dbsrc_open fail
 *            naming every one). Read as the current tables: tasks become
 *            todos; a NULL updated_at becomes created_at; version is 1;
 *            emails are lower-cased, and two users whose emails collide
 *            once lower-cased make dbsrc_open fail naming both ids.
 *   DBSRC_LAYOUT_AUTO picks legacy when there is a `tasks` table and no
 *   `todos` table, current otherwise.
 *
 * Snapshot: dbsrc_open starts one read-only transaction (SQLite: BEGIN +
 * a first read, so a WAL snapshot is held; PostgreSQL: REPEATABLE READ READ
 * ONLY), and every read sees that one snapshot until dbsrc_close — a
 * server may keep writing meanwhile (SQLite: in WAL mode, which the server
 * sets; a rollback-journal file is locked against writers meanwhile).
 *
 * Order and ranges: rows come ascending by canonical primary key (uuid
 * text order = PostgreSQL's uuid order). A range is (lo, hi]: lo NULL
 * means from the start, hi NULL to the end. SQLite sources are read in
 * the order of their stored id; a stored id not in the layout's form
 * (current: canonical text; legacy: 32 lower-case hex digits), which would
 * break the order, is reported by a scan as an error naming the row
 * (copy does not need the order and scans with DBSRC_SCAN_ANY_ORDER).
 *
 * Memory is bounded by batch_rows whatever the table size (PostgreSQL: a
 * cursor fetched batch_rows at a time in binary format, the next batch
 * asked for while the current one is converted; SQLite: a statement
 * stepped). Because of that, a row or reject callback must not call into
 * the same dbsrc (another dbsrc is fine). A scan stopped by a callback
 * closes its cursor; the dbsrc stays usable.
 *
 * Todos without their user: the first scan of todos finds, once per
 * dbsrc, the user ids that todos name and no user has — compared in
 * canonical form, so a user_id stored as 32 upper-case hex digits names
 * the user stored as canonical text (PostgreSQL: none when a validated
 * foreign key exists, else one anti-join; SQLite: one pass over the
 * user_id index, and a pass over users only when some id did not match
 * as stored). Each row's user_id is then looked up in that set (memory:
 * one entry per such id).
 *
 * Conversion failures (dbtool/dbconv.h): the row goes to the reject
 * callback with table, primary key (the stored text), column, the value
 * (dbconv_raw_text) and the reason; the callback says whether to go on
 * (skip the row) or stop. A todo whose user_id names no user in the
 * source is rejected the same way (column "user_id", reason "no user with
 * this id"), so a target's foreign key cannot fail later.
 *
 * Errors: -1 with a one-line message naming the database (redacted URL)
 * and what failed. One thread; blocking.
 */
#ifndef TODO_DBTOOL_DBSRC_H
#define TODO_DBTOOL_DBSRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "dbtool/dbconv.h"
#include "dbtool/dbrow.h"

enum dbsrc_layout { DBSRC_LAYOUT_AUTO, DBSRC_LAYOUT_CURRENT, DBSRC_LAYOUT_LEGACY };

struct dbsrc_opts {
    enum dbsrc_layout layout;    /* AUTO by default */
    const struct dbconv_tz *tz;  /* naive timestamps; NULL: UTC */
    int64_t batch_rows;          /* 0: 10000 */
    int connect_timeout_s;       /* PostgreSQL; 0: 10; the URL's connect_timeout wins */
};

struct dbsrc;

int dbsrc_open(const char *url, const struct dbsrc_opts *o, struct dbsrc **out, char *err,
               size_t errlen);
void dbsrc_close(struct dbsrc *s); /* NULL accepted; ends the snapshot */

const char *dbsrc_dialect(const struct dbsrc *s); /* "sqlite", "postgres" */
const char *dbsrc_label(const struct dbsrc *s);   /* URL, password redacted */
enum dbsrc_layout dbsrc_layout(const struct dbsrc *s); /* CURRENT or LEGACY */
/* current: highest applied schema_migrations version; legacy: 0. */
int64_t dbsrc_version(const struct dbsrc *s);
/* legacy: alembic_version's revision ("" if none); NULL for current. */
const char *dbsrc_alembic_revision(const struct dbsrc *s);

/* Rows of t in the source (legacy todos: rows of tasks). */
int dbsrc_count(struct dbsrc *s, const struct dbtable *t, int64_t *n, char *err, size_t errlen);

struct dbreject {
    const struct dbtable *t;
    const char *pk;      /* the stored primary key, as text */
    const char *column;
    const char *value;   /* dbconv_raw_text of the value */
    const char *reason;
};

/* Return 0 to go on, anything else to stop the scan (dbsrc_scan returns it). */
typedef int dbsrc_row_fn(void *ctx, const struct dbrow *row);
/* Return 0 to skip the row and go on, anything else to stop the scan. */
typedef int dbsrc_reject_fn(void *ctx, const struct dbreject *rej);

#define DBSRC_SCAN_ANY_ORDER 0x1 /* copy: no order needed */
#define DBSRC_SCAN_KEYS_ONLY 0x2 /* only v[0] (the primary key) is filled */

/* Stream the rows of t in (lo, hi] to row_fn, converted. reject_fn NULL
 * stops at the first bad row with a message naming table, key, column,
 * value and reason. 0 when done, -1 on error (err set), or the non-zero
 * value a callback returned. */
int dbsrc_scan(struct dbsrc *s, const struct dbtable *t, const char *lo, const char *hi,
               unsigned flags, dbsrc_row_fn *row_fn, dbsrc_reject_fn *reject_fn, void *ctx,
               char *err, size_t errlen);

/* Digest (dbrow.h encoding, MD5) and row count of the range (lo, hi] of t:
 * computed by PostgreSQL itself for a PostgreSQL source (one query; the
 * server holds the range's encoding, ~200 bytes a todo, in memory, and
 * refuses more than 1 GB: keep ranges below a few million rows; the
 * server encoding must be UTF8 or SQL_ASCII), by scanning and converting
 * for SQLite (a row that cannot be converted is an error here: verify
 * reports it). */
int dbsrc_digest(struct dbsrc *s, const struct dbtable *t, const char *lo, const char *hi,
                 unsigned char md5[16], int64_t *rows, char *err, size_t errlen);

/* Digests and row counts of the nbounds + 1 buckets into which the keys
 * bounds[] (UUIDs, strictly ascending) cut t's key space, in one pass over
 * the table: bucket i holds the keys in (bounds[i-1], bounds[i]], bucket 0
 * every key <= bounds[0] (every key when nbounds is 0), bucket nbounds
 * every key > bounds[nbounds-1]. Each bucket gets exactly what
 * dbsrc_digest gives for its range (an empty bucket: MD5 of nothing, 0
 * rows). md5 and rows have nbounds + 1 entries. PostgreSQL: one query,
 * which sorts the table's encoding once (work_mem, then temporary files)
 * and holds one bucket's encoding at a time (the same 1 GB limit as
 * dbsrc_digest); the bounds go as one parameter (37 bytes a bound).
 * SQLite: one scan in key order, converting (a row that cannot be
 * converted is an error). */
int dbsrc_digest_buckets(struct dbsrc *s, const struct dbtable *t, const char *const *bounds,
                         size_t nbounds, unsigned char (*md5)[16], int64_t *rows, char *err,
                         size_t errlen);

#endif
