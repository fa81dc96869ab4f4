
/*
 * Copyright (C) client guard authors
 *
 * cg_history: a client's recent traffic, and what is unusual in it.
 *
 * Owns: the ring of the last CG_HISTORY_SLOTS steps of a client's traffic
 * (15 minutes at the default 10 s step) kept in its record: requests
 * offered (passed and rejected), the module's own rejections, 4xx and 5xx
 * answers, a byte per count (cg_history_encode: exact to 31, within 3%
 * above); and the anomaly detector that judges the last two steps against
 * the client's own baseline.  Pure: no nginx calls, no allocation, no
 * locking, no libm; the caller holds the zone lock and passes the step
 * number.  Unit tested in t/unit/test_cg_history.c.
 *
 * The baseline (docs/status.md, "Anomalies"): the median of one-minute
 * bins (6 steps each) of the ring, leaving out the last 3 steps and every
 * bin with a step recorded while the client was flagged: a surge cannot
 * raise the baseline it is judged against, and a short spike in the past
 * does not move a median.  A flag that lasts an hour (360 steps) is taken
 * for the client's new normal: the baseline is learnt again from the ring.
 * A client with no complete bin yet is "young": nothing is flagged for it,
 * and the status says so.
 */


#ifndef _CG_HISTORY_H_INCLUDED_
#define _CG_HISTORY_H_INCLUDED_


#include <stdint.h>


#define CG_HISTORY_SLOTS     90     /* steps kept */
#define CG_HISTORY_BIN       6      /* steps in a baseline bin */
#define CG_HISTORY_SKIP      3      /* steps before now left out of it */

#define CG_HISTORY_OFFERED   0      /* series of a step */
#define CG_HISTORY_REJECTED  1
#define CG_HISTORY_4XX       2
#define CG_HISTORY_5XX       3
#define CG_HISTORY_SERIES    4

#define CG_ANOMALY_SURGE     0      /* flags */
#define CG_ANOMALY_4XX       1
#define CG_ANOMALY_5XX       2
#define CG_ANOMALY_N         3


/* the detector's settings: client_guard_anomaly */

typedef struct {
    float           ratio;         /* a surge: at ratio x baseline (2.5) */
    float           min_rate;      /* ...and this much above it, r/s (2) */
    float           error_share;   /* errors: this much over the baseline
                                      share of answers (0.15) */
    float           error_rate;    /* ...and this many more a second (1) */
    uint32_t        step_ms;       /* the history's step (10000) */
    uint32_t        off;           /* client_guard_anomaly off */
} cg_anomaly_t;


/* in a client's record: 424 bytes */

typedef struct {
    uint32_t        slot;          /* the step "cur" counts; 0: none yet */
    uint32_t        first;         /* the first step of the client */
    uint32_t        cur[CG_HISTORY_SERIES];
    uint32_t        trip;          /* offered in "cur" that calls for a
                                      look before the step ends */
    uint32_t        since[CG_ANOMALY_N];   /* step flagged at; 0: not */
    float           base[CG_ANOMALY_N];    /* offered per step; shares */
    uint32_t        flagged[3];    /* a bit per slot: recorded flagged */
    uint8_t         ring[CG_HISTORY_SLOTS][CG_HISTORY_SERIES];
} cg_history_t;


/* what the detector makes of the last steps */

typedef struct {
    double          rate;          /* offered per second, last 2 steps */
    double          base_rate;     /* its baseline */
    double          ratio;         /* rate over baseline */
    double          share[2];      /* 4xx, 5xx share of answers now */
    double          base_share[2]; /* their baselines */
    double          error_rate[2]; /* 4xx, 5xx per second now */
    unsigned        young:1;       /* no baseline yet */
} cg_history_view_t;


/* brings the history to step "slot" with nothing counted (a reader's copy) */
void cg_history_advance(cg_history_t *h, uint32_t slot,
    const cg_anomaly_t *an);

/* the current step's count reached the trip: judged at once */
void cg_history_trip(cg_history_t *h, const cg_anomaly_t *an);

/*
 * Counts requests "offered", of which "rejected", and answers "e4" and
 * "e5" at step "slot" (the time in ms over the step), completing the steps
 * before it first; a completed step is judged, and the current one once
 * its count makes a surge plain.  Inline: a request's own path (one
 * request is 1 and three 0 or 1).  A count cannot wrap: 2^32 requests of
 * one client in one step of a minute would be 70 million a second.
 */
static inline void
cg_history_add(cg_history_t *h, uint32_t slot, uint32_t offered,
    uint32_t rejected, uint32_t e4, uint32_t e5, const cg_anomaly_t *an)
{
    if (slot != h->slot) {
        cg_history_advance(h, slot, an);
    }

    h->cur[CG_HISTORY_OFFERED] += offered;
    h->cur[CG_HISTORY_REJECTED] += rejected;
    h->cur[CG_HISTORY_4XX] += e4;
    h->cur[CG_HISTORY_5XX] += e5;

    if (h->cur[CG_HISTORY_OFFERED] >= h->trip) {
        cg_history_trip(h, an);
    }
}


/*
 * The detector's figures at ms "now" for a history brought to its step,
 * the current step counted for the part of it gone by.
 */
void cg_history_view(const cg_history_t *h, uint64_t now,
    const cg_anomaly_t *an, cg_history_view_t *v);

/*
 * Requests of a series per second over about "ms" before "now": the
 * current step so far and whole steps before it (at least one, at most
 * the ring; steps before the client's first count as empty).
 */
double cg_history_rate(const cg_history_t *h, int series, uint64_t now,
    uint32_t ms, const cg_anomaly_t *an);

/* the count of a series in the step "age" steps before the current one */
uint32_t cg_history_at(const cg_history_t *h, int series, uint32_t age);

/* 1 when the step "age" steps ago was recorded while flagged */
int cg_history_was_flagged(const cg_history_t *h, uint32_t age);

/* a count in a byte, and back */
uint8_t cg_history_encode(uint32_t n);
uint32_t cg_history_decode(uint8_t c);


#endif /* _CG_HISTORY_H_INCLUDED_ */
