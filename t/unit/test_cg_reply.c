/*
 * Unit tests for src/cg_reply.c: the reader of a link, and the Redis
 * replies the module walks, made from their RESP text by that reader.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cg_reply.h"


/* the reply of this RESP text (one, complete) */

static redisReply *
reply(const char *resp)
{
    void         *r;
    redisReader  *rd;

    rd = cg_reply_reader();
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);

    r = NULL;
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    assert_non_null(r);

    redisReaderFree(rd);

    return r;
}


static void
test_pairs(void **state)
{
    size_t                flen, vlen;
    redisReply           *r;
    const unsigned char  *f, *v;

    /* HGETALL: a string pair, a pair with an integer, an odd field */

    r = reply("*5\r\n$6\r\nteam-a\r\n$9\r\nquota=5/h\r\n"
              "$6\r\nteam-b\r\n:5\r\n$6\r\nteam-c\r\n");

    assert_int_equal(cg_reply_pair(r, 0, &f, &flen, &v, &vlen), 1);
    assert_int_equal(flen, 6);
    assert_memory_equal(f, "team-a", 6);
    assert_int_equal(vlen, 9);
    assert_memory_equal(v, "quota=5/h", 9);

    assert_int_equal(cg_reply_pair(r, 2, &f, &flen, &v, &vlen), 0);
    assert_int_equal(cg_reply_pair(r, 4, &f, &flen, &v, &vlen), -1);
    assert_int_equal(cg_reply_pair(r, 6, &f, &flen, &v, &vlen), -1);
    assert_int_equal(cg_reply_pair(r, (size_t) -1, &f, &flen, &v, &vlen),
                     -1);
    freeReplyObject(r);

    /* an empty hash, no hash, a nil */

    r = reply("*0\r\n");
    assert_int_equal(cg_reply_pair(r, 0, &f, &flen, &v, &vlen), -1);
    freeReplyObject(r);

    r = reply("-WRONGTYPE Operation against a key\r\n");
    assert_int_equal(cg_reply_pair(r, 0, &f, &flen, &v, &vlen), -1);
    freeReplyObject(r);

    r = reply("*-1\r\n");
    assert_int_equal(cg_reply_pair(r, 0, &f, &flen, &v, &vlen), -1);
    freeReplyObject(r);

    /* empty strings are strings */

    r = reply("*2\r\n$0\r\n\r\n$0\r\n\r\n");
    assert_int_equal(cg_reply_pair(r, 0, &f, &flen, &v, &vlen), 1);
    assert_int_equal(flen, 0);
    assert_int_equal(vlen, 0);
    freeReplyObject(r);
}


