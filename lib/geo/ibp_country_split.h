/* Splitting geo classes by new override countries without a MaxMind walk
 * (a NATS override for a country never overridden before must take effect
 * within a second, and a walk of the full GeoLite2-City takes seconds). */
#ifndef IBP_COUNTRY_SPLIT_H
#define IBP_COUNTRY_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_client_classes.h"
#include "ibp_err.h"
#include "ibp_geo_classes.h"

/* out: a copy of c (indexed, with the updates index) in which the clients
 * of each country of ccs (uppercase, not among c's split countries) have
 * classes of their own, as a walk of the same City database with ccs among
 * the override countries gives: for every class, its clients in such a
 * country get the class with that country set. clients must come from the
 * same City database as c. fingerprint: out's (the walk's would be the
 * same). c is left as it was. */
IBP_MUST_CHECK
bool ibp_geo_classes_split_countries(const ibp_geo_classes_t *c,
                                     const ibp_client_classes_t *clients, const char (*ccs)[3],
                                     size_t n_ccs, uint64_t fingerprint, ibp_geo_classes_t *out,
                                     ibp_err_t *err);

#endif
