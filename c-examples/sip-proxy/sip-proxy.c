/*
 * sip-proxy: a small peer-to-peer SIP registrar and stateless proxy over UDP.
 *
 * Each process runs one chordsip node and one UDP SIP socket. REGISTERs are
 * stored in the overlay (chordsip_node_register), so any proxy of the overlay
 * finds a user registered at any other one: requests for an AOR of a
 * served domain are looked up (chordsip_node_lookup_aor_async on the Request-URI)
 * and forwarded statelessly (RFC 3261 §16.11) to the contact with the
 * highest q; other requests (in-dialog ones to a contact) are forwarded as
 * they are, by Route or Request-URI (route.c); dialog-creating requests are
 * record-routed; responses go back along the Via headers.
 *
 *   sip-proxy --listen 127.0.0.1:5060 --overlay-listen 127.0.0.1:4000
 *             [--domain D[,D...]]...
 *             [--bootstrap ip:port[,ip:port...]] [--overlay-key-file FILE]
 *             [--writer-key-file FILE]
 *             [--overlay NAME] [--overlay-set name=value]... [--log[=LEVEL]]
 *
 * One thread: poll() on the SIP socket, the node's event fd (fd delivery
 * mode) and a self-pipe for SIGINT/SIGTERM, which make the node leave the
 * ring gracefully. Nothing blocks on the overlay: a request that needs it
 * (a REGISTER's digest check and bindings, a lookup) keeps a copy of its
 * datagram (struct pending) while the library works, and is handled again
 * from that copy when its callback runs from chordsip_node_process(), up
 * to MAX_IN_FLIGHT at once (then the SIP socket waits).
 * See README.md for what is and is not implemented.
 */
#include <chordsip.h>

#include "route.h"
#include "sipmsg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_DATAGRAM 65535
#define MAX_SEND 65507 /* largest UDP payload over IPv4 */
#define DEFAULT_EXPIRES 3600
#define MAX_FORWARDS_DEFAULT 70
/* Requests waiting for the overlay at once; beyond it, the socket waits. */
#define MAX_IN_FLIGHT 4096
#define BRANCH_MAGIC "z9hG4bK"
#define BRANCH_PREFIX BRANCH_MAGIC "csp"
#define TAG_PREFIX "csp"
#define SERVER_LINE "Server: chordsip-sip-proxy/" CHORDSIP_VERSION "\r\n"
#define ALLOW_LINE                                                                                 \
    "Allow: REGISTER, INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, SUBSCRIBE, "         \
    "NOTIFY, REFER, MESSAGE\r\n"

enum { LOG_ERROR = 1, LOG_WARN = 2, LOG_INFO = 3, LOG_DEBUG = 4 };

struct addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

struct counters {
    uint64_t received, malformed, registers, forwarded_requests, forwarded_responses, replies,
        dropped, auth_refused, overlay_waits, retransmissions_absorbed;
};

struct proxy {
    chordsip_node *node;
    int sip_fd, event_fd, sig_rd;
    struct addr self;
    char self_host[72];      /* "127.0.0.1" or "[::1]": as written in our Via */
    int self_port;
    char self_hostport[96];  /* "127.0.0.1:5060" */
    int log_level;           /* 0: quiet */
    int no_auth;             /* --no-auth: REGISTERs are not authenticated */
    struct domains domains;  /* --domain: what is looked up and registered */
    uint8_t flow_secret[32]; /* authenticates our RFC 5626 flow tokens (random per run) */
    struct counters n;
    size_t in_flight; /* requests waiting for the overlay (struct pending) */
    int closing;      /* leaving: waiting requests are dropped, not resumed */
};

/* What identifies a request's transaction (method, top Via's branch and
 * sent-by, CSeq), to absorb the retransmissions of one still waiting. */
#define TXN_ID_LEN 224
#define TXN_BUCKETS 8192

/* What a request waits for. */
enum stage { AWAIT_AUTH = 1, AWAIT_REGISTER, AWAIT_LOOKUP };

/* A request waiting for the overlay: a copy of its datagram and where it
 * came from (the request is parsed again from these when it resumes), and
 * the answer once its callback ran (the lists are lent for that call). */
struct pending {
    struct proxy *px;
    struct pending *next_waiting; /* the next one in its bucket of `waiting` */
    char txn_id[TXN_ID_LEN];      /* "" when it has none (no RFC 3261 branch) */
    enum stage stage;
    int kept; /* handed to the library again: not freed when this step ends */
    struct addr src;
    chordsip_result rc;
    uint32_t verdict;
    char challenge[CHORDSIP_MAX_CHALLENGE_LEN];
    const chordsip_bindings *list;
    const chordsip_register_outcome *outcome;
    size_t len;
    char buf[]; /* the datagram, NUL-terminated */
};

/* A request being handled: the message, where it came from, its top Via. */
struct req {
    const struct sip_msg *m;
    const struct addr *src;
    char src_ip[64]; /* without brackets */
    int src_port;
    const struct sip_header *via_h; /* first Via header */
    str_t via_elem, via_rest;       /* its first element, and the others */
    struct sip_via via;
    int add_received;
    uint32_t cseq;
    int is_ack;
    const char *raw; /* the datagram */
    size_t raw_len;
    char txn_id[TXN_ID_LEN]; /* see txn_id_of; "" when none */
    struct pending *pending; /* set when the request resumes with the overlay's answer */
};

static volatile sig_atomic_t got_signal;   /* SIGINT/SIGTERM: leave and exit */
static volatile sig_atomic_t dump_requested; /* SIGUSR1: statistics to stderr */
static int sig_wr = -1;

/* One datagram in, one out: static buffers, the proxy is single-threaded. */
static char inbuf[MAX_DATAGRAM + 1];
static char outbuf[MAX_DATAGRAM + 1];
/* C strings copied out of a request for the library (at most twice its size). */
static char arena[2 * (MAX_DATAGRAM + 1)];
static size_t arena_used;

/* ---- logging --------------------------------------------------------------- */

static struct proxy *log_px;

__attribute__((format(printf, 2, 3))) static void logmsg(int level, const char *fmt, ...) {
    if (log_px == NULL || level > log_px->log_level)
        return;
    static const char *names[] = {"", "error", "warn", "info", "debug", "trace"};
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sip-proxy[%s] %s: ", log_px->self_hostport, names[level > 5 ? 5 : level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void on_library_log(uint32_t level, const char *msg, void *ud) {
    (void)ud;
    logmsg(level > LOG_DEBUG ? LOG_DEBUG : (int)level, "chordsip: %s", msg);
}

static void on_event(const chordsip_event *e, void *ud) {
    (void)ud;
    switch (e->kind) {
    case CHORDSIP_EVENT_PREDECESSOR:
    case CHORDSIP_EVENT_SUCCESSOR:
        logmsg(LOG_INFO, "overlay: %s is now %s",
               e->kind == CHORDSIP_EVENT_PREDECESSOR ? "predecessor" : "successor",
               e->has_peer ? e->peer.addr : "(none)");
        break;
    case CHORDSIP_EVENT_KEYS_IN:
        logmsg(LOG_DEBUG, "overlay: %" PRIu64 " entries moved in", e->count);
        break;
    case CHORDSIP_EVENT_KEYS_OUT:
        logmsg(LOG_DEBUG, "overlay: %" PRIu64 " entries handed away", e->count);
        break;
    case CHORDSIP_EVENT_MEMBER_UP:
    case CHORDSIP_EVENT_MEMBER_DOWN: /* one-hop overlays only */
        logmsg(LOG_INFO, "overlay: member %s %s", e->peer.addr,
               e->kind == CHORDSIP_EVENT_MEMBER_UP ? "up" : "down");
        break;
    default: /* kinds added by later versions */
        break;
    }
}

/* A bounded, printable copy of untrusted bytes for the log. */
static const char *printable(str_t s, char *buf, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < s.n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c >= 0x20 && c < 0x7f) {
            buf[o++] = (char)c;
        } else {
            snprintf(buf + o, cap - o, "\\x%02x", c);
            o += 4;
        }
    }
    if (cap > 0)
        buf[o < cap ? o : cap - 1] = '\0';
    return buf;
}

/* ---- output buffer --------------------------------------------------------- */

struct ob {
    char *p;
    size_t n, cap;
    int overflow;
};

static void ob_init(struct ob *o) {
    o->p = outbuf;
    o->n = 0;
    o->cap = MAX_SEND;
    o->overflow = 0;
}

