/* The services parser, ibp_input_type(IBP_IN_SERVICES)->parse, on arbitrary
 * bytes. Asserts (besides fuzz_json_run's rules for failures) what a
 * successful parse promises: every service has a key, its hosts are
 * non-empty, lowercase and unique. */
#include <ctype.h>
#include <string.h>

#include "fuzz_common.h"
#include "ibp_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const void *model)
{
    const ibp_services_t *s = model;
    for (size_t i = 0; i < s->n; i++) {
        const ibp_service_t *x = &s->v[i];
        if (!x->key)
            fuzz_fail("service %zu has no key", i);
        for (size_t h = 0; h < x->n_hosts; h++) {
            if (!x->hosts[h] || !x->hosts[h][0])
                fuzz_fail("service %zu: host %zu is empty", i, h);
            for (const char *c = x->hosts[h]; *c; c++)
                if (isupper((unsigned char)*c))
                    fuzz_fail("service %zu: host %s is not lowercase", i, x->hosts[h]);
            for (size_t k = 0; k < h && x->n_hosts < 256; k++)
                if (!strcmp(x->hosts[k], x->hosts[h]))
                    fuzz_fail("service %zu: host %s twice", i, x->hosts[h]);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_json_run(IBP_IN_SERVICES, check, data, size);
}
