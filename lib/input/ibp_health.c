/* The monitor's /results snapshot (IBP-NODE §5.2) and online() (§5.3). */
#include "ibp_health.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ibp_json.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static const struct {
    const char *key;
    ibp_check_kind_t kind;
} health_lists[] = {
    {"SiteResults", IBP_CHECK_SITE},
    {"DomainResults", IBP_CHECK_DOMAIN},
    {"EndpointResults", IBP_CHECK_ENDPOINT},
};

void ibp_health_free(ibp_health_t *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n_groups; i++) {
        free(h->groups[i].domain);
        ibp_strarr_free(h->groups[i].offline, h->groups[i].n_offline);
    }
    free(h->groups);
    for (size_t i = 0; i < h->n_obs; i++) {
        ibp_health_obs_t *o = &h->obs[i];
        free(o->member);
        free(o->check);
        free(o->domain);
        free(o->endpoint);
        free(o->error);
        free(o->data);
    }
    free(h->obs);
    *h = (ibp_health_t){0};
}

/* ---- member events' view ------------------------------------------------- */

static const char *const kind_names[] = {"site", "domain", "endpoint"};

const char *ibp_check_kind_name(ibp_check_kind_t kind)
{
    return kind_names[kind];
}

bool ibp_check_kind_parse(const char *name, ibp_check_kind_t *out)
{
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, kind_names[i])) {
            *out = (ibp_check_kind_t)i;
            return true;
        }
    return false;
}

void ibp_health_event_key(ibp_check_kind_t kind, const char *check, const char *domain,
                          const char *endpoint, const char *member, bool ipv6, uint64_t *hi,
                          uint64_t *lo)
{
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
    const char head[2] = {(char)('0' + kind), ipv6 ? '6' : '4'};
    XXH3_128bits_update(&st, head, 2);
    const char *parts[] = {check, domain, endpoint, member};
    for (int i = 0; i < 4; i++) {
        const char *p = parts[i] ? parts[i] : "";
        XXH3_128bits_update(&st, p, strlen(p) + 1);   /* with the NUL: no two keys run together */
    }
    XXH128_hash_t d = XXH3_128bits_digest(&st);
    *hi = d.high64;
    *lo = d.low64;
}

/* At most max bytes, cut before a UTF-8 continuation byte. */
static char *dup_cut_bytes(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return strndup(s, n);
}

/* At most max characters of UTF-8 (a VARCHAR's width). */
static char *dup_cut_chars(const char *s, size_t max)
{
    size_t i = 0, chars = 0;
    while (s[i] && chars < max) {
        i++;
        while (((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        chars++;
    }
    return strndup(s, i);
}

/* A group as its results' events name it. */
typedef struct group_ctx {
    ibp_check_kind_t kind;
    bool ipv6;
    const char *check, *domain, *url;
    ibp_health_t *h;
    ibp_health_obs_t *obs;     /* room for this group's results */
    size_t n_obs;
} group_ctx_t;

static char *data_text(const json_t *r)
{
    json_t *d = ibp_json_get(r, "Data");
    if (!json_is_object(d))
        return NULL;
    char *text = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text && strlen(text) > IBP_EVENT_DATA_MAX) {
        free(text);
        return NULL;
    }
    return text;
}

/* The failed result's texts; false only when out of memory. */
static bool obs_texts(const group_ctx_t *g, const json_t *r, const char *member,
                      const char *error, ibp_health_obs_t *o)
{
    o->member = strdup(member);
    o->check = dup_cut_chars(g->check, IBP_EVENT_CHECK_NAME_MAX);
    o->domain = g->kind != IBP_CHECK_SITE ? strdup(g->domain) : NULL;
    o->endpoint = g->kind == IBP_CHECK_ENDPOINT ? strdup(g->url) : NULL;
    o->error = dup_cut_bytes(error, IBP_EVENT_ERROR_MAX);
    o->data = data_text(r);
    return o->member && o->check && (g->kind == IBP_CHECK_SITE || o->domain) &&
           (g->kind != IBP_CHECK_ENDPOINT || o->endpoint) && o->error;
}

static bool obs_add(group_ctx_t *g, const json_t *r, const char *member, const char *error,
                    bool online)
{
    if (g->kind == IBP_CHECK_ENDPOINT && strlen(g->url) > IBP_EVENT_ENDPOINT_MAX) {
        g->h->n_obs_skipped++;
        return true;
    }
    ibp_health_obs_t *o = &g->obs[g->n_obs++];
    *o = (ibp_health_obs_t){.online = online, .ipv6 = g->ipv6, .kind = g->kind};
    char *check = dup_cut_chars(g->check, IBP_EVENT_CHECK_NAME_MAX);
    if (!check)
        return false;
    ibp_health_event_key(g->kind, check, g->kind != IBP_CHECK_SITE ? g->domain : NULL,
                         g->kind == IBP_CHECK_ENDPOINT ? g->url : NULL, member, g->ipv6,
                         &o->key_hi, &o->key_lo);
    free(check);
    return online || obs_texts(g, r, member, error, o);
}

/* ---- RFC 3339 ------------------------------------------------------------- */

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* "2026-04-18T10:00:00Z", optional ".fraction", "Z" or "+hh:mm"/"-hh:mm":
 * what Go's time.Time accepts when decoding JSON. */
static bool rfc3339_ok(const char *s)
{
    int y, mo, d, h, mi, sec, oh, om;
    if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || s[10] != 'T' || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 59)
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        size_t n = strspn(++p, "0123456789");
        if (n == 0)
            return false;
        p += n;
    }
    if (p[0] == 'Z')
        return p[1] == '\0';
    if ((p[0] != '+' && p[0] != '-') || strlen(p) != 6 || !digits(p + 1, 2, &oh) ||
        p[3] != ':' || !digits(p + 4, 2, &om))
        return false;
    return oh <= 23 && om <= 59;
}

