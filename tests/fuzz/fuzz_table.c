/* ibp_table_attach() (lib/table/ibp_table.h) on arbitrary bytes. An input whose
 * header checksum field is 0 first gets its checksum and file_size filled in
 * (the corpus has each table both ways), so that mutations get past the
 * header to the section validators.
 *
 * If the table attaches, everything that reads a table runs on it:
 * ibp_table_find for every name (also upper-cased and with a trailing dot)
 * and for names cut from the input; ibp_table_route for every host, both
 * families and a set of clients (IPv4, IPv6, v4-mapped, v4-compatible,
 * NAT64, Teredo, 6to4, ECS prefixes with resolver fallback, one made of the
 * input's last bytes); the explanations (no geo locator); the pipe's answers
 * for every name and zone; and a walk of every policy's trie
 * (ibp_table_foreach_leaf).
 * The sanitizers check that validation let nothing through that a reader
 * could trip on; on top of that it asserts (abort): a route gives at most
 * IBP_TBL_MAX_ANSWERS existing targets and a scope within the client's
 * family, a net answer (Routing.Nets) names a member and its net is in the
 * table, so does a map answer (Routing.Map) and the map's text is in
 * the table, and the route from every leaf's network ends on that leaf. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ibp_explain.h"
#include "ibp_table.h"
#include "pipe_proto.h"

#define MAX_NAMES 4096     /* bounds the work per input */
#define MAX_HOSTS 4096
#define MAX_EXPLAINED 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    const char *ip, *ecs;
} clients[] = {
    {"81.2.69.142", NULL}, {"0.0.0.0", NULL}, {"255.255.255.255", NULL}, {"10.1.2.3", NULL},
    {"2001:218::1", NULL}, {"::", NULL}, {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL},
    {"2a02:d3c0::1", NULL}, {"::ffff:81.2.69.142", NULL}, {"::81.2.69.142", NULL},
    {"64:ff9b::5102:458e", NULL}, {"2001:0:4136:e378:8000:63bf:aefd:ba71", NULL},
    {"2002:5102:458e::1", NULL}, {"192.0.2.1", "81.2.69.0/24"}, {"81.2.69.142", "10.0.0.0/8"},
    {"2001:218::1", "2a02:d3c0::/29"}, {"2001:218::1", "fc00::/7"}, {"::1", "214.1.1.0/24"},
    {"81.2.69.142", "0.0.0.0/0"}, {"89.160.20.112", "89.160.20.112/32"},
};

static bool discard(pipe_out_t *out, void *ctx)
{
    (void)ctx;
    out->len = 0;
    return true;
}

static pipe_out_t pipe_out = {.flush = discard};

/* The most specific net holding addr by a scan of them all: what
 * ibp_table_net_of's binary searches must agree with. */
static bool naive_holds(const ibp_tbl_net_t *n, const uint8_t addr[16])
{
    unsigned bytes = n->len / 8, rest = n->len % 8;
    if (n->len > 128 || memcmp(n->addr, addr, bytes))
        return false;
    return !rest || ((n->addr[bytes] ^ addr[bytes]) >> (8 - rest)) == 0;
}

static const ibp_tbl_net_t *naive_net_of(const ibp_table_t *t, const uint8_t addr[16])
{
    const ibp_tbl_net_t *best = NULL;
    for (uint32_t i = 0; i < t->n_nets; i++)
        if (naive_holds(&t->nets[i], addr) && (!best || t->nets[i].len > best->len))
            best = &t->nets[i];
    return best;
}

static void check_route(const ibp_table_t *t, const ibp_client_t *c, const ibp_route_t *r)
{
    if (r->n > IBP_TBL_MAX_ANSWERS || r->scope > (c->v4 ? 32u : 128u) ||
        r->how > IBP_HOW_LAST)
        fuzz_fail("route: %u answers, scope %u for an IPv%d client, how %u", r->n, r->scope,
                  c->v4 ? 4 : 6, (unsigned)r->how);
    if (r->how == IBP_HOW_FAILOVER_SPREAD &&
        (r->spread_of < 2 || r->spread_pick < 1 || r->spread_pick > r->spread_of ||
         r->n > r->spread_of))
        fuzz_fail("route: failover spread pick %u of %u, %u answers", r->spread_pick,
                  r->spread_of, r->n);
    for (unsigned i = 0; i < r->n; i++)
        if (r->target[i] >= t->n[IBP_SEC_TARGETS])
            fuzz_fail("route: target %u of %u does not exist", r->target[i],
                      t->n[IBP_SEC_TARGETS]);
    /* A Routing.Nets answer names at least one member; the net the
     * explanation names holds the client and its text is in the table. */
    if ((r->how == IBP_HOW_NET || r->how == IBP_HOW_NET_FALLBACK) &&
        (r->n == 0 || t->targets[r->target[0]].member == IBP_TBL_NONE))
        fuzz_fail("route: a net answer of %u targets, the first no member's", r->n);
    /* A Routing.Map answer likewise; the map's text is in the table. */
    if ((r->how == IBP_HOW_MAP || r->how == IBP_HOW_MAP_FALLBACK) &&
        (r->n == 0 || t->targets[r->target[0]].member == IBP_TBL_NONE))
        fuzz_fail("route: a map answer of %u targets, the first no member's", r->n);
    if (t->h->map_text && t->h->map_text - 1 >= t->strings_size)
        fuzz_fail("route: map text %u of %zu", t->h->map_text, t->strings_size);
    const ibp_tbl_net_t *net = ibp_table_net_of(t, c->addr.b);
    if (net && (net->text >= t->strings_size || net->len > 128))
        fuzz_fail("route: net text %u of %zu, /%u", net->text, t->strings_size, net->len);
    if (net != naive_net_of(t, c->addr.b))
        fuzz_fail("route: the net search and a scan of every net disagree");
}

