/*
 * fuzz_sipmsg: random mutations of SIP messages through every parser entry
 * point of c-examples/sip-proxy/sipmsg.c and the routing decisions of
 * route.c. Each input sits in an exact-size heap block, so AddressSanitizer
 * catches any read past the datagram.
 * Built with -fsanitize=address,undefined and run by scripts/sip-tests.sh:
 *
 *   fuzz_sipmsg [iterations [seed]]
 */
#include "route.h"
#include "sipmsg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const seeds[] = {
    "INVITE sip:a@b SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 1.2.3.4:5;branch=z9hG4bKx;rport;received=1.1.1.1\r\n"
    "v: SIP / 2.0 / UDP [::1]:5060 ;branch=y, SIP/2.0/UDP h\r\n"
    "From: \"A, \\\"b\" <sip:a@b>;tag=1\r\n"
    "To: sip:c@d;tag=2\r\n"
    "Contact: <sip:x@1.2.3.4:5>;q=0.5;expires=10;+sip.instance=\"<urn:a>\";reg-id=1, *, sip:y@z\r\n"
    "l: 3\r\n\r\nabc",
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 1.2.3.4:5;branch=z9hG4bKcspx, SIP/2.0/UDP 5.6.7.8;rport=9;received=9.9.9.9\r\n"
    "CSeq: 1 INVITE\r\n folded\r\n\r\n",
    "BYE sip:1.2.3.4:5;lr SIP/2.0\r\n"
    "Route: <sip:1.2.3.4:5;lr>, \"x\" <sip:[::1]:7;lr>;p=1\r\n"
    "Route: <sip:u@example.com>,,<sip:1.2.3.4:5>\r\n"
    "Record-Route: <sip:9.9.9.9;lr>\r\n"
    "t: <sip:c@d>;tag=2\r\n\r\n",
    "SUBSCRIBE sip:bob@Example.COM SIP/2.0\r\n"
    "Route: <sip:1.2.3.4:5;lr>\r\nTo: <sip:bob@example.com>\r\n\r\n",
};
#define NSEEDS (sizeof seeds / sizeof seeds[0])

/* "This proxy" for route.c: 1.2.3.4:5 (or [::1]:7), as a string compare. */
static int names_self(const void *ctx, str_t uri) {
    (void)ctx;
    str_t host;
    int port;
    if (sip_uri_hostport(uri, NULL, &host, &port) != 0)
        return 0;
    return (str_ieq(host, "1.2.3.4") && port == 5) || (str_ieq(host, "[::1]") && port == 7);
}

static unsigned long long state = 88172645463325252ULL; /* xorshift64 */

static unsigned rnd(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (unsigned)state;
}

/* Every helper the proxy applies to header values. */
static void walk(const struct sip_msg *m) {
    for (size_t i = 0; i < m->nhdr; i++) {
        str_t rest = m->hdr[i].value, e, u, p, name, v, host, user;
        int port;
        char buf[64];
        uint64_t x;
        str_cstr(buf, sizeof buf, m->hdr[i].value);
        str_to_u64(m->hdr[i].value, 1000, &x);
        while (sip_next_elem(&rest, &e)) {
            struct sip_via via;
            sip_parse_via(e, &via);
            if (sip_name_addr(e, &u, &p) == 0) {
                sip_uri_hostport(u, &user, &host, &port);
                sip_param(p, "tag", &v);
                str_t params = p;
                while (sip_next_param(&params, &name, &v))
                    sip_unquote(v);
            }
        }
    }
    if (m->ruri.p != NULL) {
        str_t user, host;
        int port;
        sip_uri_hostport(m->ruri, &user, &host, &port);
    }
    if (m->is_request && m->method.p != NULL && m->ruri.p != NULL) {
        /* both kinds of domain setting; every Route element kept or not */
        static struct domains none, listed;
        if (listed.n == 0) {
            const char *why;
            if (domains_add(&listed, "example.com,1.2.3.4", &why) != 0)
                abort();
        }
        for (int k = 0; k < 2; k++) {
            struct route_plan p;
            route_plan(&p, m, k ? &listed : &none, names_self, NULL);
            size_t n = 0, kept = 0;
            struct route_iter it;
            str_t e;
            route_iter_init(&it, m);
            while (route_iter_next(&it, &e))
                kept += (size_t)route_keeps(&p, n++);
            if (n != p.nroutes || p.drop_first > n || kept + p.drop_first + (size_t)p.drop_last != n)
                abort(); /* the plan must describe the Route set it was made from */
            if (p.ruri.p == NULL || (p.next_route.p == NULL) != (kept == 0 || p.drop_first == n))
                abort();
        }
    }
}

int main(int argc, char **argv) {
    long iterations = argc > 1 ? atol(argv[1]) : 1000000;
    if (argc > 2)
        state ^= strtoull(argv[2], NULL, 10) * 0x9E3779B97F4A7C15ULL;
    if (state == 0)
        state = 1;
    static struct sip_msg m;
    static const char alphabet[] = " \r\n\t:;,<>\"@=[]\\/0123456789abcSIPzZ\x00\xff.";
    const size_t nalpha = sizeof alphabet - 1;
    for (long it = 0; it < iterations; it++) {
        const char *seed = seeds[rnd() % NSEEDS];
        size_t cap = strlen(seed) + 64, len = strlen(seed);
        char *b = malloc(cap);
        if (b == NULL)
            return 1;
        memcpy(b, seed, len);
        for (int k = 1 + (int)(rnd() % 10); k > 0; k--) {
            size_t pos = len ? rnd() % len : 0, d;
            switch (rnd() % 4) {
            case 0: /* replace a byte */
                if (len)
                    b[pos] = alphabet[rnd() % nalpha];
                break;
            case 1: /* insert one */
                if (len + 1 < cap) {
                    memmove(b + pos + 1, b + pos, len - pos);
                    b[pos] = alphabet[rnd() % nalpha];
                    len++;
                }
                break;
            case 2: /* delete a few */
                d = 1 + rnd() % 10;
                if (pos + d > len)
                    d = len - pos;
                memmove(b + pos, b + pos + d, len - pos - d);
                len -= d;
                break;
            default: /* truncate */
                len = pos;
                break;
            }
        }
        char *exact = malloc(len ? len : 1);
        if (exact == NULL)
            return 1;
        memcpy(exact, b, len);
        free(b);
        const char *why;
        sip_parse(&m, exact, len, &why);
        walk(&m);
        free(exact);
    }
    printf("%ld mutated messages parsed\n", iterations);
    return 0;
}
