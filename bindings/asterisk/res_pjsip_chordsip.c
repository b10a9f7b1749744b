/* SPDX-License-Identifier: GPL-2.0-only (links Asterisk)
 *
 * res_pjsip_chordsip: the res_pjsip half of the chordsip contact store.
 *
 * res_sorcery_chordsip (the wizard) loads before res_pjsip; this module loads
 * after it and adds what the wizard alone cannot do:
 *
 *  - REGISTER answers that tell the truth. The registrar answers 200 even when
 *    the wizard failed to store a contact (and deletes a contact whose update
 *    failed). A pjsip module before the registrar answers 503 while the node
 *    is not in an overlay, and hands the REGISTER's Call-ID and CSeq to the
 *    wizard (which orders writes by them, RFC 3261 §10.3 step 7); a REGISTER
 *    supplement turns the 200 into the failure's answer (503 with Retry-After
 *    when the overlay did not answer, 500 for an out-of-order CSeq, 400 for a
 *    contact too large to store).
 *  - A mirror of other servers' contacts. Sorcery observers (device state,
 *    qualify, MWI) fire only on the server that wrote a contact, so every
 *    `mirror_interval_s` this module reads each configured AOR's contacts from
 *    the overlay and replays what changed through sorcery in mirror-only mode
 *    (the wizard records it locally, no overlay write): hints on every server
 *    then show a user registered anywhere as reachable.
 */
#include "asterisk.h"

#include <pjsip.h>
#include <pjlib.h>

#include "asterisk/astobj2.h"
#include "asterisk/config.h"
#include "asterisk/logger.h"
#include "asterisk/module.h"
#include "asterisk/named_locks.h"
#include "asterisk/res_pjsip.h"
#include "asterisk/sorcery.h"
#include "asterisk/strings.h"
#include "asterisk/utils.h"

#include <chordsip.h>

#include "res_sorcery_chordsip.h"

#define LOCAL_MAX 64

static unsigned int mirror_interval_s = 5;
static pthread_t mirror_thread = AST_PTHREADT_NULL;
static volatile int stopping;

/* ---- REGISTER answers ------------------------------------------------------ */

static pj_bool_t gate_on_rx_request(pjsip_rx_data *rdata)
{
	pjsip_msg *msg = rdata->msg_info.msg;
	if(pjsip_method_cmp(&msg->line.req.method, &pjsip_register_method))
		return PJ_FALSE;
	if(!chordsip_ast_ready()) {
		static const pj_str_t name = {"Retry-After", 11};
		static const pj_str_t value = {"5", 1};
		pjsip_hdr headers;
		pjsip_generic_string_hdr *retry =
				pjsip_generic_string_hdr_create(rdata->tp_info.pool, &name, &value);
		pj_list_init(&headers);
		if(retry)
			pj_list_push_back(&headers, retry);
		pjsip_endpt_respond_stateless(ast_sip_get_pjsip_endpoint(), rdata, 503, NULL,
				&headers, NULL);
		return PJ_TRUE;
	}
	chordsip_ast_request_begin(rdata->msg_info.cid->id.ptr, rdata->msg_info.cid->id.slen,
			rdata->msg_info.cseq ? (uint32_t)rdata->msg_info.cseq->cseq : 0);
	return PJ_FALSE;
}

/* Before the registrar (APPLICATION) and the supplement dispatcher
 * (APPLICATION - 1). */
static pjsip_module gate_module = {
	.name = {"chordsip gate", 13},
	.priority = PJSIP_MOD_PRIORITY_APPLICATION - 2,
	.on_rx_request = gate_on_rx_request,
};

static void register_outgoing_response(struct ast_sip_endpoint *endpoint,
		struct ast_sip_contact *contact, pjsip_tx_data *tdata)
{
	int failure = chordsip_ast_request_end();
	pjsip_msg *msg = tdata->msg;
	const char *headers, *line;
	uint32_t status;

