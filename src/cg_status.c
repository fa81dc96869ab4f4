
/*
 * Copyright (C) client guard authors
 *
 * The status endpoint.  A request copies the client records in batches
 * under the zone lock (in rbtree order, resuming after the last name
 * copied, so that records evicted or created in between do no harm), then
 * computes rates, quota use and anomaly flags, sorts and formats outside
 * the lock.  See docs/status.md for every field.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_common.h"
#include "cg_status.h"
#include "cg_dashboard.h"


#define NGX_HTTP_CG_BATCH         256
#define NGX_HTTP_CG_LIMIT_MAX     10000
#define NGX_HTTP_CG_LIMIT_DEF     100
#define NGX_HTTP_CG_MOVERS        5
#define NGX_HTTP_CG_NEAR_LIMIT    0.8
#define NGX_HTTP_CG_NDEPLOYS      32
#define NGX_HTTP_CG_TEAM_LEN      32
#define NGX_HTTP_CG_NOTE_LEN      80
#define NGX_HTTP_CG_RESERVE       1024

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
    ngx_http_cg_node_t        node;
    u_char                    rest[CG_NAME_MAX];
} ngx_http_cg_snap_t;


typedef struct {
    cg_limit_t                lim;
    uint64_t                  capacity;
    uint64_t                  used;
    uint64_t                  remaining;
    uint64_t                  reset;
    double                    util;
} ngx_http_cg_lview_t;


typedef struct {
    ngx_http_cg_snap_t       *snap;
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


typedef struct {
    ngx_http_request_t       *r;
    ngx_chain_t              *out;
    ngx_chain_t             **last;
    ngx_buf_t                *b;
    ngx_uint_t                failed;
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


static ngx_int_t ngx_http_cg_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_cg_status_deploy(ngx_http_request_t *r,
    ngx_http_cg_status_conf_t *scf, ngx_http_cg_zone_t *zone);
static ngx_int_t ngx_http_cg_status_collect(ngx_http_cg_report_t *rp);
static void ngx_http_cg_status_rows(ngx_http_cg_report_t *rp);
static ngx_int_t ngx_http_cg_status_json(ngx_http_cg_out_t *o,
    ngx_http_cg_report_t *rp);
static ngx_int_t ngx_http_cg_status_prom(ngx_http_cg_out_t *o,
    ngx_http_cg_report_t *rp);
static void ngx_http_cg_pr(ngx_http_cg_out_t *o, const char *fmt, ...);
static ngx_http_cg_status_sh_t *ngx_http_cg_status_sh(ngx_http_cg_zone_t *zone);
static void ngx_http_cg_status_deploy_redis(ngx_http_cg_deploy_t *d);
static ngx_int_t ngx_http_cg_status_cluster(ngx_http_request_t *r,
    ngx_http_cg_report_t *rp);
static void ngx_http_cg_family(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp,
    const char *name, const char *type, const char *help);


static const char  *ngx_http_cg_sort_names[] = {
    "requests", "rate", "rate_1m", "rate_5m", "rejected", "errors",
    "quota", "anomaly", "name", NULL
};

static const char  *ngx_http_cg_mode_names[] = {
    "enforce", "dry_run", "off"
};

static const char  *ngx_http_cg_outcome_names[] = {
    "none", "passed", "rejected", "rejected_dry_run", "bypassed",
    "unidentified"
};

static const char  *ngx_http_cg_window_names[] = { "10s", "1m", "5m" };


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


/* log phase ---------------------------------------------------------------- */


void
ngx_http_cg_status_log(ngx_http_request_t *r, ngx_http_cg_zone_t *zone,
    ngx_str_t *client, ngx_uint_t outcome, const cg_anomaly_t *an)
{
    int64_t                     ms;
    uint32_t                    hash;
    ngx_uint_t                  i;
    ngx_time_t                 *tp;
    cg_stats_req_t              req;
    ngx_http_cg_node_t         *node;
    ngx_http_upstream_state_t  *state;

    ngx_memzero(&req, sizeof(cg_stats_req_t));

    if (r->err_status) {
        req.status = r->err_status;

    } else {
        req.status = r->headers_out.status;
    }

    req.own = (outcome == NGX_HTTP_CG_REJECTED);

    tp = ngx_timeofday();

    ms = (int64_t) (tp->sec - r->start_sec) * 1000
         + (int64_t) tp->msec - (int64_t) r->start_msec;
    req.time_ms = ms > 0 ? (ms < UINT32_MAX ? (uint32_t) ms : UINT32_MAX)
                         : 0;

    if (r->upstream_states && r->upstream_states->nelts) {
        state = r->upstream_states->elts;
        ms = 0;

        for (i = 0; i < r->upstream_states->nelts; i++) {
            if (state[i].peer && state[i].response_time != (ngx_msec_t) -1)
            {
                ms += state[i].response_time;
                req.upstream = 1;
            }
        }

        req.upstream_ms = ms < UINT32_MAX ? (uint32_t) ms : UINT32_MAX;
    }

    hash = ngx_crc32_short(client->data, client->len);

    ngx_http_cg_zone_lock(zone);

    node = ngx_http_cg_zone_node(zone, client, hash, ngx_current_msec, 0);

    if (node) {
        cg_stats_add(&node->stats, (uint32_t) tp->sec, node->created, &req,
                     an);
    }

    ngx_http_cg_zone_unlock(zone);
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


static void
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
}


/* a string for JSON or a label value: printable ASCII, escaped, cut at 128 */

static ngx_str_t *
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

