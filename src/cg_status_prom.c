
/*
 * Copyright (C) client guard authors
 *
 * The status report of one node for Prometheus.  See cg_status_prom.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_common.h"
#include "cg_redis_quota.h"
#include "cg_status_prom.h"


/* a sample of the zone or of the node, in a family of its own or not */

typedef struct {
    const char                *name;
    const char                *type;
    const char                *help;       /* NULL: the family above */
    const char                *labels;     /* after zone=; NULL: no label */
    int64_t                    value;
} ngx_http_cg_prom_one_t;


/* a per-client family: one sample a client, or one a value of its label */

typedef struct {
    const char                *name;
    const char                *type;
    const char                *help;
    const char                *label;      /* NULL: no label of its own */
    const char *const         *values;     /* NULL: ngx_http_cg_prom_label */
    ngx_uint_t                 n;
    ngx_uint_t                 frac;       /* 0: an integer */
} ngx_http_cg_prom_fam_t;


enum {
    NGX_HTTP_CG_PROM_REQUESTS = 0,
    NGX_HTTP_CG_PROM_OUTCOMES,
    NGX_HTTP_CG_PROM_CLASSES,
    NGX_HTTP_CG_PROM_CODES,
    NGX_HTTP_CG_PROM_RATE,
    NGX_HTTP_CG_PROM_ERRORS,
    NGX_HTTP_CG_PROM_RATIO,
    NGX_HTTP_CG_PROM_FLAGGED
};


static const char  *ngx_http_cg_class_names[] = {
    "1xx", "2xx", "3xx", "4xx", "5xx"
};

static const char  *ngx_http_cg_err_classes[] = { "4xx", "5xx" };
static const char  *ngx_http_cg_anomaly_types[] = {
    "surge", "errors_4xx", "errors_5xx"
};


static const ngx_http_cg_prom_fam_t  ngx_http_cg_prom_fams[] = {
    { "clientguard_requests_total", "counter",
      "Requests counted for a client.", NULL, NULL, 1, 0 },
    { "clientguard_outcomes_total", "counter",
      "Requests by the module's decision; rejections are the module's own "
      "answers.", "outcome", NULL,
      NGX_HTTP_CG_BYPASSED - NGX_HTTP_CG_PASSED + 1, 0 },
    { "clientguard_responses_total", "counter",
      "Responses by status class, the module's own rejections excluded.",
      "status_class", ngx_http_cg_class_names, CG_STATS_NCLASSES, 0 },
    { "clientguard_responses_by_code_total", "counter",
      "Responses with the codes that matter, the module's own rejections "
      "excluded.", "code", NULL, CG_STATS_NCODES, 0 },
    { "clientguard_request_rate", "gauge",
      "Requests per second, moving average over a window.",
      "window", ngx_http_cg_window_names, 3, 3 },
    { "clientguard_error_rate", "gauge",
      "Error answers per second over the last two steps, by class.",
      "status_class", ngx_http_cg_err_classes, 2, 3 },
    { "clientguard_anomaly_ratio", "gauge",
      "Now over the client's baseline: its rate (surge), its error share "
      "(errors_4xx, errors_5xx).",
      "type", ngx_http_cg_anomaly_types, 3, 2 },
    { "clientguard_anomaly_flagged", "gauge",
      "1 while a client is flagged.",
      "type", ngx_http_cg_anomaly_types, 3, 0 }
};


static void
ngx_http_cg_prom_ones(ngx_http_cg_out_t *o, ngx_str_t *z,
    ngx_http_cg_prom_one_t *s, ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {

        if (s[i].help) {
            ngx_http_cg_family(o, s[i].name, s[i].type, s[i].help);
        }

        if (s[i].labels) {
            ngx_http_cg_out_printf(o, "%s{zone=\"%V\"%s} %L\n",
                                   s[i].name, z, s[i].labels, s[i].value);

        } else {
            ngx_http_cg_out_printf(o, "%s %L\n", s[i].name, s[i].value);
        }
    }
}


/* the value of family f for a client; k: the value of the family's label */

