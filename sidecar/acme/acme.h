/* ACME values for the coprocesses (BEHAVIOR §5, issue 15): a local
 * SOCK_SEQPACKET socket (lib/base/ibp_acme_wire.h) where a coprocess asks
 * for an _acme-challenge name; the URLs are those of the name's ACME TXT
 * records in the table in place (a local caller cannot make us fetch
 * anything else). One thread runs the socket and every fetch (libcurl's
 * multi interface): 3 attempts, status 200, at most 512 bytes, trimmed,
 * http/https only, redirects too. Each URL is fetched once for all askers
 * (single flight) and kept Routing.AcmeCacheSeconds.
 *
 * No asker waits past its budget: a question is answered when its values
 * are in, or at its deadline with what there is ("NONE": the coprocess
 * answers NODATA). A waiting coprocess holds up its PowerDNS thread and the
 * ordinary lookups queued behind it, so waits are rationed: a running fetch
 * is waited for by whoever asks (a CA asks from several places at once)
 * until its window ends, about as long as the URL's last fetch took (not at
 * all once that outlasted the budget, nor while its server has lately kept
 * someone waiting in vain); the value once it is in. A table that brings
 * new URLs has them fetched soon, so that their speed is known before
 * anyone waits. */
#ifndef IBPDNS_SIDECAR_ACME_H
#define IBPDNS_SIDECAR_ACME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ibp_err.h"
#include "state.h"

typedef struct sc_acme_stats {
    atomic_uint_fast64_t questions;   /* read from coprocesses */
    atomic_uint_fast64_t answered;    /* with at least one value */
    atomic_uint_fast64_t unanswered;  /* NONE: no value in time or none to have */
    atomic_uint_fast64_t refused;     /* too many askers at once, or malformed */
    atomic_uint_fast64_t fetches_ok, fetches_failed;   /* per URL, after its attempts */
    atomic_uint_fast64_t cache_hits;
    atomic_uint_fast64_t prefetches;  /* fetches a new table's URLs started unasked */
} sc_acme_stats_t;

typedef struct sc_acme sc_acme_t;

typedef struct sc_acme_cfg {
    const char *socket_path;
    unsigned budget_ms, cache_s;
    const char *ca_file;   /* NULL: the system's CA store */
} sc_acme_cfg_t;

/* Binds the socket (a stale one from a previous run is replaced) and starts
 * the thread. */
IBP_MUST_CHECK
bool sc_acme_start(sc_state_t *s, const sc_acme_cfg_t *cfg, sc_acme_t **out, ibp_err_t *err);
/* Stops the thread, closes the socket and removes it. NULL is fine. */
void sc_acme_stop(sc_acme_t *a);
const sc_acme_stats_t *sc_acme_stats(const sc_acme_t *a);

/* The socket path for a config: Routing.AcmeSocket, else acme.sock beside
 * the table. */
void sc_acme_socket_path(const char *acme_socket, const char *table_path, char *out, size_t cap);

/* Body -> value rules, for the unit test: Go's TrimSpace on ASCII, then
 * ibp_acme_value_from_body. Returns the value's length, 0 if unusable. */
size_t sc_acme_value(const char *body, size_t len, char *out, size_t cap);

#endif
