
/*
 * Copyright (C) client guard authors
 *
 * The answer of the status with "scope=cluster".  See
 * cg_status_cluster_answer.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_out.h"
#include "cg_status_json.h"
#include "cg_status_prom.h"
#include "cg_status_cluster_answer.h"


/*
 * The cluster in Prometheus' formats: gauges under clientguard_cluster_*,
 * since a sum over the nodes reporting drops when one goes stale (it is not
 * a counter); per-node counters stay what each node exports.
 */

static void
ngx_http_cg_cluster_prom(ngx_http_cg_out_t *o, cg_topn_t *top,
    ngx_uint_t fresh, ngx_uint_t stale)
{
    double                         rates[3];
    ngx_uint_t                     i, k;
    ngx_http_cg_figures_t         *f;
    ngx_http_cg_cluster_client_t  *c;

    static const char  *types[CG_ANOMALY_N] = {
        "surge", "errors_4xx", "errors_5xx"
    };

    ngx_http_cg_family(o, "clientguard_cluster_nodes", "gauge",
                       "Nodes publishing to Redis, by state.");
    ngx_http_cg_out_printf(o,
        "clientguard_cluster_nodes{state=\"reporting\"} %ui\n"
        "clientguard_cluster_nodes{state=\"stale\"} %ui\n",
        fresh, stale);

    ngx_http_cg_family(o, "clientguard_cluster_requests", "gauge",
                       "Requests of a client summed over the reporting "
                       "nodes.");

    for (i = 0; i < top->n; i++) {
        c = (ngx_http_cg_cluster_client_t *) top->heap[i];

        ngx_http_cg_out_printf(o,
            "clientguard_cluster_requests{client=\"%V\"} %uL\n",
            &c->name, c->figures.requests);
    }

    ngx_http_cg_family(o, "clientguard_cluster_outcomes", "gauge",
                       "Rejections summed over the reporting nodes.");

    for (i = 0; i < top->n; i++) {
        c = (ngx_http_cg_cluster_client_t *) top->heap[i];

        ngx_http_cg_out_printf(o,
            "clientguard_cluster_outcomes{client=\"%V\",outcome=\"%V\"}"
            " %uL\n"
            "clientguard_cluster_outcomes{client=\"%V\",outcome=\"%V\"}"
            " %uL\n",
            &c->name, &ngx_http_cg_outcomes[NGX_HTTP_CG_REJECTED].name,
            c->figures.rejected,
            &c->name, &ngx_http_cg_outcomes[NGX_HTTP_CG_REJECTED_DRY_RUN].name,
            c->figures.rejected_dry_run);
    }

    ngx_http_cg_family(o, "clientguard_cluster_responses", "gauge",
                       "Responses by status class summed over the reporting "
                       "nodes.");

    for (i = 0; i < top->n; i++) {
        c = (ngx_http_cg_cluster_client_t *) top->heap[i];

        for (k = 0; k < CG_STATS_NCLASSES; k++) {
            ngx_http_cg_out_printf(o,
                "clientguard_cluster_responses{client=\"%V\","
                "status_class=\"%uixx\"} %uL\n",
                &c->name, k + 1, c->figures.classes[k]);
        }
    }

    ngx_http_cg_family(o, "clientguard_cluster_request_rate", "gauge",
                       "Requests per second summed over the reporting "
                       "nodes.");

    for (i = 0; i < top->n; i++) {
        c = (ngx_http_cg_cluster_client_t *) top->heap[i];
        f = &c->figures;

        rates[0] = f->rate_10s;
        rates[1] = f->rate_1m;
        rates[2] = f->rate_5m;

        for (k = 0; k < 3; k++) {
            ngx_http_cg_out_printf(o,
                "clientguard_cluster_request_rate{client=\"%V\","
                "window=\"%s\"} %.3f\n",
                &c->name, ngx_http_cg_window_names[k],
                ngx_http_cg_out_finite(rates[k]));
        }
    }

    ngx_http_cg_family(o, "clientguard_cluster_anomaly_flagged", "gauge",
                       "1 while a client is flagged in the cluster (by a "
                       "node, or by the nodes' sums).");

    for (i = 0; i < top->n; i++) {
        c = (ngx_http_cg_cluster_client_t *) top->heap[i];

        for (k = 0; k < CG_ANOMALY_N; k++) {
            ngx_http_cg_out_printf(o,
                "clientguard_cluster_anomaly_flagged{client=\"%V\","
                "type=\"%s\"} %d\n",
                &c->name, types[k], c->figures.since[k] ? 1 : 0);
        }
    }

    ngx_http_cg_family(o, "clientguard_cluster_anomaly_ratio", "gauge",
                       "The cluster's rate of a client over the sum of the "
                       "nodes' baselines.");

    for (i = 0; i < top->n; i++) {
        c = (ngx_http_cg_cluster_client_t *) top->heap[i];

        ngx_http_cg_out_printf(o,
            "clientguard_cluster_anomaly_ratio{client=\"%V\",type=\"surge\"}"
            " %.2f\n", &c->name, ngx_http_cg_out_finite(c->view.ratio));
    }

    ngx_http_cg_family(o, "clientguard_cluster_quota_utilisation_ratio",
                       "gauge", "The highest use of a limit of the client's "
                       "quota a node reports (the cluster's count under "
                       "Redis), 0..1.");

    for (i = 0; i < top->n; i++) {
        c = (ngx_http_cg_cluster_client_t *) top->heap[i];

        ngx_http_cg_out_printf(o,
            "clientguard_cluster_quota_utilisation_ratio{client=\"%V\"}"
            " %.3f\n",
            &c->name, ngx_http_cg_out_finite(c->figures.utilisation));
    }

    if (o->format == NGX_HTTP_CG_FMT_OPENM) {
        ngx_http_cg_out_printf(o, "# EOF\n");
    }
}


