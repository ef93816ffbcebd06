#include "ibp_world_map.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ibp_mmdb_walk.h"
#include "ibp_u64map.h"

#define COLS 360
#define ROWS 180
#define CELLS (COLS * ROWS)
#define PX IBP_MAP_PX_PER_DEG
#define MAP_W (COLS * PX)
#define MAP_H (ROWS * PX)
#define LEGEND_COLS 4
#define LEGEND_ROW_PX 22
#define NO_MEMBER UINT32_MAX

/* ---- text ---------------------------------------------------------------- */

typedef struct text {
    char *p;
    size_t len, cap;
    bool oom;
} text_t;

static void put(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text_t *t, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2 && !t->oom; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 1 << 16;
        while (cap <= t->len + (size_t)n)
            cap *= 2;
        char *grown = realloc(t->p, cap);
        if (!grown) {
            t->oom = true;
            return;
        }
        t->p = grown;
        t->cap = cap;
    }
}

/* Member names come from configs: escaped for XML text and attributes. */
static void put_escaped(text_t *t, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': put(t, "&amp;"); break;
        case '<': put(t, "&lt;"); break;
        case '>': put(t, "&gt;"); break;
        case '"': put(t, "&quot;"); break;
        case '\'': put(t, "&apos;"); break;
        default:
            if ((unsigned char)*s < 0x20)
                put(t, "?");   /* XML 1.0 forbids most control characters */
            else
                put(t, "%c", *s);
        }
    }
}

/* ---- colours ------------------------------------------------------------- */

void ibp_world_map_colour(uint32_t member, char rgb[8])
{
    /* Hues a golden angle apart, in three lightness bands: neighbours in
     * the table never look alike, and the colours never repeat within 300. */
    double h = fmod(member * 137.508, 360.0) / 60.0;
    double l = (member / 100) % 3 == 0 ? 0.45 : (member / 100) % 3 == 1 ? 0.62 : 0.32;
    double s = 0.75;
    double c = (1 - fabs(2 * l - 1)) * s, x = c * (1 - fabs(fmod(h, 2) - 1)), m = l - c / 2;
    double r = 0, g = 0, b = 0;
    switch ((int)h) {
    case 0: r = c, g = x; break;
    case 1: r = x, g = c; break;
    case 2: g = c, b = x; break;
    case 3: g = x, b = c; break;
    case 4: r = x, b = c; break;
    default: r = c, b = x; break;
    }
    snprintf(rgb, 8, "#%02x%02x%02x", (unsigned)lround((r + m) * 255),
             (unsigned)lround((g + m) * 255), (unsigned)lround((b + m) * 255));
}

/* ---- counting ------------------------------------------------------------ */

typedef struct counts {
    ibp_u64map_t by_cell_member;   /* key (cell + 1) << 32 | (member + 1) -> networks */
    uint64_t *per_member;          /* located networks routed to each member */
    uint64_t located, unanswered;
    ibp_err_t *err;
    uint32_t last_offset, last_value;   /* the walk's records repeat in runs */
} counts_t;

static uint32_t cell_of(double lat, double lon)
{
    int row = (int)floor(90.0 - lat), col = (int)floor(lon + 180.0);
    row = row < 0 ? 0 : row >= ROWS ? ROWS - 1 : row;
    col = col < 0 ? 0 : col >= COLS ? COLS - 1 : col;
    return (uint32_t)(row * COLS + col);
}

static bool get_number(MMDB_entry_s *e, const char *const *path, bool *found, double *v,
                       ibp_err_t *err)
{
    MMDB_entry_data_s d;
    if (!ibp_mmdb_get_value(e, &d, path, err))
        return false;
    *found = d.has_data && (d.type == MMDB_DATA_TYPE_DOUBLE || d.type == MMDB_DATA_TYPE_FLOAT);
    *v = !*found ? 0 : d.type == MMDB_DATA_TYPE_DOUBLE ? d.double_value : d.float_value;
    return true;
}

