/*
 * util/dburl: DATABASE_URL parsing and password redaction.
 *
 * Accepted spellings
 *   sqlite:///relative.db            → path "relative.db"
 *   sqlite:////absolute/path.db      → path "/absolute/path.db"
 *   sqlite+aiosqlite:///...          → the old Python app's spelling, same meaning
 *   postgresql://... postgres://... postgresql+asyncpg://...  → kind POSTGRES
 *     (the URL is kept in `conninfo` as a libpq URI, driver suffix removed).
 *     Query parameters: sslmode, sslrootcert, sslcert, sslkey,
 *     channel_binding, connect_timeout, application_name, options,
 *     target_session_attrs, and host, hostaddr, port, dbname, user,
 *     password, pass through; the old app's ssl=VALUE becomes
 *     sslmode=VALUE (true: require, false: disable). Any other name is an
 *     error naming it; so is a value libpq would refuse only when
 *     connecting (sslmode, channel_binding, target_session_attrs,
 *     connect_timeout), and ssl and sslmode that disagree. `sslmode` holds
 *     the mode asked for (NULL when the URL names none: libpq's "prefer").
 * A PostgreSQL URL whose user name or password holds an unencoded '/' (an
 * '@' after the first '/' of the host part, before any '?') is an error
 * naming the fix (%2F): libpq would read the text after the '/' as the
 * database and quote pieces of the password in its messages.
 * Schemes compare case-insensitively. A SQLite path is percent-decoded
 * (%20 → space; %00 and bad escapes are errors); a `?query` or `#fragment`
 * on a SQLite URL is an error (none is supported yet), and so is a host
 * (`sqlite://host/x`: the message says to use three slashes).
 *
 * Redaction (dburl_redact, and every text this module shows) hides a
 * superset of the passwords libpq would take from the string, each hidden
 * stretch shown as "***" (an empty password too). libpq ends the userinfo
 * at the first '@' before the first '/' after "://" (the start of the
 * string if it has no scheme); '?' and '#' do not end it. The rules:
 *  1. Userinfo: everything after the user name (which ends at the first ':'
 *     or '@') up to the LAST '@' before the first '/', so an unencoded '@'
 *     in a password is covered too. If no '@' comes before the first '/'
 *     (libpq then reads no password) but a ':' does and an '@' follows
 *     later, everything from the first ':' to the last '@' of the string
 *     is hidden: it may be a password holding an unencoded '/'.
 *     `u:p/w?x#y@h/db` → `u:***@h/db`; `h:5432/db?user=a@b` → `h:***@b`.
 *  2. Parameters: the value after any '=' whose name (the text since the
 *     previous '?', '&' or '=', or the start), percent-decoded once as libpq
 *     decodes names (%00 ends it) and without trailing white space, ends in
 *     "password" in any case: `password=`, `pass%77ord=`, `sslpassword=`,
 *     `PASSWORD =`. In a URL the value runs to the next '&' (libpq's
 *     separator; white space does not end it); in a string with no scheme
 *     (libpq's `key=value` form, which may quote spaces) to the end.
 * Both rules may over-redact odd inputs; they never show less.
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
    char *sslmode;  /* PostgreSQL: the sslmode of the URL, NULL when it names none */
    char *redacted; /* the URL with any password replaced by "***", safe to log */
};

__attribute__((warn_unused_result)) int dburl_parse(const char *url, struct dburl *out, char *err,
                                                    size_t errlen);
void dburl_free(struct dburl *u);
/* A newly allocated copy of `url` with its password replaced by "***". */
char *dburl_redact(const char *url);

#endif
