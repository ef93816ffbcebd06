/* Client classes for usage accounting: see ibp_client_classes.h. */
#include "ibp_client_classes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ibp_geo.h"
#include "ibp_mmdb_walk.h"
#include "ibp_table.h"
#include "ibp_table_format.h"

#define TEXT_MAX 200           /* one MaxMind text, cut (IBP's columns are shorter still) */

/* ---- an interning table: text -> id ---------------------------------------- */

typedef struct names {
    char **text;           /* by id */
    size_t n, cap;
    uint32_t *slots;       /* id + 1, 0 = empty */
    size_t n_slots;
} names_t;

static uint32_t text_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static bool names_grow(names_t *m)
{
    size_t n_slots = m->n_slots ? m->n_slots * 2 : 1024;
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < m->n; i++) {
        size_t h = text_hash(m->text[i]) & (n_slots - 1);
        while (slots[h])
            h = (h + 1) & (n_slots - 1);
        slots[h] = (uint32_t)i + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->n_slots = n_slots;
    return true;
}

static bool names_intern(names_t *m, const char *s, uint32_t *id, ibp_err_t *err)
{
    if ((m->n + 1) * 2 > m->n_slots && !names_grow(m))
        return ibp_err_set(err, "out of memory");
    size_t h = text_hash(s) & (m->n_slots - 1);
    for (; m->slots[h]; h = (h + 1) & (m->n_slots - 1)) {
        if (!strcmp(m->text[m->slots[h] - 1], s)) {
            *id = m->slots[h] - 1;
            return true;
        }
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        char **grown = realloc(m->text, cap * sizeof *grown);
        if (!grown)
            return ibp_err_set(err, "out of memory");
        m->text = grown;
        m->cap = cap;
    }
    if (!(m->text[m->n] = strdup(s)))
        return ibp_err_set(err, "out of memory");
    m->slots[h] = (uint32_t)m->n + 1;
    *id = (uint32_t)m->n++;
    return true;
}

static void names_free(names_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->text[i]);
    free(m->text);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- reading records --------------------------------------------------------- */

typedef struct reader {
    names_t *names;
    ibp_err_t *err;
    uint32_t last_offset, last_id;   /* neighbours in the walk often share a record */
    uint32_t *by_offset;   /* record offset -> id + 1, open addressing on (offset, id) pairs */
    size_t by_offset_n, by_offset_cap;
    bool asn;              /* an ASN database, else City */
} reader_t;

/* The text of a MaxMind string, control characters (our separators) made spaces. */
static bool get_text(reader_t *r, MMDB_entry_s *e, const char *const *path, char *out)
{
    MMDB_entry_data_s d;
    out[0] = '\0';
    if (!ibp_mmdb_get_value(e, &d, path, r->err))
        return false;
    if (!d.has_data || d.type != MMDB_DATA_TYPE_UTF8_STRING)
        return true;
    size_t n = d.data_size < TEXT_MAX - 1 ? d.data_size : TEXT_MAX - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)d.utf8_string[i] < 0x20 ? ' ' : d.utf8_string[i];
    out[n] = '\0';
    return true;
}

/* "CC\tcountry" for City records, "AS<n>\torganisation" for ASN records; "" for none. */
static bool record_text(reader_t *r, MMDB_entry_s *e, char *text)
{
    static const char *const cc_path[] = {"country", "iso_code", NULL};
    static const char *const name_path[] = {"country", "names", "en", NULL};
    static const char *const asn_path[] = {"autonomous_system_number", NULL};
    static const char *const org_path[] = {"autonomous_system_organization", NULL};
    char a[TEXT_MAX], b[TEXT_MAX];
    text[0] = '\0';
    if (!r->asn) {
        if (!get_text(r, e, cc_path, a) || !get_text(r, e, name_path, b))
            return false;
        char cc[3];
        if (ibp_geo_country_code(a, strlen(a), cc))
            snprintf(text, 2 * TEXT_MAX, "%s\t%s", cc, b);
        return true;
    }
    MMDB_entry_data_s d;
    if (!ibp_mmdb_get_value(e, &d, asn_path, r->err) || !get_text(r, e, org_path, b))
        return false;
    uint32_t asn = !d.has_data ? 0
                   : d.type == MMDB_DATA_TYPE_UINT32 ? d.uint32
                   : d.type == MMDB_DATA_TYPE_UINT16 ? d.uint16 : 0;
    if (asn)   /* IBP: AS number 0 is no ASN */
        snprintf(text, 2 * TEXT_MAX, "AS%u\t%s", asn, b);
    return true;
}

