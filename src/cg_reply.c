
/*
 * Copyright (C) client guard authors
 *
 * The shapes of the Redis replies the module walks.  See cg_reply.h.
 */


#include "cg_reply.h"


int
cg_reply_pair(const redisReply *r, size_t i, const unsigned char **field,
    size_t *field_len, const unsigned char **value, size_t *value_len)
{
    const redisReply  *f, *v;

    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements
        || r->elements - i < 2)
    {
        return -1;
    }

    f = r->element[i];
    v = r->element[i + 1];

    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
        return 0;
    }

    *field = (const unsigned char *) f->str;
    *field_len = f->len;
    *value = (const unsigned char *) v->str;
    *value_len = v->len;

    return 1;
}


int
cg_reply_lease(const redisReply *r, size_t n)
{
    size_t  i;

    if (r->type != REDIS_REPLY_ARRAY || n == 0
        || r->elements / CG_REPLY_LEASE != n
        || r->elements % CG_REPLY_LEASE != 0)
    {
        return 0;
    }

    for (i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_INTEGER
            && !(i % CG_REPLY_LEASE == 0
                 && r->element[i]->type == REDIS_REPLY_STRING))
        {
            return 0;
        }
    }

    return 1;
}


void
cg_reply_lease_part(redisReply **e, int64_t granted, cg_lease_answer_t *a)
{
    int  i;

    a->granted = granted;
    a->retry = e ? e[1]->integer : 0;
    a->binding = e ? e[2]->integer : 0;
    a->headroom = e ? e[3]->integer : 0;

    for (i = 0; i < CG_MAX_LIMITS; i++) {
        a->rest[i] = e ? e[4 + i]->integer : 0;
    }
}
