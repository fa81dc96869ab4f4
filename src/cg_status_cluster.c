
/*
 * Copyright (C) client guard authors
 *
 * The status with "scope=cluster".  See cg_status_cluster.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_out.h"
#include "cg_topn.h"
#include "cg_report.h"
#include "cg_status_prom.h"
#include "cg_status_publish.h"
#include "cg_status_cluster.h"


typedef struct {
    ngx_str_t                 name;
    int64_t                   time_ms;     /* its last publication */
    ngx_uint_t                clients;
    unsigned                  stale:1;
} ngx_http_cg_cluster_node_t;


/* a client as a node published it, then summed over the nodes */

typedef struct {
    cg_topn_item_t            item;        /* the sort key, the name; first */
    ngx_str_t                 name;
    ngx_uint_t                nodes;
    ngx_http_cg_figures_t     figures;
} ngx_http_cg_cluster_client_t;


typedef struct {
    ngx_http_request_t       *r;           /* NULL once the client left */
    ngx_http_cleanup_t       *cln;
    ngx_http_cg_query_t      *query;
    ngx_uint_t                format;
    ngx_uint_t                pending;
    ngx_uint_t                next;        /* node of the next HGETALL */
    ngx_array_t               nodes;       /* ngx_http_cg_cluster_node_t */
    ngx_array_t               clients;     /* ngx_http_cg_cluster_client_t */
    ngx_uint_t                failed;
} ngx_http_cg_cluster_t;


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
ngx_http_cg_cluster_name_cmp(const void *one, const void *two)
{
    const ngx_http_cg_cluster_client_t  *a = one, *b = two;

    return ngx_memn2cmp(a->name.data, b->name.data, a->name.len, b->name.len);
}


/* one entry per client: sorted by name, the nodes' figures summed */

static ngx_uint_t
ngx_http_cg_cluster_merge(ngx_http_cg_cluster_t *cl)
{
    ngx_uint_t                     i, k, n, merged;
    ngx_http_cg_figures_t         *f, *g;
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
            m = &m[-1];
            f = &m->figures;
            g = &e[i].figures;

            f->requests += g->requests;
            f->rejected += g->rejected;
            f->rejected_dry_run += g->rejected_dry_run;

            for (k = 0; k < CG_STATS_NCLASSES; k++) {
                f->classes[k] += g->classes[k];
            }

            f->rate_10s += g->rate_10s;
            f->rate_1m += g->rate_1m;
            f->rate_5m += g->rate_5m;
            f->error_rate_10s += g->error_rate_10s;

            m->nodes++;
            continue;
        }

        if (m != &e[i]) {
            *m = e[i];
        }

        m->nodes = 1;
        merged++;
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

    if (o->format == NGX_HTTP_CG_FMT_OPENM) {
        ngx_http_cg_out_printf(o, "# EOF\n");
    }
}


static void
ngx_http_cg_cluster_json(ngx_http_cg_out_t *o, ngx_http_cg_cluster_t *cl,
    cg_topn_t *top, ngx_uint_t total, ngx_uint_t fresh, ngx_uint_t stale)
{
    ngx_uint_t                     i;
    ngx_http_cg_query_t           *q;
    ngx_http_cg_figures_t         *f;
    ngx_http_cg_cluster_node_t    *nd;
    ngx_http_cg_cluster_client_t  *c;

    q = cl->query;
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

    ngx_http_cg_out_printf(o,
        "],\"query\":{\"sort\":\"%s\",\"limit\":%ui,"
        "\"client\":\"%V\"},\"clients_total\":%ui,"
        "\"clients_shown\":%ui,\"clients\":[",
        ngx_http_cg_sort_names[q->sort], q->limit, &q->client, total,
        top->n);

    for (i = 0; i < top->n; i++) {
        c = (ngx_http_cg_cluster_client_t *) top->heap[i];
        f = &c->figures;

        ngx_http_cg_out_printf(o,
            "%s{\"name\":\"%V\",\"nodes\":%ui,\"requests_total\":%uL,"
            "\"rejected_total\":%uL,\"rejected_dry_run_total\":%uL,"
            "\"responses_by_class_total\":{\"1xx\":%uL,\"2xx\":%uL,"
            "\"3xx\":%uL,\"4xx\":%uL,\"5xx\":%uL},"
            "\"rate_10s_per_s\":%.3f,\"rate_1m_per_s\":%.3f,"
            "\"rate_5m_per_s\":%.3f,\"error_rate_10s_per_s\":%.3f}",
            i ? "," : "", &c->name, c->nodes, f->requests, f->rejected,
            f->rejected_dry_run, f->classes[0], f->classes[1],
            f->classes[2], f->classes[3], f->classes[4],
            ngx_http_cg_out_finite(f->rate_10s),
            ngx_http_cg_out_finite(f->rate_1m),
            ngx_http_cg_out_finite(f->rate_5m),
            ngx_http_cg_out_finite(f->error_rate_10s));
    }

    ngx_http_cg_out_printf(o, "]}\n");
}


