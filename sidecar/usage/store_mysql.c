/* The usage store in MySQL/MariaDB (libmariadb): IBP's `requests` table,
 * created if missing, its unique key checked and repaired as IBP's node
 * does (IBP-NODE §7.3), and our `ibpdns_harvests` beside it, both InnoDB so
 * that counts and harvest sequences commit together. See store.h. */
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define KEY_COLS "date,node_id,domain_name,member_name,network_asn,network_name,country_code," \
                 "country_name,is_ipv6"
#define TIMEOUT_S 10u
#define TEXT_CAP 512       /* a result column: the widest is 128 characters */

typedef struct mysql_store {
    sc_store_t base;
    MYSQL *db;
    MYSQL_STMT *upsert, *get_seq, *set_seq, *forget;
    MYSQL_STMT *ev_open, *ev_close, *ev_delete;   /* an events handle's writes */
    bool in_txn;
} mysql_store_t;

static const char CREATE_REQUESTS[] =
    "CREATE TABLE IF NOT EXISTS requests ("
    " id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " date DATE, node_id VARCHAR(32), domain_name VARCHAR(128), member_name VARCHAR(64),"
    " network_asn VARCHAR(32), network_name VARCHAR(96), country_code VARCHAR(2),"
    " country_name VARCHAR(64), is_ipv6 TINYINT, hits INT UNSIGNED,"
    " UNIQUE KEY uniq_traffic_dedupe (" KEY_COLS ")) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
static const char CREATE_HARVESTS[] =
    "CREATE TABLE IF NOT EXISTS ibpdns_harvests (file VARCHAR(255) NOT NULL PRIMARY KEY,"
    " seq BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB";

/* IBP-NODE §7.5 (the monitors' DDL, ibp-geodns-libs). Made only by an
 * events handle: a node that only reads events never creates or alters
 * the monitors' table. The times are spelt out as what a bare TIMESTAMP
 * means under explicit_defaults_for_timestamp, so that an older server
 * does not make start_time follow every UPDATE. */
static const char CREATE_EVENTS[] =
    "CREATE TABLE IF NOT EXISTS member_events ("
    " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " member_name VARCHAR(255), check_type VARCHAR(50), check_name VARCHAR(100),"
    " domain_name VARCHAR(255) NULL, endpoint TEXT NULL, status BOOLEAN,"
    " start_time TIMESTAMP NULL DEFAULT NULL, end_time TIMESTAMP NULL DEFAULT NULL,"
    " error TEXT NULL, additional_data JSON NULL, is_ipv6 BOOLEAN,"
    " KEY idx_member_time (member_name, start_time)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

#define EV_COLS "member_name,check_type,check_name,domain_name,endpoint,status,start_time," \
                "end_time,error,additional_data,is_ipv6"
/* Our writes match the key exactly (BINARY), as the recorder keys it;
 * NULL-safe for the domain and endpoint that site and domain checks lack. */
#define EV_KEY "BINARY member_name = ? AND BINARY check_type = ? AND BINARY check_name = ? AND" \
               " BINARY domain_name <=> ? AND BINARY endpoint <=> ? AND is_ipv6 = ?"
#define EV_OPEN_ROW "status = 0 AND end_time IS NULL"

static bool db_fail(mysql_store_t *s, const char *what, ibp_err_t *err)
{
    return ibp_err_set(err, "mysql %s: %s", what, mysql_error(s->db));
}

static bool stmt_fail(MYSQL_STMT *st, const char *what, ibp_err_t *err)
{
    return ibp_err_set(err, "mysql %s: %s", what, mysql_stmt_error(st));
}

static bool run(mysql_store_t *s, const char *sql, ibp_err_t *err)
{
    if (mysql_query(s->db, sql) != 0)
        return db_fail(s, "query", err);
    MYSQL_RES *r = mysql_store_result(s->db);
    if (r)
        mysql_free_result(r);
    return true;
}

