
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
#include "cg_link_diag.h"
#include "cg_link_io.h"
#include "cg_link_tls.h"
#include "cg_reply.h"


/*
 * Reconnection: 100 ms doubling to 640 ms, each delay drawn between half
 * of it and all of it.  The cap bounds how long a Redis that is back goes
 * unused (under 640 ms after it listens again, whatever the policy); the
 * draw spreads the workers of every node over 320 ms, so a Redis that
 * returns sees their reconnections spread out, not in a burst.
 */

#define NGX_HTTP_CG_LINK_BACKOFF_MIN   100
#define NGX_HTTP_CG_LINK_BACKOFF_MAX   640


static void ngx_http_cg_link_connect(ngx_http_cg_link_t *link);
static void ngx_http_cg_link_connect_peer(ngx_http_cg_link_t *link);
static void ngx_http_cg_link_connected(ngx_http_cg_link_t *link);
static void ngx_http_cg_link_write_handler(ngx_event_t *wev);
static void ngx_http_cg_link_read_handler(ngx_event_t *rev);
static void ngx_http_cg_link_flush_handler(ngx_event_t *ev);
static void ngx_http_cg_link_watchdog(ngx_event_t *ev);
static void ngx_http_cg_link_retry(ngx_event_t *ev);
static void ngx_http_cg_link_handshake(ngx_http_cg_link_t *link,
    redisReply *reply, void *data);
static void ngx_http_cg_link_drop(ngx_http_cg_link_t *link,
    const char *why, ngx_uint_t reconnect);
static void ngx_http_cg_link_tls_done(ngx_connection_t *c);
static void ngx_http_cg_link_down(ngx_http_cg_link_t *link, ngx_err_t err,
    const char *why);


