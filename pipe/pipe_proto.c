#include "pipe_proto.h"

#include "ibp_acme_wire.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_FIELDS 10
#define BANNER "OK\tibpdns-pipe " IBPDNS_VERSION

typedef struct field {
    const char *s;
    size_t len;
} field_t;

/* ---- output ---------------------------------------------------------------- */

static void out_put_slow(pipe_out_t *out, const char *s, size_t len)
{
    while (len && !out->failed) {
        size_t room = PIPE_OUT_CAP - out->len;
        if (room == 0) {
            if (!out->flush || !out->flush(out, out->flush_ctx)) {
                out->failed = true;
                return;
            }
            continue;
        }
        size_t n = len < room ? len : room;
        memcpy(out->buf + out->len, s, n);
        out->len += n;
        s += n;
        len -= n;
    }
}

/* Nearly every answer fits the buffer: keep that case to a copy. */
static inline void out_put(pipe_out_t *out, const char *s, size_t len)
{
    if (len <= PIPE_OUT_CAP - out->len) {
        memcpy(out->buf + out->len, s, len);
        out->len += len;
        return;
    }
    out_put_slow(out, s, len);
}

static void out_str(pipe_out_t *out, const char *s)
{
    out_put(out, s, strlen(s));
}

static void out_uint(pipe_out_t *out, uint64_t v)
{
    char digits[24];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    out_put(out, digits + i, sizeof digits - i);
}

/* ---- parsing ---------------------------------------------------------------- */

/* Bit i of *tabs (*nuls) is set when p[i] is a tab (NUL), for i < min(16, left).
 * Whole 16-byte blocks are loaded in place; the last, shorter one is copied,
 * so nothing past the line is read. */
static inline void mark_block(const char *p, size_t left, uint32_t *tabs, uint32_t *nuls)
{
    char pad[16];
    if (left < 16) {
        memset(pad, 'x', sizeof pad);
        memcpy(pad, p, left);
        p = pad;
    }
#ifdef __SSE2__
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    *tabs = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\t')));
    *nuls = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128()));
#else
    *tabs = *nuls = 0;
    for (unsigned i = 0; i < 16; i++) {
        *tabs |= (uint32_t)(p[i] == '\t') << i;
        *nuls |= (uint32_t)(p[i] == '\0') << i;
    }
#endif
}

/* Splits on tabs, 16 bytes a step: one memchr per field was a fifth of a
 * lookup's instructions. Returns the field count, max + 1 if there are more,
 * 0 for an empty line or one with a NUL. */
static size_t split_fields(const char *line, size_t len, field_t *f, size_t max)
{
    size_t n = 0, start = 0;
    if (len == 0)
        return 0;
    for (size_t block = 0; block < len; block += 16) {
        uint32_t tabs, nuls;
        mark_block(line + block, len - block, &tabs, &nuls);
        if (nuls)
            return 0;
        for (; tabs; tabs &= tabs - 1) {
            size_t at = block + (size_t)__builtin_ctz(tabs);
            if (n == max)
                return max + 1;
            f[n++] = (field_t){line + start, at - start};
            start = at + 1;
        }
    }
    if (n == max)
        return max + 1;
    f[n++] = (field_t){line + start, len - start};
    return n;
}

static bool field_is(const field_t *f, const char *s)
{
    return f->len == strlen(s) && !memcmp(f->s, s, f->len);
}

static bool field_is_ci(const field_t *f, const char *s)
{
    if (f->len != strlen(s))
        return false;
    for (size_t i = 0; i < f->len; i++) {
        char c = f->s[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 32);
        if (c != s[i])
            return false;
    }
    return true;
}

static bool parse_int(const field_t *f, long long min, long long max, long long *v)
{
    size_t i = 0;
    bool neg = f->len > 0 && f->s[0] == '-';
    i = neg;
    if (f->len == i || f->len > 12)
        return false;
    long long x = 0;
    for (; i < f->len; i++) {
        if (f->s[i] < '0' || f->s[i] > '9')
            return false;
        x = x * 10 + (f->s[i] - '0');
    }
    x = neg ? -x : x;
    if (x < min || x > max)
        return false;
    *v = x;
    return true;
}

