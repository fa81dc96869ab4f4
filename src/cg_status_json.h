
/*
 * Copyright (C) client guard authors
 *
 * cg_status_json: the status report of one node in JSON.
 *
 * Owns: the JSON answer of a node (health, the Redis view of this worker,
 * the clients shown with their quota use and anomalies, top movers, deploy
 * markers local and from Redis), and its parts a team's own view shows
 * (cg_status_self.c): one client, the markers of one team.  The cluster
 * view has its own JSON, in cg_status_cluster.c.
 */


#ifndef _CG_STATUS_JSON_H_INCLUDED_
#define _CG_STATUS_JSON_H_INCLUDED_


#include "cg_out.h"
#include "cg_report.h"


/* resumable at (o->step, o->row): NGX_AGAIN while there is more */
ngx_int_t ngx_http_cg_status_json(ngx_http_cg_out_t *o,
    ngx_http_cg_report_t *rp);

/* a client's object, as in "clients" of the node's answer */
void ngx_http_cg_status_json_client(ngx_http_cg_out_t *o,
    ngx_http_cg_report_t *rp, ngx_http_cg_row_t *row);

/*
 * The deploy markers of the report's status area, oldest first, separated
 * by commas: every team's, or those of "team" alone when it is not NULL.
 */
void ngx_http_cg_status_json_deploys(ngx_http_cg_out_t *o,
    ngx_http_cg_report_t *rp, ngx_str_t *team);


#endif /* _CG_STATUS_JSON_H_INCLUDED_ */
