/* The node's own JSON config (IBP-NODE §2.1, BEHAVIOR §1) and its
 * GeoDNSOverrides (IBP-NODE §2.5). */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ibp_dname.h"
#include "ibp_file.h"
#include "ibp_json.h"
#include "ibp_map.h"
#include "ibp_model.h"

#define CFG_MAX_WARNINGS 64    /* a hostile file must not make us log forever */
#define TTL_MAX 2147483647LL   /* RFC 2181 §8 */

/* ---- overrides ------------------------------------------------------------ */

void ibp_overrides_free(ibp_overrides_t *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++) {
        free(o->v[i].domain);
        free(o->v[i].member_name);
    }
    free(o->v);
    *o = (ibp_overrides_t){0};
}

static bool ov_addr(const ibp_jctx_t *c, const json_t *e, const char *path,
                    const char *key, int af, void *dst, bool *has)
{
    const char *s = NULL;
    if (!ibp_jget_string(c, e, path, key, IBP_J_OPTIONAL, &s))
        return false;
    if (!s || !s[0])
        return true;
    if (inet_pton(af, s, dst) != 1) {
        char apath[IBP_JPATH_MAX], q[IBP_JQUOTE_MAX + 8];
        ibp_jpath_key(apath, path, key);
        ibp_json_quote(q, sizeof q, s);
        return ibp_jerr(c, apath, "%s is not an %s address", q,
                        af == AF_INET ? "IPv4" : "IPv6");
    }
    *has = true;
    return true;
}

static bool ov_cc(const ibp_jctx_t *c, const char *path, const char *cc, char out[3])
{
    if (strlen(cc) != 2 || !isalpha((unsigned char)cc[0]) || !isalpha((unsigned char)cc[1])) {
        char q[IBP_JQUOTE_MAX + 8];
        ibp_json_quote(q, sizeof q, cc);
        return ibp_jerr(c, path, "%s is not a two-letter country code", q);
    }
    out[0] = (char)toupper((unsigned char)cc[0]);
    out[1] = (char)toupper((unsigned char)cc[1]);
    out[2] = '\0';
    return true;
}

static bool ov_entry(const ibp_jctx_t *c, const char *path, const char *domain,
                     const char *cc, const json_t *e, ibp_override_t *o)
{
    if (!ov_cc(c, path, cc, o->cc) || !ibp_jval_object(c, path, e))
        return false;
    o->domain = strdup(domain);
    o->member_name = strdup("");
    if (!o->domain || !o->member_name)
        return ibp_jerr(c, path, "out of memory");
    return ibp_jget_strdup(c, e, path, "memberName", IBP_J_OPTIONAL, &o->member_name) &&
           ov_addr(c, e, path, "ipv4", AF_INET, o->v4, &o->has_v4) &&
           ov_addr(c, e, path, "ipv6", AF_INET6, o->v6, &o->has_v6);
}

static bool ov_domain(const ibp_jctx_t *c, const char *dkey, const json_t *ccs,
                      ibp_overrides_t *ov)
{
    char path[IBP_JPATH_MAX], domain[IBP_NAME_MAX + 1], q[IBP_JQUOTE_MAX + 8];
    ibp_err_t e;
    ibp_jpath_key(path, ".GeoDNSOverrides", dkey);
    if (!ibp_name_normalize(dkey, domain, &e)) {
        ibp_json_quote(q, sizeof q, dkey);
        return ibp_jerr(c, path, "%s is not a valid domain: %s", q, e.msg);
    }
    if (json_is_null(ccs))
        return true;
    if (!ibp_jval_object(c, path, ccs))
        return false;
    size_t n = json_object_size(ccs);
    ibp_override_t *v = realloc(ov->v, (ov->n + n + 1) * sizeof *v);
    if (!v)
        return ibp_jerr(c, path, "out of memory");
    ov->v = v;
    const char *cc;
    json_t *entry;
    json_object_foreach((json_t *)ccs, cc, entry) {
        char epath[IBP_JPATH_MAX];
        ibp_jpath_key(epath, path, cc);
        ov->v[ov->n] = (ibp_override_t){0};
        if (!ov_entry(c, epath, domain, cc, entry, &ov->v[ov->n++]))
            return false;
    }
    return true;
}

