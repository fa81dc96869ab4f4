
/*
 * Copyright (C) client guard authors
 *
 * cg_sync: quota definitions from Redis, cluster-wide counting through
 * allowance leases, the failure policy (see cg_sync.h, docs/redis.md).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>

#include "cg_common.h"
#include "cg_sync.h"


#define NGX_HTTP_CG_SYNC_BACKSTOP    5000   /* full reload, ms */
#define NGX_HTTP_CG_SYNC_HEARTBEAT   1000
#define NGX_HTTP_CG_SYNC_NODE_TTL    5000   /* a node is live so long */
#define NGX_HTTP_CG_SYNC_WAKE        2      /* waiters poll, ms */
#define NGX_HTTP_CG_SYNC_WANT_MAX    10000
#define NGX_HTTP_CG_SYNC_VALUE_MAX   1024
#define NGX_HTTP_CG_SYNC_ERRORS_MAX  64


#define NGX_HTTP_CG_TAKE_PASS        0
#define NGX_HTTP_CG_TAKE_REJECT      1
#define NGX_HTTP_CG_TAKE_WAIT        2
#define NGX_HTTP_CG_TAKE_DOWN        3


typedef struct ngx_http_cg_entry_s  ngx_http_cg_entry_t;

struct ngx_http_cg_entry_s {
    ngx_http_cg_entry_t        *next;
    uint32_t                    hash;
    ngx_str_t                   name;     /* client name, or key hex */
    ngx_str_t                   value;    /* quota text, or client name */
    cg_quota_t                  quota;
};


typedef struct {
    ngx_pool_t                 *pool;
    ngx_http_cg_entry_t       **quotas;
    ngx_uint_t                  nquotas;  /* buckets, a power of two */
    ngx_http_cg_entry_t       **keys;
    ngx_uint_t                  nkeys;
    ngx_http_cg_entry_t        *dflt;
    ngx_array_t                 errors;   /* ngx_http_cg_sync_error_t */
    uint64_t                    version;
} ngx_http_cg_snap_t;


/* a lease request in flight: worker memory, never a request's pool */

typedef struct ngx_http_cg_fetch_s  ngx_http_cg_fetch_t;

struct ngx_http_cg_fetch_s {
    ngx_http_cg_fetch_t        *next;     /* free list */
    ngx_http_cg_zone_t         *zone;
    cg_quota_t                  quota;
    uint32_t                    qhash;
    uint32_t                    hash;
    uint32_t                    want;
    ngx_uint_t                  retried;
    uint32_t                    started;
    size_t                      len;
    u_char                      name[CG_NAME_MAX];
};


/* per request, in r->pool; linked into the waiters only while waiting */

typedef struct {
    ngx_queue_t                 queue;
    ngx_http_request_t         *r;
    ngx_http_cg_zone_t         *zone;
    ngx_str_t                   name;
    cg_quota_t                  quota;
    uint32_t                    qhash;
    uint32_t                    hash;
    ngx_msec_t                  deadline;
    ngx_uint_t                  how;      /* NGX_HTTP_CG_SYNC_* */
    ngx_uint_t                  take;     /* NGX_HTTP_CG_TAKE_* */
    uint64_t                    retry;
    uint64_t                    remaining;
    unsigned                    waiting:1;
    unsigned                    resumed:1;
} ngx_http_cg_sync_req_t;


typedef struct {
    ngx_http_cg_sync_conf_t    *conf;
    ngx_http_cg_redis_t        *link;
    ngx_http_cg_redis_t        *sub;
    ngx_http_cg_snap_t         *snap;
    ngx_http_cg_snap_t         *building;
    ngx_event_t                 poll;
    ngx_event_t                 wake;
    ngx_queue_t                 waiters;
    ngx_http_cg_fetch_t        *free;
    ngx_uint_t                  nodes;    /* live, from heartbeats */
    ngx_uint_t                  outages;
    ngx_msec_t                  broken;   /* lease script failing until */
    time_t                      loaded;   /* the snapshot, wall clock */
    ngx_uint_t                  loading;
    ngx_uint_t                  reload;   /* a change seen while loading */
    ngx_msec_t                  last_load;
    ngx_msec_t                  last_beat;
    u_char                      sha[2 * SHA_DIGEST_LENGTH + 1];
    ngx_str_t                   k_quotas;
    ngx_str_t                   k_keys;
    ngx_str_t                   k_version;
    ngx_str_t                   k_channel;
    ngx_str_t                   k_nodes;
    ngx_str_t                   node_id;
} ngx_http_cg_sync_worker_t;


static ngx_http_cg_sync_worker_t  ngx_http_cg_sync_w;


static ngx_str_t  ngx_http_cg_sync_names[] = {
    ngx_null_string,
    ngx_string("LEASE"),
    ngx_string("WAITED"),
    ngx_string("DOWN_OPEN"),
    ngx_string("DOWN_CLOSED"),
    ngx_string("DOWN_LOCAL")
};


/*
 * The lease script.  KEYS: one per limit.  ARGV[1]: units wanted; then per
 * limit: "r" or "w", count, period (ms), burst.  Grants min(wanted, what
 * every limit still has), fewer near the end of a window, charges every
 * limit, and returns { granted, ms until a unit is free when none is }.
 * A rate is a GCRA bucket whose TAT (us, Redis TIME) lives in the key; a
 * window is a counter in a key named after the window number.
 */

static const char  ngx_http_cg_sync_script[] =
    "local want = tonumber(ARGV[1])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local grant = want\n"
    "local wavail = nil\n"
    "local retry = 0\n"
    "local st = {}\n"
    "for i = 1, #KEYS do\n"
    "  local b = 2 + (i - 1) * 4\n"
    "  local count = tonumber(ARGV[b + 1])\n"
    "  local period = tonumber(ARGV[b + 2]) * 1000\n"
    "  local a, r\n"
    "  if ARGV[b] == 'r' then\n"
    "    local T = period / count\n"
    "    local tau = tonumber(ARGV[b + 3]) * T\n"
    "    local tat = tonumber(redis.call('GET', KEYS[i]) or now)\n"
    "    if tat < now then tat = now end\n"
    "    local x = now + tau - tat\n"
    "    if x < 0 then a = 0 else a = math.floor(x / T) + 1 end\n"
    "    r = tat - tau - now\n"
    "    st[i] = { tat, T }\n"
    "  else\n"
    "    local used = tonumber(redis.call('GET', KEYS[i]) or 0)\n"
    "    a = count - used\n"
    "    if a < 0 then a = 0 end\n"
    "    r = period - (now % period)\n"
    "    if wavail == nil or a < wavail then wavail = a end\n"
    "  end\n"
    "  if a < grant then grant = a end\n"
    "  if a == 0 and r > retry then retry = r end\n"
    "end\n"
    "if wavail ~= nil and wavail < want * 8 then\n"
    "  local s = math.floor(wavail / 8)\n"
    "  if s < 1 then s = 1 end\n"
    "  if s < grant then grant = s end\n"
    "end\n"
    "if grant > 0 then\n"
    "  for i = 1, #KEYS do\n"
    "    local b = 2 + (i - 1) * 4\n"
    "    if ARGV[b] == 'r' then\n"
    "      local tat = st[i][1] + grant * st[i][2]\n"
    "      redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX',\n"
    "                 math.ceil((tat - now) / 1000) + 1000)\n"
    "    else\n"
    "      redis.call('INCRBY', KEYS[i], grant)\n"
    "      redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[b + 2]) + 60000)\n"
    "    end\n"
    "  end\n"
    "  retry = 0\n"
    "end\n"
    "return { grant, math.ceil(retry / 1000) }\n";


