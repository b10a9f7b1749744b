/*
 * The registrar through the C API on a 3-node ring: A and B deliver on
 * library threads, C delivers through its event fd and serves a UNIX socket.
 * REGISTERs go to A (and through client handles); every result is checked
 * against lookups from B, from a UDP client and from a UNIX-socket client:
 *  - two devices of one AOR under different spellings, highest q first,
 *    expires as registered, Path and received kept, the 200 OK's list;
 *  - AOR canonicalisation (scheme, host case, port, parameters, escapes,
 *    tel: separators) and case-sensitive user parts;
 *  - refresh of an equivalent contact URI updates; strict parameters and
 *    an explicit port make another binding;
 *  - RFC 5626 flows: the same +sip.instance/reg-id from a new address
 *    replaces, another reg-id adds;
 *  - CSeq ordering per Call-ID (CHORDSIP_ERR_OUT_OF_ORDER, nothing changes),
 *    a new Call-ID replaces;
 *  - unregistering with expires 0 and with '*';
 *  - limits: 16 bindings (CHORDSIP_ERR_FULL), expires below CHORDSIP_MIN_EXPIRES
 *    (CHORDSIP_ERR_INTERVAL_TOO_BRIEF), expires capped at 86400 s;
 *  - the next hop of a binding (contact, received, Path) from every lookup;
 *  - chordsip_node_lookup_aor_async in thread and fd delivery;
 *  - chordsip_node_register_async: many REGISTERs in flight on one node,
 *    each answered once with the blocking call's answer, its refusals
 *    through the callback (or at once, before anything is read), in thread
 *    and fd delivery; chordsip_node_authenticate_async without a key.
 */
#include "testutil.h"

#include <poll.h>
#include <sys/stat.h>

#define N 3
#define MAXB 20

static chordsip_node *ring[N];
static chordsip_node *node_a, *node_b, *node_c; /* C: fd delivery, UNIX socket */
static chordsip_client *udp_client, *unix_client;

/* ----- binding lists copied out of the library ----- */

typedef struct {
    char contact[600];
    uint32_t q, expires;
    int has_instance;
    char instance[160];
    int64_t reg_id;
    int has_received;
    char received[160];
    char call_id[300];
    uint32_t cseq;
    size_t path_len;
    char path[4][160];
} snap_t;

typedef struct {
    size_t n;
    snap_t b[MAXB];
} list_t;

static void copy_str(char *dst, size_t cap, const char *s) {
    CHECK(s != NULL);
    CHECK(strlen(s) < cap);
    strcpy(dst, s);
}

/* Copies a list, checking its shape: strings present, Path entries as many
   as path_len says, highest q first. */
static void snapshot(const chordsip_bindings *l, list_t *out) {
    memset(out, 0, sizeof *out);
    CHECK(l != NULL);
    out->n = chordsip_bindings_len(l);
    CHECK(out->n <= MAXB);
    for (size_t i = 0; i < out->n; i++) {
        chordsip_binding x;
        snap_t *s = &out->b[i];
        CHECK_OK(chordsip_bindings_get(l, i, &x));
        copy_str(s->contact, sizeof s->contact, x.contact);
        s->q = x.q;
        CHECK(x.q <= 1000);
        s->expires = x.expires;
        s->has_instance = x.instance != NULL;
        if (x.instance != NULL)
            copy_str(s->instance, sizeof s->instance, x.instance);
        s->reg_id = x.reg_id;
        CHECK(x.reg_id >= -1 && x.reg_id <= (int64_t)UINT32_MAX);
        if (x.reg_id != -1)
            CHECK(x.instance != NULL);
        s->has_received = x.received != NULL;
        if (x.received != NULL)
            copy_str(s->received, sizeof s->received, x.received);
        copy_str(s->call_id, sizeof s->call_id, x.call_id);
        s->cseq = x.cseq;
        s->path_len = x.path_len;
        CHECK(x.path_len <= 4);
        for (size_t p = 0; p < x.path_len; p++)
            copy_str(s->path[p], sizeof s->path[p], chordsip_bindings_path(l, i, p));
        CHECK(chordsip_bindings_path(l, i, x.path_len) == NULL);
        if (i > 0)
            CHECK(out->b[i - 1].q >= s->q);
    }
    chordsip_binding x;
    CHECK_RC(chordsip_bindings_get(l, out->n, &x), CHORDSIP_ERR_OUT_OF_RANGE);
}

static void print_list(const char *title, const list_t *l) {
    fprintf(stderr, "%s: %zu bindings\n", title, l->n);
    for (size_t i = 0; i < l->n; i++) {
        const snap_t *s = &l->b[i];
        fprintf(stderr, "  %s q=%u expires=%u instance=%s reg-id=%lld call-id=%s cseq=%u path=%zu\n",
                s->contact, s->q, s->expires, s->has_instance ? s->instance : "-",
                (long long)s->reg_id, s->call_id, s->cseq, s->path_len);
    }
}

static int find(const list_t *l, const char *contact) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->b[i].contact, contact) == 0)
            return (int)i;
    return -1;
}

/* Seconds a remaining lifetime may have run down between two reads. */
static uint32_t slack(void) { return scaled(10); }

/* Same bindings (as sets: equal q may come in any order), expires within the slack. */
static int same_snap(const snap_t *a, const snap_t *b) {
    uint32_t d = a->expires > b->expires ? a->expires - b->expires : b->expires - a->expires;
    if (strcmp(a->contact, b->contact) != 0 || a->q != b->q || d > slack() ||
        a->has_instance != b->has_instance || strcmp(a->instance, b->instance) != 0 ||
        a->reg_id != b->reg_id || a->has_received != b->has_received ||
        strcmp(a->received, b->received) != 0 || strcmp(a->call_id, b->call_id) != 0 ||
        a->cseq != b->cseq || a->path_len != b->path_len)
        return 0;
    for (size_t p = 0; p < a->path_len; p++)
        if (strcmp(a->path[p], b->path[p]) != 0)
            return 0;
    return 1;
}

static int same_lists(const list_t *a, const list_t *b) {
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        int j = find(b, a->b[i].contact);
        if (j < 0 || !same_snap(&a->b[i], &b->b[j]))
            return 0;
    }
    return 1;
}

