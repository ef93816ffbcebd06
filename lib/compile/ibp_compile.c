#include "ibp_compile.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ibp_nlist.h"
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
    ibp_tb_t tb;
    zone_ent_t *zones;
    size_t n_zones;
    name_ent_t *names;
    size_t n_names;
    host_ent_t *hosts;
    size_t n_hosts;
    uint8_t *skip[2];      /* [family][host * n_members + member]: enum ibp_skip */
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
            inside = bsearch(&key, c->zones, n_static, sizeof key, cmp_zone) != NULL;
        }
        if (!inside && !add_zone(c, hosts[i]))
            return false;
    }
    if (c->n_zones)
        qsort(c->zones, c->n_zones, sizeof *c->zones, cmp_zone);
    assign_zone_ids(c);
    return true;
}

static int cmp_name_ent(const void *a, const void *b)
{
    return strcmp(((const name_ent_t *)a)->name, ((const name_ent_t *)b)->name);
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
    const ibp_statics_t *st = c->in->statics;
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
    const ibp_statics_t *st = c->in->statics;
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
    const ibp_statics_t *st = c->in->statics;
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

typedef struct answers {
    ibp_tbl_answer_t *v;
    size_t n, cap;
} answers_t;

static uint32_t answer_intern(answers_t *a, const ibp_tbl_answer_t *ans)
{
    for (size_t i = 0; i < a->n; i++)
        if (!memcmp(&a->v[i], ans, sizeof *ans))
            return (uint32_t)i;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        ibp_tbl_answer_t *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return IBP_TBL_NONE;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n] = *ans;
    return (uint32_t)a->n++;
}

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
} policy_build_t;