static int ov_cmp(const void *a, const void *b)
{
    const ibp_override_t *x = a, *y = b;
    int r = strcmp(x->domain, y->domain);
    return r ? r : strcmp(x->cc, y->cc);
}

/* Keys that differ only in case (or a trailing dot) collapse into one entry;
 * IBP keeps whichever its map iteration met last, so we refuse the file. */
static bool ov_unique(const ibp_jctx_t *c, ibp_overrides_t *ov)
{
    if (ov->n > 1)
        qsort(ov->v, ov->n, sizeof *ov->v, ov_cmp);
    for (size_t i = 1; i < ov->n; i++) {
        if (ov_cmp(&ov->v[i - 1], &ov->v[i]))
            continue;
        char q[IBP_JQUOTE_MAX + 8];
        ibp_json_quote(q, sizeof q, ov->v[i].domain);
        return ibp_jerr(c, ".GeoDNSOverrides", "%s/%s is given twice (keys that differ "
                        "only in case or a trailing dot)", q, ov->v[i].cc);
    }
    return true;
}

/* Looked up with the exact spelling, as IBP does (IBP-NODE §2.5). */
static bool cfg_overrides(const ibp_jctx_t *c, const json_t *root, ibp_overrides_t *ov)
{
    const json_t *all = json_object_get(root, "GeoDNSOverrides");
    if (!all || json_is_null(all))
        return true;
    if (!ibp_jval_object(c, ".GeoDNSOverrides", all))
        return false;
    const char *dkey;
    json_t *ccs;
    json_object_foreach((json_t *)all, dkey, ccs) {
        if (!ov_domain(c, dkey, ccs, ov))
            return false;
    }
    return ov_unique(c, ov);
}

/* ---- node config ------------------------------------------------------------ */

typedef struct cfg_ctx {
    const ibp_jctx_t *c;
    ibp_node_config_t *cfg;
    ibp_strv_t warn;
    size_t n_unknown;
} cfg_ctx_t;

typedef struct str_field {
    const char *key;
    size_t off;                /* of a char * in ibp_node_config_t */
    bool strnum;               /* numbers accepted too, kept as text */
} str_field_t;

#define CFG_STR(key, field) {key, offsetof(ibp_node_config_t, field), false}
#define CFG_NUM(key, field) {key, offsetof(ibp_node_config_t, field), true}

static const str_field_t system_strs[] = {CFG_STR("LogLevel", log_level),
                                          CFG_STR("CaFile", ca_file), {0}};
static const str_field_t urls_strs[] = {
    CFG_STR("StaticDNSConfig", static_url), CFG_STR("MembersConfig", members_url),
    CFG_STR("ServicesConfig", services_url), {0}};
/* Account ids are numbers at MaxMind; accept them unquoted as well. */
static const str_field_t maxmind_strs[] = {
    CFG_STR("MaxmindDBPath", maxmind_path), CFG_NUM("AccountID", maxmind_account),
    CFG_STR("LicenseKey", maxmind_key), CFG_STR("DownloadUrl", maxmind_download_url), {0}};
static const str_field_t nats_strs[] = {
    CFG_STR("NodeID", nats_node_id), CFG_STR("Url", nats_url), CFG_STR("User", nats_user),
    CFG_STR("Pass", nats_pass), {0}};
static const str_field_t mysql_strs[] = {
    CFG_STR("Host", mysql_host), CFG_NUM("Port", mysql_port), CFG_STR("User", mysql_user),
    CFG_STR("Pass", mysql_pass), CFG_STR("DB", mysql_db), {0}};
