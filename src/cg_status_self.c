
/*
 * Copyright (C) client guard authors
 *
 * A team's own view.  See cg_status_self.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_common.h"
#include "cg_stats_log.h"
#include "cg_out.h"
#include "cg_report.h"
#include "cg_status_json.h"
#include "cg_status_self.h"
#include "cg_self_html.h"


static ngx_int_t ngx_http_cg_self_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_cg_self_format(ngx_http_request_t *r,
    ngx_uint_t *format);
static void ngx_http_cg_self_json(ngx_http_cg_out_t *o,
    ngx_http_cg_report_t *rp, ngx_http_cg_row_t *row, ngx_int_t reason);
static ngx_int_t ngx_http_cg_self_send(ngx_http_cg_out_t *o);


static const char  *ngx_http_cg_self_reasons[NGX_HTTP_CG_ID_NREASONS] = {
    "", "no_rule", "invalid_name", "unknown_api_key"
};


/* configuration ------------------------------------------------------------ */


char *
ngx_http_cg_self_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_self_conf_t  **scfp = (void *) ((char *) conf + cmd->offset);

    ngx_int_t                  rc;
    ngx_str_t                 *value;
    ngx_uint_t                 i;
    ngx_http_core_loc_conf_t  *clcf;
    ngx_http_cg_main_conf_t   *mcf;
    ngx_http_cg_self_conf_t   *scf;

    if (*scfp) {
        return "is duplicate";
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_client_guard_module);

    scf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cg_self_conf_t));
    if (scf == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        rc = ngx_http_cg_zone_arg(cf, &mcf->zones, &value[i], &scf->zone);

        if (rc == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }

        if (rc == NGX_OK) {
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in "
                           "\"client_guard_status_self\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    *scfp = scf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_cg_self_handler;

    return NGX_CONF_OK;
}


/* the handler -------------------------------------------------------------- */


/*
 * The calling client is named as the location's own requests are: its
 * rules, its fallback (or its unidentified status), its name length; then
 * its row alone (cg_report.c: one record copied under the zone lock).  No
 * query argument names a client: only format= is read here.
 */

static ngx_int_t
ngx_http_cg_self_handler(ngx_http_request_t *r)
{
    ngx_int_t                 rc, status;
    ngx_str_t                 name, raw;
    ngx_uint_t                format;
    ngx_time_t               *tp;
    ngx_http_cg_out_t         o;
    ngx_http_cg_row_t        *row;
    ngx_http_cg_zone_t       *zone, **zp;
    ngx_http_cg_query_t      *q;
    ngx_http_cg_report_t     *rp;
    ngx_http_cg_loc_conf_t   *lcf;
    ngx_http_cg_main_conf_t  *mcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_cg_self_format(r, &format);

    if (rc != NGX_OK) {
        return rc;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_client_guard_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_client_guard_module);

    /* 1. who is calling */

    status = 0;

    rc = ngx_http_cg_identify(r, lcf->rules, lcf->name_max_len, &name, &raw,
                              &status);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_HTTP_CG_ID_OK) {

        if (rc == NGX_HTTP_CG_ID_UNKNOWN_KEY && status) {
            return status;
        }

        if (lcf->fallback.len == 0) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "client guard self: unidentified (%s)",
                           ngx_http_cg_self_reasons[rc]);

            return lcf->unidentified_status;
        }

        name = lcf->fallback;
    }

    if (format == NGX_HTTP_CG_FMT_HTML) {
        ngx_http_cg_out_init(&o, r, format);
        ngx_http_cg_out_memory(&o, (u_char *) ngx_http_cg_self_page,
                               sizeof(ngx_http_cg_self_page) - 1);

        return ngx_http_cg_self_send(&o);
    }

    /* 2. its zone: the directive's, where its requests here count, the first */

    zone = lcf->self->zone ? lcf->self->zone : lcf->zone;

    if (zone == NULL) {
        if (mcf->zones.nelts == 0) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "client guard self: no client_guard_zone");
            return NGX_HTTP_NOT_FOUND;
        }

        zp = mcf->zones.elts;
        zone = zp[0];
    }

    /* 3. its row: this worker's latest requests counted first */

    ngx_http_cg_stats_flush();

    q = ngx_pcalloc(r->pool, sizeof(ngx_http_cg_query_t));
    rp = ngx_pcalloc(r->pool, sizeof(ngx_http_cg_report_t));

    if (q == NULL || rp == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    tp = ngx_timeofday();
    q->now_ms = (int64_t) tp->sec * 1000 + tp->msec;
    q->now = (uint32_t) tp->sec;
    q->client = name;
    q->limit = 1;
    q->history = 1;

    rp->zone = zone;
    rp->query = q;
    rp->an = mcf->anomaly;
    rp->quotas = &mcf->quotas;
    rp->node = mcf->node;
    rp->redis = (mcf->redis != NULL);
    rp->pool = r->pool;

    row = ngx_http_cg_report_client(rp);
    if (row == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* 4. the answer */

    ngx_http_cg_out_init(&o, r, NGX_HTTP_CG_FMT_JSON);
    ngx_http_cg_self_json(&o, rp, row, rc);

    return ngx_http_cg_self_send(&o);
}


/* ?format=json | html, else the Accept header: text/html, else JSON */

static ngx_int_t
ngx_http_cg_self_format(ngx_http_request_t *r, ngx_uint_t *format)
{
    int        n;
    u_char     buf[CG_QUERY_VALUE_LEN];
    ngx_str_t  arg;

    *format = NGX_HTTP_CG_FMT_JSON;

    if (ngx_http_arg(r, (u_char *) "format", 6, &arg) == NGX_OK) {

        /* decoded as the status query's values are (cg_query.c) */

        n = cg_query_unescape(buf, sizeof(buf), arg.data, arg.len);

        if (n == 4 && ngx_strncmp(buf, "json", 4) == 0) {
            return NGX_OK;
        }

        if (n == 4 && ngx_strncmp(buf, "html", 4) == 0) {
            *format = NGX_HTTP_CG_FMT_HTML;
            return NGX_OK;
        }

        return NGX_HTTP_BAD_REQUEST;
    }

    /* a page only for a browser: anything else is answered JSON */

    if (ngx_http_cg_out_accept(r) == NGX_HTTP_CG_FMT_HTML) {
        *format = NGX_HTTP_CG_FMT_HTML;
    }

    return NGX_OK;
}


/*
 * The client's object as in the status's "clients" (its history always),
 * and its own deploy markers: nothing of any other client, nor the zone's
 * health, the top movers or the Redis errors, which name others.
 */

static void
ngx_http_cg_self_json(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp,
    ngx_http_cg_row_t *row, ngx_int_t reason)
{
    ngx_str_t  host;

    host = rp->node;

    ngx_http_cg_out_printf(o,
        "{\"schema_version\":%d,\"module\":\"client_guard\","
        "\"view\":\"self\",\"node\":\"%V\",\"zone\":\"%V\","
        "\"scope\":\"node\",\"time_ms\":%L,\"identified\":%s,"
        "\"unidentified_reason\":\"%s\",\"tracked\":%s,\"client\":",
        NGX_HTTP_CG_SCHEMA_VERSION,
        ngx_http_cg_out_escape(o->r->pool, &host),
        ngx_http_cg_out_escape(o->r->pool, &rp->zone->name),
        rp->query->now_ms, reason == NGX_HTTP_CG_ID_OK ? "true" : "false",
        ngx_http_cg_self_reasons[reason], rp->nrows ? "true" : "false");

    ngx_http_cg_status_json_client(o, rp, row);

    ngx_http_cg_out_printf(o, ",\"deploys\":[");
    ngx_http_cg_json_deploys(o, &rp->area, &row->name);
    ngx_http_cg_out_printf(o, "]}\n");
}


/* an answer for its caller alone: no shared cache may keep it for others */

static ngx_int_t
ngx_http_cg_self_send(ngx_http_cg_out_t *o)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&o->r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "private, no-store");
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return ngx_http_cg_out_send(o, NGX_HTTP_OK);
}
