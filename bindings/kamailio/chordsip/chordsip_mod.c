/*
 * chordsip: Kamailio keeps its registrations in a chordsip overlay instead of
 * usrloc. Several Kamailio servers loading this module form one registrar
 * with no shared database.
 *
 * Process model (Kamailio forks its SIP workers from the main process, and a
 * thread started before a fork exists only in the parent):
 *   - mod_init (main) reserves one extra process;
 *   - child_init(PROC_MAIN) forks it: the "chordsip overlay node" process
 *     creates the node (the library's threads live only there), joins the
 *     overlay, serves the node's UNIX client socket, and on SIGTERM (which
 *     Kamailio's main sends at shutdown) leaves the overlay gracefully;
 *   - SIP workers and RPC processes reach the node through thread-free
 *     chordsip client handles over that socket, each call bounded by the
 *     `timeout` parameter. Abrupt death loses nothing: every binding has
 *     `replicas` copies on other nodes.
 *
 * Script functions mirror the registrar module: chordsip_save() (1 inserted,
 * 2 updated, 3 deleted, 4 contacts returned; the reply is sent) and
 * chordsip_lookup() (1 found, -1 not found, -3 internal error).
 * chordsip_ha1(user, realm, $var) loads a user's digest HA1, stored in the
 * overlay by an administrator (`chordsip user add`), for the auth module's
 * pv_www_authenticate(realm, $var, 1): 1 found, -1 no such user, -2 bad
 * arguments, -3 internal error.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <chordsip.h>

#include "../../core/sr_module.h"
#include "../../core/dprint.h"
#include "../../core/mem/mem.h"
#include "../../core/ut.h"
#include "../../core/pt.h"
#include "../../core/globals.h"
#include "../../core/dset.h"
#include "../../core/counters.h"
#include "../../core/rpc.h"
#include "../../core/rpc_lookup.h"
#include "../../core/kemi.h"
#include "../../core/mod_fix.h"
#include "../../core/pvar.h"
#include "../../core/lvalue.h"
#include "../../core/data_lump_rpl.h"
#include "../../core/cfg/cfg_struct.h"
#include "../../core/parser/msg_parser.h"
#include "../../core/parser/parse_to.h"
#include "../../core/parser/parse_uri.h"
#include "../../core/parser/parse_cseq.h"
#include "../../core/parser/parse_expires.h"
#include "../../core/parser/parse_supported.h"
#include "../../core/parser/contact/parse_contact.h"
#include "../../modules/sl/sl.h"

MODULE_VERSION

/* Limits of one REGISTER: CHORDSIP_MAX_CONTACTS contacts and CHORDSIP_MAX_PATH
 * Path values (the library refuses more as too large), FIELD_MAX bytes a field. */
#define FIELD_MAX 1100

/* ---- module parameters ------------------------------------------------ */

static char *p_listen = "127.0.0.1:5070";
static char *p_advertise = "";
static char *p_bootstrap = "";
static char *p_overlay = "chordsip";
static char *p_key_file = "";
static char *p_writer_key_file = ""; /* `chordsip keygen`: who may change our bindings */
static char *p_client_key_file = ""; /* credential of client handles over UDP (e.g. the CLI) */
static char *p_trusted_writers = ""; /* public keys whose entries keep room under every AOR */
static int p_open_overlay = 0;       /* 1: off loopback without key_file (anyone may join) */
static char *p_socket = "";
static char *p_log_level = "warn";
static int p_replicas = 3;
static int p_op_timeout = 1500;   /* ms: the node's lookups and storage calls */
static int p_timeout = 2000;      /* ms: the longest a worker waits for one call */
static int p_leave_timeout = 2000; /* ms: graceful leave at shutdown */
/* SIP digest credentials in the overlay (chordsip_ha1) */
static char *p_credentials_key_file = ""; /* `chordsip keygen`: opens the records */
static char *p_credential_admins = "";    /* public keys whose records count */
static char *p_digest_algorithm = "MD5";  /* as auth's "algorithm" parameter */

/* "set": any other node setting, `name=value` (chordsip_config_set's names),
 * one per modparam line, applied in order after the settings above. */
typedef struct node_setting {
	char *name;
	char *value;
	struct node_setting *next;
} node_setting_t;
static node_setting_t *p_settings;
static node_setting_t **p_settings_tail = &p_settings;
static int set_param(modparam_t type, void *val);

static param_export_t params[] = {
	{"set", PARAM_STRING | USE_FUNC_PARAM, (void *)set_param},
	{"listen", PARAM_STRING, &p_listen},
	{"advertise", PARAM_STRING, &p_advertise},
	{"bootstrap", PARAM_STRING, &p_bootstrap},
	{"overlay", PARAM_STRING, &p_overlay},
	{"key_file", PARAM_STRING, &p_key_file},
	{"writer_key_file", PARAM_STRING, &p_writer_key_file},
	{"client_key_file", PARAM_STRING, &p_client_key_file},
	{"trusted_writers", PARAM_STRING, &p_trusted_writers},
	{"open_overlay", PARAM_INT, &p_open_overlay},
	{"socket", PARAM_STRING, &p_socket},
	{"log_level", PARAM_STRING, &p_log_level},
	{"replicas", PARAM_INT, &p_replicas},
	{"lookup_timeout", PARAM_INT, &p_op_timeout},
	{"timeout", PARAM_INT, &p_timeout},
	{"leave_timeout", PARAM_INT, &p_leave_timeout},
	{"credentials_key_file", PARAM_STRING, &p_credentials_key_file},
	{"credential_admins", PARAM_STRING, &p_credential_admins},
	{"digest_algorithm", PARAM_STRING, &p_digest_algorithm},
	{0, 0, 0}
};

/* ---- state -------------------------------------------------------------- */

static char socket_path[256];
static unsigned char overlay_key[1024];
static size_t overlay_key_len;
/* The credentials key as 64 hex digits (read in mod_init, before the fork). */
#define CREDENTIALS_KEY_HEX 64
static char credentials_key[CREDENTIALS_KEY_HEX + 1];
static uint32_t digest_algorithm = CHORDSIP_DIGEST_MD5;
static sl_api_t slb;

/* The client handle of this process (created lazily, after the fork). */
static chordsip_client *client;
static pid_t client_pid;

