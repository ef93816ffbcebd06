/* The sidecar's input threads: one for the configs and MaxMind (slow, rare),
 * one for the monitor (fast, frequent), so that a hanging config server
 * never delays a health change. Each records faults per source and marks
 * what the builder has to redo. */
#ifndef IBPDNS_SIDECAR_WORKERS_H
#define IBPDNS_SIDECAR_WORKERS_H

#include "state.h"

/* One round each; the threads below loop over them. Exposed for start-up,
 * where the first round runs before the API and the builder start. */
void sc_refresh_config(sc_state_t *s);
void sc_refresh_inputs(sc_state_t *s, bool with_maxmind);
void sc_poll_monitor(sc_state_t *s);

void *sc_config_thread(void *state);
void *sc_monitor_thread(void *state);

/* The config model currently in force (a new reference), or NULL. */
sc_ref_t *sc_current_config(sc_state_t *s);

#endif
