/* ibpdns-pipe: the PowerDNS pipe coprocess. PowerDNS runs many of these and
 * kills them at will, so the process keeps no state worth saving: it loads
 * the routing table, answers one line at a time, and checks every few
 * hundred milliseconds whether a new table has been put in place. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ibp_file.h"
#include "ibp_log.h"
#include "ibp_table.h"
#include "pipe_acme.h"
#include "pipe_proto.h"

#define DEFAULT_TABLE "/var/lib/ibpdns/routing.tbl"
#define IN_CAP (64 * 1024)
#define MALFORMED_LOG_FIRST 10

typedef struct watcher {
    const char *path;
    ibp_table_t table;
    bool loaded;
    struct stat tried;     /* identity of the file last read, good or bad */
    bool tried_valid;
    bool retry_tried;      /* the last file was refused while it may still have been written */
    struct stat loaded_id; /* identity of the file behind `table` */
    int loaded_fd;         /* held open so that its inode number is not reused */
    bool missing_logged;
    struct timespec next_check;
    unsigned interval_ms;
    pid_t parent;
    const ibp_log_t *log;
    /* Mapped (the default), the table is the file's page cache, shared by
     * every coprocess. A private copy costs each coprocess the table's size
     * but keeps answering from the old table whatever is done to its file. */
    bool private_copy;
    pipe_usage_t *usage;   /* its counts name this table's indices */
} watcher_t;

/* ---- SIGBUS from a truncated table -------------------------------------
 * Tables are mapped from their file (ibp_table_map_fd), shared with every
 * other coprocess. If the file is truncated under the mapping (an operator's
 * `cp` or `truncate`), reading it raises SIGBUS: the handler maps zero pages
 * over the whole table, so the read in progress finishes (a walk over zeros
 * answers nothing) and the next request finds the table dropped. Two slots:
 * the table in use and one being validated. */

typedef struct guard_slot {
    void *volatile base;
    volatile size_t len;
    volatile sig_atomic_t faulted;
} guard_slot_t;

static guard_slot_t guard[2];

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    for (int i = 0; i < 2; i++) {
        char *b = guard[i].base;
        if (b && (char *)si->si_addr >= b && (char *)si->si_addr < b + guard[i].len &&
            mmap(b, guard[i].len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
                MAP_FAILED) {
            guard[i].faulted = 1;
            return;
        }
    }
    signal(sig, SIG_DFL);   /* not ours: the fault happens again, fatally */
}

static void guard_install(void)
{
    struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

static void guard_set(int slot, const ibp_table_t *t)
{
    guard[slot].base = NULL;
    guard[slot].len = t ? t->size : 0;
    guard[slot].faulted = 0;
    guard[slot].base = t ? (void *)t->base : NULL;
}

/* A file modified this recently may be mid-write (cp, a slow writer): if it
 * is refused, it is read again at the next check even if it looks the same. */
#define FRESH_WRITE_S 2

static struct timespec coarse_now(void)
{
    struct timespec ts;   /* the coarse clock is read from the vDSO: no system call */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts;
}

static void watcher_drop(watcher_t *w, pipe_state_t *st)
{
    guard_set(0, NULL);
    pipe_usage_table_changed(w->usage);
    if (w->loaded)
        ibp_table_close(&w->table);
    w->loaded = false;
    st->table = NULL;
}

static bool recently_written(const struct stat *s)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return now.tv_sec - s->st_mtim.tv_sec <= FRESH_WRITE_S;
}

static void watcher_adopt(watcher_t *w, pipe_state_t *st, const ibp_table_t *fresh, int fd,
                          const struct stat *id)
{
    watcher_drop(w, st);
    if (w->loaded_fd >= 0)
        close(w->loaded_fd);
    w->table = *fresh;
    w->loaded = true;
    w->loaded_fd = fd;
    w->loaded_id = *id;
    st->table = &w->table;
    guard_set(0, w->table.shared ? &w->table : NULL);
    ibp_log(w->log, IBP_LOG_INFO, "table generation %llu loaded from %s",
            (unsigned long long)fresh->h->generation, w->path);
}

