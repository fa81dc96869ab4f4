
/*
 * Copyright (C) client guard authors
 *
 * cg_link_types: the types of a Redis link, and nothing else.
 *
 * Owns: the link's states and modes, an address and the configuration of
 * client_guard_redis (parsed by cg_link_conf.c), the handlers a link's
 * owner gives it, and the link itself (ngx_http_cg_link_t), shared by the
 * link's files: cg_link.c (the connection), cg_link_io.c (its reads and
 * writes), cg_link_cmd.c (the commands pending), cg_link_tls.c and
 * cg_link_diag.c.  No functions.
 */


#ifndef _CG_LINK_TYPES_H_INCLUDED_
#define _CG_LINK_TYPES_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include <hiredis/hiredis.h>


#define NGX_HTTP_CG_LINK_IDLE        0    /* not started, or stopped */
#define NGX_HTTP_CG_LINK_CONNECTING  1
#define NGX_HTTP_CG_LINK_HANDSHAKE   2    /* AUTH / SELECT sent */
#define NGX_HTTP_CG_LINK_READY       3
#define NGX_HTTP_CG_LINK_BACKOFF     4    /* waiting to reconnect */


/* how the addresses of client_guard_redis are used */
#define NGX_HTTP_CG_LINK_SINGLE      0    /* the one Redis */
#define NGX_HTTP_CG_LINK_SENTINEL    1    /* sentinels; "sentinel=" names
                                             the master */
#define NGX_HTTP_CG_LINK_CLUSTER     2    /* seeds of a Redis Cluster */


/* an address as written in client_guard_redis, resolved once then */

typedef struct {
    ngx_str_t                     name;       /* "host:port" as written */
    ngx_str_t                     host;
    in_port_t                     port;
    ngx_addr_t                   *addrs;
    ngx_uint_t                    naddrs;
    unsigned                      literal:1;  /* an IP address */
} ngx_http_cg_link_server_t;


/* parsed at configuration time by client_guard_redis (cg_link_conf.c) */

typedef struct {
    ngx_array_t                   servers;    /* ngx_http_cg_link_server_t */
    ngx_addr_t                   *addr;       /* the first one's first */
    ngx_uint_t                    mode;       /* NGX_HTTP_CG_LINK_SINGLE.. */
    ngx_str_t                     master;     /* sentinel= */
    ngx_str_t                     sentinel_user;      /* to the sentinels */
    ngx_str_t                     sentinel_password;
    ngx_str_t                     user;
    ngx_str_t                     password;
    ngx_uint_t                    db;
    ngx_str_t                     prefix;
    ngx_msec_t                    connect_timeout;
    ngx_msec_t                    timeout;

    /* TLS: "tls", tls_ca=, tls_cert=, tls_key=, tls_verify=, tls_name= */
    ngx_str_t                     tls_ca;
    ngx_str_t                     tls_cert;
    ngx_str_t                     tls_key;
    ngx_str_t                     tls_name;
    void                         *ssl;        /* ngx_ssl_t *, when tls */
    unsigned                      tls:1;
    unsigned                      tls_verify:1;
    unsigned                      tls_name_ip:1;  /* an address: no SNI */
} ngx_http_cg_link_conf_t;


typedef struct ngx_http_cg_link_s  ngx_http_cg_link_t;

/* reply is NULL when the operation failed (timeout, connection lost) */
typedef void (*ngx_http_cg_link_handler_pt)(ngx_http_cg_link_t *link,
    redisReply *reply, void *data);

/* state changes: ready or not */
typedef void (*ngx_http_cg_link_state_pt)(ngx_http_cg_link_t *link,
    ngx_uint_t ready);

/*
 * Before each connection, when set (cg_sentinel, cg_resolve): NGX_OK:
 * link->addr is where it goes now; NGX_AGAIN: the owner calls
 * ngx_http_cg_link_prepared() when it is (a name being resolved);
 * NGX_DECLINED: nowhere yet, the link tries again after its backoff.
 */
typedef ngx_int_t (*ngx_http_cg_link_prepare_pt)(ngx_http_cg_link_t *link);

/*
 * When set, the handshake ends with ROLE instead of PING and its reply is
 * judged here: NGX_OK, the link is ready; otherwise it drops (the check
 * logs why).
 */
typedef ngx_int_t (*ngx_http_cg_link_check_pt)(ngx_http_cg_link_t *link,
    redisReply *reply);


struct ngx_http_cg_link_s {
    ngx_http_cg_link_conf_t     *conf;
    ngx_log_t                    *log;

    /* where the next connection goes: conf->addr, until set otherwise */
    ngx_addr_t                    addr;
    u_char                        sockaddr[NGX_SOCKADDRLEN];
    u_char                        addr_text[NGX_SOCKADDR_STRLEN];

    ngx_peer_connection_t         peer;
    ngx_uint_t                    state;
    redisReader                  *reader;

    ngx_queue_t                   ops;        /* pending, oldest first */
    ngx_queue_t                   free;       /* spare ops */

    u_char                       *out;        /* unsent command bytes */
    size_t                        out_len;
    size_t                        out_size;

    ngx_event_t                   watchdog;   /* overdue replies */
    ngx_event_t                   retry;      /* reconnect after backoff */
    ngx_event_t                   flusher;    /* posted: one write for all
                                                 commands of an iteration */
    ngx_msec_t                    backoff;

    ngx_http_cg_link_state_pt    on_state;
    ngx_http_cg_link_handler_pt  on_push;    /* replies nobody asked for */
    void                         *data;

    ngx_http_cg_link_prepare_pt  prepare;
    void                         *prepare_data;  /* the preparer's */
    ngx_http_cg_link_check_pt    check;

    ngx_uint_t                    failures;   /* consecutive */
    unsigned                      preparing:1;
    unsigned                      stopped:1;
    unsigned                      was_ready:1;
    unsigned                      quiet:1;    /* transitions: debug only */

    /*
     * What the link says: a line when it goes down and one when it is back,
     * at error (worker 0; info in the others); a reason that changes
     * during an outage is said again, a repeated one is not
     */
    unsigned                      outage:1;   /* said down, not back yet */
    unsigned                      any_peer:1; /* no check of HELLO's mode
                                                 and role (set by owner) */
    ngx_msec_t                    down_at;
    uint32_t                      said[2];    /* the last reasons said */
    uint32_t                      refused[8]; /* NOPERM said, by
                                                 command */
    ngx_msec_t                    refused_at;
    ngx_err_t                     err;        /* for the next reason */
    u_char                        error[512]; /* a reason being said */

    /* TLS (cg_link_tls.c) */
    ngx_log_t                     tls_log;    /* the connection's, caught */
    u_char                        tls_said[256];
    void                         *tls_session;    /* ngx_ssl_session_t * */
};


#endif /* _CG_LINK_TYPES_H_INCLUDED_ */
