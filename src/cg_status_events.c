
/*
 * Copyright (C) client guard authors
 *
 * What ops record: deploy markers and incidents.  See cg_status_events.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_parse.h"
#include "cg_out.h"
#include "cg_status_events.h"


static ngx_uint_t ngx_http_cg_events_auth(ngx_http_request_t *r,
    ngx_str_t *token);
static ngx_int_t ngx_http_cg_deploy_post(ngx_http_request_t *r,
    cg_event_t *ev, ngx_http_cg_zone_t *zone, ngx_http_cg_route_t *link,
    ngx_str_t *key);
static ngx_int_t ngx_http_cg_incident_post(ngx_http_request_t *r,
    cg_event_t *ev, ngx_http_cg_zone_t *zone, ngx_http_cg_route_t *link,
    ngx_str_t *key);
static void ngx_http_cg_deploy_xadd(ngx_http_cg_route_t *link, ngx_str_t *key,
    ngx_http_cg_deploy_t *d);
static void ngx_http_cg_incident_xadd(ngx_http_cg_route_t *link,
    ngx_str_t *key, ngx_http_cg_incident_t *in);
static void ngx_http_cg_deploy_fetched(ngx_http_cg_link_t *link,
    redisReply *reply, void *data);
static void ngx_http_cg_incidents_fetched(ngx_http_cg_link_t *link,
    redisReply *reply, void *data);


ngx_http_cg_status_area_t *
ngx_http_cg_status_area(ngx_http_cg_zone_t *zone)
{
    ngx_http_cg_status_area_t  *area;

    area = zone->sh->status;

    if (area && area->size != sizeof(ngx_http_cg_status_area_t)) {
        /* another build's: its markers and incidents are not read */
        ngx_slab_free_locked(zone->shpool, area);
        area = NULL;
    }

    if (area == NULL) {
        area = ngx_slab_calloc_locked(zone->shpool,
                                      sizeof(ngx_http_cg_status_area_t));
        if (area) {
            area->size = sizeof(ngx_http_cg_status_area_t);
        }
    }

    zone->sh->status = area;

    return area;
}


void
ngx_http_cg_status_area_copy(ngx_http_cg_zone_t *zone,
    ngx_http_cg_status_area_t *copy)
{
    ngx_http_cg_status_area_t  *area;

    ngx_http_cg_zone_lock(zone);

    area = zone->sh->status;

    if (area && area->size == sizeof(ngx_http_cg_status_area_t)) {
        ngx_memcpy(copy, area, sizeof(ngx_http_cg_status_area_t));

    } else {
        ngx_memzero(copy, sizeof(ngx_http_cg_status_area_t));
    }

    ngx_http_cg_zone_unlock(zone);
}


static ngx_uint_t
ngx_http_cg_events_auth(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char            d;
    ngx_str_t        *v;
    ngx_uint_t        i;

    if (r->headers_in.authorization == NULL) {
        return 0;
    }

    v = &r->headers_in.authorization->value;

    if (v->len != sizeof("Bearer ") - 1 + token->len
        || ngx_strncasecmp(v->data, (u_char *) "Bearer ", 7) != 0)
    {
        return 0;
    }

    d = 0;

    for (i = 0; i < token->len; i++) {
        d |= v->data[7 + i] ^ token->data[i];
    }

    return d == 0;
}


ngx_int_t
ngx_http_cg_events_post(ngx_http_request_t *r, ngx_str_t *token,
    ngx_http_cg_zone_t *zone, ngx_http_cg_route_t *link,
    ngx_http_cg_events_keys_t *keys)
{
    ngx_int_t    rc;
    cg_event_t  *ev;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (token->len == 0) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (!ngx_http_cg_events_auth(r, token)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "client guard status: event refused, bad or missing "
                      "token");
        return NGX_HTTP_FORBIDDEN;
    }

    ev = ngx_palloc(r->pool, sizeof(cg_event_t));
    if (ev == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (cg_event_parse(ev, r->args.data, r->args.len) != 0) {
        return ngx_http_cg_out_bad(r, "event argument",
                                   ev->bad ? ev->bad : "?");
    }

    if (ev->kind == CG_EVENT_DEPLOY) {
        return ngx_http_cg_deploy_post(r, ev, zone, link, &keys->deploys);
    }

    return ngx_http_cg_incident_post(r, ev, zone, link, &keys->incidents);
}


