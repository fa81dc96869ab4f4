
/*
 * Copyright (C) client guard authors
 *
 * A zone's shared memory made, or kept across a reload.  See cg_zone_shm.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_zone_shm.h"
#include "cg_zone_store.h"


extern ngx_module_t  ngx_http_client_guard_module;


static void ngx_http_cg_zone_restep(ngx_http_cg_zone_t *zone, ngx_log_t *log);


/*
 * nginx gives a zone whose size changed a fresh, empty memory on reload:
 * every client's counters would silently start again from zero.  Refuse the
 * reload instead, and say how to resize.
 */

ngx_int_t
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

    ngx_http_cg_zone_lock(zone);

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

    ngx_http_cg_zone_unlock(zone);

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "client_guard_zone \"%V\": the history step is now "
                      "%M ms, the histories of %ui clients start again",
                      &zone->name, zone->step, n);
    }
}


ngx_int_t
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
                    ngx_http_cg_zone_rbtree_insert);

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
