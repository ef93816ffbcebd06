/* Member events from monitor snapshots (BEHAVIOR §6a), without a store or
 * a thread: the set of events open (in the store, or on their way there),
 * and the transitions a snapshot makes against it. An event opens when a
 * (check type, check name, domain, endpoint, member, family) result is
 * offline and none is open for it; it closes when that result is online.
 * A result that is not in the snapshot changes nothing: its event stays
 * open until the result comes back online (IBP's monitors leave a row open
 * while they stop checking). Pure: the caller owns the set and the ops. */
#ifndef IBPDNS_SIDECAR_EVENT_DIFF_H
#define IBPDNS_SIDECAR_EVENT_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"
#include "ibp_health.h"
#include "store.h"

typedef struct sc_open_event {
    uint64_t key_hi, key_lo;
    int64_t start;         /* UTC seconds */
    uint64_t seen;         /* the last diff that found it offline */
    sc_event_key_t key;    /* into text */
    char text[];           /* member, check type, check name, domain, endpoint */
} sc_open_event_t;

/* Open addressing by key (linear probing, deletion by backward shift). */
typedef struct sc_event_set {
    sc_open_event_t **slots;
    size_t cap, n, max;    /* max: open events followed at once (IBP_EVENTS_OPEN_MAX) */
} sc_event_set_t;

typedef enum sc_event_op_kind { SC_EVOP_OPEN, SC_EVOP_CLOSE } sc_event_op_kind_t;

/* One write for the store, in one allocation (free()). */
typedef struct sc_event_op {
    sc_event_op_kind_t kind;
    int64_t at;            /* OPEN: start_time; CLOSE: end_time */
    sc_event_key_t key;
    const char *error, *data;   /* OPEN: the failed result's ErrorText and Data (or NULL) */
    char text[];
} sc_event_op_t;

/* Takes op (true) or refuses it (false: a full queue); a refused
 * transition is not applied to the set, so the same snapshot diffed again
 * later gives it again. */
typedef bool (*sc_event_emit_fn)(void *ctx, sc_event_op_t *op);

typedef struct sc_event_diff_stats {
    uint64_t opened, closed;   /* transitions taken */
    uint64_t refused;          /* by emit */
    uint64_t over_cap;         /* offline results beyond the set's max: not followed */
} sc_event_diff_stats_t;

IBP_MUST_CHECK
bool sc_event_set_init(sc_event_set_t *set, size_t max, ibp_err_t *err);
void sc_event_set_free(sc_event_set_t *set);

IBP_MUST_CHECK
sc_open_event_t *sc_event_set_find(const sc_event_set_t *set, uint64_t hi, uint64_t lo);

/* An open row of the store, at start: the set then holds the events a
 * previous run (or the store) left open, so that a restart does not open
 * them twice. Rows of one key: the earliest start stays. False: out of
 * memory, or the set is full; *skipped: the row's check_type is none of
 * IBP's (site, domain, endpoint), so no snapshot result can close it. */
IBP_MUST_CHECK
bool sc_event_set_load(sc_event_set_t *set, const sc_event_row_t *row, bool *skipped);

/* The transitions of snapshot h seen at now (UTC seconds). diff_no must
 * differ between calls (a counter), also when a snapshot is diffed again. */
void sc_event_diff(sc_event_set_t *set, const ibp_health_t *h, int64_t now, uint64_t diff_no,
                   sc_event_emit_fn emit, void *ctx, sc_event_diff_stats_t *st);

#endif
