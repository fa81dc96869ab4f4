
/*
 * Copyright (C) client guard authors
 *
 * cg_link_conf: the client_guard_redis directive, parsed into the links'
 * configuration (cg_link.h's ngx_http_cg_link_conf_t): the addresses as
 * written (resolved once), the mode (one Redis, sentinels, a Cluster's
 * seeds), the credentials, the timeouts, TLS (its context made by
 * cg_link_tls.c); the module's key names under the prefix.
 */


#ifndef _CG_LINK_CONF_H_INCLUDED_
#define _CG_LINK_CONF_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_link.h"


/* "client_guard_redis address ... [cluster | sentinel=] [user=] ..." */
char *ngx_http_cg_link_directive(ngx_conf_t *cf,
    ngx_http_cg_link_conf_t **rcf);

/* "{prefix}name" in "pool": a key of the module in this Redis */
ngx_int_t ngx_http_cg_link_key(ngx_pool_t *pool, ngx_http_cg_link_conf_t *conf,
    ngx_str_t *key, const char *name);


#endif /* _CG_LINK_CONF_H_INCLUDED_ */
