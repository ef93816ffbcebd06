/* DNS names in presentation form as the configs write them: checked and
 * normalised (lowercase, no trailing dot) before they reach a table. */
#ifndef IBP_DNAME_H
#define IBP_DNAME_H

#include <stdbool.h>
#include <stddef.h>

#include "ibp_err.h"
#include "ibp_limits.h"

/* Normalises a DNS name into out (lowercase, one trailing dot removed).
 * Returns false for names that are not valid hostnames/owner names. */
IBP_MUST_CHECK
bool ibp_name_normalize(const char *in, char out[IBP_NAME_MAX + 1], ibp_err_t *err);

/* Checks a lowercase name without trailing dot: labels of [a-z0-9_-],
 * 1..63 bytes, at most IBP_NAME_MAX in all. With allow_wildcard a first
 * label "*" is accepted (owner names). Sets a short reason on failure. */
IBP_MUST_CHECK
bool ibp_name_check(const char *name, size_t len, bool allow_wildcard, ibp_err_t *err);

/* ibp_name_normalize for len bytes of in, optionally refusing wildcards
 * (hostnames such as CNAME targets and service hosts). */
IBP_MUST_CHECK
bool ibp_name_normalize_n(const char *in, size_t len, bool allow_wildcard,
                          char out[IBP_NAME_MAX + 1], ibp_err_t *err);

#endif
