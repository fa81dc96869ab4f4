
/*
 * Copyright (C) client guard authors
 *
 * cg_zone_store: a zone's records.
 *
 * Owns: a client's record found through the hash index and marked most
 * recently seen (its place in its tier's LRU queue moved at most once a
 * second; a NEW one found again made RETURNING), or made (with room made
 * by cg_zone_evict.c; a name evicted while NEW comes back RETURNING),
 * into the index, the rbtree and its LRU queue; the rbtree's order (the
 * hash of the name, then the name); a record's move to another tier; the
 * walk of the records in that order, a record found by name, and its copy
 * for a reader outside the lock.  Every function but the walk expects the
 * caller to hold the zone lock, and to hold it briefly.
 */


#ifndef _CG_ZONE_STORE_H_INCLUDED_
#define _CG_ZONE_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_zone_layout.h"


/* the rbtree's insert: by the hash of the name, then the name */
void ngx_http_cg_zone_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);

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


#endif /* _CG_ZONE_STORE_H_INCLUDED_ */
