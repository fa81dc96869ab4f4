
/*
 * Copyright (C) client guard authors
 *
 * cg_status_deploy: deploy markers, and the status area of the zone.
 *
 * Owns: the status area of the zone (zone->sh->status: the markers and
 * the time of the node's last publication), the POST to the status
 * location that records a marker, its copy in the Redis stream
 * {prefix}deploys, and the read of that stream back into the zone (asked
 * for by the publication, cg_status_publish.c).
 */


#ifndef _CG_STATUS_DEPLOY_H_INCLUDED_
#define _CG_STATUS_DEPLOY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_link.h"
#include "cg_parse.h"
#include "cg_zone.h"


#define NGX_HTTP_CG_NDEPLOYS      32
#define NGX_HTTP_CG_TEAM_LEN      32
#define NGX_HTTP_CG_NOTE_LEN      80


typedef struct {
    uint64_t                  time_ms;
    u_char                    team_len;
    u_char                    note_len;
    u_char                    team[NGX_HTTP_CG_TEAM_LEN];
    u_char                    note[NGX_HTTP_CG_NOTE_LEN];
} ngx_http_cg_deploy_t;


/* a ring of markers */

typedef struct {
    uint64_t                  total;       /* next slot: total % N */
    ngx_http_cg_deploy_t      marks[NGX_HTTP_CG_NDEPLOYS];
} ngx_http_cg_deploys_t;


/* the status area of the zone (zone->sh->status) */

typedef struct {
    uint64_t                  publish_ms;  /* last publication to Redis */
    ngx_http_cg_deploys_t     local;       /* by POST */
    ngx_http_cg_deploys_t     redis;       /* read from Redis, oldest first */
} ngx_http_cg_status_area_t;


/* the area, made at the first use; NULL without memory; lock held */
ngx_http_cg_status_area_t *ngx_http_cg_status_area(ngx_http_cg_zone_t *zone);

/* a copy of the area (zeros before its first use); takes the lock */
void ngx_http_cg_status_area_copy(ngx_http_cg_zone_t *zone,
    ngx_http_cg_status_area_t *copy);

/*
 * POST ?deploy=team[&note=text] with "Authorization: Bearer token": a
 * marker in the zone, and in the stream "key" when "link" is ready.
 */
ngx_int_t ngx_http_cg_deploy_post(ngx_http_request_t *r, ngx_str_t *token,
    ngx_http_cg_zone_t *zone, ngx_http_cg_link_t *link, ngx_str_t *key);

/* reads the last markers of the stream "key" into the zone's area */
void ngx_http_cg_deploy_fetch(ngx_http_cg_link_t *link, ngx_str_t *key,
    ngx_http_cg_zone_t *zone);


#endif /* _CG_STATUS_DEPLOY_H_INCLUDED_ */