static void bind_str(MYSQL_BIND *b, const char *v, unsigned long *len)
{
    *len = (unsigned long)strlen(v ? v : "");
    *b = (MYSQL_BIND){.buffer_type = MYSQL_TYPE_STRING, .buffer = (void *)(v ? v : ""),
                      .buffer_length = *len, .length = len};
}

static void bind_u64(MYSQL_BIND *b, uint64_t *v)
{
    *b = (MYSQL_BIND){.buffer_type = MYSQL_TYPE_LONGLONG, .buffer = v, .is_unsigned = 1};
}

static bool exec_stmt(MYSQL_STMT *st, MYSQL_BIND *params, const char *what, ibp_err_t *err)
{
    if (mysql_stmt_bind_param(st, params) != 0 || mysql_stmt_execute(st) != 0)
        return stmt_fail(st, what, err);
    return true;
}

static bool m_begin(sc_store_t *b, ibp_err_t *err)
{
    mysql_store_t *s = (mysql_store_t *)b;
    if (!run(s, "START TRANSACTION", err))
        return false;
    s->in_txn = true;
    return true;
}

static bool m_add(sc_store_t *b, const sc_usage_row_t *r, ibp_err_t *err)
{
    mysql_store_t *s = (mysql_store_t *)b;
    MYSQL_BIND p[10];
    unsigned long len[8];
    const char *v[] = {r->date, r->node_id, r->domain, r->member, r->asn, r->network_name,
                       r->country_code, r->country_name};
    for (int i = 0; i < 8; i++)
        bind_str(&p[i], v[i], &len[i]);
    uint64_t v6 = r->is_ipv6, hits = r->hits;
    bind_u64(&p[8], &v6);
    bind_u64(&p[9], &hits);
    return exec_stmt(s->upsert, p, "upsert", err);
}

static bool m_get_seq(sc_store_t *b, const char *file, uint64_t *seq, ibp_err_t *err)
{
    mysql_store_t *s = (mysql_store_t *)b;
    MYSQL_BIND p[1], out[1];
    unsigned long len;
    bind_str(&p[0], file, &len);
    *seq = 0;
    uint64_t v = 0;
    bind_u64(&out[0], &v);
    MYSQL_STMT *st = s->get_seq;
    if (!exec_stmt(st, p, "harvest sequence", err))
        return false;
    bool ok = mysql_stmt_bind_result(st, out) == 0 || stmt_fail(st, "harvest sequence", err);
    int rc = ok ? mysql_stmt_fetch(st) : 1;
    if (ok && rc == 0)
        *seq = v;
    else if (ok && rc != MYSQL_NO_DATA)
        ok = stmt_fail(st, "harvest sequence", err);
    mysql_stmt_free_result(st);
    return ok;
}

static bool m_set_seq(sc_store_t *b, const char *file, uint64_t seq, ibp_err_t *err)
{
    mysql_store_t *s = (mysql_store_t *)b;
    MYSQL_BIND p[2];
    unsigned long len;
    bind_str(&p[0], file, &len);
    bind_u64(&p[1], &seq);
    return exec_stmt(s->set_seq, p, "harvest sequence", err);
}

static bool m_forget(sc_store_t *b, const char *file, ibp_err_t *err)
{
    mysql_store_t *s = (mysql_store_t *)b;
    MYSQL_BIND p[1];
    unsigned long len;
    bind_str(&p[0], file, &len);
    return exec_stmt(s->forget, p, "forget a counter file", err);
}

static bool m_commit(sc_store_t *b, ibp_err_t *err)
{
    mysql_store_t *s = (mysql_store_t *)b;
    if (mysql_commit(s->db) != 0)
        return db_fail(s, "commit", err);
    s->in_txn = false;
    return true;
}

static void m_rollback(sc_store_t *b)
{
    mysql_store_t *s = (mysql_store_t *)b;
    if (s->in_txn)
        (void)mysql_rollback(s->db);
    s->in_txn = false;
}

typedef struct result_row {
    char text[7][TEXT_CAP];
    unsigned long len[7];
    my_bool is_null[7];
    uint64_t v6, hits;
    MYSQL_BIND out[9];
} result_row_t;

