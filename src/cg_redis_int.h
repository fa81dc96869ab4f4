
/*
 * Copyright (C) client guard authors
 *
 * cg_redis_int: private to the Redis part (cg_redis*.c); nothing else
 * includes it.
 *
 * Owns: the types the cg_redis files share (the quota snapshot, a lease
 * request in flight, a request's part in a decision, the per-worker state)
 * and the functions one cg_redis file calls in another.
 */


#ifndef _CG_REDIS_INT_H_INCLUDED_
#define _CG_REDIS_INT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>

#include "cg_common.h"


#define NGX_HTTP_CG_TAKE_PASS        0
#define NGX_HTTP_CG_TAKE_REJECT      1
#define NGX_HTTP_CG_TAKE_WAIT        2
#define NGX_HTTP_CG_TAKE_DOWN        3
#define NGX_HTTP_CG_TAKE_AHEAD       4    /* passed, charged to Redis after */


typedef struct ngx_http_cg_entry_s  ngx_http_cg_entry_t;

struct ngx_http_cg_entry_s {
    ngx_http_cg_entry_t        *next;
    uint32_t                    hash;
    ngx_str_t                   name;     /* client name, or key hex */
    ngx_str_t                   value;    /* quota text, or client name */
    cg_quota_t                  quota;
};


typedef struct {
    ngx_pool_t                 *pool;
    ngx_http_cg_entry_t       **quotas;
    ngx_uint_t                  nquotas;  /* buckets, a power of two */
    ngx_http_cg_entry_t       **keys;
    ngx_uint_t                  nkeys;
    ngx_http_cg_entry_t        *dflt;
    ngx_array_t                 errors;   /* ngx_http_cg_redis_error_t */
    uint64_t                    version;
} ngx_http_cg_snap_t;


/* clients in one call of the lease script, at most */
#define NGX_HTTP_CG_REDIS_BATCH       64


/* a lease request in flight: worker memory, never a request's pool */

typedef struct ngx_http_cg_fetch_s  ngx_http_cg_fetch_t;

struct ngx_http_cg_fetch_s {
    ngx_http_cg_fetch_t        *next;     /* pending, batch or free list */
    ngx_http_cg_zone_t         *zone;
    ngx_http_cg_record_t         *node;     /* pinned until the reply */
    cg_quota_t                  quota;
    uint32_t                    qhash;
    uint32_t                    want;
    uint32_t                    owed;     /* of "want": admitted already */
    uint32_t                    started;
    size_t                      len;
    u_char                      name[CG_NAME_MAX];
};


/* the lease requests of one script call, in the order of their replies */

typedef struct ngx_http_cg_batch_s  ngx_http_cg_batch_t;

struct ngx_http_cg_batch_s {
    ngx_http_cg_batch_t        *next;     /* free list */
    ngx_http_cg_fetch_t        *fetches;
    ngx_uint_t                  n;
    ngx_uint_t                  retried;  /* sent again with EVAL */
};


/* per request, in r->pool; linked into the waiters only while waiting */

typedef struct {
    ngx_queue_t                 queue;
    ngx_http_request_t         *r;
    ngx_http_cg_zone_t         *zone;
    ngx_str_t                   name;
    cg_quota_t                  quota;
    uint32_t                    qhash;
    uint32_t                    hash;
    ngx_msec_t                  deadline;
    ngx_uint_t                  how;      /* NGX_HTTP_CG_REDIS_* */
    ngx_uint_t                  take;     /* NGX_HTTP_CG_TAKE_* */
    uint64_t                    retry;
    uint64_t                    remaining;
    ngx_uint_t                  binding;     /* the limit that binds */
    unsigned                    waiting:1;
    unsigned                    resumed:1;
} ngx_http_cg_redis_req_t;


typedef struct {
    ngx_http_cg_redis_conf_t    *conf;
    ngx_http_cg_link_t        *link;
    ngx_http_cg_link_t        *sub;
    ngx_http_cg_snap_t         *snap;
    ngx_http_cg_snap_t         *building;
    ngx_event_t                 poll;
    ngx_event_t                 wake;
    ngx_queue_t                 waiters;
    ngx_http_cg_fetch_t        *free;
    ngx_http_cg_fetch_t        *pending;  /* to send in this turn */
    ngx_http_cg_fetch_t       **last;
    ngx_event_t                 batcher;  /* posted: sends the pending */
    ngx_http_cg_batch_t        *free_batches;
    const char                **argv;     /* of a lease call, reused */
    size_t                     *argvlen;
    u_char                     *text;
    size_t                      text_size;
    ngx_uint_t                  nodes;    /* live, from heartbeats */
    ngx_uint_t                  outages;
    ngx_msec_t                  broken;   /* lease script failing until */
    time_t                      loaded;   /* the snapshot, wall clock */
    ngx_uint_t                  loading;
    ngx_uint_t                  reload;   /* a change seen while loading */
    ngx_msec_t                  last_load;
    ngx_msec_t                  last_beat;
    u_char                      sha[2 * SHA_DIGEST_LENGTH + 1];
    ngx_str_t                   k_quotas;
    ngx_str_t                   k_keys;
    ngx_str_t                   k_version;
    ngx_str_t                   k_channel;
    ngx_str_t                   k_nodes;
    ngx_str_t                   node_id;
} ngx_http_cg_redis_worker_t;


extern ngx_http_cg_redis_worker_t  ngx_http_cg_redis_w;

/* the lease script (cg_redis_lease.c), for SCRIPT LOAD and its SHA1 */
extern const char    ngx_http_cg_redis_script[];
extern const size_t  ngx_http_cg_redis_script_len;


/* cg_redis.c: the failure policy; NGX_OK decided, NGX_DECLINED locally */
ngx_int_t ngx_http_cg_redis_policy(ngx_http_cg_ctx_t *ctx,
    ngx_http_cg_redis_req_t *s, cg_quota_t *quota, ngx_int_t *binding,
    cg_limit_result_t *res);

/* cg_redis_quota.c: reads the quota definitions and API keys again */
void ngx_http_cg_redis_load(void);

/* cg_redis_lease.c: the waiting requests decide again */
void ngx_http_cg_redis_wake_handler(ngx_event_t *ev);
void ngx_http_cg_redis_wake(void);

/*
 * cg_redis_lease.c: lease requests leave in batches, one script call for
 * those of a turn of the event loop.  init at worker start; abort releases
 * those not sent yet (the link went down); exit does that and frees what
 * init allocated.
 */
ngx_int_t ngx_http_cg_redis_batch_init(ngx_cycle_t *cycle);
void ngx_http_cg_redis_batch_abort(void);
void ngx_http_cg_redis_batch_exit(void);


#endif /* _CG_REDIS_INT_H_INCLUDED_ */
