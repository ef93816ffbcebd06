/* Address parsing and the IPv4-in-IPv6 forms the router treats as IPv4. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <arpa/inet.h>

#include "ibp_net.h"

static bool parse(const char *s, ibp_addr_t *a, bool *v4)
{
    return ibp_addr_parse(s, strlen(s), a, v4);
}

static void addresses_parse_strictly(void **state)
{
    (void)state;
    ibp_addr_t a;
    bool v4;
    assert_true(parse("81.2.69.142", &a, &v4));
    assert_true(v4);
    assert_int_equal(a.b[12], 81);
    assert_int_equal(a.b[0], 0);
    assert_true(parse("2001:db8::1", &a, &v4));
    assert_false(v4);
    const char *bad[] = {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ", "::g",
                         "1.2.3.4/24", "[::1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(parse(bad[i], &a, &v4));
    char big[200];
    memset(big, '1', sizeof big);
    assert_false(ibp_addr_parse(big, sizeof big, &a, &v4));
    assert_false(ibp_addr_parse("1.2.3.4\0x", 9, &a, &v4));   /* embedded NUL */
}

/* Our IPv6 parser skips the copy inet_pton needs; it must accept exactly
 * what inet_pton accepts, with the same bytes. Random strings over the
 * characters that matter, and mutations of real addresses. */
static void ipv6_parsing_agrees_with_inet_pton(void **state)
{
    (void)state;
    static const char alphabet[] = "0123456789abcdefABCDEF::::...g /%";
    static const char *const seeds[] = {"2001:db8::1", "::", "::1", "1::", "::ffff:1.2.3.4",
                                        "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:1.2.3.4", "fe80::1:2",
                                        "64:ff9b::10.0.0.1", "2a02:cf40::", "1:2:3:4:5:6:7::"};
    uint64_t x = 88172645463325252u;
    unsigned accepted = 0;
    for (unsigned i = 0; i < 400000; i++) {
        char buf[48];
        size_t len;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (i % 2) {
            len = x % 24;
            for (size_t k = 0; k < len; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                buf[k] = alphabet[x % (sizeof alphabet - 1)];
            }
        } else {
            const char *seed = seeds[x % (sizeof seeds / sizeof seeds[0])];
            len = strlen(seed);
            memcpy(buf, seed, len);
            for (unsigned m = 0; m < 1 + (x >> 8) % 3; m++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                size_t at = x % (len + 1);
                char c = alphabet[(x >> 8) % (sizeof alphabet - 1)];
                if ((x >> 20) % 3 == 0 && len < sizeof buf - 2) {          /* insert */
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = c;
                    len++;
                } else if ((x >> 20) % 3 == 1 && at < len) {              /* delete */
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                } else if (at < len) {
                    buf[at] = c;                                          /* replace */
                }
            }
        }
        buf[len] = '\0';
        uint8_t want[16];
        bool want_ok = inet_pton(AF_INET6, buf, want) == 1;
        ibp_addr_t got;
        bool v4, got_ok = ibp_addr_parse(buf, len, &got, &v4) && !v4;
        if (got_ok != want_ok || (got_ok && memcmp(got.b, want, 16)))
            fail_msg("\"%s\": inet_pton %s, ibp_addr_parse %s", buf,
                     want_ok ? "accepts" : "rejects", got_ok ? "accepts" : "rejects");
        accepted += got_ok;
    }
    assert_true(accepted > 20000);   /* the mutations kept many valid */
}

static void prefixes_parse_with_family_lengths(void **state)
{
    (void)state;
    ibp_addr_t a;
    unsigned len;
    bool v4;
    assert_true(ibp_prefix_parse("192.0.2.0/24", 12, &a, &len, &v4));
    assert_int_equal(len, 24);
    assert_true(v4);
    assert_true(ibp_prefix_parse("2001:db8::/48", 13, &a, &len, &v4));
    assert_int_equal(len, 48);
    assert_true(ibp_prefix_parse("10.0.0.1", 8, &a, &len, &v4));
    assert_int_equal(len, 32);
    assert_false(ibp_prefix_parse("10.0.0.0/33", 11, &a, &len, &v4));
    assert_false(ibp_prefix_parse("::/129", 6, &a, &len, &v4));
    assert_false(ibp_prefix_parse("10.0.0.0/", 9, &a, &len, &v4));
    assert_false(ibp_prefix_parse("10.0.0.0/-1", 11, &a, &len, &v4));
    assert_false(ibp_prefix_parse("10.0.0.0/2x", 11, &a, &len, &v4));
}

static void embedded_ipv4_forms_are_recognised(void **state)
{
    (void)state;
    static const struct { const char *ip; unsigned off; uint32_t v4; } cases[] = {
        {"::ffff:1.2.3.4", 96, 0x01020304},       /* v4-mapped */
        {"::ffff:0:1.2.3.4", 96, 0x01020304},     /* SIIT */
        {"64:ff9b::1.2.3.4", 96, 0x01020304},     /* NAT64 WKP */
        {"2001:0:4136:e378:8000:63bf:fefd:fcfb", 96, 0x01020304}, /* Teredo, inverted */
        {"2002:102:304::1", 16, 0x01020304},      /* 6to4 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ibp_addr_t a;
        bool v4;
        uint32_t got = 0;
        assert_true(parse(cases[i].ip, &a, &v4));
        assert_int_equal(ibp_addr_v4_embedded(&a, &got), cases[i].off);
        assert_int_equal(got, cases[i].v4);
    }
    ibp_addr_t a;
    bool v4;
    uint32_t got;
    assert_true(parse("2001:db8::1", &a, &v4));
    assert_int_equal(ibp_addr_v4_embedded(&a, &got), 0);
    assert_true(parse("2003::1", &a, &v4));
    assert_int_equal(ibp_addr_v4_embedded(&a, &got), 0);
}

static void masking_clears_host_bits(void **state)
{
    (void)state;
    ibp_addr_t a;
    bool v4;
    assert_true(parse("2001:db8:ffff:ffff::1", &a, &v4));
    ibp_addr_mask(&a, 36);
    ibp_addr_t want;
    assert_true(parse("2001:db8:f000::", &want, &v4));
    assert_memory_equal(a.b, want.b, 16);
    ibp_addr_mask(&a, 0);
    assert_true(parse("::", &want, &v4));
    assert_memory_equal(a.b, want.b, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(addresses_parse_strictly),
        cmocka_unit_test(ipv6_parsing_agrees_with_inet_pton),
        cmocka_unit_test(prefixes_parse_with_family_lengths),
        cmocka_unit_test(embedded_ipv4_forms_are_recognised),
        cmocka_unit_test(masking_clears_host_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
