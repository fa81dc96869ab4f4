
/*
 * Copyright (C) client guard authors
 *
 * One snapshot of the definitions Redis holds.  See cg_redis_snap.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_name.h"
#include "cg_parse.h"
#include "cg_redis_snap.h"

#include <stdlib.h>


#define NGX_HTTP_CG_REDIS_LOG_MAX     32     /* bad values logged a load */


/* the tables */

ngx_http_cg_snap_entry_t *
ngx_http_cg_snap_find_hash(ngx_http_cg_snap_entry_t **buckets, ngx_uint_t n,
    u_char *name, size_t len, uint32_t hash)
{
    ngx_http_cg_snap_entry_t  *e;

    if (n == 0) {
        return NULL;
    }

    for (e = buckets[hash & (n - 1)]; e; e = e->next) {
        if (e->hash == hash && e->name.len == len
            && ngx_memcmp(e->name.data, name, len) == 0)
        {
            return e;
        }
    }

    return NULL;
}


ngx_http_cg_snap_entry_t *
ngx_http_cg_snap_find(ngx_http_cg_snap_entry_t **buckets, ngx_uint_t n,
    u_char *name, size_t len)
{
    return ngx_http_cg_snap_find_hash(buckets, n, name, len,
                                      ngx_crc32_short(name, len));
}


static ngx_http_cg_snap_entry_t *
ngx_http_cg_snap_add(ngx_pool_t *pool, ngx_http_cg_snap_entry_t **buckets,
    ngx_uint_t n, ngx_str_t *name, ngx_str_t *value)
{
    ngx_http_cg_snap_entry_t  *e;

    e = ngx_pcalloc(pool, sizeof(ngx_http_cg_snap_entry_t));
    if (e == NULL) {
        return NULL;
    }

    e->name.data = ngx_pstrdup(pool, name);
    e->value.data = ngx_pstrdup(pool, value);
    if (e->name.data == NULL || (value->len && e->value.data == NULL)) {
        return NULL;
    }

    e->name.len = name->len;
    e->value.len = value->len;
    e->hash = ngx_crc32_short(name->data, name->len);

    e->next = buckets[e->hash & (n - 1)];
    buckets[e->hash & (n - 1)] = e;

    return e;
}


static ngx_uint_t
ngx_http_cg_snap_size(ngx_uint_t n)
{
    ngx_uint_t  size;

    for (size = 16; size < n; size <<= 1) { /* void */ }

    return size;
}


/*
 * A bad value is logged once, not again while it stays: the snapshot keeps
 * a hash of every bad (key, field, value) it met, however many, and a
 * load logs those the snapshot in force lacks, up to
 * NGX_HTTP_CG_REDIS_LOG_MAX lines, and then one line with how many more.
 */

static uint32_t
ngx_http_cg_snap_bad_hash(ngx_str_t *key, ngx_str_t *field, ngx_str_t *value)
{
    uint32_t  crc;

    ngx_crc32_init(crc);
    ngx_crc32_update(&crc, key->data, key->len);
    ngx_crc32_update(&crc, (u_char *) "", 1);
    ngx_crc32_update(&crc, field->data, field->len);
    ngx_crc32_update(&crc, (u_char *) "", 1);
    ngx_crc32_update(&crc, value->data, value->len);
    ngx_crc32_final(crc);

    return crc;
}


static int ngx_libc_cdecl
ngx_http_cg_snap_bad_cmp(const void *a, const void *b)
{
    uint32_t  x = *(const uint32_t *) a, y = *(const uint32_t *) b;

    return (x > y) - (x < y);
}


static ngx_uint_t
ngx_http_cg_snap_bad_known(ngx_http_cg_snap_t *old, uint32_t hash)
{
    uint32_t  *h;

    if (old == NULL || old->bad.nelts == 0) {
        return 0;
    }

    h = old->bad.elts;

    return bsearch(&hash, h, old->bad.nelts, sizeof(uint32_t),
                   ngx_http_cg_snap_bad_cmp)
           != NULL;
}


