//! SIP text that registrars and proxies on this library (c-examples/sip-proxy,
//! the Kamailio module, the KEMI script) share instead of each writing its
//! own: the answer for a result, and a binding's Contact in a 200 OK.

use super::chordsip_result::{self, *};
use crate::sip::binding::{format_q, Binding};
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::catch_unwind;
use std::sync::OnceLock;

/// The registrar's shortest accepted registration in seconds: a REGISTER
/// asking for less gets `CHORDSIP_ERR_INTERVAL_TOO_BRIEF` (SIP 423 with
/// `Min-Expires`). Bindings read it with `chordsip_min_expires()`.
pub const CHORDSIP_MIN_EXPIRES: u32 = 60;
const _: () = assert!(CHORDSIP_MIN_EXPIRES == crate::sip::binding::MIN_EXPIRES);

/// The reply for one result: status, reason phrase, extra header lines.
#[derive(Clone, Copy)]
struct Answer {
    status: u32,
    reason: &'static CStr,
    headers: Headers,
}

#[derive(Clone, Copy)]
enum Headers {
    None,
    RetryAfter(&'static CStr),
    MinExpires,
}

const fn reply(status: u32, reason: &'static CStr, headers: Headers) -> Answer {
    Answer {
        status,
        reason,
        headers,
    }
}

const INTERNAL: Answer = reply(500, c"Server Internal Error", Headers::None);

/// The table; `result` may be any int (C can pass codes this version does not know).
fn answer(result: c_int) -> Answer {
    let one_of = |codes: &[chordsip_result]| codes.iter().any(|&c| c as c_int == result);
    if one_of(&[CHORDSIP_OK]) {
        reply(200, c"OK", Headers::None)
    } else if one_of(&[
        CHORDSIP_ERR_INVALID_ARGUMENT,
        CHORDSIP_ERR_TOO_LARGE,
        CHORDSIP_ERR_BAD_UTF8,
    ]) {
        reply(400, c"Bad Request", Headers::None)
    } else if one_of(&[CHORDSIP_ERR_FULL]) {
        reply(403, c"Forbidden (too many bindings)", Headers::None)
    } else if one_of(&[CHORDSIP_ERR_INTERVAL_TOO_BRIEF]) {
        reply(423, c"Interval Too Brief", Headers::MinExpires)
    } else if one_of(&[CHORDSIP_ERR_OUT_OF_ORDER]) {
        // RFC 3261 §10.3 step 7. The phrase names no header: SIPp (3.6.1)
        // reads "CSeq" in a reason phrase as the CSeq header and drops the answer.
        reply(
            500,
            c"Server Internal Error (request out of order)",
            Headers::None,
        )
    } else if one_of(&[CHORDSIP_ERR_STALE]) {
        let retry = Headers::RetryAfter(c"Retry-After: 1\r\n");
        reply(500, c"Server Internal Error (concurrent update)", retry)
    } else if one_of(&[
        CHORDSIP_ERR_TIMEOUT,
        CHORDSIP_ERR_NO_ROUTE,
        CHORDSIP_ERR_NOT_JOINED,
        CHORDSIP_ERR_JOIN_FAILED,
        CHORDSIP_ERR_SHUTDOWN,
        CHORDSIP_ERR_IO,
        CHORDSIP_ERR_CANCELLED,
    ]) {
        let retry = Headers::RetryAfter(c"Retry-After: 5\r\n");
        reply(503, c"Service Unavailable (location service)", retry)
    } else {
        INTERNAL
    }
}

/// The SIP status code a registrar or proxy answers a request with when the
/// library call serving it returned `result` (a `chordsip_result`): 200 for
/// `CHORDSIP_OK`; 400 for a malformed request (`INVALID_ARGUMENT`,
/// `TOO_LARGE`, `BAD_UTF8`); 403 for too many bindings (`FULL`); 423 for
/// `INTERVAL_TOO_BRIEF`; 500 for `OUT_OF_ORDER` (RFC 3261 §10.3 step 7),
/// `STALE` and anything unexpected; 503 when the overlay cannot serve it now
/// (`TIMEOUT`, `NO_ROUTE`, `NOT_JOINED`, `JOIN_FAILED`, `SHUTDOWN`, `IO`,
/// `CANCELLED`). Unknown codes give 500. Send the reply with
/// `chordsip_result_sip_reason()` and `chordsip_result_sip_headers()`.
#[no_mangle]
pub extern "C" fn chordsip_result_sip_status(result: c_int) -> u32 {
    catch_unwind(|| answer(result).status).unwrap_or(500)
}

/// The reason phrase that goes with `chordsip_result_sip_status(result)`,
/// e.g. "Interval Too Brief" (static storage; never free it).
#[no_mangle]
pub extern "C" fn chordsip_result_sip_reason(result: c_int) -> *const c_char {
    catch_unwind(|| answer(result).reason)
        .unwrap_or(INTERNAL.reason)
        .as_ptr()
}

/// Header lines the reply for `result` must carry, each ending in CRLF, or
/// "" (static storage; never free it): `"Min-Expires: 60\r\n"` (the
/// registrar's minimum, `CHORDSIP_MIN_EXPIRES`) with 423, `"Retry-After:
/// N\r\n"` with 503 and with 500 for `CHORDSIP_ERR_STALE`.
#[no_mangle]
pub extern "C" fn chordsip_result_sip_headers(result: c_int) -> *const c_char {
    static MIN_EXPIRES: OnceLock<CString> = OnceLock::new();
    catch_unwind(|| match answer(result).headers {
        Headers::None => c"".as_ptr(),
        Headers::RetryAfter(h) => h.as_ptr(),
        Headers::MinExpires => MIN_EXPIRES
            .get_or_init(|| {
                CString::new(format!("Min-Expires: {CHORDSIP_MIN_EXPIRES}\r\n")).unwrap_or_default()
            })
            .as_ptr(),
    })
    .unwrap_or(c"".as_ptr())
}

/// `CHORDSIP_MIN_EXPIRES`, for bindings that cannot read the header's macros.
#[no_mangle]
pub extern "C" fn chordsip_min_expires() -> u32 {
    CHORDSIP_MIN_EXPIRES
}

/// The Contact header value listing a binding in a 200 OK (RFC 3261 §10.3
/// step 8): `<uri>;expires=N`, then `;q=0.5` when q is not 1, the
/// `+sip.instance` (as a quoted string) and `reg-id` when present.
pub(crate) fn contact_value(b: &Binding, expires: u32) -> String {
    let mut v = format!("<{}>;expires={expires}", b.contact);
    if b.q < 1000 {
        v += &format!(";q={}", format_q(b.q));
    }
    if let Some(i) = &b.instance {
        let quoted = i.replace('\\', "\\\\").replace('"', "\\\"");
        v += &format!(";+sip.instance=\"{quoted}\"");
    }
    if let Some(r) = b.reg_id {
        v += &format!(";reg-id={r}");
    }
    v
}

/// The RFC 5626 flow token for `addr` (`ip:port`, `[ipv6]:port`: where a
/// request from a user agent came from), authenticated with `secret` (at
/// least 16 bytes, the proxy's own): an edge proxy puts it in the user part
/// of the Path it adds to a REGISTER of a UA behind NAT and of its
/// Record-Route, then sends requests that come back with it to `addr`.
/// Written NUL-terminated into `buf` (`len` bytes; 64 always suffice);
/// `CHORDSIP_ERR_BUFFER_TOO_SMALL` when it does not fit.
///
/// # Safety
/// `secret` NULL or readable for `secret_len` bytes; `addr` NULL or
/// NUL-terminated; `buf` NULL or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn chordsip_sip_flow_token(
    secret: *const u8,
    secret_len: usize,
    addr: *const c_char,
    buf: *mut c_char,
    len: usize,
) -> chordsip_result {
    super::guard(|| {
        // SAFETY: NULL or readable for secret_len bytes by the caller's contract.
        let secret = flow_secret(unsafe { super::bytes_arg(secret, secret_len) }?)?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let addr: std::net::SocketAddr = unsafe { super::str_arg(addr) }?
            .parse()
            .map_err(|_| CHORDSIP_ERR_INVALID_ARGUMENT)?;
        let token = crate::sip::flow::make(secret, addr);
        // SAFETY: NULL or writable for len bytes by the caller's contract.
        unsafe { super::write_str(&token, buf, len, None) }
    })
}

