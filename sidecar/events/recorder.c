/* The member events recorder: see recorder.h. */
#include "recorder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ibp_health.h"
#include "ibp_limits.h"

#define BACKOFF_MAX_S 30

bool sc_events_init(sc_events_t *ev, sc_state_t *s, int min_offline_s, sc_events_open_fn fn,
                    void *ctx, ibp_err_t *err)
{
    memset(ev, 0, sizeof *ev);
    ev->state = s;
    ev->min_offline_s = min_offline_s > 0 ? min_offline_s : IBP_MIN_OFFLINE_DEFAULT_S;
    ev->open_fn = fn;
    ev->open_ctx = ctx;
    ev->log = &s->log;
    ev->queue = calloc(IBP_EVENTS_QUEUE_MAX, sizeof *ev->queue);
    if (!ev->queue)
        return ibp_err_set(err, "out of memory");
    if (!sc_event_set_init(&ev->set, IBP_EVENTS_OPEN_MAX, err)) {
        free(ev->queue);
        ev->queue = NULL;
        return false;
    }
    pthread_mutex_init(&ev->lock, NULL);
    return true;
}

void sc_events_free(sc_events_t *ev)
{
    while (ev->q_len) {
        free(ev->queue[ev->q_head]);
        ev->q_head = (ev->q_head + 1) % IBP_EVENTS_QUEUE_MAX;
        ev->q_len--;
    }
    free(ev->queue);
    sc_event_set_free(&ev->set);
    sc_ref_put(ev->snap);
    if (ev->store)
        ev->store->ops->close(ev->store);
    pthread_mutex_destroy(&ev->lock);
}

void sc_events_get_stats(sc_events_t *ev, sc_events_stats_t *out)
{
    pthread_mutex_lock(&ev->lock);
    *out = ev->stats;
    pthread_mutex_unlock(&ev->lock);
}

/* ---- the queue ----------------------------------------------------------------- */

static bool enqueue(void *ctx, sc_event_op_t *op)
{
    sc_events_t *ev = ctx;
    if (ev->q_len == IBP_EVENTS_QUEUE_MAX)
        return false;
    ev->queue[(ev->q_head + ev->q_len) % IBP_EVENTS_QUEUE_MAX] = op;
    ev->q_len++;
    return true;
}

static void dequeue(sc_events_t *ev, size_t n, uint64_t *opened)
{
    for (size_t i = 0; i < n; i++) {
        sc_event_op_t *op = ev->queue[ev->q_head];
        *opened += op->kind == SC_EVOP_OPEN;
        free(op);
        ev->q_head = (ev->q_head + 1) % IBP_EVENTS_QUEUE_MAX;
        ev->q_len--;
    }
}

/* ---- the store -------------------------------------------------------------------- */

static void publish(sc_events_t *ev, void (*fn)(sc_events_stats_t *, const void *),
                    const void *arg)
{
    pthread_mutex_lock(&ev->lock);
    fn(&ev->stats, arg);
    ev->stats.open = ev->set.n;
    ev->stats.queued = ev->q_len;
    ev->stats.loaded = ev->loaded;
    pthread_mutex_unlock(&ev->lock);
}

static void note_failure(sc_events_stats_t *st, const void *arg)
{
    st->failures++;
    if (!st->failing_since)
        st->failing_since = time(NULL);
    snprintf(st->last_error, sizeof st->last_error, "%s", ((const ibp_err_t *)arg)->msg);
}

