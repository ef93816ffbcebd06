#include "ibp_maps.h"

#include <stdlib.h>
#include <string.h>

#include "ibp_table.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

/* A map as policies add it: its answers per geo class, and the host and
 * family of the first policy that used it (to find its predecessor in the
 * previous table). */
typedef struct map_ent {
    uint64_t hash;
    uint32_t *choices;     /* per geo class */
    uint32_t answer_count;
    const char *host;
    unsigned family;
} map_ent_t;

/* The trie the table will carry: the geo trie itself, or a coarser one
 * over "table classes" (geo classes with the same answer in every map). */
typedef struct carried {
    const ibp_trie_t *trie;
    const uint32_t *node_class;
    uint32_t n_classes;
    const uint32_t *table_class;   /* per geo class; NULL: the geo classes */
    const uint32_t *rep;           /* per table class: one of its geo classes */
} carried_t;

struct ibp_map_set {
    const ibp_geo_classes_t *g;
    const ibp_table_t *prev;       /* same geo trie, or NULL */
    uint32_t index_min_nodes;
    bool keep_geo_trie;
    map_ent_t *v;
    size_t n, cap;
    ibp_map_stats_t stats;
    /* for the coarse trie */
    ibp_trie_t coarse;
    uint32_t *coarse_class, *table_class, *rep;
    carried_t tr;
    /* for updating a map from its predecessor */
    uint64_t *dirty;
};

bool ibp_map_set_new(const ibp_geo_classes_t *g, const ibp_table_t *prev,
                     uint32_t index_min_nodes, ibp_map_set_t **out, ibp_err_t *err)
{
    *out = NULL;
    if (!g->node_class && g->trie.node_count)
        return ibp_err_set(err, "geo classes have no trie: index them first");
    ibp_map_set_t *s = calloc(1, sizeof *s);
    if (!s)
        return ibp_err_set(err, "out of memory");
    s->g = g;
    s->index_min_nodes = index_min_nodes;
    /* Only a table over this very trie can lend its maps. */
    if (prev && g->parent && prev->n[IBP_SEC_NODES] == g->trie.node_count &&
        prev->geo->n_classes == g->n_cls && prev->geo->root == g->trie.root &&
        !memcmp(prev->nodes, g->trie.nodes, (size_t)g->trie.node_count * 8))
        s->prev = prev;
    *out = s;
    return true;
}

void ibp_map_set_free(ibp_map_set_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].choices);
    free(s->v);
    ibp_trie_free(&s->coarse);
    free(s->coarse_class);
    free(s->table_class);
    free(s->rep);
    free(s->dirty);
    free(s);
}

void ibp_map_set_keep_geo_trie(ibp_map_set_t *s)
{
    s->keep_geo_trie = true;
}

size_t ibp_map_set_count(const ibp_map_set_t *s)
{
    return s->n;
}

ibp_map_stats_t ibp_map_set_stats(const ibp_map_set_t *s)
{
    return s->stats;
}

bool ibp_map_set_add(ibp_map_set_t *s, const uint32_t *choices, uint32_t answer_count,
                     const char *host, unsigned family, uint32_t *map, ibp_err_t *err)
{
    size_t bytes = s->g->n_cls * sizeof *choices;
    uint64_t hash = XXH3_64bits(choices, bytes);
    for (size_t i = 0; i < s->n; i++) {
        const map_ent_t *e = &s->v[i];
        if (e->hash == hash && e->answer_count == answer_count &&
            !memcmp(e->choices, choices, bytes)) {
            *map = (uint32_t)i;
            return true;
        }
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        map_ent_t *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return ibp_err_set(err, "out of memory");
        s->v = v;
        s->cap = cap;
    }
    uint32_t *copy = malloc(bytes ? bytes : 1);
    if (!copy)
        return ibp_err_set(err, "out of memory");
    memcpy(copy, choices, bytes);
    s->v[s->n] = (map_ent_t){.hash = hash, .choices = copy, .answer_count = answer_count,
                             .host = host, .family = family};
    *map = (uint32_t)s->n++;
    return true;
}

