
/*
 * Copyright (C) client guard authors
 *
 * The Redis part of the module, put together.  See cg_redis.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "cg_common.h"
#include "cg_lease_batch.h"
#include "cg_link_conf.h"
#include "cg_redis.h"
#include "cg_redis_quota.h"
#include "cg_redis_restore.h"
#include "cg_sentinel.h"


#define NGX_HTTP_CG_REDIS_BACKSTOP    5000   /* full reload, ms */
#define NGX_HTTP_CG_REDIS_HEARTBEAT   1000
#define NGX_HTTP_CG_REDIS_NODE_TTL    5000   /* a node is live so long */


typedef struct {
    ngx_http_cg_redis_conf_t   *conf;     /* NULL: no Redis in this worker */
    ngx_http_cg_route_t        *link;
    ngx_http_cg_route_t        *sub;
    ngx_event_t                 poll;
    ngx_uint_t                  nodes;    /* live, from heartbeats */
    ngx_uint_t                  outages;
    ngx_uint_t                  back;     /* the link is back: next poll */
    ngx_msec_t                  last_beat;
    ngx_str_t                   k_channel;
    ngx_str_t                   k_nodes;
    ngx_str_t                   node_id;
} ngx_http_cg_redis_worker_t;


static ngx_http_cg_redis_worker_t  ngx_http_cg_redis_w;


static void ngx_http_cg_redis_on_state(ngx_http_cg_route_t *link,
    ngx_uint_t ready);
static void ngx_http_cg_redis_on_sub_state(ngx_http_cg_route_t *link,
    ngx_uint_t ready);
static void ngx_http_cg_redis_on_push(ngx_http_cg_link_t *link,
    redisReply *reply, void *data);
static void ngx_http_cg_redis_poll(ngx_event_t *ev);


/* directives */

static ngx_http_cg_redis_conf_t *
ngx_http_cg_redis_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_redis_conf_t  **rcfp = (void *) ((char *) conf + cmd->offset);

    ngx_http_cg_redis_conf_t   *rcf;

    if (*rcfp) {
        return *rcfp;
    }

    rcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cg_redis_conf_t));
    if (rcf == NULL) {
        return NULL;
    }

    rcf->lease.policy = NGX_CONF_UNSET_UINT;
    rcf->lease.closed_status = NGX_CONF_UNSET_UINT;
    rcf->lease.nodes = NGX_CONF_UNSET_UINT;
    rcf->lease.lease = NGX_CONF_UNSET_MSEC;
    rcf->lease.ahead = NGX_CONF_UNSET_UINT;
    rcf->refresh = NGX_CONF_UNSET_MSEC;

    *rcfp = rcf;

    return rcf;
}


char *
ngx_http_cg_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_redis_conf_t  *rcf;

    rcf = ngx_http_cg_redis_conf(cf, cmd, conf);
    if (rcf == NULL) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_cg_link_directive(cf, &rcf->server);
}


/* client_guard_node name: this node to the others, the host name if unset */

char *
ngx_http_cg_redis_node_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    u_char                    *p;
    ngx_str_t                 *value;
    ngx_http_cg_redis_conf_t  *rcf;

    rcf = ngx_http_cg_redis_conf(cf, cmd, conf);
    if (rcf == NULL) {
        return NGX_CONF_ERROR;
    }

    if (rcf->node.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (p = value[1].data; p < value[1].data + value[1].len; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') {
            break;
        }
    }

    if (value[1].len == 0 || value[1].len > 64
        || p < value[1].data + value[1].len)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid node name \"%V\" in \"%V\": 1 to 64 "
                           "printable characters, no space or quote",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    rcf->node = value[1];

    return NGX_CONF_OK;
}


/* client_guard_redis_failure open | closed[=status] | local [nodes=N] */

