/*
 * model/timefmt: RFC 3339 UTC timestamps with milliseconds ("2026-11-21T07:13:46.123Z").
 *
 * This text is both the API's format and SQLite's storage format (fixed
 * width, so it sorts as text). Pure; any thread.
 */
#ifndef TODO_MODEL_TIMEFMT_H
#define TODO_MODEL_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define TIMEFMT_LEN 24 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */

/* Current wall-clock time in Unix epoch milliseconds. */
int64_t timefmt_now_ms(void);

/* Format `ms` (years 0000–9999; values outside are clamped to that range)
 * as TIMEFMT_LEN characters plus NUL. No locks, no allocation. */
void timefmt_format(int64_t ms, char out[TIMEFMT_LEN + 1]);

/* Parse RFC 3339 text: "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)"; 't'/'z'
 * and a space for 'T' are accepted; fractions beyond milliseconds are
 * truncated. Leap seconds (":60") are rejected, and so is a time whose UTC
 * value falls outside 0000-01-01..9999-12-31 (through its offset), so that
 * whatever parses formats back exactly. Returns 0 and sets *ms, or -1 when
 * `s` is not such a time. */
int timefmt_parse(const char *s, size_t len, int64_t *ms);

#endif
