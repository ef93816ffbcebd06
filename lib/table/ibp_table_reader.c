#include "ibp_table.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t ibp_table_checksum(const uint8_t *file, size_t len)
{
    ibp_tbl_header_t h;
    memcpy(&h, file, sizeof h);
    h.checksum = 0;
    uint64_t seed = XXH3_64bits(&h, sizeof h);
    return XXH3_64bits_withSeed(file + sizeof h, len - sizeof h, seed);
}

/* ---- validation --------------------------------------------------------
 * A table that passes these checks can be walked without bounds checks on
 * the query path: every index and string reference has been proven in range. */

static const uint32_t expected_elem[IBP_SEC_COUNT] = {
    1, sizeof(ibp_tbl_zone_t), sizeof(ibp_tbl_name_t), 4, sizeof(ibp_tbl_rr_t),
    sizeof(ibp_tbl_host_t), sizeof(ibp_tbl_cand_t), sizeof(ibp_tbl_member_t),
    sizeof(ibp_tbl_target_t), sizeof(ibp_tbl_policy_t), 8, sizeof(ibp_tbl_answer_t), 4,
    sizeof(ibp_tbl_input_t), 4, sizeof(ibp_tbl_geo_t), 4, sizeof(ibp_tbl_map_t), 4, 8,
    sizeof(ibp_tbl_client_t), 8, 1, 4, 4,
};

static bool check_header(const uint8_t *buf, size_t len, ibp_err_t *err)
{
    /* Magic, version and byte order first: they never move, and an older
     * format's header may be shorter than ours. */
    const size_t stable = offsetof(ibp_tbl_header_t, header_size);
    if (len < stable)
        return ibp_err_set(err, "truncated: %zu bytes is shorter than the header", len);
    ibp_tbl_header_t head;
    memcpy(&head, buf, stable);
    if (memcmp(head.magic, IBP_TBL_MAGIC, 8))
        return ibp_err_set(err, "not an ibpdns routing table (bad magic)");
    if (head.endian != IBP_TBL_ENDIAN)
        return ibp_err_set(err, "written on a machine of another byte order");
    if (head.version != IBP_TBL_VERSION)
        return ibp_err_set(err, "format version %u, this program reads version %u",
                           head.version, IBP_TBL_VERSION);
    if (len < sizeof(ibp_tbl_header_t))
        return ibp_err_set(err, "truncated: %zu bytes is shorter than the header", len);
    const ibp_tbl_header_t *h = (const ibp_tbl_header_t *)buf;
    if (h->header_size != sizeof *h || h->n_sections != IBP_SEC_COUNT)
        return ibp_err_set(err, "unexpected header size or section count");
    if (h->spread_v4_bits > 32 || h->spread_v6_bits > 128)
        return ibp_err_set(err, "spread prefix /%u (IPv4) or /%u (IPv6) is not a prefix length",
                           h->spread_v4_bits, h->spread_v6_bits);
    if (h->flags & ~(uint32_t)IBP_HDR_KNOWN_FLAGS)
        return ibp_err_set(err, "header flags 0x%x: unknown to this program (written by a newer one?)",
                           h->flags);
    if (h->acme_budget_ms > IBP_ACME_BUDGET_MS_MAX)
        return ibp_err_set(err, "ACME budget %u ms is over the %u ms a lookup may wait",
                           h->acme_budget_ms, IBP_ACME_BUDGET_MS_MAX);
    /* Zero today, so a later writer's use of them is refused, not ignored.
     * Words 0, 1 and 2 of the five there were became nets_offset8, n_nets
     * and map_text. */
    for (size_t i = 0; i < sizeof h->reserved / sizeof h->reserved[0]; i++)
        if (h->reserved[i])
            return ibp_err_set(err, "reserved header word %zu is %u, not 0 (written by a newer "
                               "program?)", i, h->reserved[i]);
    if (h->file_size != len)
        return ibp_err_set(err, "truncated or extended: header says %llu bytes, file has %zu",
                           (unsigned long long)h->file_size, len);
    if (ibp_table_checksum(buf, len) != h->checksum)
        return ibp_err_set(err, "checksum mismatch: the file is corrupt");
    return true;
}

/* IBP_SEC_NETS: after the header, inside the file, whole. */
static bool map_nets(ibp_table_t *t, ibp_err_t *err)
{
    const ibp_tbl_header_t *h = t->h;
    uint64_t off = (uint64_t)h->nets_offset8 * 8, size = (uint64_t)h->n_nets * sizeof *t->nets;
    if (!h->n_nets) {
        if (h->nets_offset8)
            return ibp_err_set(err, "nets offset %llu without nets", (unsigned long long)off);
        return true;
    }
    if (off < sizeof *h || off > t->size || size > t->size - off)
        return ibp_err_set(err, "the nets lie outside the file");
    t->nets = (const ibp_tbl_net_t *)(t->base + off);
    t->n_nets = h->n_nets;
    return true;
}

static bool map_sections(ibp_table_t *t, ibp_err_t *err)
{
    const void *at[IBP_SEC_COUNT];
    for (int s = 0; s < IBP_SEC_COUNT; s++) {
        const ibp_tbl_section_ent_t *e = &t->h->sections[s];
        if (e->offset % 8 || e->offset > t->size || e->size > t->size - e->offset ||
            e->elem_size != expected_elem[s] || (uint64_t)e->count * e->elem_size != e->size)
            return ibp_err_set(err, "section %d lies outside the file or is malformed", s);
        at[s] = t->base + e->offset;
        t->n[s] = e->count;
    }
    t->strings = at[IBP_SEC_STRINGS];
    t->strings_size = t->h->sections[IBP_SEC_STRINGS].size;
    t->zones = at[IBP_SEC_ZONES];
    t->names = at[IBP_SEC_NAMES];
    t->name_hash = at[IBP_SEC_NAME_HASH];
    t->rrs = at[IBP_SEC_RRS];
    t->hosts = at[IBP_SEC_HOSTS];
    t->cands = at[IBP_SEC_CANDS];
    t->members = at[IBP_SEC_MEMBERS];
    t->targets = at[IBP_SEC_TARGETS];
    t->policies = at[IBP_SEC_POLICIES];
    t->nodes = at[IBP_SEC_NODES];
    t->answers = at[IBP_SEC_ANSWERS];
    t->spread = at[IBP_SEC_SPREAD];
    t->inputs = at[IBP_SEC_INPUTS];
    t->index = at[IBP_SEC_INDEX];
    t->geo = at[IBP_SEC_GEO];
    t->node_class = at[IBP_SEC_NODE_CLASS];
    t->maps = at[IBP_SEC_MAPS];
    t->choices = at[IBP_SEC_CHOICES];
    t->uniform = at[IBP_SEC_UNIFORM];
    t->client = t->n[IBP_SEC_CLIENT] ? at[IBP_SEC_CLIENT] : NULL;
    t->client_nodes = at[IBP_SEC_CLIENT_NODES];
    t->client_text = at[IBP_SEC_CLIENT_TEXT];
    t->client_offs = at[IBP_SEC_CLIENT_OFFS];
    t->client_index = t->n[IBP_SEC_CLIENT_INDEX] ? at[IBP_SEC_CLIENT_INDEX] : NULL;
    return map_nets(t, err);
}

static bool str_ok(const ibp_table_t *t, uint32_t off)
{
    return off < t->strings_size;   /* the section ends in NUL (checked) */
}

static bool str_len_ok(const ibp_table_t *t, uint32_t off, uint32_t len)
{
    return str_ok(t, off) && len < t->strings_size - off && t->strings[off + len] == '\0' &&
           !memchr(t->strings + off, '\0', len);
}

static bool idx_ok(uint32_t idx, uint32_t n, bool none_ok)
{
    return idx < n || (none_ok && idx == IBP_TBL_NONE);
}

static bool range_ok(uint32_t first, uint32_t count, uint32_t n)
{
    return first <= n && count <= n - first;
}