static ibp_tbl_answer_t answer_for_order(const policy_build_t *b, const uint16_t *order)
{
    ibp_tbl_answer_t a = {.kind = IBP_ANS_TARGETS};
    size_t n_members = b->c->in->members->n;
    int fam = b->pv.family == 6;
    for (uint8_t want = 1; want <= 2 && a.n == 0; want++) {
        if (want == 2 && b->c->rc->all_down == IBP_ALL_DOWN_NONE)
            break;
        for (size_t i = 0; i < n_members && a.n < b->per_family; i++)
            if (b->state[order[i]] == want)
                a.target[a.n++] = member_target(b->c, order[i], fam);
        if (want == 2 && a.n)
            a.flags = IBP_ANSF_FAIL_OPEN;
    }
    if (a.n == 0)
        a.kind = IBP_ANS_NONE;
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
    if (!cls->located)
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

/* Maps every geo class to an answer; returns the single answer every located
 * or unlocated class gets, or NONE when the answer depends on the client. */
static bool map_classes(policy_build_t *b, uint32_t *only)
{
    const ibp_geo_classes_t *g = b->c->in->geo;
    b->class_answer = calloc(g->n_cls, sizeof *b->class_answer);
    if (!b->class_answer)
        return false;
    ibp_tbl_answer_t undef = {.kind = IBP_ANS_UNDEF};
    if (answer_intern(&b->answers, &undef) == IBP_TBL_NONE)
        return false;
    *only = IBP_TBL_NONE;
    bool varies = false;
    for (uint32_t id = 0; id < g->n_cls; id++) {
        ibp_tbl_answer_t a = answer_for_class(b, id);
        uint32_t idx = answer_intern(&b->answers, &a);
        if (idx == IBP_TBL_NONE)
            return false;
        b->class_answer[id] = idx;
        if (id == IBP_CLASS_UNDEF)
            continue;
        if (a.kind == IBP_ANS_UNLOCATED && b->n_spread > 1)
            varies = true;
        if (*only == IBP_TBL_NONE)
            *only = idx;
        else if (*only != idx)
            varies = true;
    }
    if (varies)
        *only = IBP_TBL_NONE;
    else   /* let the placeholders merge too: the trie collapses to one leaf */
        b->class_answer[IBP_CLASS_UNDEF] = *only;
    return true;
}

static bool build_trie(policy_build_t *b, ibp_trie_t *trie)
{
    const ibp_geo_classes_t *g = b->c->in->geo;
    ibp_nlist_t l;
    ibp_nlist_init(&l);
    bool ok = true;
    for (size_t i = 0; ok && i < g->list.n; i++)
        ok = ibp_nlist_append(&l, g->list.len[i], b->class_answer[g->list.val[i]], b->c->err);
    ok = ok && ibp_trie_build(&l, trie, b->c->err);
    ibp_nlist_free(&l);
    return ok;
}

static uint32_t push_index(ibp_tb_t *tb, const ibp_trie_t *trie, uint32_t root, unsigned depth)
{
    if (root & IBP_TBL_LEAF)
        return IBP_TBL_NONE;   /* one answer for the whole space: nothing to shortcut */
    uint32_t first = ibp_tb_push(tb, IBP_SEC_INDEX, IBP_TBL_INDEX_SIZE);
    if (tb->oom)
        return IBP_TBL_NONE;
    ibp_trie_index_build(trie->nodes, root, depth, ibp_tb_at(tb, IBP_SEC_INDEX, first));
    return first;
}

static bool write_policy(policy_build_t *b, const ibp_trie_t *trie, bool client_dependent)
{
    ibp_tb_t *tb = &b->c->tb;
    ibp_tbl_policy_t p = {
        .family = b->pv.family,
        .flags = (client_dependent ? IBP_POL_CLIENT_DEPENDENT : 0) |
                 (b->spread_fail_open ? IBP_POL_SPREAD_FAIL_OPEN : 0),
        .root = trie->root,
        .node_count = trie->node_count,
        .answer_count = (uint32_t)b->answers.n,
        .spread_count = (uint32_t)b->n_spread,
        .answers_per_family = b->per_family,
    };
    p.node_first = ibp_tb_push(tb, IBP_SEC_NODES, trie->node_count);
    p.answer_first = ibp_tb_push(tb, IBP_SEC_ANSWERS, b->answers.n);
    p.spread_first = ibp_tb_push(tb, IBP_SEC_SPREAD, b->n_spread);
    uint32_t idx = ibp_tb_push(tb, IBP_SEC_POLICIES, 1);
    if (tb->oom)
        return false;
    if (trie->node_count)
        memcpy(ibp_tb_at(tb, IBP_SEC_NODES, p.node_first), trie->nodes,
               (size_t)trie->node_count * 8);
    memcpy(ibp_tb_at(tb, IBP_SEC_ANSWERS, p.answer_first), b->answers.v,
           b->answers.n * sizeof *b->answers.v);
    if (b->n_spread)
        memcpy(ibp_tb_at(tb, IBP_SEC_SPREAD, p.spread_first), b->spread,
               b->n_spread * sizeof *b->spread);
    unsigned depth = 0;
    uint32_t ref = trie->root;
    while (!(ref & IBP_TBL_LEAF) && depth < 96) {
        ref = trie->nodes[2 * ref];
        depth++;
    }
    p.v4_root = ref;
    p.v4_depth = depth;
    uint32_t min_nodes = b->c->in->index_min_nodes ? b->c->in->index_min_nodes
                                                   : IBP_INDEX_MIN_NODES;
    bool index = client_dependent && trie->node_count >= min_nodes &&
                 b->answers.n <= IBP_IDX_ANSWER_MASK;
    p.index_v4 = index && depth == 96 ? push_index(tb, trie, ref, 96) : IBP_TBL_NONE;
    p.index_v6 = index ? push_index(tb, trie, trie->root, 0) : IBP_TBL_NONE;
    if (tb->oom)
        return false;
    *(ibp_tbl_policy_t *)ibp_tb_at(tb, IBP_SEC_POLICIES, idx) = p;
    b->c->out->n_nodes += trie->node_count;
    return true;
}

static bool compile_policy(ctx_t *c, const policy_key_t *k)
{
    policy_build_t b = {.c = c, .pv = policy_view(k), .per_family = c->rc->answers_per_family};
    const ibp_members_t *ms = c->in->members;
    ibp_trie_t trie = {0};
    uint32_t only = IBP_TBL_NONE;
    b.state = calloc(ms->n ? ms->n : 1, 1);
    bool ok = b.state != NULL;
    for (uint32_t i = 0; ok && i < b.pv.n_healthy; i++)
        b.state[b.pv.healthy[i]] = 1;
    for (uint32_t i = 0; ok && i < b.pv.n_down; i++)
        b.state[b.pv.down[i]] = 2;
    ok = ok && make_spread(&b) && map_classes(&b, &only);
    if (!ok)
        ibp_err_set(c->err, "out of memory");
    ok = ok && build_trie(&b, &trie) && write_policy(&b, &trie, only == IBP_TBL_NONE);
    if (!ok && !c->err->msg[0])
        ibp_err_set(c->err, "out of memory");
    ibp_trie_free(&trie);
    free(b.state);
    free(b.spread);
    free(b.answers.v);
    free(b.class_answer);
    return ok;
}

/* ---- hosts --------------------------------------------------------------- */

typedef struct policy_set {
    policy_key_t *keys;
    size_t n;
} policy_set_t;

static bool policy_is_empty(const policy_key_t *k)
{
    policy_view_t p = policy_view(k);
    return p.n_healthy == 0 && p.n_down == 0 && p.n_ovr == 0;
}

/* The policy index for key k in *index (IBP_TBL_NONE for an empty key),
 * compiling the policy when it is new. False on an error. */
static bool policy_for(ctx_t *c, policy_set_t *set, policy_key_t *k, uint32_t *index)
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
    if (!compile_policy(c, k))
        return false;
    keys[set->n] = *k;
    *k = (policy_key_t){0};   /* the set owns it now */
    *index = (uint32_t)set->n++;
    return true;
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
        bool ok = policy_for(c, set, &k, &th.policy[f]);
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
    c->out->n_policies = set.n;
    for (size_t i = 0; i < set.n; i++)
        free(set.keys[i].v);
    free(set.keys);
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

bool ibp_geo_needs_from_model(const ibp_members_t *m, const ibp_overrides_t *o,
                              ibp_geo_needs_t *out, ibp_err_t *err)
{
    memset(out, 0, sizeof *out);
    out->sites = calloc(m->n ? m->n : 1, sizeof *out->sites);
    out->ccs = calloc(o && o->n ? o->n : 1, sizeof *out->ccs);
    if (!out->sites || !out->ccs) {
        ibp_geo_needs_free(out);
        return ibp_err_set(err, "out of memory");
    }
    XXH3_state_t *st = XXH3_createState();
    if (!st) {
        ibp_geo_needs_free(out);
        return ibp_err_set(err, "out of memory");
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
    out->fingerprint = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return true;
}

void ibp_geo_needs_free(ibp_geo_needs_t *n)
{
    free(n->sites);
    free(n->ccs);
    memset(n, 0, sizeof *n);
}

/* ---- entry point ------------------------------------------------------------ */

static void ctx_free(ctx_t *c)
{
    for (size_t i = 0; i < c->n_hosts; i++)
        free(c->hosts[i].assigned);
    free(c->hosts);
    free(c->zones);
    free(c->names);
    free(c->skip[0]);
    free(c->skip[1]);
    ibp_tb_free(&c->tb);
}

static bool check_geo(const ibp_compile_in_t *in, ibp_err_t *err)
{
    ibp_geo_needs_t needs;
    if (!ibp_geo_needs_from_model(in->members, in->overrides, &needs, err))
        return false;
    bool fresh = needs.fingerprint == in->geo->fingerprint && in->geo->n_members == in->members->n;
    ibp_geo_needs_free(&needs);
    if (!fresh)
        return ibp_err_set(err, "geo classes were built for other member locations or "
                           "override countries: rebuild them first");
    return true;
}

static bool compile_all(ctx_t *c)
{
    const char **hosts = NULL;
    size_t n_hosts = 0;
    bool ok = collect_service_hosts(c, &hosts, &n_hosts) && build_zones(c, hosts, n_hosts) &&
              build_names(c, hosts, n_hosts);
    free(hosts);
    if (!ok || !register_hosts(c))
        return false;
    write_zones(c);
    write_names(c);
    write_members(c);
    if (!write_hosts(c))
        return false;
    write_inputs(c);
    ibp_tbl_header_t fields = {
        .generation = c->in->generation, .build_time = c->in->build_time, .ttl = c->rc->ttl,
        .spread_v4_bits = SPREAD_V4_BITS, .spread_v6_bits = SPREAD_V6_BITS,
        .flags = c->rc->apex_soa_in_any ? 0 : IBP_HDR_NO_APEX_SOA_IN_ANY,
    };
    return ibp_tb_finish(&c->tb, &fields, &c->out->table, &c->out->table_len, c->err);
}

bool ibp_compile(const ibp_compile_in_t *in, ibp_compile_out_t *out, ibp_err_t *err)
{
    ibp_err_t local;
    if (!err)
        err = &local;
    err->msg[0] = '\0';
    memset(out, 0, sizeof *out);
    if (in->members->n > IBP_GEO_MAX_MEMBERS)
        return ibp_err_set(err, "%zu members: at most %d are supported", in->members->n,
                           IBP_GEO_MAX_MEMBERS);
    if (!check_geo(in, err))
        return false;
    ctx_t c = {.in = in, .rc = &in->config->routing, .out = out, .err = err};
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
