/* One pass over a MaxMind City database's search tree (libmaxminddb's node
 * API, no per-network lookups) that reduces it to geo classes
 * (ibp_geo_classes.h); and, for the explanation tools, the location of one
 * address. */
#ifndef IBP_MMDB_H
#define IBP_MMDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"
#include "ibp_geo.h"
#include "ibp_geo_classes.h"

typedef struct ibp_geo_input {
    const char *mmdb_path;
    const ibp_site_t *sites;   /* members, sorted by key */
    size_t n_sites;
    const char (*ccs)[3];      /* countries with overrides, uppercase */
    size_t n_ccs;
    uint64_t fingerprint;      /* copied into the result */
} ibp_geo_input_t;

IBP_MUST_CHECK
bool ibp_geo_classes_build(const ibp_geo_input_t *in, ibp_geo_classes_t *out,
                           ibp_err_t *err);

/* For the explanation tools: the location MaxMind gives one address. */
typedef struct ibp_geo_point {
    bool found, located;
    double lat, lon;
    char cc[3];
    char city[64];
} ibp_geo_point_t;

typedef struct ibp_geo_locator ibp_geo_locator_t;

IBP_MUST_CHECK
bool ibp_geo_locator_open(const char *mmdb_path, ibp_geo_locator_t **out, ibp_err_t *err);
void ibp_geo_locator_close(ibp_geo_locator_t *loc);
IBP_MUST_CHECK
bool ibp_geo_locate(ibp_geo_locator_t *loc, const uint8_t addr[16], bool is_v4,
                    ibp_geo_point_t *out, ibp_err_t *err);

#endif
