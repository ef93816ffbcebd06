/* MaxMind database refresh (IBP-NODE §3.4). Everything new is first written
 * to a temp file inside dir and renamed into place, so a failed or
 * interrupted refresh never leaves a half-written database or marker behind,
 * and readers that open the database by name see the old or the new one. */
#include "maxmind.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <maxminddb.h>

#include "ibp_file.h"

/* GeoIP2-City is about 130 MB uncompressed; 512 MB leaves room to grow while
 * still refusing a decompression bomb. */
#define MEMBER_MAX ((int64_t)512 << 20)
#define MARKER_MAX 256

const sc_maxmind_db_t SC_MAXMIND_CITY = {"GeoLite2-City", "CityLite.mmdb"};
const sc_maxmind_db_t SC_MAXMIND_ASN = {"GeoLite2-ASN", "AsnLite.mmdb"};
const sc_maxmind_db_t SC_MAXMIND_COUNTRY = {"GeoLite2-Country", "CountryLite.mmdb"};

/* Temp files are "<dir>/.<file>.<tag>-XXXXXX", so a crash's leftovers can be
 * recognised (and removed) by name on the next refresh. */
static const char *const temp_tags[] = {"download", "new", "marker"};

typedef struct mm_paths {
    char dir[PATH_MAX];     /* without trailing slashes */
    char url[1024];
    char db[PATH_MAX];      /* dir/<file> */
    char marker[PATH_MAX];  /* dir/.<file without extension> */
} mm_paths_t;

/* ---- paths ---------------------------------------------------------------------- */

static bool fits(int n, size_t cap)
{
    return n >= 0 && (size_t)n < cap;
}

static int trimmed_len(const char *s)
{
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/')
        n--;
    return (int)n;
}

static bool make_paths(const sc_maxmind_cfg_t *cfg, const sc_maxmind_db_t *db, mm_paths_t *p,
                       ibp_err_t *err)
{
    if (!cfg->dir || !cfg->dir[0])
        return ibp_err_set(err, "Maxmind.MaxmindDBPath is empty");
    const char *base = cfg->download_base && cfg->download_base[0] ? cfg->download_base
                                                                   : SC_MAXMIND_DOWNLOAD_BASE;
    const char *dot = strrchr(db->file, '.');
    int stem = dot && dot != db->file ? (int)(dot - db->file) : (int)strlen(db->file);
    bool ok = fits(snprintf(p->dir, sizeof p->dir, "%.*s", trimmed_len(cfg->dir), cfg->dir),
                   sizeof p->dir) &&
              fits(snprintf(p->url, sizeof p->url, "%.*s/%s/download?suffix=tar.gz",
                            trimmed_len(base), base, db->edition),
                   sizeof p->url) &&
              fits(snprintf(p->db, sizeof p->db, "%s/%s", p->dir, db->file), sizeof p->db) &&
              fits(snprintf(p->marker, sizeof p->marker, "%s/.%.*s", p->dir, stem, db->file),
                   sizeof p->marker);
    return ok || ibp_err_set(err, "%s: path or download URL too long", cfg->dir);
}