/* Record offsets share their low bits (records are aligned): hash on the
 * high bits of a 64-bit product. */
static size_t offset_slot(uint32_t key, size_t cap)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 32) & (cap - 1);
}

static bool offset_grow(reader_t *r)
{
    size_t cap = r->by_offset_cap ? r->by_offset_cap * 2 : 1u << 16;
    uint32_t *t = calloc(2 * cap, sizeof *t);
    if (!t)
        return false;
    for (size_t i = 0; i < r->by_offset_cap; i++) {
        if (!r->by_offset[2 * i])
            continue;
        size_t h = offset_slot(r->by_offset[2 * i], cap);
        while (t[2 * h])
            h = (h + 1) & (cap - 1);
        t[2 * h] = r->by_offset[2 * i];
        t[2 * h + 1] = r->by_offset[2 * i + 1];
    }
    free(r->by_offset);
    r->by_offset = t;
    r->by_offset_cap = cap;
    return true;
}

static bool record_value(void *ctx, MMDB_entry_s *e, uint32_t *id)
{
    reader_t *r = ctx;
    if (e->offset >= UINT32_MAX)
        return ibp_err_set(r->err, "data record offset %u out of range", e->offset);
    uint32_t key = e->offset + 1;
    if (key == r->last_offset) {
        *id = r->last_id;
        return true;
    }
    if ((r->by_offset_n + 1) * 2 > r->by_offset_cap && !offset_grow(r))
        return ibp_err_set(r->err, "out of memory");
    size_t h = offset_slot(key, r->by_offset_cap);
    while (r->by_offset[2 * h] && r->by_offset[2 * h] != key)
        h = (h + 1) & (r->by_offset_cap - 1);
    if (!r->by_offset[2 * h]) {
        char text[2 * TEXT_MAX];
        uint32_t v;
        if (!record_text(r, e, text) || !names_intern(r->names, text, &v, r->err))
            return false;
        r->by_offset[2 * h] = key;
        r->by_offset[2 * h + 1] = v;
        r->by_offset_n++;
    }
    *id = r->last_id = r->by_offset[2 * h + 1];
    r->last_offset = key;
    return true;
}

/* Walks one database into list; names[0] is "" (no country, no ASN). */
static bool walk_db(const char *path, bool asn, names_t *names, ibp_nlist_t *list, ibp_err_t *err)
{
    MMDB_s db;
    if (!ibp_mmdb_open(path, asn ? "ASN" : "City", "", &db, err))
        return false;
    reader_t r = {.names = names, .err = err, .asn = asn};
    uint32_t none;
    ibp_mmdb_walk_t w = {.db = &db, .list = list, .value = record_value, .ctx = &r,
                         .nodata = 0, .undef = 0, .err = err};
    bool ok = names_intern(names, "", &none, err) && ibp_mmdb_walk(&w);
    free(r.by_offset);
    MMDB_close(&db);
    return ok || ibp_err_prefix(err, "%s", path);
}

/* ---- merging the two lists ------------------------------------------------------ */

/* Both lists as tries, walked together depth first (left before right, so
 * networks come out in address order): a leaf of one against a subtree of
 * the other gives that subtree's networks with the leaf's value. */
typedef struct pair_ref {
    uint32_t a, b;         /* trie refs: node index or IBP_TBL_LEAF | value */
    ibp_u128_t prefix;
    unsigned len;
} pair_ref_t;

typedef struct merger {
    names_t classes;       /* "<country text>\t<asn text>" -> class */
    const names_t *countries, *asns;
    ibp_nlist_t list;
    ibp_err_t *err;
} merger_t;

static bool class_of(merger_t *m, uint32_t country, uint32_t asn, uint32_t *id)
{
    const char *c = m->countries->text[country], *a = m->asns ? m->asns->text[asn] : "";
    char text[4 * TEXT_MAX + 8];
    snprintf(text, sizeof text, "%s\t%s", c[0] ? c : "??\tUnknown", a[0] ? a : "\t");
    return names_intern(&m->classes, text, id, m->err);
}

