#include "api.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "acme.h"
#include "cluster.h"
#include "event_json.h"
#include "gojson.h"
#include "harvest.h"
#include "recorder.h"
#include "ibp_explain.h"
#include "ibp_table.h"

/* ---- JSON that cannot fail on content ------------------------------------------ */

/* Bytes as ASCII: printable characters but the backslash stay, the rest
 * become \xNN, so the original bytes can be read back. */
static char *escaped(const char *s, size_t n)
{
    char *out = malloc(4 * n + 1), *o = out;
    for (size_t i = 0; out && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            *o++ = (char)c;
        else
            o += sprintf(o, "\\x%02x", c);
    }
    if (out)
        *o = '\0';
    return out;
}

/* A JSON string of s; when s is not UTF-8 (a path, a URL or an error text
 * that came from outside) its bytes are shown escaped rather than costing
 * the whole response. NULL only when out of memory. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    char *e = escaped(s, strlen(s));
    j = e ? json_string(e) : NULL;
    free(e);
    return j;
}

/* Decoded bytes are valid UTF-8 exactly when jansson takes them. */
static bool utf8_ok(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    json_decref(j);
    return j != NULL;
}

/* json_object_set_new with the same fallback for the key. */
static void set_key(json_t *obj, const char *key, json_t *val)
{
    if (utf8_ok(key, strlen(key))) {
        json_object_set_new(obj, key, val);
        return;
    }
    char *e = escaped(key, strlen(key));
    json_object_set_new(obj, e ? e : "?", val);
    free(e);
}

/* ---- /status ------------------------------------------------------------ */

static json_t *time_or_null(time_t t)
{
    return t ? json_integer((json_int_t)t) : json_null();
}

static json_t *age_or_null(time_t now, time_t t)
{
    return t ? json_integer((json_int_t)(now - t)) : json_null();
}

static json_t *source_json(const sc_source_t *src, time_t now)
{
    json_t *o = json_pack("{s:b, s:o, s:o, s:o, s:o, s:I, s:I}", "configured", src->configured,
                          "source", jstr(src->url), "last_success", time_or_null(src->last_success),
                          "last_change", time_or_null(src->last_change),
                          "failing_since", time_or_null(src->failing_since),
                          "attempts", (json_int_t)src->attempts,
                          "failures", (json_int_t)src->failures);
    json_object_set_new(o, "ok", json_boolean(sc_source_up(src)));
    json_object_set_new(o, "last_error", src->last_error[0] ? jstr(src->last_error) : json_null());
    json_object_set_new(o, "age_seconds", age_or_null(now, src->last_success));
    return o;
}

/* Candidates of one host and family, "skipped" renamed "state". */
static json_t *host_family_json(const ibp_table_t *t, const ibp_tbl_host_t *host, unsigned f)
{
    json_t *cands = ibp_explain_candidates(t, host, f);
    size_t i;
    json_t *c;
    json_array_foreach(cands, i, c) {
        json_t *skip = json_object_get(c, "skipped");
        json_object_set_new(c, "state", json_is_string(skip) ? json_copy(skip)
                                                              : json_string("online"));
        json_object_del(c, "skipped");
    }
    return cands;
}

static json_t *hosts_json(sc_state_t *s, const char *table_path)
{
    ibp_err_t err;
    sc_cached_table_t *ct = table_path[0] ? sc_table_acquire(&s->tables, table_path, &err) : NULL;
    if (!ct)
        return json_null();
    const ibp_table_t *t = &ct->t;
    json_t *hosts = json_object();
    for (uint32_t h = 0; h < t->n[IBP_SEC_HOSTS]; h++) {
        const ibp_tbl_host_t *host = &t->hosts[h];
        json_t *fams = json_object();
        json_object_set_new(fams, "A", host_family_json(t, host, 0));
        json_object_set_new(fams, "AAAA", host_family_json(t, host, 1));
        set_key(hosts, ibp_table_str(t, t->names[host->name].name), fams);
    }
    sc_table_release(&s->tables, ct);
    return hosts;
}

static json_t *table_json(const sc_state_t *s, time_t now)
{
    const sc_publish_t *p = &s->pub;
    json_t *table = json_pack("{s:o, s:I, s:I, s:o, s:o, s:f, s:I, s:I, s:I}",
        "path", jstr(s->table_path), "generation", (json_int_t)p->generation,
        "build_time", (json_int_t)p->build_time, "published_at", time_or_null(p->published_at),
        "age_seconds", age_or_null(now, p->published_at), "last_build_seconds", p->last_build_s,
        "builds_full", (json_int_t)p->builds_full,
        "builds_health_only", (json_int_t)p->builds_health,
        "build_failures", (json_int_t)p->build_failures);
    json_object_set_new(table, "last_error", p->last_error[0] ? jstr(p->last_error) : json_null());
    json_object_set_new(table, "last_build_phases_seconds", json_pack("{s:f, s:f, s:f, s:f}",
        "geo", p->phase_s[SC_PHASE_GEO], "compile", p->phase_s[SC_PHASE_COMPILE],
        "check", p->phase_s[SC_PHASE_CHECK], "write", p->phase_s[SC_PHASE_WRITE]));
    /* What the last build made and how much of it came from the one before. */
    json_object_set_new(table, "bytes", json_integer((json_int_t)p->bytes));
    json_object_set_new(table, "policies", json_integer((json_int_t)p->policies));
    json_object_set_new(table, "trie_nodes", json_integer((json_int_t)p->nodes));
    json_object_set_new(table, "maps", json_pack("{s:I, s:I, s:I, s:I, s:b}",
        "count", (json_int_t)p->maps, "reused", (json_int_t)p->maps_reused,
        "updated", (json_int_t)p->maps_updated, "computed", (json_int_t)p->maps_computed,
        "coarse_trie", p->coarse_trie));
    return table;
}

/* Routing.MaxShiftPercent: the last table weighed and what is held back. */
static json_t *guard_json(const sc_state_t *s, time_t now)
{
    const sc_guard_t *g = &s->guard;
    json_t *j = json_pack("{s:I, s:b, s:o, s:I, s:I}", "max_shift_percent",
                          (json_int_t)g->max_shift_percent, "held", g->held,
                          "held_age_seconds", g->held ? age_or_null(now, g->held_since) : json_null(),
                          "refusals", (json_int_t)g->refusals, "forced", (json_int_t)g->forced);
    json_object_set_new(j, "last_weighed", !g->weighed ? json_null() : json_pack(
        "{s:f, s:f, s:o}", "shift_percent", g->shift_percent, "health_percent", g->health_percent,
        "largest", jstr(g->shift_where)));
    return j;
}

static json_t *health_json(const sc_state_t *s, time_t now)
{
    const sc_source_t *res = &s->src[SC_SRC_RESULTS];
    return json_pack("{s:b, s:o, s:o}", "configured", res->configured,
                     "snapshot_age_seconds", age_or_null(now, res->last_change),
                     "last_poll_age_seconds", age_or_null(now, res->last_success));
}

static json_t *usage_json(sc_usage_t *u, time_t now)
{
    if (!u)
        return json_null();
    const char *kind;
    char where[600];
    sc_usage_store_name(u, &kind, where, sizeof where);   /* [init] fields: no lock */
    pthread_mutex_lock(&u->lock);
    const sc_usage_stats_t *st = &u->stats;
    json_t *j = json_pack(
        "{s:s, s:o, s:o, s:b, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
        " s:f}",
        "store", kind, "where", jstr(where), "counter_dir", jstr(u->dir),
        "ok", st->flushes == 0 || st->last_ok, "last_flush", time_or_null(st->last_flush),
        "last_success", time_or_null(st->last_success),
        "failing_since", time_or_null(st->failing_since),
        "last_error", st->failing_since ? jstr(st->last_error) : json_null(),
        "flushes", (json_int_t)st->flushes, "flush_failures", (json_int_t)st->flush_failures,
        "hits_stored", (json_int_t)st->hits_stored, "rows_stored", (json_int_t)st->rows_stored,
        "hits_in_files", (json_int_t)st->hits_seen, "backlog_hits", (json_int_t)st->backlog,
        "files", (json_int_t)st->files, "files_bad", (json_int_t)st->files_bad,
        "files_removed", (json_int_t)st->files_removed, "last_flush_seconds", st->last_flush_s);
    (void)now;
    pthread_mutex_unlock(&u->lock);
    return j;
}

