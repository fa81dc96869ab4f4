
/*
 * Copyright (C) client guard authors
 *
 * The quotas of the configuration.  See cg_quota.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_name.h"
#include "cg_parse.h"
#include "cg_quota.h"


ngx_int_t
ngx_http_cg_quota_table_init(ngx_conf_t *cf, ngx_http_cg_quota_table_t *qt)
{
    qt->dflt = NULL;

    return ngx_array_init(&qt->defs, cf->pool, 8,
                          sizeof(ngx_http_cg_quota_def_t));
}


char *
ngx_http_cg_quota_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_quota_table_t  *qt = (void *) ((char *) conf + cmd->offset);

    int                       len;
    u_char                   *p, name[CG_NAME_MAX];
    ngx_str_t                *value;
    ngx_uint_t                i;
    const char               *err;
    ngx_http_cg_quota_def_t  *def;

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

    def = qt->defs.elts;

    for (i = 0; i < qt->defs.nelts; i++) {
        if (def[i].name.len == (size_t) len
            && ngx_memcmp(def[i].name.data, name, len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate quota for client \"%*s\"",
                               (size_t) len, name);
            return NGX_CONF_ERROR;
        }
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(p, name, len);

    def = ngx_array_push(&qt->defs);
    if (def == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(def, sizeof(ngx_http_cg_quota_def_t));
    def->name.data = p;
    def->name.len = len;

    for (i = 2; i < cf->args->nelts; i++) {
        err = cg_parse_quota_arg(&def->quota, value[i].data, value[i].len);

        if (err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s: \"%V\" in \"%V\" for client \"%V\"",
                               err, &value[i], &value[0], &def->name);
            return NGX_CONF_ERROR;
        }
    }

    err = cg_quota_validate(&def->quota);

    if (err) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in \"%V\" for client "
                           "\"%V\"", err, &value[0], &def->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_cg_quota_table_done(ngx_conf_t *cf, ngx_http_cg_quota_table_t *qt)
{
    u_char                    *p;
    ngx_uint_t                 i, n;
    ngx_http_cg_quota_def_t   *def, **b;

    /*
     * the array no longer grows: pointers into it are stable from here;
     * buckets by the name's CRC32, the hash the zone uses for the client
     * (computed once per request), at least twice as many as quotas
     */

    for (n = 16; n < 2 * qt->defs.nelts; n <<= 1) { /* void */ }

    qt->buckets = ngx_pcalloc(cf->pool, n * sizeof(ngx_http_cg_quota_def_t *));
    if (qt->buckets == NULL) {
        return NGX_ERROR;
    }

    qt->mask = n - 1;

    def = qt->defs.elts;

    for (i = 0; i < qt->defs.nelts; i++) {
        def[i].hash = ngx_crc32_long(def[i].name.data, def[i].name.len);

        b = &qt->buckets[def[i].hash & qt->mask];
        def[i].next = *b;
        *b = &def[i];

        if (def[i].name.len == 7
            && ngx_strncmp(def[i].name.data, "default", 7) == 0)
        {
            qt->dflt = &def[i];
        }

        /* RateLimit-Policy values, made once */

        if (def[i].quota.nlimits == 0) {
            continue;
        }

        p = ngx_pnalloc(cf->pool, cg_quota_policy_len(&def[i].quota));
        if (p == NULL) {
            return NGX_ERROR;
        }

        def[i].policy.data = p;
        def[i].policy.len = cg_quota_policy_print(p, &def[i].quota) - p;
    }

    return NGX_OK;
}
