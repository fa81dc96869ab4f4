
/*
 * Copyright (C) client guard authors
 *
 * cg_status: the status endpoint.
 *
 * Owns: the client_guard_status and client_guard_anomaly directives, the
 * log phase update of each client's statistics, the status handler with
 * its query parsing and the HTML (dashboard) answer, the output helpers the
 * formats share, and the report: a request copies the client records in
 * batches under the zone lock (in rbtree order, resuming after the last
 * name copied, so that records evicted or created in between do no harm),
 * then computes rates, quota use and anomaly flags and sorts outside the
 * lock, in slices between which the worker serves other requests.  The
 * formats are in cg_status_json.c and cg_status_prom.c, deploy
 * markers in cg_status_deploy.c, Redis in cg_status_publish.c and
 * cg_status_cluster.c.  See docs/status.md for every field.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include "cg_common.h"
#include "cg_decide.h"
#include "cg_stats_log.h"
#include "cg_status_int.h"
#include "cg_dashboard.h"


/*
 * A status request is cooperative, as a publication is: the handler starts
 * it and, with more clients than one batch, returns NGX_DONE; the rest
 * runs in slices across turns of the event loop (ngx_posted_next_events):
 * per slice one batch of NGX_HTTP_CG_BATCH records copied under the zone
 * lock, their rows computed outside it and ranked into the rows shown (a
 * heap of at most "limit"), then a slice for the sort of the rows shown,
 * their quota views NGX_HTTP_CG_BATCH per slice, then the answer:
 * formatted into the request's buffer chain, with more rows shown than a
 * batch in slices of about NGX_HTTP_CG_SLICE_OUT bytes (each format a
 * list of steps resumed at (step, row), see
 * ngx_http_cg_out_t), and sent at once when complete, Content-Length
 * known.  Each request has its own memory, so that any number of them can
 * be under way in a worker.  A client that closes the connection ends the
 * request (ngx_http_test_reading, or EPOLLRDHUP seen by the next slice),
 * and the pool cleanup takes the next slice off the queue; a worker
 * shutting down finishes what is left at once (no limit on the output of
 * a slice then).
 */

#define NGX_HTTP_CG_ST_WALK       0
#define NGX_HTTP_CG_ST_SORT       1
#define NGX_HTTP_CG_ST_VIEWS      2
#define NGX_HTTP_CG_ST_FORMAT     3

#define NGX_HTTP_CG_ST_KEEP       60000    /* never due, see _keep() */


typedef int (ngx_libc_cdecl *ngx_http_cg_cmp_pt)(const void *one,
    const void *two);


/*
 * Memory for the copies and rows of one request, kept when the request is
 * done for the next one (with many clients, fresh memory each time costs
 * more in page faults than the copy itself): at most
 * NGX_HTTP_CG_SCRATCH_KEEP are kept idle per worker; requests under way
 * at once each have their own.
 */

#define NGX_HTTP_CG_SCRATCH_KEEP  2

typedef struct ngx_http_cg_scratch_s  ngx_http_cg_scratch_t;

struct ngx_http_cg_scratch_s {
    ngx_http_cg_scratch_t    *next;
    size_t                    size;        /* of the data that follows */
};


static ngx_http_cg_scratch_t  *ngx_http_cg_scratch_idle;
static ngx_uint_t              ngx_http_cg_scratch_nidle;


typedef struct {
    ngx_http_request_t       *r;
    ngx_http_cg_report_t     *rp;
    ngx_http_cg_scratch_t    *scratch;
    ngx_uint_t                phase;
    ngx_uint_t                yield;       /* this slice has done its share */
    ngx_uint_t                max;         /* records to copy, at most */
    ngx_uint_t                ranked;      /* rows in rp->sorted */
    ngx_uint_t                viewed;      /* rows with their quota view */
    ngx_uint_t                cap;         /* rows shown, at most */
    ngx_http_cg_cmp_pt        cmp;
    ngx_http_cg_rec_copy_t   *snaps;
    ngx_http_cg_cursor_t      cur;
    ngx_http_cg_out_t         out;         /* the answer, across slices */
    ngx_event_t               slice;
    ngx_event_t               keep;
} ngx_http_cg_status_ctx_t;


static ngx_int_t ngx_http_cg_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_cg_status_start(ngx_http_request_t *r,
    ngx_http_cg_report_t *rp);
static ngx_int_t ngx_http_cg_status_format(ngx_http_cg_status_ctx_t *ctx);
static ngx_int_t ngx_http_cg_status_send(ngx_http_request_t *r,
    ngx_http_cg_report_t *rp, ngx_http_cg_out_t *o);
static ngx_int_t ngx_http_cg_status_begin(ngx_http_cg_status_ctx_t *ctx);
static ngx_uint_t ngx_http_cg_status_walk(ngx_http_cg_status_ctx_t *ctx);
static ngx_rbtree_node_t *ngx_http_cg_status_after(ngx_http_cg_shctx_t *sh,
    ngx_rbtree_key_t key, u_char *name, size_t len, ngx_uint_t first);
static ngx_rbtree_node_t *ngx_http_cg_status_find(ngx_http_cg_shctx_t *sh,
    ngx_str_t *name);
static void ngx_http_cg_status_row(ngx_http_cg_report_t *rp,
    ngx_http_cg_row_t *row);
