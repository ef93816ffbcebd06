/* lib/geo/ibp_geo: country codes as the configs spell them, and the distance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ibp_geo.h"

static void country_codes_are_two_letters_uppercased(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        char out[3];   /* "" for no country */
    } cases[] = {
        {"GB", 2, "GB"}, {"gb", 2, "GB"}, {"gB", 2, "GB"}, {"zz", 2, "ZZ"},
        {"G", 1, ""}, {"GBR", 3, ""}, {"", 0, ""}, {"G1", 2, ""}, {"1G", 2, ""},
        {"G\0", 2, ""}, {"\xc3\x9c", 2, ""}, {"G ", 2, ""}, {"@[", 2, ""}, {"`{", 2, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[3] = {'x', 'x', 'x'};
        bool ok = ibp_geo_country_code(cases[i].in, cases[i].len, out);
        assert_int_equal(ok, cases[i].out[0] != '\0');
        assert_memory_equal(out, cases[i].out, 3);   /* NUL-padded either way */
    }
}

static void distance_of_known_cities(void **state)
{
    /* London - Paris 344 km, Zurich - San Jose (CR) 9,376 km (great circle, R 6371). */
    assert_true(ibp_geo_distance_km(51.5142, -0.0931, 48.8566, 2.3522) > 340);
    assert_true(ibp_geo_distance_km(51.5142, -0.0931, 48.8566, 2.3522) < 348);
    ibp_site_t london = ibp_site_from_degrees(51.5142, -0.0931);
    ibp_site_t paris = ibp_site_from_degrees(48.8566, 2.3522);
    ibp_site_t tokyo = ibp_site_from_degrees(35.6762, 139.6503);
    assert_true(ibp_geo_term(&london, &paris) < ibp_geo_term(&london, &tokyo));
    assert_true(ibp_geo_term(&london, &london) == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(country_codes_are_two_letters_uppercased),
        cmocka_unit_test(distance_of_known_cities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
