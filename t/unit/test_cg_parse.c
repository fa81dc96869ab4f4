/*
 * Unit tests for src/cg_parse.c: quota parameters, a quota definition as
 * Redis holds it, an API key's entry, the log's escaping.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "cg_parse.h"


static const char *
arg(cg_quota_t *q, const char *s)
{
    return cg_parse_quota_arg(q, (const unsigned char *) s, strlen(s));
}


static void
test_quota_args(void **state)
{
    cg_quota_t  q;

    memset(&q, 0, sizeof(q));

    assert_null(arg(&q, "rate=100r/s"));
    assert_null(arg(&q, "burst=20"));
    assert_null(arg(&q, "quota=5000/d"));
    assert_null(arg(&q, "rate=30r/m"));
    assert_null(arg(&q, "mode=dry_run"));

    assert_int_equal(q.nlimits, 3);
    assert_int_equal(q.limits[0].type, CG_LIMIT_RATE);
    assert_int_equal(q.limits[0].count, 100);
    assert_int_equal(q.limits[0].period, 1000);
    assert_int_equal(q.limits[0].burst, 20);
    assert_int_equal(q.limits[1].type, CG_LIMIT_WINDOW);
    assert_int_equal(q.limits[1].count, 5000);
    assert_int_equal(q.limits[1].period, 86400000);
    assert_int_equal(q.limits[2].count, 30);
    assert_int_equal(q.limits[2].period, 60000);
    assert_int_equal(q.mode, CG_MODE_DRY_RUN);
    assert_null(cg_quota_validate(&q));

    assert_null(arg(&q, "quota=1/h"));
    assert_non_null(arg(&q, "quota=1/h"));   /* a fifth limit */
}


static void
test_quota_bad_args(void **state)
{
    static const char  *bad[] = {
        "rate=", "rate=100", "rate=100/s", "rate=r/s", "rate=0r/s",
        "rate=-1r/s", "rate=10r/w", "rate=10r/ss", "rate=1.5r/s",
        "rate=99999999999999r/s", "burst=5", "quota=", "quota=10",
        "quota=10/x", "quota=-1/d", "quota=1e3/d", "mode=", "mode=on",
        "mode=enforced", "speed=1", "rate", "", "quota=10/d\n",
        "quota=0/m", "quota=0/d", "quota=00/s"
    };

    size_t      i;
    cg_quota_t  q;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&q, 0, sizeof(q));
        assert_non_null(arg(&q, bad[i]));
        assert_int_equal(q.nlimits, 0);
    }

    /* burst must follow a rate, not a quota */

    memset(&q, 0, sizeof(q));
    assert_null(arg(&q, "quota=10/d"));
    assert_non_null(arg(&q, "burst=1"));

    /* no limits: only "mode=off" is a complete quota */

    memset(&q, 0, sizeof(q));
    assert_non_null(cg_quota_validate(&q));
    assert_null(arg(&q, "mode=off"));
    assert_null(cg_quota_validate(&q));
}


