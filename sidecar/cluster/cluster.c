#include "cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harvest.h"
#include "ibp_overrides.h"

const char *const sc_subject_names[SC_SUBJ_COUNT] = {
    "consensus.cluster", "dns.usage.getUsage", "geodns.override.update",
    "dns.usage.getUsage reply", "dns.usage.usageData",
};

#define SC_NATS_MAX_URLS 16

/* A kind of fault logged at most once a minute, with what was held back. */
typedef struct ratelog {
    time_t last;
    uint64_t held;
    unsigned burst, in_window;   /* lines allowed per minute (0: 1), and used */
} ratelog_t;

struct sc_cluster {
    sc_state_t *s;                         /* [init] */
    sc_node_info_t self;                   /* [init] */
    char *urls[SC_NATS_MAX_URLS];          /* [init] as configured (may hold credentials) */
    int n_urls;                            /* [init] */
    char user[256], pass[256], ca_file[4096];   /* [init] the password is never logged */
    bool secure;                           /* [init] a tls:// URL: TLS required */
    pthread_t thread;
    natsConnection *nc;                    /* [owner: cluster thread]; publishers read it
                                              under lock (NULL while reconnecting it) */
    natsSubscription *subs[3];             /* [owner: cluster thread] */
    atomic_bool reconnected;               /* [atomic] set by nats.c's callback */
    atomic_uint_fast64_t disconnects, reconnects, dropped;   /* [atomic] */
    pthread_mutex_t lock;
    pthread_cond_t wake;                   /* the cluster thread sleeps on it */
    pthread_cond_t idle;                   /* signalled when busy drops to 0 */
    bool stopping;
    unsigned busy;                         /* message callbacks running (stop waits) */
    sc_cluster_stats_t st;                 /* counters, connection state */
    sc_peers_t peers;
    bool rejoin;                           /* a new or changed peer: JOIN again */
    struct timespec last_join_mono, last_rejoin_mono;
    ratelog_t bad_log[SC_SUBJ_COUNT][SC_BAD_KIND_COUNT];
    ratelog_t edit_log, publish_log;
};

/* ---- small things ---------------------------------------------------------------- */

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* "nats://user:pass@host:4222" -> "nats://host:4222": for logs and /status. */
static void redact_url(const char *url, char *out, size_t cap)
{
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *at = strrchr(host, '@');
    if (at)
        snprintf(out, cap, "%.*s%s", (int)(host - url), url, at + 1);
    else
        snprintf(out, cap, "%s", url);
}

/* Logs unless the same kind was logged within the minute (c->lock held). */
__attribute__((format(printf, 4, 5)))
static void ratelog(sc_cluster_t *c, ratelog_t *r, ibp_log_level_t level, const char *fmt, ...)
{
    time_t now = time(NULL);
    if (r->last && now - r->last < 60 && ++r->in_window >= (r->burst ? r->burst : 1)) {
        r->held++;
        return;
    }
    if (!r->last || now - r->last >= 60) {
        r->last = now;
        r->in_window = 0;
    }
    char msg[IBP_ERR_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->held)
        ibp_log(&c->s->log, level, "%s (and %llu more like it in the last minute)", msg,
                (unsigned long long)r->held);
    else
        ibp_log(&c->s->log, level, "%s", msg);
    r->held = 0;
}

static void count(sc_cluster_t *c, uint64_t *counter)
{
    pthread_mutex_lock(&c->lock);
    (*counter)++;
    pthread_mutex_unlock(&c->lock);
}

/* Publishes on the connection in place; false (counted, logged) if none. */
static bool publish(sc_cluster_t *c, sc_subject_t kind, const char *subject, const sc_buf_t *b)
{
    pthread_mutex_lock(&c->lock);
    natsStatus st = b->oom ? NATS_NO_MEMORY
                  : c->nc ? natsConnection_Publish(c->nc, subject, b->p, (int)b->len)
                          : NATS_CONNECTION_CLOSED;
    if (st == NATS_OK)
        c->st.sent[kind]++;
    else
        ratelog(c, &c->publish_log, IBP_LOG_WARN, "nats: publish on %s failed: %s", subject,
                natsStatus_GetText(st));
    pthread_mutex_unlock(&c->lock);
    return st == NATS_OK;
}