#define CHECK_SAME(a, b)                                                       \
    do {                                                                       \
        if (!same_lists(a, b)) {                                               \
            print_list(#a, a);                                                 \
            print_list(#b, b);                                                 \
            CHECK(!"binding lists differ");                                    \
        }                                                                      \
    } while (0)

/* What one binding should look like; expires is the registered lifetime. */
typedef struct {
    const char *contact;
    uint32_t q;
    uint32_t expires;
    const char *call_id;
    uint32_t cseq;
} want_t;

/* `l` holds exactly the `wants` (in this order when `ordered`). */
static void check_list(const list_t *l, const want_t *wants, size_t n, int ordered) {
    int ok = l->n == n;
    for (size_t i = 0; ok && i < n; i++) {
        int j = ordered ? (int)i : find(l, wants[i].contact);
        if (j < 0 || strcmp(l->b[j].contact, wants[i].contact) != 0) {
            ok = 0;
            break;
        }
        const snap_t *s = &l->b[j];
        if (s->q != wants[i].q || s->expires > wants[i].expires ||
            s->expires + slack() < wants[i].expires || s->cseq != wants[i].cseq ||
            strcmp(s->call_id, wants[i].call_id) != 0)
            ok = 0;
    }
    if (!ok) {
        print_list("got", l);
        fprintf(stderr, "wanted %zu:\n", n);
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "  %s q=%u expires=%u call-id=%s cseq=%u\n", wants[i].contact,
                    wants[i].q, wants[i].expires, wants[i].call_id, wants[i].cseq);
        CHECK(!"unexpected bindings");
    }
}

/* ----- registering and looking up through nodes and clients ----- */

typedef struct {
    const char *name;
    chordsip_node *node;
    chordsip_client *client;
} target_t;

static target_t at_a, at_b, via_udp, via_unix;

static chordsip_result t_register(const target_t *t, const chordsip_register *r,
                                  chordsip_bindings **b, chordsip_register_outcome *o) {
    return t->node ? chordsip_node_register(t->node, r, b, o)
                   : chordsip_client_register(t->client, r, b, o);
}

static chordsip_result t_lookup(const target_t *t, const char *aor, chordsip_bindings **b) {
    return t->node ? chordsip_node_lookup_aor(t->node, aor, b)
                   : chordsip_client_lookup_aor(t->client, aor, b);
}

static void lookup_at(const target_t *t, const char *aor, list_t *out) {
    chordsip_bindings *b = NULL;
    int rc = t_lookup(t, aor, &b);
    if (rc != CHORDSIP_OK)
        fprintf(stderr, "lookup of %s at %s failed\n", aor, t->name);
    CHECK_RC(rc, CHORDSIP_OK);
    snapshot(b, out);
    chordsip_bindings_free(b);
}

/* Looks `aor` up from B, the UDP client, the UNIX-socket client and C: all agree. */
static void lookup_all(const char *aor, list_t *out) {
    static list_t other;
    const target_t at_c = {"node C", node_c, NULL};
    const target_t *more[] = {&via_udp, &via_unix, &at_c};
    lookup_at(&at_b, aor, out);
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        lookup_at(more[i], aor, &other);
        if (!same_lists(out, &other)) {
            fprintf(stderr, "lookup of %s: node B and %s disagree\n", aor, more[i]->name);
            CHECK_SAME(out, &other);
        }
    }
}

static chordsip_contact contact(const char *uri, int64_t expires, const char *q) {
    chordsip_contact c = {uri, expires, q, NULL, -1};
    return c;
}

static chordsip_contact flow(const char *uri, const char *instance, int64_t reg_id) {
    chordsip_contact c = {uri, -1, NULL, instance, reg_id};
    return c;
}

static chordsip_register request(const char *aor, const char *call_id, uint32_t cseq,
                                 int64_t expires, const chordsip_contact *cs, size_t n) {
    chordsip_register r;
    memset(&r, 0, sizeof r);
    r.aor = aor;
    r.call_id = call_id;
    r.cseq = cseq;
    r.star = 0;
    r.expires = expires;
    r.contacts = cs;
    r.contacts_len = n;
    r.path = NULL;
    r.path_len = 0;
    r.received = NULL;
    return r;
}

static chordsip_register star(const char *aor, const char *call_id, uint32_t cseq) {
    chordsip_register r = request(aor, call_id, cseq, 0, NULL, 0);
    r.star = 1;
    return r;
}

/*
 * A REGISTER that must succeed with these counts. `result` receives the
 * 200 OK's list, which must be what lookups from everywhere find afterwards.
 */
static void reg_ok(const target_t *t, const chordsip_register *r, uint32_t ins, uint32_t upd,
                   uint32_t del, list_t *result) {
    static list_t now;
    chordsip_bindings *b = NULL;
    chordsip_register_outcome o;
    memset(&o, 0xA5, sizeof o);
    int rc = t_register(t, r, &b, &o);
    if (rc != CHORDSIP_OK)
        fprintf(stderr, "REGISTER %s (Call-ID %s, CSeq %u) at %s failed\n", r->aor, r->call_id,
                r->cseq, t->name);
    CHECK_RC(rc, CHORDSIP_OK);
    if (o.inserted != ins || o.updated != upd || o.deleted != del) {
        fprintf(stderr, "REGISTER %s CSeq %u at %s: inserted/updated/deleted %u/%u/%u, "
                        "expected %u/%u/%u\n",
                r->aor, r->cseq, t->name, o.inserted, o.updated, o.deleted, ins, upd, del);
        CHECK(!"unexpected outcome");
    }
    snapshot(b, result);
    chordsip_bindings_free(b);
    lookup_all(r->aor, &now);
    CHECK_SAME(result, &now);
}

/* A REGISTER that must fail with `want`, changing nothing, out-params untouched. */
static void reg_fail(const target_t *t, const chordsip_register *r, int want) {
    static list_t before, after;
    static char sentinel;
    lookup_all(r->aor, &before);
    chordsip_bindings *b = (chordsip_bindings *)(void *)&sentinel;
    chordsip_register_outcome o, o0;
    memset(&o, 0xA5, sizeof o);
    o0 = o;
    CHECK_RC(t_register(t, r, &b, &o), want);
    CHECK(b == (chordsip_bindings *)(void *)&sentinel);
    CHECK(memcmp(&o, &o0, sizeof o) == 0);
    lookup_all(r->aor, &after);
    CHECK_SAME(&before, &after);
}

/* ----- the scenarios ----- */

#define ALICE "sip:Alice@example.com"
#define DESK "sip:alice@Desk.Example.ORG:5060"
#define MOBILE "sips:alice@198.51.100.20:5061;transport=tls"
static const char *const mobile_path[2] = {"<sip:edge.example.net;lr>",
                                           "<sip:core.example.net;lr>"};
#define MOBILE_RECEIVED "sip:203.0.113.5:40000"

/* Two devices of Alice, registered at A under two spellings of her AOR. */
static void test_two_devices(void) {
    static list_t res, l;
    chordsip_contact desk = contact(DESK, -1, "0.7");
    chordsip_register r =
        request("sip:Alice@Example.COM:5060;transport=udp", "desk-1@192.0.2.10", 1, 3600, &desk, 1);
    reg_ok(&at_a, &r, 1, 0, 0, &res);
    want_t w1[] = {{DESK, 700, 3600, "desk-1@192.0.2.10", 1}};
    check_list(&res, w1, 1, 1);
    CHECK(res.b[0].path_len == 0 && !res.b[0].has_received && !res.b[0].has_instance);
    CHECK(res.b[0].reg_id == -1);

    chordsip_contact mobile = contact(MOBILE, 1800, NULL);
    r = request("sips:Alice@example.com", "mobile-1", 10, -1, &mobile, 1);
    r.path = mobile_path;
    r.path_len = 2;
    r.received = MOBILE_RECEIVED;
    reg_ok(&at_a, &r, 1, 0, 0, &res);
    /* The 200 OK lists both, highest q first: the mobile (q 1) then the desk (q 0.7). */
    want_t w2[] = {{MOBILE, 1000, 1800, "mobile-1", 10}, {DESK, 700, 3600, "desk-1@192.0.2.10", 1}};
    check_list(&res, w2, 2, 1);
    CHECK(res.b[0].path_len == 2);
    CHECK(strcmp(res.b[0].path[0], mobile_path[0]) == 0);
    CHECK(strcmp(res.b[0].path[1], mobile_path[1]) == 0);
    CHECK(res.b[0].has_received && strcmp(res.b[0].received, MOBILE_RECEIVED) == 0);
    CHECK(res.b[1].path_len == 0 && !res.b[1].has_received);

    /* Every spelling of the AOR finds both, from everywhere, in q order. */
    const char *spellings[] = {
        ALICE,
        "sips:Alice@example.com",
        "SIP:Alice@EXAMPLE.COM",
        "sip:Alice@example.com:5070;user=phone",
        "sip:%41lice@example.com",
        "sip:Alice:secret@example.com",
        "sip:Alice@example.com?subject=hello",
    };
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        lookup_all(spellings[i], &l);
        check_list(&l, w2, 2, 1);
        CHECK_SAME(&l, &res);
    }
    /* The user part is case-sensitive: alice is someone else. */
    lookup_all("sip:alice@example.com", &l);
    CHECK(l.n == 0);
    chordsip_contact other = contact("sip:lower@192.0.2.99", -1, NULL);
    r = request("sip:alice@example.com", "lower-1", 1, 600, &other, 1);
    reg_ok(&at_b, &r, 1, 0, 0, &res);
    want_t wl[] = {{"sip:lower@192.0.2.99", 1000, 600, "lower-1", 1}};
    check_list(&res, wl, 1, 1);
    lookup_all(ALICE, &l);
    check_list(&l, w2, 2, 1);
    /* Other users and domains are others too. */
    lookup_all("sip:Alice@example.org", &l);
    CHECK(l.n == 0);
    lookup_all("sip:Alice2@example.com", &l);
    CHECK(l.n == 0);
    r = star("sip:alice@example.com", "lower-1", 2);
    reg_ok(&at_b, &r, 0, 0, 1, &res);
    CHECK(res.n == 0);
}

