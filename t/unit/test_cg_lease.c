/*
 * Unit tests for src/cg_lease.c: taking units of a lease, sizing the next
 * one, Redis's answers, admitting ahead, expiry, the clock's wrap (linked
 * with src/cg_lease_terms.c, whose own tests are test_cg_lease_terms.c).
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "cg_lease.h"


#define T0  1790000000000LL     /* a wall clock time, ms */


static cg_quota_t
quota1(uint32_t type, uint64_t count, uint32_t period, uint64_t burst)
{
    cg_quota_t  q;

    memset(&q, 0, sizeof(q));
    q.nlimits = 1;
    q.limits[0].type = type;
    q.limits[0].count = count;
    q.limits[0].period = period;
    q.limits[0].burst = burst;

    return q;
}


/* the settings of a take: ahead=8, a lease of 100 ms, timeout 100 ms */

static cg_lease_in_t
in_for(const cg_quota_t *q, uint32_t now)
{
    cg_lease_in_t  in;

    memset(&in, 0, sizeof(in));
    in.now = now;
    in.qhash = cg_lease_quota_hash(q);
    in.ahead = cg_lease_ahead(q, 8, &in.reserve);
    in.lease_ms = 100;
    in.timeout_ms = 100;
    in.ready = 1;

    return in;
}


/* Redis grants "granted" with "headroom" left for the fetch "out" */

static int
answer(cg_lease_t *l, const cg_quota_t *q, const cg_lease_out_t *fetch,
    uint32_t now, int64_t granted, int64_t headroom, int64_t retry,
    cg_lease_out_t *next)
{
    cg_lease_answer_t  a;

    memset(&a, 0, sizeof(a));
    a.granted = granted;
    a.retry = retry;
    a.binding = 1;
    a.headroom = headroom;
    a.nlimits = q->nlimits;
    a.qhash = cg_lease_quota_hash(q);
    a.owed = fetch->owed;
    a.started = fetch->started;
    a.now = now;
    a.ahead = cg_lease_ahead(q, 8, NULL);
    a.ttl = cg_lease_ttl(q, T0, 100, 0);
    a.ttl_small = cg_lease_ttl(q, T0, 100, 1);
    a.window = cg_lease_window_left(q, T0);
    a.window_age = cg_lease_window_age(q, T0);
    a.ready = 1;

    return cg_lease_answer(l, &a, next);
}


static void
test_new_client(void **state)
{
    cg_quota_t      q = quota1(CG_LIMIT_RATE, 10000, 1000, 1000);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out, out2, next;

    memset(&l, 0, sizeof(l));

    /* no lease: wait, and a small lease ("ahead" units) is asked for */

    in = in_for(&q, 5000);
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_WAIT);
    assert_int_equal(out.want, 8);
    assert_int_equal(out.owed, 0);
    assert_int_equal(out.started, 5000);
    assert_int_equal(l.fetching, 5000);

    /* the fetch is in flight: nothing more asked for */

    in.now = 5001;
    assert_int_equal(cg_lease_take(&l, &in, &out2), CG_LEASE_WAIT);
    assert_int_equal(out2.want, 0);

    /* Redis grants the 8: one is spent at once, seven left */

    assert_int_equal(answer(&l, &q, &out, 5002, 8, 9000, 0, &next), 0);
    assert_int_equal(l.left, 8);
    assert_int_equal(l.fetching, 0);
    assert_int_equal(l.headroom, 9000);

    in.now = 5003;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
    assert_int_equal(l.left, 7);
    assert_int_equal(out.remaining, 7 + 9000);    /* the cluster's view */
}


/*
 * A client at 1000 r/s on this node: leases grow to about 100 ms of its
 * traffic (lease_ms), fetched ahead of time so that it never waits once
 * the first came.
 */

static void
test_grant_sizes(void **state)
{
    int             rc, waits;
    uint32_t        now, due, last_want;
    cg_quota_t      q = quota1(CG_LIMIT_RATE, 100000, 1000, 10000);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out, fetch, next;

    memset(&l, 0, sizeof(l));
    memset(&fetch, 0, sizeof(fetch));
    due = 0;
    waits = 0;
    last_want = 0;

    for (now = 1000; now < 3000; now++) {

        /* Redis answers each fetch 1 ms after it went out */

        if (due && now == due) {
            answer(&l, &q, &fetch, now, fetch.want, 50000, 0, &next);
            due = 0;
        }

        in = in_for(&q, now);
        rc = cg_lease_take(&l, &in, &out);

        if (out.want) {
            fetch = out;
            last_want = out.want;
            due = now + 1;
        }

        if (rc == CG_LEASE_WAIT) {
            waits++;
        }

        assert_true(rc == CG_LEASE_PASS || rc == CG_LEASE_WAIT
                    || rc == CG_LEASE_AHEAD);
    }

    /* only the very first requests waited (admitted ahead after that) */
    assert_in_range(waits, 1, 3);

    /* about 100 ms of 1000 r/s */
    assert_in_range(last_want, 60, 140);
    assert_in_range(l.rate, 800, 1200);
}


/* a client at 5 r/s: a lease of a second of its traffic, kept a second */

static void
test_small_lease(void **state)
{
    int             i;
    uint32_t        now;
    cg_quota_t      q = quota1(CG_LIMIT_RATE, 10000, 1000, 1000);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out, next;

    memset(&l, 0, sizeof(l));
    now = 10000;

    for (i = 0; i < 40; i++, now += 200) {
        in = in_for(&q, now);
        cg_lease_take(&l, &in, &out);

        if (out.want) {
            answer(&l, &q, &out, now, out.want, 9000, 0, &next);
        }
    }

    assert_in_range(l.rate, 3, 7);
    assert_in_range(l.want, 3, 8);

    /* small (<= ahead): it lasts a second, not two leases of 100 ms */

    assert_int_equal(cg_lease_ttl(&q, T0, 100, 1), 1000);
    assert_true((int32_t) (l.expires - now) > 200);
}


