
/*
 * Copyright (C) client guard authors
 *
 * cg_link: the per-worker asynchronous Redis link (see cg_link.h).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "cg_link.h"


/*
 * Reconnection: 100 ms doubling to 640 ms, each delay drawn between half
 * of it and all of it.  The cap bounds how long a Redis that is back goes
 * unused (under 640 ms after it listens again, whatever the policy); the
 * draw spreads the workers of every node over 320 ms, so a Redis that
 * returns sees their reconnections spread out, not in a burst.
 */

#define NGX_HTTP_CG_LINK_BACKOFF_MIN   100
#define NGX_HTTP_CG_LINK_BACKOFF_MAX   640
#define NGX_HTTP_CG_LINK_RECV          16384


typedef struct {
    ngx_queue_t                   queue;
    ngx_http_cg_link_handler_pt  handler;
    void                         *data;
    ngx_msec_t                    deadline;
} ngx_http_cg_link_op_t;


static void ngx_http_cg_link_connect(ngx_http_cg_link_t *link);
static void ngx_http_cg_link_connected(ngx_http_cg_link_t *link);
static void ngx_http_cg_link_write_handler(ngx_event_t *wev);
static void ngx_http_cg_link_read_handler(ngx_event_t *rev);
static void ngx_http_cg_link_flush(ngx_http_cg_link_t *link);
static void ngx_http_cg_link_flush_handler(ngx_event_t *ev);
static void ngx_http_cg_link_complete(ngx_http_cg_link_t *link,
    redisReply *reply);
static void ngx_http_cg_link_watchdog(ngx_event_t *ev);
static void ngx_http_cg_link_retry(ngx_event_t *ev);
static void ngx_http_cg_link_handshake(ngx_http_cg_link_t *link,
    redisReply *reply, void *data);
static void ngx_http_cg_link_drop(ngx_http_cg_link_t *link,
    const char *why, ngx_uint_t reconnect);
static ngx_int_t ngx_http_cg_link_queue(ngx_http_cg_link_t *link,
    int argc, const char **argv, const size_t *argvlen,
    ngx_http_cg_link_handler_pt handler, void *data);


static ngx_uint_t
ngx_http_cg_link_log_level(ngx_http_cg_link_t *link)
{
    /* one line per transition for the whole server, not one per worker */

    if (link->quiet) {
        return NGX_LOG_DEBUG;
    }

    return ngx_worker == 0 ? NGX_LOG_WARN : NGX_LOG_INFO;
}


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


char *
ngx_http_cg_link_directive(ngx_conf_t *cf, ngx_http_cg_link_conf_t **rcf)
{
    u_char                    *p;
    size_t                     n;
    ngx_int_t                  db;
    ngx_str_t                 *value, s, name;
    ngx_url_t                  u;
    ngx_uint_t                 i;
    ngx_http_cg_link_conf_t  *conf;

    if (*rcf != NULL) {
        return "is duplicate";
    }

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cg_link_conf_t));
    if (conf == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"client_guard_redis\""
                           "%s%s", &value[1], u.err ? ": " : "",
                           u.err ? u.err : "");
        return NGX_CONF_ERROR;
    }

    if (u.uri.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid address \"%V\" in \"client_guard_redis\""
                           ": no path allowed", &value[1]);
        return NGX_CONF_ERROR;
    }

    conf->addr = &u.addrs[0];
    ngx_str_set(&conf->prefix, "cg:");
    conf->connect_timeout = 200;
    conf->timeout = 100;

    for (i = 2; i < cf->args->nelts; i++) {
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

        goto invalid;
    }

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


