#include "ibp_geo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double radians(double deg)
{
    return deg * (M_PI / 180.0);
}

ibp_site_t ibp_site_from_degrees(double lat_deg, double lon_deg)
{
    ibp_site_t s = {radians(lat_deg), radians(lon_deg), 0.0};
    s.cos_lat = cos(s.lat);
    return s;
}

double ibp_geo_term(const ibp_site_t *a, const ibp_site_t *b)
{
    double dlat = sin((b->lat - a->lat) / 2.0);
    double dlon = sin((b->lon - a->lon) / 2.0);
    return dlat * dlat + a->cos_lat * b->cos_lat * dlon * dlon;
}

double ibp_geo_distance_km(double lat1, double lon1, double lat2, double lon2)
{
    ibp_site_t a = ibp_site_from_degrees(lat1, lon1);
    ibp_site_t b = ibp_site_from_degrees(lat2, lon2);
    double h = ibp_geo_term(&a, &b);
    if (h > 1.0)
        h = 1.0;
    return 2.0 * IBP_EARTH_RADIUS_KM * atan2(sqrt(h), sqrt(1.0 - h));
}

/* Distance, then index: a total order, so an unstable sort is deterministic
 * and ties go to the first key. */
static int cmp_rank(const void *a, const void *b)
{
    const ibp_geo_rank_t *x = a, *y = b;
    if (x->term != y->term)
        return x->term < y->term ? -1 : 1;
    return (x->site > y->site) - (x->site < y->site);
}

void ibp_geo_order(const ibp_site_t *client, const ibp_site_t *sites, size_t n,
                   uint16_t *order, ibp_geo_rank_t *rank)
{
    for (size_t i = 0; i < n; i++)
        rank[i] = (ibp_geo_rank_t){.term = ibp_geo_term(client, &sites[i]), .site = (uint32_t)i};
    qsort(rank, n, sizeof *rank, cmp_rank);
    for (size_t i = 0; i < n; i++)
        order[i] = (uint16_t)rank[i].site;
}

bool ibp_geo_country_code(const char *s, size_t len, char out[3])
{
    memset(out, 0, 3);
    if (len != 2)
        return false;
    for (size_t i = 0; i < 2; i++) {
        char c = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 'a' + 'A') : s[i];
        if (c < 'A' || c > 'Z') {
            memset(out, 0, 3);
            return false;
        }
        out[i] = c;
    }
    return true;
}
