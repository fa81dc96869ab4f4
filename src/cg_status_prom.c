
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
#include "cg_redis_restore.h"
#include "cg_status_publish.h"
#include "cg_status_prom.h"


/* a sample of the zone or of the node, in a family of its own or not */

typedef struct {
    const char                *name;
    const char                *type;
    const char                *help;       /* NULL: the family above */
    const char                *labels;     /* after zone=; NULL: no label */
    int64_t                    value;      /* unless "frac": */
    ngx_uint_t                 frac;       /* 1: "real", 3 decimals */
    double                     real;
} ngx_http_cg_prom_one_t;

#define ngx_http_cg_prom_int(v)   (int64_t) (v), 0, 0
#define ngx_http_cg_prom_real(v)  0, 1, (double) (v)


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
    NGX_HTTP_CG_PROM_FLAGGED,
    NGX_HTTP_CG_PROM_RATIO,
    NGX_HTTP_CG_PROM_BASE_RATE,
    NGX_HTTP_CG_PROM_SHARE,
    NGX_HTTP_CG_PROM_BASE_SHARE,
    NGX_HTTP_CG_PROM_YOUNG
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
      "Requests offered (passed and rejected) per second over a window "
      "of the client's history; 10s: the detector's current rate.",
      "window", ngx_http_cg_window_names, 3, 3 },
    { "clientguard_anomaly_flagged", "gauge",
      "1 while the detector flags the client: a surge of its rate, a "
      "spike of its 4xx or 5xx share.",
      "type", ngx_http_cg_anomaly_types, 3, 0 },
    { "clientguard_anomaly_ratio", "gauge",
      "Now over the client's baseline: its rate (surge), its error share "
      "(errors_4xx, errors_5xx; a baseline under 1% counts as 1%); 0 while "
      "the client is young or the detector is off.",
      "type", ngx_http_cg_anomaly_types, 3, 2 },
    { "clientguard_detector_baseline_rate", "gauge",
      "The detector's baseline of the client's rate, requests per second "
      "(median of its one-minute bins, surges left out).",
      NULL, NULL, 1, 3 },
    { "clientguard_detector_error_share", "gauge",
      "Share of the client's answers with this status class now (the "
      "last two steps), 0..1.",
      "status_class", ngx_http_cg_err_classes, 2, 4 },
    { "clientguard_detector_baseline_error_share", "gauge",
      "The detector's baseline of that share, 0..1.",
      "status_class", ngx_http_cg_err_classes, 2, 4 },
    { "clientguard_detector_young", "gauge",
      "1 while the client has too little history for a baseline: the "
      "detector flags nothing for it yet.",
      NULL, NULL, 1, 0 }
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
            ngx_http_cg_out_printf(o, "%s{zone=\"%V\"%s} ",
                                   s[i].name, z, s[i].labels);

        } else {
            ngx_http_cg_out_printf(o, "%s ", s[i].name);
        }

        if (s[i].frac) {
            ngx_http_cg_out_printf(o, "%.3f\n", s[i].real);

        } else {
            ngx_http_cg_out_printf(o, "%L\n", s[i].value);
        }
    }
}


/* the value of family f for a client; k: the value of the family's label */

