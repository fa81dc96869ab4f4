
/*
 * Copyright (C) client guard authors
 *
 * cg_link_diag: the server's answers to the link's handshake (see
 * cg_link_diag.h).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_link_diag.h"
#include "cg_parse.h"


#define NGX_HTTP_CG_LINK_TEXT  160    /* of the server's words, at most */


static ngx_int_t ngx_http_cg_link_check_error(ngx_http_cg_link_t *link,
    ngx_uint_t step, redisReply *reply);
static ngx_int_t ngx_http_cg_link_check_hello(ngx_http_cg_link_t *link,
    redisReply *reply);
static ngx_int_t ngx_http_cg_link_check_role(ngx_http_cg_link_t *link,
    redisReply *reply);
static u_char *ngx_http_cg_link_text(u_char *p, u_char *last,
    const char *s, size_t len);
static ngx_uint_t ngx_http_cg_link_is(redisReply *r, const char *s);
static ngx_uint_t ngx_http_cg_link_has(redisReply *r, const char *s);
static ngx_int_t ngx_http_cg_link_refused(ngx_http_cg_link_t *link,
    u_char *cmd, redisReply *reply);
static ngx_uint_t ngx_http_cg_link_acl(redisReply *r);


static const char  ngx_http_cg_link_cluster[] =
    "the server is a Redis Cluster node: add \"cluster\" to "
    "client_guard_redis (the nodes' addresses are its seeds)";


ngx_int_t
ngx_http_cg_link_check(ngx_http_cg_link_t *link, ngx_uint_t step,
    redisReply *reply)
{
    if (reply->type == REDIS_REPLY_ERROR) {
        return ngx_http_cg_link_check_error(link, step, reply);
    }

    switch (step) {

    case NGX_HTTP_CG_LINK_HELLO:
        return ngx_http_cg_link_check_hello(link, reply);

    case NGX_HTTP_CG_LINK_ROLE:
        return ngx_http_cg_link_check_role(link, reply);

    default:
        return NGX_OK;
    }
}


static ngx_int_t
ngx_http_cg_link_check_error(ngx_http_cg_link_t *link, ngx_uint_t step,
    redisReply *reply)
{
    u_char                   *p, *last;
    const char               *cmd, *hint;
    ngx_http_cg_link_conf_t  *conf;

    conf = link->conf;
    hint = NULL;

    switch (step) {

    case NGX_HTTP_CG_LINK_AUTH:
        cmd = "AUTH";

        if (ngx_http_cg_link_is(reply, "WRONGPASS")) {
            hint = conf->user.len
                   ? "a wrong password, or an unknown or disabled user: "
                     "check user= and password="
                   : "a wrong password: check password= (user= for an "
                     "ACL user)";

        } else if (ngx_http_cg_link_has(reply, "without any password")) {
            hint = "the server has no password for this user: remove "
                   "password=, or give the server one (requirepass, ACL)";

        } else if (ngx_http_cg_link_has(reply, "wrong number of arg")
                   && conf->user.len)
        {
            hint = "user= needs Redis 6 or later (ACL users)";

        } else {
            hint = "check user= and password=";
        }

        break;

    case NGX_HTTP_CG_LINK_SELECT:
        cmd = "SELECT";

        if (ngx_http_cg_link_is(reply, "NOPERM")) {
            hint = "the user may not SELECT: give it +select, or leave "
                   "db= out";

        } else {
            hint = "is db= one of the server's databases?";
        }

        break;

    case NGX_HTTP_CG_LINK_HELLO:
        cmd = "HELLO";

        if (ngx_http_cg_link_is(reply, "NOAUTH")) {
            hint = "the server wants a password: add password= (and user= "
                   "for an ACL user)";
            break;
        }

        if (ngx_http_cg_link_has(reply, "unknown command")) {
            /* before Redis 6, or a proxy: not checked */
            return NGX_OK;
        }

        break;

    case NGX_HTTP_CG_LINK_ROLE:
        /* the HELLO said "replica" */
        return ngx_http_cg_link_check_role(link, NULL);

    default:
        cmd = "a command";
        break;
    }

    p = link->error;
    last = link->error + sizeof(link->error) - 1;

    p = ngx_slprintf(p, last, "the handshake was refused: %s%s%V%s: ",
                     cmd, conf->user.len ? " as user \"" : "",
                     &conf->user, conf->user.len ? "\"" : "");
    p = ngx_http_cg_link_text(p, last, reply->str, reply->len);

    if (hint) {
        p = ngx_slprintf(p, last, " (%s)", hint);
    }

    *p = '\0';

    return NGX_ERROR;
}


/* HELLO 2: a flat array of names and values; "mode" and "role" read */

