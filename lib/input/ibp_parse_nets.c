/* Routing.Nets (issue 16): CIDR network -> ordered member keys or "auto",
 * with gdnsd's semantics (nets.c): IPv4 is stored as v4-compat ::a.b.c.d,
 * so "10.0.0.0/8" and "::10.0.0.0/104" are one network; networks inside
 * the other IPv6 ranges that embed IPv4 are refused, because their clients
 * are looked up as the IPv4 address they carry and would never match. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ibp_file.h"
#include "ibp_json.h"
#include "ibp_model.h"

#define NETS_MAX (1u << 20)        /* entries: gdnsd issue 206 had a million */
#define NETS_MAX_WARNINGS 16
#define NETS_FILE_MAX (256u << 20)

typedef struct embed_space {
    uint8_t prefix[16];
    unsigned len;
    const char *name;
} embed_space_t;

static const embed_space_t embedded[] = {
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, "the v4-mapped space ::ffff:0:0/96"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, "the SIIT space ::ffff:0:0:0/96"},
    {{0x00, 0x64, 0xff, 0x9b}, 96, "the NAT64 space 64:ff9b::/96"},
    {{0x20, 0x01, 0, 0}, 32, "the Teredo space 2001::/32"},
    {{0x20, 0x02}, 16, "the 6to4 space 2002::/16"},
};

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned bytes = bits / 8, rest = bits % 8;
    if (memcmp(a, b, bytes))
        return false;
    return !rest || ((a[bytes] ^ b[bytes]) >> (8 - rest)) == 0;
}

static bool host_bits_zero(const uint8_t a[16], unsigned len)
{
    for (unsigned bit = len; bit < 128; bit++)
        if (a[bit / 8] >> (7 - bit % 8) & 1)
            return false;
    return true;
}

static void clear_host_bits(uint8_t a[16], unsigned len)
{
    for (unsigned bit = len; bit < 128; bit++)
        a[bit / 8] &= (uint8_t)~(1u << (7 - bit % 8));
}

static bool in_v4_space(const uint8_t a[16], unsigned len)
{
    static const uint8_t zero[12];
    return len >= 96 && !memcmp(a, zero, 12);
}

/* "a.b.c.d/n" for the IPv4 space (however it was written), else IPv6. */
static void net_text(const uint8_t a[16], unsigned len, char *out, size_t cap)
{
    char addr[INET6_ADDRSTRLEN];
    if (in_v4_space(a, len)) {
        inet_ntop(AF_INET, a + 12, addr, sizeof addr);
        snprintf(out, cap, "%s/%u", addr, len - 96);
    } else {
        inet_ntop(AF_INET6, a, addr, sizeof addr);
        snprintf(out, cap, "%s/%u", addr, len);
    }
}

static bool parse_len(const char *s, unsigned max, unsigned *out)
{
    if (!s[0] || strlen(s) > 3 || (s[0] == '0' && s[1]))
        return false;
    unsigned v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return false;
        v = v * 10 + (unsigned)(*s - '0');
    }
    *out = v;
    return v <= max;
}

/* key -> network, or an error naming what is wrong with it. */
static bool parse_cidr(const ibp_jctx_t *c, const char *path, const char *key, ibp_net_t *n)
{
    char buf[INET6_ADDRSTRLEN + 8], q[IBP_JQUOTE_MAX + 8];
    ibp_json_quote(q, sizeof q, key);
    const char *slash = strchr(key, '/');
    if (!slash || (size_t)(slash - key) >= INET6_ADDRSTRLEN)
        return ibp_jerr(c, path, "%s is not a CIDR network (address/length)", q);
    memcpy(buf, key, (size_t)(slash - key));
    buf[slash - key] = '\0';
    bool v4 = inet_pton(AF_INET, buf, n->addr + 12) == 1;
    if (!v4 && inet_pton(AF_INET6, buf, n->addr) != 1)
        return ibp_jerr(c, path, "%s is not a CIDR network: bad address", q);
    unsigned len;
    if (!parse_len(slash + 1, v4 ? 32 : 128, &len))
        return ibp_jerr(c, path, "%s is not a CIDR network: bad prefix length (0-%u)", q,
                        v4 ? 32 : 128);
    n->len = (uint8_t)(v4 ? 96 + len : len);
    if (!host_bits_zero(n->addr, n->len)) {
        uint8_t net[16];
        memcpy(net, n->addr, 16);
        clear_host_bits(net, n->len);
        net_text(net, n->len, buf, sizeof buf);
        return ibp_jerr(c, path, "%s has host bits set (the network is %s)", q, buf);
    }
    for (size_t i = 0; i < sizeof embedded / sizeof embedded[0]; i++)
        if (n->len >= embedded[i].len && prefix_eq(n->addr, embedded[i].prefix, embedded[i].len))
            return ibp_jerr(c, path, "%s lies in %s, whose clients are routed as the IPv4 "
                            "address they carry: give the IPv4 network", q, embedded[i].name);
    net_text(n->addr, n->len, buf, sizeof buf);
    return (n->text = strdup(buf)) != NULL || ibp_jerr(c, path, "out of memory");
}

