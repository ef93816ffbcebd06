/* The JSON inputs by kind: how to parse each into its model and free it, so
 * that the CLI and the sidecar treat every input the same way. */
#ifndef IBP_INPUTS_H
#define IBP_INPUTS_H

#include <stdbool.h>
#include <stddef.h>

#include "ibp_err.h"
#include "ibp_table_format.h"

typedef struct ibp_input_type {
    enum ibp_input_kind kind;
    size_t model_size;     /* bytes of the model struct to allocate */
    bool (*parse)(const char *buf, size_t len, const char *src, void *model, ibp_err_t *err);
    void (*free_model)(void *model);   /* frees the contents, not the struct */
} ibp_input_type_t;

/* NULL for kinds that are not JSON (the City database). */
const ibp_input_type_t *ibp_input_type(enum ibp_input_kind kind);

#endif
