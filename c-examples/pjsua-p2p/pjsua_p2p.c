/*
 * pjsua-p2p: a pure P2P SIP user agent on pjsua-lib. No registrar anywhere:
 * the agent is a chordsip peer, publishes its own AOR binding in the overlay
 * (chordsip_node_publish: the library refreshes it) and finds a callee's contact with
 * chordsip_node_lookup_aor_async before it calls it with pjsua.
 *
 * chordsip runs in fd delivery mode and its event fd sits in PJSIP's own
 * ioqueue: every chordsip callback runs on the pjsua worker thread that polls
 * that ioqueue, next to PJSIP's own callbacks. chordsip's library threads are
 * registered with pjlib through the thread hooks (see README.md for when that
 * is needed: --delivery thread shows it, --no-thread-hooks shows what happens
 * without).
 *
 *   pjsua-p2p --aor sip:alice@p2p.test --sip-port 5070 --listen 127.0.0.1:6000
 *             [--bootstrap 127.0.0.1:6001] [--key-file overlay.key]
 *             [--delivery fd|thread] [--no-thread-hooks] [--expires 600]
 *             [--log-level N] [-o name=value]...
 *
 * Commands, one per line on stdin (EOF is quit):
 *   call AOR      look the AOR up in the overlay and call its contact
 *   lookup AOR    look the AOR up and print its bindings
 *   hangup        hang up every call (BYE)
 *   stats         RTP packet counts of every call
 *   ring          the overlay node's neighbours
 *   quit          hang up, remove the binding, leave the overlay, exit
 *
 * Lines the agent prints (stdout, one event each) are what the tests read:
 *   ready aor=... contact=... node=... id=...
 *   lookup AOR -> CONTACT (N bindings) [thread NAME]
 *   call ID STATE (CODE REASON)      incoming ID from URI
 *   rtp call ID tx_pkt N rx_pkt M    bye call ID sent|received status CODE
 */
#include <chordsip.h>
#include <pjsua-lib/pjsua.h>

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THIS_FILE "pjsua_p2p"
#define MAX_OPTIONS 32

static struct {
    const char *aor;
    char contact[128];
    int sip_port;
    const char *listen;
    const char *bootstrap;
    const char *key_file;
    int fd_delivery;
    int thread_hooks;
    int expires;
    int log_level;
    const char *options[MAX_OPTIONS];
    int n_options;

    chordsip_node *node;
    pjsua_acc_id acc;
    pj_pool_t *pool;
    pj_ioqueue_key_t *event_key; /* the event fd (a dup of it) in PJSIP's ioqueue */
    pj_ioqueue_op_key_t event_op;
    char event_buf[1];
    int published;
    atomic_int lib_threads_started, lib_threads_stopped;
    atomic_int failures;
} app = {.sip_port = 5070, .listen = "127.0.0.1:0", .fd_delivery = 1, .thread_hooks = 1,
         .expires = 600, .log_level = 1, .acc = PJSUA_INVALID_ID};

/* One line on stdout per event, whole (the tests read them). */
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    flockfile(stdout);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    funlockfile(stdout);
    va_end(ap);
}

/* The pjlib name of the calling thread, or "unregistered". */
static const char *thread_name(void) {
    return pj_thread_is_registered() ? pj_thread_get_name(pj_thread_this()) : "unregistered";
}

/* ---- chordsip's library threads and pjlib -------------------------------- */

/* Runs on every chordsip library thread as it starts: from then on the thread
 * may call pjlib (and pjsua), as a callback in thread delivery mode does. The
 * descriptor must live as long as the thread: thread-local storage. */
static void on_lib_thread_start(void *ud) {
    (void)ud;
    static __thread pj_thread_desc desc;
    pj_thread_t *t = NULL;
    char name[32];
    int n = atomic_fetch_add(&app.lib_threads_started, 1);
    snprintf(name, sizeof name, "chordsip%d", n);
    pj_bzero(desc, sizeof desc);
    if (pj_thread_register(name, desc, &t) != PJ_SUCCESS)
        atomic_fetch_add(&app.failures, 1);
}

/* Runs just before a library thread exits. pjlib keeps nothing to undo for a
 * registered thread; we count, so that the shutdown can show that the
 * threads stopped before pjsua_destroy() (which shuts pjlib down). */
static void on_lib_thread_stop(void *ud) {
    (void)ud;
    atomic_fetch_add(&app.lib_threads_stopped, 1);
}

