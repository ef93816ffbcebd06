#include "ibp_file.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

int ibp_file_open_regular(const char *path, struct stat *st, ibp_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ibp_err_set(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        ibp_err_set(err, "%s: not a regular file", path);
        return -1;
    }
    return fd;
}

bool ibp_file_read(const char *path, size_t max, char **buf, size_t *len, ibp_err_t *err)
{
    *buf = NULL;
    *len = 0;
    struct stat st;
    int fd = ibp_file_open_regular(path, &st, err);
    if (fd < 0)
        return false;
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return ibp_err_set(err, "%s: %lld bytes is over the limit of %zu", path,
                           (long long)st.st_size, max);
    }
    char *data = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (data && got < (size_t)st.st_size) {
        ssize_t r = read(fd, data + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    int saved = errno;
    close(fd);
    if (!data || got != (size_t)st.st_size) {
        free(data);
        return ibp_err_set(err, "%s: read failed: %s", path, data ? strerror(saved) : "out of memory");
    }
    data[got] = '\0';
    *buf = data;
    *len = got;
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* %XX escapes of a file:// URL's path; %00 is refused. */
static bool percent_decode(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s; s++) {
        int c = (unsigned char)*s;
        if (c == '%') {
            int hi = hex_digit(s[1]), lo = hi < 0 ? -1 : hex_digit(s[2]);
            if (lo < 0 || (hi == 0 && lo == 0))
                return false;
            c = hi * 16 + lo;
            s += 2;
        }
        if (n + 1 >= cap)
            return false;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return true;
}

/* Length of url's "scheme" in "scheme://", 0 if it has none (RFC 3986). */
static size_t scheme_len(const char *url)
{
    const char *sep = strstr(url, "://");
    if (!sep || sep == url || !isalpha((unsigned char)url[0]))
        return 0;
    for (const char *p = url; p < sep; p++)
        if (!isalnum((unsigned char)*p) && !strchr("+.-", *p))
            return 0;
    return (size_t)(sep - url);
}

bool ibp_local_path(const char *url, const char *base_dir, char *out, size_t cap,
                    ibp_err_t *err)
{
    if (!url || !url[0])
        return ibp_err_set(err, "empty URL");
    size_t scheme = scheme_len(url);
    if (scheme == 4 && !strncasecmp(url, "file", 4)) {
        const char *p = url + 7;
        if (!strncasecmp(p, "localhost/", 10))
            p += 9;
        if (p[0] != '/')
            return ibp_err_set(err, "%s: a file:// URL needs an absolute path", url);
        if (!percent_decode(p, out, cap))
            return ibp_err_set(err, "%s: bad %%-escape or path too long", url);
        return true;
    }
    /* Only the scheme is shown: the rest of a remote URL may hold credentials. */
    if (scheme)
        return ibp_err_set(err, "%.*s://...: %s", (int)scheme, url,
                           (scheme == 4 && !strncasecmp(url, "http", 4)) ||
                                   (scheme == 5 && !strncasecmp(url, "https", 5))
                               ? "not a local file (only paths and file:// URLs here)"
                               : "unsupported URL scheme (http, https, file only)");
    int n = url[0] == '/' || !base_dir || !base_dir[0] ? snprintf(out, cap, "%s", url)
                                                       : snprintf(out, cap, "%s/%s", base_dir, url);
    if (n < 0 || (size_t)n >= cap)
        return ibp_err_set(err, "%s: path too long", url);
    return true;
}

void ibp_digest(const void *buf, size_t len, uint64_t *hi, uint64_t *lo)
{
    XXH128_hash_t h = XXH3_128bits(buf, len);
    *hi = h.high64;
    *lo = h.low64;
}

bool ibp_digest_file(const char *path, uint64_t *hi, uint64_t *lo, uint64_t *size,
                     ibp_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ibp_err_set(err, "%s: %s", path, strerror(errno));
    XXH3_state_t *st = XXH3_createState();
    static const size_t chunk = 1 << 20;
    char *buf = malloc(chunk);
    if (!st || !buf) {
        XXH3_freeState(st);
        free(buf);
        close(fd);
        return ibp_err_set(err, "out of memory");
    }
    XXH3_128bits_reset(st);
    *size = 0;
    ssize_t r;
    while ((r = read(fd, buf, chunk)) > 0 || (r < 0 && errno == EINTR)) {
        if (r > 0) {
            XXH3_128bits_update(st, buf, (size_t)r);
            *size += (uint64_t)r;
        }
    }
    int saved = errno;
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    free(buf);
    close(fd);
    if (r < 0)
        return ibp_err_set(err, "%s: read failed: %s", path, strerror(saved));
    *hi = h.high64;
    *lo = h.low64;
    return true;
}

void ibp_format_utc(uint64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* At most this much per write(2): on ext4 with large folios (Linux 6.18
 * here), 80 MB written in pieces of 2 MiB or more into new page cache took
 * 0.5-1 s, in 1 MiB pieces 20 ms (BENCHMARKS.md, issue 12). */
#define WRITE_PIECE (1u << 20)

bool ibp_write_all(int fd, const void *buf, size_t n, int64_t off)
{
    const char *p = buf;
    while (n) {
        size_t piece = n < WRITE_PIECE ? n : WRITE_PIECE;
        ssize_t w = off < 0 ? write(fd, p, piece) : pwrite(fd, p, piece, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return false;
        if (w == 0) {
            errno = EIO;   /* a write that makes no progress would loop forever */
            return false;
        }
        p += w;
        n -= (size_t)w;
        if (off >= 0)
            off += w;
    }
    return true;
}

bool ibp_fsync_dir(const char *dir, ibp_err_t *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ibp_err_set(err, "%s: %s", dir, strerror(errno));
    bool ok = fsync(fd) == 0 || ibp_err_set(err, "%s: fsync: %s", dir, strerror(errno));
    close(fd);
    return ok;
}

bool ibp_fsync_dir_of(const char *path, ibp_err_t *err)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        return ibp_fsync_dir(".", err);
    if ((size_t)(slash - path) >= sizeof dir)
        return ibp_err_set(err, "%s: path too long", path);
    snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    return ibp_fsync_dir(dir, err);
}

bool ibp_same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}
