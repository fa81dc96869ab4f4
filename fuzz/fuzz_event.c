
/*
 * Copyright (C) client guard authors
 *
 * Fuzz target: a deploy marker's or an incident's POST to the status
 * endpoint, its query string as cg_status_events.c reads it (cg_query.c
 * cg_event_parse, cg_event_text): the team a valid name, every text
 * within its room and clean (nothing JSON, HTML or a log line would need
 * escaped), the state one of the states.
 */


#include "fuzz.h"
#include "cg_query.h"


static void
cg_fuzz_check_clean(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        cg_fuzz_check(p[i] >= 0x20 && p[i] < 0x7f);
        cg_fuzz_check(strchr("\"\\<>&'", p[i]) == NULL);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             rc;
    size_t          n;
    uint8_t        *args;
    cg_event_t      ev;
    unsigned char   team[CG_EVENT_TEAM_LEN], *out;

    args = cg_fuzz_copy(data, size);

    rc = cg_event_parse(&ev, args, size);
    cg_fuzz_check(rc == 0 || rc == -1);

    if (rc == 0 && ev.kind == CG_EVENT_DEPLOY) {
        cg_fuzz_check(ev.team_len > 0 && ev.team_len <= CG_EVENT_TEAM_LEN);
        cg_fuzz_check(cg_name_normalize(team, ev.team, ev.team_len,
                                        CG_EVENT_TEAM_LEN)
                      == (int) ev.team_len);
        cg_fuzz_check(ev.note_len <= CG_EVENT_NOTE_LEN);
        cg_fuzz_check_clean(ev.note, ev.note_len);

    } else if (rc == 0) {
        cg_fuzz_check(ev.kind == CG_EVENT_INCIDENT);
        cg_fuzz_check(ev.id <= INT64_MAX);
        cg_fuzz_check(ev.id != 0 || ev.title);
        cg_fuzz_check(ev.state >= -1 && ev.state <= 3);
        cg_fuzz_check(ev.state < 0 || cg_event_states[ev.state] != NULL);
        cg_fuzz_check(ev.title_len <= CG_EVENT_TITLE_LEN);
        cg_fuzz_check(ev.text_len <= CG_EVENT_TEXT_LEN);
        cg_fuzz_check(ev.title || ev.title_len == 0);
        cg_fuzz_check(ev.text || ev.text_len == 0);
        cg_fuzz_check_clean(ev.title_text, ev.title_len);
        cg_fuzz_check_clean(ev.text_text, ev.text_len);
        cg_fuzz_check(ev.eta_len == 0
                      || (ev.eta == ev.eta_text
                          && ev.eta_len <= CG_EVENT_ETA_LEN));
    }

    /* the whole input as one text, into just the room it may take */

    out = malloc(CG_EVENT_TEXT_LEN);
    cg_fuzz_check(out != NULL);
    n = cg_event_text(out, CG_EVENT_TEXT_LEN, args, size);
    cg_fuzz_check(n <= CG_EVENT_TEXT_LEN && n <= size);
    cg_fuzz_check_clean(out, n);
    free(out);

    free(args);

    return 0;
}