static void
test_expiry(void **state)
{
    cg_quota_t      q = quota1(CG_LIMIT_RATE, 10000, 1000, 1000);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out, next;

    memset(&l, 0, sizeof(l));

    in = in_for(&q, 1000);
    cg_lease_take(&l, &in, &out);
    answer(&l, &q, &out, 1000, 100, 0, 0, &next);   /* 200 ms to live */
    assert_int_equal(l.left, 100);
    assert_int_equal(l.expires, 1200);

    in.now = 1199;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);

    /*
     * expired: the units left are not spent, they go back to Redis with
     * the fetch that goes out now (with the time of their grant)
     */

    in.now = 1200;
    assert_int_not_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
    assert_int_equal(l.left, 0);
    assert_true(out.want > 0);
    assert_int_equal(out.back, 99);
    assert_int_equal(out.back_at, l.granted);      /* as granted last */
    assert_int_equal(l.back, 0);

    /* that fetch never leaves: to give back again, once */

    cg_lease_unsent(&l, &out);
    assert_int_equal(l.back, 99);
    cg_lease_unsent(&l, &out);
    assert_int_equal(l.back, 99);

    /* the next one carries them; an answer with a grant adds to none */

    in.now = 1201;
    cg_lease_take(&l, &in, &out);
    assert_int_equal(out.back, 99);
    answer(&l, &q, &out, 1202, 10, 50, 0, &next);
    assert_int_equal(l.left, 10);
    assert_int_equal(l.back, 0);
    assert_int_equal(next.back, 0);

    /* a lease expiring while a fetch is in flight: the answer's refill
       does not take its units, the next fetch gives them back */

    l.left = 9;
    l.expires = 1400;
    l.fetching = 1300;
    out.started = 1300;
    out.owed = 0;
    answer(&l, &q, &out, 1500, 20, 50, 0, &next);
    assert_int_equal(l.left, 20);
    assert_int_equal(l.back, 9);

    /* a window began since the last lease: its units are not given back */

    {
        cg_quota_t  w = quota1(CG_LIMIT_WINDOW, 1000, 60000, 0);

        memset(&l, 0, sizeof(l));
        in = in_for(&w, 1000);
        cg_lease_take(&l, &in, &out);
        answer(&l, &w, &out, 1000, 10, 500, 0, &next);
        l.back = 3;
        l.fetching = 1100;
        out.started = 1100;
        out.owed = 0;

        /* answered 25 s later: the window began 20 s ago (T0) */
        answer(&l, &w, &out, 1000 + 25000, 10, 500, 0, &next);
        assert_int_equal(l.left, 10);
        assert_int_equal(l.back, 0);
    }
}


static void
test_ahead_paid_first(void **state)
{
    int             i;
    cg_quota_t      q = quota1(CG_LIMIT_RATE, 10000, 1000, 1000);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out, fetch, next;

    memset(&l, 0, sizeof(l));

    in = in_for(&q, 1000);
    cg_lease_take(&l, &in, &fetch);
    answer(&l, &q, &fetch, 1000, 1, 5000, 0, &next);

    in.now = 1001;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);

    /* no lease, plenty left in Redis: admitted ahead, "ahead" at most */

    in.now = 1002;
    assert_int_equal(cg_lease_take(&l, &in, &fetch), CG_LEASE_AHEAD);
    assert_int_equal(fetch.owed, 1);
    assert_true(fetch.want >= 1);

    /* while its fetch is in flight, "ahead" more at most */

    for (i = 0; i < 8; i++) {
        assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_AHEAD);
        assert_int_equal(out.want, 0);            /* one fetch in flight */
    }

    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_WAIT);
    assert_int_equal(l.owed, 8);

    /* the answer pays the fetch's 1, then the 8 admitted meanwhile */

    answer(&l, &q, &fetch, 1003, fetch.want + 8, 5000, 0, &next);
    assert_int_equal(l.owed, 0);
    assert_int_equal(l.left, fetch.want - 1);

    /* Redis covers 4 of the 1 + 7: the other 4 are charged at once */

    memset(&l, 0, sizeof(l));
    in.now = 2000;
    cg_lease_take(&l, &in, &fetch);
    answer(&l, &q, &fetch, 2000, 1, 5000, 0, &next);
    cg_lease_take(&l, &in, &out);

    in.now = 2001;
    cg_lease_take(&l, &in, &fetch);
    for (i = 0; i < 7; i++) {
        cg_lease_take(&l, &in, &out);
    }

    assert_int_equal(answer(&l, &q, &fetch, 2002, 4, 5000, 0, &next), 1);
    assert_int_equal(next.want, 4);
    assert_int_equal(next.owed, 4);
    assert_int_equal(l.fetching, next.started);
    assert_int_equal(l.left, 0);
}


static void
test_denied_and_at_limit(void **state)
{
    cg_quota_t      q = quota1(CG_LIMIT_WINDOW, 1000, 60000, 0);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out, next;

    memset(&l, 0, sizeof(l));

    /* Redis has nothing left: rejected until it said a unit frees up */

    in = in_for(&q, 1000);
    cg_lease_take(&l, &in, &out);
    answer(&l, &q, &out, 1000, 0, 0, 300, &next);
    assert_int_equal(l.denied, 1300);

    in.now = 1100;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_REJECT);
    assert_int_equal(out.retry, 200);
    assert_int_equal(out.want, 0);

    /* then asked again */

    in.now = 1300;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_WAIT);
    assert_true(out.want > 0);

    /* the last lease took what was left: rejected at once, and fetched */

    answer(&l, &q, &out, 1301, 2, 0, 0, &next);
    in.now = 1302;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_REJECT);

    /* a window binds: "retry" 0, its end is the caller's (t/38) */
    assert_int_equal(out.retry, 0);

    /* a rate binds: its interval */
    l.fetching = 0;
    in.free_ms = 250;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_REJECT);
    assert_int_equal(out.retry, 250);
}


/*
 * A rate with a small burst, drained by the lease that took what was left
 * (as leases grow back after a Redis event): a node under half the rate
 * is rejected at once only until a unit freed up again (16 r/s: one every
 * 62 ms), then asks; a node at half the rate or more, for a second.
 */

static void
test_at_limit_rate_refills(void **state)
{
    cg_quota_t      q = quota1(CG_LIMIT_RATE, 16, 1000, 4);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out, next;

    memset(&l, 0, sizeof(l));

    in = in_for(&q, 1000);
    in.free_ms = 62;
    cg_lease_take(&l, &in, &out);
    answer(&l, &q, &out, 1001, 2, 0, 0, &next);

    in.now = 1002;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);

    in.now = 1040;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_REJECT);
    answer(&l, &q, &out, 1041, 0, 0, 21, &next);

    /* a unit is back, to a node at 4 r/s: it waits for it, not a 429 */

    l.rate = 4;
    in.now = 1300;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_WAIT);
    assert_true(out.want > 0);

    /* a node at half the rate or more is at its limit: a second */

    answer(&l, &q, &out, 1301, 1, 0, 0, &next);
    l.rate = 10;
    in.now = 1302;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
    in.now = 1500;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_REJECT);
}


