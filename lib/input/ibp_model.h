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

/* Routing.Nets (issue 16, gdnsd's `nets`): a CIDR network whose clients
 * go to the listed members first, in list order, or ("auto") by distance
 * as if no supernet listed them. */
typedef struct ibp_net {
    uint8_t addr[16];      /* network start; IPv4 as ::a.b.c.d (v4-compat), as gdnsd stores it */
    uint8_t len;           /* prefix length in the 128-bit space (IPv4: 96 + n) */
    bool is_auto;
    char *text;            /* normalised: "203.0.113.0/24", "2001:db8::/32" */
    char *path;            /* its JSON path in src, for errors: .Routing.Nets["10.0.0.0/8"] */
    char **members;        /* member keys in list order (none for auto) */
    size_t n_members;
} ibp_net_t;

typedef struct ibp_nets {
    ibp_net_t *v;          /* sorted by (addr, len); no two the same network */
    size_t n;
    char *src;             /* the file they were read from ("node.json", "nets.json") */
    uint64_t file_hi, file_lo;  /* XXH3-128 of a nets file's bytes (0 inline) */
} ibp_nets_t;

/* Routing.Map (issue 16, gdnsd's hierarchical `map`); ibp_map.h parses
 * and resolves it. */
#define IBP_MAP_SUBS_MAX 10     /* subdivisions gdnsd reads from a record */
/* continent, country, the subdivisions, city: the levels a map can name */
#define IBP_MAP_LEVELS (2 + IBP_MAP_SUBS_MAX + 1)
#define IBP_MAP_NODES_MAX 100000u
#define IBP_MAP_LIST_MAX 64

typedef enum ibp_map_kind {
    IBP_MAP_AUTO = 0,           /* distance order, as without a map */
    IBP_MAP_LIST = 1,           /* members[] first, in order */
    IBP_MAP_SUB = 2,            /* a deeper map */
} ibp_map_kind_t;

typedef struct ibp_map_node ibp_map_node_t;
struct ibp_map_node {
    ibp_map_kind_t kind;
    uint32_t id;                /* LIST: 1-based, in walk order (the geo classes' map_rule) */
    uint32_t seq;               /* its place among its parent's keys in the file */
    char *key;                  /* as written ("EU", "Munich"; "" at the top) */
    char *path;                 /* its JSON path, for errors: .Routing.Map.EU.DE */
    char *rule;                 /* the keys down to it: "EU/DE" ("" at the top) */
    char **members;             /* LIST: member keys in list order */
    size_t n_members;
    bool skip_level;            /* SUB: the next level of detail is not keyed */
    ibp_map_node_t *kids;       /* SUB: the keys but default and skip_level, sorted
                                   case-insensitively (a lookup is a binary search) */
    size_t n_kids;
    const ibp_map_node_t *dflt; /* SUB: the default in effect (its own, else its parent's);
                                   NULL: none written above, so auto */
    ibp_map_node_t *own_dflt;   /* SUB: its own "default" (owned), or NULL */
    char *dflt_rule;            /* SUB: where dflt was written: "EU/default", "default" */
};

typedef struct ibp_map {
    ibp_map_node_t *root;       /* NULL: no map */
    char *src;                  /* the file it was read from */
    size_t n_nodes;
    size_t n_lists;             /* LIST nodes, ids 1..n_lists */
    char *json;                 /* the object as compact JSON, key order kept: what a table
                                   carries for explanations */
    uint64_t file_hi, file_lo;  /* XXH3-128 of a map file's bytes (0 inline) */
} ibp_map_t;

typedef struct ibp_routing_cfg {
    char *table_path;           /* default /var/lib/ibpdns/routing.tbl */
    unsigned answers_per_family;/* 1..IBP_MAX_ANSWERS, default 1 */
    /* Routing.FailoverSpread, 1..IBP_MAX_ANSWERS, default 1: the clients of
     * a down nearest candidate go to the next this many healthy ones (by a
     * stable hash of their prefix), not all to the next nearest. */
    unsigned failover_spread;
    /* Routing.MaxShiftPercent, 0..100, default 0 (off): the sidecar does not
     * publish a table that moves more than this share of any host's located
     * networks for a reason other than health, until forced. */
    uint32_t max_shift_percent;
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
    ibp_nets_t nets;            /* Routing.Nets given inline, or read from nets_file */
    char *nets_file;            /* Routing.Nets given as a path (relative to the config's
                                   directory): ibp_node_config_load_nets() reads it */
    ibp_map_t map;              /* Routing.Map given inline, or read from map_file; no root:
                                   none */
    char *map_file;             /* Routing.Map given as a path (relative to the config's
                                   directory): ibp_node_config_load_map() reads it */
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
    /* Storage.RecordEvents: the sidecar writes member_events from the
     * monitor snapshots (BEHAVIOR §6a). Absent: yes with SQLite, no with MySQL. */
    bool storage_record_events;
    bool storage_record_events_set;   /* given in the file */
    int minimum_offline_s;      /* System.MinimumOfflineTime: <= 0 or absent => 30 (events only) */
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

/* A Routing side file of cfg (Nets, Map: key names it), relative paths from
 * config_dir, read whole (at most max bytes) into *buf (the caller frees
 * it); path (path_cap bytes) gets where it is and *name its base name, for
 * the parser's errors. Errors name the config and .Routing.<key>. */
IBP_MUST_CHECK
bool ibp_node_config_read_side_file(const ibp_node_config_t *cfg, const char *config_dir,
                                    const char *file, const char *key, size_t max, char *path,
                                    size_t path_cap, const char **name, char **buf, size_t *len,
                                    ibp_err_t *err);
/* Reads cfg->routing.nets_file (if set; relative paths from config_dir)
 * into cfg->routing.nets; its warnings join cfg->warnings. */
IBP_MUST_CHECK
bool ibp_node_config_load_nets(ibp_node_config_t *cfg, const char *config_dir, ibp_err_t *err);
/* The same for cfg->routing.map_file into cfg->routing.map. */
IBP_MUST_CHECK
bool ibp_node_config_load_map(ibp_node_config_t *cfg, const char *config_dir, ibp_err_t *err);
/* The Routing.Nets object at path in src (the config's, or a nets file's). */
IBP_MUST_CHECK
bool ibp_nets_parse(const char *buf, size_t len, const char *src, ibp_nets_t *out,
                    char ***warnings, size_t *n_warnings, ibp_err_t *err);
void ibp_nets_free(ibp_nets_t *n);

void ibp_members_free(ibp_members_t *m);
void ibp_services_free(ibp_services_t *s);
void ibp_statics_free(ibp_statics_t *s);
void ibp_overrides_free(ibp_overrides_t *o);
void ibp_node_config_free(ibp_node_config_t *c);


#endif