static void ngx_http_cg_sync_on_state(ngx_http_cg_redis_t *link,
    ngx_uint_t ready);
static void ngx_http_cg_sync_on_sub_state(ngx_http_cg_redis_t *link,
    ngx_uint_t ready);
static void ngx_http_cg_sync_on_push(ngx_http_cg_redis_t *link,
    redisReply *reply, void *data);
static void ngx_http_cg_sync_poll(ngx_event_t *ev);
static void ngx_http_cg_sync_load(void);
static void ngx_http_cg_sync_wake_handler(ngx_event_t *ev);
static void ngx_http_cg_sync_wake(void);
static ngx_int_t ngx_http_cg_sync_fetch_send(ngx_http_cg_fetch_t *f);


/* directives */

static ngx_http_cg_sync_conf_t *
ngx_http_cg_sync_conf(ngx_conf_t *cf, ngx_http_cg_main_conf_t *mcf)
{
    ngx_http_cg_sync_conf_t  *scf;

    if (mcf->sync) {
        return mcf->sync;
    }

    scf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cg_sync_conf_t));
    if (scf == NULL) {
        return NULL;
    }

    scf->policy = NGX_CONF_UNSET_UINT;
    scf->closed_status = NGX_CONF_UNSET_UINT;
    scf->nodes = NGX_CONF_UNSET_UINT;
    scf->lease = NGX_CONF_UNSET_MSEC;
    scf->refresh = NGX_CONF_UNSET_MSEC;

    mcf->sync = scf;

    return scf;
}


char *
ngx_http_cg_sync_redis_cmd(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cg_sync_conf_t  *scf;

    scf = ngx_http_cg_sync_conf(cf, conf);
    if (scf == NULL) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_cg_redis_directive(cf, &scf->redis);
}


/* client_guard_redis_failure open | closed[=status] | local [nodes=N] */

char *
ngx_http_cg_sync_failure_cmd(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_int_t                 n;
    ngx_str_t                *value;
    ngx_http_cg_sync_conf_t  *scf;

    scf = ngx_http_cg_sync_conf(cf, conf);
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


/* client_guard_redis_lease time [refresh=time] */

char *
ngx_http_cg_sync_lease_cmd(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t                *value, s;
    ngx_msec_t                ms;
    ngx_uint_t                i;
    ngx_http_cg_sync_conf_t  *scf;

    scf = ngx_http_cg_sync_conf(cf, conf);
    if (scf == NULL) {
        return NGX_CONF_ERROR;
    }

    if (scf->lease != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        s = value[i];

        if (i > 1) {
            if (ngx_strncmp(s.data, "refresh=", 8) != 0) {
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
                       ", expected a time from 10ms to 60s", &value[i]);
    return NGX_CONF_ERROR;
}


char *
ngx_http_cg_sync_init_conf(ngx_conf_t *cf, ngx_http_cg_sync_conf_t *scf)
{
    if (scf == NULL) {
        return NGX_CONF_OK;
    }

    if (scf->redis == NULL) {
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

    return NGX_CONF_OK;
}


/* worker start and exit */

static ngx_int_t
ngx_http_cg_sync_key(ngx_cycle_t *cycle, ngx_str_t *key, const char *name)
{
    ngx_str_t  *prefix;

    prefix = &ngx_http_cg_sync_w.conf->redis->prefix;

    key->len = prefix->len + ngx_strlen(name);
    key->data = ngx_pnalloc(cycle->pool, key->len);
    if (key->data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(key->data, "%V%s", prefix, name);

    return NGX_OK;
}


ngx_int_t
ngx_http_cg_sync_init_process(ngx_cycle_t *cycle)
{
    u_char                    md[SHA_DIGEST_LENGTH];
    ngx_http_cg_main_conf_t  *mcf;
    ngx_http_cg_sync_worker_t *w;

    w = &ngx_http_cg_sync_w;

    ngx_memzero(w, sizeof(ngx_http_cg_sync_worker_t));
    ngx_queue_init(&w->waiters);

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return NGX_OK;
    }

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_client_guard_module);

    if (mcf == NULL || mcf->sync == NULL) {
        return NGX_OK;
    }

    w->conf = mcf->sync;

    if (ngx_http_cg_sync_key(cycle, &w->k_quotas, "quotas") != NGX_OK
        || ngx_http_cg_sync_key(cycle, &w->k_keys, "apikeys") != NGX_OK
        || ngx_http_cg_sync_key(cycle, &w->k_version, "version") != NGX_OK
        || ngx_http_cg_sync_key(cycle, &w->k_channel, "changes") != NGX_OK
        || ngx_http_cg_sync_key(cycle, &w->k_nodes, "nodes") != NGX_OK)
    {
        return NGX_ERROR;
    }

    w->node_id.data = ngx_pnalloc(cycle->pool,
                                  cycle->hostname.len + NGX_INT_T_LEN + 1);
    if (w->node_id.data == NULL) {
        return NGX_ERROR;
    }

    w->node_id.len = ngx_sprintf(w->node_id.data, "%V:%P", &cycle->hostname,
                                 ngx_process == NGX_PROCESS_WORKER
                                 ? getppid() : ngx_pid)
                     - w->node_id.data;

    SHA1((const u_char *) ngx_http_cg_sync_script,
         sizeof(ngx_http_cg_sync_script) - 1, md);
    ngx_hex_dump(w->sha, md, SHA_DIGEST_LENGTH);

    w->link = ngx_http_cg_redis_create(cycle, w->conf->redis,
                                       ngx_http_cg_sync_on_state, NULL, w);
    w->sub = ngx_http_cg_redis_create(cycle, w->conf->redis,
                                      ngx_http_cg_sync_on_sub_state,
                                      ngx_http_cg_sync_on_push, w);

    if (w->link == NULL || w->sub == NULL) {
        return NGX_ERROR;
    }

    /* the subscriber only logs at debug level: the main link speaks */
    w->sub->quiet = 1;

    w->poll.handler = ngx_http_cg_sync_poll;
    w->poll.data = w;
    w->poll.log = cycle->log;
    w->poll.cancelable = 1;

    w->wake.handler = ngx_http_cg_sync_wake_handler;
    w->wake.data = w;
    w->wake.log = cycle->log;

    ngx_http_cg_redis_start(w->link);
    ngx_http_cg_redis_start(w->sub);

    ngx_add_timer(&w->poll, w->conf->refresh);

    return NGX_OK;
}


void
ngx_http_cg_sync_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                *q;
    ngx_http_cg_fetch_t        *f;
    ngx_http_cg_sync_req_t     *s;
    ngx_http_cg_sync_worker_t  *w;

    w = &ngx_http_cg_sync_w;

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
        s = ngx_queue_data(q, ngx_http_cg_sync_req_t, queue);
        s->waiting = 0;
    }

    ngx_http_cg_redis_stop(w->sub);
    ngx_http_cg_redis_stop(w->link);

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
ngx_http_cg_sync_on_state(ngx_http_cg_redis_t *link, ngx_uint_t ready)
{
    size_t                      len[3];
    const char                 *argv[3];
    ngx_http_cg_sync_worker_t  *w = link->data;

    if (!ready) {
        w->outages++;
    }

    if (ready) {
        w->last_beat = 0;

        /* the lease script, cached ahead of the first EVALSHA */

        argv[0] = "SCRIPT";
        len[0] = 6;
        argv[1] = "LOAD";
        len[1] = 4;
        argv[2] = ngx_http_cg_sync_script;
        len[2] = sizeof(ngx_http_cg_sync_script) - 1;

        (void) ngx_http_cg_redis_send(link, 3, argv, len, NULL, NULL);

        ngx_http_cg_sync_load();
        ngx_http_cg_sync_poll(&w->poll);
    }

    /* waiters decide now: by a lease, or by the failure policy */

    ngx_http_cg_sync_wake();
}


static void
ngx_http_cg_sync_subscribed(ngx_http_cg_redis_t *link, redisReply *reply,
    void *data)
{
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_http_cg_redis_fail(link, "SUBSCRIBE failed");
    }
}


static void
ngx_http_cg_sync_on_sub_state(ngx_http_cg_redis_t *link, ngx_uint_t ready)
{
    const char                 *argv[2];
    size_t                      len[2];
    ngx_http_cg_sync_worker_t  *w = link->data;

    if (!ready) {
        return;
    }

    argv[0] = "SUBSCRIBE";
    len[0] = 9;
    argv[1] = (const char *) w->k_channel.data;
    len[1] = w->k_channel.len;

    (void) ngx_http_cg_redis_send(link, 2, argv, len,
                                  ngx_http_cg_sync_subscribed, w);

    /* a change may have been published while we were away */
    ngx_http_cg_sync_load();
}


static void
ngx_http_cg_sync_on_push(ngx_http_cg_redis_t *link, redisReply *reply,
    void *data)
{
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 3
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[0]->len == 7
        && ngx_strncmp(reply->element[0]->str, "message", 7) == 0)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, link->log, 0,
                       "client guard: change notice");
        ngx_http_cg_sync_load();
    }
}