enum { QT_UNKNOWN = 0 };

/* Case-insensitive, by length first: this runs for every request. */
static unsigned parse_qtype(const field_t *f)
{
    char t[8];
    if (f->len == 0 || f->len > 7)
        goto numeric;
    for (size_t i = 0; i < f->len; i++)
        t[i] = (f->s[i] >= 'a' && f->s[i] <= 'z') ? (char)(f->s[i] - 32) : f->s[i];
    switch (f->len) {
    case 1: return t[0] == 'A' ? IBP_T_A : QT_UNKNOWN;
    case 2: return !memcmp(t, "NS", 2) ? IBP_T_NS : !memcmp(t, "MX", 2) ? IBP_T_MX : QT_UNKNOWN;
    case 3:
        if (!memcmp(t, "ANY", 3)) return IBP_T_ANY;
        if (!memcmp(t, "SOA", 3)) return IBP_T_SOA;
        if (!memcmp(t, "TXT", 3)) return IBP_T_TXT;
        if (!memcmp(t, "SRV", 3)) return IBP_T_SRV;
        if (!memcmp(t, "CAA", 3)) return IBP_T_CAA;
        if (!memcmp(t, "PTR", 3)) return IBP_T_PTR;
        return QT_UNKNOWN;
    case 4: return !memcmp(t, "AAAA", 4) ? IBP_T_AAAA : QT_UNKNOWN;
    case 5: if (!memcmp(t, "CNAME", 5)) return IBP_T_CNAME; break;
    default: break;
    }
numeric:;
    long long n;
    if (f->len > 4 && field_is_ci(&(field_t){f->s, 4}, "TYPE") &&
        parse_int(&(field_t){f->s + 4, f->len - 4}, 0, 65535, &n))
        return (unsigned)n;
    return QT_UNKNOWN;
}

/* The coprocess, /route and `ibpdns-table lookup` form the client in one
 * place (ibp_client_parse), so that they cannot disagree. */
static bool parse_client(const field_t *remote, const field_t *ecs, ibp_client_t *c)
{
    return ibp_client_parse(remote->s, remote->len, ecs ? ecs->s : NULL, ecs ? ecs->len : 0, c);
}

/* ---- answers ---------------------------------------------------------------- */

typedef struct query {
    field_t qname;
    unsigned qtype;
    const field_t *remote, *ecs;
} query_t;

/* "DATA\t<scope>\t1\t" (ABI >= 3) or "DATA\t", formatted in place: this
 * starts every answer line. Scopes are at most 128 in a valid table. */
static void out_data_tag(const pipe_state_t *st, pipe_out_t *out, unsigned scope)
{
    char tag[16] = "DATA\t";
    char *p = tag + 5;
    out->records++;
    if (st->abi >= 3 && scope > 999) {
        out_put(out, tag, 5);
        out_uint(out, scope);
        out_put(out, "\t1\t", 3);
        return;
    }
    if (st->abi >= 3) {
        if (scope >= 100)
            *p++ = (char)('0' + scope / 100 % 10);
        if (scope >= 10)
            *p++ = (char)('0' + scope / 10 % 10);
        *p++ = (char)('0' + scope % 10);
        memcpy(p, "\t1\t", 3);
        p += 3;
    }
    out_put(out, tag, (size_t)(p - tag));
}

static void out_data_head(const pipe_state_t *st, pipe_out_t *out, unsigned scope,
                          const char *owner, size_t owner_len)
{
    out_data_tag(st, out, scope);
    out_put(out, owner, owner_len);
    out_put(out, "\t", 1);
}

static void out_soa(const pipe_state_t *st, pipe_out_t *out, const ibp_tbl_zone_t *z,
                    const char *owner, size_t owner_len)
{
    out_data_head(st, out, 0, owner, owner_len);
    out_put(out, ibp_table_str(st->table, z->soa_tail), z->soa_tail_len);
    out_put(out, "\n", 1);
}

