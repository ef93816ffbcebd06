/* Compiles the models, the health snapshot and the geo classes into a
 * routing table (BEHAVIOR §2-4). Pure function of its inputs: the same
 * inputs, build time and generation give the same bytes. */
#ifndef IBP_COMPILE_H
#define IBP_COMPILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"
#include "ibp_client_classes.h"
#include "ibp_health.h"
#include "ibp_maps.h"
#include "ibp_mmdb.h"
#include "ibp_model.h"
#include "ibp_table_format.h"

typedef struct ibp_input_desc {
    enum ibp_input_kind kind;
    const char *source;    /* path or URL */
    const char *detail;    /* free text, may be NULL */
    uint64_t digest_hi, digest_lo;
    uint64_t size;
} ibp_input_desc_t;

typedef struct ibp_compile_in {
    const ibp_node_config_t *config;   /* Routing settings */
    const ibp_members_t *members;
    const ibp_services_t *services;
    const ibp_statics_t *statics;
    const ibp_overrides_t *overrides;  /* the file's, possibly changed over NATS */
    const ibp_overrides_t *geo_overrides;  /* those geo was built for, NULL: overrides. Its
                                          countries must include those of overrides; a
                                          country split but without override routes as
                                          if unsplit (a builder keeps splits to apply
                                          later overrides without a walk) */
    const ibp_health_t *health;        /* NULL or not loaded: everybody online */
    const ibp_geo_classes_t *geo;      /* built from ibp_compile_geo_input() */
    const ibp_client_classes_t *clients;   /* NULL: usage has no country or ASN */
    const ibp_input_desc_t *inputs;
    size_t n_inputs;
    uint64_t build_time;               /* UTC seconds: the SOA serial */
    uint64_t generation;
    uint32_t index_min_nodes;          /* index tries of this many nodes or more;
                                          0: IBP_INDEX_MIN_NODES */
    const ibp_table_t *previous;       /* NULL, or the last table built from the same
                                          geo classes: maps are updated from it */
    bool geo_trie;                     /* carry the geo trie even where a coarser one
                                          would do (tests of the update path) */
    uint8_t *reuse;                    /* NULL, or a buffer of reuse_cap bytes nothing
                                          reads any more (the table before previous):
                                          taken over, it becomes out.table or is freed */
    size_t reuse_cap;
} ibp_compile_in_t;

/* Below this a trie is small enough to stay in the cache: an index (256 KiB
 * per family) would cost more memory than its walks save. */
#define IBP_INDEX_MIN_NODES 4096u

typedef struct ibp_compile_out {
    uint8_t *table;
    size_t table_len, table_cap;   /* table_cap: bytes allocated at table */
    char **warnings;       /* inputs that were valid but will not be served */
    size_t n_warnings;
    size_t n_policies, n_maps, n_nodes;   /* n_nodes: of the trie the table carries */
    ibp_map_stats_t maps;
} ibp_compile_out_t;

/* What the MaxMind walk needs from the model: member sites in key order,
 * the countries that have overrides and Routing.Nets with its member keys
 * resolved. The geo classes stay valid while these are unchanged (compare
 * fingerprints). Free with ibp_geo_needs_free. */
typedef struct ibp_geo_needs {
    ibp_site_t *sites;
    size_t n_sites;
    char (*ccs)[3];
    size_t n_ccs;
    ibp_geo_net_t *nets;
    size_t n_nets;
    uint16_t *listed;      /* the nets' member indexes, back to back */
    const ibp_map_t *map;  /* Routing.Map (borrowed), NULL: none */
    ibp_geo_map_list_t *map_lists;   /* [id - 1] of its lists */
    size_t n_map_lists;
    uint16_t *map_listed;  /* their member indexes, back to back */
    uint64_t fingerprint;
} ibp_geo_needs_t;

/* nets and map may be NULL. A member key the members do not have is an
 * error naming the nets' (map's) file and the entry's path. The needs
 * borrow the map: it must outlive them. */
IBP_MUST_CHECK
bool ibp_geo_needs_from_model(const ibp_members_t *m, const ibp_overrides_t *o,
                              const ibp_nets_t *nets, const ibp_map_t *map,
                              ibp_geo_needs_t *out, ibp_err_t *err);
/* The MaxMind walk's input for these needs. */
ibp_geo_input_t ibp_geo_input_of(const ibp_geo_needs_t *n, const char *mmdb_path);
void ibp_geo_needs_free(ibp_geo_needs_t *n);

IBP_MUST_CHECK
bool ibp_compile(const ibp_compile_in_t *in, ibp_compile_out_t *out, ibp_err_t *err);
void ibp_compile_out_free(ibp_compile_out_t *o);

/* Zone id as IBP computes it: CRC-32 (IEEE) of the name & 0x7FFFFFFF. */
uint32_t ibp_zone_crc(const char *name);

#endif
