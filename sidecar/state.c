#include "state.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    sc_table_cache_free(&s->tables);
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
