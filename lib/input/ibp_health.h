/* The monitor's /results snapshot (IBP-NODE §5) and the online() rule. */
#ifndef IBP_HEALTH_H
#define IBP_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"

typedef enum ibp_check_kind {
    IBP_CHECK_SITE = 0,
    IBP_CHECK_DOMAIN = 1,
    IBP_CHECK_ENDPOINT = 2,
} ibp_check_kind_t;

typedef struct ibp_health_group {
    ibp_check_kind_t kind;
    char *domain;          /* NULL for site groups */
    bool ipv6;             /* group-level IsIPv6: the one that counts */
    char **offline;        /* MemberName of every result with Status false */
    size_t n_offline;
} ibp_health_group_t;

/* One result as member events see it (BEHAVIOR §6a): the digest of what
 * identifies it (ibp_health_event_key) and whether it passed. The texts are
 * kept for failed results only (an event opens from them); NULL otherwise.
 * domain is NULL for site checks, endpoint for all but endpoint checks. */
typedef struct ibp_health_obs {
    uint64_t key_hi, key_lo;
    bool online;
    bool ipv6;             /* the group's IsIPv6 */
    ibp_check_kind_t kind;
    char *member, *check, *domain, *endpoint;
    char *error;           /* ErrorText, at most IBP_EVENT_ERROR_MAX bytes */
    char *data;            /* Data as compact JSON when an object that fits, else NULL */
} ibp_health_obs_t;

typedef struct ibp_health {
    bool loaded;           /* false: no snapshot, everybody is online */
    size_t n_lists;        /* total groups in the three lists; 0 => permissive */
    ibp_health_group_t *groups; /* only groups with at least one offline member */
    size_t n_groups;
    ibp_health_obs_t *obs; /* every result, in snapshot order (repeats included) */
    size_t n_obs;
    size_t n_obs_skipped;  /* results not recorded: an RpcUrl over IBP_EVENT_ENDPOINT_MAX */
} ibp_health_t;

/* "site", "domain", "endpoint": member_events.check_type. */
const char *ibp_check_kind_name(ibp_check_kind_t kind);
/* The kind of a check_type text; false when it is none of them. */
IBP_MUST_CHECK
bool ibp_check_kind_parse(const char *name, ibp_check_kind_t *out);

/* What identifies an event: (check type, check name, domain, endpoint,
 * member, family), bytes as given ("" and NULL alike). */
void ibp_health_event_key(ibp_check_kind_t kind, const char *check, const char *domain,
                          const char *endpoint, const char *member, bool ipv6, uint64_t *hi,
                          uint64_t *lo);

/* Parses a /results body. An all-empty body is valid (and permissive).
 * Checktime must be RFC 3339, as the Go decoder demands. */
IBP_MUST_CHECK
bool ibp_health_parse(const char *buf, size_t len, const char *src,
                      ibp_health_t *out, ibp_err_t *err);

/* X-IBP-Results-Source: snapshots from the monitor's own "local" view are
 * not consensus and must be ignored (value trimmed, case-insensitive). */
IBP_MUST_CHECK
bool ibp_health_source_accepted(const char *header_value);

/* online(host, member name, family) of IBP-NODE §5.3. */
IBP_MUST_CHECK
bool ibp_health_online(const ibp_health_t *h, const char *host,
                       const char *member_name, bool ipv6);

/* What routing sees of a snapshot: its offline entries, case-folded, sorted
 * and deduplicated, so snapshots that route alike digest alike. NULL is the
 * empty snapshot. False only when out of memory. */
__attribute__((warn_unused_result))
bool ibp_health_digest(const ibp_health_t *h, uint64_t *hi, uint64_t *lo);

void ibp_health_free(ibp_health_t *h);

#endif
