
/*
 * Copyright (C) client guard authors
 *
 * Fuzz target: an Accept header's value (cg_query.c cg_query_accept, what
 * cg_out.c ngx_http_cg_out_accept asks of each Accept header), checked
 * against a plain reference: the first of the types, in their order,
 * that the value holds in any case.
 */


#include <strings.h>

#include "fuzz.h"
#include "cg_query.h"


static int
cg_fuzz_holds(const uint8_t *p, size_t len, const char *type)
{
    size_t  i, n;

    n = strlen(type);

    for (i = 0; i + n <= len; i++) {
        if (strncasecmp((const char *) p + i, type, n) == 0
            && memchr(p + i, '\0', n) == NULL)
        {
            return 1;
        }
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int       rc, want;
    uint8_t  *v;

    v = cg_fuzz_copy(data, size);

    rc = cg_query_accept(v, size);

    want = cg_fuzz_holds(v, size, "application/openmetrics-text")
           ? CG_FMT_OPENM
           : cg_fuzz_holds(v, size, "application/json") ? CG_FMT_JSON
           : cg_fuzz_holds(v, size, "text/html") ? CG_FMT_HTML
           : cg_fuzz_holds(v, size, "text/plain") ? CG_FMT_PROM : -1;

    cg_fuzz_check(rc == want);

    free(v);

    return 0;
}
