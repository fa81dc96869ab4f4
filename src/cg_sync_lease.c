
/*
 * Copyright (C) client guard authors
 *
 * cg_sync_lease: the cluster-wide count through allowance leases.
 *
 * Owns: the Lua lease script, the lease kept in each client's record of
 * the zone (spent under the zone lock, the next one fetched ahead of
 * time, sized to this node's traffic), the lease requests in flight with
 * the NOSCRIPT retry and the circuit breaker, ngx_http_cg_sync_enforce(),
 * and the requests that wait for a lease until it comes or the command
 * timeout hands them to the failure policy.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>

#include "cg_common.h"
#include "cg_sync_int.h"


#define NGX_HTTP_CG_SYNC_WAKE        2      /* waiters poll, ms */
#define NGX_HTTP_CG_SYNC_WANT_MAX    10000


/*
 * The lease script.  KEYS: one per limit.  ARGV[1]: units wanted, ARGV[2]:
 * how many of them were admitted already (ahead of a lease); then per
 * limit: "r" or "w", count, period (ms), burst.  Grants min(wanted, what
 * every limit still has), fewer near the end of a window (but not fewer
 * than those admitted), charges every limit, and returns { granted,
 * ms until a unit is free when none is, the binding limit (1-based),
 * what the binding limit has left after the grant }.  A rate is a GCRA
 * bucket whose TAT (us, Redis TIME) lives in the key; a window is a
 * counter in a key named after the window number.
 */

const char  ngx_http_cg_sync_script[] =
    "local want = tonumber(ARGV[1])\n"
    "local owed = tonumber(ARGV[2])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local grant = want\n"
    "local wavail = nil\n"
    "local retry = 0\n"
    "local bind = 1\n"
    "local least = nil\n"
    "local st = {}\n"
    "for i = 1, #KEYS do\n"
    "  local b = 3 + (i - 1) * 4\n"
    "  local count = tonumber(ARGV[b + 1])\n"
    "  local period = tonumber(ARGV[b + 2]) * 1000\n"
    "  local a, r\n"
    "  if ARGV[b] == 'r' then\n"
    "    local T = period / count\n"
    "    local tau = tonumber(ARGV[b + 3]) * T\n"
    "    local tat = tonumber(redis.call('GET', KEYS[i]) or now)\n"
    "    if tat < now then tat = now end\n"
    "    local x = now + tau - tat\n"
    "    if x < 0 then a = 0 else a = math.floor(x / T) + 1 end\n"
    "    r = tat - tau - now\n"
    "    st[i] = { tat, T }\n"
    "  else\n"
    "    local used = tonumber(redis.call('GET', KEYS[i]) or 0)\n"
    "    a = count - used\n"
    "    if a < 0 then a = 0 end\n"
    "    r = period - (now % period)\n"
    "    if wavail == nil or a < wavail then wavail = a end\n"
    "  end\n"
    "  if least == nil or a < least then least = a; bind = i end\n"
    "  if a < grant then grant = a end\n"
    "  if a == 0 and r > retry then retry = r end\n"
    "end\n"
    "if wavail ~= nil and wavail < want * 8 then\n"
    "  local s = math.floor(wavail / 8)\n"
    "  if s < 1 then s = 1 end\n"
    "  if s < owed then s = owed end\n"
    "  if s < grant then grant = s end\n"
    "end\n"
    "if grant > 0 then\n"
    "  for i = 1, #KEYS do\n"
    "    local b = 3 + (i - 1) * 4\n"
    "    if ARGV[b] == 'r' then\n"
    "      local tat = st[i][1] + grant * st[i][2]\n"
    "      redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX',\n"
    "                 math.ceil((tat - now) / 1000) + 1000)\n"
    "    else\n"
    "      redis.call('INCRBY', KEYS[i], grant)\n"
    "      redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[b + 2]) + 60000)\n"
    "    end\n"
    "  end\n"
    "  retry = 0\n"
    "end\n"
    "return { grant, math.ceil(retry / 1000), bind, least - grant }\n";

const size_t  ngx_http_cg_sync_script_len =
    sizeof(ngx_http_cg_sync_script) - 1;


