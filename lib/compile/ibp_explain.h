/* "What would this client get, and why", as JSON: shared by `ibpdns-table
 * lookup` and the sidecar's /route so both say exactly what the coprocess
 * answers. */
#ifndef IBP_EXPLAIN_H
#define IBP_EXPLAIN_H

#include <jansson.h>
#include <stdbool.h>

#include "ibp_err.h"

#include "ibp_map.h"
#include "ibp_mmdb.h"
#include "ibp_table.h"

/* The client as the coprocess sees it: ip is the resolver (remote); ecs, if
 * non-NULL, the client subnet "addr/len". */
IBP_MUST_CHECK
bool ibp_explain_client(const char *ip, const char *ecs, ibp_client_t *c);

/* The table's Routing.Map (its JSON text), parsed once for the many
 * explanations of `lookup --batch`: a map may hold 100,000 entries. Zeroed
 * before first use; tied to the table it was first used with. */
typedef struct ibp_explain_map {
    const ibp_table_t *table;
    bool usable;               /* map holds the parse (false: a map-less table or a bad text) */
    ibp_map_t map;
} ibp_explain_map_t;

void ibp_explain_map_free(ibp_explain_map_t *m);

/* loc may be NULL (then no locations or distances). family: 0 A, 1 AAAA.
 * maps may be NULL: the map is then parsed for this explanation alone. */
IBP_MUST_CHECK
json_t *ibp_explain_lookup(const ibp_table_t *t, const char *name, unsigned family,
                           const char *ip, const char *ecs, const ibp_client_t *client,
                           ibp_geo_locator_t *loc, ibp_explain_map_t *maps);

/* Every member assigned to the host, with why it is skipped (or null). */
IBP_MUST_CHECK
json_t *ibp_explain_candidates(const ibp_table_t *t, const ibp_tbl_host_t *h, unsigned fam);

#endif
