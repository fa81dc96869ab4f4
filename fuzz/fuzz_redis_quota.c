
/*
 * Copyright (C) client guard authors
 *
 * Fuzz target: a quota definition as a Redis value ({prefix}quotas), as
 * cg_redis_snap.c reads it (cg_parse.c cg_parse_quota), then what a
 * definition goes into: its RateLimit-Policy text and log text
 * (cg_limiter.c), a check of a request against it, the lease's figures
 * (cg_lease_terms.c cg_lease_ahead, cg_lease_ttl, cg_lease_quota_hash).  The
 * input's last 8 bytes are the clock (up to 2^42 ms, the year 2109) when
 * it has more than 8.
 */


#include "fuzz_quota.h"
#include "cg_lease.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t              len;
    int64_t             now;
    uint8_t            *v, *text;
    uint32_t            i, reserve;
    cg_quota_t          q;
    const char         *err;
    cg_limit_result_t   res;
    cg_limit_state_t    st[CG_MAX_LIMITS];

    now = 1700000000000LL;

    if (size > 8) {
        memcpy(&now, data + size - 8, 8);
        now &= (1LL << 42) - 1;         /* ms: until 2109 */
        size -= 8;
    }

    v = cg_fuzz_copy(data, size);
    err = cg_parse_quota(&q, v, size);
    free(v);

    if (err) {
        cg_fuzz_check(strlen(err) > 0);
        return 0;
    }

    cg_fuzz_check_quota(&q);
    cg_fuzz_check(q.nlimits > 0 || q.mode == CG_MODE_OFF);
    cg_fuzz_check(size <= CG_QUOTA_VALUE_MAX);

    /* the texts, in buffers of just the room the callers give */

    len = cg_quota_policy_len(&q);
    text = malloc(len + 1);
    cg_fuzz_check(text != NULL);
    cg_fuzz_check((size_t) (cg_quota_policy_print(text, &q) - text) <= len);
    free(text);

    for (i = 0; i < q.nlimits; i++) {
        text = malloc(CG_LIMIT_PRINT_LEN);
        cg_fuzz_check(text != NULL);
        cg_fuzz_check((size_t) (cg_limit_print(text, &q.limits[i]) - text)
                      <= CG_LIMIT_PRINT_LEN);
        free(text);

        cg_fuzz_check(cg_limit_window_sec(&q.limits[i]) >= 1);
    }

    /* a request, twice, against fresh states */

    memset(st, 0, sizeof(st));
    (void) cg_quota_check(&q, st, now, 1, 1, &res);
    (void) cg_quota_check(&q, st, now + 1, 1, 1, &res);

    /* the lease's figures */

    (void) cg_lease_ahead(&q, 100, &reserve);
    cg_fuzz_check(cg_lease_ttl(&q, now, 100, 0) >= 1);
    cg_fuzz_check(cg_lease_ttl(&q, now, 100, 1) <= 1000);
    cg_fuzz_check(cg_lease_quota_hash(&q) != 0);

    return 0;
}
