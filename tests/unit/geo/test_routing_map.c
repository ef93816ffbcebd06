/* Routing.Map (issue 16): its parse and gdnsd's map lookup (dcmap.c):
 * lists, auto, default inherited from above, skip_level, subdivisions a
 * map leaves out, continent and country never skipped, case-insensitive
 * keys; and every refused input with its file and JSON path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "ibp_compile.h"
#include "ibp_map.h"

static const char MAP[] =
    "{\"default\": [\"A\"],"
    " \"EU\": {\"default\": [\"B\"], \"DE\": {\"BY\": {\"Munich\": [\"C\"]}},"
    "          \"FR\": {\"Paris\": [\"D\"]}, \"GB\": \"auto\"},"
    " \"NA\": {\"US\": {\"skip_level\": true, \"Dallas\": [\"E\"]}, \"CA\": {}},"
    " \"OC\": {\"NZ\": {\"OTA\": [\"E\", \"A\"]}},"
    " \"AS\": [\"C\", \"B\"]}";

static void parse_ok(const char *json, ibp_map_t *m)
{
    ibp_err_t err;
    if (!ibp_map_parse(json, strlen(json), "map.json", m, &err))
        fail_msg("%s", err.msg);
}

/* The rule text for a location "CONT/CC/sub.../city" (a trailing "@city"). */
static const char *rule_of(const ibp_map_t *m, const char *cont, const char *cc,
                           const char *sub1, const char *sub2, const char *city,
                           ibp_map_kind_t *kind, const char **first)
{
    static ibp_map_rule_t r;
    ibp_map_loc_t loc = {.continent = cont, .country = cc, .city = city};
    if (sub1)
        loc.subs[loc.n_subs++] = sub1;
    if (sub2)
        loc.subs[loc.n_subs++] = sub2;
    *kind = ibp_map_resolve(m, &loc, &r);
    *first = r.node && r.node->n_members ? r.node->members[0] : "";
    return r.text;
}

#define EXPECT(m, cont, cc, s1, s2, city, want_rule, want_kind, want_first)             \
    do {                                                                                \
        ibp_map_kind_t k_;                                                              \
        const char *f_;                                                                 \
        assert_string_equal(rule_of(m, cont, cc, s1, s2, city, &k_, &f_), want_rule);  \
        assert_int_equal(k_, want_kind);                                                \
        assert_string_equal(f_, want_first);                                            \
    } while (0)

static void lists_and_defaults(void **state)
{
    (void)state;
    ibp_map_t m;
    parse_ok(MAP, &m);
    EXPECT(&m, "AS", "JP", NULL, NULL, "Tokyo", "AS", IBP_MAP_LIST, "C");      /* continent */
    EXPECT(&m, "EU", "DE", "BY", NULL, "Munich", "EU/DE/BY/Munich", IBP_MAP_LIST, "C");
    EXPECT(&m, "EU", "DE", "HE", NULL, "Frankfurt", "EU/default", IBP_MAP_LIST, "B");
    EXPECT(&m, "EU", "DE", "BY", NULL, "Nuremberg", "EU/default", IBP_MAP_LIST, "B");
    EXPECT(&m, "EU", "IT", NULL, NULL, NULL, "EU/default", IBP_MAP_LIST, "B");
    EXPECT(&m, "AF", "ZA", NULL, NULL, NULL, "default", IBP_MAP_LIST, "A");
    EXPECT(&m, NULL, NULL, NULL, NULL, NULL, "default", IBP_MAP_LIST, "A");   /* unlocated */
    EXPECT(&m, "EU", "GB", "ENG", NULL, "London", "EU/GB", IBP_MAP_AUTO, "");
    EXPECT(&m, "NA", "CA", "QC", NULL, "Montreal", "default", IBP_MAP_LIST, "A"); /* empty map */
    EXPECT(&m, "eu", "de", "by", NULL, "MUNICH", "EU/DE/BY/Munich", IBP_MAP_LIST, "C");
    ibp_map_free(&m);
}