static double
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

        if (ngx_strlcasestrn(v->data, v->data + v->len,
                             (u_char *) "application/openmetrics-text", 27)
            != NULL)
        {
            return NGX_HTTP_CG_FMT_OPENM;
        }

        if (ngx_strlcasestrn(v->data, v->data + v->len,
                             (u_char *) "application/json", 15)
            != NULL)
        {
            return NGX_HTTP_CG_FMT_JSON;
        }

        if (ngx_strlcasestrn(v->data, v->data + v->len,
                             (u_char *) "text/html", 8)
            != NULL)
        {
            return NGX_HTTP_CG_FMT_HTML;
        }

        if (ngx_strlcasestrn(v->data, v->data + v->len,
                             (u_char *) "text/plain", 9)
            != NULL)
        {
            return NGX_HTTP_CG_FMT_PROM;
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
    ngx_http_cg_out_t           o;
    ngx_http_cg_zone_t        **zp;
    ngx_http_cg_report_t       *rp;
    ngx_http_cg_loc_conf_t     *lcf;
    ngx_http_cg_main_conf_t    *mcf;
    ngx_http_cg_status_conf_t  *scf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_client_guard_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_client_guard_module);
    scf = lcf->status;

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

    if (ngx_http_cg_status_collect(rp) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_cg_status_rows(rp);

    ngx_memzero(&o, sizeof(ngx_http_cg_out_t));
    o.r = r;
    o.last = &o.out;

    switch (rp->format) {

    case NGX_HTTP_CG_FMT_PROM:
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");
        rc = ngx_http_cg_status_prom(&o, rp);
        break;

    case NGX_HTTP_CG_FMT_OPENM:
        ngx_str_set(&r->headers_out.content_type,
                    "application/openmetrics-text; version=1.0.0; "
                    "charset=utf-8");
        rc = ngx_http_cg_status_prom(&o, rp);
        break;

    default:
        ngx_str_set(&r->headers_out.content_type, "application/json");
        rc = ngx_http_cg_status_json(&o, rp);
        break;
    }

    if (rc != NGX_OK || o.failed || o.out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.content_type_lowcase = NULL;

    len = 0;

    for (out.next = o.out; out.next; out.next = out.next->next) {
        len += out.next->buf->last - out.next->buf->pos;
    }

    r->headers_out.content_length_n = len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    o.b->last_buf = (r == r->main) ? 1 : 0;
    o.b->last_in_chain = 1;

    return ngx_http_output_filter(r, o.out);
}


/* collecting under the lock ------------------------------------------------ */


typedef struct {
    void                     *data;
    size_t                    size;
} ngx_http_cg_scratch_t;


static ngx_http_cg_scratch_t  ngx_http_cg_snaps;
static ngx_http_cg_scratch_t  ngx_http_cg_rows;


static ngx_int_t
ngx_http_cg_scratch(ngx_http_cg_scratch_t *sc, size_t size)
{
    if (sc->size >= size && sc->data) {
        return NGX_OK;
    }

    if (sc->data) {
        ngx_free(sc->data);
        sc->data = NULL;
        sc->size = 0;
    }

    /* some room to grow: clients come and go */

    size += size / 4 + 4096;

    sc->data = ngx_alloc(size, ngx_cycle->log);
    if (sc->data == NULL) {
        return NGX_ERROR;
    }

    sc->size = size;

    return NGX_OK;
}


/* the first record after (key, name) in rbtree order, or the first of all */

static ngx_rbtree_node_t *
ngx_http_cg_status_after(ngx_http_cg_shctx_t *sh, ngx_rbtree_key_t key,
    u_char *name, size_t len, ngx_uint_t first)
{
    ngx_int_t            rc;
    ngx_rbtree_node_t   *node, *sentinel, *best;
    ngx_http_cg_node_t  *cn;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;
    best = NULL;

    while (node != sentinel) {

        if (first) {
            rc = 1;

        } else if (node->key != key) {
            rc = (node->key > key) ? 1 : -1;

        } else {
            cn = (ngx_http_cg_node_t *) &node->color;
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


static ngx_rbtree_node_t *
ngx_http_cg_status_find(ngx_http_cg_shctx_t *sh, ngx_str_t *name)
{
    uint32_t             hash;
    ngx_int_t            rc;
    ngx_rbtree_node_t   *node, *sentinel;
    ngx_http_cg_node_t  *cn;

    hash = ngx_crc32_short(name->data, name->len);

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        cn = (ngx_http_cg_node_t *) &node->color;
        rc = ngx_memn2cmp(name->data, cn->name, name->len, (size_t) cn->len);

        if (rc == 0) {
            return node;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_cg_status_copy(ngx_http_cg_snap_t *s, ngx_rbtree_node_t *node)
{
    ngx_http_cg_node_t  *cn;

    cn = (ngx_http_cg_node_t *) &node->color;

    ngx_memcpy(s, cn, offsetof(ngx_http_cg_node_t, name) + cn->len);
}


static ngx_int_t
ngx_http_cg_status_collect(ngx_http_cg_report_t *rp)
{
    size_t                  len;
    u_char                 *last;
    ngx_uint_t              n, max, i;
    ngx_rbtree_key_t        key;
    ngx_slab_pool_t        *pool;
    ngx_rbtree_node_t      *node;
    ngx_http_cg_zone_t     *zone;
    ngx_http_cg_snap_t     *snaps;
    ngx_http_cg_shctx_t    *sh;
    ngx_http_cg_node_t     *cn;

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
     * Per-worker scratch memory, kept from one status request to the next:
     * with many clients, fresh memory each time costs more in page faults
     * than the copy itself.  Nothing else runs in between while it is used.
     */

    if (ngx_http_cg_scratch(&ngx_http_cg_snaps,
                            max * sizeof(ngx_http_cg_snap_t))
        != NGX_OK
        || ngx_http_cg_scratch(&ngx_http_cg_rows,
                               max * sizeof(ngx_http_cg_row_t))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    snaps = ngx_http_cg_snaps.data;
    rp->rows = ngx_http_cg_rows.data;
    ngx_memzero(rp->rows, max * sizeof(ngx_http_cg_row_t));

    n = 0;

    if (rp->client.len) {
        ngx_http_cg_zone_lock(zone);

        node = ngx_http_cg_status_find(sh, &rp->client);

        if (node) {
            ngx_http_cg_status_copy(&snaps[n++], node);
        }

        ngx_http_cg_zone_unlock(zone);

        goto done;
    }

    /*
     * Batches of NGX_HTTP_CG_BATCH records per lock: traffic waits for one
     * batch at most.  Each batch resumes after the last name copied.
     */

    key = 0;
    len = 0;
    last = NULL;

    while (n < max) {

        ngx_http_cg_zone_lock(zone);

        node = ngx_http_cg_status_after(sh, key, last, len, n == 0);

        for (i = 0; node && i < NGX_HTTP_CG_BATCH && n < max; i++) {
            ngx_http_cg_status_copy(&snaps[n++], node);
            node = ngx_rbtree_next(&sh->rbtree, node);
        }

        ngx_http_cg_zone_unlock(zone);

        if (node == NULL || i == 0) {
            break;
        }

        cn = &snaps[n - 1].node;
        key = ngx_crc32_short(cn->name, cn->len);
        last = cn->name;
        len = cn->len;
    }

done:

    for (i = 0; i < n; i++) {
        rp->rows[i].snap = &snaps[i];
    }

    rp->nrows = n;

    return NGX_OK;
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

    quota = ngx_http_cg_client_quota(&mcf->quotas, &row->name, &redis);
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


static void
ngx_http_cg_status_rows(ngx_http_cg_report_t *rp)
{
    ngx_uint_t            i, j, k;
    cg_stats_t           *st;
    ngx_http_cg_row_t    *row;
    ngx_http_cg_lview_t   lv[CG_MAX_LIMITS];
    ngx_http_cg_node_t   *cn;

    for (i = 0; i < rp->nrows; i++) {
        row = &rp->rows[i];
        cn = &row->snap->node;

        row->name.data = cn->name;
        row->name.len = cn->len;
        row->st = &cn->stats;
        st = row->st;

        cg_stats_view(st, rp->now, cn->created, &rp->an);

        row->base = cg_stats_baseline(st->rate[CG_STATS_R300], rp->now + 1,
                                      cn->created, &rp->an);
        row->ratio = cg_stats_ratio(st->rate[CG_STATS_R10], row->base,
                                    &rp->an);

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
            continue;
        }

        for (j = 0; j < rp->nmovers; j++) {
            if (row->ratio > rp->movers[j]->ratio) {
                break;
            }
        }

        if (j == NGX_HTTP_CG_MOVERS) {
            continue;
        }

        if (rp->nmovers < NGX_HTTP_CG_MOVERS) {
            rp->nmovers++;
        }

        for (k = rp->nmovers - 1; k > j; k--) {
            rp->movers[k] = rp->movers[k - 1];
        }

        rp->movers[j] = row;
    }

    rp->sorted = ngx_palloc(rp->pool,
                            (rp->nrows + 1) * sizeof(ngx_http_cg_row_t *));
    if (rp->sorted == NULL) {
        rp->shown = 0;
        return;
    }

    for (i = 0; i < rp->nrows; i++) {
        rp->sorted[i] = &rp->rows[i];
    }

    ngx_qsort(rp->sorted, rp->nrows, sizeof(ngx_http_cg_row_t *),
              rp->sort == NGX_HTTP_CG_SORT_NAME ? ngx_http_cg_row_name_cmp
                                                : ngx_http_cg_row_cmp);

    rp->shown = ngx_min(rp->nrows, rp->limit);

    /* the quota views of the rows shown */

    for (i = 0; i < rp->shown; i++) {
        row = rp->sorted[i];

        row->limits = ngx_palloc(rp->pool,
                                 CG_MAX_LIMITS * sizeof(ngx_http_cg_lview_t));
        if (row->limits == NULL) {
            rp->shown = i;
            return;
        }

        ngx_http_cg_status_quota(rp, row, row->limits);
    }
}


/* JSON --------------------------------------------------------------------- */


static void
ngx_http_cg_status_redis_json(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp)
{
    time_t                     loaded;
    ngx_uint_t                 i, state;
    ngx_array_t               *errs;
    ngx_http_cg_main_conf_t   *mcf;
    ngx_http_cg_sync_error_t  *e;

    static const char  *states[] = {
        "idle", "connecting", "handshake", "ready", "backoff"
    };

    static const char  *policies[] = { "local", "open", "closed" };

    mcf = ngx_http_get_module_main_conf(o->r, ngx_http_client_guard_module);

    if (mcf->sync == NULL) {
        ngx_http_cg_pr(o, "\"redis\":{\"configured\":false}},");
        return;
    }

    /*
     * This worker's view: the link, how often it was lost (each loss puts
     * the failure policy in force), and how old the quota definitions are.
     */

    state = ngx_http_cg_sync_link_state();
    loaded = ngx_http_cg_sync_loaded();

    ngx_http_cg_pr(o,
        "\"redis\":{\"configured\":true,\"link_state\":\"%s\","
        "\"failure_policy\":\"%s\",\"policy_in_force\":%s,"
        "\"quota_version\":%uL,\"live_nodes\":%ui,"
        "\"link_outages\":%ui,\"quota_sync_age_s\":%T,"
        "\"stats_published_ms_ago\":%L,\"quota_errors\":[",
        state < 5 ? states[state] : "unknown",
        mcf->sync->policy < 3 ? policies[mcf->sync->policy] : "unknown",
        state == NGX_HTTP_CG_REDIS_READY ? "false" : "true",
        ngx_http_cg_sync_version(), ngx_http_cg_sync_live_nodes(),
        ngx_http_cg_sync_outages(),
        loaded ? ngx_time() - loaded : (time_t) -1,
        rp->publish_ms ? rp->now_ms - (int64_t) rp->publish_ms
                       : (int64_t) -1);

    errs = ngx_http_cg_sync_errors();

    if (errs) {
        e = errs->elts;

        for (i = 0; i < errs->nelts && i < 32; i++) {
            ngx_http_cg_pr(o, "%s{\"key\":\"%V\",\"field\":\"%V\","
                           "\"value\":\"%V\",\"error\":\"%V\"}",
                           i ? "," : "",
                           ngx_http_cg_esc(o->r->pool, &e[i].key),
                           ngx_http_cg_esc(o->r->pool, &e[i].field),
                           ngx_http_cg_esc(o->r->pool, &e[i].value),
                           ngx_http_cg_esc(o->r->pool, &e[i].error));
        }
    }

    ngx_http_cg_pr(o, "]}},");
}


static void
ngx_http_cg_json_client(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp,
    ngx_http_cg_row_t *row)
{
    uint32_t             i;
    uint64_t             n;
    cg_stats_t          *st;
    ngx_http_cg_node_t  *cn;
    ngx_http_cg_lview_t *lv;

    cn = &row->snap->node;
    st = row->st;
    n = cg_stats_responses(st);

    ngx_http_cg_pr(o,
        "{\"name\":\"%V\",\"created_s\":%uD,\"last_seen_ms_ago\":%M,"
        "\"requests_total\":%uL,\"passed_total\":%uL,"
        "\"rejected_total\":%uL,\"rejected_dry_run_total\":%uL,"
        "\"bypassed_total\":%uL,",
        &row->name, cn->created,
        (ngx_msec_int_t) (ngx_current_msec - cn->last) > 0
            ? (ngx_msec_t) (ngx_current_msec - cn->last) : 0,
        cn->counters.requests, cn->counters.outcome[NGX_HTTP_CG_PASSED],
        cn->counters.outcome[NGX_HTTP_CG_REJECTED],
        cn->counters.outcome[NGX_HTTP_CG_REJECTED_DRY_RUN],
        cn->counters.outcome[NGX_HTTP_CG_BYPASSED]);

    ngx_http_cg_pr(o,
        "\"rate_10s_per_s\":%.3f,\"rate_1m_per_s\":%.3f,"
        "\"rate_5m_per_s\":%.3f,\"error_rate_10s_per_s\":%.3f,"
        "\"error_rate_5m_per_s\":%.3f,",
        ngx_http_cg_num(st->rate[0]), ngx_http_cg_num(st->rate[1]),
        ngx_http_cg_num(st->rate[2]), ngx_http_cg_num(st->err[0]),
        ngx_http_cg_num(st->err[1]));

    ngx_http_cg_pr(o,
        "\"responses_total\":%uL,\"responses_by_class_total\":{"
        "\"1xx\":%uL,\"2xx\":%uL,\"3xx\":%uL,\"4xx\":%uL,\"5xx\":%uL},"
        "\"responses_by_code_total\":{",
        n, st->classes[0], st->classes[1], st->classes[2], st->classes[3],
        st->classes[4]);

    for (i = 0; i < CG_STATS_NCODES; i++) {
        ngx_http_cg_pr(o, "%s\"%uD\":%uD", i ? "," : "",
                       (uint32_t) cg_stats_codes[i], st->codes[i]);
    }

    ngx_http_cg_pr(o,
        "},\"request_time_mean_s\":%.4f,\"request_time_p99_s\":%.3f,"
        "\"upstream_responses_total\":%uD,"
        "\"upstream_time_mean_s\":%.4f,\"upstream_time_p99_s\":%.3f,",
        n ? ngx_http_cg_num((double) st->time_ms / n / 1000) : 0.0,
        (double) cg_stats_quantile_ms(st->hist, 0.99) / 1000,
        st->upstream,
        st->upstream
            ? ngx_http_cg_num((double) st->upstream_ms / st->upstream / 1000)
            : 0.0,
        (double) cg_stats_quantile_ms(st->uhist, 0.99) / 1000);

    if (!row->has_quota) {
        ngx_http_cg_pr(o, "\"quota\":null,");

    } else {
        ngx_http_cg_pr(o, "\"quota\":{\"mode\":\"%s\",\"source\":\"%s\","
                       "\"near_limit\":%s,\"utilisation\":%.3f,\"limits\":[",
                       row->mode < 3 ? ngx_http_cg_mode_names[row->mode]
                                     : "unknown",
                       row->redis_quota ? "redis" : "config",
                       row->util >= NGX_HTTP_CG_NEAR_LIMIT ? "true" : "false",
                       ngx_http_cg_num(row->util));

        for (i = 0; i < row->nlimits; i++) {
            lv = &row->limits[i];

            ngx_http_cg_pr(o,
                "%s{\"type\":\"%s\",\"limit\":%uL,\"window_s\":%uL,"
                "\"burst\":%uL,\"capacity\":%uL,\"used\":%uL,"
                "\"remaining\":%uL,\"utilisation\":%.3f,\"near_limit\":%s,"
                "\"reset_ms\":%uL}",
                i ? "," : "",
                lv->lim.type == CG_LIMIT_RATE ? "rate" : "window",
                lv->lim.count, (uint64_t) lv->lim.period / 1000,
                lv->lim.type == CG_LIMIT_RATE ? lv->lim.burst : 0,
                lv->capacity, lv->used, lv->remaining,
                ngx_http_cg_num(lv->util),
                lv->util >= NGX_HTTP_CG_NEAR_LIMIT ? "true" : "false",
                lv->reset);
        }

        ngx_http_cg_pr(o, "]},");
    }

    ngx_http_cg_pr(o, "\"anomalies\":[");

    if (st->surge_since) {
        ngx_http_cg_pr(o,
            "{\"type\":\"surge\",\"ratio\":%.2f,\"since_s\":%uD,"
            "\"current_per_s\":%.3f,\"baseline_per_s\":%.3f}",
            ngx_http_cg_num(row->ratio), st->surge_since,
            ngx_http_cg_num(st->rate[CG_STATS_R10]),
            ngx_http_cg_num(row->base));
    }

    if (st->errors_since) {
        ngx_http_cg_pr(o,
            "%s{\"type\":\"error_spike\",\"ratio\":%.2f,\"since_s\":%uD,"
            "\"current_per_s\":%.3f,\"baseline_per_s\":%.3f}",
            st->surge_since ? "," : "",
            ngx_http_cg_num(row->err_ratio), st->errors_since,
            ngx_http_cg_num(st->err[0]), ngx_http_cg_num(row->err_base));
    }

    ngx_http_cg_pr(o, "]}");
}


static ngx_int_t
ngx_http_cg_status_json(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp)
{
    uint64_t               first;
    ngx_str_t              host;
    ngx_uint_t             i, j, k, n, nd;
    ngx_uint_t             src[2 * NGX_HTTP_CG_NDEPLOYS];
    ngx_http_cg_deploy_t  *all[2 * NGX_HTTP_CG_NDEPLOYS];
    ngx_http_cg_row_t     *row;
    ngx_http_cg_deploy_t  *d;
    ngx_http_cg_health_t  *h;

    h = &rp->health;
    host = ngx_cycle->hostname;

    ngx_http_cg_pr(o,
        "{\"schema_version\":%d,\"module\":\"client_guard\","
        "\"node\":\"%V\",\"zone\":\"%V\",\"scope\":\"node\","
        "\"time_ms\":%L,",
        NGX_HTTP_CG_STATUS_SCHEMA,
        ngx_http_cg_esc(o->r->pool, &host),
        ngx_http_cg_esc(o->r->pool, &rp->zone->name), rp->now_ms);

    ngx_http_cg_pr(o,
        "\"health\":{\"zone_size_bytes\":%uL,\"zone_used_bytes\":%uL,"
        "\"zone_pages_total\":%ui,\"zone_pages_free\":%ui,"
        "\"clients_tracked\":%ui,\"clients_max\":%ui,"
        "\"evictions_total\":%uL,\"alloc_failures_total\":%uL,"
        "\"unidentified_total\":{\"no_rule\":%uL,\"invalid_name\":%uL},"
        "\"record_bytes\":%uz,",
        h->zone_size, h->zone_used, h->pages, h->pages_free, h->clients,
        rp->zone->max_clients, h->evictions, h->alloc_failures,
        h->unidentified[1], h->unidentified[2],
        offsetof(ngx_rbtree_node_t, color)
        + offsetof(ngx_http_cg_node_t, name));

    ngx_http_cg_status_redis_json(o, rp);

    ngx_http_cg_pr(o,
        "\"anomaly\":{\"enabled\":%s,\"ratio\":%.1f,\"min_rate_per_s\":%.2f,"
        "\"new_clients\":%s},"
        "\"query\":{\"sort\":\"%s\",\"limit\":%ui,\"client\":\"%V\"},"
        "\"clients_total\":%ui,\"clients_shown\":%ui,\"clients\":[",
        rp->an.ratio > 0 ? "true" : "false",
        rp->an.ratio > 0 ? (double) rp->an.ratio : 0.0,
        (double) rp->an.min_rate, rp->an.new_clients ? "true" : "false",
        ngx_http_cg_sort_names[rp->sort],
        rp->limit, &rp->client, rp->nrows, rp->shown);

    for (i = 0; i < rp->shown; i++) {
        row = rp->sorted[i];

        if (i) {
            ngx_http_cg_pr(o, ",");
        }

        ngx_http_cg_json_client(o, rp, row);
    }

    ngx_http_cg_pr(o, "],\"top_movers\":[");

    for (i = 0; i < rp->nmovers; i++) {
        row = rp->movers[i];

        ngx_http_cg_pr(o,
            "%s{\"name\":\"%V\",\"ratio\":%.2f,\"rate_10s_per_s\":%.3f,"
            "\"baseline_per_s\":%.3f}",
            i ? "," : "", &row->name, ngx_http_cg_num(row->ratio),
            ngx_http_cg_num(row->st->rate[CG_STATS_R10]),
            ngx_http_cg_num(row->base));
    }

    ngx_http_cg_pr(o, "],\"deploys_total\":%uL,\"deploys\":[",
                   rp->deploys.total);

    /*
     * Oldest first: the markers posted here, and those read from Redis
     * (posted on any node, or added with XADD) that are not among them.
     */

    n = ngx_min(rp->deploys.total, NGX_HTTP_CG_NDEPLOYS);
    first = rp->deploys.total - n;
    nd = 0;

    for (i = 0; i < n; i++) {
        all[nd] = &rp->deploys.marks[(first + i) % NGX_HTTP_CG_NDEPLOYS];
        src[nd++] = 0;
    }

    for (i = 0; i < rp->rdeploys.total && i < NGX_HTTP_CG_NDEPLOYS; i++) {
        d = &rp->rdeploys.marks[i];

        for (j = 0; j < n; j++) {
            if (all[j]->time_ms == d->time_ms
                && all[j]->team_len == d->team_len
                && ngx_memcmp(all[j]->team, d->team, d->team_len) == 0)
            {
                break;
            }
        }

        if (j == n) {
            all[nd] = d;
            src[nd++] = 1;
        }
    }

    for (i = 1; i < nd; i++) {
        for (j = i; j > 0 && all[j - 1]->time_ms > all[j]->time_ms; j--) {
            d = all[j];
            all[j] = all[j - 1];
            all[j - 1] = d;
            k = src[j];
            src[j] = src[j - 1];
            src[j - 1] = k;
        }
    }

    for (i = 0; i < nd; i++) {
        d = all[i];

        ngx_http_cg_pr(o, "%s{\"time_ms\":%uL,\"team\":\"%*s\","
                       "\"note\":\"%*s\",\"source\":\"%s\"}",
                       i ? "," : "", d->time_ms, (size_t) d->team_len,
                       d->team, (size_t) d->note_len, d->note,
                       src[i] ? "redis" : "local");
    }

    ngx_http_cg_pr(o, "]}\n");

    return NGX_OK;
}


/* Prometheus and OpenMetrics ----------------------------------------------- */


static void
ngx_http_cg_status_redis_prom(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp)
{
    time_t                    loaded;
    ngx_array_t              *errs;
    ngx_http_cg_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(o->r, ngx_http_client_guard_module);

    if (mcf->sync == NULL) {
        return;
    }

    errs = ngx_http_cg_sync_errors();

    ngx_http_cg_family(o, rp, "clientguard_redis_up", "gauge",
                       "1 while this worker's Redis link is ready.");
    ngx_http_cg_pr(o, "clientguard_redis_up %d\n",
                   ngx_http_cg_sync_link_state() == NGX_HTTP_CG_REDIS_READY);

    ngx_http_cg_family(o, rp, "clientguard_redis_nodes", "gauge",
                       "Nodes seen alive through Redis heartbeats.");
    ngx_http_cg_pr(o, "clientguard_redis_nodes %ui\n",
                   ngx_http_cg_sync_live_nodes());

    ngx_http_cg_family(o, rp, "clientguard_redis_quota_version", "gauge",
                       "Version of the quota definitions read from Redis.");
    ngx_http_cg_pr(o, "clientguard_redis_quota_version %uL\n",
                   ngx_http_cg_sync_version());

    ngx_http_cg_family(o, rp, "clientguard_redis_quota_sync_age_seconds",
                       "gauge", "Age of the quota definitions read from "
                       "Redis; -1 before the first read.");
    loaded = ngx_http_cg_sync_loaded();
    ngx_http_cg_pr(o, "clientguard_redis_quota_sync_age_seconds %T\n",
                   loaded ? ngx_time() - loaded : (time_t) -1);

    ngx_http_cg_family(o, rp, "clientguard_redis_quota_errors", "gauge",
                       "Bad quota definitions found in Redis.");
    ngx_http_cg_pr(o, "clientguard_redis_quota_errors %ui\n",
                   errs ? errs->nelts : 0);
}


static void
ngx_http_cg_family(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp,
    const char *name, const char *type, const char *help)
{
    size_t  len;

    len = ngx_strlen(name);

    /* OpenMetrics names a counter family without its "_total" sample */

    if (rp->format == NGX_HTTP_CG_FMT_OPENM && type[0] == 'c'
        && len > 6 && ngx_strcmp(name + len - 6, "_total") == 0)
    {
        len -= 6;
    }

    ngx_http_cg_pr(o, "# HELP %*s %s\n# TYPE %*s %s\n",
                   len, name, help, len, name, type);
}


static ngx_int_t
ngx_http_cg_status_prom(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp)
{
    double                 v;
    uint64_t               n;
    ngx_str_t             *z;
    ngx_uint_t             i, j, k;
    cg_stats_t            *st;
    ngx_http_cg_row_t     *row;
    ngx_http_cg_node_t    *cn;
    ngx_http_cg_lview_t   *lv;
    ngx_http_cg_health_t  *h;

    static const char  *lnames[] = {
        "clientguard_quota_limit_requests",
        "clientguard_quota_used_requests",
        "clientguard_quota_remaining_requests",
        "clientguard_quota_utilisation_ratio",
        "clientguard_quota_near_limit"
    };

    static const char  *lhelp[] = {
        "Requests a limit admits (capacity: burst+1 for a rate).",
        "Requests of the capacity in use now.",
        "Requests the limit still admits now.",
        "Used over capacity, 0..1.",
        "1 when utilisation is at least 0.8."
    };

    h = &rp->health;
    z = ngx_http_cg_esc(o->r->pool, &rp->zone->name);

    ngx_http_cg_family(o, rp, "clientguard_zone_size_bytes", "gauge",
                       "Size of the shared memory zone.");
    ngx_http_cg_pr(o, "clientguard_zone_size_bytes{zone=\"%V\"} %uL\n",
                   z, h->zone_size);

    ngx_http_cg_family(o, rp, "clientguard_zone_used_bytes", "gauge",
                       "Bytes of the zone in use (whole pages).");
    ngx_http_cg_pr(o, "clientguard_zone_used_bytes{zone=\"%V\"} %uL\n",
                   z, h->zone_used);

    ngx_http_cg_family(o, rp, "clientguard_clients", "gauge",
                       "Clients tracked in the zone.");
    ngx_http_cg_pr(o, "clientguard_clients{zone=\"%V\"} %ui\n",
                   z, h->clients);

    ngx_http_cg_family(o, rp, "clientguard_evictions_total", "counter",
                       "Client records evicted to make room.");
    ngx_http_cg_pr(o, "clientguard_evictions_total{zone=\"%V\"} %uL\n",
                   z, h->evictions);

    ngx_http_cg_family(o, rp, "clientguard_alloc_failures_total", "counter",
                       "Client records that could not be allocated.");
    ngx_http_cg_pr(o, "clientguard_alloc_failures_total{zone=\"%V\"} %uL\n",
                   z, h->alloc_failures);

    ngx_http_cg_family(o, rp, "clientguard_unidentified_requests_total",
                       "counter", "Requests no rule identified, by reason.");
    ngx_http_cg_pr(o,
        "clientguard_unidentified_requests_total{zone=\"%V\","
        "reason=\"no_rule\"} %uL\n"
        "clientguard_unidentified_requests_total{zone=\"%V\","
        "reason=\"invalid_name\"} %uL\n",
        z, h->unidentified[1], z, h->unidentified[2]);

    ngx_http_cg_family(o, rp, "clientguard_deploys_total", "counter",
                       "Deploy markers recorded.");
    ngx_http_cg_pr(o, "clientguard_deploys_total{zone=\"%V\"} %uL\n",
                   z, rp->deploys.total);

    ngx_http_cg_status_redis_prom(o, rp);

    /* per client: one family at a time, every shown client in it */

    ngx_http_cg_family(o, rp, "clientguard_requests_total", "counter",
                       "Requests counted for a client.");

    for (i = 0; i < rp->shown; i++) {
        row = rp->sorted[i];
        ngx_http_cg_pr(o,
            "clientguard_requests_total{zone=\"%V\",client=\"%V\"} %uL\n",
            z, &row->name, row->snap->node.counters.requests);
    }

    ngx_http_cg_family(o, rp, "clientguard_outcomes_total", "counter",
                       "Requests by the module's decision; rejections are "
                       "the module's own answers.");

    for (i = 0; i < rp->shown; i++) {
        row = rp->sorted[i];
        cn = &row->snap->node;

        for (k = NGX_HTTP_CG_PASSED; k <= NGX_HTTP_CG_BYPASSED; k++) {
            ngx_http_cg_pr(o,
                "clientguard_outcomes_total{zone=\"%V\",client=\"%V\","
                "outcome=\"%s\"} %uL\n",
                z, &row->name, ngx_http_cg_outcome_names[k],
                cn->counters.outcome[k]);
        }
    }

    ngx_http_cg_family(o, rp, "clientguard_responses_total", "counter",
                       "Responses by status class, the module's own "
                       "rejections excluded.");

    for (i = 0; i < rp->shown; i++) {
        row = rp->sorted[i];

        for (k = 0; k < CG_STATS_NCLASSES; k++) {
            ngx_http_cg_pr(o,
                "clientguard_responses_total{zone=\"%V\",client=\"%V\","
                "status_class=\"%uixx\"} %uL\n",
                z, &row->name, k + 1, row->st->classes[k]);
        }
    }

    ngx_http_cg_family(o, rp, "clientguard_responses_by_code_total",
                       "counter", "Responses with the codes that matter, "
                       "the module's own rejections excluded.");

    for (i = 0; i < rp->shown; i++) {
        row = rp->sorted[i];

        for (k = 0; k < CG_STATS_NCODES; k++) {
            ngx_http_cg_pr(o,
                "clientguard_responses_by_code_total{zone=\"%V\","
                "client=\"%V\",code=\"%uD\"} %uD\n",
                z, &row->name, (uint32_t) cg_stats_codes[k],
                row->st->codes[k]);
        }
    }

    ngx_http_cg_family(o, rp, "clientguard_request_rate", "gauge",
                       "Requests per second, moving average over a window.");

    for (i = 0; i < rp->shown; i++) {
        row = rp->sorted[i];

        for (k = 0; k < 3; k++) {
            ngx_http_cg_pr(o,
                "clientguard_request_rate{zone=\"%V\",client=\"%V\","
                "window=\"%s\"} %.3f\n",
                z, &row->name, ngx_http_cg_window_names[k],
                ngx_http_cg_num(row->st->rate[k]));
        }
    }

    ngx_http_cg_family(o, rp, "clientguard_error_rate", "gauge",
                       "4xx answers per second, moving average.");

    for (i = 0; i < rp->shown; i++) {
        row = rp->sorted[i];

        ngx_http_cg_pr(o,
            "clientguard_error_rate{zone=\"%V\",client=\"%V\",window=\"10s\"}"
            " %.3f\n"
            "clientguard_error_rate{zone=\"%V\",client=\"%V\",window=\"5m\"}"
            " %.3f\n",
            z, &row->name, ngx_http_cg_num(row->st->err[0]),
            z, &row->name, ngx_http_cg_num(row->st->err[1]));
    }

    for (j = 0; j < 2; j++) {
        ngx_http_cg_family(o, rp,
                           j ? "clientguard_upstream_time_seconds"
                             : "clientguard_request_time_seconds",
                           "summary",
                           j ? "Upstream response time (p99 of recent "
                               "requests)."
                             : "Request time (p99 of recent requests).");

        for (i = 0; i < rp->shown; i++) {
            row = rp->sorted[i];
            st = row->st;
            n = j ? st->upstream : cg_stats_responses(st);
            v = (double) (j ? st->upstream_ms : st->time_ms) / 1000;

            ngx_http_cg_pr(o,
                "clientguard_%s_time_seconds{zone=\"%V\",client=\"%V\","
                "quantile=\"0.99\"} %.3f\n"
                "clientguard_%s_time_seconds_sum{zone=\"%V\",client=\"%V\"}"
                " %.3f\n"
                "clientguard_%s_time_seconds_count{zone=\"%V\","
                "client=\"%V\"} %uL\n",
                j ? "upstream" : "request", z, &row->name,
                (double) cg_stats_quantile_ms(j ? st->uhist : st->hist, 0.99)
                / 1000,
                j ? "upstream" : "request", z, &row->name,
                ngx_http_cg_num(v),
                j ? "upstream" : "request", z, &row->name, n);
        }
    }

    for (j = 0; j < 5; j++) {
        ngx_http_cg_family(o, rp, lnames[j], "gauge", lhelp[j]);

        for (i = 0; i < rp->shown; i++) {
            row = rp->sorted[i];

            for (k = 0; k < row->nlimits; k++) {
                lv = &row->limits[k];

                switch (j) {
                case 0:
                    v = (double) lv->capacity;
                    break;
                case 1:
                    v = (double) lv->used;
                    break;
                case 2:
                    v = (double) lv->remaining;
                    break;
                case 3:
                    v = lv->util;
                    break;
                default:
                    v = lv->util >= NGX_HTTP_CG_NEAR_LIMIT ? 1 : 0;
                    break;
                }

                ngx_http_cg_pr(o,
                    "%s{zone=\"%V\",client=\"%V\",limit=\"%ui\","
                    "type=\"%s\",window_seconds=\"%uD\"} %.3f\n",
                    lnames[j], z, &row->name, k + 1,
                    lv->lim.type == CG_LIMIT_RATE ? "rate" : "window",
                    lv->lim.period / 1000, ngx_http_cg_num(v));
            }
        }
    }

    ngx_http_cg_family(o, rp, "clientguard_anomaly_ratio", "gauge",
                       "Current rate over the client's baseline.");

    for (i = 0; i < rp->shown; i++) {
        row = rp->sorted[i];

        ngx_http_cg_pr(o,
            "clientguard_anomaly_ratio{zone=\"%V\",client=\"%V\","
            "type=\"surge\"} %.2f\n"
            "clientguard_anomaly_ratio{zone=\"%V\",client=\"%V\","
            "type=\"error_spike\"} %.2f\n",
            z, &row->name, ngx_http_cg_num(row->ratio),
            z, &row->name, ngx_http_cg_num(row->err_ratio));
    }

    ngx_http_cg_family(o, rp, "clientguard_anomaly_flagged", "gauge",
                       "1 while a client is flagged.");

    for (i = 0; i < rp->shown; i++) {
        row = rp->sorted[i];

        ngx_http_cg_pr(o,
            "clientguard_anomaly_flagged{zone=\"%V\",client=\"%V\","
            "type=\"surge\"} %d\n"
            "clientguard_anomaly_flagged{zone=\"%V\",client=\"%V\","
            "type=\"error_spike\"} %d\n",
            z, &row->name, row->st->surge_since ? 1 : 0,
            z, &row->name, row->st->errors_since ? 1 : 0);
    }

    if (rp->format == NGX_HTTP_CG_FMT_OPENM) {
        ngx_http_cg_pr(o, "# EOF\n");
    }

    return NGX_OK;
}


/* deploy markers ----------------------------------------------------------- */


static ngx_uint_t
ngx_http_cg_status_auth(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char            d;
    ngx_str_t        *v;
    ngx_uint_t        i;

    if (r->headers_in.authorization == NULL) {
        return 0;
    }

    v = &r->headers_in.authorization->value;

    if (v->len != sizeof("Bearer ") - 1 + token->len
        || ngx_strncasecmp(v->data, (u_char *) "Bearer ", 7) != 0)
    {
        return 0;
    }

    d = 0;

    for (i = 0; i < token->len; i++) {
        d |= v->data[7 + i] ^ token->data[i];
    }

    return d == 0;
}


static size_t
ngx_http_cg_status_note(u_char *dst, ngx_str_t *arg, size_t max)
{
    u_char  *p, *s, c, buf[3 * NGX_HTTP_CG_NOTE_LEN];
    size_t   len, i;

    len = ngx_min(arg->len, sizeof(buf));
    ngx_memcpy(buf, arg->data, len);

    for (i = 0; i < len; i++) {
        if (buf[i] == '+') {
            buf[i] = ' ';
        }
    }

    p = dst;
    s = buf;

    /* decodes into dst, up to max bytes */

    if (len > max) {
        u_char  tmp[3 * NGX_HTTP_CG_NOTE_LEN];

        p = tmp;
        ngx_unescape_uri(&p, &s, len, 0);
        len = ngx_min((size_t) (p - tmp), max);
        ngx_memcpy(dst, tmp, len);

    } else {
        ngx_unescape_uri(&p, &s, len, 0);
        len = p - dst;
    }

    /* printable ASCII, nothing that needs escaping in JSON or HTML */

    for (i = 0; i < len; i++) {
        c = dst[i];

        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<'
            || c == '>' || c == '&' || c == '\'')
        {
            dst[i] = '_';
        }
    }

    return len;
}


static ngx_int_t
ngx_http_cg_status_deploy(ngx_http_request_t *r,
    ngx_http_cg_status_conf_t *scf, ngx_http_cg_zone_t *zone)
{
    int                     n;
    u_char                  team[CG_NAME_MAX];
    uint64_t                total;
    ngx_int_t               rc;
    ngx_str_t               v;
    ngx_buf_t              *b;
    ngx_time_t             *tp;
    ngx_chain_t             out;
    ngx_http_cg_deploy_t      d, *slot;
    ngx_http_cg_deploys_t    *ds;
    ngx_http_cg_status_sh_t  *ssh;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (scf->token.len == 0) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (!ngx_http_cg_status_auth(r, &scf->token)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "client guard status: deploy marker refused, "
                      "bad or missing token");
        return NGX_HTTP_FORBIDDEN;
    }

    ngx_memzero(&d, sizeof(ngx_http_cg_deploy_t));

    if (ngx_http_arg(r, (u_char *) "deploy", 6, &v) != NGX_OK) {
        return NGX_HTTP_BAD_REQUEST;
    }

    n = cg_name_normalize(team, v.data, v.len, NGX_HTTP_CG_TEAM_LEN);

    if (n < 0) {
        return NGX_HTTP_BAD_REQUEST;
    }

    ngx_memcpy(d.team, team, n);
    d.team_len = (u_char) n;

    if (ngx_http_arg(r, (u_char *) "note", 4, &v) == NGX_OK) {
        d.note_len = (u_char) ngx_http_cg_status_note(d.note, &v,
                                                      NGX_HTTP_CG_NOTE_LEN);
    }

    tp = ngx_timeofday();
    d.time_ms = (uint64_t) tp->sec * 1000 + tp->msec;

    ngx_http_cg_zone_lock(zone);

    ssh = ngx_http_cg_status_sh(zone);
    ds = ssh ? &ssh->local : NULL;

    if (ds) {
        slot = &ds->marks[ds->total % NGX_HTTP_CG_NDEPLOYS];
        *slot = d;
        total = ++ds->total;

    } else {
        total = 0;
    }

    ngx_http_cg_zone_unlock(zone);

    if (ds == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "client guard status: no memory for deploy markers "
                      "in zone \"%V\"", &zone->name);
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "client guard: deploy marker \"%*s\" \"%*s\"",
                  (size_t) d.team_len, d.team, (size_t) d.note_len, d.note);

    /* the other nodes see it through Redis, when there is a link */

    ngx_http_cg_status_deploy_redis(&d);

    b = ngx_create_temp_buf(r->pool, 256 + NGX_HTTP_CG_TEAM_LEN
                                     + NGX_HTTP_CG_NOTE_LEN);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"deploy\":{\"time_ms\":%uL,"
                          "\"team\":\"%*s\",\"note\":\"%*s\"},"
                          "\"deploys_total\":%uL}\n",
                          d.time_ms, (size_t) d.team_len, d.team,
                          (size_t) d.note_len, d.note, total);
    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_CREATED;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* publication to Redis and the cluster view -------------------------------- */

/*
 * Each node publishes, every "interval", the figures of its busiest
 * clients into the hash {prefix}stats:{node} (one field per client, plus
 * "_meta"), which expires after three intervals, and its name with the
 * time into the sorted set {prefix}stats-nodes.  One worker per node does
 * it (the zone remembers when it was last done).  A node answering
 * "scope=cluster" reads them back and sums the fresh ones: each node's
 * counters are its own, so nothing is counted twice.  The same job reads
 * the deploy markers of the stream {prefix}deploys.
 */

#define NGX_HTTP_CG_PUB_FIELDS  13


typedef struct {
    ngx_http_cg_redis_t      *link;
    ngx_event_t               timer;
    ngx_str_t                 node;
    ngx_str_t                 k_stats;     /* {prefix}stats: (node follows) */
    ngx_str_t                 k_nodes;
    ngx_str_t                 k_deploys;
    ngx_http_cg_main_conf_t  *mcf;
} ngx_http_cg_status_worker_t;


typedef struct {
    ngx_str_t                 name;
    int64_t                   time_ms;     /* its last publication */
    ngx_uint_t                clients;
    unsigned                  stale:1;
} ngx_http_cg_cnode_t;


typedef struct {
    ngx_str_t                 name;
    ngx_uint_t                nodes;
    uint64_t                  n[9];        /* requests .. 5xx */
    double                    rate[4];     /* 10 s, 1 min, 5 min, 4xx 10 s */
    double                    key;
} ngx_http_cg_centry_t;


typedef struct {
    ngx_http_request_t       *r;           /* NULL once the client left */
    ngx_http_cleanup_t       *cln;
    ngx_http_cg_report_t     *rp;
    ngx_uint_t                pending;
    ngx_uint_t                next;        /* node of the next HGETALL */
    ngx_array_t               nodes;       /* ngx_http_cg_cnode_t */
    ngx_array_t               entries;     /* ngx_http_cg_centry_t */
    ngx_uint_t                failed;
} ngx_http_cg_cluster_t;


static ngx_http_cg_status_worker_t  ngx_http_cg_status_w;


char *
ngx_http_cg_publish_directive(ngx_conf_t *cf, ngx_http_cg_publish_t *pb)
{
    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_uint_t   i;
    ngx_msec_t   ms;

    if (pb->set) {
        return "is duplicate";
    }

    pb->set = 1;
    pb->interval = 2000;
    pb->clients = 1000;

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        pb->interval = 0;
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "interval=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            ms = ngx_parse_time(&s, 0);

            if (ms == (ngx_msec_t) NGX_ERROR || ms < 200 || ms > 3600000) {
                goto invalid;
            }

            pb->interval = ms;
            continue;
        }

        if (ngx_strncmp(value[i].data, "clients=", 8) == 0) {
            n = ngx_atoi(value[i].data + 8, value[i].len - 8);

            if (n <= 0 || n > NGX_HTTP_CG_LIMIT_MAX) {
                goto invalid;
            }

            pb->clients = n;
            continue;
        }

        goto invalid;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in "
                       "\"client_guard_status_publish\", expected "
                       "\"interval=200ms..1h\", \"clients=1..%d\" or \"off\"",
                       &value[i], NGX_HTTP_CG_LIMIT_MAX);
    return NGX_CONF_ERROR;
}


void
ngx_http_cg_publish_init(ngx_http_cg_publish_t *pb)
{
    if (!pb->set) {
        pb->interval = 2000;
        pb->clients = 1000;
    }
}


static ngx_int_t
ngx_http_cg_status_key(ngx_cycle_t *cycle, ngx_str_t *prefix, ngx_str_t *key,
    const char *name, ngx_str_t *tail)
{
    size_t  len;

    len = prefix->len + ngx_strlen(name) + (tail ? tail->len : 0);

    key->data = ngx_pnalloc(cycle->pool, len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    key->len = ngx_sprintf(key->data, "%V%s%V", prefix, name,
                           tail ? tail : &(ngx_str_t) ngx_null_string)
               - key->data;

    return NGX_OK;
}


static void ngx_http_cg_status_publish(ngx_event_t *ev);


ngx_int_t
ngx_http_cg_status_init_process(ngx_cycle_t *cycle)
{
    ngx_str_t                     *prefix;
    ngx_http_cg_main_conf_t       *mcf;
    ngx_http_cg_status_worker_t   *w;

    w = &ngx_http_cg_status_w;
    ngx_memzero(w, sizeof(ngx_http_cg_status_worker_t));

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return NGX_OK;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_client_guard_module);

    if (mcf == NULL || mcf->sync == NULL || mcf->zones.nelts == 0) {
        return NGX_OK;
    }

    w->mcf = mcf;
    prefix = &mcf->sync->redis->prefix;

    w->node.data = ngx_pnalloc(cycle->pool,
                               cycle->hostname.len + NGX_INT_T_LEN + 1);
    if (w->node.data == NULL) {
        return NGX_ERROR;
    }

    /* the same name as the node heartbeats of cg_sync: host:master-pid */

    w->node.len = ngx_sprintf(w->node.data, "%V:%P", &cycle->hostname,
                              ngx_process == NGX_PROCESS_WORKER
                              ? getppid() : ngx_pid)
                  - w->node.data;

    if (ngx_http_cg_status_key(cycle, prefix, &w->k_stats, "stats:", NULL)
           != NGX_OK
        || ngx_http_cg_status_key(cycle, prefix, &w->k_nodes, "stats-nodes",
                                  NULL)
           != NGX_OK
        || ngx_http_cg_status_key(cycle, prefix, &w->k_deploys, "deploys",
                                  NULL)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    w->link = ngx_http_cg_redis_create(cycle, mcf->sync->redis, NULL, NULL,
                                       w);
    if (w->link == NULL) {
        return NGX_ERROR;
    }

    /* cg_sync's link reports the state of Redis: this one stays quiet */
    w->link->quiet = 1;

    ngx_http_cg_redis_start(w->link);

    if (mcf->publish.interval) {
        w->timer.handler = ngx_http_cg_status_publish;
        w->timer.data = w;
        w->timer.log = cycle->log;
        w->timer.cancelable = 1;

        ngx_add_timer(&w->timer, mcf->publish.interval / 4 + 100);
    }

    return NGX_OK;
}


void
ngx_http_cg_status_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_cg_status_worker_t  *w;

    w = &ngx_http_cg_status_w;

    if (w->link == NULL) {
        return;
    }

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }

    ngx_http_cg_redis_stop(w->link);
    w->link = NULL;
}


/* the status part of the zone; the caller holds the lock */

static ngx_http_cg_status_sh_t *
ngx_http_cg_status_sh(ngx_http_cg_zone_t *zone)
{
    if (zone->sh->status == NULL) {
        zone->sh->status = ngx_slab_calloc_locked(zone->shpool,
                                              sizeof(ngx_http_cg_status_sh_t));
    }

    return zone->sh->status;
}


static void
ngx_http_cg_status_deploys_done(ngx_http_cg_redis_t *link, redisReply *reply,
    void *data)
{
    int                       len;
    size_t                    n, i, j, k, m;
    u_char                   *p, c;
    ngx_str_t                 v;
    redisReply               *e, *f;
    ngx_http_cg_zone_t      **zp;
    ngx_http_cg_deploy_t      marks[NGX_HTTP_CG_NDEPLOYS], *d;
    ngx_http_cg_status_sh_t  *ssh;
    ngx_http_cg_status_worker_t  *w = data;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || w->mcf == NULL)
    {
        return;
    }

    /* XREVRANGE: newest first; kept oldest first */

    n = ngx_min(reply->elements, NGX_HTTP_CG_NDEPLOYS);
    k = 0;

    for (i = n; i-- > 0; /* void */) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[0]->type != REDIS_REPLY_STRING
            || e->element[1]->type != REDIS_REPLY_ARRAY)
        {
            continue;
        }

        d = &marks[k];
        ngx_memzero(d, sizeof(ngx_http_cg_deploy_t));

        /* the entry ID: "<ms>-<seq>" */

        p = (u_char *) e->element[0]->str;

        for (j = 0; j < e->element[0]->len && p[j] >= '0' && p[j] <= '9';
             j++)
        {
            d->time_ms = d->time_ms * 10 + (p[j] - '0');
        }

        f = e->element[1];

        for (j = 0; j + 1 < f->elements; j += 2) {
            if (f->element[j]->type != REDIS_REPLY_STRING
                || f->element[j + 1]->type != REDIS_REPLY_STRING
                || f->element[j]->len != 4)
            {
                continue;
            }

            v.data = (u_char *) f->element[j + 1]->str;
            v.len = f->element[j + 1]->len;

            if (ngx_strncmp(f->element[j]->str, "team", 4) == 0) {
                len = cg_name_normalize(d->team, v.data, v.len,
                                        NGX_HTTP_CG_TEAM_LEN);
                d->team_len = len > 0 ? (u_char) len : 0;

            } else if (ngx_strncmp(f->element[j]->str, "note", 4) == 0) {
                d->note_len = (u_char) ngx_min(v.len, NGX_HTTP_CG_NOTE_LEN);

                for (m = 0; m < d->note_len; m++) {
                    c = v.data[m];

                    d->note[m] = (c < 0x20 || c >= 0x7f || c == '"'
                                  || c == '\\' || c == '<' || c == '>'
                                  || c == '&' || c == '\'')
                                 ? '_' : c;
                }
            }
        }

        if (d->team_len) {
            k++;
        }
    }

    zp = w->mcf->zones.elts;

    ngx_http_cg_zone_lock(zp[0]);

    ssh = ngx_http_cg_status_sh(zp[0]);

    if (ssh) {
        ngx_memzero(&ssh->redis, sizeof(ngx_http_cg_deploys_t));
        ngx_memcpy(ssh->redis.marks, marks, k * sizeof(ngx_http_cg_deploy_t));
        ssh->redis.total = k;
    }

    ngx_http_cg_zone_unlock(zp[0]);
}


