
/*
 * Copyright (C) client guard authors
 *
 * Host names resolved again before a link connects.  See cg_resolve.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_resolve.h"


#define NGX_HTTP_CG_RESOLVE_ADDRS    8        /* kept per name */
#define NGX_HTTP_CG_RESOLVE_TIMEOUT  30000    /* resolver_timeout unset */


typedef struct {
    ngx_http_cg_link_t          *link;
    ngx_http_cg_link_server_t   *srv;        /* what the addresses are of */
    ngx_uint_t                   attempt;
    ngx_resolver_ctx_t          *ctx;        /* a resolution under way */
    ngx_uint_t                   naddrs;
    ngx_sockaddr_t               addrs[NGX_HTTP_CG_RESOLVE_ADDRS];
    socklen_t                    lens[NGX_HTTP_CG_RESOLVE_ADDRS];
    ngx_int_t                    rc;         /* of a synchronous answer */
    unsigned                     sync:1;     /* in ngx_resolve_name() */
    unsigned                     failed:1;   /* logged, until it works */
} ngx_http_cg_resolve_t;


static void ngx_http_cg_resolve_handler(ngx_resolver_ctx_t *ctx);


static ngx_resolver_t *
ngx_http_cg_resolver(ngx_msec_t *timeout)
{
    ngx_http_conf_ctx_t       *hctx;
    ngx_http_core_loc_conf_t  *clcf;

    if (ngx_http_module.index >= ngx_cycle->modules_n
        || ngx_cycle->conf_ctx[ngx_http_module.index] == NULL)
    {
        return NULL;
    }

    hctx = (ngx_http_conf_ctx_t *) ngx_cycle->conf_ctx[ngx_http_module.index];
    clcf = hctx->loc_conf[ngx_http_core_module.ctx_index];

    /* without the directive, nginx makes a resolver without servers */

    if (clcf->resolver == NULL || clcf->resolver->connections.nelts == 0) {
        return NULL;
    }

    if (timeout) {
        *timeout = (clcf->resolver_timeout == NGX_CONF_UNSET_MSEC)
                   ? NGX_HTTP_CG_RESOLVE_TIMEOUT : clcf->resolver_timeout;
    }

    return clcf->resolver;
}


ngx_uint_t
ngx_http_cg_resolve_enabled(void)
{
    return ngx_http_cg_resolver(NULL) != NULL;
}


static ngx_uint_t
ngx_http_cg_resolve_log_level(ngx_http_cg_link_t *link)
{
    if (link->quiet) {
        return NGX_LOG_DEBUG;
    }

    return ngx_worker == 0 ? NGX_LOG_WARN : NGX_LOG_INFO;
}


/* the configuration's addresses: what a name starts from */

static void
ngx_http_cg_resolve_reset(ngx_http_cg_resolve_t *st,
    ngx_http_cg_link_server_t *srv)
{
    ngx_uint_t  i;

    st->srv = srv;
    st->naddrs = ngx_min(srv->naddrs, NGX_HTTP_CG_RESOLVE_ADDRS);

    for (i = 0; i < st->naddrs; i++) {
        st->lens[i] = ngx_min(srv->addrs[i].socklen,
                              (socklen_t) sizeof(ngx_sockaddr_t));
        ngx_memcpy(&st->addrs[i], srv->addrs[i].sockaddr, st->lens[i]);
    }
}


static void
ngx_http_cg_resolve_pick(ngx_http_cg_resolve_t *st)
{
    ngx_uint_t  i;

    i = st->attempt % st->naddrs;

    ngx_http_cg_link_set_addr(st->link, &st->addrs[i].sockaddr, st->lens[i]);
}