char *
ngx_http_cg_redis_failure_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_int_t                  n;
    ngx_str_t                 *value;
    ngx_http_cg_lease_conf_t  *scf;
    ngx_http_cg_redis_conf_t  *rcf;

    rcf = ngx_http_cg_redis_conf(cf, cmd, conf);
    if (rcf == NULL) {
        return NGX_CONF_ERROR;
    }

    scf = &rcf->lease;

    if (scf->policy != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "open") == 0) {
        scf->policy = NGX_HTTP_CG_FAIL_OPEN;

    } else if (ngx_strcmp(value[1].data, "local") == 0) {
        scf->policy = NGX_HTTP_CG_FAIL_LOCAL;

    } else if (ngx_strcmp(value[1].data, "closed") == 0) {
        scf->policy = NGX_HTTP_CG_FAIL_CLOSED;

    } else if (ngx_strncmp(value[1].data, "closed=", 7) == 0) {
        scf->policy = NGX_HTTP_CG_FAIL_CLOSED;

        n = ngx_atoi(value[1].data + 7, value[1].len - 7);
        if (n == NGX_ERROR || n < 400 || n > 599) {
            goto invalid;
        }

        scf->closed_status = n;

    } else {
        goto invalid;
    }

    if (cf->args->nelts == 3) {
        if (scf->policy != NGX_HTTP_CG_FAIL_LOCAL
            || ngx_strncmp(value[2].data, "nodes=", 6) != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in "
                               "\"client_guard_redis_failure\", only "
                               "\"local\" takes \"nodes=N\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        n = ngx_atoi(value[2].data + 6, value[2].len - 6);
        if (n == NGX_ERROR || n < 1 || n > 1000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in "
                               "\"client_guard_redis_failure\", expected "
                               "nodes from 1 to 1000", &value[2]);
            return NGX_CONF_ERROR;
        }

        scf->nodes = n;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"client_guard_redis_failure\""
                       ", expected \"open\", \"closed[=status]\" with a "
                       "status from 400 to 599, or \"local\"", &value[1]);
    return NGX_CONF_ERROR;
}


/* client_guard_redis_lease time [refresh=time] [ahead=number|off] */

