/* ibpdns-table diff: see ibp_table_diff.h for what is counted and how. */
#include "ibp_table_diff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V4_DEPTH 96u   /* IPv4 clients live under ::/96 */

/* One table's side of a host/family: its map and each answer's label id. */
typedef struct side {
    const ibp_table_t *t;
    const ibp_tbl_policy_t *p;
    ibp_map_view_t v;
    uint32_t *label_id;    /* per answer of the policy */
} side_t;

/* The host/family being compared: labels interned over both sides, so an
 * answer is compared with one integer per network. */
typedef struct pair {
    side_t old_s, new_s;
    char **labels;
    size_t n_labels, cap_labels;
    uint32_t unlocated, undef;   /* label ids, or IBP_TBL_NONE */
    ibp_diff_t *d;
    size_t first_move;     /* this pair's moves start here in d->moves */
    size_t cap_moves;
    ibp_diff_space_t *space;   /* [0] IPv4 clients, [1] IPv6 */
    const char *host;
    unsigned family;
} pair_t;

const char *ibp_u128_text(ibp_u128 x, char *buf, size_t cap)
{
    char digits[48];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + (unsigned)(x % 10));
        x /= 10;
    } while (x && n < sizeof digits);
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++)
        buf[i] = digits[n - 1 - i];
    buf[i] = '\0';
    return buf;
}

/* ---- labels ------------------------------------------------------------- */

static bool append(char *buf, size_t cap, size_t *len, const char *s)
{
    int w = snprintf(buf + *len, cap - *len, "%s", s);
    if (w < 0 || (size_t)w >= cap - *len)
        return false;
    *len += (size_t)w;
    return true;
}

static const char *target_name(const ibp_table_t *t, uint32_t target, char *tmp, size_t cap)
{
    if (target >= t->n[IBP_SEC_TARGETS])
        return NULL;
    const ibp_tbl_target_t *tg = &t->targets[target];
    if (tg->member == IBP_TBL_NONE) {
        snprintf(tmp, cap, "override:%.4s", tg->cc);
        return tmp;
    }
    if (tg->member >= t->n[IBP_SEC_MEMBERS])
        return NULL;
    return ibp_table_member_label(t, tg->member);
}

/* The label of an answer (ibp_table_diff.h), or false if it does not fit. */
static bool answer_label(const ibp_table_t *t, const ibp_tbl_answer_t *a, char *buf, size_t cap)
{
    static const char *const kinds[] = {"none", "unlocated", "none", "undef"};
    size_t len = 0;
    char tmp[32];
    buf[0] = '\0';
    if (a->kind != IBP_ANS_TARGETS && a->kind != IBP_ANS_FAILOVER_SPREAD)
        return append(buf, cap, &len, a->kind <= IBP_ANS_UNDEF ? kinds[a->kind] : "?");
    if (a->n == 0 || a->n > IBP_TBL_MAX_ANSWERS)
        return append(buf, cap, &len, "none");
    bool spread = a->kind == IBP_ANS_FAILOVER_SPREAD;
    if (spread && !append(buf, cap, &len, "failover-spread:"))
        return false;
    for (unsigned i = 0; i < (spread ? a->n : 1u); i++) {
        const char *name = target_name(t, a->target[i], tmp, sizeof tmp);
        if (!name || (i && !append(buf, cap, &len, ",")) || !append(buf, cap, &len, name))
            return false;
    }
    return true;
}

static bool intern(pair_t *pr, const char *label, uint32_t *id, ibp_err_t *err)
{
    for (size_t i = 0; i < pr->n_labels; i++)
        if (!strcmp(pr->labels[i], label)) {
            *id = (uint32_t)i;
            return true;
        }
    if (pr->n_labels == pr->cap_labels) {
        size_t cap = pr->cap_labels ? 2 * pr->cap_labels : 16;
        char **grown = realloc(pr->labels, cap * sizeof *grown);
        if (!grown)
            return ibp_err_set(err, "out of memory");
        pr->labels = grown;
        pr->cap_labels = cap;
    }
    if (!(pr->labels[pr->n_labels] = strdup(label)))
        return ibp_err_set(err, "out of memory");
    *id = (uint32_t)pr->n_labels++;
    return true;
}

