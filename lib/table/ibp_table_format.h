/* On-disk layout of the routing table (see docs/TABLE-FORMAT.md).
 *
 * The file is used in place: every structure here has a fixed size and
 * natural alignment, references are 32-bit indices or byte offsets into a
 * section, never pointers. Integers are little-endian (the
 * header's endian marker lets a reader on another byte order refuse the file
 * instead of misreading it). */
#ifndef IBP_TABLE_FORMAT_H
#define IBP_TABLE_FORMAT_H

#include <assert.h>
#include <stdint.h>

#include "ibp_limits.h"

#define IBP_TBL_MAGIC "IBPDNSTB"
#define IBP_TBL_VERSION 5u          /* 3: trie indexes; 4: one geo trie shared by all policies;
                                       5: client classes for usage accounting */
#define IBP_TBL_ENDIAN 0x01020304u
#define IBP_TBL_NONE 0xFFFFFFFFu      /* "no index" */
#define IBP_TBL_LEAF 0x80000000u      /* tree ref: top bit set => class (geo trie) or answer */
#define IBP_TBL_MAX_ANSWERS IBP_MAX_ANSWERS

/* A trie index replaces the first IBP_TBL_INDEX_BITS steps of a walk by one
 * load: walks in a big trie otherwise miss the cache at nearly every step.
 * An entry is a node ref at depth start + IBP_TBL_INDEX_BITS, or a leaf:
 * IBP_TBL_LEAF | depth << IBP_IDX_DEPTH_SHIFT | answer index. */
#define IBP_TBL_INDEX_BITS 16
#define IBP_TBL_INDEX_SIZE (1u << IBP_TBL_INDEX_BITS)
#define IBP_IDX_DEPTH_SHIFT 24
#define IBP_IDX_ANSWER_MASK 0x00FFFFFFu
#define IBP_IDX_DEPTH_MASK 0x7Fu

/* Record types we serve (DNS type codes). */
enum {
    IBP_T_A = 1, IBP_T_NS = 2, IBP_T_CNAME = 5, IBP_T_SOA = 6, IBP_T_PTR = 12,
    IBP_T_MX = 15, IBP_T_TXT = 16, IBP_T_AAAA = 28, IBP_T_SRV = 33,
    IBP_T_CAA = 257, IBP_T_ANY = 255,
};

enum ibp_tbl_section {
    IBP_SEC_STRINGS = 0,   /* NUL-terminated strings; refs are byte offsets */
    IBP_SEC_ZONES,         /* ibp_tbl_zone_t */
    IBP_SEC_NAMES,         /* ibp_tbl_name_t, every owner name we know */
    IBP_SEC_NAME_HASH,     /* uint32_t buckets: name index + 1, 0 = empty */
    IBP_SEC_RRS,           /* ibp_tbl_rr_t, grouped by name */
    IBP_SEC_HOSTS,         /* ibp_tbl_host_t, names with dynamic A/AAAA */
    IBP_SEC_CANDS,         /* ibp_tbl_cand_t, per host, for explanations */
    IBP_SEC_MEMBERS,       /* ibp_tbl_member_t, sorted by key */
    IBP_SEC_TARGETS,       /* ibp_tbl_target_t, an address an answer may give */
    IBP_SEC_POLICIES,      /* ibp_tbl_policy_t */
    IBP_SEC_NODES,         /* uint32_t[2] per node of the geo trie (leaves: classes) */
    IBP_SEC_ANSWERS,       /* ibp_tbl_answer_t, all policies */
    IBP_SEC_SPREAD,        /* uint32_t target indices, all policies */
    IBP_SEC_INPUTS,        /* ibp_tbl_input_t */
    IBP_SEC_INDEX,         /* uint32_t trie index entries, IBP_TBL_INDEX_SIZE per index */
    IBP_SEC_GEO,           /* one ibp_tbl_geo_t: the geo trie's root and class count */
    IBP_SEC_NODE_CLASS,    /* uint32_t per node: the class of its leftmost leaf */
    IBP_SEC_MAPS,          /* ibp_tbl_map_t: class -> answer, shared by equal policies */
    IBP_SEC_CHOICES,       /* uint32_t answer index per class, n_classes per map */
    IBP_SEC_UNIFORM,       /* uint64_t bitmap words, one bit per node per map */
    IBP_SEC_CLIENT,        /* none, or one ibp_tbl_client_t: the client-class trie's root */
    IBP_SEC_CLIENT_NODES,  /* uint32_t[2] per node of the client-class trie (leaves: classes) */
    IBP_SEC_CLIENT_TEXT,   /* the classes' texts, back to back, not terminated */
    IBP_SEC_CLIENT_OFFS,   /* uint32_t per class, then one more: its text in CLIENT_TEXT */
    IBP_SEC_CLIENT_INDEX,  /* none, or 2 x IBP_TBL_INDEX_SIZE uint32_t: the client-class trie
                              16 bits into ::/96 (IPv4) and from the root (IPv6) */
    IBP_SEC_COUNT,
    /* Past the header's section table, found by header fields, so that a
     * table without it is the format it always was (older readers refuse
     * only tables that have it): */
    IBP_SEC_NETS = IBP_SEC_COUNT,   /* ibp_tbl_net_t, Routing.Nets, for explanations */
    IBP_SEC_ALL
};

