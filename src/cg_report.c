
/*
 * Copyright (C) client guard authors
 *
 * What the status endpoint reports of one node.  See cg_report.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_report.h"
#include "cg_out.h"
#include "cg_decide.h"


#define NGX_HTTP_CG_REPORT_WALK   0
#define NGX_HTTP_CG_REPORT_SORT   1
#define NGX_HTTP_CG_REPORT_VIEWS  2
#define NGX_HTTP_CG_REPORT_MADE   3


/*
 * Memory for the copies and rows of one report, kept when the report is
 * done for the next one (with many clients, fresh memory each time costs
 * more in page faults than the copy itself): at most
 * NGX_HTTP_CG_SCRATCH_KEEP are kept idle per worker; reports under way at
 * once each have their own.
 */

#define NGX_HTTP_CG_SCRATCH_KEEP  2

struct ngx_http_cg_scratch_s {
    ngx_http_cg_scratch_t    *next;
    size_t                    size;        /* of the data that follows */
};


static ngx_http_cg_scratch_t  *ngx_http_cg_scratch_idle;
static ngx_uint_t              ngx_http_cg_scratch_nidle;


static void ngx_http_cg_report_copy(ngx_http_cg_record_t *rec, void *data);
static ngx_uint_t ngx_http_cg_report_walk(ngx_http_cg_report_t *rp);
static void ngx_http_cg_report_quota(ngx_http_cg_report_t *rp,
    ngx_http_cg_row_t *row, ngx_http_cg_limit_view_t *views);
static void ngx_http_cg_report_rank(ngx_http_cg_report_t *rp,
    ngx_http_cg_row_t *row);
static void ngx_http_cg_report_keep(ngx_http_cg_report_t *rp,
    ngx_http_cg_row_t *row);
static ngx_uint_t ngx_http_cg_report_views(ngx_http_cg_report_t *rp);
static ngx_http_cg_scratch_t *ngx_http_cg_scratch_get(size_t size);
static void ngx_http_cg_scratch_put(ngx_http_cg_scratch_t *sc);


const char  *ngx_http_cg_window_names[] = { "10s", "1m", "5m" };


/* figures ------------------------------------------------------------------ */


void
ngx_http_cg_figures(ngx_http_cg_figures_t *f, ngx_http_cg_record_t *rec,
    int64_t now, const cg_anomaly_t *an, const cg_history_view_t *view)
{
    ngx_uint_t          i;
    cg_stats_t         *st;
    cg_history_t       *h;
    cg_history_view_t   v;

    st = &rec->stats;
    h = &st->history;

    if (view) {
        v = *view;

    } else {
        cg_history_view(h, now, an, &v);
    }

    f->requests = rec->counters.requests;
    f->rejected = rec->counters.outcome[NGX_HTTP_CG_REJECTED];
    f->rejected_dry_run = rec->counters.outcome[NGX_HTTP_CG_REJECTED_DRY_RUN];
    ngx_memcpy(f->classes, st->classes, sizeof(f->classes));

    f->rate_10s = v.rate;
    f->rate_1m = cg_history_rate(h, CG_HISTORY_OFFERED, now, 60000, an);
    f->rate_5m = cg_history_rate(h, CG_HISTORY_OFFERED, now, 300000, an);
    f->error_rate_10s = v.error_rate[0];
    f->error5_rate_10s = v.error_rate[1];
    f->rejected_rate_10s = cg_history_rate(h, CG_HISTORY_REJECTED, now,
                                           2 * an->step_ms, an);
    f->base_rate = v.base_rate;
    f->young = v.young;
    f->anomaly = v.ratio;

    for (i = 0; i < 2; i++) {
        f->share[i] = v.share[i];
        f->base_share[i] = v.base_share[i];
    }

    for (i = 0; i < CG_ANOMALY_N; i++) {
        f->since[i] = h->since[i]
                      ? (uint32_t) ((uint64_t) h->since[i] * an->step_ms
                                    / 1000)
                      : 0;

        /* flagged clients first, by their ratio */

        if (f->since[i]) {
            f->anomaly += 1e6;
        }
    }

    f->utilisation = 0;
}


