
/*
 * Copyright (C) client guard authors
 *
 * Lease requests to Redis, in batches.  See cg_lease_batch.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "cg_lease_batch.h"
#include "cg_reply.h"


/* integers per client in the reply of the lease script */

#define NGX_HTTP_CG_LEASE_REPLY  CG_REPLY_LEASE

typedef struct {
    ngx_http_cg_route_t        *link;     /* NULL: not started */
    ngx_http_cg_lease_call_t    call;     /* the script's, the buffers */
    ngx_uint_t                  ahead;
    ngx_http_cg_lease_done_pt   done;
    ngx_http_cg_fetch_t        *pending;  /* to send */
    ngx_http_cg_fetch_t       **last;
    ngx_uint_t                  npending;
    ngx_event_t                 batcher;  /* posted: sends the pending */
    ngx_event_t                 gather;   /* a timer: posts the batcher */
    ngx_http_cg_fetch_t        *free;
    ngx_http_cg_batch_t        *free_batches;
    ngx_msec_t                  broken;   /* the script failing until */
    ngx_uint_t                  trips;    /* the breaker's, in a row */
    ngx_msec_t                  logged;   /* a failed call, last */
} ngx_http_cg_lease_batch_t;


static ngx_int_t ngx_http_cg_lease_batch_send(ngx_http_cg_batch_t *b);
static void ngx_http_cg_lease_batch_handler(ngx_event_t *ev);
static void ngx_http_cg_lease_gather_handler(ngx_event_t *ev);


static ngx_http_cg_lease_batch_t  ngx_http_cg_lb;


ngx_int_t
ngx_http_cg_lease_batch_init(ngx_cycle_t *cycle, ngx_http_cg_route_t *link,
    ngx_str_t *prefix, ngx_msec_t lease, ngx_uint_t ahead,
    ngx_http_cg_lease_done_pt done)
{
    ngx_http_cg_lease_batch_t  *lb = &ngx_http_cg_lb;

    ngx_memzero(lb, sizeof(ngx_http_cg_lease_batch_t));

    lb->link = link;
    lb->ahead = ahead;
    lb->done = done;
    lb->last = &lb->pending;

    lb->batcher.handler = ngx_http_cg_lease_batch_handler;
    lb->batcher.data = lb;
    lb->batcher.log = cycle->log;

    lb->gather.handler = ngx_http_cg_lease_gather_handler;
    lb->gather.data = lb;
    lb->gather.log = cycle->log;
    lb->gather.cancelable = 1;

    /* a Cluster's buckets of clients, each a hash tag */

    return ngx_http_cg_lease_call_init(&lb->call, cycle,
                                       link->conf->mode
                                       == NGX_HTTP_CG_LINK_CLUSTER
                                       ? NGX_HTTP_CG_LEASE_BUCKETS : 0,
                                       prefix, lease, link->conf->timeout);
}


void
ngx_http_cg_lease_batch_ready(void)
{
    /* cached ahead of the first EVALSHA */

    ngx_http_cg_lease_call_load(ngx_http_cg_lb.link);
}


static ngx_uint_t
ngx_http_cg_lease_bucket_up(ngx_uint_t bucket)
{
    ngx_http_cg_lease_batch_t  *lb = &ngx_http_cg_lb;

    if (lb->call.buckets == 0) {
        return ngx_http_cg_route_ready(lb->link);
    }

    return ngx_http_cg_route_slot_ready(lb->link, lb->call.slot[bucket]);
}


static ngx_uint_t
ngx_http_cg_lease_bucket(u_char *name, size_t len)
{
    if (ngx_http_cg_lb.call.buckets == 0) {
        return 0;
    }

    return ngx_crc32_short(name, len) % ngx_http_cg_lb.call.buckets;
}


ngx_uint_t
ngx_http_cg_lease_batch_up(uint32_t hash)
{
    ngx_http_cg_lease_batch_t  *lb = &ngx_http_cg_lb;

    if (lb->link == NULL) {
        return 0;
    }

    /* the bucket of ngx_http_cg_lease_bucket(): CRC32 of the name */

    return ngx_http_cg_lease_bucket_up(lb->call.buckets
                                       ? hash % lb->call.buckets : 0);
}


ngx_uint_t
ngx_http_cg_lease_batch_broken(void)
{
    return (ngx_msec_int_t) (ngx_http_cg_lb.broken - ngx_current_msec) > 0;
}


