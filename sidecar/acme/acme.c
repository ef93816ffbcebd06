#include "acme.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ibp_acme_wire.h"
#include "table_cache.h"

#define MAX_ASKERS 128         /* coprocesses waiting at once; more are refused */
#define MAX_ENTRIES 256        /* URLs fetched or cached at once */
#define ATTEMPT_TIMEOUT_MS 5000L   /* IBP-NODE §6: 5 s per attempt */
#define MAX_REDIRS 10L         /* Go's default, as IBP */
/* A failed URL is not asked again within this: short, because a token put
 * in place just after a failed fetch (a prefetch, an ACME client's early
 * check) must be seen by the validation that follows. */
#define FAIL_CACHE_MS 250
#define REPLY_MARGIN_MS 20     /* the reply must reach the asker before its deadline */
#define TABLE_CHECK_MS 500     /* how often a new table's URLs are looked for */
#define PREFETCH_MAX (MAX_ENTRIES / 2)   /* per table: askers must still find room */
#define PREFETCH_PARALLEL 8    /* within their first budget: a slow one frees its slot then */
#define MAX_ORIGINS 64         /* servers remembered as slow at once */
#define ORIGIN_SLOW_MS 30000   /* how long one slow answer makes its server slow */
#define WAIT_FACTOR 4          /* a refetch is waited for this many times the last one's time */
#define WAIT_EXTRA_MS 100      /* plus this: TCP's delayed ACK alone varies a fetch by 40 ms */

typedef enum { E_FREE = 0, E_FETCHING, E_OK, E_FAILED } entry_state_t;

typedef struct entry {
    entry_state_t state;
    char *url;
    char name[IBP_NAME_MAX + 1];   /* for logs: the URL is never logged above Debug */
    long long started_ms, done_ms;
    unsigned attempts;
    /* How long the URL's last fetch took, -1 before the first: the next
     * one is waited for about that long and no longer, and not at all once
     * it outlasted the budget. A waiting coprocess holds up its PowerDNS
     * thread and every ordinary lookup queued behind it (bench/acme_load.py). */
    long long took_ms;
    bool prefetch;         /* started unasked, for a new table */
    CURL *easy;
    char body[IBP_ACME_BODY_MAX + 1];
    size_t body_len;
    bool too_long;
    char value[IBP_ACME_VALUE_MAX + 1];
    size_t value_len;
} entry_t;

/* A server (scheme://authority of the URLs) that lately kept an asker
 * waiting past its budget: its other URLs are waited for by nobody either
 * (a member's token server that hangs hangs for all its names), until one
 * of its fetches ends within the budget. */
typedef struct origin {
    char key[IBP_TXT_MAX + 1];
    long long slow_until_ms;   /* 0: free */
} origin_t;

typedef struct asker {
    int fd;                /* -1: free */
    long long deadline_ms;
    bool waits;            /* for a running fetch, until deadline_ms */
    unsigned entry[IBP_ACME_PER_NAME_MAX];
    size_t n;
} asker_t;