/* Member events: recording, or only read (s->events NULL). */
static json_t *events_json(sc_events_t *ev)
{
    if (!ev)
        return json_pack("{s:b}", "recording", 0);
    sc_events_stats_t st;
    sc_events_get_stats(ev, &st);
    json_t *j = json_pack(
        "{s:b, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}",
        "recording", 1, "ok", !st.failing_since, "loaded", st.loaded, "open", (json_int_t)st.open,
        "queued", (json_int_t)st.queued, "snapshots", (json_int_t)st.snapshots,
        "opened", (json_int_t)st.opened, "closed", (json_int_t)st.closed,
        "deleted_short", (json_int_t)st.deleted, "failures", (json_int_t)st.failures,
        "put_off", (json_int_t)st.refused, "not_followed", (json_int_t)st.over_cap,
        "foreign_open_rows", (json_int_t)st.foreign_rows,
        "minimum_offline_seconds", (json_int_t)ev->min_offline_s,
        "last_success", time_or_null(st.last_success),
        "failing_since", time_or_null(st.failing_since),
        "last_error", st.failing_since ? jstr(st.last_error) : json_null());
    return j;
}

static json_t *address_json(int af, const uint8_t *addr, bool has)
{
    char text[INET6_ADDRSTRLEN];
    return has && inet_ntop(af, addr, text, sizeof text) ? json_string(text) : json_string("");
}

/* The country overrides in force (caller holds s->lock). */
static json_t *overrides_json(const sc_state_t *s)
{
    json_t *entries = json_array();
    for (size_t i = 0; i < s->ov_live.n && i < SC_API_OVERRIDES_SHOWN; i++) {
        const ibp_override_t *e = &s->ov_live.v[i];
        json_array_append_new(entries, json_pack("{s:o, s:s, s:o, s:o, s:o}", "domain",
                                                 jstr(e->domain), "country", e->cc,
                                                 "memberName", jstr(e->member_name),
                                                 "ipv4", address_json(AF_INET, e->v4, e->has_v4),
                                                 "ipv6", address_json(AF_INET6, e->v6,
                                                                      e->has_v6)));
    }
    return json_pack("{s:I, s:I, s:o, s:o}", "count", (json_int_t)s->ov_live.n,
                     "nats_edits_since_config_change", (json_int_t)s->ov_edits,
                     "changed", time_or_null(s->ov_changed), "entries", entries);
}

static json_t *subject_counts(const uint64_t *v, bool sent)
{
    json_t *o = json_object();
    for (int i = 0; i < SC_SUBJ_COUNT; i++)
        if ((i >= SC_SUBJ_USAGE_REPLY) == sent || (sent && i == SC_SUBJ_CLUSTER))
            json_object_set_new(o, sc_subject_names[i], json_integer((json_int_t)v[i]));
    return o;
}

static json_t *cluster_json(sc_cluster_t *c, time_t now)
{
    if (!c)
        return json_pack("{s:b}", "configured", false);
    sc_cluster_stats_t st;
    sc_cluster_stats(c, &st);
    sc_peer_t *peers = malloc(SC_API_PEERS_SHOWN * sizeof *peers);   /* big: not on the stack */
    size_t n = peers ? sc_cluster_peers(c, peers, SC_API_PEERS_SHOWN) : 0;
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const sc_peer_t *p = &peers[i];
        json_array_append_new(list, json_pack(
            "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b}", "NodeID", jstr(p->info.node_id),
            "NodeRole", jstr(p->info.node_role), "PublicAddress", jstr(p->info.public_address),
            "ListenAddress", jstr(p->info.listen_address),
            "ListenPort", jstr(p->info.listen_port), "first_heard",
            time_or_null(p->first_heard), "last_heard", time_or_null(p->last_heard), "active",
            now - p->last_heard < SC_PEER_ACTIVE_S));
    }
    free(peers);
    json_t *msgs = json_pack("{s:o, s:o, s:o}", "received", subject_counts(st.received, false),
                             "sent", subject_counts(st.sent, true),
                             "bad", subject_counts(st.bad, false));
    return json_pack("{s:b, s:o, s:b, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:o, s:o, s:I, s:I, s:I,"
                     " s:o}",
                     "configured", true, "node_id", jstr(sc_cluster_node_id(c)),
                     "connected", st.connected, "server", st.connected ? jstr(st.url) : json_null(),
                     "connected_since", st.connected ? time_or_null(st.connected_since) : json_null(),
                     "failing_since", time_or_null(st.failing_since),
                     "last_error", st.last_error[0] ? jstr(st.last_error) : json_null(),
                     "connects", (json_int_t)st.connects, "reconnects", (json_int_t)st.reconnects,
                     "joins_sent", (json_int_t)st.joins_sent, "last_join", time_or_null(st.last_join),
                     "messages", msgs, "dropped", (json_int_t)st.dropped,
                     "peers_known", (json_int_t)st.peers, "peers_active", (json_int_t)st.peers_active,
                     "peers", list);
}

