/* The members parser, ibp_input_type(IBP_IN_MEMBERS)->parse, on arbitrary
 * bytes. Asserts (besides fuzz_json_run's rules for failures) what a
 * successful parse promises: members sorted by key (plain byte order, no
 * duplicates), keys and names non-NULL and at most 64 bytes, coordinates on
 * the globe, service names non-NULL. */
#include <math.h>
#include <string.h>

#include "fuzz_common.h"
#include "ibp_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const void *model)
{
    const ibp_members_t *m = model;
    for (size_t i = 0; i < m->n; i++) {
        const ibp_member_t *x = &m->v[i];
        if (!x->key || !x->name || strlen(x->key) > IBP_MEMBER_NAME_MAX ||
            strlen(x->name) > IBP_MEMBER_NAME_MAX)
            fuzz_fail("member %zu: key or name missing or longer than %d bytes", i,
                      IBP_MEMBER_NAME_MAX);
        if (i > 0 && strcmp(m->v[i - 1].key, x->key) >= 0)
            fuzz_fail("members %zu and %zu are not in strict key order", i - 1, i);
        if (!(x->lat >= -90 && x->lat <= 90 && x->lon >= -180 && x->lon <= 180))
            fuzz_fail("member %zu: %g,%g is not on the globe", i, x->lat, x->lon);
        for (size_t k = 0; k < x->n_services; k++)
            if (!x->services[k])
                fuzz_fail("member %zu: service %zu is NULL", i, k);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_json_run(IBP_IN_MEMBERS, check, data, size);
}