static const str_field_t dnsapi_strs[] = {
    CFG_STR("ListenAddress", api_listen_address), CFG_NUM("ListenPort", api_listen_port),
    CFG_STR("MonitorAddress", monitor_address), CFG_NUM("MonitorPort", monitor_port),
    CFG_STR("BearerToken", api_token), {0}};
static const str_field_t routing_strs[] = {CFG_STR("TablePath", routing.table_path),
                                           CFG_STR("AcmeSocket", routing.acme_socket), {0}};
static const str_field_t storage_strs[] = {CFG_STR("Path", storage_path),
                                           CFG_STR("CounterDir", storage_counter_dir), {0}};

/* Every char * of the config except path, for defaults and freeing. */
static const size_t cfg_str_offs[] = {
    offsetof(ibp_node_config_t, log_level), offsetof(ibp_node_config_t, static_url),
    offsetof(ibp_node_config_t, members_url), offsetof(ibp_node_config_t, services_url),
    offsetof(ibp_node_config_t, maxmind_path), offsetof(ibp_node_config_t, maxmind_account),
    offsetof(ibp_node_config_t, maxmind_key), offsetof(ibp_node_config_t, nats_node_id),
    offsetof(ibp_node_config_t, nats_url), offsetof(ibp_node_config_t, nats_user),
    offsetof(ibp_node_config_t, nats_pass), offsetof(ibp_node_config_t, mysql_host),
    offsetof(ibp_node_config_t, mysql_port), offsetof(ibp_node_config_t, mysql_user),
    offsetof(ibp_node_config_t, mysql_pass), offsetof(ibp_node_config_t, mysql_db),
    offsetof(ibp_node_config_t, api_listen_address),
    offsetof(ibp_node_config_t, api_listen_port),
    offsetof(ibp_node_config_t, monitor_address), offsetof(ibp_node_config_t, monitor_port),
    offsetof(ibp_node_config_t, storage_path), offsetof(ibp_node_config_t, routing.table_path),
    offsetof(ibp_node_config_t, storage_counter_dir),
    offsetof(ibp_node_config_t, maxmind_download_url), offsetof(ibp_node_config_t, ca_file),
    offsetof(ibp_node_config_t, api_token), offsetof(ibp_node_config_t, routing.acme_socket),
    offsetof(ibp_node_config_t, routing.nets_file), offsetof(ibp_node_config_t, routing.map_file),
};

static char **cfg_str(ibp_node_config_t *cfg, size_t off)
{
    return (char **)((char *)cfg + off);
}

static const char *const top_keys[] = {
    "System", "Maxmind", "Nats", "Mysql", "DnsApi", "MonitorApi", "CollatorApi", "MgmtApi",
    "Matrix", "Discord", "CheckWorkers", "Checks", "Routing", "Storage", NULL};
static const char *const system_keys[] = {
    "LogLevel", "ConfigReloadTime", "ConfigUrls", "WorkDir", "CacheSaveTime",
    "MinimumOfflineTime", "FetchTimeoutSeconds", "FetchMaxBytes", "CaFile", NULL};
static const char *const urls_keys[] = {
    "StaticDNSConfig", "MembersConfig", "ServicesConfig", "IaasPricingConfig",
    "ServicesRequestsConfig", "AlertsConfig", NULL};
static const char *const maxmind_keys[] = {"MaxmindDBPath", "AccountID", "LicenseKey",
                                           "DownloadUrl", "RefreshSeconds", NULL};
static const char *const nats_keys[] = {"NodeID", "Url", "User", "Pass", NULL};
static const char *const mysql_keys[] = {"Host", "Port", "User", "Pass", "DB", NULL};
static const char *const dnsapi_keys[] = {
    "ListenAddress", "ListenPort", "MonitorAddress", "MonitorPort", "RefreshIntervalSeconds",
    "AuthKeys", "BearerToken", NULL};
