#include "messages.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ibp_dname.h"

static bool too_big(size_t len, ibp_err_t *err)
{
    return len > SC_MSG_MAX_BYTES &&
           !ibp_err_set(err, "%zu bytes: more than the %d a message may have", len,
                        SC_MSG_MAX_BYTES);
}

static void fields_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
        v[i] = NULL;
    }
}

/* Absent and null strings are "" afterwards, as Go's zero value. */
static bool fields_default(char **v, size_t n, ibp_err_t *err)
{
    for (size_t i = 0; i < n; i++)
        if (!v[i] && !(v[i] = strdup("")))
            return ibp_err_set(err, "out of memory");
    return true;
}

static bool unmarshal(const char *buf, size_t len, const char *name, const char *type,
                      const sc_go_field_t *f, char **v, size_t n, ibp_err_t *err)
{
    char why[IBP_ERR_MAX];
    bool ok = !too_big(len, err);
    if (ok && !sc_go_unmarshal(buf, len, name, type, f, why, sizeof why))
        ok = ibp_err_set(err, "%s", why);
    ok = ok && fields_default(v, n, err);
    if (!ok)
        fields_free(v, n);
    return ok;
}

/* ---- consensus.cluster -------------------------------------------------------------- */

void sc_join_encode(sc_buf_t *b, const sc_node_info_t *self, long long sec, long nsec)
{
    char when[40];
    sc_go_time(sec, nsec, when);
    sc_buf_puts(b, "{\"type\":\"join\",\"sender\":{\"NodeID\":");
    sc_go_string(b, self->node_id);
    sc_buf_puts(b, ",\"PublicAddress\":");
    sc_go_string(b, self->public_address);
    sc_buf_puts(b, ",\"ListenAddress\":");
    sc_go_string(b, self->listen_address);
    sc_buf_puts(b, ",\"ListenPort\":");
    sc_go_string(b, self->listen_port);
    sc_buf_puts(b, ",\"NodeRole\":");
    sc_go_string(b, self->node_role);
    sc_buf_puts(b, ",\"LastHeard\":");
    sc_go_string(b, when);
    sc_buf_puts(b, "},\"members\":null}");
}

static void cut_copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

bool sc_cluster_msg_decode(const char *buf, size_t len, sc_cluster_msg_t *out, ibp_err_t *err)
{
    memset(out, 0, sizeof *out);
    char *v[7] = {0};   /* type, then the sender's NodeID ... NodeRole, LastHeard */
    const sc_go_field_t sender[] = {{"NodeID", &v[1], 0, 0, 0}, {"PublicAddress", &v[2], 0, 0, 0},
                                    {"ListenAddress", &v[3], 0, 0, 0},
                                    {"ListenPort", &v[4], 0, 0, 0}, {"NodeRole", &v[5], 0, 0, 0},
                                    {"LastHeard", &v[6], 0, 0, 0}, {0}};
    const sc_go_field_t top[] = {{"type", &v[0], 0, 0, 0},
                                 {"sender", NULL, NULL, sender, "core.NodeInfo"}, {0}};
    if (!unmarshal(buf, len, "ClusterMessage", "core.ClusterMessage", top, v, 7, err))
        return false;
    cut_copy(out->type, sizeof out->type, v[0]);
    cut_copy(out->sender.node_id, sizeof out->sender.node_id, v[1]);
    cut_copy(out->sender.public_address, sizeof out->sender.public_address, v[2]);
    cut_copy(out->sender.listen_address, sizeof out->sender.listen_address, v[3]);
    cut_copy(out->sender.listen_port, sizeof out->sender.listen_port, v[4]);
    cut_copy(out->sender.node_role, sizeof out->sender.node_role, v[5]);
    fields_free(v, 7);
    return true;
}

/* ---- dns.usage.getUsage --------------------------------------------------------------- */

bool sc_usage_request_decode(const char *buf, size_t len, sc_usage_request_t *out,
                             ibp_err_t *err)
{
    memset(out, 0, sizeof *out);
    char *v[5] = {0};
    const sc_go_field_t f[] = {{"startDate", &v[0], &out->nul[0], 0, 0},
                               {"endDate", &v[1], &out->nul[1], 0, 0},
                               {"domain", &v[2], &out->nul[2], 0, 0},
                               {"memberName", &v[3], &out->nul[3], 0, 0},
                               {"country", &v[4], &out->nul[4], 0, 0}, {0}};
    if (!unmarshal(buf, len, "UsageRequest", "data2.UsageRequest", f, v, 5, err))
        return false;
    out->start = v[0], out->end = v[1], out->domain = v[2], out->member = v[3];
    out->country = v[4];
    return true;
}

void sc_usage_request_free(sc_usage_request_t *r)
{
    free(r->start);
    free(r->end);
    free(r->domain);
    free(r->member);
    free(r->country);
    memset(r, 0, sizeof *r);
}

void sc_usage_reply_begin(sc_buf_t *b, const char *node_id)
{
    sc_buf_puts(b, "{\"nodeID\":");
    sc_go_string(b, node_id);
    sc_buf_puts(b, ",\"usageRecords\":[");
}

static void field(sc_buf_t *b, const char *name, const char *value)
{
    sc_buf_puts(b, name);
    sc_go_string(b, value ? value : "");
}

void sc_usage_reply_add(sc_buf_t *b, const sc_usage_record_t *r)
{
    char date[32];
    snprintf(date, sizeof date, "%.10sT00:00:00Z", r->date);   /* IBP's driver's format */
    if (b->len && b->p[b->len - 1] == '}')
        sc_buf_add(b, ",", 1);
    sc_buf_puts(b, "{\"nodeid\":\"\"");   /* IBP leaves it empty */
    field(b, ",\"date\":", date);
    field(b, ",\"domain\":", r->domain);
    field(b, ",\"memberName\":", r->member);
    field(b, ",\"countryCode\":", r->country_code);
    field(b, ",\"asn\":", r->asn);
    field(b, ",\"networkName\":", r->network_name);
    field(b, ",\"countryName\":", r->country_name);
    sc_buf_printf(b, ",\"hits\":%llu,\"isIPv6\":%s}", r->hits, r->is_ipv6 ? "true" : "false");
}

