
/*
 * Copyright (C) client guard authors
 *
 * Fuzz target: the status endpoint's query string as cg_status.c reads
 * it (cg_query.c cg_query_parse, cg_query_arg): what it says must be in
 * range, the client a valid name, each argument found only at the start
 * or after a "&".
 */


#include "fuzz.h"
#include "cg_query.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   rc;
    size_t                i, vlen, nsorts;
    uint8_t              *args;
    cg_query_t            q;
    unsigned char         name[CG_NAME_MAX];
    const unsigned char  *v;

    static const char  *names[] = {
        "format", "sort", "limit", "client", "history", "scope", "a", NULL
    };

    args = cg_fuzz_copy(data, size);

    rc = cg_query_parse(&q, args, size);
    cg_fuzz_check(rc == 0 || rc == -1);

    if (rc == 0) {
        for (nsorts = 0; cg_query_sorts[nsorts]; nsorts++) { /* void */ }

        cg_fuzz_check(q.format >= -1 && q.format <= CG_FMT_HTML);
        cg_fuzz_check(q.sort < nsorts);
        cg_fuzz_check(q.limit >= -1);
        cg_fuzz_check(q.history >= -1 && q.history <= 1);
        cg_fuzz_check(q.cluster == 0 || q.cluster == 1);
        cg_fuzz_check(q.client_len <= CG_NAME_MAX);

        if (q.client_len) {
            cg_fuzz_check(cg_name_normalize(name, q.client, q.client_len,
                                            CG_NAME_MAX)
                          == (int) q.client_len);
            cg_fuzz_check(memcmp(name, q.client, q.client_len) == 0);
        }
    }

    for (i = 0; names[i]; i++) {
        if (cg_query_arg(args, size, names[i], &v, &vlen) != 0) {
            continue;
        }

        cg_fuzz_check(v > args && v + vlen <= args + size);
        cg_fuzz_check(v[-1] == '=');
        cg_fuzz_check(memchr(v, '&', vlen) == NULL);
        cg_fuzz_check(v + vlen == args + size || v[vlen] == '&');

        v -= strlen(names[i]) + 1;
        cg_fuzz_check(v == args || v[-1] == '&');
    }

    free(args);

    return 0;
}
