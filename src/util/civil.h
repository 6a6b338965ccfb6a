/*
 * util/civil: proleptic Gregorian calendar arithmetic on days since
 * 1970-01-01 (Howard Hinnant's days_from_civil / civil_from_days), and
 * floor division. Shared by every place that formats or parses a date
 * without the C library's time-zone machinery (timefmt, the log line, the
 * dbtool converters). Header-only; pure; any thread.
 */
#ifndef TODO_UTIL_CIVIL_H
#define TODO_UTIL_CIVIL_H

#include <stdint.h>

/* a / b rounded toward negative infinity (b > 0). */
static inline int64_t civil_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of year y, month m (1-12), day d (1-31). */
static inline int64_t civil_days_from(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The date of day z (days since 1970-01-01). */
static inline void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

#endif
