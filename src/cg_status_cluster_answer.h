
/*
 * Copyright (C) client guard authors
 *
 * cg_status_cluster_answer: the answer of the status with "scope=cluster".
 *
 * Owns: what the cluster's answer shows of what cg_status_cluster read
 * and merged, written out: in JSON (the nodes and their freshness, the
 * clients shown with their histories, the top movers of all clients, the
 * events), or in Prometheus text and OpenMetrics (gauges under
 * clientguard_cluster_*); and the answer sent.
 */


#ifndef _CG_STATUS_CLUSTER_ANSWER_H_INCLUDED_
#define _CG_STATUS_CLUSTER_ANSWER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_cluster.h"
#include "cg_report.h"
#include "cg_topn.h"


/* a node, as its publication was read */

typedef struct {
    ngx_str_t                 name;
    int64_t                   time_ms;     /* its last publication */
    ngx_uint_t                clients;
    unsigned                  stale:1;
} ngx_http_cg_cluster_node_t;


/* what the answer shows */

typedef struct {
    ngx_http_cg_query_t      *query;
    ngx_http_cg_zone_t       *zone;        /* its events */
    const cg_anomaly_t       *an;
    ngx_array_t               nodes;       /* ngx_http_cg_cluster_node_t */
    ngx_array_t               clients;     /* ngx_http_cg_cluster_client_t */
    ngx_uint_t                merged;      /* clients, once merged */
    ngx_uint_t                total;       /* those the query asks for */
    cg_topn_t                 top;         /* the clients shown, ranked */
} ngx_http_cg_cluster_view_t;


/* sends the answer in "format" (NGX_HTTP_CG_FMT_*): the rc to finalize */
ngx_int_t ngx_http_cg_cluster_send(ngx_http_request_t *r, ngx_uint_t format,
    ngx_http_cg_cluster_view_t *v);


#endif /* _CG_STATUS_CLUSTER_ANSWER_H_INCLUDED_ */