/* ---- the carried trie -------------------------------------------------- */

static bool same_row(const ibp_map_set_t *s, uint32_t a, uint32_t b)
{
    for (size_t m = 0; m < s->n; m++)
        if (s->v[m].choices[a] != s->v[m].choices[b])
            return false;
    return true;
}

static uint64_t row_hash(const ibp_map_set_t *s, uint32_t k)
{
    uint64_t h = 0x9E3779B97F4A7C15u;
    for (size_t m = 0; m < s->n; m++)
        h = (h ^ s->v[m].choices[k]) * 0xBF58476D1CE4E5B9u;
    return h ^ h >> 31;
}

/* Numbers the geo classes' rows of answers (one per map) in order of first
 * appearance; *n_rows distinct rows. */
static bool number_rows(ibp_map_set_t *s, uint32_t *n_rows, ibp_err_t *err)
{
    size_t n_cls = s->g->n_cls, slots = 1;
    while (slots < 2 * n_cls)
        slots *= 2;
    uint32_t *slot = calloc(slots, sizeof *slot);   /* geo class + 1 of the row's first */
    s->table_class = malloc((n_cls ? n_cls : 1) * sizeof *s->table_class);
    s->rep = malloc((n_cls ? n_cls : 1) * sizeof *s->rep);
    if (!slot || !s->table_class || !s->rep) {
        free(slot);
        return ibp_err_set(err, "out of memory");
    }
    uint32_t n = 0;
    for (uint32_t k = 0; k < n_cls; k++) {
        size_t h = row_hash(s, k) & (slots - 1);
        while (slot[h] && !same_row(s, slot[h] - 1, k))
            h = (h + 1) & (slots - 1);
        if (!slot[h]) {
            slot[h] = k + 1;
            s->rep[n] = k;
            s->table_class[k] = n++;
        } else {
            s->table_class[k] = s->table_class[slot[h] - 1];
        }
    }
    free(slot);
    *n_rows = n;
    return true;
}

/* Where few members tell the classes apart (the answer in every map is one
 * of a few), the geo trie is mostly splits that no map sees: carry a trie
 * over the rows instead when that halves it. Not for less: a table over the
 * geo trie keeps it from health change to health change, so the next build
 * updates its maps instead of computing them again. */
static bool choose_trie(ibp_map_set_t *s, ibp_err_t *err)
{
    const ibp_geo_classes_t *g = s->g;
    s->tr = (carried_t){.trie = &g->trie, .node_class = g->node_class,
                        .n_classes = (uint32_t)g->n_cls};
    if (s->keep_geo_trie || s->prev)
        return true;   /* the previous table carries the geo trie: keep it, update its maps */
    uint32_t n_rows = 0;
    if (!number_rows(s, &n_rows, err))
        return false;
    if (4 * (size_t)n_rows > 3 * g->n_cls)
        return true;   /* a trie over that many rows would hardly be smaller */
    ibp_nlist_t l;
    ibp_nlist_init(&l);
    bool ok = true;
    for (size_t i = 0; ok && i < g->list.n; i++)
        ok = ibp_nlist_append(&l, g->list.len[i], s->table_class[g->list.val[i]], err);
    if (ok && 2 * l.n > g->list.n) {   /* less than half saved: keep the geo trie */
        ibp_nlist_free(&l);
        return true;
    }
    ok = ok && ibp_trie_build(&l, &s->coarse, err);
    ibp_nlist_free(&l);
    if (!ok)
        return false;
    uint32_t n = s->coarse.node_count;
    s->coarse_class = malloc((n ? n : 1) * sizeof *s->coarse_class);
    if (!s->coarse_class)
        return ibp_err_set(err, "out of memory");
    for (uint32_t i = n; i-- > 0;) {
        uint32_t left = s->coarse.nodes[2 * i];
        s->coarse_class[i] = (left & IBP_TBL_LEAF) ? left & ~IBP_TBL_LEAF : s->coarse_class[left];
    }
    s->tr = (carried_t){.trie = &s->coarse, .node_class = s->coarse_class, .n_classes = n_rows,
                        .table_class = s->table_class, .rep = s->rep};
    s->stats.coarse = true;
    return true;
}

