
/*
 * Copyright (C) client guard authors
 *
 * The status report of one node in JSON.  See cg_status_json.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_common.h"
#include "cg_redis_quota.h"
#include "cg_redis_restore.h"
#include "cg_status_json.h"


static const char  *ngx_http_cg_mode_names[] = {
    "enforce", "dry_run", "off"
};


static void
ngx_http_cg_json_redis(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp)
{
    time_t                     loaded;
    ngx_uint_t                 i, state;
    ngx_array_t               *errs;
    ngx_http_cg_main_conf_t   *mcf;
    ngx_http_cg_redis_error_t  *e;
    ngx_http_cg_restore_info_t *ri;

    static const char  *states[] = {
        "idle", "connecting", "handshake", "ready", "backoff"
    };

    static const char  *policies[] = { "local", "open", "closed" };

    mcf = ngx_http_get_module_main_conf(o->r, ngx_http_client_guard_module);

    if (mcf->redis == NULL) {
        ngx_http_cg_out_printf(o, "\"redis\":{\"configured\":false}},");
        return;
    }

    /*
     * This worker's view: the link, how often it was lost (each loss puts
     * the failure policy in force), and how old the quota definitions are.
     */

    state = ngx_http_cg_redis_link_state();
    loaded = ngx_http_cg_redis_loaded();

    ngx_http_cg_out_printf(o,
        "\"redis\":{\"configured\":true,\"link_state\":\"%s\","
        "\"failure_policy\":\"%s\",\"policy_in_force\":%s,"
        "\"quota_version\":%uL,\"live_nodes\":%ui,"
        "\"link_outages\":%ui,\"quota_sync_age_s\":%T,"
        "\"stats_published_ms_ago\":%L,",
        state < 5 ? states[state] : "unknown",
        mcf->redis->lease.policy < 3 ? policies[mcf->redis->lease.policy]
                                     : "unknown",
        state == NGX_HTTP_CG_LINK_READY ? "false" : "true",
        ngx_http_cg_redis_version(), ngx_http_cg_redis_live_nodes(),
        ngx_http_cg_redis_outages(),
        loaded ? ngx_time() - loaded : (time_t) -1,
        rp->area.publish_ms
            ? rp->query->now_ms - (int64_t) rp->area.publish_ms
            : (int64_t) -1);

    /* Redis found without the definitions, and who put them back */

    ri = ngx_http_cg_redis_restore_info();

    ngx_http_cg_out_printf(o, "\"definitions_lost\":%ui,"
                           "\"last_restore\":", ri->losses);

    if (ri->losses) {
        ngx_http_cg_out_printf(o,
            "{\"at\":%T,\"by\":\"%V\",\"quotas\":%ui,"
            "\"api_keys\":%ui,\"kept\":%ui},",
            ri->at, ngx_http_cg_out_escape(o->r->pool, &ri->by),
            ri->quotas, ri->keys, ri->kept);

    } else {
        ngx_http_cg_out_printf(o, "null,");
    }

    ngx_http_cg_out_printf(o, "\"quota_errors\":[");

    errs = ngx_http_cg_redis_errors();

    if (errs) {
        e = errs->elts;

        for (i = 0; i < errs->nelts && i < NGX_HTTP_CG_REDIS_ERRORS_MAX; i++)
        {
            ngx_http_cg_out_printf(o,
                "%s{\"key\":\"%V\",\"field\":\"%V\","
                "\"value\":\"%V\",\"error\":\"%V\"}",
                i ? "," : "",
                ngx_http_cg_out_escape(o->r->pool, &e[i].key),
                ngx_http_cg_out_escape(o->r->pool, &e[i].field),
                ngx_http_cg_out_escape(o->r->pool, &e[i].value),
                ngx_http_cg_out_escape(o->r->pool, &e[i].error));
        }
    }

    ngx_http_cg_out_printf(o, "]}},");
}


static double
ngx_http_cg_json_rate(cg_history_t *h, int series, int64_t now, uint32_t ms,
    const cg_anomaly_t *an)
{
    return ngx_http_cg_out_finite(cg_history_rate(h, series, now, ms, an));
}


