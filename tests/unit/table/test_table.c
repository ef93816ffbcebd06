/* The routing table: validation of every byte, name lookup, routing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "ibp_table.h"
#include "ibp_table_writer.h"

typedef fixture_table_t fix_t;

static int setup(void **state)
{
    *state = fixture_table_new(sizeof(fix_t), NULL);
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
    if (ibp_table_attach(buf, len, &t, &err)) {
        bool derived = ibp_table_check_derived(&t, &err);
        ibp_table_close(&t);
        memset(&t, 0, sizeof t);
        assert_false(derived);
    }
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

    c = copy_of(f);
    ((ibp_tbl_header_t *)c)->spread_v4_bits = 1000;   /* would become an ECS scope */
    reseal(c, f->len);
    expect_reject(c, f->len, "spread prefix /1000");
    free(c);

    c = copy_of(f);
    ((ibp_tbl_header_t *)c)->flags = 0x80;   /* a flag of some later writer */
    reseal(c, f->len);
    expect_reject(c, f->len, "header flags 0x80");
    free(c);

    c = copy_of(f);
    ((ibp_tbl_header_t *)c)->reserved[1] = 7;
    reseal(c, f->len);
    expect_reject(c, f->len, "reserved header word 1 is 7");
    free(c);

    c = copy_of(f);   /* a Routing.Map text past the strings */
    ((ibp_tbl_header_t *)c)->map_text = 0xFFFFFFF0u;
    reseal(c, f->len);
    expect_reject(c, f->len, "Routing.Map text out of range");
    free(c);

    c = copy_of(f);
    ((ibp_tbl_header_t *)c)->acme_budget_ms = IBP_ACME_BUDGET_MS_MAX + 1;
    reseal(c, f->len);
    expect_reject(c, f->len, "ACME budget 1501 ms is over the 1500 ms");
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
    /* Every name, in upper case, with every tail length the names have. */
    unsigned tails = 0;
    for (uint32_t i = 0; i < f->t.n[IBP_SEC_NAMES]; i++) {
        const ibp_tbl_name_t *nm = &f->t.names[i];
        char upper[IBP_NAME_BUF];
        for (uint32_t k = 0; k <= nm->name_len; k++) {
            char ch = ibp_table_str(&f->t, nm->name)[k];
            upper[k] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
        }
        assert_ptr_equal(ibp_table_find(&f->t, upper, nm->name_len), nm);
        tails |= 1u << (nm->name_len % 8);
    }
    assert_int_equal(tails, 0xFF);
}

static const char *route_on(const ibp_table_t *t, const char *ip, unsigned *scope)
{
    const ibp_tbl_name_t *nm = ibp_table_find(t, "polkadot.dotters.network", 24);
    ibp_client_t c = {0};
    assert_true(ibp_addr_parse(ip, strlen(ip), &c.addr, &c.v4));
    ibp_route_t r;
    ibp_table_route(t, &t->hosts[nm->host], 0, &c, &r);
    *scope = r.scope;
    if (r.n != 1)
        return "(none)";
    const ibp_tbl_target_t *tg = &t->targets[r.target[0]];
    return ibp_table_str(t, t->members[tg->member].key);
}

