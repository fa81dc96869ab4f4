/*
 * Unit tests for src/cg_query.c: the status endpoint's query arguments,
 * its Accept header, an event's POST.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "cg_query.h"


#define U(s)  ((const unsigned char *) (s))


static int
parse(cg_query_t *q, const char *args)
{
    return cg_query_parse(q, U(args), strlen(args));
}


static int
event(cg_event_t *ev, const char *args)
{
    return cg_event_parse(ev, U(args), strlen(args));
}


static int
accept_of(const char *v)
{
    return cg_query_accept(U(v), strlen(v));
}


/* the value as "name" has it, or NULL */

static const char *
arg(const char *args, const char *name)
{
    size_t                len;
    static char           buf[256];
    const unsigned char  *v;

    if (cg_query_arg(U(args), strlen(args), name, &v, &len) != 0) {
        return NULL;
    }

    memcpy(buf, v, len);
    buf[len] = '\0';

    return buf;
}


/* found as ngx_http_arg() finds them */

static void
test_args(void **state)
{
    assert_string_equal(arg("format=json", "format"), "json");
    assert_string_equal(arg("a=1&format=json&b=2", "format"), "json");
    assert_string_equal(arg("FORMAT=json", "format"), "json");
    assert_string_equal(arg("format=json&format=html", "format"), "json");
    assert_string_equal(arg("xformat=1&format=2", "format"), "2");
    assert_string_equal(arg("format=", "format"), "");
    assert_string_equal(arg("format=&x", "format"), "");
    assert_string_equal(arg("format=a=b", "format"), "a=b");
    assert_string_equal(arg("format==", "format"), "=");

    assert_null(arg("", "format"));
    assert_null(arg("format", "format"));
    assert_null(arg("formats=json", "format"));
    assert_null(arg("xformat=json", "format"));
    assert_null(arg("a=format=json", "format"));
    assert_null(arg("forma", "format"));
    assert_null(arg("&forma=", "format"));
}


static void
test_query(void **state)
{
    cg_query_t  q;

    assert_int_equal(parse(&q, ""), 0);
    assert_int_equal(q.format, -1);
    assert_int_equal(q.sort, 0);
    assert_string_equal(cg_query_sorts[q.sort], "requests");
    assert_int_equal(q.limit, -1);
    assert_int_equal(q.history, -1);
    assert_int_equal(q.cluster, 0);
    assert_int_equal(q.client_len, 0);

    assert_int_equal(parse(&q, "format=prometheus&sort=rate_1m&limit=5"
                               "&client=Team-A&history=1&scope=cluster"), 0);
    assert_int_equal(q.format, CG_FMT_PROM);
    assert_string_equal(cg_query_sorts[q.sort], "rate_1m");
    assert_int_equal(q.limit, 5);
    assert_int_equal(q.client_len, 6);
    assert_memory_equal(q.client, "team-a", 6);
    assert_int_equal(q.history, 1);
    assert_int_equal(q.cluster, 1);

    assert_int_equal(parse(&q, "format=openmetrics"), 0);
    assert_int_equal(q.format, CG_FMT_OPENM);
    assert_int_equal(parse(&q, "format=html&history=0&scope=node"), 0);
    assert_int_equal(q.format, CG_FMT_HTML);
    assert_int_equal(q.history, 0);
    assert_int_equal(q.cluster, 0);
    assert_int_equal(parse(&q, "FORMAT=json&sort=name"), 0);
    assert_int_equal(q.format, CG_FMT_JSON);
    assert_string_equal(cg_query_sorts[q.sort], "name");

    /* a limit as large as ngx_atoi() takes; the caller caps it */

    assert_int_equal(parse(&q, "limit=0"), 0);
    assert_int_equal(q.limit, 0);
    assert_int_equal(parse(&q, "limit=9223372036854775807"), 0);
    assert_int_equal(q.limit, INT64_MAX);

    /* what t/40 and the others refuse with a 400 */

    assert_int_equal(parse(&q, "format=JSON"), -1);
    assert_int_equal(parse(&q, "format=xml"), -1);
    assert_int_equal(parse(&q, "format="), -1);
    assert_int_equal(parse(&q, "sort=bogus"), -1);
    assert_int_equal(parse(&q, "sort=Rate"), -1);
    assert_int_equal(parse(&q, "limit=-1"), -1);
    assert_int_equal(parse(&q, "limit="), -1);
    assert_int_equal(parse(&q, "limit=1x"), -1);
    assert_int_equal(parse(&q, "limit=9223372036854775808"), -1);
    assert_int_equal(parse(&q, "limit=99999999999999999999"), -1);
    assert_int_equal(parse(&q, "client="), -1);
    assert_int_equal(parse(&q, "client=team%20a"), -1);
    assert_int_equal(parse(&q, "history=2"), -1);
    assert_int_equal(parse(&q, "history="), -1);
    assert_int_equal(parse(&q, "history=10"), -1);
    assert_int_equal(parse(&q, "scope=all"), -1);
    assert_int_equal(parse(&q, "scope=node&format=bad"), -1);

    /* only the first of each counts */

    assert_int_equal(parse(&q, "format=json&format=bad"), 0);
    assert_int_equal(parse(&q, "xformat=bad"), 0);
}