static void bind_results(result_row_t *r)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < 7; i++)
        r->out[i] = (MYSQL_BIND){.buffer_type = MYSQL_TYPE_STRING, .buffer = r->text[i],
                                 .buffer_length = TEXT_CAP - 1, .length = &r->len[i],
                                 .is_null = &r->is_null[i]};
    bind_u64(&r->out[7], &r->v6);
    bind_u64(&r->out[8], &r->hits);
}

static const char *col(result_row_t *r, int i)
{
    unsigned long n = r->len[i] < TEXT_CAP - 1 ? r->len[i] : TEXT_CAP - 1;
    r->text[i][r->is_null[i] ? 0 : n] = '\0';
    return r->text[i];
}

/* IBP's branches (IBP-NODE §8.2): a domain filters by domain (and member,
 * if given) in SQL, under the column's collation (case ignored), as IBP's
 * query; a member alone is an exact match (BINARY), as Go's ==; the
 * country as Go's EqualFold (BINARY: no PAD SPACE, no accent folding).
 * Rows in the order of their grouping. */
static bool m_query(sc_store_t *b, const sc_usage_query_t *q, sc_usage_row_fn fn, void *ctx,
                    ibp_err_t *err)
{
    mysql_store_t *s = (mysql_store_t *)b;
    bool by_domain = q->domain && q->domain[0];
    bool by_member = q->member && q->member[0];
    bool by_country = q->country && q->country[0];
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT DATE_FORMAT(date, '%%Y-%%m-%%d'),domain_name,member_name,country_code,"
             "network_asn,network_name,country_name,is_ipv6,SUM(hits) FROM requests "
             "WHERE date >= ? AND date <= ?%s%s%s GROUP BY date,domain_name,member_name,"
             "country_code,network_asn,network_name,country_name,is_ipv6 ORDER BY date,"
             "domain_name,member_name,country_code,network_asn,network_name,country_name,is_ipv6",
             by_domain ? " AND domain_name = ?" : "",
             !by_member ? "" : by_domain ? " AND member_name = ?" : " AND BINARY member_name = ?",
             by_country ? " AND BINARY LOWER(country_code) = LOWER(?)" : "");
    MYSQL_STMT *st = mysql_stmt_init(s->db);
    if (!st)
        return db_fail(s, "usage query", err);
    MYSQL_BIND p[5];
    unsigned long len[5];
    int n = 0;
    bind_str(&p[n], q->start, &len[n]), n++;
    bind_str(&p[n], q->end, &len[n]), n++;
    if (by_domain)
        bind_str(&p[n], q->domain, &len[n]), n++;
    if (by_member)
        bind_str(&p[n], q->member, &len[n]), n++;
    if (by_country)
        bind_str(&p[n], q->country, &len[n]), n++;
    result_row_t *r = malloc(sizeof *r);
    bool ok = r && (mysql_stmt_prepare(st, sql, strlen(sql)) == 0 ||
                    stmt_fail(st, "usage query", err)) &&
              exec_stmt(st, p, "usage query", err);
    if (r)
        bind_results(r);
    ok = ok && (mysql_stmt_bind_result(st, r->out) == 0 || stmt_fail(st, "usage query", err));
    int rc = 0;
    while (ok && (rc = mysql_stmt_fetch(st)) == 0) {
        sc_usage_row_t row = {.domain = col(r, 1), .member = col(r, 2),
                              .country_code = col(r, 3), .asn = col(r, 4),
                              .network_name = col(r, 5), .country_name = col(r, 6),
                              .is_ipv6 = r->v6 != 0, .hits = r->hits, .node_id = ""};
        snprintf(row.date, sizeof row.date, "%.10s", col(r, 0));
        ok = fn(ctx, &row) || ibp_err_set(err, "usage query stopped by its reader");
    }
    if (ok && rc != MYSQL_NO_DATA)
        ok = stmt_fail(st, "usage query", err);
    if (!r)
        ok = ibp_err_set(err, "out of memory");
    free(r);
    mysql_stmt_close(st);
    return ok;
}

