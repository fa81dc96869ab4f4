
/*
 * Copyright (C) client guard authors
 *
 * The master of sentinel=, and the links that follow it.  See
 * cg_sentinel.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "cg_resolve.h"
#include "cg_sentinel.h"


#define NGX_HTTP_CG_SENTINEL_ASK        2000   /* ms between questions */
#define NGX_HTTP_CG_SENTINEL_FOLLOWERS  8
#define NGX_HTTP_CG_SENTINEL_NAMED      64     /* sentinels logged apart */
#define NGX_HTTP_CG_SENTINEL_SUBS       8      /* sentinels subscribed to */


typedef struct {
    ngx_http_cg_link_conf_t    *conf;       /* NULL: not started */
    ngx_http_cg_link_conf_t     sconf;      /* the same, to the sentinels */

    ngx_http_cg_link_t         *ask;        /* questions */
    ngx_uint_t                  ask_next;   /* the sentinel it is on */
    ngx_uint_t                  ask_tries;  /* since the last answer */

    /* +switch-master, one link per sentinel: the first to tell wins */
    ngx_http_cg_link_t         *subs[NGX_HTTP_CG_SENTINEL_SUBS];
    ngx_uint_t                  nsubs;

    ngx_http_cg_link_t         *followers[NGX_HTTP_CG_SENTINEL_FOLLOWERS];
    ngx_uint_t                  nfollowers;

    ngx_event_t                 timer;
    ngx_sockaddr_t              master;
    socklen_t                   master_len;   /* 0: not known yet */

    uint64_t                    unknown;      /* logged: a bit a sentinel */
    unsigned                    asking:1;
    unsigned                    unreachable:1;  /* logged */
    unsigned                    not_master:1;   /* logged */
} ngx_http_cg_sentinel_t;


static ngx_http_cg_sentinel_t  ngx_http_cg_sentinel;


static ngx_int_t ngx_http_cg_sentinel_start(void);
static void ngx_http_cg_sentinel_ask(ngx_http_cg_sentinel_t *s);


static ngx_uint_t
ngx_http_cg_sentinel_log_level(ngx_uint_t level)
{
    /* one line for the whole server, not one per worker */
    return ngx_worker == 0 ? level : NGX_LOG_INFO;
}


/* the followers */

