#include "workers.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ibp_file.h"
#include "ibp_health.h"
#include "ibp_inputs.h"
#include "maxmind.h"


#define SC_TRIM_AFTER_BYTES (1u << 20)

/* Which input kind each JSON source is. */
static const enum ibp_input_kind source_kind[] = {
    [SC_SRC_CONFIG] = IBP_IN_NODE_CONFIG, [SC_SRC_MEMBERS] = IBP_IN_MEMBERS,
    [SC_SRC_SERVICES] = IBP_IN_SERVICES, [SC_SRC_STATIC] = IBP_IN_STATIC,
    [SC_SRC_RESULTS] = IBP_IN_RESULTS,
};

sc_ref_t *sc_current_config(sc_state_t *s)
{
    pthread_mutex_lock(&s->lock);
    sc_ref_t *r = sc_ref_get(s->src[SC_SRC_CONFIG].good);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static sc_fetch_limits_t limits_of(const ibp_node_config_t *cfg)
{
    return (sc_fetch_limits_t){
        .timeout_ms = (cfg ? cfg->fetch_timeout_s : IBP_FETCH_TIMEOUT_S_DEFAULT) * 1000L,
        .max_bytes = (size_t)(cfg ? cfg->fetch_max_bytes : IBP_FETCH_MAX_BYTES_DEFAULT),
        .ca_file = cfg && cfg->ca_file && cfg->ca_file[0] ? cfg->ca_file : NULL,
    };
}

static const char *base_name(const char *url)
{
    const char *q = strchr(url, '?');
    const char *end = q ? q : url + strlen(url);
    const char *p = end;
    while (p > url && p[-1] != '/')
        p--;
    return p < end ? p : url;
}

static bool cache_copy(const sc_fetch_cache_t *from, sc_fetch_cache_t *to)
{
    to->etag = from->etag ? strdup(from->etag) : NULL;
    to->last_modified = from->last_modified ? strdup(from->last_modified) : NULL;
    bool ok = (!from->etag || to->etag) && (!from->last_modified || to->last_modified);
    if (!ok)
        sc_fetch_cache_free(to);
    return ok;
}

/* Where a file the config names (its Routing.Nets or Routing.Map file) is,
 * as it is now; false when it names none or the file cannot be seen. */
static bool side_file_stat(const sc_state_t *s, const char *file, struct stat *st)
{
    char path[4096];
    ibp_err_t ignored;
    return file && file[0] &&
           ibp_local_path(file, s->config_dir, path, sizeof path, &ignored) &&
           stat(path, st) == 0;
}

static bool side_file_changed(const sc_state_t *s, const char *file, bool had,
                              const struct stat *was)
{
    struct stat st;
    if (!side_file_stat(s, file, &st))
        return had;
    return !had || !ibp_same_file(&st, was);
}

/* gdnsd watches its nets file: a config whose bytes did not change is read
 * again when its nets or map file did (or went away: the fault then shows). */
static bool nets_file_changed(const sc_state_t *s, const sc_source_t *src)
{
    const ibp_node_config_t *cfg = src->good ? src->good->model : NULL;
    return side_file_changed(s, cfg ? cfg->routing.nets_file : NULL, src->have_nets_file,
                             &src->nets_file) ||
           side_file_changed(s, cfg ? cfg->routing.map_file : NULL, src->have_map_file,
                             &src->map_file);
}

/* The config's nets and map files, statted before they are read: a change
 * while one is read shows as a change at the next look. */
static bool load_config_nets(const sc_state_t *s, ibp_node_config_t *cfg, struct stat st[2],
                             bool have[2], ibp_err_t *err)
{
    have[0] = side_file_stat(s, cfg->routing.nets_file, &st[0]);
    have[1] = side_file_stat(s, cfg->routing.map_file, &st[1]);
    return ibp_node_config_load_nets(cfg, s->config_dir, err) &&
           ibp_node_config_load_map(cfg, s->config_dir, err);
}

/* Parses new content and swaps it in; the lock is not held while parsing.
 * Returns whether the content was kept. */
static bool accept_body(sc_state_t *s, sc_src_id_t id, const sc_fetch_result_t *r,
                        uint64_t hi, uint64_t lo)
{
    const ibp_input_type_t *k = ibp_input_type(source_kind[id]);
    sc_source_t *src = &s->src[id];
    void *model = calloc(1, k->model_size);
    ibp_err_t err = {{0}};
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(base_name(src->url), "?"), base_name(src->url));
    bool parsed = model && k->parse(r->body, r->len, name, model, &err);
    /* Routing.Nets or Routing.Map given as a file is read with the config
     * that names it. */
    struct stat side_st[2] = {{0}};
    bool have_side[2] = {false, false};
    bool ok = parsed && (id != SC_SRC_CONFIG ||
                         load_config_nets(s, model, side_st, have_side, &err));
    if (parsed && !ok)
        k->free_model(model);
    sc_ref_t *ref = ok ? sc_ref_new(model, k->free_model) : NULL;
    pthread_mutex_lock(&s->lock);
    if (!ref) {
        sc_source_failed(s, id, model ? err.msg : "out of memory");
        free(model);
        model = NULL;
    } else {
        sc_ref_put(src->good);
        src->good = ref;
        src->nets_file = side_st[0];
        src->have_nets_file = have_side[0];
        src->map_file = side_st[1];
        src->have_map_file = have_side[1];
        src->have_content = true;
        src->digest_hi = hi;
        src->digest_lo = lo;
        src->size = r->len;
        src->last_change = time(NULL);
        sc_source_ok(s, id);
        if (id == SC_SRC_RESULTS)
            s->dirty_health = true;
        else
            s->dirty_config = true;
        sc_state_kick(s);
    }
    pthread_mutex_unlock(&s->lock);
    return ref != NULL;
}

