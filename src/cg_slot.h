
/*
 * Copyright (C) client guard authors
 *
 * cg_slot: Redis Cluster's arithmetic, pure.
 *
 * Owns: a key's slot (CRC16 of the key, or of its hash tag: the part
 * between the first "{" and the next "}" when not empty), the hash tags of
 * the lease buckets (tags chosen so that bucket i of n hashes into the i-th
 * n-th of the slots: buckets spread evenly over masters holding ranges of
 * slots), the parse of a CLUSTER SLOTS reply into ranges and of a MOVED or
 * ASK redirection.  No nginx runtime calls, no allocation.  Unit tested in
 * t/unit/test_cg_slot.c.
 */


#ifndef _CG_SLOT_H_INCLUDED_
#define _CG_SLOT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>


#define CG_SLOTS           16384
#define CG_SLOT_HOST_MAX   64          /* an address's text, at most */
#define CG_SLOT_TAG_MAX    16          /* a bucket's tag, at most */


/* one range of slots and its master, as CLUSTER SLOTS gives it */

typedef struct {
    uint16_t               start;
    uint16_t               end;        /* included */
    uint16_t               port;
    uint16_t               host_len;   /* 0: the node that answered */
    unsigned char          host[CG_SLOT_HOST_MAX];
    uint16_t               name_len;   /* 0: none announced */
    unsigned char          name[CG_SLOT_HOST_MAX]; /* its host name */
} cg_slot_range_t;


/* "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" */

typedef struct {
    unsigned               ask;
    uint16_t               slot;
    uint16_t               port;
    uint16_t               host_len;   /* 0: the node that answered */
    unsigned char          host[CG_SLOT_HOST_MAX];
} cg_slot_redirect_t;


uint16_t cg_slot(const unsigned char *key, size_t len);

/*
 * The hash tag of bucket "i" of "n" (n a divisor of CG_SLOTS, up to 1024),
 * written into "tag" (CG_SLOT_TAG_MAX bytes, no braces): the first of "0",
 * "1", ... after "<i>." whose slot is in [i * CG_SLOTS / n, (i + 1) *
 * CG_SLOTS / n).  Returns its length.  The same on every node and build.
 */
size_t cg_slot_bucket_tag(unsigned char *tag, unsigned i, unsigned n);

/*
 * A CLUSTER SLOTS reply into at most "max" ranges; "*n" set to their
 * number.  Returns NULL, or what is wrong with the reply (a range
 * malformed is an error: the map stays as it was).  Ranges beyond "max"
 * are an error too.  A master's address is its "ip" where Redis 7 gives
 * one (the endpoint then is a host name, "?" or null:
 * cluster-preferred-endpoint-type hostname or unknown-endpoint); its host
 * name, the endpoint's or the "hostname" given, goes to "name" (what a
 * MOVED names it by).
 */
const char *cg_slot_parse(const redisReply *r, cg_slot_range_t *ranges,
    size_t max, size_t *n);

/* 1 when the error text is a redirection, filled in; 0 when not */
int cg_slot_redirect(const char *err, size_t len, cg_slot_redirect_t *rd);


#endif /* _CG_SLOT_H_INCLUDED_ */
