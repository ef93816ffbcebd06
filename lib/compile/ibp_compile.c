#include "ibp_compile.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ibp_dname.h"
#include "ibp_json.h"
#include "ibp_map.h"
#include "ibp_maps.h"
#include "ibp_nlist.h"
#include "ibp_strv.h"
#include "ibp_table.h"
#include "ibp_table_writer.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define SPREAD_V4_BITS 24
#define SPREAD_V6_BITS 48

/* ---- compile context ----------------------------------------------------- */

typedef struct zone_ent {
    const char *name;
    uint32_t id;
    bool host_apex;        /* a service host outside every static zone */
} zone_ent_t;

typedef struct name_ent {
    const char *name;
    uint32_t zone;         /* enclosing zone */
    uint32_t apex_zone;    /* or NONE */
    uint32_t host;         /* or NONE */
} name_ent_t;

typedef struct host_ent {
    const char *name;
    uint32_t name_idx;
    bool *assigned;        /* per member */
} host_ent_t;

typedef struct ctx {
    const ibp_compile_in_t *in;
    const ibp_routing_cfg_t *rc;
    /* The static records served: the config's, then those the compiler adds
     * (the host apexes' NS); `added` owns the added records' contents. */
    ibp_statics_t st;
    ibp_strv_t added;
    ibp_tb_t tb;
    zone_ent_t *zones;
    size_t n_zones;
    name_ent_t *names;
    size_t n_names;
    host_ent_t *hosts;
    size_t n_hosts;
    uint8_t *skip[2];      /* [family][host * n_members + member]: enum ibp_skip */
    ibp_map_set_t *maps;
    uint8_t *reuse;        /* in->reuse until the table is written into it */
    ibp_compile_out_t *out;
    ibp_err_t *err;
} ctx_t;

static bool ctx_warn(ctx_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool ctx_warn(ctx_t *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **w = realloc(c->out->warnings, (c->out->n_warnings + 1) * sizeof *w);
    char *copy = strdup(buf);
    if (!w || !copy) {
        free(copy);
        if (w)
            c->out->warnings = w;
        return ibp_err_set(c->err, "out of memory");
    }
    c->out->warnings = w;
    w[c->out->n_warnings++] = copy;
    return true;
}

/* ---- zone ids ------------------------------------------------------------ */

uint32_t ibp_zone_crc(const char *name)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        crc ^= *p;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc & 0x7FFFFFFFu;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_zone(const void *a, const void *b)
{
    return strcmp(((const zone_ent_t *)a)->name, ((const zone_ent_t *)b)->name);
}

static bool id_taken(const zone_ent_t *z, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (z[i].id == id)
            return true;
    return false;
}

/* Linear probing on collision, as IBP does; 0 is not a usable id. */
static void assign_zone_ids(ctx_t *c)
{
    for (size_t i = 0; i < c->n_zones; i++) {
        uint32_t id = ibp_zone_crc(c->zones[i].name);
        while (id == 0 || id_taken(c->zones, i, id))
            id = (id + 1) & 0x7FFFFFFFu;
        c->zones[i].id = id;
    }
}

/* Longest zone that is name itself or one of its parents. */
static uint32_t enclosing_zone(const ctx_t *c, const char *name)
{
    for (const char *p = name; p; p = strchr(p, '.')) {
        if (*p == '.')
            p++;
        zone_ent_t key = {.name = p};
        zone_ent_t *z = bsearch(&key, c->zones, c->n_zones, sizeof key, cmp_zone);
        if (z)
            return (uint32_t)(z - c->zones);
    }
    return IBP_TBL_NONE;
}

/* ---- hosts and zones ----------------------------------------------------- */

static bool push_unique(const char ***v, size_t *n, const char *s)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*v)[i], s))
            return true;
    const char **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv)
        return false;
    nv[(*n)++] = s;
    *v = nv;
    return true;
}

/* Hosts of active services, sorted. */
static bool collect_service_hosts(const ctx_t *c, const char ***hosts, size_t *n)
{
    const ibp_services_t *s = c->in->services;
    for (size_t i = 0; i < s->n; i++) {
        if (!s->v[i].active)
            continue;
        for (size_t h = 0; h < s->v[i].n_hosts; h++)
            if (!push_unique(hosts, n, s->v[i].hosts[h]))
                return ibp_err_set(c->err, "out of memory");
    }
    if (*n)
        qsort(*hosts, *n, sizeof **hosts, cmp_str_ptr);
    return true;
}

static bool add_zone(ctx_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_zones; i++)
        if (!strcmp(c->zones[i].name, name))
            return true;
    zone_ent_t *z = realloc(c->zones, (c->n_zones + 1) * sizeof *z);
    if (!z)
        return ibp_err_set(c->err, "out of memory");
    c->zones = z;
    c->zones[c->n_zones++] = (zone_ent_t){.name = name};
    return true;
}

/* Zones: owners of static NS records, then every service host that is not
 * inside one of those (it becomes its own apex). */
static bool build_zones(ctx_t *c, const char **hosts, size_t n_hosts)
{
    const ibp_statics_t *st = c->in->statics;
    for (size_t i = 0; i < st->n; i++)
        if ((st->v[i].type == IBP_T_NS || st->v[i].type == IBP_T_SOA) && !add_zone(c, st->v[i].owner))
            return false;
    if (c->n_zones)
        qsort(c->zones, c->n_zones, sizeof *c->zones, cmp_zone);
    size_t n_static = c->n_zones;
    for (size_t i = 0; i < n_hosts; i++) {
        zone_ent_t key = {.name = hosts[i]};
        bool inside = false;
        for (const char *p = hosts[i]; p && !inside; p = strchr(p + 1, '.')) {
            key.name = *p == '.' ? p + 1 : p;
            inside = n_static && bsearch(&key, c->zones, n_static, sizeof key, cmp_zone);
        }
        if (!inside && !add_zone(c, hosts[i]))
            return false;
        if (!inside)
            c->zones[c->n_zones - 1].host_apex = true;
    }
    if (c->n_zones)
        qsort(c->zones, c->n_zones, sizeof *c->zones, cmp_zone);
    assign_zone_ids(c);
    return true;
}

static const char *first_host_apex(const ctx_t *c)
{
    for (size_t i = 0; i < c->n_zones; i++)
        if (c->zones[i].host_apex)
            return c->zones[i].name;
    return "";
}

/* ---- the host apexes' NS (issue 15: BIND refuses a zone without NS) ------ */

/* The static zone's NS names, normalised and sorted, into a string for
 * comparing sets ("a b c"); false if it has none. */
static bool zone_ns_set(const ctx_t *c, const char *zone, char *out, size_t cap)
{
    const ibp_statics_t *st = c->in->statics;
    const char *keys[64];
    char buf[64][IBP_NAME_MAX + 1];
    size_t n = 0;
    /* The parser validated every NS target, so normalising cannot fail. */
    for (size_t i = 0; i < st->n && n < 64; i++)
        if (st->v[i].type == IBP_T_NS && !strcmp(st->v[i].owner, zone) &&
            ibp_name_normalize(st->v[i].content, buf[n], NULL)) {
            keys[n] = buf[n];
            n++;
        }
    if (n)
        qsort(keys, n, sizeof *keys, cmp_str_ptr);
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(keys[i], keys[i - 1]))
            len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s%s", len ? " " : "",
                                    keys[i]);
    return n > 0;
}

/* The NS the host apexes get: Routing.HostApexNs, else the set every static
 * zone with NS records shares (the first such zone's order: its first NS
 * becomes the MNAME). Leaves *zone_ns NULL when there is none to take. */
static bool pick_host_apex_ns(ctx_t *c, const char **zone_ns)
{
    *zone_ns = NULL;
    if (c->rc->n_host_apex_ns)
        return true;
    char first[4096], other[4096];
    for (size_t i = 0; i < c->n_zones; i++) {
        if (c->zones[i].host_apex ||
            !zone_ns_set(c, c->zones[i].name, *zone_ns ? other : first, sizeof first))
            continue;
        if (!*zone_ns)
            *zone_ns = c->zones[i].name;
        else if (strcmp(first, other))
            return ibp_err_set(c->err,
                               "service hosts outside every static zone need NS records, and the "
                               "static zones have different NS sets (%s: %s; %s: %s): set "
                               "Routing.HostApexNs",
                               *zone_ns, first, c->zones[i].name, other);
    }
    return true;
}

static bool add_static(ctx_t *c, const char *owner, uint32_t ttl, const char *ns)
{
    size_t len = strlen(ns);
    char *content = malloc(len + 2);
    if (!content)
        return ibp_err_set(c->err, "out of memory");
    memcpy(content, ns, len + 1);
    if (!len || ns[len - 1] != '.')
        memcpy(content + len, ".", 2);
    if (!ibp_strv_push_owned(&c->added, content))
        return ibp_err_set(c->err, "out of memory");
    /* The owners are zone names, which outlive the compile; the records are
     * only read. */
    c->st.v[c->st.n++] = (ibp_static_rr_t){.owner = (char *)owner, .type = IBP_T_NS, .ttl = ttl,
                                           .content = content};
    return true;
}