#define CHECK(cond, ...) do { if (!(cond)) return ibp_err_set(err, __VA_ARGS__); } while (0)

static bool check_names(const ibp_table_t *t, ibp_err_t *err)
{
    for (uint32_t i = 0; i < t->n[IBP_SEC_ZONES]; i++) {
        const ibp_tbl_zone_t *z = &t->zones[i];
        CHECK(str_ok(t, z->name) && str_len_ok(t, z->soa_tail, z->soa_tail_len) && z->id > 0,
              "zone %u is malformed", i);
    }
    for (uint32_t i = 0; i < t->n[IBP_SEC_NAMES]; i++) {
        const ibp_tbl_name_t *nm = &t->names[i];
        CHECK(str_len_ok(t, nm->name, nm->name_len) &&
              idx_ok(nm->apex_zone, t->n[IBP_SEC_ZONES], true) &&
              idx_ok(nm->zone, t->n[IBP_SEC_ZONES], false) &&
              range_ok(nm->rr_first, nm->rr_count, t->n[IBP_SEC_RRS]) &&
              idx_ok(nm->host, t->n[IBP_SEC_HOSTS], true),
              "name %u is malformed", i);
    }
    uint32_t buckets = t->n[IBP_SEC_NAME_HASH];
    CHECK(buckets > 0 && (buckets & (buckets - 1)) == 0, "name hash size is not a power of two");
    for (uint32_t i = 0; i < buckets; i++)
        CHECK(t->name_hash[i] <= t->n[IBP_SEC_NAMES], "name hash bucket %u is out of range", i);
    for (uint32_t i = 0; i < t->n[IBP_SEC_RRS]; i++) {
        const ibp_tbl_rr_t *rr = &t->rrs[i];
        CHECK(str_len_ok(t, rr->tail, rr->tail_len) && str_ok(t, rr->content),
              "record %u is malformed", i);
    }
    return true;
}

static bool check_hosts(const ibp_table_t *t, ibp_err_t *err)
{
    for (uint32_t i = 0; i < t->n[IBP_SEC_HOSTS]; i++) {
        const ibp_tbl_host_t *h = &t->hosts[i];
        CHECK(idx_ok(h->name, t->n[IBP_SEC_NAMES], false) &&
              idx_ok(h->zone, t->n[IBP_SEC_ZONES], false) &&
              range_ok(h->cand_first, h->cand_count, t->n[IBP_SEC_CANDS]),
              "host %u is malformed", i);
        for (int f = 0; f < 2; f++)
            CHECK(idx_ok(h->policy[f], t->n[IBP_SEC_POLICIES], true) &&
                  str_len_ok(t, h->tail[f], h->tail_len[f]) &&
                  (h->policy[f] == IBP_TBL_NONE ||
                   t->policies[h->policy[f]].family == (f ? 6u : 4u)),
                  "host %u is malformed", i);
    }
    for (uint32_t i = 0; i < t->n[IBP_SEC_CANDS]; i++)
        CHECK(idx_ok(t->cands[i].member, t->n[IBP_SEC_MEMBERS], false) &&
              t->cands[i].skip[0] <= IBP_SKIP_MAX && t->cands[i].skip[1] <= IBP_SKIP_MAX,
              "candidate %u is malformed", i);
    for (uint32_t i = 0; i < t->n[IBP_SEC_MEMBERS]; i++) {
        const ibp_tbl_member_t *m = &t->members[i];
        CHECK(str_ok(t, m->key) && str_ok(t, m->name) &&
              idx_ok(m->target[0], t->n[IBP_SEC_TARGETS], true) &&
              idx_ok(m->target[1], t->n[IBP_SEC_TARGETS], true),
              "member %u is malformed", i);
    }
    for (uint32_t i = 0; i < t->n[IBP_SEC_TARGETS]; i++) {
        const ibp_tbl_target_t *tg = &t->targets[i];
        CHECK(idx_ok(tg->member, t->n[IBP_SEC_MEMBERS], true) &&
              str_len_ok(t, tg->text, tg->text_len) && tg->cc[3] == '\0',
              "target %u is malformed", i);
    }
    for (uint32_t i = 0; i < t->n[IBP_SEC_INPUTS]; i++)
        CHECK(str_ok(t, t->inputs[i].source) && str_ok(t, t->inputs[i].detail),
              "input %u is malformed", i);
    return true;
}

/* ---- the geo trie, maps and policies ------------------------------------ */

static bool geo_ref_ok(const ibp_table_t *t, uint32_t ref)
{
    return (ref & IBP_TBL_LEAF) ? (ref & ~IBP_TBL_LEAF) < t->geo->n_classes
                                : ref < t->n[IBP_SEC_NODES];
}

static bool same_trie(const ibp_table_t *t, const ibp_table_t *trusted)
{
    return trusted && trusted->n[IBP_SEC_NODES] == t->n[IBP_SEC_NODES] &&
           trusted->geo->root == t->geo->root &&
           !memcmp(trusted->nodes, t->nodes, (size_t)t->n[IBP_SEC_NODES] * 8);
}

/* Children point forward (checked first), so one pass in index order sees
 * every parent before its children: each node must be reached exactly once
 * from the root and lie above depth 128. That makes the trie a tree whose
 * walks, dumps and index builds are bounded by its size. */
static bool check_tree(const uint32_t *nodes, uint32_t n, const char *what, ibp_err_t *err)
{
    enum { UNSEEN = 0xFF };
    uint8_t *depth = malloc(n ? n : 1);
    if (!depth)
        return ibp_err_set(err, "out of memory checking the %s", what);
    memset(depth, UNSEEN, n);
    if (n)
        depth[0] = 0;
    bool ok = true;
    for (uint32_t k = 0; ok && k < n; k++) {
        ok = depth[k] != UNSEEN || ibp_err_set(err, "%s node %u is not reached from the root",
                                               what, k);
        for (unsigned c = 0; ok && c < 2; c++) {
            uint32_t child = nodes[2 * k + c];
            if (child & IBP_TBL_LEAF)
                continue;
            ok = (depth[child] == UNSEEN ||
                  ibp_err_set(err, "%s node %u is reached twice (not a tree)", what, child)) &&
                 (depth[k] + 1 < 128 ||
                  ibp_err_set(err, "%s deeper than 128 bits at node %u", what, child));
            depth[child] = (uint8_t)(depth[k] + 1);
        }
    }
    free(depth);
    return ok;
}

static bool check_geo_shape(const ibp_table_t *t, const ibp_table_t *trusted, ibp_err_t *err)
{
    uint32_t n = t->n[IBP_SEC_NODES];
    CHECK(t->n[IBP_SEC_GEO] == 1 && t->geo->n_classes > 0 && geo_ref_ok(t, t->geo->root) &&
          t->n[IBP_SEC_NODE_CLASS] == n && (n == 0) == !!(t->geo->root & IBP_TBL_LEAF) &&
          (n == 0 || t->geo->root == 0),
          "the geo trie's header is malformed");
    /* A trie proven a tree when trusted was loaded need not be again; its
     * leaves are classes if the class count is the same. */
    bool known = same_trie(t, trusted) && trusted->geo->n_classes == t->geo->n_classes;
    for (uint32_t k = 0; !known && k < 2 * n; k++)
        CHECK(geo_ref_ok(t, t->nodes[k]) && ((t->nodes[k] & IBP_TBL_LEAF) || t->nodes[k] > k / 2),
              "geo trie node %u points outside the trie or backwards", k / 2);
    if (!known && !check_tree(t->nodes, n, "geo trie", err))
        return false;
    for (uint32_t k = 0; k < n; k++)
        CHECK(t->node_class[k] < t->geo->n_classes,
              "geo trie node %u: node_class is not a class", k);
    return true;
}

/* The client-class trie: forward children, a tree, leaves that are classes;
 * texts in order, inside their section, each of the four columns. */