struct sc_acme {
    sc_state_t *s;
    sc_acme_cfg_t cfg;
    char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *ca_file;
    int listen_fd;
    CURLM *multi;
    pthread_t thread;
    atomic_bool stop;
    /* Below: the thread's own. */
    entry_t entries[MAX_ENTRIES];
    asker_t askers[MAX_ASKERS];
    origin_t origins[MAX_ORIGINS];
    char urls[IBP_ACME_PER_NAME_MAX][IBP_TXT_MAX + 1];   /* of the question in hand */
    uint64_t table_generation;   /* the last table whose URLs were prefetched */
    bool prefetch_pending;       /* that table may have URLs not fetched yet */
    unsigned prefetched;         /* of that table */
    unsigned budget_ms;          /* the table's, which the coprocesses keep */
    long long table_checked_ms;
    sc_acme_stats_t stats;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- values ---------------------------------------------------------------- */

static bool go_space(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

size_t sc_acme_value(const char *body, size_t len, char *out, size_t cap)
{
    while (len && go_space((unsigned char)body[0]))
        body++, len--;
    while (len && go_space((unsigned char)body[len - 1]))
        len--;
    return ibp_acme_value_from_body(body, len, out, cap);
}

void sc_acme_socket_path(const char *acme_socket, const char *table_path, char *out, size_t cap)
{
    if (acme_socket && acme_socket[0]) {
        snprintf(out, cap, "%s", acme_socket);
        return;
    }
    ibp_acme_default_socket(table_path, out, cap);
}

/* ---- servers ---------------------------------------------------------------- */

/* The length of url's scheme://authority. */
static size_t origin_len(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    return (size_t)(p - url) + strcspn(p, "/?#");
}

static origin_t *origin_find(sc_acme_t *a, const char *url)
{
    size_t len = origin_len(url);
    for (size_t i = 0; i < MAX_ORIGINS; i++)
        if (a->origins[i].slow_until_ms && strlen(a->origins[i].key) == len &&
            !memcmp(a->origins[i].key, url, len))
            return &a->origins[i];
    return NULL;
}

static bool origin_slow(sc_acme_t *a, const char *url, long long now)
{
    const origin_t *o = origin_find(a, url);
    return o && o->slow_until_ms > now;
}

/* Marks url's server slow, or (slow false) forgets that it was. */
static void origin_mark(sc_acme_t *a, const char *url, bool slow, long long now)
{
    origin_t *o = origin_find(a, url);
    if (!slow) {
        if (o)
            o->slow_until_ms = 0;
        return;
    }
    for (size_t i = 0; i < MAX_ORIGINS && !o; i++)
        if (a->origins[i].slow_until_ms <= now)
            o = &a->origins[i];
    if (!o)
        return;   /* 64 slow servers at once: the 65th is learnt per URL only */
    size_t len = origin_len(url);
    memcpy(o->key, url, len);
    o->key[len] = 0;
    o->slow_until_ms = now + ORIGIN_SLOW_MS;
}

/* ---- fetching ---------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    entry_t *e = ctx;
    size_t len = size * n;
    if (e->body_len + len > IBP_ACME_BODY_MAX) {
        e->too_long = true;
        return 0;   /* aborts the transfer */
    }
    memcpy(e->body + e->body_len, data, len);
    e->body_len += len;
    return len;
}

static bool start_attempt(sc_acme_t *a, entry_t *e)
{
    if (!e->easy && !(e->easy = curl_easy_init()))
        return false;
    CURL *h = e->easy;
    curl_easy_reset(h);
    e->body_len = 0;
    e->too_long = false;
    e->attempts++;
    curl_easy_setopt(h, CURLOPT_URL, e->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, MAX_REDIRS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ATTEMPT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, e);
    curl_easy_setopt(h, CURLOPT_PRIVATE, e);
    if (a->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, a->ca_file);
    return curl_multi_add_handle(a->multi, h) == CURLM_OK;
}

static void entry_done(sc_acme_t *a, entry_t *e, bool ok, const char *why)
{
    e->state = ok ? E_OK : E_FAILED;
    e->done_ms = now_ms();
    e->took_ms = e->done_ms - e->started_ms;
    if (e->took_ms < (long long)a->budget_ms - REPLY_MARGIN_MS)
        origin_mark(a, e->url, false, e->done_ms);
    if (ok) {
        atomic_fetch_add(&a->stats.fetches_ok, 1);
        ibp_log(&a->s->log, IBP_LOG_DEBUG, "ACME %s: %s gave %zu bytes in %lld ms", e->name,
                e->url, e->body_len, e->took_ms);
        return;
    }
    atomic_fetch_add(&a->stats.fetches_failed, 1);
    ibp_log(&a->s->log, IBP_LOG_WARN, "ACME %s: no value after %u attempts: %s", e->name,
            e->attempts, why);
    ibp_log(&a->s->log, IBP_LOG_DEBUG, "ACME %s: the URL that failed: %s", e->name, e->url);
}

