
/*
 * Copyright (C) client guard authors
 *
 * cg_zone: the shared memory zones, as the other parts see them.
 *
 * Owns: the zones of the configuration (client_guard_zone, and a zone
 * named by another directive: declared before or after), the zone's own
 * figures for the status, and the outcomes' names.  The zone's parts,
 * from the top down: cg_zone_shm.h (its memory made, or kept across a
 * reload), cg_zone_store.h (records found, made, walked; included here:
 * the other parts include only this file), cg_zone_evict.h (room made, by
 * tier), cg_zone_layout.h (the records' and the zone's shapes, the lock).
 * Every function on records expects the caller to hold the zone lock, and
 * to hold it briefly.
 */


#ifndef _CG_ZONE_H_INCLUDED_
#define _CG_ZONE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_zone_layout.h"
#include "cg_zone_store.h"


/* an outcome's names: in $client_guard_status, and in the status output */

typedef struct {
    ngx_str_t                 variable;    /* "REJECTED_DRY_RUN" */
    ngx_str_t                 name;        /* "rejected_dry_run" */
} ngx_http_cg_outcome_t;

extern ngx_http_cg_outcome_t  ngx_http_cg_outcomes[];


/* client_guard_zone zone=name:size [clients=N]: into the array at offset */
char *ngx_http_cg_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* the zone "name", declared yet or not (then later, or it is an error) */
ngx_http_cg_zone_t *ngx_http_cg_zone_get(ngx_conf_t *cf, ngx_array_t *zones,
    ngx_str_t *name);

/*
 * A directive's parameter "zone=name" into *zone (as ngx_http_cg_zone_get
 * finds it): NGX_DECLINED when "arg" is another parameter.
 */
ngx_int_t ngx_http_cg_zone_arg(ngx_conf_t *cf, ngx_array_t *zones,
    ngx_str_t *arg, ngx_http_cg_zone_t **zone);

/*
 * Once the configuration is read: every zone used is declared, and keeps
 * its clients' histories at "step" ms (client_guard_anomaly step=); a zone
 * kept across a reload with another step starts them again.
 */
ngx_int_t ngx_http_cg_zones_done(ngx_conf_t *cf, ngx_array_t *zones,
    ngx_msec_t step);


/* the zone's own figures, for the status */

typedef struct {
    uint64_t                  size;
    uint64_t                  used;        /* whole pages */
    ngx_uint_t                pages;
    ngx_uint_t                pages_free;
    ngx_uint_t                clients;
    uint64_t                  evictions;
    uint64_t                  evicted[NGX_HTTP_CG_NTIERS];  /* by tier */
    uint64_t                  alloc_failures;
    uint64_t                  unidentified[NGX_HTTP_CG_ID_NREASONS];
} ngx_http_cg_zone_health_t;

/* takes the lock */
void ngx_http_cg_zone_health(ngx_http_cg_zone_t *zone,
    ngx_http_cg_zone_health_t *h);


#endif /* _CG_ZONE_H_INCLUDED_ */
