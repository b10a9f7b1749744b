/*
 * Open library bugs found by the C tests, one reproduction each. They fail
 * today, so scripts/c-tests.sh runs this binary only with
 * CHORDSIP_CTEST_KNOWN_BUGS=1; each check prints "BUG" or "fixed", and the
 * exit status is 1 while any bug reproduces. When one is fixed, move its
 * check into the regular tests (test_registrar.c).
 *
 *   1. The registrar reads an AOR with one overlay get, whose reply carries
 *      only the entries that fit in one datagram (docs/PROTOCOL.md, "as many
 *      as fit"; newest first). Bindings the registrar itself accepted can
 *      then be missing, silently, from chordsip_*_lookup_aor (CHORDSIP_OK
 *      with a partial list) and from the state a REGISTER is checked
 *      against: the 16-binding limit is exceeded, a refresh counts as an
 *      insert, and an older CSeq of the same Call-ID is accepted.
 *      a) default config: 16 bindings near the registrar's own limits
 *         (contact 500 B, Path 999 B, Call-ID 255 B, received 299 B):
 *         lookup lists 15; a 17th binding is accepted.
 *      b) max_datagram 1400 (the config allows 1200..65507): 8 ordinary
 *         bindings; lookup lists 6, a refresh of all 8 reports 2 inserted,
 *         an older CSeq for a hidden binding is accepted.
 *   2. A REGISTER is not all-or-nothing (RFC 3261 §10.3 step 8): its puts
 *      run one by one, so when a later one fails the earlier ones stay.
 *      The registrar does not bound +sip.instance or received, so a value
 *      over max_value_bytes (4096) reaches storage: the call returns
 *      CHORDSIP_ERR_TOO_LARGE (not a code the header lists for register)
 *      while the request's first contact is bound.
 */
#include "testutil.h"

static int bugs;

static void verdict(int present, const char *what) {
    printf("%s: %s\n", present ? "BUG  " : "fixed", what);
    bugs += present;
}

static size_t lookup_len(chordsip_node *n, const char *aor, int *rc) {
    chordsip_bindings *b = NULL;
    *rc = chordsip_node_lookup_aor(n, aor, &b);
    size_t len = chordsip_bindings_len(b);
    chordsip_bindings_free(b);
    return len;
}

/* 1a */
static void bug1a_big_bindings(chordsip_node **n) {
    static char contacts[17][520], path[1000], received[300], call_id[256];
    memset(path, 'p', sizeof path - 1);
    memcpy(path, "<sip:", 5);
    memset(received, 'r', sizeof received - 1);
    memcpy(received, "sip:", 4);
    memset(call_id, 'c', sizeof call_id - 1);
    const char *pp[1] = {path};
    chordsip_contact cs[17];
    for (int i = 0; i < 17; i++) {
        memset(contacts[i], 'u', 500);
        memcpy(contacts[i], "sip:", 4);
        snprintf(contacts[i] + 480, 40, "@192.0.2.%d", i + 1);
        cs[i] = (chordsip_contact){contacts[i], -1, NULL, NULL, -1};
    }
    chordsip_register r = {"sip:big@example.com", call_id, 1, 0, 600, cs, 16, pp, 1, received};
    chordsip_register_outcome o;
    chordsip_bindings *b = NULL;
    CHECK_OK(chordsip_node_register(n[0], &r, &b, &o));
    CHECK(o.inserted == 16 && chordsip_bindings_len(b) == 16);
    chordsip_bindings_free(b);
    int rc;
    size_t len = lookup_len(n[1], "sip:big@example.com", &rc);
    CHECK_OK(rc);
    printf("       16 large bindings registered; lookup lists %zu\n", len);
    verdict(len != 16, "lookup_aor silently lists a subset of a large AOR's bindings");
    r.contacts = &cs[16];
    r.contacts_len = 1;
    r.call_id = "another";
    rc = chordsip_node_register(n[0], &r, NULL, &o);
    printf("       a 17th binding: %s\n", chordsip_result_str(rc));
    verdict(rc != CHORDSIP_ERR_FULL, "the 16-binding limit is exceeded when bindings are large");
    r = (chordsip_register){"sip:big@example.com", "another", 2, 1, 0, NULL, 0, NULL, 0, NULL};
    CHECK_OK(chordsip_node_register(n[0], &r, NULL, NULL)); /* '*': clean up what it sees */
}

