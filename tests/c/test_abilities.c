/*
 * Abilities and flow tokens through the C API: three nodes, two relays
 * (one from the config, one set at run time), found least loaded first by
 * a node and by a client handle; attributes read back; a new load
 * reorders them; bad input gets clear codes; free(NULL) is a no-op. Flow
 * tokens round-trip and a forged one is refused.
 */
#include "testutil.h"

static chordsip_node *relay_node(const char *abilities, chordsip_node *via) {
    chordsip_config *cfg = fast_config();
    char err[256];
    if (abilities != NULL)
        CHECK_OK(chordsip_config_set(cfg, "abilities", abilities, err, sizeof err));
    CHECK_OK(chordsip_config_set(cfg, "ability_ttl_s", "3", err, sizeof err));
    chordsip_node *n = node_from(cfg);
    chordsip_config_free(cfg);
    join_via(n, via);
    return n;
}

/* The relays' addresses, in the order find_peers gives, joined by spaces. */
static void relay_order(chordsip_node *n, chordsip_client *c, char *out, size_t len) {
    chordsip_ability_peers *list = NULL;
    if (c != NULL)
        CHECK_OK(chordsip_client_find_peers(c, "relay", 8, &list));
    else
        CHECK_OK(chordsip_node_find_peers(n, "relay", 8, &list));
    out[0] = 0;
    for (size_t i = 0; i < chordsip_ability_peers_len(list); i++) {
        chordsip_ability_peer p;
        CHECK_OK(chordsip_ability_peers_get(list, i, &p));
        CHECK(strcmp(p.name, "relay") == 0);
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? " " : "", p.peer.addr);
    }
    chordsip_ability_peers_free(list);
}

static int wait_order(chordsip_node *n, const char *want, unsigned ms) {
    char got[256];
    double end = now_s() + ms / 1000.0;
    do {
        relay_order(n, NULL, got, sizeof got);
        if (strcmp(got, want) == 0)
            return 1;
        sleep_ms(50);
    } while (now_s() < end);
    fprintf(stderr, "relays: got \"%s\", want \"%s\"\n", got, want);
    return 0;
}

