/*
 * route: the sip-proxy's routing decisions (see route.h). Every loop is
 * bounded by the views it walks or by MAX_DOMAINS.
 */
#include "route.h"

#include <arpa/inet.h>
#include <string.h>

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static int str_ieq_str(str_t a, str_t b) {
    if (a.n != b.n)
        return 0;
    for (size_t i = 0; i < a.n; i++)
        if (lower((unsigned char)a.p[i]) != lower((unsigned char)b.p[i]))
            return 0;
    return 1;
}

/* ---- domains ------------------------------------------------------------------ */

int host_is_address(str_t host) {
    if (host.n >= 2 && host.p[0] == '[' && host.p[host.n - 1] == ']')
        return 1; /* an IPv6 reference (sip_split_hostport checked its characters) */
    char h[64];
    if (host.n == 0 || host.n >= sizeof h)
        return 0;
    memcpy(h, host.p, host.n);
    h[host.n] = '\0';
    struct in_addr a4;
    struct in6_addr a6;
    return inet_pton(AF_INET, h, &a4) == 1 || inet_pton(AF_INET6, h, &a6) == 1 ||
           str_ieq(host, "localhost");
}

int domains_add(struct domains *d, const char *csv, const char **why) {
    str_t rest = {csv, strlen(csv)}, elem, host;
    int port, any = 0;
    while (sip_next_elem(&rest, &elem)) {
        if (sip_split_hostport(elem, &host, &port) != 0 || host.n != elem.n) {
            *why = "not a host name or address (no port, no spaces)";
            return -1;
        }
        if (d->n == MAX_DOMAINS) {
            *why = "too many domains";
            return -1;
        }
        d->name[d->n++] = host;
        any = 1;
    }
    if (!any) {
        *why = "empty";
        return -1;
    }
    return 0;
}

int domain_served(const struct domains *d, str_t host) {
    if (d->n == 0)
        return host.n > 0 && !host_is_address(host);
    for (size_t i = 0; i < d->n; i++)
        if (str_ieq_str(d->name[i], host))
            return 1;
    return 0;
}

/* ---- the Route set ---------------------------------------------------------------- */

void route_iter_init(struct route_iter *it, const struct sip_msg *m) {
    it->m = m;
    it->hdr = m->nhdr;
    it->rest.p = NULL;
    it->rest.n = 0;
    for (size_t i = 0; i < m->nhdr && it->hdr == m->nhdr; i++)
        if (m->hdr[i].id == H_ROUTE) {
            it->hdr = i;
            it->rest = m->hdr[i].value;
        }
}

int route_iter_next(struct route_iter *it, str_t *elem) {
    const struct sip_msg *m = it->m;
    while (it->hdr < m->nhdr) {
        if (sip_next_elem(&it->rest, elem))
            return 1;
        size_t i = it->hdr + 1;
        while (i < m->nhdr && m->hdr[i].id != H_ROUTE)
            i++;
        it->hdr = i;
        if (i < m->nhdr)
            it->rest = m->hdr[i].value;
    }
    return 0;
}

int route_keeps(const struct route_plan *p, size_t i) {
    return i >= p->drop_first && !(p->drop_last && i + 1 == p->nroutes);
}

/* A Route element (a name-addr) naming this proxy; *user gets its URI's
 * user part (empty when none). */
static int route_names_self(str_t elem, names_self_fn names_self, const void *ctx, str_t *user) {
    str_t uri, params, host;
    int port;
    *user = (str_t){NULL, 0};
    if (sip_name_addr(elem, &uri, &params) != 0 || !names_self(ctx, uri))
        return 0;
    if (sip_uri_hostport(uri, user, &host, &port) != 0)
        *user = (str_t){NULL, 0};
    return 1;
}

static int method_is(str_t method, const char *name) {
    return method.n == strlen(name) && memcmp(method.p, name, method.n) == 0;
}

static int to_has_tag(const struct sip_msg *m) {
    const struct sip_header *to = sip_find(m, H_TO);
    str_t uri, params, tag;
    return to != NULL && sip_name_addr(to->value, &uri, &params) == 0 &&
           sip_param(params, "tag", &tag) && tag.p != NULL && tag.n > 0;
}

void route_plan(struct route_plan *p, const struct sip_msg *m, const struct domains *d,
                names_self_fn names_self, const void *ctx) {
    memset(p, 0, sizeof *p);
    p->ruri = m->ruri;
    struct route_iter it;
    str_t elem, last = {NULL, 0}, user, host;
    int port;
    route_iter_init(&it, m);
    while (route_iter_next(&it, &elem)) {
        p->nroutes++;
        last = elem;
    }
    /* §16.4: a Request-URI that is our Record-Route (no user part, our
     * address) with a Route set comes from a strict router: the real
     * Request-URI is the last Route value, which is removed. */
    if (p->nroutes > 0 && sip_uri_hostport(m->ruri, &user, &host, &port) == 0 && user.n == 0 &&
        names_self(ctx, m->ruri)) {
        str_t uri, params;
        if (sip_name_addr(last, &uri, &params) == 0) {
            p->ruri = uri;
            p->drop_last = 1;
        }
    }
    /* §16.4: the first Route values naming us are removed (all of them: we
     * may have been record-routed twice); the one after them is the next hop. */
    size_t usable = p->nroutes - (size_t)p->drop_last;
    route_iter_init(&it, m);
    while (p->drop_first < usable && route_iter_next(&it, &elem)) {
        str_t self_user;
        if (!route_names_self(elem, names_self, ctx, &self_user)) {
            p->next_route = elem;
            break;
        }
        if (self_user.n > 0)
            p->flow = self_user; /* the last one wins: the one nearest the UA */
        p->drop_first++;
    }
    /* §16.5: a served domain is looked up; anything else is the only target. */
    if (sip_uri_hostport(p->ruri, &user, &host, &port) != 0)
        p->target = ROUTE_LOOKUP; /* not a SIP URI: the library answers (tel: looked up, 416...) */
    else if (user.n == 0 && p->next_route.p == NULL && names_self(ctx, p->ruri))
        p->target = ROUTE_TO_PROXY;
    else if (domain_served(d, host))
        p->target = ROUTE_LOOKUP;
    else
        p->target = ROUTE_AS_IS;
    /* §16.6 step 4 / §12.1: record-route what creates a dialog, so that its
     * in-dialog requests come back through us (RFC 6665 SUBSCRIBE/NOTIFY,
     * RFC 3515 REFER); with a To-tag the route set exists already. */
    p->record_route = (method_is(m->method, "INVITE") || method_is(m->method, "SUBSCRIBE") ||
                       method_is(m->method, "REFER") || method_is(m->method, "NOTIFY")) &&
                      !to_has_tag(m);
}
