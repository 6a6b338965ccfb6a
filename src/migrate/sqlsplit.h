/*
 * migrate/sqlsplit: split a migration file into its statements, so that the
 * runner executes them one at a time and a failure names the statement (and
 * its line), and so that a no-transaction migration sends each statement
 * alone (PostgreSQL runs a multi-statement string in an implicit
 * transaction, which CREATE INDEX CONCURRENTLY refuses).
 *
 * The lexer knows, per dialect, what may hide a ';':
 *   both        '...' ('' escapes), "..." identifiers, -- comments and
 *               block comments
 *   sqlite      [...] and `...` identifiers; a ';' inside CREATE TRIGGER ...
 *               BEGIN ... END is found by asking sqlite3_complete()
 *   postgres    nested block comments, E'...' strings with backslash escapes,
 *               $tag$...$tag$ dollar quoting
 * Not understood: PostgreSQL's SQL-standard function bodies (BEGIN ATOMIC
 * ... END); write such functions with $$ quoting (docs/migrations.md).
 *
 * Pure; any thread. An unterminated quote or comment makes the rest of the
 * text one statement (the database then reports the error).
 */
#ifndef TODO_MIGRATE_SQLSPLIT_H
#define TODO_MIGRATE_SQLSPLIT_H

#include <stddef.h>

struct sql_stmt {
    const char *text; /* into the input; starts at the statement's first token */
    size_t len;       /* up to, not including, the terminating ';' */
    int line;         /* 1-based line of text[0] in the input */
};

/* Split `sql` (NUL-terminated) for `dialect` ("sqlite", "postgres"; anything
 * else is lexed like postgres). Statements holding only comments and blank
 * space are dropped. Returns the count and an array in *out (caller frees;
 * NULL when the count is 0). */
size_t sqlsplit(const char *dialect, const char *sql, struct sql_stmt **out);

/* `s` on one line for messages: each run of blank space becomes one space,
 * and at most `max` bytes are kept (then "..."). Writes into buf, returns
 * it. */
const char *sqlsplit_excerpt(const struct sql_stmt *s, size_t max, char *buf, size_t buflen);

#endif