/// The address a flow token names (as `ip:port` or `[ipv6]:port`, into
/// `buf`), if `secret` made it: `CHORDSIP_ERR_UNAUTHORIZED` for a token
/// shaped right but made with another secret or altered (RFC 5626 §5.3: 403),
/// `CHORDSIP_ERR_INVALID_ARGUMENT` for a user part that is no flow token.
///
/// # Safety
/// As `chordsip_sip_flow_token`, with `token` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn chordsip_sip_flow_address(
    secret: *const u8,
    secret_len: usize,
    token: *const c_char,
    buf: *mut c_char,
    len: usize,
) -> chordsip_result {
    super::guard(|| {
        // SAFETY: NULL or readable for secret_len bytes by the caller's contract.
        let secret = flow_secret(unsafe { super::bytes_arg(secret, secret_len) }?)?;
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let token = unsafe { super::str_arg(token) }?;
        let addr = match crate::sip::flow::check(secret, token) {
            Ok(a) => a,
            Err(crate::sip::flow::FlowError::Forged) => return Err(CHORDSIP_ERR_UNAUTHORIZED),
            Err(crate::sip::flow::FlowError::Malformed) => {
                return Err(CHORDSIP_ERR_INVALID_ARGUMENT)
            }
        };
        // SAFETY: NULL or writable for len bytes by the caller's contract.
        unsafe { super::write_str(&addr.to_string(), buf, len, None) }
    })
}

