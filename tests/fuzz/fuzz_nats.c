/* The NATS payloads the sidecar decodes (sidecar/cluster/messages.h), on
 * arbitrary bytes: a consensus.cluster message, a getUsage request (and the
 * reply it would get, which must be valid JSON by Go's own syntax check),
 * an override update applied to a small table. Aborts when a reply or a
 * JOIN fails the checker, or when an edited table loses its order. */
#include <stdlib.h>
#include <string.h>

#include "gojson.h"
#include "ibp_overrides.h"
#include "messages.h"
#include "peers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must_be_json(const sc_buf_t *b)
{
    char why[256];
    if (!b->oom && !sc_go_syntax_ok(b->p, b->len, why, sizeof why))
        abort();
}

static void usage_request(const char *buf, size_t size)
{
    sc_usage_request_t rq;
    ibp_err_t err;
    sc_buf_t b = {0};
    sc_usage_reply_begin(&b, "DNS1");
    if (sc_usage_request_decode(buf, size, &rq, &err)) {
        sc_usage_record_t r = {.date = rq.start, .domain = rq.domain, .member = rq.member,
                               .country_code = rq.country, .asn = rq.end,
                               .network_name = "", .country_name = "", .hits = 1};
        sc_usage_reply_add(&b, &r);
        sc_usage_reply_end(&b, false, rq.end);
        sc_usage_request_free(&rq);
    } else {
        sc_usage_reply_end(&b, false, err.msg);
    }
    must_be_json(&b);
    sc_buf_free(&b);
}

static void cluster_msg(const char *buf, size_t size)
{
    static sc_peers_t peers;   /* big; the fuzzer runs one input at a time */
    sc_cluster_msg_t m;
    ibp_err_t err;
    if (!sc_cluster_msg_decode(buf, size, &m, &err))
        return;
    (void)sc_peers_heard(&peers, &m, "SELF", 1000);
    sc_peers_expire(&peers, 1000 + SC_PEER_STALE_S + 1);
    sc_buf_t b = {0};
    sc_join_encode(&b, &m.sender, 1767225600, 123456789);
    must_be_json(&b);
    sc_buf_free(&b);
}

static void override_msg(const char *buf, size_t size)
{
    sc_override_msg_t m;
    sc_bad_kind_t kind;
    ibp_err_t err;
    if (!sc_override_msg_decode(buf, size, &m, &kind, &err))
        return;
    ibp_overrides_t t = {0};
    ibp_override_t seed = {.domain = "rpc.example.net", .cc = "GB", .member_name = ""};
    if (ibp_overrides_set(&t, &seed, &err)) {
        if (m.action == SC_OV_SET)
            (void)ibp_overrides_set(&t, &m.entry, &err);
        else if (m.action == SC_OV_REMOVE)
            (void)ibp_overrides_remove(&t, m.entry.domain, m.entry.cc);
        else
            (void)ibp_overrides_clear(&t, m.entry.domain);
        for (size_t i = 1; i < t.n; i++) {
            int r = strcmp(t.v[i - 1].domain, t.v[i].domain);
            if (r > 0 || (r == 0 && strcmp(t.v[i - 1].cc, t.v[i].cc) >= 0))
                abort();
        }
    }
    ibp_overrides_free(&t);
    sc_override_msg_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    char why[256];
    (void)sc_go_syntax_ok(buf, size, why, sizeof why);
    usage_request(buf, size);
    cluster_msg(buf, size);
    override_msg(buf, size);
    return 0;
}
