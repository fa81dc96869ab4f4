
/*
 * Copyright (C) client guard authors
 *
 * Quota definitions and API keys read from Redis.  See cg_redis_quota.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/sha.h>

#include "cg_link_conf.h"
#include "cg_redis_quota.h"
#include "cg_redis_restore.h"


typedef struct {
    ngx_http_cg_route_t        *link;     /* NULL: no Redis */
    ngx_http_cg_snap_t         *snap;     /* in force */
    ngx_http_cg_snap_t         *building; /* a load under way */
    ngx_uint_t                  reload;   /* a change seen meanwhile */
    ngx_msec_t                  last_load;
    ngx_msec_t                  jitter;   /* the backstop's, this worker's */
    time_t                      loaded;   /* "snap", wall clock */
    ngx_str_t                   k_quotas;
    ngx_str_t                   k_keys;
    ngx_str_t                   k_version;
} ngx_http_cg_defs_t;


static ngx_http_cg_defs_t  ngx_http_cg_defs;


/* the snapshot being built is given up (the last one stays in force) */

static void
ngx_http_cg_snap_drop(ngx_http_cg_defs_t *w)
{
    if (w->building) {
        ngx_destroy_pool(w->building->pool);
        w->building = NULL;
    }
}


static void
ngx_http_cg_redis_quotas_done(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_defs_t  *w = &ngx_http_cg_defs;

    if (w->building == NULL) {
        return;
    }

    if (reply == NULL
        || ngx_http_cg_snap_hash(w->building, reply, &w->k_quotas, 0)
           == NGX_ERROR)
    {
        ngx_http_cg_snap_drop(w);
    }
}


/* Redis lost the definitions: those in force, for cg_redis_restore */

static void
ngx_http_cg_redis_quota_restore(ngx_http_cg_defs_t *w)
{
    ngx_uint_t                  i, k, n;
    ngx_http_cg_snap_entry_t   *e, **b;

    if (w->snap == NULL || ngx_http_cg_redis_restore_begin() != NGX_OK) {
        return;
    }

    for (k = 0; k < 2; k++) {
        b = k ? w->snap->keys : w->snap->quotas;
        n = k ? w->snap->nkeys : w->snap->nquotas;

        for (i = 0; b && i < n; i++) {
            for (e = b[i]; e; e = e->next) {
                ngx_http_cg_redis_restore_add(k, &e->name, &e->value);
            }
        }
    }

    ngx_http_cg_redis_restore(w->snap->version);
}


static void
ngx_http_cg_redis_keys_done(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_snap_t  *snap;
    ngx_http_cg_defs_t  *w = &ngx_http_cg_defs;

    snap = w->building;

    if (snap == NULL) {
        return;
    }

    if (reply == NULL
        || ngx_http_cg_snap_hash(snap, reply, &w->k_keys, 1) == NGX_ERROR
        || snap->quotas == NULL)
    {
        ngx_http_cg_snap_drop(w);
        return;
    }

    if (snap->lost) {
        /* Redis came back empty: the snapshot stays, and is put back */
        ngx_http_cg_snap_drop(w);
        ngx_http_cg_redis_quota_restore(w);
        return;
    }

    ngx_http_cg_snap_done(snap);

    if (snap->version) {
        ngx_http_cg_redis_restore_found();
    }

    if (w->snap) {
        ngx_destroy_pool(w->snap->pool);
    }

    w->snap = snap;
    w->building = NULL;
    w->loaded = ngx_time();

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "client guard: quotas version %uL loaded", snap->version);

    if (w->reload) {
        w->reload = 0;
        ngx_http_cg_redis_quota_load();
    }
}


static void
ngx_http_cg_redis_load_version(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_defs_t  *w = &ngx_http_cg_defs;

    if (w->building == NULL || reply == NULL) {
        return;
    }

    ngx_http_cg_snap_version(w->building, reply, &w->k_version);
}


void
ngx_http_cg_redis_quota_load(void)
{
    size_t               len[2];
    const char          *argv[2];
    ngx_http_cg_defs_t  *w = &ngx_http_cg_defs;

    if (!ngx_http_cg_route_ready(w->link)) {
        return;
    }

    if (w->building) {
        w->reload = 1;
        return;
    }

    w->building = ngx_http_cg_snap_create(w->snap);
    if (w->building == NULL) {
        return;
    }

    w->last_load = ngx_current_msec;

    argv[0] = "GET";
    len[0] = 3;
    argv[1] = (const char *) w->k_version.data;
    len[1] = w->k_version.len;

    if (ngx_http_cg_route_send(w->link, 2, argv, len,
                               ngx_http_cg_redis_load_version, w)
        != NGX_OK)
    {
        goto failed;
    }

    argv[0] = "HGETALL";
    len[0] = 7;
    argv[1] = (const char *) w->k_quotas.data;
    len[1] = w->k_quotas.len;

    if (ngx_http_cg_route_send(w->link, 2, argv, len,
                               ngx_http_cg_redis_quotas_done, w)
        != NGX_OK)
    {
        goto failed;
    }

    argv[1] = (const char *) w->k_keys.data;
    len[1] = w->k_keys.len;

    if (ngx_http_cg_route_send(w->link, 2, argv, len,
                               ngx_http_cg_redis_keys_done, w)
        != NGX_OK)
    {
        goto failed;
    }

    return;

failed:

    /* a failure inside send already ran the handlers */

    ngx_http_cg_snap_drop(w);

}


