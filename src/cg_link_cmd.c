
/*
 * Copyright (C) client guard authors
 *
 * cg_link_cmd: a link's commands pending (see cg_link_cmd.h).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "cg_link_cmd.h"
#include "cg_link_diag.h"


/* a command waiting for its reply, or a spare one */

typedef struct {
    ngx_queue_t                   queue;
    ngx_http_cg_link_handler_pt  handler;
    void                         *data;
    ngx_msec_t                    deadline;
    u_char                        cmd[16];    /* its name, for a NOPERM */
} ngx_http_cg_link_op_t;


ngx_int_t
ngx_http_cg_link_send(ngx_http_cg_link_t *link, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_cg_link_handler_pt handler, void *data)
{
    if (link == NULL || link->state != NGX_HTTP_CG_LINK_READY) {
        return NGX_DECLINED;
    }

    return ngx_http_cg_link_queue(link, argc, argv, argvlen, handler, data);
}


ngx_int_t
ngx_http_cg_link_queue(ngx_http_cg_link_t *link, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_cg_link_handler_pt handler, void *data)
{
    int                      i;
    u_char                  *p, *out;
    size_t                   size, len;
    ngx_queue_t             *q;
    ngx_http_cg_link_op_t  *op;

    /* the command in RESP, straight into the output buffer */

    len = sizeof("*\r\n") - 1 + NGX_INT_T_LEN;

    for (i = 0; i < argc; i++) {
        len += sizeof("$\r\n\r\n") - 1 + NGX_SIZE_T_LEN + argvlen[i];
    }

    if (ngx_queue_empty(&link->free)) {
        op = ngx_alloc(sizeof(ngx_http_cg_link_op_t), link->log);
        if (op == NULL) {
            return NGX_ERROR;
        }

    } else {
        q = ngx_queue_head(&link->free);
        ngx_queue_remove(q);
        op = ngx_queue_data(q, ngx_http_cg_link_op_t, queue);
    }

    if (link->out_len + len > link->out_size) {
        size = ngx_max(link->out_size * 2, link->out_len + len);
        size = ngx_max(size, 4096);

        out = ngx_alloc(size, link->log);
        if (out == NULL) {
            ngx_queue_insert_head(&link->free, &op->queue);
            return NGX_ERROR;
        }

        if (link->out) {
            ngx_memcpy(out, link->out, link->out_len);
            ngx_free(link->out);
        }

        link->out = out;
        link->out_size = size;
    }

    p = ngx_sprintf(link->out + link->out_len, "*%d\r\n", argc);

    for (i = 0; i < argc; i++) {
        p = ngx_sprintf(p, "$%uz\r\n", argvlen[i]);
        p = ngx_cpymem(p, argv[i], argvlen[i]);
        *p++ = CR; *p++ = LF;
    }

    link->out_len = p - link->out;

    op->handler = handler;
    op->data = data;
    /* the handshake is part of the connection attempt */

    op->deadline = ngx_current_msec
                   + (link->state == NGX_HTTP_CG_LINK_HANDSHAKE
                      ? link->conf->connect_timeout : link->conf->timeout);

    len = ngx_min(argvlen[0], sizeof(op->cmd) - 1);
    ngx_memcpy(op->cmd, argv[0], len);
    op->cmd[len] = '\0';

    ngx_queue_insert_tail(&link->ops, &op->queue);

    if (!link->watchdog.timer_set) {
        ngx_add_timer(&link->watchdog, link->conf->timeout);
    }

    /* written once the event loop is done with this iteration */

    if (!link->flusher.posted) {
        ngx_post_event(&link->flusher, &ngx_posted_events);
    }

    return NGX_OK;
}


/* the oldest pending operation ends: with its reply, or NULL (failed) */

void
ngx_http_cg_link_complete(ngx_http_cg_link_t *link, redisReply *reply)
{
    void                          *data;
    ngx_queue_t                   *q;
    ngx_http_cg_link_op_t        *op;
    ngx_http_cg_link_handler_pt   handler;

    q = ngx_queue_head(&link->ops);
    ngx_queue_remove(q);

    op = ngx_queue_data(q, ngx_http_cg_link_op_t, queue);
    handler = op->handler;
    data = op->data;

    if (reply && link->state == NGX_HTTP_CG_LINK_READY
        && (reply->type == REDIS_REPLY_ERROR
            || reply->type == REDIS_REPLY_ARRAY))
    {
        ngx_http_cg_link_say_refused(link, op->cmd, reply);
    }

    ngx_queue_insert_head(&link->free, q);

    if (handler) {
        handler(link, reply, data);
    }
}


ngx_msec_int_t
ngx_http_cg_link_cmd_left(ngx_http_cg_link_t *link)
{
    ngx_queue_t             *q;
    ngx_http_cg_link_op_t  *op;

    q = ngx_queue_head(&link->ops);
    op = ngx_queue_data(q, ngx_http_cg_link_op_t, queue);

    return (ngx_msec_int_t) (op->deadline - ngx_current_msec);
}


void
ngx_http_cg_link_cmd_free(ngx_http_cg_link_t *link)
{
    ngx_queue_t             *q;
    ngx_http_cg_link_op_t  *op;

    while (!ngx_queue_empty(&link->free)) {
        q = ngx_queue_head(&link->free);
        ngx_queue_remove(q);
        op = ngx_queue_data(q, ngx_http_cg_link_op_t, queue);
        ngx_free(op);
    }

    if (link->out) {
        ngx_free(link->out);
        link->out = NULL;
        link->out_size = 0;
    }
}