static int ngx_libc_cdecl ngx_http_cg_row_cmp(const void *one,
    const void *two);
static int ngx_libc_cdecl ngx_http_cg_row_name_cmp(const void *one,
    const void *two);
static void ngx_http_cg_status_rank(ngx_http_cg_status_ctx_t *ctx,
    ngx_http_cg_row_t *row);
static void ngx_http_cg_status_order(ngx_http_cg_status_ctx_t *ctx);
static ngx_uint_t ngx_http_cg_status_views(ngx_http_cg_status_ctx_t *ctx);
static ngx_int_t ngx_http_cg_status_steps(ngx_http_cg_status_ctx_t *ctx);
static void ngx_http_cg_status_slice(ngx_event_t *ev);
static void ngx_http_cg_status_keep(ngx_event_t *ev);
static void ngx_http_cg_status_cleanup(void *data);
static ngx_http_cg_scratch_t *ngx_http_cg_scratch_get(size_t size);
static void ngx_http_cg_scratch_put(ngx_http_cg_scratch_t *sc);


const char  *ngx_http_cg_sort_names[] = {
    "requests", "rate", "rate_1m", "rate_5m", "rejected", "errors",
    "quota", "anomaly", "name", NULL
};

const char  *ngx_http_cg_window_names[] = { "10s", "1m", "5m" };


/* configuration ------------------------------------------------------------ */


char *
ngx_http_cg_status_directive(ngx_conf_t *cf, ngx_array_t *zones,
    ngx_http_cg_status_conf_t **scfp)
{
    ngx_int_t                   n;
    ngx_str_t                  *value, name;
    ngx_uint_t                  i;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_cg_status_conf_t  *scf;

    if (*scfp) {
        return "is duplicate";
    }

    scf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cg_status_conf_t));
    if (scf == NULL) {
        return NGX_CONF_ERROR;
    }

    scf->limit = NGX_HTTP_CG_LIMIT_DEF;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.data = value[i].data + 5;
            name.len = value[i].len - 5;

            scf->zone = ngx_http_cg_zone_get(cf, zones, &name);
            if (scf->zone == NULL) {
                return NGX_CONF_ERROR;
            }

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


char *
ngx_http_cg_anomaly_directive(ngx_conf_t *cf, cg_anomaly_t *an)
{
    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (an->ratio != 0) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        an->ratio = -1;
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "ratio=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (n < 2 || n > 1000) {
                goto invalid;
            }

            an->ratio = (float) n;
            continue;
        }

        if (ngx_strcmp(value[i].data, "new_clients=on") == 0) {
            an->new_clients = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "new_clients=off") == 0) {
            an->new_clients = 0;
            continue;
        }

        if (ngx_strncmp(value[i].data, "min_rate=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            /* requests per second, with up to two decimals */

            n = ngx_atofp(s.data, s.len, 2);

            if (n <= 0) {
                goto invalid;
            }

            an->min_rate = (float) n / 100;
            continue;
        }

        goto invalid;
    }

    if (an->ratio == 0) {
        an->ratio = 5;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"client_guard_anomaly\","
                       " expected \"ratio=2..1000\", \"min_rate=R\" (R > 0),"
                       " \"new_clients=on|off\" or \"off\"", &value[i]);
    return NGX_CONF_ERROR;
}


void
ngx_http_cg_anomaly_init(cg_anomaly_t *an)
{
    if (an->ratio == 0) {
        an->ratio = 5;
    }

    if (an->min_rate == 0) {
        an->min_rate = 1;
    }
}


/* output helpers ----------------------------------------------------------- */


static u_char *
ngx_http_cg_reserve(ngx_http_cg_out_t *o, size_t size)
{
    size_t        n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (o->failed) {
        return NULL;
    }

    if (o->b && (size_t) (o->b->end - o->b->last) >= size) {
        return o->b->last;
    }

    n = ngx_max(size, 64 * 1024);

    b = ngx_create_temp_buf(o->r->pool, n);
    cl = ngx_alloc_chain_link(o->r->pool);

    if (b == NULL || cl == NULL) {
        o->failed = 1;
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;
    *o->last = cl;
    o->last = &cl->next;
    o->b = b;

    return b->last;
}


void
ngx_http_cg_pr(ngx_http_cg_out_t *o, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    p = ngx_http_cg_reserve(o, NGX_HTTP_CG_RESERVE);
    if (p == NULL) {
        return;
    }

    va_start(args, fmt);
    o->b->last = ngx_vslprintf(p, p + NGX_HTTP_CG_RESERVE, fmt, args);
    va_end(args);

    o->size += o->b->last - p;
}


/* after a row: this slice has done its share, and rows of the step are left */

ngx_uint_t
ngx_http_cg_out_full(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp)
{
    return o->limit && o->size >= o->limit && o->row < rp->shown;
}


/* a string for JSON or a label value: printable ASCII, escaped, cut at 128 */

ngx_str_t *
ngx_http_cg_esc(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char     *p, c;
    ngx_str_t  *e;
    ngx_uint_t  i;

    e = ngx_palloc(pool, sizeof(ngx_str_t) + 2 * 128);
    if (e == NULL) {
        return s;
    }

    p = (u_char *) (e + 1);
    e->data = p;

    for (i = 0; i < s->len && i < 128; i++) {
        c = s->data[i];

        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = c;

        } else if (c < 0x20 || c >= 0x7f) {
            *p++ = '_';

        } else {
            *p++ = c;
        }
    }

    e->len = p - e->data;

    return e;
}


