
/*
 * Copyright (C) client guard authors
 *
 * A Redis endpoint: commands sent, redirections followed.  See cg_route.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "cg_route.h"


#define NGX_HTTP_CG_ROUTE_REDIRECTS  3


/* a command sent in Cluster mode: its copy, to send it again */

typedef struct {
    ngx_queue_t                   queue;    /* route->ordered, or free */
    ngx_http_cg_route_t          *route;
    ngx_http_cg_link_handler_pt   handler;
    void                         *data;
    ngx_http_cg_link_t           *from;     /* the link that answered */
    redisReply                   *reply;    /* kept until its turn */
    ngx_uint_t                    redirects;
    int                           argc;
    size_t                        used;
    size_t                        size;
    u_char                       *buf;      /* lengths, then the bytes */
    unsigned                      ordered:1;
    unsigned                      done:1;
} ngx_http_cg_route_cmd_t;


static void ngx_http_cg_route_reply(ngx_http_cg_link_t *link,
    redisReply *reply, void *data);
static void ngx_http_cg_route_noreply(ngx_http_cg_link_t *link,
    redisReply *reply, void *data);


void
ngx_http_cg_route_stop(ngx_http_cg_route_t *route)
{
    ngx_uint_t                i;
    ngx_queue_t              *q;
    ngx_http_cg_route_cmd_t  *cmd;

    if (route->tick.timer_set) {
        ngx_del_timer(&route->tick);
    }

    if (!route->cluster) {
        ngx_http_cg_link_stop(route->link);
        return;
    }

    /* pending commands fail with their links */

    route->mapped = 0;

    for (i = 0; i < route->nnodes; i++) {
        ngx_http_cg_link_stop(route->nodes[i].link);
    }

    while (!ngx_queue_empty(&route->free)) {
        q = ngx_queue_head(&route->free);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_http_cg_route_cmd_t, queue);

        if (cmd->buf) {
            ngx_free(cmd->buf);
        }

        ngx_free(cmd);
    }

    if (route->argv) {
        ngx_free(route->argv);
        ngx_free(route->argvlen);
        route->argv = NULL;
    }
}


static ngx_http_cg_route_cmd_t *
ngx_http_cg_route_cmd(ngx_http_cg_route_t *route, int argc,
    const char **argv, const size_t *argvlen)
{
    int                       i;
    u_char                   *p;
    size_t                    size;
    ngx_queue_t              *q;
    ngx_http_cg_route_cmd_t  *cmd;

    size = argc * sizeof(size_t);

    for (i = 0; i < argc; i++) {
        size += argvlen[i];
    }

    if (ngx_queue_empty(&route->free)) {
        cmd = ngx_alloc(sizeof(ngx_http_cg_route_cmd_t), route->log);
        if (cmd == NULL) {
            return NULL;
        }

        cmd->buf = NULL;
        cmd->size = 0;

    } else {
        q = ngx_queue_head(&route->free);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_http_cg_route_cmd_t, queue);
    }

    if (cmd->size < size) {
        if (cmd->buf) {
            ngx_free(cmd->buf);
        }

        cmd->size = ngx_max(size, 256);
        cmd->buf = ngx_alloc(cmd->size, route->log);

        if (cmd->buf == NULL) {
            cmd->size = 0;
            ngx_queue_insert_head(&route->free, &cmd->queue);
            return NULL;
        }
    }

    ngx_memcpy(cmd->buf, argvlen, argc * sizeof(size_t));
    p = cmd->buf + argc * sizeof(size_t);

    for (i = 0; i < argc; i++) {
        p = ngx_cpymem(p, argv[i], argvlen[i]);
    }

    cmd->route = route;
    cmd->argc = argc;
    cmd->used = size;
    cmd->reply = NULL;
    cmd->from = NULL;
    cmd->redirects = 0;
    cmd->done = 0;

    return cmd;
}


static void
ngx_http_cg_route_cmd_free(ngx_http_cg_route_cmd_t *cmd)
{
    if (cmd->reply) {
        freeReplyObject(cmd->reply);
        cmd->reply = NULL;
    }

    ngx_queue_insert_head(&cmd->route->free, &cmd->queue);
}


/* the command's copy on "link"; the arguments rebuilt from it */

