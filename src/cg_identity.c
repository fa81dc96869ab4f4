
/*
 * Copyright (C) client guard authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_identity.h"
#include "cg_name.h"
#include "cg_redis_quota.h"


static ngx_int_t ngx_http_cg_rule_value(ngx_http_request_t *r,
    ngx_http_cg_rule_t *rule, ngx_str_t *value);


static ngx_http_cg_rule_t *
ngx_http_cg_rule_add(ngx_conf_t *cf, ngx_array_t **rules)
{
    ngx_http_cg_rule_t  *rule;

    if (*rules == NULL) {
        *rules = ngx_array_create(cf->pool, 4, sizeof(ngx_http_cg_rule_t));
        if (*rules == NULL) {
            return NULL;
        }
    }

    rule = ngx_array_push(*rules);
    if (rule == NULL) {
        return NULL;
    }

    ngx_memzero(rule, sizeof(ngx_http_cg_rule_t));
    rule->index = NGX_ERROR;

    return rule;
}


static char *
ngx_http_cg_complex(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_complex_value_t *cv)
{
    ngx_http_compile_complex_value_t   ccv;

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * A source that is one variable and nothing else ("$http_x_client_id" or
 * "${http_x_client_id}") is read by its index: the same value as the
 * complex value gives, without the script and the copy.
 */

static char *
ngx_http_cg_source(ngx_conf_t *cf, ngx_str_t *value, ngx_http_cg_rule_t *rule)
{
    u_char     ch;
    size_t     i;
    ngx_str_t  name;

    if (ngx_http_cg_complex(cf, value, &rule->source) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (value->len < 2 || value->data[0] != '$') {
        return NGX_CONF_OK;
    }

    name.data = value->data + 1;
    name.len = value->len - 1;

    if (name.data[0] == '{') {
        if (name.len < 3 || name.data[name.len - 1] != '}') {
            return NGX_CONF_OK;
        }

        name.data++;
        name.len -= 2;
    }

    /* "$1" is a capture */

    if (name.data[0] >= '0' && name.data[0] <= '9') {
        return NGX_CONF_OK;
    }

    for (i = 0; i < name.len; i++) {
        ch = name.data[i];

        if ((ch < 'A' || ch > 'Z') && (ch < 'a' || ch > 'z')
            && (ch < '0' || ch > '9') && ch != '_')
        {
            return NGX_CONF_OK;
        }
    }

    rule->index = ngx_http_get_variable_index(cf, &name);

    if (rule->index == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    if (name.len > sizeof("http_") - 1
        && ngx_strncasecmp(name.data, (u_char *) "http_", 5) == 0)
    {
        rule->header.data = ngx_pnalloc(cf->pool, name.len - 5);
        if (rule->header.data == NULL) {
            return NGX_CONF_ERROR;
        }

        rule->header.len = name.len - 5;
        ngx_strlow(rule->header.data, name.data + 5, rule->header.len);

        rule->dashed = ngx_pnalloc(cf->pool, rule->header.len);
        if (rule->dashed == NULL) {
            return NGX_CONF_ERROR;
        }

        for (i = 0; i < rule->header.len; i++) {
            ch = rule->header.data[i];
            rule->dashed[i] = (ch == '_') ? '-' : ch;
        }

        rule->hash = ngx_hash_key(rule->dashed, rule->header.len);
    }

    return NGX_CONF_OK;
}


/*
 * "$http_name" read without nginx's variable machinery: the first request
 * header whose name, lowercased and with "-" as "_", is "name", as nginx's
 * own handler for such variables finds it.  Only while the variable is
 * that handler's (not a core variable such as $http_host or $http_cookie,
 * not one that "set" or "map" made), which the first request of a worker
 * checks.  A header sent twice goes the slow way where nginx joins the
 * values (1.23.0 on).
 */

static ngx_int_t
ngx_http_cg_header_direct(ngx_http_request_t *r, ngx_http_cg_rule_t *rule)
{
    ngx_str_t                   prefix = ngx_string("http_");
    ngx_uint_t                  i;
    ngx_http_variable_t        *v, *pv;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_core_module);

    v = cmcf->variables.elts;
    pv = cmcf->prefix_variables.elts;

    for (i = 0; i < cmcf->prefix_variables.nelts; i++) {
        if (pv[i].name.len == prefix.len
            && ngx_strncmp(pv[i].name.data, prefix.data, prefix.len) == 0)
        {
            return v[rule->index].get_handler == pv[i].get_handler
                   && v[rule->index].data == (uintptr_t) &v[rule->index].name;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_cg_header_value(ngx_http_request_t *r, ngx_http_cg_rule_t *rule,
    ngx_str_t *value)
{
    u_char                    ch, *name;
    size_t                    len;
    ngx_uint_t                i, n, hashed;
    ngx_list_part_t          *part;
    ngx_table_elt_t          *h;
    ngx_http_core_srv_conf_t *cscf;

    name = rule->header.data;
    len = rule->header.len;

    /*
     * a header name with "_" in it is not in the list unless the server
     * takes such names: then the names are compared byte by byte, else
     * by the hash nginx made of the lowercased name and the name itself
     */

    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);
    hashed = !cscf->underscores_in_headers && cscf->ignore_invalid_headers;

    part = &r->headers_in.headers.part;
    h = part->elts;
    value->data = NULL;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != len || h[i].hash == 0) {
            continue;
        }

        if (hashed) {
            if (h[i].hash != rule->hash
                || ngx_memcmp(h[i].lowcase_key, rule->dashed, len) != 0)
            {
                continue;
            }

            n = len;

        } else {
            n = 0;
        }

        for ( /* void */ ; n < len; n++) {
            ch = h[i].key.data[n];

            if (ch >= 'A' && ch <= 'Z') {
                ch |= 0x20;

            } else if (ch == '-') {
                ch = '_';
            }

            if (name[n] != ch) {
                break;
            }
        }

        if (n < len) {
            continue;
        }

#if (nginx_version >= 1023000)
        if (value->data) {
            return NGX_AGAIN;
        }

        value->data = h[i].value.data;
        value->len = h[i].value.len;
#else
        value->data = h[i].value.data;
        value->len = h[i].value.len;

        return NGX_OK;
#endif
    }

    return value->data ? NGX_OK : NGX_DECLINED;
}


/* client_guard_identify source [regex [name]] */

char *
ngx_http_cg_identify_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_array_t  **rules = (void *) ((char *) conf + cmd->offset);

    ngx_str_t           *value, name;
    ngx_http_cg_rule_t  *rule;
#if (NGX_PCRE)
    u_char               errstr[NGX_MAX_CONF_ERRSTR];
    ngx_regex_compile_t  rc;
#endif

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty source in \"client_guard_identify\"");
        return NGX_CONF_ERROR;
    }

    rule = ngx_http_cg_rule_add(cf, rules);
    if (rule == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_cg_source(cf, &value[1], rule) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 2) {
        rule->type = NGX_HTTP_CG_RULE_VALUE;
        return NGX_CONF_OK;
    }

    if (value[2].len < 2 || value[2].data[0] != '~') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid regex \"%V\" in \"client_guard_identify\""
                           ", expected \"~regex\" or \"~*regex\"",
                           &value[2]);
        return NGX_CONF_ERROR;
    }

