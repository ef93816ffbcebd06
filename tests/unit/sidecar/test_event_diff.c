/* Member events from two snapshots (sidecar/events/event_diff.c, BEHAVIOR
 * §6a): what opens, what closes, what a missing result or a repeat does,
 * the store's open rows continued, a full queue put off and taken later. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_diff.h"

#define RES(name, up) "{\"Status\": " #up ", \"MemberName\": \"" name "\", \"ErrorText\": \"e-" \
                      name "\", \"Data\": {\"k\": 1}}"
#define SITE(results) "{\"CheckName\": \"ping\", \"IsIPv6\": false, \"Results\": [" results "]}"
#define SITE6(results) "{\"CheckName\": \"ping\", \"IsIPv6\": true, \"Results\": [" results "]}"
#define EP(results) "{\"CheckName\": \"wss\", \"Domain\": \"rpc.x.net\", \"RpcUrl\": " \
                    "\"wss://rpc.x.net/a\", \"Results\": [" results "]}"

typedef struct ops {
    sc_event_op_t *v[64];
    size_t n, room;
} ops_t;

static bool take(void *ctx, sc_event_op_t *op)
{
    ops_t *o = ctx;
    if (o->n >= o->room)
        return false;
    o->v[o->n++] = op;
    return true;
}

static void ops_clear(ops_t *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->v[i]);
    o->n = 0;
    o->room = 64;
}

static ibp_health_t snap(const char *json)
{
    ibp_health_t h;
    ibp_err_t err = {{0}};
    if (!ibp_health_parse(json, strlen(json), "results", &h, &err))
        fail_msg("%s", err.msg);
    return h;
}

/* Diffs json at now into o (cleared first). */
static sc_event_diff_stats_t run(sc_event_set_t *set, const char *json, int64_t now, ops_t *o)
{
    static uint64_t no;
    ops_clear(o);
    ibp_health_t h = snap(json);
    sc_event_diff_stats_t st;
    sc_event_diff(set, &h, now, ++no, take, o, &st);
    ibp_health_free(&h);
    return st;
}

static void test_offline_opens_online_closes(void **state)
{
    (void)state;
    sc_event_set_t set;
    ibp_err_t err;
    ops_t o = {.room = 64};
    assert_true(sc_event_set_init(&set, 100, &err));
    run(&set, "{\"SiteResults\": [" SITE(RES("A", false) "," RES("B", true)) "],"
        " \"EndpointResults\": [" EP(RES("B", false)) "]}", 100, &o);
    assert_int_equal(o.n, 2);
    assert_int_equal(o.v[0]->kind, SC_EVOP_OPEN);
    assert_int_equal(o.v[0]->at, 100);
    assert_string_equal(o.v[0]->key.member, "A");
    assert_string_equal(o.v[0]->key.check_type, "site");
    assert_string_equal(o.v[0]->key.check_name, "ping");
    assert_string_equal(o.v[0]->key.domain, "");
    assert_string_equal(o.v[0]->error, "e-A");
    assert_string_equal(o.v[0]->data, "{\"k\":1}");
    assert_string_equal(o.v[1]->key.check_type, "endpoint");
    assert_string_equal(o.v[1]->key.domain, "rpc.x.net");
    assert_string_equal(o.v[1]->key.endpoint, "wss://rpc.x.net/a");
    assert_int_equal(set.n, 2);
    /* The same snapshot again: nothing. */
    run(&set, "{\"SiteResults\": [" SITE(RES("A", false) "," RES("B", true)) "],"
        " \"EndpointResults\": [" EP(RES("B", false)) "]}", 130, &o);
    assert_int_equal(o.n, 0);
    /* A back online, B still down at its endpoint: one close, at now. */
    sc_event_diff_stats_t st = run(&set, "{\"SiteResults\": [" SITE(RES("A", true)) "],"
                                   " \"EndpointResults\": [" EP(RES("B", false)) "]}", 160, &o);
    assert_int_equal(o.n, 1);
    assert_int_equal(st.closed, 1);
    assert_int_equal(o.v[0]->kind, SC_EVOP_CLOSE);
    assert_int_equal(o.v[0]->at, 160);
    assert_string_equal(o.v[0]->key.member, "A");
    assert_int_equal(set.n, 1);
    /* Offline again: a new event. */
    run(&set, "{\"SiteResults\": [" SITE(RES("A", false)) "]}", 190, &o);
    assert_int_equal(o.n, 1);
    assert_int_equal(o.v[0]->kind, SC_EVOP_OPEN);
    assert_int_equal(o.v[0]->at, 190);
    ops_clear(&o);
    sc_event_set_free(&set);
}

