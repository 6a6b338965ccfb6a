/*
 * main: dispatch argv[1] to a subcommand; nothing else lives here.
 * Exit codes shared by every subcommand: 0 ok, 1 failure, 2 usage error.
 */
#include <stdio.h>
#include <string.h>

#include "cli/db.h"
#include "cli/migrate.h"
#include "cli/serve.h"
#include "config/config.h"

#ifndef TODO_VERSION
#define TODO_VERSION "dev"
#endif

static void usage(FILE *out)
{
    fputs("Usage: todo <command> [options]\n"
          "\n"
          "Commands:\n"
          "  serve      run the HTTP/JSON API server (todo serve --help)\n"
          "  migrate    versioned schema migrations (todo migrate --help)\n"
          "  db         copy and verify data between databases, back up (todo db --help)\n"
          "  version    print the version\n"
          "  help       show this help\n"
          "\n",
          out);
    fputs(config_help_text, out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return cli_serve_main(argc - 1, argv + 1);
    if (strcmp(cmd, "migrate") == 0)
        return cli_migrate_main(argc - 1, argv + 1);
    if (strcmp(cmd, "db") == 0)
        return cli_db_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("todo %s\n", TODO_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "todo: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
