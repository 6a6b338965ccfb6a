/*
 * cli/cli: what every subcommand shares — exit codes, option parsing,
 * strict value parsers, the database URL a command works on, error and
 * JSON output.
 *
 * Exit codes (every subcommand): CLI_EXIT_OK 0 success; CLI_EXIT_FAILURE 1
 * failure, or drift / pending work where a command says so; CLI_EXIT_USAGE 2
 * usage error (unknown option, missing or bad argument).
 *
 * Options: "--name value", "--name=value", and "-h"/"--help"; "--" ends the
 * options; anything else not starting with '-' is a positional argument, in
 * any order with the options. Messages go to stderr and start with
 * "todo <command>: ". Main thread only.
 */
#ifndef TODO_CLI_CLI_H
#define TODO_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,
    CLI_EXIT_USAGE = 2,
};

struct cli_opt {
    const char *name; /* long name without "--" */
    bool has_arg;
    int id;           /* passed to the callback; CLI_OPT_HELP for --help */
};

#define CLI_OPT_HELP (-1)
#define CLI_MAX_POSITIONAL 8

/* Called once per option found: 0, or -1 after printing a usage error. */
typedef int cli_opt_fn(void *ctx, int id, const char *value);

struct cli_args {
    const char *pos[CLI_MAX_POSITIONAL];
    int npos;
    bool help;
};

/* Parse argv[1..argc) (argv[0] is the command's name) against `opts`
 * (terminated by a NULL name; --help/-h is always known). 0, or
 * CLI_EXIT_USAGE after printing the reason and a pointer to --help. */
int cli_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts,
              cli_opt_fn *fn, void *ctx, struct cli_args *out);

/* The subcommand argv[1] names in a command group ("migrate", "db"):
 * `table` holds `count` structs, `stride` bytes apart, each starting with
 * its `const char *name`. True with *index set when one matched; false
 * with *exit_code set when there is nothing to run: no argument (usage on
 * stderr, CLI_EXIT_USAGE), "-h"/"--help"/"help" (usage on stdout,
 * CLI_EXIT_OK), an unknown name (CLI_EXIT_USAGE, naming it). */
bool cli_subcommand(const char *group, int argc, char **argv, const void *table, size_t count,
                    size_t stride, void (*usage)(FILE *out), size_t *index, int *exit_code);

/* Strict decimal in [min, max] (no sign but '-', no spaces or suffix). */
int cli_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);
/* A migration version: "2" and "0002" mean the same; 0 allowed. */
int cli_parse_version(const char *s, int64_t *out);
/* Seconds, integer or decimal ("60", "0.5"), in (0, max_s]: milliseconds. */
int cli_parse_seconds(const char *s, double max_s, int *ms);

/* The database a command works on: `given` (--database-url) when not NULL,
 * else MIGRATIONS_DATABASE_URL when `migrations` and it is set, else
 * DATABASE_URL as the configuration reads it (environment, .env.<APP_ENV>,
 * .env, default sqlite:///todo.db). 0 with a newly allocated URL, or -1
 * with a message. */
int cli_database_url(const char *given, bool migrations, char **url, char *err, size_t errlen);

/* "todo <cmd>: <message>" on stderr; return CLI_EXIT_FAILURE. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same plus "Try 'todo <cmd> --help'."; return CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print `j` (stolen) as indented JSON and a newline on stdout. */
void cli_print_json(json_t *j);

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" of a Unix time in ms, into buf; returns buf. */
const char *cli_time(int64_t ms, char buf[32]);

#endif
