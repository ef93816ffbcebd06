/* One depth-first pass over a MaxMind database's search tree (libmaxminddb's
 * node API, no per-network lookups) into a network list, with a value per
 * data record from the caller. The IPv6 ranges that alias IPv4 get `undef`
 * (their clients are looked up as IPv4), networks without data `nodata`; an
 * IPv4-only database leaves the rest of the IPv6 space to `nodata`. Walks
 * of a corrupt tree end in an error, bounded by the tree's node count. */
#ifndef IBP_MMDB_WALK_H
#define IBP_MMDB_WALK_H

#include <maxminddb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"
#include "ibp_nlist.h"

typedef bool (*ibp_mmdb_value_fn)(void *ctx, MMDB_entry_s *entry, uint32_t *value);

typedef struct ibp_mmdb_walk {
    MMDB_s *db;
    ibp_nlist_t *list;     /* filled, in address order */
    ibp_mmdb_value_fn value;
    void *ctx;
    uint32_t nodata, undef;
    size_t n_nodes;        /* out: search-tree nodes visited */
    size_t node_budget;    /* set by the walk */
    ibp_err_t *err;
} ibp_mmdb_walk_t;

IBP_MUST_CHECK
bool ibp_mmdb_walk(ibp_mmdb_walk_t *w);

/* One value at path; a missing path is not an error (has_data false), bad data is. */
IBP_MUST_CHECK
bool ibp_mmdb_get_value(MMDB_entry_s *entry, MMDB_entry_data_s *data, const char *const *path,
                        ibp_err_t *err);

/* Opens path; its database_type must contain type_word ("City", "ASN"),
 * why_type is appended to the error if not. */
IBP_MUST_CHECK
bool ibp_mmdb_open(const char *path, const char *type_word, const char *why_type, MMDB_s *db,
                   ibp_err_t *err);

#endif