/* A client from the input's last 34 bytes: address, resolver, flags, prefix
 * length (the client address is that prefix, as ECS gives it). */
static bool input_client(const uint8_t *data, size_t size, ibp_client_t *c)
{
    if (size < 34)
        return false;
    const uint8_t *p = data + size - 34;
    memset(c, 0, sizeof *c);
    memcpy(c->addr.b, p, 16);
    memcpy(c->resolver.b, p + 16, 16);
    c->v4 = p[32] & 1;
    c->resolver_v4 = p[32] & 2;
    c->has_resolver = p[32] & 4;
    if (c->v4)
        memset(c->addr.b, 0, 12);
    if (c->resolver_v4)
        memset(c->resolver.b, 0, 12);
    ibp_addr_mask(&c->addr, c->v4 ? 96 + p[33] % 33u : p[33] % 129u);
    return true;
}

/* Usage's client class of a client: a class of the table, whose text has
 * the four columns the harvest splits. */
static void check_client_class(const ibp_table_t *t, const ibp_client_t *c)
{
    uint32_t len, cls = ibp_table_client_class(t, c);
    if (cls >= ibp_table_client_classes(t))
        fuzz_fail("client class %u of %u", cls, ibp_table_client_classes(t));
    const char *text = ibp_table_client_text(t, cls, &len);
    unsigned tabs = 0;
    for (uint32_t i = 0; i < len; i++)
        tabs += text[i] == '\t';
    if (tabs != 3)
        fuzz_fail("client class %u: %u columns", cls, tabs + 1);
}

static void route_host(const ibp_table_t *t, uint32_t hi, const ibp_client_t *extra)
{
    const ibp_tbl_host_t *h = &t->hosts[hi];
    const char *name = ibp_table_str(t, t->names[h->name].name);
    for (unsigned fam = 0; fam < 2; fam++) {
        ibp_route_t r;
        ibp_client_t c;
        for (size_t i = 0; i < sizeof clients / sizeof clients[0]; i++) {
            if (!ibp_explain_client(clients[i].ip, clients[i].ecs, &c))
                fuzz_fail("client %s %s does not parse", clients[i].ip, clients[i].ecs);
            ibp_table_route(t, h, fam, &c, &r);
            check_route(t, &c, &r);
            check_client_class(t, &c);
        }
        if (extra) {
            ibp_table_route(t, h, fam, extra, &r);
            check_route(t, extra, &r);
        }
        if (hi < MAX_EXPLAINED) {
            size_t i = (hi * 2 + fam) % (sizeof clients / sizeof clients[0]);
            if (!ibp_explain_client(clients[i].ip, clients[i].ecs, &c))
                abort();   /* the client list is fixed and valid */
            json_t *j = ibp_explain_lookup(t, name, fam, clients[i].ip, clients[i].ecs, &c, NULL, NULL);
            free(json_dumps(j, JSON_COMPACT));
            json_decref(j);
            json_decref(ibp_explain_candidates(t, h, fam));
        }
    }
}

static void find_names(const ibp_table_t *t, const uint8_t *data, size_t size)
{
    char buf[IBP_NAME_BUF + 2];
    for (uint32_t i = 0; i < t->n[IBP_SEC_NAMES] && i < MAX_NAMES; i++) {
        const ibp_tbl_name_t *nm = &t->names[i];
        const char *s = ibp_table_str(t, nm->name);
        ibp_table_find(t, s, nm->name_len);
        if (nm->name_len > IBP_NAME_MAX)
            continue;
        for (uint32_t k = 0; k < nm->name_len; k++)
            buf[k] = (char)toupper((unsigned char)s[k]);
        buf[nm->name_len] = '.';
        ibp_table_find(t, buf, nm->name_len + 1);
    }
    for (size_t len = 1; len <= size && len <= 300; len = len * 3 + 1)
        ibp_table_find(t, (const char *)data + size - len, len);
}

