/* HTTP(S) through libcurl, local files through open/fstat. Every call owns
 * its easy handle, so threads may fetch concurrently once
 * sc_fetch_global_init has run. Nothing here prints: errors go to ibp_err_t,
 * and every http(s) URL in them passes through sc_fetch_redact_url first
 * (local paths resolve through ibp_local_path, which shows no credentials). */
#include "fetch.h"

#include "ibp_file.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#define SHOWN_URL_MAX 320
#define FILE_KEY_MAX 96

/* One transfer: the easy handle plus what its callbacks collect. */
typedef struct xfer {
    CURL *h;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    long timeout_ms;
    size_t max;
    bool head;
    long code;          /* status of the response being received (0: no status line yet) */
    bool over;          /* the body passed max and the transfer was aborted */
    bool no_status;     /* a response came without a status line (aborted, see write_cb) */
    char start[24];     /* its first bytes, for the error */
    size_t start_len;
    int fd;             /* body sink when >= 0, else buf */
    int write_errno;
    char *buf;
    size_t len, cap;
    char *etag, *last_modified, *results_source;
} xfer_t;

/* ---- limits and small string helpers --------------------------------------- */

static long limit_timeout(const sc_fetch_limits_t *lim)
{
    return lim && lim->timeout_ms > 0 ? lim->timeout_ms : SC_FETCH_DEFAULT_TIMEOUT_MS;
}

static size_t limit_bytes(const sc_fetch_limits_t *lim)
{
    size_t max = lim && lim->max_bytes ? lim->max_bytes : SC_FETCH_DEFAULT_MAX_BYTES;
    return max > SIZE_MAX - 2 ? SIZE_MAX - 2 : max; /* max + 2 must not wrap */
}

static bool has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static bool is_http_url(const char *url)
{
    return has_prefix_ci(url, "http://") || has_prefix_ci(url, "https://");
}

/* Replaces *slot with a copy of v[0..n). */
static bool keep(char **slot, const char *v, size_t n)
{
    free(*slot);
    *slot = strndup(v, n);
    return *slot != NULL;
}

static char *steal(char **p)
{
    char *v = *p;
    *p = NULL;
    return v;
}

/* ---- redaction ----------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t cap, len;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n)
{
    size_t room = b->cap - 1 - b->len;
    n = n < room ? n : room;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static bool secret_param(const char *name, size_t n)
{
    static const char *const words[] = {"key", "token", "secret", "pass", "auth", "sig"};
    char low[64];
    n = n < sizeof low - 1 ? n : sizeof low - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    low[n] = '\0';
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(low, words[i]))
            return true;
    return false;
}

/* q starts at '?': copies it with secret-looking values masked. */
static void redact_query(sbuf_t *b, const char *q)
{
    while (*q == '?' || *q == '&') {
        sb_put(b, q++, 1);
        size_t n = strcspn(q, "&#");
        const char *eq = memchr(q, '=', n);
        if (eq && secret_param(q, (size_t)(eq - q))) {
            sb_put(b, q, (size_t)(eq - q) + 1);
            sb_put(b, "***", 3);
        } else {
            sb_put(b, q, n);
        }
        q += n;
    }
    sb_put(b, q, strlen(q));
}

/* Copies text, dropping the userinfo of every "scheme://user:pass@host" in it. */
static void strip_userinfo(const char *text, const char *stops, sbuf_t *b)
{
    const char *s = text, *sep;
    while ((sep = strstr(s, "://"))) {
        const char *auth = sep + 3;
        const char *at = memrchr(auth, '@', strcspn(auth, stops));
        sb_put(b, s, (size_t)(auth - s));
        s = at ? at + 1 : auth;
    }
    sb_put(b, s, strlen(s));
}

/* Shorter strings would mask ordinary words of the message, and a secret of
 * one or two characters protects nothing anyway. */
static void mask_literal(char *s, const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;
    if (n < 3)
        return;
    for (char *p = strstr(s, secret); p; p = strstr(p + n, secret))
        memset(p, '*', n);
}

