/* The NATS payloads against what Go's encoding/json does with them (IBP's
 * nodes are Go programs): error texts of bad JSON, the escaping of
 * replies, null for an empty record list, time formats, and the override
 * table edits the messages make. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "gojson.h"
#include "ibp_overrides.h"
#include "messages.h"
#include "peers.h"

static const char *go_error(const char *json)
{
    static char why[256];
    if (sc_go_syntax_ok(json, strlen(json), why, sizeof why))
        return "valid";
    return why;
}

/* Expected texts as Go 1.22's json.Unmarshal prints them. */
static void test_syntax_errors(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"", "unexpected end of JSON input"},
        {"{", "unexpected end of JSON input"},
        {"{\"startDate\":\"2026", "unexpected end of JSON input"},
        {"x", "invalid character 'x' looking for beginning of value"},
        {"{\"a\" 1}", "invalid character '1' after object key"},
        {"{\"a\":1 \"b\":2}", "invalid character '\"' after object key:value pair"},
        {"{1:2}", "invalid character '1' looking for beginning of object key string"},
        {"[1 2]", "invalid character '2' after array element"},
        {"trx", "invalid character 'x' in literal true (expecting 'u')"},
        {"tru", "invalid character ' ' in literal true (expecting 'e')"},
        {"nul", "invalid character ' ' in literal null (expecting 'l')"},
        {"01", "invalid character '1' after top-level value"},
        {"{}x", "invalid character 'x' after top-level value"},
        {"1.", "invalid character ' ' after decimal point in numeric literal"},
        {"1e+", "invalid character ' ' in exponent of numeric literal"},
        {"-x", "invalid character 'x' in numeric literal"},
        {"\"a\\x\"", "invalid character 'x' in string escape code"},
        {"\"\\u12g4\"", "invalid character 'g' in \\u hexadecimal character escape"},
        {"\"a\nb\"", "invalid character '\\n' in string literal"},
        {"'a'", "invalid character '\\'' looking for beginning of value"},
        {"\x01", "invalid character '\\x01' looking for beginning of value"},
        {"\xff", "invalid character '\xc3\xbf' looking for beginning of value"},
        {"\x85", "invalid character '\\u0085' looking for beginning of value"},
        {" {\"a\":[1,2.5e-3,true,false,null,{}],\"b\":\"\\u00e9\"} ", "valid"},
        {"-0.5E+7", "valid"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("case %zu: %s\n", i, cases[i][0]);
        assert_string_equal(go_error(cases[i][0]), cases[i][1]);
    }
}

static void test_deep_nesting(void **state)
{
    (void)state;
    size_t n = 10001;
    char *deep = malloc(n + 1);
    memset(deep, '[', n);
    deep[n] = '\0';
    assert_string_equal(go_error(deep), "invalid character '[' exceeded max depth");
    free(deep);
}

static void test_go_string(void **state)
{
    (void)state;
    sc_buf_t b = {0};
    sc_go_string(&b, "AT&T <x> \"q\" \\ \n\t\b\f\x01 \xe2\x80\xa8 \xff \xc3\xa9");
    assert_false(b.oom);
    assert_string_equal(b.p, "\"AT\\u0026T \\u003cx\\u003e \\\"q\\\" \\\\ \\n\\t\\b\\f\\u0001 "
                             "\\u2028 \\ufffd \xc3\xa9\"");
    sc_buf_free(&b);
}

static void test_go_trim_space(void **state)
{
    (void)state;
    char s[64] = " \t\xc2\xa0\xe3\x80\x80" "2026-04-18\xc2\x85\n ";
    sc_go_trim_space(s);
    assert_string_equal(s, "2026-04-18");
    char t[16] = "\xc2\xa0";
    sc_go_trim_space(t);
    assert_string_equal(t, "");
    char u[16] = "x\xa0";   /* not a rune: kept */
    sc_go_trim_space(u);
    assert_string_equal(u, "x\xa0");
}

