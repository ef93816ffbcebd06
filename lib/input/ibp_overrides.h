/* Edits of a country-override table (IBP-NODE §4.4): what NATS's
 * geodns.override.update does to the table the config file gave. The table
 * stays sorted by (domain, country) and free of duplicates, as the config
 * parser leaves it, so that equal tables compare (and digest) equal. */
#ifndef IBP_OVERRIDES_H
#define IBP_OVERRIDES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"
#include "ibp_model.h"

/* A deep copy; *to is overwritten (free it first). */
IBP_MUST_CHECK
bool ibp_overrides_copy(const ibp_overrides_t *from, ibp_overrides_t *to, ibp_err_t *err);

/* Sets or replaces (entry->domain, entry->cc) with a copy of entry. The
 * domain must be normalised (lowercase, no trailing dot), cc uppercase. */
IBP_MUST_CHECK
bool ibp_overrides_set(ibp_overrides_t *o, const ibp_override_t *entry, ibp_err_t *err);

/* Removes one entry; false if there was none. */
bool ibp_overrides_remove(ibp_overrides_t *o, const char *domain, const char cc[3]);

/* Removes every entry of the domain; returns how many there were. */
size_t ibp_overrides_clear(ibp_overrides_t *o, const char *domain);

/* A digest of the entries (domain, country, member, addresses). */
void ibp_overrides_digest(const ibp_overrides_t *o, uint64_t *hi, uint64_t *lo);

/* The same entries (domain, country, member, addresses) in both. */
bool ibp_overrides_equal(const ibp_overrides_t *a, const ibp_overrides_t *b);

#endif