static double
ngx_http_cg_prom_value(ngx_uint_t f, ngx_http_cg_report_t *rp,
    ngx_http_cg_row_t *row, ngx_uint_t k, uint64_t *count)
{
    cg_stats_t            *st;
    cg_history_view_t     *v;
    ngx_http_cg_record_t  *rec;

    rec = row->rec;
    st = &rec->stats;
    v = &row->view;

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

    case NGX_HTTP_CG_PROM_FLAGGED:
        *count = st->history.since[k] ? 1 : 0;
        break;

    case NGX_HTTP_CG_PROM_RATIO:

        /* no baseline to be over: not the 1000 of a division by nothing */

        if (v->young || rp->an.off) {
            return 0;
        }

        if (k == 0) {
            return ngx_http_cg_out_finite(v->ratio);
        }

        return ngx_http_cg_out_finite(v->share[k - 1]
                                      / ngx_max(v->base_share[k - 1], 0.01));

    case NGX_HTTP_CG_PROM_BASE_RATE:
        return ngx_http_cg_out_finite(v->base_rate);

    case NGX_HTTP_CG_PROM_SHARE:
        return ngx_http_cg_out_finite(v->share[k]);

    case NGX_HTTP_CG_PROM_BASE_SHARE:
        return ngx_http_cg_out_finite(v->base_share[k]);

    default: /* NGX_HTTP_CG_PROM_YOUNG */
        *count = v->young;
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
    const ngx_http_cg_prom_step_t *s, ngx_http_cg_report_t *rp,
    ngx_http_cg_row_t *row);

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
    const ngx_http_cg_prom_step_t *s, ngx_http_cg_report_t *rp,
    ngx_http_cg_row_t *row)
{
    double                         v;
    uint64_t                       n;
    ngx_uint_t                     f, k;
    const ngx_http_cg_prom_fam_t  *fam;

    f = s->arg;
    fam = &ngx_http_cg_prom_fams[f];

    for (k = 0; k < fam->n; k++) {
        n = 0;
        v = ngx_http_cg_prom_value(f, rp, row, k, &n);

        ngx_http_cg_out_printf(o, "%s{zone=\"%V\",client=\"%V\"",
                               fam->name, o->zone, &row->name);

        ngx_http_cg_prom_label(o, f, k);

        switch (fam->frac) {

        case 0:
            ngx_http_cg_out_printf(o, "} %uL\n", n);
            break;

        case 2:
            ngx_http_cg_out_printf(o, "} %.2f\n", v);
            break;

        case 3:
            ngx_http_cg_out_printf(o, "} %.3f\n", v);
            break;

        default:
            ngx_http_cg_out_printf(o, "} %.4f\n", v);
            break;
        }
    }
}


/*
 * A client's error answers per second by class, over the detector's
 * window (the last two steps, as clientguard_request_rate{window="10s"})
 * and over 5 minutes
 */

static void
ngx_http_cg_prom_error_row(ngx_http_cg_out_t *o,
    const ngx_http_cg_prom_step_t *s, ngx_http_cg_report_t *rp,
    ngx_http_cg_row_t *row)
{
    double      v;
    ngx_uint_t  k, w;

    for (k = 0; k < 2; k++) {
        for (w = 0; w < 2; w++) {
            v = w ? cg_history_rate(&row->rec->stats.history,
                                    CG_HISTORY_4XX + k, rp->query->now_ms,
                                    300000, &rp->an)
                  : row->view.error_rate[k];

            ngx_http_cg_out_printf(o,
                "clientguard_error_rate{zone=\"%V\",client=\"%V\","
                "status_class=\"%s\",window=\"%s\"} %.3f\n",
                o->zone, &row->name, ngx_http_cg_err_classes[k],
                w ? "5m" : "10s", ngx_http_cg_out_finite(v));
        }
    }
}


/* a bound in ms as the "le" of a bucket, in seconds: 0.001, 1.0, 2.5 */

static u_char *
ngx_http_cg_prom_le(u_char *p, uint32_t ms)
{
    u_char  *frac;

    p = ngx_sprintf(p, "%uD.", ms / 1000);
    frac = p;
    p = ngx_sprintf(p, "%03uD", ms % 1000);

    /* no trailing zero, but one digit at least */

    while (p > frac + 1 && p[-1] == '0') {
        p--;
    }

    return p;
}


/*
 * A client's request times as a histogram: the buckets are the running
 * sums of the record's, +Inf is every answer; in seconds.
 */

