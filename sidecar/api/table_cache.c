#include "table_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ibp_file.h"

void sc_table_cache_init(sc_table_cache_t *c)
{
    pthread_mutex_init(&c->lock, NULL);
    c->cur = NULL;
}

static void put(sc_cached_table_t *ct)
{
    if (ct && --ct->refs == 0) {
        ibp_table_close(&ct->t);
        free(ct);
    }
}

void sc_table_cache_free(sc_table_cache_t *c)
{
    put(c->cur);
    c->cur = NULL;
    pthread_mutex_destroy(&c->lock);
}

/* Opened by descriptor, so that the identity kept is that of the bytes read. */
static sc_cached_table_t *open_fresh(const char *path, ibp_err_t *err)
{
    sc_cached_table_t *ct = calloc(1, sizeof *ct);
    if (!ct) {
        ibp_err_set(err, "out of memory");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 || ibp_err_set(err, "%s: %s", path, strerror(errno));
    ok = ok && (fstat(fd, &ct->id) == 0 || ibp_err_set(err, "%s: %s", path, strerror(errno)));
    ok = ok && ibp_table_read_fd(fd, path, &ct->t, err);
    if (fd >= 0)
        close(fd);
    if (!ok) {
        free(ct);
        return NULL;
    }
    ct->refs = 1;   /* the cache's */
    return ct;
}

sc_cached_table_t *sc_table_acquire(sc_table_cache_t *c, const char *path, ibp_err_t *err)
{
    struct stat now;
    if (stat(path, &now) != 0) {
        ibp_err_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    pthread_mutex_lock(&c->lock);
    sc_cached_table_t *ct = c->cur;
    if (ct && ibp_same_file(&now, &ct->id)) {
        ct->refs++;
        pthread_mutex_unlock(&c->lock);
        return ct;
    }
    pthread_mutex_unlock(&c->lock);
    /* Outside the lock: readers of the old table go on meanwhile. Two
     * readers may both open a new file; the later one wins, both are right. */
    sc_cached_table_t *fresh = open_fresh(path, err);
    if (!fresh)
        return NULL;
    pthread_mutex_lock(&c->lock);
    put(c->cur);
    c->cur = fresh;
    fresh->refs++;   /* the caller's */
    pthread_mutex_unlock(&c->lock);
    return fresh;
}

void sc_table_release(sc_table_cache_t *c, sc_cached_table_t *ct)
{
    pthread_mutex_lock(&c->lock);
    put(ct);
    pthread_mutex_unlock(&c->lock);
}
