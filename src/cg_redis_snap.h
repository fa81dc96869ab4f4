
/*
 * Copyright (C) client guard authors
 *
 * cg_redis_snap: one snapshot of the definitions Redis holds.
 *
 * Owns: the tables of a snapshot (the quotas of the clients, "default",
 * the API keys' hex SHA-256 to their client) and their lookups; a
 * snapshot built from the replies of GET {prefix}version and HGETALL
 * {prefix}quotas and {prefix}apikeys: each pair parsed, a bad value kept
 * for the status output and logged once (not again while it stays), the
 * last good definition of the snapshot it follows kept, a section that is
 * no hash copied from that one; a version gone (Redis lost the
 * definitions) noted.  Which snapshot is in force, when one is read and
 * what a lost one sets off is cg_redis_quota's.
 */


#ifndef _CG_REDIS_SNAP_H_INCLUDED_
#define _CG_REDIS_SNAP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_limiter.h"
#include "cg_reply.h"


/* the bad values kept for the status output (quota_errors), at most */
#define NGX_HTTP_CG_REDIS_ERRORS_MAX  64


/* a bad value found in Redis, as the status output shows it */

typedef struct {
    ngx_str_t                   key;
    ngx_str_t                   field;
    ngx_str_t                   value;
    ngx_str_t                   error;
} ngx_http_cg_redis_error_t;


typedef struct ngx_http_cg_snap_entry_s  ngx_http_cg_snap_entry_t;

struct ngx_http_cg_snap_entry_s {
    ngx_http_cg_snap_entry_t   *next;
    uint32_t                    hash;
    ngx_str_t                   name;     /* client name, or key hex */
    ngx_str_t                   value;    /* quota text, or client name */
    cg_quota_t                  quota;
};


typedef struct ngx_http_cg_snap_s  ngx_http_cg_snap_t;

/* what Redis defines, as read at once: swapped by pointer when complete */

struct ngx_http_cg_snap_s {
    ngx_pool_t                 *pool;
    ngx_http_cg_snap_t         *prev;     /* in force while built, or NULL */
    ngx_http_cg_snap_entry_t  **quotas;
    ngx_uint_t                  nquotas;  /* buckets, a power of two */
    ngx_http_cg_snap_entry_t  **keys;
    ngx_uint_t                  nkeys;
    ngx_http_cg_snap_entry_t   *dflt;
    ngx_array_t                 errors;   /* ngx_http_cg_redis_error_t */
    ngx_array_t                 bad;      /* every bad value's hash */
    ngx_uint_t                  logged;   /* new bad values this load */
    uint64_t                    version;
    ngx_uint_t                  lost;     /* Redis lost the definitions */
};


/*
 * A snapshot to build after "prev", the one in force (NULL: none), which
 * must stay until this one is done or its pool destroyed: its bad values
 * are not logged again, its definitions are the last good ones.
 */
ngx_http_cg_snap_t *ngx_http_cg_snap_create(ngx_http_cg_snap_t *prev);

/*
 * The replies, into the snapshot being built.  The version (GET): a bad
 * one is reported, and a nil one where "prev" had one sets "lost".  A
 * hash (HGETALL of "key"; "keys": the API keys, else the quotas): NGX_OK,
 * NGX_DONE when it is no hash (reported, and the section of "prev"
 * copied), NGX_ERROR (the snapshot is to be given up).
 */
void ngx_http_cg_snap_version(ngx_http_cg_snap_t *snap, redisReply *reply,
    ngx_str_t *key);
ngx_int_t ngx_http_cg_snap_hash(ngx_http_cg_snap_t *snap, redisReply *reply,
    ngx_str_t *key, ngx_uint_t keys);

/* complete: "prev" forgotten, its bad values sorted for the next build */
void ngx_http_cg_snap_done(ngx_http_cg_snap_t *snap);

/* the entry of "name" (CRC32 "hash") in a table of "n" buckets, or NULL */
ngx_http_cg_snap_entry_t *ngx_http_cg_snap_find_hash(
    ngx_http_cg_snap_entry_t **buckets, ngx_uint_t n, u_char *name,
    size_t len, uint32_t hash);
ngx_http_cg_snap_entry_t *ngx_http_cg_snap_find(
    ngx_http_cg_snap_entry_t **buckets, ngx_uint_t n, u_char *name,
    size_t len);


#endif /* _CG_REDIS_SNAP_H_INCLUDED_ */