/*
 * A lease that took the last units of a small burst (16 r/s, burst 4, 2
 * nodes: a share of 8) at a node well under its share of the rate (4 r/s,
 * as after a Redis event): the next fetch is not paced (a share granted
 * ahead would push the other node's units into the future, and reject its
 * requests while the client is under its rate); at its share, it is.
 */

static void
test_paced_under_share(void **state)
{
    int             i, fetched;
    uint16_t        rate;
    cg_quota_t      q = quota1(CG_LIMIT_RATE, 16, 1000, 4);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out, next;

    for (rate = 4; rate <= 8; rate += 4) {
        memset(&l, 0, sizeof(l));

        in = in_for(&q, 1000);
        in.free_ms = 62;
        in.nodes = 2;
        in.share = cg_lease_share(&q, 1000, 2);
        assert_int_equal(in.share, 8);

        assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_WAIT);
        answer(&l, &q, &out, 1001, 4, 0, 0, &next);

        l.rate = rate;
        in.now = 1002;
        fetched = 0;

        for (i = 0; i < 4; i++) {
            assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);

            if (out.want) {
                fetched = 1;
                assert_int_equal(out.paced, rate == 8);
                l.fetching = 0;
            }
        }

        /*
         * at 4 r/s a lease taken ahead would mostly expire unspent (less
         * than a request in its 200 ms): nothing asked for ahead; the next
         * request asks, and not for a paced share
         */

        assert_int_equal(fetched, rate == 8);

        if (rate == 4) {
            in.now = 1300;
            assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_WAIT);
            assert_true(out.want > 0);
            assert_int_equal(out.paced, 0);
        }
    }
}


static void
test_down(void **state)
{
    cg_quota_t      q = quota1(CG_LIMIT_RATE, 10000, 1000, 1000);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out, next;

    memset(&l, 0, sizeof(l));

    in = in_for(&q, 1000);
    in.ready = 0;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_DOWN);
    assert_int_equal(out.want, 0);

    in.ready = 1;
    in.broken = 1;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_DOWN);

    /* keys that fail: the policy for a second, what was owed kept */

    in.broken = 0;
    cg_lease_take(&l, &in, &out);
    assert_int_equal(answer(&l, &q, &out, 1000, CG_LEASE_KEYS_FAILED, 0, 0,
                            &next), 0);
    in.now = 1999;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_DOWN);
    in.now = 2000;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_WAIT);

    /* no answer: the fetch's owed units are charged again at once */

    memset(&l, 0, sizeof(l));
    in.now = 3000;
    cg_lease_take(&l, &in, &out);
    out.owed = 3;
    assert_int_equal(answer(&l, &q, &out, 3001, CG_LEASE_NO_ANSWER, 0, 0,
                            &next), 1);
    assert_int_equal(next.want, 3);
    assert_int_equal(next.owed, 3);
    assert_int_equal(l.fetching, next.started);

    /* that charge never leaves: owed again, nobody fetching */

    cg_lease_unsent(&l, &next);
    assert_int_equal(l.fetching, 0);
    assert_int_equal(l.owed, 3);
}


static void
test_quota_change(void **state)
{
    cg_quota_t      q = quota1(CG_LIMIT_RATE, 10000, 1000, 1000);
    cg_quota_t      q2 = quota1(CG_LIMIT_RATE, 20000, 1000, 1000);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out, old, next;

    assert_int_not_equal(cg_lease_quota_hash(&q), cg_lease_quota_hash(&q2));
    assert_int_not_equal(cg_lease_quota_hash(&q), 0);

    memset(&l, 0, sizeof(l));
    in = in_for(&q, 1000);
    cg_lease_take(&l, &in, &old);
    answer(&l, &q, &old, 1000, 50, 0, 0, &next);
    cg_lease_take(&l, &in, &old);

    /* another quota: the lease is void, the fetch for the old one too */

    in = in_for(&q2, 1001);
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_WAIT);
    assert_int_equal(l.left, 0);
    assert_int_equal(answer(&l, &q, &old, 1002, 50, 0, 0, &next), 0);
    assert_int_equal(l.left, 0);
    assert_int_equal(l.fetching, out.started);
}


/* the clock's low 32 bits wrap; 0 is never a stamp */

static void
test_clock_wrap(void **state)
{
    cg_quota_t      q = quota1(CG_LIMIT_RATE, 10000, 1000, 1000);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out, next;

    /* after 24.8 days of uptime, an unset "denied" rejects nothing */

    memset(&l, 0, sizeof(l));
    in = in_for(&q, 0x80000010u);
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_WAIT);

    /* a fetch at clock 0 is stamped 1 */

    memset(&l, 0, sizeof(l));
    in.now = 0;
    cg_lease_take(&l, &in, &out);
    assert_int_equal(out.started, 1);
    assert_int_equal(l.fetching, 1);

    /* a lease across the wrap stays usable until it expires */

    answer(&l, &q, &out, 0xfffffff0u, 20, 0, 0, &next);
    assert_int_equal(l.expires, (uint32_t) (0xfffffff0u + 200));
    in.now = 0x00000010u;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
    in.now = 0x000000c0u;
    assert_int_not_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
}


/* what a limit has left in the cluster: Redis's word, refilled, + ours */