ngx_int_t
ngx_http_cg_resolve(ngx_http_cg_link_t *link, ngx_http_cg_link_server_t *srv,
    ngx_uint_t attempt)
{
    ngx_msec_t              timeout;
    ngx_resolver_t         *r;
    ngx_resolver_ctx_t     *ctx;
    ngx_http_cg_resolve_t  *st;

    r = srv->literal ? NULL : ngx_http_cg_resolver(&timeout);

    if (r == NULL) {
        ngx_http_cg_link_set_addr(link,
                                  srv->addrs[attempt % srv->naddrs].sockaddr,
                                  srv->addrs[attempt % srv->naddrs].socklen);
        return NGX_OK;
    }

    st = link->prepare_data;

    if (st == NULL) {
        st = ngx_pcalloc(ngx_cycle->pool, sizeof(ngx_http_cg_resolve_t));
        if (st == NULL) {
            return NGX_ERROR;
        }

        st->link = link;
        link->prepare_data = st;
    }

    if (st->srv != srv) {
        ngx_http_cg_resolve_reset(st, srv);
    }

    st->attempt = attempt;

    if (st->ctx) {
        /* one is under way already (the link dropped meanwhile) */
        return NGX_AGAIN;
    }

    ctx = ngx_resolve_start(r, NULL);

    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        ngx_http_cg_resolve_pick(st);
        return NGX_OK;
    }

    ctx->name = srv->host;
    ctx->handler = ngx_http_cg_resolve_handler;
    ctx->data = st;
    ctx->timeout = timeout;
    ctx->cancelable = 1;

    st->ctx = ctx;
    st->rc = NGX_AGAIN;
    st->sync = 1;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        /* ngx_resolve_name() freed it */
        st->ctx = NULL;
        st->sync = 0;
        ngx_http_cg_resolve_pick(st);
        return NGX_OK;
    }

    st->sync = 0;

    return st->rc;
}


static void
ngx_http_cg_resolve_handler(ngx_resolver_ctx_t *ctx)
{
    u_char                  text[NGX_SOCKADDR_STRLEN];
    size_t                  len;
    ngx_uint_t              i, n, moved;
    ngx_http_cg_link_t     *link;
    ngx_http_cg_resolve_t  *st;

    st = ctx->data;
    link = st->link;

    if (ctx->state || ctx->naddrs == 0) {

        if (!st->failed) {
            st->failed = 1;

            len = ngx_sock_ntop(&st->addrs[0].sockaddr, st->lens[0], text,
                                NGX_SOCKADDR_STRLEN, 1);

            ngx_log_error(ngx_http_cg_resolve_log_level(link), link->log, 0,
                          "client guard: could not resolve \"%V\" (%i: %s), "
                          "keeping %*s", &st->srv->host, ctx->state,
                          ngx_resolver_strerror(ctx->state), len, text);
        }

    } else {
        st->failed = 0;

        n = ngx_min(ctx->naddrs, NGX_HTTP_CG_RESOLVE_ADDRS);

        moved = (n != st->naddrs);

        for (i = 0; i < n; i++) {
            len = ngx_min(ctx->addrs[i].socklen,
                          (socklen_t) sizeof(ngx_sockaddr_t));

            if (!moved
                && ngx_cmp_sockaddr(ctx->addrs[i].sockaddr, len,
                                    &st->addrs[i].sockaddr, st->lens[i], 0)
                   != NGX_OK)
            {
                moved = 1;
            }

            ngx_memcpy(&st->addrs[i], ctx->addrs[i].sockaddr, len);
            st->lens[i] = len;
            ngx_inet_set_port(&st->addrs[i].sockaddr, st->srv->port);
        }

        st->naddrs = n;

        if (moved) {
            len = ngx_sock_ntop(&st->addrs[0].sockaddr, st->lens[0], text,
                                NGX_SOCKADDR_STRLEN, 1);

            ngx_log_error(ngx_http_cg_resolve_log_level(link), link->log, 0,
                          "client guard: \"%V\" resolves to %*s%s",
                          &st->srv->host, len, text,
                          n > 1 ? " and more" : "");
        }
    }

    ngx_resolve_name_done(ctx);
    st->ctx = NULL;

    ngx_http_cg_resolve_pick(st);

    if (st->sync) {
        st->rc = NGX_OK;
        return;
    }

    ngx_http_cg_link_prepared(link, NULL);
}


ngx_int_t
ngx_http_cg_resolve_prepare(ngx_http_cg_link_t *link)
{
    return ngx_http_cg_resolve(link, link->conf->servers.elts,
                               link->failures);
}