static void
ngx_http_cg_status_publish(ngx_event_t *ev)
{
    u_char                       *p;
    size_t                       *lens;
    int64_t                       now;
    uint64_t                      ttl;
    ngx_uint_t                    i, n, due;
    ngx_pool_t                   *pool;
    ngx_time_t                   *tp;
    const char                  **argv;
    ngx_http_cg_row_t            *row;
    ngx_http_cg_zone_t          **zp, *zone;
    ngx_http_cg_report_t         *rp;
    ngx_http_cg_node_t           *cn;
    ngx_http_cg_status_sh_t      *ssh;
    ngx_http_cg_status_worker_t  *w;
    u_char                        key[512], nowb[NGX_INT64_LEN],
                                  ttlb[NGX_INT64_LEN];

    w = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_add_timer(ev, w->mcf->publish.interval);

    if (!ngx_http_cg_redis_ready(w->link)) {
        return;
    }

    zp = w->mcf->zones.elts;
    zone = zp[0];

    if (zone->sh == NULL) {
        return;
    }

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    /* one worker of the node publishes */

    ngx_http_cg_zone_lock(zone);

    ssh = ngx_http_cg_status_sh(zone);

    due = ssh && (uint64_t) now >= ssh->publish_ms
                                   + w->mcf->publish.interval * 3 / 4;
    if (due) {
        ssh->publish_ms = now;
    }

    ngx_http_cg_zone_unlock(zone);

    if (!due) {
        return;
    }

    argv = (const char *[]) { "XREVRANGE", (char *) w->k_deploys.data,
                              "+", "-", "COUNT", "32" };
    lens = (size_t []) { 9, w->k_deploys.len, 1, 1, 5, 2 };

    (void) ngx_http_cg_redis_send(w->link, 6, argv, lens,
                                  ngx_http_cg_status_deploys_done, w);

    pool = ngx_create_pool(16384, ev->log);
    if (pool == NULL) {
        return;
    }

    rp = ngx_pcalloc(pool, sizeof(ngx_http_cg_report_t));
    if (rp == NULL) {
        goto done;
    }

    rp->zone = zone;
    rp->pool = pool;
    rp->mcf = w->mcf;
    rp->sort = NGX_HTTP_CG_SORT_REQUESTS;
    rp->limit = w->mcf->publish.clients;
    rp->now_ms = now;
    rp->now = (uint32_t) tp->sec;
    rp->an = w->mcf->anomaly;

    if (ngx_http_cg_status_collect(rp) != NGX_OK) {
        goto done;
    }

    ngx_http_cg_status_rows(rp);

    if (rp->sorted == NULL) {
        goto done;
    }

    n = 4 + 2 * rp->shown;

    argv = ngx_palloc(pool, n * sizeof(char *));
    lens = ngx_palloc(pool, n * sizeof(size_t));
    p = ngx_pnalloc(pool, 64 + rp->shown * (NGX_HTTP_CG_PUB_FIELDS
                                            * (NGX_INT64_LEN + 1) + 32));

    if (argv == NULL || lens == NULL || p == NULL) {
        goto done;
    }

    if (w->k_stats.len + w->node.len > sizeof(key)) {
        goto done;
    }

    lens[1] = ngx_sprintf(key, "%V%V", &w->k_stats, &w->node) - key;
    argv[1] = (char *) key;

    argv[0] = "DEL";
    lens[0] = 3;

    (void) ngx_http_cg_redis_send(w->link, 2, argv, lens, NULL, NULL);

    argv[0] = "HSET";
    lens[0] = 4;
    argv[2] = "_meta";
    lens[2] = 5;
    argv[3] = (char *) p;
    p = ngx_sprintf(p, "%L %ui %M", now, rp->health.clients,
                    w->mcf->publish.interval);
    lens[3] = p - (u_char *) argv[3];

    for (i = 0; i < rp->shown; i++) {
        row = rp->sorted[i];
        cn = &row->snap->node;

        argv[4 + 2 * i] = (char *) row->name.data;
        lens[4 + 2 * i] = row->name.len;

        argv[5 + 2 * i] = (char *) p;
        p = ngx_sprintf(p, "%uL %uL %uL %uL %uL %uL %uL %uL %.3f %.3f %.3f "
                        "%.3f",
                        cn->counters.requests,
                        cn->counters.outcome[NGX_HTTP_CG_REJECTED],
                        cn->counters.outcome[NGX_HTTP_CG_REJECTED_DRY_RUN],
                        row->st->classes[0], row->st->classes[1],
                        row->st->classes[2], row->st->classes[3],
                        row->st->classes[4],
                        ngx_http_cg_num(row->st->rate[0]),
                        ngx_http_cg_num(row->st->rate[1]),
                        ngx_http_cg_num(row->st->rate[2]),
                        ngx_http_cg_num(row->st->err[0]));
        lens[5 + 2 * i] = p - (u_char *) argv[5 + 2 * i];
    }

    (void) ngx_http_cg_redis_send(w->link, n, argv, lens, NULL, NULL);

    ttl = w->mcf->publish.interval * 3;

    argv[0] = "PEXPIRE";
    lens[0] = 7;
    argv[2] = (char *) ttlb;
    lens[2] = ngx_sprintf(ttlb, "%uL", ttl) - ttlb;

    (void) ngx_http_cg_redis_send(w->link, 3, argv, lens, NULL, NULL);

    argv[0] = "ZADD";
    lens[0] = 4;
    argv[1] = (char *) w->k_nodes.data;
    lens[1] = w->k_nodes.len;
    argv[2] = (char *) nowb;
    lens[2] = ngx_sprintf(nowb, "%L", now) - nowb;
    argv[3] = (char *) w->node.data;
    lens[3] = w->node.len;

    (void) ngx_http_cg_redis_send(w->link, 4, argv, lens, NULL, NULL);

    /* nodes gone for an hour leave the list */

    argv[0] = "ZREMRANGEBYSCORE";
    lens[0] = 16;
    argv[2] = "-inf";
    lens[2] = 4;
    argv[3] = (char *) ttlb;
    lens[3] = ngx_sprintf(ttlb, "%L", now - 3600 * 1000) - ttlb;

    (void) ngx_http_cg_redis_send(w->link, 4, argv, lens, NULL, NULL);

done:

    ngx_destroy_pool(pool);
}