static const char *route_member(const fix_t *f, const char *ip, unsigned *scope)
{
    return route_on(&f->t, ip, scope);
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

/* xorshift64: a fixed sequence, so a failure reproduces. */
static uint64_t next_random(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Addresses where the test database has data, in every form a client may
 * take: random bits under a located prefix, or anywhere. */
static void random_client(uint64_t *rng, ibp_client_t *c)
{
    static const struct { const char *addr; unsigned keep; } bases[] = {
        {"81.2.69.0", 14}, {"2.125.160.0", 14}, {"89.160.20.0", 14}, {"216.160.83.0", 14},
        {"2001:218::", 6}, {"2a02:cf40::", 4}, {"10.0.0.0", 13},
        /* IPv4 embedded in IPv6: mapped, NAT64, Teredo (81.2.69.x obfuscated), 6to4 */
        {"::ffff:81.2.69.0", 15}, {"64:ff9b::5102:4500", 15}, {"2001:0:1:2:3:4:aefd:ba00", 15},
        {"2002:5102:4500::", 4},
    };
    memset(c, 0, sizeof *c);
    uint64_t r = next_random(rng);
    size_t which = r % (sizeof bases / sizeof bases[0]);
    const char *base = bases[which].addr;
    assert_true(ibp_addr_parse(base, strlen(base), &c->addr, &c->v4));
    unsigned first = bases[which].keep;   /* randomise below the located part */
    if ((r >> 16) % 8 == 0)
        first = c->v4 ? 12 : 0;           /* or anywhere at all */
    for (unsigned i = first; i < 16; i++)
        c->addr.b[i] = (uint8_t)next_random(rng);
    if ((r >> 24) % 4 == 0) {
        c->has_resolver = true;
        c->resolver_v4 = true;
        const char *res = (r >> 28) % 2 ? "81.2.69.160" : "10.9.9.9";
        assert_true(ibp_addr_parse(res, strlen(res), &c->resolver, &c->resolver_v4));
    }
}

static void drop_indexes(uint8_t *c, size_t len)
{
    ibp_tbl_map_t *m = section(c, IBP_SEC_MAPS);
    const ibp_tbl_header_t *h = (const ibp_tbl_header_t *)c;
    for (uint32_t i = 0; i < h->sections[IBP_SEC_MAPS].count; i++)
        m[i].index_v4 = m[i].index_v6 = IBP_TBL_NONE;
    reseal(c, len);
}

static unsigned count_indexes(const ibp_table_t *t)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < t->n[IBP_SEC_MAPS]; i++)
        n += (t->maps[i].index_v4 != IBP_TBL_NONE) + (t->maps[i].index_v6 != IBP_TBL_NONE);
    return n;
}

static void trie_indexes_route_exactly_like_the_walk(void **state)
{
    (void)state;
    uint8_t *indexed, *plain;
    size_t len;
    fixture_build_indexed(NULL, NULL, 1, &indexed, &len);
    plain = malloc(len);
    memcpy(plain, indexed, len);
    drop_indexes(plain, len);
    ibp_table_t ti, tp;
    ibp_err_t err;
    assert_true(ibp_table_attach(indexed, len, &ti, &err));
    assert_true(ibp_table_attach(plain, len, &tp, &err));
    assert_true(count_indexes(&ti) >= 2);
    assert_int_equal(count_indexes(&tp), 0);
    uint64_t rng = 0x9E3779B97F4A7C15u;
    unsigned located = 0, embedded = 0;
    for (unsigned q = 0; q < 20000; q++) {
        ibp_client_t c;
        random_client(&rng, &c);
        uint32_t v4bits;
        embedded += !c.v4 && ibp_addr_v4_embedded(&c.addr, &v4bits) == 96;
        for (uint32_t h = 0; h < ti.n[IBP_SEC_HOSTS]; h += 7) {
            for (unsigned fam = 0; fam < 2; fam++) {
                ibp_route_t a, b;
                ibp_table_route(&ti, &ti.hosts[h], fam, &c, &a);
                ibp_table_route(&tp, &tp.hosts[h], fam, &c, &b);
                if (memcmp(&a, &b, sizeof a))
                    fail_msg("client %u, host %u, family %u: indexed answer %u scope %u, "
                             "walked answer %u scope %u", q, h, fam, a.answer, a.scope,
                             b.answer, b.scope);
                located += a.how == IBP_HOW_NEAREST;
            }
        }
    }
    assert_true(located > 20000);   /* the sample did reach the geo data */
    assert_true(embedded > 2000);   /* and the walks that start at bit 96 from IPv6 */
    free(indexed);
    free(plain);
}

