
/*
 * Copyright (C) client guard authors
 *
 * cg_quota: the table of quotas from the configuration.
 *
 * Owns: the client_guard_quota entries (a client name and its cg_quota_t),
 * looked up by client name with "default" as the fallback.  Definitions read
 * from Redis are kept by cg_redis and take precedence over this table.
 */


#ifndef _CG_QUOTA_H_INCLUDED_
#define _CG_QUOTA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_limiter.h"


typedef struct ngx_http_cg_quota_s  ngx_http_cg_quota_t;

struct ngx_http_cg_quota_s {
    ngx_str_t                 name;
    cg_quota_t                quota;
    ngx_str_t                 policy;      /* RateLimit-Policy value */
    uint32_t                  hash;        /* ngx_crc32 of the name */
    ngx_http_cg_quota_t      *next;        /* in its bucket */
};


typedef struct {
    ngx_array_t               quotas;      /* ngx_http_cg_quota_t */
    ngx_http_cg_quota_t     **buckets;     /* name -> quota, once done */
    ngx_uint_t                mask;
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

/* exact name, or NULL; "hash" is ngx_crc32_long() of the name */
ngx_http_cg_quota_t *ngx_http_cg_quota_lookup(ngx_http_cg_quota_table_t *qt,
    ngx_str_t *name, uint32_t hash);

/* "rate=100r/s burst=20" text of one limit, for logs */
u_char *ngx_http_cg_limit_print(u_char *buf, u_char *last,
    const cg_limit_t *lim);

/*
 * The RateLimit headers' pieces: a number, "name";x= of a limit, and the
 * RateLimit-Policy value of a quota (at most ngx_http_cg_policy_len bytes).
 */
u_char *ngx_http_cg_uint(u_char *p, uint64_t n);
u_char *ngx_http_cg_policy_item(u_char *p, const cg_limit_t *lim, u_char x);
size_t ngx_http_cg_policy_len(const cg_quota_t *q);
u_char *ngx_http_cg_policy_print(u_char *p, const cg_quota_t *q);

/* the RateLimit-Policy value made for a quota of the table, or NULL */
ngx_str_t *ngx_http_cg_quota_policy(ngx_http_cg_quota_table_t *qt,
    const cg_quota_t *q);


#endif /* _CG_QUOTA_H_INCLUDED_ */