/* chordsip's log lines go to PJSIP's logger. */
static void on_chordsip_log(uint32_t level, const char *msg, void *ud) {
    (void)ud;
    if (level <= 1)
        PJ_LOG(1, ("chordsip", "%s", msg));
    else if (level == 2)
        PJ_LOG(2, ("chordsip", "%s", msg));
    else
        PJ_LOG(4, ("chordsip", "%s", msg));
}

/* ---- the event fd in PJSIP's ioqueue -------------------------------------- */

static void arm_event_read(void) {
    pj_ssize_t len = sizeof app.event_buf;
    /* MSG_PEEK: the byte stays in the socket (the node owns the fd and
     * chordsip_node_process() drains it); ALWAYS_ASYNC: completion always
     * comes through on_event_readable on the polling thread. */
    pj_status_t st = pj_ioqueue_recv(app.event_key, &app.event_op, app.event_buf, &len,
                                     PJ_IOQUEUE_ALWAYS_ASYNC | PJ_MSG_PEEK);
    if (st != PJ_EPENDING && st != PJ_SUCCESS) {
        PJ_PERROR(1, (THIS_FILE, st, "pj_ioqueue_recv on the chordsip event fd"));
        atomic_fetch_add(&app.failures, 1);
    }
}

/* The ioqueue found the event fd readable: run chordsip's waiting callbacks
 * here, on PJSIP's polling thread, then wait for the next batch. */
static void on_event_readable(pj_ioqueue_key_t *key, pj_ioqueue_op_key_t *op,
                              pj_ssize_t bytes_read) {
    (void)key;
    (void)op;
    chordsip_node_process(app.node, NULL);
    if (bytes_read <= 0) { /* the node's end closed: nothing more will come */
        PJ_LOG(2, (THIS_FILE, "chordsip event fd closed (%ld)", (long)bytes_read));
        return;
    }
    arm_event_read();
}

static int attach_event_fd(void) {
    int fd = -1;
    if (chordsip_node_event_fd(app.node, &fd) != CHORDSIP_OK)
        return -1;
    /* pj_ioqueue_unregister() closes the socket it was given, and the node's
     * fd must never be closed by us: the ioqueue gets its own descriptor of
     * the same socket. */
    int mine = dup(fd);
    if (mine < 0)
        return -1;
    pj_ioqueue_callback cb;
    pj_bzero(&cb, sizeof cb);
    cb.on_read_complete = on_event_readable;
    pj_ioqueue_t *ioq = pjsip_endpt_get_ioqueue(pjsua_get_pjsip_endpt());
    pj_status_t st = pj_ioqueue_register_sock(app.pool, ioq, mine, NULL, &cb, &app.event_key);
    if (st != PJ_SUCCESS) {
        close(mine);
        PJ_PERROR(1, (THIS_FILE, st, "pj_ioqueue_register_sock"));
        return -1;
    }
    /* One callback at a time, holding the key's lock: pj_ioqueue_unregister()
     * then waits for a callback in progress, so that chordsip_node_free()
     * never runs beside chordsip_node_process(). */
    pj_ioqueue_set_concurrency(app.event_key, PJ_FALSE);
    pj_ioqueue_op_key_init(&app.event_op, sizeof app.event_op);
    arm_event_read();
    return 0;
}

static void detach_event_fd(void) {
    if (app.event_key != NULL) {
        pj_ioqueue_unregister(app.event_key); /* closes our dup only */
        app.event_key = NULL;
    }
}

/* ---- the AOR binding ------------------------------------------------------ */

/* Publishes this agent's binding: the library keeps its Call-ID and CSeq and
 * refreshes it at half its lifetime on its own timers (on_chordsip_event
 * hears how that goes) until the agent withdraws it or leaves. Blocking:
 * called from the main thread, never from a callback on the polling thread. */
static chordsip_result publish_binding(void) {
    chordsip_publication p = {.aor = app.aor, .contact = app.contact,
                              .expires = (uint32_t)app.expires, .q = NULL, .instance = NULL};
    uint32_t granted = 0;
    chordsip_result rc = chordsip_node_publish(app.node, &p, &granted);
    if (rc != CHORDSIP_OK) {
        char why[256] = "";
        chordsip_error_detail(why, sizeof why, NULL);
        say("publish %s failed: %s: %s", app.aor, chordsip_result_str(rc), why);
    } else {
        app.published = 1;
        say("publish %s -> %s expires %u", app.aor, app.contact, granted);
    }
    return rc;
}