static void record_failure(sc_state_t *s, sc_src_id_t id, const char *why)
{
    pthread_mutex_lock(&s->lock);
    sc_source_failed(s, id, why);
    pthread_mutex_unlock(&s->lock);
}

static void record_unchanged(sc_state_t *s, sc_src_id_t id)
{
    pthread_mutex_lock(&s->lock);
    sc_source_ok(s, id);
    pthread_mutex_unlock(&s->lock);
}

/* The monitor's own view is not consensus (IBP-NODE §5.2): keep the last
 * consensus snapshot and say so. */
static bool results_source_rejected(sc_state_t *s, const sc_fetch_result_t *r)
{
    if (ibp_health_source_accepted(r->results_source))
        return false;
    record_failure(s, SC_SRC_RESULTS, "the monitor serves its local results "
                   "(X-IBP-Results-Source: local), not consensus: ignored");
    return true;
}

static void fetch_input(sc_state_t *s, sc_src_id_t id, const char *url,
                        const sc_fetch_limits_t *lim)
{
    sc_source_t *src = &s->src[id];
    pthread_mutex_lock(&s->lock);
    if (strcmp(src->url, url)) {   /* a new URL: forget the old one's validators */
        snprintf(src->url, sizeof src->url, "%s", url);
        sc_fetch_cache_free(&src->cache);
    }
    src->configured = true;
    pthread_mutex_unlock(&s->lock);
    /* The validators advance only with content we keep: after a rejected
     * body, a 304 would otherwise pass the fault off as a recovery. */
    sc_fetch_cache_t trial = {0};
    if (!cache_copy(&src->cache, &trial)) {
        record_failure(s, id, "out of memory");
        return;
    }
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    if (!sc_fetch(url, s->config_dir, lim, &trial, NULL, NULL, &r, &err)) {
        record_failure(s, id, err.msg);
        sc_fetch_cache_free(&trial);
        return;
    }
    bool nets_changed = id == SC_SRC_CONFIG && nets_file_changed(s, src);
    if (nets_changed && r.status == SC_FETCH_NOT_MODIFIED) {   /* the body, to parse it again */
        sc_fetch_result_free(&r);
        sc_fetch_cache_free(&trial);
        if (!sc_fetch(url, s->config_dir, lim, &trial, NULL, NULL, &r, &err)) {
            record_failure(s, id, err.msg);
            sc_fetch_cache_free(&trial);
            return;
        }
        nets_changed = r.status == SC_FETCH_OK;
    }
    bool kept = false;
    if (id != SC_SRC_RESULTS || !results_source_rejected(s, &r)) {
        uint64_t hi = 0, lo = 0;
        if (r.status == SC_FETCH_OK)
            ibp_digest(r.body, r.len, &hi, &lo);
        if ((r.status == SC_FETCH_NOT_MODIFIED && !nets_changed) ||
            (src->good && hi == src->digest_hi && lo == src->digest_lo && !nets_changed)) {
            record_unchanged(s, id);
            kept = true;
        } else {
            kept = accept_body(s, id, &r, hi, lo);
        }
    }
    if (kept) {
        sc_fetch_cache_free(&src->cache);
        src->cache = trial;
    } else {
        sc_fetch_cache_free(&trial);
    }
    size_t body_len = r.len;
    sc_fetch_result_free(&r);
    /* A big body's parse tree is gone now; without a trim glibc keeps its
     * pages, and the sidecar's RSS stays at its high-water mark. */
    if (body_len > SC_TRIM_AFTER_BYTES)
        malloc_trim(0);
}