static const char *const routing_keys[] = {
    "TablePath", "AnswersPerFamily", "AllDownPolicy", "Ttl", "SoaRefresh", "SoaRetry",
    "SoaExpire", "SoaMinimum", "SoaTtl", "ApexSoaInAny", "HostApexNs", "AcmeBudgetMs",
    "AcmeCacheSeconds", "AcmeSocket", "FailoverSpread", "Nets", "Map", "MaxShiftPercent", NULL};
static const char *const storage_keys[] = {"Path", "CounterDir", "FlushSeconds",
                                            "RecordEvents", NULL};

static void cfg_warn(cfg_ctx_t *x, const char *path, const char *msg)
{
    if (++x->n_unknown > CFG_MAX_WARNINGS + 1)
        return;
    char line[IBP_ERR_MAX];
    if (x->n_unknown == CFG_MAX_WARNINGS + 1)
        snprintf(line, sizeof line, "%s: more than %d unknown keys, not all listed",
                 x->c->src, CFG_MAX_WARNINGS);
    else
        snprintf(line, sizeof line, "%s: %s: %s", x->c->src, path, msg);
    if (!ibp_strv_push(&x->warn, line))
        return;   /* a warning lost to memory exhaustion is not worth failing the load */
}

static const char *known_key(const char *k, const char *const known[])
{
    for (size_t i = 0; known[i]; i++)
        if (!strcasecmp(k, known[i]))
            return known[i];
    return NULL;
}

/* Reports keys we do not know, and case variants that lose to another key. */
static void cfg_check_keys(cfg_ctx_t *x, const json_t *obj, const char *path,
                           const char *const known[])
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        char kpath[IBP_JPATH_MAX];
        ibp_jpath_key(kpath, path, k);
        if (!path[0] && !strcmp(k, "GeoDNSOverrides"))
            continue;
        const char *match = known_key(k, known);
        if (!match) {
            cfg_warn(x, kpath, "unknown key (ignored)");
        } else if (ibp_json_get(obj, match) != v) {
            char msg[IBP_JPATH_MAX + 32], mpath[IBP_JPATH_MAX];
            ibp_jpath_key(mpath, path, match);
            snprintf(msg, sizeof msg, "duplicate of %s (ignored)", mpath);
            cfg_warn(x, kpath, msg);
        }
    }
}

static bool cfg_strings(cfg_ctx_t *x, const json_t *obj, const char *path,
                        const str_field_t *f)
{
    for (; f->key; f++) {
        char **dst = cfg_str(x->cfg, f->off);
        bool ok = f->strnum
                      ? ibp_jget_strnum(x->c, obj, path, f->key, IBP_J_OPTIONAL, dst)
                      : ibp_jget_strdup(x->c, obj, path, f->key, IBP_J_OPTIONAL, dst);
        if (!ok)
            return false;
    }
    return true;
}

/* A known section: its strings, plus a check of its keys. *out (optional)
 * receives the object so the caller can read its other fields. */
static bool cfg_section(cfg_ctx_t *x, const json_t *parent, const char *ppath,
                        const char *key, const char *const known[],
                        const str_field_t *strs, json_t **out)
{
    json_t *obj = NULL;
    char path[IBP_JPATH_MAX];
    ibp_jpath_key(path, ppath, key);
    if (!ibp_jget_object(x->c, parent, ppath, key, IBP_J_OPTIONAL, &obj))
        return false;
    if (out)
        *out = obj;
    if (!obj)
        return true;
    cfg_check_keys(x, obj, path, known);
    return cfg_strings(x, obj, path, strs);
}

