
/*
 * Copyright (C) client guard authors
 *
 * cg_redis_lease: the cluster-wide count through allowance leases.
 *
 * Owns: the Lua lease script, the lease kept in each client's record of
 * the zone (spent under the zone lock, the next one fetched ahead of
 * time, sized to this node's traffic), the lease requests in flight with
 * the NOSCRIPT retry and the circuit breaker (the fetches of one turn of
 * the event loop leave in one script call), ngx_http_cg_redis_enforce(),
 * and the requests that wait for a lease until it comes or the command
 * timeout hands them to the failure policy.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>

#include "cg_common.h"
#include "cg_redis_int.h"


#define NGX_HTTP_CG_REDIS_WAKE        2      /* waiters poll, ms */
#define NGX_HTTP_CG_REDIS_WANT_MAX    10000

/* "granted" of a client whose keys Redis failed on */
#define NGX_HTTP_CG_REDIS_KEYS_FAILED  -2


/* the text of one client's part of a lease call, at most */

#define ngx_http_cg_redis_client_text(prefix)                                 \
    (3 * NGX_INT32_LEN                                                        \
     + CG_MAX_LIMITS * ((prefix) + CG_NAME_MAX                                \
                        + sizeof("{}:w::") - 1 + NGX_INT32_LEN                \
                        + NGX_INT64_LEN                                       \
                        + 2 * NGX_INT64_LEN + NGX_INT32_LEN))

/* the arguments of a lease call, at most */

#define NGX_HTTP_CG_REDIS_ARGS                                                 \
    (4 + NGX_HTTP_CG_REDIS_BATCH * (3 + 5 * CG_MAX_LIMITS))


/*
 * The lease script, for a batch of clients.  ARGV[1]: the number of
 * clients; then per client: its number of keys (one per limit), units
 * wanted, how many of them were admitted already (ahead of a lease), and
 * per limit: "r" or "w", count, period (ms), burst.  KEYS: the keys of
 * every client in turn.  For each client, in order: grants min(wanted,
 * what every limit still has), fewer near the end of a window (but not
 * fewer than those admitted), charges every limit, and returns { granted,
 * ms until a unit is free when none is, the binding limit (1-based),
 * what the binding limit has left after the grant }: 4 integers per
 * client in one flat array.  A client whose keys fail (a key of another
 * type) has the error text in place of "granted", and the others of the
 * call are served all the same.  A rate is a GCRA bucket whose TAT (us, Redis
 * TIME, read once per call) lives in the key; a window is a counter in a
 * key named after the window number.
 */