static void
test_counts(void **state)
{
    uint64_t  n;

    assert_int_equal(cg_parse_count((const unsigned char *) "0", 1, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(cg_parse_count(
                     (const unsigned char *) "1000000000000", 13, &n), 0);
    assert_int_equal(n, 1000000000000ULL);
    assert_int_equal(cg_parse_count(
                     (const unsigned char *) "1000000000001", 13, &n), -1);
    assert_int_equal(cg_parse_count(
                     (const unsigned char *) "18446744073709551617", 20, &n),
                     -1);
    assert_int_equal(cg_parse_count((const unsigned char *) "", 0, &n), -1);
}


static const char *
value(cg_quota_t *q, const char *s)
{
    return cg_parse_quota(q, (const unsigned char *) s, strlen(s));
}


/* a definition in Redis: the parameters in one value (t/30's among them) */

static void
test_redis_quota(void **state)
{
    char        big[CG_QUOTA_VALUE_MAX + 2];
    cg_quota_t  q;

    static const char  *bad[] = {
        "", " ", "\t", "quota=abc/h", "quota=5/h bogus=1", "quota=-5/h",
        "quota=99999999999999999/h", "burst=1 rate=2r/s", "quota=5/h\n",
        "quota=5/h,rate=1r/s", "mode=dry_run", "quota=1/s quota=1/m "
        "quota=1/h quota=1/d quota=2/d"
    };

    size_t  i;

    assert_null(value(&q, "quota=5/h"));
    assert_int_equal(q.nlimits, 1);
    assert_int_equal(q.limits[0].count, 5);
    assert_int_equal(q.limits[0].period, 3600 * 1000);

    assert_null(value(&q, "  rate=2r/s\tburst=1  quota=100/d "));
    assert_int_equal(q.nlimits, 2);
    assert_int_equal(q.limits[0].type, CG_LIMIT_RATE);
    assert_int_equal(q.limits[0].burst, 1);
    assert_int_equal(q.limits[1].type, CG_LIMIT_WINDOW);
    assert_int_equal(q.mode, CG_MODE_ENFORCE);

    assert_null(value(&q, "mode=off"));
    assert_int_equal(q.nlimits, 0);
    assert_int_equal(q.mode, CG_MODE_OFF);

    /* zeroed first: nothing of the last value stays */

    assert_null(value(&q, "quota=1/m mode=dry_run"));
    assert_null(value(&q, "quota=1/m"));
    assert_int_equal(q.mode, CG_MODE_ENFORCE);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_non_null(value(&q, bad[i]));
    }

    /* at most CG_QUOTA_VALUE_MAX bytes, spaces and all */

    memset(big, ' ', sizeof(big));
    memcpy(big, "quota=1/m", 9);
    big[CG_QUOTA_VALUE_MAX] = '\0';
    assert_null(value(&q, big));
    big[CG_QUOTA_VALUE_MAX] = ' ';
    big[CG_QUOTA_VALUE_MAX + 1] = '\0';
    assert_string_equal(value(&q, big), "value too long");
}


static int
key(const char *s)
{
    return cg_parse_api_key((const unsigned char *) s, strlen(s));
}


static void
test_api_key(void **state)
{
    /* sha256_hex("k-123"), as t/31 stores it */

    assert_int_equal(key("3605a9e4358da4302f8acea41f0f52ce"
                         "f85d0e3f727c7b020fc7305aec8d56b4"), 0);
    assert_int_equal(key("0000000000000000000000000000000000000000000000000"
                         "000000000000000"), 0);

    assert_int_equal(key("not-a-hash"), -1);
    assert_int_equal(key(""), -1);
    assert_int_equal(key("3605A9E4358DA4302F8ACEA41F0F52CE"
                         "F85D0E3F727C7B020FC7305AEC8D56B4"), -1);
    assert_int_equal(key("3605a9e4358da4302f8acea41f0f52ce"
                         "f85d0e3f727c7b020fc7305aec8d56b"), -1);
    assert_int_equal(key("3605a9e4358da4302f8acea41f0f52ce"
                         "f85d0e3f727c7b020fc7305aec8d56b40"), -1);
    assert_int_equal(key("3605a9e4358da4302f8acea41f0f52ce"
                         "f85d0e3f727c7b020fc7305aec8d56bg"), -1);
    assert_int_equal(cg_parse_api_key((const unsigned char *)
                     "3605a9e4358da4302f8acea41f0f52ce"
                     "f85d0e3f727c7b020fc7305aec8d56\0" "4", 64), -1);
}


static size_t
esc(char *buf, size_t size, const char *s, size_t len)
{
    unsigned char  *p;

    p = cg_escape((unsigned char *) buf, size, (const unsigned char *) s,
                  len);
    *p = '\0';

    return (size_t) (p - (unsigned char *) buf);
}


static void
test_escape(void **state)
{
    size_t  i, n;
    char    buf[64], big[300], src[256];

    esc(buf, sizeof(buf) - 1, "team-a", 6);
    assert_string_equal(buf, "team-a");

    /* a forged line: the newline and the quote never reach the log */

    esc(buf, sizeof(buf) - 1, "x\n2026/01/01 [emerg] \"y\\", 24);
    assert_string_equal(buf, "x\\x0a2026/01/01 [emerg] \\x22y\\x5c");

    esc(buf, sizeof(buf) - 1, "\r\t\x7f\xc3\xa9", 5);
    assert_string_equal(buf, "\\x0d\\x09\\x7f\\xc3\\xa9");

    /* cut where the room ends, "..." said, never beyond "size" */

    for (i = 0; i < sizeof(src); i++) {
        src[i] = (char) i;
    }

    for (i = CG_ESCAPE_MIN; i < sizeof(big); i++) {
        memset(big, 'Z', sizeof(big));
        n = (size_t) (cg_escape((unsigned char *) big, i,
                                (const unsigned char *) src, sizeof(src))
                      - (unsigned char *) big);
        assert_true(n <= i);
        assert_memory_equal(big + n - 3, "...", 3);
        assert_int_equal(big[i], 'Z');
    }

    n = esc(big, sizeof(big), "abc", 3);
    assert_int_equal(n, 3);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quota_args),
        cmocka_unit_test(test_quota_bad_args),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_redis_quota),
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_escape),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