char *sc_status_json(sc_state_t *s)
{
    time_t now = time(NULL);
    pthread_mutex_lock(&s->lock);
    json_t *sources = json_object();
    for (int i = 0; i < SC_SRC_COUNT; i++)
        json_object_set_new(sources, sc_src_names[i], source_json(&s->src[i], now));
    json_t *out = json_pack("{s:b, s:I, s:o, s:o, s:o}", "ready", s->ready,
                            "uptime_seconds", (json_int_t)(now - s->started),
                            "table", table_json(s, now), "sources", sources,
                            "health", health_json(s, now));
    json_object_set_new(out, "overrides", overrides_json(s));
    json_object_set_new(out, "guard", guard_json(s, now));
    char path[sizeof s->table_path];
    memcpy(path, s->table_path, sizeof path);
    pthread_mutex_unlock(&s->lock);
    json_object_set_new(out, "hosts", hosts_json(s, path)); /* no lock: it reads a file */
    json_object_set_new(out, "usage", usage_json(s->usage, now));
    json_object_set_new(out, "events", events_json(s->events));
    json_object_set_new(out, "cluster", cluster_json(s->cluster, now));
    char *text = out ? json_dumps(out, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(out);
    return text;
}

/* ---- /metrics --------------------------------------------------------------- */

typedef struct text {
    char *buf;
    size_t len, cap;
    bool oom;
} text_t;

__attribute__((format(printf, 2, 3)))
static void add(text_t *t, const char *fmt, ...)
{
    va_list ap;
    for (int attempt = 0; attempt < 2 && !t->oom; attempt++) {
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if (t->buf && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *buf = realloc(t->buf, cap);
        if (!buf) {
            t->oom = true;
            return;
        }
        t->buf = buf;
        t->cap = cap;
    }
}

static void metric(text_t *t, const char *name, const char *type, const char *help)
{
    add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void source_metrics(text_t *t, const sc_state_t *s, time_t now)
{
    metric(t, "ibpdns_source_up", "gauge", "1 if the last attempt on the input succeeded");
    for (int i = 0; i < SC_SRC_COUNT; i++)
        add(t, "ibpdns_source_up{source=\"%s\"} %d\n", sc_src_names[i],
            sc_source_up(&s->src[i]));
    metric(t, "ibpdns_source_failures_total", "counter", "Failed attempts per input");
    for (int i = 0; i < SC_SRC_COUNT; i++)
        add(t, "ibpdns_source_failures_total{source=\"%s\"} %llu\n", sc_src_names[i],
            (unsigned long long)s->src[i].failures);
    metric(t, "ibpdns_source_last_success_age_seconds", "gauge",
           "Seconds since the input was last fetched or confirmed");
    for (int i = 0; i < SC_SRC_COUNT; i++)
        if (s->src[i].last_success)
            add(t, "ibpdns_source_last_success_age_seconds{source=\"%s\"} %lld\n",
                sc_src_names[i], (long long)(now - s->src[i].last_success));
}

static void subject_metrics(text_t *t, const char *name, const uint64_t *v, bool sent)
{
    for (int i = 0; i < SC_SUBJ_COUNT; i++)
        if ((i >= SC_SUBJ_USAGE_REPLY) == sent || (sent && i == SC_SUBJ_CLUSTER))
            add(t, "%s{subject=\"%s\"} %llu\n", name, sc_subject_names[i],
                (unsigned long long)v[i]);
}

static void cluster_metrics(text_t *t, sc_state_t *s)
{
    metric(t, "ibpdns_nats_configured", "gauge", "1 when Nats.Url is set");
    add(t, "ibpdns_nats_configured %d\n", s->cluster != NULL);
    pthread_mutex_lock(&s->lock);
    size_t overrides = s->ov_live.n;
    uint64_t edits = s->ov_edits;
    pthread_mutex_unlock(&s->lock);
    metric(t, "ibpdns_overrides", "gauge", "Country overrides in force");
    add(t, "ibpdns_overrides %zu\n", overrides);
    metric(t, "ibpdns_override_nats_edits", "gauge", "NATS override edits since the configs changed");
    add(t, "ibpdns_override_nats_edits %llu\n", (unsigned long long)edits);
    if (!s->cluster)
        return;
    sc_cluster_stats_t st;
    sc_cluster_stats(s->cluster, &st);
    metric(t, "ibpdns_nats_connected", "gauge", "1 while connected to a NATS server");
    add(t, "ibpdns_nats_connected %d\n", st.connected);
    metric(t, "ibpdns_nats_reconnects_total", "counter", "Reconnects after a lost connection");
    add(t, "ibpdns_nats_reconnects_total %llu\n", (unsigned long long)st.reconnects);
    metric(t, "ibpdns_nats_disconnects_total", "counter", "Connections lost");
    add(t, "ibpdns_nats_disconnects_total %llu\n", (unsigned long long)st.disconnects);
    metric(t, "ibpdns_nats_messages_received_total", "counter", "Messages received, by subject");
    subject_metrics(t, "ibpdns_nats_messages_received_total", st.received, false);
    metric(t, "ibpdns_nats_messages_sent_total", "counter", "Messages sent, by subject");
    subject_metrics(t, "ibpdns_nats_messages_sent_total", st.sent, true);
    metric(t, "ibpdns_nats_bad_messages_total", "counter", "Messages ignored as malformed, by subject");
    subject_metrics(t, "ibpdns_nats_bad_messages_total", st.bad, false);
    metric(t, "ibpdns_nats_dropped_total", "counter", "Messages nats.c dropped (slow consumer)");
    add(t, "ibpdns_nats_dropped_total %llu\n", (unsigned long long)st.dropped);
    metric(t, "ibpdns_nats_peers", "gauge", "Cluster nodes heard of, and of those heard within 10 min");
    add(t, "ibpdns_nats_peers{state=\"known\"} %zu\n", st.peers);
    add(t, "ibpdns_nats_peers{state=\"active\"} %zu\n", st.peers_active);
}

static void acme_metrics(text_t *t, const struct sc_acme *a)
{
    metric(t, "ibpdns_acme_up", "gauge", "1 when the ACME socket for the coprocesses is open");
    add(t, "ibpdns_acme_up %d\n", a != NULL);
    if (!a)
        return;
    const sc_acme_stats_t *st = sc_acme_stats(a);
    metric(t, "ibpdns_acme_questions_total", "counter",
           "ACME questions from coprocesses, by outcome");
    add(t, "ibpdns_acme_questions_total{outcome=\"value\"} %llu\n",
        (unsigned long long)atomic_load(&st->answered));
    add(t, "ibpdns_acme_questions_total{outcome=\"none\"} %llu\n",
        (unsigned long long)atomic_load(&st->unanswered));
    add(t, "ibpdns_acme_questions_total{outcome=\"refused\"} %llu\n",
        (unsigned long long)atomic_load(&st->refused));
    metric(t, "ibpdns_acme_fetches_total", "counter", "ACME URLs fetched (after retries), by result");
    add(t, "ibpdns_acme_fetches_total{result=\"ok\"} %llu\n",
        (unsigned long long)atomic_load(&st->fetches_ok));
    add(t, "ibpdns_acme_fetches_total{result=\"failed\"} %llu\n",
        (unsigned long long)atomic_load(&st->fetches_failed));
    metric(t, "ibpdns_acme_cache_hits_total", "counter", "ACME questions answered from the cache");
    add(t, "ibpdns_acme_cache_hits_total %llu\n", (unsigned long long)atomic_load(&st->cache_hits));
    metric(t, "ibpdns_acme_prefetches_total", "counter",
           "ACME URLs fetched unasked because a new table brought them");
    add(t, "ibpdns_acme_prefetches_total %llu\n", (unsigned long long)atomic_load(&st->prefetches));
}

static void usage_metrics(text_t *t, sc_usage_t *u)
{
    if (!u)
        return;
    pthread_mutex_lock(&u->lock);
    const sc_usage_stats_t *st = &u->stats;
    metric(t, "ibpdns_usage_store_up", "gauge", "1 when the last usage flush stored everything");
    add(t, "ibpdns_usage_store_up %d\n", st->flushes == 0 || st->last_ok);
    metric(t, "ibpdns_usage_hits_stored_total", "counter", "Hits stored since the sidecar started");
    add(t, "ibpdns_usage_hits_stored_total %llu\n", (unsigned long long)st->hits_stored);
    metric(t, "ibpdns_usage_backlog_hits", "gauge", "Hits counted but not yet stored (last flush)");
    add(t, "ibpdns_usage_backlog_hits %llu\n", (unsigned long long)st->backlog);
    metric(t, "ibpdns_usage_flush_failures_total", "counter", "Usage flushes that stored nothing");
    add(t, "ibpdns_usage_flush_failures_total %llu\n", (unsigned long long)st->flush_failures);
    metric(t, "ibpdns_usage_counter_files", "gauge", "Counter files, by state (last flush)");
    add(t, "ibpdns_usage_counter_files{state=\"all\"} %llu\n", (unsigned long long)st->files);
    add(t, "ibpdns_usage_counter_files{state=\"bad\"} %llu\n", (unsigned long long)st->files_bad);
    pthread_mutex_unlock(&u->lock);
}

static void events_metrics(text_t *t, sc_events_t *ev)
{
    metric(t, "ibpdns_events_recording", "gauge",
           "1 when the sidecar writes member_events from the monitor snapshots");
    add(t, "ibpdns_events_recording %d\n", ev != NULL);
    if (!ev)
        return;
    sc_events_stats_t st;
    sc_events_get_stats(ev, &st);
    metric(t, "ibpdns_events_store_up", "gauge", "1 unless the last member_events write failed");
    add(t, "ibpdns_events_store_up %d\n", !st.failing_since);
    metric(t, "ibpdns_events_open", "gauge", "Member events open, as the recorder knows them");
    add(t, "ibpdns_events_open %llu\n", (unsigned long long)st.open);
    metric(t, "ibpdns_events_queued", "gauge", "Member event writes waiting for the store");
    add(t, "ibpdns_events_queued %llu\n", (unsigned long long)st.queued);
    metric(t, "ibpdns_events_writes_total", "counter", "Member event writes stored, by kind");
    add(t, "ibpdns_events_writes_total{kind=\"open\"} %llu\n", (unsigned long long)st.opened);
    add(t, "ibpdns_events_writes_total{kind=\"close\"} %llu\n", (unsigned long long)st.closed);
    add(t, "ibpdns_events_writes_total{kind=\"delete_short\"} %llu\n",
        (unsigned long long)st.deleted);
    metric(t, "ibpdns_events_write_failures_total", "counter", "Member event batches that failed");
    add(t, "ibpdns_events_write_failures_total %llu\n", (unsigned long long)st.failures);
}

char *sc_metrics_text(sc_state_t *s)
{
    text_t t = {0};
    time_t now = time(NULL);
    pthread_mutex_lock(&s->lock);
    const sc_publish_t *p = &s->pub;
    metric(&t, "ibpdns_table_generation", "gauge", "Generation of the table in place");
    add(&t, "ibpdns_table_generation %llu\n", (unsigned long long)p->generation);
    metric(&t, "ibpdns_table_age_seconds", "gauge", "Seconds since the table in place was published");
    add(&t, "ibpdns_table_age_seconds %lld\n", p->published_at ? (long long)(now - p->published_at) : -1LL);
    metric(&t, "ibpdns_table_builds_total", "counter", "Tables published, by whether MaxMind was walked");
    add(&t, "ibpdns_table_builds_total{kind=\"full\"} %llu\n", (unsigned long long)p->builds_full);
    add(&t, "ibpdns_table_builds_total{kind=\"reuse_geo\"} %llu\n", (unsigned long long)p->builds_health);
    metric(&t, "ibpdns_table_build_failures_total", "counter", "Builds that failed (the old table stayed)");
    add(&t, "ibpdns_table_build_failures_total %llu\n", (unsigned long long)p->build_failures);
    metric(&t, "ibpdns_table_last_build_seconds", "gauge", "Wall time of the last build");
    add(&t, "ibpdns_table_last_build_seconds %.6f\n", p->last_build_s);
    metric(&t, "ibpdns_table_bytes", "gauge", "Size of the table in place");
    add(&t, "ibpdns_table_bytes %zu\n", p->bytes);
    const sc_guard_t *g = &s->guard;
    metric(&t, "ibpdns_guard_held", "gauge",
           "1 while a table is held back by Routing.MaxShiftPercent (the old one stays)");
    add(&t, "ibpdns_guard_held %d\n", g->held ? 1 : 0);
    metric(&t, "ibpdns_guard_refusals_total", "counter", "Tables the guard held back");
    add(&t, "ibpdns_guard_refusals_total %llu\n", (unsigned long long)g->refusals);
    metric(&t, "ibpdns_guard_forced_total", "counter",
           "Tables over the limit published by POST /publish?force=1");
    add(&t, "ibpdns_guard_forced_total %llu\n", (unsigned long long)g->forced);
    metric(&t, "ibpdns_guard_shift_percent", "gauge", "Largest share of a host's located networks "
           "the last table weighed moves for a reason other than health");
    add(&t, "ibpdns_guard_shift_percent %.3f\n", g->weighed ? g->shift_percent : 0.0);
    source_metrics(&t, s, now);
    metric(&t, "ibpdns_health_snapshot_age_seconds", "gauge", "Seconds since the health snapshot last changed");
    const sc_source_t *res = &s->src[SC_SRC_RESULTS];
    add(&t, "ibpdns_health_snapshot_age_seconds %lld\n",
        res->last_change ? (long long)(now - res->last_change) : -1LL);
    metric(&t, "ibpdns_ready", "gauge", "1 once a table is in place");
    add(&t, "ibpdns_ready %d\n", s->ready);
    pthread_mutex_unlock(&s->lock);
    usage_metrics(&t, s->usage);
    events_metrics(&t, s->events);
    acme_metrics(&t, s->acme);
    cluster_metrics(&t, s);
    if (t.oom) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}

/* ---- /route ---------------------------------------------------------------- */

typedef struct route_args {
    char name[SC_API_NAME_MAX + 1], ip[SC_API_ADDR_MAX + 1], ecs[SC_API_ADDR_MAX + 1];
    bool has_ecs;
    unsigned family;
    ibp_client_t client;
} route_args_t;

/* The argument key as a C string in out (cap bytes): *present tells whether
 * it was given at all. A value with a NUL (MHD decodes %00 in place), over
 * cap - 1 bytes, not UTF-8 or empty is an error naming key and the fault;
 * the value itself is never echoed. */
static bool arg_text(const sc_api_request_t *rq, const char *key, char *out, size_t cap,
                     bool *present, ibp_err_t *err)
{
    const char *v = NULL;
    size_t n = 0;
    out[0] = '\0';
    *present = rq->arg && rq->arg(rq->arg_ctx, key, &v, &n);
    if (!*present)
        return true;
    if (!v || n == 0)
        return ibp_err_set(err, "%s: empty", key);
    if (memchr(v, '\0', n))
        return ibp_err_set(err, "%s: contains a NUL byte (%%00)", key);
    if (n >= cap)
        return ibp_err_set(err, "%s: longer than %zu bytes", key, cap - 1);
    if (!utf8_ok(v, n))
        return ibp_err_set(err, "%s: not valid UTF-8", key);
    memcpy(out, v, n);
    out[n] = '\0';
    return true;
}

static bool required(const sc_api_request_t *rq, const char *key, char *out, size_t cap,
                     ibp_err_t *err)
{
    bool present;
    if (!arg_text(rq, key, out, cap, &present, err))
        return false;
    if (!present)
        return ibp_err_set(err, "%s: required (/route?name=NAME&ip=IP[&ecs=PREFIX][&type=AAAA])",
                           key);
    return true;
}

static bool route_type(const sc_api_request_t *rq, unsigned *family, ibp_err_t *err)
{
    char type[8];
    bool present;
    *family = 0;
    if (!arg_text(rq, "type", type, sizeof type, &present, err) ||
        (present && strcasecmp(type, "A") && strcasecmp(type, "AAAA")))
        return ibp_err_set(err, "type: must be A or AAAA");
    *family = present && !strcasecmp(type, "AAAA");
    return true;
}

static bool route_parse(const sc_api_request_t *rq, route_args_t *a, ibp_err_t *err)
{
    if (!required(rq, "name", a->name, sizeof a->name, err) ||
        !required(rq, "ip", a->ip, sizeof a->ip, err) ||
        !arg_text(rq, "ecs", a->ecs, sizeof a->ecs, &a->has_ecs, err) ||
        !route_type(rq, &a->family, err))
        return false;
    if (!ibp_explain_client(a->ip, NULL, &a->client))
        return ibp_err_set(err, "ip: not an IP address");
    if (a->has_ecs && !ibp_explain_client(a->ip, a->ecs, &a->client))
        return ibp_err_set(err, "ecs: not an address prefix (ADDRESS/LENGTH)");
    return true;
}

static json_t *error_json(const char *msg)
{
    return json_pack("{s:o}", "error", jstr(msg));
}

/* The table in place (NULL: err) and the City database's path, as the
 * config thread last set them. */
static sc_cached_table_t *table_and_mmdb(sc_state_t *s, char mmdb[sizeof s->mmdb_path],
                                         ibp_err_t *err)
{
    char path[sizeof s->table_path];
    pthread_mutex_lock(&s->lock);
    memcpy(path, s->table_path, sizeof path);
    memcpy(mmdb, s->mmdb_path, sizeof s->mmdb_path);
    pthread_mutex_unlock(&s->lock);
    return sc_table_acquire(&s->tables, path, err);
}

static json_t *route_json(sc_state_t *s, const sc_api_request_t *rq, unsigned *status)
{
    route_args_t a;
    ibp_err_t err;
    *status = MHD_HTTP_BAD_REQUEST;
    if (!route_parse(rq, &a, &err))
        return error_json(err.msg);
    char mmdb[sizeof s->mmdb_path];
    sc_cached_table_t *ct = table_and_mmdb(s, mmdb, &err);
    if (!ct) {
        *status = MHD_HTTP_SERVICE_UNAVAILABLE;
        return error_json(err.msg);
    }
    ibp_geo_locator_t *loc = NULL;
    if (mmdb[0] && !ibp_geo_locator_open(mmdb, &loc, &err))
        loc = NULL;   /* without it: no locations, the same answers */
    json_t *out = ibp_explain_lookup(&ct->t, a.name, a.family, a.ip, a.has_ecs ? a.ecs : NULL,
                                     &a.client, loc, NULL);
    ibp_geo_locator_close(loc);
    sc_table_release(&s->tables, ct);
    *status = MHD_HTTP_OK;
    return out;
}

/* ---- one request ------------------------------------------------------------- */

/* The answer when even an error could not be encoded (out of memory). */
static const char last_resort[] =
    "{\"error\": \"internal error: the response could not be built\"}";

static void set_text(sc_api_response_t *out, unsigned status, char *text, const char *type)
{
    if (!text) {
        *out = (sc_api_response_t){.status = MHD_HTTP_INTERNAL_SERVER_ERROR,
                                   .body = (char *)last_resort, .len = sizeof last_resort - 1,
                                   .content_type = "application/json", .body_static = true};
        return;
    }
    *out = (sc_api_response_t){.status = status, .body = text, .len = strlen(text),
                               .content_type = type};
}

/* Takes j (NULL: a builder failed, which answers 500). */
static void set_json(sc_api_response_t *out, unsigned status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    set_text(out, status, text, "application/json");
}

static void get_status(sc_state_t *s, const sc_api_request_t *rq, sc_api_response_t *out)
{
    (void)rq;
    set_text(out, MHD_HTTP_OK, sc_status_json(s), "application/json");
}

static void get_metrics(sc_state_t *s, const sc_api_request_t *rq, sc_api_response_t *out)
{
    (void)rq;
    set_text(out, MHD_HTTP_OK, sc_metrics_text(s), "text/plain; version=0.0.4");
}

static void get_route(sc_state_t *s, const sc_api_request_t *rq, sc_api_response_t *out)
{
    unsigned status;
    json_t *j = route_json(s, rq, &status);
    set_json(out, status, j);
}

/* ---- /process and /usage ---------------------------------------------------- */

static void today_utc(char out[11])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

/* IBP-NODE §7.4: a synchronous flush, then IBP's body, whose date is only
 * echoed (every buffered date is flushed). */
static void get_process(sc_state_t *s, const sc_api_request_t *rq, sc_api_response_t *out)
{
    char date[65], msg[128];
    bool present;
    ibp_err_t err;
    if (!arg_text(rq, "date", date, sizeof date, &present, &err)) {
        set_json(out, MHD_HTTP_BAD_REQUEST, error_json(err.msg));
        return;
    }
    if (!present)
        today_utc(date);
    if (!s->usage) {
        set_json(out, MHD_HTTP_SERVICE_UNAVAILABLE,
                 error_json("usage accounting is not running"));
        return;
    }
    bool stored = sc_usage_flush_now(s->usage, SC_API_FLUSH_WAIT_S);
    snprintf(msg, sizeof msg, "Usage processing triggered for %s", date);
    json_t *j = json_pack("{s:o, s:s}", "message", jstr(msg), "status", "success");
    /* IBP answers success whatever the store did; the truth is in /status. */
    if (j && !stored)
        json_object_set_new(j, "stored", json_false());
    set_json(out, MHD_HTTP_OK, j);
}

typedef struct usage_out {
    json_t *records;
    size_t n;
} usage_out_t;

static bool usage_record(void *ctx, const sc_usage_row_t *r)
{
    usage_out_t *o = ctx;
    if (o->n++ >= SC_API_USAGE_MAX_RECORDS)
        return false;
    char date[32];
    snprintf(date, sizeof date, "%sT00:00:00Z", r->date);   /* IBP's driver's format */
    json_t *rec = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:b}",
                            "nodeid", "", "date", date, "domain", jstr(r->domain),
                            "memberName", jstr(r->member), "countryCode", jstr(r->country_code),
                            "asn", jstr(r->asn), "networkName", jstr(r->network_name),
                            "countryName", jstr(r->country_name), "hits", (json_int_t)r->hits,
                            "isIPv6", r->is_ipv6);
    return rec && json_array_append_new(o->records, rec) == 0;
}

static bool usage_args(const sc_api_request_t *rq, char args[5][SC_API_NAME_MAX + 1],
                       ibp_err_t *err)
{
    static const char *const keys[] = {"start", "end", "domain", "member", "country"};
    for (int i = 0; i < 5; i++) {
        bool present;
        if (!arg_text(rq, keys[i], args[i], SC_API_NAME_MAX + 1, &present, err))
            return false;
        if (!present && i < 2)
            today_utc(args[i]);   /* ours: no dates means today */
    }
    return true;
}

/* getUsage's records (IBP-NODE §8.2) from the store, with its rules: start
 * after end is an error, a date not YYYY-MM-DD an empty list. */
static void get_usage(sc_state_t *s, const sc_api_request_t *rq, sc_api_response_t *out)
{
    char a[5][SC_API_NAME_MAX + 1];
    ibp_err_t err = {{0}};
    if (!usage_args(rq, a, &err)) {
        set_json(out, MHD_HTTP_BAD_REQUEST, error_json(err.msg));
        return;
    }
    if (!s->usage) {
        set_json(out, MHD_HTTP_SERVICE_UNAVAILABLE,
                 error_json("usage accounting is not running"));
        return;
    }
    usage_out_t o = {.records = json_array()};
    unsigned status = MHD_HTTP_OK;
    const char *error = NULL;
    if (strcmp(a[0], a[1]) > 0) {
        error = "StartDate must be before or equal to EndDate";
    } else if (sc_go_date_ok(a[0]) && sc_go_date_ok(a[1])) {   /* else [], as NATS getUsage */
        sc_usage_query_t q = {a[0], a[1], a[2], a[3], a[4]};
        if (!sc_usage_query(s->usage, &q, usage_record, &o, &err)) {
            bool cut = o.n > SC_API_USAGE_MAX_RECORDS;
            error = cut ? "more records than one answer holds: narrow the query" : err.msg;
            status = cut ? MHD_HTTP_OK : MHD_HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    json_t *j = json_pack("{s:o, s:o}", "nodeID", jstr(s->usage->node_id), "usageRecords",
                          o.records);
    if (j && error)
        json_object_set_new(j, "error", jstr(error));
    set_json(out, status, j);
}

/* ---- /events (IBP's getMemberEvents, IBP-NODE §7.5) -------------------------------- */

typedef struct events_out {
    sc_buf_t b;
    size_t n;
} events_out_t;

static bool event_record(void *ctx, const sc_event_row_t *r)
{
    events_out_t *o = ctx;
    if (o->n++ >= IBP_EVENTS_ANSWER_MAX || o->b.len > IBP_EVENTS_ANSWER_BYTES || o->b.oom)
        return false;
    sc_buf_puts(&o->b, o->n > 1 ? "," : "[");
    sc_event_json(&o->b, r);
    return true;
}

/* IBP's {"result": "..."} error body. */
static void set_result(sc_api_response_t *out, unsigned status, const char *msg)
{
    sc_buf_t b = {0};
    sc_event_result_json(&b, msg);
    set_text(out, status, b.oom ? (sc_buf_free(&b), NULL) : b.p, "application/json");
}

/* start and end as sent ("" when absent: IBP's defaults). */
static void raw_arg(const sc_api_request_t *rq, const char *key, const char **v, size_t *n)
{
    *v = "";
    *n = 0;
    if (!rq->arg || !rq->arg(rq->arg_ctx, key, v, n) || !*v) {
        *v = "";
        *n = 0;
    }
}

/* member, domain: as the rest of the API's arguments; absent is "" (IBP
 * then matches member_name = '', which no event has). */
static bool name_arg(const sc_api_request_t *rq, const char *key, char *out, ibp_err_t *err)
{
    bool present;
    const char *v;
    size_t n;
    if (rq->arg && rq->arg(rq->arg_ctx, key, &v, &n) && (!v || n == 0)) {
        out[0] = '\0';   /* "member=": empty, as absent */
        return true;
    }
    return arg_text(rq, key, out, SC_API_EVENT_ARG_MAX + 1, &present, err);
}

static void get_events(sc_state_t *s, const sc_api_request_t *rq, sc_api_response_t *out)
{
    char member[SC_API_EVENT_ARG_MAX + 1], domain[SC_API_EVENT_ARG_MAX + 1];
    ibp_err_t err = {{0}};
    if (!name_arg(rq, "member", member, &err) || !name_arg(rq, "domain", domain, &err)) {
        set_json(out, MHD_HTTP_BAD_REQUEST, error_json(err.msg));
        return;
    }
    const char *start, *end;
    size_t start_n, end_n;
    raw_arg(rq, "start", &start, &start_n);
    raw_arg(rq, "end", &end, &end_n);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    sc_event_query_t q = {.member = member, .domain = domain};
    sc_events_window_rc_t rc = sc_events_window(start, start_n, end, end_n,
                                                (sc_ts_t){now.tv_sec, (int32_t)now.tv_nsec},
                                                &q.start, &q.end);
    if (rc != SC_EVENTS_WINDOW_OK) {
        set_result(out, MHD_HTTP_BAD_REQUEST,
                   rc == SC_EVENTS_BAD_END ? "invalid endTime" : "invalid startTime");
        return;
    }
    if (!s->usage) {
        set_json(out, MHD_HTTP_SERVICE_UNAVAILABLE, error_json("no store is open"));
        return;
    }
    events_out_t o = {0};
    if (!sc_usage_events_query(s->usage, &q, event_record, &o, &err)) {
        bool cut = o.n > IBP_EVENTS_ANSWER_MAX || o.b.len > IBP_EVENTS_ANSWER_BYTES;
        sc_buf_free(&o.b);
        if (cut) {
            char msg[160];
            snprintf(msg, sizeof msg, "more than %d events or %d MiB match: narrow the time "
                     "range", IBP_EVENTS_ANSWER_MAX, IBP_EVENTS_ANSWER_BYTES >> 20);
            set_result(out, MHD_HTTP_BAD_REQUEST, msg);
        } else {
            set_result(out, MHD_HTTP_INTERNAL_SERVER_ERROR, err.msg);
        }
        return;
    }
    sc_buf_puts(&o.b, o.n ? "]" : "[]");
    set_text(out, MHD_HTTP_OK, o.b.oom ? (sc_buf_free(&o.b), NULL) : o.b.p, "application/json");
}

/* GET /map.svg?host=NAME[&type=AAAA]: who serves where, drawn
 * (ibp_world_map.h); kept until the table or the database changes. */
static void get_map(sc_state_t *s, const sc_api_request_t *rq, sc_api_response_t *out)
{
    char host[IBP_NAME_MAX + 1], type[8];
    bool has_host, has_type;
    ibp_err_t err;
    if (!arg_text(rq, "host", host, sizeof host, &has_host, &err) ||
        !arg_text(rq, "type", type, sizeof type, &has_type, &err)) {
        set_json(out, MHD_HTTP_BAD_REQUEST, error_json(err.msg));
        return;
    }
    if (!has_host || (has_type && strcmp(type, "A") && strcmp(type, "AAAA"))) {
        set_json(out, MHD_HTTP_BAD_REQUEST,
                 error_json(!has_host ? "host: required" : "type: A or AAAA"));
        return;
    }
    char mmdb[sizeof s->mmdb_path];
    sc_cached_table_t *ct = table_and_mmdb(s, mmdb, &err);
    if (!ct || !mmdb[0]) {
        set_json(out, MHD_HTTP_SERVICE_UNAVAILABLE,
                 error_json(ct ? "no MaxMind database to place the networks by" : err.msg));
        if (ct)
            sc_table_release(&s->tables, ct);
        return;
    }
    unsigned family = has_type && !strcmp(type, "AAAA");
    const ibp_tbl_name_t *nm = ibp_table_find(&ct->t, host, strlen(host));
    if (!nm || nm->host >= ct->t.n[IBP_SEC_HOSTS] ||
        ct->t.hosts[nm->host].policy[family] == IBP_TBL_NONE) {
        sc_table_release(&s->tables, ct);
        char msg[IBP_NAME_MAX + 64];
        snprintf(msg, sizeof msg, "host: %s has no %s answers in the table in place", host,
                 family ? "AAAA" : "A");
        set_json(out, MHD_HTTP_NOT_FOUND, error_json(msg));
        return;
    }
    char *svg;
    size_t len;
    sc_map_state_t st = sc_map_get(&s->maps, &s->tables, ct, mmdb, host, family, &svg, &len, &err);
    if (st != SC_MAP_READY) {
        char msg[IBP_ERR_MAX + 40];
        snprintf(msg, sizeof msg, st == SC_MAP_PENDING
                 ? "the map is being drawn: retry in a second"
                 : "the map could not be drawn: %s", err.msg);
        set_json(out, MHD_HTTP_SERVICE_UNAVAILABLE, error_json(msg));
        return;
    }
    set_text(out, MHD_HTTP_OK, svg, "image/svg+xml");
}

/* Routing.MaxShiftPercent: builds at once; force=1 also publishes a table
 * the guard holds back. The build runs after the answer: /status tells. */
static void post_publish(sc_state_t *s, const sc_api_request_t *rq, sc_api_response_t *out)
{
    char force[8];
    bool present;
    ibp_err_t err;
    if (!arg_text(rq, "force", force, sizeof force, &present, &err)) {
        set_json(out, MHD_HTTP_BAD_REQUEST, error_json(err.msg));
        return;
    }
    if (present && strcmp(force, "1") && strcmp(force, "0")) {
        set_json(out, MHD_HTTP_BAD_REQUEST, error_json("force: 1 or 0"));
        return;
    }
    bool forced = present && !strcmp(force, "1");
    pthread_mutex_lock(&s->lock);
    bool held = s->guard.held;
    s->publish_now = true;
    s->force_publish |= forced;
    sc_state_kick(s);
    pthread_mutex_unlock(&s->lock);
    const char *msg = !forced ? "a build is triggered"
                      : held  ? "the table held back is published: a build is triggered"
                              : "nothing is held back: a build is triggered";
    set_json(out, MHD_HTTP_ACCEPTED, json_pack("{s:s, s:s, s:b}", "status", "success",
                                               "message", msg, "held", held));
}

typedef void (*get_fn)(sc_state_t *, const sc_api_request_t *, sc_api_response_t *);

static const struct endpoint {
    const char *path;
    get_fn get;            /* NULL: not implemented yet (any method) */
    bool post;             /* POST as well as GET */
    bool post_only;        /* it changes something: POST alone */
    bool store;            /* it waits on the usage store */
} endpoints[] = {
    {"/status", get_status, false, false, false}, {"/metrics", get_metrics, false, false, false},
    {"/route", get_route, false, false, false}, {"/process", get_process, true, false, true},
    {"/usage", get_usage, false, false, true}, {"/events", get_events, false, false, true},
    {"/publish", post_publish, true, true, false}, {"/map.svg", get_map, false, false, false},
};

/* e->get, or 503 when the store already holds SC_API_STORE_REQUESTS_MAX
 * requests: a store that hangs must not take the API's last thread. */
static void call_endpoint(sc_state_t *s, const struct endpoint *e, const sc_api_request_t *rq,
                          sc_api_response_t *out)
{
    if (!e->store) {
        e->get(s, rq, out);
        return;
    }
    if (atomic_fetch_add(&s->api_store_requests, 1) >= SC_API_STORE_REQUESTS_MAX)
        set_json(out, MHD_HTTP_SERVICE_UNAVAILABLE,
                 error_json("the usage store is busy with other requests; try again later"));
    else
        e->get(s, rq, out);
    atomic_fetch_sub(&s->api_store_requests, 1);
}

static const struct endpoint *endpoint_of(const char *path, size_t len)
{
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
        if (strlen(endpoints[i].path) == len && !memcmp(endpoints[i].path, path, len))
            return &endpoints[i];
    return NULL;
}

/* Constant time, so the token cannot be guessed byte by byte. */
static bool token_ok(const char *token, const sc_api_request_t *rq)
{
    if (!token || !token[0])
        return true;
    static const char scheme[] = "Bearer ";
    size_t ns = sizeof scheme - 1, n = ns + strlen(token);
    if (!rq->auth || rq->auth_len != n)
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(rq->auth[i] ^ (i < ns ? scheme[i] : token[i - ns]));
    return diff == 0;
}

void sc_api_handle(sc_state_t *s, const char *token, const sc_api_request_t *rq,
                   sc_api_response_t *out)
{
    const struct endpoint *e = endpoint_of(rq->path, rq->path_len);
    if (!token_ok(token, rq))
        set_json(out, MHD_HTTP_UNAUTHORIZED, error_json("a bearer token is required"));
    else if (memchr(rq->path, '\0', rq->path_len))
        set_json(out, MHD_HTTP_BAD_REQUEST, error_json("path: contains a NUL byte (%00)"));
    else if (!e)
        set_json(out, MHD_HTTP_NOT_FOUND, error_json("no such endpoint"));
    else if (!e->get)
        set_json(out, MHD_HTTP_NOT_IMPLEMENTED,
                 error_json("member events are not implemented yet"));
    else if (e->post_only ? strcmp(rq->method, "POST")
                          : strcmp(rq->method, "GET") && strcmp(rq->method, "HEAD") &&
                                !(e->post && !strcmp(rq->method, "POST")))
        set_json(out, MHD_HTTP_METHOD_NOT_ALLOWED,
                 error_json(e->post_only ? "use POST" : e->post ? "use GET or POST" : "use GET"));
    else if (rq->has_body)
        set_json(out, MHD_HTTP_CONTENT_TOO_LARGE, error_json("no endpoint takes a body"));
    else
        call_endpoint(s, e, rq, out);
}

void sc_api_response_free(sc_api_response_t *r)
{
    if (r && !r->body_static)
        free(r->body);
    if (r)
        r->body = NULL;
}

/* ---- connections and their deadline --------------------------------------- */

/* Against slow clients: see daemon_start for why these numbers. */
#define REQUEST_DEADLINE_MS 5000
#define WATCHDOG_PERIOD_MS 250
#define API_MAX_CONNECTIONS 512u
/* Request line and headers must fit (curl and Prometheus send < 1 KB);
 * larger heads get MHD's 414/431 and a close. 512 x 16 KiB = 8 MiB at most. */
#define CONNECTION_MEMORY ((size_t)16 << 10)
/* A response being read too slowly (no progress at all) for this long. */
#define IDLE_TIMEOUT_S 10u

typedef struct conn {
    struct conn *prev, *next;
    int fd;
    bool waiting;          /* for a request head, since since_ms */
    bool evicted;          /* shut down by the watchdog */
    int64_t since_ms;
    size_t path_len;       /* decoded length of the current request's path */
} conn_t;

struct sc_api {
    struct MHD_Daemon *mhd;
    sc_state_t *s;
    char token[256];
    pthread_mutex_t lock;  /* guards conns, stop and every conn's waiting/since */
    pthread_cond_t tick;
    conn_t *conns;
    bool stop;
    pthread_t watchdog;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static conn_t *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void conn_wait(sc_api_t *api, conn_t *k, bool waiting)
{
    pthread_mutex_lock(&api->lock);
    k->waiting = waiting;
    k->since_ms = now_ms();
    pthread_mutex_unlock(&api->lock);
}

static void conn_started(sc_api_t *api, struct MHD_Connection *c, void **ctx)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    conn_t *k = ci ? calloc(1, sizeof *k) : NULL;
    if (!k)
        return; /* out of memory: this one connection goes without a deadline */
    k->fd = ci->connect_fd;
    k->waiting = true;
    k->since_ms = now_ms();
    pthread_mutex_lock(&api->lock);
    k->next = api->conns;
    if (k->next)
        k->next->prev = k;
    api->conns = k;
    pthread_mutex_unlock(&api->lock);
    *ctx = k;
}

/* MHD calls this before it closes the socket, so the watchdog (which holds
 * the lock while it shuts sockets down) never touches a reused descriptor. */
static void conn_closed(sc_api_t *api, void **ctx)
{
    conn_t *k = *ctx;
    if (!k)
        return;
    pthread_mutex_lock(&api->lock);
    if (k->prev)
        k->prev->next = k->next;
    else
        api->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    pthread_mutex_unlock(&api->lock);
    free(k);
    *ctx = NULL;
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **ctx,
                              enum MHD_ConnectionNotificationCode what)
{
    if (what == MHD_CONNECTION_NOTIFY_STARTED)
        conn_started(cls, c, ctx);
    else if (what == MHD_CONNECTION_NOTIFY_CLOSED)
        conn_closed(cls, ctx);
}

/* A request is over (answered or abandoned): the connection may carry
 * another, whose head gets a new deadline. */
static void notify_completed(void *cls, struct MHD_Connection *c, void **req,
                             enum MHD_RequestTerminationCode why)
{
    (void)req;
    (void)why;
    conn_t *k = conn_of(c);
    if (k)
        conn_wait(cls, k, true);
}

static void evict_late(sc_api_t *api, int64_t now)
{
    for (conn_t *k = api->conns; k; k = k->next)
        if (k->waiting && !k->evicted && now - k->since_ms > REQUEST_DEADLINE_MS) {
            shutdown(k->fd, SHUT_RDWR); /* MHD sees the stream end and closes it */
            k->evicted = true;
        }
}

static void *watchdog(void *arg)
{
    sc_api_t *api = arg;
    pthread_mutex_lock(&api->lock);
    while (!api->stop) {
        evict_late(api, now_ms());
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += WATCHDOG_PERIOD_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&api->tick, &api->lock, &ts);
    }
    pthread_mutex_unlock(&api->lock);
    return NULL;
}

/* Half the descriptors the process may open: the rest stays for fetches,
 * tables and the store. */
static unsigned connection_limit(void)
{
    struct rlimit rl;
    rlim_t half = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur / 2 : 512;
    if (half > API_MAX_CONNECTIONS)
        return API_MAX_CONNECTIONS;
    return half < 16 ? 16u : (unsigned)half;
}

/* ---- HTTP plumbing ------------------------------------------------------------ */

/* The length of the raw path once MHD decodes it (MHD_http_unescape: "%XX"
 * with two hex digits is one byte): MHD hands the handler a C string, so a
 * %00 in the path would otherwise pass unseen. Called with the raw URI
 * before MHD decodes it; it returns the request's context, NULL, which
 * handle() then finds in *req. */
static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    conn_t *k = conn_of(c);
    if (!k)
        return NULL;
    size_t n = 0;
    for (const char *p = uri ? uri : ""; *p && *p != '?'; n++)
        p += p[0] == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2]) ? 3 : 1;
    k->path_len = n;
    return NULL;
}