static ngx_uint_t
ngx_http_cg_link_log_level(ngx_http_cg_link_t *link)
{
    /*
     * One line per transition for the whole server, not one per worker;
     * at error, which Debian's default error_log shows
     */

    if (link->quiet) {
        return NGX_LOG_DEBUG;
    }

    return ngx_worker == 0 ? NGX_LOG_ERR : NGX_LOG_INFO;
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

    ngx_http_cg_link_set_addr(link, conf->addr->sockaddr,
                               conf->addr->socklen);
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
ngx_http_cg_link_set_addr(ngx_http_cg_link_t *link,
    struct sockaddr *sockaddr, socklen_t socklen)
{
    socklen = ngx_min(socklen, (socklen_t) NGX_SOCKADDRLEN);

    ngx_memcpy(link->sockaddr, sockaddr, socklen);

    link->addr.sockaddr = (struct sockaddr *) link->sockaddr;
    link->addr.socklen = socklen;
    link->addr.name.data = link->addr_text;
    link->addr.name.len = ngx_sock_ntop(link->addr.sockaddr, socklen,
                                        link->addr_text,
                                        NGX_SOCKADDR_STRLEN, 1);
}


void
ngx_http_cg_link_start(ngx_http_cg_link_t *link)
{
    ngx_http_cg_link_connect(link);
}


void
ngx_http_cg_link_stop(ngx_http_cg_link_t *link)
{
    link->stopped = 1;

    ngx_http_cg_link_drop(link, NULL, 0);

    if (link->retry.timer_set) {
        ngx_del_timer(&link->retry);
    }

    if (link->flusher.posted) {
        ngx_delete_posted_event(&link->flusher);
    }

    ngx_http_cg_link_cmd_free(link);
    ngx_http_cg_link_tls_free(link);
}


static void
ngx_http_cg_link_connect(ngx_http_cg_link_t *link)
{
    ngx_int_t  rc;

    if (link->stopped || ngx_exiting || ngx_quit || ngx_terminate) {
        link->state = NGX_HTTP_CG_LINK_IDLE;
        return;
    }

    /* where to, decided now: a master, a name resolved again */

    if (link->prepare) {
        link->state = NGX_HTTP_CG_LINK_CONNECTING;
        link->preparing = 1;

        rc = link->prepare(link);

        if (rc == NGX_AGAIN) {
            return;
        }

        link->preparing = 0;

        if (rc != NGX_OK) {
            ngx_http_cg_link_drop(link, NULL, 1);
            return;
        }
    }

    ngx_http_cg_link_connect_peer(link);
}


void
ngx_http_cg_link_prepared(ngx_http_cg_link_t *link, const char *error)
{
    if (!link->preparing) {
        return;
    }

    link->preparing = 0;

    if (error) {
        ngx_http_cg_link_drop(link, error, 1);
        return;
    }

    if (link->stopped || ngx_exiting || ngx_quit || ngx_terminate) {
        link->state = NGX_HTTP_CG_LINK_IDLE;
        return;
    }

    ngx_http_cg_link_connect_peer(link);
}


void
ngx_http_cg_link_move(ngx_http_cg_link_t *link, struct sockaddr *sockaddr,
    socklen_t socklen)
{
    if (!link->stopped
        && link->state != NGX_HTTP_CG_LINK_IDLE
        && ngx_cmp_sockaddr(sockaddr, socklen, link->addr.sockaddr,
                            link->addr.socklen, 1)
           == NGX_OK)
    {
        return;
    }

    /* a new address is no failure of the old one: no backoff */

    ngx_http_cg_link_drop(link, link->state == NGX_HTTP_CG_LINK_READY
                                ? "moving to the new master" : NULL, 0);

    if (link->retry.timer_set) {
        ngx_del_timer(&link->retry);
    }

    ngx_http_cg_link_set_addr(link, sockaddr, socklen);

    link->stopped = 0;
    link->backoff = 0;
    link->failures = 0;

    ngx_http_cg_link_connect(link);
}


static void
ngx_http_cg_link_connect_peer(ngx_http_cg_link_t *link)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_addr_t          *addr;

    addr = &link->addr;

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
        ngx_http_cg_link_down(link, ngx_socket_errno, "connect() failed");
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
    int          n;
    size_t       len[3];
    u_char       db[NGX_INT_T_LEN];
    ngx_int_t    rc;
    const char  *argv[3];

    if (link->conf->tls && link->peer.connection->ssl == NULL) {

        /* TLS first, within the connect timeout again */

        rc = ngx_http_cg_link_tls_start(link, ngx_http_cg_link_tls_done);

        if (rc == NGX_ERROR) {
            ngx_http_cg_link_down(link, 0, (char *) link->error);

        } else if (rc == NGX_OK) {
            ngx_http_cg_link_tls_done(link->peer.connection);
        }

        return;
    }

    if (link->reader) {
        redisReaderFree(link->reader);
    }

    link->reader = cg_reply_reader();
    if (link->reader == NULL) {
        ngx_http_cg_link_drop(link, "out of memory", 1);
        return;
    }

    link->state = NGX_HTTP_CG_LINK_HANDSHAKE;

    if (link->conf->password.len) {
        n = 0;
        argv[n] = "AUTH";
        len[n++] = 4;

        if (link->conf->user.len) {
            argv[n] = (const char *) link->conf->user.data;
            len[n++] = link->conf->user.len;
        }

        argv[n] = (const char *) link->conf->password.data;
        len[n++] = link->conf->password.len;

        if (ngx_http_cg_link_queue(link, n, argv, len,
                                    ngx_http_cg_link_handshake,
                                    (void *) NGX_HTTP_CG_LINK_AUTH)
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
                                    ngx_http_cg_link_handshake,
                                    (void *) NGX_HTTP_CG_LINK_SELECT)
            != NGX_OK)
        {
            return;
        }
    }

    /* what the server is: its mode and role (cg_link_diag.c) */

    argv[0] = "HELLO";
    len[0] = 5;
    argv[1] = "2";
    len[1] = 1;

    (void) ngx_http_cg_link_queue(link, 2, argv, len,
                                   ngx_http_cg_link_handshake,
                                   (void *) NGX_HTTP_CG_LINK_HELLO);
}


static void
ngx_http_cg_link_tls_done(ngx_connection_t *c)
{
    ngx_http_cg_link_t  *link;

    link = c->data;

    if (ngx_http_cg_link_tls_check(link) != NGX_OK) {
        ngx_http_cg_link_down(link, 0, (char *) link->error);
        return;
    }

    c->read->handler = ngx_http_cg_link_read_handler;
    c->write->handler = ngx_http_cg_link_write_handler;

    ngx_http_cg_link_connected(link);
}


