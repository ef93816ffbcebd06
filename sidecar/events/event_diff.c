/* Member events from monitor snapshots: see event_diff.h. */
#include "event_diff.h"

#include <stdlib.h>
#include <string.h>

bool sc_event_set_init(sc_event_set_t *set, size_t max, ibp_err_t *err)
{
    size_t cap = 16;
    while (cap < 2 * max)
        cap *= 2;
    *set = (sc_event_set_t){.slots = calloc(cap, sizeof *set->slots), .cap = cap, .max = max};
    return set->slots || ibp_err_set(err, "out of memory");
}

void sc_event_set_free(sc_event_set_t *set)
{
    for (size_t i = 0; set->slots && i < set->cap; i++)
        free(set->slots[i]);
    free(set->slots);
    *set = (sc_event_set_t){0};
}

static size_t home(const sc_event_set_t *set, uint64_t lo)
{
    return (size_t)lo & (set->cap - 1);
}

/* The slot of the key, or the empty slot where it would go. */
static size_t probe(const sc_event_set_t *set, uint64_t hi, uint64_t lo)
{
    size_t i = home(set, lo);
    while (set->slots[i] && !(set->slots[i]->key_hi == hi && set->slots[i]->key_lo == lo))
        i = (i + 1) & (set->cap - 1);
    return i;
}

sc_open_event_t *sc_event_set_find(const sc_event_set_t *set, uint64_t hi, uint64_t lo)
{
    return set->slots[probe(set, hi, lo)];
}