static void
ngx_http_cg_prom_latency_row(ngx_http_cg_out_t *o,
    const ngx_http_cg_prom_step_t *s, ngx_http_cg_report_t *rp,
    ngx_http_cg_row_t *row)
{
    u_char       le[NGX_INT32_LEN + 8], *p;
    uint64_t     sum;
    ngx_uint_t   b;
    cg_stats_t  *st;

    st = &row->rec->stats;
    sum = 0;

    for (b = 0; b < CG_STATS_NBUCKETS - 1; b++) {
        sum += st->latency[b];
        p = ngx_http_cg_prom_le(le, cg_stats_bounds_ms[b]);

        ngx_http_cg_out_printf(o,
            "clientguard_request_duration_seconds_bucket{zone=\"%V\","
            "client=\"%V\",le=\"%*s\"} %uL\n",
            o->zone, &row->name, (size_t) (p - le), le, sum);
    }

    ngx_http_cg_out_printf(o,
        "clientguard_request_duration_seconds_bucket{zone=\"%V\","
        "client=\"%V\",le=\"+Inf\"} %uL\n"
        "clientguard_request_duration_seconds_sum{zone=\"%V\","
        "client=\"%V\"} %.3f\n"
        "clientguard_request_duration_seconds_count{zone=\"%V\","
        "client=\"%V\"} %uL\n",
        o->zone, &row->name, cg_stats_responses(st),
        o->zone, &row->name,
        ngx_http_cg_out_finite((double) st->time_ms / 1000),
        o->zone, &row->name, cg_stats_responses(st));
}


/* a client's upstream times: their sum and count, no quantile */

static void
ngx_http_cg_prom_upstream_row(ngx_http_cg_out_t *o,
    const ngx_http_cg_prom_step_t *s, ngx_http_cg_report_t *rp,
    ngx_http_cg_row_t *row)
{
    cg_stats_t  *st;

    st = &row->rec->stats;

    ngx_http_cg_out_printf(o,
        "clientguard_upstream_duration_seconds_sum{zone=\"%V\","
        "client=\"%V\"} %.3f\n"
        "clientguard_upstream_duration_seconds_count{zone=\"%V\","
        "client=\"%V\"} %uD\n",
        o->zone, &row->name,
        ngx_http_cg_out_finite((double) st->upstream_ms / 1000),
        o->zone, &row->name, st->upstream);
}


/* a client's limits, figure j of the view: capacity, used, ... */

static void
ngx_http_cg_prom_quota_row(ngx_http_cg_out_t *o,
    const ngx_http_cg_prom_step_t *s, ngx_http_cg_report_t *rp,
    ngx_http_cg_row_t *row)
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
    { ngx_http_cg_prom_latency_row, 0,
      "clientguard_request_duration_seconds", "histogram",
      "Request time ($request_time) of the client's answers, the module's "
      "own rejections excluded." },
    { ngx_http_cg_prom_upstream_row, 0,
      "clientguard_upstream_duration_seconds", "summary",
      "Upstream response time of the client's answers that went upstream "
      "(summed over the tries of one request)." },
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_RATE),
    { ngx_http_cg_prom_error_row, 0, "clientguard_error_rate", "gauge",
      "Error answers per second by status class over a window (10s: the "
      "detector's, as clientguard_request_rate); the module's own "
      "rejections excluded." },
    ngx_http_cg_prom_quota_step(0, "limit_requests",
        "Requests a limit admits (capacity: burst+1 for a rate)."),
    ngx_http_cg_prom_quota_step(1, "used_requests",
        "Requests of the capacity in use now (the cluster's count under "
        "Redis)."),
    ngx_http_cg_prom_quota_step(2, "remaining_requests",
        "Requests the limit still admits now."),
    ngx_http_cg_prom_quota_step(3, "utilisation_ratio",
        "Used over capacity, 0..1."),
    ngx_http_cg_prom_quota_step(4, "near_limit",
        "1 when utilisation is at least 0.8."),
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_FLAGGED),
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_RATIO),
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_BASE_RATE),
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_SHARE),
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_BASE_SHARE),
    ngx_http_cg_prom_fam_step(NGX_HTTP_CG_PROM_YOUNG)
};


