
/*
 * Copyright (C) client guard authors
 *
 * The definitions put back into a Redis that lost them.  See
 * cg_redis_restore.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_link_conf.h"
#include "cg_redis_restore.h"


/* one worker of one node restores: the lock outlives any restore */
#define NGX_HTTP_CG_RESTORE_LOCK  "5000"      /* ms */


typedef struct {
    ngx_http_cg_route_t          *link;     /* NULL: no Redis */
    ngx_http_cg_restore_done_pt   done;
    ngx_str_t                     me;       /* the lock's value */
    ngx_str_t                     k_lock;
    ngx_str_t                     k_quotas;
    ngx_str_t                     k_keys;
    ngx_str_t                     k_version;

    ngx_pool_t                   *pool;     /* a restore under way */
    ngx_array_t                   pairs[2]; /* ngx_keyval_t: quotas, keys */
    ngx_uint_t                    bad;      /* a pair could not be added */
    uint64_t                      version;
    ngx_uint_t                    won;      /* this worker holds the lock */
    ngx_uint_t                    failed;   /* writes refused */
    ngx_uint_t                    lost;     /* within a loss, counted */
    ngx_uint_t                    told;     /* the loss was logged */
    u_char                        err[128];
    u_char                        by[80];

    ngx_http_cg_restore_info_t    info;
} ngx_http_cg_restore_t;


static ngx_http_cg_restore_t  ngx_http_cg_rs;


