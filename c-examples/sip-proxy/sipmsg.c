/*
 * sipmsg: bounded SIP parsing for the sip-proxy example (see sipmsg.h).
 * Every loop is bounded by the length of the view it walks.
 */
#include "sipmsg.h"

#include <string.h>

/* ---- string helpers ------------------------------------------------------ */

static int is_ws(char c) { return c == ' ' || c == '\t'; }
static int is_lws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int is_token_char(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("-.!%*_+`'~", c) != NULL;
}

static str_t mkstr(const char *p, size_t n) {
    str_t s = {p, n};
    return s;
}

str_t str_trim(str_t s) {
    while (s.n > 0 && is_lws(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n > 0 && is_lws(s.p[s.n - 1]))
        s.n--;
    return s;
}

int str_ieq(str_t s, const char *lit) {
    size_t n = strlen(lit);
    if (s.n != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s.p[i]) != lower((unsigned char)lit[i]))
            return 0;
    return 1;
}

int str_iprefix(str_t s, const char *lit) {
    size_t n = strlen(lit);
    if (s.n < n)
        return 0;
    return str_ieq(mkstr(s.p, n), lit);
}

int str_eq(str_t a, str_t b) { return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0); }

int str_cstr(char *dst, size_t cap, str_t s) {
    size_t o = 0;
    if (cap == 0)
        return -1;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '\r' || c == '\n') {
            /* a folded line: the break and the whitespace around it become one space */
            while (o > 0 && is_ws(dst[o - 1]))
                o--;
            while (i + 1 < s.n && is_lws(s.p[i + 1]))
                i++;
            c = ' ';
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return -1;
        }
        if (o + 1 >= cap)
            return -1;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return 0;
}

int str_to_u64(str_t s, uint64_t max, uint64_t *out) {
    s = str_trim(s);
    if (s.n == 0 || s.n > 20)
        return -1;
    uint64_t v = 0;
    int clamped = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (!is_digit(s.p[i]))
            return -1;
        uint64_t d = (uint64_t)(s.p[i] - '0');
        if (!clamped && (v > max / 10 || (v == max / 10 && d > max % 10)))
            clamped = 1; /* would exceed max: no overflow is ever computed */
        if (!clamped)
            v = v * 10 + d;
    }
    *out = clamped ? max : v;
    return 0;
}

