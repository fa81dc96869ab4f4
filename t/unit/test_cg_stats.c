
/*
 * Unit tests of src/cg_stats.c: classes, codes, times and their
 * histograms, and what goes into the history (the history and its
 * detector have their own tests, test_cg_history.c).
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cg_stats.h"


static const cg_anomaly_t  an = { 2.5f, 2, 0.15f, 1, 10000, 0 };

#define T0  1790000000000ULL


static void
req(cg_stats_t *st, uint64_t now, uint32_t status, uint32_t ms, int own)
{
    cg_stats_req_t  r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.time_ms = ms;
    r.own = own;

    cg_stats_add(st, now, &r, &an);
}


static void
test_size(void **state)
{
    (void) state;

    /* the record budget (1 KiB with any name, docs/status.md) counts on it */
    assert_int_equal(sizeof(cg_stats_t), 592);
    assert_int_equal(sizeof(cg_history_t), 424);
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
    req(&st, T0, 429, 0, 1);      /* own rejection: offered, no answer */
    req(&st, T0, 429, 3, 0);      /* an upstream 429 */
    req(&st, T0, 503, 3, 0);
    req(&st, T0, 101, 3, 0);
    req(&st, T0, 0, 3, 0);        /* no status: not an answer */

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
    assert_int_equal(st.time_ms, 18);

    /* the history: all 8 offered, 1 rejected, 2 4xx, 1 5xx */

    assert_int_equal(cg_history_at(&st.history, CG_HISTORY_OFFERED, 0), 8);
    assert_int_equal(cg_history_at(&st.history, CG_HISTORY_REJECTED, 0), 1);
    assert_int_equal(cg_history_at(&st.history, CG_HISTORY_4XX, 0), 2);
    assert_int_equal(cg_history_at(&st.history, CG_HISTORY_5XX, 0), 1);

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.time_ms = 40;
    r.upstream = 1;
    r.upstream_ms = 30;
    cg_stats_add(&st, T0, &r, &an);

    assert_int_equal(st.upstream, 1);
    assert_int_equal(st.upstream_ms, 30);
    assert_int_equal(cg_stats_quantile_ms(st.uhist, 0.99), 50);

    /* a reader's copy, a step later: the counts are the last step's */

    cg_stats_view(&st, T0 + 10000, &an);
    assert_int_equal(cg_history_at(&st.history, CG_HISTORY_OFFERED, 1), 9);
    assert_int_equal(cg_history_at(&st.history, CG_HISTORY_OFFERED, 0), 0);
}


/* every answer in its bucket, for good: Prometheus' buckets are sums */

static void
test_latency(void **state)
{
    int         i;
    uint32_t    sum;
    cg_stats_t  st;

    memset(&st, 0, sizeof(st));

    for (i = 0; i < 1000; i++) {
        req(&st, T0 + i, 200, 4, 0);
    }

    req(&st, T0, 200, 1, 0);
    req(&st, T0, 200, 2500, 0);
    req(&st, T0, 200, 60000, 0);
    req(&st, T0, 429, 0, 1);      /* no answer: no time */

    assert_int_equal(st.latency[0], 1);        /* <= 1 ms */
    assert_int_equal(st.latency[2], 1000);     /* <= 5 ms, not halved */
    assert_int_equal(st.latency[10], 1);       /* <= 2.5 s */

    /* above the last bound but one: not counted apart, all answers are */

    for (i = 0, sum = 0; i < CG_STATS_NBUCKETS - 1; i++) {
        sum += st.latency[i];
    }

    assert_int_equal(sum + 1, cg_stats_responses(&st));
}


static void
test_quantile(void **state)
{
    int         i;
    uint8_t     h[CG_STATS_NBUCKETS];
    cg_stats_t  st;

    (void) state;
    memset(h, 0, sizeof(h));

    assert_int_equal(cg_stats_quantile_ms(h, 0.99), 0);

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
        cmocka_unit_test(test_latency),
        cmocka_unit_test(test_quantile),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
