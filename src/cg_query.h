
/*
 * Copyright (C) client guard authors
 *
 * cg_query: what a request to the status endpoint says, as text, and
 * nothing else.
 *
 * Owns: a query argument, found as nginx's ngx_http_arg() finds it (the
 * first "name=" at the start or after a "&", the name in any case, the
 * value raw up to the next "&"); a value's percent-decoding (strict, "+"
 * kept); the status query (format, sort, limit, client, history, scope),
 * its values decoded; the format an Accept header asks for; an event's
 * POST (?deploy=team[&note=], ?incident=new|id[&state=][&title=]
 * [&text=|&description=][&eta=]), its texts decoded and cleaned.  Pure: no
 * nginx runtime calls; unit tested in t/unit/test_cg_query.c, fuzzed by
 * fuzz/fuzz_query.c, fuzz/fuzz_accept.c and fuzz/fuzz_event.c.
 */


#ifndef _CG_QUERY_H_INCLUDED_
#define _CG_QUERY_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "cg_name.h"


/* an answer's format */

#define CG_FMT_JSON         0
#define CG_FMT_PROM         1
#define CG_FMT_OPENM        2
#define CG_FMT_HTML         3

/* an event's texts, at most, and what of their query is read */

#define CG_EVENT_TEAM_LEN   32
#define CG_EVENT_NOTE_LEN   80
#define CG_EVENT_TITLE_LEN  80
#define CG_EVENT_TEXT_LEN   240
#define CG_EVENT_RAW_LEN    (3 * CG_EVENT_TEXT_LEN)
#define CG_EVENT_ETA_LEN    32

/* a decoded value other than a name or a text, at most */

#define CG_QUERY_VALUE_LEN  32

#define CG_EVENT_DEPLOY     1
#define CG_EVENT_INCIDENT   2


extern const char  *cg_query_sorts[];     /* sort keys, NULL last */
extern const char  *cg_event_states[];    /* an incident's, NULL last */


/* what a status query asks for */

typedef struct {
    int                   format;      /* CG_FMT_*, -1: not said */
    unsigned              sort;        /* of cg_query_sorts[]: 0 */
    int64_t               limit;       /* -1: not said */
    int                   history;     /* 0, 1, -1: not said */
    int                   cluster;     /* scope=cluster */
    const char           *bad;         /* the argument refused, or NULL */
    size_t                client_len;  /* 0: every client */
    unsigned char         client[CG_NAME_MAX];
} cg_query_t;


/* what an event's POST says */

typedef struct {
    int                   kind;        /* CG_EVENT_DEPLOY, _INCIDENT */
    const char           *bad;         /* the argument refused, or NULL */
    uint64_t              id;          /* the incident, 0: a new one */
    int                   state;       /* of cg_event_states[], -1 */
    unsigned              title:1;     /* given: replaces the incident's */
    unsigned              text:1;
    const unsigned char  *eta;         /* decoded, a time from now or */
    size_t                eta_len;     /* "0" (none); 0: not said */
    size_t                team_len;
    size_t                note_len;
    size_t                title_len;
    size_t                text_len;
    unsigned char         team[CG_EVENT_TEAM_LEN];
    unsigned char         note[CG_EVENT_NOTE_LEN];
    unsigned char         title_text[CG_EVENT_TITLE_LEN];
    unsigned char         text_text[CG_EVENT_TEXT_LEN];
    unsigned char         eta_text[CG_EVENT_ETA_LEN];
} cg_event_t;


/*
 * The value of the argument "name" (lowercase) in the query "args": 0 with
 * the value (raw, possibly empty), or -1 when it is not there.
 */
int cg_query_arg(const unsigned char *args, size_t len, const char *name,
    const unsigned char **value, size_t *value_len);

/*
 * A query value decoded into dst (room for max): "%XX" (two hex digits, in
 * either case) is the byte XX, as nginx's ngx_unescape_uri() has it; "+"
 * stays a "+", as in nginx's $arg_ variables and ngx_unescape_uri() (no
 * space); any other byte stays.  Returns the length, or -1 when a "%" is
 * not followed by two hex digits, a byte decodes to NUL, or the value does
 * not fit: what cannot be decoded is refused, not guessed.
 */
int cg_query_unescape(unsigned char *dst, size_t max, const unsigned char *src,
    size_t len);

/*
 * A status query into q, each value decoded (cg_query_unescape): 0, or -1
 * when it is a bad request, q->bad then naming the argument refused.
 */
int cg_query_parse(cg_query_t *q, const unsigned char *args, size_t len);

/*
 * The format an Accept header's value asks for: the first of OpenMetrics,
 * JSON, HTML and Prometheus text it names, in that order; -1: none.
 */
int cg_query_accept(const unsigned char *p, size_t len);

/*
 * An event's POST into ev: 0, or -1 when it is a bad request (ev->bad
 * names the argument: "deploy", "incident", "state", "eta", "title" for
 * a new incident without one).  The team,
 * the incident's id, its state and eta are decoded as a status query's
 * values are (strictly, "+" kept); the texts by cg_event_text().
 */
int cg_event_parse(cg_event_t *ev, const unsigned char *args, size_t len);

/*
 * An event's text as its query gives it, into dst: the first
 * CG_EVENT_RAW_LEN bytes decoded ("+" a space, %XX a byte), cut at max,
 * cleaned (cg_event_clean); returns its length.
 */
size_t cg_event_text(unsigned char *dst, size_t max, const unsigned char *src,
    size_t len);

/* printable ASCII, nothing that needs escaping in JSON, HTML or a log */
void cg_event_clean(unsigned char *dst, const unsigned char *src, size_t len);

/* the state of that name, or -1 */
int cg_event_state(const unsigned char *p, size_t len);


#endif /* _CG_QUERY_H_INCLUDED_ */