/* ---- consensus.cluster ------------------------------------------------------------- */

/* A message callback starts: false once stopping (it then touches nothing
 * of the state, which is about to go). */
static bool enter(sc_cluster_t *c)
{
    pthread_mutex_lock(&c->lock);
    bool go = !c->stopping;
    c->busy += go;
    pthread_mutex_unlock(&c->lock);
    return go;
}

static void leave(sc_cluster_t *c)
{
    pthread_mutex_lock(&c->lock);
    if (--c->busy == 0)
        pthread_cond_broadcast(&c->idle);
    pthread_mutex_unlock(&c->lock);
}

static double since_s(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* IBP's broadcastClusterJoin: unforced ones at most every 5 s. */
static void send_join(sc_cluster_t *c, bool force)
{
    pthread_mutex_lock(&c->lock);
    bool skip = !force && c->last_join_mono.tv_sec && since_s(&c->last_join_mono) <
                                                          SC_JOIN_THROTTLE_S;
    if (!skip)
        clock_gettime(CLOCK_MONOTONIC, &c->last_join_mono);
    pthread_mutex_unlock(&c->lock);
    if (skip)
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    sc_buf_t b = {0};
    sc_join_encode(&b, &c->self, (long long)now.tv_sec, now.tv_nsec);
    if (publish(c, SC_SUBJ_CLUSTER, "consensus.cluster", &b)) {
        pthread_mutex_lock(&c->lock);
        c->st.joins_sent++;
        c->st.last_join = now.tv_sec;
        pthread_mutex_unlock(&c->lock);
    }
    sc_buf_free(&b);
}

static void on_cluster(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub;
    sc_cluster_t *c = closure;
    if (!enter(c)) {
        natsMsg_Destroy(m);
        return;
    }
    sc_cluster_msg_t msg;
    ibp_err_t err;
    bool ok = sc_cluster_msg_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &msg,
                                    &err);
    pthread_mutex_lock(&c->lock);
    c->st.received[SC_SUBJ_CLUSTER]++;
    if (!ok) {
        c->st.bad[SC_SUBJ_CLUSTER]++;
        ratelog(c, &c->bad_log[SC_SUBJ_CLUSTER][SC_BAD_JSON], IBP_LOG_WARN,
                "nats: consensus.cluster: ignored a message: %s", err.msg);
    } else if (sc_peers_heard(&c->peers, &msg, c->self.node_id, time(NULL))) {
        c->rejoin = true;
        pthread_cond_signal(&c->wake);
    }
    pthread_mutex_unlock(&c->lock);
    natsMsg_Destroy(m);
    leave(c);
}

/* ---- dns.usage.getUsage ---------------------------------------------------------------- */

typedef struct reply_ctx {
    sc_buf_t *b;
    size_t n;
} reply_ctx_t;

static bool add_row(void *ctx, const sc_usage_row_t *r)
{
    reply_ctx_t *x = ctx;
    sc_usage_record_t rec = {.date = r->date, .domain = r->domain, .member = r->member,
                             .country_code = r->country_code, .asn = r->asn,
                             .network_name = r->network_name, .country_name = r->country_name,
                             .hits = r->hits, .is_ipv6 = r->is_ipv6};
    sc_usage_reply_add(x->b, &rec);
    x->n++;
    return !x->b->oom;
}

/* IBP's HandleRequest: errors of the request are answered only to a reply
 * subject; the records (or none) go to the reply subject or usageData. */