static ngx_int_t
ngx_http_cg_deploy_post(ngx_http_request_t *r, cg_event_t *ev,
    ngx_http_cg_zone_t *zone, ngx_http_cg_route_t *link, ngx_str_t *key)
{
    uint64_t                    total;
    ngx_time_t                 *tp;
    ngx_http_cg_out_t           o;
    ngx_http_cg_deploy_t        d, *slot;
    ngx_http_cg_deploys_t      *ds;
    ngx_http_cg_status_area_t  *area;

    ngx_memzero(&d, sizeof(ngx_http_cg_deploy_t));

    ngx_memcpy(d.team, ev->team, ev->team_len);
    d.team_len = (u_char) ev->team_len;
    ngx_memcpy(d.note, ev->note, ev->note_len);
    d.note_len = (u_char) ev->note_len;

    tp = ngx_timeofday();
    d.time_ms = (uint64_t) tp->sec * 1000 + tp->msec;

    ngx_http_cg_zone_lock(zone);

    area = ngx_http_cg_status_area(zone);
    ds = area ? &area->local : NULL;

    if (ds) {
        slot = &ds->marks[ds->total % NGX_HTTP_CG_NDEPLOYS];
        *slot = d;
        total = ++ds->total;

    } else {
        total = 0;
    }

    ngx_http_cg_zone_unlock(zone);

    if (ds == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "client guard status: no memory for deploy markers "
                      "in zone \"%V\"", &zone->name);
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "client guard: deploy marker \"%*s\" \"%*s\"",
                  (size_t) d.team_len, d.team, (size_t) d.note_len, d.note);

    /* the other nodes see it through Redis, when there is a link */

    ngx_http_cg_deploy_xadd(link, key, &d);

    ngx_http_cg_out_init(&o, r, NGX_HTTP_CG_FMT_JSON);

    ngx_http_cg_out_printf(&o, "{\"deploy\":{\"time_ms\":%uL,"
                           "\"team\":\"%*s\",\"note\":\"%*s\"},"
                           "\"deploys_total\":%uL}\n",
                           d.time_ms, (size_t) d.team_len, d.team,
                           (size_t) d.note_len, d.note, total);

    return ngx_http_cg_out_send(&o, NGX_HTTP_CREATED);
}


void
ngx_http_cg_events_fetch(ngx_http_cg_route_t *link,
    ngx_http_cg_events_keys_t *keys, ngx_http_cg_zone_t *zone)
{
    size_t       lens[6];
    const char  *argv[6];

    argv[0] = "XREVRANGE";
    argv[1] = (char *) keys->deploys.data;
    argv[2] = "+";
    argv[3] = "-";
    argv[4] = "COUNT";
    argv[5] = "32";

    lens[0] = 9;
    lens[1] = keys->deploys.len;
    lens[2] = 1;
    lens[3] = 1;
    lens[4] = 5;
    lens[5] = 2;

    (void) ngx_http_cg_route_send(link, 6, argv, lens,
                                 ngx_http_cg_deploy_fetched, zone);

    /* an incident's events: at most as many as fit in this many */

    argv[1] = (char *) keys->incidents.data;
    lens[1] = keys->incidents.len;
    argv[5] = "200";
    lens[5] = 3;

    (void) ngx_http_cg_route_send(link, 6, argv, lens,
                                 ngx_http_cg_incidents_fetched, zone);
}


