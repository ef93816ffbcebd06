/* What the sidecar's threads share: the inputs' last good state and their
 * faults, and what was published.
 *
 * Threads: main (signals, readiness), config (config, members, services,
 * static, MaxMind), monitor (results), builder, events (member events from
 * the results, recorder.h: it reads src[SC_SRC_RESULTS].good and
 * last_change under the lock and waits on `wake`), libmicrohttpd's pool of
 * API threads (SC_API_THREADS, any of them in any handler) with the API's
 * watchdog, the map drawer, NATS's callbacks and the usage harvest. The
 * contract, field by field below:
 *   [lock]    read and written with sc_state_t.lock held;
 *   [owner X] written only by thread X, which may read it without the lock;
 *             other threads read it under the lock, after X wrote it there;
 *   [init]    set before any thread starts, immutable afterwards;
 *   [atomic]  a C11 atomic.
 * Parsed models are immutable and reference-counted (sc_ref_t), so the
 * builder compiles from a snapshot of references while fetchers replace
 * them. The builder's own state (sc_builder_t) belongs to the builder
 * thread alone, the API's connection list to the API's own lock. */
#ifndef IBPDNS_SIDECAR_STATE_H
#define IBPDNS_SIDECAR_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "fetch.h"
#include "ibp_err.h"
#include "ibp_log.h"
#include "ibp_model.h"
#include "map_cache.h"
#include "table_cache.h"

struct sc_usage;
struct sc_cluster;
struct sc_events;

typedef struct sc_ref {
    atomic_int refs;       /* [atomic] */
    void *model;
    void (*free_model)(void *model);
} sc_ref_t;

sc_ref_t *sc_ref_new(void *model, void (*free_model)(void *));
sc_ref_t *sc_ref_get(sc_ref_t *r);   /* NULL-safe */
void sc_ref_put(sc_ref_t *r);        /* NULL-safe */

typedef enum sc_src_id {
    SC_SRC_CONFIG = 0,     /* the node config file itself */
    SC_SRC_MEMBERS, SC_SRC_SERVICES, SC_SRC_STATIC,
    SC_SRC_RESULTS,        /* the monitor's /results */
    SC_SRC_CITY_DB,        /* MaxMind City */
    SC_SRC_COUNT
} sc_src_id_t;

extern const char *const sc_src_names[SC_SRC_COUNT];

typedef struct sc_source {
    char url[4096];        /* [lock] what is fetched (credentials never stored here) */
    sc_fetch_cache_t cache;   /* [owner: the source's fetching thread], no lock */
    /* The rest of a source: [lock]; its fetching thread also reads good and
     * the digests without the lock (only it writes them). */
    sc_ref_t *good;        /* last good parsed model, or NULL */
    bool have_content;     /* good content in use: a parsed model, or the MaxMind file */
    uint64_t digest_hi, digest_lo, size;
    time_t last_success;   /* last fetch that gave or confirmed good content */
    time_t last_change;    /* last time the good content changed */
    time_t failing_since;  /* 0 when the last attempt succeeded */
    char last_error[IBP_ERR_MAX];
    uint64_t attempts, failures;
    bool configured;       /* false: e.g. no monitor address */
    /* The config's Routing.Nets file as it was when read [owner: the
     * config's fetching thread]: a change re-reads the config. */
    struct stat nets_file;
    bool have_nets_file;
    struct stat map_file;      /* the same for a Routing.Map file */
    bool have_map_file;
} sc_source_t;

/* The steps of a build, timed for /status: checking or walking the geo
 * classes, compiling, validating what would be published, and writing it
 * (write, fsync, rename). */
typedef enum sc_phase {
    SC_PHASE_GEO, SC_PHASE_COMPILE, SC_PHASE_CHECK, SC_PHASE_WRITE, SC_PHASE_COUNT
} sc_phase_t;

typedef struct sc_publish {
    uint64_t generation, build_time;
    time_t published_at;
    double last_build_s;   /* wall time of the last build */
    double last_health_build_s;
    double phase_s[SC_PHASE_COUNT];   /* of the last build: where its time went */
    uint64_t builds_full, builds_health, build_failures;
    char last_error[IBP_ERR_MAX];
    size_t hosts, policies, nodes, bytes;
    size_t maps, maps_reused, maps_updated, maps_computed;   /* of the last build */
    bool coarse_trie;
} sc_publish_t;

