
/*
 * Copyright (C) client guard authors
 *
 * cg_link_tls: TLS on the Redis link (see cg_link_tls.h).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "cg_link_tls.h"


#define NGX_HTTP_CG_LINK_TLS_DEPTH  4    /* the server, up to 3 CAs */


#if (NGX_SSL)

typedef struct {
    const char                   *said;       /* in OpenSSL's or nginx's */
    const char                   *hint;
} ngx_http_cg_link_tls_hint_t;


static const char  ngx_http_cg_link_tls_plain[] =
    "is the server TLS? (Redis's tls-port, not its port)";

static const char  ngx_http_cg_link_tls_client[] =
    "the server refused this client's certificate: is tls_cert= signed by "
    "the CA of the server's tls-ca-cert-file?";


static ngx_http_cg_link_tls_hint_t  ngx_http_cg_link_tls_hints[] = {
    { "wrong version number", ngx_http_cg_link_tls_plain },
    { "packet length too long", ngx_http_cg_link_tls_plain },
    { "record layer failure", ngx_http_cg_link_tls_plain },
    { "unknown protocol", ngx_http_cg_link_tls_plain },
    { "http request", ngx_http_cg_link_tls_plain },
    { "certificate required",
      "the server wants a client certificate: tls_cert= and tls_key=" },
    { "alert bad certificate", ngx_http_cg_link_tls_client },
    { "alert unknown ca", ngx_http_cg_link_tls_client },
    { "alert certificate unknown", ngx_http_cg_link_tls_client },
    { "alert handshake failure",
      "no TLS version or cipher in common, or the client's certificate "
      "refused" },
    { "alert protocol version",
      "no TLS version in common (TLSv1.2 and TLSv1.3 here)" },
    { "peer closed connection",
      "is the server TLS, and does it accept this client?" },
    { "unexpected eof",
      "is the server TLS, and does it accept this client?" },
    { "Broken pipe",
      "the server closed the connection: does it accept this client's "
      "certificate?" },
    { "Connection reset",
      "the server closed the connection: does it accept this client's "
      "certificate?" },
    { NULL, NULL }
};


static void ngx_http_cg_link_tls_writer(ngx_log_t *log, ngx_uint_t level,
    u_char *buf, size_t len);
static void ngx_http_cg_link_tls_save(ngx_connection_t *c);
static const char *ngx_http_cg_link_tls_hint(u_char *said);


