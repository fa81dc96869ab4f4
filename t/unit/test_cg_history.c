/*
 * Unit tests for src/cg_history.c: the ring, its counts, and the anomaly
 * detector at its default settings: steady Poisson traffic of 100 clients
 * for 10 minutes flags nothing, a 6x step is flagged within 30 s (a 3x
 * one too), stays flagged while it lasts and clears when it ends, young
 * clients and low rates are left alone, error spikes by their share.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "cg_history.h"


#define T0    1790000000000ULL     /* ms */


static const cg_anomaly_t  defaults = { 2.5f, 2, 0.15f, 1, 10000, 0 };


static uint64_t  seed = 88172645463325252ULL;

static double
uniform(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;

    return (double) (seed >> 11) / 9007199254740992.0;
}


/* a Poisson count of mean m (Knuth's, m small; normal above 30) */

static uint32_t
poisson(double m)
{
    double    l, p, g;
    uint32_t  k;

    if (m > 30) {
        g = sqrt(-2 * log(uniform() + 1e-12)) * cos(6.283185307 * uniform());
        g = m + g * sqrt(m);
        return g < 0 ? 0 : (uint32_t) (g + 0.5);
    }

    l = exp(-m);
    p = 1;
    k = 0;

    do {
        k++;
        p *= uniform();
    } while (p > l);

    return k - 1;
}


/* one second of traffic: "rate" offered, shares rejected and 4xx, 5xx */

static void
second(cg_history_t *h, uint64_t now, double rate, double rej, double e4,
    double e5)
{
    uint32_t  n[CG_HISTORY_SERIES], k;

    n[CG_HISTORY_OFFERED] = poisson(rate);
    k = n[CG_HISTORY_OFFERED];
    n[CG_HISTORY_REJECTED] = (uint32_t) (k * rej + 0.5);
    k -= n[CG_HISTORY_REJECTED];
    n[CG_HISTORY_4XX] = (uint32_t) (k * e4 + 0.5);
    n[CG_HISTORY_5XX] = (uint32_t) (k * e5 + 0.5);

    cg_history_add(h, (uint32_t) (now / defaults.step_ms), n[0], n[1], n[2],
                   n[3], &defaults);
}


static void
test_encode(void **state)
{
    uint32_t  n, d, c, prev;

    for (n = 0; n < 32; n++) {
        assert_int_equal(cg_history_decode(cg_history_encode(n)), n);
    }

    prev = 0;

    for (n = 32; n < 524288; n += 1 + n / 1000) {
        c = cg_history_encode(n);
        d = cg_history_decode(c);

        assert_true(c >= prev);
        prev = c;

        /* within 1/32 */
        assert_true((d > n ? d - n : n - d) * 32 <= n);
    }

    assert_int_equal(cg_history_encode(524288), 255);
    assert_int_equal(cg_history_encode(UINT32_MAX), 255);
    assert_true(cg_history_decode(255) > 500000);
}


/* 100 clients at 2 to 20 r/s for 10 minutes (after their first): no flag */

static void
test_steady_poisson(void **state)
{
    int            c, flags, young;
    double         rate;
    uint64_t       now;
    cg_history_t   h[100];

    memset(h, 0, sizeof(h));
    flags = 0;

    for (now = T0; now < T0 + 12 * 60 * 1000; now += 1000) {
        for (c = 0; c < 100; c++) {
            rate = 2 + (c % 10) * 2;
            second(&h[c], now, rate, 0, 0.02, 0.005);

            if (h[c].since[0] || h[c].since[1] || h[c].since[2]) {
                flags++;
            }
        }
    }

    assert_int_equal(flags, 0);
    print_message("# 100 clients at 2 to 20 r/s (Poisson), 12 minutes: "
                  "%d flagged\n", flags);

    /* nor at 0.3 r/s, where a step counts 0 to 10 */

    young = 0;
    memset(h, 0, sizeof(h));

    for (now = T0; now < T0 + 12 * 60 * 1000; now += 1000) {
        for (c = 0; c < 100; c++) {
            second(&h[c], now, 0.3, 0, 0.5, 0);
            flags += (h[c].since[0] || h[c].since[1] || h[c].since[2]);
        }
    }

    assert_int_equal(flags, 0);
    (void) young;
}


/* steady "from" r/s for 2 minutes, then "to": seconds until flagged */