/* c->st: the config's static records, then NS at every host apex. */
static bool build_statics(ctx_t *c)
{
    const ibp_statics_t *in = c->in->statics;
    size_t n_apex = 0;
    for (size_t i = 0; i < c->n_zones; i++)
        n_apex += c->zones[i].host_apex;
    const char *zone_ns = NULL;
    if (n_apex && !pick_host_apex_ns(c, &zone_ns))
        return false;
    size_t n_ns = c->rc->n_host_apex_ns;
    for (size_t i = 0; zone_ns && i < in->n; i++)
        n_ns += in->v[i].type == IBP_T_NS && !strcmp(in->v[i].owner, zone_ns);
    c->st.v = calloc(in->n + n_apex * n_ns + 1, sizeof *c->st.v);
    if (!c->st.v)
        return ibp_err_set(c->err, "out of memory");
    if (in->n)
        memcpy(c->st.v, in->v, in->n * sizeof *in->v);
    c->st.n = in->n;
    for (size_t z = 0; z < c->n_zones; z++) {
        if (!c->zones[z].host_apex)
            continue;
        for (size_t k = 0; k < c->rc->n_host_apex_ns; k++)
            if (!add_static(c, c->zones[z].name, c->rc->soa_ttl, c->rc->host_apex_ns[k]))
                return false;
        for (size_t i = 0; zone_ns && i < in->n; i++)
            if (in->v[i].type == IBP_T_NS && !strcmp(in->v[i].owner, zone_ns) &&
                !add_static(c, c->zones[z].name, in->v[i].ttl, in->v[i].content))
                return false;
    }
    if (n_apex && !n_ns)
        return ctx_warn(c, "%zu service hosts outside every static zone (e.g. %s) have no NS "
                           "records, which secondaries refuse: set Routing.HostApexNs",
                        n_apex, first_host_apex(c));
    return true;
}

static int cmp_name_ent(const void *a, const void *b)
{
    return strcmp(((const name_ent_t *)a)->name, ((const name_ent_t *)b)->name);
}

/* Issue 15: the names between a zone's apex and a deeper name exist (empty
 * non-terminals, RFC 8020): they become names without records, for which
 * the coprocess answers NODATA, not NXDOMAIN. A parent is a suffix of its
 * child's string, so it needs no copy. */
static bool add_empty_non_terminals(const ctx_t *c, const char ***all, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        const char *name = (*all)[i];
        uint32_t zone = enclosing_zone(c, name);
        if (zone == IBP_TBL_NONE)
            continue;
        size_t apex_len = strlen(c->zones[zone].name);
        for (const char *p = strchr(name, '.'); p && strlen(p + 1) > apex_len; p = strchr(p + 1, '.'))
            if (!push_unique(all, n, p + 1))
                return false;
    }
    return true;
}

/* Every name we answer for: zone apexes, static owners inside a zone, hosts,
 * and override domains inside a zone. */
static bool build_names(ctx_t *c, const char **hosts, size_t n_hosts)
{
    const char **all = NULL;
    size_t n = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < c->n_zones; i++)
        ok = push_unique(&all, &n, c->zones[i].name);
    for (size_t i = 0; ok && i < n_hosts; i++)
        ok = push_unique(&all, &n, hosts[i]);
    const ibp_statics_t *st = &c->st;
    for (size_t i = 0; ok && i < st->n; i++) {
        if (enclosing_zone(c, st->v[i].owner) == IBP_TBL_NONE)
            ok = ctx_warn(c, "static record [%zu] %s %s: outside every zone, not served", i,
                          st->v[i].owner, ibp_rrtype_name(st->v[i].type));
        else
            ok = push_unique(&all, &n, st->v[i].owner);
    }
    const ibp_overrides_t *ov = c->in->overrides;
    for (size_t i = 0; ok && ov && i < ov->n; i++) {
        if (enclosing_zone(c, ov->v[i].domain) == IBP_TBL_NONE)
            ok = ctx_warn(c, "GeoDNSOverrides.%s: outside every zone, not served", ov->v[i].domain);
        else
            ok = push_unique(&all, &n, ov->v[i].domain);
    }
    ok = ok && add_empty_non_terminals(c, &all, &n);
    if (!ok) {
        free(all);
        return ibp_err_set(c->err, "out of memory");
    }
    c->names = calloc(n ? n : 1, sizeof *c->names);
    if (!c->names) {
        free(all);
        return ibp_err_set(c->err, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        c->names[i] = (name_ent_t){.name = all[i], .host = IBP_TBL_NONE};
    free(all);
    c->n_names = n;
    qsort(c->names, n, sizeof *c->names, cmp_name_ent);
    for (size_t i = 0; i < n; i++) {
        name_ent_t *ne = &c->names[i];
        ne->zone = enclosing_zone(c, ne->name);
        ne->apex_zone = !strcmp(c->zones[ne->zone].name, ne->name) ? ne->zone : IBP_TBL_NONE;
    }
    return true;
}

/* ---- members, candidates ------------------------------------------------- */

static const ibp_service_t *find_service(const ibp_services_t *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].key, key))
            return &s->v[i];
    return NULL;
}

static bool service_has_host(const ibp_service_t *s, const char *host)
{
    for (size_t i = 0; i < s->n_hosts; i++)
        if (!strcmp(s->hosts[i], host))
            return true;
    return false;
}

/* A member serves a host if any service it is assigned (active or not, as
 * IBP does) lists the host. */
static bool member_serves(const ctx_t *c, const ibp_member_t *m, const char *host)
{
    for (size_t k = 0; k < m->n_services; k++) {
        const ibp_service_t *s = find_service(c->in->services, m->services[k]);
        if (s && service_has_host(s, host))
            return true;
    }
    return false;
}

static uint8_t skip_reason(const ctx_t *c, const ibp_member_t *m, const char *host, int fam)
{
    if (m->override)
        return IBP_SKIP_OVERRIDE;
    if (!m->active)
        return IBP_SKIP_INACTIVE;
    if (!m->name[0])
        return IBP_SKIP_UNNAMED;
    if (!(fam ? m->has_v6 : m->has_v4))
        return IBP_SKIP_NO_ADDRESS;
    const ibp_health_t *h = c->in->health;
    if (h && !ibp_health_online(h, host, m->name, fam == 1))
        return IBP_SKIP_OFFLINE;
    return IBP_SKIP_NONE;
}

/* Room for every name to be a host, and a skip reason per (host, member). */
static bool alloc_host_tables(ctx_t *c)
{
    const ibp_members_t *ms = c->in->members;
    size_t names = c->n_names ? c->n_names : 1, members = ms->n ? ms->n : 1;
    c->hosts = calloc(names, sizeof *c->hosts);
    for (int f = 0; f < 2; f++)
        c->skip[f] = calloc(names * members, 1);
    if (!c->hosts || !c->skip[0] || !c->skip[1])
        return ibp_err_set(c->err, "out of memory");
    return true;
}

static bool is_service_host(const ctx_t *c, const char *name)
{
    const ibp_services_t *s = c->in->services;
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].active && service_has_host(&s->v[i], name))
            return true;
    return false;
}

static bool has_override(const ctx_t *c, const char *name)
{
    const ibp_overrides_t *ov = c->in->overrides;
    for (size_t i = 0; ov && i < ov->n; i++)
        if (!strcmp(ov->v[i].domain, name))
            return true;
    return false;
}

/* Hosts are names with dynamic A/AAAA: service hosts and override domains. */
static bool register_hosts(ctx_t *c)
{
    const ibp_members_t *ms = c->in->members;
    if (!alloc_host_tables(c))
        return false;
    for (size_t i = 0; i < c->n_names; i++) {
        name_ent_t *ne = &c->names[i];
        bool service = is_service_host(c, ne->name);
        if (!service && !has_override(c, ne->name))
            continue;
        host_ent_t *h = &c->hosts[c->n_hosts];
        h->name = ne->name;
        h->name_idx = (uint32_t)i;
        h->assigned = calloc(ms->n ? ms->n : 1, sizeof *h->assigned);
        if (!h->assigned)
            return ibp_err_set(c->err, "out of memory");
        for (size_t m = 0; service && m < ms->n; m++) {
            h->assigned[m] = member_serves(c, &ms->v[m], ne->name);
            for (int f = 0; f < 2; f++)
                c->skip[f][c->n_hosts * ms->n + m] = skip_reason(c, &ms->v[m], ne->name, f);
        }
        ne->host = (uint32_t)c->n_hosts++;
    }
    return true;
}

/* ---- writing the DNS part ------------------------------------------------ */

static const char *tb_string(const ctx_t *c, uint32_t off)
{
    return (const char *)c->tb.sec[IBP_SEC_STRINGS].data + off;
}

static const char *apex_first_ns(const ctx_t *c, const char *zone)
{
    const ibp_statics_t *st = &c->st;
    for (size_t i = 0; i < st->n; i++)
        if (st->v[i].type == IBP_T_NS && !strcmp(st->v[i].owner, zone))
            return st->v[i].content;
    return NULL;
}

static void write_zones(ctx_t *c)
{
    const ibp_routing_cfg_t *rc = c->rc;
    for (size_t i = 0; i < c->n_zones; i++) {
        const zone_ent_t *z = &c->zones[i];
        const char *ns = apex_first_ns(c, z->name);
        char mname[IBP_NAME_MAX + 16];
        if (ns)
            snprintf(mname, sizeof mname, "%s%s", ns, ns[strlen(ns) - 1] == '.' ? "" : ".");
        else
            snprintf(mname, sizeof mname, "dns-01.%s.", z->name);
        uint32_t idx = ibp_tb_push(&c->tb, IBP_SEC_ZONES, 1);
        uint32_t name = ibp_tb_str(&c->tb, z->name, strlen(z->name));
        uint32_t tail = ibp_tb_strf(&c->tb, "IN\tSOA\t%u\t%u\t%s hostmaster.%s. %llu %u %u %u %u",
                                    rc->soa_ttl, z->id, mname, z->name,
                                    (unsigned long long)c->in->build_time, rc->soa_refresh,
                                    rc->soa_retry, rc->soa_expire, rc->soa_minimum);
        if (idx == IBP_TBL_NONE || tail == IBP_TBL_NONE)
            return;
        ibp_tbl_zone_t *tz = ibp_tb_at(&c->tb, IBP_SEC_ZONES, idx);
        *tz = (ibp_tbl_zone_t){name, z->id, tail, (uint32_t)strlen(tb_string(c, tail))};
    }
}

