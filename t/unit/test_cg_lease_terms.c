/*
 * Unit tests for src/cg_lease_terms.c: what a quota says of its leases
 * (admitted ahead, lifetimes, a rate's share, long leases, windows, the
 * quota's hash).
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "cg_lease_terms.h"


#define T0  1790000000000LL     /* a wall clock time, ms */


static cg_quota_t
quota_of(uint32_t type, uint64_t count, uint32_t period, uint64_t burst)
{
    cg_quota_t  q = { .nlimits = 1,
                      .limits = { { type, period, count, burst } } };

    return q;
}


static void
test_ahead_bounds(void **state)
{
    uint32_t    reserve;
    cg_quota_t  q;

    /* ahead= of the configuration, at most 1% of every limit */

    q = quota_of(CG_LIMIT_RATE, 10000, 1000, 100);
    assert_int_equal(cg_lease_ahead(&q, 8, &reserve), 8);
    assert_int_equal(reserve, 1000);              /* a tenth of 10000 */

    q = quota_of(CG_LIMIT_WINDOW, 500, 60000, 0);
    assert_int_equal(cg_lease_ahead(&q, 8, &reserve), 5);
    assert_int_equal(reserve, 50);                /* max(8 x 5, 50) */

    q.nlimits = 2;
    q.limits[1].type = CG_LIMIT_RATE;
    q.limits[1].count = 150;
    q.limits[1].period = 1000;
    assert_int_equal(cg_lease_ahead(&q, 8, &reserve), 1);
    assert_int_equal(reserve, 15);                /* a tenth of 150 */

    q = quota_of(CG_LIMIT_WINDOW, 99, 60000, 0);
    assert_int_equal(cg_lease_ahead(&q, 8, NULL), 0);

    q = quota_of(CG_LIMIT_RATE, 10000, 1000, 100);
    assert_int_equal(cg_lease_ahead(&q, 0, NULL), 0);    /* ahead=off */
}


static void
test_ttl(void **state)
{
    cg_quota_t  q;

    q = quota_of(CG_LIMIT_RATE, 100, 1000, 10);
    assert_int_equal(cg_lease_ttl(&q, T0, 100, 0), 200);    /* 2 x lease */
    assert_int_equal(cg_lease_ttl(&q, T0, 100, 1), 1000);   /* small */
    assert_int_equal(cg_lease_ttl(&q, T0, 800, 0), 1000);   /* at most 1 s */

    /* a window lease ends with the window */

    q = quota_of(CG_LIMIT_WINDOW, 100, 60000, 0);
    assert_int_equal(cg_lease_ttl(&q, 60000 * 5 + 59500, 100, 0), 500);
    assert_int_equal(cg_lease_ttl(&q, 60000 * 5 + 59999, 100, 1), 1);
}


/* the share of a rate a node holds at the limit; a window's end */

static void
test_share(void **state)
{
    cg_quota_t  q = quota_of(CG_LIMIT_RATE, 500, 1000, 50);
    cg_quota_t  w = quota_of(CG_LIMIT_WINDOW, 1000, 60000, 0);

    assert_int_equal(cg_lease_share(&q, 1000, 4), 125);
    assert_int_equal(cg_lease_share(&q, 1000, 1), 500);
    assert_int_equal(cg_lease_share(&q, 1000, 0), 500);   /* as 1 */
    assert_int_equal(cg_lease_share(&q, 1000, 1000), 1);  /* at least 1 */
    assert_int_equal(cg_lease_share(&w, 1000, 4), 0);     /* no rate */

    /* the slowest rate of two */
    q.nlimits = 2;
    q.limits[1] = q.limits[0];
    q.limits[1].count = 60;
    q.limits[1].period = 60000;
    assert_int_equal(cg_lease_share(&q, 1000, 1), 1);

    assert_int_equal(cg_lease_window_left(&w, T0), 60000 - T0 % 60000);
    assert_int_equal(cg_lease_window_left(&q, T0), UINT32_MAX);
}



