
/*
 * Copyright (C) client guard authors
 *
 * cg_decide: how a request is decided.
 *
 * Owns: the request's way through the module, read top to bottom in
 * cg_decide.c: identify the client (cg_identity), find its quota (Redis's
 * definitions first, cg_redis_quota, then the configuration's, cg_quota),
 * find its record (cg_zone), decide under one zone lock (the limiter,
 * cg_limiter, or the cluster-wide lease, cg_lease_take), the RateLimit
 * headers, the log line of a rejection, and, in the log phase, the
 * request's statistics (cg_stats_log).  Also the client_guard directive,
 * the request's context, and the $client_guard_client and
 * $client_guard_status variables.
 */


#ifndef _CG_DECIDE_H_INCLUDED_
#define _CG_DECIDE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_common.h"


/* client_guard zone=name | off: the zone at cmd->offset */
char *ngx_http_cg_decide_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* the phase handlers: NGX_HTTP_PREACCESS_PHASE, NGX_HTTP_LOG_PHASE */
ngx_int_t ngx_http_cg_decide_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_cg_decide_log_handler(ngx_http_request_t *r);

/*
 * The quota of a client, in the one order the decision and the status
 * output both use: Redis for this client, the configuration for this
 * client, Redis "default", the configuration's "default".  NULL when none
 * applies.  "redis_on": client_guard_redis is set; *redis (if not NULL)
 * tells whether the quota came from Redis, *policy
 * (if not NULL) is its RateLimit-Policy value when made already.  "hash"
 * is ngx_crc32_long() of the name.
 */
cg_quota_t *ngx_http_cg_client_quota(ngx_http_cg_quota_table_t *qt,
    ngx_uint_t redis_on, ngx_str_t *name, uint32_t hash, ngx_uint_t *redis,
    ngx_str_t **policy);

/* $client_guard_client, $client_guard_status */
ngx_int_t ngx_http_cg_client_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
ngx_int_t ngx_http_cg_outcome_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#endif /* _CG_DECIDE_H_INCLUDED_ */
