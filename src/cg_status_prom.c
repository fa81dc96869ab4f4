
/*
 * Copyright (C) client guard authors
 *
 * cg_status_prom: the status report of one node for Prometheus.
 *
 * Owns: the Prometheus text and OpenMetrics answers of the status handler,
 * and ngx_http_cg_family(), the HELP and TYPE lines of a metric family in
 * either format (the cluster view uses it too).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_common.h"
#include "cg_status_int.h"


static const char  *ngx_http_cg_outcome_names[] = {
    "none", "passed", "rejected", "rejected_dry_run", "bypassed",
    "unidentified"
};


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


void
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


ngx_int_t
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
