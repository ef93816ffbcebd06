/* ibpdns-table build: local inputs -> routing table, written atomically. */
#include <getopt.h>
#include <unistd.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "ibp_compile.h"
#include "ibp_file.h"
#include "ibp_health.h"
#include "ibp_inputs.h"
#include "ibp_mmdb.h"
#include "ibp_model.h"
#include "ibp_table.h"
#include "ibp_table_writer.h"

typedef struct build_opts {
    const char *config, *results, *results_source, *mmdb, *asn_mmdb, *out;
} build_opts_t;

typedef struct inputs {
    ibp_node_config_t cfg;
    ibp_members_t members;
    ibp_services_t services;
    ibp_statics_t statics;
    ibp_health_t health;
    char config_dir[PATH_MAX];
    char paths[6][PATH_MAX];
    char mmdb_detail[128];
    ibp_input_desc_t desc[6];
    size_t n_desc;
} inputs_t;

static bool parse_args(int argc, char **argv, build_opts_t *o)
{
    static const struct option longs[] = {
        {"config", required_argument, NULL, 'c'}, {"results", required_argument, NULL, 'r'},
        {"results-source", required_argument, NULL, 's'}, {"mmdb", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'}, {"asn-mmdb", required_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    int ch;
    while ((ch = getopt_long(argc, argv, "c:r:s:m:o:a:", longs, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'r': o->results = optarg; break;
        case 's': o->results_source = optarg; break;
        case 'm': o->mmdb = optarg; break;
        case 'a': o->asn_mmdb = optarg; break;
        case 'o': o->out = optarg; break;
        default: return false;
        }
    }
    return o->config && o->out && optind == argc;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Reads a local JSON input, records its digest, parses it. */
static bool load(inputs_t *in, enum ibp_input_kind kind, const char *path, void *model,
                 ibp_err_t *err)
{
    char *buf;
    size_t len;
    if (!ibp_file_read(path, CLI_MAX_JSON_INPUT, &buf, &len, err))
        return false;
    ibp_input_desc_t *d = &in->desc[in->n_desc];
    snprintf(in->paths[in->n_desc], sizeof in->paths[0], "%s", path);
    *d = (ibp_input_desc_t){.kind = kind, .source = in->paths[in->n_desc], .size = len};
    ibp_digest(buf, len, &d->digest_hi, &d->digest_lo);
    in->n_desc++;
    bool ok = ibp_input_type(kind)->parse(buf, len, base_name(path), model, err);
    free(buf);
    return ok;
}

static bool load_url(inputs_t *in, enum ibp_input_kind kind, const char *url, const char *what,
                     void *model, ibp_err_t *err)
{
    char path[PATH_MAX];
    if (!ibp_local_path(url, in->config_dir, path, sizeof path, err))
        return ibp_err_prefix(err, "%s: %s", base_name(in->cfg.path ? in->cfg.path : "config"), what);
    return load(in, kind, path, model, err);
}

static bool load_all(const build_opts_t *o, inputs_t *in, ibp_err_t *err)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", o->config);
    snprintf(in->config_dir, sizeof in->config_dir, "%s", dirname(tmp));
    if (!load(in, IBP_IN_NODE_CONFIG, o->config, &in->cfg, err) ||
        !ibp_node_config_load_nets(&in->cfg, in->config_dir, err) ||
        !ibp_node_config_load_map(&in->cfg, in->config_dir, err))
        return false;
    for (size_t i = 0; i < in->cfg.n_warnings; i++)
        fprintf(stderr, "ibpdns-table: warning: %s\n", in->cfg.warnings[i]);
    if (!load_url(in, IBP_IN_MEMBERS, in->cfg.members_url, "System.ConfigUrls.MembersConfig",
                  &in->members, err) ||
        !load_url(in, IBP_IN_SERVICES, in->cfg.services_url, "System.ConfigUrls.ServicesConfig",
                  &in->services, err) ||
        !load_url(in, IBP_IN_STATIC, in->cfg.static_url, "System.ConfigUrls.StaticDNSConfig",
                  &in->statics, err))
        return false;
    if (!o->results)
        return true;
    if (!ibp_health_source_accepted(o->results_source)) {
        fprintf(stderr, "ibpdns-table: warning: %s: X-IBP-Results-Source '%s' is not consensus; "
                "ignored (everybody online)\n", o->results, o->results_source);
        return true;
    }
    return load(in, IBP_IN_RESULTS, o->results, &in->health, err);
}

static bool mmdb_input(const build_opts_t *o, inputs_t *in, char *path, size_t cap,
                       ibp_err_t *err)
{
    if (o->mmdb)
        snprintf(path, cap, "%s", o->mmdb);
    else if (in->cfg.maxmind_path && in->cfg.maxmind_path[0])
        snprintf(path, cap, "%s/CityLite.mmdb", in->cfg.maxmind_path);
    else
        return ibp_err_set(err, "no City database: give --mmdb or Maxmind.MaxmindDBPath");
    ibp_input_desc_t *d = &in->desc[in->n_desc];
    snprintf(in->paths[in->n_desc], sizeof in->paths[0], "%s", path);
    *d = (ibp_input_desc_t){.kind = IBP_IN_CITY_DB, .source = in->paths[in->n_desc],
                            .detail = in->mmdb_detail};
    if (!ibp_digest_file(path, &d->digest_hi, &d->digest_lo, &d->size, err))
        return false;
    in->n_desc++;
    return true;
}

static void free_inputs(inputs_t *in)
{
    ibp_node_config_free(&in->cfg);
    ibp_members_free(&in->members);
    ibp_services_free(&in->services);
    ibp_statics_free(&in->statics);
    ibp_health_free(&in->health);
}

/* Serials must grow from table to table even when two builds share a second. */
static void next_identity(const char *out, uint64_t *build_time, uint64_t *generation)
{
    *build_time = (uint64_t)time(NULL);
    *generation = 1;
    uint64_t prev_generation, prev_build_time;
    ibp_err_t ignored;   /* also a table of an older format continues its numbering */
    if (!ibp_table_peek(out, &prev_generation, &prev_build_time, &ignored))
        return;
    if (prev_build_time >= *build_time)
        *build_time = prev_build_time + 1;
    *generation = prev_generation + 1;
}

static json_t *summary(const build_opts_t *o, const ibp_compile_out_t *co, const ibp_table_t *t,
                       const ibp_geo_classes_t *geo)
{
    json_t *warnings = json_array();
    for (size_t i = 0; i < co->n_warnings; i++)
        json_array_append_new(warnings, json_string(co->warnings[i]));
    json_t *g = json_pack("{s:s, s:I, s:I, s:I, s:I}", "database", geo->db_type,
                          "tree_nodes", (json_int_t)geo->n_nodes,
                          "records", (json_int_t)geo->n_records,
                          "classes", (json_int_t)geo->n_cls,
                          "networks", (json_int_t)geo->list.n);
    json_t *maps = json_pack("{s:I, s:b}", "count", (json_int_t)co->n_maps, "coarse_trie",
                             co->maps.coarse);
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:o, s:o}", "table", o->out,
                     "generation", (json_int_t)t->h->generation,
                     "build_time", (json_int_t)t->h->build_time,
                     "zones", (json_int_t)t->n[IBP_SEC_ZONES],
                     "hosts", (json_int_t)t->n[IBP_SEC_HOSTS],
                     "policies", (json_int_t)co->n_policies, "maps", maps,
                     "nodes", (json_int_t)co->n_nodes,
                     "bytes", (json_int_t)co->table_len, "geo", g, "warnings", warnings);
}

static bool compile_and_write(const build_opts_t *o, inputs_t *in, const ibp_geo_classes_t *geo,
                              const ibp_client_classes_t *clients, ibp_err_t *err)
{
    ibp_compile_in_t ci = {
        .config = &in->cfg, .members = &in->members, .services = &in->services,
        .statics = &in->statics, .overrides = &in->cfg.overrides,
        .health = in->health.loaded ? &in->health : NULL, .geo = geo, .clients = clients,
        .inputs = in->desc, .n_inputs = in->n_desc,
    };
    next_identity(o->out, &ci.build_time, &ci.generation);
    ibp_compile_out_t co;
    if (!ibp_compile(&ci, &co, err))
        return false;
    for (size_t i = 0; i < co.n_warnings; i++)
        fprintf(stderr, "ibpdns-table: warning: %s\n", co.warnings[i]);
    ibp_table_t check;
    bool ok = ibp_table_attach(co.table, co.table_len, &check, err) &&
              ibp_table_check_derived(&check, err) && ibp_table_write_file(o->out, co.table, co.table_len, err);
    if (ok)
        cli_print_json(summary(o, &co, &check, geo), true);
    ibp_compile_out_free(&co);
    return ok;
}

int cli_build(int argc, char **argv)
{
    build_opts_t o;
    if (!parse_args(argc, argv, &o))
        return cli_usage();
    inputs_t *in = calloc(1, sizeof *in);
    if (!in)
        return cli_fail("out of memory");
    ibp_err_t err = {{0}};
    char mmdb[PATH_MAX];
    ibp_geo_needs_t needs = {0};
    ibp_geo_classes_t geo = {0};
    ibp_client_classes_t clients = {0};
    bool ok = load_all(&o, in, &err) && mmdb_input(&o, in, mmdb, sizeof mmdb, &err) &&
              ibp_geo_needs_from_model(&in->members, &in->cfg.overrides, &in->cfg.routing.nets, &in->cfg.routing.map,
                                       &needs, &err);
    if (ok) {
        ibp_geo_input_t gi = ibp_geo_input_of(&needs, mmdb);
        char asn[PATH_MAX];   /* IBP's ASN file beside the City one, unless given */
        const char *slash = strrchr(mmdb, '/');
        snprintf(asn, sizeof asn, "%.*s/AsnLite.mmdb", slash ? (int)(slash - mmdb) : 1,
                 slash ? mmdb : ".");
        const char *asn_path = o.asn_mmdb ? o.asn_mmdb : access(asn, R_OK) == 0 ? asn : NULL;
        ok = ibp_geo_classes_build(&gi, &geo, &err) &&
             ibp_client_classes_build(mmdb, asn_path, &clients, &err);
    }
    if (ok) {
        char date[32];
        ibp_format_utc(geo.build_epoch, date);
        snprintf(in->mmdb_detail, sizeof in->mmdb_detail, "%s built %s", geo.db_type, date);
        ok = compile_and_write(&o, in, &geo, &clients, &err);
    }
    ibp_client_classes_free(&clients);
    ibp_geo_classes_free(&geo);
    ibp_geo_needs_free(&needs);
    free_inputs(in);
    free(in);
    return ok ? 0 : cli_fail("%s", err.msg);
}
