
/*
 * Copyright (C) client guard authors
 *
 * cg_status_int: private to the status part (cg_status*.c); nothing else
 * includes it.
 *
 * Owns: the types the status files share (the deploy markers and the
 * status area of the zone, the report a status request or a publication
 * builds, the output buffer chain, the per-worker Redis link of the
 * status) and the functions one status file calls in another.
 */


#ifndef _CG_STATUS_INT_H_INCLUDED_
#define _CG_STATUS_INT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_common.h"


#define NGX_HTTP_CG_BATCH         256
#define NGX_HTTP_CG_LIMIT_MAX     10000
#define NGX_HTTP_CG_LIMIT_DEF     100
#define NGX_HTTP_CG_MOVERS        5
#define NGX_HTTP_CG_NEAR_LIMIT    0.8
#define NGX_HTTP_CG_NDEPLOYS      32
#define NGX_HTTP_CG_TEAM_LEN      32
#define NGX_HTTP_CG_NOTE_LEN      80
#define NGX_HTTP_CG_RESERVE       1024
#define NGX_HTTP_CG_SLICE_OUT     (256 * 1024)

#define NGX_HTTP_CG_FMT_JSON      0
#define NGX_HTTP_CG_FMT_PROM      1
#define NGX_HTTP_CG_FMT_OPENM     2
#define NGX_HTTP_CG_FMT_HTML      3

#define NGX_HTTP_CG_SORT_REQUESTS 0
#define NGX_HTTP_CG_SORT_RATE     1
#define NGX_HTTP_CG_SORT_RATE_1M  2
#define NGX_HTTP_CG_SORT_RATE_5M  3
#define NGX_HTTP_CG_SORT_REJECTED 4
#define NGX_HTTP_CG_SORT_ERRORS   5
#define NGX_HTTP_CG_SORT_QUOTA    6
#define NGX_HTTP_CG_SORT_ANOMALY  7
#define NGX_HTTP_CG_SORT_NAME     8


/* deploy markers, a ring in the zone (zone->sh->status) */

typedef struct {
    uint64_t                  time_ms;
    u_char                    team_len;
    u_char                    note_len;
    u_char                    team[NGX_HTTP_CG_TEAM_LEN];
    u_char                    note[NGX_HTTP_CG_NOTE_LEN];
} ngx_http_cg_deploy_t;


typedef struct {
    uint64_t                  total;       /* next slot: total % N */
    ngx_http_cg_deploy_t      marks[NGX_HTTP_CG_NDEPLOYS];
} ngx_http_cg_deploys_t;


/* what the status keeps in the zone (zone->sh->status) */

typedef struct {
    uint64_t                  publish_ms;  /* last publication to Redis */
    ngx_http_cg_deploys_t     local;       /* by POST */
    ngx_http_cg_deploys_t     redis;       /* read from Redis, oldest first */
} ngx_http_cg_status_sh_t;


/* a copy of one record, name included */

typedef struct {
    ngx_http_cg_record_t        node;
    u_char                    rest[CG_NAME_MAX];
} ngx_http_cg_rec_copy_t;


/* a walk of the rbtree that resumes after the last record seen */

typedef struct {
    ngx_uint_t                started;
    ngx_rbtree_key_t          key;
    size_t                    len;
    u_char                    name[CG_NAME_MAX];
} ngx_http_cg_cursor_t;


typedef struct {
    cg_limit_t                lim;
    uint64_t                  capacity;
    uint64_t                  used;
    uint64_t                  remaining;
    uint64_t                  reset;
    double                    util;
} ngx_http_cg_lview_t;


typedef struct {
    ngx_http_cg_rec_copy_t       *snap;
    ngx_str_t                 name;
    cg_stats_t               *st;
    double                    base;        /* request rate baseline */
    double                    ratio;       /* surge: rate 10 s / baseline */
    double                    err_base;
    double                    err_ratio;   /* 4xx 10 s / baseline */
    double                    util;        /* highest of the limits */
    double                    key;
    uint32_t                  mode;
    uint32_t                  nlimits;
    unsigned                  has_quota:1;
    unsigned                  redis_quota:1;
    ngx_http_cg_lview_t      *limits;      /* shown rows only */
} ngx_http_cg_row_t;


typedef struct {
    uint64_t                  zone_size;
    uint64_t                  zone_used;
    ngx_uint_t                pages;
    ngx_uint_t                pages_free;
    ngx_uint_t                clients;
    uint64_t                  evictions;
    uint64_t                  alloc_failures;
    uint64_t                  unidentified[3];
} ngx_http_cg_health_t;


