/*
 * Thread hooks (chordsip_config_set_thread_hooks). Library threads are shared
 * by the process and start with its first node, so this runs as its own
 * binary: a fresh process whose first node brings the hooks.
 *  - no thread (and no hook) before a node starts; start hooks run on
 *    library threads, which block all signals;
 *  - a node with other hooks cannot start while the threads run;
 *  - after the last node is freed, stop calls == start calls;
 *  - the next node starts fresh threads with its own hooks.
 * (A last node freed from its own callback: see test_regressions.c.)
 */
#include "testutil.h"

#include <signal.h>

typedef struct {
    int starts, stops;
    int on_main;     /* hooks that ran on the host's main thread (must be 0) */
    int unblocked;   /* start hooks that found SIGINT/SIGTERM deliverable */
} hooks_t;

static pthread_t main_thread;

static void on_start(void *ud) {
    hooks_t *h = ud;
    sigset_t set;
    pthread_sigmask(SIG_BLOCK, NULL, &set);
    if (!sigismember(&set, SIGINT) || !sigismember(&set, SIGTERM) ||
        !sigismember(&set, SIGALRM))
        __atomic_add_fetch(&h->unblocked, 1, __ATOMIC_SEQ_CST);
    if (pthread_equal(pthread_self(), main_thread))
        __atomic_add_fetch(&h->on_main, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&h->starts, 1, __ATOMIC_SEQ_CST);
}

static void on_stop(void *ud) {
    hooks_t *h = ud;
    if (pthread_equal(pthread_self(), main_thread))
        __atomic_add_fetch(&h->on_main, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&h->stops, 1, __ATOMIC_SEQ_CST);
}

static void other_start(void *ud) { (void)ud; }

static int load(int *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }

static chordsip_node *hooked_node(chordsip_thread_cb start, chordsip_thread_cb stop, void *ud) {
    chordsip_config *cfg = fast_config();
    CHECK_OK(chordsip_config_set_thread_hooks(cfg, start, stop, ud));
    chordsip_node *n = node_from(cfg);
    chordsip_config_free(cfg);
    return n;
}

int main(void) {
    test_begin("test_hooks", 30);
    main_thread = pthread_self();
    static hooks_t a, b;

    /* Round 1: hooks A. Nothing runs before a node starts. */
    chordsip_node *n1 = hooked_node(on_start, on_stop, &a);
    sleep_ms(50);
    CHECK(load(&a.starts) == 0);
    CHECK_OK(chordsip_node_start(n1));
    CHECK(load(&a.starts) > 0); /* at least the thread serving n1 has started */
    CHECK_OK(chordsip_node_join(n1, NULL));

    chordsip_node *n2 = hooked_node(on_start, on_stop, &a); /* same hooks: fine */
    join_via(n2, n1);
    chordsip_node *ring[2] = {n1, n2};
    CHECK(wait_ring(ring, 2, scaled(10) * 1000));

    /* Other hooks, or the same functions with other user_data: refused. */
    chordsip_node *bad = hooked_node(other_start, NULL, &a);
    CHECK_RC(chordsip_node_start(bad), CHORDSIP_ERR_BAD_STATE);
    chordsip_node_free(bad);
    bad = hooked_node(on_start, on_stop, &b);
    CHECK_RC(chordsip_node_start(bad), CHORDSIP_ERR_BAD_STATE);
    chordsip_node_free(bad);
    CHECK(load(&b.starts) == 0);

    CHECK_OK(chordsip_node_put(n2, "hooks", "w", (const uint8_t *)"x", 1, 60, NULL));
    CHECK(load(&a.starts) > 0);
    CHECK(load(&a.stops) == 0);

    chordsip_node_free(n1);
    CHECK(load(&a.stops) == 0); /* n2 still uses the threads */
    chordsip_node_free(n2);
    /* The last node is gone: every thread ran its stop hook before free returned. */
    int threads = load(&a.starts);
    note("hooks A: %d library threads started and stopped", threads);
    CHECK(threads > 0 && threads <= 64);
    CHECK(load(&a.stops) == threads);
    CHECK(load(&a.on_main) == 0);
    CHECK(load(&a.unblocked) == 0);

    /* Round 2: the threads are gone, so new hooks (B) take effect. */
    chordsip_node *n3 = hooked_node(on_start, on_stop, &b);
    CHECK_OK(chordsip_node_join(n3, NULL));
    CHECK_OK(chordsip_node_put(n3, "hooks", "w", (const uint8_t *)"y", 1, 60, NULL));
    CHECK(load(&b.starts) > 0);
    CHECK_OK(chordsip_node_leave(n3, 1000));
    chordsip_node_free(n3);
    CHECK(load(&b.starts) == threads); /* as many threads as in round 1 */
    CHECK(load(&b.stops) == threads);
    CHECK(load(&a.starts) == threads && load(&a.stops) == threads); /* A not called again */
    CHECK(load(&b.on_main) == 0 && load(&b.unblocked) == 0);

    /* Round 3: only a stop hook (start NULL) is fine too. */
    static hooks_t c;
    chordsip_node *n4 = hooked_node(NULL, on_stop, &c);
    CHECK_OK(chordsip_node_start(n4));
    sleep_ms(50);
    chordsip_node_free(n4);
    CHECK(load(&c.starts) == 0 && load(&c.stops) == threads);

    test_pass("test_hooks");
    return 0;
}
