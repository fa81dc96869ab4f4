
/*
 * Copyright (C) client guard authors
 *
 * The cluster-wide count's part in deciding a request.  See
 * cg_lease_take.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_common.h"
#include "cg_lease_batch.h"
#include "cg_lease_take.h"
#include "cg_redis_quota.h"


#define NGX_HTTP_CG_LEASE_WAKE  2       /* waiters poll, ms */


typedef struct {
    ngx_http_cg_route_t        *link;     /* NULL: no Redis in this worker */
    ngx_http_cg_lease_conf_t   *conf;
    ngx_msec_t                  timeout;
    ngx_uint_t                  nodes;    /* live, from heartbeats */
    ngx_queue_t                 waiters;
    ngx_event_t                 wake;
} ngx_http_cg_lease_worker_t;


static ngx_http_cg_lease_worker_t  ngx_http_cg_lw;


static ngx_str_t  ngx_http_cg_lease_how[] = {
    ngx_null_string,
    ngx_string("LEASE"),
    ngx_string("WAITED"),
    ngx_string("DOWN_OPEN"),
    ngx_string("DOWN_CLOSED"),
    ngx_string("DOWN_LOCAL"),
    ngx_string("AHEAD")
};


static void
ngx_http_cg_lease_wake_handler(ngx_event_t *ev)
{
    ngx_http_cg_lease_wake();
}


void
ngx_http_cg_lease_init(ngx_cycle_t *cycle, ngx_http_cg_route_t *link,
    ngx_http_cg_lease_conf_t *conf, ngx_msec_t timeout)
{
    ngx_http_cg_lease_worker_t  *lw = &ngx_http_cg_lw;

    ngx_memzero(lw, sizeof(ngx_http_cg_lease_worker_t));

    lw->link = link;
    lw->conf = conf;
    lw->timeout = timeout;

    ngx_queue_init(&lw->waiters);

    lw->wake.handler = ngx_http_cg_lease_wake_handler;
    lw->wake.data = lw;
    lw->wake.log = cycle->log;
}


void
ngx_http_cg_lease_exit(void)
{
    ngx_queue_t                 *q;
    ngx_http_cg_lease_req_t     *lr;
    ngx_http_cg_lease_worker_t  *lw = &ngx_http_cg_lw;

    if (lw->link == NULL) {
        return;
    }

    if (lw->wake.timer_set) {
        ngx_del_timer(&lw->wake);
    }

    /* requests still waiting end with the process: never resume them */

    while (!ngx_queue_empty(&lw->waiters)) {
        q = ngx_queue_head(&lw->waiters);
        ngx_queue_remove(q);
        lr = ngx_queue_data(q, ngx_http_cg_lease_req_t, queue);
        lr->waiting = 0;
    }

    lw->link = NULL;
}


void
ngx_http_cg_lease_nodes(ngx_uint_t n)
{
    ngx_http_cg_lw.nodes = n;
}


ngx_http_cg_lease_req_t *
ngx_http_cg_lease_req(ngx_http_request_t *r, ngx_http_cg_lease_req_t *lr,
    ngx_str_t *name, uint32_t hash, cg_quota_t *quota)
{
    uint32_t                     i;
    ngx_uint_t                   nodes;
    cg_lease_in_t               *in;
    ngx_http_cg_main_conf_t     *mcf;
    ngx_http_cg_lease_worker_t  *lw = &ngx_http_cg_lw;

    if (lr && lr->resumed) {
        /* decided while it waited: the same quota, nothing to redo */
        return lr;
    }

    if (lr == NULL) {
        lr = ngx_pcalloc(r->pool, sizeof(ngx_http_cg_lease_req_t));
        if (lr == NULL) {
            return NULL;
        }
    }

    lr->r = r;
    lr->name = *name;
    lr->quota = quota;
    lr->qhash = cg_lease_quota_hash(quota);

    /* no quota of its own: the default of Redis or of the configuration */

    mcf = ngx_http_get_module_main_conf(r, ngx_http_client_guard_module);

    lr->local = (quota == ngx_http_cg_redis_default()
                 || (mcf->quotas.dflt && quota == &mcf->quotas.dflt->quota));
    lr->hash = hash;

    /* what the take needs of the quota, made before the zone lock */

    in = &lr->in;

    in->qhash = lr->qhash;
    in->ahead = cg_lease_ahead(quota, lw->conf->ahead, &in->reserve);
    in->lease_ms = lw->conf->lease;
    in->timeout_ms = lw->timeout;
    in->local = lr->local;

    /* at its rate, each node its share: by the nodes seen alive */

    nodes = lw->nodes ? lw->nodes : lw->conf->nodes;
    in->share = cg_lease_share(quota, CG_LEASE_HORIZON * lw->conf->lease,
                               (uint32_t) ngx_min(nodes, 1000));

    in->nodes = (uint32_t) ngx_max(ngx_min(nodes, 1000), 1);
    in->far = lr->local ? cg_lease_far(quota, lw->conf->lease, in->nodes)
                        : 0;

    in->least = UINT32_MAX;

    for (i = 0; i < quota->nlimits; i++) {
        in->least = (uint32_t) ngx_min(in->least, quota->limits[i].count);
    }

    return lr;
}


