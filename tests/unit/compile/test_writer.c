/* The table builder (lib/compile/ibp_table_writer.c): borrowed sections are
 * copied into the table and left to their owner, reserved sections do not
 * move, and a table larger than one write(2) piece reaches the file whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ibp_table_writer.h"

static const ibp_tbl_header_t no_fields;

static const uint8_t *section_of(const uint8_t *table, int s, size_t *size)
{
    const ibp_tbl_header_t *h = (const ibp_tbl_header_t *)table;
    *size = h->sections[s].size;
    return table + h->sections[s].offset;
}

static void a_borrowed_section_is_copied_and_left_to_its_owner(void **state)
{
    (void)state;
    uint32_t nodes[6] = {1, 2, 3, 4, 5, 6};
    uint32_t copy[6];
    memcpy(copy, nodes, sizeof nodes);
    ibp_tb_t tb;
    ibp_tb_init(&tb);
    ibp_tb_borrow(&tb, IBP_SEC_NODES, nodes, 3);
    assert_false(tb.oom);
    uint8_t *out;
    size_t len;
    ibp_err_t err;
    assert_true(ibp_tb_finish(&tb, &no_fields, &out, &len, &err));
    size_t size;
    const uint8_t *sec = section_of(out, IBP_SEC_NODES, &size);
    assert_int_equal(size, sizeof nodes);
    assert_memory_equal(sec, nodes, sizeof nodes);
    assert_memory_equal(nodes, copy, sizeof nodes);   /* untouched, and not freed (ASan) */
    free(out);
    ibp_tb_free(&tb);
}

static void a_borrowed_section_takes_no_more(void **state)
{
    (void)state;
    uint32_t nodes[2] = {7, 8};
    ibp_tb_t tb;
    ibp_tb_init(&tb);
    ibp_tb_borrow(&tb, IBP_SEC_NODES, nodes, 1);
    assert_int_equal(ibp_tb_push(&tb, IBP_SEC_NODES, 1), IBP_TBL_NONE);
    assert_true(tb.oom);
    uint8_t *out = NULL;
    size_t len;
    ibp_err_t err;
    assert_false(ibp_tb_finish(&tb, &no_fields, &out, &len, &err));
    assert_null(out);
    ibp_tb_free(&tb);   /* frees what it owns, not nodes */

    ibp_tb_init(&tb);   /* nor borrows over content of its own */
    assert_int_not_equal(ibp_tb_push(&tb, IBP_SEC_NODES, 1), IBP_TBL_NONE);
    ibp_tb_borrow(&tb, IBP_SEC_NODES, nodes, 1);
    assert_true(tb.oom);
    ibp_tb_free(&tb);
}

static void a_reserved_section_does_not_move(void **state)
{
    (void)state;
    ibp_tb_t tb;
    ibp_tb_init(&tb);
    ibp_tb_reserve(&tb, IBP_SEC_CHOICES, 100000);
    assert_false(tb.oom);
    uint32_t first = ibp_tb_push(&tb, IBP_SEC_CHOICES, 10);
    const void *at = ibp_tb_at(&tb, IBP_SEC_CHOICES, first);
    for (int i = 0; i < 9999; i++)
        assert_int_not_equal(ibp_tb_push(&tb, IBP_SEC_CHOICES, 10), IBP_TBL_NONE);
    assert_ptr_equal(ibp_tb_at(&tb, IBP_SEC_CHOICES, first), at);
    ibp_tb_reserve(&tb, IBP_SEC_CHOICES, (size_t)IBP_TBL_NONE);   /* beyond any table */
    assert_true(tb.oom);
    ibp_tb_free(&tb);
}

static void fill_some_sections(ibp_tb_t *tb)
{
    ibp_tb_init(tb);
    ibp_tb_str(tb, "abc", 3);   /* 5 bytes of strings: padding follows */
    uint32_t i = ibp_tb_push(tb, IBP_SEC_CHOICES, 3);
    memcpy(ibp_tb_at(tb, IBP_SEC_CHOICES, i), (uint32_t[]){7, 8, 9}, 12);
    ibp_tb_push(tb, IBP_SEC_GEO, 1);
}

/* A reused buffer full of old bytes gives the very table a fresh one does:
 * padding zeroed, checksum equal. Too small or far too large: fresh. */
static void a_reused_buffer_gives_the_same_table(void **state)
{
    (void)state;
    ibp_tb_t tb;
    ibp_err_t err;
    uint8_t *fresh, *out;
    size_t fresh_len, len, cap;
    fill_some_sections(&tb);
    assert_true(ibp_tb_finish(&tb, &no_fields, &fresh, &fresh_len, &err));
    static const size_t caps[] = {0, 1, 2, 4};   /* x fresh_len: 0 = too small */
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        size_t reuse_cap = caps[k] ? caps[k] * fresh_len : fresh_len - 8;
        uint8_t *reuse = malloc(reuse_cap);
        assert_non_null(reuse);
        memset(reuse, 0xAA, reuse_cap);
        fill_some_sections(&tb);
        assert_true(ibp_tb_finish_into(&tb, &no_fields, reuse, reuse_cap, &out, &len, &cap,
                                       &err));
        assert_int_equal(len, fresh_len);
        assert_memory_equal(out, fresh, len);
        bool reused = caps[k] == 1 || caps[k] == 2;
        assert_int_equal(cap, reused ? reuse_cap : fresh_len);
        if (reused)
            assert_ptr_equal(out, reuse);   /* else freed (ASan: no leak) */
        free(out);
    }
    free(fresh);
}

/* ibp_write_all writes in pieces of 1 MiB: every byte of a table of several
 * pieces and a partial one must arrive, in order. */
static void a_table_of_many_write_pieces_arrives_whole(void **state)
{
    (void)state;
    char dir[] = "/tmp/ibp-writer-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/t.tbl", dir);
    size_t len = (3u << 20) + 12345;
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i * 2654435761u >> 13);
    ibp_err_t err;
    assert_true(ibp_table_write_file(path, buf, len, &err));
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *back = malloc(len + 1);
    assert_non_null(back);
    assert_int_equal(fread(back, 1, len + 1, f), len);
    fclose(f);
    assert_memory_equal(back, buf, len);
    free(back);
    free(buf);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_borrowed_section_is_copied_and_left_to_its_owner),
        cmocka_unit_test(a_borrowed_section_takes_no_more),
        cmocka_unit_test(a_reserved_section_does_not_move),
        cmocka_unit_test(a_reused_buffer_gives_the_same_table),
        cmocka_unit_test(a_table_of_many_write_pieces_arrives_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
