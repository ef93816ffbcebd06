/* ibpdns-sidecar: keeps the routing table current from the remote configs,
 * the monitor and MaxMind, and serves a small local HTTP API.
 *
 * Threads: main (signals), config+MaxMind, monitor, builder, usage, events, the
 * NATS cluster's (cluster.h), and the HTTP server's own. Inputs that fail keep their last good state. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "acme.h"
#include "api.h"
#include "builder.h"
#include "cluster.h"
#include "recorder.h"
#include "fetch.h"
#include "harvest.h"
#include "ibp_file.h"
#include "ibp_table.h"
#include "state.h"
#include "workers.h"

/* --help asks for it (stdout, success); a mistake gets it on stderr. */
static int usage(FILE *to)
{
    fputs("usage: ibpdns-sidecar --config NODE.json\n"
          "       ibpdns-sidecar --help | --version\n"
          "  Keeps the GeoDNS routing table of ibpdns-pipe current: fetches the configs,\n"
          "  polls the monitor, refreshes MaxMind, compiles and publishes the table, stores\n"
          "  usage, serves the local API (DnsApi.ListenAddress:ListenPort).\n"
          "  SIGHUP reloads the configuration now; SIGTERM stops.\n", to);
    return to == stdout ? 0 : 2;
}

static void log_config_warnings(sc_state_t *s, const ibp_node_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_warnings; i++)
        ibp_log(&s->log, IBP_LOG_WARN, "%s", cfg->warnings[i]);
}

/* Paths that follow from the config; an existing valid table is served
 * (and announced ready) before the first build. */
static bool resolve_paths(sc_state_t *s, const ibp_node_config_t *cfg, ibp_err_t *err)
{
    if (!ibp_local_path(cfg->routing.table_path, s->config_dir, s->table_path,
                        sizeof s->table_path, err))
        return ibp_err_prefix(err, "Routing.TablePath");
    ibp_table_t t;
    ibp_err_t ignored;
    if (ibp_table_open(s->table_path, &t, &ignored)) {
        ibp_log(&s->log, IBP_LOG_INFO, "serving the existing table generation %llu until the "
                "first build", (unsigned long long)t.h->generation);
        s->ready = true;
        ibp_table_close(&t);
    }
    return true;
}

/* Usage accounting: the store and the coprocesses' counter directory. */
static bool usage_start(sc_state_t *s, sc_usage_t *u, ibp_err_t *err)
{
    sc_ref_t *ref = sc_current_config(s);
    const ibp_node_config_t *cfg = ref->model;
    char db[4096], dir[4096];
    long port = cfg->mysql_port[0] ? strtol(cfg->mysql_port, NULL, 10) : 3306;
    sc_mysql_cfg_t my = {.host = cfg->mysql_host, .user = cfg->mysql_user,
                         .pass = cfg->mysql_pass, .db = cfg->mysql_db, .port = (unsigned)port};
    bool ok = (port > 0 && port < 65536) || ibp_err_set(err, "Mysql.Port: not a port");
    ok = ok && (ibp_local_path(cfg->storage_path, s->config_dir, db, sizeof db, err) ||
                ibp_err_prefix(err, "Storage.Path")) &&
         (ibp_local_path(cfg->storage_counter_dir, s->config_dir, dir, sizeof dir, err) ||
          ibp_err_prefix(err, "Storage.CounterDir")) &&
         sc_usage_init(u, dir, db, cfg->mysql_host[0] ? &my : NULL, cfg->nats_node_id,
                       cfg->storage_flush_s, &s->log, err);
    sc_ref_put(ref);
    if (ok) {
        const char *kind;
        char where[600];
        sc_usage_store_name(u, &kind, where, sizeof where);
        ibp_log(&s->log, IBP_LOG_INFO, "usage: counter files in %s, stored in %s %s every "
                "%d s", u->dir, kind, where, u->flush_s);
        sc_usage_flush(u);   /* what the last run left, and the directory the coprocesses need */
    }
    return ok;
}

/* BEHAVIOR §6a: the sidecar writes member_events with its own SQLite store,
 * or with MySQL when Storage.RecordEvents says so (production's monitors
 * write that table themselves); RecordEvents false: it only reads. */
static bool events_start(sc_state_t *s, sc_usage_t *u, sc_events_t *ev, ibp_err_t *err)
{
    sc_ref_t *ref = sc_current_config(s);
    const ibp_node_config_t *cfg = ref->model;
    bool record = cfg->storage_record_events_set ? cfg->storage_record_events : !u->use_mysql;
    int min_s = cfg->minimum_offline_s;
    sc_ref_put(ref);
    if (!record) {
        ibp_log(&s->log, IBP_LOG_INFO, "member events: read from the store, not recorded "
                "(Storage.RecordEvents)");
        return true;
    }
    if (!sc_events_init(ev, s, min_s, sc_usage_open_events, u, err))
        return false;
    s->events = ev;
    ibp_log(&s->log, IBP_LOG_INFO, "member events: recorded from the monitor snapshots "
            "(System.MinimumOfflineTime %d s)", (int)ev->min_offline_s);
    return true;
}

static bool first_round(sc_state_t *s, ibp_err_t *err)
{
    sc_refresh_config(s);
    sc_ref_t *ref = sc_current_config(s);
    if (!ref)
        return ibp_err_set(err, "%s", s->src[SC_SRC_CONFIG].last_error);
    const ibp_node_config_t *cfg = ref->model;
    log_config_warnings(s, cfg);
    bool ok = resolve_paths(s, cfg, err);
    sc_ref_put(ref);
    if (ok) {
        sc_refresh_inputs(s, true);
        sc_poll_monitor(s);
    }
    return ok;
}