/* a non-negative finite double, for %.Nf */

double
ngx_http_cg_num(double v)
{
    if (!(v >= 0) || v > 1e15) {
        return 0;
    }

    return v;
}


/* the handler -------------------------------------------------------------- */


static ngx_int_t
ngx_http_cg_status_accept(ngx_http_request_t *r)
{
    ngx_str_t        *v;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    /* the first of these an Accept header names, in this order */

    static struct {
        ngx_str_t     type;
        ngx_int_t     format;
    } types[] = {
        { ngx_string("application/openmetrics-text"),
          NGX_HTTP_CG_FMT_OPENM },
        { ngx_string("application/json"), NGX_HTTP_CG_FMT_JSON },
        { ngx_string("text/html"), NGX_HTTP_CG_FMT_HTML },
        { ngx_string("text/plain"), NGX_HTTP_CG_FMT_PROM },
        { ngx_null_string, 0 }
    }, *t;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != 6
            || ngx_strncasecmp(h[i].key.data, (u_char *) "accept", 6) != 0)
        {
            continue;
        }

        v = &h[i].value;

        for (t = types; t->type.len; t++) {
            if (ngx_strlcasestrn(v->data, v->data + v->len, t->type.data,
                                 t->type.len - 1)
                != NULL)
            {
                return t->format;
            }
        }
    }

    return NGX_HTTP_CG_FMT_JSON;
}


static ngx_int_t
ngx_http_cg_status_args(ngx_http_request_t *r, ngx_http_cg_status_conf_t *scf,
    ngx_http_cg_report_t *rp)
{
    u_char      *p;
    ngx_int_t    n;
    ngx_str_t    v;
    ngx_uint_t   i;

    rp->format = ngx_http_cg_status_accept(r);
    rp->sort = NGX_HTTP_CG_SORT_REQUESTS;
    rp->limit = scf->limit;

    if (ngx_http_arg(r, (u_char *) "format", 6, &v) == NGX_OK) {

        if (v.len == 4 && ngx_strncmp(v.data, "json", 4) == 0) {
            rp->format = NGX_HTTP_CG_FMT_JSON;

        } else if (v.len == 10 && ngx_strncmp(v.data, "prometheus", 10) == 0)
        {
            rp->format = NGX_HTTP_CG_FMT_PROM;

        } else if (v.len == 11
                   && ngx_strncmp(v.data, "openmetrics", 11) == 0)
        {
            rp->format = NGX_HTTP_CG_FMT_OPENM;

        } else if (v.len == 4 && ngx_strncmp(v.data, "html", 4) == 0) {
            rp->format = NGX_HTTP_CG_FMT_HTML;

        } else {
            return NGX_HTTP_BAD_REQUEST;
        }
    }

    if (ngx_http_arg(r, (u_char *) "sort", 4, &v) == NGX_OK) {

        for (i = 0; ngx_http_cg_sort_names[i]; i++) {
            if (ngx_strlen(ngx_http_cg_sort_names[i]) == v.len
                && ngx_strncmp(ngx_http_cg_sort_names[i], v.data, v.len) == 0)
            {
                break;
            }
        }

        if (ngx_http_cg_sort_names[i] == NULL) {
            return NGX_HTTP_BAD_REQUEST;
        }

        rp->sort = i;
    }

    if (ngx_http_arg(r, (u_char *) "limit", 5, &v) == NGX_OK) {
        n = ngx_atoi(v.data, v.len);

        if (n < 0) {
            return NGX_HTTP_BAD_REQUEST;
        }

        rp->limit = ngx_min((ngx_uint_t) n, NGX_HTTP_CG_LIMIT_MAX);
    }

    if (ngx_http_arg(r, (u_char *) "client", 6, &v) == NGX_OK) {
        p = ngx_pnalloc(r->pool, CG_NAME_MAX);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        n = cg_name_normalize(p, v.data, v.len, CG_NAME_MAX);

        if (n < 0) {
            return NGX_HTTP_BAD_REQUEST;
        }

        rp->client.data = p;
        rp->client.len = n;
    }

    if (ngx_http_arg(r, (u_char *) "scope", 5, &v) == NGX_OK) {

        if (v.len == 4 && ngx_strncmp(v.data, "node", 4) == 0) {
            return NGX_OK;
        }

        if (v.len == 7 && ngx_strncmp(v.data, "cluster", 7) == 0) {
            rp->cluster = 1;
            return NGX_OK;
        }

        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cg_status_handler(ngx_http_request_t *r)
{
    size_t                      len;
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_time_t                 *tp;
    ngx_chain_t                 out;
    ngx_http_cg_zone_t        **zp;
    ngx_http_cg_report_t       *rp;
    ngx_http_cg_loc_conf_t     *lcf;
    ngx_http_cg_main_conf_t    *mcf;
    ngx_http_cg_status_conf_t  *scf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_client_guard_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_client_guard_module);
    scf = lcf->status;

    /* this worker's latest requests in the answer too */
    ngx_http_cg_stats_flush();

    rp = ngx_pcalloc(r->pool, sizeof(ngx_http_cg_report_t));
    if (rp == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rp->zone = scf->zone;

    if (rp->zone == NULL) {
        if (mcf->zones.nelts == 0) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "client guard status: no client_guard_zone");
            return NGX_HTTP_NOT_FOUND;
        }

        zp = mcf->zones.elts;
        rp->zone = zp[0];
    }

    if (r->method == NGX_HTTP_POST) {
        return ngx_http_cg_status_deploy(r, scf, rp->zone);
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_cg_status_args(r, scf, rp);

    if (rc != NGX_OK) {
        return rc;
    }

    r->headers_out.status = NGX_HTTP_OK;

    if (rp->format == NGX_HTTP_CG_FMT_HTML) {
        ngx_str_set(&r->headers_out.content_type, "text/html; charset=utf-8");
        r->headers_out.content_type_len = sizeof("text/html") - 1;

        len = sizeof(ngx_http_cg_dashboard) - 1;
        r->headers_out.content_length_n = len;

        rc = ngx_http_send_header(r);

        if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
            return rc;
        }

        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->pos = (u_char *) ngx_http_cg_dashboard;
        b->last = b->pos + len;
        b->memory = 1;
        b->last_buf = (r == r->main) ? 1 : 0;
        b->last_in_chain = 1;

        out.buf = b;
        out.next = NULL;

        return ngx_http_output_filter(r, &out);
    }

    tp = ngx_timeofday();
    rp->now_ms = (int64_t) tp->sec * 1000 + tp->msec;
    rp->now = (uint32_t) tp->sec;
    rp->an = mcf->anomaly;

    rp->pool = r->pool;
    rp->mcf = mcf;

    if (rp->cluster) {
        return ngx_http_cg_status_cluster(r, rp);
    }

    return ngx_http_cg_status_start(r, rp);
}


