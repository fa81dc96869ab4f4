
/*
 * Copyright (C) client guard authors
 *
 * Publication of this node's figures to Redis.  See cg_status_publish.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include "cg_common.h"
#include "cg_link_conf.h"
#include "cg_report.h"
#include "cg_sentinel.h"
#include "cg_slice.h"
#include "cg_stats_log.h"
#include "cg_status_events.h"
#include "cg_status_publish.h"
#include "cg_topn.h"


/*
 * Each node publishes, every "interval", the figures of its busiest
 * clients into the hash {prefix}stats:{node} (one field per client, plus
 * "_meta"), which expires after three intervals, and its name with the
 * time into the sorted set {prefix}stats-nodes.  One worker per node does
 * it (the zone remembers when it was last done).  A node answering
 * "scope=cluster" reads them back and sums the fresh ones: each node's
 * counters are its own, so nothing is counted twice.  The same job reads
 * the events of the streams {prefix}deploys and {prefix}incidents.
 *
 * A publication is cooperative (cg_slice): it walks the zone in slices of
 * NGX_HTTP_CG_PUB_SLICE records, one zone lock each, and yields to the
 * event loop between slices, so that requests never wait for more than
 * one slice.  Each slice resumes after the last record seen
 * (ngx_http_cg_zone_walk): records evicted meanwhile are simply not found
 * again, records added after the cursor are seen.  Only the busiest
 * "clients" are kept, in a bounded heap (cg_topn), with the few figures
 * published: per-worker memory is bounded by "clients", not by the zone.
 * The rows are then written out, also in slices, and sent at once.  The
 * memory of a publication is the worker's, kept from one publication to
 * the next (fresh memory each time would cost page faults in the very
 * slices that hold the zone lock), freed when the worker exits.
 */

#define NGX_HTTP_CG_PUB_FIELDS  24
#define NGX_HTTP_CG_PUB_SLICE   NGX_HTTP_CG_BATCH

#define NGX_HTTP_CG_PUB_WALK    0
#define NGX_HTTP_CG_PUB_FORMAT  1


/* the text of a client's history: slot, first, 4 counts, the ring in hex */

#define NGX_HTTP_CG_PUB_HISTORY                                               \
    (6 * (NGX_INT32_LEN + 1)                                                  \
     + 2 * CG_HISTORY_SLOTS * CG_HISTORY_SERIES)


/* one client kept for publication: what its fields in Redis say */

typedef struct {
    cg_topn_item_t            item;        /* key: requests; must be first */
    ngx_http_cg_figures_t     figures;
    cg_history_t              history;
    u_char                    name[CG_NAME_MAX];
} ngx_http_cg_pub_row_t;


typedef struct {
    ngx_pool_t                 *pool;      /* everything below */
    ngx_http_cg_zone_t         *zone;
    int64_t                     now_ms;
    uint32_t                    now;
    ngx_uint_t                  clients;   /* in the zone, at the start */
    ngx_uint_t                  phase;

    /* the walk: the cursor, and the copies of one slice */
    ngx_http_cg_zone_cursor_t   cursor;
    ngx_http_cg_record_copy_t  *batch;
    ngx_uint_t                  nbatch;

    /* the rows kept: "clients" + 1, one of them spare */
    cg_topn_t                   top;
    ngx_http_cg_pub_row_t      *rows;
    ngx_uint_t                  used;
    ngx_http_cg_pub_row_t      *spare;

    /* the HSET being written, and the history's, once a step */
    ngx_uint_t                  next;
    const char                **argv;
    size_t                     *lens;
    u_char                     *buf;
    u_char                     *p;
    u_char                      hkey[512];
    ngx_uint_t                  history;
    const char                **hargv;
    size_t                     *hlens;
    u_char                     *hbuf;
    u_char                     *hp;
    u_char                      hhkey[512];
} ngx_http_cg_pub_t;


typedef struct {
    ngx_str_t                   node;
    uint32_t                    hslot;     /* the step last published */
    ngx_event_t                 timer;
    ngx_http_cg_slice_t         slice;     /* of a publication under way */
    ngx_http_cg_pub_t          *pub;       /* its memory, kept */
    ngx_http_cg_main_conf_t    *mcf;
} ngx_http_cg_publish_worker_t;