static ngx_http_cg_fetch_t *
ngx_http_cg_fetch_alloc(void)
{
    ngx_http_cg_fetch_t  *f;

    f = ngx_http_cg_lb.free;

    if (f) {
        ngx_http_cg_lb.free = f->next;
        return f;
    }

    return ngx_alloc(sizeof(ngx_http_cg_fetch_t), ngx_cycle->log);
}


static void
ngx_http_cg_fetch_free(ngx_http_cg_fetch_t *f)
{
    f->next = ngx_http_cg_lb.free;
    ngx_http_cg_lb.free = f;
}


/*
 * A fetch that was never sent: nobody fetches, the next request tries
 * again; what was admitted ahead is charged then.  The pin is dropped.
 */

static void
ngx_http_cg_fetch_unsent(ngx_http_cg_fetch_t *f)
{
    ngx_http_cg_zone_lock(f->zone);

    cg_lease_unsent(&f->rec->lease, &f->out);
    f->rec->refs--;

    ngx_http_cg_zone_unlock(f->zone);

    ngx_http_cg_fetch_free(f);
}


/*
 * A fetch ends with Redis's answer for its client, or with "granted"
 * CG_LEASE_NO_ANSWER (an error, a timeout, the link lost) or
 * CG_LEASE_KEYS_FAILED (Redis failed on this client's keys: the failure
 * policy decides for it for a second).  The record's pin is dropped, or
 * passed on to the fetch that charges what was admitted ahead meanwhile.
 */

static void
ngx_http_cg_fetch_done(ngx_http_cg_fetch_t *f, redisReply **e,
    int64_t granted)
{
    int                         charge;
    int64_t                     now;
    ngx_str_t                   name;
    ngx_time_t                 *tp;
    cg_lease_out_t              next;
    cg_lease_answer_t           a;
    ngx_http_cg_lease_batch_t  *lb = &ngx_http_cg_lb;

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    /* the client's part of the reply, or none */

    cg_reply_lease_part(e, granted, &a);

    a.nlimits = f->quota.nlimits;
    a.qhash = f->qhash;
    a.owed = f->out.owed;
    a.started = f->out.started;
    a.now = (uint32_t) ngx_current_msec;
    a.ahead = cg_lease_ahead(&f->quota, lb->ahead, NULL);
    a.ttl = cg_lease_ttl(&f->quota, now, lb->call.lease, 0);
    a.ttl_small = cg_lease_ttl(&f->quota, now, lb->call.lease, 1);
    a.window = cg_lease_window_left(&f->quota, now);
    a.window_age = cg_lease_window_age(&f->quota, now);
    a.ttl_far = cg_lease_ttl_far(&f->quota, now);
    a.far = f->out.far ? 1 : 0;
    a.rated = cg_lease_share(&f->quota, 1000, 1) ? 1 : 0;
    a.horizon = f->out.paced ? CG_LEASE_HORIZON * lb->call.lease : 0;
    a.ready = ngx_http_cg_lease_bucket_up(f->bucket)
              && !ngx_http_cg_lease_batch_broken();

    if (granted >= 0 && (int64_t) f->out.owed > granted) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "client guard: \"%*s\": %uD admitted ahead over the "
                       "quota", f->len, f->name,
                       (uint32_t) (f->out.owed - granted));
    }

    /* the record was pinned for the fetch: no lookup, not evicted */

    ngx_http_cg_zone_lock(f->zone);

    charge = cg_lease_answer(&f->rec->lease, &a, &next);

    if (!charge) {
        f->rec->refs--;
    }

    ngx_http_cg_zone_unlock(f->zone);

    if (charge) {
        /* the pin passes on to the next fetch */

        name.data = f->name;
        name.len = f->len;

        ngx_http_cg_lease_fetch(f->zone, f->rec, &name, &f->quota, f->qhash,
                                &next, 0);
    }

    ngx_http_cg_fetch_free(f);
}


static ngx_http_cg_batch_t *
ngx_http_cg_batch_alloc(void)
{
    ngx_http_cg_batch_t  *b;

    b = ngx_http_cg_lb.free_batches;

    if (b) {
        ngx_http_cg_lb.free_batches = b->next;
        return b;
    }

    return ngx_alloc(sizeof(ngx_http_cg_batch_t), ngx_cycle->log);
}


static void
ngx_http_cg_batch_free(ngx_http_cg_batch_t *b)
{
    b->fetches = NULL;
    b->next = ngx_http_cg_lb.free_batches;
    ngx_http_cg_lb.free_batches = b;
}


/*
 * The reply to a batch: NGX_HTTP_CG_LEASE_REPLY integers per fetch, in
 * order (a client's error text in place of its "granted").  An error or a
 * reply of another shape is no answer for every fetch of the batch, as is
 * a timeout or the link lost (reply NULL).
 */