/* ---- member_events ----------------------------------------------------------- */

/* Bounds on what one row's columns bring in: a longer error or endpoint is
 * cut (at a character), longer additional_data reads as NULL. */
#define EV_NAME_CAP 1024       /* VARCHAR(255) of utf8mb4 */
#define EV_TEXT_CAP 65536      /* TEXT */
#define EV_DATA_CAP (1u << 20) /* JSON (LONGTEXT in MariaDB) */

typedef struct ev_result {
    char member[EV_NAME_CAP], type[EV_NAME_CAP], name[EV_NAME_CAP], domain[EV_NAME_CAP];
    char endpoint[EV_TEXT_CAP], error[EV_TEXT_CAP], data[EV_DATA_CAP];
    unsigned long len[11];
    my_bool is_null[11], trunc[11];
    uint64_t status, v6;
    MYSQL_TIME start, end;
    MYSQL_BIND out[11];
} ev_result_t;

static void bind_text_out(ev_result_t *r, int i, char *buf, size_t cap)
{
    r->out[i] = (MYSQL_BIND){.buffer_type = MYSQL_TYPE_STRING, .buffer = buf,
                             .buffer_length = cap - 1, .length = &r->len[i],
                             .is_null = &r->is_null[i], .error = &r->trunc[i]};
}

static void ev_bind_results(ev_result_t *r)
{
    memset(r->len, 0, sizeof r->len);
    memset(r->out, 0, sizeof r->out);
    bind_text_out(r, 0, r->member, sizeof r->member);
    bind_text_out(r, 1, r->type, sizeof r->type);
    bind_text_out(r, 2, r->name, sizeof r->name);
    bind_text_out(r, 3, r->domain, sizeof r->domain);
    bind_text_out(r, 4, r->endpoint, sizeof r->endpoint);
    r->out[5] = (MYSQL_BIND){.buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &r->status,
                             .is_null = &r->is_null[5]};
    r->out[6] = (MYSQL_BIND){.buffer_type = MYSQL_TYPE_DATETIME, .buffer = &r->start,
                             .is_null = &r->is_null[6]};
    r->out[7] = (MYSQL_BIND){.buffer_type = MYSQL_TYPE_DATETIME, .buffer = &r->end,
                             .is_null = &r->is_null[7]};
    bind_text_out(r, 8, r->error, sizeof r->error);
    bind_text_out(r, 9, r->data, sizeof r->data);
    r->out[10] = (MYSQL_BIND){.buffer_type = MYSQL_TYPE_LONGLONG, .buffer = &r->v6,
                              .is_null = &r->is_null[10]};
}

/* Column i as a C string; a cut text ends on a UTF-8 character boundary. */
static const char *ev_text(ev_result_t *r, int i, char *buf, size_t cap)
{
    size_t n = r->len[i] < cap - 1 ? r->len[i] : cap - 1;
    if (r->is_null[i])
        n = 0;
    else if (r->len[i] > n)
        while (n > 0 && ((unsigned char)buf[n] & 0xC0) == 0x80)
            n--;
    buf[n] = '\0';
    return buf;
}

/* Go's driver (parseTime) reads a zero TIMESTAMP as the zero time. */
static sc_ts_t ev_time(const MYSQL_TIME *t)
{
    if (t->year == 0 || t->month == 0 || t->day == 0)
        return (sc_ts_t){.sec = SC_TS_ZERO_SEC};
    sc_civil_t c = {(int)t->year, (int)t->month, (int)t->day, (int)t->hour, (int)t->minute,
                    (int)t->second};
    return (sc_ts_t){.sec = sc_civil_to_sec(&c), .nsec = (int32_t)(t->second_part * 1000)};
}

