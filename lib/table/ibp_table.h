/* Reading a routing table: load it, validate every byte of it, and answer
 * queries from it. This is all the coprocess links besides libc, so nothing
 * here allocates after ibp_table_open() or makes a system call per query. */
#ifndef IBP_TABLE_H
#define IBP_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ibp_err.h"
#include "ibp_net.h"
#include "ibp_table_format.h"

typedef struct ibp_table {
    const uint8_t *base;
    size_t size;
    bool mapped;           /* base is ours (ibp_table_open), else the caller's */
    bool shared;           /* base maps the file itself (ibp_table_map_fd) */
    uint8_t *priv;         /* shared: the header and small sections, copied */
    const ibp_tbl_header_t *h;
    const char *strings;
    size_t strings_size;
    const ibp_tbl_zone_t *zones;
    const ibp_tbl_name_t *names;
    const uint32_t *name_hash;
    uint32_t hash_mask;
    const ibp_tbl_rr_t *rrs;
    const ibp_tbl_host_t *hosts;
    const ibp_tbl_cand_t *cands;
    const ibp_tbl_member_t *members;
    const ibp_tbl_target_t *targets;
    const ibp_tbl_policy_t *policies;
    const uint32_t *nodes;
    const ibp_tbl_geo_t *geo;
    const uint32_t *node_class;
    const ibp_tbl_map_t *maps;
    const uint32_t *choices;
    const uint64_t *uniform;
    const ibp_tbl_answer_t *answers;
    const uint32_t *spread;
    const ibp_tbl_input_t *inputs;
    const uint32_t *index;
    const ibp_tbl_client_t *client;   /* NULL: no client classes (one, unknown) */
    const uint32_t *client_nodes;
    const char *client_text;
    const uint32_t *client_offs;
    const uint32_t *client_index;     /* NULL: none (walks start at the root) */
    uint32_t n[IBP_SEC_COUNT];   /* element counts */
    /* Routing.Nets, for explanations only: in a shared mapping they stay in
     * the file (the coprocess never reads them). */
    const ibp_tbl_net_t *nets;
    uint32_t n_nets;
} ibp_table_t;

uint64_t ibp_table_checksum(const uint8_t *file, size_t len);

/* Reads path into private read-only memory and validates it: what the file
 * becomes afterwards (rewritten in place, truncated) cannot reach the copy.
 * On failure nothing stays allocated. */
IBP_MUST_CHECK
bool ibp_table_open(const char *path, ibp_table_t *t, ibp_err_t *err);
/* The same from an open file (path names it in errors); fd stays open. */
IBP_MUST_CHECK
bool ibp_table_read_fd(int fd, const char *path, ibp_table_t *t, ibp_err_t *err);
/* Maps the file itself, so that every process that maps it shares its page
 * cache, and copies only the header and the small sections. The big ones
 * (trie, classes, maps' choices and bits, indexes) stay in the file: a lookup
 * bounds-checks every read of them, so a file rewritten in place can change
 * answers until it is replaced but never make a lookup read outside the
 * table. A file truncated under the mapping raises SIGBUS on access: the
 * caller must handle it (the coprocess maps zero pages over the table and
 * drops it). fd stays open. */
IBP_MUST_CHECK
bool ibp_table_map_fd(int fd, const char *path, ibp_table_t *t, ibp_err_t *err);
/* The mapping ibp_table_map_fd makes, for a caller that must know its
 * address before anything reads it (to catch SIGBUS there). */
IBP_MUST_CHECK
bool ibp_table_map_file(int fd, const char *path, const uint8_t **map, size_t *len,
                        ibp_err_t *err);
/* The same over a mapping the caller made (and unmaps after closing t, or
 * sets t->mapped to hand it over): for a caller that must know the
 * mapping's address before validation reads it. */
IBP_MUST_CHECK
bool ibp_table_attach_shared(const uint8_t *map, size_t len, const ibp_table_t *trusted,
                             ibp_table_t *t, ibp_err_t *err);