static bool check_clients(const ibp_table_t *t, const ibp_table_t *trusted, ibp_err_t *err)
{
    uint32_t n = t->n[IBP_SEC_CLIENT_NODES];
    if (!t->client) {
        CHECK(n == 0 && t->n[IBP_SEC_CLIENT_TEXT] == 0 && t->n[IBP_SEC_CLIENT_OFFS] == 0 &&
              t->n[IBP_SEC_CLIENT_INDEX] == 0,
              "client-class sections without their header");
        return true;
    }
    uint32_t classes = t->client->n_classes, root = t->client->root;
    CHECK(t->n[IBP_SEC_CLIENT] == 1 && classes > 0 && t->n[IBP_SEC_CLIENT_OFFS] == classes + 1 &&
          (n == 0 ? (root & IBP_TBL_LEAF) && (root & ~IBP_TBL_LEAF) < classes : root == 0),
          "the client-class trie's header is malformed");
    bool known = trusted && trusted->client && trusted->n[IBP_SEC_CLIENT_NODES] == n &&
                 trusted->client->n_classes == classes &&
                 !memcmp(trusted->client_nodes, t->client_nodes, (size_t)n * 8);
    for (uint32_t k = 0; !known && k < 2 * n; k++) {
        uint32_t ref = t->client_nodes[k];
        CHECK((ref & IBP_TBL_LEAF) ? (ref & ~IBP_TBL_LEAF) < classes : ref < n && ref > k / 2,
              "client-class trie node %u points outside the trie or backwards", k / 2);
    }
    if (!known && !check_tree(t->client_nodes, n, "client-class trie", err))
        return false;
    uint32_t n_index = t->n[IBP_SEC_CLIENT_INDEX];
    CHECK(n_index == 0 || n_index == 2 * IBP_TBL_INDEX_SIZE, "client-class index of %u entries",
          n_index);
    for (uint32_t k = 0; k < n_index; k++) {
        uint32_t ref = t->client_index[k];
        CHECK((ref & IBP_TBL_LEAF) ? (ref & ~IBP_TBL_LEAF) < classes : ref < n,
              "client-class index entry %u points outside the trie", k);
    }
    CHECK(t->client_offs[0] == 0 && t->client_offs[classes] == t->n[IBP_SEC_CLIENT_TEXT],
          "client-class texts do not fill their section");
    for (uint32_t c = 0; c < classes; c++) {
        uint32_t a = t->client_offs[c], b = t->client_offs[c + 1], tabs = 0;
        CHECK(a <= b && b - a <= IBP_USAGE_TEXT_MAX, "client class %u: text out of order", c);
        for (uint32_t i = a; i < b; i++) {
            unsigned char ch = (unsigned char)t->client_text[i];
            tabs += ch == '\t';
            CHECK(ch >= 0x20 || ch == '\t', "client class %u: a control character", c);
        }
        CHECK(tabs == 3, "client class %u: %u columns, not 4", c, tabs + 1);
    }
    return true;
}

ibp_map_view_t ibp_table_map_view(const ibp_table_t *t, uint32_t map)
{
    const ibp_tbl_map_t *m = &t->maps[map];
    return (ibp_map_view_t){.nodes = t->nodes, .node_class = t->node_class,
                            .uniform = t->uniform + m->uniform_first,
                            .choices = t->choices + m->choice_first,
                            .n_nodes = t->n[IBP_SEC_NODES], .n_classes = t->geo->n_classes};
}

/* The answer at ref if the map stops there (a leaf or a uniform node), else
 * IBP_TBL_NONE. */
static uint32_t stop_answer(const ibp_map_view_t *v, uint32_t ref)
{
    if (ref & IBP_TBL_LEAF)
        return v->choices[ref & ~IBP_TBL_LEAF];
    if (ibp_uniform_bit(v->uniform, ref))
        return v->choices[v->node_class[ref]];
    return IBP_TBL_NONE;
}

void ibp_map_roots(const ibp_map_view_t *v, uint32_t geo_root, uint32_t *root,
                   uint32_t *v4_root, uint32_t *v4_depth)
{
    uint32_t a = stop_answer(v, geo_root);
    *root = a != IBP_TBL_NONE ? IBP_TBL_LEAF | a : geo_root;
    uint32_t ref = geo_root;
    unsigned d = 0;
    while ((a = stop_answer(v, ref)) == IBP_TBL_NONE && d < 96) {
        ref = v->nodes[2 * ref];
        d++;
    }
    *v4_root = a != IBP_TBL_NONE ? IBP_TBL_LEAF | a : ref;
    *v4_depth = d;
}

static void index_fill(const ibp_map_view_t *v, uint32_t ref, unsigned depth, unsigned level,
                       uint32_t prefix, uint32_t *entries)
{
    uint32_t a = stop_answer(v, ref);
    if (a == IBP_TBL_NONE && level < IBP_TBL_INDEX_BITS) {
        index_fill(v, v->nodes[2 * ref], depth + 1, level + 1, prefix << 1, entries);
        index_fill(v, v->nodes[2 * ref + 1], depth + 1, level + 1, prefix << 1 | 1, entries);
        return;
    }
    uint32_t entry = a == IBP_TBL_NONE ? ref
                                       : IBP_TBL_LEAF | depth << IBP_IDX_DEPTH_SHIFT | a;
    unsigned free_bits = IBP_TBL_INDEX_BITS - level;
    for (uint32_t i = 0; i < 1u << free_bits; i++)
        entries[(prefix << free_bits) + i] = entry;
}

void ibp_map_index_build(const ibp_map_view_t *v, uint32_t root, unsigned depth,
                         uint32_t *entries)
{
    index_fill(v, root, depth, 0, 0, entries);
}

/* A map ref: a geo node, or LEAF | answer where the walk stops. */
static bool map_ref_ok(const ibp_table_t *t, const ibp_tbl_map_t *m, uint32_t ref)
{
    return (ref & IBP_TBL_LEAF) ? (ref & ~IBP_TBL_LEAF) < m->answer_count
                                : ref < t->n[IBP_SEC_NODES];
}

/* Every entry a walk may take: a node (at start + 16 bits) or a stop at a
 * depth no deeper than that with one of the map's answers. */
static bool index_in_range(const ibp_table_t *t, const ibp_tbl_map_t *m, uint32_t first,
                           uint32_t start, unsigned depth)
{
    if (first == IBP_TBL_NONE)
        return true;
    if (!range_ok(first, IBP_TBL_INDEX_SIZE, t->n[IBP_SEC_INDEX]) || (start & IBP_TBL_LEAF) ||
        depth % 8 || depth + IBP_TBL_INDEX_BITS > IBP_IDX_DEPTH_MASK ||
        m->answer_count > IBP_IDX_ANSWER_MASK + 1)
        return false;
    const uint32_t *e = t->index + first;
    for (uint32_t k = 0; k < IBP_TBL_INDEX_SIZE; k++) {
        uint32_t stop = e[k] >> IBP_IDX_DEPTH_SHIFT & IBP_IDX_DEPTH_MASK;
        bool ok = (e[k] & IBP_TBL_LEAF)
                      ? (e[k] & IBP_IDX_ANSWER_MASK) < m->answer_count &&
                            stop <= depth + IBP_TBL_INDEX_BITS
                      : e[k] < t->n[IBP_SEC_NODES];
        if (!ok)
            return false;
    }
    return true;
}

