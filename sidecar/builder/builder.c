#include "builder.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ibp_compile.h"
#include "ibp_country_split.h"
#include "ibp_file.h"
#include "ibp_health.h"
#include "ibp_overrides.h"
#include "ibp_table.h"
#include "ibp_table_writer.h"
#include "guard.h"
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
    bool forced;                 /* POST /publish?force=1 came */
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

static void drop_saved_geo(sc_builder_t *b);

static void forget_accepted(sc_accepted_t *a)
{
    for (int i = 0; i <= SC_SRC_STATIC; i++)
        sc_ref_put(a->ref[i]);
    ibp_overrides_free(&a->overrides);
    memset(a, 0, sizeof *a);
}

void sc_builder_free(sc_builder_t *b)
{
    if (b->have_geo)
        ibp_geo_classes_free(&b->geo);
    if (b->have_clients)
        ibp_client_classes_free(&b->clients);
    ibp_overrides_free(&b->split);
    forget_accepted(&b->accepted);
    drop_saved_geo(b);
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
    snap->forced = s->force_publish;
    s->force_publish = false;
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

/* with_health false: what the guard weighs a change of (all but health). */
static bool inputs_digest(const snapshot_t *snap, const struct stat *mmdb, bool with_health,
                          uint64_t *hi, uint64_t *lo)
{
    uint64_t h[2] = {0, 0};
    if (with_health && !ibp_health_digest(snapshot_health(snap), &h[0], &h[1]))
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
    /* A nets file changes what the config means without changing its bytes. */
    const ibp_nets_t *nets = &((const ibp_node_config_t *)snap->ref[SC_SRC_CONFIG]->model)->routing.nets;
    XXH3_128bits_update(st, &nets->file_hi, sizeof nets->file_hi);
    XXH3_128bits_update(st, &nets->file_lo, sizeof nets->file_lo);
    const ibp_map_t *map = &((const ibp_node_config_t *)snap->ref[SC_SRC_CONFIG]->model)->routing.map;
    if (map->file_hi || map->file_lo) {   /* no map file: the digest tables before it had */
        XXH3_128bits_update(st, &map->file_hi, sizeof map->file_hi);
        XXH3_128bits_update(st, &map->file_lo, sizeof map->file_lo);
    }
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

/* While the guard weighs a table built from new classes, those of the
 * table in place go aside (restore_geo brings them back if it is held),
 * unless they already are (a build that failed after its walk left its own
 * in use). */
static void save_geo(sc_builder_t *b)
{
    sc_geo_saved_t *g = &b->saved_geo;
    if (g->have) {
        ibp_geo_classes_free(&b->geo);
    } else {
        g->geo = b->geo;
        g->mmdb = b->geo_mmdb;
        g->hi = b->mmdb_hi;
        g->lo = b->mmdb_lo;
        g->size = b->mmdb_size;
        memcpy(g->detail, b->mmdb_detail, sizeof g->detail);
        g->have = true;
    }
    b->have_geo = false;
}

/* The override countries split so far, before a build may add to them. */
static bool save_split(sc_builder_t *b, ibp_err_t *err)
{
    if (b->saved_geo.have_split)
        return true;
    return (b->saved_geo.have_split = ibp_overrides_copy(&b->split, &b->saved_geo.split, err));
}

static void restore_geo(sc_builder_t *b)
{
    if (b->saved_geo.have_split) {
        ibp_overrides_free(&b->split);
        b->split = b->saved_geo.split;
        b->saved_geo.have_split = false;
    }
    if (!b->saved_geo.have)
        return;
    if (b->have_geo)
        ibp_geo_classes_free(&b->geo);
    b->geo = b->saved_geo.geo;
    b->geo_mmdb = b->saved_geo.mmdb;
    b->mmdb_hi = b->saved_geo.hi;
    b->mmdb_lo = b->saved_geo.lo;
    b->mmdb_size = b->saved_geo.size;
    memcpy(b->mmdb_detail, b->saved_geo.detail, sizeof b->mmdb_detail);
    b->have_geo = true;
    b->saved_geo.have = false;
}

static void drop_saved_geo(sc_builder_t *b)
{
    if (b->saved_geo.have)
        ibp_geo_classes_free(&b->saved_geo.geo);
    if (b->saved_geo.have_split)
        ibp_overrides_free(&b->saved_geo.split);
    b->saved_geo.have = b->saved_geo.have_split = false;
}

/* The geo fingerprint of snap's members and nets over the countries split so far. */
static bool needs_fingerprint(const sc_builder_t *b, const snapshot_t *snap, uint64_t *fp,
                              ibp_err_t *err)
{
    const ibp_node_config_t *cfg = snap->ref[SC_SRC_CONFIG]->model;
    ibp_geo_needs_t needs;
    if (!ibp_geo_needs_from_model(snap->ref[SC_SRC_MEMBERS]->model, &b->split,
                                  &cfg->routing.nets, &cfg->routing.map, &needs, err))
        return false;
    *fp = needs.fingerprint;
    ibp_geo_needs_free(&needs);
    return true;
}

/* Usage's client classes, built from this very City file. */
static bool clients_of(const sc_builder_t *b, const struct stat *mmdb)
{
    return b->have_clients && ibp_same_file(&b->clients_built_from, mmdb);
}

/* The countries of needs that the classes in use do not split yet. */
static size_t new_countries(const sc_builder_t *b, const ibp_geo_needs_t *needs, char (*out)[3],
                            size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < needs->n_ccs && n < cap; i++) {
        bool have = false;
        for (size_t k = IBP_CLASS_FIRST; k < b->geo.n_cls && !have; k++)
            have = !memcmp(b->geo.cls[k].cc, needs->ccs[i], 3);
        if (!have)
            memcpy(out[n++], needs->ccs[i], 3);
    }
    return n;
}

#define SPLIT_MAX 255   /* new countries one split takes (ibp_country_split.h); more: a walk */

/* A country override for a country never overridden before: the classes
 * in use split by it from the client classes (ibp_country_split.h), about
 * what a walk would make in a fraction of its time. */
static bool split_countries(sc_builder_t *b, const snapshot_t *snap, const ibp_geo_needs_t *needs,
                            bool keep, ibp_err_t *err)
{
    char ccs[SPLIT_MAX][3];
    size_t n = new_countries(b, needs, ccs, SPLIT_MAX);
    ibp_geo_classes_t fresh;
    if (!ibp_geo_classes_split_countries(&b->geo, &b->clients, (const char (*)[3])ccs, n,
                                         needs->fingerprint, &fresh, err))
        return ibp_err_prefix(err, "%s", snap->mmdb_path);
    if (keep)
        save_geo(b);
    else
        ibp_geo_classes_free(&b->geo);
    b->geo = fresh;
    b->have_geo = true;
    return true;
}

/* Walks the database again only when member locations, override countries
 * or the database itself changed. *walked says whether it did; keep: the
 * classes before are kept aside (save_geo); may_walk false: a walk needed
 * is an error (a held table's inputs: the database file may be the new one). */
static bool ensure_geo(sc_builder_t *b, const snapshot_t *snap, const struct stat *mmdb,
                       bool keep, bool may_walk, bool *walked, bool *refused, bool *split_only,
                       ibp_err_t *err)
{
    *refused = false;
    *split_only = false;
    ibp_geo_needs_t needs;
    const ibp_node_config_t *cfg = snap->ref[SC_SRC_CONFIG]->model;
    uint64_t before = 0;   /* the fingerprint without the countries new to the split */
    if ((keep && !save_split(b, err)) ||
        !needs_fingerprint(b, snap, &before, err) ||
        !keep_split_countries(b, &snap->overrides, err) ||
        !ibp_geo_needs_from_model(snap->ref[SC_SRC_MEMBERS]->model, &b->split,
                                  &cfg->routing.nets, &cfg->routing.map, &needs, err))
        return false;
    *walked = !b->have_geo || b->geo.fingerprint != needs.fingerprint ||
              !ibp_same_file(&b->geo_mmdb, mmdb);
    /* New override countries alone: split the classes in use, no walk. */
    char probe[SPLIT_MAX + 1][3];
    if (*walked && b->have_geo && before == b->geo.fingerprint &&
        ibp_same_file(&b->geo_mmdb, mmdb) && clients_of(b, mmdb) &&
        new_countries(b, &needs, probe, SPLIT_MAX + 1) <= SPLIT_MAX) {
        bool ok = split_countries(b, snap, &needs, keep, err);
        ibp_geo_needs_free(&needs);
        *walked = false;
        *split_only = ok;
        return ok;
    }
    *refused = *walked && !may_walk;
    bool ok = !*refused || ibp_err_set(err, "the geo classes of the table in place are gone");
    *walked = *walked && ok;
    if (*walked) {
        ibp_geo_input_t gi = ibp_geo_input_of(&needs, snap->mmdb_path);
        ibp_geo_classes_t fresh;
        uint64_t hi, lo, size;
        ok = ibp_geo_classes_build(&gi, &fresh, err) &&
             ibp_geo_classes_index_updates(&fresh, err) &&
             ibp_digest_file(snap->mmdb_path, &hi, &lo, &size, err);
        if (ok) {
            if (b->have_geo && keep)
                save_geo(b);
            else if (b->have_geo)
                ibp_geo_classes_free(&b->geo);
            b->mmdb_hi = hi;
            b->mmdb_lo = lo;
            b->mmdb_size = size;
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
    b->clients_built_from = *city;
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

/* A table built and checked, not yet published. */
typedef struct candidate {
    ibp_compile_out_t co;
    ibp_table_t check;     /* attached to co.table */
    uint64_t generation, build_time;
} candidate_t;

static bool compile_candidate(sc_builder_t *b, const snapshot_t *snap, const char *path,
                              candidate_t *c, ibp_err_t *err)
{
    ibp_compile_out_t *co = &c->co;
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
    /* never publish what the coprocess would refuse */
    clean_up_once(b, path);
    if (!ibp_table_attach_trusting(co->table, co->table_len, b->last_buf ? &b->last : NULL,
                                   &c->check, err))
        return false;
    b->phase_s[SC_PHASE_CHECK] = now_s() - t1;
    c->generation = ci.generation;
    c->build_time = ci.build_time;
    return true;
}

static bool publish_candidate(sc_builder_t *b, const char *path, candidate_t *c, ibp_err_t *err)
{
    double t0 = now_s();
    ibp_compile_out_t *co = &c->co;
    if (!ibp_table_write_file(path, co->table, co->table_len, err))
        return false;
    b->phase_s[SC_PHASE_WRITE] = now_s() - t0;
    b->generation = c->generation;
    b->build_time = c->build_time;
    b->spare_buf = b->last_buf;
    b->spare_cap = b->last_cap;
    b->last_buf = co->table;   /* check is attached to it */
    b->last_cap = co->table_cap;
    b->last = c->check;
    co->table = NULL;
    return true;
}

/* A candidate held back: its buffer is the next build's to write into. */
static void drop_candidate(sc_builder_t *b, candidate_t *c)
{
    ibp_table_close(&c->check);
    free(b->spare_buf);
    b->spare_buf = c->co.table;
    b->spare_cap = c->co.table_cap;
    c->co.table = NULL;
}

static void record_build(sc_builder_t *b, bool ok, bool walked, bool split_only, double secs,
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
                walked ? "MaxMind walked"
                : split_only ? "geo classes split by new override countries"
                             : "geo classes reused", secs * 1000);
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

/* ---- the guard (Routing.MaxShiftPercent) -------------------------------------- */

/* The inputs of the table in place replace snap's, health aside. */
static bool use_accepted(const sc_accepted_t *a, snapshot_t *snap, struct stat *mmdb)
{
    for (int i = SC_SRC_CONFIG; i <= SC_SRC_STATIC; i++) {
        sc_ref_put(snap->ref[i]);
        snap->ref[i] = sc_ref_get(a->ref[i]);
        snap->hi[i] = a->hi[i];
        snap->lo[i] = a->lo[i];
        snap->size[i] = a->size[i];
        memcpy(snap->url[i], a->url[i], sizeof snap->url[i]);
    }
    ibp_overrides_free(&snap->overrides);
    memcpy(snap->mmdb_path, a->mmdb_path, sizeof snap->mmdb_path);
    *mmdb = a->mmdb;
    ibp_err_t err;
    return ibp_overrides_copy(&a->overrides, &snap->overrides, &err);
}

/* snap's inputs, health aside, are those of the table just published. */
static void accept_inputs(sc_accepted_t *a, const snapshot_t *snap, const struct stat *mmdb,
                          uint64_t hi, uint64_t lo)
{
    forget_accepted(a);
    for (int i = SC_SRC_CONFIG; i <= SC_SRC_STATIC; i++) {
        a->ref[i] = sc_ref_get(snap->ref[i]);
        a->hi[i] = snap->hi[i];
        a->lo[i] = snap->lo[i];
        a->size[i] = snap->size[i];
        memcpy(a->url[i], snap->url[i], sizeof a->url[i]);
    }
    memcpy(a->mmdb_path, snap->mmdb_path, sizeof a->mmdb_path);
    a->mmdb = *mmdb;
    a->digest_hi = hi;
    a->digest_lo = lo;
    ibp_err_t err;
    /* Out of memory: nothing accepted, so nothing is held until the next publish. */
    a->have = ibp_overrides_copy(&snap->overrides, &a->overrides, &err);
    if (!a->have)
        forget_accepted(a);
}

static void set_guard_limit(sc_state_t *s, unsigned limit)
{
    pthread_mutex_lock(&s->lock);
    s->guard.max_shift_percent = limit;
    pthread_mutex_unlock(&s->lock);
}

/* What the build in hand does about the guard. */
typedef struct guard_plan {
    unsigned limit;
    bool weigh;            /* the candidate is weighed before it is published */
    bool substituted;      /* built from the accepted inputs (a table is held back) */
    uint64_t hi, lo;       /* snap's inputs, health aside */
} guard_plan_t;

/* A held table stays held while the inputs in hand are those it came from
 * (and the guard is on, and nobody forced it): the build in hand is then
 * the table in place's inputs with today's health. */
static bool plan_guard(sc_builder_t *b, snapshot_t *snap, struct stat *mmdb, guard_plan_t *g)
{
    memset(g, 0, sizeof *g);
    g->limit = ((const ibp_node_config_t *)snap->ref[SC_SRC_CONFIG]->model)->routing.max_shift_percent;
    set_guard_limit(b->s, g->limit);
    bool digested = inputs_digest(snap, mmdb, false, &g->hi, &g->lo);
    bool as_accepted = digested && b->accepted.have && g->hi == b->accepted.digest_hi &&
                       g->lo == b->accepted.digest_lo;
    bool same_as_held = digested && g->hi == b->held_hi && g->lo == b->held_lo;
    if (b->held && (!g->limit || snap->forced || !same_as_held)) {
        b->held = false;
        if (as_accepted || !g->limit)
            sc_guard_release(b->s);   /* else weighed again below */
    }
    if (b->held) {
        g->substituted = true;
        return use_accepted(&b->accepted, snap, mmdb);
    }
    g->weigh = g->limit && digested && !as_accepted && b->accepted.have && b->last_buf &&
               !b->guard_bypass;
    b->guard_bypass = false;
    return true;
}

/* A held table's inputs need a walk of the database: its classes are gone
 * and the file may be the new one. Health must publish: the hold ends and
 * the next build publishes the inputs in hand unweighed, loudly. */
static void guard_lost(sc_builder_t *b, const char *why)
{
    b->held = false;
    b->guard_bypass = true;
    sc_guard_release(b->s);
    ibp_log(&b->s->log, IBP_LOG_ERROR, "table guard: %s: the table held back is released and "
            "published unweighed, so that health changes are not held up", why);
}

/* Some candidate of some host of t is offline. */
static bool someone_offline(const ibp_table_t *t)
{
    for (uint32_t i = 0; i < t->n[IBP_SEC_CANDS]; i++)
        if (t->cands[i].skip[0] == IBP_SKIP_OFFLINE || t->cands[i].skip[1] == IBP_SKIP_OFFLINE)
            return true;
    return false;
}

/* The guard's view of one set of inputs with every member online (no
 * previous table: numbered afresh). */
typedef struct online_table {
    ibp_compile_out_t co;
    ibp_table_t t;
    bool have;
} online_table_t;

static bool compile_online(const sc_builder_t *b, sc_ref_t *const ref[], const ibp_overrides_t *ov,
                           const ibp_overrides_t *split, const ibp_geo_classes_t *geo,
                           online_table_t *out, ibp_err_t *err)
{
    ibp_compile_in_t ci = {
        .config = ref[SC_SRC_CONFIG]->model, .members = ref[SC_SRC_MEMBERS]->model,
        .services = ref[SC_SRC_SERVICES]->model, .statics = ref[SC_SRC_STATIC]->model,
        .overrides = ov, .geo_overrides = split, .health = NULL, .geo = geo,
        .build_time = b->build_time, .generation = b->generation,
    };
    memset(out, 0, sizeof *out);
    if (!ibp_compile(&ci, &out->co, err))
        return false;
    out->have = ibp_table_attach_trusting(out->co.table, out->co.table_len, NULL, &out->t, err);
    return out->have;
}

static void online_free(online_table_t *o)
{
    if (o->have)
        ibp_table_close(&o->t);
    ibp_compile_out_free(&o->co);
    memset(o, 0, sizeof *o);
}

/* The table in place's inputs and snap's, both with every member online,
 * when someone is offline in c: two more compiles, only for a table the
 * guard weighs (changed configs) while a member is down. */
static bool compile_online_pair(sc_builder_t *b, const snapshot_t *snap, const candidate_t *c,
                                online_table_t pair[2], ibp_err_t *err)
{
    memset(pair, 0, 2 * sizeof *pair);
    if (!someone_offline(&c->check) && !someone_offline(&b->last))
        return true;
    /* The table in place's classes with the countries they were split for:
     * aside when this build walked again, else those in hand. */
    bool aside = b->saved_geo.have;
    const ibp_geo_classes_t *old_geo = aside ? &b->saved_geo.geo : &b->geo;
    const ibp_overrides_t *old_split =
        aside && b->saved_geo.have_split ? &b->saved_geo.split : &b->split;
    bool ok = compile_online(b, b->accepted.ref, &b->accepted.overrides, old_split, old_geo,
                             &pair[0], err) &&
              compile_online(b, snap->ref, &snap->overrides, &b->split, &b->geo, &pair[1], err);
    if (!ok) {
        online_free(&pair[0]);
        online_free(&pair[1]);
    }
    return ok;
}

/* Weighs c against the table in place; true: it is held back. */
static bool hold_back(sc_builder_t *b, const snapshot_t *snap, const guard_plan_t *g,
                      candidate_t *c)
{
    bool hold = false;
    ibp_err_t err = {{0}};
    online_table_t up[2];
    bool weighed = compile_online_pair(b, snap, c, up, &err) &&
                   sc_guard_weigh(b->s, &b->last, &c->check, up[0].have ? &up[0].t : NULL,
                                  up[1].have ? &up[1].t : NULL, g->limit, snap->forced, &hold,
                                  &err);
    online_free(&up[0]);
    online_free(&up[1]);
    if (!weighed) {
        ibp_log(&b->s->log, IBP_LOG_ERROR, "table guard: %s: the table is published unweighed",
                err.msg);
        return false;
    }
    if (!hold)
        return false;
    restore_geo(b);
    drop_candidate(b, c);
    clear_failure(b);   /* the build worked: an earlier failure is no longer the news */
    b->held = true;
    b->held_hi = g->hi;
    b->held_lo = g->lo;
    /* A health change that came with the held inputs is published at once,
     * from the accepted ones. */
    pthread_mutex_lock(&b->s->lock);
    b->s->publish_now = true;
    pthread_mutex_unlock(&b->s->lock);
    return true;
}

bool sc_builder_run_once(sc_builder_t *b)
{
    snapshot_t snap;
    take_snapshot(b->s, &snap);
    bool ok = true;
    bool force_kept = snap.forced;   /* until the build it asked for is done */
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
    guard_plan_t guard;
    if (!plan_guard(b, &snap, &mmdb, &guard)) {
        ok = false;     /* out of memory */
        goto out;
    }
    uint64_t hi = 0, lo = 0;
    bool digested = inputs_digest(&snap, &mmdb, true, &hi, &lo);   /* else: build, to be safe */
    bool have_path = table_path_of(b->s, snap.ref[SC_SRC_CONFIG]->model, path, sizeof path, &err);
    if (digested && have_path && b->have_inputs && hi == b->inputs_hi && lo == b->inputs_lo &&
        published_in_place(b, path)) {
        clear_failure(b);   /* same inputs, same table: publish nothing */
        force_kept = false;
        goto out;
    }
    double t0 = now_s();
    bool walked = false, refused = false, split_only = false;
    candidate_t c = {0};
    memset(b->phase_s, 0, sizeof b->phase_s);
    ok = have_path && ensure_geo(b, &snap, &mmdb, guard.weigh, !guard.substituted, &walked,
                                 &refused, &split_only, &err);
    if (refused)
        guard_lost(b, err.msg);
    if (ok && !guard.substituted)   /* usage's classes follow the database in hand */
        ensure_clients(b, &snap, &mmdb);
    b->phase_s[SC_PHASE_GEO] = now_s() - t0;
    ok = ok && compile_candidate(b, &snap, path, &c, &err);
    if (ok && guard.weigh && hold_back(b, &snap, &guard, &c)) {
        ibp_compile_out_free(&c.co);
        force_kept = false;
        goto out;   /* not a failure: nothing to retry until the inputs change */
    }
    /* A failed build keeps the table in place's classes aside still: its
     * retry may be held back. */
    ok = ok && publish_candidate(b, path, &c, &err);
    if (ok) {
        drop_saved_geo(b);
        force_kept = false;
    }
    record_build(b, ok, walked, split_only, now_s() - t0, &c.co, err.msg);
    if (ok)
        log_warnings_once(b, &c.co);
    ibp_compile_out_free(&c.co);
    if (ok) {
        b->inputs_hi = hi;
        b->inputs_lo = lo;
        b->have_inputs = digested && stat(path, &b->published) == 0;
        if (!guard.substituted) {
            accept_inputs(&b->accepted, &snap, &mmdb, guard.hi, guard.lo);
            sc_guard_release(b->s);
        }
    }
out:
    if (force_kept) {   /* nothing was built: the force waits for the build that can be */
        pthread_mutex_lock(&b->s->lock);
        b->s->force_publish = true;
        pthread_mutex_unlock(&b->s->lock);
    }
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
