/* The routing table: validation of every byte, name lookup, routing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "ibp_table.h"
#include "ibp_table_writer.h"

typedef struct fix {
    uint8_t *buf;
    size_t len;
    ibp_table_t t;
} fix_t;

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof *f);
    fixture_attach(NULL, NULL, &f->buf, &f->len, &f->t);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    if (!f)
        return 0;   /* setup failed and said why */
    free(f->buf);
    free(f);
    return 0;
}

static uint8_t *copy_of(const fix_t *f)
{
    uint8_t *c = malloc(f->len);
    memcpy(c, f->buf, f->len);
    return c;
}

static void expect_reject(const uint8_t *buf, size_t len, const char *why)
{
    ibp_table_t t;
    ibp_err_t err;
    assert_false(ibp_table_attach(buf, len, &t, &err));
    if (why && !strstr(err.msg, why))
        fail_msg("expected '%s' in: %s", why, err.msg);
    assert_null(t.base);
}

static void truncated_tables_are_rejected(void **state)
{
    fix_t *f = *state;
    size_t cuts[] = {0, 1, 16, sizeof(ibp_tbl_header_t) - 1, sizeof(ibp_tbl_header_t),
                     f->len / 2, f->len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        expect_reject(f->buf, cuts[i], "truncated");
}

static void every_sampled_bit_flip_is_detected(void **state)
{
    fix_t *f = *state;
    uint8_t *c = copy_of(f);
    for (size_t pos = 0; pos < f->len; pos += 1 + f->len / 997) {
        for (int bit = 0; bit < 8; bit += 3) {
            c[pos] ^= (uint8_t)(1u << bit);
            expect_reject(c, f->len, NULL);
            c[pos] ^= (uint8_t)(1u << bit);
        }
    }
    free(c);
}

/* Structural faults behind a valid checksum: what a writer bug would produce. */
static void reseal(uint8_t *c, size_t len)
{
    ibp_tbl_header_t h;
    memcpy(&h, c, sizeof h);
    h.checksum = 0;
    memcpy(c, &h, sizeof h);
    h.checksum = ibp_table_checksum(c, len);
    memcpy(c, &h, sizeof h);
}

static void *section(uint8_t *c, enum ibp_tbl_section s)
{
    const ibp_tbl_header_t *h = (const ibp_tbl_header_t *)c;
    return c + h->sections[s].offset;
}

static void bad_indices_behind_a_good_checksum_are_rejected(void **state)
{
    fix_t *f = *state;
    uint8_t *c = copy_of(f);
    ((ibp_tbl_name_t *)section(c, IBP_SEC_NAMES))[0].zone = 999999;
    reseal(c, f->len);
    expect_reject(c, f->len, "name 0 is malformed");
    free(c);

    c = copy_of(f);
    uint32_t *nodes = section(c, IBP_SEC_NODES);
    nodes[2] = 0;   /* node 1 pointing back at the root: a cycle */
    reseal(c, f->len);
    expect_reject(c, f->len, "backwards");
    free(c);

    c = copy_of(f);
    ibp_tbl_answer_t *a = section(c, IBP_SEC_ANSWERS);
    a[1].n = 1;
    a[1].target[0] = 0xFFFFFF;
    reseal(c, f->len);
    expect_reject(c, f->len, "answer");
    free(c);

    c = copy_of(f);
    ibp_tbl_header_t *h = (ibp_tbl_header_t *)c;
    h->sections[IBP_SEC_RRS].offset = f->len;   /* section outside the file */
    reseal(c, f->len);
    expect_reject(c, f->len, "section");
    free(c);
}

static void other_versions_and_files_are_refused(void **state)
{
    fix_t *f = *state;
    uint8_t *c = copy_of(f);
    ((ibp_tbl_header_t *)c)->version = 99;
    reseal(c, f->len);
    expect_reject(c, f->len, "version 99");
    memcpy(c, "GARBAGE!", 8);
    expect_reject(c, f->len, "magic");
    free(c);
}

static void names_are_found_case_insensitively(void **state)
{
    fix_t *f = *state;
    const ibp_tbl_name_t *a = ibp_table_find(&f->t, "polkadot.dotters.network", 24);
    const ibp_tbl_name_t *b = ibp_table_find(&f->t, "PolkaDot.DOTTERS.network.", 25);
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_int_not_equal(a->host, IBP_TBL_NONE);
    assert_null(ibp_table_find(&f->t, "nothere.dotters.network", 23));
    assert_null(ibp_table_find(&f->t, "", 0));
    const ibp_tbl_name_t *apex = ibp_table_find(&f->t, "dotters.network", 15);
    assert_non_null(apex);
    assert_int_not_equal(apex->apex_zone, IBP_TBL_NONE);
    assert_int_equal(f->t.zones[apex->apex_zone].id, 333188168);   /* IBP's CRC-32 id */
}

static const char *route_member(const fix_t *f, const char *ip, unsigned *scope)
{
    const ibp_tbl_name_t *nm = ibp_table_find(&f->t, "polkadot.dotters.network", 24);
    ibp_client_t c = {0};
    assert_true(ibp_addr_parse(ip, strlen(ip), &c.addr, &c.v4));
    ibp_route_t r;
    ibp_table_route(&f->t, &f->t.hosts[nm->host], 0, &c, &r);
    *scope = r.scope;
    if (r.n != 1)
        return "(none)";
    const ibp_tbl_target_t *tg = &f->t.targets[r.target[0]];
    return ibp_table_str(&f->t, f->t.members[tg->member].key);
}

static void ipv4_in_ipv6_forms_route_as_ipv4(void **state)
{
    fix_t *f = *state;
    unsigned s4, s;
    const char *m4 = route_member(f, "81.2.69.142", &s4);
    assert_string_equal(m4, "Amforc");
    assert_true(s4 > 0 && s4 <= 32);
    static const struct { const char *ip; unsigned offset; } forms[] = {
        {"::ffff:81.2.69.142", 96}, {"::ffff:0:5102:458e", 96}, {"64:ff9b::5102:458e", 96},
        {"2001:0:1:2:3:4:aefd:ba71", 96}, {"2002:5102:458e::1", 16},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        assert_string_equal(route_member(f, forms[i].ip, &s), m4);
        assert_int_equal(s, s4 + forms[i].offset);
    }
}

static void unlocated_clients_spread_stably(void **state)
{
    fix_t *f = *state;
    unsigned s1, s2;
    const char *a = route_member(f, "10.1.2.3", &s1);
    const char *b = route_member(f, "10.1.2.200", &s2);
    assert_string_equal(a, b);   /* same /24, same member */
    assert_true(s1 >= 24);
    assert_string_not_equal(a, "(none)");
}

static void written_file_reopens_and_missing_file_is_named(void **state)
{
    fix_t *f = *state;
    char path[] = "/tmp/ibpdns-test-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    ibp_err_t err;
    assert_true(ibp_table_write_file(path, f->buf, f->len, &err));
    ibp_table_t t;
    assert_true(ibp_table_open(path, &t, &err));
    assert_int_equal(t.h->generation, 1);
    ibp_table_close(&t);
    unlink(path);
    assert_false(ibp_table_open(path, &t, &err));
    assert_non_null(strstr(err.msg, path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(truncated_tables_are_rejected),
        cmocka_unit_test(every_sampled_bit_flip_is_detected),
        cmocka_unit_test(bad_indices_behind_a_good_checksum_are_rejected),
        cmocka_unit_test(other_versions_and_files_are_refused),
        cmocka_unit_test(names_are_found_case_insensitively),
        cmocka_unit_test(ipv4_in_ipv6_forms_route_as_ipv4),
        cmocka_unit_test(unlocated_clients_spread_stably),
        cmocka_unit_test(written_file_reopens_and_missing_file_is_named),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