/* tel: AORs lose their visual separators (RFC 3966); the largest reg-id survives. */
static void test_tel(void) {
    static list_t res, l;
    chordsip_contact c = flow("sip:+12015550123@192.0.2.80;user=phone", "<urn:uuid:tel-1>",
                              4294967294LL);
    chordsip_register r = request("tel:+1-201-555-0123", "tel-1", 1, 600, &c, 1);
    reg_ok(&at_a, &r, 1, 0, 0, &res);
    CHECK(res.n == 1 && res.b[0].reg_id == 4294967294LL);
    const char *same[] = {"tel:+12015550123", "tel:+1.201.555.0123", "tel:+1(201)555-0123"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        lookup_all(same[i], &l);
        CHECK_SAME(&l, &res);
    }
    lookup_all("tel:+12015550124", &l);
    CHECK(l.n == 0);
    lookup_all("sip:+12015550123@example.com", &l); /* a sip: AOR is another one */
    CHECK(l.n == 0);
    r = star("tel:+12015550123", "tel-1", 2);
    reg_ok(&at_a, &r, 0, 0, 1, &res);
}

/* A REGISTER without contacts queries: nothing changes, the list comes back. */
static void test_query(void) {
    static list_t res, l;
    lookup_all(ALICE, &l);
    chordsip_register r = request(ALICE, "query-1", 1, -1, NULL, 0);
    reg_ok(&at_a, &r, 0, 0, 0, &res);
    CHECK_SAME(&res, &l);
    reg_ok(&via_unix, &r, 0, 0, 0, &res); /* the same Call-ID/CSeq again: no binding has it */
    CHECK_SAME(&res, &l);
}

/* Refresh with equivalent URIs updates in place; non-equivalent ones are new bindings. */
static void test_refresh(void) {
    static list_t res;
    /* host case and an extra ;ob: equivalent (RFC 3261 §19.1.4), so an update; new q */
    chordsip_contact c = contact("sip:alice@desk.example.org:5060;ob", -1, "0.8");
    chordsip_register r = request(ALICE, "desk-1@192.0.2.10", 2, 3600, &c, 1);
    reg_ok(&at_a, &r, 0, 1, 0, &res);
    want_t w[] = {{MOBILE, 1000, 1800, "mobile-1", 10},
                  {"sip:alice@desk.example.org:5060;ob", 800, 3600, "desk-1@192.0.2.10", 2}};
    check_list(&res, w, 2, 1);
    c = contact("sip:alice@DESK.EXAMPLE.ORG:5060", -1, "0.7");
    r = request(ALICE, "desk-1@192.0.2.10", 3, 3600, &c, 1);
    reg_ok(&via_udp, &r, 0, 1, 0, &res);
    want_t w2[] = {{MOBILE, 1000, 1800, "mobile-1", 10},
                   {"sip:alice@DESK.EXAMPLE.ORG:5060", 700, 3600, "desk-1@192.0.2.10", 3}};
    check_list(&res, w2, 2, 1);

    /* transport must match if either has it, and no port differs from :5060 */
    chordsip_contact two[2] = {
        contact("sip:alice@desk.example.org:5060;transport=tcp", -1, "0.5"),
        contact("sip:alice@desk.example.org", -1, "0.5"),
    };
    r = request(ALICE, "desk-1@192.0.2.10", 4, 600, two, 2);
    reg_ok(&at_a, &r, 2, 0, 0, &res);
    CHECK(res.n == 4);
    CHECK(find(&res, two[0].uri) == 2 || find(&res, two[0].uri) == 3);
    two[0].expires = 0;
    two[1].expires = 0;
    r = request(ALICE, "desk-1@192.0.2.10", 5, 600, two, 2);
    reg_ok(&at_a, &r, 0, 0, 2, &res);
    check_list(&res, w2, 2, 1);
}

/* CSeq ordering per Call-ID: older or equal is refused and nothing changes. */
static void test_out_of_order(void) {
    static list_t res;
    chordsip_contact c = contact("sip:alice@desk.example.org:5060", -1, "0.7");
    chordsip_register r = request(ALICE, "desk-1@192.0.2.10", 3, 3600, &c, 1);
    reg_fail(&at_a, &r, CHORDSIP_ERR_OUT_OF_ORDER); /* equal */
    r.cseq = 1;
    reg_fail(&at_a, &r, CHORDSIP_ERR_OUT_OF_ORDER); /* older */
    reg_fail(&via_unix, &r, CHORDSIP_ERR_OUT_OF_ORDER);
    c.expires = 0; /* an old unregister must not remove it either */
    reg_fail(&at_b, &r, CHORDSIP_ERR_OUT_OF_ORDER);
    /* A request whose second contact is out of order changes nothing at all. */
    chordsip_contact two[2] = {contact("sip:alice@192.0.2.77", -1, NULL),
                               contact("sip:alice@desk.example.org:5060", -1, NULL)};
    r = request(ALICE, "desk-1@192.0.2.10", 2, 3600, two, 2);
    reg_fail(&at_a, &r, CHORDSIP_ERR_OUT_OF_ORDER);
    /* '*' is checked against every binding: mobile-1 is at CSeq 10. */
    r = star(ALICE, "mobile-1", 10);
    reg_fail(&at_a, &r, CHORDSIP_ERR_OUT_OF_ORDER);
    reg_fail(&via_udp, &r, CHORDSIP_ERR_OUT_OF_ORDER);

    /* A new Call-ID (the desk rebooted) replaces, whatever its CSeq. */
    c = contact("sip:alice@desk.example.org:5060", -1, "0.7");
    r = request(ALICE, "desk-2@192.0.2.10", 1, 3600, &c, 1);
    reg_ok(&at_a, &r, 0, 1, 0, &res);
    want_t w[] = {{MOBILE, 1000, 1800, "mobile-1", 10},
                  {"sip:alice@desk.example.org:5060", 700, 3600, "desk-2@192.0.2.10", 1}};
    check_list(&res, w, 2, 1);
}