void sc_fetch_redact_url(const char *url, char *out, size_t cap)
{
    if (!out || !cap)
        return;
    out[0] = '\0';
    if (!url)
        return;
    char tmp[2048];
    sbuf_t t = {tmp, sizeof tmp, 0};
    tmp[0] = '\0';
    strip_userinfo(url, "/?#", &t);
    sbuf_t b = {out, cap, 0};
    size_t path_len = strcspn(tmp, "?#");
    sb_put(&b, tmp, path_len);
    if (tmp[path_len] == '?')
        redact_query(&b, tmp + path_len);
    else
        sb_put(&b, tmp + path_len, strlen(tmp + path_len));
}

static void shown_url(const char *url, const char *user, const char *pass, char *out, size_t cap)
{
    sc_fetch_redact_url(url, out, cap);
    mask_literal(out, user);
    mask_literal(out, pass);
}

/* curl's messages name hosts, not credentials; but an echoed URL could carry
 * userinfo, and a literal secret must never pass whatever its source. */
static void shown_detail(const char *text, const char *user, const char *pass, char *out,
                         size_t cap)
{
    sbuf_t b = {out, cap, 0};
    out[0] = '\0';
    strip_userinfo(text, "/?# \t\"'", &b);
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
    mask_literal(out, user);
    mask_literal(out, pass);
}

/* ---- curl callbacks ---------------------------------------------------------- */

/* Trimmed value of the header line `line` if its name is `name` (any case). */
static bool header_value(const char *line, size_t len, const char *name, const char **val,
                         size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
        return false;
    const char *v = line + n + 1, *end = line + len;
    while (v < end && isspace((unsigned char)*v))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    *val = v;
    *vlen = (size_t)(end - v);
    return true;
}

/* A status line starts a new response (after a redirect or a 100): forget
 * the previous one's headers so only the final response's are reported. */
static void response_start(xfer_t *x, const char *line, size_t len)
{
    char tmp[32];
    size_t n = len < sizeof tmp - 1 ? len : sizeof tmp - 1;
    memcpy(tmp, line, n);
    tmp[n] = '\0';
    const char *sp = strchr(tmp, ' ');
    x->code = sp ? strtol(sp + 1, NULL, 10) : 0;
    free(steal(&x->etag));
    free(steal(&x->last_modified));
    free(steal(&x->results_source));
}

/* Refuses a body announced larger than the limit before any of it arrives. */
static bool length_fits(xfer_t *x, const char *v, size_t vlen)
{
    if (x->head || x->code != 200)
        return true;
    char tmp[32];
    size_t n = vlen < sizeof tmp - 1 ? vlen : sizeof tmp - 1;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    char *end;
    unsigned long long announced = strtoull(tmp, &end, 10);
    if (end != tmp && announced > x->max) {
        x->over = true;
        return false;
    }
    return true;
}

static size_t header_cb(char *data, size_t size, size_t nitems, void *ud)
{
    xfer_t *x = ud;
    size_t len = size * nitems;
    const char *v;
    size_t vlen;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0)
        response_start(x, data, len);
    else if (header_value(data, len, "Content-Length", &v, &vlen))
        return length_fits(x, v, vlen) ? len : 0;
    else if (header_value(data, len, "ETag", &v, &vlen))
        return keep(&x->etag, v, vlen) ? len : 0;
    else if (header_value(data, len, "Last-Modified", &v, &vlen))
        return keep(&x->last_modified, v, vlen) ? len : 0;
    else if (header_value(data, len, "X-IBP-Results-Source", &v, &vlen))
        return keep(&x->results_source, v, vlen) ? len : 0;
    return len;
}

static bool sink_mem(xfer_t *x, const char *data, size_t n)
{
    size_t need = x->len + n + 1;
    if (need > x->cap) {
        size_t cap = x->cap ? x->cap : 16384;
        while (cap < need && cap <= SIZE_MAX / 2)
            cap *= 2;
        if (cap > x->max + 1) /* never reserve more than the limit allows */
            cap = need > x->max + 1 ? need : x->max + 1;
        char *nb = realloc(x->buf, cap);
        if (!nb)
            return false;
        x->buf = nb;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, data, n);
    return true;
}

static bool sink_fd(xfer_t *x, const char *data, size_t n)
{
    while (n) {
        ssize_t w = write(x->fd, data, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            x->write_errno = errno;
            return false;
        }
        data += w;
        n -= (size_t)w;
    }
    return true;
}

/* Called before every request, the first and each redirect: the status of
 * the previous response must not vouch for the next one. */
