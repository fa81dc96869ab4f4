
/*
 * Copyright (C) client guard authors
 *
 * cg_lease: the allowance lease arithmetic, and nothing else.
 *
 * Owns: the lease a node holds of a client's cluster-wide quota (kept in
 * the client's record of the zone), and the pure functions that spend a
 * unit of it, size the next one, and take Redis's answer in
 * (docs/redis.md).  No nginx runtime calls, no globals, no allocation, no
 * locking: the caller holds the zone lock and passes the clock and the
 * settings in.  Unit tested in t/unit/test_cg_lease.c.  What a quota's
 * terms are for its leases (how many ahead, how long one lives, a rate's
 * share) is cg_lease_terms.h's, included here.
 *
 * Times are the low 32 bits of a monotonic millisecond clock (nginx's
 * ngx_current_msec, which every worker shares), compared as differences:
 * it passes 2^31 after 24.8 days.  0 is "not set": a time is stamped 1
 * rather than 0, and only a set one can be ahead of "now".
 */


#ifndef _CG_LEASE_H_INCLUDED_
#define _CG_LEASE_H_INCLUDED_


#include <stdint.h>

#include "cg_limiter.h"
#include "cg_lease_terms.h"


/* what a take says */

#define CG_LEASE_PASS          0    /* a unit of the lease spent */
#define CG_LEASE_REJECT        1    /* Redis has none for now */
#define CG_LEASE_WAIT          2    /* no lease: wait for the fetch */
#define CG_LEASE_DOWN          3    /* Redis unusable: the failure policy */
#define CG_LEASE_AHEAD         4    /* admitted ahead, charged after */

/* Redis's answer, "granted" when there was none, or keys failed */
#define CG_LEASE_NO_ANSWER     -1
#define CG_LEASE_KEYS_FAILED   -2

/*
 * cg_lease_t flags: "denied" is Redis failing on the client's keys; the
 * lease is a long one (asked for again when an eighth of it is left)
 */
#define CG_LEASE_FAILED        1
#define CG_LEASE_LONG_HELD     2

/*
 * a client at its rate: each node holds at most its share (by the live
 * node count) of HORIZON leases of the rate, granted ahead of time by the
 * GCRA and spent paced, and asks again when a quarter of it is left
 */
#define CG_LEASE_HORIZON       10


/*
 * a client's lease on this node, in its record: 80 bytes.  Paced times
 * ("next", "later_at") are the low 32 bits of the clock in us (ms x 1000):
 * compared as differences, good for 35 minutes either way.
 */

typedef struct {
    uint32_t        left;          /* units still to spend */
    uint32_t        spent;         /* requests admitted or rejected
                                      since "since": the rate */
    uint32_t        qhash;         /* the quota it was taken for */
    uint32_t        granted;       /* when the last one came */
    uint32_t        since;
    uint32_t        expires;       /* unusable from then on */
    uint32_t        fetching;      /* a fetch in flight since */
    uint32_t        denied;        /* Redis has none until then (or
                                      fails on its keys: CG_LEASE_FAILED) */
    uint32_t        headroom;      /* Redis had left, last reply */
    uint32_t        said;          /* Redis's last answer came then... */
    uint32_t        rest[CG_MAX_LIMITS];   /* ...with what each limit had
                                              left after it */
    uint32_t        next;          /* paced: the next unit not before */
    uint32_t        step;          /* paced: us between units; 0: not */
    uint32_t        later_at;      /* paced: the next lease's units from */
    uint16_t        want;          /* size of the last lease asked for */
    uint16_t        later;         /* of "left": the next lease's units */
    uint16_t        rate;          /* requests/s, estimated */
    uint16_t        back;          /* a lease's units that expired
                                      unspent, to give back to Redis */
    uint16_t        owed;          /* admitted ahead, not charged */
    uint8_t         binding;       /* the limit Redis said binds */
    uint8_t         flags;         /* CG_LEASE_FAILED */
} cg_lease_t;


/* what a take is given */

typedef struct {
    uint32_t        now;           /* ms, low 32 bits */
    uint32_t        qhash;         /* cg_lease_quota_hash() */
    uint32_t        ahead;         /* cg_lease_ahead() */
    uint32_t        reserve;
    uint32_t        lease_ms;      /* the traffic a lease covers */
    uint32_t        timeout_ms;    /* a fetch is given up after twice it */
    uint32_t        share;         /* cg_lease_share(): 0, no rate */
    uint32_t        least;         /* the smallest limit's count */
    uint32_t        far;           /* cg_lease_far(); 0: no long lease */
    uint32_t        nodes;         /* live, at least 1 */
    uint32_t        free_ms;       /* a unit of the binding limit frees
                                      up so long after Redis had none (a
                                      rate's interval); 0: a second */
    unsigned        ready:1;       /* the Redis link is ready */
    unsigned        broken:1;      /* the circuit breaker is open */
    unsigned        local:1;       /* no quota of its own: counted on the
                                      node until it sent "ahead" */
} cg_lease_in_t;