static void
ngx_http_cg_sync_beat_done(ngx_http_cg_redis_t *link, redisReply *reply,
    void *data)
{
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
        ngx_http_cg_sync_w.nodes = (ngx_uint_t) reply->integer;
    }
}


static void
ngx_http_cg_sync_version_done(ngx_http_cg_redis_t *link, redisReply *reply,
    void *data)
{
    uint64_t                    v;
    ngx_int_t                   n;
    ngx_http_cg_sync_worker_t  *w = &ngx_http_cg_sync_w;

    if (reply == NULL) {
        return;
    }

    v = 0;

    if (reply->type == REDIS_REPLY_STRING) {
        n = ngx_atoi((u_char *) reply->str, reply->len);
        v = n == NGX_ERROR ? (uint64_t) -1 : (uint64_t) n;
    }

    if (w->snap == NULL || w->snap->version != v) {
        ngx_http_cg_sync_load();
    }
}


static void
ngx_http_cg_sync_poll(ngx_event_t *ev)
{
    u_char                      now[NGX_INT64_LEN], old[NGX_INT64_LEN + 1];
    size_t                      len[4];
    int64_t                     ms;
    ngx_time_t                 *tp;
    const char                 *argv[4];
    ngx_http_cg_sync_worker_t  *w = ev->data;

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    if (!ngx_exiting && !ngx_quit && !ngx_terminate) {
        ngx_add_timer(ev, w->conf->refresh);
    }

    if (!ngx_http_cg_redis_ready(w->link)) {
        return;
    }

    if (ngx_current_msec - w->last_load >= NGX_HTTP_CG_SYNC_BACKSTOP) {
        ngx_http_cg_sync_load();

    } else {
        argv[0] = "GET";
        len[0] = 3;
        argv[1] = (const char *) w->k_version.data;
        len[1] = w->k_version.len;

        (void) ngx_http_cg_redis_send(w->link, 2, argv, len,
                                      ngx_http_cg_sync_version_done, w);
    }

    if (w->last_beat
        && ngx_current_msec - w->last_beat < NGX_HTTP_CG_SYNC_HEARTBEAT)
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

    (void) ngx_http_cg_redis_send(w->link, 4, argv, len, NULL, NULL);

    argv[0] = "ZREMRANGEBYSCORE";
    len[0] = 16;
    argv[2] = "-inf";
    len[2] = 4;
    argv[3] = (const char *) old;
    len[3] = ngx_sprintf(old, "(%L", ms - NGX_HTTP_CG_SYNC_NODE_TTL) - old;

    (void) ngx_http_cg_redis_send(w->link, 4, argv, len, NULL, NULL);

    argv[0] = "ZCARD";
    len[0] = 5;

    (void) ngx_http_cg_redis_send(w->link, 2, argv, len,
                                  ngx_http_cg_sync_beat_done, w);
}


/* quota definitions: snapshots */

static ngx_http_cg_entry_t *
ngx_http_cg_snap_find(ngx_http_cg_entry_t **buckets, ngx_uint_t n,
    u_char *name, size_t len)
{
    uint32_t              hash;
    ngx_http_cg_entry_t  *e;

    if (n == 0) {
        return NULL;
    }

    hash = ngx_crc32_short(name, len);

    for (e = buckets[hash & (n - 1)]; e; e = e->next) {
        if (e->hash == hash && e->name.len == len
            && ngx_memcmp(e->name.data, name, len) == 0)
        {
            return e;
        }
    }

    return NULL;
}


static ngx_http_cg_entry_t *
ngx_http_cg_snap_add(ngx_pool_t *pool, ngx_http_cg_entry_t **buckets,
    ngx_uint_t n, ngx_str_t *name, ngx_str_t *value)
{
    ngx_http_cg_entry_t  *e;

    e = ngx_pcalloc(pool, sizeof(ngx_http_cg_entry_t));
    if (e == NULL) {
        return NULL;
    }

    e->name.data = ngx_pstrdup(pool, name);
    e->value.data = ngx_pstrdup(pool, value);
    if (e->name.data == NULL || (value->len && e->value.data == NULL)) {
        return NULL;
    }

    e->name.len = name->len;
    e->value.len = value->len;
    e->hash = ngx_crc32_short(name->data, name->len);

    e->next = buckets[e->hash & (n - 1)];
    buckets[e->hash & (n - 1)] = e;

    return e;
}


static ngx_uint_t
ngx_http_cg_snap_size(ngx_uint_t n)
{
    ngx_uint_t  size;

    for (size = 16; size < n; size <<= 1) { /* void */ }

    return size;
}


