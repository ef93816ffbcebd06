/* /events' JSON (sidecar/events/event_json.c): IBP's EventRecord as Go's
 * encoding/json writes it (IBP-NODE §7.5). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "event_json.h"

static void expect_row(const sc_event_row_t *r, const char *want)
{
    sc_buf_t b = {0};
    sc_event_json(&b, r);
    sc_buf_puts(&b, "");
    assert_false(b.oom);
    assert_string_equal(b.p, want);
    sc_buf_free(&b);
}

static void expect_data(const char *data, const char *want)
{
    sc_buf_t b = {0};
    sc_event_data_json(&b, data);
    sc_buf_puts(&b, "");
    assert_string_equal(b.p, want);
    sc_buf_free(&b);
}

static void test_closed_endpoint_event(void **state)
{
    (void)state;
    sc_event_row_t r = {
        .key = {.member = "Amforc", .check_type = "endpoint", .check_name = "wss",
                .domain = "rpc.dotters.network", .endpoint = "wss://rpc.dotters.network/kusama",
                .is_ipv6 = true},
        .start = {.sec = 1776506400}, .has_end = true, .end = {.sec = 1776511805},
        .error = "timeout <&>", .data = "{\"z\": 1, \"a\": [1.5, \"x\"]}"};
    expect_row(&r, "{\"CheckType\":\"endpoint\",\"CheckName\":\"wss\",\"MemberName\":\"Amforc\","
               "\"DomainName\":\"rpc.dotters.network\","
               "\"Endpoint\":\"wss://rpc.dotters.network/kusama\",\"Status\":false,"
               "\"ErrorText\":\"timeout \\u003c\\u0026\\u003e\",\"Data\":{\"a\":[1.5,\"x\"],"
               "\"z\":1},\"IsIPv6\":true,\"StartTime\":\"2026-04-18T10:00:00Z\","
               "\"EndTime\":\"2026-04-18T11:30:05Z\",\"StartDate\":\"2026-04-18\","
               "\"EndDate\":\"2026-04-18\"}");
}

static void test_open_site_event(void **state)
{
    (void)state;
    sc_event_row_t r = {
        .key = {.member = "Dwellir", .check_type = "site", .check_name = "ping", .domain = "",
                .endpoint = ""},
        .start = {.sec = 1776506400, .nsec = 250000000}, .error = ""};
    expect_row(&r, "{\"CheckType\":\"site\",\"CheckName\":\"ping\",\"MemberName\":\"Dwellir\","
               "\"Status\":false,\"ErrorText\":\"\",\"Data\":null,\"IsIPv6\":false,"
               "\"StartTime\":\"2026-04-18T10:00:00.25Z\",\"EndTime\":\"0001-01-01T00:00:00Z\","
               "\"StartDate\":\"2026-04-18\",\"EndDate\":\"\"}");
}

/* additional_data through Go's map[string]interface{}: keys sorted, numbers
 * as float64, not an object (or not JSON) null. */
static void test_data_as_go_remarshals_it(void **state)
{
    (void)state;
    expect_data(NULL, "null");
    expect_data("", "null");
    expect_data("[1, 2]", "null");
    expect_data("\"x\"", "null");
    expect_data("{bad", "null");
    expect_data("{}", "{}");
    expect_data("{\"b\": {\"y\": true, \"x\": null}, \"a\": 1}",
                "{\"a\":1,\"b\":{\"x\":null,\"y\":true}}");
    expect_data("{\"n\": 100, \"f\": 1.5e3, \"s\": 1e-7, \"l\": 1e21, \"i\": 12345678901234567890}",
                "{\"f\":1500,\"i\":12345678901234567000,\"l\":1e+21,\"n\":100,\"s\":1e-7}");
    expect_data("{\"k\": 0.000001, \"m\": -0.5}", "{\"k\":0.000001,\"m\":-0.5}");
    expect_data("{\"h\": \"<a>\\u2028\"}", "{\"h\":\"\\u003ca\\u003e\\u2028\"}");
}

static void test_result_body(void **state)
{
    (void)state;
    sc_buf_t b = {0};
    sc_event_result_json(&b, "invalid endTime");
    sc_buf_puts(&b, "");
    assert_string_equal(b.p, "{\"result\":\"invalid endTime\"}");
    sc_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_closed_endpoint_event),
        cmocka_unit_test(test_open_site_event),
        cmocka_unit_test(test_data_as_go_remarshals_it),
        cmocka_unit_test(test_result_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
