#include "builder.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ibp_compile.h"
#include "ibp_file.h"
#include "ibp_health.h"
#include "ibp_overrides.h"
#include "ibp_table.h"
#include "ibp_table_writer.h"
#include "maxmind.h"
#include "workers.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

typedef struct snapshot {
    sc_ref_t *ref[SC_SRC_COUNT];
    uint64_t hi[SC_SRC_COUNT], lo[SC_SRC_COUNT], size[SC_SRC_COUNT];
    char url[SC_SRC_COUNT][4096];
    char mmdb_path[4096];
    bool health_configured;
    ibp_overrides_t overrides;   /* in force: the file's, edited over NATS */
    bool overrides_ok;           /* copied (else: out of memory, build nothing) */
} snapshot_t;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void sc_builder_init(sc_builder_t *b, sc_state_t *s)
{
    memset(b, 0, sizeof *b);
    b->s = s;
}

void sc_builder_free(sc_builder_t *b)
{
    if (b->have_geo)
        ibp_geo_classes_free(&b->geo);
    if (b->have_clients)
        ibp_client_classes_free(&b->clients);
    ibp_overrides_free(&b->split);
    free(b->last_buf);
    free(b->spare_buf);
    memset(b, 0, sizeof *b);
}

static void take_snapshot(sc_state_t *s, snapshot_t *snap)
{
    memset(snap, 0, sizeof *snap);
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < SC_SRC_COUNT; i++) {
        snap->ref[i] = sc_ref_get(s->src[i].good);
        snap->hi[i] = s->src[i].digest_hi;
        snap->lo[i] = s->src[i].digest_lo;
        snap->size[i] = s->src[i].size;
        memcpy(snap->url[i], s->src[i].url, sizeof snap->url[i]);
    }
    snap->health_configured = s->src[SC_SRC_RESULTS].configured;
    memcpy(snap->mmdb_path, s->mmdb_path, sizeof snap->mmdb_path);
    ibp_err_t err;
    snap->overrides_ok = sc_overrides_sync(s) && ibp_overrides_copy(&s->ov_live, &snap->overrides,
                                                                    &err);
    s->dirty_config = s->dirty_health = s->dirty_geo = false;
    pthread_mutex_unlock(&s->lock);
}

static void release_snapshot(snapshot_t *snap)
{
    for (int i = 0; i < SC_SRC_COUNT; i++)
        sc_ref_put(snap->ref[i]);
    ibp_overrides_free(&snap->overrides);
}

/* Countries split in the geo classes so far: a NATS override for one of
 * them (set again after a remove, say) republishes without a MaxMind walk.
 * At most the 676 two-letter codes. */
static bool keep_split_countries(sc_builder_t *b, const ibp_overrides_t *o, ibp_err_t *err)
{
    for (size_t i = 0; i < o->n; i++) {
        bool have = false;
        for (size_t j = 0; j < b->split.n && !have; j++)
            have = !strcmp(b->split.v[j].cc, o->v[i].cc);
        ibp_override_t cc_only = {.domain = "", .member_name = ""};
        memcpy(cc_only.cc, o->v[i].cc, sizeof cc_only.cc);
        if (!have && !ibp_overrides_set(&b->split, &cc_only, err))
            return false;
    }
    return true;
}

static const ibp_health_t *snapshot_health(const snapshot_t *snap)
{
    return snap->health_configured && snap->ref[SC_SRC_RESULTS]
           ? snap->ref[SC_SRC_RESULTS]->model : NULL;
}

/* What the table depends on: config, members, services, static records,
 * the effective health and the database's identity. */
/* The ASN database IBP's node keeps beside the City one (maxmind.h's names). */
static bool asn_path_of(const char *city, char *out, size_t cap, struct stat *st)
{
    const char *slash = strrchr(city, '/');
    int dir = slash ? (int)(slash - city) : 1;
    int n = snprintf(out, cap, "%.*s/%s", dir, slash ? city : ".", SC_MAXMIND_ASN.file);
    return n > 0 && (size_t)n < cap && stat(out, st) == 0;
}