static bool parse_list(const ibp_jctx_t *c, const char *path, const json_t *v, ibp_net_t *n)
{
    const char *s;
    if (json_is_string(v)) {
        s = json_string_value(v);
        if (strcasecmp(s, "auto")) {
            char q[IBP_JQUOTE_MAX + 8];
            ibp_json_quote(q, sizeof q, s);
            return ibp_jerr(c, path, "%s is neither \"auto\" nor a list of member keys", q);
        }
        n->is_auto = true;
        return true;
    }
    if (!json_is_array(v))
        return ibp_jerr(c, path, "expected a list of member keys or \"auto\", got %s",
                        ibp_json_type_name(v));
    size_t count = json_array_size(v);
    if (count == 0 || count > IBP_NET_LIST_MAX)
        return ibp_jerr(c, path, "%zu member keys: give 1 to %d (or \"auto\")", count,
                        IBP_NET_LIST_MAX);
    n->members = calloc(count, sizeof *n->members);
    if (!n->members)
        return ibp_jerr(c, path, "out of memory");
    for (size_t i = 0; i < count; i++) {
        char ipath[IBP_JPATH_MAX];
        ibp_jpath_index(ipath, path, i);
        if (!ibp_jval_string(c, ipath, json_array_get(v, i), &s))
            return false;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(n->members[j], s)) {
                char q[IBP_JQUOTE_MAX + 8];
                ibp_json_quote(q, sizeof q, s);
                return ibp_jerr(c, ipath, "%s is listed twice", q);
            }
        if (!s[0])
            return ibp_jerr(c, ipath, "empty member key");
        if (!(n->members[i] = strdup(s)))
            return ibp_jerr(c, ipath, "out of memory");
        n->n_members++;
    }
    return true;
}

static bool parse_entry(const ibp_jctx_t *c, const char *parent, const char *key,
                        const json_t *v, ibp_net_t *n)
{
    char path[IBP_JPATH_MAX], q[IBP_JQUOTE_MAX + 8];
    ibp_json_quote(q, sizeof q, key);
    snprintf(path, sizeof path, "%s[%s]", parent, q);
    if (!(n->path = strdup(path)))
        return ibp_jerr(c, path, "out of memory");
    return parse_cidr(c, path, key, n) && parse_list(c, path, v, n);
}

static void net_free(ibp_net_t *n)
{
    free(n->text);
    free(n->path);
    ibp_strarr_free(n->members, n->n_members);
}

void ibp_nets_free(ibp_nets_t *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        net_free(&n->v[i]);
    free(n->v);
    free(n->src);
    *n = (ibp_nets_t){0};
}

/* By network, then by path: of two spellings of one network, the same one
 * wins every time, whatever order the file lists them in. */
static int net_cmp(const void *a, const void *b)
{
    const ibp_net_t *x = a, *y = b;
    int r = memcmp(x->addr, y->addr, 16);
    if (!r)
        r = (int)x->len - (int)y->len;
    return r ? r : strcmp(x->path, y->path);
}

