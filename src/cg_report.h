
/*
 * Copyright (C) client guard authors
 *
 * cg_report: what the status endpoint reports of one node.
 *
 * Owns: the query of a status request (sort, limit, client), a client's
 * figures and the one sort key over them (node rows, the publication and
 * the cluster view rank by it), and the report of one zone: the records
 * copied in batches of NGX_HTTP_CG_BATCH, one zone lock each (nothing but
 * the copy under the lock), their rows computed outside it and ranked at
 * once into the rows shown (cg_topn), which alone are kept (the memory of
 * a report is a batch and the rows shown, not the zone), then the sort of
 * those, their quota views, and the top movers.  Made in steps, between
 * which the caller may yield to the event loop (cg_status.c does).  Also
 * the report of one client alone, at once: a team's own view
 * (cg_status_self.c).
 */


#ifndef _CG_REPORT_H_INCLUDED_
#define _CG_REPORT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_limiter.h"
#include "cg_parse.h"
#include "cg_query.h"
#include "cg_quota.h"
#include "cg_stats.h"
#include "cg_topn.h"
#include "cg_zone.h"
#include "cg_status_events.h"


#define NGX_HTTP_CG_SCHEMA_VERSION  2      /* of the JSON answers */

#define NGX_HTTP_CG_BATCH         256      /* records per zone lock */
#define NGX_HTTP_CG_LIMIT_MAX     10000    /* rows shown, at most */
#define NGX_HTTP_CG_MOVERS        5
#define NGX_HTTP_CG_NEAR_LIMIT    0.8

#define NGX_HTTP_CG_SORT_REQUESTS 0        /* cg_query_sorts[] */
#define NGX_HTTP_CG_SORT_RATE     1
#define NGX_HTTP_CG_SORT_RATE_1M  2
#define NGX_HTTP_CG_SORT_RATE_5M  3
#define NGX_HTTP_CG_SORT_REJECTED 4
#define NGX_HTTP_CG_SORT_ERRORS   5
#define NGX_HTTP_CG_SORT_QUOTA    6
#define NGX_HTTP_CG_SORT_ANOMALY  7
#define NGX_HTTP_CG_SORT_NAME     8


extern const char  *ngx_http_cg_window_names[];   /* of the rates */


/* what a status request asks for, and when */

typedef struct {
    ngx_uint_t                sort;
    ngx_uint_t                limit;
    ngx_str_t                 client;      /* empty: all */
    ngx_uint_t                history;     /* the clients' history too */
    int64_t                   now_ms;
    uint32_t                  now;
} ngx_http_cg_query_t;


/*
 * A client's figures: those a node publishes and the cluster view sums,
 * and what else a node's rows rank by.
 */

typedef struct {
    uint64_t                  requests;
    uint64_t                  rejected;
    uint64_t                  rejected_dry_run;
    uint64_t                  classes[CG_STATS_NCLASSES];
    double                    rate_10s;    /* offered, the last 2 steps */
    double                    rate_1m;
    double                    rate_5m;
    double                    error_rate_10s;      /* 4xx */
    double                    error5_rate_10s;     /* 5xx */
    double                    rejected_rate_10s;   /* the module's own */
    double                    base_rate;   /* the detector's baseline */
    double                    share[2];    /* 4xx, 5xx of answers now */
    double                    base_share[2];
    uint32_t                  since[CG_ANOMALY_N];  /* epoch s, 0: no */
    uint32_t                  young;
    double                    utilisation; /* of its quota, highest */
    double                    anomaly;     /* the sort key "anomaly" */
} ngx_http_cg_figures_t;


/*
 * The figures of a record whose statistics were brought to "now" (ms);
 * "view", the detector's view of its history when made already, or NULL.
 */
void ngx_http_cg_figures(ngx_http_cg_figures_t *f,
    ngx_http_cg_record_t *rec, int64_t now, const cg_anomaly_t *an,
    const cg_history_view_t *view);

/* the key of the sort, the higher first (then the name; "name": all 0) */
double ngx_http_cg_sort_key(ngx_http_cg_figures_t *f, ngx_uint_t sort);

/*
 * As a node publishes them: 8 counters, 6 rates, 4 shares, the 3 flags'
 * times, young, utilisation, the rejected rate (what is missing, as from
 * an older node, is 0).
 */
u_char *ngx_http_cg_figures_print(u_char *p, ngx_http_cg_figures_t *f);
void ngx_http_cg_figures_parse(ngx_http_cg_figures_t *f, u_char *p,
    u_char *last);


/* a limit of a client's quota, as it stands */

typedef struct {
    cg_limit_t                lim;
    uint64_t                  capacity;
    uint64_t                  used;
    uint64_t                  remaining;
    uint64_t                  reset;
    double                    util;
} ngx_http_cg_limit_view_t;


/* a client's quota, as it stands */

