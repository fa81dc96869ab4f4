
/*
 * Copyright (C) client guard authors
 *
 * The allowance lease arithmetic.  See cg_lease.h and docs/redis.md.
 */


#include <stddef.h>

#include "cg_lease.h"


#define cg_lease_stamp(t)          ((uint32_t) (t) ? (uint32_t) (t) : 1)
#define cg_lease_ahead_of(t, now)  ((t) && (int32_t) ((t) - (now)) > 0)

#define cg_min(a, b)               ((a) < (b) ? (a) : (b))
#define cg_max(a, b)               ((a) > (b) ? (a) : (b))


/*
 * The size of the next lease: about "lease_ms" of this node's traffic,
 * from the rate seen since the last estimate.
 */

static uint32_t
cg_lease_size(cg_lease_t *l, const cg_lease_in_t *in)
{
    uint32_t  elapsed, rate, est;

    elapsed = in->now - l->since;

    if (elapsed >= 20) {
        rate = (uint32_t) cg_min((uint64_t) l->spent * 1000 / elapsed,
                                 1000000);
        l->rate = l->rate ? (l->rate + rate) / 2 : rate;
        l->spent = 0;
        l->since = in->now;
    }

    est = (uint32_t) ((uint64_t) l->rate * in->lease_ms / 1000);

    if (l->left == 0 && l->want && in->now - l->granted < in->lease_ms) {
        /* ran dry quicker than a lease should last: grow quickly */
        est = cg_max(est, cg_min(l->want * 2, 1024));
    }

    est = cg_max(est, 1);
    est = cg_min(est, CG_LEASE_WANT_MAX);

    if (l->granted == 0 && l->rate == 0) {
        /*
         * a client new to this node: a small lease at once, so that a
         * client that keeps coming costs Redis one call per "ahead"
         * requests from the start (units it leaves unspent expire)
         */
        est = cg_max(est, in->ahead);

    } else if (l->rate < 2) {
        if (l->owed) {
            /* a slow client: charge what was admitted, nothing to expire */
            est = 0;
        }

    } else if (est < in->ahead) {
        /* a small lease lasts a second: a second of traffic, <= "ahead" */
        est = cg_min(in->ahead, cg_max(est, l->rate));
    }

    return est;
}


/*
 * How long a lease that took what Redis had left says "at its limit": a
 * second; but a rate frees a unit per interval (in->free_ms), and a node
 * that admits under half the rate (as its leases grow back after a Redis
 * event, when one of them takes the last units of a small burst) is no
 * sign of a client at its limit once a unit came back: it asks Redis.
 */

static uint32_t
cg_lease_limit_ms(const cg_lease_t *l, const cg_lease_in_t *in)
{
    if (in->free_ms == 0 || in->free_ms >= 1000
        || 2 * (uint64_t) l->rate * in->free_ms >= 1000)
    {
        return 1000;
    }

    return in->free_ms;
}


/*
 * A lease that expired with units unspent: Redis counted them, the next
 * fetch gives them back (the last lease's only: all of it was granted in
 * one window, as a lease ends with its window).
 */

static void
cg_lease_expire(cg_lease_t *l, uint32_t now)
{
    if (l->left && (int32_t) (l->expires - now) <= 0) {
        l->back = l->left;
        l->back_at = l->granted;
        l->left = 0;
    }
}


/*
 * The fetch that goes out now: what was admitted ahead to charge and "est"
 * new units, what expired unspent to give back; the lease as fetching.
 */

static void
cg_lease_fetch(cg_lease_t *l, uint32_t est, uint32_t now, cg_lease_out_t *out)
{
    out->owed = l->owed;
    out->want = l->owed + est;
    out->started = cg_lease_stamp(now);
    out->back = l->back;
    out->back_at = l->back_at;

    l->owed = 0;
    l->back = 0;
    l->want = out->want;
    l->fetching = out->started;
}


int
cg_lease_take(cg_lease_t *l, const cg_lease_in_t *in, cg_lease_out_t *out)
{
    int       fetch, active;
    uint32_t  now, est;

    now = in->now;

    out->want = 0;
    out->owed = 0;
    out->started = 0;
    out->back = 0;
    out->back_at = 0;
    out->retry = 0;
    out->remaining = 0;

    if (l->qhash != in->qhash) {
        /*
         * another quota: the lease, a fetch in flight and what Redis said
         * of the old one are void (not "at its limit": fetch afresh)
         */
        l->qhash = in->qhash;
        l->left = 0;
        l->granted = 0;
        l->denied = 0;
        l->want = 0;
        l->fetching = 0;
        l->binding = 0;
        l->owed = 0;
        l->headroom = 0;
        l->back = 0;
    }

    cg_lease_expire(l, now);

    if (l->since == 0) {
        l->since = now;
    }

    out->binding = l->binding;

    active = l->fetching
             && (int32_t) (now - l->fetching) < (int32_t) (2 * in->timeout_ms);
    fetch = 0;

    if (l->left) {
        l->left--;
        l->spent++;

        /* the cluster's view: Redis's last word plus this node's lease */
        out->remaining = (uint64_t) l->left + l->headroom;
        out->rc = CG_LEASE_PASS;

        /*
         * the next lease ahead of time, unless the client is so slow
         * (under 2 r/s here) that a lease would mostly expire unspent:
         * its units would be lost to the window
         */

        fetch = l->left <= l->want / 2 && !active
                && (l->left > 0 || l->rate >= 2);

    } else if (cg_lease_ahead_of(l->denied, now)) {
        out->retry = l->denied - now;
        out->rc = CG_LEASE_REJECT;

    } else if (!in->ready || in->broken || cg_lease_ahead_of(l->failed, now)) {

        /*
         * the circuit breaker is open, or Redis fails on this client's
         * keys: the failure policy decides
         */

        out->rc = CG_LEASE_DOWN;

    } else if (l->owed < in->ahead && l->headroom > in->reserve) {

        /*
         * no lease, but Redis said there is plenty left: admit now and
         * charge Redis right after, instead of making the request wait
         */

        l->owed++;
        l->headroom--;
        l->spent++;
        out->remaining = l->headroom;
        out->rc = CG_LEASE_AHEAD;
        fetch = !active;

    } else if (l->headroom == 0 && l->granted
               && now - l->granted < cg_lease_limit_ms(l, in))
    {
        /*
         * the client is at its limit (the last lease took what Redis had
         * left): reject at once while Redis is asked for what frees up,
         * instead of making the request wait for the answer
         */

        out->retry = 1;
        out->rc = CG_LEASE_REJECT;
        fetch = !active;

    } else {
        out->rc = CG_LEASE_WAIT;
        fetch = !active;
    }

    if (!fetch || !in->ready) {
        return out->rc;
    }

    est = cg_lease_size(l, in);

    cg_lease_fetch(l, est, now, out);

    return out->rc;
}