static counter_handle_t cnt_saves, cnt_lookups, cnt_not_found, cnt_errors, cnt_slow;
static counter_handle_t cnt_ha1_found, cnt_ha1_unknown;
static counter_def_t counters[] = {
	{&cnt_ha1_found, "ha1_found", 0, 0, 0, "chordsip_ha1 calls that loaded an HA1"},
	{&cnt_ha1_unknown, "ha1_unknown", 0, 0, 0, "chordsip_ha1 calls for no such user"},
	{&cnt_saves, "saves", 0, 0, 0, "REGISTERs handled by chordsip_save"},
	{&cnt_lookups, "lookups", 0, 0, 0, "chordsip_lookup calls that found a contact"},
	{&cnt_not_found, "not_found", 0, 0, 0, "chordsip_lookup calls for an AOR with no contact"},
	{&cnt_errors, "errors", 0, 0, 0, "calls the overlay could not answer"},
	{&cnt_slow, "slow_calls", 0, 0, 0, "calls that took longer than the timeout parameter"},
	{0, 0, 0, 0, 0, 0}
};

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Counts a call that overran the configured bound (the tests require none). */
static void note_duration(const char *what, double started)
{
	double took = now_ms() - started;
	if(took > p_timeout) {
		counter_inc(cnt_slow);
		LM_WARN("%s took %.0f ms (timeout %d ms)\n", what, took, p_timeout);
	}
}

static chordsip_client *get_client(void)
{
	if(client != NULL && client_pid == getpid())
		return client;
	/* A handle inherited through a fork belongs to the parent: the library
	 * refuses it (CHORDSIP_ERR_FORKED); leave it to the parent. */
	client = NULL;
	char peer[sizeof socket_path + 8];
	snprintf(peer, sizeof peer, "unix:%s", socket_path);
	int rc = chordsip_client_new(peer, p_overlay, overlay_key_len ? overlay_key : NULL,
			overlay_key_len, (uint32_t)p_timeout, &client);
	if(rc != CHORDSIP_OK) {
		LM_ERR("cannot create a chordsip client for %s: %s\n", peer,
				chordsip_result_str(rc));
		client = NULL;
		return NULL;
	}
	client_pid = getpid();
	/* The credentials key stays in this process: the handle opens the
	 * sealed records itself. Without it chordsip_ha1() answers -3. */
	if(credentials_key[0]) {
		rc = chordsip_client_set_credential_trust(client, credentials_key,
				p_credential_admins);
		if(rc != CHORDSIP_OK)
			LM_ERR("cannot give the client handle the credentials key: %s\n",
					chordsip_result_str(rc));
	}
	return client;
}

/* ---- the overlay node process ------------------------------------------ */

static volatile sig_atomic_t node_stop;

static void on_stop(int sig)
{
	(void)sig;
	node_stop = 1;
}

/* The log_level parameter as the library's level (0 off .. 5 trace). */
static int log_level(void)
{
	static const char *names[] = {"off", "error", "warn", "info", "debug", "trace"};
	for(int i = 0; i < 6; i++)
		if(strcasecmp(p_log_level, names[i]) == 0)
			return i;
	return -1;
}

static void on_log(uint32_t level, const char *message, void *ud)
{
	(void)ud;
	switch(level) {
		case 1:
			LM_ERR("overlay: %s\n", message);
			break;
		case 2:
			LM_WARN("overlay: %s\n", message);
			break;
		case 3:
			LM_INFO("overlay: %s\n", message);
			break;
		default:
			LM_DBG("overlay: %s\n", message);
	}
}

static int set_opt(chordsip_config *cfg, const char *name, const char *value)
{
	char err[256];
	int rc = chordsip_config_set(cfg, name, value, err, sizeof err);
	if(rc != CHORDSIP_OK) {
		LM_ERR("chordsip option %s=%s: %s (%s)\n", name, value,
				chordsip_result_str(rc), err);
		return -1;
	}
	return 0;
}

static int set_int_opt(chordsip_config *cfg, const char *name, int value)
{
	char text[32];
	snprintf(text, sizeof text, "%d", value);
	return set_opt(cfg, name, text);
}

/* Names the module sets from its own parameters: `set` refuses them, so
 * that one setting has one place (the parameter to use instead). */
