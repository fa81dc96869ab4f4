
/*
 * Copyright (C) client guard authors
 *
 * How a request is decided.  See cg_decide.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_decide.h"
#include "cg_parse.h"
#include "cg_redis_quota.h"
#include "cg_reject_log.h"
#include "cg_stats_log.h"


static ngx_int_t ngx_http_cg_decide(ngx_http_request_t *r,
    ngx_http_cg_loc_conf_t *lcf, ngx_http_cg_ctx_t *ctx);
static ngx_int_t ngx_http_cg_identify_request(ngx_http_request_t *r,
    ngx_http_cg_loc_conf_t *lcf, ngx_http_cg_ctx_t *ctx);
static void ngx_http_cg_set_headers(ngx_http_request_t *r,
    const cg_quota_t *q, ngx_str_t *policy, ngx_int_t binding,
    cg_limit_result_t *res, ngx_uint_t rejected);
static void ngx_http_cg_log_reject(ngx_http_request_t *r,
    ngx_http_cg_loc_conf_t *lcf, ngx_http_cg_ctx_t *ctx, const cg_quota_t *q,
    ngx_int_t binding, cg_limit_result_t *res);
static ngx_http_cg_ctx_t *ngx_http_cg_get_ctx(ngx_http_request_t *r,
    ngx_uint_t create);
static void ngx_http_cg_cleanup(void *data);


static ngx_str_t  ngx_http_cg_reasons[NGX_HTTP_CG_ID_NREASONS] = {
    ngx_null_string,
    ngx_string("no rule matched"),
    ngx_string("invalid name"),
    ngx_string("unknown API key")
};


/* the preaccess handler ---------------------------------------------------- */


ngx_int_t
ngx_http_cg_decide_handler(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_http_cg_ctx_t       *ctx;
    ngx_http_cg_loc_conf_t  *lcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_client_guard_module);

    if (lcf->zone == NULL) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_cg_get_ctx(r, 1);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->done) {
        /*
         * NGX_AGAIN: still waiting for a lease; NGX_OK: resumed after
         * waiting, decide now; NGX_DECLINED: decided already, before an
         * internal redirect
         */

        rc = ngx_http_cg_lease_pending(ctx->lease);

        if (rc != NGX_OK) {
            return rc;
        }
    }

    ctx->done = 1;

    return ngx_http_cg_decide(r, lcf, ctx);
}


/*
 * The tier of a record just decided (cg_zone.h): OWN with a quota of its
 * own; LIMITED when rejected, or with less than an eighth of its capacity
 * left, until half of it is back (a flood must not give it a fresh
 * counter); else RETURNING once found again after a second, or NEW.
 */

static ngx_inline ngx_uint_t
ngx_http_cg_tier(ngx_http_cg_record_t *rec, ngx_uint_t own,
    ngx_uint_t outcome, const cg_quota_t *q, ngx_int_t binding,
    cg_limit_result_t *res)
{
    uint64_t           cap;
    const cg_limit_t  *lim;

    if (own) {
        return NGX_HTTP_CG_TIER_OWN;
    }

    if (outcome == NGX_HTTP_CG_REJECTED
        || outcome == NGX_HTTP_CG_REJECTED_DRY_RUN)
    {
        return NGX_HTTP_CG_TIER_LIMITED;
    }

    if (binding >= 0) {
        lim = &q->limits[binding];
        cap = (lim->type == CG_LIMIT_RATE) ? lim->burst + 1 : lim->count;

        if (res->remaining < cap / 8
            || (rec->tier == NGX_HTTP_CG_TIER_LIMITED
                && res->remaining < cap / 2))
        {
            return NGX_HTTP_CG_TIER_LIMITED;
        }
    }

    return (rec->tier == NGX_HTTP_CG_TIER_NEW) ? NGX_HTTP_CG_TIER_NEW
                                               : NGX_HTTP_CG_TIER_RETURNING;
}


