/* Usage counting in the coprocess: see pipe_usage.h. */
#include "pipe_usage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void free_refs(pipe_usage_t *u)
{
    free(u->shortcuts);
    u->shortcuts = NULL;
    free(u->ref_of_host);
    free(u->ref_of_target);
    free(u->ref_of_client);
    u->ref_of_host = u->ref_of_target = u->ref_of_client = NULL;
    u->n_hosts = u->n_targets = u->n_clients = 0;
}

void pipe_usage_close(pipe_usage_t *u)
{
    pipe_usage_commit(u);
    u->last_packed = 0;   /* its slot is of this file */
    if (u->file.base)
        ibp_counter_close(&u->file);
    free_refs(u);
    u->table = NULL;
    u->class_table = NULL;
}

void pipe_usage_table_changed(pipe_usage_t *u)
{
    pipe_usage_close(u);   /* commits first: the staged hits are in the open file */
}

static int64_t monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts.tv_sec;
}

static void report_fault(pipe_usage_t *u, const char *why)
{
    int64_t now = monotonic_s();
    if (u->last_fault_log && now - u->last_fault_log < 60)
        return;
    u->last_fault_log = now;
    ibp_log(u->log, IBP_LOG_ERROR, "usage counting: %s; %llu hits uncounted so far", why,
            (unsigned long long)u->uncounted);
}

/* A new file for table t: the refs start empty (sized by the table once). */
static bool open_file(pipe_usage_t *u, const ibp_table_t *t, uint64_t now)
{
    pipe_usage_commit(u);
    u->last_packed = 0;   /* its slot is of the file being left */
    if (u->file.base)
        ibp_counter_close(&u->file);
    if (monotonic_s() < u->retry_at)
        return false;   /* a failing directory costs a system call a second, not one a hit */
    if (u->table != t) {
        free_refs(u);
        u->n_hosts = t->n[IBP_SEC_HOSTS];
        u->n_targets = t->n[IBP_SEC_TARGETS];
        u->n_clients = ibp_table_client_classes(t);
        u->ref_of_host = calloc(u->n_hosts + 1, sizeof *u->ref_of_host);
        u->ref_of_target = calloc(u->n_targets + 1, sizeof *u->ref_of_target);
        u->ref_of_client = calloc(u->n_clients + 1, sizeof *u->ref_of_client);
        u->shortcuts = calloc(PIPE_USAGE_SHORTCUTS, sizeof *u->shortcuts);
        u->table = t;
        u->packable = u->n_hosts <= 1u << 15 && u->n_targets <= 1u << 12 &&
                      u->n_clients <= 1u << 20;
        if (!u->ref_of_host || !u->ref_of_target || !u->ref_of_client || !u->shortcuts) {
            free_refs(u);
            u->table = NULL;
            report_fault(u, "out of memory");
            return false;
        }
    } else {
        memset(u->ref_of_host, 0, u->n_hosts * sizeof *u->ref_of_host);
        memset(u->ref_of_target, 0, u->n_targets * sizeof *u->ref_of_target);
        memset(u->ref_of_client, 0, u->n_clients * sizeof *u->ref_of_client);
        memset(u->shortcuts, 0, PIPE_USAGE_SHORTCUTS * sizeof *u->shortcuts);
    }
    ibp_err_t err = {{0}};
    if (!ibp_counter_create(u->dir, PIPE_USAGE_SLOTS, PIPE_USAGE_ARENA, t->h->generation, now,
                            &u->file, &err)) {
        u->retry_at = monotonic_s() + 1;
        report_fault(u, err.msg);
        return false;
    }
    return true;
}

/* Strings are short by construction (names, MaxMind texts); a longer one is
 * cut rather than let it make every file too small for it. */
static uint32_t put(pipe_usage_t *u, const char *s, size_t len)
{
    return ibp_counter_put_string(&u->file, s, len < IBP_UC_MAX_STRING ? len : IBP_UC_MAX_STRING);
}

static uint32_t host_ref(pipe_usage_t *u, const ibp_table_t *t, uint32_t host)
{
    if (!u->ref_of_host[host]) {
        const ibp_tbl_name_t *nm = &t->names[t->hosts[host].name];
        u->ref_of_host[host] =
            put(u, ibp_table_str(t, nm->name), nm->name_len);
    }
    return u->ref_of_host[host];
}

/* IBP's member column: Details.Name, "override:<CC>" for an override address. */
static uint32_t target_ref(pipe_usage_t *u, const ibp_table_t *t, uint32_t target)
{
    if (!u->ref_of_target[target]) {
        const ibp_tbl_target_t *tg = &t->targets[target];
        char text[64];
        const char *s = text;
        size_t len;
        if (tg->member != IBP_TBL_NONE) {
            s = ibp_table_str(t, t->members[tg->member].name);
            len = strlen(s);
        } else {
            len = (size_t)snprintf(text, sizeof text, "override:%.2s", tg->cc);
        }
        u->ref_of_target[target] = put(u, s, len);
    }
    return u->ref_of_target[target];
}

static uint32_t client_ref(pipe_usage_t *u, const ibp_table_t *t, uint32_t cls)
{
    if (!u->ref_of_client[cls]) {
        uint32_t len;
        const char *s = ibp_table_client_text(t, cls, &len);
        u->ref_of_client[cls] = put(u, s, len);
    }
    return u->ref_of_client[cls];
}

