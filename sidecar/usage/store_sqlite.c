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

static void s_close(sc_store_t *b)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    if (!s)
        return;
    s_rollback(b);
    sqlite3_finalize(s->upsert);
    sqlite3_finalize(s->get_seq);
    sqlite3_finalize(s->set_seq);
    sqlite3_finalize(s->forget);
    sqlite3_close(s->db);
    free(s);
}

static const sc_store_ops_t sqlite_ops = {
    .begin = s_begin, .add = s_add, .get_seq = s_get_seq, .set_seq = s_set_seq,
    .forget = s_forget, .commit = s_commit, .rollback = s_rollback, .query = s_query,
    .close = s_close,
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
           exec(s, SCHEMA, err) &&
           prepare(s, "INSERT INTO requests (" KEY_COLS ",hits) VALUES (?,?,?,?,?,?,?,?,?,?) "
                   "ON CONFLICT (" KEY_COLS ") DO UPDATE SET hits = hits + excluded.hits",
                   &s->upsert, err) &&
           prepare(s, "SELECT seq FROM ibpdns_harvests WHERE file = ?", &s->get_seq, err) &&
           prepare(s, "INSERT INTO ibpdns_harvests (file, seq) VALUES (?, ?) "
                   "ON CONFLICT (file) DO UPDATE SET seq = excluded.seq", &s->set_seq, err) &&
           prepare(s, "DELETE FROM ibpdns_harvests WHERE file = ?", &s->forget, err);
}

bool sc_store_sqlite_open(const char *path, bool read_only, sc_store_t **out, ibp_err_t *err)
{
    *out = NULL;
    sqlite_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return ibp_err_set(err, "out of memory");
    s->base = (sc_store_t){.ops = &sqlite_ops, .kind = "sqlite"};
    int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    bool ok = sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK ||
              db_fail(s, "open", err);
    ok = ok && (sqlite3_busy_timeout(s->db, 5000) == SQLITE_OK || db_fail(s, "busy", err));
    if (ok && !read_only)
        ok = open_writer(s, err);
    if (!ok) {
        ibp_err_prefix(err, "%s", path);
        s_close(&s->base);
        return false;
    }
    *out = &s->base;
    return true;
}