ngx_int_t
ngx_http_cg_redis_restore_init(ngx_cycle_t *cycle, ngx_http_cg_route_t *link,
    ngx_http_cg_link_conf_t *conf, ngx_str_t *node,
    ngx_http_cg_restore_done_pt done)
{
    ngx_http_cg_restore_t  *rs = &ngx_http_cg_rs;

    ngx_memzero(rs, sizeof(ngx_http_cg_restore_t));

    if (ngx_http_cg_link_key(cycle->pool, conf, &rs->k_lock, "restore")
           != NGX_OK
        || ngx_http_cg_link_key(cycle->pool, conf, &rs->k_quotas, "quotas")
           != NGX_OK
        || ngx_http_cg_link_key(cycle->pool, conf, &rs->k_keys, "apikeys")
           != NGX_OK
        || ngx_http_cg_link_key(cycle->pool, conf, &rs->k_version, "version")
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* "node/pid": which worker of which node restored */

    rs->me.data = ngx_pnalloc(cycle->pool, node->len + 1 + NGX_INT_T_LEN);
    if (rs->me.data == NULL) {
        return NGX_ERROR;
    }

    rs->me.len = ngx_sprintf(rs->me.data, "%V/%P", node, ngx_pid)
                 - rs->me.data;

    rs->link = link;
    rs->done = done;
    rs->info.by.data = rs->by;

    return NGX_OK;
}


void
ngx_http_cg_redis_restore_exit(void)
{
    ngx_http_cg_restore_t  *rs = &ngx_http_cg_rs;

    if (rs->pool) {
        ngx_destroy_pool(rs->pool);
        rs->pool = NULL;
    }

    rs->link = NULL;
}


ngx_int_t
ngx_http_cg_redis_restore_begin(void)
{
    ngx_http_cg_restore_t  *rs = &ngx_http_cg_rs;

    if (rs->pool || !ngx_http_cg_route_ready(rs->link)) {
        return NGX_DECLINED;
    }

    rs->pool = ngx_create_pool(4096, ngx_cycle->log);
    if (rs->pool == NULL) {
        return NGX_ERROR;
    }

    rs->bad = 0;

    if (ngx_array_init(&rs->pairs[0], rs->pool, 16, sizeof(ngx_keyval_t))
           != NGX_OK
        || ngx_array_init(&rs->pairs[1], rs->pool, 16, sizeof(ngx_keyval_t))
           != NGX_OK)
    {
        rs->bad = 1;
    }

    return NGX_OK;
}


void
ngx_http_cg_redis_restore_add(ngx_uint_t key, ngx_str_t *field,
    ngx_str_t *value)
{
    ngx_keyval_t           *kv;
    ngx_http_cg_restore_t  *rs = &ngx_http_cg_rs;

    if (rs->pool == NULL || rs->bad) {
        return;
    }

    kv = ngx_array_push(&rs->pairs[key ? 1 : 0]);
    if (kv == NULL) {
        rs->bad = 1;
        return;
    }

    kv->key.len = field->len;
    kv->key.data = ngx_pstrdup(rs->pool, field);
    kv->value.len = value->len;
    kv->value.data = ngx_pstrdup(rs->pool, value);

    if (kv->key.data == NULL || kv->value.data == NULL) {
        rs->bad = 1;
    }
}


void
ngx_http_cg_redis_restore_found(void)
{
    ngx_http_cg_rs.lost = 0;
    ngx_http_cg_rs.told = 0;
}


ngx_http_cg_restore_info_t *
ngx_http_cg_redis_restore_info(void)
{
    return &ngx_http_cg_rs.info;
}


static void
ngx_http_cg_restore_end(ngx_http_cg_restore_t *rs)
{
    if (rs->pool) {
        ngx_destroy_pool(rs->pool);
        rs->pool = NULL;
    }
}


/* the replies to HSETNX: 1 written, 0 there already */

static void
ngx_http_cg_restore_field_done(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_restore_t  *rs = &ngx_http_cg_rs;

    if (reply == NULL) {
        rs->failed++;
        return;
    }

    if (reply->type == REDIS_REPLY_INTEGER) {
        if (reply->integer == 0) {
            rs->info.kept++;

        } else if (data) {
            rs->info.keys++;

        } else {
            rs->info.quotas++;
        }

        return;
    }

    if (rs->failed++ == 0 && reply->type == REDIS_REPLY_ERROR) {
        ngx_cpystrn(rs->err, (u_char *) reply->str,
                    ngx_min(reply->len + 1, sizeof(rs->err)));
    }
}


/* the version, the last reply of a restore: the one log line */

static void
ngx_http_cg_restore_version_done(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    u_char                      *p, *last, tail[256];
    ngx_http_cg_restore_t       *rs = &ngx_http_cg_rs;
    ngx_http_cg_restore_info_t  *in = &rs->info;

    if (reply == NULL) {
        /* the link was lost: the lock expires, the next loss tries again */
        ngx_http_cg_restore_end(rs);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR && rs->failed++ == 0) {
        ngx_cpystrn(rs->err, (u_char *) reply->str,
                    ngx_min(reply->len + 1, sizeof(rs->err)));
    }

    in->restores++;
    in->quotas_total += in->quotas;
    in->keys_total += in->keys;

    p = tail;
    last = tail + sizeof(tail);

    if (in->kept) {
        p = ngx_slprintf(p, last, ", kept %ui written there meanwhile",
                         in->kept);
    }

    if (rs->failed) {
        p = ngx_slprintf(p, last, "; %ui could not be written: %s",
                         rs->failed, rs->err);
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "client guard: redis %V came back without the quota "
                  "definitions (\"%V\" is gone): restored %ui quota%s and "
                  "%ui API key%s from this node's last snapshot (version "
                  "%uL)%*s",
                  &link->conf->addr->name, &rs->k_version,
                  in->quotas, in->quotas == 1 ? "" : "s",
                  in->keys, in->keys == 1 ? "" : "s", rs->version,
                  (size_t) (p - tail), tail);

    rs->told = 1;

    ngx_http_cg_restore_end(rs);

    /* read back what Redis has now */
    rs->done();
}


static void
ngx_http_cg_restore_write(ngx_http_cg_restore_t *rs, ngx_array_t *pairs,
    ngx_str_t *key, void *data)
{
    size_t                       len[4];
    ngx_uint_t                   i;
    const char                  *argv[4];
    ngx_keyval_t                *p;

    p = pairs->elts;

    argv[0] = "HSETNX";
    len[0] = 6;
    argv[1] = (const char *) key->data;
    len[1] = key->len;

    for (i = 0; i < pairs->nelts; i++) {
        argv[2] = (const char *) p[i].key.data;
        len[2] = p[i].key.len;
        argv[3] = (const char *) p[i].value.data;
        len[3] = p[i].value.len;

        if (ngx_http_cg_route_send(rs->link, 4, argv, len,
                                    ngx_http_cg_restore_field_done, data)
            != NGX_OK)
        {
            rs->failed++;
        }
    }
}


/* SET lock NX: "OK" this worker restores, nil another one does */

static void
ngx_http_cg_restore_lock_done(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_restore_t  *rs = &ngx_http_cg_rs;

    rs->won = reply && reply->type == REDIS_REPLY_STATUS;

    if (reply && reply->type == REDIS_REPLY_ERROR && !rs->told) {
        rs->told = 1;
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "client guard: redis %V came back without the quota "
                      "definitions (\"%V\" is gone); this worker keeps its "
                      "own but cannot restore them: %*s",
                      &link->conf->addr->name, &rs->k_version,
                      (size_t) ngx_min(reply->len, 256), reply->str);
    }
}


