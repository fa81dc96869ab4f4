
/*
 * Copyright (C) client guard authors
 *
 * The status with "scope=cluster".  See cg_status_cluster.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_cluster.h"
#include "cg_out.h"
#include "cg_topn.h"
#include "cg_report.h"
#include "cg_status_json.h"
#include "cg_status_prom.h"
#include "cg_status_publish.h"
#include "cg_status_cluster.h"


typedef struct {
    ngx_str_t                 name;
    int64_t                   time_ms;     /* its last publication */
    ngx_uint_t                clients;
    unsigned                  stale:1;
} ngx_http_cg_cluster_node_t;


typedef struct {
    ngx_http_request_t       *r;           /* NULL once the client left */
    ngx_http_cleanup_t       *cln;
    ngx_http_cg_query_t      *query;
    ngx_http_cg_zone_t       *zone;        /* its events */
    const cg_anomaly_t       *an;
    ngx_uint_t                format;
    ngx_uint_t                pending;
    ngx_uint_t                next;        /* node of the next reply */
    ngx_array_t               nodes;       /* ngx_http_cg_cluster_node_t */
    ngx_array_t               clients;     /* ngx_http_cg_cluster_client_t */
    ngx_uint_t                merged;      /* clients, once merged */
    ngx_uint_t                total;       /* those the query asks for */
    cg_topn_t                 top;         /* the clients shown, ranked */
    ngx_uint_t                failed;
} ngx_http_cg_cluster_t;


/* the clients whose history one HMGET asks for, at most */
#define NGX_HTTP_CG_CLUSTER_SHOWN  1000


static void ngx_http_cg_cluster_answer(ngx_http_cg_cluster_t *cl,
    ngx_int_t status);
static void ngx_http_cg_cluster_history_done(ngx_http_cg_link_t *link,
    redisReply *reply, void *data);


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


/*
 * A reply has come: 1 when the client left meanwhile (the state is freed
 * with the last reply due), so that the reply is only dropped.
 */

static ngx_uint_t
ngx_http_cg_cluster_gone(ngx_http_cg_cluster_t *cl)
{
    cl->pending--;

    if (cl->r) {
        return 0;
    }

    if (cl->pending == 0) {
        ngx_free(cl);
    }

    return 1;
}


static int ngx_libc_cdecl
ngx_http_cg_cluster_name_cmp(const void *one, const void *two)
{
    const ngx_http_cg_cluster_client_t  *a = one, *b = two;

    return ngx_memn2cmp(a->name.data, b->name.data, a->name.len, b->name.len);
}


/* one entry per client: sorted by name, the nodes' figures merged */

static ngx_uint_t
ngx_http_cg_cluster_merge(ngx_http_cg_cluster_t *cl)
{
    ngx_uint_t                     i, n, merged;
    ngx_http_cg_cluster_client_t  *e, *m;

    e = cl->clients.elts;
    n = cl->clients.nelts;

    ngx_qsort(e, n, sizeof(ngx_http_cg_cluster_client_t),
              ngx_http_cg_cluster_name_cmp);

    merged = 0;

    for (i = 0; i < n; i++) {
        m = &e[merged];

        if (merged && m[-1].name.len == e[i].name.len
            && ngx_memcmp(m[-1].name.data, e[i].name.data, e[i].name.len)
               == 0)
        {
            ngx_http_cg_cluster_add(&m[-1], &e[i]);
            continue;
        }

        if (m != &e[i]) {
            *m = e[i];
        }

        ngx_http_cg_cluster_start(m);
        merged++;
    }

    for (i = 0; i < merged; i++) {
        ngx_http_cg_cluster_judge(&e[i], cl->an,
                                  (uint32_t) (cl->query->now_ms / 1000));
    }

    return merged;
}


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
ngx_http_cg_cluster_client(ngx_http_cg_out_t *o, ngx_http_cg_cluster_t *cl,
    ngx_http_cg_cluster_client_t *c)
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

    ngx_http_cg_json_anomalies(o, cl->an, &c->view, f->since);

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

        ngx_http_cg_json_steps(o, cl->an->step_ms,
                               (uint32_t) (cl->query->now_ms
                                           / cl->an->step_ms),
                               n - k, &c->history[k * CG_HISTORY_SERIES],
                               NULL);
    }

    ngx_http_cg_out_printf(o, "}");
}


