
/*
 * Copyright (C) client guard authors
 *
 * cg_link: a per-worker asynchronous Redis link on nginx's event loop.
 *
 * Owns: the socket (ngx_event_connect_peer), the connection state machine
 * (connecting, TLS through cg_link_tls, AUTH/SELECT and HELLO, ready,
 * backoff), the watchdog that drops a connection whose oldest command is
 * overdue, reconnection with exponential backoff and jitter; the link's
 * event handlers, which hand the reading and writing to cg_link_io.c.
 * The commands pending (written in RESP, pipelined, replies in order;
 * ngx_http_cg_link_send()) are cg_link_cmd.c's; the types,
 * cg_link_types.h's (both included here).  No call here ever blocks.
 *
 * The handshake checks the server (HELLO's mode and role): in single mode
 * a standalone primary, with "cluster" a cluster node, with "sentinel=" a
 * sentinel or a standalone primary.  What fails is logged with its likely
 * cause (TLS expected, wrong password, a replica, a cluster node), once
 * per outage; a command refused by the server's ACL (NOPERM) is logged
 * once per command (again after 10 minutes).
 */


#ifndef _CG_LINK_H_INCLUDED_
#define _CG_LINK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "cg_link_types.h"
#include "cg_link_cmd.h"


ngx_http_cg_link_t *ngx_http_cg_link_create(ngx_cycle_t *cycle,
    ngx_http_cg_link_conf_t *conf, ngx_http_cg_link_state_pt on_state,
    ngx_http_cg_link_handler_pt on_push, void *data);

/* connects now (init_process) */
void ngx_http_cg_link_start(ngx_http_cg_link_t *link);

/* closes for good: pending operations fail, no reconnection */
void ngx_http_cg_link_stop(ngx_http_cg_link_t *link);

/* ngx_http_cg_link_send(): cg_link_cmd.h */

/*
 * Where the next connection goes (a Sentinel's answer, a Cluster's master,
 * a name resolved again); the current one, if any, is kept: call
 * ngx_http_cg_link_fail() to move at once.
 */
void ngx_http_cg_link_set_addr(ngx_http_cg_link_t *link,
    struct sockaddr *sockaddr, socklen_t socklen);

/*
 * Connects to another address at once (a new master), without backoff, also
 * after ngx_http_cg_link_stop(): the current connection and its pending
 * operations fail.  A live link already there is left alone.
 */
void ngx_http_cg_link_move(ngx_http_cg_link_t *link,
    struct sockaddr *sockaddr, socklen_t socklen);

/* the end of a prepare that said NGX_AGAIN: NULL, connect; or why not */
void ngx_http_cg_link_prepared(ngx_http_cg_link_t *link, const char *error);

/* drops the connection (a protocol error seen by a user), reconnects later */
void ngx_http_cg_link_fail(ngx_http_cg_link_t *link, const char *why);

#define ngx_http_cg_link_ready(link)                                         \
    ((link) && (link)->state == NGX_HTTP_CG_LINK_READY)


#endif /* _CG_LINK_H_INCLUDED_ */