static void
ngx_http_cg_batch_reply(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_batch_t  *b = data;

    redisReply          **e;
    ngx_http_cg_fetch_t  *f, *next;

    if (reply && reply->type == REDIS_REPLY_ERROR && !b->retried
        && reply->len >= 8 && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        /* the script is not cached there (a restart, SCRIPT FLUSH) */

        b->retried = 1;

        if (ngx_http_cg_lease_batch_send(b) == NGX_OK) {
            return;
        }

        reply = NULL;
    }

    if (reply && ngx_http_cg_lease_call_late(&ngx_http_cg_lb.call, reply)) {

        /*
         * run after its deadline, so charged nothing: no answer, and no
         * fault of the script's (Redis's clock is ahead: known now)
         */

        reply = NULL;
    }

    e = (reply && cg_reply_lease(reply, b->n)) ? reply->element : NULL;

    if (reply && e == NULL) {

        /*
         * an error from the script: leases stop for 100 ms, doubling to a
         * second while it fails in a row (a Redis still loading, busy, or
         * read-only for a moment around an event costs 100 ms, not a
         * second of the failure policy once it answers again)
         */

        ngx_http_cg_lb.broken = ngx_current_msec
                                + ngx_min(100 << ngx_min(ngx_http_cg_lb.trips,
                                                         4), 1000);
        ngx_http_cg_lb.trips++;

        /* a line a second at most: the breaker retries sooner */

        if (ngx_http_cg_lb.logged == 0
            || ngx_current_msec - ngx_http_cg_lb.logged >= 1000)
        {
            ngx_http_cg_lb.logged = ngx_current_msec ? ngx_current_msec : 1;
            ngx_http_cg_lease_call_log(b, reply);
        }

    } else if (e) {
        ngx_http_cg_lb.trips = 0;
    }

    for (f = b->fetches; f; f = next) {
        next = f->next;

        if (e && e[0]->type == REDIS_REPLY_STRING) {
            ngx_http_cg_lease_call_client_error(&ngx_http_cg_lb.call, f,
                                                e[0]);
            ngx_http_cg_fetch_done(f, NULL, CG_LEASE_KEYS_FAILED);
            e += NGX_HTTP_CG_LEASE_REPLY;

        } else if (e) {
            ngx_http_cg_fetch_done(f, e, e[0]->integer);
            e += NGX_HTTP_CG_LEASE_REPLY;

        } else {
            ngx_http_cg_fetch_done(f, NULL, CG_LEASE_NO_ANSWER);
        }
    }

    ngx_http_cg_batch_free(b);

    ngx_http_cg_lb.done();
}


/*
 * One script call for the fetches of a batch (cg_lease_call.c): EVALSHA,
 * or EVAL once the script was found missing.
 */

static ngx_int_t
ngx_http_cg_lease_batch_send(ngx_http_cg_batch_t *b)
{
    int                         argc;
    ngx_http_cg_lease_batch_t  *lb = &ngx_http_cg_lb;

    argc = ngx_http_cg_lease_call_args(&lb->call, b);

    if (argc == 0) {
        return NGX_ERROR;
    }

    return ngx_http_cg_route_send_any(lb->link, argc, lb->call.argv,
                                      lb->call.argvlen,
                                      ngx_http_cg_batch_reply, b);
}


/*
 * Posted by the first fetch of a turn of the event loop, and run in the
 * same turn (ngx_posted_events), before the link writes what was queued
 * (the link's flusher is posted again by the send when it ran already):
 * the pending fetches leave in batches of up to NGX_HTTP_CG_LEASE_BATCH.
 */