/* Validates a table held in memory (the buffer must outlive t). */
IBP_MUST_CHECK
bool ibp_table_attach(const uint8_t *buf, size_t len, ibp_table_t *t, ibp_err_t *err);
/* The same, trusting the shape of a trie byte-identical to the one of
 * trusted (a table attached before, or NULL): a republish after a health
 * change keeps the trie, and proving it a tree again costs tens of
 * milliseconds at network scale. Every reference is still range-checked. */
IBP_MUST_CHECK
bool ibp_table_attach_trusting(const uint8_t *buf, size_t len, const ibp_table_t *trusted,
                               ibp_table_t *t, ibp_err_t *err);
void ibp_table_close(ibp_table_t *t);

/* Loading proves every reference a lookup may follow in range, so no byte
 * can fault a lookup; this also re-derives what follows from the trie and
 * the answers (node classes, uniform bits, roots, indexes) and fails where
 * the table disagrees, which would change answers. For `verify`, builders
 * and tests: it costs a walk of the trie per load. */
IBP_MUST_CHECK
bool ibp_table_check_derived(const ibp_table_t *t, ibp_err_t *err);

/* The generation and build time of a table of any format version (the
 * header's leading fields never move), so a new writer continues the
 * numbering of a table it cannot read. A table of the current version must
 * validate whole. */
IBP_MUST_CHECK
bool ibp_table_peek(const char *path, uint64_t *generation, uint64_t *build_time,
                    ibp_err_t *err);

static inline const char *ibp_table_str(const ibp_table_t *t, uint32_t off)
{
    return t->strings + off;
}

/* What a member is called to people: Details.Name, else its key (m in range). */
static inline const char *ibp_table_member_label(const ibp_table_t *t, uint32_t m)
{
    const char *name = ibp_table_str(t, t->members[m].name);
    return *name ? name : ibp_table_str(t, t->members[m].key);
}

/* Case-insensitive; one trailing dot is ignored. NULL if unknown. */
const ibp_tbl_name_t *ibp_table_find(const ibp_table_t *t, const char *name, size_t len);

uint32_t ibp_name_hash(const char *name, size_t len);

/* One map over the geo trie: what a walk needs (ibp_map_walk_from). */
typedef struct ibp_map_view {
    const uint32_t *nodes;       /* the geo trie */
    const uint32_t *node_class;
    const uint64_t *uniform;     /* the map's bitmap */
    const uint32_t *choices;     /* the map's class -> answer */
    uint32_t n_nodes, n_classes;
} ibp_map_view_t;

ibp_map_view_t ibp_table_map_view(const ibp_table_t *t, uint32_t map);

/* Computes the uniform bitmaps (IBP_UNIFORM_WORDS(n_nodes) words each,
 * overwritten) of n_maps maps over a valid geo trie with root 0, given each
 * map's class -> answer vector (n_classes entries). */
IBP_MUST_CHECK
bool ibp_uniform_compute(const uint32_t *nodes, uint32_t n_nodes, uint32_t n_classes,
                         const uint32_t *const *choices, size_t n_maps, uint64_t *const *words,
                         ibp_err_t *err);

/* Where a map's walks start: its root (LEAF | answer when the geo root is
 * uniform) and where 96 zero bits lead. geo_root is the geo trie's root. */
void ibp_map_roots(const ibp_map_view_t *v, uint32_t geo_root, uint32_t *root,
                   uint32_t *v4_root, uint32_t *v4_depth);

/* Fills entries[0 .. IBP_TBL_INDEX_SIZE) with the index of the map below
 * geo node `root` at bit `depth` (a multiple of 8, at most 104, so that a
 * leaf's depth fits IBP_IDX_DEPTH_MASK; see ibp_table_format.h). The trie
 * must be valid and every choice at most IBP_IDX_ANSWER_MASK. */
void ibp_map_index_build(const ibp_map_view_t *v, uint32_t root, unsigned depth,
                         uint32_t *entries);

