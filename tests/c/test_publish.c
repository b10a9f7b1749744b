/*
 * Publishing for pure P2P user agents through the C API:
 *  - chordsip_node_publish / _async: a binding stored with the library's own
 *    Call-ID and CSeq, refreshed on the library's timers
 *    (CHORDSIP_EVENT_REFRESHED through chordsip_node_process in fd mode);
 *  - chordsip_node_refresh / _async, chordsip_node_withdraw / _async;
 *  - bad arguments: NULL pointers, bad UTF-8, a Contact header value, a too
 *    brief expires, an AOR not published, a node not started, each with
 *    its code and (where it says why) chordsip_error_detail;
 *  - a graceful leave withdraws what was published; a node freed with a
 *    publish in flight calls back exactly once.
 */
#include "testutil.h"

#include <poll.h>

#define AOR "sip:alice@p2p.example"
#define UA_WRITER_KEY "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"

static chordsip_node *ring[2];

typedef struct {
    int refreshed, failed;
    char aor[128];
    uint32_t expires;
    int result;
    int detail_null;
} events_t;

typedef struct {
    int calls;
    int result;
    uint32_t expires;
} done_t;

static void on_event(const chordsip_event *e, void *ud) {
    events_t *ev = ud;
    if (e->kind != CHORDSIP_EVENT_REFRESHED && e->kind != CHORDSIP_EVENT_REFRESH_FAILED) {
        CHECK(e->aor == NULL && e->detail == NULL);
        return;
    }
    CHECK(e->aor != NULL && strlen(e->aor) < sizeof ev->aor);
    strcpy(ev->aor, e->aor);
    ev->expires = e->expires;
    ev->result = e->result;
    ev->detail_null = e->detail == NULL;
    if (e->kind == CHORDSIP_EVENT_REFRESHED)
        ev->refreshed++;
    else
        ev->failed++;
}

static void on_done(chordsip_result result, uint32_t expires, void *ud) {
    done_t *d = ud;
    d->calls++;
    d->result = result;
    d->expires = expires;
}

/* Runs the node's queue until `cond` holds or `ms` pass. */
#define PUMP_UNTIL(node, cond, ms)                                             \
    do {                                                                       \
        int fd_ = -1;                                                          \
        CHECK_OK(chordsip_node_event_fd(node, &fd_));                          \
        double end_ = now_s() + (double)scaled(ms) / 1000.0;                   \
        while (!(cond) && now_s() < end_) {                                    \
            struct pollfd p_ = {fd_, POLLIN, 0};                               \
            if (poll(&p_, 1, 100) > 0)                                         \
                CHECK_OK(chordsip_node_process(node, NULL));                   \
        }                                                                      \
        CHECK(cond);                                                           \
    } while (0)

static size_t bindings_of(chordsip_node *via, const char *aor, char *contact, size_t cap) {
    chordsip_bindings *l = NULL;
    CHECK_OK(chordsip_node_lookup_aor_all(via, aor, &l));
    size_t n = chordsip_bindings_len(l);
    if (n > 0 && contact != NULL) {
        chordsip_binding b;
        CHECK_OK(chordsip_bindings_get(l, 0, &b));
        CHECK(strlen(b.contact) < cap);
        strcpy(contact, b.contact);
    }
    chordsip_bindings_free(l);
    return n;
}

static void detail_contains(const char *words) {
    char why[512];
    CHECK_OK(chordsip_error_detail(why, sizeof why, NULL));
    if (strstr(why, words) == NULL) {
        fprintf(stderr, "detail %s lacks %s\n", why, words);
        CHECK(0);
    }
}

static chordsip_node *user_agent(events_t *ev) {
    chordsip_config *cfg = fast_config();
    char err[128];
    CHECK_OK(chordsip_config_set(cfg, "writer_key", UA_WRITER_KEY, err, sizeof err));
    CHECK_OK(chordsip_config_set(cfg, "publish_refresh_ms", "300", err, sizeof err));
    CHECK_OK(chordsip_config_set_delivery(cfg, CHORDSIP_DELIVER_FD));
    CHECK_OK(chordsip_config_set_event_callback(cfg, on_event, ev));
    chordsip_node *n = node_from(cfg);
    chordsip_config_free(cfg);
    return n;
}

