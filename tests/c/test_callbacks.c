/*
 * Callbacks on both delivery paths.
 *  - thread mode (default): async lookup/put/get/remove complete on library
 *    threads; membership events when a second node joins; debug log lines;
 *    blocking calls from a callback return CHORDSIP_ERR_IN_CALLBACK while
 *    async calls from there work.
 *  - fd mode: the event fd + poll() + chordsip_node_process() run every
 *    callback on the polling thread, where blocking calls work.
 */
#include "testutil.h"

#include <poll.h>

static pthread_t main_thread;

/* Everything the callbacks record, under one lock. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;                 /* completions seen */
    int on_main;              /* callbacks that ran on the main thread */
    int off_main;             /* ... and elsewhere */
    int pred_events, succ_events, keys_events;
    char last_pred[41], last_succ[41];
    int log_lines, log_bad;   /* lines received; lines with a bad level/text */
    chordsip_node *node;      /* the node the callbacks call into */
    char expect_value[32];
    int results[32];          /* results of calls made from inside callbacks */
    int nresults;
    int failures;             /* unexpected results seen in callbacks */
} rec_t;

static rec_t rec_thread = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
static rec_t rec_fd = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void where(rec_t *r) {
    if (pthread_equal(pthread_self(), main_thread))
        r->on_main++;
    else
        r->off_main++;
}

static void finish(rec_t *r) {
    r->done++;
    pthread_cond_broadcast(&r->cv);
}

