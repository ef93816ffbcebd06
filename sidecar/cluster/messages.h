/* The NATS payloads of IBP-NODE §8, decoded and encoded without a
 * connection (so that the fuzz target and the unit test drive them):
 * consensus.cluster JOINs, dns.usage.getUsage requests and their replies,
 * geodns.override.update. Decoding follows Go's encoding/json as IBP's
 * nodes do: keys matched case-insensitively, the last one wins, null is
 * "absent", unknown keys ignored. */
#ifndef IBPDNS_SIDECAR_MESSAGES_H
#define IBPDNS_SIDECAR_MESSAGES_H

#include <stdbool.h>
#include <stddef.h>

#include "gojson.h"
#include "ibp_err.h"
#include "ibp_model.h"

/* Larger payloads are refused unread: the server's default limit (IBP's
 * messages are a few hundred bytes). */
#define SC_MSG_MAX_BYTES (1024 * 1024)
#define SC_PEER_FIELD_MAX 128   /* bytes kept of a peer's id, role, addresses */

/* ---- consensus.cluster ------------------------------------------------------------ */

typedef struct sc_node_info {
    char node_id[SC_PEER_FIELD_MAX];
    char public_address[SC_PEER_FIELD_MAX];
    char listen_address[SC_PEER_FIELD_MAX];
    char listen_port[SC_PEER_FIELD_MAX];
    char node_role[SC_PEER_FIELD_MAX];
} sc_node_info_t;

typedef struct sc_cluster_msg {
    char type[16];         /* "join", ...; cut */
    sc_node_info_t sender;
} sc_cluster_msg_t;

/* Our JOIN: {"type":"join","sender":{...,"LastHeard":"<RFC 3339 nano>"},"members":null}. */
void sc_join_encode(sc_buf_t *b, const sc_node_info_t *self, long long sec, long nsec);

IBP_MUST_CHECK
bool sc_cluster_msg_decode(const char *buf, size_t len, sc_cluster_msg_t *out, ibp_err_t *err);

/* ---- dns.usage.getUsage ----------------------------------------------------------- */

typedef struct sc_usage_request {
    char *start, *end, *domain, *member, *country;   /* never NULL after a decode */
    bool nul[5];           /* that one held a NUL (kept up to it): it matches no row */
} sc_usage_request_t;

/* false: Go's Unmarshal would fail; err holds its text (the reply's
 * "unmarshal error: <text>"). */
IBP_MUST_CHECK
bool sc_usage_request_decode(const char *buf, size_t len, sc_usage_request_t *out,
                             ibp_err_t *err);
void sc_usage_request_free(sc_usage_request_t *r);

typedef struct sc_usage_record {
    const char *date;      /* YYYY-MM-DD */
    const char *domain, *member, *country_code, *asn, *network_name, *country_name;
    unsigned long long hits;
    bool is_ipv6;
} sc_usage_record_t;

/* The reply: {"nodeID":..,"usageRecords":[..] or null,"error":..}. Call
 * begin, add each record, then end (error NULL or "" leaves it out, as
 * Go's omitempty; nil_records writes null, as Go's nil slice). */
void sc_usage_reply_begin(sc_buf_t *b, const char *node_id);
void sc_usage_reply_add(sc_buf_t *b, const sc_usage_record_t *r);
void sc_usage_reply_end(sc_buf_t *b, bool nil_records, const char *error);

/* ---- geodns.override.update --------------------------------------------------------- */

typedef enum sc_override_action { SC_OV_SET, SC_OV_REMOVE, SC_OV_CLEAR } sc_override_action_t;

/* Why a message was ignored: each kind is logged at most once a minute. */
typedef enum sc_bad_kind {
    SC_BAD_JSON, SC_BAD_ACTION, SC_BAD_FIELDS, SC_BAD_SIZE, SC_BAD_KIND_COUNT
} sc_bad_kind_t;

typedef struct sc_override_msg {
    sc_override_action_t action;
    ibp_override_t entry;  /* domain normalised; cc and the rest for set/remove */
} sc_override_msg_t;

IBP_MUST_CHECK
bool sc_override_msg_decode(const char *buf, size_t len, sc_override_msg_t *out,
                            sc_bad_kind_t *kind, ibp_err_t *err);
void sc_override_msg_free(sc_override_msg_t *m);

#endif
