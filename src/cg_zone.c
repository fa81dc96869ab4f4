
/*
 * Copyright (C) client guard authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_zone.h"


extern ngx_module_t  ngx_http_client_guard_module;


ngx_http_cg_outcome_t  ngx_http_cg_outcomes[] = {
    { ngx_null_string, ngx_string("none") },
    { ngx_string("PASSED"), ngx_string("passed") },
    { ngx_string("REJECTED"), ngx_string("rejected") },
    { ngx_string("REJECTED_DRY_RUN"), ngx_string("rejected_dry_run") },
    { ngx_string("BYPASSED"), ngx_string("bypassed") },
    { ngx_string("UNIDENTIFIED"), ngx_string("unidentified") }
};


/*
 * A record found again less than this long after its last move to the head
 * of the LRU queue stays where it is: a busy client's lookups touch neither
 * the queue's head nor its neighbours' records.  The queue is then ordered
 * by the time of each record's last move, and "last" is at most this much
 * later than that: eviction looks at a few records from the tail for the
 * least recently seen one.
 */

#define NGX_HTTP_CG_LRU_LAG     1000
#define NGX_HTTP_CG_EVICT_LOOK  8


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


static ngx_int_t ngx_http_cg_zone_init(ngx_shm_zone_t *shm_zone, void *data);
static ngx_inline void ngx_http_cg_zone_prefetch(ngx_http_cg_record_t *cn);
static ngx_inline ngx_uint_t ngx_http_cg_zone_same(ngx_http_cg_record_t *cn,
    ngx_str_t *name);
static void ngx_http_cg_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_http_cg_record_t *ngx_http_cg_zone_victim(ngx_queue_t *queue,
    ngx_uint_t *skipped);
static void ngx_http_cg_zone_evict(ngx_http_cg_zone_t *zone, ngx_uint_t n);
static ngx_int_t ngx_http_cg_zone_check_resize(ngx_conf_t *cf,
    ngx_str_t *name, size_t size);
static ngx_http_cg_zone_t *ngx_http_cg_zone_by_name(ngx_array_t *zones,
    ngx_str_t *name);
static ngx_http_cg_zone_t *ngx_http_cg_zone_create(ngx_conf_t *cf,
    ngx_array_t *zones, ngx_str_t *name, size_t size);


char *
ngx_http_cg_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_array_t  *zones = (void *) ((char *) conf + cmd->offset);

    u_char               *p;
    size_t                size;
    ngx_int_t             n;
    ngx_str_t            *value, name, s;
    ngx_uint_t            i, max;
    ngx_http_cg_zone_t   *zone;

    value = cf->args->elts;

    size = 0;
    max = 0;
    name.len = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            name.data = value[i].data + 5;

            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\" in "
                                   "\"client_guard_zone\", expected "
                                   "\"zone=name:size\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            name.len = p - name.data;

            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (size == (size_t) NGX_ERROR || name.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone \"%V\" in "
                                   "\"client_guard_zone\", expected "
                                   "\"zone=name:size\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (size < (size_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "zone \"%V\" of \"client_guard_zone\" "
                                   "is too small, at least %uz bytes",
                                   &value[i], (size_t) 8 * ngx_pagesize);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "clients=", 8) == 0) {

            n = ngx_atoi(value[i].data + 8, value[i].len - 8);

            if (n <= 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"clients\" value \"%V\" in "
                                   "\"client_guard_zone\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            max = n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in "
                           "\"client_guard_zone\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"client_guard_zone\" must have "
                           "\"zone=name:size\"");
        return NGX_CONF_ERROR;
    }

    zone = ngx_http_cg_zone_by_name(zones, &name);

    if (zone && zone->declared) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate client_guard_zone \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_cg_zone_check_resize(cf, &name, size) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (zone == NULL) {
        zone = ngx_http_cg_zone_create(cf, zones, &name, size);
        if (zone == NULL) {
            return NGX_CONF_ERROR;
        }

    } else if (ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_client_guard_module)
               == NULL)
    {
        return NGX_CONF_ERROR;
    }

    zone->max_clients = max;
    zone->declared = 1;

    return NGX_CONF_OK;
}


