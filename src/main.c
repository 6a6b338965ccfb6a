/*
 * main: dispatch argv[1] to a subcommand; nothing else lives here.
 */
#include <stdio.h>
#include <string.h>

#include "cli/serve.h"

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return cli_serve_main(argc - 1, argv + 1);
    return cli_serve_main(argc, argv);
}
