/* The member events' parsers of outside input (sidecar/events): the
 * /events times as Go's time.Parse(time.RFC3339) reads them
 * (sc_events_window), and additional_data as IBP re-marshals it
 * (sc_event_data_json: the monitors write that column).
 *
 * Input: START \n END \n DATA (any bytes; a missing field is empty).
 *
 * Asserts (abort): a time that parses is written by sc_ts_go_json as text
 * that parses back to the same instant (years 0-9999), its SQLite text
 * reads back to the same instant with microseconds, and byte order of the
 * SQLite texts is time order; the window's start is 24 h before its end
 * when no start is given; the Data JSON is valid JSON, an object or null. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "event_json.h"
#include "event_time.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *next(const char **p, const char *end, size_t *n)
{
    const char *s = *p;
    const char *nl = s < end ? memchr(s, '\n', (size_t)(end - s)) : NULL;
    *n = (size_t)((nl ? nl : end) - s);
    *p = nl ? nl + 1 : end;
    return s;
}

static void check_time(const char *s, size_t n)
{
    sc_ts_t t;
    if (!sc_ts_parse_rfc3339(s, n, &t))
        return;
    if (t.nsec < 0 || t.nsec > 999999999)
        fuzz_fail("nanoseconds %d", (int)t.nsec);
    sc_civil_t c;
    sc_sec_to_civil(t.sec, &c);
    if (c.year < 0 || c.year > 9999)
        return;
    char text[48], sql[32];
    sc_ts_t back;
    sc_ts_go_json(t, text);
    if (!sc_ts_parse_rfc3339(text, strlen(text), &back) || back.sec != t.sec ||
        back.nsec != t.nsec)
        fuzz_fail("%.*s written as %s, which does not read back", (int)n, s, text);
    sc_ts_sql(t, sql);
    if (!sc_ts_parse_sql(sql, &back) || back.sec != t.sec || back.nsec != t.nsec / 1000 * 1000)
        fuzz_fail("SQLite text %s of %.*s does not read back", sql, (int)n, s);
    char later[32];
    sc_ts_sql((sc_ts_t){.sec = t.sec + 1}, later);
    if (strcmp(sql, later) >= 0 && c.year < 9999)
        fuzz_fail("SQLite texts out of order: %s, %s", sql, later);
}

static void check_data(const char *s, size_t n)
{
    char *text = malloc(n + 1);
    if (!text)
        abort();
    memcpy(text, s, n);
    text[n] = '\0';
    sc_buf_t b = {0};
    sc_event_data_json(&b, text);
    if (b.oom)
        abort();
    json_error_t jerr;
    json_t *j = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!j || !(json_is_object(j) || json_is_null(j)))
        fuzz_fail("Data %.100s written as %.200s", text, b.p);
    json_decref(j);
    sc_buf_free(&b);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    size_t ns, ne, nd;
    const char *start = next(&p, end, &ns), *stop = next(&p, end, &ne);
    const char *rest = next(&p, end, &nd);
    nd = (size_t)(end - rest);
    check_time(start, ns);
    check_time(stop, ne);
    sc_ts_t now = {.sec = 1776506400, .nsec = 5}, from, to;
    sc_events_window_rc_t rc = sc_events_window("", 0, stop, ne, now, &from, &to);
    if (rc == SC_EVENTS_WINDOW_OK && (from.sec != to.sec - 86400 || from.nsec != to.nsec))
        fuzz_fail("the default start is not 24 h before the end");
    (void)sc_events_window(start, ns, stop, ne, now, &from, &to);
    check_data(rest, nd);
    return 0;
}
