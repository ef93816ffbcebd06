/* The ACME exchange (lib/base/ibp_acme_wire.h) on arbitrary bytes: a reply as
 * the coprocess parses it, a request as the sidecar parses it, and a body as
 * the sidecar turns it into TXT content. Asserts (abort) that every accepted
 * value passes the value check and lies inside the message, and that every
 * value made from a body is accepted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ibp_acme_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *msg = (const char *)data;
    const char *val[IBP_ACME_PER_NAME_MAX];
    size_t len[IBP_ACME_PER_NAME_MAX], n = 0;
    if (ibp_acme_reply_parse(msg, size, val, len, &n, NULL))
        for (size_t i = 0; i < n; i++)
            if (val[i] < msg || val[i] + len[i] > msg + size || !ibp_acme_value_ok(val[i], len[i]) ||
                memchr(val[i], '\n', len[i]) || memchr(val[i], '\t', len[i]))
                abort();
    char name[IBP_NAME_MAX + 1];
    if (ibp_acme_request_parse(msg, size, name, NULL) && strlen(name) > IBP_NAME_MAX)
        abort();
    char out[IBP_ACME_VALUE_MAX + 1];
    size_t vlen = ibp_acme_value_from_body(msg, size, out, sizeof out);
    if (vlen && (!ibp_acme_value_ok(out, vlen) || vlen > IBP_ACME_VALUE_MAX))
        abort();
    if (!vlen && size >= 1 && size <= IBP_ACME_BODY_MAX)
        abort();
    return 0;
}
