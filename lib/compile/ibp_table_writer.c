#include "ibp_table_writer.h"
#include "ibp_file.h"
#include "ibp_table.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const size_t elem_sizes[IBP_SEC_ALL] = {
    [IBP_SEC_STRINGS] = 1,
    [IBP_SEC_ZONES] = sizeof(ibp_tbl_zone_t),
    [IBP_SEC_NAMES] = sizeof(ibp_tbl_name_t),
    [IBP_SEC_NAME_HASH] = sizeof(uint32_t),
    [IBP_SEC_RRS] = sizeof(ibp_tbl_rr_t),
    [IBP_SEC_HOSTS] = sizeof(ibp_tbl_host_t),
    [IBP_SEC_CANDS] = sizeof(ibp_tbl_cand_t),
    [IBP_SEC_MEMBERS] = sizeof(ibp_tbl_member_t),
    [IBP_SEC_TARGETS] = sizeof(ibp_tbl_target_t),
    [IBP_SEC_POLICIES] = sizeof(ibp_tbl_policy_t),
    [IBP_SEC_NODES] = 2 * sizeof(uint32_t),
    [IBP_SEC_ANSWERS] = sizeof(ibp_tbl_answer_t),
    [IBP_SEC_SPREAD] = sizeof(uint32_t),
    [IBP_SEC_INPUTS] = sizeof(ibp_tbl_input_t),
    [IBP_SEC_INDEX] = sizeof(uint32_t),
    [IBP_SEC_GEO] = sizeof(ibp_tbl_geo_t),
    [IBP_SEC_NODE_CLASS] = sizeof(uint32_t),
    [IBP_SEC_MAPS] = sizeof(ibp_tbl_map_t),
    [IBP_SEC_CHOICES] = sizeof(uint32_t),
    [IBP_SEC_UNIFORM] = sizeof(uint64_t),
    [IBP_SEC_CLIENT] = sizeof(ibp_tbl_client_t),
    [IBP_SEC_CLIENT_NODES] = 2 * sizeof(uint32_t),
    [IBP_SEC_CLIENT_TEXT] = 1,
    [IBP_SEC_CLIENT_OFFS] = sizeof(uint32_t),
    [IBP_SEC_CLIENT_INDEX] = sizeof(uint32_t),
    [IBP_SEC_NETS] = sizeof(ibp_tbl_net_t),
};

void ibp_tb_init(ibp_tb_t *b)
{
    memset(b, 0, sizeof *b);
    for (int s = 0; s < IBP_SEC_ALL; s++)
        b->sec[s].elem = elem_sizes[s];
    /* Offset 0 is the empty string, so a zeroed reference is always valid. */
    ibp_tb_str(b, "", 0);
}

static void free_section(ibp_tb_section_t *sec)
{
    if (!sec->borrowed)
        free(sec->data);
    *sec = (ibp_tb_section_t){.elem = sec->elem};
}

void ibp_tb_free(ibp_tb_t *b)
{
    for (int s = 0; s < IBP_SEC_ALL; s++)
        free_section(&b->sec[s]);
    memset(b, 0, sizeof *b);
}

static bool grow_to(ibp_tb_section_t *sec, size_t cap)
{
    uint8_t *data = realloc(sec->data, cap * sec->elem);
    if (!data)
        return false;
    sec->data = data;
    sec->cap = cap;
    return true;
}

void ibp_tb_reserve(ibp_tb_t *b, enum ibp_tbl_section s, size_t count)
{
    ibp_tb_section_t *sec = &b->sec[s];
    if (b->oom || sec->borrowed || sec->n + count >= IBP_TBL_NONE ||
        (sec->n + count > sec->cap && !grow_to(sec, sec->n + count)))
        b->oom = true;
}

void ibp_tb_borrow(ibp_tb_t *b, enum ibp_tbl_section s, const void *data, size_t count)
{
    ibp_tb_section_t *sec = &b->sec[s];
    if (b->oom || sec->n || sec->borrowed || count >= IBP_TBL_NONE) {
        b->oom = true;
        return;
    }
    free(sec->data);
    sec->data = (uint8_t *)(uintptr_t)data;   /* never written through: see push */
    sec->n = sec->cap = count;
    sec->borrowed = true;
}

