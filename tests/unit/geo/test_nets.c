/* Routing.Nets over the geo classes (ibp_geo_nets_overlay) and its parse:
 * a subnet beats its supernet, auto carves a hole, the IPv4 alias
 * placeholders stay, every (class, net) pair gets the net's list then the
 * class's distance order; v4-compat spellings are the IPv4 network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ibp_geo_classes.h"
#include "ibp_model.h"
#include "ibp_strv.h"

#define TOP(bits) ((ibp_u128_t)(bits) << 125)   /* a network by its first three bits */

static void append_ok(ibp_nlist_t *l, unsigned len, uint32_t val)
{
    ibp_err_t err;
    assert_true(ibp_nlist_append(l, len, val, &err));
}

/* Three members; classes NODATA, UNDEF, 2 (order C A B), 3 (B C A, "GB"). */
static void classes_init(ibp_geo_classes_t *c)
{
    memset(c, 0, sizeof *c);
    c->n_members = 3;
    c->n_cls = 4;
    c->cls = calloc(4, sizeof *c->cls);
    c->orders = calloc(12, sizeof *c->orders);
    assert_non_null(c->cls);
    assert_non_null(c->orders);
    static const uint16_t orders[12] = {0, 0, 0, 0, 0, 0, 2, 0, 1, 1, 2, 0};
    memcpy(c->orders, orders, sizeof orders);
    for (uint32_t i = 0; i < 4; i++)
        c->cls[i] = (ibp_geo_class_t){.located = i >= 2, .order = 3 * i, .net = IBP_GEO_NO_NET};
    memcpy(c->cls[3].cc, "GB", 3);
    ibp_nlist_init(&c->list);
}

static void expect_order(const ibp_geo_classes_t *c, uint32_t id, uint16_t a, uint16_t b,
                         uint16_t d)
{
    const uint16_t *o = &c->orders[c->cls[id].order];
    assert_int_equal(o[0], a);
    assert_int_equal(o[1], b);
    assert_int_equal(o[2], d);
}

static void subnet_beats_supernet_auto_and_undef(void **state)
{
    (void)state;
    ibp_geo_classes_t c;
    classes_init(&c);
    append_ok(&c.list, 2, 2);   /* 00: class 2 */
    append_ok(&c.list, 2, 1);   /* 01: an alias placeholder */
    append_ok(&c.list, 1, 3);   /* 1: class 3 */
    static const uint16_t l_a[] = {1}, l_b[] = {0, 2}, l_d[] = {2};
    const ibp_geo_net_t nets[] = {
        {.start = 0, .len = 1, .listed = l_a, .n_listed = 1},          /* A: 0/1 */
        {.start = 0, .len = 3, .listed = l_b, .n_listed = 2},          /* B: 000/3 in A */
        {.start = TOP(4), .len = 1, .listed = l_d, .n_listed = 1},     /* D: 1/1 */
        {.start = TOP(4), .len = 2, .is_auto = true},                  /* C: 10/2 in D */
    };
    ibp_err_t err;
    assert_true(ibp_geo_nets_overlay(&c, nets, 4, &err));
    assert_int_equal(c.list.n, 5);
    static const uint8_t lens[] = {3, 3, 2, 2, 2};
    static const uint32_t vals[] = {4, 5, 1, 3, 6};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(c.list.len[i], lens[i]);
        assert_int_equal(c.list.val[i], vals[i]);
    }
    assert_true(c.list.full);
    assert_int_equal(c.n_cls, 7);
    /* B over class 2: B's list (A C), then class 2's remaining (B). */
    assert_int_equal(c.cls[4].net, 1);
    assert_int_equal(c.cls[4].n_listed, 2);
    expect_order(&c, 4, 0, 2, 1);
    /* A over class 2: B first, then C A by distance. */
    assert_int_equal(c.cls[5].net, 0);
    assert_int_equal(c.cls[5].n_listed, 1);
    expect_order(&c, 5, 1, 2, 0);
    /* D over class 3 keeps its country (overrides still win). */
    assert_int_equal(c.cls[6].net, 2);
    assert_string_equal(c.cls[6].cc, "GB");
    assert_true(c.cls[6].located);
    expect_order(&c, 6, 2, 1, 0);
    assert_true(ibp_geo_classes_index(&c, &err));
    ibp_geo_classes_free(&c);
}

static void unlocated_base_is_ordered_by_key(void **state)
{
    (void)state;
    ibp_geo_classes_t c;
    classes_init(&c);
    append_ok(&c.list, 0, IBP_CLASS_NODATA);
    static const uint16_t l[] = {2, 7};   /* 7: no such member, ignored */
    const ibp_geo_net_t net = {.start = TOP(4), .len = 1, .listed = l, .n_listed = 2};
    ibp_err_t err;
    assert_true(ibp_geo_nets_overlay(&c, &net, 1, &err));
    assert_int_equal(c.list.n, 2);
    assert_int_equal(c.list.val[0], IBP_CLASS_NODATA);
    assert_int_equal(c.list.val[1], 4);
    assert_true(c.cls[4].located);
    assert_int_equal(c.cls[4].n_listed, 1);
    expect_order(&c, 4, 2, 0, 1);
    ibp_geo_classes_free(&c);
}

static void adjacent_nets_with_one_list_share_a_class(void **state)
{
    (void)state;
    ibp_geo_classes_t c;
    classes_init(&c);
    append_ok(&c.list, 0, 2);
    static const uint16_t l[] = {1};
    const ibp_geo_net_t nets[] = {
        {.start = 0, .len = 2, .listed = l, .n_listed = 1},
        {.start = TOP(2), .len = 2, .listed = l, .n_listed = 1},
    };
    ibp_err_t err;
    assert_true(ibp_geo_nets_overlay(&c, nets, 2, &err));
    /* One class for both, so 00 and 01 merge into 0/1 as gdnsd merges them. */
    assert_int_equal(c.n_cls, 5);
    assert_int_equal(c.list.n, 2);
    assert_int_equal(c.list.len[0], 1);
    assert_int_equal(c.list.val[0], 4);
    assert_int_equal(c.cls[4].net, 0);
    ibp_geo_classes_free(&c);
}