static void
ngx_http_cg_cluster_client(ngx_http_cg_out_t *o,
    ngx_http_cg_cluster_view_t *v, ngx_http_cg_cluster_client_t *c)
{
    ngx_uint_t              k, n;
    ngx_http_cg_figures_t  *f;

    f = &c->figures;

    ngx_http_cg_out_printf(o,
        "{\"name\":\"%V\",\"nodes\":%ui,\"requests_total\":%uL,"
        "\"rejected_total\":%uL,\"rejected_dry_run_total\":%uL,"
        "\"responses_by_class_total\":{\"1xx\":%uL,\"2xx\":%uL,"
        "\"3xx\":%uL,\"4xx\":%uL,\"5xx\":%uL},"
        "\"rate_10s_per_s\":%.3f,\"rate_1m_per_s\":%.3f,"
        "\"rate_5m_per_s\":%.3f,\"rejected_rate_10s_per_s\":%.3f,"
        "\"error_rate_10s_per_s\":%.3f,\"error_5xx_rate_10s_per_s\":%.3f,",
        &c->name, c->nodes, f->requests, f->rejected, f->rejected_dry_run,
        f->classes[0], f->classes[1], f->classes[2], f->classes[3],
        f->classes[4], ngx_http_cg_out_finite(f->rate_10s),
        ngx_http_cg_out_finite(f->rate_1m), ngx_http_cg_out_finite(f->rate_5m),
        ngx_http_cg_out_finite(f->rejected_rate_10s),
        ngx_http_cg_out_finite(f->error_rate_10s),
        ngx_http_cg_out_finite(f->error5_rate_10s));

    ngx_http_cg_out_printf(o,
        "\"quota\":{\"utilisation\":%.3f,\"near_limit\":%s},"
        "\"flagged_on_nodes\":{\"surge\":%ui,\"errors_4xx\":%ui,"
        "\"errors_5xx\":%ui},",
        ngx_http_cg_out_finite(f->utilisation),
        f->utilisation >= NGX_HTTP_CG_NEAR_LIMIT ? "true" : "false",
        c->flagged_on[0], c->flagged_on[1], c->flagged_on[2]);

    ngx_http_cg_json_anomalies(o, v->an, &c->view, f->since);

    if (c->history) {
        n = NGX_HTTP_CG_CLUSTER_STEPS;

        /* from the oldest step any node has */

        for (k = 0; k < n - 1; k++) {
            if (c->history[k * CG_HISTORY_SERIES]
                || c->history[k * CG_HISTORY_SERIES + 1])
            {
                break;
            }
        }

        ngx_http_cg_json_steps(o, v->an->step_ms,
                               (uint32_t) (v->query->now_ms
                                           / v->an->step_ms),
                               n - k, &c->history[k * CG_HISTORY_SERIES],
                               NULL);
    }

    ngx_http_cg_out_printf(o, "}");
}


