
/*
 * Copyright (C) client guard authors
 *
 * What a request to the status endpoint says, as text.  See cg_query.h.
 */


#include <string.h>

#include "cg_query.h"


const char  *cg_query_sorts[] = {
    "requests", "rate", "rate_1m", "rate_5m", "rejected", "errors",
    "quota", "anomaly", "name", NULL
};

const char  *cg_event_states[] = {
    "investigating", "identified", "monitoring", "resolved", NULL
};


static unsigned char
cg_query_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char) (c | 0x20) : c;
}


static int
cg_query_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c = cg_query_lower(c);

    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}


/* "p" (len bytes) is the lowercase "s", in any case */

static int
cg_query_caseeq(const unsigned char *p, const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (cg_query_lower(p[i]) != (unsigned char) s[i]) {
            return 0;
        }
    }

    return 1;
}


/* "p" (len bytes) is exactly "s" */

static int
cg_query_is(const unsigned char *p, size_t len, const char *s)
{
    return strlen(s) == len && memcmp(p, s, len) == 0;
}


/* the index of "p" (len bytes) in a list of names (NULL last), or -1 */

static int
cg_query_name(const char **names, const unsigned char *p, size_t len)
{
    int  i;

    for (i = 0; names[i]; i++) {
        if (cg_query_is(p, len, names[i])) {
            return i;
        }
    }

    return -1;
}


/* a decimal number, 0 .. INT64_MAX; 0 on success, -1 on error */

static int
cg_query_int(const unsigned char *p, size_t len, int64_t *n)
{
    size_t   i;
    int64_t  v;

    if (len == 0) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9'
            || v > (INT64_MAX - (p[i] - '0')) / 10)
        {
            return -1;
        }

        v = v * 10 + (p[i] - '0');
    }

    *n = v;

    return 0;
}


int
cg_query_arg(const unsigned char *args, size_t len, const char *name,
    const unsigned char **value, size_t *value_len)
{
    size_t               i, n;
    const unsigned char  *v, *end;

    n = strlen(name);

    /* "name=" at the start or after "&", the first one */

    for (i = 0; n < len && i < len - n; i++) {
        if ((i == 0 || args[i - 1] == '&') && args[i + n] == '='
            && cg_query_caseeq(&args[i], name, n))
        {
            v = &args[i + n + 1];
            end = memchr(v, '&', args + len - v);

            *value = v;
            *value_len = (end ? end : args + len) - v;

            return 0;
        }
    }

    return -1;
}


int
cg_query_unescape(unsigned char *dst, size_t max, const unsigned char *src,
    size_t len)
{
    int     hi, lo;
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {

        if (n == max) {
            return -1;
        }

        if (src[i] != '%') {
            dst[n++] = src[i];
            continue;
        }

        if (len - i < 3) {
            return -1;
        }

        hi = cg_query_hex(src[i + 1]);
        lo = cg_query_hex(src[i + 2]);

        if (hi < 0 || lo < 0 || (hi | lo) == 0) {
            return -1;
        }

        dst[n++] = (unsigned char) (hi * 16 + lo);
        i += 2;
    }

    return (int) n;
}


/*
 * The argument "name" decoded into buf (room for max): 0 with its length
 * in *n, 1 when it is not there, -1 when it cannot be decoded or does not
 * fit
 */

static int
cg_query_value(const unsigned char *args, size_t len, const char *name,
    unsigned char *buf, size_t max, size_t *n)
{
    int                   rc;
    size_t                vlen;
    const unsigned char  *v;

    if (cg_query_arg(args, len, name, &v, &vlen) != 0) {
        return 1;
    }

    rc = cg_query_unescape(buf, max, v, vlen);

    if (rc < 0) {
        return -1;
    }

    *n = (size_t) rc;

    return 0;
}


/* a status query's argument, decoded: as cg_query_value(), q->bad set */

static int
cg_query_get(cg_query_t *q, const unsigned char *args, size_t len,
    const char *name, unsigned char *buf, size_t max, size_t *n)
{
    int  rc;

    rc = cg_query_value(args, len, name, buf, max, n);

    if (rc < 0) {
        q->bad = name;
    }

    return rc;
}