static void a_trie_index_that_disagrees_is_rejected(void **state)
{
    (void)state;
    uint8_t *buf;
    size_t len;
    fixture_build_indexed(NULL, NULL, 1, &buf, &len);
    ibp_tbl_map_t *m = section(buf, IBP_SEC_MAPS);
    while (m->index_v4 == IBP_TBL_NONE)
        m++;   /* count_indexes() above proved there is one */
    uint32_t *entry = (uint32_t *)section(buf, IBP_SEC_INDEX) + m->index_v4 + 0x5102;   /* 81.2/16 */
    uint32_t saved = *entry;
    *entry ^= 1u << IBP_IDX_DEPTH_SHIFT;   /* a leaf one level off, or another node */
    reseal(buf, len);
    expect_reject(buf, len, "trie index");
    *entry = saved;
    m->index_v6 = 0xFFFFFF00u;
    reseal(buf, len);
    expect_reject(buf, len, "trie index");
    free(buf);
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

/* The geo trie of a copy of the fixture without indexes (an index would
 * reject a reshaped trie for its own reason). */
static uint32_t *geo_nodes(uint8_t *c, size_t len, uint32_t *count)
{
    drop_indexes(c, len);
    *count = ((const ibp_tbl_header_t *)c)->sections[IBP_SEC_NODES].count;
    return section(c, IBP_SEC_NODES);
}

/* A chain deeper than 128 bits once made `dump` overflow its stack buffer,
 * and nodes shared between parents (a DAG) made it print 2^100 lines: each
 * passed the old "children point forward" check. */
/* Usage's client classes against MaxMind's own test data (the JSON sources
 * of GeoIP2-City-Test and GeoLite2-ASN-Test): country from the City
 * database, ASN from the ASN database, the IPv4-in-IPv6 forms as IPv4. */
static void client_classes_give_country_and_asn(void **state)
{
    fix_t *f = *state;
    ibp_table_t *t = &f->t;
    static const struct {
        const char *ip, *text;
    } cases[] = {
        {"89.160.20.112", "SE\tSweden\tAS29518\tBredband2 AB"},
        {"::ffff:89.160.20.112", "SE\tSweden\tAS29518\tBredband2 AB"},
        {"149.101.100.1", "US\tUnited States\tAS6167\tCELLCO-PART"},
        {"81.2.69.142", "GB\tUnited Kingdom\t\t"},
        {"216.160.83.56", "US\tUnited States\tAS209\t"},
        {"1.128.0.1", "??\tUnknown\tAS1221\tTelstra Pty Ltd"},
        {"2a02:cf40::1", "NO\tNorway\t\t"},
        {"10.0.0.1", "??\tUnknown\t\t"},
    };
    assert_non_null(t->client);
    assert_true(ibp_table_client_classes(t) > 8);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ibp_client_t c;
        assert_true(ibp_client_parse(cases[i].ip, strlen(cases[i].ip), NULL, 0, &c));
        uint32_t len, cls = ibp_table_client_class(t, &c);
        const char *text = ibp_table_client_text(t, cls, &len);
        char got[256];
        snprintf(got, sizeof got, "%.*s", (int)len, text);
        if (strcmp(got, cases[i].text))
            fail_msg("%s: %s, want %s", cases[i].ip, got, cases[i].text);
    }
    uint32_t len;
    const char *unknown = ibp_table_client_text(t, 0, &len);
    assert_int_equal(len, 12);
    assert_memory_equal(unknown, "??\tUnknown\t\t", 12);   /* class 0 */
}

static void bad_client_classes_are_rejected(void **state)
{
    fix_t *f = *state;
    uint8_t *c = copy_of(f);
    uint32_t *nodes = section(c, IBP_SEC_CLIENT_NODES);
    nodes[2] = 0;   /* node 1 pointing back at the root */
    reseal(c, f->len);
    expect_reject(c, f->len, "client-class trie node 1 points outside the trie or backwards");
    free(c);

    c = copy_of(f);
    char *text = section(c, IBP_SEC_CLIENT_TEXT);
    *(char *)memchr(text, '\t', 8) = ' ';   /* a class of three columns */
    reseal(c, f->len);
    expect_reject(c, f->len, "columns, not 4");
    free(c);

    c = copy_of(f);
    uint32_t *offs = section(c, IBP_SEC_CLIENT_OFFS);
    offs[1] = 0xFFFFFF;
    reseal(c, f->len);
    expect_reject(c, f->len, "client class 0: text out of order");
    free(c);

    c = copy_of(f);
    ((ibp_tbl_client_t *)section(c, IBP_SEC_CLIENT))->n_classes = 1;   /* leaves beyond it */
    reseal(c, f->len);
    expect_reject(c, f->len, "client-class trie's header is malformed");
    free(c);
}

