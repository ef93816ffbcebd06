/* constpipe: a constant-answer PowerDNS pipe coprocess, the upper bound of
 * any pipe backend in the benchmarks (bench/run builds it with cc -O2).
 *
 * Same I/O discipline as ibpdns-pipe: inherited descriptors closed first, a
 * blocking read() into a 64 KiB buffer, every complete line answered, and the
 * answers to one read() sent with one write() (PowerDNS sends one line at a
 * time, so that is one write per answer). No table, no geo lookup:
 *   HELO            -> OK line
 *   Q <zone> SOA    -> the zone's SOA (for each --zones apex), else END
 *   Q <name> ANY|A  -> one fixed A record with a fixed ECS scope (for each
 *                      --names name), else END
 *   anything else   -> END (AXFR) or FAIL
 * Names match case-insensitively, as PowerDNS passes the client's case.
 *
 * usage: constpipe --zones=Z1,Z2,.. --names=N1,N2,.. [--addr=192.0.2.1]
 *                  [--scope=24] [--ttl=30] [--record=DIR] [--apex-soa] [--apex-ns=NS,..]
 * --apex-soa (diagnostic): ANY at a zone apex also returns the SOA, as
 * ibpdns-pipe's answers do, in BEHAVIOR §2's form with its default timers
 * (mname dns-01.<zone>., a 10-digit serial): it shows what that line costs
 * PowerDNS. The SOA walk keeps the short SOA either way.
 * --apex-ns=NS1,NS2,.. (the baseline for a zone that is served whole): ANY
 * at a name that is both a --names host and a --zones apex also returns one
 * NS line per name first, as ibpdns-pipe answers a host that is its own
 * apex: it shows what those lines cost PowerDNS, which parses them for
 * every lookup there (it asks ANY for every question type).
 * --record=DIR appends every line received to DIR/rec-PID.txt (one write per
 * read; only to record a PowerDNS request stream, never while measuring). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <unistd.h>

#define IN_CAP (64 * 1024)
#define OUT_CAP (64 * 1024)
#define MAX_NAMES 64
#define MAX_FIELDS 10

typedef struct {
    const char *s;
    size_t len;
} str_t;

static str_t zones[MAX_NAMES], names[MAX_NAMES];
static char soa_tail[MAX_NAMES][512];   /* "\tIN\tSOA\t3600\t<id>\t<mname> <rname> ...\n" */
static size_t soa_tail_len[MAX_NAMES];
static char any_soa_tail[MAX_NAMES][512];   /* --apex-soa: the same in BEHAVIOR §2's form */
static size_t any_soa_tail_len[MAX_NAMES];
static size_t n_zones, n_names;
static char a_tail[128];                /* "\tIN\tA\t<ttl>\t" */
static size_t a_tail_len;
static char addr_line[64];              /* "<addr>\n" */
static size_t addr_line_len;
static char scope_s[8];
static size_t scope_len;
static int abi;
static int record_fd = -1;
static bool apex_soa;   /* diagnostic: the apex SOA in ANY answers too, as ibpdns-pipe does */
static str_t apex_ns[MAX_NAMES];   /* --apex-ns: the NS names of a host apex */
static size_t n_apex_ns;

static char out[OUT_CAP + 4096];
static size_t out_len;

static void flush_out(void)
{
    const char *p = out;
    size_t left = out_len;
    while (left) {
        ssize_t n = write(STDOUT_FILENO, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            exit(0);   /* PowerDNS closed the pipe */
        p += n;
        left -= (size_t)n;
    }
    out_len = 0;
}

static inline void put(const char *s, size_t len)
{
    if (out_len + len > sizeof out) {
        flush_out();
        if (len > sizeof out)
            len = sizeof out;   /* only a hostile name this long: truncated */
    }
    memcpy(out + out_len, s, len);
    out_len += len;
}

static int find(const str_t *set, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (set[i].len == len && !strncasecmp(set[i].s, s, len))
            return (int)i;
    return -1;
}

/* One request line (without '\n'). Kept out of line so callgrind can count
 * inside it (--toggle-collect=handle_line), like pipe_handle_line. */
__attribute__((noinline)) void handle_line(const char *line, size_t len);

void handle_line(const char *line, size_t len)
{
    str_t f[MAX_FIELDS];
    size_t n = 0;
    const char *p = line, *end = line + len;
    if (len && end[-1] == '\r')
        end--;
    while (n < MAX_FIELDS) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        const char *stop = tab ? tab : end;
        f[n++] = (str_t){p, (size_t)(stop - p)};
        if (!tab)
            break;
        p = tab + 1;
    }
    if (f[0].len == 1 && f[0].s[0] == 'Q' && n >= 6 && abi) {
        const str_t *qn = &f[1], *qt = &f[3], *id = &f[4];
        if (qt->len == 3 && !strncasecmp(qt->s, "SOA", 3)) {
            int z = find(zones, n_zones, qn->s, qn->len);
            if (z >= 0) {
                put(abi >= 3 ? "DATA\t0\t1\t" : "DATA\t", abi >= 3 ? 9 : 5);
                put(qn->s, qn->len);
                put(soa_tail[z], soa_tail_len[z]);
            }
        } else if ((qt->len == 3 && !strncasecmp(qt->s, "ANY", 3)) ||
                   (qt->len == 1 && (qt->s[0] == 'A' || qt->s[0] == 'a'))) {
            if (find(names, n_names, qn->s, qn->len) >= 0) {
                int z = apex_soa && qt->len == 3 ? find(zones, n_zones, qn->s, qn->len) : -1;
                if (z >= 0) {
                    put(abi >= 3 ? "DATA\t0\t1\t" : "DATA\t", abi >= 3 ? 9 : 5);
                    put(qn->s, qn->len);
                    put(any_soa_tail[z], any_soa_tail_len[z]);
                }
                if (n_apex_ns && qt->len == 3 && find(zones, n_zones, qn->s, qn->len) >= 0)
                    for (size_t k = 0; k < n_apex_ns; k++) {
                        put(abi >= 3 ? "DATA\t0\t1\t" : "DATA\t", abi >= 3 ? 9 : 5);
                        put(qn->s, qn->len);
                        put("\tIN\tNS\t3600\t", 12);
                        put(id->s, id->len);
                        put("\t", 1);
                        put(apex_ns[k].s, apex_ns[k].len);
                        put(".\n", 2);
                    }
                if (abi >= 3) {
                    put("DATA\t", 5);
                    put(scope_s, scope_len);
                    put("\t1\t", 3);
                } else {
                    put("DATA\t", 5);
                }
                put(qn->s, qn->len);
                put(a_tail, a_tail_len);
                put(id->s, id->len);
                put("\t", 1);
                put(addr_line, addr_line_len);
            }
        }
        put("END\n", 4);
    } else if (f[0].len == 4 && !memcmp(f[0].s, "HELO", 4) && n == 2) {
        abi = atoi(f[1].s);
        if (abi < 1 || abi > 5) {
            abi = 0;
            put("FAIL\n", 5);
        } else {
            put("OK\tconstpipe\n", 13);
        }
    } else if (f[0].len == 4 && !memcmp(f[0].s, "AXFR", 4)) {
        put("END\n", 4);
    } else {
        put("FAIL\n", 5);
    }
}

