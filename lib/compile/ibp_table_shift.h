/* How much of a host's clients a new table moves for a reason other than
 * health: what the sidecar's guard (Routing.MaxShiftPercent) weighs before
 * it publishes a table built from changed configs, overrides or MaxMind
 * data. Health moves never count: failover must not wait for a human. */
#ifndef IBP_TABLE_SHIFT_H
#define IBP_TABLE_SHIFT_H

#include <stdbool.h>

#include "ibp_table.h"
#include "ibp_table_diff.h"

typedef struct ibp_shift {
    /* The largest share, in percent of located networks, of one
     * host/family/client family's clients that moves for a reason other
     * than health, and where (host NULL: nothing moves so). */
    double percent;
    const char *host;      /* into NEW's strings */
    unsigned family;       /* 0: A, 1: AAAA */
    bool client_v6;
    const char *from, *to; /* that group's largest such move (labels of the diff) */
    /* The same measure over the moves put down to health, for the log. */
    double health_percent;
} ibp_shift_t;

/* Weighs d (ibp_table_diff(old_t, new_t)). A move is health's when one of
 * its two answers is a member whose offline state for that host and family
 * differs between the tables, or a failover spread or "none" while some
 * candidate's offline state for that host and family changed. Everything
 * else (coordinates, members added or made inactive, overrides, a new
 * database) is not. */
void ibp_table_shift(const ibp_diff_t *d, const ibp_table_t *old_t, const ibp_table_t *new_t,
                     ibp_shift_t *out);

#endif
