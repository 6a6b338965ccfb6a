/*
 * cli/db: `todo db copy | verify | backup` — the command line over
 * dbtool/ (option parsing, --help, the summary table or --json, exit
 * codes). Exit codes: copy and backup 0 done, 1 failed (nothing written),
 * 2 usage error (backup of a PostgreSQL URL: prints the pg_dump command and
 * exits 2); verify 0 identical, 1 different, 2 error or usage error.
 * Main thread; blocking.
 */
#ifndef TODO_CLI_DB_H
#define TODO_CLI_DB_H

/* argv[0] is "db". */
int cli_db_main(int argc, char **argv);

#endif