/*
 * What the detector makes of a client: young (no baseline yet), watching,
 * or flagged; and the anomalies under way, with since when (epoch s).
 */

void
ngx_http_cg_json_anomalies(ngx_http_cg_out_t *o, const cg_anomaly_t *an,
    cg_history_view_t *v, uint32_t *since)
{
    int  i, n;

    static const char  *types[CG_ANOMALY_N] = {
        "surge", "errors_4xx", "errors_5xx"
    };

    for (i = 0, n = 0; i < CG_ANOMALY_N; i++) {
        n += (since[i] != 0);
    }

    ngx_http_cg_out_printf(o,
        "\"detector\":{\"state\":\"%s\",\"rate_per_s\":%.3f,"
        "\"baseline_per_s\":%.3f,\"ratio\":%.2f,"
        "\"error_share\":{\"4xx\":%.4f,\"5xx\":%.4f},"
        "\"baseline_error_share\":{\"4xx\":%.4f,\"5xx\":%.4f}},"
        "\"anomalies\":[",
        an->off ? "off" : (v->young ? "young" : (n ? "flagged" : "watching")),
        ngx_http_cg_out_finite(v->rate), ngx_http_cg_out_finite(v->base_rate),
        ngx_http_cg_out_finite(v->ratio), ngx_http_cg_out_finite(v->share[0]),
        ngx_http_cg_out_finite(v->share[1]),
        ngx_http_cg_out_finite(v->base_share[0]),
        ngx_http_cg_out_finite(v->base_share[1]));

    for (i = 0, n = 0; i < CG_ANOMALY_N; i++) {
        if (since[i] == 0) {
            continue;
        }

        if (i == CG_ANOMALY_SURGE) {
            ngx_http_cg_out_printf(o,
                "%s{\"type\":\"surge\",\"ratio\":%.2f,\"since_s\":%uD,"
                "\"current_per_s\":%.3f,\"baseline_per_s\":%.3f}",
                n++ ? "," : "", ngx_http_cg_out_finite(v->ratio), since[i],
                ngx_http_cg_out_finite(v->rate),
                ngx_http_cg_out_finite(v->base_rate));
            continue;
        }

        ngx_http_cg_out_printf(o,
            "%s{\"type\":\"%s\",\"share\":%.4f,\"baseline_share\":%.4f,"
            "\"since_s\":%uD,\"current_per_s\":%.3f}",
            n++ ? "," : "", types[i],
            ngx_http_cg_out_finite(v->share[i - 1]),
            ngx_http_cg_out_finite(v->base_share[i - 1]), since[i],
            ngx_http_cg_out_finite(v->error_rate[i - 1]));
    }

    ngx_http_cg_out_printf(o, "]");
}


/* "anomaly":{...}: the detector's settings */

void
ngx_http_cg_json_settings(ngx_http_cg_out_t *o, const cg_anomaly_t *an)
{
    ngx_http_cg_out_printf(o,
        "\"anomaly\":{\"enabled\":%s,\"ratio\":%.2f,\"min_rate_per_s\":%.2f,"
        "\"error_share\":%.2f,\"min_error_rate_per_s\":%.2f,"
        "\"step_s\":%uD}",
        an->off ? "false" : "true", (double) an->ratio,
        (double) an->min_rate, (double) an->error_share,
        (double) an->error_rate, an->step_ms / 1000);
}


/*
 * The client's history: counts per step, oldest first, the current step
 * (so far) last; the series named as in docs/status.md.
 */

static void
ngx_http_cg_json_history(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp,
    cg_history_t *h)
{
    uint32_t  counts[(CG_HISTORY_SLOTS + 1) * CG_HISTORY_SERIES];
    uint32_t  flagged[CG_HISTORY_SLOTS + 1];
    uint32_t  i, k, n, age;

    /* oldest first, the current step last */

    n = ngx_min(h->slot - h->first, CG_HISTORY_SLOTS);

    for (i = 0; i <= n; i++) {
        age = n - i;
        flagged[i] = age ? (uint32_t) cg_history_was_flagged(h, age)
                         : (h->since[0] || h->since[1] || h->since[2]);

        for (k = 0; k < CG_HISTORY_SERIES; k++) {
            counts[i * CG_HISTORY_SERIES + k] = cg_history_at(h, k, age);
        }
    }

    ngx_http_cg_json_steps(o, rp->an.step_ms, h->slot, n + 1, counts,
                           flagged);
}