static void
ngx_http_cg_link_handshake(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    size_t       len;
    ngx_int_t    rc;
    ngx_uint_t   step;
    const char  *argv;

    if (reply == NULL) {
        return;
    }

    step = (ngx_uint_t) data;

    rc = ngx_http_cg_link_check(link, step, reply);

    if (rc == NGX_ERROR) {
        ngx_http_cg_link_down(link, 0, (char *) link->error);
        return;
    }

    if (rc == NGX_AGAIN) {
        /* a replica: of which primary */
        argv = "ROLE";
        len = 4;

        if (ngx_http_cg_link_queue(link, 1, &argv, &len,
                                    ngx_http_cg_link_handshake,
                                    (void *) NGX_HTTP_CG_LINK_ROLE)
            != NGX_OK)
        {
            ngx_http_cg_link_fail(link, "out of memory");
        }

        return;
    }

    if (step != NGX_HTTP_CG_LINK_HELLO && step != NGX_HTTP_CG_LINK_ROLE
        && step != NGX_HTTP_CG_LINK_CHECK)
    {
        return;
    }

    if (step == NGX_HTTP_CG_LINK_HELLO && link->check) {

        /* the owner checks the role too (a Sentinel's master) */

        argv = "ROLE";
        len = 4;

        if (ngx_http_cg_link_queue(link, 1, &argv, &len,
                                    ngx_http_cg_link_handshake,
                                    (void *) NGX_HTTP_CG_LINK_CHECK)
            != NGX_OK)
        {
            ngx_http_cg_link_fail(link, "out of memory");
        }

        return;
    }

    if (step == NGX_HTTP_CG_LINK_CHECK && link->check(link, reply) != NGX_OK) {
        ngx_http_cg_link_fail(link, NULL);
        return;
    }

    /* the end of the handshake */

    link->state = NGX_HTTP_CG_LINK_READY;
    link->backoff = 0;
    link->failures = 0;

    if (!link->was_ready) {
        link->was_ready = 1;
        ngx_http_cg_link_say_up(link, ngx_http_cg_link_log_level(link));
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
    const char           *why;
    ngx_connection_t     *c;
    ngx_http_cg_link_t  *link;

    c = wev->data;
    link = c->data;

    if (link->state == NGX_HTTP_CG_LINK_CONNECTING) {

        if (wev->timedout) {
            (void) ngx_snprintf(link->error, sizeof(link->error) - 1,
                                "connect() timed out (%M ms)%Z",
                                link->conf->connect_timeout);
            ngx_http_cg_link_down(link, 0, (char *) link->error);
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
            ngx_http_cg_link_down(link, err, "connect() failed");
            return;
        }

        ngx_http_cg_link_connected(link);
        return;
    }

    why = ngx_http_cg_link_flush(link);

    if (why) {
        ngx_http_cg_link_drop(link, why, 1);
    }
}


/* posted by a command queued: one write for those of this turn */

static void
ngx_http_cg_link_flush_handler(ngx_event_t *ev)
{
    const char          *why;
    ngx_http_cg_link_t  *link;

    link = ev->data;

    why = ngx_http_cg_link_flush(link);

    if (why) {
        ngx_http_cg_link_drop(link, why, 1);
    }
}


static void
ngx_http_cg_link_read_handler(ngx_event_t *rev)
{
    const char          *why;
    ngx_connection_t    *c;
    ngx_http_cg_link_t  *link;

    c = rev->data;
    link = c->data;

    if (link->state == NGX_HTTP_CG_LINK_CONNECTING) {
        /* epoll reports a refused connect on both events */
        ngx_http_cg_link_write_handler(c->write);
        return;
    }

    /* the replies to their operations (cg_link_io.c, cg_link_cmd.c) */

    why = ngx_http_cg_link_read(link);

    if (why) {
        ngx_http_cg_link_drop(link, why, 1);
    }
}


static void
ngx_http_cg_link_watchdog(ngx_event_t *ev)
{
    ngx_msec_int_t        left;
    ngx_http_cg_link_t  *link;

    link = ev->data;

    if (ngx_queue_empty(&link->ops)) {
        return;
    }

    left = ngx_http_cg_link_cmd_left(link);

    if (left > 0) {
        ngx_add_timer(ev, left);
        return;
    }

    if (link->state == NGX_HTTP_CG_LINK_HANDSHAKE) {
        (void) ngx_snprintf(link->error, sizeof(link->error) - 1,
                            "no reply to the handshake in %M ms "
                            "(connect_timeout=): is it a Redis port?%Z",
                            link->conf->connect_timeout);
        ngx_http_cg_link_drop(link, (char *) link->error, 1);
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


/* a drop with the system's error number said */

static void
ngx_http_cg_link_down(ngx_http_cg_link_t *link, ngx_err_t err,
    const char *why)
{
    link->err = err;
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
        ngx_http_cg_link_tls_close(link);
        ngx_close_connection(link->peer.connection);
        link->peer.connection = NULL;
    }

    if (link->reader) {
        redisReaderFree(link->reader);
        link->reader = NULL;
    }

    link->out_len = 0;
    link->state = NGX_HTTP_CG_LINK_IDLE;
    link->preparing = 0;

    if (link->watchdog.timer_set) {
        ngx_del_timer(&link->watchdog);
    }

    if (why) {
        ngx_http_cg_link_say_down(link, ngx_http_cg_link_log_level(link),
                                  was == NGX_HTTP_CG_LINK_READY, why);
    }

    link->err = 0;

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


