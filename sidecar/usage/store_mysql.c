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

static void m_close(sc_store_t *b)
{
    mysql_store_t *s = (mysql_store_t *)b;
    if (!s)
        return;
    m_rollback(b);
    MYSQL_STMT *sts[] = {s->upsert, s->get_seq, s->set_seq, s->forget};
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
    .close = m_close,
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

bool sc_store_mysql_open(const sc_mysql_cfg_t *cfg, bool read_only, sc_store_t **out,
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
    ok = ok && set_up(s, read_only, err);
    if (!ok) {
        ibp_err_prefix(err, "%s:%u/%s", cfg->host, cfg->port, cfg->db);
        m_close(&s->base);
        return false;
    }
    *out = &s->base;
    return true;
}
