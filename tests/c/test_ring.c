/*
 * A keyed 3-node ring: put/get/remove/lookup seen from every node, client
 * handles over UDP and over a node's UNIX socket, stats, info text,
 * neighbours, ping; strangers without the overlay key or the client key
 * neither join nor read.
 */
#include "testutil.h"

#include <sys/stat.h>

#define N 3
#define KEYS 10

/* The ring's overlay key: every member datagram carries an HMAC made with it. */
static const uint8_t OVERLAY_KEY[] = "c-tests-overlay-key";
#define OVERLAY_KEY_ARGS OVERLAY_KEY, sizeof OVERLAY_KEY - 1

/* The members' config: fast maintenance and the overlay key. */
static chordsip_config *ring_config(void) {
    chordsip_config *cfg = fast_config();
    CHECK_OK(chordsip_config_set_overlay_key(cfg, OVERLAY_KEY_ARGS));
    return cfg;
}

static void check_peer(const chordsip_peer *p) {
    CHECK(strlen(p->id) == 40);
    for (int i = 0; i < 40; i++)
        CHECK(strchr("0123456789abcdef", p->id[i]) != NULL);
    CHECK(strncmp(p->addr, "127.0.0.1:", 10) == 0);
}

static void test_storage(chordsip_node **n) {
    char key[64], writer[32], data[64];
    /* Each key written through a different node, read back through all. */
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof key, "sip:user%d@example.com", k);
        snprintf(writer, sizeof writer, "dev%d", k % 2);
        snprintf(data, sizeof data, "<sip:user%d@10.0.0.%d:5060>", k, k);
        uint32_t copies = 0;
        CHECK_OK(chordsip_node_put(n[k % N], key, writer, (const uint8_t *)data, strlen(data),
                                   300, &copies));
        CHECK(copies >= 1 && copies <= N);
    }
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof key, "sip:user%d@example.com", k);
        snprintf(writer, sizeof writer, "dev%d", k % 2);
        snprintf(data, sizeof data, "<sip:user%d@10.0.0.%d:5060>", k, k);
        for (int i = 0; i < N; i++) {
            int found = 0;
            CHECK(count_values(n[i], key, writer, data, &found) == 1);
            CHECK(found);
        }
    }
    /* A second writer under one key: two values, each writer its own. */
    CHECK_OK(chordsip_node_put(n[1], "sip:user0@example.com", "laptop",
                               (const uint8_t *)"L", 1, 300, NULL));
    for (int i = 0; i < N; i++) {
        int found = 0;
        CHECK(count_values(n[i], "sip:user0@example.com", "laptop", "L", &found) == 2);
        CHECK(found);
    }
    /* Replacing: a later put of the same writer wins. */
    CHECK_OK(chordsip_node_put(n[2], "sip:user0@example.com", "laptop",
                               (const uint8_t *)"L2", 2, 300, NULL));
    for (int i = 0; i < N; i++) {
        int found = 0;
        CHECK(count_values(n[i], "sip:user0@example.com", "laptop", "L2", &found) == 2);
        CHECK(found);
    }
    /* A node with another writer key writes slots of its own (record
       ownership): it can neither replace nor remove the shared "laptop". */
    {
        chordsip_config *cfg = ring_config();
        char err[128];
        CHECK_OK(chordsip_config_set(cfg, "writer_key",
                                     "6666666666666666666666666666666666666666666666666666666666666666",
                                     err, sizeof err));
        chordsip_node *stranger = node_from(cfg);
        chordsip_config_free(cfg);
        join_via(stranger, n[0]);
        CHECK_OK(chordsip_node_put(stranger, "sip:user0@example.com", "laptop",
                                   (const uint8_t *)"EVIL", 4, 300, NULL));
        int found = 0;
        CHECK(count_values(n[1], "sip:user0@example.com", "laptop", "L2", &found) == 3);
        CHECK(found);
        CHECK_OK(chordsip_node_remove(stranger, "sip:user0@example.com", "laptop", NULL));
        CHECK_OK(chordsip_node_remove(stranger, "sip:user0@example.com", "dev0", NULL));
        for (int i = 0; i < N; i++) {
            CHECK(count_values(n[i], "sip:user0@example.com", "laptop", "L2", &found) == 2);
            CHECK(found);
        }
        /* Every value left carries the shared writer's key as its owner. */
        chordsip_values *v = NULL;
        CHECK_OK(chordsip_node_get(n[2], "sip:user0@example.com", &v));
        chordsip_value a, b;
        CHECK_OK(chordsip_values_get(v, 0, &a));
        CHECK_OK(chordsip_values_get(v, 1, &b));
        CHECK(memcmp(a.owner, b.owner, 32) == 0);
        static const uint8_t zero[32];
        CHECK(memcmp(a.owner, zero, 32) != 0);
        chordsip_values_free(v);
        CHECK_OK(chordsip_node_leave(stranger, 2000));
        chordsip_node_free(stranger);
        CHECK(wait_ring(n, N, 10000));
    }
    /* Remove every entry; from every node the keys are then empty. */
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof key, "sip:user%d@example.com", k);
        snprintf(writer, sizeof writer, "dev%d", k % 2);
        uint32_t copies = 0;
        CHECK_OK(chordsip_node_remove(n[(k + 1) % N], key, writer, &copies));
        CHECK(copies >= 1);
    }
    CHECK_OK(chordsip_node_remove(n[0], "sip:user0@example.com", "laptop", NULL));
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof key, "sip:user%d@example.com", k);
        for (int i = 0; i < N; i++) {
            int found = 0;
            CHECK(count_values(n[i], key, NULL, NULL, &found) == 0);
        }
    }
}