static ngx_int_t
ngx_http_cg_decide(ngx_http_request_t *r, ngx_http_cg_loc_conf_t *lcf,
    ngx_http_cg_ctx_t *ctx)
{
    u_char                   *p, buf[4 * 64 + CG_ESCAPE_MIN];
    int64_t                   now;
    uint32_t                  hash;
    ngx_int_t                 binding;
    ngx_str_t                *policy;
    ngx_uint_t                outcome, dry_run, take, local, own;
    ngx_time_t               *tp;
    cg_quota_t                copy, *quota, *asked;
    cg_limit_result_t         res;
    ngx_http_cg_zone_t       *zone;
    ngx_http_cg_record_t     *rec;
    ngx_http_cg_lease_req_t  *lr;
    ngx_http_cg_main_conf_t  *mcf;

    static cg_quota_t         none;    /* no quota: no limits, counted */

    /* 1. who is calling */

    if (ngx_http_cg_identify_request(r, lcf, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    zone = lcf->zone;

    if (ctx->reason != NGX_HTTP_CG_ID_OK && ctx->zone == NULL) {

        /* once: a request resumed after waiting for a lease comes again */

        (void) ngx_atomic_fetch_add(&zone->sh->unidentified[ctx->reason], 1);
    }

    ctx->zone = zone;

    if (ctx->reason != NGX_HTTP_CG_ID_OK && ctx->client.len == 0) {
        ctx->outcome = NGX_HTTP_CG_UNIDENTIFIED;

        if (ngx_http_cg_reject_log(NGX_HTTP_CG_REJECT_UNKNOWN,
                                   &ngx_http_cg_reasons[ctx->reason],
                                   &zone->name, lcf->log_level)
            == NGX_OK)
        {
            p = cg_escape(buf, sizeof(buf), ctx->raw.data,
                          ngx_min(ctx->raw.len, 64));

            ngx_log_error(lcf->log_level, r->connection->log, 0,
                          "client guard: rejecting unidentified request "
                          "(%V: \"%*s%s\") with %i",
                          &ngx_http_cg_reasons[ctx->reason], p - buf, buf,
                          ctx->raw.len > 64 ? "..." : "",
                          (ngx_int_t) ctx->status);
        }

        return (ngx_int_t) ctx->status;
    }

    /* 2. its quota */

    mcf = ngx_http_get_module_main_conf(r, ngx_http_client_guard_module);

    hash = ngx_crc32_long(ctx->client.data, ctx->client.len);  /* = short */

    quota = ngx_http_cg_client_quota(&mcf->quotas, mcf->redis != NULL,
                                     &ctx->client, hash, NULL, &policy);

    if (quota == NULL) {
        quota = &none;
    }

    asked = quota;

    dry_run = lcf->dry_run || quota->mode == CG_MODE_DRY_RUN;

    lr = NULL;

    if (mcf->redis && quota->mode != CG_MODE_OFF && quota->nlimits) {

        /* counted cluster-wide, by a lease */

        lr = ngx_http_cg_lease_req(r, ctx->lease, &ctx->client, hash,
                                    quota);
        if (lr == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->lease = lr;
    }

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    binding = -1;
    res.allowed = 1;
    take = CG_LEASE_PASS;

    /* 3. its record, and the decision: all under one lock of the zone */

    ngx_http_cg_zone_lock(zone);

    /* this worker's finished requests, while the lock is held anyway */

    ngx_http_cg_stats_flush_locked(zone);

    rec = ctx->rec ? ctx->rec
                   : ngx_http_cg_zone_record(zone, &ctx->client, hash,
                                             ngx_current_msec, 1);

    if (quota->mode == CG_MODE_OFF) {
        outcome = NGX_HTTP_CG_BYPASSED;

    } else {
        local = 1;

        if (lr) {
            take = ngx_http_cg_lease_take(lr, zone, rec);

            if (take == CG_LEASE_DOWN) {

                /*
                 * the failure policy: "local" makes the quota this node's
                 * share, and the policy text is made for that
                 */

                copy = *quota;
                quota = &copy;
                policy = NULL;

                local = (ngx_http_cg_lease_policy(lr, quota, &res)
                         == NGX_DECLINED);

            } else {
                local = 0;

                if (take != CG_LEASE_WAIT) {
                    binding = ngx_http_cg_lease_result(lr, &res);
                }
            }
        }

        if (local && rec) {
            binding = cg_quota_check(quota, rec->state, now, 1, 1, &res);
        }

        if (res.allowed) {
            outcome = NGX_HTTP_CG_PASSED;

        } else {
            outcome = dry_run ? NGX_HTTP_CG_REJECTED_DRY_RUN
                              : NGX_HTTP_CG_REJECTED;
        }
    }

    if (rec && take != CG_LEASE_WAIT) {
        rec->counters.requests++;
        rec->counters.outcome[outcome]++;

        /*
         * its tier for eviction: when it was just created or moved in the
         * LRU (at most once a second), or is rejected
         */

        if (rec->lag == 0 || !res.allowed) {

            /* a quota of its own, rather than the default: evicted last */

            own = asked != &none
                  && (mcf->quotas.dflt == NULL
                      || asked != &mcf->quotas.dflt->quota)
                  && (mcf->redis == NULL
                      || asked != ngx_http_cg_redis_default());

            ngx_http_cg_zone_retier(zone, rec,
                                    ngx_http_cg_tier(rec, own, outcome, quota,
                                                     binding, &res));
        }
    }

    /* pinned until the log phase: no second lookup, no eviction */

    if (rec && ctx->rec == NULL) {
        rec->refs++;
        ctx->rec = rec;
    }

    ngx_http_cg_zone_unlock(zone);

    if (lr) {
        /* the next lease, when the take made one due */
        ngx_http_cg_lease_send(lr);

        if (take == CG_LEASE_WAIT) {
            return ngx_http_cg_lease_wait(lr);
        }
    }

    /* 4. what the client is told, and the log */

    ctx->outcome = outcome;

    if (lcf->headers && binding >= 0) {
        ngx_http_cg_set_headers(r, quota, policy, binding, &res,
                                outcome == NGX_HTTP_CG_REJECTED);
    }

    if (outcome == NGX_HTTP_CG_PASSED || outcome == NGX_HTTP_CG_BYPASSED) {
        return NGX_DECLINED;
    }

    ngx_http_cg_log_reject(r, lcf, ctx, quota, binding, &res);

    if (outcome == NGX_HTTP_CG_REJECTED_DRY_RUN) {
        return NGX_DECLINED;
    }

    return (lr && lr->code) ? (ngx_int_t) lr->code : lcf->reject_status;
}


static ngx_int_t
ngx_http_cg_identify_request(ngx_http_request_t *r,
    ngx_http_cg_loc_conf_t *lcf, ngx_http_cg_ctx_t *ctx)
{
    ngx_int_t  rc, status;

    if (ctx->identified) {
        return NGX_OK;
    }

    status = 0;

    rc = ngx_http_cg_identify(r, lcf->rules, lcf->name_max_len, &ctx->client,
                              &ctx->raw, &status);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    ctx->identified = 1;
    ctx->reason = rc;

    if (rc != NGX_HTTP_CG_ID_OK) {

        /* an unknown API key with its own status has no fallback */

        if (rc == NGX_HTTP_CG_ID_UNKNOWN_KEY && status) {
            ctx->status = (uint32_t) status;
            ngx_str_null(&ctx->client);

        } else {
            ctx->status = (uint32_t) lcf->unidentified_status;
            ctx->client = lcf->fallback;
        }
    }

    return NGX_OK;
}


/* the quota of a client ---------------------------------------------------- */


static ngx_http_cg_quota_def_t *
ngx_http_cg_quota_find(ngx_http_cg_quota_table_t *qt, ngx_str_t *name,
    uint32_t hash)
{
    ngx_http_cg_quota_def_t  *def;

    for (def = qt->buckets[hash & qt->mask]; def; def = def->next) {
        if (def->hash == hash && def->name.len == name->len
            && ngx_memcmp(def->name.data, name->data, name->len) == 0)
        {
            return def;
        }
    }

    return NULL;
}


cg_quota_t *
ngx_http_cg_client_quota(ngx_http_cg_quota_table_t *qt, ngx_uint_t redis_on,
    ngx_str_t *name, uint32_t hash, ngx_uint_t *redis, ngx_str_t **policy)
{
    ngx_uint_t                from_redis;
    cg_quota_t               *quota;
    ngx_http_cg_quota_def_t  *def;

    def = NULL;
    from_redis = 1;

    quota = redis_on ? ngx_http_cg_redis_quota(name, hash) : NULL;

    if (quota == NULL) {
        def = ngx_http_cg_quota_find(qt, name, hash);

        if (def == NULL) {
            quota = redis_on ? ngx_http_cg_redis_default() : NULL;

            if (quota == NULL) {
                def = qt->dflt;
            }
        }
    }

    if (def) {
        from_redis = 0;
        quota = &def->quota;

    } else if (quota == NULL) {
        from_redis = 0;
    }

    if (redis) {
        *redis = from_redis;
    }

    if (policy) {
        *policy = (def && def->policy.len) ? &def->policy : NULL;
    }

    return quota;
}


/* what the client is told, and the log ------------------------------------- */


static ngx_table_elt_t *
ngx_http_cg_add_header(ngx_http_request_t *r, const char *name, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = len;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return h;
}


/*
 * RateLimit-Policy lists every limit of the client's quota, RateLimit the
 * one that decides (draft-ietf-httpapi-ratelimit-headers-11).  For a rate,
 * q is the sustained rate per window w; r is what may be sent right now
 * (burst included) and t when the limit is fully restored.  A quota from
 * the configuration comes with its RateLimit-Policy value made; the values
 * made here share one allocation.
 */

static void
ngx_http_cg_set_headers(ngx_http_request_t *r, const cg_quota_t *q,
    ngx_str_t *policy, ngx_int_t binding, cg_limit_result_t *res,
    ngx_uint_t rejected)
{
    u_char           *p;
    size_t            len;
    ngx_table_elt_t  *h;

    len = sizeof("\"quota_s\";r=;t=") + 2 * CG_UINT_LEN + CG_UINT_LEN;

    if (policy == NULL) {
        len += cg_quota_policy_len(q);
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return;
    }

    h = ngx_http_cg_add_header(r, "RateLimit-Policy",
                               sizeof("RateLimit-Policy") - 1);
    if (h == NULL) {
        return;
    }

    if (policy) {
        h->value = *policy;

    } else {
        h->value.data = p;
        p = cg_quota_policy_print(p, q);
        h->value.len = p - h->value.data;
    }

    h = ngx_http_cg_add_header(r, "RateLimit", sizeof("RateLimit") - 1);
    if (h == NULL) {
        return;
    }

    h->value.data = p;
    p = cg_limit_policy_item(p, &q->limits[binding], 'r');
    p = cg_limit_uint(p, res->remaining);
    *p++ = ';';
    *p++ = 't';
    *p++ = '=';
    p = cg_limit_uint(p, (res->reset + 999) / 1000);
    h->value.len = p - h->value.data;

    if (!rejected) {
        return;
    }

    h = ngx_http_cg_add_header(r, "Retry-After", sizeof("Retry-After") - 1);
    if (h == NULL) {
        return;
    }

    h->value.data = p;
    p = cg_limit_uint(p, res->retry ? (res->retry + 999) / 1000 : 1);
    h->value.len = p - h->value.data;
}


static void
ngx_http_cg_log_reject(ngx_http_request_t *r, ngx_http_cg_loc_conf_t *lcf,
    ngx_http_cg_ctx_t *ctx, const cg_quota_t *q, ngx_int_t binding,
    cg_limit_result_t *res)
{
    u_char  *p, buf[CG_LIMIT_PRINT_LEN];

    if (ngx_http_cg_reject_log(ctx->outcome == NGX_HTTP_CG_REJECTED_DRY_RUN
                               ? NGX_HTTP_CG_REJECT_DRY_RUN
                               : NGX_HTTP_CG_REJECT_LIMITED,
                               &ctx->client, &lcf->zone->name,
                               lcf->log_level)
        != NGX_OK)
    {
        /* counted: one line a second says how many */
        return;
    }

    p = buf;

    if (binding >= 0) {
        p = cg_limit_print(p, &q->limits[binding]);
    }

    ngx_log_error(lcf->log_level, r->connection->log, 0,
                  "client guard: limiting client \"%V\" by %*s "
                  "(limit %i of %uD), retry in %uL ms, zone \"%V\"%s",
                  &ctx->client, p - buf, buf, binding + 1, q->nlimits,
                  res->retry, &lcf->zone->name,
                  ctx->outcome == NGX_HTTP_CG_REJECTED_DRY_RUN
                  ? ", dry run" : "");
}


/* the log phase ------------------------------------------------------------ */


ngx_int_t
ngx_http_cg_decide_log_handler(ngx_http_request_t *r)
{
    ngx_http_cg_ctx_t        *ctx;
    ngx_http_cg_main_conf_t  *mcf;

    if (r != r->main) {
        /* a logged subrequest shares the main request's pool and ctx */
        return NGX_OK;
    }

    ctx = ngx_http_cg_get_ctx(r, 0);

    if (ctx == NULL || ctx->rec == NULL) {
        return NGX_OK;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_client_guard_module);

    /* its statistics: counted in a batch, the record unpinned then */

    ngx_http_cg_stats_log(r, ctx->zone, ctx->rec, ctx->outcome,
                          &mcf->anomaly);

    ctx->rec = NULL;

    return NGX_OK;
}


/* the request's context ---------------------------------------------------- */


static ngx_http_cg_ctx_t *
ngx_http_cg_get_ctx(ngx_http_request_t *r, ngx_uint_t create)
{
    ngx_pool_cleanup_t  *cln;
    ngx_http_cg_ctx_t   *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_client_guard_module);

    if (ctx) {
        return ctx;
    }

    /* an internal redirect clears r->ctx: the cleanup entry remains */

    for (cln = r->internal ? r->pool->cleanup : NULL; cln; cln = cln->next) {
        if (cln->handler == ngx_http_cg_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_client_guard_module);
            return ctx;
        }
    }

    if (!create) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_cg_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_cg_ctx_t));

    cln->handler = ngx_http_cg_cleanup;

    ngx_http_set_ctx(r, ctx, ngx_http_client_guard_module);

    return ctx;
}


