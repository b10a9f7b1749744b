/*
 * sipmsg: a small, bounded SIP message parser for the sip-proxy example.
 *
 * The parser never copies: every field is a (pointer, length) view into the
 * datagram, and it never reads outside [buf, buf + len). It accepts CRLF or
 * bare LF line ends, folded header lines, compact header names and
 * case-insensitive names; it refuses NUL bytes in the head, more than
 * SIP_MAX_HEADERS headers and header lines over SIP_MAX_LINE bytes.
 */
#ifndef SIPMSG_H
#define SIPMSG_H

#include <stddef.h>
#include <stdint.h>

#define SIP_MAX_HEADERS 128
#define SIP_MAX_LINE 8192

/* A view into the datagram (or any buffer); not NUL-terminated. */
typedef struct {
    const char *p;
    size_t n;
} str_t;

enum sip_hdr_id {
    H_OTHER = 0,
    H_VIA,
    H_FROM,
    H_TO,
    H_CALL_ID,
    H_CSEQ,
    H_CONTACT,
    H_CONTENT_LENGTH,
    H_MAX_FORWARDS,
    H_EXPIRES,
    H_ROUTE,
    H_RECORD_ROUTE,
    H_PATH,
    H_REQUIRE,
    H_PROXY_REQUIRE,
    H_SUPPORTED,
    H_CONTENT_TYPE,
};

struct sip_header {
    enum sip_hdr_id id;
    str_t name;  /* as written */
    str_t value; /* trimmed; may contain folded line breaks */
    str_t line;  /* the whole header, folded lines and line end included */
};

struct sip_msg {
    int is_request;
    /* request line */
    str_t method, ruri;
    /* status line */
    int status;
    str_t reason;
    struct sip_header hdr[SIP_MAX_HEADERS];
    size_t nhdr;
    /* offset of the first header line and of the blank line ending the head */
    size_t head_start, head_end;
    str_t body; /* bounded by Content-Length when present */
};

/* Parse results. */
enum sip_parse_rc {
    SIP_PARSE_OK = 0,
    SIP_PARSE_BAD_START,   /* unusable start line: not SIP at all */
    SIP_PARSE_BAD_HEADERS, /* start line fine, head malformed or over a limit */
};

/* Parses `len` bytes at `buf`. On SIP_PARSE_BAD_HEADERS the start line and
 * the headers before the fault are filled in (enough to answer 400);
 * `why` (may be NULL) receives a static description. */
enum sip_parse_rc sip_parse(struct sip_msg *m, const char *buf, size_t len, const char **why);

/* The first header with `id`, or NULL. */
const struct sip_header *sip_find(const struct sip_msg *m, enum sip_hdr_id id);

/* ---- string helpers ---- */
str_t str_trim(str_t s);
int str_ieq(str_t s, const char *lit);          /* case-insensitive equality */
int str_iprefix(str_t s, const char *lit);      /* case-insensitive prefix */
int str_eq(str_t a, str_t b);
/* Copies `s` as a C string into dst (cap bytes), each folded line break and
 * the whitespace around it turned into one space. -1 if it does not fit or
 * holds a NUL or another control character (tab excepted). */
int str_cstr(char *dst, size_t cap, str_t s);
/* Parses 1..10 decimal digits (surrounding whitespace allowed) into *out;
 * values over `max` are clamped to it. -1 if not a number. */
int str_to_u64(str_t s, uint64_t max, uint64_t *out);

/* Splits a comma-separated header value: returns the next element (trimmed)
 * in *elem and advances *rest; commas inside quotes or <> do not split.
 * Returns 0 when nothing is left. */
int sip_next_elem(str_t *rest, str_t *elem);

/* Splits `elem` (after the URI) at ';' outside quotes: returns the next
 * parameter's name and value (value.p NULL when absent). 0 when done. */
int sip_next_param(str_t *rest, str_t *name, str_t *value);

/* A name-addr or addr-spec (`"Bob" <sip:bob@h>;tag=1`, `sip:bob@h;tag=1`):
 * the URI and the header parameters after it (starting at the first ';').
 * -1 if malformed (unterminated quote or '<'). */
int sip_name_addr(str_t elem, str_t *uri, str_t *params);

/* The value of parameter `name` in a ';'-list; 1 found (value.p NULL for a
 * valueless flag), 0 absent. */
int sip_param(str_t params, const char *name, str_t *value);

/* A quoted-string's content without quotes (escapes left as is). */
str_t sip_unquote(str_t s);

/* A Via element. */
struct sip_via {
    str_t transport; /* "UDP" */
    str_t host;      /* with brackets for IPv6 */
    int port;        /* 0 when absent */
    str_t params;    /* from the first ';' */
    str_t branch;    /* p NULL when absent */
    str_t received;  /* p NULL when absent */
    int has_rport;
    str_t rport;     /* value; n 0 when the flag has no value */
};
int sip_parse_via(str_t elem, struct sip_via *v);

/* host[:port] of a SIP/SIPS URI (`sip:user@host:port;params?headers`).
 * port 0 when absent. -1 if malformed. `user` may be NULL. */
int sip_uri_hostport(str_t uri, str_t *user, str_t *host, int *port);

/* `host[:port]` (IPv6 in brackets). -1 if malformed. */
int sip_split_hostport(str_t hp, str_t *host, int *port);

/* 64-bit FNV-1a, chained: fnv64(seed, data). */
uint64_t fnv64(uint64_t h, const void *data, size_t n);
#define FNV64_INIT 0xcbf29ce484222325ULL

#endif