static int
step_to(cg_history_t *h, double from, double to, uint64_t *t)
{
    uint64_t  now;

    memset(h, 0, sizeof(cg_history_t));

    for (now = T0; now < T0 + 120 * 1000; now += 1000) {
        second(h, now, from, 0, 0, 0);
        assert_int_equal(h->since[0], 0);
    }

    for ( /* void */ ; now < T0 + 300 * 1000; now += 1000) {
        second(h, now, to, 0, 0, 0);

        if (h->since[0]) {
            *t = now;
            return (int) ((now - T0 - 120 * 1000) / 1000);
        }
    }

    return -1;
}


static void
test_surge(void **state)
{
    int                 took, i, lo, hi;
    uint64_t            now, t;
    cg_history_t        h;
    cg_history_view_t   v;

    /* 20 -> 120 r/s after 2 minutes: flagged within 30 s, 15 s mostly */

    lo = 1000;
    hi = 0;

    for (i = 0; i < 20; i++) {
        took = step_to(&h, 20, 120, &t);
        assert_in_range(took, 0, 29);
        lo = took < lo ? took : lo;
        hi = took > hi ? took : hi;
    }

    print_message("# 20 -> 120 r/s: flagged after %d to %d s (20 runs)\n",
                  lo, hi);

    cg_history_view(&h, t, &defaults, &v);
    assert_false(v.young);
    assert_in_range((int) v.base_rate, 17, 23);
    assert_true(v.ratio >= 3);

    /* 10 -> 30: within 30 s */

    lo = 1000;
    hi = 0;

    for (i = 0; i < 20; i++) {
        took = step_to(&h, 10, 30, &t);
        assert_in_range(took, 0, 30);
        lo = took < lo ? took : lo;
        hi = took > hi ? took : hi;
    }

    print_message("# 10 -> 30 r/s: flagged after %d to %d s (20 runs)\n",
                  lo, hi);

    /* stays flagged while it lasts, 15 minutes: the baseline is frozen */

    took = step_to(&h, 20, 120, &t);

    for (now = t; now < t + 15 * 60 * 1000; now += 1000) {
        second(&h, now, 120, 0, 0, 0);
        assert_int_not_equal(h.since[0], 0);
    }

    cg_history_view(&h, now, &defaults, &v);
    assert_in_range((int) v.base_rate, 17, 23);

    /* cleared within half a minute once back */

    t = now;

    for ( /* void */ ; h.since[0] && now < t + 60 * 1000; now += 1000) {
        second(&h, now, 20, 0, 0, 0);
    }

    assert_int_equal(h.since[0], 0);
    assert_true(now - t <= 30 * 1000);

    /* and flagged again at the next surge, against the old baseline */

    for (t = now; now < t + 60 * 1000 && h.since[0] == 0; now += 1000) {
        second(&h, now, 120, 0, 0, 0);
    }

    assert_int_not_equal(h.since[0], 0);

    /* an hour of it: the new normal, cleared, the baseline learnt again */

    for (t = now; now < t + 65 * 60 * 1000; now += 1000) {
        second(&h, now, 120, 0, 0, 0);
    }

    assert_int_equal(h.since[0], 0);
    cg_history_view(&h, now, &defaults, &v);
    assert_in_range((int) v.base_rate, 100, 140);
}


static void
test_young_and_low(void **state)
{
    uint64_t            now;
    cg_history_t        h;
    cg_history_view_t   v;

    /* a new client bursting: young, not flagged */

    memset(&h, 0, sizeof(h));

    for (now = T0; now < T0 + 80 * 1000; now += 1000) {
        second(&h, now, now < T0 + 40 * 1000 ? 2 : 200, 0, 0, 0);
        assert_int_equal(h.since[0], 0);
    }

    cg_history_view(&h, now, &defaults, &v);
    assert_true(v.young);

    /* 0.2 -> 1 r/s (5x): below the minimum excess of 2 r/s */

    assert_int_equal(step_to(&h, 0.2, 1, &now), -1);

    /* 1 -> 4 r/s (4x, 3 above): flagged */

    assert_true(step_to(&h, 1, 4, &now) >= 0);
}


/* half the answers turn into 422: a 4xx spike, not a surge, not 5xx */