int
cg_lease_answer(cg_lease_t *l, const cg_lease_answer_t *a, cg_lease_out_t *out)
{
    int       i, failed;
    int64_t   granted, binding, headroom, retry, cover;
    uint32_t  now;

    out->want = 0;
    out->owed = 0;
    out->started = 0;
    out->back = 0;
    out->back_at = 0;

    if (l->fetching != a->started || l->qhash != a->qhash) {
        /* taken for another quota, or by another fetch since */
        return 0;
    }

    now = a->now;
    failed = (a->granted == CG_LEASE_KEYS_FAILED);
    granted = a->granted;
    retry = a->retry;

    if (granted < 0) {
        granted = -1;
        retry = 0;
        binding = 0;
        headroom = 1;    /* not said: neither plenty nor nothing */

    } else {
        binding = a->binding - 1;

        if (binding < 0 || binding >= (int64_t) a->nlimits) {
            binding = 0;
        }

        headroom = cg_max(a->headroom, 0);
        headroom = cg_min(headroom, (int64_t) UINT32_MAX);
    }

    l->fetching = 0;
    l->binding = (uint16_t) binding;

    if (failed) {
        l->failed = cg_lease_stamp(now + 1000);
    }

    if (granted < 0) {
        /* no answer: what was admitted ahead is charged next time */
        l->owed = (uint16_t) cg_min(l->owed + a->owed, 0xffff);
        granted = 0;

    } else {
        l->headroom = (uint32_t) headroom;
        l->said = cg_lease_stamp(now);

        for (i = 0; i < CG_MAX_LIMITS; i++) {
            l->rest[i] = (uint32_t) cg_min(cg_max(a->rest[i], 0),
                                           (int64_t) UINT32_MAX);
        }
    }

    /*
     * the units admitted ahead are paid first: those this fetch was for,
     * then those admitted while it was in flight; what Redis could not
     * cover was admitted over the quota (docs/redis.md)
     */

    cover = cg_min(granted, (int64_t) a->owed);
    granted -= cover;

    cover = cg_min(granted, (int64_t) l->owed);
    l->owed -= (uint16_t) cover;
    granted -= cover;

    if (granted > 0) {
        cg_lease_expire(l, now);

        /*
         * small by what it adds (what is left of the last one comes
         * along): a small lease refilled ahead of time stays small
         */

        l->left += (uint32_t) granted;
        l->granted = cg_lease_stamp(now);
        l->expires = now + (granted <= (int64_t) a->ahead ? a->ttl_small
                                                          : a->ttl);
        l->denied = 0;

    } else if (a->granted == 0) {
        l->denied = cg_lease_stamp(now + (uint32_t) cg_max(retry, 1));
    }

    /* not into a Redis that fails: the next request's fetch charges */

    if (l->owed == 0 || failed || !a->ready) {
        return 0;
    }

    /* admitted ahead while this fetch was in flight: charge now */

    cg_lease_fetch(l, 0, now, out);

    return 1;
}


void
cg_lease_unsent(cg_lease_t *l, const cg_lease_out_t *fetch)
{
    if (l->fetching != fetch->started) {
        return;
    }

    l->fetching = 0;
    l->owed = (uint16_t) cg_min(l->owed + fetch->owed, 0xffff);

    if (l->back == 0) {
        l->back = fetch->back;
        l->back_at = fetch->back_at;
    }
}


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


int
cg_lease_remaining(const cg_lease_t *l, uint32_t i, const cg_limit_t *lim,
    uint32_t now, int64_t now_ms, uint64_t *remaining)
{
    uint64_t  cap, r;
    uint32_t  elapsed;

    if (l->said == 0 || i >= CG_MAX_LIMITS || lim->period == 0) {
        return 0;
    }

    cap = (lim->type == CG_LIMIT_RATE) ? lim->burst + 1 : lim->count;
    elapsed = now - l->said;
    r = l->rest[i];

    if (lim->type == CG_LIMIT_RATE) {
        /* tokens come back at count per period */
        r += (uint64_t) elapsed * lim->count / lim->period;

    } else if ((int64_t) elapsed > now_ms % lim->period) {
        /* a window that began since */
        r = cap;
    }

    /*
     * held unspent, or expired and given back by the next fetch; less what
     * was admitted ahead and not charged yet
     */

    r += (uint64_t) l->left + l->back;
    r = (r > l->owed) ? r - l->owed : 0;

    *remaining = cg_min(r, cap);

    return 1;
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
