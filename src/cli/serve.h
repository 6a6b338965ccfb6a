/*
 * cli/serve: `todo serve`.
 */
#ifndef TODO_CLI_SERVE_H
#define TODO_CLI_SERVE_H
int cli_serve_main(int argc, char **argv);
#endif
