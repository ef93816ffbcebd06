/* Routing.Map (issue 16): the JSON object parsed into an ibp_map_t tree,
 * with gdnsd's dcmap.c rules: a value is a list of member keys, "auto" or
 * a deeper map; "default" (a list or "auto") is inherited by deeper maps
 * that give none; "skip_level" (a boolean) makes the map's keys name the
 * level after next. Nesting is refused past the levels a MaxMind record
 * names (continent, country, ten subdivisions, city), so depth and memory
 * are bounded whatever the input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ibp_file.h"
#include "ibp_map.h"
#include "ibp_strv.h"

typedef struct map_ctx {
    const ibp_jctx_t *c;
    size_t n_nodes;
} map_ctx_t;

static void node_free(ibp_map_node_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n_kids; i++)
        node_free(&n->kids[i]);
    free(n->kids);
    if (n->own_dflt) {
        node_free(n->own_dflt);
        free(n->own_dflt);
    }
    ibp_strarr_free(n->members, n->n_members);
    free(n->key);
    free(n->path);
    free(n->dflt_rule);
    free(n->rule);
}

void ibp_map_free(ibp_map_t *m)
{
    if (!m)
        return;
    if (m->root) {
        node_free(m->root);
        free(m->root);
    }
    free(m->src);
    free(m->json);
    *m = (ibp_map_t){0};
}

static bool parse_members(const ibp_jctx_t *c, const char *path, const json_t *v,
                          ibp_map_node_t *n)
{
    size_t count = json_array_size(v);
    if (count == 0 || count > IBP_MAP_LIST_MAX)
        return ibp_jerr(c, path, "%zu member keys: give 1 to %d (or \"auto\")", count,
                        IBP_MAP_LIST_MAX);
    if (!(n->members = calloc(count, sizeof *n->members)))
        return ibp_jerr(c, path, "out of memory");
    for (size_t i = 0; i < count; i++) {
        char ipath[IBP_JPATH_MAX], q[IBP_JQUOTE_MAX + 8];
        const char *s;
        ibp_jpath_index(ipath, path, i);
        if (!ibp_jval_string(c, ipath, json_array_get(v, i), &s))
            return false;
        if (!s[0])
            return ibp_jerr(c, ipath, "empty member key");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(n->members[j], s)) {
                ibp_json_quote(q, sizeof q, s);
                return ibp_jerr(c, ipath, "%s is listed twice", q);
            }
        if (!(n->members[i] = strdup(s)))
            return ibp_jerr(c, ipath, "out of memory");
        n->n_members++;
    }
    return true;
}

/* A list or "auto" (what a default may be, and a leaf). */
static bool parse_leaf(const ibp_jctx_t *c, const char *path, const json_t *v,
                       ibp_map_node_t *n)
{
    if (json_is_string(v)) {
        if (strcasecmp(json_string_value(v), "auto")) {
            char q[IBP_JQUOTE_MAX + 8];
            ibp_json_quote(q, sizeof q, json_string_value(v));
            return ibp_jerr(c, path, "%s is neither \"auto\" nor a list of member keys "
                            "nor a map", q);
        }
        n->kind = IBP_MAP_AUTO;
        return true;
    }
    if (!json_is_array(v))
        return ibp_jerr(c, path, "expected a list of member keys, \"auto\" or a map, got %s",
                        ibp_json_type_name(v));
    n->kind = IBP_MAP_LIST;
    return parse_members(c, path, v, n);
}

static bool parse_node(map_ctx_t *x, const char *key, const char *path, const json_t *v,
                       unsigned level, const ibp_map_node_t *up, ibp_map_node_t *n);

static bool set_rule(const ibp_jctx_t *c, const char *path, char **out, const char *prefix,
                     const char *key)
{
    size_t len = strlen(prefix) + strlen(key) + 2;
    if (!(*out = malloc(len)))
        return ibp_jerr(c, path, "out of memory");
    snprintf(*out, len, "%s%s%s", prefix, prefix[0] ? "/" : "", key);
    return true;
}

