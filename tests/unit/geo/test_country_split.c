/* ibp_geo_classes_split_countries (lib/geo/ibp_country_split.c) against the
 * MaxMind walk it stands in for: the real IBP members on MaxMind's City
 * test database, walked without override countries then split by GB, SE,
 * US and JP from the client classes, must give every address a class equal
 * to the one a walk with those four override countries gives (located,
 * country, member order, net and map list); with Routing.Nets too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "ibp_client_classes.h"
#include "ibp_compile.h"
#include "ibp_country_split.h"
#include "ibp_model.h"
#include "ibp_overrides.h"

static const char *const COUNTRIES[] = {"GB", "SE", "US", "JP"};
#define N_COUNTRIES 4

typedef struct world {
    ibp_node_config_t cfg;
    ibp_members_t members;
} world_t;

static void world_init(world_t *w, const char *routing_json)
{
    char node[1024];
    snprintf(node, sizeof node, "{\"System\":{\"ConfigUrls\":{\"MembersConfig\":\"m\","
             "\"ServicesConfig\":\"s\",\"StaticDNSConfig\":\"x\"}},\"Routing\":%s}",
             routing_json);
    ibp_err_t err;
    if (!ibp_node_config_parse(node, strlen(node), "node.json", &w->cfg, &err))
        fail_msg("%s", err.msg);
    size_t n;
    char *m = fixture_read_shared("testdata/ibp-config/members_professional.json", &n);
    if (!ibp_members_parse(m, n, "members.json", &w->members, &err))
        fail_msg("%s", err.msg);
    free(m);
}

static void world_free(world_t *w)
{
    ibp_members_free(&w->members);
    ibp_node_config_free(&w->cfg);
}

/* A walk of the City test database with these override countries. */
static uint64_t walk(const world_t *w, const char *db, const ibp_overrides_t *ov,
                     ibp_geo_classes_t *out)
{
    ibp_geo_needs_t needs;
    ibp_err_t err;
    if (!ibp_geo_needs_from_model(&w->members, ov, &w->cfg.routing.nets, &w->cfg.routing.map,
                                  &needs, &err))
        fail_msg("%s", err.msg);
    char path[4096];
    snprintf(path, sizeof path, "%s", fixture_shared(db));
    ibp_geo_input_t gi = ibp_geo_input_of(&needs, path);
    if (!ibp_geo_classes_build(&gi, out, &err) || !ibp_geo_classes_index_updates(out, &err))
        fail_msg("%s", err.msg);
    uint64_t fp = needs.fingerprint;
    ibp_geo_needs_free(&needs);
    return fp;
}

static void countries(ibp_overrides_t *ov)
{
    memset(ov, 0, sizeof *ov);
    ibp_err_t err;
    for (size_t i = 0; i < N_COUNTRIES; i++) {
        ibp_override_t o = {.domain = "", .member_name = ""};
        memcpy(o.cc, COUNTRIES[i], 3);
        assert_true(ibp_overrides_set(ov, &o, &err));
    }
}

static bool same_class(const ibp_geo_classes_t *a, uint32_t ia, const ibp_geo_classes_t *b,
                       uint32_t ib)
{
    const ibp_geo_class_t *x = &a->cls[ia], *y = &b->cls[ib];
    if (x->located != y->located || memcmp(x->cc, y->cc, 3) || x->net != y->net ||
        x->n_listed != y->n_listed || x->map_rule != y->map_rule)
        return false;
    return !x->located && !x->n_listed
           ? true
           : !memcmp(&a->orders[x->order], &b->orders[y->order], a->n_members * sizeof *a->orders);
}

static ibp_u128_t block(unsigned len)
{
    return len ? (ibp_u128_t)1 << (128 - len) : 0;
}

/* a < b for block ends, where 0 is the end of the whole space. */
static bool ends_first(ibp_u128_t a, ibp_u128_t b)
{
    return a != 0 && (b == 0 || a < b);
}

/* Every address: equal classes in a and b. *in_countries: blocks whose class
 * carries one of COUNTRIES. */
