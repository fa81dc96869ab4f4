
/*
 * Copyright (C) client guard authors
 *
 * cg_stats: per-client statistics maths, and nothing else.
 *
 * Owns: the statistics block kept in each client's record (answers by
 * status class and code, request and upstream times, a histogram of
 * request times, and the client's history with its anomaly flags,
 * cg_history) and the pure functions that update and read it.  No nginx
 * runtime calls, no allocation, no locking, no libm: the caller holds the
 * zone lock and passes the time.  Unit tested in t/unit/test_cg_stats.c.
 *
 * Two histograms of request times: "latency" counts every answer in its
 * bucket up to the last bound but one (Prometheus' buckets are their
 * running sums, +Inf all answers), 32-bit counters that wrap after 2^32
 * answers of a client in one bucket on one node (a counter reset to
 * Prometheus); "hist" and "uhist" are 8-bit counts
 * halved when one fills up, so that the p99 read from them is that of the
 * last few hundred requests.
 */


#ifndef _CG_STATS_H_INCLUDED_
#define _CG_STATS_H_INCLUDED_


#include <stdint.h>

#include "cg_history.h"


#define CG_STATS_NCLASSES   5       /* 1xx .. 5xx */
#define CG_STATS_NCODES     10      /* see cg_stats_codes[] */
#define CG_STATS_NBUCKETS   12      /* see cg_stats_bounds_ms[] */


extern const uint16_t  cg_stats_codes[CG_STATS_NCODES];
extern const uint32_t  cg_stats_bounds_ms[CG_STATS_NBUCKETS];


/* in shared memory, one per client: 592 bytes */

typedef struct {
    uint64_t        classes[CG_STATS_NCLASSES];  /* answers, by class */
    uint64_t        time_ms;       /* sum of request times */
    uint64_t        upstream_ms;   /* sum of upstream response times */
    uint32_t        codes[CG_STATS_NCODES];      /* answers, by code */
    uint32_t        upstream;      /* answers that went upstream */
    uint32_t        latency[CG_STATS_NBUCKETS - 1];  /* request times */
    uint8_t         hist[CG_STATS_NBUCKETS];     /* recent request times */
    uint8_t         uhist[CG_STATS_NBUCKETS];    /* recent upstream times */
    cg_history_t    history;
} cg_stats_t;


/* one finished request, as the log phase sees it */

typedef struct {
    uint32_t        status;        /* HTTP status sent */
    uint32_t        time_ms;       /* request time */
    uint32_t        upstream_ms;   /* upstream time, when "upstream" */
    unsigned        upstream:1;
    unsigned        own:1;         /* the module's own rejection */
} cg_stats_req_t;


/*
 * Counts one finished request at "now" (ms since the epoch): in the
 * history as offered (and as rejected, when it was the module's own
 * rejection, which is no answer of the client's), elsewhere as an answer.
 */
void cg_stats_add(cg_stats_t *st, uint64_t now, const cg_stats_req_t *req,
    const cg_anomaly_t *an);

/* a reader's copy brought to "now" */
void cg_stats_view(cg_stats_t *st, uint64_t now, const cg_anomaly_t *an);

/* the index of a status code in codes[], or -1 */
int cg_stats_code_index(uint32_t status);

/* the q-quantile (0 < q <= 1) of a recent histogram, in ms; 0 when empty */
uint32_t cg_stats_quantile_ms(const uint8_t *hist, double q);

/* all answers counted in classes[] */
uint64_t cg_stats_responses(const cg_stats_t *st);


#endif /* _CG_STATS_H_INCLUDED_ */