static void ob_put(struct ob *o, const char *s, size_t n) {
    if (o->overflow || n > o->cap - o->n) {
        o->overflow = 1;
        return;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void ob_s(struct ob *o, str_t s) { ob_put(o, s.p, s.n); }
static void ob_c(struct ob *o, const char *s) { ob_put(o, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void ob_fmt(struct ob *o, const char *fmt, ...) {
    if (o->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->p + o->n, o->cap - o->n + 1, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k > o->cap - o->n)
        o->overflow = 1;
    else
        o->n += (size_t)k;
}

/* A header value with folded line breaks turned into single spaces. */
static void ob_value(struct ob *o, str_t v) {
    size_t i = 0;
    while (i < v.n) {
        size_t j = i;
        while (j < v.n && v.p[j] != '\r' && v.p[j] != '\n')
            j++;
        size_t e = j;
        if (j < v.n)
            while (e > i && (v.p[e - 1] == ' ' || v.p[e - 1] == '\t'))
                e--;
        ob_put(o, v.p + i, e - i);
        if (j >= v.n)
            break;
        while (j < v.n && (v.p[j] == '\r' || v.p[j] == '\n' || v.p[j] == ' ' || v.p[j] == '\t'))
            j++;
        ob_c(o, " ");
        i = j;
    }
}

/* "Name: value\r\n", the name as the sender wrote it (compact forms kept). */
static void ob_header(struct ob *o, const struct sip_header *h) {
    ob_s(o, h->name);
    ob_c(o, ": ");
    ob_value(o, h->value);
    ob_c(o, "\r\n");
}

/* ---- addresses ------------------------------------------------------------- */

/* A numeric host (IPv4, [IPv6] or bare IPv6) or "localhost", and a port. */
static int addr_from_host(str_t host, int port, int family_hint, struct addr *a) {
    char h[64];
    if (host.n >= 2 && host.p[0] == '[' && host.p[host.n - 1] == ']') {
        host.p++;
        host.n -= 2;
    }
    if (host.n == 0 || host.n >= sizeof h)
        return -1;
    memcpy(h, host.p, host.n);
    h[host.n] = '\0';
    memset(a, 0, sizeof *a);
    if (strcasecmp(h, "localhost") == 0)
        strcpy(h, family_hint == AF_INET6 ? "::1" : "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)&a->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->ss;
    if (inet_pton(AF_INET, h, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        a->len = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, h, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        a->len = sizeof *v6;
        return 0;
    }
    return -1;
}

/* "ip:port" or "[ipv6]:port" from the command line. */
static int addr_parse(const char *text, struct addr *a) {
    str_t s = {text, strlen(text)}, host;
    int port;
    if (sip_split_hostport(s, &host, &port) != 0 || port == 0)
        return -1;
    return addr_from_host(host, port, AF_INET, a);
}

static int addr_port(const struct addr *a) {
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* The IP without brackets. */
static void addr_ip(const struct addr *a, char *buf, size_t n) {
    const void *src = a->ss.ss_family == AF_INET
                          ? (const void *)&((const struct sockaddr_in *)&a->ss)->sin_addr
                          : (const void *)&((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
    if (inet_ntop(a->ss.ss_family, src, buf, (socklen_t)n) == NULL)
        snprintf(buf, n, "?");
}

/* "ip:port" / "[ip]:port". */
static void addr_text(const struct addr *a, char *buf, size_t n) {
    char ip[64];
    addr_ip(a, ip, sizeof ip);
    snprintf(buf, n, a->ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, addr_port(a));
}

static int addr_same_ip(const struct addr *a, const struct addr *b) {
    if (a->ss.ss_family != b->ss.ss_family)
        return 0;
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)&b->ss)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr,
                  &((const struct sockaddr_in6 *)&b->ss)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

static int addr_eq(const struct addr *a, const struct addr *b) {
    return addr_same_ip(a, b) && addr_port(a) == addr_port(b);
}

/* Where a SIP URI (or a name-addr holding one) points: host and port (5060
 * when absent). Numeric hosts only: no DNS on the proxy's only thread. */
static int uri_addr(str_t uri, int family_hint, struct addr *a) {
    str_t host, u = str_trim(uri), params;
    int port;
    if (u.n > 0 && (u.p[0] == '<' || u.p[0] == '"') && sip_name_addr(u, &u, &params) != 0)
        return -1;
    if (sip_uri_hostport(u, NULL, &host, &port) != 0)
        return -1;
    return addr_from_host(host, port ? port : 5060, family_hint, a);
}

/* Are a SIP URI's host and port this proxy's address (route.h's names_self_fn)? */
static int uri_names_self(const void *ctx, str_t uri) {
    const struct proxy *px = ctx;
    struct addr a;
    return uri_addr(uri, px->self.ss.ss_family, &a) == 0 && addr_eq(&a, &px->self);
}

/* ---- RFC 5626 flows (a UA behind NAT reached through this proxy) ----------- */

/* The flow token naming `a` (chordsip_sip_flow_token), into buf (64 bytes). */
static int flow_token(const struct proxy *px, const struct addr *a, char *buf, size_t n) {
    char text[96];
    addr_text(a, text, sizeof text);
    return chordsip_sip_flow_token(px->flow_secret, sizeof px->flow_secret, text, buf, n) ==
                   CHORDSIP_OK
               ? 0
               : -1;
}

/* Reads the flow token `user` (a URI's user part naming this proxy): 1 and
 * the flow's address as a URI ("sip:ip:port") in hop when it is ours;
 * 0 when the user part is no flow token; -1 when it is one made with
 * another secret or altered (RFC 5626 §5.3: 403). */
static int flow_of(const struct proxy *px, str_t user, char *hop, size_t n, struct addr *a) {
    char token[80], text[96];
    if (user.n == 0 || user.n >= sizeof token)
        return 0;
    memcpy(token, user.p, user.n);
    token[user.n] = '\0';
    chordsip_result rc = chordsip_sip_flow_address(px->flow_secret, sizeof px->flow_secret,
                                                   token, text, sizeof text);
    if (rc == CHORDSIP_ERR_UNAUTHORIZED)
        return -1;
    if (rc != CHORDSIP_OK || addr_parse(text, a) != 0)
        return 0;
    snprintf(hop, n, "sip:%s", text);
    return 1;
}

/* Does a request come straight from a user agent (one Via value)? */
static int from_ua(const struct req *r) {
    if (r->via_rest.n > 0)
        return 0;
    for (size_t i = 0; i < r->m->nhdr; i++)
        if (r->m->hdr[i].id == H_VIA && &r->m->hdr[i] != r->via_h)
            return 0;
    return 1;
}

/* Is the UA that sent `r` behind NAT, as far as its request shows: its
 * Contact is not at the IP the request came from, or it asks for outbound
 * (RFC 5626: `ob` in the Contact URI, or a reg-id)? */
static int ua_behind_nat(const struct req *r) {
    const struct sip_header *c = sip_find(r->m, H_CONTACT);
    str_t uri, params, v, first, rest;
    if (c == NULL)
        return 0;
    rest = c->value;
    if (!sip_next_elem(&rest, &first) || sip_name_addr(first, &uri, &params) != 0)
        return 0;
    if (sip_param(params, "reg-id", &v))
        return 1;
    const char *semi = memchr(uri.p, ';', uri.n);
    if (semi != NULL && sip_param((str_t){semi, uri.n - (size_t)(semi - uri.p)}, "ob", &v))
        return 1;
    struct addr ca;
    return uri_addr(uri, r->src->ss.ss_family, &ca) != 0 || !addr_same_ip(&ca, r->src);
}

/* ---- sending ---------------------------------------------------------------- */

static void send_out(struct proxy *px, const struct ob *o, const struct addr *to, const char *what) {
    char dst[96];
    addr_text(to, dst, sizeof dst);
    if (o->overflow) {
        logmsg(LOG_WARN, "%s to %s not sent: larger than a UDP datagram", what, dst);
        px->n.dropped++;
        return;
    }
    if (sendto(px->sip_fd, o->p, o->n, 0, (const struct sockaddr *)&to->ss, to->len) < 0) {
        logmsg(LOG_WARN, "%s to %s: sendto: %s", what, dst, strerror(errno));
        px->n.dropped++;
        return;
    }
    logmsg(LOG_DEBUG, "%s sent to %s (%zu bytes)", what, dst, o->n);
}

/* ---- the request's top Via (RFC 3261 §18.2.1, RFC 3581) ----------------------- */

/* Methods are case-sensitive (RFC 3261 §7.1). */
static int method_is(const struct sip_msg *m, const char *name) {
    return m->method.n == strlen(name) && memcmp(m->method.p, name, m->method.n) == 0;
}

static int req_init(struct req *r, const struct sip_msg *m, const struct addr *src) {
    memset(r, 0, sizeof *r);
    r->m = m;
    r->src = src;
    addr_ip(src, r->src_ip, sizeof r->src_ip);
    r->src_port = addr_port(src);
    r->is_ack = method_is(m, "ACK");
    r->via_h = sip_find(m, H_VIA);
    if (r->via_h == NULL)
        return -1;
    str_t rest = r->via_h->value;
    if (!sip_next_elem(&rest, &r->via_elem) || sip_parse_via(r->via_elem, &r->via) != 0)
        return -1;
    r->via_rest = str_trim(rest);
    struct addr sent_by;
    r->add_received = r->via.has_rport ||
                      addr_from_host(r->via.host, 1, src->ss.ss_family, &sent_by) != 0 ||
                      !addr_same_ip(&sent_by, src);
    return 0;
}

/* The top Via element as it leaves: received= and rport= filled in. */
static void ob_top_via(struct ob *o, const struct req *r) {
    const struct sip_via *v = &r->via;
    ob_s(o, r->via_h->name);
    ob_c(o, ": SIP/2.0/");
    ob_s(o, v->transport);
    ob_c(o, " ");
    ob_s(o, v->host);
    if (v->port)
        ob_fmt(o, ":%d", v->port);
    str_t rest = v->params, name, val;
    while (sip_next_param(&rest, &name, &val)) {
        if (str_ieq(name, "received"))
            continue; /* ours replaces it */
        if (str_ieq(name, "rport")) {
            ob_fmt(o, ";rport=%d", r->src_port);
            continue;
        }
        ob_c(o, ";");
        ob_s(o, name);
        if (val.p != NULL) {
            ob_c(o, "=");
            ob_s(o, val);
        }
    }
    if (r->add_received)
        ob_fmt(o, ";received=%s", r->src_ip);
    if (r->via_rest.n > 0) {
        ob_c(o, ", ");
        ob_value(o, r->via_rest);
    }
    ob_c(o, "\r\n");
}

/* Where a response to this request goes (§18.2.2, RFC 3581): the source IP,
 * at the source port with rport, else the sent-by port. */
static void reply_dest(const struct req *r, struct addr *to) {
    *to = *r->src;
    int port = r->via.has_rport ? r->src_port : (r->via.port ? r->via.port : 5060);
    if (to->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&to->ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&to->ss)->sin6_port = htons((uint16_t)port);
}

static str_t tag_of(const struct sip_msg *m, enum sip_hdr_id id) {
    str_t none = {NULL, 0}, uri, params, tag;
    const struct sip_header *h = sip_find(m, id);
    if (h == NULL || sip_name_addr(h->value, &uri, &params) != 0 || !sip_param(params, "tag", &tag) ||
        tag.p == NULL)
        return none;
    return tag;
}

/* The To-tag of our own responses: the same for every retransmission of a
 * request and for the ACK of a non-2xx answer (same branch, Call-ID, From-tag
 * and CSeq number), so that ACK can be recognised and absorbed statelessly. */
static void our_tag(const struct req *r, char out[32]) {
    const struct sip_header *cid = sip_find(r->m, H_CALL_ID);
    str_t ftag = tag_of(r->m, H_FROM);
    uint64_t h = FNV64_INIT;
    if (r->via.branch.p != NULL && str_iprefix(r->via.branch, BRANCH_MAGIC))
        h = fnv64(h, r->via.branch.p, r->via.branch.n);
    else
        h = fnv64(h, &r->cseq, sizeof r->cseq);
    h = fnv64(h, "|", 1);
    if (cid != NULL)
        h = fnv64(h, cid->value.p, cid->value.n);
    h = fnv64(h, "|", 1);
    if (ftag.p != NULL)
        h = fnv64(h, ftag.p, ftag.n);
    snprintf(out, 32, TAG_PREFIX "%016" PRIx64, h);
}

/* A stateless response to `r`, with `extra` header lines (CRLF-terminated). */
static void reply(struct proxy *px, const struct req *r, int code, const char *reason,
                  const char *extra) {
    if (r->is_ack)
        return; /* an ACK is never answered */
    struct ob o;
    ob_init(&o);
    ob_fmt(&o, "SIP/2.0 %d %s\r\n", code, reason);
    const struct sip_msg *m = r->m;
    for (size_t i = 0; i < m->nhdr; i++) {
        const struct sip_header *h = &m->hdr[i];
        switch (h->id) {
        case H_VIA:
            if (h == r->via_h)
                ob_top_via(&o, r);
            else
                ob_header(&o, h);
            break;
        case H_TO:
            ob_s(&o, h->name);
            ob_c(&o, ": ");
            ob_value(&o, h->value);
            if (code > 100 && h == sip_find(m, H_TO) && tag_of(m, H_TO).p == NULL) {
                char tag[32];
                our_tag(r, tag);
                ob_fmt(&o, ";tag=%s", tag);
            }
            ob_c(&o, "\r\n");
            break;
        case H_FROM:
        case H_CALL_ID:
        case H_CSEQ:
            ob_header(&o, h);
            break;
        default:
            break;
        }
    }
    if (extra != NULL)
        ob_c(&o, extra);
    ob_c(&o, SERVER_LINE "Content-Length: 0\r\n\r\n");
    struct addr to;
    reply_dest(r, &to);
    char what[64];
    snprintf(what, sizeof what, "%d reply", code);
    px->n.replies++;
    send_out(px, &o, &to, what);
}

/* ---- option tags ------------------------------------------------------------ */

/* 1 when any option tag in the headers `id` is not in `supported`
 * (comma-separated list of lower-case tags); the offenders go to `bad`. */
static int unsupported_tags(const struct sip_msg *m, enum sip_hdr_id id, const char *const *supported,
                            char *bad, size_t badlen) {
    int any = 0;
    size_t o = 0;
    bad[0] = '\0';
    for (size_t i = 0; i < m->nhdr; i++) {
        if (m->hdr[i].id != id)
            continue;
        str_t rest = m->hdr[i].value, tag;
        while (sip_next_elem(&rest, &tag)) {
            int ok = 0;
            for (const char *const *s = supported; *s != NULL; s++)
                ok |= str_ieq(tag, *s);
            if (ok)
                continue;
            any = 1;
            if (o + tag.n + 3 < badlen) {
                if (o > 0) {
                    memcpy(bad + o, ", ", 2);
                    o += 2;
                }
                for (size_t k = 0; k < tag.n; k++) /* keep the reply well-formed */
                    bad[o++] = (tag.p[k] > 0x20 && tag.p[k] < 0x7f && tag.p[k] != ',') ? tag.p[k] : '_';
                bad[o] = '\0';
            }
        }
    }
    return any;
}

static int has_tag(const struct sip_msg *m, enum sip_hdr_id id, const char *want) {
    for (size_t i = 0; i < m->nhdr; i++) {
        if (m->hdr[i].id != id)
            continue;
        str_t rest = m->hdr[i].value, tag;
        while (sip_next_elem(&rest, &tag))
            if (str_ieq(tag, want))
                return 1;
    }
    return 0;
}

/* ---- REGISTER ------------------------------------------------------------------ */

static const char *arena_cstr(str_t s) {
    if (arena_used >= sizeof arena)
        return NULL;
    char *dst = arena + arena_used;
    if (str_cstr(dst, sizeof arena - arena_used, s) != 0)
        return NULL;
    arena_used += strlen(dst) + 1;
    return dst;
}

/* Expires values: decimal seconds; malformed ones count as 3600 (RFC 3261
 * §20.19), huge ones are clamped to the C API's largest value. */
static int64_t parse_expires(str_t v) {
    uint64_t x;
    if (v.p == NULL || str_to_u64(v, 0xFFFFFFFEu, &x) != 0)
        return DEFAULT_EXPIRES;
    return (int64_t)x;
}

/* A library result answered as the library's table says (status, reason,
 * Min-Expires / Retry-After): the same answers as the Kamailio module's. */
static void reply_result(struct proxy *px, const struct req *r, chordsip_result rc) {
    reply(px, r, (int)chordsip_result_sip_status(rc), chordsip_result_sip_reason(rc),
          chordsip_result_sip_headers(rc));
}

/* ---- requests waiting for the overlay ------------------------------------------ */

/* The requests waiting, by transaction: a retransmission of one of them is
 * absorbed (its answer is on the way) instead of asking the overlay again,
 * and arriving after its original, late, at the next hop. */
static struct pending *waiting[TXN_BUCKETS];

/* A request's transaction id (RFC 3261 §17.2.3: branch, sent-by and method;
 * the CSeq number too) into out; "" for a request without a RFC 3261 branch
 * or with an id too long to keep. */
static void txn_id_of(const struct req *r, char *out, size_t n) {
    const struct sip_via *v = &r->via;
    out[0] = '\0';
    if (v->branch.p == NULL || !str_iprefix(v->branch, BRANCH_MAGIC))
        return;
    int k = snprintf(out, n, "%.*s|%.*s|%.*s:%d|%" PRIu32, (int)r->m->method.n, r->m->method.p,
                     (int)v->branch.n, v->branch.p, (int)v->host.n, v->host.p, v->port, r->cseq);
    if (k < 0 || (size_t)k >= n)
        out[0] = '\0';
}

static struct pending **waiting_bucket(const char *id) {
    uint64_t h = fnv64(FNV64_INIT, id, strlen(id));
    return &waiting[h % TXN_BUCKETS];
}

static struct pending *waiting_find(const char *id) {
    if (id[0] == '\0')
        return NULL;
    for (struct pending *p = *waiting_bucket(id); p != NULL; p = p->next_waiting)
        if (strcmp(p->txn_id, id) == 0)
            return p;
    return NULL;
}

/* A request's copy is done with: out of `waiting`, freed. */
static void pending_free(struct proxy *px, struct pending *p) {
    if (p->txn_id[0] != '\0') {
        struct pending **at = waiting_bucket(p->txn_id);
        while (*at != NULL && *at != p)
            at = &(*at)->next_waiting;
        if (*at == p)
            *at = p->next_waiting;
    }
    free(p);
    px->in_flight--;
}

/* The request's waiting state for `stage`: the one it resumed with, or a
 * new copy of its datagram. NULL when out of memory. */
static struct pending *pending_keep(struct proxy *px, struct req *r, enum stage stage) {
    struct pending *p = r->pending;
    if (p == NULL) {
        p = malloc(sizeof *p + r->raw_len + 1);
        if (p == NULL)
            return NULL;
        memset(p, 0, sizeof *p);
        p->px = px;
        p->src = *r->src;
        p->len = r->raw_len;
        memcpy(p->buf, r->raw, r->raw_len);
        p->buf[r->raw_len] = '\0';
        memcpy(p->txn_id, r->txn_id, sizeof p->txn_id);
        if (p->txn_id[0] != '\0' && waiting_find(p->txn_id) == NULL) {
            struct pending **at = waiting_bucket(p->txn_id);
            p->next_waiting = *at;
            *at = p;
        } else {
            p->txn_id[0] = '\0';
        }
        px->in_flight++;
        px->n.overlay_waits++;
        r->pending = p;
    }
    p->stage = stage;
    p->kept = 1;
    return p;
}

/* The library refused to start the call `pending_keep` prepared for: the
 * request is answered now, and its copy freed when this step ends. */
static void pending_unkeep(struct req *r) {
    if (r->pending != NULL)
        r->pending->kept = 0;
}

static void handle_register(struct proxy *px, struct req *r);
static void handle_forward(struct proxy *px, struct req *r);
static const char *check_request(struct req *r);

/* A request whose datagram was new and not kept: its copy goes now. */
static void pending_end_fresh(struct proxy *px, struct req *r) {
    struct pending *p = r->pending;
    if (p != NULL && !p->kept) {
        pending_free(px, p);
        r->pending = NULL;
    }
}

/* The overlay answered: the request is parsed again from its copy and
 * handled from where it stopped (its handler looks at p->stage). */
static void resume(struct pending *p) {
    struct proxy *px = p->px;
    static struct sip_msg m;
    const char *why = NULL;
    struct req r;
    p->kept = 0;
    if (!px->closing && sip_parse(&m, p->buf, p->len, &why) == SIP_PARSE_OK &&
        req_init(&r, &m, &p->src) == 0 && check_request(&r) == NULL) {
        r.raw = p->buf;
        r.raw_len = p->len;
        memcpy(r.txn_id, p->txn_id, sizeof r.txn_id);
        r.pending = p;
        if (method_is(&m, "REGISTER"))
            handle_register(px, &r);
        else
            handle_forward(px, &r);
    }
    if (!p->kept)
        pending_free(px, p);
}

static void on_authenticated(chordsip_result rc, uint32_t verdict, const char *challenge,
                             void *ud) {
    struct pending *p = ud;
    p->rc = rc;
    p->verdict = verdict;
    snprintf(p->challenge, sizeof p->challenge, "%s", challenge != NULL ? challenge : "");
    resume(p);
}

static void on_registered(chordsip_result rc, const chordsip_bindings *list,
                          const chordsip_register_outcome *outcome, void *ud) {
    struct pending *p = ud;
    p->rc = rc;
    p->list = list;
    p->outcome = outcome;
    resume(p);
}

static void on_looked_up(chordsip_result rc, const chordsip_bindings *list, void *ud) {
    struct pending *p = ud;
    p->rc = rc;
    p->list = list;
    resume(p);
}

/* The request's Authorization value (the first), NUL-terminated in the arena; NULL if none. */
static const char *authorization_of(const struct sip_msg *m) {
    for (size_t i = 0; i < m->nhdr; i++)
        if (str_ieq(m->hdr[i].name, "Authorization"))
            return arena_cstr(m->hdr[i].value);
    return NULL;
}

/* Digest authentication of a REGISTER for `aor` (RFC 3261 §22.4) against the
 * credentials kept in the overlay (chordsip_node_authenticate_async): a new
 * request starts the check and waits (1); resumed with the verdict, it may
 * go on (0), else the answer (401 with a challenge, 403, 400, or the
 * overlay's error) is sent (-1). */
static int authenticate_register(struct proxy *px, struct req *r, const char *aor) {
    if (px->no_auth || (r->pending != NULL && r->pending->stage != AWAIT_AUTH))
        return 0;
    uint32_t verdict = 0;
    char extra[CHORDSIP_MAX_CHALLENGE_LEN + 32];
    const char *challenge = "";
    chordsip_result rc;
    if (r->pending == NULL) {
        struct pending *p = pending_keep(px, r, AWAIT_AUTH);
        if (p == NULL) {
            reply(px, r, 500, "Server Internal Error (out of memory)", NULL);
            return -1;
        }
        rc = chordsip_node_authenticate_async(px->node, "REGISTER", aor, authorization_of(r->m),
                                              on_authenticated, p);
        if (rc == CHORDSIP_OK)
            return 1;
        pending_unkeep(r);
    } else {
        rc = r->pending->rc;
        verdict = r->pending->verdict;
        challenge = r->pending->challenge;
    }
    if (rc == CHORDSIP_ERR_INVALID_ARGUMENT || rc == CHORDSIP_ERR_BAD_UTF8) {
        reply(px, r, 400, rc == CHORDSIP_ERR_BAD_UTF8 ? "Bad Request (not UTF-8)" : "Bad Request (To)",
              NULL);
        return -1;
    }
    if (rc != CHORDSIP_OK) {
        logmsg(LOG_ERROR, "REGISTER %s: authentication: %s", aor, chordsip_result_str(rc));
        reply_result(px, r, rc);
        return -1;
    }
    if (verdict == CHORDSIP_AUTH_OK)
        return 0;
    const char *reason = NULL;
    int status = chordsip_auth_status(verdict, &reason);
    px->n.auth_refused++;
    logmsg(LOG_DEBUG, "REGISTER %s: %d %s", aor, status, reason);
    if (status == 401) {
        snprintf(extra, sizeof extra, "WWW-Authenticate: %s\r\n", challenge);
        reply(px, r, status, reason, extra);
    } else {
        reply(px, r, status, reason, NULL);
    }
    return -1;
}

/* §10.3 steps 1 and 3: a REGISTER is ours when its Request-URI names one of
 * our domains (or this proxy) and its address-of-record is in one of them. */
static int register_domain_served(const struct proxy *px, str_t ruri, str_t aor) {
    str_t host;
    int port;
    if (sip_uri_hostport(ruri, NULL, &host, &port) != 0 ||
        !(domain_served(&px->domains, host) || uri_names_self(px, ruri)))
        return 0;
    return sip_uri_hostport(aor, NULL, &host, &port) == 0 && domain_served(&px->domains, host);
}

/* A REGISTER, in up to three steps (each run again from the top on the
 * request's copy, so everything it parsed is parsed again): the checks and
 * the digest check started; the verdict, and the bindings' write started;
 * the 200 OK with the bindings the overlay answered. */
static void handle_register(struct proxy *px, struct req *r) {
    const struct sip_msg *m = r->m;
    static const char *const supported[] = {"path", "outbound", NULL};
    char bad[256], extra[600];
    if (r->pending == NULL)
        px->n.registers++;
    if (unsupported_tags(m, H_REQUIRE, supported, bad, sizeof bad)) { /* §10.3 step 2 */
        snprintf(extra, sizeof extra, "Unsupported: %s\r\n", bad);
        reply(px, r, 420, "Bad Extension", extra);
        return;
    }
    arena_used = 0;
    str_t uri, params, v;
    const struct sip_header *to = sip_find(m, H_TO), *cid = sip_find(m, H_CALL_ID);
    const char *aor, *call_id;
    if (sip_name_addr(to->value, &uri, &params) != 0 || (aor = arena_cstr(uri)) == NULL) {
        reply(px, r, 400, "Bad Request (To)", NULL);
        return;
    }
    if (!register_domain_served(px, m->ruri, uri)) {
        reply(px, r, 403, "Forbidden (not our domain)", NULL);
        return;
    }
    if ((call_id = arena_cstr(cid->value)) == NULL) {
        reply(px, r, 400, "Bad Request (Call-ID)", NULL);
        return;
    }
    if (authenticate_register(px, r, aor) != 0)
        return; /* waiting for the verdict, or answered */
    int64_t expires = -1;
    const struct sip_header *eh = sip_find(m, H_EXPIRES);
    if (eh != NULL)
        expires = parse_expires(eh->value);

    chordsip_contact contacts[CHORDSIP_MAX_CONTACTS];
    size_t nc = 0;
    int star = 0, differs = 0, natted = 0, wants_outbound = 0;
    for (size_t i = 0; i < m->nhdr; i++) {
        if (m->hdr[i].id != H_CONTACT)
            continue;
        str_t rest = m->hdr[i].value, elem;
        while (sip_next_elem(&rest, &elem)) {
            if (str_ieq(elem, "*")) {
                star = 1;
                continue;
            }
            if (nc == CHORDSIP_MAX_CONTACTS) { /* what the library would answer */
                reply_result(px, r, CHORDSIP_ERR_TOO_LARGE);
                return;
            }
            chordsip_contact *c = &contacts[nc];
            memset(c, 0, sizeof *c);
            if (sip_name_addr(elem, &uri, &params) != 0 || (c->uri = arena_cstr(uri)) == NULL) {
                reply(px, r, 400, "Bad Request (Contact)", NULL);
                return;
            }
            c->expires = sip_param(params, "expires", &v) ? parse_expires(v) : -1;
            c->q = NULL;
            if (sip_param(params, "q", &v) && (v.p == NULL || (c->q = arena_cstr(v)) == NULL)) {
                reply(px, r, 400, "Bad Request (q)", NULL);
                return;
            }
            c->instance = NULL;
            if (sip_param(params, "+sip.instance", &v) &&
                (v.p == NULL || (c->instance = arena_cstr(sip_unquote(v))) == NULL)) {
                reply(px, r, 400, "Bad Request (+sip.instance)", NULL);
                return;
            }
            c->reg_id = -1;
            if (sip_param(params, "reg-id", &v)) {
                uint64_t id;
                if (v.p == NULL || str_to_u64(v, UINT32_MAX, &id) != 0 || id > 0xFFFFFFFEu) {
                    reply(px, r, 400, "Bad Request (reg-id)", NULL);
                    return;
                }
                c->reg_id = (int64_t)id;
                wants_outbound = 1;
            }
            /* `received`: the source address, when it differs from the contact */
            struct addr ca;
            int resolved = uri_addr(uri, r->src->ss.ss_family, &ca) == 0;
            if (!resolved || !addr_eq(&ca, r->src))
                differs = 1;
            /* behind NAT: another IP (another port of the same IP is a UA
             * registering for its other socket, or a third-party REGISTER) */
            if (!resolved || !addr_same_ip(&ca, r->src))
                natted = 1;
            nc++;
        }
    }
    const char *path[CHORDSIP_MAX_PATH];
    size_t np = 0;
    for (size_t i = 0; i < m->nhdr; i++) {
        if (m->hdr[i].id != H_PATH)
            continue;
        str_t rest = m->hdr[i].value, elem;
        while (sip_next_elem(&rest, &elem)) {
            if (np == CHORDSIP_MAX_PATH || (path[np] = arena_cstr(elem)) == NULL) {
                reply(px, r, 400, "Bad Request (Path)", NULL);
                return;
            }
            np++;
        }
    }
    /* RFC 5626 edge proxy: a UA behind NAT that registers here directly (its
     * Contact at another IP, or `ob`/reg-id: a UA that rewrote its Contact to
     * the NAT's mapping still asks for outbound) is reached through us, over
     * the flow its REGISTER opened (the NAT lets in only what comes from
     * where the UA sent to): our Path, with the flow's token, goes first in
     * its bindings, so every proxy of the overlay routes its requests here. */
    char own_path[256];
    if (np == 0 && from_ua(r) && (natted || wants_outbound || ua_behind_nat(r))) {
        char token[64];
        if (flow_token(px, r->src, token, sizeof token) != 0) {
            reply(px, r, 500, "Server Internal Error (flow token)", NULL);
            return;
        }
        snprintf(own_path, sizeof own_path, "<sip:%s@%s;lr;ob>", token, px->self_hostport);
        path[np++] = own_path;
    }
    char received[96];
    addr_text(r->src, received, sizeof received);

    chordsip_register req = {
        .aor = aor,
        .call_id = call_id,
        .cseq = r->cseq,
        .star = (uint32_t)star,
        .expires = expires,
        .contacts = nc > 0 ? contacts : NULL,
        .contacts_len = nc,
        .path = np > 0 ? path : NULL,
        .path_len = np,
        .received = differs ? received : NULL,
    };
    chordsip_result rc;
    if (r->pending == NULL || r->pending->stage != AWAIT_REGISTER) {
        struct pending *p = pending_keep(px, r, AWAIT_REGISTER);
        if (p == NULL) {
            reply(px, r, 500, "Server Internal Error (out of memory)", NULL);
            return;
        }
        rc = chordsip_node_register_async(px->node, &req, on_registered, p);
        if (rc == CHORDSIP_OK)
            return; /* the request was copied; the answer resumes us */
        pending_unkeep(r);
    } else {
        rc = r->pending->rc;
    }
    if (rc != CHORDSIP_OK) {
        logmsg(LOG_INFO, "REGISTER %s from %s: %s", aor, received, chordsip_result_str(rc));
        reply_result(px, r, rc);
        return;
    }
    const chordsip_bindings *list = r->pending->list;
    const chordsip_register_outcome *outcome = r->pending->outcome;
    logmsg(LOG_DEBUG, "REGISTER %s from %s: %u inserted, %u updated, %u deleted, %zu bound", aor,
           received, outcome->inserted, outcome->updated, outcome->deleted,
           chordsip_bindings_len(list));

    /* 200 OK (§10.3 step 8): one Contact per current binding with its expires. */
    if (arena_used + 2 >= sizeof arena) {
        reply(px, r, 500, "Server Internal Error (response too large)", NULL);
        return;
    }
    struct ob hdrs = {arena + arena_used, 0, sizeof arena - arena_used - 1, 0};
    for (size_t i = 0; i < chordsip_bindings_len(list); i++) {
        char value[2048]; /* <uri>;expires=N;q=..;+sip.instance=..;reg-id=.. */
        if (chordsip_bindings_contact(list, i, value, sizeof value, NULL) == CHORDSIP_OK)
            ob_fmt(&hdrs, "Contact: %s\r\n", value);
    }
    /* RFC 3327 §5.3: Path echoed to a UA that supports it */
    if (np > 0 && has_tag(m, H_SUPPORTED, "path"))
        for (size_t i = 0; i < np; i++)
            ob_fmt(&hdrs, "Path: %s\r\n", path[i]);
    if (wants_outbound && has_tag(m, H_SUPPORTED, "outbound"))
        ob_c(&hdrs, "Require: outbound\r\n");
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    ob_fmt(&hdrs, "Date: %s\r\nSupported: path, outbound\r\n", date);
    if (hdrs.overflow) {
        reply(px, r, 500, "Server Internal Error (response too large)", NULL);
        return;
    }
    hdrs.p[hdrs.n] = '\0';
    reply(px, r, 200, "OK", hdrs.p);
}

/* ---- forwarding ------------------------------------------------------------------ */

static void lookup_error(struct proxy *px, const struct req *r, chordsip_result rc) {
    if (rc == CHORDSIP_ERR_INVALID_ARGUMENT && !str_iprefix(r->m->ruri, "sip:") &&
        !str_iprefix(r->m->ruri, "sips:") && !str_iprefix(r->m->ruri, "tel:"))
        reply(px, r, 416, "Unsupported URI Scheme", NULL);
    else
        reply_result(px, r, rc);
}

/* Our branch for the forwarded request (§16.11): a hash of the incoming top
 * Via's branch (and sent-by), so retransmissions, the CANCEL and the ACK of a
 * non-2xx answer map to the same branch; without a RFC 3261 branch, a hash of
 * what identifies the transaction (§16.11's fallback). */
static void our_branch(const struct req *r, char out[48]) {
    const struct sip_msg *m = r->m;
    uint64_t h1 = FNV64_INIT, h2 = 0x84222325cbf29ce4ULL;
    const struct sip_via *v = &r->via;
    if (v->branch.p != NULL && str_iprefix(v->branch, BRANCH_MAGIC) && v->branch.n > 7) {
        h1 = fnv64(h1, v->branch.p, v->branch.n);
        h2 = fnv64(h2, v->branch.p, v->branch.n);
    } else {
        const struct sip_header *cid = sip_find(m, H_CALL_ID);
        str_t parts[5] = {m->ruri, tag_of(m, H_TO), tag_of(m, H_FROM),
                          cid ? cid->value : m->ruri, r->via_elem};
        for (int i = 0; i < 5; i++) {
            if (parts[i].p != NULL) {
                h1 = fnv64(h1, parts[i].p, parts[i].n);
                h2 = fnv64(h2, parts[i].p, parts[i].n);
            }
            h1 = fnv64(h1, "|", 1);
            h2 = fnv64(h2, "|", 1);
        }
        h1 = fnv64(h1, &r->cseq, sizeof r->cseq);
        h2 = fnv64(h2, &r->cseq, sizeof r->cseq);
    }
    h1 = fnv64(h1, v->host.p, v->host.n);
    h2 = fnv64(h2, &v->port, sizeof v->port);
    snprintf(out, 48, BRANCH_PREFIX "%016" PRIx64 "%016" PRIx64, h1, h2);
}

/* Where a request goes and as what (§16.6 steps 2-7). */
struct forward_to {
    str_t ruri;                    /* its Request-URI */
    str_t hop_text;                /* the URI (or Route element) whose address is the next hop */
    const char *hop_what;          /* where that came from, for the log */
    const chordsip_bindings *path; /* a binding whose Path values become Routes (RFC 3327) */
    size_t path_skip;              /* leading Path values left out (ours, resolved here) */
    size_t path_len;
    const char *to_flow;           /* the flow token of the target when sent over a flow */
};

/* Sends the request on (§16.6): new Request-URI, our Via on top, our
 * Record-Route for a dialog-creating request, a binding's Path as Routes,
 * Max-Forwards decremented, the Route values §16.4 removed left out, the
 * rest as received. */
static void forward(struct proxy *px, const struct req *r, const struct route_plan *plan,
                    const struct forward_to *f, uint64_t mf, const char *ruri_text) {
    const struct sip_msg *m = r->m;
    char mb[48], rb[160];
    struct addr hop;
    if (uri_addr(f->hop_text, px->self.ss.ss_family, &hop) != 0) {
        logmsg(LOG_INFO, "%s %s: the next hop (%s) is not a numeric address",
               printable(m->method, mb, sizeof mb),
               printable((str_t){ruri_text, strlen(ruri_text)}, rb, sizeof rb), f->hop_what);
        reply(px, r, 480, "Temporarily Unavailable (unresolvable next hop)", NULL);
        return;
    }
    /* The Route values naming us are gone: a request sent to ourselves now
     * would come back with nothing new to route it by, again and again until
     * Max-Forwards runs out (§16.3 step 4's loop, found without state). */
    if (addr_eq(&hop, &px->self)) {
        logmsg(LOG_INFO, "%s %s: the next hop (%s) is this proxy: loop",
               printable(m->method, mb, sizeof mb),
               printable((str_t){ruri_text, strlen(ruri_text)}, rb, sizeof rb), f->hop_what);
        if (r->is_ack)
            px->n.dropped++;
        reply(px, r, 482, "Loop Detected", NULL);
        return;
    }

    struct ob o;
    ob_init(&o);
    char branch[48];
    our_branch(r, branch);
    ob_s(&o, m->method);
    ob_c(&o, " ");
    ob_s(&o, f->ruri);
    ob_fmt(&o, " SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=%s\r\n", px->self_hostport, branch);
    /* above every Record-Route already there (§16.6 step 4); ;lr: we route
     * loosely. Where the callee or the caller is reached over a flow (a UA
     * behind NAT), the entry names the flow (RFC 5626 §5.3), the callee's
     * first: in-dialog requests then go over the flow of the side they are
     * meant for (route_plan keeps the last of our Route values). */
    if (plan->record_route) {
        char from_flow[64] = "";
        if (from_ua(r) && ua_behind_nat(r) && flow_token(px, r->src, from_flow, sizeof from_flow) != 0)
            from_flow[0] = '\0';
        if (f->to_flow != NULL)
            ob_fmt(&o, "Record-Route: <sip:%s@%s;lr>\r\n", f->to_flow, px->self_hostport);
        if (from_flow[0] != '\0')
            ob_fmt(&o, "Record-Route: <sip:%s@%s;lr>\r\n", from_flow, px->self_hostport);
        if (f->to_flow == NULL && from_flow[0] == '\0')
            ob_fmt(&o, "Record-Route: <sip:%s;lr>\r\n", px->self_hostport);
    }
    for (size_t i = f->path_skip; i < f->path_len; i++) {
        const char *p = chordsip_bindings_path(f->path, 0, i);
        if (p != NULL)
            ob_fmt(&o, "Route: %s\r\n", p);
    }
    int mf_done = 0;
    size_t route_index = 0;
    for (size_t i = 0; i < m->nhdr; i++) {
        const struct sip_header *h = &m->hdr[i];
        switch (h->id) {
        case H_VIA:
            if (h == r->via_h)
                ob_top_via(&o, r);
            else
                ob_header(&o, h);
            break;
        case H_MAX_FORWARDS:
            if (!mf_done)
                ob_fmt(&o, "Max-Forwards: %" PRIu64 "\r\n", mf - 1);
            mf_done = 1;
            break;
        case H_ROUTE: { /* the values the plan keeps, in route_iter's order */
            str_t rest = h->value, elem;
            int kept = 0;
            while (sip_next_elem(&rest, &elem)) {
                if (!route_keeps(plan, route_index++))
                    continue;
                if (kept++ == 0) {
                    ob_s(&o, h->name);
                    ob_c(&o, ": ");
                } else {
                    ob_c(&o, ", ");
                }
                ob_value(&o, elem);
            }
            if (kept > 0)
                ob_c(&o, "\r\n");
            break;
        }
        case H_CONTENT_LENGTH:
            break; /* rewritten below */
        default:
            ob_header(&o, h);
            break;
        }
    }
    if (!mf_done)
        ob_fmt(&o, "Max-Forwards: %d\r\n", MAX_FORWARDS_DEFAULT);
    ob_fmt(&o, "Content-Length: %zu\r\n\r\n", m->body.n);
    ob_s(&o, m->body);
    if (o.overflow) {
        reply(px, r, 513, "Message Too Large", NULL);
        return;
    }
    char what[96];
    snprintf(what, sizeof what, "%.*s for %.40s", (int)(m->method.n > 20 ? 20 : m->method.n),
             m->method.p, ruri_text);
    px->n.forwarded_requests++;
    send_out(px, &o, &hop, what);
}

/* A request to forward, in up to two steps (the second run again from the
 * top on the request's copy): everything up to the location service, whose
 * lookup it starts; then the forwarding to the binding the overlay answered. */
static void handle_forward(struct proxy *px, struct req *r) {
    const struct sip_msg *m = r->m;
    char bad[256], extra[400];
    int is_cancel = method_is(m, "CANCEL");

    /* §16.3 step 3: Max-Forwards */
    const struct sip_header *mfh = sip_find(m, H_MAX_FORWARDS);
    uint64_t mf = MAX_FORWARDS_DEFAULT + 1;
    if (mfh != NULL) {
        if (str_to_u64(mfh->value, UINT32_MAX, &mf) != 0) {
            reply(px, r, 400, "Bad Request (Max-Forwards)", NULL);
            return;
        }
        if (mf == 0) {
            reply(px, r, 483, "Too Many Hops", NULL);
            return;
        }
        if (mf > MAX_FORWARDS_DEFAULT + 1)
            mf = MAX_FORWARDS_DEFAULT + 1; /* absurd values are capped */
    }
    /* §16.3 step 5: Proxy-Require (this proxy supports no extension) */
    static const char *const none[] = {NULL};
    if (!r->is_ack && !is_cancel && unsupported_tags(m, H_PROXY_REQUIRE, none, bad, sizeof bad)) {
        snprintf(extra, sizeof extra, "Unsupported: %s\r\n", bad);
        reply(px, r, 420, "Bad Extension", extra);
        return;
    }
    /* §16.4 and §16.5 (route.c): our Route values removed, a strict router's
     * Request-URI restored; then the Request-URI is this proxy, looked up, or
     * forwarded as it is. */
    struct route_plan plan;
    route_plan(&plan, m, &px->domains, uri_names_self, px);
    if (plan.target == ROUTE_TO_PROXY) {
        if (method_is(m, "OPTIONS"))
            reply(px, r, 200, "OK",
                  ALLOW_LINE "Accept: application/sdp\r\nSupported: path, outbound\r\n");
        else if (r->is_ack)
            px->n.dropped++;
        else
            reply(px, r, 404, "Not Found", NULL);
        return;
    }
    char ruri[CHORDSIP_MAX_URI_LEN + 1];
    if (str_cstr(ruri, sizeof ruri, plan.ruri) != 0) {
        reply(px, r, 400, "Bad Request (Request-URI)", NULL);
        return;
    }
    /* RFC 5626 §5.3: our Route value names a flow (from our Path or our
     * Record-Route). A request that comes from that flow goes on as routed;
     * any other goes over the flow, to the UA behind its NAT. */
    if (plan.flow.p != NULL) {
        char flow_hop[112], token[80];
        struct addr flow_addr;
        int fr = flow_of(px, plan.flow, flow_hop, sizeof flow_hop, &flow_addr);
        if (fr < 0) {
            if (r->is_ack)
                px->n.dropped++;
            else
                reply(px, r, 403, "Forbidden (flow token)", NULL);
            return;
        }
        if (fr > 0 && !addr_eq(&flow_addr, r->src) && plan.flow.n < sizeof token) {
            memcpy(token, plan.flow.p, plan.flow.n);
            token[plan.flow.n] = '\0';
            struct forward_to f = {
                .ruri = plan.ruri,
                .hop_text = {flow_hop, strlen(flow_hop)},
                .hop_what = "flow",
                .to_flow = token,
            };
            forward(px, r, &plan, &f, mf, ruri);
            return;
        }
    }
    /* Not ours to look up (a UA's contact, another domain): §16.5, the
     * Request-URI is the only target; the next hop is a remaining Route, else
     * the Request-URI's address. */
    if (plan.target == ROUTE_AS_IS) {
        struct forward_to f = {
            .ruri = plan.ruri,
            .hop_text = plan.next_route.p != NULL ? plan.next_route : plan.ruri,
            .hop_what = plan.next_route.p != NULL ? "Route" : "Request-URI",
        };
        forward(px, r, &plan, &f, mf, ruri);
        return;
    }

    /* Location service: the Request-URI's bindings, highest q first. */
    chordsip_result rc;
    if (r->pending == NULL || r->pending->stage != AWAIT_LOOKUP) {
        struct pending *p = pending_keep(px, r, AWAIT_LOOKUP);
        if (p == NULL) {
            if (!r->is_ack)
                reply(px, r, 500, "Server Internal Error (out of memory)", NULL);
            return;
        }
        rc = chordsip_node_lookup_aor_async(px->node, ruri, on_looked_up, p);
        if (rc == CHORDSIP_OK)
            return; /* the answer resumes us */
        pending_unkeep(r);
    } else {
        rc = r->pending->rc;
    }
    const chordsip_bindings *list = r->pending->list;
    if (rc != CHORDSIP_OK) {
        logmsg(LOG_INFO, "%.*s %s: lookup: %s", (int)m->method.n, m->method.p, ruri,
               chordsip_result_str(rc));
        if (!r->is_ack)
            lookup_error(px, r, rc);
        return;
    }
    chordsip_binding b;
    if (chordsip_bindings_len(list) == 0 || chordsip_bindings_get(list, 0, &b) != CHORDSIP_OK) {
        logmsg(LOG_DEBUG, "%.*s %s: not registered", (int)m->method.n, m->method.p, ruri);
        if (!r->is_ack)
            reply(px, r, 404, "Not Found", NULL);
        else
            px->n.dropped++;
        return;
    }

    /* The target: R-URI := contact (without URI headers). The next hop is
     * the library's choice (chordsip_bindings_next_hop: the first Path entry,
     * RFC 3327; else `received` for an RFC 5626 flow or a UA behind NAT; else
     * the contact), except that a remaining Route goes before all but a Path. */
    str_t target = {b.contact, strlen(b.contact)};
    const char *at = memchr(target.p, '@', target.n); /* a user part may hold '?' */
    const char *hp = at != NULL ? at : target.p;
    const char *q = memchr(hp, '?', target.n - (size_t)(hp - target.p));
    if (q != NULL)
        target.n = (size_t)(q - target.p);
    uint32_t kind = CHORDSIP_HOP_CONTACT;
    const char *hop_uri = NULL;
    if (chordsip_bindings_next_hop(list, 0, &kind, &hop_uri) != CHORDSIP_OK)
        kind = CHORDSIP_HOP_CONTACT;
    struct forward_to f = {
        .ruri = target,
        .hop_text = target,
        .hop_what = kind == CHORDSIP_HOP_PATH        ? "Path"
                    : plan.next_route.p != NULL      ? "Route"
                    : kind == CHORDSIP_HOP_RECEIVED ? "received"
                                                     : "contact",
        .path = list,
        .path_len = b.path_len,
    };
    if (kind != CHORDSIP_HOP_PATH && plan.next_route.p != NULL)
        f.hop_text = plan.next_route;
    else if (kind != CHORDSIP_HOP_CONTACT)
        f.hop_text = (str_t){hop_uri, strlen(hop_uri)};
    /* The first Path value is ours (the UA registered here, behind NAT):
     * straight over its flow, without a Route naming us. */
    char flow_hop[112], flow_token_text[80];
    if (kind == CHORDSIP_HOP_PATH && hop_uri != NULL) {
        str_t puri, pparams, puser, phost;
        int pport;
        struct addr flow_addr;
        str_t p0 = {hop_uri, strlen(hop_uri)};
        if (sip_name_addr(p0, &puri, &pparams) != 0)
            puri = p0;
        if (uri_names_self(px, puri) && sip_uri_hostport(puri, &puser, &phost, &pport) == 0) {
            f.path_skip = 1;
            f.hop_text = plan.next_route.p != NULL ? plan.next_route : target;
            f.hop_what = plan.next_route.p != NULL ? "Route" : "contact";
            if (flow_of(px, puser, flow_hop, sizeof flow_hop, &flow_addr) > 0 &&
                puser.n < sizeof flow_token_text) {
                memcpy(flow_token_text, puser.p, puser.n);
                flow_token_text[puser.n] = '\0';
                f.hop_text = (str_t){flow_hop, strlen(flow_hop)};
                f.hop_what = "flow";
                f.to_flow = flow_token_text;
            } else if (b.path_len > 1) {
                const char *p1 = chordsip_bindings_path(list, 0, 1);
                if (p1 != NULL) {
                    f.hop_text = (str_t){p1, strlen(p1)};
                    f.hop_what = "Path";
                }
            }
        }
    }
    forward(px, r, &plan, &f, mf, ruri);
}

/* ---- requests and responses -------------------------------------------------------- */

/* Headers every request needs (§8.1.1); CSeq's method must be the request's. */
static const char *check_request(struct req *r) {
    const struct sip_msg *m = r->m;
    if (sip_find(m, H_FROM) == NULL)
        return "Bad Request (missing From)";
    if (sip_find(m, H_TO) == NULL)
        return "Bad Request (missing To)";
    const struct sip_header *cid = sip_find(m, H_CALL_ID);
    if (cid == NULL || cid->value.n == 0)
        return "Bad Request (missing Call-ID)";
    const struct sip_header *cs = sip_find(m, H_CSEQ);
    if (cs == NULL)
        return "Bad Request (missing CSeq)";
    str_t v = cs->value;
    size_t i = 0;
    while (i < v.n && v.p[i] >= '0' && v.p[i] <= '9')
        i++;
    str_t num = {v.p, i}, method = str_trim((str_t){v.p + i, v.n - i});
    uint64_t n;
    if (i == 0 || str_to_u64(num, UINT64_MAX >> 1, &n) != 0 || n > 0x7FFFFFFFu)
        return "Bad Request (CSeq)";
    r->cseq = (uint32_t)n;
    if (method.n != m->method.n || memcmp(method.p, m->method.p, method.n) != 0)
        return "Bad Request (CSeq method)";
    return NULL;
}

static void handle_request(struct proxy *px, const struct sip_msg *m, enum sip_parse_rc prc,
                           const char *why, const char *buf, size_t len,
                           const struct addr *src) {
    struct req r;
    if (req_init(&r, m, src) != 0) {
        logmsg(LOG_INFO, "request without a usable Via dropped");
        px->n.dropped++;
        return;
    }
    if (prc != SIP_PARSE_OK) {
        char reason[96];
        snprintf(reason, sizeof reason, "Bad Request (%s)", why);
        reply(px, &r, 400, reason, NULL);
        return;
    }
    const char *bad = check_request(&r);
    if (bad != NULL) {
        reply(px, &r, 400, bad, NULL);
        return;
    }
    if (r.is_ack) {
        /* The ACK of one of our own (non-2xx) replies ends here. */
        char tag[32];
        our_tag(&r, tag);
        str_t to_tag = tag_of(m, H_TO);
        if (to_tag.p != NULL && str_ieq(to_tag, tag)) {
            logmsg(LOG_DEBUG, "ACK of our reply absorbed");
            return;
        }
    }
    r.raw = buf;
    r.raw_len = len;
    txn_id_of(&r, r.txn_id, sizeof r.txn_id);
    if (waiting_find(r.txn_id) != NULL) {
        logmsg(LOG_DEBUG, "retransmission of a request waiting for the overlay absorbed");
        px->n.retransmissions_absorbed++;
        return;
    }
    if (method_is(m, "REGISTER"))
        handle_register(px, &r);
    else
        handle_forward(px, &r);
    pending_end_fresh(px, &r);
}

/* §16.11 / §16.7 step 3: a response whose top Via is ours loses it and goes
 * to the next Via's received/rport or sent-by. */
static void handle_response(struct proxy *px, const struct sip_msg *m, const char *buf, size_t len) {
    const struct sip_header *vh = sip_find(m, H_VIA);
    str_t rest, top, next = {NULL, 0};
    struct sip_via ours, nv;
    if (vh == NULL) {
        px->n.dropped++;
        return;
    }
    rest = vh->value;
    if (!sip_next_elem(&rest, &top) || sip_parse_via(top, &ours) != 0 ||
        ours.branch.p == NULL || !str_iprefix(ours.branch, BRANCH_PREFIX) ||
        !str_ieq(ours.host, px->self_host) || ours.port != px->self_port) {
        char vb[100];
        logmsg(LOG_INFO, "response %d not for us (top Via %s) dropped", m->status,
               printable(top, vb, sizeof vb));
        px->n.dropped++;
        return;
    }
    rest = str_trim(rest);
    str_t tmp = rest;
    if (!sip_next_elem(&tmp, &next)) {
        next.p = NULL;
        for (size_t i = (size_t)(vh - m->hdr) + 1; i < m->nhdr && next.p == NULL; i++)
            if (m->hdr[i].id == H_VIA) {
                tmp = m->hdr[i].value;
                if (!sip_next_elem(&tmp, &next))
                    next.p = NULL;
            }
    }
    if (next.p == NULL || sip_parse_via(next, &nv) != 0) {
        logmsg(LOG_INFO, "response %d: no usable second Via, dropped", m->status);
        px->n.dropped++;
        return;
    }
    /* RFC 3581 / §18.2.2: received and rport win over sent-by */
    struct addr to;
    uint64_t rport = 0;
    int port = nv.port ? nv.port : 5060;
    if (nv.has_rport && nv.rport.n > 0 && str_to_u64(nv.rport, 65535, &rport) == 0 && rport > 0)
        port = (int)rport;
    str_t host = nv.received.p != NULL && nv.received.n > 0 ? nv.received : nv.host;
    if (addr_from_host(host, port, px->self.ss.ss_family, &to) != 0) {
        char hb[80];
        logmsg(LOG_INFO, "response %d: next hop %s not numeric, dropped", m->status,
               printable(host, hb, sizeof hb));
        px->n.dropped++;
        return;
    }
    /* The datagram as received, minus our Via element. */
    struct ob o;
    ob_init(&o);
    size_t vstart = (size_t)(vh->line.p - buf), vend = vstart + vh->line.n;
    ob_put(&o, buf, vstart);
    if (rest.n > 0) {
        ob_s(&o, vh->name);
        ob_c(&o, ": ");
        ob_value(&o, rest);
        ob_c(&o, "\r\n");
    }
    ob_put(&o, buf + vend, len - vend);
    char what[32];
    snprintf(what, sizeof what, "response %d", m->status);
    px->n.forwarded_responses++;
    send_out(px, &o, &to, what);
}

static void handle_datagram(struct proxy *px, const char *buf, size_t len, const struct addr *src) {
    static struct sip_msg m;
    const char *why = NULL;
    px->n.received++;
    enum sip_parse_rc prc = sip_parse(&m, buf, len, &why);
    if (prc == SIP_PARSE_BAD_START) {
        /* CRLF keep-alives (RFC 5626 §4.4.1) are silently ignored */
        if (strcmp(why, "empty") != 0) {
            char src_text[96];
            addr_text(src, src_text, sizeof src_text);
            logmsg(LOG_INFO, "non-SIP datagram of %zu bytes from %s dropped (%s)", len, src_text,
                   why);
            px->n.malformed++;
        }
        return;
    }
    if (prc != SIP_PARSE_OK)
        px->n.malformed++;
    if (m.is_request)
        handle_request(px, &m, prc, why, buf, len, src);
    else if (prc == SIP_PARSE_OK)
        handle_response(px, &m, buf, len);
    else
        px->n.dropped++;
}

/* ---- main ------------------------------------------------------------------------ */

static void on_signal(int sig) {
    int saved = errno;
    if (sig == SIGUSR1)
        dump_requested = 1;
    else
        got_signal = sig;
    if (sig_wr >= 0) {
        char c = 1;
        ssize_t w = write(sig_wr, &c, 1);
        (void)w;
    }
    errno = saved;
}

static void print_counters(const struct proxy *px) {
    fprintf(stderr,
            "sip-proxy[%s]: %" PRIu64 " datagrams (%" PRIu64 " malformed), %" PRIu64
            " REGISTERs (%" PRIu64 " not authenticated), %" PRIu64 " requests and %" PRIu64
            " responses forwarded, %" PRIu64 " replies, %" PRIu64 " dropped, %" PRIu64
            " waits for the overlay (%zu now, %" PRIu64 " retransmissions absorbed)\n",
            px->self_hostport, px->n.received, px->n.malformed, px->n.registers,
            px->n.auth_refused, px->n.forwarded_requests, px->n.forwarded_responses,
            px->n.replies, px->n.dropped, px->n.overlay_waits, px->in_flight,
            px->n.retransmissions_absorbed);
}

/* SIGUSR1: the proxy's counters and the node's statistics on stderr. */
static void dump_stats(struct proxy *px) {
    print_counters(px);
    size_t needed = 0;
    chordsip_node_info(px->node, 1, NULL, 0, &needed);
    char *buf = needed > 0 ? malloc(needed) : NULL;
    if (buf != NULL && chordsip_node_info(px->node, 1, buf, needed, NULL) == CHORDSIP_OK)
        fprintf(stderr, "%s%s", buf, (needed > 1 && buf[needed - 2] != '\n') ? "\n" : "");
    free(buf);
}

static void usage(FILE *f, const char *prog) {
    fprintf(f,
            "usage: %s [options]\n"
            "  --listen IP:PORT            SIP over UDP (default 127.0.0.1:5060)\n"
            "  --overlay-listen IP:PORT    the chordsip node (default 127.0.0.1:0: any port)\n"
            "  --bootstrap IP:PORT[,...]   join the overlay through these nodes (none: new ring)\n"
            "  --domain D[,D...]           the domains served: registered and looked up; other\n"
            "                              Request-URIs are forwarded as they are (repeatable;\n"
            "                              default: every host name, no IP address)\n"
            "  --overlay NAME              overlay name (default chordsip)\n"
            "  --overlay-key-file FILE     overlay key (file bytes, trailing newline stripped)\n"
            "  --writer-key-file FILE      writer key (`chordsip keygen`): proxies that share it\n"
            "                              act as one registrar (default: a new key each start)\n"
            "  --overlay-set NAME=VALUE    any chordsip_config_set option (repeatable)\n"
            "  --credentials-key-file FILE the key that opens the users' credentials in the\n"
            "                              overlay (`chordsip keygen`, as `chordsip user` uses)\n"
            "  --credential-admins KEYS    public keys whose credential records count (comma-\n"
            "                              separated); REGISTERs are authenticated with them\n"
            "  --no-auth                   accept REGISTERs without authentication (tests only)\n"
            "  --join-timeout SECONDS      keep retrying the bootstrap nodes (default 30)\n"
            "  --log[=LEVEL]               log to stderr: 1 error .. 4 debug (default 3)\n"
            "SIGINT/SIGTERM: leave the overlay and exit; SIGUSR1: statistics to stderr.\n",
            prog);
}

static int read_key_file(const char *path, uint8_t *key, size_t cap, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "sip-proxy: cannot read key file %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = fread(key, 1, cap, f);
    int more = fgetc(f) != EOF;
    fclose(f);
    if (more) {
        fprintf(stderr, "sip-proxy: key file %s is over %zu bytes\n", path, cap);
        return -1;
    }
    while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r'))
        n--;
    if (n == 0) {
        fprintf(stderr, "sip-proxy: key file %s is empty\n", path);
        return -1;
    }
    *len = n;
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    const char *listen = "127.0.0.1:5060", *overlay_listen = "127.0.0.1:0", *bootstrap = NULL;
    const char *overlay = NULL, *key_file = NULL, *writer_key_file = NULL;
    const char *creds_file = NULL, *admins = NULL;
    const char *sets[32];
    size_t nsets = 0;
    double join_timeout = 30;
    static struct proxy px = {.sip_fd = -1, .event_fd = -1, .sig_rd = -1};
    enum {
        O_LISTEN = 1, O_OVL, O_BOOT, O_NAME, O_KEY, O_WKEY, O_SET, O_JOIN, O_LOG, O_DOMAIN, O_HELP,
        O_CREDS, O_ADMINS, O_NOAUTH
    };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"overlay-listen", required_argument, NULL, O_OVL},
        {"bootstrap", required_argument, NULL, O_BOOT},
        {"overlay", required_argument, NULL, O_NAME},
        {"overlay-key-file", required_argument, NULL, O_KEY},
        {"writer-key-file", required_argument, NULL, O_WKEY},
        {"overlay-set", required_argument, NULL, O_SET},
        {"join-timeout", required_argument, NULL, O_JOIN},
        {"log", optional_argument, NULL, O_LOG},
        {"domain", required_argument, NULL, O_DOMAIN},
        {"help", no_argument, NULL, O_HELP},
        {"credentials-key-file", required_argument, NULL, O_CREDS},
        {"credential-admins", required_argument, NULL, O_ADMINS},
        {"no-auth", no_argument, NULL, O_NOAUTH},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case O_LISTEN: listen = optarg; break;
        case O_OVL: overlay_listen = optarg; break;
        case O_BOOT: bootstrap = optarg; break;
        case O_NAME: overlay = optarg; break;
        case O_KEY: key_file = optarg; break;
        case O_WKEY: writer_key_file = optarg; break;
        case O_SET:
            if (nsets == sizeof sets / sizeof sets[0]) {
                fprintf(stderr, "sip-proxy: too many --overlay-set\n");
                return 2;
            }
            sets[nsets++] = optarg;
            break;
        case O_JOIN: join_timeout = atof(optarg); break;
        case O_CREDS: creds_file = optarg; break;
        case O_ADMINS: admins = optarg; break;
        case O_NOAUTH: px.no_auth = 1; break;
        case O_LOG: px.log_level = optarg ? atoi(optarg) : LOG_INFO; break;
        case O_DOMAIN: {
            const char *why = "";
            if (domains_add(&px.domains, optarg, &why) != 0) {
                fprintf(stderr, "sip-proxy: bad --domain %s: %s\n", optarg, why);
                return 2;
            }
            break;
        }
        case O_HELP:
        case 'h': usage(stdout, argv[0]); return 0;
        default: usage(stderr, argv[0]); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr, argv[0]);
        return 2;
    }
    /* Safe by default: a registrar that cannot authenticate does not start. */
    for (size_t i = 0; i < nsets; i++) {
        if (strncmp(sets[i], "credentials_key", 15) == 0)
            creds_file = creds_file ? creds_file : "";
        if (strncmp(sets[i], "credential_admins=", 18) == 0)
            admins = admins ? admins : "";
    }
    if (!px.no_auth && (creds_file == NULL || admins == NULL)) {
        fprintf(stderr, "sip-proxy: REGISTER authentication needs --credentials-key-file and "
                        "--credential-admins (docs: README.md, \"Users\"); --no-auth turns it off\n");
        return 2;
    }
    if (addr_parse(listen, &px.self) != 0) {
        fprintf(stderr, "sip-proxy: bad --listen %s (want ip:port)\n", listen);
        return 2;
    }
    char self_ip[64];
    addr_ip(&px.self, self_ip, sizeof self_ip);
    snprintf(px.self_host, sizeof px.self_host, px.self.ss.ss_family == AF_INET6 ? "[%s]" : "%s",
             self_ip);
    px.self_port = addr_port(&px.self);
    snprintf(px.self_hostport, sizeof px.self_hostport, "%s:%d", px.self_host, px.self_port);
    log_px = &px;
    if (getrandom(px.flow_secret, sizeof px.flow_secret, 0) != (ssize_t)sizeof px.flow_secret) {
        perror("sip-proxy: getrandom");
        return 1;
    }

    /* Signals: the handler only writes to a pipe that poll() watches. */
    int sp[2];
    if (pipe2(sp, O_NONBLOCK | O_CLOEXEC) != 0) {
        perror("sip-proxy: pipe");
        return 1;
    }
    px.sig_rd = sp[0];
    sig_wr = sp[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The SIP socket first: a busy port fails before the overlay is touched. */
    px.sip_fd = socket(px.self.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (px.sip_fd < 0 || bind(px.sip_fd, (struct sockaddr *)&px.self.ss, px.self.len) != 0) {
        fprintf(stderr, "sip-proxy: cannot bind %s: %s\n", listen, strerror(errno));
        return 1;
    }
    int bufsz = 4 << 20;
    setsockopt(px.sip_fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
    setsockopt(px.sip_fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);

    /* The node: fd delivery, so callbacks run on this thread. */
    chordsip_config *cfg = NULL;
    char err[256] = "";
    int status = 1;
    if (chordsip_config_new(&cfg) != CHORDSIP_OK) {
        fprintf(stderr, "sip-proxy: out of memory\n");
        return 1;
    }
    chordsip_result rc = chordsip_config_set(cfg, "listen", overlay_listen, err, sizeof err);
    if (rc == CHORDSIP_OK && overlay != NULL)
        rc = chordsip_config_set(cfg, "overlay", overlay, err, sizeof err);
    if (rc == CHORDSIP_OK && writer_key_file != NULL)
        rc = chordsip_config_set(cfg, "writer_key_file", writer_key_file, err, sizeof err);
    if (rc == CHORDSIP_OK && creds_file != NULL && creds_file[0] != 0)
        rc = chordsip_config_set(cfg, "credentials_key_file", creds_file, err, sizeof err);
    if (rc == CHORDSIP_OK && admins != NULL && admins[0] != 0)
        rc = chordsip_config_set(cfg, "credential_admins", admins, err, sizeof err);
    for (size_t i = 0; rc == CHORDSIP_OK && i < nsets; i++) {
        char name[64];
        const char *eq = strchr(sets[i], '=');
        if (eq == NULL || (size_t)(eq - sets[i]) >= sizeof name) {
            snprintf(err, sizeof err, "--overlay-set %s: want name=value", sets[i]);
            rc = CHORDSIP_ERR_INVALID_ARGUMENT;
            break;
        }
        memcpy(name, sets[i], (size_t)(eq - sets[i]));
        name[eq - sets[i]] = '\0';
        rc = chordsip_config_set(cfg, name, eq + 1, err, sizeof err);
    }
    if (rc == CHORDSIP_OK && key_file != NULL) {
        uint8_t key[4096];
        size_t klen = 0;
        if (read_key_file(key_file, key, sizeof key, &klen) != 0) {
            chordsip_config_free(cfg);
            return 2;
        }
        rc = chordsip_config_set_overlay_key(cfg, key, klen);
        memset(key, 0, sizeof key);
    }
    if (rc == CHORDSIP_OK)
        rc = chordsip_config_set_delivery(cfg, CHORDSIP_DELIVER_FD);
    if (rc == CHORDSIP_OK)
        rc = chordsip_config_set_event_callback(cfg, on_event, NULL);
    if (rc == CHORDSIP_OK && px.log_level > 0)
        rc = chordsip_config_set_log_callback(cfg, (uint32_t)px.log_level, on_library_log, NULL);
    if (rc == CHORDSIP_OK)
        rc = chordsip_node_new(cfg, &px.node, err, sizeof err);
    chordsip_config_free(cfg);
    if (rc != CHORDSIP_OK) {
        fprintf(stderr, "sip-proxy: overlay configuration: %s%s%s\n", chordsip_result_str(rc),
                err[0] ? ": " : "", err);
        return 2;
    }
    chordsip_node_event_fd(px.node, &px.event_fd);

    /* Join (or start a ring), retrying while the bootstrap nodes come up. */
    double give_up = now_s() + join_timeout;
    for (;;) {
        rc = chordsip_node_join(px.node, bootstrap);
        if (rc == CHORDSIP_OK)
            break;
        int retry = (rc == CHORDSIP_ERR_JOIN_FAILED || rc == CHORDSIP_ERR_TIMEOUT ||
                     rc == CHORDSIP_ERR_NO_ROUTE) &&
                    now_s() < give_up && !got_signal;
        fprintf(stderr, "sip-proxy: join %s: %s%s\n", bootstrap ? bootstrap : "(new ring)",
                chordsip_result_str(rc), retry ? "; retrying" : "");
        if (!retry)
            goto out;
        usleep(500 * 1000);
        chordsip_node_process(px.node, NULL);
    }
    char oaddr[64] = "", oid[41] = "";
    chordsip_node_addr(px.node, oaddr, sizeof oaddr);
    chordsip_node_id(px.node, oid, sizeof oid);
    printf("sip-proxy ready: sip %s overlay %s id %s\n", px.self_hostport, oaddr, oid);
    fflush(stdout);

    /* The loop. */
    while (!got_signal) {
        /* At MAX_IN_FLIGHT the SIP socket waits (its buffer holds what
           comes meanwhile) until answers free room. */
        struct pollfd fds[3] = {
            {.fd = px.in_flight < MAX_IN_FLIGHT ? px.sip_fd : -1, .events = POLLIN},
            {.fd = px.event_fd, .events = POLLIN},
            {.fd = px.sig_rd, .events = POLLIN},
        };
        if (poll(fds, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("sip-proxy: poll");
            goto out;
        }
        if (fds[2].revents & POLLIN) {
            char drain[64];
            while (read(px.sig_rd, drain, sizeof drain) > 0)
                ;
            if (got_signal)
                break;
            if (dump_requested) {
                dump_requested = 0;
                dump_stats(&px);
            }
        }
        if (fds[1].revents & POLLIN)
            chordsip_node_process(px.node, NULL);
        if (fds[0].revents & POLLIN) {
            for (int k = 0; k < 64 && !got_signal && px.in_flight < MAX_IN_FLIGHT; k++) {
                struct addr src;
                src.len = sizeof src.ss;
                ssize_t n = recvfrom(px.sip_fd, inbuf, sizeof inbuf - 1, MSG_TRUNC,
                                     (struct sockaddr *)&src.ss, &src.len);
                if (n < 0) {
                    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                        logmsg(LOG_WARN, "recvfrom: %s", strerror(errno));
                    break;
                }
                if ((size_t)n > sizeof inbuf - 1) {
                    logmsg(LOG_INFO, "datagram of %zd bytes dropped (too large)", n);
                    px.n.malformed++;
                    continue;
                }
                if (src.ss.ss_family != AF_INET && src.ss.ss_family != AF_INET6)
                    continue;
                inbuf[n] = '\0';
                handle_datagram(&px, inbuf, (size_t)n, &src);
            }
        }
    }
    status = 0;
    px.closing = 1; /* requests still waiting are dropped as their answers come */
    logmsg(LOG_INFO, "signal %d: leaving the overlay", (int)got_signal);
    rc = chordsip_node_leave(px.node, 3000);
    if (rc != CHORDSIP_OK)
        fprintf(stderr, "sip-proxy: leave: %s\n", chordsip_result_str(rc));
out:
    px.closing = 1;
    chordsip_node_process(px.node, NULL);
    chordsip_node_free(px.node);
    if (px.log_level >= LOG_INFO)
        print_counters(&px);
    close(px.sip_fd);
    close(px.sig_rd);
    close(sig_wr);
    return status;
}