const char  ngx_http_cg_redis_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local function lease(k, c, n)\n"
    "  local want = tonumber(ARGV[c + 1])\n"
    "  local owed = tonumber(ARGV[c + 2])\n"
    "  local grant = want\n"
    "  local wavail = nil\n"
    "  local retry = 0\n"
    "  local bind = 1\n"
    "  local least = nil\n"
    "  local st = {}\n"
    "  for i = 1, n do\n"
    "    local b = c + 3 + (i - 1) * 4\n"
    "    local count = tonumber(ARGV[b + 1])\n"
    "    local period = tonumber(ARGV[b + 2]) * 1000\n"
    "    local a, r\n"
    "    if ARGV[b] == 'r' then\n"
    "      local T = period / count\n"
    "      local tau = tonumber(ARGV[b + 3]) * T\n"
    "      local tat = tonumber(redis.call('GET', KEYS[k + i]) or now)\n"
    "      if tat < now then tat = now end\n"
    "      local x = now + tau - tat\n"
    "      if x < 0 then a = 0 else a = math.floor(x / T) + 1 end\n"
    "      r = tat - tau - now\n"
    "      st[i] = { tat, T }\n"
    "    else\n"
    "      local used = tonumber(redis.call('GET', KEYS[k + i]) or 0)\n"
    "      a = count - used\n"
    "      if a < 0 then a = 0 end\n"
    "      r = period - (now % period)\n"
    "      if wavail == nil or a < wavail then wavail = a end\n"
    "    end\n"
    "    if least == nil or a < least then least = a; bind = i end\n"
    "    if a < grant then grant = a end\n"
    "    if a == 0 and r > retry then retry = r end\n"
    "  end\n"
    "  if wavail ~= nil and wavail < want * 8 then\n"
    "    local s = math.floor(wavail / 8)\n"
    "    if s < 1 then s = 1 end\n"
    "    if s < owed then s = owed end\n"
    "    if s < grant then grant = s end\n"
    "  end\n"
    "  if grant > 0 then\n"
    "    for i = 1, n do\n"
    "      local b = c + 3 + (i - 1) * 4\n"
    "      if ARGV[b] == 'r' then\n"
    "        local tat = st[i][1] + grant * st[i][2]\n"
    "        redis.call('SET', KEYS[k + i], string.format('%.0f', tat),\n"
    "                   'PX', math.ceil((tat - now) / 1000) + 1000)\n"
    "      else\n"
    "        redis.call('INCRBY', KEYS[k + i], grant)\n"
    "        redis.call('PEXPIRE', KEYS[k + i],\n"
    "                   tonumber(ARGV[b + 2]) + 60000)\n"
    "      end\n"
    "    end\n"
    "    retry = 0\n"
    "  end\n"
    "  return grant, math.ceil(retry / 1000), bind, least - grant\n"
    "end\n"
    "local out = {}\n"
    "local k = 0\n"
    "local c = 2\n"
    "for j = 1, tonumber(ARGV[1]) do\n"
    "  local n = tonumber(ARGV[c])\n"
    "  local ok, g, r, b, h = pcall(lease, k, c, n)\n"
    "  if not ok then\n"
    "    if type(g) == 'table' then g = g.err end\n"
    "    g = 'ERR ' .. tostring(g); r = 0; b = 0; h = 0\n"
    "  end\n"
    "  out[4 * j - 3] = g\n"
    "  out[4 * j - 2] = r\n"
    "  out[4 * j - 1] = b\n"
    "  out[4 * j] = h\n"
    "  k = k + n\n"
    "  c = c + 3 + 4 * n\n"
    "end\n"
    "return out\n";

const size_t  ngx_http_cg_redis_script_len =
    sizeof(ngx_http_cg_redis_script) - 1;


static ngx_int_t ngx_http_cg_redis_batch_send(ngx_http_cg_batch_t *b);
static void ngx_http_cg_redis_batch_handler(ngx_event_t *ev);
static void ngx_http_cg_redis_fetch(ngx_http_cg_zone_t *zone,
    ngx_http_cg_record_t *node, ngx_str_t *name, cg_quota_t *q,
    uint32_t qhash, uint32_t want, uint32_t owed, uint32_t started);

/* leases */


/*
 * A lease's times are the low 32 bits of ngx_current_msec (a monotonic
 * clock that passes 2^31 after 24.8 days), compared as differences, and 0
 * is "not set": a time is set to 1 rather than 0, and only a set one can
 * be ahead of "now".
 */

