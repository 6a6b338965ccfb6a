#include "dbtool/dbconv.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "model/uuid.h"
#include "util/civil.h"
#include "util/utf8.h"
#include "util/xalloc.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo"
#define TZIF_MAX_BYTES (1 << 20)
/* 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z in Unix ms. */
#define MS_MIN INT64_C(-62135596800000)
#define MS_MAX INT64_C(253402300799999)
#define EPOCH_MS_THRESHOLD INT64_C(100000000000) /* 1e11: seconds below, ms from here */

/* ---- calendar ------------------------------------------------------------ */

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* The (proleptic Gregorian) year holding Unix second t. */
static int64_t year_of(int64_t t)
{
    int64_t y, m, d;
    civil_from_days(civil_floor_div(t, 86400), &y, &m, &d);
    return y;
}

/* ---- time zones ---------------------------------------------------------- */

/* A POSIX TZ rule date: Jn (1..365, no Feb 29), n (0..365), Mm.w.d. */
struct rule_date {
    char kind; /* 'J', 'D', 'M' */
    int n, m, w, d;
    int32_t secs; /* local time of day of the change (may be < 0 or > 24 h) */
};

struct posix_rule {
    int32_t std_off, dst_off; /* seconds east of UTC */
    bool has_dst;
    struct rule_date start, end;
};

struct tz_trans {
    int64_t at;  /* Unix second at which `off` begins */
    int32_t off; /* seconds east of UTC */
};

struct dbconv_tz {
    bool fixed;
    int32_t off;          /* fixed: the offset; zone: before the first transition */
    struct tz_trans *tr;  /* ascending */
    size_t ntr;
    bool has_rule;        /* the TZif footer: times after the last transition */
    struct posix_rule rule;
};

/* Day of year (0-based) of a rule date in year y. */
static int64_t rule_yday(const struct rule_date *r, int64_t y)
{
    if (r->kind == 'J')
        return r->n - 1 + (is_leap(y) && r->n >= 60);
    if (r->kind == 'D')
        return r->n;
    int64_t first = civil_days_from(y, r->m, 1);
    int dow1 = (int)((first % 7 + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
    int day = 1 + (r->d - dow1 + 7) % 7 + (r->w - 1) * 7;
    while (day > days_in_month(y, r->m))
        day -= 7;
    return first - civil_days_from(y, 1, 1) + day - 1;
}

/* The UTC seconds at which DST starts and ends in year y. */
static void rule_year(const struct posix_rule *p, int64_t y, int64_t *start, int64_t *end)
{
    int64_t jan1 = civil_days_from(y, 1, 1) * 86400;

    *start = jan1 + rule_yday(&p->start, y) * 86400 + p->start.secs - p->std_off;
    *end = jan1 + rule_yday(&p->end, y) * 86400 + p->end.secs - p->dst_off;
}

static int32_t rule_offset(const struct posix_rule *p, int64_t t)
{
    int64_t start, end;

    if (!p->has_dst)
        return p->std_off;
    rule_year(p, year_of(t + p->std_off), &start, &end);
    if (start < end)
        return t >= start && t < end ? p->dst_off : p->std_off;
    return t >= end && t < start ? p->std_off : p->dst_off;
}

/* The first rule transition after t: true with its time and new offset. */
static bool rule_next(const struct posix_rule *p, int64_t t, int64_t *at, int32_t *off)
{
    bool found = false;
    int64_t y0 = year_of(t);

    if (!p->has_dst)
        return false;
    for (int64_t y = y0 - 1; y <= y0 + 1; y++) {
        int64_t start, end;
        rule_year(p, y, &start, &end);
        if (start > t && (!found || start < *at)) {
            *at = start;
            *off = p->dst_off;
            found = true;
        }
        if (end > t && (!found || end < *at)) {
            *at = end;
            *off = p->std_off;
            found = true;
        }
    }
    return found;
}

static int32_t tz_offset_at(const struct dbconv_tz *tz, int64_t t)
{
    if (tz->fixed)
        return tz->off;
    if (tz->ntr == 0 || t >= tz->tr[tz->ntr - 1].at)
        return tz->has_rule ? rule_offset(&tz->rule, t)
                            : (tz->ntr > 0 ? tz->tr[tz->ntr - 1].off : tz->off);
    if (t < tz->tr[0].at)
        return tz->off;
    size_t lo = 0, hi = tz->ntr - 1; /* tr[lo].at <= t < tr[hi].at */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->tr[mid].at <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->tr[lo].off;
}

/* The first transition strictly after t. */
static bool tz_next(const struct dbconv_tz *tz, int64_t t, int64_t *at, int32_t *off)
{
    if (tz->fixed)
        return false;
    if (tz->ntr == 0 || t >= tz->tr[tz->ntr - 1].at)
        return tz->has_rule && rule_next(&tz->rule, t, at, off);
    size_t lo = 0, hi = tz->ntr - 1; /* first index with at > t */
    if (tz->tr[0].at > t)
        hi = 0;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->tr[mid].at > t)
            hi = mid;
        else
            lo = mid;
    }
    *at = tz->tr[hi].at;
    *off = tz->tr[hi].off;
    return true;
}