static void
test_lease(void **state)
{
    redisReply         *r;
    cg_lease_answer_t   a;

    /*
     * two clients: granted 7 (retry, binding 1, headroom, 4 rests, the
     * first and the last unit's time) ...
     */

    r = reply("*20\r\n"
              ":7\r\n:0\r\n:1\r\n:93\r\n:93\r\n:0\r\n:0\r\n:0\r\n"
              ":-5\r\n:900\r\n"
              "$3\r\nERR\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n"
              ":0\r\n:0\r\n");

    assert_int_equal(CG_REPLY_LEASE, 10);
    assert_int_equal(cg_reply_lease(r, 2), 1);
    assert_int_equal(cg_reply_lease(r, 1), 0);
    assert_int_equal(cg_reply_lease(r, 3), 0);
    assert_int_equal(cg_reply_lease(r, 0), 0);

    cg_reply_lease_part(r->element, r->element[0]->integer, &a);
    assert_int_equal(a.granted, 7);
    assert_int_equal(a.retry, 0);
    assert_int_equal(a.binding, 1);
    assert_int_equal(a.headroom, 93);
    assert_int_equal(a.rest[0], 93);
    assert_int_equal(a.rest[CG_MAX_LIMITS - 1], 0);
    assert_int_equal(a.first, -5);
    assert_int_equal(a.last, 900);

    memset(&a, 0x55, sizeof(a));
    cg_reply_lease_part(NULL, CG_LEASE_KEYS_FAILED, &a);
    assert_int_equal(a.granted, CG_LEASE_KEYS_FAILED);
    assert_int_equal(a.retry, 0);
    assert_int_equal(a.headroom, 0);
    assert_int_equal(a.rest[0], 0);
    freeReplyObject(r);

    /* a string anywhere but a client's first: no answer */

    r = reply("*10\r\n:7\r\n$1\r\n0\r\n:1\r\n:9\r\n:9\r\n:0\r\n:0\r\n:0\r\n"
              ":0\r\n:0\r\n");
    assert_int_equal(cg_reply_lease(r, 1), 0);
    freeReplyObject(r);

    /* a nested array, a nil, an error, an integer: no answer */

    r = reply("*10\r\n*0\r\n:0\r\n:1\r\n:9\r\n:9\r\n:0\r\n:0\r\n:0\r\n"
              ":0\r\n:0\r\n");
    assert_int_equal(cg_reply_lease(r, 1), 0);
    freeReplyObject(r);

    r = reply("*10\r\n$-1\r\n:0\r\n:1\r\n:9\r\n:9\r\n:0\r\n:0\r\n:0\r\n"
              ":0\r\n:0\r\n");
    assert_int_equal(cg_reply_lease(r, 1), 0);
    freeReplyObject(r);

    r = reply("-ERR Error running script\r\n");
    assert_int_equal(cg_reply_lease(r, 1), 0);
    freeReplyObject(r);

    r = reply(":8\r\n");
    assert_int_equal(cg_reply_lease(r, 1), 0);
    freeReplyObject(r);

    r = reply("*0\r\n");
    assert_int_equal(cg_reply_lease(r, 1), 0);
    freeReplyObject(r);
}


/* the text's first reply: REDIS_OK (NULL while incomplete), or the error */

static int
first(const char *resp, size_t len, redisReply **r)
{
    int           rc;
    redisReader  *rd;

    rd = cg_reply_reader();
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, resp, len), REDIS_OK);

    *r = NULL;
    rc = redisReaderGetReply(rd, (void **) r);

    redisReaderFree(rd);

    return rc;
}


/*
 * An array of more elements than CG_REPLY_ARRAY_MAX is an error as soon
 * as its count is read (found by fuzz/fuzz_resp_lease.c: "*84967296" made
 * hiredis allocate 680 MB and spend seconds freeing them), at any depth;
 * up to that it is read, and replies are as hiredis makes them
 */

static void
test_reader(void **state)
{
    char         text[64];
    redisReply  *r;

    snprintf(text, sizeof(text), "*%d\r\n", CG_REPLY_ARRAY_MAX + 1);
    assert_int_equal(first(text, strlen(text), &r), REDIS_ERR);

    snprintf(text, sizeof(text), "*2\r\n:1\r\n*%d\r\n",
             CG_REPLY_ARRAY_MAX + 1);
    assert_int_equal(first(text, strlen(text), &r), REDIS_ERR);

    assert_int_equal(first("*2147483647\r\n", 13, &r), REDIS_ERR);

    snprintf(text, sizeof(text), "*%d\r\n:1\r\n", CG_REPLY_ARRAY_MAX);
    assert_int_equal(first(text, strlen(text), &r), REDIS_OK);
    assert_null(r);

    /* every kind of reply */

    snprintf(text, sizeof(text), "*5\r\n:-3\r\n$2\r\nab\r\n+OK\r\n"
             "-ERR x\r\n$-1\r\n");
    assert_int_equal(first(text, strlen(text), &r), REDIS_OK);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 5);
    assert_int_equal(r->element[0]->integer, -3);
    assert_int_equal(r->element[1]->type, REDIS_REPLY_STRING);
    assert_int_equal(r->element[2]->type, REDIS_REPLY_STATUS);
    assert_int_equal(r->element[3]->type, REDIS_REPLY_ERROR);
    assert_int_equal(r->element[4]->type, REDIS_REPLY_NIL);
    freeReplyObject(r);

    /* a protocol error is one */

    assert_int_equal(first("?\r\n", 3, &r), REDIS_ERR);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader),
        cmocka_unit_test(test_pairs),
        cmocka_unit_test(test_lease),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