static bool write_geo(ibp_map_set_t *s, ibp_tb_t *tb, ibp_err_t *err)
{
    const carried_t *tr = &s->tr;
    uint32_t n = tr->trie->node_count;
    uint32_t geo = ibp_tb_push(tb, IBP_SEC_GEO, 1);
    /* Both outlive the table's assembly: the geo classes are the caller's,
     * the coarse trie is freed with the set, after ibp_tb_finish. */
    ibp_tb_borrow(tb, IBP_SEC_NODES, tr->trie->nodes, n);
    ibp_tb_borrow(tb, IBP_SEC_NODE_CLASS, tr->node_class, n);
    if (tb->oom)
        return ibp_err_set(err, "out of memory");
    *(ibp_tbl_geo_t *)ibp_tb_at(tb, IBP_SEC_GEO, geo) =
        (ibp_tbl_geo_t){.root = tr->trie->root, .n_classes = tr->n_classes};
    return true;
}

/* ---- maps ---------------------------------------------------------------- */

/* The predecessor of map i in the previous table: the map of the same host
 * and family. */
static const ibp_tbl_map_t *predecessor(const ibp_map_set_t *s, size_t i, uint32_t *index)
{
    const ibp_table_t *p = s->prev;
    if (!p || s->tr.table_class)
        return NULL;
    const char *host = s->v[i].host;
    const ibp_tbl_name_t *nm = host ? ibp_table_find(p, host, strlen(host)) : NULL;
    if (!nm || nm->host == IBP_TBL_NONE)
        return NULL;
    uint32_t pol = p->hosts[nm->host].policy[s->v[i].family & 1];
    if (pol == IBP_TBL_NONE)
        return NULL;
    *index = p->policies[pol].map;
    return &p->maps[*index];
}

static size_t changed_classes(const uint32_t *a, const uint32_t *b, size_t n)
{
    size_t changed = 0;
    for (size_t k = 0; k < n; k++)
        changed += a[k] != b[k];
    return changed;
}

/* Marks every node with a leaf of a class whose answer changed below it. */
static void mark_dirty(ibp_map_set_t *s, const uint32_t *now, const uint32_t *before)
{
    const ibp_geo_classes_t *g = s->g;
    for (size_t k = 0; k < g->n_cls; k++) {
        if (now[k] == before[k])
            continue;
        for (uint32_t j = g->leaf_first[k]; j < g->leaf_first[k + 1]; j++)
            for (uint32_t p = g->leaf_parent[j];
                 p != IBP_TBL_NONE && !(s->dirty[p >> 6] >> (p & 63) & 1); p = g->parent[p])
                s->dirty[p >> 6] |= 1ull << (p & 63);
    }
}

static uint32_t common_of(const ibp_map_view_t *v, uint32_t ref)
{
    if (ref & IBP_TBL_LEAF)
        return v->choices[ref & ~IBP_TBL_LEAF];
    return ibp_uniform_bit(v->uniform, ref) ? v->choices[v->node_class[ref]] : IBP_TBL_NONE;
}

/* Recomputes the uniform bit of every dirty node, children first (they have
 * higher indices). */