/* Builds the key in the current file; 0 in a ref means the arena is full. */
static bool make_key(pipe_usage_t *u, const ibp_table_t *t, uint32_t host, unsigned fam,
                     uint32_t target, uint32_t cls, uint32_t day, ibp_uc_key_t *k)
{
    *k = (ibp_uc_key_t){.day = day, .family = fam, .domain = host_ref(u, t, host),
                        .member = target_ref(u, t, target), .client = client_ref(u, t, cls)};
    return k->domain && k->member && k->client;
}

/* day (16 bits), family (1), host (15), target (12), class (20): 0 when a
 * table's indices do not fit (u->packable, once per table) or the day does
 * (in 2149): the slow path then serves the key. The day 0xFFFF is refused
 * too, so that no packed key is all ones (PIPE_USAGE_NO_DAY). */
static uint64_t pack_key(const pipe_usage_t *u, uint32_t day, unsigned fam, uint32_t host,
                         uint32_t target, uint32_t cls)
{
    if (!u->packable || day >= 0xFFFFu)
        return 0;
    return (uint64_t)day << 48 | (uint64_t)fam << 47 | (uint64_t)host << 32 |
           (uint64_t)target << 20 | cls;
}

/* The inline stage's memory of one key: only keys that pack (so never 0
 * and never all ones), only slots of the open file. */
static inline uint32_t remember(pipe_usage_t *u, uint64_t packed, uint32_t slot)
{
    if (slot != IBP_UC_NO_SLOT) {
        u->last_packed = packed;
        u->last_slot = slot;
    }
    return slot;
}

static inline uint32_t slot_in_file(pipe_usage_t *u, const ibp_table_t *t, uint32_t host,
                                    unsigned fam, uint32_t target, uint32_t cls, uint32_t day)
{
    if (!u->file.base)
        return IBP_UC_NO_SLOT;
    uint64_t packed = pack_key(u, day, fam, host, target, cls);
    pipe_usage_shortcut_t *e = packed ? pipe_usage_shortcut_of(u, packed) : NULL;
    if (e && e->packed)
        return remember(u, packed, e->slot);
    ibp_uc_key_t k;
    uint32_t slot = make_key(u, t, host, fam, target, cls, day, &k)
                        ? ibp_counter_slot_of(&u->file, &k) : IBP_UC_NO_SLOT;
    if (e && slot != IBP_UC_NO_SLOT)
        *e = (pipe_usage_shortcut_t){.packed = packed, .slot = slot};
    return e ? remember(u, packed, slot) : slot;
}

/* The slot of one hit: in this file, or in a new one when it is full (the
 * hits staged in the full one are added first: they name its slots). */
static uint32_t slot_for(pipe_usage_t *u, const ibp_table_t *t, uint32_t host, unsigned fam,
                         uint32_t target, uint32_t cls, uint64_t now)
{
    uint32_t day = (uint32_t)(now / 86400);
    uint32_t slot = slot_in_file(u, t, host, fam, target, cls, day);
    if (slot != IBP_UC_NO_SLOT)
        return slot;
    pipe_usage_commit(u);
    return open_file(u, t, now) ? slot_in_file(u, t, host, fam, target, cls, day)
                                : IBP_UC_NO_SLOT;
}

void pipe_usage_commit(pipe_usage_t *u)
{
    for (unsigned i = 0; i < u->n_staged; i++)
        ibp_counter_bump(&u->file, u->staged[i], 1);
    u->counted += u->n_staged;
    u->n_staged = 0;
}

void pipe_usage_stage_slow(pipe_usage_t *u, const ibp_table_t *t, uint32_t host, unsigned fam,
                      const uint32_t *targets, unsigned n, uint32_t client_class)
{
    if (!u->dir || !n)
        return;
    if (u->table != t && u->file.base)
        pipe_usage_close(u);   /* commits what the old table's answers staged */
    /* host is an index into the table's hosts, client_class one that
     * ibp_table_client_class gave (always in range), targets come from the
     * validated private copy of the answers: no bounds to check here. */
    uint64_t now = u->now;
    if (!now) {
        pipe_usage_tick(u);
        now = u->now;
        u->now = 0;   /* untimed callers read the clock each time */
        u->day_key = PIPE_USAGE_NO_DAY;   /* and the inline stage never matches for them */
    }
    for (unsigned i = 0; i < n; i++) {
        if (u->n_staged == PIPE_USAGE_STAGED)
            pipe_usage_commit(u);   /* a long batch of lines: counted before its write */
        uint32_t slot = slot_for(u, t, host, fam, targets[i], client_class, now);
        if (slot == IBP_UC_NO_SLOT)
            u->uncounted++;
        else
            u->staged[u->n_staged++] = slot;
    }
}

uint32_t pipe_usage_client_class_slow(pipe_usage_t *u, const ibp_table_t *t,
                                      const ibp_client_t *c)
{
    u->class_of_addr = ibp_table_client_class(t, c);
    u->class_table = t;
    u->class_generation = t->h->generation;
    u->class_addr = c->addr;
    return u->class_of_addr;
}

void pipe_usage_tick(pipe_usage_t *u)
{
    struct timespec ts;   /* the coarse clock comes from the vDSO: no system call */
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    u->now = (uint64_t)(ts.tv_sec + u->clock_offset_s);
    /* The day once per read, not per hit; a day pack_key refuses (or the
     * day 0, whose keys could pack to 0 = "none") leaves it to the slow path. */
    uint64_t day = u->now / 86400;
    u->day_key = day >= 1 && day < 0xFFFFu ? day << 48 : PIPE_USAGE_NO_DAY;
}