static void failed(sc_events_t *ev, const ibp_err_t *err)
{
    if (ev->store)
        ev->store->ops->close(ev->store);   /* a fresh connection next time */
    ev->store = NULL;
    pthread_mutex_lock(&ev->lock);
    bool first = !ev->stats.failing_since;
    pthread_mutex_unlock(&ev->lock);
    if (first)
        ibp_log(ev->log, IBP_LOG_ERROR, "member events: the store failed (%s); %zu writes "
                "wait%s, retried with back-off", err->msg, ev->q_len,
                ev->loaded ? "" : " (its open events not read yet: nothing is diffed)");
    publish(ev, note_failure, err);
    ev->backoff_s = ev->backoff_s ? ev->backoff_s * 2 : 1;
    if (ev->backoff_s > BACKOFF_MAX_S)
        ev->backoff_s = BACKOFF_MAX_S;
    clock_gettime(CLOCK_MONOTONIC, &ev->retry_at);
    ev->retry_at.tv_sec += ev->backoff_s;
}

typedef struct written {
    uint64_t opened, closed, deleted;
} written_t;

static void note_success(sc_events_stats_t *st, const void *arg)
{
    const written_t *w = arg;
    st->opened += w->opened;
    st->closed += w->closed;
    st->deleted += w->deleted;
    st->batches += w->opened + w->closed + w->deleted > 0;
    st->last_success = time(NULL);
    st->failing_since = 0;
    st->last_error[0] = '\0';
}

static void recovered(sc_events_t *ev, const written_t *w)
{
    pthread_mutex_lock(&ev->lock);
    time_t since = ev->stats.failing_since;
    pthread_mutex_unlock(&ev->lock);
    if (since)
        ibp_log(ev->log, IBP_LOG_INFO, "member events: written again after %lld s of failures",
                (long long)(time(NULL) - since));
    ev->backoff_s = 0;
    publish(ev, note_success, w);
}

static bool open_store(sc_events_t *ev, ibp_err_t *err)
{
    return ev->store || ev->open_fn(ev->open_ctx, &ev->store, err);
}

typedef struct load_ctx {
    sc_events_t *ev;
    uint64_t foreign;
    bool full;
} load_ctx_t;

static bool load_row(void *ctx, const sc_event_row_t *row)
{
    load_ctx_t *l = ctx;
    bool skipped;
    if (!sc_event_set_load(&l->ev->set, row, &skipped))
        l->full = true;   /* the rest stay open in the store, unfollowed */
    l->foreign += skipped;
    return true;
}

static void note_loaded(sc_events_stats_t *st, const void *arg)
{
    st->foreign_rows = *(const uint64_t *)arg;
}

/* The store's open rows become the set (once, before any diff). */
static bool load(sc_events_t *ev, ibp_err_t *err)
{
    sc_event_set_free(&ev->set);
    if (!sc_event_set_init(&ev->set, IBP_EVENTS_OPEN_MAX, err))
        return false;
    load_ctx_t l = {.ev = ev};
    if (!open_store(ev, err) || !ev->store->ops->events_open_rows(ev->store, load_row, &l, err))
        return false;
    ev->loaded = true;
    ibp_log(ev->log, IBP_LOG_INFO, "member events: %zu open in the store, continued%s",
            ev->set.n, l.full ? " (more are open than are followed: IBP_EVENTS_OPEN_MAX)" : "");
    publish(ev, note_loaded, &l.foreign);
    return true;
}

static bool apply(sc_events_t *ev, const sc_event_op_t *op, written_t *w, ibp_err_t *err)
{
    sc_store_t *s = ev->store;
    if (op->kind == SC_EVOP_OPEN)
        return s->ops->event_open(s, &op->key, op->at, op->error, op->data, err);
    uint64_t closed, deleted;
    if (!s->ops->event_close(s, &op->key, op->at, ev->min_offline_s, &closed, &deleted, err))
        return false;
    w->closed += closed;
    w->deleted += deleted;
    return true;
}

/* One transaction of at most IBP_EVENTS_BATCH writes from the queue's head. */
static bool send_batch(sc_events_t *ev, ibp_err_t *err)
{
    sc_store_t *s = ev->store;
    size_t n = ev->q_len < IBP_EVENTS_BATCH ? ev->q_len : IBP_EVENTS_BATCH;
    written_t w = {0};
    if (!s->ops->begin(s, err))
        return false;
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++)
        ok = apply(ev, ev->queue[(ev->q_head + i) % IBP_EVENTS_QUEUE_MAX], &w, err);
    if (!(ok = ok && s->ops->commit(s, err))) {
        s->ops->rollback(s);
        return false;
    }
    dequeue(ev, n, &w.opened);
    recovered(ev, &w);
    return true;
}

