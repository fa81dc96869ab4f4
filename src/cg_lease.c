
/*
 * Copyright (C) client guard authors
 *
 * The allowance lease arithmetic: take, answer.  See cg_lease.h and
 * docs/redis.md.
 */


#include "cg_lease.h"


#define cg_lease_stamp(t)          ((uint32_t) (t) ? (uint32_t) (t) : 1)
#define cg_lease_ahead_of(t, now)  ((t) && (int32_t) ((t) - (now)) > 0)

#define cg_min(a, b)               ((a) < (b) ? (a) : (b))
#define cg_max(a, b)               ((a) > (b) ? (a) : (b))

/* the clock in us, low 32 bits (paced times) */
#define cg_lease_us(ms)            ((uint32_t) ((uint32_t) (ms) * 1000u))

/* a count into 16 bits */
#define cg_lease_u16(n)            ((uint16_t) cg_min((n), 0xffff))



/*
 * The client is at its rate: Redis's last answer left nothing to grant at
 * once (of the limit that binds), and the client asks this node for 7/8
 * of its share of the rate (by the live nodes) or more (l->rate counts
 * the requests the lease decided, the rejected ones too: a node that its
 * share starves is still seen at its rate); its leases are then its
 * share, granted ahead and paced.  A node under that whose lease took the
 * last units of a small burst (as leases grow back after a Redis event,
 * or when a client under its rate sends a few requests at once) is not: a
 * share reserved ahead of time there would push the units of the other
 * nodes into the future, and pacing would reject the client's bursts
 * while it is under its rate.  A rate of a unit a second or slower (in->
 * free_ms, the binding rate's interval, of 1000 or more, or 0: a window)
 * goes by Redis's answer alone.
 */

static int
cg_lease_at_rate(const cg_lease_t *l, const cg_lease_in_t *in)
{
    if (in->share == 0 || l->said == 0 || l->headroom != 0) {
        return 0;
    }

    if (in->free_ms == 0 || in->free_ms >= 1000) {
        return 1;
    }

    return 8 * (uint64_t) l->rate * cg_max(in->nodes, 1) * in->free_ms
           >= 7000;
}


/*
 * Whether this node spends a lease taken ahead of time before it expires.
 * Under 2 r/s it would mostly not: its units would be lost to a window.
 * Under a rate, a lease (but a small one) lives 2 x lease_ms, and one
 * taken by a node that sees fewer than 2 requests in that time holds units
 * of the burst unspent until the node's next request gives them back: a
 * client under its rate whose requests come a few at once (two to each
 * node every 500 ms, or every 320 ms, at rate=16r/s burst=4: a request
 * per 250 or 160 ms on average, but they come in pairs) would find the other
 * nodes' leases holding what its burst needs.  Such a node asks when a
 * request comes.
 */

static int
cg_lease_spends(const cg_lease_t *l, const cg_lease_in_t *in)
{
    uint64_t  life;

    if (in->share == 0 || (l->flags & CG_LEASE_LONG_HELD)) {
        return l->left > 0 || l->rate >= 2;
    }

    life = (in->ahead && l->want <= in->ahead) ? 1000
                                                : 2 * (uint64_t) in->lease_ms;

    return (uint64_t) l->rate * life >= 2000 && (l->left > 0 || l->rate >= 2);
}


/*
 * A long lease before Redis said what is left: for windows (Redis caps the
 * grant by what is left); under a rate, only for a client far below its
 * node's share of the rate (a CG_LEASE_FAR-th of it, in->far being 2
 * leases of that share): one that comes at the rate or over it is given
 * ordinary leases until its pace is known.
 */

static int
cg_lease_far_first(const cg_lease_t *l, const cg_lease_in_t *in)
{
    uint64_t  r;

    if (in->share == 0) {
        return 1;
    }

    r = (uint64_t) l->spent * 1000 / cg_max(in->now - l->since, 1);
    r = cg_max(r, l->rate);

    return r * CG_LEASE_FAR * 2 * in->lease_ms <= (uint64_t) in->far * 1000;
}


/*
 * The size of the next lease: about "lease_ms" of this node's traffic,
 * from the rate seen since the last estimate.  The rate is measured over
 * 20 ms at least, and over a lease's time unless CG_LEASE_RATE_UNITS
 * requests came: a few requests close together are no rate (2 of them 25
 * ms apart read 40 r/s, and a client at 4 r/s was taken for one at its
 * rate, paced and rejected); a client that speeds up is seen as soon, its
 * leases growing meanwhile as they run dry.
 */

#define CG_LEASE_RATE_UNITS  8

