
/*
 * Copyright (C) client guard authors
 *
 * Room made in a zone, by tier.  See cg_zone_evict.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_zone_evict.h"


/*
 * The queues are ordered by the time of each record's last move to their
 * head, and "last" is at most a second later than that (cg_zone_store.c):
 * a few records from the tail are looked at for the least recently seen.
 */

#define NGX_HTTP_CG_EVICT_LOOK  8


static ngx_http_cg_record_t *ngx_http_cg_zone_victim(ngx_queue_t *queue,
    ngx_uint_t *skipped);


/*
 * The victim in one LRU queue: the least recently seen of the records at
 * its tail; a record pinned by a request still under way is passed over
 * (at most 64 of them over all queues: then nothing is freed, and the new
 * client goes uncounted rather than the lock held long).
 */

static ngx_http_cg_record_t *
ngx_http_cg_zone_victim(ngx_queue_t *queue, ngx_uint_t *skipped)
{
    ngx_uint_t             looked;
    ngx_queue_t           *q;
    ngx_http_cg_record_t  *cn, *victim;

    victim = NULL;
    looked = 0;

    for (q = ngx_queue_last(queue);
         q != ngx_queue_sentinel(queue)
         && *skipped < 64 && looked < NGX_HTTP_CG_EVICT_LOOK;
         q = ngx_queue_prev(q))
    {
        cn = ngx_queue_data(q, ngx_http_cg_record_t, queue);

        /*
         * moved to the head after the victim was last seen: so was
         * every record nearer the head, none was seen before it
         */

        if (victim && (int32_t) (cn->last - cn->lag - victim->last) >= 0) {
            break;
        }

        if (cn->refs) {
            (*skipped)++;
            continue;
        }

        looked++;

        if (victim == NULL || (int32_t) (cn->last - victim->last) < 0) {
            victim = cn;
        }
    }

    return victim;
}


void
ngx_http_cg_zone_evict(ngx_http_cg_zone_t *zone, ngx_uint_t n)
{
    uint32_t               off, *next;
    ngx_uint_t             skipped, t;
    ngx_rbtree_node_t     *node;
    ngx_http_cg_record_t  *cn, *victim;

    for ( /* void */ ; n; n--) {

        victim = NULL;
        skipped = 0;

        for (t = 0; victim == NULL && t < NGX_HTTP_CG_NTIERS; t++) {
            victim = ngx_http_cg_zone_victim(&zone->sh->queue[t], &skipped);
        }

        if (victim == NULL) {
            return;
        }

        ngx_queue_remove(&victim->queue);

        node = (ngx_rbtree_node_t *)
                   ((u_char *) victim - offsetof(ngx_rbtree_node_t, color));

        /* out of its hash chain */

        off = ngx_http_cg_zone_off(zone, node);
        next = &zone->sh->buckets[node->key & zone->sh->mask];

        while (*next != off) {
            cn = (ngx_http_cg_record_t *)
                     &ngx_http_cg_zone_at(zone, *next)->color;
            next = &cn->hnext;
        }

        *next = victim->hnext;

        /* remembered while new (ngx_rbtree_delete clears the key) */

        if (victim->tier == NGX_HTTP_CG_TIER_NEW) {
            zone->sh->ghosts[node->key & zone->sh->ghost_mask] =
                                                         (uint32_t) node->key;
        }

        ngx_rbtree_delete(&zone->sh->rbtree, node);
        ngx_slab_free_locked(zone->shpool, node);

        zone->sh->clients--;
        zone->sh->evictions++;
        zone->sh->evicted[victim->tier]++;
    }
}
