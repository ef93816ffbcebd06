/* Maps over the shared geo trie (lib/compile/ibp_maps.c): a map updated from
 * the previous table's after a health change routes exactly as one computed
 * afresh. (The coarse trie needs the full database to pay off: the scale
 * test checks it against its oracle.) */
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

static const char *down_json(const char *member, bool ipv6)
{
    static char buf[512];
    snprintf(buf, sizeof buf,
             "{\"SiteResults\":[{\"CheckName\":\"ping\",\"IsIPv6\":%s,\"Results\":["
             "{\"MemberName\":\"%s\",\"Status\":false,\"IsIPv6\":%s,\"ErrorText\":\"down\","
             "\"Data\":{},\"Checktime\":\"2026-04-18T10:00:00Z\"}]}],"
             "\"DomainResults\":[],\"EndpointResults\":[]}",
             ipv6 ? "true" : "false", member, ipv6 ? "true" : "false");
    return buf;
}

typedef struct built {
    uint8_t *buf;
    size_t len;
    ibp_table_t t;
    ibp_map_stats_t stats;
} built_t;

static void build(fixture_builder_t *fb, const char *results, const built_t *prev, bool geo_trie,
                  built_t *out)
{
    fixture_builder_build(fb, results, prev ? &prev->t : NULL, geo_trie, &out->buf, &out->len,
                          &out->stats);
    ibp_err_t err;
    if (!ibp_table_attach(out->buf, out->len, &out->t, &err) ||
        !ibp_table_check_derived(&out->t, &err))
        fail_msg("%s", err.msg);
}

static void drop(built_t *b)
{
    ibp_table_close(&b->t);
    free(b->buf);
}

static uint64_t next_random(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Random bits under the test database's located prefixes, or anywhere. */
static void random_client(uint64_t *rng, ibp_client_t *c)
{
    static const struct { const char *addr; unsigned keep; } bases[] = {
        {"81.2.69.0", 14}, {"2.125.160.0", 14}, {"89.160.20.0", 14}, {"216.160.83.0", 14},
        {"2001:218::", 6}, {"2a02:cf40::", 4}, {"::ffff:81.2.69.0", 15},
    };
    memset(c, 0, sizeof *c);
    uint64_t r = next_random(rng);
    size_t which = r % (sizeof bases / sizeof bases[0]);
    assert_true(ibp_addr_parse(bases[which].addr, strlen(bases[which].addr), &c->addr, &c->v4));
    unsigned first = (r >> 16) % 8 == 0 ? (c->v4 ? 12 : 0) : bases[which].keep;
    for (unsigned i = first; i < 16; i++)
        c->addr.b[i] = (uint8_t)next_random(rng);
}

/* Every host, both families, 5,000 clients: the same addresses, scope and how. */
static void same_routes(const ibp_table_t *a, const ibp_table_t *b)
{
    assert_int_equal(a->n[IBP_SEC_HOSTS], b->n[IBP_SEC_HOSTS]);
    uint64_t rng = 0x9E3779B97F4A7C15u;
    for (unsigned q = 0; q < 5000; q++) {
        ibp_client_t c;
        random_client(&rng, &c);
        for (uint32_t h = 0; h < a->n[IBP_SEC_HOSTS]; h++)
            for (unsigned fam = 0; fam < 2; fam++) {
                ibp_route_t ra, rb;
                ibp_table_route(a, &a->hosts[h], fam, &c, &ra);
                ibp_table_route(b, &b->hosts[h], fam, &c, &rb);
                bool same = ra.n == rb.n && ra.scope == rb.scope && ra.how == rb.how;
                for (unsigned i = 0; same && i < ra.n; i++)
                    same = !strcmp(ibp_table_str(a, a->targets[ra.target[i]].text),
                                   ibp_table_str(b, b->targets[rb.target[i]].text));
                if (!same)
                    fail_msg("client %u host %u family %u: %u answers scope %u how %d vs "
                             "%u answers scope %u how %d", q, h, fam, ra.n, ra.scope, ra.how,
                             rb.n, rb.scope, rb.how);
            }
    }
}

static void a_health_change_updates_maps_to_what_a_fresh_build_gives(void **state)
{
    (void)state;
    fixture_builder_t *fb = fixture_builder_new();
    built_t up, down, fresh, back;
    build(fb, NULL, NULL, true, &up);
    build(fb, down_json("Stake Plus", false), &up, true, &down);
    assert_true(down.stats.updated >= 1);          /* the update path ran */
    assert_int_equal(down.stats.computed, 0);
    build(fb, down_json("Stake Plus", false), NULL, true, &fresh);
    assert_int_equal(fresh.stats.updated + fresh.stats.reused, 0);
    same_routes(&down.t, &fresh.t);
    build(fb, NULL, &down, true, &back);           /* and back up */
    assert_true(back.stats.updated >= 1);
    same_routes(&back.t, &up.t);
    drop(&up);
    drop(&down);
    drop(&fresh);
    drop(&back);
    fixture_builder_free(fb);
}

/* A member going down and up again must not grow the answers without
 * bound: its answer keeps its number while it is away. */
static void toggling_a_member_keeps_the_numbering(void **state)
{
    (void)state;
    fixture_builder_t *fb = fixture_builder_new();
    built_t prev, next;
    build(fb, NULL, NULL, true, &prev);
    uint32_t answers0 = prev.t.policies[0].answer_count;
    for (int i = 0; i < 10; i++) {
        build(fb, i % 2 ? NULL : down_json("Stake Plus", false), &prev, true, &next);
        assert_int_equal(next.stats.computed, 0);
        drop(&prev);
        prev = next;
    }
    assert_true(prev.t.policies[0].answer_count <= answers0 + 1);
    drop(&prev);
    fixture_builder_free(fb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_health_change_updates_maps_to_what_a_fresh_build_gives),
        cmocka_unit_test(toggling_a_member_keeps_the_numbering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
