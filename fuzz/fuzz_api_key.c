
/*
 * Copyright (C) client guard authors
 *
 * Fuzz target: an API key's entry in Redis ({prefix}apikeys), as
 * cg_redis_snap.c checks it: the field (up to the first NUL byte) must
 * be a lowercase hex SHA-256 (cg_parse.c cg_parse_api_key), the value
 * (the rest) a client name (cg_name.h cg_name_normalize).
 */


#include "fuzz.h"
#include "cg_name.h"
#include "cg_parse.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             rc, n, hex;
    size_t          i, flen, vlen;
    uint8_t        *field, *value;
    unsigned char   name[CG_NAME_MAX];
    const uint8_t  *f, *v;

    if (!cg_fuzz_piece(&data, &size, &f, &flen)) {
        return 0;
    }

    v = data;
    vlen = size;

    field = cg_fuzz_copy(f, flen);
    rc = cg_parse_api_key(field, flen);

    /* what it must say: the reference, plainly */

    hex = (flen == CG_API_KEY_HEX);

    for (i = 0; hex && i < flen; i++) {
        hex = strchr("0123456789abcdef", field[i]) != NULL && field[i];
    }

    cg_fuzz_check(rc == (hex ? 0 : -1));
    free(field);

    value = cg_fuzz_copy(v, vlen);
    n = cg_name_normalize(name, value, vlen, CG_NAME_MAX);
    cg_fuzz_check(n == -1 || (n > 0 && (size_t) n == vlen));
    free(value);

    return 0;
}
