/*
 * Lifecycle and argument checking of every exported function: NULL
 * pointers, invalid UTF-8, oversized keys/writers/values, bad addresses and
 * option names, malformed REGISTER requests and AORs, out-of-range indexes,
 * small buffers, calls before start.
 * Out-parameters are pre-filled with sentinels and must survive a failure.
 *
 * scripts/c-tests.sh checks that every chordsip_ function declared in
 * chordsip.h is called somewhere in this file.
 */
#include "testutil.h"

#include <sys/stat.h>

#include <stdint.h>

static const char BAD_UTF8[] = "\xff\xfe";
static char long_key[CHORDSIP_MAX_KEY_LEN + 2];     /* 1025 bytes: one too many */
static char max_key[CHORDSIP_MAX_KEY_LEN + 1];      /* exactly the limit */
static char long_writer[CHORDSIP_MAX_WRITER_LEN + 2];
static uint8_t *big_data;                           /* above any datagram */
static const size_t BIG_DATA_LEN = 70000;

/* The highest result code the header defines. */
#define LAST_RESULT CHORDSIP_ERR_MODE_MISMATCH

/* Sentinel objects: a failed call must leave an out-pointer pointing here. */
static char sentinel_obj;
#define SENTINEL ((void *)&sentinel_obj)

static int never_called;
static void lookup_cb(chordsip_result r, const chordsip_lookup_info *i, void *ud) {
    (void)r, (void)i, (void)ud;
    __atomic_add_fetch(&never_called, 1, __ATOMIC_SEQ_CST);
}
static void store_cb(chordsip_result r, uint32_t c, void *ud) {
    (void)r, (void)c, (void)ud;
    __atomic_add_fetch(&never_called, 1, __ATOMIC_SEQ_CST);
}
static void get_cb(chordsip_result r, const chordsip_values *v, void *ud) {
    (void)r, (void)v, (void)ud;
    __atomic_add_fetch(&never_called, 1, __ATOMIC_SEQ_CST);
}
static void bindings_cb(chordsip_result r, const chordsip_bindings *b, void *ud) {
    (void)r, (void)b, (void)ud;
    __atomic_add_fetch(&never_called, 1, __ATOMIC_SEQ_CST);
}
static void event_cb(const chordsip_event *e, void *ud) { (void)e, (void)ud; }
static void log_cb(uint32_t level, const char *m, void *ud) { (void)level, (void)m, (void)ud; }
static void hook_cb(void *ud) { (void)ud; }

/* A valid one-contact REGISTER of `aor`. */
static chordsip_contact good_contact(void) {
    chordsip_contact c = {"sip:api@192.0.2.1:5060", -1, NULL, NULL, -1};
    return c;
}
static chordsip_register good_register(const char *aor, const chordsip_contact *c) {
    chordsip_register r;
    memset(&r, 0, sizeof r);
    r.aor = aor;
    r.call_id = "api-call-1";
    r.cseq = 1;
    r.star = 0;
    r.expires = -1;
    r.contacts = c;
    r.contacts_len = 1;
    r.path = NULL;
    r.path_len = 0;
    r.received = NULL;
    return r;
}

static void test_version_and_results(void) {
    CHECK(chordsip_version() != NULL);
    CHECK(strcmp(chordsip_version(), CHORDSIP_VERSION) == 0);
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", CHORDSIP_VERSION_MAJOR, CHORDSIP_VERSION_MINOR,
             CHORDSIP_VERSION_PATCH);
    CHECK(strcmp(v, CHORDSIP_VERSION) == 0);

    const char *unknown = chordsip_result_str(-1);
    CHECK(unknown != NULL && strcmp(unknown, "unknown result code") == 0);
    CHECK(strcmp(chordsip_result_str(LAST_RESULT + 1), unknown) == 0);
    CHECK(strcmp(chordsip_result_str(1000000), unknown) == 0);
    CHECK(strcmp(chordsip_result_str(INT32_MIN), unknown) == 0);
    /* Every code from CHORDSIP_OK to the last has its own, known text. */
    for (int a = CHORDSIP_OK; a <= LAST_RESULT; a++) {
        const char *s = chordsip_result_str(a);
        CHECK(s != NULL && s[0] != 0);
        CHECK(strcmp(s, unknown) != 0);
        for (int b = CHORDSIP_OK; b < a; b++)
            CHECK(strcmp(s, chordsip_result_str(b)) != 0);
    }
    CHECK(strcmp(chordsip_result_str(CHORDSIP_OK), "ok") == 0);
    /* Stable numbers, as the header promises. */
    CHECK(CHORDSIP_ERR_TIMEOUT == 1 && CHORDSIP_ERR_FORKED == 15 && CHORDSIP_ERR_PANIC == 21);
    CHECK(CHORDSIP_ERR_OUT_OF_ORDER == 22 && CHORDSIP_ERR_INTERVAL_TOO_BRIEF == 23);
    CHECK(CHORDSIP_ERR_CLOCK_SKEW == 24 && CHORDSIP_ERR_UNAUTHORIZED == 25);
    CHECK(CHORDSIP_ERR_NOT_FOUND == 26);
    CHECK(CHORDSIP_ERR_MODE_MISMATCH == 27);
    /* The registrar's codes say what they are about. */
    CHECK(strstr(chordsip_result_str(CHORDSIP_ERR_OUT_OF_ORDER), "CSeq") != NULL);
    CHECK(strstr(chordsip_result_str(CHORDSIP_ERR_INTERVAL_TOO_BRIEF), "expires") != NULL);
}

/* The SIP answer for each result: what sip-proxy, the Kamailio module and
 * the KEMI script reply with, from one table. */
static void check_answer(int rc, uint32_t status, const char *headers) {
    const char *reason = chordsip_result_sip_reason(rc), *h = chordsip_result_sip_headers(rc);
    if (chordsip_result_sip_status(rc) != status || reason == NULL || h == NULL ||
        strcmp(h, headers) != 0) {
        fprintf(stderr, "result %d: SIP %u \"%s\" headers \"%s\", expected %u and \"%s\"\n", rc,
                chordsip_result_sip_status(rc), reason ? reason : "(null)", h ? h : "(null)",
                status, headers);
        CHECK(!"unexpected SIP answer");
    }
}

static void test_sip_answers(void) {
    char min_expires[64];
    snprintf(min_expires, sizeof min_expires, "Min-Expires: %d\r\n", CHORDSIP_MIN_EXPIRES);
    CHECK(chordsip_min_expires() == CHORDSIP_MIN_EXPIRES);
    CHECK(CHORDSIP_MIN_EXPIRES > 0 && CHORDSIP_MIN_EXPIRES <= 3600);
    check_answer(CHORDSIP_OK, 200, "");
    CHECK(strcmp(chordsip_result_sip_reason(CHORDSIP_OK), "OK") == 0);
    check_answer(CHORDSIP_ERR_INVALID_ARGUMENT, 400, "");
    check_answer(CHORDSIP_ERR_TOO_LARGE, 400, "");
    check_answer(CHORDSIP_ERR_BAD_UTF8, 400, "");
    check_answer(CHORDSIP_ERR_FULL, 403, "");
    check_answer(CHORDSIP_ERR_INTERVAL_TOO_BRIEF, 423, min_expires);
    CHECK(strcmp(chordsip_result_sip_reason(CHORDSIP_ERR_INTERVAL_TOO_BRIEF),
                 "Interval Too Brief") == 0);
    check_answer(CHORDSIP_ERR_OUT_OF_ORDER, 500, ""); /* RFC 3261 §10.3 step 7 */
    /* (no header name in the phrase: SIPp reads "CSeq" there as the header) */
    CHECK(strstr(chordsip_result_sip_reason(CHORDSIP_ERR_OUT_OF_ORDER), "out of order") != NULL);
    CHECK(strstr(chordsip_result_sip_reason(CHORDSIP_ERR_OUT_OF_ORDER), "CSeq") == NULL);
    check_answer(CHORDSIP_ERR_STALE, 500, "Retry-After: 1\r\n");
    /* the overlay cannot answer now: another server, or later */
    const int unavailable[] = {CHORDSIP_ERR_TIMEOUT,  CHORDSIP_ERR_NO_ROUTE,
                               CHORDSIP_ERR_NOT_JOINED, CHORDSIP_ERR_JOIN_FAILED,
                               CHORDSIP_ERR_SHUTDOWN, CHORDSIP_ERR_IO,
                               CHORDSIP_ERR_CANCELLED};
    for (size_t i = 0; i < sizeof unavailable / sizeof unavailable[0]; i++)
        check_answer(unavailable[i], 503, "Retry-After: 5\r\n");
    /* bugs and misuse are the server's problem; unknown codes too */
    const int internal[] = {CHORDSIP_ERR_NULL_POINTER, CHORDSIP_ERR_FORKED,
                            CHORDSIP_ERR_IN_CALLBACK,  CHORDSIP_ERR_PANIC,
                            CHORDSIP_ERR_BAD_STATE,    LAST_RESULT + 1,
                            -1,                        INT32_MIN,
                            INT32_MAX};
    for (size_t i = 0; i < sizeof internal / sizeof internal[0]; i++) {
        check_answer(internal[i], 500, "");
        CHECK(strcmp(chordsip_result_sip_reason(internal[i]), "Server Internal Error") == 0);
    }
    /* every code: a final status, a one-line reason, whole header lines */
    for (int rc = CHORDSIP_OK; rc <= LAST_RESULT; rc++) {
        uint32_t s = chordsip_result_sip_status(rc);
        const char *reason = chordsip_result_sip_reason(rc), *h = chordsip_result_sip_headers(rc);
        CHECK(s >= 200 && s <= 699 && (rc == CHORDSIP_OK) == (s == 200));
        CHECK(reason[0] != 0 && strpbrk(reason, "\r\n") == NULL);
        size_t n = strlen(h);
        CHECK(n == 0 || (n >= 2 && strcmp(h + n - 2, "\r\n") == 0 && strchr(h, ':') != NULL));
        /* static storage: the same string every time */
        CHECK(chordsip_result_sip_reason(rc) == reason && chordsip_result_sip_headers(rc) == h);
    }
}

static void test_key_id(void) {
    char buf[64];
    memset(buf, 'X', sizeof buf);
    CHECK_OK(chordsip_key_id("sip:alice@example.com", buf, 41));
    CHECK(strlen(buf) == 40);
    for (int i = 0; i < 40; i++)
        CHECK(strchr("0123456789abcdef", buf[i]) != NULL);
    /* SHA-1("abc") */
    CHECK_OK(chordsip_key_id("abc", buf, sizeof buf));
    CHECK(strcmp(buf, "a9993e364706816aba3e25717850c26c9cd0d89d") == 0);
    CHECK_OK(chordsip_key_id(max_key, buf, sizeof buf));

    memset(buf, 'X', sizeof buf);
    CHECK_RC(chordsip_key_id(NULL, buf, sizeof buf), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_key_id("abc", NULL, 41), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_key_id(BAD_UTF8, buf, sizeof buf), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_key_id(long_key, buf, sizeof buf), CHORDSIP_ERR_TOO_LARGE);
    CHECK_RC(chordsip_key_id("", buf, sizeof buf), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_key_id("abc", buf, 40), CHORDSIP_ERR_BUFFER_TOO_SMALL);
    CHECK_RC(chordsip_key_id("abc", buf, 0), CHORDSIP_ERR_BUFFER_TOO_SMALL);
    for (size_t i = 0; i < sizeof buf; i++)
        CHECK(buf[i] == 'X'); /* untouched by every failure above */
}

