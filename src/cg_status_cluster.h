
/*
 * Copyright (C) client guard authors
 *
 * cg_status_cluster: the status with "scope=cluster".
 *
 * Owns: reading every node's publication back from Redis (the nodes, then
 * one HGETALL per node, with "history=1" one HMGET per fresh node of the
 * histories of the clients shown), summing the fresh ones per client
 * (cg_cluster), ranking them; the answer written and sent by
 * cg_status_cluster_answer.  The request waits for the replies; a client
 * that leaves meanwhile only frees the state.
 */


#ifndef _CG_STATUS_CLUSTER_H_INCLUDED_
#define _CG_STATUS_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_report.h"


/*
 * What a content handler returns: NGX_DONE while the replies are due.
 * "zone" has the events the answer shows, "an" the detector's settings.
 */
ngx_int_t ngx_http_cg_status_cluster(ngx_http_request_t *r,
    ngx_http_cg_zone_t *zone, const cg_anomaly_t *an, ngx_uint_t format,
    ngx_http_cg_query_t *query);


#endif /* _CG_STATUS_CLUSTER_H_INCLUDED_ */
