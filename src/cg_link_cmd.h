
/*
 * Copyright (C) client guard authors
 *
 * cg_link_cmd: the commands pending on a link, and nothing else.
 *
 * Owns: a command written in RESP straight into the link's output buffer
 * (sent by cg_link_io.c once the event loop is done with this turn: those
 * queued in one turn leave in one write), the FIFO of pending operations
 * (replies come back in order, so commands are pipelined), each one's
 * deadline and name (a NOPERM is said through cg_link_diag.c), the
 * operation that ends with its reply or NULL, the spare operations.
 * hiredis only parses replies.  Included by cg_link.h.
 */


#ifndef _CG_LINK_CMD_H_INCLUDED_
#define _CG_LINK_CMD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_link_types.h"


/*
 * Queues a command; "handler" runs with its reply (or NULL).  Only while
 * ready, or for internal handshake commands.  Returns NGX_DECLINED when the
 * link is not ready: the caller decides by its failure policy at once.
 */
ngx_int_t ngx_http_cg_link_send(ngx_http_cg_link_t *link, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_cg_link_handler_pt handler, void *data);

/*
 * The same at any state (the handshake's commands): the deadline is
 * connect_timeout during the handshake, else timeout.  NGX_ERROR: out of
 * memory.
 */
ngx_int_t ngx_http_cg_link_queue(ngx_http_cg_link_t *link, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_cg_link_handler_pt handler, void *data);

/*
 * The oldest pending operation ends: with its reply (a NOPERM said), or
 * NULL (failed); its handler runs.  Some operation must be pending.
 */
void ngx_http_cg_link_complete(ngx_http_cg_link_t *link, redisReply *reply);

/* ms until the oldest pending operation is overdue (some must be) */
ngx_msec_int_t ngx_http_cg_link_cmd_left(ngx_http_cg_link_t *link);

/* the spare operations and the output buffer freed (the link stopped) */
void ngx_http_cg_link_cmd_free(ngx_http_cg_link_t *link);


#endif /* _CG_LINK_CMD_H_INCLUDED_ */