uint32_t ibp_tb_push(ibp_tb_t *b, enum ibp_tbl_section s, size_t count)
{
    ibp_tb_section_t *sec = &b->sec[s];
    if (count == 0 && !b->oom)
        return (uint32_t)sec->n;   /* nothing to add (and maybe no buffer yet) */
    if (b->oom || sec->borrowed || sec->n + count >= IBP_TBL_NONE)
        goto oom;
    if (sec->n + count > sec->cap) {
        size_t cap = sec->cap ? sec->cap : 64;
        while (cap < sec->n + count)
            cap *= 2;
        if (!grow_to(sec, cap))
            goto oom;
    }
    memset(sec->data + sec->n * sec->elem, 0, count * sec->elem);
    uint32_t first = (uint32_t)sec->n;
    sec->n += count;
    return first;
oom:
    b->oom = true;
    return IBP_TBL_NONE;
}

void *ibp_tb_at(ibp_tb_t *b, enum ibp_tbl_section s, uint32_t index)
{
    return b->sec[s].data + (size_t)index * b->sec[s].elem;
}

uint32_t ibp_tb_str(ibp_tb_t *b, const char *s, size_t len)
{
    uint32_t off = ibp_tb_push(b, IBP_SEC_STRINGS, len + 1);
    if (off != IBP_TBL_NONE)
        memcpy(b->sec[IBP_SEC_STRINGS].data + off, s, len);
    return off;
}

uint32_t ibp_tb_strf(ibp_tb_t *b, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) {
        b->oom = true;   /* every caller formats far less than this */
        return IBP_TBL_NONE;
    }
    return ibp_tb_str(b, buf, (size_t)n);
}

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* The buffer the table goes into: reuse when it fits without wasting more
 * than the table (its bytes between sections are zeroed, as calloc's would
 * be), else fresh. */
static uint8_t *table_buffer(const ibp_tbl_header_t *h, uint8_t *reuse, size_t reuse_cap,
                             size_t *cap)
{
    size_t len = h->file_size;
    if (!reuse || reuse_cap < len || reuse_cap / 2 > len) {
        free(reuse);
        *cap = len;
        return calloc(1, len);
    }
    *cap = reuse_cap;
    size_t end = 0;
    for (int s = 0; s < IBP_SEC_COUNT; s++) {
        memset(reuse + end, 0, h->sections[s].offset - end);
        end = h->sections[s].offset + h->sections[s].size;
    }
    memset(reuse + end, 0, len - end);
    return reuse;
}

bool ibp_tb_finish_into(ibp_tb_t *b, const ibp_tbl_header_t *fields, uint8_t *reuse,
                        size_t reuse_cap, uint8_t **out, size_t *out_len, size_t *out_cap,
                        ibp_err_t *err)
{
    *out = NULL;
    if (b->oom) {
        free(reuse);
        return ibp_err_set(err, "out of memory while building the table");
    }
    ibp_tbl_header_t h = *fields;
    memcpy(h.magic, IBP_TBL_MAGIC, 8);
    h.version = IBP_TBL_VERSION;
    h.endian = IBP_TBL_ENDIAN;
    h.header_size = sizeof h;
    h.n_sections = IBP_SEC_COUNT;
    size_t off = align8(sizeof h);
    for (int s = 0; s < IBP_SEC_COUNT; s++) {
        h.sections[s].offset = off;
        h.sections[s].size = b->sec[s].n * b->sec[s].elem;
        h.sections[s].count = (uint32_t)b->sec[s].n;
        h.sections[s].elem_size = (uint32_t)b->sec[s].elem;
        off = align8(off + h.sections[s].size);
    }
    size_t nets_off = off, nets_size = b->sec[IBP_SEC_NETS].n * sizeof(ibp_tbl_net_t);
    if (nets_size) {
        if (nets_off / 8 > UINT32_MAX) {
            free(reuse);
            return ibp_err_set(err, "table too large for Routing.Nets (%zu bytes)", off);
        }
        h.nets_offset8 = (uint32_t)(nets_off / 8);
        h.n_nets = (uint32_t)b->sec[IBP_SEC_NETS].n;
        off = align8(off + nets_size);
    }
    h.file_size = off;
    uint8_t *buf = table_buffer(&h, reuse, reuse_cap, out_cap);
    if (!buf)
        return ibp_err_set(err, "out of memory serialising the table (%zu bytes)", off);
    /* Each section is freed once copied: at network scale the sections and
     * the file are each tens of megabytes, and need not all be alive. */
    for (int s = 0; s < IBP_SEC_COUNT; s++) {
        if (h.sections[s].size)
            memcpy(buf + h.sections[s].offset, b->sec[s].data, h.sections[s].size);
        free_section(&b->sec[s]);
    }
    if (nets_size)
        memcpy(buf + nets_off, b->sec[IBP_SEC_NETS].data, nets_size);
    free_section(&b->sec[IBP_SEC_NETS]);
    h.checksum = 0;
    memcpy(buf, &h, sizeof h);
    h.checksum = ibp_table_checksum(buf, off);
    memcpy(buf, &h, sizeof h);
    *out = buf;
    *out_len = off;
    return true;
}

