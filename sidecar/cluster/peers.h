/* The cluster's nodes as this node has heard of them on consensus.cluster
 * (IBP-NODE §8.2): for /status, and to know when to JOIN again. Bounded:
 * a flood of made-up node ids cannot grow it past SC_PEERS_MAX. Not
 * thread-safe: the cluster module holds its lock around every call. */
#ifndef IBPDNS_SIDECAR_PEERS_H
#define IBPDNS_SIDECAR_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "messages.h"

#define SC_PEERS_MAX 1024
#define SC_PEER_STALE_S (15 * 60)   /* dropped after this silence */
#define SC_PEER_ACTIVE_S (10 * 60)  /* "active": heard within this */

typedef struct sc_peer {
    sc_node_info_t info;
    time_t first_heard, last_heard;
    uint64_t messages;
} sc_peer_t;

typedef struct sc_peers {
    sc_peer_t v[SC_PEERS_MAX];
    size_t n;
    uint64_t refused;      /* messages of new nodes while the table was full */
} sc_peers_t;

/* A message on consensus.cluster (not our own): marks its sender heard and,
 * for a JOIN, adds it or fills its empty fields as IBP's addNode. True when
 * IBP would JOIN again: the sender is new, or its JOIN told something new. */
bool sc_peers_heard(sc_peers_t *p, const sc_cluster_msg_t *m, const char *self_id, time_t now);

/* Drops the nodes not heard for SC_PEER_STALE_S. */
void sc_peers_expire(sc_peers_t *p, time_t now);

size_t sc_peers_active(const sc_peers_t *p, time_t now);

#endif
