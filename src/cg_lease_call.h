
/*
 * Copyright (C) client guard authors
 *
 * cg_lease_call: one call of the lease script, and nothing else.
 *
 * Owns: the script (src/cg_lease.lua, compiled in) and its SHA1, the
 * arguments of one call for the fetches of a batch (EVALSHA, or EVAL once
 * Redis said NOSCRIPT; every client's keys by its hash tag, or in a
 * Cluster its bucket's; what it wants, owes, gives back, and its limits)
 * built in the worker's buffers, and the lines logged when a call or a
 * client's keys fail.  The fetch and the batch are its types; the queue,
 * the batcher and the replies are cg_lease_batch.c's.
 */


#ifndef _CG_LEASE_CALL_H_INCLUDED_
#define _CG_LEASE_CALL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/sha.h>
#include <hiredis/hiredis.h>

#include "cg_lease.h"
#include "cg_name.h"
#include "cg_route.h"
#include "cg_slot.h"
#include "cg_zone.h"


/* clients in one call of the lease script, at most */
#define NGX_HTTP_CG_LEASE_BATCH  64

/*
 * In a Redis Cluster, a client's keys carry the hash tag of one of so many
 * buckets (by the CRC32 of its name) instead of its name, so that one
 * script call serves the clients of a bucket: at most so many calls a turn
 * of the event loop (and more only past NGX_HTTP_CG_LEASE_BATCH clients a
 * bucket).  The buckets' tags spread over the slots evenly (cg_slot.h).
 */
#define NGX_HTTP_CG_LEASE_BUCKETS  16


/* a lease request: worker memory, never a request's pool */

typedef struct ngx_http_cg_fetch_s  ngx_http_cg_fetch_t;

struct ngx_http_cg_fetch_s {
    ngx_http_cg_fetch_t        *next;     /* pending, batch or free list */
    ngx_http_cg_zone_t         *zone;
    ngx_http_cg_record_t       *rec;      /* pinned until the reply */
    cg_quota_t                  quota;
    uint32_t                    qhash;
    cg_lease_out_t              out;      /* want, owed, back, started */
    size_t                      len;
    ngx_uint_t                  bucket;   /* a Cluster's, else 0 */
    u_char                      name[CG_NAME_MAX];
};


/* the fetches of one script call, in the order of their replies */

typedef struct ngx_http_cg_batch_s  ngx_http_cg_batch_t;

struct ngx_http_cg_batch_s {
    ngx_http_cg_batch_t        *next;     /* free list */
    ngx_http_cg_fetch_t        *fetches;
    ngx_uint_t                  n;
    ngx_uint_t                  bucket;
    ngx_uint_t                  retried;  /* sent again with EVAL */
};


/* the worker's: what every call says alike, and its buffers */

typedef struct {
    ngx_str_t                   prefix;
    ngx_msec_t                  lease;
    ngx_msec_t                  timeout;  /* a call's deadline, from now */
    int64_t                     skew;     /* ms Redis's clock is ahead of
                                             this node's, at least (as
                                             LATE answers showed) */
    ngx_uint_t                  buckets;  /* a Cluster: the hash tags */
    uint16_t                    slot[NGX_HTTP_CG_LEASE_BUCKETS];
    size_t                      tag_len[NGX_HTTP_CG_LEASE_BUCKETS];
    u_char                      tag[NGX_HTTP_CG_LEASE_BUCKETS]
                                   [CG_SLOT_TAG_MAX];
    const char                **argv;     /* of a lease call, reused */
    size_t                     *argvlen;
    u_char                     *text;
    size_t                      text_size;
    u_char                      sha[2 * SHA_DIGEST_LENGTH];
} ngx_http_cg_lease_call_t;


/*
 * At the worker's start: "buckets" hash tags (0: one Redis), the key
 * prefix, the traffic a lease covers, the link's timeout (a call's
 * deadline); the buffers of the longest call
 */
ngx_int_t ngx_http_cg_lease_call_init(ngx_http_cg_lease_call_t *lc,
    ngx_cycle_t *cycle, ngx_uint_t buckets, ngx_str_t *prefix,
    ngx_msec_t lease, ngx_msec_t timeout);

/* at the worker's exit */
void ngx_http_cg_lease_call_free(ngx_http_cg_lease_call_t *lc);

/* the script cached there (SCRIPT LOAD), ahead of the first EVALSHA */
void ngx_http_cg_lease_call_load(ngx_http_cg_route_t *link);

/*
 * The arguments of the call for the fetches of "b" into lc->argv and
 * lc->argvlen (their text in lc->text, valid until the next call; the
 * link copies them into its output at once): their number, or 0 when
 * they would not fit
 */
int ngx_http_cg_lease_call_args(ngx_http_cg_lease_call_t *lc,
    ngx_http_cg_batch_t *b);

/*
 * A call that reached the script after its deadline ("LATE <ms>": it
 * charged nothing), or 0.  Each call's deadline is "timeout" after it
 * leaves, on this node's clock plus lc->skew; a late answer that is read
 * (the node still waited) says Redis's clock is ahead of the node's, and
 * raises lc->skew to what it shows
 */
ngx_int_t ngx_http_cg_lease_call_late(ngx_http_cg_lease_call_t *lc,
    redisReply *reply);

/* one line for a batch whose reply is no answer, naming its clients */
void ngx_http_cg_lease_call_log(ngx_http_cg_batch_t *b, redisReply *reply);

/*
 * A client whose keys Redis could not use: that client has no lease (the
 * failure policy decides for it), the others of the call are served.  One
 * line a second at most per worker: such a client fails each time.
 */
void ngx_http_cg_lease_call_client_error(ngx_http_cg_lease_call_t *lc,
    ngx_http_cg_fetch_t *f, redisReply *err);


#endif /* _CG_LEASE_CALL_H_INCLUDED_ */