#define ngx_http_cg_lease_stamp(t)         ((uint32_t) (t) ? (uint32_t) (t) : 1)
#define ngx_http_cg_lease_ahead_of(t, now)  ((t) && (int32_t) ((t) - (now)) > 0)

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
                ttl = ngx_min(ttl, 2 * ngx_http_cg_redis_w.conf->lease);
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

    cap = ngx_http_cg_redis_w.conf->ahead;
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
    ngx_http_cg_redis_conf_t  *scf;

    scf = ngx_http_cg_redis_w.conf;

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
                < (int32_t) (2 * scf->server->timeout);
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

    } else if (ngx_http_cg_lease_ahead_of(l->denied, now)) {
        *retry = l->denied - now;
        rc = NGX_HTTP_CG_TAKE_REJECT;

    } else if (!ngx_http_cg_link_ready(ngx_http_cg_redis_w.link)
               || (ngx_msec_int_t) (ngx_http_cg_redis_w.broken
                                    - ngx_current_msec) > 0
               || ngx_http_cg_lease_ahead_of(l->failed, now))
    {
        /*
         * the circuit breaker is open, or Redis fails on this client's
         * keys: the failure policy decides
         */
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

    if (!fetch || !ngx_http_cg_link_ready(ngx_http_cg_redis_w.link)) {
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
    est = ngx_min(est, NGX_HTTP_CG_REDIS_WANT_MAX);

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
    l->fetching = ngx_http_cg_lease_stamp(now);

    return rc;
}


static ngx_http_cg_fetch_t *
ngx_http_cg_fetch_alloc(void)
{
    ngx_http_cg_fetch_t        *f;
    ngx_http_cg_redis_worker_t  *w = &ngx_http_cg_redis_w;

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
    f->next = ngx_http_cg_redis_w.free;
    ngx_http_cg_redis_w.free = f;
}


/*
 * A fetch that was never sent: nobody fetches, the next request tries
 * again; what was admitted ahead is charged then.  The pin is dropped.
 */

static void
ngx_http_cg_redis_fetch_unsent(ngx_http_cg_zone_t *zone,
    ngx_http_cg_record_t *node, uint32_t owed, uint32_t started)
{
    ngx_http_cg_zone_lock(zone);

    if (node->lease.fetching == started) {
        node->lease.fetching = 0;
        node->lease.owed = (uint16_t) ngx_min(node->lease.owed + owed, 0xffff);
    }

    node->refs--;

    ngx_http_cg_zone_unlock(zone);
}


/*
 * A fetch ends with Redis's answer for its client ("binding" 1-based, as
 * the script says), or with "granted" -1: no answer (an error, a timeout,
 * the link lost), or NGX_HTTP_CG_REDIS_KEYS_FAILED: Redis failed on this
 * client's keys (the failure policy decides for it for a second).  The
 * record's pin is dropped, or passed on to the fetch that charges what was
 * admitted ahead meanwhile.  The caller wakes the waiting requests.
 */

static void
ngx_http_cg_redis_fetch_done(ngx_http_cg_link_t *link, ngx_http_cg_fetch_t *f,
    int64_t granted, int64_t retry, int64_t binding, int64_t headroom)
{
    int64_t               got;
    uint32_t              now32, cover, want, owed, started;
    ngx_str_t             name;
    ngx_uint_t            failed, again;
    ngx_http_cg_record_t   *node;
    ngx_http_cg_lease_t  *l;

    failed = (granted == NGX_HTTP_CG_REDIS_KEYS_FAILED);

    if (granted < 0) {
        granted = -1;
        retry = 0;
        binding = 0;
        headroom = 1;    /* not said: neither plenty nor nothing */

    } else {
        binding--;

        if (binding < 0 || binding >= (int64_t) f->quota.nlimits) {
            binding = 0;
        }

        headroom = ngx_max(headroom, 0);
        headroom = ngx_min(headroom, NGX_MAX_UINT32_VALUE);
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

        if (failed) {
            l->failed = ngx_http_cg_lease_stamp(now32 + 1000);
        }

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

            /*
             * small by what it adds (what is left of the last one comes
             * along): a small lease refilled ahead of time stays small
             */

            l->left += (uint32_t) granted;
            l->granted = now32;
            l->expires = now32 + (uint32_t) ngx_http_cg_lease_ttl(&f->quota,
                             (uint32_t) granted
                             <= ngx_http_cg_lease_ahead(&f->quota, NULL));
            l->denied = 0;

        } else if (got == 0) {
            l->denied = ngx_http_cg_lease_stamp(now32
                                                + (uint32_t) ngx_max(retry, 1));
        }

        /* not into a Redis that fails: the next request's fetch charges */

        again = !failed
                && (ngx_msec_int_t) (ngx_http_cg_redis_w.broken
                                     - ngx_current_msec) <= 0;

        if (l->owed && again && ngx_http_cg_link_ready(link)) {
            /* admitted ahead while this fetch was in flight: charge now */
            want = l->owed;
            owed = l->owed;
            l->owed = 0;
            l->want = want;
            l->fetching = ngx_http_cg_lease_stamp(now32);
            started = l->fetching;
        }
    }

    if (want == 0) {
        node->refs--;
    }

    ngx_http_cg_zone_unlock(f->zone);

    if (want) {
        /* the pin passes on to the next fetch */
        ngx_http_cg_redis_fetch(f->zone, node, &name, &f->quota, f->qhash,
                               want, owed, started);
    }

    ngx_http_cg_fetch_free(f);
}


