/* Usage counter files (ibp_usage_format.h): the coprocess's writer, and the
 * sidecar's reader and harvest steps.
 *
 * Writer: one process, one thread per file; counting is memory writes only.
 * Reader: any process, concurrently with the writer; every slot and string
 * is validated before use, so a corrupt or hostile file gives an error,
 * never a wrong row. Liveness: the writer holds an exclusive flock on the
 * file for as long as it may write; the kernel drops it when the writer
 * dies, however it dies. */
#ifndef IBP_COUNTER_H
#define IBP_COUNTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"
#include "ibp_usage_format.h"

#define IBP_COUNTER_SUFFIX ".ibpc"

/* ---- writer ---------------------------------------------------------------- */

typedef struct ibp_counter {
    uint8_t *base;
    size_t size;
    ibp_uc_header_t *h;
    ibp_uc_slot_t *slots;
    uint8_t *arena;
    uint32_t mask;         /* n_slots - 1 */
    uint32_t slot_limit;   /* claim no more than this: probes stay short */
    uint32_t slots_used, arena_used;
    int fd;
} ibp_counter_t;

typedef struct ibp_uc_key {
    uint32_t day, domain, member, client, family;
} ibp_uc_key_t;

/* Creates DIR/c-<pid>-<nanoseconds>.ibpc with n_slots (a power of two) and
 * an arena of arena_size bytes, mapped and locked; it appears under its
 * name only once its header is complete. */
IBP_MUST_CHECK
bool ibp_counter_create(const char *dir, uint32_t n_slots, uint32_t arena_size,
                        uint64_t table_generation, uint64_t now, ibp_counter_t *c,
                        ibp_err_t *err);

/* Marks the file closed (no more hits will come) and releases it. */
void ibp_counter_close(ibp_counter_t *c);

/* Appends a string to the arena: its ref, or 0 when the arena has no room
 * (the caller moves to a new file). */
IBP_MUST_CHECK
uint32_t ibp_counter_put_string(ibp_counter_t *c, const char *s, size_t len);

/* Adds n hits to key (whose refs this file's arena holds). False when the
 * key is new and the file has no room for it (the caller moves to a new
 * file); never a system call, a lock or an allocation. */
IBP_MUST_CHECK
bool ibp_counter_add(ibp_counter_t *c, const ibp_uc_key_t *key, uint64_t n);

/* The two halves of ibp_counter_add, so that a caller can find (or claim,
 * with no hits) a key's slot before an answer is written and add the hit
 * after, with one store: IBP_UC_NO_SLOT when the file has no room. */
#define IBP_UC_NO_SLOT 0xFFFFFFFFu
IBP_MUST_CHECK
uint32_t ibp_counter_slot_of(ibp_counter_t *c, const ibp_uc_key_t *key);
static inline void ibp_counter_bump(ibp_counter_t *c, uint32_t slot, uint64_t n)
{
    ibp_uc_slot_t *s = &c->slots[slot];
    __atomic_store_n(&s->hits, s->hits + n, __ATOMIC_RELAXED);
}

/* ---- reader and harvest ---------------------------------------------------- */

typedef struct ibp_counter_view {
    uint8_t *base;         /* the file, mapped shared and writable (harvest state) */
    size_t size;
    ibp_uc_header_t *h;
    ibp_uc_slot_t *slots;
    const uint8_t *arena;
} ibp_counter_view_t;

typedef struct ibp_uc_text {
    const char *s;         /* not NUL-terminated */
    uint32_t len;
} ibp_uc_text_t;

typedef struct ibp_uc_entry {
    uint32_t day, family;
    ibp_uc_text_t domain, member, client;
    uint64_t hits, done, pend;
} ibp_uc_entry_t;

/* Validates the header of a file of len bytes. */
IBP_MUST_CHECK
bool ibp_counter_attach(uint8_t *buf, size_t len, ibp_counter_view_t *v, ibp_err_t *err);

typedef enum ibp_uc_slot_state { IBP_UC_FREE = 0, IBP_UC_USED, IBP_UC_BAD } ibp_uc_slot_state_t;

/* Reads slot i (< n_slots): FREE, USED with e filled in, or BAD (err says why). */
IBP_MUST_CHECK
ibp_uc_slot_state_t ibp_counter_slot(const ibp_counter_view_t *v, uint32_t i,
                                     ibp_uc_entry_t *e, ibp_err_t *err);

/* The harvest, against a store that keeps per file the number of harvests
 * it has committed (stored_seq) in the same transaction as their counts:
 *   recover  reconciles the file with stored_seq after a crash at any point;
 *   begin    snapshots every slot's hits into pend (pend_seq = done_seq + 1);
 *            the counts to store are pend - done;
 *   commit   after the store committed pend_seq: done = pend;
 *   abort    after the store failed: the snapshot is forgotten. */
IBP_MUST_CHECK
bool ibp_counter_recover(ibp_counter_view_t *v, uint64_t stored_seq, ibp_err_t *err);
void ibp_counter_begin(ibp_counter_view_t *v);
void ibp_counter_commit(ibp_counter_view_t *v);
void ibp_counter_abort(ibp_counter_view_t *v);

/* Every hit counted so far has been stored. */
bool ibp_counter_drained(const ibp_counter_view_t *v);

#endif
