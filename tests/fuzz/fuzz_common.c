#include "fuzz_common.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ibp_compile.h"
#include "ibp_file.h"
#include "ibp_health.h"
#include "ibp_inputs.h"
#include "ibp_model.h"

#define MAX_JSON (16u << 20)

const char *fuzz_city_mmdb(void)
{
    static char path[PATH_MAX];
    const char *shared = getenv("IBP_SHARED");
    snprintf(path, sizeof path, "%s/testdata/maxmind/GeoIP2-City-Test.mmdb",
             shared && *shared ? shared : FUZZ_SHARED_DIR);
    return path;
}

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static bool load(const char *path, enum ibp_input_kind kind, void *model, ibp_err_t *err)
{
    char *buf;
    size_t len;
    if (!ibp_file_read(path, MAX_JSON, &buf, &len, err))
        return false;
    const char *base = strrchr(path, '/');
    bool ok = ibp_input_type(kind)->parse(buf, len, base ? base + 1 : path, model, err);
    free(buf);
    return ok;
}

static bool load_url(const char *url, const char *dir, enum ibp_input_kind kind, void *model,
                     ibp_err_t *err)
{
    char path[PATH_MAX];
    return ibp_local_path(url, dir, path, sizeof path, err) && load(path, kind, model, err);
}

typedef struct inputs {
    ibp_node_config_t cfg;
    ibp_members_t members;
    ibp_services_t services;
    ibp_statics_t statics;
    ibp_health_t health;
    ibp_geo_needs_t needs;
    ibp_geo_classes_t geo;
    ibp_client_classes_t clients;
} inputs_t;

static bool compile(inputs_t *in, uint32_t index_min_nodes, uint8_t **table, size_t *len,
                    ibp_err_t *err)
{
    if (!ibp_geo_needs_from_model(&in->members, &in->cfg.overrides, &in->cfg.routing.nets, &in->cfg.routing.map,
                                  &in->needs, err))
        return false;
    ibp_geo_input_t gi = ibp_geo_input_of(&in->needs, fuzz_city_mmdb());
    char city[PATH_MAX], asn[PATH_MAX];
    snprintf(city, sizeof city, "%s", fuzz_city_mmdb());
    snprintf(asn, sizeof asn, "%.*s/GeoLite2-ASN-Test.mmdb",
             (int)(strrchr(city, '/') - city), city);
    if (!ibp_geo_classes_build(&gi, &in->geo, err) ||
        !ibp_client_classes_build(city, asn, &in->clients, err))
        return false;
    ibp_compile_in_t ci = {.config = &in->cfg, .members = &in->members,
                           .services = &in->services, .statics = &in->statics,
                           .overrides = &in->cfg.overrides,
                           .health = in->health.loaded ? &in->health : NULL, .geo = &in->geo,
                           .clients = &in->clients, .build_time = 1700000000, .generation = 1,
                           .index_min_nodes = index_min_nodes};
    ibp_compile_out_t out;
    if (!ibp_compile(&ci, &out, err))
        return false;
    *table = out.table;
    *len = out.table_len;
    out.table = NULL;
    ibp_compile_out_free(&out);
    return true;
}

bool fuzz_table_build(const char *dir, uint32_t index_min_nodes, uint8_t **table, size_t *len,
                      ibp_err_t *err)
{
    inputs_t *in = calloc(1, sizeof *in);
    if (!in)
        return ibp_err_set(err, "out of memory");
    char node[PATH_MAX], results[PATH_MAX];
    snprintf(node, sizeof node, "%s/node.json", dir);
    snprintf(results, sizeof results, "%s/results.json", dir);
    bool has_results = access(results, F_OK) == 0;
    bool ok = load(node, IBP_IN_NODE_CONFIG, &in->cfg, err) &&
              ibp_node_config_load_nets(&in->cfg, dir, err) &&
              ibp_node_config_load_map(&in->cfg, dir, err) &&
              load_url(in->cfg.members_url, dir, IBP_IN_MEMBERS, &in->members, err) &&
              load_url(in->cfg.services_url, dir, IBP_IN_SERVICES, &in->services, err) &&
              load_url(in->cfg.static_url, dir, IBP_IN_STATIC, &in->statics, err) &&
              (!has_results || load(results, IBP_IN_RESULTS, &in->health, err)) &&
              compile(in, index_min_nodes, table, len, err);
    ibp_geo_classes_free(&in->geo);
    ibp_client_classes_free(&in->clients);
    ibp_geo_needs_free(&in->needs);
    ibp_node_config_free(&in->cfg);
    ibp_members_free(&in->members);
    ibp_services_free(&in->services);
    ibp_statics_free(&in->statics);
    ibp_health_free(&in->health);
    free(in);
    return ok;
}

int fuzz_json_run(enum ibp_input_kind kind, void (*check)(const void *model),
                  const uint8_t *data, size_t size)
{
    static const char src[] = "fuzz.json";
    const ibp_input_type_t *type = ibp_input_type(kind);
    unsigned char *model = malloc(type->model_size);
    if (!model)
        abort();
    memset(model, 0xA5, type->model_size);   /* the parser must not rely on a zeroed model */
    ibp_err_t err;
    memset(&err, 0, sizeof err);
    if (type->parse((const char *)data, size, src, model, &err)) {
        if (check)
            check(model);
        type->free_model(model);
    } else {
        for (size_t i = 0; i < type->model_size; i++)
            if (model[i])
                fuzz_fail("failed parse left byte %zu of the model non-zero (%s)", i, err.msg);
        if (strncmp(err.msg, "fuzz.json: ", strlen("fuzz.json: ")) != 0 || strchr(err.msg, '\n'))
            fuzz_fail("error message is not one line \"fuzz.json: ...\": \"%s\"", err.msg);
    }
    free(model);
    return 0;
}