/* one line for a batch whose reply is no answer, naming its clients */

static void
ngx_http_cg_redis_batch_log(ngx_http_cg_link_t *link, ngx_http_cg_batch_t *b,
    redisReply *reply)
{
    u_char               *p, *last, names[256];
    ngx_uint_t            error;
    ngx_http_cg_fetch_t  *f;

    p = names;
    last = names + sizeof(names);

    for (f = b->fetches; f; f = f->next) {

        if ((size_t) (last - p) < f->len + sizeof(", \"\", ...")) {
            p = ngx_slprintf(p, last, ", ...");
            break;
        }

        p = ngx_slprintf(p, last, "%s\"%*s\"", f == b->fetches ? "" : ", ",
                         f->len, f->name);
    }

    error = (reply->type == REDIS_REPLY_ERROR);

    ngx_log_error(NGX_LOG_ERR, link->log, 0,
                  "client guard: unexpected lease reply for %ui client%s "
                  "(%*s)%s%*s", b->n, b->n == 1 ? "" : "s",
                  (size_t) (p - names), names,
                  error ? ": " : "", error ? reply->len : 0,
                  error ? reply->str : "");
}


/*
 * A client whose keys Redis could not use: that client has no lease (the
 * failure policy decides for it), the others of the call are served.  One
 * line a second at most per worker: such a client fails each time.
 */

static void
ngx_http_cg_redis_client_error(ngx_http_cg_link_t *link,
    ngx_http_cg_fetch_t *f, redisReply *err)
{
    static ngx_msec_t  logged;

    if (logged && ngx_current_msec - logged < 1000) {
        return;
    }

    logged = ngx_current_msec ? ngx_current_msec : 1;

    ngx_log_error(NGX_LOG_ERR, link->log, 0,
                  "client guard: lease script failed for \"%*s\": %*s "
                  "(its keys in Redis: \"%V{%*s}:*\")",
                  f->len, f->name, (size_t) ngx_min(err->len, 512), err->str,
                  &ngx_http_cg_redis_w.conf->server->prefix, f->len, f->name);
}


static ngx_http_cg_batch_t *
ngx_http_cg_batch_alloc(void)
{
    ngx_http_cg_batch_t        *b;
    ngx_http_cg_redis_worker_t  *w = &ngx_http_cg_redis_w;

    if (w->free_batches) {
        b = w->free_batches;
        w->free_batches = b->next;
        return b;
    }

    return ngx_alloc(sizeof(ngx_http_cg_batch_t), ngx_cycle->log);
}


static void
ngx_http_cg_batch_free(ngx_http_cg_batch_t *b)
{
    b->fetches = NULL;
    b->next = ngx_http_cg_redis_w.free_batches;
    ngx_http_cg_redis_w.free_batches = b;
}


/*
 * The reply to a batch: 4 integers per fetch, in order.  An error or a
 * reply of another shape is no answer for every fetch of the batch, as is
 * a timeout or the link lost (reply NULL).
 */

