
/*
 * Copyright (C) client guard authors
 *
 * cg_status_prom: the status report of one node for Prometheus.
 *
 * Owns: the Prometheus text and OpenMetrics answers of a node (every
 * family in docs/status.md; every client of the report, in slices), and
 * ngx_http_cg_family(), the HELP and TYPE lines of a metric family in
 * either format (the cluster view uses it too): a counter's OpenMetrics
 * family has no "_total", an "info" family no "_info" (a gauge in 0.0.4).
 */


#ifndef _CG_STATUS_PROM_H_INCLUDED_
#define _CG_STATUS_PROM_H_INCLUDED_


#include "cg_out.h"
#include "cg_report.h"


/* resumable at (o->step, o->row): NGX_AGAIN while there is more */
ngx_int_t ngx_http_cg_status_prom(ngx_http_cg_out_t *o,
    ngx_http_cg_report_t *rp);

/* "# HELP" and "# TYPE" of a family, as o->format names it and its type */
void ngx_http_cg_family(ngx_http_cg_out_t *o, const char *name,
    const char *type, const char *help);


#endif /* _CG_STATUS_PROM_H_INCLUDED_ */