static uint32_t
cg_lease_size(cg_lease_t *l, const cg_lease_in_t *in, int rate,
    uint32_t *far)
{
    uint32_t  elapsed, r, est, lg, div, least;

    elapsed = in->now - l->since;
    least = cg_max(in->lease_ms, 20);

    if (elapsed >= 20
        && (elapsed >= least || l->spent >= CG_LEASE_RATE_UNITS))
    {
        r = (uint32_t) cg_min((uint64_t) l->spent * 1000 / elapsed, 0xffff);
        l->rate = (uint16_t) (l->rate ? (l->rate + r) / 2 : r);
        l->spent = 0;
        l->since = in->now;
    }

    if (rate) {
        /* at its rate: this node's share, granted ahead and paced */
        return in->share > l->left ? in->share - l->left : 0;
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

    if (in->far && (l->said || cg_lease_far_first(l, in))) {

        /*
         * no quota of its own and far below it: up to CG_LEASE_LONG of
         * its traffic, at most a CG_LEASE_FAR-th of what is left per
         * node (as Redis said last, or of the smallest limit before it
         * said; Redis caps the grant so too, which lets the first fetch,
         * the charge of the units admitted ahead, be a long one); what
         * it leaves unspent goes back with the next fetch
         */

        div = CG_LEASE_FAR * cg_max(in->nodes, 1);

        lg = (uint32_t) cg_min((uint64_t) cg_max(l->rate, 1) * CG_LEASE_LONG
                               / 1000, CG_LEASE_WANT_MAX);
        lg = cg_max(lg, in->ahead);
        lg = cg_min(lg, in->far);

        /* before Redis said what is left: of the smallest limit */
        lg = cg_min(lg, (l->said ? l->headroom : in->least) / div);

        if (lg > est && lg > in->ahead) {
            *far = div;
            return lg;
        }
    }

    return est;
}


/*
 * How long a lease that took what Redis had left says "at its limit": a
 * second; but a rate frees a unit per interval (in->free_ms), and a node
 * that sees under half the rate (as its leases grow back after a Redis
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
        l->back = cg_lease_u16((uint32_t) l->back + l->left);
        l->left = 0;
        l->later = 0;
        l->step = 0;
    }
}


/* a paced lease: "n" units further on its schedule */

static void
cg_lease_pace(cg_lease_t *l, uint64_t n)
{
    l->next += (uint32_t) (n * l->step);
}


/* the last lease's units spent: the next one's are the lease now */

static void
cg_lease_segment(cg_lease_t *l)
{
    if (l->later && l->left <= l->later) {
        l->left = l->later;
        l->next = l->later_at;
        l->later = 0;
    }
}


/*
 * A paced lease: the units whose time passed more than "hold" ms ago were
 * not spent in time (the rate holds only for units spent soon after the
 * GCRA let them through): expired, and given back.
 */

static void
cg_lease_pace_expire(cg_lease_t *l, uint32_t now, uint32_t hold)
{
    int64_t   late;
    uint64_t  skip;

    cg_lease_segment(l);

    if (l->step == 0 || l->left <= l->later) {
        return;
    }

    late = (int64_t) (int32_t) (cg_lease_us(now) - l->next)
           - (int64_t) hold * 1000;

    if (late <= 0) {
        return;
    }

    skip = ((uint64_t) late + l->step - 1) / l->step;
    skip = cg_min(skip, (uint64_t) (l->left - l->later));

    cg_lease_pace(l, skip);

    l->back = cg_lease_u16(l->back + skip);
    l->left -= (uint32_t) skip;

    cg_lease_segment(l);
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
    out->back_at = l->granted;

    l->owed = 0;
    l->back = 0;
    l->want = cg_lease_u16(out->want);
    l->fetching = out->started;
}


int
cg_lease_take(cg_lease_t *l, const cg_lease_in_t *in, cg_lease_out_t *out)
{
    int       fetch, active, rate;
    uint32_t  now, est, far;

    now = in->now;

    out->want = 0;
    out->owed = 0;
    out->started = 0;
    out->back = 0;
    out->back_at = 0;
    out->paced = 0;
    out->far = 0;
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
        l->said = 0;
        l->step = 0;
        l->later = 0;
        l->flags = 0;
    }

    cg_lease_expire(l, now);
    cg_lease_pace_expire(l, now, 2 * in->lease_ms);

    if (l->since == 0) {
        l->since = now;
    }

    out->binding = l->binding;

    active = l->fetching
             && (int32_t) (now - l->fetching) < (int32_t) (2 * in->timeout_ms);
    rate = cg_lease_at_rate(l, in);
    fetch = 0;

    if (l->left && l->step && (int32_t) (cg_lease_us(now) - l->next) < 0) {

        /*
         * a paced lease whose next unit is not due yet: rejected until
         * then; the rejection itself asks Redis for nothing
         */

        out->retry = (l->next - cg_lease_us(now) + 999) / 1000;
        out->remaining = l->headroom;
        out->rc = CG_LEASE_REJECT;
        l->spent++;                  /* asked for: the rate */

        fetch = rate && l->left <= in->share / 4 && !active
                && !cg_lease_ahead_of(l->denied, now);

    } else if (l->left) {
        l->left--;
        l->spent++;

        if (l->step) {
            cg_lease_pace(l, 1);
        }

        cg_lease_segment(l);

        /* the cluster's view: Redis's last word plus this node's lease */
        out->remaining = (uint64_t) l->left + l->headroom;
        out->rc = CG_LEASE_PASS;

        if (rate) {
            /* at its rate: the next share when a quarter is left */
            fetch = l->left <= in->share / 4 && !active
                    && !cg_lease_ahead_of(l->denied, now);

        } else {

            /*
             * the next lease ahead of time, unless the client is so slow
             * that a lease would mostly expire unspent (cg_lease_spends())
             */

            fetch = l->left <= l->want / ((l->flags & CG_LEASE_LONG_HELD)
                                          ? 8 : 2)
                    && !active && cg_lease_spends(l, in);
        }

    } else if (cg_lease_ahead_of(l->denied, now)
               && !(l->flags & CG_LEASE_FAILED))
    {
        out->retry = l->denied - now;
        out->rc = CG_LEASE_REJECT;
        l->spent++;                  /* asked for: the rate */

    } else if (!in->ready || in->broken || cg_lease_ahead_of(l->denied, now)) {

        /*
         * the circuit breaker is open, or Redis fails on this client's
         * keys: the failure policy decides
         */

        out->rc = CG_LEASE_DOWN;

    } else if (in->local && l->said == 0 && l->owed < in->ahead) {

        /*
         * a client with no quota of its own, far from the default (the
         * "ahead" units are at most 1% of every limit), that Redis has
         * not been asked about yet: counted here until it sent "ahead"
         * requests, then charged; a name seen a few times costs Redis
         * nothing, and makes no key
         */

        l->owed++;
        l->spent++;
        out->remaining = in->least > l->owed ? in->least - l->owed : 0;
        out->rc = CG_LEASE_AHEAD;
        fetch = l->owed >= in->ahead && !active;

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
         * instead of making the request wait for the answer (one fetch
         * in flight at a time, whatever the rejected traffic); until
         * Redis says, retry when the binding limit frees a unit: a
         * rate's interval; 0 for a window, whose end the caller knows
         * (this file has no clock)
         */

        out->retry = in->free_ms;
        out->rc = CG_LEASE_REJECT;
        l->spent++;                  /* asked for: the rate */
        fetch = !active;

    } else {
        out->rc = CG_LEASE_WAIT;
        fetch = !active;
    }

    if (!fetch || !in->ready) {
        return out->rc;
    }

    far = 0;
    est = cg_lease_size(l, in, rate, &far);

    if (est == 0 && l->owed == 0 && l->back == 0) {
        return out->rc;
    }

    cg_lease_fetch(l, est, now, out);

    out->paced = rate;
    out->far = far;

    return out->rc;
}