static bool mhd_arg(void *ctx, const char *key, const char **value, size_t *len)
{
    return MHD_lookup_connection_value_n(ctx, MHD_GET_ARGUMENT_KIND, key, strlen(key), value,
                                         len) == MHD_YES;
}

static enum MHD_Result respond(struct MHD_Connection *c, sc_api_response_t *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r->len, r->body, r->body_static ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        sc_api_response_free(r);
        return MHD_NO; /* out of memory: closing is all that is left */
    }
    MHD_add_response_header(resp, "Content-Type", r->content_type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* A request announces a body by either header (RFC 9112 section 6). */
static bool has_body(struct MHD_Connection *c)
{
    const char *len = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_CONTENT_LENGTH);
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) ||
           (len && strcmp(len, "0"));
}

/* MHD calls this once the head is in (*req still NULL), then, for a request
 * without a body, at once again: answered then, the connection stays open
 * for the next request. No endpoint takes a body, so a request with one is
 * answered on the first call: MHD then discards the body and closes,
 * instead of reading megabytes first (or waiting for them). */
static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    static const char auth[] = "Authorization";
    sc_api_t *api = cls;
    conn_t *k = conn_of(c);
    if (*req == NULL) {
        if (k)
            conn_wait(api, k, false); /* the head is complete: no deadline now */
        *req = api;
        if (!has_body(c))
            return MHD_YES;
    }
    size_t path_len = strlen(url);
    if (k && k->path_len > path_len)
        path_len = k->path_len;
    sc_api_request_t rq = {.method = method, .path = url, .path_len = path_len,
                           .arg = mhd_arg, .arg_ctx = c, .has_body = has_body(c)};
    if (MHD_lookup_connection_value_n(c, MHD_HEADER_KIND, auth, sizeof auth - 1, &rq.auth,
                                      &rq.auth_len) != MHD_YES)
        rq.auth = NULL;
    sc_api_response_t r;
    sc_api_handle(api->s, api->token, &rq, &r);
    return respond(c, &r);
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static bool listen_addr(const char *address, const char *port, struct sockaddr_storage *ss,
                        ibp_err_t *err)
{
    char *end;
    long p = strtol(port, &end, 10);
    if (!port[0] || *end || p < 1 || p > 65535)
        return ibp_err_set(err, "DnsApi.ListenPort: '%s' is not a port", port);
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, address, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)p);
    } else if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
    } else {
        return ibp_err_set(err, "DnsApi.ListenAddress: '%s' is not an IP address", address);
    }
    return true;
}

