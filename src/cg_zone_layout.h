
/*
 * Copyright (C) client guard authors
 *
 * cg_zone_layout: what a client_guard_zone holds in shared memory.  Types
 * only.
 *
 * Owns: the shape of a client's record, of the zone's shared context (the
 * rbtree, the LRU queue of each tier, the hash index, the table of names
 * evicted while new, the zone's counters) and of the zone as a worker
 * sees it; the tiers and outcomes they count; the index's offsets; the
 * layout's number, which a reload checks; the zone lock.  The parts that
 * work on them: cg_zone_store.h (records found and made), cg_zone_evict.h
 * (room made), cg_zone_shm.h (the memory made or kept), cg_zone.h (the
 * zone as configured, and the face the other parts include).
 */


#ifndef _CG_ZONE_LAYOUT_H_INCLUDED_
#define _CG_ZONE_LAYOUT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_identity.h"
#include "cg_lease.h"
#include "cg_limiter.h"
#include "cg_name.h"
#include "cg_stats.h"


/* outcomes, as counted per client and shown in $client_guard_status */

#define NGX_HTTP_CG_NONE              0
#define NGX_HTTP_CG_PASSED            1
#define NGX_HTTP_CG_REJECTED          2
#define NGX_HTTP_CG_REJECTED_DRY_RUN  3
#define NGX_HTTP_CG_BYPASSED          4
#define NGX_HTTP_CG_UNIDENTIFIED      5

/* the outcomes a client's record counts: an unidentified request has none */
#define NGX_HTTP_CG_NCOUNTED          (NGX_HTTP_CG_BYPASSED + 1)


typedef struct {
    uint64_t                  requests;
    uint64_t                  outcome[NGX_HTTP_CG_NCOUNTED];
} ngx_http_cg_counters_t;



/*
 * What eviction spares longest: a record is in one LRU queue per tier, and
 * the least recently seen record of the lowest tier that has one goes
 * first.  A name seen once (a flood of random names) stays NEW and makes
 * room only at the cost of other such names; a client found again (or
 * back soon after its record was evicted while NEW: the zone remembers the
 * hashes of such names) is RETURNING; one rejected (or near its limit)
 * under a quota it shares with others (the default) is LIMITED, whose
 * counters a flood must not reset; one with its own quota (in the
 * configuration or in Redis) is OWN.  See docs/internals.md "The zone".
 */

#define NGX_HTTP_CG_TIER_NEW        0
#define NGX_HTTP_CG_TIER_RETURNING  1
#define NGX_HTTP_CG_TIER_LIMITED    2
#define NGX_HTTP_CG_TIER_OWN        3
#define NGX_HTTP_CG_NTIERS          4


/*
 * The rbtree node's "data" field is where this record starts.  What a
 * lookup reads (the rbtree key, "len", "hnext", the name's first bytes)
 * shares the rbtree node's cache line: with most names no other line is
 * read to find a record.  The rest is in the order a request uses it.
 */

#define NGX_HTTP_CG_NAME_HEAD  11

typedef struct {
    u_char                    color;
    u_char                    len;
    u_short                   lag;         /* ms from the last LRU move to
                                              "last", under a second */
    uint32_t                  created;     /* seconds since the epoch */
    uint32_t                  hnext;       /* the next record of its hash
                                              bucket, see below */
    uint32_t                  refs;        /* requests between preaccess
                                              and log: not evicted */
    uint32_t                  last;        /* ngx_current_msec, low bits */
    u_char                    tier;        /* NGX_HTTP_CG_TIER_*: its LRU
                                              queue */
    u_char                    head[NGX_HTTP_CG_NAME_HEAD];  /* of "name" */
    ngx_queue_t               queue;
    cg_limit_state_t          state[CG_MAX_LIMITS];
    ngx_http_cg_counters_t    counters;
    cg_lease_t                lease;       /* cg_lease: under Redis */
    cg_stats_t                stats;       /* cg_status: log phase */
    u_char                    name[1];
} ngx_http_cg_record_t;


/* the bytes a record takes in the zone, its name aside */
#define ngx_http_cg_record_size                                               \
    (offsetof(ngx_rbtree_node_t, color) + offsetof(ngx_http_cg_record_t, name))


typedef struct {
    uint32_t                  layout;      /* NGX_HTTP_CG_ZONE_LAYOUT */
    ngx_rbtree_t              rbtree;
    ngx_rbtree_node_t         sentinel;
    ngx_queue_t               queue[NGX_HTTP_CG_NTIERS];
                                           /* LRUs, most recent first */
    ngx_uint_t                clients;
    uint64_t                  evictions;
    uint64_t                  evicted[NGX_HTTP_CG_NTIERS];  /* by tier */
    uint64_t                  alloc_failures;
    ngx_atomic_t              unidentified[NGX_HTTP_CG_ID_NREASONS];
                                           /* by reason, atomics */
    void                     *status;      /* cg_status: deploy marks */
    uint32_t                 *buckets;     /* hash index of the records */
    ngx_uint_t                mask;        /* buckets - 1 */
    uint32_t                 *ghosts;      /* hashes of names evicted while
                                              NEW, by hash: see
                                              cg_zone_evict.h */
    ngx_uint_t                ghost_mask;
    ngx_msec_t                step;        /* the histories are kept at */
} ngx_http_cg_shctx_t;


/*
 * changes whenever the shape of the zone's contents changes (sizes; bump
 * the base when fields change meaning or place within the same sizes)
 */

#define NGX_HTTP_CG_ZONE_LAYOUT                                              \
    (0x434a0000 + sizeof(ngx_http_cg_record_t)                                 \
     + (sizeof(ngx_http_cg_shctx_t) << 10))


typedef struct {
    ngx_http_cg_shctx_t      *sh;
    ngx_slab_pool_t          *shpool;
    ngx_shm_zone_t           *shm_zone;
    ngx_str_t                 name;
    ngx_uint_t                max_clients;  /* 0: as many as fit */
    ngx_uint_t                declared;     /* client_guard_zone seen */
    ngx_msec_t                step;         /* of the histories */
    ngx_str_t                 file;         /* where first named */
    ngx_uint_t                line;
} ngx_http_cg_zone_t;


#define ngx_http_cg_zone_lock(z)    ngx_shmtx_lock(&(z)->shpool->mutex)
#define ngx_http_cg_zone_unlock(z)  ngx_shmtx_unlock(&(z)->shpool->mutex)


/*
 * Lookups go through a hash index rather than down the rbtree: with many
 * clients, every level of the tree is another record, and another cache
 * miss.  A bucket holds the first record of its chain, records link the
 * next one (hnext); both as offsets from the start of the zone in units of
 * 8 bytes (0: none).  One bucket per 512 bytes of zone, the smallest slot a
 * record takes: chains stay short however full the zone is.  The rbtree
 * remains, for the status pages' order.
 */

#define ngx_http_cg_zone_off(zone, node)                                     \
    ((uint32_t) (((u_char *) (node) - (u_char *) (zone)->shpool) >> 3))
#define ngx_http_cg_zone_at(zone, off)                                       \
    ((ngx_rbtree_node_t *) ((u_char *) (zone)->shpool + ((size_t) (off) << 3)))


#endif /* _CG_ZONE_LAYOUT_H_INCLUDED_ */
