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

char *fixture_read_shared(const char *rel, size_t *len)
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
    char *m = members_json ? NULL
                           : fixture_read_shared("testdata/ibp-config/members_professional.json", &n);
    if (!ibp_members_parse(m ? m : members_json, m ? n : strlen(members_json), "members.json",
                           &members, &err))
        fail_msg("%s", err.msg);
    free(m);
    char *s = fixture_read_shared("testdata/ibp-config/services_rpc.json", &n);
    if (!ibp_services_parse(s, n, "services_rpc.json", &services, &err))
        fail_msg("%s", err.msg);
    free(s);
    char *x = statics_json ? NULL : fixture_read_shared("testdata/ibp-config/geodns-static.json", &n);
    if (!ibp_statics_parse(x ? x : statics_json, x ? n : strlen(statics_json), "static.json",
                           &statics, &err))
        fail_msg("%s", err.msg);
    free(x);
    ibp_geo_needs_t needs;
    ibp_geo_classes_t geo;
    assert_true(ibp_geo_needs_from_model(&members, &cfg.overrides, &cfg.routing.nets, &cfg.routing.map, &needs, &err));
    ibp_geo_input_t gi = ibp_geo_input_of(&needs,
                                          fixture_shared("testdata/maxmind/GeoIP2-City-Test.mmdb"));
    if (!ibp_geo_classes_build(&gi, &geo, &err))
        fail_msg("%s", err.msg);
    ibp_client_classes_t clients;   /* every fixture table carries usage's client classes */
    char city[4096], asn[4096];
    snprintf(city, sizeof city, "%s", fixture_shared("testdata/maxmind/GeoIP2-City-Test.mmdb"));
    snprintf(asn, sizeof asn, "%s", fixture_shared("testdata/maxmind/GeoLite2-ASN-Test.mmdb"));
    if (!ibp_client_classes_build(city, asn, &clients, &err))
        fail_msg("%s", err.msg);
    ibp_compile_in_t ci = {.config = &cfg, .members = &members, .services = &services,
                           .statics = &statics, .overrides = &cfg.overrides, .geo = &geo,
                           .clients = &clients, .build_time = 1700000000, .generation = 1,
                           .index_min_nodes = index_min_nodes};
    ibp_compile_out_t out;
    if (!ibp_compile(&ci, &out, &err))
        fail_msg("%s", err.msg);
    *table = out.table;
    *len = out.table_len;
    out.table = NULL;
    ibp_compile_out_free(&out);
    ibp_client_classes_free(&clients);
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

/* ---- repeated builds, as the sidecar makes them ---------------------------- */

struct fixture_builder {
    ibp_node_config_t cfg;
    ibp_members_t members;
    ibp_services_t services;
    ibp_statics_t statics;
    ibp_geo_needs_t needs;
    ibp_geo_classes_t geo;
    uint64_t generation;
};

fixture_builder_t *fixture_builder_new(void)
{
    fixture_builder_t *fb = calloc(1, sizeof *fb);
    assert_non_null(fb);
    ibp_err_t err;
    size_t n;
    const char *node = "{\"System\":{\"ConfigUrls\":{\"MembersConfig\":\"m\","
                       "\"ServicesConfig\":\"s\",\"StaticDNSConfig\":\"x\"}}}";
    if (!ibp_node_config_parse(node, strlen(node), "node.json", &fb->cfg, &err))
        fail_msg("%s", err.msg);
    char *m = fixture_read_shared("testdata/ibp-config/members_professional.json", &n);
    bool ok = ibp_members_parse(m, n, "members.json", &fb->members, &err);
    free(m);
    char *s = fixture_read_shared("testdata/ibp-config/services_rpc.json", &n);
    ok = ok && ibp_services_parse(s, n, "services_rpc.json", &fb->services, &err);
    free(s);
    char *x = fixture_read_shared("testdata/ibp-config/geodns-static.json", &n);
    ok = ok && ibp_statics_parse(x, n, "static.json", &fb->statics, &err);
    free(x);
    ok = ok && ibp_geo_needs_from_model(&fb->members, &fb->cfg.overrides, &fb->cfg.routing.nets, &fb->cfg.routing.map,
                                        &fb->needs, &err);
    ibp_geo_input_t gi = ibp_geo_input_of(&fb->needs,
                                          fixture_shared("testdata/maxmind/GeoIP2-City-Test.mmdb"));
    ok = ok && ibp_geo_classes_build(&gi, &fb->geo, &err) &&
         ibp_geo_classes_index_updates(&fb->geo, &err);
    if (!ok)
        fail_msg("%s", err.msg);
    return fb;
}

void fixture_builder_build(fixture_builder_t *fb, const char *results_json,
                           const ibp_table_t *previous, bool geo_trie, uint8_t **table,
                           size_t *len, ibp_map_stats_t *stats)
{
    ibp_err_t err;
    ibp_health_t health = {0};
    if (results_json &&
        !ibp_health_parse(results_json, strlen(results_json), "results", &health, &err))
        fail_msg("%s", err.msg);
    ibp_compile_in_t ci = {.config = &fb->cfg, .members = &fb->members,
                           .services = &fb->services, .statics = &fb->statics,
                           .overrides = &fb->cfg.overrides, .geo = &fb->geo,
                           .health = results_json ? &health : NULL,
                           .build_time = 1700000000 + fb->generation,
                           .generation = ++fb->generation, .index_min_nodes = 1,
                           .previous = previous, .geo_trie = geo_trie};
    ibp_compile_out_t out;
    if (!ibp_compile(&ci, &out, &err))
        fail_msg("%s", err.msg);
    *table = out.table;
    *len = out.table_len;
    *stats = out.maps;
    out.table = NULL;
    ibp_compile_out_free(&out);
    if (results_json)
        ibp_health_free(&health);
}

void fixture_builder_free(fixture_builder_t *fb)
{
    ibp_geo_classes_free(&fb->geo);
    ibp_geo_needs_free(&fb->needs);
    ibp_members_free(&fb->members);
    ibp_services_free(&fb->services);
    ibp_statics_free(&fb->statics);
    ibp_node_config_free(&fb->cfg);
    free(fb);
}