static void test_missing_results_and_families(void **state)
{
    (void)state;
    sc_event_set_t set;
    ibp_err_t err;
    ops_t o = {.room = 64};
    assert_true(sc_event_set_init(&set, 100, &err));
    run(&set, "{\"SiteResults\": [" SITE(RES("A", false)) "]}", 10, &o);
    /* Not in the snapshot (or an empty one): the event stays open. */
    run(&set, "{\"SiteResults\": [" SITE(RES("B", true)) "]}", 20, &o);
    assert_int_equal(o.n, 0);
    run(&set, "{}", 30, &o);
    assert_int_equal(o.n, 0);
    /* Online in the other family closes nothing. */
    run(&set, "{\"SiteResults\": [" SITE6(RES("A", true)) "]}", 40, &o);
    assert_int_equal(o.n, 0);
    assert_int_equal(set.n, 1);
    /* A result repeated, down once and up once: still down. */
    run(&set, "{\"SiteResults\": [" SITE(RES("A", true)) "," SITE(RES("A", false)) "]}", 50, &o);
    assert_int_equal(o.n, 0);
    run(&set, "{\"SiteResults\": [" SITE(RES("A", true)) "]}", 60, &o);
    assert_int_equal(o.n, 1);
    assert_int_equal(o.v[0]->at, 60);
    ops_clear(&o);
    sc_event_set_free(&set);
}

static void test_open_rows_are_continued(void **state)
{
    (void)state;
    sc_event_set_t set;
    ibp_err_t err;
    ops_t o = {.room = 64};
    assert_true(sc_event_set_init(&set, 100, &err));
    sc_event_row_t row = {.key = {.member = "A", .check_type = "site", .check_name = "ping",
                                  .domain = "", .endpoint = ""},
                          .start = {.sec = 5}};
    bool skipped;
    assert_true(sc_event_set_load(&set, &row, &skipped));
    assert_false(skipped);
    row.start.sec = 3;   /* a second open row of the key: the earliest stays */
    assert_true(sc_event_set_load(&set, &row, &skipped));
    assert_int_equal(set.n, 1);
    row.key.check_type = "nonsense";
    assert_true(sc_event_set_load(&set, &row, &skipped));
    assert_true(skipped);
    assert_int_equal(set.n, 1);
    /* Still offline after a restart: no second open. */
    run(&set, "{\"SiteResults\": [" SITE(RES("A", false)) "]}", 100, &o);
    assert_int_equal(o.n, 0);
    run(&set, "{\"SiteResults\": [" SITE(RES("A", true)) "]}", 200, &o);
    assert_int_equal(o.n, 1);
    assert_int_equal(o.v[0]->kind, SC_EVOP_CLOSE);
    ops_clear(&o);
    sc_event_set_free(&set);
}

static void test_refused_transitions_come_again(void **state)
{
    (void)state;
    sc_event_set_t set;
    ibp_err_t err;
    ops_t o = {.room = 64};
    assert_true(sc_event_set_init(&set, 100, &err));
    const char *down = "{\"SiteResults\": [" SITE(RES("A", false) "," RES("B", false)) "]}";
    ops_clear(&o);
    o.room = 1;   /* a queue with room for one */
    ibp_health_t h = snap(down);
    sc_event_diff_stats_t st;
    sc_event_diff(&set, &h, 10, 1, take, &o, &st);
    assert_int_equal(st.opened, 1);
    assert_int_equal(st.refused, 1);
    assert_int_equal(set.n, 1);
    o.room = 64;
    sc_event_diff(&set, &h, 10, 2, take, &o, &st);   /* the same snapshot, later */
    assert_int_equal(st.opened, 1);
    assert_int_equal(o.n, 2);
    assert_string_equal(o.v[1]->key.member, "B");
    assert_int_equal(o.v[1]->at, 10);   /* the snapshot's time, not the retry's */
    ibp_health_free(&h);
    ops_clear(&o);
    sc_event_set_free(&set);
}