typedef struct ibp_tbl_section_ent {
    uint64_t offset;       /* from the start of the file, 8-aligned */
    uint64_t size;         /* bytes */
    uint32_t count;        /* elements */
    uint32_t elem_size;    /* bytes per element (1 for strings) */
} ibp_tbl_section_ent_t;

/* Header flags. Zero is BEHAVIOR §2's behaviour, so tables written before a
 * flag existed keep their meaning. */
enum {
    /* Routing.ApexSoaInAny false: ANY at an apex without the SOA, as IBP's
     * node answered; PowerDNS re-adds the SOA from the SOA lookup anyway. */
    IBP_HDR_NO_APEX_SOA_IN_ANY = 1u,
    IBP_HDR_KNOWN_FLAGS = IBP_HDR_NO_APEX_SOA_IN_ANY,
};

typedef struct ibp_tbl_header {
    char magic[8];
    uint32_t version;
    uint32_t endian;
    uint32_t header_size;
    uint32_t n_sections;
    uint64_t file_size;
    uint64_t checksum;     /* XXH3-64 of the file with this field zeroed */
    uint64_t generation;   /* strictly increasing from table to table */
    uint64_t build_time;   /* UTC seconds; the zones' SOA serial */
    uint32_t ttl;          /* dynamic A/AAAA TTL */
    uint32_t spread_v4_bits, spread_v6_bits; /* prefix hashed for unlocated clients */
    uint32_t flags;        /* IBP_HDR_*; a reader refuses bits it does not know */
    uint32_t acme_budget_ms;   /* Routing.AcmeBudgetMs; 0 (tables before it) = the default */
    uint32_t nets_offset8;     /* IBP_SEC_NETS at byte 8 x this, 0 when n_nets is 0 */
    uint32_t n_nets;           /* (were reserved[0], reserved[1]) */
    uint32_t map_text;         /* Routing.Map as compact JSON for explanations: its string
                                  offset + 1, 0 without a map (was reserved[2]) */
    uint32_t reserved[2];
    ibp_tbl_section_ent_t sections[IBP_SEC_COUNT];
} ibp_tbl_header_t;

typedef struct ibp_tbl_zone {
    uint32_t name;         /* string: lowercase apex */
    uint32_t id;           /* positive, stable: CRC-32 & 0x7FFFFFFF, probed */
    uint32_t soa_tail;     /* string: "IN\tSOA\t<ttl>\t<id>\t<mname> <rname> <serial> ..." */
    uint32_t soa_tail_len;
} ibp_tbl_zone_t;