static void
test_remaining(void **state)
{
    uint64_t           r;
    cg_quota_t         q = quota1(CG_LIMIT_RATE, 100, 1000, 19);
    cg_lease_t         l;
    cg_lease_in_t      in;
    cg_lease_out_t     out, next;
    cg_lease_answer_t  a;

    memset(&l, 0, sizeof(l));
    assert_int_equal(cg_lease_remaining(&l, 0, &q.limits[0], 1000, T0, &r),
                     0);

    in = in_for(&q, 1000);
    cg_lease_take(&l, &in, &out);

    memset(&a, 0, sizeof(a));
    a.granted = 5;
    a.binding = 1;
    a.headroom = 12;
    a.rest[0] = 12;
    a.nlimits = 1;
    a.qhash = in.qhash;
    a.started = out.started;
    a.now = 1000;
    a.ttl = 200;
    a.ttl_small = 1000;
    cg_lease_answer(&l, &a, &next);

    /* 12 in Redis, 5 here unspent */

    assert_int_equal(cg_lease_remaining(&l, 0, &q.limits[0], 1000, T0, &r),
                     1);
    assert_int_equal(r, 17);

    /* 50 ms later, 5 tokens back (100 r/s); at most the capacity, 20 */

    cg_lease_remaining(&l, 0, &q.limits[0], 1050, T0, &r);
    assert_int_equal(r, 20);

    /* the lease expired: Redis's word, refilled, and what goes back */

    cg_lease_remaining(&l, 0, &q.limits[0], 1200, T0, &r);
    assert_int_equal(r, 20);

    l.rest[0] = 0;
    cg_lease_remaining(&l, 0, &q.limits[0], 1200, T0, &r);
    assert_int_equal(r, 20);           /* 5 held + 20 tokens back */
    l.back = 3;
    l.left = 0;
    l.said = 1200;
    cg_lease_remaining(&l, 0, &q.limits[0], 1200, T0, &r);
    assert_int_equal(r, 3);

    /* admitted ahead, not charged yet: used already */

    l.owed = 2;
    cg_lease_remaining(&l, 0, &q.limits[0], 1200, T0, &r);
    assert_int_equal(r, 1);
    l.owed = 5;
    cg_lease_remaining(&l, 0, &q.limits[0], 1200, T0, &r);
    assert_int_equal(r, 0);
    l.owed = 0;
    l.back = 0;

    /* a window: full again once a new one began */

    q = quota1(CG_LIMIT_WINDOW, 1000, 60000, 0);
    l.rest[0] = 100;
    l.left = 0;
    cg_lease_remaining(&l, 0, &q.limits[0], 1000 + 500, 60000 * 7 + 9000,
                       &r);
    assert_int_equal(r, 100);
    cg_lease_remaining(&l, 0, &q.limits[0], 1000 + 9500, 60000 * 7 + 9000,
                       &r);
    assert_int_equal(r, 1000);
}


/*
 * A client with no quota of its own is counted on the node until it sent
 * "ahead" requests: no fetch before, then one that charges them all.
 */

static void
test_local_phase(void **state)
{
    int             i;
    cg_quota_t      q = quota1(CG_LIMIT_WINDOW, 1000000, 86400000, 0);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out, next;

    memset(&l, 0, sizeof(l));

    in = in_for(&q, 1000);
    in.local = 1;
    in.least = 1000000;

    for (i = 1; i < 8; i++) {
        in.now = 1000 + i * 100;
        assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_AHEAD);
        assert_int_equal(out.want, 0);
        assert_int_equal(out.remaining, 1000000 - i);
    }

    /* the eighth: charged, with a lease */

    in.now = 2000;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_AHEAD);
    assert_int_equal(out.owed, 8);
    assert_true(out.want > 8);

    /* Redis answered: no more local phase, a lease as any client's */

    answer(&l, &q, &out, 2001, out.want, 900000, 0, &next);
    assert_int_equal(l.owed, 0);
    assert_true(l.left > 0);
    in.now = 2002;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);

    /* Redis down: the policy, not the local phase */

    memset(&l, 0, sizeof(l));
    in.ready = 0;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_DOWN);

    /* a quota of its own, or one that "ahead" is 0 for: as before */

    in.ready = 1;
    in.local = 0;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_WAIT);

    q = quota1(CG_LIMIT_WINDOW, 100, 60000, 0);
    memset(&l, 0, sizeof(l));
    in = in_for(&q, 1000);
    in.local = 1;
    assert_int_equal(in.ahead, 1);
    cg_lease_take(&l, &in, &out);
    assert_int_equal(out.owed, 1);    /* charged at once */
}


/*
 * A client with no quota of its own far below it: once Redis said how far,
 * a lease covers up to 30 s of its traffic (a 16th of what is left per
 * node at most) and lives a minute; with a rate, no more than an ordinary
 * lease may hold.
 */

/*
 * The first fetch of a new client without a quota of its own (the charge
 * of what it was admitted ahead) at one request per "step" ms on one of
 * "nodes" nodes: the divisor of its long lease, 0 for an ordinary one.
 */

static uint32_t
first_far(cg_quota_t q, uint32_t nodes, uint32_t step)
{
    uint32_t        t;
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out;

    memset(&l, 0, sizeof(l));
    memset(&out, 0, sizeof(out));
    in = in_for(&q, 1000);
    in.local = 1;
    in.nodes = nodes;
    in.least = (uint32_t) q.limits[0].count;
    in.share = cg_lease_share(&q, 10 * 100, nodes);
    in.far = cg_lease_far(&q, 100, nodes);

    for (t = 1000; out.want == 0 || t == 1000; t += step) {
        in.now = t;
        cg_lease_take(&l, &in, &out);
    }

    assert_true(out.owed > 0);

    return out.far;
}