/* A network's value: its cell + 1, 0 when the record has no location. */
static bool cell_value(void *ctx, MMDB_entry_s *e, uint32_t *value)
{
    counts_t *c = ctx;
    if (e->offset + 1 == c->last_offset) {
        *value = c->last_value;
        return true;
    }
    static const char *const lat_path[] = {"location", "latitude", NULL};
    static const char *const lon_path[] = {"location", "longitude", NULL};
    bool has_lat, has_lon;
    double lat, lon;
    if (!get_number(e, lat_path, &has_lat, &lat, c->err) ||
        !get_number(e, lon_path, &has_lon, &lon, c->err))
        return false;
    bool located = has_lat && has_lon && lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180;
    *value = located ? cell_of(lat, lon) + 1 : 0;
    c->last_offset = e->offset + 1;
    c->last_value = *value;
    return true;
}

static bool count(counts_t *c, uint32_t cell, uint32_t member)
{
    uint64_t key = (uint64_t)(cell + 1) << 32 | (member + 1);
    if ((c->by_cell_member.n + 1) * 2 > c->by_cell_member.cap &&
        !ibp_u64map_grow(&c->by_cell_member, 1 << 16))
        return ibp_err_set(c->err, "out of memory");
    ibp_u64map_t *m = &c->by_cell_member;
    size_t i = ibp_u64_hash(key) & (m->cap - 1);
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i]) {
        m->keys[i] = key;
        m->n++;
    }
    m->vals[i]++;
    c->per_member[member]++;
    return true;
}

/* Every located network of the list, routed as a client at its first address. */
static bool route_networks(const ibp_table_t *t, const ibp_tbl_host_t *host, unsigned family,
                           const ibp_nlist_t *l, counts_t *c)
{
    ibp_u128_t start = 0;
    for (size_t i = 0; i < l->n; start += l->len[i] ? (ibp_u128_t)1 << (128 - l->len[i]) : 0,
                i++) {
        if (!l->val[i])
            continue;
        ibp_client_t client = {.v4 = (start >> 32) == 0 && l->len[i] >= 96};
        for (int b = 0; b < 16; b++)
            client.addr.b[b] = (uint8_t)(start >> (8 * (15 - b)));
        ibp_route_t r;
        ibp_table_route(t, host, family, &client, &r);
        c->located++;
        uint32_t target = r.n ? r.target[0] : IBP_TBL_NONE;
        uint32_t member = target < t->n[IBP_SEC_TARGETS] ? t->targets[target].member : NO_MEMBER;
        if (member >= t->n[IBP_SEC_MEMBERS]) {
            c->unanswered++;   /* no answer, or a country override's own address */
            continue;
        }
        if (!count(c, l->val[i] - 1, member))
            return false;
    }
    return true;
}

/* best[cell]: the member most of the cell's networks go to (the lower
 * index on a tie), NO_MEMBER for a cell without any. */
static bool pick_cells(const counts_t *c, uint32_t *best)
{
    uint32_t *most = calloc(CELLS, sizeof *most);
    if (!most)
        return ibp_err_set(c->err, "out of memory");
    for (size_t i = 0; i < CELLS; i++)
        best[i] = NO_MEMBER;
    const ibp_u64map_t *m = &c->by_cell_member;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        uint32_t cell = (uint32_t)(m->keys[i] >> 32) - 1, member = (uint32_t)m->keys[i] - 1;
        if (m->vals[i] > most[cell] || (m->vals[i] == most[cell] && member < best[cell])) {
            most[cell] = m->vals[i];
            best[cell] = member;
        }
    }
    free(most);
    return true;
}

/* ---- drawing ------------------------------------------------------------- */

