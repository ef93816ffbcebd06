#include "ibp_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <unistd.h>

static const char *const level_names[] = {"Fatal", "Error", "Warn", "Info", "Debug"};

ibp_log_level_t ibp_log_level_parse(const char *s)
{
    if (!s)
        return IBP_LOG_INFO;
    for (int i = IBP_LOG_FATAL; i <= IBP_LOG_DEBUG; i++)
        if (!strcasecmp(s, level_names[i]))
            return (ibp_log_level_t)i;
    if (!strcasecmp(s, "warning"))
        return IBP_LOG_WARN;
    return IBP_LOG_INFO;
}

void ibp_log(const ibp_log_t *log, ibp_log_level_t level, const char *fmt, ...)
{
    if (!log || level > log->level)
        return;
    /* One write per line so lines from concurrent processes never interleave. */
    char line[2048];
    int n = snprintf(line, sizeof line, "%s %s: ", log->ident, level_names[level]);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(log->fd, line, len);
    (void)w;
}
