/* On-disk layout of the routing table (see docs/TABLE-FORMAT.md).
 *
 * The file is mapped read-only and used in place: every structure here has a
 * fixed size and natural alignment, references are 32-bit indices or byte
 * offsets into a section, never pointers. Integers are little-endian (the
 * header's endian marker lets a reader on another byte order refuse the file
 * instead of misreading it). */
#ifndef IBP_TABLE_FORMAT_H
#define IBP_TABLE_FORMAT_H

#include <assert.h>
#include <stdint.h>

#include "ibp_limits.h"

#define IBP_TBL_MAGIC "IBPDNSTB"
#define IBP_TBL_VERSION 3u          /* 2: word-wise name hash; 3: trie indexes */
#define IBP_TBL_ENDIAN 0x01020304u
#define IBP_TBL_NONE 0xFFFFFFFFu      /* "no index" */
#define IBP_TBL_LEAF 0x80000000u      /* tree ref: top bit set => answer index */
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
    IBP_SEC_NODES,         /* uint32_t[2] per trie node, all policies */
    IBP_SEC_ANSWERS,       /* ibp_tbl_answer_t, all policies */
    IBP_SEC_SPREAD,        /* uint32_t target indices, all policies */
    IBP_SEC_INPUTS,        /* ibp_tbl_input_t */
    IBP_SEC_INDEX,         /* uint32_t trie index entries, IBP_TBL_INDEX_SIZE per index */
    IBP_SEC_COUNT
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
    uint32_t reserved[6];
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
};

enum { IBP_ANSF_FAIL_OPEN = 1u, IBP_ANSF_OVERRIDE = 2u };

typedef struct ibp_tbl_answer {
    uint8_t kind;
    uint8_t n;             /* targets used */
    uint8_t flags;         /* IBP_ANSF_* */
    uint8_t pad;
    uint32_t target[IBP_TBL_MAX_ANSWERS];
} ibp_tbl_answer_t;

enum { IBP_POL_CLIENT_DEPENDENT = 1u, IBP_POL_SPREAD_FAIL_OPEN = 2u };

typedef struct ibp_tbl_policy {
    uint32_t family;       /* 4 or 6 */
    uint32_t flags;        /* IBP_POL_* */
    uint32_t root;         /* tree ref (node index relative to node_first, or LEAF|answer) */
    uint32_t v4_root;      /* ref reached after 96 zero bits */
    uint32_t v4_depth;     /* depth of v4_root (96 unless a leaf covers ::/96) */
    uint32_t node_first;
    uint32_t node_count;
    uint32_t answer_first;
    uint32_t answer_count;
    uint32_t spread_first; /* targets for unlocated clients, by member key */
    uint32_t spread_count;
    uint32_t answers_per_family;
    uint32_t index_v4;     /* first entry of the index below v4_root (v4_depth 96), or NONE */
    uint32_t index_v6;     /* first entry of the index below root, or NONE */
} ibp_tbl_policy_t;

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

/* Walks a trie from `ref` at bit `depth` along addr's bits until a leaf;
 * returns the leaf ref and the depth it was found at. Node i's children are
 * nodes[2i] and nodes[2i+1]. */
static inline uint32_t ibp_trie_walk_from(const uint32_t *nodes, uint32_t ref, unsigned depth,
                                          const uint8_t addr[16], unsigned *leaf_depth)
{
    while (!(ref & IBP_TBL_LEAF) && depth < 128) {
        unsigned bit = (addr[depth >> 3] >> (7 - (depth & 7))) & 1u;
        ref = nodes[2 * ref + bit];
        depth++;
    }
    *leaf_depth = depth;
    return ref;
}

static_assert(sizeof(ibp_tbl_header_t) == 96 + 24 * IBP_SEC_COUNT, "header layout");
static_assert(sizeof(ibp_tbl_name_t) == 32, "name layout");
static_assert(sizeof(ibp_tbl_rr_t) == 24, "rr layout");
static_assert(sizeof(ibp_tbl_host_t) == 40, "host layout");
static_assert(sizeof(ibp_tbl_member_t) == 40, "member layout");
static_assert(sizeof(ibp_tbl_target_t) == 32, "target layout");
static_assert(sizeof(ibp_tbl_answer_t) == 36, "answer layout");
static_assert(sizeof(ibp_tbl_policy_t) == 56, "policy layout");
static_assert(sizeof(ibp_tbl_input_t) == 40, "input layout");

#endif
