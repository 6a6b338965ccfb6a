#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "util/civil.h"

#define LOG_LINE_MAX 2048

static atomic_int current_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
    atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load_explicit(&current_level, memory_order_relaxed);
}

bool log_enabled(enum log_level level)
{
    return (int)level >= atomic_load_explicit(&current_level, memory_order_relaxed);
}

int log_level_parse(const char *s)
{
    static const struct {
        const char *name;
        enum log_level level;
    } names[] = {
        {"debug", LOG_DEBUG}, {"info", LOG_INFO},   {"warning", LOG_WARN},
        {"warn", LOG_WARN},   {"error", LOG_ERROR},
    };
    if (!s)
        return -1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(s, names[i].name) == 0)
            return (int)names[i].level;
    return -1;
}

/* The line under construction; the last byte is kept for the '\n'. */
struct line {
    char data[LOG_LINE_MAX];
    size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof(l->data) - 1 - l->len;
    if (n > room)
        n = room;
    memcpy(l->data + l->len, s, n);
    l->len += n;
}

static void put_str(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void put_digits(struct line *l, unsigned v, int width)
{
    char tmp[8];
    for (int i = width - 1; i >= 0; i--) {
        tmp[i] = (char)('0' + v % 10);
        v /= 10;
    }
    put(l, tmp, (size_t)width);
}

/* time=YYYY-MM-DDTHH:MM:SS.mmmZ from CLOCK_REALTIME, without gmtime_r (whose
 * time-zone lock we do not want on every access-log line). */
static void put_time(struct line *l)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t secs = ts.tv_sec;
    int64_t days = civil_floor_div(secs, 86400), rem = secs - days * 86400;
    int64_t y, m, d;
    civil_from_days(days, &y, &m, &d);

    put_str(l, "time=");
    put_digits(l, (unsigned)y, 4);
    put(l, "-", 1);
    put_digits(l, (unsigned)m, 2);
    put(l, "-", 1);
    put_digits(l, (unsigned)d, 2);
    put(l, "T", 1);
    put_digits(l, (unsigned)(rem / 3600), 2);
    put(l, ":", 1);
    put_digits(l, (unsigned)(rem / 60 % 60), 2);
    put(l, ":", 1);
    put_digits(l, (unsigned)(rem % 60), 2);
    put(l, ".", 1);
    put_digits(l, (unsigned)(ts.tv_nsec / 1000000), 3);
    put(l, "Z", 1);
}

static bool needs_quotes(const char *v)
{
    if (!*v)
        return true;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p == '=' || *p == '"' || *p == 0x7f)
            return true;
    return false;
}

static void put_quoted(struct line *l, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    put(l, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(l, esc, 2);
        } else if (c == '\n') {
            put(l, "\\n", 2);
        } else if (c == '\r') {
            put(l, "\\r", 2);
        } else if (c == '\t') {
            put(l, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
            put(l, esc, 6);
        } else {
            put(l, (const char *)p, 1);
        }
    }
    put(l, "\"", 1);
}

static void put_value(struct line *l, const char *v)
{
    if (needs_quotes(v))
        put_quoted(l, v);
    else
        put_str(l, v);
}

static void log_vkv(enum log_level level, const char *msg, va_list ap);

void log_kv(enum log_level level, const char *msg, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, msg);
    log_vkv(level, msg, ap);
    va_end(ap);
}

void log_kv_always(enum log_level level, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    log_vkv(level, msg, ap);
    va_end(ap);
}

static void log_vkv(enum log_level level, const char *msg, va_list ap)
{
    struct line l = {.len = 0};
    int li = (int)level;
    if (li < LOG_DEBUG || li > LOG_ERROR)
        li = LOG_ERROR;

    put_time(&l);
    put_str(&l, " level=");
    put_str(&l, level_names[li]);
    put_str(&l, " msg=");
    put_value(&l, msg ? msg : "");

    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key)
            break;
        const char *value = va_arg(ap, const char *);
        put(&l, " ", 1);
        put_str(&l, key);
        put(&l, "=", 1);
        if (!value) { /* also ends the list: reading on could pass the sentinel */
            put(&l, "\"\"", 2);
            break;
        }
        put_value(&l, value);
    }

    l.data[l.len++] = '\n';
    const char *p = l.data;
    size_t left = l.len;
    while (left > 0) {
        ssize_t n = write(STDERR_FILENO, p, left);
        if (n <= 0)
            break; /* EINTR on a blocking stderr is unlikely; drop the rest */
        p += n;
        left -= (size_t)n;
    }
}
