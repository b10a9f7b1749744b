/* SPDX-License-Identifier: GPL-2.0-only (links Asterisk)
 *
 * res_sorcery_chordsip: the functions res_pjsip_chordsip uses.
 *
 * res_sorcery_chordsip must be loaded before res_pjsip (it registers the
 * sorcery wizard res_pjsip applies from sorcery.conf), so it cannot use
 * res_pjsip itself. res_pjsip_chordsip, loaded after res_pjsip, turns what
 * the wizard saw into SIP answers and mirrors other servers' contacts; these
 * are the hooks it needs. All of them act on the calling thread's state.
 */
#ifndef RES_SORCERY_CHORDSIP_H
#define RES_SORCERY_CHORDSIP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* 1 while this server's node is a member of the overlay. */
int chordsip_ast_ready(void);

/* A REGISTER starts on this thread: its Call-ID and CSeq order the writes the
 * wizard makes for it; the first failure is kept until chordsip_ast_request_end. */
void chordsip_ast_request_begin(const char *call_id, size_t call_id_len, uint32_t cseq);

/* Ends the request and returns the first failure of its overlay calls, a
 * chordsip_result (0: every call succeeded). */
int chordsip_ast_request_end(void);

/* While set, create/update/delete change only this server's local record
 * (no overlay call): the mirror replays other servers' contacts through
 * sorcery so that its observers (device state, qualify) see them. */
void chordsip_ast_mirror_only(int on);

/* One contact of the local record. */
struct chordsip_ast_local {
	char id[256];
	time_t expires_at;
};

/* Copies up to `max` local-record contacts of one AOR (`aor_prefix` is
 * "<aor>;@") into `out` and returns how many there are in all. */
size_t chordsip_ast_local_list(const char *aor_prefix, struct chordsip_ast_local *out, size_t max);

struct ast_sorcery;

/* The local record's contact `id` as a sorcery object (a new reference), or NULL. */
void *chordsip_ast_local_object(const struct ast_sorcery *sorcery, const char *type, const char *id);

#endif
