/* ibpdns-table: builds a routing table and answers "what would this client
 * get, and why" from it, with the coprocess's own code path. JSON on stdout,
 * one-line errors on stderr. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ibpdns-table: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_usage(void)
{
    fputs("usage: ibpdns-table build --config NODE.json [--results RESULTS.json]\n"
          "                          [--results-source SOURCE] [--mmdb CITY.mmdb]\n"
          "                          [--asn-mmdb ASN.mmdb] -o TABLE\n"
          "       ibpdns-table info TABLE\n"
          "       ibpdns-table lookup TABLE NAME IP [--type A|AAAA] [--ecs PREFIX] [--mmdb CITY.mmdb]\n"
          "       ibpdns-table lookup TABLE NAME --batch [--type A|AAAA] [--mmdb CITY.mmdb] < \"IP [PREFIX]\" lines\n"
          "       ibpdns-table dump TABLE\n"
          "       ibpdns-table verify TABLE\n"
          "       ibpdns-table diff OLD NEW [--text]\n"
          "       ibpdns-table map TABLE --host NAME [--family A|AAAA] --mmdb CITY.mmdb -o MAP.svg\n"
          "       ibpdns-table --version\n", stderr);
    return 2;
}

void cli_print_json(json_t *j, bool indent)
{
    char *s = json_dumps(j, (indent ? JSON_INDENT(2) : JSON_COMPACT) | JSON_PRESERVE_ORDER);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
    }
    free(s);
    json_decref(j);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage();
    if (!strcmp(argv[1], "--version")) {
        printf("ibpdns-table %s\n", IBPDNS_VERSION);
        return 0;
    }
    static const struct { const char *name; int (*run)(int, char **); } cmds[] = {
        {"build", cli_build}, {"info", cli_info}, {"lookup", cli_lookup},
        {"dump", cli_dump}, {"verify", cli_verify}, {"diff", cli_diff}, {"map", cli_map},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].run(argc - 1, argv + 1);
    return cli_usage();
}
