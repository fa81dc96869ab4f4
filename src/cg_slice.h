
/*
 * Copyright (C) client guard authors
 *
 * cg_slice: cooperative work in slices across turns of the event loop.
 *
 * Owns: a step function run from a posted event of ngx_posted_next_events,
 * once per turn of the event loop, until it says it is done, so that the
 * requests of the worker are served between two steps; and the cancel of
 * the step to come.  What a step does, and when to stop for good (a
 * client gone, a worker exiting), is its user's.
 */


#ifndef _CG_SLICE_H_INCLUDED_
#define _CG_SLICE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


/*
 * NGX_AGAIN: run again in the next turn; anything else: done, and the
 * slice is not touched again (the step may have freed it)
 */
typedef ngx_int_t (*ngx_http_cg_slice_pt)(void *data);

typedef struct {
    ngx_event_t               ev;
    ngx_http_cg_slice_pt      step;
    void                     *data;
} ngx_http_cg_slice_t;


void ngx_http_cg_slice_init(ngx_http_cg_slice_t *s, ngx_http_cg_slice_pt step,
    void *data, ngx_log_t *log);

/* the step runs in the next turn of the event loop */
void ngx_http_cg_slice_post(ngx_http_cg_slice_t *s);

/* the step to come does not run */
void ngx_http_cg_slice_cancel(ngx_http_cg_slice_t *s);

/* a step is to come */
#define ngx_http_cg_slice_pending(s)  ((s)->ev.posted)


#endif /* _CG_SLICE_H_INCLUDED_ */