/* The client-class index (tables whose client trie reaches the index
 * threshold): the same classes as the walk; entries out of range refused;
 * an entry in range but not the trie's refused by the derived check. */
static void the_client_class_index_is_checked(void **state)
{
    (void)state;
    uint8_t *buf;
    size_t len;
    fixture_build_indexed(NULL, NULL, 1, &buf, &len);
    ibp_table_t t;
    ibp_err_t err;
    assert_true(ibp_table_attach(buf, len, &t, &err));
    assert_non_null(t.client_index);
    assert_true(ibp_table_check_derived(&t, &err));
    static const char *const ips[] = {"89.160.20.112", "::ffff:89.160.20.112", "2a02:cf40::1",
                                      "1.128.0.1", "10.0.0.1", "::1"};
    ibp_table_t walk = t;
    walk.client_index = NULL;   /* the same table without its index */
    for (size_t i = 0; i < sizeof ips / sizeof ips[0]; i++) {
        ibp_client_t c;
        assert_true(ibp_client_parse(ips[i], strlen(ips[i]), NULL, 0, &c));
        assert_int_equal(ibp_table_client_class(&t, &c), ibp_table_client_class(&walk, &c));
    }
    const ibp_tbl_header_t *h = (const ibp_tbl_header_t *)buf;
    uint32_t *index = (uint32_t *)(buf + h->sections[IBP_SEC_CLIENT_INDEX].offset);
    uint32_t was = index[IBP_TBL_INDEX_SIZE + 7];
    index[IBP_TBL_INDEX_SIZE + 7] = 0xFFFFFF;
    ((ibp_tbl_header_t *)buf)->checksum = 0;
    ((ibp_tbl_header_t *)buf)->checksum = ibp_table_checksum(buf, len);
    assert_false(ibp_table_attach(buf, len, &t, &err));
    assert_non_null(strstr(err.msg, "client-class index entry 65543 points outside the trie"));
    /* in range, but not what the trie says */
    index[IBP_TBL_INDEX_SIZE + 7] = was == (IBP_TBL_LEAF | 0) ? IBP_TBL_LEAF | 1 : IBP_TBL_LEAF | 0;
    ((ibp_tbl_header_t *)buf)->checksum = 0;
    ((ibp_tbl_header_t *)buf)->checksum = ibp_table_checksum(buf, len);
    assert_true(ibp_table_attach(buf, len, &t, &err));
    assert_false(ibp_table_check_derived(&t, &err));
    assert_non_null(strstr(err.msg, "client-class index disagrees with its trie"));
    free(buf);
}

static void tries_that_are_not_trees_are_rejected(void **state)
{
    fix_t *f = *state;
    uint8_t *c = copy_of(f);
    uint32_t n;
    uint32_t *nodes = geo_nodes(c, f->len, &n);
    assert_true(n > 130);
    for (uint32_t k = 0; k + 1 < n; k++) {
        nodes[2 * k] = k + 1;
        nodes[2 * k + 1] = IBP_TBL_LEAF;
    }
    nodes[2 * (n - 1)] = nodes[2 * (n - 1) + 1] = IBP_TBL_LEAF;
    reseal(c, f->len);
    expect_reject(c, f->len, "deeper than 128 bits");

    /* Both children of every node are the next node: 100 levels, 2^100 paths. */
    for (uint32_t k = 0; k + 1 < n; k++)
        nodes[2 * k] = nodes[2 * k + 1] = k + 1;
    reseal(c, f->len);
    expect_reject(c, f->len, "reached twice");

    /* A node nobody points to is not part of the tree either. */
    memcpy(c, f->buf, f->len);
    nodes = geo_nodes(c, f->len, &n);
    for (uint32_t k = 0; k < 2 * n; k++)
        if (nodes[k] == 1)
            nodes[k] = IBP_TBL_LEAF;
    reseal(c, f->len);
    expect_reject(c, f->len, "geo trie node 1 is not reached from the root");

    memcpy(c, f->buf, f->len);
    drop_indexes(c, f->len);
    ((ibp_tbl_map_t *)section(c, IBP_SEC_MAPS))->v4_depth = 95;
    reseal(c, f->len);
    expect_reject(c, f->len, "roots are not where the trie puts them");
    free(c);
}