static ngx_int_t
ngx_http_cg_sentinel_follower_prepare(ngx_http_cg_link_t *link)
{
    ngx_http_cg_sentinel_t  *s = &ngx_http_cg_sentinel;

    if (link->failures) {
        /* the master did not answer: has it moved? */
        ngx_http_cg_sentinel_ask(s);
    }

    if (s->master_len == 0) {
        return NGX_DECLINED;
    }

    ngx_http_cg_link_set_addr(link, &s->master.sockaddr, s->master_len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_cg_sentinel_check(ngx_http_cg_link_t *link, redisReply *reply)
{
    int                      len;
    ngx_uint_t               level;
    const char              *role;
    ngx_http_cg_sentinel_t  *s = &ngx_http_cg_sentinel;

    role = "?";
    len = 1;

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0
        && reply->element[0]->type == REDIS_REPLY_STRING)
    {
        role = reply->element[0]->str;
        len = (int) ngx_min(reply->element[0]->len, 32);

        if (len == 6 && ngx_strncmp(role, "master", 6) == 0) {
            return NGX_OK;
        }
    }

    /* once until the master moves: the link tries again after backoff */

    level = NGX_LOG_DEBUG;

    if (!link->quiet && !s->not_master) {
        level = ngx_http_cg_sentinel_log_level(NGX_LOG_WARN);
        s->not_master = 1;
    }

    ngx_log_error(level, link->log, 0,
                  "client guard: redis %V is not the master of \"%V\" but "
                  "a \"%*s\": asking the sentinels again",
                  &link->addr.name, &s->conf->master, (size_t) len, role);

    ngx_http_cg_sentinel_ask(s);

    return NGX_ERROR;
}


/* the master is at "ip" "port", in the words of "who" */

static void
ngx_http_cg_sentinel_master(ngx_http_cg_sentinel_t *s, ngx_str_t *who,
    u_char *ip, size_t iplen, u_char *port, size_t portlen)
{
    ngx_int_t         n;
    ngx_uint_t        i;
    ngx_sockaddr_t    sa;
    socklen_t         len;
    in_addr_t         a;
    ngx_str_t         was;
    u_char            text[NGX_SOCKADDR_STRLEN];
    u_char            old[NGX_SOCKADDR_STRLEN];

    ngx_memzero(&sa, sizeof(ngx_sockaddr_t));

    n = ngx_atoi(port, portlen);
    a = ngx_inet_addr(ip, iplen);

    if (n < 1 || n > 65535) {
        goto invalid;
    }

    if (a != INADDR_NONE) {
        sa.sockaddr_in.sin_family = AF_INET;
        sa.sockaddr_in.sin_addr.s_addr = a;
        len = sizeof(struct sockaddr_in);

#if (NGX_HAVE_INET6)
    } else if (ngx_inet6_addr(ip, iplen,
                              sa.sockaddr_in6.sin6_addr.s6_addr)
               == NGX_OK)
    {
        sa.sockaddr_in6.sin6_family = AF_INET6;
        len = sizeof(struct sockaddr_in6);
#endif

    } else {
        goto invalid;
    }

    ngx_inet_set_port(&sa.sockaddr, (in_port_t) n);

    if (s->master_len
        && ngx_cmp_sockaddr(&sa.sockaddr, len, &s->master.sockaddr,
                            s->master_len, 1)
           == NGX_OK)
    {
        return;
    }

    was.len = 0;
    was.data = old;

    if (s->master_len) {
        was.len = ngx_sock_ntop(&s->master.sockaddr, s->master_len, old,
                                NGX_SOCKADDR_STRLEN, 1);
    }

    ngx_memcpy(&s->master, &sa, len);
    s->master_len = len;
    s->unknown = 0;
    s->not_master = 0;

    ngx_log_error(ngx_http_cg_sentinel_log_level(NGX_LOG_WARN),
                  ngx_cycle->log, 0,
                  "client guard: sentinel %V: master \"%V\" is at %*s%s%V",
                  who, &s->conf->master,
                  ngx_sock_ntop(&sa.sockaddr, len, text, NGX_SOCKADDR_STRLEN,
                                1),
                  text, was.len ? ", was " : "", &was);

    for (i = 0; i < s->nfollowers; i++) {
        ngx_http_cg_link_move(s->followers[i], &s->master.sockaddr,
                              s->master_len);
    }

    return;

invalid:

    ngx_log_error(ngx_http_cg_sentinel_log_level(NGX_LOG_ERR),
                  ngx_cycle->log, 0,
                  "client guard: sentinel %V gave master \"%V\" at \"%*s\" "
                  "port \"%*s\": expected an IP address and a port",
                  who, &s->conf->master, iplen, ip, portlen, port);
}


/* questions */

static ngx_int_t
ngx_http_cg_sentinel_pick(ngx_http_cg_link_t *link)
{
    ngx_uint_t                  i, n, *next;
    ngx_http_cg_link_server_t  *srv;
    ngx_http_cg_sentinel_t     *s = &ngx_http_cg_sentinel;

    srv = s->conf->servers.elts;
    n = s->conf->servers.nelts;

    if (link != s->ask) {
        /* a subscriber keeps to its sentinel, its addresses in turn */

        for (i = 0; i < s->nsubs && s->subs[i] != link; i++) {
            /* void */
        }

        return ngx_http_cg_resolve(link, &srv[i % n], link->failures);
    }

    next = &s->ask_next;

    /* the last one failed: the next sentinel */

    if (link->failures) {
        (*next)++;

        if (++s->ask_tries >= n && !s->unreachable) {
            s->unreachable = 1;
            ngx_log_error(ngx_http_cg_sentinel_log_level(NGX_LOG_ERR),
                          link->log, 0,
                          "client guard: no sentinel of master \"%V\" "
                          "answers (%ui tried, the last %V)",
                          &s->conf->master, n, &link->addr.name);
        }
    }

    i = *next % n;

    return ngx_http_cg_resolve(link, &srv[i], *next / n);
}


static void
ngx_http_cg_sentinel_answer(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_uint_t               bit;
    redisReply              *ip, *port;
    ngx_http_cg_sentinel_t  *s = data;

    s->asking = 0;

    if (reply == NULL) {
        /* the link failed: it moves to the next sentinel */
        return;
    }

    s->ask_tries = 0;
    s->unreachable = 0;

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[1]->type == REDIS_REPLY_STRING)
    {
        ip = reply->element[0];
        port = reply->element[1];

        ngx_http_cg_sentinel_master(s, &link->addr.name, (u_char *) ip->str,
                                    ip->len, (u_char *) port->str,
                                    port->len);
        return;
    }

    /* each sentinel that does not know it is logged once */

    bit = (s->ask_next % s->conf->servers.nelts)
          % NGX_HTTP_CG_SENTINEL_NAMED;

    if (!(s->unknown & ((uint64_t) 1 << bit))) {
        s->unknown |= (uint64_t) 1 << bit;

        if (reply->type == REDIS_REPLY_NIL) {
            ngx_log_error(ngx_http_cg_sentinel_log_level(NGX_LOG_ERR),
                          link->log, 0,
                          "client guard: sentinel %V does not know master "
                          "\"%V\"", &link->addr.name, &s->conf->master);

        } else if (reply->type == REDIS_REPLY_ERROR
                   && ngx_strncmp(reply->str, "ERR unknown command", 19)
                      != 0)
        {
            /* NOAUTH, NOPERM: the sentinel's credentials */
            ngx_log_error(ngx_http_cg_sentinel_log_level(NGX_LOG_ERR),
                          link->log, 0,
                          "client guard: sentinel %V refused "
                          "SENTINEL get-master-addr-by-name \"%V\": %*s",
                          &link->addr.name, &s->conf->master,
                          ngx_min(reply->len, 128), reply->str);

        } else {
            ngx_log_error(ngx_http_cg_sentinel_log_level(NGX_LOG_ERR),
                          link->log, 0,
                          "client guard: %V is no sentinel of master \"%V\""
                          ": SENTINEL get-master-addr-by-name answered %*s",
                          &link->addr.name, &s->conf->master,
                          reply->type == REDIS_REPLY_ERROR
                          ? ngx_min(reply->len, 128) : 14,
                          reply->type == REDIS_REPLY_ERROR
                          ? reply->str : "no IP and port");
        }
    }

    /* another sentinel may know better */

    ngx_http_cg_link_fail(link, NULL);
}