/* ---- parsing -------------------------------------------------------------- */

/* A missing or null Checktime is Go's zero time and decodes fine; "" does not. */
static bool result_time(const ibp_jctx_t *c, const json_t *r, const char *path)
{
    const char *t = NULL;
    if (!ibp_jget_string(c, r, path, "Checktime", IBP_J_OPTIONAL, &t))
        return false;
    if (!t || rfc3339_ok(t))
        return true;
    char tpath[IBP_JPATH_MAX], q[IBP_JQUOTE_MAX + 8];
    ibp_jpath_key(tpath, path, "Checktime");
    ibp_json_quote(q, sizeof q, t);
    return ibp_jerr(c, tpath, "%s is not an RFC 3339 time", q);
}

/* Checks every field Go would decode, so a snapshot Go would refuse is
 * refused here too; keeps the member if its Status is false (or absent). */
static bool result_parse(const ibp_jctx_t *c, const json_t *r, const char *path,
                         ibp_strv_t *offline, group_ctx_t *g)
{
    bool status = false, v6 = false;
    const char *name = NULL, *text = NULL;
    if (!ibp_jval_object(c, path, r) ||
        !ibp_jget_bool(c, r, path, "Status", IBP_J_OPTIONAL, &status) ||
        !ibp_jget_string(c, r, path, "MemberName", IBP_J_OPTIONAL, &name) ||
        !ibp_jget_string(c, r, path, "ErrorText", IBP_J_OPTIONAL, &text) ||
        !ibp_jget_bool(c, r, path, "IsIPv6", IBP_J_OPTIONAL, &v6) ||
        !result_time(c, r, path))
        return false;
    if (name && strlen(name) > IBP_MEMBER_NAME_MAX) {
        char npath[IBP_JPATH_MAX];
        ibp_jpath_key(npath, path, "MemberName");
        return ibp_jerr(c, npath, "%zu bytes is longer than any member name (%d)", strlen(name),
                        IBP_MEMBER_NAME_MAX);
    }
    if (!obs_add(g, r, name ? name : "", text ? text : "", status))
        return ibp_jerr(c, path, "out of memory");
    if (status)
        return true;
    if (!ibp_strv_push(offline, name ? name : ""))
        return ibp_jerr(c, path, "out of memory");
    return true;
}

/* Room in h->obs for n more results (the group's). */
static bool obs_reserve(ibp_health_t *h, size_t n, group_ctx_t *g)
{
    ibp_health_obs_t *o = realloc(h->obs, (h->n_obs + n ? h->n_obs + n : 1) * sizeof *o);
    if (!o)
        return false;
    h->obs = o;
    g->obs = o + h->n_obs;
    g->n_obs = 0;
    return true;
}

