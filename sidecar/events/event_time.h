/* Times of member events (IBP-NODE §7.5): RFC 3339 as Go's time.Parse
 * reads it (the /events arguments), Go's time.Time JSON form (what IBP's
 * node answers), and the UTC text the SQLite store keeps. Civil dates are
 * computed here (proleptic Gregorian), not with gmtime/timegm, so every
 * year Go's parser accepts (-999 to 9999) works. Pure functions. */
#ifndef IBPDNS_SIDECAR_EVENT_TIME_H
#define IBPDNS_SIDECAR_EVENT_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"

/* Go's zero time.Time (0001-01-01T00:00:00Z): an open event's EndTime. */
#define SC_TS_ZERO_SEC (-62135596800LL)

typedef struct sc_ts {
    int64_t sec;           /* seconds since the epoch, UTC */
    int32_t nsec;          /* 0..999999999 */
} sc_ts_t;

typedef struct sc_civil {
    int year, month, day, hour, min, sec;
} sc_civil_t;

int64_t sc_civil_to_sec(const sc_civil_t *c);
void sc_sec_to_civil(int64_t sec, sc_civil_t *c);

/* time.Parse(time.RFC3339, s) of Go (its general parser, which takes what
 * its fast path refuses): a 4-character year (4 digits, or a sign and 3),
 * "-MM-DD" of a real day, 'T', an hour of 1 or 2 digits, ":MM:SS", an
 * optional fraction ('.' or ',' and digits, nanoseconds kept), then "Z" or
 * "+hh:mm"/"-hh:mm" (hh <= 24, mm <= 60), nothing after. n bytes: s need
 * not be NUL-terminated and may hold anything. */
IBP_MUST_CHECK
bool sc_ts_parse_rfc3339(const char *s, size_t n, sc_ts_t *out);

/* Go's time.Time JSON (RFC 3339 with nanoseconds, trailing zeros cut, UTC
 * as Z), e.g. "2026-12-03T05:00:00Z"; a year outside 0..9999 as Go's
 * MarshalJSON refuses it is written with its sign. */
void sc_ts_go_json(sc_ts_t t, char out[48]);

/* "YYYY-MM-DD" of t (Go's Format("2006-01-02")). */
void sc_ts_date(sc_ts_t t, char out[16]);

/* "YYYY-MM-DD HH:MM:SS" (".ffffff" when there are microseconds): the
 * SQLite store's text, whose byte order is time order. Times before year 0
 * are written as year 0's first second, after 9999 as its last: every
 * stored time lies between. */
void sc_ts_sql(sc_ts_t t, char out[32]);

/* Reads a stored time back: sc_ts_sql's text, also with 'T' and a
 * trailing 'Z'. */
IBP_MUST_CHECK
bool sc_ts_parse_sql(const char *s, sc_ts_t *out);

/* getMemberEvents' window (IBP-NODE §7.5): an empty end is now, an empty
 * start end - 24 h; both RFC 3339, end parsed first. */
typedef enum sc_events_window_rc {
    SC_EVENTS_WINDOW_OK = 0,
    SC_EVENTS_BAD_END,     /* {"result":"invalid endTime"} */
    SC_EVENTS_BAD_START,   /* {"result":"invalid startTime"} */
} sc_events_window_rc_t;

sc_events_window_rc_t sc_events_window(const char *start, size_t start_n, const char *end,
                                       size_t end_n, sc_ts_t now, sc_ts_t *from, sc_ts_t *to);

#endif
