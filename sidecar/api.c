#include "api.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ibp_explain.h"
#include "ibp_table.h"

struct sc_api {
    struct MHD_Daemon *mhd;
    sc_state_t *s;
    char token[256];
};

/* ---- /status ------------------------------------------------------------ */

static json_t *time_or_null(time_t t)
{
    return t ? json_integer((json_int_t)t) : json_null();
}

static json_t *source_json(const sc_source_t *src, time_t now)
{
    json_t *o = json_pack("{s:b, s:s, s:o, s:o, s:o, s:I, s:I}", "configured", src->configured,
                          "source", src->url, "last_success", time_or_null(src->last_success),
                          "last_change", time_or_null(src->last_change),
                          "failing_since", time_or_null(src->failing_since),
                          "attempts", (json_int_t)src->attempts,
                          "failures", (json_int_t)src->failures);
    json_object_set_new(o, "ok", json_boolean(src->configured && !src->failing_since && src->good));
    json_object_set_new(o, "last_error", src->last_error[0] ? json_string(src->last_error) : json_null());
    json_object_set_new(o, "age_seconds", src->last_success
                        ? json_integer((json_int_t)(now - src->last_success)) : json_null());
    return o;
}

static json_t *hosts_json(const char *table_path)
{
    ibp_table_t t;
    ibp_err_t err;
    if (!table_path[0] || !ibp_table_open(table_path, &t, &err))
        return json_null();
    json_t *hosts = json_object();
    for (uint32_t h = 0; h < t.n[IBP_SEC_HOSTS]; h++) {
        const ibp_tbl_host_t *host = &t.hosts[h];
        json_t *fams = json_object();
        for (unsigned f = 0; f < 2; f++) {
            json_t *cands = ibp_explain_candidates(&t, host, f);
            size_t i;
            json_t *c;
            json_array_foreach(cands, i, c) {
                json_t *skip = json_object_get(c, "skipped");
                json_object_set_new(c, "state", json_is_string(skip) ? json_copy(skip)
                                                                      : json_string("online"));
                json_object_del(c, "skipped");
            }
            json_object_set_new(fams, f ? "AAAA" : "A", cands);
        }
        json_object_set_new(hosts, ibp_table_str(&t, t.names[host->name].name), fams);
    }
    ibp_table_close(&t);
    return hosts;
}

char *sc_status_json(sc_state_t *s)
{
    time_t now = time(NULL);
    pthread_mutex_lock(&s->lock);
    const sc_publish_t *p = &s->pub;
    json_t *table = json_pack("{s:s, s:I, s:I, s:o, s:o, s:f, s:I, s:I, s:I}", "path", s->table_path,
        "generation", (json_int_t)p->generation, "build_time", (json_int_t)p->build_time,
        "published_at", time_or_null(p->published_at),
        "age_seconds", p->published_at ? json_integer((json_int_t)(now - p->published_at)) : json_null(),
        "last_build_seconds", p->last_build_s, "builds_full", (json_int_t)p->builds_full,
        "builds_health_only", (json_int_t)p->builds_health, "build_failures", (json_int_t)p->build_failures);
    json_object_set_new(table, "last_error", p->last_error[0] ? json_string(p->last_error) : json_null());
    json_t *sources = json_object();
    for (int i = 0; i < SC_SRC_COUNT; i++)
        json_object_set_new(sources, sc_src_names[i], source_json(&s->src[i], now));
    const sc_source_t *res = &s->src[SC_SRC_RESULTS];
    json_t *health = json_pack("{s:b, s:o}", "configured", res->configured, "snapshot_age_seconds",
                               res->last_change ? json_integer((json_int_t)(now - res->last_change))
                                                : json_null());
    json_object_set_new(health, "last_poll_age_seconds", res->last_success
                        ? json_integer((json_int_t)(now - res->last_success)) : json_null());
    char path[sizeof s->table_path];
    memcpy(path, s->table_path, sizeof path);
    bool ready = s->ready;
    time_t started = s->started;
    pthread_mutex_unlock(&s->lock);
    json_t *out = json_pack("{s:b, s:I, s:o, s:o, s:o}", "ready", ready,
                            "uptime_seconds", (json_int_t)(now - started), "table", table,
                            "sources", sources, "health", health);
    json_object_set_new(out, "hosts", hosts_json(path));
    char *text = json_dumps(out, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
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
            s->src[i].configured && !s->src[i].failing_since && s->src[i].good != NULL);
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
    source_metrics(&t, s, now);
    metric(&t, "ibpdns_health_snapshot_age_seconds", "gauge", "Seconds since the health snapshot last changed");
    const sc_source_t *res = &s->src[SC_SRC_RESULTS];
    add(&t, "ibpdns_health_snapshot_age_seconds %lld\n",
        res->last_change ? (long long)(now - res->last_change) : -1LL);
    metric(&t, "ibpdns_ready", "gauge", "1 once a table is in place");
    add(&t, "ibpdns_ready %d\n", s->ready);
    pthread_mutex_unlock(&s->lock);
    if (t.oom) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}

