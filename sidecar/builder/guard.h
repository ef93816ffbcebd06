/* Routing.MaxShiftPercent: before a table built from changed configs,
 * overrides or MaxMind data replaces the one in place, the guard weighs how
 * much of any host's clients it moves for a reason other than health
 * (ibp_table_shift) and says whether to hold it back. Health changes never
 * come here: failover must not wait for a human. */
#ifndef IBPDNS_SIDECAR_GUARD_H
#define IBPDNS_SIDECAR_GUARD_H

#include <stdbool.h>

#include "ibp_err.h"
#include "ibp_table.h"
#include "state.h"

/* Weighs candidate against in_place under limit percent (0: off, nothing
 * held), records the measure in s->guard and logs it. in_place_up and
 * candidate_up, if not NULL, are the same two built with everybody online:
 * a member offline in both answers nobody in either, and what the new
 * inputs do to its clients would otherwise pass unweighed and land with
 * the health change that brings it back. The larger shift counts. *hold:
 * the candidate moves more than the limit and forced is false. False: a
 * diff failed (out of memory); the caller holds nothing then, and says so. */
IBP_MUST_CHECK
bool sc_guard_weigh(sc_state_t *s, const ibp_table_t *in_place, const ibp_table_t *candidate,
                    const ibp_table_t *in_place_up, const ibp_table_t *candidate_up,
                    unsigned limit, bool forced, bool *hold, ibp_err_t *err);

/* The table in place is the wanted one again (the inputs went back, or a
 * candidate was published): nothing is held. */
void sc_guard_release(sc_state_t *s);

#endif