#if (NGX_PCRE)

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    rc.pattern.data = value[2].data + 1;
    rc.pattern.len = value[2].len - 1;

    if (rc.pattern.data[0] == '*') {
        rc.pattern.data++;
        rc.pattern.len--;
        rc.options = NGX_REGEX_CASELESS;
    }

    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    rule->regex = ngx_http_regex_compile(cf, &rc);
    if (rule->regex == NULL) {
        return NGX_CONF_ERROR;
    }

    rule->type = NGX_HTTP_CG_RULE_REGEX;

    if (cf->args->nelts == 4) {
        name = value[3];

    } else {
        if (rc.captures == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "regex \"%V\" in \"client_guard_identify\" "
                               "has no capture: give the name as a third "
                               "parameter", &value[2]);
            return NGX_CONF_ERROR;
        }

        ngx_str_set(&name, "$1");
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty name in \"client_guard_identify\"");
        return NGX_CONF_ERROR;
    }

    return ngx_http_cg_complex(cf, &name, &rule->name);

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "using regex \"%V\" requires PCRE library",
                       &value[2]);
    return NGX_CONF_ERROR;

#endif
}


/* client_guard_identify_address cidr... name */

char *
ngx_http_cg_identify_address_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_array_t  **rules = (void *) ((char *) conf + cmd->offset);

    int                  len;
    u_char               buf[CG_NAME_MAX];
    ngx_int_t            rc;
    ngx_str_t           *value, name;
    ngx_uint_t           i;
    ngx_cidr_t          *cidr;
    ngx_http_cg_rule_t  *rule;

    value = cf->args->elts;
    name = value[cf->args->nelts - 1];

    len = cg_name_normalize(buf, name.data, name.len, CG_NAME_MAX);

    if (len < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid client name \"%V\" in "
                           "\"client_guard_identify_address\": letters, "
                           "digits and \"-_.:@\" only, at most %d "
                           "characters", &name, CG_NAME_MAX);
        return NGX_CONF_ERROR;
    }

    rule = ngx_http_cg_rule_add(cf, rules);
    if (rule == NULL) {
        return NGX_CONF_ERROR;
    }

    rule->type = NGX_HTTP_CG_RULE_ADDRESS;

    rule->cidrs = ngx_array_create(cf->pool, cf->args->nelts - 2,
                                   sizeof(ngx_cidr_t));
    if (rule->cidrs == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts - 1; i++) {

        cidr = ngx_array_push(rule->cidrs);
        if (cidr == NULL) {
            return NGX_CONF_ERROR;
        }

        rc = ngx_ptocidr(&value[i], cidr);

        if (rc == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid address \"%V\" in "
                               "\"client_guard_identify_address\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (rc == NGX_DONE) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "low address bits of %V are meaningless",
                               &value[i]);
        }
    }

    /* a literal name is a complex value without variables */

    name.data = ngx_pnalloc(cf->pool, len);
    if (name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(name.data, buf, len);
    name.len = len;

    rule->name.value = name;

    return NGX_CONF_OK;
}


