
/*
 * Copyright (C) client guard authors
 *
 * cg_route: a Redis endpoint: one link, or a Redis Cluster's links.
 *
 * Owns: in single (and Sentinel) mode, the one cg_link.c link, passed
 * through; in Cluster mode ("cluster" in client_guard_redis), the slot map
 * (asked with CLUSTER SLOTS of a master, or of the seed addresses while no
 * master is up; again after a MOVED, while a master's link is down every
 * NGX_HTTP_CG_ROUTE_FAST ms, and every NGX_HTTP_CG_ROUTE_PERIOD ms), one
 * link per master (up to NGX_HTTP_CG_ROUTE_NODES), each command sent to the
 * master of its key's slot (the key found by the command's name: argv[1],
 * an EVAL's first key; none for SCRIPT, PUBLISH, PING: any master),
 * MOVED and ASK followed (the command sent again, ASKING first for ASK, at
 * most 3 times), CLUSTERDOWN, TRYAGAIN, LOADING and READONLY turned into a
 * failed command (reply NULL).  Replies of commands with a handler reach
 * their handlers in the order the commands were sent, as on one link
 * (ngx_http_cg_route_send_any() gives that up, for the lease batches).
 * A follower route (the subscriber) is one link to any master of its
 * leader's map.  Nothing here blocks.
 */


#ifndef _CG_ROUTE_H_INCLUDED_
#define _CG_ROUTE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "cg_link.h"
#include "cg_slot.h"


#define NGX_HTTP_CG_ROUTE_NODES    32     /* masters of a Cluster, at most */
#define NGX_HTTP_CG_ROUTE_PERIOD   5000   /* the slot map asked again, ms */
#define NGX_HTTP_CG_ROUTE_FAST     150    /* ... while a master is down */


typedef struct ngx_http_cg_route_s  ngx_http_cg_route_t;

/* ready: some master (the link) can be used; 0: none */
typedef void (*ngx_http_cg_route_state_pt)(ngx_http_cg_route_t *route,
    ngx_uint_t ready);


typedef struct {
    ngx_http_cg_link_t           *link;     /* NULL: never used */
    ngx_http_cg_route_t          *route;
    unsigned                      used:1;   /* a master of the map */
} ngx_http_cg_route_node_t;


struct ngx_http_cg_route_s {
    ngx_http_cg_link_conf_t      *conf;
    ngx_log_t                    *log;
    ngx_http_cg_route_state_pt    on_state;
    ngx_http_cg_link_handler_pt   on_push;
    void                         *data;

    /* single mode, and a follower: the link; a Cluster: the seed link */
    ngx_http_cg_link_t           *link;
    ngx_http_cg_route_t          *leader;   /* a follower's */

    /* a Cluster */
    ngx_http_cg_route_node_t      nodes[NGX_HTTP_CG_ROUTE_NODES];
    ngx_uint_t                    nnodes;
    ngx_uint_t                    seed;     /* the seed link's address */
    ngx_uint_t                    next;     /* round robin of keyless */
    ngx_event_t                   tick;     /* the map asked again */
    ngx_msec_t                    asked;    /* last CLUSTER SLOTS sent */
    ngx_msec_t                    moved;    /* the seed link, last moved */
    ngx_queue_t                   ordered;  /* commands, in order sent */
    ngx_queue_t                   free;
    const char                  **argv;     /* a command sent again */
    size_t                       *argvlen;
    ngx_uint_t                    nargv;
    ngx_uint_t                    delivering;
    unsigned                      cluster:1;
    unsigned                      asking:1; /* CLUSTER SLOTS in flight */
    unsigned                      mapped:1;
    unsigned                      ready:1;  /* as on_state was told */
    unsigned                      wrong:1;  /* no Cluster there */
    unsigned                      bad:1;    /* a map refused, logged */
    unsigned                      quiet:1;
    unsigned                      logged_full:1;
    uint8_t                       slots[CG_SLOTS]; /* node + 1; 0: none */
};


ngx_http_cg_route_t *ngx_http_cg_route_create(ngx_cycle_t *cycle,
    ngx_http_cg_link_conf_t *conf, ngx_http_cg_route_state_pt on_state,
    ngx_http_cg_link_handler_pt on_push, void *data);

/*
 * Before the start: in Cluster mode, "route" is one link to any master of
 * "leader" (moved to another when it is lost); otherwise nothing changes.
 */
void ngx_http_cg_route_follow(ngx_http_cg_route_t *route,
    ngx_http_cg_route_t *leader);

/* transitions logged at debug level only */
void ngx_http_cg_route_quiet(ngx_http_cg_route_t *route);

void ngx_http_cg_route_start(ngx_http_cg_route_t *route);
void ngx_http_cg_route_stop(ngx_http_cg_route_t *route);

/*
 * As ngx_http_cg_link_send(), on the link of the command's key; the
 * handler's "link" is the link that answered.  NGX_DECLINED when that
 * master's link is not ready (or the slot has no master known).
 */
ngx_int_t ngx_http_cg_route_send(ngx_http_cg_route_t *route, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_cg_link_handler_pt handler, void *data);

/* the same, its reply handled as soon as it comes (no order kept) */
ngx_int_t ngx_http_cg_route_send_any(ngx_http_cg_route_t *route, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_cg_link_handler_pt handler, void *data);

/* 1 when the master of "slot" is ready (single mode: the link) */
ngx_uint_t ngx_http_cg_route_slot_ready(ngx_http_cg_route_t *route,
    ngx_uint_t slot);

/* a NGX_HTTP_CG_LINK_* state for the status: READY when some master is */
ngx_uint_t ngx_http_cg_route_state(ngx_http_cg_route_t *route);

#define ngx_http_cg_route_ready(route)                                       \
    ((route) && ((route)->cluster ? (route)->ready                            \
                                  : ngx_http_cg_link_ready((route)->link)))


#endif /* _CG_ROUTE_H_INCLUDED_ */