static void test_config(void) {
    chordsip_config *cfg = SENTINEL;
    char err[128];
    CHECK_RC(chordsip_config_new(NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_OK(chordsip_config_new(&cfg));
    CHECK(cfg != NULL && cfg != SENTINEL);
    CHECK_OK(chordsip_config_check(cfg, NULL, 0));

    /* chordsip_config_set */
    CHECK_RC(chordsip_config_set(NULL, "listen", "127.0.0.1:0", err, sizeof err),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_config_set(cfg, NULL, "1", err, sizeof err), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_config_set(cfg, "successors", NULL, err, sizeof err),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_config_set(cfg, BAD_UTF8, "1", err, sizeof err), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_config_set(cfg, "overlay", BAD_UTF8, err, sizeof err),
             CHORDSIP_ERR_BAD_UTF8);
    err[0] = 0;
    CHECK_RC(chordsip_config_set(cfg, "no_such_option", "1", err, sizeof err),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(err[0] != 0 && strlen(err) < sizeof err);
    note("unknown option: %s", err);
    err[0] = 0;
    CHECK_RC(chordsip_config_set(cfg, "listen", "not-an-address", err, sizeof err),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(err[0] != 0);
    CHECK_RC(chordsip_config_set(cfg, "listen", "127.0.0.1", err, sizeof err),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_config_set(cfg, "advertise", "nope:1", err, sizeof err),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_config_set(cfg, "node_id", "xyz", err, sizeof err),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_config_set(cfg, "successors", "many", err, sizeof err),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_config_set(cfg, "successors", "-1", err, sizeof err),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_config_set(cfg, "log_level", "loud", err, sizeof err),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    /* A writer key is 64 hex digits, or a file holding them. */
    CHECK_RC(chordsip_config_set(cfg, "writer_key", "abcd", err, sizeof err),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "64 hex digits") != NULL);
    CHECK_RC(chordsip_config_set(cfg, "writer_key", BAD_UTF8, err, sizeof err),
             CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_config_set(cfg, "writer_key_file", "/nonexistent/writer.key", err, sizeof err),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "/nonexistent/writer.key") != NULL);
    CHECK_RC(chordsip_config_set(cfg, "writer_key_file", "/proc/self/status", err, sizeof err),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    {
        /* A device key file is made on first use (mode 0600), then read. */
        char dir[] = "/tmp/chordsip-device-XXXXXX", path[64], first[80] = {0}, again[80] = {0};
        CHECK(mkdtemp(dir) != NULL);
        snprintf(path, sizeof path, "%s/ua.key", dir);
        CHECK_OK(chordsip_config_set(cfg, "device_key_file", path, err, sizeof err));
        struct stat st;
        CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
        FILE *f = fopen(path, "r");
        CHECK(f != NULL && fgets(first, sizeof first, f) != NULL);
        fclose(f);
        CHECK(strlen(first) == 65 && first[64] == '\n');
        CHECK_OK(chordsip_config_set(cfg, "device_key_file", path, err, sizeof err));
        f = fopen(path, "r");
        CHECK(f != NULL && fgets(again, sizeof again, f) != NULL);
        fclose(f);
        CHECK(strcmp(first, again) == 0); /* kept, not replaced */
        CHECK_RC(chordsip_config_set(cfg, "device_key_file", "/nonexistent/dir/ua.key", err,
                                     sizeof err),
                 CHORDSIP_ERR_INVALID_ARGUMENT);
        CHECK(strstr(err, "/nonexistent/dir/ua.key") != NULL);
        CHECK(unlink(path) == 0 && rmdir(dir) == 0);
    }
    CHECK_OK(chordsip_config_set(cfg, "writer_key",
                                 "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF",
                                 err, sizeof err));
    CHECK_OK(chordsip_config_set(cfg, "writer_key", "", err, sizeof err));
    /* err_buf is optional, and a short one is truncated but NUL-terminated. */
    CHECK_RC(chordsip_config_set(cfg, "no_such_option", "1", NULL, 0),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_config_set(cfg, "no_such_option", "1", NULL, 100),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    memset(err, 'X', sizeof err);
    CHECK_RC(chordsip_config_set(cfg, "no_such_option", "1", err, 8),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(strlen(err) == 7);
    for (size_t i = 8; i < sizeof err; i++)
        CHECK(err[i] == 'X');
    memset(err, 'X', sizeof err);
    CHECK_RC(chordsip_config_set(cfg, "no_such_option", "1", err, 0),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(err[0] == 'X');
    /* Every documented option name is accepted. */
    static const char *const opts[][2] = {
        {"listen", "127.0.0.1:0"}, {"advertise", "127.0.0.1:5999"},
        {"overlay", "test"}, {"node_id", "0123456789abcdef0123456789abcdef01234567"},
        {"successors", "4"}, {"replicas", "2"}, {"stabilize_ms", "100"},
        {"check_predecessor_ms", "100"}, {"fix_fingers_ms", "100"}, {"sync_ms", "500"},
        {"rpc_timeout_min_ms", "20"}, {"rpc_timeout_initial_ms", "100"},
        {"rpc_timeout_max_ms", "800"}, {"rpc_retries", "2"}, {"op_timeout_ms", "3000"},
        {"max_datagram", "16000"}, {"max_value_bytes", "2048"}, {"max_writer_bytes", "64"},
        {"max_entries_per_key", "16"}, {"max_keys", "1000"}, {"max_lifetime_s", "3600"},
        {"tombstone_lifetime_s", "60"}, {"log_level", "debug"},
        {"client_socket", "/tmp/chordsip-test-unused.sock"},
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        err[0] = 0;
        int rc = chordsip_config_set(cfg, opts[i][0], opts[i][1], err, sizeof err);
        if (rc != CHORDSIP_OK)
            fprintf(stderr, "option %s=%s: %s\n", opts[i][0], opts[i][1], err);
        CHECK_RC(rc, CHORDSIP_OK);
    }
    CHECK_OK(chordsip_config_check(cfg, err, sizeof err));

    /* chordsip_config_check: a set that parses but does not validate. */
    CHECK_RC(chordsip_config_check(NULL, err, sizeof err), CHORDSIP_ERR_NULL_POINTER);
    CHECK_OK(chordsip_config_set(cfg, "successors", "0", err, sizeof err));
    err[0] = 0;
    CHECK_RC(chordsip_config_check(cfg, err, sizeof err), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(err[0] != 0);
    note("check: %s", err);
    CHECK_RC(chordsip_config_check(cfg, NULL, 0), CHORDSIP_ERR_INVALID_ARGUMENT);
    /* chordsip_node_new refuses it too and leaves *out alone. */
    chordsip_node *n = SENTINEL;
    err[0] = 0;
    CHECK_RC(chordsip_node_new(cfg, &n, err, sizeof err), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(n == SENTINEL && err[0] != 0);
    CHECK_RC(chordsip_node_new(cfg, &n, NULL, 0), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(n == SENTINEL);
    CHECK_OK(chordsip_config_set(cfg, "successors", "8", err, sizeof err));
    CHECK_OK(chordsip_config_set(cfg, "op_timeout_ms", "0", err, sizeof err));
    CHECK_RC(chordsip_config_check(cfg, NULL, 0), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_OK(chordsip_config_set(cfg, "op_timeout_ms", "3000", err, sizeof err));
    CHECK_OK(chordsip_config_check(cfg, NULL, 0));

    /* chordsip_config_set_overlay_key */
    const uint8_t key[] = {1, 2, 3, 4};
    static uint8_t big_key[1025];
    CHECK_RC(chordsip_config_set_overlay_key(NULL, key, sizeof key), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_config_set_overlay_key(cfg, NULL, 4), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_config_set_overlay_key(cfg, big_key, sizeof big_key),
             CHORDSIP_ERR_TOO_LARGE);
    CHECK_OK(chordsip_config_set_overlay_key(cfg, big_key, 1024));
    CHECK_OK(chordsip_config_set_overlay_key(cfg, key, sizeof key));
    CHECK_OK(chordsip_config_set_overlay_key(cfg, NULL, 0)); /* removes it */
    CHECK_OK(chordsip_config_check(cfg, NULL, 0));

    /* chordsip_config_set_delivery */
    CHECK_RC(chordsip_config_set_delivery(NULL, CHORDSIP_DELIVER_FD), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_config_set_delivery(cfg, 2), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_config_set_delivery(cfg, UINT32_MAX), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_OK(chordsip_config_set_delivery(cfg, CHORDSIP_DELIVER_FD));
    CHECK_OK(chordsip_config_set_delivery(cfg, CHORDSIP_DELIVER_THREAD));

    /* chordsip_config_set_event_callback */
    CHECK_RC(chordsip_config_set_event_callback(NULL, event_cb, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_OK(chordsip_config_set_event_callback(cfg, event_cb, NULL));
    CHECK_OK(chordsip_config_set_event_callback(cfg, NULL, NULL));

    /* chordsip_config_set_log_callback */
    CHECK_RC(chordsip_config_set_log_callback(NULL, 3, log_cb, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_config_set_log_callback(cfg, 6, log_cb, NULL),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_config_set_log_callback(cfg, UINT32_MAX, log_cb, NULL),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    for (uint32_t level = 0; level <= 5; level++)
        CHECK_OK(chordsip_config_set_log_callback(cfg, level, log_cb, NULL));
    CHECK_OK(chordsip_config_set_log_callback(cfg, 3, NULL, NULL));
    CHECK_OK(chordsip_config_set_log_callback(cfg, 0, log_cb, NULL));

    /* chordsip_config_set_thread_hooks (never started here: no node starts) */
    CHECK_RC(chordsip_config_set_thread_hooks(NULL, hook_cb, hook_cb, NULL),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_OK(chordsip_config_set_thread_hooks(cfg, hook_cb, NULL, NULL));
    CHECK_OK(chordsip_config_set_thread_hooks(cfg, NULL, hook_cb, NULL));
    CHECK_OK(chordsip_config_set_thread_hooks(cfg, NULL, NULL, NULL));

    /* chordsip_node_new */
    n = SENTINEL;
    CHECK_RC(chordsip_node_new(NULL, &n, err, sizeof err), CHORDSIP_ERR_NULL_POINTER);
    CHECK(n == SENTINEL);
    CHECK_RC(chordsip_node_new(cfg, NULL, err, sizeof err), CHORDSIP_ERR_NULL_POINTER);
    /* A node copies its config: freeing the config first is fine. */
    CHECK_OK(chordsip_node_new(cfg, &n, NULL, 0));
    CHECK(n != NULL && n != SENTINEL);
    chordsip_config_free(cfg);
    chordsip_node_free(n);

    chordsip_config_free(NULL);
}

/* Every node call before chordsip_node_start: CHORDSIP_ERR_BAD_STATE. */
static void test_unstarted(void) {
    chordsip_config *cfg = fast_config();
    chordsip_node *n = node_from(cfg);
    char buf[64];
    uint32_t copies = 777;
    uint64_t rtt = 777;
    memset(buf, 'X', sizeof buf);
    CHECK_RC(chordsip_node_addr(n, buf, sizeof buf), CHORDSIP_ERR_BAD_STATE);
    CHECK_RC(chordsip_node_id(n, buf, sizeof buf), CHORDSIP_ERR_BAD_STATE);
    CHECK(buf[0] == 'X');
    CHECK_RC(chordsip_node_leave(n, 100), CHORDSIP_ERR_BAD_STATE);
    CHECK_RC(chordsip_node_put(n, "k", "w", (const uint8_t *)"v", 1, 60, &copies),
             CHORDSIP_ERR_BAD_STATE);
    CHECK_RC(chordsip_node_remove(n, "k", "w", &copies), CHORDSIP_ERR_BAD_STATE);
    CHECK(copies == 777);
    chordsip_values *v = SENTINEL;
    CHECK_RC(chordsip_node_get(n, "k", &v), CHORDSIP_ERR_BAD_STATE);
    CHECK(v == SENTINEL);
    chordsip_lookup_info li, li0;
    memset(&li, 0xA5, sizeof li);
    li0 = li;
    CHECK_RC(chordsip_node_lookup(n, "k", 0, &li), CHORDSIP_ERR_BAD_STATE);
    CHECK(memcmp(&li, &li0, sizeof li) == 0);
    CHECK_RC(chordsip_node_lookup_async(n, "k", 0, lookup_cb, NULL), CHORDSIP_ERR_BAD_STATE);
    CHECK_RC(chordsip_node_put_async(n, "k", "w", (const uint8_t *)"v", 1, 60, store_cb, NULL),
             CHORDSIP_ERR_BAD_STATE);
    CHECK_RC(chordsip_node_remove_async(n, "k", "w", store_cb, NULL), CHORDSIP_ERR_BAD_STATE);
    CHECK_RC(chordsip_node_get_async(n, "k", get_cb, NULL), CHORDSIP_ERR_BAD_STATE);
    CHECK_RC(chordsip_node_ping(n, "127.0.0.1:9", &rtt), CHORDSIP_ERR_BAD_STATE);
    CHECK(rtt == 777);
    chordsip_stats st, st0;
    memset(&st, 0xA5, sizeof st);
    st0 = st;
    CHECK_RC(chordsip_node_stats(n, &st), CHORDSIP_ERR_BAD_STATE);
    CHECK(memcmp(&st, &st0, sizeof st) == 0);
    size_t needed = 777;
    CHECK_RC(chordsip_node_info(n, 0, buf, sizeof buf, &needed), CHORDSIP_ERR_BAD_STATE);
    CHECK_RC(chordsip_node_metrics(n, buf, sizeof buf, &needed), CHORDSIP_ERR_BAD_STATE);
    {
        char why[256];
        CHECK_OK(chordsip_error_detail(why, sizeof why, NULL));
        CHECK(strstr(why, "not started: join it first") != NULL);
    }
    CHECK(needed == 777);
    chordsip_peers *p = SENTINEL;
    CHECK_RC(chordsip_node_neighbours(n, CHORDSIP_SUCCESSORS, &p), CHORDSIP_ERR_BAD_STATE);
    CHECK(p == SENTINEL);
    {
        chordsip_contact c = good_contact();
        chordsip_register r = good_register("sip:api@example.com", &c);
        chordsip_bindings *b = SENTINEL;
        chordsip_register_outcome o, o0;
        memset(&o, 0xA5, sizeof o);
        o0 = o;
        CHECK_RC(chordsip_node_register(n, &r, &b, &o), CHORDSIP_ERR_BAD_STATE);
        CHECK(b == SENTINEL && memcmp(&o, &o0, sizeof o) == 0);
        CHECK_RC(chordsip_node_lookup_aor(n, "sip:api@example.com", &b), CHORDSIP_ERR_BAD_STATE);
        CHECK(b == SENTINEL);
        CHECK_RC(chordsip_node_lookup_aor_async(n, "sip:api@example.com", bindings_cb, NULL),
                 CHORDSIP_ERR_BAD_STATE);
    }
    /* Thread delivery: no event fd, processing does nothing. */
    int fd = -77;
    CHECK_RC(chordsip_node_event_fd(n, &fd), CHORDSIP_ERR_BAD_STATE);
    CHECK(fd == -77);
    size_t ran = 777;
    CHECK_OK(chordsip_node_process(n, &ran));
    CHECK(ran == 0);
    CHECK_OK(chordsip_node_process(n, NULL));
    /* A join with a malformed bootstrap fails before starting anything. */
    CHECK_RC(chordsip_node_join(n, "not an address"), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_join(n, BAD_UTF8), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_node_addr(n, buf, sizeof buf), CHORDSIP_ERR_BAD_STATE);
    /* start, then start again */
    CHECK_RC(chordsip_node_start(NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_OK(chordsip_node_start(n));
    CHECK_RC(chordsip_node_start(n), CHORDSIP_ERR_BAD_STATE);
    CHECK_OK(chordsip_node_addr(n, buf, sizeof buf));
    CHECK(strncmp(buf, "127.0.0.1:", 10) == 0);
    /* Started but not joined: the node knows it. */
    CHECK_OK(chordsip_node_stats(n, &st));
    CHECK(st.joined == 0);
    CHECK(__atomic_load_n(&never_called, __ATOMIC_SEQ_CST) == 0);
    chordsip_node_free(n);

    /* fd delivery: the event fd exists before the node starts. */
    CHECK_OK(chordsip_config_set_delivery(cfg, CHORDSIP_DELIVER_FD));
    n = node_from(cfg);
    CHECK_OK(chordsip_node_event_fd(n, &fd));
    CHECK(fd >= 0);
    ran = 777;
    CHECK_OK(chordsip_node_process(n, &ran));
    CHECK(ran == 0);
    chordsip_node_free(n);
    chordsip_config_free(cfg);
}

/* ----- the registrar: chordsip_*_register, chordsip_*_lookup_aor, chordsip_bindings ----- */

/* The register and lookup calls of a node and of a client, through one signature. */
typedef chordsip_result (*register_fn)(void *h, const chordsip_register *req,
                                       chordsip_bindings **b, chordsip_register_outcome *o);
typedef chordsip_result (*lookup_aor_fn)(void *h, const char *aor, chordsip_bindings **out);
static chordsip_result node_reg(void *h, const chordsip_register *req, chordsip_bindings **b,
                                chordsip_register_outcome *o) {
    return chordsip_node_register(h, req, b, o);
}
static chordsip_result client_reg(void *h, const chordsip_register *req, chordsip_bindings **b,
                                  chordsip_register_outcome *o) {
    return chordsip_client_register(h, req, b, o);
}
static chordsip_result node_lookup_aor(void *h, const char *aor, chordsip_bindings **out) {
    return chordsip_node_lookup_aor(h, aor, out);
}
static chordsip_result client_lookup_aor(void *h, const char *aor, chordsip_bindings **out) {
    return chordsip_client_lookup_aor(h, aor, out);
}
static chordsip_result node_lookup_aor_all(void *h, const char *aor, chordsip_bindings **out) {
    return chordsip_node_lookup_aor_all(h, aor, out);
}
static chordsip_result client_lookup_aor_all(void *h, const char *aor, chordsip_bindings **out) {
    return chordsip_client_lookup_aor_all(h, aor, out);
}

/*
 * Every malformed request through `reg`: each refused with its code, and
 * neither out-parameter written. The statements after `want` edit a valid
 * request `r` with its one contact `c`.
 */
static void check_register_args(register_fn reg, void *h, const char *aor) {
    chordsip_bindings *b = SENTINEL;
    chordsip_register_outcome o, o0;
    memset(&o, 0xA5, sizeof o);
    o0 = o;
    static char long_uri[700], long_aor[1100], long_path[1100];
    memcpy(long_uri, "sip:", 4);
    memset(long_uri + 4, 'u', sizeof long_uri - 5); /* 699 bytes: over the 512 of a contact */
    memcpy(long_aor, "sip:", 4);
    memset(long_aor + 4, 'a', sizeof long_aor - 5); /* over the 1024 of a URI */
    memset(long_path, 'p', sizeof long_path - 1);   /* over the 1024 of all Path values */
    const char *path2[2] = {"<sip:proxy1.example.com;lr>", "<sip:proxy2.example.com;lr>"};
    const char *path_null[1] = {NULL};
    const char *path_bad[1] = {BAD_UTF8};
    const char *path_long[1] = {long_path};
    static chordsip_contact many[CHORDSIP_MAX_CONTACTS + 1];
    static char many_uris[CHORDSIP_MAX_CONTACTS + 1][40];
    for (int i = 0; i < CHORDSIP_MAX_CONTACTS + 1; i++) {
        snprintf(many_uris[i], sizeof many_uris[i], "sip:many%d@192.0.2.2", i);
        many[i] = good_contact();
        many[i].uri = many_uris[i];
    }
    static const char *many_path[CHORDSIP_MAX_PATH + 1];
    for (int i = 0; i < CHORDSIP_MAX_PATH + 1; i++)
        many_path[i] = "<sip:p.example.com;lr>";

#define TRY(want, ...)                                                         \
    do {                                                                       \
        chordsip_contact c = good_contact();                                   \
        chordsip_register r = good_register(aor, &c);                          \
        (void)c;                                                               \
        __VA_ARGS__;                                                           \
        CHECK_RC(reg(h, &r, &b, &o), want);                                    \
        CHECK(b == SENTINEL);                                                  \
        CHECK(memcmp(&o, &o0, sizeof o) == 0);                                 \
    } while (0)

    CHECK_RC(reg(h, NULL, &b, &o), CHORDSIP_ERR_NULL_POINTER);
    /* NULL pointers */
    TRY(CHORDSIP_ERR_NULL_POINTER, r.aor = NULL);
    TRY(CHORDSIP_ERR_NULL_POINTER, r.call_id = NULL);
    TRY(CHORDSIP_ERR_NULL_POINTER, c.uri = NULL);
    TRY(CHORDSIP_ERR_NULL_POINTER, r.contacts = NULL);
    TRY(CHORDSIP_ERR_NULL_POINTER, r.contacts = NULL, r.contacts_len = 3);
    TRY(CHORDSIP_ERR_NULL_POINTER, r.path = NULL, r.path_len = 1);
    TRY(CHORDSIP_ERR_NULL_POINTER, r.path = path_null, r.path_len = 1);
    TRY(CHORDSIP_ERR_NULL_POINTER, r.path = path2, r.path_len = 2, path2[1] = NULL);
    path2[1] = "<sip:proxy2.example.com;lr>";
    /* invalid UTF-8 in every string */
    TRY(CHORDSIP_ERR_BAD_UTF8, r.aor = BAD_UTF8);
    TRY(CHORDSIP_ERR_BAD_UTF8, r.call_id = BAD_UTF8);
    TRY(CHORDSIP_ERR_BAD_UTF8, r.received = BAD_UTF8);
    TRY(CHORDSIP_ERR_BAD_UTF8, c.uri = BAD_UTF8);
    TRY(CHORDSIP_ERR_BAD_UTF8, c.q = BAD_UTF8);
    TRY(CHORDSIP_ERR_BAD_UTF8, c.instance = BAD_UTF8);
    TRY(CHORDSIP_ERR_BAD_UTF8, r.path = path_bad, r.path_len = 1);
    /* malformed AORs */
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.aor = "mailto:x");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.aor = "mailto:alice@example.com");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.aor = "");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.aor = "sip:");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.aor = "alice@example.com");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.aor = "sip:alice@exa mple.com");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.aor = "sip:alice@example.com:99999");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.aor = "sip:@example.com");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.aor = "tel:555-0123"); /* local, no phone-context */
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.aor = long_aor);
    /* malformed contacts */
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.uri = "mailto:x");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.uri = "");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.uri = "sip:");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.uri = "192.0.2.1:5060");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.uri = "sip:api@192.0.2.1:0");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.uri = "sip:api@192.0.2.1;transport=udp;transport=tcp");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.uri = long_uri);
    /* reg-id needs +sip.instance */
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.reg_id = 1);
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.reg_id = 0);
    /* Contact: * only alone and with Expires: 0 */
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.star = 1, r.expires = 0);
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.star = 1, r.expires = 0, c.expires = 0);
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.star = 1, r.contacts_len = 0, r.expires = -1);
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.star = 1, r.contacts_len = 0, r.expires = 3600);
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.star = 1, r.contacts = NULL, r.contacts_len = 0,
        r.expires = 60);
    /* bad q-values */
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.q = "2");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.q = "1.5");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.q = "0.1234");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.q = "-0.5");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.q = "high");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.q = "");
    /* numbers out of range: -1 is "absent", the rest must fit a u32 */
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.expires = -2);
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.expires = INT64_MIN);
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.expires = (int64_t)1 << 32);
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.expires = -7);
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.expires = INT64_MAX);
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.instance = "<urn:uuid:api>", c.reg_id = -2);
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, c.instance = "<urn:uuid:api>", c.reg_id = INT64_MAX);
    /* Call-ID and Path */
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.call_id = "");
    TRY(CHORDSIP_ERR_INVALID_ARGUMENT, r.path = path_long, r.path_len = 1);
    /* too many contacts or Path entries for one request */
    TRY(CHORDSIP_ERR_TOO_LARGE, r.contacts = many, r.contacts_len = CHORDSIP_MAX_CONTACTS + 1);
    TRY(CHORDSIP_ERR_TOO_LARGE, r.path = many_path, r.path_len = CHORDSIP_MAX_PATH + 1);
    /* expires 1..59 */
    TRY(CHORDSIP_ERR_INTERVAL_TOO_BRIEF, c.expires = 59);
    TRY(CHORDSIP_ERR_INTERVAL_TOO_BRIEF, r.expires = 1);
