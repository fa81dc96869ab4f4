
/*
 * Copyright (C) client guard authors
 *
 * cg_zone_evict: room made in a zone, by tier.
 *
 * Owns: the choice of the records to evict (the least recently seen of a
 * few unpinned records at the tail of the lowest tier's LRU queue that has
 * one, see cg_zone_layout.h), their removal from the LRU, the hash index
 * and the rbtree, the hashes of the names evicted while NEW (the "ghosts":
 * one per 128 bytes of zone, direct-mapped, which cg_zone_store.c reads
 * when such a name comes back), and the zone's eviction counters.  The
 * caller holds the zone lock.
 */


#ifndef _CG_ZONE_EVICT_H_INCLUDED_
#define _CG_ZONE_EVICT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "cg_zone_layout.h"


/*
 * "n" records out, each from the lowest tier that gives one; fewer when
 * the queues' tails hold only records pinned by requests under way.
 */
void ngx_http_cg_zone_evict(ngx_http_cg_zone_t *zone, ngx_uint_t n);


#endif /* _CG_ZONE_EVICT_H_INCLUDED_ */
