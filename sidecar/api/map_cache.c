#include "map_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ibp_world_map.h"

#define FAILED_KEEP_MS 10000   /* a failed map is not drawn again within this */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct sc_map_job {
    sc_map_cache_t *cache;
    sc_table_cache_t *tables;
    sc_cached_table_t *ct;
    char *key;
    char mmdb[4096];
    char host[256];
    unsigned family;
};

void sc_map_cache_init(sc_map_cache_t *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->idle, NULL);
}

void sc_map_cache_free(sc_map_cache_t *c)
{
    pthread_mutex_lock(&c->lock);
    while (c->drawing)
        pthread_cond_wait(&c->idle, &c->lock);
    pthread_mutex_unlock(&c->lock);
    if (c->have_drawer)
        pthread_join(c->drawer, NULL);
    free(c->key);
    free(c->svg);
    free(c->failed_key);
    pthread_cond_destroy(&c->idle);
    pthread_mutex_destroy(&c->lock);
    memset(c, 0, sizeof *c);
}

/* The database is named by its file's identity: a new download is a new map. */
static char *key_of(const ibp_table_t *t, const char *mmdb_path, const char *host, unsigned family)
{
    struct stat st = {0};
    (void)stat(mmdb_path, &st);
    char *key = NULL;
    if (asprintf(&key, "%llu\t%llu\t%s\t%llu\t%lld\t%lld.%09ld\t%u\t%s",
                 (unsigned long long)t->h->generation, (unsigned long long)t->h->build_time,
                 mmdb_path, (unsigned long long)st.st_ino, (long long)st.st_size,
                 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, family, host) < 0)
        return NULL;
    return key;
}

static void *draw(void *arg)
{
    sc_map_job_t *j = arg;
    ibp_world_map_in_t in = {.table = &j->ct->t, .mmdb_path = j->mmdb, .host = j->host,
                             .family = j->family};
    char *svg = NULL;
    size_t len = 0;
    ibp_err_t err = {{0}};
    bool ok = ibp_world_map_svg(&in, &svg, &len, &err);
    sc_table_release(j->tables, j->ct);
    sc_map_cache_t *c = j->cache;
    pthread_mutex_lock(&c->lock);
    if (ok) {
        free(c->key);
        free(c->svg);
        c->key = j->key;
        c->svg = svg;
        c->len = len;
    } else {
        free(c->failed_key);
        c->failed_key = j->key;
        snprintf(c->failed, sizeof c->failed, "%s", err.msg);
        c->failed_until = now_ms() + FAILED_KEEP_MS;
    }
    c->drawing = false;
    pthread_cond_broadcast(&c->idle);
    pthread_mutex_unlock(&c->lock);
    free(j);
    return NULL;
}

/* Starts the drawing of key (lock held); false with err when it cannot. */
static bool start(sc_map_cache_t *c, sc_table_cache_t *tables, sc_cached_table_t *ct, char *key,
                  const char *mmdb, const char *host, unsigned family, ibp_err_t *err)
{
    if (c->have_drawer)   /* finished: drawing is false */
        pthread_join(c->drawer, NULL);
    c->have_drawer = false;
    sc_map_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return ibp_err_set(err, "out of memory");
    *j = (sc_map_job_t){.cache = c, .tables = tables, .ct = ct, .key = key, .family = family};
    snprintf(j->mmdb, sizeof j->mmdb, "%s", mmdb);
    snprintf(j->host, sizeof j->host, "%s", host);
    c->drawing = true;
    if (pthread_create(&c->drawer, NULL, draw, j) != 0) {
        c->drawing = false;
        free(j);
        return ibp_err_set(err, "no thread to draw the map");
    }
    c->have_drawer = true;
    return true;
}

sc_map_state_t sc_map_get(sc_map_cache_t *c, sc_table_cache_t *tables, sc_cached_table_t *ct,
                          const char *mmdb, const char *host, unsigned family, char **svg,
                          size_t *len, ibp_err_t *err)
{
    *svg = NULL;
    *len = 0;
    char *key = key_of(&ct->t, mmdb, host, family);
    sc_map_state_t state = SC_MAP_FAILED;
    bool handed = false;   /* ct and key went to the drawing */
    pthread_mutex_lock(&c->lock);
    if (!key) {
        ibp_err_set(err, "out of memory");
    } else if (c->key && !strcmp(c->key, key)) {
        state = (*svg = malloc(c->len + 1)) ? SC_MAP_READY : SC_MAP_FAILED;
        if (*svg) {
            memcpy(*svg, c->svg, c->len + 1);
            *len = c->len;
        } else {
            ibp_err_set(err, "out of memory");
        }
    } else if (c->failed_key && !strcmp(c->failed_key, key) && now_ms() < c->failed_until) {
        ibp_err_set(err, "%s", c->failed);
    } else if (c->drawing) {
        state = SC_MAP_PENDING;
    } else if ((handed = start(c, tables, ct, key, mmdb, host, family, err))) {
        state = SC_MAP_PENDING;
    }
    pthread_mutex_unlock(&c->lock);
    if (!handed) {
        free(key);
        sc_table_release(tables, ct);
    }
    return state;
}
