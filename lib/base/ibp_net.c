#include "ibp_net.h"

#include <string.h>

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

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One group of 1-4 hex digits, or the dotted quad that may end an address. */
static bool parse_v6_group(const char **pp, const char *end, uint8_t b[16], size_t *n)
{
    const char *start = *pp, *p = start;
    unsigned v = 0, digits = 0;
    int h;
    while (p < end && digits < 5 && (h = hex_digit(*p)) >= 0) {
        v = v << 4 | (unsigned)h;
        p++;
        digits++;
    }
    if (p < end && *p == '.') {
        if (*n > 12 || !parse_v4(start, (size_t)(end - start), b + *n))
            return false;
        *n += 4;
        *pp = end;
        return true;
    }
    if (digits == 0 || digits > 4 || *n > 14)
        return false;
    b[(*n)++] = (uint8_t)(v >> 8);
    b[(*n)++] = (uint8_t)v;
    *pp = p;
    return true;
}

/* RFC 4291 text, exactly what inet_pton(AF_INET6) accepts (a test compares
 * the two on random input), without copying the field to terminate it. */
static bool parse_v6(const char *s, size_t len, uint8_t out[16])
{
    uint8_t b[16] = {0};
    size_t n = 0;
    long gap = -1;   /* where "::" stands, in bytes */
    const char *p = s, *end = s + len;
    if (p < end && *p == ':') {
        if (end - p < 2 || p[1] != ':')
            return false;
        p += 2;
        gap = 0;
    }
    while (p < end) {
        if (!parse_v6_group(&p, end, b, &n))
            return false;
        if (p == end)
            break;
        if (*p++ != ':' || p == end)
            return false;
        if (*p == ':') {
            if (gap >= 0)
                return false;
            gap = (long)n;
            p++;
        }
    }
    if (gap < 0 ? n != 16 : n == 16)
        return false;
    size_t tail = n - (size_t)(gap < 0 ? (long)n : gap);
    memset(out, 0, 16);
    memcpy(out, b, n - tail);
    memcpy(out + 16 - tail, b + n - tail, tail);
    return true;
}

bool ibp_addr_parse(const char *s, size_t len, ibp_addr_t *out, bool *is_v4)
{
    if (len && len < 16 && parse_v4(s, len, &out->b[12])) {
        memset(out->b, 0, 12);
        *is_v4 = true;
        return true;
    }
    if (!parse_v6(s, len, out->b))
        return false;
    *is_v4 = false;
    return true;
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