/* a value decoded into a string, or NULL when it is refused */

static const char *
unescaped(const char *v, size_t max)
{
    int            n;
    static char    buf[256];

    n = cg_query_unescape((unsigned char *) buf, max, U(v), strlen(v));

    if (n < 0) {
        return NULL;
    }

    buf[n] = '\0';

    return buf;
}


/* strict: what ngx_unescape_uri() decodes, and nothing it would guess */

static void
test_unescape(void **state)
{
    assert_string_equal(unescaped("", 8), "");
    assert_string_equal(unescaped("team-a", 8), "team-a");
    assert_string_equal(unescaped("svc%3Apay%40eu", 64), "svc:pay@eu");
    assert_string_equal(unescaped("svc%3apay%40EU", 64), "svc:pay@EU");
    assert_string_equal(unescaped("team%2Fa", 64), "team/a");
    assert_string_equal(unescaped("team%20x", 64), "team x");
    assert_string_equal(unescaped("%41%42", 2), "AB");
    assert_string_equal(unescaped("%25", 8), "%");
    assert_string_equal(unescaped("%2541", 8), "%41");
    assert_string_equal(unescaped("%ff", 8), "\xff");

    /* "+" is a "+", as in $arg_ and ngx_unescape_uri(): not a space */

    assert_string_equal(unescaped("a+b", 8), "a+b");
    assert_string_equal(unescaped("%2B", 8), "+");

    /* refused: a "%" without two hex digits, a NUL, too long */

    assert_null(unescaped("%", 8));
    assert_null(unescaped("a%4", 8));
    assert_null(unescaped("%4g", 8));
    assert_null(unescaped("%g4", 8));
    assert_null(unescaped("%%41", 8));
    assert_null(unescaped("%zz", 8));
    assert_null(unescaped("%+a", 8));
    assert_null(unescaped("%00", 8));
    assert_null(unescaped("a%00b", 8));
    assert_null(unescaped("abc", 2));
    assert_null(unescaped("%41%42%43", 2));
    assert_string_equal(unescaped("abc", 3), "abc");
}


/* every value of a status query is decoded before it is read */

static void
test_query_encoded(void **state)
{
    cg_query_t     q;
    char           long_name[3 * CG_NAME_MAX + 16];
    size_t         i;

    assert_int_equal(parse(&q, "client=svc%3Apay%40EU"), 0);
    assert_int_equal(q.client_len, 10);
    assert_memory_equal(q.client, "svc:pay@eu", 10);
    assert_null(q.bad);

    assert_int_equal(parse(&q, "client=team%2Da"), 0);
    assert_memory_equal(q.client, "team-a", 6);

    assert_int_equal(parse(&q, "format=%6Ason&sort=rate%5F1m&limit=%31%30"
                               "&history=%31&scope=%63luster"), 0);
    assert_int_equal(q.format, CG_FMT_JSON);
    assert_string_equal(cg_query_sorts[q.sort], "rate_1m");
    assert_int_equal(q.limit, 10);
    assert_int_equal(q.history, 1);
    assert_int_equal(q.cluster, 1);

    /* decoded to what no client may be named: a 400, not a guess */

    assert_int_equal(parse(&q, "client=team%2Fa"), -1);
    assert_string_equal(q.bad, "client");
    assert_int_equal(parse(&q, "client=team%20x"), -1);
    assert_string_equal(q.bad, "client");
    assert_int_equal(parse(&q, "client=team+x"), -1);
    assert_string_equal(q.bad, "client");

    /* that cannot be decoded */

    assert_int_equal(parse(&q, "client=team%zz"), -1);
    assert_string_equal(q.bad, "client");
    assert_int_equal(parse(&q, "client=team%4"), -1);
    assert_int_equal(parse(&q, "client=%00"), -1);
    assert_int_equal(parse(&q, "sort=rate%"), -1);
    assert_string_equal(q.bad, "sort");
    assert_int_equal(parse(&q, "limit=1%2"), -1);
    assert_string_equal(q.bad, "limit");
    assert_int_equal(parse(&q, "format=json&history=%3"), -1);
    assert_string_equal(q.bad, "history");
    assert_int_equal(parse(&q, "scope=%6E%6Fde%"), -1);
    assert_string_equal(q.bad, "scope");
    assert_int_equal(parse(&q, "format=%"), -1);
    assert_string_equal(q.bad, "format");
    assert_int_equal(parse(&q, "format=xml"), -1);
    assert_string_equal(q.bad, "format");

    /* a name of CG_NAME_MAX bytes, all encoded, fits; one more does not */

    for (i = 0; i < CG_NAME_MAX; i++) {
        memcpy(&long_name[7 + 3 * i], "%61", 3);
    }

    memcpy(long_name, "client=", 7);
    long_name[7 + 3 * CG_NAME_MAX] = '\0';

    assert_int_equal(parse(&q, long_name), 0);
    assert_int_equal(q.client_len, CG_NAME_MAX);

    memcpy(&long_name[7 + 3 * CG_NAME_MAX], "a", 2);
    assert_int_equal(parse(&q, long_name), -1);
    assert_string_equal(q.bad, "client");
}


