
/*
 * Copyright (C) client guard authors
 *
 * cg_stats_log: a finished request in its client's statistics.
 *
 * Owns: the log phase's part of a record (cg_stats_add), done in batches:
 * a worker keeps up to NGX_HTTP_CG_LOG_BATCH finished requests and counts
 * them the next time it holds the zone's lock anyway (the next request's
 * decision), or after NGX_HTTP_CG_LOG_DELAY, before a status answer or
 * publication, and when the worker exits.  A request so costs one lock of
 * the zone, not two.  The records stay pinned (rec->refs) until they are
 * counted.  Also the settings of what is judged unusual
 * (client_guard_anomaly, for cg_history).
 */


#ifndef _CG_STATS_LOG_H_INCLUDED_
#define _CG_STATS_LOG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_stats.h"
#include "cg_zone.h"


/*
 * Counts a finished request in its client's record, which the decision
 * pinned so that it could not be evicted meanwhile, and unpins it: in a
 * batch, within 50 ms.  "outcome" is the module's decision
 * (NGX_HTTP_CG_PASSED ...).
 */
void ngx_http_cg_stats_log(ngx_http_request_t *r, ngx_http_cg_zone_t *zone,
    ngx_http_cg_record_t *rec, ngx_uint_t outcome, const cg_anomaly_t *an);

/* counts this worker's batch: of one zone whose lock the caller holds */
void ngx_http_cg_stats_flush_locked(ngx_http_cg_zone_t *zone);

/* ...or all of it, taking the locks */
void ngx_http_cg_stats_flush(void);

/* at the worker's exit */
void ngx_http_cg_stats_log_exit(void);

/*
 * client_guard_anomaly [ratio=N] [min_rate=R] [errors=N%] [min_errors=R]
 * [step=time] | off, on the cg_anomaly_t at cmd->offset; and the defaults
 * once the configuration is read
 */
char *ngx_http_cg_anomaly_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_cg_anomaly_init(cg_anomaly_t *an);


#endif /* _CG_STATS_LOG_H_INCLUDED_ */