/*
 * The output of an answer, a chain of buffers in the request's pool, and
 * where the formatting of a status answer is: it may take several slices
 * (step and row resume it; "limit" is the size at which the slice yields,
 * at the end of a row; 0: no limit).
 */

typedef struct {
    ngx_http_request_t       *r;
    ngx_chain_t              *out;
    ngx_chain_t             **last;
    ngx_buf_t                *b;
    ngx_uint_t                failed;
    size_t                    size;        /* written so far */
    size_t                    limit;
    ngx_uint_t                step;        /* of the format */
    ngx_uint_t                row;         /* the next row of the step */
    ngx_str_t                *zone;        /* its name, escaped */
} ngx_http_cg_out_t;


typedef struct {
    ngx_http_cg_zone_t       *zone;
    ngx_uint_t                format;
    ngx_uint_t                sort;
    ngx_uint_t                limit;
    ngx_str_t                 client;
    int64_t                   now_ms;
    uint32_t                  now;
    cg_anomaly_t              an;
    ngx_http_cg_health_t      health;
    ngx_http_cg_deploys_t     deploys;
    ngx_http_cg_deploys_t     rdeploys;
    uint64_t                  publish_ms;
    ngx_pool_t               *pool;
    ngx_http_cg_main_conf_t  *mcf;
    ngx_uint_t                nrows;       /* all clients copied */
    ngx_http_cg_row_t        *rows;
    ngx_http_cg_row_t       **sorted;
    ngx_uint_t                shown;
    ngx_http_cg_row_t        *movers[NGX_HTTP_CG_MOVERS];
    ngx_uint_t                nmovers;
    ngx_uint_t                cluster;
} ngx_http_cg_report_t;


/* the per-worker Redis link of the status (cg_status_publish.c) */

typedef struct ngx_http_cg_pub_s  ngx_http_cg_pub_t;

typedef struct {
    ngx_http_cg_link_t      *link;
    ngx_event_t               timer;
    ngx_event_t               slice;       /* the next slice of "pub" */
    ngx_http_cg_pub_t        *pub;         /* a publication under way */
    ngx_str_t                 node;
    ngx_str_t                 k_stats;     /* {prefix}stats: (node follows) */
    ngx_str_t                 k_nodes;
    ngx_str_t                 k_deploys;
    ngx_http_cg_main_conf_t  *mcf;
} ngx_http_cg_status_worker_t;


extern ngx_http_cg_status_worker_t  ngx_http_cg_status_w;

extern const char  *ngx_http_cg_sort_names[];
extern const char  *ngx_http_cg_window_names[];


/* cg_status.c: output helpers */
void ngx_http_cg_pr(ngx_http_cg_out_t *o, const char *fmt, ...);
ngx_uint_t ngx_http_cg_out_full(ngx_http_cg_out_t *o,
    ngx_http_cg_report_t *rp);
ngx_str_t *ngx_http_cg_esc(ngx_pool_t *pool, ngx_str_t *s);
double ngx_http_cg_num(double v);

/* cg_status.c: the report, and the status area of the zone */
ngx_rbtree_node_t *ngx_http_cg_cursor_next(ngx_http_cg_shctx_t *sh,
    ngx_http_cg_cursor_t *cur);
void ngx_http_cg_cursor_set(ngx_http_cg_cursor_t *cur,
    ngx_rbtree_node_t *node);
void ngx_http_cg_status_copy(ngx_http_cg_rec_copy_t *s,
    ngx_rbtree_node_t *node);
ngx_http_cg_status_sh_t *ngx_http_cg_status_sh(ngx_http_cg_zone_t *zone);

/* cg_status_json.c, cg_status_prom.c: NGX_AGAIN while there is more */
ngx_int_t ngx_http_cg_status_json(ngx_http_cg_out_t *o,
    ngx_http_cg_report_t *rp);
ngx_int_t ngx_http_cg_status_prom(ngx_http_cg_out_t *o,
    ngx_http_cg_report_t *rp);
void ngx_http_cg_family(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp,
    const char *name, const char *type, const char *help);

/* cg_status_deploy.c */
ngx_int_t ngx_http_cg_status_deploy(ngx_http_request_t *r,
    ngx_http_cg_status_conf_t *scf, ngx_http_cg_zone_t *zone);
void ngx_http_cg_status_deploys_done(ngx_http_cg_link_t *link,
    redisReply *reply, void *data);

/* cg_status_cluster.c */
ngx_int_t ngx_http_cg_status_cluster(ngx_http_request_t *r,
    ngx_http_cg_report_t *rp);


#endif /* _CG_STATUS_INT_H_INCLUDED_ */