/* Validation reads every byte: a truncation meanwhile faults in slot 1,
 * which covers the mapping before anything reads it, and refuses the file. */
static bool map_guarded(int fd, const char *path, const ibp_table_t *trusted, ibp_table_t *t,
                        ibp_err_t *err)
{
    const uint8_t *map;
    size_t len = 0;
    if (!ibp_table_map_file(fd, path, &map, &len, err))
        return false;
    guard[1].len = len;
    guard[1].faulted = 0;
    guard[1].base = (void *)map;
    bool ok = ibp_table_attach_shared(map, len, trusted, t, err) ||
              ibp_err_prefix(err, "%s", path);
    guard[1].base = NULL;
    if (ok && guard[1].faulted) {
        ibp_table_close(t);
        ok = ibp_err_set(err, "%s: truncated while being read", path);
    }
    if (!ok) {
        munmap((void *)map, len);
        return false;
    }
    t->mapped = true;   /* ibp_table_close unmaps it */
    return true;
}

static void watcher_try(watcher_t *w, pipe_state_t *st, const struct stat *s)
{
    /* The loaded table maps its file: a rewrite in place changes answers
     * (within bounds) until it is replaced, which the operator should know. */
    bool new_file = !w->tried_valid || !ibp_same_file(s, &w->tried);
    if (new_file && w->loaded && s->st_ino == w->loaded_id.st_ino &&
        s->st_dev == w->loaded_id.st_dev)
        ibp_log(w->log, IBP_LOG_WARN, "%s was rewritten in place; tables should be "
                "replaced by rename", w->path);
    w->tried = *s;
    w->tried_valid = true;
    ibp_table_t fresh;
    ibp_err_t err = {{0}};
    struct stat id;
    int fd = open(w->path, O_RDONLY | O_CLOEXEC);
    const ibp_table_t *trusted = w->loaded ? &w->table : NULL;
    bool ok = fd >= 0 ? fstat(fd, &id) == 0 &&
                            (w->private_copy ? ibp_table_read_fd(fd, w->path, &fresh, &err)
                                             : map_guarded(fd, w->path, trusted, &fresh, &err))
                      : ibp_err_set(&err, "%s: %s", w->path, strerror(errno));
    if (ok) {
        w->retry_tried = false;
        watcher_adopt(w, st, &fresh, fd, &id);
        return;
    }
    if (fd >= 0)
        close(fd);
    bool again = recently_written(s);
    if (new_file)   /* once per file, however often a fresh one is read again */
        ibp_log(w->log, IBP_LOG_ERROR, "new table rejected, %s: %s%s", w->loaded
                ? "keeping the previous one" : "no table loaded", err.msg,
                again ? " (still being written? reading it again)" : "");
    w->retry_tried = again;
}

static void watcher_check(watcher_t *w, pipe_state_t *st, bool force)
{
    struct timespec now = coarse_now();
    if (!force && (now.tv_sec < w->next_check.tv_sec ||
                   (now.tv_sec == w->next_check.tv_sec && now.tv_nsec < w->next_check.tv_nsec)))
        return;
    long ns = now.tv_nsec + (long)(w->interval_ms % 1000) * 1000000L;
    w->next_check.tv_sec = now.tv_sec + w->interval_ms / 1000 + ns / 1000000000L;
    w->next_check.tv_nsec = ns % 1000000000L;
    if (getppid() != w->parent)
        exit(0);   /* PowerDNS is gone and nobody will read our answers */
    struct stat s;
    if (stat(w->path, &s) != 0) {
        if (!w->missing_logged)
            ibp_log(w->log, w->loaded ? IBP_LOG_WARN : IBP_LOG_INFO, "%s: %s%s", w->path,
                    strerror(errno), w->loaded ? "; keeping the loaded table" : "");
        w->missing_logged = true;
        return;
    }
    w->missing_logged = false;
    if (!w->tried_valid || !ibp_same_file(&s, &w->tried) || w->retry_tried)
        watcher_try(w, st, &s);
}