static ngx_http_cg_zone_t *
ngx_http_cg_zone_by_name(ngx_array_t *zones, ngx_str_t *name)
{
    ngx_uint_t            i;
    ngx_http_cg_zone_t  **zp;

    zp = zones->elts;

    for (i = 0; i < zones->nelts; i++) {
        if (zp[i]->name.len == name->len
            && ngx_strncmp(zp[i]->name.data, name->data, name->len) == 0)
        {
            return zp[i];
        }
    }

    return NULL;
}


static ngx_http_cg_zone_t *
ngx_http_cg_zone_create(ngx_conf_t *cf, ngx_array_t *zones, ngx_str_t *name,
    size_t size)
{
    ngx_shm_zone_t       *shm_zone;
    ngx_http_cg_zone_t   *zone, **zp;

    shm_zone = ngx_shared_memory_add(cf, name, size,
                                     &ngx_http_client_guard_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used by client_guard",
                           name);
        return NULL;
    }

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_cg_zone_t));
    if (zone == NULL) {
        return NULL;
    }

    zone->name = shm_zone->shm.name;
    zone->shm_zone = shm_zone;
    zone->file = cf->conf_file->file.name;
    zone->line = cf->conf_file->line;

    shm_zone->init = ngx_http_cg_zone_init;
    shm_zone->data = zone;

    zp = ngx_array_push(zones);
    if (zp == NULL) {
        return NULL;
    }

    *zp = zone;

    return zone;
}


/*
 * nginx gives a zone whose size changed a fresh, empty memory on reload:
 * every client's counters would silently start again from zero.  Refuse the
 * reload instead, and say how to resize.
 */

static ngx_int_t
ngx_http_cg_zone_check_resize(ngx_conf_t *cf, ngx_str_t *name, size_t size)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *shm_zone;

    if (ngx_cycle == NULL || ngx_cycle->shared_memory.part.elts == NULL) {
        return NGX_OK;
    }

    part = (ngx_list_part_t *) &ngx_cycle->shared_memory.part;
    shm_zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            shm_zone = part->elts;
            i = 0;
        }

        if (shm_zone[i].tag != &ngx_http_client_guard_module
            || shm_zone[i].shm.name.len != name->len
            || ngx_strncmp(shm_zone[i].shm.name.data, name->data, name->len)
               != 0)
        {
            continue;
        }

        if (shm_zone[i].shm.size != size) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "client_guard_zone \"%V\" size changed "
                               "from %uz to %uz: a reload would drop every "
                               "client's counters; keep the size, or "
                               "restart nginx to resize the zone",
                               name, shm_zone[i].shm.size, size);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_http_cg_zone_t *
ngx_http_cg_zone_get(ngx_conf_t *cf, ngx_array_t *zones, ngx_str_t *name)
{
    ngx_http_cg_zone_t  *zone;

    zone = ngx_http_cg_zone_by_name(zones, name);

    if (zone) {
        return zone;
    }

    /* declared further on, or reported by ngx_http_cg_zones_done */

    return ngx_http_cg_zone_create(cf, zones, name, 0);
}


ngx_int_t
ngx_http_cg_zone_arg(ngx_conf_t *cf, ngx_array_t *zones, ngx_str_t *arg,
    ngx_http_cg_zone_t **zone)
{
    ngx_str_t  name;

    if (arg->len < 5 || ngx_strncmp(arg->data, "zone=", 5) != 0) {
        return NGX_DECLINED;
    }

    name.data = arg->data + 5;
    name.len = arg->len - 5;

    *zone = ngx_http_cg_zone_get(cf, zones, &name);

    return *zone ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_cg_zones_done(ngx_conf_t *cf, ngx_array_t *zones, ngx_msec_t step)
{
    ngx_uint_t            i;
    ngx_http_cg_zone_t  **zp;

    zp = zones->elts;

    for (i = 0; i < zones->nelts; i++) {
        if (!zp[i]->declared) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown client_guard_zone \"%V\": declare it "
                          "with \"client_guard_zone zone=%V:size\", "
                          "in %V:%ui", &zp[i]->name, &zp[i]->name,
                          &zp[i]->file, zp[i]->line);
            return NGX_ERROR;
        }

        zp[i]->step = step;
    }

    return NGX_OK;
}


/*
 * A zone kept across a reload that changed the history's step: the steps
 * counted are of another length, every client's history starts again (the
 * detector would take them for an empty past, and flag every client).
 */