/* The library's own refreshes of the binding (on the polling thread in fd
 * mode, else on a library thread registered with pjlib by the hooks). */
static void on_chordsip_event(const chordsip_event *e, void *user_data) {
    (void)user_data;
    if (e->kind == CHORDSIP_EVENT_REFRESHED)
        say("refreshed %s expires %u [thread %s]", e->aor, e->expires, thread_name());
    else if (e->kind == CHORDSIP_EVENT_REFRESH_FAILED)
        say("refresh of %s failed: %s: %s; binding lives %u s more, retry in %u ms", e->aor,
            chordsip_result_str(e->result), e->detail, e->expires, e->retry_ms);
}

/* ---- BYE answers ---------------------------------------------------------- */

/* "bye call ID sent|received status CODE", once per end of a call. The
 * callee's shows when it answered the BYE (on_call_tsx_state). The caller's
 * call is over as soon as its BYE is sent, and pjsua reports nothing of it
 * after that: a small module sees the BYE's answer arrive and finds the call
 * by its Call-ID. */
static pthread_mutex_t callids_lock = PTHREAD_MUTEX_INITIALIZER;
static char callids[PJSUA_MAX_CALLS][128];

static void remember_callid(pjsua_call_id id) {
    pjsua_call_info ci;
    if (id < 0 || id >= PJSUA_MAX_CALLS || pjsua_call_get_info(id, &ci) != PJ_SUCCESS)
        return;
    pthread_mutex_lock(&callids_lock);
    snprintf(callids[id], sizeof callids[id], "%.*s", (int)ci.call_id.slen, ci.call_id.ptr);
    pthread_mutex_unlock(&callids_lock);
}

static pj_bool_t on_rx_response(pjsip_rx_data *rdata) {
    pjsip_msg *msg = rdata->msg_info.msg;
    if (rdata->msg_info.cseq == NULL || msg->line.status.code < 200 ||
        pjsip_method_cmp(&rdata->msg_info.cseq->method, &pjsip_bye_method) != 0)
        return PJ_FALSE;
    const pj_str_t *cid = &rdata->msg_info.cid->id;
    pthread_mutex_lock(&callids_lock);
    for (int i = 0; i < PJSUA_MAX_CALLS; i++)
        if (pj_strcmp2(cid, callids[i]) == 0) {
            callids[i][0] = 0;
            say("bye call %d sent status %d", i, msg->line.status.code);
        }
    pthread_mutex_unlock(&callids_lock);
    return PJ_FALSE; /* only watching: the transaction layer goes on with it */
}

static pjsip_module mod_bye_watch = {
    .name = {"mod-bye-watch", 13},
    .id = -1,
    .priority = PJSIP_MOD_PRIORITY_TRANSPORT_LAYER + 1, /* before the transactions */
    .on_rx_response = on_rx_response,
};

/* ---- lookups and calls ---------------------------------------------------- */

struct lookup {
    int then_call;
    char aor[256];
};

static void place_call(const char *aor, const char *contact) {
    pjsua_msg_data md;
    pjsua_msg_data_init(&md);
    md.target_uri = pj_str((char *)contact); /* Request-URI: where the callee is */
    pj_str_t to = pj_str((char *)aor);       /* To: whom we call */
    pjsua_call_id id = PJSUA_INVALID_ID;
    pj_status_t st = pjsua_call_make_call(app.acc, &to, NULL, NULL, &md, &id);
    if (st != PJ_SUCCESS) {
        char err[PJ_ERR_MSG_SIZE];
        pj_strerror(st, err, sizeof err);
        say("call %s failed: %s", aor, err);
        return;
    }
    remember_callid(id);
    say("call %d calling %s at %s", id, aor, contact);
}

/* Completion of chordsip_node_lookup_aor_async: on the pjsua worker thread
 * (fd delivery), or on a chordsip library thread (thread delivery). */