/*
 * The answer, once the report is complete: formatted into ctx->out, in
 * slices of about NGX_HTTP_CG_SLICE_OUT bytes when more rows are shown
 * than a batch (NGX_AGAIN: more to do), then sent at once.
 */

static ngx_int_t
ngx_http_cg_status_format(ngx_http_cg_status_ctx_t *ctx)
{
    ngx_int_t              rc;
    ngx_http_cg_out_t     *o;
    ngx_http_cg_report_t  *rp;

    rp = ctx->rp;
    o = &ctx->out;

    /* a worker shutting down finishes at once */

    o->limit = (rp->shown > NGX_HTTP_CG_BATCH && !ngx_exiting)
               ? o->size + NGX_HTTP_CG_SLICE_OUT : 0;

    if (rp->format == NGX_HTTP_CG_FMT_JSON) {
        rc = ngx_http_cg_status_json(o, rp);

    } else {
        rc = ngx_http_cg_status_prom(o, rp);
    }

    if (o->failed || (rc != NGX_OK && rc != NGX_AGAIN)) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return rc;
}


static ngx_int_t
ngx_http_cg_status_send(ngx_http_request_t *r, ngx_http_cg_report_t *rp,
    ngx_http_cg_out_t *o)
{
    size_t        len;
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    if (o->out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (rp->format) {

    case NGX_HTTP_CG_FMT_PROM:
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");
        break;

    case NGX_HTTP_CG_FMT_OPENM:
        ngx_str_set(&r->headers_out.content_type,
                    "application/openmetrics-text; version=1.0.0; "
                    "charset=utf-8");
        break;

    default:
        ngx_str_set(&r->headers_out.content_type, "application/json");
        break;
    }

    r->headers_out.content_type_lowcase = NULL;

    len = 0;

    for (cl = o->out; cl; cl = cl->next) {
        len += cl->buf->last - cl->buf->pos;
    }

    r->headers_out.content_length_n = len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    o->b->last_buf = (r == r->main) ? 1 : 0;
    o->b->last_in_chain = 1;

    return ngx_http_output_filter(r, o->out);
}


/* collecting under the lock ------------------------------------------------ */


/* the first record after (key, name) in rbtree order, or the first of all */

static ngx_rbtree_node_t *
ngx_http_cg_status_after(ngx_http_cg_shctx_t *sh, ngx_rbtree_key_t key,
    u_char *name, size_t len, ngx_uint_t first)
{
    ngx_int_t            rc;
    ngx_rbtree_node_t   *node, *sentinel, *best;
    ngx_http_cg_record_t  *cn;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;
    best = NULL;

    while (node != sentinel) {

        if (first) {
            rc = 1;

        } else if (node->key != key) {
            rc = (node->key > key) ? 1 : -1;

        } else {
            cn = (ngx_http_cg_record_t *) &node->color;
            rc = ngx_memn2cmp(cn->name, name, cn->len, len);
        }

        if (rc > 0) {
            best = node;
            node = node->left;

        } else {
            node = node->right;
        }
    }

    return best;
}


/* the first record after the cursor, or the first of all; lock held */

ngx_rbtree_node_t *
ngx_http_cg_cursor_next(ngx_http_cg_shctx_t *sh, ngx_http_cg_cursor_t *cur)
{
    return ngx_http_cg_status_after(sh, cur->key, cur->name, cur->len,
                                    !cur->started);
}


/* the cursor after this record; lock held */

void
ngx_http_cg_cursor_set(ngx_http_cg_cursor_t *cur, ngx_rbtree_node_t *node)
{
    ngx_http_cg_record_t  *cn;

    cn = (ngx_http_cg_record_t *) &node->color;

    cur->key = node->key;
    cur->len = cn->len;
    ngx_memcpy(cur->name, cn->name, cn->len);
    cur->started = 1;
}


static ngx_rbtree_node_t *
ngx_http_cg_status_find(ngx_http_cg_shctx_t *sh, ngx_str_t *name)
{
    uint32_t             hash;
    ngx_int_t            rc;
    ngx_rbtree_node_t   *node, *sentinel;
    ngx_http_cg_record_t  *cn;

    hash = ngx_crc32_short(name->data, name->len);

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        cn = (ngx_http_cg_record_t *) &node->color;
        rc = ngx_memn2cmp(name->data, cn->name, name->len, (size_t) cn->len);

        if (rc == 0) {
            return node;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


void
ngx_http_cg_status_copy(ngx_http_cg_rec_copy_t *s, ngx_rbtree_node_t *node)
{
    ngx_http_cg_record_t  *cn;

    cn = (ngx_http_cg_record_t *) &node->color;

    ngx_memcpy(s, cn, offsetof(ngx_http_cg_record_t, name) + cn->len);
}


static ngx_int_t
ngx_http_cg_status_begin(ngx_http_cg_status_ctx_t *ctx)
{
    ngx_uint_t              i, max;
    ngx_slab_pool_t        *pool;
    ngx_rbtree_node_t      *node;
    ngx_http_cg_zone_t     *zone;
    ngx_http_cg_report_t   *rp;
    ngx_http_cg_shctx_t    *sh;

    rp = ctx->rp;
    zone = rp->zone;
    sh = zone->sh;
    pool = zone->shpool;

    rp->health.zone_size = zone->shm_zone->shm.size;

    for (i = 0; i < 3; i++) {
        rp->health.unidentified[i] = sh->unidentified[i];
    }

    ngx_http_cg_zone_lock(zone);

    rp->health.pages = (pool->end - pool->start) / ngx_pagesize;
    rp->health.pages_free = pool->pfree;
    rp->health.clients = sh->clients;
    rp->health.evictions = sh->evictions;
    rp->health.alloc_failures = sh->alloc_failures;

    if (sh->status) {
        ngx_memcpy(&rp->deploys, &((ngx_http_cg_status_sh_t *) sh->status)
                                     ->local,
                   sizeof(ngx_http_cg_deploys_t));
        ngx_memcpy(&rp->rdeploys, &((ngx_http_cg_status_sh_t *) sh->status)
                                      ->redis,
                   sizeof(ngx_http_cg_deploys_t));
        rp->publish_ms = ((ngx_http_cg_status_sh_t *) sh->status)->publish_ms;
    }

    max = rp->client.len ? 1 : sh->clients + NGX_HTTP_CG_BATCH;

    ngx_http_cg_zone_unlock(zone);

    rp->health.zone_used = (uint64_t) (rp->health.pages
                                       - rp->health.pages_free)
                           * ngx_pagesize;

    /*
     * The request's own memory, for copies of every record and their rows:
     * bounded by the clients of the zone at the start (records added
     * meanwhile beyond one more batch are not shown).
     */

    ctx->max = max;
    ctx->scratch = ngx_http_cg_scratch_get(max
                                           * (sizeof(ngx_http_cg_rec_copy_t)
                                              + sizeof(ngx_http_cg_row_t)));
    if (ctx->scratch == NULL) {
        return NGX_ERROR;
    }

    ctx->snaps = (ngx_http_cg_rec_copy_t *) (ctx->scratch + 1);
    rp->rows = (ngx_http_cg_row_t *) (ctx->snaps + max);

    /* the rows shown, ranked as they come (ngx_http_cg_status_rank) */

    ctx->cap = ngx_min(rp->limit, max);
    ctx->cmp = (rp->sort == NGX_HTTP_CG_SORT_NAME) ? ngx_http_cg_row_name_cmp
                                                   : ngx_http_cg_row_cmp;
    rp->sorted = ngx_palloc(rp->pool,
                            (ctx->cap + 1) * sizeof(ngx_http_cg_row_t *));

    if (rp->sorted == NULL) {
        return NGX_ERROR;
    }

    if (rp->client.len == 0) {
        ctx->phase = NGX_HTTP_CG_ST_WALK;
        return NGX_OK;
    }

    ngx_memzero(&rp->rows[0], sizeof(ngx_http_cg_row_t));

    ngx_http_cg_zone_lock(zone);

    node = ngx_http_cg_status_find(sh, &rp->client);

    if (node) {
        ngx_http_cg_status_copy(&ctx->snaps[0], node);
    }

    ngx_http_cg_zone_unlock(zone);

    if (node) {
        rp->rows[0].snap = &ctx->snaps[0];
        ngx_http_cg_status_row(rp, &rp->rows[0]);
        ngx_http_cg_status_rank(ctx, &rp->rows[0]);
        rp->nrows = 1;
    }

    ctx->phase = NGX_HTTP_CG_ST_SORT;

    return NGX_OK;
}


/*
 * One batch of NGX_HTTP_CG_BATCH records per lock: traffic waits for one
 * batch at most.  Each batch resumes after the last record copied, and its
 * rows are computed at once, outside the lock.  Returns 1 when the walk is
 * over.
 */

static ngx_uint_t
ngx_http_cg_status_walk(ngx_http_cg_status_ctx_t *ctx)
{
    ngx_uint_t               i, n, room;
    ngx_rbtree_node_t       *node, *last;
    ngx_http_cg_row_t       *row;
    ngx_http_cg_zone_t      *zone;
    ngx_http_cg_shctx_t     *sh;
    ngx_http_cg_report_t    *rp;
    ngx_http_cg_rec_copy_t  *s;

    rp = ctx->rp;
    zone = rp->zone;
    sh = zone->sh;

    room = ngx_min(ctx->max - rp->nrows, NGX_HTTP_CG_BATCH);
    s = &ctx->snaps[rp->nrows];
    row = &rp->rows[rp->nrows];

    /* fresh memory: its page faults here rather than under the lock */

    ngx_memzero(s, room * sizeof(ngx_http_cg_rec_copy_t));
    ngx_memzero(row, room * sizeof(ngx_http_cg_row_t));

    last = NULL;

    ngx_http_cg_zone_lock(zone);

    node = ngx_http_cg_cursor_next(sh, &ctx->cur);

    for (n = 0; node && n < room; n++) {
        ngx_http_cg_status_copy(&s[n], node);
        last = node;
        node = ngx_rbtree_next(&sh->rbtree, node);
    }

    if (last) {
        ngx_http_cg_cursor_set(&ctx->cur, last);
    }

    ngx_http_cg_zone_unlock(zone);

    for (i = 0; i < n; i++) {
        row[i].snap = &s[i];
        ngx_http_cg_status_row(rp, &row[i]);
        ngx_http_cg_status_rank(ctx, &row[i]);
    }

    rp->nrows += n;
    ctx->yield = (n == NGX_HTTP_CG_BATCH);

    return node == NULL || n == 0 || rp->nrows >= ctx->max;
}


/* computing outside the lock ----------------------------------------------- */


static int ngx_libc_cdecl
ngx_http_cg_row_cmp(const void *one, const void *two)
{
    ngx_http_cg_row_t  *a, *b;

    a = *(ngx_http_cg_row_t **) one;
    b = *(ngx_http_cg_row_t **) two;

    if (a->key != b->key) {
        return (a->key > b->key) ? -1 : 1;
    }

    return ngx_memn2cmp(a->name.data, b->name.data, a->name.len, b->name.len);
}


static int ngx_libc_cdecl
ngx_http_cg_row_name_cmp(const void *one, const void *two)
{
    ngx_http_cg_row_t  *a, *b;

    a = *(ngx_http_cg_row_t **) one;
    b = *(ngx_http_cg_row_t **) two;

    return ngx_memn2cmp(a->name.data, b->name.data, a->name.len, b->name.len);
}


static void
ngx_http_cg_status_quota(ngx_http_cg_report_t *rp, ngx_http_cg_row_t *row,
    ngx_http_cg_lview_t *views)
{
    uint32_t                  i;
    ngx_uint_t                redis;
    cg_quota_t               *quota;
    cg_limit_state_t          st;
    cg_limit_result_t         res;
    ngx_http_cg_lview_t      *lv;
    ngx_http_cg_main_conf_t  *mcf;

    mcf = rp->mcf;

    row->has_quota = 0;
    row->redis_quota = 0;
    row->nlimits = 0;
    row->util = 0;

    quota = ngx_http_cg_client_quota(mcf, &row->name,
                                     ngx_crc32_long(row->name.data,
                                                    row->name.len),
                                     &redis, NULL);
    row->redis_quota = redis;

    if (quota == NULL) {
        return;
    }

    row->has_quota = 1;
    row->mode = quota->mode;
    row->nlimits = quota->nlimits;

    for (i = 0; i < quota->nlimits && i < CG_MAX_LIMITS; i++) {
        lv = &views[i];
        lv->lim = quota->limits[i];

        /* a check of no cost on a copy: what is left, changing nothing */

        st = row->snap->node.state[i];
        cg_limit_check(&lv->lim, &st, rp->now_ms, 0, 0, &res);

        lv->capacity = cg_limit_capacity(&lv->lim);
        lv->remaining = ngx_min(res.remaining, lv->capacity);
        lv->used = lv->capacity - lv->remaining;
        lv->reset = res.reset;
        lv->util = lv->capacity ? (double) lv->used / lv->capacity : 0;

        if (lv->util > row->util) {
            row->util = lv->util;
        }
    }
}


/* one row's figures, from its copy */

static void
ngx_http_cg_status_row(ngx_http_cg_report_t *rp, ngx_http_cg_row_t *row)
{
    ngx_uint_t            j, k;
    cg_stats_t           *st;
    ngx_http_cg_lview_t   lv[CG_MAX_LIMITS];
    ngx_http_cg_record_t   *cn;

    cn = &row->snap->node;

    row->name.data = cn->name;
    row->name.len = cn->len;
    row->st = &cn->stats;
    st = row->st;

    cg_stats_view(st, rp->now, cn->created, &rp->an);

    row->base = cg_stats_baseline(st->rate[CG_STATS_R300], rp->now + 1,
                                  cn->created, &rp->an);
    row->ratio = cg_stats_ratio(st->rate[CG_STATS_R10], row->base, &rp->an);

    row->err_base = cg_stats_baseline(st->err[1], rp->now + 1,
                                      cn->created, &rp->an);
    row->err_ratio = cg_stats_ratio(st->err[0], row->err_base, &rp->an);

    if (rp->sort == NGX_HTTP_CG_SORT_QUOTA) {
        ngx_http_cg_status_quota(rp, row, lv);
    }

    switch (rp->sort) {
    case NGX_HTTP_CG_SORT_RATE:
        row->key = st->rate[CG_STATS_R10];
        break;
    case NGX_HTTP_CG_SORT_RATE_1M:
        row->key = st->rate[CG_STATS_R60];
        break;
    case NGX_HTTP_CG_SORT_RATE_5M:
        row->key = st->rate[CG_STATS_R300];
        break;
    case NGX_HTTP_CG_SORT_REJECTED:
        row->key = (double) cn->counters.outcome[NGX_HTTP_CG_REJECTED];
        break;
    case NGX_HTTP_CG_SORT_ERRORS:
        row->key = (double) (st->classes[3] + st->classes[4]);
        break;
    case NGX_HTTP_CG_SORT_QUOTA:
        row->key = row->util;
        break;
    case NGX_HTTP_CG_SORT_ANOMALY:
        row->key = ngx_max(row->ratio, row->err_ratio);
        break;
    default:
        row->key = (double) cn->counters.requests;
        break;
    }

    /* top movers: the highest surge ratios among clients above min */

    if (rp->an.ratio <= 0
        || st->rate[CG_STATS_R10] < rp->an.min_rate
        || row->ratio <= 1.0)
    {
        return;
    }

    for (j = 0; j < rp->nmovers; j++) {
        if (row->ratio > rp->movers[j]->ratio) {
            break;
        }
    }

    if (j == NGX_HTTP_CG_MOVERS) {
        return;
    }

    if (rp->nmovers < NGX_HTTP_CG_MOVERS) {
        rp->nmovers++;
    }

    for (k = rp->nmovers - 1; k > j; k--) {
        rp->movers[k] = rp->movers[k - 1];
    }

    rp->movers[j] = row;
}


/*
 * The rows shown, kept as they are computed: a heap of at most "limit"
 * rows whose root ranks last, so that a row that ranks after it is passed
 * over at the cost of one comparison.  The order is total (ties by name,
 * and a name is seen once), so the rows kept are exactly the first
 * "limit" of all of them sorted.
 */

static void
ngx_http_cg_status_rank(ngx_http_cg_status_ctx_t *ctx, ngx_http_cg_row_t *row)
{
    ngx_uint_t           i, p, c, n;
    ngx_http_cg_row_t  **h;

    h = ctx->rp->sorted;
    n = ctx->cap;

    if (ctx->ranked < n) {
        i = ctx->ranked++;

        while (i > 0) {
            p = (i - 1) / 2;

            if (ctx->cmp(&h[p], &row) >= 0) {
                break;
            }

            h[i] = h[p];
            i = p;
        }

        h[i] = row;
        return;
    }

    if (n == 0 || ctx->cmp(&row, &h[0]) >= 0) {
        return;
    }

    i = 0;

    for ( ;; ) {
        c = 2 * i + 1;

        if (c >= n) {
            break;
        }

        if (c + 1 < n && ctx->cmp(&h[c + 1], &h[c]) > 0) {
            c++;
        }

        if (ctx->cmp(&h[c], &row) <= 0) {
            break;
        }

        h[i] = h[c];
        i = c;
    }

    h[i] = row;
}


/* every row computed: the rows shown in order, and their quota views */

static void
ngx_http_cg_status_order(ngx_http_cg_status_ctx_t *ctx)
{
    ngx_http_cg_report_t  *rp;

    rp = ctx->rp;
    rp->shown = ctx->ranked;

    ngx_qsort(rp->sorted, rp->shown, sizeof(ngx_http_cg_row_t *), ctx->cmp);
}


/* the quota views of the rows shown, a batch at a time: 1 when all done */

static ngx_uint_t
ngx_http_cg_status_views(ngx_http_cg_status_ctx_t *ctx)
{
    ngx_uint_t             i, last;
    ngx_http_cg_row_t     *row;
    ngx_http_cg_report_t  *rp;

    rp = ctx->rp;
    last = ngx_min(ctx->viewed + NGX_HTTP_CG_BATCH, rp->shown);

    for (i = ctx->viewed; i < last; i++) {
        row = rp->sorted[i];

        row->limits = ngx_palloc(rp->pool,
                                 CG_MAX_LIMITS * sizeof(ngx_http_cg_lview_t));
        if (row->limits == NULL) {
            rp->shown = i;
            return 1;
        }

        ngx_http_cg_status_quota(rp, row, row->limits);
    }

    ctx->viewed = last;

    return last == rp->shown;
}


/* the status request, in slices -------------------------------------------- */


static ngx_int_t
ngx_http_cg_status_start(ngx_http_request_t *r, ngx_http_cg_report_t *rp)
{
    ngx_int_t                  rc;
    ngx_pool_cleanup_t        *cln;
    ngx_http_cg_status_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_cg_status_ctx_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (ctx == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->r = r;
    ctx->rp = rp;
    ctx->out.r = r;
    ctx->out.last = &ctx->out.out;

    cln->handler = ngx_http_cg_status_cleanup;
    cln->data = ctx;

    if (ngx_http_cg_status_begin(ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_cg_status_steps(ctx);

    if (rc != NGX_BUSY) {
        return rc;
    }

    /* more than one slice: the rest in the next turns of the event loop */

    ctx->slice.handler = ngx_http_cg_status_slice;
    ctx->slice.data = ctx;
    ctx->slice.log = r->connection->log;

    ctx->keep.handler = ngx_http_cg_status_keep;
    ctx->keep.data = ctx;
    ctx->keep.log = r->connection->log;

    ngx_add_timer(&ctx->keep, NGX_HTTP_CG_ST_KEEP);

    r->read_event_handler = ngx_http_test_reading;
    r->main->count++;

    ngx_post_event(&ctx->slice, &ngx_posted_next_events);

    return NGX_DONE;
}


/*
 * As many steps as one slice takes: NGX_BUSY while there is more to do
 * (NGX_AGAIN is the output's), then the answer's code.  With more rows
 * than a batch, the sort has a slice of its own, and the answer as many as
 * its size takes (NGX_HTTP_CG_SLICE_OUT bytes each).
 */

static ngx_int_t
ngx_http_cg_status_steps(ngx_http_cg_status_ctx_t *ctx)
{
    ngx_int_t              rc;
    ngx_http_cg_report_t  *rp;

    rp = ctx->rp;
    ctx->yield = 0;

    for ( ;; ) {

        switch (ctx->phase) {

        case NGX_HTTP_CG_ST_WALK:
            if (ngx_http_cg_status_walk(ctx)) {
                ctx->phase = NGX_HTTP_CG_ST_SORT;
                ctx->yield = (rp->nrows > NGX_HTTP_CG_BATCH);
            }

            break;

        case NGX_HTTP_CG_ST_SORT:
            ngx_http_cg_status_order(ctx);
            ctx->phase = NGX_HTTP_CG_ST_VIEWS;
            ctx->yield = (rp->nrows > NGX_HTTP_CG_BATCH);
            break;

        case NGX_HTTP_CG_ST_VIEWS:
            if (ngx_http_cg_status_views(ctx)) {
                ctx->phase = NGX_HTTP_CG_ST_FORMAT;
            }

            ctx->yield = (rp->shown > NGX_HTTP_CG_BATCH);
            break;

        default:
            rc = ngx_http_cg_status_format(ctx);

            if (rc != NGX_AGAIN) {
                return (rc == NGX_OK)
                       ? ngx_http_cg_status_send(ctx->r, rp, &ctx->out)
                       : rc;
            }

            ctx->yield = 1;
            break;
        }

        /* a worker shutting down finishes at once */

        if (ctx->yield && !ngx_exiting) {
            return NGX_BUSY;
        }

        ctx->yield = 0;
    }
}


static void
ngx_http_cg_status_slice(ngx_event_t *ev)
{
    ngx_int_t                  rc;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_cg_status_ctx_t  *ctx;

    ctx = ev->data;
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
            ngx_post_event(ev, &ngx_posted_next_events);
            return;
        }
    }

    if (ctx->keep.timer_set) {
        ngx_del_timer(&ctx->keep);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* a timer that is never due: an exiting worker waits for the request */

static void
ngx_http_cg_status_keep(ngx_event_t *ev)
{
    ngx_add_timer(ev, NGX_HTTP_CG_ST_KEEP);
}


static ngx_http_cg_scratch_t *
ngx_http_cg_scratch_get(size_t size)
{
    ngx_http_cg_scratch_t  *sc;

    sc = ngx_http_cg_scratch_idle;

    if (sc) {
        ngx_http_cg_scratch_idle = sc->next;
        ngx_http_cg_scratch_nidle--;

        if (sc->size >= size) {
            return sc;
        }

        ngx_free(sc);
    }

    /* some room to grow: clients come and go */

    size += size / 4 + 4096;

    sc = ngx_alloc(sizeof(ngx_http_cg_scratch_t) + size, ngx_cycle->log);
    if (sc == NULL) {
        return NULL;
    }

    sc->size = size;

    return sc;
}


static void
ngx_http_cg_scratch_put(ngx_http_cg_scratch_t *sc)
{
    if (ngx_http_cg_scratch_nidle >= NGX_HTTP_CG_SCRATCH_KEEP) {
        ngx_free(sc);
        return;
    }

    sc->next = ngx_http_cg_scratch_idle;
    ngx_http_cg_scratch_idle = sc;
    ngx_http_cg_scratch_nidle++;
}


/* the request's pool goes (done, or ended early): no slice after it */

static void
ngx_http_cg_status_cleanup(void *data)
{
    ngx_http_cg_status_ctx_t  *ctx = data;

    if (ctx->scratch) {
        ngx_http_cg_scratch_put(ctx->scratch);
        ctx->scratch = NULL;
    }

    if (ctx->slice.posted) {
        ngx_delete_posted_event(&ctx->slice);
    }

    if (ctx->keep.timer_set) {
        ngx_del_timer(&ctx->keep);
    }
}


/* the status part of the zone; the caller holds the lock */

ngx_http_cg_status_sh_t *
ngx_http_cg_status_sh(ngx_http_cg_zone_t *zone)
{
    if (zone->sh->status == NULL) {
        zone->sh->status = ngx_slab_calloc_locked(zone->shpool,
                                              sizeof(ngx_http_cg_status_sh_t));
    }

    return zone->sh->status;
}
