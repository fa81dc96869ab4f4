
/*
 * Copyright (C) client guard authors
 *
 * cg_redis_restore: the definitions put back into a Redis that lost them.
 *
 * Owns: what a worker does when Redis comes back without the quota
 * definitions it had read (no persistence, a failover to an empty
 * replica: the version key is gone): the restore lock ({prefix}restore,
 * SET NX, so that one worker of one node restores), the last good
 * definitions written back field by field with HSETNX (nothing an operator
 * wrote meanwhile is overwritten), then the version (SET NX), the one log
 * line, and the figures for the status output.  The definitions to write
 * are handed over (copied) by cg_redis_quota, which keeps its snapshot in
 * force meanwhile.  See docs/redis.md.
 */


#ifndef _CG_REDIS_RESTORE_H_INCLUDED_
#define _CG_REDIS_RESTORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_route.h"


/* run when a restore ended (the definitions can be read again) */
typedef void (*ngx_http_cg_restore_done_pt)(void);


/* at the worker's start: the link, its keys, this node's name */
ngx_int_t ngx_http_cg_redis_restore_init(ngx_cycle_t *cycle,
    ngx_http_cg_route_t *link, ngx_http_cg_link_conf_t *conf,
    ngx_str_t *node, ngx_http_cg_restore_done_pt done);
void ngx_http_cg_redis_restore_exit(void);

/*
 * Redis has lost the definitions: a restore of those this worker holds
 * begins (NGX_DECLINED: one is under way, or the link is down), each
 * field of {prefix}quotas ("key" 0) and {prefix}apikeys (1) is added
 * (copied), and ngx_http_cg_redis_restore() writes them back with the
 * version, unless another worker or node holds the restore lock.  Counted
 * once per loss.
 */
ngx_int_t ngx_http_cg_redis_restore_begin(void);
void ngx_http_cg_redis_restore_add(ngx_uint_t key, ngx_str_t *field,
    ngx_str_t *value);
void ngx_http_cg_redis_restore(uint64_t version);

/* Redis has the definitions again (read with a version): the loss ended */
void ngx_http_cg_redis_restore_found(void);


/* for the status output: this worker's view */

typedef struct {
    ngx_uint_t                  losses;    /* Redis found without them */
    ngx_uint_t                  restores;  /* of them, restored here */
    time_t                      at;        /* the last loss, 0: none */
    ngx_str_t                   by;        /* who restored it, "": unknown */
    ngx_uint_t                  quotas;    /* written back here, last */
    ngx_uint_t                  keys;
    ngx_uint_t                  kept;      /* found written meanwhile */
    ngx_uint_t                  quotas_total;  /* written, since start */
    ngx_uint_t                  keys_total;
} ngx_http_cg_restore_info_t;

ngx_http_cg_restore_info_t *ngx_http_cg_redis_restore_info(void);


#endif /* _CG_REDIS_RESTORE_H_INCLUDED_ */