/* What a lookup may touch: every reference in range. */
static bool check_map(const ibp_table_t *t, uint32_t i, ibp_err_t *err)
{
    const ibp_tbl_map_t *m = &t->maps[i];
    size_t words = IBP_UNIFORM_WORDS(t->n[IBP_SEC_NODES]);
    CHECK(m->answer_count > 0 && m->answer_count <= IBP_TBL_LEAF &&
          range_ok(m->choice_first, t->geo->n_classes, t->n[IBP_SEC_CHOICES]) &&
          m->uniform_first <= t->n[IBP_SEC_UNIFORM] &&
          words <= t->n[IBP_SEC_UNIFORM] - m->uniform_first && map_ref_ok(t, m, m->root) &&
          map_ref_ok(t, m, m->v4_root) && m->v4_depth <= 96,
          "map %u is malformed", i);
    const uint32_t *choices = t->choices + m->choice_first;
    for (uint32_t k = 0; k < t->geo->n_classes; k++)
        CHECK(choices[k] < m->answer_count, "map %u: class %u has no answer", i, k);
    CHECK(index_in_range(t, m, m->index_v4, m->v4_root, m->v4_depth) &&
          index_in_range(t, m, m->index_v6, m->root, 0),
          "map %u: trie index is malformed", i);
    return true;
}

static bool check_maps(const ibp_table_t *t, ibp_err_t *err)
{
    for (uint32_t i = 0; i < t->n[IBP_SEC_MAPS]; i++)
        if (!check_map(t, i, err))
            return false;
    return true;
}

/* ---- derived parts -------------------------------------------------------
 * node_class, the uniform bits, the roots and the indexes follow from the
 * trie and the choices. A wrong one cannot fault a lookup (every reference
 * was proven in range above) but would answer differently; the checksum
 * guards them as it guards every other byte, and this proves that the writer
 * derived them right. */

static bool node_class_ok(const ibp_table_t *t, ibp_err_t *err)
{
    for (uint32_t k = t->n[IBP_SEC_NODES]; k-- > 0;) {
        uint32_t left = t->nodes[2 * k];
        uint32_t want = (left & IBP_TBL_LEAF) ? left & ~IBP_TBL_LEAF : t->node_class[left];
        CHECK(t->node_class[k] == want,
              "geo trie node %u: node_class is not its leftmost class", k);
    }
    return true;
}

static bool index_same(const ibp_table_t *t, const ibp_map_view_t *v, uint32_t first,
                       uint32_t root, unsigned depth, uint32_t *scratch)
{
    if (first == IBP_TBL_NONE)
        return true;
    ibp_map_index_build(v, root, depth, scratch);
    return !memcmp(scratch, t->index + first, IBP_TBL_INDEX_SIZE * sizeof *scratch);
}

static bool map_derived_ok(const ibp_table_t *t, uint32_t i, const uint64_t *uniform,
                           uint32_t *scratch, ibp_err_t *err)
{
    const ibp_tbl_map_t *m = &t->maps[i];
    ibp_map_view_t v = ibp_table_map_view(t, i);
    CHECK(!memcmp(v.uniform, uniform, IBP_UNIFORM_WORDS(t->n[IBP_SEC_NODES]) * sizeof *uniform),
          "map %u: uniform bits disagree with its answers", i);
    uint32_t root, v4_root, v4_depth;
    ibp_map_roots(&v, t->geo->root, &root, &v4_root, &v4_depth);
    CHECK(root == m->root && v4_root == m->v4_root && v4_depth == m->v4_depth,
          "map %u: roots are not where the trie puts them", i);
    CHECK(index_same(t, &v, m->index_v4, m->v4_root, m->v4_depth, scratch) &&
          index_same(t, &v, m->index_v6, m->root, 0, scratch),
          "map %u: trie index disagrees with its map", i);
    return true;
}

/* The client-class index is what the trie gives. */
static bool client_index_ok(const ibp_table_t *t, ibp_err_t *err)
{
    if (!t->client_index)
        return true;
    uint32_t *want = malloc(2 * IBP_TBL_INDEX_SIZE * sizeof *want);
    if (!want)
        return ibp_err_set(err, "out of memory checking the client-class index");
    ibp_client_index_build(t->client_nodes, t->n[IBP_SEC_CLIENT_NODES], t->client->root, want);
    bool same = !memcmp(want, t->client_index, 2 * IBP_TBL_INDEX_SIZE * sizeof *want);
    free(want);
    return same || ibp_err_set(err, "client-class index disagrees with its trie");
}

bool ibp_table_check_derived(const ibp_table_t *t, ibp_err_t *err)
{
    if (!node_class_ok(t, err) || !client_index_ok(t, err))
        return false;
    uint32_t n_maps = t->n[IBP_SEC_MAPS], n_nodes = t->n[IBP_SEC_NODES];
    size_t words = IBP_UNIFORM_WORDS(n_nodes);
    const uint32_t **choices = calloc(n_maps ? n_maps : 1, sizeof *choices);
    uint64_t **bits = calloc(n_maps ? n_maps : 1, sizeof *bits);
    uint64_t *all = malloc((n_maps ? n_maps : 1) * (words ? words : 1) * sizeof *all);
    uint32_t *scratch = malloc(IBP_TBL_INDEX_SIZE * sizeof *scratch);
    bool ok = choices && bits && all && scratch;
    if (!ok)
        ibp_err_set(err, "out of memory checking the maps");
    for (uint32_t i = 0; ok && i < n_maps; i++) {
        choices[i] = t->choices + t->maps[i].choice_first;
        bits[i] = all + (size_t)i * words;
    }
    ok = ok && ibp_uniform_compute(t->nodes, n_nodes, t->geo->n_classes, choices, n_maps,
                                   bits, err);
    for (uint32_t i = 0; ok && i < n_maps; i++)
        ok = map_derived_ok(t, i, bits[i], scratch, err);
    free(choices);
    free(bits);
    free(all);
    free(scratch);
    return ok;
}

static bool net_host_bits_zero(const ibp_tbl_net_t *n)
{
    for (unsigned bit = n->len; bit < 128; bit++)
        if (n->addr[bit / 8] >> (7 - bit % 8) & 1)
            return false;
    return true;
}

/* Sorted and distinct, so that the most specific holder is well defined. */
static bool check_nets(const ibp_table_t *t, ibp_err_t *err)
{
    for (uint32_t i = 0; i < t->n_nets; i++) {
        const ibp_tbl_net_t *n = &t->nets[i];
        CHECK(n->len <= 128 && !(n->flags & ~(unsigned)IBP_NET_AUTO) && !n->pad &&
                  str_ok(t, n->text) && net_host_bits_zero(n),
              "net %u is malformed", i);
        if (i) {
            int r = memcmp(t->nets[i - 1].addr, n->addr, 16);
            CHECK(r < 0 || (r == 0 && t->nets[i - 1].len < n->len),
                  "net %u is out of order or repeated", i);
        }
    }
    return true;
}

static bool check_policy(const ibp_table_t *t, uint32_t i, ibp_err_t *err)
{
    const ibp_tbl_policy_t *p = &t->policies[i];
    CHECK((p->family == 4 || p->family == 6) && p->map < t->n[IBP_SEC_MAPS] &&
          range_ok(p->answer_first, p->answer_count, t->n[IBP_SEC_ANSWERS]) &&
          range_ok(p->spread_first, p->spread_count, t->n[IBP_SEC_SPREAD]) &&
          p->answer_count >= t->maps[p->map].answer_count && p->answers_per_family >= 1 &&
          p->answers_per_family <= IBP_TBL_MAX_ANSWERS,
          "policy %u is malformed", i);
    for (uint32_t k = 0; k < p->answer_count; k++) {
        const ibp_tbl_answer_t *a = &t->answers[p->answer_first + k];
        unsigned net = a->flags & IBP_ANSF_LISTED;
        CHECK(a->kind <= IBP_ANS_FAILOVER_SPREAD && a->n <= IBP_TBL_MAX_ANSWERS &&
                  (a->kind != IBP_ANS_FAILOVER_SPREAD || a->n >= 2) &&
                  !(a->flags & ~(unsigned)IBP_ANSF_KNOWN) &&
                  (net & (net - 1)) == 0 &&   /* one of the four at most */
                  (!net || (a->kind == IBP_ANS_TARGETS && !(a->flags & IBP_ANSF_OVERRIDE) &&
                            a->n >= 1)),
              "policy %u: answer %u is malformed", i, k);
        for (unsigned j = 0; j < a->n; j++)
            CHECK(a->target[j] < t->n[IBP_SEC_TARGETS], "policy %u: answer %u is malformed", i, k);
        /* A net's list names members, never a country override's address. */
        CHECK(!net || t->targets[a->target[0]].member != IBP_TBL_NONE,
              "policy %u: answer %u is malformed", i, k);
    }
    for (uint32_t k = 0; k < p->spread_count; k++)
        CHECK(t->spread[p->spread_first + k] < t->n[IBP_SEC_TARGETS],
              "policy %u: spread list is malformed", i);
    return true;
}

