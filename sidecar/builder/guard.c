#include "guard.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ibp_table_diff.h"
#include "ibp_table_shift.h"

static void describe(const ibp_shift_t *sh, bool online, char *out, size_t cap)
{
    if (!sh->host) {
        snprintf(out, cap, "nothing moves but for health");
        return;
    }
    snprintf(out, cap, "%s %s, %s clients: %s -> %s%s", sh->host, sh->family ? "AAAA" : "A",
             sh->client_v6 ? "IPv6" : "IPv4", sh->from, sh->to,
             online ? " (with every member online)" : "");
}

/* The shift from old_t to new_t, described into where. */
static bool shift_of(const ibp_table_t *old_t, const ibp_table_t *new_t, bool online,
                     ibp_shift_t *sh, char *where, size_t cap, ibp_err_t *err)
{
    ibp_diff_t d;
    if (!ibp_table_diff(old_t, new_t, &d, err))
        return false;
    ibp_table_shift(&d, old_t, new_t, sh);
    describe(sh, online, where, cap);   /* before the diff goes: sh points into new_t */
    ibp_table_diff_free(&d);
    return true;
}

bool sc_guard_weigh(sc_state_t *s, const ibp_table_t *in_place, const ibp_table_t *candidate,
                    const ibp_table_t *in_place_up, const ibp_table_t *candidate_up,
                    unsigned limit, bool forced, bool *hold, ibp_err_t *err)
{
    *hold = false;
    ibp_shift_t sh, up;
    char where[512], where_up[512];
    if (!shift_of(in_place, candidate, false, &sh, where, sizeof where, err))
        return false;
    if (in_place_up && candidate_up) {
        if (!shift_of(in_place_up, candidate_up, true, &up, where_up, sizeof where_up, err))
            return false;
        if (up.percent > sh.percent) {
            up.health_percent = sh.health_percent;
            sh = up;
            memcpy(where, where_up, sizeof where);
        }
    }
    *hold = limit && !forced && sh.percent > limit;
    pthread_mutex_lock(&s->lock);
    sc_guard_t *g = &s->guard;
    g->max_shift_percent = limit;
    g->weighed = true;
    g->shift_percent = sh.percent;
    g->health_percent = sh.health_percent;
    snprintf(g->shift_where, sizeof g->shift_where, "%s", where);
    bool was_held = g->held;
    if (*hold) {
        g->refusals++;
        if (!g->held)
            g->held_since = time(NULL);
        g->held = true;
    } else {
        g->held = false;
        g->forced += forced && limit && sh.percent > limit;
    }
    pthread_mutex_unlock(&s->lock);
    if (*hold)
        ibp_log(&s->log, IBP_LOG_ERROR, "table guard: the new table moves %.1f %% of the located "
                "networks of %s for a reason other than health, over Routing.MaxShiftPercent %u: "
                "not published, the table in place stays (health changes still publish); "
                "POST /publish?force=1 accepts it", sh.percent, where, limit);
    else if (forced && limit && sh.percent > limit)
        ibp_log(&s->log, IBP_LOG_WARN, "table guard: publishing, as forced, a table that moves "
                "%.1f %% of the located networks of %s (Routing.MaxShiftPercent %u)", sh.percent,
                where, limit);
    else
        ibp_log(&s->log, IBP_LOG_INFO, "table guard: the new table moves at most %.1f %% of a "
                "host's located networks for a reason other than health (%s)%s", sh.percent, where,
                was_held ? "; the table held back before is dropped" : "");
    return true;
}

void sc_guard_release(sc_state_t *s)
{
    pthread_mutex_lock(&s->lock);
    bool was_held = s->guard.held;
    s->guard.held = false;
    pthread_mutex_unlock(&s->lock);
    if (was_held)
        ibp_log(&s->log, IBP_LOG_INFO, "table guard: the inputs are those of the table in place "
                "again: nothing is held back");
}
