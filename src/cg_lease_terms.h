
/*
 * Copyright (C) client guard authors
 *
 * cg_lease_terms: a quota's terms for its leases, and nothing else.
 *
 * Owns: what a client's quota (cg_quota_t) says of the leases taken of it,
 * whatever the lease holds: how many requests may be admitted ahead of
 * one, how long one lives, a node's share of a rate, the most a long lease
 * may hold and how long it lives, its windows' ends and ages, and the hash
 * that ties a lease to the quota it was taken for.  Pure functions of the
 * quota and the wall clock: no nginx, no globals, no lease state.  The
 * lease itself is cg_lease.h's (which includes this).  Unit tested in
 * t/unit/test_cg_lease_terms.c.
 */


#ifndef _CG_LEASE_TERMS_H_INCLUDED_
#define _CG_LEASE_TERMS_H_INCLUDED_


#include <stdint.h>

#include "cg_limiter.h"


/* a lease is never bigger than this */
#define CG_LEASE_WANT_MAX      10000

/*
 * a client with no quota of its own far below it: a lease may cover up to
 * LONG ms of its traffic (and live twice that), when it is no more than a
 * FAR-th of what the quota has left per node (Redis caps it so at the
 * grant: the first one goes before Redis said what is left)
 */
#define CG_LEASE_LONG          30000
#define CG_LEASE_FAR           16

/*
 * How many requests of a client a node may admit ahead of a lease: "ahead"
 * of the configuration, at most 1% of every limit; and in *reserve how
 * much Redis must have said is left for that: more than 8 times as many,
 * and more than a tenth of every limit.
 */
uint32_t cg_lease_ahead(const cg_quota_t *q, uint32_t ahead,
    uint32_t *reserve);

/*
 * How long a lease lives, in ms, at wall clock "now_ms": at most a second;
 * twice "lease_ms" with a rate limit, unless the lease is small (no more
 * than the ahead units), which lasts its second; a window's ends with it.
 */
uint32_t cg_lease_ttl(const cg_quota_t *q, int64_t now_ms, uint32_t lease_ms,
    int small);

/*
 * The units of a rate a node may hold at its limit: its share of
 * "horizon_ms" of the slowest rate of the quota, by the live nodes (at
 * least 1 unit); 0 when the quota has no rate.
 */
uint32_t cg_lease_share(const cg_quota_t *q, uint32_t horizon_ms,
    uint32_t nodes);

/*
 * The most a long lease may hold (a client with no quota of its own):
 * for a rate, this node's share of 2 x "lease_ms" of it, as much as an
 * ordinary lease may hold unspent; CG_LEASE_WANT_MAX with windows only.
 */
uint32_t cg_lease_far(const cg_quota_t *q, uint32_t lease_ms, uint32_t nodes);

/* how long a long lease lives: 2 x CG_LEASE_LONG, its window's end */
uint32_t cg_lease_ttl_far(const cg_quota_t *q, int64_t now_ms);

/* ms until the shortest window of the quota ends; UINT32_MAX: none */
uint32_t cg_lease_window_left(const cg_quota_t *q, int64_t now_ms);

/* ms since the youngest window of the quota began; UINT32_MAX: none */
uint32_t cg_lease_window_age(const cg_quota_t *q, int64_t now_ms);

/* what a lease is for: the mode and the limits in use; never 0 */
uint32_t cg_lease_quota_hash(const cg_quota_t *q);


#endif /* _CG_LEASE_TERMS_H_INCLUDED_ */