static void
ngx_http_cg_cluster_json(ngx_http_cg_out_t *o, ngx_http_cg_cluster_t *cl,
    ngx_uint_t fresh, ngx_uint_t stale)
{
    ngx_uint_t                     i, j, k, nmovers;
    cg_topn_t                     *top;
    ngx_http_cg_query_t           *q;
    ngx_http_cg_status_area_t      area;
    ngx_http_cg_cluster_node_t    *nd;
    ngx_http_cg_cluster_client_t  *c, *e, *movers[NGX_HTTP_CG_MOVERS];

    q = cl->query;
    top = &cl->top;
    nd = cl->nodes.elts;

    ngx_http_cg_out_printf(o,
        "{\"schema_version\":%d,\"module\":\"client_guard\","
        "\"scope\":\"cluster\",\"time_ms\":%L,\"nodes_reporting\":%ui,"
        "\"nodes_stale\":%ui,\"nodes\":[",
        NGX_HTTP_CG_SCHEMA_VERSION, q->now_ms, fresh, stale);

    for (i = 0; i < cl->nodes.nelts; i++) {
        ngx_http_cg_out_printf(o,
            "%s{\"node\":\"%V\",\"published_ms_ago\":%L,"
            "\"stale\":%s,\"clients_tracked\":%ui}",
            i ? "," : "", ngx_http_cg_out_escape(o->r->pool, &nd[i].name),
            nd[i].time_ms ? q->now_ms - nd[i].time_ms : -1,
            nd[i].stale ? "true" : "false", nd[i].clients);
    }

    ngx_http_cg_out_printf(o, "],");

    ngx_http_cg_json_settings(o, cl->an);

    ngx_http_cg_out_printf(o,
        ",\"query\":{\"sort\":\"%s\",\"limit\":%ui,"
        "\"client\":\"%V\",\"history\":%s},\"clients_total\":%ui,"
        "\"clients_shown\":%ui,\"clients\":[",
        cg_query_sorts[q->sort], q->limit, &q->client,
        q->history ? "true" : "false", cl->total, top->n);

    for (i = 0; i < top->n; i++) {
        if (i) {
            ngx_http_cg_out_printf(o, ",");
        }

        ngx_http_cg_cluster_client(o, cl,
                                (ngx_http_cg_cluster_client_t *) top->heap[i]);
    }

    /* top movers: the highest ratios of the cluster, of all clients */

    e = cl->clients.elts;
    nmovers = 0;

    for (i = 0; i < cl->merged; i++) {
        c = &e[i];

        if (cl->an->off || c->view.young || c->view.ratio <= 1.0
            || c->view.rate < c->view.base_rate + cl->an->min_rate)
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

    ngx_http_cg_status_area_copy(cl->zone, &area);
    ngx_http_cg_json_events(o, &area);

    ngx_http_cg_out_printf(o, "}\n");
}


/* every publication read: the clients merged and ranked */

static void
ngx_http_cg_cluster_rank(ngx_http_cg_cluster_t *cl)
{
    size_t                         lens[2 + 2 * NGX_HTTP_CG_CLUSTER_SHOWN];
    u_char                        *key;
    ngx_uint_t                     i, n, k, argc;
    const char                    *argv[2 + 2 * NGX_HTTP_CG_CLUSTER_SHOWN];
    cg_topn_item_t               **slots;
    ngx_http_cg_query_t           *q;
    ngx_http_cg_status_redis_t    *sr;
    ngx_http_cg_cluster_node_t    *nd;
    ngx_http_cg_cluster_client_t  *e;

    q = cl->query;

    n = ngx_http_cg_cluster_merge(cl);
    e = cl->clients.elts;
    cl->merged = n;

    slots = ngx_palloc(cl->r->pool, (ngx_min(q->limit, n) + 1)
                                    * sizeof(cg_topn_item_t *));
    if (slots == NULL) {
        ngx_http_cg_cluster_answer(cl, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cg_topn_init(&cl->top, slots, ngx_min(q->limit, n));
    cl->total = 0;

    for (i = 0; i < n; i++) {

        if (q->client.len
            && (e[i].name.len != q->client.len
                || ngx_memcmp(e[i].name.data, q->client.data, q->client.len)
                   != 0))
        {
            continue;
        }

        e[i].item.key = ngx_http_cg_sort_key(&e[i].figures, q->sort);
        e[i].item.name = e[i].name.data;
        e[i].item.len = e[i].name.len;

        (void) cg_topn_add(&cl->top, &e[i].item);
        cl->total++;
    }

    cg_topn_sort(&cl->top);

    if (!q->history || cl->top.n == 0) {
        ngx_http_cg_cluster_answer(cl, NGX_OK);
        return;
    }

    /* the histories of the clients shown: HMGET, one per fresh node */

    sr = &ngx_http_cg_status_redis;
    nd = cl->nodes.elts;
    cl->next = 0;

    argc = 2 + ngx_min(cl->top.n, NGX_HTTP_CG_CLUSTER_SHOWN);

    argv[0] = "HMGET";
    lens[0] = 5;

    for (k = 2; k < argc; k++) {
        e = (ngx_http_cg_cluster_client_t *) cl->top.heap[k - 2];
        argv[k] = (const char *) e->name.data;
        lens[k] = e->name.len;
    }

    for (i = 0; i < cl->nodes.nelts; i++) {
        key = ngx_pnalloc(cl->r->pool, sr->history.len + nd[i].name.len);
        if (key == NULL) {
            break;
        }

        ngx_memcpy(ngx_cpymem(key, sr->history.data, sr->history.len),
                   nd[i].name.data, nd[i].name.len);

        argv[1] = (const char *) key;
        lens[1] = sr->history.len + nd[i].name.len;

        if (nd[i].stale
            || ngx_http_cg_route_send(sr->link, argc, argv, lens,
                                     ngx_http_cg_cluster_history_done, cl)
               != NGX_OK)
        {
            continue;
        }

        cl->pending++;
    }

    if (cl->pending == 0) {
        ngx_http_cg_cluster_answer(cl, NGX_OK);
    }
}


static void
ngx_http_cg_cluster_history_done(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_cluster_t  *cl = data;

    size_t                         i;
    redisReply                    *v;
    ngx_http_cg_cluster_client_t  *e;

    if (ngx_http_cg_cluster_gone(cl)) {
        return;
    }

    if (reply && reply->type == REDIS_REPLY_ARRAY) {

        for (i = 0; i < reply->elements && i < cl->top.n; i++) {
            v = reply->element[i];

            if (v->type != REDIS_REPLY_STRING) {
                continue;
            }

            e = (ngx_http_cg_cluster_client_t *) cl->top.heap[i];

            if (ngx_http_cg_cluster_history(e, (u_char *) v->str,
                                            (u_char *) v->str + v->len,
                                            (uint32_t) (cl->query->now_ms
                                                        / cl->an->step_ms),
                                            cl->r->pool)
                == NGX_ERROR)
            {
                cl->failed = 1;
            }
        }
    }

    if (cl->pending == 0) {
        ngx_http_cg_cluster_answer(cl, cl->failed
                                       ? NGX_HTTP_INTERNAL_SERVER_ERROR
                                       : NGX_OK);
    }
}


static void
ngx_http_cg_cluster_answer(ngx_http_cg_cluster_t *cl, ngx_int_t status)
{
    ngx_int_t                      rc;
    ngx_uint_t                     i, fresh, stale;
    ngx_http_cg_out_t              o;
    ngx_connection_t              *c;
    ngx_http_request_t            *r;
    ngx_http_cg_cluster_node_t    *nd;

    r = cl->r;
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

    ngx_http_cg_out_init(&o, r, cl->format);

    if (cl->format == NGX_HTTP_CG_FMT_JSON) {
        ngx_http_cg_cluster_json(&o, cl, fresh, stale);

    } else {
        ngx_http_cg_cluster_prom(&o, &cl->top, fresh, stale);
    }

    rc = ngx_http_cg_out_send(&o, NGX_HTTP_OK);

done:

    ngx_free(cl);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_cg_cluster_stats_done(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_cluster_t  *cl = data;

    int                            len;
    u_char                        *p, *last, *t;
    size_t                         i;
    int64_t                        v[3];
    ngx_int_t                      n;
    ngx_uint_t                     k;
    redisReply                    *f, *val;
    ngx_http_cg_cluster_node_t    *nd;
    ngx_http_cg_cluster_client_t  *e;

    if (ngx_http_cg_cluster_gone(cl)) {
        return;
    }

    nd = &((ngx_http_cg_cluster_node_t *) cl->nodes.elts)[cl->next++];
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
        nd->stale = (v[2] == 0 || cl->query->now_ms - v[0] > 3 * v[2]);
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

        e = ngx_array_push(&cl->clients);
        if (e == NULL) {
            cl->failed = 1;
            break;
        }

        ngx_memzero(e, sizeof(ngx_http_cg_cluster_client_t));

        e->name.data = ngx_pnalloc(cl->r->pool, f->len);
        if (e->name.data == NULL) {
            cl->failed = 1;
            break;
        }

        /*
         * nodes publish normalised names only: anything else in the hash
         * was not written by a node, and is left out rather than printed
         */

        len = cg_name_normalize(e->name.data, (u_char *) f->str, f->len,
                                CG_NAME_MAX);

        if (len < 0 || (size_t) len != f->len
            || ngx_memcmp(e->name.data, f->str, f->len) != 0)
        {
            cl->clients.nelts--;
            continue;
        }

        e->name.len = f->len;

        p = (u_char *) val->str;
        ngx_http_cg_figures_parse(&e->figures, p, p + val->len);
    }

next:

    if (cl->pending == 0) {
        if (cl->failed) {
            ngx_http_cg_cluster_answer(cl, NGX_HTTP_BAD_GATEWAY);

        } else {
            ngx_http_cg_cluster_rank(cl);
        }
    }
}


static void
ngx_http_cg_cluster_nodes_done(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_cluster_t  *cl = data;

    size_t                       i, lens[2];
    u_char                      *key;
    ngx_int_t                    n;
    const char                  *argv[2];
    redisReply                  *m, *sc;
    ngx_http_cg_status_redis_t  *sr;
    ngx_http_cg_cluster_node_t  *nd;

    if (ngx_http_cg_cluster_gone(cl)) {
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_cg_cluster_answer(cl, NGX_HTTP_BAD_GATEWAY);
        return;
    }

    sr = &ngx_http_cg_status_redis;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        m = reply->element[i];
        sc = reply->element[i + 1];

        if (m->type != REDIS_REPLY_STRING || m->len == 0 || m->len > 256) {
            continue;
        }

        nd = ngx_array_push(&cl->nodes);
        key = ngx_pnalloc(cl->r->pool, m->len + sr->stats.len);

        if (nd == NULL || key == NULL) {
            cl->failed = 1;
            break;
        }

        ngx_memzero(nd, sizeof(ngx_http_cg_cluster_node_t));
        nd->name.data = key + sr->stats.len;
        nd->name.len = m->len;
        ngx_memcpy(key, sr->stats.data, sr->stats.len);
        ngx_memcpy(nd->name.data, m->str, m->len);

        if (sc->type == REDIS_REPLY_STRING) {
            n = ngx_atoi((u_char *) sc->str, sc->len);
            nd->time_ms = n == NGX_ERROR ? 0 : n;
        }

        argv[0] = "HGETALL";
        lens[0] = 7;
        argv[1] = (char *) key;
        lens[1] = sr->stats.len + m->len;

        if (ngx_http_cg_route_send(sr->link, 2, argv, lens,
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
        if (cl->failed) {
            ngx_http_cg_cluster_answer(cl, NGX_HTTP_BAD_GATEWAY);

        } else {
            ngx_http_cg_cluster_rank(cl);
        }
    }
}


ngx_int_t
ngx_http_cg_status_cluster(ngx_http_request_t *r, ngx_http_cg_zone_t *zone,
    const cg_anomaly_t *an, ngx_uint_t format, ngx_http_cg_query_t *query)
{
    size_t                       lens[5];
    const char                  *argv[5];
    ngx_http_cleanup_t          *cln;
    ngx_http_cg_cluster_t       *cl;
    ngx_http_cg_status_redis_t  *sr;

    sr = &ngx_http_cg_status_redis;

    if (!ngx_http_cg_route_ready(sr->link)) {
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
                          sizeof(ngx_http_cg_cluster_node_t)) != NGX_OK
        || ngx_array_init(&cl->clients, r->pool, 64,
                          sizeof(ngx_http_cg_cluster_client_t)) != NGX_OK)
    {
        ngx_free(cl);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cl->r = r;
    cl->query = query;
    cl->zone = zone;
    cl->an = an;
    cl->format = format;
    cl->cln = cln;

    argv[0] = "ZRANGE";
    argv[1] = (char *) sr->nodes.data;
    argv[2] = "0";
    argv[3] = "-1";
    argv[4] = "WITHSCORES";

    lens[0] = 6;
    lens[1] = sr->nodes.len;
    lens[2] = 1;
    lens[3] = 2;
    lens[4] = 10;

    if (ngx_http_cg_route_send(sr->link, 5, argv, lens,
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
