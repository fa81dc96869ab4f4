
/*
 * Copyright (C) client guard authors
 *
 * cg_status: the status endpoint and the per-client statistics behind it.
 *
 * Owns: the client_guard_status and client_guard_anomaly directives, deploy
 * markers kept in the zone, and the status handler with its JSON,
 * Prometheus, OpenMetrics and HTML (dashboard) answers.  See
 * docs/status.md.
 */


#ifndef _CG_STATUS_H_INCLUDED_
#define _CG_STATUS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_stats.h"
#include "cg_zone.h"


#define NGX_HTTP_CG_SCHEMA_VERSION   1


typedef struct {
    ngx_http_cg_zone_t       *zone;        /* NULL: the first zone */
    ngx_str_t                 token;       /* deploy markers by POST */
    ngx_uint_t                limit;       /* rows when "limit=" is absent */
} ngx_http_cg_status_conf_t;


/* publication of this node's figures to Redis, for the cluster view */

typedef struct {
    ngx_msec_t                interval;    /* 0: off */
    ngx_uint_t                clients;     /* at most this many, busiest */
    ngx_uint_t                set;
} ngx_http_cg_publish_t;


/* client_guard_status [zone=name] [limit=N] [deploy_token=secret] */
char *ngx_http_cg_status_directive(ngx_conf_t *cf, ngx_array_t *zones,
    ngx_http_cg_status_conf_t **scf);

/* client_guard_anomaly ratio=N min_rate=R | off */
char *ngx_http_cg_anomaly_directive(ngx_conf_t *cf, cg_anomaly_t *an);

/* defaults for what the directive left unset */
void ngx_http_cg_anomaly_init(cg_anomaly_t *an);

/* client_guard_status_publish [interval=time] [clients=N] | off */
char *ngx_http_cg_publish_directive(ngx_conf_t *cf, ngx_http_cg_publish_t *pb);

void ngx_http_cg_publish_init(ngx_http_cg_publish_t *pb);

/* per worker: the Redis link of the status (when client_guard_redis) */
ngx_int_t ngx_http_cg_status_init_process(ngx_cycle_t *cycle);
void ngx_http_cg_status_exit_process(ngx_cycle_t *cycle);


#endif /* _CG_STATUS_H_INCLUDED_ */