static void
test_far(void **state)
{
    uint32_t           now, want, n;
    cg_quota_t         q = quota1(CG_LIMIT_WINDOW, 1000000, 86400000, 0);
    cg_lease_t         l;
    cg_lease_in_t      in;
    cg_lease_out_t     out, next;
    cg_lease_answer_t  a;

    /*
     * 4 r/s: 8 requests counted on the node, then charged with a long
     * lease at once (30 s of 4 r/s; Redis caps it at a 16th of what is
     * left per node, 2 nodes: the divisor goes with the fetch)
     */

    memset(&l, 0, sizeof(l));
    memset(&out, 0, sizeof(out));
    in = in_for(&q, 1000);
    in.local = 1;
    in.nodes = 2;
    in.far = cg_lease_far(&q, 100, 2);
    in.least = 1000000;

    for (now = 1000; out.want == 0 || now == 1000; now += 250) {
        in.now = now;
        cg_lease_take(&l, &in, &out);
    }

    assert_int_equal(out.owed, 8);
    assert_int_equal(out.far, 16 * 2);
    assert_in_range(out.want, 8 + 90, 8 + 130);

    memset(&a, 0, sizeof(a));
    a.granted = out.want;
    a.binding = 1;
    a.headroom = 800000;
    a.nlimits = 1;
    a.qhash = cg_lease_quota_hash(&q);
    a.owed = out.owed;
    a.started = out.started;
    a.now = now;
    a.ahead = 8;
    a.ttl = 1000;
    a.ttl_small = 1000;
    a.ttl_far = 60000;
    a.far = 1;
    a.window = UINT32_MAX;
    a.window_age = UINT32_MAX;
    a.ready = 1;
    cg_lease_answer(&l, &a, &next);
    assert_int_equal(l.expires, now + 60000);
    assert_true(l.flags & CG_LEASE_LONG_HELD);

    /* spent down to an eighth before it is asked for again, long again */

    want = l.want;
    n = 0;
    memset(&out, 0, sizeof(out));

    while (out.want == 0 && n < 1000) {
        now += 250;
        in.now = now;
        cg_lease_take(&l, &in, &out);
        n++;
    }

    assert_true(l.left <= want / 8);
    assert_true(l.left + 1 >= want / 8);
    assert_int_equal(out.far, 16 * 2);

    /* near what is left: no long lease */

    l.headroom = 16 * 2 * 20;
    l.left = 0;
    l.want = 0;
    l.fetching = 0;
    in.now = now + 10;
    cg_lease_take(&l, &in, &out);
    assert_int_equal(out.far, 16 * 2);
    assert_int_equal(out.want, 20);
    l.headroom = 16 * 2 * 8;
    l.fetching = 0;
    l.left = 0;
    cg_lease_take(&l, &in, &out);
    assert_int_equal(out.far, 0);

    /*
     * before Redis said what is left, a quota too small for it (a 16th
     * per node of its smallest limit under a long lease): an ordinary one
     */

    {
        uint32_t        t;
        cg_lease_t      fresh;
        cg_lease_out_t  fo;

        memset(&fresh, 0, sizeof(fresh));
        in.least = 16 * 2 * 8;
        for (t = 1000; t < 1000 + 8 * 250; t += 250) {
            in.now = t;
            cg_lease_take(&fresh, &in, &fo);
        }
        assert_int_equal(fo.owed, 8);
        assert_int_equal(fo.far, 0);
        in.least = 1000000;
        in.now = now + 10;
    }

    /*
     * under a rate, before Redis said: long for a client far below its
     * node's share of the rate, ordinary for one that comes at the rate
     */

    assert_int_equal(first_far(quota1(CG_LIMIT_RATE, 1000000, 1000, 1000000),
                               3, 800), 16 * 3);
    assert_int_equal(first_far(quota1(CG_LIMIT_RATE, 500, 1000, 50), 4, 3),
                     0);

    /* an ordinary lease answered: no longer a long one held */

    a.far = 0;
    a.granted = out.want;
    a.owed = out.owed;
    a.started = out.started;
    cg_lease_answer(&l, &a, &next);
    assert_false(l.flags & CG_LEASE_LONG_HELD);

    /* a quota of its own: never */

    in.far = 0;
    l.headroom = 900000;
    l.fetching = 0;
    l.left = 0;
    cg_lease_take(&l, &in, &out);
    assert_int_equal(out.far, 0);
}


/* a paced answer: "granted" units from "first" to "last" us after "now" */

static void
answer_paced(cg_lease_t *l, const cg_quota_t *q, const cg_lease_out_t *fetch,
    uint32_t now, int64_t granted, int64_t first, int64_t last,
    int64_t retry)
{
    cg_lease_out_t     next;
    cg_lease_answer_t  a;

    memset(&a, 0, sizeof(a));
    a.granted = granted;
    a.retry = retry;
    a.binding = 1;
    a.headroom = 0;
    a.first = first;
    a.last = last;
    a.nlimits = q->nlimits;
    a.qhash = cg_lease_quota_hash(q);
    a.owed = fetch->owed;
    a.started = fetch->started;
    a.now = now;
    a.ahead = cg_lease_ahead(q, 8, NULL);
    a.ttl = cg_lease_ttl(q, T0, 100, 0);
    a.ttl_small = cg_lease_ttl(q, T0, 100, 1);
    a.window = cg_lease_window_left(q, T0);
    a.window_age = cg_lease_window_age(q, T0);
    a.horizon = fetch->paced ? 1000 : 0;
    a.ready = 1;

    cg_lease_answer(l, &a, &next);
}


/*
 * At its rate: the node asks for its share, granted ahead of time, and
 * spends it paced; a request before the next unit is due is rejected and
 * asks Redis nothing; units not spent in time expire and go back.
 */

static void
test_paced(void **state)
{
    int             i, fetches;
    cg_quota_t      q = quota1(CG_LIMIT_RATE, 500, 1000, 50);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out;

    memset(&l, 0, sizeof(l));

    /* the last lease took all there was */

    in = in_for(&q, 1000);
    in.share = cg_lease_share(&q, 1000, 4);
    cg_lease_take(&l, &in, &out);
    answer(&l, &q, &out, 1001, 51, 0, 0, &out);
    for (i = 0; i < 51; i++) {
        assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
    }

    /* (the fetch made at a quarter left is lost) */

    l.fetching = 0;

    /* empty at the limit: rejected, and its share asked for, paced */

    in.now = 1002;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_REJECT);
    assert_int_equal(out.want, 125);
    assert_int_equal(out.paced, 1);

    /* however many are rejected meanwhile: one fetch */

    for (i = 0; i < 50; i++) {
        assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_REJECT);
        assert_int_equal(out.want, 0);
    }

    /* granted from 2 ms on, a unit every 2 ms */

    cg_lease_take(&l, &in, &out);
    l.fetching = 0;
    in.now = 1003;
    cg_lease_take(&l, &in, &out);
    assert_int_equal(out.want, 125);
    answer_paced(&l, &q, &out, 1003, 125, 2000, 2000 + 124 * 2000, 0);
    assert_int_equal(l.left, 125);
    assert_int_equal(l.step, 2000);
    assert_int_equal(l.next, 1005 * 1000);

    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_REJECT);
    assert_int_equal(out.retry, 2);
    assert_int_equal(out.want, 0);

    in.now = 1005;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_REJECT);
    in.now = 1007;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);

    /* a quarter left: the next share; none before */

    fetches = 0;

    for (in.now = 1008; l.left > 32; in.now++) {
        cg_lease_take(&l, &in, &out);
        fetches += (out.want != 0);
    }

    assert_int_equal(fetches, 0);

    while (cg_lease_take(&l, &in, &out) != CG_LEASE_PASS) {
        assert_int_equal(out.want, 0);
        in.now++;
    }

    assert_int_equal(l.left, 31);
    assert_int_equal(out.want, 125 - 31);
    assert_int_equal(out.paced, 1);

    /* nobody came for 350 ms: what was due more than 200 ms ago expired */

    memset(&l, 0, sizeof(l));
    in = in_for(&q, 1000);
    in.share = 125;
    l.qhash = in.qhash;
    l.said = 1;
    l.headroom = 0;
    l.granted = 990;
    cg_lease_take(&l, &in, &out);
    answer_paced(&l, &q, &out, 1000, 125, 0, 124 * 2000, 0);
    in.now = 1350;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
    assert_int_equal(l.back, 75);            /* due at 0 .. 148 ms */
    assert_int_equal(l.left, 125 - 75 - 1);

    /* and all of it once its last unit is 200 ms late */

    in.now = 1000 + 248 + 200;
    cg_lease_take(&l, &in, &out);
    assert_int_equal(l.left, 0);
    assert_int_equal(out.back, 125 - 1);     /* with the next fetch */

    /* nothing granted at the limit: not asked again for a quarter of it */

    memset(&l, 0, sizeof(l));
    l.qhash = in.qhash;
    l.said = 1;
    l.granted = 1999;
    in.now = 2000;
    cg_lease_take(&l, &in, &out);
    assert_int_equal(out.paced, 1);
    answer_paced(&l, &q, &out, 2000, 0, 0, 0, 2);
    assert_int_equal(l.denied, 2250);
}


