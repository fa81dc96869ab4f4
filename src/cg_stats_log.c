
/*
 * Copyright (C) client guard authors
 *
 * A finished request in its client's statistics.  See cg_stats_log.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include "cg_stats_log.h"


#define NGX_HTTP_CG_LOG_BATCH  64
#define NGX_HTTP_CG_LOG_DELAY  50       /* ms */


typedef struct {
    ngx_http_cg_zone_t         *zone;
    ngx_http_cg_record_t       *rec;
    const cg_anomaly_t         *an;
    uint64_t                    ms;        /* when it ended */
    cg_stats_req_t              req;
} ngx_http_cg_log_entry_t;


static void ngx_http_cg_stats_log_timer(ngx_event_t *ev);
static void ngx_http_cg_stats_count(ngx_http_cg_zone_t *zone);


static ngx_http_cg_log_entry_t  ngx_http_cg_log_batch[NGX_HTTP_CG_LOG_BATCH];
static ngx_uint_t               ngx_http_cg_log_n;
static ngx_event_t              ngx_http_cg_log_ev;

/* the timer's "connection": nginx's debug log reads its fd (the ident) */
static ngx_connection_t         ngx_http_cg_log_conn;


void
ngx_http_cg_stats_log(ngx_http_request_t *r, ngx_http_cg_zone_t *zone,
    ngx_http_cg_record_t *rec, ngx_uint_t outcome, const cg_anomaly_t *an)
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
    e->rec = rec;
    e->an = an;
    e->ms = (uint64_t) tp->sec * 1000 + tp->msec;

    ev = &ngx_http_cg_log_ev;

    if (!ev->timer_set) {
        ngx_http_cg_log_conn.fd = (ngx_socket_t) -1;

        ev->data = &ngx_http_cg_log_conn;
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

        cg_stats_add(&e[i].rec->stats, e[i].ms, &e[i].req, e[i].an);
        e[i].rec->refs--;
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


/* client_guard_anomaly --------------------------------------------------- */


/*
 * "name=" followed by a number with up to two decimals (and "%" when the
 * name ends with it), into *v
 */

static ngx_int_t
ngx_http_cg_anomaly_number(ngx_str_t *arg, const char *name, float *v,
    float low, float high)
{
    size_t     len, pct;
    ngx_int_t  n;

    len = ngx_strlen(name);
    pct = (name[len - 1] == '%');
    len -= pct;

    if (arg->len <= len + pct || ngx_strncmp(arg->data, name, len) != 0
        || (pct && arg->data[arg->len - 1] != '%'))
    {
        return NGX_DECLINED;
    }

    n = ngx_atofp(arg->data + len, arg->len - len - pct, 2);

    if (n == NGX_ERROR || n < low * 100 || n > high * 100) {
        return NGX_ERROR;
    }

    *v = (float) n / 100;

    return NGX_OK;
}


char *
ngx_http_cg_anomaly_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    cg_anomaly_t  *an = (void *) ((char *) conf + cmd->offset);

    float        share;
    ngx_int_t    rc;
    ngx_str_t   *value, s;
    ngx_uint_t   i;
    ngx_msec_t   ms;

    if (an->step_ms || an->off) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        an->off = 1;
        return NGX_CONF_OK;
    }

    share = -1;

    for (i = 1; i < cf->args->nelts; i++) {

        rc = ngx_http_cg_anomaly_number(&value[i], "ratio=", &an->ratio,
                                        1.5, 1000);

        if (rc == NGX_DECLINED) {
            rc = ngx_http_cg_anomaly_number(&value[i], "min_rate=",
                                            &an->min_rate, 0.01, 1000000);
        }

        if (rc == NGX_DECLINED) {
            rc = ngx_http_cg_anomaly_number(&value[i], "errors=%", &share, 1,
                                            100);
        }

        if (rc == NGX_DECLINED) {
            rc = ngx_http_cg_anomaly_number(&value[i], "min_errors=",
                                            &an->error_rate, 0.01, 1000000);
        }

        if (rc == NGX_DECLINED && ngx_strncmp(value[i].data, "step=", 5) == 0)
        {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            ms = ngx_parse_time(&s, 0);

            rc = (ms == (ngx_msec_t) NGX_ERROR || ms < 1000 || ms > 60000)
                 ? NGX_ERROR : NGX_OK;

            an->step_ms = (uint32_t) ms;
        }

        if (rc != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in "
                               "\"client_guard_anomaly\", expected "
                               "\"ratio=1.5..1000\", \"min_rate=R\", "
                               "\"errors=1%%..100%%\", \"min_errors=R\" "
                               "(R > 0 per second), \"step=1s..60s\" or "
                               "\"off\"", &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    if (share >= 0) {
        an->error_share = share / 100;
    }

    /* so that a second client_guard_anomaly is a duplicate */

    if (an->step_ms == 0) {
        an->step_ms = 10000;
    }

    return NGX_CONF_OK;
}


void
ngx_http_cg_anomaly_init(cg_anomaly_t *an)
{
    /* docs/status.md, "Anomalies": why these */

    if (an->ratio == 0) {
        an->ratio = 2.5f;
    }

    if (an->min_rate == 0) {
        an->min_rate = 2;
    }

    if (an->error_share == 0) {
        an->error_share = 0.15f;
    }

    if (an->error_rate == 0) {
        an->error_rate = 1;
    }

    if (an->step_ms == 0) {
        an->step_ms = 10000;
    }
}