static void subdivisions_left_out_and_skip_level(void **state)
{
    (void)state;
    ibp_map_t m;
    parse_ok(MAP, &m);
    EXPECT(&m, "EU", "FR", "IDF", "75", "Paris", "EU/FR/Paris", IBP_MAP_LIST, "D");
    EXPECT(&m, "OC", "NZ", "S", "OTA", "Dunedin", "OC/NZ/OTA", IBP_MAP_LIST, "E");
    EXPECT(&m, "OC", "NZ", "OTA", NULL, "Dunedin", "OC/NZ/OTA", IBP_MAP_LIST, "E");
    /* skip_level in US: the first level below is not keyed, the rest searched */
    EXPECT(&m, "NA", "US", "TX", NULL, "Dallas", "NA/US/Dallas", IBP_MAP_LIST, "E");
    EXPECT(&m, "NA", "US", "TX", "X", "Dallas", "NA/US/Dallas", IBP_MAP_LIST, "E");
    /* ... so a record without subdivisions has its city skipped (as gdnsd's) */
    EXPECT(&m, "NA", "US", NULL, NULL, "Dallas", "default", IBP_MAP_LIST, "A");
    ibp_map_free(&m);
}

static void continent_and_country_never_skipped(void **state)
{
    (void)state;
    ibp_map_t m;
    parse_ok("{\"DE\": [\"A\"], \"EU\": {\"BY\": [\"B\"]}}", &m);
    EXPECT(&m, "EU", "DE", "BY", NULL, NULL, "", IBP_MAP_AUTO, "");   /* no default: auto */
    ibp_map_free(&m);
    parse_ok("{\"skip_level\": true, \"DE\": [\"A\"], \"default\": \"auto\"}", &m);
    EXPECT(&m, "EU", "DE", "BY", NULL, NULL, "DE", IBP_MAP_LIST, "A");
    EXPECT(&m, "EU", "FR", NULL, NULL, NULL, "default", IBP_MAP_AUTO, "");
    ibp_map_free(&m);
}

static void no_map_is_auto(void **state)
{
    (void)state;
    ibp_map_t m = {0};
    EXPECT(&m, "EU", "DE", NULL, NULL, NULL, "", IBP_MAP_AUTO, "");
}

/* 13 levels nest (continent, country, ten subdivisions, city), 14 do not. */
static void nesting_bounded(void **state)
{
    (void)state;
    char json[1024] = "", tail[64] = "";
    for (int depth = 13; depth <= 14; depth++) {
        size_t len = 0;
        for (int i = 0; i < depth; i++)
            len += (size_t)snprintf(json + len, sizeof json - len, "{\"k%d\": ", i);
        len += (size_t)snprintf(json + len, sizeof json - len, "[\"A\"]");
        for (int i = 0; i < depth; i++)
            json[len++] = '}';
        json[len] = '\0';
        ibp_map_t m;
        ibp_err_t err;
        bool ok = ibp_map_parse(json, len, "map.json", &m, &err);
        assert_int_equal(ok, depth == 13);
        if (ok)
            ibp_map_free(&m);
        else
            assert_string_equal(err.msg, "map.json: .k0.k1.k2.k3.k4.k5.k6.k7.k8.k9.k10.k11.k12: "
                                "a map nested deeper than continent, country, 10 "
                                "subdivisions and city");
    }
    (void)tail;
}

static char *wide_map(int keys)
{
    size_t cap = (size_t)keys * 24 + 64, len = 0;
    char *json = malloc(cap);
    assert_non_null(json);
    json[len++] = '{';
    for (int i = 0; i < keys; i++)
        len += (size_t)snprintf(json + len, cap - len, "%s\"c%d\": [\"A\"]", i ? "," : "", i);
    snprintf(json + len, cap - len, "}");
    return json;
}

