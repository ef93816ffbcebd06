#include "ibp_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bool ibp_err_set(ibp_err_t *err, const char *fmt, ...)
{
    if (!err)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return false;
}

bool ibp_err_prefix(ibp_err_t *err, const char *fmt, ...)
{
    if (!err)
        return false;
    char prefix[IBP_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* "prefix: old message", cut at the buffer's end (a long path must not
     * push the actual fault out of sight entirely, but it may). */
    char old[IBP_ERR_MAX];
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    size_t cap = sizeof err->msg - 1, n = 0;
    const char *parts[] = {prefix, ": ", old};
    for (size_t i = 0; i < 3 && n < cap; i++) {
        size_t len = strnlen(parts[i], cap - n);
        memcpy(err->msg + n, parts[i], len);
        n += len;
    }
    err->msg[n] = '\0';
    return false;
}