/* Backward-shift deletion: no tombstones, probes stay short. */
static void set_remove(sc_event_set_t *set, size_t i)
{
    free(set->slots[i]);
    set->slots[i] = NULL;
    set->n--;
    for (size_t j = (i + 1) & (set->cap - 1); set->slots[j]; j = (j + 1) & (set->cap - 1)) {
        size_t h = home(set, set->slots[j]->key_lo);
        /* Stays unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (!stays) {
            set->slots[i] = set->slots[j];
            set->slots[j] = NULL;
            i = j;
        }
    }
}

/* Copies the texts behind dst (one after the other) and points the key at them. */
static void key_copy(char *dst, const sc_event_key_t *from, sc_event_key_t *to)
{
    const char *src[] = {from->member, from->check_type, from->check_name, from->domain,
                         from->endpoint};
    const char **out[] = {&to->member, &to->check_type, &to->check_name, &to->domain,
                          &to->endpoint};
    for (int i = 0; i < 5; i++) {
        size_t n = strlen(src[i] ? src[i] : "") + 1;
        memcpy(dst, src[i] ? src[i] : "", n);
        *out[i] = dst;
        dst += n;
    }
    to->is_ipv6 = from->is_ipv6;
}

static size_t key_len(const sc_event_key_t *k)
{
    const char *src[] = {k->member, k->check_type, k->check_name, k->domain, k->endpoint};
    size_t n = 0;
    for (int i = 0; i < 5; i++)
        n += strlen(src[i] ? src[i] : "") + 1;
    return n;
}

static sc_open_event_t *event_new(const sc_event_key_t *k, uint64_t hi, uint64_t lo,
                                  int64_t start)
{
    sc_open_event_t *e = malloc(sizeof *e + key_len(k));
    if (!e)
        return NULL;
    *e = (sc_open_event_t){.key_hi = hi, .key_lo = lo, .start = start};
    key_copy(e->text, k, &e->key);
    return e;
}

bool sc_event_set_load(sc_event_set_t *set, const sc_event_row_t *row, bool *skipped)
{
    ibp_check_kind_t kind;
    *skipped = !ibp_check_kind_parse(row->key.check_type, &kind);
    if (*skipped)
        return true;
    uint64_t hi, lo;
    ibp_health_event_key(kind, row->key.check_name, row->key.domain, row->key.endpoint,
                         row->key.member, row->key.is_ipv6, &hi, &lo);
    size_t i = probe(set, hi, lo);
    if (set->slots[i]) {
        if (row->start.sec < set->slots[i]->start)
            set->slots[i]->start = row->start.sec;
        return true;
    }
    if (set->n >= set->max || !(set->slots[i] = event_new(&row->key, hi, lo, row->start.sec)))
        return false;
    set->n++;
    return true;
}

/* ---- ops ------------------------------------------------------------------------ */

static sc_event_key_t obs_key(const ibp_health_obs_t *o)
{
    return (sc_event_key_t){.member = o->member, .check_type = ibp_check_kind_name(o->kind),
                            .check_name = o->check, .domain = o->domain,
                            .endpoint = o->endpoint, .is_ipv6 = o->ipv6};
}

static sc_event_op_t *op_new(sc_event_op_kind_t kind, const sc_event_key_t *k, int64_t at,
                             const char *error, const char *data)
{
    size_t ne = strlen(error ? error : "") + 1, nd = data ? strlen(data) + 1 : 0;
    sc_event_op_t *op = malloc(sizeof *op + key_len(k) + ne + nd);
    if (!op)
        return NULL;
    *op = (sc_event_op_t){.kind = kind, .at = at};
    key_copy(op->text, k, &op->key);
    char *p = op->text + key_len(k);
    memcpy(p, error ? error : "", ne);
    op->error = p;
    if (data)
        op->data = memcpy(p + ne, data, nd);
    return op;
}

/* false: emit refused it, or no memory (the same: retried at the next diff). */
static bool send(sc_event_op_t *op, sc_event_emit_fn emit, void *ctx)
{
    if (op && emit(ctx, op))
        return true;
    free(op);
    return false;
}

static void went_offline(sc_event_set_t *set, const ibp_health_obs_t *o, int64_t now,
                         uint64_t diff_no, sc_event_emit_fn emit, void *ctx,
                         sc_event_diff_stats_t *st)
{
    size_t i = probe(set, o->key_hi, o->key_lo);
    if (set->slots[i]) {
        set->slots[i]->seen = diff_no;
        return;
    }
    if (set->n >= set->max) {
        st->over_cap++;
        return;
    }
    sc_event_key_t k = obs_key(o);
    sc_open_event_t *e = event_new(&k, o->key_hi, o->key_lo, now);
    if (!e || !send(op_new(SC_EVOP_OPEN, &k, now, o->error, o->data), emit, ctx)) {
        free(e);
        st->refused++;
        return;
    }
    e->seen = diff_no;
    set->slots[i] = e;
    set->n++;
    st->opened++;
}

static void went_online(sc_event_set_t *set, const ibp_health_obs_t *o, int64_t now,
                        uint64_t diff_no, sc_event_emit_fn emit, void *ctx,
                        sc_event_diff_stats_t *st)
{
    size_t i = probe(set, o->key_hi, o->key_lo);
    sc_open_event_t *e = set->slots[i];
    if (!e || e->seen == diff_no)   /* not open, or the same key also failed here */
        return;
    if (!send(op_new(SC_EVOP_CLOSE, &e->key, now, NULL, NULL), emit, ctx)) {
        st->refused++;
        return;
    }
    set_remove(set, i);
    st->closed++;
}

void sc_event_diff(sc_event_set_t *set, const ibp_health_t *h, int64_t now, uint64_t diff_no,
                   sc_event_emit_fn emit, void *ctx, sc_event_diff_stats_t *st)
{
    *st = (sc_event_diff_stats_t){0};
    for (size_t i = 0; h && i < h->n_obs; i++)
        if (!h->obs[i].online)
            went_offline(set, &h->obs[i], now, diff_no, emit, ctx, st);
    for (size_t i = 0; h && i < h->n_obs; i++)
        if (h->obs[i].online)
            went_online(set, &h->obs[i], now, diff_no, emit, ctx, st);
}