/* MX and SRV: PowerDNS takes the priority as its own TAB field. */
static uint32_t rr_tail(ctx_t *c, const ibp_static_rr_t *rr, uint32_t zone_id)
{
    const char *type = ibp_rrtype_name(rr->type);
    if (rr->type == IBP_T_MX || rr->type == IBP_T_SRV) {
        const char *sp = strchr(rr->content, ' ');
        int plen = sp ? (int)(sp - rr->content) : (int)strlen(rr->content);
        return ibp_tb_strf(&c->tb, "IN\t%s\t%u\t%u\t%.*s\t%s", type, rr->ttl, zone_id, plen,
                           rr->content, sp ? sp + 1 : "");
    }
    return ibp_tb_strf(&c->tb, "IN\t%s\t%u\t%u\t%s", type, rr->ttl, zone_id, rr->content);
}

static void write_records_of(ctx_t *c, uint32_t name_idx, ibp_tbl_name_t *tn)
{
    const ibp_statics_t *st = &c->st;
    const name_ent_t *ne = &c->names[name_idx];
    tn->rr_first = (uint32_t)c->tb.sec[IBP_SEC_RRS].n;
    for (size_t i = 0; i < st->n; i++) {
        const ibp_static_rr_t *rr = &st->v[i];
        if (strcmp(rr->owner, ne->name))
            continue;
        uint32_t tail = rr_tail(c, rr, c->zones[ne->zone].id);
        uint32_t content = ibp_tb_str(&c->tb, rr->content, strlen(rr->content));
        uint32_t idx = ibp_tb_push(&c->tb, IBP_SEC_RRS, 1);
        if (idx == IBP_TBL_NONE || tail == IBP_TBL_NONE)
            return;
        ibp_tbl_rr_t *t = ibp_tb_at(&c->tb, IBP_SEC_RRS, idx);
        *t = (ibp_tbl_rr_t){.type = rr->type, .flags = rr->acme ? IBP_RR_ACME : 0,
                            .ttl = rr->ttl, .tail = tail,
                            .tail_len = (uint32_t)strlen(tb_string(c, tail)),
                            .content = content};
        tn->rr_count++;
    }
}

static void write_names(ctx_t *c)
{
    for (size_t i = 0; i < c->n_names; i++) {
        const name_ent_t *ne = &c->names[i];
        uint32_t name = ibp_tb_str(&c->tb, ne->name, strlen(ne->name));
        ibp_tbl_name_t tn = {.name = name, .name_len = (uint32_t)strlen(ne->name),
                             .hash = ibp_name_hash(ne->name, strlen(ne->name)),
                             .apex_zone = ne->apex_zone, .zone = ne->zone, .host = ne->host};
        write_records_of(c, (uint32_t)i, &tn);
        uint32_t idx = ibp_tb_push(&c->tb, IBP_SEC_NAMES, 1);
        if (idx == IBP_TBL_NONE)
            return;
        *(ibp_tbl_name_t *)ibp_tb_at(&c->tb, IBP_SEC_NAMES, idx) = tn;
    }
    uint32_t buckets = 8;
    while (buckets < 2 * c->n_names)
        buckets *= 2;
    uint32_t first = ibp_tb_push(&c->tb, IBP_SEC_NAME_HASH, buckets);
    if (first == IBP_TBL_NONE)
        return;
    uint32_t *hash = ibp_tb_at(&c->tb, IBP_SEC_NAME_HASH, 0);
    for (size_t i = 0; i < c->n_names; i++) {
        const ibp_tbl_name_t *tn = ibp_tb_at(&c->tb, IBP_SEC_NAMES, (uint32_t)i);
        uint32_t b = tn->hash & (buckets - 1);
        while (hash[b])
            b = (b + 1) & (buckets - 1);
        hash[b] = (uint32_t)i + 1;
    }
}

static uint32_t add_target(ctx_t *c, uint32_t member, const char *cc, const uint8_t *addr, bool v4)
{
    char text[INET6_ADDRSTRLEN];
    inet_ntop(v4 ? AF_INET : AF_INET6, addr, text, sizeof text);
    uint32_t s = ibp_tb_str(&c->tb, text, strlen(text));
    uint32_t idx = ibp_tb_push(&c->tb, IBP_SEC_TARGETS, 1);
    if (idx == IBP_TBL_NONE)
        return IBP_TBL_NONE;
    ibp_tbl_target_t *t = ibp_tb_at(&c->tb, IBP_SEC_TARGETS, idx);
    t->member = member;
    t->text = s;
    t->text_len = (uint32_t)strlen(text);
    snprintf(t->cc, sizeof t->cc, "%s", cc);
    if (v4)
        memcpy(&t->addr[12], addr, 4);
    else
        memcpy(t->addr, addr, 16);
    return idx;
}

static void write_members(ctx_t *c)
{
    const ibp_members_t *ms = c->in->members;
    uint32_t first = ibp_tb_push(&c->tb, IBP_SEC_MEMBERS, ms->n);
    for (size_t i = 0; first != IBP_TBL_NONE && i < ms->n; i++) {
        const ibp_member_t *m = &ms->v[i];
        uint32_t key = ibp_tb_str(&c->tb, m->key, strlen(m->key));
        uint32_t name = ibp_tb_str(&c->tb, m->name, strlen(m->name));
        uint32_t t4 = m->has_v4 ? add_target(c, (uint32_t)i, "", m->v4, true) : IBP_TBL_NONE;
        uint32_t t6 = m->has_v6 ? add_target(c, (uint32_t)i, "", m->v6, false) : IBP_TBL_NONE;
        ibp_tbl_member_t *tm = ibp_tb_at(&c->tb, IBP_SEC_MEMBERS, first + (uint32_t)i);
        *tm = (ibp_tbl_member_t){.key = key, .name = name, .target = {t4, t6},
                                 .lat = m->lat, .lon = m->lon,
                                 .flags = (m->active ? IBP_MEMBER_ACTIVE : 0) |
                                          (m->override ? IBP_MEMBER_OVERRIDE : 0)};
    }
}

/* ---- routing policies ----------------------------------------------------
 * A policy is everything an answer depends on besides the client: family,
 * healthy candidates, offline candidates (for failing open) and country
 * overrides. Hosts with equal policies share one trie. A policy is encoded
 * as a uint32 vector so that equal policies compare equal with memcmp. */

typedef struct policy_key {
    uint32_t *v;
    size_t n, cap;
} policy_key_t;

static bool key_push(policy_key_t *k, uint32_t x)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 32;
        uint32_t *v = realloc(k->v, cap * sizeof *v);
        if (!v)
            return false;
        k->v = v;
        k->cap = cap;
    }
    k->v[k->n++] = x;
    return true;
}

static uint32_t member_target(ctx_t *c, uint32_t m, int fam)
{
    return ((ibp_tbl_member_t *)ibp_tb_at(&c->tb, IBP_SEC_MEMBERS, m))->target[fam];
}

static uint32_t pack_cc(const char *cc)
{
    return (uint32_t)(unsigned char)cc[0] << 8 | (unsigned char)cc[1];
}

/* IBP-NODE §4.3 step 2: a member name must be an assigned member with an
 * address of the family that is online; otherwise geo routing decides. */
static uint32_t override_target(ctx_t *c, const host_ent_t *h, size_t host_idx,
                                const ibp_override_t *o, int fam)
{
    const ibp_members_t *ms = c->in->members;
    if (o->member_name[0]) {
        for (size_t m = 0; m < ms->n; m++) {
            if (!h->assigned[m] || (strcasecmp(ms->v[m].key, o->member_name) &&
                                    strcasecmp(ms->v[m].name, o->member_name)))
                continue;
            uint8_t skip = c->skip[fam][host_idx * ms->n + m];
            if (skip == IBP_SKIP_NO_ADDRESS || skip == IBP_SKIP_OFFLINE || skip == IBP_SKIP_UNNAMED)
                return IBP_TBL_NONE;
            return member_target(c, (uint32_t)m, fam);
        }
        ctx_warn(c, "GeoDNSOverrides.%s.%s: member '%s' does not serve this host",
                 o->domain, o->cc, o->member_name);
        return IBP_TBL_NONE;
    }
    if (fam == 0 && o->has_v4)
        return add_target(c, IBP_TBL_NONE, o->cc, o->v4, true);
    if (fam == 1 && o->has_v6)
        return add_target(c, IBP_TBL_NONE, o->cc, o->v6, false);
    return IBP_TBL_NONE;
}

/* [family, n_healthy, healthy..., n_down, down..., n_overrides, (cc, target)...] */
static bool policy_key_of(ctx_t *c, size_t host_idx, int fam, policy_key_t *k)
{
    const ibp_members_t *ms = c->in->members;
    const host_ent_t *h = &c->hosts[host_idx];
    const uint8_t *skip = &c->skip[fam][host_idx * ms->n];
    bool ok = key_push(k, fam ? 6 : 4);
    for (uint8_t want = IBP_SKIP_NONE; ok && want <= IBP_SKIP_OFFLINE; want++) {
        size_t at = k->n;
        ok = key_push(k, 0);
        for (size_t m = 0; ok && m < ms->n; m++)
            if (h->assigned[m] && skip[m] == want)
                ok = key_push(k, (uint32_t)m);
        if (ok)
            k->v[at] = (uint32_t)(k->n - at - 1);
    }
    size_t at = k->n;
    ok = ok && key_push(k, 0);
    const ibp_overrides_t *ov = c->in->overrides;
    for (size_t i = 0; ok && ov && i < ov->n; i++) {
        if (strcmp(ov->v[i].domain, h->name))
            continue;
        uint32_t t = override_target(c, h, host_idx, &ov->v[i], fam);
        if (t != IBP_TBL_NONE)
            ok = key_push(k, pack_cc(ov->v[i].cc)) && key_push(k, t);
    }
    if (ok)
        k->v[at] = (uint32_t)(k->n - at - 1) / 2;
    return ok || ibp_err_set(c->err, "out of memory");
}

typedef struct policy_view {
    unsigned family;
    const uint32_t *healthy, *down, *ovr;   /* ovr: pairs (cc, target) */
    uint32_t n_healthy, n_down, n_ovr;
} policy_view_t;

