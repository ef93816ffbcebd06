#include "ibp_inputs.h"

#include <string.h>

#include "ibp_health.h"
#include "ibp_json.h"
#include "ibp_model.h"

static void free_config(void *m) { ibp_node_config_free(m); }
static void free_members(void *m) { ibp_members_free(m); }
static void free_services(void *m) { ibp_services_free(m); }
static void free_statics(void *m) { ibp_statics_free(m); }
static void free_health(void *m) { ibp_health_free(m); }

static bool parse_config(const char *b, size_t l, const char *s, void *o, ibp_err_t *e)
{
    return ibp_node_config_parse(b, l, s, o, e);
}

/* The inputs whose parse is one walk of the JSON tree. */
static bool parse_walked(enum ibp_input_kind kind, const char *buf, size_t len,
                         const char *src, void *model, ibp_err_t *err);

static bool parse_members(const char *b, size_t l, const char *s, void *o, ibp_err_t *e)
{
    return parse_walked(IBP_IN_MEMBERS, b, l, s, o, e);
}
static bool parse_services(const char *b, size_t l, const char *s, void *o, ibp_err_t *e)
{
    return parse_walked(IBP_IN_SERVICES, b, l, s, o, e);
}
static bool parse_statics(const char *b, size_t l, const char *s, void *o, ibp_err_t *e)
{
    return parse_walked(IBP_IN_STATIC, b, l, s, o, e);
}
static bool parse_health(const char *b, size_t l, const char *s, void *o, ibp_err_t *e)
{
    return parse_walked(IBP_IN_RESULTS, b, l, s, o, e);
}

typedef struct input_impl {
    ibp_input_type_t type;
    ibp_jwalk_fn walk;     /* NULL: the type's parse is its own */
} input_impl_t;

static const input_impl_t impls[] = {
    {{IBP_IN_NODE_CONFIG, sizeof(ibp_node_config_t), parse_config, free_config}, NULL},
    {{IBP_IN_MEMBERS, sizeof(ibp_members_t), parse_members, free_members}, ibp_members_walk},
    {{IBP_IN_SERVICES, sizeof(ibp_services_t), parse_services, free_services}, ibp_services_walk},
    {{IBP_IN_STATIC, sizeof(ibp_statics_t), parse_statics, free_statics}, ibp_statics_walk},
    {{IBP_IN_RESULTS, sizeof(ibp_health_t), parse_health, free_health}, ibp_health_walk},
};

static const input_impl_t *impl_of(enum ibp_input_kind kind)
{
    for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++)
        if (impls[i].type.kind == kind)
            return &impls[i];
    return NULL;
}

const ibp_input_type_t *ibp_input_type(enum ibp_input_kind kind)
{
    const input_impl_t *im = impl_of(kind);
    return im ? &im->type : NULL;
}

/* Load, walk into the (zeroed) model, and on failure free what was filled:
 * a failed parse leaves nothing behind. */
static bool parse_walked(enum ibp_input_kind kind, const char *buf, size_t len,
                         const char *src, void *model, ibp_err_t *err)
{
    const input_impl_t *im = impl_of(kind);
    memset(model, 0, im->type.model_size);
    json_t *root = ibp_json_load(buf, len, src, err);
    if (!root)
        return false;
    ibp_jctx_t c = {src, err};
    bool ok = im->walk(&c, root, model);
    json_decref(root);
    if (!ok)
        im->type.free_model(model);
    return ok;
}

bool ibp_members_parse(const char *buf, size_t len, const char *src, ibp_members_t *out,
                       ibp_err_t *err)
{
    return parse_walked(IBP_IN_MEMBERS, buf, len, src, out, err);
}

bool ibp_services_parse(const char *buf, size_t len, const char *src, ibp_services_t *out,
                        ibp_err_t *err)
{
    return parse_walked(IBP_IN_SERVICES, buf, len, src, out, err);
}

bool ibp_statics_parse(const char *buf, size_t len, const char *src, ibp_statics_t *out,
                       ibp_err_t *err)
{
    return parse_walked(IBP_IN_STATIC, buf, len, src, out, err);
}

bool ibp_health_parse(const char *buf, size_t len, const char *src, ibp_health_t *out,
                      ibp_err_t *err)
{
    return parse_walked(IBP_IN_RESULTS, buf, len, src, out, err);
}