static void test_lookup(chordsip_node **n) {
    char ids[N][41];
    for (int i = 0; i < N; i++)
        node_id_of(n[i], ids[i]);
    int responsible[N] = {0};
    for (int k = 0; k < 30; k++) {
        char key[64];
        snprintf(key, sizeof key, "sip:lookup%d@example.com", k);
        chordsip_lookup_info first;
        for (int i = 0; i < N; i++) {
            chordsip_lookup_info li;
            CHECK_OK(chordsip_node_lookup(n[i], key, 0, &li));
            check_peer(&li.node);
            if (i == 0)
                first = li;
            CHECK(strcmp(li.node.id, first.node.id) == 0); /* every node agrees */
            CHECK(strcmp(li.node.addr, first.node.addr) == 0);
            /* The asking node answers for itself with 0 hops; 0 hops otherwise
               only when its own successor list holds the answer (the header
               says "0: the asking node is responsible", which is too narrow). */
            char succ[41];
            first_neighbour(n[i], CHORDSIP_SUCCESSORS, succ);
            if (strcmp(li.node.id, ids[i]) == 0)
                CHECK(li.hops == 0);
            else if (li.hops == 0)
                CHECK(strcmp(li.node.id, succ) == 0);
            CHECK(li.hops <= N);
            if (li.hops > 0) /* a remote node was asked: that took time */
                CHECK(li.latency_us > 0);
        }
        int owner = -1;
        for (int i = 0; i < N; i++)
            if (strcmp(first.node.id, ids[i]) == 0)
                owner = i;
        CHECK(owner >= 0); /* the answer is one of the ring's nodes */
        responsible[owner]++;
    }
    note("30 keys per responsible node: %d %d %d", responsible[0], responsible[1],
         responsible[2]);
}

static size_t list_len(chordsip_node *n, uint32_t which) {
    chordsip_peers *p = NULL;
    CHECK_OK(chordsip_node_neighbours(n, which, &p));
    size_t len = chordsip_peers_len(p);
    chordsip_peers_free(p);
    return len;
}

/* Whether every peer in list `which` of `n` is one of the ring's nodes. */
static int all_known(chordsip_node *n, uint32_t which, char ids[N][41]) {
    chordsip_peers *p = NULL;
    CHECK_OK(chordsip_node_neighbours(n, which, &p));
    int all = 1;
    for (size_t j = 0; j < chordsip_peers_len(p); j++) {
        chordsip_peer peer;
        CHECK_OK(chordsip_peers_get(p, j, &peer));
        int known = 0;
        for (int m = 0; m < N; m++)
            known |= strcmp(peer.id, ids[m]) == 0;
        all &= known;
    }
    chordsip_peers_free(p);
    return all;
}