static int prereq_cb(void *ud, char *conn_ip, char *local_ip, int conn_port, int local_port)
{
    (void)conn_ip;
    (void)local_ip;
    (void)conn_port;
    (void)local_port;
    ((xfer_t *)ud)->code = 0;
    return CURL_PREREQFUNC_OK;
}

/* Bytes before any status line: curl lets them through as an HTTP/0.9 body
 * (see set_protocol_opts) only so that the error can show what came. The
 * first few are kept, then the transfer is aborted: it never succeeds. */
static size_t no_status_line(xfer_t *x, const char *data, size_t len)
{
    x->no_status = true;
    size_t n = sizeof x->start - x->start_len;
    n = len < n ? len : n;
    memcpy(x->start + x->start_len, data, n);
    x->start_len += n;
    return x->start_len < sizeof x->start ? len : 0;
}

static size_t write_cb(char *data, size_t size, size_t nitems, void *ud)
{
    xfer_t *x = ud;
    size_t len = size * nitems;
    if (x->code == 0)
        return no_status_line(x, data, len);
    if (x->code != 200)
        return len; /* an error page is not the body that was asked for */
    if (len > x->max - x->len) {
        x->over = true;
        return 0;
    }
    if (!(x->fd >= 0 ? sink_fd(x, data, len) : sink_mem(x, data, len)))
        return 0;
    x->len += len;
    return len;
}

/* ---- transfers ----------------------------------------------------------------- */

static void xfer_init(xfer_t *x, const sc_fetch_limits_t *lim, bool head, int fd)
{
    memset(x, 0, sizeof *x);
    x->timeout_ms = limit_timeout(lim);
    x->max = limit_bytes(lim);
    x->head = head;
    x->fd = fd;
}

static void xfer_free(xfer_t *x)
{
    if (x->h)
        curl_easy_cleanup(x->h);
    curl_slist_free_all(x->hdrs);
    free(x->buf);
    free(x->etag);
    free(x->last_modified);
    free(x->results_source);
    memset(x, 0, sizeof *x);
}