static void
ngx_http_cg_deploy_fetched(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_zone_t  *zone = data;

    int                         len;
    size_t                      n, i, j, k;
    u_char                     *p;
    ngx_str_t                   v;
    redisReply                 *e, *f;
    ngx_http_cg_deploy_t        marks[NGX_HTTP_CG_NDEPLOYS], *d;
    ngx_http_cg_status_area_t  *area;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }

    /* XREVRANGE: newest first; kept oldest first */

    n = ngx_min(reply->elements, NGX_HTTP_CG_NDEPLOYS);
    k = 0;

    for (i = n; i-- > 0; /* void */) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[0]->type != REDIS_REPLY_STRING
            || e->element[1]->type != REDIS_REPLY_ARRAY)
        {
            continue;
        }

        d = &marks[k];
        ngx_memzero(d, sizeof(ngx_http_cg_deploy_t));

        /* the entry ID: "<ms>-<seq>" */

        p = (u_char *) e->element[0]->str;

        for (j = 0; j < e->element[0]->len && p[j] >= '0' && p[j] <= '9';
             j++)
        {
            d->time_ms = d->time_ms * 10 + (p[j] - '0');
        }

        f = e->element[1];

        for (j = 0; j + 1 < f->elements; j += 2) {
            if (f->element[j]->type != REDIS_REPLY_STRING
                || f->element[j + 1]->type != REDIS_REPLY_STRING
                || f->element[j]->len != 4)
            {
                continue;
            }

            v.data = (u_char *) f->element[j + 1]->str;
            v.len = f->element[j + 1]->len;

            if (ngx_strncmp(f->element[j]->str, "team", 4) == 0) {
                len = cg_name_normalize(d->team, v.data, v.len,
                                        NGX_HTTP_CG_TEAM_LEN);
                d->team_len = len > 0 ? (u_char) len : 0;

            } else if (ngx_strncmp(f->element[j]->str, "note", 4) == 0) {
                d->note_len = (u_char) ngx_min(v.len, NGX_HTTP_CG_NOTE_LEN);
                cg_event_clean(d->note, v.data, d->note_len);
            }
        }

        if (d->team_len) {
            k++;
        }
    }

    ngx_http_cg_zone_lock(zone);

    area = ngx_http_cg_status_area(zone);

    if (area) {
        ngx_memzero(&area->redis, sizeof(ngx_http_cg_deploys_t));
        ngx_memcpy(area->redis.marks, marks,
                   k * sizeof(ngx_http_cg_deploy_t));
        area->redis.total = k;
    }

    ngx_http_cg_zone_unlock(zone);
}


/* a marker posted here goes to the stream too, with its time as the ID */

static void
ngx_http_cg_deploy_xadd(ngx_http_cg_route_t *link, ngx_str_t *key,
    ngx_http_cg_deploy_t *d)
{
    size_t       lens[9];
    const char  *argv[9];
    u_char       id[NGX_INT64_LEN + 3];

    if (!ngx_http_cg_route_ready(link)) {
        return;
    }

    argv[0] = "XADD";
    argv[1] = (char *) key->data;
    argv[2] = "MAXLEN";
    argv[3] = "~";
    argv[4] = "1000";
    argv[5] = (char *) id;
    argv[6] = "team";
    argv[7] = (char *) d->team;

    lens[0] = 4;
    lens[1] = key->len;
    lens[2] = 6;
    lens[3] = 1;
    lens[4] = 4;
    lens[5] = ngx_sprintf(id, "%uL-*", d->time_ms) - id;
    lens[6] = 4;
    lens[7] = d->team_len;

    argv[8] = "note";
    lens[8] = 4;

    if (d->note_len) {
        const char  *av[11];
        size_t       al[11];

        ngx_memcpy(av, argv, sizeof(argv));
        ngx_memcpy(al, lens, sizeof(lens));
        av[9] = (char *) d->note;
        al[9] = d->note_len;

        (void) ngx_http_cg_route_send(link, 10, av, al, NULL, NULL);
        return;
    }

    (void) ngx_http_cg_route_send(link, 8, argv, lens, NULL, NULL);
}