/* Returns the name's first ACME record, or NULL. */
static const ibp_tbl_rr_t *out_statics(const pipe_state_t *st, pipe_out_t *out,
                                       const ibp_tbl_name_t *nm, unsigned qtype,
                                       const char *owner, size_t owner_len)
{
    const ibp_table_t *t = st->table;
    const ibp_tbl_rr_t *acme = NULL;
    for (uint32_t i = 0; i < nm->rr_count; i++) {
        const ibp_tbl_rr_t *rr = &t->rrs[nm->rr_first + i];
        /* The raw ACME URL is never served (BEHAVIOR §5). */
        if ((rr->flags & IBP_RR_ACME) && !acme)
            acme = rr;
        if ((rr->flags & IBP_RR_ACME) || (qtype != IBP_T_ANY && rr->type != qtype))
            continue;
        out_data_head(st, out, 0, owner, owner_len);
        out_put(out, ibp_table_str(t, rr->tail), rr->tail_len);
        out_put(out, "\n", 1);
    }
    return acme;
}

/* An ACME name's TXT answer: the values the sidecar fetched from the URLs,
 * with the static record's TTL and zone id; nothing when none came in time
 * (NODATA, never the URL). */
static void out_acme(pipe_state_t *st, pipe_out_t *out, const ibp_tbl_rr_t *acme,
                     unsigned qtype, const char *owner, size_t owner_len)
{
    const ibp_table_t *t = st->table;
    if (!acme || (qtype != IBP_T_ANY && qtype != IBP_T_TXT) || !st->acme)
        return;
    unsigned budget = t->h->acme_budget_ms ? t->h->acme_budget_ms : IBP_ACME_BUDGET_MS_DEFAULT;
    const char *reply = NULL;
    st->stats.acme_asked++;
    size_t len = st->acme(st->acme_ctx, owner, owner_len, budget, &reply);
    const char *val[IBP_ACME_PER_NAME_MAX];
    size_t val_len[IBP_ACME_PER_NAME_MAX], n = 0;
    if (!len) {
        st->stats.acme_unanswered++;
        return;
    }
    if (!ibp_acme_reply_parse(reply, len, val, val_len, &n, NULL)) {
        st->stats.acme_bad++;
        return;
    }
    /* The tail is "IN\tTXT\t<ttl>\t<zone id>\t" followed by the URL. */
    /* Bounded: a table rewritten in place must not make this run off the map. */
    size_t url_len = strnlen(ibp_table_str(t, acme->content), acme->tail_len);
    size_t head_len = acme->tail_len >= url_len ? acme->tail_len - url_len : 0;
    for (size_t i = 0; i < n; i++) {
        out_data_head(st, out, 0, owner, owner_len);
        out_put(out, ibp_table_str(t, acme->tail), head_len);
        out_put(out, val[i], val_len[i]);
        out_put(out, "\n", 1);
    }
}

static void out_route(const pipe_state_t *st, pipe_out_t *out, const ibp_tbl_host_t *h,
                      unsigned fam, const ibp_route_t *r, const char *owner, size_t owner_len)
{
    const ibp_table_t *t = st->table;
    for (unsigned i = 0; i < r->n; i++) {
        const ibp_tbl_target_t *tg = &t->targets[r->target[i]];
        out_data_head(st, out, r->scope, owner, owner_len);
        out_put(out, ibp_table_str(t, h->tail[fam]), h->tail_len[fam]);
        out_put(out, ibp_table_str(t, tg->text), tg->text_len);
        out_put(out, "\n", 1);
    }
}

static void out_dynamic(pipe_state_t *st, pipe_out_t *out, const ibp_tbl_host_t *h,
                        unsigned qtype, const ibp_client_t *c, const char *owner, size_t owner_len)
{
    uint32_t client_class = IBP_TBL_NONE;
    for (unsigned fam = 0; fam < 2; fam++) {
        unsigned want = fam ? IBP_T_AAAA : IBP_T_A;
        if ((qtype != IBP_T_ANY && qtype != want) || h->policy[fam] == IBP_TBL_NONE)
            continue;
        ibp_route_t r;
        ibp_table_route(st->table, h, fam, c, &r);
        out_route(st, out, h, fam, &r, owner, owner_len);
        if (st->usage && r.n) {
            if (client_class == IBP_TBL_NONE)
                client_class = pipe_usage_client_class(st->usage, st->table, c);
            pipe_usage_stage(st->usage, st->table, (uint32_t)(h - st->table->hosts), fam,
                            r.target, r.n, client_class);
        }
    }
}

