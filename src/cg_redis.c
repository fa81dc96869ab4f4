
/*
 * Copyright (C) client guard authors
 *
 * cg_redis: the Redis part of enforcement, its worker state and links.
 *
 * Owns: the client_guard_redis* directives, the per-worker state with its
 * two links (commands, and the pub/sub subscriber for change notices),
 * worker start and exit, the link callbacks, the version poll with the
 * periodic backstop reload, node heartbeats, the failure policy, the
 * figures the status output reads and the $client_guard_redis variable.
 * Quota definitions and API keys are in cg_redis_quota.c, leases and
 * waiting requests in cg_redis_lease.c.  See cg_redis.h, docs/redis.md.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>

#include "cg_common.h"
#include "cg_redis_int.h"


#define NGX_HTTP_CG_REDIS_BACKSTOP    5000   /* full reload, ms */
#define NGX_HTTP_CG_REDIS_HEARTBEAT   1000
#define NGX_HTTP_CG_REDIS_NODE_TTL    5000   /* a node is live so long */


ngx_http_cg_redis_worker_t  ngx_http_cg_redis_w;


static ngx_str_t  ngx_http_cg_redis_names[] = {
    ngx_null_string,
    ngx_string("LEASE"),
    ngx_string("WAITED"),
    ngx_string("DOWN_OPEN"),
    ngx_string("DOWN_CLOSED"),
    ngx_string("DOWN_LOCAL"),
    ngx_string("AHEAD")
};


static void ngx_http_cg_redis_on_state(ngx_http_cg_link_t *link,
    ngx_uint_t ready);
static void ngx_http_cg_redis_on_sub_state(ngx_http_cg_link_t *link,
    ngx_uint_t ready);
static void ngx_http_cg_redis_on_push(ngx_http_cg_link_t *link,
    redisReply *reply, void *data);
static void ngx_http_cg_redis_poll(ngx_event_t *ev);


/* directives */

static ngx_http_cg_redis_conf_t *
ngx_http_cg_redis_conf(ngx_conf_t *cf, ngx_http_cg_main_conf_t *mcf)
{
    ngx_http_cg_redis_conf_t  *scf;

    if (mcf->redis) {
        return mcf->redis;
    }

    scf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cg_redis_conf_t));
    if (scf == NULL) {
        return NULL;
    }

    scf->policy = NGX_CONF_UNSET_UINT;
    scf->closed_status = NGX_CONF_UNSET_UINT;
    scf->nodes = NGX_CONF_UNSET_UINT;
    scf->lease = NGX_CONF_UNSET_MSEC;
    scf->refresh = NGX_CONF_UNSET_MSEC;
    scf->ahead = NGX_CONF_UNSET_UINT;

    mcf->redis = scf;

    return scf;
}


char *
ngx_http_cg_redis_cmd(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_redis_conf_t  *scf;

    scf = ngx_http_cg_redis_conf(cf, conf);
    if (scf == NULL) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_cg_link_directive(cf, &scf->server);
}


/* client_guard_redis_failure open | closed[=status] | local [nodes=N] */

