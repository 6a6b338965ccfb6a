/*
 * util/log: leveled logfmt lines on stderr, one write() per line so lines
 * from several threads never interleave.
 *
 * Line shape: `time=2026-11-21T07:13:46.123Z level=info msg=listening key=value ...`
 * log_kv() values are quoted (with \" \\ \n \r \t \u00XX escapes) when they are
 * empty or contain a space, '=', '"' or a control character; `msg` is always
 * quoted. A line longer than 2 KiB is truncated. A NULL value is written as
 * "" and ends the list. Passwords in URLs must be redacted by the caller
 * (util/dburl.h gives a redacted form).
 * log_set_level() is called once at start-up, before threads start.
 */
#ifndef TODO_UTIL_LOG_H
#define TODO_UTIL_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
bool log_enabled(enum log_level level);
/* Parse "debug|info|warning|warn|error" (any case); -1 when unknown. */
int log_level_parse(const char *s);

/* Log `msg` then alternating key, value string pairs ending with NULL:
 *   log_kv(LOG_INFO, "listening", "addr", "127.0.0.1:8000", NULL); */
void log_kv(enum log_level level, const char *msg, ...) __attribute__((sentinel));
/* The same line whatever LOG_LEVEL says: for the few lines an operator must
 * always see (where the server listens, that it stopped). */
void log_kv_always(enum log_level level, const char *msg, ...) __attribute__((sentinel));

#endif