static bool group_results(const ibp_jctx_t *c, const json_t *g, const char *path,
                          ibp_strv_t *offline, group_ctx_t *gc)
{
    json_t *results = NULL;
    if (!ibp_jget_array(c, g, path, "Results", IBP_J_OPTIONAL, &results))
        return false;
    if (!obs_reserve(gc->h, json_array_size(results), gc))
        return ibp_jerr(c, path, "out of memory");
    bool ok = true;
    char rpath[IBP_JPATH_MAX];
    ibp_jpath_key(rpath, path, "Results");
    size_t i;
    json_t *r;
    json_array_foreach(results, i, r) {
        char ipath[IBP_JPATH_MAX];
        ibp_jpath_index(ipath, rpath, i);
        if (!(ok = result_parse(c, r, ipath, offline, gc)))
            break;
    }
    gc->h->n_obs += gc->n_obs;   /* a half-filled one too, for ibp_health_free */
    return ok;
}

/* Checked before the results, whose events name the domain. */
static bool group_domain_ok(const ibp_jctx_t *c, const char *path, const char *domain)
{
    if (!domain || strlen(domain) <= IBP_NAME_MAX)
        return true;
    char dpath[IBP_JPATH_MAX];
    ibp_jpath_key(dpath, path, "Domain");
    return ibp_jerr(c, dpath, "%zu bytes is longer than a DNS name (%d)", strlen(domain),
                    IBP_NAME_MAX);
}

static bool group_parse(const ibp_jctx_t *c, const json_t *g, const char *path,
                        ibp_health_t *h, ibp_health_group_t *out)
{
    const char *check = NULL, *domain = NULL, *url = NULL;
    ibp_strv_t offline = {0};
    if (!ibp_jval_object(c, path, g) ||
        !ibp_jget_string(c, g, path, "CheckName", IBP_J_OPTIONAL, &check) ||
        !ibp_jget_string(c, g, path, "Domain", IBP_J_OPTIONAL, &domain) ||
        !ibp_jget_string(c, g, path, "RpcUrl", IBP_J_OPTIONAL, &url) ||
        !ibp_jget_bool(c, g, path, "IsIPv6", IBP_J_OPTIONAL, &out->ipv6) ||
        !group_domain_ok(c, path, domain)) {
        ibp_strv_free(&offline);
        return false;
    }
    group_ctx_t gc = {.kind = out->kind, .ipv6 = out->ipv6, .check = check ? check : "",
                      .domain = domain ? domain : "", .url = url ? url : "", .h = h};
    if (!group_results(c, g, path, &offline, &gc)) {
        ibp_strv_free(&offline);
        return false;
    }
    /* A group lists each member once however often the monitor repeats it:
     * memory follows the members, not the entries. */
    if (!ibp_strv_dedup(&offline)) {
        ibp_strv_free(&offline);
        return ibp_jerr(c, path, "out of memory");
    }
    out->offline = offline.v;
    out->n_offline = offline.n;
    if (out->kind != IBP_CHECK_SITE && !(out->domain = strdup(domain ? domain : "")))
        return ibp_jerr(c, path, "out of memory");
    return true;
}

static bool groups_reserve(ibp_health_t *h, size_t more)
{
    ibp_health_group_t *g = realloc(h->groups, (h->n_groups + more) * sizeof *g);
    if (!g)
        return false;
    h->groups = g;
    return true;
}

static bool list_parse(const ibp_jctx_t *c, const json_t *root, size_t li, ibp_health_t *h)
{
    json_t *arr = NULL;
    if (!ibp_jget_array(c, root, "", health_lists[li].key, IBP_J_OPTIONAL, &arr))
        return false;
    size_t n = json_array_size(arr);
    if (n == 0)
        return true;
    if (!groups_reserve(h, n))
        return ibp_jerr(c, ".", "out of memory");
    char lpath[IBP_JPATH_MAX];
    ibp_jpath_key(lpath, "", health_lists[li].key);
    size_t i;
    json_t *g;
    json_array_foreach(arr, i, g) {
        char gpath[IBP_JPATH_MAX];
        ibp_jpath_index(gpath, lpath, i);
        ibp_health_group_t *grp = &h->groups[h->n_groups++];
        *grp = (ibp_health_group_t){.kind = health_lists[li].kind};
        if (!group_parse(c, g, gpath, h, grp))
            return false;
        /* Groups where everybody is up change no answer: only count them. */
        if (grp->n_offline == 0) {
            free(grp->domain);
            h->n_groups--;
        }
    }
    h->n_lists += n;
    return true;
}

