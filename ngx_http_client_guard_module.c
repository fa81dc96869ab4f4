
/*
 * Copyright (C) client guard authors
 *
 * ngx_http_client_guard_module: the module definition, its directives and
 * configurations, and the wiring into nginx's phases and processes.  The
 * work is done by the parts in src/: docs/internals.md is their map, and
 * src/cg_decide.c tells how a request is decided.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_common.h"
#include "cg_decide.h"
#include "cg_reject_log.h"
#include "cg_stats_log.h"
#include "cg_status.h"
#include "cg_status_self.h"


static ngx_int_t ngx_http_cg_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_cg_init(ngx_conf_t *cf);
static void *ngx_http_cg_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_cg_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_cg_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_cg_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_cg_init_process(ngx_cycle_t *cycle);
static void ngx_http_cg_exit_process(ngx_cycle_t *cycle);

static char *ngx_http_cg_bounds(ngx_conf_t *cf, void *post, void *data);
static char *ngx_http_cg_where(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_cg_check_main_conf(ngx_conf_t *cf,
    ngx_http_cg_main_conf_t *mcf);


/*
 * Directives that only make sense with another one, which may come later
 * in the file: their handler is ngx_http_cg_where(), which keeps where
 * each was first met (in the main configuration, at "where") for
 * ngx_http_cg_check_main_conf(), then calls their part's handler.
 */

typedef struct {
    char                     *(*handler)(ngx_conf_t *cf, ngx_command_t *cmd,
                                         void *conf);
    size_t                      where;
} ngx_http_cg_where_post_t;


static ngx_http_cg_where_post_t  ngx_http_cg_api_key_where = {
    ngx_http_cg_identify_api_key_directive,
    offsetof(ngx_http_cg_main_conf_t, api_key)
};


static ngx_http_cg_where_post_t  ngx_http_cg_status_where = {
    ngx_http_cg_status_directive,
    offsetof(ngx_http_cg_main_conf_t, status)
};


static ngx_http_cg_where_post_t  ngx_http_cg_self_where = {
    ngx_http_cg_self_directive,
    offsetof(ngx_http_cg_main_conf_t, status)
};


static ngx_conf_enum_t  ngx_http_cg_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_http_cg_status_bounds = {
    ngx_http_cg_bounds, 400, 599
};


static ngx_conf_num_bounds_t  ngx_http_cg_name_len_bounds = {
    ngx_http_cg_bounds, 1, CG_NAME_MAX
};