/* mkdir -p with 0755. */
static bool ensure_dir(const char *dir, ibp_err_t *err)
{
    char tmp[PATH_MAX];
    if (!fits(snprintf(tmp, sizeof tmp, "%s", dir), sizeof tmp))
        return ibp_err_set(err, "%s: path too long", dir);
    for (char *s = tmp + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return ibp_err_set(err, "%s: cannot create: %s", tmp, strerror(errno));
        if (c == '\0')
            break;
        *s = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ibp_err_set(err, "%s: not a directory", dir);
    return true;
}

static bool is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- temp files, sync ------------------------------------------------------ */

static int make_temp(const mm_paths_t *p, const sc_maxmind_db_t *db, const char *tag,
                     char *path, size_t cap, ibp_err_t *err)
{
    if (!fits(snprintf(path, cap, "%s/.%s.%s-XXXXXX", p->dir, db->file, tag), cap)) {
        ibp_err_set(err, "%s: path too long", p->dir);
        return -1;
    }
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        ibp_err_set(err, "%s: cannot create a temp file: %s", p->dir, strerror(errno));
    return fd;
}

static bool is_stale_temp(const char *name, const sc_maxmind_db_t *db)
{
    size_t flen = strlen(db->file);
    if (name[0] != '.' || strncmp(name + 1, db->file, flen) != 0 || name[1 + flen] != '.')
        return false;
    const char *tag = name + 2 + flen;
    for (size_t i = 0; i < sizeof temp_tags / sizeof temp_tags[0]; i++) {
        size_t tl = strlen(temp_tags[i]);
        if (!strncmp(tag, temp_tags[i], tl) && tag[tl] == '-' && strlen(tag + tl + 1) == 6)
            return true;
    }
    return false;
}

/* Best effort: a process killed mid-download must not leave a 100 MB temp
 * file behind for good. */
static void remove_stale_temps(const mm_paths_t *p, const sc_maxmind_db_t *db)
{
    DIR *d = opendir(p->dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (is_stale_temp(e->d_name, db))
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
}

/* Readable like any installed file (mkstemp creates 0600), and on disk
 * before the rename that publishes it. */
static bool finish_temp(int fd, const char *path, ibp_err_t *err)
{
    if (fchmod(fd, 0644) != 0)
        return ibp_err_set(err, "%s: chmod: %s", path, strerror(errno));
    if (fsync(fd) != 0)
        return ibp_err_set(err, "%s: fsync: %s", path, strerror(errno));
    return true;
}

/* ---- marker ------------------------------------------------------------------ */

/* The marker's Last-Modified value; "" when there is none. */
static void read_marker(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, out, cap - 1);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    for (size_t len = strlen(out); len && (out[len - 1] == '\n' || out[len - 1] == ' ');)
        out[--len] = '\0';
}

static bool write_marker(const mm_paths_t *p, const sc_maxmind_db_t *db, const char *value,
                         ibp_err_t *err)
{
    char tmp[PATH_MAX];
    int fd = make_temp(p, db, "marker", tmp, sizeof tmp, err);
    if (fd < 0)
        return false;
    bool ok = ibp_write_all(fd, value, strlen(value), 0) ||
              ibp_err_set(err, "%s: write: %s", tmp, strerror(errno));
    ok = ok && finish_temp(fd, tmp, err);
    close(fd);
    if (ok && rename(tmp, p->marker) != 0)
        ok = ibp_err_set(err, "%s: rename: %s", p->marker, strerror(errno));
    if (!ok)
        unlink(tmp);
    return ok && ibp_fsync_dir(p->dir, err);
}

/* Current: the database exists and the server's Last-Modified (absent
 * counts as "") equals the marker. */
static bool is_current(const mm_paths_t *p, const char *remote)
{
    char marker[MARKER_MAX];
    read_marker(p->marker, marker, sizeof marker);
    return is_regular(p->db) && strcmp(marker, remote ? remote : "") == 0;
}

/* ---- archive ------------------------------------------------------------------- */

static const char *archive_msg(struct archive *a)
{
    const char *m = archive_error_string(a);
    return m ? m : "unknown libarchive error";
}

/* Any *.mmdb at any depth; "._x.mmdb" are macOS resource forks that some tar
 * tools add, not databases. */
static bool is_mmdb_member(struct archive_entry *e)
{
    const char *name = archive_entry_pathname(e);
    if (!name || archive_entry_filetype(e) != AE_IFREG)
        return false;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    size_t n = strlen(base);
    return n > 5 && base[0] != '.' && strcasecmp(base + n - 5, ".mmdb") == 0;
}

static bool copy_member(struct archive *a, struct archive_entry *e, int out, ibp_err_t *err)
{
    const char *name = archive_entry_pathname(e);
    if (archive_entry_size_is_set(e) && archive_entry_size(e) > MEMBER_MAX)
        return ibp_err_set(err, "%s: %jd bytes is over the limit of %jd", name,
                           (intmax_t)archive_entry_size(e), (intmax_t)MEMBER_MAX);
    const void *buf;
    size_t n;
    la_int64_t off;
    int r;
    while ((r = archive_read_data_block(a, &buf, &n, &off)) == ARCHIVE_OK) {
        if (off < 0 || off > MEMBER_MAX || (int64_t)n > MEMBER_MAX - off)
            return ibp_err_set(err, "%s: over the limit of %jd bytes", name, (intmax_t)MEMBER_MAX);
        if (!ibp_write_all(out, buf, n, off))
            return ibp_err_set(err, "writing %s: %s", name, strerror(errno));
    }
    if (r != ARCHIVE_EOF)
        return ibp_err_set(err, "corrupt archive: %s", archive_msg(a));
    if (archive_entry_size_is_set(e) && ftruncate(out, (off_t)archive_entry_size(e)) != 0)
        return ibp_err_set(err, "writing %s: %s", name, strerror(errno));
    return true;
}

static bool copy_first_mmdb(struct archive *a, int out, ibp_err_t *err)
{
    struct archive_entry *e;
    int r;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN)
        if (is_mmdb_member(e))
            return copy_member(a, e, out, err);
    if (r == ARCHIVE_EOF)
        return ibp_err_set(err, "the archive holds no .mmdb file");
    return ibp_err_set(err, "corrupt archive: %s", archive_msg(a));
}

static bool extract_mmdb(const char *tgz, int out, ibp_err_t *err)
{
    struct archive *a = archive_read_new();
    if (!a)
        return ibp_err_set(err, "out of memory");
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    bool ok = archive_read_open_filename(a, tgz, 1 << 16) == ARCHIVE_OK
                  ? copy_first_mmdb(a, out, err)
                  : ibp_err_set(err, "not a tar.gz archive: %s", archive_msg(a));
    archive_read_free(a);
    return ok;
}

/* ---- download and install --------------------------------------------------- */