char *
ngx_http_cg_redis_failure_cmd(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_int_t                 n;
    ngx_str_t                *value;
    ngx_http_cg_redis_conf_t  *scf;

    scf = ngx_http_cg_redis_conf(cf, conf);
    if (scf == NULL) {
        return NGX_CONF_ERROR;
    }

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
ngx_http_cg_redis_lease_cmd(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_int_t                 n;
    ngx_str_t                *value, s;
    ngx_msec_t                ms;
    ngx_uint_t                i;
    ngx_http_cg_redis_conf_t  *scf;

    scf = ngx_http_cg_redis_conf(cf, conf);
    if (scf == NULL) {
        return NGX_CONF_ERROR;
    }

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
                || scf->refresh != NGX_CONF_UNSET_MSEC)
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
            scf->refresh = ms;
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
ngx_http_cg_redis_init_conf(ngx_conf_t *cf, ngx_http_cg_redis_conf_t *scf)
{
    if (scf == NULL) {
        return NGX_CONF_OK;
    }

    if (scf->server == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"client_guard_redis_failure\" and "
                           "\"client_guard_redis_lease\" need "
                           "\"client_guard_redis\"");
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_uint_value(scf->policy, NGX_HTTP_CG_FAIL_LOCAL);
    ngx_conf_init_uint_value(scf->closed_status,
                             NGX_HTTP_SERVICE_UNAVAILABLE);
    ngx_conf_init_uint_value(scf->nodes, 1);
    ngx_conf_init_msec_value(scf->lease, 100);
    ngx_conf_init_msec_value(scf->refresh, 500);
    ngx_conf_init_uint_value(scf->ahead, 8);

    return NGX_CONF_OK;
}


/* worker start and exit */

static ngx_int_t
ngx_http_cg_redis_key(ngx_cycle_t *cycle, ngx_str_t *key, const char *name)
{
    ngx_str_t  *prefix;

    prefix = &ngx_http_cg_redis_w.conf->server->prefix;

    key->len = prefix->len + ngx_strlen(name);
    key->data = ngx_pnalloc(cycle->pool, key->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(key->data, "%V%s", prefix, name);

    return NGX_OK;
}


/*
 * The start of init_process of a part with a per-worker Redis link (cg_redis
 * and the status publication): NGX_OK with the main conf and this node's
 * name, "host:master-pid", in a worker (or the single process) when
 * client_guard_redis is set; NGX_DECLINED where there is no link to set up.
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

    node->data = ngx_pnalloc(cycle->pool,
                             cycle->hostname.len + NGX_INT_T_LEN + 1);
    if (node->data == NULL) {
        return NGX_ERROR;
    }

    node->len = ngx_sprintf(node->data, "%V:%P", &cycle->hostname,
                            ngx_process == NGX_PROCESS_WORKER
                            ? getppid() : ngx_pid)
                - node->data;

    *mcfp = mcf;

    return NGX_OK;
}


ngx_int_t
ngx_http_cg_redis_init_process(ngx_cycle_t *cycle)
{
    u_char                    md[SHA_DIGEST_LENGTH];
    ngx_int_t                 rc;
    ngx_http_cg_main_conf_t  *mcf;
    ngx_http_cg_redis_worker_t *w;

    w = &ngx_http_cg_redis_w;

    ngx_memzero(w, sizeof(ngx_http_cg_redis_worker_t));
    ngx_queue_init(&w->waiters);

    rc = ngx_http_cg_redis_worker_conf(cycle, &mcf, &w->node_id);
    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_OK : NGX_ERROR;
    }

    w->conf = mcf->redis;

    if (ngx_http_cg_redis_key(cycle, &w->k_quotas, "quotas") != NGX_OK
        || ngx_http_cg_redis_key(cycle, &w->k_keys, "apikeys") != NGX_OK
        || ngx_http_cg_redis_key(cycle, &w->k_version, "version") != NGX_OK
        || ngx_http_cg_redis_key(cycle, &w->k_channel, "changes") != NGX_OK
        || ngx_http_cg_redis_key(cycle, &w->k_nodes, "nodes") != NGX_OK)
    {
        return NGX_ERROR;
    }

    SHA1((const u_char *) ngx_http_cg_redis_script,
         ngx_http_cg_redis_script_len, md);
    ngx_hex_dump(w->sha, md, SHA_DIGEST_LENGTH);

    w->link = ngx_http_cg_link_create(cycle, w->conf->server,
                                       ngx_http_cg_redis_on_state, NULL, w);
    w->sub = ngx_http_cg_link_create(cycle, w->conf->server,
                                      ngx_http_cg_redis_on_sub_state,
                                      ngx_http_cg_redis_on_push, w);

    if (w->link == NULL || w->sub == NULL) {
        return NGX_ERROR;
    }

    /* the subscriber only logs at debug level: the main link speaks */
    w->sub->quiet = 1;

    w->poll.handler = ngx_http_cg_redis_poll;
    w->poll.data = w;
    w->poll.log = cycle->log;
    w->poll.cancelable = 1;

    w->wake.handler = ngx_http_cg_redis_wake_handler;
    w->wake.data = w;
    w->wake.log = cycle->log;

    if (ngx_http_cg_redis_batch_init(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_cg_link_start(w->link);
    ngx_http_cg_link_start(w->sub);

    ngx_add_timer(&w->poll, w->conf->refresh);

    return NGX_OK;
}


void
ngx_http_cg_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                *q;
    ngx_http_cg_fetch_t        *f;
    ngx_http_cg_redis_req_t     *s;
    ngx_http_cg_redis_worker_t  *w;

    w = &ngx_http_cg_redis_w;

    if (w->conf == NULL) {
        return;
    }

    if (w->poll.timer_set) {
        ngx_del_timer(&w->poll);
    }

    if (w->wake.timer_set) {
        ngx_del_timer(&w->wake);
    }

    /* requests still waiting end with the process: never resume them */

    while (!ngx_queue_empty(&w->waiters)) {
        q = ngx_queue_head(&w->waiters);
        ngx_queue_remove(q);
        s = ngx_queue_data(q, ngx_http_cg_redis_req_t, queue);
        s->waiting = 0;
    }

    ngx_http_cg_link_stop(w->sub);
    ngx_http_cg_link_stop(w->link);

    /* fetches not sent yet end too, their records unpinned */
    ngx_http_cg_redis_batch_exit();

    if (w->building) {
        ngx_destroy_pool(w->building->pool);
        w->building = NULL;
    }

    if (w->snap) {
        ngx_destroy_pool(w->snap->pool);
        w->snap = NULL;
    }

    while (w->free) {
        f = w->free;
        w->free = f->next;
        ngx_free(f);
    }

    w->conf = NULL;
}


/* link events */

static void
ngx_http_cg_redis_on_state(ngx_http_cg_link_t *link, ngx_uint_t ready)
{
    size_t                      len[3];
    const char                 *argv[3];
    ngx_http_cg_redis_worker_t  *w = link->data;

    if (!ready) {
        w->outages++;

        /* like the commands pending on the link, fetches not sent fail */
        ngx_http_cg_redis_batch_abort();
    }

    if (ready) {
        w->last_beat = 0;

        /* the lease script, cached ahead of the first EVALSHA */

        argv[0] = "SCRIPT";
        len[0] = 6;
        argv[1] = "LOAD";
        len[1] = 4;
        argv[2] = ngx_http_cg_redis_script;
        len[2] = ngx_http_cg_redis_script_len;

        (void) ngx_http_cg_link_send(link, 3, argv, len, NULL, NULL);

        ngx_http_cg_redis_load();
        ngx_http_cg_redis_poll(&w->poll);
    }

    /* waiters decide now: by a lease, or by the failure policy */

    ngx_http_cg_redis_wake();
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
ngx_http_cg_redis_on_sub_state(ngx_http_cg_link_t *link, ngx_uint_t ready)
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

    (void) ngx_http_cg_link_send(link, 2, argv, len,
                                  ngx_http_cg_redis_subscribed, w);

    /* a change may have been published while we were away */
    ngx_http_cg_redis_load();
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
        ngx_http_cg_redis_load();
    }
}


static void
ngx_http_cg_redis_beat_done(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
        ngx_http_cg_redis_w.nodes = (ngx_uint_t) reply->integer;
    }
}


