
/*
 * Copyright (C) client guard authors
 *
 * cg_lease_take: the cluster-wide count's part in deciding a request.
 *
 * Owns: a unit taken from the client's lease under the zone lock that the
 * decision holds (cg_lease), the fetch that follows it (cg_lease_batch),
 * the failure policy when Redis cannot be used, the requests that wait for
 * a lease until it comes or the command timeout hands them to the policy,
 * and the $client_guard_redis variable.  See docs/redis.md.
 */


#ifndef _CG_LEASE_TAKE_H_INCLUDED_
#define _CG_LEASE_TAKE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_lease.h"
#include "cg_route.h"
#include "cg_zone.h"


/* client_guard_redis_failure */

#define NGX_HTTP_CG_FAIL_LOCAL       0
#define NGX_HTTP_CG_FAIL_OPEN        1
#define NGX_HTTP_CG_FAIL_CLOSED      2


/* how Redis took part in a decision: $client_guard_redis */

#define NGX_HTTP_CG_REDIS_NONE       0
#define NGX_HTTP_CG_REDIS_LEASE      1    /* from the local lease at once */
#define NGX_HTTP_CG_REDIS_WAITED     2    /* after waiting for a lease */
#define NGX_HTTP_CG_REDIS_DOWN_OPEN  3    /* Redis down: allowed */
#define NGX_HTTP_CG_REDIS_DOWN_CLOSED  4  /* Redis down: rejected */
#define NGX_HTTP_CG_REDIS_DOWN_LOCAL 5    /* Redis down: local share */
#define NGX_HTTP_CG_REDIS_AHEAD      6    /* ahead of a lease, charged after */


/* the settings of client_guard_redis_failure and client_guard_redis_lease */

typedef struct {
    ngx_uint_t                  policy;       /* NGX_HTTP_CG_FAIL_* */
    ngx_uint_t                  closed_status;
    ngx_uint_t                  nodes;        /* local share, by default */
    ngx_msec_t                  lease;        /* traffic one lease covers */
    ngx_uint_t                  ahead;        /* admitted ahead, per node */
} ngx_http_cg_lease_conf_t;


/* a request's part, in r->pool; in the waiters only while it waits */

typedef struct {
    ngx_queue_t                 queue;
    ngx_http_request_t         *r;
    ngx_http_cg_zone_t         *zone;
    ngx_http_cg_record_t       *rec;         /* pinned by the request */
    ngx_str_t                   name;
    cg_quota_t                 *quota;       /* the decision's, or "kept" */
    cg_quota_t                  kept;        /* while it waits */
    uint32_t                    qhash;
    uint32_t                    hash;        /* the name's CRC32 */
    cg_lease_in_t               in;          /* the quota's part, made
                                                before the zone lock */
    ngx_msec_t                  deadline;
    ngx_uint_t                  how;         /* NGX_HTTP_CG_REDIS_* */
    ngx_uint_t                  code;        /* closed: its status */
    cg_lease_out_t              out;         /* what the take said */
    unsigned                    local:1;     /* a default quota */
    unsigned                    waiting:1;
    unsigned                    resumed:1;
} ngx_http_cg_lease_req_t;


/*
 * At the worker's start: the link leases come from, the settings, and the
 * link's command timeout (how long a request waits at most).
 */
void ngx_http_cg_lease_init(ngx_cycle_t *cycle, ngx_http_cg_route_t *link,
    ngx_http_cg_lease_conf_t *conf, ngx_msec_t timeout);

/* at its exit: requests still waiting are never resumed */
void ngx_http_cg_lease_exit(void);

/* the nodes seen alive (heartbeats): the "local" policy's share */
void ngx_http_cg_lease_nodes(ngx_uint_t n);

/* the waiting requests decide again (a reply came, the link changed) */
void ngx_http_cg_lease_wake(void);

/*
 * The request's part for "quota", made once in r->pool, with what the
 * take needs of the quota (before the zone lock); "hash" is the name's
 * CRC32.  NULL when out of memory.  "quota" is used until the decision
 * returns (copied if the request waits).
 */
ngx_http_cg_lease_req_t *ngx_http_cg_lease_req(ngx_http_request_t *r,
    ngx_http_cg_lease_req_t *lr, ngx_str_t *name, uint32_t hash,
    cg_quota_t *quota);

/*
 * Under the zone lock: a unit of the lease of "rec" (NULL: no record, the
 * failure policy), or why not, in lr->out; a fetch due is pinned and left
 * for ngx_http_cg_lease_send().  Returns CG_LEASE_PASS ... CG_LEASE_AHEAD.
 * A request that waited has its answer already: its take is not repeated.
 */
ngx_uint_t ngx_http_cg_lease_take(ngx_http_cg_lease_req_t *lr,
    ngx_http_cg_zone_t *zone, ngx_http_cg_record_t *rec);

/*
 * Under the zone lock, for CG_LEASE_DOWN: the failure policy.  NGX_OK when
 * it decided ("res"; a rejection with lr->code), NGX_DECLINED when the
 * request is decided on this node with "quota", scaled down to its share.
 */
ngx_int_t ngx_http_cg_lease_policy(ngx_http_cg_lease_req_t *lr,
    cg_quota_t *quota, cg_limit_result_t *res);

/* the decision a take made, as the limiter's result; the binding limit */
ngx_int_t ngx_http_cg_lease_result(ngx_http_cg_lease_req_t *lr,
    cg_limit_result_t *res);

/* after the lock: the fetch the take made due, if any */
void ngx_http_cg_lease_send(ngx_http_cg_lease_req_t *lr);

/*
 * CG_LEASE_WAIT: the request waits for the lease, at most the command
 * timeout, and is resumed through r->write_event_handler: NGX_AGAIN.
 */
ngx_int_t ngx_http_cg_lease_wait(ngx_http_cg_lease_req_t *lr);

/* NGX_AGAIN while the request waits, NGX_OK once it was resumed */
ngx_int_t ngx_http_cg_lease_pending(ngx_http_cg_lease_req_t *lr);

/* the request goes (its pool's cleanup): out of the waiters */
void ngx_http_cg_lease_cleanup(ngx_http_cg_lease_req_t *lr);

/* $client_guard_redis */
ngx_int_t ngx_http_cg_lease_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#endif /* _CG_LEASE_TAKE_H_INCLUDED_ */