static const ibp_tbl_name_t *find_name(const pipe_state_t *st, const field_t *qname)
{
    return st->table ? ibp_table_find(st->table, qname->s, qname->len) : NULL;
}

/* A name that exists but has nothing to serve (an empty non-terminal, an
 * ACME name without a value, a host without candidates) must be NODATA, and
 * PowerDNS 4.7's pipe backend cannot carry its ENT marker (type 0 lines do
 * not parse; 5.1 added them). A non-authoritative IXFR record with empty
 * data does it: it makes the ANY set non-empty, so no NXDOMAIN, and being
 * unauthoritative and of a type no lookup asks for, it is never served
 * (packethandler.cc of auth-4.7.3; tests/integration/test_zones.py). ABI
 * 1-2 have no auth field, so there it would be served: left out. */
static void out_exists_marker(const pipe_state_t *st, pipe_out_t *out, const ibp_tbl_name_t *nm,
                              const char *owner, size_t owner_len)
{
    if (st->abi < 3)
        return;
    out_put(out, "DATA\t0\t0\t", 9);
    out->records++;
    out_put(out, owner, owner_len);
    out_str(out, "\tIN\tIXFR\t60\t");
    out_uint(out, st->table->zones[nm->zone].id);
    out_str(out, "\t\\# 0\n");
}

static void answer_query(pipe_state_t *st, pipe_out_t *out, const query_t *q,
                         const ibp_client_t *c)
{
    const ibp_tbl_name_t *nm = find_name(st, &q->qname);
    uint64_t before = out->records;
    if (nm) {
        bool apex = nm->apex_zone != IBP_TBL_NONE;
        bool any_soa = q->qtype == IBP_T_ANY &&
                       !(st->table->h->flags & IBP_HDR_NO_APEX_SOA_IN_ANY);
        if (apex && (q->qtype == IBP_T_SOA || any_soa))
            out_soa(st, out, &st->table->zones[nm->apex_zone], q->qname.s, q->qname.len);
        if (q->qtype != IBP_T_SOA) {
            const ibp_tbl_rr_t *acme = out_statics(st, out, nm, q->qtype, q->qname.s, q->qname.len);
            out_acme(st, out, acme, q->qtype, q->qname.s, q->qname.len);
            if (nm->host != IBP_TBL_NONE)
                out_dynamic(st, out, &st->table->hosts[nm->host], q->qtype, c,
                            q->qname.s, q->qname.len);
        }
        if (q->qtype == IBP_T_ANY && out->records == before)
            out_exists_marker(st, out, nm, q->qname.s, q->qname.len);
    }
    out_put(out, "END\n", 4);
}

/* ---- requests ------------------------------------------------------------- */

static pipe_result_t malformed(pipe_state_t *st, pipe_out_t *out, bool soa)
{
    /* FAIL to an SOA question makes PowerDNS wait for a line that never
     * comes; an empty answer keeps it in step. */
    st->stats.malformed++;
    out_str(out, soa ? "END\n" : "FAIL\n");
    return PIPE_MALFORMED;
}

static pipe_result_t handle_helo(pipe_state_t *st, const field_t *f, size_t n, pipe_out_t *out)
{
    long long abi;
    if (n != 2 || !parse_int(&f[1], 1, 5, &abi)) {
        st->abi = 0;
        st->stats.malformed++;
        out_str(out, "FAIL\n");
        return PIPE_MALFORMED;
    }
    st->abi = (int)abi;
    out_str(out, BANNER);
    if (st->table) {
        out_str(out, " table generation ");
        out_uint(out, st->table->h->generation);
    } else {
        out_str(out, " (no table yet)");
    }
    out_put(out, "\n", 1);
    return PIPE_OK;
}