static void on_lookup(chordsip_result rc, const chordsip_bindings *list, void *ud) {
    struct lookup *l = ud;
    size_t n = rc == CHORDSIP_OK ? chordsip_bindings_len(list) : 0;
    chordsip_binding b;
    if (rc != CHORDSIP_OK) {
        say("lookup %s failed: %s", l->aor, chordsip_result_str(rc));
    } else if (n == 0 || chordsip_bindings_get(list, 0, &b) != CHORDSIP_OK) {
        say("lookup %s -> nothing (0 bindings)", l->aor);
    } else {
        /* Only here does pjlib get called from this thread: thread_name()
         * asks pjlib, and so does pjsua_call_make_call(). */
        say("lookup %s -> %s (%zu bindings) [thread %s]", l->aor, b.contact, n, thread_name());
        if (l->then_call)
            place_call(l->aor, b.contact);
    }
    free(l);
}

static void start_lookup(const char *aor, int then_call) {
    struct lookup *l = calloc(1, sizeof *l);
    if (l == NULL)
        return;
    l->then_call = then_call;
    snprintf(l->aor, sizeof l->aor, "%s", aor);
    chordsip_result rc = chordsip_node_lookup_aor_async(app.node, aor, on_lookup, l);
    if (rc != CHORDSIP_OK) { /* the callback will never run */
        say("lookup %s failed: %s", aor, chordsip_result_str(rc));
        free(l);
    }
}

/* ---- pjsua callbacks (PJSIP's threads) ------------------------------------ */

static void on_incoming_call(pjsua_acc_id acc, pjsua_call_id id, pjsip_rx_data *rdata) {
    (void)acc;
    (void)rdata;
    pjsua_call_info ci;
    pjsua_call_get_info(id, &ci);
    say("incoming %d from %.*s", id, (int)ci.remote_info.slen, ci.remote_info.ptr);
    pjsua_call_answer(id, 200, NULL, NULL);
}

static void on_call_state(pjsua_call_id id, pjsip_event *e) {
    pjsua_call_info ci;
    pjsua_call_get_info(id, &ci);
    (void)e;
    say("call %d %.*s (%d %.*s)", id, (int)ci.state_text.slen, ci.state_text.ptr,
        ci.last_status, (int)ci.last_status_text.slen, ci.last_status_text.ptr);
}

static void on_call_media_state(pjsua_call_id id) {
    pjsua_call_info ci;
    pjsua_call_get_info(id, &ci);
    for (unsigned i = 0; i < ci.media_cnt; i++) {
        if (ci.media[i].type == PJMEDIA_TYPE_AUDIO &&
            ci.media[i].status == PJSUA_CALL_MEDIA_ACTIVE) {
            /* to and from the null sound device: media flows both ways */
            pjsua_conf_port_id p = ci.media[i].stream.aud.conf_slot;
            pjsua_conf_connect(p, 0);
            pjsua_conf_connect(0, p);
            say("media %d active", id);
        }
    }
}

static void print_rtp(pjsua_call_id id, const pjmedia_rtcp_stat *s) {
    say("rtp call %d tx_pkt %u rx_pkt %u tx_bytes %u rx_bytes %u", id, s->tx.pkt, s->rx.pkt,
        s->tx.bytes, s->rx.bytes);
}

/* The last word of each call's media: its counters just before the stream goes. */
static void on_stream_destroyed(pjsua_call_id id, pjmedia_stream *strm, unsigned idx) {
    (void)idx;
    pjmedia_rtcp_stat s;
    if (pjmedia_stream_get_stat(strm, &s) == PJ_SUCCESS)
        print_rtp(id, &s);
}

static void on_call_tsx_state(pjsua_call_id id, pjsip_transaction *tsx, pjsip_event *e) {
    (void)e;
    if (tsx->role == PJSIP_ROLE_UAS && tsx->state == PJSIP_TSX_STATE_COMPLETED &&
        pjsip_method_cmp(&tsx->method, &pjsip_bye_method) == 0)
        say("bye call %d received status %d", id, tsx->status_code);
}

/* ---- commands ------------------------------------------------------------- */

static void print_stats(void) {
    pjsua_call_id ids[PJSUA_MAX_CALLS];
    unsigned n = PJ_ARRAY_SIZE(ids);
    pjsua_enum_calls(ids, &n);
    for (unsigned i = 0; i < n; i++) {
        pjsua_stream_stat st;
        if (pjsua_call_get_stream_stat(ids[i], 0, &st) == PJ_SUCCESS)
            print_rtp(ids[i], &st.rtcp);
    }
    say("stats %u calls", n);
}