static bool write_out(pipe_out_t *out, void *ctx)
{
    if (!ibp_write_all(STDOUT_FILENO, out->buf, out->len, -1))
        return false;
    out->len = 0;
    if (ctx)
        pipe_usage_commit(ctx);   /* the answers are PowerDNS's now: count them */
    return true;
}

static void flush_or_exit(pipe_out_t *out)
{
    if (out->failed || (out->len && !write_out(out, out->flush_ctx)))
        exit(0);   /* PowerDNS closed the pipe */
}

/* A request line carries the client's address and ECS prefix: its bytes
 * reach the log only at Debug (no client address is stored above it). */
static void note_malformed(const ibp_log_t *log, const pipe_state_t *st, const char *line,
                           size_t len)
{
    uint64_t n = st->stats.malformed;
    if (n > MALFORMED_LOG_FIRST && n % 1000 != 0)
        return;
    static const char *const tags[] = {"Q", "HELO", "AXFR", "CMD"};
    const char *kind = "unknown";
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        size_t tl = strlen(tags[i]);
        if (len >= tl && !memcmp(line, tags[i], tl) && (len == tl || line[tl] == '\t'))
            kind = tags[i];
    }
    char shown[121];   /* hostile bytes must not reach the log as they are */
    size_t k = len < sizeof shown - 1 ? len : sizeof shown - 1;
    for (size_t i = 0; i < k; i++)
        shown[i] = (line[i] >= 0x20 && line[i] < 0x7f) || line[i] == '\t' ? line[i] : '?';
    shown[k] = '\0';
    ibp_log(log, IBP_LOG_WARN, "malformed %s request #%llu (%zu bytes; its text at Debug level)",
            kind, (unsigned long long)n, len);
    ibp_log(log, IBP_LOG_DEBUG, "malformed request #%llu: %s", (unsigned long long)n, shown);
}

typedef struct reader {
    char buf[IN_CAP];
    size_t have;
    bool discarding;       /* inside a line longer than buf */
    char head[8];          /* the start of that line: its answer depends on its kind */
    size_t head_len;
} reader_t;

static void handle_lines(reader_t *rd, pipe_state_t *st, pipe_out_t *out, watcher_t *w)
{
    size_t start = 0;
    char *nl;
    while ((nl = memchr(rd->buf + start, '\n', rd->have - start)) != NULL) {
        size_t len = (size_t)(nl - (rd->buf + start));
        if (rd->discarding) {
            pipe_answer_overlong(st, rd->head, rd->head_len, out);
            rd->discarding = false;
            note_malformed(w->log, st, "(overlong line)", 15);
        } else {
            if (pipe_handle_line(st, rd->buf + start, len, out) != PIPE_OK)
                note_malformed(w->log, st, rd->buf + start, len);
        }
        start += len + 1;
    }
    memmove(rd->buf, rd->buf + start, rd->have - start);
    rd->have -= start;
    if (rd->have == IN_CAP) {   /* a line longer than any request: drop it, answer at its end */
        if (!rd->discarding) {
            rd->head_len = sizeof rd->head;
            memcpy(rd->head, rd->buf, rd->head_len);
        }
        rd->discarding = true;
        rd->have = 0;
    }
}

