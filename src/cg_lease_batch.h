
/*
 * Copyright (C) client guard authors
 *
 * cg_lease_batch: lease requests to Redis, in batches.
 *
 * Owns: the lease requests ("fetches") of this worker: those of one turn
 * of the event loop (and those no request waits for, of
 * NGX_HTTP_CG_LEASE_GATHER ms) leave in one script call (EVALSHA, EVAL
 * once when Redis says NOSCRIPT; its arguments and its failures' log lines
 * are cg_lease_call.c's) for up to NGX_HTTP_CG_LEASE_BATCH clients, and
 * each client's part of the reply goes into its record's lease
 * (cg_lease_answer(), under the zone lock); the circuit breaker a failing
 * script opens for a second.  The records are pinned by whoever asks for
 * a fetch, until its reply.
 */


#ifndef _CG_LEASE_BATCH_H_INCLUDED_
#define _CG_LEASE_BATCH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_lease.h"
#include "cg_lease_call.h"
#include "cg_route.h"
#include "cg_zone.h"


/*
 * ms a fetch that no request waits for is held, to leave with the fetches
 * made meanwhile in one call (a lease is asked for while half of it is
 * left: 50 ms of traffic at the default lease of 100 ms)
 */
#define NGX_HTTP_CG_LEASE_GATHER  5


/* run after each reply, once its leases are in the records */
typedef void (*ngx_http_cg_lease_done_pt)(void);


/*
 * At the worker's start: the link the fetches go on, the key prefix, the
 * traffic a lease covers and the "ahead" units (for the lease's life).
 */
ngx_int_t ngx_http_cg_lease_batch_init(ngx_cycle_t *cycle,
    ngx_http_cg_route_t *link, ngx_str_t *prefix, ngx_msec_t lease,
    ngx_uint_t ahead, ngx_http_cg_lease_done_pt done);

/* the link is ready: the script is loaded ahead of the first EVALSHA */
void ngx_http_cg_lease_batch_ready(void);

/* the link went down: fetches not sent yet are dropped, as if never made */
void ngx_http_cg_lease_batch_abort(void);

/* at the worker's exit: that, and the memory of init */
void ngx_http_cg_lease_batch_exit(void);

/*
 * 1 when the master of the keys of the client whose name's CRC32 is "hash"
 * is up (one Redis: up)
 */
ngx_uint_t ngx_http_cg_lease_batch_up(uint32_t hash);

/* 1 while the breaker is open: leases are not asked for */
ngx_uint_t ngx_http_cg_lease_batch_broken(void);

/*
 * A fetch of "out->want" units (of which "out->owed" were admitted
 * already) for the client of "rec", which the caller has pinned for it:
 * queued for this turn's script call when "now" (a request waits for it),
 * else gathered with the fetches of the next NGX_HTTP_CG_LEASE_GATHER ms
 * (or until a batch is full, or a request waits).  Not holding the zone
 * lock.
 */
void ngx_http_cg_lease_fetch(ngx_http_cg_zone_t *zone,
    ngx_http_cg_record_t *rec, ngx_str_t *name, cg_quota_t *quota,
    uint32_t qhash, cg_lease_out_t *out, ngx_uint_t now);

/* a request waits: the fetches gathered so far leave in this turn */
void ngx_http_cg_lease_batch_flush(void);


#endif /* _CG_LEASE_BATCH_H_INCLUDED_ */
