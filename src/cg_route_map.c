
/*
 * Copyright (C) client guard authors
 *
 * A Redis endpoint's links and a Redis Cluster's slot map.  See
 * cg_route_map.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "cg_route_map.h"


#define NGX_HTTP_CG_ROUTE_WRONG      1000   /* no Cluster there: again */


static void ngx_http_cg_route_tick(ngx_event_t *ev);
static void ngx_http_cg_route_update(ngx_http_cg_route_t *route);


/* single mode and followers: the link's events, passed on */

static void
ngx_http_cg_route_link_state(ngx_http_cg_link_t *link, ngx_uint_t ready)
{
    ngx_http_cg_route_t  *route = link->data;

    if (route->leader && !ready && !route->tick.timer_set) {
        ngx_add_timer(&route->tick, NGX_HTTP_CG_ROUTE_FAST);
    }

    if (route->on_state) {
        route->on_state(route, ready);
    }
}


static void
ngx_http_cg_route_link_push(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_route_t  *route = link->data;

    route->on_push(link, reply, route->data);
}


/* a master's link in a Cluster */

static void
ngx_http_cg_route_node_state(ngx_http_cg_link_t *link, ngx_uint_t ready)
{
    ngx_http_cg_route_node_t  *node = link->data;
    ngx_http_cg_route_t       *route = node->route;

    if (!ready) {
        /* a master lost: the map is asked again soon, and often */

        if (route->tick.timer_set) {
            ngx_del_timer(&route->tick);
        }

        ngx_add_timer(&route->tick, NGX_HTTP_CG_ROUTE_FAST);
    }

    ngx_http_cg_route_update(route);
}


static ngx_http_cg_link_t *
ngx_http_cg_route_link(ngx_http_cg_route_t *route, ngx_cycle_t *cycle,
    ngx_http_cg_link_state_pt on_state, ngx_http_cg_link_handler_pt on_push,
    void *data)
{
    ngx_http_cg_link_t  *link;

    link = ngx_http_cg_link_create(cycle, route->conf, on_state, on_push,
                                   data);
    if (link) {
        link->quiet = route->quiet;
    }

    return link;
}


ngx_http_cg_route_t *
ngx_http_cg_route_create(ngx_cycle_t *cycle, ngx_http_cg_link_conf_t *conf,
    ngx_http_cg_route_state_pt on_state, ngx_http_cg_link_handler_pt on_push,
    void *data)
{
    ngx_http_cg_route_t  *route;

    route = ngx_pcalloc(cycle->pool, sizeof(ngx_http_cg_route_t));
    if (route == NULL) {
        return NULL;
    }

    route->conf = conf;
    route->log = cycle->log;
    route->on_state = on_state;
    route->on_push = on_push;
    route->data = data;
    route->cluster = (conf->mode == NGX_HTTP_CG_LINK_CLUSTER);

    ngx_queue_init(&route->ordered);
    ngx_queue_init(&route->free);

    route->tick.handler = ngx_http_cg_route_tick;
    route->tick.data = route;
    route->tick.log = cycle->log;
    route->tick.cancelable = 1;

    /* single mode: the link; a Cluster: the link to the seeds */

    route->link = ngx_http_cg_route_link(route, cycle,
                                         ngx_http_cg_route_link_state,
                                         on_push ? ngx_http_cg_route_link_push
                                                 : NULL,
                                         route);
    if (route->link == NULL) {
        return NULL;
    }

    if (route->cluster) {
        route->slots = ngx_pcalloc(cycle->pool, CG_SLOTS);
        if (route->slots == NULL) {
            return NULL;
        }

        route->link->on_state = ngx_http_cg_route_node_state;
        route->link->data = &route->nodes[0];
        route->nodes[0].route = route;
        route->nodes[0].link = route->link;
        route->nnodes = 1;
    }

    return route;
}


void
ngx_http_cg_route_follow(ngx_http_cg_route_t *route,
    ngx_http_cg_route_t *leader)
{
    if (!route->cluster) {
        return;
    }

    /* one link, moved to a master of the leader's map when lost */

    route->cluster = 0;
    route->leader = leader;
    route->nnodes = 0;
    route->link->on_state = ngx_http_cg_route_link_state;
    route->link->data = route;
}


void
ngx_http_cg_route_quiet(ngx_http_cg_route_t *route)
{
    route->quiet = 1;
    route->link->quiet = 1;
}


void
ngx_http_cg_route_start(ngx_http_cg_route_t *route)
{
    ngx_http_cg_link_start(route->link);

    if (route->cluster || route->leader) {
        ngx_add_timer(&route->tick, NGX_HTTP_CG_ROUTE_FAST);
    }
}