/*
 * How soon a unit of limit "binding" frees up after Redis had none left:
 * a rate's emission interval (its period over its count), ms; 0 for a
 * window (a second, cg_lease.c).  After a Redis event the leases grow
 * again from small, and a small burst drained by one of them is no sign
 * of a client at its limit once a unit came back.
 */

static uint32_t
ngx_http_cg_lease_free_ms(cg_quota_t *quota, ngx_uint_t binding)
{
    cg_limit_t  *lim;

    if (quota->nlimits == 0) {
        return 0;
    }

    lim = &quota->limits[binding < quota->nlimits ? binding : 0];

    if (lim->type != CG_LIMIT_RATE || lim->count == 0) {
        return 0;
    }

    return (uint32_t) ngx_max(lim->period / lim->count, 1);
}


/*
 * A client rejected at a window before Redis said when units free up
 * (cg_lease_take() leaves "retry" 0 for it): the window's end, ms.
 */

static uint32_t
ngx_http_cg_lease_window_retry(cg_quota_t *quota, ngx_uint_t binding)
{
    int64_t      now;
    cg_limit_t  *lim;
    ngx_time_t  *tp;

    if (quota->nlimits == 0) {
        return 1;
    }

    lim = &quota->limits[binding < quota->nlimits ? binding : 0];

    if (lim->type == CG_LIMIT_RATE || lim->period == 0) {
        return 1;
    }

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    return (uint32_t) (lim->period - now % lim->period);
}


/* a unit of the lease of lr->rec, or why not; the zone lock is held */

static ngx_uint_t
ngx_http_cg_lease_take_locked(ngx_http_cg_lease_req_t *lr)
{
    cg_lease_in_t                in;
    ngx_http_cg_lease_worker_t  *lw = &ngx_http_cg_lw;

    if (lr->rec == NULL) {
        lr->out.rc = CG_LEASE_DOWN;
        lr->out.want = 0;
        return CG_LEASE_DOWN;
    }

    /* the quota's part was made by ngx_http_cg_lease_req(); now the rest */

    in = lr->in;
    in.now = (uint32_t) ngx_current_msec;
    in.free_ms = ngx_http_cg_lease_free_ms(lr->quota, lr->rec->lease.binding);
    in.ready = lw->link && ngx_http_cg_lease_batch_up(lr->hash);
    in.broken = ngx_http_cg_lease_batch_broken();

    cg_lease_take(&lr->rec->lease, &in, &lr->out);

    if (lr->out.rc == CG_LEASE_REJECT && lr->out.retry == 0) {
        /* at a window's limit (only then): its end */
        lr->out.retry = ngx_http_cg_lease_window_retry(lr->quota,
                                                       lr->rec->lease.binding);
    }

    if (lr->out.want) {
        /* pinned until the reply */
        lr->rec->refs++;
    }

    return lr->out.rc;
}


ngx_uint_t
ngx_http_cg_lease_take(ngx_http_cg_lease_req_t *lr, ngx_http_cg_zone_t *zone,
    ngx_http_cg_record_t *rec)
{
    if (lr->resumed) {
        lr->resumed = 0;
        return lr->out.rc;
    }

    lr->zone = zone;
    lr->rec = rec;

    return ngx_http_cg_lease_take_locked(lr);
}


