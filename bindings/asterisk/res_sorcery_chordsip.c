/* SPDX-License-Identifier: GPL-2.0-only (links Asterisk)
 *
 * res_sorcery_chordsip: a sorcery wizard that keeps res_pjsip's contacts in a
 * chordsip overlay, so that Asterisk servers share registrations with no
 * database.
 *
 * sorcery.conf:  [res_pjsip]
 *                contact=chordsip
 * chordsip.conf: [general] listen=..., bootstrap=..., writer_key_file=...
 *
 * Layout in the overlay: key "<namespace>:contact:<aor>", one entry per
 * contact whose writer label is the md5 part of the contact id
 * ("<aor>;@<md5 of the URI>"), so every server computes the same slot for the
 * same contact; the servers share one writer key, so any of them may refresh
 * or remove it. The value is the contact's sorcery object set, one
 * "name=value" line per field, plus the Call-ID and CSeq of the REGISTER that wrote it. The entry's lifetime is
 * the contact's expiry: the overlay forgets it when it expires, whatever the
 * servers' clocks say.
 *
 * Threads: the node is created in load_module (Asterisk has daemonized by
 * then and never forks workers) and joins on a thread of its own so that a
 * missing peer does not hold up the boot. Wizard callbacks run on PJSIP
 * servant threads with the AOR locked and block at most `timeout_ms`. The
 * library's own threads never call into Asterisk except for log lines.
 */
#include "asterisk.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <unistd.h>

#include "asterisk/astobj2.h"
#include "asterisk/cli.h"
#include "asterisk/config.h"
#include "asterisk/logger.h"
#include "asterisk/module.h"
#include "asterisk/sorcery.h"
#include "asterisk/strings.h"
#include "asterisk/time.h"
#include "asterisk/utils.h"

#include <chordsip.h>

#include "res_sorcery_chordsip.h"

#define CONFIG_FILE "chordsip.conf"
#define LOCAL_BUCKETS 1021
#define MAX_ID 256
#define LABEL_LEN 64
#define SEEN_MAX 32

/* ---- settings and the node ----------------------------------------------- */

static chordsip_node *node;
/* Readers: every call that uses `node`; writer: the leave that frees it
 * (at Asterisk's exit or unload), so that no call outlives the node. */
static pthread_rwlock_t node_lock = PTHREAD_RWLOCK_INITIALIZER;
static char bootstrap[1024];
static char namespace_[128] = "asterisk";
static unsigned int timeout_ms = 1000;
static unsigned int leave_timeout_ms = 3000;
static pthread_t join_thread = AST_PTHREADT_NULL;
static volatile int stopping;
static int joined;
static uint32_t log_level = 2; /* warn */

/* Counters shown by `chordsip show status`. */
static struct {
	uint64_t puts, put_errors, gets, get_errors, removes, remove_errors;
	uint64_t untrusted, out_of_order, us_put, us_get, us_remove, max_us;
} counters;

#define COUNT(field, n) __atomic_add_fetch(&counters.field, (n), __ATOMIC_RELAXED)

