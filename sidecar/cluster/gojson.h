/* JSON as Go's encoding/json writes and rejects it: IBP's peers are Go
 * programs, and the NATS payloads must be byte-compatible (IBP-NODE §8).
 * The writer escapes as json.Marshal does (HTML-safe: < > & as \u003c...,
 * U+2028/2029, invalid UTF-8 as U+FFFD); the checker gives the error text of
 * json.Unmarshal's syntax check ("invalid character 'x' looking for
 * beginning of value", "unexpected end of JSON input"). */
#ifndef IBPDNS_SIDECAR_GOJSON_H
#define IBPDNS_SIDECAR_GOJSON_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sc_buf {
    char *p;
    size_t len, cap;
    bool oom;              /* an append failed: the content is incomplete */
} sc_buf_t;

void sc_buf_add(sc_buf_t *b, const char *s, size_t n);
void sc_buf_puts(sc_buf_t *b, const char *s);
__attribute__((format(printf, 2, 3)))
void sc_buf_printf(sc_buf_t *b, const char *fmt, ...);
void sc_buf_free(sc_buf_t *b);

/* s as a Go JSON string, quotes included. */
void sc_go_string(sc_buf_t *b, const char *s);

/* true if buf[0..len) is one valid JSON value (Go's rules: no NaN, no
 * leading zeros, any bytes >= 0x20 inside strings); else the text Go's
 * json.Unmarshal would give, into msg. */
bool sc_go_syntax_ok(const char *buf, size_t len, char *msg, size_t cap);

/* A field of a Go struct json.Unmarshal fills: a string (str), or a
 * struct (inner, a list ended by a NULL name). */
typedef struct sc_go_field {
    const char *name;      /* the json tag */
    char **str;            /* malloc'd; NULL while absent or null */
    bool *has_nul;         /* optional: the string held a NUL (kept up to it) */
    const struct sc_go_field *inner;
    const char *inner_type;/* the struct's Go type, for error texts */
} sc_go_field_t;

/* json.Unmarshal(buf, &v) for a struct of type go_type (named struct_name
 * in field errors): Go's syntax check, then keys in document order, each
 * matched case-insensitively (with Go's folds of K and s), the last one
 * winning, null leaving a field alone, unknown keys skipped, strings
 * decoded as Go does (invalid UTF-8 and lone surrogates as U+FFFD). False
 * with Go's error text in msg; the fields filled so far are left to the
 * caller to free. */
bool sc_go_unmarshal(const char *buf, size_t len, const char *struct_name, const char *go_type,
                     const sc_go_field_t *fields, char *msg, size_t cap);

/* Go's strings.TrimSpace (Unicode white space), in place. */
void sc_go_trim_space(char *s);

/* Go's time.Time JSON form (RFC 3339 with nanoseconds, trailing zeros cut,
 * UTC as Z) of a CLOCK_REALTIME reading. */
void sc_go_time(long long sec, long nsec, char out[40]);

/* "YYYY-MM-DD" that Go's time.Parse("2006-01-02") accepts (real day of a
 * real month). */
bool sc_go_date_ok(const char *s);

#endif