ngx_uint_t
ngx_http_cg_route_state(ngx_http_cg_route_t *route)
{
    ngx_uint_t  i, state;

    if (!route->cluster) {
        return route->link->state;
    }

    if (route->ready) {
        return NGX_HTTP_CG_LINK_READY;
    }

    state = NGX_HTTP_CG_LINK_BACKOFF;

    for (i = 0; i < route->nnodes; i++) {
        if (route->nodes[i].link->state == NGX_HTTP_CG_LINK_CONNECTING
            || route->nodes[i].link->state == NGX_HTTP_CG_LINK_HANDSHAKE)
        {
            state = NGX_HTTP_CG_LINK_CONNECTING;
        }
    }

    return state;
}


/* ready: a map, and some master of it up; on_state told of a change */

static void
ngx_http_cg_route_update(ngx_http_cg_route_t *route)
{
    ngx_uint_t  i, ready;

    ready = 0;

    for (i = 0; route->mapped && i < route->nnodes; i++) {
        if (route->nodes[i].used
            && ngx_http_cg_link_ready(route->nodes[i].link))
        {
            ready = 1;
            break;
        }
    }

    if (ready == route->ready) {
        return;
    }

    route->ready = ready;

    if (route->on_state) {
        route->on_state(route, ready);
    }
}


ngx_uint_t
ngx_http_cg_route_slot_ready(ngx_http_cg_route_t *route, ngx_uint_t slot)
{
    ngx_uint_t  n;

    if (!route->cluster) {
        return ngx_http_cg_link_ready(route->link);
    }

    n = route->slots[slot & (CG_SLOTS - 1)];

    return n && ngx_http_cg_link_ready(route->nodes[n - 1].link);
}


/* the link of a command: its key's master, or any master up */

ngx_http_cg_link_t *
ngx_http_cg_route_pick(ngx_http_cg_route_t *route, int argc,
    const char **argv, const size_t *argvlen)
{
    ngx_int_t    nkeys;
    ngx_uint_t   i, n, k;
    const char  *c;

    c = argv[0];
    k = 1;

    if (argvlen[0] == 7 && ngx_strncasecmp((u_char *) c,
                                           (u_char *) "EVALSHA", 7) == 0)
    {
        k = 3;

    } else if (argvlen[0] == 4
               && ngx_strncasecmp((u_char *) c, (u_char *) "EVAL", 4) == 0)
    {
        k = 3;

    } else if ((argvlen[0] == 6
                && ngx_strncasecmp((u_char *) c, (u_char *) "SCRIPT", 6) == 0)
               || (argvlen[0] == 7
                   && ngx_strncasecmp((u_char *) c, (u_char *) "PUBLISH", 7)
                      == 0)
               || (argvlen[0] == 4
                   && ngx_strncasecmp((u_char *) c, (u_char *) "PING", 4)
                      == 0))
    {
        k = 0;
    }

    if (k == 3) {
        nkeys = (argc > 2) ? ngx_atoi((u_char *) argv[2], argvlen[2]) : 0;

        if (nkeys == NGX_ERROR || nkeys == 0) {
            k = 0;
        }
    }

    if (k && (int) k < argc) {
        n = route->slots[cg_slot((u_char *) argv[k], argvlen[k])];

        return n ? route->nodes[n - 1].link : NULL;
    }

    /* no key: the masters in turn */

    for (i = 0; i < route->nnodes; i++) {
        n = route->next++ % route->nnodes;

        if (route->nodes[n].used
            && ngx_http_cg_link_ready(route->nodes[n].link))
        {
            return route->nodes[n].link;
        }
    }

    return NULL;
}


/* the node of an address of the map (or of a redirection), made if new */