static uint64_t now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static void count_latency(uint64_t *sum, uint64_t started)
{
	uint64_t took = now_us() - started;
	uint64_t max = __atomic_load_n(&counters.max_us, __ATOMIC_RELAXED);
	__atomic_add_fetch(sum, took, __ATOMIC_RELAXED);
	while(took > max
			&& !__atomic_compare_exchange_n(&counters.max_us, &max, took, 0,
					__ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
	}
}

/* ---- the calling thread's request ---------------------------------------- */

/* What the wizard read for one contact during the current REGISTER. */
struct seen {
	char label[LABEL_LEN];
	char call_id[MAX_ID];
	uint32_t cseq;
};

struct request {
	int active;
	int mirror_only;
	int failure;
	char call_id[MAX_ID];
	uint32_t cseq;
	size_t seen_len;
	struct seen seen[SEEN_MAX];
};

static __thread struct request request;

void chordsip_ast_request_begin(const char *call_id, size_t call_id_len, uint32_t cseq)
{
	request.active = 1;
	request.failure = 0;
	request.seen_len = 0;
	request.cseq = cseq;
	if(call_id_len >= sizeof request.call_id)
		call_id_len = sizeof request.call_id - 1;
	memcpy(request.call_id, call_id ? call_id : "", call_id ? call_id_len : 0);
	request.call_id[call_id ? call_id_len : 0] = 0;
}

int chordsip_ast_request_end(void)
{
	int failure = request.active ? request.failure : 0;
	request.active = 0;
	request.seen_len = 0;
	return failure;
}

void chordsip_ast_mirror_only(int on)
{
	request.mirror_only = on;
}

static void fail(int rc)
{
	if(request.active && request.failure == 0)
		request.failure = rc;
}

int chordsip_ast_ready(void)
{
	/* Set by the join thread, cleared by the leave: no call into the node on
	 * the REGISTER path. A node cut off later fails its puts, which the
	 * REGISTER supplement answers 503. */
	return __atomic_load_n(&joined, __ATOMIC_ACQUIRE);
}

/* ---- the local record ------------------------------------------------------ */

/* This server's own writes and the mirrored contacts: what answers the queries
 * the overlay cannot ("every contact", "contacts expiring before T"). */
struct local_entry {
	char id[MAX_ID];
	char *record;
	time_t expires_at;
};

static struct ao2_container *local_record;

static void local_entry_destroy(void *obj)
{
	struct local_entry *e = obj;
	ast_free(e->record);
}

/* Entries hash by their AOR (the id up to ";@"), so that both a whole id and
 * an AOR's prefix "<aor>;@" find their bucket: the mirror lists one AOR's
 * contacts without walking the record. */
static int local_hash(const void *obj, int flags)
{
	const char *id = (flags & OBJ_SEARCH_KEY) ? obj : ((const struct local_entry *)obj)->id;
	const char *at = strstr(id, ";@");
	return ast_str_hash(at ? strndupa(id, at - id) : id);
}

/* A key ending in ";@" matches every contact of that AOR; any other key one id. */
static int local_cmp(void *obj, void *arg, int flags)
{
	const struct local_entry *e = obj;
	const char *key = (flags & OBJ_SEARCH_KEY) ? arg : ((const struct local_entry *)arg)->id;
	size_t len = strlen(key);
	if(len >= 2 && !strcmp(key + len - 2, ";@"))
		return strncmp(e->id, key, len) ? 0 : CMP_MATCH;
	return strcmp(e->id, key) ? 0 : CMP_MATCH | CMP_STOP;
}

static void local_put(const char *id, const char *record, time_t expires_at)
{
	struct local_entry *e = ao2_alloc_options(sizeof *e, local_entry_destroy,
			AO2_ALLOC_OPT_LOCK_NOLOCK);
	if(e == NULL)
		return;
	ast_copy_string(e->id, id, sizeof e->id);
	e->record = ast_strdup(record);
	e->expires_at = expires_at;
	if(e->record == NULL) {
		ao2_ref(e, -1);
		return;
	}
	ao2_lock(local_record);
	ao2_find(local_record, id, OBJ_SEARCH_KEY | OBJ_UNLINK | OBJ_NODATA | OBJ_NOLOCK);
	ao2_link_flags(local_record, e, OBJ_NOLOCK);
	ao2_unlock(local_record);
	ao2_ref(e, -1);
}

static void local_drop(const char *id)
{
	ao2_find(local_record, id, OBJ_SEARCH_KEY | OBJ_UNLINK | OBJ_NODATA);
}

/* Forgets entries that expired more than a minute ago (the expiry thread
 * normally deletes them first; this bounds the record if it is not running). */
static int local_prune_cb(void *obj, void *arg, int flags)
{
	const struct local_entry *e = obj;
	return e->expires_at + 60 < *(time_t *)arg ? CMP_MATCH : 0;
}

size_t chordsip_ast_local_list(const char *aor_prefix, struct chordsip_ast_local *out, size_t max)
{
	size_t n = 0;
	struct ao2_iterator *it = ao2_find(local_record, aor_prefix, OBJ_SEARCH_KEY | OBJ_MULTIPLE);
	struct local_entry *e;
	if(it == NULL)
		return 0;
	while((e = ao2_iterator_next(it))) {
		if(n < max) {
			ast_copy_string(out[n].id, e->id, sizeof out[n].id);
			out[n].expires_at = e->expires_at;
		}
		n++;
		ao2_ref(e, -1);
	}
	ao2_iterator_destroy(it);
	return n;
}

/* ---- objects <-> values ---------------------------------------------------- */

/* Splits "<aor>;@<label>" ids; 0 when the id has another shape. */
static int split_id(const char *id, char *aor, size_t aor_len, const char **label)
{
	const char *at = strstr(id, ";@");
	if(at == NULL || at == id || (size_t)(at - id) >= aor_len || strlen(at + 2) == 0
			|| strlen(at + 2) >= LABEL_LEN || strstr(at + 2, ";@"))
		return 0;
	memcpy(aor, id, at - id);
	aor[at - id] = 0;
	*label = at + 2;
	return 1;
}

static void overlay_key(const char *aor, char *key, size_t len)
{
	snprintf(key, len, "%s:contact:%s", namespace_, aor);
}

/* Keeps only the fields sorcery registered for the type (drops x_* and any
 * field an older or newer Asterisk wrote), as res_sorcery_astdb does. */
static struct ast_variable *filter_fields(const struct ast_sorcery *sorcery, const char *type,
		struct ast_variable *set)
{
	struct ast_sorcery_object_type *object_type = ast_sorcery_get_object_type(sorcery, type);
	struct ast_variable *kept = NULL, **tail = &kept, *v, *next;
	for(v = set; v; v = next) {
		next = v->next;
		v->next = NULL;
		if(object_type && strcmp(v->name, "expiration_time")
				&& ast_sorcery_is_object_field_registered(object_type, v->name)) {
			*tail = v;
			tail = &v->next;
		} else {
			ast_variables_destroy(v);
		}
	}
	ao2_cleanup(object_type);
	return kept;
}

/* The stored record: a first line naming the format, then one
 * "name=value" line per field, values escaped (\\ \n \r) so that any byte
 * but NUL survives; JSON would refuse a User-Agent that is not UTF-8. */
#define RECORD_MAGIC "chordsip-contact 1\n"

static void append_field(struct ast_str **buf, const char *name, const char *value)
{
	const char *c = value;
	ast_str_append(buf, 0, "%s=", name);
	while(*c) {
		size_t plain = strcspn(c, "\\\n\r");
		ast_str_append(buf, 0, "%.*s", (int)plain, c);
		c += plain;
		if(*c) {
			ast_str_append(buf, 0, "\\%c", *c == '\n' ? 'n' : *c == '\r' ? 'r' : '\\');
			c++;
		}
	}
	ast_str_append(buf, 0, "\n");
}

/* Parses a stored record into a variable list (NULL when it is not one). */
static struct ast_variable *parse_record(const char *text, size_t len)
{
	struct ast_variable *set = NULL;
	size_t i = strlen(RECORD_MAGIC);
	char *value;
	if(len < i || memcmp(text, RECORD_MAGIC, i))
		return NULL;
	value = ast_malloc(len + 1);
	if(value == NULL)
		return NULL;
	while(i < len) {
		size_t name_start = i, name_end, n = 0;
		char name[64];
		while(i < len && text[i] != '=' && text[i] != '\n')
			i++;
		name_end = i;
		if(i == len || text[i] != '=' || name_end == name_start
				|| name_end - name_start >= sizeof name) {
			while(i < len && text[i] != '\n')
				i++;
			i++;
			continue;
		}
		memcpy(name, text + name_start, name_end - name_start);
		name[name_end - name_start] = 0;
		for(i++; i < len && text[i] != '\n'; i++) {
			char c = text[i];
			if(c == '\\' && i + 1 < len) {
				c = text[++i];
				c = c == 'n' ? '\n' : c == 'r' ? '\r' : c;
			}
			if(c == 0)
				break;
			value[n++] = c;
		}
		i++;
		value[n] = 0;
		ast_variable_list_append(&set, ast_variable_new(name, value, ""));
	}
	ast_free(value);
	return set;
}

/* Builds a contact object from a parsed record (consumed); its expiry is the
 * one the overlay (or the local record) knows, not the writer's clock. */
static void *object_from_set(const struct ast_sorcery *sorcery, const char *type,
		const char *id, struct ast_variable *set, time_t expires_at)
{
	char when[32];
	void *object = NULL;
	if(set == NULL)
		return NULL;
	set = filter_fields(sorcery, type, set);
	snprintf(when, sizeof when, "%ld", (long)expires_at);
	ast_variable_list_append(&set, ast_variable_new("expiration_time", when, ""));
	object = ast_sorcery_alloc(sorcery, type, id);
	if(object && ast_sorcery_objectset_apply(sorcery, object, set)) {
		ao2_ref(object, -1);
		object = NULL;
	}
	ast_variables_destroy(set);
	return object;
}

static void *object_from_record(const struct ast_sorcery *sorcery, const char *type,
		const char *id, const char *text, size_t len, time_t expires_at)
{
	return object_from_set(sorcery, type, id, parse_record(text, len), expires_at);
}

/* The record to store for `object`, and the expiry it carries. */
static char *value_of(const struct ast_sorcery *sorcery, void *object, time_t *expires_at)
{
	struct ast_variable *set = ast_sorcery_objectset_create(sorcery, object), *v;
	struct ast_str *buf;
	char cseq[16], *text;
	if(set == NULL)
		return NULL;
	buf = ast_str_create(1024);
	if(buf == NULL) {
		ast_variables_destroy(set);
		return NULL;
	}
	ast_str_set(&buf, 0, "%s", RECORD_MAGIC);
	for(v = set; v; v = v->next) {
		if(!strcmp(v->name, "expiration_time"))
			*expires_at = (time_t)strtoll(v->value, NULL, 10);
		else
			append_field(&buf, v->name, v->value);
	}
	snprintf(cseq, sizeof cseq, "%u", request.active ? request.cseq : 0);
	append_field(&buf, "x_call_id", request.active ? request.call_id : "");
	append_field(&buf, "x_cseq", cseq);
	text = ast_strdup(ast_str_buffer(buf));
	ast_free(buf);
	ast_variables_destroy(set);
	return text;
}

/* RFC 3261 §10.3 step 7: a write of the same Call-ID with a CSeq not above the
 * stored one is out of order. */
static int out_of_order(const char *label)
{
	size_t i;
	if(!request.active)
		return 0;
	for(i = 0; i < request.seen_len; i++) {
		const struct seen *s = &request.seen[i];
		if(!strcmp(s->label, label))
			return !strcmp(s->call_id, request.call_id) && request.cseq <= s->cseq;
	}
	return 0;
}

static void remember_seen(const char *label, const struct ast_variable *set)
{
	const char *cseq;
	struct seen *s;
	if(!request.active || request.seen_len == SEEN_MAX || set == NULL)
		return;
	s = &request.seen[request.seen_len++];
	ast_copy_string(s->label, label, sizeof s->label);
	ast_copy_string(s->call_id, S_OR(ast_variable_find_in_list(set, "x_call_id"), ""),
			sizeof s->call_id);
	cseq = ast_variable_find_in_list(set, "x_cseq");
	s->cseq = cseq ? (uint32_t)strtoul(cseq, NULL, 10) : 0;
}

/* ---- wizard callbacks ------------------------------------------------------ */

static int write_contact(const struct ast_sorcery *sorcery, void *object)
{
	const char *id = ast_sorcery_object_get_id(object), *label;
	char aor[MAX_ID], key[MAX_ID + 160];
	time_t expires_at = 0, now = time(NULL);
	char *text;
	int rc;
	uint64_t started;

	if(!split_id(id, aor, sizeof aor, &label)) {
		ast_log(LOG_ERROR, "chordsip: contact id '%s' is not <aor>;@<hash>: not stored\n", id);
		fail(CHORDSIP_ERR_INVALID_ARGUMENT);
		return -1;
	}
	text = value_of(sorcery, object, &expires_at);
	if(text == NULL) {
		fail(CHORDSIP_ERR_INVALID_ARGUMENT);
		return -1;
	}
	if(request.mirror_only) {
		local_put(id, text, expires_at);
		ast_free(text);
		return 0;
	}
	if(out_of_order(label)) {
		COUNT(out_of_order, 1);
		fail(CHORDSIP_ERR_OUT_OF_ORDER);
		ast_free(text);
		/* 0, not -1: on an update error the registrar deletes the contact. */
		return 0;
	}
	overlay_key(aor, key, sizeof key);
	started = now_us();
	pthread_rwlock_rdlock(&node_lock);
	rc = node ? chordsip_node_put(node, key, label, (const uint8_t *)text, strlen(text),
						expires_at > now ? (uint32_t)(expires_at - now) : 1, NULL)
			  : CHORDSIP_ERR_SHUTDOWN;
	pthread_rwlock_unlock(&node_lock);
	count_latency(&counters.us_put, started);
	COUNT(puts, 1);
	if(rc != CHORDSIP_OK) {
		COUNT(put_errors, 1);
		fail(rc);
		ast_log(LOG_WARNING, "chordsip: storing contact %s failed: %s\n", id,
				chordsip_result_str(rc));
		ast_free(text);
		return -1;
	}
	local_put(id, text, expires_at);
	ast_free(text);
	return 0;
}

static int wizard_create(const struct ast_sorcery *sorcery, void *data, void *object)
{
	return write_contact(sorcery, object);
}

static int wizard_update(const struct ast_sorcery *sorcery, void *data, void *object)
{
	return write_contact(sorcery, object);
}

static int wizard_delete(const struct ast_sorcery *sorcery, void *data, void *object)
{
	const char *id = ast_sorcery_object_get_id(object), *label;
	char aor[MAX_ID], key[MAX_ID + 160];
	struct ast_variable *set = ast_sorcery_objectset_create(sorcery, object);
	const char *when = set ? ast_variable_find_in_list(set, "expiration_time") : NULL;
	time_t expires_at = when ? (time_t)strtoll(when, NULL, 10) : 0;
	int rc;
	uint64_t started;

	ast_variables_destroy(set);
	local_drop(id);
	/* An expired contact is already gone from the overlay; the slot may hold a
	 * refresh made through another server since, which must stay. */
	if(request.mirror_only || (expires_at > 0 && expires_at <= time(NULL)))
		return 0;
	if(!split_id(id, aor, sizeof aor, &label))
		return 0;
	if(out_of_order(label)) {
		COUNT(out_of_order, 1);
		fail(CHORDSIP_ERR_OUT_OF_ORDER);
		return 0;
	}
	overlay_key(aor, key, sizeof key);
	started = now_us();
	pthread_rwlock_rdlock(&node_lock);
	rc = node ? chordsip_node_remove(node, key, label, NULL) : CHORDSIP_ERR_SHUTDOWN;
	pthread_rwlock_unlock(&node_lock);
	count_latency(&counters.us_remove, started);
	COUNT(removes, 1);
	if(rc != CHORDSIP_OK && rc != CHORDSIP_ERR_NOT_FOUND) {
		COUNT(remove_errors, 1);
		fail(rc);
		ast_log(LOG_WARNING, "chordsip: removing contact %s failed: %s\n", id,
				chordsip_result_str(rc));
		return -1;
	}
	return 0;
}

/* Reads an AOR's contacts from the overlay into `objects` (and the one named
 * `only_label` into *found, when given). Returns 0, or -1 when the overlay
 * did not answer. */
static int read_aor(const struct ast_sorcery *sorcery, const char *type, const char *aor,
		struct ao2_container *objects, const char *only_label, void **found)
{
	char key[MAX_ID + 160], id[MAX_ID];
	chordsip_values *values = NULL;
	size_t i, n;
	time_t now = time(NULL);
	uint64_t started = now_us();
	int rc;

	overlay_key(aor, key, sizeof key);
	pthread_rwlock_rdlock(&node_lock);
	rc = node ? chordsip_node_get(node, key, &values) : CHORDSIP_ERR_SHUTDOWN;
	count_latency(&counters.us_get, started);
	COUNT(gets, 1);
	if(rc != CHORDSIP_OK) {
		pthread_rwlock_unlock(&node_lock);
		COUNT(get_errors, 1);
		fail(rc);
		ast_log(LOG_WARNING, "chordsip: reading the contacts of %s failed: %s\n", aor,
				chordsip_result_str(rc));
		return -1;
	}
	n = chordsip_values_len(values);
	for(i = 0; i < n; i++) {
		chordsip_value v;
		uint32_t trusted = 0;
		struct ast_variable *set;
		void *object;
		time_t expires_at;
		if(chordsip_values_get(values, i, &v) != CHORDSIP_OK)
			continue;
		if(chordsip_node_writer_trusted(node, v.owner, &trusted) != CHORDSIP_OK || !trusted) {
			COUNT(untrusted, 1);
			continue;
		}
		if(only_label && strcmp(v.writer, only_label))
			continue;
		if(snprintf(id, sizeof id, "%s;@%s", aor, v.writer) >= (int)sizeof id)
			continue;
		set = parse_record((const char *)v.data, v.data_len);
		remember_seen(v.writer, set);
		expires_at = now + (time_t)((v.expires_in_ms + 999) / 1000);
		object = object_from_set(sorcery, type, id, set, expires_at);
		if(object == NULL)
			continue;
		if(found) {
			*found = object;
			break;
		}
		ao2_link(objects, object);
		ao2_ref(object, -1);
	}
	pthread_rwlock_unlock(&node_lock);
	chordsip_values_free(values);
	return 0;
}

static void *wizard_retrieve_id(const struct ast_sorcery *sorcery, void *data, const char *type,
		const char *id)
{
	char aor[MAX_ID];
	const char *label;
	void *found = NULL;
	if(!split_id(id, aor, sizeof aor, &label))
		return NULL;
	read_aor(sorcery, type, aor, NULL, label, &found);
	return found;
}

/* Builds objects from the local record for the queries the overlay cannot
 * answer: `regex` or `fields` select (both NULL: every contact). */
static void *local_query(const struct ast_sorcery *sorcery, const char *type,
		struct ao2_container *objects, const char *prefix, regex_t *regex,
		const struct ast_variable *fields)
{
	struct ao2_iterator it;
	struct local_entry *e;
	void *first = NULL;
	time_t now = time(NULL);
	size_t plen = prefix ? strlen(prefix) : 0;

	ao2_callback(local_record, OBJ_UNLINK | OBJ_MULTIPLE | OBJ_NODATA, local_prune_cb, &now);
	it = ao2_iterator_init(local_record, 0);
	while(first == NULL && (e = ao2_iterator_next(&it))) {
		void *object = NULL;
		struct ast_variable *set = NULL;
		int match = (!prefix || !strncmp(e->id, prefix, plen))
				&& (!regex || !regexec(regex, e->id, 0, NULL, 0));
		if(match)
			object = object_from_record(sorcery, type, e->id, e->record, strlen(e->record), e->expires_at);
		if(object && fields) {
			set = ast_sorcery_objectset_create(sorcery, object);
			match = set && ast_variable_lists_match(set, fields, 0);
			ast_variables_destroy(set);
		}
		if(object && match) {
			if(objects)
				ao2_link(objects, object);
			else
				first = ao2_bump(object);
		}
		ao2_cleanup(object);
		ao2_ref(e, -1);
	}
	ao2_iterator_destroy(&it);
	return first;
}

void *chordsip_ast_local_object(const struct ast_sorcery *sorcery, const char *type, const char *id)
{
	struct local_entry *e = ao2_find(local_record, id, OBJ_SEARCH_KEY);
	void *object = NULL;
	if(e) {
		object = object_from_record(sorcery, type, e->id, e->record, strlen(e->record), e->expires_at);
		ao2_ref(e, -1);
	}
	return object;
}

static void *wizard_retrieve_fields(const struct ast_sorcery *sorcery, void *data,
		const char *type, const struct ast_variable *fields)
{
	if(fields == NULL)
		return NULL;
	return local_query(sorcery, type, NULL, NULL, NULL, fields);
}

static void wizard_retrieve_multiple(const struct ast_sorcery *sorcery, void *data,
		const char *type, struct ao2_container *objects, const struct ast_variable *fields)
{
	local_query(sorcery, type, objects, NULL, NULL, fields);
}

static void wizard_retrieve_regex(const struct ast_sorcery *sorcery, void *data, const char *type,
		struct ao2_container *objects, const char *regex)
{
	regex_t expression;
	if(regcomp(&expression, ast_strlen_zero(regex) ? "." : regex, REG_EXTENDED | REG_NOSUB))
		return;
	local_query(sorcery, type, objects, NULL, &expression, NULL);
	regfree(&expression);
}

/* "<aor>;@" is what the registrar, Dial and the CLI ask: the overlay answers
 * it. Any other prefix is answered from the local record. */
static void wizard_retrieve_prefix(const struct ast_sorcery *sorcery, void *data,
		const char *type, struct ao2_container *objects, const char *prefix,
		const size_t prefix_len)
{
	char aor[MAX_ID];
	if(prefix_len > 2 && prefix_len < sizeof aor && !strcmp(prefix + prefix_len - 2, ";@")
			&& strstr(prefix, ";@") == prefix + prefix_len - 2) {
		memcpy(aor, prefix, prefix_len - 2);
		aor[prefix_len - 2] = 0;
		read_aor(sorcery, type, aor, objects, NULL, NULL);
		return;
	}
	local_query(sorcery, type, objects, prefix, NULL, NULL);
}

static void *wizard_open(const char *data)
{
	if(node == NULL) {
		ast_log(LOG_ERROR, "chordsip: no node (see the errors above about %s)\n", CONFIG_FILE);
		return NULL;
	}
	if(!ast_strlen_zero(data))
		ast_log(LOG_WARNING, "chordsip: wizard options '%s' ignored: settings live in %s\n",
				data, CONFIG_FILE);
	return ao2_bump(local_record);
}

static void wizard_close(void *data)
{
	ao2_cleanup(data);
}

static struct ast_sorcery_wizard chordsip_wizard = {
	.name = "chordsip",
	.open = wizard_open,
	.create = wizard_create,
	.retrieve_id = wizard_retrieve_id,
	.retrieve_fields = wizard_retrieve_fields,
	.retrieve_multiple = wizard_retrieve_multiple,
	.retrieve_regex = wizard_retrieve_regex,
	.retrieve_prefix = wizard_retrieve_prefix,
	.update = wizard_update,
	.delete = wizard_delete,
	.close = wizard_close,
};

/* ---- CLI ------------------------------------------------------------------- */

static char *cli_status(struct ast_cli_entry *e, int cmd, struct ast_cli_args *a)
{
	char addr[64] = "", id[41] = "";
	chordsip_peers *succs = NULL, *preds = NULL;
	chordsip_stats s;
	uint64_t puts, gets, removes;
	switch(cmd) {
	case CLI_INIT:
		e->command = "chordsip show status";
		e->usage = "Usage: chordsip show status\n"
				   "       This server's overlay node, its counters and the wizard's.\n";
		return NULL;
	case CLI_GENERATE:
		return NULL;
	}
	pthread_rwlock_rdlock(&node_lock);
	if(node == NULL || chordsip_node_stats(node, &s) != CHORDSIP_OK) {
		pthread_rwlock_unlock(&node_lock);
		ast_cli(a->fd, "no chordsip node (stopped)\n");
		return CLI_FAILURE;
	}
	chordsip_node_addr(node, addr, sizeof addr);
	chordsip_node_id(node, id, sizeof id);
	chordsip_node_neighbours(node, CHORDSIP_SUCCESSORS, &succs);
	chordsip_node_neighbours(node, CHORDSIP_PREDECESSORS, &preds);
	pthread_rwlock_unlock(&node_lock);
	puts = counters.puts ? counters.puts : 1;
	gets = counters.gets ? counters.gets : 1;
	removes = counters.removes ? counters.removes : 1;
	ast_cli(a->fd, "node %s id %s joined %u\n", addr, id, s.joined);
	ast_cli(a->fd, "successors %zu predecessors %zu\n", chordsip_peers_len(succs),
			chordsip_peers_len(preds));
	chordsip_peers_free(succs);
	chordsip_peers_free(preds);
	ast_cli(a->fd, "stored keys %lu entries %lu\n", (unsigned long)s.stored_keys,
			(unsigned long)s.stored_entries);
	ast_cli(a->fd, "local record %d contacts\n", ao2_container_count(local_record));
	ast_cli(a->fd, "puts %lu (errors %lu, mean %lu us)\n", (unsigned long)counters.puts,
			(unsigned long)counters.put_errors, (unsigned long)(counters.us_put / puts));
	ast_cli(a->fd, "gets %lu (errors %lu, mean %lu us)\n", (unsigned long)counters.gets,
			(unsigned long)counters.get_errors, (unsigned long)(counters.us_get / gets));
	ast_cli(a->fd, "removes %lu (errors %lu, mean %lu us)\n", (unsigned long)counters.removes,
			(unsigned long)counters.remove_errors, (unsigned long)(counters.us_remove / removes));
	ast_cli(a->fd, "slowest call %lu us; untrusted entries skipped %lu; out of order %lu\n",
			(unsigned long)counters.max_us, (unsigned long)counters.untrusted,
			(unsigned long)counters.out_of_order);
	return CLI_SUCCESS;
}

static struct ast_cli_entry cli_entries[] = {
	AST_CLI_DEFINE(cli_status, "Show the chordsip node and the wizard's counters"),
};

/* ---- load / unload --------------------------------------------------------- */

static void library_log(uint32_t level, const char *message, void *user_data)
{
	if(level <= 1)
		ast_log(LOG_ERROR, "chordsip: %s\n", message);
	else if(level == 2)
		ast_log(LOG_WARNING, "chordsip: %s\n", message);
	else if(level == 3)
		ast_log(LOG_NOTICE, "chordsip: %s\n", message);
	else
		ast_debug(1, "chordsip: %s\n", message);
}

static int read_file(const char *path, unsigned char *buf, size_t cap, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	char extra;
	int more;
	if(fd < 0) {
		ast_log(LOG_ERROR, "chordsip: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = read(fd, buf, cap);
	more = n == (ssize_t)cap && read(fd, &extra, 1) > 0;
	close(fd);
	while(n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if(n <= 0 || more) {
		ast_log(LOG_ERROR, "chordsip: %s must hold 1 to %zu bytes\n", path, cap);
		return -1;
	}
	*len = (size_t)n;
	return 0;
}

static int set_option(chordsip_config *cfg, const char *name, const char *value)
{
	char err[256] = "";
	int rc = chordsip_config_set(cfg, name, value, err, sizeof err);
	if(rc != CHORDSIP_OK) {
		ast_log(LOG_ERROR, "chordsip: %s %s=%s: %s %s\n", CONFIG_FILE, name, value,
				chordsip_result_str(rc), err);
		return -1;
	}
	return 0;
}

/* Reads chordsip.conf's [general] into a node configuration. */
static chordsip_config *read_config(void)
{
	struct ast_flags flags = {0};
	struct ast_config *file = ast_config_load2(CONFIG_FILE, "res_sorcery_chordsip", flags);
	struct ast_variable *v;
	chordsip_config *cfg = NULL;
	int ok = 1, have_listen = 0, have_writer = 0;
	char number[32];

	if(file == NULL || file == CONFIG_STATUS_FILEMISSING || file == CONFIG_STATUS_FILEINVALID) {
		ast_log(LOG_ERROR, "chordsip: %s is missing or invalid\n", CONFIG_FILE);
		return NULL;
	}
	if(chordsip_config_new(&cfg) != CHORDSIP_OK) {
		ast_config_destroy(file);
		return NULL;
	}
	for(v = ast_variable_browse(file, "general"); v && ok; v = v->next) {
		if(!strcasecmp(v->name, "bootstrap")) {
			ast_copy_string(bootstrap, v->value, sizeof bootstrap);
		} else if(!strcasecmp(v->name, "namespace")) {
			if(ast_strlen_zero(v->value) || strchr(v->value, ':')) {
				ast_log(LOG_ERROR, "chordsip: namespace must be a non-empty name without ':'\n");
				ok = 0;
			} else {
				ast_copy_string(namespace_, v->value, sizeof namespace_);
			}
		} else if(!strcasecmp(v->name, "timeout_ms")) {
			timeout_ms = (unsigned int)strtoul(v->value, NULL, 10);
			ok = timeout_ms >= 50 && timeout_ms <= 30000;
			if(!ok)
				ast_log(LOG_ERROR, "chordsip: timeout_ms must be 50 to 30000\n");
		} else if(!strcasecmp(v->name, "leave_timeout_ms")) {
			leave_timeout_ms = (unsigned int)strtoul(v->value, NULL, 10);
		} else if(!strcasecmp(v->name, "key_file")) {
			unsigned char key[1024];
			size_t len = 0;
			ok = read_file(v->value, key, sizeof key, &len) == 0
				 && chordsip_config_set_overlay_key(cfg, key, len) == CHORDSIP_OK;
		} else if(!strcasecmp(v->name, "log_level")) {
			static const char *levels[] = {"off", "error", "warn", "info", "debug", "trace"};
			int found = -1;
			for(int i = 0; i < (int)ARRAY_LEN(levels); i++)
				if(!strcasecmp(v->value, levels[i]))
					found = i;
			if(found < 0) {
				ast_log(LOG_ERROR, "chordsip: log_level must be off, error, warn, info, debug or trace\n");
				ok = 0;
			} else {
				log_level = (uint32_t)found;
			}
		} else if(!strcasecmp(v->name, "mirror_interval_s")) {
			/* res_pjsip_chordsip's. */
		} else if(!strcasecmp(v->name, "set")) {
			/* `set = name=value`: any library option. */
			char *copy = ast_strdupa(v->value), *eq = strchr(copy, '=');
			if(eq == NULL) {
				ast_log(LOG_ERROR, "chordsip: set = %s: expected name=value\n", v->value);
				ok = 0;
			} else {
				*eq = 0;
				ok = set_option(cfg, ast_strip(copy), ast_strip(eq + 1)) == 0;
			}
		} else if(!strcasecmp(v->name, "listen") || !strcasecmp(v->name, "advertise")
				   || !strcasecmp(v->name, "overlay") || !strcasecmp(v->name, "writer_key_file")
				   || !strcasecmp(v->name, "trusted_writers")
				   || !strcasecmp(v->name, "open_overlay")
				   || !strcasecmp(v->name, "replicas") || !strcasecmp(v->name, "node_key_file")) {
			have_listen |= !strcasecmp(v->name, "listen");
			have_writer |= !strcasecmp(v->name, "writer_key_file");
			ok = set_option(cfg, v->name, v->value) == 0;
		} else {
			ast_log(LOG_ERROR, "chordsip: %s: unknown setting '%s'\n", CONFIG_FILE, v->name);
			ok = 0;
		}
	}
	ast_config_destroy(file);
	if(ok && !have_listen) {
		ast_log(LOG_ERROR, "chordsip: %s needs listen = ip:port\n", CONFIG_FILE);
		ok = 0;
	}
	if(ok && !have_writer) {
		/* Without a shared writer key each server signs with a key of its own:
		 * no server could refresh, remove or even trust another's contacts. */
		ast_log(LOG_ERROR, "chordsip: %s needs writer_key_file (`chordsip keygen`), the same "
						   "on every server\n", CONFIG_FILE);
		ok = 0;
	}
	snprintf(number, sizeof number, "%u", timeout_ms);
	ok = ok && set_option(cfg, "op_timeout_ms", number) == 0;
	ok = ok && chordsip_config_set_log_callback(cfg, log_level, library_log, NULL) == CHORDSIP_OK;
	if(!ok) {
		chordsip_config_free(cfg);
		return NULL;
	}
	return cfg;
}

/* Joins through `bootstrap` (or starts a ring when it is empty), retrying
 * every second: peers may boot in any order. */
static void *join_loop(void *arg)
{
	unsigned int attempts = 0;
	while(!stopping) {
		int rc = chordsip_node_join(node, bootstrap[0] ? bootstrap : NULL);
		if(rc == CHORDSIP_OK) {
			__atomic_store_n(&joined, 1, __ATOMIC_RELEASE);
			ast_log(LOG_NOTICE, "chordsip: joined the overlay%s%s\n",
					bootstrap[0] ? " through " : " (new ring)", bootstrap);
			return NULL;
		}
		if(attempts++ % 30 == 0)
			ast_log(LOG_WARNING, "chordsip: joining through %s failed (%s); retrying\n",
					bootstrap, chordsip_result_str(rc));
		if(rc != CHORDSIP_ERR_JOIN_FAILED && rc != CHORDSIP_ERR_TIMEOUT
				&& rc != CHORDSIP_ERR_NO_ROUTE)
			return NULL;
		for(int i = 0; i < 10 && !stopping; i++)
			usleep(100000);
	}
	return NULL;
}

/* Hands this node's keys to its neighbours and stops it. Runs at unload and
 * at Asterisk's exit, whatever the shutdown's niceness (`core stop now` and
 * SIGTERM unload no module; only `kill -9` skips it). */
static void leave_overlay(void)
{
	stopping = 1;
	if(join_thread != AST_PTHREADT_NULL) {
		pthread_join(join_thread, NULL);
		join_thread = AST_PTHREADT_NULL;
	}
	pthread_rwlock_wrlock(&node_lock);
	if(node) {
		if(joined) {
			int rc = chordsip_node_leave(node, leave_timeout_ms);
			/* the logger may be gone at exit: also say it on the console */
			ast_log(LOG_NOTICE, "chordsip: left the overlay: %s\n", chordsip_result_str(rc));
			ast_verb(0, "chordsip: left the overlay: %s\n", chordsip_result_str(rc));
		}
		chordsip_node_free(node);
		node = NULL;
	}
	__atomic_store_n(&joined, 0, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&node_lock);
}

static int unload_module(void)
{
	ast_unregister_atexit(leave_overlay);
	ast_cli_unregister_multiple(cli_entries, ARRAY_LEN(cli_entries));
	ast_sorcery_wizard_unregister(&chordsip_wizard);
	leave_overlay();
	ao2_cleanup(local_record);
	local_record = NULL;
	return 0;
}

static int load_module(void)
{
	char err[256] = "";
	chordsip_config *cfg;
	int rc;

	stopping = 0;
	local_record = ao2_container_alloc_hash(AO2_ALLOC_OPT_LOCK_MUTEX, 0, LOCAL_BUCKETS,
			local_hash, NULL, local_cmp);
	if(local_record == NULL)
		return AST_MODULE_LOAD_DECLINE;
	cfg = read_config();
	if(cfg == NULL) {
		unload_module();
		return AST_MODULE_LOAD_DECLINE;
	}
	rc = chordsip_node_new(cfg, &node, err, sizeof err);
	chordsip_config_free(cfg);
	if(rc == CHORDSIP_OK)
		rc = chordsip_node_start(node);
	if(rc != CHORDSIP_OK) {
		ast_log(LOG_ERROR, "chordsip: cannot start the node: %s %s\n", chordsip_result_str(rc), err);
		unload_module();
		return AST_MODULE_LOAD_DECLINE;
	}
	if(ast_pthread_create(&join_thread, NULL, join_loop, NULL)) {
		unload_module();
		return AST_MODULE_LOAD_DECLINE;
	}
	if(ast_sorcery_wizard_register(&chordsip_wizard)) {
		unload_module();
		return AST_MODULE_LOAD_DECLINE;
	}
	ast_cli_register_multiple(cli_entries, ARRAY_LEN(cli_entries));
	ast_register_atexit(leave_overlay);
	return AST_MODULE_LOAD_SUCCESS;
}

AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_GLOBAL_SYMBOLS | AST_MODFLAG_LOAD_ORDER,
		"chordsip overlay sorcery wizard (PJSIP contacts without a database)",
		.support_level = AST_MODULE_SUPPORT_EXTENDED,
		.load = load_module,
		.unload = unload_module,
		.load_pri = AST_MODPRI_REALTIME_DRIVER,
);