static void
ngx_http_cg_redis_batch_reply(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_batch_t  *b = data;

    size_t                i;
    redisReply          **e;
    ngx_http_cg_fetch_t  *f, *next;

    if (reply && reply->type == REDIS_REPLY_ERROR && !b->retried
        && reply->len >= 8 && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        /* the script is not cached there (a restart, SCRIPT FLUSH) */

        b->retried = 1;

        if (ngx_http_cg_redis_batch_send(b) == NGX_OK) {
            return;
        }

        reply = NULL;
    }

    e = NULL;

    if (reply && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 4 * b->n)
    {
        e = reply->element;

        for (i = 0; i < reply->elements; i++) {

            /* a client's error text in place of "granted" */

            if (e[i]->type != REDIS_REPLY_INTEGER
                && !(i % 4 == 0 && e[i]->type == REDIS_REPLY_STRING))
            {
                e = NULL;
                break;
            }
        }
    }

    if (reply && e == NULL) {

        /* an error from the script: leases stop for a second */

        ngx_http_cg_redis_w.broken = ngx_current_msec + 1000;

        ngx_http_cg_redis_batch_log(link, b, reply);
    }

    for (f = b->fetches; f; f = next) {
        next = f->next;

        if (e && e[0]->type == REDIS_REPLY_STRING) {
            ngx_http_cg_redis_client_error(link, f, e[0]);
            ngx_http_cg_redis_fetch_done(link, f,
                                        NGX_HTTP_CG_REDIS_KEYS_FAILED, 0, 0, 0);
            e += 4;

        } else if (e) {
            ngx_http_cg_redis_fetch_done(link, f, e[0]->integer,
                                        e[1]->integer, e[2]->integer,
                                        e[3]->integer);
            e += 4;

        } else {
            ngx_http_cg_redis_fetch_done(link, f, -1, 0, 0, 0);
        }
    }

    ngx_http_cg_batch_free(b);

    ngx_http_cg_redis_wake();
}


/*
 * One script call for the fetches of a batch: EVALSHA, or EVAL once the
 * script was found missing.  The arguments are built in the worker's
 * buffers (the link copies them into its output at once).
 */

static ngx_int_t
ngx_http_cg_redis_batch_send(ngx_http_cg_batch_t *b)
{
    int                         argc, nkeys;
    u_char                     *p, *last;
    size_t                     *len;
    int64_t                     now;
    uint32_t                    i;
    ngx_time_t                 *tp;
    cg_limit_t                 *lim;
    const char                **argv;
    ngx_http_cg_fetch_t        *f;
    ngx_http_cg_redis_worker_t  *w = &ngx_http_cg_redis_w;

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    argv = w->argv;
    len = w->argvlen;
    p = w->text;
    last = w->text + w->text_size;

    if (b->retried) {
        argv[0] = "EVAL";
        len[0] = 4;
        argv[1] = ngx_http_cg_redis_script;
        len[1] = ngx_http_cg_redis_script_len;

    } else {
        argv[0] = "EVALSHA";
        len[0] = 7;
        argv[1] = (const char *) w->sha;
        len[1] = 2 * SHA_DIGEST_LENGTH;
    }

    /* argv[2], the number of keys, is known after the keys */

    argc = 3;
    nkeys = 0;

    /* every key of a client shares its hash tag: one Cluster slot */

    for (f = b->fetches; f; f = f->next) {
        for (i = 0; i < f->quota.nlimits; i++) {
            lim = &f->quota.limits[i];

            argv[argc] = (const char *) p;

            if (lim->type == CG_LIMIT_RATE) {
                p = ngx_slprintf(p, last, "%V{%*s}:r:%uD",
                                 &w->conf->server->prefix, f->len, f->name,
                                 lim->period);

            } else {
                p = ngx_slprintf(p, last, "%V{%*s}:w:%uD:%L",
                                 &w->conf->server->prefix, f->len, f->name,
                                 lim->period, now / lim->period);
            }

            len[argc] = p - (u_char *) argv[argc];
            argc++;
            nkeys++;
        }
    }

    argv[2] = (const char *) p;
    p = ngx_slprintf(p, last, "%d", nkeys);
    len[2] = p - (u_char *) argv[2];

    argv[argc] = (const char *) p;
    p = ngx_slprintf(p, last, "%ui", b->n);
    len[argc] = p - (u_char *) argv[argc];
    argc++;

    for (f = b->fetches; f; f = f->next) {

        argv[argc] = (const char *) p;
        p = ngx_slprintf(p, last, "%uD", f->quota.nlimits);
        len[argc] = p - (u_char *) argv[argc];
        argc++;

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
    }

    if (p == last) {
        return NGX_ERROR;
    }

    return ngx_http_cg_link_send(w->link, argc, argv, len,
                                  ngx_http_cg_redis_batch_reply, b);
}


