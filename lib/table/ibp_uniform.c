/* Uniform bits of many maps in one walk of the geo trie. Per node, the
 * common answer of every map is the element-wise "equal or mixed" of its
 * two children's vectors, and a leaf's vector is its class's row of a
 * class-major copy of the choices: sequential work on short vectors instead
 * of one pass per map with a random access per node. */
#include <stdlib.h>
#include <string.h>

#include "ibp_table.h"

typedef struct uniform_walk {
    const uint32_t *nodes;
    const uint32_t *rows;      /* n_classes x n_maps */
    size_t n_maps;
    uint32_t *frames;          /* 2 vectors per depth */
    uint64_t *groups;          /* per 64 nodes, n_maps words: one node's bits are adjacent */
} uniform_walk_t;

static const uint32_t *child_vector(uniform_walk_t *w, uint32_t ref, unsigned depth, unsigned c);

/* Fills out (n_maps entries) with node's common answers and sets its bits. */
static void combine(const uint32_t *restrict v0, const uint32_t *restrict v1,
                    uint32_t *restrict out, uint64_t *restrict group, unsigned shift, size_t n)
{
    /* Branch-free so that the compiler can vectorise it. */
    for (size_t m = 0; m < n; m++) {
        uint32_t same = v0[m] == v1[m] && v0[m] != IBP_TBL_NONE;
        out[m] = same ? v0[m] : IBP_TBL_NONE;
        group[m] |= (uint64_t)same << shift;
    }
}

static void node_vector(uniform_walk_t *w, uint32_t node, unsigned depth, uint32_t *out)
{
    const uint32_t *v0 = child_vector(w, w->nodes[2 * node], depth + 1, 0);
    const uint32_t *v1 = child_vector(w, w->nodes[2 * node + 1], depth + 1, 1);
    combine(v0, v1, out, w->groups + (size_t)(node >> 6) * w->n_maps, node & 63, w->n_maps);
}

static const uint32_t *child_vector(uniform_walk_t *w, uint32_t ref, unsigned depth, unsigned c)
{
    if (ref & IBP_TBL_LEAF)
        return w->rows + (size_t)(ref & ~IBP_TBL_LEAF) * w->n_maps;
    uint32_t *out = w->frames + (2 * (size_t)depth + c) * w->n_maps;
    node_vector(w, ref, depth, out);
    return out;
}

bool ibp_uniform_compute(const uint32_t *nodes, uint32_t n_nodes, uint32_t n_classes,
                         const uint32_t *const *choices, size_t n_maps, uint64_t *const *words,
                         ibp_err_t *err)
{
    for (size_t m = 0; m < n_maps; m++)
        memset(words[m], 0, IBP_UNIFORM_WORDS(n_nodes) * sizeof *words[m]);
    if (n_nodes == 0 || n_maps == 0)
        return true;
    uint32_t *rows = malloc((size_t)n_classes * n_maps * sizeof *rows);
    uint32_t *frames = malloc((2 * 130) * n_maps * sizeof *frames);
    size_t n_groups = IBP_UNIFORM_WORDS(n_nodes);
    uint64_t *groups = calloc(n_groups * n_maps, sizeof *groups);
    if (!rows || !frames || !groups) {
        free(rows);
        free(frames);
        free(groups);
        return ibp_err_set(err, "out of memory computing uniform bits");
    }
    for (size_t m = 0; m < n_maps; m++)
        for (uint32_t k = 0; k < n_classes; k++)
            rows[(size_t)k * n_maps + m] = choices[m][k];
    uniform_walk_t w = {.nodes = nodes, .rows = rows, .n_maps = n_maps, .frames = frames,
                        .groups = groups};
    node_vector(&w, 0, 0, frames + 2 * 129 * n_maps);
    for (size_t g = 0; g < n_groups; g++)
        for (size_t m = 0; m < n_maps; m++)
            words[m][g] = groups[g * n_maps + m];
    free(rows);
    free(frames);
    free(groups);
    return true;
}
