
/*
 * Copyright (C) client guard authors
 *
 * cg_sentinel: where this worker's Redis links go.
 *
 * Owns, with "sentinel=<master name>" in client_guard_redis: this worker's
 * links to the sentinels (one for questions, moving to the next sentinel
 * when one fails; one subscribed to +switch-master on each, up to 8); the
 * question SENTINEL get-master-addr-by-name, asked when the worker starts,
 * every 2 s, and when a link to the master fails; the master's address
 * and the links that follow it (moved at once when it changes, checked
 * with ROLE when they connect: a link that finds a replica drops and asks
 * again); the log lines of the sentinels and the master.  Without
 * "sentinel=", a link to the one address, its host name resolved again
 * when there is a resolver (cg_resolve).
 */


#ifndef _CG_SENTINEL_H_INCLUDED_
#define _CG_SENTINEL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_link.h"


/*
 * A link of this worker to Redis, made and not started yet: it goes where
 * the configuration says (the master of sentinel=, or the one address).
 * The first such link of a worker starts the sentinels' links.
 */
ngx_int_t ngx_http_cg_sentinel_follow(ngx_http_cg_link_t *link);

/* the worker's end, after the followers stopped */
void ngx_http_cg_sentinel_exit(void);


#endif /* _CG_SENTINEL_H_INCLUDED_ */