/* what is left of the last lease is spent first, and never early */

static void
test_paced_merge(void **state)
{
    cg_quota_t      q = quota1(CG_LIMIT_RATE, 500, 1000, 50);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out;

    memset(&l, 0, sizeof(l));
    in = in_for(&q, 1000);
    in.share = 40;
    l.qhash = in.qhash;
    l.said = 1;
    l.granted = 999;

    cg_lease_take(&l, &in, &out);
    answer_paced(&l, &q, &out, 1000, 40, 0, 39 * 2000, 0);

    /* 10 left, due 60 .. 78 ms; 30 more due from 300 ms */

    l.left = 10;
    l.next = 1060 * 1000;
    in.now = 1050;
    l.fetching = 0;
    cg_lease_take(&l, &in, &out);
    assert_true(out.want > 0);
    answer_paced(&l, &q, &out, 1050, 30, 250000, 250000 + 29 * 4000, 0);

    /* the old ones as before, then the new ones, each at its time */

    assert_int_equal(l.left, 40);
    assert_int_equal(l.next, 1060 * 1000);
    assert_int_equal(l.step, 4000);             /* one for both: the slower */
    assert_int_equal(l.later, 30);
    assert_int_equal(l.later_at, 1300 * 1000);
    assert_true((int32_t) (l.expires - 1050) >= 250 + 29 * 4 + 200);

    for (in.now = 1060; l.later; in.now += 4) {
        assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
    }

    assert_int_equal(in.now, 1100);
    assert_int_equal(l.left, 30);
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_REJECT);
    assert_int_equal(out.retry, 200);
    in.now = 1300;
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
    assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_REJECT);
}


/*
 * A paced share that comes while units of a lease that was not paced are
 * left: those are due at once, whatever the clock's low 32 bits in us (the
 * "next" of a lease never paced was not set: at clocks past 2^31 us in
 * them, the units left looked due 20 minutes on, and the client was
 * rejected with such a Retry-After; below that they were taken for late
 * and given back unspent).
 */

static void
test_paced_after_unpaced(void **state)
{
    uint32_t        k, now;
    cg_quota_t      q = quota1(CG_LIMIT_RATE, 500, 1000, 50);
    cg_lease_t      l;
    cg_lease_in_t   in;
    cg_lease_out_t  out, fetch;

    /* 3,000 s: 3e9 us, past 2^31; 1,000 s: 1e9, below */

    static const uint32_t  clocks[] = { 3000000, 1000000 };

    for (k = 0; k < 2; k++) {
        now = clocks[k];
        memset(&l, 0, sizeof(l));
        in = in_for(&q, now);
        in.share = cg_lease_share(&q, 1000, 2);
        in.free_ms = 2;

        assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_WAIT);
        answer(&l, &q, &out, now, 10, 40, 0, &fetch);
        assert_int_equal(l.step, 0);
        assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
        assert_int_equal(l.left, 9);

        /* a paced share joins them: 20 units from 100 ms on */

        memset(&fetch, 0, sizeof(fetch));
        fetch.started = now;
        fetch.paced = 1;
        l.fetching = now;
        answer_paced(&l, &q, &fetch, now, 20, 100000, 100000 + 19 * 4000, 0);
        assert_int_equal(l.left, 29);
        assert_int_equal(l.later, 20);

        /* the 9 left: due now, one step apart; none given back */

        in.now = now + 1;
        assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_PASS);
        assert_int_equal(l.left, 28);
        assert_int_equal(l.back, 0);
        in.now = now + 2;
        assert_int_equal(cg_lease_take(&l, &in, &out), CG_LEASE_REJECT);
        assert_true(out.retry <= 4);
    }
}


/*
 * The lease script's GCRA for one rate, in us (as cg_lease.lua): grants
 * up to "want" units, those it lets through now and up to "hz" ahead.
 */

typedef struct {
    int64_t         tat;
    int64_t         T;
    int64_t         tau;
} gcra_t;


static int64_t
gcra_grant(gcra_t *g, int64_t now, int64_t want, int64_t hz, int64_t *first,
    int64_t *last, int64_t *rest, int64_t *retry)
{
    int64_t  tat, x, a, can, grant;

    tat = g->tat > now ? g->tat : now;
    x = now + g->tau - tat;
    a = x < 0 ? 0 : x / g->T + 1;
    x += hz;
    can = x < 0 ? 0 : x / g->T + 1;
    grant = want < can ? want : can;

    *rest = a > grant ? a - grant : 0;
    *first = 0;
    *last = 0;
    *retry = 0;

    if (grant > 0) {
        x = tat - g->tau - now;
        *first = x > 0 ? x : 0;
        x += (grant - 1) * g->T;
        *last = x > 0 ? x : 0;
        g->tat = tat + grant * g->T;

    } else {
        *retry = (tat - g->tau - hz - now + 999) / 1000;
    }

    return grant;
}


