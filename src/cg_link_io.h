
/*
 * Copyright (C) client guard authors
 *
 * cg_link_io: a link's reads and writes on nginx's events, and nothing
 * else.
 *
 * Owns: what arrives on the connection (recv() into hiredis's reader,
 * cg_reply.c's, each reply handed to the oldest pending operation of
 * cg_link_cmd.c, or to the owner's on_push when none is pending) and the
 * output buffer written out (send()), each failure's reason as the link
 * says it (TLS's through cg_link_tls.c, a plain port found during the
 * handshake).  The link's event handlers (cg_link.c) call these and drop
 * the connection with the reason they return; nothing here drops, or
 * blocks.
 */


#ifndef _CG_LINK_IO_H_INCLUDED_
#define _CG_LINK_IO_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_link_types.h"


/*
 * Reads what the connection has and hands each reply over: NULL (all read,
 * or a handler dropped the connection), or why the connection is to be
 * dropped (the system's error number, if any, in link->err)
 */
const char *ngx_http_cg_link_read(ngx_http_cg_link_t *link);

/*
 * Writes the output buffer, as much as the socket takes (a failed send()
 * is reported by the read event, posted): NULL, or why to drop
 */
const char *ngx_http_cg_link_flush(ngx_http_cg_link_t *link);


#endif /* _CG_LINK_IO_H_INCLUDED_ */