static ngx_int_t ngx_http_cg_sync_fetch_send(ngx_http_cg_fetch_t *f);
static void ngx_http_cg_sync_fetch(ngx_http_cg_zone_t *zone,
    ngx_http_cg_node_t *node, ngx_str_t *name, cg_quota_t *q,
    uint32_t qhash, uint32_t want, uint32_t owed, uint32_t started);


/* leases */

static uint32_t
ngx_http_cg_quota_hash(cg_quota_t *q)
{
    size_t  len;

    /* the mode, the number of limits and the limits in use */

    len = offsetof(cg_quota_t, limits)
          + ngx_min(q->nlimits, CG_MAX_LIMITS) * sizeof(cg_limit_t);

    return ngx_murmur_hash2((u_char *) q, len) | 1;
}


static ngx_msec_t
ngx_http_cg_lease_ttl(cg_quota_t *q, ngx_uint_t small)
{
    int64_t      now, left;
    uint32_t     i;
    ngx_msec_t   ttl;
    ngx_time_t  *tp;

    /*
     * a rate lease is short: tokens spent late would exceed the rate; a
     * small one (no more than "ahead" units) may last a second
     */

    ttl = 1000;

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    for (i = 0; i < q->nlimits; i++) {
        if (q->limits[i].type == CG_LIMIT_RATE) {
            if (!small) {
                ttl = ngx_min(ttl, 2 * ngx_http_cg_sync_w.conf->lease);
            }

            continue;
        }

        /* a window lease ends with the window */
        left = q->limits[i].period - now % q->limits[i].period;
        ttl = ngx_min(ttl, (ngx_msec_t) left);
    }

    return ngx_max(ttl, 1);
}


/*
 * How many requests of a client this node may admit ahead of a lease
 * (charged to Redis right after): "ahead=", at most 1% of every limit;
 * and how much Redis must have said is left for that: more than 8 times
 * as many, and more than a tenth of every limit.
 */

static uint32_t
ngx_http_cg_lease_ahead(cg_quota_t *q, uint32_t *reserve)
{
    uint64_t    cap, least;
    uint32_t    i;

    cap = ngx_http_cg_sync_w.conf->ahead;
    least = NGX_MAX_UINT32_VALUE;

    for (i = 0; i < q->nlimits; i++) {
        cap = ngx_min(cap, q->limits[i].count / 100);
        least = ngx_min(least, q->limits[i].count);
    }

    if (reserve) {
        *reserve = (uint32_t) ngx_max(8 * cap, least / 10);
    }

    return (uint32_t) cap;
}


/*
 * Under the zone lock: spends a unit of the client's lease, admits the
 * request ahead of one, or says why not.  Sets *want (and *owed, the
 * units of it admitted already) when this worker must fetch now.
 */