/*
 * Units granted ahead of time (a client at its rate): the first may be
 * spent "first" us after Redis ran the script, the last "last" us after,
 * and those between evenly: never before the GCRA lets each through (the
 * reply comes after the script ran: the node's clock is later).  What is
 * left of the last lease is spent first, on its own schedule; the new
 * units come next, each at its time (a third lease while two are held
 * joins the second on a schedule slowed down so that none of them is
 * early).  The lease expires "ttl" after its last unit is due, with the
 * window at the latest.
 */

#define CG_LEASE_SCHEDULE_MAX  3600000000LL       /* us */
#define CG_LEASE_GRANT_MAX     (1LL << 24)         /* units in one answer */


static void
cg_lease_schedule(cg_lease_t *l, const cg_lease_answer_t *a, uint32_t n)
{
    int64_t   first, last, paid, at, end, granted;
    uint64_t  step, s;

    /* Redis's times taken within an hour: no arithmetic overflows */

    first = cg_min(cg_max(a->first, 0), CG_LEASE_SCHEDULE_MAX);
    last = cg_min(cg_max(a->last, 0), CG_LEASE_SCHEDULE_MAX);

    granted = cg_min(a->granted, CG_LEASE_GRANT_MAX);
    step = 0;

    if (granted > 1 && last > first) {
        step = ((uint64_t) (last - first) + granted - 2)
               / (uint64_t) (granted - 1);
    }

    step = cg_min(step, (uint64_t) INT32_MAX);

    /* those paid for what was admitted ahead are the first ones */

    paid = cg_max(granted - (int64_t) n, 0);
    first += paid * (int64_t) step;

    if (first > 0 && step == 0) {
        /* one unit, later: paced all the same */
        step = 1;
    }

    if (l->left == 0) {
        l->next = cg_lease_us(a->now) + (uint32_t) first;
        l->step = (uint32_t) step;
        l->later = 0;

        end = first + (int64_t) (n - 1) * (int64_t) step;

    } else if (l->later == 0) {

        /*
         * after the units left, one step for both: never early; units
         * left of a lease that was not paced are due now (their "next"
         * was never set)
         */

        if (l->step == 0) {
            l->next = cg_lease_us(a->now);
        }

        l->later = cg_lease_u16(n);
        l->later_at = cg_lease_us(a->now) + (uint32_t) first;
        l->step = (uint32_t) cg_max(step, (uint64_t) l->step);

        end = first + (int64_t) (n - 1) * (int64_t) l->step;

    } else {
        at = cg_max((int64_t) (int32_t) (l->later_at - cg_lease_us(a->now)),
                    0);
        step = cg_max(step, (uint64_t) l->step);

        if (first > at) {
            s = ((uint64_t) (first - at) + l->later - 1) / l->later;
            step = cg_max(step, s);
        }

        step = cg_min(step, (uint64_t) INT32_MAX);

        l->later_at = cg_lease_us(a->now) + (uint32_t) at;
        l->step = (uint32_t) step;
        l->later = cg_lease_u16((uint32_t) l->later + n);

        end = at + (int64_t) (l->later - 1) * (int64_t) step;
    }

    end = (end + 999) / 1000 + a->ttl;
    end = cg_min(end, (int64_t) a->window);

    l->expires = a->now + (uint32_t) cg_max(end, 1);
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
    out->paced = 0;
    out->far = 0;

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
        binding = (a->binding >= 1 && a->binding <= (int64_t) a->nlimits)
                  ? a->binding - 1 : 0;

        headroom = cg_max(a->headroom, 0);
        headroom = cg_min(headroom, (int64_t) UINT32_MAX);
    }

    l->fetching = 0;
    l->binding = (uint8_t) binding;

    if (failed) {
        /* the failure policy for a second */
        l->denied = cg_lease_stamp(now + 1000);
        l->flags |= CG_LEASE_FAILED;
    }

    if (granted < 0) {
        /* no answer: what was admitted ahead is charged next time */
        l->owed = (uint16_t) cg_min(l->owed + a->owed, 0xffff);
        granted = 0;

    } else {
        /* no more than a lease can hold, whatever Redis says */
        granted = cg_min(granted, CG_LEASE_GRANT_MAX);

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

        /*
         * what is given back is given back as granted with the last
         * lease: a lease, or units to give back, from before the window
         * that began since are its own window's (gone with it)
         */

        if (l->granted && (int64_t) (uint32_t) (now - l->granted)
                          >= (int64_t) a->window_age)
        {
            l->back = 0;
            l->left = 0;
            l->later = 0;
        }

        cg_lease_expire(l, now);

        if (a->first > 0 || a->last > 0 || l->step || l->later) {
            cg_lease_schedule(l, a, (uint32_t) granted);

        } else {

            /*
             * small by what it adds (what is left of the last one comes
             * along): a small lease refilled ahead of time stays small
             */

            l->expires = now + (a->far ? a->ttl_far
                                : granted <= (int64_t) a->ahead ? a->ttl_small
                                : a->ttl);
        }

        if (a->far) {
            l->flags |= CG_LEASE_LONG_HELD;

        } else {
            l->flags &= ~CG_LEASE_LONG_HELD;
        }

        l->left += (uint32_t) granted;
        l->granted = cg_lease_stamp(now);
        l->denied = 0;
        l->flags &= ~CG_LEASE_FAILED;

    } else if (a->granted == 0) {

        /*
         * nothing: rejected until a unit frees up; at its rate, until a
         * quarter of the horizon did (at most a fetch per quarter); a
         * rate asked for what it had at once asks again for its share,
         * granted ahead of time, with the next request
         */

        if (a->horizon) {
            retry = cg_max(retry, (int64_t) (a->horizon / 4));

        } else if (a->rated) {
            retry = 1;
        }

        l->denied = cg_lease_stamp(now + (uint32_t) cg_max(retry, 1));
        l->flags &= ~CG_LEASE_FAILED;
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
        l->back = cg_lease_u16(fetch->back);
    }
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
