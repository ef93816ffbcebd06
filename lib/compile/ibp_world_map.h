/* Who serves where, drawn: for one host and family of a table, every
 * located network of a MaxMind City database is routed by the table as a
 * client there and counted in its 1-degree cell; each cell is drawn in the
 * colour of the member most of its networks go to. An equirectangular SVG
 * (4 px per degree, a 30-degree graticule, no coastlines: the cells draw
 * the land), the host's members as labelled markers (offline ones hollow
 * and grey) and a legend with each member's share of the located networks.
 * Builds text, never prints. */
#ifndef IBP_WORLD_MAP_H
#define IBP_WORLD_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "ibp_err.h"
#include "ibp_table.h"

#define IBP_MAP_PX_PER_DEG 4

typedef struct ibp_world_map_in {
    const ibp_table_t *table;
    const char *mmdb_path;     /* a City database */
    const char *host;
    unsigned family;           /* 0: A, 1: AAAA */
} ibp_world_map_in_t;

/* The colour a member is drawn in: by its index in the table, so that one
 * member keeps its colour from map to map. rgb: "#rrggbb". */
void ibp_world_map_colour(uint32_t member, char rgb[8]);

/* *svg (malloc'd, NUL-terminated, *len bytes) or an error naming the host,
 * the family or the database. */
IBP_MUST_CHECK
bool ibp_world_map_svg(const ibp_world_map_in_t *in, char **svg, size_t *len, ibp_err_t *err);

#endif
