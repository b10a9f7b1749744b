/*
 * Concurrent calls: 8 threads x 200 iterations of put/get/lookup on the same
 * three nodes (each read checks its own write), plus one shared client
 * handle and an observer thread reading stats/info/neighbours meanwhile.
 * CHORDSIP_CTEST_ITERS overrides the iteration count.
 */
#include "testutil.h"

#define N 3
#define THREADS 8

static chordsip_node *nodes[N];
static chordsip_client *shared_client;
static int iters = 200;
static int stop_observer;

typedef struct {
    int id;
    int ops;
    int failed; /* first failing line, 0 if none */
    int rc;
} worker_t;

#define WCHECK(w, cond, code)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            (w)->failed = __LINE__;                                            \
            (w)->rc = (code);                                                  \
            return NULL;                                                       \
        }                                                                      \
    } while (0)

static void *worker(void *arg) {
    worker_t *w = arg;
    char key[64], data[64];
    for (int i = 0; i < iters; i++) {
        snprintf(key, sizeof key, "sip:t%d-%d@example.com", w->id, i % 50);
        snprintf(data, sizeof data, "contact-%d-%d", w->id, i);
        uint32_t copies = 0;
        int rc = chordsip_node_put(nodes[(w->id + i) % N], key, "dev", (const uint8_t *)data,
                                   strlen(data), 60, &copies);
        WCHECK(w, rc == CHORDSIP_OK && copies >= 1, rc);
        chordsip_values *v = NULL;
        rc = chordsip_node_get(nodes[(w->id + i + 1) % N], key, &v);
        WCHECK(w, rc == CHORDSIP_OK, rc);
        chordsip_value val;
        int ok = chordsip_values_len(v) == 1 && chordsip_values_get(v, 0, &val) == CHORDSIP_OK &&
                 val.data_len == strlen(data) && memcmp(val.data, data, val.data_len) == 0;
        chordsip_values_free(v);
        WCHECK(w, ok, -1); /* reads its own latest write */
        chordsip_lookup_info li;
        rc = chordsip_node_lookup(nodes[(w->id + i + 2) % N], key, 0, &li);
        WCHECK(w, rc == CHORDSIP_OK && strlen(li.node.id) == 40, rc);
        w->ops += 3;
        if (i % 20 == 0) { /* the shared client serialises its callers */
            chordsip_lookup_info cli;
            rc = chordsip_client_lookup(shared_client, key, &cli);
            WCHECK(w, rc == CHORDSIP_OK, rc);
            v = NULL;
            rc = chordsip_client_get(shared_client, key, &v);
            WCHECK(w, rc == CHORDSIP_OK && chordsip_values_len(v) == 1, rc);
            chordsip_values_free(v);
            w->ops += 2;
        }
    }
    return NULL;
}

static void *observer(void *arg) {
    int *failures = arg;
    char text[8192];
    while (!__atomic_load_n(&stop_observer, __ATOMIC_SEQ_CST)) {
        for (int i = 0; i < N; i++) {
            chordsip_stats st;
            size_t needed;
            chordsip_peers *p = NULL;
            if (chordsip_node_stats(nodes[i], &st) != CHORDSIP_OK || st.joined != 1)
                (*failures)++;
            if (chordsip_node_info(nodes[i], 1, text, sizeof text, &needed) != CHORDSIP_OK)
                (*failures)++;
            if (chordsip_node_neighbours(nodes[i], CHORDSIP_FINGERS, &p) != CHORDSIP_OK)
                (*failures)++;
            chordsip_peers_free(p);
        }
        sleep_ms(5);
    }
    return NULL;
}

int main(void) {
    test_begin("test_concurrency", 90);
    const char *env = getenv("CHORDSIP_CTEST_ITERS");
    if (env != NULL)
        iters = atoi(env);
    CHECK(iters > 0);
    chordsip_config *cfg = fast_config();
    make_ring(cfg, nodes, N);
    chordsip_config_free(cfg);
    char addr[64];
    CHECK_OK(chordsip_node_addr(nodes[1], addr, sizeof addr));
    CHECK_OK(chordsip_client_new(addr, NULL, TEST_KEY_ARGS, scaled(5) * 1000, &shared_client));

    pthread_t th[THREADS], obs;
    worker_t w[THREADS];
    int obs_failures = 0;
    double t0 = now_s();
    CHECK(pthread_create(&obs, NULL, observer, &obs_failures) == 0);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){.id = i};
        CHECK(pthread_create(&th[i], NULL, worker, &w[i]) == 0);
    }
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        CHECK(pthread_join(th[i], NULL) == 0);
        if (w[i].failed)
            fprintf(stderr, "worker %d failed at line %d with %d (%s) after %d ops\n", i,
                    w[i].failed, w[i].rc, chordsip_result_str(w[i].rc), w[i].ops);
        CHECK(w[i].failed == 0);
        total += w[i].ops;
    }
    __atomic_store_n(&stop_observer, 1, __ATOMIC_SEQ_CST);
    CHECK(pthread_join(obs, NULL) == 0);
    CHECK(obs_failures == 0);
    double took = now_s() - t0;
    note("%d threads x %d iterations: %d calls in %.2f s", THREADS, iters, total, took);

    uint64_t puts = 0, gets = 0;
    for (int i = 0; i < N; i++) {
        chordsip_stats st;
        CHECK_OK(chordsip_node_stats(nodes[i], &st));
        CHECK(st.puts_failed == 0 && st.gets_failed == 0 && st.lookups_failed == 0);
        puts += st.puts_ok;
        gets += st.gets_ok;
    }
    CHECK(puts >= (uint64_t)THREADS * iters && gets >= (uint64_t)THREADS * iters);

    chordsip_client_free(shared_client);
    for (int i = 0; i < N; i++)
        chordsip_node_free(nodes[i]);
    test_pass("test_concurrency");
    return 0;
}
