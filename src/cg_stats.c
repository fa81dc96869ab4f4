
/*
 * Copyright (C) client guard authors
 *
 * Per-client statistics: counters, histograms of times, and the history
 * (cg_history).  See cg_stats.h.
 */


#include "cg_stats.h"


const uint16_t  cg_stats_codes[CG_STATS_NCODES] = {
    400, 401, 403, 404, 422, 429, 500, 502, 503, 504
};

/* upper bounds; the last bucket also holds anything slower */

const uint32_t  cg_stats_bounds_ms[CG_STATS_NBUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000
};


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


/* counts "ms" in its bucket of a recent histogram; returns the bucket */

static int
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

    return b;
}


void
cg_stats_add(cg_stats_t *st, uint64_t now, const cg_stats_req_t *req,
    const cg_anomaly_t *an)
{
    int       i, b;
    uint32_t  cls, slot;

    slot = (uint32_t) (now / an->step_ms);

    /* the module's own rejection is no answer of the client's */

    if (req->own) {
        cg_history_add(&st->history, slot, 1, 1, 0, 0, an);
        return;
    }

    cls = req->status / 100;

    cg_history_add(&st->history, slot, 1, 0, cls == 4, cls == 5, an);

    if (cls < 1 || cls > CG_STATS_NCLASSES) {
        return;
    }

    st->classes[cls - 1]++;

    i = cg_stats_code_index(req->status);

    if (i >= 0) {
        st->codes[i]++;
    }

    st->time_ms += req->time_ms;
    b = cg_stats_hist_add(st->hist, req->time_ms);

    if (b < CG_STATS_NBUCKETS - 1) {
        st->latency[b]++;
    }

    if (req->upstream) {
        st->upstream++;
        st->upstream_ms += req->upstream_ms;
        (void) cg_stats_hist_add(st->uhist, req->upstream_ms);
    }
}


void
cg_stats_view(cg_stats_t *st, uint64_t now, const cg_anomaly_t *an)
{
    cg_history_advance(&st->history, (uint32_t) (now / an->step_ms), an);
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