static ngx_uint_t
ngx_http_cg_lease_take(ngx_http_cg_lease_t *l, uint32_t qhash,
    uint32_t ahead, uint32_t reserve, uint32_t now, uint32_t *want,
    uint32_t *owed, uint64_t *retry, uint64_t *remaining, ngx_uint_t *binding)
{
    uint32_t          rate, est;
    ngx_uint_t        rc, active, fetch;
    uint32_t          elapsed;
    ngx_http_cg_sync_conf_t  *scf;

    scf = ngx_http_cg_sync_w.conf;

    if (l->qhash != qhash) {
        /* another quota: the lease and a fetch in flight are void */
        l->qhash = qhash;
        l->left = 0;
        l->denied = 0;
        l->want = 0;
        l->fetching = 0;
        l->binding = 0;
        l->owed = 0;
        l->headroom = 0;
    }

    if (l->since == 0) {
        l->since = now;
    }

    *binding = l->binding;

    active = l->fetching
             && (int32_t) (now - l->fetching)
                < (int32_t) (2 * scf->redis->timeout);
    fetch = 0;

    if (l->left && (int32_t) (l->expires - now) > 0) {
        l->left--;
        l->spent++;
        /* the cluster's view: Redis's last word plus this node's lease */
        *remaining = (uint64_t) l->left + l->headroom;
        rc = NGX_HTTP_CG_TAKE_PASS;

        /*
         * the next lease ahead of time, unless the client is so slow
         * (under 2 r/s here) that a lease would mostly expire unspent:
         * its units would be lost to the window
         */

        if (l->left <= l->want / 2 && !active
            && (l->left > 0 || l->rate >= 2))
        {
            fetch = 1;
        }

    } else if ((int32_t) (l->denied - now) > 0) {
        *retry = l->denied - now;
        rc = NGX_HTTP_CG_TAKE_REJECT;

    } else if (!ngx_http_cg_redis_ready(ngx_http_cg_sync_w.link)
               || (ngx_msec_int_t) (ngx_http_cg_sync_w.broken
                                    - ngx_current_msec) > 0)
    {
        /* the circuit breaker is open: the failure policy decides */
        rc = NGX_HTTP_CG_TAKE_DOWN;

    } else if (l->owed < ahead && l->headroom > reserve) {

        /*
         * no lease, but Redis said there is plenty left: admit now and
         * charge Redis right after, instead of making the request wait
         */

        l->owed++;
        l->headroom--;
        l->spent++;
        *remaining = l->headroom;
        rc = NGX_HTTP_CG_TAKE_AHEAD;
        fetch = !active;

    } else if (l->headroom == 0 && l->granted
               && now - l->granted < 1000)
    {
        /*
         * the client is at its limit (the last lease took what Redis had
         * left): reject at once while Redis is asked for what frees up,
         * instead of making the request wait for the answer
         */

        *retry = 1;
        rc = NGX_HTTP_CG_TAKE_REJECT;
        fetch = !active;

    } else {
        rc = NGX_HTTP_CG_TAKE_WAIT;
        fetch = !active;
    }

    if (!fetch || !ngx_http_cg_redis_ready(ngx_http_cg_sync_w.link)) {
        return rc;
    }

    /* the size of the next lease: about "lease" ms of this node's traffic */

    elapsed = now - l->since;

    if (elapsed >= 20) {
        rate = (uint32_t) ngx_min((uint64_t) l->spent * 1000 / elapsed,
                                  1000000);
        l->rate = l->rate ? (l->rate + rate) / 2 : rate;
        l->spent = 0;
        l->since = now;
    }

    est = (uint32_t) ((uint64_t) l->rate * scf->lease / 1000);

    if (l->left == 0 && l->want
        && now - l->granted < (uint32_t) scf->lease)
    {
        /* ran dry quicker than a lease should last: grow quickly */
        est = ngx_max(est, ngx_min(l->want * 2, 1024));
    }

    est = ngx_max(est, 1);
    est = ngx_min(est, NGX_HTTP_CG_SYNC_WANT_MAX);

    if (l->granted == 0 && l->rate == 0) {
        /*
         * a client new to this node: a small lease at once, so that a
         * client that keeps coming costs Redis one call per "ahead"
         * requests from the start (units it leaves unspent expire)
         */
        est = ngx_max(est, ahead);

    } else if (l->rate < 2) {
        if (l->owed) {
            /* a slow client: charge what was admitted, nothing to expire */
            est = 0;
        }

    } else if (est < ahead) {
        /* a small lease lasts a second: a second of traffic, <= "ahead" */
        est = ngx_min(ahead, ngx_max(est, l->rate));
    }

    *owed = l->owed;
    *want = l->owed + est;
    l->owed = 0;
    l->want = *want;
    l->fetching = now ? now : 1;

    return rc;
}


static ngx_http_cg_fetch_t *
ngx_http_cg_fetch_alloc(void)
{
    ngx_http_cg_fetch_t        *f;
    ngx_http_cg_sync_worker_t  *w = &ngx_http_cg_sync_w;

    if (w->free) {
        f = w->free;
        w->free = f->next;
        return f;
    }

    return ngx_alloc(sizeof(ngx_http_cg_fetch_t), ngx_cycle->log);
}


static void
ngx_http_cg_fetch_free(ngx_http_cg_fetch_t *f)
{
    f->next = ngx_http_cg_sync_w.free;
    ngx_http_cg_sync_w.free = f;
}


