
/*
 * Copyright (C) client guard authors
 *
 * The RESP reply path of the fuzz targets, as cg_link.c has it: hiredis's
 * reader (built as the link builds it) fed the bytes in chunks of a size
 * the input says (as reads return them), every complete reply handed to
 * "walk", then freed; a protocol error ends the input, as it drops the
 * link.
 *
 * hiredis 0.14 allocates an array's pointers as soon as a reply announces
 * its count (up to 2^31 - 1); a count no allocator can give fails there,
 * and the link drops the connection ("out of memory").  So that this is
 * what happens under the fuzzer too, ASan returns NULL rather than stop
 * for an allocation over 1 GB (libFuzzer's own limit is 2 GB).
 */


#ifndef _CG_FUZZ_RESP_H_INCLUDED_
#define _CG_FUZZ_RESP_H_INCLUDED_


#include <hiredis/hiredis.h>

#include "fuzz.h"


const char *__asan_default_options(void);

const char *
__asan_default_options(void)
{
    return "allocator_may_return_null=1:max_allocation_size_mb=1024";
}


typedef void (*cg_fuzz_walk_pt)(redisReply *r, void *data);


/* "chunk" 0: 4096 bytes at a time */

static inline void
cg_fuzz_resp(uint8_t chunk, const uint8_t *data, size_t size,
    cg_fuzz_walk_pt walk, void *ctx)
{
    void         *r;
    size_t        n, max;
    redisReader  *rd;

    max = chunk ? chunk : 4096;

    rd = redisReaderCreate();
    cg_fuzz_check(rd != NULL);

    while (size) {
        n = size < max ? size : max;

        if (redisReaderFeed(rd, (const char *) data, n) != REDIS_OK) {
            break;
        }

        data += n;
        size -= n;

        for ( ;; ) {
            r = NULL;

            if (redisReaderGetReply(rd, &r) != REDIS_OK) {
                goto done;
            }

            if (r == NULL) {
                break;
            }

            walk(r, ctx);
            freeReplyObject(r);
        }
    }

done:

    redisReaderFree(rd);
}


#endif /* _CG_FUZZ_RESP_H_INCLUDED_ */