void sc_usage_reply_end(sc_buf_t *b, bool nil_records, const char *error)
{
    if (nil_records && b->len && b->p[b->len - 1] == '[') {
        b->len--;
        sc_buf_puts(b, "null");
    } else {
        sc_buf_add(b, "]", 1);
    }
    if (error && error[0]) {
        sc_buf_puts(b, ",\"error\":");
        sc_go_string(b, error);
    }
    sc_buf_add(b, "}", 1);
}

/* ---- geodns.override.update ------------------------------------------------------------- */

/* "what \"value\" why", the sender's value cut. */
static bool bad(sc_bad_kind_t *kind, sc_bad_kind_t k, ibp_err_t *err, const char *what,
                const char *arg, const char *why)
{
    *kind = k;
    size_t n = strlen(arg);
    return ibp_err_set(err, "%s \"%.80s%s\"%s%s", what, arg, n > 80 ? "..." : "", why[0] ? " " : "",
                       why);
}

static bool override_addr(const char *s, int af, void *dst, bool *has)
{
    if (!s || !s[0])
        return true;
    *has = inet_pton(af, s, dst) == 1;
    return *has;
}

static bool override_fields(const sc_override_msg_t *m, const char *cc, const char *member,
                            sc_bad_kind_t *kind, ibp_err_t *err)
{
    if (m->action == SC_OV_CLEAR)
        return true;
    if (strlen(cc) != 2 || !isalpha((unsigned char)cc[0]) || !isalpha((unsigned char)cc[1]))
        return bad(kind, SC_BAD_FIELDS, err, "countryCode", cc, "is not a two-letter code");
    if (strlen(member) > SC_PEER_FIELD_MAX)
        return bad(kind, SC_BAD_FIELDS, err, "memberName", member, "is too long");
    return true;
}

/* The decoded strings into out; false with *kind and err for a message
 * IBP would ignore (and for addresses it would never use). */
static bool override_build(char *const f[7], sc_override_msg_t *out, sc_bad_kind_t *kind,
                           ibp_err_t *err)
{
    const char *action = f[0], *domain = f[1], *cc = f[2], *member = f[4];
    if (!strcmp(action, "set"))
        out->action = SC_OV_SET;
    else if (!strcmp(action, "remove"))
        out->action = SC_OV_REMOVE;
    else if (!strcmp(action, "clear"))
        out->action = SC_OV_CLEAR;
    else
        return bad(kind, SC_BAD_ACTION, err, "unknown action", action, "");
    if (!domain[0] || (out->action != SC_OV_CLEAR && !cc[0]))
        return bad(kind, SC_BAD_FIELDS, err, "action", action,
                   out->action == SC_OV_CLEAR ? "needs domain" : "needs domain and countryCode");
    char name[IBP_NAME_MAX + 1];
    ibp_err_t why;
    if (!ibp_name_normalize(domain, name, &why))
        return bad(kind, SC_BAD_FIELDS, err, "domain", domain, "is not a DNS name");
    if (!override_fields(out, cc, member, kind, err))
        return false;
    ibp_override_t *e = &out->entry;
    if (out->action != SC_OV_CLEAR) {
        e->cc[0] = (char)toupper((unsigned char)cc[0]);
        e->cc[1] = (char)toupper((unsigned char)cc[1]);
    }
    if (out->action == SC_OV_SET &&
        (!override_addr(f[5], AF_INET, e->v4, &e->has_v4) ||
         !override_addr(f[6], AF_INET6, e->v6, &e->has_v6)))
        return bad(kind, SC_BAD_FIELDS, err, "override address",
                   e->has_v4 || !f[5][0] ? f[6] : f[5], "is not an address of its family");
    e->domain = strdup(name);
    e->member_name = strdup(out->action == SC_OV_SET ? member : "");
    if (!e->domain || !e->member_name) {
        *kind = SC_BAD_SIZE;
        return ibp_err_set(err, "out of memory");
    }
    return true;
}

bool sc_override_msg_decode(const char *buf, size_t len, sc_override_msg_t *out,
                            sc_bad_kind_t *kind, ibp_err_t *err)
{
    memset(out, 0, sizeof *out);
    *kind = len > SC_MSG_MAX_BYTES ? SC_BAD_SIZE : SC_BAD_JSON;
    char *f[7] = {0};   /* action, domain, countryCode, (override), memberName, ipv4, ipv6 */
    const sc_go_field_t inner[] = {{"memberName", &f[4], 0, 0, 0}, {"ipv4", &f[5], 0, 0, 0},
                                   {"ipv6", &f[6], 0, 0, 0}, {0}};
    const sc_go_field_t top[] = {{"action", &f[0], 0, 0, 0}, {"domain", &f[1], 0, 0, 0},
                                 {"countryCode", &f[2], 0, 0, 0},
                                 {"override", NULL, NULL, inner, "OverrideEntry"}, {0}};
    if (!unmarshal(buf, len, "OverrideUpdate", "OverrideUpdate", top, f, 7, err))
        return false;
    bool ok = override_build(f, out, kind, err);
    fields_free(f, 7);
    if (!ok)
        sc_override_msg_free(out);
    return ok;
}

void sc_override_msg_free(sc_override_msg_t *m)
{
    free(m->entry.domain);
    free(m->entry.member_name);
    memset(m, 0, sizeof *m);
}
