
/*
 * Copyright (C) client guard authors
 *
 * cg_reply: the shapes of the Redis replies the module walks, as
 * hiredis's reader builds them (redisReply), and nothing else.
 *
 * Owns: the reader a link parses replies with (hiredis's, its arrays
 * bounded: cg_link.c); a pair of a hash reply (HGETALL of the quota
 * definitions and of the API keys, cg_redis_snap.c); the lease script's
 * reply (cg_lease.lua: CG_REPLY_LEASE integers per client, a client's
 * first one possibly an error text) checked as a whole, and a client's
 * part of it taken into cg_lease.h's answer (cg_lease_batch.c).  Pure:
 * hiredis's reader and types only, no nginx calls; unit tested in
 * t/unit/test_cg_reply.c, fuzzed with the reader in front by
 * fuzz/fuzz_resp_lease.c and fuzz/fuzz_resp_hash.c.
 */


#ifndef _CG_REPLY_H_INCLUDED_
#define _CG_REPLY_H_INCLUDED_


#include <stddef.h>

#include <hiredis/hiredis.h>

#include "cg_lease.h"


/* integers per client in the reply of the lease script */
#define CG_REPLY_LEASE      (6 + CG_MAX_LIMITS)

/*
 * The most elements an array of a reply may announce: hiredis allocates
 * their pointers as soon as it reads the count (up to 2^31 - 1: 16 GB),
 * and frees them one by one.  This is 2 million pairs of a hash, 32 MB.
 */
#define CG_REPLY_ARRAY_MAX  (1 << 22)


/*
 * hiredis's reader, but for an array of more than CG_REPLY_ARRAY_MAX
 * elements: that is an error of the reader ("Out of memory"), as for a
 * reply that breaks the protocol.  NULL without memory.
 */
redisReader *cg_reply_reader(void);


/*
 * Pair "i" (even) of the array "r" (a hash's field and value): 1 when both
 * are strings, with their bytes; 0 when either is not; -1 when "r" has no
 * such pair.
 */
int cg_reply_pair(const redisReply *r, size_t i, const unsigned char **field,
    size_t *field_len, const unsigned char **value, size_t *value_len);

/*
 * 1 when "r" is the lease script's answer for "n" clients: an array of
 * CG_REPLY_LEASE elements per client, integers, but for a client's first
 * one that may be a string (Redis failed on that client's keys); else 0.
 */
int cg_reply_lease(const redisReply *r, size_t n);

/*
 * A client's part of such an answer into "a": "granted" as given (its
 * first element's integer, or CG_LEASE_NO_ANSWER, CG_LEASE_KEYS_FAILED),
 * the retry, binding limit, headroom and every limit's rest from "e" (the
 * client's CG_REPLY_LEASE elements), or 0 when "e" is NULL.
 */
void cg_reply_lease_part(redisReply **e, int64_t granted,
    cg_lease_answer_t *a);


#endif /* _CG_REPLY_H_INCLUDED_ */