static void
ngx_http_cg_redis_version_done(ngx_http_cg_link_t *link, redisReply *reply,
    void *data)
{
    uint64_t                    v;
    ngx_int_t                   n;
    ngx_http_cg_redis_worker_t  *w = &ngx_http_cg_redis_w;

    if (reply == NULL) {
        return;
    }

    v = 0;

    if (reply->type == REDIS_REPLY_STRING) {
        n = ngx_atoi((u_char *) reply->str, reply->len);
        v = n == NGX_ERROR ? (uint64_t) -1 : (uint64_t) n;
    }

    if (w->snap == NULL || w->snap->version != v) {
        ngx_http_cg_redis_load();
    }
}


static void
ngx_http_cg_redis_poll(ngx_event_t *ev)
{
    u_char                      now[NGX_INT64_LEN], old[NGX_INT64_LEN + 1];
    size_t                      len[4];
    int64_t                     ms;
    ngx_time_t                 *tp;
    const char                 *argv[4];
    ngx_http_cg_redis_worker_t  *w = ev->data;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    if (!ngx_exiting && !ngx_quit && !ngx_terminate) {
        ngx_add_timer(ev, w->conf->refresh);
    }

    if (!ngx_http_cg_link_ready(w->link)) {
        return;
    }

    if (ngx_current_msec - w->last_load >= NGX_HTTP_CG_REDIS_BACKSTOP) {
        ngx_http_cg_redis_load();

    } else {
        argv[0] = "GET";
        len[0] = 3;
        argv[1] = (const char *) w->k_version.data;
        len[1] = w->k_version.len;

        (void) ngx_http_cg_link_send(w->link, 2, argv, len,
                                      ngx_http_cg_redis_version_done, w);
    }

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

    (void) ngx_http_cg_link_send(w->link, 4, argv, len, NULL, NULL);

    argv[0] = "ZREMRANGEBYSCORE";
    len[0] = 16;
    argv[2] = "-inf";
    len[2] = 4;
    argv[3] = (const char *) old;
    len[3] = ngx_sprintf(old, "(%L", ms - NGX_HTTP_CG_REDIS_NODE_TTL) - old;

    (void) ngx_http_cg_link_send(w->link, 4, argv, len, NULL, NULL);

    argv[0] = "ZCARD";
    len[0] = 5;

    (void) ngx_http_cg_link_send(w->link, 2, argv, len,
                                  ngx_http_cg_redis_beat_done, w);
}


