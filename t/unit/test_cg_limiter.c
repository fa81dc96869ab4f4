/*
 * Unit tests for src/cg_limiter.c: GCRA rates and fixed windows.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cg_limiter.h"


#define T0  1790000000000LL     /* a time in ms since the epoch */


static cg_limit_t
rate(uint64_t count, uint32_t period, uint64_t burst)
{
    cg_limit_t  l = { CG_LIMIT_RATE, period, count, burst };

    return l;
}


static cg_limit_t
window(uint64_t count, uint32_t period)
{
    cg_limit_t  l = { CG_LIMIT_WINDOW, period, count, 0 };

    return l;
}


static void
test_rate_burst_then_steady(void **state)
{
    int                i, passed;
    cg_limit_t         l = rate(10, 1000, 5);
    cg_limit_state_t   st;
    cg_limit_result_t  r;

    memset(&st, 0, sizeof(st));

    /* burst + 1 at once */

    for (i = 0; i < 6; i++) {
        cg_limit_check(&l, &st, T0, 1, 1, &r);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 5 - i);
    }

    cg_limit_check(&l, &st, T0, 1, 1, &r);
    assert_false(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry, 100);          /* one interval: 1/10 s */
    assert_int_equal(r.reset, 600);          /* 6 intervals to drain */

    /* a rejected request costs nothing */

    cg_limit_check(&l, &st, T0 + 99, 1, 1, &r);
    assert_false(r.allowed);
    assert_int_equal(r.retry, 1);

    cg_limit_check(&l, &st, T0 + 100, 1, 1, &r);
    assert_true(r.allowed);

    /* steady: one request every 100 ms for 10 s passes, faster does not */

    passed = 0;

    for (i = 1; i <= 1000; i++) {
        cg_limit_check(&l, &st, T0 + 100 + i * 10, 1, 1, &r);
        passed += r.allowed;
    }

    assert_int_equal(passed, 100);
}


static void
test_rate_precision_high_rates(void **state)
{
    int                i, passed;
    cg_limit_t         l = rate(50000, 1000, 0);
    cg_limit_state_t   st;
    cg_limit_result_t  r;

    memset(&st, 0, sizeof(st));
    passed = 0;

    /* 200 requests per ms for one second: exactly the rate passes */

    for (i = 0; i < 200 * 1000; i++) {
        cg_limit_check(&l, &st, T0 + i / 200, 1, 1, &r);
        passed += r.allowed;
    }

    assert_true(passed >= 49999 && passed <= 50001);
}


static void
test_rate_per_minute(void **state)
{
    cg_limit_t         l = rate(1, 60000, 1);
    cg_limit_state_t   st;
    cg_limit_result_t  r;

    memset(&st, 0, sizeof(st));

    cg_limit_check(&l, &st, T0, 1, 1, &r);
    assert_true(r.allowed);
    cg_limit_check(&l, &st, T0, 1, 1, &r);
    assert_true(r.allowed);
    cg_limit_check(&l, &st, T0, 1, 1, &r);
    assert_false(r.allowed);
    assert_int_equal(r.retry, 60000);
    cg_limit_check(&l, &st, T0 + 60000, 1, 1, &r);
    assert_true(r.allowed);
}


/*
 * A burst that covers centuries (found by fuzz/fuzz_redis_quota.c: the
 * tolerance overflowed 64 bits): as good as none, and no overflow
 */

static void
test_rate_huge_burst(void **state)
{
    int                i;
    cg_limit_t         l[3];
    cg_limit_state_t   st;
    cg_limit_result_t  r;

    l[0] = rate(1, 86400000, 1000000000000ULL);         /* 1r/d */
    l[1] = rate(100, 1000, 1000000000000ULL);           /* 100r/s */
    l[2] = rate(10000000, 86400000, 999999999999ULL);   /* 10^7 r/d */

    for (i = 0; i < 3; i++) {
        memset(&st, 0, sizeof(st));

        cg_limit_check(&l[i], &st, T0, 1, 1, &r);
        assert_true(r.allowed);
        assert_true(r.remaining > 1000);
        assert_true(r.remaining <= cg_limit_capacity(&l[i]));

        cg_limit_check(&l[i], &st, T0 + 1, 1, 1, &r);
        assert_true(r.allowed);

        /* more than it may ever take, and nothing */

        cg_limit_check(&l[i], &st, T0 + 2, UINT64_MAX, 1, &r);
        assert_false(r.allowed);
        cg_limit_check(&l[i], &st, T0 + 2, 0, 0, &r);
        assert_true(r.allowed);

        /* in the year 2100 */

        cg_limit_check(&l[i], &st, 4102444800000LL, 1, 1, &r);
        assert_true(r.allowed);
    }
}


