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
    char old[IBP_ERR_MAX];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return false;
}