/*
 * A history: "steps" counts per step and series, oldest first, the
 * current step (so far) last, the series named as in docs/status.md;
 * which steps were recorded while flagged (NULL: not known).
 */

void
ngx_http_cg_json_steps(ngx_http_cg_out_t *o, uint32_t step_ms, uint32_t slot,
    uint32_t steps, uint32_t *counts, uint32_t *flagged)
{
    int          s;
    uint32_t     i, *c;

    static const char  *series[CG_HISTORY_SERIES] = {
        "offered", "rejected", "4xx", "5xx"
    };

    ngx_http_cg_out_printf(o,
        ",\"history\":{\"step_s\":%uD,\"last_step_start_ms\":%uL,"
        "\"steps\":%uD",
        step_ms / 1000, (uint64_t) slot * step_ms, steps);

    if (flagged) {
        ngx_http_cg_out_printf(o, ",\"flagged\":[");

        for (i = 0; i < steps; i++) {
            ngx_http_cg_out_printf(o, "%s%uD", i ? "," : "", flagged[i]);
        }

        ngx_http_cg_out_printf(o, "]");
    }

    for (s = 0; s < CG_HISTORY_SERIES; s++) {
        ngx_http_cg_out_printf(o, ",\"%s\":[", series[s]);

        for (i = 0; i < steps; i++) {
            ngx_http_cg_out_printf(o, "%s%uD", i ? "," : "",
                                   counts[i * CG_HISTORY_SERIES + s]);
        }

        ngx_http_cg_out_printf(o, "]");
    }

    /* admitted: offered less rejected (each rounded as stored) */

    ngx_http_cg_out_printf(o, ",\"admitted\":[");

    for (i = 0; i < steps; i++) {
        c = counts + i * CG_HISTORY_SERIES;
        ngx_http_cg_out_printf(o, "%s%uD", i ? "," : "",
                               c[CG_HISTORY_OFFERED] > c[CG_HISTORY_REJECTED]
                               ? c[CG_HISTORY_OFFERED] - c[CG_HISTORY_REJECTED]
                               : 0);
    }

    ngx_http_cg_out_printf(o, "]}");
}


