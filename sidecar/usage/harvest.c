/* Usage harvest: see harvest.h. */
#include "harvest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ibp_counter.h"

#define STALE_TMP_S 60     /* a .tmp this old, unlocked: its writer died creating it */

typedef struct hfile {
    char name[256];
    int fd;
    uint8_t *map;
    size_t len;
    ibp_counter_view_t v;
    bool alive;            /* its writer holds the lock */
    bool usable;           /* attached and reconciled with the store */
    bool bad;              /* corrupt: kept, reported, never stored from */
    char why[IBP_ERR_MAX];
} hfile_t;

typedef struct flush_run {
    sc_usage_t *u;
    hfile_t *files;
    size_t n;
    uint64_t rows, hits, seen, backlog, bad, removed;
    ibp_err_t err;
} flush_run_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool copy_text(char *out, size_t cap, const char *s, const char *what, ibp_err_t *err)
{
    return (size_t)snprintf(out, cap, "%s", s ? s : "") < cap ||
           ibp_err_set(err, "%s: longer than %zu bytes", what, cap - 1);
}

static bool init_mysql(sc_usage_t *u, const sc_mysql_cfg_t *m, ibp_err_t *err)
{
    u->use_mysql = true;
    u->my_port = m->port;
    return copy_text(u->my_host, sizeof u->my_host, m->host, "Mysql.Host", err) &&
           copy_text(u->my_user, sizeof u->my_user, m->user, "Mysql.User", err) &&
           copy_text(u->my_pass, sizeof u->my_pass, m->pass, "Mysql.Pass", err) &&
           copy_text(u->my_db, sizeof u->my_db, m->db, "Mysql.DB", err);
}

void sc_usage_store_name(const sc_usage_t *u, const char **kind, char *where, size_t cap)
{
    *kind = u->use_mysql ? "mysql" : "sqlite";
    if (u->use_mysql)
        snprintf(where, cap, "%s:%u/%s", u->my_host, u->my_port, u->my_db);
    else
        snprintf(where, cap, "%s", u->db_path);
}

static bool open_any(const sc_usage_t *u, bool read_only, sc_store_t **out, ibp_err_t *err)
{
    if (!u->use_mysql)
        return sc_store_sqlite_open(u->db_path, read_only, out, err);
    sc_mysql_cfg_t m = {.host = u->my_host, .user = u->my_user, .pass = u->my_pass,
                        .db = u->my_db, .port = u->my_port};
    return sc_store_mysql_open(&m, read_only, out, err);
}

bool sc_usage_init(sc_usage_t *u, const char *counter_dir, const char *db_path,
                   const sc_mysql_cfg_t *mysql, const char *node_id, int flush_s,
                   const ibp_log_t *log, ibp_err_t *err)
{
    memset(u, 0, sizeof *u);
    pthread_mutex_init(&u->lock, NULL);
    pthread_cond_init(&u->cond, NULL);
    u->log = log;
    u->flush_s = flush_s > 0 ? flush_s : 300;
    if ((size_t)snprintf(u->dir, sizeof u->dir, "%s", counter_dir) >= sizeof u->dir ||
        (size_t)snprintf(u->db_path, sizeof u->db_path, "%s", db_path) >= sizeof u->db_path)
        return ibp_err_set(err, "Storage: path too long");
    snprintf(u->node_id, sizeof u->node_id, "%s", node_id);
    static const char *const crash_names[] = {"", "in-transaction", "after-commit",
                                              "before-remove"};
    const char *crash = getenv("IBPDNS_TEST_CRASH");
    for (int i = 1; crash && i < (int)(sizeof crash_names / sizeof crash_names[0]); i++)
        if (!strcmp(crash, crash_names[i]))
            u->crash_at = i;
    return !mysql || init_mysql(u, mysql, err);
}

static void crash_point(const flush_run_t *r, sc_crash_point_t at)
{
    if (r->u->crash_at == (int)at && r->rows > 0)
        raise(SIGKILL);   /* tests only (IBPDNS_TEST_CRASH): as an outside SIGKILL would */
}

/* The coprocesses (user pdns) write here; setgid keeps the group. Made at
 * every flush if missing: a directory that cannot be made is a flush that
 * fails, loudly, not a sidecar that stops routing. */
/* Setgid, so that the coprocesses' files get the directory's group. Under
 * systemd's RestrictSUIDSGID the mkdir is refused (EPERM): the package makes
 * the directory (packaging/ibpdns.tmpfiles); say why when it is missing. */
