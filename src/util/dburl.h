/*
 * util/dburl: DATABASE_URL parsing and password redaction.
 *
 * Accepted spellings
 *   sqlite:///relative.db            → path "relative.db"
 *   sqlite:////absolute/path.db      → path "/absolute/path.db"
 *   sqlite+aiosqlite:///...          → the old Python app's spelling, same meaning
 *   postgresql://... postgres://... postgresql+asyncpg://...  → kind POSTGRES
 *     (the whole URL is kept in `conninfo`, driver suffix removed;
 *      the PostgreSQL issue refines the query parameters)
 * Schemes compare case-insensitively. A SQLite path is percent-decoded
 * (%20 → space; %00 and bad escapes are errors); a `?query` or `#fragment`
 * on a SQLite URL is an error (none is supported yet), and so is a host
 * (`sqlite://host/x`: the message says to use three slashes).
 *
 * Redaction replaces the password of `user:password@` and the value of any
 * `password=` parameter with "***"; when unsure where the user part ends
 * it over-redacts rather than leak.
 *
 * Pure; any thread. dburl_parse() fills `out` (free with dburl_free; NULL
 * and a freed struct are accepted) or returns -1 with a message in `err`
 * that starts with "DATABASE_URL", quotes only the redacted URL and never
 * contains the password.
 */
#ifndef TODO_UTIL_DBURL_H
#define TODO_UTIL_DBURL_H

#include <stddef.h>

enum dburl_kind { DBURL_SQLITE, DBURL_POSTGRES };

struct dburl {
    enum dburl_kind kind;
    char *path;     /* SQLite: the file path; NULL otherwise */
    char *conninfo; /* PostgreSQL: a libpq URI (driver suffix removed); NULL otherwise */
    char *redacted; /* the URL with any password replaced by "***", safe to log */
};

__attribute__((warn_unused_result)) int dburl_parse(const char *url, struct dburl *out, char *err,
                                                    size_t errlen);
void dburl_free(struct dburl *u);
/* A newly allocated copy of `url` with its password replaced by "***". */
char *dburl_redact(const char *url);

#endif
