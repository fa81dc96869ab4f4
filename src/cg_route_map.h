
/*
 * Copyright (C) client guard authors
 *
 * cg_route_map: a Redis endpoint's links, and a Redis Cluster's slot map.
 *
 * Owns: the endpoint (ngx_http_cg_route_t, made here): in single mode the
 * one link; in Cluster mode the link per master (up to
 * NGX_HTTP_CG_ROUTE_NODES; the first one starts at a seed), the slot map
 * (CLUSTER SLOTS of a master up, or of the seeds in turn while none is;
 * asked again every NGX_HTTP_CG_ROUTE_PERIOD ms, every
 * NGX_HTTP_CG_ROUTE_FAST ms while a master of it is down, and after a MOVED
 * through ngx_http_cg_route_ask()), masters no longer in the map stopped,
 * the masters' host names (where the map gives them: a MOVED may name a
 * master so), the endpoint's state (ready while some master of the map
 * is), which link a command's key goes to; a follower (one link moved to
 * any master of its leader's map).  A server that is no Cluster is logged
 * once.  Sending is cg_route.c's.
 */


#ifndef _CG_ROUTE_MAP_H_INCLUDED_
#define _CG_ROUTE_MAP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "cg_link.h"
#include "cg_slot.h"


#define NGX_HTTP_CG_ROUTE_NODES    32     /* masters of a Cluster, at most */
#define NGX_HTTP_CG_ROUTE_PERIOD   5000   /* the slot map asked again, ms */
#define NGX_HTTP_CG_ROUTE_FAST     150    /* ... while a master is down */
#define NGX_HTTP_CG_ROUTE_SOON     50     /* after a MOVED, at most */


typedef struct ngx_http_cg_route_s  ngx_http_cg_route_t;

/* ready: some master (the link) can be used; 0: none */
typedef void (*ngx_http_cg_route_state_pt)(ngx_http_cg_route_t *route,
    ngx_uint_t ready);


typedef struct {
    ngx_http_cg_link_t           *link;     /* NULL: never used */
    ngx_http_cg_route_t          *route;
    unsigned                      used:1;   /* a master of the map */
    uint16_t                      name_len; /* its host name, if any */
    u_char                        name[CG_SLOT_HOST_MAX];
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
    unsigned                      logged_name:1;
    uint8_t                      *slots;    /* CG_SLOTS: node + 1, 0: none */
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

/* 1 when the master of "slot" is ready (single mode: the link) */
ngx_uint_t ngx_http_cg_route_slot_ready(ngx_http_cg_route_t *route,
    ngx_uint_t slot);

/* a NGX_HTTP_CG_LINK_* state for the status: READY when some master is */
ngx_uint_t ngx_http_cg_route_state(ngx_http_cg_route_t *route);

#define ngx_http_cg_route_ready(route)                                       \
    ((route) && ((route)->cluster ? (route)->ready                            \
                                  : ngx_http_cg_link_ready((route)->link)))

/* for cg_route.c, in Cluster mode */

/* the link of a command's key (argv[1], an EVAL's first key), or any */
ngx_http_cg_link_t *ngx_http_cg_route_pick(ngx_http_cg_route_t *route,
    int argc, const char **argv, const size_t *argvlen);

/*
 * The master at an address (host_len 0: "from", on "port"), made if new;
 * or by the host name the map gave it (a MOVED of a Cluster that announces
 * host names).  NULL for a host name the map did not give.
 */
ngx_http_cg_route_node_t *ngx_http_cg_route_node(ngx_http_cg_route_t *route,
    ngx_http_cg_link_t *from, u_char *host, size_t host_len, in_port_t port);

/* the slot map asked now (unless a CLUSTER SLOTS is in flight) */
void ngx_http_cg_route_ask(ngx_http_cg_route_t *route);


#endif /* _CG_ROUTE_MAP_H_INCLUDED_ */