static void
test_accept(void **state)
{
    assert_int_equal(accept_of("application/json"), CG_FMT_JSON);
    assert_int_equal(accept_of("text/html,application/xhtml+xml"), CG_FMT_HTML);
    assert_int_equal(accept_of("TEXT/PLAIN"), CG_FMT_PROM);
    assert_int_equal(accept_of("text/plain;version=0.0.4;q=0.3,"
                            "application/openmetrics-text;version=1.0.0"),
                     CG_FMT_OPENM);
    assert_int_equal(accept_of("text/html, application/json"), CG_FMT_JSON);

    assert_int_equal(accept_of(""), -1);
    assert_int_equal(accept_of("*/*"), -1);
    assert_int_equal(accept_of("text/plai"), -1);
    assert_int_equal(accept_of("application/jso"), -1);
    assert_int_equal(cg_query_accept(U("text/h\0tml"), 10), -1);
}


static void
test_text(void **state)
{
    size_t         i, n;
    unsigned char  out[CG_EVENT_TEXT_LEN], raw[2 * CG_EVENT_RAW_LEN];

    static const struct {
        const char  *in;
        const char  *out;
    } cases[] = {
        { "Checkout+errors", "Checkout errors" },
        { "5xx+from+team-pay%27s+calls", "5xx from team-pay_s calls" },
        { "a%41b", "aAb" }, { "%2B", "+" }, { "+%2B+", " + " },
        { "%3c%3E%22%26%5C", "_____" }, { "%00a", "_a" },
        { "%e9t%C3%A9", "_t__" },
        /* as ngx_unescape_uri() has them (checked against nginx 1.22) */
        { "%", "" }, { "%4", "" }, { "x%", "x" }, { "%4z", "" },
        { "%zz", "zz" }, { "%+a", " a" }, { "%%41", "%41" },
        { "a%4+b", "ab" }, { "%g1", "g1" }, { "%1g2", "2" },
        { "%41%", "A" }
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        n = cg_event_text(out, sizeof(out), U(cases[i].in),
                          strlen(cases[i].in));
        assert_int_equal(n, strlen(cases[i].out));
        assert_memory_equal(out, cases[i].out, n);
    }

    /* cut at max; only so much of the query is read */

    memset(raw, 'a', sizeof(raw));
    assert_int_equal(cg_event_text(out, 80, raw, sizeof(raw)), 80);

    memset(raw, '%', sizeof(raw));
    for (i = 0; i + 2 < sizeof(raw); i += 3) {
        raw[i + 1] = '4';
        raw[i + 2] = '1';
    }
    assert_int_equal(cg_event_text(out, CG_EVENT_TEXT_LEN, raw, sizeof(raw)),
                     CG_EVENT_RAW_LEN / 3);

    for (i = 0; i < 256; i++) {
        raw[0] = (unsigned char) i;
        cg_event_clean(out, raw, 1);
        assert_true(out[0] >= 0x20 && out[0] < 0x7f);
        assert_true(out[0] != '"' && out[0] != '\\' && out[0] != '<'
                    && out[0] != '>' && out[0] != '&' && out[0] != '\'');
    }
}