static void test_views(chordsip_node **n) {
    char ids[N][41];
    for (int i = 0; i < N; i++)
        node_id_of(n[i], ids[i]);
    /* Successor lists and fingers fill in over a few maintenance rounds; a
       finger toward the node that left in test_storage (only its neighbours
       heard its Leaving) lasts until that finger is next refreshed. */
    double end = now_s() + scaled(5);
    for (;;) {
        int full = 1;
        for (int i = 0; i < N; i++)
            full &= list_len(n[i], CHORDSIP_SUCCESSORS) == N - 1 &&
                    list_len(n[i], CHORDSIP_PREDECESSORS) >= 1 &&
                    list_len(n[i], CHORDSIP_FINGERS) >= 1 &&
                    all_known(n[i], CHORDSIP_FINGERS, ids) &&
                    all_known(n[i], CHORDSIP_PREDECESSORS, ids) &&
                    all_known(n[i], CHORDSIP_SUCCESSORS, ids);
        if (full)
            break;
        CHECK(now_s() < end);
        sleep_ms(50);
    }
    for (int i = 0; i < N; i++) {
        /* neighbours: with 3 nodes every list holds the other two at most */
        for (uint32_t which = CHORDSIP_PREDECESSORS; which <= CHORDSIP_FINGERS; which++) {
            chordsip_peers *p = NULL;
            CHECK_OK(chordsip_node_neighbours(n[i], which, &p));
            size_t len = chordsip_peers_len(p);
            CHECK(len >= 1);
            for (size_t j = 0; j < len; j++) {
                chordsip_peer peer;
                CHECK_OK(chordsip_peers_get(p, j, &peer));
                check_peer(&peer);
                int known = 0;
                for (int m = 0; m < N; m++)
                    known |= strcmp(peer.id, ids[m]) == 0;
                CHECK(known);
                if (which != CHORDSIP_FINGERS)
                    CHECK(strcmp(peer.id, ids[i]) != 0);
            }
            chordsip_peers_free(p);
        }
        chordsip_peers *succ = NULL;
        CHECK_OK(chordsip_node_neighbours(n[i], CHORDSIP_SUCCESSORS, &succ));
        CHECK(chordsip_peers_len(succ) == N - 1); /* the other two, once filled */
        chordsip_peers_free(succ);

        /* ping every other node */
        for (int j = 0; j < N; j++) {
            if (j == i)
                continue;
            char addr[64];
            uint64_t rtt = 0;
            CHECK_OK(chordsip_node_addr(n[j], addr, sizeof addr));
            CHECK_OK(chordsip_node_ping(n[i], addr, &rtt));
            CHECK(rtt > 0 && rtt < 5000000);
        }

        /* stats */
        chordsip_stats st;
        CHECK_OK(chordsip_node_stats(n[i], &st));
        CHECK(st.joined == 1);
        CHECK(st.msgs_sent > 0 && st.msgs_received > 0);
        CHECK(st.bytes_sent > 0 && st.bytes_received > 0);
        CHECK(st.dropped_malformed == 0 && st.dropped_unauthenticated == 0);
        CHECK(st.events_dropped == 0);
        CHECK(st.lookups_ok >= 30 && st.lookups_failed == 0);
        CHECK(st.gets_failed == 0 && st.puts_failed == 0);
        CHECK(st.hops_mean >= 0.0 && st.hops_mean <= (double)N);
        CHECK(st.lookup_p50_us <= st.lookup_p99_us);

        /* info: the ring text names the node's successor; stats are name/value lines */
        char text[8192];
        size_t needed = 0;
        CHECK_OK(chordsip_node_info(n[i], 0, text, sizeof text, &needed));
        CHECK(needed == strlen(text) + 1);
        char succ_id[41];
        first_neighbour(n[i], CHORDSIP_SUCCESSORS, succ_id);
        CHECK(strstr(text, succ_id) != NULL || strstr(text, "succ") != NULL);
        if (i == 0)
            printf("--- info 0 of node 0 ---\n%s\n", text);
        CHECK_OK(chordsip_node_info(n[i], 1, text, sizeof text, &needed));
        CHECK(needed == strlen(text) + 1);
        CHECK(strchr(text, '\n') != NULL);
        CHECK(strstr(text, "msgs_sent") != NULL || strstr(text, "sent") != NULL);
    }
}

