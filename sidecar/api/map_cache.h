/* GET /map.svg: world maps (lib/compile/ibp_world_map.h) drawn by a thread
 * of their own and kept until the table, the database, the host or the
 * family changes. The API has a few threads (SC_API_THREADS), and on the
 * full GeoLite2-City a map walks the database and routes every network
 * (about a core-second): a request for a map not drawn yet starts the
 * drawing and is told to retry, so no HTTP thread waits for a map and a
 * client retrying cannot start a second drawing. One map is drawn at a time. */
#ifndef IBPDNS_SIDECAR_MAP_CACHE_H
#define IBPDNS_SIDECAR_MAP_CACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "ibp_err.h"
#include "ibp_table.h"
#include "table_cache.h"

typedef struct sc_map_job sc_map_job_t;

typedef struct sc_map_cache {
    pthread_mutex_t lock;
    pthread_cond_t idle;    /* signalled when a drawing ends */
    bool drawing;
    pthread_t drawer;       /* joinable once drawing is false */
    bool have_drawer;
    char *key;              /* of svg: generation, build time, database, family, host */
    char *svg;
    size_t len;
    char *failed_key;       /* the last drawing that failed, and why, until failed_until */
    char failed[IBP_ERR_MAX];
    long long failed_until; /* monotonic ms: then it is tried again (a fault may pass) */
} sc_map_cache_t;

void sc_map_cache_init(sc_map_cache_t *c);
/* Waits for a drawing under way: before the table cache it holds from goes. */
void sc_map_cache_free(sc_map_cache_t *c);

typedef enum sc_map_state { SC_MAP_READY, SC_MAP_PENDING, SC_MAP_FAILED } sc_map_state_t;

/* The map of host/family of ct's table, placed by the database at mmdb:
 * READY with a copy in *svg (the caller's to free); PENDING while it is
 * drawn (started now when nothing else is); FAILED with err when this very
 * map could not be drawn (or no thread could be started). ct is given up
 * (released into tables) here or by the drawing. */
sc_map_state_t sc_map_get(sc_map_cache_t *c, sc_table_cache_t *tables, sc_cached_table_t *ct,
                          const char *mmdb, const char *host, unsigned family, char **svg,
                          size_t *len, ibp_err_t *err);

#endif
