/* Monitor /results parsing and the online() rule of IBP-NODE §5.3. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ibp_health.h"
#include "ibp_limits.h"

#define T "\"Checktime\": \"2026-04-18T10:00:00Z\""
#define DOWN(name) "{\"Status\": false, \"MemberName\": \"" name "\", \"ErrorText\": \"x\"," \
                   " \"Data\": null, \"IsIPv6\": false, " T "}"
#define UP(name) "{\"Status\": true, \"MemberName\": \"" name "\", \"ErrorText\": \"\"," \
                 " \"Data\": {}, \"IsIPv6\": false, " T "}"

static ibp_health_t parse_ok(const char *json)
{
    ibp_health_t h;
    ibp_err_t err = {{0}};
    if (!ibp_health_parse(json, strlen(json), "results", &h, &err))
        fail_msg("%s", err.msg);
    assert_true(h.loaded);
    return h;
}

static void parse_fail(const char *json, const char *want)
{
    ibp_health_t h;
    ibp_err_t err = {{0}};
    assert_false(ibp_health_parse(json, strlen(json), "results", &h, &err));
    assert_false(h.loaded);
    assert_null(h.groups);
    assert_int_equal(h.n_lists, 0);
    if (want)
        assert_string_equal(err.msg, want);
}

static void test_site_failure_hits_all_domains(void **state)
{
    (void)state;
    ibp_health_t h = parse_ok(
        "{\"SiteResults\": [{\"CheckName\": \"ping\", \"IsIPv6\": false, \"Results\": ["
        DOWN("Amforc") "," UP("Dwellir") "]}], \"DomainResults\": [], \"EndpointResults\": null}");
    assert_int_equal(h.n_lists, 1);
    assert_false(ibp_health_online(&h, "rpc.dotters.network", "Amforc", false));
    assert_false(ibp_health_online(&h, "polkadot.ibp.network", "Amforc", false));
    assert_false(ibp_health_online(&h, NULL, "Amforc", false));
    assert_true(ibp_health_online(&h, "rpc.dotters.network", "Dwellir", false));
    assert_true(ibp_health_online(&h, "rpc.dotters.network", "Gatotech", false));
    ibp_health_free(&h);
    assert_null(h.groups);
}

static void test_domain_failure_only_that_domain(void **state)
{
    (void)state;
    ibp_health_t h = parse_ok(
        "{\"DomainResults\": [{\"CheckName\": \"ssl\", \"Domain\": \"rpc.dotters.network\","
        " \"IsIPv6\": false, \"Results\": [" DOWN("Amforc") "]}]}");
    assert_false(ibp_health_online(&h, "rpc.dotters.network", "Amforc", false));
    assert_true(ibp_health_online(&h, "polkadot.dotters.network", "Amforc", false));
    assert_true(ibp_health_online(&h, "dotters.network", "Amforc", false));
    assert_true(ibp_health_online(&h, "foo.rpc.dotters.network", "Amforc", false));
    assert_true(ibp_health_online(&h, NULL, "Amforc", false));
    ibp_health_free(&h);
}

static void test_endpoint_failure_knocks_out_host(void **state)
{
    (void)state;
    /* One failed path of a path-multiplexed host removes the member from the
     * whole host, other paths included. */
    ibp_health_t h = parse_ok(
        "{\"EndpointResults\": ["
        " {\"CheckName\": \"wss\", \"Domain\": \"rpc.dotters.network\","
        "  \"RpcUrl\": \"wss://rpc.dotters.network/kusama\", \"IsIPv6\": false,"
        "  \"Results\": [" DOWN("Dwellir") "]},"
        " {\"CheckName\": \"wss\", \"Domain\": \"rpc.dotters.network\","
        "  \"RpcUrl\": \"wss://rpc.dotters.network/polkadot\", \"IsIPv6\": false,"
        "  \"Results\": [" UP("Dwellir") "]}]}");
    assert_int_equal(h.n_lists, 2);
    assert_false(ibp_health_online(&h, "rpc.dotters.network", "Dwellir", false));
    assert_true(ibp_health_online(&h, "kusama.dotters.network", "Dwellir", false));
    assert_true(ibp_health_online(&h, "rpc.dotters.network", "Amforc", false));
    ibp_health_free(&h);
}