static ngx_int_t
ngx_http_cg_snap_error(ngx_http_cg_snap_t *snap, ngx_str_t *key,
    ngx_str_t *field, ngx_str_t *value, const char *error)
{
    u_char                     *p, k[4 * 64 + CG_ESCAPE_MIN],
                                f[4 * 64 + CG_ESCAPE_MIN],
                                v[4 * 64 + CG_ESCAPE_MIN], *ke, *fe, *ve;
    uint32_t                   *h, hash;
    ngx_str_t                   cut;
    ngx_http_cg_redis_error_t  *e;

    cut = *value;
    if (cut.len > 128) {
        cut.len = 128;
    }

    hash = ngx_http_cg_snap_bad_hash(key, field, &cut);

    h = ngx_array_push(&snap->bad);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = hash;

    /* logged once: not again while the same bad value stays */

    if (ngx_worker == 0 && !ngx_http_cg_snap_bad_known(snap->prev, hash))
    {
        if (snap->logged < NGX_HTTP_CG_REDIS_LOG_MAX) {

            /* Redis's text is anybody's: nothing in it forges a line */

            ke = cg_escape(k, sizeof(k), key->data, key->len);
            fe = cg_escape(f, sizeof(f), field->data, field->len);
            ve = cg_escape(v, sizeof(v), cut.data, cut.len);

            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "client guard: bad data in redis key \"%*s\" "
                          "field \"%*s\" value \"%*s\": %s; the last good "
                          "definition stays", ke - k, k, fe - f, f, ve - v, v,
                          error);

        }

        snap->logged++;
    }

    if (snap->errors.nelts >= NGX_HTTP_CG_REDIS_ERRORS_MAX) {
        return NGX_OK;
    }

    e = ngx_array_push(&snap->errors);
    if (e == NULL) {
        return NGX_ERROR;
    }

    e->key.data = ngx_pstrdup(snap->pool, key);
    e->field.data = ngx_pstrdup(snap->pool, field);
    e->value.data = ngx_pstrdup(snap->pool, &cut);

    p = ngx_pnalloc(snap->pool, ngx_strlen(error));
    if (e->key.data == NULL || e->field.data == NULL || p == NULL
        || (cut.len && e->value.data == NULL))
    {
        return NGX_ERROR;
    }

    e->key.len = key->len;
    e->field.len = field->len;
    e->value.len = cut.len;
    e->error.len = ngx_strlen(error);
    e->error.data = p;
    ngx_memcpy(p, error, e->error.len);

    return NGX_OK;
}


/*
 * The client name "src" (the field or the value of a hash pair), into
 * "buf": NGX_DECLINED when it is no valid name (the pair is reported and
 * skipped), NGX_ERROR when even that fails.
 */