#undef TRY

    /* The same request made valid: both out-parameters are optional. */
    chordsip_contact c = good_contact();
    chordsip_register r = good_register(aor, &c);
    r.path = path2;
    r.path_len = 2;
    CHECK_OK(reg(h, &r, NULL, NULL));
    r.cseq = 2;
    CHECK_OK(reg(h, &r, NULL, &o));
    CHECK(o.inserted == 0 && o.updated == 1 && o.deleted == 0);
    r.cseq = 3;
    CHECK_OK(reg(h, &r, &b, NULL));
    CHECK(b != NULL && b != SENTINEL && chordsip_bindings_len(b) == 1);
    chordsip_bindings_free(b);
    /* A REGISTER without contacts only asks for the bindings. */
    r.contacts = NULL;
    r.contacts_len = 0;
    r.cseq = 4;
    b = SENTINEL;
    memset(&o, 0xA5, sizeof o);
    CHECK_OK(reg(h, &r, &b, &o));
    CHECK(o.inserted == 0 && o.updated == 0 && o.deleted == 0);
    CHECK(b != NULL && b != SENTINEL && chordsip_bindings_len(b) == 1);
    chordsip_bindings_free(b);
    /* Clean up: Contact: * with Expires: 0 (contacts may be NULL or not, length 0). */
    r.star = 1;
    r.expires = 0;
    r.contacts = &c;
    r.cseq = 5;
    b = SENTINEL;
    CHECK_OK(reg(h, &r, &b, &o));
    CHECK(o.inserted == 0 && o.updated == 0 && o.deleted == 1);
    CHECK(b != NULL && b != SENTINEL && chordsip_bindings_len(b) == 0);
    chordsip_bindings_free(b);
}

