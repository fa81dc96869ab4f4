
/*
 * Copyright (C) client guard authors
 *
 * cg_identity: who is calling.
 *
 * Owns: the identification rules (client_guard_identify,
 * client_guard_identify_address, client_guard_identify_api_key) and the
 * fallback name, their parsing at configuration time, and their evaluation
 * for a request: rules in order, the first that yields a value decides
 * (or an API key present but unknown: then no rule after it), and the
 * value is normalised by cg_name_normalize (cg_name.h).
 */


#ifndef _CG_IDENTITY_H_INCLUDED_
#define _CG_IDENTITY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_HTTP_CG_RULE_VALUE     0    /* a variable, as it is */
#define NGX_HTTP_CG_RULE_REGEX     1    /* a variable through a regex */
#define NGX_HTTP_CG_RULE_ADDRESS   2    /* client address in CIDR blocks */
#define NGX_HTTP_CG_RULE_API_KEY   3    /* a key in the Redis key table */


/* why a request has no valid client name */

#define NGX_HTTP_CG_ID_OK          0
#define NGX_HTTP_CG_ID_MISSING     1    /* no rule yielded a value */
#define NGX_HTTP_CG_ID_INVALID     2    /* a value that is no valid name */
#define NGX_HTTP_CG_ID_UNKNOWN_KEY 3    /* an API key the table lacks */
#define NGX_HTTP_CG_ID_NREASONS    4


typedef struct {
    ngx_uint_t                  type;
    ngx_http_complex_value_t    source;
    ngx_int_t                   index;     /* source is "$var" alone, or
                                              NGX_ERROR */
    ngx_str_t                   header;    /* "$http_name": "name" */
    u_char                     *dashed;    /* "name" with "-" for "_" */
    ngx_uint_t                  hash;      /* of "dashed", as nginx's */
    ngx_uint_t                  direct;    /* header read directly: 0 not
                                              checked yet, 1 yes, 2 no */
    ngx_http_complex_value_t    name;
#if (NGX_PCRE)
    ngx_http_regex_t           *regex;
#endif
    ngx_array_t                *cidrs;     /* ngx_cidr_t */
    ngx_int_t                   unknown;   /* API_KEY: the status of an
                                              unknown key, 0: fallback */
} ngx_http_cg_rule_t;


/*
 * client_guard_identify, client_guard_identify_address and
 * client_guard_identify_api_key add a rule to the array at cmd->offset of
 * the configuration; client_guard_fallback sets the name at cmd->offset
 * ("off": empty).
 */
char *ngx_http_cg_identify_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_cg_identify_address_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_cg_identify_api_key_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_cg_fallback_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/*
 * Runs the rules; on NGX_HTTP_CG_ID_OK "name" holds the normalised name in
 * r->pool.  The value that was rejected is left in "raw" for the log (an
 * API key is never: it stays empty).  An API key that is present but
 * unknown ends the rules (NGX_HTTP_CG_ID_UNKNOWN_KEY): no later rule may
 * claim the request; "*status" is then the rule's status for it (0: the
 * fallback), and is left alone otherwise.  Returns a reason, or NGX_ERROR.
 */
ngx_int_t ngx_http_cg_identify(ngx_http_request_t *r, ngx_array_t *rules,
    size_t max_len, ngx_str_t *name, ngx_str_t *raw, ngx_int_t *status);


#endif /* _CG_IDENTITY_H_INCLUDED_ */
