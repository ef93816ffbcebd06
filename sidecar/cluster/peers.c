#include "peers.h"

#include <string.h>
#include <strings.h>

static bool contains_nocase(const char *s, const char *word)
{
    for (size_t n = strlen(word); *s; s++)
        if (!strncasecmp(s, word, n))
            return true;
    return false;
}

/* IBP's guessRoleFromID, for nodes heard of before their JOIN. */
static const char *guess_role(const char *id)
{
    return contains_nocase(id, "monitor") ? "IBPMonitor" : contains_nocase(id, "dns") ? "IBPDns"
                                                                                      : "";
}

static sc_peer_t *find(sc_peers_t *p, const char *id)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->v[i].info.node_id, id))
            return &p->v[i];
    return NULL;
}

static bool fill(char *have, const char *news)
{
    if (have[0] || !news[0])
        return false;
    strcpy(have, news);   /* same size fields */
    return true;
}

bool sc_peers_heard(sc_peers_t *p, const sc_cluster_msg_t *m, const char *self_id, time_t now)
{
    const sc_node_info_t *s = &m->sender;
    if (!s->node_id[0] || !strcmp(s->node_id, self_id))
        return false;
    sc_peer_t *peer = find(p, s->node_id);
    bool is_new = !peer;
    if (is_new) {
        if (p->n == SC_PEERS_MAX) {
            p->refused++;
            return false;
        }
        peer = &p->v[p->n++];
        memset(peer, 0, sizeof *peer);
        strcpy(peer->info.node_id, s->node_id);
        peer->first_heard = now;
    }
    peer->last_heard = now;
    peer->messages++;
    bool updated = false;
    if (!strcmp(m->type, "join")) {
        updated |= fill(peer->info.node_role, s->node_role);
        updated |= fill(peer->info.public_address, s->public_address);
        updated |= fill(peer->info.listen_address, s->listen_address);
        updated |= fill(peer->info.listen_port, s->listen_port);
    }
    if (!peer->info.node_role[0])
        strcpy(peer->info.node_role, guess_role(s->node_id));
    /* IBP re-JOINs for a JOIN only; a new node heard first by another
     * message is no longer new when its JOIN comes. */
    bool is_join = !strcmp(m->type, "join");
    return is_join && (is_new || updated);
}

void sc_peers_expire(sc_peers_t *p, time_t now)
{
    size_t kept = 0;
    for (size_t i = 0; i < p->n; i++)
        if (now - p->v[i].last_heard <= SC_PEER_STALE_S)
            p->v[kept++] = p->v[i];
    p->n = kept;
}

size_t sc_peers_active(const sc_peers_t *p, time_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++)
        n += now - p->v[i].last_heard < SC_PEER_ACTIVE_S;
    return n;
}
