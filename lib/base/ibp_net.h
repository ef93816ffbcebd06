/* Address handling shared by the coprocess and the compiler (libc only).
 * All addresses are kept as 16-byte IPv6; IPv4 lives at ::a.b.c.d (::/96),
 * the same place the MaxMind IPv6 trees keep it. */
#ifndef IBP_NET_H
#define IBP_NET_H

#include <stdbool.h>

#include "ibp_err.h"
#include <stddef.h>
#include <stdint.h>

typedef struct ibp_addr {
    uint8_t b[16];
} ibp_addr_t;

/* Parses "a.b.c.d" or an IPv6 literal (no brackets, no %zone) of at most
 * len bytes; IPv4 lands at ::/96. Sets *is_v4. */
IBP_MUST_CHECK
bool ibp_addr_parse(const char *s, size_t len, ibp_addr_t *out, bool *is_v4);

/* Parses "addr/len" (len optional => full length). The prefix length is
 * returned in the 128-bit space for IPv6 and the 32-bit space for IPv4. */
IBP_MUST_CHECK
bool ibp_prefix_parse(const char *s, size_t len, ibp_addr_t *out,
                      unsigned *plen, bool *is_v4);

/* If a (native IPv6) carries an IPv4 address (v4-mapped, v4-compat, SIIT,
 * NAT64 WKP, Teredo, 6to4), writes it to *v4 and returns how many leading
 * IPv6 bits stand before the IPv4 bits for scope purposes (96, or 16 for
 * 6to4). Returns 0 otherwise. */
unsigned ibp_addr_v4_embedded(const ibp_addr_t *a, uint32_t *v4);

/* Zeroes all bits after the first plen bits (128-bit space). */
void ibp_addr_mask(ibp_addr_t *a, unsigned plen);

#endif