static pipe_result_t handle_q(pipe_state_t *st, const field_t *f, size_t n, pipe_out_t *out)
{
    size_t want = st->abi == 1 ? 6 : st->abi == 2 ? 7 : 8;
    query_t q = {.qname = f[1], .qtype = n > 3 ? parse_qtype(&f[3]) : QT_UNKNOWN,
                 .remote = n > 5 ? &f[5] : NULL, .ecs = st->abi >= 3 && n > 7 ? &f[7] : NULL};
    bool soa = q.qtype == IBP_T_SOA;
    long long id;
    if (st->abi == 0 || n != want || f[2].len != 2 || f[2].s[0] != 'I' || f[2].s[1] != 'N' ||
        f[1].len == 0 || f[1].len > 1024 || !parse_int(&f[4], -1, 0x7FFFFFFF, &id))
        return malformed(st, out, soa);
    /* SOA questions never depend on the client (PowerDNS sends 0.0.0.0). */
    ibp_client_t c;
    if (!soa && !parse_client(q.remote, q.ecs, &c))
        return malformed(st, out, soa);
    st->stats.queries++;
    answer_query(st, out, &q, &c);
    return PIPE_OK;
}

static const ibp_tbl_zone_t *axfr_zone(const pipe_state_t *st, const field_t *f, size_t n,
                                       uint32_t *zi)
{
    const ibp_table_t *t = st->table;
    if (!t)
        return NULL;
    if (n == 3) {
        const ibp_tbl_name_t *nm = ibp_table_find(t, f[2].s, f[2].len);
        *zi = nm ? nm->apex_zone : IBP_TBL_NONE;
        return *zi == IBP_TBL_NONE ? NULL : &t->zones[*zi];
    }
    long long id;
    if (!parse_int(&f[1], -1, 0x7FFFFFFF, &id))
        return NULL;
    for (uint32_t i = 0; i < t->n[IBP_SEC_ZONES]; i++)
        if (t->zones[i].id == (uint32_t)id) {
            *zi = i;
            return &t->zones[i];
        }
    return NULL;
}

/* A client-independent view: every address the host could answer. */
static void axfr_host(const pipe_state_t *st, pipe_out_t *out, const ibp_tbl_host_t *h,
                      const char *owner, size_t owner_len)
{
    const ibp_table_t *t = st->table;
    for (unsigned fam = 0; fam < 2; fam++) {
        if (h->policy[fam] == IBP_TBL_NONE)
            continue;
        const ibp_tbl_policy_t *p = &t->policies[h->policy[fam]];
        ibp_route_t r = {.n = 0};
        for (uint32_t i = 0; i < p->spread_count && r.n < IBP_TBL_MAX_ANSWERS; i++)
            r.target[r.n++] = t->spread[p->spread_first + i];
        out_route(st, out, h, fam, &r, owner, owner_len);
    }
}

static pipe_result_t handle_axfr(pipe_state_t *st, const field_t *f, size_t n, pipe_out_t *out)
{
    uint32_t zi;
    const ibp_tbl_zone_t *z = (n == 2 || n == 3) ? axfr_zone(st, f, n, &zi) : NULL;
    if (!z)
        return malformed(st, out, false);
    const ibp_table_t *t = st->table;
    for (uint32_t i = 0; i < t->n[IBP_SEC_NAMES]; i++) {
        const ibp_tbl_name_t *nm = &t->names[i];
        if (nm->zone != zi)
            continue;
        const char *owner = ibp_table_str(t, nm->name);
        out_statics(st, out, nm, IBP_T_ANY, owner, nm->name_len);
        if (nm->host != IBP_TBL_NONE)
            axfr_host(st, out, &t->hosts[nm->host], owner, nm->name_len);
    }
    out_put(out, "END\n", 4);
    return PIPE_OK;
}