void
ngx_http_cg_status_json_client(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp,
    ngx_http_cg_row_t *row)
{
    int64_t                    now;
    uint32_t                   i;
    uint64_t                   n;
    cg_stats_t                *st;
    cg_history_t              *h;
    const cg_anomaly_t        *an;
    ngx_http_cg_record_t      *rec;
    ngx_http_cg_limit_view_t  *lv;

    rec = row->rec;
    st = &rec->stats;
    n = cg_stats_responses(st);

    ngx_http_cg_out_printf(o,
        "{\"name\":\"%V\",\"created_s\":%uD,\"last_seen_ms_ago\":%M,"
        "\"requests_total\":%uL,\"passed_total\":%uL,"
        "\"rejected_total\":%uL,\"rejected_dry_run_total\":%uL,"
        "\"bypassed_total\":%uL,",
        &row->name, rec->created,
        (int32_t) ((uint32_t) ngx_current_msec - rec->last) > 0
            ? (ngx_msec_t) ((uint32_t) ngx_current_msec - rec->last) : 0,
        rec->counters.requests, rec->counters.outcome[NGX_HTTP_CG_PASSED],
        rec->counters.outcome[NGX_HTTP_CG_REJECTED],
        rec->counters.outcome[NGX_HTTP_CG_REJECTED_DRY_RUN],
        rec->counters.outcome[NGX_HTTP_CG_BYPASSED]);

    h = &st->history;
    now = rp->query->now_ms;
    an = &rp->an;

    ngx_http_cg_out_printf(o,
        "\"rate_10s_per_s\":%.3f,\"rate_1m_per_s\":%.3f,"
        "\"rate_5m_per_s\":%.3f,\"rejected_rate_10s_per_s\":%.3f,"
        "\"error_rate_10s_per_s\":%.3f,\"error_rate_5m_per_s\":%.3f,"
        "\"error_5xx_rate_10s_per_s\":%.3f,"
        "\"error_5xx_rate_5m_per_s\":%.3f,",
        ngx_http_cg_out_finite(row->view.rate),
        ngx_http_cg_json_rate(h, CG_HISTORY_OFFERED, now, 60000, an),
        ngx_http_cg_json_rate(h, CG_HISTORY_OFFERED, now, 300000, an),
        ngx_http_cg_json_rate(h, CG_HISTORY_REJECTED, now, 2 * an->step_ms,
                              an),
        ngx_http_cg_out_finite(row->view.error_rate[0]),
        ngx_http_cg_json_rate(h, CG_HISTORY_4XX, now, 300000, an),
        ngx_http_cg_out_finite(row->view.error_rate[1]),
        ngx_http_cg_json_rate(h, CG_HISTORY_5XX, now, 300000, an));

    ngx_http_cg_out_printf(o,
        "\"responses_total\":%uL,\"responses_by_class_total\":{"
        "\"1xx\":%uL,\"2xx\":%uL,\"3xx\":%uL,\"4xx\":%uL,\"5xx\":%uL},"
        "\"responses_by_code_total\":{",
        n, st->classes[0], st->classes[1], st->classes[2], st->classes[3],
        st->classes[4]);

    for (i = 0; i < CG_STATS_NCODES; i++) {
        ngx_http_cg_out_printf(o, "%s\"%uD\":%uD", i ? "," : "",
                               (uint32_t) cg_stats_codes[i], st->codes[i]);
    }

    ngx_http_cg_out_printf(o,
        "},\"request_time_mean_s\":%.4f,\"request_time_p99_s\":%.3f,"
        "\"upstream_responses_total\":%uD,"
        "\"upstream_time_mean_s\":%.4f,\"upstream_time_p99_s\":%.3f,",
        n ? ngx_http_cg_out_finite((double) st->time_ms / n / 1000) : 0.0,
        (double) cg_stats_quantile_ms(st->hist, 0.99) / 1000,
        st->upstream,
        st->upstream
            ? ngx_http_cg_out_finite((double) st->upstream_ms / st->upstream
                                     / 1000)
            : 0.0,
        (double) cg_stats_quantile_ms(st->uhist, 0.99) / 1000);

    if (!row->has_quota) {
        ngx_http_cg_out_printf(o, "\"quota\":null,");

    } else {
        ngx_http_cg_out_printf(o,
            "\"quota\":{\"mode\":\"%s\",\"source\":\"%s\","
            "\"near_limit\":%s,\"utilisation\":%.3f,\"limits\":[",
            row->mode < 3 ? ngx_http_cg_mode_names[row->mode] : "unknown",
            row->redis_quota ? "redis" : "config",
            row->util >= NGX_HTTP_CG_NEAR_LIMIT ? "true" : "false",
            ngx_http_cg_out_finite(row->util));

        for (i = 0; i < row->nlimits; i++) {
            lv = &row->limits[i];

            ngx_http_cg_out_printf(o,
                "%s{\"type\":\"%s\",\"limit\":%uL,\"window_s\":%uL,"
                "\"burst\":%uL,\"capacity\":%uL,\"used\":%uL,"
                "\"remaining\":%uL,\"utilisation\":%.3f,\"near_limit\":%s,"
                "\"reset_ms\":%uL}",
                i ? "," : "",
                lv->lim.type == CG_LIMIT_RATE ? "rate" : "window",
                lv->lim.count, (uint64_t) lv->lim.period / 1000,
                lv->lim.type == CG_LIMIT_RATE ? lv->lim.burst : 0,
                lv->capacity, lv->used, lv->remaining,
                ngx_http_cg_out_finite(lv->util),
                lv->util >= NGX_HTTP_CG_NEAR_LIMIT ? "true" : "false",
                lv->reset);
        }

        ngx_http_cg_out_printf(o, "]},");
    }


    ngx_http_cg_json_anomalies(o, &rp->an, &row->view, row->figures.since);

    if (rp->query->history) {
        ngx_http_cg_json_history(o, rp, h);
    }

    ngx_http_cg_out_printf(o, "}");
}