double
ngx_http_cg_sort_key(ngx_http_cg_figures_t *f, ngx_uint_t sort)
{
    switch (sort) {

    case NGX_HTTP_CG_SORT_RATE:
        return f->rate_10s;

    case NGX_HTTP_CG_SORT_RATE_1M:
        return f->rate_1m;

    case NGX_HTTP_CG_SORT_RATE_5M:
        return f->rate_5m;

    case NGX_HTTP_CG_SORT_REJECTED:
        return (double) f->rejected;

    case NGX_HTTP_CG_SORT_ERRORS:
        return (double) (f->classes[3] + f->classes[4]);

    case NGX_HTTP_CG_SORT_QUOTA:
        return f->utilisation;

    case NGX_HTTP_CG_SORT_ANOMALY:
        return f->anomaly;

    case NGX_HTTP_CG_SORT_NAME:
        return 0;

    default: /* NGX_HTTP_CG_SORT_REQUESTS */
        return (double) f->requests;
    }
}


u_char *
ngx_http_cg_figures_print(u_char *p, ngx_http_cg_figures_t *f)
{
    return ngx_sprintf(p, "%uL %uL %uL %uL %uL %uL %uL %uL "
                       "%.3f %.3f %.3f %.3f %.3f %.3f %.4f %.4f %.4f %.4f "
                       "%uD %uD %uD %uD %.3f %.3f",
                       f->requests, f->rejected, f->rejected_dry_run,
                       f->classes[0], f->classes[1], f->classes[2],
                       f->classes[3], f->classes[4],
                       ngx_http_cg_out_finite(f->rate_10s),
                       ngx_http_cg_out_finite(f->rate_1m),
                       ngx_http_cg_out_finite(f->rate_5m),
                       ngx_http_cg_out_finite(f->error_rate_10s),
                       ngx_http_cg_out_finite(f->error5_rate_10s),
                       ngx_http_cg_out_finite(f->base_rate),
                       ngx_http_cg_out_finite(f->share[0]),
                       ngx_http_cg_out_finite(f->share[1]),
                       ngx_http_cg_out_finite(f->base_share[0]),
                       ngx_http_cg_out_finite(f->base_share[1]),
                       f->since[0], f->since[1], f->since[2], f->young,
                       ngx_http_cg_out_finite(f->utilisation),
                       ngx_http_cg_out_finite(f->rejected_rate_10s));
}


/* what is missing or not a number is 0 */

void
ngx_http_cg_figures_parse(ngx_http_cg_figures_t *f, u_char *p, u_char *last)
{
    u_char      *t;
    ngx_int_t    n;
    ngx_uint_t   k;

    uint64_t  *counts[] = {
        &f->requests, &f->rejected, &f->rejected_dry_run, &f->classes[0],
        &f->classes[1], &f->classes[2], &f->classes[3], &f->classes[4]
    };

    double  *rates[] = {
        &f->rate_10s, &f->rate_1m, &f->rate_5m, &f->error_rate_10s,
        &f->error5_rate_10s, &f->base_rate, &f->share[0], &f->share[1],
        &f->base_share[0], &f->base_share[1]
    };

    uint32_t  *times[] = {
        &f->since[0], &f->since[1], &f->since[2], &f->young
    };

    ngx_memzero(f, sizeof(ngx_http_cg_figures_t));

    for (k = 0; k < 24 && p < last; k++) {
        for (t = p; t < last && *t != ' '; t++) { /* void */ }

        if (k < 8) {
            n = ngx_atoi(p, t - p);
            *counts[k] = n == NGX_ERROR ? 0 : (uint64_t) n;

        } else if (k < 18) {
            n = ngx_atofp(p, t - p, 4);
            *rates[k - 8] = n == NGX_ERROR ? 0 : (double) n / 10000;

        } else if (k < 22) {
            n = ngx_atoi(p, t - p);
            *times[k - 18] = n == NGX_ERROR ? 0 : (uint32_t) n;

        } else {
            n = ngx_atofp(p, t - p, 3);
            *(k == 22 ? &f->utilisation : &f->rejected_rate_10s) =
                n == NGX_ERROR ? 0 : (double) n / 1000;
        }

        p = t < last ? t + 1 : t;
    }
}


/* the report ------------------------------------------------------------- */