/* RFC 5626: one binding per flow (+sip.instance and reg-id). */
static void test_flows(void) {
    static list_t res;
    const char *bob = "sip:bob@example.com";
    const char *inst = "<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>";
    chordsip_contact c = flow("sip:bob@192.0.2.30:5060;transport=tcp;ob", inst, 1);
    chordsip_register r = request(bob, "bob-1", 1, 600, &c, 1);
    reg_ok(&at_a, &r, 1, 0, 0, &res);
    CHECK(res.n == 1 && res.b[0].has_instance && strcmp(res.b[0].instance, inst) == 0);
    CHECK(res.b[0].reg_id == 1);

    /* the same flow from a new address after a reboot (new Call-ID): replaced */
    c = flow("sip:bob@192.0.2.31:6000;transport=tcp;ob", inst, 1);
    r = request(bob, "bob-2", 1, 600, &c, 1);
    reg_ok(&via_udp, &r, 0, 1, 0, &res);
    want_t w1[] = {{"sip:bob@192.0.2.31:6000;transport=tcp;ob", 1000, 600, "bob-2", 1}};
    check_list(&res, w1, 1, 1);
    CHECK(res.b[0].reg_id == 1);

    /* the same flow from yet another address, same Call-ID, newer CSeq: replaced */
    c = flow("sip:bob@192.0.2.33:6001;transport=tcp;ob", inst, 1);
    r = request(bob, "bob-2", 2, 600, &c, 1);
    reg_ok(&at_a, &r, 0, 1, 0, &res);
    CHECK(res.n == 1 && strcmp(res.b[0].contact, c.uri) == 0);

    /* another reg-id of the instance: a second flow */
    c = flow("sip:bob@192.0.2.32:5060;transport=tcp;ob", inst, 2);
    r = request(bob, "bob-2", 3, 600, &c, 1);
    reg_ok(&via_unix, &r, 1, 0, 0, &res);
    CHECK(res.n == 2);
    int i1 = find(&res, "sip:bob@192.0.2.33:6001;transport=tcp;ob");
    int i2 = find(&res, "sip:bob@192.0.2.32:5060;transport=tcp;ob");
    CHECK(i1 >= 0 && i2 >= 0);
    CHECK(res.b[i1].reg_id == 1 && res.b[i2].reg_id == 2);
    CHECK(strcmp(res.b[i2].instance, inst) == 0);

    /* flow 1 with an older CSeq of the same Call-ID: refused */
    c = flow("sip:bob@192.0.2.34:6002;transport=tcp;ob", inst, 1);
    r = request(bob, "bob-2", 2, 600, &c, 1);
    reg_fail(&at_a, &r, CHORDSIP_ERR_OUT_OF_ORDER);
    reg_fail(&via_udp, &r, CHORDSIP_ERR_OUT_OF_ORDER);

    /* flow 2 unregistered from another address: the flow is the binding */
    c = flow("sip:bob@192.0.2.99:7000;transport=tcp;ob", inst, 2);
    c.expires = 0;
    r = request(bob, "bob-2", 4, 600, &c, 1);
    reg_ok(&at_a, &r, 0, 0, 1, &res);
    CHECK(res.n == 1 && res.b[0].reg_id == 1);
    r = star(bob, "bob-2", 5);
    reg_ok(&via_unix, &r, 0, 0, 1, &res);
    CHECK(res.n == 0);
}

/* Unregistering: one contact with expires 0, then '*' with Expires: 0. */
static void test_unregister(void) {
    static list_t res, l;
    const char *desk = "sip:alice@desk.example.org:5060";
    want_t mobile_only[] = {{MOBILE, 1000, 1800, "mobile-1", 10}};
    chordsip_contact c = contact(desk, 0, NULL);
    chordsip_register r = request(ALICE, "desk-2@192.0.2.10", 2, 3600, &c, 1);
    reg_ok(&at_a, &r, 0, 0, 1, &res);
    check_list(&res, mobile_only, 1, 1);
    /* registered again at once: the removal does not shadow it */
    c = contact(desk, 600, "0.7");
    r = request(ALICE, "desk-2@192.0.2.10", 3, -1, &c, 1);
    reg_ok(&at_a, &r, 1, 0, 0, &res);
    CHECK(res.n == 2);
    /* the Expires header 0 does not override the contact's own expires */
    chordsip_contact c2 = contact("sip:alice@192.0.2.55", 600, NULL);
    r = request(ALICE, "desk-2@192.0.2.10", 4, 0, &c2, 1);
    reg_ok(&at_a, &r, 1, 0, 0, &res);
    CHECK(res.n == 3);
    /* ...but applies to contacts without one: both go */
    chordsip_contact two[2] = {contact(desk, -1, NULL), contact("sip:alice@192.0.2.55", -1, NULL)};
    r = request(ALICE, "desk-2@192.0.2.10", 5, 0, two, 2);
    reg_ok(&via_udp, &r, 0, 0, 2, &res);
    check_list(&res, mobile_only, 1, 1);
    /* expires 0 of a contact that is not bound: nothing to delete */
    c = contact("sip:alice@192.0.2.200", 0, NULL);
    r = request(ALICE, "desk-2@192.0.2.10", 6, -1, &c, 1);
    reg_ok(&at_a, &r, 0, 0, 0, &res);
    check_list(&res, mobile_only, 1, 1);

    /* '*' removes every binding */
    c = contact("sip:alice@desk.example.org:5060", -1, "0.7");
    r = request(ALICE, "desk-3", 1, 3600, &c, 1);
    reg_ok(&at_a, &r, 1, 0, 0, &res);
    CHECK(res.n == 2);
    r = star("sips:Alice@EXAMPLE.com", "mobile-1", 11);
    reg_ok(&at_a, &r, 0, 0, 2, &res);
    CHECK(res.n == 0);
    lookup_all(ALICE, &l);
    CHECK(l.n == 0);
    /* and on an AOR without bindings it deletes nothing */
    r = star(ALICE, "mobile-1", 12);
    reg_ok(&via_unix, &r, 0, 0, 0, &res);
    CHECK(res.n == 0);
}