typedef struct {
    ngx_uint_t                mode;
    ngx_uint_t                nlimits;
    unsigned                  redis_quota:1;   /* defined in Redis */
    double                    util;            /* highest of the limits */
    ngx_http_cg_limit_view_t  limits[CG_MAX_LIMITS];
} ngx_http_cg_quota_view_t;


/*
 * The quota view of a record at "now" (ms): the client's quota (Redis's
 * definitions first when "redis"), each limit's use, from the cluster's
 * count under Redis (the lease's word from Redis), else from the record's
 * limiter state.  0 when the client has no quota.
 */
ngx_uint_t ngx_http_cg_quota_view(ngx_http_cg_quota_table_t *qt,
    ngx_uint_t redis, ngx_http_cg_record_t *rec, int64_t now,
    ngx_http_cg_quota_view_t *qv);


/* a client in the report */

typedef struct {
    cg_topn_item_t            item;        /* the sort key, the name; first */
    ngx_http_cg_record_t     *rec;         /* the copy */
    ngx_str_t                 name;
    cg_history_view_t         view;        /* what the detector sees */
    ngx_http_cg_figures_t     figures;
    double                    util;        /* highest of the limits */
    uint32_t                  mode;
    uint32_t                  nlimits;
    unsigned                  has_quota:1;
    unsigned                  redis_quota:1;
    ngx_http_cg_limit_view_t *limits;      /* shown rows only */
} ngx_http_cg_row_t;


typedef struct ngx_http_cg_scratch_s  ngx_http_cg_scratch_t;


/* a row kept among those shown, with its copy */

typedef struct {
    ngx_http_cg_row_t          row;        /* first: its item is the heap's */
    ngx_http_cg_record_copy_t  copy;
} ngx_http_cg_kept_t;


/* a top mover: the highest ratios to their baselines */

typedef struct {
    ngx_str_t                  name;       /* in "text" */
    double                     ratio;
    double                     rate;
    double                     base_rate;
    u_char                     text[CG_NAME_MAX];
} ngx_http_cg_mover_t;

typedef struct {
    ngx_http_cg_zone_t         *zone;
    ngx_http_cg_query_t        *query;
    cg_anomaly_t                an;
    ngx_http_cg_quota_table_t  *quotas;
    ngx_uint_t                  redis;     /* quotas in Redis too */
    ngx_str_t                   node;      /* client_guard_node, or the
                                              host name */
    ngx_pool_t                 *pool;

    ngx_http_cg_zone_health_t   health;
    ngx_http_cg_status_area_t   area;      /* deploy markers, publication */

    ngx_uint_t                  nrows;     /* clients copied */
    ngx_uint_t                  shown;     /* rows shown, in order: */
    cg_topn_t                   top;       /* ngx_http_cg_report_row() */
    ngx_http_cg_mover_t         movers[NGX_HTTP_CG_MOVERS];
    ngx_uint_t                  nmovers;

    /* the making of it */
    ngx_uint_t                  phase;
    ngx_uint_t                  max;       /* records to copy, at most */
    ngx_uint_t                  viewed;    /* rows with their quota view */
    ngx_http_cg_zone_cursor_t   cursor;
    ngx_http_cg_record_copy_t  *copies;    /* of a batch */
    ngx_http_cg_row_t          *rows;      /* of a batch */
    ngx_uint_t                  ncopied;   /* in this batch */
    ngx_http_cg_kept_t        **free;      /* kept rows to be had */
    ngx_uint_t                  nfree;
    ngx_http_cg_scratch_t      *scratch;
} ngx_http_cg_report_t;


/* row i of those shown, once the report is made */
#define ngx_http_cg_report_row(rp, i)                                        \
    ((ngx_http_cg_row_t *) (rp)->top.heap[i])

/*
 * Starts the report of "zone" that "query" asks for (the caller has set
 * zone, query, an, quotas, redis and pool): the zone's figures and status area,
 * the memory, and the one record of "client=".  NGX_ERROR: no memory.
 */
ngx_int_t ngx_http_cg_report_start(ngx_http_cg_report_t *rp);

/*
 * As much of the report as one slice takes: NGX_AGAIN when that was done
 * and more is left, NGX_OK when the report is made (at once if it was).
 */
ngx_int_t ngx_http_cg_report_step(ngx_http_cg_report_t *rp);

/* gives the report's memory back (the rows and copies are gone then) */
void ngx_http_cg_report_free(ngx_http_cg_report_t *rp);

/*
 * The report of one client alone, rp->query->client (a team's own view,
 * cg_status_self.c): the status area, and the client's record copied under
 * one zone lock, no walk; its row made as a report's are (figures, quota
 * view), of zeros but the name when the zone has no record of it (then
 * rp->nrows is 0, else 1).  The caller has set zone, query, an, quotas,
 * redis and pool, as for ngx_http_cg_report_start(); nothing to free.
 * NULL: no memory.
 */
ngx_http_cg_row_t *ngx_http_cg_report_client(ngx_http_cg_report_t *rp);


#endif /* _CG_REPORT_H_INCLUDED_ */
