
/*
 * Copyright (C) client guard authors
 *
 * cg_stats: per-client statistics maths, and nothing else.
 *
 * Owns: the statistics block kept in each client's shared memory record
 * (responses by status class and code, request and upstream times, rates
 * and anomaly flags) and the pure functions that update and read it.  No
 * nginx runtime calls, no allocation, no locking, no libm: the caller holds
 * the zone lock and passes the current time.  Unit tested in
 * t/unit/test_cg_stats.c.
 *
 * Rates are exponentially weighted moving averages (as the load average
 * is) with time constants of 10, 60 and 300 seconds, fed once per second
 * with the requests counted in that second: three floats instead of rings
 * of buckets, so that the record stays small.  Response times go into a
 * small log-scale histogram of 8-bit counts that are halved when one
 * fills up: the p99 read from it is that of the last few hundred requests.
 */


#ifndef _CG_STATS_H_INCLUDED_
#define _CG_STATS_H_INCLUDED_


#include <stdint.h>


#define CG_STATS_NCLASSES   5       /* 1xx .. 5xx */
#define CG_STATS_NCODES     10      /* see cg_stats_codes[] */
#define CG_STATS_NBUCKETS   12      /* see cg_stats_bounds_ms[] */

#define CG_STATS_R10        0       /* rate[] indices; err[] has 10 s, 5 min */
#define CG_STATS_R60        1
#define CG_STATS_R300       2

#define CG_STATS_SURGE      0x01    /* flags */
#define CG_STATS_ERRORS     0x02


extern const uint16_t  cg_stats_codes[CG_STATS_NCODES];
extern const uint32_t  cg_stats_bounds_ms[CG_STATS_NBUCKETS];


/* in shared memory, one per client: 168 bytes */

typedef struct {
    uint64_t        classes[CG_STATS_NCLASSES];  /* responses, by class */
    uint64_t        time_ms;       /* sum of request times */
    uint64_t        upstream_ms;   /* sum of upstream response times */
    uint32_t        codes[CG_STATS_NCODES];      /* responses, by code */
    uint32_t        upstream;      /* responses that went upstream */
    uint32_t        sec;           /* the second "cur" counts, epoch s */
    uint32_t        cur;           /* requests in that second */
    uint32_t        cur_err;       /* 4xx answers in that second */
    float           rate[3];       /* requests/s, EWMA 10 s, 1 min, 5 min */
    float           err[2];        /* 4xx answers/s, EWMA 10 s, 5 min */
    uint32_t        surge_since;   /* epoch s, 0 when not flagged */
    uint32_t        errors_since;
    uint8_t         hist[CG_STATS_NBUCKETS];     /* request time */
    uint8_t         uhist[CG_STATS_NBUCKETS];    /* upstream time */
} cg_stats_t;


/* anomaly thresholds */

typedef struct {
    float           ratio;         /* flag at ratio x baseline (5) */
    float           min_rate;      /* ...and at least this per second (1) */
    uint32_t        new_clients;   /* no warm-up correction of baselines */
} cg_anomaly_t;


/* one finished request, as the log phase sees it */

typedef struct {
    uint32_t        status;        /* HTTP status sent */
    uint32_t        time_ms;       /* request time */
    uint32_t        upstream_ms;   /* upstream time, when "upstream" */
    unsigned        upstream:1;
    unsigned        own:1;         /* the module's own rejection */
} cg_stats_req_t;


/*
 * Brings the rates up to second "now": folds the requests counted in
 * earlier seconds into the averages and re-evaluates the anomaly flags.
 * "created" is when the client's record was made (its baseline's age).
 */
void cg_stats_tick(cg_stats_t *st, uint32_t now, uint32_t created,
    const cg_anomaly_t *an);

/*
 * Counts one finished request at second "now".  The module's own
 * rejections count towards the request rate only: they are counted apart,
 * as outcomes, by the caller.
 */
void cg_stats_add(cg_stats_t *st, uint32_t now, uint32_t created,
    const cg_stats_req_t *req, const cg_anomaly_t *an);

/*
 * A reader's view: "st" is a private copy, brought to "now" with the current
 * second counted as complete, so that a burst shows at once.
 */
void cg_stats_view(cg_stats_t *st, uint32_t now, uint32_t created,
    const cg_anomaly_t *an);

/* the index of a status code in codes[], or -1 */
int cg_stats_code_index(uint32_t status);

/* the q-quantile (0 < q <= 1) of a histogram, in ms; 0 when empty */
uint32_t cg_stats_quantile_ms(const uint8_t *hist, double q);

/* all responses counted in classes[] */
uint64_t cg_stats_responses(const cg_stats_t *st);

/*
 * The baseline an average over 5 min gives for a record "created" at that
 * second: an average that started from zero less than 5 min ago is
 * corrected for it (divided by 1 - exp(-age / 300 s)), so that a client
 * seen for the first time, or every client after a restart, is compared
 * with its own short history rather than with zero.  Not corrected when
 * an->new_clients is set.
 */
double cg_stats_baseline(float avg, uint32_t now, uint32_t created,
    const cg_anomaly_t *an);

/* current rate over baseline (at least min_rate) */
double cg_stats_ratio(double cur, double base, const cg_anomaly_t *an);


#endif /* _CG_STATS_H_INCLUDED_ */