static void
test_events(void **state)
{
    cg_event_t  ev;

    assert_int_equal(event(&ev, "deploy=Team-A&note=v1.2+rollout%21"), 0);
    assert_int_equal(ev.kind, CG_EVENT_DEPLOY);
    assert_int_equal(ev.team_len, 6);
    assert_memory_equal(ev.team, "team-a", 6);
    assert_int_equal(ev.note_len, 13);
    assert_memory_equal(ev.note, "v1.2 rollout!", 13);

    assert_int_equal(event(&ev, "incident=new&title=Checkout+errors"
                                "&text=5xx&eta=30m"), 0);
    assert_int_equal(ev.kind, CG_EVENT_INCIDENT);
    assert_int_equal(ev.id, 0);
    assert_int_equal(ev.state, -1);
    assert_true(ev.title);
    assert_memory_equal(ev.title_text, "Checkout errors", 15);
    assert_true(ev.text);
    assert_int_equal(ev.eta_len, 3);
    assert_memory_equal(ev.eta, "30m", 3);

    assert_int_equal(event(&ev, "incident=17&state=resolved&eta=0"), 0);
    assert_int_equal(ev.id, 17);
    assert_string_equal(cg_event_states[ev.state], "resolved");
    assert_false(ev.title);
    assert_false(ev.text);
    assert_int_equal(ev.eta_len, 1);

    /* the text, else the description; empty ones change nothing */

    assert_int_equal(event(&ev, "incident=5&text=&description=dd&title="),
                     0);
    assert_true(ev.text);
    assert_memory_equal(ev.text_text, "dd", 2);
    assert_false(ev.title);
    assert_int_equal(event(&ev, "incident=5&eta="), 0);
    assert_int_equal(ev.eta_len, 0);

    /* a title that decodes to nothing is still given */

    assert_int_equal(event(&ev, "incident=new&title=%"), 0);
    assert_true(ev.title);
    assert_int_equal(ev.title_len, 0);

    /* a deploy first */

    assert_int_equal(event(&ev, "incident=new&deploy=x"), 0);
    assert_int_equal(ev.kind, CG_EVENT_DEPLOY);

    /* bad requests */

    assert_int_equal(event(&ev, ""), -1);
    assert_int_equal(event(&ev, "x=1"), -1);
    assert_int_equal(event(&ev, "deploy="), -1);
    assert_int_equal(event(&ev, "deploy=team+a"), -1);
    assert_int_equal(event(&ev, "deploy=a23456789012345678901234567890123"),
                     -1);
    assert_int_equal(event(&ev, "incident=new"), -1);
    assert_int_equal(event(&ev, "incident=new&title="), -1);
    assert_int_equal(event(&ev, "incident=0&title=x"), -1);
    assert_int_equal(event(&ev, "incident=12x"), -1);
    assert_int_equal(event(&ev, "incident=&title=x"), -1);
    assert_int_equal(event(&ev, "incident=-1&title=x"), -1);
    assert_int_equal(event(&ev, "incident=99999999999999999999&title=a"),
                     -1);
    assert_int_equal(event(&ev, "incident=new&title=a&state=bad"), -1);
    assert_int_equal(event(&ev, "incident=new&title=a&state=Resolved"), -1);
    assert_int_equal(event(&ev, "incident=new&title=a&state="), -1);

    /* which argument was refused */

    assert_int_equal(event(&ev, "deploy=team+a"), -1);
    assert_string_equal(ev.bad, "deploy");
    assert_int_equal(event(&ev, "x=1"), -1);
    assert_string_equal(ev.bad, "incident");
    assert_int_equal(event(&ev, "incident=12x"), -1);
    assert_string_equal(ev.bad, "incident");
    assert_int_equal(event(&ev, "incident=new&title=a&state=bad"), -1);
    assert_string_equal(ev.bad, "state");
    assert_int_equal(event(&ev, "incident=new&title=a&eta=%zz"), -1);
    assert_string_equal(ev.bad, "eta");
    assert_int_equal(event(&ev, "incident=new"), -1);
    assert_string_equal(ev.bad, "title");
    assert_int_equal(event(&ev, "incident=5&state=resolved"), 0);
    assert_null(ev.bad);
    assert_int_equal(event(&ev, "deploy=a"), 0);
    assert_null(ev.bad);

    /* the team, the id, the state and eta decoded as a query's values */

    assert_int_equal(event(&ev, "deploy=svc%3APay&note=a+b"), 0);
    assert_int_equal(ev.team_len, 7);
    assert_memory_equal(ev.team, "svc:pay", 7);
    assert_memory_equal(ev.note, "a b", 3);
    assert_int_equal(event(&ev, "incident=%31%37&state=re%73olved"
                                "&eta=%31h"), 0);
    assert_int_equal(ev.id, 17);
    assert_string_equal(cg_event_states[ev.state], "resolved");
    assert_int_equal(ev.eta_len, 2);
    assert_memory_equal(ev.eta, "1h", 2);
    assert_int_equal(event(&ev, "deploy=team%2Fa"), -1);
    assert_int_equal(event(&ev, "deploy=team%zz"), -1);
    assert_int_equal(event(&ev, "incident=1%"), -1);
    assert_int_equal(event(&ev, "incident=1&state=%"), -1);
    assert_int_equal(event(&ev, "incident=1&eta=%3"), -1);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_query_encoded),
        cmocka_unit_test(test_accept),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_events),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