static policy_view_t policy_view(const policy_key_t *k)
{
    policy_view_t p = {.family = k->v[0]};
    size_t i = 1;
    p.n_healthy = k->v[i++];
    p.healthy = &k->v[i];
    i += p.n_healthy;
    p.n_down = k->v[i++];
    p.down = &k->v[i];
    i += p.n_down;
    p.n_ovr = k->v[i++];
    p.ovr = &k->v[i];
    return p;
}

/* A policy's distinct answers, interned through an open-addressing hash:
 * with many members and several answers per family there are thousands. */
typedef struct answers {
    ibp_tbl_answer_t *v;
    size_t n, cap;
    uint32_t *slot;        /* answer index + 1, 0 empty; 2 * cap slots */
} answers_t;

static bool answers_grow(answers_t *a)
{
    size_t cap = a->cap ? a->cap * 2 : 16;
    ibp_tbl_answer_t *v = realloc(a->v, cap * sizeof *v);
    if (!v)
        return false;
    a->v = v;
    uint32_t *slot = calloc(2 * cap, sizeof *slot);
    if (!slot)
        return false;
    free(a->slot);
    a->slot = slot;
    a->cap = cap;
    for (size_t i = 0; i < a->n; i++) {
        size_t h = XXH3_64bits(&a->v[i], sizeof a->v[i]) & (2 * cap - 1);
        while (slot[h] && memcmp(&a->v[slot[h] - 1], &a->v[i], sizeof a->v[i]))
            h = (h + 1) & (2 * cap - 1);
        if (!slot[h])
            slot[h] = (uint32_t)i + 1;   /* a repeated answer: its first copy */
    }
    return true;
}

/* The slot of ans: the one of its first copy, or the empty one where it
 * goes. Room for one more answer first; NULL when out of memory. */
static uint32_t *answer_slot(answers_t *a, const ibp_tbl_answer_t *ans)
{
    if (a->n == a->cap && !answers_grow(a))
        return NULL;
    size_t mask = 2 * a->cap - 1;
    size_t h = XXH3_64bits(ans, sizeof *ans) & mask;
    while (a->slot[h] && memcmp(&a->v[a->slot[h] - 1], ans, sizeof *ans))
        h = (h + 1) & mask;
    return &a->slot[h];
}

/* Appends ans at the next index whatever the others hold (a numbering taken
 * over may repeat an answer); only its first copy is found by interning. */
static uint32_t answer_seed(answers_t *a, const ibp_tbl_answer_t *ans)
{
    uint32_t *slot = answer_slot(a, ans);
    if (!slot)
        return IBP_TBL_NONE;
    a->v[a->n] = *ans;
    if (!*slot)
        *slot = (uint32_t)a->n + 1;
    return (uint32_t)a->n++;
}

static uint32_t answer_intern(answers_t *a, const ibp_tbl_answer_t *ans)
{
    uint32_t *slot = answer_slot(a, ans);
    if (!slot)
        return IBP_TBL_NONE;
    if (*slot)
        return *slot - 1;
    a->v[a->n] = *ans;
    *slot = (uint32_t)a->n + 1;
    return (uint32_t)a->n++;
}

#define MEMO_KINDS 6   /* plain, fail open, net, net fallback, map, map fallback */

typedef struct policy_build {
    ctx_t *c;
    policy_view_t pv;
    uint8_t *state;        /* per member: 1 healthy, 2 offline candidate */
    uint32_t *spread;
    size_t n_spread;
    bool spread_fail_open;
    answers_t answers;
    uint32_t *class_answer;
    unsigned per_family;
    const char *host;      /* the first host with this policy */
    uint32_t *memo;        /* [MEMO_KINDS * member + memo_kind]: answer index, or NONE */
    uint32_t only;         /* see policy_end */
    bool varies;
    uint32_t n_seed;       /* answers numbered as in the previous table */
    bool renumber;
} policy_build_t;

/* Routing.FailoverSpread: the nearest candidate is down, so the next
 * failover_spread healthy ones share its clients; n stays 0 (not this case)
 * when the nearest is up or fewer than two are left. */
static ibp_tbl_answer_t answer_failover_spread(const policy_build_t *b, const uint16_t *order)
{
    ibp_tbl_answer_t a = {.kind = IBP_ANS_FAILOVER_SPREAD};
    size_t n_members = b->c->in->members->n, i = 0;
    unsigned k = b->c->rc->failover_spread;
    while (i < n_members && b->state[order[i]] == 0)
        i++;
    if (k < 2 || i == n_members || b->state[order[i]] != 2)
        return a;
    for (; i < n_members && a.n < k; i++)
        if (b->state[order[i]] == 1)
            a.target[a.n++] = member_target(b->c, order[i], b->pv.family == 6);
    if (a.n < 2)
        a.n = 0;
    return a;
}

/* The first healthy candidates in order (else, failing open, the first
 * offline ones); *first: the position in order of the first one taken. */
static ibp_tbl_answer_t pick_in_order(const policy_build_t *b, const uint16_t *order,
                                      size_t *first)
{
    ibp_tbl_answer_t a = {.kind = IBP_ANS_TARGETS};
    size_t n_members = b->c->in->members->n;
    int fam = b->pv.family == 6;
    *first = n_members;
    for (uint8_t want = 1; want <= 2 && a.n == 0; want++) {
        if (want == 2 && b->c->rc->all_down == IBP_ALL_DOWN_NONE)
            break;
        for (size_t i = 0; i < n_members && a.n < b->per_family; i++)
            if (b->state[order[i]] == want) {
                if (a.n == 0)
                    *first = i;
                a.target[a.n++] = member_target(b->c, order[i], fam);
            }
        if (want == 2 && a.n)
            a.flags = IBP_ANSF_FAIL_OPEN;
    }
    if (a.n == 0)
        a.kind = IBP_ANS_NONE;
    return a;
}

static ibp_tbl_answer_t answer_for_order(const policy_build_t *b, const uint16_t *order)
{
    ibp_tbl_answer_t a = answer_failover_spread(b, order);
    if (a.n)
        return a;
    size_t first;
    return pick_in_order(b, order, &first);
}

/* Routing.Nets, as gdnsd applies a datacentre list: the first healthy
 * listed member answers; none healthy, the distance order that follows the
 * list in the class's order. Never a failover spread: the list is the
 * operator's choice of who takes over. */
static ibp_tbl_answer_t answer_for_net(const policy_build_t *b, const ibp_geo_class_t *cls,
                                       bool net)
{
    size_t first;
    ibp_tbl_answer_t a = pick_in_order(b, &b->c->in->geo->orders[cls->order], &first);
    if (a.kind == IBP_ANS_TARGETS && net)
        a.flags |= first < cls->n_listed ? IBP_ANSF_NET : IBP_ANSF_NET_FALLBACK;
    else if (a.kind == IBP_ANS_TARGETS)   /* a Routing.Map list: the same, flagged map */
        a.flags |= first < cls->n_listed ? IBP_ANSF_MAP : IBP_ANSF_MAP_FALLBACK;
    return a;
}

/* Spreading over a single candidate picks it for every client: say so, so
 * that it merges with the located answers that pick it too. */
static ibp_tbl_answer_t answer_unlocated(const policy_build_t *b)
{
    ibp_tbl_answer_t a = {.kind = IBP_ANS_NONE};
    if (b->n_spread == 1) {
        a = (ibp_tbl_answer_t){.kind = IBP_ANS_TARGETS, .n = 1, .target = {b->spread[0]}};
        a.flags = b->spread_fail_open ? IBP_ANSF_FAIL_OPEN : 0;
    } else if (b->n_spread > 1) {
        a.kind = IBP_ANS_UNLOCATED;
    }
    return a;
}

/* A Nets or Map list that names none of this host's candidates does not
 * concern the host: its clients get what they would without the list, so
 * that the same answer under another name (net-fallback, map-fallback) does
 * not split the trie's uniform nodes and shorten the ECS scope; a host the
 * answer of which depends on no client keeps scope 0. */
static bool list_concerns(const policy_build_t *b, const ibp_geo_class_t *cls)
{
    const uint16_t *order = &b->c->in->geo->orders[cls->order];
    for (uint32_t i = 0; i < cls->n_listed; i++)
        if (b->state[order[i]] != 0)
            return true;
    return false;
}

static ibp_tbl_answer_t answer_for_class(const policy_build_t *b, uint32_t id)
{
    const ibp_geo_classes_t *g = b->c->in->geo;
    ibp_tbl_answer_t a = {.kind = IBP_ANS_UNDEF};
    if (id == IBP_CLASS_UNDEF)
        return a;
    const ibp_geo_class_t *cls = &g->cls[id];
    if (cls->cc[0]) {
        uint32_t cc = pack_cc(cls->cc);
        for (uint32_t i = 0; i < b->pv.n_ovr; i++)
            if (b->pv.ovr[2 * i] == cc)
                return (ibp_tbl_answer_t){.kind = IBP_ANS_TARGETS, .n = 1,
                                          .flags = IBP_ANSF_OVERRIDE,
                                          .target = {b->pv.ovr[2 * i + 1]}};
    }
    if (cls->n_listed && list_concerns(b, cls))
        return answer_for_net(b, cls, cls->net != IBP_GEO_NO_NET);
    if (!cls->by_distance)
        return answer_unlocated(b);
    return answer_for_order(b, &g->orders[cls->order]);
}

static bool make_spread(policy_build_t *b)
{
    int fam = b->pv.family == 6;
    const uint32_t *from = b->pv.healthy;
    size_t n = b->pv.n_healthy;
    if (n == 0 && b->c->rc->all_down == IBP_ALL_DOWN_NEAREST) {
        from = b->pv.down;
        n = b->pv.n_down;
        b->spread_fail_open = n > 0;
    }
    b->spread = calloc(n ? n : 1, sizeof *b->spread);
    if (!b->spread)
        return false;
    for (size_t i = 0; i < n; i++)
        b->spread[i] = member_target(b->c, from[i], fam);
    b->n_spread = n;
    return true;
}

/* The answers of this host's policy in the previous table, to number the
 * answers as it did: then a health change alters only the classes whose
 * answer changed, and the map can be updated from its predecessor's. */
