
/*
 * Copyright (C) client guard authors
 *
 * cg_status_cluster: the status with "scope=cluster".
 *
 * Owns: reading every node's publication back from Redis (the nodes, then
 * one HGETALL per node), summing the fresh ones per client, and the
 * answer in JSON, Prometheus text or OpenMetrics.  The request waits for
 * the replies; a client that leaves meanwhile only frees the state.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_common.h"
#include "cg_redis_quota.h"
#include "cg_stats_log.h"
#include "cg_status_int.h"


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
        NGX_HTTP_CG_SCHEMA_VERSION, rp->now_ms, fresh, stale);

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
ngx_http_cg_cluster_stats_done(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_cluster_t  *cl = data;

    int                    len;
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

        /*
         * nodes publish normalised names only: anything else in the hash
         * was not written by a node, and is left out rather than printed
         */

        len = cg_name_normalize(e->name.data, (u_char *) f->str, f->len,
                                CG_NAME_MAX);

        if (len < 0 || (size_t) len != f->len
            || ngx_memcmp(e->name.data, f->str, f->len) != 0)
        {
            cl->entries.nelts--;
            continue;
        }

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
ngx_http_cg_cluster_nodes_done(ngx_http_cg_link_t *link, redisReply *reply,
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

        if (ngx_http_cg_link_send(w->link, 2, argv, lens,
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
ngx_http_cg_status_cluster(ngx_http_request_t *r, ngx_http_cg_report_t *rp)
{
    size_t                        lens[5];
    const char                   *argv[5];
    ngx_http_cleanup_t           *cln;
    ngx_http_cg_cluster_t        *cl;
    ngx_http_cg_status_worker_t  *w;

    w = &ngx_http_cg_status_w;

    if (!ngx_http_cg_link_ready(w->link)) {
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

    if (ngx_http_cg_link_send(w->link, 5, argv, lens,
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
