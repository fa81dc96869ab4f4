
/*
 * Copyright (C) client guard authors
 *
 * cg_reject_log: rejections in error.log as a bounded summary.
 *
 * Owns: this worker's table of the clients it is rejecting (and of the
 * reasons it rejects unidentified requests), by zone and log level.  A
 * client's first rejection after a quiet second is logged with its
 * request, as it happens; the rejections after it are counted, and a timer
 * writes one line a second per client with their count, until a second
 * passes without any.  At
 * most NGX_HTTP_CG_REJECT_LOG_MAX clients at once; the rejections of the
 * others are counted together, in one line a second.  A flood of
 * rejections so costs the log a few lines a second, not one a request.
 */


#ifndef _CG_REJECT_LOG_H_INCLUDED_
#define _CG_REJECT_LOG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_CG_REJECT_LOG_MAX   64

/* what is rejected: the words of the summary line */
#define NGX_HTTP_CG_REJECT_LIMITED   0    /* a client over its limit */
#define NGX_HTTP_CG_REJECT_DRY_RUN   1    /* over it, but in dry run */
#define NGX_HTTP_CG_REJECT_UNKNOWN   2    /* unidentified: "name" is the
                                             reason */
#define NGX_HTTP_CG_REJECT_NKINDS    3


/*
 * A rejection of "name" (a client name, or the reason of an unidentified
 * one) in the zone "zone", logged at "level": NGX_OK when the caller logs
 * it now with its request (its first in a while), NGX_DECLINED when it is
 * counted for the summary line.
 */
ngx_int_t ngx_http_cg_reject_log(ngx_uint_t kind, ngx_str_t *name,
    ngx_str_t *zone, ngx_uint_t level);

/* the counts not written yet, at the worker's exit */
void ngx_http_cg_reject_log_exit(void);


#endif /* _CG_REJECT_LOG_H_INCLUDED_ */
