/* The table in place, opened once per file for the API's readers: opening
 * validates the whole table (tenths of a second at network scale), which
 * a /status poll must not cost each time. Readers hold a reference while
 * they use it; a new file replaces it for later readers. */
#ifndef SC_TABLE_CACHE_H
#define SC_TABLE_CACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "ibp_err.h"
#include "ibp_table.h"

typedef struct sc_cached_table {
    ibp_table_t t;
    struct stat id;        /* the file it was read from */
    unsigned refs;         /* [cache lock] */
} sc_cached_table_t;

typedef struct sc_table_cache {
    pthread_mutex_t lock;
    sc_cached_table_t *cur;   /* [lock] */
} sc_table_cache_t;

void sc_table_cache_init(sc_table_cache_t *c);
void sc_table_cache_free(sc_table_cache_t *c);

/* The table at path, opened at most once per file; NULL (and err) when it
 * cannot be read. Give it back with sc_table_release. */
IBP_MUST_CHECK
sc_cached_table_t *sc_table_acquire(sc_table_cache_t *c, const char *path, ibp_err_t *err);
void sc_table_release(sc_table_cache_t *c, sc_cached_table_t *ct);

#endif
