
/*
 * Copyright (C) client guard authors
 *
 * cg_link_io: a link's reads and writes (see cg_link_io.h).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "cg_link_io.h"
#include "cg_link_cmd.h"
#include "cg_link_tls.h"


#define NGX_HTTP_CG_LINK_RECV          16384


static const char *ngx_http_cg_link_lost(ngx_http_cg_link_t *link,
    ngx_err_t err, const char *what);


const char *
ngx_http_cg_link_read(ngx_http_cg_link_t *link)
{
    void                    *r;
    ssize_t                  n;
    const char              *why;
    ngx_connection_t        *c;
    u_char                   buf[NGX_HTTP_CG_LINK_RECV];

    c = link->peer.connection;

    if (c->error) {
        return ngx_http_cg_link_lost(link, 0, "send() failed");
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                return "read event failed";
            }

            return NULL;
        }

        if (n == 0 || n == NGX_ERROR) {
            return ngx_http_cg_link_lost(link,
                                         n == NGX_ERROR ? ngx_socket_errno
                                                        : 0,
                                         n == 0 ? "connection closed"
                                                : "recv() failed");
        }

        if (redisReaderFeed(link->reader, (const char *) buf, n)
            != REDIS_OK)
        {
            return "out of memory";
        }

        for ( ;; ) {
            r = NULL;

            if (redisReaderGetReply(link->reader, &r) != REDIS_OK) {
                why = "protocol error";

                if (link->state == NGX_HTTP_CG_LINK_HANDSHAKE) {
                    why = (!link->conf->tls && (buf[0] == 0x15
                                                || buf[0] == 0x16))
                          ? "the server answers in TLS: add \"tls\" "
                            "(and tls_ca=)"
                          : "protocol error during the handshake: is it a "
                            "Redis port?";
                }

                return why;
            }

            if (r == NULL) {
                break;
            }

            if (ngx_queue_empty(&link->ops)) {
                if (link->on_push == NULL) {
                    freeReplyObject(r);
                    return "unexpected reply";
                }

                link->on_push(link, r, link->data);

            } else {
                ngx_http_cg_link_complete(link, r);
            }

            freeReplyObject(r);

            if (link->peer.connection != c) {
                /* a handler dropped the connection */
                return NULL;
            }
        }
    }
}


/*
 * The connection closed or failed under a read or a write ("what"): why,
 * as said (the system's error number in link->err)
 */

static const char *
ngx_http_cg_link_lost(ngx_http_cg_link_t *link, ngx_err_t err,
    const char *what)
{
    if (link->peer.connection->ssl) {
        /* nginx's SSL layer said why (cg_link_tls.c) */
        return (const char *) ngx_http_cg_link_tls_failed(link, what);
    }

    if (link->state == NGX_HTTP_CG_LINK_HANDSHAKE && !link->conf->tls) {
        (void) ngx_snprintf(link->error, sizeof(link->error) - 1,
                            "%s during the handshake: is it a TLS port? "
                            "then add \"tls\" (and tls_ca=)%Z", what);
        what = (char *) link->error;
    }

    link->err = err;

    return what;
}


const char *
ngx_http_cg_link_flush(ngx_http_cg_link_t *link)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = link->peer.connection;

    if (c == NULL || link->state == NGX_HTTP_CG_LINK_CONNECTING) {
        return NULL;
    }

    while (link->out_len) {
        n = c->send(c, link->out, link->out_len);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                return "write event failed";
            }

            return NULL;
        }

        if (n == NGX_ERROR || n <= 0) {
            /* reported from the read handler: callers never re-enter */
            c->error = 1;
            ngx_post_event(c->read, &ngx_posted_events);
            return NULL;
        }

        link->out_len -= n;

        if (link->out_len) {
            ngx_memmove(link->out, link->out + n, link->out_len);
        }
    }

    return NULL;
}
