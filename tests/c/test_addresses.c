/*
 * Addresses and identities: a keyed ring on IPv6 loopback ([::1]) with a
 * client handle over it, and a node whose node key another member already
 * holds, which the ring refuses with CHORDSIP_ERR_ID_COLLISION.
 */
#include "testutil.h"

#define N 3

static const uint8_t OVERLAY_KEY[] = "c-tests-ipv6-overlay-key";

static chordsip_config *v6_config(void) {
    chordsip_config *cfg = fast_config();
    char err[128];
    CHECK_OK(chordsip_config_set(cfg, "listen", "[::1]:0", err, sizeof err));
    CHECK_OK(chordsip_config_set_overlay_key(cfg, OVERLAY_KEY, sizeof OVERLAY_KEY - 1));
    return cfg;
}

/* An `[::1]:port` address, as the library writes IPv6 ones. */
static int is_v6_loopback(const char *addr) {
    return strncmp(addr, "[::1]:", 6) == 0 && atoi(addr + 6) > 0;
}

static void test_ipv6_ring(chordsip_node **n) {
    char addr[64];
    for (int i = 0; i < N; i++) {
        CHECK_OK(chordsip_node_addr(n[i], addr, sizeof addr));
        CHECK(is_v6_loopback(addr));
    }
    /* every neighbour is known by its IPv6 address */
    for (int i = 0; i < N; i++) {
        chordsip_peers *p = NULL;
        CHECK_OK(chordsip_node_neighbours(n[i], CHORDSIP_SUCCESSORS, &p));
        CHECK(chordsip_peers_len(p) >= 1);
        for (size_t k = 0; k < chordsip_peers_len(p); k++) {
            chordsip_peer peer;
            CHECK_OK(chordsip_peers_get(p, k, &peer));
            CHECK(is_v6_loopback(peer.addr));
        }
        chordsip_peers_free(p);
    }
    /* a write through one node is read through every other */
    char key[64], data[32];
    for (int k = 0; k < 12; k++) {
        snprintf(key, sizeof key, "sip:v6user%d@example.com", k);
        snprintf(data, sizeof data, "contact-%d", k);
        uint32_t copies = 0;
        CHECK_OK(chordsip_node_put(n[k % N], key, "phone", (const uint8_t *)data, strlen(data), 120,
                                   &copies));
        CHECK(copies >= 1);
    }
    for (int k = 0; k < 12; k++) {
        snprintf(key, sizeof key, "sip:v6user%d@example.com", k);
        snprintf(data, sizeof data, "contact-%d", k);
        for (int i = 0; i < N; i++) {
            int found = 0;
            CHECK(count_values(n[i], key, "phone", data, &found) == 1);
            CHECK(found);
        }
        chordsip_lookup_info li;
        CHECK_OK(chordsip_node_lookup(n[(k + 1) % N], key, 0, &li));
        CHECK(is_v6_loopback(li.node.addr));
    }
    /* a client handle over UDP/IPv6, with the client key */
    CHECK_OK(chordsip_node_addr(n[2], addr, sizeof addr));
    chordsip_client *c = NULL;
    CHECK_OK(chordsip_client_new(addr, "chordsip", TEST_KEY_ARGS, scaled(5) * 1000, &c));
    chordsip_values *v = NULL;
    CHECK_OK(chordsip_client_get(c, "sip:v6user3@example.com", &v));
    CHECK(chordsip_values_len(v) == 1);
    chordsip_value val;
    CHECK_OK(chordsip_values_get(v, 0, &val));
    CHECK(val.data_len == 9 && memcmp(val.data, "contact-3", 9) == 0);
    chordsip_values_free(v);
    uint32_t copies = 0;
    CHECK_OK(chordsip_client_put(c, "sip:v6client@example.com", "laptop", (const uint8_t *)"L", 1,
                                 60, &copies));
    int found = 0;
    CHECK(count_values(n[0], "sip:v6client@example.com", "laptop", "L", &found) == 1 && found);
    chordsip_client_free(c);
    note("IPv6 ring: 12 values read through every node, a client over [::1]");
}

/* Two nodes with one node key have one id: the second is refused. */
static void test_id_collision(chordsip_node **n) {
    static const char *node_key =
        "5151515151515151515151515151515151515151515151515151515151515151";
    char err[128];
    chordsip_config *cfg = v6_config();
    CHECK_OK(chordsip_config_set(cfg, "node_key", node_key, err, sizeof err));
    chordsip_node *first = node_from(cfg);
    join_via(first, n[0]);
    chordsip_node *all[N + 1] = {n[0], n[1], n[2], first};
    CHECK(wait_ring(all, N + 1, scaled(10) * 1000));

    chordsip_node *twin = node_from(cfg);
    chordsip_config_free(cfg);
    char addr[64];
    CHECK_OK(chordsip_node_addr(n[1], addr, sizeof addr));
    CHECK_RC(chordsip_node_join(twin, addr), CHORDSIP_ERR_ID_COLLISION);
    CHECK(strlen(chordsip_result_str(CHORDSIP_ERR_ID_COLLISION)) > 0);
    /* the twin is not joined; the ring keeps the first */
    chordsip_values *v = NULL;
    CHECK_RC(chordsip_node_get(twin, "sip:v6user1@example.com", &v), CHORDSIP_ERR_NOT_JOINED);
    chordsip_node_free(twin);
    CHECK(wait_ring(all, N + 1, scaled(10) * 1000));
    CHECK_OK(chordsip_node_leave(first, 2000));
    chordsip_node_free(first);
    CHECK(wait_ring(n, N, scaled(10) * 1000));
    note("a second node with a member's node key: ID_COLLISION");
}

int main(void) {
    test_begin("test_addresses", 90);
    chordsip_config *cfg = v6_config();
    chordsip_node *n[N];
    for (int i = 0; i < N; i++) {
        n[i] = node_from(cfg);
        join_via(n[i], i == 0 ? NULL : n[0]);
    }
    chordsip_config_free(cfg);
    CHECK(wait_ring(n, N, scaled(10) * 1000));
    test_ipv6_ring(n);
    test_id_collision(n);
    leave_all(n, N);
    test_pass("test_addresses");
    return 0;
}
