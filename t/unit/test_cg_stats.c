
/*
 * Unit tests of src/cg_stats.c: rates, histograms, anomaly flags.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cg_stats.h"


static const cg_anomaly_t  an = { 5.0f, 1.0f, 0 };
static const cg_anomaly_t  an_new = { 5.0f, 1.0f, 1 };

#define T0  1700000000u


static void
req(cg_stats_t *st, uint32_t now, uint32_t status, uint32_t ms, int own)
{
    cg_stats_req_t  r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.time_ms = ms;
    r.own = own;

    cg_stats_add(st, now, T0, &r, &an);
}


static void
test_size(void **state)
{
    (void) state;

    /* the record budget in docs/status.md counts on this */
    assert_int_equal(sizeof(cg_stats_t), 168);
}


static void
test_classes_codes(void **state)
{
    cg_stats_t      st;
    cg_stats_req_t  r;

    (void) state;
    memset(&st, 0, sizeof(st));

    req(&st, T0, 200, 3, 0);
    req(&st, T0, 204, 3, 0);
    req(&st, T0, 404, 3, 0);
    req(&st, T0, 429, 0, 1);      /* own rejection: rate only */
    req(&st, T0, 429, 3, 0);      /* an upstream 429 */
    req(&st, T0, 503, 3, 0);
    req(&st, T0, 101, 3, 0);
    req(&st, T0, 0, 3, 0);        /* no status: not a response */

    assert_int_equal(st.classes[0], 1);
    assert_int_equal(st.classes[1], 2);
    assert_int_equal(st.classes[3], 2);
    assert_int_equal(st.classes[4], 1);
    assert_int_equal(cg_stats_responses(&st), 6);
    assert_int_equal(st.codes[cg_stats_code_index(404)], 1);
    assert_int_equal(st.codes[cg_stats_code_index(429)], 1);
    assert_int_equal(st.codes[cg_stats_code_index(503)], 1);
    assert_int_equal(cg_stats_code_index(200), -1);
    assert_int_equal(cg_stats_code_index(0), -1);
    assert_int_equal(cg_stats_code_index(399), -1);
    assert_int_equal(cg_stats_code_index(400), 0);
    assert_int_equal(cg_stats_code_index(405), -1);
    assert_int_equal(cg_stats_code_index(504), CG_STATS_NCODES - 1);
    assert_int_equal(cg_stats_code_index(505), -1);
    assert_int_equal(cg_stats_code_index(65936), -1);
    assert_int_equal(st.cur, 8);
    assert_int_equal(st.cur_err, 2);
    assert_int_equal(st.time_ms, 18);

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.time_ms = 40;
    r.upstream = 1;
    r.upstream_ms = 30;
    cg_stats_add(&st, T0, T0, &r, &an);

    assert_int_equal(st.upstream, 1);
    assert_int_equal(st.upstream_ms, 30);
    assert_int_equal(cg_stats_quantile_ms(st.uhist, 0.99), 50);
}


static void
test_rates(void **state)
{
    int         s, i;
    cg_stats_t  st, v;

    (void) state;
    memset(&st, 0, sizeof(st));

    /* 10 requests per second for 20 minutes: every average reaches 10 */

    for (s = 0; s < 1200; s++) {
        for (i = 0; i < 10; i++) {
            req(&st, T0 + s, 200, 1, 0);
        }
    }

    v = st;
    cg_stats_view(&v, T0 + 1199, T0, &an);

    assert_true(v.rate[CG_STATS_R10] > 9.99 && v.rate[CG_STATS_R10] < 10.01);
    assert_true(v.rate[CG_STATS_R60] > 9.99 && v.rate[CG_STATS_R60] < 10.01);
    assert_true(v.rate[CG_STATS_R300] > 9.7 && v.rate[CG_STATS_R300] < 10.01);
    assert_int_equal(v.surge_since, 0);

    /* silence for 10 s: the 10 s average falls to 1/e, 5 min barely */

    v = st;
    cg_stats_view(&v, T0 + 1199 + 10, T0, &an);

    assert_true(v.rate[CG_STATS_R10] > 3.5 && v.rate[CG_STATS_R10] < 3.8);
    assert_true(v.rate[CG_STATS_R300] > 9.3);

    /* a long silence: everything decays to zero */

    v = st;
    cg_stats_view(&v, T0 + 100000, T0, &an);

    assert_true(v.rate[CG_STATS_R300] == 0.0f);
}


