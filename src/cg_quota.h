
/*
 * Copyright (C) client guard authors
 *
 * cg_quota: the quotas of the configuration.
 *
 * Owns: the client_guard_quota directive and the table it fills (a client
 * name and its quota, with the RateLimit-Policy value made once), hashed
 * by the name's CRC32 once the configuration is read.  The table is read
 * by the decision (cg_decide), where Redis's definitions come first.
 */


#ifndef _CG_QUOTA_H_INCLUDED_
#define _CG_QUOTA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_limiter.h"


/* a client's quota as the configuration defines it */

typedef struct ngx_http_cg_quota_def_s  ngx_http_cg_quota_def_t;

struct ngx_http_cg_quota_def_s {
    ngx_str_t                 name;
    cg_quota_t                quota;
    ngx_str_t                 policy;      /* RateLimit-Policy value */
    uint32_t                  hash;        /* ngx_crc32_long of the name */
    ngx_http_cg_quota_def_t  *next;        /* in its bucket */
};


typedef struct {
    ngx_array_t               defs;        /* ngx_http_cg_quota_def_t */
    ngx_http_cg_quota_def_t **buckets;     /* once done */
    ngx_uint_t                mask;
    ngx_http_cg_quota_def_t  *dflt;        /* "default", or NULL */
} ngx_http_cg_quota_table_t;


ngx_int_t ngx_http_cg_quota_table_init(ngx_conf_t *cf,
    ngx_http_cg_quota_table_t *qt);

/* client_guard_quota name param...: the table at cmd->offset of conf */
char *ngx_http_cg_quota_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* once the configuration is read: the hash, "default", the policies */
ngx_int_t ngx_http_cg_quota_table_done(ngx_conf_t *cf,
    ngx_http_cg_quota_table_t *qt);


#endif /* _CG_QUOTA_H_INCLUDED_ */