void sc_refresh_config(sc_state_t *s)
{
    sc_ref_t *old = sc_current_config(s);
    sc_fetch_limits_t lim = limits_of(old ? old->model : NULL);
    fetch_input(s, SC_SRC_CONFIG, s->config_path, &lim);
    sc_ref_put(old);
    sc_ref_t *now = sc_current_config(s);
    if (now) {
        const ibp_node_config_t *cfg = now->model;
        atomic_store(&s->log.level, ibp_log_level_parse(cfg->log_level));
    }
    sc_ref_put(now);
}

static void refresh_maxmind(sc_state_t *s, const ibp_node_config_t *cfg)
{
    char dir[4096];
    ibp_err_t err = {{0}};
    if (!ibp_local_path(cfg->maxmind_path[0] ? cfg->maxmind_path : "/var/lib/ibpdns/maxmind",
                        s->config_dir, dir, sizeof dir, &err)) {
        record_failure(s, SC_SRC_CITY_DB, err.msg);
        return;
    }
    sc_maxmind_cfg_t mc = {.dir = dir, .account = cfg->maxmind_account,
                           .license_key = cfg->maxmind_key,
                           .download_base = cfg->maxmind_download_url[0]
                                            ? cfg->maxmind_download_url : SC_MAXMIND_DOWNLOAD_BASE,
                           .limits = limits_of(cfg)};
    mc.limits.max_bytes = IBP_MAXMIND_MAX_BYTES;
    mc.limits.timeout_ms = IBP_MAXMIND_TIMEOUT_MS;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, SC_MAXMIND_CITY.file) >= sizeof path) {
        record_failure(s, SC_SRC_CITY_DB, "Maxmind.MaxmindDBPath: path too long");
        return;
    }
    bool changed = false;
    bool ok = sc_maxmind_refresh(&mc, &SC_MAXMIND_CITY, &changed, &err);
    pthread_mutex_lock(&s->lock);
    memcpy(s->mmdb_path, path, sizeof path);
    memcpy(s->src[SC_SRC_CITY_DB].url, path, sizeof path);
    s->src[SC_SRC_CITY_DB].configured = true;
    if (ok) {
        /* A MaxMind source has no parsed model: the file in place is its content. */
        s->src[SC_SRC_CITY_DB].have_content = true;
        sc_source_ok(s, SC_SRC_CITY_DB);
        if (changed) {
            s->src[SC_SRC_CITY_DB].last_change = time(NULL);
            s->dirty_geo = true;
            sc_state_kick(s);
        }
    } else {
        sc_source_failed(s, SC_SRC_CITY_DB, err.msg);
    }
    pthread_mutex_unlock(&s->lock);
    /* The ASN database only feeds usage accounting: refresh it when an
     * account can download it, never fail routing over it. */
    if (cfg->maxmind_account[0] && !sc_maxmind_refresh(&mc, &SC_MAXMIND_ASN, &changed, &err))
        ibp_log(&s->log, IBP_LOG_WARN, "maxmind_asn: %s", err.msg);
}

void sc_refresh_inputs(sc_state_t *s, bool with_maxmind)
{
    sc_ref_t *ref = sc_current_config(s);
    if (!ref)
        return;
    const ibp_node_config_t *cfg = ref->model;
    sc_fetch_limits_t lim = limits_of(cfg);
    fetch_input(s, SC_SRC_MEMBERS, cfg->members_url, &lim);
    fetch_input(s, SC_SRC_SERVICES, cfg->services_url, &lim);
    fetch_input(s, SC_SRC_STATIC, cfg->static_url, &lim);
    if (with_maxmind)
        refresh_maxmind(s, cfg);
    sc_ref_put(ref);
}