static void ev_row_of(ev_result_t *r, sc_event_row_t *row)
{
    *row = (sc_event_row_t){
        .key = {.member = ev_text(r, 0, r->member, sizeof r->member),
                .check_type = ev_text(r, 1, r->type, sizeof r->type),
                .check_name = ev_text(r, 2, r->name, sizeof r->name),
                .domain = ev_text(r, 3, r->domain, sizeof r->domain),
                .endpoint = ev_text(r, 4, r->endpoint, sizeof r->endpoint),
                .is_ipv6 = !r->is_null[10] && r->v6 != 0},
        .status = !r->is_null[5] && r->status != 0,
        .start = r->is_null[6] ? (sc_ts_t){.sec = SC_TS_ZERO_SEC} : ev_time(&r->start),
        .has_end = !r->is_null[7],
        .error = ev_text(r, 8, r->error, sizeof r->error)};
    if (row->has_end)
        row->end = ev_time(&r->end);
    bool data_cut = !r->is_null[9] && r->len[9] > sizeof r->data - 1;
    const char *data = ev_text(r, 9, r->data, sizeof r->data);
    row->data = r->is_null[9] || data_cut ? NULL : data;
}

static void bind_time_in(MYSQL_BIND *b, MYSQL_TIME *t, sc_ts_t ts)
{
    sc_civil_t c;
    sc_sec_to_civil(ts.sec, &c);
    if (c.year < 0)   /* before every TIMESTAMP */
        c = (sc_civil_t){.year = 0, .month = 1, .day = 1};
    if (c.year > 9999) {   /* after every one: the bounds sc_ts_sql gives SQLite */
        c = (sc_civil_t){.year = 9999, .month = 12, .day = 31, .hour = 23, .min = 59, .sec = 59};
        ts.nsec = 999999999;
    }
    *t = (MYSQL_TIME){.year = (unsigned)c.year, .month = (unsigned)c.month,
                      .day = (unsigned)c.day, .hour = (unsigned)c.hour,
                      .minute = (unsigned)c.min, .second = (unsigned)c.sec,
                      .second_part = (unsigned long)(ts.nsec / 1000),
                      .time_type = MYSQL_TIMESTAMP_DATETIME};
    *b = (MYSQL_BIND){.buffer_type = MYSQL_TYPE_DATETIME, .buffer = t};
}

/* Runs a prepared SELECT of EV_COLS and hands each row to fn. */
static bool ev_fetch(MYSQL_STMT *st, MYSQL_BIND *params, sc_event_row_fn fn, void *ctx,
                     const char *what, ibp_err_t *err)
{
    ev_result_t *r = malloc(sizeof *r);
    if (!r)
        return ibp_err_set(err, "out of memory");
    ev_bind_results(r);
    bool ok = (params ? exec_stmt(st, params, what, err)
                      : mysql_stmt_execute(st) == 0 || stmt_fail(st, what, err)) &&
              (mysql_stmt_bind_result(st, r->out) == 0 || stmt_fail(st, what, err));
    int rc = 0;
    while (ok && ((rc = mysql_stmt_fetch(st)) == 0 || rc == MYSQL_DATA_TRUNCATED)) {
        sc_event_row_t row;
        ev_row_of(r, &row);
        ok = fn(ctx, &row) || ibp_err_set(err, "%s stopped by its reader", what);
    }
    if (ok && rc != MYSQL_NO_DATA)
        ok = stmt_fail(st, what, err);
    mysql_stmt_free_result(st);
    free(r);
    return ok;
}

/* Under the columns' collation, as IBP's query: case ignored. */
static bool m_events_query(sc_store_t *b, const sc_event_query_t *q, sc_event_row_fn fn,
                           void *ctx, ibp_err_t *err)
{
    mysql_store_t *s = (mysql_store_t *)b;
    bool by_domain = q->domain && q->domain[0];
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT " EV_COLS " FROM member_events WHERE member_name = ? AND "
             "start_time >= ? AND start_time <= ?%s ORDER BY start_time, id",
             by_domain ? " AND domain_name = ?" : "");
    MYSQL_STMT *st = mysql_stmt_init(s->db);
    if (!st)
        return db_fail(s, "events query", err);
    MYSQL_BIND p[4];
    unsigned long len[2];
    MYSQL_TIME t[2];
    bind_str(&p[0], q->member, &len[0]);
    bind_time_in(&p[1], &t[0], q->start);
    bind_time_in(&p[2], &t[1], q->end);
    if (by_domain)
        bind_str(&p[3], q->domain, &len[1]);
    bool ok = (mysql_stmt_prepare(st, sql, strlen(sql)) == 0 ||
               stmt_fail(st, "events query", err)) &&
              ev_fetch(st, p, fn, ctx, "events query", err);
    mysql_stmt_close(st);
    return ok;
}

