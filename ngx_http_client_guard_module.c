
/*
 * Copyright (C) client guard authors
 *
 * ngx_http_client_guard_module: the module definition, its directives and
 * the wiring into nginx's phases.  The work is done by the parts in src/.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_common.h"


static ngx_int_t ngx_http_cg_preaccess_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_cg_enforce(ngx_http_request_t *r,
    ngx_http_cg_loc_conf_t *lcf, ngx_http_cg_ctx_t *ctx);
static void ngx_http_cg_set_headers(ngx_http_request_t *r,
    const cg_quota_t *q, ngx_str_t *policy, ngx_int_t binding,
    cg_limit_result_t *res, ngx_uint_t rejected);
static void ngx_http_cg_log_reject(ngx_http_request_t *r,
    ngx_http_cg_loc_conf_t *lcf, ngx_http_cg_ctx_t *ctx, const cg_quota_t *q,
    ngx_int_t binding, cg_limit_result_t *res);
static ngx_http_cg_ctx_t *ngx_http_cg_get_ctx(ngx_http_request_t *r,
    ngx_uint_t create);
static ngx_int_t ngx_http_cg_identify_request(ngx_http_request_t *r,
    ngx_http_cg_loc_conf_t *lcf, ngx_http_cg_ctx_t *ctx);
static void ngx_http_cg_cleanup(void *data);
static ngx_int_t ngx_http_cg_log_handler(ngx_http_request_t *r);

static ngx_int_t ngx_http_cg_client_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_cg_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static ngx_int_t ngx_http_cg_add_variables(ngx_conf_t *cf);
static void *ngx_http_cg_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_cg_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_cg_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_cg_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_cg_init(ngx_conf_t *cf);

static char *ngx_http_cg_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cg_quota(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cg(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_cg_identify_cmd(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cg_identify_address_cmd(ngx_conf_t *cf,
    ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cg_fallback(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cg_identify_api_key_cmd(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_cg_status_cmd(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cg_anomaly_cmd(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cg_publish_cmd(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_cg_init_process(ngx_cycle_t *cycle);
static void ngx_http_cg_exit_process(ngx_cycle_t *cycle);
static char *ngx_http_cg_set_num(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cg_set_log_level(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_conf_enum_t  ngx_http_cg_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


/* bounds for ngx_http_cg_set_num(), which names directive and value */

static ngx_conf_num_bounds_t  ngx_http_cg_status_bounds = {
    NULL, 400, 599
};


static ngx_conf_num_bounds_t  ngx_http_cg_name_len_bounds = {
    NULL, 1, CG_NAME_MAX
};


