/* The monitor /results parser, ibp_input_type(IBP_IN_RESULTS)->parse, on
 * arbitrary bytes. Asserts (besides fuzz_json_run's rules for failures) that
 * a successful parse is loaded, has no more groups than lists, and that
 * every group has its offline names (and a domain unless it is a site
 * group); then asks online() about a few of them and digests the snapshot. */
#include "fuzz_common.h"
#include "ibp_health.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const void *model)
{
    const ibp_health_t *h = model;
    if (!h->loaded || h->n_groups > h->n_lists)
        fuzz_fail("results: not loaded, or more groups (%zu) than lists (%zu)", h->n_groups,
                  h->n_lists);
    for (size_t i = 0; i < h->n_groups; i++) {
        const ibp_health_group_t *g = &h->groups[i];
        if ((g->kind != IBP_CHECK_SITE && !g->domain) || g->n_offline == 0)
            fuzz_fail("results: group %zu has no domain or no offline member", i);
        for (size_t k = 0; k < g->n_offline; k++)
            if (!g->offline[k])
                fuzz_fail("results: group %zu: offline name %zu is NULL", i, k);
        if (i < 8 && ibp_health_online(h, g->domain, g->offline[0], g->ipv6))
            fuzz_fail("results: %s is offline in group %zu but online() says otherwise",
                      g->offline[0], i);
    }
    uint64_t hi, lo;
    bool digested = ibp_health_digest(h, &hi, &lo);   /* false: out of memory, no finding */
    (void)digested;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_json_run(IBP_IN_RESULTS, check, data, size);
}