/* Seconds where IBP treats <= 0 (and absence) as 30. */
static bool cfg_period(cfg_ctx_t *x, const json_t *obj, const char *path,
                       const char *key, int *out)
{
    long long v = 0;
    if (!ibp_jget_int(x->c, obj, path, key, IBP_J_OPTIONAL, LLONG_MIN, LLONG_MAX, &v))
        return false;
    if (v > IBP_PERIOD_MAX_S) {
        char kpath[IBP_JPATH_MAX];
        ibp_jpath_key(kpath, path, key);
        return ibp_jerr(x->c, kpath, "%lld is out of range: 1..%d seconds (0 or less means 30)",
                        v, IBP_PERIOD_MAX_S);
    }
    *out = v > 0 ? (int)v : IBP_PERIOD_DEFAULT_S;
    return true;
}

static bool cfg_u32(cfg_ctx_t *x, const json_t *obj, const char *key, long long min,
                    long long max, uint32_t def, uint32_t *out)
{
    long long v = def;
    if (!ibp_jget_int(x->c, obj, ".Routing", key, IBP_J_OPTIONAL, min, max, &v))
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool cfg_all_down(cfg_ctx_t *x, const json_t *r, ibp_all_down_t *out)
{
    const char *s = NULL;
    if (!ibp_jget_string(x->c, r, ".Routing", "AllDownPolicy", IBP_J_OPTIONAL, &s))
        return false;
    if (!s || !strcasecmp(s, "nearest")) {
        *out = IBP_ALL_DOWN_NEAREST;
        return true;
    }
    if (!strcasecmp(s, "none")) {
        *out = IBP_ALL_DOWN_NONE;
        return true;
    }
    char q[IBP_JQUOTE_MAX + 8];
    ibp_json_quote(q, sizeof q, s);
    return ibp_jerr(x->c, ".Routing.AllDownPolicy", "%s is not \"nearest\" or \"none\"", q);
}

/* Routing.HostApexNs: a list of NS names, normalised, no repeats. */
static bool cfg_host_apex_ns(cfg_ctx_t *x, const json_t *r, ibp_routing_cfg_t *rt)
{
    json_t *arr = NULL;
    if (!ibp_jget_array(x->c, r, ".Routing", "HostApexNs", IBP_J_OPTIONAL, &arr) || !arr)
        return true;
    size_t n = json_array_size(arr);
    if (n > IBP_HOST_APEX_NS_MAX)
        return ibp_jerr(x->c, ".Routing.HostApexNs", "%zu names, at most %d", n,
                        IBP_HOST_APEX_NS_MAX);
    ibp_strv_t names = {0};
    for (size_t i = 0; i < n; i++) {
        char path[IBP_JPATH_MAX], norm[IBP_NAME_MAX + 1];
        snprintf(path, sizeof path, ".Routing.HostApexNs[%zu]", i);
        const char *s = NULL;
        ibp_err_t why;
        bool ok = ibp_jval_string(x->c, path, json_array_get(arr, i), &s);
        if (ok && !ibp_name_normalize_n(s, strlen(s), false, norm, &why))
            ok = ibp_jerr(x->c, path, "%s", why.msg);
        if (!ok || !ibp_strv_push(&names, norm)) {
            ibp_strv_free(&names);
            return ok ? ibp_jerr(x->c, path, "out of memory") : false;
        }
    }
    if (!ibp_strv_dedup(&names)) {
        ibp_strv_free(&names);
        return ibp_jerr(x->c, ".Routing.HostApexNs", "out of memory");
    }
    rt->host_apex_ns = names.v;
    rt->n_host_apex_ns = names.n;
    return true;
}

/* Routing.Nets: the object inline, or a file holding it (read later, by
 * ibp_node_config_load_nets, which knows the config's directory). */
static bool cfg_nets(cfg_ctx_t *x, const json_t *r, ibp_routing_cfg_t *rt)
{
    const json_t *v = ibp_json_get(r, "Nets");
    if (!v || json_is_null(v))
        return true;
    if (json_is_string(v)) {
        if (!json_string_value(v)[0])
            return ibp_jerr(x->c, ".Routing.Nets", "empty file name");
        return (rt->nets_file = strdup(json_string_value(v))) != NULL ||
               ibp_jerr(x->c, ".Routing.Nets", "out of memory");
    }
    if (!json_is_object(v))
        return ibp_jerr(x->c, ".Routing.Nets", "expected an object of CIDR networks or a file "
                        "name, got %s", ibp_json_type_name(v));
    return ibp_nets_from_json(x->c, v, ".Routing.Nets", &rt->nets, &x->warn);
}

/* Routing.Map: the object inline, or a file holding it (read later, by
 * ibp_node_config_load_map); member keys are checked by the compiler, which
 * knows the members. */
static bool cfg_map(cfg_ctx_t *x, const json_t *r, ibp_routing_cfg_t *rt)
{
    const json_t *v = ibp_json_get(r, "Map");
    if (!v || json_is_null(v))
        return true;
    if (json_is_string(v)) {
        if (!json_string_value(v)[0])
            return ibp_jerr(x->c, ".Routing.Map", "empty file name");
        return (rt->map_file = strdup(json_string_value(v))) != NULL ||
               ibp_jerr(x->c, ".Routing.Map", "out of memory");
    }
    return ibp_map_from_json(x->c, v, ".Routing.Map", &rt->map);
}

static bool cfg_routing(cfg_ctx_t *x, const json_t *root)
{
    json_t *r = NULL;
    ibp_routing_cfg_t *rt = &x->cfg->routing;
    uint32_t answers = 1, failover_spread = 1;
    rt->apex_soa_in_any = false;   /* BEHAVIOR §2: PowerDNS adds its own copy */
    if (!cfg_section(x, root, "", "Routing", routing_keys, routing_strs, &r) ||
        !cfg_u32(x, r, "AnswersPerFamily", 1, IBP_MAX_ANSWERS, 1, &answers) ||
        !cfg_u32(x, r, "FailoverSpread", 1, IBP_MAX_ANSWERS, 1, &failover_spread) ||
        !cfg_u32(x, r, "MaxShiftPercent", 0, 100, 0, &rt->max_shift_percent) ||
        !cfg_all_down(x, r, &rt->all_down) ||
        !cfg_u32(x, r, "Ttl", 0, TTL_MAX, 30, &rt->ttl) ||
        !cfg_u32(x, r, "SoaRefresh", 0, TTL_MAX, 3600, &rt->soa_refresh) ||
        !cfg_u32(x, r, "SoaRetry", 0, TTL_MAX, 600, &rt->soa_retry) ||
        !cfg_u32(x, r, "SoaExpire", 0, TTL_MAX, 1209600, &rt->soa_expire) ||
        !cfg_u32(x, r, "SoaMinimum", 0, TTL_MAX, 3600, &rt->soa_minimum) ||
        !cfg_u32(x, r, "SoaTtl", 0, TTL_MAX, 3600, &rt->soa_ttl) ||
        !ibp_jget_bool(x->c, r, ".Routing", "ApexSoaInAny", IBP_J_OPTIONAL, &rt->apex_soa_in_any) ||
        !cfg_u32(x, r, "AcmeBudgetMs", 1, IBP_ACME_BUDGET_MS_MAX, IBP_ACME_BUDGET_MS_DEFAULT,
                 &rt->acme_budget_ms) ||
        !cfg_u32(x, r, "AcmeCacheSeconds", 0, IBP_ACME_CACHE_S_MAX, IBP_ACME_CACHE_S_DEFAULT,
                 &rt->acme_cache_s) ||
        !(r ? cfg_host_apex_ns(x, r, rt) : true) || !(r ? cfg_nets(x, r, rt) : true) ||
        !(r ? cfg_map(x, r, rt) : true))
        return false;
    rt->answers_per_family = answers;
    rt->failover_spread = failover_spread;
    return true;
}

static bool cfg_int(cfg_ctx_t *x, const json_t *obj, const char *path, const char *key,
                    long long min, long long max, long long def, long long *out)
{
    *out = def;
    return ibp_jget_int(x->c, obj, path, key, IBP_J_OPTIONAL, min, max, out);
}

static bool cfg_system(cfg_ctx_t *x, const json_t *root)
{
    json_t *sys = NULL;
    long long timeout = IBP_FETCH_TIMEOUT_S_DEFAULT;
    if (!cfg_section(x, root, "", "System", system_keys, system_strs, &sys) ||
        !cfg_period(x, sys, ".System", "ConfigReloadTime", &x->cfg->config_reload_s) ||
        !cfg_period(x, sys, ".System", "MinimumOfflineTime", &x->cfg->minimum_offline_s) ||
        !cfg_int(x, sys, ".System", "FetchTimeoutSeconds", 1, IBP_FETCH_TIMEOUT_S_MAX,
                 IBP_FETCH_TIMEOUT_S_DEFAULT, &timeout) ||
        !cfg_int(x, sys, ".System", "FetchMaxBytes", 1024, 1LL << 32, IBP_FETCH_MAX_BYTES_DEFAULT,
                 &x->cfg->fetch_max_bytes))
        return false;
    x->cfg->fetch_timeout_s = (int)timeout;
    return cfg_section(x, sys, ".System", "ConfigUrls", urls_keys, urls_strs, NULL);
}

static bool cfg_dnsapi(cfg_ctx_t *x, const json_t *root)
{
    json_t *api = NULL;
    return cfg_section(x, root, "", "DnsApi", dnsapi_keys, dnsapi_strs, &api) &&
           cfg_period(x, api, ".DnsApi", "RefreshIntervalSeconds",
                      &x->cfg->monitor_refresh_s);
}

static bool cfg_required_urls(cfg_ctx_t *x)
{
    static const struct {
        const char *path;
        size_t off;
    } req[] = {
        {".System.ConfigUrls.StaticDNSConfig", offsetof(ibp_node_config_t, static_url)},
        {".System.ConfigUrls.MembersConfig", offsetof(ibp_node_config_t, members_url)},
        {".System.ConfigUrls.ServicesConfig", offsetof(ibp_node_config_t, services_url)},
    };
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        const char *s = *cfg_str(x->cfg, req[i].off);
        if (!s || !s[0])
            return ibp_jerr(x->c, req[i].path, "missing or empty");
    }
    return true;
}