static void
test_no_commit_changes_nothing(void **state)
{
    int                i;
    cg_limit_t         l = rate(1, 1000, 0);
    cg_limit_state_t   st;
    cg_limit_result_t  r;

    memset(&st, 0, sizeof(st));

    for (i = 0; i < 5; i++) {
        cg_limit_check(&l, &st, T0, 1, 0, &r);
        assert_true(r.allowed);
    }
}


static void
test_window(void **state)
{
    int                i;
    cg_limit_t         l = window(3, 60000);
    cg_limit_state_t   st;
    cg_limit_result_t  r;
    int64_t            start;

    memset(&st, 0, sizeof(st));
    start = (T0 / 60000) * 60000;

    for (i = 0; i < 3; i++) {
        cg_limit_check(&l, &st, start + 10, 1, 1, &r);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 2 - i);
    }

    cg_limit_check(&l, &st, start + 59999, 1, 1, &r);
    assert_false(r.allowed);
    assert_int_equal(r.retry, 1);
    assert_int_equal(r.reset, 1);

    /* the next window starts afresh */

    cg_limit_check(&l, &st, start + 60000, 1, 1, &r);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 2);
    assert_int_equal(r.reset, 60000);
}


static void
test_state_reset_on_shape_change(void **state)
{
    cg_limit_t         a = window(1, 1000), b = rate(1, 1000, 0);
    cg_limit_state_t   st;
    cg_limit_result_t  r;

    memset(&st, 0, sizeof(st));

    cg_limit_check(&a, &st, T0, 1, 1, &r);
    assert_true(r.allowed);
    cg_limit_check(&a, &st, T0, 1, 1, &r);
    assert_false(r.allowed);

    cg_limit_check(&b, &st, T0, 1, 1, &r);
    assert_true(r.allowed);
}


static void
test_quota_all_limits(void **state)
{
    cg_quota_t         q;
    cg_limit_state_t   st[CG_MAX_LIMITS];
    cg_limit_result_t  r;
    int                i, idx;

    memset(&q, 0, sizeof(q));
    memset(st, 0, sizeof(st));

    q.nlimits = 2;
    q.limits[0] = rate(100, 1000, 100);
    q.limits[1] = window(3, 86400000);

    for (i = 0; i < 3; i++) {
        idx = cg_quota_check(&q, st, T0, 1, 1, &r);
        assert_true(r.allowed);
        assert_int_equal(idx, 1);            /* the day quota binds */
    }

    idx = cg_quota_check(&q, st, T0, 1, 1, &r);
    assert_false(r.allowed);
    assert_int_equal(idx, 1);

    /* the rejected request was not charged to the rate either */

    cg_limit_check(&q.limits[0], &st[0], T0, 1, 0, &r);
    assert_int_equal(r.remaining, 100 - 3);
}


static void
test_quota_empty(void **state)
{
    cg_quota_t         q;
    cg_limit_state_t   st[CG_MAX_LIMITS];
    cg_limit_result_t  r;

    memset(&q, 0, sizeof(q));
    memset(st, 0, sizeof(st));

    assert_int_equal(cg_quota_check(&q, st, T0, 1, 1, &r), -1);
    assert_true(r.allowed);
}


/* what cg_quota_check() did with two full passes: check all, then charge */

static int
quota_check_ref(const cg_quota_t *q, cg_limit_state_t *st, int64_t now,
    uint64_t cost, cg_limit_result_t *res)
{
    int                best;
    uint32_t           i;
    cg_limit_result_t  r;

    best = -1;
    res->allowed = 1;
    res->remaining = UINT64_MAX;
    res->reset = 0;
    res->retry = 0;

    for (i = 0; i < q->nlimits; i++) {
        cg_limit_check(&q->limits[i], &st[i], now, cost, 0, &r);

        if (!r.allowed) {
            *res = r;
            return (int) i;
        }

        if (best == -1 || r.remaining < res->remaining) {
            *res = r;
            best = (int) i;
        }
    }

    for (i = 0; i < q->nlimits; i++) {
        cg_limit_check(&q->limits[i], &st[i], now, cost, 1, &r);
    }

    return best;
}