/* At most 16 bindings per AOR. */
static void test_full(void) {
    static list_t res, l;
    static char uris[18][48];
    static chordsip_contact cs[18];
    const char *carol = "sip:carol@example.com";
    for (int i = 0; i < 18; i++) {
        snprintf(uris[i], sizeof uris[i], "sip:carol@192.0.2.%d:5060", 100 + i);
        cs[i] = contact(uris[i], -1, NULL);
    }
    /* 17 in one request: refused, nothing stored */
    chordsip_register r = request("sip:erin@example.com", "erin-1", 1, 600, cs, 17);
    reg_fail(&at_a, &r, CHORDSIP_ERR_FULL);
    lookup_all("sip:erin@example.com", &l);
    CHECK(l.n == 0);

    r = request(carol, "carol-1", 1, 600, cs, 16);
    reg_ok(&at_a, &r, 16, 0, 0, &res);
    CHECK(res.n == 16);
    for (int i = 0; i < 16; i++)
        CHECK(find(&res, uris[i]) >= 0);
    /* a 17th, from any Call-ID and through any handle: refused */
    r = request(carol, "carol-2", 1, 600, &cs[16], 1);
    reg_fail(&at_a, &r, CHORDSIP_ERR_FULL);
    reg_fail(&via_unix, &r, CHORDSIP_ERR_FULL);
    reg_fail(&via_udp, &r, CHORDSIP_ERR_FULL);
    /* a refresh of a bound contact is fine when full */
    r = request(carol, "carol-1", 2, 600, &cs[3], 1);
    reg_ok(&at_a, &r, 0, 1, 0, &res);
    CHECK(res.n == 16);
    /* removing one and adding another in one request keeps it at 16 */
    chordsip_contact swap[2] = {contact(uris[0], 0, NULL), cs[16]};
    r = request(carol, "carol-1", 3, 600, swap, 2);
    reg_ok(&at_a, &r, 1, 0, 1, &res);
    CHECK(res.n == 16 && find(&res, uris[0]) < 0 && find(&res, uris[16]) >= 0);
    /* adding before removing is over the limit at the moment of adding */
    chordsip_contact swap2[2] = {cs[17], contact(uris[1], 0, NULL)};
    r = request(carol, "carol-1", 4, 600, swap2, 2);
    reg_fail(&at_a, &r, CHORDSIP_ERR_FULL);
    r = star(carol, "carol-1", 5);
    reg_ok(&at_a, &r, 0, 0, 16, &res);
    CHECK(res.n == 0);
}

/* Expires: below CHORDSIP_MIN_EXPIRES refused (SIP 423), the minimum accepted,
 * over 86400 s capped. */
static void test_expires_limits(void) {
    static list_t res;
    const char *dave = "sip:dave@example.com";
    chordsip_contact c = contact("sip:dave@192.0.2.40", -1, NULL);
    chordsip_register r = request(dave, "dave-1", 1, 5, &c, 1);
    reg_fail(&at_a, &r, CHORDSIP_ERR_INTERVAL_TOO_BRIEF);
    reg_fail(&via_udp, &r, CHORDSIP_ERR_INTERVAL_TOO_BRIEF);
    c.expires = 5; /* the contact's own expires */
    r.expires = 3600;
    reg_fail(&at_a, &r, CHORDSIP_ERR_INTERVAL_TOO_BRIEF);
    c.expires = CHORDSIP_MIN_EXPIRES - 1;
    reg_fail(&via_unix, &r, CHORDSIP_ERR_INTERVAL_TOO_BRIEF);
    c.expires = 1;
    reg_fail(&at_b, &r, CHORDSIP_ERR_INTERVAL_TOO_BRIEF);
    c.expires = CHORDSIP_MIN_EXPIRES;
    reg_ok(&at_a, &r, 1, 0, 0, &res);
    want_t w60[] = {{"sip:dave@192.0.2.40", 1000, CHORDSIP_MIN_EXPIRES, "dave-1", 1}};
    check_list(&res, w60, 1, 1);
    c.expires = 100000;
    r.cseq = 2;
    reg_ok(&via_udp, &r, 0, 1, 0, &res);
    want_t wmax[] = {{"sip:dave@192.0.2.40", 1000, 86400, "dave-1", 2}};
    check_list(&res, wmax, 1, 1);
    /* no expires anywhere: the default 3600 s */
    c.expires = -1;
    r.expires = -1;
    r.cseq = 3;
    reg_ok(&at_a, &r, 0, 1, 0, &res);
    want_t wdef[] = {{"sip:dave@192.0.2.40", 1000, 3600, "dave-1", 3}};
    check_list(&res, wdef, 1, 1);
    r = star(dave, "dave-1", 4);
    reg_ok(&at_a, &r, 0, 0, 1, &res);
}

/* ----- where requests for a binding go ----- */

/* Registers `contact` for `aor` with `received` (and a flow when `reg_id` >= 0,
 * a Path when `path` is set), then checks the next hop of the binding as every
 * lookup returns it. `want_uri` NULL: the contact itself. */
static void check_hop(const char *aor, const char *uri, const char *received, int64_t reg_id,
                      const char *path, uint32_t want_kind, const char *want_uri) {
    static list_t res;
    chordsip_contact c =
        reg_id >= 0 ? flow(uri, "<urn:uuid:hop-1>", reg_id) : contact(uri, -1, NULL);
    chordsip_register r = request(aor, "hop-1", 1, 600, &c, 1);
    r.received = received;
    const char *paths[1] = {path};
    if (path != NULL) {
        r.path = paths;
        r.path_len = 1;
    }
    reg_ok(&at_a, &r, 1, 0, 0, &res);
    const target_t at_c = {"node C", node_c, NULL};
    const target_t *from[] = {&at_b, &via_udp, &via_unix, &at_c};
    for (size_t t = 0; t < sizeof from / sizeof from[0]; t++) {
        chordsip_bindings *b = NULL;
        uint32_t kind = 99;
        const char *hop = NULL;
        CHECK_OK(t_lookup(from[t], aor, &b));
        CHECK(chordsip_bindings_len(b) == 1);
        CHECK_OK(chordsip_bindings_next_hop(b, 0, &kind, &hop));
        if (kind != want_kind || strcmp(hop, want_uri ? want_uri : uri) != 0) {
            fprintf(stderr, "%s (received %s, reg-id %lld, path %s) at %s: hop %u %s, want %u %s\n",
                    uri, received ? received : "-", (long long)reg_id, path ? path : "-",
                    from[t]->name, kind, hop, want_kind, want_uri ? want_uri : uri);
            CHECK(!"unexpected next hop");
        }
        chordsip_bindings_free(b);
    }
    r = star(aor, "hop-1", 2);
    reg_ok(&at_a, &r, 0, 0, 1, &res);
}

static void test_next_hop(void) {
    const char *aor = "sip:hops@example.com";
    /* no received: the contact */
    check_hop(aor, "sip:h@192.0.2.70:5060", NULL, -1, NULL, CHORDSIP_HOP_CONTACT, NULL);
    /* the contact's own IP from another port (SIPp): still the contact */
    check_hop(aor, "sip:h@192.0.2.70:5060", "sip:192.0.2.70:40000", -1, NULL,
              CHORDSIP_HOP_CONTACT, NULL);
    /* behind NAT: where the REGISTER came from; sip-proxy's "ip:port" form
       comes back as a URI */
    check_hop(aor, "sip:h@10.0.0.7:5060", "203.0.113.5:40000", -1, NULL, CHORDSIP_HOP_RECEIVED,
              "sip:203.0.113.5:40000");
    check_hop(aor, "sip:h@[2001:db8::7]", "sip:[2001:db8::1]:5060", -1, NULL,
              CHORDSIP_HOP_RECEIVED, "sip:[2001:db8::1]:5060");
    /* a host name cannot be compared: the source address */
    check_hop(aor, "sip:h@phone.example.com", "sip:192.0.2.71:5060", -1, NULL,
              CHORDSIP_HOP_RECEIVED, "sip:192.0.2.71:5060");
    /* an RFC 5626 flow goes back through its connection, even from its own IP */
    check_hop(aor, "sip:h@192.0.2.70:5060", "sip:192.0.2.70:40000", 1, NULL,
              CHORDSIP_HOP_RECEIVED, "sip:192.0.2.70:40000");
    /* a Path wins (RFC 3327): its first URI, without the brackets */
    check_hop(aor, "sip:h@10.0.0.7:5060", "sip:203.0.113.5:40000", 1, "<sip:edge.example.net;lr>",
              CHORDSIP_HOP_PATH, "sip:edge.example.net;lr");
    note("next hop: contact, received (NAT, names, flows) and Path, the same from every lookup");
}

