
/*
 * Copyright (C) client guard authors
 *
 * cg_zone: the shared memory zone.
 *
 * Owns: the zone (client_guard_zone), its per-client records in an rbtree
 * keyed by a hash of the name (the order the status pages through), a hash
 * index for lookups, and an LRU queue per tier (see below), allocation with
 * eviction of the least recently seen client of the lowest tier when memory
 * or the client cap runs out, the hashes of names evicted while new, and
 * reuse of the zone across reloads.  Every function but the lock helpers
 * expects the caller to hold the zone lock, and to hold it briefly.
 */


#ifndef _CG_ZONE_H_INCLUDED_
#define _CG_ZONE_H_INCLUDED_


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


/* an outcome's names: in $client_guard_status, and in the status output */

typedef struct {
    ngx_str_t                 variable;    /* "REJECTED_DRY_RUN" */
    ngx_str_t                 name;        /* "rejected_dry_run" */
} ngx_http_cg_outcome_t;

extern ngx_http_cg_outcome_t  ngx_http_cg_outcomes[];


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
                                              bucket, see cg_zone.c */
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


/*
 * changes whenever the shape of the zone's contents changes (sizes; bump
 * the base when fields change meaning or place within the same sizes)
 */

#define NGX_HTTP_CG_ZONE_LAYOUT                                              \
    (0x434a0000 + sizeof(ngx_http_cg_record_t)                                 \
     + (sizeof(ngx_http_cg_shctx_t) << 10))


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
                                              NEW, by hash: see cg_zone.c */
    ngx_uint_t                ghost_mask;
    ngx_msec_t                step;        /* the histories are kept at */
} ngx_http_cg_shctx_t;


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


/* client_guard_zone zone=name:size [clients=N]: into the array at offset */
char *ngx_http_cg_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* the zone "name", declared yet or not (then later, or it is an error) */
ngx_http_cg_zone_t *ngx_http_cg_zone_get(ngx_conf_t *cf, ngx_array_t *zones,
    ngx_str_t *name);

/*
 * A directive's parameter "zone=name" into *zone (as ngx_http_cg_zone_get
 * finds it): NGX_DECLINED when "arg" is another parameter.
 */
ngx_int_t ngx_http_cg_zone_arg(ngx_conf_t *cf, ngx_array_t *zones,
    ngx_str_t *arg, ngx_http_cg_zone_t **zone);

/*
 * Once the configuration is read: every zone used is declared, and keeps
 * its clients' histories at "step" ms (client_guard_anomaly step=); a zone
 * kept across a reload with another step starts them again.
 */
ngx_int_t ngx_http_cg_zones_done(ngx_conf_t *cf, ngx_array_t *zones,
    ngx_msec_t step);

#define ngx_http_cg_zone_lock(z)    ngx_shmtx_lock(&(z)->shpool->mutex)
#define ngx_http_cg_zone_unlock(z)  ngx_shmtx_unlock(&(z)->shpool->mutex)

/* the bytes a record takes in the zone, its name aside */
#define ngx_http_cg_record_size                                               \
    (offsetof(ngx_rbtree_node_t, color) + offsetof(ngx_http_cg_record_t, name))

/*
 * Finds the record of a client, or creates it when "create" is set, evicting
 * the least recently seen clients to make room.  Marks it most recently seen
 * at "now": "last" always, its place in the LRU queue at most once a second.
 * NULL when it is absent (or cannot be created).
 */
ngx_http_cg_record_t *ngx_http_cg_zone_record(ngx_http_cg_zone_t *zone,
    ngx_str_t *name, uint32_t hash, ngx_msec_t now, ngx_uint_t create);


/*
 * The record, just decided, into the LRU queue of "tier" (its place there
 * most recent) when it is in another one.  Lock held.
 */

static ngx_inline void
ngx_http_cg_zone_retier(ngx_http_cg_zone_t *zone, ngx_http_cg_record_t *rec,
    ngx_uint_t tier)
{
    if (rec->tier != tier) {
        ngx_queue_remove(&rec->queue);
        ngx_queue_insert_head(&zone->sh->queue[tier], &rec->queue);
        rec->tier = tier;
        rec->lag = 0;
    }
}


/*
 * A copy of a record, name included, for a reader that works on it outside
 * the lock.
 */

typedef struct {
    ngx_http_cg_record_t      rec;
    u_char                    rest[CG_NAME_MAX];
} ngx_http_cg_record_copy_t;


/*
 * A walk of the records in a stable order (the rbtree's: the hash of the
 * name, then the name) that resumes after the last record visited: records
 * evicted or created between two steps do no harm.
 */

typedef struct {
    ngx_uint_t                started;
    uint32_t                  key;
    size_t                    len;
    u_char                    name[CG_NAME_MAX];
} ngx_http_cg_zone_cursor_t;

/* called under the lock for each record visited: brief, no allocation */
typedef void (*ngx_http_cg_zone_visit_pt)(ngx_http_cg_record_t *rec,
    void *data);

/*
 * Takes the lock, visits up to "max" records after the cursor, moves the
 * cursor past the last one, and unlocks.  NGX_DONE when no record is left
 * after it, NGX_OK otherwise.
 */
ngx_int_t ngx_http_cg_zone_walk(ngx_http_cg_zone_t *zone,
    ngx_http_cg_zone_cursor_t *cur, ngx_uint_t max,
    ngx_http_cg_zone_visit_pt visit, void *data);

/* the record of a name, its LRU place untouched, or NULL; lock held */
ngx_http_cg_record_t *ngx_http_cg_zone_find(ngx_http_cg_zone_t *zone,
    ngx_str_t *name);

/* the record and its name into "copy" */
void ngx_http_cg_zone_copy(ngx_http_cg_record_copy_t *copy,
    ngx_http_cg_record_t *rec);


/* the zone's own figures, for the status */

typedef struct {
    uint64_t                  size;
    uint64_t                  used;        /* whole pages */
    ngx_uint_t                pages;
    ngx_uint_t                pages_free;
    ngx_uint_t                clients;
    uint64_t                  evictions;
    uint64_t                  evicted[NGX_HTTP_CG_NTIERS];  /* by tier */
    uint64_t                  alloc_failures;
    uint64_t                  unidentified[NGX_HTTP_CG_ID_NREASONS];
} ngx_http_cg_zone_health_t;

/* takes the lock */
void ngx_http_cg_zone_health(ngx_http_cg_zone_t *zone,
    ngx_http_cg_zone_health_t *h);


#endif /* _CG_ZONE_H_INCLUDED_ */