/* One attempt ended: take the value, try again, or give up. */
static void attempt_ended(sc_acme_t *a, entry_t *e, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(e->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(a->multi, e->easy);
    char why[96];
    if (e->too_long) {
        snprintf(why, sizeof why, "body over %d bytes", IBP_ACME_BODY_MAX);
    } else if (rc != CURLE_OK) {
        snprintf(why, sizeof why, "%s", curl_easy_strerror(rc));
    } else if (status != 200) {
        snprintf(why, sizeof why, "HTTP status %ld", status);
    } else {
        e->value_len = sc_acme_value(e->body, e->body_len, e->value, sizeof e->value);
        if (e->value_len) {
            entry_done(a, e, true, NULL);
            return;
        }
        snprintf(why, sizeof why, "empty body");
    }
    if (e->attempts < IBP_ACME_ATTEMPTS && start_attempt(a, e))
        return;
    entry_done(a, e, false, why);
}

static void reap_transfers(sc_acme_t *a)
{
    int running = 0, left = 0;
    curl_multi_perform(a->multi, &running);
    CURLMsg *m;
    while ((m = curl_multi_info_read(a->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv)
            attempt_ended(a, (entry_t *)(void *)priv, m->data.result);
    }
}

/* ---- the cache ------------------------------------------------------------- */

static bool entry_fresh(const sc_acme_t *a, const entry_t *e, long long now)
{
    long long keep = e->state == E_OK ? (long long)a->cfg.cache_s * 1000
                                      : (a->cfg.cache_s * 1000LL < FAIL_CACHE_MS
                                             ? a->cfg.cache_s * 1000LL : FAIL_CACHE_MS);
    return e->state == E_FETCHING || now - e->done_ms < keep;
}

static bool entry_in_use(const sc_acme_t *a, unsigned idx)
{
    for (size_t i = 0; i < MAX_ASKERS; i++)
        for (size_t k = 0; a->askers[i].fd >= 0 && k < a->askers[i].n; k++)
            if (a->askers[i].entry[k] == idx)
                return true;
    return false;
}

static void entry_clear(entry_t *e)
{
    free(e->url);
    CURL *easy = e->easy;
    memset(e, 0, sizeof *e);
    e->easy = easy;
}

static bool entry_known(const sc_acme_t *a, const char *url)
{
    for (unsigned i = 0; i < MAX_ENTRIES; i++)
        if (a->entries[i].state != E_FREE && !strcmp(a->entries[i].url, url))
            return true;
    return false;
}

/* The entry for url: a fresh one as it is, else a (re)started fetch
 * (*started). MAX_ENTRIES when nothing can be had. */
static unsigned entry_for(sc_acme_t *a, const char *name, const char *url, long long now,
                          bool *started)
{
    *started = false;
    unsigned spare = MAX_ENTRIES;
    long long took_ms = -1;
    for (unsigned i = 0; i < MAX_ENTRIES; i++) {
        entry_t *e = &a->entries[i];
        if (e->state != E_FREE && !strcmp(e->url, url)) {
            if (entry_fresh(a, e, now)) {
                atomic_fetch_add(&a->stats.cache_hits, e->state != E_FETCHING);
                return i;
            }
            spare = i;
            took_ms = e->took_ms;
            break;
        }
        bool reusable = e->state == E_FREE ||
                        (e->state != E_FETCHING && !entry_fresh(a, e, now) && !entry_in_use(a, i));
        if (spare == MAX_ENTRIES && reusable)
            spare = i;
    }
    if (spare == MAX_ENTRIES)
        return MAX_ENTRIES;
    entry_t *e = &a->entries[spare];
    entry_clear(e);
    if (!(e->url = strdup(url)))
        return MAX_ENTRIES;
    snprintf(e->name, sizeof e->name, "%s", name);
    e->state = E_FETCHING;
    e->started_ms = now;
    e->took_ms = took_ms;
    *started = true;
    if (!start_attempt(a, e)) {
        entry_done(a, e, false, "cannot start a transfer");
        return spare;
    }
    return spare;
}

/* ---- askers ---------------------------------------------------------------- */

/* How long after its start a fetch is waited for: the budget for a URL
 * never fetched, else about the last fetch's time, and not at all when that
 * outlasted the budget. Askers that come later wait what is left of it
 * (origin_t rations the waits too). */
static long long fetch_wait_ms(const sc_acme_t *a, const entry_t *e)
{
    long long budget = (long long)a->budget_ms - REPLY_MARGIN_MS;
    if (e->took_ms < 0)
        return budget;
    if (e->took_ms >= budget)
        return 0;
    long long w = WAIT_FACTOR * e->took_ms + WAIT_EXTRA_MS;
    return w < budget ? w : budget;
}

static void reply(sc_acme_t *a, asker_t *k)
{
    long long now = now_ms();
    for (size_t i = 0; k->waits && now >= k->deadline_ms && i < k->n; i++) {
        const entry_t *e = &a->entries[k->entry[i]];
        if (e->state == E_FETCHING)   /* waited for, not in within the budget */
            origin_mark(a, e->url, true, now);
    }
    char msg[IBP_ACME_REPLY_MAX];
    size_t len = (size_t)snprintf(msg, sizeof msg, "%sOK", IBP_ACME_MAGIC);
    size_t values = 0;
    for (size_t i = 0; i < k->n; i++) {
        const entry_t *e = &a->entries[k->entry[i]];
        bool repeat = false;
        for (size_t j = 0; j < i && !repeat; j++) {
            const entry_t *o = &a->entries[k->entry[j]];
            repeat = o->state == E_OK && o->value_len == e->value_len &&
                     !memcmp(o->value, e->value, e->value_len);
        }
        if (e->state != E_OK || repeat || len + 1 + e->value_len > sizeof msg)
            continue;
        msg[len++] = '\n';
        memcpy(msg + len, e->value, e->value_len);
        len += e->value_len;
        values++;
    }
    if (!values)
        len = (size_t)snprintf(msg, sizeof msg, "%sNONE", IBP_ACME_MAGIC);
    atomic_fetch_add(values ? &a->stats.answered : &a->stats.unanswered, 1);
    /* An asker that gave up has closed its end: the send fails, no matter. */
    (void)send(k->fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(k->fd);
    k->fd = -1;
}

static bool asker_ready(const sc_acme_t *a, const asker_t *k, long long now)
{
    if (now >= k->deadline_ms)
        return true;
    for (size_t i = 0; i < k->n; i++)
        if (a->entries[k->entry[i]].state == E_FETCHING)
            return false;
    return true;
}

/* The ACME URLs at name in the table in place. */
static size_t urls_at(sc_acme_t *a, const char *name, char urls[][IBP_TXT_MAX + 1])
{
    ibp_err_t err;
    sc_cached_table_t *ct = sc_table_acquire(&a->s->tables, a->s->table_path, &err);
    if (!ct)
        return 0;
    size_t n = 0;
    const ibp_tbl_name_t *nm = ibp_table_find(&ct->t, name, strlen(name));
    for (uint32_t i = 0; nm && i < nm->rr_count && n < IBP_ACME_PER_NAME_MAX; i++) {
        const ibp_tbl_rr_t *rr = &ct->t.rrs[nm->rr_first + i];
        if (rr->flags & IBP_RR_ACME)
            snprintf(urls[n++], IBP_TXT_MAX + 1, "%s", ibp_table_str(&ct->t, rr->content));
    }
    sc_table_release(&a->s->tables, ct);
    return n;
}

static void take_question(sc_acme_t *a, asker_t *k)
{
    char msg[IBP_ACME_REQUEST_MAX + 1], name[IBP_NAME_MAX + 1];
    ssize_t got = recv(k->fd, msg, sizeof msg, MSG_DONTWAIT);
    ibp_err_t err;
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (got <= 0 || !ibp_acme_request_parse(msg, (size_t)got, name, &err)) {
        atomic_fetch_add(&a->stats.refused, 1);
        close(k->fd);
        k->fd = -1;
        return;
    }
    atomic_fetch_add(&a->stats.questions, 1);
    size_t n = urls_at(a, name, a->urls);
    long long now = now_ms();
    long long wait_ms = 0;
    k->n = 0;
    for (size_t i = 0; i < n; i++) {
        bool started;   /* unused: a running fetch is waited for alike */
        unsigned idx = entry_for(a, name, a->urls[i], now, &started);
        if (idx == MAX_ENTRIES)
            continue;
        const entry_t *e = &a->entries[idx];
        k->entry[k->n++] = idx;
        /* Whoever started it: a CA asks from several places at once, and
         * each must get the value a quick URL gives. */
        bool unmeasured_prefetch = e->prefetch && e->took_ms < 0;   /* nobody's wait */
        long long until = e->started_ms + (unmeasured_prefetch ? 0 : fetch_wait_ms(a, e));
        if (e->state == E_FETCHING && until > now && !origin_slow(a, e->url, now))
            wait_ms = until - now > wait_ms ? until - now : wait_ms;
    }
    k->deadline_ms = now + wait_ms;
    k->waits = wait_ms > 0;
    if (asker_ready(a, k, now))
        reply(a, k);
}

static unsigned prefetches_running(const sc_acme_t *a, long long now)
{
    unsigned n = 0;
    for (unsigned i = 0; i < MAX_ENTRIES; i++) {
        const entry_t *e = &a->entries[i];
        n += e->state == E_FETCHING && e->prefetch && now - e->started_ms < a->budget_ms;
    }
    return n;
}

/* Starts the fetch of one URL of t never seen; false when there is none. */
static bool prefetch_one(sc_acme_t *a, const ibp_table_t *t, long long now)
{
    uint32_t n_names = t->h->sections[IBP_SEC_NAMES].count;
    for (uint32_t i = 0; i < n_names; i++) {
        const ibp_tbl_name_t *nm = &t->names[i];
        for (uint32_t k = 0; k < nm->rr_count; k++) {
            const ibp_tbl_rr_t *rr = &t->rrs[nm->rr_first + k];
            const char *url = ibp_table_str(t, rr->content);
            if (!(rr->flags & IBP_RR_ACME) || entry_known(a, url))
                continue;
            bool started = false;
            unsigned idx = entry_for(a, ibp_table_str(t, nm->name), url, now, &started);
            if (idx == MAX_ENTRIES || !started)
                return false;   /* no room */
            a->entries[idx].prefetch = true;
            atomic_fetch_add(&a->stats.prefetches, 1);
            return true;
        }
    }
    return false;
}

/* A table that brings URLs never seen has them fetched soon, asked for or
 * not: the value is then in when a validation asks, and a slow URL is known
 * as slow before anyone would wait for it. A few at a time, so that a burst
 * of our own does not make a server look slow. */
static void prefetch_new_urls(sc_acme_t *a, long long now)
{
    bool check = now - a->table_checked_ms >= TABLE_CHECK_MS;
    if (!check && (!a->prefetch_pending || prefetches_running(a, now) >= PREFETCH_PARALLEL))
        return;
    if (check)
        a->table_checked_ms = now;
    ibp_err_t err;
    sc_cached_table_t *ct = sc_table_acquire(&a->s->tables, a->s->table_path, &err);
    if (!ct)
        return;
    const ibp_table_t *t = &ct->t;
    if (t->h->generation != a->table_generation) {
        a->table_generation = t->h->generation;
        /* A config reload may change it: a sidecar that waited longer than
         * the coprocesses would reply to nobody. */
        a->budget_ms = t->h->acme_budget_ms ? t->h->acme_budget_ms : IBP_ACME_BUDGET_MS_DEFAULT;
        a->prefetch_pending = true;
        a->prefetched = 0;
    }
    while (a->prefetch_pending && prefetches_running(a, now) < PREFETCH_PARALLEL)
        if (a->prefetched >= PREFETCH_MAX || !prefetch_one(a, t, now))
            a->prefetch_pending = false;
        else
            a->prefetched++;
    sc_table_release(&a->s->tables, ct);
}

/* An asker that gave up (closed) or talks out of turn while it waits. */
static void drop_if_gone(asker_t *k)
{
    char byte;
    ssize_t got = recv(k->fd, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    close(k->fd);
    k->fd = -1;
}

static void accept_askers(sc_acme_t *a)
{
    for (;;) {
        int fd = accept4(a->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        asker_t *k = NULL;
        for (size_t i = 0; i < MAX_ASKERS && !k; i++)
            if (a->askers[i].fd < 0)
                k = &a->askers[i];
        if (!k) {
            atomic_fetch_add(&a->stats.refused, 1);
            close(fd);   /* the coprocess answers NODATA at once */
            continue;
        }
        *k = (asker_t){.fd = fd, .deadline_ms = now_ms() + a->budget_ms};
    }
}

/* ---- the thread ------------------------------------------------------------ */

static int poll_timeout(sc_acme_t *a, long long now)
{
    long curl_ms = -1;
    curl_multi_timeout(a->multi, &curl_ms);
    long long t = curl_ms >= 0 && curl_ms < 1000 ? curl_ms : 1000;
    for (size_t i = 0; i < MAX_ASKERS; i++)
        if (a->askers[i].fd >= 0 && a->askers[i].n && a->askers[i].deadline_ms - now < t)
            t = a->askers[i].deadline_ms - now;
    return t > 0 ? (int)t : 0;
}

static void *acme_thread(void *arg)
{
    sc_acme_t *a = arg;
    struct curl_waitfd fds[1 + MAX_ASKERS];
    asker_t *owner[1 + MAX_ASKERS];
    while (!atomic_load(&a->stop)) {
        unsigned n = 0;
        fds[n++] = (struct curl_waitfd){.fd = a->listen_fd, .events = CURL_WAIT_POLLIN};
        for (size_t i = 0; i < MAX_ASKERS; i++)
            if (a->askers[i].fd >= 0) {
                owner[n] = &a->askers[i];
                fds[n++] = (struct curl_waitfd){.fd = a->askers[i].fd, .events = CURL_WAIT_POLLIN};
            }
        curl_multi_poll(a->multi, fds, n, poll_timeout(a, now_ms()), NULL);
        if (fds[0].revents)
            accept_askers(a);
        for (unsigned i = 1; i < n; i++)
            if (fds[i].revents && owner[i]->fd >= 0)
                owner[i]->n ? drop_if_gone(owner[i]) : take_question(a, owner[i]);
        reap_transfers(a);
        long long now = now_ms();
        prefetch_new_urls(a, now);
        for (size_t i = 0; i < MAX_ASKERS; i++) {
            asker_t *k = &a->askers[i];
            /* A connection that says nothing within the budget is dropped. */
            if (k->fd >= 0 && (k->n ? asker_ready(a, k, now) : now >= k->deadline_ms))
                reply(a, k);
        }
    }
    return NULL;
}

/* ---- start and stop ------------------------------------------------------------ */

static bool bind_socket(sc_acme_t *a, ibp_err_t *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(a->cfg.socket_path) >= sizeof sa.sun_path)
        return ibp_err_set(err, "Routing.AcmeSocket %s: longer than %zu bytes", a->cfg.socket_path,
                           sizeof sa.sun_path - 1);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", a->cfg.socket_path);
    snprintf(a->socket_path, sizeof a->socket_path, "%s", a->cfg.socket_path);
    a->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (a->listen_fd < 0)
        return ibp_err_set(err, "ACME socket: %s", strerror(errno));
    struct stat st;
    /* Only a socket is replaced: a typo must not delete a file. */
    if (lstat(sa.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(sa.sun_path);
    if (bind(a->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return ibp_err_set(err, "ACME socket %s: %s", sa.sun_path, strerror(errno));
    /* PowerDNS's coprocesses run as another user; they may only ask. */
    if (chmod(sa.sun_path, 0666) != 0 || listen(a->listen_fd, 64) != 0)
        return ibp_err_set(err, "ACME socket %s: %s", sa.sun_path, strerror(errno));
    return true;
}

static void acme_free(sc_acme_t *a)
{
    for (size_t i = 0; i < MAX_ASKERS; i++)
        if (a->askers[i].fd >= 0)
            close(a->askers[i].fd);
    for (size_t i = 0; i < MAX_ENTRIES; i++) {
        entry_t *e = &a->entries[i];
        if (e->easy) {
            if (e->state == E_FETCHING)
                curl_multi_remove_handle(a->multi, e->easy);
            curl_easy_cleanup(e->easy);
        }
        free(e->url);
    }
    if (a->multi)
        curl_multi_cleanup(a->multi);
    if (a->listen_fd >= 0) {
        close(a->listen_fd);
        unlink(a->socket_path);
    }
    free(a->ca_file);
    free(a);
}

bool sc_acme_start(sc_state_t *s, const sc_acme_cfg_t *cfg, sc_acme_t **out, ibp_err_t *err)
{
    *out = NULL;
    sc_acme_t *a = calloc(1, sizeof *a);
    if (!a)
        return ibp_err_set(err, "out of memory");
    a->s = s;
    a->cfg = *cfg;
    a->budget_ms = cfg->budget_ms;
    a->listen_fd = -1;
    for (size_t i = 0; i < MAX_ASKERS; i++)
        a->askers[i].fd = -1;
    a->ca_file = cfg->ca_file && cfg->ca_file[0] ? strdup(cfg->ca_file) : NULL;
    bool ok = (!cfg->ca_file || !cfg->ca_file[0] || a->ca_file ||
               ibp_err_set(err, "out of memory")) &&
              ((a->multi = curl_multi_init()) || ibp_err_set(err, "curl_multi_init failed")) &&
              bind_socket(a, err);
    if (ok && pthread_create(&a->thread, NULL, acme_thread, a) != 0)
        ok = ibp_err_set(err, "ACME thread: %s", strerror(errno));
    if (!ok) {
        acme_free(a);
        return false;
    }
    *out = a;
    return true;
}

void sc_acme_stop(sc_acme_t *a)
{
    if (!a)
        return;
    atomic_store(&a->stop, true);
    curl_multi_wakeup(a->multi);
    pthread_join(a->thread, NULL);
    acme_free(a);
}

const sc_acme_stats_t *sc_acme_stats(const sc_acme_t *a)
{
    return &a->stats;
}