static const ibp_tbl_answer_t *previous_answers(const policy_build_t *b, uint32_t *n)
{
    const ibp_table_t *prev = b->c->in->previous;
    const ibp_tbl_name_t *nm = prev ? ibp_table_find(prev, b->host, strlen(b->host)) : NULL;
    if (!nm || nm->host == IBP_TBL_NONE)
        return NULL;
    uint32_t pi = prev->hosts[nm->host].policy[b->pv.family == 6];
    if (pi == IBP_TBL_NONE)
        return NULL;
    *n = prev->policies[pi].answer_count;
    return prev->answers + prev->policies[pi].answer_first;
}

/* Answers the classes no longer use keep their numbers as placeholders
 * (their targets may not exist any more); too many of them and the answers
 * are numbered afresh. False: renumber. */
static bool settle_seeded(policy_build_t *b, uint32_t seeded)
{
    size_t n = b->answers.n;
    uint8_t *used = calloc(n ? n : 1, 1);
    if (!used)
        return false;
    used[0] = 1;   /* undef */
    for (size_t k = 0; k < b->c->in->geo->n_cls; k++)
        used[b->class_answer[k]] = 1;
    size_t n_used = 0;
    for (size_t i = 0; i < n; i++)
        n_used += used[i];
    bool keep = 2 * n_used >= n || n <= 16;
    /* An unused answer keeps its place (the member may come back) if its
     * targets exist in this table; lookups never reach it either way. */
    size_t n_targets = b->c->tb.sec[IBP_SEC_TARGETS].n;
    for (size_t i = 0; keep && i < seeded && i < n; i++) {
        if (used[i])
            continue;
        ibp_tbl_answer_t *a = &b->answers.v[i];
        bool valid = a->kind <= IBP_ANS_FAILOVER_SPREAD && a->n <= IBP_TBL_MAX_ANSWERS &&
                     (a->kind != IBP_ANS_FAILOVER_SPREAD || a->n >= 2);
        for (unsigned j = 0; valid && j < a->n; j++)
            valid = a->target[j] < n_targets;
        if (!valid)
            *a = (ibp_tbl_answer_t){.kind = IBP_ANS_NONE};
    }
    free(used);
    return keep;
}

/* A policy's classes are mapped in three steps, so that all policies can go
 * through the classes together (each class's member order is read once for
 * all of them, not once per policy). */
static bool policy_begin(policy_build_t *b, bool seed)
{
    const ibp_geo_classes_t *g = b->c->in->geo;
    b->only = IBP_TBL_NONE;
    b->varies = false;
    b->n_seed = 0;
    b->class_answer = calloc(g->n_cls ? g->n_cls : 1, sizeof *b->class_answer);
    size_t memo_slots = MEMO_KINDS * (b->c->in->members->n + 1);
    b->memo = malloc(memo_slots * sizeof *b->memo);
    if (!b->class_answer || !b->memo)
        return false;
    memset(b->memo, 0xFF, memo_slots * sizeof *b->memo);
    ibp_tbl_answer_t undef = {.kind = IBP_ANS_UNDEF};
    if (answer_intern(&b->answers, &undef) == IBP_TBL_NONE)
        return false;
    const ibp_tbl_answer_t *seeds = seed ? previous_answers(b, &b->n_seed) : NULL;
    for (uint32_t i = 1; seeds && i < b->n_seed; i++)
        if (answer_seed(&b->answers, &seeds[i]) != i)
            return false;
    return true;
}

/* The flags a one-member answer is remembered under (memo_kind). */
static const uint8_t memo_flags[MEMO_KINDS] = {
    0, IBP_ANSF_FAIL_OPEN, IBP_ANSF_NET, IBP_ANSF_NET_FALLBACK, IBP_ANSF_MAP, IBP_ANSF_MAP_FALLBACK,
};

/* a's memo kind, or MEMO_KINDS when its flags are not remembered. */
static unsigned memo_kind(const ibp_tbl_answer_t *a)
{
    unsigned k = 0;
    while (k < MEMO_KINDS && memo_flags[k] != a->flags)
        k++;
    return k;
}

/* One answer for the common case (one answer per family, a member's):
 * remembered by member and flags, so that most classes cost no hashing. */
static uint32_t memo_answer(policy_build_t *b, const ibp_tbl_answer_t *a)
{
    uint32_t *slot = NULL;
    unsigned kind = memo_kind(a);
    if (a->kind == IBP_ANS_TARGETS && a->n == 1 && kind < MEMO_KINDS) {
        uint32_t m = b->c->tb.sec[IBP_SEC_TARGETS].n > a->target[0]
                         ? ((ibp_tbl_target_t *)ibp_tb_at(&b->c->tb, IBP_SEC_TARGETS,
                                                           a->target[0]))->member
                         : IBP_TBL_NONE;
        if (m < b->c->in->members->n)
            slot = &b->memo[MEMO_KINDS * m + kind];
    }
    if (slot && *slot != IBP_TBL_NONE)
        return *slot;
    uint32_t idx = answer_intern(&b->answers, a);
    if (slot)
        *slot = idx;
    return idx;
}

/* hashed: the answer picks by the client's prefix (spread, failover spread). */
static void record_class(policy_build_t *b, uint32_t id, uint32_t idx, bool hashed)
{
    b->class_answer[id] = idx;
    if (id == IBP_CLASS_UNDEF)
        return;
    if (hashed)
        b->varies = true;
    if (b->only == IBP_TBL_NONE)
        b->only = idx;
    else if (b->only != idx)
        b->varies = true;
}

static bool policy_class(policy_build_t *b, uint32_t id)
{
    ibp_tbl_answer_t a = answer_for_class(b, id);
    uint32_t idx = memo_answer(b, &a);
    if (idx == IBP_TBL_NONE)
        return false;
    record_class(b, id, idx, a.kind == IBP_ANS_FAILOVER_SPREAD ||
                                 (a.kind == IBP_ANS_UNLOCATED && b->n_spread > 1));
    return true;
}

/* The common case for many policies at once: one answer per family, a
 * located or listed class in no override country. healthy[m] has bit p set
 * when member m is a healthy candidate of policy p; one walk down the
 * class's member order settles every policy whose nearest healthy candidate
 * it passes. The rest (all candidates down: fail open) go the general way.
 * A listed class (Routing.Nets, Routing.Map) is walked alike: its order is
 * the list, then distance; only its flags say which of the two answered,
 * and for the policies whose candidates the list does not name (listed
 * clear) it is an ordinary class (list_concerns). */
typedef struct fast_scan {
    uint64_t *healthy;     /* n_members x words */
    uint64_t *down;        /* the same for offline candidates, with failover spread only */
    uint64_t *candidate;   /* the same for every candidate, healthy or not */
    size_t words;
    uint64_t *open;        /* words: policies still to settle */
    uint64_t *general;     /* words: policies this class must settle the general way */
    uint64_t *eligible;    /* words: policies that take part */
    uint64_t *listed;      /* words: policies one of whose candidates the class's list names */
} fast_scan_t;

/* The flags of a listed class's answer whose member is at position i of
 * the class's order (answer_for_net). */
static uint8_t listed_flags(const ibp_geo_class_t *cls, size_t i)
{
    if (!cls->n_listed)
        return 0;
    if (cls->net != IBP_GEO_NO_NET)
        return i < cls->n_listed ? IBP_ANSF_NET : IBP_ANSF_NET_FALLBACK;
    return i < cls->n_listed ? IBP_ANSF_MAP : IBP_ANSF_MAP_FALLBACK;
}

/* f->listed for class cls (list_concerns for every policy at once); the
 * policies its list does not concern and that have no distance order go
 * the general way (answer_unlocated). */
static void fast_listed(const ibp_geo_classes_t *g, const ibp_geo_class_t *cls, fast_scan_t *f)
{
    const uint16_t *order = &g->orders[cls->order];
    memset(f->listed, 0, f->words * sizeof *f->listed);
    for (uint32_t i = 0; i < cls->n_listed; i++)
        for (size_t w = 0; w < f->words; w++)
            f->listed[w] |= f->candidate[(size_t)order[i] * f->words + w];
    if (!cls->by_distance)
        for (size_t w = 0; w < f->words; w++) {
            f->general[w] |= f->open[w] & ~f->listed[w];
            f->open[w] &= f->listed[w];
        }
}

/* Settles the policies of hit: member m's answer under flags. */
static bool fast_settle(ctx_t *c, policy_build_t *bs, size_t w, uint64_t hit, uint16_t m,
                        uint8_t flags, uint32_t id)
{
    unsigned kind = memo_kind(&(ibp_tbl_answer_t){.flags = flags});
    for (; hit; hit &= hit - 1) {
        policy_build_t *b = &bs[w * 64 + (size_t)__builtin_ctzll(hit)];
        uint32_t idx = b->memo[MEMO_KINDS * m + kind];   /* the member's answer, once known */
        if (idx == IBP_TBL_NONE) {
            ibp_tbl_answer_t a = {.kind = IBP_ANS_TARGETS, .n = 1, .flags = flags,
                                  .target = {member_target(c, m, b->pv.family == 6)}};
            if ((idx = memo_answer(b, &a)) == IBP_TBL_NONE)
                return false;
        }
        record_class(b, id, idx, false);
    }
    return true;
}