static ngx_int_t
ngx_http_cg_route_resend(ngx_http_cg_route_cmd_t *cmd,
    ngx_http_cg_link_t *link, ngx_uint_t ask)
{
    int                   i;
    u_char               *p;
    size_t               *len;
    ngx_uint_t            n;
    ngx_http_cg_route_t  *route = cmd->route;

    static const char    *asking = "ASKING";
    static const size_t   asking_len = 6;

    if ((ngx_uint_t) cmd->argc > route->nargv) {
        n = ngx_max((ngx_uint_t) cmd->argc, 2 * route->nargv);

        if (route->argv) {
            ngx_free(route->argv);
            ngx_free(route->argvlen);
        }

        route->argv = ngx_alloc(n * sizeof(const char *), route->log);
        route->argvlen = ngx_alloc(n * sizeof(size_t), route->log);

        if (route->argv == NULL || route->argvlen == NULL) {
            if (route->argv) {
                ngx_free(route->argv);
            }

            if (route->argvlen) {
                ngx_free(route->argvlen);
            }

            route->argv = NULL;
            route->argvlen = NULL;
            route->nargv = 0;
            return NGX_ERROR;
        }

        route->nargv = n;
    }

    len = (size_t *) cmd->buf;
    p = cmd->buf + cmd->argc * sizeof(size_t);

    for (i = 0; i < cmd->argc; i++) {
        route->argv[i] = (const char *) p;
        route->argvlen[i] = len[i];
        p += len[i];
    }

    if (ask
        && ngx_http_cg_link_send(link, 1, &asking, &asking_len, NULL, NULL)
           != NGX_OK)
    {
        return NGX_DECLINED;
    }

    return ngx_http_cg_link_send(link, cmd->argc, route->argv,
                                 route->argvlen, ngx_http_cg_route_reply,
                                 cmd);
}


ngx_int_t
ngx_http_cg_route_command(ngx_http_cg_route_t *route, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_cg_link_handler_pt handler, void *data, ngx_uint_t ordered)
{
    ngx_int_t                 rc;
    ngx_http_cg_link_t       *link;
    ngx_http_cg_route_cmd_t  *cmd;

    if (route == NULL) {
        return NGX_DECLINED;
    }

    if (!route->cluster) {
        /* one link: its replies come in order */

        return ngx_http_cg_link_send(route->link, argc, argv, argvlen,
                                     handler, data);
    }

    if (!route->mapped) {
        return NGX_DECLINED;
    }

    link = ngx_http_cg_route_pick(route, argc, argv, argvlen);

    if (!ngx_http_cg_link_ready(link)) {
        return NGX_DECLINED;
    }

    if (handler == NULL) {
        /* nobody waits: not sent again, a MOVED only updates the map */

        return ngx_http_cg_link_send(link, argc, argv, argvlen,
                                     ngx_http_cg_route_noreply, route);
    }

    cmd = ngx_http_cg_route_cmd(route, argc, argv, argvlen);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->ordered = ordered;

    rc = ngx_http_cg_link_send(link, argc, argv, argvlen,
                               ngx_http_cg_route_reply, cmd);

    if (rc != NGX_OK) {
        ngx_queue_insert_head(&route->free, &cmd->queue);
        return rc;
    }

    if (ordered) {
        ngx_queue_insert_tail(&route->ordered, &cmd->queue);

    } else {
        ngx_queue_init(&cmd->queue);
    }

    return NGX_OK;
}


/* replies: redirections followed, the order of the handlers kept */

static void
ngx_http_cg_route_deliver(ngx_http_cg_route_t *route)
{
    ngx_queue_t              *q;
    ngx_http_cg_route_cmd_t  *cmd;

    if (route->delivering) {
        return;
    }

    route->delivering = 1;

    while (!ngx_queue_empty(&route->ordered)) {
        q = ngx_queue_head(&route->ordered);
        cmd = ngx_queue_data(q, ngx_http_cg_route_cmd_t, queue);

        if (!cmd->done) {
            break;
        }

        ngx_queue_remove(q);

        cmd->handler(cmd->from, cmd->reply, cmd->data);

        ngx_http_cg_route_cmd_free(cmd);
    }

    route->delivering = 0;
}