/* A client handle: put/get/lookup/remove/info through one peer. */
static void client_roundtrip(chordsip_client *c, chordsip_node **n, const char *tag) {
    char key[64];
    snprintf(key, sizeof key, "sip:%s@example.com", tag);
    uint32_t copies = 0;
    CHECK_OK(chordsip_client_put(c, key, "phone", (const uint8_t *)tag, strlen(tag), 120,
                                 &copies));
    CHECK(copies >= 1);
    /* the nodes see what the client stored, and the client sees it too */
    for (int i = 0; i < N; i++) {
        int found = 0;
        CHECK(count_values(n[i], key, "phone", tag, &found) == 1);
        CHECK(found);
    }
    chordsip_values *v = NULL;
    CHECK_OK(chordsip_client_get(c, key, &v));
    CHECK(chordsip_values_len(v) == 1);
    chordsip_value val;
    CHECK_OK(chordsip_values_get(v, 0, &val));
    CHECK(strcmp(val.writer, "phone") == 0);
    CHECK(val.data_len == strlen(tag) && memcmp(val.data, tag, val.data_len) == 0);
    CHECK(val.expires_in_ms > 0 && val.expires_in_ms <= 120000);
    chordsip_values_free(v);

    chordsip_lookup_info li, mine;
    CHECK_OK(chordsip_client_lookup(c, key, &li));
    CHECK_OK(chordsip_node_lookup(n[0], key, 0, &mine));
    CHECK(strcmp(li.node.id, mine.node.id) == 0);
    check_peer(&li.node);

    char text[8192];
    size_t needed = 0;
    CHECK_OK(chordsip_client_info(c, 0, text, sizeof text, &needed));
    CHECK(needed == strlen(text) + 1 && needed > 1);
    CHECK_OK(chordsip_client_info(c, 1, text, sizeof text, &needed));
    CHECK(needed == strlen(text) + 1 && needed > 1);

    CHECK_OK(chordsip_client_remove(c, key, "phone", &copies));
    v = NULL;
    CHECK_OK(chordsip_client_get(c, key, &v));
    CHECK(chordsip_values_len(v) == 0);
    chordsip_values_free(v);
    for (int i = 0; i < N; i++) {
        int found = 0;
        CHECK(count_values(n[i], key, NULL, NULL, &found) == 0);
    }
}

/* A node of the members' config but with `key` as its overlay key (NULL: none),
   quick to give up a join nobody answers. */
static chordsip_node *stranger(const uint8_t *key, size_t key_len) {
    chordsip_config *cfg = fast_config();
    char err[128];
    CHECK_OK(chordsip_config_set(cfg, "op_timeout_ms", slow_mode() ? "3000" : "1000", err,
                                 sizeof err));
    if (key != NULL)
        CHECK_OK(chordsip_config_set_overlay_key(cfg, key, key_len));
    chordsip_node *s = node_from(cfg);
    chordsip_config_free(cfg);
    return s;
}

/* Strangers: nodes with a wrong key or none cannot join (nor then read), the
   members never list them; clients with a wrong client key or none are
   refused. What the ring holds is unchanged. */
