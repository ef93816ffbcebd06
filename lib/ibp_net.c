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

/* Dotted quad, as strict as inet_pton (no leading zeros, no missing or
 * extra parts) but without the copy: remotes and ECS prefixes are mostly
 * IPv4 and this runs for every query. */
static bool parse_v4(const char *s, size_t len, uint8_t out[4])
{
    const char *p = s, *end = s + len;
    for (int part = 0; part < 4; part++) {
        if (part && (p == end || *p++ != '.'))
            return false;
        unsigned d, v;
        if (p == end || (v = (unsigned)(*p - '0')) > 9)
            return false;
        p++;
        if (p < end && (d = (unsigned)(*p - '0')) <= 9) {
            if (v == 0)
                return false;   /* a leading zero */
            v = v * 10 + d;
            p++;
            if (p < end && (d = (unsigned)(*p - '0')) <= 9) {
                v = v * 10 + d;
                p++;
            }
        }
        if (v > 255)
            return false;
        out[part] = (uint8_t)v;
    }
    return p == end;
}

bool ibp_addr_parse(const char *s, size_t len, ibp_addr_t *out, bool *is_v4)
{
    memset(out->b, 0, sizeof out->b);
    if (len && len < 16 && parse_v4(s, len, &out->b[12])) {
        *is_v4 = true;
        return true;
    }
    memset(&out->b[12], 0, 4);
    char buf[ADDR_TEXT_MAX];
    if (!copy_bounded(s, len, buf) || !memchr(buf, ':', len))
        return false;
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
    const char *slash = NULL;   /* "/NNN" is at the end: look there first */
    for (size_t i = len, k = 0; i > 0 && k < 4 && !slash; i--, k++)
        if (s[i - 1] == '/')
            slash = s + i - 1;
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

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

unsigned ibp_addr_v4_embedded(const ibp_addr_t *a, uint32_t *v4)
{
    /* Compared as big-endian words: this runs for every IPv6 client. ::/96
     * itself is where IPv4 lives natively, so it is not "embedded". */
    uint32_t w0 = load_be32(&a->b[0]), w1 = load_be32(&a->b[4]), w2 = load_be32(&a->b[8]);
    if ((w0 == 0 && w1 == 0 && (w2 == 0x0000ffffu || w2 == 0xffff0000u)) ||   /* mapped, SIIT */
        (w0 == 0x0064ff9bu && w1 == 0 && w2 == 0)) {                         /* NAT64 WKP */
        *v4 = load_be32(&a->b[12]);
        return 96;
    }
    if (w0 == 0x20010000u) {                                                 /* Teredo */
        *v4 = ~load_be32(&a->b[12]);   /* Teredo stores the client obfuscated */
        return 96;
    }
    if ((w0 >> 16) == 0x2002u) {                                             /* 6to4 */
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
