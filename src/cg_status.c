
/*
 * Copyright (C) client guard authors
 *
 * cg_status: the status endpoint.
 *
 * Owns: the client_guard_status directive, the
 * status handler with its query parsing and its dispatch (the HTML
 * dashboard, a deploy marker by POST, the cluster view, or the report of
 * this node), and the driving of a node's answer in slices: the report
 * (cg_report) then its format (cg_status_json, cg_status_prom) into the
 * output (cg_out), sent at once.  See docs/status.md for every field.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include "cg_common.h"
#include "cg_stats_log.h"
#include "cg_out.h"
#include "cg_slice.h"
#include "cg_report.h"
#include "cg_status_events.h"
#include "cg_status_json.h"
#include "cg_status_prom.h"
#include "cg_status_publish.h"
#include "cg_status_cluster.h"
#include "cg_dashboard.h"


#define NGX_HTTP_CG_LIMIT_DEF     100      /* rows, unless Prometheus */
#define NGX_HTTP_CG_LIMIT_ALL     NGX_MAX_UINT32_VALUE  /* the zone's */

/*
 * A node's answer is cooperative, as a publication is: the handler starts
 * it and, with more clients than one batch, returns NGX_DONE; the rest
 * runs in slices across turns of the event loop (cg_slice): the report
 * one share per slice (a batch of NGX_HTTP_CG_BATCH records copied under
 * the zone lock and their rows ranked outside it, the sort of the rows
 * shown, their quota views a batch at a time, see cg_report.c), then the
 * answer: formatted into the request's buffer chain, with more rows shown
 * than a batch in slices of about NGX_HTTP_CG_SLICE_OUT bytes (each
 * format a list of steps resumed at (step, row), see ngx_http_cg_out_t),
 * and sent at once when complete, Content-Length known.  Each request has
 * its own memory, so that any number of them can be under way in a
 * worker.  A client that closes the connection ends the request
 * (ngx_http_test_reading, or EPOLLRDHUP seen by the next slice), and the
 * pool cleanup takes the next slice off the queue; a worker shutting down
 * finishes what is left at once (no limit on the output of a slice then),
 * and a timer that is never due keeps it until then.
 */

#define NGX_HTTP_CG_SLICE_OUT     (256 * 1024)
#define NGX_HTTP_CG_KEEP          60000    /* never due, see _keep() */


typedef struct {
    ngx_http_request_t       *r;
    ngx_http_cg_report_t      report;
    ngx_http_cg_out_t         out;         /* the answer, across slices */
    ngx_http_cg_slice_t       slice;
    ngx_event_t               keep;
} ngx_http_cg_status_ctx_t;


static ngx_int_t ngx_http_cg_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_cg_status_node(ngx_http_request_t *r,
    ngx_http_cg_zone_t *zone, ngx_uint_t format, ngx_http_cg_query_t *q);
static ngx_int_t ngx_http_cg_status_steps(ngx_http_cg_status_ctx_t *ctx);
static ngx_int_t ngx_http_cg_status_slice(void *data);
static void ngx_http_cg_status_keep(ngx_event_t *ev);
static void ngx_http_cg_status_cleanup(void *data);


/* configuration ------------------------------------------------------------ */


char *
ngx_http_cg_status_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_status_conf_t  **scfp = (void *) ((char *) conf + cmd->offset);

    ngx_int_t                   n, rc;
    ngx_str_t                  *value;
    ngx_uint_t                  i;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_cg_main_conf_t    *mcf;
    ngx_http_cg_status_conf_t  *scf;

    if (*scfp) {
        return "is duplicate";
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_client_guard_module);

    scf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cg_status_conf_t));
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

        if (ngx_strncmp(value[i].data, "limit=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (n <= 0 || n > NGX_HTTP_CG_LIMIT_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"limit\" value \"%V\" in "
                                   "\"client_guard_status\", 1..%d",
                                   &value[i], NGX_HTTP_CG_LIMIT_MAX);
                return NGX_CONF_ERROR;
            }

            scf->limit = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "deploy_token=", 13) == 0) {
            scf->token.data = value[i].data + 13;
            scf->token.len = value[i].len - 13;

            if (scf->token.len < 8) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"deploy_token\" of "
                                   "\"client_guard_status\" must have at "
                                   "least 8 characters");
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in "
                           "\"client_guard_status\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    *scfp = scf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_cg_status_handler;

    return NGX_CONF_OK;
}


