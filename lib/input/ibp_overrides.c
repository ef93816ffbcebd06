#include "ibp_overrides.h"

#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static int entry_cmp(const char *domain, const char *cc, const ibp_override_t *e)
{
    int r = strcmp(domain, e->domain);
    return r ? r : strcmp(cc, e->cc);
}

/* Index of the entry, or of where it would go (*found says which). */
static size_t find(const ibp_overrides_t *o, const char *domain, const char *cc, bool *found)
{
    size_t lo = 0, hi = o->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = entry_cmp(domain, cc, &o->v[mid]);
        if (r == 0) {
            *found = true;
            return mid;
        }
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    *found = false;
    return lo;
}

static bool entry_copy(const ibp_override_t *from, ibp_override_t *to)
{
    *to = *from;
    to->domain = strdup(from->domain);
    to->member_name = strdup(from->member_name ? from->member_name : "");
    if (to->domain && to->member_name)
        return true;
    free(to->domain);
    free(to->member_name);
    return false;
}

static void entry_free(ibp_override_t *e)
{
    free(e->domain);
    free(e->member_name);
}

bool ibp_overrides_copy(const ibp_overrides_t *from, ibp_overrides_t *to, ibp_err_t *err)
{
    *to = (ibp_overrides_t){0};
    if (!from || !from->n)
        return true;
    to->v = calloc(from->n, sizeof *to->v);
    if (!to->v)
        return ibp_err_set(err, "out of memory");
    for (; to->n < from->n; to->n++) {
        if (!entry_copy(&from->v[to->n], &to->v[to->n])) {
            ibp_overrides_free(to);
            return ibp_err_set(err, "out of memory");
        }
    }
    return true;
}

bool ibp_overrides_set(ibp_overrides_t *o, const ibp_override_t *entry, ibp_err_t *err)
{
    bool found;
    size_t at = find(o, entry->domain, entry->cc, &found);
    ibp_override_t copy;
    if (!entry_copy(entry, &copy))
        return ibp_err_set(err, "out of memory");
    if (found) {
        entry_free(&o->v[at]);
        o->v[at] = copy;
        return true;
    }
    ibp_override_t *v = realloc(o->v, (o->n + 1) * sizeof *v);
    if (!v) {
        entry_free(&copy);
        return ibp_err_set(err, "out of memory");
    }
    o->v = v;
    memmove(&v[at + 1], &v[at], (o->n - at) * sizeof *v);
    v[at] = copy;
    o->n++;
    return true;
}

bool ibp_overrides_remove(ibp_overrides_t *o, const char *domain, const char cc[3])
{
    bool found;
    size_t at = find(o, domain, cc, &found);
    if (!found)
        return false;
    entry_free(&o->v[at]);
    memmove(&o->v[at], &o->v[at + 1], (o->n - at - 1) * sizeof *o->v);
    o->n--;
    return true;
}

size_t ibp_overrides_clear(ibp_overrides_t *o, const char *domain)
{
    if (!o->n)
        return 0;   /* o->v may be NULL: no memmove on it */
    bool found;
    size_t first = find(o, domain, "", &found);   /* "" sorts before every country */
    size_t end = first;
    while (end < o->n && !strcmp(o->v[end].domain, domain))
        entry_free(&o->v[end++]);
    memmove(&o->v[first], &o->v[end], (o->n - end) * sizeof *o->v);
    o->n -= end - first;
    return end - first;
}

static bool entry_equal(const ibp_override_t *a, const ibp_override_t *b)
{
    return !strcmp(a->domain, b->domain) && !strcmp(a->cc, b->cc) &&
           !strcmp(a->member_name, b->member_name) && a->has_v4 == b->has_v4 &&
           a->has_v6 == b->has_v6 && (!a->has_v4 || !memcmp(a->v4, b->v4, 4)) &&
           (!a->has_v6 || !memcmp(a->v6, b->v6, 16));
}

bool ibp_overrides_equal(const ibp_overrides_t *a, const ibp_overrides_t *b)
{
    size_t na = a ? a->n : 0, nb = b ? b->n : 0;
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!entry_equal(&a->v[i], &b->v[i]))
            return false;
    return true;
}

void ibp_overrides_digest(const ibp_overrides_t *o, uint64_t *hi, uint64_t *lo)
{
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
    for (size_t i = 0; o && i < o->n; i++) {
        const ibp_override_t *e = &o->v[i];
        XXH3_128bits_update(&st, e->domain, strlen(e->domain) + 1);
        XXH3_128bits_update(&st, e->cc, sizeof e->cc);
        XXH3_128bits_update(&st, e->member_name, strlen(e->member_name) + 1);
        uint8_t addr[22] = {e->has_v4, e->has_v6};
        if (e->has_v4)
            memcpy(addr + 2, e->v4, 4);
        if (e->has_v6)
            memcpy(addr + 6, e->v6, 16);
        XXH3_128bits_update(&st, addr, sizeof addr);
    }
    size_t n = o ? o->n : 0;
    XXH3_128bits_update(&st, &n, sizeof n);
    XXH128_hash_t d = XXH3_128bits_digest(&st);
    *hi = d.high64;
    *lo = d.low64;
}
