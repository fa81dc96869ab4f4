
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

    if (ngx_http_cg_quota_lookup(qt, &value[1], 0) != NULL) {
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
    u_char               *p;
    ngx_str_t             dflt = ngx_string("default");
    ngx_uint_t            i, n;
    ngx_http_cg_quota_t  *q, **b;

    /*
     * the array no longer grows: pointers into it are stable from here;
     * buckets by the name's CRC32, the hash the zone uses for the client
     * (computed once per request), at least twice as many as quotas
     */

    for (n = 16; n < 2 * qt->quotas.nelts; n <<= 1) { /* void */ }

    qt->buckets = ngx_pcalloc(cf->pool, n * sizeof(ngx_http_cg_quota_t *));
    if (qt->buckets == NULL) {
        return NGX_ERROR;
    }

    qt->mask = n - 1;

    q = qt->quotas.elts;

    for (i = 0; i < qt->quotas.nelts; i++) {
        q[i].hash = ngx_crc32_long(q[i].name.data, q[i].name.len);

        b = &qt->buckets[q[i].hash & qt->mask];
        q[i].next = *b;
        *b = &q[i];
    }

    qt->dflt = ngx_http_cg_quota_lookup(qt, &dflt,
                                        ngx_crc32_long(dflt.data, dflt.len));

    /* RateLimit-Policy values, made once */

    for (i = 0; i < qt->quotas.nelts; i++) {
        if (q[i].quota.nlimits == 0) {
            continue;
        }

        p = ngx_pnalloc(cf->pool, ngx_http_cg_policy_len(&q[i].quota));
        if (p == NULL) {
            return NGX_ERROR;
        }

        q[i].policy.data = p;
        q[i].policy.len = ngx_http_cg_policy_print(p, &q[i].quota) - p;
    }

    return NGX_OK;
}


ngx_http_cg_quota_t *
ngx_http_cg_quota_lookup(ngx_http_cg_quota_table_t *qt, ngx_str_t *name,
    uint32_t hash)
{
    ngx_uint_t            i;
    ngx_http_cg_quota_t  *q;

    if (qt->buckets) {
        for (q = qt->buckets[hash & qt->mask]; q; q = q->next) {
            if (q->hash == hash && q->name.len == name->len
                && ngx_memcmp(q->name.data, name->data, name->len) == 0)
            {
                return q;
            }
        }

        return NULL;
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


static ngx_str_t *
ngx_http_cg_policy_name(const cg_limit_t *lim)
{
    static ngx_str_t  names[2][4] = {
        { ngx_string("rate_s"), ngx_string("rate_m"),
          ngx_string("rate_h"), ngx_string("rate_d") },
        { ngx_string("quota_s"), ngx_string("quota_m"),
          ngx_string("quota_h"), ngx_string("quota_d") }
    };

    ngx_uint_t  u;

    switch (lim->period) {
    case 1000:
        u = 0;
        break;
    case 60 * 1000:
        u = 1;
        break;
    case 3600 * 1000:
        u = 2;
        break;
    default:
        u = 3;
        break;
    }

    return &names[lim->type == CG_LIMIT_RATE ? 0 : 1][u];
}


/*
 * "%uL" without ngx_sprintf: the RateLimit headers go out with every
 * request.  The length first, then two digits at a time from the end.
 */

u_char *
ngx_http_cg_uint(u_char *p, uint64_t n)
{
    static const u_char  pairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233"
        "34353637383940414243444546474849505152535455565758596061626364656667"
        "6869707172737475767778798081828384858687888990919293949596979899";

    u_char    *e;
    uint64_t   m, i;

    m = n;
    e = p + 1;

    while (m >= 100) {
        m /= 100;
        e += 2;
    }

    if (m >= 10) {
        e++;
    }

    p = e;

    while (n >= 100) {
        i = (n % 100) * 2;
        n /= 100;
        *--p = pairs[i + 1];
        *--p = pairs[i];
    }

    if (n >= 10) {
        *--p = pairs[n * 2 + 1];
        *--p = pairs[n * 2];

    } else {
        *--p = (u_char) ('0' + n);
    }

    return e;
}


/* "name";X= */

u_char *
ngx_http_cg_policy_item(u_char *p, const cg_limit_t *lim, u_char x)
{
    ngx_str_t  *name;

    name = ngx_http_cg_policy_name(lim);

    *p++ = '"';
    p = ngx_cpymem(p, name->data, name->len);
    *p++ = '"';
    *p++ = ';';
    *p++ = x;
    *p++ = '=';

    return p;
}


size_t
ngx_http_cg_policy_len(const cg_quota_t *q)
{
    return q->nlimits * (sizeof("\"quota_s\";q=;w=, ") + 2 * NGX_INT64_LEN);
}


u_char *
ngx_http_cg_policy_print(u_char *p, const cg_quota_t *q)
{
    uint32_t           i;
    const cg_limit_t  *lim;

    for (i = 0; i < q->nlimits; i++) {
        lim = &q->limits[i];

        if (i) {
            *p++ = ',';
            *p++ = ' ';
        }

        p = ngx_http_cg_policy_item(p, lim, 'q');
        p = ngx_http_cg_uint(p, lim->count);
        *p++ = ';';
        *p++ = 'w';
        *p++ = '=';
        p = ngx_http_cg_uint(p, cg_limit_window_sec(lim));
    }

    return p;
}


ngx_str_t *
ngx_http_cg_quota_policy(ngx_http_cg_quota_table_t *qt, const cg_quota_t *q)
{
    ngx_http_cg_quota_t  *first, *cq;

    /* a quota from Redis is not in the table */

    first = qt->quotas.elts;

    if ((u_char *) q < (u_char *) first
        || (u_char *) q >= (u_char *) (first + qt->quotas.nelts))
    {
        return NULL;
    }

    cq = (ngx_http_cg_quota_t *)
             ((u_char *) q - offsetof(ngx_http_cg_quota_t, quota));

    return cq->policy.len ? &cq->policy : NULL;
}