static bool same_list(const ibp_net_t *a, const ibp_net_t *b)
{
    if (a->is_auto != b->is_auto || a->n_members != b->n_members)
        return false;
    for (size_t i = 0; i < a->n_members; i++)
        if (strcmp(a->members[i], b->members[i]))
            return false;
    return true;
}

/* Drops the second spelling of a network (gdnsd warns when the lists differ). */
static bool drop_duplicates(const ibp_jctx_t *c, ibp_nets_t *nets, ibp_strv_t *warn)
{
    size_t kept = 0;
    for (size_t i = 0; i < nets->n; i++) {
        ibp_net_t *n = &nets->v[i];
        ibp_net_t *prev = kept ? &nets->v[kept - 1] : NULL;
        if (!prev || memcmp(prev->addr, n->addr, 16) || prev->len != n->len) {
            nets->v[kept++] = *n;
            continue;
        }
        if (!same_list(prev, n) && warn->n < NETS_MAX_WARNINGS) {
            char line[IBP_ERR_MAX];
            snprintf(line, sizeof line, "%s: %s: the same network as %s with another list "
                     "(ignored; %s wins)", c->src, n->path, prev->path, prev->path);
            if (!ibp_strv_push(warn, line))
                return ibp_jerr(c, n->path, "out of memory");
        }
        net_free(n);
    }
    nets->n = kept;
    return true;
}

/* The object at path (".Routing.Nets", or "" for a file of its own). */
static bool nets_from(const ibp_jctx_t *c, const json_t *obj, const char *path,
                      ibp_nets_t *out, ibp_strv_t *warn)
{
    if (!json_is_object(obj))
        return ibp_jerr(c, path[0] ? path : ".", "expected an object of CIDR networks, got %s",
                        ibp_json_type_name(obj));
    size_t count = json_object_size(obj);
    if (count > NETS_MAX)
        return ibp_jerr(c, path[0] ? path : ".", "%zu networks, at most %u", count, NETS_MAX);
    if (!(out->src = strdup(c->src)) || !(out->v = calloc(count ? count : 1, sizeof *out->v)))
        return ibp_jerr(c, path[0] ? path : ".", "out of memory");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        if (!parse_entry(c, path, key, v, &out->v[out->n++]))
            return false;
    }
    if (out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, net_cmp);
    return drop_duplicates(c, out, warn);
}

bool ibp_nets_from_json(const ibp_jctx_t *c, const json_t *obj, const char *path,
                        ibp_nets_t *out, ibp_strv_t *warn)
{
    *out = (ibp_nets_t){0};
    bool ok = nets_from(c, obj, path, out, warn);
    if (!ok)
        ibp_nets_free(out);
    return ok;
}

bool ibp_nets_parse(const char *buf, size_t len, const char *src, ibp_nets_t *out,
                    char ***warnings, size_t *n_warnings, ibp_err_t *err)
{
    *out = (ibp_nets_t){0};
    json_t *root = ibp_json_load(buf, len, src, err);
    if (!root)
        return false;
    ibp_jctx_t c = {src, err};
    ibp_strv_t warn = {.v = *warnings, .n = *n_warnings, .cap = *n_warnings};
    bool ok = ibp_nets_from_json(&c, root, "", out, &warn);
    json_decref(root);
    *warnings = warn.v;
    *n_warnings = warn.n;
    return ok;
}

bool ibp_node_config_load_nets(ibp_node_config_t *cfg, const char *config_dir, ibp_err_t *err)
{
    const char *file = cfg->routing.nets_file;
    if (!file || !file[0])
        return true;
    char path[4096], *buf;
    const char *name;
    size_t len;
    if (!ibp_node_config_read_side_file(cfg, config_dir, file, "Nets", NETS_FILE_MAX, path,
                                        sizeof path, &name, &buf, &len, err))
        return false;
    ibp_nets_t nets;
    bool ok = ibp_nets_parse(buf, len, name, &nets, &cfg->warnings, &cfg->n_warnings, err);
    if (ok)
        ibp_digest(buf, len, &nets.file_hi, &nets.file_lo);
    free(buf);
    if (ok) {
        ibp_nets_free(&cfg->routing.nets);
        cfg->routing.nets = nets;
    }
    return ok;
}
