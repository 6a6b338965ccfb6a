/*
 * cli/serve: `todo serve` — load the configuration, open the store (applying
 * pending migrations), run the HTTP workers until SIGTERM/SIGINT, close
 * everything and exit 0. Exit codes: 0 clean shutdown, 1 start-up failure
 * (bad configuration, database, port), 2 usage error. Main thread.
 */
#ifndef TODO_CLI_SERVE_H
#define TODO_CLI_SERVE_H

/* argv[0] is "serve". Returns the process exit code. */
int cli_serve_main(int argc, char **argv);

/* The usage text of `todo serve --help` (also shown by `todo --help`). */
extern const char cli_serve_usage[];

#endif