static ngx_command_t  ngx_http_cg_commands[] = {

    { ngx_string("client_guard_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_cg_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cg_main_conf_t, zones),
      NULL },

    { ngx_string("client_guard_quota"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_cg_quota_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cg_main_conf_t, quotas),
      NULL },

    { ngx_string("client_guard"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cg_decide_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, zone),
      NULL },

    { ngx_string("client_guard_identify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_cg_identify_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, rules),
      NULL },

    { ngx_string("client_guard_identify_address"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_cg_identify_address_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, rules),
      NULL },

    { ngx_string("client_guard_identify_api_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_cg_where,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, rules),
      &ngx_http_cg_api_key_where },

    { ngx_string("client_guard_fallback"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cg_fallback_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, fallback),
      NULL },

    { ngx_string("client_guard_unidentified_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, unidentified_status),
      &ngx_http_cg_status_bounds },

    { ngx_string("client_guard_reject_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, reject_status),
      &ngx_http_cg_status_bounds },

    { ngx_string("client_guard_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, headers),
      NULL },

    { ngx_string("client_guard_dry_run"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, dry_run),
      NULL },

    { ngx_string("client_guard_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, log_level),
      &ngx_http_cg_log_levels },

    { ngx_string("client_guard_name_max_length"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, name_max_len),
      &ngx_http_cg_name_len_bounds },

    { ngx_string("client_guard_status"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_ANY,
      ngx_http_cg_where,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, status),
      &ngx_http_cg_status_where },

    { ngx_string("client_guard_status_self"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_cg_where,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, self),
      &ngx_http_cg_self_where },

    { ngx_string("client_guard_anomaly"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_cg_anomaly_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cg_main_conf_t, anomaly),
      NULL },

    { ngx_string("client_guard_status_publish"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_cg_publish_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cg_main_conf_t, publish),
      NULL },

    { ngx_string("client_guard_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_cg_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cg_main_conf_t, redis),
      NULL },

    { ngx_string("client_guard_redis_failure"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_cg_redis_failure_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cg_main_conf_t, redis),
      NULL },

    { ngx_string("client_guard_redis_lease"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_http_cg_redis_lease_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cg_main_conf_t, redis),
      NULL },

    { ngx_string("client_guard_node"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_cg_redis_node_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_cg_main_conf_t, redis),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_client_guard_module_ctx = {
    ngx_http_cg_add_variables,             /* preconfiguration */
    ngx_http_cg_init,                      /* postconfiguration */

    ngx_http_cg_create_main_conf,          /* create main configuration */
    ngx_http_cg_init_main_conf,            /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_cg_create_loc_conf,           /* create location configuration */
    ngx_http_cg_merge_loc_conf             /* merge location configuration */
};


ngx_module_t  ngx_http_client_guard_module = {
    NGX_MODULE_V1,
    &ngx_http_client_guard_module_ctx,     /* module context */
    ngx_http_cg_commands,                  /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_cg_init_process,              /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_cg_exit_process,              /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_cg_vars[] = {

    { ngx_string("client_guard_client"), NULL,
      ngx_http_cg_client_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("client_guard_status"), NULL,
      ngx_http_cg_outcome_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("client_guard_redis"), NULL,
      ngx_http_cg_lease_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_cg_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_cg_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cg_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_cg_decide_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_cg_decide_log_handler;

    return NGX_OK;
}


static void *
ngx_http_cg_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_cg_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cg_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->anomaly = { 0 };
     *     mcf->publish = { 0 };
     *     mcf->redis = NULL;
     */

    if (ngx_array_init(&mcf->zones, cf->pool, 2,
                       sizeof(ngx_http_cg_zone_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_http_cg_quota_table_init(cf, &mcf->quotas) != NGX_OK) {
        return NULL;
    }

    return mcf;
}


static char *
ngx_http_cg_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_cg_main_conf_t  *mcf = conf;

    if (ngx_http_cg_quota_table_done(cf, &mcf->quotas) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_http_cg_anomaly_init(&mcf->anomaly);
    ngx_http_cg_publish_init(&mcf->publish);

    if (ngx_http_cg_redis_init_conf(cf, mcf->redis) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    mcf->node = (mcf->redis && mcf->redis->node.len) ? mcf->redis->node
                                                     : cf->cycle->hostname;

    if (ngx_http_cg_zones_done(cf, &mcf->zones, mcf->anomaly.step_ms)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_cg_check_main_conf(cf, mcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_cg_where(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_where_post_t  *wp = cmd->post;

    ngx_http_cg_conf_where_t  *w;
    ngx_http_cg_main_conf_t   *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_client_guard_module);
    w = (ngx_http_cg_conf_where_t *) ((char *) mcf + wp->where);

    if (w->line == 0) {
        w->name = cmd->name;
        w->file = cf->conf_file->file.name;
        w->line = cf->conf_file->line;
    }

    return wp->handler(cf, cmd, conf);
}


static ngx_int_t
ngx_http_cg_check_main_conf(ngx_conf_t *cf, ngx_http_cg_main_conf_t *mcf)
{
    if (mcf->api_key.line && mcf->redis == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"client_guard_identify_api_key\" needs "
                      "\"client_guard_redis\": the API keys are read from "
                      "Redis, in %V:%ui", &mcf->api_key.file,
                      mcf->api_key.line);
        return NGX_ERROR;
    }

    if (mcf->status.line && mcf->zones.nelts == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%V\" needs a zone: no \"client_guard_zone\" is "
                      "declared, in %V:%ui", &mcf->status.name,
                      &mcf->status.file, mcf->status.line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void *
ngx_http_cg_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_cg_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cg_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->rules = NULL;
     *     conf->status = NULL;
     *     conf->self = NULL;
     */

    conf->zone = NGX_CONF_UNSET_PTR;
    conf->fallback.len = NGX_CONF_UNSET_SIZE;
    conf->unidentified_status = NGX_CONF_UNSET;
    conf->reject_status = NGX_CONF_UNSET;
    conf->headers = NGX_CONF_UNSET;
    conf->dry_run = NGX_CONF_UNSET;
    conf->log_level = NGX_CONF_UNSET_UINT;
    conf->name_max_len = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_cg_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_cg_loc_conf_t *prev = parent;
    ngx_http_cg_loc_conf_t *conf = child;

    ngx_conf_merge_ptr_value(conf->zone, prev->zone, NULL);

    if (conf->rules == NULL) {
        conf->rules = prev->rules;
    }

    if (conf->fallback.len == NGX_CONF_UNSET_SIZE) {
        conf->fallback = prev->fallback;

        if (conf->fallback.len == NGX_CONF_UNSET_SIZE) {
            ngx_str_set(&conf->fallback, "unknown");
        }
    }

    ngx_conf_merge_value(conf->unidentified_status,
                         prev->unidentified_status, NGX_HTTP_FORBIDDEN);
    ngx_conf_merge_value(conf->reject_status, prev->reject_status,
                         NGX_HTTP_TOO_MANY_REQUESTS);
    ngx_conf_merge_value(conf->headers, prev->headers, 1);
    ngx_conf_merge_value(conf->dry_run, prev->dry_run, 0);
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level, NGX_LOG_ERR);
    ngx_conf_merge_value(conf->name_max_len, prev->name_max_len, 64);

    return NGX_CONF_OK;
}


/* a number out of its bounds: the message names the directive and value */

static char *
ngx_http_cg_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t  *bounds = post;
    ngx_int_t              *np = data;

    u_char  *p;

    if (*np >= bounds->low && *np <= bounds->high) {
        return NGX_CONF_OK;
    }

    p = ngx_pnalloc(cf->pool, sizeof("invalid value \"\", it must be a "
                                     "number from  to ")
                              + 3 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(p, "invalid value \"%i\", it must be a number from %i to %i%Z",
                *np, bounds->low, bounds->high);

    return (char *) p;
}


static ngx_int_t
ngx_http_cg_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_cg_redis_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_cg_status_init_process(cycle);
}


static void
ngx_http_cg_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_cg_reject_log_exit();
    ngx_http_cg_stats_log_exit();
    ngx_http_cg_status_exit_process(cycle);
    ngx_http_cg_redis_exit_process(cycle);
}
