/* geodns-static.json (IBP-NODE §2.4): an array of PowerDNS-style records.
 * Contents end up on a pipe-backend line, so anything that could break that
 * line, or that PowerDNS would refuse for the type, is rejected here. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ibp_json.h"
#include "ibp_model.h"

#define ACME_PREFIX "_acme-challenge."

typedef struct rr_check {
    const ibp_jctx_t *c;
    const char *path;          /* "[i].content" */
} rr_check_t;

static const struct {
    const char *name;
    uint16_t type;
} rr_types[] = {
    {"A", IBP_T_A}, {"AAAA", IBP_T_AAAA}, {"CNAME", IBP_T_CNAME}, {"NS", IBP_T_NS},
    {"TXT", IBP_T_TXT}, {"MX", IBP_T_MX}, {"SRV", IBP_T_SRV}, {"CAA", IBP_T_CAA},
    {"PTR", IBP_T_PTR},
};

void ibp_statics_free(ibp_statics_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].owner);
        free(s->v[i].content);
    }
    free(s->v);
    *s = (ibp_statics_t){0};
}

/* Splits s on runs of spaces into at most max tokens; returns the count,
 * or max + 1 when there are more. */
static size_t split(const char *s, const char *tok[], size_t tlen[], size_t max)
{
    size_t n = 0;
    while (*s) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        if (n == max)
            return max + 1;
        tok[n] = s;
        tlen[n] = strcspn(s, " ");
        s += tlen[n++];
    }
    return n;
}

static bool uint_tok(const char *t, size_t len, unsigned long max, unsigned long *out)
{
    if (len == 0 || len > 10)
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)t[i]))
            return false;
        v = v * 10 + (unsigned long)(t[i] - '0');
    }
    *out = v;
    return v <= max;
}

static bool host_tok(const rr_check_t *k, const char *t, size_t len, bool root_ok,
                     const char *what)
{
    if (root_ok && len == 1 && t[0] == '.')
        return true;
    /* The content goes out verbatim: the name normaliser's trimming must not hide spaces. */
    if (len && (isspace((unsigned char)t[0]) || isspace((unsigned char)t[len - 1])))
        return ibp_jerr(k->c, k->path, "invalid %s: surrounding spaces", what);
    char name[IBP_NAME_MAX + 1];
    ibp_err_t e;
    if (!ibp_name_normalize_n(t, len, false, name, &e))
        return ibp_jerr(k->c, k->path, "invalid %s: %s", what, e.msg);
    return true;
}

static bool check_addr(const rr_check_t *k, const char *s, int af)
{
    unsigned char buf[16];
    if (inet_pton(af, s, buf) == 1)
        return true;
    char q[IBP_JQUOTE_MAX + 8];
    ibp_json_quote(q, sizeof q, s);
    return ibp_jerr(k->c, k->path, "%s is not an %s address", q,
                    af == AF_INET ? "IPv4" : "IPv6");
}

static bool check_mx(const rr_check_t *k, const char *s)
{
    const char *t[2];
    size_t l[2];
    unsigned long prio;
    if (split(s, t, l, 2) != 2)
        return ibp_jerr(k->c, k->path, "MX content must be \"priority host\"");
    if (!uint_tok(t[0], l[0], 65535, &prio))
        return ibp_jerr(k->c, k->path, "MX priority must be 0..65535");
    return host_tok(k, t[1], l[1], true, "MX host");
}

static bool check_srv(const rr_check_t *k, const char *s)
{
    static const char *const field[] = {"priority", "weight", "port"};
    const char *t[4];
    size_t l[4];
    unsigned long v;
    if (split(s, t, l, 4) != 4)
        return ibp_jerr(k->c, k->path, "SRV content must be \"priority weight port target\"");
    for (size_t i = 0; i < 3; i++)
        if (!uint_tok(t[i], l[i], 65535, &v))
            return ibp_jerr(k->c, k->path, "SRV %s must be 0..65535", field[i]);
    return host_tok(k, t[3], l[3], true, "SRV target");
}

/* PowerDNS 4.7 reads "\DDD" as three decimal digits (0-255: "\256" became
 * "\000") and "\X" as X; a backslash at the end escapes nothing. Sets *why
 * and returns 0 on a bad escape, else the escape's length. */
