/* The node config parser, ibp_input_type(IBP_IN_NODE_CONFIG)->parse, on
 * arbitrary bytes. Asserts (besides fuzz_json_run's rules for failures) what
 * a successful parse promises (lib/input/ibp_model.h): every string non-NULL,
 * periods and AnswersPerFamily in range, overrides normalised. */
#include <ctype.h>
#include <string.h>

#include "fuzz_common.h"
#include "ibp_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const void *model)
{
    const ibp_node_config_t *c = model;
    const char *strs[] = {
        c->path, c->log_level, c->static_url, c->members_url, c->services_url, c->maxmind_path,
        c->maxmind_account, c->maxmind_key, c->maxmind_download_url, c->ca_file, c->api_token,
        c->nats_node_id, c->nats_url, c->nats_user, c->nats_pass, c->mysql_host, c->mysql_port,
        c->mysql_user, c->mysql_pass, c->mysql_db, c->api_listen_address, c->api_listen_port,
        c->monitor_address, c->monitor_port, c->storage_path, c->routing.table_path,
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (!strs[i])
            fuzz_fail("config string %zu is NULL after a successful parse", i);
    if (c->config_reload_s < 1 || c->config_reload_s > IBP_PERIOD_MAX_S ||
        c->monitor_refresh_s < 1 || c->monitor_refresh_s > IBP_PERIOD_MAX_S ||
        c->maxmind_refresh_s < 1 || c->maxmind_refresh_s > IBP_MAXMIND_REFRESH_MAX_S ||
        c->routing.answers_per_family < 1 || c->routing.answers_per_family > IBP_MAX_ANSWERS)
        fuzz_fail("config period or AnswersPerFamily out of range");
    for (size_t i = 0; i < c->overrides.n; i++) {
        const ibp_override_t *o = &c->overrides.v[i];
        size_t n = o->domain ? strlen(o->domain) : 0;
        if (!o->member_name || n == 0 || o->domain[n - 1] == '.' ||
            !isupper((unsigned char)o->cc[0]) || !isupper((unsigned char)o->cc[1]) || o->cc[2])
            fuzz_fail("override %zu is not normalised", i);
        for (size_t k = 0; k < n; k++)
            if (isupper((unsigned char)o->domain[k]))
                fuzz_fail("override %zu: domain not lowercase", i);
    }
    for (size_t i = 0; i < c->n_warnings; i++)
        if (!c->warnings[i])
            fuzz_fail("config warning %zu is NULL", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_json_run(IBP_IN_NODE_CONFIG, check, data, size);
}