/*
 * client_guard_identify_api_key source [unknown=fallback|status]: the client
 * the key belongs to in the API key table that Redis holds
 * (cg_redis_quota); a key present but unknown ends the rules: the fallback
 * name, or the status given
 */

char *
ngx_http_cg_identify_api_key_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_array_t  **rules = (void *) ((char *) conf + cmd->offset);

    ngx_int_t            status;
    ngx_str_t           *value, s;
    ngx_http_cg_rule_t  *rule;

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "empty source in "
                           "\"client_guard_identify_api_key\"");
        return NGX_CONF_ERROR;
    }

    status = 0;

    if (cf->args->nelts == 3) {

        if (value[2].len <= 8
            || ngx_strncmp(value[2].data, "unknown=", 8) != 0)
        {
            goto invalid;
        }

        s.data = value[2].data + 8;
        s.len = value[2].len - 8;

        if (s.len != 8 || ngx_strncmp(s.data, "fallback", 8) != 0) {
            status = ngx_atoi(s.data, s.len);

            if (status < 400 || status > 499) {
                goto invalid;
            }
        }
    }

    rule = ngx_http_cg_rule_add(cf, rules);
    if (rule == NULL) {
        return NGX_CONF_ERROR;
    }

    rule->type = NGX_HTTP_CG_RULE_API_KEY;
    rule->unknown = status;

    return ngx_http_cg_source(cf, &value[1], rule);

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in "
                       "\"client_guard_identify_api_key\", expected "
                       "\"unknown=fallback\" or \"unknown=\" and a status "
                       "from 400 to 499", &value[2]);
    return NGX_CONF_ERROR;
}


/* client_guard_fallback name | off */