typedef struct ibp_tbl_name {
    uint32_t name;         /* string: lowercase, no trailing dot */
    uint32_t name_len;
    uint32_t hash;         /* FNV-1a of the lowercase name */
    uint32_t apex_zone;    /* zone index if this name is an apex, else NONE */
    uint32_t zone;         /* enclosing zone index */
    uint32_t rr_first;     /* first static record */
    uint32_t rr_count;
    uint32_t host;         /* host index, or NONE */
} ibp_tbl_name_t;

enum { IBP_RR_ACME = 1u };  /* rr flags: served by the ACME path, never raw */

typedef struct ibp_tbl_rr {
    uint16_t type;
    uint16_t flags;
    uint32_t ttl;
    uint32_t tail;         /* string: "IN\t<TYPE>\t<ttl>\t<zone id>\t<content fields>" */
    uint32_t tail_len;
    uint32_t content;      /* string: presentation content as configured */
    uint32_t pad;
} ibp_tbl_rr_t;

typedef struct ibp_tbl_host {
    uint32_t name;         /* name index */
    uint32_t zone;         /* zone index */
    uint32_t policy[2];    /* [0] IPv4, [1] IPv6: policy index or NONE */
    uint32_t tail[2];      /* string: "IN\tA\t<ttl>\t<zone id>\t", "IN\tAAAA\t..." */
    uint32_t tail_len[2];
    uint32_t cand_first;
    uint32_t cand_count;
} ibp_tbl_host_t;

/* Why a member assigned to a host is not a candidate for a family. */
enum ibp_skip {
    IBP_SKIP_NONE = 0, IBP_SKIP_OFFLINE, IBP_SKIP_OVERRIDE, IBP_SKIP_INACTIVE,
    IBP_SKIP_NO_ADDRESS, IBP_SKIP_UNNAMED,   /* empty Details.Name: IBP never answers it */
    IBP_SKIP_MAX = IBP_SKIP_UNNAMED,
};

typedef struct ibp_tbl_cand {
    uint32_t member;
    uint8_t skip[2];       /* enum ibp_skip per family */
    uint8_t pad[2];
} ibp_tbl_cand_t;

typedef struct ibp_tbl_member {
    uint32_t key;          /* string */
    uint32_t name;         /* string: Details.Name */
    uint32_t target[2];    /* target index per family, or NONE */
    double lat, lon;
    uint32_t flags;        /* IBP_MEMBER_* */
    uint32_t pad;
} ibp_tbl_member_t;

enum { IBP_MEMBER_ACTIVE = 1u, IBP_MEMBER_OVERRIDE = 2u };

typedef struct ibp_tbl_target {
    uint32_t member;       /* member index, or NONE for a country override address */
    uint32_t text;         /* string: the address as served */
    uint32_t text_len;
    char cc[4];            /* override's country code ("" for members) */
    uint8_t addr[16];
} ibp_tbl_target_t;

enum ibp_answer_kind {
    IBP_ANS_TARGETS = 0,   /* answer the listed targets */
    IBP_ANS_UNLOCATED,     /* no location: try the resolver, then spread */
    IBP_ANS_NONE,          /* nothing to answer */
    IBP_ANS_UNDEF,         /* v4-alias placeholder in the v6 space */
    /* The nearest candidate is down (Routing.FailoverSpread): the targets
     * (2 or more, in distance order) share its clients by a stable hash of
     * the client prefix (spread_v4_bits, spread_v6_bits): highest random
     * weight, so a target that comes or goes moves only its own share. */
    IBP_ANS_FAILOVER_SPREAD,
};

/* NET: a Routing.Nets list chose the first target; NET_FALLBACK: the
 * client's net lists nobody healthy, the distance order chose. MAP and
 * MAP_FALLBACK: the same for a Routing.Map list. At most one of the four. */