static ngx_int_t
ngx_http_cg_link_check_hello(ngx_http_cg_link_t *link, redisReply *reply)
{
    size_t                    i;
    u_char                   *p, *last;
    redisReply               *k, *v, *mode, *role;
    ngx_http_cg_link_conf_t  *conf;

    conf = link->conf;

    if (link->any_peer || reply->type != REDIS_REPLY_ARRAY) {
        return NGX_OK;
    }

    mode = NULL;
    role = NULL;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        k = reply->element[i];
        v = reply->element[i + 1];

        if (v->type != REDIS_REPLY_STRING && v->type != REDIS_REPLY_STATUS) {
            continue;
        }

        if (ngx_http_cg_link_is(k, "mode") && k->len == 4) {
            mode = v;

        } else if (ngx_http_cg_link_is(k, "role") && k->len == 4) {
            role = v;
        }
    }

    p = link->error;
    last = link->error + sizeof(link->error) - 1;

    if (conf->mode == NGX_HTTP_CG_LINK_CLUSTER) {

        /* a replica among the seeds is fine: it knows the slots too */

        if (mode && !ngx_http_cg_link_is(mode, "cluster")) {
            p = ngx_slprintf(p, last, "the server is not a Redis Cluster "
                             "node (its mode: ");
            p = ngx_http_cg_link_text(p, last, mode->str, mode->len);
            p = ngx_slprintf(p, last, "): remove \"cluster\" from "
                             "client_guard_redis");
            *p = '\0';
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (mode && ngx_http_cg_link_is(mode, "cluster")) {
        ngx_cpystrn(link->error, (u_char *) ngx_http_cg_link_cluster,
                    sizeof(link->error));
        return NGX_ERROR;
    }

    if (mode && ngx_http_cg_link_is(mode, "sentinel")) {

        if (conf->mode == NGX_HTTP_CG_LINK_SENTINEL) {
            return NGX_OK;
        }

        ngx_cpystrn(link->error, (u_char *) "the server is a Redis "
                    "Sentinel: with the sentinels' addresses, "
                    "client_guard_redis needs sentinel=<master name>",
                    sizeof(link->error));
        return NGX_ERROR;
    }

    if (role && (ngx_http_cg_link_is(role, "replica")
                 || ngx_http_cg_link_is(role, "slave")))
    {
        /* an owner that checks the role says what to do (cg_sentinel.c) */
        return link->check ? NGX_OK : NGX_AGAIN;
    }

    return NGX_OK;
}


/* ROLE of a replica: "slave", the primary's host and port, ...; or NULL */

static ngx_int_t
ngx_http_cg_link_check_role(ngx_http_cg_link_t *link, redisReply *reply)
{
    u_char       *p, *last;
    redisReply  **e;

    p = link->error;
    last = link->error + sizeof(link->error) - 1;

    e = (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 3)
        ? reply->element : NULL;

    if (e && e[0]->type == REDIS_REPLY_STRING
        && ngx_http_cg_link_is(e[0], "master") && e[0]->len == 6)
    {
        /* promoted since the HELLO */
        return NGX_OK;
    }

    p = ngx_slprintf(p, last, "the server is a replica");

    if (e && e[0]->type == REDIS_REPLY_STRING
        && e[1]->type == REDIS_REPLY_STRING
        && e[2]->type == REDIS_REPLY_INTEGER)
    {
        p = ngx_slprintf(p, last, " of ");
        p = ngx_http_cg_link_text(p, last, e[1]->str, e[1]->len);
        p = ngx_slprintf(p, last, ":%L", (int64_t) e[2]->integer);
    }

    if (link->conf->mode == NGX_HTTP_CG_LINK_SENTINEL) {
        p = ngx_slprintf(p, last, " (read-only): a failover under way? "
                         "the sentinels are asked again");

    } else {
        p = ngx_slprintf(p, last, " (read-only): point client_guard_redis "
                         "at the primary, or use sentinel=<master name> "
                         "with the sentinels' addresses");
    }

    *p = '\0';

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_cg_link_refused(ngx_http_cg_link_t *link, u_char *cmd,
    redisReply *reply)
{
    size_t       i;
    u_char      *p, *last;
    ngx_str_t    user;
    redisReply  *e;

    /* the lease script says a call's error in its array, as a string */

    if (reply->type == REDIS_REPLY_ARRAY && ngx_strncmp(cmd, "EVAL", 4) == 0)
    {
        for (i = 0; i < reply->elements; i++) {
            e = reply->element[i];

            if ((e->type == REDIS_REPLY_ERROR || e->type == REDIS_REPLY_STRING)
                && ngx_http_cg_link_acl(e))
            {
                reply = e;
                break;
            }
        }
    }

    if ((reply->type != REDIS_REPLY_ERROR
         && reply->type != REDIS_REPLY_STRING)
        || !ngx_http_cg_link_acl(reply))
    {
        return NGX_DECLINED;
    }

    user = link->conf->user;

    if (user.len == 0) {
        ngx_str_set(&user, "default");
    }

    p = link->error;
    last = link->error + sizeof(link->error) - 1;

    p = ngx_slprintf(p, last, "refused %s to user \"%V\": ", cmd, &user);
    p = ngx_http_cg_link_text(p, last, reply->str, reply->len);
    p = ngx_slprintf(p, last, " (give the user the rules of docs/redis.md, "
                     "\"ACL users\")");
    *p = '\0';

    return NGX_OK;
}


void
ngx_http_cg_link_say_down(ngx_http_cg_link_t *link, ngx_uint_t level,
    ngx_uint_t was_ready, const char *why)
{
    uint32_t   crc;
    ngx_err_t  err;

    err = link->err;
    link->err = 0;

    crc = ngx_crc32_short((u_char *) why, ngx_strlen(why)) ^ (uint32_t) err;

    if (!was_ready && link->outage) {

        /* said already, or no news: the server is still away */

        if (crc == link->said[0] || crc == link->said[1]
            || ngx_strncmp(why, "connect() ", 10) == 0
            || ngx_strncmp(why, "send() failed", 13) == 0)
        {
            return;
        }
    }

    link->said[1] = link->said[0];
    link->said[0] = crc;

    if (!link->outage) {
        link->outage = 1;
        link->down_at = ngx_current_msec;
    }

    link->was_ready = 0;

    ngx_log_error(level, link->log, err, "client guard: redis %V is down: %s",
                  &link->addr.name, why);
}


void
ngx_http_cg_link_say_up(ngx_http_cg_link_t *link, ngx_uint_t level)
{
    if (link->outage) {
        ngx_log_error(level, link->log, 0,
                      "client guard: redis %V is up again (down %M ms)",
                      &link->addr.name, ngx_current_msec - link->down_at);

    } else {
        /* the first connection: nothing went wrong, nothing to see */

        if (level == NGX_LOG_ERR) {
            level = NGX_LOG_NOTICE;
        }

        ngx_log_error(level, link->log, 0, "client guard: redis %V is up",
                      &link->addr.name);
    }

    link->outage = 0;
    link->said[0] = 0;
    link->said[1] = 0;
}


void
ngx_http_cg_link_say_refused(ngx_http_cg_link_t *link, u_char *cmd,
    redisReply *reply)
{
    uint32_t    crc;
    ngx_uint_t  i, level;

    if (ngx_http_cg_link_refused(link, cmd, reply) != NGX_OK) {
        return;
    }

    /* said again after 10 minutes, if still so */

    if (link->refused[0]
        && ngx_current_msec - link->refused_at > 10 * 60 * 1000)
    {
        ngx_memzero(link->refused, sizeof(link->refused));
    }

    if (link->refused[0] == 0) {
        link->refused_at = ngx_current_msec;
    }

    crc = ngx_crc32_short(cmd, ngx_strlen(cmd)) | 1;

    for (i = 0; i < 8; i++) {
        if (link->refused[i] == crc) {
            return;
        }

        if (link->refused[i] == 0) {
            break;
        }
    }

    if (i == 8) {
        return;
    }

    link->refused[i] = crc;

    /* the subscriber's too: "quiet" is for transitions */

    level = (ngx_worker == 0) ? NGX_LOG_ERR : NGX_LOG_INFO;

    ngx_log_error(level, link->log, 0, "client guard: redis %V %s",
                  &link->addr.name, link->error);
}


/* the server's words for a log line: bounded, control bytes escaped */

static u_char *
ngx_http_cg_link_text(u_char *p, u_char *last, const char *s, size_t len)
{
    size_t  size;

    /* escaped (cg_parse.h): no control or non-ASCII byte reaches the log */

    size = ngx_min((size_t) (last - p), 4 * NGX_HTTP_CG_LINK_TEXT);

    if (size < CG_ESCAPE_MIN) {
        return p;
    }

    return cg_escape(p, size, (const u_char *) s,
                     ngx_min(len, NGX_HTTP_CG_LINK_TEXT));
}


/* the reply (string, status or error) starts with "s" */

static ngx_uint_t
ngx_http_cg_link_is(redisReply *r, const char *s)
{
    size_t  n;

    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS
        && r->type != REDIS_REPLY_ERROR)
    {
        return 0;
    }

    n = ngx_strlen(s);

    return r->len >= n && ngx_strncasecmp((u_char *) r->str, (u_char *) s, n)
                          == 0;
}


/* a refusal by the server's ACL: a command, a key, a channel */

static ngx_uint_t
ngx_http_cg_link_acl(redisReply *r)
{
    return ngx_http_cg_link_is(r, "NOPERM")
           || ngx_http_cg_link_has(r, "user executing the script");
}


/* the reply's text has "s" */

static ngx_uint_t
ngx_http_cg_link_has(redisReply *r, const char *s)
{
    return ngx_strlcasestrn((u_char *) r->str, (u_char *) r->str + r->len,
                            (u_char *) s, ngx_strlen(s) - 1)
           != NULL;
}