static ngx_int_t
ngx_http_cg_snap_error(ngx_http_cg_snap_t *snap, ngx_str_t *key,
    ngx_str_t *field, ngx_str_t *value, const char *error)
{
    u_char                    *p;
    ngx_uint_t                 i, known;
    ngx_str_t                  v;
    ngx_http_cg_snap_t        *old;
    ngx_http_cg_sync_error_t  *e, *oe;

    v = *value;
    if (v.len > 128) {
        v.len = 128;
    }

    /* logged once: not again while the same bad value stays */

    known = 0;
    old = ngx_http_cg_sync_w.snap;

    if (old) {
        oe = old->errors.elts;

        for (i = 0; i < old->errors.nelts; i++) {
            if (oe[i].key.len == key->len
                && oe[i].field.len == field->len
                && oe[i].value.len == v.len
                && ngx_memcmp(oe[i].key.data, key->data, key->len) == 0
                && ngx_memcmp(oe[i].field.data, field->data, field->len)
                   == 0
                && ngx_memcmp(oe[i].value.data, v.data, v.len) == 0)
            {
                known = 1;
                break;
            }
        }
    }

    if (!known && ngx_worker == 0) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "client guard: bad data in redis key \"%V\" field "
                      "\"%V\" value \"%V\": %s; the last good definition "
                      "stays", key, field, &v, error);
    }

    if (snap->errors.nelts >= NGX_HTTP_CG_SYNC_ERRORS_MAX) {
        return NGX_OK;
    }

    e = ngx_array_push(&snap->errors);
    if (e == NULL) {
        return NGX_ERROR;
    }

    e->key.data = ngx_pstrdup(snap->pool, key);
    e->field.data = ngx_pstrdup(snap->pool, field);
    e->value.data = ngx_pstrdup(snap->pool, &v);

    p = ngx_pnalloc(snap->pool, ngx_strlen(error));
    if (e->key.data == NULL || e->field.data == NULL || p == NULL
        || (v.len && e->value.data == NULL))
    {
        return NGX_ERROR;
    }

    e->key.len = key->len;
    e->field.len = field->len;
    e->value.len = v.len;
    e->error.len = ngx_strlen(error);
    e->error.data = p;
    ngx_memcpy(p, error, e->error.len);

    return NGX_OK;
}


static const char *
ngx_http_cg_sync_parse_quota(cg_quota_t *q, u_char *p, size_t len)
{
    u_char      *last, *start;
    const char  *err;

    ngx_memzero(q, sizeof(cg_quota_t));

    if (len > NGX_HTTP_CG_SYNC_VALUE_MAX) {
        return "value too long";
    }

    last = p + len;

    while (p < last) {
        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        start = p;

        while (p < last && *p != ' ' && *p != '\t') {
            p++;
        }

        if (p == start) {
            break;
        }

        err = cg_parse_quota_arg(q, start, p - start);
        if (err) {
            return err;
        }
    }

    return cg_quota_validate(q);
}


static ngx_http_cg_snap_t *
ngx_http_cg_snap_create(void)
{
    ngx_pool_t          *pool;
    ngx_http_cg_snap_t  *snap;

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    snap = ngx_pcalloc(pool, sizeof(ngx_http_cg_snap_t));
    if (snap == NULL
        || ngx_array_init(&snap->errors, pool, 4,
                          sizeof(ngx_http_cg_sync_error_t))
           != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return NULL;
    }

    snap->pool = pool;

    return snap;
}


/* copies a section of the old snapshot when Redis gave nothing usable */

static ngx_int_t
ngx_http_cg_snap_copy(ngx_http_cg_snap_t *snap, ngx_uint_t keys)
{
    ngx_uint_t            i, n;
    ngx_http_cg_entry_t  *e, *ne, **buckets, **old;
    ngx_http_cg_snap_t   *prev;

    prev = ngx_http_cg_sync_w.snap;

    n = 16;
    if (prev) {
        n = keys ? prev->nkeys : prev->nquotas;
        n = n ? n : 16;
    }

    buckets = ngx_pcalloc(snap->pool, n * sizeof(ngx_http_cg_entry_t *));
    if (buckets == NULL) {
        return NGX_ERROR;
    }

    if (keys) {
        snap->keys = buckets;
        snap->nkeys = n;

    } else {
        snap->quotas = buckets;
        snap->nquotas = n;
    }

    if (prev == NULL) {
        return NGX_OK;
    }

    old = keys ? prev->keys : prev->quotas;

    for (i = 0; old && i < n; i++) {
        for (e = old[i]; e; e = e->next) {
            ne = ngx_http_cg_snap_add(snap->pool, buckets, n, &e->name,
                                      &e->value);
            if (ne == NULL) {
                return NGX_ERROR;
            }

            ne->quota = e->quota;

            if (!keys && e == prev->dflt) {
                snap->dflt = ne;
            }
        }
    }

    return NGX_OK;
}


static void
ngx_http_cg_sync_quotas_done(ngx_http_cg_redis_t *link, redisReply *reply,
    void *data)
{
    int                         len;
    u_char                      name[CG_NAME_MAX];
    ngx_str_t                   field, value, nm, empty;
    ngx_uint_t                  i, n;
    cg_quota_t                  q;
    const char                 *err;
    redisReply                 *f, *v;
    ngx_http_cg_snap_t         *snap;
    ngx_http_cg_entry_t        *e, *old;
    ngx_http_cg_sync_worker_t  *w = &ngx_http_cg_sync_w;

    snap = w->building;

    if (snap == NULL) {
        return;
    }

    if (reply == NULL) {
        ngx_destroy_pool(snap->pool);
        w->building = NULL;
        w->loading = 0;
        return;
    }

    ngx_str_null(&empty);

    if (reply->type != REDIS_REPLY_ARRAY) {
        value.data = (u_char *) (reply->type == REDIS_REPLY_ERROR
                                 ? reply->str : "");
        value.len = reply->type == REDIS_REPLY_ERROR ? reply->len : 0;

        (void) ngx_http_cg_snap_error(snap, &w->k_quotas, &empty, &value,
                                      "not a hash");
        goto keep;
    }

    n = ngx_http_cg_snap_size(reply->elements / 2 * 2);

    snap->quotas = ngx_pcalloc(snap->pool, n * sizeof(ngx_http_cg_entry_t *));
    if (snap->quotas == NULL) {
        goto failed;
    }

    snap->nquotas = n;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        f = reply->element[i];
        v = reply->element[i + 1];

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            continue;
        }

        field.data = (u_char *) f->str;
        field.len = f->len;
        value.data = (u_char *) v->str;
        value.len = v->len;

        len = cg_name_normalize(name, field.data, field.len, CG_NAME_MAX);

        if (len < 0) {
            if (ngx_http_cg_snap_error(snap, &w->k_quotas, &field, &value,
                                       "invalid client name")
                != NGX_OK)
            {
                goto failed;
            }

            continue;
        }

        nm.data = name;
        nm.len = len;

        err = ngx_http_cg_sync_parse_quota(&q, value.data, value.len);

        if (err) {
            if (ngx_http_cg_snap_error(snap, &w->k_quotas, &field, &value,
                                       err)
                != NGX_OK)
            {
                goto failed;
            }

            /* the last good definition stays */

            old = w->snap ? ngx_http_cg_snap_find(w->snap->quotas,
                                                  w->snap->nquotas,
                                                  nm.data, nm.len)
                          : NULL;
            if (old == NULL) {
                continue;
            }

            q = old->quota;
            value = old->value;
        }

        e = ngx_http_cg_snap_find(snap->quotas, n, nm.data, nm.len);
        if (e == NULL) {
            e = ngx_http_cg_snap_add(snap->pool, snap->quotas, n, &nm,
                                     &value);
            if (e == NULL) {
                goto failed;
            }
        }

        e->quota = q;

        if (nm.len == 7 && ngx_strncmp(nm.data, "default", 7) == 0) {
            snap->dflt = e;
        }
    }

    return;

keep:

    if (ngx_http_cg_snap_copy(snap, 0) == NGX_OK) {
        return;
    }

failed:

    ngx_destroy_pool(snap->pool);
    w->building = NULL;
    w->loading = 0;
}