/*
 * Posted by the first fetch of a turn of the event loop, and run in the
 * same turn (ngx_posted_events), before the link writes what was queued
 * (the link's flusher is posted again by the send when it ran already):
 * the pending fetches leave in batches of up to NGX_HTTP_CG_REDIS_BATCH.
 */

static void
ngx_http_cg_redis_batch_handler(ngx_event_t *ev)
{
    ngx_uint_t                  n;
    ngx_http_cg_batch_t        *b;
    ngx_http_cg_fetch_t        *f, *head, *tail, *next;
    ngx_http_cg_redis_worker_t  *w = &ngx_http_cg_redis_w;

    while (w->pending) {
        head = w->pending;
        tail = head;

        for (n = 1; n < NGX_HTTP_CG_REDIS_BATCH && tail->next; n++) {
            tail = tail->next;
        }

        w->pending = tail->next;
        tail->next = NULL;

        if (w->pending == NULL) {
            w->last = &w->pending;
        }

        b = ngx_http_cg_batch_alloc();

        if (b) {
            b->fetches = head;
            b->n = n;
            b->retried = 0;

            if (ngx_http_cg_redis_batch_send(b) == NGX_OK) {
                continue;
            }

            ngx_http_cg_batch_free(b);
        }

        /* not sent (the link is not ready): each fetch as if never made */

        for (f = head; f; f = next) {
            next = f->next;
            ngx_http_cg_redis_fetch_unsent(f->zone, f->node, f->owed,
                                          f->started);
            ngx_http_cg_fetch_free(f);
        }
    }
}


/* "node" is pinned by the caller, until the reply */

static void
ngx_http_cg_redis_fetch(ngx_http_cg_zone_t *zone, ngx_http_cg_record_t *node,
    ngx_str_t *name, cg_quota_t *q, uint32_t qhash, uint32_t want,
    uint32_t owed, uint32_t started)
{
    ngx_http_cg_fetch_t        *f;
    ngx_http_cg_redis_worker_t  *w = &ngx_http_cg_redis_w;

    f = ngx_http_cg_fetch_alloc();

    if (f == NULL || !ngx_http_cg_link_ready(w->link)) {
        if (f) {
            ngx_http_cg_fetch_free(f);
        }

        ngx_http_cg_redis_fetch_unsent(zone, node, owed, started);
        return;
    }

    f->next = NULL;
    f->zone = zone;
    f->node = node;
    f->quota = *q;
    f->qhash = qhash;
    f->want = want;
    f->owed = owed;
    f->started = started;
    f->len = name->len;
    ngx_memcpy(f->name, name->data, name->len);

    /* sent with the other fetches of this turn of the event loop */

    *w->last = f;
    w->last = &f->next;

    if (!w->batcher.posted) {
        ngx_post_event(&w->batcher, &ngx_posted_events);
    }
}


