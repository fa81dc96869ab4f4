
/*
 * Copyright (C) client guard authors
 *
 * cg_redis: the Redis part of the module, put together.
 *
 * Owns: the client_guard_redis, client_guard_redis_failure,
 * client_guard_redis_lease and client_guard_node directives, this worker's
 * two links to Redis (commands; the subscriber for change notices) and what
 * they start and stop: the quota definitions (cg_redis_quota), the lease
 * requests (cg_lease_batch) and the decisions that wait for them
 * (cg_lease_take); the version poll, this node's heartbeats, and the link's
 * figures for the status output.  See docs/redis.md.
 */


#ifndef _CG_REDIS_H_INCLUDED_
#define _CG_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_lease_take.h"
#include "cg_link.h"


typedef struct {
    ngx_http_cg_link_conf_t    *server;       /* client_guard_redis */
    ngx_http_cg_lease_conf_t    lease;
    ngx_msec_t                  refresh;      /* version poll */
    ngx_str_t                   node;         /* client_guard_node */
} ngx_http_cg_redis_conf_t;


/*
 * The directives, on the main configuration's ngx_http_cg_redis_conf_t *
 * at cmd->offset (made by the first of them).
 */
char *ngx_http_cg_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_cg_redis_failure_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_cg_redis_lease_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_cg_redis_node_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* once the configuration is read: checks, defaults */
char *ngx_http_cg_redis_init_conf(ngx_conf_t *cf,
    ngx_http_cg_redis_conf_t *rcf);

/* a worker's start and exit */
ngx_int_t ngx_http_cg_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_cg_redis_exit_process(ngx_cycle_t *cycle);

/* for the status output (this worker's view) */
ngx_uint_t ngx_http_cg_redis_link_state(void);  /* NGX_HTTP_CG_LINK_* */
ngx_uint_t ngx_http_cg_redis_outages(void);     /* link lost, since start */
ngx_uint_t ngx_http_cg_redis_live_nodes(void);


#endif /* _CG_REDIS_H_INCLUDED_ */