#define SETOPT(h, opt, val)                                                            \
    do {                                                                               \
        if (curl_easy_setopt((h), (opt), (val)) != CURLE_OK)                           \
            return ibp_err_set(err, "libcurl rejected the option %s", #opt);           \
    } while (0)

static bool set_protocol_opts(CURL *h, const xfer_t *x, ibp_err_t *err)
{
    SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* Without this, a response that lacks a status line ends as
     * CURLE_UNSUPPORTED_PROTOCOL ("Received HTTP/0.9 when not allowed"),
     * which reads like a refused URL scheme. Allowed, it reaches write_cb
     * with no status, which aborts the transfer and keeps its first bytes:
     * such a response is still never a success. */
    SETOPT(h, CURLOPT_HTTP09_ALLOWED, 1L);
    SETOPT(h, CURLOPT_FOLLOWLOCATION, 1L);
    SETOPT(h, CURLOPT_MAXREDIRS, (long)SC_FETCH_MAX_REDIRECTS);
    SETOPT(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM-based DNS timeouts */
    SETOPT(h, CURLOPT_TIMEOUT_MS, x->timeout_ms);
    SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, x->timeout_ms);
    SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(h, CURLOPT_USERAGENT, "ibpdns-sidecar");
    SETOPT(h, CURLOPT_NOBODY, x->head ? 1L : 0L);
    return true;
}

static bool set_callback_opts(CURL *h, xfer_t *x, ibp_err_t *err)
{
    SETOPT(h, CURLOPT_ERRORBUFFER, x->errbuf);
    SETOPT(h, CURLOPT_HEADERFUNCTION, header_cb);
    SETOPT(h, CURLOPT_HEADERDATA, x);
    SETOPT(h, CURLOPT_WRITEFUNCTION, write_cb);
    SETOPT(h, CURLOPT_WRITEDATA, x);
    SETOPT(h, CURLOPT_PREREQFUNCTION, prereq_cb);
    SETOPT(h, CURLOPT_PREREQDATA, x);
    return true;
}

/* A given CA file replaces the system store rather than adding to it: a
 * private monitor's certificate should not be trusted for anything else. */
static bool set_ca(CURL *h, const sc_fetch_limits_t *lim, ibp_err_t *err)
{
    if (!lim || !lim->ca_file || !lim->ca_file[0])
        return true;
    SETOPT(h, CURLOPT_CAINFO, lim->ca_file);
    SETOPT(h, CURLOPT_CAPATH, (char *)NULL);
    return true;
}

static bool set_auth(CURL *h, const char *user, const char *pass, ibp_err_t *err)
{
    if (!(user && user[0]) && !(pass && pass[0]))
        return true;
    SETOPT(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    SETOPT(h, CURLOPT_USERNAME, user ? user : "");
    SETOPT(h, CURLOPT_PASSWORD, pass ? pass : "");
    return true;
}

static bool add_header(xfer_t *x, const char *name, const char *value, ibp_err_t *err)
{
    if (strpbrk(value, "\r\n"))
        return true; /* never let a stored value inject a header line */
    char line[1024];
    int n = snprintf(line, sizeof line, "%s: %s", name, value);
    if (n < 0 || (size_t)n >= sizeof line)
        return true; /* an absurd validator: fetch unconditionally */
    struct curl_slist *l = curl_slist_append(x->hdrs, line);
    if (!l)
        return ibp_err_set(err, "out of memory");
    x->hdrs = l;
    return true;
}

/* A "file:..." key belongs to a local file that used to be at this config
 * slot; a web server must not see it. */
static bool add_conditions(xfer_t *x, const sc_fetch_cache_t *cache, ibp_err_t *err)
{
    if (!cache)
        return true;
    if (cache->etag && strncmp(cache->etag, "file:", 5) != 0 &&
        !add_header(x, "If-None-Match", cache->etag, err))
        return false;
    if (cache->last_modified && !add_header(x, "If-Modified-Since", cache->last_modified, err))
        return false;
    if (x->hdrs)
        SETOPT(x->h, CURLOPT_HTTPHEADER, x->hdrs);
    return true;
}

#undef SETOPT

/* The bytes as a C string literal would show them: ASCII stays, the rest
 * (binary, a TLS alert, invalid UTF-8) becomes escapes, so the message is
 * readable and valid UTF-8 wherever it goes (logs, /status). */
static void escape_bytes(const char *data, size_t n, char *out, size_t cap)
{
    sbuf_t b = {out, cap, 0};
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)data[i];
        char esc[8];
        if (c == '\r' || c == '\n')
            snprintf(esc, sizeof esc, "\\%c", c == '\r' ? 'r' : 'n');
        else if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            snprintf(esc, sizeof esc, "\\x%02x", c);
        else
            snprintf(esc, sizeof esc, "%c", c);
        sb_put(&b, esc, strlen(esc));
    }
}

/* The URL whose response was at fault, when a redirect led away from the
 * one asked for: "" otherwise. */
static void hop_note(const xfer_t *x, const char *shown, const char *user, const char *pass,
                     char *out, size_t cap)
{
    char *eff = NULL, hop[SHOWN_URL_MAX];
    out[0] = '\0';
    if (curl_easy_getinfo(x->h, CURLINFO_EFFECTIVE_URL, &eff) != CURLE_OK || !eff)
        return;
    shown_url(eff, user, pass, hop, sizeof hop);
    if (strcmp(hop, shown))
        snprintf(out, cap, " from %s", hop);
}

/* A response curl could not read as HTTP; why says what was wrong with it. */
static bool malformed(const xfer_t *x, const char *shown, const char *why, const char *user,
                      const char *pass, ibp_err_t *err)
{
    char hop[SHOWN_URL_MAX + 8];
    hop_note(x, shown, user, pass, hop, sizeof hop);
    return ibp_err_set(err, "%s: malformed HTTP response%s (%s)", shown, hop, why);
}

/* What came instead of a status line, or what curl found wrong with the
 * status line or a header (its words: "Unsupported HTTP version in
 * response", "Header without colon"). detail may be NULL. */
static bool malformed_reply(const xfer_t *x, CURLcode rc, const char *shown, const char *detail,
                            const char *user, const char *pass, ibp_err_t *err)
{
    char why[4 * sizeof x->start + CURL_ERROR_SIZE + 64];
    if (x->no_status) {
        char start[4 * sizeof x->start + 1];
        escape_bytes(x->start, x->start_len, start, sizeof start);
        snprintf(why, sizeof why, "no status line; it starts with \"%s\"", start);
    } else if (rc == CURLE_UNSUPPORTED_PROTOCOL) {
        snprintf(why, sizeof why, "bad status line: %s", detail);
    } else if (x->code == 0) { /* e.g. HEAD: curl gives no bytes, only "Weird server reply" */
        snprintf(why, sizeof why, "no status line%s%s%s", detail ? " (" : "", detail ? detail : "",
                 detail ? ")" : "");
    } else {
        snprintf(why, sizeof why, "%s", detail);
    }
    return malformed(x, shown, why, user, pass, err);
}

