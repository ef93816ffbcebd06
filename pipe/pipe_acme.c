#include "pipe_acme.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A connected, non-blocking socket, or -1. Connecting to a local socket does
 * not wait: it succeeds, or fails at once (no listener, backlog full). */
static int connect_sidecar(const pipe_acme_t *a)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t plen = strlen(a->socket_path);
    if (plen >= sizeof sa.sun_path)
        return -1;
    memcpy(sa.sun_path, a->socket_path, plen + 1);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        return fd;
    ibp_log(a->log, IBP_LOG_DEBUG, "ACME: cannot reach %s: %s", a->socket_path, strerror(errno));
    close(fd);
    return -1;
}

static size_t wait_reply(pipe_acme_t *a, int fd, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 0;
        ssize_t n = recv(fd, a->reply, sizeof a->reply, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        /* MSG_TRUNC reports a message longer than the buffer: refused. */
        return n > 0 && (size_t)n <= sizeof a->reply ? (size_t)n : 0;
    }
}

size_t pipe_acme_ask(void *ctx, const char *name, size_t len, unsigned budget_ms,
                     const char **reply)
{
    pipe_acme_t *a = ctx;
    long long now = now_ms(), deadline = now + budget_ms;
    char req[IBP_ACME_REQUEST_MAX];
    size_t req_len = ibp_acme_request_encode(name, len, req, sizeof req);
    if (!req_len || !a->socket_path[0] || now < a->quiet_until_ms)
        return 0;
    int fd = connect_sidecar(a);
    if (fd < 0)
        return 0;
    size_t got = 0;
    if (send(fd, req, req_len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)req_len)
        got = wait_reply(a, fd, deadline);
    close(fd);
    if (!got && now_ms() >= deadline) {
        a->quiet_until_ms = deadline + IBP_ACME_QUIET_MS;
        ibp_log(a->log, IBP_LOG_WARN, "ACME: no reply from %s within %u ms; not asking for %d ms",
                a->socket_path, budget_ms, IBP_ACME_QUIET_MS);
    }
    *reply = a->reply;
    return got;
}
