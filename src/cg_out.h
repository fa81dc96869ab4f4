
/*
 * Copyright (C) client guard authors
 *
 * cg_out: the output of an answer of the status endpoint.
 *
 * Owns: the answer's formats, a chain of buffers in the request's pool
 * that an answer is printed into (possibly over several slices, see
 * ngx_http_cg_out_full), the escaping of strings and numbers for it, and
 * the one sender of every answer: its content type by format,
 * Content-Length from the chain, the header, then the body at once; the
 * answer to a refused argument.
 */


#ifndef _CG_OUT_H_INCLUDED_
#define _CG_OUT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_query.h"


#define NGX_HTTP_CG_FMT_JSON      CG_FMT_JSON
#define NGX_HTTP_CG_FMT_PROM      CG_FMT_PROM
#define NGX_HTTP_CG_FMT_OPENM     CG_FMT_OPENM
#define NGX_HTTP_CG_FMT_HTML      CG_FMT_HTML

/* the most one ngx_http_cg_out_printf() writes */
#define NGX_HTTP_CG_OUT_RESERVE   1024


/*
 * An answer being written.  A format that takes several slices resumes at
 * (step, row): "limit" is the size at which a slice yields, at the end of
 * a row (0: no limit).
 */

typedef struct {
    ngx_http_request_t       *r;
    ngx_uint_t                format;      /* NGX_HTTP_CG_FMT_* */
    ngx_chain_t              *out;
    ngx_chain_t             **last;
    ngx_buf_t                *b;           /* the last of the chain */
    ngx_uint_t                failed;      /* no memory: a 500 */
    size_t                    size;        /* written so far */
    size_t                    limit;
    ngx_uint_t                step;        /* of the format */
    ngx_uint_t                row;         /* the next row of the step */
    ngx_str_t                *zone;        /* its name, escaped */
} ngx_http_cg_out_t;


void ngx_http_cg_out_init(ngx_http_cg_out_t *o, ngx_http_request_t *r,
    ngx_uint_t format);

/* ngx_sprintf() formats, up to NGX_HTTP_CG_OUT_RESERVE bytes a call */
void ngx_http_cg_out_printf(ngx_http_cg_out_t *o, const char *fmt, ...);

/*
 * The format the request's Accept header asks for (cg_query_accept() of
 * each, the first that names one); JSON without one.
 */
ngx_uint_t ngx_http_cg_out_accept(ngx_http_request_t *r);

/* memory that outlives the request (the dashboard), not copied */
void ngx_http_cg_out_memory(ngx_http_cg_out_t *o, u_char *data, size_t len);

/* after a row: this slice has done its share, and rows are left */
#define ngx_http_cg_out_full(o, rows)                                        \
    ((o)->limit && (o)->size >= (o)->limit && (o)->row < (rows))

/* a string for JSON or a label value: printable ASCII, escaped, cut at 128 */
ngx_str_t *ngx_http_cg_out_escape(ngx_pool_t *pool, ngx_str_t *s);

/* a non-negative finite double, for %.Nf: anything else is 0 */
double ngx_http_cg_out_finite(double v);

/* sends the answer with this status: what a content handler returns */
ngx_int_t ngx_http_cg_out_send(ngx_http_cg_out_t *o, ngx_uint_t status);

/*
 * An argument refused: a 400 whose JSON names it ("what": "query
 * argument" or "event argument"), logged at "info" as nginx logs a
 * client's errors
 */
ngx_int_t ngx_http_cg_out_bad(ngx_http_request_t *r, const char *what,
    const char *arg);


#endif /* _CG_OUT_H_INCLUDED_ */
