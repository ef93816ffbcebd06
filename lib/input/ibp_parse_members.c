/* members_professional.json (IBP-NODE §2.2): the v2 members format. */
#include <arpa/inet.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ibp_json.h"
#include "ibp_model.h"

#define V1_HINT "this looks like the legacy v1 members format"

static void member_clear(ibp_member_t *m)
{
    free(m->key);
    free(m->name);
    ibp_strarr_free(m->services, m->n_services);
    *m = (ibp_member_t){0};
}

void ibp_members_free(ibp_members_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        member_clear(&m->v[i]);
    free(m->v);
    *m = (ibp_members_t){0};
}

/* Service.ServiceIPv4/IPv6: "" means no address of that family. IBP skips an
 * unparsable one silently; we refuse it so the operator hears about it. */
static bool member_addr(const ibp_jctx_t *c, const json_t *svc, const char *parent,
                        const char *key, int af, void *dst, bool *has)
{
    const char *s = NULL;
    if (!ibp_jget_string(c, svc, parent, key, IBP_J_OPTIONAL, &s))
        return false;
    if (!s || !s[0])
        return true;
    if (inet_pton(af, s, dst) != 1) {
        char path[IBP_JPATH_MAX], q[IBP_JQUOTE_MAX + 8];
        ibp_jpath_key(path, parent, key);
        ibp_json_quote(q, sizeof q, s);
        return ibp_jerr(c, path, "%s is not an %s address", q,
                        af == AF_INET ? "IPv4" : "IPv6");
    }
    *has = true;
    return true;
}

static bool member_service(const ibp_jctx_t *c, const json_t *mobj, const char *path,
                           ibp_member_t *m)
{
    json_t *svc = NULL;
    if (!ibp_jget_object(c, mobj, path, "Service", IBP_J_OPTIONAL, &svc))
        return false;
    if (!svc)
        return true;
    char spath[IBP_JPATH_MAX];
    ibp_jpath_key(spath, path, "Service");
    long long active = 0;
    if (!ibp_jget_int(c, svc, spath, "Active", IBP_J_OPTIONAL, LLONG_MIN, LLONG_MAX,
                      &active))
        return false;
    m->active = active != 0;
    return member_addr(c, svc, spath, "ServiceIPv4", AF_INET, m->v4, &m->has_v4) &&
           member_addr(c, svc, spath, "ServiceIPv6", AF_INET6, m->v6, &m->has_v6);
}

static bool coord(const ibp_jctx_t *c, const json_t *loc, const char *parent,
                  const char *key, double lim, const char *what, double *out)
{
    json_t *v = ibp_json_get(loc, key);
    if (!ibp_jget_double(c, loc, parent, key, IBP_J_REQUIRED, out))
        return false;
    if (*out >= -lim && *out <= lim)
        return true;
    char path[IBP_JPATH_MAX], num[40];
    ibp_jpath_key(path, parent, key);
    ibp_json_num_fmt(v, num, sizeof num);
    return ibp_jerr(c, path, "%s is not a %s", num, what);
}

static bool member_location(const ibp_jctx_t *c, const json_t *mobj, const char *path,
                            ibp_member_t *m)
{
    json_t *loc = NULL;
    if (!ibp_jget_object(c, mobj, path, "Location", IBP_J_REQUIRED, &loc))
        return false;
    char lpath[IBP_JPATH_MAX];
    ibp_jpath_key(lpath, path, "Location");
    return coord(c, loc, lpath, "Latitude", 90, "latitude", &m->lat) &&
           coord(c, loc, lpath, "Longitude", 180, "longitude", &m->lon);
}

static bool assignment_list(const ibp_jctx_t *c, const json_t *arr, const char *path,
                            ibp_strv_t *sv)
{
    if (!ibp_jval_array(c, path, arr))
        return false;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        char ipath[IBP_JPATH_MAX];
        const char *s;
        ibp_jpath_index(ipath, path, i);
        if (!ibp_jval_string(c, ipath, v, &s))
            return false;
        if (!ibp_strv_push(sv, s))
            return ibp_jerr(c, ipath, "out of memory");
    }
    return true;
}