static size_t escape_len(const char *p, const char **why)
{
    if (!p[1]) {
        *why = "ends in a backslash";
        return 0;
    }
    if (!isdigit((unsigned char)p[1]))
        return 2;
    if (!isdigit((unsigned char)p[2]) || !isdigit((unsigned char)p[3]) ||
        (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0') > 255) {
        *why = "has a decimal escape that is not \\000 to \\255";
        return 0;
    }
    return 4;
}

/* One "..." string at *p; moves *p past its closing quote. */
static bool quoted_string(const char **p, const char **why)
{
    const char *s = *p + 1;
    while (*s && *s != '"') {
        size_t n = *s == '\\' ? escape_len(s, why) : 1;
        if (!n)
            return false;
        s += n;
    }
    if (!*s) {
        *why = "has an unterminated quote";
        return false;
    }
    *p = s + 1;
    return true;
}

/* A quoted value must be one well-formed "..." string with \-escapes. */
static bool quoted_ok(const char *s)
{
    const char *why;
    return quoted_string(&s, &why) && !*s;
}

static bool alnum_to_end(const char *p)
{
    for (; *p; p++)
        if (!isalnum((unsigned char)*p))
            return false;
    return true;
}

/* What PowerDNS 4.7 takes as TXT content from a pipe (probed through a real
 * pdns_server; it answers SERVFAIL, and kills the coprocess, for the rest):
 * either quoted strings separated by spaces (the last may be an unquoted
 * alphanumeric word), or unquoted text that it quotes whole. Surrounding spaces are refused: PowerDNS drops trailing ones and
 * refuses leading ones before a quote. */
static const char *txt_fault(const char *s)
{
    const char *why = NULL;
    size_t len = strlen(s);
    if (len == 0)
        return "is empty (an empty string is written \"\")";
    if (isspace((unsigned char)s[0]) || isspace((unsigned char)s[len - 1]))
        return "has surrounding spaces";
    if (s[0] != '"') {
        for (const char *p = s; *p;) {
            if (*p == '"')
                return "has a quote inside unquoted text (quote the whole value)";
            size_t n = *p == '\\' ? escape_len(p, &why) : 1;
            if (!n)
                return why;
            p += n;
        }
        return NULL;
    }
    for (const char *p = s; *p;) {
        if (*p != '"')   /* a last unquoted word is one more string if it is alphanumeric */
            return alnum_to_end(p) ? NULL : "has text outside the quotes that is not one "
                                            "alphanumeric word at the end";
        if (!quoted_string(&p, &why))
            return why;
        while (*p == ' ')
            p++;
    }
    return NULL;
}

static bool printable(const rr_check_t *k, const char *s, size_t max, const char *what)
{
    size_t len = strlen(s);
    if (len > max)
        return ibp_jerr(k->c, k->path, "%s is longer than %zu bytes", what, max);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return ibp_jerr(k->c, k->path, "%s contains control byte 0x%02x", what,
                            (unsigned char)s[i]);
    return true;
}

static bool check_txt(const rr_check_t *k, const char *s)
{
    if (!printable(k, s, IBP_TXT_MAX, "TXT content"))
        return false;
    const char *fault = txt_fault(s);
    if (fault) {
        char q[IBP_JQUOTE_MAX + 8];
        ibp_json_quote(q, sizeof q, s);
        return ibp_jerr(k->c, k->path, "TXT content %s %s", q, fault);
    }
    return true;
}

static bool check_caa(const rr_check_t *k, const char *s)
{
    const char *t[2];
    size_t l[2];
    unsigned long flags;
    /* flags and tag are the first two tokens; the value is the rest, spaces allowed. */
    size_t n = split(s, t, l, 2);
    const char *value = n > 2 ? t[1] + l[1] : "";
    while (*value == ' ')
        value++;
    if (n < 2 || !*value)
        return ibp_jerr(k->c, k->path, "CAA content must be \"flags tag value\"");
    if (!uint_tok(t[0], l[0], 255, &flags))
        return ibp_jerr(k->c, k->path, "CAA flags must be 0..255");
    for (size_t i = 0; i < l[1]; i++)
        if (!isalnum((unsigned char)t[1][i]))
            return ibp_jerr(k->c, k->path, "CAA tag must be alphanumeric");
    if (*value == '"' && !quoted_ok(value))
        return ibp_jerr(k->c, k->path, "CAA value has unbalanced quotes");
    return printable(k, value, IBP_TXT_MAX, "CAA value");
}

/* TAB and newlines would split the pipe line; NUL would cut it. */
static bool check_line_safe(const rr_check_t *k, const char *s, size_t len)
{
    static const struct {
        char ch;
        const char *name;
    } bad[] = {{'\t', "a tab"}, {'\r', "a carriage return"}, {'\n', "a newline"}};
    if (strlen(s) != len)
        return ibp_jerr(k->c, k->path, "contains a NUL byte");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (memchr(s, bad[i].ch, len))
            return ibp_jerr(k->c, k->path, "contains %s", bad[i].name);
    return true;
}

static bool check_content(const rr_check_t *k, uint16_t type, const char *s, size_t len)
{
    if (!check_line_safe(k, s, len))
        return false;
    switch (type) {
    case IBP_T_A: return check_addr(k, s, AF_INET);
    case IBP_T_AAAA: return check_addr(k, s, AF_INET6);
    case IBP_T_CNAME: return host_tok(k, s, len, false, "CNAME target");
    case IBP_T_NS: return host_tok(k, s, len, false, "NS host");
    case IBP_T_PTR: return host_tok(k, s, len, false, "PTR target");
    case IBP_T_MX: return check_mx(k, s);
    case IBP_T_SRV: return check_srv(k, s);
    case IBP_T_CAA: return check_caa(k, s);
    default: return check_txt(k, s);
    }
}

static bool rr_type(const ibp_jctx_t *c, const json_t *obj, const char *path, uint16_t *type)
{
    const char *qt = NULL;
    if (!ibp_jget_string(c, obj, path, "qtype", IBP_J_REQUIRED, &qt))
        return false;
    /* Case-sensitive, as IBP compares the stored qtype. */
    for (size_t i = 0; i < sizeof rr_types / sizeof rr_types[0]; i++)
        if (!strcmp(qt, rr_types[i].name)) {
            *type = rr_types[i].type;
            return true;
        }
    char tpath[IBP_JPATH_MAX], q[IBP_JQUOTE_MAX + 8];
    ibp_jpath_key(tpath, path, "qtype");
    ibp_json_quote(q, sizeof q, qt);
    return ibp_jerr(c, tpath, "unsupported type %s (expected A, AAAA, CNAME, NS, TXT, "
                    "MX, SRV, CAA or PTR)", q);
}

static bool rr_owner(const ibp_jctx_t *c, const json_t *obj, const char *path, char **owner)
{
    const char *qn = NULL;
    if (!ibp_jget_string(c, obj, path, "qname", IBP_J_REQUIRED, &qn))
        return false;
    char name[IBP_NAME_MAX + 1], npath[IBP_JPATH_MAX], q[IBP_JQUOTE_MAX + 8];
    ibp_err_t e;
    ibp_jpath_key(npath, path, "qname");
    if (!ibp_name_normalize(qn, name, &e)) {
        ibp_json_quote(q, sizeof q, qn);
        return ibp_jerr(c, npath, "%s is not a valid owner name: %s", q, e.msg);
    }
    *owner = strdup(name);
    return *owner ? true : ibp_jerr(c, npath, "out of memory");
}

static bool is_acme(const ibp_static_rr_t *rr)
{
    return rr->type == IBP_T_TXT &&
           !strncmp(rr->owner, ACME_PREFIX, sizeof ACME_PREFIX - 1) &&
           (!strncasecmp(rr->content, "http://", 7) ||
            !strncasecmp(rr->content, "https://", 8));
}

static bool rr_parse(const ibp_jctx_t *c, size_t i, const json_t *obj, ibp_static_rr_t *rr)
{
    char path[IBP_JPATH_MAX], cpath[IBP_JPATH_MAX];
    ibp_jpath_index(path, "", i);
    if (!ibp_jval_object(c, path, obj) || !rr_owner(c, obj, path, &rr->owner) ||
        !rr_type(c, obj, path, &rr->type))
        return false;
    long long ttl = 0;
    if (!ibp_jget_int(c, obj, path, "ttl", IBP_J_REQUIRED, 0, 2147483647, &ttl))
        return false;
    rr->ttl = (uint32_t)ttl;
    const char *content = NULL;
    if (!ibp_jget_string(c, obj, path, "content", IBP_J_REQUIRED, &content))
        return false;
    ibp_jpath_key(cpath, path, "content");
    rr_check_t k = {c, cpath};
    json_t *cv = ibp_json_get(obj, "content");
    if (!check_content(&k, rr->type, content, json_string_length(cv)))
        return false;
    rr->content = strdup(content);
    if (!rr->content)
        return ibp_jerr(c, cpath, "out of memory");
    rr->acme = is_acme(rr);
    return true;
}

bool ibp_statics_walk(const ibp_jctx_t *c, const json_t *root, void *model)
{
    ibp_statics_t *out = model;
    if (!json_is_array(root))
        return ibp_jerr(c, ".", "expected an array of records, got %s",
                        ibp_json_type_name(root));
    size_t n = json_array_size(root);
    if (n == 0)
        return true;
    out->v = calloc(n, sizeof *out->v);
    if (!out->v)
        return ibp_jerr(c, ".", "out of memory");
    size_t i;
    json_t *v;
    json_array_foreach(root, i, v) {
        if (!rr_parse(c, i, v, &out->v[out->n++]))
            return false;
    }
    return true;
}
