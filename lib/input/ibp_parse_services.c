/* services_rpc.json (IBP-NODE §2.3): service key -> Configuration + Providers.
 * Routing only needs each service's Active flag and the hosts of its RpcUrls. */
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ibp_json.h"
#include "ibp_model.h"

#define V1_HINT "this looks like the legacy v1 services format"

static void service_clear(ibp_service_t *s)
{
    free(s->key);
    ibp_strarr_free(s->hosts, s->n_hosts);
    *s = (ibp_service_t){0};
}

void ibp_services_free(ibp_services_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        service_clear(&s->v[i]);
    free(s->v);
    *s = (ibp_services_t){0};
}

static bool is_scheme(const char *s, size_t len)
{
    if (len == 0 || !isalpha((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '+' && ch != '-' && ch != '.')
            return false;
    }
    return true;
}

static const char *last_of(const char *s, size_t len, char ch)
{
    for (size_t i = len; i > 0; i--)
        if (s[i - 1] == ch)
            return s + i - 1;
    return NULL;
}

/* The host part of a URL: scheme, userinfo, port, path, query and fragment
 * dropped (what Go's url.Parse(...).Hostname() keeps). A URL without a scheme
 * is read as "host[:port][/path]". Sets *why when it has no usable host. */
static bool url_host(const char *url, const char **host, size_t *hlen, const char **why)
{
    const char *p = url;
    const char *sep = strstr(url, "://");
    if (sep && is_scheme(url, (size_t)(sep - url)))
        p = sep + 3;
    else if (p[0] == '/' && p[1] == '/')
        p += 2;
    size_t alen = strcspn(p, "/?#");
    const char *at = last_of(p, alen, '@');
    if (at) {
        alen -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    if (alen && p[0] == '[') {
        *why = "an IP literal is not a hostname";
        return false;
    }
    const char *colon = memchr(p, ':', alen);
    if (colon) {
        for (const char *d = colon + 1; d < p + alen; d++)
            if (!isdigit((unsigned char)*d)) {
                *why = "invalid port";
                return false;
            }
        alen = (size_t)(colon - p);
    }
    *host = p;
    *hlen = alen;
    return true;
}

static bool rpc_url(const ibp_jctx_t *c, const json_t *v, const char *path, ibp_strv_t *hosts)
{
    const char *url, *host = NULL, *why = NULL;
    size_t hlen = 0;
    char name[IBP_NAME_MAX + 1], q[IBP_JQUOTE_MAX + 8];
    ibp_err_t e;
    if (!ibp_jval_string(c, path, v, &url))
        return false;
    ibp_json_quote(q, sizeof q, url);
    if (!url_host(url, &host, &hlen, &why))
        return ibp_jerr(c, path, "%s has no valid host: %s", q, why);
    if (!ibp_name_normalize_n(host, hlen, false, name, &e))
        return ibp_jerr(c, path, "%s has no valid host: %s", q, e.msg);
    if (!ibp_strv_push(hosts, name))
        return ibp_jerr(c, path, "out of memory");
    return true;
}

static bool provider_urls(const ibp_jctx_t *c, const json_t *prov, const char *ppath,
                          ibp_strv_t *hosts)
{
    if (!ibp_jval_object(c, ppath, prov))
        return false;
    json_t *urls = NULL;
    if (!ibp_jget_array(c, prov, ppath, "RpcUrls", IBP_J_OPTIONAL, &urls))
        return false;
    char upath[IBP_JPATH_MAX];
    ibp_jpath_key(upath, ppath, "RpcUrls");
    size_t i;
    json_t *v;
    json_array_foreach(urls, i, v) {
        char ipath[IBP_JPATH_MAX];
        ibp_jpath_index(ipath, upath, i);
        if (!rpc_url(c, v, ipath, hosts))
            return false;
    }
    return true;
}

static bool service_hosts(const ibp_jctx_t *c, const json_t *sobj, const char *path,
                          ibp_service_t *s)
{
    json_t *provs = NULL;
    if (!ibp_jget_object(c, sobj, path, "Providers", IBP_J_OPTIONAL, &provs))
        return false;
    char ppath[IBP_JPATH_MAX];
    ibp_jpath_key(ppath, path, "Providers");
    return ibp_jcollect_strings(c, provs, ppath, provider_urls, &s->hosts, &s->n_hosts);
}

/* v1 services.json is keyed by hostname with flat snake_case fields
 * (service_type, endpoints, members): no Configuration, no Providers. */
static bool service_shape(const ibp_jctx_t *c, const json_t *val, const char *path)
{
    if (!json_is_object(val))
        return ibp_jerr(c, path, "not a v2 service entry (expected an object, got %s): "
                        V1_HINT, ibp_json_type_name(val));
    if (!ibp_json_present(val, "Configuration") && !ibp_json_present(val, "Providers"))
        return ibp_jerr(c, path, "not a v2 service entry (no Configuration/Providers): "
                        V1_HINT);
    return true;
}

static bool service_parse(const ibp_jctx_t *c, const char *key, const json_t *val, void *elem)
{
    ibp_service_t *s = elem;
    char path[IBP_JPATH_MAX], cpath[IBP_JPATH_MAX];
    ibp_jpath_key(path, "", key);
    if (!service_shape(c, val, path))
        return false;
    s->key = strdup(key);
    if (!s->key)
        return ibp_jerr(c, path, "out of memory");
    json_t *conf = NULL;
    if (!ibp_jget_object(c, val, path, "Configuration", IBP_J_OPTIONAL, &conf))
        return false;
    ibp_jpath_key(cpath, path, "Configuration");
    long long active = 0;  /* absent => 0, as Go's zero value: not registered */
    if (!ibp_jget_int(c, conf, cpath, "Active", IBP_J_OPTIONAL, LLONG_MIN, LLONG_MAX,
                      &active))
        return false;
    s->active = active != 0;
    return service_hosts(c, val, path, s);
}

bool ibp_services_walk(const ibp_jctx_t *c, const json_t *root, void *model)
{
    ibp_services_t *out = model;
    void *entries = NULL;   /* out->v is filled even on failure, to be freed */
    bool ok = ibp_jkeyed_entries(c, root, "service", sizeof *out->v, service_parse, &entries,
                                 &out->n);
    out->v = entries;
    if (!ok)
        return false;
    return true;
}