enum {
    IBP_ANSF_FAIL_OPEN = 1u, IBP_ANSF_OVERRIDE = 2u, IBP_ANSF_NET = 4u, IBP_ANSF_NET_FALLBACK = 8u,
    IBP_ANSF_MAP = 16u, IBP_ANSF_MAP_FALLBACK = 32u,
    IBP_ANSF_LISTED = 60u,   /* any of NET, NET_FALLBACK, MAP, MAP_FALLBACK */
    IBP_ANSF_KNOWN = 63u,
};

typedef struct ibp_tbl_answer {
    uint8_t kind;
    uint8_t n;             /* targets used */
    uint8_t flags;         /* IBP_ANSF_* */
    uint8_t pad;
    uint32_t target[IBP_TBL_MAX_ANSWERS];
} ibp_tbl_answer_t;

enum { IBP_POL_CLIENT_DEPENDENT = 1u, IBP_POL_SPREAD_FAIL_OPEN = 2u };

/* A policy: what one host answers in one family. Its answers are indexed by
 * its map's choices; policies whose class -> answer-index vectors are equal
 * (typically a host's A and AAAA) share one map. */
typedef struct ibp_tbl_policy {
    uint32_t family;       /* 4 or 6 */
    uint32_t flags;        /* IBP_POL_* */
    uint32_t map;          /* map index */
    uint32_t answer_first;
    uint32_t answer_count; /* at least the map's answer_count */
    uint32_t spread_first; /* targets for unlocated clients, by member key */
    uint32_t spread_count;
    uint32_t answers_per_family;
} ibp_tbl_policy_t;

/* The geo trie: one binary trie over the whole IPv6 space (IPv4 at ::/96)
 * whose leaves are geo classes, shared by every policy. */
/* Usage accounting's client classes (country, ASN): a trie from client
 * network to class whose text is "<CC>\t<country>\t<AS<n>|>\t<organisation>",
 * the dimensions usage is stored by. No client address is in a class. */
typedef struct ibp_tbl_client {
    uint32_t root;         /* node 0, or IBP_TBL_LEAF | class */
    uint32_t n_classes;
} ibp_tbl_client_t;

/* The client-class index: entry k of the IPv4 half is where the walk of
 * ::/96 + k (16 bits) stands at depth 112, of the IPv6 half the walk of k at
 * depth 16: a node, or IBP_TBL_LEAF | class where it stopped earlier. */
#define IBP_CLIENT_INDEX_V4_DEPTH 96u

typedef struct ibp_tbl_geo {
    uint32_t root;         /* node 0, or IBP_TBL_LEAF | class */
    uint32_t n_classes;
} ibp_tbl_geo_t;

/* A map gives every class an answer index. Bit n of its uniform bitmap says
 * that every class below node n has the same answer: a walk stops at the
 * first such node, which makes the ECS scope the largest prefix with this
 * answer, as if the map had its own merged trie. Refs here with
 * IBP_TBL_LEAF set carry an answer index, not a class. */
typedef struct ibp_tbl_map {
    uint32_t answer_count; /* every choice is below this */
    uint32_t choice_first; /* n_classes entries in IBP_SEC_CHOICES */
    uint32_t uniform_first;/* IBP_UNIFORM_WORDS(nodes) words in IBP_SEC_UNIFORM */
    uint32_t root;         /* the geo root, or LEAF | answer when uniform there */
    uint32_t v4_root;      /* where 96 zero bits lead, stopping where uniform */
    uint32_t v4_depth;
    uint32_t index_v4;     /* first entry of the index below v4_root (v4_depth 96), or NONE */
    uint32_t index_v6;     /* first entry of the index below root, or NONE */
} ibp_tbl_map_t;

#define IBP_UNIFORM_WORDS(nodes) (((size_t)(nodes) + 63) / 64)

