/* In-memory models of the IBP inputs (node config, members, services, static
 * records, country overrides). Parsed from JSON by ibp_parse.c; consumed by
 * the compiler. All strings are heap-allocated and owned by the model. */
#ifndef IBP_MODEL_H
#define IBP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"
#include "ibp_limits.h"
#include "ibp_table_format.h"   /* IBP_T_* record types */


typedef struct ibp_member {
    char *key;             /* key in the members object: tie-break order */
    char *name;            /* Details.Name: matched against monitor results */
    bool active;           /* Service.Active != 0 */
    bool override;         /* top-level "Override": never routed to */
    bool has_v4, has_v6;   /* ServiceIPv4 / ServiceIPv6 non-empty */
    uint8_t v4[4];
    uint8_t v6[16];
    double lat, lon;       /* Location.Latitude / Longitude, degrees */
    char **services;       /* union of all ServiceAssignments lists */
    size_t n_services;
} ibp_member_t;

typedef struct ibp_members {
    ibp_member_t *v;       /* sorted by key, plain byte order */
    size_t n;
} ibp_members_t;

typedef struct ibp_service {
    char *key;             /* key in the services object */
    bool active;           /* Configuration.Active != 0 */
    char **hosts;          /* lowercased hosts of every RpcUrls entry, unique */
    size_t n_hosts;
} ibp_service_t;

typedef struct ibp_services {
    ibp_service_t *v;      /* in file order */
    size_t n;
} ibp_services_t;


typedef struct ibp_static_rr {
    char *owner;           /* lowercase, no trailing dot */
    uint16_t type;         /* IBP_T_* */
    uint32_t ttl;
    char *content;         /* validated presentation format, as in the file */
    bool acme;             /* _acme-challenge TXT whose content is a URL */
} ibp_static_rr_t;

typedef struct ibp_statics {
    ibp_static_rr_t *v;    /* in file order */
    size_t n;
} ibp_statics_t;

typedef struct ibp_override {
    char *domain;          /* lowercase, no trailing dot */
    char cc[3];            /* uppercase ISO country code */
    char *member_name;     /* "" when the entry gives addresses */
    bool has_v4, has_v6;
    uint8_t v4[4];
    uint8_t v6[16];
} ibp_override_t;

typedef struct ibp_overrides {
    ibp_override_t *v;
    size_t n;
} ibp_overrides_t;

typedef enum ibp_all_down {
    IBP_ALL_DOWN_NEAREST = 0,   /* fail open: answer the nearest anyway */
    IBP_ALL_DOWN_NONE = 1,      /* IBP's behaviour: no answer */
} ibp_all_down_t;

typedef struct ibp_routing_cfg {
    char *table_path;           /* default /var/lib/ibpdns/routing.tbl */
    unsigned answers_per_family;/* 1..IBP_MAX_ANSWERS, default 1 */
    ibp_all_down_t all_down;
    uint32_t ttl;               /* dynamic A/AAAA TTL, default 30 */
    uint32_t soa_refresh, soa_retry, soa_expire, soa_minimum; /* 3600 600 1209600 3600 */
    uint32_t soa_ttl;           /* TTL of the SOA record itself, default 3600 */
    bool apex_soa_in_any;       /* the apex SOA in ANY answers (BEHAVIOR §2), default false */
    /* Routing.HostApexNs: NS of the zones that service hosts outside every
     * static zone become; normalised, without trailing dot. None given: the
     * NS set the static zones share (the compiler decides). */
    char **host_apex_ns;
    size_t n_host_apex_ns;
    uint32_t acme_budget_ms;    /* Routing.AcmeBudgetMs, default 1000 */
    uint32_t acme_cache_s;      /* Routing.AcmeCacheSeconds, default 5 */
    char *acme_socket;          /* Routing.AcmeSocket: "" = acme.sock beside TablePath */
} ibp_routing_cfg_t;

/* After a successful parse every char * below is non-NULL ("" when absent). */
typedef struct ibp_node_config {
    char *path;                 /* the file it was read from */
    char *log_level;
    int config_reload_s;        /* <= 0 in the file => 30; at most IBP_PERIOD_MAX_S */
    char *static_url, *members_url, *services_url;
    char *maxmind_path, *maxmind_account, *maxmind_key;
    char *maxmind_download_url; /* Maxmind.DownloadUrl: "" = MaxMind's own */
    int maxmind_refresh_s;      /* Maxmind.RefreshSeconds, default 86400, at most IBP_MAXMIND_REFRESH_MAX_S */
    int fetch_timeout_s;        /* System.FetchTimeoutSeconds, default 15 */
    long long fetch_max_bytes;  /* System.FetchMaxBytes, default 16 MiB */
    char *ca_file;              /* System.CaFile: "" = the system's CA store */
    char *api_token;            /* DnsApi.BearerToken: required off loopback */
    char *nats_node_id, *nats_url, *nats_user, *nats_pass;
    char *mysql_host, *mysql_port, *mysql_user, *mysql_pass, *mysql_db;
    char *api_listen_address, *api_listen_port;
    char *monitor_address, *monitor_port;
    int monitor_refresh_s;      /* <= 0 in the file => 30; at most IBP_PERIOD_MAX_S */
    char *storage_path;         /* Storage.Path: SQLite file */
    char *storage_counter_dir;  /* Storage.CounterDir: the coprocesses' counter files */
    int storage_flush_s;        /* Storage.FlushSeconds, default 300 */
    ibp_routing_cfg_t routing;
    ibp_overrides_t overrides;  /* GeoDNSOverrides */
    char **warnings;            /* unknown keys, one message each */
    size_t n_warnings;
} ibp_node_config_t;

/* Parsers. `src` names the input in error messages (usually the file's base
 * name); errors read "src: .json.path: problem". On failure *out is left
 * zeroed and nothing needs freeing. */
IBP_MUST_CHECK
bool ibp_members_parse(const char *buf, size_t len, const char *src,
                       ibp_members_t *out, ibp_err_t *err);
IBP_MUST_CHECK
bool ibp_services_parse(const char *buf, size_t len, const char *src,
                        ibp_services_t *out, ibp_err_t *err);
IBP_MUST_CHECK
bool ibp_statics_parse(const char *buf, size_t len, const char *src,
                       ibp_statics_t *out, ibp_err_t *err);
IBP_MUST_CHECK
bool ibp_node_config_parse(const char *buf, size_t len, const char *src,
                           ibp_node_config_t *out, ibp_err_t *err);

void ibp_members_free(ibp_members_t *m);
void ibp_services_free(ibp_services_t *s);
void ibp_statics_free(ibp_statics_t *s);
void ibp_overrides_free(ibp_overrides_t *o);
void ibp_node_config_free(ibp_node_config_t *c);


#endif
