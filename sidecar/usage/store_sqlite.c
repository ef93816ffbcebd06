/* The usage store in SQLite (WAL): the embedded default. See store.h. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

typedef struct sqlite_store {
    sc_store_t base;
    sqlite3 *db;
    sqlite3_stmt *upsert, *get_seq, *set_seq, *forget;
    sqlite3_stmt *ev_open, *ev_close, *ev_delete;   /* an events handle's writes */
    bool in_txn;
} sqlite_store_t;

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS requests ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " date DATE, node_id VARCHAR(32), domain_name VARCHAR(128), member_name VARCHAR(64),"
    " network_asn VARCHAR(32), network_name VARCHAR(96), country_code VARCHAR(2),"
    " country_name VARCHAR(64), is_ipv6 TINYINT, hits INT UNSIGNED,"
    " CONSTRAINT uniq_traffic_dedupe UNIQUE (date,node_id,domain_name,member_name,"
    "network_asn,network_name,country_code,country_name,is_ipv6));"
    /* Ours: how many harvests of each counter file are in requests. */
    "CREATE TABLE IF NOT EXISTS ibpdns_harvests (file TEXT PRIMARY KEY, seq INTEGER NOT NULL);";

/* IBP-NODE §7.5's columns. Times are UTC text, "YYYY-MM-DD HH:MM:SS"
 * (event_time.h), whose byte order is their time order. Names are read as
 * MySQL's collation compares them (case ignored), written exactly. */
static const char EVENTS_SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS member_events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " member_name VARCHAR(255), check_type VARCHAR(50), check_name VARCHAR(100),"
    " domain_name VARCHAR(255) NULL, endpoint TEXT NULL, status BOOLEAN,"
    " start_time TEXT, end_time TEXT NULL, error TEXT NULL,"
    " additional_data TEXT NULL, is_ipv6 BOOLEAN);"
    "CREATE INDEX IF NOT EXISTS idx_member_events_member ON member_events"
    " (member_name COLLATE NOCASE, start_time);"
    "CREATE INDEX IF NOT EXISTS idx_member_events_open ON member_events"
    " (member_name, check_name) WHERE end_time IS NULL;";

#define EV_COLS "member_name,check_type,check_name,domain_name,endpoint,status,start_time," \
                "end_time,error,additional_data,is_ipv6"
/* ?1..?6: the key (sc_event_key_t); "" domain or endpoint bound as NULL. */
#define EV_KEY "member_name = ?1 AND check_type = ?2 AND check_name = ?3 AND domain_name IS ?4" \
               " AND endpoint IS ?5 AND is_ipv6 = ?6"
#define EV_OPEN_ROW "status = 0 AND end_time IS NULL"

#define GROUP_COLS "date,domain_name,member_name,country_code,network_asn,network_name," \
                   "country_name,is_ipv6"
#define KEY_COLS "date,node_id,domain_name,member_name,network_asn,network_name,country_code," \
                 "country_name,is_ipv6"

static bool db_fail(sqlite_store_t *s, const char *what, ibp_err_t *err)
{
    return ibp_err_set(err, "sqlite %s: %s", what, sqlite3_errmsg(s->db));
}

static bool exec(sqlite_store_t *s, const char *sql, ibp_err_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return true;
    ibp_err_set(err, "sqlite: %s", msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return false;
}

/* A statement is reset after every use, so that none holds a read lock. */
static bool step_done(sqlite_store_t *s, sqlite3_stmt *st, const char *what, ibp_err_t *err)
{
    int rc = sqlite3_step(st);
    bool ok = rc == SQLITE_DONE || rc == SQLITE_ROW || db_fail(s, what, err);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ok;
}

static bool s_begin(sc_store_t *b, ibp_err_t *err)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    /* IMMEDIATE: take the write lock now, not halfway through the rows. */
    if (!exec(s, "BEGIN IMMEDIATE", err))
        return false;
    s->in_txn = true;
    return true;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_TRANSIENT);
}

static bool s_add(sc_store_t *b, const sc_usage_row_t *r, ibp_err_t *err)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    sqlite3_stmt *st = s->upsert;
    const char *v[] = {r->date, r->node_id, r->domain, r->member, r->asn, r->network_name,
                       r->country_code, r->country_name};
    for (int i = 0; i < 8; i++)
        bind_text(st, i + 1, v[i]);
    sqlite3_bind_int(st, 9, r->is_ipv6);
    sqlite3_bind_int64(st, 10, (sqlite3_int64)r->hits);
    return step_done(s, st, "upsert", err);
}