/* Absent strings become "" (or their documented default) so that users of
 * the config never meet NULL. */
static bool cfg_defaults(cfg_ctx_t *x)
{
    ibp_node_config_t *cfg = x->cfg;
    if (!cfg->routing.table_path)
        cfg->routing.table_path = strdup("/var/lib/ibpdns/routing.tbl");
    if (!cfg->storage_path)
        cfg->storage_path = strdup("/var/lib/ibpdns/usage.sqlite");
    if (!cfg->storage_counter_dir)
        cfg->storage_counter_dir = strdup("/var/lib/ibpdns/usage");
    for (size_t i = 0; i < sizeof cfg_str_offs / sizeof cfg_str_offs[0]; i++) {
        char **s = cfg_str(cfg, cfg_str_offs[i]);
        if (!*s && !(*s = strdup("")))
            return ibp_jerr(x->c, ".", "out of memory");
    }
    return true;
}

static bool cfg_maxmind(cfg_ctx_t *x, const json_t *root)
{
    json_t *mm = NULL;
    long long refresh = 86400;
    if (!cfg_section(x, root, "", "Maxmind", maxmind_keys, maxmind_strs, &mm) ||
        !cfg_int(x, mm, ".Maxmind", "RefreshSeconds", 1, IBP_MAXMIND_REFRESH_MAX_S, 86400,
                 &refresh))
        return false;
    x->cfg->maxmind_refresh_s = (int)refresh;
    return true;
}

