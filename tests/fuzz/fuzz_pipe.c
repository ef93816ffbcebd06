/* pipe_handle_line() (pipe/pipe_proto.h) driven line by line, as
 * ibpdns-pipe's handle_lines() does: the input is split on '\n', a last
 * line without one is never answered, and one of 64 KiB or more gets
 * pipe_answer_overlong(). The table is built at start-up from
 * tests/fuzz/configs/small (health results, overrides, trie indexes).
 *
 * Asserts the framing as PowerDNS reads it (PDNS-PIPE.md §2-§4), abort() on
 * any violation:
 *  - every request gets exactly one answer, made of whole lines;
 *  - HELO: exactly one line;
 *  - CMD, once HELO 5 was accepted: any lines, the last exactly END, no
 *    earlier line that PowerDNS would take for END (FAIL is not special);
 *  - Q, AXFR and anything else: zero or more DATA/LOG lines, then exactly
 *    one END or FAIL, and nothing after it; a SOA question (well-formed for
 *    the ABI) is never answered FAIL, and only with SOA records;
 *  - DATA: at least the negotiated ABI's fields (7; 9 from ABI 3), no empty
 *    field, numeric scopebits/auth/ttl/id, class IN, MX/SRV priority in a
 *    field of its own, and the owner of a Q answer is the asked name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ibp_table.h"
#include "pipe_proto.h"

#define MAX_FIELDS 64
#define IN_CAP (64 * 1024)   /* pipe_main.c's input buffer */

typedef struct span {
    const char *s;
    size_t len;
} span_t;

static ibp_table_t table;
static pipe_out_t out;
static struct {
    char *buf;
    size_t len, cap;
} answer;
static span_t request;   /* for the failure report */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool collect(pipe_out_t *o, void *ctx)
{
    (void)ctx;
    if (answer.len + o->len > answer.cap) {
        answer.cap = 2 * (answer.len + o->len);
        if (!(answer.buf = realloc(answer.buf, answer.cap)))
            abort();
    }
    memcpy(answer.buf + answer.len, o->buf, o->len);
    answer.len += o->len;
    o->len = 0;
    return true;
}

#define VIOLATION(...) do { \
        fprintf(stderr, "request: \"%.*s\"\nanswer: \"%.*s\"\n", (int)request.len, request.s, \
                (int)answer.len, answer.buf); \
        fuzz_fail(__VA_ARGS__); \
    } while (0)

static bool is(span_t f, const char *s)
{
    return f.len == strlen(s) && !memcmp(f.s, s, f.len);
}

/* PowerDNS right-trims every line it reads. */
static span_t trim_right(span_t l)
{
    while (l.len && (l.s[l.len - 1] == ' ' || l.s[l.len - 1] == '\t' || l.s[l.len - 1] == '\r'))
        l.len--;
    return l;
}

static size_t split(span_t l, span_t *f, size_t max)
{
    size_t n = 0;
    const char *p = l.s, *end = l.s + l.len;
    for (;;) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        if (n < max)
            f[n] = (span_t){p, tab ? (size_t)(tab - p) : (size_t)(end - p)};
        n++;
        if (!tab)
            return n;
        p = tab + 1;
    }
}

/* A decimal (optionally negative) of at most 10 digits, at most max. */
static bool number(span_t f, bool sign, long long max, long long *value)
{
    size_t i = sign && f.len && f.s[0] == '-';
    long long v = 0;
    if (f.len == i || f.len - i > 10)
        return false;
    for (size_t k = i; k < f.len; k++) {
        if (f.s[k] < '0' || f.s[k] > '9')
            return false;
        v = v * 10 + (f.s[k] - '0');
    }
    if (value)
        *value = i ? -v : v;
    return v <= max;
}

static void check_data(span_t l, int abi, const span_t *owner, bool soa)
{
    span_t f[MAX_FIELDS];
    size_t n = split(l, f, MAX_FIELDS), e = abi >= 3 ? 2 : 0;
    if (abi < 1)
        VIOLATION("DATA before an accepted HELO");
    if (n < 7 + e)
        VIOLATION("DATA line with %zu fields, ABI %d needs %zu", n, abi, 7 + e);
    for (size_t i = 0; i < n && i < MAX_FIELDS; i++)
        if (f[i].len == 0)
            VIOLATION("DATA line with an empty field %zu", i);
    if (e && (!number(f[1], false, 128, NULL) || !(is(f[2], "0") || is(f[2], "1"))))
        VIOLATION("DATA scopebits/auth are not numbers");
    if (!is(f[2 + e], "IN") || !number(f[4 + e], false, 0xFFFFFFFFLL, NULL) ||
        !number(f[5 + e], true, 0x7FFFFFFF, NULL))
        VIOLATION("DATA class, ttl or id malformed");
    if ((is(f[3 + e], "MX") || is(f[3 + e], "SRV")) && n < 8 + e)
        VIOLATION("MX/SRV DATA without a separate priority field");
    if (owner && (f[1 + e].len != owner->len || memcmp(f[1 + e].s, owner->s, owner->len)))
        VIOLATION("DATA owner is not the asked name");
    if (soa && !is(f[3 + e], "SOA"))
        VIOLATION("non-SOA record in the answer to a SOA question");
}