/* The coprocess's answers, ABI 5: ANY for every name, AXFR for every zone. */
static void pipe_answers(const ibp_table_t *t)
{
    pipe_state_t st = {.table = t, .table_path = "fuzz.tbl"};
    pipe_handle_line(&st, "HELO\t5", 6, &pipe_out);
    char line[1400];
    for (uint32_t i = 0; i < t->n[IBP_SEC_NAMES] && i < MAX_NAMES; i++) {
        const ibp_tbl_name_t *nm = &t->names[i];
        int n = snprintf(line, sizeof line, "Q\t%.*s\tIN\tANY\t1\t81.2.69.142\t0.0.0.0\t"
                         "2001:218::/32", (int)(nm->name_len < 1024 ? nm->name_len : 1024),
                         ibp_table_str(t, nm->name));
        pipe_handle_line(&st, line, (size_t)n, &pipe_out);
    }
    for (uint32_t i = 0; i < t->n[IBP_SEC_ZONES] && i < MAX_NAMES; i++) {
        int n = snprintf(line, sizeof line, "AXFR\t%u\t%.1024s", t->zones[i].id,
                         ibp_table_str(t, t->zones[i].name));
        pipe_handle_line(&st, line, (size_t)n, &pipe_out);
    }
    pipe_out.len = 0;
}

typedef struct walk {
    const ibp_table_t *t;
    uint32_t policy;
    uint32_t host;         /* a host routed by this policy, or IBP_TBL_NONE */
} walk_t;

/* The route from a leaf's network must end on that leaf, through the index
 * and, in ::/96, also as an IPv4 client through v4_root (v4-mapped, NAT64,
 * Teredo and 6to4 addresses lead elsewhere: skipped). */
static void walk_leaf(void *ctx, const uint8_t addr[16], unsigned len, uint32_t answer)
{
    static const uint8_t zeros[12] = {0};
    const walk_t *w = ctx;
    ibp_client_t c = {.v4 = false};
    uint32_t v4;
    memcpy(c.addr.b, addr, 16);
    bool in_v4 = !memcmp(addr, zeros, 12);
    if (w->host == IBP_TBL_NONE || (!in_v4 && ibp_addr_v4_embedded(&c.addr, &v4)))
        return;
    const ibp_tbl_policy_t *p = &w->t->policies[w->policy];
    for (int k = 0; k <= in_v4; k++) {
        ibp_route_t r;
        c.v4 = k;
        ibp_table_route(w->t, &w->t->hosts[w->host], p->family == 6, &c, &r);
        if (r.answer != answer)
            fuzz_fail("policy %u: the route from %02x%02x..%02x/%u (as IPv%d) ends on answer "
                      "%u, the trie on %u", w->policy, addr[0], addr[1], addr[15], len,
                      k ? 4 : 6, r.answer, answer);
    }
}

static void walk_policies(const ibp_table_t *t)
{
    for (uint32_t pi = 0; pi < t->n[IBP_SEC_POLICIES]; pi++) {
        const ibp_tbl_policy_t *p = &t->policies[pi];
        walk_t w = {.t = t, .policy = pi, .host = IBP_TBL_NONE};
        for (uint32_t h = 0; h < t->n[IBP_SEC_HOSTS] && w.host == IBP_TBL_NONE; h++)
            if (t->hosts[h].policy[p->family == 6] == pi)
                w.host = h;
        ibp_table_foreach_leaf(t, pi, walk_leaf, &w);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);   /* 8-aligned, as a mapping is */
    if (!buf)
        abort();
    memcpy(buf, data, size);
    ibp_tbl_header_t *h = (ibp_tbl_header_t *)buf;
    if (size >= sizeof *h && h->checksum == 0) {
        h->file_size = size;
        h->checksum = ibp_table_checksum(buf, size);
    }
    ibp_table_t t;
    ibp_err_t err;
    if (ibp_table_attach(buf, size, &t, &err)) {
        /* The derived check on what passed the safety checks: it must not
         * fault either. Only a table that passes it routes as its leaves say
         * (an index or uniform bit may otherwise disagree with the trie:
         * wrong answers, which the checksum guards, never a fault). */
        bool derived = ibp_table_check_derived(&t, &err);
        ibp_client_t extra;
        bool has_extra = input_client(data, size, &extra);
        find_names(&t, data, size);
        for (uint32_t i = 0; i < t.n[IBP_SEC_HOSTS] && i < MAX_HOSTS; i++)
            route_host(&t, i, has_extra ? &extra : NULL);
        pipe_answers(&t);
        if (derived)
            walk_policies(&t);
        ibp_table_close(&t);
    }
    /* The coprocess's way: small sections copied, big ones used in place.
     * It accepts exactly what attach accepts, and routes the same. */
    ibp_table_t sh;
    bool plain = ibp_table_attach(buf, size, &t, &err);
    if (ibp_table_attach_shared(buf, size, NULL, &sh, &err)) {
        if (!plain)
            abort();
        for (uint32_t i = 0; i < sh.n[IBP_SEC_HOSTS] && i < MAX_HOSTS; i++)
            route_host(&sh, i, NULL);
        ibp_table_close(&sh);
    } else if (plain) {
        abort();
    }
    if (plain)
        ibp_table_close(&t);
    free(buf);
    return 0;
}