static bool s_get_seq(sc_store_t *b, const char *file, uint64_t *seq, ibp_err_t *err)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    sqlite3_stmt *st = s->get_seq;
    bind_text(st, 1, file);
    *seq = 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *seq = (uint64_t)sqlite3_column_int64(st, 0);
    bool ok = rc == SQLITE_ROW || rc == SQLITE_DONE || db_fail(s, "harvest sequence", err);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ok;
}

static bool s_set_seq(sc_store_t *b, const char *file, uint64_t seq, ibp_err_t *err)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    bind_text(s->set_seq, 1, file);
    sqlite3_bind_int64(s->set_seq, 2, (sqlite3_int64)seq);
    return step_done(s, s->set_seq, "harvest sequence", err);
}

static bool s_forget(sc_store_t *b, const char *file, ibp_err_t *err)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    bind_text(s->forget, 1, file);
    return step_done(s, s->forget, "forget a counter file", err);
}

static bool s_commit(sc_store_t *b, ibp_err_t *err)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    if (!exec(s, "COMMIT", err))
        return false;   /* the caller rolls back */
    s->in_txn = false;
    return true;
}

static void s_rollback(sc_store_t *b)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    if (s->in_txn && sqlite3_get_autocommit(s->db) == 0)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->in_txn = false;
}

static const char *col(sqlite3_stmt *st, int i)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    return v ? (const char *)v : "";
}

/* IBP's branches (IBP-NODE §8.2): a domain filters by domain (and member,
 * if given) in SQL, where MySQL's collation ignores case (NOCASE here); a
 * member alone is an exact match, as Go's ==; the country as Go's
 * EqualFold, in every branch. Rows in the order of their grouping. */
static bool s_query(sc_store_t *b, const sc_usage_query_t *q, sc_usage_row_fn fn, void *ctx,
                    ibp_err_t *err)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    char sql[1024];
    bool by_domain = q->domain && q->domain[0];
    bool by_member = q->member && q->member[0];
    bool by_country = q->country && q->country[0];
    snprintf(sql, sizeof sql,
             "SELECT date,domain_name,member_name,country_code,network_asn,network_name,"
             "country_name,is_ipv6,SUM(hits) FROM requests WHERE date >= ?1 AND date <= ?2%s%s%s"
             " GROUP BY date,domain_name,member_name,country_code,network_asn,network_name,"
             "country_name,is_ipv6 ORDER BY " GROUP_COLS,
             by_domain ? " AND domain_name = ?3 COLLATE NOCASE" : "",
             !by_member ? "" : by_domain ? " AND member_name = ?5 COLLATE NOCASE"
                                         : " AND member_name = ?5",
             by_country ? " AND lower(country_code) = lower(?4)" : "");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "usage query", err);
    bind_text(st, 1, q->start);
    bind_text(st, 2, q->end);
    if (by_domain)
        bind_text(st, 3, q->domain);
    if (by_country)
        bind_text(st, 4, q->country);
    if (by_member)
        bind_text(st, 5, q->member);
    int rc;
    bool ok = true;
    while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        sc_usage_row_t r = {.domain = col(st, 1), .member = col(st, 2),
                            .country_code = col(st, 3), .asn = col(st, 4),
                            .network_name = col(st, 5), .country_name = col(st, 6),
                            .is_ipv6 = sqlite3_column_int(st, 7) != 0,
                            .hits = (uint64_t)sqlite3_column_int64(st, 8), .node_id = ""};
        snprintf(r.date, sizeof r.date, "%s", col(st, 0));
        ok = fn(ctx, &r) || ibp_err_set(err, "usage query stopped by its reader");
    }
    if (ok && rc != SQLITE_DONE)
        ok = db_fail(s, "usage query", err);
    sqlite3_finalize(st);
    return ok;
}

/* ---- member_events ----------------------------------------------------------- */

