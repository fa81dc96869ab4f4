/*
 * Unit tests for src/cg_lease.c: taking units of a lease, sizing the next
 * one, Redis's answers, admitting ahead, expiry, the clock's wrap.
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
    a.ready = 1;

    return cg_lease_answer(l, &a, next);
}


static void
test_ahead_bounds(void **state)
{
    uint32_t    reserve;
    cg_quota_t  q;

    /* ahead= of the configuration, at most 1% of every limit */

    q = quota1(CG_LIMIT_RATE, 10000, 1000, 100);
    assert_int_equal(cg_lease_ahead(&q, 8, &reserve), 8);
    assert_int_equal(reserve, 1000);              /* a tenth of 10000 */

    q = quota1(CG_LIMIT_WINDOW, 500, 60000, 0);
    assert_int_equal(cg_lease_ahead(&q, 8, &reserve), 5);
    assert_int_equal(reserve, 50);                /* max(8 x 5, 50) */

    q.nlimits = 2;
    q.limits[1].type = CG_LIMIT_RATE;
    q.limits[1].count = 150;
    q.limits[1].period = 1000;
    assert_int_equal(cg_lease_ahead(&q, 8, &reserve), 1);
    assert_int_equal(reserve, 15);                /* a tenth of 150 */

    q = quota1(CG_LIMIT_WINDOW, 99, 60000, 0);
    assert_int_equal(cg_lease_ahead(&q, 8, NULL), 0);

    q = quota1(CG_LIMIT_RATE, 10000, 1000, 100);
    assert_int_equal(cg_lease_ahead(&q, 0, NULL), 0);    /* ahead=off */
}


static void
test_ttl(void **state)
{
    cg_quota_t  q;

    q = quota1(CG_LIMIT_RATE, 100, 1000, 10);
    assert_int_equal(cg_lease_ttl(&q, T0, 100, 0), 200);    /* 2 x lease */
    assert_int_equal(cg_lease_ttl(&q, T0, 100, 1), 1000);   /* small */
    assert_int_equal(cg_lease_ttl(&q, T0, 800, 0), 1000);   /* at most 1 s */

    /* a window lease ends with the window */

    q = quota1(CG_LIMIT_WINDOW, 100, 60000, 0);
    assert_int_equal(cg_lease_ttl(&q, 60000 * 5 + 59500, 100, 0), 500);
    assert_int_equal(cg_lease_ttl(&q, 60000 * 5 + 59999, 100, 1), 1);
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
    assert_int_equal(out.back_at, l.granted);
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
    assert_int_equal(out.retry, 1);
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


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ahead_bounds),
        cmocka_unit_test(test_ttl),
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
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
