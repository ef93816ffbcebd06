/* What changes for clients between two routing tables: for every host and
 * family present in both, which share of the client space moves from which
 * answer to which, plus the hosts, members and zones one table has and the
 * other lacks. Reads the tables alone (lib/table), never prints. */
#ifndef IBP_TABLE_DIFF_H
#define IBP_TABLE_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"
#include "ibp_table.h"

/* Address counts up to 2^128 - 1: a network is never the whole space. */
typedef unsigned __int128 ibp_u128;

/* Clients of one family that one host/family's answers are counted over. */
typedef struct ibp_diff_space {
    uint64_t networks;     /* located networks (see ibp_table_diff) */
    ibp_u128 addresses;    /* their addresses */
} ibp_diff_space_t;

typedef struct ibp_diff_move {
    const char *host;      /* the host's name (in NEW's strings) */
    unsigned family;       /* 0: A, 1: AAAA */
    bool client_v6;        /* clients counted: IPv6 (else IPv4, under ::/96) */
    char *from, *to;       /* answer labels (ibp_table_diff) */
    ibp_diff_space_t moved;
    const ibp_diff_space_t *located;   /* the host/family/client family's total */
} ibp_diff_move_t;

typedef struct ibp_diff_names {
    const char **v;        /* into the tables' strings, sorted */
    size_t n;
} ibp_diff_names_t;

typedef struct ibp_diff {
    ibp_diff_move_t *moves;   /* largest share of located networks first */
    size_t n_moves;
    ibp_diff_space_t *spaces; /* the totals the moves point at */
    size_t n_spaces;
    ibp_diff_names_t new_hosts, gone_hosts, new_members, gone_members, new_zones, gone_zones;
    size_t one_sided_policies;  /* a family one table answers for a host and the other not */
} ibp_diff_t;

/* Compares two attached tables, which must outlive d.
 *
 * A network is a largest prefix over which both tables give a host/family
 * one answer each: the intersection of OLD's and NEW's networks as
 * `ibpdns-table dump` lists them (ECS scopes), split at ::/96 so that none
 * holds IPv4 and IPv6 clients together. IPv4 networks are those under
 * ::/96. A network is located when either table answers it from a
 * location; networks neither locates, and the IPv4-alias placeholder ranges
 * (answer undef in either), are not counted at all.
 *
 * Answers are compared by label: the first target's member name (its key
 * when unnamed), "override:CC", "failover-spread:A,B,..." (the targets that
 * share the clients, in order), "unlocated" or "none". A move is every
 * network whose label differs, counted per (host, family, client family,
 * from, to). Cost: one joint walk of both tries per host/family, stopping
 * where both answers are uniform. */
IBP_MUST_CHECK
bool ibp_table_diff(const ibp_table_t *old_t, const ibp_table_t *new_t, ibp_diff_t *d,
                    ibp_err_t *err);
void ibp_table_diff_free(ibp_diff_t *d);

/* The decimal digits of x into buf (at least 40 bytes). */
const char *ibp_u128_text(ibp_u128 x, char *buf, size_t cap);

#endif
