
/*
 * Copyright (C) client guard authors
 *
 * cg_status_log: a finished request in its client's statistics.
 *
 * Owns: the log phase's part of a record (cg_stats_add), done in batches:
 * a worker keeps up to NGX_HTTP_CG_LOG_BATCH finished requests and counts
 * them the next time it holds the zone's lock anyway (the next request's
 * preaccess handler), or after NGX_HTTP_CG_LOG_DELAY, before a status
 * answer or publication, and when the worker exits.  A request so costs
 * one lock of the zone, not two.  The records stay pinned (node->refs)
 * until they are counted.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include "cg_common.h"


#define NGX_HTTP_CG_LOG_BATCH  64
#define NGX_HTTP_CG_LOG_DELAY  50       /* ms */


typedef struct {
    ngx_http_cg_zone_t         *zone;
    ngx_http_cg_record_t         *node;
    const cg_anomaly_t         *an;
    uint32_t                    sec;
    cg_stats_req_t              req;
} ngx_http_cg_log_entry_t;


static void ngx_http_cg_stats_log_timer(ngx_event_t *ev);
static void ngx_http_cg_stats_count(ngx_http_cg_zone_t *zone);


static ngx_http_cg_log_entry_t  ngx_http_cg_log_batch[NGX_HTTP_CG_LOG_BATCH];
static ngx_uint_t               ngx_http_cg_log_n;
static ngx_event_t              ngx_http_cg_log_ev;


void
ngx_http_cg_stats_log(ngx_http_request_t *r, ngx_http_cg_zone_t *zone,
    ngx_http_cg_record_t *node, ngx_uint_t outcome, const cg_anomaly_t *an)
{
    int64_t                     ms;
    ngx_uint_t                  i;
    ngx_time_t                 *tp;
    ngx_event_t                *ev;
    cg_stats_req_t             *req;
    ngx_http_cg_log_entry_t    *e;
    ngx_http_upstream_state_t  *state;

    if (ngx_http_cg_log_n == NGX_HTTP_CG_LOG_BATCH) {
        ngx_http_cg_stats_flush();
    }

    e = &ngx_http_cg_log_batch[ngx_http_cg_log_n++];
    req = &e->req;

    ngx_memzero(req, sizeof(cg_stats_req_t));

    if (r->err_status) {
        req->status = r->err_status;

    } else {
        req->status = r->headers_out.status;
    }

    req->own = (outcome == NGX_HTTP_CG_REJECTED);

    tp = ngx_timeofday();

    ms = (int64_t) (tp->sec - r->start_sec) * 1000
         + (int64_t) tp->msec - (int64_t) r->start_msec;
    req->time_ms = ms > 0 ? (ms < UINT32_MAX ? (uint32_t) ms : UINT32_MAX)
                          : 0;

    if (r->upstream_states && r->upstream_states->nelts) {
        state = r->upstream_states->elts;
        ms = 0;

        for (i = 0; i < r->upstream_states->nelts; i++) {
            if (state[i].peer && state[i].response_time != (ngx_msec_t) -1)
            {
                ms += state[i].response_time;
                req->upstream = 1;
            }
        }

        req->upstream_ms = ms < UINT32_MAX ? (uint32_t) ms : UINT32_MAX;
    }

    e->zone = zone;
    e->node = node;
    e->an = an;
    e->sec = (uint32_t) tp->sec;

    ev = &ngx_http_cg_log_ev;

    if (!ev->timer_set) {
        ev->handler = ngx_http_cg_stats_log_timer;
        ev->log = ngx_cycle->log;
        ev->cancelable = 1;
        ngx_add_timer(ev, NGX_HTTP_CG_LOG_DELAY);
    }
}


/* the caller holds the zone's lock */

void
ngx_http_cg_stats_flush_locked(ngx_http_cg_zone_t *zone)
{
    if (ngx_http_cg_log_n) {
        ngx_http_cg_stats_count(zone);
    }
}


void
ngx_http_cg_stats_flush(void)
{
    ngx_http_cg_zone_t  *zone;

    while (ngx_http_cg_log_n) {
        zone = ngx_http_cg_log_batch[0].zone;

        ngx_http_cg_zone_lock(zone);
        ngx_http_cg_stats_count(zone);
        ngx_http_cg_zone_unlock(zone);
    }
}


static void
ngx_http_cg_stats_count(ngx_http_cg_zone_t *zone)
{
    ngx_uint_t                i, n;
    ngx_http_cg_log_entry_t  *e;

    e = ngx_http_cg_log_batch;
    n = 0;

    for (i = 0; i < ngx_http_cg_log_n; i++) {

        if (e[i].zone != zone) {
            /* another zone's: kept for its lock */
            e[n++] = e[i];
            continue;
        }

        cg_stats_add(&e[i].node->stats, e[i].sec, e[i].node->created,
                     &e[i].req, e[i].an);
        e[i].node->refs--;
    }

    ngx_http_cg_log_n = n;
}


static void
ngx_http_cg_stats_log_timer(ngx_event_t *ev)
{
    ngx_http_cg_stats_flush();
}


void
ngx_http_cg_stats_log_exit(void)
{
    ngx_http_cg_stats_flush();

    if (ngx_http_cg_log_ev.timer_set) {
        ngx_del_timer(&ngx_http_cg_log_ev);
    }
}