/* Routing.MaxShiftPercent's guard, as /status, /metrics and the log show it. */
typedef struct sc_guard {
    unsigned max_shift_percent;   /* of the config in hand; 0: off */
    /* The last table weighed (built from changed configs, overrides or
     * MaxMind data), published or not. */
    bool weighed;
    double shift_percent, health_percent;
    char shift_where[512];        /* "host A, IPv4 clients: Amforc -> Dwellir" */
    /* A table held back: the one in place stays until the inputs change
     * again or POST /publish?force=1. */
    bool held;
    time_t held_since;
    uint64_t refusals, forced;
} sc_guard_t;

typedef struct sc_state {
    pthread_mutex_t lock;
    pthread_cond_t wake;   /* builder, workers and events sleep on it, with lock */
    sc_source_t src[SC_SRC_COUNT];   /* see sc_source_t */
    sc_publish_t pub;      /* [lock], written by the builder */
    sc_guard_t guard;      /* [lock], written by the builder */
    /* [lock] from here to mmdb_path, but for the [init] ones */
    bool dirty_config, dirty_health, dirty_geo;   /* what the builder has to redo */
    bool reload_requested; /* SIGHUP, for the config thread */
    bool publish_now;      /* SIGHUP, for the builder: retry a failed publish without back-off */
    bool force_publish;    /* POST /publish?force=1: publish a table the guard holds back */
    bool stopping;
    bool ready;            /* a table is in place */
    char config_path[4096];   /* [init] */
    char config_dir[4096];    /* [init] */
    char table_path[4096];    /* [init] (set by main before the other threads start) */
    char mmdb_path[4096];     /* written by the config thread */
    ibp_log_t log;            /* level [atomic], the rest [init] */
    time_t started;           /* [init] */
    sc_table_cache_t tables;  /* the API's readers' table; its own lock */
    sc_map_cache_t maps;      /* GET /map.svg's last map; its own lock */
    struct sc_usage *usage;   /* [init] usage accounting (harvest.h); NULL: none */
    struct sc_cluster *cluster;   /* [init] the NATS link (cluster.h); NULL: no Nats.Url */
    struct sc_acme *acme;     /* [init] ACME values for the coprocesses (acme.h) */
    /* [init] the member events recorder (recorder.h: its stats under its own
     * lock, the rest its thread's); NULL: events are only read (MySQL
     * without Storage.RecordEvents, or RecordEvents false) */
    struct sc_events *events;
    /* [atomic] API requests inside the usage store (/process, /usage,
     * /events): at most SC_API_STORE_REQUESTS_MAX, so that a hanging store
     * always leaves the API a thread for /status and /metrics. */
    atomic_uint api_store_requests;
    /* [lock] The country overrides in force: the config file's, edited over
     * NATS (geodns.override.update) until members, services or the file's
     * overrides change, when the file's come back (BEHAVIOR §6b). */
    ibp_overrides_t ov_live;
    bool ov_have_base;        /* ov_live was reset from the sources of ov_base */
    uint64_t ov_base_hi, ov_base_lo;
    uint64_t ov_edits;        /* NATS edits applied since that reset */
    time_t ov_changed;        /* last edit or reset */
} sc_state_t;

bool sc_state_init(sc_state_t *s, const char *config_path, ibp_err_t *err);
void sc_state_free(sc_state_t *s);

/* Records the outcome of one attempt on a source (caller holds the lock).
 * A fault is logged when it starts and when it ends, not every time. */
void sc_source_failed(sc_state_t *s, sc_src_id_t id, const char *why);
void sc_source_ok(sc_state_t *s, sc_src_id_t id);

/* /status "ok" and /metrics ibpdns_source_up: configured, the last attempt
 * succeeded, and content is in use (caller holds the lock). */
bool sc_source_up(const sc_source_t *src);

/* Resets ov_live to the config file's overrides when members, services or
 * those overrides changed (caller holds the lock). False while they are not all in. */
bool sc_overrides_sync(sc_state_t *s);

/* Wakes the threads waiting on `wake` after setting flags (lock held). */
void sc_state_kick(sc_state_t *s);

#endif