char *
ngx_http_cg_fallback_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t  *fallback = (void *) ((char *) conf + cmd->offset);

    int         len;
    u_char      buf[CG_NAME_MAX];
    ngx_str_t  *value;

    if (fallback->len != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        ngx_str_null(fallback);
        return NGX_CONF_OK;
    }

    len = cg_name_normalize(buf, value[1].data, value[1].len, CG_NAME_MAX);

    if (len < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid client name \"%V\" in "
                           "\"client_guard_fallback\": letters, digits and "
                           "\"-_.:@\" only, at most %d characters",
                           &value[1], CG_NAME_MAX);
        return NGX_CONF_ERROR;
    }

    fallback->data = ngx_pnalloc(cf->pool, len);
    if (fallback->data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(fallback->data, buf, len);
    fallback->len = len;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_cg_rule_value(ngx_http_request_t *r, ngx_http_cg_rule_t *rule,
    ngx_str_t *value)
{
#if (NGX_PCRE)
    int                        *captures;
    u_char                     *captures_data;
    ngx_uint_t                  ncaptures;
#endif
    ngx_int_t                   rc;
    ngx_str_t                   source;
    ngx_http_variable_value_t  *vv;

    if (rule->type == NGX_HTTP_CG_RULE_ADDRESS) {

        if (ngx_cidr_match(r->connection->sockaddr, rule->cidrs) != NGX_OK) {
            return NGX_DECLINED;
        }

        *value = rule->name.value;
        return NGX_OK;
    }

    if (rule->header.len && rule->direct == 0) {
        rule->direct = ngx_http_cg_header_direct(r, rule) ? 1 : 2;
    }

    rc = (rule->direct == 1) ? ngx_http_cg_header_value(r, rule, &source)
                             : NGX_AGAIN;

    if (rc == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    if (rc == NGX_OK) {
        /* found directly */

    } else if (rule->index != NGX_ERROR) {

        /* what the complex value's script does, as it does it */

        vv = ngx_http_get_flushed_variable(r, rule->index);

        if (vv == NULL || vv->not_found) {
            return NGX_DECLINED;
        }

        source.data = vv->data;
        source.len = vv->len;

    } else if (ngx_http_complex_value(r, &rule->source, &source) != NGX_OK) {
        return NGX_ERROR;
    }

    if (source.len == 0) {
        return NGX_DECLINED;
    }

    if (rule->type == NGX_HTTP_CG_RULE_VALUE) {
        *value = source;
        return NGX_OK;
    }

    if (rule->type == NGX_HTTP_CG_RULE_API_KEY) {
        if (ngx_http_cg_redis_api_key(&source, value) == NGX_OK) {
            return NGX_OK;
        }

        /* a key given is a claim made: it is not another rule's to judge */

        return NGX_ABORT;
    }

#if (NGX_PCRE)

    /*
     * the location's own captures ($1 in proxy_pass) must survive: keep
     * them aside while this regex borrows r->captures
     */

    ncaptures = r->ncaptures;
    captures_data = r->captures_data;
    captures = NULL;

    if (ncaptures) {
        captures = ngx_palloc(r->pool, ncaptures * sizeof(int));
        if (captures == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(captures, r->captures, ncaptures * sizeof(int));
    }

    rc = ngx_http_regex_exec(r, rule->regex, &source);

    if (rc == NGX_OK
        && ngx_http_complex_value(r, &rule->name, value) != NGX_OK)
    {
        rc = NGX_ERROR;
    }

    if (ncaptures) {
        ngx_memcpy(r->captures, captures, ncaptures * sizeof(int));
    }

    r->ncaptures = ncaptures;
    r->captures_data = captures_data;

    if (rc == NGX_OK && value->len == 0) {

        /* an empty capture counts as invalid, not as "no match" */

        value->data = source.data;
        value->len = 0;
    }

    return rc;

#else

    return NGX_DECLINED;

#endif
}


ngx_int_t
ngx_http_cg_identify(ngx_http_request_t *r, ngx_array_t *rules,
    size_t max_len, ngx_str_t *name, ngx_str_t *raw, ngx_int_t *status)
{
    int                  len;
    u_char              *p;
    ngx_int_t            rc;
    ngx_str_t            value;
    ngx_uint_t           i;
    ngx_http_cg_rule_t  *rule;

    raw->len = 0;

    if (rules == NULL) {
        return NGX_HTTP_CG_ID_MISSING;
    }

    rule = rules->elts;

    for (i = 0; i < rules->nelts; i++) {

        rc = ngx_http_cg_rule_value(r, &rule[i], &value);

        if (rc == NGX_DECLINED) {
            continue;
        }

        if (rc == NGX_ABORT) {
            *status = rule[i].unknown;
            return NGX_HTTP_CG_ID_UNKNOWN_KEY;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        *raw = value;

        if (value.len == 0 || value.len > max_len) {
            return NGX_HTTP_CG_ID_INVALID;
        }

        p = ngx_pnalloc(r->pool, value.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        len = cg_name_normalize(p, value.data, value.len, max_len);

        if (len < 0) {
            return NGX_HTTP_CG_ID_INVALID;
        }

        name->data = p;
        name->len = len;

        return NGX_HTTP_CG_ID_OK;
    }

    return NGX_HTTP_CG_ID_MISSING;
}
