/* Counter files (lib/usage/ibp_counter.c): what the writer counts is what a
 * reader reads, a full file says so instead of dropping a key, the harvest
 * steps reconcile with the store's sequence after a crash at any point, and
 * corrupt files give errors, never rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ibp_counter.h"

typedef struct fx {
    char dir[64];
    ibp_counter_t c;
    char path[512];
    ibp_counter_view_t v;
    uint8_t *map;
    size_t map_len;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/ibp-counter-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    ibp_err_t err;
    assert_true(ibp_counter_create(f->dir, 16, 256, 7, 1700000000, &f->c, &err));
    *state = f;
    return 0;
}

static void unmap(fx_t *f)
{
    if (f->map)
        munmap(f->map, f->map_len);
    f->map = NULL;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    unmap(f);
    if (f->c.base)
        ibp_counter_close(&f->c);
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(p);
    }
    closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The one file in the directory, mapped as the sidecar maps it. */
static void view(fx_t *f)
{
    unmap(f);
    DIR *d = opendir(f->dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        assert_non_null(strstr(e->d_name, IBP_COUNTER_SUFFIX));
        assert_null(strstr(e->d_name, ".tmp"));
        snprintf(f->path, sizeof f->path, "%s/%s", f->dir, e->d_name);
        n++;
    }
    closedir(d);
    assert_int_equal(n, 1);
    int fd = open(f->path, O_RDWR);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    f->map_len = (size_t)st.st_size;
    f->map = mmap(NULL, f->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    ibp_err_t err;
    assert_true(ibp_counter_attach(f->map, f->map_len, &f->v, &err));
}

static ibp_uc_key_t key(fx_t *f, const char *domain, const char *member, uint32_t day,
                        uint32_t fam)
{
    ibp_uc_key_t k = {.day = day, .family = fam};
    k.domain = ibp_counter_put_string(&f->c, domain, strlen(domain));
    k.member = ibp_counter_put_string(&f->c, member, strlen(member));
    k.client = ibp_counter_put_string(&f->c, "DE\tGermany\tAS3320\tDTAG", 22);
    assert_true(k.domain && k.member && k.client);
    return k;
}

/* Sums the hits of every used slot whose domain is d. */
static uint64_t hits_of(fx_t *f, const char *d, uint64_t *done)
{
    uint64_t sum = 0, sum_done = 0;
    for (uint32_t i = 0; i < f->v.h->n_slots; i++) {
        ibp_uc_entry_t e;
        ibp_err_t err;
        ibp_uc_slot_state_t st = ibp_counter_slot(&f->v, i, &e, &err);
        assert_int_not_equal(st, IBP_UC_BAD);
        if (st == IBP_UC_USED && e.domain.len == strlen(d) &&
            !memcmp(e.domain.s, d, e.domain.len)) {
            sum += e.hits;
            sum_done += e.done;
        }
    }
    if (done)
        *done = sum_done;
    return sum;
}

static void what_is_counted_is_read_back(void **state)
{
    fx_t *f = *state;
    ibp_uc_key_t a = key(f, "rpc.example", "Amforc", 20000, 0);
    ibp_uc_key_t b = key(f, "rpc.other", "Dwellir", 20000, 1);
    for (int i = 0; i < 5; i++)
        assert_true(ibp_counter_add(&f->c, &a, 1));
    assert_true(ibp_counter_add(&f->c, &b, 3));
    view(f);
    assert_int_equal(hits_of(f, "rpc.example", NULL), 5);
    assert_int_equal(hits_of(f, "rpc.other", NULL), 3);
    assert_int_equal(f->v.h->table_generation, 7);
    assert_int_equal(f->v.h->slots_used, 2);
    /* Counting goes on while a reader has the file: it sees the new hits. */
    assert_true(ibp_counter_add(&f->c, &a, 2));
    assert_int_equal(hits_of(f, "rpc.example", NULL), 7);
}

static void a_live_writer_holds_its_lock_until_it_closes(void **state)
{
    fx_t *f = *state;
    view(f);
    int fd = open(f->path, O_RDWR);
    assert_int_equal(flock(fd, LOCK_SH | LOCK_NB), -1);
    ibp_counter_close(&f->c);
    assert_int_equal(flock(fd, LOCK_SH | LOCK_NB), 0);
    close(fd);
    assert_int_equal(f->v.h->closed, 1);
}

static void a_full_file_refuses_new_keys_but_counts_old_ones(void **state)
{
    fx_t *f = *state;
    ibp_uc_key_t k = key(f, "d", "m", 1, 0);
    int taken = 0;
    for (uint32_t day = 1; day < 100; day++) {
        k.day = day;
        if (!ibp_counter_add(&f->c, &k, 1))
            break;
        taken++;
    }
    assert_int_equal(taken, 12);   /* 16 slots, three quarters */
    k.day = 5;
    assert_true(ibp_counter_add(&f->c, &k, 1));
    /* The arena too says when it is full. */
    char big[200] = {0};
    memset(big, 'x', sizeof big - 1);
    uint32_t refs = 0;
    while (ibp_counter_put_string(&f->c, big, strlen(big)))
        refs++;
    assert_true(refs < 2);
    view(f);
    assert_int_equal(hits_of(f, "d", NULL), 13);
}

static void harvest_steps_reconcile_with_the_store(void **state)
{
    fx_t *f = *state;
    ibp_uc_key_t k = key(f, "d", "m", 1, 0);
    assert_true(ibp_counter_add(&f->c, &k, 10));
    view(f);
    ibp_err_t err;
    uint64_t done;
    assert_true(ibp_counter_recover(&f->v, 0, &err));
    /* A harvest stored: the next one starts from what it stored. */
    ibp_counter_begin(&f->v);
    assert_int_equal(f->v.h->pend_seq, 1);
    assert_true(ibp_counter_add(&f->c, &k, 5));   /* after the snapshot */
    ibp_counter_commit(&f->v);
    assert_int_equal(hits_of(f, "d", &done), 15);
    assert_int_equal(done, 10);
    assert_false(ibp_counter_drained(&f->v));
    /* Crash after the store committed harvest 2, before the file noted it. */
    ibp_counter_begin(&f->v);
    assert_true(ibp_counter_recover(&f->v, 2, &err));
    hits_of(f, "d", &done);
    assert_int_equal(done, 15);
    assert_int_equal(f->v.h->done_seq, 2);
    assert_true(ibp_counter_drained(&f->v));
    /* Crash before the store committed harvest 3: it is forgotten. */
    assert_true(ibp_counter_add(&f->c, &k, 1));
    ibp_counter_begin(&f->v);
    assert_true(ibp_counter_recover(&f->v, 2, &err));
    hits_of(f, "d", &done);
    assert_int_equal(done, 15);
    assert_int_equal(f->v.h->pend_seq, 2);
    /* An abort forgets the snapshot too. */
    ibp_counter_begin(&f->v);
    ibp_counter_abort(&f->v);
    assert_int_equal(f->v.h->pend_seq, f->v.h->done_seq);
    /* A store that does not know the file's harvests: refused, kept. */
    assert_false(ibp_counter_recover(&f->v, 0, &err));
    assert_non_null(strstr(err.msg, "the file is kept"));
    assert_false(ibp_counter_recover(&f->v, 5, &err));
}

static void corrupt_files_give_errors(void **state)
{
    fx_t *f = *state;
    ibp_uc_key_t k = key(f, "d", "m", 1, 0);
    assert_true(ibp_counter_add(&f->c, &k, 1));
    view(f);
    uint8_t *copy = malloc(f->map_len);
    ibp_counter_view_t v;
    ibp_err_t err;
    struct { size_t at; uint32_t value; const char *msg; } cases[] = {
        {0, 0x58585858, "bad magic"},
        {offsetof(ibp_uc_header_t, version), 9, "version 9"},
        {offsetof(ibp_uc_header_t, n_slots), 17, "geometry"},
        {offsetof(ibp_uc_header_t, arena_size), 1u << 30, "geometry"},
        {offsetof(ibp_uc_header_t, file_size), 12, "header says"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(copy, f->map, f->map_len);
        memcpy(copy + cases[c].at, &cases[c].value, 4);
        assert_false(ibp_counter_attach(copy, f->map_len, &v, &err));
        assert_non_null(strstr(err.msg, cases[c].msg));
    }
    assert_false(ibp_counter_attach(f->map, f->map_len - 1, &v, &err));
    assert_false(ibp_counter_attach(f->map, 10, &v, &err));
    /* Slots: references outside the arena, odd families, stored > counted. */
    uint32_t used_slot = 0;
    for (uint32_t i = 0; i < 16; i++)
        if (f->v.slots[i].tag)
            used_slot = i;
    size_t slot_at = sizeof(ibp_uc_header_t) + used_slot * sizeof(ibp_uc_slot_t);
    struct { size_t field; uint64_t value; int width; const char *msg; } bad[] = {
        {offsetof(ibp_uc_slot_t, tag), 7, 4, "bad tag"},
        {offsetof(ibp_uc_slot_t, domain), 100000, 4, "outside the arena"},
        {offsetof(ibp_uc_slot_t, member), 2, 4, "outside the arena"},
        {offsetof(ibp_uc_slot_t, client), 0, 4, "outside the arena"},
        {offsetof(ibp_uc_slot_t, family), 2, 4, "family 2"},
        {offsetof(ibp_uc_slot_t, done), 99, 8, "99 hits stored of 1"},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        memcpy(copy, f->map, f->map_len);
        memcpy(copy + slot_at + bad[c].field, &bad[c].value, (size_t)bad[c].width);
        assert_true(ibp_counter_attach(copy, f->map_len, &v, &err));
        ibp_uc_entry_t e;
        assert_int_equal(ibp_counter_slot(&v, used_slot, &e, &err), IBP_UC_BAD);
        assert_non_null(strstr(err.msg, bad[c].msg));
    }
    /* A string whose length runs past what the arena holds. */
    memcpy(copy, f->map, f->map_len);
    uint32_t huge = 5000;
    memcpy(copy + sizeof(ibp_uc_header_t) + 16 * sizeof(ibp_uc_slot_t), &huge, 4);
    assert_true(ibp_counter_attach(copy, f->map_len, &v, &err));
    ibp_uc_entry_t e;
    assert_int_equal(ibp_counter_slot(&v, used_slot, &e, &err), IBP_UC_BAD);
    free(copy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(what_is_counted_is_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(a_live_writer_holds_its_lock_until_it_closes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_full_file_refuses_new_keys_but_counts_old_ones, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(harvest_steps_reconcile_with_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupt_files_give_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