/* Argument checks of an AOR lookup through `lookup`; `out` untouched on failure. */
static void check_lookup_aor_args(lookup_aor_fn lookup, void *h) {
    chordsip_bindings *b = SENTINEL;
    CHECK_RC(lookup(h, NULL, &b), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(lookup(h, "sip:api@example.com", NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(lookup(h, BAD_UTF8, &b), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(lookup(h, "mailto:x", &b), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(lookup(h, "", &b), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(lookup(h, "sip:", &b), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(lookup(h, "sip:alice@exa mple.com", &b), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(lookup(h, long_key, &b), CHORDSIP_ERR_INVALID_ARGUMENT); /* no scheme either */
    CHECK(b == SENTINEL);
    /* An AOR nobody registered: an empty list, not an error. */
    CHECK_OK(lookup(h, "sip:never-registered@example.com", &b));
    CHECK(b != NULL && b != SENTINEL && chordsip_bindings_len(b) == 0);
    chordsip_binding x;
    CHECK_RC(chordsip_bindings_get(b, 0, &x), CHORDSIP_ERR_OUT_OF_RANGE);
    CHECK(chordsip_bindings_path(b, 0, 0) == NULL);
    chordsip_bindings_free(b);
}

/* The binding list accessors on a list of two bindings, one with Path and received. */
static void check_bindings_list(chordsip_node *n) {
    const char *path[2] = {"<sip:edge.example.com;lr>", "<sip:core.example.com;lr>"};
    chordsip_contact cs[2] = {
        {"sip:list@192.0.2.10:5060", 3600, "0.5", NULL, -1},
        {"sip:list@192.0.2.11:5070;transport=tcp", -1, NULL, "<urn:uuid:list-1>", 1},
    };
    chordsip_register r = good_register("sip:list@example.com", cs);
    r.contacts_len = 2;
    r.expires = 600;
    r.path = path;
    r.path_len = 2;
    r.received = "sip:198.51.100.7:41234";
    chordsip_bindings *b = NULL;
    chordsip_register_outcome o;
    CHECK_OK(chordsip_node_register(n, &r, &b, &o));
    CHECK(o.inserted == 2 && o.updated == 0 && o.deleted == 0);
    CHECK(chordsip_bindings_len(NULL) == 0);
    CHECK(chordsip_bindings_len(b) == 2);

    chordsip_binding x, x0;
    memset(&x, 0xA5, sizeof x);
    x0 = x;
    CHECK_RC(chordsip_bindings_get(NULL, 0, &x), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_bindings_get(b, 0, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_bindings_get(b, 2, &x), CHORDSIP_ERR_OUT_OF_RANGE);
    CHECK_RC(chordsip_bindings_get(b, SIZE_MAX, &x), CHORDSIP_ERR_OUT_OF_RANGE);
    CHECK(memcmp(&x, &x0, sizeof x) == 0);

    /* highest q first: the instance's binding (q 1), then q 0.5 */
    CHECK_OK(chordsip_bindings_get(b, 0, &x));
    CHECK(strcmp(x.contact, cs[1].uri) == 0);
    CHECK(x.q == 1000 && x.reg_id == 1);
    CHECK(x.instance != NULL && strcmp(x.instance, "<urn:uuid:list-1>") == 0);
    CHECK(x.expires >= 590 && x.expires <= 600); /* the Expires header's 600 */
    CHECK(x.received != NULL && strcmp(x.received, r.received) == 0);
    CHECK(x.call_id != NULL && strcmp(x.call_id, "api-call-1") == 0 && x.cseq == 1);
    CHECK(x.path_len == 2);
    CHECK_OK(chordsip_bindings_get(b, 1, &x));
    CHECK(strcmp(x.contact, cs[0].uri) == 0);
    CHECK(x.q == 500 && x.reg_id == -1 && x.instance == NULL);
    CHECK(x.expires >= 3590 && x.expires <= 3600); /* its own expires parameter */
    CHECK(x.path_len == 2);

    /* chordsip_bindings_path: NULL whenever either index is out of range */
    for (size_t i = 0; i < 2; i++) {
        const char *p0 = chordsip_bindings_path(b, i, 0), *p1 = chordsip_bindings_path(b, i, 1);
        CHECK(p0 != NULL && strcmp(p0, path[0]) == 0);
        CHECK(p1 != NULL && strcmp(p1, path[1]) == 0);
        CHECK(chordsip_bindings_path(b, i, 2) == NULL);
        CHECK(chordsip_bindings_path(b, i, SIZE_MAX) == NULL);
    }
    CHECK(chordsip_bindings_path(b, 2, 0) == NULL);
    CHECK(chordsip_bindings_path(b, SIZE_MAX, 0) == NULL);
    CHECK(chordsip_bindings_path(NULL, 0, 0) == NULL);

    /* chordsip_bindings_next_hop: a Path makes the first Path URI the hop */
    uint32_t kind = 99;
    const char *hop = NULL, *sentinel = "untouched";
    for (size_t i = 0; i < 2; i++) {
        CHECK_OK(chordsip_bindings_next_hop(b, i, &kind, &hop));
        CHECK(kind == CHORDSIP_HOP_PATH && strcmp(hop, "sip:edge.example.com;lr") == 0);
        CHECK_OK(chordsip_bindings_next_hop(b, i, NULL, &hop)); /* kind is optional */
    }
    /* chordsip_bindings_contact: the 200 OK's Contact value */
    char cv[256], small[8];
    size_t need = 0;
    unsigned secs = 0;
    int end = 0;
    CHECK_OK(chordsip_bindings_contact(b, 0, cv, sizeof cv, &need));
    CHECK(need == strlen(cv) + 1);
    CHECK(sscanf(cv, "<sip:list@192.0.2.11:5070;transport=tcp>;expires=%u%n", &secs, &end) == 1);
    CHECK(secs >= 590 && secs <= 600);
    CHECK(strcmp(cv + end, ";+sip.instance=\"<urn:uuid:list-1>\";reg-id=1") == 0);
    CHECK_OK(chordsip_bindings_contact(b, 1, cv, sizeof cv, NULL));
    CHECK(sscanf(cv, "<sip:list@192.0.2.10:5060>;expires=%u%n", &secs, &end) == 1);
    CHECK(secs >= 3590 && secs <= 3600 && strcmp(cv + end, ";q=0.5") == 0);
    memset(small, 'x', sizeof small);
    need = 0;
    CHECK_RC(chordsip_bindings_contact(b, 1, small, sizeof small, &need),
             CHORDSIP_ERR_BUFFER_TOO_SMALL);
    CHECK(need == strlen(cv) + 1 && small[0] == 'x');
    CHECK_RC(chordsip_bindings_contact(b, 1, NULL, 0, &need), CHORDSIP_ERR_NULL_POINTER);
    CHECK(need == strlen(cv) + 1);
    CHECK_RC(chordsip_bindings_contact(NULL, 0, cv, sizeof cv, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_bindings_contact(b, 2, cv, sizeof cv, NULL), CHORDSIP_ERR_OUT_OF_RANGE);

    hop = sentinel;
    kind = 99;
    CHECK_RC(chordsip_bindings_next_hop(NULL, 0, &kind, &hop), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_bindings_next_hop(b, 0, &kind, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_bindings_next_hop(b, 2, &kind, &hop), CHORDSIP_ERR_OUT_OF_RANGE);
    CHECK_RC(chordsip_bindings_next_hop(b, SIZE_MAX, &kind, &hop), CHORDSIP_ERR_OUT_OF_RANGE);
    CHECK(hop == sentinel && kind == 99);
    chordsip_bindings_free(b);
    chordsip_bindings_free(NULL);

    /* The same, read back by lookup. */
    b = NULL;
    CHECK_OK(chordsip_node_lookup_aor(n, "sip:list@EXAMPLE.com", &b));
    CHECK(chordsip_bindings_len(b) == 2);
    CHECK_OK(chordsip_bindings_get(b, 1, &x));
    CHECK(x.q == 500 && x.path_len == 2);
    CHECK(strcmp(chordsip_bindings_path(b, 1, 1), path[1]) == 0);
    /* Read back, a binding names its owner: this node's writer key. */
    const char *own = chordsip_bindings_owner(b, 1);
    CHECK(own != NULL && strlen(own) == 64 && strspn(own, "0123456789abcdef") == 64);
    CHECK(chordsip_bindings_owner(b, 2) == NULL && chordsip_bindings_owner(NULL, 0) == NULL);
    char owner[65];
    snprintf(owner, sizeof owner, "%s", own);
    chordsip_bindings_free(b);
    /* Every binding, whoever wrote it: here the same two. */
    b = NULL;
    CHECK_OK(chordsip_node_lookup_aor_all(n, "sip:list@example.com", &b));
    CHECK(chordsip_bindings_len(b) == 2);
    CHECK(strcmp(chordsip_bindings_owner(b, 0), owner) == 0);
    chordsip_bindings_free(b);
    CHECK_RC(chordsip_node_lookup_aor_all(NULL, "sip:list@example.com", &b),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_lookup_aor_all(n, NULL, &b), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_lookup_aor_all(n, "sip:list@example.com", NULL),
             CHORDSIP_ERR_NULL_POINTER);
    r.star = 1;
    r.expires = 0;
    r.contacts_len = 0;
    r.cseq = 2;
    CHECK_OK(chordsip_node_register(n, &r, NULL, &o));
    CHECK(o.deleted == 2);
}

static pthread_mutex_t aor_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t aor_cv = PTHREAD_COND_INITIALIZER;
static int aor_calls, aor_result = -1;
static size_t aor_len;
static void aor_done_cb(chordsip_result r, const chordsip_bindings *b, void *ud) {
    CHECK(ud == &aor_calls);
    CHECK((r == CHORDSIP_OK) == (b != NULL));
    pthread_mutex_lock(&aor_mu);
    aor_calls++;
    aor_result = r;
    aor_len = chordsip_bindings_len(b);
    pthread_cond_broadcast(&aor_cv);
    pthread_mutex_unlock(&aor_mu);
}

/* Registrar argument checks on a started, joined node. */
static void test_node_registrar_args(chordsip_node *n) {
    chordsip_contact c = good_contact();
    chordsip_register r = good_register("sip:api@example.com", &c);
    chordsip_bindings *b = SENTINEL;
    chordsip_register_outcome o, o0;
    memset(&o, 0xA5, sizeof o);
    o0 = o;
    CHECK_RC(chordsip_node_register(NULL, &r, &b, &o), CHORDSIP_ERR_NULL_POINTER);
    CHECK(b == SENTINEL && memcmp(&o, &o0, sizeof o) == 0);
    check_register_args(node_reg, n, "sip:api@example.com");

    /* chordsip_error_detail: the refused argument and why, in words; a
       success clears it. */
    {
        char why[512];
        size_t need = 0;
        chordsip_contact hc = good_contact();
        hc.uri = "<sip:api@192.0.2.1>";
        chordsip_register hr = good_register("sip:api@example.com", &hc);
        CHECK_RC(chordsip_node_register(n, &hr, NULL, NULL), CHORDSIP_ERR_INVALID_ARGUMENT);
        CHECK_OK(chordsip_error_detail(why, sizeof why, &need));
        CHECK(strstr(why, "contact \"<sip:api@192.0.2.1>\": a bare SIP URI is expected") != NULL);
        CHECK(need == strlen(why) + 1);
        CHECK_RC(chordsip_error_detail(why, 4, &need), CHORDSIP_ERR_BUFFER_TOO_SMALL);
        hr = good_register("sip:api@example.com", &c);
        hr.call_id = "";
        CHECK_RC(chordsip_node_register(n, &hr, NULL, NULL), CHORDSIP_ERR_INVALID_ARGUMENT);
        CHECK_OK(chordsip_error_detail(why, sizeof why, NULL));
        CHECK(strstr(why, "call_id is empty") != NULL);
        CHECK_RC(chordsip_node_lookup_aor(n, "not an aor", &b), CHORDSIP_ERR_INVALID_ARGUMENT);
        CHECK_OK(chordsip_error_detail(why, sizeof why, NULL));
        CHECK(strstr(why, "aor \"not an aor\": ") == why);
        char id[41];
        CHECK_OK(chordsip_node_id(n, id, sizeof id));
        CHECK_OK(chordsip_error_detail(why, sizeof why, &need));
        CHECK(why[0] == 0 && need == 1);
    }

    CHECK_RC(chordsip_node_lookup_aor(NULL, "sip:api@example.com", &b),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK(b == SENTINEL);
    check_lookup_aor_args(node_lookup_aor, n);
    check_lookup_aor_args(node_lookup_aor_all, n);
    check_bindings_list(n);

    /* chordsip_node_lookup_aor_async: on failure the callback never runs */
    CHECK_RC(chordsip_node_lookup_aor_async(NULL, "sip:a@example.com", bindings_cb, NULL),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_lookup_aor_async(n, NULL, bindings_cb, NULL),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_lookup_aor_async(n, "sip:a@example.com", NULL, NULL),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_lookup_aor_async(n, BAD_UTF8, bindings_cb, NULL),
             CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_node_lookup_aor_async(n, "mailto:x", bindings_cb, NULL),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_lookup_aor_async(n, "", bindings_cb, NULL),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_lookup_aor_async(n, long_key, bindings_cb, NULL),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    /* and on success it runs exactly once (an unknown AOR: an empty list) */
    CHECK_OK(chordsip_node_lookup_aor_async(n, "sip:nobody@example.com", aor_done_cb,
                                            &aor_calls));
    pthread_mutex_lock(&aor_mu);
    struct timespec until = deadline_ms(scaled(5) * 1000);
    while (aor_calls == 0)
        CHECK(pthread_cond_timedwait(&aor_cv, &aor_mu, &until) == 0);
    pthread_mutex_unlock(&aor_mu);
    sleep_ms(50);
    pthread_mutex_lock(&aor_mu);
    CHECK(aor_calls == 1 && aor_result == CHORDSIP_OK && aor_len == 0);
    pthread_mutex_unlock(&aor_mu);

    /* chordsip_node_lookup_aor_all_async: the same rules, every writer's bindings */
    CHECK_RC(chordsip_node_lookup_aor_all_async(NULL, "sip:a@example.com", bindings_cb, NULL),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_lookup_aor_all_async(n, "sip:a@example.com", NULL, NULL),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_lookup_aor_all_async(n, "mailto:x", bindings_cb, NULL),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    {
        chordsip_contact ac = good_contact();
        chordsip_register ar = good_register("sip:allasync@example.com", &ac);
        CHECK_OK(chordsip_node_register(n, &ar, NULL, NULL));
        pthread_mutex_lock(&aor_mu);
        aor_calls = 0;
        pthread_mutex_unlock(&aor_mu);
        CHECK_OK(chordsip_node_lookup_aor_all_async(n, "sip:allasync@example.com", aor_done_cb,
                                                    &aor_calls));
        pthread_mutex_lock(&aor_mu);
        until = deadline_ms(scaled(5) * 1000);
        while (aor_calls == 0)
            CHECK(pthread_cond_timedwait(&aor_cv, &aor_mu, &until) == 0);
        CHECK(aor_calls == 1 && aor_result == CHORDSIP_OK && aor_len == 1);
        pthread_mutex_unlock(&aor_mu);
    }
}

/* Registrar argument checks through a client handle. */
static void test_client_registrar_args(chordsip_client *cl) {
    chordsip_contact c = good_contact();
    chordsip_register r = good_register("sip:api-client@example.com", &c);
    chordsip_bindings *b = SENTINEL;
    chordsip_register_outcome o, o0;
    memset(&o, 0xA5, sizeof o);
    o0 = o;
    CHECK_RC(chordsip_client_register(NULL, &r, &b, &o), CHORDSIP_ERR_NULL_POINTER);
    CHECK(b == SENTINEL && memcmp(&o, &o0, sizeof o) == 0);
    check_register_args(client_reg, cl, "sip:api-client@example.com");
    CHECK_RC(chordsip_client_lookup_aor(NULL, "sip:api@example.com", &b),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK(b == SENTINEL);
    check_lookup_aor_args(client_lookup_aor, cl);
    CHECK_RC(chordsip_client_lookup_aor_all(NULL, "sip:api@example.com", &b),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK(b == SENTINEL);
    check_lookup_aor_args(client_lookup_aor_all, cl);
}

/* Argument checks of every node call on a started, joined node. */
static void test_node_args(chordsip_node *n, chordsip_node *other) {
    char buf[128], other_addr[64];
    uint32_t copies = 777;
    CHECK_OK(chordsip_node_addr(other, other_addr, sizeof other_addr));

    /* chordsip_node_join */
    CHECK_RC(chordsip_node_join(NULL, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_join(n, BAD_UTF8), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_node_join(n, "127.0.0.1"), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_join(n, "127.0.0.1:1,example.com:5060"),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    {
        char list[65 * 20] = "";
        for (int i = 0; i < 65; i++) /* more bootstrap peers than allowed (64) */
            snprintf(list + strlen(list), sizeof list - strlen(list), "127.0.0.1:%d ", 1000 + i);
        CHECK_RC(chordsip_node_join(n, list), CHORDSIP_ERR_TOO_LARGE);
    }

    /* joining twice: with a bootstrap or as a new ring */
    CHECK_RC(chordsip_node_join(n, other_addr), CHORDSIP_ERR_BAD_STATE);
    CHECK_RC(chordsip_node_join(n, NULL), CHORDSIP_ERR_BAD_STATE);

    /* chordsip_node_leave */
    CHECK_RC(chordsip_node_leave(NULL, 0), CHORDSIP_ERR_NULL_POINTER);

    /* chordsip_node_addr / chordsip_node_id */
    memset(buf, 'X', sizeof buf);
    CHECK_RC(chordsip_node_addr(NULL, buf, sizeof buf), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_addr(n, NULL, 64), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_addr(n, buf, 5), CHORDSIP_ERR_BUFFER_TOO_SMALL);
    CHECK_RC(chordsip_node_addr(n, buf, 0), CHORDSIP_ERR_BUFFER_TOO_SMALL);
    CHECK_RC(chordsip_node_id(NULL, buf, sizeof buf), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_id(n, NULL, 41), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_id(n, buf, 40), CHORDSIP_ERR_BUFFER_TOO_SMALL);
    for (size_t i = 0; i < sizeof buf; i++)
        CHECK(buf[i] == 'X');
    CHECK_OK(chordsip_node_id(n, buf, 41));
    CHECK(strlen(buf) == 40);
    size_t alen = strlen(other_addr);
    CHECK_OK(chordsip_node_addr(other, buf, alen + 1)); /* exactly enough */
    CHECK(strcmp(buf, other_addr) == 0);
    CHECK_RC(chordsip_node_addr(other, buf, alen), CHORDSIP_ERR_BUFFER_TOO_SMALL);

    /* chordsip_node_put */
    const uint8_t *d = (const uint8_t *)"value";
#define PUT(k, w, data, len, life) chordsip_node_put(n, k, w, data, len, life, &copies)
    CHECK_RC(chordsip_node_put(NULL, "k", "w", d, 5, 60, &copies), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(PUT(NULL, "w", d, 5, 60), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(PUT("k", NULL, d, 5, 60), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(PUT("k", "w", NULL, 5, 60), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(PUT(BAD_UTF8, "w", d, 5, 60), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(PUT("k", BAD_UTF8, d, 5, 60), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(PUT("", "w", d, 5, 60), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(PUT("k", "", d, 5, 60), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(PUT(long_key, "w", d, 5, 60), CHORDSIP_ERR_TOO_LARGE);
    CHECK_RC(PUT("k", long_writer, d, 5, 60), CHORDSIP_ERR_TOO_LARGE);
    CHECK_RC(PUT("k", "w", big_data, BIG_DATA_LEN, 60), CHORDSIP_ERR_TOO_LARGE);
    CHECK_RC(PUT("k", "w", big_data, 4097, 60), CHORDSIP_ERR_TOO_LARGE); /* max_value_bytes */
    {
        char w200[201];
        memset(w200, 'w', 200);
        w200[200] = 0; /* under CHORDSIP_MAX_WRITER_LEN, over max_writer_bytes (128) */
        CHECK_RC(PUT("k", w200, d, 5, 60), CHORDSIP_ERR_TOO_LARGE);
    }
    CHECK_RC(PUT("k", "w", d, 5, 0), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(copies == 777);
    CHECK_OK(PUT(max_key, "w", d, 5, 60)); /* the longest key is fine */
    CHECK(copies >= 1 && copies != 777);
    CHECK_OK(chordsip_node_put(n, "empty", "w", NULL, 0, 60, NULL)); /* empty value, no copies */
#undef PUT

    /* chordsip_node_remove */
    copies = 777;
    CHECK_RC(chordsip_node_remove(NULL, "k", "w", &copies), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_remove(n, NULL, "w", &copies), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_remove(n, "k", NULL, &copies), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_remove(n, BAD_UTF8, "w", &copies), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_node_remove(n, "k", BAD_UTF8, &copies), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_node_remove(n, long_key, "w", &copies), CHORDSIP_ERR_TOO_LARGE);
    CHECK_RC(chordsip_node_remove(n, "k", long_writer, &copies), CHORDSIP_ERR_TOO_LARGE);
    CHECK_RC(chordsip_node_remove(n, "", "w", &copies), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(copies == 777);
    CHECK_OK(chordsip_node_remove(n, max_key, "w", &copies));
    CHECK(copies != 777);
    CHECK_OK(chordsip_node_remove(n, "empty", "w", NULL));

    /* chordsip_node_get and the value list accessors */
    chordsip_values *v = SENTINEL;
    CHECK_RC(chordsip_node_get(NULL, "k", &v), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_get(n, NULL, &v), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_get(n, "k", NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_get(n, BAD_UTF8, &v), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_node_get(n, long_key, &v), CHORDSIP_ERR_TOO_LARGE);
    CHECK_RC(chordsip_node_get(n, "", &v), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(v == SENTINEL);
    CHECK_OK(chordsip_node_put(n, "list", "w1", d, 5, 60, NULL));
    CHECK_OK(chordsip_node_put(n, "list", "w2", NULL, 0, 60, NULL));
    CHECK_OK(chordsip_node_get(n, "list", &v));
    CHECK(v != NULL && v != SENTINEL);
    CHECK(chordsip_values_len(v) == 2);
    CHECK(chordsip_values_len(NULL) == 0);
    chordsip_value val, val0;
    memset(&val, 0xA5, sizeof val);
    val0 = val;
    CHECK_RC(chordsip_values_get(NULL, 0, &val), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_values_get(v, 0, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_values_get(v, 2, &val), CHORDSIP_ERR_OUT_OF_RANGE);
    CHECK_RC(chordsip_values_get(v, SIZE_MAX, &val), CHORDSIP_ERR_OUT_OF_RANGE);
    CHECK(memcmp(&val, &val0, sizeof val) == 0);
    int seen = 0;
    for (size_t i = 0; i < 2; i++) {
        CHECK_OK(chordsip_values_get(v, i, &val));
        CHECK(val.writer != NULL && val.writer[val.writer_len] == 0);
        CHECK(val.expires_in_ms > 0 && val.expires_in_ms <= 60000);
        CHECK(val.version > 0);
        if (strcmp(val.writer, "w1") == 0) {
            CHECK(val.data_len == 5 && memcmp(val.data, "value", 5) == 0);
            seen |= 1;
        } else if (strcmp(val.writer, "w2") == 0) {
            CHECK(val.data_len == 0);
            seen |= 2;
        }
    }
    CHECK(seen == 3);
    /* The owner of this node's writes is its own writer key: trusted here;
     * a key nobody configured is not (hosts filter gets with this). */
    uint32_t trusted = 7;
    CHECK_OK(chordsip_node_writer_trusted(n, val.owner, &trusted));
    CHECK(trusted == 1);
    uint8_t stranger[CHORDSIP_OWNER_LEN] = {1, 2, 3};
    CHECK_OK(chordsip_node_writer_trusted(n, stranger, &trusted));
    CHECK(trusted == 0);
    CHECK_RC(chordsip_node_writer_trusted(NULL, val.owner, &trusted), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_writer_trusted(n, NULL, &trusted), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_writer_trusted(n, val.owner, NULL), CHORDSIP_ERR_NULL_POINTER);
    chordsip_values_free(v);
    chordsip_values_free(NULL);
    /* A key with no values: an empty list, not an error. */
    v = NULL;
    CHECK_OK(chordsip_node_get(n, "never-stored", &v));
    CHECK(v != NULL && chordsip_values_len(v) == 0);
    CHECK_RC(chordsip_values_get(v, 0, &val), CHORDSIP_ERR_OUT_OF_RANGE);
    chordsip_values_free(v);

    /* chordsip_node_lookup */
    chordsip_lookup_info li, li0;
    memset(&li, 0xA5, sizeof li);
    li0 = li;
    CHECK_RC(chordsip_node_lookup(NULL, "k", 0, &li), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_lookup(n, NULL, 0, &li), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_lookup(n, "k", 0, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_lookup(n, BAD_UTF8, 0, &li), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_node_lookup(n, long_key, 0, &li), CHORDSIP_ERR_TOO_LARGE);
    CHECK_RC(chordsip_node_lookup(n, "", 0, &li), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(memcmp(&li, &li0, sizeof li) == 0);
    CHECK_OK(chordsip_node_lookup(n, "k", 2000, &li));
    CHECK(strlen(li.node.id) == 40 && strlen(li.node.addr) > 0);

    /* the asynchronous calls: on failure the callback never runs */
#define NOCB(call, want) CHECK_RC(call, want)
    NOCB(chordsip_node_lookup_async(NULL, "k", 0, lookup_cb, NULL), CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_lookup_async(n, NULL, 0, lookup_cb, NULL), CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_lookup_async(n, "k", 0, NULL, NULL), CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_lookup_async(n, BAD_UTF8, 0, lookup_cb, NULL), CHORDSIP_ERR_BAD_UTF8);
    NOCB(chordsip_node_lookup_async(n, long_key, 0, lookup_cb, NULL), CHORDSIP_ERR_TOO_LARGE);
    NOCB(chordsip_node_lookup_async(n, "", 0, lookup_cb, NULL), CHORDSIP_ERR_INVALID_ARGUMENT);

    NOCB(chordsip_node_put_async(NULL, "k", "w", d, 5, 60, store_cb, NULL),
         CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_put_async(n, NULL, "w", d, 5, 60, store_cb, NULL),
         CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_put_async(n, "k", NULL, d, 5, 60, store_cb, NULL),
         CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_put_async(n, "k", "w", NULL, 5, 60, store_cb, NULL),
         CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_put_async(n, "k", "w", d, 5, 60, NULL, NULL), CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_put_async(n, BAD_UTF8, "w", d, 5, 60, store_cb, NULL),
         CHORDSIP_ERR_BAD_UTF8);
    NOCB(chordsip_node_put_async(n, "k", BAD_UTF8, d, 5, 60, store_cb, NULL),
         CHORDSIP_ERR_BAD_UTF8);
    NOCB(chordsip_node_put_async(n, long_key, "w", d, 5, 60, store_cb, NULL),
         CHORDSIP_ERR_TOO_LARGE);
    NOCB(chordsip_node_put_async(n, "k", long_writer, d, 5, 60, store_cb, NULL),
         CHORDSIP_ERR_TOO_LARGE);
    NOCB(chordsip_node_put_async(n, "k", "w", big_data, BIG_DATA_LEN, 60, store_cb, NULL),
         CHORDSIP_ERR_TOO_LARGE);
    NOCB(chordsip_node_put_async(n, "k", "w", d, 5, 0, store_cb, NULL),
         CHORDSIP_ERR_INVALID_ARGUMENT);
    NOCB(chordsip_node_put_async(n, "", "w", d, 5, 60, store_cb, NULL),
         CHORDSIP_ERR_INVALID_ARGUMENT);

    NOCB(chordsip_node_remove_async(NULL, "k", "w", store_cb, NULL), CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_remove_async(n, NULL, "w", store_cb, NULL), CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_remove_async(n, "k", NULL, store_cb, NULL), CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_remove_async(n, "k", "w", NULL, NULL), CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_remove_async(n, BAD_UTF8, "w", store_cb, NULL), CHORDSIP_ERR_BAD_UTF8);
    NOCB(chordsip_node_remove_async(n, "k", BAD_UTF8, store_cb, NULL), CHORDSIP_ERR_BAD_UTF8);
    NOCB(chordsip_node_remove_async(n, long_key, "w", store_cb, NULL), CHORDSIP_ERR_TOO_LARGE);
    NOCB(chordsip_node_remove_async(n, "k", long_writer, store_cb, NULL),
         CHORDSIP_ERR_TOO_LARGE);
    NOCB(chordsip_node_remove_async(n, "k", "", store_cb, NULL), CHORDSIP_ERR_INVALID_ARGUMENT);

    NOCB(chordsip_node_get_async(NULL, "k", get_cb, NULL), CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_get_async(n, NULL, get_cb, NULL), CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_get_async(n, "k", NULL, NULL), CHORDSIP_ERR_NULL_POINTER);
    NOCB(chordsip_node_get_async(n, BAD_UTF8, get_cb, NULL), CHORDSIP_ERR_BAD_UTF8);
    NOCB(chordsip_node_get_async(n, long_key, get_cb, NULL), CHORDSIP_ERR_TOO_LARGE);
    NOCB(chordsip_node_get_async(n, "", get_cb, NULL), CHORDSIP_ERR_INVALID_ARGUMENT);
#undef NOCB

    /* chordsip_node_ping */
    uint64_t rtt = 777;
    CHECK_RC(chordsip_node_ping(NULL, other_addr, &rtt), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_ping(n, NULL, &rtt), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_ping(n, BAD_UTF8, &rtt), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_node_ping(n, "not-an-address", &rtt), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_ping(n, "127.0.0.1", &rtt), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(rtt == 777);
    CHECK_OK(chordsip_node_ping(n, other_addr, &rtt));
    CHECK(rtt != 777);
    CHECK_OK(chordsip_node_ping(n, other_addr, NULL));

    /* chordsip_node_stats */
    chordsip_stats st;
    CHECK_RC(chordsip_node_stats(NULL, &st), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_stats(n, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_OK(chordsip_node_stats(n, &st));
    CHECK(st.joined == 1);

    /* chordsip_node_info */
    size_t needed = 777;
    memset(buf, 'X', sizeof buf);
    CHECK_RC(chordsip_node_info(NULL, 0, buf, sizeof buf, &needed), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_info(n, 3, buf, sizeof buf, &needed), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(needed == 777);
    CHECK_RC(chordsip_node_info(n, 0, buf, 4, &needed), CHORDSIP_ERR_BUFFER_TOO_SMALL);
    CHECK(needed > 4 && needed != 777);
    for (size_t i = 0; i < sizeof buf; i++)
        CHECK(buf[i] == 'X');
    CHECK_RC(chordsip_node_info(n, 0, buf, 4, NULL), CHORDSIP_ERR_BUFFER_TOO_SMALL);
    needed = 777;
    CHECK_RC(chordsip_node_info(n, 1, NULL, 0, &needed), CHORDSIP_ERR_NULL_POINTER);
    CHECK(needed > 1 && needed != 777); /* "needed always receives the size" */
    /* Ask, then read with a buffer of the reported size (text may grow: retry). */
    int done = 0;
    for (int attempt = 0; attempt < 5 && !done; attempt++) {
        CHECK_RC(chordsip_node_info(n, 0, NULL, 0, &needed), CHORDSIP_ERR_NULL_POINTER);
        char *text = malloc(needed);
        CHECK(text != NULL);
        size_t again = 0;
        int rc = chordsip_node_info(n, 0, text, needed, &again);
        if (rc == CHORDSIP_OK) {
            CHECK(strlen(text) + 1 == again && again <= needed);
            done = 1;
        } else {
            CHECK_RC(rc, CHORDSIP_ERR_BUFFER_TOO_SMALL);
        }
        free(text);
    }
    CHECK(done);

    /* chordsip_node_metrics: OpenMetrics text naming this node, sized like
       chordsip_node_info, the same families as CHORDSIP_INFO_METRICS. */
    {
        CHECK_RC(chordsip_node_metrics(NULL, buf, sizeof buf, &needed),
                 CHORDSIP_ERR_NULL_POINTER);
        CHECK_RC(chordsip_node_metrics(n, buf, 8, &needed), CHORDSIP_ERR_BUFFER_TOO_SMALL);
        CHECK(needed > 1000);
        size_t size = needed + 4096;
        char *m = malloc(size), *via_info = malloc(size);
        CHECK(m != NULL && via_info != NULL);
        CHECK_OK(chordsip_node_metrics(n, m, size, &needed));
        CHECK(strlen(m) + 1 == needed);
        size_t len = strlen(m);
        CHECK(len > 6 && strcmp(m + len - 6, "# EOF\n") == 0);
        char id[41], line[128];
        CHECK_OK(chordsip_node_id(n, id, sizeof id));
        snprintf(line, sizeof line, "chordsip_node_info{id=\"%s\"", id);
        CHECK(strstr(m, line) != NULL);
        CHECK(strstr(m, "\nchordsip_joined 1\n") != NULL);
        CHECK(strstr(m, "# TYPE chordsip_lookup_duration_seconds histogram\n") != NULL);
        CHECK_OK(chordsip_node_info(n, CHORDSIP_INFO_METRICS, via_info, size, NULL));
        CHECK(strncmp(via_info, m, 64) == 0);
        free(m);
        free(via_info);
    }

    /* chordsip_node_neighbours and the peer list accessors */
    chordsip_peers *p = SENTINEL;
    CHECK_RC(chordsip_node_neighbours(NULL, CHORDSIP_SUCCESSORS, &p), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_neighbours(n, CHORDSIP_SUCCESSORS, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_neighbours(n, 4, &p), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(p == SENTINEL);
    CHECK_OK(chordsip_node_neighbours(n, CHORDSIP_SUCCESSORS, &p));
    CHECK(p != NULL && p != SENTINEL);
    size_t len = chordsip_peers_len(p);
    CHECK(len >= 1);
    CHECK(chordsip_peers_len(NULL) == 0);
    chordsip_peer peer, peer0;
    memset(&peer, 0xA5, sizeof peer);
    peer0 = peer;
    CHECK_RC(chordsip_peers_get(NULL, 0, &peer), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_peers_get(p, 0, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_peers_get(p, len, &peer), CHORDSIP_ERR_OUT_OF_RANGE);
    CHECK_RC(chordsip_peers_get(p, SIZE_MAX, &peer), CHORDSIP_ERR_OUT_OF_RANGE);
    CHECK(memcmp(&peer, &peer0, sizeof peer) == 0);
    CHECK_OK(chordsip_peers_get(p, 0, &peer));
    CHECK(strlen(peer.id) == 40 && strchr(peer.addr, ':') != NULL);
    chordsip_peers_free(p);
    chordsip_peers_free(NULL);

    /* chordsip_node_event_fd / chordsip_node_process */
    int fd = -77;
    CHECK_RC(chordsip_node_event_fd(NULL, &fd), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_event_fd(n, &fd), CHORDSIP_ERR_BAD_STATE); /* thread mode */
    CHECK(fd == -77);
    size_t ran = 777;
    CHECK_RC(chordsip_node_process(NULL, &ran), CHORDSIP_ERR_NULL_POINTER);
    CHECK(ran == 777);

    sleep_ms(100); /* any stray callback of the failed async calls would run by now */
    CHECK(__atomic_load_n(&never_called, __ATOMIC_SEQ_CST) == 0);
}

static void test_client_args(chordsip_node *n) {
    char addr[64], buf[64];
    CHECK_OK(chordsip_node_addr(n, addr, sizeof addr));
    chordsip_client *c = SENTINEL;
    const uint8_t key[] = {9, 9};

    /* chordsip_client_new */
    CHECK_RC(chordsip_client_new(NULL, NULL, NULL, 0, 1000, &c), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_new(addr, NULL, NULL, 0, 1000, NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_new(addr, NULL, NULL, 2, 1000, &c), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_new(BAD_UTF8, NULL, NULL, 0, 1000, &c), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_client_new(addr, BAD_UTF8, NULL, 0, 1000, &c), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_client_new("nowhere", NULL, NULL, 0, 1000, &c),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_client_new("127.0.0.1", NULL, NULL, 0, 1000, &c),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_client_new("unix:", NULL, NULL, 0, 1000, &c),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(c == SENTINEL);
    /* A UNIX path is only used when sending ("sends nothing yet"): a missing
       socket shows up as an error of the first call. */
    CHECK_OK(chordsip_client_new("unix:/nonexistent/chordsip.sock", NULL, NULL, 0, 300, &c));
    CHECK(c != NULL && c != SENTINEL);
    {
        chordsip_lookup_info tmp;
        int rc = chordsip_client_lookup(c, "k", &tmp);
        CHECK(rc == CHORDSIP_ERR_IO || rc == CHORDSIP_ERR_TIMEOUT);
    }
    chordsip_client_free(c);
    c = SENTINEL;
    /* With a key the peer does not use, requests go unanswered. */
    CHECK_OK(chordsip_client_new(addr, "chordsip", key, sizeof key, 300, &c));
    CHECK(c != NULL && c != SENTINEL);
    chordsip_lookup_info li;
    CHECK_RC(chordsip_client_lookup(c, "k", &li), CHORDSIP_ERR_TIMEOUT);
    chordsip_client_free(c);

    /* Without the node's client credential a UDP client is refused, at once. */
    CHECK_OK(chordsip_client_new(addr, NULL, NULL, 0, 3000, &c));
    CHECK_RC(chordsip_client_lookup(c, "k", &li), CHORDSIP_ERR_UNAUTHORIZED);
    chordsip_client_free(c);

    CHECK_OK(chordsip_client_new(addr, NULL, TEST_KEY_ARGS, 0, &c));

    /* chordsip_client_set_timeout */
    CHECK_RC(chordsip_client_set_timeout(NULL, 100), CHORDSIP_ERR_NULL_POINTER);
    CHECK_OK(chordsip_client_set_timeout(c, 0));
    CHECK_OK(chordsip_client_set_timeout(c, 3000));

    /* chordsip_client_put */
    const uint8_t *d = (const uint8_t *)"v";
    uint32_t copies = 777;
    CHECK_RC(chordsip_client_put(NULL, "k", "w", d, 1, 60, &copies), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_put(c, NULL, "w", d, 1, 60, &copies), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_put(c, "k", NULL, d, 1, 60, &copies), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_put(c, "k", "w", NULL, 1, 60, &copies), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_put(c, BAD_UTF8, "w", d, 1, 60, &copies), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_client_put(c, "k", BAD_UTF8, d, 1, 60, &copies), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_client_put(c, long_key, "w", d, 1, 60, &copies), CHORDSIP_ERR_TOO_LARGE);
    CHECK_RC(chordsip_client_put(c, "k", long_writer, d, 1, 60, &copies),
             CHORDSIP_ERR_TOO_LARGE);
    CHECK_RC(chordsip_client_put(c, "k", "w", big_data, BIG_DATA_LEN, 60, &copies),
             CHORDSIP_ERR_TOO_LARGE);
    CHECK_RC(chordsip_client_put(c, "k", "w", big_data, 4097, 60, &copies),
             CHORDSIP_ERR_TOO_LARGE);
    CHECK_RC(chordsip_client_put(c, "k", "w", d, 1, 0, &copies), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_client_put(c, "", "w", d, 1, 60, &copies), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(copies == 777);
    CHECK_OK(chordsip_client_put(c, "client-k", "w", d, 1, 60, &copies));
    CHECK(copies >= 1 && copies != 777);

    /* chordsip_client_remove */
    copies = 777;
    CHECK_RC(chordsip_client_remove(NULL, "k", "w", &copies), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_remove(c, NULL, "w", &copies), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_remove(c, "k", NULL, &copies), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_remove(c, BAD_UTF8, "w", &copies), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_client_remove(c, "k", BAD_UTF8, &copies), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_client_remove(c, long_key, "w", &copies), CHORDSIP_ERR_TOO_LARGE);
    CHECK_RC(chordsip_client_remove(c, "k", long_writer, &copies), CHORDSIP_ERR_TOO_LARGE);
    CHECK(copies == 777);
    CHECK_OK(chordsip_client_remove(c, "client-k", "w", NULL));

    /* chordsip_client_get */
    chordsip_values *v = SENTINEL;
    CHECK_RC(chordsip_client_get(NULL, "k", &v), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_get(c, NULL, &v), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_get(c, "k", NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_get(c, BAD_UTF8, &v), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_client_get(c, long_key, &v), CHORDSIP_ERR_TOO_LARGE);
    CHECK_RC(chordsip_client_get(c, "", &v), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(v == SENTINEL);

    /* chordsip_client_lookup */
    chordsip_lookup_info li0;
    memset(&li, 0xA5, sizeof li);
    li0 = li;
    CHECK_RC(chordsip_client_lookup(NULL, "k", &li), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_lookup(c, NULL, &li), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_lookup(c, "k", NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_lookup(c, BAD_UTF8, &li), CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_client_lookup(c, long_key, &li), CHORDSIP_ERR_TOO_LARGE);
    CHECK(memcmp(&li, &li0, sizeof li) == 0);

    /* chordsip_client_info */
    size_t needed = 777;
    memset(buf, 'X', sizeof buf);
    CHECK_RC(chordsip_client_info(NULL, 0, buf, sizeof buf, &needed), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_client_info(c, 3, buf, sizeof buf, &needed),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(needed == 777);
    CHECK_RC(chordsip_client_info(c, 1, buf, 4, &needed), CHORDSIP_ERR_BUFFER_TOO_SMALL);
    CHECK(needed > 4 && needed != 777);
    for (size_t i = 0; i < sizeof buf; i++)
        CHECK(buf[i] == 'X');
    {
        /* The peer's OpenMetrics text, as chordsip_node_metrics gives it. */
        static char m[65536];
        CHECK_OK(chordsip_client_info(c, CHORDSIP_INFO_METRICS, m, sizeof m, &needed));
        CHECK(strlen(m) + 1 == needed);
        CHECK(strstr(m, "# TYPE chordsip_node info\n") != NULL);
        CHECK(needed > 6 && strcmp(m + needed - 7, "# EOF\n") == 0);
    }

    test_client_registrar_args(c);

    chordsip_client_free(c);
    chordsip_client_free(NULL);

    /* A client of a port nobody serves times out (or sees the ICMP refusal). */
    CHECK_OK(chordsip_client_new("127.0.0.1:9", NULL, NULL, 0, 300, &c));
    double t0 = now_s();
    int rc = chordsip_client_lookup(c, "k", &li);
    CHECK(rc == CHORDSIP_ERR_TIMEOUT || rc == CHORDSIP_ERR_IO);
    CHECK(now_s() - t0 < scaled(3));
    chordsip_client_free(c);
}

/* chordsip_node_join_async: eight nodes joined at once from this one
 * thread, every callback OK exactly once; a join nobody answers reaches its
 * callback as JOIN_FAILED, and bad arguments are returned by the call with
 * no callback. Then the atomic snapshot (chordsip_node_ring) and the
 * configuration read back (chordsip_node_config_get). */
#define ASYNC_JOINS 8
static int join_results[ASYNC_JOINS + 1];
static int join_calls;
static void join_done(chordsip_result r, void *ud) {
    int *slot = ud;
    *slot = r == CHORDSIP_OK ? 1 : (int)r;
    __atomic_add_fetch(&join_calls, 1, __ATOMIC_SEQ_CST);
}

static void test_join_async_ring_and_config(void) {
    chordsip_config *cfg = fast_config();
    char err[64];
    CHECK_OK(chordsip_config_set(cfg, "successors", "5", err, sizeof err));
    chordsip_node *n[ASYNC_JOINS + 1];
    for (int i = 0; i <= ASYNC_JOINS; i++)
        n[i] = node_from(cfg);
    char boot[64], buf[256];
    size_t needed = 0;
    /* Read back before the start: what was set, and the defaults. */
    CHECK_OK(chordsip_node_config_get(n[1], "successors", buf, sizeof buf, &needed));
    CHECK(strcmp(buf, "5") == 0 && needed == 2);
    CHECK_OK(chordsip_node_config_get(n[1], "replicas", buf, sizeof buf, NULL));
    CHECK(strcmp(buf, "3") == 0);
    CHECK_OK(chordsip_node_config_get(n[1], "overlay_key", buf, sizeof buf, NULL));
    CHECK(strcmp(buf, "unset") == 0);
    CHECK_RC(chordsip_node_config_get(n[1], "no_such_option", buf, sizeof buf, NULL),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_config_get(n[1], "successors", buf, 1, &needed),
             CHORDSIP_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == 2);
    CHECK_RC(chordsip_node_config_get(NULL, "successors", buf, sizeof buf, NULL),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_config_get(n[1], NULL, buf, sizeof buf, NULL),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_config_get(n[1], BAD_UTF8, buf, sizeof buf, NULL),
             CHORDSIP_ERR_BAD_UTF8);

    /* Bad arguments: returned at once, the callback never runs. */
    CHECK_RC(chordsip_node_join_async(NULL, "", join_done, &join_results[0]),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_join_async(n[1], "not-an-address", join_done, &join_results[0]),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_join_async(n[1], "", NULL, NULL), CHORDSIP_ERR_NULL_POINTER);

    CHECK_OK(chordsip_node_join(n[0], ""));
    CHECK_OK(chordsip_node_addr(n[0], boot, sizeof boot));
    double t0 = now_s();
    for (int i = 1; i <= ASYNC_JOINS; i++)
        CHECK_OK(chordsip_node_join_async(n[i], boot, join_done, &join_results[i]));
    /* Each join's deadline is twice the op timeout (scaled for ASan/valgrind). */
    for (unsigned w = 0;
         w < 300 * scaled(10) && __atomic_load_n(&join_calls, __ATOMIC_SEQ_CST) < ASYNC_JOINS; w++)
        usleep(10000);
    note("%d asynchronous joins from one thread done after %.3f s", ASYNC_JOINS, now_s() - t0);
    CHECK(__atomic_load_n(&join_calls, __ATOMIC_SEQ_CST) == ASYNC_JOINS);
    for (int i = 1; i <= ASYNC_JOINS; i++)
        CHECK(join_results[i] == 1);
    CHECK(wait_ring(n, ASYNC_JOINS + 1, scaled(15) * 1000));

    /* The snapshot agrees with chordsip_node_neighbours and chordsip_node_id. */
    chordsip_ring *r = SENTINEL;
    CHECK_RC(chordsip_node_ring(NULL, &r), CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_ring(n[3], NULL), CHORDSIP_ERR_NULL_POINTER);
    CHECK(r == SENTINEL);
    /* The successor list fills to its length (5) as stabilization runs. */
    for (unsigned w = 0; w < 100 * scaled(10); w++) {
        CHECK_OK(chordsip_node_ring(n[3], &r));
        if (chordsip_peers_len(r->successors) == 5)
            break;
        chordsip_ring_free(r);
        r = NULL;
        usleep(10000);
    }
    CHECK(r != NULL);
    char id[41];
    CHECK_OK(chordsip_node_id(n[3], id, sizeof id));
    CHECK(strcmp(r->node.id, id) == 0);
    CHECK(r->joined == 1);
    CHECK(chordsip_peers_len(r->successors) == 5);
    CHECK(chordsip_peers_len(r->predecessors) >= 1);
    CHECK(chordsip_peers_len(r->fingers) >= 1);
    CHECK(chordsip_peers_len(r->members) == 0); /* multi-hop */
    chordsip_peers *succ = NULL;
    CHECK_OK(chordsip_node_neighbours(n[3], CHORDSIP_SUCCESSORS, &succ));
    chordsip_peer a, b;
    CHECK_OK(chordsip_peers_get(r->successors, 0, &a));
    CHECK_OK(chordsip_peers_get(succ, 0, &b));
    CHECK(strcmp(a.id, b.id) == 0); /* a settled ring: both views agree */
    chordsip_peers_free(succ);
    chordsip_ring_free(r);
    chordsip_ring_free(NULL);
    /* Running: "threads" reads the library threads running. */
    CHECK_OK(chordsip_node_config_get(n[3], "threads", buf, sizeof buf, NULL));
    CHECK(atoi(buf) >= 1 && atoi(buf) <= 64);

    /* A join nobody answers: JOIN_FAILED through the callback. */
    chordsip_config *slow = fast_config();
    CHECK_OK(chordsip_config_set(slow, "op_timeout_ms", "300", err, sizeof err));
    chordsip_node *lone = node_from(slow);
    join_calls = 0;
    CHECK_OK(chordsip_node_join_async(lone, "127.0.0.1:9", join_done, &join_results[0]));
    for (unsigned w = 0; w < 100 * scaled(10) && __atomic_load_n(&join_calls, __ATOMIC_SEQ_CST) < 1;
         w++)
        usleep(10000);
    CHECK(join_calls == 1 && join_results[0] == CHORDSIP_ERR_JOIN_FAILED);
    chordsip_node_free(lone);
    chordsip_config_free(slow);
    for (int i = ASYNC_JOINS; i >= 0; i--)
        chordsip_node_free(n[i]);
    chordsip_config_free(cfg);
}

/* new/start/join/leave/free of three nodes, and a join nobody answers. */
static void test_lifecycle(void) {
    chordsip_config *cfg = fast_config();
    chordsip_node *n[3];
    n[0] = node_from(cfg);
    CHECK_OK(chordsip_node_start(n[0]));   /* start, then join as a new ring */
    CHECK_OK(chordsip_node_join(n[0], "")); /* empty list: a new ring */
    n[1] = node_from(cfg);
    join_via(n[1], n[0]); /* join starts the node itself */
    n[2] = node_from(cfg);
    CHECK_OK(chordsip_node_start(n[2]));
    join_via(n[2], n[0]);
    CHECK(wait_ring(n, 3, scaled(10) * 1000));

    test_node_args(n[0], n[1]);
    test_node_registrar_args(n[2]);
    test_client_args(n[1]);

    /* Graceful leave of each; afterwards the node is stopped. */
    for (int i = 2; i >= 0; i--) {
        CHECK_OK(chordsip_node_leave(n[i], 2000));
        int rc = chordsip_node_put(n[i], "k", "w", (const uint8_t *)"v", 1, 60, NULL);
        CHECK(rc == CHORDSIP_ERR_SHUTDOWN || rc == CHORDSIP_ERR_NOT_JOINED);
        {
            chordsip_contact c = good_contact();
            chordsip_register r = good_register("sip:api@example.com", &c);
            chordsip_bindings *b = SENTINEL;
            rc = chordsip_node_register(n[i], &r, &b, NULL);
            CHECK(rc == CHORDSIP_ERR_SHUTDOWN || rc == CHORDSIP_ERR_NOT_JOINED);
            rc = chordsip_node_lookup_aor(n[i], "sip:api@example.com", &b);
            CHECK(rc == CHORDSIP_ERR_SHUTDOWN || rc == CHORDSIP_ERR_NOT_JOINED);
            rc = chordsip_node_lookup_aor_async(n[i], "sip:api@example.com", bindings_cb, NULL);
            CHECK(rc == CHORDSIP_ERR_SHUTDOWN || rc == CHORDSIP_ERR_NOT_JOINED);
            CHECK(b == SENTINEL);
        }
        chordsip_node_free(n[i]);
        if (i > 0) /* the others close the gap before the next one leaves */
            CHECK(wait_ring(n, (size_t)i, scaled(10) * 1000));
    }
    chordsip_node_free(NULL);

    /* Nobody answers the bootstrap: JOIN_FAILED within twice the op timeout. */
    char err[64];
    CHECK_OK(chordsip_config_set(cfg, "op_timeout_ms", "300", err, sizeof err));
    chordsip_node *lone = node_from(cfg);
    double t0 = now_s();
    CHECK_RC(chordsip_node_join(lone, "127.0.0.1:9"), CHORDSIP_ERR_JOIN_FAILED);
    double took = now_s() - t0;
    note("unanswered join failed after %.2f s", took);
    CHECK(took < 0.6 + 0.6 * slow_factor());
    chordsip_node_free(lone);
    chordsip_config_free(cfg);
}

/* Digest authentication: the pure HA1 helper (RFC 2617's vector), the
 * verdict table, and a registrar node with a credentials key but no users:
 * a REGISTER without credentials is challenged, garbage is a 400, an
 * unknown user's HA1 is NOT_FOUND; a node without the key says UNAUTHORIZED. */

/* chordsip_node_authenticate_async's answer, for the test below. */
static int auth_done, auth_rc;
static uint32_t auth_verdict;
static char auth_challenge[CHORDSIP_MAX_CHALLENGE_LEN];

static void on_auth_verdict(chordsip_result result, uint32_t verdict, const char *challenge,
                            void *ud) {
    (void)ud;
    auth_rc = result;
    auth_verdict = verdict;
    snprintf(auth_challenge, sizeof auth_challenge, "%s", challenge ? challenge : "(null)");
    __atomic_store_n(&auth_done, 1, __ATOMIC_RELEASE);
}

static void test_auth(void) {
    char ha1[65], err[128];
    CHECK_OK(chordsip_digest_ha1(CHORDSIP_DIGEST_MD5, "Mufasa", "testrealm@host.com",
                                 "Circle Of Life", ha1, sizeof ha1));
    CHECK(strcmp(ha1, "939e7578ed9e3c518a452acee763bce9") == 0);
    CHECK_OK(chordsip_digest_ha1(CHORDSIP_DIGEST_SHA256, "u", "r", "p", ha1, sizeof ha1));
    CHECK(strlen(ha1) == 64);
    CHECK_RC(chordsip_digest_ha1(CHORDSIP_DIGEST_SHA256, "u", "r", "p", ha1, 64),
             CHORDSIP_ERR_BUFFER_TOO_SMALL);
    CHECK_RC(chordsip_digest_ha1(3, "u", "r", "p", ha1, sizeof ha1), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_digest_ha1(CHORDSIP_DIGEST_MD5, NULL, "r", "p", ha1, sizeof ha1),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_digest_ha1(CHORDSIP_DIGEST_MD5, BAD_UTF8, "r", "p", ha1, sizeof ha1),
             CHORDSIP_ERR_BAD_UTF8);
    CHECK_RC(chordsip_digest_ha1(CHORDSIP_DIGEST_MD5, "u", "r", "p", NULL, 65),
             CHORDSIP_ERR_NULL_POINTER);

    const char *reason = NULL;
    CHECK(chordsip_auth_status(CHORDSIP_AUTH_OK, &reason) == 200 && strcmp(reason, "OK") == 0);
    CHECK(chordsip_auth_status(CHORDSIP_AUTH_CHALLENGE, NULL) == 401);
    CHECK(chordsip_auth_status(CHORDSIP_AUTH_STALE, NULL) == 401);
    CHECK(chordsip_auth_status(CHORDSIP_AUTH_FORBIDDEN, NULL) == 403);
    CHECK(chordsip_auth_status(CHORDSIP_AUTH_NOT_YOURS, &reason) == 403 && strstr(reason, "AOR"));
    CHECK(chordsip_auth_status(CHORDSIP_AUTH_MALFORMED, NULL) == 400);
    CHECK(chordsip_auth_status(99, &reason) == 0 && reason[0] == 0);

    /* A node with no credentials key refuses to judge (answer 500, not 401). */
    chordsip_config *cfg = fast_config();
    chordsip_node *plain = node_from(cfg);
    CHECK_OK(chordsip_node_join(plain, ""));
    char ch[CHORDSIP_MAX_CHALLENGE_LEN];
    uint32_t v = 77;
    CHECK_RC(chordsip_node_authenticate(plain, "REGISTER", "sip:a@example.com", NULL, &v, ch,
                                        sizeof ch),
             CHORDSIP_ERR_UNAUTHORIZED);
    CHECK(v == 77);
    CHECK_RC(chordsip_node_credential_ha1(plain, "a", "example.com", CHORDSIP_DIGEST_MD5, ha1,
                                          sizeof ha1),
             CHORDSIP_ERR_UNAUTHORIZED);
    chordsip_node_free(plain);

    CHECK_OK(chordsip_config_set(cfg, "credentials_key", SHARED_WRITER_KEY, err, sizeof err));
    CHECK_RC(chordsip_config_set(cfg, "credential_admins", "zz", err, sizeof err),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_OK(chordsip_config_set(cfg, "credential_admins",
                                 "1111111111111111111111111111111111111111111111111111111111111111",
                                 err, sizeof err));
    chordsip_node *n = node_from(cfg);
    CHECK_OK(chordsip_node_join(n, ""));
    CHECK_RC(chordsip_node_credential_ha1(n, "nobody", "example.com", CHORDSIP_DIGEST_MD5, ha1,
                                          sizeof ha1),
             CHORDSIP_ERR_NOT_FOUND);
    CHECK_RC(chordsip_node_credential_ha1(n, "a", "example.com", 0, ha1, sizeof ha1),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_credential_ha1(NULL, "a", "example.com", 1, ha1, sizeof ha1),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_credential_ha1(n, "a", NULL, 1, ha1, sizeof ha1),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_OK(chordsip_node_authenticate(n, "REGISTER", "sip:a@example.com", NULL, &v, ch,
                                        sizeof ch));
    CHECK(v == CHORDSIP_AUTH_CHALLENGE);
    CHECK(strncmp(ch, "Digest realm=\"example.com\", nonce=\"", 35) == 0);
    CHECK(strstr(ch, "algorithm=MD5") != NULL && strstr(ch, "stale") == NULL);
    CHECK_OK(chordsip_node_authenticate(n, "REGISTER", "sip:a@example.com", "", &v, ch, sizeof ch));
    CHECK(v == CHORDSIP_AUTH_CHALLENGE);
    CHECK_OK(chordsip_node_authenticate(n, "REGISTER", "sip:a@example.com",
                                        "Digest username=\"a\", realm=", &v, ch, sizeof ch));
    CHECK(v == CHORDSIP_AUTH_MALFORMED && ch[0] == 0);
    CHECK_RC(chordsip_node_authenticate(n, "REGISTER", "sip:a@example.com", NULL, &v, ch, 100),
             CHORDSIP_ERR_BUFFER_TOO_SMALL);
    CHECK_RC(chordsip_node_authenticate(n, "REGISTER", "not a uri", NULL, &v, ch, sizeof ch),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_authenticate(n, "REGISTER", "sip:a@example.com", NULL, NULL, ch,
                                        sizeof ch),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_RC(chordsip_node_authenticate(n, NULL, "sip:a@example.com", NULL, &v, ch, sizeof ch),
             CHORDSIP_ERR_NULL_POINTER);

    /* The asynchronous check: the same verdicts, through the callback. */
    static const char *const auths[3] = {NULL, "Digest username=\"a\", realm=", NULL};
    char fresh[700];
    CHECK_OK(chordsip_node_authenticate(n, "REGISTER", "sip:a@example.com", NULL, &v, ch, sizeof ch));
    const char *nonce = strstr(ch, "nonce=\"");
    CHECK(nonce != NULL);
    nonce += 7;
    const char *nonce_end = strchr(nonce, '"');
    CHECK(nonce_end != NULL);
    /* a well-formed answer on our own fresh nonce: the user's record is
       read (there is none: 403) */
    snprintf(fresh, sizeof fresh,
             "Digest username=\"a\", realm=\"example.com\", nonce=\"%.*s\", "
             "uri=\"sip:example.com\", response=\"00000000000000000000000000000000\"",
             (int)(nonce_end - nonce), nonce);
    const char *all[3] = {auths[0], auths[1], fresh};
    const uint32_t want[3] = {CHORDSIP_AUTH_CHALLENGE, CHORDSIP_AUTH_MALFORMED,
                              CHORDSIP_AUTH_FORBIDDEN};
    for (int i = 0; i < 3; i++) {
        auth_done = 0;
        CHECK_OK(chordsip_node_authenticate_async(n, "REGISTER", "sip:a@example.com", all[i],
                                                  on_auth_verdict, NULL));
        double end = now_s() + scaled(5);
        while (__atomic_load_n(&auth_done, __ATOMIC_ACQUIRE) == 0) {
            CHECK(now_s() < end);
            sleep_ms(2);
        }
        CHECK(auth_rc == CHORDSIP_OK && auth_verdict == want[i]);
        if (want[i] == CHORDSIP_AUTH_CHALLENGE)
            CHECK(strncmp(auth_challenge, "Digest realm=\"example.com\", nonce=\"", 35) == 0);
        else
            CHECK(auth_challenge[0] == 0);
    }
    CHECK_RC(chordsip_node_authenticate_async(n, "REGISTER", "not a uri", NULL, on_auth_verdict,
                                              NULL),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_node_authenticate_async(n, "REGISTER", "sip:a@example.com", NULL, NULL,
                                              NULL),
             CHORDSIP_ERR_NULL_POINTER);

    /* A client handle: no key yet, then a bad one, then a good one. */
    char addr[64];
    CHECK_OK(chordsip_node_addr(n, addr, sizeof addr));
    chordsip_client *cl = NULL;
    CHECK_OK(chordsip_client_new(addr, NULL, (const uint8_t *)TEST_CLIENT_KEY,
                                 strlen(TEST_CLIENT_KEY), 2000, &cl));
    CHECK_RC(chordsip_client_credential_ha1(cl, "a", "example.com", 1, ha1, sizeof ha1),
             CHORDSIP_ERR_UNAUTHORIZED);
    CHECK_RC(chordsip_client_set_credential_trust(cl, "12", "11"), CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_client_set_credential_trust(cl, SHARED_WRITER_KEY, ""),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK_RC(chordsip_client_set_credential_trust(NULL, SHARED_WRITER_KEY, ""),
             CHORDSIP_ERR_NULL_POINTER);
    CHECK_OK(chordsip_client_set_credential_trust(
        cl, SHARED_WRITER_KEY, "1111111111111111111111111111111111111111111111111111111111111111"));
    CHECK_RC(chordsip_client_credential_ha1(cl, "a", "example.com", 1, ha1, sizeof ha1),
             CHORDSIP_ERR_NOT_FOUND);
    chordsip_client_free(cl);
    chordsip_node_free(n);
    chordsip_config_free(cfg);
}

/* One-hop (hybrid) overlays: MEMBER_UP events carry what each member
 * announced (capacity, SIP address), the members list holds the whole
 * overlay, a node of the other routing mode is refused with MODE_MISMATCH,
 * and DNS publication without one-hop routing is refused at start. */
static struct {
    int ups, downs, weight_ok, sip_ok;
} member_events;

static void member_cb(const chordsip_event *e, void *ud) {
    (void)ud;
    if (e->kind == CHORDSIP_EVENT_MEMBER_UP) {
        __atomic_add_fetch(&member_events.ups, 1, __ATOMIC_SEQ_CST);
        if (e->has_peer && e->weight == 250)
            __atomic_add_fetch(&member_events.weight_ok, 1, __ATOMIC_SEQ_CST);
        if (strcmp(e->sip_address, "127.0.0.1:5099") == 0)
            __atomic_add_fetch(&member_events.sip_ok, 1, __ATOMIC_SEQ_CST);
    } else if (e->kind == CHORDSIP_EVENT_MEMBER_DOWN && e->has_peer) {
        __atomic_add_fetch(&member_events.downs, 1, __ATOMIC_SEQ_CST);
    }
}

static size_t members_of(chordsip_node *n) {
    chordsip_peers *list = NULL;
    CHECK_OK(chordsip_node_neighbours(n, CHORDSIP_MEMBERS, &list));
    size_t len = chordsip_peers_len(list);
    chordsip_peers_free(list);
    return len;
}

static void test_one_hop(void) {
    char err[256];
    chordsip_config *cfg = fast_config();
    CHECK_RC(chordsip_config_set(cfg, "routing", "two-hop", err, sizeof err),
             CHORDSIP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "one-hop") != NULL);
    CHECK_OK(chordsip_config_set(cfg, "routing", "one-hop", err, sizeof err));
    CHECK_OK(chordsip_config_set(cfg, "membership_sync_ms", "300", err, sizeof err));
    CHECK_OK(chordsip_config_set_event_callback(cfg, member_cb, NULL));
    chordsip_node *n[3];
    n[0] = node_from(cfg);
    join_via(n[0], NULL);
    chordsip_config *other = fast_config();
    CHECK_OK(chordsip_config_set(other, "routing", "one-hop", err, sizeof err));
    CHECK_OK(chordsip_config_set(other, "capacity", "250", err, sizeof err));
    CHECK_OK(chordsip_config_set(other, "sip_address", "127.0.0.1:5099", err, sizeof err));
    for (int i = 1; i < 3; i++) {
        n[i] = node_from(other);
        join_via(n[i], n[0]);
    }
    double deadline = now_s() + scaled(10);
    while (now_s() < deadline &&
           (members_of(n[0]) != 3 || members_of(n[1]) != 3 || members_of(n[2]) != 3 ||
            __atomic_load_n(&member_events.sip_ok, __ATOMIC_SEQ_CST) < 2))
        sleep_ms(20);
    CHECK(members_of(n[0]) == 3 && members_of(n[1]) == 3 && members_of(n[2]) == 3);
    CHECK(member_events.weight_ok >= 2 && member_events.sip_ok >= 2);
    note("one-hop: %d MEMBER_UP events at the first node", member_events.ups);

    /* A multi-hop node is refused with a code of its own. */
    chordsip_config *multi = fast_config();
    chordsip_node *m = node_from(multi);
    char addr[64];
    CHECK_OK(chordsip_node_addr(n[0], addr, sizeof addr));
    CHECK_RC(chordsip_node_join(m, addr), CHORDSIP_ERR_MODE_MISMATCH);
    CHECK(strstr(chordsip_result_str(CHORDSIP_ERR_MODE_MISMATCH), "another mode") != NULL);
    chordsip_node_free(m);
    CHECK(members_of(n[0]) == 3);

    /* A member leaves: MEMBER_DOWN reaches the first node. */
    CHECK_OK(chordsip_node_leave(n[2], 2000));
    chordsip_node_free(n[2]);
    deadline = now_s() + scaled(10);
    while (now_s() < deadline && (__atomic_load_n(&member_events.downs, __ATOMIC_SEQ_CST) < 1 ||
                                  members_of(n[0]) != 2))
        sleep_ms(20);
    CHECK(member_events.downs >= 1 && members_of(n[0]) == 2);

    /* DNS publication needs one-hop routing: refused when the node is made. */
    CHECK_OK(chordsip_config_set(multi, "dns_server", "127.0.0.1:5353", err, sizeof err));
    CHECK_OK(chordsip_config_set(multi, "dns_zone", "example.test", err, sizeof err));
    chordsip_node *bad = NULL;
    int rc = chordsip_node_new(multi, &bad, err, sizeof err);
    if (rc == CHORDSIP_OK) {
        rc = chordsip_node_start(bad);
        chordsip_node_free(bad);
    }
    CHECK(rc == CHORDSIP_ERR_INVALID_ARGUMENT);

    for (int i = 1; i >= 0; i--)
        chordsip_node_free(n[i]);
    chordsip_config_free(multi);
    chordsip_config_free(other);
    chordsip_config_free(cfg);
}

int main(void) {
    test_begin("test_api", 60);
    memset(long_key, 'k', sizeof long_key - 1);
    memset(max_key, 'm', sizeof max_key - 1);
    memset(long_writer, 'w', sizeof long_writer - 1);
    big_data = calloc(1, BIG_DATA_LEN);
    CHECK(big_data != NULL);
    CHECK(strlen(long_key) == CHORDSIP_MAX_KEY_LEN + 1);
    CHECK(strlen(max_key) == CHORDSIP_MAX_KEY_LEN);
    CHECK(strlen(long_writer) == CHORDSIP_MAX_WRITER_LEN + 1);

    test_version_and_results();
    test_sip_answers();
    test_key_id();
    test_config();
    test_unstarted();
    test_lifecycle();
    test_join_async_ring_and_config();
    test_auth();
    test_one_hop();
    free(big_data);
    test_pass("test_api");
    return 0;
}
