
/*
 * Copyright (C) client guard authors
 *
 * A client's recent traffic, and what is unusual in it.  See cg_history.h.
 */


#include <stddef.h>
#include <string.h>

#include "cg_history.h"


#define CG_HISTORY_BINS                                                       \
    ((CG_HISTORY_SLOTS - CG_HISTORY_SKIP) / CG_HISTORY_BIN)

/* answers in the two steps judged, at least, to judge their errors */
#define CG_HISTORY_MIN_ANSWERS  10

/*
 * A flag that lasted this many steps (an hour at the default step) is the
 * client's new normal: its baseline is learnt again, flagged steps and all
 */
#define CG_HISTORY_RELEARN      360


static void cg_history_complete(cg_history_t *h, const cg_anomaly_t *an,
    int judge);
static void cg_history_judge(cg_history_t *h, const cg_anomaly_t *an,
    int now);


/*
 * A count in a byte: exact up to 31; above, 4 bits of exponent and 4 of
 * mantissa, (16 + m) << e, read back as the middle of its range: within
 * 1/32 of the count, up to 524287 (more is kept as that).
 */

uint8_t
cg_history_encode(uint32_t n)
{
    uint32_t  e;

    if (n < 32) {
        return (uint8_t) n;
    }

    if (n >= 32u << 14) {
        return 255;
    }

    for (e = 1; (n >> e) >= 32; e++) { /* void */ }

    return (uint8_t) (16 * e + (n >> e));
}


static inline uint32_t
cg_history_count_of(uint8_t c)
{
    uint32_t  e;

    if (c < 32) {
        return c;
    }

    e = (c >> 4) - 1;

    return ((16u + (c & 15)) << e) + (1u << (e - 1));
}


uint32_t
cg_history_decode(uint8_t c)
{
    return cg_history_count_of(c);
}


/* the count of a series "age" steps before the current one (0: current) */

uint32_t
cg_history_at(const cg_history_t *h, int series, uint32_t age)
{
    uint32_t  s;

    if (age == 0) {
        return h->cur[series];
    }

    if (age > CG_HISTORY_SLOTS || h->slot - h->first < age) {
        return 0;
    }

    s = (h->slot - age) % CG_HISTORY_SLOTS;

    return cg_history_decode(h->ring[s][series]);
}


int
cg_history_was_flagged(const cg_history_t *h, uint32_t age)
{
    uint32_t  s;

    if (age == 0 || age > CG_HISTORY_SLOTS) {
        return 0;
    }

    s = (h->slot - age) % CG_HISTORY_SLOTS;

    return (h->flagged[s / 32] >> (s % 32)) & 1;
}


static int
cg_history_flagged_now(const cg_history_t *h)
{
    int  i;

    for (i = 0; i < CG_ANOMALY_N; i++) {
        if (h->since[i]) {
            return 1;
        }
    }

    return 0;
}


void
cg_history_trip(cg_history_t *h, const cg_anomaly_t *an)
{
    cg_history_judge(h, an, 1);
}


void
cg_history_advance(cg_history_t *h, uint32_t slot, const cg_anomaly_t *an)
{
    if (h->slot == 0 || slot < h->slot) {

        /*
         * the first step (the history is all zeros, as its record was
         * made), or the clock or the step size went back
         */

        if (h->slot) {
            memset(h, 0, sizeof(cg_history_t));
        }

        h->slot = slot;
        h->first = slot;
        h->trip = UINT32_MAX;
        return;
    }

    if (slot == h->slot) {
        return;
    }

    /*
     * The step with counts is judged as it completes, and the last one
     * again; the empty steps between are recorded, not judged (an empty
     * step starts no surge, and a flag still set is judged at the end).
     */

    cg_history_complete(h, an, 1);

    if (slot - h->slot > CG_HISTORY_SLOTS) {
        /* nothing left of the ring but empty steps */
        h->slot = slot - CG_HISTORY_SLOTS;
    }

    while (h->slot != slot) {
        cg_history_complete(h, an, h->slot + 1 == slot);
    }
}


/* the current step into the ring; the next one starts */

static void
cg_history_complete(cg_history_t *h, const cg_anomaly_t *an, int judge)
{
    int       i;
    uint32_t  s, bit;

    s = h->slot % CG_HISTORY_SLOTS;

    for (i = 0; i < CG_HISTORY_SERIES; i++) {
        h->ring[s][i] = cg_history_encode(h->cur[i]);
        h->cur[i] = 0;
    }

    bit = 1u << (s % 32);

    if (cg_history_flagged_now(h)) {
        h->flagged[s / 32] |= bit;

    } else {
        h->flagged[s / 32] &= ~bit;
    }

    h->slot++;

    if (judge) {
        cg_history_judge(h, an, 0);
    }
}