	if(failure == 0 || msg->type != PJSIP_RESPONSE_MSG || msg->line.status.code / 100 != 2)
		return;
	status = chordsip_result_sip_status(failure);
	ast_log(LOG_WARNING, "chordsip: REGISTER answered %u instead of %d: %s\n", status,
			msg->line.status.code, chordsip_result_str(failure));
	msg->line.status.code = (int)status;
	pj_strdup2(tdata->pool, &msg->line.status.reason, chordsip_result_sip_reason(failure));
	/* A failed REGISTER lists no bindings. */
	while(pjsip_msg_find_remove_hdr(msg, PJSIP_H_CONTACT, NULL)) {
	}
	while(pjsip_msg_find_remove_hdr(msg, PJSIP_H_EXPIRES, NULL)) {
	}
	/* "Name: value\r\n" lines, e.g. Retry-After. */
	headers = chordsip_result_sip_headers(failure);
	for(line = headers; line && *line;) {
		const char *end = strstr(line, "\r\n"), *colon = strchr(line, ':');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if(colon && colon < line + len) {
			char *name = ast_strndup(line, colon - line);
			char *value = ast_strndup(colon + 1, line + len - colon - 1);
			if(name && value)
				ast_sip_add_header(tdata, name, ast_skip_blanks(value));
			ast_free(name);
			ast_free(value);
		}
		line += len + (end ? 2 : 0);
	}
	pjsip_tx_data_invalidate_msg(tdata);
}

static struct ast_sip_supplement register_supplement = {
	.method = "REGISTER",
	.priority = AST_SIP_SUPPLEMENT_PRIORITY_LAST,
	.outgoing_response = register_outgoing_response,
};

/* ---- the mirror ------------------------------------------------------------ */

static int find_local(const struct chordsip_ast_local *local, size_t n, const char *id)
{
	size_t i;
	for(i = 0; i < n; i++)
		if(!strcmp(local[i].id, id))
			return (int)i;
	return -1;
}

/* Replays the overlay's view of one AOR through sorcery, holding the AOR lock
 * as the registrar does. */
static void mirror_aor(struct ast_sorcery *sorcery, struct ast_sip_aor *aor)
{
	const char *aor_id = ast_sorcery_object_get_id(aor);
	struct ast_named_lock *lock = ast_named_lock_get(AST_NAMED_LOCK_TYPE_MUTEX, "aor", aor_id);
	struct chordsip_ast_local local[LOCAL_MAX];
	char seen[LOCAL_MAX] = {0};
	struct ao2_container *contacts;
	struct ao2_iterator it;
	struct ast_sip_contact *contact;
	char prefix[300];
	size_t n, i;
	int failure;

	if(lock == NULL)
		return;
	ao2_lock(lock);
	chordsip_ast_request_begin("", 0, 0);
	contacts = ast_sip_location_retrieve_aor_contacts_nolock(aor);
	failure = chordsip_ast_request_end();
	if(contacts == NULL || failure) {
		ao2_cleanup(contacts);
		ao2_unlock(lock);
		ast_named_lock_put(lock);
		return;
	}
	snprintf(prefix, sizeof prefix, "%s;@", aor_id);
	n = chordsip_ast_local_list(prefix, local, LOCAL_MAX);
	if(n > LOCAL_MAX)
		n = LOCAL_MAX;
	chordsip_ast_mirror_only(1);
	it = ao2_iterator_init(contacts, 0);
	while((contact = ao2_iterator_next(&it))) {
		const char *id = ast_sorcery_object_get_id(contact);
		int at = strstr(id, ";@") ? find_local(local, n, id) : -2;
		if(at >= 0) {
			long drift = (long)(local[at].expires_at - contact->expiration_time.tv_sec);
			seen[at] = 1;
			/* Reads round the remaining lifetime up: a second or two is not news. */
			if(drift < -2 || drift > 2)
				ast_sorcery_update(sorcery, contact);
		} else if(at == -1) {
			ast_sorcery_create(sorcery, contact);
		}
		ao2_ref(contact, -1);
	}
	ao2_iterator_destroy(&it);
	for(i = 0; i < n; i++) {
		struct ast_sip_contact *gone;
		if(seen[i])
			continue;
		/* Gone from the overlay (unregistered or expired elsewhere). */
		gone = chordsip_ast_local_object(sorcery, "contact", local[i].id);
		if(gone) {
			ast_sorcery_delete(sorcery, gone);
			ao2_ref(gone, -1);
		}
	}
	chordsip_ast_mirror_only(0);
	ao2_ref(contacts, -1);
	ao2_unlock(lock);
	ast_named_lock_put(lock);
}

