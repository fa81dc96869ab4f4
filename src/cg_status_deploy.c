
/*
 * Copyright (C) client guard authors
 *
 * Deploy markers, and the status area of the zone.  See
 * cg_status_deploy.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_parse.h"
#include "cg_out.h"
#include "cg_status_deploy.h"


static ngx_uint_t ngx_http_cg_deploy_auth(ngx_http_request_t *r,
    ngx_str_t *token);
static size_t ngx_http_cg_deploy_note(u_char *dst, ngx_str_t *arg,
    size_t max);
static void ngx_http_cg_deploy_xadd(ngx_http_cg_link_t *link, ngx_str_t *key,
    ngx_http_cg_deploy_t *d);
static void ngx_http_cg_deploy_fetched(ngx_http_cg_link_t *link,
    redisReply *reply, void *data);


ngx_http_cg_status_area_t *
ngx_http_cg_status_area(ngx_http_cg_zone_t *zone)
{
    if (zone->sh->status == NULL) {
        zone->sh->status = ngx_slab_calloc_locked(zone->shpool,
                                            sizeof(ngx_http_cg_status_area_t));
    }

    return zone->sh->status;
}


void
ngx_http_cg_status_area_copy(ngx_http_cg_zone_t *zone,
    ngx_http_cg_status_area_t *copy)
{
    ngx_http_cg_zone_lock(zone);

    if (zone->sh->status) {
        ngx_memcpy(copy, zone->sh->status, sizeof(ngx_http_cg_status_area_t));

    } else {
        ngx_memzero(copy, sizeof(ngx_http_cg_status_area_t));
    }

    ngx_http_cg_zone_unlock(zone);
}


static ngx_uint_t
ngx_http_cg_deploy_auth(ngx_http_request_t *r, ngx_str_t *token)
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


static size_t
ngx_http_cg_deploy_note(u_char *dst, ngx_str_t *arg, size_t max)
{
    u_char  *p, *s, c, buf[3 * NGX_HTTP_CG_NOTE_LEN];
    size_t   len, i;

    len = ngx_min(arg->len, sizeof(buf));
    ngx_memcpy(buf, arg->data, len);

    for (i = 0; i < len; i++) {
        if (buf[i] == '+') {
            buf[i] = ' ';
        }
    }

    p = dst;
    s = buf;

    /* decodes into dst, up to max bytes */

    if (len > max) {
        u_char  tmp[3 * NGX_HTTP_CG_NOTE_LEN];

        p = tmp;
        ngx_unescape_uri(&p, &s, len, 0);
        len = ngx_min((size_t) (p - tmp), max);
        ngx_memcpy(dst, tmp, len);

    } else {
        ngx_unescape_uri(&p, &s, len, 0);
        len = p - dst;
    }

    /* printable ASCII, nothing that needs escaping in JSON or HTML */

    for (i = 0; i < len; i++) {
        c = dst[i];

        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<'
            || c == '>' || c == '&' || c == '\'')
        {
            dst[i] = '_';
        }
    }

    return len;
}


ngx_int_t
ngx_http_cg_deploy_post(ngx_http_request_t *r, ngx_str_t *token,
    ngx_http_cg_zone_t *zone, ngx_http_cg_link_t *link, ngx_str_t *key)
{
    int                         n;
    u_char                      team[CG_NAME_MAX];
    uint64_t                    total;
    ngx_int_t                   rc;
    ngx_str_t                   v;
    ngx_time_t                 *tp;
    ngx_http_cg_out_t           o;
    ngx_http_cg_deploy_t        d, *slot;
    ngx_http_cg_deploys_t      *ds;
    ngx_http_cg_status_area_t  *area;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (token->len == 0) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (!ngx_http_cg_deploy_auth(r, token)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "client guard status: deploy marker refused, "
                      "bad or missing token");
        return NGX_HTTP_FORBIDDEN;
    }

    ngx_memzero(&d, sizeof(ngx_http_cg_deploy_t));

    if (ngx_http_arg(r, (u_char *) "deploy", 6, &v) != NGX_OK) {
        return NGX_HTTP_BAD_REQUEST;
    }

    n = cg_name_normalize(team, v.data, v.len, NGX_HTTP_CG_TEAM_LEN);

    if (n < 0) {
        return NGX_HTTP_BAD_REQUEST;
    }

    ngx_memcpy(d.team, team, n);
    d.team_len = (u_char) n;

    if (ngx_http_arg(r, (u_char *) "note", 4, &v) == NGX_OK) {
        d.note_len = (u_char) ngx_http_cg_deploy_note(d.note, &v,
                                                      NGX_HTTP_CG_NOTE_LEN);
    }

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
ngx_http_cg_deploy_fetch(ngx_http_cg_link_t *link, ngx_str_t *key,
    ngx_http_cg_zone_t *zone)
{
    size_t       lens[6];
    const char  *argv[6];

    argv[0] = "XREVRANGE";
    argv[1] = (char *) key->data;
    argv[2] = "+";
    argv[3] = "-";
    argv[4] = "COUNT";
    argv[5] = "32";

    lens[0] = 9;
    lens[1] = key->len;
    lens[2] = 1;
    lens[3] = 1;
    lens[4] = 5;
    lens[5] = 2;

    (void) ngx_http_cg_link_send(link, 6, argv, lens,
                                 ngx_http_cg_deploy_fetched, zone);
}


static void
ngx_http_cg_deploy_fetched(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_zone_t  *zone = data;

    int                         len;
    size_t                      n, i, j, k, m;
    u_char                     *p, c;
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

                for (m = 0; m < d->note_len; m++) {
                    c = v.data[m];

                    d->note[m] = (c < 0x20 || c >= 0x7f || c == '"'
                                  || c == '\\' || c == '<' || c == '>'
                                  || c == '&' || c == '\'')
                                 ? '_' : c;
                }
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
ngx_http_cg_deploy_xadd(ngx_http_cg_link_t *link, ngx_str_t *key,
    ngx_http_cg_deploy_t *d)
{
    size_t       lens[9];
    const char  *argv[9];
    u_char       id[NGX_INT64_LEN + 3];

    if (!ngx_http_cg_link_ready(link)) {
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

        (void) ngx_http_cg_link_send(link, 10, av, al, NULL, NULL);
        return;
    }

    (void) ngx_http_cg_link_send(link, 8, argv, lens, NULL, NULL);
}
