
/*
 * Copyright (C) client guard authors
 *
 * cg_redis: everything that talks to Redis through the link (cg_link).
 *
 * Owns: the client_guard_redis* directives, quota definitions and API keys
 * read from Redis (a per-worker snapshot swapped by pointer, refreshed on a
 * pub/sub notice, a version poll and a periodic backstop), the cluster-wide
 * count through allowance leases kept in the zone's records, requests that
 * wait for a lease, the failure policy with its circuit breaker, node
 * heartbeats and the $client_guard_redis variable.  See docs/redis.md.
 */


#ifndef _CG_REDIS_H_INCLUDED_
#define _CG_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_link.h"
#include "cg_limiter.h"
#include "cg_quota.h"
#include "cg_zone.h"


#define NGX_HTTP_CG_FAIL_LOCAL    0
#define NGX_HTTP_CG_FAIL_OPEN     1
#define NGX_HTTP_CG_FAIL_CLOSED   2


/* how Redis took part in a decision: $client_guard_redis */

#define NGX_HTTP_CG_REDIS_NONE       0
#define NGX_HTTP_CG_REDIS_LEASE      1    /* from the local lease at once */
#define NGX_HTTP_CG_REDIS_WAITED     2    /* after waiting for a lease */
#define NGX_HTTP_CG_REDIS_DOWN_OPEN  3    /* Redis down: allowed */
#define NGX_HTTP_CG_REDIS_DOWN_CLOSED 4   /* Redis down: rejected */
#define NGX_HTTP_CG_REDIS_DOWN_LOCAL 5    /* Redis down: local share */
#define NGX_HTTP_CG_REDIS_AHEAD      6    /* ahead of a lease, charged after */


typedef struct {
    ngx_http_cg_link_conf_t   *server;
    ngx_uint_t                  policy;
    ngx_uint_t                  closed_status;
    ngx_uint_t                  nodes;        /* local share, by default */
    ngx_msec_t                  lease;        /* traffic one lease covers */
    ngx_msec_t                  refresh;      /* version poll */
    ngx_uint_t                  ahead;        /* admitted ahead, per node */
} ngx_http_cg_redis_conf_t;


/* a bad value found in Redis, as the status output shows it */

typedef struct {
    ngx_str_t                   key;
    ngx_str_t                   field;
    ngx_str_t                   value;
    ngx_str_t                   error;
} ngx_http_cg_redis_error_t;


/* directives; "conf" is the module's main configuration */
char *ngx_http_cg_redis_cmd(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_cg_redis_failure_cmd(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_cg_redis_lease_cmd(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* from init_main_conf: checks, defaults */
char *ngx_http_cg_redis_init_conf(ngx_conf_t *cf,
    ngx_http_cg_redis_conf_t *scf);

ngx_int_t ngx_http_cg_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_cg_redis_exit_process(ngx_cycle_t *cycle);

/* the quota Redis defines for exactly this client, or NULL */
cg_quota_t *ngx_http_cg_redis_quota(ngx_str_t *name, uint32_t hash);

/* the quota Redis defines as "default", or NULL */
cg_quota_t *ngx_http_cg_redis_default(void);

/*
 * The quota of a client, in the one order enforcement and the status
 * output both use: Redis for this client, the configuration for this
 * client, Redis "default", the configuration's "default".  NULL when none
 * applies; "redis" (if not NULL) tells whether it came from Redis.
 * "hash" is ngx_crc32_long() of the name.
 */
cg_quota_t *ngx_http_cg_client_quota(ngx_http_cg_quota_table_t *qt,
    ngx_str_t *name, uint32_t hash, ngx_uint_t *redis);

/* the client an API key (hex SHA-256 of it) belongs to; NGX_DECLINED */
ngx_int_t ngx_http_cg_redis_api_key(ngx_str_t *key, ngx_str_t *name);

/*
 * Decides a request by the cluster-wide count.  NGX_OK: decided, "res" and
 * "binding" filled (a rejection by the "closed" policy sets ctx->code);
 * NGX_DECLINED: decide locally with *quota, which is scaled down to this
 * node's share when Redis is down and the policy is "local"; NGX_AGAIN: the
 * request waits for a lease and is resumed through r->write_event_handler,
 * after which the handler calls this function again and gets NGX_OK.
 */
ngx_int_t ngx_http_cg_redis_enforce(ngx_http_request_t *r, void *ctx,
    ngx_http_cg_zone_t *zone, cg_quota_t *quota, uint32_t hash,
    ngx_int_t *binding, cg_limit_result_t *res);

/*
 * For the phase handler: NGX_AGAIN while the request waits, NGX_OK once
 * it was resumed (call enforce again), NGX_DECLINED otherwise.
 */
ngx_int_t ngx_http_cg_redis_pending(void *ctx);

/* from the request context's cleanup: detaches a waiting request */
void ngx_http_cg_redis_cleanup(void *ctx);

/* $client_guard_redis */
ngx_int_t ngx_http_cg_redis_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

/* for the status output (this worker's view) */
ngx_array_t *ngx_http_cg_redis_errors(void);   /* redis_error_t, or NULL */
ngx_uint_t ngx_http_cg_redis_link_state(void); /* NGX_HTTP_CG_LINK_* */
uint64_t ngx_http_cg_redis_version(void);     /* 0: no version key */
time_t ngx_http_cg_redis_loaded(void);        /* last load, 0: never */
ngx_uint_t ngx_http_cg_redis_outages(void);   /* link lost, since start */
ngx_uint_t ngx_http_cg_redis_live_nodes(void);


#endif /* _CG_REDIS_H_INCLUDED_ */
