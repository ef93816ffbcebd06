/* On-disk layout of a usage counter file (see docs/USAGE.md).
 *
 * One file per coprocess and routing table: the coprocess creates it, maps
 * it shared and counts hits with plain memory writes, so a SIGKILL loses
 * nothing that was counted. Each key names its dimensions by offsets into
 * the file's own string arena, so the sidecar decodes a file without the
 * table it was counted with. The harvest state (done, pend, the sequence
 * numbers) belongs to the sidecar; the coprocess never writes it.
 * Little-endian, fixed sizes, natural alignment. */
#ifndef IBP_USAGE_FORMAT_H
#define IBP_USAGE_FORMAT_H

#include <assert.h>
#include <stdint.h>

#include "ibp_limits.h"

#define IBP_UC_MAGIC "IBPDNSUC"
#define IBP_UC_VERSION 1u
#define IBP_UC_ENDIAN 0x01020304u
#define IBP_UC_TAG 0x55534531u      /* "USE1": a slot whose key is complete */
#define IBP_UC_MAX_SLOTS (1u << 20)
#define IBP_UC_MAX_ARENA (64u << 20)
#define IBP_UC_MAX_STRING IBP_USAGE_TEXT_MAX

typedef struct ibp_uc_header {
    char magic[8];
    uint32_t version;
    uint32_t endian;
    uint32_t header_size;
    uint32_t slot_size;
    uint32_t n_slots;      /* a power of two */
    uint32_t arena_size;   /* bytes, a multiple of 4 */
    uint64_t file_size;
    uint64_t table_generation;   /* diagnostics: the table the hits were answered from */
    uint64_t created;      /* UTC seconds */
    uint32_t writer_pid;
    uint32_t closed;       /* writer: set when it moved to another file (release) */
    uint32_t slots_used;   /* writer: slots claimed (diagnostics; slots are validated one by one) */
    uint32_t arena_used;   /* writer: bytes of the arena in use (release, after the bytes) */
    /* The sidecar's harvest state. done_seq counts the harvests stored;
     * pend_seq = done_seq + 1 while a harvest is being stored. */
    uint64_t done_seq;
    uint64_t pend_seq;
    uint64_t reserved[5];
} ibp_uc_header_t;   /* the slots follow it, then the arena */

/* Strings in the arena: a uint32_t length, the bytes, zero padding to 4. A
 * reference is the byte offset of the length word plus one (0 = none). */
typedef struct ibp_uc_slot {
    uint32_t tag;          /* 0: free; IBP_UC_TAG once the key below is complete (release) */
    uint32_t day;          /* UTC days since 1970-01-01 at the moment of the answer */
    uint32_t domain;       /* string ref: the host name */
    uint32_t member;       /* string ref: Details.Name or "override:<CC>" */
    uint32_t client;       /* string ref: "<CC>\t<country>\t<AS<n>|>\t<AS organisation>" */
    uint32_t family;       /* 0: A, 1: AAAA (the record's family) */
    uint64_t hits;         /* writer: only ever grows */
    uint64_t done;         /* sidecar: hits stored */
    uint64_t pend;         /* sidecar: hits of the harvest being stored */
} ibp_uc_slot_t;

static_assert(sizeof(ibp_uc_header_t) == 128, "header layout");
static_assert(sizeof(ibp_uc_slot_t) == 48, "slot layout");

#endif