ngx_http_cg_link_t *
ngx_http_cg_link_create(ngx_cycle_t *cycle, ngx_http_cg_link_conf_t *conf,
    ngx_http_cg_link_state_pt on_state, ngx_http_cg_link_handler_pt on_push,
    void *data)
{
    ngx_http_cg_link_t  *link;

    link = ngx_pcalloc(cycle->pool, sizeof(ngx_http_cg_link_t));
    if (link == NULL) {
        return NULL;
    }

    link->conf = conf;
    link->log = cycle->log;
    link->on_state = on_state;
    link->on_push = on_push;
    link->data = data;

    ngx_queue_init(&link->ops);
    ngx_queue_init(&link->free);

    link->watchdog.handler = ngx_http_cg_link_watchdog;
    link->watchdog.data = link;
    link->watchdog.log = cycle->log;
    link->watchdog.cancelable = 1;

    link->retry.handler = ngx_http_cg_link_retry;
    link->retry.data = link;
    link->retry.log = cycle->log;
    link->retry.cancelable = 1;

    link->flusher.handler = ngx_http_cg_link_flush_handler;
    link->flusher.data = link;
    link->flusher.log = cycle->log;

    return link;
}


void
ngx_http_cg_link_start(ngx_http_cg_link_t *link)
{
    ngx_http_cg_link_connect(link);
}


void
ngx_http_cg_link_stop(ngx_http_cg_link_t *link)
{
    ngx_queue_t             *q;
    ngx_http_cg_link_op_t  *op;

    link->stopped = 1;

    ngx_http_cg_link_drop(link, NULL, 0);

    if (link->retry.timer_set) {
        ngx_del_timer(&link->retry);
    }

    if (link->flusher.posted) {
        ngx_delete_posted_event(&link->flusher);
    }

    while (!ngx_queue_empty(&link->free)) {
        q = ngx_queue_head(&link->free);
        ngx_queue_remove(q);
        op = ngx_queue_data(q, ngx_http_cg_link_op_t, queue);
        ngx_free(op);
    }

    if (link->out) {
        ngx_free(link->out);
        link->out = NULL;
        link->out_size = 0;
    }
}


static void
ngx_http_cg_link_connect(ngx_http_cg_link_t *link)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_addr_t          *addr;

    if (link->stopped || ngx_exiting || ngx_quit || ngx_terminate) {
        link->state = NGX_HTTP_CG_LINK_IDLE;
        return;
    }

    addr = link->conf->addr;

    ngx_memzero(&link->peer, sizeof(ngx_peer_connection_t));

    link->peer.sockaddr = addr->sockaddr;
    link->peer.socklen = addr->socklen;
    link->peer.name = &addr->name;
    link->peer.get = ngx_event_get_peer;
    link->peer.log = link->log;
    link->peer.log_error = NGX_ERROR_INFO;

    link->state = NGX_HTTP_CG_LINK_CONNECTING;

    rc = ngx_event_connect_peer(&link->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        link->peer.connection = NULL;
        ngx_http_cg_link_drop(link, "connect() failed", 1);
        return;
    }

    c = link->peer.connection;
    c->data = link;
    c->read->handler = ngx_http_cg_link_read_handler;
    c->write->handler = ngx_http_cg_link_write_handler;
    c->read->cancelable = 1;
    c->write->cancelable = 1;

    if (rc == NGX_AGAIN) {
        ngx_add_timer(c->write, link->conf->connect_timeout);
        return;
    }

    ngx_http_cg_link_connected(link);
}