int
cg_query_parse(cg_query_t *q, const unsigned char *args, size_t len)
{
    int                   n, rc;
    size_t                vlen;
    unsigned char        *v, buf[CG_QUERY_VALUE_LEN], name[CG_NAME_MAX];

    static const char  *formats[] = {
        [CG_FMT_JSON] = "json", [CG_FMT_PROM] = "prometheus",
        [CG_FMT_OPENM] = "openmetrics", [CG_FMT_HTML] = "html", NULL
    };

    q->format = -1;
    q->sort = 0;
    q->limit = -1;
    q->history = -1;
    q->cluster = 0;
    q->bad = NULL;
    q->client_len = 0;

    v = buf;

    rc = cg_query_get(q, args, len, "format", v, sizeof(buf), &vlen);

    if (rc < 0) {
        return -1;
    }

    if (rc == 0) {
        q->format = cg_query_name(formats, v, vlen);

        if (q->format < 0) {
            q->bad = "format";
            return -1;
        }
    }

    rc = cg_query_get(q, args, len, "sort", v, sizeof(buf), &vlen);

    if (rc < 0) {
        return -1;
    }

    if (rc == 0) {
        n = cg_query_name(cg_query_sorts, v, vlen);

        if (n < 0) {
            q->bad = "sort";
            return -1;
        }

        q->sort = (unsigned) n;
    }

    rc = cg_query_get(q, args, len, "limit", v, sizeof(buf), &vlen);

    if (rc < 0 || (rc == 0 && cg_query_int(v, vlen, &q->limit) != 0)) {
        q->bad = "limit";
        return -1;
    }

    /* a client's name: decoded, then normalised as every name is */

    rc = cg_query_get(q, args, len, "client", name, sizeof(name), &vlen);

    if (rc < 0) {
        return -1;
    }

    if (rc == 0) {
        n = cg_name_normalize(q->client, name, vlen, CG_NAME_MAX);

        if (n < 0) {
            q->bad = "client";
            return -1;
        }

        q->client_len = (size_t) n;
    }

    rc = cg_query_get(q, args, len, "history", v, sizeof(buf), &vlen);

    if (rc < 0) {
        return -1;
    }

    if (rc == 0) {

        if (vlen != 1 || (v[0] != '0' && v[0] != '1')) {
            q->bad = "history";
            return -1;
        }

        q->history = (v[0] == '1');
    }

    rc = cg_query_get(q, args, len, "scope", v, sizeof(buf), &vlen);

    if (rc < 0) {
        return -1;
    }

    if (rc == 0) {

        if (cg_query_is(v, vlen, "cluster")) {
            q->cluster = 1;

        } else if (!cg_query_is(v, vlen, "node")) {
            q->bad = "scope";
            return -1;
        }
    }

    return 0;
}


int
cg_query_accept(const unsigned char *p, size_t len)
{
    size_t       i, j, n;

    /* the first of these the value names, in this order */

    static const struct {
        const char  *type;
        int          format;
    } types[] = {
        { "application/openmetrics-text", CG_FMT_OPENM },
        { "application/json", CG_FMT_JSON },
        { "text/html", CG_FMT_HTML },
        { "text/plain", CG_FMT_PROM },
        { NULL, 0 }
    };

    for (j = 0; types[j].type; j++) {
        n = strlen(types[j].type);

        for (i = 0; n <= len && i <= len - n; i++) {
            if (cg_query_caseeq(&p[i], types[j].type, n)) {
                return types[j].format;
            }
        }
    }

    return -1;
}


/* events ---------------------------------------------------------------- */


