/* ibpdns-table info | lookup | dump | verify: read-only views of a table. */
#include <arpa/inet.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ibp_explain.h"
#include "ibp_file.h"
#include "ibp_geo.h"
#include "ibp_mmdb.h"
#include "ibp_table.h"

static const char *const input_kinds[] = {"node-config", "members", "services", "static",
                                          "results", "city-db"};

static int open_table(const char *path, ibp_table_t *t)
{
    ibp_err_t err;
    if (!ibp_table_open(path, t, &err))
        return cli_fail("%s", err.msg);
    return 0;
}

static json_t *json_digest(const ibp_tbl_input_t *in)
{
    char hex[33];
    snprintf(hex, sizeof hex, "%016" PRIx64 "%016" PRIx64, in->digest_hi, in->digest_lo);
    return json_string(hex);
}

static json_t *inputs_json(const ibp_table_t *t)
{
    json_t *arr = json_array();
    for (uint32_t i = 0; i < t->n[IBP_SEC_INPUTS]; i++) {
        const ibp_tbl_input_t *in = &t->inputs[i];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:o, s:I}",
            "kind", in->kind < 6 ? input_kinds[in->kind] : "?",
            "source", ibp_table_str(t, in->source), "detail", ibp_table_str(t, in->detail),
            "xxh3_128", json_digest(in), "bytes", (json_int_t)in->size));
    }
    return arr;
}

int cli_info(int argc, char **argv)
{
    if (argc != 2)
        return cli_usage();
    ibp_table_t t;
    if (open_table(argv[1], &t))
        return 1;
    char built[32];
    ibp_format_utc(t.h->build_time, built);
    json_t *counts = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "zones", (json_int_t)t.n[IBP_SEC_ZONES], "names", (json_int_t)t.n[IBP_SEC_NAMES],
        "records", (json_int_t)t.n[IBP_SEC_RRS], "hosts", (json_int_t)t.n[IBP_SEC_HOSTS],
        "members", (json_int_t)t.n[IBP_SEC_MEMBERS], "policies", (json_int_t)t.n[IBP_SEC_POLICIES],
        "tree_nodes", (json_int_t)t.n[IBP_SEC_NODES], "answers", (json_int_t)t.n[IBP_SEC_ANSWERS],
        "trie_indexes", (json_int_t)(t.n[IBP_SEC_INDEX] / IBP_TBL_INDEX_SIZE));
    /* usage's client classes (country, ASN); 1 = none in the table, all unknown */
    json_object_set_new(counts, "client_classes", json_integer(ibp_table_client_classes(&t)));
    json_object_set_new(counts, "client_class_nodes",
                        json_integer(t.n[IBP_SEC_CLIENT_NODES]));
    json_object_set_new(counts, "nets", json_integer(t.n_nets));   /* Routing.Nets entries */
    json_t *zones = json_array();
    for (uint32_t i = 0; i < t.n[IBP_SEC_ZONES]; i++)
        json_array_append_new(zones, json_pack("{s:s, s:I}", "zone",
            ibp_table_str(&t, t.zones[i].name), "id", (json_int_t)t.zones[i].id));
    char checksum[17];
    snprintf(checksum, sizeof checksum, "%016" PRIx64, t.h->checksum);
    cli_print_json(json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:I, s:I, s:b, s:o, s:o, s:o}",
        "table", argv[1], "format_version", (json_int_t)t.h->version,
        "generation", (json_int_t)t.h->generation, "build_time", (json_int_t)t.h->build_time,
        "built", built, "checksum", checksum, "bytes", (json_int_t)t.size,
        "ttl", (json_int_t)t.h->ttl,
        "apex_soa_in_any", !(t.h->flags & IBP_HDR_NO_APEX_SOA_IN_ANY),
        "inputs", inputs_json(&t), "counts", counts,
        "zones", zones), true);
    ibp_table_close(&t);
    return 0;
}

int cli_verify(int argc, char **argv)
{
    if (argc != 2)
        return cli_usage();
    ibp_table_t t;
    ibp_err_t err;
    bool opened = ibp_table_open(argv[1], &t, &err);
    if (!opened || !ibp_table_check_derived(&t, &err)) {
        if (opened) {
            ibp_err_prefix(&err, "%s", argv[1]);
            ibp_table_close(&t);
        }
        cli_print_json(json_pack("{s:s, s:b, s:s}", "table", argv[1], "ok", 0, "error", err.msg), false);
        return 1;
    }
    cli_print_json(json_pack("{s:s, s:b, s:I}", "table", argv[1], "ok", 1,
                             "generation", (json_int_t)t.h->generation), false);
    ibp_table_close(&t);
    return 0;
}