/* ----- asynchronous lookups ----- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    chordsip_node *node;
    const char *aor;
    int calls;
    int result;
    pthread_t thread;
    list_t list;
    list_t inner; /* fd mode: a blocking lookup made from the callback */
    int inner_rc, register_rc;
} async_t;

static async_t async_thread = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
static async_t async_fd = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void on_bindings(chordsip_result result, const chordsip_bindings *b, void *ud) {
    async_t *a = ud;
    CHECK((result == CHORDSIP_OK) == (b != NULL));
    pthread_mutex_lock(&a->mu);
    a->result = result;
    a->thread = pthread_self();
    if (b != NULL)
        snapshot(b, &a->list);
    /* Blocking calls from the callback: refused on a library thread, fine
       from chordsip_node_process(). */
    chordsip_contact c = contact("sip:cb@192.0.2.1", -1, NULL);
    chordsip_register r = request("sip:callback@example.com", "cb-1", 1, 600, &c, 1);
    chordsip_bindings *inner = NULL;
    a->register_rc = chordsip_node_register(a->node, &r, NULL, NULL);
    a->inner_rc = chordsip_node_lookup_aor(a->node, a->aor, &inner);
    if (a->inner_rc == CHORDSIP_OK) {
        snapshot(inner, &a->inner);
        chordsip_bindings_free(inner);
    }
    a->calls++;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static void test_async(void) {
    static list_t want, l;
    /* Alice with three bindings of different q */
    chordsip_contact cs[3] = {contact("sip:alice@192.0.2.60", -1, "0.2"),
                              contact("sip:alice@192.0.2.61", -1, "0.9"),
                              contact("sip:alice@192.0.2.62", -1, NULL)};
    chordsip_register r = request(ALICE, "async-1", 1, 900, cs, 3);
    r.path = mobile_path;
    r.path_len = 1;
    reg_ok(&at_a, &r, 3, 0, 0, &want);
    want_t w[] = {{"sip:alice@192.0.2.62", 1000, 900, "async-1", 1},
                  {"sip:alice@192.0.2.61", 900, 900, "async-1", 1},
                  {"sip:alice@192.0.2.60", 200, 900, "async-1", 1}};
    check_list(&want, w, 3, 1);

    /* thread mode (node B): the callback runs on a library thread */
    async_t *a = &async_thread;
    a->node = node_b;
    a->aor = "sips:Alice@Example.com";
    CHECK_OK(chordsip_node_lookup_aor_async(node_b, a->aor, on_bindings, a));
    pthread_mutex_lock(&a->mu);
    struct timespec until = deadline_ms(scaled(5) * 1000);
    while (a->calls == 0)
        CHECK(pthread_cond_timedwait(&a->cv, &a->mu, &until) == 0);
    pthread_mutex_unlock(&a->mu);
    sleep_ms(50); /* exactly once */
    pthread_mutex_lock(&a->mu);
    CHECK(a->calls == 1);
    CHECK_RC(a->result, CHORDSIP_OK);
    CHECK(!pthread_equal(a->thread, pthread_self()));
    CHECK_RC(a->register_rc, CHORDSIP_ERR_IN_CALLBACK);
    CHECK_RC(a->inner_rc, CHORDSIP_ERR_IN_CALLBACK);
    check_list(&a->list, w, 3, 1);
    CHECK_SAME(&a->list, &want);
    CHECK(a->list.b[0].path_len == 1 && strcmp(a->list.b[0].path[0], mobile_path[0]) == 0);
    pthread_mutex_unlock(&a->mu);

    /* fd mode (node C): nothing runs until the host processes the event fd */
    a = &async_fd;
    a->node = node_c;
    a->aor = ALICE;
    int fd = -1;
    CHECK_OK(chordsip_node_event_fd(node_c, &fd));
    CHECK_OK(chordsip_node_lookup_aor_async(node_c, a->aor, on_bindings, a));
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pfd, 1, (int)scaled(5) * 1000) == 1 && (pfd.revents & POLLIN));
    pthread_mutex_lock(&a->mu);
    CHECK(a->calls == 0);
    pthread_mutex_unlock(&a->mu);
    double end = now_s() + scaled(5);
    for (;;) {
        pthread_mutex_lock(&a->mu);
        int calls = a->calls;
        pthread_mutex_unlock(&a->mu);
        if (calls > 0)
            break;
        CHECK(now_s() < end);
        pfd.revents = 0;
        int pr = poll(&pfd, 1, 20);
        CHECK(pr >= 0 || errno == EINTR);
        if (pr > 0)
            CHECK_OK(chordsip_node_process(node_c, NULL));
    }
    pthread_mutex_lock(&a->mu);
    CHECK(a->calls == 1);
    CHECK_RC(a->result, CHORDSIP_OK);
    CHECK(pthread_equal(a->thread, pthread_self()));
    CHECK_RC(a->register_rc, CHORDSIP_OK); /* blocking calls work here */
    CHECK_RC(a->inner_rc, CHORDSIP_OK);
    CHECK_SAME(&a->list, &want);
    CHECK_SAME(&a->inner, &want);
    CHECK_SAME(&a->list, &async_thread.list);
    pthread_mutex_unlock(&a->mu);

    /* the callback's registration is visible everywhere */
    lookup_all("sip:callback@example.com", &l);
    CHECK(l.n == 1 && strcmp(l.b[0].contact, "sip:cb@192.0.2.1") == 0);
    r = star("sip:callback@example.com", "cb-1", 2);
    reg_ok(&at_a, &r, 0, 0, 1, &l);
    r = star(ALICE, "async-1", 2);
    reg_ok(&at_a, &r, 0, 0, 3, &l);
    lookup_all(ALICE, &l);
    CHECK(l.n == 0);
}

/* ----- asynchronous REGISTERs ----- */

#define ASYNC_REGS 100

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls[ASYNC_REGS];
    int results[ASYNC_REGS];
    chordsip_register_outcome outcome[ASYNC_REGS];
    char contact[ASYNC_REGS][64];
    size_t len[ASYNC_REGS];
    int null_mismatch, foreign_thread;
    pthread_t self;
    int done;
} reg_async_t;