/*
 * The figures of this worker's Redis link, with client_guard_redis; and,
 * when this zone is the one published, how old this node's publication
 * for the cluster view is.
 */

static void
ngx_http_cg_prom_redis(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp,
    ngx_http_cg_main_conf_t *mcf, ngx_array_t *errs, time_t loaded)
{
    ngx_uint_t            n;
    ngx_http_cg_zone_t  **zp;

    ngx_http_cg_prom_one_t  rs[] = {
        { "clientguard_redis_up", "gauge",
          "1 while this worker's Redis link is ready; 0: its requests are "
          "decided by the failure policy.", NULL,
          ngx_http_cg_prom_int(ngx_http_cg_redis_link_state()
                               == NGX_HTTP_CG_LINK_READY) },
        { "clientguard_redis_nodes", "gauge",
          "Nodes seen alive through Redis heartbeats.", NULL,
          ngx_http_cg_prom_int(ngx_http_cg_redis_live_nodes()) },
        { "clientguard_redis_quota_version", "gauge",
          "Version of the quota definitions read from Redis.", NULL,
          ngx_http_cg_prom_int(ngx_http_cg_redis_version()) },
        { "clientguard_redis_quota_sync_age_seconds", "gauge",
          "Age of the quota definitions read from Redis; -1 before the "
          "first read.", NULL,
          ngx_http_cg_prom_int(loaded ? ngx_time() - loaded : -1) },
        { "clientguard_redis_quota_errors", "gauge",
          "Bad quota definitions found in Redis.", NULL,
          ngx_http_cg_prom_int(errs ? errs->nelts : 0) },
        { "clientguard_redis_definitions_lost_total", "counter",
          "Times this worker found Redis without the quota definitions it "
          "had read (the version key gone); they stayed in force and were "
          "written back by one node.", NULL,
          ngx_http_cg_prom_int(ngx_http_cg_redis_restore_info()->losses) },
        { "clientguard_redis_definitions_restored_total", "counter",
          "Quotas and API keys this worker wrote back into a Redis that had "
          "lost them.", NULL,
          ngx_http_cg_prom_int(ngx_http_cg_redis_restore_info()->quotas_total
                               + ngx_http_cg_redis_restore_info()->keys_total)
        },
        { "clientguard_status_publish_interval_seconds", "gauge",
          "How often this node publishes its figures for the cluster view "
          "(client_guard_status_publish); 0: off.", NULL,
          ngx_http_cg_prom_real(mcf->publish.interval / 1000.0) },
        { "clientguard_status_publish_age_seconds", "gauge",
          "Age of this node's last publication for the cluster view; -1 "
          "before the first.  Over 3 intervals the view calls it stale.",
          NULL, -1, rp->area.publish_ms != 0,
          (rp->query->now_ms - (int64_t) rp->area.publish_ms) / 1000.0 }
    };

    zp = mcf->zones.elts;
    n = sizeof(rs) / sizeof(rs[0]);

    /* the publication is of the first zone; so is its age */

    if (mcf->publish.interval == 0 || zp[0] != rp->zone) {
        n--;
    }

    ngx_http_cg_prom_ones(o, NULL, rs, n);
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

    /* an info family: OpenMetrics has the type, without "_info" */

    if (ngx_strcmp(type, "info") == 0) {

        if (o->format != NGX_HTTP_CG_FMT_OPENM) {
            type = "gauge";

        } else if (len > 5 && ngx_strcmp(name + len - 5, "_info") == 0) {
            len -= 5;
        }
    }

    ngx_http_cg_out_printf(o, "# HELP %*s %s\n# TYPE %*s %s\n",
                           len, name, help, len, name, type);
}


/*
 * The node, the zone's figures, the detector's settings and this worker's
 * Redis link: the step before all
 */