static double
ngx_http_cg_prom_value(ngx_uint_t f, ngx_http_cg_row_t *row, ngx_uint_t k,
    uint64_t *count)
{
    cg_stats_t            *st;
    ngx_http_cg_record_t  *rec;

    rec = row->rec;
    st = &rec->stats;

    switch (f) {

    case NGX_HTTP_CG_PROM_REQUESTS:
        *count = rec->counters.requests;
        break;

    case NGX_HTTP_CG_PROM_OUTCOMES:
        *count = rec->counters.outcome[NGX_HTTP_CG_PASSED + k];
        break;

    case NGX_HTTP_CG_PROM_CLASSES:
        *count = st->classes[k];
        break;

    case NGX_HTTP_CG_PROM_CODES:
        *count = st->codes[k];
        break;

    case NGX_HTTP_CG_PROM_RATE:
        return ngx_http_cg_out_finite(k == 0 ? row->figures.rate_10s
                                      : (k == 1 ? row->figures.rate_1m
                                                : row->figures.rate_5m));

    case NGX_HTTP_CG_PROM_ERRORS:
        return ngx_http_cg_out_finite(k ? row->figures.error5_rate_10s
                                        : row->figures.error_rate_10s);

    case NGX_HTTP_CG_PROM_RATIO:
        if (k == 0) {
            return ngx_http_cg_out_finite(row->view.ratio);
        }

        return ngx_http_cg_out_finite(row->view.share[k - 1]
                                      / ngx_max(row->view.base_share[k - 1],
                                                0.01));

    default: /* NGX_HTTP_CG_PROM_FLAGGED */
        *count = st->history.since[k] ? 1 : 0;
        break;
    }

    return 0;
}


/* the label of a family's sample k, after zone= and client= */

static void
ngx_http_cg_prom_label(ngx_http_cg_out_t *o, ngx_uint_t f, ngx_uint_t k)
{
    const ngx_http_cg_prom_fam_t  *fam;

    fam = &ngx_http_cg_prom_fams[f];

    if (fam->label == NULL) {
        return;
    }

    if (fam->values) {
        ngx_http_cg_out_printf(o, ",%s=\"%s\"", fam->label, fam->values[k]);

    } else if (f == NGX_HTTP_CG_PROM_OUTCOMES) {
        ngx_http_cg_out_printf(o, ",%s=\"%V\"", fam->label,
                               &ngx_http_cg_outcomes[NGX_HTTP_CG_PASSED + k]
                                    .name);

    } else {
        ngx_http_cg_out_printf(o, ",%s=\"%uD\"",
                               fam->label, (uint32_t) cg_stats_codes[k]);
    }
}


/*
 * The per-client part of the answer, one family after the other, every
 * shown client in each: a step a family, resumed at any row.
 */

typedef struct ngx_http_cg_prom_step_s  ngx_http_cg_prom_step_t;

typedef void (*ngx_http_cg_prom_row_pt)(ngx_http_cg_out_t *o,
    const ngx_http_cg_prom_step_t *s, ngx_http_cg_row_t *row);

struct ngx_http_cg_prom_step_s {
    ngx_http_cg_prom_row_pt    row;
    ngx_uint_t                 arg;        /* which family, which figure */
    const char                *name;       /* NULL: ngx_http_cg_prom_fams */
    const char                *type;
    const char                *help;
};


/* a client's samples in a family of ngx_http_cg_prom_fams */

static void
ngx_http_cg_prom_fam_row(ngx_http_cg_out_t *o,
    const ngx_http_cg_prom_step_t *s, ngx_http_cg_row_t *row)
{
    double                         v;
    uint64_t                       n;
    ngx_uint_t                     f, k;
    const ngx_http_cg_prom_fam_t  *fam;

    f = s->arg;
    fam = &ngx_http_cg_prom_fams[f];

    for (k = 0; k < fam->n; k++) {
        n = 0;
        v = ngx_http_cg_prom_value(f, row, k, &n);

        ngx_http_cg_out_printf(o, "%s{zone=\"%V\",client=\"%V\"",
                               fam->name, o->zone, &row->name);

        ngx_http_cg_prom_label(o, f, k);

        if (fam->frac == 0) {
            ngx_http_cg_out_printf(o, "} %uL\n", n);

        } else if (fam->frac == 2) {
            ngx_http_cg_out_printf(o, "} %.2f\n", v);

        } else {
            ngx_http_cg_out_printf(o, "} %.3f\n", v);
        }
    }
}


/* a client's request (j == 0) or upstream (1) time summary */

