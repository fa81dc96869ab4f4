
/*
 * Copyright (C) client guard authors
 *
 * cg_status_json: the status report of one node in JSON.
 *
 * Owns: the JSON answer of a node (health, the Redis view of this worker,
 * the clients shown with their quota use and anomalies, top movers, deploy
 * markers local and from Redis), and its parts a team's own view shows
 * (cg_status_self.c): one client, the markers of one team.  The cluster
 * view has its own JSON, in cg_status_cluster_answer.c.
 */


#ifndef _CG_STATUS_JSON_H_INCLUDED_
#define _CG_STATUS_JSON_H_INCLUDED_


#include "cg_out.h"
#include "cg_report.h"


/*
 * Pieces of a node's answer that the cluster's shares: the detector's
 * settings, a client's detector and anomalies (flags' since in epoch s), a
 * history (counts per step and series, oldest first; flagged steps or
 * NULL), and the events of an area's copy.
 */
void ngx_http_cg_json_settings(ngx_http_cg_out_t *o, const cg_anomaly_t *an);
void ngx_http_cg_json_anomalies(ngx_http_cg_out_t *o, const cg_anomaly_t *an,
    cg_history_view_t *v, uint32_t *since);
void ngx_http_cg_json_steps(ngx_http_cg_out_t *o, uint32_t step_ms,
    uint32_t slot, uint32_t steps, uint32_t *counts, uint32_t *flagged);
void ngx_http_cg_json_events(ngx_http_cg_out_t *o,
    ngx_http_cg_status_area_t *area);

/* resumable at (o->step, o->row): NGX_AGAIN while there is more */
ngx_int_t ngx_http_cg_status_json(ngx_http_cg_out_t *o,
    ngx_http_cg_report_t *rp);

/* a client's object, as in "clients" of the node's answer */
void ngx_http_cg_status_json_client(ngx_http_cg_out_t *o,
    ngx_http_cg_report_t *rp, ngx_http_cg_row_t *row);

/*
 * The deploy markers of an area's copy, oldest first, separated by commas:
 * every team's, or those of "team" alone when it is not NULL.
 */
void ngx_http_cg_json_deploys(ngx_http_cg_out_t *o,
    ngx_http_cg_status_area_t *area, ngx_str_t *team);


#endif /* _CG_STATUS_JSON_H_INCLUDED_ */
