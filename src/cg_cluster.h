
/*
 * Copyright (C) client guard authors
 *
 * cg_cluster: the cluster's figures of a client, from what each node
 * published.
 *
 * Owns: the merge of the nodes' figures per client without counting
 * anything twice (each node publishes only what it counted itself):
 * counters and rates summed; the detector's baseline summed over the
 * nodes that have one (a node restarted a minute ago has none yet); a
 * client flagged when any node flags it (an error spike one node sees)
 * or when the cluster's sums cross the thresholds (a surge spread over
 * the nodes); quota use, the highest a node saw (under Redis each sees
 * the cluster's count); and the clients' histories summed step by step.
 */


#ifndef _CG_CLUSTER_H_INCLUDED_
#define _CG_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_history.h"
#include "cg_report.h"
#include "cg_topn.h"


/* the steps of a history in the cluster's answer: the ring and the current */
#define NGX_HTTP_CG_CLUSTER_STEPS  (CG_HISTORY_SLOTS + 1)


/* a client as a node published it, then merged over the nodes */

typedef struct {
    cg_topn_item_t            item;        /* the sort key, the name; first */
    ngx_str_t                 name;
    ngx_uint_t                nodes;
    ngx_uint_t                flagged_on[CG_ANOMALY_N];  /* nodes flagging */
    ngx_uint_t                young;       /* nodes with no baseline */
    ngx_http_cg_figures_t     figures;     /* summed; flags' since: first */
    cg_history_view_t         view;        /* the cluster's detector */

    /* of the nodes with a baseline, for the detector */
    double                    based_rate;
    double                    based_base_errors[2];

    /* with history=1: counts per step and series, the oldest first */
    uint32_t                 *history;
} ngx_http_cg_cluster_client_t;


/* "e", one node's figures, into "m" (m as a node's, when its first) */
void ngx_http_cg_cluster_start(ngx_http_cg_cluster_client_t *m);
void ngx_http_cg_cluster_add(ngx_http_cg_cluster_client_t *m,
    ngx_http_cg_cluster_client_t *e);

/* the cluster's detector over the merged figures, at "now" (epoch s) */
void ngx_http_cg_cluster_judge(ngx_http_cg_cluster_client_t *m,
    const cg_anomaly_t *an, uint32_t now);

/*
 * A node's published history of the client (cg_status_publish.c's text)
 * summed into m->history (allocated in "pool" at the first), aligned to
 * step "slot", the cluster answer's current one.
 */
ngx_int_t ngx_http_cg_cluster_history(ngx_http_cg_cluster_client_t *m,
    u_char *p, u_char *last, uint32_t slot, ngx_pool_t *pool);


#endif /* _CG_CLUSTER_H_INCLUDED_ */