static void
ngx_http_cg_link_connected(ngx_http_cg_link_t *link)
{
    size_t       len[2];
    u_char       db[NGX_INT_T_LEN];
    const char  *argv[2];

    if (link->reader) {
        redisReaderFree(link->reader);
    }

    link->reader = redisReaderCreate();
    if (link->reader == NULL) {
        ngx_http_cg_link_drop(link, "out of memory", 1);
        return;
    }

    link->state = NGX_HTTP_CG_LINK_HANDSHAKE;

    if (link->conf->password.len) {
        argv[0] = "AUTH";
        len[0] = 4;
        argv[1] = (const char *) link->conf->password.data;
        len[1] = link->conf->password.len;

        if (ngx_http_cg_link_queue(link, 2, argv, len,
                                    ngx_http_cg_link_handshake, NULL)
            != NGX_OK)
        {
            return;
        }
    }

    if (link->conf->db) {
        argv[0] = "SELECT";
        len[0] = 6;
        argv[1] = (const char *) db;
        len[1] = ngx_sprintf(db, "%ui", link->conf->db) - db;

        if (ngx_http_cg_link_queue(link, 2, argv, len,
                                    ngx_http_cg_link_handshake, NULL)
            != NGX_OK)
        {
            return;
        }
    }

    argv[0] = "PING";
    len[0] = 4;

    (void) ngx_http_cg_link_queue(link, 1, argv, len,
                                   ngx_http_cg_link_handshake, link);
}


static void
ngx_http_cg_link_handshake(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    u_char  buf[128];

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {

        /* logged once, not on every reconnection */

        if (link->failures == 0) {
            ngx_cpystrn(buf, (u_char *) reply->str,
                        ngx_min(reply->len + 1, sizeof(buf)));
            ngx_log_error(ngx_http_cg_link_log_level(link), link->log, 0,
                          "client guard: redis %V refused the handshake: %s",
                          &link->conf->addr->name, buf);
        }

        ngx_http_cg_link_fail(link, NULL);
        return;
    }

    if (data == NULL) {
        return;
    }

    /* the PING that closes the handshake */

    link->state = NGX_HTTP_CG_LINK_READY;
    link->backoff = 0;
    link->failures = 0;

    if (!link->was_ready) {
        link->was_ready = 1;
        ngx_log_error(ngx_http_cg_link_log_level(link), link->log, 0,
                      "client guard: redis %V is up",
                      &link->conf->addr->name);
    }

    if (link->on_state) {
        link->on_state(link, 1);
    }
}


static void
ngx_http_cg_link_write_handler(ngx_event_t *wev)
{
    int                   err;
    socklen_t             len;
    ngx_connection_t     *c;
    ngx_http_cg_link_t  *link;

    c = wev->data;
    link = c->data;

    if (link->state == NGX_HTTP_CG_LINK_CONNECTING) {

        if (wev->timedout) {
            ngx_http_cg_link_drop(link, "connect timed out", 1);
            return;
        }

        if (wev->timer_set) {
            ngx_del_timer(wev);
        }

        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
            == -1)
        {
            err = ngx_socket_errno;
        }

        if (err) {
            ngx_http_cg_link_drop(link, "connect() failed", 1);
            return;
        }

        ngx_http_cg_link_connected(link);
        return;
    }

    ngx_http_cg_link_flush(link);
}


static void
ngx_http_cg_link_flush_handler(ngx_event_t *ev)
{
    ngx_http_cg_link_flush(ev->data);
}


static void
ngx_http_cg_link_flush(ngx_http_cg_link_t *link)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = link->peer.connection;

    if (c == NULL || link->state == NGX_HTTP_CG_LINK_CONNECTING) {
        return;
    }

    while (link->out_len) {
        n = c->send(c, link->out, link->out_len);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_cg_link_drop(link, "write event failed", 1);
            }

            return;
        }

        if (n == NGX_ERROR || n <= 0) {
            /* reported from the read handler: callers never re-enter */
            c->error = 1;
            ngx_post_event(c->read, &ngx_posted_events);
            return;
        }

        link->out_len -= n;

        if (link->out_len) {
            ngx_memmove(link->out, link->out + n, link->out_len);
        }
    }
}


