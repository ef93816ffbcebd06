/* sc_fetch (http, https, files) and sc_maxmind_refresh against the fixture
 * server tests/integration/fixture_serve.py, run as a subprocess on
 * 127.0.0.1 and driven with one JSON command per line over a pipe. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fetch.h"
#include "ibp_file.h"
#include "maxmind.h"

extern char **environ;

#define PYTHON "/usr/bin/python3"
#define ACCOUNT "123456"
#define LICENSE "lic-Zx9Qw8Ev7Rt"
#define MM_PATH "/geoip/databases/GeoLite2-City/download"
#define LM_1 "Mon, 01 Jan 2024 00:00:00 GMT"
#define LM_2 "Tue, 02 Jan 2024 00:00:00 GMT"

typedef struct fx {
    pid_t pid;
    FILE *to, *from;
    char http[128], https[128], cert[PATH_MAX];
    char tmp[64];
} fx_t;

static const sc_fetch_limits_t LIM = {5000, 1 << 20, NULL};

/* ---- helpers -------------------------------------------------------------------- */

#define assert_contains(hay, needle)                                                    \
    do {                                                                                \
        if (!strstr((hay), (needle)))                                                   \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));                \
    } while (0)

#define assert_lacks(hay, needle)                                                       \
    do {                                                                                \
        if (strstr((hay), (needle)))                                                    \
            fail_msg("\"%s\" contains \"%s\"", (hay), (needle));                        \
    } while (0)

static const char *shared_path(const char *rel, char *buf, size_t cap)
{
    const char *shared = getenv("IBP_SHARED");
    snprintf(buf, cap, "%s/%s", shared ? shared : "../shared", rel);
    return buf;
}

static const char *mmdb(const char *name)
{
    static char buf[PATH_MAX];
    char rel[256];
    snprintf(rel, sizeof rel, "testdata/maxmind/%s", name);
    return shared_path(rel, buf, sizeof buf);
}

/* "key": "value" in the fixture's one-line JSON greeting. */
static void json_field(const char *line, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = strstr(line, pat);
    assert_non_null(p);
    p += strlen(pat);
    size_t n = strcspn(p, "\"");
    assert_true(n < cap);
    memcpy(out, p, n);
    out[n] = '\0';
}

static char *read_line(FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    if (n <= 0)
        fail_msg("the fixture server said nothing (did it die?)");
    if (line[n - 1] == '\n')
        line[n - 1] = '\0';
    return line;
}

__attribute__((format(printf, 2, 3)))
static char *fx_cmd(fx_t *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f->to, fmt, ap);
    va_end(ap);
    fputc('\n', f->to);
    fflush(f->to);
    char *reply = read_line(f->from);
    if (!strncmp(reply, "error", 5))
        fail_msg("fixture: %s", reply);
    return reply;
}

static void fx_set(fx_t *f, const char *path, const char *body_spec)
{
    free(fx_cmd(f, "{\"op\": \"set\", \"path\": \"%s\", %s}", path, body_spec));
}