static void update_dirty(ibp_map_set_t *s, uint64_t *uniform, const uint32_t *choices)
{
    const ibp_geo_classes_t *g = s->g;
    ibp_map_view_t v = {.nodes = g->trie.nodes, .node_class = g->node_class,
                        .uniform = uniform, .choices = choices};
    for (size_t w = IBP_UNIFORM_WORDS(g->trie.node_count); w-- > 0;) {
        for (uint64_t d = s->dirty[w]; d; d &= ~(1ull << (63 - __builtin_clzll(d)))) {
            uint32_t k = (uint32_t)(w * 64 + 63 - (unsigned)__builtin_clzll(d));
            uint32_t a0 = common_of(&v, g->trie.nodes[2 * k]);
            uint32_t a1 = common_of(&v, g->trie.nodes[2 * k + 1]);
            uint64_t bit = 1ull << (k & 63);
            if (a0 != IBP_TBL_NONE && a0 == a1)
                uniform[w] |= bit;
            else
                uniform[w] &= ~bit;
        }
    }
}

/* The predecessor's index, updated: below a node that is not dirty, which
 * the old walk reached too (no old stop above it), the entries are the
 * old ones. */
typedef struct index_update {
    const ibp_map_view_t *v;
    const uint64_t *dirty;
    const uint64_t *old_uniform;
    const uint32_t *old;
    uint32_t *entries;
} index_update_t;

static void index_update(const index_update_t *u, uint32_t ref, unsigned depth, unsigned level,
                         uint32_t prefix, bool old_reached)
{
    unsigned free_bits = IBP_TBL_INDEX_BITS - level;
    uint32_t first = prefix << free_bits;
    if (old_reached && !(ref & IBP_TBL_LEAF) && !(u->dirty[ref >> 6] >> (ref & 63) & 1)) {
        memcpy(u->entries + first, u->old + first, (sizeof *u->entries) << free_bits);
        return;
    }
    uint32_t a = common_of(u->v, ref);
    if (a == IBP_TBL_NONE && level < IBP_TBL_INDEX_BITS) {
        bool below = old_reached && !ibp_uniform_bit(u->old_uniform, ref);
        index_update(u, u->v->nodes[2 * ref], depth + 1, level + 1, prefix << 1, below);
        index_update(u, u->v->nodes[2 * ref + 1], depth + 1, level + 1, prefix << 1 | 1, below);
        return;
    }
    uint32_t entry = a == IBP_TBL_NONE ? ref : IBP_TBL_LEAF | depth << IBP_IDX_DEPTH_SHIFT | a;
    for (uint32_t i = 0; i < 1u << free_bits; i++)
        u->entries[first + i] = entry;
}

static bool want_index(const ibp_map_set_t *s, const ibp_tbl_map_t *m)
{
    return s->tr.trie->node_count >= s->index_min_nodes &&
           m->answer_count <= IBP_IDX_ANSWER_MASK;
}

/* One index of map m: copied or updated from the predecessor's when it
 * starts at the same node, else built. */
static uint32_t push_index(ibp_map_set_t *s, ibp_tb_t *tb, uint32_t map_idx, bool v4,
                           const ibp_tbl_map_t *before, bool updated)
{
    ibp_tbl_map_t m = *(ibp_tbl_map_t *)ibp_tb_at(tb, IBP_SEC_MAPS, map_idx);
    uint32_t start = v4 ? m.v4_root : m.root;
    unsigned depth = v4 ? 96 : 0;
    if ((start & IBP_TBL_LEAF) || (v4 && m.v4_depth != 96) || !want_index(s, &m))
        return IBP_TBL_NONE;
    uint32_t first = ibp_tb_push(tb, IBP_SEC_INDEX, IBP_TBL_INDEX_SIZE);
    if (tb->oom)
        return IBP_TBL_NONE;
    ibp_map_view_t view = {.nodes = s->tr.trie->nodes, .node_class = s->tr.node_class,
                           .uniform = ibp_tb_at(tb, IBP_SEC_UNIFORM, m.uniform_first),
                           .choices = ibp_tb_at(tb, IBP_SEC_CHOICES, m.choice_first)};
    uint32_t *entries = ibp_tb_at(tb, IBP_SEC_INDEX, first);
    uint32_t before_first = !before ? IBP_TBL_NONE : v4 ? before->index_v4 : before->index_v6;
    uint32_t before_start = !before ? IBP_TBL_NONE : v4 ? before->v4_root : before->root;
    if (before_first != IBP_TBL_NONE && before_start == start) {
        const uint32_t *old = s->prev->index + before_first;
        index_update_t u = {.v = &view, .dirty = s->dirty, .old = old, .entries = entries,
                            .old_uniform = s->prev->uniform + before->uniform_first};
        if (updated)
            index_update(&u, start, depth, 0, 0, true);
        else
            memcpy(entries, old, IBP_TBL_INDEX_SIZE * sizeof *entries);
    } else {
        ibp_map_index_build(&view, start, depth, entries);
    }
    return first;
}

