/* Error reporting for lib/: every fallible function takes an ibp_err_t and
 * returns false on failure; the caller decides whether and how to log. */
#ifndef IBP_ERR_H
#define IBP_ERR_H

#include <stdbool.h>

#define IBP_ERR_MAX 512

/* On every fallible function: a result that is not looked at is a fault
 * that nobody hears of. */
#define IBP_MUST_CHECK __attribute__((warn_unused_result))

typedef struct ibp_err {
    char msg[IBP_ERR_MAX];
} ibp_err_t;

/* Formats into err (if non-NULL) and returns false, so callers can write
 * `return ibp_err_set(err, ...);`. */
__attribute__((format(printf, 2, 3)))
bool ibp_err_set(ibp_err_t *err, const char *fmt, ...);

/* Prepends "prefix: " to an existing message (e.g. a file name). */
__attribute__((format(printf, 2, 3)))
bool ibp_err_prefix(ibp_err_t *err, const char *fmt, ...);

#endif