/* The sections a lookup reads by the megabyte: in a shared mapping they stay
 * in the file's pages, and every read of them is bounds-checked. */
static bool shared_section(int s)
{
    return s == IBP_SEC_NODES || s == IBP_SEC_INDEX || s == IBP_SEC_NODE_CLASS ||
           s == IBP_SEC_CHOICES || s == IBP_SEC_UNIFORM || s == IBP_SEC_CLIENT_NODES ||
           s == IBP_SEC_CLIENT_TEXT || s == IBP_SEC_CLIENT_OFFS || s == IBP_SEC_CLIENT_INDEX;
}

/* Private copies of the header and every small section, so that a file
 * rewritten in place cannot change what lookups index with. */
static bool copy_small_sections(ibp_table_t *t, ibp_err_t *err)
{
    size_t total = (sizeof *t->h + 7) & ~(size_t)7;
    for (int s = 0; s < IBP_SEC_COUNT; s++)
        if (!shared_section(s))
            total += (t->h->sections[s].size + 7) & ~(uint64_t)7;
    uint8_t *priv = malloc(total);
    if (!priv)
        return ibp_err_set(err, "out of memory copying the table's small sections");
    memcpy(priv, t->h, sizeof *t->h);
    t->h = (const ibp_tbl_header_t *)priv;
    size_t at = (sizeof *t->h + 7) & ~(size_t)7;
    const void **ptr[IBP_SEC_COUNT] = {
        [IBP_SEC_STRINGS] = (const void **)&t->strings, [IBP_SEC_ZONES] = (const void **)&t->zones,
        [IBP_SEC_NAMES] = (const void **)&t->names,
        [IBP_SEC_NAME_HASH] = (const void **)&t->name_hash,
        [IBP_SEC_RRS] = (const void **)&t->rrs, [IBP_SEC_HOSTS] = (const void **)&t->hosts,
        [IBP_SEC_CANDS] = (const void **)&t->cands, [IBP_SEC_MEMBERS] = (const void **)&t->members,
        [IBP_SEC_TARGETS] = (const void **)&t->targets,
        [IBP_SEC_POLICIES] = (const void **)&t->policies,
        [IBP_SEC_ANSWERS] = (const void **)&t->answers,
        [IBP_SEC_SPREAD] = (const void **)&t->spread,
        [IBP_SEC_INPUTS] = (const void **)&t->inputs, [IBP_SEC_GEO] = (const void **)&t->geo,
        [IBP_SEC_MAPS] = (const void **)&t->maps, [IBP_SEC_CLIENT] = (const void **)&t->client,
    };
    for (int s = 0; s < IBP_SEC_COUNT; s++) {
        if (shared_section(s))
            continue;
        size_t size = t->h->sections[s].size;
        if (!size)
            continue;   /* keeps t->client NULL for a table without client classes */
        memcpy(priv + at, *ptr[s], size);
        *ptr[s] = priv + at;
        at += (size + 7) & ~(size_t)7;
    }
    t->priv = priv;
    return true;
}

static bool validate(ibp_table_t *t, const ibp_table_t *trusted, ibp_err_t *err)
{
    if (!check_header(t->base, t->size, err) || !map_sections(t, err))
        return false;
    if (t->shared && !copy_small_sections(t, err))
        return false;
    CHECK(t->strings_size > 0 && t->strings[t->strings_size - 1] == '\0',
          "string section is not terminated");
    CHECK(!t->h->map_text || str_ok(t, t->h->map_text - 1), "Routing.Map text out of range");
    t->hash_mask = t->n[IBP_SEC_NAME_HASH] - 1;
    if (!check_names(t, err) || !check_nets(t, err) || !check_geo_shape(t, trusted, err) ||
        !check_maps(t, err) ||
        !check_clients(t, trusted, err))
        return false;
    for (uint32_t i = 0; i < t->n[IBP_SEC_POLICIES]; i++)
        if (!check_policy(t, i, err))
            return false;
    return check_hosts(t, err);
}

bool ibp_table_attach(const uint8_t *buf, size_t len, ibp_table_t *t, ibp_err_t *err)
{
    return ibp_table_attach_trusting(buf, len, NULL, t, err);
}

bool ibp_table_attach_trusting(const uint8_t *buf, size_t len, const ibp_table_t *trusted,
                               ibp_table_t *t, ibp_err_t *err)
{
    memset(t, 0, sizeof *t);
    t->base = buf;
    t->size = len;
    t->h = (const ibp_tbl_header_t *)buf;
    if (!validate(t, trusted, err)) {
        memset(t, 0, sizeof *t);
        return false;
    }
    return true;
}

bool ibp_table_peek(const char *path, uint64_t *generation, uint64_t *build_time,
                    ibp_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ibp_err_set(err, "%s: %s", path, strerror(errno));
    ibp_tbl_header_t h;
    ssize_t got = pread(fd, &h, offsetof(ibp_tbl_header_t, ttl), 0);
    close(fd);
    if (got != (ssize_t)offsetof(ibp_tbl_header_t, ttl) || memcmp(h.magic, IBP_TBL_MAGIC, 8) ||
        h.endian != IBP_TBL_ENDIAN)
        return ibp_err_set(err, "%s: not an ibpdns routing table", path);
    if (h.version == IBP_TBL_VERSION) {
        /* Our own format is trusted only whole: a corrupt table's counters
         * could be anything. */
        ibp_table_t t;
        if (!ibp_table_open(path, &t, err))
            return false;
        h.generation = t.h->generation;
        h.build_time = t.h->build_time;
        ibp_table_close(&t);
    }
    *generation = h.generation;
    *build_time = h.build_time;
    return true;
}

/* Reads all of fd into buf; a file that shrinks while being read is a
 * rewrite in progress. */
static bool read_whole(int fd, uint8_t *buf, size_t len, const char *path, ibp_err_t *err)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ibp_err_set(err, "%s: read: %s", path, strerror(errno));
        if (n == 0)
            return ibp_err_set(err, "%s: shrank from %zu to %zu bytes while being read (rewritten "
                               "in place?)", path, len, got);
        got += (size_t)n;
    }
    return true;
}

/* A private copy, not a mapping of the file: a table rewritten in place
 * (cp, truncate) would otherwise change under validated pointers, and a
 * truncated mapping raises SIGBUS. The copy is read-only once validated. */
static bool file_size(int fd, const char *path, size_t *len, ibp_err_t *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0)
        return ibp_err_set(err, "%s: not a regular, non-empty file", path);
    *len = (size_t)st.st_size;
    return true;
}

bool ibp_table_read_fd(int fd, const char *path, ibp_table_t *t, ibp_err_t *err)
{
    memset(t, 0, sizeof *t);
    size_t len = 0;
    if (!file_size(fd, path, &len, err))
        return false;
    void *copy = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (copy == MAP_FAILED)
        return ibp_err_set(err, "%s: %zu bytes: %s", path, len, strerror(errno));
    bool ok = read_whole(fd, copy, len, path, err);
    if (ok && mprotect(copy, len, PROT_READ) != 0)
        ok = ibp_err_set(err, "%s: mprotect: %s", path, strerror(errno));
    if (ok && !ibp_table_attach(copy, len, t, err))
        ok = ibp_err_prefix(err, "%s", path);
    if (!ok) {
        munmap(copy, len);
        return false;
    }
    t->mapped = true;
    return true;
}