/* What a wrong derived part would do is route differently without a fault:
 * each is recomputed on load. */
static void derived_parts_that_disagree_are_rejected(void **state)
{
    fix_t *f = *state;
    uint8_t *c = copy_of(f);
    const ibp_tbl_header_t *h = (const ibp_tbl_header_t *)c;
    uint64_t *uniform = section(c, IBP_SEC_UNIFORM);
    uniform[0] ^= 1u;   /* the root: uniform or not */
    reseal(c, f->len);
    expect_reject(c, f->len, "uniform bits disagree");

    memcpy(c, f->buf, f->len);
    uint32_t *node_class = section(c, IBP_SEC_NODE_CLASS);
    node_class[0] ^= 1u;
    reseal(c, f->len);
    expect_reject(c, f->len, "node_class is not its leftmost class");

    memcpy(c, f->buf, f->len);
    const ibp_tbl_map_t *m = section(c, IBP_SEC_MAPS);
    uint32_t *choices = section(c, IBP_SEC_CHOICES);
    choices[m->choice_first + 3] = m->answer_count;
    reseal(c, f->len);
    expect_reject(c, f->len, "map 0: class 3 has no answer");

    memcpy(c, f->buf, f->len);
    ((ibp_tbl_policy_t *)section(c, IBP_SEC_POLICIES))->map = h->sections[IBP_SEC_MAPS].count;
    reseal(c, f->len);
    expect_reject(c, f->len, "policy 0 is malformed");
    free(c);
}

typedef struct tiling {
    unsigned __int128 covered;   /* wraps to 0 when the space is covered once */
    size_t n;
    bool whole;                  /* a single /0 */
    uint8_t next[16];            /* where the next network must start */
    bool in_order;
} tiling_t;

static void count_leaf(void *ctx, const uint8_t addr[16], unsigned len, uint32_t answer)
{
    (void)answer;
    tiling_t *t = ctx;
    assert_true(len <= 128);
    t->in_order &= !memcmp(addr, t->next, 16);
    t->n++;
    if (len == 0) {
        t->whole = true;
        return;
    }
    unsigned __int128 size = (unsigned __int128)1 << (128 - len), start = 0;
    for (int i = 0; i < 16; i++)
        start = start << 8 | addr[i];
    t->covered += size;
    start += size;
    for (int i = 15; i >= 0; i--, start >>= 8)
        t->next[i] = (uint8_t)start;
}

/* Every policy's networks tile the address space once, in address order. */
static void leaf_walk_covers_each_trie_once(void **state)
{
    fix_t *f = *state;
    for (uint32_t i = 0; i < f->t.n[IBP_SEC_POLICIES]; i++) {
        tiling_t t = {.in_order = true};
        ibp_table_foreach_leaf(&f->t, i, count_leaf, &t);
        assert_true(t.in_order);
        if (t.whole)
            assert_int_equal(t.n, 1);
        else
            assert_true(t.covered == 0 && t.n > 1);
    }
}

/* A loaded table is a private copy: truncating or rewriting its file in
 * place (an operator's cp) once raised SIGBUS in the coprocess. */