/* Waits until r->done reaches `n` (bounded); returns 1 if it did. */
static int wait_done(rec_t *r, int n, unsigned ms) {
    struct timespec dl = deadline_ms(ms);
    pthread_mutex_lock(&r->mu);
    while (r->done < n) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) != 0)
            break;
    }
    int ok = r->done >= n;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static void on_event(const chordsip_event *e, void *ud) {
    rec_t *r = ud;
    pthread_mutex_lock(&r->mu);
    where(r);
    switch (e->kind) {
    case CHORDSIP_EVENT_PREDECESSOR:
        r->pred_events++;
        if (e->has_peer)
            memcpy(r->last_pred, e->peer.id, 41);
        else
            r->last_pred[0] = 0;
        break;
    case CHORDSIP_EVENT_SUCCESSOR:
        r->succ_events++;
        if (e->has_peer)
            memcpy(r->last_succ, e->peer.id, 41);
        break;
    case CHORDSIP_EVENT_KEYS_IN:
    case CHORDSIP_EVENT_KEYS_OUT:
        r->keys_events++;
        if (e->has_peer || e->count == 0)
            r->failures++;
        break;
    default:
        r->failures++;
    }
    if (e->has_peer && strlen(e->peer.id) != 40)
        r->failures++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void on_log(uint32_t level, const char *msg, void *ud) {
    rec_t *r = ud;
    pthread_mutex_lock(&r->mu);
    where(r);
    r->log_lines++;
    if (level < 1 || level > 4 || msg == NULL || msg[0] == 0)
        r->log_bad++;
    pthread_mutex_unlock(&r->mu);
}

/* ---- completions ---- */

static void store_done(chordsip_result res, uint32_t copies, void *ud) {
    rec_t *r = ud;
    pthread_mutex_lock(&r->mu);
    where(r);
    if (res != CHORDSIP_OK || copies < 1)
        r->failures++;
    finish(r);
    pthread_mutex_unlock(&r->mu);
}

static void lookup_done(chordsip_result res, const chordsip_lookup_info *info, void *ud) {
    rec_t *r = ud;
    pthread_mutex_lock(&r->mu);
    where(r);
    if (res != CHORDSIP_OK || info == NULL || strlen(info->node.id) != 40)
        r->failures++;
    finish(r);
    pthread_mutex_unlock(&r->mu);
}

/* get completion that checks it sees exactly the expected value (or none). */
static void get_done(chordsip_result res, const chordsip_values *v, void *ud) {
    rec_t *r = ud;
    pthread_mutex_lock(&r->mu);
    where(r);
    if (res != CHORDSIP_OK || v == NULL) {
        r->failures++;
    } else if (r->expect_value[0] == 0) {
        if (chordsip_values_len(v) != 0)
            r->failures++;
    } else {
        chordsip_value val;
        if (chordsip_values_len(v) != 1 || chordsip_values_get(v, 0, &val) != CHORDSIP_OK ||
            val.data_len != strlen(r->expect_value) ||
            memcmp(val.data, r->expect_value, val.data_len) != 0)
            r->failures++;
    }
    finish(r);
    pthread_mutex_unlock(&r->mu);
}

static void record(rec_t *r, int rc) {
    if (r->nresults < 32)
        r->results[r->nresults++] = rc;
}

/* Calls every blocking function of r->node from inside a callback. */
static void call_blocking(rec_t *r) {
    chordsip_node *n = r->node;
    chordsip_values *v = NULL;
    chordsip_lookup_info li;
    chordsip_stats st;
    chordsip_peers *p = NULL;
    char buf[4096], addr[64];
    size_t needed;
    uint64_t rtt;
    int rc;
    record(r, rc = chordsip_node_get(n, "cb-key", &v));
    if (rc == CHORDSIP_OK)
        chordsip_values_free(v);
    record(r, chordsip_node_put(n, "cb-key2", "w", (const uint8_t *)"x", 1, 60, NULL));
    record(r, chordsip_node_remove(n, "cb-key2", "w", NULL));
    record(r, chordsip_node_lookup(n, "cb-key", 0, &li));
    record(r, chordsip_node_stats(n, &st));
    record(r, chordsip_node_info(n, 0, buf, sizeof buf, &needed));
    record(r, rc = chordsip_node_neighbours(n, CHORDSIP_SUCCESSORS, &p));
    if (rc == CHORDSIP_OK)
        chordsip_peers_free(p);
    if (chordsip_node_addr(n, addr, sizeof addr) != CHORDSIP_OK)
        r->failures++; /* not blocking: works everywhere */
    record(r, chordsip_node_ping(n, addr, &rtt));
    record(r, chordsip_node_join(n, addr)); /* last: the node has joined already */
}

static void get_then_block(chordsip_result res, const chordsip_values *v, void *ud) {
    rec_t *r = ud;
    (void)v;
    pthread_mutex_lock(&r->mu);
    where(r);
    if (res != CHORDSIP_OK)
        r->failures++;
    pthread_mutex_unlock(&r->mu);
    /* outside the lock: these may run callbacks themselves (fd mode) */
    rec_t tmp = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    tmp.node = r->node;
    call_blocking(&tmp);
    /* async calls are allowed from any callback */
    int arc = chordsip_node_lookup_async(r->node, "cb-key", 0, lookup_done, r);
    char id[41];
    int idrc = chordsip_node_id(r->node, id, sizeof id);
    pthread_mutex_lock(&r->mu);
    memcpy(r->results, tmp.results, sizeof tmp.results);
    r->nresults = tmp.nresults;
    r->failures += tmp.failures;
    if (arc != CHORDSIP_OK || idrc != CHORDSIP_OK)
        r->failures++;
    finish(r);
    pthread_mutex_unlock(&r->mu);
}

static void test_thread_mode(void) {
    rec_t *r = &rec_thread;
    chordsip_config *cfg = fast_config();
    CHECK_OK(chordsip_config_set_event_callback(cfg, on_event, r));
    CHECK_OK(chordsip_config_set_log_callback(cfg, 4 /* debug */, on_log, r));
    chordsip_node *a = node_from(cfg);
    chordsip_config_free(cfg);
    join_via(a, NULL);
    r->node = a;

    chordsip_config *plain = fast_config();
    chordsip_node *b = node_from(plain);
    chordsip_config_free(plain);
    join_via(b, a);
    chordsip_node *both[2] = {a, b};
    CHECK(wait_ring(both, 2, scaled(10) * 1000));
    char bid[41];
    node_id_of(b, bid);

    /* a hears that b became its predecessor and its successor */
    struct timespec dl = deadline_ms(scaled(5) * 1000);
    pthread_mutex_lock(&r->mu);
    while (strcmp(r->last_pred, bid) != 0 || strcmp(r->last_succ, bid) != 0)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) != 0)
            break;
    CHECK(strcmp(r->last_pred, bid) == 0);
    CHECK(strcmp(r->last_succ, bid) == 0);
    CHECK(r->pred_events >= 1 && r->succ_events >= 1);
    CHECK(r->log_lines > 0 && r->log_bad == 0);
    CHECK(r->on_main == 0); /* events and logs came on library threads */
    note("thread mode: %d predecessor, %d successor events, %d log lines", r->pred_events,
         r->succ_events, r->log_lines);
    pthread_mutex_unlock(&r->mu);

    /* async put, get, lookup, remove, get: each completes once, OK */
    int want = 0;
    CHECK_OK(chordsip_node_put_async(a, "cb-key", "w", (const uint8_t *)"hello", 5, 60,
                                     store_done, r));
    CHECK(wait_done(r, ++want, scaled(5) * 1000));
    strcpy(r->expect_value, "hello");
    CHECK_OK(chordsip_node_get_async(a, "cb-key", get_done, r));
    CHECK(wait_done(r, ++want, scaled(5) * 1000));
    CHECK_OK(chordsip_node_lookup_async(a, "cb-key", 0, lookup_done, r));
    CHECK_OK(chordsip_node_lookup_async(a, "cb-other", 1000, lookup_done, r));
    want += 2;
    CHECK(wait_done(r, want, scaled(5) * 1000));
    /* from inside a callback: blocking calls refused, async ones fine */
    CHECK_OK(chordsip_node_get_async(a, "cb-key", get_then_block, r));
    want += 2; /* get_then_block and the lookup it starts */
    CHECK(wait_done(r, want, scaled(5) * 1000));
    CHECK_OK(chordsip_node_remove_async(a, "cb-key", "w", store_done, r));
    CHECK(wait_done(r, ++want, scaled(5) * 1000));
    r->expect_value[0] = 0;
    CHECK_OK(chordsip_node_get_async(b, "cb-key", get_done, r));
    CHECK(wait_done(r, ++want, scaled(5) * 1000));

    sleep_ms(100);
    pthread_mutex_lock(&r->mu);
    CHECK(r->done == want); /* none ran twice */
    CHECK(r->failures == 0);
    CHECK(r->on_main == 0 && r->off_main > 0);
    CHECK(r->nresults == 9);
    for (int i = 0; i < r->nresults; i++) {
        if (r->results[i] != CHORDSIP_ERR_IN_CALLBACK)
            fprintf(stderr, "blocking call %d from a callback returned %d\n", i, r->results[i]);
        CHECK(r->results[i] == CHORDSIP_ERR_IN_CALLBACK);
    }
    pthread_mutex_unlock(&r->mu);

    /* a put made synchronously is visible to the async path of the other node */
    CHECK_OK(chordsip_node_put(a, "cb-key3", "w", (const uint8_t *)"sync", 4, 60, NULL));
    strcpy(r->expect_value, "sync");
    CHECK_OK(chordsip_node_get_async(b, "cb-key3", get_done, r));
    CHECK(wait_done(r, ++want, scaled(5) * 1000));
    CHECK(r->failures == 0);

    chordsip_node_free(b);
    chordsip_node_free(a);
    /* nothing more arrives once the node is freed */
    pthread_mutex_lock(&r->mu);
    int lines = r->log_lines, events = r->pred_events + r->succ_events + r->keys_events;
    pthread_mutex_unlock(&r->mu);
    sleep_ms(300);
    pthread_mutex_lock(&r->mu);
    CHECK(r->log_lines == lines);
    CHECK(r->pred_events + r->succ_events + r->keys_events == events);
    pthread_mutex_unlock(&r->mu);
}