static void
ngx_http_cg_cluster_json(ngx_http_cg_out_t *o,
    ngx_http_cg_cluster_view_t *v, ngx_uint_t fresh, ngx_uint_t stale)
{
    ngx_uint_t                     i, j, k, nmovers;
    cg_topn_t                     *top;
    ngx_http_cg_query_t           *q;
    ngx_http_cg_status_area_t      area;
    ngx_http_cg_cluster_node_t    *nd;
    ngx_http_cg_cluster_client_t  *c, *e, *movers[NGX_HTTP_CG_MOVERS];

    q = v->query;
    top = &v->top;
    nd = v->nodes.elts;

    ngx_http_cg_out_printf(o,
        "{\"schema_version\":%d,\"module\":\"client_guard\","
        "\"scope\":\"cluster\",\"time_ms\":%L,\"nodes_reporting\":%ui,"
        "\"nodes_stale\":%ui,\"nodes\":[",
        NGX_HTTP_CG_SCHEMA_VERSION, q->now_ms, fresh, stale);

    for (i = 0; i < v->nodes.nelts; i++) {
        ngx_http_cg_out_printf(o,
            "%s{\"node\":\"%V\",\"published_ms_ago\":%L,"
            "\"stale\":%s,\"clients_tracked\":%ui}",
            i ? "," : "", ngx_http_cg_out_escape(o->r->pool, &nd[i].name),
            nd[i].time_ms ? q->now_ms - nd[i].time_ms : -1,
            nd[i].stale ? "true" : "false", nd[i].clients);
    }

    ngx_http_cg_out_printf(o, "],");

    ngx_http_cg_json_settings(o, v->an);

    ngx_http_cg_out_printf(o,
        ",\"query\":{\"sort\":\"%s\",\"limit\":%ui,"
        "\"client\":\"%V\",\"history\":%s},\"clients_total\":%ui,"
        "\"clients_shown\":%ui,\"clients\":[",
        cg_query_sorts[q->sort], q->limit, &q->client,
        q->history ? "true" : "false", v->total, top->n);

    for (i = 0; i < top->n; i++) {
        if (i) {
            ngx_http_cg_out_printf(o, ",");
        }

        ngx_http_cg_cluster_client(o, v,
                                (ngx_http_cg_cluster_client_t *) top->heap[i]);
    }

    /* top movers: the highest ratios of the cluster, of all clients */

    e = v->clients.elts;
    nmovers = 0;

    for (i = 0; i < v->merged; i++) {
        c = &e[i];

        if (v->an->off || c->view.young || c->view.ratio <= 1.0
            || c->view.rate < c->view.base_rate + v->an->min_rate)
        {
            continue;
        }

        for (j = 0; j < nmovers; j++) {
            if (c->view.ratio > movers[j]->view.ratio) {
                break;
            }
        }

        if (j == NGX_HTTP_CG_MOVERS) {
            continue;
        }

        if (nmovers < NGX_HTTP_CG_MOVERS) {
            nmovers++;
        }

        for (k = nmovers - 1; k > j; k--) {
            movers[k] = movers[k - 1];
        }

        movers[j] = c;
    }

    ngx_http_cg_out_printf(o, "],\"top_movers\":[");

    for (i = 0; i < nmovers; i++) {
        ngx_http_cg_out_printf(o,
            "%s{\"name\":\"%V\",\"ratio\":%.2f,\"rate_10s_per_s\":%.3f,"
            "\"baseline_per_s\":%.3f}",
            i ? "," : "", &movers[i]->name,
            ngx_http_cg_out_finite(movers[i]->view.ratio),
            ngx_http_cg_out_finite(movers[i]->view.rate),
            ngx_http_cg_out_finite(movers[i]->view.base_rate));
    }

    ngx_http_cg_out_printf(o, "]");

    /* the events: every node has them, from Redis */

    ngx_http_cg_status_area_copy(v->zone, &area);
    ngx_http_cg_json_events(o, &area);

    ngx_http_cg_out_printf(o, "}\n");
}


ngx_int_t
ngx_http_cg_cluster_send(ngx_http_request_t *r, ngx_uint_t format,
    ngx_http_cg_cluster_view_t *v)
{
    ngx_uint_t                   i, fresh, stale;
    ngx_http_cg_out_t            o;
    ngx_http_cg_cluster_node_t  *nd;

    nd = v->nodes.elts;
    fresh = 0;
    stale = 0;

    for (i = 0; i < v->nodes.nelts; i++) {
        if (nd[i].stale) {
            stale++;

        } else {
            fresh++;
        }
    }

    ngx_http_cg_out_init(&o, r, format);

    if (format == NGX_HTTP_CG_FMT_JSON) {
        ngx_http_cg_cluster_json(&o, v, fresh, stale);

    } else {
        ngx_http_cg_cluster_prom(&o, &v->top, fresh, stale);
    }

    return ngx_http_cg_out_send(&o, NGX_HTTP_OK);
}