/* GET lock: who restores; the writes follow when this worker does */

static void
ngx_http_cg_restore_by_done(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    size_t                       len[4];
    const char                  *argv[4];
    u_char                       v[NGX_INT64_LEN];
    ngx_http_cg_restore_t       *rs = &ngx_http_cg_rs;
    ngx_http_cg_restore_info_t  *in = &rs->info;

    if (reply && reply->type == REDIS_REPLY_STRING) {
        in->by.len = ngx_min(reply->len, sizeof(rs->by));
        ngx_memcpy(rs->by, reply->str, in->by.len);
    }

    if (reply == NULL || !rs->won) {
        if (reply && !rs->told) {
            rs->told = 1;
            ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                          "client guard: redis %V came back without the "
                          "quota definitions; \"%V\" restores them, this "
                          "worker keeps its own meanwhile",
                          &link->conf->addr->name, &in->by);
        }

        ngx_http_cg_restore_end(rs);
        return;
    }

    in->quotas = 0;
    in->keys = 0;
    in->kept = 0;
    rs->failed = 0;

    ngx_http_cg_restore_write(rs, &rs->pairs[0], &rs->k_quotas, NULL);
    ngx_http_cg_restore_write(rs, &rs->pairs[1], &rs->k_keys, rs);

    /* then the version: the other nodes see it, and keep or reload */

    argv[0] = "SET";
    len[0] = 3;
    argv[1] = (const char *) rs->k_version.data;
    len[1] = rs->k_version.len;
    argv[2] = (const char *) v;
    len[2] = ngx_sprintf(v, "%uL", rs->version) - v;
    argv[3] = "NX";
    len[3] = 2;

    if (ngx_http_cg_route_send(rs->link, 4, argv, len,
                                ngx_http_cg_restore_version_done, rs)
        != NGX_OK)
    {
        ngx_http_cg_restore_end(rs);
    }
}


void
ngx_http_cg_redis_restore(uint64_t version)
{
    size_t                  len[6];
    const char             *argv[6];
    ngx_http_cg_restore_t  *rs = &ngx_http_cg_rs;

    if (rs->pool == NULL) {
        return;
    }

    if (rs->bad || !ngx_http_cg_route_ready(rs->link)) {
        ngx_http_cg_restore_end(rs);
        return;
    }

    if (!rs->lost) {
        rs->lost = 1;
        rs->info.losses++;
        rs->info.at = ngx_time();
        rs->info.by.len = 0;
        rs->info.quotas = 0;
        rs->info.keys = 0;
        rs->info.kept = 0;
    }

    rs->version = version;
    rs->won = 0;

    argv[0] = "SET";
    len[0] = 3;
    argv[1] = (const char *) rs->k_lock.data;
    len[1] = rs->k_lock.len;
    argv[2] = (const char *) rs->me.data;
    len[2] = rs->me.len;
    argv[3] = "NX";
    len[3] = 2;
    argv[4] = "PX";
    len[4] = 2;
    argv[5] = NGX_HTTP_CG_RESTORE_LOCK;
    len[5] = sizeof(NGX_HTTP_CG_RESTORE_LOCK) - 1;

    if (ngx_http_cg_route_send(rs->link, 6, argv, len,
                                ngx_http_cg_restore_lock_done, rs)
        != NGX_OK)
    {
        ngx_http_cg_restore_end(rs);
        return;
    }

    argv[0] = "GET";
    len[0] = 3;

    if (ngx_http_cg_route_send(rs->link, 2, argv, len,
                                ngx_http_cg_restore_by_done, rs)
        != NGX_OK)
    {
        /* the lock's reply comes all the same: nothing else follows */
        ngx_http_cg_restore_end(rs);
    }
}