/* a long lease: a node's share of 2 leases of a rate, its lifetime */

static void
test_far(void **state)
{
    cg_quota_t  q = quota_of(CG_LIMIT_WINDOW, 1000000, 86400000, 0);
    cg_quota_t  r = quota_of(CG_LIMIT_RATE, 100, 1000, 100);

    assert_int_equal(cg_lease_far(&q, 100, 3), CG_LEASE_WANT_MAX);
    assert_int_equal(cg_lease_far(&r, 100, 1), 20);
    assert_int_equal(cg_lease_far(&r, 100, 4), 5);
    assert_int_equal(cg_lease_far(&r, 100, 0), 20);         /* as 1 */
    assert_int_equal(cg_lease_ttl_far(&r, T0), 60000);
    assert_true(cg_lease_ttl_far(&q, T0) <= 60000);

    /* a day's window ending in 500 ms: the long lease ends with it */
    assert_int_equal(cg_lease_ttl_far(&q, 86400000LL * 3 - 500), 500);
    assert_int_equal(cg_lease_ttl_far(&q, 86400000LL * 3 - 1), 1);
}


/* the youngest window's age, the shortest's end; none without windows */

static void
test_windows(void **state)
{
    cg_quota_t  q = quota_of(CG_LIMIT_WINDOW, 1000, 60000, 0);
    cg_quota_t  r = quota_of(CG_LIMIT_RATE, 100, 1000, 10);

    assert_int_equal(cg_lease_window_age(&q, 60000 * 7 + 1500), 1500);
    assert_int_equal(cg_lease_window_left(&q, 60000 * 7 + 1500), 58500);
    assert_int_equal(cg_lease_window_age(&q, 60000 * 7), 0);
    assert_int_equal(cg_lease_window_age(&r, T0), UINT32_MAX);
    assert_int_equal(cg_lease_window_left(&r, T0), UINT32_MAX);

    /* a minute and an hour: the minute's end, the minute's age */

    q.nlimits = 2;
    q.limits[1] = q.limits[0];
    q.limits[1].period = 3600000;
    assert_int_equal(cg_lease_window_left(&q, 3600000 * 2 + 61000), 59000);
    assert_int_equal(cg_lease_window_age(&q, 3600000 * 2 + 61000), 1000);

    /* a limit of no period counts for nothing */

    q.limits[1].period = 0;
    assert_int_equal(cg_lease_window_age(&q, 60000 * 7 + 1500), 1500);
}


/*
 * The hash ties a lease to its quota: never 0 (0 is "no lease"), another
 * for another limit or mode, the same whatever lies past the limits in use
 */

static void
test_quota_hash(void **state)
{
    uint32_t    h;
    cg_quota_t  q = quota_of(CG_LIMIT_RATE, 100, 1000, 10);
    cg_quota_t  p;

    h = cg_lease_quota_hash(&q);
    assert_int_not_equal(h, 0);

    p = q;
    p.limits[1].count = 12345;                  /* not in use */
    assert_int_equal(cg_lease_quota_hash(&p), h);

    p = q;
    p.limits[0].count = 101;
    assert_int_not_equal(cg_lease_quota_hash(&p), h);

    p = q;
    p.limits[0].burst = 11;
    assert_int_not_equal(cg_lease_quota_hash(&p), h);

    p = q;
    p.mode = CG_MODE_DRY_RUN;
    assert_int_not_equal(cg_lease_quota_hash(&p), h);

    p = q;
    p.nlimits = 2;
    assert_int_not_equal(cg_lease_quota_hash(&p), h);

    memset(&p, 0, sizeof(p));
    assert_int_not_equal(cg_lease_quota_hash(&p), 0);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ahead_bounds),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_share),
        cmocka_unit_test(test_far),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_quota_hash),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