static void
ngx_http_cg_link_read_handler(ngx_event_t *rev)
{
    void                    *r;
    ssize_t                  n;
    ngx_connection_t        *c;
    ngx_http_cg_link_t     *link;
    u_char                   buf[NGX_HTTP_CG_LINK_RECV];

    c = rev->data;
    link = c->data;

    if (link->state == NGX_HTTP_CG_LINK_CONNECTING) {
        /* epoll reports a refused connect on both events */
        ngx_http_cg_link_write_handler(c->write);
        return;
    }

    if (c->error) {
        ngx_http_cg_link_drop(link, "send() failed", 1);
        return;
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_cg_link_drop(link, "read event failed", 1);
            }

            return;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_http_cg_link_drop(link, n == 0 ? "connection closed"
                                                : "recv() failed", 1);
            return;
        }

        if (redisReaderFeed(link->reader, (const char *) buf, n)
            != REDIS_OK)
        {
            ngx_http_cg_link_drop(link, "out of memory", 1);
            return;
        }

        for ( ;; ) {
            r = NULL;

            if (redisReaderGetReply(link->reader, &r) != REDIS_OK) {
                ngx_http_cg_link_drop(link, "protocol error", 1);
                return;
            }

            if (r == NULL) {
                break;
            }

            if (ngx_queue_empty(&link->ops)) {
                if (link->on_push == NULL) {
                    freeReplyObject(r);
                    ngx_http_cg_link_drop(link, "unexpected reply", 1);
                    return;
                }

                link->on_push(link, r, link->data);

            } else {
                ngx_http_cg_link_complete(link, r);
            }

            freeReplyObject(r);

            if (link->peer.connection != c) {
                /* a handler dropped the connection */
                return;
            }
        }
    }
}


static void
ngx_http_cg_link_watchdog(ngx_event_t *ev)
{
    ngx_msec_int_t           left;
    ngx_queue_t             *q;
    ngx_http_cg_link_t     *link;
    ngx_http_cg_link_op_t  *op;

    link = ev->data;

    if (ngx_queue_empty(&link->ops)) {
        return;
    }

    q = ngx_queue_head(&link->ops);
    op = ngx_queue_data(q, ngx_http_cg_link_op_t, queue);

    left = (ngx_msec_int_t) (op->deadline - ngx_current_msec);

    if (left > 0) {
        ngx_add_timer(ev, left);
        return;
    }

    ngx_http_cg_link_drop(link, "reply timed out", 1);
}


static void
ngx_http_cg_link_retry(ngx_event_t *ev)
{
    ngx_http_cg_link_connect(ev->data);
}


void
ngx_http_cg_link_fail(ngx_http_cg_link_t *link, const char *why)
{
    ngx_http_cg_link_drop(link, why, 1);
}


static void
ngx_http_cg_link_drop(ngx_http_cg_link_t *link, const char *why,
    ngx_uint_t reconnect)
{
    ngx_msec_t                    delay;
    ngx_uint_t                    was;

    was = link->state;

    if (link->peer.connection) {
        ngx_close_connection(link->peer.connection);
        link->peer.connection = NULL;
    }

    if (link->reader) {
        redisReaderFree(link->reader);
        link->reader = NULL;
    }

    link->out_len = 0;
    link->state = NGX_HTTP_CG_LINK_IDLE;

    if (link->watchdog.timer_set) {
        ngx_del_timer(&link->watchdog);
    }

    if (why && (was == NGX_HTTP_CG_LINK_READY || link->failures == 0)) {
        link->was_ready = 0;
        ngx_log_error(ngx_http_cg_link_log_level(link), link->log, 0,
                      "client guard: redis %V is down: %s",
                      &link->conf->addr->name, why);
    }

    link->failures++;

    /* every pending operation fails now, oldest first */

    while (!ngx_queue_empty(&link->ops)) {
        ngx_http_cg_link_complete(link, NULL);
    }

    if (was == NGX_HTTP_CG_LINK_READY && link->on_state) {
        link->on_state(link, 0);
    }

    if (!reconnect || link->stopped || ngx_exiting || ngx_quit
        || ngx_terminate)
    {
        return;
    }

    link->state = NGX_HTTP_CG_LINK_BACKOFF;

    /* exponential backoff, capped, with jitter: half fixed, half random */

    if (link->backoff == 0) {
        link->backoff = NGX_HTTP_CG_LINK_BACKOFF_MIN;

    } else {
        link->backoff = ngx_min(link->backoff * 2,
                                NGX_HTTP_CG_LINK_BACKOFF_MAX);
    }

    delay = link->backoff / 2 + (ngx_random() % (link->backoff / 2 + 1));

    if (!link->retry.timer_set) {
        ngx_add_timer(&link->retry, delay);
    }
}