bool ibp_health_walk(const ibp_jctx_t *c, const json_t *root, void *model)
{
    ibp_health_t *h = model;
    /* null decodes to an empty snapshot in Go: valid, and permissive. */
    if (!json_is_null(root) && !json_is_object(root))
        return ibp_jerr(c, ".", "expected an object, got %s", ibp_json_type_name(root));
    for (size_t li = 0; li < sizeof health_lists / sizeof health_lists[0]; li++)
        if (!list_parse(c, root, li, h))
            return false;
    h->loaded = true;
    return true;
}


/* ---- queries -------------------------------------------------------------- */

bool ibp_health_source_accepted(const char *v)
{
    if (!v)
        return true;
    while (isspace((unsigned char)*v))
        v++;
    size_t n = strlen(v);
    while (n && isspace((unsigned char)v[n - 1]))
        n--;
    return !(n == 5 && !strncasecmp(v, "local", 5));
}

static bool group_lists(const ibp_health_group_t *g, const char *member)
{
    for (size_t i = 0; i < g->n_offline; i++)
        if (!strcasecmp(g->offline[i], member))
            return true;
    return false;
}

bool ibp_health_online(const ibp_health_t *h, const char *host,
                       const char *member_name, bool ipv6)
{
    if (!h || !h->loaded || h->n_lists == 0)
        return true;
    for (size_t i = 0; i < h->n_groups; i++) {
        const ibp_health_group_t *g = &h->groups[i];
        if (g->ipv6 != ipv6)
            continue;
        /* Site checks are about the member as a whole: they hit every host. */
        if (g->kind != IBP_CHECK_SITE && (!host || strcasecmp(g->domain, host)))
            continue;
        if (group_lists(g, member_name ? member_name : ""))
            return false;
    }
    return true;
}

/* ---- digest ---------------------------------------------------------------- */

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whole, never cut: two long names that share a prefix must digest apart. */
static char *lower_dup(const char *fmt_kind, const char *domain, bool v6, const char *member)
{
    char *line = NULL;
    if (asprintf(&line, "%s|%s|%d|%s", fmt_kind, domain ? domain : "", v6, member) < 0)
        return NULL;
    for (char *p = line; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    return line;
}

bool ibp_health_digest(const ibp_health_t *h, uint64_t *hi, uint64_t *lo)
{
    size_t n = 0;
    for (size_t g = 0; h && g < h->n_groups; g++)
        n += h->groups[g].n_offline;
    char **lines = calloc(n ? n : 1, sizeof *lines);
    XXH3_state_t *st = XXH3_createState();
    bool ok = lines && st;
    size_t k = 0;
    for (size_t g = 0; ok && h && g < h->n_groups; g++) {
        const ibp_health_group_t *grp = &h->groups[g];
        for (size_t i = 0; ok && i < grp->n_offline; i++) {
            /* Endpoint and domain failures act alike on the host (§5.3). */
            const char *kind = grp->kind == IBP_CHECK_SITE ? kind_names[0] : kind_names[1];
            ok = (lines[k] = lower_dup(kind, grp->domain, grp->ipv6, grp->offline[i])) != NULL;
            k += ok;
        }
    }
    if (ok) {
        /* The offline entries alone decide online(): an empty snapshot and
         * one where everybody passed are the same to routing. Duplicates are
         * adjacent after sorting: compare before freeing. */
        qsort(lines, k, sizeof *lines, cmp_strp);
        XXH3_128bits_reset(st);
        for (size_t i = 0; i < k; i++)
            if (i == 0 || strcmp(lines[i], lines[i - 1]))
                XXH3_128bits_update(st, lines[i], strlen(lines[i]) + 1);
        XXH128_hash_t d = XXH3_128bits_digest(st);
        *hi = d.high64;
        *lo = d.low64;
    }
    for (size_t i = 0; i < k; i++)
        free(lines[i]);
    free(lines);
    XXH3_freeState(st);
    return ok;
}