static void
ngx_http_cg_prom_time_row(ngx_http_cg_out_t *o,
    const ngx_http_cg_prom_step_t *s, ngx_http_cg_row_t *row)
{
    double       v;
    uint64_t     n;
    ngx_uint_t   j;
    cg_stats_t  *st;

    j = s->arg;
    st = &row->rec->stats;
    n = j ? st->upstream : cg_stats_responses(st);
    v = (double) (j ? st->upstream_ms : st->time_ms) / 1000;

    ngx_http_cg_out_printf(o,
        "clientguard_%s_time_seconds{zone=\"%V\",client=\"%V\","
        "quantile=\"0.99\"} %.3f\n"
        "clientguard_%s_time_seconds_sum{zone=\"%V\",client=\"%V\"}"
        " %.3f\n"
        "clientguard_%s_time_seconds_count{zone=\"%V\","
        "client=\"%V\"} %uL\n",
        j ? "upstream" : "request", o->zone, &row->name,
        (double) cg_stats_quantile_ms(j ? st->uhist : st->hist, 0.99)
        / 1000,
        j ? "upstream" : "request", o->zone, &row->name,
        ngx_http_cg_out_finite(v),
        j ? "upstream" : "request", o->zone, &row->name, n);
}


/* a client's limits, figure j of the view: capacity, used, ... */

static void
ngx_http_cg_prom_quota_row(ngx_http_cg_out_t *o,
    const ngx_http_cg_prom_step_t *s, ngx_http_cg_row_t *row)
{
    double                     v;
    ngx_uint_t                 j, k;
    ngx_http_cg_limit_view_t  *lv;

    j = s->arg;

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

        ngx_http_cg_out_printf(o,
            "%s{zone=\"%V\",client=\"%V\",limit=\"%ui\","
            "type=\"%s\",window_seconds=\"%uD\"} %.3f\n",
            s->name, o->zone, &row->name, k + 1,
            lv->lim.type == CG_LIMIT_RATE ? "rate" : "window",
            lv->lim.period / 1000, ngx_http_cg_out_finite(v));
    }
}


#define ngx_http_cg_prom_fam_step(f)                                         \
    { ngx_http_cg_prom_fam_row, f, NULL, NULL, NULL }

#define ngx_http_cg_prom_quota_step(j, name, help)                           \
    { ngx_http_cg_prom_quota_row, j, "clientguard_quota_" name, "gauge", help }


static const ngx_http_cg_prom_step_t  ngx_http_cg_prom_steps[] = {
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_REQUESTS),
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_OUTCOMES),
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_CLASSES),
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_CODES),
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_RATE),
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_ERRORS),
    { ngx_http_cg_prom_time_row, 0, "clientguard_request_time_seconds",
      "summary", "Request time (p99 of recent requests)." },
    { ngx_http_cg_prom_time_row, 1, "clientguard_upstream_time_seconds",
      "summary", "Upstream response time (p99 of recent requests)." },
    ngx_http_cg_prom_quota_step(0, "limit_requests",
        "Requests a limit admits (capacity: burst+1 for a rate)."),
    ngx_http_cg_prom_quota_step(1, "used_requests",
        "Requests of the capacity in use now."),
    ngx_http_cg_prom_quota_step(2, "remaining_requests",
        "Requests the limit still admits now."),
    ngx_http_cg_prom_quota_step(3, "utilisation_ratio",
        "Used over capacity, 0..1."),
    ngx_http_cg_prom_quota_step(4, "near_limit",
        "1 when utilisation is at least 0.8."),
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_RATIO),
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_FLAGGED)
};


/* the figures of this worker's Redis link, with client_guard_redis */

static void
ngx_http_cg_prom_redis(ngx_http_cg_out_t *o, ngx_array_t *errs,
    time_t loaded)
{
    ngx_http_cg_prom_one_t  rs[] = {
        { "clientguard_redis_up", "gauge",
          "1 while this worker's Redis link is ready.", NULL,
          ngx_http_cg_redis_link_state() == NGX_HTTP_CG_LINK_READY },
        { "clientguard_redis_nodes", "gauge",
          "Nodes seen alive through Redis heartbeats.", NULL,
          (int64_t) ngx_http_cg_redis_live_nodes() },
        { "clientguard_redis_quota_version", "gauge",
          "Version of the quota definitions read from Redis.", NULL,
          (int64_t) ngx_http_cg_redis_version() },
        { "clientguard_redis_quota_sync_age_seconds", "gauge",
          "Age of the quota definitions read from Redis; -1 before the "
          "first read.", NULL, loaded ? ngx_time() - loaded : -1 },
        { "clientguard_redis_quota_errors", "gauge",
          "Bad quota definitions found in Redis.", NULL,
          errs ? (int64_t) errs->nelts : 0 }
    };

    ngx_http_cg_prom_ones(o, NULL, rs, sizeof(rs) / sizeof(rs[0]));
}