uint64_t fnv64(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ---- message parsing ----------------------------------------------------- */

static const struct {
    const char *name;
    char compact;
    enum sip_hdr_id id;
} known_headers[] = {
    {"via", 'v', H_VIA},
    {"from", 'f', H_FROM},
    {"to", 't', H_TO},
    {"call-id", 'i', H_CALL_ID},
    {"cseq", 0, H_CSEQ},
    {"contact", 'm', H_CONTACT},
    {"content-length", 'l', H_CONTENT_LENGTH},
    {"max-forwards", 0, H_MAX_FORWARDS},
    {"expires", 0, H_EXPIRES},
    {"route", 0, H_ROUTE},
    {"record-route", 0, H_RECORD_ROUTE},
    {"path", 0, H_PATH},
    {"require", 0, H_REQUIRE},
    {"proxy-require", 0, H_PROXY_REQUIRE},
    {"supported", 'k', H_SUPPORTED},
    {"content-type", 'c', H_CONTENT_TYPE},
};

static enum sip_hdr_id header_id(str_t name) {
    for (size_t i = 0; i < sizeof known_headers / sizeof known_headers[0]; i++) {
        if (name.n == 1 && known_headers[i].compact != 0 &&
            lower((unsigned char)name.p[0]) == known_headers[i].compact)
            return known_headers[i].id;
        if (str_ieq(name, known_headers[i].name))
            return known_headers[i].id;
    }
    return H_OTHER;
}

/* Finds the line at `pos`: its content [pos, *eol) without CR/LF and the
 * start of the next line in *next. 0 when the buffer ends without a '\n'. */
static int next_line(const char *buf, size_t len, size_t pos, size_t *eol, size_t *next) {
    const char *nl = memchr(buf + pos, '\n', len - pos);
    if (nl == NULL) {
        *eol = len;
        *next = len;
        return 0;
    }
    size_t e = (size_t)(nl - buf);
    *next = e + 1;
    if (e > pos && buf[e - 1] == '\r')
        e--;
    *eol = e;
    return 1;
}

static enum sip_parse_rc parse_start_line(struct sip_msg *m, str_t line) {
    if (str_iprefix(line, "SIP/2.0 ")) {
        /* SIP/2.0 SP 3DIGIT [SP reason] */
        if (line.n < 11 || !is_digit(line.p[8]) || !is_digit(line.p[9]) || !is_digit(line.p[10]))
            return SIP_PARSE_BAD_START;
        m->status = (line.p[8] - '0') * 100 + (line.p[9] - '0') * 10 + (line.p[10] - '0');
        if (m->status < 100 || m->status > 699)
            return SIP_PARSE_BAD_START;
        if (line.n > 11 && line.p[11] != ' ')
            return SIP_PARSE_BAD_START;
        m->reason = line.n > 12 ? mkstr(line.p + 12, line.n - 12) : mkstr(line.p + line.n, 0);
        m->is_request = 0;
        return SIP_PARSE_OK;
    }
    /* Method SP Request-URI SP SIP/2.0 */
    size_t i = 0;
    while (i < line.n && is_token_char((unsigned char)line.p[i]))
        i++;
    if (i == 0 || i >= line.n || line.p[i] != ' ')
        return SIP_PARSE_BAD_START;
    m->method = mkstr(line.p, i);
    size_t u = ++i;
    while (i < line.n && line.p[i] != ' ') {
        if ((unsigned char)line.p[i] < 0x21 || line.p[i] == 0x7f)
            return SIP_PARSE_BAD_START;
        i++;
    }
    if (i == u || i >= line.n)
        return SIP_PARSE_BAD_START;
    m->ruri = mkstr(line.p + u, i - u);
    if (!str_ieq(mkstr(line.p + i + 1, line.n - i - 1), "SIP/2.0"))
        return SIP_PARSE_BAD_START;
    m->is_request = 1;
    return SIP_PARSE_OK;
}

enum sip_parse_rc sip_parse(struct sip_msg *m, const char *buf, size_t len, const char **why) {
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    memset(m, 0, offsetof(struct sip_msg, hdr));
    m->nhdr = 0;
    m->head_start = m->head_end = 0;
    m->body = mkstr(buf + len, 0);
    *why = "ok";

    /* Tolerate leading blank lines (RFC 3261 §7.5 keep-alive CRLFs). */
    size_t pos = 0, eol, next;
    while (pos < len && (buf[pos] == '\r' || buf[pos] == '\n'))
        pos++;
    if (pos >= len) {
        *why = "empty";
        return SIP_PARSE_BAD_START;
    }
    if (!next_line(buf, len, pos, &eol, &next) || eol - pos > SIP_MAX_LINE ||
        memchr(buf + pos, '\0', eol - pos) != NULL) {
        *why = "bad start line";
        return SIP_PARSE_BAD_START;
    }
    if (parse_start_line(m, mkstr(buf + pos, eol - pos)) != SIP_PARSE_OK) {
        *why = "bad start line";
        return SIP_PARSE_BAD_START;
    }
    pos = next;
    m->head_start = pos;

    /* value_end[i]: end of header i's last (folded) line, before its CR/LF */
    size_t value_start[SIP_MAX_HEADERS], value_end[SIP_MAX_HEADERS];
    for (;;) {
        if (pos >= len) {
            *why = "no blank line after the headers";
            goto bad;
        }
        int complete = next_line(buf, len, pos, &eol, &next);
        if (eol - pos > SIP_MAX_LINE) {
            *why = "header line too long";
            goto bad;
        }
        if (memchr(buf + pos, '\0', eol - pos) != NULL) {
            *why = "NUL byte in a header";
            goto bad;
        }
        if (eol == pos) { /* the blank line */
            if (!complete) {
                *why = "no blank line after the headers";
                goto bad;
            }
            m->head_end = pos;
            pos = next;
            break;
        }
        if (!complete) {
            *why = "no blank line after the headers";
            goto bad;
        }
        if (is_ws(buf[pos])) { /* continuation of the previous header */
            if (m->nhdr == 0) {
                *why = "continuation line without a header";
                goto bad;
            }
            struct sip_header *h = &m->hdr[m->nhdr - 1];
            if (next - (size_t)(h->line.p - buf) > SIP_MAX_LINE) {
                *why = "header too long";
                goto bad;
            }
            value_end[m->nhdr - 1] = eol;
            h->line.n = next - (size_t)(h->line.p - buf);
            pos = next;
            continue;
        }
        if (m->nhdr >= SIP_MAX_HEADERS) {
            *why = "too many headers";
            goto bad;
        }
        size_t i = pos;
        while (i < eol && is_token_char((unsigned char)buf[i]))
            i++;
        size_t name_end = i;
        while (i < eol && is_ws(buf[i]))
            i++;
        if (name_end == pos || i >= eol || buf[i] != ':') {
            *why = "malformed header line";
            goto bad;
        }
        struct sip_header *h = &m->hdr[m->nhdr];
        h->name = mkstr(buf + pos, name_end - pos);
        h->id = header_id(h->name);
        h->line = mkstr(buf + pos, next - pos);
        value_start[m->nhdr] = i + 1;
        value_end[m->nhdr] = eol;
        m->nhdr++;
        pos = next;
    }
    for (size_t k = 0; k < m->nhdr; k++)
        m->hdr[k].value = str_trim(mkstr(buf + value_start[k], value_end[k] - value_start[k]));

    /* The body: up to Content-Length when given (RFC 3261 §18.3). */
    m->body = mkstr(buf + pos, len - pos);
    const struct sip_header *cl = sip_find(m, H_CONTENT_LENGTH);
    if (cl != NULL) {
        uint64_t n;
        if (str_to_u64(cl->value, UINT32_MAX, &n) != 0) {
            *why = "bad Content-Length";
            return SIP_PARSE_BAD_HEADERS;
        }
        if (n > m->body.n) {
            *why = "Content-Length larger than the datagram";
            return SIP_PARSE_BAD_HEADERS;
        }
        m->body.n = (size_t)n;
    }
    return SIP_PARSE_OK;

bad:
    /* keep the headers parsed so far (enough to answer 400), values trimmed */
    for (size_t k = 0; k < m->nhdr; k++)
        m->hdr[k].value = str_trim(mkstr(buf + value_start[k], value_end[k] - value_start[k]));
    return SIP_PARSE_BAD_HEADERS;
}

const struct sip_header *sip_find(const struct sip_msg *m, enum sip_hdr_id id) {
    for (size_t i = 0; i < m->nhdr; i++)
        if (m->hdr[i].id == id)
            return &m->hdr[i];
    return NULL;
}

/* ---- header value helpers ------------------------------------------------ */

/* Index just past a quoted string starting at s.p[i] == '"' (or s.n). */
static size_t skip_quoted(str_t s, size_t i) {
    for (i++; i < s.n; i++) {
        if (s.p[i] == '\\')
            i++;
        else if (s.p[i] == '"')
            return i + 1;
    }
    return s.n;
}

int sip_next_elem(str_t *rest, str_t *elem) {
    for (;;) {
        str_t s = *rest;
        if (s.n == 0)
            return 0;
        size_t i = 0;
        int angle = 0;
        while (i < s.n) {
            char c = s.p[i];
            if (c == '"') {
                i = skip_quoted(s, i);
                continue;
            }
            if (c == '<')
                angle = 1;
            else if (c == '>')
                angle = 0;
            else if (c == ',' && !angle)
                break;
            i++;
        }
        *elem = str_trim(mkstr(s.p, i));
        *rest = i < s.n ? mkstr(s.p + i + 1, s.n - i - 1) : mkstr(s.p + s.n, 0);
        if (elem->n > 0)
            return 1;
    }
}

int sip_next_param(str_t *rest, str_t *name, str_t *value) {
    str_t s = *rest;
    for (;;) {
        while (s.n > 0 && (is_lws(s.p[0]) || s.p[0] == ';')) {
            s.p++;
            s.n--;
        }
        if (s.n == 0) {
            *rest = s;
            return 0;
        }
        size_t i = 0, eq = s.n;
        while (i < s.n && s.p[i] != ';') {
            if (s.p[i] == '"') {
                i = skip_quoted(s, i);
                continue;
            }
            if (s.p[i] == '=' && eq == s.n)
                eq = i;
            i++;
        }
        str_t seg = mkstr(s.p, i);
        *rest = mkstr(s.p + i, s.n - i);
        if (eq < i) {
            *name = str_trim(mkstr(seg.p, eq));
            *value = str_trim(mkstr(seg.p + eq + 1, i - eq - 1));
            if (value->n == 0)
                value->p = seg.p + i; /* present but empty: non-NULL */
        } else {
            *name = str_trim(seg);
            value->p = NULL;
            value->n = 0;
        }
        if (name->n > 0)
            return 1;
        s = *rest;
    }
}

int sip_name_addr(str_t elem, str_t *uri, str_t *params) {
    str_t s = str_trim(elem);
    size_t i = 0;
    /* a '<' outside quotes means name-addr */
    size_t lt = s.n;
    while (i < s.n) {
        if (s.p[i] == '"') { /* display name; unterminated: no '<' follows, refused below */
            i = skip_quoted(s, i);
            continue;
        }
        if (s.p[i] == '<') {
            lt = i;
            break;
        }
        if (s.p[i] == ';')
            break; /* addr-spec: parameters start */
        i++;
    }
    if (lt < s.n) {
        const char *gt = memchr(s.p + lt + 1, '>', s.n - lt - 1);
        if (gt == NULL)
            return -1;
        *uri = str_trim(mkstr(s.p + lt + 1, (size_t)(gt - s.p) - lt - 1));
        str_t after = str_trim(mkstr(gt + 1, s.n - (size_t)(gt + 1 - s.p)));
        if (after.n > 0 && after.p[0] != ';')
            return -1;
        *params = after;
    } else {
        /* addr-spec: the URI ends at the first ';' (header parameters follow) */
        const char *semi = memchr(s.p, ';', s.n);
        size_t ulen = semi ? (size_t)(semi - s.p) : s.n;
        *uri = str_trim(mkstr(s.p, ulen));
        *params = mkstr(s.p + ulen, s.n - ulen);
        if (memchr(uri->p, '"', uri->n) != NULL || memchr(uri->p, '>', uri->n) != NULL)
            return -1;
    }
    return uri->n > 0 ? 0 : -1;
}

int sip_param(str_t params, const char *name, str_t *value) {
    str_t n, v;
    while (sip_next_param(&params, &n, &v))
        if (str_ieq(n, name)) {
            *value = v;
            return 1;
        }
    return 0;
}

str_t sip_unquote(str_t s) {
    s = str_trim(s);
    if (s.n >= 2 && s.p[0] == '"' && s.p[s.n - 1] == '"')
        return mkstr(s.p + 1, s.n - 2);
    return s;
}

int sip_split_hostport(str_t hp, str_t *host, int *port) {
    hp = str_trim(hp);
    size_t hend;
    if (hp.n == 0)
        return -1;
    if (hp.p[0] == '[') {
        const char *rb = memchr(hp.p, ']', hp.n);
        if (rb == NULL)
            return -1;
        hend = (size_t)(rb - hp.p) + 1;
        for (size_t i = 1; i + 1 < hend; i++) {
            char c = hp.p[i];
            if (!(is_digit(c) || (lower((unsigned char)c) >= 'a' && lower((unsigned char)c) <= 'f') ||
                  c == ':' || c == '.'))
                return -1;
        }
        if (hend < 3)
            return -1;
    } else {
        hend = 0;
        while (hend < hp.n && hp.p[hend] != ':' && !is_ws(hp.p[hend])) {
            char c = hp.p[hend];
            if (!(is_digit(c) || (lower((unsigned char)c) >= 'a' && lower((unsigned char)c) <= 'z') ||
                  c == '-' || c == '.' || c == '_'))
                return -1;
            hend++;
        }
        if (hend == 0)
            return -1;
    }
    *host = mkstr(hp.p, hend);
    str_t rest = str_trim(mkstr(hp.p + hend, hp.n - hend));
    *port = 0;
    if (rest.n == 0)
        return 0;
    if (rest.p[0] != ':')
        return -1;
    uint64_t p;
    if (str_to_u64(mkstr(rest.p + 1, rest.n - 1), 100000, &p) != 0 || p == 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

int sip_uri_hostport(str_t uri, str_t *user, str_t *host, int *port) {
    uri = str_trim(uri);
    size_t skip;
    if (str_iprefix(uri, "sip:"))
        skip = 4;
    else if (str_iprefix(uri, "sips:"))
        skip = 5;
    else
        return -1;
    str_t r = mkstr(uri.p + skip, uri.n - skip);
    const char *at = memchr(r.p, '@', r.n);
    if (user != NULL)
        *user = at ? mkstr(r.p, (size_t)(at - r.p)) : mkstr(r.p, 0);
    if (at != NULL)
        r = mkstr(at + 1, r.n - (size_t)(at + 1 - r.p));
    size_t e = 0;
    int in_brackets = 0;
    while (e < r.n) {
        if (r.p[e] == '[')
            in_brackets = 1;
        else if (r.p[e] == ']')
            in_brackets = 0;
        else if (!in_brackets && (r.p[e] == ';' || r.p[e] == '?'))
            break;
        e++;
    }
    return sip_split_hostport(mkstr(r.p, e), host, port);
}

int sip_parse_via(str_t elem, struct sip_via *v) {
    memset(v, 0, sizeof *v);
    str_t s = str_trim(elem);
    size_t i = 0;
    /* sent-protocol: "SIP" SLASH "2.0" SLASH transport, LWS allowed around the slashes */
    const char *parts[2] = {"SIP", "2.0"};
    for (int k = 0; k < 2; k++) {
        size_t n = strlen(parts[k]);
        if (s.n - i < n || !str_ieq(mkstr(s.p + i, n), parts[k]))
            return -1;
        i += n;
        while (i < s.n && is_lws(s.p[i]))
            i++;
        if (i >= s.n || s.p[i] != '/')
            return -1;
        i++;
        while (i < s.n && is_lws(s.p[i]))
            i++;
    }
    size_t t = i;
    while (i < s.n && is_token_char((unsigned char)s.p[i]))
        i++;
    if (i == t)
        return -1;
    v->transport = mkstr(s.p + t, i - t);
    if (i >= s.n || !is_lws(s.p[i]))
        return -1;
    while (i < s.n && is_lws(s.p[i]))
        i++;
    size_t hb = i;
    while (i < s.n && s.p[i] != ';')
        i++;
    if (sip_split_hostport(mkstr(s.p + hb, i - hb), &v->host, &v->port) != 0)
        return -1;
    v->params = mkstr(s.p + i, s.n - i);
    str_t n, val, rest = v->params;
    while (sip_next_param(&rest, &n, &val)) {
        if (str_ieq(n, "branch"))
            v->branch = val;
        else if (str_ieq(n, "received"))
            v->received = val;
        else if (str_ieq(n, "rport")) {
            v->has_rport = 1;
            v->rport = val.p ? val : mkstr(s.p + i, 0);
        }
    }
    return 0;
}