ngx_int_t
ngx_http_cg_redis_batch_init(ngx_cycle_t *cycle)
{
    ngx_http_cg_redis_worker_t  *w = &ngx_http_cg_redis_w;

    w->pending = NULL;
    w->last = &w->pending;

    w->batcher.handler = ngx_http_cg_redis_batch_handler;
    w->batcher.data = w;
    w->batcher.log = cycle->log;

    w->text_size = 2 * NGX_INT32_LEN + NGX_HTTP_CG_REDIS_BATCH
                   * ngx_http_cg_redis_client_text(w->conf->server->prefix.len);

    w->argv = ngx_alloc(NGX_HTTP_CG_REDIS_ARGS * sizeof(const char *),
                        cycle->log);
    w->argvlen = ngx_alloc(NGX_HTTP_CG_REDIS_ARGS * sizeof(size_t),
                           cycle->log);
    w->text = ngx_alloc(w->text_size, cycle->log);

    if (w->argv == NULL || w->argvlen == NULL || w->text == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_cg_redis_batch_abort(void)
{
    ngx_http_cg_fetch_t        *f;
    ngx_http_cg_redis_worker_t  *w = &ngx_http_cg_redis_w;

    if (w->batcher.posted) {
        ngx_delete_posted_event(&w->batcher);
    }

    /* as when the link is found not ready by the batcher */

    while (w->pending) {
        f = w->pending;
        w->pending = f->next;
        ngx_http_cg_redis_fetch_unsent(f->zone, f->node, f->owed, f->started);
        ngx_http_cg_fetch_free(f);
    }

    w->last = &w->pending;
}


void
ngx_http_cg_redis_batch_exit(void)
{
    ngx_http_cg_batch_t        *b;
    ngx_http_cg_redis_worker_t  *w = &ngx_http_cg_redis_w;

    if (w->last) {
        ngx_http_cg_redis_batch_abort();
    }

    while (w->free_batches) {
        b = w->free_batches;
        w->free_batches = b->next;
        ngx_free(b);
    }

    if (w->argv) {
        ngx_free(w->argv);
        w->argv = NULL;
    }

    if (w->argvlen) {
        ngx_free(w->argvlen);
        w->argvlen = NULL;
    }

    if (w->text) {
        ngx_free(w->text);
        w->text = NULL;
    }
}


/*
 * Spends a unit of the client's lease or says why not; pins the client's
 * record for the request when "pin" is given (the lookup is not repeated).
 */

static ngx_uint_t
ngx_http_cg_redis_take(ngx_http_cg_zone_t *zone, ngx_str_t *name,
    uint32_t hash, cg_quota_t *q, uint32_t qhash, uint64_t *retry,
    uint64_t *remaining, ngx_uint_t *binding, ngx_http_cg_record_t **pin)
{
    uint32_t             want, owed, started, ahead, reserve;
    ngx_uint_t           rc;
    ngx_msec_t           now;
    ngx_http_cg_record_t  *node;

    now = ngx_current_msec;
    want = 0;
    owed = 0;
    started = 0;
    ahead = ngx_http_cg_lease_ahead(q, &reserve);

    ngx_http_cg_zone_lock(zone);

    node = ngx_http_cg_zone_record(zone, name, hash, now, 1);

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
        ngx_http_cg_redis_fetch(zone, node, name, q, qhash, want, owed,
                               started);
    }

    return rc;
}


static void
ngx_http_cg_redis_result(ngx_http_cg_redis_req_t *s, cg_quota_t *quota,
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
ngx_http_cg_redis_enforce(ngx_http_request_t *r, void *data,
    ngx_http_cg_zone_t *zone, cg_quota_t *quota, uint32_t hash,
    ngx_int_t *binding, cg_limit_result_t *res)
{
    ngx_http_cg_ctx_t  *ctx = data;

    ngx_http_cg_redis_req_t     *s;
    ngx_http_cg_redis_worker_t  *w = &ngx_http_cg_redis_w;

    if (w->conf == NULL || quota->nlimits == 0) {
        return NGX_DECLINED;
    }

    s = ctx->redis;

    if (s && s->resumed) {
        s->resumed = 0;

        if (s->take == NGX_HTTP_CG_TAKE_DOWN) {
            return ngx_http_cg_redis_policy(ctx, s, quota, binding, res);
        }

        ngx_http_cg_redis_result(s, quota, binding, res);
        return NGX_OK;
    }

    if (s == NULL) {
        s = ngx_pcalloc(r->pool, sizeof(ngx_http_cg_redis_req_t));
        if (s == NULL) {
            return NGX_ERROR;
        }

        ctx->redis = s;
    }

    s->qhash = ngx_http_cg_quota_hash(quota);

    s->take = ngx_http_cg_redis_take(zone, &ctx->client, hash, quota,
                                    s->qhash, &s->retry, &s->remaining,
                                    &s->binding, &ctx->node);

    switch (s->take) {

    case NGX_HTTP_CG_TAKE_DOWN:
        return ngx_http_cg_redis_policy(ctx, s, quota, binding, res);

    case NGX_HTTP_CG_TAKE_WAIT:
        break;

    case NGX_HTTP_CG_TAKE_AHEAD:
        s->how = NGX_HTTP_CG_REDIS_AHEAD;
        ngx_http_cg_redis_result(s, quota, binding, res);
        return NGX_OK;

    default:
        s->how = NGX_HTTP_CG_REDIS_LEASE;
        ngx_http_cg_redis_result(s, quota, binding, res);
        return NGX_OK;
    }

    /* wait for the lease, at most the command timeout */

    s->r = r;
    s->zone = zone;
    s->name = ctx->client;
    s->quota = *quota;
    s->hash = hash;
    s->deadline = ngx_current_msec + w->conf->server->timeout;
    s->waiting = 1;

    ngx_queue_insert_tail(&w->waiters, &s->queue);

    if (!w->wake.timer_set) {
        ngx_add_timer(&w->wake, NGX_HTTP_CG_REDIS_WAKE);
    }

    /* notice a client that goes away meanwhile */
    r->read_event_handler = ngx_http_test_reading;

    return NGX_AGAIN;
}


ngx_int_t
ngx_http_cg_redis_pending(void *data)
{
    ngx_http_cg_ctx_t  *ctx = data;

    ngx_http_cg_redis_req_t  *s;

    s = ctx->redis;

    if (s == NULL) {
        return NGX_DECLINED;
    }

    if (s->waiting) {
        return NGX_AGAIN;
    }

    return s->resumed ? NGX_OK : NGX_DECLINED;
}


void
ngx_http_cg_redis_cleanup(void *data)
{
    ngx_http_cg_ctx_t  *ctx = data;

    ngx_http_cg_redis_req_t  *s;

    s = ctx->redis;

    if (s && s->waiting) {
        s->waiting = 0;
        ngx_queue_remove(&s->queue);
    }
}


void
ngx_http_cg_redis_wake_handler(ngx_event_t *ev)
{
    ngx_http_cg_redis_wake();
}


void
ngx_http_cg_redis_wake(void)
{
    ngx_queue_t                 ready, *q, *next;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_cg_redis_req_t     *s;
    ngx_http_cg_redis_worker_t  *w = &ngx_http_cg_redis_w;

    ngx_queue_init(&ready);

    for (q = ngx_queue_head(&w->waiters);
         q != ngx_queue_sentinel(&w->waiters);
         q = next)
    {
        next = ngx_queue_next(q);
        s = ngx_queue_data(q, ngx_http_cg_redis_req_t, queue);

        s->take = ngx_http_cg_redis_take(s->zone, &s->name, s->hash,
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

        s = ngx_queue_data(q, ngx_http_cg_redis_req_t, queue);
        s->waiting = 0;
        s->resumed = 1;
        s->how = NGX_HTTP_CG_REDIS_WAITED;

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
        ngx_add_timer(&w->wake, NGX_HTTP_CG_REDIS_WAKE);
    }
}