static void
ngx_http_cg_route_complete(ngx_http_cg_route_cmd_t *cmd,
    ngx_http_cg_link_t *link, redisReply *reply)
{
    redisReply           *kept;
    ngx_http_cg_route_t  *route = cmd->route;

    cmd->from = link;

    if (!cmd->ordered) {
        cmd->handler(link, reply, cmd->data);
        ngx_queue_insert_head(&route->free, &cmd->queue);
        return;
    }

    cmd->done = 1;

    if (ngx_queue_head(&route->ordered) == &cmd->queue
        && !route->delivering)
    {
        ngx_queue_remove(&cmd->queue);
        cmd->handler(link, reply, cmd->data);
        ngx_queue_insert_head(&route->free, &cmd->queue);

        ngx_http_cg_route_deliver(route);
        return;
    }

    /*
     * Its turn comes after a reply from another master: the reply is kept
     * (its top moved into a copy that the link does not free).
     */

    if (reply) {
        kept = ngx_alloc(sizeof(redisReply), route->log);

        if (kept) {
            *kept = *reply;
            reply->type = REDIS_REPLY_NIL;
            reply->str = NULL;
            reply->len = 0;
            reply->element = NULL;
            reply->elements = 0;
        }

        cmd->reply = kept;
    }

    ngx_http_cg_route_deliver(route);
}


/*
 * An error that is the Cluster's business: a redirection (the map
 * updated, NGX_OK when the command left again), or a state that fails the
 * command (NGX_DECLINED); NGX_ERROR for any other error.
 */

static ngx_int_t
ngx_http_cg_route_error(ngx_http_cg_route_t *route, ngx_http_cg_link_t *link,
    redisReply *reply, ngx_http_cg_route_cmd_t *cmd)
{
    ngx_http_cg_route_node_t  *node;
    cg_slot_redirect_t         rd;

    if (cg_slot_redirect(reply->str, reply->len, &rd)) {
        node = ngx_http_cg_route_node(route, link, rd.host, rd.host_len,
                                      rd.port);

        if (!rd.ask) {
            if (node) {
                node->used = 1;
                route->slots[rd.slot] = (uint8_t) (node - route->nodes + 1);
            }

            if (ngx_current_msec - route->asked >= NGX_HTTP_CG_ROUTE_SOON) {
                ngx_http_cg_route_ask(route);
            }
        }

        if (cmd == NULL || node == NULL
            || cmd->redirects++ == NGX_HTTP_CG_ROUTE_REDIRECTS
            || ngx_http_cg_route_resend(cmd, node->link, rd.ask) != NGX_OK)
        {
            return NGX_DECLINED;
        }

        return NGX_OK;
    }

#define ngx_http_cg_route_is(s)                                              \
    (reply->len >= sizeof(s) - 1                                              \
     && ngx_strncmp(reply->str, s, sizeof(s) - 1) == 0)

    if (ngx_http_cg_route_is("CLUSTERDOWN")
        || ngx_http_cg_route_is("TRYAGAIN")
        || ngx_http_cg_route_is("LOADING")
        || ngx_http_cg_route_is("MASTERDOWN")
        || ngx_http_cg_route_is("READONLY"))
    {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, route->log, 0,
                       "client guard: redis %V: %*s", &link->addr.name,
                       (size_t) ngx_min(reply->len, 128), reply->str);

        if (!ngx_http_cg_route_is("TRYAGAIN")
            && ngx_current_msec - route->asked >= NGX_HTTP_CG_ROUTE_SOON)
        {
            ngx_http_cg_route_ask(route);
        }

        return NGX_DECLINED;
    }

#undef ngx_http_cg_route_is

    return NGX_ERROR;
}


static void
ngx_http_cg_route_reply(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_route_cmd_t  *cmd = data;

    ngx_int_t  rc;

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        rc = ngx_http_cg_route_error(cmd->route, link, reply, cmd);

        if (rc == NGX_OK) {
            return;
        }

        if (rc == NGX_DECLINED) {
            reply = NULL;
        }
    }

    ngx_http_cg_route_complete(cmd, link, reply);
}


static void
ngx_http_cg_route_noreply(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        (void) ngx_http_cg_route_error(data, link, reply, NULL);
    }
}