static size_t split_list(char *arg, str_t *set)
{
    size_t n = 0;
    for (char *tok = strtok(arg, ","); tok && n < MAX_NAMES; tok = strtok(NULL, ","))
        set[n++] = (str_t){tok, strlen(tok)};
    return n;
}

static void record(const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(record_fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

int main(int argc, char **argv)
{
    /* Siblings inherit each other's pipe ends (PDNS-PIPE §1). */
    if (close_range(3, ~0U, 0) != 0)
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        return 0;
    signal(SIGPIPE, SIG_IGN);

    const char *addr = "192.0.2.1", *record_dir = NULL;
    int scope = 24, ttl = 30;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!strncmp(a, "--zones=", 8))
            n_zones = split_list(a + 8, zones);
        else if (!strncmp(a, "--names=", 8))
            n_names = split_list(a + 8, names);
        else if (!strncmp(a, "--addr=", 7))
            addr = a + 7;
        else if (!strncmp(a, "--scope=", 8))
            scope = atoi(a + 8);
        else if (!strncmp(a, "--ttl=", 6))
            ttl = atoi(a + 6);
        else if (!strncmp(a, "--record=", 9))
            record_dir = a + 9;
        else if (!strcmp(a, "--apex-soa"))
            apex_soa = true;
        else if (!strncmp(a, "--apex-ns=", 10))
            n_apex_ns = split_list(a + 10, apex_ns);
        else {
            fprintf(stderr, "usage: constpipe --zones=Z,.. --names=N,.. [--addr=IP] "
                    "[--scope=N] [--ttl=N] [--record=DIR] [--apex-soa] [--apex-ns=NS,..]\n");
            return 2;
        }
    }
    for (size_t z = 0; z < n_zones; z++) {
        int k = snprintf(soa_tail[z], sizeof soa_tail[z],
                         "\tIN\tSOA\t3600\t%zu\tns1.%.*s hostmaster.%.*s 1 7200 1800 259200 300\n",
                         z + 1, (int)zones[z].len, zones[z].s, (int)zones[z].len, zones[z].s);
        soa_tail_len[z] = (size_t)k;
        k = snprintf(any_soa_tail[z], sizeof any_soa_tail[z],
                     "\tIN\tSOA\t3600\t%zu\tdns-01.%.*s. hostmaster.%.*s. 1700000000 3600 600 1209600 3600\n",
                     z + 1, (int)zones[z].len, zones[z].s, (int)zones[z].len, zones[z].s);
        any_soa_tail_len[z] = (size_t)k;
    }
    a_tail_len = (size_t)snprintf(a_tail, sizeof a_tail, "\tIN\tA\t%d\t", ttl);
    addr_line_len = (size_t)snprintf(addr_line, sizeof addr_line, "%s\n", addr);
    scope_len = (size_t)snprintf(scope_s, sizeof scope_s, "%d", scope);
    if (record_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/rec-%d.txt", record_dir, (int)getpid());
        record_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }

    static char buf[IN_CAP];
    size_t have = 0;
    for (;;) {
        ssize_t r = read(STDIN_FILENO, buf + have, IN_CAP - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 0;   /* EOF: PowerDNS is done with us */
        if (record_fd >= 0)
            record(buf + have, (size_t)r);
        have += (size_t)r;
        size_t start = 0;
        char *nl;
        while ((nl = memchr(buf + start, '\n', have - start)) != NULL) {
            size_t len = (size_t)(nl - (buf + start));
            handle_line(buf + start, len);
            start += len + 1;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
        if (have == IN_CAP)   /* a line longer than any request: drop it */
            have = 0;
        if (out_len)
            flush_out();
    }
}
