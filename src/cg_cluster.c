
/*
 * Copyright (C) client guard authors
 *
 * The cluster's figures of a client, from what each node published.  See
 * cg_cluster.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_cluster.h"


/* answers in the two steps judged, at least, to judge their errors */
#define NGX_HTTP_CG_CLUSTER_MIN_ANSWERS  10


void
ngx_http_cg_cluster_start(ngx_http_cg_cluster_client_t *m)
{
    ngx_uint_t              k;
    ngx_http_cg_figures_t  *f;

    f = &m->figures;

    m->nodes = 1;
    m->young = f->young ? 1 : 0;
    m->history = NULL;
    m->based_rate = f->young ? 0 : f->rate_10s;

    for (k = 0; k < 2; k++) {
        m->based_base_errors[k] = f->young ? 0
                                           : f->base_share[k] * f->base_rate;
    }

    for (k = 0; k < CG_ANOMALY_N; k++) {
        m->flagged_on[k] = f->since[k] ? 1 : 0;
    }

    if (f->young) {
        f->base_rate = 0;
    }
}


void
ngx_http_cg_cluster_add(ngx_http_cg_cluster_client_t *m,
    ngx_http_cg_cluster_client_t *e)
{
    ngx_uint_t              k;
    ngx_http_cg_figures_t  *f, *g;

    f = &m->figures;
    g = &e->figures;

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
    f->error5_rate_10s += g->error5_rate_10s;
    f->rejected_rate_10s += g->rejected_rate_10s;
    f->utilisation = ngx_max(f->utilisation, g->utilisation);

    if (g->young) {
        m->young++;

    } else {
        m->based_rate += g->rate_10s;
        f->base_rate += g->base_rate;

        for (k = 0; k < 2; k++) {
            m->based_base_errors[k] += g->base_share[k] * g->base_rate;
        }
    }

    /* flagged by a node: since its first */

    for (k = 0; k < CG_ANOMALY_N; k++) {
        if (g->since[k] == 0) {
            continue;
        }

        m->flagged_on[k]++;

        if (f->since[k] == 0 || g->since[k] < f->since[k]) {
            f->since[k] = g->since[k];
        }
    }

    m->nodes++;
}


void
ngx_http_cg_cluster_judge(ngx_http_cg_cluster_client_t *m,
    const cg_anomaly_t *an, uint32_t now)
{
    double                  need, answers, base, err, secs;
    ngx_uint_t              k;
    ngx_http_cg_figures_t  *f;
    cg_history_view_t      *v;

    f = &m->figures;
    v = &m->view;

    ngx_memzero(v, sizeof(cg_history_view_t));

    v->young = (m->young == m->nodes);
    v->rate = f->rate_10s;
    v->base_rate = f->base_rate;
    v->ratio = m->based_rate / ngx_max(f->base_rate, 0.01);
    v->ratio = ngx_min(v->ratio, 1000);

    answers = ngx_max(f->rate_10s - f->rejected_rate_10s, 0);

    v->error_rate[0] = f->error_rate_10s;
    v->error_rate[1] = f->error5_rate_10s;

    for (k = 0; k < 2; k++) {
        v->share[k] = answers > 0 ? ngx_min(v->error_rate[k] / answers, 1)
                                  : 0;
        v->base_share[k] = f->base_rate > 0
                           ? m->based_base_errors[k] / f->base_rate : 0;
    }

    f->young = v->young;
    f->share[0] = v->share[0];
    f->share[1] = v->share[1];
    f->base_share[0] = v->base_share[0];
    f->base_share[1] = v->base_share[1];

    if (an->off || v->young) {
        ngx_memzero(f->since, sizeof(f->since));
        ngx_memzero(m->flagged_on, sizeof(m->flagged_on));
        f->anomaly = v->ratio;
        return;
    }

    /*
     * the sums judged as a node judges its own: a surge spread over the
     * nodes, each below its threshold, is one in the cluster (and has no
     * "since" but now)
     */

    base = f->base_rate;
    need = ngx_max(base * an->ratio, base + an->min_rate);

    if (f->since[CG_ANOMALY_SURGE] == 0 && m->based_rate >= need) {
        f->since[CG_ANOMALY_SURGE] = now;
    }

    secs = 2.0 * an->step_ms / 1000;

    for (k = 0; k < 2; k++) {
        err = v->error_rate[k] - v->base_share[k] * answers;

        if (f->since[CG_ANOMALY_4XX + k] == 0
            && answers * secs >= NGX_HTTP_CG_CLUSTER_MIN_ANSWERS
            && v->share[k] >= v->base_share[k] + an->error_share
            && err >= an->error_rate)
        {
            f->since[CG_ANOMALY_4XX + k] = now;
        }
    }

    f->anomaly = v->ratio;

    for (k = 0; k < CG_ANOMALY_N; k++) {
        if (f->since[k]) {
            f->anomaly += 1e6;
        }
    }
}


ngx_int_t
ngx_http_cg_cluster_history(ngx_http_cg_cluster_client_t *m, u_char *p,
    u_char *last, uint32_t slot, ngx_pool_t *pool)
{
    u_char     *t;
    uint8_t     c;
    uint32_t    v[6], age, at, s, i, k;
    ngx_int_t   n;

    /* "<step> <first> <4 counts of the step>" then the ring in hex */

    for (i = 0; i < 6; i++) {
        for (t = p; t < last && *t != ' '; t++) { /* void */ }

        n = ngx_atoi(p, t - p);
        if (n == NGX_ERROR || t == last) {
            return NGX_DECLINED;
        }

        v[i] = (uint32_t) n;
        p = t + 1;
    }

    if (last - p != 2 * CG_HISTORY_SLOTS * CG_HISTORY_SERIES
        || v[0] < v[1])
    {
        return NGX_DECLINED;
    }

    for (t = p; t < last; t += 2) {
        if (ngx_hextoi(t, 2) == NGX_ERROR) {
            return NGX_DECLINED;
        }
    }

    if (m->history == NULL) {
        m->history = ngx_pcalloc(pool, NGX_HTTP_CG_CLUSTER_STEPS
                                       * CG_HISTORY_SERIES
                                       * sizeof(uint32_t));
        if (m->history == NULL) {
            return NGX_ERROR;
        }
    }

    /* the node's step "age" steps before its current: the answer's "at" */

    for (age = 0; age <= CG_HISTORY_SLOTS && age <= v[0] - v[1]; age++) {
        s = v[0] - age;

        if (s > slot || slot - s >= NGX_HTTP_CG_CLUSTER_STEPS) {
            continue;
        }

        at = NGX_HTTP_CG_CLUSTER_STEPS - 1 - (slot - s);

        for (k = 0; k < CG_HISTORY_SERIES; k++) {
            if (age == 0) {
                m->history[at * CG_HISTORY_SERIES + k] += v[2 + k];
                continue;
            }

            i = 2 * ((s % CG_HISTORY_SLOTS) * CG_HISTORY_SERIES + k);
            c = (uint8_t) (ngx_hextoi(p + i, 2) & 0xff);

            m->history[at * CG_HISTORY_SERIES + k] += cg_history_decode(c);
        }
    }

    return NGX_OK;
}
