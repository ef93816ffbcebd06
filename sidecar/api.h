/* The sidecar's local HTTP API (BEHAVIOR §7): GET /status, /metrics and
 * /route. Loopback by default; any other address needs a bearer token. */
#ifndef IBPDNS_SIDECAR_API_H
#define IBPDNS_SIDECAR_API_H

#include <stdbool.h>

#include "ibp_err.h"
#include "state.h"

typedef struct sc_api sc_api_t;

/* token may be "" only when address is a loopback address. */
bool sc_api_start(sc_state_t *s, const char *address, const char *port, const char *token,
                  sc_api_t **out, ibp_err_t *err);
void sc_api_stop(sc_api_t *api);

/* Exposed for tests and for logging at exit. */
char *sc_status_json(sc_state_t *s);
char *sc_metrics_text(sc_state_t *s);

#endif
