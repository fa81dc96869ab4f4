
/*
 * Copyright (C) client guard authors
 *
 * cg_status_events: what ops record: deploy markers and incidents.
 *
 * Owns: the status area of the zone (zone->sh->status: the markers, the
 * incidents and the time of the node's last publication), the POST to the
 * status location that records a marker or opens or updates an incident,
 * their copies in the Redis streams {prefix}deploys and {prefix}incidents,
 * and the read of those streams back into the zone (asked for by the
 * publication, cg_status_publish.c), so that every node shows them.
 */


#ifndef _CG_STATUS_EVENTS_H_INCLUDED_
#define _CG_STATUS_EVENTS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_route.h"
#include "cg_parse.h"
#include "cg_query.h"
#include "cg_zone.h"


#define NGX_HTTP_CG_NDEPLOYS      32
#define NGX_HTTP_CG_TEAM_LEN      CG_EVENT_TEAM_LEN
#define NGX_HTTP_CG_NOTE_LEN      CG_EVENT_NOTE_LEN

#define NGX_HTTP_CG_NINCIDENTS    16
#define NGX_HTTP_CG_TITLE_LEN     CG_EVENT_TITLE_LEN
#define NGX_HTTP_CG_TEXT_LEN      CG_EVENT_TEXT_LEN

/* of cg_event_states[] */
#define NGX_HTTP_CG_INCIDENT_INVESTIGATING  0
#define NGX_HTTP_CG_INCIDENT_IDENTIFIED     1
#define NGX_HTTP_CG_INCIDENT_MONITORING     2
#define NGX_HTTP_CG_INCIDENT_RESOLVED       3


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


/* an incident: its last state, as the latest of its events said */

typedef struct {
    uint64_t                  id;          /* ms it was opened: its name */
    uint64_t                  updated_ms;
    uint64_t                  eta_ms;      /* expected recovery; 0: none */
    u_char                    state;       /* NGX_HTTP_CG_INCIDENT_* */
    u_char                    title_len;
    u_char                    text_len;
    u_char                    title[NGX_HTTP_CG_TITLE_LEN];
    u_char                    text[NGX_HTTP_CG_TEXT_LEN];
} ngx_http_cg_incident_t;


/* incidents by id, oldest first; when full the oldest resolved one goes */

typedef struct {
    ngx_uint_t                n;
    ngx_http_cg_incident_t    list[NGX_HTTP_CG_NINCIDENTS];
} ngx_http_cg_incidents_t;


/*
 * The status area of the zone (zone->sh->status).  Its size comes first: an
 * area made by another build of the module (a reload after an upgrade
 * keeps the zone) is made again rather than read as this one.
 */

typedef struct {
    size_t                    size;        /* sizeof(this) */
    uint64_t                  publish_ms;  /* last publication to Redis */
    ngx_http_cg_deploys_t     local;       /* by POST */
    ngx_http_cg_deploys_t     redis;       /* read from Redis, oldest first */
    ngx_http_cg_incidents_t   incidents;   /* by POST */
    ngx_http_cg_incidents_t   redis_incidents;
} ngx_http_cg_status_area_t;


/* the Redis streams of the events */

typedef struct {
    ngx_str_t                 deploys;
    ngx_str_t                 incidents;
} ngx_http_cg_events_keys_t;


/* the area, made at the first use; NULL without memory; lock held */
ngx_http_cg_status_area_t *ngx_http_cg_status_area(ngx_http_cg_zone_t *zone);

/* a copy of the area (zeros before its first use); takes the lock */
void ngx_http_cg_status_area_copy(ngx_http_cg_zone_t *zone,
    ngx_http_cg_status_area_t *copy);

/*
 * A POST with "Authorization: Bearer token": ?deploy=team[&note=text], a
 * marker; ?incident=new&title=text[&state=s][&text=text][&eta=time] opens
 * an incident, ?incident=id[&state=s][&title=..][&text=..][&eta=time|0]
 * updates one (the query read by cg_query.c).  In the zone, and in the
 * streams when "link" is ready.
 */
ngx_int_t ngx_http_cg_events_post(ngx_http_request_t *r, ngx_str_t *token,
    ngx_http_cg_zone_t *zone, ngx_http_cg_route_t *link,
    ngx_http_cg_events_keys_t *keys);

/* reads the last events of the streams into the zone's area */
void ngx_http_cg_events_fetch(ngx_http_cg_route_t *link,
    ngx_http_cg_events_keys_t *keys, ngx_http_cg_zone_t *zone);

/*
 * The incidents of an area's copy, those posted here and those read from
 * Redis, each once (its latest state), oldest first, into "out" (room for
 * 2 x NGX_HTTP_CG_NINCIDENTS); returns how many.
 */
ngx_uint_t ngx_http_cg_incidents(ngx_http_cg_status_area_t *area,
    ngx_http_cg_incident_t **out);


#endif /* _CG_STATUS_EVENTS_H_INCLUDED_ */
