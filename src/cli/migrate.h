/*
 * cli/migrate: `todo migrate status|up|down|history|new|stamp|check|wait`.
 * Parses the arguments, opens the database (migrate/mdb.h) and the
 * migrations (migrate/source.h), runs the migrate/ function that does the
 * work and prints its outcome (text, or JSON with --json). Every command
 * and its exit codes are documented in docs/migrations.md and by
 * `todo migrate <command> --help`. Main thread.
 */
#ifndef TODO_CLI_MIGRATE_H
#define TODO_CLI_MIGRATE_H

/* argv[0] is "migrate". Returns the process exit code (cli/cli.h). */
int cli_migrate_main(int argc, char **argv);

#endif