/* The line as PowerDNS would send it: the kind of answer it then reads. */
enum kind { K_HELO, K_CMD, K_QUERY };

static void check_answer(enum kind kind, int abi, const span_t *owner, bool soa)
{
    if (answer.len == 0 || answer.buf[answer.len - 1] != '\n')
        VIOLATION("answer is empty or does not end with a newline");
    size_t lines = 0;
    for (size_t at = 0; at < answer.len;) {
        const char *nl = memchr(answer.buf + at, '\n', answer.len - at);
        span_t raw = {answer.buf + at, (size_t)(nl - (answer.buf + at))};
        span_t l = trim_right(raw);
        at += raw.len + 1;
        lines++;
        bool last = at == answer.len;
        if (kind == K_HELO) {
            if (!last)
                VIOLATION("HELO answered with more than one line");
        } else if (kind == K_CMD) {
            if (is(l, "END") != last || (last && !is(raw, "END")))
                VIOLATION("CMD answer does not end with exactly one END line");
        } else if (last) {
            if (!is(raw, "END") && !is(raw, "FAIL"))
                VIOLATION("answer does not end with END or FAIL");
            if (soa && !is(raw, "END"))
                VIOLATION("FAIL to a SOA question (PowerDNS then waits for a line forever)");
        } else if (l.len >= 5 && !memcmp(l.s, "DATA\t", 5)) {
            check_data(l, abi, owner, soa);
        } else if (!(l.len >= 4 && !memcmp(l.s, "LOG\t", 4))) {
            VIOLATION("line %zu is neither DATA nor LOG before the end of the answer", lines);
        }
    }
}

/* One request: answered, then checked as PowerDNS would read the answer. */
static void handle(pipe_state_t *st, const char *line, size_t len, int *abi)
{
    char *copy = malloc(len ? len : 1);   /* exactly the line: overreads are caught */
    if (!copy)
        abort();
    memcpy(copy, line, len);
    request = (span_t){copy, len};
    span_t req = {copy, len && copy[len - 1] == '\r' ? len - 1 : len};   /* as pipe_proto */
    span_t f[MAX_FIELDS];
    size_t n = split(req, f, MAX_FIELDS);
    bool nul = memchr(req.s, '\0', req.len) != NULL;
    enum kind kind = is(f[0], "HELO") ? K_HELO
                   : is(f[0], "CMD") && n >= 2 && *abi >= 5 ? K_CMD : K_QUERY;
    size_t q_fields = *abi == 1 ? 6 : *abi == 2 ? 7 : 8;
    bool q = is(f[0], "Q") && *abi >= 1 && n == q_fields && !nul && len < IN_CAP;
    bool soa = q && is(f[2], "IN") && is(f[3], "SOA");

    answer.len = 0;
    if (len >= IN_CAP)   /* pipe_main.c cannot hold it: drops it, answers at its end */
        pipe_answer_overlong(st, copy, 8, &out);
    else
        pipe_handle_line(st, copy, len, &out);
    collect(&out, NULL);
    check_answer(kind, *abi, q ? &f[1] : NULL, soa);

    if (kind == K_HELO) {
        /* PowerDNS sends HELO once, "HELO\t<n>", and never checks the answer:
         * 1-5 must be accepted as they are. Beyond that the ABI is whatever
         * the coprocess took (PowerDNS never sends the other lines). */
        long long v = 0;
        bool ok = answer.len >= 3 && !memcmp(answer.buf, "OK\t", 3);
        if (n == 2 && number(f[1], false, 5, &v) && v >= 1 && (!ok || st->abi != v))
            VIOLATION("HELO %lld not accepted as ABI %lld", v, v);
        if (ok && (st->abi < 1 || st->abi > 5))
            VIOLATION("HELO answered OK with ABI %d", st->abi);
        *abi = st->abi;
    }
    free(copy);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    uint8_t *buf;
    size_t len;
    ibp_err_t err;
    if (!fuzz_table_build(FUZZ_SRC_DIR "/configs/small", 1, &buf, &len, &err) ||
        !ibp_table_attach(buf, len, &table, &err))
        fuzz_fail("no table for the pipe target: %s", err.msg);
    out.flush = collect;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pipe_state_t st = {.table = &table, .table_path = "fuzz.tbl"};
    int abi = 0;   /* the ABI negotiated by the last HELO */
    const char *p = (const char *)data, *end = p + size, *nl;
    while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        handle(&st, p, (size_t)(nl - p), &abi);
        p = nl + 1;
    }
    return 0;
}