void
ngx_http_cg_family(ngx_http_cg_out_t *o, const char *name, const char *type,
    const char *help)
{
    size_t  len;

    len = ngx_strlen(name);

    /* OpenMetrics names a counter family without its "_total" sample */

    if (o->format == NGX_HTTP_CG_FMT_OPENM && type[0] == 'c'
        && len > 6 && ngx_strcmp(name + len - 6, "_total") == 0)
    {
        len -= 6;
    }

    ngx_http_cg_out_printf(o, "# HELP %*s %s\n# TYPE %*s %s\n",
                           len, name, help, len, name, type);
}


/* the zone's figures and this worker's Redis link: the step before all */

static void
ngx_http_cg_prom_head(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp)
{
    ngx_http_cg_main_conf_t  *mcf;

    ngx_http_cg_prom_one_t  zs[] = {
        { "clientguard_zone_size_bytes", "gauge",
          "Size of the shared memory zone.", "", rp->health.size },
        { "clientguard_zone_used_bytes", "gauge",
          "Bytes of the zone in use (whole pages).", "", rp->health.used },
        { "clientguard_clients", "gauge",
          "Clients tracked in the zone.", "", rp->health.clients },
        { "clientguard_evictions_total", "counter",
          "Client records evicted to make room.", "", rp->health.evictions },
        { "clientguard_alloc_failures_total", "counter",
          "Client records that could not be allocated.", "",
          rp->health.alloc_failures },
        { "clientguard_unidentified_requests_total", "counter",
          "Requests no rule identified, by reason.",
          ",reason=\"no_rule\"", rp->health.unidentified[1] },
        { "clientguard_unidentified_requests_total", NULL, NULL,
          ",reason=\"invalid_name\"", rp->health.unidentified[2] },
        { "clientguard_deploys_total", "counter",
          "Deploy markers recorded.", "", rp->area.local.total }
    };

    ngx_http_cg_prom_ones(o, o->zone, zs, sizeof(zs) / sizeof(zs[0]));

    mcf = ngx_http_get_module_main_conf(o->r, ngx_http_client_guard_module);

    if (mcf->redis) {
        ngx_http_cg_prom_redis(o, ngx_http_cg_redis_errors(),
                               ngx_http_cg_redis_loaded());
    }
}


/*
 * Resumable: o->step 0 is the head, then each of ngx_http_cg_prom_steps
 * (its HELP and TYPE lines at row 0, then the rows from o->row on).
 */

ngx_int_t
ngx_http_cg_status_prom(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp)
{
    const ngx_http_cg_prom_fam_t   *fam;
    const ngx_http_cg_prom_step_t  *s;

    if (o->step == 0) {
        o->zone = ngx_http_cg_out_escape(o->r->pool, &rp->zone->name);
        ngx_http_cg_prom_head(o, rp);
        o->step = 1;
        o->row = 0;
    }

    for ( /* void */ ;
         o->step <= sizeof(ngx_http_cg_prom_steps)
                    / sizeof(ngx_http_cg_prom_steps[0]);
         o->step++, o->row = 0)
    {
        s = &ngx_http_cg_prom_steps[o->step - 1];

        if (o->row == 0 && s->name) {
            ngx_http_cg_family(o, s->name, s->type, s->help);

        } else if (o->row == 0) {
            fam = &ngx_http_cg_prom_fams[s->arg];
            ngx_http_cg_family(o, fam->name, fam->type, fam->help);
        }

        while (o->row < rp->shown) {
            s->row(o, s, ngx_http_cg_report_row(rp, o->row++));

            if (ngx_http_cg_out_full(o, rp->shown)) {
                return NGX_AGAIN;
            }
        }
    }

    if (o->format == NGX_HTTP_CG_FMT_OPENM) {
        ngx_http_cg_out_printf(o, "# EOF\n");
    }

    return NGX_OK;
}