/* Many keys through the hash set: opens and closes in any order keep it
 * consistent (deletion by backward shift), and its max bounds it. */
static void test_set_bounded_and_consistent(void **state)
{
    (void)state;
    sc_event_set_t set;
    ibp_err_t err;
    assert_true(sc_event_set_init(&set, 300, &err));
    char name[32];
    for (int i = 0; i < 400; i++) {
        snprintf(name, sizeof name, "m%d", i);
        sc_event_row_t row = {.key = {.member = name, .check_type = "domain",
                                      .check_name = "ssl", .domain = "d"}};
        bool skipped;
        bool ok = sc_event_set_load(&set, &row, &skipped);
        assert_int_equal(ok, i < 300);
    }
    assert_int_equal(set.n, 300);
    /* Close every third one through a snapshot of results that passed. */
    size_t cap = 400 * 120;
    char *json = malloc(cap);
    size_t n = (size_t)snprintf(json, cap, "{\"DomainResults\": [{\"CheckName\": \"ssl\","
                                " \"Domain\": \"d\", \"Results\": [");
    for (int i = 0; i < 300; i += 3)
        n += (size_t)snprintf(json + n, cap - n, "%s{\"Status\": true, \"MemberName\": \"m%d\"}",
                              i ? "," : "", i);
    snprintf(json + n, cap - n, "]}]}");
    ibp_health_t h = snap(json);
    ops_t *o = calloc(1, sizeof *o);
    sc_event_diff_stats_t st;
    o->room = 0;   /* count only */
    sc_event_diff(&set, &h, 1, 1, take, o, &st);
    assert_int_equal(st.refused, 100);
    ibp_health_free(&h);
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "m%d", i);
        uint64_t hi, lo;
        ibp_health_event_key(IBP_CHECK_DOMAIN, "ssl", "d", NULL, name, false, &hi, &lo);
        assert_non_null(sc_event_set_find(&set, hi, lo));
    }
    free(json);
    free(o);
    sc_event_set_free(&set);
}

static void test_set_remove_keeps_others(void **state)
{
    (void)state;
    sc_event_set_t set;
    ibp_err_t err;
    assert_true(sc_event_set_init(&set, 8, &err));   /* 16 slots: many collide */
    char json[4096], name[8];
    size_t n = (size_t)snprintf(json, sizeof json, "{\"SiteResults\": [{\"Results\": [");
    for (int i = 0; i < 8; i++)
        n += (size_t)snprintf(json + n, sizeof json - n, "%s{\"MemberName\": \"m%d\"}",
                              i ? "," : "", i);
    snprintf(json + n, sizeof json - n, "]}]}");
    ops_t o = {.room = 64};
    ibp_health_t h = snap(json);
    sc_event_diff_stats_t st;
    sc_event_diff(&set, &h, 1, 1, take, &o, &st);
    ibp_health_free(&h);
    assert_int_equal(set.n, 8);
    for (int gone = 0; gone < 8; gone++) {
        snprintf(json, sizeof json, "{\"SiteResults\": [{\"Results\": [{\"Status\": true, "
                 "\"MemberName\": \"m%d\"}]}]}", gone);
        h = snap(json);
        sc_event_diff(&set, &h, 2, 2 + (uint64_t)gone, take, &o, &st);
        ibp_health_free(&h);
        assert_int_equal(st.closed, 1);
        for (int i = 0; i < 8; i++) {
            snprintf(name, sizeof name, "m%d", i);
            uint64_t hi, lo;
            ibp_health_event_key(IBP_CHECK_SITE, "", NULL, NULL, name, false, &hi, &lo);
            assert_int_equal(sc_event_set_find(&set, hi, lo) != NULL, i > gone);
        }
    }
    ops_clear(&o);
    sc_event_set_free(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offline_opens_online_closes),
        cmocka_unit_test(test_missing_results_and_families),
        cmocka_unit_test(test_open_rows_are_continued),
        cmocka_unit_test(test_refused_transitions_come_again),
        cmocka_unit_test(test_set_bounded_and_consistent),
        cmocka_unit_test(test_set_remove_keeps_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
