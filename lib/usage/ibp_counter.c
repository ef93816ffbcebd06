/* Usage counter files: see ibp_counter.h. */
#include "ibp_counter.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LOAD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define STORE_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

static size_t file_size_for(uint32_t n_slots, uint32_t arena_size)
{
    return sizeof(ibp_uc_header_t) + (size_t)n_slots * sizeof(ibp_uc_slot_t) + arena_size;
}

/* ---- writer ---------------------------------------------------------------- */

static bool map_new(int fd, size_t size, ibp_counter_t *c, ibp_err_t *err)
{
    if (ftruncate(fd, (off_t)size) != 0)
        return ibp_err_set(err, "cannot size the counter file: %s", strerror(errno));
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return ibp_err_set(err, "cannot map the counter file: %s", strerror(errno));
    c->base = m;
    c->size = size;
    c->h = m;
    c->slots = (ibp_uc_slot_t *)(c->base + sizeof(ibp_uc_header_t));
    c->arena = (uint8_t *)(c->slots + (c->mask + 1));
    return true;
}

static void write_header(ibp_counter_t *c, uint32_t n_slots, uint32_t arena_size,
                         uint64_t table_generation, uint64_t now)
{
    ibp_uc_header_t *h = c->h;
    memcpy(h->magic, IBP_UC_MAGIC, 8);
    h->version = IBP_UC_VERSION;
    h->endian = IBP_UC_ENDIAN;
    h->header_size = sizeof *h;
    h->slot_size = sizeof(ibp_uc_slot_t);
    h->n_slots = n_slots;
    h->arena_size = arena_size;
    h->file_size = c->size;
    h->table_generation = table_generation;
    h->created = now;
    h->writer_pid = (uint32_t)getpid();
}

bool ibp_counter_create(const char *dir, uint32_t n_slots, uint32_t arena_size,
                        uint64_t table_generation, uint64_t now, ibp_counter_t *c,
                        ibp_err_t *err)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    if (n_slots < 4 || n_slots > IBP_UC_MAX_SLOTS || (n_slots & (n_slots - 1)) ||
        arena_size < 64 || arena_size > IBP_UC_MAX_ARENA || arena_size % 4)
        return ibp_err_set(err, "counter file geometry %u slots, %u arena bytes is out of range",
                           n_slots, arena_size);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char tmp[4096 + 8], path[4096];
    int n = snprintf(path, sizeof path, "%s/c-%d-%lld%09ld%s", dir, (int)getpid(),
                     (long long)ts.tv_sec, ts.tv_nsec, IBP_COUNTER_SUFFIX);
    if (n < 0 || (size_t)n >= sizeof path - 5)
        return ibp_err_set(err, "%s: directory name too long", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    /* Locked before it has its name: a reader never sees an unlocked live file. */
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0)
        return ibp_err_set(err, "%s: %s", tmp, strerror(errno));
    c->mask = n_slots - 1;
    c->slot_limit = n_slots - n_slots / 4;
    /* Group-writable whatever the umask: the sidecar (another user, same
     * group) writes its harvest state into it and removes it. */
    bool ok = (fchmod(fd, 0660) == 0 || ibp_err_set(err, "chmod: %s", strerror(errno))) &&
              (flock(fd, LOCK_EX | LOCK_NB) == 0 ||
               ibp_err_set(err, "cannot lock: %s", strerror(errno)));
    ok = ok && map_new(fd, file_size_for(n_slots, arena_size), c, err);
    if (ok) {
        write_header(c, n_slots, arena_size, table_generation, now);
        ok = rename(tmp, path) == 0 || ibp_err_set(err, "rename: %s", strerror(errno));
    }
    if (!ok) {
        ibp_err_prefix(err, "%s", tmp);
        if (c->base)
            munmap(c->base, c->size);
        unlink(tmp);
        close(fd);
        memset(c, 0, sizeof *c);
        c->fd = -1;
        return false;
    }
    c->fd = fd;
    return true;
}