ngx_http_cg_route_node_t *
ngx_http_cg_route_node(ngx_http_cg_route_t *route, ngx_http_cg_link_t *from,
    u_char *host, size_t host_len, in_port_t port)
{
    in_addr_t                  in;
    ngx_addr_t                 addr;
    ngx_uint_t                 i;
    ngx_sockaddr_t             sa;
    ngx_http_cg_route_node_t  *node, *spare;

    /* no allocation: the map is read again and again */

    addr.sockaddr = &sa.sockaddr;

    if (host_len > 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }

    if (host_len == 0) {
        /* "the node that answered", on the port given */

        ngx_memcpy(&sa, from->addr.sockaddr, from->addr.socklen);
        addr.socklen = from->addr.socklen;

    } else {
        ngx_memzero(&sa, sizeof(ngx_sockaddr_t));

        in = ngx_inet_addr(host, host_len);

        if (in != INADDR_NONE) {
            sa.sockaddr_in.sin_family = AF_INET;
            sa.sockaddr_in.sin_addr.s_addr = in;
            addr.socklen = sizeof(struct sockaddr_in);

#if (NGX_HAVE_INET6)
        } else if (ngx_inet6_addr(host, host_len,
                                  sa.sockaddr_in6.sin6_addr.s6_addr)
                   == NGX_OK)
        {
            sa.sockaddr_in6.sin6_family = AF_INET6;
            addr.socklen = sizeof(struct sockaddr_in6);
#endif

        } else {
            for (i = 0; i < route->nnodes; i++) {
                node = &route->nodes[i];

                if (node->used && node->name_len == host_len
                    && ngx_strncasecmp(node->name, host, host_len) == 0
                    && ngx_inet_get_port(node->link->addr.sockaddr) == port)
                {
                    return node;
                }
            }

            if (!route->logged_name) {
                route->logged_name = 1;
                ngx_log_error(NGX_LOG_ERR, route->log, 0,
                              "client guard: redis cluster node \"%*s\" is "
                              "not an IP address, and CLUSTER SLOTS gave no "
                              "\"ip\" for it (Redis 7 does, with any "
                              "cluster-preferred-endpoint-type): its slots "
                              "fail until it does", host_len, host);
            }

            return NULL;
        }
    }

    ngx_inet_set_port(addr.sockaddr, port);

    spare = NULL;

    for (i = 0; i < route->nnodes; i++) {
        node = &route->nodes[i];

        if (ngx_cmp_sockaddr(node->link->addr.sockaddr,
                             node->link->addr.socklen, addr.sockaddr,
                             addr.socklen, 1)
            == NGX_OK)
        {
            if (node->link->stopped) {
                ngx_http_cg_link_move(node->link, addr.sockaddr,
                                      addr.socklen);
            }

            return node;
        }

        if (spare == NULL && !node->used && node->link->stopped) {
            spare = node;
        }
    }

    if (spare == NULL) {
        if (route->nnodes == NGX_HTTP_CG_ROUTE_NODES) {
            if (!route->logged_full) {
                route->logged_full = 1;
                ngx_log_error(NGX_LOG_ERR, route->log, 0,
                              "client guard: redis cluster has more than %d "
                              "masters: the slots of the others fail",
                              NGX_HTTP_CG_ROUTE_NODES);
            }

            return NULL;
        }

        spare = &route->nodes[route->nnodes];
        spare->route = route;
        spare->link = ngx_http_cg_route_link(route, (ngx_cycle_t *) ngx_cycle,
                                             ngx_http_cg_route_node_state,
                                             NULL, spare);
        if (spare->link == NULL) {
            return NULL;
        }

        route->nnodes++;
    }

    ngx_http_cg_link_move(spare->link, addr.sockaddr, addr.socklen);

    return spare;
}


/* the slot map */

static void
ngx_http_cg_route_slots(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_route_t  *route = data;

    size_t                     n, i, k, masters;
    const char                *err;
    cg_slot_range_t           *rg;
    ngx_http_cg_route_node_t  *node;

    route->asking = 0;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        if (!route->wrong && !route->quiet) {
            ngx_log_error(NGX_LOG_ERR, route->log, 0,
                          "client guard: redis %V is not a Redis Cluster, "
                          "but \"client_guard_redis\" has \"cluster\": %*s",
                          &link->addr.name, (size_t) ngx_min(reply->len, 128),
                          reply->str);
        }

        route->wrong = 1;
        return;
    }

    route->wrong = 0;

    rg = NULL;

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements) {
        rg = ngx_alloc(reply->elements * sizeof(cg_slot_range_t), route->log);
        if (rg == NULL) {
            return;
        }
    }

    err = cg_slot_parse(reply, rg, reply->elements, &n);

    if (err || n == 0) {
        if (!route->bad) {
            route->bad = 1;
            ngx_log_error(NGX_LOG_ERR, route->log, 0,
                          "client guard: redis %V: unexpected CLUSTER SLOTS "
                          "reply: %s; the slot map stays", &link->addr.name,
                          err ? err : "no slots assigned");
        }

        goto done;
    }

    route->bad = 0;

    for (i = 0; i < route->nnodes; i++) {
        route->nodes[i].used = 0;
    }

    ngx_memzero(route->slots, CG_SLOTS);

    for (i = 0; i < n; i++) {
        node = ngx_http_cg_route_node(route, link, rg[i].host,
                                      rg[i].host_len, rg[i].port);
        if (node == NULL) {
            continue;
        }

        node->used = 1;
        node->name_len = rg[i].name_len;
        ngx_memcpy(node->name, rg[i].name, rg[i].name_len);

        for (k = rg[i].start; k <= rg[i].end; k++) {
            route->slots[k] = (uint8_t) (node - route->nodes + 1);
        }
    }

    if (!route->mapped) {
        masters = 0;

        for (i = 0; i < route->nnodes; i++) {
            masters += route->nodes[i].used;
        }

        ngx_log_error((ngx_uint_t) (route->quiet ? NGX_LOG_DEBUG
                                                 : NGX_LOG_INFO),
                      route->log, 0,
                      "client guard: redis cluster: %uz slot ranges on %uz "
                      "masters", n, masters);
    }

    route->mapped = 1;

    /* masters no longer in the map: their links stop (no reconnection) */

    for (i = 0; i < route->nnodes; i++) {
        node = &route->nodes[i];

        if (!node->used && !node->link->stopped) {
            ngx_http_cg_link_stop(node->link);
        }
    }

    ngx_http_cg_route_update(route);