static void serve(pipe_state_t *st, watcher_t *w)
{
    static reader_t rd;
    static pipe_out_t out = {.flush = write_out};
    out.flush_ctx = st->usage;
    for (;;) {
        ssize_t r = read(STDIN_FILENO, rd.buf + rd.have, IN_CAP - rd.have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return;   /* EOF: PowerDNS is done with us */
        rd.have += (size_t)r;
        /* Once per read: PowerDNS sends one request per read, a replayed
         * stream many; either way the swap falls between two requests. */
        watcher_check(w, st, false);
        if (st->usage)
            pipe_usage_tick(st->usage);   /* the moment of these answers, for their date */
        handle_lines(&rd, st, &out, w);
        flush_or_exit(&out);
        if (guard[0].faulted) {
            ibp_log(w->log, IBP_LOG_ERROR, "%s was truncated under the loaded table: dropped "
                    "it; answers wait for a table that validates", w->path);
            watcher_drop(w, st);
            w->tried_valid = false;   /* read whatever is there again */
            watcher_check(w, st, true);
        }
    }
}

/* Siblings forked at the same moment inherit each other's pipe ends and
 * would keep each other alive after PowerDNS exits (PDNS-PIPE §1). */
static void close_inherited_fds(void)
{
    if (close_range(3, ~0U, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < (max > 0 ? max : 65536); fd++)
        close((int)fd);
}

/* --help asks for it (stdout, success); a mistake gets it on stderr. */
static int usage(FILE *to)
{
    fputs("usage: ibpdns-pipe [--table PATH] [--check-interval MS] [--log-level LEVEL]\n"
          "                   [--private-copy]   (a copy per process, immune to the file\n"
          "                                       being rewritten in place; default: mapped)\n"
          "                   [--usage-dir DIR]  (count usage into counter files there,\n"
          "                                       which ibpdns-sidecar harvests; default: off)\n"
          "                   [--acme-socket PATH] (the sidecar's ACME socket; default:\n"
          "                                       acme.sock beside the table; \"\" = none)\n"
          "                   [--clock-offset S] (tests: seconds added to the usage clock)\n"
          "       ibpdns-pipe --help | --version\n"
          "  PowerDNS: launch=pipe, pipe-command=/usr/sbin/ibpdns-pipe --table=PATH\n", to);
    return to == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    close_inherited_fds();
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        return 0;
    signal(SIGPIPE, SIG_IGN);
    guard_install();
    static const struct option longs[] = {
        {"table", required_argument, NULL, 't'}, {"check-interval", required_argument, NULL, 'i'},
        {"log-level", required_argument, NULL, 'l'}, {"private-copy", no_argument, NULL, 'p'},
        {"usage-dir", required_argument, NULL, 'u'},
        {"clock-offset", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'},
        {"acme-socket", required_argument, NULL, 'a'}, {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    ibp_log_t log = {.level = IBP_LOG_INFO, .ident = "ibpdns-pipe", .fd = STDERR_FILENO};
    static pipe_usage_t counting = {.file = {.fd = -1}};
    static pipe_acme_t acme;
    acme.log = &log;
    counting.log = &log;
    watcher_t w = {.path = DEFAULT_TABLE, .interval_ms = 250, .parent = parent, .log = &log,
                   .loaded_fd = -1, .usage = &counting};
    int ch;
    while ((ch = getopt_long(argc, argv, "t:i:l:pu:o:a:h", longs, NULL)) != -1) {
        char *end;
        if (ch == 't') {
            w.path = optarg;
        } else if (ch == 'i') {
            long ms = strtol(optarg, &end, 10);
            if (*end || ms < 10 || ms > 60000)
                return usage(stderr);
            w.interval_ms = (unsigned)ms;
        } else if (ch == 'l') {
            log.level = ibp_log_level_parse(optarg);
        } else if (ch == 'p') {
            w.private_copy = true;
        } else if (ch == 'u') {
            counting.dir = optarg;
        } else if (ch == 'a') {
            acme.socket_path = optarg;
        } else if (ch == 'o') {
            long long off = strtoll(optarg, &end, 10);
            if (*end || off < -(1LL << 40) || off > (1LL << 40))
                return usage(stderr);
            counting.clock_offset_s = off;
        } else if (ch == 'h') {
            return usage(stdout);
        } else if (ch == 'V') {
            return printf("ibpdns-pipe %s\n", IBPDNS_VERSION) < 0;
        } else {
            return usage(stderr);
        }
    }
    if (optind != argc)
        return usage(stderr);
    static char acme_default[4096];
    if (!acme.socket_path) {
        ibp_acme_default_socket(w.path, acme_default, sizeof acme_default);
        acme.socket_path = acme_default;
    }
    pipe_state_t st = {.table_path = w.path, .usage = counting.dir ? &counting : NULL,
                       .acme = pipe_acme_ask, .acme_ctx = &acme};
    watcher_check(&w, &st, true);
    serve(&st, &w);
    watcher_drop(&w, &st);
    pipe_usage_close(&counting);
    return 0;
}
