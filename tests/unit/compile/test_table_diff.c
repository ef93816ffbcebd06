/* ibp_table_diff (lib/compile/ibp_table_diff.c) on the real IBP config and
 * MaxMind's City test database: equal tables move nothing, a member down in
 * IPv4 moves only its own clients of A answers, and the diff the other way
 * round moves the same networks back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "ibp_table.h"
#include "ibp_table_diff.h"
#include "ibp_table_shift.h"

static const char *down_v4_json(const char *member)
{
    static char buf[512];
    snprintf(buf, sizeof buf,
             "{\"SiteResults\":[{\"CheckName\":\"ping\",\"IsIPv6\":false,\"Results\":["
             "{\"MemberName\":\"%s\",\"Status\":false,\"IsIPv6\":false,\"ErrorText\":\"down\","
             "\"Data\":{},\"Checktime\":\"2026-04-18T10:00:00Z\"}]}],"
             "\"DomainResults\":[],\"EndpointResults\":[]}", member);
    return buf;
}

typedef struct built {
    uint8_t *buf;
    size_t len;
    ibp_table_t t;
} built_t;

static void build(fixture_builder_t *fb, const char *results, built_t *out)
{
    ibp_map_stats_t stats;
    fixture_builder_build(fb, results, NULL, true, &out->buf, &out->len, &stats);
    ibp_err_t err;
    if (!ibp_table_attach(out->buf, out->len, &out->t, &err))
        fail_msg("%s", err.msg);
}

static void drop(built_t *b)
{
    ibp_table_close(&b->t);
    free(b->buf);
}

static void run_diff(const built_t *old_b, const built_t *new_b, ibp_diff_t *d)
{
    ibp_err_t err;
    if (!ibp_table_diff(&old_b->t, &new_b->t, d, &err))
        fail_msg("%s", err.msg);
}

static void equal_tables_move_nothing(void **state)
{
    (void)state;
    fixture_builder_t *fb = fixture_builder_new();
    built_t a, b;
    build(fb, NULL, &a);
    build(fb, NULL, &b);
    ibp_diff_t d;
    run_diff(&a, &b, &d);
    assert_int_equal(d.n_moves, 0);
    assert_int_equal(d.new_hosts.n + d.gone_hosts.n + d.new_members.n + d.gone_members.n
                     + d.new_zones.n + d.gone_zones.n, 0);
    bool v4_located = false, v6_located = false;   /* both families were counted */
    for (size_t i = 0; i + 1 < d.n_spaces; i += 2) {
        v4_located |= d.spaces[i].networks > 0;
        v6_located |= d.spaces[i + 1].networks > 0;
    }
    assert_true(v4_located && v6_located);
    ibp_table_diff_free(&d);
    drop(&a);
    drop(&b);
    fixture_builder_free(fb);
}

static const ibp_diff_move_t *find_reverse(const ibp_diff_t *d, const ibp_diff_move_t *m)
{
    for (size_t i = 0; i < d->n_moves; i++) {
        const ibp_diff_move_t *r = &d->moves[i];
        if (!strcmp(r->host, m->host) && r->family == m->family && r->client_v6 == m->client_v6
            && !strcmp(r->from, m->to) && !strcmp(r->to, m->from))
            return r;
    }
    return NULL;
}

static void a_member_down_moves_its_clients_and_back(void **state)
{
    (void)state;
    fixture_builder_t *fb = fixture_builder_new();
    built_t up, down;
    build(fb, NULL, &up);
    build(fb, down_v4_json("Stake Plus"), &down);
    ibp_diff_t there, back;
    run_diff(&up, &down, &there);
    run_diff(&down, &up, &back);
    assert_true(there.n_moves > 0);
    assert_int_equal(there.n_moves, back.n_moves);
    for (size_t i = 0; i < there.n_moves; i++) {
        const ibp_diff_move_t *m = &there.moves[i];
        assert_int_equal(m->family, 0);                   /* A answers only */
        assert_string_equal(m->from, there.moves[0].from); /* one member's clients */
        assert_string_not_equal(m->to, m->from);
        assert_true(m->moved.networks <= m->located->networks);
        assert_true(m->moved.addresses <= m->located->addresses);
        if (i)   /* largest share first */
            assert_true(m->moved.networks * (double)there.moves[i - 1].located->networks
                        <= there.moves[i - 1].moved.networks * (double)m->located->networks);
        const ibp_diff_move_t *r = find_reverse(&back, m);
        assert_non_null(r);
        assert_true(r->moved.networks == m->moved.networks
                    && r->moved.addresses == m->moved.addresses
                    && r->located->networks == m->located->networks
                    && r->located->addresses == m->located->addresses);
    }
    ibp_table_diff_free(&there);
    ibp_table_diff_free(&back);
    drop(&up);
    drop(&down);
    fixture_builder_free(fb);
}

/* The guard's measure: a member going down moves clients for health, which
 * never counts; equal tables move nothing at all. */
static void health_moves_are_no_shift(void **state)
{
    (void)state;
    fixture_builder_t *fb = fixture_builder_new();
    built_t up, down, up2;
    build(fb, NULL, &up);
    build(fb, down_v4_json("Stake Plus"), &down);
    build(fb, NULL, &up2);
    ibp_diff_t there, back, same;
    run_diff(&up, &down, &there);
    run_diff(&down, &up, &back);
    run_diff(&up, &up2, &same);
    ibp_shift_t s;
    ibp_table_shift(&there, &up.t, &down.t, &s);
    assert_true(s.percent == 0.0 && s.host == NULL);
    assert_true(s.health_percent > 0.0 && s.health_percent <= 100.0);
    ibp_table_shift(&back, &down.t, &up.t, &s);
    assert_true(s.percent == 0.0 && s.health_percent > 0.0);
    ibp_table_shift(&same, &up.t, &up2.t, &s);
    assert_true(s.percent == 0.0 && s.health_percent == 0.0);
    /* The same moves weighed against tables that both have the member up
     * (no health change between them) are all shift. */
    ibp_table_shift(&there, &up.t, &up2.t, &s);
    assert_true(s.percent > 0.0 && s.host && s.health_percent == 0.0);
    assert_string_equal(s.from, "Stake Plus");
    ibp_table_diff_free(&there);
    ibp_table_diff_free(&back);
    ibp_table_diff_free(&same);
    drop(&up);
    drop(&down);
    drop(&up2);
    fixture_builder_free(fb);
}

static void decimal_text(void **state)
{
    (void)state;
    char buf[48];
    assert_string_equal(ibp_u128_text(0, buf, sizeof buf), "0");
    assert_string_equal(ibp_u128_text((ibp_u128)1 << 32, buf, sizeof buf), "4294967296");
    assert_string_equal(ibp_u128_text(~(ibp_u128)0, buf, sizeof buf),
                        "340282366920938463463374607431768211455");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(equal_tables_move_nothing),
        cmocka_unit_test(a_member_down_moves_its_clients_and_back),
        cmocka_unit_test(health_moves_are_no_shift),
        cmocka_unit_test(decimal_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
