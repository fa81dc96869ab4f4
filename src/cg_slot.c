
/*
 * Copyright (C) client guard authors
 *
 * Redis Cluster's arithmetic.  See cg_slot.h.
 */


#include <string.h>

#include "cg_slot.h"


/* CRC16 of Redis Cluster: XMODEM (polynomial 0x1021, initial value 0) */

static uint16_t
cg_slot_crc16(const unsigned char *p, size_t len)
{
    size_t    i;
    unsigned  b;
    uint16_t  crc;

    crc = 0;

    for (i = 0; i < len; i++) {
        crc ^= (uint16_t) (p[i] << 8);

        for (b = 0; b < 8; b++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc;
}


uint16_t
cg_slot(const unsigned char *key, size_t len)
{
    size_t  s, e;

    for (s = 0; s < len && key[s] != '{'; s++) { /* void */ }

    if (s < len) {
        for (e = s + 1; e < len && key[e] != '}'; e++) { /* void */ }

        if (e < len && e > s + 1) {
            key += s + 1;
            len = e - s - 1;
        }
    }

    return cg_slot_crc16(key, len) & (CG_SLOTS - 1);
}


static size_t
cg_slot_uint(unsigned char *p, unsigned v)
{
    size_t         n, i;
    unsigned char  t;

    n = 0;

    do {
        p[n++] = (unsigned char) ('0' + v % 10);
        v /= 10;
    } while (v);

    for (i = 0; i < n / 2; i++) {
        t = p[i];
        p[i] = p[n - 1 - i];
        p[n - 1 - i] = t;
    }

    return n;
}


size_t
cg_slot_bucket_tag(unsigned char *tag, unsigned i, unsigned n)
{
    size_t    len, base;
    unsigned  k, width;
    uint16_t  slot;

    width = CG_SLOTS / n;

    base = cg_slot_uint(tag, i);
    tag[base++] = '.';

    /* about n tries on average; a width of 16 slots or more always ends */

    for (k = 0; ; k++) {
        len = base + cg_slot_uint(tag + base, k);
        slot = cg_slot_crc16(tag, len) & (CG_SLOTS - 1);

        if (slot / width == i) {
            return len;
        }
    }
}


static int
cg_slot_int(const redisReply *r, long long max, long long *v)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 0
        || r->integer > max)
    {
        return -1;
    }

    *v = r->integer;

    return 0;
}


/*
 * A master's networking metadata (Redis 7: "ip", "hostname", ... as pairs
 * in an array): "*ip" set to the "ip" string, the range's name to the
 * "hostname".  -1 when malformed.
 */

static int
cg_slot_meta(const redisReply *meta, const redisReply **ip,
    cg_slot_range_t *range)
{
    size_t            k;
    const redisReply  *key, *val;

    if (meta->type != REDIS_REPLY_ARRAY || meta->elements % 2) {
        return -1;
    }

    for (k = 0; k < meta->elements; k += 2) {
        key = meta->element[k];
        val = meta->element[k + 1];

        if (key->type != REDIS_REPLY_STRING
            || val->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        if (val->len >= CG_SLOT_HOST_MAX) {
            return -1;
        }

        if (val->len == 0) {
            continue;
        }

        if (key->len == 2 && memcmp(key->str, "ip", 2) == 0) {
            *ip = val;

        } else if (key->len == 8 && memcmp(key->str, "hostname", 8) == 0) {
            range->name_len = (uint16_t) val->len;
            memcpy(range->name, val->str, val->len);
        }
    }

    return 0;
}


const char *
cg_slot_parse(const redisReply *r, cg_slot_range_t *ranges, size_t max,
    size_t *n)
{
    size_t            i;
    long long         start, end, port;
    const redisReply  *e, *m, *ep, *ip;

    *n = 0;

    if (r->type != REDIS_REPLY_ARRAY) {
        return "not an array";
    }

    if (r->elements > max) {
        return "too many ranges";
    }

    for (i = 0; i < r->elements; i++) {
        e = r->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3
            || cg_slot_int(e->element[0], CG_SLOTS - 1, &start) != 0
            || cg_slot_int(e->element[1], CG_SLOTS - 1, &end) != 0
            || start > end)
        {
            return "a range is malformed";
        }

        m = e->element[2];

        if (m->type != REDIS_REPLY_ARRAY || m->elements < 2
            || (m->element[0]->type != REDIS_REPLY_STRING
                && m->element[0]->type != REDIS_REPLY_NIL)
            || cg_slot_int(m->element[1], 65535, &port) != 0)
        {
            return "a master is malformed";
        }

        ranges[i].start = (uint16_t) start;
        ranges[i].end = (uint16_t) end;
        ranges[i].port = (uint16_t) port;
        ranges[i].host_len = 0;
        ranges[i].name_len = 0;

        ip = NULL;

        if (m->elements > 3
            && cg_slot_meta(m->element[3], &ip, &ranges[i]) != 0)
        {
            return "a master's metadata is malformed";
        }

        /*
         * the endpoint: "?" (a host name not known yet), "" or null (the
         * node that answered), an address, or a host name when "ip" is
         * given beside it
         */

        ep = m->element[0];

        if (ep->type == REDIS_REPLY_NIL || ep->len == 0
            || (ep->len == 1 && ep->str[0] == '?'))
        {
            ep = NULL;
        }

        if (ep && ep->len >= CG_SLOT_HOST_MAX) {
            return "a master is malformed";
        }

        if (ip) {
            if (ep) {
                ranges[i].name_len = (uint16_t) ep->len;
                memcpy(ranges[i].name, ep->str, ep->len);
            }

            ep = ip;
        }

        if (ep) {
            ranges[i].host_len = (uint16_t) ep->len;
            memcpy(ranges[i].host, ep->str, ep->len);
        }
    }

    *n = r->elements;

    return NULL;
}


int
cg_slot_redirect(const char *err, size_t len, cg_slot_redirect_t *rd)
{
    size_t       i, colon;
    unsigned     slot, port;
    const char  *p, *end;

    end = err + len;

    if (len > 6 && memcmp(err, "MOVED ", 6) == 0) {
        rd->ask = 0;
        p = err + 6;

    } else if (len > 4 && memcmp(err, "ASK ", 4) == 0) {
        rd->ask = 1;
        p = err + 4;

    } else {
        return 0;
    }

    for (slot = 0; p < end && *p >= '0' && *p <= '9'; p++) {
        slot = slot * 10 + (*p - '0');

        if (slot >= CG_SLOTS) {
            return 0;
        }
    }

    if (p == end || *p++ != ' ') {
        return 0;
    }

    /* the host ends at the last colon (an IPv6 address has colons) */

    colon = 0;

    for (i = 0; p + i < end; i++) {
        if (p[i] == ':') {
            colon = i + 1;
        }
    }

    if (colon == 0 || colon - 1 >= CG_SLOT_HOST_MAX || p + colon == end) {
        return 0;
    }

    for (port = 0, i = colon; p + i < end; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }

        port = port * 10 + (p[i] - '0');

        if (port > 65535) {
            return 0;
        }
    }

    rd->slot = (uint16_t) slot;
    rd->port = (uint16_t) port;
    rd->host_len = (uint16_t) (colon - 1);
    memcpy(rd->host, p, colon - 1);

    return 1;
}
