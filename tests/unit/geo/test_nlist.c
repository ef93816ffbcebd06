/* Network lists and tries: merging into supernets, partitions, walks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "ibp_nlist.h"
#include "ibp_table_format.h"

static void append_ok(ibp_nlist_t *l, unsigned len, uint32_t val)
{
    ibp_err_t err;
    assert_true(ibp_nlist_append(l, len, val, &err));
}

static void siblings_with_equal_values_merge(void **state)
{
    (void)state;
    ibp_nlist_t l;
    ibp_nlist_init(&l);
    append_ok(&l, 2, 7);   /* 00 */
    append_ok(&l, 2, 7);   /* 01 -> merges into 0/1 */
    assert_int_equal(l.n, 1);
    assert_int_equal(l.len[0], 1);
    append_ok(&l, 1, 7);   /* 1/1 -> merges into /0 */
    assert_int_equal(l.n, 1);
    assert_int_equal(l.len[0], 0);
    assert_true(l.full);
    ibp_nlist_free(&l);
}

static void merge_cascades_but_not_across_parents(void **state)
{
    (void)state;
    ibp_nlist_t l;
    ibp_nlist_init(&l);
    append_ok(&l, 2, 1);   /* 00: A */
    append_ok(&l, 2, 2);   /* 01: B */
    append_ok(&l, 2, 2);   /* 10: B, not the sibling of 01: no merge */
    append_ok(&l, 3, 2);   /* 110: B */
    append_ok(&l, 3, 2);   /* 111: B -> 11 -> with 10 -> 1/1 */
    assert_int_equal(l.n, 3);
    assert_int_equal(l.len[2], 1);
    assert_int_equal(l.val[2], 2);
    assert_true(l.full);
    ibp_nlist_free(&l);
}

static void misaligned_and_overfull_appends_fail(void **state)
{
    (void)state;
    ibp_nlist_t l;
    ibp_err_t err;
    ibp_nlist_init(&l);
    append_ok(&l, 3, 1);
    assert_false(ibp_nlist_append(&l, 2, 1, &err));   /* starts at 001: not /2-aligned */
    assert_non_null(strstr(err.msg, "aligned"));
    ibp_nlist_free(&l);
    ibp_nlist_init(&l);
    append_ok(&l, 0, 1);
    assert_false(ibp_nlist_append(&l, 1, 1, &err));
    assert_false(ibp_nlist_append(&l, 129, 1, &err));
    ibp_nlist_free(&l);
}

/* A walk with no uniform nodes and the identity as answers: the leaf's value. */
static uint32_t walk(const ibp_trie_t *t, const uint8_t a[16], unsigned *depth)
{
    static const uint32_t identity[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    uint64_t none[4] = {0};
    uint32_t node_class[256] = {0};
    assert_true(t->node_count <= 256);
    if (t->root & IBP_TBL_LEAF) {
        *depth = 0;
        return t->root & ~IBP_TBL_LEAF;
    }
    return ibp_map_walk_from(t->nodes, node_class, none, identity, t->node_count, 16, t->root, 0,
                             a, depth);
}

static void trie_walk_finds_leaf_and_depth(void **state)
{
    (void)state;
    ibp_nlist_t l;
    ibp_trie_t t;
    ibp_err_t err;
    ibp_nlist_init(&l);
    append_ok(&l, 2, 1);   /* 00 */
    append_ok(&l, 2, 2);   /* 01 */
    append_ok(&l, 1, 3);   /* 1 */
    assert_true(ibp_trie_build(&l, &t, &err));
    assert_int_equal(t.node_count, 2);      /* leaves - 1: no redundant split */
    uint8_t a[16] = {0x40};                  /* 01... */
    unsigned depth;
    uint32_t ref = walk(&t, a, &depth);
    assert_int_equal(ref, 2);
    assert_int_equal(depth, 2);
    a[0] = 0xff;
    ref = walk(&t, a, &depth);
    assert_int_equal(ref, 3);
    assert_int_equal(depth, 1);
    ibp_trie_free(&t);
    ibp_nlist_free(&l);
}

static void incomplete_list_is_rejected(void **state)
{
    (void)state;
    ibp_nlist_t l;
    ibp_trie_t t;
    ibp_err_t err;
    ibp_nlist_init(&l);
    append_ok(&l, 1, 1);
    assert_false(ibp_trie_build(&l, &t, &err));
    assert_non_null(strstr(err.msg, "cover"));
    ibp_nlist_free(&l);
}

static void deep_host_route_in_ipv4_space(void **state)
{
    (void)state;
    /* ::/96 split down to one /128 (an IPv4 /32) and its complement. */
    ibp_nlist_t l;
    ibp_trie_t t;
    ibp_err_t err;
    ibp_nlist_init(&l);
    append_ok(&l, 128, 5);
    for (unsigned len = 128; len >= 1; len--)
        append_ok(&l, len, 9);
    assert_true(l.full);
    assert_true(ibp_trie_build(&l, &t, &err));
    uint8_t a[16] = {0};
    unsigned depth;
    assert_int_equal(walk(&t, a, &depth), 5);
    assert_int_equal(depth, 128);
    a[15] = 1;
    assert_int_equal(walk(&t, a, &depth), 9);
    assert_int_equal(depth, 128);
    ibp_trie_free(&t);
    ibp_nlist_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(siblings_with_equal_values_merge),
        cmocka_unit_test(merge_cascades_but_not_across_parents),
        cmocka_unit_test(misaligned_and_overfull_appends_fail),
        cmocka_unit_test(trie_walk_finds_leaf_and_depth),
        cmocka_unit_test(incomplete_list_is_rejected),
        cmocka_unit_test(deep_host_route_in_ipv4_space),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
