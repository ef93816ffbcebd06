/* jansson helpers shared by the JSON parsers (members, services, static
 * records, node config, monitor results).
 *
 * Keys are matched the way Go's encoding/json matches struct fields, because
 * the files we read were written for a Go program: an exact match wins, else
 * the first key (in file order) that matches case-insensitively.
 *
 * Errors read "<src>: <json path>: <problem>", where the path is jq-like
 * (".Amforc.Location.Latitude", "[3].content", "." for the top level). */
#ifndef IBP_JSON_H
#define IBP_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "ibp_err.h"
#include "ibp_dname.h"
#include "ibp_model.h"
#include "ibp_strv.h"

#define IBP_JPATH_MAX 192      /* longer paths are cut, they only feed messages */
#define IBP_JQUOTE_MAX 80      /* quoted user strings in messages are cut to this */

/* Everything an error message needs besides the path. */
typedef struct ibp_jctx {
    const char *src;           /* e.g. "members_professional.json" */
    ibp_err_t *err;
} ibp_jctx_t;

typedef enum ibp_jneed {
    IBP_J_OPTIONAL = 0,        /* missing or null: *out keeps the caller's default */
    IBP_J_REQUIRED = 1,        /* missing or null: error "missing" */
} ibp_jneed_t;

/* Parses buf[0..len) as any JSON value, rejecting duplicate keys.
 * On failure: NULL and "<src>: invalid JSON at line L column C: <reason>". */
IBP_MUST_CHECK
json_t *ibp_json_load(const char *buf, size_t len, const char *src, ibp_err_t *err);

/* obj[key] with Go's matching rule; NULL if obj is not an object or no key matches. */
IBP_MUST_CHECK
json_t *ibp_json_get(const json_t *obj, const char *key);

/* "object", "array", "string", "number", "boolean" or "null". */
/* The key exists with a value other than null. */
IBP_MUST_CHECK
bool ibp_json_present(const json_t *obj, const char *key);

const char *ibp_json_type_name(const json_t *v);

/* Builds "<parent>.<key>" / "<parent>[i]" into out (IBP_JPATH_MAX bytes);
 * keys are sanitised and shortened so a hostile key cannot flood a message. */
void ibp_jpath_key(char *out, const char *parent, const char *key);
void ibp_jpath_index(char *out, const char *parent, size_t i);

/* Writes s as a double-quoted, printable, possibly shortened string. */
void ibp_json_quote(char *out, size_t n, const char *s);

/* Shortest text that reads back as the number v (integer or real). */
void ibp_json_num_fmt(const json_t *v, char *out, size_t n);

/* Sets "<src>: <path>: <fmt...>" and returns false. */
__attribute__((format(printf, 3, 4)))
bool ibp_jerr(const ibp_jctx_t *c, const char *path, const char *fmt, ...);

/* Value checks for an already fetched v at path (v may be NULL = missing). */
IBP_MUST_CHECK
bool ibp_jval_object(const ibp_jctx_t *c, const char *path, const json_t *v);
IBP_MUST_CHECK
bool ibp_jval_array(const ibp_jctx_t *c, const char *path, const json_t *v);
IBP_MUST_CHECK
bool ibp_jval_string(const ibp_jctx_t *c, const char *path, const json_t *v,
                     const char **out);

/* Typed getters for obj[key] (obj is an object at path `parent`). Missing or
 * null: an error if need is IBP_J_REQUIRED, else true with *out untouched. */
IBP_MUST_CHECK
bool ibp_jget_object(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                     const char *key, ibp_jneed_t need, json_t **out);
IBP_MUST_CHECK
bool ibp_jget_array(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                    const char *key, ibp_jneed_t need, json_t **out);
IBP_MUST_CHECK
bool ibp_jget_string(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                     const char *key, ibp_jneed_t need, const char **out);
/* Like ibp_jget_string but stores a heap copy (freeing the previous *out). */
IBP_MUST_CHECK
bool ibp_jget_strdup(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                     const char *key, ibp_jneed_t need, char **out);
/* A string, or a number kept as its decimal text (ports, account ids). */
IBP_MUST_CHECK
bool ibp_jget_strnum(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                     const char *key, ibp_jneed_t need, char **out);
/* A JSON integer (not a real, as Go's int decoding) within [min, max]. */
IBP_MUST_CHECK
bool ibp_jget_int(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                  const char *key, ibp_jneed_t need, long long min, long long max,
                  long long *out);
/* A JSON integer or real. */
IBP_MUST_CHECK
bool ibp_jget_double(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                     const char *key, ibp_jneed_t need, double *out);
IBP_MUST_CHECK
bool ibp_jget_bool(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                   const char *key, ibp_jneed_t need, bool *out);

/* A parser's walk of a loaded JSON tree into its (zeroed) model; on false
 * the model may be half filled (the caller frees it). Loading, freeing on
 * failure and the typed entry points are in ibp_inputs.c. */
typedef bool (*ibp_jwalk_fn)(const ibp_jctx_t *c, const json_t *root, void *model);
IBP_MUST_CHECK
bool ibp_members_walk(const ibp_jctx_t *c, const json_t *root, void *model);
IBP_MUST_CHECK
bool ibp_services_walk(const ibp_jctx_t *c, const json_t *root, void *model);
IBP_MUST_CHECK
bool ibp_statics_walk(const ibp_jctx_t *c, const json_t *root, void *model);
IBP_MUST_CHECK
bool ibp_health_walk(const ibp_jctx_t *c, const json_t *root, void *model);

/* Routing.Nets from its object at path; repeats of a network with another
 * list are warned about in warn. On failure *out is freed. */
IBP_MUST_CHECK
bool ibp_nets_from_json(const ibp_jctx_t *c, const json_t *obj, const char *path,
                        ibp_nets_t *out, ibp_strv_t *warn);

/* A top-level object keyed by entry key (members, services): each entry
 * parsed by parse(key, value, element) into a zeroed array of elem_size
 * elements (*v, *n). On failure *n counts the failed entry too, so freeing
 * n elements frees whatever it filled. */
typedef bool (*ibp_jentry_fn)(const ibp_jctx_t *c, const char *key, const json_t *val,
                              void *elem);
IBP_MUST_CHECK
bool ibp_jkeyed_entries(const ibp_jctx_t *c, const json_t *root, const char *what,
                        size_t elem_size, ibp_jentry_fn parse, void **v, size_t *n);

/* Collects strings from every non-null member of obj (an object at path):
 * add(member value, its path, into) appends; the result is deduplicated
 * and handed over in *v and *n. */
typedef bool (*ibp_jcollect_fn)(const ibp_jctx_t *c, const json_t *val, const char *path,
                                ibp_strv_t *into);
IBP_MUST_CHECK
bool ibp_jcollect_strings(const ibp_jctx_t *c, const json_t *obj, const char *path,
                          ibp_jcollect_fn add, char ***v, size_t *n);

#endif
