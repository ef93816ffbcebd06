/* The MaxMind search-tree walk: see ibp_mmdb_walk.h. */
#include "ibp_mmdb_walk.h"

#include <errno.h>
#include <string.h>

/* IPv6 ranges that carry IPv4 addresses. Clients there are looked up as
 * IPv4, so their space is filled with placeholders that never merge with
 * real networks (gdnsd does the same), keeping neighbouring scopes honest. */
typedef struct alias_range {
    ibp_u128_t prefix;
    unsigned len;
} alias_range_t;

#define U128(hi, lo) (((ibp_u128_t)(hi) << 64) | (ibp_u128_t)(lo))
static const alias_range_t v4_aliases[] = {
    {U128(0x0064ff9b00000000ULL, 0), 96},              /* NAT64 well-known prefix */
    {U128(0, 0x0000ffff00000000ULL), 96},              /* v4-mapped */
    {U128(0, 0xffff000000000000ULL), 96},              /* SIIT */
    {U128(0x2001000000000000ULL, 0), 32},              /* Teredo */
    {U128(0x2002000000000000ULL, 0), 16},              /* 6to4 */
};

/* Every alias range lies in one of these /16s: a cheap first test. */
static bool may_touch_alias(ibp_u128_t p, unsigned len)
{
    unsigned top = (unsigned)(p >> 112);
    return len < 16 || top == 0x0000 || top == 0x0064 || top == 0x2001 || top == 0x2002;
}

static bool prefix_within(ibp_u128_t p, unsigned len, const alias_range_t *a)
{
    if (len < a->len)
        return false;
    ibp_u128_t mask = ~(ibp_u128_t)0 << (128 - a->len);
    return (p & mask) == a->prefix;
}

static bool prefix_contains(ibp_u128_t p, unsigned len, const alias_range_t *a)
{
    if (len >= a->len)
        return false;
    ibp_u128_t mask = len ? ~(ibp_u128_t)0 << (128 - len) : 0;
    return (a->prefix & mask) == p;
}

/* Appends p/len with class id, carving out the v4 alias ranges. */
static bool emit(ibp_mmdb_walk_t *w, ibp_u128_t p, unsigned len, uint32_t id)
{
    if (!may_touch_alias(p, len))
        return ibp_nlist_append(w->list, len, id, w->err);
    for (size_t i = 0; i < sizeof v4_aliases / sizeof v4_aliases[0]; i++) {
        if (prefix_within(p, len, &v4_aliases[i]))
            return ibp_nlist_append(w->list, len, w->undef, w->err);
        if (prefix_contains(p, len, &v4_aliases[i]))
            return emit(w, p, len + 1, id) &&
                   emit(w, p | ((ibp_u128_t)1 << (127 - len)), len + 1, id);
    }
    return ibp_nlist_append(w->list, len, id, w->err);
}

typedef struct pending {
    uint64_t record;
    uint8_t type;
    MMDB_entry_s entry;
    ibp_u128_t prefix;
    unsigned len;          /* in the 128-bit space */
} pending_t;

static bool read_children(ibp_mmdb_walk_t *w, const pending_t *at, pending_t kids[2])
{
    if (w->n_nodes++ > w->node_budget)
        return ibp_err_set(w->err, "search tree visits more nodes than it has: corrupt tree");
    if (at->record > UINT32_MAX)
        return ibp_err_set(w->err, "search tree node %llu out of range",
                           (unsigned long long)at->record);
    MMDB_search_node_s node;
    int status = MMDB_read_node(w->db, (uint32_t)at->record, &node);
    if (status != MMDB_SUCCESS)
        return ibp_err_set(w->err, "corrupt search tree at node %llu: %s",
                           (unsigned long long)at->record, MMDB_strerror(status));
    ibp_u128_t bit = (ibp_u128_t)1 << (127 - at->len);
    kids[0] = (pending_t){node.left_record, node.left_record_type, node.left_record_entry,
                          at->prefix, at->len + 1};
    kids[1] = (pending_t){node.right_record, node.right_record_type, node.right_record_entry,
                          at->prefix | bit, at->len + 1};
    return true;
}