static void
ngx_http_cg_sync_fetch_done(ngx_http_cg_redis_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_fetch_t  *f = data;

    int64_t               granted, got, retry, binding, headroom;
    uint32_t              now32, cover, want, owed, started;
    ngx_str_t             name;
    ngx_http_cg_node_t   *node;
    ngx_http_cg_lease_t  *l;

    if (reply && reply->type == REDIS_REPLY_ERROR && !f->retried
        && reply->len >= 8 && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        /* the script is not cached there (a restart, SCRIPT FLUSH) */

        f->retried = 1;

        if (ngx_http_cg_sync_fetch_send(f) == NGX_OK) {
            return;
        }

        reply = NULL;
    }

    granted = -1;
    retry = 0;
    binding = 0;
    headroom = 1;    /* not said: neither plenty nor nothing */

    if (reply && reply->type == REDIS_REPLY_ARRAY
        && (reply->elements == 3 || reply->elements == 4)
        && reply->element[0]->type == REDIS_REPLY_INTEGER
        && reply->element[1]->type == REDIS_REPLY_INTEGER
        && reply->element[2]->type == REDIS_REPLY_INTEGER)
    {
        granted = reply->element[0]->integer;
        retry = reply->element[1]->integer;
        binding = reply->element[2]->integer - 1;

        if (binding < 0 || binding >= (int64_t) f->quota.nlimits) {
            binding = 0;
        }

        if (reply->elements == 4
            && reply->element[3]->type == REDIS_REPLY_INTEGER)
        {
            headroom = ngx_max(reply->element[3]->integer, 0);
            headroom = ngx_min(headroom, NGX_MAX_UINT32_VALUE);
        }

    } else if (reply) {

        /* an error from the script: leases stop for a second */

        ngx_http_cg_sync_w.broken = ngx_current_msec + 1000;

        ngx_log_error(NGX_LOG_ERR, link->log, 0,
                      "client guard: unexpected lease reply for \"%*s\"%s%*s",
                      f->len, f->name,
                      reply->type == REDIS_REPLY_ERROR ? ": " : "",
                      reply->type == REDIS_REPLY_ERROR ? reply->len : 0,
                      reply->type == REDIS_REPLY_ERROR ? reply->str : "");
    }

    name.data = f->name;
    name.len = f->len;
    now32 = (uint32_t) ngx_current_msec;
    want = 0;
    owed = 0;
    started = 0;

    /* the record was pinned for the fetch: no lookup, not evicted */

    node = f->node;

    ngx_http_cg_zone_lock(f->zone);

    if (node->lease.fetching == f->started
        && node->lease.qhash == f->qhash)
    {
        l = &node->lease;
        l->fetching = 0;
        l->binding = (uint16_t) binding;

        got = granted;

        if (granted < 0) {
            /* no answer: what was admitted ahead is charged next time */
            l->owed = (uint16_t) ngx_min(l->owed + f->owed, 0xffff);
            granted = 0;

        } else {
            l->headroom = (uint32_t) headroom;

            if ((int64_t) f->owed > granted) {
                ngx_log_debug3(NGX_LOG_DEBUG_HTTP, link->log, 0,
                               "client guard: \"%*s\": %uD admitted ahead "
                               "over the quota", f->len, f->name,
                               (uint32_t) (f->owed - granted));
            }
        }

        /*
         * the units admitted ahead are paid first: those this fetch was
         * for, then those admitted while it was in flight; what Redis
         * could not cover was admitted over the quota (docs/redis.md)
         */

        cover = (uint32_t) ngx_min(granted, (int64_t) f->owed);
        granted -= cover;

        cover = (uint32_t) ngx_min(granted, (int64_t) l->owed);
        l->owed -= cover;
        granted -= cover;

        if (granted > 0) {
            if (l->left == 0 || (int32_t) (l->expires - now32) <= 0) {
                l->left = 0;
            }

            l->left += (uint32_t) granted;
            l->granted = now32;
            l->expires = now32 + (uint32_t) ngx_http_cg_lease_ttl(&f->quota,
                             l->left <= ngx_http_cg_lease_ahead(&f->quota,
                                                                NULL));
            l->denied = 0;

        } else if (got == 0) {
            l->denied = now32 + (uint32_t) ngx_max(retry, 1);
        }

        if (l->owed && ngx_http_cg_redis_ready(link)) {
            /* admitted ahead while this fetch was in flight: charge now */
            want = l->owed;
            owed = l->owed;
            l->owed = 0;
            l->want = want;
            l->fetching = now32 ? now32 : 1;
            started = l->fetching;
        }
    }

    if (want == 0) {
        node->refs--;
    }

    ngx_http_cg_zone_unlock(f->zone);

    if (want) {
        /* the pin passes on to the next fetch */
        ngx_http_cg_sync_fetch(f->zone, node, &name, &f->quota, f->qhash,
                               want, owed, started);
    }

    ngx_http_cg_fetch_free(f);

    ngx_http_cg_sync_wake();
}