/* Local wall-clock seconds in zone tz → Unix seconds. As PostgreSQL does
 * it: a time that occurs twice (clocks set back) is the later instant (the
 * offset after the change); a time that does not exist (clocks set
 * forward) is read with the offset before the change. */
static int64_t tz_local_to_utc(const struct dbconv_tz *tz, int64_t local)
{
    const int64_t window = 26 * 3600; /* every UTC offset is within ±26 h */
    int64_t cur = local - window, seg_start = INT64_MIN, best = 0, gap = 0;
    int32_t off = tz_offset_at(tz, cur), next_off = 0;
    bool have_best = false, have_gap = false;

    if (tz->fixed)
        return local - tz->off;
    for (;;) {
        int64_t at = 0;
        bool more = tz_next(tz, cur, &at, &next_off) && at <= local + window;
        int64_t seg_end = more ? at : INT64_MAX;
        int64_t u = local - off;

        if (u >= seg_start && u < seg_end) {
            best = u; /* a later segment's match wins: the later instant */
            have_best = true;
        }
        if (!more)
            break;
        if (!have_gap && u >= at && local - next_off < at) {
            gap = u;
            have_gap = true;
        }
        seg_start = at;
        cur = at;
        off = next_off;
    }
    if (have_best)
        return best;
    return have_gap ? gap : local - off;
}

/* ---- TZif files (RFC 8536) ------------------------------------------------ */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* POSIX "[+-]hh[:mm[:ss]]" at s; hours up to max_h. */
static const char *posix_hms(const char *s, int max_h, int32_t *secs)
{
    int sign = 1, h = 0, m = 0, sec = 0, nd = 0;

    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    while (isdigit((unsigned char)*s) && nd < 3) {
        h = h * 10 + (*s++ - '0');
        nd++;
    }
    if (nd == 0 || h > max_h)
        return NULL;
    if (*s == ':') {
        if (!isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]))
            return NULL;
        m = (s[1] - '0') * 10 + (s[2] - '0');
        s += 3;
        if (*s == ':') {
            if (!isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]))
                return NULL;
            sec = (s[1] - '0') * 10 + (s[2] - '0');
            s += 3;
        }
    }
    if (m > 59 || sec > 59)
        return NULL;
    *secs = sign * (h * 3600 + m * 60 + sec);
    return s;
}

static const char *posix_name(const char *s)
{
    const char *p = s;

    if (*p == '<') {
        while (*p != '\0' && *p != '>')
            p++;
        return *p == '>' && p - s >= 4 ? p + 1 : NULL;
    }
    while (isalpha((unsigned char)*p))
        p++;
    return p - s >= 3 ? p : NULL;
}

static const char *posix_num(const char *s, int lo, int hi, int *out)
{
    int v = 0, nd = 0;

    while (isdigit((unsigned char)*s) && nd < 4) {
        v = v * 10 + (*s++ - '0');
        nd++;
    }
    if (nd == 0 || v < lo || v > hi)
        return NULL;
    *out = v;
    return s;
}

