/* Geo classes: a network list whose values are classes of clients that see
 * the members in the same distance order (and, where a country override
 * could apply, are in the same country), so they behave identically under
 * every routing policy. Policies are compiled from the classes without the
 * source again, which is what makes a health-only republish cheap. The
 * MaxMind walk (ibp_mmdb.h) makes them and Routing.Nets refines them
 * (ibp_geo_nets_overlay), as gdnsd's nlist merges GeoIP and nets;
 * hierarchical maps could refine them the same way. */
#ifndef IBP_GEO_CLASSES_H
#define IBP_GEO_CLASSES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_nlist.h"

#define IBP_GEO_MAX_MEMBERS 1024
/* Networks Routing.Nets may split the address space into, with MaxMind's
 * (the full GeoLite2-City has about 1.2 million): each costs a trie node,
 * in the build and in every coprocess's table. 500,000 random IPv4 /24s
 * take about 4 million; an IPv6 /128 alone about 100. */
#define IBP_GEO_NETWORKS_MAX 8000000u

enum {
    IBP_CLASS_NODATA = 0,  /* no record, or a record without coordinates nor a relevant country */
    IBP_CLASS_UNDEF = 1,   /* an IPv6 range that aliases IPv4: never looked up */
    IBP_CLASS_FIRST = 2,
};

typedef struct ibp_geo_class {
    bool located;          /* it has a member order (coordinates, or a Nets/Map list) */
    bool by_distance;      /* that order, past any list, is by distance: it had coordinates */
    char cc[3];            /* set only for countries that have overrides */
    uint32_t order;        /* offset of its member order in classes->orders */
    double lat, lon;       /* first location seen in this class (diagnostics) */
    uint32_t net;          /* a Routing.Nets class: the first net with its list, else
                              IBP_GEO_NO_NET (the explanation looks the client's net up) */
    uint32_t n_listed;     /* its order's first n_listed members are the net's list, or
                              (net IBP_GEO_NO_NET) its Routing.Map rule's */
    uint32_t map_rule;     /* the Routing.Map list that decided its location (1-based), 0:
                              none (no map, or "auto") */
} ibp_geo_class_t;

#define IBP_GEO_NO_NET 0xFFFFFFFFu

/* A Routing.Nets entry for the overlay: a network (IPv4 at ::/96) and the
 * members its clients try first, or auto (the distance order: a hole in a
 * listed supernet). */
typedef struct ibp_geo_net {
    ibp_u128_t start;
    unsigned len;
    bool is_auto;
    const uint16_t *listed;   /* member indexes in list order */
    size_t n_listed;
} ibp_geo_net_t;

typedef struct ibp_geo_classes {
    ibp_nlist_t list;      /* network -> class id */
    ibp_trie_t trie;       /* the list as a trie whose leaves are classes */
    uint32_t *node_class;  /* per trie node: the class of its leftmost leaf */
    uint32_t *parent;      /* per trie node: its parent (IBP_TBL_NONE for the root) */
    uint32_t *leaf_first;  /* per class, then one more: its run in leaf_parent */
    uint32_t *leaf_parent; /* the parent node of every leaf, grouped by class */
    ibp_geo_class_t *cls;
    size_t n_cls;
    uint16_t *orders;      /* n_members entries per class */
    size_t n_members;
    size_t n_records;      /* distinct data records in the database */
    size_t n_nodes;        /* search-tree nodes visited */
    char db_type[64];
    uint64_t build_epoch;
    uint64_t fingerprint;  /* of the sites and countries it was built for */
} ibp_geo_classes_t;

/* Overlays the nets (sorted by start then length, no two equal) on the
 * list, a subnet beating its supernet: every (class, list) pair it meets
 * becomes a class of its own, located, whose order is the list then the
 * class's remaining members by distance (by key where the class has no
 * location). Auto nets and the IPv4 alias placeholders keep their classes.
 * Before ibp_geo_classes_index. */
IBP_MUST_CHECK
bool ibp_geo_nets_overlay(ibp_geo_classes_t *c, const ibp_geo_net_t *nets, size_t n_nets,
                          ibp_err_t *err);

/* Room for one more class in c->cls and c->orders (*cap classes have room
 * now; grown by doubling). what names the caller in the error when class
 * ids or order offsets would no longer fit 31 and 32 bits. */
IBP_MUST_CHECK
bool ibp_geo_classes_room(ibp_geo_classes_t *c, size_t *cap, const char *what, ibp_err_t *err);

/* Builds trie and node_class from the complete list: the geo trie every
 * policy of a table shares (ibp_table_format.h). */
IBP_MUST_CHECK
bool ibp_geo_classes_index(ibp_geo_classes_t *c, ibp_err_t *err);
/* Adds parent and the leaves by class: what updating a map when a few
 * classes change answer needs (a builder that republishes; about 8 bytes
 * per trie node). */
IBP_MUST_CHECK
bool ibp_geo_classes_index_updates(ibp_geo_classes_t *c, ibp_err_t *err);
void ibp_geo_classes_free(ibp_geo_classes_t *c);

#endif