static sc_api_t *api_new(sc_state_t *s, const char *token)
{
    sc_api_t *api = calloc(1, sizeof *api);
    if (!api)
        return NULL;
    api->s = s;
    snprintf(api->token, sizeof api->token, "%s", token);
    pthread_mutex_init(&api->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&api->tick, &attr);
    pthread_condattr_destroy(&attr);
    return api;
}

static void api_free(sc_api_t *api)
{
    pthread_cond_destroy(&api->tick);
    pthread_mutex_destroy(&api->lock);
    free(api);
}

static struct MHD_Daemon *daemon_start(sc_api_t *api, const struct sockaddr_storage *ss)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY |
                     (ss->ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    /* A pool, not one thread: /process waits for its flush and /usage for
     * the store, up to a minute when MariaDB hangs; the other threads keep
     * answering (call_endpoint keeps one free of the store). Every handler
     * reads shared state under its lock (state.h). */
    /* Slow clients. One that sends its request a byte at a time never idles
     * long enough for MHD's idle timeout, and MHD has no deadline for a
     * whole request: 66 of them (64 slots, 10 s timeout) starved every real
     * request for good. Now:
     *  - a request head must be complete REQUEST_DEADLINE_MS (5 s) after the
     *    connection opened or its previous response ended, else the
     *    watchdog shuts the socket down. Real clients (curl, Prometheus,
     *    the tests) send the head in one packet; 5 s leaves a slow link
     *    several round trips and frees a slot within seconds;
     *  - many slots: half the descriptor limit, at most 512 (Debian's and
     *    systemd's soft limit of 1024 gives 512; the rest stays for fetches,
     *    tables, the store). One epoll thread keeps serving complete
     *    requests while hundreds of partial ones trickle, each costing a
     *    descriptor and a 16 KiB pool (8 MiB for all 512 at the very most);
     *  - 16 KiB per connection holds any real head (curl and Prometheus send
     *    < 1 KiB); a larger one gets MHD's 414/431 and a close;
     *  - no per-address limit: on loopback, where the API listens by
     *    default, every client (the slow ones and the operator's curl alike)
     *    is 127.0.0.1.
     * Measured (tests/integration/test_api_faults.py and the same with more
     * clients): with 100 tricklers reconnecting whenever cut, GET /status
     * answered in 6 ms at worst over 20 s (0.2 s under ASan); with 1000,
     * beyond the slots, in 5.2 s at worst (a slot frees at the deadline),
     * and the sidecar's RSS grew by less than 5 MiB. */
    return MHD_start_daemon(flags, 0, NULL, NULL, handle, api,
                            MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)ss,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)SC_API_THREADS,
                            MHD_OPTION_CONNECTION_LIMIT, connection_limit(),
                            MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONNECTION_MEMORY,
                            MHD_OPTION_NOTIFY_CONNECTION, notify_connection, api,
                            MHD_OPTION_NOTIFY_COMPLETED, notify_completed, api,
                            MHD_OPTION_URI_LOG_CALLBACK, uri_seen, api,
                            MHD_OPTION_END);
}