static void unsorted_or_repeated_nets_are_refused(void **state)
{
    (void)state;
    ibp_geo_classes_t c;
    classes_init(&c);
    append_ok(&c.list, 0, 2);
    static const uint16_t l[] = {1};
    ibp_geo_net_t nets[] = {
        {.start = TOP(2), .len = 2, .listed = l, .n_listed = 1},
        {.start = 0, .len = 2, .listed = l, .n_listed = 1},
    };
    ibp_err_t err;
    assert_false(ibp_geo_nets_overlay(&c, nets, 2, &err));
    assert_non_null(strstr(err.msg, "sorted"));
    nets[1] = nets[0];
    assert_false(ibp_geo_nets_overlay(&c, nets, 2, &err));
    nets[0].start |= 1;   /* host bits */
    assert_false(ibp_geo_nets_overlay(&c, nets, 1, &err));
    assert_non_null(strstr(err.msg, "not a network"));
    assert_int_equal(c.n_cls, 4);   /* nothing changed */
    assert_int_equal(c.list.n, 1);
    ibp_geo_classes_free(&c);
}

/* Host routes deep in IPv6 split the space about 100 times each: past
 * IBP_GEO_NETWORKS_MAX the overlay stops and says so, before the memory. */
static void too_many_networks_are_refused(void **state)
{
    (void)state;
    ibp_geo_classes_t c;
    classes_init(&c);
    append_ok(&c.list, 0, 2);
    size_t n = 150000;   /* about 11 million networks */
    ibp_geo_net_t *nets = calloc(n, sizeof *nets);
    assert_non_null(nets);
    static const uint16_t l[] = {1};
    for (size_t i = 0; i < n; i++)   /* /128s in 2400::/12, spread and sorted */
        nets[i] = (ibp_geo_net_t){.start = ((ibp_u128_t)0x240 << 116) | ((ibp_u128_t)i << 76) |
                                           ((ibp_u128_t)(i * 2654435761u & 0xFFFFFFFFu) << 40),
                                  .len = 128, .listed = l, .n_listed = 1};
    ibp_err_t err;
    assert_false(ibp_geo_nets_overlay(&c, nets, n, &err));
    assert_non_null(strstr(err.msg, "Routing.Nets: the nets split the address space into more "
                                    "than 8000000 networks"));
    assert_int_equal(c.list.n, 1);   /* nothing changed */
    assert_true(ibp_geo_nets_overlay(&c, nets, 1000, &err));   /* a few are fine */
    free(nets);
    ibp_geo_classes_free(&c);
}

static void parse_ok(const char *json, ibp_nets_t *out)
{
    ibp_err_t err;
    char **warn = NULL;
    size_t n_warn = 0;
    if (!ibp_nets_parse(json, strlen(json), "nets.json", out, &warn, &n_warn, &err))
        fail_msg("%s", err.msg);
    ibp_strarr_free(warn, n_warn);
}

static void v4compat_is_the_ipv4_network_and_sorted(void **state)
{
    (void)state;
    ibp_nets_t n;
    parse_ok("{\"2001:DB8::/32\": \"auto\", \"::10.0.0.0/104\": [\"a\", \"b\"], "
             "\"10.1.0.0/16\": [\"b\"], \"::/64\": [\"a\"]}", &n);
    assert_int_equal(n.n, 4);
    assert_string_equal(n.v[0].text, "::/64");           /* holds all of IPv4 too */
    assert_string_equal(n.v[1].text, "10.0.0.0/8");
    assert_int_equal(n.v[1].len, 104);
    assert_int_equal(n.v[1].addr[12], 10);
    assert_int_equal(n.v[1].n_members, 2);
    assert_string_equal(n.v[2].text, "10.1.0.0/16");
    assert_string_equal(n.v[3].text, "2001:db8::/32");
    assert_true(n.v[3].is_auto);
    assert_string_equal(n.src, "nets.json");
    ibp_nets_free(&n);
}

static void duplicate_spellings_keep_one_and_warn_on_another_list(void **state)
{
    (void)state;
    const char *json = "{\"10.0.0.0/8\": [\"a\"], \"::a00:0/104\": [\"b\"], "
                       "\"::10.0.0.0/104\": [\"a\"]}";
    ibp_nets_t n;
    ibp_err_t err;
    char **warn = NULL;
    size_t n_warn = 0;
    assert_true(ibp_nets_parse(json, strlen(json), "nets.json", &n, &warn, &n_warn, &err));
    assert_int_equal(n.n, 1);
    assert_string_equal(n.v[0].members[0], "a");
    assert_int_equal(n_warn, 1);   /* the equal list is dropped quietly */
    assert_non_null(strstr(warn[0], "[\"::a00:0/104\"]: the same network as [\"10.0.0.0/8\"]"));
    ibp_strarr_free(warn, n_warn);
    ibp_nets_free(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(subnet_beats_supernet_auto_and_undef),
        cmocka_unit_test(unlocated_base_is_ordered_by_key),
        cmocka_unit_test(adjacent_nets_with_one_list_share_a_class),
        cmocka_unit_test(unsorted_or_repeated_nets_are_refused),
        cmocka_unit_test(too_many_networks_are_refused),
        cmocka_unit_test(v4compat_is_the_ipv4_network_and_sorted),
        cmocka_unit_test(duplicate_spellings_keep_one_and_warn_on_another_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