static void
ngx_http_cg_sentinel_ask(ngx_http_cg_sentinel_t *s)
{
    size_t       len[3];
    const char  *argv[3];

    if (s->asking || !ngx_http_cg_link_ready(s->ask)) {
        return;
    }

    argv[0] = "SENTINEL";
    len[0] = 8;
    argv[1] = "get-master-addr-by-name";
    len[1] = 23;
    argv[2] = (const char *) s->conf->master.data;
    len[2] = s->conf->master.len;

    if (ngx_http_cg_link_send(s->ask, 3, argv, len,
                              ngx_http_cg_sentinel_answer, s)
        == NGX_OK)
    {
        s->asking = 1;
    }
}


static void
ngx_http_cg_sentinel_on_ask_state(ngx_http_cg_link_t *link, ngx_uint_t ready)
{
    if (ready) {
        ngx_http_cg_sentinel_ask(link->data);
    }
}


static void
ngx_http_cg_sentinel_timer(ngx_event_t *ev)
{
    ngx_http_cg_sentinel_t  *s = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_add_timer(ev, NGX_HTTP_CG_SENTINEL_ASK);

    ngx_http_cg_sentinel_ask(s);
}


/* the subscription */

static void
ngx_http_cg_sentinel_subscribed(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_http_cg_link_fail(link, "SUBSCRIBE +switch-master failed");
    }
}


static void
ngx_http_cg_sentinel_on_sub_state(ngx_http_cg_link_t *link, ngx_uint_t ready)
{
    size_t       len[2];
    const char  *argv[2];

    if (!ready) {
        return;
    }

    argv[0] = "SUBSCRIBE";
    len[0] = 9;
    argv[1] = "+switch-master";
    len[1] = 14;

    (void) ngx_http_cg_link_send(link, 2, argv, len,
                                 ngx_http_cg_sentinel_subscribed, NULL);

    /* the master may have moved while this link was away */
    ngx_http_cg_sentinel_ask(link->data);
}


/* "message" "+switch-master" "<name> <old ip> <old port> <ip> <port>" */

static void
ngx_http_cg_sentinel_on_push(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    u_char                  *p, *last, *word[5];
    size_t                   wlen[5];
    ngx_uint_t               n;
    redisReply              *m;
    ngx_http_cg_sentinel_t  *s = data;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[0]->len != 7
        || ngx_strncmp(reply->element[0]->str, "message", 7) != 0
        || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    m = reply->element[2];
    p = (u_char *) m->str;
    last = p + m->len;

    for (n = 0; n < 5 && p < last; n++) {
        word[n] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        wlen[n] = p - word[n];

        while (p < last && *p == ' ') {
            p++;
        }
    }

    if (n < 5 || wlen[0] != s->conf->master.len
        || ngx_strncmp(word[0], s->conf->master.data, wlen[0]) != 0)
    {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, link->log, 0,
                   "client guard: +switch-master %*s", m->len, m->str);

    ngx_http_cg_sentinel_master(s, &link->addr.name, word[3], wlen[3],
                                word[4], wlen[4]);
}


/* the start and the end */