/* Writes map i's choices and, when the previous table has the same map or
 * its predecessor, its uniform bits from there; *pending when they remain
 * to be computed. *before: the map it came from, *updated: with changes. */
static bool write_choices(ibp_map_set_t *s, ibp_tb_t *tb, size_t i, bool *pending,
                          const ibp_tbl_map_t **before, bool *updated, ibp_err_t *err)
{
    const carried_t *tr = &s->tr;
    size_t words = IBP_UNIFORM_WORDS(tr->trie->node_count);
    ibp_tbl_map_t m = {.answer_count = s->v[i].answer_count};
    m.choice_first = ibp_tb_push(tb, IBP_SEC_CHOICES, tr->n_classes);
    m.uniform_first = ibp_tb_push(tb, IBP_SEC_UNIFORM, words);
    uint32_t idx = ibp_tb_push(tb, IBP_SEC_MAPS, 1);
    if (tb->oom)
        return ibp_err_set(err, "out of memory");
    uint32_t *ch = ibp_tb_at(tb, IBP_SEC_CHOICES, m.choice_first);
    for (uint32_t k = 0; k < tr->n_classes; k++)
        ch[k] = s->v[i].choices[tr->rep ? tr->rep[k] : k];
    *(ibp_tbl_map_t *)ibp_tb_at(tb, IBP_SEC_MAPS, idx) = m;
    *pending = true;
    *before = NULL;
    *updated = false;
    uint32_t pi;
    const ibp_tbl_map_t *pm = predecessor(s, i, &pi);
    if (!pm)
        return true;
    const uint32_t *old = s->prev->choices + pm->choice_first;
    size_t changed = changed_classes(ch, old, tr->n_classes);
    if (changed > tr->n_classes / 4)
        return true;   /* updating would touch most of the trie anyway */
    uint64_t *uni = ibp_tb_at(tb, IBP_SEC_UNIFORM, m.uniform_first);
    memcpy(uni, s->prev->uniform + pm->uniform_first, words * sizeof *uni);
    memset(s->dirty, 0, words * sizeof *s->dirty);
    if (changed) {
        mark_dirty(s, ch, old);
        update_dirty(s, uni, ch);
        s->stats.updated++;
    } else {
        s->stats.reused++;
    }
    *pending = false;
    *before = pm;
    *updated = changed > 0;
    return true;
}

/* Roots and indexes of map i, once its uniform bits are right. */
static bool finish_map(ibp_map_set_t *s, ibp_tb_t *tb, uint32_t i, const ibp_tbl_map_t *before,
                       bool updated, ibp_err_t *err)
{
    ibp_tbl_map_t *m = ibp_tb_at(tb, IBP_SEC_MAPS, i);
    ibp_map_view_t v = {.nodes = s->tr.trie->nodes, .node_class = s->tr.node_class,
                        .uniform = ibp_tb_at(tb, IBP_SEC_UNIFORM, m->uniform_first),
                        .choices = ibp_tb_at(tb, IBP_SEC_CHOICES, m->choice_first)};
    ibp_map_roots(&v, s->tr.trie->root, &m->root, &m->v4_root, &m->v4_depth);
    uint32_t v4 = push_index(s, tb, i, true, before, updated);
    if (tb->oom)
        return ibp_err_set(err, "out of memory");
    uint32_t v6 = push_index(s, tb, i, false, before, updated);
    if (tb->oom)
        return ibp_err_set(err, "out of memory");
    m = ibp_tb_at(tb, IBP_SEC_MAPS, i);   /* the sections may have moved */
    m->index_v4 = v4;
    m->index_v6 = v6;
    return true;
}