ngx_int_t
ngx_http_cg_report_start(ngx_http_cg_report_t *rp)
{
    ngx_uint_t             i, max, cap, batch;
    cg_topn_item_t       **slots;
    ngx_http_cg_row_t     *row;
    ngx_http_cg_kept_t    *kept;
    ngx_http_cg_record_t  *rec;

    ngx_http_cg_zone_health(rp->zone, &rp->health);
    ngx_http_cg_status_area_copy(rp->zone, &rp->area);

    /*
     * The records walked are bounded by the clients of the zone at the
     * start (records added meanwhile beyond one more batch are not shown).
     * The report's own memory: the copies and rows of one batch, and the
     * rows shown with their copies, one more for a row coming in before
     * the one it pushes out goes.
     */

    max = rp->query->client.len ? 1 : rp->health.clients + NGX_HTTP_CG_BATCH;
    batch = ngx_min(max, NGX_HTTP_CG_BATCH);
    cap = ngx_min(rp->query->limit, max);

    rp->max = max;
    rp->scratch = ngx_http_cg_scratch_get(
                      batch * (sizeof(ngx_http_cg_record_copy_t)
                               + sizeof(ngx_http_cg_row_t))
                      + (cap + 1) * (sizeof(ngx_http_cg_kept_t)
                                     + sizeof(ngx_http_cg_kept_t *)));
    if (rp->scratch == NULL) {
        return NGX_ERROR;
    }

    kept = (ngx_http_cg_kept_t *) (rp->scratch + 1);
    rp->copies = (ngx_http_cg_record_copy_t *) (kept + cap + 1);
    rp->rows = (ngx_http_cg_row_t *) (rp->copies + batch);
    rp->free = (ngx_http_cg_kept_t **) (rp->rows + batch);

    for (i = 0; i <= cap; i++) {
        rp->free[i] = &kept[i];
    }

    rp->nfree = cap + 1;

    /* the rows shown, ranked as they come */

    slots = ngx_palloc(rp->pool, (cap + 1) * sizeof(cg_topn_item_t *));
    if (slots == NULL) {
        return NGX_ERROR;
    }

    cg_topn_init(&rp->top, slots, cap);

    if (rp->query->client.len == 0) {
        rp->phase = NGX_HTTP_CG_REPORT_WALK;
        return NGX_OK;
    }

    row = &rp->rows[0];
    ngx_memzero(row, sizeof(ngx_http_cg_row_t));

    ngx_http_cg_zone_lock(rp->zone);

    rec = ngx_http_cg_zone_find(rp->zone, &rp->query->client);

    if (rec) {
        ngx_http_cg_zone_copy(&rp->copies[0], rec);
    }

    ngx_http_cg_zone_unlock(rp->zone);

    if (rec) {
        row->rec = &rp->copies[0].rec;
        ngx_http_cg_report_rank(rp, row);
        ngx_http_cg_report_keep(rp, row);
        rp->nrows = 1;
    }

    rp->phase = NGX_HTTP_CG_REPORT_SORT;

    return NGX_OK;
}


/*
 * A slice's share is one batch of records, the sort, or one batch of quota
 * views (each of the last two only when there are more rows than a batch).
 */

ngx_int_t
ngx_http_cg_report_step(ngx_http_cg_report_t *rp)
{
    for ( ;; ) {

        switch (rp->phase) {

        case NGX_HTTP_CG_REPORT_WALK:
            if (!ngx_http_cg_report_walk(rp)) {
                return NGX_AGAIN;
            }

            rp->phase = NGX_HTTP_CG_REPORT_SORT;

            if (rp->nrows > NGX_HTTP_CG_BATCH) {
                return NGX_AGAIN;
            }

            break;

        case NGX_HTTP_CG_REPORT_SORT:
            cg_topn_sort(&rp->top);
            rp->shown = rp->top.n;
            rp->phase = NGX_HTTP_CG_REPORT_VIEWS;

            if (rp->nrows > NGX_HTTP_CG_BATCH) {
                return NGX_AGAIN;
            }

            break;

        case NGX_HTTP_CG_REPORT_VIEWS:
            if (ngx_http_cg_report_views(rp)) {
                rp->phase = NGX_HTTP_CG_REPORT_MADE;
            }

            if (rp->shown > NGX_HTTP_CG_BATCH) {
                return NGX_AGAIN;
            }

            break;

        default: /* NGX_HTTP_CG_REPORT_MADE */
            return NGX_OK;
        }
    }
}


