
/*
 * Copyright (C) client guard authors
 *
 * cg_redis_quota: quota definitions and API keys read from Redis.
 *
 * Owns: this worker's snapshot of the hashes {prefix}quotas and
 * {prefix}apikeys with the version key in force, and the one being
 * built: the commands of a load, their replies handed to the snapshot
 * (cg_redis_snap: the parsing, the bad values), the swap by pointer when
 * complete, a Redis that lost the definitions handed to
 * cg_redis_restore with the snapshot in force kept; the version poll with
 * a periodic full reload; the lookups a decision makes.  See
 * docs/redis.md.
 */


#ifndef _CG_REDIS_QUOTA_H_INCLUDED_
#define _CG_REDIS_QUOTA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_limiter.h"
#include "cg_redis_snap.h"
#include "cg_route.h"


/* at the worker's start: the link, and its configuration (the keys) */
ngx_int_t ngx_http_cg_redis_quota_init(ngx_cycle_t *cycle,
    ngx_http_cg_route_t *link, ngx_http_cg_link_conf_t *conf);
void ngx_http_cg_redis_quota_exit(void);

/* reads the definitions again (a change notice, the link ready again) */
void ngx_http_cg_redis_quota_load(void);

/*
 * Reads them again when the version key changed, or "backstop" ms (and up
 * to a second more, this worker's jitter) after the last read whatever it
 * says; (ngx_msec_t) -1: only when the version changed, and the backstop
 * starts again (a link back after an outage).
 */
void ngx_http_cg_redis_quota_poll(ngx_msec_t backstop);

/* the quota Redis defines for exactly this client, or NULL */
cg_quota_t *ngx_http_cg_redis_quota(ngx_str_t *name, uint32_t hash);

/* the quota Redis defines as "default", or NULL */
cg_quota_t *ngx_http_cg_redis_default(void);

/* the client an API key (hex SHA-256 of it) belongs to; NGX_DECLINED */
ngx_int_t ngx_http_cg_redis_api_key(ngx_str_t *key, ngx_str_t *name);

/* for the status output: this worker's view */
ngx_array_t *ngx_http_cg_redis_errors(void);  /* redis_error_t, or NULL */
uint64_t ngx_http_cg_redis_version(void);     /* 0: no version key */
time_t ngx_http_cg_redis_loaded(void);        /* last load, 0: never */


#endif /* _CG_REDIS_QUOTA_H_INCLUDED_ */
