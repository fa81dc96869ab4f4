
/*
 * Copyright (C) client guard authors
 *
 * cg_quota: the table of quotas from the configuration.
 *
 * Owns: the client_guard_quota entries (a client name and its cg_quota_t),
 * looked up by client name with "default" as the fallback.  Definitions read
 * from Redis are kept by cg_sync and take precedence over this table.
 */


#ifndef _CG_QUOTA_H_INCLUDED_
#define _CG_QUOTA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_limiter.h"


typedef struct {
    ngx_str_t                 name;
    cg_quota_t                quota;
} ngx_http_cg_quota_t;


typedef struct {
    ngx_array_t               quotas;      /* ngx_http_cg_quota_t */
    ngx_hash_t                hash;        /* name -> quota, once done */
    ngx_http_cg_quota_t      *dflt;
} ngx_http_cg_quota_table_t;


ngx_int_t ngx_http_cg_quota_table_init(ngx_conf_t *cf,
    ngx_http_cg_quota_table_t *qt);

/* the parser of "client_guard_quota name param...", for the directive */
char *ngx_http_cg_quota_directive(ngx_conf_t *cf,
    ngx_http_cg_quota_table_t *qt);

/* once the configuration is read: builds the hash, resolves "default" */
ngx_int_t ngx_http_cg_quota_table_done(ngx_conf_t *cf,
    ngx_http_cg_quota_table_t *qt);

/* exact name, or NULL */
ngx_http_cg_quota_t *ngx_http_cg_quota_lookup(ngx_http_cg_quota_table_t *qt,
    ngx_str_t *name);

/* exact name, else "default", else NULL */
ngx_http_cg_quota_t *ngx_http_cg_quota_find(ngx_http_cg_quota_table_t *qt,
    ngx_str_t *name);

/* "rate=100r/s burst=20" text of one limit, for logs */
u_char *ngx_http_cg_limit_print(u_char *buf, u_char *last,
    const cg_limit_t *lim);


#endif /* _CG_QUOTA_H_INCLUDED_ */