static void print_ring(void) {
    chordsip_ring *r = NULL;
    if (chordsip_node_ring(app.node, &r) != CHORDSIP_OK)
        return;
    chordsip_peer p;
    for (size_t i = 0; i < chordsip_peers_len(r->successors); i++)
        if (chordsip_peers_get(r->successors, i, &p) == CHORDSIP_OK)
            say("successor[%zu] %s", i, p.addr);
    for (size_t i = 0; i < chordsip_peers_len(r->predecessors); i++)
        if (chordsip_peers_get(r->predecessors, i, &p) == CHORDSIP_OK)
            say("predecessor[%zu] %s", i, p.addr);
    chordsip_ring_free(r);
}

/* One line from stdin; 1 when it asked to quit. */
static int command(char *line) {
    line[strcspn(line, "\r\n")] = 0;
    char *arg = strchr(line, ' ');
    if (arg != NULL) {
        *arg++ = 0;
        arg += strspn(arg, " ");
    }
    if (strcmp(line, "call") == 0 && arg != NULL && *arg)
        start_lookup(arg, 1);
    else if (strcmp(line, "lookup") == 0 && arg != NULL && *arg)
        start_lookup(arg, 0);
    else if (strcmp(line, "hangup") == 0)
        pjsua_call_hangup_all();
    else if (strcmp(line, "stats") == 0)
        print_stats();
    else if (strcmp(line, "ring") == 0)
        print_ring();
    else if (strcmp(line, "quit") == 0)
        return 1;
    else if (*line)
        say("unknown command %s", line);
    return 0;
}

/* ---- start and shutdown --------------------------------------------------- */

static int read_key_file(const char *path, uint8_t *key, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t n = fread(key, 1, *len, f);
    fclose(f);
    while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r'))
        n--; /* as the chordsip CLI reads --key-file */
    if (n == 0)
        return -1;
    *len = n;
    return 0;
}

static int start_node(void) {
    chordsip_config *cfg = NULL;
    char err[256] = "";
    if (chordsip_config_new(&cfg) != CHORDSIP_OK)
        return -1;
    int ok = chordsip_config_set(cfg, "listen", app.listen, err, sizeof err) == CHORDSIP_OK;
    for (int i = 0; ok && i < app.n_options; i++) {
        char name[64];
        const char *eq = strchr(app.options[i], '=');
        if (eq == NULL || (size_t)(eq - app.options[i]) >= sizeof name) {
            snprintf(err, sizeof err, "-o %s: want name=value", app.options[i]);
            ok = 0;
            break;
        }
        memcpy(name, app.options[i], (size_t)(eq - app.options[i]));
        name[eq - app.options[i]] = 0;
        ok = chordsip_config_set(cfg, name, eq + 1, err, sizeof err) == CHORDSIP_OK;
    }
    if (ok && app.key_file != NULL) {
        uint8_t key[1024];
        size_t len = sizeof key;
        if (read_key_file(app.key_file, key, &len) != 0) {
            snprintf(err, sizeof err, "cannot read the overlay key file %s", app.key_file);
            ok = 0;
        } else {
            chordsip_config_set_overlay_key(cfg, key, len);
        }
    }
    if (ok) {
        chordsip_config_set_delivery(cfg, app.fd_delivery ? CHORDSIP_DELIVER_FD
                                                          : CHORDSIP_DELIVER_THREAD);
        chordsip_config_set_log_callback(cfg, 2 /* warnings */, on_chordsip_log, NULL);
        chordsip_config_set_event_callback(cfg, on_chordsip_event, NULL);
        if (app.thread_hooks)
            chordsip_config_set_thread_hooks(cfg, on_lib_thread_start, on_lib_thread_stop,
                                             NULL);
    }
    chordsip_result rc = ok ? chordsip_node_new(cfg, &app.node, err, sizeof err)
                            : CHORDSIP_ERR_INVALID_ARGUMENT;
    chordsip_config_free(cfg);
    if (rc != CHORDSIP_OK) {
        fprintf(stderr, "pjsua-p2p: node: %s: %s\n", chordsip_result_str(rc), err);
        return -1;
    }
    /* The event fd goes into the ioqueue before the node starts, so that
     * nothing it queues while joining waits longer than one poll. */
    if (app.fd_delivery && attach_event_fd() != 0) {
        fprintf(stderr, "pjsua-p2p: cannot put the event fd into PJSIP's ioqueue\n");
        return -1;
    }
    /* Blocking, on the main thread: the pjsua worker meanwhile polls the
     * ioqueue (and runs whatever the node queues). */
    rc = chordsip_node_join(app.node, app.bootstrap);
    if (rc != CHORDSIP_OK) {
        fprintf(stderr, "pjsua-p2p: join %s: %s\n", app.bootstrap ? app.bootstrap : "(new ring)",
                chordsip_result_str(rc));
        return -1;
    }
    return 0;
}

