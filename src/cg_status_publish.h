
/*
 * Copyright (C) client guard authors
 *
 * cg_status_publish: publication of this node's figures to Redis.
 *
 * Owns: the client_guard_status_publish directive (its configuration
 * below), the per-worker Redis link of the status part (its own, so that
 * the status never delays a lease reply on the enforcement link of
 * cg_redis; the cluster view and the deploy markers use it too), and the
 * periodic job that publishes and reads the deploy markers back.
 */


#ifndef _CG_STATUS_PUBLISH_H_INCLUDED_
#define _CG_STATUS_PUBLISH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_route.h"
#include "cg_status_events.h"


typedef struct {
    ngx_msec_t                interval;    /* 0: off */
    ngx_uint_t                clients;     /* at most this many, busiest */
    ngx_uint_t                set;
} ngx_http_cg_publish_t;


/* this worker's link, and the keys of the status part */

typedef struct {
    ngx_http_cg_route_t      *link;        /* NULL: no client_guard_redis */
    ngx_str_t                 stats;       /* {prefix}stats: (node follows) */
    ngx_str_t                 nodes;       /* {prefix}stats-nodes */
    ngx_str_t                 history;     /* {prefix}history: (node) */
    ngx_http_cg_events_keys_t events;      /* {prefix}deploys, incidents */
} ngx_http_cg_status_redis_t;


extern ngx_http_cg_status_redis_t  ngx_http_cg_status_redis;


#endif /* _CG_STATUS_PUBLISH_H_INCLUDED_ */