/* a marker posted here goes to the stream too, with its time as the ID */

static void
ngx_http_cg_status_deploy_redis(ngx_http_cg_deploy_t *d)
{
    size_t                        lens[9];
    const char                   *argv[9];
    u_char                        id[NGX_INT64_LEN + 3];
    ngx_http_cg_status_worker_t  *w;

    w = &ngx_http_cg_status_w;

    if (!ngx_http_cg_redis_ready(w->link)) {
        return;
    }

    argv[0] = "XADD";
    argv[1] = (char *) w->k_deploys.data;
    argv[2] = "MAXLEN";
    argv[3] = "~";
    argv[4] = "1000";
    argv[5] = (char *) id;
    argv[6] = "team";
    argv[7] = (char *) d->team;

    lens[0] = 4;
    lens[1] = w->k_deploys.len;
    lens[2] = 6;
    lens[3] = 1;
    lens[4] = 4;
    lens[5] = ngx_sprintf(id, "%uL-*", d->time_ms) - id;
    lens[6] = 4;
    lens[7] = d->team_len;

    argv[8] = "note";
    lens[8] = 4;

    if (d->note_len) {
        const char  *av[11];
        size_t       al[11];

        ngx_memcpy(av, argv, sizeof(argv));
        ngx_memcpy(al, lens, sizeof(lens));
        av[9] = (char *) d->note;
        al[9] = d->note_len;

        (void) ngx_http_cg_redis_send(w->link, 10, av, al, NULL, NULL);
        return;
    }

    (void) ngx_http_cg_redis_send(w->link, 8, argv, lens, NULL, NULL);
}