static void
ngx_http_cg_cleanup(void *data)
{
    ngx_http_cg_ctx_t  *ctx = data;

    /* the context lives in the cleanup entry: nothing to free */

    /* a request that waits for a lease leaves the waiters */
    ngx_http_cg_lease_cleanup(ctx->lease);
}


/* variables ---------------------------------------------------------------- */


ngx_int_t
ngx_http_cg_client_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_cg_ctx_t       *ctx;
    ngx_http_cg_loc_conf_t  *lcf;

    ctx = ngx_http_cg_get_ctx(r->main, 1);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (!ctx->identified) {
        lcf = ngx_http_get_module_loc_conf(r->main,
                                           ngx_http_client_guard_module);

        if (ngx_http_cg_identify_request(r->main, lcf, ctx) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ctx->client.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->client.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ctx->client.data;

    return NGX_OK;
}


ngx_int_t
ngx_http_cg_outcome_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t          *name;
    ngx_http_cg_ctx_t  *ctx;

    ctx = ngx_http_cg_get_ctx(r->main, 0);

    if (ctx == NULL || ctx->outcome == NGX_HTTP_CG_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    name = &ngx_http_cg_outcomes[ctx->outcome].variable;

    v->len = name->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = name->data;

    return NGX_OK;
}


/* client_guard zone=name | off --------------------------------------------- */


char *
ngx_http_cg_decide_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_zone_t  **zp = (void *) ((char *) conf + cmd->offset);

    ngx_str_t                *value, name;
    ngx_http_cg_main_conf_t  *mcf;

    if (*zp != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        *zp = NULL;
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value[1].data, "zone=", 5) != 0 || value[1].len == 5) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in \"client_guard\", "
                           "expected \"zone=name\" or \"off\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data + 5;
    name.len = value[1].len - 5;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_client_guard_module);

    *zp = ngx_http_cg_zone_get(cf, &mcf->zones, &name);
    if (*zp == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