static bool label_side(pair_t *pr, side_t *s, ibp_err_t *err)
{
    const ibp_tbl_policy_t *p = s->p;
    if (p->answer_first > s->t->n[IBP_SEC_ANSWERS]
        || p->answer_count > s->t->n[IBP_SEC_ANSWERS] - p->answer_first)
        return ibp_err_set(err, "policy answers out of range");
    s->label_id = calloc(p->answer_count ? p->answer_count : 1, sizeof *s->label_id);
    if (!s->label_id)
        return ibp_err_set(err, "out of memory");
    char label[512];
    for (uint32_t a = 0; a < p->answer_count; a++)
        if (!answer_label(s->t, &s->t->answers[p->answer_first + a], label, sizeof label)
            || !intern(pr, label, &s->label_id[a], err))
            return err->msg[0] ? false : ibp_err_set(err, "answer %u: bad targets", a);
    return true;
}

/* ---- the joint walk ----------------------------------------------------- */

/* Where a map's walk stops at ref: its answer, or IBP_TBL_NONE to go on. */
static bool stop_at(const side_t *s, uint32_t ref, uint32_t *answer, ibp_err_t *err)
{
    uint32_t cls;
    *answer = IBP_TBL_NONE;
    if (ref & IBP_TBL_LEAF) {
        cls = ref & ~IBP_TBL_LEAF;
    } else {
        if (ref >= s->v.n_nodes)
            return ibp_err_set(err, "trie node %u out of range", ref);
        if (!ibp_uniform_bit(s->v.uniform, ref))
            return true;
        cls = s->v.node_class[ref];
    }
    if (cls >= s->v.n_classes || s->v.choices[cls] >= s->p->answer_count)
        return ibp_err_set(err, "class %u out of range", cls);
    *answer = s->v.choices[cls];
    return true;
}

static bool add_move(pair_t *pr, bool v6, uint32_t from, uint32_t to, unsigned depth,
                     ibp_err_t *err)
{
    ibp_diff_t *d = pr->d;
    ibp_diff_move_t *m = NULL;
    for (size_t i = pr->first_move; i < d->n_moves && !m; i++)
        if (d->moves[i].client_v6 == v6 && !strcmp(d->moves[i].from, pr->labels[from])
            && !strcmp(d->moves[i].to, pr->labels[to]))
            m = &d->moves[i];
    if (!m) {
        if (d->n_moves == pr->cap_moves) {
            size_t cap = pr->cap_moves ? 2 * pr->cap_moves : 16;
            ibp_diff_move_t *grown = realloc(d->moves, cap * sizeof *grown);
            if (!grown)
                return ibp_err_set(err, "out of memory");
            d->moves = grown;
            pr->cap_moves = cap;
        }
        m = &d->moves[d->n_moves++];
        *m = (ibp_diff_move_t){.host = pr->host, .family = pr->family, .client_v6 = v6,
                               .from = strdup(pr->labels[from]), .to = strdup(pr->labels[to]),
                               .located = &pr->space[v6]};
        if (!m->from || !m->to)
            return ibp_err_set(err, "out of memory");
    }
    m->moved.networks++;
    m->moved.addresses += (ibp_u128)1 << (128 - depth);
    return true;
}

static bool count_network(pair_t *pr, uint32_t old_a, uint32_t new_a, unsigned depth, bool v4,
                          ibp_err_t *err)
{
    uint32_t from = pr->old_s.label_id[old_a], to = pr->new_s.label_id[new_a];
    if (from == pr->undef || to == pr->undef || (from == pr->unlocated && to == pr->unlocated))
        return true;
    ibp_diff_space_t *sp = &pr->space[!v4];
    sp->networks++;
    sp->addresses += (ibp_u128)1 << (128 - depth);
    return from == to || add_move(pr, !v4, from, to, depth, err);
}

/* zero: the prefix's first bits (up to 96) are 0: it holds ::/96 (depth < 96)
 * or lies in it (IPv4 clients). */
