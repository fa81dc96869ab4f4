
/*
 * Copyright (C) client guard authors
 *
 * The zones as configured, their figures, the outcomes' names.  See
 * cg_zone.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_zone.h"
#include "cg_zone_shm.h"


extern ngx_module_t  ngx_http_client_guard_module;


ngx_http_cg_outcome_t  ngx_http_cg_outcomes[] = {
    { ngx_null_string, ngx_string("none") },
    { ngx_string("PASSED"), ngx_string("passed") },
    { ngx_string("REJECTED"), ngx_string("rejected") },
    { ngx_string("REJECTED_DRY_RUN"), ngx_string("rejected_dry_run") },
    { ngx_string("BYPASSED"), ngx_string("bypassed") },
    { ngx_string("UNIDENTIFIED"), ngx_string("unidentified") }
};


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
