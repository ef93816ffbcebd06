#include "messages.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ibp_dname.h"

/* ---- decoding as Go does ----------------------------------------------------------- */

static json_t *go_parse(const char *buf, size_t len, ibp_err_t *err)
{
    char why[IBP_ERR_MAX];
    if (!sc_go_syntax_ok(buf, len, why, sizeof why)) {
        ibp_err_set(err, "%s", why);
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL |
                              JSON_DECODE_INT_AS_REAL, &je);
    if (!root)   /* valid for Go, not for jansson: invalid UTF-8, a number beyond double */
        ibp_err_set(err, "%s", je.text);
    return root;
}

static const char *kind_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_TRUE: case JSON_FALSE: return "bool";
    default: return "number";
    }
}

typedef struct go_field {
    const char *name;      /* the struct tag */
    char **dst;            /* a string field */
} go_field_t;

/* Fills string fields from obj as Go's Unmarshal: the keys in document
 * order, each matched case-insensitively, null leaving the field alone.
 * The first type mismatch is the error, in Go's words. */
static bool go_fill(const json_t *obj, const char *type, go_field_t *f, ibp_err_t *err)
{
    const char *key;
    json_t *v;
    bool ok = true;
    json_object_foreach((json_t *)obj, key, v) {
        for (go_field_t *x = f; x->name; x++) {
            if (strcasecmp(key, x->name) || json_is_null(v))
                continue;
            if (!json_is_string(v)) {
                if (ok)
                    ibp_err_set(err, "json: cannot unmarshal %s into Go struct field %s.%s of "
                                "type string", kind_name(v), type, x->name);
                ok = false;
                break;
            }
            char *s = strndup(json_string_value(v), json_string_length(v));
            if (!s)
                return ibp_err_set(err, "out of memory");
            free(*x->dst);
            *x->dst = s;
            break;
        }
    }
    return ok;
}

static bool fields_default(go_field_t *f, ibp_err_t *err)
{
    for (go_field_t *x = f; x->name; x++)
        if (!*x->dst && !(*x->dst = strdup("")))
            return ibp_err_set(err, "out of memory");
    return true;
}

static void fields_free(go_field_t *f)
{
    for (go_field_t *x = f; x->name; x++) {
        free(*x->dst);
        *x->dst = NULL;
    }
}

static bool too_big(size_t len, ibp_err_t *err)
{
    return len > SC_MSG_MAX_BYTES &&
           !ibp_err_set(err, "%zu bytes: more than the %d a message may have", len,
                        SC_MSG_MAX_BYTES);
}

/* Decodes obj (a struct type of Go) into f; null is the zero value. */
static bool go_decode(const char *buf, size_t len, const char *type, const char *go_type,
                      go_field_t *f, ibp_err_t *err)
{
    if (too_big(len, err))
        return false;
    json_t *root = go_parse(buf, len, err);
    if (!root)
        return false;
    bool ok = true;
    if (json_is_object(root))
        ok = go_fill(root, type, f, err);
    else if (!json_is_null(root))
        ok = ibp_err_set(err, "json: cannot unmarshal %s into Go value of type %s",
                         kind_name(root), go_type);
    json_decref(root);
    if (ok && !fields_default(f, err))
        ok = false;
    if (!ok)
        fields_free(f);
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
    if (too_big(len, err))
        return false;
    json_t *root = go_parse(buf, len, err);
    if (!root)
        return false;
    char *type = NULL;
    bool ok = json_is_object(root) || ibp_err_set(err, "not an object");
    const char *key;
    json_t *v, *sender = NULL;
    if (ok) {
        json_object_foreach(root, key, v) {
            if (!strcasecmp(key, "type") && json_is_string(v)) {
                free(type);
                type = strdup(json_string_value(v));
            } else if (!strcasecmp(key, "sender") && json_is_object(v)) {
                sender = v;
            }
        }
    }
    if (ok && sender) {
        char *f[5] = {0};
        go_field_t fields[] = {{"NodeID", &f[0]}, {"PublicAddress", &f[1]},
                               {"ListenAddress", &f[2]}, {"ListenPort", &f[3]},
                               {"NodeRole", &f[4]}, {NULL, NULL}};
        ok = go_fill(sender, "NodeInfo", fields, err);
        cut_copy(out->sender.node_id, sizeof out->sender.node_id, f[0]);
        cut_copy(out->sender.public_address, sizeof out->sender.public_address, f[1]);
        cut_copy(out->sender.listen_address, sizeof out->sender.listen_address, f[2]);
        cut_copy(out->sender.listen_port, sizeof out->sender.listen_port, f[3]);
        cut_copy(out->sender.node_role, sizeof out->sender.node_role, f[4]);
        fields_free(fields);
    }
    cut_copy(out->type, sizeof out->type, type);
    free(type);
    json_decref(root);
    return ok;
}

/* ---- dns.usage.getUsage --------------------------------------------------------------- */

bool sc_usage_request_decode(const char *buf, size_t len, sc_usage_request_t *out,
                             ibp_err_t *err)
{
    memset(out, 0, sizeof *out);
    go_field_t fields[] = {{"startDate", &out->start}, {"endDate", &out->end},
                           {"domain", &out->domain}, {"memberName", &out->member},
                           {"country", &out->country}, {NULL, NULL}};
    return go_decode(buf, len, "UsageRequest", "data2.UsageRequest", fields, err);
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
    *kind = SC_BAD_JSON;
    if (too_big(len, err)) {
        *kind = SC_BAD_SIZE;
        return false;
    }
    json_t *root = go_parse(buf, len, err);
    if (!root)
        return false;
    char *f[7] = {0};   /* action, domain, countryCode, (override), memberName, ipv4, ipv6 */
    go_field_t top[] = {{"action", &f[0]}, {"domain", &f[1]}, {"countryCode", &f[2]},
                        {NULL, NULL}};
    go_field_t inner[] = {{"memberName", &f[4]}, {"ipv4", &f[5]}, {"ipv6", &f[6]},
                          {NULL, NULL}};
    bool ok = json_is_object(root) || ibp_err_set(err, "not a JSON object");
    ok = ok && go_fill(root, "OverrideUpdate", top, err);
    const char *key;
    json_t *v, *ov = NULL;
    if (ok)
        json_object_foreach(root, key, v)
            if (!strcasecmp(key, "override"))
                ov = v;
    if (ok && ov && !json_is_null(ov))
        ok = json_is_object(ov) ? go_fill(ov, "OverrideUpdate.override", inner, err)
                                : ibp_err_set(err, "override is not an object");
    json_decref(root);
    ok = ok && fields_default(top, err) && fields_default(inner, err);
    ok = ok && override_build(f, out, kind, err);
    fields_free(top);
    fields_free(inner);
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