static void test_strangers(chordsip_node **n) {
    const char *key = "sip:kept@example.com";
    uint32_t copies = 0;
    CHECK_OK(chordsip_node_put(n[0], key, "phone", (const uint8_t *)"kept", 4, 120, &copies));
    char addr[64];
    CHECK_OK(chordsip_node_addr(n[1], addr, sizeof addr));

    static const uint8_t wrong[] = "c-tests-wrong-key";
    chordsip_node *s[2] = {stranger(wrong, sizeof wrong - 1), stranger(NULL, 0)};
    for (int i = 0; i < 2; i++) {
        CHECK_RC(chordsip_node_join(s[i], addr), CHORDSIP_ERR_JOIN_FAILED);
        chordsip_values *v = NULL;
        CHECK_RC(chordsip_node_get(s[i], key, &v), CHORDSIP_ERR_NOT_JOINED);
        CHECK(v == NULL);
        char sid[41];
        node_id_of(s[i], sid);
        for (int m = 0; m < N; m++)
            for (uint32_t which = CHORDSIP_PREDECESSORS; which <= CHORDSIP_FINGERS; which++) {
                chordsip_peers *p = NULL;
                CHECK_OK(chordsip_node_neighbours(n[m], which, &p));
                for (size_t k = 0; k < chordsip_peers_len(p); k++) {
                    chordsip_peer peer;
                    CHECK_OK(chordsip_peers_get(p, k, &peer));
                    CHECK(strcmp(peer.id, sid) != 0);
                }
                chordsip_peers_free(p);
            }
        chordsip_node_free(s[i]);
    }
    note("a wrong-key node and a keyless node were refused");

    /* A UDP client with no client key is told it is not authorized; one with
       a wrong key sends datagrams whose tag fails, which the node drops as
       forged, so it hears nothing. Neither reads nor writes. */
    const uint8_t *ckeys[2] = {NULL, wrong};
    size_t clens[2] = {0, sizeof wrong - 1};
    int want[2] = {CHORDSIP_ERR_UNAUTHORIZED, CHORDSIP_ERR_TIMEOUT};
    for (int i = 0; i < 2; i++) {
        chordsip_client *c = NULL;
        CHECK_OK(chordsip_client_new(addr, "chordsip", ckeys[i], clens[i], scaled(1) * 1000, &c));
        chordsip_values *v = NULL;
        CHECK_RC(chordsip_client_get(c, key, &v), want[i]);
        CHECK(v == NULL);
        CHECK_RC(chordsip_client_put(c, key, "intruder", (const uint8_t *)"x", 1, 60, &copies),
                 want[i]);
        chordsip_client_free(c);
    }
    note("clients without the client key were refused");

    int found = 0;
    for (int m = 0; m < N; m++) {
        CHECK(count_values(n[m], key, "phone", "kept", &found) == 1);
        CHECK(found);
    }
    CHECK_OK(chordsip_node_remove(n[0], key, "phone", &copies));
}

int main(void) {
    test_begin("test_ring", 90);
    char dir[] = "/tmp/chordsip-ctest-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sock[128];
    snprintf(sock, sizeof sock, "%s/node2.sock", dir);

    chordsip_config *cfg = ring_config();
    chordsip_node *n[N];
    n[0] = node_from(cfg);
    join_via(n[0], NULL);
    n[1] = node_from(cfg);
    join_via(n[1], n[0]);
    char err[128];
    CHECK_OK(chordsip_config_set(cfg, "client_socket", sock, err, sizeof err));
    n[2] = node_from(cfg); /* the one serving a UNIX socket */
    join_via(n[2], n[0]);
    chordsip_config_free(cfg);
    double t0 = now_s();
    CHECK(wait_ring(n, N, scaled(10) * 1000));
    note("ring of %d converged in %.2f s", N, now_s() - t0);
    struct stat sb;
    CHECK(stat(sock, &sb) == 0 && S_ISSOCK(sb.st_mode));

    test_storage(n);
    test_lookup(n);
    test_views(n);
    test_strangers(n);

    /* client over UDP to node 1 */
    char addr[64];
    CHECK_OK(chordsip_node_addr(n[1], addr, sizeof addr));
    chordsip_client *c = NULL;
    CHECK_OK(chordsip_client_new(addr, "chordsip", TEST_KEY_ARGS, scaled(5) * 1000, &c));
    client_roundtrip(c, n, "udp-client");
    chordsip_client_free(c);

    /* client over the UNIX socket of node 2 */
    char peer[160];
    snprintf(peer, sizeof peer, "unix:%s", sock);
    c = NULL;
    CHECK_OK(chordsip_client_new(peer, NULL, NULL, 0, scaled(5) * 1000, &c));
    client_roundtrip(c, n, "unix-client");
    chordsip_client_free(c);

    leave_all(n, N);
    /* the node removed its socket file when it stopped */
    CHECK(stat(sock, &sb) == -1 && errno == ENOENT);
    CHECK(rmdir(dir) == 0);
    test_pass("test_ring");
    return 0;
}
