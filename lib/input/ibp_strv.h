/* A growable vector of heap strings, for the parsers' lists. */
#ifndef IBP_STRV_H
#define IBP_STRV_H

#include <stdbool.h>

#include "ibp_err.h"
#include <stddef.h>

/* Growable vector of heap strings. */
typedef struct ibp_strv {
    char **v;
    size_t n, cap;
} ibp_strv_t;

IBP_MUST_CHECK
bool ibp_strv_push(ibp_strv_t *sv, const char *s);       /* copies s */
IBP_MUST_CHECK
bool ibp_strv_push_owned(ibp_strv_t *sv, char *s);       /* takes s (freed on failure) */
/* Drops repeated strings, keeping each first occurrence in place; O(n log n). */
IBP_MUST_CHECK
bool ibp_strv_dedup(ibp_strv_t *sv);
void ibp_strv_free(ibp_strv_t *sv);
/* Frees an array of n heap strings and the array. */
void ibp_strarr_free(char **v, size_t n);

#endif
