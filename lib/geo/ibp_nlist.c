#include "ibp_nlist.h"

#include <stdlib.h>
#include <string.h>

#include "ibp_table_format.h"

void ibp_nlist_init(ibp_nlist_t *l)
{
    memset(l, 0, sizeof *l);
}

void ibp_nlist_free(ibp_nlist_t *l)
{
    free(l->len);
    free(l->val);
    ibp_nlist_init(l);
}

static bool nlist_grow(ibp_nlist_t *l)
{
    size_t cap = l->cap ? l->cap * 2 : 4096;
    uint8_t *len = realloc(l->len, cap);
    if (!len)
        return false;
    l->len = len;
    uint32_t *val = realloc(l->val, cap * sizeof *val);
    if (!val)
        return false;
    l->val = val;
    l->cap = cap;
    return true;
}

static ibp_u128_t net_size(unsigned plen)
{
    return plen == 0 ? 0 : (ibp_u128_t)1 << (128 - plen);
}

/* The last entry is the right half of its parent and the one before it is
 * the left half with the same value: replace both by the parent. */
static void merge_backwards(ibp_nlist_t *l)
{
    while (l->n >= 2) {
        size_t t = l->n - 1;
        unsigned plen = l->len[t];
        if (plen == 0 || l->len[t - 1] != plen || l->val[t - 1] != l->val[t])
            return;
        ibp_u128_t start = l->end - net_size(plen);
        if (!((start >> (128 - plen)) & 1))
            return;
        l->n--;
        l->len[t - 1] = (uint8_t)(plen - 1);
    }
}

bool ibp_nlist_append(ibp_nlist_t *l, unsigned plen, uint32_t val, ibp_err_t *err)
{
    if (plen > 128)
        return ibp_err_set(err, "network prefix length %u is out of range", plen);
    if (l->full)
        return ibp_err_set(err, "network list already covers the whole address space");
    if (!ibp_nlist_aligned(l, plen))
        return ibp_err_set(err, "network of length /%u is not aligned to its start", plen);
    if (l->n == l->cap && !nlist_grow(l))
        return ibp_err_set(err, "out of memory growing a network list");
    l->len[l->n] = (uint8_t)plen;
    l->val[l->n] = val;
    l->n++;
    l->end += net_size(plen);
    if (l->end == 0)
        l->full = true;    /* wrapped around: the last network ended at 2^128 */
    merge_backwards(l);
    return true;
}

typedef struct trie_builder {
    const ibp_nlist_t *list;
    size_t next;           /* next list entry to place */
    uint32_t *nodes;
    uint32_t used, cap;
    ibp_err_t *err;
    bool failed;
} trie_builder_t;

static uint32_t builder_alloc(trie_builder_t *b)
{
    if (b->used == b->cap) {
        uint32_t cap = b->cap ? b->cap * 2 : 1024;
        uint32_t *nodes = cap < IBP_TBL_LEAF / 2
            ? realloc(b->nodes, (size_t)cap * 2 * sizeof *nodes) : NULL;
        if (!nodes) {
            b->failed = !ibp_err_set(b->err, "out of memory building a trie");
            return IBP_TBL_NONE;
        }
        b->nodes = nodes;
        b->cap = cap;
    }
    return b->used++;
}

/* Entries partition the space in order, so the subtree at `depth` is either
 * exactly the next entry (a leaf) or splits into two halves. */
static uint32_t build_at(trie_builder_t *b, unsigned depth)
{
    if (b->failed)
        return IBP_TBL_NONE;
    if (b->next >= b->list->n || b->list->len[b->next] < depth) {
        b->failed = !ibp_err_set(b->err, "network list is not a partition at depth %u", depth);
        return IBP_TBL_NONE;
    }
    if (b->list->len[b->next] == depth) {
        uint32_t val = b->list->val[b->next++];
        return IBP_TBL_LEAF | val;
    }
    uint32_t node = builder_alloc(b);
    if (node == IBP_TBL_NONE)
        return IBP_TBL_NONE;
    uint32_t left = build_at(b, depth + 1);
    uint32_t right = build_at(b, depth + 1);
    if (b->failed)
        return IBP_TBL_NONE;
    b->nodes[2 * node] = left;
    b->nodes[2 * node + 1] = right;
    return node;
}

bool ibp_trie_build(const ibp_nlist_t *l, ibp_trie_t *out, ibp_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (!l->full)
        return ibp_err_set(err, "network list does not cover the whole address space");
    for (size_t i = 0; i < l->n; i++)
        if (l->val[i] & IBP_TBL_LEAF)
            return ibp_err_set(err, "trie leaf value %u is too large", l->val[i]);
    trie_builder_t b = {.list = l, .err = err};
    uint32_t root = build_at(&b, 0);
    if (b.failed || b.next != l->n) {
        free(b.nodes);
        if (!b.failed)
            ibp_err_set(err, "network list has entries past the end of the space");
        return false;
    }
    out->nodes = b.nodes;
    out->node_count = b.used;
    out->root = root;
    return true;
}

void ibp_trie_free(ibp_trie_t *t)
{
    free(t->nodes);
    memset(t, 0, sizeof *t);
}

bool ibp_nlist_intersect(const ibp_nlist_t *a, const ibp_nlist_t *b, ibp_nlist_combine_fn combine,
                         void *ctx, ibp_nlist_t *out, ibp_err_t *err)
{
    if (!a->n || !b->n)
        return ibp_err_set(err, "network lists do not partition the space");
    size_t i = 0, j = 0;
    ibp_u128_t end_a = ibp_nlist_block(a->len[0]), end_b = ibp_nlist_block(b->len[0]);
    while (!out->full) {
        if (i >= a->n || j >= b->n)
            return ibp_err_set(err, "network lists do not partition the space");
        unsigned len = a->len[i] > b->len[j] ? a->len[i] : b->len[j];
        uint32_t id;
        if (!combine(ctx, a->val[i], b->val[j], &id) || !ibp_nlist_append(out, len, id, err))
            return false;
        if (out->full)
            break;
        if (out->end == end_a && ++i < a->n)
            end_a += ibp_nlist_block(a->len[i]);
        if (out->end == end_b && ++j < b->n)
            end_b += ibp_nlist_block(b->len[j]);
    }
    return true;
}