static void answer_usage(sc_cluster_t *c, const char *reply, const char *data, size_t len)
{
    sc_usage_request_t rq;
    ibp_err_t err = {{0}};
    sc_buf_t b = {0};
    sc_usage_reply_begin(&b, c->self.node_id);
    if (!sc_usage_request_decode(data, len, &rq, &err)) {
        count(c, &c->st.bad[SC_SUBJ_USAGE]);
        char why[IBP_ERR_MAX + 32];
        snprintf(why, sizeof why, "unmarshal error: %s", err.msg);
        sc_usage_reply_end(&b, false, why);
        if (reply)
            publish(c, SC_SUBJ_USAGE_REPLY, reply, &b);
        sc_buf_free(&b);
        return;
    }
    if (strcmp(rq.start, rq.end) > 0) {
        sc_usage_reply_end(&b, false, "StartDate must be before or equal to EndDate");
        if (reply)
            publish(c, SC_SUBJ_USAGE_REPLY, reply, &b);
        sc_usage_request_free(&rq);
        sc_buf_free(&b);
        return;
    }
    sc_go_trim_space(rq.start);
    sc_go_trim_space(rq.end);
    reply_ctx_t x = {.b = &b};
    bool nil = false;
    const char *error = NULL;
    bool dates = !rq.nul[0] && !rq.nul[1] && sc_go_date_ok(rq.start) && sc_go_date_ok(rq.end);
    if (dates && (rq.nul[2] || rq.nul[3] || rq.nul[4])) {
        nil = true;   /* no stored value holds a NUL: no row matches */
    } else if (dates) {
        sc_usage_query_t q = {rq.start, rq.end, rq.domain, rq.member, rq.country};
        if (!c->s->usage || !sc_usage_query(c->s->usage, &q, add_row, &x, &err)) {
            /* IBP answers [] and hides why; we say it (consumers ignore "error") */
            b.len = 0;
            b.oom = false;
            sc_usage_reply_begin(&b, c->self.node_id);
            error = c->s->usage ? err.msg : "usage accounting is not running";
            pthread_mutex_lock(&c->lock);
            ratelog(c, &c->bad_log[SC_SUBJ_USAGE][SC_BAD_SIZE], IBP_LOG_ERROR,
                    "nats: getUsage: the store failed: %s", error);
            pthread_mutex_unlock(&c->lock);
        } else {
            nil = x.n == 0;   /* Go's nil slice: null */
        }
    }
    sc_usage_reply_end(&b, nil, error);
    pthread_mutex_lock(&c->lock);
    size_t max = c->nc ? (size_t)natsConnection_GetMaxPayload(c->nc) : 0;
    pthread_mutex_unlock(&c->lock);
    if (max && b.len > max) {
        char why[200];
        snprintf(why, sizeof why, "%zu records are more than one message holds (%zu bytes): "
                 "narrow the query", x.n, max);
        b.len = 0;
        sc_usage_reply_begin(&b, c->self.node_id);
        sc_usage_reply_end(&b, false, why);
    }
    if (reply)
        publish(c, SC_SUBJ_USAGE_REPLY, reply, &b);
    else
        publish(c, SC_SUBJ_USAGE_DATA, "dns.usage.usageData", &b);
    sc_usage_request_free(&rq);
    sc_buf_free(&b);
}