size_t
cg_event_text(unsigned char *dst, size_t max, const unsigned char *src,
    size_t len)
{
    int            hi, lo;
    size_t         i, n;
    unsigned char  c, buf[CG_EVENT_RAW_LEN];

    /*
     * "+" is a space; "%XX" is its byte; a "%" followed by no hex digit is
     * dropped, one followed by a hex digit and something else drops both
     */

    if (len > CG_EVENT_RAW_LEN) {
        len = CG_EVENT_RAW_LEN;
    }

    n = 0;

    for (i = 0; i < len; i++) {
        c = src[i];

        if (c == '+') {
            buf[n++] = ' ';
            continue;
        }

        if (c != '%') {
            buf[n++] = c;
            continue;
        }

        if (i + 1 == len) {
            break;
        }

        hi = cg_query_hex(src[i + 1]);

        if (hi < 0) {
            /* "%" and a character that is no hex digit: the character */
            buf[n++] = (src[i + 1] == '+') ? ' ' : src[i + 1];
            i++;
            continue;
        }

        if (i + 2 == len) {
            break;
        }

        lo = cg_query_hex(src[i + 2]);
        i += 2;

        if (lo >= 0) {
            buf[n++] = (unsigned char) (hi * 16 + lo);
        }
    }

    if (n > max) {
        n = max;
    }

    cg_event_clean(dst, buf, n);

    return n;
}


void
cg_event_clean(unsigned char *dst, const unsigned char *src, size_t len)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; i < len; i++) {
        c = src[i];

        dst[i] = (c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<'
                  || c == '>' || c == '&' || c == '\'')
                 ? '_' : c;
    }
}


int
cg_event_state(const unsigned char *p, size_t len)
{
    return cg_query_name(cg_event_states, p, len);
}


int
cg_event_parse(cg_event_t *ev, const unsigned char *args, size_t len)
{
    int                   n, rc;
    size_t                vlen, blen;
    int64_t               id;
    unsigned char         buf[CG_QUERY_VALUE_LEN];
    const unsigned char  *v;

    memset(ev, 0, sizeof(cg_event_t));
    ev->state = -1;

    /* ?deploy=team[&note=text]: a marker */

    rc = cg_query_value(args, len, "deploy", buf, sizeof(buf), &blen);

    ev->bad = "deploy";

    if (rc < 0) {
        return -1;
    }

    if (rc == 0) {
        ev->kind = CG_EVENT_DEPLOY;

        n = cg_name_normalize(ev->team, buf, blen, CG_EVENT_TEAM_LEN);

        if (n < 0) {
            return -1;
        }

        ev->team_len = (size_t) n;

        if (cg_query_arg(args, len, "note", &v, &vlen) == 0) {
            ev->note_len = cg_event_text(ev->note, CG_EVENT_NOTE_LEN, v,
                                         vlen);
        }

        ev->bad = NULL;

        return 0;
    }

    /* ?incident=new|id: what is given replaces what the incident had */

    ev->bad = "incident";

    if (cg_query_value(args, len, "incident", buf, sizeof(buf), &blen) != 0) {
        return -1;
    }

    ev->kind = CG_EVENT_INCIDENT;

    if (!cg_query_is(buf, blen, "new")) {
        if (cg_query_int(buf, blen, &id) != 0 || id == 0) {
            return -1;
        }

        ev->id = (uint64_t) id;
    }

    rc = cg_query_value(args, len, "state", buf, sizeof(buf), &blen);

    ev->bad = "state";

    if (rc < 0) {
        return -1;
    }

    if (rc == 0) {
        ev->state = cg_event_state(buf, blen);

        if (ev->state < 0) {
            return -1;
        }
    }

    if (cg_query_arg(args, len, "title", &v, &vlen) == 0 && vlen) {
        ev->title = 1;
        ev->title_len = cg_event_text(ev->title_text, CG_EVENT_TITLE_LEN, v,
                                      vlen);
    }

    if ((cg_query_arg(args, len, "text", &v, &vlen) == 0 && vlen)
        || (cg_query_arg(args, len, "description", &v, &vlen) == 0 && vlen))
    {
        ev->text = 1;
        ev->text_len = cg_event_text(ev->text_text, CG_EVENT_TEXT_LEN, v,
                                     vlen);
    }

    rc = cg_query_value(args, len, "eta", ev->eta_text, CG_EVENT_ETA_LEN,
                        &blen);

    ev->bad = "eta";

    if (rc < 0) {
        return -1;
    }

    if (rc == 0 && blen) {
        ev->eta = ev->eta_text;
        ev->eta_len = blen;
    }

    /* a new one has a title */

    ev->bad = "title";

    if (ev->id == 0 && !ev->title) {
        return -1;
    }

    ev->bad = NULL;

    return 0;
}
