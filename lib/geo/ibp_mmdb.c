#include "ibp_mmdb.h"
#include "ibp_mmdb_walk.h"

#include <errno.h>
#include <maxminddb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ibp_u64map.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

/* ---- small open-addressing maps ---------------------------------------- */

/* Data-record offset -> class id. Probed once per network of the database
 * (millions of times, in random order), so key and value share one 8-byte
 * slot: one cache miss per probe instead of two. */
typedef struct offmap {
    struct offslot { uint32_t key; uint32_t val; } *slots;   /* key = offset + 1; 0 = empty */
    size_t cap, n;
} offmap_t;

static bool offmap_grow(offmap_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1 << 16;
    struct offslot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        size_t j = ibp_u64_hash(m->slots[i].key) & (cap - 1);
        while (slots[j].key)
            j = (j + 1) & (cap - 1);
        slots[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return true;
}

static struct offslot *offmap_slot(const offmap_t *m, uint32_t key)
{
    size_t j = ibp_u64_hash(key) & (m->cap - 1);
    while (m->slots[j].key && m->slots[j].key != key)
        j = (j + 1) & (m->cap - 1);
    return &m->slots[j];
}

/* ---- the walk ----------------------------------------------------------- */

struct place {
    double lat, lon;
    char cc[3];
    bool used;
    uint32_t rule;         /* Routing.Map list, 0 none */
    uint32_t id;
};

typedef struct walker {
    MMDB_s db;
    const ibp_geo_input_t *in;
    ibp_geo_classes_t *out;
    offmap_t by_offset;    /* record offset -> class */
    ibp_u64map_t by_key;       /* class key hash -> class id + 1 (chained by probing on key bytes) */
    uint16_t *order_buf;
    uint16_t *order_tmp;   /* order_listed_first's scratch */
    ibp_geo_rank_t *rank_buf;
    /* Records at the same place and country are one class: a thousand members
     * sort for each place once, not for each of the half million records. */
    struct place *places;
    size_t places_n, places_cap;
    size_t cls_cap, orders_cap;
    uint32_t last_offset;  /* neighbours in DFS order often share a record */
    uint32_t last_class;
    ibp_err_t *err;
} walker_t;

static bool cc_relevant(const ibp_geo_input_t *in, const char *cc)
{
    for (size_t i = 0; i < in->n_ccs; i++)
        if (!memcmp(in->ccs[i], cc, 3))
            return true;
    return false;
}

static bool class_equal(const walker_t *w, uint32_t id, bool located, bool by_distance,
                        const char cc[3], uint32_t rule, const uint16_t *order)
{
    const ibp_geo_class_t *c = &w->out->cls[id];
    size_t n = w->out->n_members;
    return c->located == located && c->by_distance == by_distance && !memcmp(c->cc, cc, 3) &&
           c->map_rule == rule &&
           (!located || !memcmp(&w->out->orders[c->order], order, n * sizeof *order));
}

static bool class_append(walker_t *w, bool located, bool by_distance, const char cc[3],
                         uint32_t rule, const uint16_t *order, double lat, double lon,
                         uint32_t *id)
{
    ibp_geo_classes_t *o = w->out;
    size_t n = o->n_members;
    if (o->n_cls == w->cls_cap) {
        size_t cap = w->cls_cap ? w->cls_cap * 2 : 256;
        ibp_geo_class_t *cls = realloc(o->cls, cap * sizeof *cls);
        if (!cls)
            return ibp_err_set(w->err, "out of memory");
        o->cls = cls;
        w->cls_cap = cap;
    }
    if ((o->n_cls + 1) * n > w->orders_cap) {
        size_t cap = (w->orders_cap ? w->orders_cap * 2 : 4096) + n;
        uint16_t *orders = realloc(o->orders, cap * sizeof *orders);
        if (!orders)
            return ibp_err_set(w->err, "out of memory");
        o->orders = orders;
        w->orders_cap = cap;
    }
    ibp_geo_class_t *c = &o->cls[o->n_cls];
    c->located = located;
    c->by_distance = by_distance;
    memcpy(c->cc, cc, 3);
    c->order = (uint32_t)(o->n_cls * n);
    c->lat = lat;
    c->lon = lon;
    c->net = IBP_GEO_NO_NET;
    c->map_rule = rule;
    c->n_listed = rule ? (uint32_t)w->in->map_lists[rule - 1].n_listed : 0;
    if (located)
        memcpy(&o->orders[c->order], order, n * sizeof *order);
    else
        memset(&o->orders[c->order], 0, n * sizeof *order);
    *id = (uint32_t)o->n_cls++;
    return true;
}

static uint64_t class_hash(bool located, bool by_distance, const char cc[3], uint32_t rule,
                           const uint16_t *order, size_t n)
{
    uint64_t h = XXH3_64bits_withSeed(cc, 3, located + 2u * by_distance + ((uint64_t)rule << 2));
    return located ? XXH3_64bits_withSeed(order, n * sizeof *order, h) : h;
}

static bool class_intern(walker_t *w, bool located, bool by_distance, const char cc[3],
                         uint32_t rule, double lat, double lon, uint32_t *id)
{
    const uint16_t *order = w->order_buf;
    uint64_t key = class_hash(located, by_distance, cc, rule, order, w->out->n_members) |
                   1; /* never 0 */
    if (w->by_key.n * 2 >= w->by_key.cap && !ibp_u64map_grow(&w->by_key, 1u << 16))
        return ibp_err_set(w->err, "out of memory");
    size_t j = ibp_u64_hash(key) & (w->by_key.cap - 1);
    for (; w->by_key.keys[j]; j = (j + 1) & (w->by_key.cap - 1))
        if (w->by_key.keys[j] == key &&
            class_equal(w, w->by_key.vals[j], located, by_distance, cc, rule, order)) {
            *id = w->by_key.vals[j];
            return true;
        }
    if (!class_append(w, located, by_distance, cc, rule, order, lat, lon, id))
        return false;
    w->by_key.keys[j] = key;
    w->by_key.vals[j] = *id;
    w->by_key.n++;
    return true;
}

/* Reads one value at path; a missing path is not an error, bad data is. */
static bool get_value(walker_t *w, MMDB_entry_s *entry, MMDB_entry_data_s *data,
                      const char *const *path)
{
    return ibp_mmdb_get_value(entry, data, path, w->err);
}

static bool get_double(walker_t *w, MMDB_entry_s *entry, const char *const *path,
                       bool *found, double *v)
{
    MMDB_entry_data_s data;
    if (!get_value(w, entry, &data, path))
        return false;
    *found = data.has_data;
    if (!data.has_data)
        return true;
    if (data.type == MMDB_DATA_TYPE_DOUBLE)
        *v = data.double_value;
    else if (data.type == MMDB_DATA_TYPE_FLOAT)
        *v = data.float_value;
    else
        return ibp_err_set(w->err, "data record at offset %u: %s.%s is not a number",
                           entry->offset, path[0], path[1]);
    return true;
}

static bool record_location(walker_t *w, MMDB_entry_s *entry, bool *located,
                            double *lat, double *lon, char cc[3])
{
    static const char *const lat_path[] = {"location", "latitude", NULL};
    static const char *const lon_path[] = {"location", "longitude", NULL};
    static const char *const cc_path[] = {"country", "iso_code", NULL};
    bool has_lat = false, has_lon = false;
    if (!get_double(w, entry, lat_path, &has_lat, lat) ||
        !get_double(w, entry, lon_path, &has_lon, lon))
        return false;
    *located = has_lat && has_lon && *lat >= -90 && *lat <= 90 && *lon >= -180 && *lon <= 180;
    MMDB_entry_data_s data;
    if (!get_value(w, entry, &data, cc_path))
        return false;
    memset(cc, 0, 3);
    if (data.has_data && data.type == MMDB_DATA_TYPE_UTF8_STRING &&
        ibp_geo_country_code(data.utf8_string, data.data_size, cc) && !cc_relevant(w->in, cc))
        memset(cc, 0, 3);
    return true;
}

static size_t place_hash(double lat, double lon, const char cc[3], uint32_t rule)
{
    uint64_t k[3] = {0, 0, (uint64_t)rule << 32};
    memcpy(&k[0], &lat, sizeof lat);
    memcpy(&k[1], &lon, sizeof lon);
    memcpy(&k[2], cc, 3);
    return (size_t)XXH3_64bits(k, sizeof k);
}

/* The slot of (lat, lon, cc): its class if used, else where it goes. */
static struct place *place_slot(walker_t *w, double lat, double lon, const char cc[3],
                                uint32_t rule)
{
    size_t mask = w->places_cap - 1;
    for (size_t h = place_hash(lat, lon, cc, rule) & mask;; h = (h + 1) & mask) {
        struct place *p = &w->places[h];
        if (!p->used ||
            (p->lat == lat && p->lon == lon && !memcmp(p->cc, cc, 3) && p->rule == rule))
            return p;
    }
}

static bool place_put(walker_t *w, struct place *p, double lat, double lon, const char cc[3],
                      uint32_t rule, uint32_t id)
{
    *p = (struct place){.lat = lat, .lon = lon, .used = true, .rule = rule, .id = id};
    memcpy(p->cc, cc, 3);
    w->places_n++;
    if (2 * w->places_n < w->places_cap)
        return true;
    size_t cap = 2 * w->places_cap;
    struct place *grown = calloc(cap, sizeof *grown);
    if (!grown)
        return ibp_err_set(w->err, "out of memory");
    for (size_t i = 0; i < w->places_cap; i++) {
        const struct place *q = &w->places[i];
        if (!q->used)
            continue;
        size_t h = place_hash(q->lat, q->lon, q->cc, q->rule) & (cap - 1);
        while (grown[h].used)
            h = (h + 1) & (cap - 1);
        grown[h] = *q;
    }
    free(w->places);
    w->places = grown;
    w->places_cap = cap;
    return true;
}

static bool record_class_lookup(walker_t *w, MMDB_entry_s *entry, uint32_t key, uint32_t *id);


/* The string at path into buf (NUL-terminated), or "" when absent, not a
 * string or too long. */
static bool record_name(walker_t *w, MMDB_entry_s *entry, const char *const *path, char *buf)
{
    MMDB_entry_data_s data;
    buf[0] = '\0';
    if (!get_value(w, entry, &data, path))
        return false;
    if (data.has_data && data.type == MMDB_DATA_TYPE_UTF8_STRING &&
        data.data_size < IBP_GEO_NAME_MAX && !memchr(data.utf8_string, 0, data.data_size)) {
        memcpy(buf, data.utf8_string, data.data_size);
        buf[data.data_size] = '\0';
    }
    return true;
}

/* The Routing.Map list this record's names resolve to (gdnsd reads the
 * same fields: continent.code, country.iso_code, subdivisions[i].iso_code,
 * city.names.en). */
static bool record_map_rule(walker_t *w, MMDB_entry_s *entry, uint32_t *rule)
{
    static const char *const cont_path[] = {"continent", "code", NULL};
    static const char *const cc_path[] = {"country", "iso_code", NULL};
    static const char *const city_path[] = {"city", "names", "en", NULL};
    char names[3 + IBP_GEO_SUBS_MAX][IBP_GEO_NAME_MAX];
    ibp_geo_names_t n = {.continent = names[0], .country = names[1], .city = names[2]};
    if (!record_name(w, entry, cont_path, names[0]) ||
        !record_name(w, entry, cc_path, names[1]) || !record_name(w, entry, city_path, names[2]))
        return false;
    char cc[3];   /* the country as the overrides spell it */
    ibp_geo_country_code(names[1], strlen(names[1]), cc);
    memcpy(names[1], cc, sizeof cc);
    for (size_t i = 0; i < IBP_GEO_SUBS_MAX; i++) {
        char idx[4];
        snprintf(idx, sizeof idx, "%zu", i);
        const char *const sub_path[] = {"subdivisions", idx, "iso_code", NULL};
        if (!record_name(w, entry, sub_path, names[3 + i]))
            return false;
        if (!names[3 + i][0])
            break;   /* subdivisions past the end of the array read as absent */
        n.subs[n.n_subs++] = names[3 + i];
    }
    *rule = w->in->map_rule(w->in->map_ctx, &n);
    if (*rule > w->in->n_map_lists)
        return ibp_err_set(w->err, "map rule %u out of range", *rule);
    return true;
}

/* order_buf: the rule's list, then the other members as they were (by
 * distance when located, else by key). */
static void order_listed_first(walker_t *w, uint32_t rule, bool located)
{
    const ibp_geo_map_list_t *l = &w->in->map_lists[rule - 1];
    size_t n = w->in->n_sites, at = 0;
    uint16_t *tmp = w->order_tmp;
    if (!located)
        for (size_t i = 0; i < n; i++)
            w->order_buf[i] = (uint16_t)i;
    for (size_t i = 0; i < l->n_listed && at < n; i++)
        if (l->listed[i] < n)   /* the compiler resolved them against these members */
            tmp[at++] = l->listed[i];
    for (size_t i = 0; i < n; i++) {
        bool listed = false;
        for (size_t k = 0; k < l->n_listed; k++)
            listed |= l->listed[k] == w->order_buf[i];
        if (!listed && at < n)
            tmp[at++] = w->order_buf[i];
    }
    memcpy(w->order_buf, tmp, n * sizeof *tmp);
}

static bool record_class(walker_t *w, MMDB_entry_s *entry, uint32_t *id)
{
    if (entry->offset >= UINT32_MAX)
        return ibp_err_set(w->err, "data record offset %u out of range", entry->offset);
    uint32_t key = entry->offset + 1;
    if (key == w->last_offset) {
        *id = w->last_class;
        return true;
    }
    if (!record_class_lookup(w, entry, key, id))
        return false;
    w->last_offset = key;
    w->last_class = *id;
    return true;
}

static bool record_class_lookup(walker_t *w, MMDB_entry_s *entry, uint32_t key, uint32_t *id)
{
    if (w->by_offset.n * 2 >= w->by_offset.cap && !offmap_grow(&w->by_offset))
        return ibp_err_set(w->err, "out of memory");
    struct offslot *slot = offmap_slot(&w->by_offset, key);
    if (slot->key) {
        *id = slot->val;
        return true;
    }
    bool located;
    double lat = 0, lon = 0;
    char cc[3];
    uint32_t rule = 0;
    if (!record_location(w, entry, &located, &lat, &lon, cc) ||
        (w->in->map_rule && !record_map_rule(w, entry, &rule)))
        return false;
    w->out->n_records++;
    if (!located && !cc[0] && !rule) {
        *id = IBP_CLASS_NODATA;
    } else {
        struct place *p = located ? place_slot(w, lat, lon, cc, rule) : NULL;
        if (p && p->used) {
            *id = p->id;
        } else {
            if (located) {
                ibp_site_t client = ibp_site_from_degrees(lat, lon);
                ibp_geo_order(&client, w->in->sites, w->in->n_sites, w->order_buf, w->rank_buf);
            }
            if (rule)
                order_listed_first(w, rule, located);
            if (!class_intern(w, located || rule, located, cc, rule, lat, lon, id) ||
                (p && !place_put(w, p, lat, lon, cc, rule, *id)))
                return false;
        }
    }
    /* class_intern may have grown by_key, not by_offset: the slot is still valid. */
    *slot = (struct offslot){key, *id};
    w->by_offset.n++;
    return true;
}

static bool record_value(void *ctx, MMDB_entry_s *entry, uint32_t *id)
{
    return record_class(ctx, entry, id);
}

static bool open_city_db(walker_t *w, const char *path)
{
    if (!ibp_mmdb_open(path, "City", " (routing needs location coordinates)", &w->db, w->err))
        return false;
    const char *type = w->db.metadata.database_type;
    snprintf(w->out->db_type, sizeof w->out->db_type, "%s", type ? type : "");
    w->out->build_epoch = w->db.metadata.build_epoch;
    return true;
}

static bool walker_init(walker_t *w, const ibp_geo_input_t *in, ibp_geo_classes_t *out,
                        ibp_err_t *err)
{
    memset(w, 0, sizeof *w);
    w->in = in;
    w->out = out;
    w->err = err;
    if (in->n_sites > IBP_GEO_MAX_MEMBERS)
        return ibp_err_set(err, "%zu members: at most %d are supported", in->n_sites,
                           IBP_GEO_MAX_MEMBERS);
    out->n_members = in->n_sites;
    out->fingerprint = in->fingerprint;
    w->order_buf = calloc(in->n_sites + 1, sizeof *w->order_buf);
    w->order_tmp = calloc(in->n_sites + 1, sizeof *w->order_tmp);
    w->rank_buf = calloc(in->n_sites + 1, sizeof *w->rank_buf);
    w->places_cap = 1u << 16;
    w->places = calloc(w->places_cap, sizeof *w->places);
    if (!w->order_buf || !w->order_tmp || !w->rank_buf || !w->places || !offmap_grow(&w->by_offset) ||
        !ibp_u64map_grow(&w->by_key, 1u << 16))
        return ibp_err_set(err, "out of memory");
    uint32_t id;   /* classes 0 and 1 are fixed: NODATA and UNDEF */
    static const char no_cc[3] = {0};
    return class_append(w, false, false, no_cc, 0, w->order_buf, 0, 0, &id) &&
           class_append(w, false, false, no_cc, 0, w->order_buf, 0, 0, &id);
}

bool ibp_geo_classes_build(const ibp_geo_input_t *in, ibp_geo_classes_t *out, ibp_err_t *err)
{
    memset(out, 0, sizeof *out);
    walker_t w;
    bool ok = walker_init(&w, in, out, err) && open_city_db(&w, in->mmdb_path);
    if (ok) {
        ibp_mmdb_walk_t walk = {.db = &w.db, .list = &out->list, .value = record_value, .ctx = &w,
                                .nodata = IBP_CLASS_NODATA, .undef = IBP_CLASS_UNDEF, .err = err};
        ok = ibp_mmdb_walk(&walk);
        out->n_nodes = walk.n_nodes;
        ok = ok && (!in->n_nets || ibp_geo_nets_overlay(out, in->nets, in->n_nets, err));
        ok = ok && ibp_geo_classes_index(out, err);
        if (!ok)
            ibp_err_prefix(err, "%s", in->mmdb_path);
        MMDB_close(&w.db);
    }
    free(w.order_buf);
    free(w.order_tmp);
    free(w.rank_buf);
    free(w.places);
    free(w.by_offset.slots);
    ibp_u64map_free(&w.by_key);
    if (!ok)
        ibp_geo_classes_free(out);
    return ok;
}

struct ibp_geo_locator {
    MMDB_s db;
    char path[1024];
};

bool ibp_geo_locator_open(const char *mmdb_path, ibp_geo_locator_t **out, ibp_err_t *err)
{
    *out = NULL;
    ibp_geo_locator_t *loc = calloc(1, sizeof *loc);
    if (!loc)
        return ibp_err_set(err, "out of memory");
    int status = MMDB_open(mmdb_path, MMDB_MODE_MMAP, &loc->db);
    if (status != MMDB_SUCCESS) {
        free(loc);
        return ibp_err_set(err, "%s: cannot open MaxMind database: %s", mmdb_path,
                           MMDB_strerror(status));
    }
    snprintf(loc->path, sizeof loc->path, "%s", mmdb_path);
    *out = loc;
    return true;
}

void ibp_geo_locator_close(ibp_geo_locator_t *loc)
{
    if (!loc)
        return;
    MMDB_close(&loc->db);
    free(loc);
}

static bool entry_double(MMDB_entry_s *e, const char *const *path, double *v)
{
    MMDB_entry_data_s d;
    if (MMDB_aget_value(e, &d, path) != MMDB_SUCCESS || !d.has_data)
        return false;
    if (d.type == MMDB_DATA_TYPE_DOUBLE)
        *v = d.double_value;
    else if (d.type == MMDB_DATA_TYPE_FLOAT)
        *v = d.float_value;
    else
        return false;
    return true;
}

static void entry_string(MMDB_entry_s *e, const char *const *path, char *out, size_t cap)
{
    MMDB_entry_data_s d;
    if (MMDB_aget_value(e, &d, path) == MMDB_SUCCESS && d.has_data &&
        d.type == MMDB_DATA_TYPE_UTF8_STRING && d.data_size < cap &&
        !memchr(d.utf8_string, 0, d.data_size)) {   /* as record_name: no truncated names */
        memcpy(out, d.utf8_string, d.data_size);
        out[d.data_size] = '\0';
    }
}

bool ibp_geo_locate(ibp_geo_locator_t *loc, const uint8_t addr[16], bool is_v4,
                    ibp_geo_point_t *out, ibp_err_t *err)
{
    static const char *const lat_path[] = {"location", "latitude", NULL};
    static const char *const lon_path[] = {"location", "longitude", NULL};
    static const char *const cc_path[] = {"country", "iso_code", NULL};
    static const char *const city_path[] = {"city", "names", "en", NULL};
    memset(out, 0, sizeof *out);
    struct sockaddr_storage ss = {0};
    if (is_v4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, &addr[12], 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, addr, 16);
    }
    int mmdb_error = 0;
    MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&loc->db, (struct sockaddr *)&ss, &mmdb_error);
    if (mmdb_error != MMDB_SUCCESS)
        return ibp_err_set(err, "%s: lookup failed: %s", loc->path, MMDB_strerror(mmdb_error));
    if (!r.found_entry)
        return true;
    out->found = true;
    out->located = entry_double(&r.entry, lat_path, &out->lat) &&
                   entry_double(&r.entry, lon_path, &out->lon);
    MMDB_entry_data_s d;
    if (MMDB_aget_value(&r.entry, &d, cc_path) == MMDB_SUCCESS && d.has_data &&
        d.type == MMDB_DATA_TYPE_UTF8_STRING)
        ibp_geo_country_code(d.utf8_string, d.data_size, out->cc);
    entry_string(&r.entry, city_path, out->city, sizeof out->city);
    static const char *const cont_path[] = {"continent", "code", NULL};
    entry_string(&r.entry, cont_path, out->continent, sizeof out->continent);
    for (; out->n_subs < IBP_GEO_SUBS_MAX; out->n_subs++) {
        char idx[4];
        snprintf(idx, sizeof idx, "%zu", out->n_subs);
        const char *const sub_path[] = {"subdivisions", idx, "iso_code", NULL};
        entry_string(&r.entry, sub_path, out->subs[out->n_subs], sizeof out->subs[0]);
        if (!out->subs[out->n_subs][0])
            break;
    }
    return true;
}