/* the handler -------------------------------------------------------------- */


/* the query (cg_query.c): what to show (q), in which format, of which nodes */

static ngx_int_t
ngx_http_cg_status_args(ngx_http_request_t *r, ngx_http_cg_status_conf_t *scf,
    ngx_uint_t *format, ngx_uint_t *cluster, ngx_http_cg_query_t *q,
    const char **bad)
{
    cg_query_t  cq;

    if (cg_query_parse(&cq, r->args.data, r->args.len) != 0) {
        *bad = cq.bad ? cq.bad : "?";
        return NGX_HTTP_BAD_REQUEST;
    }

    *format = cq.format >= 0 ? (ngx_uint_t) cq.format
                             : ngx_http_cg_out_accept(r);
    *cluster = cq.cluster;
    q->sort = cq.sort;
    q->limit = cq.limit >= 0
               ? ngx_min((ngx_uint_t) cq.limit, NGX_HTTP_CG_LIMIT_MAX)
               : (scf->limit ? scf->limit : NGX_CONF_UNSET_UINT);

    if (cq.client_len) {
        q->client.data = ngx_pnalloc(r->pool, cq.client_len);
        if (q->client.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(q->client.data, cq.client, cq.client_len);
        q->client.len = cq.client_len;
    }

    if (cq.history >= 0) {
        q->history = cq.history;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cg_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_uint_t                  format, cluster;
    ngx_time_t                 *tp;
    const char                 *bad;
    ngx_http_cg_out_t           o;
    ngx_http_cg_zone_t         *zone, **zp;
    ngx_http_cg_query_t        *q;
    ngx_http_cg_loc_conf_t     *lcf;
    ngx_http_cg_main_conf_t    *mcf;
    ngx_http_cg_status_conf_t  *scf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_client_guard_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_client_guard_module);
    scf = lcf->status;

    /* this worker's latest requests in the answer too */
    ngx_http_cg_stats_flush();

    zone = scf->zone;

    if (zone == NULL) {
        if (mcf->zones.nelts == 0) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "client guard status: no client_guard_zone");
            return NGX_HTTP_NOT_FOUND;
        }

        zp = mcf->zones.elts;
        zone = zp[0];
    }

    if (r->method == NGX_HTTP_POST) {
        return ngx_http_cg_events_post(r, &scf->token, zone,
                                       ngx_http_cg_status_redis.link,
                                       &ngx_http_cg_status_redis.events);
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    q = ngx_pcalloc(r->pool, sizeof(ngx_http_cg_query_t));
    if (q == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_cg_status_args(r, scf, &format, &cluster, q, &bad);

    if (rc == NGX_HTTP_BAD_REQUEST) {
        return ngx_http_cg_out_bad(r, "query argument", bad);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    /* no limit said: a node's Prometheus answer shows every client */

    if (q->limit == NGX_CONF_UNSET_UINT) {
        q->limit = (format == NGX_HTTP_CG_FMT_PROM
                    || format == NGX_HTTP_CG_FMT_OPENM) && !cluster
                   ? NGX_HTTP_CG_LIMIT_ALL : NGX_HTTP_CG_LIMIT_DEF;
    }

    if (format == NGX_HTTP_CG_FMT_HTML) {
        ngx_http_cg_out_init(&o, r, format);
        ngx_http_cg_out_memory(&o, (u_char *) ngx_http_cg_dashboard,
                               sizeof(ngx_http_cg_dashboard) - 1);

        return ngx_http_cg_out_send(&o, NGX_HTTP_OK);
    }

    tp = ngx_timeofday();
    q->now_ms = (int64_t) tp->sec * 1000 + tp->msec;
    q->now = (uint32_t) tp->sec;

    if (cluster) {
        return ngx_http_cg_status_cluster(r, zone, &mcf->anomaly, format, q);
    }

    return ngx_http_cg_status_node(r, zone, format, q);
}


/* the answer of this node, in slices ------------------------------------- */


static ngx_int_t
ngx_http_cg_status_node(ngx_http_request_t *r, ngx_http_cg_zone_t *zone,
    ngx_uint_t format, ngx_http_cg_query_t *q)
{
    ngx_int_t                  rc;
    ngx_pool_cleanup_t        *cln;
    ngx_http_cg_report_t      *rp;
    ngx_http_cg_main_conf_t   *mcf;
    ngx_http_cg_status_ctx_t  *ctx;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_client_guard_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_cg_status_ctx_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (ctx == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->r = r;

    rp = &ctx->report;
    rp->zone = zone;
    rp->query = q;
    rp->an = mcf->anomaly;
    rp->quotas = &mcf->quotas;
    rp->node = mcf->node;
    rp->redis = (mcf->redis != NULL);
    rp->pool = r->pool;

    ngx_http_cg_out_init(&ctx->out, r, format);

    cln->handler = ngx_http_cg_status_cleanup;
    cln->data = ctx;

    if (ngx_http_cg_report_start(rp) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_cg_status_steps(ctx);

    if (rc != NGX_BUSY) {
        return rc;
    }

    /* more than one slice: the rest in the next turns of the event loop */

    ngx_http_cg_slice_init(&ctx->slice, ngx_http_cg_status_slice, ctx,
                           r->connection->log);

    ctx->keep.handler = ngx_http_cg_status_keep;
    ctx->keep.data = ctx;
    ctx->keep.log = r->connection->log;

    ngx_add_timer(&ctx->keep, NGX_HTTP_CG_KEEP);

    r->read_event_handler = ngx_http_test_reading;
    r->main->count++;

    ngx_http_cg_slice_post(&ctx->slice);

    return NGX_DONE;
}


/*
 * As many steps as one slice takes: NGX_BUSY while there is more to do
 * (NGX_AGAIN is the output's), then the answer's code.  The report takes
 * its shares (cg_report.c), then the answer as many as its size takes:
 * NGX_HTTP_CG_SLICE_OUT bytes each when more rows are shown than a batch.
 */

static ngx_int_t
ngx_http_cg_status_steps(ngx_http_cg_status_ctx_t *ctx)
{
    ngx_int_t              rc;
    ngx_http_cg_out_t     *o;
    ngx_http_cg_report_t  *rp;

    rp = &ctx->report;
    o = &ctx->out;

    for ( ;; ) {

        rc = ngx_http_cg_report_step(rp);

        if (rc == NGX_OK) {

            /* a worker shutting down finishes at once */

            o->limit = (rp->shown > NGX_HTTP_CG_BATCH && !ngx_exiting)
                       ? o->size + NGX_HTTP_CG_SLICE_OUT : 0;

            if (o->format == NGX_HTTP_CG_FMT_JSON) {
                rc = ngx_http_cg_status_json(o, rp);

            } else {
                rc = ngx_http_cg_status_prom(o, rp);
            }

            if (rc == NGX_OK) {
                return ngx_http_cg_out_send(o, NGX_HTTP_OK);
            }
        }

        if (rc != NGX_AGAIN || o->failed) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (!ngx_exiting) {
            return NGX_BUSY;
        }
    }
}


static ngx_int_t
ngx_http_cg_status_slice(void *data)
{
    ngx_http_cg_status_ctx_t  *ctx = data;

    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->r;
    c = r->connection;

    /* the client has gone (EPOLLRDHUP): as ngx_http_test_reading() says */

    if (c->read->pending_eof && !c->error) {
        c->read->eof = 1;
        c->error = 1;

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "client prematurely closed connection");
    }

    if (c->error) {
        rc = NGX_HTTP_CLIENT_CLOSED_REQUEST;

    } else {
        rc = ngx_http_cg_status_steps(ctx);

        if (rc == NGX_BUSY) {
            return NGX_AGAIN;
        }
    }

    if (ctx->keep.timer_set) {
        ngx_del_timer(&ctx->keep);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);

    return NGX_DONE;
}


/* a timer that is never due: an exiting worker waits for the request */

static void
ngx_http_cg_status_keep(ngx_event_t *ev)
{
    ngx_add_timer(ev, NGX_HTTP_CG_KEEP);
}


/* the request's pool goes (done, or ended early): no slice after it */

static void
ngx_http_cg_status_cleanup(void *data)
{
    ngx_http_cg_status_ctx_t  *ctx = data;

    ngx_http_cg_report_free(&ctx->report);
    ngx_http_cg_slice_cancel(&ctx->slice);

    if (ctx->keep.timer_set) {
        ngx_del_timer(&ctx->keep);
    }
}