static ngx_int_t
ngx_http_cg_sentinel_start(void)
{
    ngx_uint_t               i;
    ngx_http_cg_sentinel_t  *s = &ngx_http_cg_sentinel;

    /* the sentinels have their own credentials, and no db */

    s->sconf = *s->conf;
    s->sconf.user = s->conf->sentinel_user;
    s->sconf.password = s->conf->sentinel_password;
    s->sconf.db = 0;

    s->ask = ngx_http_cg_link_create((ngx_cycle_t *) ngx_cycle, &s->sconf,
                                     ngx_http_cg_sentinel_on_ask_state, NULL,
                                     s);
    if (s->ask == NULL) {
        return NGX_ERROR;
    }

    /*
     * The questions' link logs its transitions ("redis <sentinel> is up",
     * a refused handshake: sentinel_password=), the subscribers only at
     * debug level.
     */

    s->ask->prepare = ngx_http_cg_sentinel_pick;

    /* workers start on different sentinels */

    s->ask_next = ngx_worker;

    /*
     * A sentinel that did not lead the failover learns of it up to a
     * couple of seconds later: every sentinel is listened to.
     */

    s->nsubs = ngx_min(s->conf->servers.nelts, NGX_HTTP_CG_SENTINEL_SUBS);

    for (i = 0; i < s->nsubs; i++) {
        s->subs[i] = ngx_http_cg_link_create((ngx_cycle_t *) ngx_cycle,
                                             &s->sconf,
                                             ngx_http_cg_sentinel_on_sub_state,
                                             ngx_http_cg_sentinel_on_push, s);
        if (s->subs[i] == NULL) {
            return NGX_ERROR;
        }

        s->subs[i]->quiet = 1;
        s->subs[i]->prepare = ngx_http_cg_sentinel_pick;
    }

    s->timer.handler = ngx_http_cg_sentinel_timer;
    s->timer.data = s;
    s->timer.log = ngx_cycle->log;
    s->timer.cancelable = 1;

    ngx_add_timer(&s->timer, NGX_HTTP_CG_SENTINEL_ASK);

    ngx_http_cg_link_start(s->ask);

    for (i = 0; i < s->nsubs; i++) {
        ngx_http_cg_link_start(s->subs[i]);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_cg_sentinel_follow(ngx_http_cg_link_t *link)
{
    ngx_http_cg_link_conf_t    *conf;
    ngx_http_cg_link_server_t  *srv;
    ngx_http_cg_sentinel_t     *s = &ngx_http_cg_sentinel;

    conf = link->conf;

    if (conf->mode == NGX_HTTP_CG_LINK_SINGLE) {
        srv = conf->servers.elts;

        if (!srv[0].literal && ngx_http_cg_resolve_enabled()) {
            link->prepare = ngx_http_cg_resolve_prepare;
        }

        return NGX_OK;
    }

    if (conf->mode != NGX_HTTP_CG_LINK_SENTINEL) {
        return NGX_OK;
    }

    if (s->nfollowers == NGX_HTTP_CG_SENTINEL_FOLLOWERS) {
        ngx_log_error(NGX_LOG_ALERT, link->log, 0,
                      "client guard: too many links follow the master");
        return NGX_ERROR;
    }

    if (s->conf == NULL) {
        s->conf = conf;

        if (ngx_http_cg_sentinel_start() != NGX_OK) {
            return NGX_ERROR;
        }
    }

    /* nowhere until a sentinel answers */

    ngx_memzero(link->sockaddr, sizeof(link->sockaddr));
    link->addr.socklen = 0;
    link->addr.name.len = ngx_sprintf(link->addr_text, "master")
                          - link->addr_text;

    if (s->master_len) {
        ngx_http_cg_link_set_addr(link, &s->master.sockaddr, s->master_len);
    }

    link->prepare = ngx_http_cg_sentinel_follower_prepare;
    link->check = ngx_http_cg_sentinel_check;

    s->followers[s->nfollowers++] = link;

    return NGX_OK;
}


void
ngx_http_cg_sentinel_exit(void)
{
    ngx_uint_t               i;
    ngx_http_cg_sentinel_t  *s = &ngx_http_cg_sentinel;

    if (s->conf == NULL) {
        s->nfollowers = 0;
        return;
    }

    if (s->timer.timer_set) {
        ngx_del_timer(&s->timer);
    }

    for (i = 0; i < s->nsubs; i++) {
        ngx_http_cg_link_stop(s->subs[i]);
    }

    ngx_http_cg_link_stop(s->ask);

    ngx_memzero(s, sizeof(ngx_http_cg_sentinel_t));
}
