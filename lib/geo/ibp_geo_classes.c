#include "ibp_geo_classes.h"

#include <stdlib.h>
#include <string.h>

#include "ibp_table_format.h"

static void free_index(ibp_geo_classes_t *c)
{
    ibp_trie_free(&c->trie);
    free(c->node_class);
    free(c->parent);
    free(c->leaf_first);
    free(c->leaf_parent);
    c->node_class = c->parent = c->leaf_first = c->leaf_parent = NULL;
}

/* Counting sort of the leaves by class: leaf_first[k] .. leaf_first[k + 1]. */
static void group_leaves(ibp_geo_classes_t *c)
{
    const uint32_t *nodes = c->trie.nodes;
    uint32_t n = c->trie.node_count;
    memset(c->leaf_first, 0, (c->n_cls + 1) * sizeof *c->leaf_first);
    for (uint32_t k = 0; k < 2 * n; k++)
        if (nodes[k] & IBP_TBL_LEAF)
            c->leaf_first[(nodes[k] & ~IBP_TBL_LEAF) + 1]++;
    for (size_t k = 0; k < c->n_cls; k++)
        c->leaf_first[k + 1] += c->leaf_first[k];
    for (uint32_t k = 0; k < 2 * n; k++)
        if (nodes[k] & IBP_TBL_LEAF)
            c->leaf_parent[c->leaf_first[nodes[k] & ~IBP_TBL_LEAF]++] = k / 2;
    for (size_t k = c->n_cls; k > 0; k--)   /* each start moved to the next class's */
        c->leaf_first[k] = c->leaf_first[k - 1];
    c->leaf_first[0] = 0;
}

bool ibp_geo_classes_index(ibp_geo_classes_t *c, ibp_err_t *err)
{
    free_index(c);
    if (!ibp_trie_build(&c->list, &c->trie, err))
        return false;
    uint32_t n = c->trie.node_count;
    for (uint32_t k = 0; k < 2 * n; k++)
        if ((c->trie.nodes[k] & IBP_TBL_LEAF) && (c->trie.nodes[k] & ~IBP_TBL_LEAF) >= c->n_cls)
            return ibp_err_set(err, "network list names class %u of %zu",
                               c->trie.nodes[k] & ~IBP_TBL_LEAF, c->n_cls);
    c->node_class = malloc((n ? n : 1) * sizeof *c->node_class);
    if (!c->node_class) {
        free_index(c);
        return ibp_err_set(err, "out of memory indexing the geo classes");
    }
    /* Children come after their parent, so a backward pass sees them first. */
    for (uint32_t i = n; i-- > 0;) {
        uint32_t left = c->trie.nodes[2 * i];
        c->node_class[i] = (left & IBP_TBL_LEAF) ? left & ~IBP_TBL_LEAF : c->node_class[left];
    }
    return true;
}

bool ibp_geo_classes_index_updates(ibp_geo_classes_t *c, ibp_err_t *err)
{
    if (c->parent)
        return true;
    uint32_t n = c->trie.node_count;
    c->parent = malloc((n ? n : 1) * sizeof *c->parent);
    c->leaf_first = malloc((c->n_cls + 1) * sizeof *c->leaf_first);
    c->leaf_parent = malloc(((size_t)n + 1) * sizeof *c->leaf_parent);
    if (!c->parent || !c->leaf_first || !c->leaf_parent) {
        free(c->parent);
        free(c->leaf_first);
        free(c->leaf_parent);
        c->parent = c->leaf_first = c->leaf_parent = NULL;
        return ibp_err_set(err, "out of memory indexing the geo classes");
    }
    if (n)
        c->parent[0] = IBP_TBL_NONE;
    for (uint32_t i = 0; i < n; i++)
        for (unsigned s = 0; s < 2; s++)
            if (!(c->trie.nodes[2 * i + s] & IBP_TBL_LEAF))
                c->parent[c->trie.nodes[2 * i + s]] = i;
    group_leaves(c);
    return true;
}

bool ibp_geo_classes_room(ibp_geo_classes_t *c, size_t *cap, const char *what, ibp_err_t *err)
{
    size_t n = c->n_members ? c->n_members : 1;
    if (c->n_cls + 1 >= IBP_GEO_NO_NET / n || c->n_cls + 1 >= IBP_TBL_LEAF)
        return ibp_err_set(err, "%s: too many classes", what);
    if (c->n_cls < *cap)
        return true;
    size_t grown = 2 * c->n_cls + 16;
    ibp_geo_class_t *cls = realloc(c->cls, grown * sizeof *cls);
    if (!cls)
        return ibp_err_set(err, "out of memory");
    c->cls = cls;
    uint16_t *orders = realloc(c->orders, grown * n * sizeof *orders);
    if (!orders)
        return ibp_err_set(err, "out of memory");
    c->orders = orders;
    *cap = grown;
    return true;
}

void ibp_geo_classes_free(ibp_geo_classes_t *c)
{
    free_index(c);
    ibp_nlist_free(&c->list);
    free(c->cls);
    free(c->orders);
    memset(c, 0, sizeof *c);
}