static ngx_int_t
ngx_http_cg_snap_name(ngx_http_cg_snap_t *snap, ngx_str_t *key,
    ngx_str_t *field, ngx_str_t *value, ngx_str_t *src, u_char *buf,
    ngx_str_t *name)
{
    int  len;

    len = cg_name_normalize(buf, src->data, src->len, CG_NAME_MAX);

    if (len >= 0) {
        name->data = buf;
        name->len = len;
        return NGX_OK;
    }

    if (ngx_http_cg_snap_error(snap, key, field, value,
                               "invalid client name")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_DECLINED;
}


ngx_http_cg_snap_t *
ngx_http_cg_snap_create(ngx_http_cg_snap_t *prev)
{
    ngx_pool_t          *pool;
    ngx_http_cg_snap_t  *snap;

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    snap = ngx_pcalloc(pool, sizeof(ngx_http_cg_snap_t));
    if (snap == NULL
        || ngx_array_init(&snap->errors, pool, 4,
                          sizeof(ngx_http_cg_redis_error_t))
           != NGX_OK
        || ngx_array_init(&snap->bad, pool, 16, sizeof(uint32_t)) != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return NULL;
    }

    snap->pool = pool;
    snap->prev = prev;

    return snap;
}


/* copies a section of the old snapshot when Redis gave nothing usable */

static ngx_int_t
ngx_http_cg_snap_copy(ngx_http_cg_snap_t *snap, ngx_uint_t keys)
{
    ngx_uint_t                 i, n;
    ngx_http_cg_snap_t        *prev;
    ngx_http_cg_snap_entry_t  *e, *ne, **buckets, **old;

    prev = snap->prev;

    n = 16;
    if (prev) {
        n = keys ? prev->nkeys : prev->nquotas;
        n = n ? n : 16;
    }

    buckets = ngx_pcalloc(snap->pool, n * sizeof(ngx_http_cg_snap_entry_t *));
    if (buckets == NULL) {
        return NGX_ERROR;
    }

    if (keys) {
        snap->keys = buckets;
        snap->nkeys = n;

    } else {
        snap->quotas = buckets;
        snap->nquotas = n;
    }

    if (prev == NULL) {
        return NGX_OK;
    }

    old = keys ? prev->keys : prev->quotas;

    for (i = 0; old && i < n; i++) {
        for (e = old[i]; e; e = e->next) {
            ne = ngx_http_cg_snap_add(snap->pool, buckets, n, &e->name,
                                      &e->value);
            if (ne == NULL) {
                return NGX_ERROR;
            }

            ne->quota = e->quota;

            if (!keys && e == prev->dflt) {
                snap->dflt = ne;
            }
        }
    }

    return NGX_OK;
}


/*
 * The field and value of pair i of a hash reply; NGX_DECLINED unless both
 * are strings.
 */

static ngx_int_t
ngx_http_cg_hash_pair(redisReply *reply, ngx_uint_t i, ngx_str_t *field,
    ngx_str_t *value)
{
    const u_char  *f, *v;

    if (cg_reply_pair(reply, i, &f, &field->len, &v, &value->len) != 1) {
        return NGX_DECLINED;
    }

    field->data = (u_char *) f;
    value->data = (u_char *) v;

    return NGX_OK;
}


/*
 * The start of a hash reply for the snapshot being built ("keys": the API
 * keys' section, else the quotas'): NGX_OK with its empty table, sized
 * for its pairs, to fill; NGX_DONE when it is no hash (reported, and the
 * section of the snapshot in force kept); NGX_ERROR.
 */

static ngx_int_t
ngx_http_cg_snap_section(ngx_http_cg_snap_t *snap, redisReply *reply,
    ngx_str_t *key, ngx_uint_t keys, ngx_uint_t *n)
{
    ngx_str_t                  value, empty;
    ngx_http_cg_snap_entry_t **table;

    if (reply->type != REDIS_REPLY_ARRAY) {
        ngx_str_null(&empty);
        value.data = (u_char *) (reply->type == REDIS_REPLY_ERROR
                                 ? reply->str : "");
        value.len = reply->type == REDIS_REPLY_ERROR ? reply->len : 0;

        (void) ngx_http_cg_snap_error(snap, key, &empty, &value,
                                      "not a hash");

        return ngx_http_cg_snap_copy(snap, keys) == NGX_OK ? NGX_DONE
                                                           : NGX_ERROR;
    }

    *n = ngx_http_cg_snap_size(reply->elements / 2 * 2);

    table = ngx_pcalloc(snap->pool, *n * sizeof(ngx_http_cg_snap_entry_t *));
    if (table == NULL) {
        return NGX_ERROR;
    }

    if (keys) {
        snap->keys = table;
        snap->nkeys = *n;

    } else {
        snap->quotas = table;
        snap->nquotas = *n;
    }

    return NGX_OK;
}


/* the pairs of HGETALL {prefix}quotas: a client's name, its definition */

static ngx_int_t
ngx_http_cg_snap_quotas(ngx_http_cg_snap_t *snap, redisReply *reply,
    ngx_str_t *key, ngx_uint_t n)
{
    u_char                     name[CG_NAME_MAX];
    ngx_int_t                  rc;
    ngx_str_t                  field, value, nm;
    ngx_uint_t                 i;
    cg_quota_t                 q;
    const char                *err;
    ngx_http_cg_snap_t        *prev;
    ngx_http_cg_snap_entry_t  *e, *old;

    prev = snap->prev;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        if (ngx_http_cg_hash_pair(reply, i, &field, &value) != NGX_OK) {
            continue;
        }

        rc = ngx_http_cg_snap_name(snap, key, &field, &value, &field, name,
                                   &nm);

        if (rc == NGX_DECLINED) {
            continue;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        err = cg_parse_quota(&q, value.data, value.len);

        if (err) {
            if (ngx_http_cg_snap_error(snap, key, &field, &value, err)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            /* the last good definition stays */

            old = prev ? ngx_http_cg_snap_find(prev->quotas, prev->nquotas,
                                               nm.data, nm.len)
                       : NULL;
            if (old == NULL) {
                continue;
            }

            q = old->quota;
            value = old->value;
        }

        e = ngx_http_cg_snap_find(snap->quotas, n, nm.data, nm.len);
        if (e == NULL) {
            e = ngx_http_cg_snap_add(snap->pool, snap->quotas, n, &nm,
                                     &value);
            if (e == NULL) {
                return NGX_ERROR;
            }
        }

        e->quota = q;

        if (nm.len == 7 && ngx_strncmp(nm.data, "default", 7) == 0) {
            snap->dflt = e;
        }
    }

    return NGX_OK;
}


/* the pairs of HGETALL {prefix}apikeys: a key's hex SHA-256, its client */

static ngx_int_t
ngx_http_cg_snap_keys(ngx_http_cg_snap_t *snap, redisReply *reply,
    ngx_str_t *key, ngx_uint_t n)
{
    u_char      name[CG_NAME_MAX];
    ngx_int_t   rc;
    ngx_str_t   field, value, nm;
    ngx_uint_t  i;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        if (ngx_http_cg_hash_pair(reply, i, &field, &value) != NGX_OK) {
            continue;
        }

        if (cg_parse_api_key(field.data, field.len) != 0) {
            if (ngx_http_cg_snap_error(snap, key, &field, &value,
                                       "not a lowercase hex SHA-256")
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            continue;
        }

        rc = ngx_http_cg_snap_name(snap, key, &field, &value, &value, name,
                                   &nm);

        if (rc == NGX_DECLINED) {
            continue;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        if (ngx_http_cg_snap_find(snap->keys, n, field.data, field.len)) {
            continue;
        }

        if (ngx_http_cg_snap_add(snap->pool, snap->keys, n, &field, &nm)
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_cg_snap_hash(ngx_http_cg_snap_t *snap, redisReply *reply,
    ngx_str_t *key, ngx_uint_t keys)
{
    ngx_int_t   rc;
    ngx_uint_t  n;

    rc = ngx_http_cg_snap_section(snap, reply, key, keys, &n);

    if (rc != NGX_OK) {
        return rc;
    }

    return keys ? ngx_http_cg_snap_keys(snap, reply, key, n)
                : ngx_http_cg_snap_quotas(snap, reply, key, n);
}


void
ngx_http_cg_snap_version(ngx_http_cg_snap_t *snap, redisReply *reply,
    ngx_str_t *key)
{
    ngx_int_t  n;
    ngx_str_t  value, empty;

    ngx_str_null(&empty);

    /*
     * no version key, where the snapshot in force had one: Redis lost the
     * definitions (a restart without persistence, a failover to an empty
     * replica), not an operator (who bumps the version with a change)
     */

    if (reply->type == REDIS_REPLY_NIL && snap->prev && snap->prev->version
        && snap->prev->version != (uint64_t) -1)
    {
        snap->lost = 1;
    }

    if (reply->type == REDIS_REPLY_STRING) {
        n = ngx_atoi((u_char *) reply->str, reply->len);

        if (n == NGX_ERROR) {
            value.data = (u_char *) reply->str;
            value.len = reply->len;

            (void) ngx_http_cg_snap_error(snap, key, &empty, &value,
                                          "not a number");

            snap->version = (uint64_t) -1;

        } else {
            snap->version = n;
        }

    } else if (reply->type != REDIS_REPLY_NIL) {

        /* a hash or a list where the version should be (WRONGTYPE) */

        value.data = (u_char *) (reply->type == REDIS_REPLY_ERROR
                                 ? reply->str : "");
        value.len = (reply->type == REDIS_REPLY_ERROR) ? reply->len : 0;

        (void) ngx_http_cg_snap_error(snap, key, &empty, &value,
                                      "not a string (a number of the "
                                      "quotas' version is expected)");

        snap->version = (uint64_t) -1;
    }
}


void
ngx_http_cg_snap_done(ngx_http_cg_snap_t *snap)
{
    snap->prev = NULL;

    if (snap->bad.nelts > 1) {
        qsort(snap->bad.elts, snap->bad.nelts, sizeof(uint32_t),
              ngx_http_cg_snap_bad_cmp);
    }

    if (snap->logged > NGX_HTTP_CG_REDIS_LOG_MAX) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "client guard: %ui more bad values in redis, not "
                      "logged one by one (%ui bad in all; the status's "
                      "\"quota_errors\" lists the first %d)",
                      snap->logged - NGX_HTTP_CG_REDIS_LOG_MAX,
                      snap->bad.nelts, NGX_HTTP_CG_REDIS_ERRORS_MAX);
    }
}