static bool m_events_open_rows(sc_store_t *b, sc_event_row_fn fn, void *ctx, ibp_err_t *err)
{
    mysql_store_t *s = (mysql_store_t *)b;
    static const char sql[] = "SELECT " EV_COLS " FROM member_events WHERE " EV_OPEN_ROW
                              " ORDER BY start_time, id";
    MYSQL_STMT *st = mysql_stmt_init(s->db);
    if (!st)
        return db_fail(s, "open events", err);
    bool ok = (mysql_stmt_prepare(st, sql, strlen(sql)) == 0 ||
               stmt_fail(st, "open events", err)) &&
              ev_fetch(st, NULL, fn, ctx, "open events", err);
    mysql_stmt_close(st);
    return ok;
}

/* The key's six parameters; "" domain or endpoint as NULL. */
typedef struct key_bind {
    unsigned long len[5];
    uint64_t v6;
} key_bind_t;

static void bind_null_empty(MYSQL_BIND *b, const char *v, unsigned long *len)
{
    if (v && v[0])
        bind_str(b, v, len);
    else
        *b = (MYSQL_BIND){.buffer_type = MYSQL_TYPE_NULL};
}

static void bind_key(MYSQL_BIND *p, const sc_event_key_t *k, key_bind_t *kb)
{
    bind_str(&p[0], k->member, &kb->len[0]);
    bind_str(&p[1], k->check_type, &kb->len[1]);
    bind_str(&p[2], k->check_name, &kb->len[2]);
    bind_null_empty(&p[3], k->domain, &kb->len[3]);
    bind_null_empty(&p[4], k->endpoint, &kb->len[4]);
    kb->v6 = k->is_ipv6;
    bind_u64(&p[5], &kb->v6);
}

/* INSERT ... SELECT <key 5>, 0, start, NULL, error, data, v6 FROM DUAL
 * WHERE NOT EXISTS (<key 6> AND (open OR start_time = start)). */
static bool m_event_open(sc_store_t *b, const sc_event_key_t *k, int64_t start,
                         const char *error, const char *data, ibp_err_t *err)
{
    mysql_store_t *s = (mysql_store_t *)b;
    if (!s->ev_open)
        return ibp_err_set(err, "mysql: member_events: not an events handle");
    MYSQL_BIND p[16], key[6];
    key_bind_t kb[2];
    MYSQL_TIME t[2];
    unsigned long len[2];
    bind_key(key, k, &kb[0]);
    memcpy(p, key, 5 * sizeof *p);
    bind_time_in(&p[5], &t[0], (sc_ts_t){.sec = start});
    bind_null_empty(&p[6], error, &len[0]);
    bind_null_empty(&p[7], data, &len[1]);
    p[8] = key[5];
    bind_key(&p[9], k, &kb[1]);
    bind_time_in(&p[15], &t[1], (sc_ts_t){.sec = start});
    return exec_stmt(s->ev_open, p, "open an event", err);
}

static bool ev_change(MYSQL_STMT *st, MYSQL_BIND *p, uint64_t *n, const char *what,
                      ibp_err_t *err)
{
    if (!exec_stmt(st, p, what, err))
        return false;
    my_ulonglong rows = mysql_stmt_affected_rows(st);
    *n = rows == (my_ulonglong)-1 ? 0 : (uint64_t)rows;
    return true;
}

/* close: SET end_time = max(end, start) WHERE <key> AND open AND
 *        (start_time <= end - min OR start_time > end);
 * delete: WHERE <key> AND open AND start_time > end - min AND start_time <= end. */
