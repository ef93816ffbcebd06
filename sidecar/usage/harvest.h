/* Usage harvest: the sidecar's side of usage accounting. Every flush reads
 * the coprocesses' counter files (lib/usage), stores what was counted since
 * the last flush in one store transaction together with each file's harvest
 * sequence, and removes the files whose writer is gone and whose every hit
 * is stored. A flush that fails changes nothing: the counts wait in their
 * files and go in at a later flush.
 *
 * Threads: the usage thread owns the store and runs the flushes; the API
 * asks for a flush (/process) and reads the stats under `lock`. */
#ifndef IBPDNS_SIDECAR_HARVEST_H
#define IBPDNS_SIDECAR_HARVEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "ibp_err.h"
#include "ibp_log.h"
#include "store.h"

#define SC_HARVEST_MAX_FILES 4096   /* per flush; more wait for the next */

typedef struct sc_usage_stats {
    uint64_t flushes, flush_failures;
    uint64_t hits_stored, rows_stored;   /* since the sidecar started */
    uint64_t hits_seen;    /* in the counter files at the last flush */
    uint64_t backlog;      /* of those, not yet stored */
    uint64_t files, files_removed, files_bad;
    time_t last_flush, last_success, failing_since;
    char last_error[IBP_ERR_MAX];
    double last_flush_s;
    bool last_ok;
} sc_usage_stats_t;

typedef struct sc_usage {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    sc_usage_stats_t stats;            /* [lock] written by the flushing thread */
    uint64_t flush_asked, flush_done;  /* [lock] */
    bool stopping;                     /* [lock] */
    char dir[4096];                    /* [init] the counter files */
    char db_path[4096];                /* [init] SQLite, when not use_mysql */
    bool use_mysql;                    /* [init] Mysql.Host is set */
    char my_host[256], my_user[128], my_pass[256], my_db[128];   /* [init] */
    unsigned my_port;                  /* [init] */
    char node_id[SC_COL_NODE * 4 + 1]; /* [init] */
    int flush_s;                       /* [init] */
    int64_t clock_offset_s;            /* [init] tests */
    const ibp_log_t *log;              /* [init] */
    sc_store_t *store;                 /* [owner: the flushing thread] NULL until opened */
    int crash_at;                      /* [init] tests: SIGKILL at this step (sc_crash_point_t) */
} sc_usage_t;

/* Fault injection for the exactly-once tests: IBPDNS_TEST_CRASH=<name> makes
 * the sidecar SIGKILL itself at that step of the first flush that stores
 * something. */
typedef enum sc_crash_point {
    SC_CRASH_NONE = 0,
    SC_CRASH_IN_TRANSACTION,   /* rows and sequences sent, not committed */
    SC_CRASH_AFTER_COMMIT,     /* committed; the files do not know yet */
    SC_CRASH_BEFORE_REMOVE,    /* the files know; drained files not removed yet */
} sc_crash_point_t;

/* mysql NULL: the SQLite store at db_path. */
IBP_MUST_CHECK
bool sc_usage_init(sc_usage_t *u, const char *counter_dir, const char *db_path,
                   const sc_mysql_cfg_t *mysql, const char *node_id, int flush_s,
                   const ibp_log_t *log, ibp_err_t *err);

/* What /status names as the store: "sqlite" or "mysql", and where. */
void sc_usage_store_name(const sc_usage_t *u, const char **kind, char *where, size_t cap);
void sc_usage_free(sc_usage_t *u);

/* One flush, on the calling thread (the usage thread, or a test). */
bool sc_usage_flush(sc_usage_t *u);

/* Flushes every flush_s, when asked, and once more when stopped. */
void *sc_usage_thread(void *arg);
void sc_usage_stop(sc_usage_t *u);

/* Asks for a flush and waits until one that started after the request has
 * finished (or timeout_s passed): whether it stored everything. */
bool sc_usage_flush_now(sc_usage_t *u, int timeout_s);

/* getUsage from the store, on the caller's thread (its own connection). */
IBP_MUST_CHECK
bool sc_usage_query(sc_usage_t *u, const sc_usage_query_t *q, sc_usage_row_fn fn, void *ctx,
                    ibp_err_t *err);

/* getMemberEvents from the store, on the caller's thread (its own
 * connection); no SQLite file yet is no rows. */
IBP_MUST_CHECK
bool sc_usage_events_query(sc_usage_t *u, const sc_event_query_t *q, sc_event_row_fn fn,
                           void *ctx, ibp_err_t *err);

/* The events recorder's handle on the same store (sc_events_open_fn; ctx
 * is the sc_usage_t). */
IBP_MUST_CHECK
bool sc_usage_open_events(void *u, sc_store_t **out, ibp_err_t *err);

#endif