static void test_families_independent(void **state)
{
    (void)state;
    ibp_health_t h = parse_ok(
        "{\"SiteResults\": [{\"IsIPv6\": false, \"Results\": [" DOWN("A") "]},"
        "                   {\"IsIPv6\": true, \"Results\": [" DOWN("B") "]}],"
        " \"DomainResults\": [{\"Domain\": \"x.net\", \"IsIPv6\": true, \"Results\": [" DOWN("C") "]}]}");
    assert_false(ibp_health_online(&h, "x.net", "A", false));
    assert_true(ibp_health_online(&h, "x.net", "A", true));
    assert_true(ibp_health_online(&h, "x.net", "B", false));
    assert_false(ibp_health_online(&h, "x.net", "B", true));
    assert_true(ibp_health_online(&h, "x.net", "C", false));
    assert_false(ibp_health_online(&h, "x.net", "C", true));
    ibp_health_free(&h);
}

static void test_group_family_counts(void **state)
{
    (void)state;
    /* The per-result IsIPv6 says v6, the group says v4: the group wins. */
    ibp_health_t h = parse_ok(
        "{\"SiteResults\": [{\"IsIPv6\": false, \"Results\": ["
        " {\"Status\": false, \"MemberName\": \"A\", \"IsIPv6\": true, " T "}]}]}");
    assert_false(ibp_health_online(&h, "x.net", "A", false));
    assert_true(ibp_health_online(&h, "x.net", "A", true));
    ibp_health_free(&h);
}

static void test_case_insensitive(void **state)
{
    (void)state;
    /* Keys too are matched as Go does: case-insensitively. */
    ibp_health_t h = parse_ok(
        "{\"domainresults\": [{\"domain\": \"RPC.Dotters.Network\", \"isipv6\": false,"
        " \"results\": [{\"status\": false, \"membername\": \"amFORC\", \"checktime\": "
        "\"2026-04-18T10:00:00.123456789+02:00\"}]}],"
        " \"SITERESULTS\": [{\"Results\": [{\"MemberName\": \"Stake Plus\", \"Status\": false}]}]}");
    assert_false(ibp_health_online(&h, "rpc.dotters.network", "Amforc", false));
    assert_false(ibp_health_online(&h, "RPC.DOTTERS.NETWORK", "AMFORC", false));
    assert_false(ibp_health_online(&h, "x.net", "stake plus", false));
    assert_true(ibp_health_online(&h, "x.net", "Amforc", false));
    ibp_health_free(&h);
}

static void test_empty_snapshot_permissive(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{}", "null", "{\"SiteResults\": [], \"DomainResults\": [], \"EndpointResults\": []}",
        "{\"SiteResults\": null, \"Unknown\": 5}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        ibp_health_t h = parse_ok(bodies[i]);
        assert_int_equal(h.n_lists, 0);
        assert_true(ibp_health_online(&h, "x.net", "A", false));
        assert_true(ibp_health_online(&h, "x.net", "A", true));
        ibp_health_free(&h);
    }
}

static void test_not_loaded_permissive(void **state)
{
    (void)state;
    ibp_health_t h = {0};
    assert_true(ibp_health_online(&h, "x.net", "A", false));
    assert_true(ibp_health_online(NULL, "x.net", "A", false));
    /* A failed parse leaves an unloaded (permissive) snapshot behind. */
    ibp_err_t err = {{0}};
    assert_false(ibp_health_parse("{", 1, "results", &h, &err));
    assert_true(ibp_health_online(&h, "x.net", "A", false));
}

static void test_status_true_not_offline(void **state)
{
    (void)state;
    ibp_health_t h = parse_ok(
        "{\"SiteResults\": [{\"Results\": [" UP("A") "]}],"
        " \"DomainResults\": [{\"Domain\": \"x.net\", \"Results\": [" UP("A") "]}],"
        " \"EndpointResults\": [{\"Domain\": \"x.net\", \"Results\": [" UP("A") "]}]}");
    assert_int_equal(h.n_lists, 3);
    assert_true(ibp_health_online(&h, "x.net", "A", false));
    ibp_health_free(&h);

    /* Go's zero value: a result without Status is a failure. */
    h = parse_ok("{\"SiteResults\": [{\"Results\": [{\"MemberName\": \"A\"}]}]}");
    assert_false(ibp_health_online(&h, "x.net", "A", false));
    ibp_health_free(&h);
}

