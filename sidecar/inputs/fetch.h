/* Fetching inputs: https://, http:// (libcurl, TLS verified) and file://
 * or plain paths, with a timeout, a size limit and conditional GET. */
#ifndef IBPDNS_SIDECAR_FETCH_H
#define IBPDNS_SIDECAR_FETCH_H

#include <stdbool.h>
#include <stddef.h>

#include "ibp_err.h"
#include "ibp_limits.h"

typedef struct sc_fetch_limits {
    long timeout_ms;       /* whole transfer, connect included */
    size_t max_bytes;      /* a larger body is an error, never truncated */
    const char *ca_file;   /* NULL: the system's CA store */
} sc_fetch_limits_t;

/* Conditional-GET state kept per URL between fetches (owned strings). */
typedef struct sc_fetch_cache {
    char *etag;
    char *last_modified;
} sc_fetch_cache_t;

typedef enum sc_fetch_status {
    SC_FETCH_OK = 0,           /* body holds new content */
    SC_FETCH_NOT_MODIFIED,     /* 304, or a file whose size and mtime did not change */
} sc_fetch_status_t;

typedef struct sc_fetch_result {
    sc_fetch_status_t status;
    long http_code;            /* 0 for files */
    char *body;                /* NUL-terminated (not counted in len) when OK */
    size_t len;
    char *results_source;      /* X-IBP-Results-Source response header, or NULL */
    char *last_modified;       /* Last-Modified response header, or NULL */
} sc_fetch_result_t;

/* Call once per process before any thread fetches (curl_global_init). */
bool sc_fetch_global_init(ibp_err_t *err);
void sc_fetch_global_cleanup(void);

/* GET url (relative paths against base_dir). Non-200 (other than 304),
 * timeouts, TLS failures, oversized bodies are errors naming the URL and the
 * fault. user/pass (may be NULL) add HTTP Basic auth; they never appear in
 * errors. cache may be NULL (no conditional GET). */
bool sc_fetch(const char *url, const char *base_dir, const sc_fetch_limits_t *lim,
              sc_fetch_cache_t *cache, const char *user, const char *pass,
              sc_fetch_result_t *out, ibp_err_t *err);

/* HEAD url: the Last-Modified header (malloc'd; NULL if absent). */
bool sc_fetch_last_modified(const char *url, const sc_fetch_limits_t *lim, const char *user,
                            const char *pass, char **last_modified, ibp_err_t *err);

/* GET url into a new file at path (created 0644, fsynced), for large bodies. */
bool sc_fetch_to_file(const char *url, const sc_fetch_limits_t *lim, const char *user,
                      const char *pass, const char *path, char **last_modified, ibp_err_t *err);

void sc_fetch_result_free(sc_fetch_result_t *r);
void sc_fetch_cache_free(sc_fetch_cache_t *c);

/* Additions. A zero timeout_ms or max_bytes in the limits means these. */
#define SC_FETCH_DEFAULT_TIMEOUT_MS (IBP_FETCH_TIMEOUT_S_DEFAULT * 1000L)
#define SC_FETCH_DEFAULT_MAX_BYTES ((size_t)64 << 20)
#define SC_FETCH_MAX_REDIRECTS 5

/* GET url (http/https only, like sc_fetch_last_modified and
 * sc_fetch_to_file) streaming the body into an open fd the caller owns, e.g.
 * a mkstemp() temp file; no fsync. On failure the fd holds a partial body. */
bool sc_fetch_to_fd(const char *url, const sc_fetch_limits_t *lim, const char *user,
                    const char *pass, int fd, char **last_modified, ibp_err_t *err);

/* url as it may be shown in logs and errors: no "user:pass@", and the values
 * of secret-looking query parameters (key, token, secret, pass, auth, sig)
 * replaced by "***". Always NUL-terminates out (truncating). */
void sc_fetch_redact_url(const char *url, char *out, size_t cap);

#endif
