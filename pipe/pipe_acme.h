/* The coprocess's side of the ACME exchange (lib/base/ibp_acme_wire.h): one
 * question to the sidecar's local socket with a deadline. Only lookups of
 * names that carry ACME records come here; everything else stays free of
 * inter-process calls (BEHAVIOR §5). */
#ifndef IBPDNS_PIPE_ACME_H
#define IBPDNS_PIPE_ACME_H

#include <stddef.h>

#include "ibp_acme_wire.h"
#include "ibp_log.h"

typedef struct pipe_acme {
    const char *socket_path;
    ibp_log_t *log;
    /* After a question that got no reply in time, none is asked until then:
     * a hung sidecar costs a coprocess one budget, not one per lookup (a DNS
     * query makes PowerDNS look a name up more than once). */
    long long quiet_until_ms;
    char reply[IBP_ACME_REPLY_MAX];
} pipe_acme_t;

/* Asks for name's values and waits at most budget_ms in all (connect, send,
 * reply). Returns the reply's length with *reply pointing into a, or 0 when
 * none came in time (sidecar down, busy or slow: the caller answers NODATA). */
size_t pipe_acme_ask(void *a, const char *name, size_t len, unsigned budget_ms,
                     const char **reply);

#endif