static bool cfg_storage(cfg_ctx_t *x, const json_t *root)
{
    json_t *st = NULL;
    long long flush = IBP_FLUSH_DEFAULT_S;
    if (!cfg_section(x, root, "", "Storage", storage_keys, storage_strs, &st) ||
        !cfg_int(x, st, ".Storage", "FlushSeconds", 1, IBP_PERIOD_MAX_S, IBP_FLUSH_DEFAULT_S,
                 &flush) ||
        !ibp_jget_bool(x->c, st, ".Storage", "RecordEvents", IBP_J_OPTIONAL,
                       &x->cfg->storage_record_events))
        return false;
    x->cfg->storage_flush_s = (int)flush;
    x->cfg->storage_record_events_set = ibp_json_present(st, "RecordEvents");
    return true;
}

static bool cfg_from(cfg_ctx_t *x, const json_t *root)
{
    if (!json_is_object(root))
        return ibp_jerr(x->c, ".", "expected an object, got %s", ibp_json_type_name(root));
    x->cfg->config_reload_s = IBP_PERIOD_DEFAULT_S;
    x->cfg->minimum_offline_s = IBP_MIN_OFFLINE_DEFAULT_S;
    x->cfg->monitor_refresh_s = IBP_PERIOD_DEFAULT_S;
    cfg_check_keys(x, root, "", top_keys);
    return cfg_system(x, root) && cfg_maxmind(x, root) &&
           cfg_section(x, root, "", "Nats", nats_keys, nats_strs, NULL) &&
           cfg_section(x, root, "", "Mysql", mysql_keys, mysql_strs, NULL) &&
           cfg_dnsapi(x, root) && cfg_routing(x, root) &&
           cfg_storage(x, root) &&
           cfg_required_urls(x) && cfg_overrides(x->c, root, &x->cfg->overrides) &&
           cfg_defaults(x);
}