/* what a take (or an answer) says, and the fetch to make now, if any */

typedef struct {
    int             rc;            /* CG_LEASE_PASS ... */
    uint32_t        want;          /* 0: no fetch */
    uint32_t        owed;          /* of "want": admitted already */
    uint32_t        started;       /* the fetch's stamp */
    uint32_t        back;          /* units given back by the fetch... */
    uint32_t        back_at;       /* ...of a lease granted then */
    uint32_t        binding;       /* 0-based */
    uint32_t        paced;         /* the fetch may be granted ahead */
    uint32_t        far;           /* the fetch is for a long lease: what
                                      Redis grants it is at most what is
                                      left over this (CG_LEASE_FAR x the
                                      nodes); 0: not */
    uint64_t        retry;         /* ms, when rejected */
    uint64_t        remaining;     /* the cluster's, as far as known */
} cg_lease_out_t;


/* Redis's answer to a fetch, and what the fetch was */

typedef struct {
    int64_t         granted;       /* or CG_LEASE_NO_ANSWER, _KEYS_FAILED */
    int64_t         retry;         /* ms until a unit frees up */
    int64_t         binding;       /* 1-based, as the script says */
    int64_t         headroom;      /* the binding limit's rest */
    int64_t         rest[CG_MAX_LIMITS];   /* every limit's */
    int64_t         first;         /* us from now: the first unit... */
    int64_t         last;          /* ...and the last may be spent */
    uint32_t        nlimits;       /* of the fetch's quota */
    uint32_t        qhash;
    uint32_t        owed;          /* admitted ahead, paid by this fetch */
    uint32_t        started;
    uint32_t        now;
    uint32_t        ahead;         /* cg_lease_ahead() of the quota */
    uint32_t        ttl;           /* cg_lease_ttl() of a lease ... */
    uint32_t        ttl_small;     /* ...and of a small one */
    uint32_t        window;        /* cg_lease_window_left() */
    uint32_t        window_age;    /* ms since the youngest window began
                                      (UINT32_MAX: no window) */
    uint32_t        ttl_far;       /* cg_lease_ttl_far(), for "far" */
    unsigned        far:1;         /* the fetch was for a long lease */
    unsigned        rated:1;       /* the quota has a rate */
    uint32_t        horizon;       /* paced: ms, the fetch's horizon */
    unsigned        ready:1;       /* a charge may go out at once */
} cg_lease_answer_t;


/*
 * Spends a unit of the lease, admits the request ahead of one, or says why
 * not; fills out->want when a fetch must go out now (the lease is then
 * marked as fetching).
 */
int cg_lease_take(cg_lease_t *l, const cg_lease_in_t *in,
    cg_lease_out_t *out);

/*
 * Takes Redis's answer in: the units admitted ahead are paid first, the
 * rest is the new lease.  Nothing changes when the lease was since taken
 * for another quota or by another fetch.  Returns 1 when what was admitted
 * ahead meanwhile must be charged now (out->want, owed, started), else 0.
 */
int cg_lease_answer(cg_lease_t *l, const cg_lease_answer_t *a,
    cg_lease_out_t *out);

/*
 * A fetch that never went out: nobody fetches any more, what it was to
 * charge is owed again, what it was to give back is to give back again.
 */
void cg_lease_unsent(cg_lease_t *l, const cg_lease_out_t *fetch);

/*
 * What limit "i" of the client's quota has left in the cluster at "now"
 * (ms, low 32 bits; "now_ms" the wall clock): Redis's last word, refilled
 * since for a rate, full again in a new window, plus what this node holds
 * of it unspent or has to give back, less what it admitted ahead and has
 * not charged yet (a charge in flight is Redis's once it answers).  0 when
 * Redis has not answered for the client yet.
 */
int cg_lease_remaining(const cg_lease_t *l, uint32_t i, const cg_limit_t *lim,
    uint32_t now, int64_t now_ms, uint64_t *remaining);


#endif /* _CG_LEASE_H_INCLUDED_ */
