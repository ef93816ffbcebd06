#include "ibp_explain.h"

#include <stdio.h>
#include <string.h>

#include "ibp_geo.h"
#include "ibp_map.h"

static json_t *location_json(const ibp_geo_point_t *p)
{
    if (!p->located)
        return json_null();
    return json_pack("{s:f, s:f, s:s, s:s}", "latitude", p->lat, "longitude", p->lon,
                     "country", p->cc, "city", p->city);
}

static json_t *answers_json(const ibp_table_t *t, const ibp_route_t *r, const ibp_geo_point_t *loc)
{
    json_t *arr = json_array();
    for (unsigned i = 0; i < r->n; i++) {
        const ibp_tbl_target_t *tg = &t->targets[r->target[i]];
        json_t *a = json_object();
        if (tg->member != IBP_TBL_NONE) {
            const ibp_tbl_member_t *m = &t->members[tg->member];
            json_object_set_new(a, "member", json_string(ibp_table_str(t, m->name)));
            json_object_set_new(a, "address", json_string(ibp_table_str(t, tg->text)));
            json_object_set_new(a, "distance_km", loc->located
                ? json_real(ibp_geo_distance_km(loc->lat, loc->lon, m->lat, m->lon)) : json_null());
        } else {
            json_object_set_new(a, "member", json_sprintf("override:%s", tg->cc));
            json_object_set_new(a, "address", json_string(ibp_table_str(t, tg->text)));
            json_object_set_new(a, "distance_km", json_null());
        }
        json_array_append_new(arr, a);
    }
    return arr;
}

