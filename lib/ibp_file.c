#include "ibp_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

bool ibp_file_read(const char *path, size_t max, char **buf, size_t *len, ibp_err_t *err)
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ibp_err_set(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ibp_err_set(err, "%s: not a regular file", path);
    }
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

bool ibp_local_path(const char *url, const char *base_dir, char *out, size_t cap,
                    ibp_err_t *err)
{
    if (!url || !url[0])
        return ibp_err_set(err, "empty URL");
    if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))
        return ibp_err_set(err, "%s: not a local file (only paths and file:// URLs here)", url);
    const char *path = url;
    if (!strncmp(url, "file://", 7)) {
        path = url + 7;
        if (path[0] != '/')
            return ibp_err_set(err, "%s: a file:// URL needs an absolute path", url);
    } else if (strstr(url, "://")) {
        return ibp_err_set(err, "%s: unsupported URL scheme", url);
    }
    int n = path[0] == '/' || !base_dir ? snprintf(out, cap, "%s", path)
                                        : snprintf(out, cap, "%s/%s", base_dir, path);
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
