#include "ibp_inputs.h"

#include "ibp_health.h"
#include "ibp_model.h"

static bool parse_config(const char *b, size_t l, const char *s, void *o, ibp_err_t *e)
{
    return ibp_node_config_parse(b, l, s, o, e);
}
static bool parse_members(const char *b, size_t l, const char *s, void *o, ibp_err_t *e)
{
    return ibp_members_parse(b, l, s, o, e);
}
static bool parse_services(const char *b, size_t l, const char *s, void *o, ibp_err_t *e)
{
    return ibp_services_parse(b, l, s, o, e);
}
static bool parse_statics(const char *b, size_t l, const char *s, void *o, ibp_err_t *e)
{
    return ibp_statics_parse(b, l, s, o, e);
}
static bool parse_health(const char *b, size_t l, const char *s, void *o, ibp_err_t *e)
{
    return ibp_health_parse(b, l, s, o, e);
}
static void free_config(void *m) { ibp_node_config_free(m); }
static void free_members(void *m) { ibp_members_free(m); }
static void free_services(void *m) { ibp_services_free(m); }
static void free_statics(void *m) { ibp_statics_free(m); }
static void free_health(void *m) { ibp_health_free(m); }

static const ibp_input_type_t types[] = {
    {IBP_IN_NODE_CONFIG, sizeof(ibp_node_config_t), parse_config, free_config},
    {IBP_IN_MEMBERS, sizeof(ibp_members_t), parse_members, free_members},
    {IBP_IN_SERVICES, sizeof(ibp_services_t), parse_services, free_services},
    {IBP_IN_STATIC, sizeof(ibp_statics_t), parse_statics, free_statics},
    {IBP_IN_RESULTS, sizeof(ibp_health_t), parse_health, free_health},
};

const ibp_input_type_t *ibp_input_type(enum ibp_input_kind kind)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].kind == kind)
            return &types[i];
    return NULL;
}