/* the median of n values, at most CG_HISTORY_BINS */

static double
cg_history_median(double *v, int n)
{
    int     i, j;
    double  t;

    for (i = 1; i < n; i++) {
        for (j = i; j > 0 && v[j - 1] > v[j]; j--) {
            t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    }

    return (n & 1) ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}


/*
 * The baselines, from the bins of the ring that qualify: complete (the
 * client existed for all of its steps) and recorded unflagged.  Returns
 * the number of bins used; the baselines are left as they are with none.
 */

static int
cg_history_baseline(cg_history_t *h, int all)
{
    int             i, k, n, age;
    double          bins[CG_HISTORY_BINS], answers, err[2];
    uint32_t        off, rej;
    const uint8_t  *r;

    n = 0;
    answers = 0;
    err[0] = 0;
    err[1] = 0;

    for (k = 0; k < CG_HISTORY_BINS; k++) {
        age = CG_HISTORY_SKIP + 1 + k * CG_HISTORY_BIN;

        if (h->slot - h->first < (uint32_t) (age + CG_HISTORY_BIN - 1)) {
            break;
        }

        for (i = 0; i < CG_HISTORY_BIN && !all; i++) {
            if (cg_history_was_flagged(h, age + i)) {
                break;
            }
        }

        if (!all && i < CG_HISTORY_BIN) {
            continue;
        }

        bins[n] = 0;

        /* the bin's steps are kept: the client was there for all of them */

        for (i = 0; i < CG_HISTORY_BIN; i++) {
            r = h->ring[(h->slot - age - i) % CG_HISTORY_SLOTS];
            off = cg_history_count_of(r[CG_HISTORY_OFFERED]);
            rej = cg_history_count_of(r[CG_HISTORY_REJECTED]);

            bins[n] += off;
            answers += (off > rej) ? off - rej : 0;
            err[0] += cg_history_count_of(r[CG_HISTORY_4XX]);
            err[1] += cg_history_count_of(r[CG_HISTORY_5XX]);
        }

        n++;
    }

    if (n == 0) {
        return 0;
    }

    if (!h->since[CG_ANOMALY_SURGE]) {
        h->base[CG_ANOMALY_SURGE] = (float) (cg_history_median(bins, n)
                                             / CG_HISTORY_BIN);
    }

    for (i = 0; i < 2; i++) {
        if (!h->since[CG_ANOMALY_4XX + i]) {
            h->base[CG_ANOMALY_4XX + i] = answers > 0
                                          ? (float) (err[i] / answers) : 0;
        }
    }

    return n;
}


/*
 * The last two steps, against the baselines: when a step completes ("now"
 * 0), the two completed last; within a step, when its count reached the
 * trip, the one completed last and the current one so far (only a surge's
 * start: what is under way clears nothing).
 */

static void
cg_history_judge(cg_history_t *h, const cg_anomaly_t *an, int now)
{
    int       i, f;
    double    secs, rate, base, need, answers, share, excess;
    uint32_t  off, rej, err, last;

    h->trip = UINT32_MAX;

    if (an == NULL || an->off || an->step_ms == 0) {
        h->since[0] = 0;
        h->since[1] = 0;
        h->since[2] = 0;
        return;
    }

    if (h->slot - h->first < CG_HISTORY_SKIP + CG_HISTORY_BIN) {
        /* young: no baseline yet */
        return;
    }

    if (!now) {
        f = 0;

        for (i = 0; i < CG_ANOMALY_N; i++) {
            if (h->since[i] && h->slot - h->since[i] >= CG_HISTORY_RELEARN) {
                h->since[i] = 0;
                f = 1;
            }
        }

        (void) cg_history_baseline(h, f);
    }

    secs = 2.0 * an->step_ms / 1000;

    last = cg_history_at(h, CG_HISTORY_OFFERED, 1);
    off = last + (now ? h->cur[CG_HISTORY_OFFERED]
                      : cg_history_at(h, CG_HISTORY_OFFERED, 2));
    rej = cg_history_at(h, CG_HISTORY_REJECTED, 1)
          + (now ? h->cur[CG_HISTORY_REJECTED]
                 : cg_history_at(h, CG_HISTORY_REJECTED, 2));

    rate = off / secs;
    base = h->base[CG_ANOMALY_SURGE] * 1000.0 / an->step_ms;
    need = base * an->ratio;

    if (need < base + an->min_rate) {
        need = base + an->min_rate;
    }

    if (h->since[CG_ANOMALY_SURGE] == 0) {
        if (rate >= need) {
            h->since[CG_ANOMALY_SURGE] = h->slot;

        } else if (!now) {
            /* the count of the next step that flags it with this one */

            need = need * secs - last;
            h->trip = need < 1 ? 1
                      : (need >= UINT32_MAX ? UINT32_MAX
                                            : (uint32_t) need + 1);
        }

    } else if (!now
               && (rate < base * (1 + an->ratio) / 2
                   || rate < base + an->min_rate / 2))
    {
        /* cleared half the way back */
        h->since[CG_ANOMALY_SURGE] = 0;
    }

    if (now) {
        return;
    }

    /* error shares of the answers (the module's rejections are none) */

    answers = (off > rej) ? off - rej : 0;

    for (i = 0; i < 2; i++) {
        f = CG_ANOMALY_4XX + i;
        err = cg_history_at(h, CG_HISTORY_4XX + i, 1)
              + cg_history_at(h, CG_HISTORY_4XX + i, 2);

        share = answers > 0 ? err / answers : 0;
        excess = (err - h->base[f] * answers) / secs;

        if (h->since[f] == 0) {
            if (answers >= CG_HISTORY_MIN_ANSWERS
                && share >= h->base[f] + an->error_share
                && excess >= an->error_rate)
            {
                h->since[f] = h->slot;
            }

        } else if (share < h->base[f] + an->error_share / 2
                   || excess < an->error_rate / 2)
        {
            h->since[f] = 0;
        }
    }
}


double
cg_history_rate(const cg_history_t *h, int series, uint64_t now, uint32_t ms,
    const cg_anomaly_t *an)
{
    uint32_t  i, k, n, s, step;
    uint64_t  sum, elapsed;

    if (h->slot == 0 || an->step_ms == 0) {
        return 0;
    }

    step = an->step_ms;

    /* the part of the current step gone by: at least a tenth of it */

    elapsed = now / step == h->slot ? now % step : step;

    if (elapsed < step / 10) {
        elapsed = step / 10;
    }

    /* steps before the client's first count as empty: a rate over "ms" */

    n = (ms + step - 1) / step;
    n = n < 2 ? 1 : n - 1;
    n = n > CG_HISTORY_SLOTS ? CG_HISTORY_SLOTS : n;

    /* the ring from the step before the current one back, as many as kept */

    k = (n < h->slot - h->first) ? n : h->slot - h->first;

    sum = h->cur[series];
    s = (h->slot - 1) % CG_HISTORY_SLOTS;

    for (i = 0; i < k; i++) {
        sum += cg_history_count_of(h->ring[s][series]);
        s = s ? s - 1 : CG_HISTORY_SLOTS - 1;
    }

    return (double) sum * 1000 / (elapsed + (uint64_t) n * step);
}


void
cg_history_view(const cg_history_t *h, uint64_t now, const cg_anomaly_t *an,
    cg_history_view_t *v)
{
    int       i;
    double    answers, err;

    memset(v, 0, sizeof(cg_history_view_t));

    if (h->slot == 0 || an->step_ms == 0) {
        v->young = 1;
        return;
    }

    v->young = (h->slot - h->first < CG_HISTORY_SKIP + CG_HISTORY_BIN);

    v->rate = cg_history_rate(h, CG_HISTORY_OFFERED, now, 2 * an->step_ms,
                              an);
    v->base_rate = h->base[CG_ANOMALY_SURGE] * 1000.0 / an->step_ms;
    v->ratio = v->rate / (v->base_rate > 0.01 ? v->base_rate : 0.01);

    if (v->ratio > 1000) {
        v->ratio = 1000;
    }

    answers = v->rate - cg_history_rate(h, CG_HISTORY_REJECTED, now,
                                        2 * an->step_ms, an);

    for (i = 0; i < 2; i++) {
        err = cg_history_rate(h, CG_HISTORY_4XX + i, now, 2 * an->step_ms,
                              an);

        v->error_rate[i] = err;
        v->share[i] = answers > 0 ? err / answers : 0;
        v->base_share[i] = h->base[CG_ANOMALY_4XX + i];

        if (v->share[i] > 1) {
            v->share[i] = 1;
        }
    }
}
