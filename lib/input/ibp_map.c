/* Routing.Map's lookup: gdnsd's dcmap_lookup_loc_callback (dcmap.c) over
 * a location's names, so a map routes a place as gdnsd's would. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ibp_map.h"

/* The location's name at level pos (continent, country, the subdivisions
 * in order, then the city); NULL past the end, as gdnsd's callback gives
 * an empty string. */
static const char *field(const ibp_map_loc_t *loc, unsigned pos)
{
    const char *s = NULL;
    size_t subs = loc->n_subs < IBP_MAP_SUBS_MAX ? loc->n_subs : IBP_MAP_SUBS_MAX;
    if (pos == 0)
        s = loc->continent;
    else if (pos == 1)
        s = loc->country;
    else if (pos - 2 < subs)
        s = loc->subs[pos - 2];
    else if (pos - 2 == subs)
        s = loc->city;
    return s && s[0] ? s : NULL;
}

static const ibp_map_node_t *kid_named(const ibp_map_node_t *n, const char *name)
{
    size_t lo = 0, hi = n->n_kids;   /* kids are sorted case-insensitively (the parse) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcasecmp(name, n->kids[mid].key);
        if (!r)
            return &n->kids[mid];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* The leaf deciding loc below map n, whose keys name level pos; sets *rule
 * to the text of the keys that led there. Depth is bounded by the parse
 * (IBP_MAP_LEVELS), and each step consumes a level. */
static const ibp_map_node_t *lookup(const ibp_map_node_t *n, const ibp_map_loc_t *loc,
                                    unsigned pos, const char **rule)
{
    if (n->n_kids && n->skip_level)
        pos++;
    const char *name;
    /* Past the country, levels no key names are passed over: a map may
     * leave out subdivisions (GeoIP2 records have 0-2 of uneven meaning). */
    while (n->n_kids && (name = field(loc, pos++)) != NULL) {
        const ibp_map_node_t *k = kid_named(n, name);
        if (k && k->kind == IBP_MAP_SUB)
            return lookup(k, loc, pos, rule);
        if (k) {
            *rule = k->rule;
            return k;
        }
        if (pos <= 2)
            break;
    }
    *rule = n->dflt_rule;
    return n->dflt;
}

ibp_map_kind_t ibp_map_resolve(const ibp_map_t *m, const ibp_map_loc_t *loc,
                               ibp_map_rule_t *out)
{
    out->node = NULL;
    out->text[0] = '\0';
    if (!m || !m->root)
        return IBP_MAP_AUTO;
    const char *rule = NULL;
    out->node = lookup(m->root, loc, 0, &rule);
    if (out->node && rule)
        snprintf(out->text, sizeof out->text, "%s", rule);
    return out->node ? out->node->kind : IBP_MAP_AUTO;
}

static void each_list(const ibp_map_node_t *n, void (*fn)(void *, const ibp_map_node_t *),
                      void *ctx)
{
    if (n->kind == IBP_MAP_LIST)
        fn(ctx, n);
    if (n->own_dflt)
        each_list(n->own_dflt, fn, ctx);
    for (size_t i = 0; i < n->n_kids; i++)
        each_list(&n->kids[i], fn, ctx);
}

void ibp_map_each_list(const ibp_map_t *m, void (*fn)(void *ctx, const ibp_map_node_t *n),
                       void *ctx)
{
    if (m && m->root)
        each_list(m->root, fn, ctx);
}