bool ibp_table_map_file(int fd, const char *path, const uint8_t **map, size_t *len,
                        ibp_err_t *err)
{
    if (!file_size(fd, path, len, err))
        return false;
    void *m = mmap(NULL, *len, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return ibp_err_set(err, "%s: mmap of %zu bytes: %s", path, *len, strerror(errno));
    *map = m;
    return true;
}

bool ibp_table_map_fd(int fd, const char *path, ibp_table_t *t, ibp_err_t *err)
{
    memset(t, 0, sizeof *t);
    const uint8_t *map;
    size_t len = 0;
    if (!ibp_table_map_file(fd, path, &map, &len, err))
        return false;
    if (!ibp_table_attach_shared(map, len, NULL, t, err)) {
        munmap((void *)map, len);
        return ibp_err_prefix(err, "%s", path);
    }
    t->mapped = true;
    return true;
}

bool ibp_table_attach_shared(const uint8_t *map, size_t len, const ibp_table_t *trusted,
                             ibp_table_t *t, ibp_err_t *err)
{
    memset(t, 0, sizeof *t);
    t->base = map;
    t->size = len;
    t->h = (const ibp_tbl_header_t *)map;
    t->shared = true;
    if (!validate(t, trusted, err)) {
        free(t->priv);
        memset(t, 0, sizeof *t);
        return false;
    }
    return true;
}

bool ibp_table_open(const char *path, ibp_table_t *t, ibp_err_t *err)
{
    memset(t, 0, sizeof *t);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ibp_err_set(err, "%s: %s", path, strerror(errno));
    bool ok = ibp_table_read_fd(fd, path, t, err);
    close(fd);
    return ok;
}

void ibp_table_close(ibp_table_t *t)
{
    if (t->mapped && t->base)
        munmap((void *)t->base, t->size);
    free(t->priv);
    memset(t, 0, sizeof *t);
}

static void leaves_below(const ibp_map_view_t *v, uint32_t ref, unsigned depth, uint8_t addr[16],
                         ibp_leaf_fn fn, void *ctx)
{
    uint32_t a = stop_answer(v, ref);
    if (a != IBP_TBL_NONE) {
        fn(ctx, addr, depth, a);
        return;
    }
    if (depth >= 128)
        return;   /* never in an attached table, which is a tree above bit 128 */
    leaves_below(v, v->nodes[2 * ref], depth + 1, addr, fn, ctx);
    addr[depth / 8] |= (uint8_t)(0x80 >> (depth % 8));
    leaves_below(v, v->nodes[2 * ref + 1], depth + 1, addr, fn, ctx);
    addr[depth / 8] &= (uint8_t)~(0x80 >> (depth % 8));
}

void ibp_table_foreach_leaf(const ibp_table_t *t, uint32_t policy, ibp_leaf_fn fn, void *ctx)
{
    ibp_map_view_t v = ibp_table_map_view(t, t->policies[policy].map);
    uint8_t addr[16] = {0};
    leaves_below(&v, t->geo->root, 0, addr, fn, ctx);
}

/* ---- queries ------------------------------------------------------------ */

/* Names are hashed and compared eight bytes at a time: the coprocess looks
 * up one for every request. Case folding is ASCII only, as DNS's. */
static inline uint64_t lower8(uint64_t x)
{
    uint64_t heptets = x & 0x7f7f7f7f7f7f7f7fULL;
    uint64_t above_z = heptets + 0x2525252525252525ULL;   /* high bit set if > 'Z' */
    uint64_t from_a = heptets + 0x3f3f3f3f3f3f3f3fULL;    /* high bit set if >= 'A' */
    uint64_t upper = ~x & (from_a ^ above_z) & 0x8080808080808080ULL;
    return x | (upper >> 2);
}

/* The n (> 0) bytes at p as a native word, zero-filled above n. On
 * little-endian machines short tails are read as two overlapping halves
 * (OR of equal bytes changes nothing): a byte loop was a tenth of a lookup. */
static inline uint64_t load8(const char *p, size_t n)
{
    uint64_t w;
    if (n >= 8) {
        memcpy(&w, p, 8);   /* a constant size: one load */
        return w;
    }
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const unsigned char *u = (const unsigned char *)p;
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + n - 4, 4);
        return lo | (uint64_t)hi << (8 * (n - 4));
    }
    return (uint64_t)u[0] | (uint64_t)u[n / 2] << (8 * (n / 2)) | (uint64_t)u[n - 1] << (8 * (n - 1));
#else
    unsigned char bytes[8] = {0};
    memcpy(bytes, p, n);
    memcpy(&w, bytes, 8);
    return w;
#endif
}

/* Lowercases name into out (which must hold len rounded up to 8 bytes) and
 * hashes it. */
static uint32_t fold_and_hash(const char *name, size_t len, char *out)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ len;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t w = lower8(load8(name + i, len - i));
        memcpy(out + i, &w, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    return (uint32_t)(h ^ (h >> 29));
}

uint32_t ibp_name_hash(const char *name, size_t len)
{
    char folded[IBP_NAME_BUF];
    if (len > IBP_NAME_MAX)
        len = IBP_NAME_MAX;   /* no such name is in a table anyway */
    return fold_and_hash(name, len, folded);
}

const ibp_tbl_name_t *ibp_table_find(const ibp_table_t *t, const char *name, size_t len)
{
    if (!t->base)
        return NULL;
    if (len > 1 && name[len - 1] == '.')
        len--;
    if (len > IBP_NAME_MAX)
        return NULL;
    char folded[IBP_NAME_BUF];
    uint32_t h = fold_and_hash(name, len, folded);
    for (uint32_t i = h & t->hash_mask, probes = 0; probes <= t->hash_mask;
         i = (i + 1) & t->hash_mask, probes++) {
        uint32_t slot = t->name_hash[i];
        if (!slot)
            return NULL;
        const ibp_tbl_name_t *nm = &t->names[slot - 1];
        if (nm->hash == h && nm->name_len == len && !memcmp(t->strings + nm->name, folded, len))
            return nm;
    }
    return NULL;
}

/* A remote may carry a %iface suffix on some setups. */
static bool parse_remote(const char *s, size_t len, ibp_addr_t *a, bool *v4)
{
    if (ibp_addr_parse(s, len, a, v4))
        return true;
    const char *pct = memchr(s, '%', len);
    return pct && ibp_addr_parse(s, (size_t)(pct - s), a, v4);
}

/* The ECS field is remote/32 (or /128) when the query carried no ECS, and
 * 0.0.0.0/0 for PowerDNS's internal lookups: both mean "use the remote". */
bool ibp_client_parse(const char *remote, size_t remote_len, const char *ecs, size_t ecs_len,
                      ibp_client_t *c)
{
    c->has_resolver = false;   /* resolver and resolver_v4 are read only if it is set */
    if (!parse_remote(remote, remote_len, &c->addr, &c->v4))
        return false;
    if (!ecs)
        return true;
    ibp_addr_t pfx;
    unsigned plen;
    bool v4;
    if (!ibp_prefix_parse(ecs, ecs_len, &pfx, &plen, &v4))
        return false;
    bool full = plen == (v4 ? 32u : 128u);
    if (plen == 0 || (full && v4 == c->v4 && !memcmp(pfx.b, c->addr.b, 16)))
        return true;
    c->resolver = c->addr;
    c->resolver_v4 = c->v4;
    c->has_resolver = true;
    ibp_addr_mask(&pfx, v4 ? 96 + plen : plen);
    c->addr = pfx;
    c->v4 = v4;
    return true;
}

typedef struct leaf {
    const ibp_tbl_answer_t *answer;
    uint32_t index;
    unsigned scope;        /* in the client address's family */
    unsigned spread_bits;  /* prefix hashed when spreading, same family */
    unsigned scope_base;   /* 96 when the walk was in the IPv4 space */
    ibp_addr_t key;        /* the address walked (IPv4 moved to ::/96) */
} leaf_t;

