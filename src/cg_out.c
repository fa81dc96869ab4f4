
/*
 * Copyright (C) client guard authors
 *
 * The output of an answer of the status endpoint.  See cg_out.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_out.h"


static ngx_str_t  ngx_http_cg_out_types[] = {
    ngx_string("application/json"),
    ngx_string("text/plain; version=0.0.4; charset=utf-8"),
    ngx_string("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    ngx_string("text/html; charset=utf-8")
};


void
ngx_http_cg_out_init(ngx_http_cg_out_t *o, ngx_http_request_t *r,
    ngx_uint_t format)
{
    ngx_memzero(o, sizeof(ngx_http_cg_out_t));

    o->r = r;
    o->format = format;
    o->last = &o->out;
}


static ngx_buf_t *
ngx_http_cg_out_buf(ngx_http_cg_out_t *o, size_t size)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = size ? ngx_create_temp_buf(o->r->pool, size)
             : ngx_calloc_buf(o->r->pool);
    cl = ngx_alloc_chain_link(o->r->pool);

    if (b == NULL || cl == NULL) {
        o->failed = 1;
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;
    *o->last = cl;
    o->last = &cl->next;
    o->b = b;

    return b;
}


void
ngx_http_cg_out_printf(ngx_http_cg_out_t *o, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    if (o->failed) {
        return;
    }

    if (o->b == NULL
        || (size_t) (o->b->end - o->b->last) < NGX_HTTP_CG_OUT_RESERVE)
    {
        if (ngx_http_cg_out_buf(o, 64 * 1024) == NULL) {
            return;
        }
    }

    p = o->b->last;

    va_start(args, fmt);
    o->b->last = ngx_vslprintf(p, p + NGX_HTTP_CG_OUT_RESERVE, fmt, args);
    va_end(args);

    o->size += o->b->last - p;
}


void
ngx_http_cg_out_memory(ngx_http_cg_out_t *o, u_char *data, size_t len)
{
    ngx_buf_t  *b;

    if (o->failed) {
        return;
    }

    b = ngx_http_cg_out_buf(o, 0);
    if (b == NULL) {
        return;
    }

    /* full: what is printed next goes into a buffer of its own */

    b->start = data;
    b->pos = data;
    b->last = data + len;
    b->end = b->last;
    b->memory = 1;

    o->size += len;
}


ngx_str_t *
ngx_http_cg_out_escape(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char     *p, c;
    ngx_str_t  *e;
    ngx_uint_t  i;

    e = ngx_palloc(pool, sizeof(ngx_str_t) + 2 * 128);
    if (e == NULL) {
        return s;
    }

    p = (u_char *) (e + 1);
    e->data = p;

    for (i = 0; i < s->len && i < 128; i++) {
        c = s->data[i];

        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = c;

        } else if (c < 0x20 || c >= 0x7f) {
            *p++ = '_';

        } else {
            *p++ = c;
        }
    }

    e->len = p - e->data;

    return e;
}


double
ngx_http_cg_out_finite(double v)
{
    if (!(v >= 0) || v > 1e15) {
        return 0;
    }

    return v;
}


ngx_int_t
ngx_http_cg_out_send(ngx_http_cg_out_t *o, ngx_uint_t status)
{
    off_t                len;
    u_char              *p;
    ngx_int_t            rc;
    ngx_chain_t         *cl;
    ngx_http_request_t  *r;

    r = o->r;

    if (o->failed || o->out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_type = ngx_http_cg_out_types[o->format];
    r->headers_out.content_type_lowcase = NULL;

    /* where the MIME type ends, for gzip_types and the like */

    p = ngx_strlchr(r->headers_out.content_type.data,
                    r->headers_out.content_type.data
                    + r->headers_out.content_type.len, ';');

    r->headers_out.content_type_len =
        p ? (size_t) (p - r->headers_out.content_type.data)
          : r->headers_out.content_type.len;

    len = 0;

    for (cl = o->out; cl; cl = cl->next) {
        len += cl->buf->last - cl->buf->pos;
    }

    r->headers_out.content_length_n = len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    o->b->last_buf = (r == r->main) ? 1 : 0;
    o->b->last_in_chain = 1;

    return ngx_http_output_filter(r, o->out);
}


ngx_uint_t
ngx_http_cg_out_accept(ngx_http_request_t *r)
{
    int               format;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != 6
            || ngx_strncasecmp(h[i].key.data, (u_char *) "accept", 6) != 0)
        {
            continue;
        }

        format = cg_query_accept(h[i].value.data, h[i].value.len);

        if (format >= 0) {
            return (ngx_uint_t) format;
        }
    }

    return NGX_HTTP_CG_FMT_JSON;
}


ngx_int_t
ngx_http_cg_out_bad(ngx_http_request_t *r, const char *what, const char *arg)
{
    ngx_http_cg_out_t  o;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "client guard status: bad %s \"%s\"", what, arg);

    ngx_http_cg_out_init(&o, r, NGX_HTTP_CG_FMT_JSON);
    ngx_http_cg_out_printf(&o, "{\"error\":\"bad %s\","
                           "\"argument\":\"%s\"}\n", what, arg);

    return ngx_http_cg_out_send(&o, NGX_HTTP_BAD_REQUEST);
}
