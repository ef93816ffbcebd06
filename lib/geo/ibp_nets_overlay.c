/* Routing.Nets over the MaxMind classes (gdnsd's "merge GeoIP + nets",
 * nlist.c): the nets become a partition of their own, the most specific
 * net deciding each address, and the two partitions are intersected. Net
 * classes are keyed by (MaxMind class, list), so that neighbours with one
 * list merge in the trie as gdnsd's networks with one dclist do. */
#include "ibp_geo_classes.h"

#include <stdlib.h>
#include <string.h>

#include "ibp_table_format.h"
#include "ibp_u64map.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define NO_NET 0xFFFFFFFFu

static bool within(const ibp_geo_net_t *n, ibp_u128_t p, unsigned len)
{
    if (n->len < len)
        return false;
    ibp_u128_t mask = len ? ~(ibp_u128_t)0 << (128 - len) : 0;
    return (n->start & mask) == p;
}

typedef struct part_ctx {
    const ibp_geo_net_t *nets;
    size_t n, next;
    ibp_nlist_t *out;
    ibp_err_t *err;
} part_ctx_t;

static bool too_many(ibp_err_t *err)
{
    return ibp_err_set(err, "Routing.Nets: the nets split the address space into more than %u "
                       "networks (an IPv6 /128 alone takes about 100): use fewer or shorter "
                       "prefixes", IBP_GEO_NETWORKS_MAX);
}

/* The block p/len, whose covering net is `val`: a leaf unless a more
 * specific net lies inside it. Nets come sorted, so they are met in order
 * and the recursion is at most 128 deep. */
static bool partition(part_ctx_t *x, ibp_u128_t p, unsigned len, uint32_t val)
{
    while (x->next < x->n && x->nets[x->next].len == len && x->nets[x->next].start == p)
        val = (uint32_t)x->next++;
    if (x->next >= x->n || !within(&x->nets[x->next], p, len)) {
        if (x->out->n >= IBP_GEO_NETWORKS_MAX)   /* bounded before the memory is */
            return too_many(x->err);
        return ibp_nlist_append(x->out, len, val, x->err);
    }
    return partition(x, p, len + 1, val) &&
           partition(x, p | (ibp_u128_t)1 << (127 - len), len + 1, val);
}

static bool nets_sorted(const ibp_geo_net_t *nets, size_t n, ibp_err_t *err)
{
    for (size_t i = 0; i < n; i++) {
        if (nets[i].len > 128 || (nets[i].len < 128 &&
                                  (nets[i].start & (ibp_nlist_block(nets[i].len) - 1))))
            return ibp_err_set(err, "net %zu is not a network", i);
        if (i && (nets[i].start < nets[i - 1].start ||
                  (nets[i].start == nets[i - 1].start && nets[i].len <= nets[i - 1].len)))
            return ibp_err_set(err, "nets are not sorted or repeat a network");
    }
    return true;
}

typedef struct overlay {
    ibp_geo_classes_t *c;
    const ibp_geo_net_t *nets;
    uint32_t *list_of;     /* per net: its list's number (nets with equal lists share it) */
    ibp_u64map_t pairs;   /* (base class << 32 | list) + 1 -> class id */
    size_t cls_cap;        /* classes c->cls and c->orders have room for */
    uint8_t *seen;         /* per member, scratch */
    ibp_err_t *err;
} overlay_t;

static bool same_list(const ibp_geo_net_t *a, const ibp_geo_net_t *b)
{
    return a->n_listed == b->n_listed &&
           !memcmp(a->listed, b->listed, a->n_listed * sizeof *a->listed);
}

/* Numbers the distinct lists: a nets file of a million networks has a few
 * lists, and a class per (MaxMind class, list) is all routing needs (the
 * explanation finds the net itself). */
static bool number_lists(overlay_t *o, size_t n_nets)
{
    o->list_of = malloc((n_nets ? n_nets : 1) * sizeof *o->list_of);
    size_t cap = 16;
    while (cap < 2 * n_nets)
        cap *= 2;
    uint32_t *slot = calloc(cap, sizeof *slot);   /* net index + 1 of the list's first net */
    bool ok = o->list_of && slot;
    for (size_t i = 0; ok && i < n_nets; i++) {
        const ibp_geo_net_t *n = &o->nets[i];
        if (n->is_auto)
            continue;
        size_t j = ibp_u64_hash(XXH3_64bits(n->listed, n->n_listed * sizeof *n->listed)) & (cap - 1);
        while (slot[j] && !same_list(&o->nets[slot[j] - 1], n))
            j = (j + 1) & (cap - 1);
        if (!slot[j])
            slot[j] = (uint32_t)i + 1;
        o->list_of[i] = slot[j] - 1;   /* the list is named by its first net */
    }
    free(slot);
    return ok || ibp_err_set(o->err, "out of memory");
}

