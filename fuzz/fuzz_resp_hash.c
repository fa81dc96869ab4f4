
/*
 * Copyright (C) client guard authors
 *
 * Fuzz target: the replies of HGETALL {prefix}quotas and {prefix}apikeys,
 * from the bytes Redis sends on: hiredis's reader (fuzz_resp.h), then the
 * quota snapshot's walk of each as cg_redis_snap.c has it: no hash is
 * reported (an error's text), a hash's pairs (cg_reply.c cg_reply_pair)
 * each a client name and a definition (cg_name.h, cg_parse.c
 * cg_parse_quota), or an API key's hex SHA-256 and a client name
 * (cg_parse_api_key).  The input: a byte for the chunk size, then RESP.
 */


#include "fuzz_resp.h"
#include "fuzz_quota.h"
#include "cg_name.h"
#include "cg_reply.h"


static void
cg_fuzz_hash_walk(redisReply *r, void *data)
{
    int                   rc, n;
    size_t                i, flen, vlen;
    cg_quota_t            q;
    const char           *err;
    unsigned char         name[CG_NAME_MAX];
    const unsigned char  *f, *v;

    if (r->type != REDIS_REPLY_ARRAY) {

        /* "not a hash": the error's text is logged */

        cg_fuzz_check(r->type != REDIS_REPLY_ERROR || r->str != NULL);
        cg_fuzz_check(cg_reply_pair(r, 0, &f, &flen, &v, &vlen) == -1);
        return;
    }

    for (i = 0; i + 1 < r->elements; i += 2) {
        rc = cg_reply_pair(r, i, &f, &flen, &v, &vlen);
        cg_fuzz_check(rc == 0 || rc == 1);

        if (rc == 0) {
            continue;
        }

        cg_fuzz_check(f != NULL && v != NULL);

        /* a definition */

        n = cg_name_normalize(name, f, flen, CG_NAME_MAX);
        cg_fuzz_check(n == -1 || (size_t) n == flen);

        if (n > 0) {
            err = cg_parse_quota(&q, v, vlen);

            if (err == NULL) {
                cg_fuzz_check_quota(&q);
            }
        }

        /* an API key */

        if (cg_parse_api_key(f, flen) == 0) {
            cg_fuzz_check(flen == CG_API_KEY_HEX);
            n = cg_name_normalize(name, v, vlen, CG_NAME_MAX);
            cg_fuzz_check(n == -1 || (size_t) n == vlen);
        }
    }

    cg_fuzz_check(cg_reply_pair(r, i, &f, &flen, &v, &vlen) == -1);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }

    cg_fuzz_resp(data[0], data + 1, size - 1, cg_fuzz_hash_walk, NULL);

    return 0;
}
