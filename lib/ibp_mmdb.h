/* One pass over a MaxMind City database's search tree (libmaxminddb's node
 * API, no per-network lookups) that reduces it to a network list whose
 * values are "geo classes": networks whose clients see the members in the
 * same distance order (and, where a country override could apply, are in
 * the same country) behave identically under every routing policy. Policies
 * are then compiled from this list without touching the database again,
 * which is what makes a health-only republish cheap. */
#ifndef IBP_MMDB_H
#define IBP_MMDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"
#include "ibp_geo.h"
#include "ibp_nlist.h"

#define IBP_GEO_MAX_MEMBERS 1024

enum {
    IBP_CLASS_NODATA = 0,  /* no record, or a record without coordinates nor a relevant country */
    IBP_CLASS_UNDEF = 1,   /* an IPv6 range that aliases IPv4: never looked up */
    IBP_CLASS_FIRST = 2,
};

typedef struct ibp_geo_class {
    bool located;
    char cc[3];            /* set only for countries that have overrides */
    uint32_t order;        /* offset of its member order in classes->orders */
    double lat, lon;       /* first location seen in this class (diagnostics) */
} ibp_geo_class_t;

typedef struct ibp_geo_classes {
    ibp_nlist_t list;      /* network -> class id */
    ibp_geo_class_t *cls;
    size_t n_cls;
    uint16_t *orders;      /* n_members entries per class */
    size_t n_members;
    size_t n_records;      /* distinct data records in the database */
    size_t n_nodes;        /* search-tree nodes visited */
    char db_type[64];
    uint64_t build_epoch;
    uint64_t fingerprint;  /* of the sites and countries it was built for */
} ibp_geo_classes_t;

typedef struct ibp_geo_input {
    const char *mmdb_path;
    const ibp_site_t *sites;   /* members, sorted by key */
    size_t n_sites;
    const char (*ccs)[3];      /* countries with overrides, uppercase */
    size_t n_ccs;
    uint64_t fingerprint;      /* copied into the result */
} ibp_geo_input_t;

bool ibp_geo_classes_build(const ibp_geo_input_t *in, ibp_geo_classes_t *out,
                           ibp_err_t *err);
void ibp_geo_classes_free(ibp_geo_classes_t *c);

/* For the explanation tools: the location MaxMind gives one address. */
typedef struct ibp_geo_point {
    bool found, located;
    double lat, lon;
    char cc[3];
    char city[64];
} ibp_geo_point_t;

typedef struct ibp_geo_locator ibp_geo_locator_t;

bool ibp_geo_locator_open(const char *mmdb_path, ibp_geo_locator_t **out, ibp_err_t *err);
void ibp_geo_locator_close(ibp_geo_locator_t *loc);
bool ibp_geo_locate(ibp_geo_locator_t *loc, const uint8_t addr[16], bool is_v4,
                    ibp_geo_point_t *out, ibp_err_t *err);

#endif
