#include "fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ibp_compile.h"
#include "ibp_file.h"

const char *fixture_shared(const char *rel)
{
    static char path[4096];
    const char *shared = getenv("IBP_SHARED");
    snprintf(path, sizeof path, "%s/%s", shared ? shared : "../shared", rel);
    return path;
}

static char *read_shared(const char *rel, size_t *len)
{
    char *buf;
    ibp_err_t err;
    if (!ibp_file_read(fixture_shared(rel), 1 << 24, &buf, len, &err))
        fail_msg("%s", err.msg);
    return buf;
}

void fixture_build(const char *members_json, const char *statics_json, uint8_t **table,
                   size_t *len)
{
    fixture_build_indexed(members_json, statics_json, 0, table, len);
}

static void build(const char *members_json, const char *statics_json, const char *routing_json,
                  uint32_t index_min_nodes, uint8_t **table, size_t *len)
{
    ibp_err_t err;
    size_t n;
    ibp_node_config_t cfg;
    char node[1024];
    snprintf(node, sizeof node, "{\"System\":{\"ConfigUrls\":{\"MembersConfig\":\"m\","
             "\"ServicesConfig\":\"s\",\"StaticDNSConfig\":\"x\"}}, \"Routing\": %s}",
             routing_json ? routing_json : "{}");
    if (!ibp_node_config_parse(node, strlen(node), "node.json", &cfg, &err))
        fail_msg("%s", err.msg);
    ibp_members_t members;
    ibp_services_t services;
    ibp_statics_t statics;
    char *m = members_json ? NULL : read_shared("testdata/ibp-config/members_professional.json", &n);
    if (!ibp_members_parse(m ? m : members_json, m ? n : strlen(members_json), "members.json",
                           &members, &err))
        fail_msg("%s", err.msg);
    free(m);
    char *s = read_shared("testdata/ibp-config/services_rpc.json", &n);
    if (!ibp_services_parse(s, n, "services_rpc.json", &services, &err))
        fail_msg("%s", err.msg);
    free(s);
    char *x = statics_json ? NULL : read_shared("testdata/ibp-config/geodns-static.json", &n);
    if (!ibp_statics_parse(x ? x : statics_json, x ? n : strlen(statics_json), "static.json",
                           &statics, &err))
        fail_msg("%s", err.msg);
    free(x);
    ibp_geo_needs_t needs;
    ibp_geo_classes_t geo;
    assert_true(ibp_geo_needs_from_model(&members, &cfg.overrides, &needs, &err));
    ibp_geo_input_t gi = {.mmdb_path = fixture_shared("testdata/maxmind/GeoIP2-City-Test.mmdb"),
                          .sites = needs.sites, .n_sites = needs.n_sites,
                          .ccs = (const char (*)[3])needs.ccs, .n_ccs = needs.n_ccs,
                          .fingerprint = needs.fingerprint};
    if (!ibp_geo_classes_build(&gi, &geo, &err))
        fail_msg("%s", err.msg);
    ibp_compile_in_t ci = {.config = &cfg, .members = &members, .services = &services,
                           .statics = &statics, .overrides = &cfg.overrides, .geo = &geo,
                           .build_time = 1700000000, .generation = 1,
                           .index_min_nodes = index_min_nodes};
    ibp_compile_out_t out;
    if (!ibp_compile(&ci, &out, &err))
        fail_msg("%s", err.msg);
    *table = out.table;
    *len = out.table_len;
    out.table = NULL;
    ibp_compile_out_free(&out);
    ibp_geo_classes_free(&geo);
    ibp_geo_needs_free(&needs);
    ibp_members_free(&members);
    ibp_services_free(&services);
    ibp_statics_free(&statics);
    ibp_node_config_free(&cfg);
}

void fixture_build_indexed(const char *members_json, const char *statics_json,
                           uint32_t index_min_nodes, uint8_t **table, size_t *len)
{
    build(members_json, statics_json, NULL, index_min_nodes, table, len);
}

void fixture_build_routing(const char *routing_json, uint8_t **table, size_t *len)
{
    build(NULL, NULL, routing_json, 0, table, len);
}

void fixture_attach(const char *members_json, const char *statics_json, uint8_t **table,
                    size_t *len, ibp_table_t *t)
{
    fixture_build(members_json, statics_json, table, len);
    ibp_err_t err;
    if (!ibp_table_attach(*table, *len, t, &err) || !ibp_table_check_derived(t, &err))
        fail_msg("%s", err.msg);
}

void *fixture_table_new(size_t state_size, const char *statics_json)
{
    fixture_table_t *f = calloc(1, state_size);
    assert_non_null(f);
    fixture_attach(NULL, statics_json, &f->buf, &f->len, &f->t);
    return f;
}

int fixture_table_free(void **state)
{
    fixture_table_t *f = *state;
    if (!f)
        return 0;   /* setup failed and said why */
    free(f->buf);
    free(f);
    return 0;
}
