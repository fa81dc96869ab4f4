
/*
 * Copyright (C) client guard authors
 *
 * cg_route: a Redis endpoint: one link, or a Redis Cluster's links.
 *
 * Owns: sending.  In single (and Sentinel) mode a command goes on the one
 * cg_link.c link as it is; in Cluster mode ("cluster" in
 * client_guard_redis) to the master of its key's slot (the key found by the
 * command's name: argv[1], an EVAL's first key; none for SCRIPT, PUBLISH,
 * PING: any master, see cg_route_map.h, which also makes the endpoint), a
 * copy kept until the reply: MOVED and ASK followed (the command sent again,
 * ASKING first for ASK, at most 3 times; a command without a handler is not
 * sent again, its MOVED only updates the map), CLUSTERDOWN, TRYAGAIN,
 * LOADING, MASTERDOWN and READONLY turned into a failed command (reply
 * NULL).  Replies of commands with a handler reach their handlers in the
 * order the commands were sent, as on one link: a reply from a master that
 * comes before its turn is kept (unless the sender gives the order up:
 * ngx_http_cg_route_send_any(), for the lease batches).  Nothing here blocks.
 */


#ifndef _CG_ROUTE_H_INCLUDED_
#define _CG_ROUTE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_route_map.h"


/* pending commands fail, links stop for good (the worker's exit) */
void ngx_http_cg_route_stop(ngx_http_cg_route_t *route);

/*
 * As ngx_http_cg_link_send(), on the link of the command's key; the
 * handler's "link" is the link that answered.  With "ordered", the reply
 * reaches its handler in the order the commands were sent; without, as
 * soon as it comes (the lease batches).  NGX_DECLINED when that master's
 * link is not ready (or the slot has no master known).
 */
ngx_int_t ngx_http_cg_route_command(ngx_http_cg_route_t *route, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_cg_link_handler_pt handler, void *data, ngx_uint_t ordered);

/* the reply in its turn */
#define ngx_http_cg_route_send(route, argc, argv, argvlen, handler, data)    \
    ngx_http_cg_route_command(route, argc, argv, argvlen, handler, data, 1)

/* its reply handled as soon as it comes (no order kept) */
#define ngx_http_cg_route_send_any(route, argc, argv, argvlen, handler,      \
                                   data)                                      \
    ngx_http_cg_route_command(route, argc, argv, argvlen, handler, data, 0)


#endif /* _CG_ROUTE_H_INCLUDED_ */