static void test_go_time_and_dates(void **state)
{
    (void)state;
    char t[40];
    sc_go_time(1767225600, 123456789, t);
    assert_string_equal(t, "2026-01-01T00:00:00.123456789Z");
    sc_go_time(1767225600, 120000000, t);
    assert_string_equal(t, "2026-01-01T00:00:00.12Z");
    sc_go_time(1767225600, 0, t);
    assert_string_equal(t, "2026-01-01T00:00:00Z");
    assert_true(sc_go_date_ok("2024-02-29"));
    assert_false(sc_go_date_ok("2026-02-29"));
    assert_false(sc_go_date_ok("2026-13-01"));
    assert_false(sc_go_date_ok("2026-04-31"));
    assert_false(sc_go_date_ok("2026-4-01"));
    assert_false(sc_go_date_ok("2026-04-01T"));
    assert_true(sc_go_date_ok("2026-12-31"));
}

static void test_usage_request(void **state)
{
    (void)state;
    sc_usage_request_t rq;
    ibp_err_t err;
    const char *ok = "{\"StartDate\":\"2026-04-18\",\"enddate\":\"2026-04-19\",\"domain\":null,"
                     "\"memberName\":\"Amforc\",\"unknown\":[1],\"country\":\"de\"}";
    assert_true(sc_usage_request_decode(ok, strlen(ok), &rq, &err));
    assert_string_equal(rq.start, "2026-04-18");
    assert_string_equal(rq.end, "2026-04-19");
    assert_string_equal(rq.domain, "");
    assert_string_equal(rq.member, "Amforc");
    assert_string_equal(rq.country, "de");
    sc_usage_request_free(&rq);
    assert_true(sc_usage_request_decode("null", 4, &rq, &err));
    assert_string_equal(rq.start, "");
    sc_usage_request_free(&rq);
    /* What jansson refuses and Go takes: invalid UTF-8, a lone surrogate, a
     * number beyond double, nesting past 2,048; the last duplicate key wins;
     * Go's folds; a NUL kept as a mark. */
    static const char *const takes[][2] = {
        {"{\"startDate\":\"\xff\"}", "\xef\xbf\xbd"},
        {"{\"startDate\":\"\\ud800x\"}", "\xef\xbf\xbdx"},
        {"{\"startDate\":\"\\ud83d\\ude00\"}", "\xf0\x9f\x98\x80"},
        {"{\"x\":1e400,\"startDate\":\"a\"}", "a"},
        {"{\"startDate\":\"2026-01-02\",\"STARTDATE\":\"2026-01-01\",\"startDate\":\"3\"}",
         "3"},
        {"{\"\xc5\xbftartDate\":\"folded\"}", "folded"},
        {"{\"startDate\":\"a\\\"b\\\\c\\/d\\n\"}", "a\"b\\c/d\n"},
    };
    for (size_t i = 0; i < sizeof takes / sizeof takes[0]; i++) {
        print_message("takes %zu: %s\n", i, takes[i][0]);
        assert_true(sc_usage_request_decode(takes[i][0], strlen(takes[i][0]), &rq, &err));
        assert_string_equal(rq.start, takes[i][1]);
        sc_usage_request_free(&rq);
    }
    size_t depth = 3000;
    char *nested = malloc(2 * depth + 32);
    strcpy(nested, "{\"a\":");
    memset(nested + 5, '[', depth);
    memset(nested + 5 + depth, ']', depth);
    strcpy(nested + 5 + 2 * depth, ",\"domain\":\"d\"}");
    assert_true(sc_usage_request_decode(nested, strlen(nested), &rq, &err));
    assert_string_equal(rq.domain, "d");
    sc_usage_request_free(&rq);
    free(nested);
    const char *nul = "{\"domain\":\"a\\u0000b\"}";
    assert_true(sc_usage_request_decode(nul, strlen(nul), &rq, &err));
    assert_true(rq.nul[2]);
    assert_false(rq.nul[0]);
    sc_usage_request_free(&rq);
    assert_false(sc_usage_request_decode("{\"startDate\":5,\"startDate\":\"x\"}", 32, &rq,
                                         &err));
    static const char *const bad[][2] = {
        {"{\"startDate\":5}", "json: cannot unmarshal number into Go struct field "
                              "UsageRequest.startDate of type string"},
        {"{\"domain\":{}}", "json: cannot unmarshal object into Go struct field "
                            "UsageRequest.domain of type string"},
        {"[]", "json: cannot unmarshal array into Go value of type data2.UsageRequest"},
        {"\"x\"", "json: cannot unmarshal string into Go value of type data2.UsageRequest"},
        {"{bad", "invalid character 'b' looking for beginning of object key string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(sc_usage_request_decode(bad[i][0], strlen(bad[i][0]), &rq, &err));
        assert_string_equal(err.msg, bad[i][1]);
    }
}

static void test_usage_reply(void **state)
{
    (void)state;
    sc_buf_t b = {0};
    sc_usage_reply_begin(&b, "DNS1");
    sc_usage_reply_end(&b, true, NULL);
    assert_string_equal(b.p, "{\"nodeID\":\"DNS1\",\"usageRecords\":null}");
    sc_buf_free(&b);
    sc_usage_reply_begin(&b, "DNS1");
    sc_usage_reply_end(&b, false, "StartDate must be before or equal to EndDate");
    assert_string_equal(b.p, "{\"nodeID\":\"DNS1\",\"usageRecords\":[],\"error\":\"StartDate must "
                             "be before or equal to EndDate\"}");
    sc_buf_free(&b);
    sc_usage_record_t r = {.date = "2026-04-18", .domain = "rpc.dotters.network",
                           .member = "Amforc", .country_code = "DE", .asn = "AS3320",
                           .network_name = "Deutsche Telekom AG", .country_name = "Germany",
                           .hits = 42};
    sc_usage_reply_begin(&b, "DNS1");
    sc_usage_reply_add(&b, &r);
    r.is_ipv6 = true;
    r.network_name = "AT&T";
    sc_usage_reply_add(&b, &r);
    sc_usage_reply_end(&b, false, "");
    assert_string_equal(b.p,
        "{\"nodeID\":\"DNS1\",\"usageRecords\":[{\"nodeid\":\"\",\"date\":\"2026-04-18T00:00:00Z\","
        "\"domain\":\"rpc.dotters.network\",\"memberName\":\"Amforc\",\"countryCode\":\"DE\","
        "\"asn\":\"AS3320\",\"networkName\":\"Deutsche Telekom AG\",\"countryName\":\"Germany\","
        "\"hits\":42,\"isIPv6\":false},{\"nodeid\":\"\",\"date\":\"2026-04-18T00:00:00Z\","
        "\"domain\":\"rpc.dotters.network\",\"memberName\":\"Amforc\",\"countryCode\":\"DE\","
        "\"asn\":\"AS3320\",\"networkName\":\"AT\\u0026T\",\"countryName\":\"Germany\","
        "\"hits\":42,\"isIPv6\":true}]}");
    sc_buf_free(&b);
}

static void test_join(void **state)
{
    (void)state;
    sc_node_info_t self = {.node_id = "DNS1", .listen_address = "0.0.0.0", .listen_port = "0",
                           .node_role = "IBPDns"};
    sc_buf_t b = {0};
    sc_join_encode(&b, &self, 1776506400, 500000000);
    assert_string_equal(b.p, "{\"type\":\"join\",\"sender\":{\"NodeID\":\"DNS1\",\"PublicAddress\":"
                             "\"\",\"ListenAddress\":\"0.0.0.0\",\"ListenPort\":\"0\",\"NodeRole\":"
                             "\"IBPDns\",\"LastHeard\":\"2026-04-18T10:00:00.5Z\"},\"members\":null}");
    sc_cluster_msg_t m;
    ibp_err_t err;
    assert_true(sc_cluster_msg_decode(b.p, b.len, &m, &err));
    assert_string_equal(m.type, "join");
    assert_string_equal(m.sender.node_id, "DNS1");
    sc_buf_free(&b);
    static sc_peers_t peers;
    assert_false(sc_peers_heard(&peers, &m, "DNS1", 100));   /* our own: not a peer */
    strcpy(m.sender.node_id, "MON1");
    assert_true(sc_peers_heard(&peers, &m, "DNS1", 100));    /* new: JOIN again */
    assert_false(sc_peers_heard(&peers, &m, "DNS1", 101));   /* known, nothing new */
    m.sender.public_address[0] = '\0';
    strcpy(m.sender.public_address, "198.51.100.1");
    assert_true(sc_peers_heard(&peers, &m, "DNS1", 102));    /* told something new */
    assert_int_equal(sc_peers_active(&peers, 102), 1);
    sc_peers_expire(&peers, 102 + SC_PEER_STALE_S + 1);
    assert_int_equal(peers.n, 0);
}

static void test_override_msgs(void **state)
{
    (void)state;
    ibp_overrides_t t = {0};
    sc_override_msg_t m;
    sc_bad_kind_t kind;
    ibp_err_t err;
    const char *set = "{\"action\":\"set\",\"domain\":\"RPC.Example.NET.\",\"countryCode\":\"gb\","
                      "\"override\":{\"memberName\":\"\",\"ipv4\":\"203.0.113.10\",\"ipv6\":\"\"}}";
    assert_true(sc_override_msg_decode(set, strlen(set), &m, &kind, &err));
    assert_int_equal(m.action, SC_OV_SET);
    assert_string_equal(m.entry.domain, "rpc.example.net");
    assert_string_equal(m.entry.cc, "GB");
    assert_true(m.entry.has_v4);
    assert_false(m.entry.has_v6);
    assert_true(ibp_overrides_set(&t, &m.entry, &err));
    strcpy(m.entry.cc, "DE");
    assert_true(ibp_overrides_set(&t, &m.entry, &err));
    assert_true(ibp_overrides_set(&t, &m.entry, &err));   /* replaces */
    assert_int_equal(t.n, 2);
    assert_string_equal(t.v[0].cc, "DE");                 /* sorted */
    sc_override_msg_free(&m);
    const char *rm = "{\"action\":\"remove\",\"domain\":\"rpc.example.net\",\"countryCode\":\"DE\"}";
    assert_true(sc_override_msg_decode(rm, strlen(rm), &m, &kind, &err));
    assert_true(ibp_overrides_remove(&t, m.entry.domain, m.entry.cc));
    assert_false(ibp_overrides_remove(&t, m.entry.domain, m.entry.cc));
    sc_override_msg_free(&m);
    const char *clear = "{\"action\":\"clear\",\"domain\":\"rpc.example.net\"}";
    assert_true(sc_override_msg_decode(clear, strlen(clear), &m, &kind, &err));
    assert_int_equal(ibp_overrides_clear(&t, m.entry.domain), 1);
    assert_int_equal(t.n, 0);
    sc_override_msg_free(&m);
    static const struct { const char *json; sc_bad_kind_t kind; } bad[] = {
        {"{\"action\":\"set\"", SC_BAD_JSON},
        {"{\"action\":\"bump\",\"domain\":\"x.net\",\"countryCode\":\"GB\"}", SC_BAD_ACTION},
        {"{\"action\":\"set\",\"domain\":\"x.net\"}", SC_BAD_FIELDS},
        {"{\"action\":\"remove\",\"countryCode\":\"GB\"}", SC_BAD_FIELDS},
        {"{\"action\":\"set\",\"domain\":\"x.net\",\"countryCode\":\"GBR\"}", SC_BAD_FIELDS},
        {"{\"action\":\"set\",\"domain\":\"x..net\",\"countryCode\":\"GB\"}", SC_BAD_FIELDS},
        {"{\"action\":\"set\",\"domain\":\"x.net\",\"countryCode\":\"GB\",\"override\":"
         "{\"ipv4\":\"2001:db8::1\"}}", SC_BAD_FIELDS},
        {"{\"action\":5}", SC_BAD_JSON},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        print_message("bad %zu: %s\n", i, bad[i].json);
        assert_false(sc_override_msg_decode(bad[i].json, strlen(bad[i].json), &m, &kind, &err));
        assert_int_equal(kind, bad[i].kind);
    }
    char *huge = malloc(SC_MSG_MAX_BYTES + 2);
    memset(huge, ' ', SC_MSG_MAX_BYTES + 1);
    huge[SC_MSG_MAX_BYTES + 1] = '\0';
    assert_false(sc_override_msg_decode(huge, SC_MSG_MAX_BYTES + 1, &m, &kind, &err));
    assert_int_equal(kind, SC_BAD_SIZE);
    free(huge);
    ibp_overrides_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syntax_errors), cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_go_string), cmocka_unit_test(test_go_trim_space),
        cmocka_unit_test(test_go_time_and_dates),
        cmocka_unit_test(test_usage_request), cmocka_unit_test(test_usage_reply),
        cmocka_unit_test(test_join), cmocka_unit_test(test_override_msgs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