void ibp_counter_close(ibp_counter_t *c)
{
    if (c->base) {
        STORE_REL(&c->h->closed, 1u);
        munmap(c->base, c->size);
    }
    if (c->fd >= 0)
        close(c->fd);   /* drops the lock */
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

uint32_t ibp_counter_put_string(ibp_counter_t *c, const char *s, size_t len)
{
    uint32_t cap = c->h->arena_size;
    size_t need = 4 + ((len + 3) & ~(size_t)3);
    if (len > IBP_UC_MAX_STRING || need > cap - c->arena_used)
        return 0;
    uint32_t at = c->arena_used;
    uint32_t len32 = (uint32_t)len;
    memcpy(c->arena + at, &len32, 4);
    memcpy(c->arena + at + 4, s, len);   /* the padding is still zero: the file was */
    c->arena_used += (uint32_t)need;
    STORE_REL(&c->h->arena_used, c->arena_used);
    return at + 1;
}

static inline uint32_t key_hash(const ibp_uc_key_t *k)
{
    uint64_t x = ((uint64_t)k->domain << 32 | k->member) * 0x9E3779B97F4A7C15ULL;
    x ^= ((uint64_t)k->client << 32 | (uint64_t)k->day << 1 | k->family) * 0xC2B2AE3D27D4EB4FULL;
    return (uint32_t)(x >> 32) ^ (uint32_t)x;
}

static inline bool key_is(const ibp_uc_slot_t *s, const ibp_uc_key_t *k)
{
    return s->day == k->day && s->domain == k->domain && s->member == k->member &&
           s->client == k->client && s->family == k->family;
}

uint32_t ibp_counter_slot_of(ibp_counter_t *c, const ibp_uc_key_t *key)
{
    for (uint32_t i = key_hash(key) & c->mask;; i = (i + 1) & c->mask) {
        ibp_uc_slot_t *s = &c->slots[i];
        if (s->tag) {   /* only this process writes tags: a plain read is exact */
            if (key_is(s, key))
                return i;
            continue;
        }
        if (c->slots_used >= c->slot_limit)
            return IBP_UC_NO_SLOT;   /* a free slot always exists: limit < n_slots */
        s->day = key->day;
        s->domain = key->domain;
        s->member = key->member;
        s->client = key->client;
        s->family = key->family;
        STORE_REL(&s->tag, IBP_UC_TAG);
        c->slots_used++;
        STORE_RLX(&c->h->slots_used, c->slots_used);
        return i;
    }
}

bool ibp_counter_add(ibp_counter_t *c, const ibp_uc_key_t *key, uint64_t n)
{
    uint32_t slot = ibp_counter_slot_of(c, key);
    if (slot == IBP_UC_NO_SLOT)
        return false;
    ibp_counter_bump(c, slot, n);
    return true;
}

/* ---- reader ---------------------------------------------------------------- */

bool ibp_counter_attach(uint8_t *buf, size_t len, ibp_counter_view_t *v, ibp_err_t *err)
{
    memset(v, 0, sizeof *v);
    if (len < sizeof(ibp_uc_header_t))
        return ibp_err_set(err, "%zu bytes: shorter than a counter file header", len);
    ibp_uc_header_t *h = (ibp_uc_header_t *)buf;
    if (memcmp(h->magic, IBP_UC_MAGIC, 8) != 0)
        return ibp_err_set(err, "not a counter file (bad magic)");
    if (h->endian != IBP_UC_ENDIAN)
        return ibp_err_set(err, "counter file of another byte order");
    if (h->version != IBP_UC_VERSION)
        return ibp_err_set(err, "counter file version %u, this build reads %u", h->version,
                           IBP_UC_VERSION);
    if (h->header_size != sizeof *h || h->slot_size != sizeof(ibp_uc_slot_t))
        return ibp_err_set(err, "counter file header or slot size does not match version %u",
                           IBP_UC_VERSION);
    uint32_t n = h->n_slots;
    if (n < 4 || n > IBP_UC_MAX_SLOTS || (n & (n - 1)) || h->arena_size > IBP_UC_MAX_ARENA ||
        h->arena_size % 4)
        return ibp_err_set(err, "counter file geometry out of range (%u slots, %u arena bytes)",
                           n, h->arena_size);
    size_t want = file_size_for(n, h->arena_size);
    if (h->file_size != want || len != want)
        return ibp_err_set(err, "counter file is %zu bytes, its header says %llu (geometry "
                           "needs %zu)", len, (unsigned long long)h->file_size, want);
    v->base = buf;
    v->size = len;
    v->h = h;
    v->slots = (ibp_uc_slot_t *)(buf + sizeof *h);
    v->arena = (const uint8_t *)(v->slots + n);
    return true;
}

static bool text_at(const ibp_counter_view_t *v, uint32_t ref, uint32_t used, ibp_uc_text_t *t,
                    const char *what, ibp_err_t *err)
{
    if (ref == 0 || ref - 1 > used || used - (ref - 1) < 4 || (ref - 1) % 4)
        return ibp_err_set(err, "%s reference %u outside the arena's %u bytes", what, ref, used);
    uint32_t at = ref - 1, len;
    memcpy(&len, v->arena + at, 4);
    if (len > IBP_UC_MAX_STRING || len > used - at - 4)
        return ibp_err_set(err, "%s string of %u bytes at %u runs past the arena", what, len, at);
    t->s = (const char *)v->arena + at + 4;
    t->len = len;
    if (memchr(t->s, '\0', len))
        return ibp_err_set(err, "%s string at %u holds a NUL byte", what, at);
    return true;
}

ibp_uc_slot_state_t ibp_counter_slot(const ibp_counter_view_t *v, uint32_t i,
                                     ibp_uc_entry_t *e, ibp_err_t *err)
{
    ibp_uc_slot_t *s = &v->slots[i];
    uint32_t tag = LOAD_ACQ(&s->tag);
    if (tag == 0)
        return IBP_UC_FREE;
    if (tag != IBP_UC_TAG) {
        ibp_err_set(err, "slot %u: bad tag 0x%08x", i, tag);
        return IBP_UC_BAD;
    }
    /* After the tag: every string a complete key names is below this. */
    uint32_t used = LOAD_ACQ(&v->h->arena_used);
    if (used > v->h->arena_size) {
        ibp_err_set(err, "arena use %u beyond its %u bytes", used, v->h->arena_size);
        return IBP_UC_BAD;
    }
    *e = (ibp_uc_entry_t){.day = s->day, .family = s->family, .hits = LOAD_RLX(&s->hits),
                          .done = s->done, .pend = s->pend};
    bool ok = (e->family <= 1 || ibp_err_set(err, "family %u", e->family)) &&
              text_at(v, s->domain, used, &e->domain, "domain", err) &&
              text_at(v, s->member, used, &e->member, "member", err) &&
              text_at(v, s->client, used, &e->client, "client class", err) &&
              (e->done <= e->hits ||
               ibp_err_set(err, "%llu hits stored of %llu counted", (unsigned long long)e->done,
                           (unsigned long long)e->hits));
    if (!ok) {
        ibp_err_prefix(err, "slot %u", i);
        return IBP_UC_BAD;
    }
    return IBP_UC_USED;
}

/* ---- harvest --------------------------------------------------------------- */

static void adopt_pending(ibp_counter_view_t *v)
{
    for (uint32_t i = 0; i < v->h->n_slots; i++)
        if (LOAD_ACQ(&v->slots[i].tag) == IBP_UC_TAG)
            v->slots[i].done = v->slots[i].pend;
    v->h->done_seq = v->h->pend_seq;
}

bool ibp_counter_recover(ibp_counter_view_t *v, uint64_t stored_seq, ibp_err_t *err)
{
    ibp_uc_header_t *h = v->h;
    if (h->pend_seq == h->done_seq + 1) {
        if (stored_seq == h->pend_seq)
            adopt_pending(v);   /* stored, but the sidecar died before it noted so */
        else if (stored_seq == h->done_seq)
            h->pend_seq = h->done_seq;
        else
            goto mismatch;
        return true;
    }
    if (h->pend_seq != h->done_seq)
        return ibp_err_set(err, "harvest state corrupt (done %llu, pending %llu)",
                           (unsigned long long)h->done_seq, (unsigned long long)h->pend_seq);
    if (stored_seq == h->done_seq)
        return true;
mismatch:
    return ibp_err_set(err, "the store has %llu harvests of this file, the file says %llu "
                       "(%s): a store restored or replaced? the file is kept",
                       (unsigned long long)stored_seq, (unsigned long long)h->done_seq,
                       h->pend_seq != h->done_seq ? "one in flight" : "none in flight");
}

void ibp_counter_begin(ibp_counter_view_t *v)
{
    for (uint32_t i = 0; i < v->h->n_slots; i++) {
        ibp_uc_slot_t *s = &v->slots[i];
        if (LOAD_ACQ(&s->tag) == IBP_UC_TAG)
            s->pend = LOAD_RLX(&s->hits);
    }
    v->h->pend_seq = v->h->done_seq + 1;
}

void ibp_counter_commit(ibp_counter_view_t *v)
{
    adopt_pending(v);
}

void ibp_counter_abort(ibp_counter_view_t *v)
{
    v->h->pend_seq = v->h->done_seq;
}

bool ibp_counter_drained(const ibp_counter_view_t *v)
{
    for (uint32_t i = 0; i < v->h->n_slots; i++) {
        const ibp_uc_slot_t *s = &v->slots[i];
        uint32_t tag = LOAD_ACQ(&s->tag);
        if (tag && (tag != IBP_UC_TAG || s->done != LOAD_RLX(&s->hits)))
            return false;
    }
    return true;
}