static void
ngx_http_cg_lease_batch_handler(ngx_event_t *ev)
{
    ngx_uint_t                  n, k;
    ngx_http_cg_batch_t        *b;
    ngx_http_cg_fetch_t        *f, *head, *tail, *next;
    ngx_http_cg_fetch_t        *list[NGX_HTTP_CG_LEASE_BUCKETS];
    ngx_http_cg_fetch_t       **last[NGX_HTTP_CG_LEASE_BUCKETS];
    ngx_http_cg_lease_batch_t  *lb = ev->data;

    if (lb->gather.timer_set) {
        ngx_del_timer(&lb->gather);
    }

    /* a Cluster's fetches by bucket (one slot a script call), in order */

    list[0] = lb->pending;

    for (k = 0; k < lb->call.buckets; k++) {
        list[k] = NULL;
        last[k] = &list[k];
    }

    for (f = lb->pending; lb->call.buckets && f; f = next) {
        next = f->next;
        f->next = NULL;
        *last[f->bucket] = f;
        last[f->bucket] = &f->next;
    }

    lb->pending = NULL;
    lb->last = &lb->pending;
    lb->npending = 0;

    for (k = 0; k < ngx_max(lb->call.buckets, 1); k++) {

        while (list[k]) {
            head = list[k];
            tail = head;

            for (n = 1; n < NGX_HTTP_CG_LEASE_BATCH && tail->next; n++) {
                tail = tail->next;
            }

            list[k] = tail->next;
            tail->next = NULL;

            b = ngx_http_cg_batch_alloc();

            if (b) {
                b->fetches = head;
                b->n = n;
                b->bucket = k;
                b->retried = 0;

                if (ngx_http_cg_lease_batch_send(b) == NGX_OK) {
                    continue;
                }

                ngx_http_cg_batch_free(b);
            }

            /* not sent (the link is not ready): as if never made */

            for (f = head; f; f = next) {
                next = f->next;
                ngx_http_cg_fetch_unsent(f);
            }
        }
    }
}


void
ngx_http_cg_lease_fetch(ngx_http_cg_zone_t *zone, ngx_http_cg_record_t *rec,
    ngx_str_t *name, cg_quota_t *quota, uint32_t qhash, cg_lease_out_t *out,
    ngx_uint_t now)
{
    ngx_http_cg_fetch_t        *f;
    ngx_http_cg_lease_batch_t  *lb = &ngx_http_cg_lb;

    f = ngx_http_cg_fetch_alloc();

    if (f == NULL) {
        ngx_http_cg_zone_lock(zone);
        cg_lease_unsent(&rec->lease, out);
        rec->refs--;
        ngx_http_cg_zone_unlock(zone);
        return;
    }

    f->next = NULL;
    f->zone = zone;
    f->rec = rec;
    f->quota = *quota;
    f->qhash = qhash;
    f->out = *out;
    f->len = name->len;
    f->bucket = ngx_http_cg_lease_bucket(name->data, name->len);
    ngx_memcpy(f->name, name->data, name->len);

    if (!ngx_http_cg_lease_bucket_up(f->bucket)) {
        ngx_http_cg_fetch_unsent(f);
        return;
    }

    *lb->last = f;
    lb->last = &f->next;
    lb->npending++;

    if (now || lb->npending >= NGX_HTTP_CG_LEASE_BATCH) {
        /* sent with the other fetches of this turn of the event loop */
        ngx_http_cg_lease_batch_flush();

    } else if (!lb->batcher.posted && !lb->gather.timer_set) {
        /* no request waits for it: gathered with those that follow */
        ngx_add_timer(&lb->gather, NGX_HTTP_CG_LEASE_GATHER);
    }
}


void
ngx_http_cg_lease_batch_flush(void)
{
    ngx_http_cg_lease_batch_t  *lb = &ngx_http_cg_lb;

    if (lb->pending && !lb->batcher.posted) {
        ngx_post_event(&lb->batcher, &ngx_posted_events);
    }
}


static void
ngx_http_cg_lease_gather_handler(ngx_event_t *ev)
{
    ngx_http_cg_lease_batch_flush();
}


void
ngx_http_cg_lease_batch_abort(void)
{
    ngx_http_cg_fetch_t        *f;
    ngx_http_cg_lease_batch_t  *lb = &ngx_http_cg_lb;

    if (lb->batcher.posted) {
        ngx_delete_posted_event(&lb->batcher);
    }

    if (lb->gather.timer_set) {
        ngx_del_timer(&lb->gather);
    }

    /* as when the link is found not ready by the batcher */

    while (lb->pending) {
        f = lb->pending;
        lb->pending = f->next;
        ngx_http_cg_fetch_unsent(f);
    }

    lb->last = &lb->pending;
    lb->npending = 0;
}


void
ngx_http_cg_lease_batch_exit(void)
{
    ngx_http_cg_fetch_t        *f;
    ngx_http_cg_batch_t        *b;
    ngx_http_cg_lease_batch_t  *lb = &ngx_http_cg_lb;

    if (lb->link == NULL) {
        return;
    }

    ngx_http_cg_lease_batch_abort();

    while (lb->free_batches) {
        b = lb->free_batches;
        lb->free_batches = b->next;
        ngx_free(b);
    }

    while (lb->free) {
        f = lb->free;
        lb->free = f->next;
        ngx_free(f);
    }

    ngx_http_cg_lease_call_free(&lb->call);

    ngx_memzero(lb, sizeof(ngx_http_cg_lease_batch_t));
}