static bool walk(pair_t *pr, uint32_t old_ref, uint32_t old_a, uint32_t new_ref, uint32_t new_a,
                 unsigned depth, bool zero, ibp_err_t *err)
{
    if (old_a == IBP_TBL_NONE && !stop_at(&pr->old_s, old_ref, &old_a, err))
        return false;
    if (new_a == IBP_TBL_NONE && !stop_at(&pr->new_s, new_ref, &new_a, err))
        return false;
    bool split_v4 = zero && depth < V4_DEPTH;
    if (old_a != IBP_TBL_NONE && new_a != IBP_TBL_NONE && !split_v4)
        return count_network(pr, old_a, new_a, depth, zero, err);
    if (depth >= 128)
        return ibp_err_set(err, "trie deeper than 128 bits");
    for (unsigned bit = 0; bit < 2; bit++) {
        uint32_t o = old_a != IBP_TBL_NONE ? old_ref : pr->old_s.v.nodes[2 * old_ref + bit];
        uint32_t n = new_a != IBP_TBL_NONE ? new_ref : pr->new_s.v.nodes[2 * new_ref + bit];
        if (!walk(pr, o, old_a, n, new_a, depth + 1, zero && (!bit || depth >= V4_DEPTH), err))
            return false;
    }
    return true;
}

static void pair_free(pair_t *pr)
{
    for (size_t i = 0; i < pr->n_labels; i++)
        free(pr->labels[i]);
    free(pr->labels);
    free(pr->old_s.label_id);
    free(pr->new_s.label_id);
}

static side_t side_of(const ibp_table_t *t, uint32_t policy)
{
    const ibp_tbl_policy_t *p = &t->policies[policy];
    return (side_t){.t = t, .p = p, .v = ibp_table_map_view(t, p->map)};
}

static bool diff_policy(ibp_diff_t *d, size_t *cap_moves, const char *host,
                        unsigned family, const ibp_table_t *ot, uint32_t op,
                        const ibp_table_t *nt, uint32_t np, ibp_err_t *err)
{
    pair_t pr = {.old_s = side_of(ot, op), .new_s = side_of(nt, np), .d = d,
                 .first_move = d->n_moves, .cap_moves = *cap_moves,
                 .space = &d->spaces[d->n_spaces], .host = host, .family = family};
    d->n_spaces += 2;
    bool ok = label_side(&pr, &pr.old_s, err) && label_side(&pr, &pr.new_s, err)
           && intern(&pr, "unlocated", &pr.unlocated, err) && intern(&pr, "undef", &pr.undef, err)
           && walk(&pr, ot->geo->root, IBP_TBL_NONE, nt->geo->root, IBP_TBL_NONE, 0, true, err);
    *cap_moves = pr.cap_moves;
    pair_free(&pr);
    return ok || ibp_err_prefix(err, "%s %s", host, family ? "AAAA" : "A");
}

/* ---- names one table has and the other lacks ---------------------------- */

static bool push_name(ibp_diff_names_t *l, const char *name, ibp_err_t *err)
{
    const char **grown = realloc(l->v, (l->n + 1) * sizeof *grown);
    if (!grown)
        return ibp_err_set(err, "out of memory");
    l->v = grown;
    l->v[l->n++] = name;
    return true;
}

static const ibp_tbl_name_t *find_name(const ibp_table_t *t, const char *name)
{
    return ibp_table_find(t, name, strlen(name));
}

static bool has_host(const ibp_table_t *t, const char *name)
{
    const ibp_tbl_name_t *n = find_name(t, name);
    return n && n->host != IBP_TBL_NONE;
}

static bool has_zone(const ibp_table_t *t, const char *name)
{
    const ibp_tbl_name_t *n = find_name(t, name);
    return n && n->apex_zone != IBP_TBL_NONE;
}

static bool has_member(const ibp_table_t *t, const char *key)
{
    for (uint32_t i = 0; i < t->n[IBP_SEC_MEMBERS]; i++)
        if (!strcmp(ibp_table_str(t, t->members[i].key), key))
            return true;
    return false;
}