static void test_bad_checktime_rejects(void **state)
{
    (void)state;
    parse_fail("{\"SiteResults\": [{\"Results\": [" UP("A") ","
               " {\"Status\": false, \"MemberName\": \"B\", \"Checktime\": \"\"}]}]}",
               "results: .SiteResults[0].Results[1].Checktime: \"\" is not an RFC 3339 time");
    static const char *const bad[] = {
        "yesterday", "2026-04-18", "2026-04-18 10:00:00Z", "2026-04-18T10:00:00",
        "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z", "2026-04-18T24:00:00Z",
        "2026-04-18T10:60:00Z", "2026-04-18T10:00:60Z", "2026-04-18T10:00:00.Z",
        "2026-04-18T10:00:00+0200", "2026-04-18T10:00:00+24:00", "2026-04-18T10:00:00Zjunk",
        "26-04-18T10:00:00Z",
    };
    char json[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(json, sizeof json, "{\"DomainResults\": [{\"Domain\": \"x\", \"Results\": "
                 "[{\"Status\": true, \"Checktime\": \"%s\"}]}]}", bad[i]);
        parse_fail(json, NULL);
    }
    parse_fail("{\"SiteResults\": [{\"Results\": [{\"Checktime\": 5}]}]}",
               "results: .SiteResults[0].Results[0].Checktime: expected a string, got number");
    /* Valid forms, a leap day and a missing Checktime (Go's zero time) included. */
    ibp_health_t h = parse_ok(
        "{\"SiteResults\": [{\"Results\": [{\"Checktime\": \"2024-02-29T23:59:59.5-07:30\"},"
        " {\"Checktime\": null}, {}]}]}");
    ibp_health_free(&h);
}

static void test_wrong_types_reject(void **state)
{
    (void)state;
    parse_fail("[]", "results: .: expected an object, got array");
    parse_fail("{\"SiteResults\": {}}", "results: .SiteResults: expected an array, got object");
    parse_fail("{\"DomainResults\": [5]}", "results: .DomainResults[0]: expected an object, got number");
    parse_fail("{\"DomainResults\": [{\"Domain\": 1}]}",
               "results: .DomainResults[0].Domain: expected a string, got number");
    parse_fail("{\"SiteResults\": [{\"IsIPv6\": \"false\"}]}",
               "results: .SiteResults[0].IsIPv6: expected a boolean, got string");
    parse_fail("{\"EndpointResults\": [{\"Results\": [{\"Status\": 0}]}]}",
               "results: .EndpointResults[0].Results[0].Status: expected a boolean, got number");
    parse_fail("{\"EndpointResults\": [{\"Results\": [" UP("A") "]}], \"SiteResults\": [1]}",
               "results: .SiteResults[0]: expected an object, got number");
    parse_fail("", NULL);
    /* A raw NUL inside the buffer (not at its end) is invalid JSON. */
    static const char nul[] = "{\"SiteResults\": [{\"Results\": [" DOWN("A\0B") "]}]}";
    ibp_health_t h;
    ibp_err_t err = {{0}};
    assert_false(ibp_health_parse(nul, sizeof nul - 1, "results", &h, &err));
    assert_false(h.loaded);
    assert_non_null(strstr(err.msg, "results: invalid JSON: a NUL byte at offset "));
}

static void test_source_header(void **state)
{
    (void)state;
    assert_false(ibp_health_source_accepted("local"));
    assert_false(ibp_health_source_accepted("  LOCAL\t"));
    assert_false(ibp_health_source_accepted("Local"));
    assert_true(ibp_health_source_accepted("official"));
    assert_true(ibp_health_source_accepted(NULL));
    assert_true(ibp_health_source_accepted(""));
    assert_true(ibp_health_source_accepted("locale"));
    assert_true(ibp_health_source_accepted("lo cal"));
}

typedef struct digest {
    uint64_t hi, lo;
} digest_t;

static digest_t digest_of(const char *json)
{
    ibp_health_t h = parse_ok(json);
    digest_t d;
    assert_true(ibp_health_digest(&h, &d.hi, &d.lo));
    ibp_health_free(&h);
    return d;
}

static bool same_digest(digest_t a, digest_t b)
{
    return a.hi == b.hi && a.lo == b.lo;
}

/* The digest's dedupe loop compared each line with the one it had just
 * freed: any snapshot with two offline entries was a use-after-free (the
 * ASan sidecar died on its first poll). */