static bool merge_tries(merger_t *m, const ibp_trie_t *ta, const ibp_trie_t *tb)
{
    pair_ref_t stack[260];
    size_t top = 0;
    stack[top++] = (pair_ref_t){ta->root, tb ? tb->root : IBP_TBL_LEAF, 0, 0};
    while (top) {
        pair_ref_t p = stack[--top];
        bool la = p.a & IBP_TBL_LEAF, lb = p.b & IBP_TBL_LEAF;
        if (la && lb) {
            uint32_t id;
            if (!class_of(m, p.a & ~IBP_TBL_LEAF, p.b & ~IBP_TBL_LEAF, &id) ||
                !ibp_nlist_append(&m->list, p.len, id, m->err))
                return false;
            continue;
        }
        if (p.len >= 128)
            return ibp_err_set(m->err, "network list deeper than 128 bits");
        pair_ref_t kid[2];
        for (int c = 0; c < 2; c++) {
            kid[c] = (pair_ref_t){la ? p.a : ta->nodes[2 * p.a + c],
                                  lb ? p.b : tb->nodes[2 * p.b + c],
                                  c ? p.prefix | (ibp_u128_t)1 << (127 - p.len) : p.prefix,
                                  p.len + 1};
        }
        stack[top++] = kid[1];
        stack[top++] = kid[0];
    }
    return true;
}

/* The texts back to back, for the table. */
static bool take_texts(merger_t *m, ibp_client_classes_t *out, ibp_err_t *err)
{
    size_t total = 0;
    for (size_t i = 0; i < m->classes.n; i++)
        total += strlen(m->classes.text[i]);
    out->text = malloc(total ? total : 1);
    out->text_off = malloc((m->classes.n + 1) * sizeof *out->text_off);
    if (!out->text || !out->text_off || total > UINT32_MAX)
        return ibp_err_set(err, "out of memory");
    size_t at = 0;
    for (size_t i = 0; i < m->classes.n; i++) {
        size_t n = strlen(m->classes.text[i]);
        out->text_off[i] = (uint32_t)at;
        memcpy(out->text + at, m->classes.text[i], n);
        at += n;
    }
    out->text_off[m->classes.n] = (uint32_t)at;
    out->n = m->classes.n;
    return true;
}

static bool build_index(ibp_client_classes_t *out, ibp_err_t *err)
{
    out->index = malloc(2 * IBP_TBL_INDEX_SIZE * sizeof *out->index);
    if (!out->index)
        return ibp_err_set(err, "out of memory");
    ibp_client_index_build(out->trie.nodes, out->trie.node_count, out->trie.root, out->index);
    return true;
}

bool ibp_client_classes_build(const char *city_path, const char *asn_path,
                              ibp_client_classes_t *out, ibp_err_t *err)
{
    memset(out, 0, sizeof *out);
    names_t countries = {0}, asns = {0};
    ibp_nlist_t lc, la;
    ibp_trie_t tc = {0}, ta = {0};
    merger_t m = {.countries = &countries, .asns = asn_path ? &asns : NULL, .err = err};
    ibp_nlist_init(&lc);
    ibp_nlist_init(&la);
    ibp_nlist_init(&m.list);
    uint32_t unknown;
    bool ok = walk_db(city_path, false, &countries, &lc, err) &&
              (!asn_path || walk_db(asn_path, true, &asns, &la, err)) &&
              ibp_trie_build(&lc, &tc, err) && (!asn_path || ibp_trie_build(&la, &ta, err)) &&
              class_of(&m, 0, 0, &unknown) &&   /* class 0: nothing known */
              merge_tries(&m, &tc, asn_path ? &ta : NULL) &&
              (m.list.full || ibp_err_set(err, "merged list does not cover the space")) &&
              ibp_trie_build(&m.list, &out->trie, err) && take_texts(&m, out, err) &&
              build_index(out, err);
    out->n_networks = m.list.n;
    ibp_trie_free(&tc);
    ibp_trie_free(&ta);
    ibp_nlist_free(&lc);
    ibp_nlist_free(&la);
    ibp_nlist_free(&m.list);
    names_free(&countries);
    names_free(&asns);
    names_free(&m.classes);
    if (!ok)
        ibp_client_classes_free(out);
    return ok;
}

void ibp_client_classes_free(ibp_client_classes_t *c)
{
    ibp_trie_free(&c->trie);
    free(c->index);
    free(c->text);
    free(c->text_off);
    memset(c, 0, sizeof *c);
}