/* CURLE_UNSUPPORTED_PROTOCOL means two things: a refused scheme (only ever
 * a redirect here: callers pass http(s) URLs only, and then the effective
 * URL is the refused one), or a response whose status line curl rejected
 * ("Unsupported HTTP version in response", "Unsupported response code"):
 * then the effective URL is still http(s). */
static bool scheme_refused(const xfer_t *x)
{
    char *eff = NULL;
    return curl_easy_getinfo(x->h, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff &&
           !is_http_url(eff);
}

static bool curl_failure(const xfer_t *x, CURLcode rc, const char *shown, const char *user,
                         const char *pass, ibp_err_t *err)
{
    char detail[CURL_ERROR_SIZE + 16];
    shown_detail(x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc), user, pass, detail,
                 sizeof detail);
    if (x->no_status || rc == CURLE_WEIRD_SERVER_REPLY ||
        (rc == CURLE_UNSUPPORTED_PROTOCOL && !scheme_refused(x)))
        return malformed_reply(x, rc, shown, detail, user, pass, err);
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return ibp_err_set(err, "%s: timeout after %ld ms", shown, x->timeout_ms);
    case CURLE_PEER_FAILED_VERIFICATION:
        return ibp_err_set(err, "%s: TLS certificate not trusted (%s)", shown, detail);
    case CURLE_SSL_CACERT_BADFILE:
        return ibp_err_set(err, "%s: cannot load the CA file (%s)", shown, detail);
    case CURLE_SSL_CONNECT_ERROR:
        return ibp_err_set(err, "%s: TLS handshake failed (%s)", shown, detail);
    case CURLE_COULDNT_RESOLVE_HOST:
        return ibp_err_set(err, "%s: cannot resolve the host (%s)", shown, detail);
    case CURLE_COULDNT_CONNECT:
        return ibp_err_set(err, "%s: cannot connect (%s)", shown, detail);
    case CURLE_TOO_MANY_REDIRECTS:
        return ibp_err_set(err, "%s: more than %d redirects", shown, SC_FETCH_MAX_REDIRECTS);
    case CURLE_UNSUPPORTED_PROTOCOL:
        return ibp_err_set(err, "%s: only http and https are allowed (%s)", shown, detail);
    case CURLE_WRITE_ERROR:
        if (x->over)
            return ibp_err_set(err, "%s: body over %zu bytes", shown, x->max);
        if (x->write_errno)
            return ibp_err_set(err, "%s: writing the body: %s", shown,
                               strerror(x->write_errno));
        break;
    default:
        break;
    }
    return ibp_err_set(err, "%s: %s", shown, detail);
}

/* Runs a prepared transfer: 200 (and 304 when allowed) is success. */
static bool xfer_run(xfer_t *x, const char *url, const char *user, const char *pass,
                     bool allow_304, ibp_err_t *err)
{
    CURLcode rc = curl_easy_perform(x->h);
    char shown[SHOWN_URL_MAX];
    shown_url(url, user, pass, shown, sizeof shown);
    if (rc != CURLE_OK)
        return curl_failure(x, rc, shown, user, pass, err);
    /* Garbage shorter than x->start, or a HEAD answered by garbage: curl's
     * own response code would still be the previous hop's. */
    if (x->no_status || x->code == 0)
        return malformed_reply(x, rc, shown, NULL, user, pass, err);
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->code);
    if (x->code == 200 || (allow_304 && x->code == 304))
        return true;
    return ibp_err_set(err, "%s: HTTP %ld", shown, x->code);
}

static bool http_do(xfer_t *x, const char *url, const sc_fetch_limits_t *lim,
                    const sc_fetch_cache_t *cache, const char *user, const char *pass,
                    ibp_err_t *err)
{
    x->h = curl_easy_init();
    if (!x->h)
        return ibp_err_set(err, "libcurl: cannot create a handle");
    if (curl_easy_setopt(x->h, CURLOPT_URL, url) != CURLE_OK) {
        char shown[SHOWN_URL_MAX];
        shown_url(url, user, pass, shown, sizeof shown);
        return ibp_err_set(err, "%s: malformed URL", shown);
    }
    return set_protocol_opts(x->h, x, err) && set_callback_opts(x->h, x, err) &&
           set_ca(x->h, lim, err) && set_auth(x->h, user, pass, err) &&
           add_conditions(x, cache, err) && xfer_run(x, url, user, pass, cache != NULL, err);
}