static void ngx_http_cg_publish(ngx_event_t *ev);
static ngx_int_t ngx_http_cg_pub_step(void *data);
static ngx_http_cg_pub_t *ngx_http_cg_pub_alloc(
    ngx_http_cg_publish_worker_t *w, ngx_log_t *log);


static ngx_http_cg_publish_worker_t  ngx_http_cg_publish_w;

ngx_http_cg_status_redis_t  ngx_http_cg_status_redis;


char *
ngx_http_cg_publish_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_publish_t  *pb = (void *) ((char *) conf + cmd->offset);

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


ngx_int_t
ngx_http_cg_status_init_process(ngx_cycle_t *cycle)
{
    ngx_int_t                      rc;
    ngx_str_t                      node;
    ngx_http_cg_link_conf_t       *server;
    ngx_http_cg_main_conf_t       *mcf;
    ngx_http_cg_status_redis_t    *sr;
    ngx_http_cg_publish_worker_t  *w;

    w = &ngx_http_cg_publish_w;
    sr = &ngx_http_cg_status_redis;

    ngx_memzero(w, sizeof(ngx_http_cg_publish_worker_t));
    ngx_memzero(sr, sizeof(ngx_http_cg_status_redis_t));

    /* the same node name as the heartbeats of cg_redis */

    rc = ngx_http_cg_redis_worker_conf(cycle, &mcf, &node);
    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_OK : NGX_ERROR;
    }

    if (mcf->zones.nelts == 0) {
        return NGX_OK;
    }

    w->mcf = mcf;
    w->node = node;
    server = mcf->redis->server;

    if (ngx_http_cg_link_key(cycle->pool, server, &sr->stats, "stats:")
           != NGX_OK
        || ngx_http_cg_link_key(cycle->pool, server, &sr->history,
                                "history:")
           != NGX_OK
        || ngx_http_cg_link_key(cycle->pool, server, &sr->nodes, "stats-nodes")
           != NGX_OK
        || ngx_http_cg_link_key(cycle->pool, server, &sr->events.deploys,
                                "deploys")
           != NGX_OK
        || ngx_http_cg_link_key(cycle->pool, server, &sr->events.incidents,
                                "incidents")
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->link = ngx_http_cg_route_create(cycle, mcf->redis->server, NULL, NULL,
                                       w);
    if (sr->link == NULL
        || ngx_http_cg_sentinel_follow(sr->link->link) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* cg_redis's link reports the state of Redis: this one stays quiet */
    ngx_http_cg_route_quiet(sr->link);

    ngx_http_cg_route_start(sr->link);

    if (mcf->publish.interval) {
        ngx_http_cg_slice_init(&w->slice, ngx_http_cg_pub_step, w,
                               cycle->log);

        w->timer.handler = ngx_http_cg_publish;
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
    ngx_http_cg_status_redis_t    *sr;
    ngx_http_cg_publish_worker_t  *w;

    w = &ngx_http_cg_publish_w;
    sr = &ngx_http_cg_status_redis;

    if (sr->link == NULL) {
        return;
    }

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }

    ngx_http_cg_slice_cancel(&w->slice);

    if (w->pub) {
        ngx_destroy_pool(w->pub->pool);
        w->pub = NULL;
    }

    ngx_http_cg_route_stop(sr->link);
    sr->link = NULL;
}


static void
ngx_http_cg_publish(ngx_event_t *ev)
{
    int64_t                        now;
    ngx_uint_t                     due, clients;
    ngx_time_t                    *tp;
    ngx_http_cg_pub_t             *pub;
    ngx_http_cg_zone_t           **zp, *zone;
    ngx_http_cg_status_area_t     *area;
    ngx_http_cg_status_redis_t    *sr;
    ngx_http_cg_publish_worker_t  *w;

    w = ev->data;
    sr = &ngx_http_cg_status_redis;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_add_timer(ev, w->mcf->publish.interval);

    ngx_http_cg_stats_flush();

    /* never two at once: a publication still under way skips this turn */

    if (ngx_http_cg_slice_pending(&w->slice)) {
        return;
    }

    if (!ngx_http_cg_route_ready(sr->link)) {
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

    area = ngx_http_cg_status_area(zone);

    due = area && (uint64_t) now >= area->publish_ms
                                    + w->mcf->publish.interval * 3 / 4;
    if (due) {
        area->publish_ms = now;
    }

    clients = zone->sh->clients;

    ngx_http_cg_zone_unlock(zone);

    if (!due) {
        return;
    }

    ngx_http_cg_events_fetch(sr->link, &sr->events, zone);

    pub = w->pub ? w->pub : ngx_http_cg_pub_alloc(w, ev->log);
    if (pub == NULL) {
        return;
    }

    /* the history, once a step (its counts change by the step) */

    pub->history = (uint32_t) (now / w->mcf->anomaly.step_ms) != w->hslot;

    if (pub->history) {
        w->hslot = (uint32_t) (now / w->mcf->anomaly.step_ms);
    }

    pub->zone = zone;
    pub->now_ms = now;
    pub->now = (uint32_t) tp->sec;
    pub->clients = clients;
    pub->phase = NGX_HTTP_CG_PUB_WALK;
    pub->cursor.started = 0;
    pub->used = 0;
    pub->spare = NULL;

    cg_topn_init(&pub->top, pub->top.heap, w->mcf->publish.clients);

    ngx_http_cg_slice_post(&w->slice);
}


static ngx_http_cg_pub_t *
ngx_http_cg_pub_alloc(ngx_http_cg_publish_worker_t *w, ngx_log_t *log)
{
    size_t                       n;
    ngx_pool_t                  *pool;
    ngx_http_cg_pub_t           *pub;
    ngx_http_cg_status_redis_t  *sr;

    sr = &ngx_http_cg_status_redis;

    if (sr->stats.len + w->node.len > sizeof(pub->hkey)
        || sr->history.len + w->node.len > sizeof(pub->hhkey))
    {
        return NULL;
    }

    pool = ngx_create_pool(16384, log);
    if (pool == NULL) {
        return NULL;
    }

    n = w->mcf->publish.clients;

    pub = ngx_pcalloc(pool, sizeof(ngx_http_cg_pub_t));
    if (pub == NULL) {
        goto failed;
    }

    pub->pool = pool;

    pub->batch = ngx_palloc(pool, NGX_HTTP_CG_PUB_SLICE
                                  * sizeof(ngx_http_cg_record_copy_t));
    pub->rows = ngx_palloc(pool, (n + 1) * sizeof(ngx_http_cg_pub_row_t));
    pub->top.heap = ngx_palloc(pool, n * sizeof(cg_topn_item_t *));
    pub->argv = ngx_palloc(pool, (4 + 2 * n) * sizeof(char *));
    pub->lens = ngx_palloc(pool, (4 + 2 * n) * sizeof(size_t));
    pub->buf = ngx_pnalloc(pool, 64 + n * (NGX_HTTP_CG_PUB_FIELDS
                                           * (NGX_INT64_LEN + 1) + 32));
    pub->hargv = ngx_palloc(pool, (2 + 2 * n) * sizeof(char *));
    pub->hlens = ngx_palloc(pool, (2 + 2 * n) * sizeof(size_t));
    pub->hbuf = ngx_pnalloc(pool, n * NGX_HTTP_CG_PUB_HISTORY);

    if (pub->batch == NULL || pub->rows == NULL || pub->top.heap == NULL
        || pub->argv == NULL || pub->lens == NULL || pub->buf == NULL
        || pub->hargv == NULL || pub->hlens == NULL || pub->hbuf == NULL)
    {
        goto failed;
    }

    pub->lens[1] = ngx_sprintf(pub->hkey, "%V%V", &sr->stats, &w->node)
                   - pub->hkey;
    pub->hlens[1] = ngx_sprintf(pub->hhkey, "%V%V", &sr->history, &w->node)
                    - pub->hhkey;

    w->pub = pub;

    return pub;

failed:

    ngx_destroy_pool(pool);

    return NULL;
}


/* under the zone lock: a copy only of those the heap would keep now */

static void
ngx_http_cg_pub_copy(ngx_http_cg_record_t *rec, void *data)
{
    ngx_http_cg_pub_t  *pub = data;

    if (cg_topn_wants(&pub->top, (double) rec->counters.requests, rec->name,
                      rec->len))
    {
        ngx_http_cg_zone_copy(&pub->batch[pub->nbatch++], rec);
    }
}


/* one slice of the walk: returns 1 when the walk is over */

static ngx_uint_t
ngx_http_cg_pub_walk(ngx_http_cg_publish_worker_t *w, ngx_http_cg_pub_t *pub)
{
    ngx_int_t                  rc;
    ngx_uint_t                 i;
    cg_topn_item_t            *out;
    ngx_http_cg_record_t      *rec;
    ngx_http_cg_pub_row_t     *row;
    ngx_http_cg_quota_view_t   qv;

    pub->nbatch = 0;

    rc = ngx_http_cg_zone_walk(pub->zone, &pub->cursor, NGX_HTTP_CG_PUB_SLICE,
                               ngx_http_cg_pub_copy, pub);

    for (i = 0; i < pub->nbatch; i++) {
        rec = &pub->batch[i].rec;

        /* ranked by requests: the rest is made only for a row kept */

        if (!cg_topn_wants(&pub->top, (double) rec->counters.requests,
                           rec->name, rec->len))
        {
            continue;
        }

        if (pub->spare) {
            row = pub->spare;
            pub->spare = NULL;

        } else {
            row = &pub->rows[pub->used++];
        }

        cg_stats_view(&rec->stats, pub->now_ms, &w->mcf->anomaly);
        ngx_http_cg_figures(&row->figures, rec, pub->now_ms,
                            &w->mcf->anomaly, NULL);

        /* quota use: the cluster's count under Redis, as the status says */

        if (ngx_http_cg_quota_view(&w->mcf->quotas, 1, rec, pub->now_ms,
                                   &qv))
        {
            row->figures.utilisation = qv.util;
        }

        row->history = rec->stats.history;

        row->item.key = ngx_http_cg_sort_key(&row->figures,
                                             NGX_HTTP_CG_SORT_REQUESTS);
        row->item.len = rec->len;
        row->item.name = row->name;
        ngx_memcpy(row->name, rec->name, rec->len);

        out = cg_topn_add(&pub->top, &row->item);

        if (out) {
            pub->spare = (ngx_http_cg_pub_row_t *) out;
        }
    }

    return rc == NGX_DONE;
}


/* the rows in rank order, then the HSET command around them */

static void
ngx_http_cg_pub_begin(ngx_http_cg_publish_worker_t *w, ngx_http_cg_pub_t *pub)
{
    cg_topn_sort(&pub->top);

    pub->p = pub->buf;

    pub->argv[0] = "HSET";
    pub->lens[0] = 4;
    pub->argv[1] = (char *) pub->hkey;      /* lens[1] set once */
    pub->argv[2] = "_meta";
    pub->lens[2] = 5;
    pub->argv[3] = (char *) pub->p;
    pub->p = ngx_sprintf(pub->p, "%L %ui %M", pub->now_ms, pub->clients,
                         w->mcf->publish.interval);
    pub->lens[3] = pub->p - (u_char *) pub->argv[3];

    pub->hargv[0] = "HSET";
    pub->hlens[0] = 4;
    pub->hargv[1] = (char *) pub->hhkey;    /* hlens[1] set once */
    pub->hp = pub->hbuf;

    pub->next = 0;
}


/*
 * A client's history as text: "<step> <first> <4 counts of the current
 * step>" then the ring, a byte per count in hex, in the ring's own order
 * (step s in place s % CG_HISTORY_SLOTS)
 */

static u_char *
ngx_http_cg_pub_history(u_char *p, cg_history_t *h)
{
    p = ngx_sprintf(p, "%uD %uD %uD %uD %uD %uD ", h->slot, h->first,
                    h->cur[0], h->cur[1], h->cur[2], h->cur[3]);

    return ngx_hex_dump(p, (u_char *) h->ring, sizeof(h->ring));
}


/* one slice of rows written out: returns 1 when all are */

static ngx_uint_t
ngx_http_cg_pub_format(ngx_http_cg_pub_t *pub)
{
    u_char                 *p;
    ngx_uint_t              i, end;
    ngx_http_cg_pub_row_t  *row;

    end = ngx_min(pub->top.n, pub->next + NGX_HTTP_CG_PUB_SLICE);
    p = pub->p;

    for (i = pub->next; i < end; i++) {
        row = (ngx_http_cg_pub_row_t *) pub->top.heap[i];

        pub->argv[4 + 2 * i] = (char *) row->name;
        pub->lens[4 + 2 * i] = row->item.len;

        pub->argv[5 + 2 * i] = (char *) p;
        p = ngx_http_cg_figures_print(p, &row->figures);
        pub->lens[5 + 2 * i] = p - (u_char *) pub->argv[5 + 2 * i];

        if (pub->history) {
            pub->hargv[2 + 2 * i] = (char *) row->name;
            pub->hlens[2 + 2 * i] = row->item.len;
            pub->hargv[3 + 2 * i] = (char *) pub->hp;
            pub->hp = ngx_http_cg_pub_history(pub->hp, &row->history);
            pub->hlens[3 + 2 * i] = pub->hp - (u_char *) pub->hargv[3 + 2 * i];
        }
    }

    pub->p = p;
    pub->next = end;

    return end == pub->top.n;
}


static void
ngx_http_cg_pub_send(ngx_http_cg_publish_worker_t *w, ngx_http_cg_pub_t *pub)
{
    size_t                       lens[4];
    u_char                       ttlb[NGX_INT64_LEN], nowb[NGX_INT64_LEN];
    const char                  *argv[4];
    ngx_http_cg_status_redis_t  *sr;

    sr = &ngx_http_cg_status_redis;

    /* Redis went away meanwhile: this publication is lost, the next one
     * comes an interval later */

    if (!ngx_http_cg_route_ready(sr->link)) {
        return;
    }

    argv[0] = "DEL";
    lens[0] = 3;
    argv[1] = pub->argv[1];
    lens[1] = pub->lens[1];

    (void) ngx_http_cg_route_send(sr->link, 2, argv, lens, NULL, NULL);

    (void) ngx_http_cg_route_send(sr->link, 4 + 2 * pub->top.n,
                                 pub->argv, pub->lens, NULL, NULL);

    argv[0] = "PEXPIRE";
    lens[0] = 7;
    argv[2] = (char *) ttlb;
    lens[2] = ngx_sprintf(ttlb, "%uL", (uint64_t) w->mcf->publish.interval * 3)
              - ttlb;

    (void) ngx_http_cg_route_send(sr->link, 3, argv, lens, NULL, NULL);

    if (pub->history && pub->top.n) {
        argv[0] = "DEL";
        lens[0] = 3;
        argv[1] = pub->hargv[1];
        lens[1] = pub->hlens[1];

        (void) ngx_http_cg_route_send(sr->link, 2, argv, lens, NULL, NULL);

        (void) ngx_http_cg_route_send(sr->link, 2 + 2 * pub->top.n,
                                     pub->hargv, pub->hlens, NULL, NULL);

        /* while the node publishes: three intervals, two steps */

        argv[0] = "PEXPIRE";
        lens[0] = 7;
        argv[2] = (char *) ttlb;
        lens[2] = ngx_sprintf(ttlb, "%uL",
                              (uint64_t) w->mcf->publish.interval * 3
                              + 2 * w->mcf->anomaly.step_ms)
                  - ttlb;

        (void) ngx_http_cg_route_send(sr->link, 3, argv, lens, NULL, NULL);
    }

    argv[0] = "ZADD";
    lens[0] = 4;
    argv[1] = (char *) sr->nodes.data;
    lens[1] = sr->nodes.len;
    argv[2] = (char *) nowb;
    lens[2] = ngx_sprintf(nowb, "%L", pub->now_ms) - nowb;
    argv[3] = (char *) w->node.data;
    lens[3] = w->node.len;

    (void) ngx_http_cg_route_send(sr->link, 4, argv, lens, NULL, NULL);

    /* nodes gone for an hour leave the list */

    argv[0] = "ZREMRANGEBYSCORE";
    lens[0] = 16;
    argv[2] = "-inf";
    lens[2] = 4;
    argv[3] = (char *) ttlb;
    lens[3] = ngx_sprintf(ttlb, "%L", pub->now_ms - 3600 * 1000) - ttlb;

    (void) ngx_http_cg_route_send(sr->link, 4, argv, lens, NULL, NULL);
}


/* a slice of a publication: NGX_AGAIN while there is more */

static ngx_int_t
ngx_http_cg_pub_step(void *data)
{
    ngx_http_cg_publish_worker_t  *w = data;

    ngx_http_cg_pub_t  *pub;

    pub = w->pub;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return NGX_DONE;
    }

    if (pub->phase == NGX_HTTP_CG_PUB_WALK) {

        if (ngx_http_cg_pub_walk(w, pub)) {
            ngx_http_cg_pub_begin(w, pub);
            pub->phase = NGX_HTTP_CG_PUB_FORMAT;
        }

        return NGX_AGAIN;
    }

    if (!ngx_http_cg_pub_format(pub)) {
        return NGX_AGAIN;
    }

    ngx_http_cg_pub_send(w, pub);

    return NGX_OK;
}