static void test_digest_two_offline(void **state)
{
    (void)state;
    digest_t ab = digest_of("{\"SiteResults\": [{\"Results\": [" DOWN("A") "," DOWN("B") "]}],"
                            " \"DomainResults\": [{\"Domain\": \"x.net\", \"Results\": ["
                            DOWN("C") "," DOWN("C") "]}]}");
    digest_t ba = digest_of("{\"DomainResults\": [{\"Domain\": \"X.net\", \"Results\": ["
                            DOWN("c") "]}], \"SiteResults\": [{\"Results\": [" DOWN("B") ","
                            UP("Z") "," DOWN("a") "]}]}");
    digest_t a = digest_of("{\"SiteResults\": [{\"Results\": [" DOWN("A") "]}],"
                           " \"DomainResults\": [{\"Domain\": \"x.net\", \"Results\": ["
                           DOWN("C") "]}]}");
    digest_t none = digest_of("{\"SiteResults\": [{\"Results\": [" UP("A") "]}]}");
    digest_t empty;
    assert_true(ibp_health_digest(NULL, &empty.hi, &empty.lo));
    assert_true(same_digest(ab, ba));    /* order, case and repeats do not count */
    assert_false(same_digest(ab, a));
    assert_true(same_digest(none, empty));
}

/* Lines were cut at 1 KiB: long names that shared a prefix digested alike.
 * The parser bounds names now, so the snapshot is built by hand: the
 * digest must not depend on what the parser happens to refuse. */
static void test_digest_long_names_differ(void **state)
{
    (void)state;
    char name[1500];
    memset(name, 'm', sizeof name - 2);
    name[sizeof name - 1] = '\0';
    char *offline[] = {name};
    ibp_health_group_t group = {.kind = IBP_CHECK_SITE, .offline = offline, .n_offline = 1};
    ibp_health_t h = {.loaded = true, .n_lists = 1, .groups = &group, .n_groups = 1};
    digest_t d[2];
    for (int i = 0; i < 2; i++) {
        name[sizeof name - 2] = (char)('1' + i);
        assert_true(ibp_health_digest(&h, &d[i].hi, &d[i].lo));
    }
    assert_false(same_digest(d[0], d[1]));
}

static char *repeat_body(const char *head, const char *unit, size_t n, const char *tail)
{
    size_t ul = strlen(unit), cap = strlen(head) + n * (ul + 1) + strlen(tail) + 1;
    char *b = malloc(cap);
    assert_non_null(b);
    size_t o = (size_t)snprintf(b, cap, "%s", head);
    for (size_t i = 0; i < n; i++) {
        if (i)
            b[o++] = ',';
        memcpy(b + o, unit, ul);
        o += ul;
    }
    snprintf(b + o, cap - o, "%s", tail);
    return b;
}

/* 15 MB of empty result objects took the sidecar to 1.5 GB: the parse is
 * refused before a tree is built, with an error that says why. */
static void test_value_flood_refused(void **state)
{
    (void)state;
    char *body = repeat_body("{\"SiteResults\":[{\"Results\":[", "{}", 5000000, "]}]}");
    ibp_health_t h;
    ibp_err_t err = {{0}};
    assert_false(ibp_health_parse(body, strlen(body), "results", &h, &err));
    assert_false(h.loaded);
    assert_non_null(strstr(err.msg, "results: too many JSON values to load (5000002 objects"));
    assert_non_null(strstr(err.msg, "the limit is 256 MiB"));
    free(body);
}

/* No member name is longer than 64 bytes, no host name than 253: a
 * snapshot with longer ones is corrupt, and once replaced the good one. */
static void test_overlong_names_refused(void **state)
{
    (void)state;
    char name[100], json[512];
    memset(name, 'n', 65);
    name[65] = '\0';
    snprintf(json, sizeof json, "{\"SiteResults\": [{\"Results\": [" UP("A") ","
             "{\"Status\": true, \"MemberName\": \"%s\"}]}]}", name);
    parse_fail(json, "results: .SiteResults[0].Results[1].MemberName: 65 bytes is longer than "
                     "any member name (64)");
    name[64] = '\0';
    snprintf(json, sizeof json, "{\"SiteResults\": [{\"Results\": [{\"MemberName\": \"%s\"}]}]}",
             name);
    ibp_health_t h = parse_ok(json);
    ibp_health_free(&h);
    char dom[300];
    memset(dom, 'd', 254);
    dom[254] = '\0';
    snprintf(json, sizeof json, "{\"DomainResults\": [{\"Domain\": \"%s\", \"Results\": []}]}", dom);
    parse_fail(json, "results: .DomainResults[0].Domain: 254 bytes is longer than a DNS name (253)");
}