static void on_usage(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub;
    sc_cluster_t *c = closure;
    if (!enter(c)) {
        natsMsg_Destroy(m);
        return;
    }
    count(c, &c->st.received[SC_SUBJ_USAGE]);
    const char *reply = natsMsg_GetReply(m);
    answer_usage(c, reply && reply[0] ? reply : NULL, natsMsg_GetData(m),
                 (size_t)natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
    leave(c);
}

/* ---- geodns.override.update ---------------------------------------------------------------- */

static void describe_edit(const sc_override_msg_t *m, char *out, size_t cap)
{
    const ibp_override_t *e = &m->entry;
    char v4[16] = "", v6[46] = "";
    if (e->has_v4)
        inet_ntop(AF_INET, e->v4, v4, sizeof v4);
    if (e->has_v6)
        inet_ntop(AF_INET6, e->v6, v6, sizeof v6);
    if (m->action == SC_OV_CLEAR)
        snprintf(out, cap, "clear %s", e->domain);
    else if (m->action == SC_OV_REMOVE)
        snprintf(out, cap, "remove %s/%s", e->domain, e->cc);
    else
        snprintf(out, cap, "set %s/%s -> %s%s%s%s%s", e->domain, e->cc,
                 e->member_name[0] ? "member " : "", e->member_name, v4, v4[0] && v6[0] ? " " : "",
                 v6);
}

/* Applies one edit to the overrides in force; the builder republishes. */
static bool apply_edit(sc_state_t *s, const sc_override_msg_t *m, ibp_err_t *err)
{
    pthread_mutex_lock(&s->lock);
    (void)sc_overrides_sync(s);   /* an edit applies to the overrides of the configs now in */
    bool ok = true;
    if (m->action == SC_OV_SET)
        ok = ibp_overrides_set(&s->ov_live, &m->entry, err);
    else if (m->action == SC_OV_REMOVE)
        (void)ibp_overrides_remove(&s->ov_live, m->entry.domain, m->entry.cc);
    else
        (void)ibp_overrides_clear(&s->ov_live, m->entry.domain);
    if (ok) {
        s->ov_edits++;
        s->ov_changed = time(NULL);
        s->dirty_config = true;
        sc_state_kick(s);
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static void on_override(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub;
    sc_cluster_t *c = closure;
    if (!enter(c)) {
        natsMsg_Destroy(m);
        return;
    }
    sc_override_msg_t msg;
    sc_bad_kind_t kind;
    ibp_err_t err = {{0}};
    bool ok = sc_override_msg_decode(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &msg,
                                     &kind, &err);
    natsMsg_Destroy(m);
    char what[600] = "";
    if (ok) {
        describe_edit(&msg, what, sizeof what);
        ok = apply_edit(c->s, &msg, &err);
        kind = SC_BAD_SIZE;
    }
    pthread_mutex_lock(&c->lock);
    c->st.received[SC_SUBJ_OVERRIDE]++;
    if (ok) {
        ratelog(c, &c->edit_log, IBP_LOG_INFO, "nats: override %s", what);
    } else {
        c->st.bad[SC_SUBJ_OVERRIDE]++;
        ratelog(c, &c->bad_log[SC_SUBJ_OVERRIDE][kind], IBP_LOG_WARN,
                "nats: geodns.override.update: ignored a message: %s", err.msg);
    }
    pthread_mutex_unlock(&c->lock);
    sc_override_msg_free(&msg);
    leave(c);
}

/* ---- the connection ------------------------------------------------------------------------ */

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    sc_cluster_t *c = closure;
    atomic_fetch_add(&c->disconnects, 1);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    sc_cluster_t *c = closure;
    atomic_fetch_add(&c->reconnects, 1);
    atomic_store(&c->reconnected, true);
    pthread_mutex_lock(&c->lock);
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus st, void *closure)
{
    (void)nc, (void)sub;
    sc_cluster_t *c = closure;
    if (st == NATS_SLOW_CONSUMER)
        atomic_fetch_add(&c->dropped, 1);
}

static natsStatus make_options(sc_cluster_t *c, natsOptions **out)
{
    natsOptions *o = NULL;
    natsStatus st = natsOptions_Create(&o);
    if (st == NATS_OK)
        st = natsOptions_SetServers(o, (const char **)c->urls, c->n_urls);
    if (st == NATS_OK && c->user[0])
        st = natsOptions_SetUserInfo(o, c->user, c->pass);
    if (st == NATS_OK)
        st = natsOptions_SetName(o, c->self.node_id);
    if (st == NATS_OK)
        st = natsOptions_SetNoEcho(o, true);
    if (st == NATS_OK)
        st = natsOptions_SetMaxReconnect(o, -1);
    if (st == NATS_OK)
        st = natsOptions_SetReconnectWait(o, SC_NATS_RETRY_MS);
    if (st == NATS_OK)
        st = natsOptions_SetTimeout(o, SC_NATS_TIMEOUT_MS);
    if (st == NATS_OK)
        st = natsOptions_SetPingInterval(o, SC_NATS_PING_MS);
    if (st == NATS_OK)
        st = natsOptions_SetMaxPingsOut(o, SC_NATS_PINGS_OUT);
    if (st == NATS_OK)
        st = natsOptions_SetDisconnectedCB(o, on_disconnected, c);
    if (st == NATS_OK)
        st = natsOptions_SetReconnectedCB(o, on_reconnected, c);
    if (st == NATS_OK)
        st = natsOptions_SetErrorHandler(o, on_error, c);
    /* nats.c turns TLS on only when the server asks for it: a tls:// URL
     * must not fall back to plain text. It verifies the certificate (the
     * system's store unless System.CaFile) and the host name. */
    if (st == NATS_OK && c->secure)
        st = natsOptions_SetSecure(o, true);
    if (st == NATS_OK && c->secure && c->ca_file[0])
        st = natsOptions_LoadCATrustedCertificates(o, c->ca_file);
    if (st != NATS_OK)
        natsOptions_Destroy(o);
    else
        *out = o;
    return st;
}

/* nats.c's texts may start with where it failed, "(conn.c:1905): ". */
static const char *nats_text(const char *text, natsStatus st)
{
    if (!text || !text[0])
        return natsStatus_GetText(st);
    const char *end = text[0] == '(' ? strstr(text, "): ") : NULL;
    return end ? end + 3 : text;
}

static void set_error(sc_cluster_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(sc_cluster_t *c, const char *fmt, ...)
{
    char msg[IBP_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->lock);
    bool changed = strcmp(msg, c->st.last_error) != 0;
    if (!c->st.failing_since)
        c->st.failing_since = time(NULL);
    snprintf(c->st.last_error, sizeof c->st.last_error, "%s", msg);
    c->st.connected = false;
    pthread_mutex_unlock(&c->lock);
    if (changed)   /* a fault is logged when it starts or changes, not at every retry */
        ibp_log(&c->s->log, IBP_LOG_ERROR, "nats: %s; retrying every %d s", msg,
                SC_NATS_RETRY_MS / 1000);
}

static void servers_text(const sc_cluster_t *c, char *out, size_t cap)
{
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i < c->n_urls && at < cap; i++) {
        char one[512];
        redact_url(c->urls[i], one, sizeof one);
        int n = snprintf(out + at, cap - at, "%s%s", i ? "," : "", one);
        at += n > 0 ? (size_t)n : 0;
    }
}

static void close_connection(sc_cluster_t *c)
{
    for (int i = 0; i < 3; i++) {
        natsSubscription_Destroy(c->subs[i]);
        c->subs[i] = NULL;
    }
    pthread_mutex_lock(&c->lock);
    natsConnection *nc = c->nc;
    c->nc = NULL;
    c->st.connected = false;
    pthread_mutex_unlock(&c->lock);
    natsConnection_Destroy(nc);
}

static void connected_url(sc_cluster_t *c, natsConnection *nc)
{
    char url[512] = "", clean[512];
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    redact_url(url, clean, sizeof clean);
    pthread_mutex_lock(&c->lock);
    bool was_failing = c->st.failing_since != 0;
    snprintf(c->st.url, sizeof c->st.url, "%s", clean);
    c->st.connected = true;
    c->st.connected_since = time(NULL);
    c->st.failing_since = 0;
    c->st.last_error[0] = '\0';
    pthread_mutex_unlock(&c->lock);
    ibp_log(&c->s->log, IBP_LOG_INFO, "nats: connected to %s as %s%s", clean, c->self.node_id,
            was_failing ? " (recovered)" : "");
}

/* One synchronous attempt over every server (nats.c's Connect), so that the
 * reason of a failure (credentials, certificate) is known; later drops are
 * nats.c's to reconnect, forever, every 2 s. */
static bool connect_once(sc_cluster_t *c)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    char servers[2048];
    servers_text(c, servers, sizeof servers);
    natsStatus st = make_options(c, &o);
    if (st == NATS_OK)
        st = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    if (st != NATS_OK) {
        natsStatus last;
        const char *text = nats_GetLastError(&last);
        set_error(c, "connecting to %s: %s", servers, nats_text(text, st));
        return false;
    }
    static const char *const subjects[3] = {"consensus.cluster", "dns.usage.getUsage",
                                            "geodns.override.update"};
    static natsMsgHandler const handlers[3] = {on_cluster, on_usage, on_override};
    for (int i = 0; i < 3 && st == NATS_OK; i++) {
        st = natsConnection_Subscribe(&c->subs[i], nc, subjects[i], handlers[i], c);
        if (st == NATS_OK && i == 1)   /* a slow store: requests wait here, bounded */
            st = natsSubscription_SetPendingLimits(c->subs[i], SC_USAGE_PENDING,
                                                   SC_USAGE_PENDING * SC_MSG_MAX_BYTES);
    }
    pthread_mutex_lock(&c->lock);
    c->nc = nc;
    c->st.connects++;
    pthread_mutex_unlock(&c->lock);
    if (st != NATS_OK) {
        set_error(c, "subscribing on %s: %s", servers, natsStatus_GetText(st));
        close_connection(c);
        return false;
    }
    connected_url(c, nc);
    return true;
}

/* Waits ms on the cluster's condition; false when stopping. */
static bool nap(sc_cluster_t *c, unsigned ms)
{
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    at.tv_sec += ms / 1000;
    at.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (at.tv_nsec >= 1000000000L) {
        at.tv_sec++;
        at.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->lock);
    if (!c->stopping)   /* one wait: a signal (rejoin, reconnect, stop) ends it early */
        pthread_cond_timedwait(&c->wake, &c->lock, &at);
    bool go_on = !c->stopping;
    pthread_mutex_unlock(&c->lock);
    return go_on;
}

/* What the thread does while a connection is in place: notice a closed
 * one, JOIN on schedule, on reconnects and for new peers. */
typedef struct schedule {
    int burst_left;
    double next_burst, next_heartbeat, next_expire;
    bool was_connected;
} schedule_t;

static void joins_due(sc_cluster_t *c, schedule_t *sch)
{
    double now = mono_s();
    if (sch->burst_left && now >= sch->next_burst) {
        send_join(c, true);
        sch->burst_left--;
        sch->next_burst = now + SC_JOIN_BURST_MS / 1000.0;
    }
    if (atomic_exchange(&c->reconnected, false)) {
        connected_url(c, c->nc);   /* another server, maybe */
        send_join(c, true);        /* whose peers may not know us */
    }
    pthread_mutex_lock(&c->lock);
    bool rejoin = c->rejoin && since_s(&c->last_rejoin_mono) * 1000 >= SC_REJOIN_MIN_MS;
    if (rejoin) {
        c->rejoin = false;
        clock_gettime(CLOCK_MONOTONIC, &c->last_rejoin_mono);
    }
    pthread_mutex_unlock(&c->lock);
    if (rejoin)
        send_join(c, true);
    if (now >= sch->next_heartbeat) {
        send_join(c, false);
        sch->next_heartbeat = now + SC_JOIN_EVERY_S;
    }
    if (now >= sch->next_expire) {
        pthread_mutex_lock(&c->lock);
        sc_peers_expire(&c->peers, time(NULL));
        pthread_mutex_unlock(&c->lock);
        sch->next_expire = now + 5;
    }
}

static void watch_connection(sc_cluster_t *c)
{
    natsConnStatus st = natsConnection_Status(c->nc);
    bool connected = st == NATS_CONN_STATUS_CONNECTED;
    pthread_mutex_lock(&c->lock);
    bool was = c->st.connected;
    c->st.connected = connected;
    pthread_mutex_unlock(&c->lock);
    if (was && !connected && st != NATS_CONN_STATUS_CLOSED)
        ibp_log(&c->s->log, IBP_LOG_WARN, "nats: disconnected from %s; reconnecting every %d s",
                c->st.url, SC_NATS_RETRY_MS / 1000);
    if (!was && connected)
        connected_url(c, c->nc);
    if (st == NATS_CONN_STATUS_CLOSED) {   /* nats.c gave up (credentials refused twice) */
        const char *text = NULL;
        natsStatus why = natsConnection_GetLastError(c->nc, &text);
        set_error(c, "connection closed: %s", nats_text(text, why));
        close_connection(c);
    }
}

static void *cluster_thread(void *arg)
{
    sc_cluster_t *c = arg;
    schedule_t sch = {0};
    bool ever = false;
    for (;;) {
        if (!c->nc && connect_once(c) && !ever) {
            ever = true;   /* IBP's start: 3 JOINs 500 ms apart, the heartbeat after 92 s */
            sch.burst_left = SC_JOIN_BURST;
            sch.next_burst = mono_s();
            sch.next_heartbeat = mono_s() + 2 + SC_JOIN_EVERY_S;
        } else if (c->nc && ever && !sch.was_connected) {
            atomic_store(&c->reconnected, true);   /* a new connection after a closed one */
        }
        sch.was_connected = c->nc != NULL;
        if (c->nc) {
            watch_connection(c);
            if (c->nc)
                joins_due(c, &sch);
        }
        if (!nap(c, c->nc ? 50 : SC_NATS_RETRY_MS))
            break;
    }
    close_connection(c);
    return NULL;
}

/* A cluster that used TLS, kept for the exit (sc_cluster_stop): reachable,
 * so not a leak to LeakSanitizer, and never freed under nats.c's threads. */
static sc_cluster_t *parked_at_exit;

/* ---- start, stop, read ---------------------------------------------------------------------- */

static bool split_urls(sc_cluster_t *c, const char *list, ibp_err_t *err)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        return ibp_err_set(err, "out of memory");
    bool ok = true;
    for (char *u = strtok_r(copy, ",", &save); u && ok; u = strtok_r(NULL, ",", &save)) {
        while (*u == ' ')
            u++;
        size_t n = strlen(u);
        while (n && u[n - 1] == ' ')
            u[--n] = '\0';
        if (!n)
            continue;
        if (c->n_urls == SC_NATS_MAX_URLS)
            ok = ibp_err_set(err, "Nats.Url: more than %d servers", SC_NATS_MAX_URLS);
        else if (!(c->urls[c->n_urls++] = strdup(u)))
            ok = ibp_err_set(err, "out of memory");
        else if (!strncmp(u, "tls://", 6))
            c->secure = true;
    }
    free(copy);
    return ok && (c->n_urls || ibp_err_set(err, "Nats.Url: no server in \"%s\"", list));
}