static void
ngx_http_cg_sync_keys_done(ngx_http_cg_redis_t *link, redisReply *reply,
    void *data)
{
    int                         len;
    u_char                      name[CG_NAME_MAX];
    ngx_str_t                   field, value, nm, empty;
    ngx_uint_t                  i, j, n, ok;
    redisReply                 *f, *v;
    ngx_http_cg_snap_t         *snap;
    ngx_http_cg_sync_worker_t  *w = &ngx_http_cg_sync_w;

    snap = w->building;

    if (snap == NULL) {
        return;
    }

    if (reply == NULL) {
        goto failed;
    }

    ngx_str_null(&empty);

    if (reply->type != REDIS_REPLY_ARRAY) {
        value.data = (u_char *) (reply->type == REDIS_REPLY_ERROR
                                 ? reply->str : "");
        value.len = reply->type == REDIS_REPLY_ERROR ? reply->len : 0;

        (void) ngx_http_cg_snap_error(snap, &w->k_keys, &empty, &value,
                                      "not a hash");

        if (ngx_http_cg_snap_copy(snap, 1) != NGX_OK) {
            goto failed;
        }

        goto swap;
    }

    n = ngx_http_cg_snap_size(reply->elements / 2 * 2);

    snap->keys = ngx_pcalloc(snap->pool, n * sizeof(ngx_http_cg_entry_t *));
    if (snap->keys == NULL) {
        goto failed;
    }

    snap->nkeys = n;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        f = reply->element[i];
        v = reply->element[i + 1];

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            continue;
        }

        field.data = (u_char *) f->str;
        field.len = f->len;
        value.data = (u_char *) v->str;
        value.len = v->len;

        ok = (field.len == 2 * SHA256_DIGEST_LENGTH);

        for (j = 0; ok && j < field.len; j++) {
            ok = (field.data[j] >= '0' && field.data[j] <= '9')
                 || (field.data[j] >= 'a' && field.data[j] <= 'f');
        }

        if (!ok) {
            if (ngx_http_cg_snap_error(snap, &w->k_keys, &field, &value,
                                       "not a lowercase hex SHA-256")
                != NGX_OK)
            {
                goto failed;
            }

            continue;
        }

        len = cg_name_normalize(name, value.data, value.len, CG_NAME_MAX);

        if (len < 0) {
            if (ngx_http_cg_snap_error(snap, &w->k_keys, &field, &value,
                                       "invalid client name")
                != NGX_OK)
            {
                goto failed;
            }

            continue;
        }

        nm.data = name;
        nm.len = len;

        if (ngx_http_cg_snap_find(snap->keys, n, field.data, field.len)) {
            continue;
        }

        if (ngx_http_cg_snap_add(snap->pool, snap->keys, n, &field, &nm)
            == NULL)
        {
            goto failed;
        }
    }

swap:

    if (snap->quotas == NULL) {
        goto failed;
    }

    if (w->snap) {
        ngx_destroy_pool(w->snap->pool);
    }

    w->snap = snap;
    w->building = NULL;
    w->loading = 0;
    w->loaded = ngx_time();

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "client guard: quotas version %uL loaded", snap->version);

    if (w->reload) {
        w->reload = 0;
        ngx_http_cg_sync_load();
    }

    return;

failed:

    ngx_destroy_pool(snap->pool);
    w->building = NULL;
    w->loading = 0;
}


static void
ngx_http_cg_sync_load_version(ngx_http_cg_redis_t *link, redisReply *reply,
    void *data)
{
    ngx_int_t                   n;
    ngx_str_t                   value, empty;
    ngx_http_cg_snap_t         *snap;
    ngx_http_cg_sync_worker_t  *w = &ngx_http_cg_sync_w;

    snap = w->building;

    if (snap == NULL || reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_STRING) {
        n = ngx_atoi((u_char *) reply->str, reply->len);

        if (n == NGX_ERROR) {
            value.data = (u_char *) reply->str;
            value.len = reply->len;
            ngx_str_null(&empty);

            (void) ngx_http_cg_snap_error(snap, &w->k_version, &empty,
                                          &value, "not a number");

            snap->version = (uint64_t) -1;

        } else {
            snap->version = n;
        }
    }
}


static void
ngx_http_cg_sync_load(void)
{
    size_t                      len[2];
    const char                 *argv[2];
    ngx_http_cg_sync_worker_t  *w = &ngx_http_cg_sync_w;

    if (!ngx_http_cg_redis_ready(w->link)) {
        return;
    }

    if (w->loading) {
        w->reload = 1;
        return;
    }

    w->building = ngx_http_cg_snap_create();
    if (w->building == NULL) {
        return;
    }

    w->loading = 1;
    w->last_load = ngx_current_msec;

    argv[0] = "GET";
    len[0] = 3;
    argv[1] = (const char *) w->k_version.data;
    len[1] = w->k_version.len;

    if (ngx_http_cg_redis_send(w->link, 2, argv, len,
                               ngx_http_cg_sync_load_version, w)
        != NGX_OK)
    {
        goto failed;
    }

    argv[0] = "HGETALL";
    len[0] = 7;
    argv[1] = (const char *) w->k_quotas.data;
    len[1] = w->k_quotas.len;

    if (ngx_http_cg_redis_send(w->link, 2, argv, len,
                               ngx_http_cg_sync_quotas_done, w)
        != NGX_OK)
    {
        goto failed;
    }

    argv[1] = (const char *) w->k_keys.data;
    len[1] = w->k_keys.len;

    if (ngx_http_cg_redis_send(w->link, 2, argv, len,
                               ngx_http_cg_sync_keys_done, w)
        != NGX_OK)
    {
        goto failed;
    }

    return;

failed:

    /* a failure inside send already ran the handlers */

    if (w->building) {
        ngx_destroy_pool(w->building->pool);
        w->building = NULL;
    }

    w->loading = 0;
}


cg_quota_t *
ngx_http_cg_sync_quota(ngx_str_t *name)
{
    ngx_http_cg_entry_t  *e;
    ngx_http_cg_snap_t   *snap;

    snap = ngx_http_cg_sync_w.snap;

    if (snap == NULL) {
        return NULL;
    }

    e = ngx_http_cg_snap_find(snap->quotas, snap->nquotas, name->data,
                              name->len);

    return e ? &e->quota : NULL;
}


cg_quota_t *
ngx_http_cg_sync_default(void)
{
    ngx_http_cg_snap_t  *snap;

    snap = ngx_http_cg_sync_w.snap;

    return (snap && snap->dflt) ? &snap->dflt->quota : NULL;
}


cg_quota_t *
ngx_http_cg_client_quota(ngx_http_cg_quota_table_t *qt, ngx_str_t *name,
    ngx_uint_t *redis)
{
    cg_quota_t           *quota;
    ngx_http_cg_quota_t  *q;

    quota = ngx_http_cg_sync_quota(name);

    if (quota == NULL) {
        q = ngx_http_cg_quota_lookup(qt, name);

        if (q) {
            quota = &q->quota;

        } else {
            quota = ngx_http_cg_sync_default();

            if (quota == NULL) {
                if (redis) {
                    *redis = 0;
                }

                return qt->dflt ? &qt->dflt->quota : NULL;
            }
        }

        if (redis) {
            *redis = (q == NULL);
        }

        return quota;
    }

    if (redis) {
        *redis = 1;
    }

    return quota;
}