/* incidents ---------------------------------------------------------------- */


/* the incident "id" of a list, or a place for it (NULL: none to be had) */

static ngx_http_cg_incident_t *
ngx_http_cg_incident_slot(ngx_http_cg_incidents_t *l, uint64_t id,
    ngx_uint_t create)
{
    ngx_uint_t               i, victim;
    ngx_http_cg_incident_t  *in;

    for (i = 0; i < l->n; i++) {
        if (l->list[i].id == id) {
            return &l->list[i];
        }
    }

    if (!create) {
        return NULL;
    }

    if (l->n == NGX_HTTP_CG_NINCIDENTS) {

        /* full: the oldest resolved one goes, or else the oldest */

        for (victim = 0; victim < l->n; victim++) {
            if (l->list[victim].state == NGX_HTTP_CG_INCIDENT_RESOLVED) {
                break;
            }
        }

        if (victim == l->n) {
            victim = 0;
        }

        ngx_memmove(&l->list[victim], &l->list[victim + 1],
                    (l->n - victim - 1) * sizeof(ngx_http_cg_incident_t));
        l->n--;
    }

    /* by id: a new one is the newest, mostly */

    for (i = l->n; i > 0 && l->list[i - 1].id > id; i--) {
        l->list[i] = l->list[i - 1];
    }

    in = &l->list[i];
    ngx_memzero(in, sizeof(ngx_http_cg_incident_t));
    in->id = id;
    l->n++;

    return in;
}


/*
 * ?incident=new|id [&title=][&state=][&text=][&eta=time from now | 0]:
 * what is given replaces what the incident had
 */

static ngx_int_t
ngx_http_cg_incident_post(ngx_http_request_t *r, cg_event_t *ev,
    ngx_http_cg_zone_t *zone, ngx_http_cg_route_t *link, ngx_str_t *key)
{
    uint64_t                    now, id;
    ngx_str_t                   eta;
    ngx_uint_t                  created;
    ngx_msec_t                  ms;
    ngx_time_t                 *tp;
    ngx_http_cg_out_t           o;
    ngx_http_cg_incident_t      in, *slot;
    ngx_http_cg_status_area_t  *area;

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    created = (ev->id == 0);
    id = created ? now : ev->id;

    eta.data = (u_char *) ev->eta;
    eta.len = ev->eta_len;

    ms = 0;

    if (eta.len && !(eta.len == 1 && eta.data[0] == '0')) {
        ms = ngx_parse_time(&eta, 0);

        if (ms == (ngx_msec_t) NGX_ERROR) {
            return ngx_http_cg_out_bad(r, "event argument", "eta");
        }
    }

    ngx_http_cg_zone_lock(zone);

    area = ngx_http_cg_status_area(zone);
    slot = NULL;

    if (area) {

        /* two opened in the same millisecond: the next one is free */

        while (created
               && ngx_http_cg_incident_slot(&area->incidents, id, 0))
        {
            id++;
        }

        slot = ngx_http_cg_incident_slot(&area->incidents, id, created);

        if (slot == NULL && !created) {

            /* opened on another node: its state as read from Redis */

            slot = ngx_http_cg_incident_slot(&area->redis_incidents, id, 0);

            if (slot) {
                in = *slot;
                slot = ngx_http_cg_incident_slot(&area->incidents, id, 1);
                *slot = in;
            }
        }
    }

    if (slot) {
        if (created) {
            slot->state = NGX_HTTP_CG_INCIDENT_INVESTIGATING;
        }

        if (ev->state >= 0) {
            slot->state = (u_char) ev->state;
        }

        if (ev->title) {
            ngx_memcpy(slot->title, ev->title_text, ev->title_len);
            slot->title_len = (u_char) ev->title_len;
        }

        if (ev->text) {
            ngx_memcpy(slot->text, ev->text_text, ev->text_len);
            slot->text_len = (u_char) ev->text_len;
        }

        if (eta.len) {
            slot->eta_ms = ms ? now + ms : 0;
        }

        slot->updated_ms = now;
        in = *slot;
    }

    ngx_http_cg_zone_unlock(zone);

    if (area == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "client guard status: no memory for incidents in "
                      "zone \"%V\"", &zone->name);
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (slot == NULL) {
        return NGX_HTTP_NOT_FOUND;
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "client guard: incident %uL \"%*s\" %s", in.id,
                  (size_t) in.title_len, in.title,
                  cg_event_states[in.state]);

    /* the other nodes see it through Redis, when there is a link */

    ngx_http_cg_incident_xadd(link, key, &in);

    ngx_http_cg_out_init(&o, r, NGX_HTTP_CG_FMT_JSON);

    ngx_http_cg_out_printf(&o, "{\"incident\":{\"id\":\"%uL\","
                           "\"time_ms\":%uL,\"updated_ms\":%uL,"
                           "\"title\":\"%*s\","
                           "\"description\":\"%*s\","
                           "\"state\":\"%s\",\"eta_ms\":%uL}}\n",
                           in.id, in.id, in.updated_ms,
                           (size_t) in.title_len, in.title,
                           (size_t) in.text_len, in.text,
                           cg_event_states[in.state],
                           in.eta_ms);

    return ngx_http_cg_out_send(&o, created ? NGX_HTTP_CREATED : NGX_HTTP_OK);
}