static void notify_ready_once(sc_state_t *s, bool *notified)
{
    pthread_mutex_lock(&s->lock);
    bool ready = s->ready;
    pthread_mutex_unlock(&s->lock);
    if (ready && !*notified) {
        sd_notify(0, "READY=1\nSTATUS=routing table in place");
        *notified = true;
    }
}

/* Signals are taken synchronously here; every other thread blocks them. */
static void wait_for_signals(sc_state_t *s, const sigset_t *set)
{
    bool notified = false;
    for (;;) {
        notify_ready_once(s, &notified);
        struct timespec tick = {1, 0};
        siginfo_t info;
        int sig = sigtimedwait(set, &info, &tick);
        if (sig == SIGHUP) {
            pthread_mutex_lock(&s->lock);
            s->reload_requested = true;
            s->publish_now = true;
            sc_state_kick(s);
            pthread_mutex_unlock(&s->lock);
        } else if (sig == SIGTERM || sig == SIGINT) {
            ibp_log(&s->log, IBP_LOG_INFO, "%s: stopping", strsignal(sig));
            sd_notify(0, "STOPPING=1");
            return;
        }
    }
}

static int run(sc_state_t *s, const sigset_t *signals)
{
    ibp_err_t err = {{0}};
    if (!first_round(s, &err)) {
        ibp_log(&s->log, IBP_LOG_FATAL, "%s", err.msg);
        return 1;
    }
    static sc_usage_t usage;
    if (!usage_start(s, &usage, &err)) {
        ibp_log(&s->log, IBP_LOG_FATAL, "%s", err.msg);
        return 1;
    }
    s->usage = &usage;
    static sc_events_t events;
    if (!events_start(s, &usage, &events, &err)) {
        ibp_log(&s->log, IBP_LOG_FATAL, "%s", err.msg);
        return 1;
    }
    sc_ref_t *ref = sc_current_config(s);
    const ibp_node_config_t *cfg = ref->model;
    sc_api_t *api = NULL;
    char acme_socket[4096];
    sc_acme_socket_path(cfg->routing.acme_socket, s->table_path, acme_socket, sizeof acme_socket);
    sc_acme_cfg_t acme = {.socket_path = acme_socket, .budget_ms = cfg->routing.acme_budget_ms,
                          .cache_s = cfg->routing.acme_cache_s, .ca_file = cfg->ca_file};
    /* Without its socket (a read-only table directory, say) ACME names get
     * NODATA; the routing must go on. Logged at Error, /metrics ibpdns_acme_up. */
    ibp_err_t acme_err = {{0}};
    if (!sc_acme_start(s, &acme, &s->acme, &acme_err))
        ibp_log(&s->log, IBP_LOG_ERROR, "ACME values unavailable until a restart: %s",
                acme_err.msg);
    bool ok = sc_cluster_start(s, cfg, &s->cluster, &err) &&
              sc_api_start(s, cfg->api_listen_address, cfg->api_listen_port, cfg->api_token,
                           &api, &err);
    sc_ref_put(ref);
    if (!ok) {
        sc_acme_stop(s->acme);
        sc_cluster_stop(s->cluster);
        ibp_log(&s->log, IBP_LOG_FATAL, "%s", err.msg);
        return 1;
    }
    sc_builder_t builder;
    sc_builder_init(&builder, s);
    sc_builder_run_once(&builder);
    pthread_t threads[3], usage_thread;
    pthread_create(&threads[0], NULL, sc_builder_thread, &builder);
    pthread_create(&threads[1], NULL, sc_config_thread, s);
    pthread_create(&threads[2], NULL, sc_monitor_thread, s);
    pthread_create(&usage_thread, NULL, sc_usage_thread, &usage);
    pthread_t events_thread;
    if (s->events)
        pthread_create(&events_thread, NULL, sc_events_thread, s->events);
    wait_for_signals(s, signals);
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    sc_state_kick(s);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < 3; i++)
        pthread_join(threads[i], NULL);
    if (s->events)
        pthread_join(events_thread, NULL);   /* it tried once more to write what waits */
    sc_usage_stop(&usage);   /* after its last flush: counted hits are stored */
    pthread_join(usage_thread, NULL);
    sc_api_stop(api);
    sc_acme_stop(s->acme);   /* after the API, which reads its counters */
    s->acme = NULL;
    sc_cluster_stop(s->cluster);   /* after the API, which reads it; before the store */
    s->cluster = NULL;
    if (s->events)
        sc_events_free(s->events);   /* after the API, which reads its stats */
    s->events = NULL;
    s->usage = NULL;
    sc_usage_free(&usage);
    sc_builder_free(&builder);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", longs, NULL)) != -1) {
        if (ch == 'h')
            return usage(stdout);
        if (ch == 'V')
            return printf("ibpdns-sidecar %s\n", IBPDNS_VERSION) < 0;
        if (ch != 'c')
            return usage(stderr);
        config = optarg;
    }
    if (!config || optind != argc)
        return usage(stderr);
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGHUP);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);   /* inherited by every thread */
    signal(SIGPIPE, SIG_IGN);
    sc_state_t *s = calloc(1, sizeof *s);
    ibp_err_t err = {{0}};
    if (!s || !sc_state_init(s, config, &err) || !sc_fetch_global_init(&err)) {
        fprintf(stderr, "ibpdns-sidecar Fatal: %s\n", s ? err.msg : "out of memory");
        return 1;
    }
    int rc = run(s, &signals);
    sc_state_free(s);
    free(s);
    sc_fetch_global_cleanup();
    return rc;
}
