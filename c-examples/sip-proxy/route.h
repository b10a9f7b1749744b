/*
 * route: where the sip-proxy sends a request (RFC 3261 §16.4-16.6), as
 * string logic over a parsed message (sipmsg.h), so that it can be fuzzed
 * without a proxy: the served domains, the Route set (entries naming this
 * proxy removed, a strict router's Request-URI restored), whether the
 * Request-URI is looked up or forwarded as it is, and whether the request
 * is record-routed.
 */
#ifndef ROUTE_H
#define ROUTE_H

#include "sipmsg.h"

#define MAX_DOMAINS 32

/* The domains this proxy serves (--domain). None given: every host name is
 * served, and no address (IP literal, "localhost"): without DNS the proxy
 * could not forward to a name anyway, and an address is a UA's contact. */
struct domains {
    size_t n;
    str_t name[MAX_DOMAINS]; /* views into the command line */
};

/* Adds "d1,d2,..." (host names or addresses, no port). -1, with a static
 * description in *why, if one is malformed or there are too many. */
int domains_add(struct domains *d, const char *csv, const char **why);

/* Is `host` (as in a URI: IPv6 in brackets) an IP literal or "localhost"? */
int host_is_address(str_t host);

/* Is `host` one of our domains? */
int domain_served(const struct domains *d, str_t host);

/* 1 when the SIP URI's host and port are this proxy's address (the user
 * part is not looked at); supplied by the proxy. */
typedef int (*names_self_fn)(const void *ctx, str_t uri);

/* Every Route element of a message, across its Route headers, in order. */
struct route_iter {
    const struct sip_msg *m;
    size_t hdr;  /* the header being walked, or m->nhdr when none is */
    str_t rest;  /* its elements not yet returned */
};
void route_iter_init(struct route_iter *it, const struct sip_msg *m);
int route_iter_next(struct route_iter *it, str_t *elem); /* 0 when done */

enum route_target {
    ROUTE_TO_PROXY, /* the Request-URI is this proxy (no user part) and no Route is left */
    ROUTE_LOOKUP,   /* a served domain, or not a SIP URI: the location service decides */
    ROUTE_AS_IS,    /* anything else (a contact, a foreign domain): forwarded as it is (§16.5) */
};

struct route_plan {
    str_t ruri;        /* the Request-URI after §16.4 (a strict router's last Route restored) */
    size_t nroutes;    /* Route elements received */
    size_t drop_first; /* how many leading ones name this proxy: removed (loose routing) */
    int drop_last;     /* 1: the last one became the Request-URI (strict router upstream) */
    str_t next_route;  /* the first Route element left (p NULL when none): the next hop */
    str_t flow;        /* the user part of a removed Route element naming us (p NULL when
                        * none): an RFC 5626 flow token of ours, if it checks out */
    enum route_target target;
    int record_route;  /* a dialog-creating request: we stay on its path (§16.6 step 4) */
};

void route_plan(struct route_plan *p, const struct sip_msg *m, const struct domains *d,
                names_self_fn names_self, const void *ctx);

/* Does the forwarded request keep Route element number `i` (0-based, in
 * route_iter order)? */
int route_keeps(const struct route_plan *p, size_t i);

#endif