static bool fast_class(ctx_t *c, policy_build_t *bs, size_t n, fast_scan_t *f, uint32_t id)
{
    const ibp_geo_classes_t *g = c->in->geo;
    const ibp_geo_class_t *cls = &g->cls[id];
    const uint16_t *order = &g->orders[cls->order];
    size_t left = 0;
    for (size_t w = 0; w < f->words; w++)
        f->open[w] = f->eligible[w], f->general[w] = 0, f->listed[w] = 0;
    if (cls->n_listed)
        fast_listed(g, cls, f);
    for (size_t w = 0; w < f->words; w++)
        left += (size_t)__builtin_popcountll(f->open[w]);
    for (size_t i = 0; left && i < g->n_members; i++) {
        const uint64_t *h = &f->healthy[(size_t)order[i] * f->words];
        const uint64_t *d = f->down ? &f->down[(size_t)order[i] * f->words] : NULL;
        uint8_t flags = listed_flags(cls, i);
        for (size_t w = 0; w < f->words; w++) {
            /* A down nearest candidate under failover spread: the general
             * way. A list is never spread over (answer_for_net). */
            uint64_t spread = d ? f->open[w] & d[w] & ~f->listed[w] : 0;
            f->open[w] &= ~spread;
            f->general[w] |= spread;
            left -= (size_t)__builtin_popcountll(spread);
            uint64_t hit = f->open[w] & h[w];
            f->open[w] &= ~hit;
            left -= (size_t)__builtin_popcountll(hit);
            if (!fast_settle(c, bs, w, hit & f->listed[w], order[i], flags, id) ||
                !fast_settle(c, bs, w, hit & ~f->listed[w], order[i], 0, id))
                return false;
        }
    }
    for (size_t w = 0; w < f->words; w++)
        for (uint64_t rest = f->open[w] | f->general[w]; rest; rest &= rest - 1) {
            size_t p = w * 64 + (size_t)__builtin_ctzll(rest);
            if (p < n && !policy_class(&bs[p], id))
                return false;
        }
    return true;
}

static bool fast_scan_init(ctx_t *c, policy_build_t *bs, size_t n, fast_scan_t *f)
{
    size_t n_members = c->in->members->n;
    f->words = (n + 63) / 64;
    f->healthy = calloc((n_members ? n_members : 1) * f->words, sizeof *f->healthy);
    f->open = calloc(f->words ? f->words : 1, sizeof *f->open);
    f->general = calloc(f->words ? f->words : 1, sizeof *f->general);
    f->eligible = calloc(f->words ? f->words : 1, sizeof *f->eligible);
    f->candidate = calloc((n_members ? n_members : 1) * f->words, sizeof *f->candidate);
    f->listed = calloc(f->words ? f->words : 1, sizeof *f->listed);
    bool spread = c->rc->failover_spread > 1;
    if (spread)
        f->down = calloc((n_members ? n_members : 1) * f->words, sizeof *f->down);
    if (!f->healthy || !f->open || !f->general || !f->eligible || !f->candidate || !f->listed ||
        (spread && !f->down))
        return false;
    for (size_t p = 0; p < n; p++) {
        if (bs[p].renumber || bs[p].per_family != 1)
            continue;
        f->eligible[p / 64] |= 1ull << (p % 64);
        for (size_t m = 0; m < n_members; m++) {
            if (bs[p].state[m] == 1)
                f->healthy[m * f->words + p / 64] |= 1ull << (p % 64);
            else if (bs[p].state[m] == 2 && spread)
                f->down[m * f->words + p / 64] |= 1ull << (p % 64);
            if (bs[p].state[m] != 0)
                f->candidate[m * f->words + p / 64] |= 1ull << (p % 64);
        }
    }
    return true;
}

static void fast_scan_free(fast_scan_t *f)
{
    free(f->candidate);
    free(f->listed);
    free(f->healthy);
    free(f->down);
    free(f->general);
    free(f->open);
    free(f->eligible);
}

/* Every class of every policy: the common case together, the rest one by one. */
static bool map_all_classes(ctx_t *c, policy_build_t *bs, size_t n)
{
    const ibp_geo_classes_t *g = c->in->geo;
    fast_scan_t f = {0};
    bool ok = fast_scan_init(c, bs, n, &f);
    for (uint32_t id = 0; ok && id < g->n_cls; id++) {
        const ibp_geo_class_t *cls = &g->cls[id];
        bool fast = id >= IBP_CLASS_FIRST && (cls->by_distance || cls->n_listed) && !cls->cc[0];
        if (fast)
            ok = fast_class(c, bs, n, &f, id);
        for (size_t p = 0; ok && p < n; p++)
            if (!bs[p].renumber && (!fast || !(f.eligible[p / 64] >> (p % 64) & 1)))
                ok = policy_class(&bs[p], id);
    }
    fast_scan_free(&f);
    return ok;
}

/* The single answer every located or unlocated class gets, or NONE when the
 * answer depends on the client. */
static bool policy_end(policy_build_t *b)
{
    if (b->varies)
        b->only = IBP_TBL_NONE;
    else   /* let the placeholders merge too: the trie collapses to one leaf */
        b->class_answer[IBP_CLASS_UNDEF] = b->only;
    if (b->n_seed && !b->renumber && !settle_seeded(b, b->n_seed))
        b->renumber = true;
    return true;
}

static void policy_reset(policy_build_t *b)
{
    free(b->class_answer);
    free(b->memo);
    b->class_answer = NULL;
    b->memo = NULL;
    b->answers.n = 0;
    if (b->answers.slot)
        memset(b->answers.slot, 0, 2 * b->answers.cap * sizeof *b->answers.slot);
    b->renumber = false;
}

/* One policy alone, numbered afresh (its seeded numbering did not fit). */
static bool map_classes_fresh(policy_build_t *b)
{
    policy_reset(b);
    bool ok = policy_begin(b, false);
    for (uint32_t id = 0; ok && id < b->c->in->geo->n_cls; id++)
        ok = policy_class(b, id);
    return ok && policy_end(b);
}

static bool write_policy(policy_build_t *b, bool client_dependent)
{
    ibp_tb_t *tb = &b->c->tb;
    ibp_tbl_policy_t p = {
        .family = b->pv.family,
        .flags = (client_dependent ? IBP_POL_CLIENT_DEPENDENT : 0) |
                 (b->spread_fail_open ? IBP_POL_SPREAD_FAIL_OPEN : 0),
        .answer_count = (uint32_t)b->answers.n,
        .spread_count = (uint32_t)b->n_spread,
        .answers_per_family = b->per_family,
    };
    if (!ibp_map_set_add(b->c->maps, b->class_answer, p.answer_count, b->host,
                         p.family == 6, &p.map, b->c->err))
        return false;
    p.answer_first = ibp_tb_push(tb, IBP_SEC_ANSWERS, b->answers.n);
    p.spread_first = ibp_tb_push(tb, IBP_SEC_SPREAD, b->n_spread);
    uint32_t idx = ibp_tb_push(tb, IBP_SEC_POLICIES, 1);
    if (tb->oom)
        return ibp_err_set(b->c->err, "out of memory");
    memcpy(ibp_tb_at(tb, IBP_SEC_ANSWERS, p.answer_first), b->answers.v,
           b->answers.n * sizeof *b->answers.v);
    if (b->n_spread)
        memcpy(ibp_tb_at(tb, IBP_SEC_SPREAD, p.spread_first), b->spread,
               b->n_spread * sizeof *b->spread);
    *(ibp_tbl_policy_t *)ibp_tb_at(tb, IBP_SEC_POLICIES, idx) = p;
    return true;
}

static bool policy_setup(ctx_t *c, const policy_key_t *k, const char *host, policy_build_t *b)
{
    *b = (policy_build_t){.c = c, .pv = policy_view(k), .per_family = c->rc->answers_per_family,
                          .host = host};
    const ibp_members_t *ms = c->in->members;
    b->state = calloc(ms->n ? ms->n : 1, 1);
    if (!b->state)
        return false;
    for (uint32_t i = 0; i < b->pv.n_healthy; i++)
        b->state[b->pv.healthy[i]] = 1;
    for (uint32_t i = 0; i < b->pv.n_down; i++)
        b->state[b->pv.down[i]] = 2;
    return make_spread(b) && policy_begin(b, true);
}

static void policy_free(policy_build_t *b)
{
    free(b->state);
    free(b->spread);
    free(b->answers.v);
    free(b->answers.slot);
    free(b->class_answer);
    free(b->memo);
}

/* ---- hosts --------------------------------------------------------------- */

typedef struct policy_set {
    policy_key_t *keys;
    const char **hosts;    /* the first host of each policy */
    size_t n;
} policy_set_t;

static bool policy_is_empty(const policy_key_t *k)
{
    policy_view_t p = policy_view(k);
    return p.n_healthy == 0 && p.n_down == 0 && p.n_ovr == 0;
}

/* The policy index for key k in *index (IBP_TBL_NONE for an empty key),
 * compiling the policy when it is new. False on an error. */
static bool policy_for(ctx_t *c, policy_set_t *set, policy_key_t *k, const char *host,
                       uint32_t *index)
{
    *index = IBP_TBL_NONE;
    if (policy_is_empty(k))
        return true;
    for (size_t i = 0; i < set->n; i++)
        if (set->keys[i].n == k->n && !memcmp(set->keys[i].v, k->v, k->n * sizeof *k->v)) {
            *index = (uint32_t)i;
            return true;
        }
    policy_key_t *keys = realloc(set->keys, (set->n + 1) * sizeof *keys);
    if (!keys)
        return ibp_err_set(c->err, "out of memory");
    set->keys = keys;
    const char **hosts = realloc(set->hosts, (set->n + 1) * sizeof *hosts);
    if (!hosts)
        return ibp_err_set(c->err, "out of memory");
    set->hosts = hosts;
    keys[set->n] = *k;
    hosts[set->n] = host;
    *k = (policy_key_t){0};   /* the set owns it now */
    *index = (uint32_t)set->n++;
    return true;
}

/* Every policy of the set, class by class, then written in set order (the
 * index hosts refer to). */
static bool compile_policies(ctx_t *c, const policy_set_t *set)
{
    policy_build_t *bs = calloc(set->n ? set->n : 1, sizeof *bs);
    if (!bs)
        return ibp_err_set(c->err, "out of memory");
    bool ok = true;
    size_t made = 0;
    for (; ok && made < set->n; made++)
        ok = policy_setup(c, &set->keys[made], set->hosts[made], &bs[made]);
    ok = ok && map_all_classes(c, bs, set->n);
    for (size_t i = 0; ok && i < set->n; i++) {
        ok = policy_end(&bs[i]);
        if (ok && bs[i].renumber)
            ok = map_classes_fresh(&bs[i]);
    }
    if (!ok && !c->err->msg[0])
        ibp_err_set(c->err, "out of memory");
    for (size_t i = 0; ok && i < set->n; i++)
        ok = write_policy(&bs[i], bs[i].only == IBP_TBL_NONE);
    for (size_t i = 0; i < made; i++)
        policy_free(&bs[i]);
    free(bs);
    return ok;
}