char *
ngx_http_cg_redis_lease_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_int_t                  n;
    ngx_str_t                 *value, s;
    ngx_msec_t                 ms;
    ngx_uint_t                 i;
    ngx_http_cg_lease_conf_t  *scf;
    ngx_http_cg_redis_conf_t  *rcf;

    rcf = ngx_http_cg_redis_conf(cf, cmd, conf);
    if (rcf == NULL) {
        return NGX_CONF_ERROR;
    }

    scf = &rcf->lease;

    if (scf->lease != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        s = value[i];

        if (i > 1 && s.len > 6 && ngx_strncmp(s.data, "ahead=", 6) == 0) {

            if (scf->ahead != NGX_CONF_UNSET_UINT) {
                goto invalid;
            }

            s.data += 6;
            s.len -= 6;

            if (s.len == 3 && ngx_strncmp(s.data, "off", 3) == 0) {
                scf->ahead = 0;
                continue;
            }

            n = ngx_atoi(s.data, s.len);

            if (n == NGX_ERROR || n > 1000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid value \"%V\" in "
                                   "\"client_guard_redis_lease\", expected "
                                   "ahead=off or a number from 0 to 1000",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            scf->ahead = n;
            continue;
        }

        if (i > 1) {
            if (s.len < 8 || ngx_strncmp(s.data, "refresh=", 8) != 0
                || rcf->refresh != NGX_CONF_UNSET_MSEC)
            {
                goto invalid;
            }

            s.data += 8;
            s.len -= 8;
        }

        ms = ngx_parse_time(&s, 0);

        if (ms == (ngx_msec_t) NGX_ERROR || ms < 10 || ms > 60000) {
            goto invalid;
        }

        if (i == 1) {
            scf->lease = ms;

        } else {
            rcf->refresh = ms;
        }
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"client_guard_redis_lease\""
                       ", expected a time from 10ms to 60s, "
                       "\"refresh=\" with such a time, or \"ahead=\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


char *
ngx_http_cg_redis_init_conf(ngx_conf_t *cf, ngx_http_cg_redis_conf_t *rcf)
{
    if (rcf == NULL) {
        return NGX_CONF_OK;
    }

    if (rcf->server == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"client_guard_redis_failure\", "
                           "\"client_guard_redis_lease\" and "
                           "\"client_guard_node\" need "
                           "\"client_guard_redis\"");
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_uint_value(rcf->lease.policy, NGX_HTTP_CG_FAIL_LOCAL);
    ngx_conf_init_uint_value(rcf->lease.closed_status,
                             NGX_HTTP_SERVICE_UNAVAILABLE);
    ngx_conf_init_uint_value(rcf->lease.nodes, 1);
    ngx_conf_init_msec_value(rcf->lease.lease, 100);
    ngx_conf_init_uint_value(rcf->lease.ahead, 8);
    ngx_conf_init_msec_value(rcf->refresh, 500);

    return NGX_CONF_OK;
}


/* worker start and exit */

/*
 * The start of init_process of a part with a per-worker Redis link (cg_redis
 * and the status publication): NGX_OK with the main conf and this node's
 * name (client_guard_node, the host name by default) in a worker (or the
 * single process) when client_guard_redis is set; NGX_DECLINED where there
 * is no link to set up.
 */

ngx_int_t
ngx_http_cg_redis_worker_conf(ngx_cycle_t *cycle,
    ngx_http_cg_main_conf_t **mcfp, ngx_str_t *node)
{
    ngx_http_cg_main_conf_t  *mcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_DECLINED;
    }

    if (cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return NGX_DECLINED;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_client_guard_module);

    if (mcf == NULL || mcf->redis == NULL) {
        return NGX_DECLINED;
    }

    *node = mcf->node;
    *mcfp = mcf;

    return NGX_OK;
}


ngx_int_t
ngx_http_cg_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_int_t                    rc;
    ngx_http_cg_main_conf_t     *mcf;
    ngx_http_cg_redis_conf_t    *rcf;
    ngx_http_cg_redis_worker_t  *w;

    w = &ngx_http_cg_redis_w;

    ngx_memzero(w, sizeof(ngx_http_cg_redis_worker_t));

    rc = ngx_http_cg_redis_worker_conf(cycle, &mcf, &w->node_id);
    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_OK : NGX_ERROR;
    }

    rcf = mcf->redis;
    w->conf = rcf;

    if (ngx_http_cg_link_key(cycle->pool, rcf->server, &w->k_channel,
                             "changes")
           != NGX_OK
        || ngx_http_cg_link_key(cycle->pool, rcf->server, &w->k_nodes,
                                "nodes")
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    w->link = ngx_http_cg_route_create(cycle, rcf->server,
                                       ngx_http_cg_redis_on_state, NULL, w);
    w->sub = ngx_http_cg_route_create(cycle, rcf->server,
                                      ngx_http_cg_redis_on_sub_state,
                                      ngx_http_cg_redis_on_push, w);

    if (w->link == NULL || w->sub == NULL
        || ngx_http_cg_sentinel_follow(w->link->link) != NGX_OK
        || ngx_http_cg_sentinel_follow(w->sub->link) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the subscriber only logs at debug level: the main link speaks */
    ngx_http_cg_route_quiet(w->sub);

    /* a Cluster's notices reach every node: any master of the map */
    ngx_http_cg_route_follow(w->sub, w->link);

    /* the parts that use the link, from the bottom up */

    if (ngx_http_cg_redis_quota_init(cycle, w->link, rcf->server) != NGX_OK
        || ngx_http_cg_redis_restore_init(cycle, w->link, rcf->server,
                                          &w->node_id,
                                          ngx_http_cg_redis_quota_load)
           != NGX_OK
        || ngx_http_cg_lease_batch_init(cycle, w->link, &rcf->server->prefix,
                                        rcf->lease.lease, rcf->lease.ahead,
                                        ngx_http_cg_lease_wake)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_cg_lease_init(cycle, w->link, &rcf->lease,
                           rcf->server->timeout);

    w->poll.handler = ngx_http_cg_redis_poll;
    w->poll.data = w;
    w->poll.log = cycle->log;
    w->poll.cancelable = 1;

    ngx_http_cg_route_start(w->link);
    ngx_http_cg_route_start(w->sub);

    ngx_add_timer(&w->poll, rcf->refresh);

    return NGX_OK;
}


void
ngx_http_cg_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_cg_redis_worker_t  *w;

    w = &ngx_http_cg_redis_w;

    if (w->conf == NULL) {
        return;
    }

    if (w->poll.timer_set) {
        ngx_del_timer(&w->poll);
    }

    /* waiting requests end with the process, then the links and fetches */

    ngx_http_cg_lease_exit();

    ngx_http_cg_route_stop(w->sub);
    ngx_http_cg_route_stop(w->link);
    ngx_http_cg_sentinel_exit();

    ngx_http_cg_lease_batch_exit();
    ngx_http_cg_redis_restore_exit();
    ngx_http_cg_redis_quota_exit();

    w->conf = NULL;
}


/* link events */

static void
ngx_http_cg_redis_on_state(ngx_http_cg_route_t *link, ngx_uint_t ready)
{
    ngx_http_cg_redis_worker_t  *w = link->data;

    if (ready) {
        w->last_beat = 0;

        /*
         * the script first, then the version: the definitions are read
         * again only if it changed (or is gone), not by every worker of
         * every node at once after each outage
         */

        ngx_http_cg_lease_batch_ready();
        w->back = 1;
        ngx_http_cg_redis_poll(&w->poll);

    } else {
        w->outages++;

        /* like the commands pending on the link, fetches not sent fail */
        ngx_http_cg_lease_batch_abort();
    }

    /* waiters decide now: by a lease, or by the failure policy */

    ngx_http_cg_lease_wake();
}


static void
ngx_http_cg_redis_subscribed(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_http_cg_link_fail(link, "SUBSCRIBE failed");
    }
}