/* Polls the event fd for up to `ms`, processing what arrives; returns callbacks run. */
static size_t pump(chordsip_node *n, int fd, unsigned ms) {
    size_t total = 0;
    double end = now_s() + ms / 1000.0;
    do {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, 20);
        CHECK(pr >= 0 || errno == EINTR);
        if (pr > 0) {
            CHECK(pfd.revents & POLLIN);
            size_t ran = 0;
            CHECK_OK(chordsip_node_process(n, &ran));
            total += ran;
        }
    } while (now_s() < end);
    return total;
}

/* Pumps until r->done reaches `n` (bounded); returns 1 if it did. */
static int pump_until(rec_t *r, chordsip_node *node, int fd, int n, unsigned ms) {
    double end = now_s() + ms / 1000.0;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int d = r->done;
        pthread_mutex_unlock(&r->mu);
        if (d >= n)
            return 1;
        if (now_s() > end)
            return 0;
        pump(node, fd, 10);
    }
}

static void test_fd_mode(void) {
    rec_t *r = &rec_fd;
    chordsip_config *cfg = fast_config();
    CHECK_OK(chordsip_config_set_delivery(cfg, CHORDSIP_DELIVER_FD));
    CHECK_OK(chordsip_config_set_event_callback(cfg, on_event, r));
    CHECK_OK(chordsip_config_set_log_callback(cfg, 4, on_log, r));
    chordsip_node *f = node_from(cfg);
    chordsip_config_free(cfg);
    int fd = -1;
    CHECK_OK(chordsip_node_event_fd(f, &fd));
    CHECK(fd >= 0);
    join_via(f, NULL);
    r->node = f;
    int fd2 = -1;
    CHECK_OK(chordsip_node_event_fd(f, &fd2));
    CHECK(fd2 == fd); /* one fd for the node's life */

    /* Nothing runs until the host processes, though a completion (and
       probably log lines) have queued by now and the fd says so. */
    CHECK_OK(chordsip_node_lookup_async(f, "early", 0, lookup_done, r));
    sleep_ms(200);
    pthread_mutex_lock(&r->mu);
    CHECK(r->log_lines == 0 && r->done == 0);
    pthread_mutex_unlock(&r->mu);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pfd, 1, 1000) == 1 && (pfd.revents & POLLIN));
    int want = 1;
    CHECK(pump_until(r, f, fd, want, scaled(5) * 1000));
    /* drained: the fd is quiet until something new is queued */
    pfd.revents = 0;
    CHECK(poll(&pfd, 1, 0) == 0);

    chordsip_config *plain = fast_config();
    chordsip_node *g = node_from(plain);
    chordsip_config_free(plain);
    join_via(g, f);
    char gid[41];
    node_id_of(g, gid);
    chordsip_node *both[2] = {f, g};
    CHECK(wait_ring(both, 2, scaled(10) * 1000));

    /* events for g's arrival come out of chordsip_node_process */
    double end = now_s() + scaled(5);
    for (;;) {
        pump(f, fd, 50);
        pthread_mutex_lock(&r->mu);
        int seen = strcmp(r->last_pred, gid) == 0 && strcmp(r->last_succ, gid) == 0;
        pthread_mutex_unlock(&r->mu);
        if (seen || now_s() > end)
            break;
    }
    pthread_mutex_lock(&r->mu);
    CHECK(strcmp(r->last_pred, gid) == 0 && strcmp(r->last_succ, gid) == 0);
    CHECK(r->log_lines > 0 && r->log_bad == 0);
    pthread_mutex_unlock(&r->mu);

    /* async operations complete on this thread only */
    CHECK_OK(chordsip_node_put_async(f, "fd-key", "w", (const uint8_t *)"fdval", 5, 60,
                                     store_done, r));
    CHECK(pump_until(r, f, fd, ++want, scaled(5) * 1000));
    strcpy(r->expect_value, "fdval");
    CHECK_OK(chordsip_node_get_async(f, "fd-key", get_done, r));
    CHECK_OK(chordsip_node_lookup_async(f, "fd-key", 0, lookup_done, r));
    want += 2;
    CHECK(pump_until(r, f, fd, want, scaled(5) * 1000));
    /* Blocking calls from a processed callback work. */
    CHECK_OK(chordsip_node_put(f, "cb-key", "w", (const uint8_t *)"v", 1, 60, NULL));
    CHECK_OK(chordsip_node_get_async(f, "cb-key", get_then_block, r));
    want += 2;
    CHECK(pump_until(r, f, fd, want, scaled(10) * 1000));
    CHECK_OK(chordsip_node_remove_async(f, "fd-key", "w", store_done, r));
    CHECK(pump_until(r, f, fd, ++want, scaled(5) * 1000));
    r->expect_value[0] = 0;
    CHECK_OK(chordsip_node_get_async(f, "fd-key", get_done, r));
    CHECK(pump_until(r, f, fd, ++want, scaled(5) * 1000));

    pump(f, fd, 100);
    pthread_mutex_lock(&r->mu);
    CHECK(r->done == want);
    CHECK(r->failures == 0);
    CHECK(r->off_main == 0 && r->on_main > 0); /* every callback ran on this thread */
    CHECK(r->nresults == 9);
    for (int i = 0; i < r->nresults; i++) {
        /* all run; joining an already joined node is refused for that reason */
        int want = i == 8 ? CHORDSIP_ERR_BAD_STATE : CHORDSIP_OK;
        if (r->results[i] != want)
            fprintf(stderr, "blocking call %d from chordsip_node_process returned %d\n", i,
                    r->results[i]);
        CHECK(r->results[i] == want);
    }
    note("fd mode: %d callbacks on the polling thread, %d log lines", r->on_main, r->log_lines);
    pthread_mutex_unlock(&r->mu);

    chordsip_stats st;
    CHECK_OK(chordsip_node_stats(f, &st));
    CHECK(st.events_dropped == 0);
    chordsip_node_free(g);
    chordsip_node_free(f);
}

int main(void) {
    test_begin("test_callbacks", 60);
    main_thread = pthread_self();
    test_thread_mode();
    test_fd_mode();
    test_pass("test_callbacks");
    return 0;
}