static bool make_dir(const sc_usage_t *u, ibp_err_t *err)
{
    if (mkdir(u->dir, 02775) == 0) {
        (void)chmod(u->dir, 02775);   /* whatever the umask took */
        return true;
    }
    int mkdir_errno = errno;
    struct stat st;
    if (mkdir_errno == EEXIST || (stat(u->dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return true;
    return ibp_err_set(err, "Storage.CounterDir %s: cannot create it: %s", u->dir,
                       strerror(mkdir_errno));
}

void sc_usage_free(sc_usage_t *u)
{
    if (u->store)
        u->store->ops->close(u->store);
    u->store = NULL;
    pthread_mutex_destroy(&u->lock);
    pthread_cond_destroy(&u->cond);
}

/* ---- reading the files ------------------------------------------------------ */

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

static void remove_stale_tmp(sc_usage_t *u, const char *name)
{
    char path[sizeof u->dir + 256];
    snprintf(path, sizeof path, "%s/%s", u->dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && time(NULL) - st.st_mtime > STALE_TMP_S &&
        flock(fd, LOCK_SH | LOCK_NB) == 0)
        unlink(path);   /* created, never named: it holds no hits */
    close(fd);
}

static void file_release(hfile_t *f)
{
    if (f->map)
        munmap(f->map, f->len);
    if (f->fd >= 0)
        close(f->fd);
    f->map = NULL;
    f->fd = -1;
}

static bool file_open(sc_usage_t *u, hfile_t *f)
{
    char path[sizeof u->dir + 256];
    snprintf(path, sizeof path, "%s/%s", u->dir, f->name);
    f->fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    ibp_err_t err = {{0}};
    bool ok = f->fd >= 0 || ibp_err_set(&err, "%s", strerror(errno));
    ok = ok && (fstat(f->fd, &st) == 0 || ibp_err_set(&err, "%s", strerror(errno)));
    ok = ok && (S_ISREG(st.st_mode) || ibp_err_set(&err, "not a regular file"));
    ok = ok && (st.st_size >= (off_t)sizeof(ibp_uc_header_t) ||
                ibp_err_set(&err, "%lld bytes: shorter than a header", (long long)st.st_size));
    if (ok) {
        f->len = (size_t)st.st_size;
        void *m = mmap(NULL, f->len, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
        ok = m != MAP_FAILED || ibp_err_set(&err, "mmap: %s", strerror(errno));
        f->map = ok ? m : NULL;
    }
    ok = ok && ibp_counter_attach(f->map, f->len, &f->v, &err);
    if (ok)
        f->alive = flock(f->fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    if (!ok) {
        snprintf(f->why, sizeof f->why, "%s", err.msg);
        f->bad = true;
    }
    return ok;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const hfile_t *)a)->name, ((const hfile_t *)b)->name);
}

static bool list_files(flush_run_t *r)
{
    DIR *d = opendir(r->u->dir);
    if (!d)
        return ibp_err_set(&r->err, "Storage.CounterDir %s: %s", r->u->dir, strerror(errno));
    r->files = calloc(SC_HARVEST_MAX_FILES, sizeof *r->files);
    if (!r->files) {
        closedir(d);
        return ibp_err_set(&r->err, "out of memory");
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL && r->n < SC_HARVEST_MAX_FILES) {
        if (has_suffix(e->d_name, IBP_COUNTER_SUFFIX ".tmp"))
            remove_stale_tmp(r->u, e->d_name);
        if (!has_suffix(e->d_name, IBP_COUNTER_SUFFIX) || strlen(e->d_name) >= 256)
            continue;
        hfile_t *f = &r->files[r->n++];
        snprintf(f->name, sizeof f->name, "%s", e->d_name);
        f->fd = -1;
    }
    closedir(d);
    qsort(r->files, r->n, sizeof *r->files, by_name);
    return true;
}

/* ---- rows ---------------------------------------------------------------------- */

/* At most max characters of UTF-8 text (IBP's VARCHAR widths count characters). */
static void cut(char *out, size_t cap, const char *s, size_t len, size_t max_chars)
{
    size_t i = 0, chars = 0;
    while (i < len && i + 1 < cap) {
        size_t step = 1;
        unsigned char c = (unsigned char)s[i];
        if (c >= 0xF0) step = 4;
        else if (c >= 0xE0) step = 3;
        else if (c >= 0xC0) step = 2;
        if (chars == max_chars || i + step > len || i + step >= cap)
            break;
        i += step;
        chars++;
    }
    memcpy(out, s, i);
    out[i] = '\0';
}

typedef struct row_text {
    char domain[SC_COL_DOMAIN * 4 + 1], member[SC_COL_MEMBER * 4 + 1];
    char cc[3], country[SC_COL_COUNTRY * 4 + 1], asn[SC_COL_ASN * 4 + 1];
    char netname[SC_COL_NETNAME * 4 + 1];
} row_text_t;

/* "<CC>\t<country>\t<ASN>\t<organisation>", IBP's rules on top: a code of
 * other than two letters is "??", whose name is "Unknown". */
static bool split_client(const ibp_uc_text_t *c, row_text_t *t)
{
    const char *f[4];
    size_t n[4], k = 0;
    const char *p = c->s, *end = c->s + c->len;
    while (k < 4) {
        const char *tab = k < 3 ? memchr(p, '\t', (size_t)(end - p)) : NULL;
        if (k < 3 && !tab)
            return false;
        f[k] = p;
        n[k] = (size_t)((k < 3 ? tab : end) - p);
        p = k < 3 ? tab + 1 : end;
        k++;
    }
    bool two = n[0] == 2 && f[0][0] >= 'A' && f[0][0] <= 'Z' && f[0][1] >= 'A' && f[0][1] <= 'Z';
    snprintf(t->cc, sizeof t->cc, "%.2s", two ? f[0] : "??");
    if (two)
        cut(t->country, sizeof t->country, f[1], n[1], SC_COL_COUNTRY);
    else
        snprintf(t->country, sizeof t->country, "Unknown");
    cut(t->asn, sizeof t->asn, f[2], n[2], SC_COL_ASN);
    cut(t->netname, sizeof t->netname, f[3], n[3], SC_COL_NETNAME);
    return true;
}

static bool row_of(const char *node_id, const ibp_uc_entry_t *e, row_text_t *t,
                   sc_usage_row_t *r)
{
    if (!split_client(&e->client, t))
        return false;
    cut(t->domain, sizeof t->domain, e->domain.s, e->domain.len, SC_COL_DOMAIN);
    if (e->member.len)
        cut(t->member, sizeof t->member, e->member.s, e->member.len, SC_COL_MEMBER);
    else
        snprintf(t->member, sizeof t->member, "(none)");
    time_t day = (time_t)e->day * 86400;
    struct tm tm;
    gmtime_r(&day, &tm);
    *r = (sc_usage_row_t){.node_id = node_id, .domain = t->domain, .member = t->member,
                          .country_code = t->cc, .country_name = t->country, .asn = t->asn,
                          .network_name = t->netname, .is_ipv6 = e->family == 1,
                          .hits = e->pend - e->done};
    strftime(r->date, sizeof r->date, "%Y-%m-%d", &tm);
    return true;
}

/* Checks every slot before any is stored: a file is stored whole or not. */
static bool file_check(hfile_t *f)
{
    ibp_err_t err = {{0}};
    for (uint32_t i = 0; i < f->v.h->n_slots; i++) {
        ibp_uc_entry_t e;
        row_text_t t;
        sc_usage_row_t r;
        ibp_uc_slot_state_t st = ibp_counter_slot(&f->v, i, &e, &err);
        if (st == IBP_UC_BAD || (st == IBP_UC_USED && !row_of("", &e, &t, &r))) {
            if (st != IBP_UC_BAD)
                ibp_err_set(&err, "slot %u: malformed client class", i);
            snprintf(f->why, sizeof f->why, "%s", err.msg);
            f->bad = true;
            return false;
        }
    }
    return true;
}

static bool store_file(flush_run_t *r, hfile_t *f)
{
    sc_store_t *s = r->u->store;
    for (uint32_t i = 0; i < f->v.h->n_slots; i++) {
        ibp_uc_entry_t e;
        ibp_err_t ignored;
        if (ibp_counter_slot(&f->v, i, &e, &ignored) != IBP_UC_USED || e.pend <= e.done)
            continue;
        row_text_t t;
        sc_usage_row_t row;
        if (!row_of(r->u->node_id, &e, &t, &row))
            continue;   /* file_check saw every slot */
        if (!s->ops->add(s, &row, &r->err))
            return false;
        r->rows++;
        r->hits += row.hits;
    }
    return s->ops->set_seq(s, f->name, f->v.h->pend_seq, &r->err);
}

/* ---- one flush ------------------------------------------------------------------ */

static bool open_store(sc_usage_t *u, ibp_err_t *err)
{
    if (u->store)
        return true;
    if (!open_any(u, false, &u->store, err))
        return false;
    if (u->store->warning[0])
        ibp_log(u->log, IBP_LOG_WARN, "usage store: %s", u->store->warning);
    return true;
}

static void mark_bad(hfile_t *f, const char *why)
{
    snprintf(f->why, sizeof f->why, "%s", why);
    f->bad = true;
}

/* One transaction for every file. A failure leaves each file's snapshot in
 * place: the next flush's recover step asks the store whether it landed,
 * which also covers a commit whose outcome the connection did not report. */
static bool harvest(flush_run_t *r)
{
    sc_store_t *s = r->u->store;
    if (!s->ops->begin(s, &r->err))
        return false;
    bool ok = true;
    for (size_t i = 0; ok && i < r->n; i++) {
        hfile_t *f = &r->files[i];
        if (!f->map || f->bad)
            continue;
        uint64_t seq;
        ibp_err_t why = {{0}};
        if (!(ok = s->ops->get_seq(s, f->name, &seq, &r->err)))
            break;
        if (!ibp_counter_recover(&f->v, seq, &why)) {
            mark_bad(f, why.msg);
            continue;
        }
        if (!file_check(f))
            continue;
        ibp_counter_begin(&f->v);
        msync(f->map, f->len, MS_SYNC);   /* the snapshot is on disk before the commit */
        f->usable = true;
        ok = store_file(r, f);
    }
    if (ok)
        crash_point(r, SC_CRASH_IN_TRANSACTION);
    ok = ok && s->ops->commit(s, &r->err);
    if (!ok) {
        s->ops->rollback(s);
        r->rows = r->hits = 0;
        return false;
    }
    crash_point(r, SC_CRASH_AFTER_COMMIT);
    for (size_t i = 0; i < r->n; i++) {
        if (r->files[i].usable) {
            ibp_counter_commit(&r->files[i].v);
            msync(r->files[i].map, r->files[i].len, MS_SYNC);
        }
    }
    crash_point(r, SC_CRASH_BEFORE_REMOVE);
    return true;
}

/* Files whose writer is gone and whose every hit is stored. The file goes
 * first, its sequence after: a sequence without a file is harmless, a file
 * without its sequence would look like a store that lost harvests. */
static void remove_drained(flush_run_t *r)
{
    sc_usage_t *u = r->u;
    sc_store_t *s = u->store;
    bool in_txn = false;
    for (size_t i = 0; i < r->n; i++) {
        hfile_t *f = &r->files[i];
        if (!f->usable || f->alive || !ibp_counter_drained(&f->v))
            continue;
        char path[sizeof u->dir + 256];
        snprintf(path, sizeof path, "%s/%s", u->dir, f->name);
        if (unlink(path) != 0)
            continue;
        r->removed++;
        ibp_err_t ignored;
        if (!in_txn)
            in_txn = s->ops->begin(s, &ignored);
        if (in_txn)
            (void)s->ops->forget(s, f->name, &ignored);
    }
    ibp_err_t err;
    if (in_txn && !s->ops->commit(s, &err))
        s->ops->rollback(s);
}

static void tally(flush_run_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        hfile_t *f = &r->files[i];
        if (f->bad) {
            r->bad++;
            continue;
        }
        if (!f->map)
            continue;
        for (uint32_t k = 0; k < f->v.h->n_slots; k++) {
            ibp_uc_entry_t e;
            ibp_err_t ignored;
            if (ibp_counter_slot(&f->v, k, &e, &ignored) == IBP_UC_USED) {
                r->seen += e.hits;
                r->backlog += e.hits - e.done;
            }
        }
    }
}

static void log_bad_files(flush_run_t *r, uint64_t bad_before)
{
    if (r->bad == bad_before)
        return;
    for (size_t i = 0; i < r->n; i++)
        if (r->files[i].bad)
            ibp_log(r->u->log, IBP_LOG_WARN, "usage: counter file %s/%s kept, not stored: %s",
                    r->u->dir, r->files[i].name, r->files[i].why);
}

static void record(flush_run_t *r, bool ok, double took)
{
    sc_usage_t *u = r->u;
    time_t now = time(NULL);
    pthread_mutex_lock(&u->lock);
    sc_usage_stats_t *st = &u->stats;
    uint64_t bad_before = st->files_bad;
    st->flushes++;
    st->last_flush = now;
    st->last_flush_s = took;
    st->files = r->n;
    st->files_bad = r->bad;
    st->hits_seen = r->seen;
    st->backlog = r->backlog;
    st->files_removed += r->removed;
    if (ok) {
        st->hits_stored += r->hits;
        st->rows_stored += r->rows;
        st->last_success = now;
        if (st->failing_since)
            ibp_log(u->log, IBP_LOG_INFO, "usage: stored again after %lld s of failures; "
                    "%llu hits waited", (long long)(now - st->failing_since),
                    (unsigned long long)r->hits);
        st->failing_since = 0;
    } else {
        st->flush_failures++;
        if (!st->failing_since)
            ibp_log(u->log, IBP_LOG_ERROR, "usage: cannot store (%s); counts wait in %s",
                    r->err.msg, u->dir);
        if (!st->failing_since)
            st->failing_since = now;
        snprintf(st->last_error, sizeof st->last_error, "%s", r->err.msg);
    }
    st->last_ok = ok;
    pthread_mutex_unlock(&u->lock);
    log_bad_files(r, bad_before);
}

bool sc_usage_flush(sc_usage_t *u)
{
    double t0 = now_s();
    flush_run_t r = {.u = u};
    bool ok = make_dir(u, &r.err) && list_files(&r);
    for (size_t i = 0; ok && i < r.n; i++)
        (void)file_open(u, &r.files[i]);
    ok = ok && open_store(u, &r.err) && harvest(&r);
    if (!ok && u->store) {   /* a fresh connection next time, whatever broke */
        u->store->ops->close(u->store);
        u->store = NULL;
    }
    if (ok)
        remove_drained(&r);
    tally(&r);
    for (size_t i = 0; i < r.n; i++)
        file_release(&r.files[i]);
    free(r.files);
    record(&r, ok, now_s() - t0);
    return ok;
}

/* ---- the thread ------------------------------------------------------------------ */

void *sc_usage_thread(void *arg)
{
    sc_usage_t *u = arg;
    pthread_mutex_lock(&u->lock);
    while (!u->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += u->flush_s;
        while (!u->stopping && u->flush_asked == u->flush_done &&
               pthread_cond_timedwait(&u->cond, &u->lock, &until) == 0)
            ;
        if (u->stopping)
            break;
        uint64_t asked = u->flush_asked;
        pthread_mutex_unlock(&u->lock);
        sc_usage_flush(u);
        pthread_mutex_lock(&u->lock);
        u->flush_done = asked;
        pthread_cond_broadcast(&u->cond);
    }
    pthread_mutex_unlock(&u->lock);
    sc_usage_flush(u);   /* SIGTERM: what was counted goes in before we stop */
    pthread_mutex_lock(&u->lock);
    u->flush_done = u->flush_asked;
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
    return NULL;
}

void sc_usage_stop(sc_usage_t *u)
{
    pthread_mutex_lock(&u->lock);
    u->stopping = true;
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
}

bool sc_usage_flush_now(sc_usage_t *u, int timeout_s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_s;
    pthread_mutex_lock(&u->lock);
    uint64_t ticket = ++u->flush_asked;
    pthread_cond_broadcast(&u->cond);
    int rc = 0;
    while (u->flush_done < ticket && rc == 0)
        rc = pthread_cond_timedwait(&u->cond, &u->lock, &until);
    bool ok = u->flush_done >= ticket && u->stats.last_ok;
    pthread_mutex_unlock(&u->lock);
    return ok;
}

/* A store to read, or *s NULL when an SQLite file does not exist yet
 * (nothing stored: an empty answer, not an error). */
static bool open_reader(sc_usage_t *u, sc_store_t **s, ibp_err_t *err)
{
    struct stat st;
    *s = NULL;
    if (!u->use_mysql && stat(u->db_path, &st) != 0 && errno == ENOENT)
        return true;
    return open_any(u, true, s, err);
}

bool sc_usage_query(sc_usage_t *u, const sc_usage_query_t *q, sc_usage_row_fn fn, void *ctx,
                    ibp_err_t *err)
{
    sc_store_t *s;
    if (!open_reader(u, &s, err))
        return false;
    bool ok = !s || s->ops->query(s, q, fn, ctx, err);
    if (s)
        s->ops->close(s);
    return ok;
}

bool sc_usage_events_query(sc_usage_t *u, const sc_event_query_t *q, sc_event_row_fn fn,
                           void *ctx, ibp_err_t *err)
{
    sc_store_t *s;
    if (!open_reader(u, &s, err))
        return false;
    bool ok = !s || s->ops->events_query(s, q, fn, ctx, err);
    if (s)
        s->ops->close(s);
    return ok;
}

bool sc_usage_open_events(void *ctx, sc_store_t **out, ibp_err_t *err)
{
    const sc_usage_t *u = ctx;
    if (!u->use_mysql)
        return sc_store_sqlite_open_events(u->db_path, out, err);
    sc_mysql_cfg_t m = {.host = u->my_host, .user = u->my_user, .pass = u->my_pass,
                        .db = u->my_db, .port = u->my_port};
    return sc_store_mysql_open_events(&m, out, err);
}
