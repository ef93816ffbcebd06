#include "ibp_net.h"

#include <arpa/inet.h>
#include <string.h>

#define ADDR_TEXT_MAX 64   /* longest literal we accept, with room for "/128" */

static bool copy_bounded(const char *s, size_t len, char buf[ADDR_TEXT_MAX])
{
    if (len == 0 || len >= ADDR_TEXT_MAX || memchr(s, '\0', len))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return true;
}

bool ibp_addr_parse(const char *s, size_t len, ibp_addr_t *out, bool *is_v4)
{
    char buf[ADDR_TEXT_MAX];
    if (!copy_bounded(s, len, buf))
        return false;
    memset(out->b, 0, sizeof out->b);
    if (memchr(buf, ':', len) == NULL) {
        *is_v4 = true;
        return inet_pton(AF_INET, buf, &out->b[12]) == 1;
    }
    *is_v4 = false;
    return inet_pton(AF_INET6, buf, out->b) == 1;
}

static bool parse_plen(const char *s, size_t len, unsigned max, unsigned *plen)
{
    if (len == 0 || len > 3)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max)
        return false;
    *plen = v;
    return true;
}

bool ibp_prefix_parse(const char *s, size_t len, ibp_addr_t *out,
                      unsigned *plen, bool *is_v4)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    if (!ibp_addr_parse(s, alen, out, is_v4))
        return false;
    unsigned max = *is_v4 ? 32 : 128;
    if (!slash) {
        *plen = max;
        return true;
    }
    return parse_plen(slash + 1, len - alen - 1, max, plen);
}

static const uint8_t pfx_v4mapped[12] = {0,0,0,0, 0,0,0,0, 0,0,0xff,0xff};
static const uint8_t pfx_siit[12]     = {0,0,0,0, 0,0,0,0, 0xff,0xff,0,0};
static const uint8_t pfx_wkp[12]      = {0,0x64,0xff,0x9b, 0,0,0,0, 0,0,0,0};
static const uint8_t pfx_teredo[4]    = {0x20,0x01,0,0};
static const uint8_t pfx_6to4[2]      = {0x20,0x02};

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

unsigned ibp_addr_v4_embedded(const ibp_addr_t *a, uint32_t *v4)
{
    /* ::/96 itself is where IPv4 lives natively, so it is not "embedded". */
    if (!memcmp(a->b, pfx_v4mapped, 12) || !memcmp(a->b, pfx_siit, 12) ||
        !memcmp(a->b, pfx_wkp, 12)) {
        *v4 = load_be32(&a->b[12]);
        return 96;
    }
    if (!memcmp(a->b, pfx_teredo, 4)) {
        *v4 = ~load_be32(&a->b[12]);   /* Teredo stores the client obfuscated */
        return 96;
    }
    if (!memcmp(a->b, pfx_6to4, 2)) {
        *v4 = load_be32(&a->b[2]);
        return 16;
    }
    return 0;
}

void ibp_addr_mask(ibp_addr_t *a, unsigned plen)
{
    if (plen >= 128)
        return;
    unsigned byte = plen / 8, bits = plen % 8;
    if (bits) {
        a->b[byte] &= (uint8_t)(0xff << (8 - bits));
        byte++;
    }
    memset(&a->b[byte], 0, 16 - byte);
}
