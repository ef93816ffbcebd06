/* Shared by the fuzz targets and fuzz_mktable: where the test data is, a
 * small routing table built in-process, and the JSON parser harness. */
#ifndef IBPDNS_FUZZ_COMMON_H
#define IBPDNS_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"
#include "ibp_table_format.h"

/* MaxMind's City test database: under $IBP_SHARED if set, else under the
 * shared dir the build was configured with. */
const char *fuzz_city_mmdb(void);

/* Compiles dir/node.json (ConfigUrls relative to dir) and dir/results.json
 * if there is one, with the City test database, build time 1700000000 and
 * generation 1, indexing tries of index_min_nodes nodes or more (0: the
 * production threshold). The caller frees *table. */
bool fuzz_table_build(const char *dir, uint32_t index_min_nodes, uint8_t **table, size_t *len,
                      ibp_err_t *err);

/* Prints "fuzz: <message>" and the request/answer context, then aborts. */
__attribute__((format(printf, 1, 2), noreturn))
void fuzz_fail(const char *fmt, ...);

/* Runs one input through ibp_input_type(kind)->parse. A failed parse must
 * leave the model zeroed and say "fuzz.json: ..." on one line; a successful
 * one is handed to check (may be NULL) and then freed. */
int fuzz_json_run(enum ibp_input_kind kind, void (*check)(const void *model),
                  const uint8_t *data, size_t size);

#endif