static reg_async_t reg_async = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void on_registered(chordsip_result result, const chordsip_bindings *b,
                          const chordsip_register_outcome *o, void *ud) {
    size_t i = (size_t)(uintptr_t)ud;
    reg_async_t *a = &reg_async;
    pthread_mutex_lock(&a->mu);
    if ((result == CHORDSIP_OK) != (b != NULL) || (result == CHORDSIP_OK) != (o != NULL))
        a->null_mismatch++;
    if (pthread_equal(pthread_self(), a->self))
        a->foreign_thread = 0;
    else
        a->foreign_thread = 1;
    a->calls[i]++;
    a->results[i] = result;
    if (o != NULL)
        a->outcome[i] = *o;
    a->len[i] = b != NULL ? chordsip_bindings_len(b) : 0;
    a->contact[i][0] = 0;
    chordsip_binding first;
    if (b != NULL && chordsip_bindings_get(b, 0, &first) == CHORDSIP_OK)
        copy_str(a->contact[i], sizeof a->contact[i], first.contact);
    a->done++;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static void on_auth(chordsip_result result, uint32_t verdict, const char *challenge, void *ud) {
    (void)result, (void)verdict, (void)challenge, (void)ud;
    pthread_mutex_lock(&reg_async.mu);
    reg_async.done++;
    pthread_mutex_unlock(&reg_async.mu);
}

/* Waits until `want` callbacks ran, pumping `fd_node` when it delivers by fd. */
static void wait_registered(int want, chordsip_node *fd_node) {
    reg_async_t *a = &reg_async;
    double end = now_s() + scaled(20);
    int fd = -1;
    if (fd_node != NULL)
        CHECK_OK(chordsip_node_event_fd(fd_node, &fd));
    for (;;) {
        pthread_mutex_lock(&a->mu);
        int done = a->done;
        pthread_mutex_unlock(&a->mu);
        if (done >= want)
            break;
        CHECK(now_s() < end);
        if (fd_node != NULL) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            int pr = poll(&pfd, 1, 20);
            CHECK(pr >= 0 || errno == EINTR);
            if (pr > 0)
                CHECK_OK(chordsip_node_process(fd_node, NULL));
        } else {
            sleep_ms(5);
        }
    }
    sleep_ms(50); /* exactly once: no late second call */
    if (fd_node != NULL)
        CHECK_OK(chordsip_node_process(fd_node, NULL));
    pthread_mutex_lock(&a->mu);
    CHECK(a->done == want);
    pthread_mutex_unlock(&a->mu);
}

static void reset_registered(void) {
    reg_async_t *a = &reg_async;
    pthread_mutex_lock(&a->mu);
    memset(a->calls, 0, sizeof a->calls);
    a->done = 0;
    a->null_mismatch = 0;
    a->self = pthread_self();
    pthread_mutex_unlock(&a->mu);
}

static void test_async_register(void) {
    reg_async_t *a = &reg_async;
    static char aor[ASYNC_REGS][64], cid[ASYNC_REGS][32], uri[ASYNC_REGS][64];
    static chordsip_contact cs[ASYNC_REGS];
    static list_t l;

    /* Thread delivery (node B): all in flight at once, each answered once. */
    reset_registered();
    for (size_t i = 0; i < ASYNC_REGS; i++) {
        snprintf(aor[i], sizeof aor[i], "sip:async%zu@example.com", i);
        snprintf(cid[i], sizeof cid[i], "areg-%zu", i);
        snprintf(uri[i], sizeof uri[i], "sip:async%zu@192.0.2.90:5060", i);
        cs[i] = contact(uri[i], -1, NULL);
        chordsip_register r = request(aor[i], cid[i], 1, 600, &cs[i], 1);
        CHECK_OK(chordsip_node_register_async(node_b, &r, on_registered, (void *)(uintptr_t)i));
    }
    /* The request was copied: overwriting our strings changes nothing. */
    for (size_t i = 0; i < ASYNC_REGS; i++)
        memset(uri[i], 'x', 8);
    wait_registered(ASYNC_REGS, NULL);
    pthread_mutex_lock(&a->mu);
    CHECK(a->null_mismatch == 0);
    CHECK(a->foreign_thread == 1);
    for (size_t i = 0; i < ASYNC_REGS; i++) {
        char want[64];
        snprintf(want, sizeof want, "sip:async%zu@192.0.2.90:5060", i);
        CHECK(a->calls[i] == 1);
        CHECK_RC(a->results[i], CHORDSIP_OK);
        CHECK(a->outcome[i].inserted == 1 && a->outcome[i].updated == 0 &&
              a->outcome[i].deleted == 0);
        CHECK(a->len[i] == 1 && strcmp(a->contact[i], want) == 0);
    }
    pthread_mutex_unlock(&a->mu);
    for (size_t i = 0; i < ASYNC_REGS; i += 17) {
        char want[64];
        snprintf(want, sizeof want, "sip:async%zu@192.0.2.90:5060", i);
        lookup_all(aor[i], &l);
        CHECK(l.n == 1 && strcmp(l.b[0].contact, want) == 0);
    }

    /* fd delivery (node C): a refresh, a refusal and an unregister, run
       from chordsip_node_process on this thread. */
    reset_registered();
    for (size_t i = 0; i < 3; i++)
        snprintf(uri[i], sizeof uri[i], "sip:async%zu@192.0.2.90:5060", i);
    chordsip_register refresh = request(aor[0], cid[0], 2, 900, &cs[0], 1);
    chordsip_contact brief = contact(uri[1], CHORDSIP_MIN_EXPIRES - 1, NULL);
    chordsip_register too_brief = request(aor[1], cid[1], 2, -1, &brief, 1);
    chordsip_register gone = star(aor[2], cid[2], 2);
    CHECK_OK(chordsip_node_register_async(node_c, &refresh, on_registered, (void *)0));
    CHECK_OK(chordsip_node_register_async(node_c, &too_brief, on_registered, (void *)1));
    CHECK_OK(chordsip_node_register_async(node_c, &gone, on_registered, (void *)2));
    pthread_mutex_lock(&a->mu);
    CHECK(a->done == 0); /* nothing runs until the host processes the fd */
    pthread_mutex_unlock(&a->mu);
    wait_registered(3, node_c);
    pthread_mutex_lock(&a->mu);
    CHECK(a->null_mismatch == 0);
    CHECK(a->foreign_thread == 0);
    CHECK_RC(a->results[0], CHORDSIP_OK);
    CHECK(a->outcome[0].updated == 1 && a->len[0] == 1);
    CHECK_RC(a->results[1], CHORDSIP_ERR_INTERVAL_TOO_BRIEF);
    CHECK_RC(a->results[2], CHORDSIP_OK);
    CHECK(a->outcome[2].deleted == 1 && a->len[2] == 0);
    pthread_mutex_unlock(&a->mu);
    lookup_all(aor[0], &l);
    CHECK(l.n == 1 && l.b[0].expires > 600);
    lookup_all(aor[1], &l);
    CHECK(l.n == 1 && l.b[0].expires <= 600); /* the refused REGISTER changed nothing */
    lookup_all(aor[2], &l);
    CHECK(l.n == 0);

    /* Refused before anything is read: the call says so and no callback runs. */
    reset_registered();
    chordsip_register bad = request("not a uri", "x", 1, 600, &cs[0], 1);
    CHECK_RC(chordsip_node_register_async(node_b, &bad, on_registered, (void *)0),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_register_async(node_b, NULL, on_registered, (void *)0),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_register_async(node_b, &refresh, NULL, (void *)0),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_register_async(NULL, &refresh, on_registered, (void *)0),
             CHORDSIP_ERR_NULL_POINTER);
    /* These nodes hold no credentials key: authentication says so at once. */
    CHECK_RC(chordsip_node_authenticate_async(node_b, "REGISTER", aor[0], NULL, on_auth, NULL),
             CHORDSIP_ERR_UNAUTHORIZED);
    CHECK_RC(chordsip_node_authenticate_async(node_b, "REGISTER", aor[0], NULL, NULL, NULL),
             CHORDSIP_ERR_NULL_POINTER);
    sleep_ms(50);
    pthread_mutex_lock(&a->mu);
    CHECK(a->done == 0);
    pthread_mutex_unlock(&a->mu);

    for (size_t i = 0; i < ASYNC_REGS; i++) {
        chordsip_register r = star(aor[i], cid[i], 5);
        CHECK_OK(chordsip_node_register(node_a, &r, NULL, NULL));
    }
    note("%d REGISTERs in flight at once on one node, each answered once", ASYNC_REGS);
}

