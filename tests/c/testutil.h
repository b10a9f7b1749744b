/*
 * Shared helpers of the C API tests: an asserting CHECK macro, a hang guard,
 * clocks, and ring set-up (nodes on 127.0.0.1 with fast maintenance).
 * Header-only on purpose: every test is one .c file plus this.
 */
#ifndef CHORDSIP_TESTUTIL_H
#define CHORDSIP_TESTUTIL_H

#include <chordsip.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Fails the test with file:line and the failed condition. */
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* Checks a call's result code, printing both codes and their text. */
#define CHECK_RC(call, want)                                                   \
    do {                                                                       \
        int got_ = (int)(call);                                                \
        int want_ = (int)(want);                                               \
        if (got_ != want_) {                                                   \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s)\n",  \
                    __FILE__, __LINE__, #call, got_,                           \
                    chordsip_result_str(got_), want_,                          \
                    chordsip_result_str(want_));                               \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define CHECK_OK(call) CHECK_RC(call, CHORDSIP_OK)

static inline void note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("  ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

/* How much slower than native the tests run: the runner sets
   CHORDSIP_CTEST_SLOW to 1 under valgrind (6 times) and to "asan" under
   AddressSanitizer (3 times); every time bound scales with it. */
static inline unsigned slow_factor(void) {
    const char *s = getenv("CHORDSIP_CTEST_SLOW");
    if (s != NULL && strcmp(s, "1") == 0)
        return 6;
    if (s != NULL && strcmp(s, "asan") == 0)
        return 3;
    return 1;
}

/* 1 under valgrind or ASan: wider time bounds. */
static inline int slow_mode(void) {
    return slow_factor() > 1;
}

/* Seconds scaled for the slow mode. */
static inline unsigned scaled(unsigned seconds) {
    return seconds * slow_factor();
}

/* Starts a test: a SIGALRM (default action: terminate) fails a hung test. */
static inline void test_begin(const char *name, unsigned budget_s) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("== %s\n", name);
    alarm(scaled(budget_s));
}

static inline void test_pass(const char *name) {
    printf("== %s: PASS\n", name);
}

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void sleep_ms(unsigned ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* Absolute CLOCK_REALTIME deadline `ms` from now, for pthread_cond_timedwait. */
static inline struct timespec deadline_ms(unsigned ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec += 1;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* The writer key the test nodes share: they act as one writer (as the
   servers of one registrar do), so any of them may change what another wrote. */
#define SHARED_WRITER_KEY "4242424242424242424242424242424242424242424242424242424242424242"

/* A config with fast maintenance so a small ring converges in about a second. */
/* The client credential (`client_key`) of the nodes fast_config() makes:
   client handles over UDP need it; on a UNIX socket none is needed. */
#define TEST_CLIENT_KEY "c-tests-client-credential"
#define TEST_KEY_ARGS (const uint8_t *)TEST_CLIENT_KEY, strlen(TEST_CLIENT_KEY)

static inline chordsip_config *fast_config(void) {
    chordsip_config *cfg = NULL;
    char err[128];
    CHECK_OK(chordsip_config_new(&cfg));
    CHECK(cfg != NULL);
    CHECK_OK(chordsip_config_set(cfg, "stabilize_ms", "100", err, sizeof err));
    CHECK_OK(chordsip_config_set(cfg, "check_predecessor_ms", "100", err, sizeof err));
    CHECK_OK(chordsip_config_set(cfg, "fix_fingers_ms", "100", err, sizeof err));
    CHECK_OK(chordsip_config_set(cfg, "op_timeout_ms", slow_mode() ? "15000" : "5000",
                                 err, sizeof err));
    CHECK_OK(chordsip_config_set(cfg, "writer_key", SHARED_WRITER_KEY, err, sizeof err));
    CHECK_OK(chordsip_config_set(cfg, "client_key", TEST_CLIENT_KEY, err, sizeof err));
    return cfg;
}

static inline chordsip_node *node_from(const chordsip_config *cfg) {
    chordsip_node *n = NULL;
    char err[256] = "";
    int rc = chordsip_node_new(cfg, &n, err, sizeof err);
    if (rc != CHORDSIP_OK)
        fprintf(stderr, "chordsip_node_new: %s: %s\n", chordsip_result_str(rc), err);
    CHECK_RC(rc, CHORDSIP_OK);
    CHECK(n != NULL);
    return n;
}

/* Joins `n` through `via` (NULL: starts a new ring). */
static inline void join_via(chordsip_node *n, chordsip_node *via) {
    char addr[64];
    if (via == NULL) {
        CHECK_OK(chordsip_node_join(n, NULL));
        return;
    }
    CHECK_OK(chordsip_node_addr(via, addr, sizeof addr));
    CHECK_OK(chordsip_node_join(n, addr));
}

static inline void node_id_of(chordsip_node *n, char id[41]) {
    CHECK_OK(chordsip_node_id(n, id, 41));
}

/* The id of a node's first entry in `which` (empty string when none). */
static inline void first_neighbour(chordsip_node *n, uint32_t which, char id[41]) {
    chordsip_peers *p = NULL;
    id[0] = 0;
    CHECK_OK(chordsip_node_neighbours(n, which, &p));
    if (chordsip_peers_len(p) > 0) {
        chordsip_peer peer;
        CHECK_OK(chordsip_peers_get(p, 0, &peer));
        memcpy(id, peer.id, 41);
    }
    chordsip_peers_free(p);
}

/*
 * Waits until the nodes form one ring: sorted by id, each node's successor
 * is the next and its predecessor the previous. Returns 1 when they do.
 */
static inline int wait_ring(chordsip_node **nodes, size_t n, unsigned timeout_ms) {
    char ids[16][41];
    size_t order[16];
    CHECK(n <= 16);
    for (size_t i = 0; i < n; i++) {
        node_id_of(nodes[i], ids[i]);
        order[i] = i;
    }
    for (size_t i = 1; i < n; i++) /* insertion sort by id */
        for (size_t j = i; j > 0 && strcmp(ids[order[j - 1]], ids[order[j]]) > 0; j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    double end = now_s() + (double)timeout_ms / 1000.0;
    do {
        int ok = 1;
        for (size_t k = 0; k < n && ok; k++) {
            size_t me = order[k], next = order[(k + 1) % n], prev = order[(k + n - 1) % n];
            char succ[41], pred[41];
            first_neighbour(nodes[me], CHORDSIP_SUCCESSORS, succ);
            first_neighbour(nodes[me], CHORDSIP_PREDECESSORS, pred);
            if (n == 1) { /* alone: no neighbours, or itself */
                if ((succ[0] != 0 && strcmp(succ, ids[me]) != 0) ||
                    (pred[0] != 0 && strcmp(pred, ids[me]) != 0))
                    ok = 0;
            } else if (strcmp(succ, ids[next]) != 0 || strcmp(pred, ids[prev]) != 0) {
                ok = 0;
            }
        }
        if (ok)
            return 1;
        sleep_ms(50);
    } while (now_s() < end);
    fprintf(stderr, "ring of %zu nodes did not converge; their views:\n", n);
    for (size_t i = 0; i < n; i++) {
        char text[8192];
        size_t needed;
        if (chordsip_node_info(nodes[i], 0, text, sizeof text, &needed) == CHORDSIP_OK)
            fprintf(stderr, "%s\n", text);
    }
    return 0;
}

/* Builds an n-node ring from `cfg` (each later node joins through the first). */
static inline void make_ring(const chordsip_config *cfg, chordsip_node **nodes, size_t n) {
    for (size_t i = 0; i < n; i++) {
        nodes[i] = node_from(cfg);
        join_via(nodes[i], i == 0 ? NULL : nodes[0]);
    }
    CHECK(wait_ring(nodes, n, scaled(10) * 1000));
}

/*
 * Graceful shutdown of a ring, last node first, letting the others close the
 * gap before the next one leaves. (Leaving at once after a neighbour left
 * sometimes returns CHORDSIP_ERR_TIMEOUT: the leave hands off to the departed
 * node instead of the next live one.)
 */
static inline void leave_all(chordsip_node **nodes, size_t n) {
    for (size_t i = n; i-- > 0;) {
        CHECK_OK(chordsip_node_leave(nodes[i], 2000));
        chordsip_node_free(nodes[i]);
        nodes[i] = NULL;
        if (i > 0)
            CHECK(wait_ring(nodes, i, scaled(10) * 1000));
    }
}

/* Number of values under `key` as seen from `n`, and whether `writer` has `data`. */
static inline size_t count_values(chordsip_node *n, const char *key, const char *writer,
                                  const char *data, int *found) {
    chordsip_values *v = NULL;
    CHECK_OK(chordsip_node_get(n, key, &v));
    CHECK(v != NULL);
    size_t len = chordsip_values_len(v);
    *found = 0;
    for (size_t i = 0; i < len; i++) {
        chordsip_value val;
        CHECK_OK(chordsip_values_get(v, i, &val));
        CHECK(val.writer != NULL);
        CHECK(strlen(val.writer) == val.writer_len);
        if (writer != NULL && strcmp(val.writer, writer) == 0 && data != NULL &&
            val.data_len == strlen(data) && memcmp(val.data, data, val.data_len) == 0)
            *found = 1;
    }
    chordsip_values_free(v);
    return len;
}

#endif