static bool flush(sc_events_t *ev, ibp_err_t *err)
{
    if (!ev->q_len)
        return true;
    if (!open_store(ev, err))
        return false;
    while (ev->q_len)
        if (!send_batch(ev, err))
            return false;
    return true;
}

/* ---- snapshots ---------------------------------------------------------------------- */

static void note_diff(sc_events_stats_t *st, const void *arg)
{
    const sc_event_diff_stats_t *d = arg;
    st->snapshots++;
    st->refused += d->refused;
    st->over_cap += d->over_cap;
}

static void diff(sc_events_t *ev)
{
    sc_event_diff_stats_t d;
    const ibp_health_t *h = ev->snap ? ev->snap->model : NULL;
    sc_event_diff(&ev->set, h, (int64_t)ev->snap_at, ++ev->diff_no, enqueue, ev, &d);
    if (d.refused && !ev->rediff)
        ibp_log(ev->log, IBP_LOG_WARN, "member events: %zu writes wait for the store; %llu "
                "transitions put off until there is room", ev->q_len,
                (unsigned long long)d.refused);
    ev->rediff = d.refused > 0;
    ev->snap_new = false;
    publish(ev, note_diff, &d);
}

/* One round: the open rows (once), the diff due, the writes. */
static void round_once(sc_events_t *ev)
{
    ibp_err_t err = {{0}};
    if (!ev->loaded && !load(ev, &err)) {
        failed(ev, &err);
        return;
    }
    for (int i = 0; i < 1 + IBP_EVENTS_QUEUE_MAX / IBP_EVENTS_BATCH; i++) {
        if (ev->snap_new || ev->rediff)
            diff(ev);
        if (!flush(ev, &err)) {
            failed(ev, &err);
            return;
        }
        if (!ev->rediff)
            return;
    }
}

static bool due(const sc_events_t *ev)
{
    if (ev->loaded && !ev->q_len)
        return false;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > ev->retry_at.tv_sec ||
           (now.tv_sec == ev->retry_at.tv_sec && now.tv_nsec >= ev->retry_at.tv_nsec);
}

/* Waits (state lock) for a new snapshot, a retry that is due, or the stop. */
static bool wait_for_work(sc_events_t *ev)
{
    sc_state_t *s = ev->state;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        sc_ref_t *good = s->src[SC_SRC_RESULTS].good;
        if (s->stopping || (good && good != ev->snap) || due(ev))
            break;
        if (ev->loaded && !ev->q_len)
            pthread_cond_wait(&s->wake, &s->lock);
        else
            pthread_cond_timedwait(&s->wake, &s->lock, &ev->retry_at);
    }
    sc_ref_t *good = s->src[SC_SRC_RESULTS].good;
    if (good && good != ev->snap) {
        sc_ref_put(ev->snap);
        ev->snap = sc_ref_get(good);
        ev->snap_at = s->src[SC_SRC_RESULTS].last_change;
        ev->snap_new = true;
    }
    bool go = !s->stopping;
    pthread_mutex_unlock(&s->lock);
    return go;
}

void *sc_events_thread(void *arg)
{
    sc_events_t *ev = arg;
    while (wait_for_work(ev))
        round_once(ev);
    /* Stopping: what waits goes in if the store takes it now. */
    if (ev->loaded && (ev->snap_new || ev->q_len)) {
        ev->backoff_s = 0;
        round_once(ev);
    }
    if (ev->q_len)
        ibp_log(ev->log, IBP_LOG_WARN, "member events: %zu writes lost at stop (the store "
                "failed)", ev->q_len);
    return NULL;
}
