/* sc_api_handle() (sidecar/api.h), the sidecar's HTTP API without a
 * socket, on a state with a table built at start-up from
 * tests/fuzz/configs/small and MaxMind's City test database.
 *
 * Input: one flags byte, then '\n'-separated fields
 *     METHOD \n TARGET \n AUTHORIZATION \n FAULT TEXT
 * TARGET is path[?query] as on the request line; it is decoded the way
 * libmicrohttpd decodes it (MHD_http_unescape: %XX; in the query also '+'
 * for space), so %00 and %FF reach the handler as the bytes they are. A
 * missing AUTHORIZATION field means no header. FAULT TEXT (any bytes) is
 * the members source's last error, as a failed fetch would leave it.
 * Flags: 1 a token is required; 2 the table path, a source URL and the
 * last build error are not UTF-8; 4 the table is missing; 8 no MaxMind
 * database.
 *
 * Asserts (abort): every call answers a status in 200..599 with a body of
 * exactly len bytes and no NUL; never 500 (a body builder that failed on
 * content; the other cause, running out of memory, aborts under libFuzzer);
 * an application/json body is valid JSON (an object, or for /events an
 * array; for a status >= 400 exactly {"error": "<text>"}, or for /events's
 * bad times IBP's {"result": "<text>"}); a token that is required and not given as
 * "Bearer <token>" answers 401. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "fuzz_common.h"
#include "state.h"

#define TOKEN "fuzz-t0ken"
#define MAX_ARGS 64
#define FIELD_MAX 4096

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sc_state_t state;
static char dir[] = "/tmp/fuzz_api.XXXXXX";
static char table[PATH_MAX], odd_table[PATH_MAX];

typedef struct bytes {
    char *p;
    size_t len;
} bytes_t;

typedef struct query {
    bytes_t key[MAX_ARGS], val[MAX_ARGS];
    bool has_val[MAX_ARGS];
    size_t n;
} query_t;

/* ---- decoding as libmicrohttpd does ------------------------------------------------ */

static int hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* In place; returns the decoded length (MHD_http_unescape). */
static size_t unescape(char *s, size_t n, bool plus)
{
    size_t w = 0;
    for (size_t r = 0; r < n; w++) {
        if (s[r] == '%' && r + 2 < n && hex(s[r + 1]) >= 0 && hex(s[r + 2]) >= 0) {
            s[w] = (char)(hex(s[r + 1]) * 16 + hex(s[r + 2]));
            r += 3;
        } else {
            s[w] = plus && s[r] == '+' ? ' ' : s[r];
            r++;
        }
    }
    return w;
}

/* Splits "k=v&k2&k3=v3" (MHD_parse_arguments_), decoding in place. */
static void parse_query(char *q, size_t n, query_t *out)
{
    out->n = 0;
    while (n && out->n < MAX_ARGS) {
        char *amp = memchr(q, '&', n);
        size_t len = amp ? (size_t)(amp - q) : n;
        char *eq = memchr(q, '=', len);
        size_t i = out->n++;
        size_t klen = eq ? (size_t)(eq - q) : len;
        out->key[i] = (bytes_t){q, unescape(q, klen, true)};
        out->has_val[i] = eq != NULL;
        out->val[i] = eq ? (bytes_t){eq + 1, unescape(eq + 1, len - klen - 1, true)}
                         : (bytes_t){NULL, 0};
        q += len + (amp != NULL);
        n -= len + (amp != NULL);
    }
}

static bool query_arg(void *ctx, const char *key, const char **value, size_t *len)
{
    const query_t *q = ctx;
    for (size_t i = 0; i < q->n; i++)
        if (q->key[i].len == strlen(key) && !memcmp(q->key[i].p, key, q->key[i].len)) {
            *value = q->val[i].p;
            *len = q->val[i].len;
            return true;
        }
    return false;
}

/* ---- the state ------------------------------------------------------------------- */

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        fuzz_fail("cannot write %s", path);
}

/* At exit (a crash leaves the directory for the post-mortem). */
static void cleanup(void)
{
    unlink(table);
    unlink(odd_table);
    rmdir(dir);
}

/* Sources as a running sidecar has them: one fine, one failing. */
static void fill_sources(void)
{
    for (int i = 0; i < SC_SRC_COUNT; i++) {
        sc_source_t *src = &state.src[i];
        snprintf(src->url, sizeof src->url, "http://127.0.0.1:1/%s.json", sc_src_names[i]);
        src->configured = true;
        src->attempts = 3;
        src->last_success = src->last_change = time(NULL) - 5;
    }
    state.src[SC_SRC_RESULTS].failing_since = time(NULL) - 2;
    state.src[SC_SRC_RESULTS].failures = 1;
    snprintf(state.src[SC_SRC_RESULTS].last_error, IBP_ERR_MAX, "results: HTTP 500");
    state.pub = (sc_publish_t){.generation = 7, .build_time = 1700000000,
                               .published_at = time(NULL) - 1, .builds_full = 1};
    state.ready = true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    uint8_t *buf;
    size_t len;
    ibp_err_t err;
    if (!mkdtemp(dir))
        fuzz_fail("mkdtemp %s", dir);
    atexit(cleanup);
    if (!fuzz_table_build(FUZZ_SRC_DIR "/configs/small", 1, &buf, &len, &err))
        fuzz_fail("no table for the api target: %s", err.msg);
    char node[PATH_MAX];
    snprintf(table, sizeof table, "%s/routing.tbl", dir);
    snprintf(odd_table, sizeof odd_table, "%s/routing-\xff\xfe.tbl", dir); /* not UTF-8 */
    snprintf(node, sizeof node, "%s/node.json", dir);
    write_file(table, buf, len);
    write_file(odd_table, buf, len);
    write_file(node, "{}", 2);
    free(buf);
    if (!sc_state_init(&state, node, &err))
        fuzz_fail("sc_state_init: %s", err.msg);
    unlink(node); /* only its directory is kept */
    fill_sources();
    return 0;
}

