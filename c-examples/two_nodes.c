/*
 * two_nodes: two chordsip nodes in one process. The first starts a ring, the
 * second joins it through the first's address; a registration is stored
 * through one node and read back through the other; both leave.
 *
 *   two_nodes [-o name=value]...
 *
 * -o sets any node option of both nodes (chordsip_config_set), e.g.
 * -o op_timeout_ms=20000.
 *
 * Exit status 0 when the value read back is the one stored.
 */
#include <chordsip.h>

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TRY(what, call)                                                        \
    do {                                                                       \
        chordsip_result rc_ = (call);                                          \
        if (rc_ != CHORDSIP_OK) {                                              \
            fprintf(stderr, "two_nodes: %s: %s\n", what, chordsip_result_str(rc_)); \
            return 1;                                                          \
        }                                                                      \
    } while (0)

/* Applies a `-o name=value` option (chordsip_config_set); 0 on success. */
static int set_option(chordsip_config *cfg, const char *prog, const char *option) {
    char name[64], err[256] = "";
    const char *eq = strchr(option, '=');
    if (eq == NULL || (size_t)(eq - option) >= sizeof name) {
        fprintf(stderr, "%s: -o %s: want name=value\n", prog, option);
        return -1;
    }
    memcpy(name, option, (size_t)(eq - option));
    name[eq - option] = 0;
    if (chordsip_config_set(cfg, name, eq + 1, err, sizeof err) != CHORDSIP_OK) {
        fprintf(stderr, "%s: -o %s: %s\n", prog, option, err);
        return -1;
    }
    return 0;
}

/* Whether `n`'s first successor is the node with id `id`. */
static int successor_is(chordsip_node *n, const char *id) {
    chordsip_peers *succs = NULL;
    chordsip_peer first;
    int yes = chordsip_node_neighbours(n, CHORDSIP_SUCCESSORS, &succs) == CHORDSIP_OK &&
              chordsip_peers_get(succs, 0, &first) == CHORDSIP_OK && strcmp(first.id, id) == 0;
    chordsip_peers_free(succs);
    return yes;
}

static int run(chordsip_node **a, chordsip_node **b, char **options, int n_options) {
    chordsip_config *cfg = NULL;
    TRY("config", chordsip_config_new(&cfg));
    for (int i = 0; i < n_options; i++)
        if (set_option(cfg, "two_nodes", options[i]) != 0) {
            chordsip_config_free(cfg);
            return 2;
        }
    chordsip_result rc = chordsip_node_new(cfg, a, NULL, 0);
    if (rc == CHORDSIP_OK)
        rc = chordsip_node_new(cfg, b, NULL, 0); /* one config, two nodes */
    chordsip_config_free(cfg);
    TRY("node", rc);

    char addr_a[64], addr_b[64];
    TRY("start a new ring", chordsip_node_join(*a, NULL));
    TRY("address", chordsip_node_addr(*a, addr_a, sizeof addr_a));
    TRY("join", chordsip_node_join(*b, addr_a));
    TRY("address", chordsip_node_addr(*b, addr_b, sizeof addr_b));
    printf("node a %s, node b %s\n", addr_a, addr_b);

    /* A join returns once b has a place on the ring; a learns of b a moment
       later (stabilize, every 250 ms). Wait for the ring of two, so that the
       write below is stored and replicated by the node the ring agrees on. */
    char id_a[41], id_b[41];
    TRY("id", chordsip_node_id(*a, id_a, sizeof id_a));
    TRY("id", chordsip_node_id(*b, id_b, sizeof id_b));
    for (int i = 0; i < 100 && !(successor_is(*a, id_b) && successor_is(*b, id_a)); i++)
        nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);

    /* Store a SIP contact for an AOR through a: the ring decides who holds it. */
    const char *aor = "sip:alice@example.com";
    const char *contact = "<sip:alice@192.0.2.10:5060>;expires=3600";
    uint32_t copies = 0;
    TRY("put", chordsip_node_put(*a, aor, "alice-phone", (const uint8_t *)contact,
                                 strlen(contact), 3600, &copies));
    printf("put %s through a: held by %u node(s)\n", aor, copies);

    /* Which node is responsible for it? Both agree. */
    chordsip_lookup_info la, lb;
    TRY("lookup", chordsip_node_lookup(*a, aor, 0, &la));
    TRY("lookup", chordsip_node_lookup(*b, aor, 0, &lb));
    printf("responsible node: %s (from a: %u hops, from b: %u hops)\n", la.node.addr, la.hops,
           lb.hops);
    if (strcmp(la.node.id, lb.node.id) != 0) {
        fprintf(stderr, "two_nodes: the nodes disagree on the responsible node\n");
        return 1;
    }

    /* Read every contact of the AOR back through b. */
    chordsip_values *values = NULL;
    TRY("get", chordsip_node_get(*b, aor, &values));
    int found = 0;
    for (size_t i = 0; i < chordsip_values_len(values); i++) {
        chordsip_value v;
        if (chordsip_values_get(values, i, &v) != CHORDSIP_OK)
            continue;
        printf("get %s through b: %s = %.*s (expires in %llu s)\n", aor, v.writer,
               (int)v.data_len, (const char *)v.data,
               (unsigned long long)(v.expires_in_ms / 1000));
        found |= v.data_len == strlen(contact) && memcmp(v.data, contact, v.data_len) == 0;
    }
    chordsip_values_free(values);
    if (!found) {
        fprintf(stderr, "two_nodes: b did not see the contact stored through a\n");
        return 1;
    }

    TRY("leave", chordsip_node_leave(*b, 2000));
    TRY("leave", chordsip_node_leave(*a, 2000));
    printf("both nodes left\n");
    return 0;
}

int main(int argc, char **argv) {
    char *options[16];
    int n_options = 0, opt;
    while ((opt = getopt(argc, argv, "o:h")) != -1) {
        if (opt == 'o' && n_options < 16) {
            options[n_options++] = optarg;
            continue;
        }
        fprintf(stderr, "usage: %s [-o name=value]...\n", argv[0]);
        return opt == 'h' ? 0 : 2;
    }
    chordsip_node *a = NULL, *b = NULL;
    int status = run(&a, &b, options, n_options);
    chordsip_node_free(b); /* NULL-safe */
    chordsip_node_free(a);
    return status;
}