static void
ngx_http_cg_redis_on_sub_state(ngx_http_cg_route_t *link, ngx_uint_t ready)
{
    const char                 *argv[2];
    size_t                      len[2];
    ngx_http_cg_redis_worker_t  *w = link->data;

    if (!ready) {
        return;
    }

    argv[0] = "SUBSCRIBE";
    len[0] = 9;
    argv[1] = (const char *) w->k_channel.data;
    len[1] = w->k_channel.len;

    (void) ngx_http_cg_route_send(link, 2, argv, len,
                                  ngx_http_cg_redis_subscribed, w);

    /* a change may have been published while we were away: it bumped */
    ngx_http_cg_redis_quota_poll((ngx_msec_t) -1);
}


static void
ngx_http_cg_redis_on_push(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 3
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[0]->len == 7
        && ngx_strncmp(reply->element[0]->str, "message", 7) == 0)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, link->log, 0,
                       "client guard: change notice");
        ngx_http_cg_redis_quota_load();
    }
}


static void
ngx_http_cg_redis_beat_done(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_redis_worker_t  *w = data;

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
        w->nodes = (ngx_uint_t) reply->integer;
        ngx_http_cg_lease_nodes(w->nodes);
    }
}


static void
ngx_http_cg_redis_poll(ngx_event_t *ev)
{
    u_char                       now[NGX_INT64_LEN], old[NGX_INT64_LEN + 1];
    size_t                       len[4];
    int64_t                      ms;
    ngx_time_t                  *tp;
    const char                  *argv[4];
    ngx_http_cg_redis_worker_t  *w = ev->data;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    if (!ngx_exiting && !ngx_quit && !ngx_terminate) {
        ngx_add_timer(ev, w->conf->refresh);
    }

    if (!ngx_http_cg_route_ready(w->link)) {
        return;
    }

    /* the link back: the version only, and the backstop starts again */

    ngx_http_cg_redis_quota_poll(w->back ? (ngx_msec_t) -1
                                         : NGX_HTTP_CG_REDIS_BACKSTOP);
    w->back = 0;

    if (w->last_beat
        && ngx_current_msec - w->last_beat < NGX_HTTP_CG_REDIS_HEARTBEAT)
    {
        return;
    }

    w->last_beat = ngx_current_msec;

    tp = ngx_timeofday();
    ms = (int64_t) tp->sec * 1000 + tp->msec;

    argv[0] = "ZADD";
    len[0] = 4;
    argv[1] = (const char *) w->k_nodes.data;
    len[1] = w->k_nodes.len;
    argv[2] = (const char *) now;
    len[2] = ngx_sprintf(now, "%L", ms) - now;
    argv[3] = (const char *) w->node_id.data;
    len[3] = w->node_id.len;

    (void) ngx_http_cg_route_send(w->link, 4, argv, len, NULL, NULL);

    argv[0] = "ZREMRANGEBYSCORE";
    len[0] = 16;
    argv[2] = "-inf";
    len[2] = 4;
    argv[3] = (const char *) old;
    len[3] = ngx_sprintf(old, "(%L", ms - NGX_HTTP_CG_REDIS_NODE_TTL) - old;

    (void) ngx_http_cg_route_send(w->link, 4, argv, len, NULL, NULL);

    argv[0] = "ZCARD";
    len[0] = 5;

    (void) ngx_http_cg_route_send(w->link, 2, argv, len,
                                 ngx_http_cg_redis_beat_done, w);
}


/* for the status output */

ngx_uint_t
ngx_http_cg_redis_link_state(void)
{
    return ngx_http_cg_redis_w.link
           ? ngx_http_cg_route_state(ngx_http_cg_redis_w.link)
           : NGX_HTTP_CG_LINK_IDLE;
}


ngx_uint_t
ngx_http_cg_redis_outages(void)
{
    return ngx_http_cg_redis_w.outages;
}


ngx_uint_t
ngx_http_cg_redis_live_nodes(void)
{
    return ngx_http_cg_redis_w.nodes;
}
