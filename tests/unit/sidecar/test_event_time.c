/* Member events' times (sidecar/events/event_time.c): RFC 3339 as Go's
 * time.Parse(time.RFC3339, s) takes it, Go's time.Time JSON, the SQLite
 * text, and getMemberEvents' window (IBP-NODE §7.5). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "event_time.h"

static sc_ts_t parse_ok(const char *s)
{
    sc_ts_t t;
    if (!sc_ts_parse_rfc3339(s, strlen(s), &t))
        fail_msg("refused: %s", s);
    return t;
}

static void parse_bad(const char *s)
{
    sc_ts_t t;
    if (sc_ts_parse_rfc3339(s, strlen(s), &t))
        fail_msg("accepted: %s", s);
}

static void test_parse_what_go_takes(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("2026-04-18T10:00:00Z").sec, 1776506400);
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z").sec, 0);
    sc_ts_t t = parse_ok("2026-04-18T12:00:00.123456789123+02:00");
    assert_int_equal(t.sec, 1776506400);
    assert_int_equal(t.nsec, 123456789);
    assert_int_equal(parse_ok("2026-04-18T10:00:00,5Z").nsec, 500000000);
    assert_int_equal(parse_ok("2026-04-18T9:00:00-01:00").sec, 1776506400);   /* hour "15": 1-2 digits */
    assert_int_equal(parse_ok("2026-04-18T10:00:00+24:00").sec, 1776506400 - 86400);
    assert_int_equal(parse_ok("2026-04-18T10:00:00-00:60").sec, 1776506400 + 3600);
    assert_int_equal(parse_ok("2024-02-29T00:00:00Z").sec, 1709164800);
    assert_int_equal(parse_ok("0000-01-01T00:00:00Z").sec, -62167219200LL);
    assert_int_equal(parse_ok("-001-01-01T00:00:00Z").sec < -62167219200LL, 1);   /* Go's atoi */
    assert_int_equal(parse_ok("+999-01-01T00:00:00Z").sec, parse_ok("0999-01-01T00:00:00Z").sec);
}

static void test_parse_what_go_refuses(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "2026-04-18", "2026-04-18T10:00:00", "2026-04-18t10:00:00Z", "2026-04-18T10:00:00z",
        "2026-04-18 10:00:00Z", "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z", "2026-04-31T00:00:00Z", "2026-4-18T10:00:00Z",
        "2026-04-18T24:00:00Z", "2026-04-18T10:60:00Z", "2026-04-18T10:00:60Z",
        "2026-04-18T10:0:00Z", "2026-04-18T100:00:00Z", "2026-04-18T10:00:00+25:00",
        "2026-04-18T10:00:00+01:61", "2026-04-18T10:00:00+0100", "2026-04-18T10:00:00+01",
        "2026-04-18T10:00:00Z ", " 2026-04-18T10:00:00Z", "2026-04-18T10:00:00.Z",
        "2026-04-18T10:00:00.5", "+-12-04-18T10:00:00Z", "20261-04-18T10:00:00Z",
        "2026-04-18T10:00:00ZZ", "2026-04-18T-1:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        parse_bad(bad[i]);
    sc_ts_t t;
    assert_false(sc_ts_parse_rfc3339("2026-04-18T10:00:00Z\0", 21, &t));   /* a NUL inside */
    assert_true(sc_ts_parse_rfc3339("2026-04-18T10:00:00Zjunk", 20, &t)); /* n bytes only */
}

static void test_go_json_and_dates(void **state)
{
    (void)state;
    char out[48], date[16];
    sc_ts_go_json((sc_ts_t){.sec = SC_TS_ZERO_SEC}, out);
    assert_string_equal(out, "0001-01-01T00:00:00Z");
    sc_ts_go_json((sc_ts_t){.sec = 1776506400, .nsec = 120000000}, out);
    assert_string_equal(out, "2026-04-18T10:00:00.12Z");
    sc_ts_go_json((sc_ts_t){.sec = 1776506400, .nsec = 1}, out);
    assert_string_equal(out, "2026-04-18T10:00:00.000000001Z");
    sc_ts_date((sc_ts_t){.sec = 1776506399}, date);
    assert_string_equal(date, "2026-04-18");
    sc_ts_date((sc_ts_t){.sec = -1}, date);
    assert_string_equal(date, "1969-12-31");
}

static void test_sql_text_round_trip(void **state)
{
    (void)state;
    char text[32];
    sc_ts_t back;
    sc_ts_sql((sc_ts_t){.sec = 1776506400}, text);
    assert_string_equal(text, "2026-04-18 10:00:00");
    assert_true(sc_ts_parse_sql(text, &back));
    assert_int_equal(back.sec, 1776506400);
    sc_ts_sql((sc_ts_t){.sec = 1776506400, .nsec = 500000000}, text);
    assert_string_equal(text, "2026-04-18 10:00:00.500000");
    assert_true(sc_ts_parse_sql("2026-04-18T10:00:00Z", &back));
    assert_false(sc_ts_parse_sql("2026-04-18 10:00", &back));
    assert_false(sc_ts_parse_sql("2026-04-18 10:00:00.", &back));
    /* Out of the text's range: clamped, so that order is kept. */
    sc_ts_sql(parse_ok("-001-01-01T00:00:00Z"), text);
    assert_string_equal(text, "0000-01-01 00:00:00");
    /* Byte order is time order. */
    char a[32], b[32];
    sc_ts_sql((sc_ts_t){.sec = 1776506400}, a);
    sc_ts_sql((sc_ts_t){.sec = 1776506400, .nsec = 1000}, b);
    assert_true(strcmp(a, b) < 0);
}

static void test_window_ibps_rules(void **state)
{
    (void)state;
    sc_ts_t now = {.sec = 1776506400, .nsec = 7}, from, to;
    assert_int_equal(sc_events_window("", 0, "", 0, now, &from, &to), SC_EVENTS_WINDOW_OK);
    assert_int_equal(to.sec, now.sec);
    assert_int_equal(to.nsec, 7);
    assert_int_equal(from.sec, now.sec - 86400);
    const char *end = "2026-01-02T00:00:00Z";
    assert_int_equal(sc_events_window("", 0, end, strlen(end), now, &from, &to),
                     SC_EVENTS_WINDOW_OK);
    assert_int_equal(from.sec, to.sec - 86400);   /* 24 h before the end given */
    assert_int_equal(sc_events_window("x", 1, "y", 1, now, &from, &to), SC_EVENTS_BAD_END);
    assert_int_equal(sc_events_window("x", 1, end, strlen(end), now, &from, &to),
                     SC_EVENTS_BAD_START);
    const char *late = "2030-01-01T00:00:00Z";   /* after the end: no error, IBP finds nothing */
    assert_int_equal(sc_events_window(late, strlen(late), end, strlen(end), now, &from, &to),
                     SC_EVENTS_WINDOW_OK);
    assert_true(from.sec > to.sec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_what_go_takes),
        cmocka_unit_test(test_parse_what_go_refuses),
        cmocka_unit_test(test_go_json_and_dates),
        cmocka_unit_test(test_sql_text_round_trip),
        cmocka_unit_test(test_window_ibps_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