/* Registering through the client handles, looking up at the nodes. */
static void test_clients(void) {
    static list_t res, l;
    const char *frank = "sip:frank@example.com";
    chordsip_contact c1 = contact("sip:frank@192.0.2.70:5060", -1, "0.3");
    chordsip_register r = request(frank, "frank-udp", 1, 600, &c1, 1);
    reg_ok(&via_udp, &r, 1, 0, 0, &res);
    chordsip_contact c2 = contact("sip:frank@192.0.2.71:5060", -1, "0.6");
    r = request("sips:frank@EXAMPLE.COM", "frank-unix", 1, 600, &c2, 1);
    r.received = "sip:192.0.2.254:5099";
    reg_ok(&via_unix, &r, 1, 0, 0, &res);
    want_t w[] = {{"sip:frank@192.0.2.71:5060", 600, 600, "frank-unix", 1},
                  {"sip:frank@192.0.2.70:5060", 300, 600, "frank-udp", 1}};
    check_list(&res, w, 2, 1);
    CHECK(res.b[0].has_received && strcmp(res.b[0].received, "sip:192.0.2.254:5099") == 0);
    lookup_at(&at_a, frank, &l);
    CHECK_SAME(&l, &res);
    r = star(frank, "frank-udp", 2);
    reg_ok(&via_udp, &r, 0, 0, 2, &res);
    CHECK(res.n == 0);
}

static size_t lookup_len(chordsip_node *n, const char *aor) {
    chordsip_bindings *b = NULL;
    CHECK_OK(chordsip_node_lookup_aor(n, aor, &b));
    size_t len = chordsip_bindings_len(b);
    chordsip_bindings_free(b);
    return len;
}

/* Sixteen bindings near every size limit take more than one datagram: the
 * registrar reads them all (page by page), so lookup lists 16 and a 17th is
 * refused. */
static void test_large_aor(void) {
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
    CHECK_OK(chordsip_node_register(node_a, &r, &b, &o));
    CHECK(o.inserted == 16 && chordsip_bindings_len(b) == 16);
    chordsip_bindings_free(b);
    CHECK(lookup_len(node_b, "sip:big@example.com") == 16);
    r.contacts = &cs[16];
    r.contacts_len = 1;
    r.call_id = "another";
    CHECK(chordsip_node_register(node_a, &r, NULL, &o) == CHORDSIP_ERR_FULL);
    CHECK(lookup_len(node_b, "sip:big@example.com") == 16);
    r = (chordsip_register){"sip:big@example.com", "another", 2, 1, 0, NULL, 0, NULL, 0, NULL};
    CHECK_OK(chordsip_node_register(node_a, &r, NULL, &o));
    CHECK(o.deleted == 16);
    CHECK(lookup_len(node_b, "sip:big@example.com") == 0);
    note("16 bindings of ~2 KB each: all listed, a 17th refused, '*' removed 16");
}

/* With the smallest datagrams the configuration allows, 8 ordinary bindings
 * span several pages: all listed, a refresh updates all 8, an older CSeq of
 * any of them is refused. */
static void test_small_datagrams(void) {
    chordsip_config *cfg = fast_config();
    char err[128];
    CHECK_OK(chordsip_config_set(cfg, "max_datagram", "1200", err, sizeof err));
    CHECK_OK(chordsip_config_set(cfg, "max_value_bytes", "600", err, sizeof err));
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
    CHECK(lookup_len(n[1], "sip:alice@example.com") == 8);
    r.cseq = 2;
    CHECK_OK(chordsip_node_register(n[2], &r, NULL, &o));
    CHECK(o.inserted == 0 && o.updated == 8);
    r.cseq = 1;
    r.contacts = &cs[7];
    r.contacts_len = 1;
    CHECK(chordsip_node_register(n[1], &r, NULL, &o) == CHORDSIP_ERR_OUT_OF_ORDER);
    leave_all(n, 3);
    note("max_datagram 1200: 8 bindings listed, refreshed and CSeq-checked whole");
}

/* A REGISTER is all or nothing: one contact too large refuses the request
 * before anything is stored. */
static void test_all_or_nothing(void) {
    static char instance[5000];
    memset(instance, 'i', sizeof instance - 1);
    memcpy(instance, "<urn:uuid:", 10);
    chordsip_contact cs[2] = {{"sip:p@192.0.2.1", -1, NULL, NULL, -1},
                              {"sip:p@192.0.2.2", -1, NULL, instance, -1}};
    chordsip_register r = {"sip:partial@example.com", "p-1", 1, 0, 600, cs, 2, NULL, 0, NULL};
    CHECK(chordsip_node_register(node_a, &r, NULL, NULL) == CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(lookup_len(node_b, "sip:partial@example.com") == 0);
    static char received[600];
    memset(received, 'r', sizeof received - 1);
    memcpy(received, "sip:", 4);
    cs[1].instance = NULL;
    r.received = received;
    CHECK(chordsip_client_register(udp_client, &r, NULL, NULL) == CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(lookup_len(node_b, "sip:partial@example.com") == 0);
    note("a REGISTER with one oversized contact stores nothing");
}

int main(void) {
    test_begin("test_registrar", 40);
    double t_start = now_s();
    char dir[] = "/tmp/chordsip-ctest-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sock[128], err[128];
    snprintf(sock, sizeof sock, "%s/c.sock", dir);

    chordsip_config *cfg = fast_config();
    node_a = ring[0] = node_from(cfg);
    join_via(node_a, NULL);
    node_b = ring[1] = node_from(cfg);
    join_via(node_b, node_a);
    CHECK_OK(chordsip_config_set_delivery(cfg, CHORDSIP_DELIVER_FD));
    CHECK_OK(chordsip_config_set(cfg, "client_socket", sock, err, sizeof err));
    node_c = ring[2] = node_from(cfg);
    join_via(node_c, node_a);
    chordsip_config_free(cfg);
    CHECK(wait_ring(ring, N, scaled(10) * 1000));
    note("ring of %d converged after %.2f s", N, now_s() - t_start);

    char addr[64], peer[160];
    CHECK_OK(chordsip_node_addr(node_b, addr, sizeof addr));
    CHECK_OK(chordsip_client_new(addr, NULL, TEST_KEY_ARGS, scaled(5) * 1000, &udp_client));
    snprintf(peer, sizeof peer, "unix:%s", sock);
    CHECK_OK(chordsip_client_new(peer, NULL, NULL, 0, scaled(5) * 1000, &unix_client));
    at_a = (target_t){"node A", node_a, NULL};
    at_b = (target_t){"node B", node_b, NULL};
    via_udp = (target_t){"UDP client", NULL, udp_client};
    via_unix = (target_t){"UNIX-socket client", NULL, unix_client};

    double t0 = now_s();
    test_two_devices();
    test_tel();
    test_query();
    test_refresh();
    test_out_of_order();
    test_flows();
    test_unregister();
    test_full();
    test_expires_limits();
    test_next_hop();
    test_async();
    test_async_register();
    test_clients();
    test_large_aor();
    test_small_datagrams();
    test_all_or_nothing();
    note("registrar scenarios took %.2f s", now_s() - t0);

    chordsip_client_free(udp_client);
    chordsip_client_free(unix_client);
    leave_all(ring, N);
    CHECK(rmdir(dir) == 0);
    note("total %.2f s", now_s() - t_start);
    test_pass("test_registrar");
    return 0;
}
