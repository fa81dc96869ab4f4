
/*
 * Copyright (C) client guard authors
 *
 * cg_parse: pure parsers for text that comes from the configuration or from
 * Redis: quota parameters ("rate=100r/s", "burst=20", "quota=5000/d",
 * "mode=dry_run"), a quota definition as Redis holds it (the parameters
 * in one value), an API key's entry (the hex SHA-256 of the key), and the
 * escaping of such text for a log line.  Client names are cg_name.h's.  No
 * nginx runtime calls: unit tested in t/unit/test_cg_parse.c, fuzzed by
 * fuzz/fuzz_quota_arg.c, fuzz_redis_quota.c and fuzz_api_key.c.
 */


#ifndef _CG_PARSE_H_INCLUDED_
#define _CG_PARSE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "cg_limiter.h"


#define CG_MAX_COUNT        1000000000000ULL   /* 10^12 per period */
#define CG_QUOTA_VALUE_MAX  1024               /* a definition in Redis */
#define CG_API_KEY_HEX      64                 /* a SHA-256, in hex */


/* a decimal number, 0 .. CG_MAX_COUNT; 0 on success, -1 on error */
int cg_parse_count(const unsigned char *p, size_t len, uint64_t *n);

/* "s", "m", "h", "d" to milliseconds; 0 on success, -1 on error */
int cg_parse_period(const unsigned char *p, size_t len, uint32_t *period);

/*
 * One "name=value" quota parameter into q.  Returns NULL on success, or a
 * static text that says what is wrong.
 */
const char *cg_parse_quota_arg(cg_quota_t *q, const unsigned char *p,
    size_t len);

/* a quota as a whole, after its parameters; NULL or an error text */
const char *cg_quota_validate(const cg_quota_t *q);

/*
 * A quota definition as a Redis value: parameters separated by spaces or
 * tabs, up to CG_QUOTA_VALUE_MAX bytes, into q (zeroed first), validated.
 * NULL on success, or a static text that says what is wrong.
 */
const char *cg_parse_quota(cg_quota_t *q, const unsigned char *p, size_t len);

/*
 * The field of an API key's entry in Redis: the SHA-256 of the key, in
 * lowercase hex (CG_API_KEY_HEX characters); 0 when it is one, else -1.
 */
int cg_parse_api_key(const unsigned char *p, size_t len);

/*
 * An untrusted value (a request's, Redis's) for a log line: printable ASCII
 * but '"' and '\\' as it is, any other byte as "\\xNN" (no newline, no
 * control or non-ASCII byte reaches the log), cut with "..." where "size"
 * bytes of dst run out (size >= CG_ESCAPE_MIN).  Returns the end in dst.
 */

#define CG_ESCAPE_MIN       8

unsigned char *cg_escape(unsigned char *dst, size_t size,
    const unsigned char *src, size_t len);


#endif /* _CG_PARSE_H_INCLUDED_ */