static void
ngx_http_cg_cluster_finish(ngx_http_cg_cluster_t *cl, ngx_int_t status)
{
    ngx_int_t                      rc;
    ngx_uint_t                     i, n, sort, total, fresh, stale;
    cg_topn_t                      top;
    cg_topn_item_t               **slots;
    ngx_http_cg_out_t              o;
    ngx_connection_t              *c;
    ngx_http_request_t            *r;
    ngx_http_cg_query_t           *q;
    ngx_http_cg_cluster_node_t    *nd;
    ngx_http_cg_cluster_client_t  *e;

    r = cl->r;
    q = cl->query;
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

    n = ngx_http_cg_cluster_merge(cl);
    e = cl->clients.elts;

    /* the clients shown, ranked: the cluster has no quota use nor ratios */

    sort = (q->sort == NGX_HTTP_CG_SORT_QUOTA
            || q->sort == NGX_HTTP_CG_SORT_ANOMALY)
           ? NGX_HTTP_CG_SORT_REQUESTS : q->sort;

    slots = ngx_palloc(r->pool, (ngx_min(q->limit, n) + 1)
                                * sizeof(cg_topn_item_t *));
    if (slots == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto done;
    }

    cg_topn_init(&top, slots, ngx_min(q->limit, n));
    total = 0;

    for (i = 0; i < n; i++) {

        if (q->client.len
            && (e[i].name.len != q->client.len
                || ngx_memcmp(e[i].name.data, q->client.data, q->client.len)
                   != 0))
        {
            continue;
        }

        e[i].item.key = ngx_http_cg_sort_key(&e[i].figures, sort);
        e[i].item.name = e[i].name.data;
        e[i].item.len = e[i].name.len;

        (void) cg_topn_add(&top, &e[i].item);
        total++;
    }

    cg_topn_sort(&top);

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
        ngx_http_cg_cluster_json(&o, cl, &top, total, fresh, stale);

    } else {
        ngx_http_cg_cluster_prom(&o, &top, fresh, stale);
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

    cl->pending--;

    if (cl->r == NULL) {
        if (cl->pending == 0) {
            ngx_free(cl);
        }

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
        ngx_http_cg_cluster_finish(cl, cl->failed ? NGX_HTTP_BAD_GATEWAY
                                                  : NGX_OK);
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

        if (ngx_http_cg_link_send(sr->link, 2, argv, lens,
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


ngx_int_t
ngx_http_cg_status_cluster(ngx_http_request_t *r, ngx_uint_t format,
    ngx_http_cg_query_t *query)
{
    size_t                       lens[5];
    const char                  *argv[5];
    ngx_http_cleanup_t          *cln;
    ngx_http_cg_cluster_t       *cl;
    ngx_http_cg_status_redis_t  *sr;

    sr = &ngx_http_cg_status_redis;

    if (!ngx_http_cg_link_ready(sr->link)) {
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

    if (ngx_http_cg_link_send(sr->link, 5, argv, lens,
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