void
ngx_http_cg_report_free(ngx_http_cg_report_t *rp)
{
    if (rp->scratch) {
        ngx_http_cg_scratch_put(rp->scratch);
        rp->scratch = NULL;
    }
}


ngx_http_cg_row_t *
ngx_http_cg_report_client(ngx_http_cg_report_t *rp)
{
    int64_t                     now;
    ngx_str_t                  *name;
    ngx_http_cg_row_t          *row;
    ngx_http_cg_record_t       *rec;
    ngx_http_cg_record_copy_t  *copy;

    name = &rp->query->client;
    now = rp->query->now_ms;

    row = ngx_pcalloc(rp->pool, sizeof(ngx_http_cg_row_t));
    copy = ngx_pcalloc(rp->pool, sizeof(ngx_http_cg_record_copy_t));

    if (row == NULL || copy == NULL || name->len > CG_NAME_MAX) {
        return NULL;
    }

    row->limits = ngx_palloc(rp->pool, CG_MAX_LIMITS
                                       * sizeof(ngx_http_cg_limit_view_t));
    if (row->limits == NULL) {
        return NULL;
    }

    ngx_http_cg_status_area_copy(rp->zone, &rp->area);

    ngx_http_cg_zone_lock(rp->zone);

    rec = ngx_http_cg_zone_find(rp->zone, name);

    if (rec) {
        ngx_http_cg_zone_copy(copy, rec);
    }

    ngx_http_cg_zone_unlock(rp->zone);

    rp->nrows = (rec != NULL);

    if (rec == NULL) {
        /* not seen by this node, or evicted: its name, nothing counted */
        copy->rec.len = (u_char) name->len;
        ngx_memcpy(copy->rec.name, name->data, name->len);
    }

    /* as ngx_http_cg_report_rank() and _views() make a row shown */

    row->rec = &copy->rec;
    row->name.data = copy->rec.name;
    row->name.len = copy->rec.len;

    cg_stats_view(&row->rec->stats, now, &rp->an);
    cg_history_view(&row->rec->stats.history, now, &rp->an, &row->view);

    ngx_http_cg_report_quota(rp, row, row->limits);

    ngx_http_cg_figures(&row->figures, row->rec, now, &rp->an, &row->view);
    row->figures.utilisation = row->util;

    return row;
}


/* under the zone lock: a copy, nothing else */

static void
ngx_http_cg_report_copy(ngx_http_cg_record_t *rec, void *data)
{
    ngx_http_cg_report_t  *rp = data;

    ngx_http_cg_zone_copy(&rp->copies[rp->ncopied++], rec);
}


/*
 * One batch of NGX_HTTP_CG_BATCH records per lock: traffic waits for one
 * batch at most.  Each batch resumes after the last record copied, and its
 * rows are computed at once, outside the lock.  Returns 1 when the walk is
 * over.
 */

static ngx_uint_t
ngx_http_cg_report_walk(ngx_http_cg_report_t *rp)
{
    ngx_int_t           rc;
    ngx_uint_t          i, room;
    ngx_http_cg_row_t  *row;

    room = ngx_min(rp->max - rp->nrows, NGX_HTTP_CG_BATCH);
    row = rp->rows;

    /* the copies are written whole under the lock, the rows start empty */

    ngx_memzero(row, room * sizeof(ngx_http_cg_row_t));

    rp->ncopied = 0;

    rc = ngx_http_cg_zone_walk(rp->zone, &rp->cursor, room,
                               ngx_http_cg_report_copy, rp);

    for (i = 0; i < rp->ncopied; i++) {
        row[i].rec = &rp->copies[i].rec;
        ngx_http_cg_report_rank(rp, &row[i]);
        ngx_http_cg_report_keep(rp, &row[i]);
    }

    rp->nrows += rp->ncopied;

    return rc == NGX_DONE || rp->ncopied == 0 || rp->nrows >= rp->max;
}


/* ms until "used" units of a limit are back: a rate refills, a window ends */

static uint64_t
ngx_http_cg_report_reset(cg_limit_t *lim, uint64_t used, int64_t now)
{
    if (lim->type == CG_LIMIT_RATE) {
        return lim->count ? (used * lim->period + lim->count - 1) / lim->count
                          : 0;
    }

    return used ? (uint64_t) (lim->period - now % lim->period) : 0;
}