/* Only the lists' values matter (IBP-NODE §2.2): the group names are labels. */
static bool member_assignments(const ibp_jctx_t *c, const json_t *mobj, const char *path,
                               ibp_member_t *m)
{
    json_t *sa = NULL;
    if (!ibp_jget_object(c, mobj, path, "ServiceAssignments", IBP_J_OPTIONAL, &sa))
        return false;
    if (!sa)
        return true;
    char apath[IBP_JPATH_MAX];
    ibp_jpath_key(apath, path, "ServiceAssignments");
    return ibp_jcollect_strings(c, sa, apath, assignment_list, &m->services, &m->n_services);
}

/* The v1 files are either {"members": {...}} or keyed by member with flat
 * lowercase fields; both fail here, so this is where we name the format. */
static bool member_shape(const ibp_jctx_t *c, const json_t *val, const char *path)
{
    if (!json_is_object(val))
        return ibp_jerr(c, path, "not a v2 member entry (expected an object, got %s): "
                        V1_HINT, ibp_json_type_name(val));
    if (!ibp_json_present(val, "Details") && !ibp_json_present(val, "Service"))
        return ibp_jerr(c, path, "not a v2 member entry (no Details/Service): " V1_HINT);
    return true;
}

/* Keys and names reach usage rows (member_name VARCHAR(64)), logs and the
 * pipe's text output: short and printable. An empty name is valid (IBP never
 * routes to such a member, and neither do we); an empty key is not. */
static bool member_text_ok(const ibp_jctx_t *c, const char *path, const char *what,
                           const char *s, bool may_be_empty)
{
    size_t len = strlen(s);
    if (len == 0 && !may_be_empty)
        return ibp_jerr(c, path, "%s is empty", what);
    if (len > IBP_MEMBER_NAME_MAX)
        return ibp_jerr(c, path, "%s is %zu bytes long, at most %d are allowed", what, len,
                        IBP_MEMBER_NAME_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return ibp_jerr(c, path, "%s contains a control character", what);
    return true;
}

static bool member_parse(const ibp_jctx_t *c, const char *key, const json_t *val, void *elem)
{
    ibp_member_t *m = elem;
    char path[IBP_JPATH_MAX], dpath[IBP_JPATH_MAX];
    ibp_jpath_key(path, "", key);
    if (!member_shape(c, val, path))
        return false;
    json_t *details = NULL;
    if (!ibp_jget_object(c, val, path, "Details", IBP_J_REQUIRED, &details))
        return false;
    ibp_jpath_key(dpath, path, "Details");
    if (!member_text_ok(c, path, "the member key", key, false))
        return false;
    m->key = strdup(key);
    if (!m->key)
        return ibp_jerr(c, path, "out of memory");
    char npath[IBP_JPATH_MAX];
    ibp_jpath_key(npath, dpath, "Name");
    return ibp_jget_strdup(c, details, dpath, "Name", IBP_J_REQUIRED, &m->name) &&
           member_text_ok(c, npath, "the name", m->name, true) &&
           member_service(c, val, path, m) &&
           member_location(c, val, path, m) &&
           member_assignments(c, val, path, m) &&
           ibp_jget_bool(c, val, path, "Override", IBP_J_OPTIONAL, &m->override);
}

static int member_cmp(const void *a, const void *b)
{
    return strcmp(((const ibp_member_t *)a)->key, ((const ibp_member_t *)b)->key);
}

bool ibp_members_walk(const ibp_jctx_t *c, const json_t *root, void *model)
{
    ibp_members_t *out = model;
    void *entries = NULL;   /* out->v is filled even on failure, to be freed */
    bool ok = ibp_jkeyed_entries(c, root, "member", sizeof *out->v, member_parse, &entries,
                                 &out->n);
    out->v = entries;
    if (!ok)
        return false;
    qsort(out->v, out->n, sizeof *out->v, member_cmp);
    return true;
}