static bool write_cands(ctx_t *c, size_t host_idx, ibp_tbl_host_t *th)
{
    const ibp_members_t *ms = c->in->members;
    th->cand_first = (uint32_t)c->tb.sec[IBP_SEC_CANDS].n;
    for (size_t m = 0; m < ms->n; m++) {
        if (!c->hosts[host_idx].assigned[m])
            continue;
        uint32_t idx = ibp_tb_push(&c->tb, IBP_SEC_CANDS, 1);
        if (idx == IBP_TBL_NONE)
            return ibp_err_set(c->err, "out of memory");
        ibp_tbl_cand_t *cand = ibp_tb_at(&c->tb, IBP_SEC_CANDS, idx);
        cand->member = (uint32_t)m;
        for (int f = 0; f < 2; f++)
            cand->skip[f] = c->skip[f][host_idx * ms->n + m];
        th->cand_count++;
    }
    return true;
}

static bool write_host(ctx_t *c, policy_set_t *set, size_t i)
{
    const host_ent_t *h = &c->hosts[i];
    const name_ent_t *ne = &c->names[h->name_idx];
    uint32_t zone_id = c->zones[ne->zone].id;
    ibp_tbl_host_t th = {.name = h->name_idx, .zone = ne->zone};
    for (int f = 0; f < 2; f++) {
        policy_key_t k = {0};
        if (!policy_key_of(c, i, f, &k))
            return false;
        bool ok = policy_for(c, set, &k, h->name, &th.policy[f]);
        free(k.v);
        if (!ok)
            return false;
        th.tail[f] = ibp_tb_strf(&c->tb, "IN\t%s\t%u\t%u\t", f ? "AAAA" : "A", c->rc->ttl, zone_id);
        th.tail_len[f] = th.tail[f] == IBP_TBL_NONE ? 0 : (uint32_t)strlen(tb_string(c, th.tail[f]));
    }
    if (th.policy[0] == IBP_TBL_NONE && th.policy[1] == IBP_TBL_NONE &&
        !ctx_warn(c, "%s: no member can answer it (no candidates in either family)", h->name))
        return false;
    if (!write_cands(c, i, &th))
        return false;
    uint32_t idx = ibp_tb_push(&c->tb, IBP_SEC_HOSTS, 1);
    if (idx == IBP_TBL_NONE)
        return ibp_err_set(c->err, "out of memory");
    *(ibp_tbl_host_t *)ibp_tb_at(&c->tb, IBP_SEC_HOSTS, idx) = th;
    return true;
}

static bool write_hosts(ctx_t *c)
{
    policy_set_t set = {0};
    bool ok = true;
    for (size_t i = 0; ok && i < c->n_hosts; i++)
        ok = write_host(c, &set, i);
    ok = ok && compile_policies(c, &set);
    c->out->n_policies = set.n;
    for (size_t i = 0; i < set.n; i++)
        free(set.keys[i].v);
    free(set.keys);
    free(set.hosts);
    return ok;
}

static void write_inputs(ctx_t *c)
{
    for (size_t i = 0; i < c->in->n_inputs; i++) {
        const ibp_input_desc_t *d = &c->in->inputs[i];
        uint32_t src = ibp_tb_str(&c->tb, d->source, strlen(d->source));
        uint32_t detail = d->detail ? ibp_tb_str(&c->tb, d->detail, strlen(d->detail)) : 0;
        uint32_t idx = ibp_tb_push(&c->tb, IBP_SEC_INPUTS, 1);
        if (idx == IBP_TBL_NONE)
            return;
        *(ibp_tbl_input_t *)ibp_tb_at(&c->tb, IBP_SEC_INPUTS, idx) = (ibp_tbl_input_t){
            .kind = d->kind, .source = src, .detail = detail,
            .digest_hi = d->digest_hi, .digest_lo = d->digest_lo, .size = d->size};
    }
}

/* ---- geo needs ------------------------------------------------------------ */

static int member_key_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const ibp_member_t *)elem)->key);
}

/* The index of member key (members are sorted by key), or an error naming
 * src, the list's JSON path and the position k in it. */
static bool member_index(const ibp_members_t *m, const char *key, const char *src,
                         const char *path, size_t k, uint16_t *out, ibp_err_t *err)
{
    const ibp_member_t *mem = bsearch(key, m->v, m->n, sizeof *m->v, member_key_cmp);
    if (!mem) {
        char q[IBP_JQUOTE_MAX + 8];
        ibp_json_quote(q, sizeof q, key);
        return ibp_err_set(err, "%s: %s[%zu]: %s is not a member key", src, path, k, q);
    }
    *out = (uint16_t)(mem - m->v);
    return true;
}

/* Routing.Nets with member keys as indexes. */
static bool needs_nets(const ibp_members_t *m, const ibp_nets_t *nets, ibp_geo_needs_t *out,
                       ibp_err_t *err)
{
    size_t total = 0;
    for (size_t i = 0; i < nets->n; i++)
        total += nets->v[i].n_members;
    out->nets = calloc(nets->n ? nets->n : 1, sizeof *out->nets);
    out->listed = calloc(total ? total : 1, sizeof *out->listed);
    if (!out->nets || !out->listed)
        return ibp_err_set(err, "out of memory");
    size_t at = 0;
    for (size_t i = 0; i < nets->n; i++) {
        const ibp_net_t *n = &nets->v[i];
        ibp_u128_t start = 0;
        for (int b = 0; b < 16; b++)
            start = start << 8 | n->addr[b];
        out->nets[i] = (ibp_geo_net_t){.start = start, .len = n->len, .is_auto = n->is_auto,
                                       .listed = &out->listed[at], .n_listed = n->n_members};
        for (size_t k = 0; k < n->n_members; k++)
            if (!member_index(m, n->members[k], nets->src, n->path, k, &out->listed[at++], err))
                return false;
    }
    out->n_nets = nets->n;
    return true;
}

/* Routing.Map's lists with member indexes; ids are 1-based, in walk order. */
typedef struct map_lists_ctx {
    const ibp_members_t *m;
    ibp_geo_needs_t *out;
    size_t at;
    ibp_err_t *err;
    bool ok;
} map_lists_ctx_t;

static void map_list_add(void *ctx, const ibp_map_node_t *n)
{
    map_lists_ctx_t *x = ctx;
    if (!x->ok)
        return;
    ibp_geo_map_list_t *l = &x->out->map_lists[n->id - 1];
    l->listed = &x->out->map_listed[x->at];
    for (size_t k = 0; k < n->n_members && x->ok; k++) {
        x->ok = member_index(x->m, n->members[k], x->out->map->src, n->path, k,
                             &x->out->map_listed[x->at++], x->err);
        l->n_listed += x->ok;
    }
}

static void map_count(void *ctx, const ibp_map_node_t *n)
{
    *(size_t *)ctx += n->n_members;
}

static bool needs_map(const ibp_members_t *m, const ibp_map_t *map, ibp_geo_needs_t *out,
                      ibp_err_t *err)
{
    size_t total = 0;
    ibp_map_each_list(map, map_count, &total);
    out->map = map;
    out->map_lists = calloc(map->n_lists ? map->n_lists : 1, sizeof *out->map_lists);
    out->map_listed = calloc(total ? total : 1, sizeof *out->map_listed);
    if (!out->map_lists || !out->map_listed)
        return ibp_err_set(err, "out of memory");
    map_lists_ctx_t x = {m, out, 0, err, true};
    ibp_map_each_list(map, map_list_add, &x);
    out->n_map_lists = map->n_lists;
    return x.ok;
}

/* The map's shape: a key moved or a default changed re-walks MaxMind even
 * when the lists stay. Lengths before strings keep the encoding unambiguous. */
static void map_digest(XXH3_state_t *st, const ibp_map_node_t *n)
{
    uint64_t head[5] = {strlen(n->key), n->kind, n->skip_level, n->n_kids,
                        n->dflt && n->dflt->kind == IBP_MAP_LIST ? n->dflt->id : 0};
    XXH3_64bits_update(st, head, sizeof head);
    XXH3_64bits_update(st, n->key, strlen(n->key));
    for (size_t i = 0; i < n->n_members; i++) {
        uint64_t len = strlen(n->members[i]);
        XXH3_64bits_update(st, &len, sizeof len);
        XXH3_64bits_update(st, n->members[i], len);
    }
    if (n->own_dflt)
        map_digest(st, n->own_dflt);
    for (size_t i = 0; i < n->n_kids; i++)
        map_digest(st, &n->kids[i]);
}

static void needs_digest(XXH3_state_t *st, const ibp_geo_needs_t *n)
{
    if (n->map && n->map->root) {   /* no map: the fingerprint tables before maps had */
        XXH3_64bits_update(st, "map", 3);
        map_digest(st, n->map->root);
    }
    for (size_t i = 0; i < n->n_nets; i++) {
        const ibp_geo_net_t *g = &n->nets[i];
        uint8_t head[18] = {(uint8_t)g->len, g->is_auto};
        memcpy(head + 2, &g->start, 16);
        XXH3_64bits_update(st, head, sizeof head);
        uint64_t count = g->n_listed;
        XXH3_64bits_update(st, &count, sizeof count);
        XXH3_64bits_update(st, g->listed, g->n_listed * sizeof *g->listed);
    }
}

