
/*
 * Copyright (C) client guard authors
 *
 * cg_status_self: a team's own view.
 *
 * Owns: the client_guard_status_self directive and its handler, a location
 * that answers the calling client about itself alone: the client named by
 * the location's identification rules as its requests are (cg_identity),
 * its fallback name when none does (or the unidentified status when the
 * fallback is off); its row of the report (cg_report: one record copied
 * under the zone lock, no walk) in JSON as the status shows a client
 * (cg_status_json), its history and its deploy markers; or the page
 * src/cg_self.html, which reads that JSON.  No query argument names the
 * client.  See docs/status.md, "A team's own view".
 */


#ifndef _CG_STATUS_SELF_H_INCLUDED_
#define _CG_STATUS_SELF_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * client_guard_status_self [zone=name]: the location's handler, and its
 * configuration (ngx_http_cg_self_conf_t, cg_common.h) at cmd->offset of
 * the location's
 */
char *ngx_http_cg_self_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _CG_STATUS_SELF_H_INCLUDED_ */
