
/*
 * Copyright (C) client guard authors
 *
 * Fuzz target: the lease script's reply, from the bytes Redis sends on:
 * hiredis's reader (fuzz_resp.h), then the module's walk of it as
 * cg_lease_batch.c ngx_http_cg_batch_reply has it (cg_reply.c
 * cg_reply_lease for a batch of n clients, cg_reply_lease_part for each),
 * and each client's answer into a lease (cg_lease.c cg_lease_answer).
 * The input: a byte for the chunk size, a byte for n (1..64), 5 bytes for
 * the lease's state and what the fetch was, then the RESP bytes.
 */


#include "fuzz_resp.h"
#include "cg_reply.h"


typedef struct {
    size_t          n;
    uint8_t         seed[5];
} cg_fuzz_lease_t;


static void
cg_fuzz_lease_walk(redisReply *r, void *data)
{
    cg_fuzz_lease_t  *fl = data;

    int                 charge;
    size_t              k;
    uint8_t            *s;
    redisReply        **e;
    cg_lease_t          l;
    cg_lease_out_t      out;
    cg_lease_answer_t   a;

    s = fl->seed;
    e = cg_reply_lease(r, fl->n) ? r->element : NULL;

    cg_fuzz_check(e == NULL
                  || (r->type == REDIS_REPLY_ARRAY
                      && r->elements == fl->n * CG_REPLY_LEASE));

    for (k = 0; k < fl->n; k++) {

        /* a lease fetching, in a state the input says */

        memset(&l, 0, sizeof(l));
        l.fetching = 5000;
        l.qhash = 77;
        l.left = (s[0] & 1) ? s[1] : 0;
        l.owed = s[2] & 0x0f;
        l.headroom = s[3];
        l.granted = (s[0] & 2) ? 4000 : 0;
        l.expires = (s[0] & 4) ? 4500 : 6000;

        if (e && e[0]->type == REDIS_REPLY_STRING) {
            cg_fuzz_check(e[0]->str != NULL);
            cg_reply_lease_part(NULL, CG_LEASE_KEYS_FAILED, &a);
            e += CG_REPLY_LEASE;

        } else if (e) {
            cg_reply_lease_part(e, e[0]->integer, &a);
            e += CG_REPLY_LEASE;

        } else {
            cg_reply_lease_part(NULL, CG_LEASE_NO_ANSWER, &a);
        }

        a.nlimits = s[4] % (CG_MAX_LIMITS + 1);
        a.qhash = 77;
        a.owed = s[4] >> 4;
        a.started = 5000;
        a.now = 5100;
        a.ahead = s[3] % 20;
        a.ttl = 200;
        a.ttl_small = 1000;
        a.ready = (s[0] >> 3) & 1;

        charge = cg_lease_answer(&l, &a, &out);

        cg_fuzz_check(charge == 0 || charge == 1);
        cg_fuzz_check(l.binding < (a.nlimits ? a.nlimits : 1));
        cg_fuzz_check(charge ? (l.fetching == out.started && out.want > 0
                                && out.want == out.owed)
                             : l.fetching == 0);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cg_fuzz_lease_t  fl;

    if (size < 7) {
        return 0;
    }

    fl.n = data[1] % 64 + 1;
    memcpy(fl.seed, data + 2, 5);

    cg_fuzz_resp(data[0], data + 7, size - 7, cg_fuzz_lease_walk, &fl);

    return 0;
}