static void an_open_table_survives_its_file_being_rewritten(void **state)
{
    fix_t *f = *state;
    char path[] = "/tmp/ibpdns-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    ibp_err_t err;
    assert_true(ibp_table_write_file(path, f->buf, f->len, &err));
    ibp_table_t t;
    assert_true(ibp_table_open(path, &t, &err));
    unsigned scope_before;
    const char *before = route_on(&t, "81.2.69.142", &scope_before);
    assert_int_equal(truncate(path, 0), 0);
    unsigned n_names = 0;
    for (uint32_t i = 0; i < t.n[IBP_SEC_NAMES]; i++)
        n_names += ibp_table_find(&t, ibp_table_str(&t, t.names[i].name), t.names[i].name_len) != NULL;
    assert_int_equal(n_names, t.n[IBP_SEC_NAMES]);
    uint8_t *junk = malloc(f->len);
    memset(junk, 0xA5, f->len);
    FILE *fp = fopen(path, "r+");
    assert_non_null(fp);
    assert_int_equal(fwrite(junk, 1, f->len, fp), f->len);
    fclose(fp);
    ibp_client_t c = {0};
    assert_true(ibp_addr_parse("81.2.69.142", 11, &c.addr, &c.v4));
    for (uint32_t h = 0; h < t.n[IBP_SEC_HOSTS]; h++) {
        ibp_route_t r;
        ibp_table_route(&t, &t.hosts[h], 0, &c, &r);
        assert_true(r.n <= IBP_TBL_MAX_ANSWERS);
    }
    unsigned scope_after;
    assert_string_equal(route_on(&t, "81.2.69.142", &scope_after), before);
    assert_int_equal(scope_after, scope_before);
    ibp_table_close(&t);
    assert_false(ibp_table_open(path, &t, &err));   /* the junk itself is refused */
    free(junk);
    close(fd);
    unlink(path);
}

static void touch(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fclose(fp);
}