static int start_pjsua(void) {
    pj_log_set_level(app.log_level); /* pjsua_create() logs before pjsua_init() */
    pj_status_t st = pjsua_create();
    if (st != PJ_SUCCESS)
        return -1;
    pjsua_config cfg;
    pjsua_logging_config log;
    pjsua_media_config media;
    pjsua_config_default(&cfg);
    pjsua_logging_config_default(&log);
    pjsua_media_config_default(&media);
    cfg.thread_cnt = 1; /* the one worker that polls PJSIP's ioqueue */
    cfg.cb.on_incoming_call = on_incoming_call;
    cfg.cb.on_call_state = on_call_state;
    cfg.cb.on_call_media_state = on_call_media_state;
    cfg.cb.on_stream_destroyed = on_stream_destroyed;
    cfg.cb.on_call_tsx_state = on_call_tsx_state;
    log.console_level = (unsigned)app.log_level;
    log.level = (unsigned)app.log_level;
    media.no_vad = PJ_TRUE; /* silence from the null device is still sent as RTP */
    if ((st = pjsua_init(&cfg, &log, &media)) != PJ_SUCCESS)
        return -1;

    pjsua_transport_config tc;
    pjsua_transport_config_default(&tc);
    tc.port = (unsigned)app.sip_port;
    tc.bound_addr = pj_str("127.0.0.1"); /* Via, Contact and SDP follow */
    tc.public_addr = pj_str("127.0.0.1");
    pjsua_transport_id tid;
    if ((st = pjsua_transport_create(PJSIP_TRANSPORT_UDP, &tc, &tid)) != PJ_SUCCESS) {
        PJ_PERROR(1, (THIS_FILE, st, "SIP transport on 127.0.0.1:%d", app.sip_port));
        return st == PJ_STATUS_FROM_OS(EADDRINUSE) ? -75 : -1;
    }
    if ((st = pjsua_start()) != PJ_SUCCESS)
        return -1;
    if (pjsip_endpt_register_module(pjsua_get_pjsip_endpt(), &mod_bye_watch) != PJ_SUCCESS)
        return -1;
    pjsua_set_null_snd_dev(); /* no audio hardware; the bridge still clocks RTP */

    /* An account with only an id: no registrar, no REGISTER ever sent. */
    const char *at = strchr(app.aor, '@');
    const char *user = strncmp(app.aor, "sip:", 4) == 0 ? app.aor + 4 : app.aor;
    snprintf(app.contact, sizeof app.contact, "sip:%.*s@127.0.0.1:%d",
             at ? (int)(at - user) : 0, user, app.sip_port);
    pjsua_acc_config acc;
    pjsua_acc_config_default(&acc);
    acc.id = pj_str((char *)app.aor);
    acc.force_contact = pj_str(app.contact);
    acc.register_on_acc_add = PJ_FALSE;
    acc.rtp_cfg.bound_addr = pj_str("127.0.0.1");
    acc.rtp_cfg.public_addr = pj_str("127.0.0.1");
    acc.rtp_cfg.port = (unsigned)app.sip_port + 1000; /* pjsua tries upwards */
    if ((st = pjsua_acc_add(&acc, PJ_TRUE, &app.acc)) != PJ_SUCCESS)
        return -1;
    app.pool = pjsua_pool_create("chordsip", 512, 512);
    return app.pool != NULL ? 0 : -1;
}

/* The shutdown order: calls end (BYE) while everything still runs; the
 * binding goes, the node leaves the overlay gracefully, its event fd leaves
 * the ioqueue, the node is freed (its library threads stop, their stop hooks
 * run), and only then pjsua_destroy() shuts PJSIP and pjlib down. */