done:

    if (rg) {
        ngx_free(rg);
    }
}


void
ngx_http_cg_route_ask(ngx_http_cg_route_t *route)
{
    size_t                     len[2];
    ngx_uint_t                 i, k;
    const char                *argv[2];
    ngx_http_cg_link_t        *link;
    ngx_http_cg_link_server_t *srv;

    if (route->asking) {
        return;
    }

    /* a master up, in turn; else the seeds, one after the other */

    link = NULL;

    for (i = 0; i < route->nnodes; i++) {
        k = route->next++ % route->nnodes;

        if (ngx_http_cg_link_ready(route->nodes[k].link)) {
            link = route->nodes[k].link;
            break;
        }
    }

    if (link == NULL) {
        link = route->nodes[0].link;

        /* the next seed, once a second at most (else the link's backoff) */

        if ((link->state == NGX_HTTP_CG_LINK_BACKOFF
             || link->state == NGX_HTTP_CG_LINK_IDLE)
            && (route->conf->servers.nelts > 1 || link->stopped)
            && ngx_current_msec - route->moved >= 1000)
        {
            route->moved = ngx_current_msec;

            srv = route->conf->servers.elts;
            srv = &srv[route->seed++ % route->conf->servers.nelts];

            if (route->nodes[0].used) {
                /* the first master becomes the seed link again */
                route->nodes[0].used = 0;
                ngx_memzero(route->slots, CG_SLOTS);
                route->mapped = 0;
                ngx_http_cg_route_update(route);
            }

            ngx_http_cg_link_move(link, srv->addrs[0].sockaddr,
                                  srv->addrs[0].socklen);
        }

        return;
    }

    argv[0] = "CLUSTER";
    len[0] = 7;
    argv[1] = "SLOTS";
    len[1] = 5;

    if (ngx_http_cg_link_send(link, 2, argv, len, ngx_http_cg_route_slots,
                              route)
        == NGX_OK)
    {
        route->asking = 1;
        route->asked = ngx_current_msec;
    }
}


/* a follower: its link moved to a master up when it is lost */

static void
ngx_http_cg_route_follow_tick(ngx_http_cg_route_t *route)
{
    ngx_uint_t           i;
    ngx_http_cg_link_t  *link, *to;

    link = route->link;

    if (ngx_http_cg_link_ready(link)) {
        /* its loss starts the tick again */
        return;
    }

    ngx_add_timer(&route->tick, NGX_HTTP_CG_ROUTE_FAST);

    if (link->state != NGX_HTTP_CG_LINK_BACKOFF
        && link->state != NGX_HTTP_CG_LINK_IDLE)
    {
        return;
    }

    for (i = 0; i < route->leader->nnodes; i++) {
        to = route->leader->nodes[i].link;

        if (route->leader->nodes[i].used && ngx_http_cg_link_ready(to)) {
            if (ngx_cmp_sockaddr(to->addr.sockaddr, to->addr.socklen,
                                 link->addr.sockaddr, link->addr.socklen, 1)
                != NGX_OK)
            {
                ngx_http_cg_link_move(link, to->addr.sockaddr,
                                      to->addr.socklen);
            }

            return;
        }
    }
}


static void
ngx_http_cg_route_tick(ngx_event_t *ev)
{
    ngx_uint_t            i, fast;
    ngx_http_cg_route_t  *route = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (route->leader) {
        ngx_http_cg_route_follow_tick(route);
        return;
    }

    /* often while no map, or a master of it down */

    fast = !route->mapped;

    for (i = 0; i < route->nnodes; i++) {
        if (route->nodes[i].used
            && !ngx_http_cg_link_ready(route->nodes[i].link))
        {
            fast = 1;
        }
    }

    ngx_http_cg_route_ask(route);

    ngx_add_timer(ev, route->wrong ? NGX_HTTP_CG_ROUTE_WRONG
                      : fast ? NGX_HTTP_CG_ROUTE_FAST
                      : NGX_HTTP_CG_ROUTE_PERIOD);
}