static const char *posix_date(const char *s, struct rule_date *r)
{
    r->secs = 7200;
    if (*s == 'J') {
        r->kind = 'J';
        s = posix_num(s + 1, 1, 365, &r->n);
    } else if (*s == 'M') {
        r->kind = 'M';
        s = posix_num(s + 1, 1, 12, &r->m);
        if (s != NULL && *s == '.')
            s = posix_num(s + 1, 1, 5, &r->w);
        else
            s = NULL;
        if (s != NULL && *s == '.')
            s = posix_num(s + 1, 0, 6, &r->d);
        else
            s = NULL;
    } else {
        r->kind = 'D';
        s = posix_num(s, 0, 365, &r->n);
    }
    if (s != NULL && *s == '/')
        s = posix_hms(s + 1, 167, &r->secs);
    return s;
}

/* The TZif footer: "STD offset [DST [offset] [,start[/time],end[/time]]]". */
static bool posix_parse(const char *s, struct posix_rule *p)
{
    int32_t v;

    memset(p, 0, sizeof(*p));
    if ((s = posix_name(s)) == NULL || (s = posix_hms(s, 24, &v)) == NULL)
        return false;
    p->std_off = -v;
    if (*s == '\0')
        return true;
    if ((s = posix_name(s)) == NULL)
        return false;
    p->has_dst = true;
    p->dst_off = p->std_off + 3600;
    if (*s != ',' && *s != '\0') {
        if ((s = posix_hms(s, 24, &v)) == NULL)
            return false;
        p->dst_off = -v;
    }
    if (*s == '\0') { /* no rule given: POSIX's default, the US rule */
        p->start = (struct rule_date){'M', 0, 3, 2, 0, 7200};
        p->end = (struct rule_date){'M', 0, 11, 1, 0, 7200};
        return true;
    }
    if (*s != ',' || (s = posix_date(s + 1, &p->start)) == NULL || *s != ',' ||
        (s = posix_date(s + 1, &p->end)) == NULL)
        return false;
    return *s == '\0';
}

/* Parse a TZif (version 2 or later) file into tz; false when malformed. */
static bool tzif_parse(const unsigned char *b, size_t n, struct dbconv_tz *tz)
{
    size_t pos;
    uint32_t c[6]; /* isutcnt isstdcnt leapcnt timecnt typecnt charcnt */

    if (n < 44 || memcmp(b, "TZif", 4) != 0 || b[4] < '2')
        return false;
    for (int k = 0; k < 6; k++)
        c[k] = be32(b + 20 + 4 * k);
    pos = 44 + (size_t)c[3] * 5 + (size_t)c[4] * 6 + c[5] + (size_t)c[2] * 8 + c[1] + c[0];
    if (pos + 44 > n || memcmp(b + pos, "TZif", 4) != 0)
        return false;
    for (int k = 0; k < 6; k++)
        c[k] = be32(b + pos + 20 + 4 * k);
    pos += 44;
    size_t times = pos, idx = times + (size_t)c[3] * 8, types = idx + c[3];
    size_t end = types + (size_t)c[4] * 6 + c[5] + (size_t)c[2] * 12 + c[1] + c[0];
    if (c[4] == 0 || c[2] != 0 || end > n) /* leap-second ("right/") zones: no */
        return false;
    tz->off = (int32_t)be32(b + types);
    tz->tr = c[3] > 0 ? xmalloc(sizeof(*tz->tr) * c[3]) : NULL;
    tz->ntr = c[3];
    for (uint32_t k = 0; k < c[3]; k++) {
        if (b[idx + k] >= c[4])
            return false;
        tz->tr[k].at = be64(b + times + 8 * (size_t)k);
        tz->tr[k].off = (int32_t)be32(b + types + 6 * (size_t)b[idx + k]);
        if (k > 0 && tz->tr[k].at <= tz->tr[k - 1].at)
            return false;
    }
    if (end < n && b[end] == '\n') {
        const unsigned char *nl = memchr(b + end + 1, '\n', n - end - 1);
        if (nl == NULL)
            return false;
        size_t flen = (size_t)(nl - (b + end + 1));
        if (flen > 0) {
            char footer[256];
            if (flen >= sizeof(footer))
                return false;
            memcpy(footer, b + end + 1, flen);
            footer[flen] = '\0';
            if (!posix_parse(footer, &tz->rule))
                return false;
            tz->has_rule = true;
        }
    }
    return true;
}

