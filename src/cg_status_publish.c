
/*
 * Copyright (C) client guard authors
 *
 * cg_status_publish: publication of this node's figures to Redis.
 *
 * Owns: the client_guard_status_publish directive, the per-worker Redis
 * link of the status (its own, so that publishing figures never delays a
 * lease reply on the enforcement link of cg_sync), and the periodic job
 * that publishes and reads the deploy markers back.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_common.h"
#include "cg_status_int.h"


/*
 * Each node publishes, every "interval", the figures of its busiest
 * clients into the hash {prefix}stats:{node} (one field per client, plus
 * "_meta"), which expires after three intervals, and its name with the
 * time into the sorted set {prefix}stats-nodes.  One worker per node does
 * it (the zone remembers when it was last done).  A node answering
 * "scope=cluster" reads them back and sums the fresh ones: each node's
 * counters are its own, so nothing is counted twice.  The same job reads
 * the deploy markers of the stream {prefix}deploys.
 */

#define NGX_HTTP_CG_PUB_FIELDS  13


ngx_http_cg_status_worker_t  ngx_http_cg_status_w;


char *
ngx_http_cg_publish_directive(ngx_conf_t *cf, ngx_http_cg_publish_t *pb)
{
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


static ngx_int_t
ngx_http_cg_status_key(ngx_cycle_t *cycle, ngx_str_t *prefix, ngx_str_t *key,
    const char *name, ngx_str_t *tail)
{
    size_t  len;

    len = prefix->len + ngx_strlen(name) + (tail ? tail->len : 0);

    key->data = ngx_pnalloc(cycle->pool, len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    key->len = ngx_sprintf(key->data, "%V%s%V", prefix, name,
                           tail ? tail : &(ngx_str_t) ngx_null_string)
               - key->data;

    return NGX_OK;
}


static void ngx_http_cg_status_publish(ngx_event_t *ev);


ngx_int_t
ngx_http_cg_status_init_process(ngx_cycle_t *cycle)
{
    ngx_int_t                      rc;
    ngx_str_t                     *prefix, node;
    ngx_http_cg_main_conf_t       *mcf;
    ngx_http_cg_status_worker_t   *w;

    w = &ngx_http_cg_status_w;
    ngx_memzero(w, sizeof(ngx_http_cg_status_worker_t));

    /* the same node name as the heartbeats of cg_sync: host:master-pid */

    rc = ngx_http_cg_sync_worker_conf(cycle, &mcf, &node);
    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_OK : NGX_ERROR;
    }

    if (mcf->zones.nelts == 0) {
        return NGX_OK;
    }

    w->mcf = mcf;
    w->node = node;
    prefix = &mcf->sync->redis->prefix;

    if (ngx_http_cg_status_key(cycle, prefix, &w->k_stats, "stats:", NULL)
           != NGX_OK
        || ngx_http_cg_status_key(cycle, prefix, &w->k_nodes, "stats-nodes",
                                  NULL)
           != NGX_OK
        || ngx_http_cg_status_key(cycle, prefix, &w->k_deploys, "deploys",
                                  NULL)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    w->link = ngx_http_cg_redis_create(cycle, mcf->sync->redis, NULL, NULL,
                                       w);
    if (w->link == NULL) {
        return NGX_ERROR;
    }

    /* cg_sync's link reports the state of Redis: this one stays quiet */
    w->link->quiet = 1;

    ngx_http_cg_redis_start(w->link);

    if (mcf->publish.interval) {
        w->timer.handler = ngx_http_cg_status_publish;
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
    ngx_http_cg_status_worker_t  *w;

    w = &ngx_http_cg_status_w;

    if (w->link == NULL) {
        return;
    }

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }

    ngx_http_cg_redis_stop(w->link);
    w->link = NULL;
}


static void
ngx_http_cg_status_publish(ngx_event_t *ev)
{
    u_char                       *p;
    size_t                       *lens;
    int64_t                       now;
    uint64_t                      ttl;
    ngx_uint_t                    i, n, due;
    ngx_pool_t                   *pool;
    ngx_time_t                   *tp;
    const char                  **argv;
    ngx_http_cg_row_t            *row;
    ngx_http_cg_zone_t          **zp, *zone;
    ngx_http_cg_report_t         *rp;
    ngx_http_cg_node_t           *cn;
    ngx_http_cg_status_sh_t      *ssh;
    ngx_http_cg_status_worker_t  *w;
    u_char                        key[512], nowb[NGX_INT64_LEN],
                                  ttlb[NGX_INT64_LEN];

    w = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_add_timer(ev, w->mcf->publish.interval);

    if (!ngx_http_cg_redis_ready(w->link)) {
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

    ssh = ngx_http_cg_status_sh(zone);

    due = ssh && (uint64_t) now >= ssh->publish_ms
                                   + w->mcf->publish.interval * 3 / 4;
    if (due) {
        ssh->publish_ms = now;
    }

    ngx_http_cg_zone_unlock(zone);

    if (!due) {
        return;
    }

    argv = (const char *[]) { "XREVRANGE", (char *) w->k_deploys.data,
                              "+", "-", "COUNT", "32" };
    lens = (size_t []) { 9, w->k_deploys.len, 1, 1, 5, 2 };

    (void) ngx_http_cg_redis_send(w->link, 6, argv, lens,
                                  ngx_http_cg_status_deploys_done, w);

    pool = ngx_create_pool(16384, ev->log);
    if (pool == NULL) {
        return;
    }

    rp = ngx_pcalloc(pool, sizeof(ngx_http_cg_report_t));
    if (rp == NULL) {
        goto done;
    }

    rp->zone = zone;
    rp->pool = pool;
    rp->mcf = w->mcf;
    rp->sort = NGX_HTTP_CG_SORT_REQUESTS;
    rp->limit = w->mcf->publish.clients;
    rp->now_ms = now;
    rp->now = (uint32_t) tp->sec;
    rp->an = w->mcf->anomaly;

    if (ngx_http_cg_status_collect(rp) != NGX_OK) {
        goto done;
    }

    ngx_http_cg_status_rows(rp);

    if (rp->sorted == NULL) {
        goto done;
    }

    n = 4 + 2 * rp->shown;

    argv = ngx_palloc(pool, n * sizeof(char *));
    lens = ngx_palloc(pool, n * sizeof(size_t));
    p = ngx_pnalloc(pool, 64 + rp->shown * (NGX_HTTP_CG_PUB_FIELDS
                                            * (NGX_INT64_LEN + 1) + 32));

    if (argv == NULL || lens == NULL || p == NULL) {
        goto done;
    }

    if (w->k_stats.len + w->node.len > sizeof(key)) {
        goto done;
    }

    lens[1] = ngx_sprintf(key, "%V%V", &w->k_stats, &w->node) - key;
    argv[1] = (char *) key;

    argv[0] = "DEL";
    lens[0] = 3;

    (void) ngx_http_cg_redis_send(w->link, 2, argv, lens, NULL, NULL);

    argv[0] = "HSET";
    lens[0] = 4;
    argv[2] = "_meta";
    lens[2] = 5;
    argv[3] = (char *) p;
    p = ngx_sprintf(p, "%L %ui %M", now, rp->health.clients,
                    w->mcf->publish.interval);
    lens[3] = p - (u_char *) argv[3];

    for (i = 0; i < rp->shown; i++) {
        row = rp->sorted[i];
        cn = &row->snap->node;

        argv[4 + 2 * i] = (char *) row->name.data;
        lens[4 + 2 * i] = row->name.len;

        argv[5 + 2 * i] = (char *) p;
        p = ngx_sprintf(p, "%uL %uL %uL %uL %uL %uL %uL %uL %.3f %.3f %.3f "
                        "%.3f",
                        cn->counters.requests,
                        cn->counters.outcome[NGX_HTTP_CG_REJECTED],
                        cn->counters.outcome[NGX_HTTP_CG_REJECTED_DRY_RUN],
                        row->st->classes[0], row->st->classes[1],
                        row->st->classes[2], row->st->classes[3],
                        row->st->classes[4],
                        ngx_http_cg_num(row->st->rate[0]),
                        ngx_http_cg_num(row->st->rate[1]),
                        ngx_http_cg_num(row->st->rate[2]),
                        ngx_http_cg_num(row->st->err[0]));
        lens[5 + 2 * i] = p - (u_char *) argv[5 + 2 * i];
    }

    (void) ngx_http_cg_redis_send(w->link, n, argv, lens, NULL, NULL);

    ttl = w->mcf->publish.interval * 3;

    argv[0] = "PEXPIRE";
    lens[0] = 7;
    argv[2] = (char *) ttlb;
    lens[2] = ngx_sprintf(ttlb, "%uL", ttl) - ttlb;

    (void) ngx_http_cg_redis_send(w->link, 3, argv, lens, NULL, NULL);

    argv[0] = "ZADD";
    lens[0] = 4;
    argv[1] = (char *) w->k_nodes.data;
    lens[1] = w->k_nodes.len;
    argv[2] = (char *) nowb;
    lens[2] = ngx_sprintf(nowb, "%L", now) - nowb;
    argv[3] = (char *) w->node.data;
    lens[3] = w->node.len;

    (void) ngx_http_cg_redis_send(w->link, 4, argv, lens, NULL, NULL);

    /* nodes gone for an hour leave the list */

    argv[0] = "ZREMRANGEBYSCORE";
    lens[0] = 16;
    argv[2] = "-inf";
    lens[2] = 4;
    argv[3] = (char *) ttlb;
    lens[3] = ngx_sprintf(ttlb, "%L", now - 3600 * 1000) - ttlb;

    (void) ngx_http_cg_redis_send(w->link, 4, argv, lens, NULL, NULL);

done:

    ngx_destroy_pool(pool);
}