static void abilities(void) {
    chordsip_node *a = relay_node(NULL, NULL);
    chordsip_node *b = relay_node("relay:capacity=100,load=80,turn=10.0.0.2:3478", a);
    chordsip_node *c = relay_node(NULL, a);
    chordsip_node *nodes[3] = {a, b, c};
    CHECK(wait_ring(nodes, 3, scaled(10) * 1000));
    CHECK_OK(chordsip_node_set_abilities(c, "relay:capacity=100,load=10,turn=10.0.0.3:3478;voicemail"));
    char ab[64], ac[64], want[160];
    CHECK_OK(chordsip_node_addr(b, ab, sizeof ab));
    CHECK_OK(chordsip_node_addr(c, ac, sizeof ac));
    snprintf(want, sizeof want, "%s %s", ac, ab);
    CHECK(wait_order(a, want, scaled(5) * 1000));

    /* attributes of the first */
    chordsip_ability_peers *list = NULL;
    CHECK_OK(chordsip_node_find_peers(a, "relay", 1, &list));
    CHECK(chordsip_ability_peers_len(list) == 1);
    chordsip_ability_peer p;
    CHECK_OK(chordsip_ability_peers_get(list, 0, &p));
    CHECK(p.capacity == 100 && p.load == 10);
    CHECK(strcmp(p.attrs, "turn=10.0.0.3:3478") == 0);
    CHECK(p.expires_in_ms > 0 && p.expires_in_ms <= 3000);
    CHECK(strcmp(chordsip_ability_peers_attr(list, 0, "turn"), "10.0.0.3:3478") == 0);
    CHECK(strcmp(chordsip_ability_peers_attr(list, 0, "load"), "10") == 0);
    CHECK(chordsip_ability_peers_attr(list, 0, "nope") == NULL);
    CHECK(chordsip_ability_peers_attr(list, 1, "turn") == NULL);
    CHECK(chordsip_ability_peers_attr(list, 0, NULL) == NULL);
    CHECK(chordsip_ability_peers_attr(NULL, 0, "turn") == NULL);
    CHECK_RC(chordsip_ability_peers_get(list, 1, &p), CHORDSIP_ERR_OUT_OF_RANGE);
    CHECK_RC(chordsip_ability_peers_get(list, 0, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_ability_peers_get(NULL, 0, &p), CHORDSIP_ERR_NULL_POINTER);
    CHECK(chordsip_ability_peers_len(NULL) == 0);
    chordsip_ability_peers_free(list);
    chordsip_ability_peers_free(NULL);

    /* a client handle finds the same */
    chordsip_client *cl = NULL;
    char aa[64], got[160];
    CHECK_OK(chordsip_node_addr(a, aa, sizeof aa));
    CHECK_OK(chordsip_client_new(aa, NULL, TEST_KEY_ARGS, 0, &cl));
    relay_order(NULL, cl, got, sizeof got);
    CHECK(strcmp(got, want) == 0);
    chordsip_client_free(cl);

    /* a new load reorders; dropping an ability withdraws it */
    CHECK_OK(chordsip_node_set_abilities(c, "relay:capacity=100,load=95,turn=10.0.0.3:3478"));
    snprintf(want, sizeof want, "%s %s", ab, ac);
    CHECK(wait_order(a, want, scaled(5) * 1000));
    CHECK_OK(chordsip_node_set_abilities(b, NULL));
    CHECK(wait_order(a, ac, scaled(5) * 1000));

    /* bad input */
    CHECK_RC(chordsip_node_set_abilities(c, "Relay"), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_set_abilities(c, "relay:load=x"), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_set_abilities(c, "\xff"), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_node_set_abilities(NULL, "relay"), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_find_peers(a, "no such!", 8, &list), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_find_peers(a, NULL, 8, &list), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_find_peers(a, "relay", 8, NULL), CHORDSIP_ERR_NULL_POINTER);
    chordsip_config *cfg = fast_config();
    char err[256] = "";
    CHECK_RC(chordsip_config_set(cfg, "abilities", "relay;relay", err, sizeof err),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "twice") != NULL);
    chordsip_config_free(cfg);
    /* still announced after the refusals */
    CHECK(wait_order(a, ac, scaled(2) * 1000));

    chordsip_node_free(c);
    chordsip_node_free(b);
    chordsip_node_free(a);
}

static void flow_tokens(void) {
    static const uint8_t secret[32] = "0123456789abcdef0123456789abcde";
    static const uint8_t other[32] = "fedcba9876543210fedcba987654321";
    char token[64], addr[64];
    CHECK_OK(chordsip_sip_flow_token(secret, sizeof secret, "198.51.100.7:40123", token, sizeof token));
    CHECK_OK(chordsip_sip_flow_address(secret, sizeof secret, token, addr, sizeof addr));
    CHECK(strcmp(addr, "198.51.100.7:40123") == 0);
    CHECK_OK(chordsip_sip_flow_token(secret, sizeof secret, "[2001:db8::1]:5060", token, sizeof token));
    CHECK_OK(chordsip_sip_flow_address(secret, sizeof secret, token, addr, sizeof addr));
    CHECK(strcmp(addr, "[2001:db8::1]:5060") == 0);
    CHECK_RC(chordsip_sip_flow_address(other, sizeof other, token, addr, sizeof addr),
             CHORDSIP_ERR_UNAUTHORIZED);
    CHECK_RC(chordsip_sip_flow_address(secret, sizeof secret, "alice", addr, sizeof addr),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_sip_flow_address(secret, sizeof secret, token, addr, 4),
             CHORDSIP_ERR_BUFFER_TOO_SMALL);
    CHECK_RC(chordsip_sip_flow_token(secret, 8, "1.2.3.4:5", token, sizeof token),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_sip_flow_token(secret, sizeof secret, "not an address", token, sizeof token),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_sip_flow_token(NULL, 32, "1.2.3.4:5", token, sizeof token),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_sip_flow_token(secret, sizeof secret, "1.2.3.4:5", token, 8),
             CHORDSIP_ERR_BUFFER_TOO_SMALL);
}

int main(void) {
    test_begin("test_abilities", 90);
    flow_tokens();
    abilities();
    test_pass("test_abilities");
    return 0;
}
