
/*
 * Copyright (C) client guard authors
 *
 * cg_resolve: the host names of client_guard_redis resolved again at
 * runtime, before a link connects.
 *
 * Owns: the choice of a server's address for a connection attempt (each
 * address in turn, one per attempt), the asynchronous resolution of a host
 * name through the resolver of the http level (the "resolver" directive,
 * bounded by resolver_timeout), the last good addresses of a name (kept
 * when a resolution fails) and the log lines of a name that moved or
 * could not be resolved.  Without a resolver directive the addresses are
 * those resolved when the configuration was read.  A link's prepare_data
 * is this part's.
 */


#ifndef _CG_RESOLVE_H_INCLUDED_
#define _CG_RESOLVE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_link.h"


/* a runtime resolver at the http level, the "resolver" directive */
ngx_uint_t ngx_http_cg_resolve_enabled(void);

/*
 * Points link->addr at an address of "srv" for this connection attempt
 * (the "attempt"-th, modulo their number): NGX_OK at once (an IP address,
 * no resolver, a name in the resolver's cache), or NGX_AGAIN while the name
 * is resolved, then ngx_http_cg_link_prepared().  A link's prepare hook
 * calls it.
 */
ngx_int_t ngx_http_cg_resolve(ngx_http_cg_link_t *link,
    ngx_http_cg_link_server_t *srv, ngx_uint_t attempt);

/* a prepare hook for a link to the one address of client_guard_redis */
ngx_int_t ngx_http_cg_resolve_prepare(ngx_http_cg_link_t *link);


#endif /* _CG_RESOLVE_H_INCLUDED_ */