fn flow_secret(s: &[u8]) -> super::FfiResult<&[u8]> {
    match s.len() >= crate::sip::flow::MIN_SECRET_LEN {
        true => Ok(s),
        false => Err(CHORDSIP_ERR_INVALID_ARGUMENT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(p: *const c_char) -> &'static str {
        // SAFETY: the functions above return static NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap()
    }

    #[test]
    fn every_code_has_an_answer() {
        for code in -1..=40 {
            let s = chordsip_result_sip_status(code);
            assert!((200..700).contains(&s), "{code}: {s}");
            assert!(!text(chordsip_result_sip_reason(code)).is_empty());
            let h = text(chordsip_result_sip_headers(code));
            assert!(h.is_empty() || h.ends_with("\r\n"), "{code}: {h:?}");
        }
        assert_eq!(chordsip_result_sip_status(CHORDSIP_OK as c_int), 200);
        let brief = CHORDSIP_ERR_INTERVAL_TOO_BRIEF as c_int;
        assert_eq!(chordsip_result_sip_status(brief), 423);
        // the minimum the registrar really applies
        let minimum = crate::sip::binding::RegistrarLimits::default().min_expires;
        let want = format!("Min-Expires: {minimum}\r\n");
        assert_eq!(text(chordsip_result_sip_headers(brief)), want);
        assert_eq!(
            chordsip_result_sip_status(CHORDSIP_ERR_TIMEOUT as c_int),
            503
        );
        assert_eq!(chordsip_result_sip_status(CHORDSIP_ERR_PANIC as c_int), 500);
        assert_eq!(chordsip_result_sip_status(1000), 500);
        assert_eq!(chordsip_min_expires(), minimum);
    }

    #[test]
    fn contact_values() {
        let mut b = Binding {
            contact: "sip:a@192.0.2.1:5060;transport=tcp".into(),
            q: 1000,
            instance: None,
            reg_id: None,
            path: vec![],
            received: None,
            call_id: "c".into(),
            cseq: 1,
            owner: None,
        };
        let plain = "<sip:a@192.0.2.1:5060;transport=tcp>;expires=3600";
        assert_eq!(contact_value(&b, 3600), plain);
        b.q = 500;
        b.instance = Some("<urn:uuid:1>".into());
        b.reg_id = Some(2);
        let flow = ";expires=60;q=0.5;+sip.instance=\"<urn:uuid:1>\";reg-id=2";
        assert!(contact_value(&b, 60).ends_with(flow));
        b.q = 0;
        b.instance = Some("a\"b\\c".into());
        b.reg_id = None;
        let odd = ";expires=1;q=0;+sip.instance=\"a\\\"b\\\\c\"";
        assert!(contact_value(&b, 1).ends_with(odd));
    }
}
