
/*
 * Copyright (C) client guard authors
 *
 * Per-client statistics: counters, EWMA rates, decaying histograms and the
 * anomaly flags derived from them.  See cg_stats.h.
 */


#include "cg_stats.h"


const uint16_t  cg_stats_codes[CG_STATS_NCODES] = {
    400, 401, 403, 404, 422, 429, 500, 502, 503, 504
};

/* upper bounds; the last bucket also holds anything slower */

const uint32_t  cg_stats_bounds_ms[CG_STATS_NBUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000
};

/* exp(-1 / tau) for tau = 10, 60 and 300 seconds */

static const double  cg_stats_decay[3] = {
    0.90483741803595957, 0.98347145382161748, 0.99667221605452392
};

static const int  cg_stats_err_tau[2] = { CG_STATS_R10, CG_STATS_R300 };


static double
cg_stats_pow(double a, uint32_t n)
{
    double  r;

    if (n > 10000) {
        return 0.0;
    }

    r = 1.0;

    while (n) {
        if (n & 1) {
            r *= a;
        }

        a *= a;
        n >>= 1;
    }

    return r;
}


/* an average after "dt" seconds: "count" in the first, nothing after */

static float
cg_stats_fold(float avg, uint32_t count, double a, uint32_t dt)
{
    double  v;

    v = (double) avg * a + (double) count * (1.0 - a);

    if (dt > 1) {
        v *= cg_stats_pow(a, dt - 1);
    }

    if (v < 1e-6) {
        v = 0.0;
    }

    return (float) v;
}


double
cg_stats_baseline(float avg, uint32_t now, uint32_t created,
    const cg_anomaly_t *an)
{
    double  f;

    if (an->new_clients || created == 0) {
        return avg;
    }

    f = 1.0 - cg_stats_pow(cg_stats_decay[CG_STATS_R300],
                           now > created ? now - created : 0);

    /* at most x100: the first seconds of a record */

    if (f < 0.01) {
        f = 0.01;
    }

    return avg / f;
}


double
cg_stats_ratio(double cur, double base, const cg_anomaly_t *an)
{
    if (base < an->min_rate) {
        base = an->min_rate;
    }

    if (base <= 0.0) {
        return 0.0;
    }

    return cur / base;
}


/*
 * The baseline (a power and a division) and the ratio are worked out only
 * when the current rate alone does not settle it: most clients are quiet.
 */

static uint32_t
cg_stats_flag(uint32_t since, double cur, float avg, uint32_t now,
    uint32_t created, const cg_anomaly_t *an)
{
    double  ratio;

    if (since == 0) {
        if (cur < an->min_rate) {
            return 0;
        }

        ratio = cg_stats_ratio(cur, cg_stats_baseline(avg, now, created, an),
                               an);

        return ratio >= an->ratio ? now : 0;
    }

    /* hysteresis: a flag clears at half its threshold */

    if (cur < an->min_rate / 2) {
        return 0;
    }

    ratio = cg_stats_ratio(cur, cg_stats_baseline(avg, now, created, an), an);

    if (ratio < an->ratio / 2) {
        return 0;
    }

    return since;
}


void
cg_stats_tick(cg_stats_t *st, uint32_t now, uint32_t created,
    const cg_anomaly_t *an)
{
    int       i;
    uint32_t  dt;

    if (st->sec == 0) {
        st->sec = now;
        return;
    }

    if (now <= st->sec) {
        return;
    }

    dt = now - st->sec;

    for (i = 0; i < 3; i++) {
        st->rate[i] = cg_stats_fold(st->rate[i], st->cur, cg_stats_decay[i],
                                    dt);
    }

    for (i = 0; i < 2; i++) {
        st->err[i] = cg_stats_fold(st->err[i], st->cur_err,
                                   cg_stats_decay[cg_stats_err_tau[i]], dt);
    }

    st->sec = now;
    st->cur = 0;
    st->cur_err = 0;

    if (an == 0 || an->ratio <= 0) {
        st->surge_since = 0;
        st->errors_since = 0;
        return;
    }

    st->surge_since = cg_stats_flag(st->surge_since, st->rate[CG_STATS_R10],
                                    st->rate[CG_STATS_R300], now, created,
                                    an);
    st->errors_since = cg_stats_flag(st->errors_since, st->err[0],
                                     st->err[1], now, created, an);
}


int
cg_stats_code_index(uint32_t status)
{
    int  i;

    /* codes[] is sorted: most responses are below its first code */

    if (status < cg_stats_codes[0]
        || status > cg_stats_codes[CG_STATS_NCODES - 1])
    {
        return -1;
    }

    for (i = 0; i < CG_STATS_NCODES; i++) {
        if (cg_stats_codes[i] == status) {
            return i;
        }
    }

    return -1;
}


static void
cg_stats_hist_add(uint8_t *hist, uint32_t ms)
{
    int  i, b;

    for (b = 0; b < CG_STATS_NBUCKETS - 1; b++) {
        if (ms <= cg_stats_bounds_ms[b]) {
            break;
        }
    }

    if (hist[b] == UINT8_MAX) {
        for (i = 0; i < CG_STATS_NBUCKETS; i++) {
            hist[i] >>= 1;
        }
    }

    hist[b]++;
}


void
cg_stats_add(cg_stats_t *st, uint32_t now, uint32_t created,
    const cg_stats_req_t *req, const cg_anomaly_t *an)
{
    int       i;
    uint32_t  cls;

    cg_stats_tick(st, now, created, an);

    if (st->cur < UINT32_MAX) {
        st->cur++;
    }

    if (req->own) {
        return;
    }

    cls = req->status / 100;

    if (cls < 1 || cls > CG_STATS_NCLASSES) {
        return;
    }

    st->classes[cls - 1]++;

    i = cg_stats_code_index(req->status);

    if (i >= 0) {
        st->codes[i]++;
    }

    if (cls == 4 && st->cur_err < UINT32_MAX) {
        st->cur_err++;
    }

    st->time_ms += req->time_ms;
    cg_stats_hist_add(st->hist, req->time_ms);

    if (req->upstream) {
        st->upstream++;
        st->upstream_ms += req->upstream_ms;
        cg_stats_hist_add(st->uhist, req->upstream_ms);
    }
}


void
cg_stats_view(cg_stats_t *st, uint32_t now, uint32_t created,
    const cg_anomaly_t *an)
{
    if (st->sec == 0) {
        return;
    }

    cg_stats_tick(st, now + 1, created, an);
}


uint32_t
cg_stats_quantile_ms(const uint8_t *hist, double q)
{
    int       i;
    uint32_t  total, rank, seen;

    total = 0;

    for (i = 0; i < CG_STATS_NBUCKETS; i++) {
        total += hist[i];
    }

    if (total == 0) {
        return 0;
    }

    /* the smallest bucket holding at least ceil(q * total) requests */

    rank = (uint32_t) (q * total);

    if ((double) rank < q * total) {
        rank++;
    }

    if (rank == 0) {
        rank = 1;
    }

    seen = 0;

    for (i = 0; i < CG_STATS_NBUCKETS; i++) {
        seen += hist[i];

        if (seen >= rank) {
            return cg_stats_bounds_ms[i];
        }
    }

    return cg_stats_bounds_ms[CG_STATS_NBUCKETS - 1];
}


uint64_t
cg_stats_responses(const cg_stats_t *st)
{
    int       i;
    uint64_t  n;

    n = 0;

    for (i = 0; i < CG_STATS_NCLASSES; i++) {
        n += st->classes[i];
    }

    return n;
}