/*
 * Redis runs the lease script for "fetch" at "now" (ms) and the reply is
 * read at once: what the fetch gives back first (a rate's TAT moves back,
 * never before now), then the grant; the answer taken in by the lease.
 * Returns what cg_lease_answer() returns ("next": a charge to send).
 */

static int
gcra_answer(gcra_t *g, const cg_quota_t *q, cg_lease_t *l,
    const cg_lease_out_t *fetch, uint32_t now, cg_lease_out_t *next)
{
    int64_t            us, tat;
    cg_lease_answer_t  a;

    us = (int64_t) now * 1000;
    tat = g->tat - (int64_t) fetch->back * g->T;

    if (fetch->back && g->tat > us) {
        g->tat = tat > us ? tat : us;
    }

    memset(&a, 0, sizeof(a));
    a.granted = gcra_grant(g, us, fetch->want, fetch->paced ? 1000000 : 0,
                           &a.first, &a.last, &a.headroom, &a.retry);
    a.binding = 1;
    a.rest[0] = a.headroom;
    a.nlimits = 1;
    a.qhash = cg_lease_quota_hash(q);
    a.owed = fetch->owed;
    a.started = fetch->started;
    a.now = now;
    a.ahead = cg_lease_ahead(q, 8, NULL);
    a.ttl = cg_lease_ttl(q, T0, 100, 0);
    a.ttl_small = cg_lease_ttl(q, T0, 100, 1);
    a.window = UINT32_MAX;
    a.window_age = UINT32_MAX;
    a.horizon = fetch->paced ? 1000 : 0;
    a.rated = 1;
    a.ready = 1;

    return cg_lease_answer(l, &a, next);
}


/*
 * One client at 3x its rate (500 r/s, burst 50) spread evenly over
 * "nodes" nodes for 10 s, Redis answering 1 ms after a fetch: each node is
 * admitted its share within 20%, the cluster no more than the GCRA
 * allows, and rejected requests cost Redis (almost) nothing.
 */

static void
run_spread(uint32_t nodes, uint32_t rate, uint32_t burst, uint32_t offered,
    uint32_t secs)
{
    int                rc;
    uint32_t           i, now, admitted[8], total, requests, fetches;
    uint32_t           allowed;
    uint32_t           due[8];
    uint64_t           acc[8];
    gcra_t             g;
    cg_quota_t         q = quota1(CG_LIMIT_RATE, rate, 1000, burst);
    cg_lease_t         l[8];
    cg_lease_in_t      in;
    cg_lease_out_t     out, fetch[8], next;

    memset(l, 0, sizeof(l));
    memset(admitted, 0, sizeof(admitted));
    memset(due, 0, sizeof(due));
    memset(acc, 0, sizeof(acc));

    g.T = 1000000 / rate;
    g.tau = burst * g.T;
    g.tat = 0;

    total = 0;
    requests = 0;
    fetches = 0;

    for (now = 1000; now < 1000 + 1000 * secs; now++) {
        for (i = 0; i < nodes; i++) {

            if (due[i] == now) {
                /* Redis runs the script now, the reply is read now */
                if (gcra_answer(&g, &q, &l[i], &fetch[i], now, &next)) {
                    fetch[i] = next;
                    due[i] = now + 1;
                    fetches++;
                } else {
                    due[i] = 0;
                }
            }

            /* "offered" r/s over the nodes */

            acc[i] += offered;

            while (acc[i] >= 1000 * nodes) {
                acc[i] -= 1000 * nodes;
                requests++;

                in = in_for(&q, now);
                in.share = cg_lease_share(&q, 1000, nodes);
                in.nodes = nodes;
                in.free_ms = 1000 / rate;
                rc = cg_lease_take(&l[i], &in, &out);

                if (rc == CG_LEASE_PASS || rc == CG_LEASE_AHEAD) {
                    admitted[i]++;
                    total++;
                }

                if (out.want) {
                    fetch[i] = out;
                    due[i] = now + 1;
                    fetches++;
                }
            }
        }
    }

    allowed = rate * secs + burst + 1;

    print_message("%u nodes, rate %u burst %u, %u r/s for %u s: %u of %u "
                  "admitted (%u allowed), %u fetches;", nodes, rate, burst,
                  offered, secs, total, requests, allowed, fetches);

    for (i = 0; i < nodes; i++) {
        print_message(" %u", admitted[i]);
    }

    print_message("\n");

    assert_true(total <= allowed + 1);
    assert_true(total >= allowed * 95 / 100);

    for (i = 0; i < nodes; i++) {
        assert_in_range(admitted[i], total / nodes * 80 / 100,
                        total / nodes * 120 / 100);
    }

    /* commands: the call and TIME, GET, SET in it: 4 a fetch */
    assert_true(4 * fetches <= requests / 50);
}


static void
test_spread(void **state)
{
    run_spread(2, 500, 50, 1500, 10);
    run_spread(3, 500, 50, 1500, 10);
    run_spread(4, 500, 50, 1500, 10);
    run_spread(3, 100, 10, 3000, 5);
}


/*
 * A client under its rate whose requests come in bursts: "each" to every
 * node every "every_ms", in step, for "secs" s; a node's requests one after
 * the other (as one connection sends them: the next 1 ms after the last
 * was answered), Redis answering 1 ms after a fetch (giving back first
 * what a fetch gives back, as the script does), a request that waits
 * taking its unit when the answer comes.  Returns how many were rejected.
 */

