#include "model/timefmt.h"

#include <stdbool.h>
#include <time.h>

#include "util/civil.h"

#define MS_PER_DAY INT64_C(86400000)
/* 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z in Unix ms. */
#define MS_MIN INT64_C(-62167219200000)
#define MS_MAX INT64_C(253402300799999)

int64_t timefmt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_digits(char *p, int64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void timefmt_format(int64_t ms, char out[TIMEFMT_LEN + 1])
{
    if (ms < MS_MIN)
        ms = MS_MIN;
    if (ms > MS_MAX)
        ms = MS_MAX;
    int64_t days = ms / MS_PER_DAY, rem = ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    int64_t y, m, d;
    civil_from_days(days, &y, &m, &d);
    put_digits(out, y, 4);
    out[4] = '-';
    put_digits(out + 5, m, 2);
    out[7] = '-';
    put_digits(out + 8, d, 2);
    out[10] = 'T';
    put_digits(out + 11, rem / 3600000, 2);
    out[13] = ':';
    put_digits(out + 14, rem / 60000 % 60, 2);
    out[16] = ':';
    put_digits(out + 17, rem / 1000 % 60, 2);
    out[19] = '.';
    put_digits(out + 20, rem % 1000, 3);
    out[23] = 'Z';
    out[24] = '\0';
}

/* Read exactly `n` digits at s[*i]; false when any is missing. */
static bool digits(const char *s, size_t len, size_t *i, int n, int *out)
{
    if (len - *i < (size_t)n)
        return false;
    int v = 0;
    for (int k = 0; k < n; k++) {
        char c = s[*i + (size_t)k];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *i += (size_t)n;
    *out = v;
    return true;
}

static bool expect(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c)
        return false;
    (*i)++;
    return true;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* ".fraction": one or more digits, truncated to milliseconds. */
static bool fraction(const char *s, size_t len, size_t *i, int *ms)
{
    *ms = 0;
    if (*i >= len || s[*i] != '.')
        return true;
    (*i)++;
    int n = 0;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        if (n < 3)
            *ms = *ms * 10 + (s[*i] - '0');
        n++;
        (*i)++;
    }
    for (int k = n; k < 3; k++)
        *ms *= 10;
    return n > 0;
}

/* "Z", "z" or "±HH:MM" to the end of the text: offset east of UTC in minutes. */
static bool offset(const char *s, size_t len, size_t *i, int *minutes)
{
    if (*i >= len)
        return false;
    char c = s[(*i)++];
    if (c == 'Z' || c == 'z') {
        *minutes = 0;
        return *i == len;
    }
    if (c != '+' && c != '-')
        return false;
    int hh, mm;
    if (!digits(s, len, i, 2, &hh) || !expect(s, len, i, ':') || !digits(s, len, i, 2, &mm))
        return false;
    if (hh > 23 || mm > 59 || *i != len)
        return false;
    *minutes = (c == '-' ? -1 : 1) * (hh * 60 + mm);
    return true;
}

int timefmt_parse(const char *s, size_t len, int64_t *ms)
{
    size_t i = 0;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, frac = 0, off = 0;
    if (!digits(s, len, &i, 4, &y) || !expect(s, len, &i, '-') || !digits(s, len, &i, 2, &mo) ||
        !expect(s, len, &i, '-') || !digits(s, len, &i, 2, &d))
        return -1;
    if (i >= len || (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
        return -1;
    i++;
    if (!digits(s, len, &i, 2, &h) || !expect(s, len, &i, ':') || !digits(s, len, &i, 2, &mi) ||
        !expect(s, len, &i, ':') || !digits(s, len, &i, 2, &sec))
        return -1;
    if (!fraction(s, len, &i, &frac) || !offset(s, len, &i, &off))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
        return -1;
    int64_t days = civil_days_from(y, mo, d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - (int64_t)off * 60;
    int64_t v = secs * 1000 + frac;
    /* An offset can carry 0000-01-01 or 9999-12-31 out of what
     * timefmt_format() can write back. */
    if (v < MS_MIN || v > MS_MAX)
        return -1;
    *ms = v;
    return 0;
}