static void fx_clear(fx_t *f)
{
    free(fx_cmd(f, "{\"op\": \"clear\"}"));
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Requests seen for path: how many GETs and HEADs; the JSON is returned. */
static char *fx_requests(fx_t *f, const char *path, int *gets, int *heads)
{
    char *r = fx_cmd(f, "{\"op\": \"requests\", \"path\": \"%s\"}", path);
    *gets = count_of(r, "[\"GET\"");
    *heads = count_of(r, "[\"HEAD\"");
    return r;
}

static char *url_of(const char *base, const char *path)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s%s", base, path);
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("%s: %s", path, strerror(errno));
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static void assert_same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *da = slurp(a, &la), *db = slurp(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    free(da);
    free(db);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* ---- fixture lifecycle ----------------------------------------------------------- */

static void spawn_server(fx_t *f)
{
    int in[2], out[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    const char *src = getenv("IBP_SRC");
    char script[PATH_MAX];
    snprintf(script, sizeof script, "%s/tests/integration/fixture_serve.py", src ? src : ".");
    char *argv[] = {(char *)PYTHON, script, (char *)"--https", NULL};
    int rc = posix_spawn(&f->pid, PYTHON, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    close(in[0]);
    close(out[1]);
    f->to = fdopen(in[1], "w");
    f->from = fdopen(out[0], "r");
    assert_non_null(f->to);
    assert_non_null(f->from);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    spawn_server(f);
    char *hello = read_line(f->from);
    json_field(hello, "http", f->http, sizeof f->http);
    json_field(hello, "https", f->https, sizeof f->https);
    json_field(hello, "cert", f->cert, sizeof f->cert);
    free(hello);
    snprintf(f->tmp, sizeof f->tmp, "/tmp/test_fetch.XXXXXX");
    assert_non_null(mkdtemp(f->tmp));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    fclose(f->to); /* the server exits when its stdin closes */
    int status;
    waitpid(f->pid, &status, 0);
    fclose(f->from);
    nftw(f->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- http ----------------------------------------------------------------------- */

static void test_http_200_body(void **state)
{
    fx_t *f = *state;
    fx_set(f, "/ok.json", "\"body\": \"{\\\"members\\\": 1}\"");
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    if (!sc_fetch(url_of(f->http, "/ok.json"), NULL, &LIM, NULL, NULL, NULL, &r, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(r.status, SC_FETCH_OK);
    assert_int_equal(r.http_code, 200);
    assert_int_equal(r.len, strlen("{\"members\": 1}"));
    assert_string_equal(r.body, "{\"members\": 1}");
    assert_non_null(r.last_modified);
    assert_null(r.results_source);
    sc_fetch_result_free(&r);
    assert_null(r.body);
}

static void test_http_304_with_cache(void **state)
{
    fx_t *f = *state;
    fx_set(f, "/c.json", "\"body\": \"v1\"");
    sc_fetch_cache_t cache = {0};
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    const char *u = url_of(f->http, "/c.json");
    assert_true(sc_fetch(u, NULL, &LIM, &cache, NULL, NULL, &r, &err));
    assert_int_equal(r.status, SC_FETCH_OK);
    assert_non_null(cache.etag);
    assert_non_null(cache.last_modified);
    sc_fetch_result_free(&r);

    if (!sc_fetch(u, NULL, &LIM, &cache, NULL, NULL, &r, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(r.status, SC_FETCH_NOT_MODIFIED);
    assert_int_equal(r.http_code, 304);
    assert_null(r.body);
    sc_fetch_result_free(&r);
    int gets, heads;
    char *seen = fx_requests(f, "/c.json", &gets, &heads);
    assert_int_equal(gets, 2);
    assert_contains(seen, "If-None-Match");
    free(seen);

    fx_set(f, "/c.json", "\"body\": \"version two\"");
    assert_true(sc_fetch(u, NULL, &LIM, &cache, NULL, NULL, &r, &err));
    assert_int_equal(r.status, SC_FETCH_OK);
    assert_string_equal(r.body, "version two");
    sc_fetch_result_free(&r);
    sc_fetch_cache_free(&cache);
    assert_null(cache.etag);
}

/* Without an ETag the Last-Modified alone makes the request conditional. */
static void test_http_304_by_last_modified(void **state)
{
    fx_t *f = *state;
    fx_set(f, "/lm.json", "\"body\": \"x\", \"headers\": {\"ETag\": null, \"Last-Modified\": \"" LM_1 "\"}");
    sc_fetch_cache_t cache = {0};
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    const char *u = url_of(f->http, "/lm.json");
    assert_true(sc_fetch(u, NULL, &LIM, &cache, NULL, NULL, &r, &err));
    assert_null(cache.etag);
    assert_string_equal(cache.last_modified, LM_1);
    assert_string_equal(r.last_modified, LM_1);
    sc_fetch_result_free(&r);
    assert_true(sc_fetch(u, NULL, &LIM, &cache, NULL, NULL, &r, &err));
    assert_int_equal(r.status, SC_FETCH_NOT_MODIFIED);
    sc_fetch_result_free(&r);
    sc_fetch_cache_free(&cache);
}

static void test_http_500_is_error(void **state)
{
    fx_t *f = *state;
    fx_set(f, "/boom", "\"body\": \"internal\", \"status\": 500");
    sc_fetch_cache_t cache = {0};
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    const char *u = url_of(f->http, "/boom");
    assert_false(sc_fetch(u, NULL, &LIM, &cache, NULL, NULL, &r, &err));
    assert_contains(err.msg, u);
    assert_contains(err.msg, ": HTTP 500");
    assert_null(r.body);
    assert_null(cache.etag);
    assert_false(sc_fetch(url_of(f->http, "/nothing-here"), NULL, &LIM, NULL, NULL, NULL, &r,
                          &err));
    assert_contains(err.msg, "HTTP 404");
}

static void test_http_timeout(void **state)
{
    fx_t *f = *state;
    fx_set(f, "/slow", "\"body\": \"late\", \"delay\": 3");
    sc_fetch_limits_t lim = {500, 1 << 20, NULL};
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    double t0 = now_s();
    assert_false(sc_fetch(url_of(f->http, "/slow"), NULL, &lim, NULL, NULL, NULL, &r, &err));
    double took = now_s() - t0;
    assert_contains(err.msg, "timeout after 500 ms");
    if (took > 1.2)
        fail_msg("a 500 ms timeout took %.2f s", took);
}

static void test_http_body_over_limit(void **state)
{
    fx_t *f = *state;
    sc_fetch_limits_t lim = {5000, 1000, NULL};
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    fx_set(f, "/big", "\"huge\": 5000");
    assert_false(sc_fetch(url_of(f->http, "/big"), NULL, &lim, NULL, NULL, NULL, &r, &err));
    assert_contains(err.msg, "body over 1000 bytes");
    assert_null(r.body);
    /* No Content-Length: only the write callback can notice. */
    fx_set(f, "/big-stream", "\"huge\": 1048576, \"no_length\": true");
    assert_false(sc_fetch(url_of(f->http, "/big-stream"), NULL, &lim, NULL, NULL, NULL, &r,
                          &err));
    assert_contains(err.msg, "body over 1000 bytes");
    /* An announced length over the limit fails at once, before the body (it
     * never comes here: the connection closes after 4 bytes). */
    fx_set(f, "/liar", "\"body\": \"tiny\", \"no_length\": true,"
                       " \"headers\": {\"Content-Length\": \"1000000\"}");
    assert_false(sc_fetch(url_of(f->http, "/liar"), NULL, &lim, NULL, NULL, NULL, &r, &err));
    assert_contains(err.msg, "body over 1000 bytes");
    /* Exactly at the limit is fine. */
    fx_set(f, "/just", "\"huge\": 1000, \"no_length\": true");
    assert_true(sc_fetch(url_of(f->http, "/just"), NULL, &lim, NULL, NULL, NULL, &r, &err));
    assert_int_equal(r.len, 1000);
    sc_fetch_result_free(&r);
}

static void test_http_results_source_header(void **state)
{
    fx_t *f = *state;
    fx_set(f, "/results",
           "\"body\": \"{}\", \"headers\": {\"x-ibp-results-source\": \"  monitor-2 (cache)  \"}");
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    assert_true(sc_fetch(url_of(f->http, "/results"), NULL, &LIM, NULL, NULL, NULL, &r, &err));
    assert_non_null(r.results_source);
    assert_string_equal(r.results_source, "monitor-2 (cache)");
    sc_fetch_result_free(&r);
}

static void test_http_redirects(void **state)
{
    fx_t *f = *state;
    char spec[1024];
    fx_set(f, "/final", "\"body\": \"arrived\"");
    snprintf(spec, sizeof spec, "\"body\": \"\", \"status\": 302, \"headers\": {\"Location\": \"%s\"}",
             url_of(f->http, "/final"));
    fx_set(f, "/hop", spec);
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    assert_true(sc_fetch(url_of(f->http, "/hop"), NULL, &LIM, NULL, NULL, NULL, &r, &err));
    assert_string_equal(r.body, "arrived");
    sc_fetch_result_free(&r);

    fx_set(f, "/loop", "\"body\": \"\", \"status\": 302, \"headers\": {\"Location\": \"/loop\"}");
    free(fx_cmd(f, "{\"op\": \"clear\", \"path\": \"/loop\"}"));
    assert_false(sc_fetch(url_of(f->http, "/loop"), NULL, &LIM, NULL, NULL, NULL, &r, &err));
    assert_contains(err.msg, "more than 5 redirects");
    int gets, heads;
    free(fx_requests(f, "/loop", &gets, &heads));
    assert_int_equal(gets, 1 + 5);

    fx_set(f, "/to-file",
           "\"body\": \"\", \"status\": 302, \"headers\": {\"Location\": \"file:///etc/hostname\"}");
    assert_false(sc_fetch(url_of(f->http, "/to-file"), NULL, &LIM, NULL, NULL, NULL, &r, &err));
    assert_contains(err.msg, "only http and https");
}

static void test_http_cannot_connect(void **state)
{
    (void)state;
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    assert_false(sc_fetch("http://127.0.0.1:1/x", NULL, &LIM, NULL, NULL, NULL, &r, &err));
    assert_contains(err.msg, "http://127.0.0.1:1/x: cannot connect");
    assert_false(sc_fetch("ftp://127.0.0.1/x", NULL, &LIM, NULL, NULL, NULL, &r, &err));
    assert_contains(err.msg, "unsupported URL scheme");
}

/* ---- malformed responses ------------------------------------------------------- */

/* A loopback server that answers each connection with fixed bytes chosen by
 * the request path, whatever HTTP says: fixture_http.py cannot send a broken
 * status line. One thread, one connection at a time. */
typedef struct canned {
    const char *path, *bytes;
    size_t len;
} canned_t;

typedef struct raw_srv {
    int fd;
    unsigned short port;
    pthread_t thread;
    const canned_t *answers;
    size_t n;
} raw_srv_t;

#define CANNED(path, lit) {path, lit, sizeof lit - 1}

/* Reads the request head (bounded) and returns the canned answer for it. */
static const canned_t *raw_request(const raw_srv_t *srv, int c)
{
    char req[4096];
    size_t len = 0;
    while (len < sizeof req - 1) {
        ssize_t r = recv(c, req + len, sizeof req - 1 - len, 0);
        if (r <= 0)
            return NULL;
        len += (size_t)r;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    const char *sp = strchr(req, ' ');
    size_t plen = sp ? strcspn(sp + 1, " ") : 0;
    for (size_t i = 0; sp && i < srv->n; i++)
        if (strlen(srv->answers[i].path) == plen && !strncmp(sp + 1, srv->answers[i].path, plen))
            return &srv->answers[i];
    return NULL;
}

static void *raw_serve(void *arg)
{
    raw_srv_t *srv = arg;
    for (;;) {
        int c = accept(srv->fd, NULL, NULL);
        if (c < 0)
            return NULL; /* raw_stop shut the socket down */
        struct timeval tv = {2, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        const canned_t *a = raw_request(srv, c);
        if (a && send(c, a->bytes, a->len, MSG_NOSIGNAL) < 0)
            perror("raw_serve: send");
        close(c);
    }
}

static void raw_start(raw_srv_t *srv, const canned_t *answers, size_t n)
{
    *srv = (raw_srv_t){.answers = answers, .n = n};
    srv->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(srv->fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(srv->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(srv->fd, 16), 0);
    assert_int_equal(getsockname(srv->fd, (struct sockaddr *)&sa, &sl), 0);
    srv->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&srv->thread, NULL, raw_serve, srv), 0);
}

static void raw_stop(raw_srv_t *srv)
{
    shutdown(srv->fd, SHUT_RDWR); /* wakes accept() */
    pthread_join(srv->thread, NULL);
    close(srv->fd);
}

/* sc_fetch's error for path on srv, which must fail. */
static void raw_fetch_fails(const raw_srv_t *srv, const char *path, char *url, size_t cap,
                            ibp_err_t *err)
{
    snprintf(url, cap, "http://127.0.0.1:%u%s", srv->port, path);
    sc_fetch_result_t r;
    assert_false(sc_fetch(url, NULL, &LIM, NULL, NULL, NULL, &r, err));
    assert_null(r.body);
}

/* Each garbage response is named as such, with the URL and what came; only
 * a redirect to another scheme says "only http and https". */
static void test_http_malformed_responses(void **state)
{
    (void)state;
    static const canned_t answers[] = {
        CANNED("/abc", "HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\nhi"),
        CANNED("/foo", "FOO\r\n\r\n"),
        CANNED("/bin", "\x00\x01\xff\xfe garbage\r\n\r\n"),
        CANNED("/empty", "\r\nHTTP/1.1 200 OK\r\n\r\n"),
        CANNED("/nocolon", "HTTP/1.1 200 OK\r\nfoo bar\r\n\r\nx"),
        CANNED("/hop", "HTTP/1.1 302 Found\r\nLocation: /foo\r\nContent-Length: 0\r\n\r\n"),
        CANNED("/toftp", "HTTP/1.1 302 Found\r\nLocation: ftp://127.0.0.1/x\r\n"
                         "Content-Length: 0\r\n\r\n"),
    };
    static const struct { const char *path, *want; } cases[] = {
        {"/abc", ": malformed HTTP response (bad status line: "},
        {"/foo", ": malformed HTTP response (no status line; it starts with \"FOO\\r\\n\\r\\n\")"},
        {"/bin", "(no status line; it starts with \"\\x00\\x01\\xff\\xfe garbage\\r\\n"},
        {"/empty", "(no status line; it starts with \"\\r\\nHTTP/1.1 200 OK"},
        {"/nocolon", ": malformed HTTP response (Header without colon)"},
        {"/hop", "/hop: malformed HTTP response from http://127.0.0.1:"},
    };
    raw_srv_t srv;
    raw_start(&srv, answers, sizeof answers / sizeof answers[0]);
    char url[128];
    ibp_err_t err = {{0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        raw_fetch_fails(&srv, cases[i].path, url, sizeof url, &err);
        if (strncmp(err.msg, url, strlen(url)))
            fail_msg("\"%s\" does not start with %s", err.msg, url);
        assert_contains(err.msg, cases[i].want);
        assert_lacks(err.msg, "only http");
    }
    raw_fetch_fails(&srv, "/hop", url, sizeof url, &err);
    assert_contains(err.msg, "/foo (no status line; it starts with \"FOO");
    raw_fetch_fails(&srv, "/toftp", url, sizeof url, &err);
    assert_contains(err.msg, "only http and https are allowed");
    assert_lacks(err.msg, "malformed");
    /* HEAD (no body for curl to hand over) and a body streamed to a file. */
    char *lm = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/foo", srv.port);
    assert_false(sc_fetch_last_modified(url, &LIM, NULL, NULL, &lm, &err));
    assert_contains(err.msg, "/foo: malformed HTTP response (no status line");
    assert_false(sc_fetch_to_fd(url, &LIM, NULL, NULL, 1, NULL, &err));
    assert_contains(err.msg, "/foo: malformed HTTP response (no status line; it starts with");
    raw_stop(&srv);
}

typedef struct job {
    const char *url;
    bool ok;
    char body[64];
} job_t;

static void *fetch_job(void *arg)
{
    job_t *j = arg;
    sc_fetch_cache_t cache = {0};
    sc_fetch_result_t r;
    ibp_err_t err;
    j->ok = true;
    for (int i = 0; i < 5 && j->ok; i++) {
        j->ok = sc_fetch(j->url, NULL, &LIM, &cache, NULL, NULL, &r, &err) &&
                r.status == (i ? SC_FETCH_NOT_MODIFIED : SC_FETCH_OK);
        if (j->ok && r.body)
            snprintf(j->body, sizeof j->body, "%s", r.body);
        sc_fetch_result_free(&r);
    }
    sc_fetch_cache_free(&cache);
    return NULL;
}

/* Each call has its own handle: threads fetch side by side (cmocka's
 * asserts stay in the main thread). */
static void test_http_concurrent_threads(void **state)
{
    fx_t *f = *state;
    fx_set(f, "/shared.json", "\"body\": \"same for all\", \"delay\": 0.1");
    char u[256];
    snprintf(u, sizeof u, "%s/shared.json", f->http);
    pthread_t t[8];
    job_t jobs[8];
    for (int i = 0; i < 8; i++) {
        jobs[i] = (job_t){.url = u};
        assert_int_equal(pthread_create(&t[i], NULL, fetch_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_true(jobs[i].ok);
        assert_string_equal(jobs[i].body, "same for all");
    }
}

/* ---- https ---------------------------------------------------------------------- */

static void test_https_self_signed_rejected(void **state)
{
    fx_t *f = *state;
    fx_set(f, "/tls.json", "\"body\": \"secure\"");
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    assert_false(sc_fetch(url_of(f->https, "/tls.json"), NULL, &LIM, NULL, NULL, NULL, &r, &err));
    assert_contains(err.msg, "TLS certificate not trusted");
    assert_contains(err.msg, f->https);
}

static void test_https_with_ca_file(void **state)
{
    fx_t *f = *state;
    fx_set(f, "/tls.json", "\"body\": \"secure\"");
    sc_fetch_limits_t lim = {5000, 1 << 20, f->cert};
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    if (!sc_fetch(url_of(f->https, "/tls.json"), NULL, &lim, NULL, NULL, NULL, &r, &err))
        fail_msg("%s", err.msg);
    assert_string_equal(r.body, "secure");
    sc_fetch_result_free(&r);
    lim.ca_file = "/nonexistent/ca.pem";
    assert_false(sc_fetch(url_of(f->https, "/tls.json"), NULL, &lim, NULL, NULL, NULL, &r, &err));
    assert_contains(err.msg, "CA file");
}

/* ---- credentials ---------------------------------------------------------------- */

static void assert_no_secret(const char *msg)
{
    assert_lacks(msg, "alice");
    assert_lacks(msg, "s3cretpw");
    assert_lacks(msg, LICENSE);
    assert_lacks(msg, ACCOUNT);
}

static void test_credentials_never_in_errors(void **state)
{
    fx_t *f = *state;
    fx_set(f, "/private", "\"body\": \"ok\", \"auth\": [\"" ACCOUNT "\", \"" LICENSE "\"]");
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    char u[512];
    assert_true(sc_fetch(url_of(f->http, "/private"), NULL, &LIM, NULL, ACCOUNT, LICENSE, &r, &err));
    assert_string_equal(r.body, "ok");
    sc_fetch_result_free(&r);
    assert_false(sc_fetch(url_of(f->http, "/private"), NULL, &LIM, NULL, ACCOUNT, "wrong-key-123",
                          &r, &err));
    assert_contains(err.msg, "HTTP 401");
    assert_no_secret(err.msg);
    assert_lacks(err.msg, "wrong-key-123");

    snprintf(u, sizeof u, "http://alice:s3cretpw@%s/boom", f->http + strlen("http://"));
    assert_false(sc_fetch(u, NULL, &LIM, NULL, NULL, NULL, &r, &err));
    assert_contains(err.msg, "HTTP 500");
    assert_contains(err.msg, "127.0.0.1");
    assert_no_secret(err.msg);
    assert_false(sc_fetch("https://alice:s3cretpw@127.0.0.1:1/x?license_key=" LICENSE "&v=1",
                          NULL, &LIM, NULL, "alice", "s3cretpw", &r, &err));
    assert_contains(err.msg, "cannot connect");
    assert_contains(err.msg, "license_key=***&v=1");
    assert_no_secret(err.msg);
    snprintf(u, sizeof u, "https://alice:s3cretpw@%s/tls.json", f->https + strlen("https://"));
    assert_false(sc_fetch(u, NULL, &LIM, NULL, NULL, NULL, &r, &err));
    assert_contains(err.msg, "TLS");
    assert_no_secret(err.msg);

    char shown[128];
    sc_fetch_redact_url("https://u:p@h.example/a?token=xyz&page=2#frag", shown, sizeof shown);
    assert_string_equal(shown, "https://h.example/a?token=***&page=2#frag");
}

/* ---- HEAD and to_file ------------------------------------------------------------ */

static void test_last_modified_and_to_file(void **state)
{
    fx_t *f = *state;
    fx_set(f, "/db.bin", "\"garbage\": 20000, \"headers\": {\"Last-Modified\": \"" LM_1 "\"}");
    fx_clear(f);
    char *lm = NULL;
    ibp_err_t err = {{0}};
    assert_true(sc_fetch_last_modified(url_of(f->http, "/db.bin"), &LIM, NULL, NULL, &lm, &err));
    assert_string_equal(lm, LM_1);
    free(lm);
    int gets, heads;
    free(fx_requests(f, "/db.bin", &gets, &heads));
    assert_int_equal(gets, 0);
    assert_int_equal(heads, 1);

    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/db.bin", f->tmp);
    assert_true(sc_fetch_to_file(url_of(f->http, "/db.bin"), &LIM, NULL, NULL, path, &lm, &err));
    assert_string_equal(lm, LM_1);
    free(lm);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 20000);
    /* "a new file": an existing one is not overwritten */
    assert_false(sc_fetch_to_file(url_of(f->http, "/db.bin"), &LIM, NULL, NULL, path, NULL, &err));
    assert_contains(err.msg, path);
    unlink(path);
    sc_fetch_limits_t small = {5000, 1000, NULL};
    assert_false(sc_fetch_to_file(url_of(f->http, "/db.bin"), &small, NULL, NULL, path, NULL, &err));
    assert_contains(err.msg, "body over 1000 bytes");
    assert_int_not_equal(stat(path, &st), 0); /* nothing left behind */
    assert_false(sc_fetch_last_modified(url_of(f->http, "/boom"), &LIM, NULL, NULL, &lm, &err));
    assert_null(lm);
    assert_contains(err.msg, "HTTP 500");
}

/* ---- files ---------------------------------------------------------------------- */

static void test_file_url_and_relative_path(void **state)
{
    fx_t *f = *state;
    char path[PATH_MAX], u[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/members.json", f->tmp);
    write_text(path, "{\"a\": 1}");
    snprintf(u, sizeof u, "file://%s", path);
    sc_fetch_cache_t cache = {0};
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    if (!sc_fetch(u, NULL, &LIM, &cache, NULL, NULL, &r, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(r.status, SC_FETCH_OK);
    assert_int_equal(r.http_code, 0);
    assert_string_equal(r.body, "{\"a\": 1}");
    assert_non_null(r.last_modified);
    assert_true(!strncmp(cache.etag, "file:", 5));
    sc_fetch_result_free(&r);

    assert_true(sc_fetch(u, NULL, &LIM, &cache, NULL, NULL, &r, &err));
    assert_int_equal(r.status, SC_FETCH_NOT_MODIFIED);
    assert_null(r.body);
    sc_fetch_result_free(&r);

    /* The same file relative to base_dir, with the cache it shares. */
    assert_true(sc_fetch("members.json", f->tmp, &LIM, &cache, NULL, NULL, &r, &err));
    assert_int_equal(r.status, SC_FETCH_NOT_MODIFIED);
    sc_fetch_result_free(&r);
    sc_fetch_cache_free(&cache);
    assert_true(sc_fetch("members.json", f->tmp, &LIM, &cache, NULL, NULL, &r, &err));
    assert_int_equal(r.status, SC_FETCH_OK);
    assert_string_equal(r.body, "{\"a\": 1}");
    sc_fetch_result_free(&r);
    sc_fetch_cache_free(&cache);
}

/* A same-size replacement with the same mtime, renamed over the file, is
 * still seen: the inode differs. */
static void test_file_replaced_same_size_and_mtime(void **state)
{
    fx_t *f = *state;
    char path[PATH_MAX], next[PATH_MAX];
    snprintf(path, sizeof path, "%s/static.json", f->tmp);
    snprintf(next, sizeof next, "%s/static.json.new", f->tmp);
    write_text(path, "AAAA");
    sc_fetch_cache_t cache = {0};
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    assert_true(sc_fetch(path, NULL, &LIM, &cache, NULL, NULL, &r, &err));
    sc_fetch_result_free(&r);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    write_text(next, "BBBB");
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    assert_int_equal(utimensat(AT_FDCWD, next, times, 0), 0);
    assert_int_equal(rename(next, path), 0);
    assert_true(sc_fetch(path, NULL, &LIM, &cache, NULL, NULL, &r, &err));
    assert_int_equal(r.status, SC_FETCH_OK);
    assert_string_equal(r.body, "BBBB");
    sc_fetch_result_free(&r);
    sc_fetch_cache_free(&cache);
}

static void test_file_errors(void **state)
{
    fx_t *f = *state;
    sc_fetch_result_t r;
    ibp_err_t err = {{0}};
    assert_false(sc_fetch("missing.json", f->tmp, &LIM, NULL, NULL, NULL, &r, &err));
    assert_contains(err.msg, "missing.json");
    assert_contains(err.msg, "No such file");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/large.json", f->tmp);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 2000; i++)
        fputc('x', fp);
    fclose(fp);
    sc_fetch_limits_t lim = {5000, 1000, NULL};
    assert_false(sc_fetch(path, NULL, &lim, NULL, NULL, NULL, &r, &err));
    assert_contains(err.msg, "body over 1000 bytes");
    assert_null(r.body);
    assert_false(sc_fetch(f->tmp, NULL, &LIM, NULL, NULL, NULL, &r, &err));
    assert_contains(err.msg, "not a regular file");
    assert_false(sc_fetch("file://relative/x", NULL, &LIM, NULL, NULL, NULL, &r, &err));
    assert_contains(err.msg, "absolute path");
    assert_false(sc_fetch("", NULL, &LIM, NULL, NULL, NULL, &r, &err));
}

/* ---- MaxMind -------------------------------------------------------------------- */

typedef struct mm {
    char dir[256], base[256], db[PATH_MAX], marker[PATH_MAX];
    sc_maxmind_cfg_t cfg;
} mm_t;

/* The one URL-to-path rule that the sidecar and ibpdns-table build share. */
static void test_local_path_forms(void **state)
{
    (void)state;
    static const struct { const char *url, *want; } ok[] = {
        {"FILE:///srv/a%20b.json", "/srv/a b.json"}, {"file://localhost/x.json", "/x.json"},
        {"/abs.json", "/abs.json"}, {"rel.json", "/etc/ibpdns/rel.json"},
    };
    char path[256];
    ibp_err_t err = {{0}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_true(ibp_local_path(ok[i].url, "/etc/ibpdns", path, sizeof path, &err));
        assert_string_equal(path, ok[i].want);
    }
    assert_false(ibp_local_path("ftp://user:secret@host/x", NULL, path, sizeof path, &err));
    assert_contains(err.msg, "unsupported URL scheme");
    assert_null(strstr(err.msg, "secret"));
    assert_false(ibp_local_path("https://host/x", NULL, path, sizeof path, &err));
    assert_contains(err.msg, "not a local file");
    assert_false(ibp_local_path("file:///x%00y", NULL, path, sizeof path, &err));
    assert_contains(err.msg, "%-escape");
}

static void mm_init(fx_t *f, mm_t *m, const char *name, bool with_account)
{
    snprintf(m->dir, sizeof m->dir, "%s/%s/maxmind", f->tmp, name); /* two levels to create */
    snprintf(m->base, sizeof m->base, "%s/geoip/databases/", f->http);
    snprintf(m->db, sizeof m->db, "%s/CityLite.mmdb", m->dir);
    snprintf(m->marker, sizeof m->marker, "%s/.CityLite", m->dir);
    m->cfg = (sc_maxmind_cfg_t){.dir = m->dir,
                                .account = with_account ? ACCOUNT : "",
                                .license_key = with_account ? LICENSE : "",
                                .download_base = m->base,
                                .limits = {5000, 64 << 20, NULL}};
}

/* Serves a City tar.gz of the named test database with a Last-Modified. */
static void mm_serve(fx_t *f, const char *mmdb_name, const char *lm)
{
    char spec[PATH_MAX + 256];
    snprintf(spec, sizeof spec,
             "\"tar_gz\": {\"mmdb\": \"%s\"}, \"headers\": {\"Last-Modified\": \"%s\"},"
             " \"auth\": [\"" ACCOUNT "\", \"" LICENSE "\"]",
             mmdb(mmdb_name), lm);
    fx_set(f, MM_PATH, spec);
    fx_clear(f);
}

static void mm_refresh_ok(mm_t *m, bool want_changed)
{
    bool changed = !want_changed;
    ibp_err_t err = {{0}};
    if (!sc_maxmind_refresh(&m->cfg, &SC_MAXMIND_CITY, &changed, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(changed, want_changed);
}

static void mm_refresh_fails(mm_t *m, const char *want)
{
    bool changed = true;
    ibp_err_t err = {{0}};
    assert_false(sc_maxmind_refresh(&m->cfg, &SC_MAXMIND_CITY, &changed, &err));
    assert_false(changed);
    assert_contains(err.msg, want);
    assert_no_secret(err.msg);
}

static void assert_marker(const mm_t *m, const char *want)
{
    size_t n;
    char *v = slurp(m->marker, &n);
    assert_string_equal(v, want);
    free(v);
}

/* Only the database and its marker: no temp file survives. */
static void assert_dir_clean(const mm_t *m)
{
    DIR *d = opendir(m->dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            strcmp(e->d_name, "CityLite.mmdb") && strcmp(e->d_name, ".CityLite"))
            fail_msg("%s: unexpected %s", m->dir, e->d_name);
    closedir(d);
}

static void test_maxmind_download_then_head_only(void **state)
{
    fx_t *f = *state;
    mm_t m;
    mm_init(f, &m, "mm-fresh", true);
    mm_serve(f, "GeoIP2-City-Test.mmdb", LM_1);
    mm_refresh_ok(&m, true);
    assert_same_file(m.db, mmdb("GeoIP2-City-Test.mmdb"));
    assert_marker(&m, LM_1);
    assert_dir_clean(&m);
    struct stat st;
    assert_int_equal(stat(m.dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);
    assert_int_equal(stat(m.db, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    int gets, heads;
    char *seen = fx_requests(f, MM_PATH, &gets, &heads);
    assert_int_equal(heads, 1);
    assert_int_equal(gets, 1);
    assert_contains(seen, "\"Authorization\": \"Basic ");
    free(seen);

    fx_clear(f);
    mm_refresh_ok(&m, false);
    free(fx_requests(f, MM_PATH, &gets, &heads));
    assert_int_equal(heads, 1);
    assert_int_equal(gets, 0);

    mm_serve(f, "GeoLite2-City-Test.mmdb", LM_2);
    mm_refresh_ok(&m, true);
    assert_same_file(m.db, mmdb("GeoLite2-City-Test.mmdb"));
    assert_marker(&m, LM_2);
    assert_dir_clean(&m);
}

/* A database deleted by hand is downloaded again even when the marker matches. */
static void test_maxmind_missing_file_redownloaded(void **state)
{
    fx_t *f = *state;
    mm_t m;
    mm_init(f, &m, "mm-missing", true);
    mm_serve(f, "GeoIP2-City-Test.mmdb", LM_1);
    mm_refresh_ok(&m, true);
    assert_int_equal(unlink(m.db), 0);
    mm_refresh_ok(&m, true);
    assert_same_file(m.db, mmdb("GeoIP2-City-Test.mmdb"));
}

/* Every failure after a good download leaves that download and its marker. */
static void test_maxmind_failures_keep_old_file(void **state)
{
    fx_t *f = *state;
    mm_t m;
    mm_init(f, &m, "mm-fail", true);
    mm_serve(f, "GeoIP2-City-Test.mmdb", LM_1);
    mm_refresh_ok(&m, true);
    const char *hdrs = "\"headers\": {\"Last-Modified\": \"" LM_2 "\"}";
    char spec[PATH_MAX + 256];

    snprintf(spec, sizeof spec, "\"garbage\": 30000, %s", hdrs);
    fx_set(f, MM_PATH, spec);
    mm_refresh_fails(&m, "GeoLite2-City: ");

    snprintf(spec, sizeof spec, "\"tar_members\": {\"GeoLite2-City_1/README.txt\": \"hi\"}, %s", hdrs);
    fx_set(f, MM_PATH, spec);
    mm_refresh_fails(&m, "no .mmdb");

    snprintf(spec, sizeof spec, "\"tar_gz\": {\"mmdb\": \"%s\"}, %s",
             mmdb("GeoIP2-Country-Test.mmdb"), hdrs);
    fx_set(f, MM_PATH, spec);
    mm_refresh_fails(&m, "is not a City database");

    snprintf(spec, sizeof spec, "\"tar_members\": {\"x/GeoLite2-City.mmdb\": \"not a db\"}, %s", hdrs);
    fx_set(f, MM_PATH, spec);
    mm_refresh_fails(&m, "not a MaxMind database");

    fx_set(f, MM_PATH, "\"body\": \"down\", \"status\": 500");
    mm_refresh_fails(&m, "HTTP 500");

    mm_serve(f, "GeoLite2-City-Test.mmdb", LM_2);
    m.cfg.license_key = "wrong-license";
    mm_refresh_fails(&m, "HTTP 401");

    assert_same_file(m.db, mmdb("GeoIP2-City-Test.mmdb"));
    assert_marker(&m, LM_1);
    assert_dir_clean(&m);
}

static void test_maxmind_corrupt_archive(void **state)
{
    fx_t *f = *state;
    mm_t m;
    mm_init(f, &m, "mm-corrupt", true);
    mm_serve(f, "GeoIP2-City-Test.mmdb", LM_1);
    mm_refresh_ok(&m, true);
    fx_set(f, MM_PATH, "\"garbage\": 30000, \"headers\": {\"Last-Modified\": \"" LM_2 "\"}");
    mm_refresh_fails(&m, "archive");
    assert_same_file(m.db, mmdb("GeoIP2-City-Test.mmdb"));
    assert_dir_clean(&m);
}

static void test_maxmind_without_account(void **state)
{
    fx_t *f = *state;
    mm_t m;
    mm_init(f, &m, "mm-local", false);
    fx_clear(f);
    mm_refresh_fails(&m, m.db);
    size_t n;
    char *data = slurp(mmdb("GeoIP2-City-Test.mmdb"), &n);
    FILE *fp = fopen(m.db, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
    free(data);
    mm_refresh_ok(&m, false);
    m.cfg.account = NULL;
    mm_refresh_ok(&m, false);
    int gets, heads;
    free(fx_requests(f, MM_PATH, &gets, &heads));
    assert_int_equal(gets + heads, 0);
}

static void test_maxmind_asn_type_checked(void **state)
{
    fx_t *f = *state;
    mm_t m;
    mm_init(f, &m, "mm-asn", true);
    char spec[PATH_MAX + 256];
    snprintf(spec, sizeof spec,
             "\"tar_gz\": {\"mmdb\": \"%s\", \"inner\": \"GeoLite2-ASN_20240101/GeoLite2-ASN.mmdb\"},"
             " \"headers\": {\"Last-Modified\": \"" LM_1 "\"}",
             mmdb("GeoLite2-ASN-Test.mmdb"));
    fx_set(f, "/geoip/databases/GeoLite2-ASN/download", spec);
    m.cfg.limits = (sc_fetch_limits_t){0}; /* MaxMind's own defaults */
    bool changed = false;
    ibp_err_t err = {{0}};
    if (!sc_maxmind_refresh(&m.cfg, &SC_MAXMIND_ASN, &changed, &err))
        fail_msg("%s", err.msg);
    assert_true(changed);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/AsnLite.mmdb", m.dir);
    assert_same_file(path, mmdb("GeoLite2-ASN-Test.mmdb"));
    snprintf(path, sizeof path, "%s/.AsnLite", m.dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    /* City's file is someone else's business: the ASN edition must not touch it. */
    assert_int_not_equal(stat(m.db, &st), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* The tests talk to 127.0.0.1 only: no proxy may be in the way. */
    static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTP_PROXY",
                                          "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++)
        unsetenv(proxies[i]);
    ibp_err_t err;
    if (!sc_fetch_global_init(&err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_200_body),
        cmocka_unit_test(test_http_304_with_cache),
        cmocka_unit_test(test_http_304_by_last_modified),
        cmocka_unit_test(test_http_500_is_error),
        cmocka_unit_test(test_http_timeout),
        cmocka_unit_test(test_http_body_over_limit),
        cmocka_unit_test(test_http_results_source_header),
        cmocka_unit_test(test_http_redirects),
        cmocka_unit_test(test_http_cannot_connect),
        cmocka_unit_test(test_http_malformed_responses),
        cmocka_unit_test(test_http_concurrent_threads),
        cmocka_unit_test(test_https_self_signed_rejected),
        cmocka_unit_test(test_https_with_ca_file),
        cmocka_unit_test(test_credentials_never_in_errors),
        cmocka_unit_test(test_last_modified_and_to_file),
        cmocka_unit_test(test_file_url_and_relative_path),
        cmocka_unit_test(test_file_replaced_same_size_and_mtime),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_maxmind_download_then_head_only),
        cmocka_unit_test(test_maxmind_missing_file_redownloaded),
        cmocka_unit_test(test_maxmind_failures_keep_old_file),
        cmocka_unit_test(test_maxmind_corrupt_archive),
        cmocka_unit_test(test_maxmind_without_account),
        cmocka_unit_test(test_maxmind_asn_type_checked),
        cmocka_unit_test(test_local_path_forms),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    sc_fetch_global_cleanup();
    return rc;
}