ngx_uint_t
ngx_http_cg_quota_view(ngx_http_cg_quota_table_t *qt, ngx_uint_t redis,
    ngx_http_cg_record_t *rec, int64_t now, ngx_http_cg_quota_view_t *qv)
{
    uint32_t                   i;
    ngx_str_t                  name;
    ngx_uint_t                 lease;
    cg_quota_t                *quota;
    cg_limit_state_t           st;
    cg_limit_result_t          res;
    ngx_http_cg_limit_view_t  *lv;

    name.data = rec->name;
    name.len = rec->len;

    qv->util = 0;
    qv->nlimits = 0;

    quota = ngx_http_cg_client_quota(qt, redis, &name,
                                     ngx_crc32_long(name.data, name.len),
                                     &lease, NULL);
    qv->redis_quota = lease;

    if (quota == NULL) {
        return 0;
    }

    qv->mode = quota->mode;
    qv->nlimits = quota->nlimits;

    /* counted cluster-wide: the lease has Redis's word on each limit */

    lease = redis && quota->mode != CG_MODE_OFF
            && rec->lease.qhash == cg_lease_quota_hash(quota);

    for (i = 0; i < quota->nlimits && i < CG_MAX_LIMITS; i++) {
        lv = &qv->limits[i];
        lv->lim = quota->limits[i];
        lv->capacity = cg_limit_capacity(&lv->lim);

        if (lease
            && cg_lease_remaining(&rec->lease, i, &lv->lim,
                                  (uint32_t) ngx_current_msec, now,
                                  &lv->remaining))
        {
            lv->reset = ngx_http_cg_report_reset(&lv->lim,
                                                 lv->capacity - lv->remaining,
                                                 now);

        } else {

            /* a check of no cost on a copy: what is left, changing nothing */

            st = rec->state[i];
            cg_limit_check(&lv->lim, &st, now, 0, 0, &res);

            lv->remaining = ngx_min(res.remaining, lv->capacity);
            lv->reset = res.reset;
        }

        lv->used = lv->capacity - lv->remaining;
        lv->util = lv->capacity ? (double) lv->used / lv->capacity : 0;

        if (lv->util > qv->util) {
            qv->util = lv->util;
        }
    }

    return 1;
}


static void
ngx_http_cg_report_quota(ngx_http_cg_report_t *rp, ngx_http_cg_row_t *row,
    ngx_http_cg_limit_view_t *views)
{
    ngx_http_cg_quota_view_t  qv;

    row->has_quota = ngx_http_cg_quota_view(rp->quotas, rp->redis, row->rec,
                                            rp->query->now_ms, &qv);
    row->redis_quota = qv.redis_quota;
    row->mode = qv.mode;
    row->nlimits = qv.nlimits;
    row->util = qv.util;

    ngx_memcpy(views, qv.limits, qv.nlimits * sizeof(ngx_http_cg_limit_view_t));
}


/*
 * One row's figures, from its copy, ranked at once among the rows shown by
 * its sort key (the order is total: ties by name, and a name is seen once,
 * so the rows kept are exactly the first "limit" of all of them sorted);
 * and the top movers.
 */

static void
ngx_http_cg_report_rank(ngx_http_cg_report_t *rp, ngx_http_cg_row_t *row)
{
    int64_t                   now;
    ngx_uint_t                j, k;
    ngx_http_cg_mover_t      *m;
    ngx_http_cg_record_t     *rec;
    ngx_http_cg_figures_t    *f;
    ngx_http_cg_limit_view_t  lv[CG_MAX_LIMITS];

    rec = row->rec;
    now = rp->query->now_ms;

    row->name.data = rec->name;
    row->name.len = rec->len;

    cg_stats_view(&rec->stats, now, &rp->an);
    cg_history_view(&rec->stats.history, now, &rp->an, &row->view);

    if (rp->query->sort == NGX_HTTP_CG_SORT_QUOTA) {
        ngx_http_cg_report_quota(rp, row, lv);
    }

    f = &row->figures;

    ngx_http_cg_figures(f, rec, now, &rp->an, &row->view);
    f->utilisation = row->util;

    row->item.key = ngx_http_cg_sort_key(f, rp->query->sort);
    row->item.name = row->name.data;
    row->item.len = row->name.len;

    /*
     * top movers: the highest ratios to their baselines, among clients
     * with one (not young) and at least min_rate over it
     */

    if (rp->an.off || row->view.young || row->view.ratio <= 1.0
        || row->view.rate < row->view.base_rate + rp->an.min_rate)
    {
        return;
    }

    for (j = 0; j < rp->nmovers; j++) {
        if (row->view.ratio > rp->movers[j].ratio) {
            break;
        }
    }

    if (j == NGX_HTTP_CG_MOVERS) {
        return;
    }

    if (rp->nmovers < NGX_HTTP_CG_MOVERS) {
        rp->nmovers++;
    }

    for (k = rp->nmovers - 1; k > j; k--) {
        rp->movers[k] = rp->movers[k - 1];
        rp->movers[k].name.data = rp->movers[k].text;
    }

    m = &rp->movers[j];
    m->ratio = row->view.ratio;
    m->rate = row->view.rate;
    m->base_rate = row->view.base_rate;
    m->name.len = row->name.len;
    m->name.data = m->text;
    ngx_memcpy(m->text, row->name.data, row->name.len);
}


