#include "ibp_table_shift.h"

#include <string.h>

/* The host of table t named name, or NULL. */
static const ibp_tbl_host_t *host_of(const ibp_table_t *t, const char *name)
{
    const ibp_tbl_name_t *nm = ibp_table_find(t, name, strlen(name));
    return nm && nm->host < t->n[IBP_SEC_HOSTS] ? &t->hosts[nm->host] : NULL;
}

/* 1 when the member labelled label is skipped as offline for host h and
 * family fam of t, 0 when it is a candidate or skipped otherwise, -1 when
 * it is not assigned to h (or t has no such member). */
static int offline_in(const ibp_table_t *t, const ibp_tbl_host_t *h, unsigned fam,
                      const char *label)
{
    for (uint32_t i = 0; h && i < h->cand_count; i++) {
        const ibp_tbl_cand_t *c = &t->cands[h->cand_first + i];
        if (c->member < t->n[IBP_SEC_MEMBERS] && !strcmp(ibp_table_member_label(t, c->member), label))
            return c->skip[fam] == IBP_SKIP_OFFLINE;
    }
    return -1;
}

/* Some candidate of the host went offline or came back for family fam. */
static bool any_health_change(const ibp_table_t *ot, const ibp_tbl_host_t *oh,
                              const ibp_table_t *nt, const ibp_tbl_host_t *nh, unsigned fam)
{
    for (uint32_t i = 0; nh && i < nh->cand_count; i++) {
        const ibp_tbl_cand_t *c = &nt->cands[nh->cand_first + i];
        if (c->member >= nt->n[IBP_SEC_MEMBERS])
            continue;
        int was = offline_in(ot, oh, fam, ibp_table_member_label(nt, c->member));
        if (was >= 0 && was != (c->skip[fam] == IBP_SKIP_OFFLINE))
            return true;
    }
    return false;
}

static bool label_health_changed(const ibp_table_t *ot, const ibp_tbl_host_t *oh,
                                 const ibp_table_t *nt, const ibp_tbl_host_t *nh, unsigned fam,
                                 const char *label)
{
    if (!strncmp(label, "failover-spread:", 16) || !strcmp(label, "none"))
        return any_health_change(ot, oh, nt, nh, fam);
    int was = offline_in(ot, oh, fam, label), is = offline_in(nt, nh, fam, label);
    return was >= 0 && is >= 0 && was != is;
}

static bool health_move(const ibp_diff_move_t *m, const ibp_table_t *ot, const ibp_table_t *nt)
{
    const ibp_tbl_host_t *oh = host_of(ot, m->host), *nh = host_of(nt, m->host);
    return label_health_changed(ot, oh, nt, nh, m->family, m->from) ||
           label_health_changed(ot, oh, nt, nh, m->family, m->to);
}

static double share(const ibp_diff_move_t *m)
{
    return m->located->networks ? 100.0 * (double)m->moved.networks / (double)m->located->networks
                                : 0.0;
}

void ibp_table_shift(const ibp_diff_t *d, const ibp_table_t *old_t, const ibp_table_t *new_t,
                     ibp_shift_t *out)
{
    memset(out, 0, sizeof *out);
    /* A group (host, family, client family) is its moves' located total:
     * the diff keeps one per group. Groups are few; moves per group too. */
    for (size_t i = 0; i < d->n_moves; i++) {
        const ibp_diff_space_t *group = d->moves[i].located;
        bool first = true;
        for (size_t j = 0; j < i && first; j++)
            first = d->moves[j].located != group;
        if (!first)
            continue;
        double other = 0, health = 0, largest = -1;
        const ibp_diff_move_t *top = NULL;
        for (size_t j = i; j < d->n_moves; j++) {
            const ibp_diff_move_t *m = &d->moves[j];
            if (m->located != group)
                continue;
            if (health_move(m, old_t, new_t)) {
                health += share(m);
                continue;
            }
            other += share(m);
            if (share(m) > largest) {
                largest = share(m);
                top = m;
            }
        }
        if (health > out->health_percent)
            out->health_percent = health;
        if (top && other > out->percent) {
            *out = (ibp_shift_t){.percent = other, .host = top->host, .family = top->family,
                                 .client_v6 = top->client_v6, .from = top->from, .to = top->to,
                                 .health_percent = out->health_percent};
        }
    }
}
