/* fuzz_mktable DIR INDEX_MIN_NODES OUT: writes the table fuzz_table_build()
 * makes from DIR (tests/fuzz/make-seeds uses it for the table corpus). */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "ibp_table.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fputs("usage: fuzz_mktable DIR INDEX_MIN_NODES OUT\n", stderr);
        return 2;
    }
    uint8_t *buf;
    size_t len;
    ibp_table_t t;
    ibp_err_t err;
    if (!fuzz_table_build(argv[1], (uint32_t)strtoul(argv[2], NULL, 10), &buf, &len, &err) ||
        !ibp_table_attach(buf, len, &t, &err)) {
        fprintf(stderr, "fuzz_mktable: %s: %s\n", argv[1], err.msg);
        return 1;
    }
    FILE *f = fopen(argv[3], "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(argv[3]);
        return 1;
    }
    free(buf);
    return 0;
}