static void
test_quota_same_as_two_passes(void **state)
{
    int                n, k, idx, ref;
    int64_t            now;
    uint32_t           seed;
    cg_quota_t         q;
    cg_limit_state_t   st[CG_MAX_LIMITS], st_ref[CG_MAX_LIMITS];
    cg_limit_result_t  r, rr;

    for (n = 1; n <= CG_MAX_LIMITS; n++) {
        memset(&q, 0, sizeof(q));
        memset(st, 0, sizeof(st));
        memset(st_ref, 0, sizeof(st_ref));

        q.nlimits = n;
        q.limits[0] = rate(50, 1000, 5);
        q.limits[1] = window(40, 60000);
        q.limits[2] = rate(3, 100, 0);
        q.limits[3] = window(1000, 1000);

        /* the last limit rejects first in some of the runs */

        if (n % 2 == 0) {
            q.limits[n - 1] = window(7, 1000);
        }

        now = T0;
        seed = 12345;

        for (k = 0; k < 2000; k++) {
            seed = seed * 1103515245 + 12345;
            now += (seed >> 16) % 40;

            idx = cg_quota_check(&q, st, now, 1 + (seed >> 8) % 2, 1, &r);
            ref = quota_check_ref(&q, st_ref, now, 1 + (seed >> 8) % 2,
                                  &rr);

            assert_int_equal(idx, ref);
            assert_int_equal(r.allowed, rr.allowed);
            assert_int_equal(r.remaining, rr.remaining);
            assert_int_equal(r.reset, rr.reset);
            assert_int_equal(r.retry, rr.retry);
            assert_memory_equal(st, st_ref, sizeof(st));
        }
    }
}



static char *
text(unsigned char *buf, unsigned char *end)
{
    *end = '\0';
    return (char *) buf;
}


static void
test_uint(void **state)
{
    unsigned char  buf[32];
    char           ref[32];
    uint64_t       n, i;

    assert_string_equal(text(buf, cg_limit_uint(buf, 0)), "0");
    assert_string_equal(text(buf, cg_limit_uint(buf, 9)), "9");
    assert_string_equal(text(buf, cg_limit_uint(buf, 10)), "10");
    assert_string_equal(text(buf, cg_limit_uint(buf, 100)), "100");
    assert_string_equal(text(buf, cg_limit_uint(buf, UINT64_MAX)),
                        "18446744073709551615");

    for (i = 0, n = 1; i < 64; i++, n = n * 3 + i) {
        snprintf(ref, sizeof(ref), "%llu", (unsigned long long) n);
        assert_string_equal(text(buf, cg_limit_uint(buf, n)), ref);
    }
}


static void
test_header_text(void **state)
{
    unsigned char  buf[256], *p;
    cg_quota_t     q;

    memset(&q, 0, sizeof(q));
    q.nlimits = 3;
    q.limits[0] = rate(100, 1000, 20);
    q.limits[1] = window(5000, 86400000);
    q.limits[2] = rate(600, 60000, 0);

    assert_true(cg_quota_policy_len(&q) <= sizeof(buf));
    p = cg_quota_policy_print(buf, &q);
    assert_true((size_t) (p - buf) <= cg_quota_policy_len(&q));
    assert_string_equal(text(buf, p),
                        "\"rate_s\";q=100;w=1, \"quota_d\";q=5000;w=86400, "
                        "\"rate_m\";q=600;w=60");

    p = cg_limit_policy_item(buf, &q.limits[1], 'r');
    assert_string_equal(text(buf, p), "\"quota_d\";r=");

    p = cg_limit_print(buf, &q.limits[0]);
    assert_string_equal(text(buf, p), "rate=100r/s burst=20");
    p = cg_limit_print(buf, &q.limits[1]);
    assert_string_equal(text(buf, p), "quota=5000/d");

    q.limits[0] = rate(UINT64_MAX, 3600000, UINT64_MAX);
    p = cg_limit_print(buf, &q.limits[0]);
    assert_true((size_t) (p - buf) <= CG_LIMIT_PRINT_LEN);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_burst_then_steady),
        cmocka_unit_test(test_rate_precision_high_rates),
        cmocka_unit_test(test_rate_per_minute),
        cmocka_unit_test(test_no_commit_changes_nothing),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_state_reset_on_shape_change),
        cmocka_unit_test(test_quota_all_limits),
        cmocka_unit_test(test_quota_empty),
        cmocka_unit_test(test_quota_same_as_two_passes),
        cmocka_unit_test(test_rate_huge_burst),
        cmocka_unit_test(test_uint),
        cmocka_unit_test(test_header_text),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
