
/*
 * Copyright (C) client guard authors
 *
 * GCRA (generic cell rate algorithm) for rates, fixed windows for quotas.
 *
 * GCRA keeps one number per client and limit: the theoretical arrival time
 * (TAT).  With emission interval T = period / count and tolerance
 * tau = burst * T, a request at "now" is admitted when TAT - tau <= now,
 * and then TAT = max(TAT, now) + T.  The tolerance is at least one clock
 * tick (1 ms), or rates above 1000 per second could not be reached.  It
 * is the leaky bucket of limit_req (nodelay) in one integer, exact at any
 * rate, and its remaining capacity and retry time fall out of the same
 * number.  Times are nanoseconds so that rates of many thousands per
 * second keep their precision.
 */


#include "cg_limiter.h"


#define CG_NS_PER_MS  1000000LL

/*
 * The longest tolerance, in ns: 146 years.  A burst that covers more (at
 * 1r/d, a burst over 53,000; any limit's burst may be up to 10^12) admits
 * no more than this one does, and the sums of times below stay within
 * 64 bits until the year 2116.
 */
#define CG_TAU_MAX    ((int64_t) 1 << 62)


static int64_t
cg_limit_interval(const cg_limit_t *lim)
{
    int64_t  t;

    if (lim->count == 0) {
        return INT64_MAX / 4;
    }

    t = (int64_t) lim->period * CG_NS_PER_MS / (int64_t) lim->count;

    return t > 0 ? t : 1;
}


static uint64_t
cg_ns_to_ms_ceil(int64_t ns)
{
    if (ns <= 0) {
        return 0;
    }

    return (uint64_t) ((ns + CG_NS_PER_MS - 1) / CG_NS_PER_MS);
}


static void
cg_limit_rate(const cg_limit_t *lim, cg_limit_state_t *st, int64_t now,
    uint64_t cost, int commit, cg_limit_result_t *res)
{
    int64_t   t, tau, tat, new_tat, nowns, allow_at, room;
    uint64_t  cap;

    t = cg_limit_interval(lim);
    cap = cg_limit_capacity(lim);
    tau = (lim->burst > (uint64_t) (CG_TAU_MAX / t))
          ? CG_TAU_MAX : (int64_t) lim->burst * t;
    nowns = now * CG_NS_PER_MS;

    /*
     * the clock ticks in milliseconds: a tolerance under one tick would
     * admit at most one request per tick, whatever the rate
     */

    if (tau < CG_NS_PER_MS) {
        tau = CG_NS_PER_MS;
    }

    tat = st->tat > nowns ? st->tat : nowns;

    if (cost > cap) {
        cost = cap + 1;   /* can never pass */
    }

    if (cost > (uint64_t) (CG_TAU_MAX / t)) {
        cost = CG_TAU_MAX / t + 2;   /* more than tau + t: never passes */
    }

    new_tat = tat + (int64_t) cost * t;
    allow_at = new_tat - tau - t;

    if (allow_at <= nowns) {
        res->allowed = 1;

        if (commit) {
            st->tat = new_tat;
        }

        tat = new_tat;
        res->retry = 0;

    } else {
        res->allowed = 0;
        res->retry = cg_ns_to_ms_ceil(allow_at - nowns);
    }

    /* requests of one unit that still fit: (now + tau + T - tat) / T */

    room = nowns + tau + t - tat;
    res->remaining = room > 0 ? (uint64_t) (room / t) : 0;

    if (res->remaining > cap) {
        res->remaining = cap;
    }

    res->reset = cg_ns_to_ms_ceil(tat - nowns);
}


static void
cg_limit_window(const cg_limit_t *lim, cg_limit_state_t *st, int64_t now,
    uint64_t cost, int commit, cg_limit_result_t *res)
{
    int64_t   w, end;
    uint64_t  used;

    w = now / (int64_t) lim->period;
    used = (st->window == w) ? st->used : 0;
    end = (w + 1) * (int64_t) lim->period;

    res->reset = (uint64_t) (end - now);

    if (used + cost <= lim->count) {
        res->allowed = 1;
        res->retry = 0;

        if (commit) {
            st->window = w;
            st->used = used + cost;
            used = st->used;

        } else {
            used += cost;
        }

    } else {
        res->allowed = 0;
        res->retry = res->reset;
    }

    res->remaining = used < lim->count ? lim->count - used : 0;
}


void
cg_limit_check(const cg_limit_t *lim, cg_limit_state_t *st, int64_t now,
    uint64_t cost, int commit, cg_limit_result_t *res)
{
    if (st->type != lim->type || st->period != lim->period) {
        st->type = lim->type;
        st->period = lim->period;
        st->tat = 0;        /* and st->window */
        st->used = 0;
    }

    switch (lim->type) {

    case CG_LIMIT_RATE:
        cg_limit_rate(lim, st, now, cost, commit, res);
        return;

    case CG_LIMIT_WINDOW:
        if (lim->period) {
            cg_limit_window(lim, st, now, cost, commit, res);
            return;
        }

        /* fall through */

    default:
        res->allowed = 1;
        res->remaining = UINT64_MAX;
        res->reset = 0;
        res->retry = 0;
        return;
    }
}