/* an incident's state goes to the stream as an event: all of it */

static void
ngx_http_cg_incident_xadd(ngx_http_cg_route_t *link, ngx_str_t *key,
    ngx_http_cg_incident_t *in)
{
    size_t       lens[16];
    u_char       ev[NGX_INT64_LEN + 3], id[NGX_INT64_LEN], eta[NGX_INT64_LEN];
    const char  *argv[16];

    if (!ngx_http_cg_route_ready(link)) {
        return;
    }

    argv[0] = "XADD";
    lens[0] = 4;
    argv[1] = (char *) key->data;
    lens[1] = key->len;
    argv[2] = "MAXLEN";
    lens[2] = 6;
    argv[3] = "~";
    lens[3] = 1;
    argv[4] = "1000";
    lens[4] = 4;
    argv[5] = (char *) ev;
    lens[5] = ngx_sprintf(ev, "%uL-*", in->updated_ms) - ev;
    argv[6] = "id";
    lens[6] = 2;
    argv[7] = (char *) id;
    lens[7] = ngx_sprintf(id, "%uL", in->id) - id;
    argv[8] = "state";
    lens[8] = 5;
    argv[9] = cg_event_states[in->state];
    lens[9] = ngx_strlen(cg_event_states[in->state]);
    argv[10] = "eta";
    lens[10] = 3;
    argv[11] = (char *) eta;
    lens[11] = ngx_sprintf(eta, "%uL", in->eta_ms) - eta;
    argv[12] = "title";
    lens[12] = 5;
    argv[13] = (char *) in->title;
    lens[13] = in->title_len;
    argv[14] = "text";
    lens[14] = 4;
    argv[15] = (char *) in->text;
    lens[15] = in->text_len;

    (void) ngx_http_cg_route_send(link, 16, argv, lens, NULL, NULL);
}


/* the stream's events, newest first, folded into each incident's last state */

