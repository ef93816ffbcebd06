#include "ibp_json.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JKEY_MAX 48            /* longest key segment kept in a path */

static void sanitize(char *out, size_t n, const char *s, size_t max);

/* IBP_JSON_MAX_TREE bounds the estimate: real inputs of the default
 * FetchMaxBytes (16 MiB) stay below it (a 16 MiB monitor snapshot of
 * 110,000 results took 125 MiB, estimated 208 MiB), while a body of empty
 * objects would take 75 times its size.
 *
 * What jansson 2.14 takes, measured: an empty object 224 bytes, an array
 * 136, a string 96 (its struct, a minimal text block and an array slot);
 * text is held twice (the tree's copy and the lexer's token buffer). Three
 * bytes of text ("{},") thus become 224 bytes of tree: the byte limit alone
 * let a 15 MB body take 1.5 GB. */
enum { COST_OBJECT = 224, COST_ARRAY = 136, COST_VALUE = 96 };

typedef struct tree_estimate {
    size_t objects, arrays, values, bytes;
} tree_estimate_t;

/* One pass over the text, outside strings: every value or key follows the
 * start, '[', ',' or ':', so counting those bounds the values from above. */
static tree_estimate_t estimate_tree(const char *buf, size_t len)
{
    tree_estimate_t e = {.values = 1, .bytes = len};
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char ch = buf[i];
        if (in_string) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_string = false;
            continue;
        }
        switch (ch) {
        case '"': in_string = true; break;
        case '{': e.objects++; break;
        case '[': e.arrays++; e.values++; break;
        case ',': case ':': e.values++; break;
        default: break;
        }
    }
    return e;
}

static size_t tree_cost(const tree_estimate_t *e)
{
    return e->objects * COST_OBJECT + e->arrays * COST_ARRAY + e->values * COST_VALUE +
           2 * e->bytes;
}

/* jansson's words for two common faults of files saved by hand are
 * "invalid token near '???'" and "end of file expected near end of file":
 * name them instead. */
static void load_error(const char *buf, size_t len, const char *src, const json_error_t *jerr,
                       ibp_err_t *err)
{
    const char *nul = memchr(buf, '\0', len);
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) {
        ibp_err_set(err, "%s: invalid JSON: it starts with a UTF-8 byte order mark (EF BB BF), "
                    "which JSON does not allow: save it without one", src);
    } else if (nul && jerr->position >= 0 && (size_t)(nul - buf) <= (size_t)jerr->position) {
        ibp_err_set(err, "%s: invalid JSON: a NUL byte at offset %zu (line %d)", src,
                    (size_t)(nul - buf), jerr->line);
    } else {
        /* jansson quotes the input near the fault: keep the message one
         * printable line, whatever the input holds. */
        char why[sizeof jerr->text];
        sanitize(why, sizeof why, jerr->text, sizeof why - 4);
        ibp_err_set(err, "%s: invalid JSON at line %d column %d: %s", src, jerr->line,
                    jerr->column, why);
    }
}