static bool m_event_close(sc_store_t *b, const sc_event_key_t *k, int64_t end, int64_t min_s,
                          uint64_t *closed, uint64_t *deleted, ibp_err_t *err)
{
    mysql_store_t *s = (mysql_store_t *)b;
    *closed = *deleted = 0;
    if (!s->ev_close)
        return ibp_err_set(err, "mysql: member_events: not an events handle");
    MYSQL_BIND p[9];
    key_bind_t kb;
    MYSQL_TIME t[4];
    bind_time_in(&p[0], &t[0], (sc_ts_t){.sec = end});
    bind_key(&p[1], k, &kb);
    bind_time_in(&p[7], &t[1], (sc_ts_t){.sec = end - min_s});
    bind_time_in(&p[8], &t[3], (sc_ts_t){.sec = end});
    if (!ev_change(s->ev_close, p, closed, "close an event", err))
        return false;
    bind_key(&p[0], k, &kb);
    bind_time_in(&p[6], &t[1], (sc_ts_t){.sec = end - min_s});
    bind_time_in(&p[7], &t[2], (sc_ts_t){.sec = end});
    return ev_change(s->ev_delete, p, deleted, "delete a short event", err);
}

static void m_close(sc_store_t *b)
{
    mysql_store_t *s = (mysql_store_t *)b;
    if (!s)
        return;
    m_rollback(b);
    MYSQL_STMT *sts[] = {s->upsert, s->get_seq, s->set_seq, s->forget,
                         s->ev_open, s->ev_close, s->ev_delete};
    for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++)
        if (sts[i])
            mysql_stmt_close(sts[i]);
    if (s->db)
        mysql_close(s->db);
    free(s);
}

static const sc_store_ops_t mysql_ops = {
    .begin = m_begin, .add = m_add, .get_seq = m_get_seq, .set_seq = m_set_seq,
    .forget = m_forget, .commit = m_commit, .rollback = m_rollback, .query = m_query,
    .events_query = m_events_query, .events_open_rows = m_events_open_rows,
    .event_open = m_event_open, .event_close = m_event_close, .close = m_close,
};

static bool prepare(mysql_store_t *s, const char *sql, MYSQL_STMT **st, ibp_err_t *err)
{
    *st = mysql_stmt_init(s->db);
    if (!*st)
        return db_fail(s, "prepare", err);
    return mysql_stmt_prepare(*st, sql, strlen(sql)) == 0 || stmt_fail(*st, "prepare", err);
}

/* IBP-NODE §7.3: the key's columns as IBP's node wants them, repaired if
 * they differ; a failure is a warning, as there. */
static void check_unique_key(mysql_store_t *s)
{
    static const char want[] = KEY_COLS;
    ibp_err_t err;
    if (mysql_query(s->db, "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) FROM "
                    "information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND "
                    "TABLE_NAME = 'requests' AND INDEX_NAME = 'uniq_traffic_dedupe'") != 0) {
        snprintf(s->base.warning, sizeof s->base.warning, "requests' unique key: %s",
                 mysql_error(s->db));
        return;
    }
    MYSQL_RES *res = mysql_store_result(s->db);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    bool present = row && row[0], same = present && !strcmp(row[0], want);
    if (res)
        mysql_free_result(res);
    if (same)
        return;
    char sql[512];
    snprintf(sql, sizeof sql, "ALTER TABLE requests %sADD UNIQUE KEY uniq_traffic_dedupe (%s)",
             present ? "DROP INDEX uniq_traffic_dedupe, " : "", want);
    if (!run(s, sql, &err))
        snprintf(s->base.warning, sizeof s->base.warning, "repairing requests' unique key: %.400s",
                 err.msg);
    else
        snprintf(s->base.warning, sizeof s->base.warning, "requests' unique key was %s; "
                 "repaired", present ? "on other columns" : "missing");
}