static ngx_command_t  ngx_http_cg_commands[] = {

    { ngx_string("client_guard_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_cg_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("client_guard_quota"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_cg_quota,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("client_guard"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cg,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("client_guard_identify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_cg_identify_cmd,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("client_guard_identify_address"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_cg_identify_address_cmd,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("client_guard_fallback"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cg_fallback,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("client_guard_unidentified_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cg_set_num,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, unidentified_status),
      &ngx_http_cg_status_bounds },

    { ngx_string("client_guard_reject_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cg_set_num,
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
      ngx_http_cg_set_log_level,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, log_level),
      &ngx_http_cg_log_levels },

    { ngx_string("client_guard_name_max_length"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cg_set_num,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cg_loc_conf_t, name_max_len),
      &ngx_http_cg_name_len_bounds },

    { ngx_string("client_guard_status"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_ANY,
      ngx_http_cg_status_cmd,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("client_guard_anomaly"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_cg_anomaly_cmd,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("client_guard_status_publish"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_cg_publish_cmd,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("client_guard_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_cg_redis_cmd,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("client_guard_redis_failure"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_cg_redis_failure_cmd,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("client_guard_redis_lease"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_http_cg_redis_lease_cmd,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("client_guard_identify_api_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cg_identify_api_key_cmd,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
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
      ngx_http_cg_status_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("client_guard_redis"), NULL,
      ngx_http_cg_redis_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_cg_status_names[] = {
    ngx_null_string,
    ngx_string("PASSED"),
    ngx_string("REJECTED"),
    ngx_string("REJECTED_DRY_RUN"),
    ngx_string("BYPASSED"),
    ngx_string("UNIDENTIFIED")
};


static const char  *ngx_http_cg_reasons[] = {
    "", "no rule matched", "invalid name"
};


/* up to 64 bytes of an untrusted value, printable ASCII only */

static u_char *
ngx_http_cg_escape(u_char *buf, size_t size, ngx_str_t *s)
{
    u_char      *p, *last, c;
    ngx_uint_t   i;

    p = buf;
    last = buf + size - sizeof("\\xff...");

    for (i = 0; i < s->len && i < 64 && p < last; i++) {
        c = s->data[i];

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            *p++ = c;

        } else {
            p = ngx_sprintf(p, "\\x%02xd", c);
        }
    }

    if (i < s->len) {
        p = ngx_cpymem(p, "...", 3);
    }

    return p;
}


static ngx_int_t
ngx_http_cg_preaccess_handler(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_http_cg_ctx_t       *ctx;
    ngx_http_cg_loc_conf_t  *lcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_client_guard_module);

    if (lcf->zone == NULL) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_cg_get_ctx(r, 1);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->done) {
        /*
         * NGX_AGAIN: still waiting for a lease (cg_redis); NGX_DECLINED:
         * already decided before an internal redirect; NGX_OK: resumed
         * after waiting, decide now
         */

        rc = ngx_http_cg_redis_pending(ctx);

        if (rc != NGX_OK) {
            return rc;
        }
    }

    ctx->done = 1;

    return ngx_http_cg_enforce(r, lcf, ctx);
}


static ngx_int_t
ngx_http_cg_enforce(ngx_http_request_t *r, ngx_http_cg_loc_conf_t *lcf,
    ngx_http_cg_ctx_t *ctx)
{
    u_char                  *p, buf[96];
    int64_t                  now;
    uint32_t                 hash;
    ngx_int_t                rc, binding;
    ngx_uint_t               status, dry_run, decided;
    ngx_str_t               *policy;
    ngx_time_t              *tp;
    cg_quota_t               copy, *quota;
    cg_limit_result_t        res;
    ngx_http_cg_zone_t      *zone;
    ngx_http_cg_record_t      *node;
    ngx_http_cg_main_conf_t *mcf;

    static cg_quota_t        none;    /* no quota: no limits, counted */

    if (ngx_http_cg_identify_request(r, lcf, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    zone = lcf->zone;

    if (ctx->reason != NGX_HTTP_CG_ID_OK && ctx->zone == NULL) {

        /* once: a request resumed after waiting for a lease comes again */

        (void) ngx_atomic_fetch_add(&zone->sh->unidentified[ctx->reason], 1);
    }

    ctx->zone = zone;

    if (ctx->reason != NGX_HTTP_CG_ID_OK) {

        if (ctx->client.len == 0) {
            ctx->status = NGX_HTTP_CG_UNIDENTIFIED;

            p = ngx_http_cg_escape(buf, sizeof(buf), &ctx->raw);

            ngx_log_error(lcf->log_level, r->connection->log, 0,
                          "client guard: rejecting unidentified request "
                          "(%s: \"%*s\") with %ui",
                          ngx_http_cg_reasons[ctx->reason], p - buf, buf,
                          lcf->unidentified_status);

            return lcf->unidentified_status;
        }
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_client_guard_module);

    hash = ngx_crc32_long(ctx->client.data, ctx->client.len);  /* = short */

    quota = ngx_http_cg_client_quota(&mcf->quotas, &ctx->client, hash, NULL);
    policy = NULL;

    if (quota == NULL) {
        quota = &none;

    } else if (mcf->redis) {

        /* the failure policy may make it this node's share */

        copy = *quota;
        quota = &copy;

    } else {
        policy = ngx_http_cg_quota_policy(&mcf->quotas, quota);
    }

    dry_run = lcf->dry_run || quota->mode == CG_MODE_DRY_RUN;

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    binding = -1;
    res.allowed = 1;
    decided = 0;

    if (mcf->redis && quota->mode != CG_MODE_OFF) {

        /* cluster-wide count: a lease, a wait, or the failure policy */

        rc = ngx_http_cg_redis_enforce(r, ctx, zone, quota, hash, &binding,
                                      &res);

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        decided = (rc == NGX_OK);
    }

    ngx_http_cg_zone_lock(zone);

    /* this worker's finished requests, while the lock is held anyway */

    ngx_http_cg_stats_flush_locked(zone);

    /* pinned already when a lease was taken (cg_redis) */

    node = ctx->node ? ctx->node
                     : ngx_http_cg_zone_record(zone, &ctx->client, hash,
                                             ngx_current_msec, 1);

    if (quota->mode == CG_MODE_OFF) {
        status = NGX_HTTP_CG_BYPASSED;

    } else {
        if (node && !decided) {
            binding = cg_quota_check(quota, node->state, now, 1, 1, &res);
        }

        if (res.allowed) {
            status = NGX_HTTP_CG_PASSED;

        } else {
            status = dry_run ? NGX_HTTP_CG_REJECTED_DRY_RUN
                             : NGX_HTTP_CG_REJECTED;
        }
    }

    if (node) {
        node->counters.requests++;
        node->counters.outcome[status]++;

        /* pinned until the log phase: no second lookup, no eviction */

        if (ctx->node == NULL) {
            node->refs++;
            ctx->node = node;
        }
    }

    ngx_http_cg_zone_unlock(zone);

    ctx->status = status;

    if (lcf->headers && binding >= 0) {
        ngx_http_cg_set_headers(r, quota, policy, binding, &res,
                                status == NGX_HTTP_CG_REJECTED);
    }

    if (status == NGX_HTTP_CG_PASSED || status == NGX_HTTP_CG_BYPASSED) {
        return NGX_DECLINED;
    }

    ngx_http_cg_log_reject(r, lcf, ctx, quota, binding, &res);

    if (status == NGX_HTTP_CG_REJECTED_DRY_RUN) {
        return NGX_DECLINED;
    }

    return ctx->code ? ctx->code : lcf->reject_status;
}


static ngx_table_elt_t *
ngx_http_cg_add_header(ngx_http_request_t *r, const char *name, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = len;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return h;
}


/*
 * RateLimit-Policy lists every limit of the client's quota, RateLimit the
 * one that decides (draft-ietf-httpapi-ratelimit-headers-11).  For a rate,
 * q is the sustained rate per window w; r is what may be sent right now
 * (burst included) and t when the limit is fully restored.  A quota from
 * the configuration comes with its RateLimit-Policy value made; the values
 * made here share one allocation.
 */

static void
ngx_http_cg_set_headers(ngx_http_request_t *r, const cg_quota_t *q,
    ngx_str_t *policy, ngx_int_t binding, cg_limit_result_t *res,
    ngx_uint_t rejected)
{
    u_char           *p;
    size_t            len;
    ngx_table_elt_t  *h;

    len = sizeof("\"quota_s\";r=;t=") + 2 * NGX_INT64_LEN + NGX_INT64_LEN;

    if (policy == NULL) {
        len += ngx_http_cg_policy_len(q);
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return;
    }

    h = ngx_http_cg_add_header(r, "RateLimit-Policy",
                               sizeof("RateLimit-Policy") - 1);
    if (h == NULL) {
        return;
    }

    if (policy) {
        h->value = *policy;

    } else {
        h->value.data = p;
        p = ngx_http_cg_policy_print(p, q);
        h->value.len = p - h->value.data;
    }

    h = ngx_http_cg_add_header(r, "RateLimit", sizeof("RateLimit") - 1);
    if (h == NULL) {
        return;
    }

    h->value.data = p;
    p = ngx_http_cg_policy_item(p, &q->limits[binding], 'r');
    p = ngx_http_cg_uint(p, res->remaining);
    *p++ = ';';
    *p++ = 't';
    *p++ = '=';
    p = ngx_http_cg_uint(p, (res->reset + 999) / 1000);
    h->value.len = p - h->value.data;

    if (!rejected) {
        return;
    }

    h = ngx_http_cg_add_header(r, "Retry-After", sizeof("Retry-After") - 1);
    if (h == NULL) {
        return;
    }

    h->value.data = p;
    p = ngx_http_cg_uint(p, res->retry ? (res->retry + 999) / 1000 : 1);
    h->value.len = p - h->value.data;
}


static void
ngx_http_cg_log_reject(ngx_http_request_t *r, ngx_http_cg_loc_conf_t *lcf,
    ngx_http_cg_ctx_t *ctx, const cg_quota_t *q, ngx_int_t binding,
    cg_limit_result_t *res)
{
    u_char  *p, buf[128];

    p = buf;

    if (binding >= 0) {
        p = ngx_http_cg_limit_print(p, buf + sizeof(buf),
                                    &q->limits[binding]);
    }

    ngx_log_error(lcf->log_level, r->connection->log, 0,
                  "client guard: limiting client \"%V\" by %*s "
                  "(limit %i of %uD), retry in %uL ms, zone \"%V\"%s",
                  &ctx->client, p - buf, buf, binding + 1, q->nlimits,
                  res->retry, &lcf->zone->name,
                  ctx->status == NGX_HTTP_CG_REJECTED_DRY_RUN
                  ? ", dry run" : "");
}


static ngx_int_t
ngx_http_cg_identify_request(ngx_http_request_t *r,
    ngx_http_cg_loc_conf_t *lcf, ngx_http_cg_ctx_t *ctx)
{
    ngx_int_t  rc;

    if (ctx->identified) {
        return NGX_OK;
    }

    rc = ngx_http_cg_identify(r, lcf->rules, lcf->name_max_len, &ctx->client,
                              &ctx->raw);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    ctx->identified = 1;
    ctx->reason = rc;

    if (rc != NGX_HTTP_CG_ID_OK) {
        ctx->client = lcf->fallback;
    }

    return NGX_OK;
}


static ngx_http_cg_ctx_t *
ngx_http_cg_get_ctx(ngx_http_request_t *r, ngx_uint_t create)
{
    ngx_pool_cleanup_t  *cln;
    ngx_http_cg_ctx_t   *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_client_guard_module);

    if (ctx) {
        return ctx;
    }

    /* an internal redirect clears r->ctx: the cleanup entry remains */

    for (cln = r->internal ? r->pool->cleanup : NULL; cln; cln = cln->next) {
        if (cln->handler == ngx_http_cg_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_client_guard_module);
            return ctx;
        }
    }

    if (!create) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_cg_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_cg_ctx_t));

    cln->handler = ngx_http_cg_cleanup;

    ngx_http_set_ctx(r, ctx, ngx_http_client_guard_module);

    return ctx;
}


static void
ngx_http_cg_cleanup(void *data)
{
    /* the request's context lives in the cleanup entry: nothing to free */

    /* a request that waits for a lease leaves the waiters (cg_redis) */
    ngx_http_cg_redis_cleanup(data);
}


static ngx_int_t
ngx_http_cg_client_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_cg_ctx_t       *ctx;
    ngx_http_cg_loc_conf_t  *lcf;

    ctx = ngx_http_cg_get_ctx(r->main, 1);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (!ctx->identified) {
        lcf = ngx_http_get_module_loc_conf(r->main,
                                           ngx_http_client_guard_module);

        if (ngx_http_cg_identify_request(r->main, lcf, ctx) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ctx->client.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->client.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ctx->client.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_cg_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_cg_ctx_t  *ctx;

    ctx = ngx_http_cg_get_ctx(r->main, 0);

    if (ctx == NULL || ctx->status == NGX_HTTP_CG_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_http_cg_status_names[ctx->status].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ngx_http_cg_status_names[ctx->status].data;

    return NGX_OK;
}


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


static void *
ngx_http_cg_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_cg_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cg_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

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

    if (ngx_http_cg_zone_check_declared(cf, &mcf->zones) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
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
     *     conf->zone = NULL;
     *     conf->rules = NULL;
     *     conf->fallback = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET_UINT;
    conf->fallback.len = NGX_CONF_UNSET_SIZE;
    conf->unidentified_status = NGX_CONF_UNSET_UINT;
    conf->reject_status = NGX_CONF_UNSET_UINT;
    conf->headers = NGX_CONF_UNSET;
    conf->dry_run = NGX_CONF_UNSET;
    conf->log_level = NGX_CONF_UNSET_UINT;
    conf->name_max_len = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_cg_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_cg_loc_conf_t *prev = parent;
    ngx_http_cg_loc_conf_t *conf = child;

    if (conf->enable == NGX_CONF_UNSET_UINT) {
        conf->enable = prev->enable;
        conf->zone = prev->zone;
    }

    if (conf->rules == NULL) {
        conf->rules = prev->rules;
    }

    if (conf->fallback.len == NGX_CONF_UNSET_SIZE) {
        conf->fallback = prev->fallback;

        if (conf->fallback.len == NGX_CONF_UNSET_SIZE) {
            ngx_str_set(&conf->fallback, "unknown");
        }
    }

    ngx_conf_merge_uint_value(conf->unidentified_status,
                              prev->unidentified_status, NGX_HTTP_FORBIDDEN);
    ngx_conf_merge_uint_value(conf->reject_status, prev->reject_status,
                              NGX_HTTP_TOO_MANY_REQUESTS);
    ngx_conf_merge_value(conf->headers, prev->headers, 1);
    ngx_conf_merge_value(conf->dry_run, prev->dry_run, 0);
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level, NGX_LOG_ERR);
    ngx_conf_merge_uint_value(conf->name_max_len, prev->name_max_len, 64);

    return NGX_CONF_OK;
}


static char *
ngx_http_cg_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_main_conf_t  *mcf = conf;

    return ngx_http_cg_zone_directive(cf, &mcf->zones);
}


static char *
ngx_http_cg_quota(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_main_conf_t  *mcf = conf;

    return ngx_http_cg_quota_directive(cf, &mcf->quotas);
}


static char *
ngx_http_cg(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_loc_conf_t  *lcf = conf;

    ngx_str_t                *value, name;
    ngx_http_cg_main_conf_t  *mcf;

    if (lcf->enable != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        lcf->enable = 0;
        lcf->zone = NULL;
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value[1].data, "zone=", 5) != 0 || value[1].len == 5) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"client_guard\", "
                           "expected \"zone=name\" or \"off\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data + 5;
    name.len = value[1].len - 5;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_client_guard_module);

    lcf->zone = ngx_http_cg_zone_get(cf, &mcf->zones, &name);
    if (lcf->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    lcf->enable = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_cg_identify_cmd(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_loc_conf_t  *lcf = conf;

    return ngx_http_cg_identify_directive(cf, &lcf->rules);
}


static char *
ngx_http_cg_identify_address_cmd(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_cg_loc_conf_t  *lcf = conf;

    return ngx_http_cg_identify_address_directive(cf, &lcf->rules);
}


static char *
ngx_http_cg_identify_api_key_cmd(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_cg_loc_conf_t  *lcf = conf;

    return ngx_http_cg_identify_api_key_directive(cf, &lcf->rules);
}


static char *
ngx_http_cg_fallback(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_loc_conf_t  *lcf = conf;

    int         len;
    u_char      buf[CG_NAME_MAX];
    ngx_str_t  *value;

    if (lcf->fallback.len != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        ngx_str_null(&lcf->fallback);
        return NGX_CONF_OK;
    }

    len = cg_name_normalize(buf, value[1].data, value[1].len, CG_NAME_MAX);

    if (len < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid client name \"%V\" in "
                           "\"client_guard_fallback\": letters, digits and "
                           "\"-_.:@\" only, at most %d characters",
                           &value[1], CG_NAME_MAX);
        return NGX_CONF_ERROR;
    }

    lcf->fallback.data = ngx_pnalloc(cf->pool, len);
    if (lcf->fallback.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(lcf->fallback.data, buf, len);
    lcf->fallback.len = len;

    return NGX_CONF_OK;
}


static char *
ngx_http_cg_set_num(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_int_t               n;
    ngx_str_t              *value;
    ngx_uint_t             *np;
    ngx_conf_num_bounds_t  *b;

    np = (ngx_uint_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    b = cmd->post;

    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR || n < b->low || n > b->high) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\", it must be a "
                           "number from %i to %i", &value[1], &cmd->name,
                           b->low, b->high);
        return NGX_CONF_ERROR;
    }

    *np = n;

    return NGX_CONF_OK;
}


static char *
ngx_http_cg_set_log_level(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t        *value;
    ngx_uint_t       *np, i;
    ngx_conf_enum_t  *e;

    np = (ngx_uint_t *) (p + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (e = cmd->post, i = 0; e[i].name.len; i++) {
        if (e[i].name.len == value[1].len
            && ngx_strcmp(e[i].name.data, value[1].data) == 0)
        {
            *np = e[i].value;
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\", it must be "
                       "\"info\", \"notice\", \"warn\" or \"error\"",
                       &value[1], &cmd->name);

    return NGX_CONF_ERROR;
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

    *h = ngx_http_cg_preaccess_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_cg_log_handler;

    return NGX_OK;
}


/* per-client statistics of a finished request (cg_status) */

static ngx_int_t
ngx_http_cg_log_handler(ngx_http_request_t *r)
{
    ngx_http_cg_ctx_t        *ctx;
    ngx_http_cg_main_conf_t  *mcf;

    if (r != r->main) {
        /* a logged subrequest shares the main request's pool and ctx */
        return NGX_OK;
    }

    ctx = ngx_http_cg_get_ctx(r, 0);

    if (ctx == NULL || ctx->node == NULL) {
        return NGX_OK;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_client_guard_module);

    ngx_http_cg_stats_log(r, ctx->zone, ctx->node, ctx->status,
                           &mcf->anomaly);

    ctx->node = NULL;

    return NGX_OK;
}


static char *
ngx_http_cg_status_cmd(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_loc_conf_t  *lcf = conf;

    ngx_http_cg_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_client_guard_module);

    return ngx_http_cg_status_directive(cf, &mcf->zones, &lcf->status);
}


static char *
ngx_http_cg_anomaly_cmd(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_main_conf_t  *mcf = conf;

    return ngx_http_cg_anomaly_directive(cf, &mcf->anomaly);
}


static char *
ngx_http_cg_publish_cmd(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_main_conf_t  *mcf = conf;

    return ngx_http_cg_publish_directive(cf, &mcf->publish);
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
    ngx_http_cg_stats_log_exit();
    ngx_http_cg_status_exit_process(cycle);
    ngx_http_cg_redis_exit_process(cycle);
}