/* Every network of a policy with its answer index, in address order, each
 * the largest prefix with that answer (IPv4 in ::/96). Recursion is at most
 * 128 deep, as attach proved; t must be attached. */
typedef void (*ibp_leaf_fn)(void *ctx, const uint8_t addr[16], unsigned len, uint32_t answer);
void ibp_table_foreach_leaf(const ibp_table_t *t, uint32_t policy, ibp_leaf_fn fn, void *ctx);

/* Who is asking: the address to route on and, when that is an ECS prefix,
 * the resolver's own address to fall back on if the prefix has no location. */
typedef struct ibp_client {
    ibp_addr_t addr;
    bool v4;
    bool has_resolver;
    ibp_addr_t resolver;
    bool resolver_v4;
} ibp_client_t;

/* The client of a request: remote is the resolver's address (a %iface
 * suffix is ignored), ecs (NULL: none) the client subnet "addr/len". An ECS
 * of /0, or one equal to the remote, means the remote itself. */
IBP_MUST_CHECK
bool ibp_client_parse(const char *remote, size_t remote_len, const char *ecs, size_t ecs_len,
                      ibp_client_t *c);

enum ibp_route_how {
    IBP_HOW_NONE = 0,      /* nothing to answer */
    IBP_HOW_NEAREST,       /* nearest healthy candidates */
    IBP_HOW_FAIL_OPEN,     /* all candidates down: nearest anyway */
    IBP_HOW_OVERRIDE,      /* country override */
    IBP_HOW_RESOLVER,      /* client prefix unlocated: resolver's location */
    IBP_HOW_SPREAD,        /* nobody located: stable hash over candidates */
    IBP_HOW_FAILOVER_SPREAD, /* nearest down: stable hash over the next ones */
    IBP_HOW_NET,           /* a Routing.Nets list */
    IBP_HOW_NET_FALLBACK,  /* a Routing.Nets list with nobody healthy: nearest */
    IBP_HOW_MAP,           /* a Routing.Map list */
    IBP_HOW_MAP_FALLBACK,  /* a Routing.Map list with nobody healthy: nearest */
    IBP_HOW_LAST = IBP_HOW_MAP_FALLBACK   /* bounds checks: the one place to move */
};

typedef struct ibp_route {
    unsigned n;
    uint32_t target[IBP_TBL_MAX_ANSWERS];
    unsigned scope;        /* ECS scope in the client address's family */
    enum ibp_route_how how;
    uint32_t answer;       /* answer index (diagnostics) */
    unsigned spread_pick, spread_of;   /* failover spread: the first target's rank (1-based) of */
} ibp_route_t;

/* family: 0 = A (IPv4 answers), 1 = AAAA. */
void ibp_table_route(const ibp_table_t *t, const ibp_tbl_host_t *host, unsigned family,
                     const ibp_client_t *client, ibp_route_t *out);

/* Usage accounting's client classes: who asked, as the aggregated
 * dimensions usage is stored by ("<CC>\t<country>\t<AS<n>|>\t<organisation>"),
 * never the address. Class 0 is "unknown"; there is always one class. */
uint32_t ibp_table_client_classes(const ibp_table_t *t);
/* Fills the 2 x IBP_TBL_INDEX_SIZE entries of the client-class index of a
 * valid trie (a tree, leaves IBP_TBL_LEAF | class). */
void ibp_client_index_build(const uint32_t *nodes, uint32_t n_nodes, uint32_t root,
                            uint32_t *entries);
uint32_t ibp_table_client_class(const ibp_table_t *t, const ibp_client_t *client);
const char *ibp_table_client_text(const ibp_table_t *t, uint32_t cls, uint32_t *len);

const char *ibp_route_how_name(enum ibp_route_how how);
/* The most specific Routing.Nets entry holding addr (IPv4 at ::/96), or NULL. */
const ibp_tbl_net_t *ibp_table_net_of(const ibp_table_t *t, const uint8_t addr[16]);
const char *ibp_skip_name(unsigned skip);
const char *ibp_rrtype_name(unsigned type);

#endif
