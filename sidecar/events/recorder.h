/* The member events recorder (BEHAVIOR §6a): keeps the store's
 * member_events in step with the monitor snapshots the sidecar polls, on a
 * thread of its own, with a store handle of its own.
 *
 * Threads. The events thread takes each new snapshot model from the
 * results source (sc_state_t.src[SC_SRC_RESULTS].good, a reference under
 * the state's lock; it waits on the state's `wake`), diffs it against the
 * events it knows to be open (event_diff.h), queues the writes and sends
 * them in transactions of IBP_EVENTS_BATCH. Neither the monitor thread nor
 * the builder ever waits for it or for the store. The API reads the stats
 * under `lock`.
 *
 * What survives what. At start the thread reads the store's open rows and
 * continues them: a result still offline opens nothing, one seen online
 * closes its row, so a restart never doubles an event. It diffs nothing
 * before those rows are read (the store down at start: it waits, keeping
 * only the newest snapshot). A failed poll, a rejected snapshot or an
 * unchanged one changes nothing. While the store fails, the writes wait in
 * memory (at most IBP_EVENTS_QUEUE_MAX) and are sent again with back-off
 * (1 s doubling to 30 s); when the queue is full a transition is not
 * taken and the newest snapshot is diffed again once there is room, so an
 * outage that ended meanwhile is lost but none is left open by mistake.
 * What waits when the sidecar stops with the store down is lost. */
#ifndef IBPDNS_SIDECAR_RECORDER_H
#define IBPDNS_SIDECAR_RECORDER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "event_diff.h"
#include "ibp_err.h"
#include "ibp_log.h"
#include "state.h"
#include "store.h"

/* Opens the recorder's store handle (sc_store_*_open_events). */
typedef bool (*sc_events_open_fn)(void *ctx, sc_store_t **out, ibp_err_t *err);

typedef struct sc_events_stats {
    bool loaded;           /* the store's open rows were read */
    uint64_t open;         /* events open (as far as the recorder knows) */
    uint64_t queued;       /* writes waiting for the store */
    uint64_t snapshots;    /* snapshots diffed */
    uint64_t opened, closed, deleted;   /* rows written since the start */
    uint64_t batches, failures;
    uint64_t refused;      /* transitions put off: the queue was full */
    uint64_t over_cap;     /* offline results not followed: IBP_EVENTS_OPEN_MAX reached */
    uint64_t foreign_rows; /* open rows of a check_type no result can close */
    time_t last_success, failing_since;
    char last_error[IBP_ERR_MAX];
} sc_events_stats_t;

typedef struct sc_events {
    pthread_mutex_t lock;
    sc_events_stats_t stats;   /* [lock] written by the events thread */
    /* [init] */
    sc_state_t *state;
    int64_t min_offline_s;     /* System.MinimumOfflineTime */
    sc_events_open_fn open_fn;
    void *open_ctx;
    const ibp_log_t *log;
    /* [owner: the events thread] */
    sc_store_t *store;         /* NULL until opened, and after a failure */
    sc_event_set_t set;
    sc_event_op_t **queue;     /* a ring of IBP_EVENTS_QUEUE_MAX */
    size_t q_head, q_len;
    sc_ref_t *snap;            /* the newest results model taken (held: no ABA) */
    time_t snap_at;            /* when the monitor thread accepted it */
    bool snap_new, rediff;     /* to diff: a new snapshot, or one with transitions put off */
    uint64_t diff_no;
    bool loaded;
    int backoff_s;
    struct timespec retry_at;  /* CLOCK_MONOTONIC */
} sc_events_t;

IBP_MUST_CHECK
bool sc_events_init(sc_events_t *ev, sc_state_t *s, int min_offline_s, sc_events_open_fn fn,
                    void *ctx, ibp_err_t *err);
void sc_events_free(sc_events_t *ev);   /* after the thread ended */

/* Runs until s->stopping; then one last attempt to send what waits. */
void *sc_events_thread(void *ev);

void sc_events_get_stats(sc_events_t *ev, sc_events_stats_t *out);

#endif