int
cg_quota_check(const cg_quota_t *q, cg_limit_state_t *st, int64_t now,
    uint64_t cost, int commit, cg_limit_result_t *res)
{
    int                best;
    uint32_t           i;
    cg_limit_result_t  r;

    best = -1;
    res->allowed = 1;
    res->remaining = UINT64_MAX;
    res->reset = 0;
    res->retry = 0;

    /*
     * the last limit is charged at once: when it allows the request, every
     * limit did, and a check that rejects changes nothing; a single limit
     * (the common case) is then checked once
     */

    for (i = 0; i < q->nlimits; i++) {
        cg_limit_check(&q->limits[i], &st[i], now, cost,
                       commit && i == q->nlimits - 1, &r);

        if (!r.allowed) {
            *res = r;
            return (int) i;
        }

        if (best == -1 || r.remaining < res->remaining) {
            *res = r;
            best = (int) i;
        }
    }

    if (commit) {
        for (i = 0; i + 1 < q->nlimits; i++) {
            cg_limit_check(&q->limits[i], &st[i], now, cost, 1, &r);
        }
    }

    return best;
}


uint64_t
cg_limit_capacity(const cg_limit_t *lim)
{
    if (lim->type == CG_LIMIT_RATE) {
        return lim->burst + 1;
    }

    return lim->count;
}


uint64_t
cg_limit_window_sec(const cg_limit_t *lim)
{
    uint64_t  s;

    s = lim->period / 1000;

    return s ? s : 1;
}


/* the RateLimit headers' text and the log's -------------------------------- */


/* "s", "m", "h" or "d": the period's unit (the parsers make no other) */

static int
cg_limit_unit(const cg_limit_t *lim)
{
    switch (lim->period) {
    case 1000:
        return 0;
    case 60 * 1000:
        return 1;
    case 3600 * 1000:
        return 2;
    default:
        return 3;
    }
}


/*
 * A decimal number without printf: the RateLimit headers go out with
 * every request.  The length first, then two digits at a time from the end.
 */

unsigned char *
cg_limit_uint(unsigned char *p, uint64_t n)
{
    static const unsigned char  pairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233"
        "34353637383940414243444546474849505152535455565758596061626364656667"
        "6869707172737475767778798081828384858687888990919293949596979899";

    uint64_t        m, i;
    unsigned char  *e;

    m = n;
    e = p + 1;

    while (m >= 100) {
        m /= 100;
        e += 2;
    }

    if (m >= 10) {
        e++;
    }

    p = e;

    while (n >= 100) {
        i = (n % 100) * 2;
        n /= 100;
        *--p = pairs[i + 1];
        *--p = pairs[i];
    }

    if (n >= 10) {
        *--p = pairs[n * 2 + 1];
        *--p = pairs[n * 2];

    } else {
        *--p = (unsigned char) ('0' + n);
    }

    return e;
}


static unsigned char *
cg_limit_cpy(unsigned char *p, const char *s)
{
    while (*s) {
        *p++ = (unsigned char) *s++;
    }

    return p;
}


unsigned char *
cg_limit_policy_item(unsigned char *p, const cg_limit_t *lim, unsigned char x)
{
    static const char  *names[2][4] = {
        { "rate_s", "rate_m", "rate_h", "rate_d" },
        { "quota_s", "quota_m", "quota_h", "quota_d" }
    };

    *p++ = '"';
    p = cg_limit_cpy(p, names[lim->type == CG_LIMIT_RATE ? 0 : 1]
                             [cg_limit_unit(lim)]);
    *p++ = '"';
    *p++ = ';';
    *p++ = x;
    *p++ = '=';

    return p;
}


size_t
cg_quota_policy_len(const cg_quota_t *q)
{
    return q->nlimits * (sizeof("\"quota_s\";q=;w=, ") + 2 * CG_UINT_LEN);
}


unsigned char *
cg_quota_policy_print(unsigned char *p, const cg_quota_t *q)
{
    uint32_t           i;
    const cg_limit_t  *lim;

    for (i = 0; i < q->nlimits; i++) {
        lim = &q->limits[i];

        if (i) {
            *p++ = ',';
            *p++ = ' ';
        }

        p = cg_limit_policy_item(p, lim, 'q');
        p = cg_limit_uint(p, lim->count);
        *p++ = ';';
        *p++ = 'w';
        *p++ = '=';
        p = cg_limit_uint(p, cg_limit_window_sec(lim));
    }

    return p;
}


unsigned char *
cg_limit_print(unsigned char *p, const cg_limit_t *lim)
{
    static const unsigned char  units[] = "smhd";

    if (lim->type == CG_LIMIT_RATE) {
        p = cg_limit_cpy(p, "rate=");
        p = cg_limit_uint(p, lim->count);
        *p++ = 'r';
        *p++ = '/';
        *p++ = units[cg_limit_unit(lim)];
        p = cg_limit_cpy(p, " burst=");
        return cg_limit_uint(p, lim->burst);
    }

    p = cg_limit_cpy(p, "quota=");
    p = cg_limit_uint(p, lim->count);
    *p++ = '/';
    *p++ = units[cg_limit_unit(lim)];

    return p;
}
