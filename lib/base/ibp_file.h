/* Files: reading inputs (paths or file:// URLs), writing whole buffers,
 * durable renames, file identity. Written once, for every program. */
#ifndef IBP_FILE_H
#define IBP_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "ibp_err.h"

/* Opens path for reading (O_CLOEXEC) and fills *st; a directory, device or
 * FIFO is an error. Returns the descriptor, or -1 with err set. */
IBP_MUST_CHECK
int ibp_file_open_regular(const char *path, struct stat *st, ibp_err_t *err);

/* Reads at most max bytes; a larger file is an error, not a truncation.
 * The buffer is NUL-terminated (not counted in *len). Free with free(). */
IBP_MUST_CHECK
bool ibp_file_read(const char *path, size_t max, char **buf, size_t *len, ibp_err_t *err);

/* Turns a config URL into a local path: "file:///x" (any case, also
 * file://localhost/x, %-escapes decoded) and "/x" as they are, relative
 * paths against base_dir. http(s) and other schemes are not local: error. */
IBP_MUST_CHECK
bool ibp_local_path(const char *url, const char *base_dir, char *out, size_t cap,
                    ibp_err_t *err);

/* XXH3-128 of a buffer, or of a file streamed in chunks. */
void ibp_digest(const void *buf, size_t len, uint64_t *hi, uint64_t *lo);
IBP_MUST_CHECK
bool ibp_digest_file(const char *path, uint64_t *hi, uint64_t *lo, uint64_t *size,
                     ibp_err_t *err);

/* "2026-11-21T23:54:00Z" */
void ibp_format_utc(uint64_t t, char out[32]);

/* Writes all n bytes, at offset off (pwrite) or, when off < 0, at the
 * file position (write); EINTR is retried. False with errno set. */
IBP_MUST_CHECK
bool ibp_write_all(int fd, const void *buf, size_t n, int64_t off);

/* fsync of a directory, or of the one holding path: makes renames in it
 * durable. */
IBP_MUST_CHECK
bool ibp_fsync_dir(const char *dir, ibp_err_t *err);
IBP_MUST_CHECK
bool ibp_fsync_dir_of(const char *path, ibp_err_t *err);

/* The same file, unchanged: device, inode, size and modification time. */
IBP_MUST_CHECK
bool ibp_same_file(const struct stat *a, const struct stat *b);

#endif
