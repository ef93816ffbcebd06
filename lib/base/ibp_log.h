/* Logging for the programs (the pipe, the sidecar, the CLI). lib/ itself
 * never logs: it returns errors. A logger is a value, not a global. */
#ifndef IBP_LOG_H
#define IBP_LOG_H

#include <stdbool.h>

typedef enum ibp_log_level {
    IBP_LOG_FATAL = 0, IBP_LOG_ERROR, IBP_LOG_WARN, IBP_LOG_INFO, IBP_LOG_DEBUG,
} ibp_log_level_t;

typedef struct ibp_log {
    /* Atomic: every thread reads it, a config reload sets it. */
    _Atomic ibp_log_level_t level;
    const char *ident;     /* prefix, e.g. "ibpdns-pipe" */
    int fd;                /* usually 2: journald reads stderr */
} ibp_log_t;

/* "debug", "info", ... case-insensitive; anything else => info (as IBP). */
ibp_log_level_t ibp_log_level_parse(const char *s);

__attribute__((format(printf, 3, 4)))
void ibp_log(const ibp_log_t *log, ibp_log_level_t level, const char *fmt, ...);

#endif
