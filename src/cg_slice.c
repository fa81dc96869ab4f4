
/*
 * Copyright (C) client guard authors
 *
 * Cooperative work in slices.  See cg_slice.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "cg_slice.h"


static void ngx_http_cg_slice_handler(ngx_event_t *ev);


void
ngx_http_cg_slice_init(ngx_http_cg_slice_t *s, ngx_http_cg_slice_pt step,
    void *data, ngx_log_t *log)
{
    ngx_memzero(&s->ev, sizeof(ngx_event_t));

    s->ev.handler = ngx_http_cg_slice_handler;
    s->ev.data = s;
    s->ev.log = log;
    s->step = step;
    s->data = data;
}


void
ngx_http_cg_slice_post(ngx_http_cg_slice_t *s)
{
    ngx_post_event(&s->ev, &ngx_posted_next_events);
}


void
ngx_http_cg_slice_cancel(ngx_http_cg_slice_t *s)
{
    if (s->ev.posted) {
        ngx_delete_posted_event(&s->ev);
    }
}


static void
ngx_http_cg_slice_handler(ngx_event_t *ev)
{
    ngx_http_cg_slice_t  *s;

    s = ev->data;

    if (s->step(s->data) == NGX_AGAIN) {
        ngx_post_event(ev, &ngx_posted_next_events);
    }
}