/* 100,000 keys at one level (IBP_MAP_NODES_MAX entries, the most there may
 * be) parse and resolve fast (a sorted level). */
static void a_wide_level_is_cheap(void **state)
{
    (void)state;
    char *json = wide_map(100000);
    ibp_map_t m;
    parse_ok(json, &m);
    free(json);
    assert_int_equal(m.root->n_kids, 100000);
    EXPECT(&m, "C77777", NULL, NULL, NULL, NULL, "c77777", IBP_MAP_LIST, "A");
    EXPECT(&m, "c100000", NULL, NULL, NULL, NULL, "", IBP_MAP_AUTO, "");
    ibp_map_free(&m);
}

static void refuse(const char *json, const char *want)
{
    ibp_map_t m;
    ibp_err_t err;
    json_t *root = json_loads(json, 0, NULL);
    assert_non_null(root);
    ibp_jctx_t c = {"node.json", &err};
    bool ok = ibp_map_from_json(&c, root, ".Routing.Map", &m);
    json_decref(root);
    if (ok)
        fail_msg("accepted %s", json);
    assert_null(m.root);
    assert_string_equal(err.msg, want);
}

static void bad_input(void **state)
{
    (void)state;
    char *json = wide_map(100001);
    refuse(json, "node.json: .Routing.Map.c100000: more than 100000 map entries");
    free(json);
    refuse("[\"A\"]", "node.json: .Routing.Map: expected a map object, got array");
    refuse("{\"EU\": {\"DE\": 3}}",
           "node.json: .Routing.Map.EU.DE: expected a list of member keys, \"auto\" or a "
           "map, got number");
    refuse("{\"EU\": {\"DE\": \"nearest\"}}",
           "node.json: .Routing.Map.EU.DE: \"nearest\" is neither \"auto\" nor a list of "
           "member keys nor a map");
    refuse("{\"EU\": {\"default\": {\"x\": [\"A\"]}}}",
           "node.json: .Routing.Map.EU.default: a default is a list of member keys or "
           "\"auto\", not a map");
    refuse("{\"EU\": {\"skip_level\": 1}}",
           "node.json: .Routing.Map.EU.skip_level: expected a boolean, got number");
    refuse("{\"EU\": [\"A\"], \"eu\": [\"B\"]}",
           "node.json: .Routing.Map.eu: \"eu\" is the key .Routing.Map.EU again (keys match "
           "case-insensitively)");
    refuse("{\"EU\": []}", "node.json: .Routing.Map.EU: 0 member keys: give 1 to 64 (or \"auto\")");
    refuse("{\"EU\": [\"A\", \"A\"]}", "node.json: .Routing.Map.EU[1]: \"A\" is listed twice");
    refuse("{\"EU\": [\"A\", 2]}", "node.json: .Routing.Map.EU[1]: expected a string, got number");
    refuse("{\"EU\": {\"\": [\"A\"]}}", "node.json: .Routing.Map.EU.: empty key");
}

static void unknown_member(void **state)
{
    (void)state;
    ibp_map_t m;
    ibp_err_t err;
    parse_ok(MAP, &m);
    static const char *const keys[] = {"A", "B", "C", "D"};
    assert_false(ibp_map_check_members(&m, keys, 4, &err));
    assert_non_null(strstr(err.msg, "map.json: "));
    assert_non_null(strstr(err.msg, "[0]: \"E\" is not a member key"));
    static const char *const all[] = {"A", "B", "C", "D", "E"};
    assert_true(ibp_map_check_members(&m, all, 5, &err));
    ibp_map_free(&m);
}

/* The real IBP members, parsed. */
static void shared_members(ibp_members_t *members)
{
    size_t len;
    ibp_err_t err;
    char *buf = fixture_read_shared("testdata/ibp-config/members_professional.json", &len);
    if (!ibp_members_parse(buf, len, "members.json", members, &err))
        fail_msg("%s", err.msg);
    free(buf);
}