static uint32_t indexed_walk(const ibp_table_t *t, const ibp_map_view_t *v, uint32_t index,
                             uint32_t ref, unsigned depth, const uint8_t key[16],
                             unsigned *stop_depth)
{
    if (ref & IBP_TBL_LEAF) {
        *stop_depth = depth;
        return ref & ~IBP_TBL_LEAF;
    }
    if (index != IBP_TBL_NONE) {
        const uint8_t *k = key + depth / 8;   /* indexes start on a byte (validated) */
        uint32_t entry = t->index[index + ((uint32_t)k[0] << 8 | k[1])];
        if (entry & IBP_TBL_LEAF) {
            *stop_depth = entry >> IBP_IDX_DEPTH_SHIFT & IBP_IDX_DEPTH_MASK;
            return entry & IBP_IDX_ANSWER_MASK;
        }
        ref = entry;
        depth += IBP_TBL_INDEX_BITS;
    }
    return ibp_map_walk_from(v->nodes, v->node_class, v->uniform, v->choices, v->n_nodes,
                             v->n_classes, ref, depth, key, stop_depth);
}

static void tree_lookup(const ibp_table_t *t, const ibp_tbl_policy_t *p, const ibp_addr_t *a,
                        bool v4, leaf_t *out)
{
    const ibp_tbl_map_t *m = &t->maps[p->map];
    ibp_map_view_t v = ibp_table_map_view(t, p->map);
    ibp_addr_t key = *a;
    uint32_t idx, v4bits = 0;
    unsigned depth;
    unsigned embedded = v4 ? 0 : ibp_addr_v4_embedded(a, &v4bits);
    if (embedded) {
        memset(key.b, 0, 12);
        key.b[12] = (uint8_t)(v4bits >> 24);
        key.b[13] = (uint8_t)(v4bits >> 16);
        key.b[14] = (uint8_t)(v4bits >> 8);
        key.b[15] = (uint8_t)v4bits;
    }
    if (v4 || embedded)
        idx = indexed_walk(t, &v, m->index_v4, m->v4_root, m->v4_depth, key.b, &depth);
    else
        idx = indexed_walk(t, &v, m->index_v6, m->root, 0, key.b, &depth);
    if (idx >= p->answer_count)
        idx = 0;   /* only a shared mapping rewritten under us: undef */
    out->index = idx;
    out->answer = &t->answers[p->answer_first + idx];
    out->scope_base = (v4 || embedded) ? 96 : 0;
    if (v4 || embedded) {
        unsigned v4scope = depth > 96 ? depth - 96 : 0;
        out->scope = v4 ? v4scope : v4scope + embedded;
        out->spread_bits = (v4 ? 0 : embedded) + t->h->spread_v4_bits;
    } else {
        out->scope = depth;
        out->spread_bits = t->h->spread_v6_bits;
    }
    out->key = key;
}

static void spread(const ibp_table_t *t, const ibp_tbl_policy_t *p, const leaf_t *l,
                   ibp_route_t *out)
{
    if (p->spread_count == 0)
        return;
    /* Hash the client's prefix, not the address, so a whole /24 (/48) sticks
     * to one member and the answer is honest about its scope. */
    ibp_addr_t masked = l->key;
    bool v4_space = l->scope_base == 96;
    ibp_addr_mask(&masked, v4_space ? 96 + t->h->spread_v4_bits : t->h->spread_v6_bits);
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ masked.b[i]) * 16777619u;
    uint32_t start = h % p->spread_count;
    unsigned n = p->answers_per_family < p->spread_count ? p->answers_per_family : p->spread_count;
    for (unsigned i = 0; i < n; i++)
        out->target[i] = t->spread[p->spread_first + (start + i) % p->spread_count];
    out->n = n;
    out->how = IBP_HOW_SPREAD;
    if (out->scope < l->spread_bits)
        out->scope = l->spread_bits;
}