static ngx_int_t
ngx_http_cg_sync_fetch_send(ngx_http_cg_fetch_t *f)
{
    int                         argc;
    u_char                     *p, *last, buf[2048];
    size_t                      len[5 + 5 * CG_MAX_LIMITS];
    int64_t                     now;
    uint32_t                    i;
    ngx_time_t                 *tp;
    cg_limit_t                 *lim;
    const char                 *argv[5 + 5 * CG_MAX_LIMITS];
    ngx_http_cg_sync_worker_t  *w = &ngx_http_cg_sync_w;

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    p = buf;
    last = buf + sizeof(buf);

    if (f->retried) {
        argv[0] = "EVAL";
        len[0] = 4;
        argv[1] = ngx_http_cg_sync_script;
        len[1] = sizeof(ngx_http_cg_sync_script) - 1;

    } else {
        argv[0] = "EVALSHA";
        len[0] = 7;
        argv[1] = (const char *) w->sha;
        len[1] = 2 * SHA_DIGEST_LENGTH;
    }

    argv[2] = (const char *) p;
    p = ngx_slprintf(p, last, "%uD", f->quota.nlimits);
    len[2] = p - (u_char *) argv[2];

    argc = 3;

    /* every key of a client shares its hash tag: one Cluster slot */

    for (i = 0; i < f->quota.nlimits; i++) {
        lim = &f->quota.limits[i];

        argv[argc] = (const char *) p;

        if (lim->type == CG_LIMIT_RATE) {
            p = ngx_slprintf(p, last, "%V{%*s}:r:%uD",
                             &w->conf->redis->prefix, f->len, f->name,
                             lim->period);

        } else {
            p = ngx_slprintf(p, last, "%V{%*s}:w:%uD:%L",
                             &w->conf->redis->prefix, f->len, f->name,
                             lim->period, now / lim->period);
        }

        len[argc] = p - (u_char *) argv[argc];
        argc++;
    }

    argv[argc] = (const char *) p;
    p = ngx_slprintf(p, last, "%uD", f->want);
    len[argc] = p - (u_char *) argv[argc];
    argc++;

    argv[argc] = (const char *) p;
    p = ngx_slprintf(p, last, "%uD", f->owed);
    len[argc] = p - (u_char *) argv[argc];
    argc++;

    for (i = 0; i < f->quota.nlimits; i++) {
        lim = &f->quota.limits[i];

        argv[argc] = lim->type == CG_LIMIT_RATE ? "r" : "w";
        len[argc++] = 1;

        argv[argc] = (const char *) p;
        p = ngx_slprintf(p, last, "%uL", lim->count);
        len[argc] = p - (u_char *) argv[argc];
        argc++;

        argv[argc] = (const char *) p;
        p = ngx_slprintf(p, last, "%uD", lim->period);
        len[argc] = p - (u_char *) argv[argc];
        argc++;

        argv[argc] = (const char *) p;
        p = ngx_slprintf(p, last, "%uL", lim->burst);
        len[argc] = p - (u_char *) argv[argc];
        argc++;
    }

    if (p == last) {
        return NGX_ERROR;
    }

    return ngx_http_cg_redis_send(w->link, argc, argv, len,
                                  ngx_http_cg_sync_fetch_done, f);
}


/* "node" is pinned by the caller, until the reply */

static void
ngx_http_cg_sync_fetch(ngx_http_cg_zone_t *zone, ngx_http_cg_node_t *node,
    ngx_str_t *name, cg_quota_t *q, uint32_t qhash, uint32_t want,
    uint32_t owed, uint32_t started)
{
    ngx_http_cg_fetch_t  *f;

    f = ngx_http_cg_fetch_alloc();

    if (f) {
        f->zone = zone;
        f->node = node;
        f->quota = *q;
        f->qhash = qhash;
        f->want = want;
        f->owed = owed;
        f->retried = 0;
        f->started = started;
        f->len = name->len;
        ngx_memcpy(f->name, name->data, name->len);

        if (ngx_http_cg_sync_fetch_send(f) == NGX_OK) {
            return;
        }

        ngx_http_cg_fetch_free(f);
    }

    /* not sent: nobody fetches, the next request tries again */

    ngx_http_cg_zone_lock(zone);

    if (node->lease.fetching == started) {
        node->lease.fetching = 0;
        node->lease.owed = (uint16_t) ngx_min(node->lease.owed + owed, 0xffff);
    }

    node->refs--;

    ngx_http_cg_zone_unlock(zone);
}