/* The geo fingerprint of a config whose Routing is `routing`: the sidecar
 * walks MaxMind again when it changes. */
static uint64_t fingerprint_of(const char *routing)
{
    char node[1024];
    ibp_err_t err;
    snprintf(node, sizeof node, "{\"System\":{\"ConfigUrls\":{\"MembersConfig\":\"m\","
             "\"ServicesConfig\":\"s\",\"StaticDNSConfig\":\"x\"}}, \"Routing\": %s}", routing);
    ibp_node_config_t cfg;
    if (!ibp_node_config_parse(node, strlen(node), "node.json", &cfg, &err))
        fail_msg("%s", err.msg);
    ibp_members_t members;
    shared_members(&members);
    ibp_geo_needs_t needs;
    if (!ibp_geo_needs_from_model(&members, &cfg.overrides, &cfg.routing.nets, &cfg.routing.map,
                                  &needs, &err))
        fail_msg("%s", err.msg);
    uint64_t fp = needs.fingerprint;
    ibp_geo_needs_free(&needs);
    ibp_members_free(&members);
    ibp_node_config_free(&cfg);
    return fp;
}

static void the_map_enters_the_fingerprint(void **state)
{
    (void)state;
    uint64_t none = fingerprint_of("{}");
    uint64_t empty = fingerprint_of("{\"Map\": {}}");
    uint64_t eu = fingerprint_of("{\"Map\": {\"EU\": [\"Amforc\"]}}");
    uint64_t as = fingerprint_of("{\"Map\": {\"AS\": [\"Amforc\"]}}");   /* same list, moved */
    uint64_t eu_dflt = fingerprint_of("{\"Map\": {\"EU\": {\"default\": [\"Amforc\"]}}}");
    uint64_t skip = fingerprint_of("{\"Map\": {\"skip_level\": true, \"EU\": [\"Amforc\"]}}");
    assert_int_equal(none, fingerprint_of("{}"));
    assert_int_equal(eu, fingerprint_of("{\"Map\": {\"EU\": [\"Amforc\"]}}"));
    assert_true(none != empty && empty != eu && eu != as && eu != eu_dflt && eu != skip);
}

static void an_unknown_member_names_the_map_path(void **state)
{
    (void)state;
    char node[512];
    ibp_err_t err;
    snprintf(node, sizeof node, "{\"System\":{\"ConfigUrls\":{\"MembersConfig\":\"m\","
             "\"ServicesConfig\":\"s\",\"StaticDNSConfig\":\"x\"}}, \"Routing\": "
             "{\"Map\": {\"EU\": {\"DE\": [\"Amforc\", \"Nobody\"]}}}}");
    ibp_node_config_t cfg;
    if (!ibp_node_config_parse(node, strlen(node), "node.json", &cfg, &err))
        fail_msg("%s", err.msg);
    ibp_members_t members;
    shared_members(&members);
    ibp_geo_needs_t needs;
    assert_false(ibp_geo_needs_from_model(&members, &cfg.overrides, &cfg.routing.nets,
                                          &cfg.routing.map, &needs, &err));
    assert_string_equal(err.msg, "node.json: .Routing.Map.EU.DE[1]: \"Nobody\" is not a member key");
    ibp_members_free(&members);
    ibp_node_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lists_and_defaults),
        cmocka_unit_test(subdivisions_left_out_and_skip_level),
        cmocka_unit_test(continent_and_country_never_skipped),
        cmocka_unit_test(no_map_is_auto),
        cmocka_unit_test(nesting_bounded),
        cmocka_unit_test(a_wide_level_is_cheap),
        cmocka_unit_test(bad_input),
        cmocka_unit_test(unknown_member),
        cmocka_unit_test(the_map_enters_the_fingerprint),
        cmocka_unit_test(an_unknown_member_names_the_map_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