static const char *owned_setting(const char *name)
{
	static const char *owned[][2] = {{"listen", "listen"}, {"advertise", "advertise"},
			{"overlay", "overlay"}, {"client_socket", "socket"},
			{"writer_key_file", "writer_key_file"}, {"client_key_file", "client_key_file"},
			{"trusted_writers", "trusted_writers"}, {"open_overlay", "open_overlay"},
			{"replicas", "replicas"}, {"op_timeout_ms", "lookup_timeout"},
			{"log_level", "log_level"}, {"credentials_key", "credentials_key_file"},
			{"credential_admins", "credential_admins"}};
	for(size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
		if(strcmp(name, owned[i][0]) == 0)
			return owned[i][1];
	return NULL;
}

/* modparam("chordsip", "set", "name=value"): checked at once with the
 * library's own parser (so a bad name or value stops Kamailio while it reads
 * the cfg, with the library's reason), kept, and applied when the node's
 * configuration is built. */
static int set_param(modparam_t type, void *val)
{
	const char *text = (const char *)val;
	(void)type;
	/* what the log shows of the line: no secret (dns_key, writer_key...) */
	const char *shown = text && strstr(text, "key") && !strstr(text, "_file") ? "<secret>" : text;
	const char *eq = text ? strchr(text, '=') : NULL;
	if(eq == NULL) {
		LM_ERR("modparam set \"%s\": expected name=value (e.g. \"routing=one-hop\")\n",
				shown ? shown : "");
		return -1;
	}
	const char *a = text, *b = eq;
	while(a < b && (*a == ' ' || *a == '\t'))
		a++;
	while(b > a && (b[-1] == ' ' || b[-1] == '\t'))
		b--;
	if(a == b) {
		LM_ERR("modparam set \"%s\": no setting name before '='\n", shown);
		return -1;
	}
	size_t nlen = (size_t)(b - a), vlen = strlen(eq + 1);
	node_setting_t *s = pkg_malloc(sizeof *s + nlen + 1 + vlen + 1);
	if(s == NULL) {
		PKG_MEM_ERROR;
		return -1;
	}
	s->name = (char *)(s + 1);
	memcpy(s->name, a, nlen);
	s->name[nlen] = 0;
	s->value = s->name + nlen + 1;
	memcpy(s->value, eq + 1, vlen + 1);
	s->next = NULL;
	const char *instead = owned_setting(s->name);
	if(instead) {
		LM_ERR("modparam set \"%s\": use modparam(\"chordsip\", \"%s\", ...) for this "
			   "setting\n",
				shown, instead);
		pkg_free(s);
		return -1;
	}
	chordsip_config *cfg = NULL;
	char err[256] = "";
	int rc = chordsip_config_new(&cfg);
	if(rc == CHORDSIP_OK)
		rc = chordsip_config_set(cfg, s->name, s->value, err, sizeof err);
	chordsip_config_free(cfg);
	if(rc != CHORDSIP_OK) {
		LM_ERR("modparam set \"%s\": %s\n", shown, err[0] ? err : chordsip_result_str(rc));
		pkg_free(s);
		return -1;
	}
	*p_settings_tail = s;
	p_settings_tail = &s->next;
	return 0;
}

/* The `set` settings, in order. */
static int apply_settings(chordsip_config *cfg)
{
	for(node_setting_t *s = p_settings; s; s = s->next)
		if(set_opt(cfg, s->name, s->value) < 0)
			return -1;
	return 0;
}

static chordsip_node *create_node(void)
{
	chordsip_config *cfg = NULL;
	chordsip_node *node = NULL;
	char err[256];
	if(chordsip_config_new(&cfg) != CHORDSIP_OK)
		return NULL;
	int ok = set_opt(cfg, "listen", p_listen) == 0
			 && (p_advertise[0] == 0 || set_opt(cfg, "advertise", p_advertise) == 0)
			 && set_opt(cfg, "overlay", p_overlay) == 0
			 && set_opt(cfg, "client_socket", socket_path) == 0
			 && (p_writer_key_file[0] == 0
					 || set_opt(cfg, "writer_key_file", p_writer_key_file) == 0)
			 && (p_client_key_file[0] == 0
					 || set_opt(cfg, "client_key_file", p_client_key_file) == 0)
			 && (p_trusted_writers[0] == 0
					 || set_opt(cfg, "trusted_writers", p_trusted_writers) == 0)
			 && set_opt(cfg, "open_overlay", p_open_overlay ? "true" : "false") == 0
			 && set_int_opt(cfg, "replicas", p_replicas) == 0
			 && set_int_opt(cfg, "op_timeout_ms", p_op_timeout) == 0
			 && apply_settings(cfg) == 0;
	if(ok && overlay_key_len > 0)
		ok = chordsip_config_set_overlay_key(cfg, overlay_key, overlay_key_len)
			 == CHORDSIP_OK;
	if(ok)
		ok = chordsip_config_set_log_callback(cfg, (uint32_t)log_level(), on_log, NULL)
			 == CHORDSIP_OK;
	if(ok) {
		int rc = chordsip_node_new(cfg, &node, err, sizeof err);
		if(rc != CHORDSIP_OK) {
			LM_ERR("cannot create the overlay node: %s (%s)\n",
					chordsip_result_str(rc), err);
			node = NULL;
		}
	}
	chordsip_config_free(cfg);
	return node;
}

/* Sleeps up to ms, waking early when asked to stop. */
static void nap(int ms)
{
	while(ms > 0 && !node_stop) {
		int step = ms < 100 ? ms : 100;
		poll(NULL, 0, step);
		ms -= step;
	}
}

static void node_process(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);

	chordsip_node *node = create_node();
	if(node == NULL)
		_exit(1); /* Kamailio's main sees the child die and shuts down */
	/* An empty bootstrap starts a new ring; otherwise keep trying until a
	 * peer answers (the others may still be starting). */
	const char *boot = p_bootstrap[0] ? p_bootstrap : NULL;
	int joined = 0, attempts = 0;
	while(!node_stop && !joined) {
		int rc = chordsip_node_join(node, boot);
		if(rc == CHORDSIP_OK) {
			joined = 1;
			char addr[64] = "";
			chordsip_node_addr(node, addr, sizeof addr);
			LM_INFO("overlay node %s joined %s (client socket %s)\n", addr,
					boot ? boot : "a new ring", socket_path);
		} else {
			if(++attempts == 5)
				LM_WARN("still no answer from bootstrap %s: %s; retrying\n", boot,
						chordsip_result_str(rc));
			nap(1000);
		}
	}
	while(!node_stop)
		nap(1000);
	if(joined) {
		int rc = chordsip_node_leave(node, (uint32_t)p_leave_timeout);
		if(rc == CHORDSIP_OK)
			LM_INFO("overlay node left the ring\n");
		else
			LM_WARN("graceful leave: %s\n", chordsip_result_str(rc));
	}
	chordsip_node_free(node);
	_exit(0);
}

/* ---- module life cycle -------------------------------------------------- */

static int read_key_file(void)
{
	if(p_key_file[0] == 0)
		return 0;
	int fd = open(p_key_file, O_RDONLY | O_CLOEXEC);
	if(fd < 0) {
		LM_ERR("cannot open key_file %s: %s\n", p_key_file, strerror(errno));
		return -1;
	}
	ssize_t n = read(fd, overlay_key, sizeof overlay_key);
	char extra;
	int more = n == (ssize_t)sizeof overlay_key && read(fd, &extra, 1) > 0;
	close(fd);
	/* A trailing newline from an editor or `echo` is not part of the key. */
	while(n > 0 && (overlay_key[n - 1] == '\n' || overlay_key[n - 1] == '\r'))
		n--;
	if(n <= 0 || more) {
		LM_ERR("key_file %s must hold 1 to %zu bytes\n", p_key_file, sizeof overlay_key);
		return -1;
	}
	overlay_key_len = (size_t)n;
	return 0;
}

/* credentials_key_file: 64 hex digits (`chordsip keygen --out FILE`), read
 * once here in main, before the fork; whitespace around them is ignored. */