/* lookups */

cg_quota_t *
ngx_http_cg_redis_quota(ngx_str_t *name, uint32_t hash)
{
    ngx_http_cg_snap_entry_t  *e;
    ngx_http_cg_snap_t   *snap;

    snap = ngx_http_cg_defs.snap;

    if (snap == NULL) {
        return NULL;
    }

    e = ngx_http_cg_snap_find_hash(snap->quotas, snap->nquotas, name->data,
                                   name->len, hash);

    return e ? &e->quota : NULL;
}


cg_quota_t *
ngx_http_cg_redis_default(void)
{
    ngx_http_cg_snap_t  *snap;

    snap = ngx_http_cg_defs.snap;

    return (snap && snap->dflt) ? &snap->dflt->quota : NULL;
}


ngx_int_t
ngx_http_cg_redis_api_key(ngx_str_t *key, ngx_str_t *name)
{
    u_char                hex[2 * SHA256_DIGEST_LENGTH];
    u_char                md[SHA256_DIGEST_LENGTH];
    ngx_http_cg_snap_entry_t  *e;
    ngx_http_cg_snap_t   *snap;

    snap = ngx_http_cg_defs.snap;

    if (snap == NULL || snap->nkeys == 0) {
        return NGX_DECLINED;
    }

    SHA256(key->data, key->len, md);
    ngx_hex_dump(hex, md, SHA256_DIGEST_LENGTH);

    e = ngx_http_cg_snap_find(snap->keys, snap->nkeys, hex, sizeof(hex));
    if (e == NULL) {
        return NGX_DECLINED;
    }

    *name = e->value;

    return NGX_OK;
}


/* for the status output */

ngx_array_t *
ngx_http_cg_redis_errors(void)
{
    return ngx_http_cg_defs.snap ? &ngx_http_cg_defs.snap->errors : NULL;
}


uint64_t
ngx_http_cg_redis_version(void)
{
    return ngx_http_cg_defs.snap ? ngx_http_cg_defs.snap->version : 0;
}


time_t
ngx_http_cg_redis_loaded(void)
{
    return ngx_http_cg_defs.loaded;
}


/* worker start and exit, and the version poll */

ngx_int_t
ngx_http_cg_redis_quota_init(ngx_cycle_t *cycle, ngx_http_cg_route_t *link,
    ngx_http_cg_link_conf_t *conf)
{
    ngx_http_cg_defs_t  *w = &ngx_http_cg_defs;

    ngx_memzero(w, sizeof(ngx_http_cg_defs_t));

    if (ngx_http_cg_link_key(cycle->pool, conf, &w->k_quotas, "quotas")
           != NGX_OK
        || ngx_http_cg_link_key(cycle->pool, conf, &w->k_keys, "apikeys")
           != NGX_OK
        || ngx_http_cg_link_key(cycle->pool, conf, &w->k_version, "version")
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    w->link = link;
    w->jitter = ngx_random() % 1000;

    return NGX_OK;
}


void
ngx_http_cg_redis_quota_exit(void)
{
    ngx_http_cg_defs_t  *w = &ngx_http_cg_defs;

    if (w->building) {
        ngx_destroy_pool(w->building->pool);
        w->building = NULL;
    }

    if (w->snap) {
        ngx_destroy_pool(w->snap->pool);
        w->snap = NULL;
    }

    w->link = NULL;
}


static void
ngx_http_cg_redis_version_done(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    uint64_t             v;
    ngx_int_t            n;
    ngx_http_cg_defs_t  *w = data;

    if (reply == NULL) {
        return;
    }

    v = 0;

    if (reply->type == REDIS_REPLY_STRING) {
        n = ngx_atoi((u_char *) reply->str, reply->len);
        v = n == NGX_ERROR ? (uint64_t) -1 : (uint64_t) n;

    } else if (reply->type != REDIS_REPLY_NIL) {
        v = (uint64_t) -1;   /* as the load took it */
    }

    if (w->snap == NULL || w->snap->version != v) {
        ngx_http_cg_redis_quota_load();

    } else if (v) {
        /* the version is back: another worker restored what this one has */
        ngx_http_cg_redis_restore_found();
    }
}


void
ngx_http_cg_redis_quota_poll(ngx_msec_t backstop)
{
    size_t               len[2];
    const char          *argv[2];
    ngx_http_cg_defs_t  *w = &ngx_http_cg_defs;

    if (!ngx_http_cg_route_ready(w->link)) {
        return;
    }

    /*
     * the backstop's reloads of the workers spread over a second; a link
     * back after an outage starts it again (not every worker at once)
     */

    if (backstop == (ngx_msec_t) -1) {
        w->last_load = ngx_current_msec;

    } else if (ngx_current_msec - w->last_load >= backstop + w->jitter) {
        ngx_http_cg_redis_quota_load();
        return;
    }

    argv[0] = "GET";
    len[0] = 3;
    argv[1] = (const char *) w->k_version.data;
    len[1] = w->k_version.len;

    (void) ngx_http_cg_route_send(w->link, 2, argv, len,
                                 ngx_http_cg_redis_version_done, w);
}
