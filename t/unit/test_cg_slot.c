
/*
 * Unit tests of src/cg_slot.c: key slots, bucket tags, CLUSTER SLOTS and
 * redirections.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cg_slot.h"


#define S(s)  (const unsigned char *) (s), sizeof(s) - 1


static void
test_slot_known(void **state)
{
    (void) state;

    /* the figures of CLUSTER KEYSLOT on a real Redis */

    assert_int_equal(cg_slot(S("foo")), 12182);
    assert_int_equal(cg_slot(S("bar")), 5061);
    assert_int_equal(cg_slot(S("123456789")), 0x31c3 & 16383);
    assert_int_equal(cg_slot(S("cg:quotas")), cg_slot(S("cg:quotas")));
}


static void
test_slot_tags(void **state)
{
    (void) state;

    assert_int_equal(cg_slot(S("{user1000}.following")),
                     cg_slot(S("user1000")));
    assert_int_equal(cg_slot(S("cg:{team-a}:r:1000")),
                     cg_slot(S("team-a")));
    assert_int_equal(cg_slot(S("cg:{team-a}:w:60000:7")),
                     cg_slot(S("cg:{team-a}:r:1000")));

    /* the first "{" only; an empty tag hashes the whole key */

    assert_int_equal(cg_slot(S("a{b}{c}")), cg_slot(S("b")));
    assert_int_equal(cg_slot(S("foo{}{bar}")), 8363);
    assert_int_equal(cg_slot(S("foo{{bar}}zap")), 4015);
    assert_int_equal(cg_slot(S("foo{bar}{zap}")), 5061);
    assert_int_equal(cg_slot(S("{unclosed")), cg_slot(S("{unclosed")));
    assert_int_not_equal(cg_slot(S("x{}")), cg_slot(S("")));
}


static void
test_bucket_tags(void **state)
{
    unsigned       i, n;
    size_t         len;
    unsigned char  tag[CG_SLOT_TAG_MAX], key[64];

    (void) state;

    for (n = 1; n <= 1024; n *= 2) {
        for (i = 0; i < n; i++) {
            len = cg_slot_bucket_tag(tag, i, n);

            assert_true(len < CG_SLOT_TAG_MAX);
            assert_int_equal(cg_slot(tag, len) / (CG_SLOTS / n), i);

            /* as a hash tag in a key of the module */

            key[0] = '{';
            memcpy(key + 1, tag, len);
            memcpy(key + 1 + len, "}team-a:r:1000", 14);

            assert_int_equal(cg_slot(key, len + 15), cg_slot(tag, len));
        }
    }

    /* stable: the first tag of 16 buckets, as documented */

    len = cg_slot_bucket_tag(tag, 0, 16);
    assert_true(len >= 3 && memcmp(tag, "0.", 2) == 0);
}


static redisReply *
r_int(long long v)
{
    redisReply  *r = calloc(1, sizeof(redisReply));

    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}


static redisReply *
r_str(const char *s)
{
    redisReply  *r = calloc(1, sizeof(redisReply));

    r->type = REDIS_REPLY_STRING;
    r->str = (char *) s;
    r->len = strlen(s);
    return r;
}


static redisReply *
r_nil(void)
{
    redisReply  *r = calloc(1, sizeof(redisReply));

    r->type = REDIS_REPLY_NIL;
    return r;
}


static redisReply *
r_arr(size_t n, ...)
{
    size_t       i;
    va_list      ap;
    redisReply  *r = calloc(1, sizeof(redisReply));

    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof(redisReply *));

    va_start(ap, n);

    for (i = 0; i < n; i++) {
        r->element[i] = va_arg(ap, redisReply *);
    }

    va_end(ap);

    return r;
}


static void
r_free(redisReply *r)
{
    size_t  i;

    if (r->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < r->elements; i++) {
            r_free(r->element[i]);
        }

        free(r->element);
    }

    free(r);
}


