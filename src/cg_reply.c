
/*
 * Copyright (C) client guard authors
 *
 * The shapes of the Redis replies the module walks.  See cg_reply.h.
 */


#include "cg_reply.h"


typedef void *(*cg_reply_array_pt)(const redisReadTask *task, int elements);


/* hiredis's functions that build a reply, but for an array's */

static redisReplyObjectFunctions  cg_reply_fns;
static cg_reply_array_pt          cg_reply_array;


static void *
cg_reply_bounded_array(const redisReadTask *task, int elements)
{
    if (elements > CG_REPLY_ARRAY_MAX) {
        return NULL;
    }

    return cg_reply_array(task, elements);
}


redisReader *
cg_reply_reader(void)
{
    redisReader  *rd;

    rd = redisReaderCreate();

    if (rd == NULL || rd->fn == NULL) {
        return rd;
    }

    if (cg_reply_array == NULL) {
        cg_reply_fns = *rd->fn;
        cg_reply_array = cg_reply_fns.createArray;
        cg_reply_fns.createArray = cg_reply_bounded_array;
    }

    rd->fn = &cg_reply_fns;

    return rd;
}


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

    a->first = e ? e[4 + CG_MAX_LIMITS]->integer : 0;
    a->last = e ? e[5 + CG_MAX_LIMITS]->integer : 0;
}