static bool exists_in(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* A publish killed between create and rename left routing.tbl.tmp.<pid>
 * forever; on a small disk that blocked every later publish. A temporary
 * is stale when no writer holds its lock, whoever has its pid now. */
/* A mapped table (the coprocess's way) shares its file's pages: bytes
 * rewritten in place reach the lookups, which must then stay inside the
 * table whatever they read. Each big section in turn gets junk of four
 * kinds, with the uniform bits cleared so that walks go all the way down
 * through the junk (set bits would stop them at the first node); then the
 * whole file. */
static void route_junk(const ibp_table_t *t, uint64_t *rng)
{
    for (unsigned q = 0; q < 500; q++) {
        ibp_client_t c;
        random_client(rng, &c);
        for (uint32_t h = 0; h < t->n[IBP_SEC_HOSTS]; h++) {
            ibp_route_t r;
            ibp_table_route(t, &t->hosts[h], q & 1, &c, &r);
            assert_true(r.n <= IBP_TBL_MAX_ANSWERS);
            for (unsigned i = 0; i < r.n; i++)
                assert_true(r.target[i] < t->n[IBP_SEC_TARGETS]);
        }
    }
}

static void junk_range(int fd, uint64_t off, uint64_t len, int pattern, uint64_t *rng)
{
    uint8_t *junk = malloc(len ? len : 1);
    for (uint64_t i = 0; i < len; i++)
        junk[i] = pattern == 0 ? 0x00 : pattern == 1 ? 0xFF : pattern == 2 ? 0xA5
                                                                          : (uint8_t)next_random(rng);
    assert_int_equal(pwrite(fd, junk, len, (off_t)off), (ssize_t)len);
    free(junk);
}

static void a_mapped_table_rewritten_in_place_never_reads_outside(void **state)
{
    (void)state;
    uint8_t *buf;
    size_t len;
    fixture_build_indexed(NULL, NULL, 1, &buf, &len);   /* indexes too */
    const ibp_tbl_header_t *h = (const ibp_tbl_header_t *)buf;
    static const int big[] = {IBP_SEC_NODES, IBP_SEC_INDEX, IBP_SEC_NODE_CLASS, IBP_SEC_CHOICES,
                              IBP_SEC_UNIFORM, IBP_SEC_CLIENT_NODES, IBP_SEC_CLIENT_TEXT,
                              IBP_SEC_CLIENT_OFFS, IBP_SEC_CLIENT_INDEX, -1};
    char path[] = "/tmp/ibpdns-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    uint64_t rng = 0x1234567u;
    for (int k = 0; k < (int)(sizeof big / sizeof big[0]); k++) {
        for (int pattern = 0; pattern < 4; pattern++) {
            assert_int_equal(pwrite(fd, buf, len, 0), (ssize_t)len);
            int rfd = open(path, O_RDONLY);
            assert_true(rfd >= 0);
            ibp_table_t t;
            ibp_err_t err;
            assert_true(ibp_table_map_fd(rfd, path, &t, &err));
            assert_true(t.shared);
            if (big[k] < 0) {
                junk_range(fd, 0, len, pattern, &rng);
            } else {
                const ibp_tbl_section_ent_t *u = &h->sections[IBP_SEC_UNIFORM];
                if (big[k] != IBP_SEC_UNIFORM)
                    junk_range(fd, u->offset, u->size, 0, &rng);
                junk_range(fd, h->sections[big[k]].offset, h->sections[big[k]].size, pattern,
                           &rng);
            }
            route_junk(&t, &rng);
            ibp_table_close(&t);
            close(rfd);
        }
    }
    close(fd);
    unlink(path);
    free(buf);
}

static void stale_temporaries_of_dead_writers_are_removed(void **state)
{
    (void)state;
    char dir[] = "/tmp/ibpdns-stale-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char own[64], path[512];
    snprintf(own, sizeof own, "routing.tbl.tmp.%ld", (long)getpid());
    const char *stale[] = {own, "routing.tbl.tmp.2147483646", "routing.tbl.tmp.1"};
    const char *keep[] = {"routing.tbl", "routing.tbl.tmp.", "other.tmp.5",
                          "routing.tbl.tmp.12x", "routing.tblx.tmp.2147483646",
                          "routing.tbl.tmp.+2147483646", "routing.tbl.tmp.02147483646",
                          "routing.tbl.tmp.42949672960", "routing.tbl.tmp. 2147483646",
                          "routing.tbl.tmp.77"};
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++)
        touch(dir, stale[i]);
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        touch(dir, keep[i]);
    /* .tmp.77 is being written: its writer holds the lock. */
    snprintf(path, sizeof path, "%s/routing.tbl.tmp.77", dir);
    int busy = open(path, O_RDWR);
    struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    assert_int_equal(fcntl(busy, F_OFD_SETLK, &l), 0);
    snprintf(path, sizeof path, "%s/routing.tbl", dir);
    size_t removed = 0;
    ibp_err_t err;
    assert_true(ibp_table_remove_stale_temps(path, &removed, &err));
    assert_int_equal(removed, 3);
    close(busy);
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++)
        assert_false(exists_in(dir, stale[i]));
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        assert_true(exists_in(dir, keep[i]));
        snprintf(path, sizeof path, "%s/%s", dir, keep[i]);
        unlink(path);
    }
    rmdir(dir);
    assert_false(ibp_table_remove_stale_temps("/nonexistent-dir/routing.tbl", &removed, &err));
    assert_non_null(strstr(err.msg, "/nonexistent-dir: cannot list"));
    assert_false(ibp_table_remove_stale_temps("/tmp/", &removed, &err));
    assert_non_null(strstr(err.msg, "names a directory"));
}

/* Routing.Nets: the table carries them past its sections for the
 * explanations, the answers carry the net flags; both are validated. */
