
/*
 * Copyright (C) client guard authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_parse.h"
#include "cg_quota.h"


ngx_int_t
ngx_http_cg_quota_table_init(ngx_conf_t *cf, ngx_http_cg_quota_table_t *qt)
{
    qt->dflt = NULL;

    return ngx_array_init(&qt->quotas, cf->pool, 8,
                          sizeof(ngx_http_cg_quota_t));
}


char *
ngx_http_cg_quota_directive(ngx_conf_t *cf, ngx_http_cg_quota_table_t *qt)
{
    u_char               *p;
    ngx_str_t            *value;
    ngx_uint_t            i;
    const char           *err;
    ngx_http_cg_quota_t  *q;
    u_char                name[CG_NAME_MAX];
    int                   len;

    value = cf->args->elts;

    len = cg_name_normalize(name, value[1].data, value[1].len, CG_NAME_MAX);

    if (len < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid client name \"%V\" in \"%V\": "
                           "letters, digits and \"-_.:@\" only, "
                           "at most %d characters",
                           &value[1], &value[0], CG_NAME_MAX);
        return NGX_CONF_ERROR;
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(p, name, len);
    value[1].data = p;
    value[1].len = len;

    if (ngx_http_cg_quota_lookup(qt, &value[1]) != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate quota for client \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    q = ngx_array_push(&qt->quotas);
    if (q == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(q, sizeof(ngx_http_cg_quota_t));
    q->name = value[1];

    for (i = 2; i < cf->args->nelts; i++) {
        err = cg_parse_quota_arg(&q->quota, value[i].data, value[i].len);

        if (err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s: \"%V\" in \"%V\" for client \"%V\"",
                               err, &value[i], &value[0], &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    err = cg_quota_validate(&q->quota);

    if (err) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in \"%V\" for client "
                           "\"%V\"", err, &value[0], &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_cg_quota_table_done(ngx_conf_t *cf, ngx_http_cg_quota_table_t *qt)
{
    ngx_str_t             dflt = ngx_string("default");
    ngx_uint_t            i;
    ngx_array_t           keys;
    ngx_hash_key_t       *k;
    ngx_hash_init_t       hinit;
    ngx_http_cg_quota_t  *q;

    /* the array no longer grows: pointers into it are stable from here */

    if (ngx_array_init(&keys, cf->temp_pool, qt->quotas.nelts + 1,
                       sizeof(ngx_hash_key_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    q = qt->quotas.elts;

    for (i = 0; i < qt->quotas.nelts; i++) {
        k = ngx_array_push(&keys);
        if (k == NULL) {
            return NGX_ERROR;
        }

        k->key = q[i].name;
        k->key_hash = ngx_hash_key(q[i].name.data, q[i].name.len);
        k->value = &q[i];
    }

    hinit.hash = &qt->hash;
    hinit.key = ngx_hash_key;
    hinit.max_size = 8192;
    hinit.bucket_size = ngx_align(64 + CG_NAME_MAX, ngx_cacheline_size);
    hinit.name = "client_guard_quota_hash";
    hinit.pool = cf->pool;
    hinit.temp_pool = NULL;

    if (ngx_hash_init(&hinit, keys.elts, keys.nelts) != NGX_OK) {
        return NGX_ERROR;
    }

    qt->dflt = ngx_http_cg_quota_lookup(qt, &dflt);

    return NGX_OK;
}


ngx_http_cg_quota_t *
ngx_http_cg_quota_lookup(ngx_http_cg_quota_table_t *qt, ngx_str_t *name)
{
    ngx_uint_t            i;
    ngx_http_cg_quota_t  *q;

    if (qt->hash.buckets) {
        return ngx_hash_find(&qt->hash, ngx_hash_key(name->data, name->len),
                             name->data, name->len);
    }

    /* while the configuration is read */

    q = qt->quotas.elts;

    for (i = 0; i < qt->quotas.nelts; i++) {
        if (q[i].name.len == name->len
            && ngx_memcmp(q[i].name.data, name->data, name->len) == 0)
        {
            return &q[i];
        }
    }

    return NULL;
}


ngx_http_cg_quota_t *
ngx_http_cg_quota_find(ngx_http_cg_quota_table_t *qt, ngx_str_t *name)
{
    ngx_http_cg_quota_t  *q;

    q = ngx_http_cg_quota_lookup(qt, name);

    return q ? q : qt->dflt;
}


u_char *
ngx_http_cg_limit_print(u_char *buf, u_char *last, const cg_limit_t *lim)
{
    u_char  unit;

    switch (lim->period) {
    case 1000:
        unit = 's';
        break;
    case 60 * 1000:
        unit = 'm';
        break;
    case 3600 * 1000:
        unit = 'h';
        break;
    default:
        unit = 'd';
        break;
    }

    if (lim->type == CG_LIMIT_RATE) {
        return ngx_slprintf(buf, last, "rate=%uLr/%c burst=%uL",
                            lim->count, unit, lim->burst);
    }

    return ngx_slprintf(buf, last, "quota=%uL/%c", lim->count, unit);
}
