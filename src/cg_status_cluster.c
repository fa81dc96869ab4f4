
/*
 * Copyright (C) client guard authors
 *
 * The status with "scope=cluster".  See cg_status_cluster.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_cluster.h"
#include "cg_report.h"
#include "cg_status_cluster_answer.h"
#include "cg_status_publish.h"
#include "cg_status_cluster.h"


typedef struct {
    ngx_http_request_t         *r;         /* NULL once the client left */
    ngx_http_cleanup_t         *cln;
    ngx_uint_t                  format;
    ngx_uint_t                  pending;
    ngx_uint_t                  next;      /* node of the next reply */
    ngx_uint_t                  failed;
    ngx_http_cg_cluster_view_t  view;      /* what the answer shows */
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
ngx_http_cg_cluster_merge(ngx_http_cg_cluster_view_t *v)
{
    ngx_uint_t                     i, n, merged;
    ngx_http_cg_cluster_client_t  *e, *m;

    e = v->clients.elts;
    n = v->clients.nelts;

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
        ngx_http_cg_cluster_judge(&e[i], v->an,
                                  (uint32_t) (v->query->now_ms / 1000));
    }

    return merged;
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
    ngx_http_cg_cluster_view_t    *v;
    ngx_http_cg_cluster_client_t  *e;

    v = &cl->view;
    q = v->query;

    n = ngx_http_cg_cluster_merge(v);
    e = v->clients.elts;
    v->merged = n;

    slots = ngx_palloc(cl->r->pool, (ngx_min(q->limit, n) + 1)
                                    * sizeof(cg_topn_item_t *));
    if (slots == NULL) {
        ngx_http_cg_cluster_answer(cl, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cg_topn_init(&v->top, slots, ngx_min(q->limit, n));
    v->total = 0;

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

        (void) cg_topn_add(&v->top, &e[i].item);
        v->total++;
    }

    cg_topn_sort(&v->top);

    if (!q->history || v->top.n == 0) {
        ngx_http_cg_cluster_answer(cl, NGX_OK);
        return;
    }

    /* the histories of the clients shown: HMGET, one per fresh node */

    sr = &ngx_http_cg_status_redis;
    nd = v->nodes.elts;
    cl->next = 0;

    argc = 2 + ngx_min(v->top.n, NGX_HTTP_CG_CLUSTER_SHOWN);

    argv[0] = "HMGET";
    lens[0] = 5;

    for (k = 2; k < argc; k++) {
        e = (ngx_http_cg_cluster_client_t *) v->top.heap[k - 2];
        argv[k] = (const char *) e->name.data;
        lens[k] = e->name.len;
    }

    for (i = 0; i < v->nodes.nelts; i++) {
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
    uint32_t                       slot;
    redisReply                    *v;
    ngx_http_cg_cluster_client_t  *e;

    if (ngx_http_cg_cluster_gone(cl)) {
        return;
    }

    if (reply && reply->type == REDIS_REPLY_ARRAY) {

        slot = (uint32_t) (cl->view.query->now_ms / cl->view.an->step_ms);

        for (i = 0; i < reply->elements && i < cl->view.top.n; i++) {
            v = reply->element[i];

            if (v->type != REDIS_REPLY_STRING) {
                continue;
            }

            e = (ngx_http_cg_cluster_client_t *) cl->view.top.heap[i];

            if (ngx_http_cg_cluster_history(e, (u_char *) v->str,
                                            (u_char *) v->str + v->len,
                                            slot, cl->r->pool)
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
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = cl->r;
    c = r->connection;

    /* detach: the request is done with the state */

    if (cl->cln) {
        cl->cln->handler = NULL;
    }

    cl->r = NULL;

    if (status == NGX_OK) {
        status = ngx_http_cg_cluster_send(r, cl->format, &cl->view);
    }

    ngx_free(cl);

    ngx_http_finalize_request(r, status);
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

    nd = &((ngx_http_cg_cluster_node_t *) cl->view.nodes.elts)[cl->next++];
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
        nd->stale = (v[2] == 0 || cl->view.query->now_ms - v[0] > 3 * v[2]);
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

        e = ngx_array_push(&cl->view.clients);
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
            cl->view.clients.nelts--;
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

        nd = ngx_array_push(&cl->view.nodes);
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
            cl->view.nodes.nelts--;
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
        || ngx_array_init(&cl->view.nodes, r->pool, 8,
                          sizeof(ngx_http_cg_cluster_node_t)) != NGX_OK
        || ngx_array_init(&cl->view.clients, r->pool, 64,
                          sizeof(ngx_http_cg_cluster_client_t)) != NGX_OK)
    {
        ngx_free(cl);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cl->r = r;
    cl->view.query = query;
    cl->view.zone = zone;
    cl->view.an = an;
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