json_t *ibp_json_load(const char *buf, size_t len, const char *src, ibp_err_t *err)
{
    tree_estimate_t est = estimate_tree(buf ? buf : "", buf ? len : 0);
    if (tree_cost(&est) > IBP_JSON_MAX_TREE) {
        ibp_err_set(err, "%s: too many JSON values to load (%zu objects, %zu arrays, ~%zu "
                    "values would take ~%zu MiB; the limit is %d MiB)", src, est.objects,
                    est.arrays, est.values, tree_cost(&est) >> 20, IBP_JSON_MAX_TREE >> 20);
        return NULL;
    }
    json_error_t jerr;
    /* Any top-level value: callers report a wrong top-level type themselves,
     * with a better message than jansson's. Duplicate keys are refused since
     * Go would silently keep the last one and hide the mistake. */
    json_t *root = json_loadb(buf ? buf : "", buf ? len : 0,
                              JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        load_error(buf ? buf : "", buf ? len : 0, src, &jerr, err);
    return root;
}

json_t *ibp_json_get(const json_t *obj, const char *key)
{
    if (!json_is_object(obj))
        return NULL;
    json_t *v = json_object_get(obj, key);
    if (v)
        return v;
    const char *k;
    json_t *val;
    /* json_object_foreach wants a non-const object; we do not modify it. */
    json_t *o = (json_t *)obj;
    json_object_foreach(o, k, val) {
        if (!strcasecmp(k, key))
            return val;
    }
    return NULL;
}

const char *ibp_json_type_name(const json_t *v)
{
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

/* Copies at most max bytes of s into out (n bytes), replacing anything that
 * is not printable ASCII by '?' and marking a cut with "...". */
static void sanitize(char *out, size_t n, const char *s, size_t max)
{
    size_t o = 0, i = 0;
    for (; s[i] && i < max && o + 1 < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (s[i] && o + 4 <= n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

void ibp_jpath_key(char *out, const char *parent, const char *key)
{
    char k[JKEY_MAX + 4];
    sanitize(k, sizeof k, key, JKEY_MAX);
    snprintf(out, IBP_JPATH_MAX, "%s.%s", parent, k);
}

void ibp_jpath_index(char *out, const char *parent, size_t i)
{
    snprintf(out, IBP_JPATH_MAX, "%s[%zu]", parent, i);
}

void ibp_json_quote(char *out, size_t n, const char *s)
{
    if (n < 3) {
        if (n)
            out[0] = '\0';
        return;
    }
    size_t max = IBP_JQUOTE_MAX < n - 3 ? IBP_JQUOTE_MAX : n - 3;
    out[0] = '"';
    sanitize(out + 1, n - 2, s ? s : "", max);
    size_t l = strlen(out);
    out[l] = '"';
    out[l + 1] = '\0';
}

void ibp_json_num_fmt(const json_t *v, char *out, size_t n)
{
    if (json_is_integer(v)) {
        snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return;
    }
    double d = json_number_value(v);
    /* Fewest digits that round-trip, so 95 prints "95" and 90.0000001 stays exact. */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            return;
    }
}

bool ibp_jerr(const ibp_jctx_t *c, const char *path, const char *fmt, ...)
{
    if (!c->err)
        return false;
    char msg[IBP_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ibp_err_set(c->err, "%s: %s: %s", c->src, path[0] ? path : ".", msg);
}

static bool type_err(const ibp_jctx_t *c, const char *path, const char *want,
                     const json_t *v)
{
    if (!v || json_is_null(v))
        return ibp_jerr(c, path, "missing");
    return ibp_jerr(c, path, "expected %s, got %s", want, ibp_json_type_name(v));
}

bool ibp_jval_object(const ibp_jctx_t *c, const char *path, const json_t *v)
{
    return json_is_object(v) ? true : type_err(c, path, "an object", v);
}

bool ibp_jval_array(const ibp_jctx_t *c, const char *path, const json_t *v)
{
    return json_is_array(v) ? true : type_err(c, path, "an array", v);
}

bool ibp_jval_string(const ibp_jctx_t *c, const char *path, const json_t *v,
                     const char **out)
{
    if (!json_is_string(v))
        return type_err(c, path, "a string", v);
    /* jansson refuses \u0000 without JSON_ALLOW_NUL; this guards the C
     * string view against a future change of load flags. */
    if (strlen(json_string_value(v)) != json_string_length(v))
        return ibp_jerr(c, path, "contains a NUL byte");
    *out = json_string_value(v);
    return true;
}

/* Looks obj[key] up; *v is NULL when missing or null. False only when a
 * required value is absent (error set). */
static bool fetch(const ibp_jctx_t *c, const json_t *obj, const char *path,
                  const char *key, ibp_jneed_t need, json_t **v)
{
    *v = ibp_json_get(obj, key);
    if (*v && json_is_null(*v))
        *v = NULL;
    if (!*v && need == IBP_J_REQUIRED)
        return ibp_jerr(c, path, "missing");
    return true;
}

/* The start every typed getter shares: obj[key]'s path, and its value if
 * present. A present value must pass is_type, else the error names what
 * was expected. False only on an error; true with *v NULL when absent. */
typedef bool (*jtype_fn)(const json_t *v);

static bool typed_field(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                        const char *key, ibp_jneed_t need, jtype_fn is_type, const char *want,
                        char path[IBP_JPATH_MAX], json_t **v)
{
    ibp_jpath_key(path, parent, key);
    if (!fetch(c, obj, path, key, need, v))
        return false;
    return !*v || !is_type || is_type(*v) || type_err(c, path, want, *v);
}

static bool is_object(const json_t *v) { return json_is_object(v); }
static bool is_array(const json_t *v) { return json_is_array(v); }
static bool is_integer(const json_t *v) { return json_is_integer(v); }
static bool is_number(const json_t *v) { return json_is_number(v); }
static bool is_boolean(const json_t *v) { return json_is_boolean(v); }

bool ibp_jget_object(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                     const char *key, ibp_jneed_t need, json_t **out)
{
    char path[IBP_JPATH_MAX];
    json_t *v;
    if (!typed_field(c, obj, parent, key, need, is_object, "an object", path, &v))
        return false;
    if (v)
        *out = v;
    return true;
}

bool ibp_jget_array(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                    const char *key, ibp_jneed_t need, json_t **out)
{
    char path[IBP_JPATH_MAX];
    json_t *v;
    if (!typed_field(c, obj, parent, key, need, is_array, "an array", path, &v))
        return false;
    if (v)
        *out = v;
    return true;
}

bool ibp_jget_string(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                     const char *key, ibp_jneed_t need, const char **out)
{
    char path[IBP_JPATH_MAX];
    json_t *v;
    if (!typed_field(c, obj, parent, key, need, NULL, NULL, path, &v))
        return false;
    return v ? ibp_jval_string(c, path, v, out) : true;
}

static bool replace_dup(const ibp_jctx_t *c, const char *path, const char *s, char **out)
{
    char *d = strdup(s);
    if (!d)
        return ibp_jerr(c, path, "out of memory");
    free(*out);
    *out = d;
    return true;
}

bool ibp_jget_strdup(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                     const char *key, ibp_jneed_t need, char **out)
{
    const char *s = NULL;
    if (!ibp_jget_string(c, obj, parent, key, need, &s))
        return false;
    if (!s)
        return true;
    char path[IBP_JPATH_MAX];
    ibp_jpath_key(path, parent, key);
    return replace_dup(c, path, s, out);
}

bool ibp_jget_strnum(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                     const char *key, ibp_jneed_t need, char **out)
{
    char path[IBP_JPATH_MAX];
    json_t *v;
    if (!typed_field(c, obj, parent, key, need, NULL, NULL, path, &v))
        return false;
    if (!v)
        return true;
    if (json_is_integer(v)) {
        char num[32];
        ibp_json_num_fmt(v, num, sizeof num);
        return replace_dup(c, path, num, out);
    }
    if (!json_is_string(v))
        return type_err(c, path, "a string or an integer", v);
    const char *s;
    return ibp_jval_string(c, path, v, &s) && replace_dup(c, path, s, out);
}

bool ibp_jget_int(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                  const char *key, ibp_jneed_t need, long long min, long long max,
                  long long *out)
{
    char path[IBP_JPATH_MAX];
    json_t *v;
    if (!typed_field(c, obj, parent, key, need, is_integer, "an integer", path, &v))
        return false;
    if (!v)
        return true;
    long long x = json_integer_value(v);
    if (x < min || x > max)
        return ibp_jerr(c, path, "%lld is out of range %lld..%lld", x, min, max);
    *out = x;
    return true;
}

bool ibp_jget_double(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                     const char *key, ibp_jneed_t need, double *out)
{
    char path[IBP_JPATH_MAX];
    json_t *v;
    if (!typed_field(c, obj, parent, key, need, is_number, "a number", path, &v))
        return false;
    if (v)
        *out = json_number_value(v);
    return true;
}

bool ibp_jget_bool(const ibp_jctx_t *c, const json_t *obj, const char *parent,
                   const char *key, ibp_jneed_t need, bool *out)
{
    char path[IBP_JPATH_MAX];
    json_t *v;
    if (!typed_field(c, obj, parent, key, need, is_boolean, "a boolean", path, &v))
        return false;
    if (v)
        *out = json_is_true(v);
    return true;
}

bool ibp_jkeyed_entries(const ibp_jctx_t *c, const json_t *root, const char *what,
                        size_t elem_size, ibp_jentry_fn parse, void **v, size_t *n)
{
    if (!json_is_object(root))
        return ibp_jerr(c, ".", "expected an object keyed by %s key, got %s", what,
                        ibp_json_type_name(root));
    size_t count = json_object_size(root);
    if (count == 0)
        return ibp_jerr(c, ".", "no %ss", what);
    char *elems = calloc(count, elem_size);
    if (!elems)
        return ibp_jerr(c, ".", "out of memory");
    *v = elems;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)root, key, val) {
        if (!parse(c, key, val, elems + *n * elem_size)) {
            (*n)++;   /* the caller frees the entries parsed so far, this one too */
            return false;
        }
        (*n)++;
    }
    return true;
}

bool ibp_jcollect_strings(const ibp_jctx_t *c, const json_t *obj, const char *path,
                          ibp_jcollect_fn add, char ***v, size_t *n)
{
    ibp_strv_t sv = {0};
    const char *key;
    json_t *val;
    /* json_object_foreach wants a non-const object; we do not modify it. */
    json_t *o = (json_t *)obj;
    json_object_foreach(o, key, val) {
        char kpath[IBP_JPATH_MAX];
        ibp_jpath_key(kpath, path, key);
        if (json_is_null(val))
            continue;
        if (!add(c, val, kpath, &sv)) {
            ibp_strv_free(&sv);
            return false;
        }
    }
    if (!ibp_strv_dedup(&sv)) {
        ibp_strv_free(&sv);
        return ibp_jerr(c, path, "out of memory");
    }
    *v = sv.v;
    *n = sv.n;
    return true;
}

bool ibp_json_present(const json_t *obj, const char *key)
{
    const json_t *v = ibp_json_get(obj, key);
    return v && !json_is_null(v);
}