static uint32_t
run_bursts(uint32_t nodes, uint32_t rate, uint32_t burst, uint32_t each,
    uint32_t every_ms, uint32_t offset_ms, uint32_t jitter_ms, uint32_t secs)
{
    int                rc;
    uint32_t           i, now, rejected, due[8], todo[8], at[8];
    uint32_t           waiting[8], seed;
    gcra_t             g;
    cg_quota_t         q = quota1(CG_LIMIT_RATE, rate, 1000, burst);
    cg_lease_t         l[8];
    cg_lease_in_t      in;
    cg_lease_out_t     out, fetch[8], next;

    memset(l, 0, sizeof(l));
    memset(due, 0, sizeof(due));
    memset(todo, 0, sizeof(todo));
    memset(at, 0, sizeof(at));
    memset(waiting, 0, sizeof(waiting));

    g.T = 1000000 / rate;
    g.tau = burst * g.T;
    g.tat = 0;
    rejected = 0;
    seed = 1;

    for (now = 1000; now < 1000 + 1000 * secs; now++) {
        for (i = 0; i < nodes; i++) {

            in = in_for(&q, now);
            in.share = cg_lease_share(&q, 1000, nodes);
            in.nodes = nodes;
            in.free_ms = 1000 / rate;

            if (due[i] == now) {
                due[i] = 0;

                if (gcra_answer(&g, &q, &l[i], &fetch[i], now, &next)) {
                    fetch[i] = next;
                    due[i] = now + 1;
                }

                if (waiting[i]) {
                    /* the request that waited takes its unit */
                    waiting[i] = 0;
                    rc = cg_lease_take(&l[i], &in, &out);
                    rejected += (rc != CG_LEASE_PASS && rc != CG_LEASE_AHEAD);
                    seed = seed * 1103515245 + 12345;
                    at[i] = now + 1 + (seed >> 16) % (jitter_ms + 1);

                    if (out.want && due[i] == 0) {
                        fetch[i] = out;
                        due[i] = now + 1;
                    }
                }
            }

            if (now >= 1000 + i * offset_ms
                && (now - 1000 - i * offset_ms) % every_ms == 0)
            {
                todo[i] = each;
                at[i] = now;
            }

            if (todo[i] == 0 || waiting[i] || now < at[i]) {
                continue;
            }

            todo[i]--;
            rc = cg_lease_take(&l[i], &in, &out);

            if (out.want) {
                fetch[i] = out;
                due[i] = now + 1;
            }

            if (rc == CG_LEASE_WAIT && due[i]) {
                waiting[i] = 1;

            } else {
                rejected += (rc != CG_LEASE_PASS && rc != CG_LEASE_AHEAD);
                seed = seed * 1103515245 + 12345;
                at[i] = now + 1 + (seed >> 16) % (jitter_ms + 1);
            }
        }
    }

    return rejected;
}


static void
test_bursts_under_rate(void **state)
{
    uint32_t  i, k, j;

    /* nodes, rate, burst, requests at once per node, every ms */
    static const uint32_t  runs[][5] = {
        { 2, 16, 4, 2, 500 },      /* 4 at once, 8 r/s: t/83 */
        { 2, 16, 4, 2, 320 },      /* 12.5 r/s */
        { 2, 12, 6, 2, 400 },
        { 3, 16, 4, 1, 400 },
        { 3, 30, 9, 3, 1000 },
        { 3, 100, 20, 6, 300 },
        { 2, 50, 10, 4, 400 },
        { 2, 100, 20, 6, 200 },
    };

    /* the nodes' bursts this far apart, their requests up to "jitter" */
    static const uint32_t  offsets[] = { 0, 3, 10, 25, 50, 100 };
    static const uint32_t  jitters[] = { 0, 10, 30 };

    for (i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        for (k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++) {
            for (j = 0; j < sizeof(jitters) / sizeof(jitters[0]); j++) {
                if (run_bursts(runs[i][0], runs[i][1], runs[i][2],
                               runs[i][3], runs[i][4], offsets[k],
                               jitters[j], 20)
                    != 0)
                {
                    fail_msg("%u nodes, rate=%ur/s burst=%u, %u at once "
                             "every %u ms, %u ms apart, jitter %u ms: "
                             "rejected", runs[i][0], runs[i][1],
                             runs[i][2], runs[i][3], runs[i][4],
                             offsets[k], jitters[j]);
                }
            }
        }
    }
}


/*
 * What Redis says is taken as it comes, but no integer of its answer may
 * overflow (found by fuzz/fuzz_resp_lease.c: a binding of -2^63)
 */

static void
test_answer_extremes(void **state)
{
    int                i;
    cg_quota_t         q = quota1(CG_LIMIT_RATE, 100, 1000, 10);
    cg_lease_t         l;
    cg_lease_in_t      in;
    cg_lease_out_t     out, next;
    cg_lease_answer_t  a;

    static const int64_t  v[] = { INT64_MIN, INT64_MIN + 1, -1, 0, 1, 2,
                                  INT64_MAX - 1, INT64_MAX };

    for (i = 0; i < (int) (sizeof(v) / sizeof(v[0])); i++) {
        memset(&l, 0, sizeof(l));
        in = in_for(&q, 1000);
        cg_lease_take(&l, &in, &out);

        memset(&a, 0, sizeof(a));
        a.granted = 5;
        a.retry = v[i];
        a.binding = v[i];
        a.headroom = v[i];
        a.rest[0] = v[i];
        a.first = v[i];             /* paced, at any time */
        a.last = v[(i + 1) % (sizeof(v) / sizeof(v[0]))];
        a.nlimits = q.nlimits;
        a.qhash = cg_lease_quota_hash(&q);
        a.started = out.started;
        a.now = 1001;
        a.ttl = 200;
        a.ttl_small = 1000;

        cg_lease_answer(&l, &a, &next);

        assert_int_equal(l.binding, 0);
        assert_int_equal(l.left, 5);
        assert_int_equal(l.fetching, 0);
        assert_int_equal(l.headroom, v[i] < 0 ? 0 : v[i] > UINT32_MAX
                                                    ? UINT32_MAX : v[i]);
    }
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_client),
        cmocka_unit_test(test_grant_sizes),
        cmocka_unit_test(test_small_lease),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_ahead_paid_first),
        cmocka_unit_test(test_denied_and_at_limit),
        cmocka_unit_test(test_at_limit_rate_refills),
        cmocka_unit_test(test_down),
        cmocka_unit_test(test_quota_change),
        cmocka_unit_test(test_clock_wrap),
        cmocka_unit_test(test_remaining),
        cmocka_unit_test(test_answer_extremes),
        cmocka_unit_test(test_local_phase),
        cmocka_unit_test(test_far),
        cmocka_unit_test(test_paced),
        cmocka_unit_test(test_paced_under_share),
        cmocka_unit_test(test_paced_merge),
        cmocka_unit_test(test_paced_after_unpaced),
        cmocka_unit_test(test_bursts_under_rate),
        cmocka_unit_test(test_spread),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