/* jansson quotes the input near a fault: a raw newline or control byte
 * there once made a multi-line error (found by fuzz_json_*). */
static void test_json_error_is_one_printable_line(void **state)
{
    (void)state;
    static const char bad[] = "\"\\\n\x01\"";
    ibp_health_t h;
    ibp_err_t err = {{0}};
    assert_false(ibp_health_parse(bad, sizeof bad - 1, "results", &h, &err));
    assert_non_null(strstr(err.msg, "results: invalid JSON at line"));
    for (const char *p = err.msg; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
}

/* The monitor repeating an offline member costs one name, not one per entry. */
static void test_offline_repeats_kept_once(void **state)
{
    (void)state;
    char *body = repeat_body("{\"SiteResults\":[{\"Results\":[", DOWN("Dwellir"), 20000, "]}]}");
    ibp_health_t h = parse_ok(body);
    assert_int_equal(h.n_groups, 1);
    assert_int_equal(h.groups[0].n_offline, 1);
    assert_false(ibp_health_online(&h, "rpc.x.net", "dwellir", false));
    ibp_health_free(&h);
    free(body);
}

/* Member events' view (BEHAVIOR §6a): every result with the key that
 * identifies it; texts for failed ones only. */
static void test_event_observations(void **state)
{
    (void)state;
    ibp_health_t h = parse_ok(
        "{\"SiteResults\": [{\"CheckName\": \"ping\", \"IsIPv6\": true, \"Results\": ["
        "{\"Status\": false, \"MemberName\": \"Amforc\", \"ErrorText\": \"timeout\","
        " \"Data\": {\"b\": 1, \"a\": [true]}, \"IsIPv6\": false}," UP("Dwellir") "]}],"
        " \"EndpointResults\": [{\"CheckName\": \"wss\", \"Domain\": \"rpc.dotters.network\","
        " \"RpcUrl\": \"wss://rpc.dotters.network/kusama\", \"IsIPv6\": false, \"Results\": ["
        DOWN("Dwellir") "]}]}");
    assert_int_equal(h.n_obs, 3);
    const ibp_health_obs_t *a = &h.obs[0], *d = &h.obs[1], *e = &h.obs[2];
    assert_false(a->online);
    assert_true(a->ipv6);   /* the group's family, not the result's */
    assert_int_equal(a->kind, IBP_CHECK_SITE);
    assert_string_equal(a->member, "Amforc");
    assert_string_equal(a->check, "ping");
    assert_null(a->domain);
    assert_null(a->endpoint);
    assert_string_equal(a->error, "timeout");
    assert_string_equal(a->data, "{\"b\":1,\"a\":[true]}");
    uint64_t hi, lo;
    ibp_health_event_key(IBP_CHECK_SITE, "ping", NULL, NULL, "Amforc", true, &hi, &lo);
    assert_true(hi == a->key_hi && lo == a->key_lo);
    assert_true(d->online);
    assert_null(d->member);   /* no texts for a result that passed */
    ibp_health_event_key(IBP_CHECK_SITE, "ping", "", "", "Dwellir", true, &hi, &lo);
    assert_true(hi == d->key_hi && lo == d->key_lo);
    assert_false(e->online);
    assert_int_equal(e->kind, IBP_CHECK_ENDPOINT);
    assert_string_equal(e->domain, "rpc.dotters.network");
    assert_string_equal(e->endpoint, "wss://rpc.dotters.network/kusama");
    assert_null(e->data);   /* Data null */
    ibp_health_event_key(IBP_CHECK_ENDPOINT, "wss", "rpc.dotters.network",
                         "wss://rpc.dotters.network/kusama", "Dwellir", false, &hi, &lo);
    assert_true(hi == e->key_hi && lo == e->key_lo);
    /* Any other family, check, domain or member is another key. */
    ibp_health_event_key(IBP_CHECK_ENDPOINT, "wss", "rpc.dotters.network",
                         "wss://rpc.dotters.network/kusama", "Dwellir", true, &hi, &lo);
    assert_false(hi == e->key_hi && lo == e->key_lo);
    ibp_health_event_key(IBP_CHECK_DOMAIN, "wss", "rpc.dotters.network",
                         "wss://rpc.dotters.network/kusama", "Dwellir", false, &hi, &lo);
    assert_false(hi == e->key_hi && lo == e->key_lo);
    ibp_health_free(&h);
    assert_null(h.obs);
    ibp_check_kind_t k;
    assert_true(ibp_check_kind_parse("endpoint", &k));
    assert_int_equal(k, IBP_CHECK_ENDPOINT);
    assert_false(ibp_check_kind_parse("Site", &k));
    assert_string_equal(ibp_check_kind_name(IBP_CHECK_DOMAIN), "domain");
}

/* Texts are bounded: ErrorText cut at a character, a long check name to
 * its column's width, a huge Data dropped, an overlong RpcUrl not recorded. */
static void test_event_observation_bounds(void **state)
{
    (void)state;
    size_t cap = 3 * IBP_EVENT_DATA_MAX + 4096;
    char *json = malloc(cap), *err = malloc(IBP_EVENT_ERROR_MAX + 8);
    char *data = malloc(IBP_EVENT_DATA_MAX + 64), *url = malloc(IBP_EVENT_ENDPOINT_MAX + 8);
    char check[160];
    assert_true(json && err && data && url);
    memset(err, 'e', IBP_EVENT_ERROR_MAX - 1);
    memcpy(err + IBP_EVENT_ERROR_MAX - 1, "\xc3\xa9", 3);   /* é across the bound */
    memset(check, 'c', 150);
    check[150] = '\0';
    snprintf(data, IBP_EVENT_DATA_MAX + 64, "{\"k\": \"%0*d\"}", IBP_EVENT_DATA_MAX, 0);
    memcpy(url, "wss://", 6);
    memset(url + 6, 'u', IBP_EVENT_ENDPOINT_MAX);
    url[IBP_EVENT_ENDPOINT_MAX + 6] = '\0';
    snprintf(json, cap,
             "{\"SiteResults\": [{\"CheckName\": \"%s\", \"Results\": [{\"Status\": false,"
             " \"MemberName\": \"A\", \"ErrorText\": \"%s\", \"Data\": %s}]}],"
             " \"EndpointResults\": [{\"CheckName\": \"wss\", \"Domain\": \"x.net\","
             " \"RpcUrl\": \"%s\", \"Results\": [" DOWN("A") "]}]}", check, err, data, url);
    ibp_health_t h = parse_ok(json);
    assert_int_equal(h.n_obs, 1);
    assert_int_equal(h.n_obs_skipped, 1);
    assert_int_equal(strlen(h.obs[0].error), IBP_EVENT_ERROR_MAX - 1);
    assert_int_equal(strlen(h.obs[0].check), IBP_EVENT_CHECK_NAME_MAX);
    assert_null(h.obs[0].data);
    assert_false(ibp_health_online(&h, "x.net", "A", false));   /* routing still sees it */
    ibp_health_free(&h);
    free(json);
    free(err);
    free(data);
    free(url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_site_failure_hits_all_domains),
        cmocka_unit_test(test_domain_failure_only_that_domain),
        cmocka_unit_test(test_endpoint_failure_knocks_out_host),
        cmocka_unit_test(test_families_independent),
        cmocka_unit_test(test_group_family_counts),
        cmocka_unit_test(test_case_insensitive),
        cmocka_unit_test(test_empty_snapshot_permissive),
        cmocka_unit_test(test_not_loaded_permissive),
        cmocka_unit_test(test_status_true_not_offline),
        cmocka_unit_test(test_bad_checktime_rejects),
        cmocka_unit_test(test_wrong_types_reject),
        cmocka_unit_test(test_source_header),
        cmocka_unit_test(test_digest_two_offline),
        cmocka_unit_test(test_digest_long_names_differ),
        cmocka_unit_test(test_value_flood_refused),
        cmocka_unit_test(test_offline_repeats_kept_once),
        cmocka_unit_test(test_json_error_is_one_printable_line),
        cmocka_unit_test(test_overlong_names_refused),
        cmocka_unit_test(test_event_observations),
        cmocka_unit_test(test_event_observation_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
