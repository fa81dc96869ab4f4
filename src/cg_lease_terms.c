
/*
 * Copyright (C) client guard authors
 *
 * A quota's terms for its leases.  See cg_lease_terms.h.
 */


#include <stddef.h>

#include "cg_lease_terms.h"


#define cg_min(a, b)               ((a) < (b) ? (a) : (b))
#define cg_max(a, b)               ((a) > (b) ? (a) : (b))


uint32_t
cg_lease_ahead(const cg_quota_t *q, uint32_t ahead, uint32_t *reserve)
{
    uint32_t  i;
    uint64_t  cap, least;

    cap = ahead;
    least = UINT32_MAX;

    for (i = 0; i < q->nlimits; i++) {
        cap = cg_min(cap, q->limits[i].count / 100);
        least = cg_min(least, q->limits[i].count);
    }

    if (reserve) {
        *reserve = (uint32_t) cg_max(8 * cap, least / 10);
    }

    return (uint32_t) cap;
}


uint32_t
cg_lease_ttl(const cg_quota_t *q, int64_t now_ms, uint32_t lease_ms,
    int small)
{
    int64_t   left;
    uint32_t  i, ttl;

    /*
     * a rate lease is short: tokens spent late would exceed the rate; a
     * small one (no more than "ahead" units) may last a second
     */

    ttl = 1000;

    for (i = 0; i < q->nlimits; i++) {
        if (q->limits[i].type == CG_LIMIT_RATE) {
            if (!small) {
                ttl = cg_min(ttl, 2 * lease_ms);
            }

            continue;
        }

        /* a window lease ends with the window */
        left = q->limits[i].period - now_ms % q->limits[i].period;
        ttl = (uint32_t) cg_min((int64_t) ttl, left);
    }

    return cg_max(ttl, 1);
}


uint32_t
cg_lease_share(const cg_quota_t *q, uint32_t horizon_ms, uint32_t nodes)
{
    uint32_t  i;
    uint64_t  share, s;

    share = 0;
    nodes = cg_max(nodes, 1);

    for (i = 0; i < q->nlimits; i++) {
        if (q->limits[i].type != CG_LIMIT_RATE || q->limits[i].period == 0) {
            continue;
        }

        s = q->limits[i].count * horizon_ms
            / ((uint64_t) q->limits[i].period * nodes);
        s = cg_max(s, 1);

        share = share ? cg_min(share, s) : s;
    }

    return (uint32_t) cg_min(share, CG_LEASE_WANT_MAX);
}


uint32_t
cg_lease_far(const cg_quota_t *q, uint32_t lease_ms, uint32_t nodes)
{
    uint32_t  i;
    uint64_t  far, f;

    far = CG_LEASE_WANT_MAX;
    nodes = cg_max(nodes, 1);

    for (i = 0; i < q->nlimits; i++) {
        if (q->limits[i].type != CG_LIMIT_RATE || q->limits[i].period == 0) {
            continue;
        }

        f = q->limits[i].count * 2 * lease_ms
            / ((uint64_t) q->limits[i].period * nodes);
        far = cg_min(far, f);
    }

    return (uint32_t) far;
}


uint32_t
cg_lease_ttl_far(const cg_quota_t *q, int64_t now_ms)
{
    return cg_max(cg_min(2 * CG_LEASE_LONG, cg_lease_window_left(q, now_ms)),
                  1);
}


uint32_t
cg_lease_window_left(const cg_quota_t *q, int64_t now_ms)
{
    int64_t   left;
    uint32_t  i, least;

    least = UINT32_MAX;

    for (i = 0; i < q->nlimits; i++) {
        if (q->limits[i].type == CG_LIMIT_RATE || q->limits[i].period == 0) {
            continue;
        }

        left = q->limits[i].period - now_ms % q->limits[i].period;
        least = (uint32_t) cg_min((int64_t) least, left);
    }

    return least;
}


uint32_t
cg_lease_window_age(const cg_quota_t *q, int64_t now_ms)
{
    uint32_t  i, least;

    least = UINT32_MAX;

    for (i = 0; i < q->nlimits; i++) {
        if (q->limits[i].type == CG_LIMIT_RATE || q->limits[i].period == 0) {
            continue;
        }

        least = (uint32_t) cg_min((int64_t) least,
                                  now_ms % q->limits[i].period);
    }

    return least;
}


uint32_t
cg_lease_quota_hash(const cg_quota_t *q)
{
    size_t           len, i;
    uint32_t         h;
    const uint32_t  *p;

    /*
     * FNV-1a, a word at a time, over the mode, the number of limits and
     * the limits in use (all of them 32-bit words)
     */

    len = (offsetof(cg_quota_t, limits)
           + cg_min(q->nlimits, CG_MAX_LIMITS) * sizeof(cg_limit_t)) / 4;

    p = (const uint32_t *) q;
    h = 2166136261u;

    for (i = 0; i < len; i++) {
        h = (h ^ p[i]) * 16777619u;
    }

    return h | 1;
}