void sc_poll_monitor(sc_state_t *s)
{
    sc_ref_t *ref = sc_current_config(s);
    if (!ref)
        return;
    const ibp_node_config_t *cfg = ref->model;
    if (cfg->monitor_address[0] && cfg->monitor_port[0]) {
        char url[1024];
        bool v6 = strchr(cfg->monitor_address, ':') != NULL;
        snprintf(url, sizeof url, "http://%s%s%s:%s/results", v6 ? "[" : "", cfg->monitor_address,
                 v6 ? "]" : "", cfg->monitor_port);
        sc_fetch_limits_t lim = limits_of(cfg);
        if (lim.timeout_ms > IBP_MONITOR_TIMEOUT_MS)
            lim.timeout_ms = IBP_MONITOR_TIMEOUT_MS;
        fetch_input(s, SC_SRC_RESULTS, url, &lim);
    } else {
        pthread_mutex_lock(&s->lock);
        s->src[SC_SRC_RESULTS].configured = false;
        pthread_mutex_unlock(&s->lock);
    }
    sc_ref_put(ref);
}

/* ---- threads -------------------------------------------------------------- */

static void add_ms(struct timespec *t, long ms)
{
    t->tv_sec += ms / 1000;
    t->tv_nsec += (ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static bool before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Sleeps until `until` or a stop/reload; returns false when stopping. */
static bool sleep_until(sc_state_t *s, const struct timespec *until, bool *reload)
{
    pthread_mutex_lock(&s->lock);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    while (!s->stopping && !(reload && s->reload_requested) && before(&now, until)) {
        pthread_cond_timedwait(&s->wake, &s->lock, until);
        clock_gettime(CLOCK_MONOTONIC, &now);
    }
    if (reload) {
        *reload = s->reload_requested;
        s->reload_requested = false;
    }
    bool go = !s->stopping;
    pthread_mutex_unlock(&s->lock);
    return go;
}

static long config_period_ms(sc_state_t *s, bool monitor)
{
    sc_ref_t *ref = sc_current_config(s);
    long secs = IBP_PERIOD_DEFAULT_S;
    if (ref) {
        const ibp_node_config_t *cfg = ref->model;
        secs = monitor ? cfg->monitor_refresh_s : cfg->config_reload_s;
    }
    sc_ref_put(ref);
    return secs * 1000L;
}

void *sc_config_thread(void *state)
{
    sc_state_t *s = state;
    struct timespec next_config, next_maxmind;
    clock_gettime(CLOCK_MONOTONIC, &next_config);
    next_maxmind = next_config;
    add_ms(&next_config, config_period_ms(s, false));
    sc_ref_t *ref = sc_current_config(s);
    add_ms(&next_maxmind, ref ? ((ibp_node_config_t *)ref->model)->maxmind_refresh_s * 1000L : 86400000L);
    sc_ref_put(ref);
    for (;;) {
        bool reload = false;
        struct timespec until = before(&next_config, &next_maxmind) ? next_config : next_maxmind;
        if (!sleep_until(s, &until, &reload))
            return NULL;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        bool maxmind_due = reload || !before(&now, &next_maxmind);
        if (reload)
            ibp_log(&s->log, IBP_LOG_INFO, "SIGHUP: reloading the configuration now");
        sc_refresh_config(s);
        sc_refresh_inputs(s, maxmind_due);
        clock_gettime(CLOCK_MONOTONIC, &next_config);
        if (maxmind_due) {
            next_maxmind = next_config;
            ref = sc_current_config(s);
            add_ms(&next_maxmind, ref ? ((ibp_node_config_t *)ref->model)->maxmind_refresh_s * 1000L : 86400000L);
            sc_ref_put(ref);
        }
        add_ms(&next_config, config_period_ms(s, false));
    }
}

void *sc_monitor_thread(void *state)
{
    sc_state_t *s = state;
    for (;;) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        add_ms(&until, config_period_ms(s, true));
        if (!sleep_until(s, &until, NULL))
            return NULL;
        sc_poll_monitor(s);
    }
}