char *
ngx_http_cg_link_tls_conf(ngx_conf_t *cf, ngx_http_cg_link_conf_t *conf)
{
    u_char                     *p;
    ngx_str_t                   name;
    ngx_ssl_t                  *ssl;
    ngx_pool_cleanup_t         *cln;
    ngx_http_cg_link_server_t  *srv;
#if (NGX_HAVE_INET6)
    u_char                      buf[16];
#endif

    if (!conf->tls) {
        return NGX_CONF_OK;
    }

    if (conf->tls_verify && conf->tls_ca.len == 0) {
        return "has \"tls\" without \"tls_ca=\": name the CA that signed "
               "the Redis server's certificate (a public one: "
               "tls_ca=/etc/ssl/certs/ca-certificates.crt), or turn the "
               "verification off with \"tls_verify=off\"";
    }

    if (conf->tls_cert.len && conf->tls_key.len == 0) {
        return "has \"tls_cert=\" without \"tls_key=\"";
    }

    if (conf->tls_key.len && conf->tls_cert.len == 0) {
        return "has \"tls_key=\" without \"tls_cert=\"";
    }

    /* the name checked in the certificate: the host as written */

    name = conf->tls_name;

    if (name.len == 0) {
        srv = conf->servers.elts;

        if (srv[0].addrs[0].sockaddr->sa_family != AF_UNIX) {
            name = srv[0].host;

            if (name.len > 2 && name.data[0] == '[') {
                name.data++;
                name.len -= 2;
            }

        } else if (conf->tls_verify) {
            return "has \"tls\" on a unix socket: \"tls_name=\" gives the "
                   "name the server's certificate must have";
        }
    }

    p = ngx_pnalloc(cf->pool, name.len + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    (void) ngx_cpystrn(p, name.data, name.len + 1);

    conf->tls_name.data = p;
    conf->tls_name.len = name.len;

    conf->tls_name_ip = (ngx_inet_addr(p, name.len) != INADDR_NONE);

#if (NGX_HAVE_INET6)
    if (ngx_inet6_addr(p, name.len, buf) == NGX_OK) {
        conf->tls_name_ip = 1;
    }
#endif

    ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    ssl->log = cf->log;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = ssl;

    if (ngx_ssl_create(ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* nginx's SSL layer says why first, then the directive and its line */

    if (conf->tls_cert.len
        && ngx_ssl_certificate(cf, ssl, &conf->tls_cert, &conf->tls_key,
                               NULL)
           != NGX_OK)
    {
        return "could not load tls_cert= or tls_key= (see above)";
    }

    if (conf->tls_verify
        && ngx_ssl_trusted_certificate(cf, ssl, &conf->tls_ca,
                                       NGX_HTTP_CG_LINK_TLS_DEPTH)
           != NGX_OK)
    {
        return "could not load tls_ca= (see above)";
    }

    /* a session kept per link makes the next handshake short */

    if (ngx_ssl_client_session_cache(cf, ssl, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    conf->ssl = ssl;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_cg_link_tls_start(ngx_http_cg_link_t *link,
    ngx_connection_handler_pt done)
{
    ngx_int_t                 rc;
    ngx_log_t                *log;
    ngx_connection_t         *c;
    ngx_http_cg_link_conf_t  *conf;

    c = link->peer.connection;
    conf = link->conf;

    link->tls_said[0] = '\0';

    /*
     * What nginx's SSL layer logs on this connection is caught: the reason
     * goes into the link's line, logged once per outage
     */

    log = &link->tls_log;
    *log = *link->log;

    log->log_level = ngx_max(link->log->log_level, NGX_LOG_INFO);
    log->writer = ngx_http_cg_link_tls_writer;
    log->wdata = link;
    log->next = NULL;
    log->handler = NULL;
    log->data = NULL;
    log->action = NULL;
    log->connection = c->number;

    c->log = log;
    c->read->log = log;
    c->write->log = log;

    c->pool = ngx_create_pool(512, log);
    if (c->pool == NULL) {
        goto failed;
    }

    if (ngx_ssl_create_connection(conf->ssl, c, NGX_SSL_CLIENT) != NGX_OK) {
        goto failed;
    }

#ifdef SSL_CTRL_SET_TLSEXT_HOSTNAME

    /* SNI: a host name, never an address (RFC 6066) */

    if (conf->tls_name.len && !conf->tls_name_ip
        && SSL_set_tlsext_host_name(c->ssl->connection,
                                    (char *) conf->tls_name.data)
           == 0)
    {
        ngx_ssl_error(NGX_LOG_ERR, log, 0,
                      "SSL_set_tlsext_host_name(\"%s\") failed",
                      conf->tls_name.data);
        goto failed;
    }

#endif

    if (link->tls_session
        && ngx_ssl_set_session(c, link->tls_session) != NGX_OK)
    {
        goto failed;
    }

    c->ssl->save_session = ngx_http_cg_link_tls_save;

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        c->ssl->handler = done;

        if (!c->write->timer_set) {
            ngx_add_timer(c->write, conf->connect_timeout);
        }

        return NGX_AGAIN;
    }

    /* over at once: ngx_http_cg_link_tls_check() says how */

    return NGX_OK;

failed:

    (void) ngx_snprintf(link->error, sizeof(link->error) - 1,
                        "TLS set-up failed: %s%Z", link->tls_said);
    return NGX_ERROR;
}


ngx_int_t
ngx_http_cg_link_tls_check(ngx_http_cg_link_t *link)
{
    long                      rc;
    X509                     *cert;
    ngx_connection_t         *c;
    ngx_http_cg_link_conf_t  *conf;

    c = link->peer.connection;
    conf = link->conf;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->timedout || c->write->timedout) {
        (void) ngx_snprintf(link->error, sizeof(link->error) - 1,
                            "TLS handshake timed out (%M ms): %s%Z",
                            conf->connect_timeout,
                            ngx_http_cg_link_tls_plain);
        goto failed;
    }

    if (c->ssl == NULL || !c->ssl->handshaked) {
        (void) ngx_snprintf(link->error, sizeof(link->error) - 1,
                            "TLS handshake failed: %s: %s%Z",
                            link->tls_said[0] ? link->tls_said
                                              : (u_char *) "no reason said",
                            ngx_http_cg_link_tls_hint(link->tls_said));
        goto failed;
    }

    if (!conf->tls_verify) {
        return NGX_OK;
    }

    rc = SSL_get_verify_result(c->ssl->connection);

    if (rc != X509_V_OK) {
        (void) ngx_snprintf(link->error, sizeof(link->error) - 1,
                            "TLS certificate verification failed: %s (%l): "
                            "is tls_ca=%V the CA that signed the server's "
                            "certificate?%Z",
                            X509_verify_cert_error_string(rc), rc,
                            &conf->tls_ca);
        goto failed;
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);

    if (cert == NULL) {
        (void) ngx_snprintf(link->error, sizeof(link->error) - 1,
                            "TLS: the server sent no certificate%Z");
        goto failed;
    }

    if (conf->tls_name_ip) {
        rc = (X509_check_ip_asc(cert, (char *) conf->tls_name.data, 0) == 1);
        X509_free(cert);

    } else {
        X509_free(cert);
        rc = (ngx_ssl_check_host(c, &conf->tls_name) == NGX_OK);
    }

    if (!rc) {
        (void) ngx_snprintf(link->error, sizeof(link->error) - 1,
                            "TLS certificate does not match \"%V\": "
                            "tls_name= gives a name the certificate has%Z",
                            &conf->tls_name);
        goto failed;
    }

    return NGX_OK;

failed:

    /* no session of a server that failed is tried again */

    if (link->tls_session) {
        ngx_ssl_free_session(link->tls_session);
        link->tls_session = NULL;
    }

    return NGX_ERROR;
}


u_char *
ngx_http_cg_link_tls_failed(ngx_http_cg_link_t *link, const char *what)
{
    if (link->tls_said[0] == '\0') {
        (void) ngx_snprintf(link->error, sizeof(link->error) - 1, "%s%Z",
                            what);

    } else {
        (void) ngx_snprintf(link->error, sizeof(link->error) - 1,
                            "%s: %s: %s%Z", what, link->tls_said,
                            ngx_http_cg_link_tls_hint(link->tls_said));
    }

    return link->error;
}


void
ngx_http_cg_link_tls_close(ngx_http_cg_link_t *link)
{
    ngx_connection_t  *c;

    c = link->peer.connection;

    if (c == NULL) {
        return;
    }

    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;

        if (ngx_ssl_shutdown(c) == NGX_AGAIN) {
            /* close_notify would wait: not sent */
            c->error = 1;
            (void) ngx_ssl_shutdown(c);
        }
    }

    if (c->pool) {
        ngx_destroy_pool(c->pool);
        c->pool = NULL;
    }
}


void
ngx_http_cg_link_tls_free(ngx_http_cg_link_t *link)
{
    if (link->tls_session) {
        ngx_ssl_free_session(link->tls_session);
        link->tls_session = NULL;
    }
}


/*
 * The log of a TLS connection: the message kept in link->tls_said; debug
 * lines and alerts go on to the error log as they are
 */

static void
ngx_http_cg_link_tls_writer(ngx_log_t *log, ngx_uint_t level, u_char *buf,
    size_t len)
{
    u_char              *p, *last;
    ngx_log_t           *orig;
    ngx_http_cg_link_t  *link;

    link = log->wdata;
    orig = link->log;

    if (level == NGX_LOG_DEBUG || level <= NGX_LOG_ALERT) {
        if (orig->writer) {
            orig->writer(orig, level, buf, len);

        } else if (orig->file && orig->file->fd != NGX_INVALID_FILE) {
            (void) ngx_write_fd(orig->file->fd, buf, len);
        }

        if (level == NGX_LOG_DEBUG) {
            return;
        }
    }

    /* past "time [level] pid#tid: *n " */

    last = buf + len;

    p = ngx_strlchr(buf, last, '#');
    p = p ? ngx_strlchr(p, last, ' ') : NULL;

    if (p == NULL) {
        return;
    }

    p++;

    if (p < last && *p == '*') {
        p = ngx_strlchr(p, last, ' ');
        if (p == NULL) {
            return;
        }

        p++;
    }

    while (last > p && (last[-1] == LF || last[-1] == CR)) {
        last--;
    }

    len = ngx_min((size_t) (last - p), sizeof(link->tls_said) - 1);

    ngx_memcpy(link->tls_said, p, len);
    link->tls_said[len] = '\0';
}


/* a new session from the server (TLSv1.3: after the handshake) */

static void
ngx_http_cg_link_tls_save(ngx_connection_t *c)
{
    ngx_ssl_session_t   *session;
    ngx_http_cg_link_t  *link;

    link = c->data;

    session = ngx_ssl_get_session(c);
    if (session == NULL) {
        return;
    }

    if (link->tls_session) {
        ngx_ssl_free_session(link->tls_session);
    }

    link->tls_session = session;
}


static const char *
ngx_http_cg_link_tls_hint(u_char *said)
{
    ngx_http_cg_link_tls_hint_t  *h;

    for (h = ngx_http_cg_link_tls_hints; h->said; h++) {
        if (ngx_strstr(said, h->said) != NULL) {
            return h->hint;
        }
    }

    return "see docs/redis.md, \"TLS\"";
}


#else /* !(NGX_SSL) */


char *
ngx_http_cg_link_tls_conf(ngx_conf_t *cf, ngx_http_cg_link_conf_t *conf)
{
    if (conf->tls) {
        return "has \"tls\", but this nginx was built without SSL "
               "(\"nginx -V\" shows no --with-http_ssl_module)";
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_cg_link_tls_start(ngx_http_cg_link_t *link,
    ngx_connection_handler_pt done)
{
    (void) ngx_cpystrn(link->error, (u_char *) "TLS: nginx has no SSL",
                       sizeof(link->error));
    return NGX_ERROR;
}


ngx_int_t
ngx_http_cg_link_tls_check(ngx_http_cg_link_t *link)
{
    return NGX_ERROR;
}


u_char *
ngx_http_cg_link_tls_failed(ngx_http_cg_link_t *link, const char *what)
{
    (void) ngx_cpystrn(link->error, (u_char *) what, sizeof(link->error));
    return link->error;
}


void
ngx_http_cg_link_tls_close(ngx_http_cg_link_t *link)
{
}


void
ngx_http_cg_link_tls_free(ngx_http_cg_link_t *link)
{
}


#endif