static void nets_are_carried_and_validated(void **state)
{
    (void)state;
    uint8_t *buf;
    size_t len;
    fixture_build_routing("{\"Nets\": {\"81.2.69.0/24\": [\"Gatotech\"], "
                          "\"81.0.0.0/8\": \"auto\"}}", &buf, &len);
    fix_t f = {.buf = buf, .len = len};
    ibp_err_t err;
    assert_true(ibp_table_attach(buf, len, &f.t, &err));
    assert_int_equal(f.t.n_nets, 2);
    assert_true(ibp_table_check_derived(&f.t, &err));
    unsigned scope;
    assert_string_equal(route_on(&f.t, "81.2.69.142", &scope), "Gatotech");
    uint8_t a[16] = {[12] = 81, [13] = 2, [14] = 69, [15] = 142};
    const ibp_tbl_net_t *n = ibp_table_net_of(&f.t, a);
    assert_non_null(n);
    assert_string_equal(ibp_table_str(&f.t, n->text), "81.2.69.0/24");
    a[13] = 3;   /* 81.3.69.142: only the auto /8 */
    assert_string_equal(ibp_table_str(&f.t, ibp_table_net_of(&f.t, a)->text), "81.0.0.0/8");
    a[12] = 82;
    assert_null(ibp_table_net_of(&f.t, a));
    ibp_table_close(&f.t);

    const ibp_tbl_header_t *h = (const ibp_tbl_header_t *)buf;
    uint8_t *c = copy_of(&f);
    ((ibp_tbl_header_t *)c)->n_nets = (uint32_t)(len / sizeof(ibp_tbl_net_t));
    reseal(c, len);
    expect_reject(c, len, "the nets lie outside the file");
    free(c);

    c = copy_of(&f);
    ibp_tbl_net_t *nets = (ibp_tbl_net_t *)(c + (size_t)h->nets_offset8 * 8);
    ibp_tbl_net_t first = nets[0];
    nets[0] = nets[1];
    nets[1] = first;
    reseal(c, len);
    expect_reject(c, len, "net 1 is out of order");
    free(c);

    c = copy_of(&f);
    nets = (ibp_tbl_net_t *)(c + (size_t)h->nets_offset8 * 8);
    nets[1].addr[15] = 1;   /* host bits */
    reseal(c, len);
    expect_reject(c, len, "net 1 is malformed");
    free(c);

    c = copy_of(&f);
    nets = (ibp_tbl_net_t *)(c + (size_t)h->nets_offset8 * 8);
    nets[0].text = 0xFFFFFF;
    reseal(c, len);
    expect_reject(c, len, "net 0 is malformed");
    free(c);

    /* An answer flagged both net and net-fallback, or net with an override. */
    c = copy_of(&f);
    ibp_tbl_answer_t *ans = section(c, IBP_SEC_ANSWERS);
    uint32_t k = 0;
    while (!(ans[k].flags & IBP_ANSF_NET))
        k++;
    ans[k].flags |= IBP_ANSF_NET_FALLBACK;
    reseal(c, len);
    expect_reject(c, len, "answer");
    ans[k].flags = IBP_ANSF_NET | IBP_ANSF_OVERRIDE;
    reseal(c, len);
    expect_reject(c, len, "answer");
    ans[k].flags = 0x40;
    reseal(c, len);
    expect_reject(c, len, "answer");
    free(c);
    free(buf);
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
        cmocka_unit_test(trie_indexes_route_exactly_like_the_walk),
        cmocka_unit_test(a_trie_index_that_disagrees_is_rejected),
        cmocka_unit_test(tries_that_are_not_trees_are_rejected),
        cmocka_unit_test(client_classes_give_country_and_asn),
        cmocka_unit_test(bad_client_classes_are_rejected),
        cmocka_unit_test(the_client_class_index_is_checked),
        cmocka_unit_test(derived_parts_that_disagree_are_rejected),
        cmocka_unit_test(leaf_walk_covers_each_trie_once),
        cmocka_unit_test(written_file_reopens_and_missing_file_is_named),
        cmocka_unit_test(an_open_table_survives_its_file_being_rewritten),
        cmocka_unit_test(a_mapped_table_rewritten_in_place_never_reads_outside),
        cmocka_unit_test(stale_temporaries_of_dead_writers_are_removed),
        cmocka_unit_test(nets_are_carried_and_validated),
    };
    return cmocka_run_group_tests(tests, setup, fixture_table_free);
}