static void
ngx_http_cg_zone_restep(ngx_http_cg_zone_t *zone, ngx_log_t *log)
{
    ngx_uint_t             n, t;
    ngx_queue_t           *q;
    ngx_http_cg_record_t  *rec;

    if (zone->sh->step == zone->step) {
        return;
    }

    n = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (t = 0; t < NGX_HTTP_CG_NTIERS; t++) {
        for (q = ngx_queue_head(&zone->sh->queue[t]);
             q != ngx_queue_sentinel(&zone->sh->queue[t]);
             q = ngx_queue_next(q))
        {
            rec = ngx_queue_data(q, ngx_http_cg_record_t, queue);
            ngx_memzero(&rec->stats.history, sizeof(cg_history_t));
            n++;
        }
    }

    zone->sh->step = zone->step;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "client_guard_zone \"%V\": the history step is now "
                      "%M ms, the histories of %ui clients start again",
                      &zone->name, zone->step, n);
    }
}


static ngx_int_t
ngx_http_cg_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_cg_zone_t  *ozone = data;

    size_t               len, n;
    ngx_http_cg_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;

        /* a reload that brings in another build of the module */

        if (zone->sh->layout != NGX_HTTP_CG_ZONE_LAYOUT) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "client_guard_zone \"%V\" was made by another "
                          "version of the module: restart nginx to use "
                          "this one", &shm_zone->shm.name);
            return NGX_ERROR;
        }

        ngx_http_cg_zone_restep(zone, shm_zone->shm.log);

        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return NGX_OK;
    }

    zone->sh = ngx_slab_alloc(zone->shpool, sizeof(ngx_http_cg_shctx_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(zone->sh, sizeof(ngx_http_cg_shctx_t));
    zone->sh->layout = NGX_HTTP_CG_ZONE_LAYOUT;
    zone->sh->step = zone->step;

    zone->shpool->data = zone->sh;

    ngx_rbtree_init(&zone->sh->rbtree, &zone->sh->sentinel,
                    ngx_http_cg_rbtree_insert_value);

    for (n = 0; n < NGX_HTTP_CG_NTIERS; n++) {
        ngx_queue_init(&zone->sh->queue[n]);
    }

    for (n = 1; n < shm_zone->shm.size / 512; n <<= 1) { /* void */ }

    zone->sh->buckets = ngx_slab_alloc(zone->shpool, n * sizeof(uint32_t));
    if (zone->sh->buckets == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(zone->sh->buckets, n * sizeof(uint32_t));
    zone->sh->mask = n - 1;

    /* the names last evicted while new: a 4-byte hash per 128 bytes */

    for (n = 1; 2 * n <= shm_zone->shm.size / 128; n <<= 1) { /* void */ }

    zone->sh->ghosts = ngx_slab_alloc(zone->shpool, n * sizeof(uint32_t));
    if (zone->sh->ghosts == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(zone->sh->ghosts, n * sizeof(uint32_t));
    zone->sh->ghost_mask = n - 1;

    len = sizeof(" in client_guard_zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in client_guard_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* running out of memory is normal here: the LRU makes room */

    zone->shpool->log_nomem = 0;

    return NGX_OK;
}


static void
ngx_http_cg_rbtree_insert_value(ngx_rbtree_node_t *temp,
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


/* n records out, each from the lowest tier that gives one */

static void
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


void
ngx_http_cg_zone_health(ngx_http_cg_zone_t *zone,
    ngx_http_cg_zone_health_t *h)
{
    ngx_uint_t            i;
    ngx_slab_pool_t      *pool;
    ngx_http_cg_shctx_t  *sh;

    sh = zone->sh;
    pool = zone->shpool;

    h->size = zone->shm_zone->shm.size;

    for (i = 0; i < NGX_HTTP_CG_ID_NREASONS; i++) {
        h->unidentified[i] = sh->unidentified[i];
    }

    ngx_http_cg_zone_lock(zone);

    h->pages = (pool->end - pool->start) / ngx_pagesize;
    h->pages_free = pool->pfree;
    h->clients = sh->clients;
    h->evictions = sh->evictions;

    for (i = 0; i < NGX_HTTP_CG_NTIERS; i++) {
        h->evicted[i] = sh->evicted[i];
    }
    h->alloc_failures = sh->alloc_failures;

    ngx_http_cg_zone_unlock(zone);

    h->used = (uint64_t) (h->pages - h->pages_free) * ngx_pagesize;
}
