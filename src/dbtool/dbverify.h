/*
 * dbtool/dbverify: `todo db verify` — prove that a target holds exactly the
 * source's users and todos, after both are normalised the way `todo db
 * copy` converts them (dbtool/dbconv.h: booleans, timestamps to UTC
 * milliseconds, lower-case uuids; a legacy source is read as the current
 * tables). Works in every direction.
 *
 * Method, per table (dbtool/dbsrc.h on both sides, each in one snapshot):
 *   1. row counts;
 *   2. the key space is cut into buckets of `chunk_rows` source keys: the
 *      bounds are every chunk_rows-th source key (one keys-only scan of
 *      the source); the first bucket starts at the beginning, the last
 *      runs to the end, so rows the target has beyond the source's keys
 *      are seen;
 *   3. every bucket's digest (MD5 of the canonical encoding, dbrow.h) and
 *      count, in one pass over each side (dbsrc_digest_buckets: computed
 *      by PostgreSQL itself on a PostgreSQL side, in one query, so little
 *      crosses the network; a SQLite side is scanned once in key order);
 *      the target's pass runs on a second thread while the source's runs;
 *   4. a bucket that differs has its source keys read (a keys-only scan of
 *      its range) and is bisected (split at its middle source key, both
 *      halves digested with dbsrc_digest) until one side holds at most
 *      `leaf_rows` rows of a range; then that side's rows are read into
 *      memory, the other side's are streamed past them and merged by key,
 *      and every missing (in source, not target), extra (in target, not
 *      source) and different row (with the names of the differing
 *      columns, in column order) is reported, in key order.
 * Cost grows linearly with the rows (plus the differing buckets'
 * bisection). Memory: the bounds and both sides' bucket digests (about 100
 * bytes per bucket: 1M rows at the default chunk_rows are 100 buckets),
 * one differing bucket's source keys (chunk_rows) and leaf_rows rows.
 *
 * Reports: the first `max_report` differences of each table are kept in
 * full; beyond that only counted. A source row that cannot be converted is
 * an error (exit 2 at the CLI), naming it as copy would.
 *
 * Blocking; call from one thread (dbverify_run starts and joins a helper
 * thread of its own for the target's digests).
 */
#ifndef TODO_DBTOOL_DBVERIFY_H
#define TODO_DBTOOL_DBVERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbtool/dbsrc.h"

enum dbverify_kind { DBVERIFY_MISSING, DBVERIFY_EXTRA, DBVERIFY_DIFFERENT };

struct dbverify_diff {
    enum dbverify_kind kind;
    char id[DBROW_UUID_LEN + 1];
    char *columns; /* DIFFERENT: "title, updated_at"; else NULL */
};

struct dbverify_table {
    const char *table; /* static */
    int64_t source_rows, target_rows;
    int64_t missing, extra, different; /* totals */
    struct dbverify_diff *diffs;       /* the first max_report */
    size_t ndiffs;
    double seconds;
};

struct dbverify_result {
    struct dbverify_table tables[4];
    size_t ntables;
    enum dbsrc_layout source_layout;
    bool identical;
};

struct dbverify_opts {
    const char *source, *target;  /* URLs */
    enum dbsrc_layout source_layout; /* AUTO */
    const char *source_timezone;  /* NULL: UTC */
    int64_t chunk_rows;           /* 0: 10000 */
    int64_t leaf_rows;            /* 0: 64 */
    size_t max_report;            /* 0: 100 */
};

/* 0 identical, 1 different (res says how), -1 error (err set). Free res
 * with dbverify_result_free either way. */
int dbverify_run(const struct dbverify_opts *o, struct dbverify_result *res, char *err,
                 size_t errlen);
void dbverify_result_free(struct dbverify_result *res);

#endif