/* 1b */
static void bug1b_small_datagrams(void) {
    chordsip_config *cfg = fast_config();
    char err[128];
    CHECK_OK(chordsip_config_set(cfg, "max_datagram", "1400", err, sizeof err));
    CHECK_OK(chordsip_config_set(cfg, "max_value_bytes", "800", err, sizeof err));
    chordsip_node *n[3];
    make_ring(cfg, n, 3);
    chordsip_config_free(cfg);
    char uris[8][64];
    chordsip_contact cs[8];
    for (int i = 0; i < 8; i++) {
        snprintf(uris[i], sizeof uris[i], "sip:alice@192.0.2.%d:5060;transport=tcp", 10 + i);
        cs[i] = (chordsip_contact){uris[i], -1, NULL, NULL, -1};
    }
    const char *path[1] = {"<sip:edge-proxy-1.example.com;lr>"};
    chordsip_register r = {"sip:alice@example.com", "a84b4c76e66710@pc33.atlanta.com", 1, 0, 3600,
                           cs, 8, path, 1, NULL};
    chordsip_register_outcome o;
    CHECK_OK(chordsip_node_register(n[0], &r, NULL, &o));
    CHECK(o.inserted == 8);
    int rc;
    size_t len = lookup_len(n[1], "sip:alice@example.com", &rc);
    CHECK_OK(rc);
    printf("       max_datagram 1400, 8 bindings registered; lookup lists %zu\n", len);
    verdict(len != 8, "with a small max_datagram, lookup_aor lists a subset of 8 bindings");
    r.cseq = 2;
    CHECK_OK(chordsip_node_register(n[0], &r, NULL, &o));
    printf("       refresh of all 8: inserted %u, updated %u\n", o.inserted, o.updated);
    verdict(o.inserted != 0 || o.updated != 8, "a refresh of hidden bindings counts as inserts");
    r.cseq = 1; /* older than the stored CSeq 2 of the same Call-ID */
    r.contacts_len = 1;
    rc = chordsip_node_register(n[0], &r, NULL, &o);
    printf("       CSeq 1 after CSeq 2, same Call-ID: %s\n", chordsip_result_str(rc));
    verdict(rc != CHORDSIP_ERR_OUT_OF_ORDER, "an older CSeq for a hidden binding is accepted");
    leave_all(n, 3);
}

/* 2 */
static void bug2_partial_register(chordsip_node **n) {
    static char instance[5000];
    memset(instance, 'i', sizeof instance - 1);
    memcpy(instance, "<urn:uuid:", 10);
    chordsip_contact cs[2] = {{"sip:p@192.0.2.1", -1, NULL, NULL, -1},
                              {"sip:p@192.0.2.2", -1, NULL, instance, -1}};
    chordsip_register r = {"sip:partial@example.com", "p-1", 1, 0, 600, cs, 2, NULL, 0, NULL};
    int rc = chordsip_node_register(n[0], &r, NULL, NULL), lrc;
    size_t len = lookup_len(n[1], "sip:partial@example.com", &lrc);
    CHECK_OK(lrc);
    printf("       REGISTER of 2 contacts, the 2nd with a 5000-byte +sip.instance: %s; "
           "bindings afterwards: %zu\n",
           chordsip_result_str(rc), len);
    verdict(rc != CHORDSIP_OK && len != 0,
            "a failed REGISTER leaves the bindings it stored before failing");
}

int main(void) {
    test_begin("test_known_bugs", 60);
    chordsip_config *cfg = fast_config();
    chordsip_node *n[3];
    make_ring(cfg, n, 3);
    chordsip_config_free(cfg);
    bug1a_big_bindings(n);
    bug2_partial_register(n);
    leave_all(n, 3);
    bug1b_small_datagrams();
    printf("%d known bug(s) reproduce\n", bugs);
    return bugs > 0;
}