/* the oldest pending operation ends: with its reply, or NULL (failed) */

static void
ngx_http_cg_link_complete(ngx_http_cg_link_t *link, redisReply *reply)
{
    void                          *data;
    ngx_queue_t                   *q;
    ngx_http_cg_link_op_t        *op;
    ngx_http_cg_link_handler_pt   handler;

    q = ngx_queue_head(&link->ops);
    ngx_queue_remove(q);

    op = ngx_queue_data(q, ngx_http_cg_link_op_t, queue);
    handler = op->handler;
    data = op->data;
    ngx_queue_insert_head(&link->free, q);

    if (handler) {
        handler(link, reply, data);
    }
}


ngx_int_t
ngx_http_cg_link_send(ngx_http_cg_link_t *link, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_cg_link_handler_pt handler, void *data)
{
    if (link == NULL || link->state != NGX_HTTP_CG_LINK_READY) {
        return NGX_DECLINED;
    }

    return ngx_http_cg_link_queue(link, argc, argv, argvlen, handler, data);
}


static ngx_int_t
ngx_http_cg_link_queue(ngx_http_cg_link_t *link, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_cg_link_handler_pt handler, void *data)
{
    int                      i;
    u_char                  *p, *out;
    size_t                   size, len;
    ngx_queue_t             *q;
    ngx_http_cg_link_op_t  *op;

    /* the command in RESP, straight into the output buffer */

    len = sizeof("*\r\n") - 1 + NGX_INT_T_LEN;

    for (i = 0; i < argc; i++) {
        len += sizeof("$\r\n\r\n") - 1 + NGX_SIZE_T_LEN + argvlen[i];
    }

    if (ngx_queue_empty(&link->free)) {
        op = ngx_alloc(sizeof(ngx_http_cg_link_op_t), link->log);
        if (op == NULL) {
            return NGX_ERROR;
        }

    } else {
        q = ngx_queue_head(&link->free);
        ngx_queue_remove(q);
        op = ngx_queue_data(q, ngx_http_cg_link_op_t, queue);
    }

    if (link->out_len + len > link->out_size) {
        size = ngx_max(link->out_size * 2, link->out_len + len);
        size = ngx_max(size, 4096);

        out = ngx_alloc(size, link->log);
        if (out == NULL) {
            ngx_queue_insert_head(&link->free, &op->queue);
            return NGX_ERROR;
        }

        if (link->out) {
            ngx_memcpy(out, link->out, link->out_len);
            ngx_free(link->out);
        }

        link->out = out;
        link->out_size = size;
    }

    p = ngx_sprintf(link->out + link->out_len, "*%d\r\n", argc);

    for (i = 0; i < argc; i++) {
        p = ngx_sprintf(p, "$%uz\r\n", argvlen[i]);
        p = ngx_cpymem(p, argv[i], argvlen[i]);
        *p++ = CR; *p++ = LF;
    }

    link->out_len = p - link->out;

    op->handler = handler;
    op->data = data;
    op->deadline = ngx_current_msec + link->conf->timeout;

    ngx_queue_insert_tail(&link->ops, &op->queue);

    if (!link->watchdog.timer_set) {
        ngx_add_timer(&link->watchdog, link->conf->timeout);
    }

    /* written once the event loop is done with this iteration */

    if (!link->flusher.posted) {
        ngx_post_event(&link->flusher, &ngx_posted_events);
    }

    return NGX_OK;
}
