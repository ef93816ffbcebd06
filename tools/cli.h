/* ibpdns-table: shared bits of the subcommands. */
#ifndef IBPDNS_TABLE_CLI_H
#define IBPDNS_TABLE_CLI_H

#include <jansson.h>
#include <stdbool.h>

#define CLI_MAX_JSON_INPUT (64u << 20)   /* generous; real configs are < 100 kB */

int cli_build(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_lookup(int argc, char **argv);
int cli_dump(int argc, char **argv);
int cli_verify(int argc, char **argv);
int cli_diff(int argc, char **argv);
int cli_map(int argc, char **argv);

/* One line on stderr, exit status 1: the shape every failure takes. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_usage(void);
/* Prints j compactly (or indented) on stdout and releases it. */
void cli_print_json(json_t *j, bool indent);

#endif
