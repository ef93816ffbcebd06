#include "state.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ibp_overrides.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

const char *const sc_src_names[SC_SRC_COUNT] = {
    "config", "members", "services", "static", "results", "maxmind_city",
};

sc_ref_t *sc_ref_new(void *model, void (*free_model)(void *))
{
    sc_ref_t *r = malloc(sizeof *r);
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1);
    r->model = model;
    r->free_model = free_model;
    return r;
}

sc_ref_t *sc_ref_get(sc_ref_t *r)
{
    if (r)
        atomic_fetch_add(&r->refs, 1);
    return r;
}

void sc_ref_put(sc_ref_t *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        r->free_model(r->model);
        free(r->model);
        free(r);
    }
}

bool sc_state_init(sc_state_t *s, const char *config_path, ibp_err_t *err)
{
    memset(s, 0, sizeof *s);
    /* Relative URLs in the config are relative to its directory, and the
     * config itself is re-read by that same rule: make its path absolute. */
    char *abs = realpath(config_path, NULL);
    if (!abs)
        return ibp_err_set(err, "%s: %s", config_path, strerror(errno));
    int n = snprintf(s->config_path, sizeof s->config_path, "%s", abs);
    free(abs);
    if (n >= (int)sizeof s->config_path)
        return ibp_err_set(err, "%s: path too long", config_path);
    char copy[sizeof s->config_path];
    memcpy(copy, s->config_path, sizeof copy);
    snprintf(s->config_dir, sizeof s->config_dir, "%s", dirname(copy));
    pthread_mutex_init(&s->lock, NULL);
    sc_table_cache_init(&s->tables);
    sc_map_cache_init(&s->maps);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &attr);
    pthread_condattr_destroy(&attr);
    s->log = (ibp_log_t){.level = IBP_LOG_INFO, .ident = "ibpdns-sidecar", .fd = 2};
    s->started = time(NULL);
    return true;
}

void sc_state_free(sc_state_t *s)
{
    for (int i = 0; i < SC_SRC_COUNT; i++) {
        sc_ref_put(s->src[i].good);
        sc_fetch_cache_free(&s->src[i].cache);
    }
    sc_map_cache_free(&s->maps);   /* a drawing holds a table of the cache */
    sc_table_cache_free(&s->tables);
    ibp_overrides_free(&s->ov_live);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
}

void sc_source_failed(sc_state_t *s, sc_src_id_t id, const char *why)
{
    sc_source_t *src = &s->src[id];
    src->attempts++;
    src->failures++;
    bool new_fault = src->failing_since == 0;   /* log the start, not every repeat */
    if (new_fault)
        src->failing_since = time(NULL);
    snprintf(src->last_error, sizeof src->last_error, "%s", why);
    if (new_fault)
        ibp_log(&s->log, IBP_LOG_ERROR, "%s: %s%s", sc_src_names[id], why,
                src->have_content ? " (keeping the last good state)" : "");
}

void sc_source_ok(sc_state_t *s, sc_src_id_t id)
{
    sc_source_t *src = &s->src[id];
    src->attempts++;
    src->last_success = time(NULL);
    if (src->failing_since) {
        ibp_log(&s->log, IBP_LOG_INFO, "%s: recovered after %lld s (%llu failed attempts)",
                sc_src_names[id], (long long)(time(NULL) - src->failing_since),
                (unsigned long long)src->failures);
        src->failing_since = 0;
        src->last_error[0] = '\0';
    }
}

bool sc_source_up(const sc_source_t *src)
{
    return src->configured && !src->failing_since && src->have_content;
}

void sc_state_kick(sc_state_t *s)
{
    pthread_cond_broadcast(&s->wake);
}

bool sc_overrides_sync(sc_state_t *s)
{
    for (int i = SC_SRC_CONFIG; i <= SC_SRC_STATIC; i++)
        if (!s->src[i].good)
            return false;
    /* BEHAVIOR §6b: NATS edits last until members or services change; the
     * config file's own overrides changing is a new base as well. */
    const ibp_node_config_t *cfg = s->src[SC_SRC_CONFIG].good->model;
    uint64_t parts[6];
    ibp_overrides_digest(&cfg->overrides, &parts[0], &parts[1]);
    parts[2] = s->src[SC_SRC_MEMBERS].digest_hi;
    parts[3] = s->src[SC_SRC_MEMBERS].digest_lo;
    parts[4] = s->src[SC_SRC_SERVICES].digest_hi;
    parts[5] = s->src[SC_SRC_SERVICES].digest_lo;
    XXH128_hash_t d = XXH3_128bits(parts, sizeof parts);
    if (s->ov_have_base && d.high64 == s->ov_base_hi && d.low64 == s->ov_base_lo)
        return true;
    ibp_overrides_t fresh;
    ibp_err_t err;
    if (!ibp_overrides_copy(&cfg->overrides, &fresh, &err)) {
        ibp_log(&s->log, IBP_LOG_ERROR, "country overrides: %s; keeping those in force", err.msg);
        return true;
    }
    if (s->ov_edits)
        ibp_log(&s->log, IBP_LOG_INFO, "members, services or the config file's overrides "
                "changed: %llu NATS override edit%s replaced by the config file's %zu "
                "override%s", (unsigned long long)s->ov_edits, s->ov_edits == 1 ? "" : "s",
                fresh.n, fresh.n == 1 ? "" : "s");
    ibp_overrides_free(&s->ov_live);
    s->ov_live = fresh;
    s->ov_have_base = true;
    s->ov_base_hi = d.high64;
    s->ov_base_lo = d.low64;
    s->ov_edits = 0;
    s->ov_changed = time(NULL);
    return true;
}
