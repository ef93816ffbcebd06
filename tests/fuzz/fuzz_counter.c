/* A usage counter file (lib/usage/ibp_counter.h) as the sidecar reads it, on
 * arbitrary bytes: attach, then every slot, then the harvest steps the
 * sidecar runs on a file (recover against a few store sequences, begin,
 * commit, drained). The sanitizers check that no read leaves the file; on
 * top it asserts (abort) that a used slot's strings lie inside the arena and
 * that a committed harvest leaves done == the snapshot it took. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ibp_counter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_slots(const ibp_counter_view_t *v)
{
    const uint8_t *arena_end = v->arena + v->h->arena_size;
    for (uint32_t i = 0; i < v->h->n_slots; i++) {
        ibp_uc_entry_t e;
        ibp_err_t err;
        if (ibp_counter_slot(v, i, &e, &err) != IBP_UC_USED)
            continue;
        const ibp_uc_text_t *t[] = {&e.domain, &e.member, &e.client};
        for (int k = 0; k < 3; k++)
            if ((const uint8_t *)t[k]->s < v->arena ||
                (const uint8_t *)t[k]->s + t[k]->len > arena_end || t[k]->len > IBP_UC_MAX_STRING)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A writable, 8-aligned copy: the harvest writes its state into the file. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    ibp_counter_view_t v;
    ibp_err_t err;
    if (ibp_counter_attach(buf, size, &v, &err)) {
        read_slots(&v);
        static const uint64_t seqs[] = {0, 1, 2, UINT64_MAX};
        for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++)
            if (ibp_counter_recover(&v, v.h->done_seq + seqs[i], &err))
                break;
        ibp_counter_begin(&v);
        ibp_counter_commit(&v);
        for (uint32_t i = 0; i < v.h->n_slots; i++)
            if (v.slots[i].tag == IBP_UC_TAG && v.slots[i].done != v.slots[i].pend)
                abort();
        (void)ibp_counter_drained(&v);
        read_slots(&v);
    }
    free(buf);
    return 0;
}