static void bad_arguments(chordsip_node *ua) {
    chordsip_publication p = {AOR, "sip:alice@127.0.0.1:5070", 600, NULL, NULL};
    CHECK_RC(chordsip_node_publish(NULL, &p, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_publish(ua, NULL, NULL), CHORDSIP_ERR_NULL_POINTER);
    chordsip_publication no_aor = {NULL, "sip:alice@127.0.0.1:5070", 600, NULL, NULL};
    CHECK_RC(chordsip_node_publish(ua, &no_aor, NULL), CHORDSIP_ERR_NULL_POINTER);
    chordsip_publication bad_utf8 = {AOR, "sip:\xff@127.0.0.1", 600, NULL, NULL};
    CHECK_RC(chordsip_node_publish(ua, &bad_utf8, NULL), CHORDSIP_ERR_BAD_UTF8);
    chordsip_publication header = {AOR, "\"Alice\" <sip:alice@127.0.0.1:5070>", 600, NULL, NULL};
    CHECK_RC(chordsip_node_publish(ua, &header, NULL), CHORDSIP_ERR_INVALID_ARGUMENT);
    detail_contains("bare SIP URI");
    chordsip_publication zero = {AOR, "sip:alice@127.0.0.1:5070", 0, NULL, NULL};
    CHECK_RC(chordsip_node_publish(ua, &zero, NULL), CHORDSIP_ERR_INVALID_ARGUMENT);
    detail_contains("withdraw");
    chordsip_publication brief = {AOR, "sip:alice@127.0.0.1:5070", 30, NULL, NULL};
    CHECK_RC(chordsip_node_publish(ua, &brief, NULL), CHORDSIP_ERR_INTERVAL_TOO_BRIEF);
    chordsip_publication high_q = {AOR, "sip:alice@127.0.0.1:5070", 600, "1.5", NULL};
    CHECK_RC(chordsip_node_publish(ua, &high_q, NULL), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_publish_async(ua, &p, NULL, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_refresh(ua, NULL, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_refresh(ua, AOR, NULL), CHORDSIP_ERR_INVALID_ARGUMENT);
    detail_contains("call publish first");
    CHECK_RC(chordsip_node_withdraw(ua, AOR), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_withdraw(NULL, AOR), CHORDSIP_ERR_NULL_POINTER);
    done_t d = {0, 0, 0};
    CHECK_RC(chordsip_node_refresh_async(ua, AOR, on_done, &d), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_withdraw_async(ua, "nope", on_done, &d), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(d.calls == 0);
    CHECK(bindings_of(ring[1], AOR, NULL, 0) == 0);
}

int main(void) {
    test_begin("test_publish", 120);
    chordsip_config *cfg = fast_config();
    for (int i = 0; i < 2; i++) {
        ring[i] = node_from(cfg);
        join_via(ring[i], i ? ring[0] : NULL);
    }
    chordsip_config_free(cfg);
    CHECK(wait_ring(ring, 2, scaled(15) * 1000));

    events_t ev;
    memset(&ev, 0, sizeof ev);
    chordsip_node *ua = user_agent(&ev);
    chordsip_publication p = {AOR, "sip:alice@127.0.0.1:5070", 600, "0.5", NULL};
    CHECK_RC(chordsip_node_publish(ua, &p, NULL), CHORDSIP_ERR_BAD_STATE);
    detail_contains("join");
    join_via(ua, ring[0]);
    note("bad arguments are refused with their reason");
    bad_arguments(ua);

    note("publish, then the library refreshes on its own");
    uint32_t granted = 0;
    CHECK_OK(chordsip_node_publish(ua, &p, &granted));
    CHECK(granted == 600);
    char contact[128];
    CHECK(bindings_of(ring[1], AOR, contact, sizeof contact) == 1);
    CHECK(strcmp(contact, "sip:alice@127.0.0.1:5070") == 0);
    PUMP_UNTIL(ua, ev.refreshed >= 2, 20000);
    CHECK(strcmp(ev.aor, AOR) == 0 && ev.expires == 600);
    CHECK(ev.result == CHORDSIP_OK && ev.detail_null);

    note("a new contact replaces the old one; refresh; withdraw");
    done_t d = {0, 0, 0};
    chordsip_publication moved = {AOR, "sip:alice@127.0.0.2:5072", 300, NULL, NULL};
    CHECK_OK(chordsip_node_publish_async(ua, &moved, on_done, &d));
    PUMP_UNTIL(ua, d.calls == 1, 15000);
    CHECK(d.result == CHORDSIP_OK && d.expires == 300);
    CHECK(bindings_of(ring[0], AOR, contact, sizeof contact) == 1);
    CHECK(strcmp(contact, "sip:alice@127.0.0.2:5072") == 0);
    granted = 0;
    CHECK_OK(chordsip_node_refresh(ua, AOR, &granted));
    CHECK(granted == 300);
    d.calls = 0;
    CHECK_OK(chordsip_node_refresh_async(ua, AOR, on_done, &d));
    PUMP_UNTIL(ua, d.calls == 1, 15000);
    CHECK(d.result == CHORDSIP_OK && d.expires == 300);
    d.calls = 0;
    CHECK_OK(chordsip_node_withdraw_async(ua, AOR, on_done, &d));
    PUMP_UNTIL(ua, d.calls == 1, 15000);
    CHECK(d.result == CHORDSIP_OK && d.expires == 0);
    CHECK(bindings_of(ring[1], AOR, NULL, 0) == 0);
    chordsip_publication work = {"sip:alice-work@p2p.example", "sip:alice@127.0.0.2:5072", 300,
                                 NULL, NULL};
    CHECK_OK(chordsip_node_publish(ua, &work, NULL));
    CHECK_OK(chordsip_node_withdraw(ua, work.aor));
    CHECK(bindings_of(ring[1], work.aor, NULL, 0) == 0);

    note("a graceful leave withdraws what is published");
    CHECK_OK(chordsip_node_publish(ua, &work, NULL));
    CHECK(bindings_of(ring[1], work.aor, NULL, 0) == 1);
    CHECK_OK(chordsip_node_leave(ua, 3000));
    CHECK(bindings_of(ring[1], work.aor, NULL, 0) == 0);
    chordsip_node_free(ua);

    note("a node freed with a publish in flight calls back exactly once");
    memset(&ev, 0, sizeof ev);
    ua = user_agent(&ev);
    join_via(ua, ring[1]);
    d.calls = 0;
    CHECK_OK(chordsip_node_publish_async(ua, &p, on_done, &d));
    chordsip_node_free(ua);
    CHECK(d.calls == 1);
    CHECK(d.result == CHORDSIP_OK || d.result == CHORDSIP_ERR_CANCELLED);

    for (int i = 0; i < 2; i++)
        chordsip_node_free(ring[i]);
    test_pass("test_publish");
    return 0;
}
