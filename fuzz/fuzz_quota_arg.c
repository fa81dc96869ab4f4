
/*
 * Copyright (C) client guard authors
 *
 * Fuzz target: quota parameters as the configuration gives them
 * (client_guard_quota's "rate=", "burst=", "quota=", "mode="), each piece
 * of the input (cut at NUL bytes) one argument, then the quota validated:
 * cg_parse.c cg_parse_quota_arg, cg_quota_validate.
 */


#include "fuzz.h"
#include "fuzz_quota.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t          len;
    uint8_t        *arg;
    cg_quota_t      q;
    const char     *err;
    const uint8_t  *p;

    memset(&q, 0, sizeof(q));

    while (cg_fuzz_piece(&data, &size, &p, &len)) {
        arg = cg_fuzz_copy(p, len);
        err = cg_parse_quota_arg(&q, arg, len);
        free(arg);

        cg_fuzz_check(err == NULL || strlen(err) > 0);
        cg_fuzz_check_quota(&q);
    }

    err = cg_quota_validate(&q);
    cg_fuzz_check(err != NULL || q.nlimits > 0 || q.mode == CG_MODE_OFF);

    return 0;
}
