
/*
 * Copyright (C) client guard authors
 */


#include <string.h>

#include "cg_parse.h"


int
cg_parse_count(const unsigned char *p, size_t len, uint64_t *n)
{
    size_t    i;
    uint64_t  v;

    if (len == 0 || len > 13) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        v = v * 10 + (p[i] - '0');
    }

    if (v > CG_MAX_COUNT) {
        return -1;
    }

    *n = v;

    return 0;
}


int
cg_parse_period(const unsigned char *p, size_t len, uint32_t *period)
{
    if (len != 1) {
        return -1;
    }

    switch (p[0]) {
    case 's':
        *period = 1000;
        return 0;
    case 'm':
        *period = 60 * 1000;
        return 0;
    case 'h':
        *period = 3600 * 1000;
        return 0;
    case 'd':
        *period = 86400 * 1000;
        return 0;
    }

    return -1;
}


static int
cg_prefix(const unsigned char *p, size_t len, const char *name)
{
    size_t  n;

    n = strlen(name);

    return len > n && memcmp(p, name, n) == 0;
}


const char *
cg_parse_quota_arg(cg_quota_t *q, const unsigned char *p, size_t len)
{
    const unsigned char  *last, *slash;
    uint64_t              n;
    cg_limit_t           *lim;

    last = p + len;

    if (cg_prefix(p, len, "rate=")) {

        /* rate=100r/s, rate=30r/m, rate=1000r/h, rate=5r/d */

        p += 5;
        slash = memchr(p, '/', last - p);

        if (slash == NULL || slash - p < 2 || slash[-1] != 'r') {
            return "invalid rate, expected a value such as \"100r/s\"";
        }

        if (q->nlimits == CG_MAX_LIMITS) {
            return "too many limits";
        }

        lim = &q->limits[q->nlimits];

        if (cg_parse_count(p, slash - 1 - p, &lim->count) != 0
            || lim->count == 0
            || cg_parse_period(slash + 1, last - slash - 1, &lim->period)
               != 0)
        {
            return "invalid rate, expected a value such as \"100r/s\"";
        }

        lim->type = CG_LIMIT_RATE;
        lim->burst = 0;
        q->nlimits++;

        return NULL;
    }

    if (cg_prefix(p, len, "burst=")) {

        if (q->nlimits == 0
            || q->limits[q->nlimits - 1].type != CG_LIMIT_RATE)
        {
            return "\"burst\" must follow a \"rate\"";
        }

        if (cg_parse_count(p + 6, len - 6, &n) != 0) {
            return "invalid burst, expected a number";
        }

        q->limits[q->nlimits - 1].burst = n;

        return NULL;
    }

    if (cg_prefix(p, len, "quota=")) {

        /* quota=5000/d: so many requests per second, minute, hour or day */

        p += 6;
        slash = memchr(p, '/', last - p);

        if (q->nlimits == CG_MAX_LIMITS) {
            return "too many limits";
        }

        lim = &q->limits[q->nlimits];

        if (slash == NULL
            || cg_parse_count(p, slash - p, &lim->count) != 0
            || cg_parse_period(slash + 1, last - slash - 1, &lim->period)
               != 0)
        {
            return "invalid quota, expected a value such as \"5000/d\"";
        }

        /* as rate=0r/s: a limit that admits nothing is taken for a typo */

        if (lim->count == 0) {
            return "invalid quota, a quota of 0 admits no request: "
                   "expected a value such as \"5000/d\"";
        }

        lim->type = CG_LIMIT_WINDOW;
        lim->burst = 0;
        q->nlimits++;

        return NULL;
    }

    if (cg_prefix(p, len, "mode=")) {
        p += 5;
        len -= 5;

        if (len == 7 && memcmp(p, "enforce", 7) == 0) {
            q->mode = CG_MODE_ENFORCE;
            return NULL;
        }

        if (len == 7 && memcmp(p, "dry_run", 7) == 0) {
            q->mode = CG_MODE_DRY_RUN;
            return NULL;
        }

        if (len == 3 && memcmp(p, "off", 3) == 0) {
            q->mode = CG_MODE_OFF;
            return NULL;
        }

        return "invalid mode, expected \"enforce\", \"dry_run\" or \"off\"";
    }

    return "unknown parameter";
}


const char *
cg_quota_validate(const cg_quota_t *q)
{
    if (q->nlimits == 0 && q->mode != CG_MODE_OFF) {
        return "no \"rate\" or \"quota\" given";
    }

    return NULL;
}


const char *
cg_parse_quota(cg_quota_t *q, const unsigned char *p, size_t len)
{
    const char           *err;
    const unsigned char  *last, *start;

    memset(q, 0, sizeof(cg_quota_t));

    if (len > CG_QUOTA_VALUE_MAX) {
        return "value too long";
    }

    last = p + len;

    while (p < last) {
        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        start = p;

        while (p < last && *p != ' ' && *p != '\t') {
            p++;
        }

        if (p == start) {
            break;
        }

        err = cg_parse_quota_arg(q, start, p - start);
        if (err) {
            return err;
        }
    }

    return cg_quota_validate(q);
}


int
cg_parse_api_key(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len != CG_API_KEY_HEX) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return -1;
        }
    }

    return 0;
}


unsigned char *
cg_escape(unsigned char *dst, size_t size, const unsigned char *src,
    size_t len)
{
    size_t          i;
    unsigned char  *p, *last, c;

    static const char  hex[] = "0123456789abcdef";

    p = dst;
    last = dst + size - (sizeof("\\xff...") - 1);

    for (i = 0; i < len && p <= last; i++) {
        c = src[i];

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            *p++ = c;
            continue;
        }

        *p++ = '\\';
        *p++ = 'x';
        *p++ = hex[c >> 4];
        *p++ = hex[c & 0xf];
    }

    if (i < len) {
        *p++ = '.';
        *p++ = '.';
        *p++ = '.';
    }

    return p;
}