ngx_int_t
ngx_http_cg_sync_api_key(ngx_str_t *key, ngx_str_t *name)
{
    u_char                hex[2 * SHA256_DIGEST_LENGTH];
    u_char                md[SHA256_DIGEST_LENGTH];
    ngx_http_cg_entry_t  *e;
    ngx_http_cg_snap_t   *snap;

    snap = ngx_http_cg_sync_w.snap;

    if (snap == NULL || snap->nkeys == 0) {
        return NGX_DECLINED;
    }

    SHA256(key->data, key->len, md);
    ngx_hex_dump(hex, md, SHA256_DIGEST_LENGTH);

    e = ngx_http_cg_snap_find(snap->keys, snap->nkeys, hex, sizeof(hex));
    if (e == NULL) {
        return NGX_DECLINED;
    }

    *name = e->value;

    return NGX_OK;
}


ngx_array_t *
ngx_http_cg_sync_errors(void)
{
    return ngx_http_cg_sync_w.snap ? &ngx_http_cg_sync_w.snap->errors : NULL;
}


ngx_uint_t
ngx_http_cg_sync_link_state(void)
{
    return ngx_http_cg_sync_w.link ? ngx_http_cg_sync_w.link->state
                                   : NGX_HTTP_CG_REDIS_IDLE;
}


uint64_t
ngx_http_cg_sync_version(void)
{
    return ngx_http_cg_sync_w.snap ? ngx_http_cg_sync_w.snap->version : 0;
}


time_t
ngx_http_cg_sync_loaded(void)
{
    return ngx_http_cg_sync_w.loaded;
}


ngx_uint_t
ngx_http_cg_sync_outages(void)
{
    return ngx_http_cg_sync_w.outages;
}


ngx_uint_t
ngx_http_cg_sync_live_nodes(void)
{
    return ngx_http_cg_sync_w.nodes;
}


/* leases */

static uint32_t
ngx_http_cg_quota_hash(cg_quota_t *q)
{
    return ngx_crc32_short((u_char *) q, sizeof(cg_quota_t)) | 1;
}


static ngx_msec_t
ngx_http_cg_lease_ttl(cg_quota_t *q)
{
    int64_t      now, left;
    uint32_t     i;
    ngx_msec_t   ttl;
    ngx_time_t  *tp;

    /* a rate lease is short: tokens spent late would exceed the rate */

    ttl = 1000;

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    for (i = 0; i < q->nlimits; i++) {
        if (q->limits[i].type == CG_LIMIT_RATE) {
            ttl = ngx_min(ttl, 2 * ngx_http_cg_sync_w.conf->lease);
            continue;
        }

        /* a window lease ends with the window */
        left = q->limits[i].period - now % q->limits[i].period;
        ttl = ngx_min(ttl, (ngx_msec_t) left);
    }

    return ngx_max(ttl, 1);
}


/*
 * Under the zone lock: spends a unit of the client's lease, or says why
 * not.  Sets *want when this worker must fetch the next lease now.
 */

static ngx_uint_t
ngx_http_cg_lease_take(ngx_http_cg_lease_t *l, uint32_t qhash,
    uint32_t now, uint32_t *want, uint64_t *retry, uint64_t *remaining)
{
    uint32_t          rate, est;
    ngx_uint_t        rc, active, fetch;
    uint32_t          elapsed;
    ngx_http_cg_sync_conf_t  *scf;

    scf = ngx_http_cg_sync_w.conf;

    if (l->qhash != qhash) {
        /* another quota: the lease and a fetch in flight are void */
        l->qhash = qhash;
        l->left = 0;
        l->denied = 0;
        l->want = 0;
        l->fetching = 0;
    }

    if (l->since == 0) {
        l->since = now;
    }

    active = l->fetching
             && (int32_t) (now - l->fetching)
                < (int32_t) (2 * scf->redis->timeout);
    fetch = 0;

    if (l->left && (int32_t) (l->expires - now) > 0) {
        l->left--;
        l->spent++;
        *remaining = l->left;
        rc = NGX_HTTP_CG_TAKE_PASS;

        /*
         * the next lease ahead of time, unless the client is so slow
         * (under 2 r/s here) that a lease would mostly expire unspent:
         * its units would be lost to the window
         */

        if (l->left <= l->want / 2 && !active
            && (l->left > 0 || l->rate >= 2))
        {
            fetch = 1;
        }

    } else if ((int32_t) (l->denied - now) > 0) {
        *retry = l->denied - now;
        rc = NGX_HTTP_CG_TAKE_REJECT;

    } else if (!ngx_http_cg_redis_ready(ngx_http_cg_sync_w.link)
               || (ngx_msec_int_t) (ngx_http_cg_sync_w.broken
                                    - ngx_current_msec) > 0)
    {
        /* the circuit breaker is open: the failure policy decides */
        rc = NGX_HTTP_CG_TAKE_DOWN;

    } else {
        rc = NGX_HTTP_CG_TAKE_WAIT;
        fetch = !active;
    }

    if (!fetch || !ngx_http_cg_redis_ready(ngx_http_cg_sync_w.link)) {
        return rc;
    }

    /* the size of the next lease: about "lease" ms of this node's traffic */

    elapsed = now - l->since;

    if (elapsed >= 20) {
        rate = (uint32_t) ngx_min((uint64_t) l->spent * 1000 / elapsed,
                                  1000000);
        l->rate = l->rate ? (l->rate + rate) / 2 : rate;
        l->spent = 0;
        l->since = now;
    }

    est = (uint32_t) ((uint64_t) l->rate * scf->lease / 1000);

    if (l->left == 0 && l->want
        && now - l->granted < (uint32_t) scf->lease)
    {
        /* ran dry quicker than a lease should last: grow quickly */
        est = ngx_max(est, ngx_min(l->want * 2, 1024));
    }

    est = ngx_max(est, 1);
    est = ngx_min(est, NGX_HTTP_CG_SYNC_WANT_MAX);

    *want = est;
    l->want = est;
    l->fetching = now ? now : 1;

    return rc;
}


static ngx_http_cg_fetch_t *
ngx_http_cg_fetch_alloc(void)
{
    ngx_http_cg_fetch_t        *f;
    ngx_http_cg_sync_worker_t  *w = &ngx_http_cg_sync_w;

    if (w->free) {
        f = w->free;
        w->free = f->next;
        return f;
    }

    return ngx_alloc(sizeof(ngx_http_cg_fetch_t), ngx_cycle->log);
}


static void
ngx_http_cg_fetch_free(ngx_http_cg_fetch_t *f)
{
    f->next = ngx_http_cg_sync_w.free;
    ngx_http_cg_sync_w.free = f;
}