/* The word the edition's database_type carries ("City" for GeoLite2-City
 * and GeoIP2-City alike): a Country database downloaded for City would
 * silently lose every coordinate. */
static bool verify_mmdb(const char *path, const char *edition, ibp_err_t *err)
{
    const char *dash = strrchr(edition, '-');
    const char *kind = dash ? dash + 1 : edition;
    MMDB_s m;
    int s = MMDB_open(path, MMDB_MODE_MMAP, &m);
    if (s != MMDB_SUCCESS)
        return ibp_err_set(err, "the extracted file is not a MaxMind database: %s",
                           MMDB_strerror(s));
    const char *type = m.metadata.database_type ? m.metadata.database_type : "";
    bool ok = strstr(type, kind) != NULL ||
              ibp_err_set(err, "database type \"%s\" is not a %s database", type, kind);
    MMDB_close(&m);
    return ok;
}

static sc_fetch_limits_t limits_of(const sc_maxmind_cfg_t *cfg)
{
    sc_fetch_limits_t lim = cfg->limits;
    if (lim.timeout_ms <= 0)
        lim.timeout_ms = SC_MAXMIND_DEFAULT_TIMEOUT_MS;
    if (!lim.max_bytes)
        lim.max_bytes = SC_MAXMIND_DEFAULT_MAX_BYTES;
    return lim;
}

static bool fetch_archive(const sc_maxmind_cfg_t *cfg, const sc_maxmind_db_t *db,
                          const mm_paths_t *p, char *tgz, size_t cap, char **lm,
                          ibp_err_t *err)
{
    int fd = make_temp(p, db, "download", tgz, cap, err);
    if (fd < 0)
        return false;
    sc_fetch_limits_t lim = limits_of(cfg);
    bool ok = sc_fetch_to_fd(p->url, &lim, cfg->account, cfg->license_key, fd, lm, err);
    close(fd);
    if (!ok)
        unlink(tgz);
    return ok;
}

static bool extract_to_temp(const char *tgz, const mm_paths_t *p, const sc_maxmind_db_t *db,
                            char *tmp, size_t cap, ibp_err_t *err)
{
    int fd = make_temp(p, db, "new", tmp, cap, err);
    if (fd < 0)
        return false;
    bool ok = extract_mmdb(tgz, fd, err) && finish_temp(fd, tmp, err);
    close(fd);
    ok = ok && verify_mmdb(tmp, db->edition, err);
    if (!ok)
        unlink(tmp);
    return ok;
}

static bool install(const char *tmp, const mm_paths_t *p, ibp_err_t *err)
{
    if (rename(tmp, p->db) != 0) {
        int e = errno;
        unlink(tmp);
        return ibp_err_set(err, "%s: rename: %s", p->db, strerror(e));
    }
    return ibp_fsync_dir(p->dir, err);
}

/* The GET's Last-Modified describes what was actually downloaded, so it is
 * preferred over the HEAD's for the marker. */
static bool download(const sc_maxmind_cfg_t *cfg, const sc_maxmind_db_t *db,
                     const mm_paths_t *p, const char *head_lm, bool *changed, ibp_err_t *err)
{
    char tgz[PATH_MAX], tmp[PATH_MAX];
    char *got_lm = NULL;
    if (!fetch_archive(cfg, db, p, tgz, sizeof tgz, &got_lm, err))
        return false;
    bool ok = extract_to_temp(tgz, p, db, tmp, sizeof tmp, err);
    unlink(tgz);
    if (ok && (ok = install(tmp, p, err))) {
        *changed = true;
        const char *lm = got_lm ? got_lm : head_lm;
        ok = write_marker(p, db, lm ? lm : "", err);
    }
    free(got_lm);
    return ok;
}

/* Both are needed: an account without its key could only get 401s. */
static bool has_credentials(const sc_maxmind_cfg_t *cfg)
{
    return cfg->account && cfg->account[0] && cfg->license_key && cfg->license_key[0];
}

bool sc_maxmind_refresh(const sc_maxmind_cfg_t *cfg, const sc_maxmind_db_t *db, bool *changed,
                        ibp_err_t *err)
{
    *changed = false;
    mm_paths_t p;
    if (!make_paths(cfg, db, &p, err) || !ensure_dir(p.dir, err))
        return false;
    if (!has_credentials(cfg))
        return is_regular(p.db) ||
               ibp_err_set(err, "%s: missing, and no MaxMind account is configured to download it",
                           p.db);
    remove_stale_temps(&p, db);
    char *remote = NULL;
    sc_fetch_limits_t lim = limits_of(cfg);
    if (!sc_fetch_last_modified(p.url, &lim, cfg->account, cfg->license_key, &remote, err))
        return ibp_err_prefix(err, "%s", db->edition);
    bool ok = is_current(&p, remote) || download(cfg, db, &p, remote, changed, err) ||
              ibp_err_prefix(err, "%s", db->edition);
    free(remote);
    return ok;
}