/* ---- lookup ------------------------------------------------------------- */

typedef struct lookup_opts {
    const char *table, *name, *ip, *ecs, *mmdb;
    unsigned family;
    bool batch;            /* "IP [ECS-PREFIX]" lines on stdin, a JSON line each */
} lookup_opts_t;

static bool parse_lookup_args(int argc, char **argv, lookup_opts_t *o)
{
    static const struct option longs[] = {
        {"type", required_argument, NULL, 't'}, {"ecs", required_argument, NULL, 'e'},
        {"mmdb", required_argument, NULL, 'm'}, {"batch", no_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    int ch;
    while ((ch = getopt_long(argc, argv, "t:e:m:b", longs, NULL)) != -1) {
        if (ch == 't' && !strcasecmp(optarg, "A"))
            o->family = 0;
        else if (ch == 't' && !strcasecmp(optarg, "AAAA"))
            o->family = 1;
        else if (ch == 'e')
            o->ecs = optarg;
        else if (ch == 'm')
            o->mmdb = optarg;
        else if (ch == 'b')
            o->batch = true;
        else
            return false;
    }
    if (argc - optind != (o->batch ? 2 : 3) || (o->batch && o->ecs))
        return false;
    o->table = argv[optind];
    o->name = argv[optind + 1];
    o->ip = o->batch ? NULL : argv[optind + 2];
    return true;
}

static const char *city_db(const ibp_table_t *t, const lookup_opts_t *o)
{
    if (o->mmdb)
        return o->mmdb;
    for (uint32_t i = 0; i < t->n[IBP_SEC_INPUTS]; i++)
        if (t->inputs[i].kind == IBP_IN_CITY_DB && access(ibp_table_str(t, t->inputs[i].source), R_OK) == 0)
            return ibp_table_str(t, t->inputs[i].source);
    return NULL;
}

/* Batch: one "IP [ECS-PREFIX]" per line in, one JSON line per query out. */
static int lookup_batch(const ibp_table_t *t, lookup_opts_t *o, ibp_geo_locator_t *loc)
{
    ibp_explain_map_t maps = {0};   /* the table's map, parsed once for every line */
    char line[512];
    unsigned long lineno = 0;
    int rc = 0;
    while (fgets(line, sizeof line, stdin)) {
        lineno++;
        char *ip = strtok(line, " \t\r\n");
        if (!ip)
            continue;
        char *ecs = strtok(NULL, " \t\r\n");
        ibp_client_t client;
        if (!ibp_explain_client(ip, ecs, &client)) {
            cli_print_json(json_pack("{s:I, s:s}", "line", (json_int_t)lineno, "error",
                                     "not an IP address (and prefix)"), false);
            rc = 1;
            continue;
        }
        cli_print_json(ibp_explain_lookup(t, o->name, o->family, ip, ecs, &client, loc, &maps),
                       false);
    }
    ibp_explain_map_free(&maps);
    return rc;
}

int cli_lookup(int argc, char **argv)
{
    lookup_opts_t o;
    if (!parse_lookup_args(argc, argv, &o))
        return cli_usage();
    ibp_client_t client;
    if (!o.batch && !ibp_explain_client(o.ip, o.ecs, &client))
        return cli_fail("'%s'%s%s: not an IP address%s", o.ip, o.ecs ? " / " : "",
                        o.ecs ? o.ecs : "", o.ecs ? " and prefix" : "");
    ibp_table_t t;
    if (open_table(o.table, &t))
        return 1;
    const char *db = city_db(&t, &o);
    ibp_geo_locator_t *loc = NULL;
    ibp_err_t err;
    if (db && !ibp_geo_locator_open(db, &loc, &err))
        fprintf(stderr, "ibpdns-table: warning: %s (no locations or distances)\n", err.msg);
    int rc = 0;
    if (o.batch)
        rc = lookup_batch(&t, &o, loc);
    else
        cli_print_json(ibp_explain_lookup(&t, o.name, o.family, o.ip, o.ecs, &client, loc, NULL),
                       true);
    ibp_geo_locator_close(loc);
    ibp_table_close(&t);
    return rc;
}

/* ---- dump --------------------------------------------------------------- */

typedef struct dumper {
    const ibp_table_t *t;
    const ibp_tbl_policy_t *p;
    uint32_t policy;
    char **answer_json;    /* per answer of the policy, precomputed */
} dumper_t;

static const char *answer_kind(const ibp_tbl_answer_t *a)
{
    static const char *const kinds[] = {"targets", "unlocated", "none", "undef",
                                        "failover-spread"};
    if (a->kind == IBP_ANS_TARGETS)
        return (a->flags & IBP_ANSF_OVERRIDE) ? "override"
             : (a->flags & IBP_ANSF_FAIL_OPEN) ? "fail-open"
             : (a->flags & IBP_ANSF_NET) ? "net"
             : (a->flags & IBP_ANSF_NET_FALLBACK) ? "net-fallback"
             : (a->flags & IBP_ANSF_MAP) ? "map"
             : (a->flags & IBP_ANSF_MAP_FALLBACK) ? "map-fallback" : "nearest";
    return a->kind <= IBP_ANS_FAILOVER_SPREAD ? kinds[a->kind] : "?";
}

static void print_network(const uint8_t addr[16], unsigned len, char *out, size_t cap)
{
    static const uint8_t zeros[12] = {0};
    char text[INET6_ADDRSTRLEN];
    if (len >= 96 && !memcmp(addr, zeros, 12)) {
        inet_ntop(AF_INET, &addr[12], text, sizeof text);
        snprintf(out, cap, "%s/%u", text, len - 96);
    } else {
        inet_ntop(AF_INET6, addr, text, sizeof text);
        snprintf(out, cap, "%s/%u", text, len);
    }
}

static void dump_leaf(void *ctx, const uint8_t addr[16], unsigned depth, uint32_t idx)
{
    const dumper_t *d = ctx;
    char net[64];
    print_network(addr, depth, net, sizeof net);
    const ibp_tbl_answer_t *a = &d->t->answers[d->p->answer_first + idx];
    printf("{\"policy\":%u,\"family\":\"%s\",\"network\":\"%s\",\"kind\":\"%s\",\"answer\":%s}\n",
           d->policy, d->p->family == 6 ? "AAAA" : "A", net, answer_kind(a), d->answer_json[idx]);
}

static char *answer_targets_json(const ibp_table_t *t, const ibp_tbl_answer_t *a)
{
    json_t *arr = json_array();
    for (unsigned i = 0; i < a->n; i++) {
        const ibp_tbl_target_t *tg = &t->targets[a->target[i]];
        json_t *name = tg->member != IBP_TBL_NONE
            ? json_string(ibp_table_str(t, t->members[tg->member].name))
            : json_sprintf("override:%s", tg->cc);
        json_array_append_new(arr, json_pack("{s:o, s:s}", "member", name, "address",
                                             ibp_table_str(t, tg->text)));
    }
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return s;
}

static void dump_policy_header(const ibp_table_t *t, uint32_t pi)
{
    json_t *hosts = json_array();
    for (uint32_t h = 0; h < t->n[IBP_SEC_HOSTS]; h++)
        if (t->hosts[h].policy[t->policies[pi].family == 6] == pi)
            json_array_append_new(hosts, json_string(ibp_table_str(t, t->names[t->hosts[h].name].name)));
    cli_print_json(json_pack("{s:I, s:s, s:o, s:I}", "policy", (json_int_t)pi, "family",
                             t->policies[pi].family == 6 ? "AAAA" : "A", "hosts", hosts,
                             "answers_per_family", (json_int_t)t->policies[pi].answers_per_family),
                   false);
}

int cli_dump(int argc, char **argv)
{
    if (argc != 2)
        return cli_usage();
    ibp_table_t t;
    if (open_table(argv[1], &t))
        return 1;
    for (uint32_t pi = 0; pi < t.n[IBP_SEC_POLICIES]; pi++) {
        dumper_t d = {.t = &t, .p = &t.policies[pi], .policy = pi};
        d.answer_json = calloc(d.p->answer_count, sizeof *d.answer_json);
        for (uint32_t a = 0; d.answer_json && a < d.p->answer_count; a++)
            d.answer_json[a] = answer_targets_json(&t, &t.answers[d.p->answer_first + a]);
        dump_policy_header(&t, pi);
        if (d.answer_json)
            ibp_table_foreach_leaf(&t, pi, dump_leaf, &d);
        for (uint32_t a = 0; d.answer_json && a < d.p->answer_count; a++)
            free(d.answer_json[a]);
        free(d.answer_json);
    }
    ibp_table_close(&t);
    return fflush(stdout) == 0 ? 0 : cli_fail("writing the dump failed");
}