/*
 * A row among those shown for now, if it ranks so: kept with its copy,
 * in place of the one it pushes out, if any (whose memory is had again).
 */

static void
ngx_http_cg_report_keep(ngx_http_cg_report_t *rp, ngx_http_cg_row_t *row)
{
    cg_topn_item_t      *out;
    ngx_http_cg_kept_t  *k;

    if (rp->nfree == 0
        || !cg_topn_wants(&rp->top, row->item.key, row->item.name,
                          row->item.len))
    {
        return;
    }

    k = rp->free[--rp->nfree];

    ngx_memcpy(&k->copy, row->rec,
               offsetof(ngx_http_cg_record_t, name) + row->rec->len);

    k->row = *row;
    k->row.rec = &k->copy.rec;
    k->row.name.data = k->copy.rec.name;
    k->row.item.name = k->copy.rec.name;

    out = cg_topn_add(&rp->top, &k->row.item);

    if (out) {
        /* the row pushed out (or this one, were it not kept after all) */
        rp->free[rp->nfree++] = (ngx_http_cg_kept_t *) out;
    }
}


/* the quota views of the rows shown, a batch at a time: 1 when all done */

static ngx_uint_t
ngx_http_cg_report_views(ngx_http_cg_report_t *rp)
{
    ngx_uint_t          i, last;
    ngx_http_cg_row_t  *row;

    last = ngx_min(rp->viewed + NGX_HTTP_CG_BATCH, rp->shown);

    for (i = rp->viewed; i < last; i++) {
        row = ngx_http_cg_report_row(rp, i);

        row->limits = ngx_palloc(rp->pool, CG_MAX_LIMITS
                                           * sizeof(ngx_http_cg_limit_view_t));
        if (row->limits == NULL) {
            rp->shown = i;
            return 1;
        }

        ngx_http_cg_report_quota(rp, row, row->limits);
    }

    rp->viewed = last;

    return last == rp->shown;
}


static ngx_http_cg_scratch_t *
ngx_http_cg_scratch_get(size_t size)
{
    ngx_http_cg_scratch_t  *sc;

    sc = ngx_http_cg_scratch_idle;

    if (sc) {
        ngx_http_cg_scratch_idle = sc->next;
        ngx_http_cg_scratch_nidle--;

        if (sc->size >= size) {
            return sc;
        }

        ngx_free(sc);
    }

    /* some room to grow: clients come and go */

    size += size / 4 + 4096;

    sc = ngx_alloc(sizeof(ngx_http_cg_scratch_t) + size, ngx_cycle->log);
    if (sc == NULL) {
        return NULL;
    }

    /*
     * fresh memory: its page faults here, once, rather than under the
     * zone's lock when the copies are made (a scratch kept for the next
     * requests has its pages)
     */

    ngx_memzero(sc + 1, size);

    sc->size = size;

    return sc;
}


static void
ngx_http_cg_scratch_put(ngx_http_cg_scratch_t *sc)
{
    if (ngx_http_cg_scratch_nidle >= NGX_HTTP_CG_SCRATCH_KEEP) {
        ngx_free(sc);
        return;
    }

    sc->next = ngx_http_cg_scratch_idle;
    ngx_http_cg_scratch_idle = sc;
    ngx_http_cg_scratch_nidle++;
}