/* for the status output */

ngx_uint_t
ngx_http_cg_redis_link_state(void)
{
    return ngx_http_cg_redis_w.link ? ngx_http_cg_redis_w.link->state
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


/* the failure policy: NGX_OK decided, NGX_DECLINED decide locally */

ngx_int_t
ngx_http_cg_redis_policy(ngx_http_cg_ctx_t *ctx, ngx_http_cg_redis_req_t *s,
    cg_quota_t *quota, ngx_int_t *binding, cg_limit_result_t *res)
{
    uint32_t                  i;
    ngx_uint_t                nodes;
    ngx_http_cg_redis_conf_t  *scf;

    scf = ngx_http_cg_redis_w.conf;

    switch (scf->policy) {

    case NGX_HTTP_CG_FAIL_OPEN:
        s->how = NGX_HTTP_CG_REDIS_DOWN_OPEN;
        res->allowed = 1;
        return NGX_OK;

    case NGX_HTTP_CG_FAIL_CLOSED:
        s->how = NGX_HTTP_CG_REDIS_DOWN_CLOSED;
        res->allowed = 0;
        res->retry = 1000;
        ctx->code = scf->closed_status;
        return NGX_OK;

    default:
        break;
    }

    /* local: this node's share of the cluster's quota */

    s->how = NGX_HTTP_CG_REDIS_DOWN_LOCAL;

    nodes = ngx_http_cg_redis_w.nodes ? ngx_http_cg_redis_w.nodes : scf->nodes;

    if (nodes > 1) {
        for (i = 0; i < quota->nlimits; i++) {
            quota->limits[i].count = ngx_max(quota->limits[i].count / nodes,
                                             1);
            quota->limits[i].burst /= nodes;
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_cg_redis_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_cg_ctx_t       *ctx;
    ngx_http_cg_redis_req_t  *s;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_client_guard_module);

    s = ctx ? ctx->redis : NULL;

    if (s == NULL || s->how == NGX_HTTP_CG_REDIS_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_http_cg_redis_names[s->how].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ngx_http_cg_redis_names[s->how].data;

    return NGX_OK;
}
