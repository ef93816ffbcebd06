/* The per-policy layer of a table over the shared geo trie: a map gives
 * every geo class an answer index and marks the trie nodes below which the
 * answer does not change (ibp_table_format.h). Policies with equal
 * class -> answer vectors share a map, so a host's A and AAAA policies, and
 * hosts with the same candidates, cost one map. */
#ifndef IBP_MAPS_H
#define IBP_MAPS_H

#include <stdbool.h>
#include <stdint.h>

#include "ibp_err.h"
#include "ibp_geo_classes.h"
#include "ibp_table.h"
#include "ibp_table_writer.h"

typedef struct ibp_map_set ibp_map_set_t;

typedef struct ibp_map_stats {
    size_t reused;         /* maps taken unchanged from the previous table */
    size_t updated;        /* maps updated from their predecessor's */
    size_t computed;       /* maps computed from scratch */
    bool coarse;           /* the table carries a trie coarser than the geo trie */
} ibp_map_stats_t;

/* Maps over g's trie (ibp_geo_classes_index). prev, when not NULL, is the
 * previous table: if it carries the same trie, a map it has already (or the
 * map its same host and family had) is taken or updated from there instead
 * of computed again; a health change then costs what it changes. Tries of
 * index_min_nodes nodes or more get trie indexes. */
IBP_MUST_CHECK
bool ibp_map_set_new(const ibp_geo_classes_t *g, const ibp_table_t *prev,
                     uint32_t index_min_nodes, ibp_map_set_t **out, ibp_err_t *err);
/* Carry the geo trie even where a coarser one would do. */
void ibp_map_set_keep_geo_trie(ibp_map_set_t *s);
void ibp_map_set_free(ibp_map_set_t *s);

/* The map whose class -> answer vector is choices (g->n_cls entries, each
 * below answer_count), for a policy of host and family (kept by pointer). */
IBP_MUST_CHECK
bool ibp_map_set_add(ibp_map_set_t *s, const uint32_t *choices, uint32_t answer_count,
                     const char *host, unsigned family, uint32_t *map, ibp_err_t *err);

/* Writes the trie the maps are over (IBP_SEC_GEO, NODES, NODE_CLASS) and
 * every map with its uniform bits, roots and indexes: once, after the last
 * ibp_map_set_add. */
IBP_MUST_CHECK
bool ibp_map_set_write(ibp_map_set_t *s, ibp_tb_t *tb, ibp_err_t *err);

size_t ibp_map_set_count(const ibp_map_set_t *s);
ibp_map_stats_t ibp_map_set_stats(const ibp_map_set_t *s);

#endif
