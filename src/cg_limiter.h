
/*
 * Copyright (C) client guard authors
 *
 * cg_limiter: the limiter maths and the limits' text, and nothing else.
 *
 * Owns: the GCRA rate limit with burst and the fixed-window quota, as pure
 * functions of (limit, state, now), and their text in the RateLimit headers
 * and the log.  No nginx runtime calls, no allocation, no locking: the
 * caller holds the zone lock and passes the current time.  Unit tested in
 * t/unit/test_cg_limiter.c.
 */


#ifndef _CG_LIMITER_H_INCLUDED_
#define _CG_LIMITER_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CG_LIMIT_NONE      0
#define CG_LIMIT_RATE      1    /* GCRA: count per period, plus burst */
#define CG_LIMIT_WINDOW    2    /* fixed window: count per period */


typedef struct {
    uint32_t        type;
    uint32_t        period;     /* milliseconds */
    uint64_t        count;      /* requests per period */
    uint64_t        burst;      /* CG_LIMIT_RATE: requests beyond the rate */
} cg_limit_t;


/* per client and limit, kept in shared memory */

typedef struct {
    uint32_t        type;       /* the type this state was made for */
    uint32_t        period;
    union {
        int64_t     tat;        /* RATE: theoretical arrival time, ns */
        int64_t     window;     /* WINDOW: window number since the epoch */
    };
    uint64_t        used;       /* WINDOW: requests admitted in the window */
} cg_limit_state_t;


#define CG_MAX_LIMITS      4

#define CG_MODE_ENFORCE    0
#define CG_MODE_DRY_RUN    1
#define CG_MODE_OFF        2


/* a client's quota: a mode and up to CG_MAX_LIMITS limits at once */

typedef struct {
    uint32_t        mode;
    uint32_t        nlimits;
    cg_limit_t      limits[CG_MAX_LIMITS];
} cg_quota_t;


typedef struct {
    uint64_t        remaining;  /* requests still admitted right now */
    uint64_t        reset;      /* ms until the limit is fully restored */
    uint64_t        retry;      /* ms until one more request is admitted */
    unsigned        allowed:1;
} cg_limit_result_t;


/*
 * Checks one request of "cost" units against a limit at time "now" (ms since
 * the epoch).  Fills "res"; changes "st" only when "commit" is set and the
 * request is allowed.  A state made for another limit shape is reset first.
 */
void cg_limit_check(const cg_limit_t *lim, cg_limit_state_t *st,
    int64_t now, uint64_t cost, int commit, cg_limit_result_t *res);

/*
 * Checks a request against every limit of a quota; it is allowed only when
 * all limits allow it, and then (with "commit") every state is charged.
 * "res" describes the limit that decides: the first that rejects, or else
 * the one with the fewest remaining requests.  Returns its index, or -1
 * when the quota has no limits.
 */
int cg_quota_check(const cg_quota_t *q, cg_limit_state_t *st, int64_t now,
    uint64_t cost, int commit, cg_limit_result_t *res);

/* the capacity a client sees: burst + 1 for a rate, count for a window */
uint64_t cg_limit_capacity(const cg_limit_t *lim);

/* the window a RateLimit-Policy header announces, in seconds (>= 1) */
uint64_t cg_limit_window_sec(const cg_limit_t *lim);


/*
 * The text of the RateLimit headers (draft-ietf-httpapi-ratelimit-headers)
 * and of the log: the callers give room enough (the lengths below).
 */

#define CG_UINT_LEN        20     /* digits of a uint64_t, at most */

/* "rate=100r/s burst=20" or "quota=5000/d" */
#define CG_LIMIT_PRINT_LEN  (sizeof("rate=r/s burst=") - 1 + 2 * CG_UINT_LEN)

/* a decimal number */
unsigned char *cg_limit_uint(unsigned char *p, uint64_t n);

/* "name";x= of a limit: "quota_d";q= */
unsigned char *cg_limit_policy_item(unsigned char *p, const cg_limit_t *lim,
    unsigned char x);

/* the RateLimit-Policy value of a quota, at most cg_quota_policy_len() */
size_t cg_quota_policy_len(const cg_quota_t *q);
unsigned char *cg_quota_policy_print(unsigned char *p, const cg_quota_t *q);

/* the limit as the configuration writes it, for logs */
unsigned char *cg_limit_print(unsigned char *p, const cg_limit_t *lim);


#endif /* _CG_LIMITER_H_INCLUDED_ */