/* skip_level and default, which the keys below depend on. */
static bool parse_specials(map_ctx_t *x, const char *path, const json_t *v,
                           const ibp_map_node_t *up, const char *rule, ibp_map_node_t *n)
{
    char kpath[IBP_JPATH_MAX];
    const json_t *skip = json_object_get(v, "skip_level");
    if (skip) {
        ibp_jpath_key(kpath, path, "skip_level");
        if (!json_is_boolean(skip))
            return ibp_jerr(x->c, kpath, "expected a boolean, got %s", ibp_json_type_name(skip));
        n->skip_level = json_is_true(skip);
    }
    const json_t *d = json_object_get(v, "default");
    if (!d) {
        n->dflt = up ? up->dflt : NULL;
        return !up || !up->dflt_rule || (n->dflt_rule = strdup(up->dflt_rule)) ||
               ibp_jerr(x->c, path, "out of memory");
    }
    ibp_jpath_key(kpath, path, "default");
    if (!(n->own_dflt = calloc(1, sizeof *n->own_dflt)) ||
        !(n->own_dflt->path = strdup(kpath)) || !(n->own_dflt->key = strdup("default")))
        return ibp_jerr(x->c, kpath, "out of memory");
    if (json_is_object(d))
        return ibp_jerr(x->c, kpath, "a default is a list of member keys or \"auto\", "
                        "not a map");
    n->dflt = n->own_dflt;
    return parse_leaf(x->c, kpath, d, n->own_dflt) &&
           set_rule(x->c, path, &n->dflt_rule, rule, "default");
}

/* Case-insensitively, then in file order: of two keys that match alike,
 * the later one is the one refused. */
