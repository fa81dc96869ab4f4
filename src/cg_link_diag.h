
/*
 * Copyright (C) client guard authors
 *
 * cg_link_diag: what the link says, and what a Redis server's answers to
 * its handshake mean.
 *
 * Owns: the lines of an outage (down with its reason, once, and again
 * only for another reason; up, and up again with how long it was down),
 * those of a command refused by the server's ACL (once per command, again
 * after 10 minutes); the reading of the replies to AUTH, SELECT, HELLO and
 * ROLE (the server's mode and role against what client_guard_redis says: a
 * standalone primary, a cluster node, a sentinel) and of a NOPERM, and the
 * words said of each with its likely cause (a wrong password or unknown
 * user, no password on the server, a replica of which primary, a cluster
 * node without "cluster"), into link->error, the server's text escaped.
 * cg_link.c calls it; it calls nothing of cg_link.c.
 */


#ifndef _CG_LINK_DIAG_H_INCLUDED_
#define _CG_LINK_DIAG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_link_types.h"


/* the commands of the handshake */
#define NGX_HTTP_CG_LINK_AUTH    1
#define NGX_HTTP_CG_LINK_SELECT  2
#define NGX_HTTP_CG_LINK_HELLO   3    /* the last: then ready */
#define NGX_HTTP_CG_LINK_ROLE    4    /* after a HELLO saying "replica" */
#define NGX_HTTP_CG_LINK_CHECK   5    /* ROLE for the owner's link->check */


/*
 * The reply to a command of the handshake: NGX_OK (go on), NGX_AGAIN (a
 * replica: ask ROLE, whose reply comes here too), NGX_ERROR: the reason in
 * link->error
 */
ngx_int_t ngx_http_cg_link_check(ngx_http_cg_link_t *link, ngx_uint_t step,
    redisReply *reply);

/* the link is down for "why" (and link->err): said at "level" or not */
void ngx_http_cg_link_say_down(ngx_http_cg_link_t *link, ngx_uint_t level,
    ngx_uint_t was_ready, const char *why);

/* the handshake is over (first, or after an outage) */
void ngx_http_cg_link_say_up(ngx_http_cg_link_t *link, ngx_uint_t level);

/* an error reply to a command of the module ("cmd", its name): a NOPERM? */
void ngx_http_cg_link_say_refused(ngx_http_cg_link_t *link, u_char *cmd,
    redisReply *reply);


#endif /* _CG_LINK_DIAG_H_INCLUDED_ */
