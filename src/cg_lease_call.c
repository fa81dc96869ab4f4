
/*
 * Copyright (C) client guard authors
 *
 * One call of the lease script.  See cg_lease_call.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_lease_call.h"
#include "cg_lease_lua.h"
#include "cg_parse.h"


/* the text of one client's part of a lease call, at most */

#define ngx_http_cg_lease_client_text(prefix)                                \
    (5 * NGX_INT32_LEN                                                        \
     + CG_MAX_LIMITS * ((prefix) + CG_NAME_MAX                                \
                        + sizeof("{}:w::") - 1 + NGX_INT32_LEN                \
                        + CG_SLOT_TAG_MAX                                     \
                        + NGX_INT64_LEN                                       \
                        + 2 * NGX_INT64_LEN + 2 * NGX_INT32_LEN))

/* the arguments of a lease call, at most */

#define NGX_HTTP_CG_LEASE_ARGS                                                \
    (5 + NGX_HTTP_CG_LEASE_BATCH * (5 + 6 * CG_MAX_LIMITS))


static uint32_t ngx_http_cg_lease_back(cg_lease_out_t *out, cg_limit_t *lim,
    int64_t now);


ngx_int_t
ngx_http_cg_lease_call_init(ngx_http_cg_lease_call_t *lc, ngx_cycle_t *cycle,
    ngx_uint_t buckets, ngx_str_t *prefix, ngx_msec_t lease,
    ngx_msec_t timeout)
{
    u_char      md[SHA_DIGEST_LENGTH];
    ngx_uint_t  i;

    lc->buckets = buckets;

    for (i = 0; i < lc->buckets; i++) {
        lc->tag_len[i] = cg_slot_bucket_tag(lc->tag[i], i, lc->buckets);
        lc->slot[i] = cg_slot(lc->tag[i], lc->tag_len[i]);
    }

    lc->prefix = *prefix;
    lc->lease = lease;
    lc->timeout = timeout;
    lc->skew = 0;

    SHA1((const u_char *) ngx_http_cg_lease_script,
         sizeof(ngx_http_cg_lease_script) - 1, md);
    ngx_hex_dump(lc->sha, md, SHA_DIGEST_LENGTH);

    lc->text_size = 2 * NGX_INT32_LEN + NGX_INT64_LEN
                    + NGX_HTTP_CG_LEASE_BATCH
                    * ngx_http_cg_lease_client_text(prefix->len);

    lc->argv = ngx_alloc(NGX_HTTP_CG_LEASE_ARGS * sizeof(const char *),
                         cycle->log);
    lc->argvlen = ngx_alloc(NGX_HTTP_CG_LEASE_ARGS * sizeof(size_t),
                            cycle->log);
    lc->text = ngx_alloc(lc->text_size, cycle->log);

    if (lc->argv == NULL || lc->argvlen == NULL || lc->text == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_cg_lease_call_free(ngx_http_cg_lease_call_t *lc)
{
    if (lc->argv) {
        ngx_free(lc->argv);
    }

    if (lc->argvlen) {
        ngx_free(lc->argvlen);
    }

    if (lc->text) {
        ngx_free(lc->text);
    }
}


void
ngx_http_cg_lease_call_load(ngx_http_cg_route_t *link)
{
    static size_t       len[] = { 6, 4,
                                  sizeof(ngx_http_cg_lease_script) - 1 };
    static const char  *argv[] = { "SCRIPT", "LOAD",
                                   ngx_http_cg_lease_script };

    (void) ngx_http_cg_route_send(link, 3, argv, len, NULL, NULL);
}


/*
 * Every key of a client shares its hash tag, its name (or in a Cluster,
 * its bucket's, as every client of the batch): one slot.
 */

int
ngx_http_cg_lease_call_args(ngx_http_cg_lease_call_t *lc,
    ngx_http_cg_batch_t *b)
{
    int                   argc, nkeys;
    u_char               *p, *last;
    size_t               *len;
    int64_t               now;
    uint32_t              i;
    ngx_time_t           *tp;
    cg_limit_t           *lim;
    const char          **argv;
    ngx_http_cg_fetch_t  *f;

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    argv = lc->argv;
    len = lc->argvlen;
    p = lc->text;
    last = lc->text + lc->text_size;

    if (b->retried) {
        argv[0] = "EVAL";
        len[0] = 4;
        argv[1] = ngx_http_cg_lease_script;
        len[1] = sizeof(ngx_http_cg_lease_script) - 1;

    } else {
        argv[0] = "EVALSHA";
        len[0] = 7;
        argv[1] = (const char *) lc->sha;
        len[1] = 2 * SHA_DIGEST_LENGTH;
    }

    /* argv[2], the number of keys, is known after the keys */

    argc = 3;
    nkeys = 0;

    for (f = b->fetches; f; f = f->next) {
        for (i = 0; i < f->quota.nlimits; i++) {
            lim = &f->quota.limits[i];

            argv[argc] = (const char *) p;

            if (lc->buckets) {
                p = ngx_slprintf(p, last, "%V{%*s}%*s:%s:%uD", &lc->prefix,
                                 lc->tag_len[b->bucket], lc->tag[b->bucket],
                                 f->len, f->name,
                                 lim->type == CG_LIMIT_RATE ? "r" : "w",
                                 lim->period);

                if (lim->type != CG_LIMIT_RATE) {
                    p = ngx_slprintf(p, last, ":%L", now / lim->period);
                }

            } else if (lim->type == CG_LIMIT_RATE) {
                p = ngx_slprintf(p, last, "%V{%*s}:r:%uD", &lc->prefix,
                                 f->len, f->name, lim->period);

            } else {
                p = ngx_slprintf(p, last, "%V{%*s}:w:%uD:%L", &lc->prefix,
                                 f->len, f->name, lim->period,
                                 now / lim->period);
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

    /*
     * the deadline, on Redis's clock as far as this node knows it: a call
     * the link gave up on (the watchdog, after "timeout") that Redis runs
     * still, as a Redis stopped and resumed does, charges nothing
     */

    argv[argc] = (const char *) p;
    p = ngx_slprintf(p, last, "%L", now + lc->skew + (int64_t) lc->timeout);
    len[argc] = p - (u_char *) argv[argc];
    argc++;

    for (f = b->fetches; f; f = f->next) {

        argv[argc] = (const char *) p;
        p = ngx_slprintf(p, last, "%uD", f->quota.nlimits);
        len[argc] = p - (u_char *) argv[argc];
        argc++;

        argv[argc] = (const char *) p;
        p = ngx_slprintf(p, last, "%uD", f->out.want);
        len[argc] = p - (u_char *) argv[argc];
        argc++;

        argv[argc] = (const char *) p;
        p = ngx_slprintf(p, last, "%uD", f->out.owed);
        len[argc] = p - (u_char *) argv[argc];
        argc++;

        /* a client at its rate: granted ahead of time, spent paced */

        argv[argc] = (const char *) p;
        p = ngx_slprintf(p, last, "%M",
                         f->out.paced ? CG_LEASE_HORIZON * lc->lease : 0);
        len[argc] = p - (u_char *) argv[argc];
        argc++;

        /* a long lease: at most so small a part of what is left */

        argv[argc] = (const char *) p;
        p = ngx_slprintf(p, last, "%uD", f->out.far);
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

            argv[argc] = (const char *) p;
            p = ngx_slprintf(p, last, "%uD",
                             ngx_http_cg_lease_back(&f->out, lim, now));
            len[argc] = p - (u_char *) argv[argc];
            argc++;
        }
    }

    if (p == last) {
        return 0;
    }

    return argc;
}


/*
 * What a fetch gives back to a limit at "now" (the wall clock, ms): the
 * units of a lease that expired unspent, to a window only while it is the
 * one they were granted in (a new window never counted them).
 */

static uint32_t
ngx_http_cg_lease_back(cg_lease_out_t *out, cg_limit_t *lim, int64_t now)
{
    int64_t  at;

    if (out->back == 0 || lim->type == CG_LIMIT_RATE) {
        return out->back;
    }

    at = now - (uint32_t) ((uint32_t) ngx_current_msec - out->back_at);

    return (at / lim->period == now / lim->period) ? out->back : 0;
}


ngx_int_t
ngx_http_cg_lease_call_late(ngx_http_cg_lease_call_t *lc, redisReply *reply)
{
    int64_t      ms, skew;
    ngx_int_t    n;
    ngx_uint_t   level;
    ngx_time_t  *tp;

    if (reply->type != REDIS_REPLY_ERROR || reply->len < 6
        || ngx_strncmp(reply->str, "LATE ", 5) != 0)
    {
        return 0;
    }

    n = ngx_atoof((u_char *) reply->str + 5, reply->len - 5);

    if (n == NGX_ERROR) {
        return 1;
    }

    tp = ngx_timeofday();
    ms = (int64_t) tp->sec * 1000 + tp->msec;

    /*
     * the script's TIME, read here after it ran: Redis's clock is ahead of
     * this node's by at least that much
     */

    skew = (int64_t) n - ms;

    if (skew > lc->skew) {
        level = (skew - lc->skew >= 100) ? NGX_LOG_WARN : NGX_LOG_INFO;

        ngx_log_error(level, ngx_cycle->log, 0,
                      "client guard: Redis's clock is %L ms ahead of this "
                      "node's: the deadlines of lease calls follow it",
                      skew);
        lc->skew = skew;
    }

    return 1;
}


void
ngx_http_cg_lease_call_log(ngx_http_cg_batch_t *b, redisReply *reply)
{
    u_char               *p, *e, *last, names[256], text[512];
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

    e = error ? cg_escape(text, sizeof(text), (u_char *) reply->str,
                          reply->len)
              : text;

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "client guard: unexpected lease reply for %ui client%s "
                  "(%*s)%s%*s", b->n, b->n == 1 ? "" : "s",
                  (size_t) (p - names), names,
                  error ? ": " : "", (size_t) (e - text), text);
}


void
ngx_http_cg_lease_call_client_error(ngx_http_cg_lease_call_t *lc,
    ngx_http_cg_fetch_t *f, redisReply *err)
{
    u_char             *e, text[512];
    static ngx_msec_t   logged;

    if (logged && ngx_current_msec - logged < 1000) {
        return;
    }

    logged = ngx_current_msec ? ngx_current_msec : 1;

    e = cg_escape(text, sizeof(text), (u_char *) err->str, err->len);

    if (lc->buckets) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "client guard: lease script failed for \"%*s\": %*s "
                      "(its keys in Redis: \"%V{%*s}%*s:*\")",
                      f->len, f->name, (size_t) (e - text), text,
                      &lc->prefix, lc->tag_len[f->bucket],
                      lc->tag[f->bucket], f->len, f->name);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "client guard: lease script failed for \"%*s\": %*s "
                  "(its keys in Redis: \"%V{%*s}:*\")",
                  f->len, f->name, (size_t) (e - text), text,
                  &lc->prefix, f->len, f->name);
}
