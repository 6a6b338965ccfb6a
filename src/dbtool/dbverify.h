/*
 * dbtool/dbverify: `todo db verify` — prove that a target holds exactly the
 * source's users and todos, after both are normalised the way `todo db
 * copy` converts them (dbtool/dbconv.h: booleans, timestamps to UTC
 * milliseconds, lower-case uuids; a legacy source is read as the current
 * tables). Works in every direction.
 *
 * Method, per table (dbtool/dbsrc.h on both sides, each in one snapshot):
 *   1. row counts;
 *   2. the key space is cut into ranges of about `chunk_rows` source keys
 *      (boundaries from a keys-only scan of the source — a SQLite source is
 *      read in full rows instead and its range digest taken in the same
 *      pass; the first range starts at the beginning, the last runs to the
 *      end, so rows the target has beyond the source's keys are seen);
 *   3. each range's digest (MD5 of the canonical encoding, dbrow.h) and
 *      count are compared — computed by PostgreSQL itself on a PostgreSQL
 *      side, so little crosses the network; the target's digest of a range
 *      is computed on a second thread while the source's is;
 *   4. a range that differs is bisected (split at its middle source key)
 *      until one side holds at most `leaf_rows` rows of it; then that
 *      side's rows are read into memory, the other side's are streamed
 *      past them and merged by key, and every missing (in source, not
 *      target), extra (in target, not source) and different row (with the
 *      names of the differing columns, in column order) is reported, in
 *      key order.
 * Cost grows linearly with the rows (plus the differing ranges' bisection);
 * memory is bounded by two ranges' keys (2 × chunk_rows) and leaf_rows
 * rows.
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