static bool visit_leaf(ibp_mmdb_walk_t *w, pending_t *p)
{
    uint32_t id = w->nodata;
    if (p->type == MMDB_RECORD_TYPE_DATA) {
        if (!w->value(w->ctx, &p->entry, &id))
            return false;
    } else if (p->type != MMDB_RECORD_TYPE_EMPTY) {
        return ibp_err_set(w->err, "corrupt search tree: invalid record below /%u", p->len);
    }
    return emit(w, p->prefix, p->len, id);
}

/* Depth-first, left before right, so networks come out in address order. */
static bool walk_tree(ibp_mmdb_walk_t *w, ibp_u128_t base, unsigned base_len)
{
    pending_t stack[130];
    size_t top = 0;
    stack[top++] = (pending_t){0, MMDB_RECORD_TYPE_SEARCH_NODE, {0}, base, base_len};
    while (top) {
        pending_t p = stack[--top];
        bool alias = false;
        size_t n_aliases = may_touch_alias(p.prefix, p.len) ? sizeof v4_aliases /
                                                                  sizeof v4_aliases[0] : 0;
        for (size_t i = 0; i < n_aliases; i++)
            alias |= prefix_within(p.prefix, p.len, &v4_aliases[i]);
        if (alias) {
            if (!ibp_nlist_append(w->list, p.len, w->undef, w->err))
                return false;
            continue;
        }
        if (p.type != MMDB_RECORD_TYPE_SEARCH_NODE) {
            if (!visit_leaf(w, &p))
                return false;
            continue;
        }
        if (p.len >= 128)
            return ibp_err_set(w->err, "corrupt search tree: deeper than 128 bits");
        pending_t kids[2];
        if (!read_children(w, &p, kids))
            return false;
        stack[top++] = kids[1];
        stack[top++] = kids[0];
    }
    return true;
}

/* An IPv4-only database covers ::/96; the rest of the IPv6 space has no data. */
static bool fill_after_v4(ibp_mmdb_walk_t *w)
{
    for (unsigned len = 96; len >= 1; len--)
        if (!emit(w, (ibp_u128_t)1 << (128 - len), len, w->nodata))
            return false;
    return true;
}

bool ibp_mmdb_walk(ibp_mmdb_walk_t *w)
{
    w->n_nodes = 0;
    w->node_budget = 2 * (size_t)w->db->metadata.node_count + 256;
    bool ok = w->db->metadata.ip_version == 6 ? walk_tree(w, 0, 0)
                                              : walk_tree(w, 0, 96) && fill_after_v4(w);
    return ok && (w->list->full ||
                  ibp_err_set(w->err, "search tree does not cover the address space"));
}

bool ibp_mmdb_get_value(MMDB_entry_s *entry, MMDB_entry_data_s *data, const char *const *path,
                        ibp_err_t *err)
{
    int status = MMDB_aget_value(entry, data, path);
    if (status == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR) {
        data->has_data = false;
        return true;
    }
    if (status != MMDB_SUCCESS)
        return ibp_err_set(err, "corrupt data record at offset %u: %s", entry->offset,
                           MMDB_strerror(status));
    return true;
}

bool ibp_mmdb_open(const char *path, const char *type_word, const char *why_type, MMDB_s *db,
                   ibp_err_t *err)
{
    int status = MMDB_open(path, MMDB_MODE_MMAP, db);
    if (status != MMDB_SUCCESS) {
        const char *why = status == MMDB_IO_ERROR ? strerror(errno) : MMDB_strerror(status);
        return ibp_err_set(err, "%s: cannot open MaxMind database: %s", path, why);
    }
    const char *type = db->metadata.database_type ? db->metadata.database_type : "";
    bool ok = strstr(type, type_word) ||
              ibp_err_set(err, "%s: database type '%s' is not a %s database%s", path, type,
                          type_word, why_type);
    ok = ok && (db->metadata.ip_version == 4 || db->metadata.ip_version == 6 ||
                ibp_err_set(err, "%s: unsupported ip_version %u", path,
                            db->metadata.ip_version));
    if (!ok)
        MMDB_close(db);
    return ok;
}