bool sc_api_start(sc_state_t *s, const char *address, const char *port, const char *token,
                  sc_api_t **out, ibp_err_t *err)
{
    *out = NULL;
    struct sockaddr_storage ss;
    if (!listen_addr(address[0] ? address : "127.0.0.1", port[0] ? port : "6100", &ss, err))
        return false;
    if (!token[0] && !is_loopback(&ss))
        return ibp_err_set(err, "DnsApi.ListenAddress %s is not a loopback address: "
                           "DnsApi.BearerToken is required", address);
    if (strlen(token) > 200)
        return ibp_err_set(err, "DnsApi.BearerToken: longer than 200 characters");
    sc_api_t *api = api_new(s, token);
    if (!api)
        return ibp_err_set(err, "out of memory");
    api->mhd = daemon_start(api, &ss);
    if (!api->mhd) {
        api_free(api);
        return ibp_err_set(err, "cannot listen on %s port %s (in use, or not an address of "
                           "this machine)", address[0] ? address : "127.0.0.1", port);
    }
    if (pthread_create(&api->watchdog, NULL, watchdog, api) != 0) {
        MHD_stop_daemon(api->mhd);
        api_free(api);
        return ibp_err_set(err, "cannot start the API's watchdog thread");
    }
    *out = api;
    return true;
}

void sc_api_stop(sc_api_t *api)
{
    if (!api)
        return;
    pthread_mutex_lock(&api->lock);
    api->stop = true;
    pthread_cond_broadcast(&api->tick);
    pthread_mutex_unlock(&api->lock);
    pthread_join(api->watchdog, NULL);
    MHD_stop_daemon(api->mhd); /* closes the connections: conn_closed frees them */
    api_free(api);
}
