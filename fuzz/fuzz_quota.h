
/*
 * Copyright (C) client guard authors
 *
 * What a quota that cg_parse.c made may be: the targets that parse quotas
 * check each against it.
 */


#ifndef _CG_FUZZ_QUOTA_H_INCLUDED_
#define _CG_FUZZ_QUOTA_H_INCLUDED_


#include "fuzz.h"
#include "cg_parse.h"


static inline void
cg_fuzz_check_quota(const cg_quota_t *q)
{
    uint32_t  i;

    cg_fuzz_check(q->nlimits <= CG_MAX_LIMITS);
    cg_fuzz_check(q->mode == CG_MODE_ENFORCE || q->mode == CG_MODE_DRY_RUN
                  || q->mode == CG_MODE_OFF);

    for (i = 0; i < q->nlimits; i++) {
        cg_fuzz_check(q->limits[i].type == CG_LIMIT_RATE
                      || q->limits[i].type == CG_LIMIT_WINDOW);
        cg_fuzz_check(q->limits[i].count <= CG_MAX_COUNT);
        cg_fuzz_check(q->limits[i].burst <= CG_MAX_COUNT);
        cg_fuzz_check(q->limits[i].period == 1000
                      || q->limits[i].period == 60 * 1000
                      || q->limits[i].period == 3600 * 1000
                      || q->limits[i].period == 86400 * 1000);
        cg_fuzz_check(q->limits[i].type != CG_LIMIT_RATE
                      || q->limits[i].count > 0);
        cg_fuzz_check(q->limits[i].type == CG_LIMIT_RATE
                      || q->limits[i].burst == 0);
    }
}


#endif /* _CG_FUZZ_QUOTA_H_INCLUDED_ */
