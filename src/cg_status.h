
/*
 * Copyright (C) client guard authors
 *
 * cg_status: the status endpoint and the per-client statistics behind it,
 * as the rest of the module sees them.
 *
 * Owns: the configuration of the client_guard_status directive, and the
 * declarations of what the module calls in the status part: the
 * directives (client_guard_status in cg_status.c,
 * client_guard_status_publish in cg_status_publish.c), the worker's start
 * and exit (cg_status_publish.c).  The
 * rooms of the status part, from the floor up: cg_out and cg_slice, then
 * cg_status_events, cg_report, cg_status_json and cg_status_prom,
 * cg_status_publish, cg_cluster and cg_status_cluster, cg_status_self (a
 * team's own view), and cg_status.c (the handler).  See docs/status.md.
 */


#ifndef _CG_STATUS_H_INCLUDED_
#define _CG_STATUS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_stats.h"
#include "cg_zone.h"
#include "cg_status_publish.h"


typedef struct {
    ngx_http_cg_zone_t       *zone;        /* NULL: the first zone */
    ngx_str_t                 token;       /* deploy markers by POST */
    ngx_uint_t                limit;       /* 0: 100, Prometheus all */
} ngx_http_cg_status_conf_t;


/*
 * The directives, each on its configuration at cmd->offset:
 * client_guard_status [zone=name] [limit=N] [deploy_token=secret] (a
 * location's) and client_guard_status_publish [interval=time] [clients=N]
 * | off (main's)
 */
char *ngx_http_cg_status_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* client_guard_anomaly ratio=N min_rate=R | off */



/* client_guard_status_publish [interval=time] [clients=N] | off */
char *ngx_http_cg_publish_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

void ngx_http_cg_publish_init(ngx_http_cg_publish_t *pb);

/* per worker: the Redis link of the status (when client_guard_redis) */
ngx_int_t ngx_http_cg_status_init_process(ngx_cycle_t *cycle);
void ngx_http_cg_status_exit_process(ngx_cycle_t *cycle);


#endif /* _CG_STATUS_H_INCLUDED_ */