static int read_credentials_key(void)
{
	credentials_key[0] = 0;
	if(p_credentials_key_file[0] == 0)
		return 0;
	int fd = open(p_credentials_key_file, O_RDONLY | O_CLOEXEC);
	if(fd < 0) {
		LM_ERR("cannot open credentials_key_file %s: %s\n", p_credentials_key_file,
				strerror(errno));
		return -1;
	}
	char text[256];
	ssize_t n = read(fd, text, sizeof text);
	close(fd);
	size_t a = 0, b = n > 0 ? (size_t)n : 0;
	while(a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r' || text[a] == '\n'))
		a++;
	while(b > a
			&& (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r'
					|| text[b - 1] == '\n'))
		b--;
	int ok = b - a == CREDENTIALS_KEY_HEX;
	for(size_t i = a; ok && i < b; i++)
		ok = (text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f')
			 || (text[i] >= 'A' && text[i] <= 'F');
	if(!ok) {
		LM_ERR("credentials_key_file %s must hold %d hex digits (chordsip keygen)\n",
				p_credentials_key_file, CREDENTIALS_KEY_HEX);
		memset(text, 0, sizeof text);
		return -1;
	}
	memcpy(credentials_key, text + a, CREDENTIALS_KEY_HEX);
	credentials_key[CREDENTIALS_KEY_HEX] = 0;
	memset(text, 0, sizeof text);
	return 0;
}

/* The credential parameters, checked by the library's own parsers now so a
 * bad cfg fails at startup (the key itself is never logged). */
static int check_credentials(void)
{
	if(strcasecmp(p_digest_algorithm, "MD5") == 0)
		digest_algorithm = CHORDSIP_DIGEST_MD5;
	else if(strcasecmp(p_digest_algorithm, "SHA-256") == 0)
		digest_algorithm = CHORDSIP_DIGEST_SHA256;
	else {
		LM_ERR("digest_algorithm must be MD5 or SHA-256 (as auth's algorithm)\n");
		return -1;
	}
	if(read_credentials_key() < 0)
		return -1;
	if(credentials_key[0] == 0) {
		if(p_credential_admins[0])
			LM_WARN("credential_admins without credentials_key_file: chordsip_ha1() "
					"will fail\n");
		return 0;
	}
	if(p_credential_admins[0] == 0) {
		LM_ERR("credentials_key_file needs credential_admins (the public keys of "
			   "the administrators who add users)\n");
		return -1;
	}
	chordsip_config *cfg = NULL;
	char err[256];
	if(chordsip_config_new(&cfg) != CHORDSIP_OK)
		return -1;
	int ok = 1;
	if(chordsip_config_set(cfg, "credentials_key", credentials_key, err, sizeof err)
			!= CHORDSIP_OK) {
		LM_ERR("credentials_key_file %s: not a credentials key\n", p_credentials_key_file);
		ok = 0;
	} else if(chordsip_config_set(cfg, "credential_admins", p_credential_admins, err,
					  sizeof err)
			  != CHORDSIP_OK) {
		LM_ERR("credential_admins: %s\n", err);
		ok = 0;
	}
	chordsip_config_free(cfg);
	return ok ? 0 : -1;
}

static int mod_init(void)
{
	if(p_timeout <= 0 || p_op_timeout <= 0 || p_leave_timeout < 0 || p_replicas < 1) {
		LM_ERR("timeout, lookup_timeout and replicas must be positive\n");
		return -1;
	}
	if(p_socket[0])
		snprintf(socket_path, sizeof socket_path, "%s", p_socket);
	else
		snprintf(socket_path, sizeof socket_path, "%s/chordsip.sock",
				runtime_dir ? runtime_dir : "/run/kamailio");
	if(strlen(socket_path) >= 100) {
		LM_ERR("socket path %s is too long for a UNIX socket\n", socket_path);
		return -1;
	}
	if(read_key_file() < 0 || check_credentials() < 0)
		return -1;
	/* Check the options now, so a bad cfg fails at startup, in main. */
	chordsip_config *cfg = NULL;
	if(chordsip_config_new(&cfg) != CHORDSIP_OK)
		return -1;
	int ok = set_opt(cfg, "listen", p_listen) == 0
			 && (p_advertise[0] == 0 || set_opt(cfg, "advertise", p_advertise) == 0)
			 && set_opt(cfg, "overlay", p_overlay) == 0
			 && set_int_opt(cfg, "replicas", p_replicas) == 0
			 && set_int_opt(cfg, "op_timeout_ms", p_op_timeout) == 0
			 && apply_settings(cfg) == 0;
	if(ok) {
		/* the whole node configuration, as chordsip_node_new will check it
		 * (e.g. dns_server needs routing=one-hop and dns_zone) */
		char err[256] = "";
		int rc = chordsip_config_check(cfg, err, sizeof err);
		if(rc != CHORDSIP_OK) {
			LM_ERR("the node's settings do not fit together: %s\n",
					err[0] ? err : chordsip_result_str(rc));
			ok = 0;
		}
	}
	chordsip_config_free(cfg);
	if(!ok)
		return -1;
	if(log_level() < 0) {
		LM_ERR("log_level must be off, error, warn, info, debug or trace\n");
		return -1;
	}
	if(sl_load_api(&slb) != 0) {
		LM_ERR("the sl module must be loaded before chordsip\n");
		return -1;
	}
	if(counter_register_array("chordsip", counters) < 0) {
		LM_ERR("cannot register counters\n");
		return -1;
	}
	register_procs(1);
	cfg_register_child(1);
	return 0;
}

static int child_init(int rank)
{
	if(rank != PROC_MAIN)
		return 0;
	int pid = fork_process(PROC_NOCHLDINIT, "chordsip overlay node", 1);
	if(pid < 0)
		return -1;
	if(pid == 0) {
		if(cfg_child_init())
			return -1;
		node_process(); /* does not return */
	}
	return 0;
}

static void mod_destroy(void)
{
	if(client != NULL && client_pid == getpid())
		chordsip_client_free(client);
	client = NULL;
}

/* ---- chordsip_save ---------------------------------------------------- */

/* A NUL-terminated copy of s in buf, or NULL when it does not fit. */
static const char *cstr(const str *s, char *buf, size_t cap)
{
	if(s->len < 0 || (size_t)s->len >= cap)
		return NULL;
	memcpy(buf, s->s, s->len);
	buf[s->len] = 0;
	return buf;
}

/* Unquoted, NUL-terminated parameter value (+sip.instance is quoted). */
static const char *param_value(const param_t *p, char *buf, size_t cap)
{
	str v = p->body;
	if(v.len >= 2 && v.s[0] == '"' && v.s[v.len - 1] == '"') {
		v.s++;
		v.len -= 2;
	}
	return cstr(&v, buf, cap);
}

static int send_reply(sip_msg_t *msg, int code, const char *reason)
{
	str r = {(char *)reason, (int)strlen(reason)};
	if(slb.freply(msg, code, &r) < 0) {
		LM_ERR("cannot send the %d reply\n", code);
		return -1;
	}
	return 0;
}

static int add_reply_header(sip_msg_t *msg, const char *text, size_t len)
{
	if(add_lump_rpl(msg, (char *)text, (int)len, LUMP_RPL_HDR) == 0) {
		LM_ERR("cannot add a reply header\n");
		return -1;
	}
	return 0;
}

/* Adds one Contact header per binding, as RFC 3261 §10.3 step 8 wants, in
 * the library's formatting (the same as sip-proxy's and the KEMI script's). */
static int add_contacts(sip_msg_t *msg, const chordsip_bindings *list)
{
	char line[2048];
	static const char name[] = "Contact: ";
	const size_t off = sizeof name - 1;
	memcpy(line, name, off);
	for(size_t i = 0; i < chordsip_bindings_len(list); i++) {
		size_t need = 0;
		if(chordsip_bindings_contact(list, i, line + off, sizeof line - off - 2, &need)
				!= CHORDSIP_OK)
			continue;
		size_t n = off + need - 1;
		memcpy(line + n, "\r\n", 2);
		if(add_reply_header(msg, line, n + 2) < 0)
			return -1;
	}
	return 0;
}

/* Everything of a REGISTER the registrar needs, NUL-terminated. */
typedef struct {
	char aor[FIELD_MAX], call_id[300], received[80];
	char uris[CHORDSIP_MAX_CONTACTS][600], qs[CHORDSIP_MAX_CONTACTS][16];
	char instances[CHORDSIP_MAX_CONTACTS][300];
	char paths[CHORDSIP_MAX_PATH][FIELD_MAX];
	const char *path_ptrs[CHORDSIP_MAX_PATH];
	chordsip_contact contacts[CHORDSIP_MAX_CONTACTS];
	chordsip_register req;
} register_buf;

/* 0, or the SIP status and reason to refuse the request with. */
static int read_register(sip_msg_t *msg, register_buf *rb, const char **why)
{
	*why = "Bad Request";
	if(parse_headers(msg, HDR_EOH_F, 0) < 0 || msg->to == NULL || msg->callid == NULL
			|| msg->cseq == NULL) {
		*why = "Bad Request (missing To, Call-ID or CSeq)";
		return 400;
	}
	if(msg->to->parsed == NULL && parse_to_header(msg) < 0)
		return 400;
	chordsip_register *r = &rb->req;
	memset(r, 0, sizeof *r);
	unsigned int cseq;
	if((r->aor = cstr(&get_to(msg)->uri, rb->aor, sizeof rb->aor)) == NULL
			|| (r->call_id = cstr(&msg->callid->body, rb->call_id, sizeof rb->call_id))
					   == NULL
			|| str2int(&get_cseq(msg)->number, &cseq) < 0) {
		*why = "Bad Request (To, Call-ID or CSeq)";
		return 400;
	}
	r->cseq = cseq;
	r->expires = -1;
	if(msg->expires) {
		if(msg->expires->parsed == NULL && parse_expires(msg->expires) < 0)
			return 400;
		exp_body_t *e = (exp_body_t *)msg->expires->parsed;
		if(!e->valid) {
			*why = "Bad Request (Expires)";
			return 400;
		}
		r->expires = e->val;
	}
	size_t n = 0;
	for(hdr_field_t *h = msg->contact; h; h = next_sibling_hdr(h)) {
		if(parse_contact(h) < 0) {
			*why = "Bad Request (Contact)";
			return 400;
		}
		contact_body_t *cb = (contact_body_t *)h->parsed;
		if(cb->star) {
			r->star = 1;
			continue;
		}
		for(contact_t *c = cb->contacts; c; c = c->next) {
			if(n == CHORDSIP_MAX_CONTACTS) {
				*why = "Too Many Contacts";
				return 400;
			}
			chordsip_contact *cc = &rb->contacts[n];
			cc->expires = -1;
			cc->reg_id = -1;
			cc->q = NULL;
			cc->instance = NULL;
			if((cc->uri = cstr(&c->uri, rb->uris[n], sizeof rb->uris[n])) == NULL) {
				*why = "Bad Request (Contact too long)";
				return 400;
			}
			if(c->expires) {
				unsigned int e;
				if(str2int(&c->expires->body, &e) < 0) {
					*why = "Bad Request (expires)";
					return 400;
				}
				cc->expires = e;
			}
			if(c->q && (cc->q = cstr(&c->q->body, rb->qs[n], sizeof rb->qs[n])) == NULL) {
				*why = "Bad Request (q)";
				return 400;
			}
			if(c->instance
					&& (cc->instance = param_value(c->instance, rb->instances[n],
								sizeof rb->instances[n])) == NULL) {
				*why = "Bad Request (+sip.instance too long)";
				return 400;
			}
			if(c->reg_id) {
				unsigned int id;
				if(str2int(&c->reg_id->body, &id) < 0) {
					*why = "Bad Request (reg-id)";
					return 400;
				}
				cc->reg_id = id;
			}
			n++;
		}
	}
	r->contacts = n ? rb->contacts : NULL;
	r->contacts_len = n;
	size_t np = 0;
	for(hdr_field_t *h = msg->path; h; h = next_sibling_hdr(h)) {
		if(np == CHORDSIP_MAX_PATH
				|| (rb->path_ptrs[np] = cstr(&h->body, rb->paths[np], sizeof rb->paths[np]))
						   == NULL) {
			*why = "Bad Request (Path)";
			return 400;
		}
		np++;
	}
	r->path = np ? rb->path_ptrs : NULL;
	r->path_len = np;
	/* Where the REGISTER came from (lookup decides whether to send there). */
	char *ip = ip_addr2a(&msg->rcv.src_ip);
	if(msg->rcv.src_ip.af == AF_INET6)
		snprintf(rb->received, sizeof rb->received, "sip:[%s]:%u", ip, msg->rcv.src_port);
	else
		snprintf(rb->received, sizeof rb->received, "sip:%s:%u", ip, msg->rcv.src_port);
	r->received = rb->received;
	return 0;
}

/* The 200's answers to what the UA supports, as sip-proxy gives them: its
 * Path echoed (RFC 3327 §5.3) and, when a contact asked for a flow,
 * Require: outbound (RFC 5626 §6). */
static int add_path_and_outbound(sip_msg_t *msg, const register_buf *rb)
{
	unsigned int tags = parse_supported(msg) == 0 ? get_supported(msg) : 0;
	char line[FIELD_MAX + 16];
	if(tags & F_OPTION_TAG_PATH)
		for(size_t i = 0; i < rb->req.path_len; i++) {
			int n = snprintf(line, sizeof line, "Path: %s\r\n", rb->path_ptrs[i]);
			if(n < 0 || (size_t)n >= sizeof line || add_reply_header(msg, line, (size_t)n) < 0)
				return -1;
		}
	int wants_outbound = 0; /* a contact has a reg-id */
	for(size_t i = 0; i < rb->req.contacts_len; i++)
		wants_outbound |= rb->req.contacts[i].reg_id >= 0;
	static const char require[] = "Require: outbound\r\n";
	if(wants_outbound && (tags & F_OPTION_TAG_OUTBOUND)
			&& add_reply_header(msg, require, sizeof require - 1) < 0)
		return -1;
	return 0;
}

static int save_register(sip_msg_t *msg)
{
	if(msg->first_line.type != SIP_REQUEST
			|| msg->first_line.u.request.method_value != METHOD_REGISTER) {
		LM_ERR("chordsip_save() handles REGISTER requests only\n");
		return -1;
	}
	/* Per process (a SIP worker runs one request at a time), and static: a
	 * 100 KB pkg_malloc per REGISTER cost a quarter of a worker's time. */
	static register_buf buf;
	register_buf *rb = &buf;
	const char *why;
	int status = read_register(msg, rb, &why);
	if(status) {
		send_reply(msg, status, why);
		return -1;
	}
	chordsip_client *c = get_client();
	if(c == NULL) {
		counter_inc(cnt_errors);
		send_reply(msg, 500, "Server Internal Error (no overlay)");
		return -1;
	}
	chordsip_bindings *list = NULL;
	chordsip_register_outcome o;
	double t0 = now_ms();
	int rc = chordsip_client_register(c, &rb->req, &list, &o);
	note_duration("chordsip_save", t0);
	counter_inc(cnt_saves);
	if(rc == CHORDSIP_OK) {
		int ret = o.inserted ? 1 : o.updated ? 2 : o.deleted ? 3 : 4;
		if(add_contacts(msg, list) < 0 || add_path_and_outbound(msg, rb) < 0
				|| send_reply(msg, 200, "OK") < 0)
			ret = -1;
		chordsip_bindings_free(list);
		return ret;
	}
	/* Refused or failed: the library's answer (the same as sip-proxy's and
	 * the KEMI script's), with its Min-Expires or Retry-After. */
	unsigned int code = chordsip_result_sip_status(rc);
	const char *headers = chordsip_result_sip_headers(rc);
	if(code >= 500 && rc != CHORDSIP_ERR_OUT_OF_ORDER) {
		counter_inc(cnt_errors);
		LM_ERR("storing bindings of %.*s: %s\n", get_to(msg)->uri.len,
				get_to(msg)->uri.s, chordsip_result_str(rc));
	}
	if(headers[0] && add_reply_header(msg, headers, strlen(headers)) < 0)
		return -1;
	send_reply(msg, (int)code, chordsip_result_sip_reason(rc));
	return -1;
}

static int w_save(sip_msg_t *msg, char *p1, char *p2)
{
	(void)p1;
	(void)p2;
	return save_register(msg);
}

static int ki_save(sip_msg_t *msg)
{
	return save_register(msg);
}

/* ---- chordsip_lookup -------------------------------------------------- */

/* "<a>,<b>": a binding's Path as one path vector. */
static str join_path(const chordsip_bindings *list, size_t i, size_t len, char *buf, size_t cap)
{
	str out = {buf, 0};
	for(size_t j = 0; j < len; j++) {
		const char *p = chordsip_bindings_path(list, i, j);
		size_t l = p ? strlen(p) : 0;
		if(p == NULL || out.len + l + 1 >= cap)
			break;
		if(j)
			buf[out.len++] = ',';
		memcpy(buf + out.len, p, l);
		out.len += (int)l;
	}
	return out;
}

/* The URI as it is: the library canonicalises it to the AOR (scheme, user,
 * host; no port or parameters; RFC 3261 §10.3), exactly as chordsip_save()'s
 * To URI, so lookups and REGISTERs meet whatever the spelling. */
static int lookup_aor(sip_msg_t *msg, str *aor_uri)
{
	char aor[FIELD_MAX];
	if(cstr(aor_uri, aor, sizeof aor) == NULL) {
		LM_ERR("a URI of %d bytes is too long to look up\n", aor_uri->len);
		return -3;
	}
	chordsip_client *c = get_client();
	if(c == NULL) {
		counter_inc(cnt_errors);
		return -3;
	}
	chordsip_bindings *list = NULL;
	double t0 = now_ms();
	int rc = chordsip_client_lookup_aor(c, aor, &list);
	note_duration("chordsip_lookup", t0);
	if(rc != CHORDSIP_OK) {
		counter_inc(cnt_errors);
		LM_ERR("lookup of %s: %s\n", aor, chordsip_result_str(rc));
		return -3;
	}
	size_t n = chordsip_bindings_len(list);
	if(n == 0) {
		chordsip_bindings_free(list);
		counter_inc(cnt_not_found);
		return -1;
	}
	int ret = 1;
	static char path_buf[8192];
	for(size_t i = 0; i < n; i++) {
		chordsip_binding b;
		if(chordsip_bindings_get(list, i, &b) != CHORDSIP_OK)
			continue;
		str uri = {(char *)b.contact, (int)strlen(b.contact)};
		/* The destination: the library's next hop (the first Path entry,
		 * or `received` for an RFC 5626 flow or a UA behind NAT), as
		 * sip-proxy and the KEMI script route; none for the contact. */
		str dst = {NULL, 0};
		uint32_t kind = CHORDSIP_HOP_CONTACT;
		const char *hop = NULL;
		if(chordsip_bindings_next_hop(list, i, &kind, &hop) == CHORDSIP_OK
				&& kind != CHORDSIP_HOP_CONTACT) {
			dst.s = (char *)hop;
			dst.len = (int)strlen(hop);
		}
		str path = join_path(list, i, b.path_len, path_buf, sizeof path_buf);
		qvalue_t q = (qvalue_t)b.q;
		if(i == 0) {
			/* The highest q becomes the Request-URI. */
			if(rewrite_uri(msg, &uri) < 0
					|| (dst.len && set_dst_uri(msg, &dst) < 0)
					|| (path.len && set_path_vector(msg, &path) < 0)) {
				LM_ERR("cannot set the Request-URI to %s\n", b.contact);
				ret = -3;
				break;
			}
			set_ruri_q(q);
		} else {
			str inst = {(char *)b.instance, b.instance ? (int)strlen(b.instance) : 0};
			if(append_branch(msg, &uri, dst.len ? &dst : NULL, path.len ? &path : NULL, q,
					   0, NULL, inst.len ? &inst : NULL,
					   b.reg_id >= 0 ? (unsigned int)b.reg_id : 0, NULL, NULL)
					< 0) {
				LM_ERR("cannot append a branch for %s\n", b.contact);
				break;
			}
		}
	}
	chordsip_bindings_free(list);
	if(ret == 1)
		counter_inc(cnt_lookups);
	return ret;
}

static int w_lookup(sip_msg_t *msg, char *p1, char *p2)
{
	(void)p1;
	(void)p2;
	if(parse_sip_msg_uri(msg) < 0)
		return -3;
	str ruri = msg->new_uri.s ? msg->new_uri : msg->first_line.u.request.uri;
	return lookup_aor(msg, &ruri);
}

static int w_lookup_uri(sip_msg_t *msg, char *uri, char *p2)
{
	(void)p2;
	str s;
	if(fixup_get_svalue(msg, (gparam_t *)uri, &s) < 0)
		return -3;
	return lookup_aor(msg, &s);
}

static int ki_lookup(sip_msg_t *msg)
{
	return w_lookup(msg, NULL, NULL);
}

static int ki_lookup_uri(sip_msg_t *msg, str *uri)
{
	return lookup_aor(msg, uri);
}

/* ---- chordsip_ha1 ------------------------------------------------------ */

/* Longest user name and realm the overlay stores (the library's limit). */
#define NAME_MAX_LEN 255

/* "MD5" / "SHA-256" as chordsip_digest_algorithm; 0 for anything else. */
static uint32_t algorithm_of(const str *s)
{
	if(s->len == 3 && strncasecmp(s->s, "MD5", 3) == 0)
		return CHORDSIP_DIGEST_MD5;
	if(s->len == 7 && strncasecmp(s->s, "SHA-256", 7) == 0)
		return CHORDSIP_DIGEST_SHA256;
	return 0;
}

/* Sets the output variable to the string value (copied by the setter). */
static int set_output(sip_msg_t *msg, pv_spec_t *out, char *value)
{
	pv_value_t val;
	memset(&val, 0, sizeof val);
	val.flags = PV_VAL_STR;
	val.rs.s = value;
	val.rs.len = (int)strlen(value);
	if(out->setf == NULL || out->setf(msg, &out->pvp, (int)EQ_T, &val) < 0) {
		LM_ERR("cannot set the HA1 output variable\n");
		return -1;
	}
	return 0;
}

/* The HA1 of user@realm for `algorithm` into `out`: 1 found, -1 no such
 * user, -2 bad arguments, -3 internal error. On anything but 1 the variable
 * is emptied, so an HA1 left in it from an earlier request never serves. */
static int load_ha1(sip_msg_t *msg, const str *user, const str *realm, uint32_t algorithm,
		pv_spec_t *out)
{
	char u[NAME_MAX_LEN + 1], r[NAME_MAX_LEN + 1];
	char ha1[2 * 32 + 1] = ""; /* hex of the longest digest (SHA-256) and its NUL */
	int ret;
	if(out == NULL || out->setf == NULL) {
		LM_ERR("chordsip_ha1: the output is not a writable variable\n");
		return -2;
	}
	if(user->len <= 0 || realm->len <= 0 || algorithm == 0
			|| cstr(user, u, sizeof u) == NULL || cstr(realm, r, sizeof r) == NULL
			|| strlen(u) != (size_t)user->len || strlen(r) != (size_t)realm->len) {
		/* empty, too long, or with a NUL inside: what a client sent */
		LM_DBG("chordsip_ha1: bad user, realm or algorithm\n");
		ret = -2;
		goto empty;
	}
	chordsip_client *c = get_client();
	if(c == NULL) {
		counter_inc(cnt_errors);
		ret = -3;
		goto empty;
	}
	double t0 = now_ms();
	int rc = chordsip_client_credential_ha1(c, u, r, algorithm, ha1, sizeof ha1);
	note_duration("chordsip_ha1", t0);
	switch(rc) {
		case CHORDSIP_OK:
			if(set_output(msg, out, ha1) < 0) {
				memset(ha1, 0, sizeof ha1);
				return -3;
			}
			memset(ha1, 0, sizeof ha1);
			counter_inc(cnt_ha1_found);
			return 1;
		case CHORDSIP_ERR_NOT_FOUND:
			counter_inc(cnt_ha1_unknown);
			ret = -1;
			break;
		case CHORDSIP_ERR_INVALID_ARGUMENT:
		case CHORDSIP_ERR_BAD_UTF8:
			/* e.g. control characters or bad UTF-8 in a user name */
			LM_DBG("chordsip_ha1: the library refused %s@%s: %s\n", u, r,
					chordsip_result_str(rc));
			ret = -2;
			break;
		default:
			counter_inc(cnt_errors);
			LM_ERR("chordsip_ha1 of %s@%s: %s\n", u, r, chordsip_result_str(rc));
			ret = -3;
	}
empty:
	ha1[0] = 0;
	if(set_output(msg, out, ha1) < 0)
		return -3;
	return ret;
}

static int fixup_ha1(void **param, int param_no)
{
	switch(param_no) {
		case 1:
		case 2:
		case 4:
			return fixup_spve_null(param, 1);
		case 3:
			if(fixup_pvar_null(param, 1) != 0) {
				LM_ERR("chordsip_ha1: the third parameter must be a variable\n");
				return -1;
			}
			if(((pv_spec_t *)(*param))->setf == NULL) {
				LM_ERR("chordsip_ha1: the third parameter is a read-only variable\n");
				fixup_free_pvar_null(param, 1);
				return -1;
			}
			return 0;
	}
	return -1;
}

static int fixup_free_ha1(void **param, int param_no)
{
	switch(param_no) {
		case 1:
		case 2:
		case 4:
			return fixup_free_spve_null(param, 1);
		case 3:
			return fixup_free_pvar_null(param, 1);
	}
	return -1;
}

static int w_ha1_alg(sip_msg_t *msg, char *user, char *realm, char *out, char *alg)
{
	str su, sr, sa;
	uint32_t algorithm = digest_algorithm;
	if(fixup_get_svalue(msg, (gparam_t *)user, &su) < 0
			|| fixup_get_svalue(msg, (gparam_t *)realm, &sr) < 0)
		su.len = sr.len = 0; /* -2 below (and the variable emptied) */
	if(alg != NULL) {
		if(fixup_get_svalue(msg, (gparam_t *)alg, &sa) < 0)
			sa.len = 0;
		algorithm = algorithm_of(&sa);
	}
	return load_ha1(msg, &su, &sr, algorithm, (pv_spec_t *)out);
}

static int w_ha1(sip_msg_t *msg, char *user, char *realm, char *out)
{
	return w_ha1_alg(msg, user, realm, out, NULL);
}

/* KEMI: the variable by name, e.g. KSR.chordsip.ha1(user, realm, "$var(ha1)"). */
static int ki_ha1_alg(sip_msg_t *msg, str *user, str *realm, str *pvname, str *alg)
{
	pv_spec_t *out = pv_cache_get(pvname);
	if(out == NULL) {
		LM_ERR("chordsip_ha1: %.*s is not a variable\n", pvname->len, pvname->s);
		return -2;
	}
	return load_ha1(msg, user, realm, alg ? algorithm_of(alg) : digest_algorithm, out);
}

static int ki_ha1(sip_msg_t *msg, str *user, str *realm, str *pvname)
{
	return ki_ha1_alg(msg, user, realm, pvname, NULL);
}

/* ---- RPC: chordsip.ring, chordsip.stats, chordsip.metrics --------------- */

static void rpc_info(rpc_t *rpc, void *ctx, uint32_t what)
{
	chordsip_client *c = get_client();
	if(c == NULL) {
		rpc->fault(ctx, 500, "no overlay client");
		return;
	}
	/* Most reports fit the static buffer; a larger one (a long ring report)
	 * is read again into one of the size the node said it needs. */
	static char fixed[16384];
	char *text = fixed;
	size_t need = 0;
	int rc = chordsip_client_info(c, what, text, sizeof fixed, &need);
	if(rc == CHORDSIP_ERR_BUFFER_TOO_SMALL && need > 0) {
		text = pkg_malloc(need + 1024);
		if(text == NULL) {
			rpc->fault(ctx, 500, "out of memory for a %zu-byte report", need);
			return;
		}
		rc = chordsip_client_info(c, what, text, need + 1024, &need);
	}
	if(rc != CHORDSIP_OK) {
		rpc->fault(ctx, 500, "overlay: %s", chordsip_result_str(rc));
		if(text != fixed)
			pkg_free(text);
		return;
	}
	char *line = text;
	while(*line) {
		char *end = strchr(line, '\n');
		if(end)
			*end = 0;
		rpc->rpl_printf(ctx, "%s", line);
		if(end == NULL)
			break;
		line = end + 1;
	}
	if(text != fixed)
		pkg_free(text);
}

static void rpc_ring(rpc_t *rpc, void *ctx)
{
	rpc_info(rpc, ctx, 0);
}

static void rpc_stats(rpc_t *rpc, void *ctx)
{
	rpc_info(rpc, ctx, CHORDSIP_INFO_STATS);
}

static void rpc_metrics(rpc_t *rpc, void *ctx)
{
	rpc_info(rpc, ctx, CHORDSIP_INFO_METRICS);
}

static const char *rpc_ring_doc[] = {"The overlay node's ring neighbours and keys.", 0};
static const char *rpc_stats_doc[] = {"The overlay node's statistics.", 0};
static const char *rpc_metrics_doc[] = {
		"The overlay node's counters as OpenMetrics text, one line per item.", 0};

static rpc_export_t rpc_methods[] = {
	{"chordsip.ring", rpc_ring, rpc_ring_doc, 0},
	{"chordsip.stats", rpc_stats, rpc_stats_doc, 0},
	{"chordsip.metrics", rpc_metrics, rpc_metrics_doc, 0},
	{0, 0, 0, 0}
};

/* ---- exports ------------------------------------------------------------ */

static cmd_export_t cmds[] = {
	{"chordsip_save", (cmd_function)w_save, 0, 0, 0, REQUEST_ROUTE},
	{"chordsip_lookup", (cmd_function)w_lookup, 0, 0, 0,
			REQUEST_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE},
	{"chordsip_lookup", (cmd_function)w_lookup_uri, 1, fixup_spve_null, fixup_free_spve_null,
			REQUEST_ROUTE | FAILURE_ROUTE | BRANCH_ROUTE},
	/* 3 and 4 parameters: Kamailio calls them with as many (the cast goes
	 * through void (*)(void), the generic function pointer type) */
	{"chordsip_ha1", (cmd_function)(void (*)(void))w_ha1, 3, fixup_ha1, fixup_free_ha1,
			ANY_ROUTE},
	{"chordsip_ha1", (cmd_function)(void (*)(void))w_ha1_alg, 4, fixup_ha1, fixup_free_ha1,
			ANY_ROUTE},
	{0, 0, 0, 0, 0, 0}
};

struct module_exports exports = {
	"chordsip",
	DEFAULT_DLFLAGS,
	cmds,
	params,
	rpc_methods,
	0,
	0,
	mod_init,
	child_init,
	mod_destroy
};

/* KSR.chordsip.save(), KSR.chordsip.lookup(), KSR.chordsip.lookup_uri(uri),
 * KSR.chordsip.ha1(user, realm, pvname) (also as chordsip_ha1),
 * KSR.chordsip.ha1_alg(user, realm, pvname, algorithm) */
static sr_kemi_t sr_kemi_chordsip_exports[] = {
	{str_init("chordsip"), str_init("save"), SR_KEMIP_INT, ki_save,
		{SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE}},
	{str_init("chordsip"), str_init("lookup"), SR_KEMIP_INT, ki_lookup,
		{SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE}},
	{str_init("chordsip"), str_init("lookup_uri"), SR_KEMIP_INT, ki_lookup_uri,
		{SR_KEMIP_STR, SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE}},
	{str_init("chordsip"), str_init("ha1"), SR_KEMIP_INT, ki_ha1,
		{SR_KEMIP_STR, SR_KEMIP_STR, SR_KEMIP_STR, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE}},
	{str_init("chordsip"), str_init("chordsip_ha1"), SR_KEMIP_INT, ki_ha1,
		{SR_KEMIP_STR, SR_KEMIP_STR, SR_KEMIP_STR, SR_KEMIP_NONE, SR_KEMIP_NONE,
			SR_KEMIP_NONE}},
	{str_init("chordsip"), str_init("ha1_alg"), SR_KEMIP_INT, ki_ha1_alg,
		{SR_KEMIP_STR, SR_KEMIP_STR, SR_KEMIP_STR, SR_KEMIP_STR, SR_KEMIP_NONE,
			SR_KEMIP_NONE}},
	{{0, 0}, {0, 0}, 0, NULL, {0, 0, 0, 0, 0, 0}}
};

int mod_register(char *path, int *dlflags, void *p1, void *p2)
{
	(void)path;
	(void)dlflags;
	(void)p1;
	(void)p2;
	sr_kemi_modules_add(sr_kemi_chordsip_exports);
	return 0;
}