static void expect_same_partition(const ibp_geo_classes_t *a, const ibp_geo_classes_t *b,
                                  size_t *in_countries)
{
    size_t i = 0, j = 0;
    ibp_u128_t end_a = block(a->list.len[0]), end_b = block(b->list.len[0]);
    *in_countries = 0;
    while (i < a->list.n && j < b->list.n) {
        if (!same_class(a, a->list.val[i], b, b->list.val[j]))
            fail_msg("blocks %zu/%zu: class %u (cc '%s') against %u (cc '%s')", i, j,
                     a->list.val[i], a->cls[a->list.val[i]].cc, b->list.val[j],
                     b->cls[b->list.val[j]].cc);
        *in_countries += a->cls[a->list.val[i]].cc[0] != 0;
        bool step_a = !ends_first(end_b, end_a), step_b = !ends_first(end_a, end_b);
        if (step_a && ++i < a->list.n)
            end_a += block(a->list.len[i]);
        if (step_b && ++j < b->list.n)
            end_b += block(b->list.len[j]);
    }
    assert_int_equal(i, a->list.n);
    assert_int_equal(j, b->list.n);
}

static void split_equals_walk(const char *db, const char *routing_json)
{
    world_t w;
    world_init(&w, routing_json);
    ibp_overrides_t none = {0}, four;
    countries(&four);
    ibp_geo_classes_t plain, walked, split;
    walk(&w, db, &none, &plain);
    uint64_t fp = walk(&w, db, &four, &walked);
    ibp_client_classes_t clients;
    ibp_err_t err;
    char city[4096], asn[4096];   /* fixture_shared's buffer is one */
    snprintf(city, sizeof city, "%s", fixture_shared(db));
    snprintf(asn, sizeof asn, "%s", fixture_shared("testdata/maxmind/GeoLite2-ASN-Test.mmdb"));
    if (!ibp_client_classes_build(city, asn, &clients, &err))
        fail_msg("%s", err.msg);
    char ccs[N_COUNTRIES][3];
    for (size_t i = 0; i < N_COUNTRIES; i++)
        memcpy(ccs[i], COUNTRIES[i], 3);
    size_t plain_n = plain.list.n, plain_cls = plain.n_cls;
    assert_true(ibp_geo_classes_split_countries(&plain, &clients, (const char (*)[3])ccs,
                                                N_COUNTRIES, fp, &split, &err));
    assert_int_equal(plain.list.n, plain_n);   /* the input is left as it was */
    assert_int_equal(plain.n_cls, plain_cls);
    assert_true(split.fingerprint == fp);
    assert_non_null(split.node_class);
    assert_non_null(split.parent);
    size_t in_countries;
    expect_same_partition(&walked, &split, &in_countries);
    assert_true(in_countries > 4);   /* the test database has networks in all four */
    ibp_geo_classes_free(&plain);
    ibp_geo_classes_free(&walked);
    ibp_geo_classes_free(&split);
    ibp_client_classes_free(&clients);
    ibp_overrides_free(&four);
    world_free(&w);
}

static void countries_split_as_the_walk_does(void **state)
{
    (void)state;
    split_equals_walk("testdata/maxmind/GeoIP2-City-Test.mmdb", "{}");
}

/* GeoLite2's test database has records with a country and no location. */
static void country_only_records_too(void **state)
{
    (void)state;
    split_equals_walk("testdata/maxmind/GeoLite2-City-Test.mmdb", "{}");
}

static void with_nets_too(void **state)
{
    (void)state;
    split_equals_walk("testdata/maxmind/GeoIP2-City-Test.mmdb", "{\"Nets\":{\"81.2.69.0/24\":[\"Amforc\"],\"2.125.160.216/29\":[\"Dwellir\"],"
                      "\"216.160.83.56/29\":[\"Gatotech\"]}}");
}

static void too_many_countries_is_an_error(void **state)
{
    (void)state;
    ibp_geo_classes_t c = {0}, out;
    ibp_client_classes_t clients = {0};
    static char ccs[256][3];
    ibp_err_t err;
    assert_false(ibp_geo_classes_split_countries(&c, &clients, (const char (*)[3])ccs, 256, 0,
                                                 &out, &err));
    assert_non_null(strstr(err.msg, "256 countries"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(countries_split_as_the_walk_does),
        cmocka_unit_test(country_only_records_too),
        cmocka_unit_test(with_nets_too),
        cmocka_unit_test(too_many_countries_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
