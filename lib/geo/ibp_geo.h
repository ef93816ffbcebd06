/* Great-circle geometry. Ordering uses the haversine term alone (monotonic in
 * the distance, no asin/sqrt), as gdnsd does; distances use R = 6371 km. */
#ifndef IBP_GEO_H
#define IBP_GEO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IBP_EARTH_RADIUS_KM 6371.0

/* A site's coordinates in radians with cos(lat) precomputed. */
typedef struct ibp_site {
    double lat, lon, cos_lat;
} ibp_site_t;

ibp_site_t ibp_site_from_degrees(double lat_deg, double lon_deg);

/* sin²(Δlat/2) + cos(lat1)·cos(lat2)·sin²(Δlon/2): sorts like the distance. */
double ibp_geo_term(const ibp_site_t *a, const ibp_site_t *b);

double ibp_geo_distance_km(double lat1, double lon1, double lat2, double lon2);

/* Scratch for ibp_geo_order: one per site. */
typedef struct ibp_geo_rank {
    double term;
    uint32_t site;
} ibp_geo_rank_t;

/* Fills order[0..n) with site indices nearest first; equal distances keep
 * index order (sites are sorted by member key, so ties go to the first key).
 * rank is scratch space for n entries. O(n log n): networks of a thousand
 * members sort half a million times per MaxMind walk. */
void ibp_geo_order(const ibp_site_t *client, const ibp_site_t *sites, size_t n,
                   uint16_t *order, ibp_geo_rank_t *rank);

/* A database's country.iso_code as the configs spell countries (Overrides
 * and the compiler compare them byte for byte): two ASCII letters,
 * uppercased into out; anything else is no country (out is ""). Every reader
 * of iso_code goes through this, so that the walk, the explanation and the
 * client classes cannot disagree on a database that writes "gb". */
bool ibp_geo_country_code(const char *s, size_t len, char out[3]);

#endif