/*
 * Spends a unit of the client's lease or says why not; pins the client's
 * record for the request when "pin" is given (the lookup is not repeated).
 */

static ngx_uint_t
ngx_http_cg_sync_take(ngx_http_cg_zone_t *zone, ngx_str_t *name,
    uint32_t hash, cg_quota_t *q, uint32_t qhash, uint64_t *retry,
    uint64_t *remaining, ngx_uint_t *binding, ngx_http_cg_node_t **pin)
{
    uint32_t             want, owed, started, ahead, reserve;
    ngx_uint_t           rc;
    ngx_msec_t           now;
    ngx_http_cg_node_t  *node;

    now = ngx_current_msec;
    want = 0;
    owed = 0;
    started = 0;
    ahead = ngx_http_cg_lease_ahead(q, &reserve);

    ngx_http_cg_zone_lock(zone);

    node = ngx_http_cg_zone_node(zone, name, hash, now, 1);

    if (node == NULL) {
        rc = NGX_HTTP_CG_TAKE_DOWN;

    } else {
        rc = ngx_http_cg_lease_take(&node->lease, qhash, ahead, reserve,
                                    (uint32_t) now, &want, &owed, retry,
                                    remaining, binding);
        started = node->lease.fetching;

        if (pin && *pin == NULL) {
            node->refs++;
            *pin = node;
        }

        if (want) {
            /* pinned until the reply */
            node->refs++;
        }
    }

    ngx_http_cg_zone_unlock(zone);

    if (want) {
        ngx_http_cg_sync_fetch(zone, node, name, q, qhash, want, owed,
                               started);
    }

    return rc;
}


static void
ngx_http_cg_sync_result(ngx_http_cg_sync_req_t *s, cg_quota_t *quota,
    ngx_int_t *binding, cg_limit_result_t *res)
{
    /* the limit the last lease was cut short by, as Redis said */

    *binding = s->binding < quota->nlimits ? (ngx_int_t) s->binding
                                           : (quota->nlimits ? 0 : -1);

    res->allowed = (s->take == NGX_HTTP_CG_TAKE_PASS
                    || s->take == NGX_HTTP_CG_TAKE_AHEAD);
    res->remaining = s->remaining;
    res->retry = s->retry;
    res->reset = s->retry;
}


ngx_int_t
ngx_http_cg_sync_enforce(ngx_http_request_t *r, void *data,
    ngx_http_cg_zone_t *zone, cg_quota_t *quota, uint32_t hash,
    ngx_int_t *binding, cg_limit_result_t *res)
{
    ngx_http_cg_ctx_t  *ctx = data;

    ngx_http_cg_sync_req_t     *s;
    ngx_http_cg_sync_worker_t  *w = &ngx_http_cg_sync_w;

    if (w->conf == NULL || quota->nlimits == 0) {
        return NGX_DECLINED;
    }

    s = ctx->sync;

    if (s && s->resumed) {
        s->resumed = 0;

        if (s->take == NGX_HTTP_CG_TAKE_DOWN) {
            return ngx_http_cg_sync_policy(ctx, s, quota, binding, res);
        }

        ngx_http_cg_sync_result(s, quota, binding, res);
        return NGX_OK;
    }

    if (s == NULL) {
        s = ngx_pcalloc(r->pool, sizeof(ngx_http_cg_sync_req_t));
        if (s == NULL) {
            return NGX_ERROR;
        }

        ctx->sync = s;
    }

    s->qhash = ngx_http_cg_quota_hash(quota);

    s->take = ngx_http_cg_sync_take(zone, &ctx->client, hash, quota,
                                    s->qhash, &s->retry, &s->remaining,
                                    &s->binding, &ctx->node);

    switch (s->take) {

    case NGX_HTTP_CG_TAKE_DOWN:
        return ngx_http_cg_sync_policy(ctx, s, quota, binding, res);

    case NGX_HTTP_CG_TAKE_WAIT:
        break;

    case NGX_HTTP_CG_TAKE_AHEAD:
        s->how = NGX_HTTP_CG_SYNC_AHEAD;
        ngx_http_cg_sync_result(s, quota, binding, res);
        return NGX_OK;

    default:
        s->how = NGX_HTTP_CG_SYNC_LEASE;
        ngx_http_cg_sync_result(s, quota, binding, res);
        return NGX_OK;
    }

    /* wait for the lease, at most the command timeout */

    s->r = r;
    s->zone = zone;
    s->name = ctx->client;
    s->quota = *quota;
    s->hash = hash;
    s->deadline = ngx_current_msec + w->conf->redis->timeout;
    s->waiting = 1;

    ngx_queue_insert_tail(&w->waiters, &s->queue);

    if (!w->wake.timer_set) {
        ngx_add_timer(&w->wake, NGX_HTTP_CG_SYNC_WAKE);
    }

    /* notice a client that goes away meanwhile */
    r->read_event_handler = ngx_http_test_reading;

    return NGX_AGAIN;
}


