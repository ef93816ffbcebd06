#include "ibp_geo_classes.h"

#include <stdlib.h>
#include <string.h>

void ibp_geo_classes_free(ibp_geo_classes_t *c)
{
    ibp_nlist_free(&c->list);
    free(c->cls);
    free(c->orders);
    memset(c, 0, sizeof *c);
}