bool ibp_geo_needs_from_model(const ibp_members_t *m, const ibp_overrides_t *o,
                              const ibp_nets_t *nets, const ibp_map_t *map,
                              ibp_geo_needs_t *out, ibp_err_t *err)
{
    memset(out, 0, sizeof *out);
    out->sites = calloc(m->n ? m->n : 1, sizeof *out->sites);
    out->ccs = calloc(o && o->n ? o->n : 1, sizeof *out->ccs);
    XXH3_state_t *st = XXH3_createState();
    bool ok = (out->sites && out->ccs && st) || ibp_err_set(err, "out of memory");
    ok = ok && (!nets || needs_nets(m, nets, out, err));
    ok = ok && (!map || !map->root || needs_map(m, map, out, err));
    if (!ok) {
        XXH3_freeState(st);
        ibp_geo_needs_free(out);
        return false;
    }
    XXH3_64bits_reset(st);
    for (size_t i = 0; i < m->n; i++) {
        out->sites[i] = ibp_site_from_degrees(m->v[i].lat, m->v[i].lon);
        XXH3_64bits_update(st, &out->sites[i], sizeof out->sites[i]);
    }
    out->n_sites = m->n;
    for (size_t i = 0; o && i < o->n; i++) {
        bool seen = false;
        for (size_t j = 0; j < out->n_ccs; j++)
            seen |= !memcmp(out->ccs[j], o->v[i].cc, 3);
        if (!seen) {
            memcpy(out->ccs[out->n_ccs++], o->v[i].cc, 3);
            XXH3_64bits_update(st, o->v[i].cc, 3);
        }
    }
    needs_digest(st, out);   /* no nets: the fingerprint tables before them had */
    out->fingerprint = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return true;
}

/* The MaxMind walk's callback: a record's names -> the map list deciding them. */
static uint32_t map_rule_of(const void *ctx, const ibp_geo_names_t *names)
{
    ibp_map_loc_t loc = {.continent = names->continent, .country = names->country,
                         .city = names->city};
    for (size_t i = 0; i < names->n_subs && i < IBP_MAP_SUBS_MAX; i++)
        loc.subs[loc.n_subs++] = names->subs[i];
    ibp_map_rule_t r;
    return ibp_map_resolve(ctx, &loc, &r) == IBP_MAP_LIST ? r.node->id : 0;
}

ibp_geo_input_t ibp_geo_input_of(const ibp_geo_needs_t *n, const char *mmdb_path)
{
    return (ibp_geo_input_t){.mmdb_path = mmdb_path, .sites = n->sites, .n_sites = n->n_sites,
                             .ccs = (const char (*)[3])n->ccs, .n_ccs = n->n_ccs,
                             .nets = n->nets, .n_nets = n->n_nets,
                             .map_rule = n->map ? map_rule_of : NULL, .map_ctx = n->map,
                             .map_lists = n->map_lists, .n_map_lists = n->n_map_lists,
                             .fingerprint = n->fingerprint};
}

void ibp_geo_needs_free(ibp_geo_needs_t *n)
{
    free(n->sites);
    free(n->ccs);
    free(n->nets);
    free(n->listed);
    free(n->map_lists);
    free(n->map_listed);
    memset(n, 0, sizeof *n);
}

/* ---- entry point ------------------------------------------------------------ */

static void ctx_free(ctx_t *c)
{
    for (size_t i = 0; i < c->n_hosts; i++)
        free(c->hosts[i].assigned);
    free(c->hosts);
    free(c->zones);
    free(c->st.v);
    ibp_strv_free(&c->added);
    free(c->names);
    free(c->skip[0]);
    free(c->skip[1]);
    ibp_map_set_free(c->maps);
    ibp_tb_free(&c->tb);
    free(c->reuse);
}

static bool has_country(const ibp_overrides_t *o, const char *cc)
{
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->v[i].cc, cc))
            return true;
    return false;
}

static bool check_geo(const ibp_compile_in_t *in, ibp_err_t *err)
{
    const ibp_overrides_t *split = in->geo_overrides ? in->geo_overrides : in->overrides;
    ibp_geo_needs_t needs;
    if (!ibp_geo_needs_from_model(in->members, split, &in->config->routing.nets,
                                  &in->config->routing.map, &needs, err))
        return false;
    bool fresh = needs.fingerprint == in->geo->fingerprint && in->geo->n_members == in->members->n;
    ibp_geo_needs_free(&needs);
    for (size_t i = 0; fresh && in->overrides && split != in->overrides && i < in->overrides->n; i++)
        fresh = has_country(split, in->overrides->v[i].cc);
    if (!fresh)
        return ibp_err_set(err, "geo classes were built for other member locations or "
                           "override countries: rebuild them first");
    return true;
}

/* Borrowed, as the geo trie is: a republish copies them, never rebuilds them. */
static void write_clients(ctx_t *c)
{
    const ibp_client_classes_t *cl = c->in->clients;
    if (!cl || !cl->n)
        return;
    uint32_t at = ibp_tb_push(&c->tb, IBP_SEC_CLIENT, 1);
    if (at == IBP_TBL_NONE)
        return;   /* tb.oom: ibp_tb_finish says so */
    *(ibp_tbl_client_t *)ibp_tb_at(&c->tb, IBP_SEC_CLIENT, at) =
        (ibp_tbl_client_t){.root = cl->trie.root, .n_classes = (uint32_t)cl->n};
    ibp_tb_borrow(&c->tb, IBP_SEC_CLIENT_NODES, cl->trie.nodes, cl->trie.node_count);
    ibp_tb_borrow(&c->tb, IBP_SEC_CLIENT_TEXT, cl->text, cl->text_off[cl->n]);
    ibp_tb_borrow(&c->tb, IBP_SEC_CLIENT_OFFS, cl->text_off, cl->n + 1);
    /* As for the geo trie: a small trie stays in the cache without one. */
    uint32_t min_nodes = c->in->index_min_nodes ? c->in->index_min_nodes : IBP_INDEX_MIN_NODES;
    if (cl->trie.node_count && cl->trie.node_count >= min_nodes)
        ibp_tb_borrow(&c->tb, IBP_SEC_CLIENT_INDEX, cl->index, 2 * IBP_TBL_INDEX_SIZE);
}

/* Routing.Nets as configured, for the explanations' rule (already sorted
 * and distinct: the parser saw to it). */
static void write_nets(ctx_t *c)
{
    const ibp_nets_t *nets = &c->rc->nets;
    uint32_t first = ibp_tb_push(&c->tb, IBP_SEC_NETS, nets->n);
    for (size_t i = 0; first != IBP_TBL_NONE && i < nets->n; i++) {
        const ibp_net_t *n = &nets->v[i];
        ibp_tbl_net_t *t = ibp_tb_at(&c->tb, IBP_SEC_NETS, first + (uint32_t)i);
        memcpy(t->addr, n->addr, 16);
        t->len = n->len;
        t->flags = n->is_auto ? IBP_NET_AUTO : 0;
        t->text = ibp_tb_str(&c->tb, n->text, strlen(n->text));
    }
}

static bool compile_all(ctx_t *c)
{
    const char **hosts = NULL;
    size_t n_hosts = 0;
    bool ok = collect_service_hosts(c, &hosts, &n_hosts) && build_zones(c, hosts, n_hosts) &&
              build_statics(c) && build_names(c, hosts, n_hosts);
    free(hosts);
    if (!ok || !register_hosts(c))
        return false;
    write_zones(c);
    write_names(c);
    write_members(c);
    uint32_t min_nodes = c->in->index_min_nodes ? c->in->index_min_nodes : IBP_INDEX_MIN_NODES;
    if (!ibp_map_set_new(c->in->geo, c->in->previous, min_nodes, &c->maps, c->err))
        return false;
    if (c->in->geo_trie)
        ibp_map_set_keep_geo_trie(c->maps);
    if (!write_hosts(c) || !ibp_map_set_write(c->maps, &c->tb, c->err))
        return false;
    c->out->n_maps = ibp_map_set_count(c->maps);
    c->out->maps = ibp_map_set_stats(c->maps);
    c->out->n_nodes = c->tb.sec[IBP_SEC_NODES].n;
    write_clients(c);
    write_nets(c);
    write_inputs(c);
    const char *map = c->rc->map.json;
    uint32_t map_text = map ? ibp_tb_str(&c->tb, map, strlen(map)) : IBP_TBL_NONE;
    ibp_tbl_header_t fields = {
        .generation = c->in->generation, .build_time = c->in->build_time, .ttl = c->rc->ttl,
        .spread_v4_bits = SPREAD_V4_BITS, .spread_v6_bits = SPREAD_V6_BITS,
        .flags = c->rc->apex_soa_in_any ? 0 : IBP_HDR_NO_APEX_SOA_IN_ANY,
        .acme_budget_ms = c->rc->acme_budget_ms,
        .map_text = map_text == IBP_TBL_NONE ? 0 : map_text + 1,
    };
    uint8_t *reuse = c->reuse;
    c->reuse = NULL;
    return ibp_tb_finish_into(&c->tb, &fields, reuse, c->in->reuse_cap, &c->out->table,
                              &c->out->table_len, &c->out->table_cap, c->err);
}

bool ibp_compile(const ibp_compile_in_t *in, ibp_compile_out_t *out, ibp_err_t *err)
{
    ibp_err_t local;
    if (!err)
        err = &local;
    err->msg[0] = '\0';
    memset(out, 0, sizeof *out);
    ctx_t c = {.in = in, .rc = &in->config->routing, .reuse = in->reuse, .out = out, .err = err};
    bool usable = in->members->n <= IBP_GEO_MAX_MEMBERS
                      ? check_geo(in, err)
                      : ibp_err_set(err, "%zu members: at most %d are supported",
                                    in->members->n, IBP_GEO_MAX_MEMBERS);
    if (!usable) {
        free(c.reuse);
        return false;
    }
    ibp_tb_init(&c.tb);
    bool ok = compile_all(&c);
    ctx_free(&c);
    if (!ok)
        ibp_compile_out_free(out);
    return ok;
}

void ibp_compile_out_free(ibp_compile_out_t *o)
{
    free(o->table);
    for (size_t i = 0; i < o->n_warnings; i++)
        free(o->warnings[i]);
    free(o->warnings);
    memset(o, 0, sizeof *o);
}
