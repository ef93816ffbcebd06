/* Routing.Map (issue 16, gdnsd's hierarchical `map`): continent -> country
 * -> subdivisions... -> city, each key an ordered list of member keys,
 * "auto" (distance order) or a deeper map; `default` and `skip_level` at
 * every level. The tree is plain data and its resolution a pure function of
 * a location's names, so the MaxMind walk (lib/geo, which knows no JSON)
 * can be handed the resolver by the compiler as a callback. */
#ifndef IBP_MAP_H
#define IBP_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "ibp_json.h"

#define IBP_MAP_RULE_MAX 512    /* "EU/DE/BY/Munich"; longer paths are cut */

/* A client's location as a MaxMind City record names it; NULL or "" for
 * what the record lacks. */
typedef struct ibp_map_loc {
    const char *continent;      /* continent.code */
    const char *country;        /* country.iso_code */
    const char *subs[IBP_MAP_SUBS_MAX];   /* subdivisions[i].iso_code, in order */
    size_t n_subs;
    const char *city;           /* city.names.en */
} ibp_map_loc_t;

/* What the map says for a location. */
typedef struct ibp_map_rule {
    const ibp_map_node_t *node; /* the LIST or AUTO leaf (or default) that decided; NULL: none
                                   (no map, or no default in effect): auto */
    char text[IBP_MAP_RULE_MAX];/* the keys that matched: "EU/DE/BY/Munich", "EU/default" */
} ibp_map_rule_t;

/* Routing.Map from its object at path (".Routing.Map", or "" for a file of
 * its own). Errors name src and the JSON path. On failure *out is freed. */
IBP_MUST_CHECK
bool ibp_map_from_json(const ibp_jctx_t *c, const json_t *obj, const char *path,
                       ibp_map_t *out);
IBP_MUST_CHECK
bool ibp_map_parse(const char *buf, size_t len, const char *src, ibp_map_t *out,
                   ibp_err_t *err);
/* Every listed key is one of keys[0..n): else "<src>: <path>[i]: "X" is not a member key". */
IBP_MUST_CHECK
bool ibp_map_check_members(const ibp_map_t *m, const char *const *keys, size_t n,
                           ibp_err_t *err);
void ibp_map_free(ibp_map_t *m);

/* Calls fn for every LIST node (defaults included), in id order. */
void ibp_map_each_list(const ibp_map_t *m, void (*fn)(void *ctx, const ibp_map_node_t *n),
                       void *ctx);

/* gdnsd's dcmap lookup: names compared case-insensitively; a skip_level
 * map skips one level of the location; below the country, location levels
 * that no key names are passed over (GeoIP2's rule: a map may leave out
 * intermediate subdivisions); nothing matching -> the default in effect.
 * A location without a continent gets the top-level default (gdnsd's
 * list 0). Returns the deciding kind (AUTO when no rule lists members). */
ibp_map_kind_t ibp_map_resolve(const ibp_map_t *m, const ibp_map_loc_t *loc,
                               ibp_map_rule_t *out);

#endif