static int kid_cmp(const void *a, const void *b)
{
    const ibp_map_node_t *x = a, *y = b;
    int r = strcasecmp(x->key, y->key);
    return r ? r : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Sorted, so that a lookup is a binary search and a repeat is a neighbour:
 * a level of 100,000 keys costs n log n, not n squared. */
static bool sort_kids(map_ctx_t *x, ibp_map_node_t *n)
{
    if (n->n_kids > 1)
        qsort(n->kids, n->n_kids, sizeof *n->kids, kid_cmp);
    for (size_t i = 1; i < n->n_kids; i++)
        if (!strcasecmp(n->kids[i - 1].key, n->kids[i].key)) {
            /* gdnsd matches keys case-insensitively: one of the two would never match */
            char q[IBP_JQUOTE_MAX + 8];
            ibp_json_quote(q, sizeof q, n->kids[i].key);
            return ibp_jerr(x->c, n->kids[i].path, "%s is the key %s again (keys match "
                            "case-insensitively)", q, n->kids[i - 1].path);
        }
    return true;
}

static bool parse_kids(map_ctx_t *x, const char *path, const json_t *v, unsigned level,
                       ibp_map_node_t *n)
{
    size_t count = json_object_size(v);
    if (!(n->kids = calloc(count ? count : 1, sizeof *n->kids)))
        return ibp_jerr(x->c, path, "out of memory");
    const char *key;
    json_t *kv;
    json_object_foreach((json_t *)v, key, kv) {
        if (!strcmp(key, "default") || !strcmp(key, "skip_level"))
            continue;
        char kpath[IBP_JPATH_MAX];
        ibp_jpath_key(kpath, path, key);
        if (!key[0])
            return ibp_jerr(x->c, kpath, "empty key");
        n->kids[n->n_kids].seq = (uint32_t)n->n_kids;
        if (!parse_node(x, key, kpath, kv, level, n, &n->kids[n->n_kids++]))
            return false;
    }
    return sort_kids(x, n);
}

/* The value of key at path; a map's keys name location level `level`
 * (0 continent, 1 country, 2... subdivisions, then city). */
static bool parse_node(map_ctx_t *x, const char *key, const char *path, const json_t *v,
                       unsigned level, const ibp_map_node_t *up, ibp_map_node_t *n)
{
    if (up && ++x->n_nodes > IBP_MAP_NODES_MAX)   /* the map itself is no entry */
        return ibp_jerr(x->c, path, "more than %u map entries", IBP_MAP_NODES_MAX);
    if (!(n->key = strdup(key)) || !(n->path = strdup(path[0] ? path : ".")) ||
        !set_rule(x->c, path, &n->rule, up ? up->rule : "", key))
        return ibp_jerr(x->c, path, "out of memory");
    if (!json_is_object(v))
        return parse_leaf(x->c, n->path, v, n);
    n->kind = IBP_MAP_SUB;
    if (!parse_specials(x, path, v, up, n->rule, n))
        return false;
    unsigned kids = level + (n->skip_level ? 1u : 0u);
    if (kids >= IBP_MAP_LEVELS)   /* no level of a MaxMind record is left for its keys */
        return ibp_jerr(x->c, n->path, "a map nested deeper than continent, country, %d "
                        "subdivisions and city", IBP_MAP_SUBS_MAX);
    return parse_kids(x, path, v, kids + 1, n);
}

static void number_lists(ibp_map_node_t *n, size_t *next)
{
    if (n->kind == IBP_MAP_LIST)
        n->id = (uint32_t)++*next;
    if (n->own_dflt)
        number_lists(n->own_dflt, next);
    for (size_t i = 0; i < n->n_kids; i++)
        number_lists(&n->kids[i], next);
}

bool ibp_map_from_json(const ibp_jctx_t *c, const json_t *obj, const char *path,
                       ibp_map_t *out)
{
    *out = (ibp_map_t){0};
    const char *p = path[0] ? path : ".";
    if (!json_is_object(obj))
        return ibp_jerr(c, p, "expected a map object, got %s", ibp_json_type_name(obj));
    map_ctx_t x = {c, 0};
    bool ok = (out->src = strdup(c->src)) && (out->root = calloc(1, sizeof *out->root));
    if (!ok)
        ibp_jerr(c, p, "out of memory");
    else
        ok = parse_node(&x, "", path, obj, 0, NULL, out->root);
    out->n_nodes = x.n_nodes;
    if (ok)
        number_lists(out->root, &out->n_lists);
    if (ok && !(out->json = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        ok = ibp_jerr(c, p, "out of memory");
    if (!ok)
        ibp_map_free(out);
    return ok;
}

bool ibp_map_parse(const char *buf, size_t len, const char *src, ibp_map_t *out,
                   ibp_err_t *err)
{
    *out = (ibp_map_t){0};
    json_t *root = ibp_json_load(buf, len, src, err);
    if (!root)
        return false;
    ibp_jctx_t c = {src, err};
    bool ok = ibp_map_from_json(&c, root, "", out);
    json_decref(root);
    return ok;
}

static bool check_node(const ibp_map_t *m, const ibp_map_node_t *n, const char *const *keys,
                       size_t n_keys, ibp_err_t *err)
{
    for (size_t i = 0; i < n->n_members; i++) {
        size_t k = 0;
        while (k < n_keys && strcmp(keys[k], n->members[i]))
            k++;
        if (k == n_keys) {
            char q[IBP_JQUOTE_MAX + 8];
            ibp_json_quote(q, sizeof q, n->members[i]);
            return ibp_err_set(err, "%s: %s[%zu]: %s is not a member key", m->src, n->path, i, q);
        }
    }
    if (n->own_dflt && !check_node(m, n->own_dflt, keys, n_keys, err))
        return false;
    for (size_t i = 0; i < n->n_kids; i++)
        if (!check_node(m, &n->kids[i], keys, n_keys, err))
            return false;
    return true;
}

bool ibp_map_check_members(const ibp_map_t *m, const char *const *keys, size_t n,
                           ibp_err_t *err)
{
    return !m->root || check_node(m, m->root, keys, n, err);
}

#define MAP_FILE_MAX (16u << 20)   /* gdnsd's maps are hand-written: kilobytes */

bool ibp_node_config_load_map(ibp_node_config_t *cfg, const char *config_dir, ibp_err_t *err)
{
    const char *file = cfg->routing.map_file;
    if (!file || !file[0])
        return true;
    char path[4096], *buf;
    const char *name;
    size_t len;
    if (!ibp_node_config_read_side_file(cfg, config_dir, file, "Map", MAP_FILE_MAX, path,
                                        sizeof path, &name, &buf, &len, err))
        return false;
    ibp_map_t map;
    bool ok = ibp_map_parse(buf, len, name, &map, err);
    if (ok)
        ibp_digest(buf, len, &map.file_hi, &map.file_lo);
    free(buf);
    if (ok) {
        ibp_map_free(&cfg->routing.map);
        cfg->routing.map = map;
    }
    return ok;
}