static uint32_t fnv1a(uint32_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* Highest random weight of (client prefix, target address): each target
 * keeps its share when others come or go, and the shares are equal. */
static void failover_spread(const ibp_table_t *t, const ibp_tbl_policy_t *p, const leaf_t *l,
                            const ibp_tbl_answer_t *a, ibp_route_t *out)
{
    ibp_addr_t masked = l->key;
    ibp_addr_mask(&masked, l->scope_base == 96 ? 96 + t->h->spread_v4_bits : t->h->spread_v6_bits);
    uint32_t prefix_hash = fnv1a(2166136261u, masked.b, 16);
    uint32_t weight[IBP_TBL_MAX_ANSWERS];
    bool taken[IBP_TBL_MAX_ANSWERS] = {false};
    unsigned n = a->n <= IBP_TBL_MAX_ANSWERS ? a->n : IBP_TBL_MAX_ANSWERS;
    for (unsigned i = 0; i < n; i++) {
        if (a->target[i] >= t->n[IBP_SEC_TARGETS]) {   /* a shared mapping rewritten under us */
            weight[i] = 0;
            continue;
        }
        /* FNV alone mixes the last bytes poorly: finish with a multiply-shift. */
        uint32_t w = fnv1a(prefix_hash, t->targets[a->target[i]].addr, 16);
        w ^= w >> 15;
        w *= 0x2c1b3c6du;
        weight[i] = w ^ (w >> 12);
    }
    unsigned want = p->answers_per_family < n ? p->answers_per_family : n;
    out->n = 0;
    for (unsigned k = 0; k < want; k++) {
        unsigned best = n;
        for (unsigned i = 0; i < n; i++)
            if (!taken[i] && (best == n || weight[i] > weight[best]))
                best = i;
        taken[best] = true;
        out->target[out->n++] = a->target[best];
        if (k == 0)
            out->spread_pick = best + 1;
    }
    out->spread_of = n;
    out->how = IBP_HOW_FAILOVER_SPREAD;
    if (out->scope < l->spread_bits)
        out->scope = l->spread_bits;
}

static void take_targets(const ibp_tbl_answer_t *a, enum ibp_route_how how, ibp_route_t *out)
{
    out->n = a->n;
    memcpy(out->target, a->target, a->n * sizeof a->target[0]);
    if (a->flags & IBP_ANSF_OVERRIDE)
        how = IBP_HOW_OVERRIDE;
    else if (a->flags & IBP_ANSF_FAIL_OPEN && how == IBP_HOW_NEAREST)
        how = IBP_HOW_FAIL_OPEN;
    else if (a->flags & IBP_ANSF_NET && how == IBP_HOW_NEAREST)
        how = IBP_HOW_NET;
    else if (a->flags & IBP_ANSF_NET_FALLBACK && how == IBP_HOW_NEAREST)
        how = IBP_HOW_NET_FALLBACK;
    else if (a->flags & IBP_ANSF_MAP && how == IBP_HOW_NEAREST)
        how = IBP_HOW_MAP;
    else if (a->flags & IBP_ANSF_MAP_FALLBACK && how == IBP_HOW_NEAREST)
        how = IBP_HOW_MAP_FALLBACK;
    out->how = how;
}

void ibp_table_route(const ibp_table_t *t, const ibp_tbl_host_t *host, unsigned family,
                     const ibp_client_t *client, ibp_route_t *out)
{
    memset(out, 0, sizeof *out);
    uint32_t pi = host->policy[family & 1];
    if (pi == IBP_TBL_NONE)
        return;
    const ibp_tbl_policy_t *p = &t->policies[pi];
    leaf_t l;
    tree_lookup(t, p, &client->addr, client->v4, &l);
    out->scope = l.scope;
    out->answer = l.index;
    const ibp_tbl_answer_t *a = l.answer;
    if (a->kind == IBP_ANS_UNLOCATED && client->has_resolver) {
        leaf_t r;
        tree_lookup(t, p, &client->resolver, client->resolver_v4, &r);
        if (r.answer->kind == IBP_ANS_TARGETS) {
            take_targets(r.answer, IBP_HOW_RESOLVER, out);
            out->answer = r.index;
            a = NULL;
        } else if (r.answer->kind == IBP_ANS_FAILOVER_SPREAD) {
            failover_spread(t, p, &l, r.answer, out);   /* the client's prefix decides */
            out->answer = r.index;
            a = NULL;
        }
    }
    if (a && a->kind == IBP_ANS_TARGETS)
        take_targets(a, IBP_HOW_NEAREST, out);
    else if (a && a->kind == IBP_ANS_FAILOVER_SPREAD)
        failover_spread(t, p, &l, a, out);
    else if (a && a->kind == IBP_ANS_UNLOCATED)
        spread(t, p, &l, out);
    /* A zero scope lets PowerDNS cache one client's answer for everybody. */
    if (!(p->flags & IBP_POL_CLIENT_DEPENDENT))
        out->scope = 0;
    else if (out->scope == 0)
        out->scope = 1;
}

#define UNKNOWN_CLIENT "?" "?\tUnknown\t\t"

uint32_t ibp_table_client_classes(const ibp_table_t *t)
{
    return t->client ? t->client->n_classes : 1;
}

/* Bounds-checked at every step: in a shared mapping the file could be
 * rewritten under us (then the answer is "unknown", never a stray read). */
uint32_t ibp_table_client_class(const ibp_table_t *t, const ibp_client_t *client)
{
    if (!t->client)
        return 0;
    const uint8_t *key = client->addr.b;   /* an IPv4 client is at ::/96 already */
    uint8_t mapped[16];
    uint32_t v4bits;
    if (!client->v4 && ibp_addr_v4_embedded(&client->addr, &v4bits)) {
        memset(mapped, 0, 12);
        mapped[12] = (uint8_t)(v4bits >> 24);
        mapped[13] = (uint8_t)(v4bits >> 16);
        mapped[14] = (uint8_t)(v4bits >> 8);
        mapped[15] = (uint8_t)v4bits;
        key = mapped;
    }
    uint32_t ref = t->client->root, n = t->n[IBP_SEC_CLIENT_NODES];
    unsigned depth = 0;
    if (t->client_index) {   /* 16 levels in one load: the walk misses the cache at each */
        static const uint8_t zeros[12];
        bool v4_space = client->v4 || !memcmp(key, zeros, 12);
        unsigned at = v4_space ? 12 : 0;
        ref = t->client_index[(v4_space ? 0 : IBP_TBL_INDEX_SIZE) + (key[at] << 8 | key[at + 1])];
        depth = v4_space ? IBP_CLIENT_INDEX_V4_DEPTH + IBP_TBL_INDEX_BITS : IBP_TBL_INDEX_BITS;
    }
    for (; !(ref & IBP_TBL_LEAF); depth++) {
        if (ref >= n || depth >= 128)
            return 0;
        unsigned bit = key[depth >> 3] >> (7 - (depth & 7)) & 1;
        ref = t->client_nodes[2 * ref + bit];
    }
    uint32_t cls = ref & ~IBP_TBL_LEAF;
    return cls < t->client->n_classes ? cls : 0;
}

/* Where the walk of key stands at depth `to` (or the leaf it stopped at). */
static uint32_t client_walk_to(const uint32_t *nodes, uint32_t root, const uint8_t key[16],
                               unsigned to)
{
    uint32_t ref = root;
    for (unsigned d = 0; d < to && !(ref & IBP_TBL_LEAF); d++)
        ref = nodes[2 * ref + (key[d >> 3] >> (7 - (d & 7)) & 1)];
    return ref;
}

void ibp_client_index_build(const uint32_t *nodes, uint32_t n_nodes, uint32_t root,
                            uint32_t *entries)
{
    (void)n_nodes;   /* a valid tree: every walk ends in it */
    for (unsigned half = 0; half < 2; half++) {
        unsigned at = half ? 0 : IBP_CLIENT_INDEX_V4_DEPTH / 8;
        unsigned to = (half ? 0 : IBP_CLIENT_INDEX_V4_DEPTH) + IBP_TBL_INDEX_BITS;
        /* The first levels are shared: walk to the index's start once. */
        uint8_t key[16] = {0};
        uint32_t start = client_walk_to(nodes, root, key, to - IBP_TBL_INDEX_BITS);
        for (uint32_t k = 0; k < IBP_TBL_INDEX_SIZE; k++) {
            key[at] = (uint8_t)(k >> 8);
            key[at + 1] = (uint8_t)k;
            uint32_t ref = start;
            for (unsigned d = to - IBP_TBL_INDEX_BITS; d < to && !(ref & IBP_TBL_LEAF); d++)
                ref = nodes[2 * ref + (key[d >> 3] >> (7 - (d & 7)) & 1)];
            entries[half * IBP_TBL_INDEX_SIZE + k] = ref;
        }
    }
}

const char *ibp_table_client_text(const ibp_table_t *t, uint32_t cls, uint32_t *len)
{
    if (t->client && cls < t->client->n_classes) {
        uint32_t a = t->client_offs[cls], b = t->client_offs[cls + 1];
        if (a <= b && b <= t->n[IBP_SEC_CLIENT_TEXT] && b - a <= IBP_USAGE_TEXT_MAX) {
            *len = b - a;
            return t->client_text + a;
        }
    }
    *len = sizeof UNKNOWN_CLIENT - 1;
    return UNKNOWN_CLIENT;
}

const char *ibp_route_how_name(enum ibp_route_how how)
{
    static const char *const names[] = {"none", "nearest", "fail-open", "override",
                                        "resolver-location", "spread", "failover-spread",
                                        "net", "net-fallback", "map", "map-fallback"};
    static_assert(sizeof names / sizeof names[0] == IBP_HOW_LAST + 1, "a name per how");
    return how <= IBP_HOW_LAST ? names[how] : "?";
}

static void mask_to(uint8_t out[16], const uint8_t addr[16], unsigned len)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = len >= 8 * (i + 1) ? 8 : len > 8 * i ? len - 8 * i : 0;
        out[i] = keep ? (uint8_t)(addr[i] & (0xFFu << (8 - keep))) : 0;
    }
}

/* The net that is exactly start/len, by binary search over the nets'
 * (start, len) order (check_nets). */
static const ibp_tbl_net_t *net_exact(const ibp_table_t *t, const uint8_t start[16], unsigned len)
{
    uint32_t lo = 0, hi = t->n_nets;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const ibp_tbl_net_t *n = &t->nets[mid];
        int r = memcmp(n->addr, start, 16);
        if (r == 0 && n->len == len)
            return n;
        if (r < 0 || (r == 0 && n->len < len))
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The most specific net holding addr: one exact search per prefix length,
 * longest first (129 searches at most, whatever the number of nets; a scan
 * would cost an explanation of a million-net table a million compares). */
const ibp_tbl_net_t *ibp_table_net_of(const ibp_table_t *t, const uint8_t addr[16])
{
    uint8_t start[16];
    for (int len = 128; len >= 0 && t->n_nets; len--) {
        mask_to(start, addr, (unsigned)len);
        const ibp_tbl_net_t *n = net_exact(t, start, (unsigned)len);
        if (n)
            return n;
    }
    return NULL;
}

const char *ibp_skip_name(unsigned skip)
{
    static const char *const names[] = {"", "offline", "override", "inactive", "no-address",
                                        "unnamed"};
    return skip <= IBP_SKIP_MAX ? names[skip] : "?";
}

const char *ibp_rrtype_name(unsigned type)
{
    switch (type) {
    case 1: return "A";
    case 2: return "NS";
    case 5: return "CNAME";
    case 6: return "SOA";
    case 12: return "PTR";
    case 15: return "MX";
    case 16: return "TXT";
    case 28: return "AAAA";
    case 33: return "SRV";
    case 257: return "CAA";
    case 255: return "ANY";
    default: return NULL;
    }
}
