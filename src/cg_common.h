
/*
 * Copyright (C) client guard authors
 *
 * cg_common: the types several parts share: the module's main and location
 * configurations and the per-request context.  Types only.
 */


#ifndef _CG_COMMON_H_INCLUDED_
#define _CG_COMMON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_identity.h"
#include "cg_lease_take.h"
#include "cg_quota.h"
#include "cg_redis.h"
#include "cg_stats.h"
#include "cg_status.h"
#include "cg_zone.h"


/* where a directive was first met, for a check made once all is read */

typedef struct {
    ngx_str_t                   name;        /* the directive's */
    ngx_str_t                   file;
    ngx_uint_t                  line;        /* 0: not met */
} ngx_http_cg_conf_where_t;


typedef struct {
    ngx_array_t                 zones;       /* ngx_http_cg_zone_t * */
    ngx_http_cg_quota_table_t   quotas;
    cg_anomaly_t                anomaly;
    ngx_http_cg_publish_t       publish;
    ngx_http_cg_redis_conf_t   *redis;       /* NULL: no Redis */
    ngx_str_t                   node;        /* client_guard_node, or the
                                                host name */
    ngx_http_cg_conf_where_t    api_key;     /* _identify_api_key */
    ngx_http_cg_conf_where_t    status;      /* _status, _status_self */
} ngx_http_cg_main_conf_t;


/* cg_redis.c: the start of a worker's Redis links (cg_redis, the status) */
ngx_int_t ngx_http_cg_redis_worker_conf(ngx_cycle_t *cycle,
    ngx_http_cg_main_conf_t **mcfp, ngx_str_t *node);


/* client_guard_status_self, a team's own view (cg_status_self.c) */

typedef struct {
    ngx_http_cg_zone_t         *zone;        /* NULL: the location's, or
                                                the first */
} ngx_http_cg_self_conf_t;


typedef struct {
    ngx_http_cg_zone_t         *zone;        /* NULL: "client_guard off" */
    ngx_array_t                *rules;       /* ngx_http_cg_rule_t */
    ngx_str_t                   fallback;    /* empty: reject */
    ngx_int_t                   unidentified_status;
    ngx_int_t                   reject_status;
    ngx_flag_t                  headers;
    ngx_flag_t                  dry_run;
    ngx_uint_t                  log_level;
    ngx_int_t                   name_max_len;
    ngx_http_cg_status_conf_t  *status;      /* client_guard_status */
    ngx_http_cg_self_conf_t    *self;        /* client_guard_status_self */
} ngx_http_cg_loc_conf_t;


typedef struct {
    ngx_str_t                   client;      /* normalised, or fallback */
    ngx_str_t                   raw;         /* a value that was refused */
    ngx_http_cg_zone_t         *zone;        /* where it was counted */
    ngx_http_cg_record_t       *rec;         /* pinned until the log phase */
    ngx_uint_t                  outcome;     /* NGX_HTTP_CG_PASSED ... */
    uint32_t                    reason;      /* NGX_HTTP_CG_ID_OK ... */
    uint32_t                    status;      /* unidentified: rejected
                                                with, without a fallback */
    ngx_http_cg_lease_req_t    *lease;       /* under Redis */
    unsigned                    identified:1;
    unsigned                    done:1;
} ngx_http_cg_ctx_t;


extern ngx_module_t  ngx_http_client_guard_module;


#endif /* _CG_COMMON_H_INCLUDED_ */