static void
ngx_http_cg_incidents_fetched(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_zone_t  *zone = data;

    size_t                      i, j;
    uint64_t                    id, updated;
    ngx_int_t                   n;
    ngx_str_t                   name, v;
    redisReply                 *e, *f;
    ngx_http_cg_incident_t     *in;
    ngx_http_cg_incidents_t     list;
    ngx_http_cg_status_area_t  *area;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }

    list.n = 0;

    for (i = reply->elements; i-- > 0; /* void */) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[0]->type != REDIS_REPLY_STRING
            || e->element[1]->type != REDIS_REPLY_ARRAY)
        {
            continue;
        }

        /* the entry ID, "<ms>-<seq>": when it was said */

        v.data = (u_char *) e->element[0]->str;

        for (v.len = 0; v.len < e->element[0]->len
                        && v.data[v.len] >= '0' && v.data[v.len] <= '9';
             v.len++)
        { /* void */ }

        n = ngx_atoi(v.data, v.len);
        updated = n == NGX_ERROR ? 0 : (uint64_t) n;

        /* the id first: an event of no incident is left out */

        f = e->element[1];
        id = 0;

        for (j = 0; j + 1 < f->elements; j += 2) {
            if (f->element[j]->type == REDIS_REPLY_STRING
                && f->element[j + 1]->type == REDIS_REPLY_STRING
                && f->element[j]->len == 2
                && ngx_strncmp(f->element[j]->str, "id", 2) == 0)
            {
                n = ngx_atoi((u_char *) f->element[j + 1]->str,
                             f->element[j + 1]->len);
                id = n == NGX_ERROR ? 0 : (uint64_t) n;
            }
        }

        if (id == 0) {
            continue;
        }

        in = ngx_http_cg_incident_slot(&list, id, 1);
        in->updated_ms = updated;

        for (j = 0; j + 1 < f->elements; j += 2) {
            if (f->element[j]->type != REDIS_REPLY_STRING
                || f->element[j + 1]->type != REDIS_REPLY_STRING)
            {
                continue;
            }

            name.data = (u_char *) f->element[j]->str;
            name.len = f->element[j]->len;
            v.data = (u_char *) f->element[j + 1]->str;
            v.len = f->element[j + 1]->len;

            if (name.len == 5 && ngx_strncmp(name.data, "state", 5) == 0) {
                n = cg_event_state(v.data, v.len);
                in->state = n < 0 ? in->state : (u_char) n;

            } else if (name.len == 3 && ngx_strncmp(name.data, "eta", 3) == 0) {
                n = ngx_atoi(v.data, v.len);
                in->eta_ms = n == NGX_ERROR ? 0 : (uint64_t) n;

            } else if (name.len == 5
                       && ngx_strncmp(name.data, "title", 5) == 0)
            {
                in->title_len = (u_char) ngx_min(v.len,
                                                 NGX_HTTP_CG_TITLE_LEN);
                cg_event_clean(in->title, v.data, in->title_len);

            } else if (name.len == 4 && ngx_strncmp(name.data, "text", 4) == 0)
            {
                in->text_len = (u_char) ngx_min(v.len, NGX_HTTP_CG_TEXT_LEN);
                cg_event_clean(in->text, v.data, in->text_len);
            }
        }
    }

    ngx_http_cg_zone_lock(zone);

    area = ngx_http_cg_status_area(zone);

    if (area) {
        area->redis_incidents = list;
    }

    ngx_http_cg_zone_unlock(zone);
}


ngx_uint_t
ngx_http_cg_incidents(ngx_http_cg_status_area_t *area,
    ngx_http_cg_incident_t **out)
{
    ngx_uint_t               i, j, n;
    ngx_http_cg_incident_t  *in, *t;

    n = 0;

    for (i = 0; i < area->incidents.n; i++) {
        out[n++] = &area->incidents.list[i];
    }

    /* read from Redis: once each, the latest state */

    for (i = 0; i < area->redis_incidents.n; i++) {
        in = &area->redis_incidents.list[i];

        for (j = 0; j < area->incidents.n; j++) {
            if (out[j]->id == in->id) {
                break;
            }
        }

        if (j == area->incidents.n) {
            out[n++] = in;

        } else if (in->updated_ms > out[j]->updated_ms) {
            out[j] = in;
        }
    }

    /* oldest first */

    for (i = 1; i < n; i++) {
        for (j = i; j > 0 && out[j - 1]->id > out[j]->id; j--) {
            t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    }

    return n;
}
