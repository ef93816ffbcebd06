/* Builds routing tables in-process for unit tests, from the real IBP config
 * in shared/testdata and MaxMind's City test database. */
#ifndef IBPDNS_TEST_FIXTURE_H
#define IBPDNS_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>

#include "ibp_maps.h"
#include "ibp_table.h"

/* $IBP_SHARED/<rel>, in a static buffer. */
const char *fixture_shared(const char *rel);
/* That file, whole (malloc'd, NUL-terminated); aborts the test if unreadable. */
char *fixture_read_shared(const char *rel, size_t *len);

/* Compiles the real configs (or the given member/static JSON texts, when
 * non-NULL) with GeoIP2-City-Test.mmdb. Aborts the test on failure. */
void fixture_build(const char *members_json, const char *statics_json, uint8_t **table,
                   size_t *len);

/* The same with trie indexes for tries of index_min_nodes or more nodes
 * (0: the production threshold, which the test database never reaches). */
void fixture_build_indexed(const char *members_json, const char *statics_json,
                           uint32_t index_min_nodes, uint8_t **table, size_t *len);

/* The real configs with the node config's "Routing" object set to
 * routing_json (e.g. "{\"Ttl\": 5}"). */
void fixture_build_routing(const char *routing_json, uint8_t **table, size_t *len);

/* fixture_build, then validates the table into t (buf must outlive t). */
void fixture_attach(const char *members_json, const char *statics_json, uint8_t **table,
                    size_t *len, ibp_table_t *t);

/* What the table and pipe tests share: a compiled table, attached. A test's
 * state struct starts with it; fixture_table_new() is their cmocka setup,
 * with statics_json (or the real static records when NULL). */
typedef struct fixture_table {
    uint8_t *buf;
    size_t len;
    ibp_table_t t;
} fixture_table_t;

void *fixture_table_new(size_t state_size, const char *statics_json);
int fixture_table_free(void **state);

/* Repeated builds of the real configs from one set of geo classes, as the
 * sidecar makes them: with a health snapshot (NULL: everybody online), the
 * previous table to update from (or NULL), trie indexes on every trie, and
 * geo_trie to carry the geo trie even where a coarser one would do. */
typedef struct fixture_builder fixture_builder_t;
fixture_builder_t *fixture_builder_new(void);
void fixture_builder_build(fixture_builder_t *fb, const char *results_json,
                           const ibp_table_t *previous, bool geo_trie, uint8_t **table,
                           size_t *len, ibp_map_stats_t *stats);
void fixture_builder_free(fixture_builder_t *fb);

#endif
