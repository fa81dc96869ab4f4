
/*
 * Copyright (C) client guard authors
 *
 * Rejections in error.log as a bounded summary.  See cg_reject_log.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "cg_name.h"
#include "cg_reject_log.h"


#define NGX_HTTP_CG_REJECT_LOG_TICK  1000


typedef struct {
    ngx_uint_t                  used;
    ngx_uint_t                  kind;
    ngx_uint_t                  level;
    ngx_uint_t                  count;     /* since the last line */
    ngx_str_t                   zone;      /* the configuration's */
    size_t                      len;
    u_char                      name[CG_NAME_MAX];
} ngx_http_cg_reject_entry_t;


typedef struct {
    ngx_http_cg_reject_entry_t  entries[NGX_HTTP_CG_REJECT_LOG_MAX];
    ngx_uint_t                  nused;
    ngx_uint_t                  others;    /* rejections of clients the
                                              table has no room for */
    ngx_uint_t                  others_level;
    ngx_event_t                 tick;
} ngx_http_cg_reject_table_t;


static void ngx_http_cg_reject_log_tick(ngx_event_t *ev);


static ngx_http_cg_reject_table_t  ngx_http_cg_rejects;

static const char  *ngx_http_cg_reject_words[NGX_HTTP_CG_REJECT_NKINDS] = {
    "limiting client", "limiting client (dry run)",
    "rejecting unidentified requests"
};


ngx_int_t
ngx_http_cg_reject_log(ngx_uint_t kind, ngx_str_t *name, ngx_str_t *zone,
    ngx_uint_t level)
{
    ngx_uint_t                   i;
    ngx_http_cg_reject_entry_t  *e, *free;
    ngx_http_cg_reject_table_t  *t = &ngx_http_cg_rejects;

    free = NULL;

    for (i = 0; i < NGX_HTTP_CG_REJECT_LOG_MAX; i++) {
        e = &t->entries[i];

        if (!e->used) {
            if (free == NULL) {
                free = e;
            }

            continue;
        }

        if (e->kind == kind && e->len == name->len && e->level == level
            && e->zone.data == zone->data
            && ngx_memcmp(e->name, name->data, name->len) == 0)
        {
            e->count++;
            return NGX_DECLINED;
        }
    }

    if (!t->tick.timer_set) {
        t->tick.handler = ngx_http_cg_reject_log_tick;
        t->tick.log = ngx_cycle->log;
        t->tick.data = t;
        t->tick.cancelable = 1;

        ngx_add_timer(&t->tick, NGX_HTTP_CG_REJECT_LOG_TICK);
    }

    if (free == NULL || name->len > CG_NAME_MAX) {
        t->others++;
        t->others_level = level;
        return NGX_DECLINED;
    }

    free->used = 1;
    free->kind = kind;
    free->level = level;
    free->count = 0;
    free->zone = *zone;
    free->len = name->len;
    ngx_memcpy(free->name, name->data, name->len);

    t->nused++;

    return NGX_OK;
}


/*
 * Once a second: a line for each client rejected since the last one; a
 * client rejected no more is forgotten (its next rejection is logged with
 * its request again).
 */

static void
ngx_http_cg_reject_log_flush(ngx_http_cg_reject_table_t *t, ngx_uint_t all)
{
    ngx_uint_t                   i;
    ngx_http_cg_reject_entry_t  *e;

    for (i = 0; i < NGX_HTTP_CG_REJECT_LOG_MAX; i++) {
        e = &t->entries[i];

        if (!e->used) {
            continue;
        }

        if (e->count == 0 || all) {
            e->used = 0;
            t->nused--;
        }

        if (e->count == 0) {
            continue;
        }

        ngx_log_error(e->level, ngx_cycle->log, 0,
                      "client guard: %s \"%*s\": %ui more request%s "
                      "rejected in the last second, zone \"%V\"",
                      ngx_http_cg_reject_words[e->kind], e->len, e->name,
                      e->count, e->count == 1 ? "" : "s", &e->zone);

        e->count = 0;
    }

    if (t->others) {
        ngx_log_error(t->others_level, ngx_cycle->log, 0,
                      "client guard: %ui more request%s rejected in the "
                      "last second, of clients beyond the %d the log "
                      "counts one by one", t->others,
                      t->others == 1 ? "" : "s",
                      NGX_HTTP_CG_REJECT_LOG_MAX);

        t->others = 0;
    }
}


static void
ngx_http_cg_reject_log_tick(ngx_event_t *ev)
{
    ngx_http_cg_reject_table_t  *t = ev->data;

    ngx_http_cg_reject_log_flush(t, 0);

    if (t->nused && !ngx_exiting && !ngx_terminate && !ngx_quit) {
        ngx_add_timer(ev, NGX_HTTP_CG_REJECT_LOG_TICK);
    }
}


void
ngx_http_cg_reject_log_exit(void)
{
    ngx_http_cg_reject_table_t  *t = &ngx_http_cg_rejects;

    if (t->tick.timer_set) {
        ngx_del_timer(&t->tick);
    }

    ngx_http_cg_reject_log_flush(t, 1);
}