static void *mirror_loop(void *arg)
{
	while(!stopping) {
		unsigned int i;
		if(chordsip_ast_ready()) {
			struct ast_sorcery *sorcery = ast_sip_get_sorcery();
			struct ao2_container *aors = ast_sorcery_retrieve_by_fields(sorcery, "aor",
					AST_RETRIEVE_FLAG_MULTIPLE | AST_RETRIEVE_FLAG_ALL, NULL);
			if(aors) {
				struct ao2_iterator it = ao2_iterator_init(aors, 0);
				struct ast_sip_aor *aor;
				while(!stopping && (aor = ao2_iterator_next(&it))) {
					mirror_aor(sorcery, aor);
					ao2_ref(aor, -1);
				}
				ao2_iterator_destroy(&it);
				ao2_ref(aors, -1);
			}
		}
		for(i = 0; i < mirror_interval_s * 10 && !stopping; i++)
			usleep(100000);
	}
	return NULL;
}

/* mirror_interval_s from chordsip.conf's [general] (0 turns the mirror off). */
static int read_interval(void)
{
	struct ast_flags flags = {0};
	struct ast_config *file = ast_config_load2("chordsip.conf", "res_pjsip_chordsip", flags);
	const char *value;
	if(file == NULL || file == CONFIG_STATUS_FILEMISSING || file == CONFIG_STATUS_FILEINVALID)
		return 0;
	value = ast_variable_retrieve(file, "general", "mirror_interval_s");
	if(value) {
		char *end;
		unsigned long v = strtoul(value, &end, 10);
		if(*end || v > 3600) {
			ast_log(LOG_ERROR, "chordsip: mirror_interval_s must be 0 to 3600\n");
			ast_config_destroy(file);
			return -1;
		}
		mirror_interval_s = (unsigned int)v;
	}
	ast_config_destroy(file);
	return 0;
}

static int unload_module(void)
{
	stopping = 1;
	if(mirror_thread != AST_PTHREADT_NULL) {
		pthread_join(mirror_thread, NULL);
		mirror_thread = AST_PTHREADT_NULL;
	}
	ast_sip_unregister_supplement(&register_supplement);
	ast_sip_unregister_service(&gate_module);
	return 0;
}

static int load_module(void)
{
	stopping = 0;
	if(read_interval())
		return AST_MODULE_LOAD_DECLINE;
	if(ast_sip_register_service(&gate_module))
		return AST_MODULE_LOAD_DECLINE;
	ast_sip_register_supplement(&register_supplement);
	if(mirror_interval_s > 0 && ast_pthread_create(&mirror_thread, NULL, mirror_loop, NULL)) {
		unload_module();
		return AST_MODULE_LOAD_DECLINE;
	}
	return AST_MODULE_LOAD_SUCCESS;
}

AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_LOAD_ORDER,
		"chordsip: truthful REGISTER answers and mirrored contacts for res_pjsip",
		.support_level = AST_MODULE_SUPPORT_EXTENDED,
		.load = load_module,
		.unload = unload_module,
		.load_pri = AST_MODPRI_APP_DEPEND,
		.requires = "res_pjsip,res_sorcery_chordsip",
);