/* Maps without a predecessor to start from: all in one walk of the trie. */
static bool compute_pending(ibp_map_set_t *s, ibp_tb_t *tb, const bool *pending, ibp_err_t *err)
{
    const uint32_t **choices = calloc(s->n ? s->n : 1, sizeof *choices);
    uint64_t **words = calloc(s->n ? s->n : 1, sizeof *words);
    bool ok = choices && words;
    if (!ok)
        ibp_err_set(err, "out of memory");
    size_t n = 0;
    for (size_t i = 0; ok && i < s->n; i++) {
        if (!pending[i])
            continue;
        const ibp_tbl_map_t *m = ibp_tb_at(tb, IBP_SEC_MAPS, (uint32_t)i);
        choices[n] = ibp_tb_at(tb, IBP_SEC_CHOICES, m->choice_first);
        words[n++] = ibp_tb_at(tb, IBP_SEC_UNIFORM, m->uniform_first);
    }
    const ibp_trie_t *t = s->tr.trie;
    ok = ok && ibp_uniform_compute(t->nodes, t->node_count, s->tr.n_classes, choices, n, words,
                                   err);
    s->stats.computed += n;
    free(choices);
    free(words);
    return ok;
}

bool ibp_map_set_write(ibp_map_set_t *s, ibp_tb_t *tb, ibp_err_t *err)
{
    if (!choose_trie(s, err) || !write_geo(s, tb, err))
        return false;
    size_t words = IBP_UNIFORM_WORDS(s->g->trie.node_count);
    bool *pending = calloc(s->n ? s->n : 1, sizeof *pending);
    const ibp_tbl_map_t **before = calloc(s->n ? s->n : 1, sizeof *before);
    bool *updated = calloc(s->n ? s->n : 1, sizeof *updated);
    s->dirty = calloc(words ? words : 1, sizeof *s->dirty);
    bool ok = pending && before && updated && s->dirty;
    if (!ok)
        ibp_err_set(err, "out of memory");
    size_t n_cls = s->tr.n_classes, n_words = IBP_UNIFORM_WORDS(s->tr.trie->node_count);
    ibp_tb_reserve(tb, IBP_SEC_MAPS, s->n);
    ibp_tb_reserve(tb, IBP_SEC_CHOICES, s->n * n_cls);
    ibp_tb_reserve(tb, IBP_SEC_UNIFORM, s->n * n_words);
    if (s->tr.trie->node_count >= s->index_min_nodes)
        ibp_tb_reserve(tb, IBP_SEC_INDEX, 2 * s->n * (size_t)IBP_TBL_INDEX_SIZE);
    if (ok && tb->oom)
        ok = ibp_err_set(err, "out of memory");
    /* Indexes are updated with the dirty marks of their own map: one map
     * at a time from its predecessor, then the rest computed together. */
    for (uint32_t i = 0; ok && i < s->n; i++) {
        ok = write_choices(s, tb, i, &pending[i], &before[i], &updated[i], err);
        if (ok && !pending[i])
            ok = finish_map(s, tb, i, before[i], updated[i], err);
    }
    ok = ok && compute_pending(s, tb, pending, err);
    for (uint32_t i = 0; ok && i < s->n; i++)
        if (pending[i])
            ok = finish_map(s, tb, i, NULL, false, err);
    free(pending);
    free(before);
    free(updated);
    return ok;
}
