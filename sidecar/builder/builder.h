/* Turns the sidecar's inputs into published tables. It keeps the geo classes
 * of the last MaxMind walk, so that a health or config change that leaves
 * member locations, override countries and the database alone republishes
 * without walking the database again; and it publishes nothing when the
 * inputs that matter are the same as those of the table in place. */
#ifndef IBPDNS_SIDECAR_BUILDER_H
#define IBPDNS_SIDECAR_BUILDER_H

#include <stdbool.h>
#include <sys/stat.h>

#include "ibp_client_classes.h"
#include "ibp_mmdb.h"
#include "ibp_table.h"
#include "state.h"

/* What the table in place was built from, health aside: while the guard
 * (Routing.MaxShiftPercent) holds a table back, health changes are
 * published from these. */
typedef struct sc_accepted {
    sc_ref_t *ref[SC_SRC_STATIC + 1];
    uint64_t hi[SC_SRC_STATIC + 1], lo[SC_SRC_STATIC + 1], size[SC_SRC_STATIC + 1];
    char url[SC_SRC_STATIC + 1][4096];
    ibp_overrides_t overrides;
    char mmdb_path[4096];
    struct stat mmdb;
    uint64_t digest_hi, digest_lo;   /* of all that (inputs_digest without health) */
    bool have;
} sc_accepted_t;

/* The geo classes (and the override countries they split) of the table in
 * place, kept aside while a table built from new ones is weighed and until
 * it is published: held back, they come back (restore_geo). */
typedef struct sc_geo_saved {
    ibp_geo_classes_t geo;
    struct stat mmdb;
    uint64_t hi, lo, size;
    char detail[160];
    bool have;
    ibp_overrides_t split;
    bool have_split;
} sc_geo_saved_t;

typedef struct sc_builder {
    sc_state_t *s;
    ibp_geo_classes_t geo;
    bool have_geo;
    struct stat geo_mmdb;          /* identity of the database the classes came from */
    uint64_t mmdb_hi, mmdb_lo, mmdb_size;
    char mmdb_detail[160];
    ibp_overrides_t split;         /* countries the geo classes split (domain ""): those
                                      of every override seen, so that a NATS override
                                      for one of them needs no walk */
    /* Usage's client classes, from the City and (if beside it) the ASN
     * database: rebuilt only when one of those files changes. */
    ibp_client_classes_t clients;
    bool have_clients;
    struct stat clients_city, clients_asn;   /* identities they were built from */
    struct stat clients_built_from;  /* the City file of the classes in use (a failed
                                        rebuild keeps older ones) */
    bool clients_with_asn;
    uint64_t inputs_hi, inputs_lo; /* of the table in place */
    bool have_inputs;
    struct stat published;         /* identity of the file published last */
    uint64_t generation, build_time;
    uint64_t warnings_digest;      /* of the last warnings logged: log a change, not a repeat */
    /* A failed build is retried with back-off until the wanted table is in
     * place: a full disk or a read-only directory recovers by itself. A
     * table removed or replaced behind our back is published again. */
    unsigned retry_ms;             /* 0: the last build succeeded */
    char last_failure[IBP_ERR_MAX];/* "" after a success; logged when it changes */
    char cleaned_path[4096];       /* stale temporaries were removed beside it */
    /* The table published last, attached: the next build updates its maps
     * instead of computing them again (ibp_compile_in_t.previous). */
    uint8_t *last_buf;
    size_t last_cap;
    ibp_table_t last;
    /* The table before that, which nothing reads any more: the next table
     * is written into it (fresh memory at this size costs page faults). */
    uint8_t *spare_buf;
    size_t spare_cap;
    double phase_s[SC_PHASE_COUNT];   /* of the build under way */
    sc_accepted_t accepted;
    sc_geo_saved_t saved_geo;
    bool held;                     /* a table built from these inputs is held back: */
    uint64_t held_hi, held_lo;     /* (inputs_digest without health) */
    bool guard_bypass;             /* the next build publishes unweighed (see plan_guard) */
} sc_builder_t;

#define SC_RETRY_FIRST_MS 1000
#define SC_RETRY_MAX_MS 15000

void sc_builder_init(sc_builder_t *b, sc_state_t *s);
void sc_builder_free(sc_builder_t *b);

/* Builds and publishes if the inputs changed. Returns false on a failed
 * build (recorded in the state; the table in place stays). */
bool sc_builder_run_once(sc_builder_t *b);

void *sc_builder_thread(void *builder);

#endif
