
/*
 * Copyright (C) client guard authors
 *
 * cg_status_json: the status report of one node in JSON.
 *
 * Owns: the JSON answer of a node (health, the Redis view of this worker,
 * the clients shown with their quota use and anomalies, top movers, deploy
 * markers local and from Redis).  The cluster view has its own JSON, in
 * cg_status_cluster.c.
 */


#ifndef _CG_STATUS_JSON_H_INCLUDED_
#define _CG_STATUS_JSON_H_INCLUDED_


#include "cg_out.h"
#include "cg_report.h"


/* the incidents of an area, for this answer and the cluster's */
void ngx_http_cg_json_incidents(ngx_http_cg_out_t *o,
    ngx_http_cg_status_area_t *area);

/* resumable at (o->step, o->row): NGX_AGAIN while there is more */
ngx_int_t ngx_http_cg_status_json(ngx_http_cg_out_t *o,
    ngx_http_cg_report_t *rp);


#endif /* _CG_STATUS_JSON_H_INCLUDED_ */