static void bind_null_empty(sqlite3_stmt *st, int i, const char *v)
{
    if (v && v[0])
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void bind_key(sqlite3_stmt *st, const sc_event_key_t *k)
{
    bind_text(st, 1, k->member);
    bind_text(st, 2, k->check_type);
    bind_text(st, 3, k->check_name);
    bind_null_empty(st, 4, k->domain);
    bind_null_empty(st, 5, k->endpoint);
    sqlite3_bind_int(st, 6, k->is_ipv6);
}

static void bind_time(sqlite3_stmt *st, int i, sc_ts_t t)
{
    char text[32];
    sc_ts_sql(t, text);
    sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
}

/* A row of EV_COLS; a time that is not one we write reads as Go's zero time. */
static void ev_row(sqlite3_stmt *st, sc_event_row_t *r)
{
    *r = (sc_event_row_t){
        .key = {.member = col(st, 0), .check_type = col(st, 1), .check_name = col(st, 2),
                .domain = col(st, 3), .endpoint = col(st, 4),
                .is_ipv6 = sqlite3_column_int(st, 10) != 0},
        .status = sqlite3_column_int(st, 5) != 0, .error = col(st, 8),
        .data = sqlite3_column_type(st, 9) == SQLITE_NULL ? NULL : col(st, 9)};
    if (!sc_ts_parse_sql(col(st, 6), &r->start))
        r->start = (sc_ts_t){.sec = SC_TS_ZERO_SEC};
    r->has_end = sqlite3_column_type(st, 7) != SQLITE_NULL;
    if (r->has_end && !sc_ts_parse_sql(col(st, 7), &r->end))
        r->end = (sc_ts_t){.sec = SC_TS_ZERO_SEC};
}

/* Steps st to its end (and finalizes it), each row to fn. */
static bool ev_rows(sqlite_store_t *s, sqlite3_stmt *st, sc_event_row_fn fn, void *ctx,
                    const char *what, ibp_err_t *err)
{
    int rc = SQLITE_DONE;
    bool ok = true;
    while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        sc_event_row_t r;
        ev_row(st, &r);
        ok = fn(ctx, &r) || ibp_err_set(err, "%s stopped by its reader", what);
    }
    if (ok && rc != SQLITE_DONE)
        ok = db_fail(s, what, err);
    sqlite3_finalize(st);
    return ok;
}

static bool s_events_query(sc_store_t *b, const sc_event_query_t *q, sc_event_row_fn fn,
                           void *ctx, ibp_err_t *err)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    bool by_domain = q->domain && q->domain[0];
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT " EV_COLS " FROM member_events WHERE member_name = ?1 "
             "COLLATE NOCASE AND start_time >= ?2 AND start_time <= ?3%s ORDER BY start_time, id",
             by_domain ? " AND domain_name = ?4 COLLATE NOCASE" : "");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "events query", err);
    bind_text(st, 1, q->member);
    bind_time(st, 2, q->start);
    bind_time(st, 3, q->end);
    if (by_domain)
        bind_text(st, 4, q->domain);
    return ev_rows(s, st, fn, ctx, "events query", err);
}

static bool s_events_open_rows(sc_store_t *b, sc_event_row_fn fn, void *ctx, ibp_err_t *err)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT " EV_COLS " FROM member_events WHERE " EV_OPEN_ROW
                           " ORDER BY start_time, id", -1, &st, NULL) != SQLITE_OK)
        return db_fail(s, "open events", err);
    return ev_rows(s, st, fn, ctx, "open events", err);
}

static bool s_event_open(sc_store_t *b, const sc_event_key_t *k, int64_t start,
                         const char *error, const char *data, ibp_err_t *err)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    sqlite3_stmt *st = s->ev_open;
    if (!st)
        return ibp_err_set(err, "sqlite: member_events: not an events handle");
    bind_key(st, k);
    bind_time(st, 7, (sc_ts_t){.sec = start});
    bind_null_empty(st, 8, error);
    bind_null_empty(st, 9, data);
    return step_done(s, st, "open an event", err);
}

static bool changes(sqlite_store_t *s, sqlite3_stmt *st, const char *what, uint64_t *n,
                    ibp_err_t *err)
{
    *n = 0;
    int rc = sqlite3_step(st);
    bool ok = rc == SQLITE_DONE || db_fail(s, what, err);
    if (ok)
        *n = (uint64_t)sqlite3_changes(s->db);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ok;
}

static bool s_event_close(sc_store_t *b, const sc_event_key_t *k, int64_t end, int64_t min_s,
                          uint64_t *closed, uint64_t *deleted, ibp_err_t *err)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    *closed = *deleted = 0;
    if (!s->ev_close)
        return ibp_err_set(err, "sqlite: member_events: not an events handle");
    sqlite3_stmt *sts[] = {s->ev_close, s->ev_delete};
    uint64_t *counts[] = {closed, deleted};
    for (int i = 0; i < 2; i++) {
        bind_key(sts[i], k);
        bind_time(sts[i], 7, (sc_ts_t){.sec = end});
        bind_time(sts[i], 8, (sc_ts_t){.sec = end - min_s});
        if (!changes(s, sts[i], i ? "delete a short event" : "close an event", counts[i], err))
            return false;
    }
    return true;
}