static void
test_surge(void **state)
{
    int         s, i;
    cg_stats_t  st, v;

    (void) state;
    memset(&st, 0, sizeof(st));

    /* 2 requests per second for 10 minutes, then 200 in one second */

    for (s = 0; s < 600; s++) {
        req(&st, T0 + s, 200, 1, 0);
        req(&st, T0 + s, 200, 1, 0);
    }

    v = st;
    cg_stats_view(&v, T0 + 599, T0, &an);
    assert_int_equal(v.surge_since, 0);

    for (i = 0; i < 200; i++) {
        req(&st, T0 + 600, 200, 1, 0);
    }

    v = st;
    cg_stats_view(&v, T0 + 600, T0, &an);
    assert_int_equal(v.surge_since, T0 + 601);
    assert_true(cg_stats_ratio(v.rate[CG_STATS_R10],
                               cg_stats_baseline(v.rate[CG_STATS_R300],
                                                 T0 + 601, T0, &an),
                               &an) >= 5.0);

    /* the flag stays while the rate stays high, and clears after */

    for (s = 601; s < 605; s++) {
        for (i = 0; i < 100; i++) {
            req(&st, T0 + s, 200, 1, 0);
        }
    }

    assert_int_equal(st.surge_since, T0 + 601);

    v = st;
    cg_stats_view(&v, T0 + 700, T0, &an);
    assert_int_equal(v.surge_since, 0);

    /* an error spike: 4xx answers, rate constant */

    memset(&st, 0, sizeof(st));

    for (s = 0; s < 600; s++) {
        req(&st, T0 + s, 200, 1, 0);
        req(&st, T0 + s, 200, 1, 0);
    }

    for (s = 600; s < 603; s++) {
        for (i = 0; i < 20; i++) {
            req(&st, T0 + s, 401, 1, 0);
        }
    }

    v = st;
    cg_stats_view(&v, T0 + 602, T0, &an);
    assert_int_not_equal(v.errors_since, 0);
}


static void
test_warm_up(void **state)
{
    int         s, i;
    cg_stats_t  st, v;

    (void) state;

    /* a new client at a steady 20 r/s: never flagged while its baseline
     * warms up (the default) */

    memset(&st, 0, sizeof(st));

    for (s = 0; s < 400; s++) {
        for (i = 0; i < 20; i++) {
            req(&st, T0 + s, 200, 1, 0);
        }

        v = st;
        cg_stats_view(&v, T0 + s, T0, &an);
        assert_int_equal(v.surge_since, 0);
    }

    /* the corrected baseline is close to the true rate */

    assert_true(cg_stats_baseline(v.rate[CG_STATS_R300], T0 + 400, T0, &an)
                > 18.0);

    /* with new_clients=on the same client is flagged early on */

    memset(&st, 0, sizeof(st));

    for (s = 0; s < 20; s++) {
        for (i = 0; i < 20; i++) {
            cg_stats_req_t  r;

            memset(&r, 0, sizeof(r));
            r.status = 200;
            cg_stats_add(&st, T0 + s, T0, &r, &an_new);
        }
    }

    v = st;
    cg_stats_view(&v, T0 + 19, T0, &an_new);
    assert_int_not_equal(v.surge_since, 0);

    /* a surge 2 minutes into a new record (after a restart) is flagged */

    memset(&st, 0, sizeof(st));

    for (s = 0; s < 120; s++) {
        req(&st, T0 + s, 200, 1, 0);
        req(&st, T0 + s, 200, 1, 0);
    }

    for (i = 0; i < 300; i++) {
        req(&st, T0 + 120, 200, 1, 0);
    }

    v = st;
    cg_stats_view(&v, T0 + 120, T0, &an);
    assert_int_not_equal(v.surge_since, 0);
}


static void
test_quantile(void **state)
{
    int      i;
    uint8_t  h[CG_STATS_NBUCKETS];

    (void) state;
    memset(h, 0, sizeof(h));

    assert_int_equal(cg_stats_quantile_ms(h, 0.99), 0);

    cg_stats_t  st;
    memset(&st, 0, sizeof(st));

    for (i = 0; i < 990; i++) {
        req(&st, T0, 200, 4, 0);
    }

    for (i = 0; i < 10; i++) {
        req(&st, T0, 200, 700, 0);
    }

    /* counts were halved on the way; the proportions hold */

    assert_true(st.hist[2] <= 255);
    assert_int_equal(cg_stats_quantile_ms(st.hist, 0.5), 5);
    assert_int_equal(cg_stats_quantile_ms(st.hist, 0.999), 1000);

    memset(&st, 0, sizeof(st));
    req(&st, T0, 200, 60000, 0);
    assert_int_equal(cg_stats_quantile_ms(st.hist, 0.99), 10000);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_classes_codes),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_surge),
        cmocka_unit_test(test_warm_up),
        cmocka_unit_test(test_quantile),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