/* ---- /route ---------------------------------------------------------------- */

static char *route_json(sc_state_t *s, struct MHD_Connection *c, unsigned *status)
{
    const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name");
    const char *ip = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ip");
    const char *ecs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ecs");
    const char *type = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "type");
    json_t *out = NULL;
    ibp_client_t client;
    *status = MHD_HTTP_BAD_REQUEST;
    if (!name || !ip)
        out = json_pack("{s:s}", "error", "name and ip are required: /route?name=NAME&ip=IP[&ecs=PREFIX][&type=AAAA]");
    else if (type && strcasecmp(type, "A") && strcasecmp(type, "AAAA"))
        out = json_pack("{s:s}", "error", "type must be A or AAAA");
    else if (!ibp_explain_client(ip, ecs, &client))
        out = json_pack("{s:s}", "error", "ip (or ecs) is not an address (prefix)");
    if (out) {
        char *text = json_dumps(out, JSON_INDENT(1));
        json_decref(out);
        return text;
    }
    char path[sizeof s->table_path], mmdb[sizeof s->mmdb_path];
    pthread_mutex_lock(&s->lock);
    memcpy(path, s->table_path, sizeof path);
    memcpy(mmdb, s->mmdb_path, sizeof mmdb);
    pthread_mutex_unlock(&s->lock);
    ibp_table_t t;
    ibp_err_t err;
    if (!ibp_table_open(path, &t, &err)) {
        *status = MHD_HTTP_SERVICE_UNAVAILABLE;
        out = json_pack("{s:s}", "error", err.msg);
    } else {
        ibp_geo_locator_t *loc = NULL;
        if (mmdb[0])
            ibp_geo_locator_open(mmdb, &loc, &err);
        out = ibp_explain_lookup(&t, name, type && !strcasecmp(type, "AAAA"), ip, ecs, &client, loc);
        ibp_geo_locator_close(loc);
        ibp_table_close(&t);
        *status = MHD_HTTP_OK;
    }
    char *text = json_dumps(out, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(out);
    return text;
}

/* ---- HTTP plumbing ------------------------------------------------------------ */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, char *body,
                               const char *type)
{
    if (!body)
        return MHD_NO;
    size_t len = strlen(body);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static char *error_body(const char *msg)
{
    json_t *j = json_pack("{s:s}", "error", msg);
    char *text = json_dumps(j, 0);
    json_decref(j);
    return text;
}

/* Constant time, so the token cannot be guessed byte by byte. */
static bool token_ok(const sc_api_t *api, struct MHD_Connection *c)
{
    if (!api->token[0])
        return true;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    char want[300];
    snprintf(want, sizeof want, "Bearer %s", api->token);
    size_t n = strlen(want);
    if (!auth || strlen(auth) != n)
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(auth[i] ^ want[i]);
    return diff == 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req)
{
    (void)version;
    (void)upload;
    sc_api_t *api = cls;
    if (*req == NULL) {   /* headers only so far: answer once the request is complete */
        *req = api;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;   /* no endpoint takes a body */
        return MHD_YES;
    }
    if (!token_ok(api, c))
        return respond(c, MHD_HTTP_UNAUTHORIZED, error_body("a bearer token is required"),
                       "application/json");
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (get && !strcmp(url, "/status"))
        return respond(c, MHD_HTTP_OK, sc_status_json(api->s), "application/json");
    if (get && !strcmp(url, "/metrics"))
        return respond(c, MHD_HTTP_OK, sc_metrics_text(api->s), "text/plain; version=0.0.4");
    if (get && !strcmp(url, "/route")) {
        unsigned status;
        char *body = route_json(api->s, c, &status);
        return respond(c, status, body, "application/json");
    }
    if (!strcmp(url, "/process") || !strcmp(url, "/events"))
        return respond(c, MHD_HTTP_NOT_IMPLEMENTED,
                       error_body("usage accounting and member events are not implemented yet"),
                       "application/json");
    if (!strcmp(url, "/status") || !strcmp(url, "/metrics") || !strcmp(url, "/route"))
        return respond(c, MHD_HTTP_METHOD_NOT_ALLOWED, error_body("use GET"), "application/json");
    return respond(c, MHD_HTTP_NOT_FOUND, error_body("no such endpoint"), "application/json");
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
    sc_api_t *api = calloc(1, sizeof *api);
    if (!api)
        return ibp_err_set(err, "out of memory");
    api->s = s;
    snprintf(api->token, sizeof api->token, "%s", token);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY |
                     (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    api->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, api,
                                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                MHD_OPTION_CONNECTION_LIMIT, 64u,
                                MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!api->mhd) {
        free(api);
        return ibp_err_set(err, "cannot listen on %s port %s (in use, or not an address of "
                           "this machine)", address[0] ? address : "127.0.0.1", port);
    }
    *out = api;
    return true;
}

void sc_api_stop(sc_api_t *api)
{
    if (!api)
        return;
    MHD_stop_daemon(api->mhd);
    free(api);
}