/* The net's members first, then the base's others in its order (by key
 * when it has no location: it has no distance order). */
static void net_order(overlay_t *o, uint32_t base, const ibp_geo_net_t *net, uint16_t *out,
                      uint32_t *n_listed)
{
    const ibp_geo_classes_t *c = o->c;
    size_t n = c->n_members, k = 0;
    memset(o->seen, 0, n ? n : 1);
    for (size_t i = 0; i < net->n_listed; i++)
        if (net->listed[i] < n && !o->seen[net->listed[i]]) {
            o->seen[net->listed[i]] = 1;
            out[k++] = net->listed[i];
        }
    *n_listed = (uint32_t)k;
    const uint16_t *from = c->cls[base].located ? &c->orders[c->cls[base].order] : NULL;
    for (size_t i = 0; i < n; i++) {
        uint16_t m = from ? from[i] : (uint16_t)i;
        if (!o->seen[m])
            out[k++] = m;
    }
}

static bool new_class(overlay_t *o, uint32_t base, uint32_t net, uint32_t *id)
{
    if (!ibp_geo_classes_room(o->c, &o->cls_cap, "Routing.Nets", o->err))
        return false;
    ibp_geo_classes_t *c = o->c;
    ibp_geo_class_t *k = &c->cls[c->n_cls];
    *k = c->cls[base];
    k->located = true;
    k->net = net;
    k->order = (uint32_t)(c->n_cls * c->n_members);
    net_order(o, base, &o->nets[net], &c->orders[k->order], &k->n_listed);
    *id = (uint32_t)c->n_cls++;
    return true;
}

static bool combine(void *ctx, uint32_t base, uint32_t net, uint32_t *id)
{
    overlay_t *o = ctx;
    *id = base;
    if (net == NO_NET || o->nets[net].is_auto || base == IBP_CLASS_UNDEF)
        return true;
    net = o->list_of[net];
    if (2 * (o->pairs.n + 1) > o->pairs.cap && !ibp_u64map_grow(&o->pairs, 256))
        return ibp_err_set(o->err, "out of memory");
    uint64_t key = ((uint64_t)base << 32 | net) + 1;
    size_t j = ibp_u64_hash(key) & (o->pairs.cap - 1);
    for (; o->pairs.keys[j]; j = (j + 1) & (o->pairs.cap - 1))
        if (o->pairs.keys[j] == key) {
            *id = o->pairs.vals[j];
            return true;
        }
    if (!new_class(o, base, net, id))
        return false;
    o->pairs.keys[j] = key;
    o->pairs.vals[j] = *id;
    o->pairs.n++;
    return true;
}

bool ibp_geo_nets_overlay(ibp_geo_classes_t *c, const ibp_geo_net_t *nets, size_t n_nets,
                          ibp_err_t *err)
{
    if (!n_nets)
        return true;
    if (!c->list.full)
        return ibp_err_set(err, "network list does not cover the address space");
    if (!nets_sorted(nets, n_nets, err))
        return false;
    ibp_nlist_t part, out;
    ibp_nlist_init(&part);
    ibp_nlist_init(&out);
    part_ctx_t px = {.nets = nets, .n = n_nets, .out = &part, .err = err};
    overlay_t o = {.c = c, .nets = nets, .err = err,
                   .seen = malloc(c->n_members ? c->n_members : 1)};
    bool ok = o.seen ? number_lists(&o, n_nets) : ibp_err_set(err, "out of memory");
    ok = ok && partition(&px, 0, 0, NO_NET) &&
         ibp_nlist_intersect(&c->list, &part, combine, &o, &out, err) &&
         (out.n <= IBP_GEO_NETWORKS_MAX || too_many(err));
    ibp_nlist_free(&part);
    free(o.seen);
    free(o.list_of);
    ibp_u64map_free(&o.pairs);
    if (!ok) {
        ibp_nlist_free(&out);
        return false;
    }
    ibp_nlist_free(&c->list);
    c->list = out;
    return true;
}
