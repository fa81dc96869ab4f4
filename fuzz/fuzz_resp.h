
/*
 * Copyright (C) client guard authors
 *
 * The RESP reply path of the fuzz targets, as cg_link_io.c has it: the
 * module's reader (cg_reply.c cg_reply_reader: hiredis's, its arrays
 * bounded) fed the bytes in chunks of a size the input says (as reads
 * return them), every complete reply handed to "walk", then freed; an
 * error of the reader ends the input, as it drops the link.
 */


#ifndef _CG_FUZZ_RESP_H_INCLUDED_
#define _CG_FUZZ_RESP_H_INCLUDED_


#include "fuzz.h"
#include "cg_reply.h"


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

    rd = cg_reply_reader();
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
