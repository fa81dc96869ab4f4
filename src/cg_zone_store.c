
/*
 * Copyright (C) client guard authors
 *
 * A zone's records found, made and walked.  See cg_zone_store.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_zone_evict.h"
#include "cg_zone_store.h"


/*
 * A record found again less than this long after its last move to the head
 * of the LRU queue stays where it is: a busy client's lookups touch neither
 * the queue's head nor its neighbours' records.  The queue is then ordered
 * by the time of each record's last move, and "last" is at most this much
 * later than that: eviction (cg_zone_evict.c) looks at a few records from
 * the tail for the least recently seen one.
 */

#define NGX_HTTP_CG_LRU_LAG     1000


static ngx_inline void ngx_http_cg_zone_prefetch(ngx_http_cg_record_t *cn);
static ngx_inline ngx_uint_t ngx_http_cg_zone_same(ngx_http_cg_record_t *cn,
    ngx_str_t *name);


void
ngx_http_cg_zone_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t   **p;
    ngx_http_cg_record_t   *cn, *cnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            cn = (ngx_http_cg_record_t *) &node->color;
            cnt = (ngx_http_cg_record_t *) &temp->color;

            p = (ngx_memn2cmp(cn->name, cnt->name, cn->len, cnt->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


ngx_http_cg_record_t *
ngx_http_cg_zone_record(ngx_http_cg_zone_t *zone, ngx_str_t *name,
    uint32_t hash, ngx_msec_t now, ngx_uint_t create)
{
    size_t               size;
    uint32_t            *bucket, *ghost, off;
    ngx_uint_t           tries;
    ngx_msec_int_t       lag;
    ngx_rbtree_node_t   *node;
    ngx_http_cg_record_t  *cn;

    bucket = &zone->sh->buckets[hash & zone->sh->mask];

    for (off = *bucket; off; off = cn->hnext) {

        node = ngx_http_cg_zone_at(zone, off);
        cn = (ngx_http_cg_record_t *) &node->color;

        if (node->key == hash && cn->len == name->len
            && ngx_http_cg_zone_same(cn, name))
        {
            lag = (int32_t) ((uint32_t) now - cn->last);

            /* another worker's clock may be a little behind */

            lag = (lag > 0 ? lag : 0) + cn->lag;

            if (lag < NGX_HTTP_CG_LRU_LAG && cn->tier != NGX_HTTP_CG_TIER_NEW)
            {
                cn->lag = (u_short) lag;

            } else {
                /* found again: no name that passes once */

                if (cn->tier == NGX_HTTP_CG_TIER_NEW) {
                    cn->tier = NGX_HTTP_CG_TIER_RETURNING;
                }

                ngx_queue_remove(&cn->queue);
                ngx_queue_insert_head(&zone->sh->queue[cn->tier],
                                      &cn->queue);
                cn->lag = 0;
            }

            cn->last = (uint32_t) now;

            ngx_http_cg_zone_prefetch(cn);

            return cn;
        }
    }

    if (!create || name->len == 0 || name->len > CG_NAME_MAX) {
        return NULL;
    }

    if (zone->max_clients && zone->sh->clients >= zone->max_clients) {
        ngx_http_cg_zone_evict(zone, 1);
    }

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_cg_record_t, name)
           + name->len;

    for (tries = 0; /* void */ ; tries++) {

        node = ngx_slab_alloc_locked(zone->shpool, size);

        if (node) {
            break;
        }

        if (tries == 8 || zone->sh->clients == 0) {
            zone->sh->alloc_failures++;
            return NULL;
        }

        ngx_http_cg_zone_evict(zone, 2);
    }

    cn = (ngx_http_cg_record_t *) &node->color;

    ngx_memzero(cn, offsetof(ngx_http_cg_record_t, name));

    node->key = hash;
    cn->len = (u_char) name->len;
    cn->last = (uint32_t) now;
    cn->created = (uint32_t) ngx_time();
    ngx_memcpy(cn->name, name->data, name->len);
    ngx_memcpy(cn->head, name->data,
               ngx_min(name->len, NGX_HTTP_CG_NAME_HEAD));

    /* a name evicted while new, and back: it was no passing name either */

    ghost = &zone->sh->ghosts[hash & zone->sh->ghost_mask];

    if (*ghost == hash) {
        *ghost = 0;
        cn->tier = NGX_HTTP_CG_TIER_RETURNING;
    }

    ngx_rbtree_insert(&zone->sh->rbtree, node);
    ngx_queue_insert_head(&zone->sh->queue[cn->tier], &cn->queue);

    cn->hnext = *bucket;
    *bucket = ngx_http_cg_zone_off(zone, node);

    zone->sh->clients++;

    return cn;
}


/* "name" is as long as the record's */

static ngx_inline ngx_uint_t
ngx_http_cg_zone_same(ngx_http_cg_record_t *cn, ngx_str_t *name)
{
    size_t  len;

    len = ngx_min(name->len, NGX_HTTP_CG_NAME_HEAD);

    if (ngx_memcmp(cn->head, name->data, len) != 0) {
        return 0;
    }

    return name->len == len
           || ngx_memcmp(cn->name + len, name->data + len, name->len - len)
              == 0;
}


/*
 * The statistics of a record, which the request's log phase updates: asked
 * for now, they arrive while the request is served instead of being a
 * cache miss then.  With 10,000 clients most records are not in the cache.
 * Up to the history's ring: a request counts in its current step, the
 * ring is written once a step.
 */

static ngx_inline void
ngx_http_cg_zone_prefetch(ngx_http_cg_record_t *cn)
{
#if (__GNUC__ || __clang__)
    u_char  *p, *last;

    last = (u_char *) cn->stats.history.ring;

    for (p = (u_char *) &cn->stats; p < last; p += 64) {
        __builtin_prefetch(p, 1, 3);
    }
#endif
}


ngx_int_t
ngx_http_cg_zone_walk(ngx_http_cg_zone_t *zone,
    ngx_http_cg_zone_cursor_t *cur, ngx_uint_t max,
    ngx_http_cg_zone_visit_pt visit, void *data)
{
    ngx_int_t              rc;
    ngx_uint_t             n;
    ngx_rbtree_node_t     *node, *sentinel, *last;
    ngx_http_cg_record_t  *rec;

    ngx_http_cg_zone_lock(zone);

    /* the first record after (key, name), or the first of all */

    node = zone->sh->rbtree.root;
    sentinel = zone->sh->rbtree.sentinel;
    last = NULL;

    while (node != sentinel) {

        if (!cur->started) {
            rc = 1;

        } else if (node->key != cur->key) {
            rc = (node->key > cur->key) ? 1 : -1;

        } else {
            rec = (ngx_http_cg_record_t *) &node->color;
            rc = ngx_memn2cmp(rec->name, cur->name, rec->len, cur->len);
        }

        if (rc > 0) {
            last = node;
            node = node->left;

        } else {
            node = node->right;
        }
    }

    node = last;
    last = NULL;

    for (n = 0; node && n < max; n++) {
        visit((ngx_http_cg_record_t *) &node->color, data);
        last = node;
        node = ngx_rbtree_next(&zone->sh->rbtree, node);
    }

    if (last) {
        rec = (ngx_http_cg_record_t *) &last->color;

        cur->key = (uint32_t) last->key;
        cur->len = rec->len;
        ngx_memcpy(cur->name, rec->name, rec->len);
        cur->started = 1;
    }

    ngx_http_cg_zone_unlock(zone);

    return node ? NGX_OK : NGX_DONE;
}


ngx_http_cg_record_t *
ngx_http_cg_zone_find(ngx_http_cg_zone_t *zone, ngx_str_t *name)
{
    uint32_t               hash, off;
    ngx_rbtree_node_t     *node;
    ngx_http_cg_record_t  *rec;

    hash = ngx_crc32_long(name->data, name->len);

    for (off = zone->sh->buckets[hash & zone->sh->mask]; off; off = rec->hnext)
    {
        node = ngx_http_cg_zone_at(zone, off);
        rec = (ngx_http_cg_record_t *) &node->color;

        if (node->key == hash && rec->len == name->len
            && ngx_http_cg_zone_same(rec, name))
        {
            return rec;
        }
    }

    return NULL;
}


void
ngx_http_cg_zone_copy(ngx_http_cg_record_copy_t *copy,
    ngx_http_cg_record_t *rec)
{
    ngx_memcpy(&copy->rec, rec, offsetof(ngx_http_cg_record_t, name)
                                + rec->len);
}
