/* The usage store: IBP's `requests` table (IBP-NODE §7.3) and, in the same
 * database, the harvest sequence of every counter file, so that counts and
 * the note of having stored them commit together (exactly once); and the
 * monitors' `member_events` (IBP-NODE §7.5), read for /events and written
 * by the events recorder (recorder.h) on a handle of its own.
 *
 * One interface, two back-ends: SQLite (store_sqlite.c, the embedded
 * default) and MySQL/MariaDB. A store handle belongs to one thread. */
#ifndef IBPDNS_SIDECAR_STORE_H
#define IBPDNS_SIDECAR_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "event_time.h"
#include "ibp_err.h"

/* IBP's column widths (characters): longer values are cut to them. */
#define SC_COL_DOMAIN 128
#define SC_COL_MEMBER 64
#define SC_COL_ASN 32
#define SC_COL_NETNAME 96
#define SC_COL_COUNTRY 64
#define SC_COL_NODE 32

typedef struct sc_usage_row {
    char date[11];         /* YYYY-MM-DD */
    const char *node_id, *domain, *member, *country_code, *country_name, *asn, *network_name;
    bool is_ipv6;
    uint64_t hits;
} sc_usage_row_t;

/* getUsage's filters (IBP-NODE §8.2): dates YYYY-MM-DD, the rest "" = any. */
typedef struct sc_usage_query {
    const char *start, *end, *domain, *member, *country;
} sc_usage_query_t;

typedef bool (*sc_usage_row_fn)(void *ctx, const sc_usage_row_t *row);

/* ---- member_events (IBP-NODE §7.5) ----------------------------------------
 * One row per outage of a (member, check type, check name, domain,
 * endpoint, family): status 0, end_time NULL while it lasts. Times UTC,
 * written in whole seconds. */

/* What identifies an event ("" domain or endpoint: NULL in the table). */
typedef struct sc_event_key {
    const char *member, *check_type, *check_name, *domain, *endpoint;
    bool is_ipv6;
} sc_event_key_t;

/* A row read back: NULL texts read as "", but data stays NULL. */
typedef struct sc_event_row {
    sc_event_key_t key;
    bool status;
    sc_ts_t start;
    bool has_end;          /* end_time is not NULL */
    sc_ts_t end;
    const char *error;
    const char *data;      /* additional_data as stored, or NULL */
} sc_event_row_t;

/* getMemberEvents: member_name = member AND start <= start_time <= end,
 * AND domain_name = domain when domain is not "", by start_time. */
typedef struct sc_event_query {
    const char *member, *domain;
    sc_ts_t start, end;
} sc_event_query_t;

/* false: stop reading (the query then fails with "stopped by its reader"). */
typedef bool (*sc_event_row_fn)(void *ctx, const sc_event_row_t *row);

typedef struct sc_store sc_store_t;

typedef struct sc_store_ops {
    bool (*begin)(sc_store_t *s, ibp_err_t *err);
    bool (*add)(sc_store_t *s, const sc_usage_row_t *row, ibp_err_t *err);
    /* The harvests of a counter file committed so far (0 if never seen). */
    bool (*get_seq)(sc_store_t *s, const char *file, uint64_t *seq, ibp_err_t *err);
    bool (*set_seq)(sc_store_t *s, const char *file, uint64_t seq, ibp_err_t *err);
    bool (*forget)(sc_store_t *s, const char *file, ibp_err_t *err);
    bool (*commit)(sc_store_t *s, ibp_err_t *err);
    void (*rollback)(sc_store_t *s);
    /* SUM(hits) grouped as getUsage groups, in date order. */
    bool (*query)(sc_store_t *s, const sc_usage_query_t *q, sc_usage_row_fn fn, void *ctx,
                  ibp_err_t *err);
    /* member_events, any handle: getMemberEvents' rows, by start_time. */
    bool (*events_query)(sc_store_t *s, const sc_event_query_t *q, sc_event_row_fn fn,
                         void *ctx, ibp_err_t *err);
    /* Every open row (status 0, end_time NULL): the recorder's state at start. */
    bool (*events_open_rows)(sc_store_t *s, sc_event_row_fn fn, void *ctx, ibp_err_t *err);
    /* The writes, between begin and commit, on an events handle only (NULL
     * elsewhere). Each can be sent again after a commit whose outcome was not
     * reported, and changes nothing twice. event_open: an open row from
     * start, unless the key has an open row or one that started at start.
     * event_close: the key's open rows that started at least min_s before
     * end get end_time = end; the others that started at or before end are
     * deleted (an outage shorter than System.MinimumOfflineTime). */
    bool (*event_open)(sc_store_t *s, const sc_event_key_t *k, int64_t start, const char *error,
                       const char *data, ibp_err_t *err);
    bool (*event_close)(sc_store_t *s, const sc_event_key_t *k, int64_t end, int64_t min_s,
                        uint64_t *closed, uint64_t *deleted, ibp_err_t *err);
    void (*close)(sc_store_t *s);
} sc_store_ops_t;

struct sc_store {
    const sc_store_ops_t *ops;
    const char *kind;      /* "sqlite", "mysql" */
    char warning[IBP_ERR_MAX];   /* set by open: something to log that did not stop it */
};

/* Mysql.* of the node config; the password is never logged. */
typedef struct sc_mysql_cfg {
    const char *host, *user, *pass, *db;
    unsigned port;
} sc_mysql_cfg_t;

/* Connects (10 s timeouts), creates `requests` and `ibpdns_harvests` if
 * missing and checks the unique key (a repair goes into warning). */
IBP_MUST_CHECK
bool sc_store_mysql_open(const sc_mysql_cfg_t *cfg, bool read_only, sc_store_t **out,
                         ibp_err_t *err);

/* Opens (creating the schema if missing) the SQLite store at path. */
IBP_MUST_CHECK
bool sc_store_sqlite_open(const char *path, bool read_only, sc_store_t **out, ibp_err_t *err);

/* The events recorder's handle: creates member_events if missing (the
 * only way this sidecar ever creates or writes that table: with MySQL only
 * when Storage.RecordEvents is true) and prepares its writes. begin,
 * commit and rollback frame them; the usage ops are not prepared. */
IBP_MUST_CHECK
bool sc_store_sqlite_open_events(const char *path, sc_store_t **out, ibp_err_t *err);
IBP_MUST_CHECK
bool sc_store_mysql_open_events(const sc_mysql_cfg_t *cfg, sc_store_t **out, ibp_err_t *err);

#endif