/* Per input: the flags' variant of the state (the lock is not needed: one
 * thread). */
static void set_state(unsigned flags, const bytes_t *fault)
{
    const char *path = flags & 4 ? "/nonexistent/routing.tbl" : flags & 2 ? odd_table : table;
    snprintf(state.table_path, sizeof state.table_path, "%s", path);
    snprintf(state.mmdb_path, sizeof state.mmdb_path, "%s", flags & 8 ? "" : fuzz_city_mmdb());
    sc_source_t *members = &state.src[SC_SRC_MEMBERS];
    snprintf(members->url, sizeof members->url, "%s",
             flags & 2 ? "file:///srv/m\xc3(.json" : "http://127.0.0.1:1/members.json");
    size_t n = fault->len < IBP_ERR_MAX - 1 ? fault->len : IBP_ERR_MAX - 1;
    if (n)
        memcpy(members->last_error, fault->p, n);
    members->last_error[n] = '\0';
    members->failing_since = n ? time(NULL) : 0;
    snprintf(state.pub.last_error, sizeof state.pub.last_error, "%s",
             flags & 2 ? "build: \xed\xa0\x80 surrogate" : "");
}

/* ---- checks -------------------------------------------------------------------------- */

static void check_json(const sc_api_response_t *r, bool events)
{
    json_error_t jerr;
    json_t *j = json_loadb(r->body, r->len, 0, &jerr);
    if (!j)
        fuzz_fail("status %u: body is not JSON (%s): %.200s", r->status, jerr.text, r->body);
    if (!json_is_object(j) && !(events && r->status == 200 && json_is_array(j)))
        fuzz_fail("status %u: body is not an object: %.200s", r->status, r->body);
    bool ibp = events && r->status == 400 && json_is_string(json_object_get(j, "result"));
    if (r->status >= 400 && (json_object_size(j) != 1 ||
                             !(ibp || json_is_string(json_object_get(j, "error")))))
        fuzz_fail("status %u: not {\"error\": \"...\"}: %.200s", r->status, r->body);
    json_decref(j);
}

static void check_response(const sc_api_response_t *r, bool want_401, bool events)
{
    if (r->status < 200 || r->status > 599)
        fuzz_fail("status %u", r->status);
    if (r->status == 500) /* only for an allocation failure, which aborts here */
        fuzz_fail("500: a body builder failed: %.200s", r->body);
    if (!r->body || strlen(r->body) != r->len || !r->content_type)
        fuzz_fail("status %u: body missing, or of another length than said", r->status);
    if (want_401 && r->status != 401)
        fuzz_fail("no token given, answered %u", r->status);
    if (!strncmp(r->content_type, "application/json", 16))
        check_json(r, events);
    else if (!r->len)
        fuzz_fail("status %u: empty %s body", r->status, r->content_type);
}

/* ---- one input ------------------------------------------------------------------------- */

typedef struct cursor {
    const char *p, *end;
    bool done;             /* the last field was taken */
} cursor_t;

/* The next '\n'-separated field as a NUL-terminated copy (bounded); false
 * when there is none. */
static bool field(cursor_t *c, bytes_t *out)
{
    if (c->done)
        return false;
    const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
    size_t n = (size_t)((nl ? nl : c->end) - c->p);
    out->len = n < FIELD_MAX ? n : FIELD_MAX;
    out->p = malloc(out->len + 1);
    if (!out->p)
        abort();
    memcpy(out->p, c->p, out->len);
    out->p[out->len] = '\0';
    c->done = !nl;
    c->p = nl ? nl + 1 : c->end;
    return true;
}

static bool token_given(const bytes_t *auth, bool have)
{
    static const char want[] = "Bearer " TOKEN;
    return have && auth->len == sizeof want - 1 && !memcmp(auth->p, want, auth->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    cursor_t c = {(const char *)data + 1, (const char *)data + size, false};
    bytes_t method = {0}, target = {0}, auth = {0}, fault = {0};
    field(&c, &method);
    field(&c, &target);
    bool have_auth = field(&c, &auth);
    field(&c, &fault);
    set_state(flags, &fault);

    query_t q;
    char *qmark = target.p ? memchr(target.p, '?', target.len) : NULL;
    size_t path_raw = qmark ? (size_t)(qmark - target.p) : target.len;
    if (qmark)
        parse_query(qmark + 1, target.len - path_raw - 1, &q);
    else
        q.n = 0;
    sc_api_request_t rq = {.method = method.p ? method.p : "",
                           .path = target.p ? target.p : "",
                           .path_len = target.p ? unescape(target.p, path_raw, false) : 0,
                           .arg = query_arg, .arg_ctx = &q,
                           .auth = have_auth ? auth.p : NULL, .auth_len = auth.len};
    sc_api_response_t r;
    bool need_token = flags & 1;
    sc_api_handle(&state, need_token ? TOKEN : "", &rq, &r);
    bool events = rq.path_len == 7 && !memcmp(rq.path, "/events", 7);
    check_response(&r, need_token && !token_given(&auth, have_auth), events);
    sc_api_response_free(&r);
    free(method.p);
    free(target.p);
    free(auth.p);
    free(fault.p);
    return 0;
}