bool ibp_tb_finish(ibp_tb_t *b, const ibp_tbl_header_t *fields, uint8_t **out,
                   size_t *out_len, ibp_err_t *err)
{
    size_t cap;
    return ibp_tb_finish_into(b, fields, NULL, 0, out, out_len, &cap, err);
}

/* A writer holds a lock on its temporary while it writes: a pid in the name
 * could be reused by any process after a restart, a lock dies with its
 * holder. */
static bool lock_whole(int fd, short type)
{
    struct flock l = {.l_type = type, .l_whence = SEEK_SET};
    return fcntl(fd, F_OFD_SETLK, &l) == 0;
}

/* Between create and lock a cleanup may have removed the file: writing to
 * it would be lost. */
static bool still_at(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

bool ibp_table_write_file(const char *path, const uint8_t *buf, size_t len, ibp_err_t *err)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return ibp_err_set(err, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return ibp_err_set(err, "%s: cannot create: %s", tmp, strerror(errno));
    if (!lock_whole(fd, F_WRLCK) || !still_at(fd, tmp)) {
        close(fd);
        return ibp_err_set(err, "%s: taken by another writer or a cleanup; try again", tmp);
    }
    bool ok = ibp_write_all(fd, buf, len, -1) && fsync(fd) == 0;
    int saved = errno;
    ok = (close(fd) == 0) && ok;
    if (!ok) {
        unlink(tmp);
        return ibp_err_set(err, "%s: cannot write: %s", tmp, strerror(saved));
    }
    if (rename(tmp, path) != 0) {
        saved = errno;
        unlink(tmp);
        return ibp_err_set(err, "%s: cannot rename into place: %s", path, strerror(saved));
    }
    if (!ibp_fsync_dir_of(path, err))
        return ibp_err_prefix(err, "%s: cannot fsync its directory", path);
    return true;
}

/* "<base>.tmp.<pid>" left by a writer that was killed: it is a whole table
 * of wasted space, and on a small disk it blocks every later publish. The
 * name must be exactly what the writer prints. */
static bool temp_name(const char *entry, const char *base, size_t base_len)
{
    if (strncmp(entry, base, base_len) || strncmp(entry + base_len, ".tmp.", 5))
        return false;
    const char *digits = entry + base_len + 5;
    size_t n = strspn(digits, "0123456789");
    return n > 0 && n <= 10 && !digits[n] && digits[0] != '0';
}

/* Removes dir/name if nobody holds its lock; false only on a real error. */
static bool remove_if_unlocked(int dirfd_, const char *dir, const char *name, size_t *removed,
                               ibp_err_t *err)
{
    int fd = openat(dirfd_, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT || errno == ELOOP ||
               ibp_err_set(err, "%s/%s: cannot open: %s", dir, name, strerror(errno));
    bool ok = true;
    if (lock_whole(fd, F_WRLCK)) {   /* its writer is gone */
        if (unlinkat(dirfd_, name, 0) == 0)
            (*removed)++;
        else if (errno != ENOENT)
            ok = ibp_err_set(err, "%s/%s: cannot remove: %s", dir, name, strerror(errno));
    }
    close(fd);
    return ok;
}

bool ibp_table_remove_stale_temps(const char *path, size_t *removed, ibp_err_t *err)
{
    *removed = 0;
    char dir[4096], base[4096];
    const char *slash = strrchr(path, '/');
    int dn = slash ? snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path)
                   : snprintf(dir, sizeof dir, ".");
    if (dn >= (int)sizeof dir || snprintf(base, sizeof base, "%s", slash ? slash + 1 : path) >=
        (int)sizeof base)
        return ibp_err_set(err, "%s: path too long", path);
    if (!base[0])
        return ibp_err_set(err, "%s: names a directory, not a table file", path);
    if (!dir[0])
        snprintf(dir, sizeof dir, "/");
    DIR *d = opendir(dir);
    if (!d)
        return ibp_err_set(err, "%s: cannot list: %s", dir, strerror(errno));
    size_t base_len = strlen(base);
    bool ok = true;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (temp_name(e->d_name, base, base_len) &&
            !remove_if_unlocked(dirfd(d), dir, e->d_name, removed, err))
            ok = false;
    closedir(d);
    return ok;
}
