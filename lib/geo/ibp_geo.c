#include "ibp_geo.h"

#include <math.h>

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

void ibp_geo_order(const ibp_site_t *client, const ibp_site_t *sites, size_t n,
                   uint16_t *order, double *term)
{
    for (size_t i = 0; i < n; i++) {
        term[i] = ibp_geo_term(client, &sites[i]);
        order[i] = (uint16_t)i;
    }
    /* Stable insertion sort: few members, and ties must keep key order. */
    for (size_t i = 1; i < n; i++) {
        uint16_t cur = order[i];
        size_t j = i;
        while (j > 0 && term[order[j - 1]] > term[cur]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = cur;
    }
}
