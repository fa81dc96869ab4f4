
/*
 * Copyright (C) client guard authors
 *
 * Fuzz target: the status endpoint's query string as cg_status.c reads
 * it (cg_query.c cg_query_parse, cg_query_arg, cg_query_unescape): what
 * it says must be in range, the client a valid name, a refusal naming its
 * argument, each argument found only at the start or after a "&", a
 * decoded value no longer than it was, each "%XX" one byte (no NUL),
 * each other byte itself.
 */


#include "fuzz.h"
#include "cg_query.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   rc, n;
    size_t                i, j, vlen, nsorts;
    uint8_t              *args, *dec;
    cg_query_t            q;
    unsigned char         name[CG_NAME_MAX];
    const unsigned char  *v;

    static const char  *names[] = {
        "format", "sort", "limit", "client", "history", "scope", "a", NULL
    };

    args = cg_fuzz_copy(data, size);

    rc = cg_query_parse(&q, args, size);
    cg_fuzz_check(rc == 0 || rc == -1);
    cg_fuzz_check(rc == 0 ? q.bad == NULL : q.bad != NULL);

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

    /* the whole input as one value */

    dec = malloc(size + 1);
    cg_fuzz_check(dec != NULL);

    n = cg_query_unescape(dec, size, args, size);
    cg_fuzz_check(n >= -1 && n <= (int) size);

    for (i = 0, j = 0; n >= 0 && i < size; i++, j++) {
        cg_fuzz_check(j < (size_t) n);

        if (args[i] == '%') {
            cg_fuzz_check(dec[j] != '\0');
            i += 2;

        } else {
            cg_fuzz_check(dec[j] == args[i]);
        }
    }

    cg_fuzz_check(n < 0 || j == (size_t) n);

    free(dec);
    free(args);

    return 0;
}
