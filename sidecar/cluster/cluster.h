/* The sidecar's part in the IBP NATS cluster (IBP-NODE §8, BEHAVIOR §6b):
 * the connection (nats.c), the consensus.cluster JOIN heartbeat and peer
 * table, dns.usage.getUsage answered from the usage store, and
 * geodns.override.update applied to the overrides in force (state.h).
 *
 * Threads: the cluster thread connects, reconnects after a closed
 * connection, and sends the JOINs; nats.c delivers each subscription's
 * messages on a thread of its own, so a slow store delays only getUsage
 * replies (at most SC_USAGE_PENDING requests wait; more are dropped and
 * counted). Everything below `lock` in sc_cluster_t is guarded by it. */
#ifndef IBPDNS_SIDECAR_CLUSTER_H
#define IBPDNS_SIDECAR_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "ibp_err.h"
#include "ibp_model.h"
#include "messages.h"
#include "peers.h"
#include "state.h"

#define SC_JOIN_BURST 3            /* JOINs at start, ... */
#define SC_JOIN_BURST_MS 500       /* ... this far apart */
#define SC_JOIN_EVERY_S 90         /* then the heartbeat */
#define SC_JOIN_THROTTLE_S 5       /* heartbeats closer than this are skipped */
#define SC_REJOIN_MIN_MS 250       /* forced re-JOINs for new peers: at most this often */
#define SC_NATS_RETRY_MS 2000      /* reconnect wait, and between failed connects */
#define SC_NATS_TIMEOUT_MS 10000
#define SC_NATS_PING_MS 200000
#define SC_NATS_PINGS_OUT 5
#define SC_USAGE_PENDING 256
#define SC_STOP_WAIT_S 30          /* stop waits this long for a callback under way */

typedef enum sc_subject {
    SC_SUBJ_CLUSTER = 0,   /* consensus.cluster */
    SC_SUBJ_USAGE,         /* dns.usage.getUsage (received) */
    SC_SUBJ_OVERRIDE,      /* geodns.override.update */
    SC_SUBJ_USAGE_REPLY,   /* sent: replies to a request's reply subject */
    SC_SUBJ_USAGE_DATA,    /* sent: dns.usage.usageData, for requests without one */
    SC_SUBJ_COUNT
} sc_subject_t;

extern const char *const sc_subject_names[SC_SUBJ_COUNT];

typedef struct sc_cluster_stats {
    bool connected;
    char url[512];         /* connected server, credentials removed */
    char last_error[IBP_ERR_MAX];
    time_t connected_since, failing_since, last_join;
    uint64_t connects, disconnects, reconnects, joins_sent;
    uint64_t received[SC_SUBJ_COUNT], sent[SC_SUBJ_COUNT], bad[SC_SUBJ_COUNT];
    uint64_t dropped;      /* messages nats.c dropped (slow consumer) */
    size_t peers, peers_active;
    uint64_t peers_refused;
} sc_cluster_stats_t;

typedef struct sc_cluster sc_cluster_t;

/* Starts the cluster thread when Nats.Url is set; *out = NULL without one
 * (no cluster is a normal mode). Fails on settings that cannot work (a
 * Nats.Url without Nats.NodeID, an unreadable CaFile). */
IBP_MUST_CHECK
bool sc_cluster_start(sc_state_t *s, const ibp_node_config_t *cfg, sc_cluster_t **out,
                      ibp_err_t *err);
void sc_cluster_stop(sc_cluster_t *c);   /* NULL-safe; joins and frees */

void sc_cluster_stats(sc_cluster_t *c, sc_cluster_stats_t *out);
/* Copies up to cap peers (most recently heard first); returns how many. */
size_t sc_cluster_peers(sc_cluster_t *c, sc_peer_t *out, size_t cap);
const char *sc_cluster_node_id(const sc_cluster_t *c);

#endif