void ibp_node_config_free(ibp_node_config_t *c)
{
    if (!c)
        return;
    free(c->path);
    for (size_t i = 0; i < sizeof cfg_str_offs / sizeof cfg_str_offs[0]; i++)
        free(*cfg_str(c, cfg_str_offs[i]));
    ibp_overrides_free(&c->overrides);
    ibp_strarr_free(c->routing.host_apex_ns, c->routing.n_host_apex_ns);
    ibp_nets_free(&c->routing.nets);
    ibp_map_free(&c->routing.map);
    ibp_strarr_free(c->warnings, c->n_warnings);
    *c = (ibp_node_config_t){0};
}

bool ibp_node_config_parse(const char *buf, size_t len, const char *src,
                           ibp_node_config_t *out, ibp_err_t *err)
{
    *out = (ibp_node_config_t){0};
    json_t *root = ibp_json_load(buf, len, src, err);
    if (!root)
        return false;
    ibp_jctx_t c = {src, err};
    cfg_ctx_t x = {.c = &c, .cfg = out};
    bool ok = (out->path = strdup(src)) != NULL || ibp_err_set(err, "%s: out of memory", src);
    ok = ok && cfg_from(&x, root);
    json_decref(root);
    out->warnings = x.warn.v;
    out->n_warnings = x.warn.n;
    if (!ok)
        ibp_node_config_free(out);
    return ok;
}

bool ibp_node_config_read_side_file(const ibp_node_config_t *cfg, const char *config_dir,
                                    const char *file, const char *key, size_t max, char *path,
                                    size_t path_cap, const char **name, char **buf, size_t *len,
                                    ibp_err_t *err)
{
    const char *config = cfg->path ? cfg->path : "config";
    if (!ibp_local_path(file, config_dir, path, path_cap, err) ||
        !ibp_file_read(path, max, buf, len, err))
        return ibp_err_prefix(err, "%s: .Routing.%s", config, key);
    const char *slash = strrchr(path, '/');
    *name = slash ? slash + 1 : path;
    return true;
}