ngx_int_t
ngx_http_cg_sync_pending(void *data)
{
    ngx_http_cg_ctx_t  *ctx = data;

    ngx_http_cg_sync_req_t  *s;

    s = ctx->sync;

    if (s == NULL) {
        return NGX_DECLINED;
    }

    if (s->waiting) {
        return NGX_AGAIN;
    }

    return s->resumed ? NGX_OK : NGX_DECLINED;
}


void
ngx_http_cg_sync_cleanup(void *data)
{
    ngx_http_cg_ctx_t  *ctx = data;

    ngx_http_cg_sync_req_t  *s;

    s = ctx->sync;

    if (s && s->waiting) {
        s->waiting = 0;
        ngx_queue_remove(&s->queue);
    }
}


void
ngx_http_cg_sync_wake_handler(ngx_event_t *ev)
{
    ngx_http_cg_sync_wake();
}


void
ngx_http_cg_sync_wake(void)
{
    ngx_queue_t                 ready, *q, *next;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_cg_sync_req_t     *s;
    ngx_http_cg_sync_worker_t  *w = &ngx_http_cg_sync_w;

    ngx_queue_init(&ready);

    for (q = ngx_queue_head(&w->waiters);
         q != ngx_queue_sentinel(&w->waiters);
         q = next)
    {
        next = ngx_queue_next(q);
        s = ngx_queue_data(q, ngx_http_cg_sync_req_t, queue);

        s->take = ngx_http_cg_sync_take(s->zone, &s->name, s->hash,
                                        &s->quota, s->qhash, &s->retry,
                                        &s->remaining, &s->binding, NULL);

        if (s->take == NGX_HTTP_CG_TAKE_WAIT
            && (ngx_msec_int_t) (s->deadline - ngx_current_msec) > 0)
        {
            continue;
        }

        if (s->take == NGX_HTTP_CG_TAKE_WAIT) {
            /* no lease in time: the failure policy decides */
            s->take = NGX_HTTP_CG_TAKE_DOWN;
        }

        ngx_queue_remove(q);
        ngx_queue_insert_tail(&ready, q);
    }

    while (!ngx_queue_empty(&ready)) {
        q = ngx_queue_head(&ready);
        ngx_queue_remove(q);

        s = ngx_queue_data(q, ngx_http_cg_sync_req_t, queue);
        s->waiting = 0;
        s->resumed = 1;
        s->how = NGX_HTTP_CG_SYNC_WAITED;

        r = s->r;
        c = r->connection;

        r->read_event_handler = ngx_http_block_reading;

        ngx_http_set_log_request(c->log, r);
        r->write_event_handler(r);
        ngx_http_run_posted_requests(c);
    }

    if (ngx_queue_empty(&w->waiters)) {
        if (w->wake.timer_set) {
            ngx_del_timer(&w->wake);
        }

    } else if (!w->wake.timer_set) {
        ngx_add_timer(&w->wake, NGX_HTTP_CG_SYNC_WAKE);
    }
}