enum ibp_input_kind {
    IBP_IN_NODE_CONFIG = 0, IBP_IN_MEMBERS, IBP_IN_SERVICES, IBP_IN_STATIC,
    IBP_IN_RESULTS, IBP_IN_CITY_DB,
};

typedef struct ibp_tbl_input {
    uint32_t kind;
    uint32_t source;       /* string: path or URL */
    uint32_t detail;       /* string: e.g. the MaxMind database type and build date */
    uint32_t pad;
    uint64_t digest_hi, digest_lo; /* XXH3-128 of the bytes */
    uint64_t size;
} ibp_tbl_input_t;

/* Routing.Nets as the config gave it, sorted by (addr, len): what lookup
 * explanations name as the rule that decided (the answers carry
 * IBP_ANSF_NET). The coprocess never reads it. */
typedef struct ibp_tbl_net {
    uint8_t addr[16];      /* network start, host bits zero; IPv4 at ::/96 */
    uint8_t len;           /* in the 128-bit space */
    uint8_t flags;         /* IBP_NET_* */
    uint16_t pad;
    uint32_t text;         /* string: the network normalised, "203.0.113.0/24" */
} ibp_tbl_net_t;

enum { IBP_NET_AUTO = 1u };

static inline bool ibp_uniform_bit(const uint64_t *words, uint32_t node)
{
    return (words[node >> 6] >> (node & 63)) & 1u;
}

/* Walks the geo trie (n_nodes nodes over n_classes classes) from node ref
 * at bit depth along addr's bits until a node that is uniform in the map
 * (uniform: its words) or a leaf; returns the answer index and the depth
 * where the walk stopped. Every read is bounds-checked, because a shared
 * mapping (ibp_table_map_fd) may change under the walk: a walk that leaves
 * the table, or would pass bit 128, answers 0, "undef". The caller checks
 * the answer index against its answer count. */
static inline uint32_t ibp_map_walk_from(const uint32_t *nodes, const uint32_t *node_class,
                                         const uint64_t *uniform, const uint32_t *choices,
                                         uint32_t n_nodes, uint32_t n_classes,
                                         uint32_t ref, unsigned depth, const uint8_t addr[16],
                                         unsigned *stop_depth)
{
    for (;;) {
        *stop_depth = depth;
        uint32_t cls;
        if (ref & IBP_TBL_LEAF) {
            cls = ref & ~IBP_TBL_LEAF;
            return cls < n_classes ? choices[cls] : 0;
        }
        if (ref >= n_nodes || depth >= 128)
            return 0;
        if (ibp_uniform_bit(uniform, ref)) {
            cls = node_class[ref];
            return cls < n_classes ? choices[cls] : 0;
        }
        unsigned bit = (addr[depth >> 3] >> (7 - (depth & 7))) & 1u;
        ref = nodes[2 * ref + bit];
        depth++;
    }
}

static_assert(sizeof(ibp_tbl_header_t) == 96 + 24 * IBP_SEC_COUNT, "header layout");
static_assert(sizeof(ibp_tbl_name_t) == 32, "name layout");
static_assert(sizeof(ibp_tbl_rr_t) == 24, "rr layout");
static_assert(sizeof(ibp_tbl_host_t) == 40, "host layout");
static_assert(sizeof(ibp_tbl_member_t) == 40, "member layout");
static_assert(sizeof(ibp_tbl_target_t) == 32, "target layout");
static_assert(sizeof(ibp_tbl_answer_t) == 36, "answer layout");
static_assert(sizeof(ibp_tbl_policy_t) == 32, "policy layout");
static_assert(sizeof(ibp_tbl_geo_t) == 8, "geo layout");
static_assert(sizeof(ibp_tbl_map_t) == 32, "map layout");
static_assert(sizeof(ibp_tbl_input_t) == 40, "input layout");
static_assert(sizeof(ibp_tbl_net_t) == 24, "net layout");

#endif
