
/*
 * Copyright (C) client guard authors
 *
 * cg_link_tls: TLS on the Redis link, through nginx's own OpenSSL (ngx_ssl).
 *
 * Owns: the checks of client_guard_redis's tls parameters and the SSL
 * context made from them at configuration time (freed with the
 * configuration); on a connection: the client side of the handshake (SNI,
 * the session kept for the next handshake), the verification of the
 * server's certificate (its chain against tls_ca=, then its name against
 * tls_name=), what nginx's SSL layer logs on the connection (caught: its
 * reason goes into cg_link's one line per outage instead of a line per
 * retry, some at crit), and the close.  Each failure is said with its
 * likely cause ("is the server TLS?").  Without NGX_SSL, "tls" fails the
 * configuration.  cg_link.c calls it; it calls nothing of cg_link.c.
 */


#ifndef _CG_LINK_TLS_H_INCLUDED_
#define _CG_LINK_TLS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "cg_link_types.h"


/* the end of client_guard_redis: checks, defaults, conf->ssl */
char *ngx_http_cg_link_tls_conf(ngx_conf_t *cf, ngx_http_cg_link_conf_t *conf);

/*
 * Starts TLS on link->peer.connection, the TCP connection just made.
 * NGX_OK: the handshake is done, NGX_AGAIN: "done" runs when it is (or
 * failed, or timed out); then ngx_http_cg_link_tls_check() says how it
 * went.  NGX_ERROR: failed at once, link->error says why.
 */
ngx_int_t ngx_http_cg_link_tls_start(ngx_http_cg_link_t *link,
    ngx_connection_handler_pt done);

/* after the handshake: NGX_OK, or NGX_ERROR with the reason in link->error */
ngx_int_t ngx_http_cg_link_tls_check(ngx_http_cg_link_t *link);

/*
 * A read or a write that failed ("what"): the reason in link->error, with
 * what nginx's SSL layer said of it and its likely cause
 */
u_char *ngx_http_cg_link_tls_failed(ngx_http_cg_link_t *link,
    const char *what);

/* before link->peer.connection closes: the TLS state and its pool */
void ngx_http_cg_link_tls_close(ngx_http_cg_link_t *link);

/* the link stops for good: the session kept */
void ngx_http_cg_link_tls_free(ngx_http_cg_link_t *link);


#endif /* _CG_LINK_TLS_H_INCLUDED_ */
