/* ibpdns-table map TABLE --host NAME [--family A|AAAA] --mmdb CITY.mmdb -o MAP.svg:
 * who serves where, drawn (lib/compile/ibp_world_map.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ibp_file.h"
#include "ibp_table.h"
#include "ibp_world_map.h"

typedef struct map_args {
    const char *table, *host, *mmdb, *out;
    unsigned family;
} map_args_t;

/* 0, or the exit status of a usage error already reported. */
static int parse_args(int argc, char **argv, map_args_t *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--host") && v)
            a->host = v, i++;
        else if (!strcmp(argv[i], "--mmdb") && v)
            a->mmdb = v, i++;
        else if (!strcmp(argv[i], "-o") && v)
            a->out = v, i++;
        else if (!strcmp(argv[i], "--family") && v && (!strcmp(v, "A") || !strcmp(v, "AAAA")))
            a->family = !strcmp(v, "AAAA"), i++;
        else if (!strcmp(argv[i], "--family") && v)
            return cli_fail("map: --family: A or AAAA, not %s (usage: ibpdns-table with no "
                            "arguments)", v);
        else if (argv[i][0] != '-' && !a->table)
            a->table = argv[i];
        else
            return cli_usage();
    }
    return a->table && a->host && a->mmdb && a->out ? 0 : cli_usage();
}

/* "-" is stdout; a file is replaced whole (written beside, then renamed). */
static int write_svg(const char *path, const char *svg, size_t len)
{
    if (!strcmp(path, "-"))
        return fwrite(svg, 1, len, stdout) == len && fflush(stdout) == 0
               ? 0 : cli_fail("writing the map to stdout failed");
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return cli_fail("%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return cli_fail("%s: %s", tmp, strerror(errno));
    bool ok = ibp_write_all(fd, svg, len, -1) && fsync(fd) == 0;
    int saved = errno;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        saved = ok ? errno : saved;
        unlink(tmp);
        return cli_fail("%s: %s", path, strerror(saved));
    }
    return 0;
}

int cli_map(int argc, char **argv)
{
    map_args_t a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc;
    ibp_table_t t;
    ibp_err_t err;
    if (!ibp_table_open(a.table, &t, &err))
        return cli_fail("%s", err.msg);
    ibp_world_map_in_t in = {.table = &t, .mmdb_path = a.mmdb, .host = a.host, .family = a.family};
    char *svg = NULL;
    size_t len = 0;
    rc = ibp_world_map_svg(&in, &svg, &len, &err) ? write_svg(a.out, svg, len)
                                                   : cli_fail("%s: %s", a.table, err.msg);
    free(svg);
    ibp_table_close(&t);
    return rc;
}
