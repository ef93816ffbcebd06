/* Assembles a routing table in memory, section by section, and publishes it
 * atomically (temporary file in the same directory, fsync, rename). */
#ifndef IBP_TABLE_WRITER_H
#define IBP_TABLE_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ibp_err.h"
#include "ibp_table_format.h"

typedef struct ibp_tb_section {
    uint8_t *data;
    size_t n, cap;         /* elements */
    size_t elem;           /* bytes per element */
    bool borrowed;         /* data is the caller's: read-only here, not freed */
} ibp_tb_section_t;

typedef struct ibp_tb {
    ibp_tb_section_t sec[IBP_SEC_ALL];
    bool oom;              /* sticky: any failed allocation */
} ibp_tb_t;

void ibp_tb_init(ibp_tb_t *b);
void ibp_tb_free(ibp_tb_t *b);

/* Appends count zeroed elements; returns the index of the first, or
 * IBP_TBL_NONE (and sets oom) when out of memory. */
uint32_t ibp_tb_push(ibp_tb_t *b, enum ibp_tbl_section s, size_t count);
void *ibp_tb_at(ibp_tb_t *b, enum ibp_tbl_section s, uint32_t index);
/* Room for count more elements of s without moving it again: a section
 * whose final size is known grows once instead of doubling into fresh
 * memory. Sets oom on failure. */
void ibp_tb_reserve(ibp_tb_t *b, enum ibp_tbl_section s, size_t count);
/* Section s (empty so far) is count elements at data, which the caller
 * keeps alive and unchanged until ibp_tb_finish: a large section that
 * exists already (the geo trie) is copied once, into the table, not twice.
 * Pushing to it afterwards sets oom. */
void ibp_tb_borrow(ibp_tb_t *b, enum ibp_tbl_section s, const void *data, size_t count);

/* Interns nothing: appends s (len bytes) and a NUL; returns its offset. */
uint32_t ibp_tb_str(ibp_tb_t *b, const char *s, size_t len);
__attribute__((format(printf, 2, 3)))
uint32_t ibp_tb_strf(ibp_tb_t *b, const char *fmt, ...);

/* Serialises: header fields not set here (magic, sizes, sections, checksum)
 * are filled in. The sections are freed as they are copied (b is left
 * empty; borrowed ones are the caller's). The caller frees *out. */
IBP_MUST_CHECK
bool ibp_tb_finish(ibp_tb_t *b, const ibp_tbl_header_t *fields, uint8_t **out,
                   size_t *out_len, ibp_err_t *err);
/* The same, into reuse (reuse_cap bytes, taken over: it becomes *out or is
 * freed) when the table fits: a builder that republishes tens of megabytes
 * saves the page faults of fresh memory. *out_cap: bytes at *out. */
IBP_MUST_CHECK
bool ibp_tb_finish_into(ibp_tb_t *b, const ibp_tbl_header_t *fields, uint8_t *reuse,
                        size_t reuse_cap, uint8_t **out, size_t *out_len, size_t *out_cap,
                        ibp_err_t *err);

IBP_MUST_CHECK
bool ibp_table_write_file(const char *path, const uint8_t *buf, size_t len, ibp_err_t *err);

/* Removes the temporaries "<path>.tmp.<pid>" of writers that no longer run
 * (killed during a publish); *removed counts them. */
IBP_MUST_CHECK
bool ibp_table_remove_stale_temps(const char *path, size_t *removed, ibp_err_t *err);

#endif