/* ,"incidents_open":N,"incidents":[...]: the area's, oldest first */

static void
ngx_http_cg_json_incidents(ngx_http_cg_out_t *o,
    ngx_http_cg_status_area_t *area)
{
    ngx_uint_t               i, n, open;
    ngx_http_cg_incident_t  *all[2 * NGX_HTTP_CG_NINCIDENTS], *in;

    n = ngx_http_cg_incidents(area, all);

    for (i = 0, open = 0; i < n; i++) {
        open += (all[i]->state != NGX_HTTP_CG_INCIDENT_RESOLVED);
    }

    ngx_http_cg_out_printf(o, ",\"incidents_open\":%ui,\"incidents\":[",
                           open);

    for (i = 0; i < n; i++) {
        in = all[i];

        ngx_http_cg_out_printf(o,
            "%s{\"id\":\"%uL\",\"time_ms\":%uL,\"updated_ms\":%uL,"
            "\"title\":\"%*s\",\"description\":\"%*s\",\"state\":\"%s\","
            "\"eta_ms\":%uL,\"source\":\"%s\"}",
            i ? "," : "", in->id, in->id, in->updated_ms,
            (size_t) in->title_len, in->title, (size_t) in->text_len,
            in->text, cg_event_states[in->state], in->eta_ms,
            (in >= area->incidents.list
             && in < area->incidents.list + NGX_HTTP_CG_NINCIDENTS)
            ? "local" : "redis");
    }

    ngx_http_cg_out_printf(o, "]");
}


/* up to the first client */

static void
ngx_http_cg_json_head(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp)
{
    ngx_str_t                   host;
    ngx_http_cg_query_t        *q;
    ngx_http_cg_zone_health_t  *h;

    h = &rp->health;
    q = rp->query;
    host = rp->node;

    ngx_http_cg_out_printf(o,
        "{\"schema_version\":%d,\"module\":\"client_guard\","
        "\"node\":\"%V\",\"zone\":\"%V\",\"scope\":\"node\","
        "\"time_ms\":%L,",
        NGX_HTTP_CG_SCHEMA_VERSION,
        ngx_http_cg_out_escape(o->r->pool, &host),
        ngx_http_cg_out_escape(o->r->pool, &rp->zone->name), q->now_ms);

    ngx_http_cg_out_printf(o,
        "\"health\":{\"zone_size_bytes\":%uL,\"zone_used_bytes\":%uL,"
        "\"zone_pages_total\":%ui,\"zone_pages_free\":%ui,"
        "\"clients_tracked\":%ui,\"clients_max\":%ui,"
        "\"evictions_total\":%uL,\"evictions_by_tier\":{\"new\":%uL,"
        "\"returning\":%uL,\"limited\":%uL,\"own\":%uL},"
        "\"alloc_failures_total\":%uL,"
        "\"unidentified_total\":{\"no_rule\":%uL,\"invalid_name\":%uL,"
        "\"unknown_api_key\":%uL},"
        "\"record_bytes\":%uz,",
        h->size, h->used, h->pages, h->pages_free, h->clients,
        rp->zone->max_clients, h->evictions,
        h->evicted[NGX_HTTP_CG_TIER_NEW],
        h->evicted[NGX_HTTP_CG_TIER_RETURNING],
        h->evicted[NGX_HTTP_CG_TIER_LIMITED],
        h->evicted[NGX_HTTP_CG_TIER_OWN],
        h->alloc_failures,
        h->unidentified[1], h->unidentified[2], h->unidentified[3],
        ngx_http_cg_record_size);

    ngx_http_cg_json_redis(o, rp);

    ngx_http_cg_json_settings(o, &rp->an);

    ngx_http_cg_out_printf(o,
        ",\"query\":{\"sort\":\"%s\",\"limit\":%ui,\"client\":\"%V\","
        "\"history\":%s},"
        "\"clients_total\":%ui,\"clients_shown\":%ui,\"clients\":[",
        cg_query_sorts[q->sort], q->limit, &q->client,
        q->history ? "true" : "false", rp->nrows, rp->shown);
}


