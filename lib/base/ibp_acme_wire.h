/* The ACME exchange between a coprocess and the sidecar (BEHAVIOR §5): one
 * SOCK_SEQPACKET message each way on a local socket, so that the coprocess
 * never parses more than one bounded datagram and never fetches anything.
 *
 *   request: "ACME1 <name>"                      the asked owner name
 *   reply:   "ACME1 OK\n<value>[\n<value>...]"   TXT contents, presentation form
 *            "ACME1 NONE"                        no value in time (answer NODATA)
 *
 * A value is what PowerDNS takes as TXT content: quoted strings of at most
 * 255 bytes each, printable ASCII only (no tab, newline or NUL can reach a
 * DATA line). Both sides check every message against this. */
#ifndef IBP_ACME_WIRE_H
#define IBP_ACME_WIRE_H

#include <stdbool.h>
#include <stddef.h>

#include "ibp_err.h"
#include "ibp_limits.h"

#define IBP_ACME_MAGIC "ACME1 "
/* A 512-byte body in 255-byte strings, every byte escaped as \DDD. */
#define IBP_ACME_VALUE_MAX (IBP_ACME_BODY_MAX * 4 + 3 * 2 + 2)
#define IBP_ACME_REQUEST_MAX (sizeof IBP_ACME_MAGIC + IBP_NAME_MAX + 1)
#define IBP_ACME_REPLY_MAX (16 + IBP_ACME_PER_NAME_MAX * (IBP_ACME_VALUE_MAX + 1))

/* Where the sidecar listens unless configured otherwise: acme.sock in the
 * table's directory. */
void ibp_acme_default_socket(const char *table_path, char *out, size_t cap);

/* "ACME1 <name>" into out (cap >= IBP_ACME_REQUEST_MAX); its length, or 0
 * if the name is longer than a DNS name. */
size_t ibp_acme_request_encode(const char *name, size_t len, char *out, size_t cap);

/* The name of a request, lowercased, into name[IBP_NAME_MAX + 1]. */
IBP_MUST_CHECK
bool ibp_acme_request_parse(const char *msg, size_t len, char name[IBP_NAME_MAX + 1],
                            ibp_err_t *err);

/* A fetched body (already trimmed) as a TXT value: split in strings of 255
 * bytes, '"' and '\' escaped, bytes outside printable ASCII as \DDD. out
 * holds IBP_ACME_VALUE_MAX + 1; returns the length (0 for an empty or too
 * long body). */
size_t ibp_acme_value_from_body(const char *body, size_t len, char *out, size_t cap);

/* Is this a value a reply may carry? */
bool ibp_acme_value_ok(const char *v, size_t len);

/* Walks a reply: on success *n values (at most IBP_ACME_PER_NAME_MAX) are
 * set as pointers into msg with their lengths; NONE gives 0 values. Any
 * malformed byte refuses the whole reply. */
IBP_MUST_CHECK
bool ibp_acme_reply_parse(const char *msg, size_t len, const char *val[IBP_ACME_PER_NAME_MAX],
                          size_t val_len[IBP_ACME_PER_NAME_MAX], size_t *n, ibp_err_t *err);

#endif
