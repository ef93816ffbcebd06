#include "ibp_strv.h"

#include <stdlib.h>
#include <string.h>

bool ibp_strv_push_owned(ibp_strv_t *sv, char *s)
{
    if (!s)
        return false;
    if (sv->n == sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 8;
        char **v = realloc(sv->v, cap * sizeof *v);
        if (!v) {
            free(s);
            return false;
        }
        sv->v = v;
        sv->cap = cap;
    }
    sv->v[sv->n++] = s;
    return true;
}

bool ibp_strv_push(ibp_strv_t *sv, const char *s)
{
    return ibp_strv_push_owned(sv, strdup(s));
}

typedef struct strv_ix {
    const char *s;
    size_t i;
} strv_ix_t;

static int strv_ix_cmp(const void *a, const void *b)
{
    const strv_ix_t *x = a, *y = b;
    int r = strcmp(x->s, y->s);
    if (r)
        return r;
    return (x->i > y->i) - (x->i < y->i);
}

bool ibp_strv_dedup(ibp_strv_t *sv)
{
    if (sv->n < 2)
        return true;
    strv_ix_t *ix = malloc(sv->n * sizeof *ix);
    if (!ix)
        return false;
    for (size_t i = 0; i < sv->n; i++)
        ix[i] = (strv_ix_t){sv->v[i], i};
    qsort(ix, sv->n, sizeof *ix, strv_ix_cmp);
    /* Within a run of equal strings the first entry has the lowest index:
     * every later one is a repeat. Free it and mark its slot empty; compare
     * against the run's first string, the only one that stays allocated. */
    const char *run = ix[0].s;
    for (size_t k = 1; k < sv->n; k++) {
        if (strcmp(ix[k].s, run)) {
            run = ix[k].s;
            continue;
        }
        free(sv->v[ix[k].i]);
        sv->v[ix[k].i] = NULL;
    }
    free(ix);
    size_t o = 0;
    for (size_t i = 0; i < sv->n; i++)
        if (sv->v[i])
            sv->v[o++] = sv->v[i];
    sv->n = o;
    return true;
}

void ibp_strarr_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void ibp_strv_free(ibp_strv_t *sv)
{
    ibp_strarr_free(sv->v, sv->n);
    *sv = (ibp_strv_t){0};
}