static bool inputs_digest(const snapshot_t *snap, const struct stat *mmdb, uint64_t *hi,
                          uint64_t *lo)
{
    uint64_t h[2];
    if (!ibp_health_digest(snapshot_health(snap), &h[0], &h[1]))
        return false;
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return false;
    XXH3_128bits_reset(st);
    for (int i = SC_SRC_CONFIG; i <= SC_SRC_STATIC; i++) {
        XXH3_128bits_update(st, &snap->hi[i], sizeof snap->hi[i]);
        XXH3_128bits_update(st, &snap->lo[i], sizeof snap->lo[i]);
    }
    XXH3_128bits_update(st, h, sizeof h);
    uint64_t ov[2];
    ibp_overrides_digest(&snap->overrides, &ov[0], &ov[1]);
    XXH3_128bits_update(st, ov, sizeof ov);
    XXH3_128bits_update(st, &mmdb->st_ino, sizeof mmdb->st_ino);
    XXH3_128bits_update(st, &mmdb->st_size, sizeof mmdb->st_size);
    XXH3_128bits_update(st, &mmdb->st_mtim, sizeof mmdb->st_mtim);
    char asn[4096];
    struct stat asn_st = {0};   /* the ASN database beside it, if any: usage's classes */
    if (asn_path_of(snap->mmdb_path, asn, sizeof asn, &asn_st)) {
        XXH3_128bits_update(st, &asn_st.st_ino, sizeof asn_st.st_ino);
        XXH3_128bits_update(st, &asn_st.st_size, sizeof asn_st.st_size);
        XXH3_128bits_update(st, &asn_st.st_mtim, sizeof asn_st.st_mtim);
    }
    XXH128_hash_t d = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    *hi = d.high64;
    *lo = d.low64;
    return true;
}

/* Walks the database again only when member locations, override countries
 * or the database itself changed. *walked says whether it did. */
static bool ensure_geo(sc_builder_t *b, const snapshot_t *snap, const struct stat *mmdb,
                       bool *walked, ibp_err_t *err)
{
    ibp_geo_needs_t needs;
    if (!keep_split_countries(b, &snap->overrides, err) ||
        !ibp_geo_needs_from_model(snap->ref[SC_SRC_MEMBERS]->model, &b->split, &needs, err))
        return false;
    *walked = !b->have_geo || b->geo.fingerprint != needs.fingerprint ||
              !ibp_same_file(&b->geo_mmdb, mmdb);
    bool ok = true;
    if (*walked) {
        ibp_geo_input_t gi = {.mmdb_path = snap->mmdb_path, .sites = needs.sites,
                              .n_sites = needs.n_sites, .ccs = (const char (*)[3])needs.ccs,
                              .n_ccs = needs.n_ccs, .fingerprint = needs.fingerprint};
        ibp_geo_classes_t fresh;
        ok = ibp_geo_classes_build(&gi, &fresh, err) &&
             ibp_geo_classes_index_updates(&fresh, err) &&
             ibp_digest_file(snap->mmdb_path, &b->mmdb_hi, &b->mmdb_lo, &b->mmdb_size, err);
        if (ok) {
            if (b->have_geo)
                ibp_geo_classes_free(&b->geo);
            b->geo = fresh;
            b->have_geo = true;
            b->geo_mmdb = *mmdb;
            char date[32];
            ibp_format_utc(fresh.build_epoch, date);
            snprintf(b->mmdb_detail, sizeof b->mmdb_detail, "%s built %s", fresh.db_type, date);
        } else if (fresh.cls) {
            ibp_geo_classes_free(&fresh);
        }
    }
    ibp_geo_needs_free(&needs);
    return ok;
}

/* Client classes for usage: rebuilt when the City or the ASN file changed.
 * A failure keeps the classes before (or none: usage then says "??") and is
 * logged: routing does not wait for accounting. */
static void ensure_clients(sc_builder_t *b, const snapshot_t *snap, const struct stat *city)
{
    char asn[4096];
    struct stat asn_st = {0};
    bool with_asn = asn_path_of(snap->mmdb_path, asn, sizeof asn, &asn_st);
    if (b->have_clients && ibp_same_file(&b->clients_city, city) &&
        with_asn == b->clients_with_asn && (!with_asn || ibp_same_file(&b->clients_asn, &asn_st)))
        return;
    ibp_client_classes_t fresh;
    ibp_err_t err = {{0}};
    b->clients_city = *city;
    b->clients_asn = asn_st;
    b->clients_with_asn = with_asn;
    if (!ibp_client_classes_build(snap->mmdb_path, with_asn ? asn : NULL, &fresh, &err)) {
        ibp_log(&b->s->log, IBP_LOG_ERROR, "usage client classes: %s; %s", err.msg,
                b->have_clients ? "keeping the previous ones" : "usage rows say ?? until fixed");
        return;
    }
    if (b->have_clients)
        ibp_client_classes_free(&b->clients);
    b->clients = fresh;
    b->have_clients = true;
    ibp_log(&b->s->log, IBP_LOG_INFO, "usage client classes: %zu (countries%s) over %zu networks",
            fresh.n, with_asn ? " and ASNs" : "", fresh.n_networks);
}

