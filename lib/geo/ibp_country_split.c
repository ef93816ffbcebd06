/* A country override for a country the geo classes do not split yet: the
 * split a MaxMind walk with that country among the override countries
 * would make, made from the usage client classes instead (their country per
 * network comes from the same City database's country.iso_code). A walk of
 * the full GeoLite2-City costs seconds; this is one pass over two lists. */
#include "ibp_country_split.h"

#include <stdlib.h>
#include <string.h>

#include "ibp_table_format.h"
#include "ibp_u64map.h"

/* ---- the countries' partition, from the client trie ---------------------- */

typedef struct countries {
    const ibp_client_classes_t *clients;
    uint32_t *cc_of_class;   /* per client class: 1 + index in ccs, or 0 */
    ibp_nlist_t list;        /* network -> 1 + index in ccs, or 0 */
    ibp_err_t *err;
} countries_t;

static bool country_of_classes(countries_t *x, const char (*ccs)[3], size_t n_ccs)
{
    const ibp_client_classes_t *cl = x->clients;
    x->cc_of_class = calloc(cl->n ? cl->n : 1, sizeof *x->cc_of_class);
    if (!x->cc_of_class)
        return ibp_err_set(x->err, "out of memory");
    for (size_t k = 0; k < cl->n; k++) {
        const char *t = cl->text + cl->text_off[k];
        size_t len = cl->text_off[k + 1] - cl->text_off[k];
        if (len < 2 || (len > 2 && t[2] != '\t' && t[2] != '\0'))
            continue;   /* no country: "" or an ASN only */
        for (size_t j = 0; j < n_ccs; j++)
            if (t[0] == ccs[j][0] && t[1] == ccs[j][1])
                x->cc_of_class[k] = (uint32_t)j + 1;
    }
    return true;
}

/* The trie's leaves in address order; depth is at most 128 (a trie built
 * by ibp_trie_build over a complete list). */
static bool leaves(countries_t *x, uint32_t ref, unsigned depth)
{
    const ibp_trie_t *t = &x->clients->trie;
    if (ref & IBP_TBL_LEAF) {
        uint32_t k = ref & ~IBP_TBL_LEAF;
        uint32_t v = k < x->clients->n ? x->cc_of_class[k] : 0;
        return ibp_nlist_append(&x->list, depth, v, x->err);
    }
    if (ref >= t->node_count || depth >= 128)
        return ibp_err_set(x->err, "client trie: node %u out of range", ref);
    return leaves(x, t->nodes[2 * ref], depth + 1) && leaves(x, t->nodes[2 * ref + 1], depth + 1);
}

/* ---- the split ---------------------------------------------------------- */

typedef struct split {
    ibp_geo_classes_t *out;
    const char (*ccs)[3];
    ibp_u64map_t pairs;      /* (class << 8 | country) + 1 -> class id */
    size_t cls_cap;
    ibp_err_t *err;
} split_t;

/* base's class for clients of country cc (1-based; 0: none of the new
 * ones): a class of its own, as the walk makes for an override country,
 * unless base is the IPv4 alias placeholder or already a country's. */
static bool combine(void *ctx, uint32_t base, uint32_t cc, uint32_t *id)
{
    split_t *s = ctx;
    *id = base;
    ibp_geo_classes_t *c = s->out;
    if (!cc || base == IBP_CLASS_UNDEF || base >= c->n_cls || c->cls[base].cc[0])
        return true;
    if (2 * (s->pairs.n + 1) > s->pairs.cap && !ibp_u64map_grow(&s->pairs, 256))
        return ibp_err_set(s->err, "out of memory");
    uint64_t key = ((uint64_t)base << 8 | cc) + 1;
    size_t j = ibp_u64_hash(key) & (s->pairs.cap - 1);
    for (; s->pairs.keys[j]; j = (j + 1) & (s->pairs.cap - 1))
        if (s->pairs.keys[j] == key) {
            *id = s->pairs.vals[j];
            return true;
        }
    if (!ibp_geo_classes_room(c, &s->cls_cap, "country split", s->err))
        return false;
    ibp_geo_class_t *k = &c->cls[c->n_cls];
    *k = c->cls[base];
    memcpy(k->cc, s->ccs[cc - 1], 3);
    k->order = (uint32_t)(c->n_cls * c->n_members);
    memcpy(&c->orders[k->order], &c->orders[c->cls[base].order],
           c->n_members * sizeof *c->orders);
    *id = (uint32_t)c->n_cls++;
    s->pairs.keys[j] = key;
    s->pairs.vals[j] = *id;
    s->pairs.n++;
    return true;
}

/* out: c's classes and member orders, copied, with room for more. */
static bool copy_classes(const ibp_geo_classes_t *c, ibp_geo_classes_t *out, split_t *s)
{
    memset(out, 0, sizeof *out);
    size_t n = c->n_members ? c->n_members : 1;
    s->cls_cap = c->n_cls + 16;
    out->cls = malloc(s->cls_cap * sizeof *out->cls);
    out->orders = malloc(s->cls_cap * n * sizeof *out->orders);
    if (!out->cls || !out->orders)
        return ibp_err_set(s->err, "out of memory");
    memcpy(out->cls, c->cls, c->n_cls * sizeof *out->cls);
    memcpy(out->orders, c->orders, c->n_cls * c->n_members * sizeof *out->orders);
    out->n_cls = c->n_cls;
    out->n_members = c->n_members;
    out->n_records = c->n_records;
    out->n_nodes = c->n_nodes;
    memcpy(out->db_type, c->db_type, sizeof out->db_type);
    out->build_epoch = c->build_epoch;
    ibp_nlist_init(&out->list);
    return true;
}

bool ibp_geo_classes_split_countries(const ibp_geo_classes_t *c,
                                     const ibp_client_classes_t *clients, const char (*ccs)[3],
                                     size_t n_ccs, uint64_t fingerprint, ibp_geo_classes_t *out,
                                     ibp_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (n_ccs > 255)
        return ibp_err_set(err, "%zu countries to split at once (at most 255)", n_ccs);
    if (!c->list.full || !c->list.n)
        return ibp_err_set(err, "geo classes do not cover the address space");
    countries_t x = {.clients = clients, .err = err};
    ibp_nlist_init(&x.list);
    split_t s = {.out = out, .ccs = ccs, .err = err};
    bool ok = country_of_classes(&x, ccs, n_ccs) && leaves(&x, clients->trie.root, 0) &&
              (x.list.full || ibp_err_set(err, "client trie does not cover the address space"));
    ok = ok && copy_classes(c, out, &s) &&
         ibp_nlist_intersect(&c->list, &x.list, combine, &s, &out->list, err);
    ok = ok && ibp_geo_classes_index(out, err) && ibp_geo_classes_index_updates(out, err);
    free(x.cc_of_class);
    ibp_nlist_free(&x.list);
    ibp_u64map_free(&s.pairs);
    if (!ok) {
        ibp_geo_classes_free(out);
        return false;
    }
    out->fingerprint = fingerprint;
    return true;
}