/* after the last client */

static void
ngx_http_cg_json_tail(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp)
{
    ngx_uint_t            i;
    ngx_http_cg_mover_t  *m;

    ngx_http_cg_out_printf(o, "],\"top_movers\":[");

    for (i = 0; i < rp->nmovers; i++) {
        m = &rp->movers[i];

        ngx_http_cg_out_printf(o,
            "%s{\"name\":\"%V\",\"ratio\":%.2f,\"rate_10s_per_s\":%.3f,"
            "\"baseline_per_s\":%.3f}",
            i ? "," : "", &m->name, ngx_http_cg_out_finite(m->ratio),
            ngx_http_cg_out_finite(m->rate),
            ngx_http_cg_out_finite(m->base_rate));
    }

    ngx_http_cg_out_printf(o, "]");

    ngx_http_cg_json_events(o, &rp->area);

    ngx_http_cg_out_printf(o, "}\n");
}


/*
 * ,"deploys_total":N,"deploys":[...],"incidents_open":N,"incidents":[...]
 * of an area's copy
 */

void
ngx_http_cg_json_events(ngx_http_cg_out_t *o, ngx_http_cg_status_area_t *area)
{
    ngx_http_cg_out_printf(o, ",\"deploys_total\":%uL,\"deploys\":[",
                           area->local.total);

    ngx_http_cg_json_deploys(o, area, NULL);

    ngx_http_cg_out_printf(o, "]");

    ngx_http_cg_json_incidents(o, area);
}


void
ngx_http_cg_json_deploys(ngx_http_cg_out_t *o, ngx_http_cg_status_area_t *area,
    ngx_str_t *team)
{
    uint64_t                first;
    ngx_uint_t              i, j, k, n, nd;
    ngx_uint_t              src[2 * NGX_HTTP_CG_NDEPLOYS];
    ngx_http_cg_deploy_t   *all[2 * NGX_HTTP_CG_NDEPLOYS];
    ngx_http_cg_deploy_t   *d;
    ngx_http_cg_deploys_t  *local, *redis;

    local = &area->local;
    redis = &area->redis;

    /*
     * Oldest first: the markers posted here, and those read from Redis
     * (posted on any node, or added with XADD) that are not among them.
     */

    n = ngx_min(local->total, NGX_HTTP_CG_NDEPLOYS);
    first = local->total - n;
    nd = 0;

    for (i = 0; i < n; i++) {
        all[nd] = &local->marks[(first + i) % NGX_HTTP_CG_NDEPLOYS];
        src[nd++] = 0;
    }

    for (i = 0; i < redis->total && i < NGX_HTTP_CG_NDEPLOYS; i++) {
        d = &redis->marks[i];

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

    for (i = 0, k = 0; i < nd; i++) {
        d = all[i];

        if (team
            && (d->team_len != team->len
                || ngx_memcmp(d->team, team->data, team->len) != 0))
        {
            continue;
        }

        ngx_http_cg_out_printf(o, "%s{\"time_ms\":%uL,\"team\":\"%*s\","
                               "\"note\":\"%*s\",\"source\":\"%s\"}",
                               k++ ? "," : "", d->time_ms,
                               (size_t) d->team_len, d->team,
                               (size_t) d->note_len, d->note,
                               src[i] ? "redis" : "local");
    }
}


/* resumable: the head, the clients from o->row on, the tail */

ngx_int_t
ngx_http_cg_status_json(ngx_http_cg_out_t *o, ngx_http_cg_report_t *rp)
{
    if (o->step == 0) {
        ngx_http_cg_json_head(o, rp);
        o->step = 1;
    }

    while (o->row < rp->shown) {

        if (o->row) {
            ngx_http_cg_out_printf(o, ",");
        }

        ngx_http_cg_status_json_client(o, rp,
                                       ngx_http_cg_report_row(rp, o->row++));

        if (ngx_http_cg_out_full(o, rp->shown)) {
            return NGX_AGAIN;
        }
    }

    ngx_http_cg_json_tail(o, rp);

    return NGX_OK;
}