static size_t describe_inputs(const sc_builder_t *b, const snapshot_t *snap,
                              ibp_input_desc_t *d)
{
    static const enum ibp_input_kind kinds[] = {IBP_IN_NODE_CONFIG, IBP_IN_MEMBERS,
                                                IBP_IN_SERVICES, IBP_IN_STATIC, IBP_IN_RESULTS};
    size_t n = 0;
    for (int i = SC_SRC_CONFIG; i <= SC_SRC_RESULTS; i++) {
        if (i == SC_SRC_RESULTS && !snapshot_health(snap))
            continue;
        d[n++] = (ibp_input_desc_t){.kind = kinds[i], .source = snap->url[i],
                                    .digest_hi = snap->hi[i], .digest_lo = snap->lo[i],
                                    .size = snap->size[i]};
    }
    d[n++] = (ibp_input_desc_t){.kind = IBP_IN_CITY_DB, .source = snap->mmdb_path,
                                .detail = b->mmdb_detail, .digest_hi = b->mmdb_hi,
                                .digest_lo = b->mmdb_lo, .size = b->mmdb_size};
    return n;
}

static void adopt_existing_table(sc_builder_t *b, const char *path)
{
    if (b->generation)
        return;
    ibp_err_t ignored;
    if (!ibp_table_peek(path, &b->generation, &b->build_time, &ignored))
        b->generation = b->build_time = 0;   /* no table yet: the numbering starts at 1 */
}

/* Before the first publish to a path (at start, and after TablePath
 * changes): a killed publish may have left its temporary there. */
static void clean_up_once(sc_builder_t *b, const char *path)
{
    if (!strcmp(path, b->cleaned_path))
        return;
    size_t stale = 0;
    ibp_err_t why;
    if (!ibp_table_remove_stale_temps(path, &stale, &why))
        ibp_log(&b->s->log, IBP_LOG_WARN, "stale temporaries: %s", why.msg);
    if (stale)
        ibp_log(&b->s->log, IBP_LOG_INFO, "removed %zu temporary table file%s (%s.tmp.*) left "
                "by a killed publish", stale, stale == 1 ? "" : "s", path);
    snprintf(b->cleaned_path, sizeof b->cleaned_path, "%s", path);
}

static bool compile_and_publish(sc_builder_t *b, const snapshot_t *snap, const char *path,
                                ibp_compile_out_t *co, ibp_err_t *err)
{
    const ibp_node_config_t *cfg = snap->ref[SC_SRC_CONFIG]->model;
    ibp_input_desc_t inputs[SC_SRC_COUNT];
    adopt_existing_table(b, path);
    uint64_t now = (uint64_t)time(NULL);
    ibp_compile_in_t ci = {
        .config = cfg, .members = snap->ref[SC_SRC_MEMBERS]->model,
        .services = snap->ref[SC_SRC_SERVICES]->model,
        .statics = snap->ref[SC_SRC_STATIC]->model, .overrides = &snap->overrides,
        .geo_overrides = &b->split,
        .health = snapshot_health(snap), .geo = &b->geo,
        .clients = b->have_clients ? &b->clients : NULL,
        .inputs = inputs, .n_inputs = describe_inputs(b, snap, inputs),
        .build_time = now > b->build_time ? now : b->build_time + 1,
        .generation = b->generation + 1,
        .previous = b->last_buf ? &b->last : NULL,
        .reuse = b->spare_buf, .reuse_cap = b->spare_cap,
    };
    b->spare_buf = NULL;   /* the compiler's now */
    b->spare_cap = 0;
    double t0 = now_s();
    if (!ibp_compile(&ci, co, err))
        return false;
    double t1 = now_s();
    b->phase_s[SC_PHASE_COMPILE] = t1 - t0;
    ibp_table_t check;   /* never publish what the coprocess would refuse */
    clean_up_once(b, path);
    if (!ibp_table_attach_trusting(co->table, co->table_len, b->last_buf ? &b->last : NULL,
                                   &check, err))
        return false;
    double t2 = now_s();
    b->phase_s[SC_PHASE_CHECK] = t2 - t1;
    if (!ibp_table_write_file(path, co->table, co->table_len, err))
        return false;
    b->phase_s[SC_PHASE_WRITE] = now_s() - t2;
    b->generation = ci.generation;
    b->build_time = ci.build_time;
    b->spare_buf = b->last_buf;
    b->spare_cap = b->last_cap;
    b->last_buf = co->table;   /* check is attached to it */
    b->last_cap = co->table_cap;
    b->last = check;
    co->table = NULL;
    return true;
}

