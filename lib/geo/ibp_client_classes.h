/* Client classes for usage accounting: a network list whose values are the
 * aggregated dimensions usage is stored by, (country, ASN), never an
 * address. Made from the City database's countries and, when given, the ASN
 * database, merged network by network; the table carries them as a trie of
 * their own beside the routing data, so the coprocess counts a hit by class
 * without MaxMind. Class 0 is "unknown country, no ASN". */
#ifndef IBP_CLIENT_CLASSES_H
#define IBP_CLIENT_CLASSES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"
#include "ibp_nlist.h"

typedef struct ibp_client_classes {
    ibp_trie_t trie;       /* leaves: class ids */
    uint32_t *index;       /* 2 x IBP_TBL_INDEX_SIZE: ibp_client_index_build's */
    char *text;            /* every class's "<CC>\t<country>\t<AS<n>|>\t<organisation>" */
    uint32_t *text_off;    /* n + 1 offsets into text */
    size_t n;
    size_t n_networks;     /* of the merged list */
} ibp_client_classes_t;

/* asn_path may be NULL (no ASN columns). */
IBP_MUST_CHECK
bool ibp_client_classes_build(const char *city_path, const char *asn_path,
                              ibp_client_classes_t *out, ibp_err_t *err);
void ibp_client_classes_free(ibp_client_classes_t *c);

#endif
