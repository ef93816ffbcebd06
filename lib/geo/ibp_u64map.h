/* An open-addressing map from a nonzero 64-bit key to a 32-bit value, with
 * linear probing done by the caller (whose keys may be hashes that need a
 * deeper compare): the MaxMind walk's classes by key and the nets
 * overlay's classes by (MaxMind class, list); the world map's counts (lib/compile). */
#ifndef IBP_U64MAP_H
#define IBP_U64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct ibp_u64map {
    uint64_t *keys;        /* 0: empty */
    uint32_t *vals;
    size_t cap, n;         /* cap a power of two */
} ibp_u64map_t;

static inline size_t ibp_u64_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k;
}

/* Doubles the map (to first_cap, a power of two, when empty). */
static inline bool ibp_u64map_grow(ibp_u64map_t *m, size_t first_cap)
{
    size_t cap = m->cap ? m->cap * 2 : first_cap;
    uint64_t *keys = calloc(cap, sizeof *keys);
    uint32_t *vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return false;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = ibp_u64_hash(m->keys[i]) & (cap - 1);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    *m = (ibp_u64map_t){keys, vals, cap, m->n};
    return true;
}

static inline void ibp_u64map_free(ibp_u64map_t *m)
{
    free(m->keys);
    free(m->vals);
}

#endif