static void record_build(sc_builder_t *b, bool ok, bool walked, double secs,
                         const ibp_compile_out_t *co, const char *why)
{
    sc_state_t *s = b->s;
    if (!ok && !why[0])
        why = "unknown error";   /* an empty reason would read as success */
    pthread_mutex_lock(&s->lock);
    sc_publish_t *p = &s->pub;
    if (ok) {
        p->generation = b->generation;
        p->build_time = b->build_time;
        p->published_at = time(NULL);
        p->last_build_s = secs;
        memcpy(p->phase_s, b->phase_s, sizeof p->phase_s);
        if (walked)
            p->builds_full++;
        else {
            p->builds_health++;
            p->last_health_build_s = secs;
        }
        p->last_error[0] = '\0';
        p->policies = co->n_policies;
        p->maps = co->n_maps;
        p->maps_reused = co->maps.reused;
        p->maps_updated = co->maps.updated;
        p->maps_computed = co->maps.computed;
        p->coarse_trie = co->maps.coarse;
        p->nodes = co->n_nodes;
        p->bytes = co->table_len;
        s->ready = true;
    } else {
        p->build_failures++;
        snprintf(p->last_error, sizeof p->last_error, "%s", why);
    }
    pthread_mutex_unlock(&s->lock);
    if (ok)
        ibp_log(&s->log, IBP_LOG_INFO, "published table generation %llu (%s) in %.0f ms",
                (unsigned long long)b->generation,
                walked ? "MaxMind walked" : "geo classes reused", secs * 1000);
    else if (strcmp(why, b->last_failure))
        ibp_log(&s->log, IBP_LOG_ERROR, "table build failed, the table in place stays: %s", why);
    else
        ibp_log(&s->log, IBP_LOG_DEBUG, "table build failed again: %s", why);
    snprintf(b->last_failure, sizeof b->last_failure, "%s", ok ? "" : why);
}

static bool table_path_of(const sc_state_t *s, const ibp_node_config_t *cfg, char *out,
                          size_t cap, ibp_err_t *err)
{
    return ibp_local_path(cfg->routing.table_path, s->config_dir, out, cap, err);
}

/* The same inputs give the same warnings on every republish. */
static void log_warnings_once(sc_builder_t *b, const ibp_compile_out_t *co)
{
    uint64_t d = 0;
    for (size_t i = 0; i < co->n_warnings; i++)
        d = XXH3_64bits_withSeed(co->warnings[i], strlen(co->warnings[i]), d);
    if (d == b->warnings_digest)
        return;
    b->warnings_digest = d;
    for (size_t i = 0; i < co->n_warnings; i++)
        ibp_log(&b->s->log, IBP_LOG_WARN, "%s", co->warnings[i]);
}

/* The inputs went back to those of the table in place after a failed
 * build: what failed is no longer wanted, and no fault remains to report. */
static void clear_failure(sc_builder_t *b)
{
    if (!b->last_failure[0])
        return;
    sc_state_t *s = b->s;
    pthread_mutex_lock(&s->lock);
    s->pub.last_error[0] = '\0';
    pthread_mutex_unlock(&s->lock);
    b->last_failure[0] = '\0';
    ibp_log(&s->log, IBP_LOG_INFO, "the table in place is the wanted one again: the failed "
            "build is no longer needed");
}