/* scope=cluster: read every node's publication back ------------------------ */


static void
ngx_http_cg_cluster_cleanup(void *data)
{
    ngx_http_cg_cluster_t  *cl = data;

    /* the client left: the replies still due only free the state */

    cl->r = NULL;
    cl->cln = NULL;

    if (cl->pending == 0) {
        ngx_free(cl);
    }
}


static int ngx_libc_cdecl
ngx_http_cg_centry_name_cmp(const void *one, const void *two)
{
    const ngx_http_cg_centry_t  *a = one, *b = two;

    return ngx_memn2cmp(a->name.data, b->name.data, a->name.len, b->name.len);
}


static int ngx_libc_cdecl
ngx_http_cg_centry_cmp(const void *one, const void *two)
{
    const ngx_http_cg_centry_t  *a = one, *b = two;

    if (a->key != b->key) {
        return (a->key > b->key) ? -1 : 1;
    }

    return ngx_memn2cmp(a->name.data, b->name.data, a->name.len, b->name.len);
}


/*
 * The cluster in Prometheus' formats: gauges under clientguard_cluster_*,
 * since a sum over the nodes reporting drops when one goes stale (it is not
 * a counter); per-node counters stay what each node exports.
 */

static void
ngx_http_cg_cluster_prom(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp,
    ngx_http_cg_centry_t *e, ngx_uint_t n, ngx_uint_t fresh, ngx_uint_t stale)
{
    ngx_uint_t  i, k;

    static const char  *outcomes[] = { "rejected", "rejected_dry_run" };

    if (rp->format == NGX_HTTP_CG_FMT_OPENM) {
        ngx_str_set(&o->r->headers_out.content_type,
                    "application/openmetrics-text; version=1.0.0; "
                    "charset=utf-8");

    } else {
        ngx_str_set(&o->r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");
    }

    ngx_http_cg_family(o, rp, "clientguard_cluster_nodes", "gauge",
                       "Nodes publishing to Redis, by state.");
    ngx_http_cg_pr(o, "clientguard_cluster_nodes{state=\"reporting\"} %ui\n"
                   "clientguard_cluster_nodes{state=\"stale\"} %ui\n",
                   fresh, stale);

    ngx_http_cg_family(o, rp, "clientguard_cluster_requests", "gauge",
                       "Requests of a client summed over the reporting "
                       "nodes.");

    for (i = 0; i < n; i++) {
        ngx_http_cg_pr(o, "clientguard_cluster_requests{client=\"%V\"} %uL\n",
                       &e[i].name, e[i].n[0]);
    }

    ngx_http_cg_family(o, rp, "clientguard_cluster_outcomes", "gauge",
                       "Rejections summed over the reporting nodes.");

    for (i = 0; i < n; i++) {
        for (k = 0; k < 2; k++) {
            ngx_http_cg_pr(o, "clientguard_cluster_outcomes{client=\"%V\","
                           "outcome=\"%s\"} %uL\n",
                           &e[i].name, outcomes[k], e[i].n[1 + k]);
        }
    }

    ngx_http_cg_family(o, rp, "clientguard_cluster_responses", "gauge",
                       "Responses by status class summed over the reporting "
                       "nodes.");

    for (i = 0; i < n; i++) {
        for (k = 0; k < 5; k++) {
            ngx_http_cg_pr(o, "clientguard_cluster_responses{client=\"%V\","
                           "status_class=\"%uixx\"} %uL\n",
                           &e[i].name, k + 1, e[i].n[3 + k]);
        }
    }

    ngx_http_cg_family(o, rp, "clientguard_cluster_request_rate", "gauge",
                       "Requests per second summed over the reporting "
                       "nodes.");

    for (i = 0; i < n; i++) {
        for (k = 0; k < 3; k++) {
            ngx_http_cg_pr(o, "clientguard_cluster_request_rate{client=\"%V\","
                           "window=\"%s\"} %.3f\n",
                           &e[i].name, ngx_http_cg_window_names[k],
                           ngx_http_cg_num(e[i].rate[k]));
        }
    }

    if (rp->format == NGX_HTTP_CG_FMT_OPENM) {
        ngx_http_cg_pr(o, "# EOF\n");
    }
}


static void
ngx_http_cg_cluster_finish(ngx_http_cg_cluster_t *cl, ngx_int_t status)
{
    ngx_int_t              rc;
    ngx_uint_t             i, j, n, fresh, stale, merged;
    ngx_chain_t           *ln;
    ngx_http_cg_out_t      o;
    ngx_connection_t      *c;
    ngx_http_request_t    *r;
    ngx_http_cg_cnode_t   *nd;
    ngx_http_cg_centry_t  *e, *m;
    ngx_http_cg_report_t  *rp;

    r = cl->r;
    rp = cl->rp;
    c = r->connection;

    /* detach: the request is done with the state */

    if (cl->cln) {
        cl->cln->handler = NULL;
    }

    cl->r = NULL;

    if (status != NGX_OK) {
        rc = status;
        goto done;
    }

    /* one entry per client: sorted by name, the nodes' figures summed */

    e = cl->entries.elts;
    n = cl->entries.nelts;

    ngx_qsort(e, n, sizeof(ngx_http_cg_centry_t), ngx_http_cg_centry_name_cmp);

    merged = 0;

    for (i = 0; i < n; i++) {
        m = &e[merged];

        if (merged && m[-1].name.len == e[i].name.len
            && ngx_memcmp(m[-1].name.data, e[i].name.data, e[i].name.len)
               == 0)
        {
            m = &m[-1];

            for (j = 0; j < 9; j++) {
                m->n[j] += e[i].n[j];
            }

            for (j = 0; j < 4; j++) {
                m->rate[j] += e[i].rate[j];
            }

            m->nodes++;
            continue;
        }

        if (m != &e[i]) {
            *m = e[i];
        }

        m->nodes = 1;
        merged++;
    }

    for (i = 0; i < merged; i++) {
        switch (rp->sort) {
        case NGX_HTTP_CG_SORT_RATE:
            e[i].key = e[i].rate[0];
            break;
        case NGX_HTTP_CG_SORT_RATE_1M:
            e[i].key = e[i].rate[1];
            break;
        case NGX_HTTP_CG_SORT_RATE_5M:
            e[i].key = e[i].rate[2];
            break;
        case NGX_HTTP_CG_SORT_REJECTED:
            e[i].key = (double) e[i].n[1];
            break;
        case NGX_HTTP_CG_SORT_ERRORS:
            e[i].key = (double) (e[i].n[6] + e[i].n[7]);
            break;
        case NGX_HTTP_CG_SORT_NAME:
            e[i].key = 0;
            break;
        default:
            e[i].key = (double) e[i].n[0];
            break;
        }
    }

    ngx_qsort(e, merged, sizeof(ngx_http_cg_centry_t),
              ngx_http_cg_centry_cmp);

    if (rp->client.len) {
        for (i = 0; i < merged; i++) {
            if (e[i].name.len == rp->client.len
                && ngx_memcmp(e[i].name.data, rp->client.data,
                              rp->client.len) == 0)
            {
                break;
            }
        }

        e = &e[i];
        merged = (i < merged) ? 1 : 0;
    }

    ngx_memzero(&o, sizeof(ngx_http_cg_out_t));
    o.r = r;
    o.last = &o.out;

    nd = cl->nodes.elts;
    fresh = 0;
    stale = 0;

    for (i = 0; i < cl->nodes.nelts; i++) {
        if (nd[i].stale) {
            stale++;

        } else {
            fresh++;
        }
    }

    if (rp->format == NGX_HTTP_CG_FMT_PROM
        || rp->format == NGX_HTTP_CG_FMT_OPENM)
    {
        ngx_http_cg_cluster_prom(&o, rp, e, ngx_min(merged, rp->limit),
                                 fresh, stale);
        goto send;
    }

    ngx_http_cg_pr(&o,
        "{\"schema_version\":%d,\"module\":\"client_guard\","
        "\"scope\":\"cluster\",\"time_ms\":%L,\"nodes_reporting\":%ui,"
        "\"nodes_stale\":%ui,\"nodes\":[",
        NGX_HTTP_CG_STATUS_SCHEMA, rp->now_ms, fresh, stale);

    for (i = 0; i < cl->nodes.nelts; i++) {
        ngx_http_cg_pr(&o, "%s{\"node\":\"%V\",\"published_ms_ago\":%L,"
                       "\"stale\":%s,\"clients_tracked\":%ui}",
                       i ? "," : "", ngx_http_cg_esc(r->pool, &nd[i].name),
                       nd[i].time_ms ? rp->now_ms - nd[i].time_ms : -1,
                       nd[i].stale ? "true" : "false", nd[i].clients);
    }

    n = ngx_min(merged, rp->limit);

    ngx_http_cg_pr(&o, "],\"query\":{\"sort\":\"%s\",\"limit\":%ui,"
                   "\"client\":\"%V\"},\"clients_total\":%ui,"
                   "\"clients_shown\":%ui,\"clients\":[",
                   ngx_http_cg_sort_names[rp->sort], rp->limit, &rp->client,
                   merged, n);

    for (i = 0; i < n; i++) {
        ngx_http_cg_pr(&o,
            "%s{\"name\":\"%V\",\"nodes\":%ui,\"requests_total\":%uL,"
            "\"rejected_total\":%uL,\"rejected_dry_run_total\":%uL,"
            "\"responses_by_class_total\":{\"1xx\":%uL,\"2xx\":%uL,"
            "\"3xx\":%uL,\"4xx\":%uL,\"5xx\":%uL},"
            "\"rate_10s_per_s\":%.3f,\"rate_1m_per_s\":%.3f,"
            "\"rate_5m_per_s\":%.3f,\"error_rate_10s_per_s\":%.3f}",
            i ? "," : "", &e[i].name, e[i].nodes, e[i].n[0], e[i].n[1],
            e[i].n[2], e[i].n[3], e[i].n[4], e[i].n[5], e[i].n[6],
            e[i].n[7], ngx_http_cg_num(e[i].rate[0]),
            ngx_http_cg_num(e[i].rate[1]), ngx_http_cg_num(e[i].rate[2]),
            ngx_http_cg_num(e[i].rate[3]));
    }

    ngx_http_cg_pr(&o, "]}\n");

    ngx_str_set(&r->headers_out.content_type, "application/json");

send:

    if (o.failed || o.out == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto done;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = 0;

    for (ln = o.out; ln; ln = ln->next) {
        r->headers_out.content_length_n += ln->buf->last - ln->buf->pos;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        goto done;
    }

    /* o.b is the last buffer of the chain */

    o.b->last_buf = 1;
    o.b->last_in_chain = 1;

    rc = ngx_http_output_filter(r, o.out);

done:

    ngx_free(cl);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_cg_cluster_stats_done(ngx_http_cg_redis_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_cluster_t  *cl = data;

    u_char                *p, *last, *t;
    size_t                 i;
    int64_t                v[3];
    ngx_int_t              n;
    ngx_uint_t             k;
    redisReply            *f, *val;
    ngx_http_cg_cnode_t   *nd;
    ngx_http_cg_centry_t  *e;

    cl->pending--;

    if (cl->r == NULL) {
        if (cl->pending == 0) {
            ngx_free(cl);
        }

        return;
    }

    nd = &((ngx_http_cg_cnode_t *) cl->nodes.elts)[cl->next++];
    nd->stale = 1;

    if (reply == NULL) {
        cl->failed = 1;
        goto next;
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        goto next;
    }

    /* "_meta": "<time_ms> <clients> <interval_ms>" */

    for (i = 0; i + 1 < reply->elements; i += 2) {
        f = reply->element[i];
        val = reply->element[i + 1];

        if (f->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING
            || f->len != 5 || ngx_strncmp(f->str, "_meta", 5) != 0)
        {
            continue;
        }

        p = (u_char *) val->str;
        last = p + val->len;

        for (k = 0; k < 3; k++) {
            for (t = p; t < last && *t != ' '; t++) { /* void */ }
            n = ngx_atoi(p, t - p);
            v[k] = n == NGX_ERROR ? 0 : n;
            p = t < last ? t + 1 : t;
        }

        nd->time_ms = v[0];
        nd->clients = (ngx_uint_t) v[1];
        nd->stale = (v[2] == 0 || cl->rp->now_ms - v[0] > 3 * v[2]);
    }

    if (nd->stale) {
        goto next;
    }

    for (i = 0; i + 1 < reply->elements; i += 2) {
        f = reply->element[i];
        val = reply->element[i + 1];

        if (f->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING
            || f->len == 0 || f->len > CG_NAME_MAX
            || (f->len == 5 && ngx_strncmp(f->str, "_meta", 5) == 0))
        {
            continue;
        }

        e = ngx_array_push(&cl->entries);
        if (e == NULL) {
            cl->failed = 1;
            break;
        }

        ngx_memzero(e, sizeof(ngx_http_cg_centry_t));

        e->name.data = ngx_pnalloc(cl->r->pool, f->len);
        if (e->name.data == NULL) {
            cl->failed = 1;
            break;
        }

        ngx_memcpy(e->name.data, f->str, f->len);
        e->name.len = f->len;

        /* 8 counters, then 4 rates with 3 decimals */

        p = (u_char *) val->str;
        last = p + val->len;

        for (k = 0; k < 12 && p < last; k++) {
            for (t = p; t < last && *t != ' '; t++) { /* void */ }

            if (k < 8) {
                n = ngx_atoi(p, t - p);
                e->n[k] = n == NGX_ERROR ? 0 : (uint64_t) n;

            } else {
                n = ngx_atofp(p, t - p, 3);
                e->rate[k - 8] = n == NGX_ERROR ? 0 : (double) n / 1000;
            }

            p = t < last ? t + 1 : t;
        }
    }

next:

    if (cl->pending == 0) {
        ngx_http_cg_cluster_finish(cl, cl->failed ? NGX_HTTP_BAD_GATEWAY
                                                  : NGX_OK);
    }
}


static void
ngx_http_cg_cluster_nodes_done(ngx_http_cg_redis_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_cluster_t  *cl = data;

    size_t                        i, lens[2];
    u_char                       *key;
    ngx_int_t                     n;
    const char                   *argv[2];
    redisReply                   *m, *sc;
    ngx_http_cg_cnode_t          *nd;
    ngx_http_cg_status_worker_t  *w;

    cl->pending--;

    if (cl->r == NULL) {
        if (cl->pending == 0) {
            ngx_free(cl);
        }

        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_cg_cluster_finish(cl, NGX_HTTP_BAD_GATEWAY);
        return;
    }

    w = &ngx_http_cg_status_w;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        m = reply->element[i];
        sc = reply->element[i + 1];

        if (m->type != REDIS_REPLY_STRING || m->len == 0 || m->len > 256) {
            continue;
        }

        nd = ngx_array_push(&cl->nodes);
        key = ngx_pnalloc(cl->r->pool, m->len + w->k_stats.len);

        if (nd == NULL || key == NULL) {
            cl->failed = 1;
            break;
        }

        ngx_memzero(nd, sizeof(ngx_http_cg_cnode_t));
        nd->name.data = key + w->k_stats.len;
        nd->name.len = m->len;
        ngx_memcpy(key, w->k_stats.data, w->k_stats.len);
        ngx_memcpy(nd->name.data, m->str, m->len);

        if (sc->type == REDIS_REPLY_STRING) {
            n = ngx_atoi((u_char *) sc->str, sc->len);
            nd->time_ms = n == NGX_ERROR ? 0 : n;
        }

        argv[0] = "HGETALL";
        lens[0] = 7;
        argv[1] = (char *) key;
        lens[1] = w->k_stats.len + m->len;

        if (ngx_http_cg_redis_send(w->link, 2, argv, lens,
                                   ngx_http_cg_cluster_stats_done, cl)
            != NGX_OK)
        {
            cl->nodes.nelts--;
            cl->failed = 1;
            break;
        }

        cl->pending++;
    }

    if (cl->pending == 0) {
        ngx_http_cg_cluster_finish(cl, cl->failed ? NGX_HTTP_BAD_GATEWAY
                                                  : NGX_OK);
    }
}


static ngx_int_t
ngx_http_cg_status_cluster(ngx_http_request_t *r, ngx_http_cg_report_t *rp)
{
    size_t                        lens[5];
    const char                   *argv[5];
    ngx_http_cleanup_t           *cln;
    ngx_http_cg_cluster_t        *cl;
    ngx_http_cg_status_worker_t  *w;

    w = &ngx_http_cg_status_w;

    if (!ngx_http_cg_redis_ready(w->link)) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "client guard status: \"scope=cluster\" needs a "
                      "ready Redis link (client_guard_redis)");
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    cl = ngx_calloc(sizeof(ngx_http_cg_cluster_t), r->connection->log);
    if (cl == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);

    if (cln == NULL
        || ngx_array_init(&cl->nodes, r->pool, 8,
                          sizeof(ngx_http_cg_cnode_t)) != NGX_OK
        || ngx_array_init(&cl->entries, r->pool, 64,
                          sizeof(ngx_http_cg_centry_t)) != NGX_OK)
    {
        ngx_free(cl);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cl->r = r;
    cl->rp = rp;
    cl->cln = cln;

    argv[0] = "ZRANGE";
    argv[1] = (char *) w->k_nodes.data;
    argv[2] = "0";
    argv[3] = "-1";
    argv[4] = "WITHSCORES";

    lens[0] = 6;
    lens[1] = w->k_nodes.len;
    lens[2] = 1;
    lens[3] = 2;
    lens[4] = 10;

    if (ngx_http_cg_redis_send(w->link, 5, argv, lens,
                               ngx_http_cg_cluster_nodes_done, cl)
        != NGX_OK)
    {
        ngx_free(cl);
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    cln->handler = ngx_http_cg_cluster_cleanup;
    cln->data = cl;

    cl->pending = 1;
    r->main->count++;

    return NGX_DONE;
}
