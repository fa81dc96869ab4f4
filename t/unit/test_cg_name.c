/*
 * Unit tests for src/cg_name.h: client names.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "cg_name.h"


static int
norm(const char *in, char *out, size_t max)
{
    int  n;

    n = cg_name_normalize((unsigned char *) out, (const unsigned char *) in,
                          strlen(in), max);
    if (n >= 0) {
        out[n] = '\0';
    }

    return n;
}


static void
test_names(void **state)
{
    char    out[CG_NAME_MAX + 1];
    char    big[300];

    assert_int_equal(norm("Team-A", out, 64), 6);
    assert_string_equal(out, "team-a");
    assert_int_equal(norm("svc.batch_1:eu@x", out, 64), 16);
    assert_string_equal(out, "svc.batch_1:eu@x");

    assert_int_equal(norm("", out, 64), -1);
    assert_int_equal(norm("team a", out, 64), -1);
    assert_int_equal(norm("team/a", out, 64), -1);
    assert_int_equal(norm("t\xc3\xa9" "am", out, 64), -1);      /* unicode */
    assert_int_equal(norm("a\x01", out, 64), -1);
    assert_int_equal(cg_name_normalize((unsigned char *) out,
                     (const unsigned char *) "a\0b", 3, 64), -1);

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(norm(big, out, CG_NAME_MAX), -1);
    big[64] = '\0';
    assert_int_equal(norm(big, out, 64), 64);
}


/* every byte value, as a one-byte name and inside a name */

static void
test_name_bytes(void **state)
{
    int             c, ok;
    unsigned char   in[3], out[3];

    for (c = 0; c < 256; c++) {
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
             || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
             || c == ':' || c == '@';

        in[0] = (unsigned char) c;
        assert_int_equal(cg_name_normalize(out, in, 1, 64), ok ? 1 : -1);

        if (ok) {
            assert_int_equal(out[0], (c >= 'A' && c <= 'Z') ? (c | 0x20) : c);
        }

        in[0] = 'x';
        in[1] = (unsigned char) c;
        in[2] = 'Y';
        assert_int_equal(cg_name_normalize(out, in, 3, 64), ok ? 3 : -1);

        if (ok) {
            assert_int_equal(out[2], 'y');
        }
    }
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_name_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