/* One path per member: runs of its cells along each row. */
static void draw_cells(text_t *out, const ibp_table_t *t, const uint32_t *best)
{
    uint32_t n_members = t->n[IBP_SEC_MEMBERS];
    for (uint32_t m = 0; m < n_members; m++) {
        bool any = false;
        for (int row = 0; row < ROWS; row++)
            for (int col = 0; col < COLS; col++) {
                if (best[row * COLS + col] != m || (col && best[row * COLS + col - 1] == m))
                    continue;
                int run = 1;
                while (col + run < COLS && best[row * COLS + col + run] == m)
                    run++;
                if (!any) {
                    char rgb[8];
                    ibp_world_map_colour(m, rgb);
                    put(out, "<path class=\"cells\" data-member=\"");
                    put_escaped(out, ibp_table_member_label(t, m));
                    put(out, "\" fill=\"%s\" d=\"", rgb);
                    any = true;
                }
                put(out, "M%d %dh%dv%dh-%dz", col * PX, row * PX, run * PX, PX, run * PX);
            }
        if (any)
            put(out, "\"/>\n");
    }
}

static void draw_graticule(text_t *out)
{
    put(out, "<g stroke=\"#b8c4ce\" stroke-width=\"1\" fill=\"none\">");
    for (int lon = -150; lon <= 150; lon += 30)
        put(out, "<path d=\"M%d 0v%d\"/>", (lon + 180) * PX, MAP_H);
    for (int lat = -60; lat <= 60; lat += 30)
        put(out, "<path d=\"M0 %dh%d\"/>", (90 - lat) * PX, MAP_W);
    put(out, "</g>\n");
}

static bool offline(const ibp_tbl_cand_t *c, unsigned family)
{
    return c->skip[family] == IBP_SKIP_OFFLINE;
}

static void draw_markers(text_t *out, const ibp_table_t *t, const ibp_tbl_host_t *h,
                         unsigned family)
{
    put(out, "<g font-family=\"sans-serif\" font-size=\"11\">\n");
    for (uint32_t i = 0; i < h->cand_count; i++) {
        const ibp_tbl_cand_t *c = &t->cands[h->cand_first + i];
        if (c->member >= t->n[IBP_SEC_MEMBERS])
            continue;
        const ibp_tbl_member_t *m = &t->members[c->member];
        double x = (m->lon + 180.0) * PX, y = (90.0 - m->lat) * PX;
        char rgb[8];
        ibp_world_map_colour(c->member, rgb);
        bool down = offline(c, family);
        put(out, "<g class=\"member%s\" data-member=\"", down ? " offline" : "");
        put_escaped(out, ibp_table_member_label(t, c->member));
        put(out, "\"><circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"%s\" "
                 "stroke-width=\"2\"/>", x, y, down ? "none" : rgb, down ? "#777777" : "#000000");
        put(out, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">", x + 7, y + 4,
            down ? "#777777" : "#000000");
        put_escaped(out, ibp_table_member_label(t, c->member));
        put(out, "%s</text></g>\n", down ? " (offline)" : "");
    }
    put(out, "</g>\n");
}

static void draw_legend(text_t *out, const ibp_table_t *t, const ibp_tbl_host_t *h,
                        unsigned family, const counts_t *c)
{
    put(out, "<g class=\"legend\" font-family=\"sans-serif\" font-size=\"13\">\n");
    for (uint32_t i = 0; i < h->cand_count; i++) {
        const ibp_tbl_cand_t *cd = &t->cands[h->cand_first + i];
        if (cd->member >= t->n[IBP_SEC_MEMBERS])
            continue;
        int x = 10 + (int)(i % LEGEND_COLS) * (MAP_W / LEGEND_COLS);
        int y = MAP_H + 16 + (int)(i / LEGEND_COLS) * LEGEND_ROW_PX;
        char rgb[8];
        ibp_world_map_colour(cd->member, rgb);
        double share = c->located ? 100.0 * (double)c->per_member[cd->member] / (double)c->located
                                  : 0.0;
        put(out, "<g data-member=\"");
        put_escaped(out, ibp_table_member_label(t, cd->member));
        put(out, "\" data-colour=\"%s\" data-share=\"%.2f\"%s><rect x=\"%d\" y=\"%d\" "
                 "width=\"14\" height=\"14\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">", rgb, share,
            offline(cd, family) ? " data-offline=\"1\"" : "", x, y, rgb, x + 20, y + 12);
        put_escaped(out, ibp_table_member_label(t, cd->member));
        put(out, " %.1f %%%s</text></g>\n", share,
            offline(cd, family) ? " (offline)" : cd->skip[family] ? " (not a candidate)" : "");
    }
    put(out, "</g>\n");
}