static unsigned char *read_file(const char *path, size_t *n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    unsigned char *b = NULL;
    size_t len = 0;

    if (fd < 0)
        return NULL;
    b = xmalloc(TZIF_MAX_BYTES);
    for (;;) {
        ssize_t r = read(fd, b + len, TZIF_MAX_BYTES - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (r > 0 && len + (size_t)r == TZIF_MAX_BYTES)) {
            free(b);
            b = NULL;
            break;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    *n = len;
    return b;
}

/* "±HH:MM", "±HHMM", "±HH" (whole string): seconds east of UTC. */
static bool parse_fixed_offset(const char *s, int32_t *off)
{
    size_t n = strlen(s);
    int h, m = 0;

    if (n < 3 || (s[0] != '+' && s[0] != '-') || !isdigit((unsigned char)s[1]) ||
        !isdigit((unsigned char)s[2]))
        return false;
    h = (s[1] - '0') * 10 + (s[2] - '0');
    if (n == 6 && s[3] == ':' && isdigit((unsigned char)s[4]) && isdigit((unsigned char)s[5]))
        m = (s[4] - '0') * 10 + (s[5] - '0');
    else if (n == 5 && isdigit((unsigned char)s[3]) && isdigit((unsigned char)s[4]))
        m = (s[3] - '0') * 10 + (s[4] - '0');
    else if (n != 3)
        return false;
    if (h > 23 || m > 59)
        return false;
    *off = (s[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
    return true;
}

/* An IANA name: letters, digits, '_', '-', '+', '/' between parts; no
 * "..", no leading '/'. */
static bool zone_name_ok(const char *s)
{
    if (s[0] == '\0' || s[0] == '/' || s[0] == '.' || strlen(s) > 200 || strstr(s, "..") != NULL)
        return false;
    for (const char *p = s; *p != '\0'; p++)
        if (!isalnum((unsigned char)*p) && strchr("_-+/.", *p) == NULL)
            return false;
    return true;
}

struct dbconv_tz *dbconv_tz_open(const char *zone, char *err, size_t errlen)
{
    struct dbconv_tz *tz = xcalloc(1, sizeof(*tz));
    unsigned char *b = NULL;
    size_t n = 0;
    char path[512];

    if (strcasecmp(zone, "UTC") == 0 || strcasecmp(zone, "Z") == 0) {
        tz->fixed = true;
        return tz;
    }
    if (parse_fixed_offset(zone, &tz->off)) {
        tz->fixed = true;
        return tz;
    }
    if (!zone_name_ok(zone))
        goto bad;
    snprintf(path, sizeof(path), "%s/%s", ZONEINFO_DIR, zone);
    if ((b = read_file(path, &n)) == NULL || !tzif_parse(b, n, tz))
        goto bad;
    free(b);
    return tz;
bad:
    free(b);
    dbconv_tz_close(tz);
    snprintf(err, errlen,
             "--source-timezone \"%.80s\": not UTC, ±HH:MM or a time zone under %s "
             "(e.g. Europe/Berlin)",
             zone, ZONEINFO_DIR);
    return NULL;
}

void dbconv_tz_close(struct dbconv_tz *tz)
{
    if (tz == NULL)
        return;
    free(tz->tr);
    free(tz);
}

/* ---- values -------------------------------------------------------------- */

static void why_set(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void why_set(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (whylen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

static bool is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void trim(const unsigned char **p, size_t *n)
{
    while (*n > 0 && is_blank(**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && is_blank((*p)[*n - 1]))
        (*n)--;
}

static bool eq_nocase(const unsigned char *p, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp((const char *)p, word, n) == 0;
}

static int conv_bool(const struct dbraw *in, struct dbval *out)
{
    const unsigned char *p = in->p;
    size_t n = in->len;

    switch (in->kind) {
    case DBRAW_INT:
        if (in->i != 0 && in->i != 1)
            return -1;
        out->i = in->i;
        return 0;
    case DBRAW_REAL:
        if (in->r != 0.0 && in->r != 1.0)
            return -1;
        out->i = in->r == 1.0;
        return 0;
    case DBRAW_TEXT:
        trim(&p, &n);
        if (eq_nocase(p, n, "1") || eq_nocase(p, n, "t") || eq_nocase(p, n, "true"))
            out->i = 1;
        else if (eq_nocase(p, n, "0") || eq_nocase(p, n, "f") || eq_nocase(p, n, "false"))
            out->i = 0;
        else
            return -1;
        return 0;
    default:
        return -1;
    }
}

/* A decimal number "[+-]digits[.digits]" (whole text) as epoch ms: seconds,
 * or milliseconds when its magnitude is >= 1e11; fractions below the
 * millisecond are dropped toward the past. */
static bool decimal_epoch_ms(const unsigned char *p, size_t n, int64_t *ms)
{
    size_t i = 0;
    bool neg = false, more = false;
    int64_t ip = 0, frac = 0;
    int nfrac = 0, nint = 0;

    if (i < n && (p[i] == '+' || p[i] == '-'))
        neg = p[i++] == '-';
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++, nint++) {
        if (ip > (INT64_MAX - 9) / 10)
            return false;
        ip = ip * 10 + (p[i] - '0');
    }
    if (nint == 0)
        return false;
    bool as_ms = ip >= EPOCH_MS_THRESHOLD;
    int want = as_ms ? 0 : 3;
    if (i < n && p[i] == '.') {
        if (i + 1 == n)
            return false; /* "12." */
        for (i++; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
            if (nfrac < want) {
                frac = frac * 10 + (p[i] - '0');
                nfrac++;
            } else if (p[i] != '0') {
                more = true;
            }
        }
    }
    if (i != n)
        return false;
    for (; nfrac < want; nfrac++)
        frac *= 10;
    if (!as_ms && ip > INT64_MAX / 1000 - 1)
        return false;
    int64_t v = as_ms ? ip : ip * 1000 + frac;
    if (neg)
        v = -v - (more ? 1 : 0);
    *ms = v;
    return true;
}

/* Without libm: |r| < 1e18. */
static double dabs(double r)
{
    return r < 0 ? -r : r;
}

static int64_t round_i64(double r)
{
    return (int64_t)(r < 0 ? r - 0.5 : r + 0.5);
}

static bool real_epoch_ms(double r, int64_t *ms)
{
    if (!isfinite(r) || dabs(r) > 1e15)
        return false;
    /* Round to microseconds first, so 1.001 is not 1.000999.. */
    if (dabs(r) >= (double)EPOCH_MS_THRESHOLD)
        *ms = civil_floor_div(round_i64(r * 1000.0), 1000);
    else
        *ms = civil_floor_div(round_i64(r * 1e6), 1000);
    return true;
}

static bool digits_at(const unsigned char *p, size_t n, size_t i, int k, int *out)
{
    int v = 0;

    if (i + (size_t)k > n)
        return false;
    for (int j = 0; j < k; j++) {
        unsigned char c = p[i + (size_t)j];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
}

/* "Z", "±HH", "±HHMM", "±HH:MM" (and ":SS", as PostgreSQL prints historic
 * offsets) from p[i] to the end: seconds east of UTC. */
static bool text_offset(const unsigned char *p, size_t n, size_t i, int32_t *off)
{
    int h, m = 0, s = 0;
    int sign;

    if (p[i] == 'Z' || p[i] == 'z') {
        *off = 0;
        return i + 1 == n;
    }
    if (p[i] != '+' && p[i] != '-')
        return false;
    sign = p[i++] == '-' ? -1 : 1;
    if (!digits_at(p, n, i, 2, &h))
        return false;
    i += 2;
    if (i < n) {
        bool colon = p[i] == ':';
        if (!digits_at(p, n, i + colon, 2, &m))
            return false;
        i += colon + 2;
        if (i < n) {
            if (!colon || p[i] != ':' || !digits_at(p, n, i + 1, 2, &s))
                return false;
            i += 3;
        }
    }
    if (i != n || h > 23 || m > 59 || s > 59)
        return false;
    *off = sign * (h * 3600 + m * 60 + s);
    return true;
}

enum ts_err { TS_OK, TS_SYNTAX, TS_IMPOSSIBLE, TS_RANGE };

/* "YYYY-MM-DD[( |T)HH:MM[:SS[.frac]]][offset]" (whole text). */
static enum ts_err text_ts(const unsigned char *p, size_t n, const struct dbconv_tz *tz,
                           int64_t *ms)
{
    int y, mo, d, h = 0, mi = 0, s = 0, frac = 0;
    size_t i = 10;
    int32_t off = 0;
    bool naive = true;

    if (!digits_at(p, n, 0, 4, &y) || n < 10 || p[4] != '-' || !digits_at(p, n, 5, 2, &mo) ||
        p[7] != '-' || !digits_at(p, n, 8, 2, &d))
        return TS_SYNTAX;
    if (i < n && (p[i] == ' ' || p[i] == 'T' || p[i] == 't')) {
        if (!digits_at(p, n, i + 1, 2, &h) || i + 3 >= n || p[i + 3] != ':' ||
            !digits_at(p, n, i + 4, 2, &mi))
            return TS_SYNTAX;
        i += 6;
        if (i < n && p[i] == ':') {
            if (!digits_at(p, n, i + 1, 2, &s))
                return TS_SYNTAX;
            i += 3;
            if (i < n && p[i] == '.') {
                int nd = 0;
                for (i++; i < n && p[i] >= '0' && p[i] <= '9'; i++, nd++)
                    if (nd < 3)
                        frac = frac * 10 + (p[i] - '0');
                if (nd == 0)
                    return TS_SYNTAX;
                for (; nd < 3; nd++)
                    frac *= 10;
            }
        }
    }
    if (i < n) {
        if (!text_offset(p, n, i, &off))
            return TS_SYNTAX;
        naive = false;
    }
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        s > 59)
        return TS_IMPOSSIBLE;
    int64_t local = civil_days_from(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    int64_t utc = naive ? (tz != NULL ? tz_local_to_utc(tz, local) : local) : local - off;
    *ms = utc * 1000 + frac;
    return TS_OK;
}

static int conv_ts(const struct dbraw *in, const struct dbconv_tz *tz, struct dbval *out,
                   char *why, size_t whylen)
{
    const unsigned char *p = in->p;
    size_t n = in->len;
    int64_t ms = 0;
    bool ok;

    switch (in->kind) {
    case DBRAW_INT:
        ok = in->i > -INT64_C(1000000000000000) && in->i < INT64_C(1000000000000000);
        ms = in->i >= EPOCH_MS_THRESHOLD || in->i <= -EPOCH_MS_THRESHOLD ? in->i : in->i * 1000;
        break;
    case DBRAW_REAL:
        ok = real_epoch_ms(in->r, &ms);
        break;
    case DBRAW_TEXT:
        trim(&p, &n);
        if (n >= 5 && isdigit(p[0]) && isdigit(p[1]) && isdigit(p[2]) && isdigit(p[3]) &&
            p[4] == '-') {
            enum ts_err e = text_ts(p, n, tz, &ms);
            if (e == TS_IMPOSSIBLE) {
                why_set(why, whylen, "not a timestamp (no such date or time)");
                return -1;
            }
            ok = e == TS_OK;
        } else {
            ok = decimal_epoch_ms(p, n, &ms);
        }
        break;
    default:
        ok = false;
    }
    if (!ok) {
        why_set(why, whylen, "not a timestamp");
        return -1;
    }
    if (ms < MS_MIN || ms > MS_MAX) {
        why_set(why, whylen, "timestamp outside the years 0001..9999");
        return -1;
    }
    out->i = ms;
    return 0;
}

/* Already canonical (the current layout's ids): the common case, copied. */
static bool canonical_uuid(const unsigned char *p, size_t n)
{
    if (n != DBROW_UUID_LEN)
        return false;
    for (size_t i = 0; i < DBROW_UUID_LEN; i++) {
        unsigned char c = p[i];
        bool ok = i == 8 || i == 13 || i == 18 || i == 23 ? c == '-'
                                                          : (c >= '0' && c <= '9') ||
                                                                (c >= 'a' && c <= 'f');
        if (!ok)
            return false;
    }
    return true;
}

static int conv_uuid(const struct dbraw *in, struct dbval *out)
{
    if (in->kind == DBRAW_TEXT && canonical_uuid(in->p, in->len)) {
        memcpy(out->uuid, in->p, DBROW_UUID_LEN);
        out->uuid[DBROW_UUID_LEN] = '\0';
        return 0;
    }
    if (in->kind == DBRAW_TEXT)
        return uuid_parse((const char *)in->p, in->len, out->uuid) ? 0 : -1;
    if (in->kind != DBRAW_BLOB || in->len != 16)
        return -1;
    uuid_format(in->p, out->uuid);
    return 0;
}

/* A number as SQLite shows it as text ("123", "1.5", "100.0"), into
 * out->uuid (the only storage a dbval has); s points there. */
static void number_text(const struct dbraw *in, struct dbval *out)
{
    int n;

    if (in->kind == DBRAW_INT) {
        n = snprintf(out->uuid, sizeof(out->uuid), "%" PRId64, in->i);
    } else {
        n = snprintf(out->uuid, sizeof(out->uuid), "%.15g", in->r);
        if (isfinite(in->r) && strpbrk(out->uuid, ".e") == NULL && n + 2 < (int)sizeof(out->uuid)) {
            memcpy(out->uuid + n, ".0", 3);
            n += 2;
        }
    }
    out->s = out->uuid;
    out->len = (size_t)n;
}

static bool all_ascii(const unsigned char *p, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (p[k] >= 0x80)
            return false;
    return true;
}

static int conv_text(const struct dbraw *in, const struct dbcol *c, struct dbval *out,
                     char *why, size_t whylen)
{
    size_t chars;

    if (in->kind == DBRAW_INT || in->kind == DBRAW_REAL) {
        number_text(in, out);
    } else if (in->kind == DBRAW_TEXT || in->kind == DBRAW_BLOB) {
        if (in->len > 0 && memchr(in->p, '\0', in->len) != NULL) {
            why_set(why, whylen, "contains a NUL byte");
            return -1;
        }
        out->s = (const char *)in->p;
        out->len = in->len;
    } else {
        why_set(why, whylen, "not text");
        return -1;
    }
    if (out->len == 0 && out->s == NULL)
        out->s = "";
    if (all_ascii((const unsigned char *)out->s, out->len)) {
        chars = out->len;
    } else if (!utf8_valid(out->s, out->len)) {
        why_set(why, whylen, "not valid UTF-8");
        return -1;
    } else {
        chars = utf8_count(out->s, out->len);
    }
    if (c->max > 0 && chars > (size_t)c->max) {
        why_set(why, whylen, "%s longer than %" PRId64 " characters", c->name, c->max);
        return -1;
    }
    if (chars < (size_t)c->min) {
        if (chars == 0)
            why_set(why, whylen, "%s is empty", c->name);
        else
            why_set(why, whylen, "%s shorter than %" PRId64 " characters", c->name, c->min);
        return -1;
    }
    return 0;
}

static bool text_int(const unsigned char *p, size_t n, int64_t *v)
{
    size_t i = 0;
    bool neg = false;
    uint64_t u = 0;

    trim(&p, &n);
    if (i < n && (p[i] == '+' || p[i] == '-'))
        neg = p[i++] == '-';
    if (i == n)
        return false;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9' || u > (UINT64_MAX - 9) / 10)
            return false;
        u = u * 10 + (uint64_t)(p[i] - '0');
    }
    if (u > (uint64_t)INT64_MAX)
        return false;
    *v = neg ? -(int64_t)u : (int64_t)u;
    return true;
}

static int conv_int(const struct dbraw *in, const struct dbcol *c, struct dbval *out, char *why,
                    size_t whylen)
{
    int64_t v = 0;
    bool ok;

    switch (in->kind) {
    case DBRAW_INT:
        v = in->i;
        ok = true;
        break;
    case DBRAW_REAL:
        ok = isfinite(in->r) && dabs(in->r) < 9e18 && in->r == (double)(int64_t)in->r;
        if (ok)
            v = (int64_t)in->r;
        break;
    case DBRAW_TEXT:
        ok = text_int(in->p, in->len, &v);
        break;
    default:
        ok = false;
    }
    if (!ok) {
        why_set(why, whylen, "not an integer");
        return -1;
    }
    if (v < c->min) {
        why_set(why, whylen, "%s less than %" PRId64, c->name, c->min);
        return -1;
    }
    if (v > c->max) {
        why_set(why, whylen, "%s greater than %" PRId64, c->name, c->max);
        return -1;
    }
    out->i = v;
    return 0;
}

int dbconv_value(const struct dbraw *in, const struct dbcol *c, const struct dbconv_tz *tz,
                 struct dbval *out, char *why, size_t whylen)
{
    out->null = false;
    if (in->kind == DBRAW_NULL) {
        if (!c->nullable) {
            why_set(why, whylen, "NULL in the NOT NULL column %s", c->name);
            return -1;
        }
        out->null = true;
        return 0;
    }
    switch (c->type) {
    case DBCOL_BOOL:
        if (conv_bool(in, out) < 0) {
            why_set(why, whylen, "not a boolean");
            return -1;
        }
        return 0;
    case DBCOL_TS:
        return conv_ts(in, tz, out, why, whylen);
    case DBCOL_UUID:
        if (conv_uuid(in, out) < 0) {
            why_set(why, whylen, "not a UUID");
            return -1;
        }
        return 0;
    case DBCOL_TEXT:
        return conv_text(in, c, out, why, whylen);
    case DBCOL_INT:
        return conv_int(in, c, out, why, whylen);
    }
    assert(!"dbconv_value: unknown column type");
    return -1;
}

/* ---- messages ------------------------------------------------------------ */

#define RAW_TEXT_MAX 60

void dbconv_raw_text(const struct dbraw *in, struct buf *out)
{
    static const char hexd[] = "0123456789abcdef";

    switch (in->kind) {
    case DBRAW_NULL:
        buf_append_str(out, "NULL");
        return;
    case DBRAW_INT:
        buf_append_int(out, in->i);
        return;
    case DBRAW_REAL:
        buf_printf(out, "%.17g", in->r);
        return;
    case DBRAW_BLOB:
        buf_append_str(out, "x'");
        for (size_t k = 0; k < in->len && k < RAW_TEXT_MAX / 2; k++) {
            buf_append_char(out, hexd[in->p[k] >> 4]);
            buf_append_char(out, hexd[in->p[k] & 15]);
        }
        buf_append_str(out, in->len > RAW_TEXT_MAX / 2 ? "'..." : "'");
        return;
    case DBRAW_TEXT:
        break;
    }
    const char *s = (const char *)in->p;
    size_t k = 0;
    buf_append_char(out, '"');
    while (k < in->len && k < RAW_TEXT_MAX) {
        unsigned char ch = (unsigned char)s[k];
        uint32_t cp;
        size_t cl = ch >= 0x80 ? utf8_next(s + k, in->len - k, &cp) : 1;
        if (ch == '"' || ch == '\\') {
            buf_append_char(out, '\\');
            buf_append_char(out, (char)ch);
        } else if (ch >= 0x80 && cl > 0) {
            buf_append(out, s + k, cl);
            k += cl;
            continue;
        } else if (ch < 0x20 || ch == 0x7f || ch >= 0x80) {
            buf_printf(out, "\\x%02x", ch);
        } else {
            buf_append_char(out, (char)ch);
        }
        k++;
    }
    buf_append_str(out, k < in->len ? "\"..." : "\"");
}
