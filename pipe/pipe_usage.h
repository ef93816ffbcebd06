/* Usage counting in the coprocess: one hit per answered dynamic A/AAAA
 * record, by (UTC day, domain, member, client class, family), into a
 * counter file (lib/usage) that outlives the process. Each table's indices
 * are turned into the file's own strings once per file, so counting a hit
 * is a clock read from the vDSO, a few loads and a hash probe. */
#ifndef IBPDNS_PIPE_USAGE_H
#define IBPDNS_PIPE_USAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ibp_counter.h"
#include "ibp_log.h"
#include "ibp_table.h"

#define PIPE_USAGE_SLOTS 8192u
#define PIPE_USAGE_ARENA (512u * 1024u)
#define PIPE_USAGE_STAGED 512u   /* hits of answers not yet written */
#define PIPE_USAGE_SHORTCUTS (2u * PIPE_USAGE_SLOTS)   /* a power of two */
/* No day in pack_key's range: a key packed with it is all ones, which no
 * packed key is (pack_key refuses the day 0xFFFF). */
#define PIPE_USAGE_NO_DAY UINT64_MAX

/* The table's indices of a key packed in 64 bits -> its slot in the open
 * file: a hit on a known key costs one probe of private memory instead of
 * building the key's strings and comparing five fields in the shared file. */
typedef struct pipe_usage_shortcut {
    uint64_t packed;       /* 0: empty */
    uint32_t slot;
    uint32_t pad;
} pipe_usage_shortcut_t;

typedef struct pipe_usage {
    const char *dir;          /* NULL: counting is off */
    const ibp_log_t *log;
    int64_t clock_offset_s;   /* tests: seconds added to the clock */
    ibp_counter_t file;       /* fd < 0: none open */
    const ibp_table_t *table; /* the table the refs below index */
    uint64_t table_generation;
    uint32_t *ref_of_host, *ref_of_target, *ref_of_client;   /* 0: not yet in this file */
    uint32_t n_hosts, n_targets, n_clients;
    bool packable;            /* every index of the table fits pack_key's fields */
    uint64_t counted;         /* hits counted by this process */
    uint64_t uncounted;       /* hits no file could take (reported in the log) */
    int64_t last_fault_log;   /* monotonic seconds */
    int64_t retry_at;         /* monotonic seconds: no new file before (after a failure) */
    pipe_usage_shortcut_t *shortcuts;   /* PIPE_USAGE_SHORTCUTS, for the open file */
    uint64_t now;             /* UTC seconds (plus the offset) at the last tick; 0: none */
    uint64_t day_key;         /* now's day in pack_key's place, PIPE_USAGE_NO_DAY: none */
    /* The last hit's packed key and its slot in the open file (0: none):
     * PowerDNS asks twice per query for the same answer, and the second
     * then costs a compare instead of a probe. Forgotten with the file. */
    uint64_t last_packed;
    uint32_t last_slot;
    uint32_t staged[PIPE_USAGE_STAGED];   /* slots of the open file, one per hit */
    unsigned n_staged;
    /* The last client's class: PowerDNS asks twice per query for one client. */
    const ibp_table_t *class_table;
    uint64_t class_generation;
    ibp_addr_t class_addr;
    uint32_t class_of_addr;
} pipe_usage_t;

/* The client class of c (ibp_table_client_class), remembered for the next
 * lookup of the same client: the check is inline, as it is per lookup. */
uint32_t pipe_usage_client_class_slow(pipe_usage_t *u, const ibp_table_t *t,
                                      const ibp_client_t *c);
static inline uint32_t pipe_usage_client_class(pipe_usage_t *u, const ibp_table_t *t,
                                               const ibp_client_t *c)
{
    uint64_t seen[2], asked[2];
    memcpy(seen, u->class_addr.b, sizeof seen);
    memcpy(asked, c->addr.b, sizeof asked);
    if (u->class_table == t && u->class_generation == t->h->generation && seen[0] == asked[0] &&
        seen[1] == asked[1])
        return u->class_of_addr;
    return pipe_usage_client_class_slow(u, t, c);
}

/* The shortcut of packed, or the empty entry where it goes. */
static inline pipe_usage_shortcut_t *pipe_usage_shortcut_of(pipe_usage_t *u, uint64_t packed)
{
    uint32_t mask = PIPE_USAGE_SHORTCUTS - 1;
    for (uint32_t i = (uint32_t)((packed * 0x9E3779B97F4A7C15ULL) >> 40) & mask;;
         i = (i + 1) & mask) {   /* never full: at most PIPE_USAGE_SLOTS keys per file */
        pipe_usage_shortcut_t *e = &u->shortcuts[i];
        if (e->packed == packed || e->packed == 0)
            return e;
    }
}

/* One hit per target for host (an index) in family fam (0: A), for a
 * client of class client_class, held until pipe_usage_commit: the coprocess
 * commits once the answers are written to PowerDNS, so a SIGKILL before the
 * write counts nothing PowerDNS never got (it asks again elsewhere). The
 * slots are found here, so a commit is one store per hit: the window in
 * which a SIGKILL after the write loses a hit is a few instructions.
 * Inline for the common case, one target whose key this file has seen (the
 * last hit's key again: a compare; another: a probe of the shortcuts), as
 * it runs per lookup. Everything else takes pipe_usage_stage_slow. */
void pipe_usage_stage_slow(pipe_usage_t *u, const ibp_table_t *t, uint32_t host, unsigned fam,
                           const uint32_t *targets, unsigned n, uint32_t client_class);
static inline void pipe_usage_stage(pipe_usage_t *u, const ibp_table_t *t, uint32_t host,
                                    unsigned fam, const uint32_t *targets, unsigned n,
                                    uint32_t client_class)
{
    /* u->table == t: the shortcuts exist and hold only slots of the open
     * file (none when no file is open), and last_packed is one of them.
     * Both are empty unless the table is packable (every index fits its
     * field). A day_key of NO_DAY packs to all ones, which no entry is, and
     * no packed key here is 0 (day_key is at least 1 << 48). */
    if (n == 1 && u->table == t && u->n_staged < PIPE_USAGE_STAGED) {
        uint64_t packed = u->day_key | (uint64_t)fam << 47 | (uint64_t)host << 32 |
                          (uint64_t)targets[0] << 20 | client_class;
        if (packed == u->last_packed) {
            u->staged[u->n_staged++] = u->last_slot;
            return;
        }
        const pipe_usage_shortcut_t *e = pipe_usage_shortcut_of(u, packed);
        if (e->packed) {
            u->last_packed = packed;
            u->last_slot = e->slot;
            u->staged[u->n_staged++] = e->slot;
            return;
        }
    }
    pipe_usage_stage_slow(u, t, host, fam, targets, n, client_class);
}
void pipe_usage_commit(pipe_usage_t *u);

/* Reads the clock for the hits that follow (the coprocess ticks once per
 * read from PowerDNS; without ticks every stage reads it). */
void pipe_usage_tick(pipe_usage_t *u);

/* The table changed (or went away): the next hit opens a new file. */
void pipe_usage_table_changed(pipe_usage_t *u);

void pipe_usage_close(pipe_usage_t *u);

#endif