json_t *ibp_explain_candidates(const ibp_table_t *t, const ibp_tbl_host_t *h, unsigned fam)
{
    json_t *arr = json_array();
    for (uint32_t i = 0; h && i < h->cand_count; i++) {
        const ibp_tbl_cand_t *c = &t->cands[h->cand_first + i];
        const ibp_tbl_member_t *m = &t->members[c->member];
        json_t *o = json_pack("{s:s}", "member", ibp_table_str(t, m->name));
        json_object_set_new(o, "skipped", c->skip[fam] ? json_string(ibp_skip_name(c->skip[fam]))
                                                       : json_null());
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *records_json(const ibp_table_t *t, const ibp_tbl_name_t *nm)
{
    json_t *arr = json_array();
    for (uint32_t i = 0; nm && i < nm->rr_count; i++) {
        const ibp_tbl_rr_t *rr = &t->rrs[nm->rr_first + i];
        json_array_append_new(arr, json_pack("{s:s, s:I, s:s, s:b}", "type",
            ibp_rrtype_name(rr->type), "ttl", (json_int_t)rr->ttl,
            "content", ibp_table_str(t, rr->content), "acme", (rr->flags & IBP_RR_ACME) != 0));
    }
    return arr;
}

bool ibp_explain_client(const char *ip, const char *ecs, ibp_client_t *c)
{
    memset(c, 0, sizeof *c);
    return ibp_client_parse(ip, strlen(ip), ecs, ecs ? strlen(ecs) : 0, c);
}

static void locate(ibp_geo_locator_t *loc, const ibp_client_t *c, const ibp_route_t *r,
                   ibp_geo_point_t *p)
{
    memset(p, 0, sizeof *p);
    bool resolver = r->how == IBP_HOW_RESOLVER;
    ibp_err_t ignored;
    if (loc && !ibp_geo_locate(loc, resolver ? c->resolver.b : c->addr.b,
                               resolver ? c->resolver_v4 : c->v4, p, &ignored))
        memset(p, 0, sizeof *p);   /* a lookup error shows as "no location" */
}

/* "net 203.0.113.0/24": the most specific Routing.Nets entry holding the
 * address routed on (an IPv4-embedding IPv6 address as its IPv4 one, as the
 * lookup did), as the config wrote it, normalised. */
static json_t *net_rule(const ibp_table_t *t, const ibp_client_t *c)
{
    uint8_t key[16];
    memcpy(key, c->addr.b, 16);
    uint32_t v4bits;
    if (!c->v4 && ibp_addr_v4_embedded(&c->addr, &v4bits)) {
        memset(key, 0, 12);
        for (int i = 0; i < 4; i++)
            key[12 + i] = (uint8_t)(v4bits >> (24 - 8 * i));
    }
    const ibp_tbl_net_t *n = ibp_table_net_of(t, key);
    if (!n || n->text >= t->strings_size)
        return json_string("net");
    return json_sprintf("net %s", ibp_table_str(t, n->text));
}

/* The table's map, parsed into maps on its first use with this table. */
static const ibp_map_t *table_map(const ibp_table_t *t, ibp_explain_map_t *maps)
{
    if (maps->table == t)
        return maps->usable ? &maps->map : NULL;
    ibp_explain_map_free(maps);
    maps->table = t;
    uint32_t at = t->h->map_text;
    if (!at)
        return NULL;
    const char *text = ibp_table_str(t, at - 1);
    ibp_err_t err;
    maps->usable = ibp_map_parse(text, strlen(text), "table", &maps->map, &err);
    return maps->usable ? &maps->map : NULL;
}

void ibp_explain_map_free(ibp_explain_map_t *m)
{
    if (m->usable)
        ibp_map_free(&m->map);
    memset(m, 0, sizeof *m);
}

/* "map EU/DE/BY/Munich": the table's Routing.Map resolved again for the
 * location the lookup used (the classes keep no names). Without the
 * database: "map". */
static json_t *map_rule(const ibp_table_t *t, const ibp_geo_point_t *p, ibp_explain_map_t *maps)
{
    const ibp_map_t *m = p->found ? table_map(t, maps) : NULL;
    if (!m)
        return json_string("map");
    ibp_map_loc_t loc = {.continent = p->continent, .country = p->cc, .city = p->city};
    for (size_t i = 0; i < p->n_subs && i < IBP_MAP_SUBS_MAX; i++)
        loc.subs[loc.n_subs++] = p->subs[i];
    ibp_map_rule_t r;
    return ibp_map_resolve(m, &loc, &r) == IBP_MAP_LIST ? json_sprintf("map %s", r.text)
                                                         : json_string("map");
}

/* The rule that decided, with its detail: "failover-spread 2 of 3" is the
 * second of three next-nearest members the down nearest one's clients share. */
static json_t *rule_json(const ibp_table_t *t, const ibp_client_t *c, const ibp_route_t *r,
                         const ibp_geo_point_t *where, ibp_explain_map_t *maps)
{
    if (r->how == IBP_HOW_NET || r->how == IBP_HOW_NET_FALLBACK)
        return net_rule(t, c);
    if (r->how == IBP_HOW_MAP || r->how == IBP_HOW_MAP_FALLBACK) {
        ibp_explain_map_t once = {0};
        json_t *rule = map_rule(t, where, maps ? maps : &once);
        ibp_explain_map_free(&once);
        return rule;
    }
    if (r->how != IBP_HOW_FAILOVER_SPREAD)
        return json_string(ibp_route_how_name(r->how));
    char rule[48];
    snprintf(rule, sizeof rule, "failover-spread %u of %u", r->spread_pick, r->spread_of);
    return json_string(rule);
}

json_t *ibp_explain_lookup(const ibp_table_t *t, const char *name, unsigned family,
                           const char *ip, const char *ecs, const ibp_client_t *client,
                           ibp_geo_locator_t *loc, ibp_explain_map_t *maps)
{
    const ibp_tbl_name_t *nm = ibp_table_find(t, name, strlen(name));
    const ibp_tbl_host_t *h = nm && nm->host != IBP_TBL_NONE ? &t->hosts[nm->host] : NULL;
    ibp_route_t r = {0};
    if (h)
        ibp_table_route(t, h, family, client, &r);
    ibp_geo_point_t where;
    locate(loc, client, &r, &where);
    json_t *out = json_pack("{s:s, s:s, s:s}", "name", name, "ip", ip,
                            "type", family ? "AAAA" : "A");
    json_object_set_new(out, "ecs", ecs ? json_string(ecs) : json_null());
    json_object_set_new(out, "zone", nm ? json_string(ibp_table_str(t, t->zones[nm->zone].name)) : json_null());
    json_object_set_new(out, "answers", answers_json(t, &r, &where));
    json_object_set_new(out, "scope", json_integer(r.scope));
    json_object_set_new(out, "ttl", json_integer(t->h->ttl));
    json_object_set_new(out, "how", json_string(ibp_route_how_name(r.how)));
    json_object_set_new(out, "rule", rule_json(t, client, &r, &where, maps));
    json_object_set_new(out, "location", location_json(&where));
    json_object_set_new(out, "candidates", ibp_explain_candidates(t, h, family));
    json_object_set_new(out, "records", records_json(t, nm));
    return out;
}