ngx_int_t
ngx_http_cg_lease_policy(ngx_http_cg_lease_req_t *lr, cg_quota_t *quota,
    cg_limit_result_t *res)
{
    uint32_t                     i;
    ngx_uint_t                   nodes;
    ngx_http_cg_lease_worker_t  *lw = &ngx_http_cg_lw;

    switch (lw->conf->policy) {

    case NGX_HTTP_CG_FAIL_OPEN:
        lr->how = NGX_HTTP_CG_REDIS_DOWN_OPEN;
        res->allowed = 1;
        return NGX_OK;

    case NGX_HTTP_CG_FAIL_CLOSED:
        lr->how = NGX_HTTP_CG_REDIS_DOWN_CLOSED;
        res->allowed = 0;
        res->retry = 1000;
        lr->code = lw->conf->closed_status;
        return NGX_OK;

    default:
        break;
    }

    /* local: this node's share of the cluster's quota */

    lr->how = NGX_HTTP_CG_REDIS_DOWN_LOCAL;

    nodes = lw->nodes ? lw->nodes : lw->conf->nodes;

    if (nodes > 1) {
        for (i = 0; i < quota->nlimits; i++) {
            quota->limits[i].count = ngx_max(quota->limits[i].count / nodes,
                                             1);
            quota->limits[i].burst /= nodes;
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_cg_lease_result(ngx_http_cg_lease_req_t *lr, cg_limit_result_t *res)
{
    if (lr->how == NGX_HTTP_CG_REDIS_NONE) {
        lr->how = (lr->out.rc == CG_LEASE_AHEAD) ? NGX_HTTP_CG_REDIS_AHEAD
                                                 : NGX_HTTP_CG_REDIS_LEASE;
    }

    res->allowed = (lr->out.rc == CG_LEASE_PASS
                    || lr->out.rc == CG_LEASE_AHEAD);
    res->remaining = lr->out.remaining;
    res->retry = lr->out.retry;
    res->reset = lr->out.retry;

    /* the limit the last lease was cut short by, as Redis said */

    if (lr->out.binding < lr->quota->nlimits) {
        return lr->out.binding;
    }

    return lr->quota->nlimits ? 0 : -1;
}


void
ngx_http_cg_lease_send(ngx_http_cg_lease_req_t *lr)
{
    if (lr->out.want == 0) {
        return;
    }

    /*
     * at once when the request waits for it or is rejected meanwhile; a
     * lease asked for ahead of time is gathered with others for a while
     */

    ngx_http_cg_lease_fetch(lr->zone, lr->rec, &lr->name, lr->quota,
                            lr->qhash, &lr->out,
                            lr->out.rc != CG_LEASE_PASS
                            && lr->out.rc != CG_LEASE_AHEAD);

    lr->out.want = 0;
}


ngx_int_t
ngx_http_cg_lease_wait(ngx_http_cg_lease_req_t *lr)
{
    ngx_http_cg_lease_worker_t  *lw = &ngx_http_cg_lw;

    /* its quota, for the takes while it waits; at most the command timeout */

    lr->kept = *lr->quota;
    lr->quota = &lr->kept;
    lr->deadline = ngx_current_msec + lw->timeout;
    lr->waiting = 1;

    ngx_queue_insert_tail(&lw->waiters, &lr->queue);

    /* the fetch it waits for may be gathering others: it leaves now */
    ngx_http_cg_lease_batch_flush();

    if (!lw->wake.timer_set) {
        ngx_add_timer(&lw->wake, NGX_HTTP_CG_LEASE_WAKE);
    }

    /* notice a client that goes away meanwhile */
    lr->r->read_event_handler = ngx_http_test_reading;

    return NGX_AGAIN;
}


ngx_int_t
ngx_http_cg_lease_pending(ngx_http_cg_lease_req_t *lr)
{
    if (lr == NULL) {
        return NGX_DECLINED;
    }

    if (lr->waiting) {
        return NGX_AGAIN;
    }

    return lr->resumed ? NGX_OK : NGX_DECLINED;
}


void
ngx_http_cg_lease_cleanup(ngx_http_cg_lease_req_t *lr)
{
    if (lr && lr->waiting) {
        lr->waiting = 0;
        ngx_queue_remove(&lr->queue);
    }
}


void
ngx_http_cg_lease_wake(void)
{
    ngx_queue_t                  ready, *q, *next;
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_cg_lease_req_t     *lr;
    ngx_http_cg_lease_worker_t  *lw = &ngx_http_cg_lw;

    if (lw->link == NULL) {
        return;
    }

    ngx_queue_init(&ready);

    for (q = ngx_queue_head(&lw->waiters);
         q != ngx_queue_sentinel(&lw->waiters);
         q = next)
    {
        next = ngx_queue_next(q);
        lr = ngx_queue_data(q, ngx_http_cg_lease_req_t, queue);

        ngx_http_cg_zone_lock(lr->zone);
        (void) ngx_http_cg_lease_take_locked(lr);
        ngx_http_cg_zone_unlock(lr->zone);

        ngx_http_cg_lease_send(lr);

        if (lr->out.rc == CG_LEASE_WAIT
            && (ngx_msec_int_t) (lr->deadline - ngx_current_msec) > 0)
        {
            continue;
        }

        if (lr->out.rc == CG_LEASE_WAIT) {
            /* no lease in time: the failure policy decides */
            lr->out.rc = CG_LEASE_DOWN;
        }

        ngx_queue_remove(q);
        ngx_queue_insert_tail(&ready, q);
    }

    while (!ngx_queue_empty(&ready)) {
        q = ngx_queue_head(&ready);
        ngx_queue_remove(q);

        lr = ngx_queue_data(q, ngx_http_cg_lease_req_t, queue);
        lr->waiting = 0;
        lr->resumed = 1;
        lr->how = NGX_HTTP_CG_REDIS_WAITED;

        r = lr->r;
        c = r->connection;

        r->read_event_handler = ngx_http_block_reading;

        ngx_http_set_log_request(c->log, r);
        r->write_event_handler(r);
        ngx_http_run_posted_requests(c);
    }

    if (ngx_queue_empty(&lw->waiters)) {
        if (lw->wake.timer_set) {
            ngx_del_timer(&lw->wake);
        }

    } else if (!lw->wake.timer_set) {
        ngx_add_timer(&lw->wake, NGX_HTTP_CG_LEASE_WAKE);
    }
}


ngx_int_t
ngx_http_cg_lease_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_cg_ctx_t        *ctx;
    ngx_http_cg_lease_req_t  *lr;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_client_guard_module);

    lr = ctx ? ctx->lease : NULL;

    if (lr == NULL || lr->how == NGX_HTTP_CG_REDIS_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_http_cg_lease_how[lr->how].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ngx_http_cg_lease_how[lr->how].data;

    return NGX_OK;
}
