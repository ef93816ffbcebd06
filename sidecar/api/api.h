/* The sidecar's local HTTP API (BEHAVIOR §7): GET /status, /metrics,
 * /route, /usage and /events, GET or POST /process. Loopback by default; any other address needs a bearer token. */
#ifndef IBPDNS_SIDECAR_API_H
#define IBPDNS_SIDECAR_API_H

#include <stdbool.h>
#include <stddef.h>

#include "ibp_err.h"
#include "ibp_limits.h"
#include "state.h"

typedef struct sc_api sc_api_t;

/* token may be "" only when address is a loopback address. */
bool sc_api_start(sc_state_t *s, const char *address, const char *port, const char *token,
                  sc_api_t **out, ibp_err_t *err);
void sc_api_stop(sc_api_t *api);

/* Exposed for tests and for logging at exit. NULL when out of memory. */
char *sc_status_json(sc_state_t *s);
char *sc_metrics_text(sc_state_t *s);

/* ---- one request, without a socket (the HTTP server and the fuzzer) ---- */

/* The first query argument named key: true with its decoded value, which
 * is not NUL-terminated and may hold NUL bytes ("?key" without '=' gives
 * NULL and 0). false when there is no such argument. */
typedef bool (*sc_api_arg_fn)(void *ctx, const char *key, const char **value, size_t *len);

typedef struct sc_api_request {
    const char *method;        /* NUL-terminated, e.g. "GET" */
    const char *path;          /* decoded path, path_len bytes (may hold NULs) */
    size_t path_len;
    sc_api_arg_fn arg;         /* query arguments */
    void *arg_ctx;
    const char *auth;          /* the Authorization header, or NULL */
    size_t auth_len;
    bool has_body;             /* a body was announced (no endpoint takes one) */
} sc_api_request_t;

typedef struct sc_api_response {
    unsigned status;           /* always 200..599 */
    char *body;                /* NUL-terminated, len bytes, never NULL */
    size_t len;
    const char *content_type;  /* a string constant */
    bool body_static;          /* the last-resort error body: not to be freed */
} sc_api_response_t;

/* Answers rq as the API would (token "" means none is required). Every
 * answer has a body; every application/json body is valid JSON, an error
 * being {"error": "..."}. */
void sc_api_handle(sc_state_t *s, const char *token, const sc_api_request_t *rq,
                   sc_api_response_t *out);
void sc_api_response_free(sc_api_response_t *r);

/* Bounds on /route's arguments (bytes, after %-decoding). */
#define SC_API_NAME_MAX (IBP_NAME_MAX + 1)   /* a DNS name plus the root dot */
#define SC_API_ADDR_MAX 64     /* an IPv6 address with a /128 takes 49 */
#define SC_API_FLUSH_WAIT_S 60 /* /process waits this long for its flush */
/* The HTTP server's threads, and how many of them may wait on the usage
 * store at once (a hung MariaDB holds a request for up to a minute). */
#define SC_API_THREADS 4
#define SC_API_STORE_REQUESTS_MAX (SC_API_THREADS - 1)
#define SC_API_USAGE_MAX_RECORDS 200000   /* /usage: one answer's records */
#define SC_API_EVENT_ARG_MAX 1024         /* /events: bytes of member or domain */
#define SC_API_OVERRIDES_SHOWN 1000       /* /status: overrides listed (all are counted) */
#define SC_API_PEERS_SHOWN 256            /* /status: cluster nodes listed */

#endif