static void s_close(sc_store_t *b)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    if (!s)
        return;
    s_rollback(b);
    sqlite3_stmt *sts[] = {s->upsert, s->get_seq, s->set_seq, s->forget,
                           s->ev_open, s->ev_close, s->ev_delete};
    for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++)
        sqlite3_finalize(sts[i]);
    sqlite3_close(s->db);
    free(s);
}

static const sc_store_ops_t sqlite_ops = {
    .begin = s_begin, .add = s_add, .get_seq = s_get_seq, .set_seq = s_set_seq,
    .forget = s_forget, .commit = s_commit, .rollback = s_rollback, .query = s_query,
    .events_query = s_events_query, .events_open_rows = s_events_open_rows,
    .event_open = s_event_open, .event_close = s_event_close, .close = s_close,
};

static bool prepare(sqlite_store_t *s, const char *sql, sqlite3_stmt **st, ibp_err_t *err)
{
    return sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK ||
           db_fail(s, "prepare", err);
}

static bool open_writer(sqlite_store_t *s, ibp_err_t *err)
{
    /* FULL: a committed harvest survives a power cut, or the counter file
     * and the store would disagree about it. */
    return exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", err) &&
           exec(s, SCHEMA, err) && exec(s, EVENTS_SCHEMA, err) &&
           prepare(s, "INSERT INTO requests (" KEY_COLS ",hits) VALUES (?,?,?,?,?,?,?,?,?,?) "
                   "ON CONFLICT (" KEY_COLS ") DO UPDATE SET hits = hits + excluded.hits",
                   &s->upsert, err) &&
           prepare(s, "SELECT seq FROM ibpdns_harvests WHERE file = ?", &s->get_seq, err) &&
           prepare(s, "INSERT INTO ibpdns_harvests (file, seq) VALUES (?, ?) "
                   "ON CONFLICT (file) DO UPDATE SET seq = excluded.seq", &s->set_seq, err) &&
           prepare(s, "DELETE FROM ibpdns_harvests WHERE file = ?", &s->forget, err);
}

/* The recorder's writes; the usage writer makes the table too, so that it
 * is there for /events whichever handle came first. */
static bool open_events_writer(sqlite_store_t *s, ibp_err_t *err)
{
    return exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", err) &&
           exec(s, EVENTS_SCHEMA, err) &&
           prepare(s, "INSERT INTO member_events (" EV_COLS ") SELECT ?1, ?2, ?3, ?4, ?5, 0, ?7, "
                   "NULL, ?8, ?9, ?6 WHERE NOT EXISTS (SELECT 1 FROM member_events WHERE " EV_KEY
                   " AND ((" EV_OPEN_ROW ") OR start_time = ?7))", &s->ev_open, err) &&
           /* A row that starts after the close (the clock stepped back, or
            * another writer's clock) is closed at its own start: left open, it
            * would hide every later outage of its key. */
           prepare(s, "UPDATE member_events SET end_time = MAX(?7, start_time) WHERE " EV_KEY
                   " AND " EV_OPEN_ROW " AND (start_time <= ?8 OR start_time > ?7)",
                   &s->ev_close, err) &&
           prepare(s, "DELETE FROM member_events WHERE " EV_KEY " AND " EV_OPEN_ROW
                   " AND start_time > ?8 AND start_time <= ?7", &s->ev_delete, err);
}

typedef enum open_mode { OPEN_READ, OPEN_USAGE, OPEN_EVENTS } open_mode_t;

static bool open_mode(const char *path, open_mode_t mode, sc_store_t **out, ibp_err_t *err)
{
    *out = NULL;
    bool read_only = mode == OPEN_READ;
    sqlite_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return ibp_err_set(err, "out of memory");
    s->base = (sc_store_t){.ops = &sqlite_ops, .kind = "sqlite"};
    int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    bool ok = sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK ||
              db_fail(s, "open", err);
    ok = ok && (sqlite3_busy_timeout(s->db, 5000) == SQLITE_OK || db_fail(s, "busy", err));
    if (ok && mode == OPEN_USAGE)
        ok = open_writer(s, err);
    if (ok && mode == OPEN_EVENTS)
        ok = open_events_writer(s, err);
    if (!ok) {
        ibp_err_prefix(err, "%s", path);
        s_close(&s->base);
        return false;
    }
    *out = &s->base;
    return true;
}

bool sc_store_sqlite_open(const char *path, bool read_only, sc_store_t **out, ibp_err_t *err)
{
    return open_mode(path, read_only ? OPEN_READ : OPEN_USAGE, out, err);
}

bool sc_store_sqlite_open_events(const char *path, sc_store_t **out, ibp_err_t *err)
{
    return open_mode(path, OPEN_EVENTS, out, err);
}