static void cmd_status(const pipe_state_t *st, pipe_out_t *out)
{
    out_str(out, "table: ");
    out_str(out, st->table_path ? st->table_path : "(none)");
    out_str(out, st->table ? "\ngeneration: " : "\nno table loaded\n");
    if (st->table) {
        out_uint(out, st->table->h->generation);
        out_str(out, "\nbuild_time: ");
        out_uint(out, st->table->h->build_time);
        out_str(out, "\nzones: ");
        out_uint(out, st->table->n[IBP_SEC_ZONES]);
        out_put(out, "\n", 1);
    }
    out_str(out, "queries: ");
    out_uint(out, st->stats.queries);
    out_str(out, "\nmalformed: ");
    out_uint(out, st->stats.malformed);
    out_str(out, "\nacme_asked: ");
    out_uint(out, st->stats.acme_asked);
    out_str(out, "\nacme_unanswered: ");
    out_uint(out, st->stats.acme_unanswered);
    out_str(out, "\nacme_bad_replies: ");
    out_uint(out, st->stats.acme_bad);
    out_put(out, "\n", 1);
}

/* "lookup NAME IP": the ANY answer a client at IP would get. */
static void cmd_lookup(pipe_state_t *st, const char *args, size_t len, pipe_out_t *out)
{
    const char *sp = memchr(args, ' ', len);
    field_t name = {args, sp ? (size_t)(sp - args) : len};
    field_t ip = {sp ? sp + 1 : "", sp ? len - name.len - 1 : 0};
    ibp_client_t c;
    if (!sp || !parse_client(&ip, NULL, &c)) {
        out_str(out, "usage: lookup NAME IP\nEND\n");
        return;
    }
    int saved_abi = st->abi;
    st->abi = 3;
    query_t q = {.qname = name, .qtype = IBP_T_ANY};
    answer_query(st, out, &q, &c);   /* ends with END */
    st->abi = saved_abi;
}

static bool is_cmd(const char *line, size_t len)
{
    return len >= 4 && !memcmp(line, "CMD\t", 4);
}

/* For CMD, only a line that is exactly END ends the answer (FAIL is text
 * to `pdnsutil backend-cmd`), so refusals end with END too. */
static pipe_result_t cmd_refused(pipe_state_t *st, pipe_out_t *out, const char *why)
{
    st->stats.malformed++;
    out_str(out, "error: ");
    out_str(out, why);
    out_str(out, "\nEND\n");
    return PIPE_MALFORMED;
}

static pipe_result_t handle_cmd(pipe_state_t *st, const char *line, size_t len, pipe_out_t *out)
{
    if (st->abi < 5)   /* not a request below ABI 5: PowerDNS never sends it there */
        return malformed(st, out, false);
    if (memchr(line, '\0', len))
        return cmd_refused(st, out, "the command contains a NUL byte");
    const char *text = line + 4;
    size_t tlen = len - 4;
    if (tlen == 6 && !memcmp(text, "status", 6)) {
        cmd_status(st, out);
    } else if (tlen > 7 && !memcmp(text, "lookup ", 7)) {
        cmd_lookup(st, text + 7, tlen - 7, out);
        return PIPE_OK;
    } else {
        out_str(out, "unknown command; try: status, lookup NAME IP\n");
    }
    out_put(out, "END\n", 4);
    return PIPE_OK;
}

pipe_result_t pipe_handle_line(pipe_state_t *st, const char *line, size_t len, pipe_out_t *out)
{
    if (len && line[len - 1] == '\r')
        len--;
    /* Before splitting: a command is free text, tabs and all. */
    if (is_cmd(line, len))
        return handle_cmd(st, line, len, out);
    field_t f[MAX_FIELDS];
    size_t n = split_fields(line, len, f, MAX_FIELDS);
    if (n == 0 || n > MAX_FIELDS)
        return malformed(st, out, false);
    if (field_is(&f[0], "Q"))
        return handle_q(st, f, n, out);
    if (field_is(&f[0], "HELO"))
        return handle_helo(st, f, n, out);
    if (field_is(&f[0], "AXFR") && st->abi)
        return handle_axfr(st, f, n, out);
    return malformed(st, out, false);
}

void pipe_answer_overlong(pipe_state_t *st, const char *head, size_t head_len, pipe_out_t *out)
{
    if (st->abi >= 5 && is_cmd(head, head_len))
        cmd_refused(st, out, "the command is longer than any request");
    else
        malformed(st, out, false);
}