static void
ngx_http_cg_prom_head(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp)
{
    ngx_str_t                 node;
    ngx_http_cg_main_conf_t  *mcf;

    ngx_http_cg_prom_one_t  zs[] = {
        { "clientguard_zone_size_bytes", "gauge",
          "Size of the shared memory zone.", "",
          ngx_http_cg_prom_int(rp->health.size) },
        { "clientguard_zone_used_bytes", "gauge",
          "Bytes of the zone in use (whole pages).", "",
          ngx_http_cg_prom_int(rp->health.used) },
        { "clientguard_clients", "gauge",
          "Clients tracked in the zone.", "",
          ngx_http_cg_prom_int(rp->health.clients) },
        { "clientguard_clients_shown", "gauge",
          "Clients in this answer's per-client series (limit=, client=).",
          "", ngx_http_cg_prom_int(rp->shown) },
        { "clientguard_evictions_total", "counter",
          "Client records evicted to make room.", "",
          ngx_http_cg_prom_int(rp->health.evictions) },
        { "clientguard_alloc_failures_total", "counter",
          "Client records that could not be allocated.", "",
          ngx_http_cg_prom_int(rp->health.alloc_failures) },
        { "clientguard_unidentified_requests_total", "counter",
          "Requests no rule identified, by reason.", ",reason=\"no_rule\"",
          ngx_http_cg_prom_int(rp->health.unidentified[1]) },
        { "clientguard_unidentified_requests_total", NULL, NULL,
          ",reason=\"invalid_name\"",
          ngx_http_cg_prom_int(rp->health.unidentified[2]) },
        { "clientguard_unidentified_requests_total", NULL, NULL,
          ",reason=\"unknown_api_key\"",
          ngx_http_cg_prom_int(rp->health.unidentified[3]) },
        { "clientguard_deploys_total", "counter",
          "Deploy markers recorded.", "",
          ngx_http_cg_prom_int(rp->area.local.total) }
    };

    ngx_http_cg_prom_one_t  an[] = {
        { "clientguard_anomaly_enabled", "gauge",
          "1 unless client_guard_anomaly is off.", NULL,
          ngx_http_cg_prom_int(!rp->an.off) },
        { "clientguard_anomaly_threshold_ratio", "gauge",
          "A surge is flagged at this many times the baseline rate "
          "(client_guard_anomaly ratio=).", NULL,
          ngx_http_cg_prom_real(rp->an.ratio) },
        { "clientguard_anomaly_min_rate", "gauge",
          "...and at least this many requests per second over it "
          "(min_rate=).", NULL, ngx_http_cg_prom_real(rp->an.min_rate) },
        { "clientguard_anomaly_threshold_error_share", "gauge",
          "An error spike is flagged at this much over the baseline share "
          "(errors=).", NULL, ngx_http_cg_prom_real(rp->an.error_share) },
        { "clientguard_anomaly_min_error_rate", "gauge",
          "...and at least this many errors per second over it "
          "(min_errors=).", NULL, ngx_http_cg_prom_real(rp->an.error_rate) },
        { "clientguard_anomaly_step_seconds", "gauge",
          "The step of the clients' history (step=).", NULL,
          ngx_http_cg_prom_real(rp->an.step_ms / 1000.0) }
    };

    mcf = ngx_http_get_module_main_conf(o->r, ngx_http_client_guard_module);

    /* the node's name as the cluster view knows it */

    node = mcf->node;

    ngx_http_cg_family(o, "clientguard_node_info", "info",
                       "The node's name (client_guard_node, else the host "
                       "name), always 1.");
    ngx_http_cg_out_printf(o, "clientguard_node_info{node=\"%V\"} 1\n",
                           ngx_http_cg_out_escape(o->r->pool, &node));

    ngx_http_cg_prom_ones(o, o->zone, zs, sizeof(zs) / sizeof(zs[0]));
    ngx_http_cg_prom_ones(o, NULL, an, sizeof(an) / sizeof(an[0]));

    if (mcf->redis) {
        ngx_http_cg_prom_redis(o, rp, mcf, ngx_http_cg_redis_errors(),
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
            s->row(o, s, rp, ngx_http_cg_report_row(rp, o->row++));

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