static void
ngx_http_cg_sync_fetch_done(ngx_http_cg_redis_t *link, redisReply *reply,
    void *data)
{
    ngx_http_cg_fetch_t  *f = data;

    int64_t               granted, retry;
    uint32_t              now32;
    ngx_str_t             name;
    ngx_msec_t            now;
    ngx_http_cg_node_t   *node;
    ngx_http_cg_lease_t  *l;

    if (reply && reply->type == REDIS_REPLY_ERROR && !f->retried
        && reply->len >= 8 && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        /* the script is not cached there (a restart, SCRIPT FLUSH) */

        f->retried = 1;

        if (ngx_http_cg_sync_fetch_send(f) == NGX_OK) {
            return;
        }

        reply = NULL;
    }

    granted = -1;
    retry = 0;

    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_INTEGER
        && reply->element[1]->type == REDIS_REPLY_INTEGER)
    {
        granted = reply->element[0]->integer;
        retry = reply->element[1]->integer;

    } else if (reply) {

        /* an error from the script: leases stop for a second */

        ngx_http_cg_sync_w.broken = ngx_current_msec + 1000;

        ngx_log_error(NGX_LOG_ERR, link->log, 0,
                      "client guard: unexpected lease reply for \"%*s\"%s%*s",
                      f->len, f->name,
                      reply->type == REDIS_REPLY_ERROR ? ": " : "",
                      reply->type == REDIS_REPLY_ERROR ? reply->len : 0,
                      reply->type == REDIS_REPLY_ERROR ? reply->str : "");
    }

    name.data = f->name;
    name.len = f->len;
    now = ngx_current_msec;
    now32 = (uint32_t) now;

    ngx_http_cg_zone_lock(f->zone);

    node = ngx_http_cg_zone_node(f->zone, &name, f->hash, now, 0);

    if (node && node->lease.fetching == f->started
        && node->lease.qhash == f->qhash)
    {
        l = &node->lease;
        l->fetching = 0;

        if (granted > 0) {
            if (l->left == 0 || (int32_t) (l->expires - now32) <= 0) {
                l->left = 0;
            }

            l->left += (uint32_t) granted;
            l->granted = now32;
            l->expires = now32 + (uint32_t) ngx_http_cg_lease_ttl(&f->quota);
            l->denied = 0;

        } else if (granted == 0) {
            l->denied = now32 + (uint32_t) ngx_max(retry, 1);
        }
    }

    ngx_http_cg_zone_unlock(f->zone);

    ngx_http_cg_fetch_free(f);

    ngx_http_cg_sync_wake();
}


static ngx_int_t
ngx_http_cg_sync_fetch_send(ngx_http_cg_fetch_t *f)
{
    int                         argc;
    u_char                     *p, *last, buf[2048];
    size_t                      len[4 + 5 * CG_MAX_LIMITS];
    int64_t                     now;
    uint32_t                    i;
    ngx_time_t                 *tp;
    cg_limit_t                 *lim;
    const char                 *argv[4 + 5 * CG_MAX_LIMITS];
    ngx_http_cg_sync_worker_t  *w = &ngx_http_cg_sync_w;

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;

    p = buf;
    last = buf + sizeof(buf);

    if (f->retried) {
        argv[0] = "EVAL";
        len[0] = 4;
        argv[1] = ngx_http_cg_sync_script;
        len[1] = sizeof(ngx_http_cg_sync_script) - 1;

    } else {
        argv[0] = "EVALSHA";
        len[0] = 7;
        argv[1] = (const char *) w->sha;
        len[1] = 2 * SHA_DIGEST_LENGTH;
    }

    argv[2] = (const char *) p;
    p = ngx_slprintf(p, last, "%uD", f->quota.nlimits);
    len[2] = p - (u_char *) argv[2];

    argc = 3;

    /* every key of a client shares its hash tag: one Cluster slot */

    for (i = 0; i < f->quota.nlimits; i++) {
        lim = &f->quota.limits[i];

        argv[argc] = (const char *) p;

        if (lim->type == CG_LIMIT_RATE) {
            p = ngx_slprintf(p, last, "%V{%*s}:r:%uD",
                             &w->conf->redis->prefix, f->len, f->name,
                             lim->period);

        } else {
            p = ngx_slprintf(p, last, "%V{%*s}:w:%uD:%L",
                             &w->conf->redis->prefix, f->len, f->name,
                             lim->period, now / lim->period);
        }

        len[argc] = p - (u_char *) argv[argc];
        argc++;
    }

    argv[argc] = (const char *) p;
    p = ngx_slprintf(p, last, "%uD", f->want);
    len[argc] = p - (u_char *) argv[argc];
    argc++;

    for (i = 0; i < f->quota.nlimits; i++) {
        lim = &f->quota.limits[i];

        argv[argc] = lim->type == CG_LIMIT_RATE ? "r" : "w";
        len[argc++] = 1;

        argv[argc] = (const char *) p;
        p = ngx_slprintf(p, last, "%uL", lim->count);
        len[argc] = p - (u_char *) argv[argc];
        argc++;

        argv[argc] = (const char *) p;
        p = ngx_slprintf(p, last, "%uD", lim->period);
        len[argc] = p - (u_char *) argv[argc];
        argc++;

        argv[argc] = (const char *) p;
        p = ngx_slprintf(p, last, "%uL", lim->burst);
        len[argc] = p - (u_char *) argv[argc];
        argc++;
    }

    if (p == last) {
        return NGX_ERROR;
    }

    return ngx_http_cg_redis_send(w->link, argc, argv, len,
                                  ngx_http_cg_sync_fetch_done, f);
}


static void
ngx_http_cg_sync_fetch(ngx_http_cg_zone_t *zone, ngx_str_t *name,
    uint32_t hash, cg_quota_t *q, uint32_t qhash, uint32_t want,
    uint32_t started)
{
    ngx_http_cg_fetch_t  *f;
    ngx_http_cg_node_t   *node;

    f = ngx_http_cg_fetch_alloc();

    if (f) {
        f->zone = zone;
        f->quota = *q;
        f->qhash = qhash;
        f->hash = hash;
        f->want = want;
        f->retried = 0;
        f->started = started;
        f->len = name->len;
        ngx_memcpy(f->name, name->data, name->len);

        if (ngx_http_cg_sync_fetch_send(f) == NGX_OK) {
            return;
        }

        ngx_http_cg_fetch_free(f);
    }

    /* not sent: nobody fetches, the next request tries again */

    ngx_http_cg_zone_lock(zone);

    node = ngx_http_cg_zone_node(zone, name, hash, ngx_current_msec, 0);
    if (node && node->lease.fetching == started) {
        node->lease.fetching = 0;
    }

    ngx_http_cg_zone_unlock(zone);
}


static ngx_uint_t
ngx_http_cg_sync_take(ngx_http_cg_zone_t *zone, ngx_str_t *name,
    uint32_t hash, cg_quota_t *q, uint32_t qhash, uint64_t *retry,
    uint64_t *remaining)
{
    uint32_t             want, started;
    ngx_uint_t           rc;
    ngx_msec_t           now;
    ngx_http_cg_node_t  *node;

    now = ngx_current_msec;
    want = 0;
    started = 0;

    ngx_http_cg_zone_lock(zone);

    node = ngx_http_cg_zone_node(zone, name, hash, now, 1);

    if (node == NULL) {
        rc = NGX_HTTP_CG_TAKE_DOWN;

    } else {
        rc = ngx_http_cg_lease_take(&node->lease, qhash, (uint32_t) now,
                                    &want, retry, remaining);
        started = node->lease.fetching;
    }

    ngx_http_cg_zone_unlock(zone);

    if (want) {
        ngx_http_cg_sync_fetch(zone, name, hash, q, qhash, want, started);
    }

    return rc;
}


/* the failure policy: NGX_OK decided, NGX_DECLINED decide locally */

