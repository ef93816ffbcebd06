/* A network list: a partition of the 128-bit address space into aligned
 * prefixes, appended in address order, each with a 32-bit value. Adjacent
 * siblings with the same value are merged as they arrive (gdnsd's
 * "pre-normalised" nlist), so the list always holds the largest supernets.
 * Addresses are implicit: an entry starts where the previous one ended, so
 * an entry costs 5 bytes. */
#ifndef IBP_NLIST_H
#define IBP_NLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"

typedef unsigned __int128 ibp_u128_t;

typedef struct ibp_nlist {
    uint8_t *len;          /* prefix length of each entry */
    uint32_t *val;
    size_t n, cap;
    ibp_u128_t end;        /* address where the next entry starts */
    bool full;             /* the whole space is covered */
} ibp_nlist_t;

void ibp_nlist_init(ibp_nlist_t *l);
void ibp_nlist_free(ibp_nlist_t *l);

/* Appends the network that starts at l->end with prefix length plen. Fails
 * if that start is not aligned to plen or the space is already covered. */
IBP_MUST_CHECK
bool ibp_nlist_append(ibp_nlist_t *l, unsigned plen, uint32_t val, ibp_err_t *err);

/* Start address of the network of prefix length plen that follows. */
static inline bool ibp_nlist_aligned(const ibp_nlist_t *l, unsigned plen)
{
    if (plen == 0)
        return l->end == 0;
    ibp_u128_t low = ((ibp_u128_t)1 << (128 - plen)) - 1;
    return (l->end & low) == 0;
}

/* The addresses a prefix of length len covers (0: the whole space, 2^128). */
static inline ibp_u128_t ibp_nlist_block(unsigned len)
{
    return len == 0 ? 0 : (ibp_u128_t)1 << (128 - len);
}

/* Two complete lists intersected into out: every block where a's entry
 * with value va meets b's with vb gets combine(ctx, va, vb). Both lists
 * partition the space into aligned blocks, so at every step the smaller of
 * the two current blocks starts there and lies in the other. */
typedef bool (*ibp_nlist_combine_fn)(void *ctx, uint32_t va, uint32_t vb, uint32_t *out);
IBP_MUST_CHECK
bool ibp_nlist_intersect(const ibp_nlist_t *a, const ibp_nlist_t *b, ibp_nlist_combine_fn combine,
                         void *ctx, ibp_nlist_t *out, ibp_err_t *err);

/* A binary trie over a complete list, in the table's node layout: node i has
 * children nodes[2i], nodes[2i+1]; a child with IBP_TBL_LEAF set is a leaf
 * whose low 31 bits are the entry's value. */
typedef struct ibp_trie {
    uint32_t *nodes;
    uint32_t node_count;
    uint32_t root;         /* a node index (0) or a leaf ref */
} ibp_trie_t;

IBP_MUST_CHECK
bool ibp_trie_build(const ibp_nlist_t *l, ibp_trie_t *out, ibp_err_t *err);
void ibp_trie_free(ibp_trie_t *t);

#endif
