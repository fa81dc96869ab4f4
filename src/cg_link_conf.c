
/*
 * Copyright (C) client guard authors
 *
 * cg_link_conf: the client_guard_redis directive (see cg_link_conf.h).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_link_conf.h"
#include "cg_link_tls.h"


static ngx_int_t
ngx_http_cg_link_msec(ngx_conf_t *cf, ngx_str_t *name, u_char *p,
    size_t len, ngx_msec_t *ms)
{
    ngx_str_t  s;

    s.data = p;
    s.len = len;

    *ms = ngx_parse_time(&s, 0);

    if (*ms == (ngx_msec_t) NGX_ERROR || *ms == 0 || *ms > 60000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid %V \"%V\" in \"client_guard_redis\", "
                           "expected a time from 1ms to 60s", name, &s);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cg_link_server(ngx_conf_t *cf, ngx_http_cg_link_conf_t *conf,
    ngx_str_t *value)
{
    ngx_url_t                   u;
    ngx_http_cg_link_server_t  *srv;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *value;
    u.default_port = (conf->mode == NGX_HTTP_CG_LINK_SENTINEL) ? 26379 : 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"client_guard_redis\""
                           "%s%s", value, u.err ? ": " : "",
                           u.err ? u.err : "");
        return NGX_ERROR;
    }

    if (u.uri.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"client_guard_redis\""
                           ": no path allowed", value);
        return NGX_ERROR;
    }

    srv = ngx_array_push(&conf->servers);
    if (srv == NULL) {
        return NGX_ERROR;
    }

    srv->name = *value;
    srv->host = u.host;
    srv->port = u.port;
    srv->addrs = u.addrs;
    srv->naddrs = u.naddrs;
    srv->literal = (u.family == AF_UNIX
                    || ngx_inet_addr(u.host.data, u.host.len) != INADDR_NONE);

#if (NGX_HAVE_INET6)
    if (u.host.len > 2 && u.host.data[0] == '[') {
        srv->literal = 1;
    }
#endif

    return NGX_OK;
}


char *
ngx_http_cg_link_directive(ngx_conf_t *cf, ngx_http_cg_link_conf_t **rcf)
{
    char                       *rv;
    u_char                     *p;
    size_t                      n;
    ngx_int_t                   db;
    ngx_str_t                  *value, s, name;
    ngx_uint_t                  i, naddrs;
    ngx_http_cg_link_conf_t    *conf;
    ngx_http_cg_link_server_t  *srv;

    if (*rcf != NULL) {
        return "is duplicate";
    }

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cg_link_conf_t));
    if (conf == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_array_init(&conf->servers, cf->pool, 3,
                       sizeof(ngx_http_cg_link_server_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    ngx_str_set(&conf->prefix, "cg:");
    conf->connect_timeout = 200;
    conf->timeout = 100;
    conf->tls_verify = 1;

    /* the addresses come first: every word up to the first parameter */

    for (naddrs = 1; naddrs < cf->args->nelts; naddrs++) {
        if (ngx_strchr(value[naddrs].data, '=') != NULL
            || ngx_strcmp(value[naddrs].data, "cluster") == 0
            || ngx_strcmp(value[naddrs].data, "tls") == 0)
        {
            break;
        }
    }

    for (i = naddrs; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "cluster") == 0) {
            if (conf->mode != NGX_HTTP_CG_LINK_SINGLE) {
                goto invalid;
            }

            conf->mode = NGX_HTTP_CG_LINK_CLUSTER;
            continue;
        }

        if (ngx_strcmp(value[i].data, "tls") == 0) {
            conf->tls = 1;
            continue;
        }

        p = (u_char *) ngx_strchr(value[i].data, '=');

        if (p == NULL) {
            goto invalid;
        }

        name.data = value[i].data;
        name.len = p - value[i].data;
        s.data = p + 1;
        s.len = value[i].len - name.len - 1;

        if (name.len == 8 && ngx_strncmp(name.data, "password", 8) == 0) {
            if (s.len == 0) {
                goto invalid;
            }

            conf->password = s;
            continue;
        }

        if (name.len == 4 && ngx_strncmp(name.data, "user", 4) == 0) {
            if (s.len == 0) {
                goto invalid;
            }

            conf->user = s;
            continue;
        }

        if (name.len == 17
            && ngx_strncmp(name.data, "sentinel_password", 17) == 0)
        {
            if (s.len == 0) {
                goto invalid;
            }

            conf->sentinel_password = s;
            continue;
        }

        if (name.len == 13
            && ngx_strncmp(name.data, "sentinel_user", 13) == 0)
        {
            if (s.len == 0) {
                goto invalid;
            }

            conf->sentinel_user = s;
            continue;
        }

        if (name.len == 8 && ngx_strncmp(name.data, "sentinel", 8) == 0) {
            if (s.len == 0 || conf->mode != NGX_HTTP_CG_LINK_SINGLE) {
                goto invalid;
            }

            conf->mode = NGX_HTTP_CG_LINK_SENTINEL;
            conf->master = s;
            continue;
        }

        if (name.len == 2 && ngx_strncmp(name.data, "db", 2) == 0) {
            db = ngx_atoi(s.data, s.len);
            if (db == NGX_ERROR || db > 65535) {
                goto invalid;
            }

            conf->db = db;
            continue;
        }

        if (name.len == 6 && ngx_strncmp(name.data, "prefix", 6) == 0) {
            for (n = 0; n < s.len; n++) {
                if (s.data[n] <= 0x20 || s.data[n] >= 0x7f
                    || s.data[n] == '{' || s.data[n] == '}')
                {
                    goto invalid;
                }
            }

            if (s.len > 64) {
                goto invalid;
            }

            conf->prefix = s;
            continue;
        }

        if (name.len == 15
            && ngx_strncmp(name.data, "connect_timeout", 15) == 0)
        {
            if (ngx_http_cg_link_msec(cf, &name, s.data, s.len,
                                       &conf->connect_timeout)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (name.len == 7 && ngx_strncmp(name.data, "timeout", 7) == 0) {
            if (ngx_http_cg_link_msec(cf, &name, s.data, s.len,
                                       &conf->timeout)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (name.len > 4 && ngx_strncmp(name.data, "tls_", 4) == 0) {
            if (s.len == 0) {
                goto invalid;
            }

            if (name.len == 6 && ngx_strncmp(name.data, "tls_ca", 6) == 0) {
                conf->tls_ca = s;

            } else if (name.len == 8
                       && ngx_strncmp(name.data, "tls_cert", 8) == 0)
            {
                conf->tls_cert = s;

            } else if (name.len == 7
                       && ngx_strncmp(name.data, "tls_key", 7) == 0)
            {
                conf->tls_key = s;

            } else if (name.len == 8
                       && ngx_strncmp(name.data, "tls_name", 8) == 0)
            {
                conf->tls_name = s;

            } else if (name.len == 10
                       && ngx_strncmp(name.data, "tls_verify", 10) == 0)
            {
                if (s.len == 2 && ngx_strncmp(s.data, "on", 2) == 0) {
                    conf->tls_verify = 1;

                } else if (s.len == 3 && ngx_strncmp(s.data, "off", 3) == 0)
                {
                    conf->tls_verify = 0;

                } else {
                    goto invalid;
                }

            } else {
                goto invalid;
            }

            conf->tls = 1;
            continue;
        }

        goto invalid;
    }

    if (naddrs == 1) {
        return "needs an address";
    }

    for (i = 1; i < naddrs; i++) {
        if (ngx_http_cg_link_server(cf, conf, &value[i]) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (conf->servers.nelts > 1 && conf->mode == NGX_HTTP_CG_LINK_SINGLE) {
        return "has several addresses: a Redis Cluster needs \"cluster\", "
               "sentinels need \"sentinel=<master name>\"";
    }

    if (conf->user.len && conf->password.len == 0) {
        return "has \"user=\" without \"password=\"";
    }

    if ((conf->sentinel_user.len || conf->sentinel_password.len)
        && conf->mode != NGX_HTTP_CG_LINK_SENTINEL)
    {
        return "has \"sentinel_user=\" or \"sentinel_password=\" without "
               "\"sentinel=\"";
    }

    if (conf->sentinel_user.len && conf->sentinel_password.len == 0) {
        return "has \"sentinel_user=\" without \"sentinel_password=\"";
    }

    if (conf->mode == NGX_HTTP_CG_LINK_CLUSTER && conf->db) {
        return "has \"db=\" with \"cluster\": a Redis Cluster has only db 0";
    }

    /* filled in by the parts that make them work */

    rv = ngx_http_cg_link_tls_conf(cf, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    srv = conf->servers.elts;
    conf->addr = &srv[0].addrs[0];

    *rcf = conf;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"client_guard_redis\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_http_cg_link_key(ngx_pool_t *pool, ngx_http_cg_link_conf_t *conf,
    ngx_str_t *key, const char *name)
{
    key->len = conf->prefix.len + ngx_strlen(name);

    key->data = ngx_pnalloc(pool, key->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(key->data, "%V%s", &conf->prefix, name);

    return NGX_OK;
}