static void draw(text_t *out, const ibp_world_map_in_t *in, const ibp_tbl_host_t *h,
                 const counts_t *c, const uint32_t *best)
{
    const ibp_table_t *t = in->table;
    int legend_rows = (int)((h->cand_count + LEGEND_COLS - 1) / LEGEND_COLS);
    int height = MAP_H + 24 + legend_rows * LEGEND_ROW_PX + 20;
    put(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
             "viewBox=\"0 0 %d %d\" shape-rendering=\"crispEdges\">\n<title>", MAP_W, height,
        MAP_W, height);
    put_escaped(out, in->host);
    put(out, " %s: who serves where (table generation %llu)</title>\n", in->family ? "AAAA" : "A",
        (unsigned long long)t->h->generation);
    put(out, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", MAP_W, height);
    put(out, "<rect width=\"%d\" height=\"%d\" fill=\"#eef3f7\"/>\n", MAP_W, MAP_H);
    draw_graticule(out);
    draw_cells(out, t, best);
    draw_markers(out, t, h, in->family);
    draw_legend(out, t, h, in->family, c);
    put(out, "<text x=\"10\" y=\"%d\" font-family=\"sans-serif\" font-size=\"11\" "
             "fill=\"#555555\">%llu located networks, %llu without an answer; a cell is drawn "
             "in the colour of the member most of its networks go to</text>\n</svg>\n",
        height - 6, (unsigned long long)c->located, (unsigned long long)c->unanswered);
}

/* ---- the whole ------------------------------------------------------------ */

static const ibp_tbl_host_t *find_host(const ibp_world_map_in_t *in, ibp_err_t *err)
{
    const ibp_table_t *t = in->table;
    const ibp_tbl_name_t *nm = ibp_table_find(t, in->host, strlen(in->host));
    if (!nm || nm->host >= t->n[IBP_SEC_HOSTS]) {
        ibp_err_set(err, "%s: not a host of this table", in->host);
        return NULL;
    }
    const ibp_tbl_host_t *h = &t->hosts[nm->host];
    if (in->family > 1 || h->policy[in->family] == IBP_TBL_NONE) {
        ibp_err_set(err, "%s: no %s answers in this table", in->host, in->family ? "AAAA" : "A");
        return NULL;
    }
    return h;
}

bool ibp_world_map_svg(const ibp_world_map_in_t *in, char **svg, size_t *len, ibp_err_t *err)
{
    *svg = NULL;
    *len = 0;
    const ibp_tbl_host_t *h = find_host(in, err);
    if (!h)
        return false;
    MMDB_s db;
    if (!ibp_mmdb_open(in->mmdb_path, "City", " (the map places networks by it)", &db, err))
        return false;
    counts_t c = {.err = err};
    c.per_member = calloc(in->table->n[IBP_SEC_MEMBERS] + 1, sizeof *c.per_member);
    uint32_t *best = malloc(CELLS * sizeof *best);
    ibp_nlist_t list;
    ibp_nlist_init(&list);
    ibp_mmdb_walk_t w = {.db = &db, .list = &list, .value = cell_value, .ctx = &c,
                         .nodata = 0, .undef = 0, .err = err};
    bool ok = (c.per_member && best) || ibp_err_set(err, "out of memory");
    ok = ok && (ibp_mmdb_walk(&w) || ibp_err_prefix(err, "%s", in->mmdb_path));
    MMDB_close(&db);
    ok = ok && route_networks(in->table, h, in->family, &list, &c);
    ibp_nlist_free(&list);
    text_t out = {0};
    if (ok && (ok = pick_cells(&c, best))) {
        draw(&out, in, h, &c, best);
        ok = !out.oom || ibp_err_set(err, "out of memory");
    }
    ibp_u64map_free(&c.by_cell_member);
    free(c.per_member);
    free(best);
    if (!ok) {
        free(out.p);
        return false;
    }
    *svg = out.p;
    *len = out.len;
    return true;
}
