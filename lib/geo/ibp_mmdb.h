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

/* A data record's place names, as Routing.Map keys them (NULL: absent).
 * Names of IBP_GEO_NAME_MAX bytes or more, or with a NUL inside, are absent
 * (no map key gdnsd would take either), in the walk and the explanation. */
#define IBP_GEO_SUBS_MAX 10
#define IBP_GEO_NAME_MAX 64
typedef struct ibp_geo_names {
    const char *continent, *country;
    const char *subs[IBP_GEO_SUBS_MAX];
    size_t n_subs;
    const char *city;
} ibp_geo_names_t;

/* Routing.Map, resolved by the compiler's callback (geo knows no JSON):
 * a record's names -> the map list that decides them (1-based), 0 for none. */
typedef uint32_t (*ibp_geo_map_fn)(const void *ctx, const ibp_geo_names_t *names);
typedef struct ibp_geo_map_list {
    const uint16_t *listed;    /* member indexes in list order */
    size_t n_listed;
} ibp_geo_map_list_t;

typedef struct ibp_geo_input {
    const char *mmdb_path;
    const ibp_site_t *sites;   /* members, sorted by key */
    size_t n_sites;
    const char (*ccs)[3];      /* countries with overrides, uppercase */
    size_t n_ccs;
    const ibp_geo_net_t *nets; /* Routing.Nets, overlaid after the walk */
    size_t n_nets;
    ibp_geo_map_fn map_rule;   /* NULL: no Routing.Map */
    const void *map_ctx;
    const ibp_geo_map_list_t *map_lists;  /* [rule - 1] */
    size_t n_map_lists;
    uint64_t fingerprint;      /* copied into the result (covers the nets and map too) */
} ibp_geo_input_t;

IBP_MUST_CHECK
bool ibp_geo_classes_build(const ibp_geo_input_t *in, ibp_geo_classes_t *out,
                           ibp_err_t *err);

/* For the explanation tools: the location MaxMind gives one address. */
typedef struct ibp_geo_point {
    bool found, located;
    double lat, lon;
    char cc[3];
    char city[IBP_GEO_NAME_MAX];
    char continent[IBP_GEO_NAME_MAX];  /* what Routing.Map keys (continent.code) */
    char subs[IBP_GEO_SUBS_MAX][IBP_GEO_NAME_MAX];   /* subdivisions[i].iso_code */
    size_t n_subs;
} ibp_geo_point_t;

typedef struct ibp_geo_locator ibp_geo_locator_t;

IBP_MUST_CHECK
bool ibp_geo_locator_open(const char *mmdb_path, ibp_geo_locator_t **out, ibp_err_t *err);
void ibp_geo_locator_close(ibp_geo_locator_t *loc);
IBP_MUST_CHECK
bool ibp_geo_locate(ibp_geo_locator_t *loc, const uint8_t addr[16], bool is_v4,
                    ibp_geo_point_t *out, ibp_err_t *err);

#endif
