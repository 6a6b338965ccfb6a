/*
 * dbtool/dbconv: the conversion rules of `todo db copy|verify` — a value as
 * a source database stores it (struct dbraw) into its canonical form
 * (dbtool/dbrow.h), or the reason it cannot be.
 *
 * Rules, by target type
 *   BOOL: integer 0/1; real 0.0/1.0; text "0" "1" "t" "f" "true" "false"
 *         (any case). Surrounding blanks are ignored in BOOL, TS and INT
 *         text (not in UUID or TEXT).
 *   TS:   text "YYYY-MM-DD HH:MM:SS" or with 'T' (seconds may be left
 *         out: "HH:MM"), optional fraction (any number of digits, truncated
 *         to milliseconds, toward the past), optional "Z" or "±HH:MM" /
 *         "±HHMM" / "±HH" (and "±HH:MM:SS", as PostgreSQL prints historic
 *         offsets); a bare date "YYYY-MM-DD" is midnight. Text without an
 *         offset is naive: it is local time in the source zone (dbconv_tz;
 *         UTC by default), read as PostgreSQL reads it: a local time that
 *         occurs twice (clocks set back) is the later instant, one that
 *         does not exist (clocks set forward) uses the offset from before
 *         the change. Numbers (integer, real, or text that is only a
 *         decimal number "[+-]digits[.digits]") are Unix epoch seconds; a
 *         number whose magnitude is ≥ 1e11 is taken as milliseconds (1e11
 *         seconds is the year 5138; 1e11 ms is 1973). Years 0001..9999
 *         only (of the UTC value).
 *   UUID: text of 32 hex digits or the 36-character canonical form (any
 *         case), or a 16-byte blob; out lower-case canonical.
 *   TEXT: text or blob that is valid UTF-8 without NUL bytes, within the
 *         column's character limits; an integer or real becomes its decimal
 *         text as SQLite writes it ("123", "1.5", "100.0": NUMERIC affinity
 *         may have turned "123" into 123), held in out->uuid (s points
 *         there).
 *   INT:  integer, or text/real holding an integer, within [min, max].
 *   NULL: stays NULL in a nullable column; is an error otherwise.
 *
 * Errors: -1 with a short reason in `why` ("not a boolean", "not a
 * timestamp", "title longer than 255 characters", ...) — the caller adds
 * table, primary key, column and the value (dbconv_raw_text).
 *
 * Pure; any thread. A dbconv_tz is read-only once open (the zone's TZif
 * file under /usr/share/zoneinfo is parsed by dbconv_tz_open, the process
 * TZ is never touched), so threads may share one. TEXT out-values borrow
 * the raw bytes.
 */
#ifndef TODO_DBTOOL_DBCONV_H
#define TODO_DBTOOL_DBCONV_H

#include <stddef.h>
#include <stdint.h>

#include "dbtool/dbrow.h"
#include "util/buf.h"

enum dbraw_kind { DBRAW_NULL, DBRAW_INT, DBRAW_REAL, DBRAW_TEXT, DBRAW_BLOB };

/* A value as the source holds it (SQLite's storage classes; a PostgreSQL
 * source gives text in PostgreSQL's output format, which these rules
 * read: "t"/"f", "2026-11-21 07:13:46.123+00", canonical uuids). */
struct dbraw {
    enum dbraw_kind kind;
    int64_t i;
    double r;
    const unsigned char *p; /* TEXT/BLOB bytes (not NUL-terminated) */
    size_t len;
};

struct dbconv_tz;

/* The source zone for naive timestamps: "UTC", "Z", "±HH:MM", or an IANA
 * name present under /usr/share/zoneinfo ("Europe/Berlin"). NULL with a
 * message naming --source-timezone when unknown. */
struct dbconv_tz *dbconv_tz_open(const char *zone, char *err, size_t errlen);
void dbconv_tz_close(struct dbconv_tz *tz); /* NULL accepted */

/* Convert `in` for column `c` into `out`. tz NULL means UTC. 0 or -1. */
int dbconv_value(const struct dbraw *in, const struct dbcol *c, const struct dbconv_tz *tz,
                 struct dbval *out, char *why, size_t whylen);

/* The raw value as a user should see it in a message: text quoted and
 * shortened to ~60 bytes (non-printable bytes escaped), blobs as x'..'
 * hex, numbers in decimal, NULL as NULL. */
void dbconv_raw_text(const struct dbraw *in, struct buf *out);

#endif