static bool set_up(mysql_store_t *s, bool read_only, ibp_err_t *err)
{
    if (read_only)
        return true;
    if (!run(s, CREATE_REQUESTS, err) || !run(s, CREATE_HARVESTS, err))
        return false;
    check_unique_key(s);
    return (mysql_autocommit(s->db, 0) == 0 || db_fail(s, "autocommit", err)) &&
           prepare(s, "INSERT INTO requests (" KEY_COLS ",hits) VALUES (?,?,?,?,?,?,?,?,?,?) "
                   "ON DUPLICATE KEY UPDATE hits = hits + VALUES(hits)", &s->upsert, err) &&
           prepare(s, "SELECT seq FROM ibpdns_harvests WHERE file = ?", &s->get_seq, err) &&
           prepare(s, "INSERT INTO ibpdns_harvests (file, seq) VALUES (?, ?) "
                   "ON DUPLICATE KEY UPDATE seq = VALUES(seq)", &s->set_seq, err) &&
           prepare(s, "DELETE FROM ibpdns_harvests WHERE file = ?", &s->forget, err);
}

static bool set_up_events(mysql_store_t *s, ibp_err_t *err)
{
    return run(s, CREATE_EVENTS, err) &&
           (mysql_autocommit(s->db, 0) == 0 || db_fail(s, "autocommit", err)) &&
           prepare(s, "INSERT INTO member_events (" EV_COLS ") SELECT ?, ?, ?, ?, ?, 0, ?, NULL, "
                   "?, ?, ? FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM member_events WHERE " EV_KEY
                   " AND ((" EV_OPEN_ROW ") OR start_time = ?))", &s->ev_open, err) &&
           /* A row that starts after the close is closed at its own start
            * (store_sqlite.c says why). */
           prepare(s, "UPDATE member_events SET end_time = GREATEST(?, start_time), "
                   "start_time = start_time WHERE " EV_KEY " AND " EV_OPEN_ROW
                   " AND (start_time <= ? OR start_time > ?)", &s->ev_close, err) &&
           prepare(s, "DELETE FROM member_events WHERE " EV_KEY " AND " EV_OPEN_ROW
                   " AND start_time > ? AND start_time <= ?", &s->ev_delete, err);
}

typedef enum open_mode { OPEN_READ, OPEN_USAGE, OPEN_EVENTS } open_mode_t;

static bool open_mode(const sc_mysql_cfg_t *cfg, open_mode_t mode, sc_store_t **out,
                      ibp_err_t *err)
{
    *out = NULL;
    mysql_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return ibp_err_set(err, "out of memory");
    s->base = (sc_store_t){.ops = &mysql_ops, .kind = "mysql"};
    s->db = mysql_init(NULL);
    unsigned timeout = TIMEOUT_S;
    bool ok = s->db != NULL || ibp_err_set(err, "out of memory");
    if (ok) {
        mysql_options(s->db, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
        mysql_options(s->db, MYSQL_OPT_READ_TIMEOUT, &timeout);
        mysql_options(s->db, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
        mysql_options(s->db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
        ok = mysql_real_connect(s->db, cfg->host, cfg->user, cfg->pass, cfg->db, cfg->port,
                                NULL, 0) != NULL ||
             db_fail(s, "connect", err);
    }
    /* Times are UTC both ways: TIMESTAMP columns convert to the session's zone. */
    ok = ok && run(s, "SET time_zone = '+00:00'", err);
    if (mode == OPEN_EVENTS)
        ok = ok && set_up_events(s, err);
    else
        ok = ok && set_up(s, mode == OPEN_READ, err);
    if (!ok) {
        ibp_err_prefix(err, "%s:%u/%s", cfg->host, cfg->port, cfg->db);
        m_close(&s->base);
        return false;
    }
    *out = &s->base;
    return true;
}

bool sc_store_mysql_open(const sc_mysql_cfg_t *cfg, bool read_only, sc_store_t **out,
                         ibp_err_t *err)
{
    return open_mode(cfg, read_only ? OPEN_READ : OPEN_USAGE, out, err);
}

bool sc_store_mysql_open_events(const sc_mysql_cfg_t *cfg, sc_store_t **out, ibp_err_t *err)
{
    return open_mode(cfg, OPEN_EVENTS, out, err);
}