static bool require_http(const char *url, ibp_err_t *err)
{
    if (url && is_http_url(url))
        return true;
    char shown[SHOWN_URL_MAX];
    sc_fetch_redact_url(url ? url : "", shown, sizeof shown);
    return ibp_err_set(err, "%s: only http:// and https:// URLs here", shown);
}

/* The validators of a 200 replace the cached ones, also when absent: an old
 * ETag must not be sent for content the server no longer tags. */
static void update_cache(sc_fetch_cache_t *cache, xfer_t *x)
{
    if (!cache)
        return;
    free(cache->etag);
    cache->etag = steal(&x->etag);
    free(cache->last_modified);
    cache->last_modified = x->last_modified ? strdup(x->last_modified) : NULL;
}

static bool deliver(xfer_t *x, sc_fetch_cache_t *cache, sc_fetch_result_t *out, ibp_err_t *err)
{
    out->http_code = x->code;
    out->status = x->code == 304 ? SC_FETCH_NOT_MODIFIED : SC_FETCH_OK;
    if (out->status == SC_FETCH_OK) {
        if (!x->buf && !(x->buf = malloc(1)))
            return ibp_err_set(err, "out of memory");
        x->buf[x->len] = '\0';
        out->body = steal(&x->buf);
        out->len = x->len;
        update_cache(cache, x);
    }
    out->results_source = steal(&x->results_source);
    out->last_modified = steal(&x->last_modified);
    return true;
}

static bool fetch_http(const char *url, const sc_fetch_limits_t *lim, sc_fetch_cache_t *cache,
                       const char *user, const char *pass, sc_fetch_result_t *out,
                       ibp_err_t *err)
{
    xfer_t x;
    xfer_init(&x, lim, false, -1);
    bool ok = http_do(&x, url, lim, cache, user, pass, err) && deliver(&x, cache, out, err);
    xfer_free(&x);
    if (!ok)
        sc_fetch_result_free(out);
    return ok;
}

/* ---- local files --------------------------------------------------------------- */

/* Inode, size and mtime: a rewrite in place or a rename over the file
 * changes at least one of them. */
static void file_key(const struct stat *st, char *out, size_t cap)
{
    intmax_t mtime_ns = (intmax_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    snprintf(out, cap, "file:%ju:%jd:%jd", (uintmax_t)st->st_ino, (intmax_t)st->st_size,
             mtime_ns);
}

static char *http_date(time_t t)
{
    struct tm tm;
    char buf[40];
    if (!gmtime_r(&t, &tm) || !strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm))
        return NULL;
    return strdup(buf);
}

/* Reads to EOF; the file may have grown since fstat, so more than max bytes
 * is detected while reading. Returns 0, EFBIG, ENOMEM or read's errno. */
static int read_limited(int fd, size_t hint, size_t max, char **bufp, size_t *lenp)
{
    size_t cap = (hint < max ? hint : max) + 1, len = 0;
    char *buf = malloc(cap + 1);
    int rc = ENOMEM;
    while (buf) {
        if (len == cap) {
            if (len > max) {
                rc = EFBIG;
                break;
            }
            size_t ncap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb)
                break;
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = errno;
            break;
        }
        if (r == 0) {
            buf[len] = '\0';
            *bufp = buf;
            *lenp = len;
            return 0;
        }
        len += (size_t)r;
    }
    free(buf);
    return rc;
}

static bool read_body(int fd, const char *path, const struct stat *st, size_t max,
                      sc_fetch_result_t *out, ibp_err_t *err)
{
    if ((uintmax_t)st->st_size > max)
        return ibp_err_set(err, "%s: body over %zu bytes", path, max);
    int rc = read_limited(fd, (size_t)st->st_size, max, &out->body, &out->len);
    if (rc == EFBIG)
        return ibp_err_set(err, "%s: body over %zu bytes", path, max);
    if (rc)
        return ibp_err_set(err, "%s: read failed: %s", path, strerror(rc));
    return true;
}

