/* The PowerDNS pipe protocol (ABI 1-5), answered from a routing table.
 * Pure: a line in, bytes appended to an output buffer; no I/O, no
 * allocation (but for usage counting's memory writes, pipe_usage.h, and the
 * ACME question of an _acme-challenge lookup, through st->acme). See spec PDNS-PIPE.md for what PowerDNS sends and expects. */
#ifndef IBPDNS_PIPE_PROTO_H
#define IBPDNS_PIPE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_table.h"
#include "pipe_usage.h"

#define PIPE_OUT_CAP (64 * 1024)

/* Answers are collected here and written with one write() per answer. If an
 * answer outgrows the buffer, `flush` is called to make room. */
typedef struct pipe_out {
    char buf[PIPE_OUT_CAP];
    size_t len;
    bool (*flush)(struct pipe_out *out, void *ctx);
    void *flush_ctx;
    bool failed;           /* flush failed: the peer is gone */
    uint64_t records;      /* DATA lines written */
} pipe_out_t;

typedef struct pipe_stats {
    uint64_t queries, malformed;   /* reported by CMD status */
    uint64_t acme_asked, acme_unanswered, acme_bad;   /* ACME questions to the sidecar */
} pipe_stats_t;

/* Asks the sidecar for an ACME name's TXT values (pipe_acme.h); returns the
 * reply's length (0: none in time) with *reply pointing at its bytes. */
typedef size_t (*pipe_acme_fn)(void *ctx, const char *name, size_t len, unsigned budget_ms,
                               const char **reply);

typedef struct pipe_state {
    int abi;               /* 0 until HELO */
    const ibp_table_t *table;   /* NULL or a table with no zones: nothing to answer */
    const char *table_path;
    pipe_stats_t stats;
    pipe_usage_t *usage;   /* NULL: no counting */
    pipe_acme_fn acme;     /* NULL: ACME names answer NODATA */
    void *acme_ctx;
} pipe_state_t;

typedef enum pipe_result {
    PIPE_OK = 0,           /* answered (END or data + END) */
    PIPE_MALFORMED,        /* answered FAIL or END for a line we could not parse */
} pipe_result_t;

/* Handles one line (without its '\n'; a trailing '\r' is tolerated). */
pipe_result_t pipe_handle_line(pipe_state_t *st, const char *line, size_t len, pipe_out_t *out);

/* For lines too long to hold: the answer PowerDNS needs to stay in sync.
 * head is the start of the line (what kind of request it was). */
void pipe_answer_overlong(pipe_state_t *st, const char *head, size_t head_len, pipe_out_t *out);

#endif