static void cluster_free(sc_cluster_t *c)
{
    for (int i = 0; i < c->n_urls; i++)
        free(c->urls[i]);
    pthread_cond_destroy(&c->wake);
    pthread_cond_destroy(&c->idle);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

bool sc_cluster_start(sc_state_t *s, const ibp_node_config_t *cfg, sc_cluster_t **out,
                      ibp_err_t *err)
{
    *out = NULL;
    if (!cfg->nats_url[0])
        return true;
    if (!cfg->nats_node_id[0])
        return ibp_err_set(err, "Nats.NodeID is empty: a node joins the cluster under its id");
    if (cfg->ca_file[0] && access(cfg->ca_file, R_OK) != 0)
        return ibp_err_set(err, "System.CaFile %s: %s", cfg->ca_file, strerror(errno));
    sc_cluster_t *c = calloc(1, sizeof *c);
    if (!c)
        return ibp_err_set(err, "out of memory");
    c->s = s;
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->wake, &attr);
    pthread_cond_init(&c->idle, &attr);
    pthread_condattr_destroy(&attr);
    c->edit_log.burst = 20;   /* every edit is worth a line, up to a flood */
    /* IBP's node announces itself so (IBP-NODE §8.2). */
    snprintf(c->self.node_id, sizeof c->self.node_id, "%s", cfg->nats_node_id);
    strcpy(c->self.listen_address, "0.0.0.0");
    strcpy(c->self.listen_port, "0");
    strcpy(c->self.node_role, "IBPDns");
    bool fits = snprintf(c->user, sizeof c->user, "%s", cfg->nats_user) < (int)sizeof c->user &&
                snprintf(c->pass, sizeof c->pass, "%s", cfg->nats_pass) < (int)sizeof c->pass &&
                snprintf(c->ca_file, sizeof c->ca_file, "%s", cfg->ca_file) <
                    (int)sizeof c->ca_file;
    if (!fits || !split_urls(c, cfg->nats_url, err)) {
        if (!fits)
            ibp_err_set(err, "Nats.User, Nats.Pass or System.CaFile: too long");
        cluster_free(c);
        return false;
    }
    if (pthread_create(&c->thread, NULL, cluster_thread, c) != 0) {
        cluster_free(c);
        return ibp_err_set(err, "cannot start the cluster thread");
    }
    char servers[2048];
    servers_text(c, servers, sizeof servers);
    ibp_log(&s->log, IBP_LOG_INFO, "nats: joining the cluster as %s through %s%s",
            c->self.node_id, servers, c->secure ? " (TLS)" : "");
    *out = c;
    return true;
}