static void update_file_cache(sc_fetch_cache_t *cache, const char *key)
{
    if (!cache)
        return;
    free(cache->etag);
    cache->etag = strdup(key);
    free(cache->last_modified);
    cache->last_modified = NULL;
}

static bool fetch_file(const char *path, const sc_fetch_limits_t *lim, sc_fetch_cache_t *cache,
                       sc_fetch_result_t *out, ibp_err_t *err)
{
    struct stat st;
    int fd = ibp_file_open_regular(path, &st, err);
    if (fd < 0)
        return false;
    char key[FILE_KEY_MAX];
    file_key(&st, key, sizeof key);
    bool ok = true;
    if (cache && cache->etag && !strcmp(cache->etag, key))
        out->status = SC_FETCH_NOT_MODIFIED;
    else if ((ok = read_body(fd, path, &st, limit_bytes(lim), out, err)))
        update_file_cache(cache, key);
    close(fd);
    if (ok)
        out->last_modified = http_date(st.st_mtim.tv_sec);
    return ok;
}

/* ---- public API ---------------------------------------------------------------- */

bool sc_fetch_global_init(ibp_err_t *err)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
        return ibp_err_set(err, "libcurl initialisation failed: %s", curl_easy_strerror(rc));
    return true;
}

void sc_fetch_global_cleanup(void)
{
    curl_global_cleanup();
}

bool sc_fetch(const char *url, const char *base_dir, const sc_fetch_limits_t *lim,
              sc_fetch_cache_t *cache, const char *user, const char *pass,
              sc_fetch_result_t *out, ibp_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (!url || !url[0])
        return ibp_err_set(err, "empty URL");
    if (is_http_url(url))
        return fetch_http(url, lim, cache, user, pass, out, err);
    char path[PATH_MAX];
    if (!ibp_local_path(url, base_dir, path, sizeof path, err))
        return false;
    if (fetch_file(path, lim, cache, out, err))
        return true;
    sc_fetch_result_free(out);
    return false;
}

bool sc_fetch_last_modified(const char *url, const sc_fetch_limits_t *lim, const char *user,
                            const char *pass, char **last_modified, ibp_err_t *err)
{
    *last_modified = NULL;
    if (!require_http(url, err))
        return false;
    xfer_t x;
    xfer_init(&x, lim, true, -1);
    bool ok = http_do(&x, url, lim, NULL, user, pass, err);
    if (ok)
        *last_modified = steal(&x.last_modified);
    xfer_free(&x);
    return ok;
}

bool sc_fetch_to_fd(const char *url, const sc_fetch_limits_t *lim, const char *user,
                    const char *pass, int fd, char **last_modified, ibp_err_t *err)
{
    if (last_modified)
        *last_modified = NULL;
    if (!require_http(url, err))
        return false;
    if (fd < 0)
        return ibp_err_set(err, "sc_fetch_to_fd: no file descriptor");
    xfer_t x;
    xfer_init(&x, lim, false, fd);
    bool ok = http_do(&x, url, lim, NULL, user, pass, err);
    if (ok && last_modified)
        *last_modified = steal(&x.last_modified);
    xfer_free(&x);
    return ok;
}

bool sc_fetch_to_file(const char *url, const sc_fetch_limits_t *lim, const char *user,
                      const char *pass, const char *path, char **last_modified, ibp_err_t *err)
{
    if (last_modified)
        *last_modified = NULL;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return ibp_err_set(err, "%s: %s", path, strerror(errno));
    bool ok = sc_fetch_to_fd(url, lim, user, pass, fd, last_modified, err);
    if (ok && fsync(fd) != 0)
        ok = ibp_err_set(err, "%s: fsync: %s", path, strerror(errno));
    if (close(fd) != 0 && ok)
        ok = ibp_err_set(err, "%s: close: %s", path, strerror(errno));
    if (!ok) {
        unlink(path);
        if (last_modified)
            free(steal(last_modified));
    }
    return ok;
}

void sc_fetch_result_free(sc_fetch_result_t *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->results_source);
    free(r->last_modified);
    memset(r, 0, sizeof *r);
}

void sc_fetch_cache_free(sc_fetch_cache_t *c)
{
    if (!c)
        return;
    free(c->etag);
    free(c->last_modified);
    c->etag = NULL;
    c->last_modified = NULL;
}
