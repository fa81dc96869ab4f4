
/*
 * Copyright (C) client guard authors
 *
 * cg_zone_shm: a zone's shared memory, made or kept.
 *
 * Owns: the zone's memory made at the first start (the shared context,
 * the rbtree, the LRU queues, the hash index: one bucket per 512 bytes of
 * zone, the table of names evicted while new: one per 128 bytes, the slab
 * pool's log context) and kept across a reload: a reload is refused when
 * it would resize the zone (nginx would hand it over empty) or brings
 * another layout (NGX_HTTP_CG_ZONE_LAYOUT); a kept zone whose history step
 * changed has its clients' histories started again.
 */


#ifndef _CG_ZONE_SHM_H_INCLUDED_
#define _CG_ZONE_SHM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_zone_layout.h"


/*
 * NGX_ERROR (and the message) when the running cycle has the zone "name"
 * of another size than "size": its counters would be lost.
 */
ngx_int_t ngx_http_cg_zone_check_resize(ngx_conf_t *cf, ngx_str_t *name,
    size_t size);

/* the shm_zone's init: "data" is the zone of the cycle before, or NULL */
ngx_int_t ngx_http_cg_zone_init(ngx_shm_zone_t *shm_zone, void *data);


#endif /* _CG_ZONE_SHM_H_INCLUDED_ */