static void
test_parse(void **state)
{
    size_t            n;
    redisReply       *r;
    cg_slot_range_t   rg[4];

    (void) state;

    /* three masters, the second with a replica, the third "?" */

    r = r_arr(3,
              r_arr(3, r_int(0), r_int(5460),
                    r_arr(3, r_str("127.0.0.1"), r_int(7000), r_str("id1"))),
              r_arr(4, r_int(5461), r_int(10922),
                    r_arr(3, r_str("127.0.0.1"), r_int(7001), r_str("id2")),
                    r_arr(3, r_str("127.0.0.1"), r_int(7004), r_str("id5"))),
              r_arr(3, r_int(10923), r_int(16383),
                    r_arr(2, r_str("?"), r_int(7002))));

    assert_null(cg_slot_parse(r, rg, 4, &n));
    assert_int_equal(n, 3);
    assert_int_equal(rg[0].start, 0);
    assert_int_equal(rg[0].end, 5460);
    assert_int_equal(rg[0].port, 7000);
    assert_int_equal(rg[0].host_len, 9);
    assert_memory_equal(rg[0].host, "127.0.0.1", 9);
    assert_int_equal(rg[1].port, 7001);
    assert_int_equal(rg[2].host_len, 0);

    /* bounded */

    assert_non_null(cg_slot_parse(r, rg, 2, &n));
    assert_int_equal(n, 0);

    r_free(r);

    /* malformed: start after end, a slot too high, no master */

    r = r_arr(1, r_arr(3, r_int(9), r_int(8),
                       r_arr(2, r_str("h"), r_int(1))));
    assert_non_null(cg_slot_parse(r, rg, 4, &n));
    r_free(r);

    r = r_arr(1, r_arr(3, r_int(0), r_int(16384),
                       r_arr(2, r_str("h"), r_int(1))));
    assert_non_null(cg_slot_parse(r, rg, 4, &n));
    r_free(r);

    r = r_arr(1, r_arr(2, r_int(0), r_int(1)));
    assert_non_null(cg_slot_parse(r, rg, 4, &n));
    r_free(r);

    r = r_str("ERR This instance has cluster support disabled");
    r->type = REDIS_REPLY_ERROR;
    assert_non_null(cg_slot_parse(r, rg, 4, &n));
    r_free(r);

    /*
     * Redis 7's metadata: cluster-preferred-endpoint-type hostname (the
     * host name, "ip" beside it; "?" while the name is not known),
     * unknown-endpoint (null, "ip" beside it), ip (the address, "hostname"
     * beside it)
     */

    r = r_arr(4,
              r_arr(3, r_int(0), r_int(99),
                    r_arr(4, r_str("h1.example"), r_int(7000), r_str("id1"),
                          r_arr(2, r_str("ip"), r_str("10.0.0.1")))),
              r_arr(3, r_int(100), r_int(199),
                    r_arr(4, r_str("?"), r_int(7001), r_str("id2"),
                          r_arr(2, r_str("ip"), r_str("10.0.0.2")))),
              r_arr(3, r_int(200), r_int(299),
                    r_arr(4, r_nil(), r_int(7002), r_str("id3"),
                          r_arr(2, r_str("ip"), r_str("10.0.0.3")))),
              r_arr(3, r_int(300), r_int(399),
                    r_arr(4, r_str("10.0.0.4"), r_int(7003), r_str("id4"),
                          r_arr(4, r_str("hostname"), r_str("h4.example"),
                                r_str("other"), r_int(1)))));

    assert_null(cg_slot_parse(r, rg, 4, &n));
    assert_int_equal(n, 4);
    assert_int_equal(rg[0].host_len, 8);
    assert_memory_equal(rg[0].host, "10.0.0.1", 8);
    assert_int_equal(rg[0].name_len, 10);
    assert_memory_equal(rg[0].name, "h1.example", 10);
    assert_int_equal(rg[1].host_len, 8);
    assert_memory_equal(rg[1].host, "10.0.0.2", 8);
    assert_int_equal(rg[1].name_len, 0);
    assert_int_equal(rg[2].host_len, 8);
    assert_memory_equal(rg[2].host, "10.0.0.3", 8);
    assert_int_equal(rg[2].name_len, 0);
    assert_int_equal(rg[3].host_len, 8);
    assert_memory_equal(rg[3].host, "10.0.0.4", 8);
    assert_int_equal(rg[3].name_len, 10);
    assert_memory_equal(rg[3].name, "h4.example", 10);
    assert_int_equal(rg[3].port, 7003);
    r_free(r);

    /* null without "ip": the node that answered; metadata not in pairs */

    r = r_arr(1, r_arr(3, r_int(0), r_int(1),
                       r_arr(2, r_nil(), r_int(7000))));
    assert_null(cg_slot_parse(r, rg, 4, &n));
    assert_int_equal(rg[0].host_len, 0);
    r_free(r);

    r = r_arr(1, r_arr(3, r_int(0), r_int(1),
                       r_arr(4, r_str("h"), r_int(7000), r_str("id"),
                             r_arr(1, r_str("ip")))));
    assert_non_null(cg_slot_parse(r, rg, 4, &n));
    r_free(r);

    /* an empty cluster (no slots assigned yet) */

    r = r_arr(0);
    assert_null(cg_slot_parse(r, rg, 4, &n));
    assert_int_equal(n, 0);
    r_free(r);
}


static void
test_redirect(void **state)
{
    cg_slot_redirect_t  rd;

    (void) state;

#define R(s)  cg_slot_redirect(s, sizeof(s) - 1, &rd)

    assert_int_equal(R("MOVED 3999 127.0.0.1:6381"), 1);
    assert_int_equal(rd.ask, 0);
    assert_int_equal(rd.slot, 3999);
    assert_int_equal(rd.port, 6381);
    assert_int_equal(rd.host_len, 9);
    assert_memory_equal(rd.host, "127.0.0.1", 9);

    assert_int_equal(R("ASK 16383 [::1]:7000"), 1);
    assert_int_equal(rd.ask, 1);
    assert_int_equal(rd.slot, 16383);
    assert_int_equal(rd.port, 7000);
    assert_int_equal(rd.host_len, 5);

    assert_int_equal(R("MOVED 1 ::1:7000"), 1);
    assert_int_equal(rd.host_len, 3);

    /* Redis 7: an unknown endpoint is ":port", the node that answered */

    assert_int_equal(R("MOVED 12 :7002"), 1);
    assert_int_equal(rd.host_len, 0);
    assert_int_equal(rd.port, 7002);

    assert_int_equal(R("MOVED 16384 h:1"), 0);
    assert_int_equal(R("MOVED 12 h:"), 0);
    assert_int_equal(R("MOVED 12 h:70000"), 0);
    assert_int_equal(R("MOVED 12 nohost"), 0);
    assert_int_equal(R("MOVED x h:1"), 0);
    assert_int_equal(R("NOSCRIPT No matching script"), 0);
    assert_int_equal(R("ERR MOVED 1 h:1"), 0);
    assert_int_equal(R("ASK"), 0);

#undef R
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_slot_known),
        cmocka_unit_test(test_slot_tags),
        cmocka_unit_test(test_bucket_tags),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_redirect),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