static ngx_int_t
ngx_http_cg_sync_policy(ngx_http_cg_ctx_t *ctx, ngx_http_cg_sync_req_t *s,
    cg_quota_t *quota, ngx_int_t *binding, cg_limit_result_t *res)
{
    uint32_t                  i;
    ngx_uint_t                nodes;
    ngx_http_cg_sync_conf_t  *scf;

    scf = ngx_http_cg_sync_w.conf;

    switch (scf->policy) {

    case NGX_HTTP_CG_FAIL_OPEN:
        s->how = NGX_HTTP_CG_SYNC_DOWN_OPEN;
        res->allowed = 1;
        return NGX_OK;

    case NGX_HTTP_CG_FAIL_CLOSED:
        s->how = NGX_HTTP_CG_SYNC_DOWN_CLOSED;
        res->allowed = 0;
        res->retry = 1000;
        ctx->code = scf->closed_status;
        return NGX_OK;

    default:
        break;
    }

    /* local: this node's share of the cluster's quota */

    s->how = NGX_HTTP_CG_SYNC_DOWN_LOCAL;

    nodes = ngx_http_cg_sync_w.nodes ? ngx_http_cg_sync_w.nodes : scf->nodes;

    if (nodes > 1) {
        for (i = 0; i < quota->nlimits; i++) {
            quota->limits[i].count = ngx_max(quota->limits[i].count / nodes,
                                             1);
            quota->limits[i].burst /= nodes;
        }
    }

    return NGX_DECLINED;
}


static void
ngx_http_cg_sync_result(ngx_http_cg_sync_req_t *s, cg_quota_t *quota,
    ngx_int_t *binding, cg_limit_result_t *res)
{
    *binding = quota->nlimits ? 0 : -1;

    res->allowed = (s->take == NGX_HTTP_CG_TAKE_PASS);
    res->remaining = s->remaining;
    res->retry = s->retry;
    res->reset = s->retry;
}


ngx_int_t
ngx_http_cg_sync_enforce(ngx_http_request_t *r, void *data,
    ngx_http_cg_zone_t *zone, cg_quota_t *quota, uint32_t hash,
    ngx_int_t *binding, cg_limit_result_t *res)
{
    ngx_http_cg_ctx_t  *ctx = data;

    ngx_http_cg_sync_req_t     *s;
    ngx_http_cg_sync_worker_t  *w = &ngx_http_cg_sync_w;

    if (w->conf == NULL || quota->nlimits == 0) {
        return NGX_DECLINED;
    }

    s = ctx->sync;

    if (s && s->resumed) {
        s->resumed = 0;

        if (s->take == NGX_HTTP_CG_TAKE_DOWN) {
            return ngx_http_cg_sync_policy(ctx, s, quota, binding, res);
        }

        ngx_http_cg_sync_result(s, quota, binding, res);
        return NGX_OK;
    }

    if (s == NULL) {
        s = ngx_pcalloc(r->pool, sizeof(ngx_http_cg_sync_req_t));
        if (s == NULL) {
            return NGX_ERROR;
        }

        ctx->sync = s;
    }

    s->qhash = ngx_http_cg_quota_hash(quota);

    s->take = ngx_http_cg_sync_take(zone, &ctx->client, hash, quota,
                                    s->qhash, &s->retry, &s->remaining);

    switch (s->take) {

    case NGX_HTTP_CG_TAKE_DOWN:
        return ngx_http_cg_sync_policy(ctx, s, quota, binding, res);

    case NGX_HTTP_CG_TAKE_WAIT:
        break;

    default:
        s->how = NGX_HTTP_CG_SYNC_LEASE;
        ngx_http_cg_sync_result(s, quota, binding, res);
        return NGX_OK;
    }

    /* wait for the lease, at most the command timeout */

    s->r = r;
    s->zone = zone;
    s->name = ctx->client;
    s->quota = *quota;
    s->hash = hash;
    s->deadline = ngx_current_msec + w->conf->redis->timeout;
    s->waiting = 1;

    ngx_queue_insert_tail(&w->waiters, &s->queue);

    if (!w->wake.timer_set) {
        ngx_add_timer(&w->wake, NGX_HTTP_CG_SYNC_WAKE);
    }

    /* notice a client that goes away meanwhile */
    r->read_event_handler = ngx_http_test_reading;

    return NGX_AGAIN;
}


ngx_int_t
ngx_http_cg_sync_pending(void *data)
{
    ngx_http_cg_ctx_t  *ctx = data;

    ngx_http_cg_sync_req_t  *s;

    s = ctx->sync;

    if (s == NULL) {
        return NGX_DECLINED;
    }

    if (s->waiting) {
        return NGX_AGAIN;
    }

    return s->resumed ? NGX_OK : NGX_DECLINED;
}


void
ngx_http_cg_sync_cleanup(void *data)
{
    ngx_http_cg_ctx_t  *ctx = data;

    ngx_http_cg_sync_req_t  *s;

    s = ctx->sync;

    if (s && s->waiting) {
        s->waiting = 0;
        ngx_queue_remove(&s->queue);
    }
}


static void
ngx_http_cg_sync_wake_handler(ngx_event_t *ev)
{
    ngx_http_cg_sync_wake();
}


static void
ngx_http_cg_sync_wake(void)
{
    ngx_queue_t                 ready, *q, *next;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_cg_sync_req_t     *s;
    ngx_http_cg_sync_worker_t  *w = &ngx_http_cg_sync_w;

    ngx_queue_init(&ready);

    for (q = ngx_queue_head(&w->waiters);
         q != ngx_queue_sentinel(&w->waiters);
         q = next)
    {
        next = ngx_queue_next(q);
        s = ngx_queue_data(q, ngx_http_cg_sync_req_t, queue);

        s->take = ngx_http_cg_sync_take(s->zone, &s->name, s->hash,
                                        &s->quota, s->qhash, &s->retry,
                                        &s->remaining);

        if (s->take == NGX_HTTP_CG_TAKE_WAIT
            && (ngx_msec_int_t) (s->deadline - ngx_current_msec) > 0)
        {
            continue;
        }

        if (s->take == NGX_HTTP_CG_TAKE_WAIT) {
            /* no lease in time: the failure policy decides */
            s->take = NGX_HTTP_CG_TAKE_DOWN;
        }

        ngx_queue_remove(q);
        ngx_queue_insert_tail(&ready, q);
    }

    while (!ngx_queue_empty(&ready)) {
        q = ngx_queue_head(&ready);
        ngx_queue_remove(q);

        s = ngx_queue_data(q, ngx_http_cg_sync_req_t, queue);
        s->waiting = 0;
        s->resumed = 1;
        s->how = NGX_HTTP_CG_SYNC_WAITED;

        r = s->r;
        c = r->connection;

        r->read_event_handler = ngx_http_block_reading;

        ngx_http_set_log_request(c->log, r);
        r->write_event_handler(r);
        ngx_http_run_posted_requests(c);
    }

    if (ngx_queue_empty(&w->waiters)) {
        if (w->wake.timer_set) {
            ngx_del_timer(&w->wake);
        }

    } else if (!w->wake.timer_set) {
        ngx_add_timer(&w->wake, NGX_HTTP_CG_SYNC_WAKE);
    }
}


ngx_int_t
ngx_http_cg_sync_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_cg_ctx_t       *ctx;
    ngx_http_cg_sync_req_t  *s;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_client_guard_module);

    s = ctx ? ctx->sync : NULL;

    if (s == NULL || s->how == NGX_HTTP_CG_SYNC_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_http_cg_sync_names[s->how].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ngx_http_cg_sync_names[s->how].data;

    return NGX_OK;
}