static void
test_error_spike(void **state)
{
    int                 flagged_at;
    uint64_t            now;
    cg_history_t        h;
    cg_history_view_t   v;

    memset(&h, 0, sizeof(h));

    for (now = T0; now < T0 + 180 * 1000; now += 1000) {
        second(&h, now, 20, 0, 0.01, 0);
    }

    flagged_at = -1;

    for ( /* void */ ; now < T0 + 240 * 1000; now += 1000) {
        second(&h, now, 20, 0, 0.5, 0);

        if (flagged_at < 0 && h.since[CG_ANOMALY_4XX]) {
            flagged_at = (int) ((now - T0) / 1000) - 180;
        }

        assert_int_equal(h.since[CG_ANOMALY_SURGE], 0);
        assert_int_equal(h.since[CG_ANOMALY_5XX], 0);
    }

    assert_in_range(flagged_at, 0, 30);

    cg_history_view(&h, now, &defaults, &v);
    assert_true(v.share[0] > 0.4);
    assert_true(v.base_share[0] < 0.05);

    /* a new endpoint that throws: 5xx, apart */

    for ( /* void */ ; now < T0 + 300 * 1000; now += 1000) {
        second(&h, now, 20, 0, 0.5, 0.3);
    }

    assert_int_not_equal(h.since[CG_ANOMALY_5XX], 0);

    /* back to normal: both clear */

    for ( /* void */ ; now < T0 + 360 * 1000; now += 1000) {
        second(&h, now, 20, 0, 0.01, 0);
    }

    assert_int_equal(h.since[CG_ANOMALY_4XX], 0);
    assert_int_equal(h.since[CG_ANOMALY_5XX], 0);

    /* a team that always has 30% 404s is not flagged for them */

    memset(&h, 0, sizeof(h));

    for (now = T0; now < T0 + 600 * 1000; now += 1000) {
        second(&h, now, 20, 0, 0.3, 0);
        assert_int_equal(h.since[CG_ANOMALY_4XX], 0);
    }

    /* rejections by the module are offered traffic, not errors */

    for ( /* void */ ; now < T0 + 660 * 1000; now += 1000) {
        second(&h, now, 20, 0.9, 0.3, 0);
        assert_int_equal(h.since[CG_ANOMALY_4XX], 0);
        assert_int_equal(h.since[CG_ANOMALY_SURGE], 0);
    }
}


static void
test_ring(void **state)
{
    uint32_t            n[CG_HISTORY_SERIES] = { 7, 1, 2, 3 }, slot;
    cg_history_t        h;

    memset(&h, 0, sizeof(h));
    slot = 1000;

    cg_history_add(&h, slot, n[0], n[1], n[2], n[3], &defaults);
    assert_int_equal(cg_history_at(&h, CG_HISTORY_OFFERED, 0), 7);

    cg_history_add(&h, slot + 1, n[0], n[1], n[2], n[3], &defaults);
    assert_int_equal(cg_history_at(&h, CG_HISTORY_OFFERED, 1), 7);
    assert_int_equal(cg_history_at(&h, CG_HISTORY_5XX, 1), 3);
    assert_int_equal(cg_history_at(&h, CG_HISTORY_OFFERED, 2), 0);

    /* 10 s gone by, another step: rate over the last 2 */

    assert_true(fabs(cg_history_rate(&h, CG_HISTORY_OFFERED,
                                     (uint64_t) (slot + 1) * 10000 + 5000,
                                     20000, &defaults)
                     - 14.0 / 15) < 1e-9);

    /* idle for an hour: the ring is empty steps */

    cg_history_advance(&h, slot + 400, &defaults);
    assert_int_equal(h.slot, slot + 400);
    assert_int_equal(cg_history_at(&h, CG_HISTORY_OFFERED, 1), 0);
    assert_int_equal(cg_history_at(&h, CG_HISTORY_OFFERED, 90), 0);

    /* a clock that goes back starts again */

    cg_history_add(&h, slot, n[0], n[1], n[2], n[3], &defaults);
    assert_int_equal(h.first, slot);
    assert_int_equal(cg_history_at(&h, CG_HISTORY_OFFERED, 0), 7);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_ring),
        cmocka_unit_test(test_steady_poisson),
        cmocka_unit_test(test_surge),
        cmocka_unit_test(test_young_and_low),
        cmocka_unit_test(test_error_spike),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