/* Names of a kind in a that b lacks. */
static bool lacking(const ibp_table_t *a, const ibp_table_t *b, ibp_diff_names_t *hosts,
                    ibp_diff_names_t *members, ibp_diff_names_t *zones, ibp_err_t *err)
{
    for (uint32_t i = 0; i < a->n[IBP_SEC_HOSTS]; i++) {
        const char *name = ibp_table_str(a, a->names[a->hosts[i].name].name);
        if (!has_host(b, name) && !push_name(hosts, name, err))
            return false;
    }
    for (uint32_t i = 0; i < a->n[IBP_SEC_MEMBERS]; i++) {
        const char *key = ibp_table_str(a, a->members[i].key);
        if (!has_member(b, key) && !push_name(members, key, err))
            return false;
    }
    for (uint32_t i = 0; i < a->n[IBP_SEC_ZONES]; i++) {
        const char *name = ibp_table_str(a, a->zones[i].name);
        if (!has_zone(b, name) && !push_name(zones, name, err))
            return false;
    }
    return true;
}

/* ---- the whole diff ----------------------------------------------------- */

static int by_network_share(const void *pa, const void *pb)
{
    const ibp_diff_move_t *a = pa, *b = pb;
    double sa = (double)a->moved.networks / (double)a->located->networks;
    double sb = (double)b->moved.networks / (double)b->located->networks;
    if (sa != sb)
        return sa > sb ? -1 : 1;
    int c = strcmp(a->host, b->host);
    if (c)
        return c;
    if (a->family != b->family || a->client_v6 != b->client_v6)
        return a->family != b->family ? (int)a->family - (int)b->family
                                      : (int)a->client_v6 - (int)b->client_v6;
    return (c = strcmp(a->from, b->from)) ? c : strcmp(a->to, b->to);
}

static bool diff_hosts(const ibp_table_t *ot, const ibp_table_t *nt, ibp_diff_t *d, ibp_err_t *err)
{
    size_t cap_moves = 0;
    d->spaces = calloc(4 * (size_t)nt->n[IBP_SEC_HOSTS] + 1, sizeof *d->spaces);
    if (!d->spaces)
        return ibp_err_set(err, "out of memory");
    for (uint32_t h = 0; h < nt->n[IBP_SEC_HOSTS]; h++) {
        const ibp_tbl_host_t *nh = &nt->hosts[h];
        const char *name = ibp_table_str(nt, nt->names[nh->name].name);
        const ibp_tbl_name_t *on = find_name(ot, name);
        if (!on || on->host == IBP_TBL_NONE)
            continue;
        const ibp_tbl_host_t *oh = &ot->hosts[on->host];
        for (unsigned f = 0; f < 2; f++) {
            if ((oh->policy[f] == IBP_TBL_NONE) != (nh->policy[f] == IBP_TBL_NONE))
                d->one_sided_policies++;
            if (oh->policy[f] == IBP_TBL_NONE || nh->policy[f] == IBP_TBL_NONE)
                continue;
            if (!diff_policy(d, &cap_moves, name, f, ot, oh->policy[f], nt, nh->policy[f], err))
                return false;
        }
    }
    return true;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void sort_names(ibp_diff_names_t *l)
{
    if (l->n)
        qsort(l->v, l->n, sizeof *l->v, by_text);
}

bool ibp_table_diff(const ibp_table_t *old_t, const ibp_table_t *new_t, ibp_diff_t *d,
                    ibp_err_t *err)
{
    memset(d, 0, sizeof *d);
    bool ok = diff_hosts(old_t, new_t, d, err)
           && lacking(new_t, old_t, &d->new_hosts, &d->new_members, &d->new_zones, err)
           && lacking(old_t, new_t, &d->gone_hosts, &d->gone_members, &d->gone_zones, err);
    if (!ok) {
        ibp_table_diff_free(d);
        return false;
    }
    if (d->n_moves)
        qsort(d->moves, d->n_moves, sizeof *d->moves, by_network_share);
    ibp_diff_names_t *lists[] = {&d->new_hosts, &d->gone_hosts, &d->new_members,
                                 &d->gone_members, &d->new_zones, &d->gone_zones};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        sort_names(lists[i]);
    return true;
}

void ibp_table_diff_free(ibp_diff_t *d)
{
    for (size_t i = 0; i < d->n_moves; i++) {
        free(d->moves[i].from);
        free(d->moves[i].to);
    }
    free(d->moves);
    free(d->spaces);
    free(d->new_hosts.v);
    free(d->gone_hosts.v);
    free(d->new_members.v);
    free(d->gone_members.v);
    free(d->new_zones.v);
    free(d->gone_zones.v);
    memset(d, 0, sizeof *d);
}