/* Waits for the message callbacks under way (a getUsage on a slow store
 * takes up to the store's timeouts); false if they outlast SC_STOP_WAIT_S. */
static bool wait_idle(sc_cluster_t *c)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += SC_STOP_WAIT_S;
    pthread_mutex_lock(&c->lock);
    while (c->busy)
        if (pthread_cond_timedwait(&c->idle, &c->lock, &until) == ETIMEDOUT)
            break;
    bool idle = c->busy == 0;
    pthread_mutex_unlock(&c->lock);
    return idle;
}

void sc_cluster_stop(sc_cluster_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;   /* from here callbacks return at once */
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);   /* it closes the connection */
    bool idle = wait_idle(c);
    if (!idle)
        ibp_log(&c->s->log, IBP_LOG_WARN, "nats: a message callback still runs after %d s; "
                "leaving it to the exit", SC_STOP_WAIT_S);
    /* nats.c 3.4's library cleanup frees OpenSSL's compression-method stack,
     * which OpenSSL 3 frees again at exit: a crash at exit after any TLS
     * use. With TLS the library is left to the exit, and c with it (nats.c's
     * callback threads may still hold it); so too when its threads or ours
     * do not end in time. */
    if (!idle || c->secure || nats_CloseAndWait(5000) != NATS_OK) {
        parked_at_exit = c;
        return;
    }
    cluster_free(c);
}

void sc_cluster_stats(sc_cluster_t *c, sc_cluster_stats_t *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->st;
    out->peers = c->peers.n;
    out->peers_active = sc_peers_active(&c->peers, time(NULL));
    out->peers_refused = c->peers.refused;
    pthread_mutex_unlock(&c->lock);
    out->disconnects = atomic_load(&c->disconnects);
    out->reconnects = atomic_load(&c->reconnects);
    out->dropped = atomic_load(&c->dropped);
}

static int by_last_heard(const void *a, const void *b)
{
    const sc_peer_t *x = a, *y = b;
    return (x->last_heard < y->last_heard) - (x->last_heard > y->last_heard);
}

size_t sc_cluster_peers(sc_cluster_t *c, sc_peer_t *out, size_t cap)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->peers.n < cap ? c->peers.n : cap;
    memcpy(out, c->peers.v, n * sizeof *out);
    pthread_mutex_unlock(&c->lock);
    qsort(out, n, sizeof *out, by_last_heard);
    return n;
}

const char *sc_cluster_node_id(const sc_cluster_t *c)
{
    return c->self.node_id;
}