static void shutdown_all(void) {
    pjsua_call_hangup_all();
    for (int i = 0; i < 60 && pjsua_call_get_count() > 0; i++)
        pj_thread_sleep(50);
    if (app.node != NULL) {
        if (app.published) {
            /* chordsip_node_leave would withdraw it too; said here to be seen. */
            chordsip_result rc = chordsip_node_withdraw(app.node, app.aor);
            say("withdraw %s: %s", app.aor, chordsip_result_str(rc));
        }
        chordsip_result rc = chordsip_node_leave(app.node, 3000);
        say("leave: %s", chordsip_result_str(rc));
        detach_event_fd(); /* waits for a callback running on the polling thread */
        chordsip_node_process(app.node, NULL); /* what is left runs here, on main */
        chordsip_node_free(app.node);
        app.node = NULL;
    }
    say("library threads: %d started, %d stopped before pjsua_destroy",
        atomic_load(&app.lib_threads_started), atomic_load(&app.lib_threads_stopped));
    if (app.pool != NULL)
        pj_pool_release(app.pool);
    pjsua_destroy();
}

static void usage(const char *prog) {
    fprintf(stderr,
            "usage: %s --aor URI [--sip-port N] [--listen ADDR] [--bootstrap LIST]\n"
            "       [--key-file FILE] [--delivery fd|thread] [--no-thread-hooks]\n"
            "       [--expires S] [--log-level N] [-o name=value]...\n",
            prog);
}

int main(int argc, char **argv) {
    static const struct option longs[] = {
        {"aor", required_argument, NULL, 'a'},       {"sip-port", required_argument, NULL, 'p'},
        {"listen", required_argument, NULL, 'l'},    {"bootstrap", required_argument, NULL, 'b'},
        {"key-file", required_argument, NULL, 'k'},  {"delivery", required_argument, NULL, 'd'},
        {"no-thread-hooks", no_argument, NULL, 'n'}, {"expires", required_argument, NULL, 'e'},
        {"log-level", required_argument, NULL, 'v'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "o:h", longs, NULL)) != -1) {
        switch (opt) {
        case 'a': app.aor = optarg; break;
        case 'p': app.sip_port = atoi(optarg); break;
        case 'l': app.listen = optarg; break;
        case 'b': app.bootstrap = *optarg ? optarg : NULL; break;
        case 'k': app.key_file = optarg; break;
        case 'd': app.fd_delivery = strcmp(optarg, "thread") != 0; break;
        case 'n': app.thread_hooks = 0; break;
        case 'e': app.expires = atoi(optarg); break;
        case 'v': app.log_level = atoi(optarg); break;
        case 'o':
            if (app.n_options == MAX_OPTIONS) {
                fprintf(stderr, "at most %d -o options\n", MAX_OPTIONS);
                return 2;
            }
            app.options[app.n_options++] = optarg;
            break;
        default: usage(argv[0]); return opt == 'h' ? 0 : 2;
        }
    }
    if (app.aor == NULL || strncmp(app.aor, "sip:", 4) != 0 || strchr(app.aor, '@') == NULL) {
        usage(argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* pjsua first: pjlib must be up before chordsip's threads start, since
     * their start hook calls pj_thread_register(). */
    int r = start_pjsua();
    if (r != 0) {
        fprintf(stderr, "pjsua-p2p: pjsua did not start\n");
        pjsua_destroy();
        return r == -75 ? 75 : 1;
    }
    if (start_node() != 0 || publish_binding() != CHORDSIP_OK) {
        shutdown_all();
        return 1;
    }
    char addr[64] = "", id[41] = "";
    chordsip_node_addr(app.node, addr, sizeof addr);
    chordsip_node_id(app.node, id, sizeof id);
    say("ready aor=%s contact=%s node=%s id=%s delivery=%s", app.aor, app.contact, addr, id,
        app.fd_delivery ? "fd" : "thread");

    /* The main thread reads commands; PJSIP's worker thread does everything
     * else, and the library refreshes the binding. */
    char buf[4096];
    size_t have = 0;
    int quit = 0;
    while (!quit) {
        struct pollfd p = {.fd = 0, .events = POLLIN};
        int n = poll(&p, 1, 500);
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        ssize_t got = read(0, buf + have, sizeof buf - 1 - have);
        if (got <= 0)
            break; /* EOF: quit */
        have += (size_t)got;
        buf[have] = 0;
        char *nl;
        while (!quit && (nl = strchr(buf, '\n')) != NULL) {
            *nl = 0;
            quit = command(buf);
            have -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, have + 1);
        }
        if (have == sizeof buf - 1)
            have = 0; /* a line too long: dropped */
    }
    shutdown_all();
    int failures = atomic_load(&app.failures);
    say("bye (%d failures)", failures);
    return failures ? 1 : 0;
}