/* The file at path is still the one we published: not removed, not
 * replaced by somebody else's table. */
static bool published_in_place(sc_builder_t *b, const char *path)
{
    struct stat now;
    if (stat(path, &now) == 0 && ibp_same_file(&now, &b->published))
        return true;
    ibp_log(&b->s->log, IBP_LOG_WARN, "%s is not the table published last (removed or "
            "replaced): publishing again", path);
    return false;
}

bool sc_builder_run_once(sc_builder_t *b)
{
    snapshot_t snap;
    take_snapshot(b->s, &snap);
    bool ok = true;
    for (int i = SC_SRC_CONFIG; i <= SC_SRC_STATIC; i++)
        if (!snap.ref[i])
            goto out;   /* nothing to build from yet; the sources say why */
    if (!snap.overrides_ok) {
        ok = false;     /* out of memory: retried with back-off */
        goto out;
    }
    struct stat mmdb;
    ibp_err_t err = {{0}};
    char path[4096];
    if (!snap.mmdb_path[0] || stat(snap.mmdb_path, &mmdb) != 0)
        goto out;       /* the maxmind_city source reports it */
    uint64_t hi = 0, lo = 0;
    bool digested = inputs_digest(&snap, &mmdb, &hi, &lo);   /* else: build, to be safe */
    bool have_path = table_path_of(b->s, snap.ref[SC_SRC_CONFIG]->model, path, sizeof path, &err);
    if (digested && have_path && b->have_inputs && hi == b->inputs_hi && lo == b->inputs_lo &&
        published_in_place(b, path)) {
        clear_failure(b);   /* same inputs, same table: publish nothing */
        goto out;
    }
    double t0 = now_s();
    bool walked = false;
    ibp_compile_out_t co = {0};
    memset(b->phase_s, 0, sizeof b->phase_s);
    ok = have_path && ensure_geo(b, &snap, &mmdb, &walked, &err);
    if (ok)
        ensure_clients(b, &snap, &mmdb);
    b->phase_s[SC_PHASE_GEO] = now_s() - t0;
    ok = ok && compile_and_publish(b, &snap, path, &co, &err);
    record_build(b, ok, walked, now_s() - t0, &co, err.msg);
    if (ok)
        log_warnings_once(b, &co);
    ibp_compile_out_free(&co);
    if (ok) {
        b->inputs_hi = hi;
        b->inputs_lo = lo;
        b->have_inputs = digested && stat(path, &b->published) == 0;
    }
out:
    release_snapshot(&snap);
    return ok;
}

/* When to run again without an input change: after a failure with back-off,
 * else after SC_RETRY_MAX_MS to check that the table in place is ours. */
static void schedule_retry(sc_builder_t *b, bool ok, struct timespec *at)
{
    unsigned ms = SC_RETRY_MAX_MS;
    if (ok) {
        b->retry_ms = 0;
    } else {
        b->retry_ms = b->retry_ms ? b->retry_ms * 2 : SC_RETRY_FIRST_MS;
        if (b->retry_ms > SC_RETRY_MAX_MS)
            b->retry_ms = SC_RETRY_MAX_MS;
        ms = b->retry_ms;
    }
    clock_gettime(CLOCK_MONOTONIC, at);
    at->tv_sec += ms / 1000;
    at->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (at->tv_nsec >= 1000000000L) {
        at->tv_sec++;
        at->tv_nsec -= 1000000000L;
    }
}

/* Sleeps until an input changes or the time of schedule_retry() comes. */
static bool wait_for_work(sc_builder_t *b, const struct timespec *retry_at)
{
    sc_state_t *s = b->s;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping && !s->dirty_config && !s->dirty_health && !s->dirty_geo &&
           !s->publish_now)
        if (pthread_cond_timedwait(&s->wake, &s->lock, retry_at) == ETIMEDOUT)
            break;
    s->publish_now = false;
    bool stop = s->stopping;
    pthread_mutex_unlock(&s->lock);
    return !stop;
}

void *sc_builder_thread(void *builder)
{
    sc_builder_t *b = builder;
    struct timespec retry_at = {0};
    schedule_retry(b, !b->last_failure[0], &retry_at);   /* the first build ran before us */
    while (wait_for_work(b, &retry_at))
        schedule_retry(b, sc_builder_run_once(b), &retry_at);
    return NULL;
}
