/* The static records parser, ibp_input_type(IBP_IN_STATIC)->parse, on
 * arbitrary bytes. Asserts (besides fuzz_json_run's rules for failures) what
 * a successful parse promises: owners lowercase without a trailing dot and at
 * most 253 bytes, a type we serve, and no tab, CR or LF in an owner or
 * content (they would break the pipe's DATA lines). */
#include <ctype.h>
#include <string.h>

#include "fuzz_common.h"
#include "ibp_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const void *model)
{
    static const unsigned types[] = {IBP_T_A, IBP_T_NS, IBP_T_CNAME, IBP_T_PTR, IBP_T_MX,
                                     IBP_T_TXT, IBP_T_AAAA, IBP_T_SRV, IBP_T_CAA};
    const ibp_statics_t *s = model;
    for (size_t i = 0; i < s->n; i++) {
        const ibp_static_rr_t *rr = &s->v[i];
        if (!rr->owner || !rr->content)
            fuzz_fail("record %zu: owner or content NULL", i);
        size_t n = strlen(rr->owner);
        if (n == 0 || n > IBP_NAME_MAX || (n > 1 && rr->owner[n - 1] == '.'))
            fuzz_fail("record %zu: owner \"%s\" not normalised", i, rr->owner);
        for (const char *c = rr->owner; *c; c++)
            if (isupper((unsigned char)*c))
                fuzz_fail("record %zu: owner \"%s\" not lowercase", i, rr->owner);
        if (strpbrk(rr->owner, "\t\r\n") || strpbrk(rr->content, "\t\r\n"))
            fuzz_fail("record %zu: tab or line break in owner or content", i);
        size_t t = 0;
        while (t < sizeof types / sizeof types[0] && types[t] != rr->type)
            t++;
        if (t == sizeof types / sizeof types[0])
            fuzz_fail("record %zu: type %u is not served", i, rr->type);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_json_run(IBP_IN_STATIC, check, data, size);
}
