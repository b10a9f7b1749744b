"""chordsip registrar and proxy as a Kamailio KEMI script (app_python3).

The Python counterpart of bindings/kamailio/kamailio.cfg with the native
chordsip module: REGISTERs are processed by the chordsip registrar and the
bindings stored in a chordsip overlay; other requests are forwarded to the
contacts looked up there. It uses the ctypes binding (bindings/python,
package ``chordsip``) and talks, through one ``chordsip.Client`` per Kamailio
process, to an overlay node run as a separate process:

    chordsip node --listen 127.0.0.1:5070 --client-socket /tmp/chordsip.sock

Load it with bindings/kamailio/kemi/kamailio-kemi.cfg. Environment (Kamailio's
environment is the embedded interpreter's ``os.environ``):

    CHORDSIP_PEER         the node: "unix:/path" (its --client-socket) or
                          "ip:port" (default unix:/tmp/kamailio-chordsip/chordsip.sock)
    CHORDSIP_TIMEOUT_MS   the longest one call may block a SIP worker (2000)
    CHORDSIP_OVERLAY      the overlay name (chordsip)
    CHORDSIP_KEY_FILE     a file holding the overlay key (none)
    CHORDSIP_LIBRARY      libchordsip.so to load (read by the binding)
    CHORDSIP_PYTHON_PATH  the folder holding the ``chordsip`` package (default:
                          bindings/python of the checkout this script is in)
    CHORDSIP_CREDENTIALS_KEY_FILE  the credentials key (`chordsip keygen`)
                          that opens the SIP credentials in the overlay
    CHORDSIP_CREDENTIAL_ADMINS     the administrators' public keys, comma-
                          separated: only records they wrote count
    CHORDSIP_DIGEST_ALGORITHM      MD5 (default) or SHA-256: the auth
                          module's `algorithm`
    CHORDSIP_AUTH         "0": store REGISTERs unauthenticated (as before
                          issue 14); default: authenticate them

Semantics (as bindings/kamailio/kamailio.cfg with the module):
  REGISTER for a domain not ours (To URI not myself): 403 "Forbidden (not
  our domain)". Then SIP digest authentication (the auth module, KEMI
  pv_auth_check, with the user's HA1 read from the overlay, as the module's
  chordsip_ha1() does, through its client handle): no credentials 401 with a challenge
  (qop=auth); unknown user or wrong password 403 "Forbidden"; an expired
  nonce 401 with stale=true; malformed credentials 400; authenticated as
  another user than the To (and From) URI's 403 "Forbidden (not your AOR)".
  Then as chordsip_save() / chordsip_lookup() of the module:
  REGISTER: 200 OK with one Contact per binding; a refusal or failure is
  answered from the library's table (chordsip.sip_reply: 400 malformed, 403
  too many bindings, 423 with Min-Expires, 500 CSeq out of order, 503 with
  Retry-After when the overlay cannot answer), as the module answers.
  Others: 483 after too many hops; CANCEL and in-dialog requests follow the
  transaction / Route set; otherwise the Request-URI is looked up (the
  library canonicalises it to the AOR: scheme, user, host, no port): 404 when it has no binding (an ACK is
  dropped), 500 when the overlay cannot answer, else the request is
  forked to every binding (in parallel), sent where the library says
  (Binding.next_hop: its first Path entry, RFC 3327; else the address its
  REGISTER came from for an RFC 5626 flow or a UA behind NAT; else the
  contact itself), as the module and sip-proxy do.

Kamailio 5.6's interpreter does not release the GIL while a worker is
outside Python, so only blocking Client calls are used (no callbacks, no
threads). The script is imported by Kamailio's main process before it forks
the workers: nothing here touches the overlay or even loads libchordsip at
import time; each process creates its own Client on first use.
"""

import os
import sys
import time

import KSR


def _binding_path():
    """Where the ``chordsip`` package is: $CHORDSIP_PYTHON_PATH, else
    bindings/python next to this script's folder (bindings/kamailio/kemi)."""
    env = os.environ.get("CHORDSIP_PYTHON_PATH")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(globals().get("__file__") or "."))
    return os.path.normpath(os.path.join(here, "..", "..", "python"))


_path = _binding_path()
if os.path.isdir(_path) and _path not in sys.path:
    sys.path.insert(0, _path)

import chordsip  # noqa: E402  (no side effect: the library loads on first use)

DEFAULT_PEER = "unix:/tmp/kamailio-chordsip/chordsip.sock"


class BadRequest(Exception):
    """A REGISTER the registrar refuses with 400 (the reason phrase)."""


def _env_int(name, default):
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw.strip() else default
    except ValueError:
        KSR.warn("chordsip: %s=%r is not an integer; using %d\n" % (name, raw, default))
        return default
    return value if value > 0 else default


def _read_key():
    path = os.environ.get("CHORDSIP_KEY_FILE", "")
    if not path:
        return None
    with open(path, "rb") as f:
        key = f.read(1025)
    # A trailing newline from an editor or `echo` is not part of the key.
    key = key.rstrip(b"\r\n")
    if not 1 <= len(key) <= 1024:
        raise ValueError("CHORDSIP_KEY_FILE %s must hold 1 to 1024 bytes" % path)
    return key


# ---- the Client of this process -------------------------------------------

_client = None
_client_pid = 0
_settings = None


def _config():
    global _settings
    if _settings is None:
        _settings = {
            "peer": os.environ.get("CHORDSIP_PEER") or DEFAULT_PEER,
            "overlay": os.environ.get("CHORDSIP_OVERLAY") or "chordsip",
            "timeout_ms": _env_int("CHORDSIP_TIMEOUT_MS", 2000),
        }
    return _settings


def get_client():
    """This process's Client (created on first use, after the fork), or None."""
    global _client, _client_pid
    pid = os.getpid()
    if _client is not None and _client_pid == pid:
        return _client
    # A Client inherited through a fork belongs to the parent: leave it be
    # (dropping the reference only frees memory in a child).
    _client = None
    cfg = _config()
    try:
        _client = chordsip.Client(cfg["peer"], cfg["overlay"], _read_key(), cfg["timeout_ms"])
    except Exception as e:  # LibraryNotFound, ChordsipError, OSError, ValueError
        KSR.err("chordsip: cannot create a client for %s: %s\n" % (cfg["peer"], e))
        _client = None
        return None
    _client_pid = pid
    KSR.dbg("chordsip: process %d uses %r (library %s)\n" % (pid, _client, chordsip.library_path()))
    return _client


def _timed(what, started):
    took = (time.monotonic() - started) * 1000.0
    limit = _config()["timeout_ms"]
    if took > limit:
        KSR.warn("chordsip: %s took %.0f ms (timeout %d ms)\n" % (what, took, limit))


# ---- header parsing ------------------------------------------------------


def split_unquoted(text, sep):
    """Splits at ``sep`` outside double quotes and <...> (RFC 3261 values)."""
    parts, cur = [], []
    quoted = escaped = False
    angle = 0
    for ch in text:
        if quoted:
            cur.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch == "<":
            angle += 1
        elif ch == ">" and angle:
            angle -= 1
        elif ch == sep and not angle:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if quoted or angle:
        raise BadRequest("Bad Request (unbalanced quotes or <>)")
    parts.append("".join(cur))
    return parts


def _uint(text, what):
    text = text.strip()
    if not text.isdigit() or len(text) > 10 or int(text) > 0xFFFFFFFF:
        raise BadRequest("Bad Request (%s)" % what)
    return int(text)


def _unquote(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def parse_contact(text):
    """One contact-param: (uri, expires, q, instance, reg_id)."""
    text = text.strip()
    if not text:
        raise BadRequest("Bad Request (Contact)")
    lt = -1
    # name-addr: [display-name] <uri> *(;param); a quoted display name may hold "<".
    i, quoted = 0, False
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            lt = i
            break
        i += 1
    if lt >= 0:
        gt = text.find(">", lt + 1)
        if gt < 0:
            raise BadRequest("Bad Request (Contact)")
        uri = text[lt + 1:gt].strip()
        rest = text[gt + 1:]
    else:
        # addr-spec: the parameters after the first ";" are the contact's
        first, _, rest = text.partition(";")
        uri = first.strip()
        rest = ";" + rest if rest else ""
    if not uri or ":" not in uri or any(c in uri for c in " \t"):
        raise BadRequest("Bad Request (Contact URI)")
    expires = q = instance = reg_id = None
    for param in split_unquoted(rest, ";")[1:] if rest.strip() else []:
        name, eq, value = param.partition("=")
        name = name.strip().lower()
        if not name:
            continue
        if name == "expires":
            expires = _uint(value, "expires")
        elif name == "q":
            q = value.strip()
            if not q:
                raise BadRequest("Bad Request (q)")
        elif name == "+sip.instance":
            instance = _unquote(value)
        elif name == "reg-id":
            reg_id = _uint(value, "reg-id")
    return uri, expires, q, instance, reg_id


def header_values(name):
    """The bodies of every ``name`` header (compact forms included), in order."""
    out = []
    count = KSR.pv.get("$hdrc(%s)" % name) or 0
    for i in range(int(count)):
        v = KSR.hdr.get_idx(name, i)
        if v is not None:
            out.append(v)
    return out


def _source_uri():
    ip = KSR.pv.get("$si")
    port = KSR.pv.get("$sp")
    if ip is None or port is None:
        return None
    if ":" in ip and not ip.startswith("["):
        ip = "[%s]" % ip
    return "sip:%s:%s" % (ip, port)


def read_register():
    """The arguments of Client.register() taken from the REGISTER; raises
    BadRequest."""
    aor = KSR.pv.get("$tu")
    call_id = KSR.pv.get("$ci")
    cseq = KSR.pv.get("$cs")
    if not aor or not call_id or cseq is None:
        raise BadRequest("Bad Request (missing To, Call-ID or CSeq)")
    cseq = _uint(str(cseq), "CSeq")
    expires = None
    exp_hdr = KSR.hdr.get("Expires")
    if exp_hdr is not None:
        expires = _uint(exp_hdr, "Expires")
    star = False
    contacts = []
    for body in header_values("Contact"):
        if body.strip() == "*":
            star = True
            continue
        for item in split_unquoted(body, ","):
            if not item.strip():
                continue
            uri, c_exp, q, instance, reg_id = parse_contact(item)
            contacts.append(chordsip.Contact(uri, expires=c_exp, q=q, instance=instance, reg_id=reg_id))
    path = []
    for body in header_values("Path"):
        for hop in split_unquoted(body, ","):
            if hop.strip():
                path.append(hop.strip())
    return {
        "aor": aor,
        "call_id": call_id,
        "cseq": cseq,
        "contacts": contacts,
        "expires": expires,
        "star": star,
        "path": path,
        "received": _source_uri(),
    }


def contact_header(b):
    """A 200 OK Contact header for one Binding (RFC 3261 §10.3 step 8), in the
    library's formatting, as the module and sip-proxy send it."""
    return "Contact: %s\r\n" % b.contact_value


# ---- chordsip_save() ------------------------------------------------------


def save():
    """Processes the REGISTER and sends the reply: 1 inserted, 2 updated,
    3 deleted, 4 listed; -1 refused or failed."""
    try:
        req = read_register()
    except BadRequest as e:
        KSR.sl.send_reply(400, str(e))
        return -1
    client = get_client()
    if client is None:
        KSR.sl.send_reply(500, "Server Internal Error (no overlay)")
        return -1
    started = time.monotonic()
    try:
        result = client.register(**req)
    except Exception as e:  # ChordsipError, or a value the binding refused
        if isinstance(e, TypeError):  # refused before the library saw it
            e = chordsip.InvalidArgument(detail=str(e))
        elif not isinstance(e, chordsip.ChordsipError):
            e = chordsip.Panic(detail=repr(e))  # a bug here: 500
        reply = chordsip.sip_reply(e)
        if reply.status >= 500 and not isinstance(e, chordsip.OutOfOrder):
            KSR.err("chordsip: storing bindings of %s: %s\n" % (req["aor"], e))
        else:
            KSR.info("chordsip: REGISTER of %s refused: %s\n" % (req["aor"], e))
        if reply.headers:
            KSR.hdr.append_to_reply(reply.headers)
        KSR.sl.send_reply(reply.status, reply.reason)
        return -1
    finally:
        _timed("save", started)
    for b in result.bindings:
        KSR.hdr.append_to_reply(contact_header(b))
    if KSR.sl.send_reply(200, "OK") < 0:
        KSR.err("chordsip: cannot send the 200 reply\n")
        return -1
    if result.inserted:
        return 1
    if result.updated:
        return 2
    if result.deleted:
        return 3
    return 4


# ---- chordsip_lookup() ----------------------------------------------------


def _set_sbranch(b, with_path=True):
    """Fills the static branch ($sbranch) with a binding's target: its
    contact, and the library's next hop (first Path entry, or the address
    its REGISTER came from for a flow or a UA behind NAT) as destination."""
    KSR.pvx.sbranch_reset()
    KSR.pv.sets("$sbranch(uri)", b.contact)
    if b.next_hop_kind != chordsip.Hop.CONTACT:
        KSR.pv.sets("$sbranch(dst_uri)", b.next_hop)
    if with_path and b.path:
        KSR.pv.sets("$sbranch(path)", ",".join(b.path))
    KSR.pv.seti("$sbranch(q)", int(round(b.q * 1000)))


def lookup():
    """Sets the Request-URI (and the branches) to the AOR's bindings: 1 found,
    -1 not found, -3 internal error."""
    # The Request-URI as it is: the library canonicalises it to the AOR as it
    # does the To URI of a REGISTER (scheme, user, host; no port).
    aor = KSR.pv.get("$ru")
    if not aor:
        KSR.err("chordsip: no Request-URI to look up\n")
        return -3
    client = get_client()
    if client is None:
        return -3
    started = time.monotonic()
    try:
        bindings = client.lookup_aor(aor)
    except Exception as e:
        KSR.err("chordsip: lookup of %s: %s\n" % (aor, e))
        return -3
    finally:
        _timed("lookup", started)
    if not bindings:
        return -1
    # Every binding is a parallel branch; the Request-URI is the first one
    # without a Path (KEMI cannot set the Request-URI's path vector, while
    # appended branches carry theirs). When all have one, the first's route
    # set goes in as Route headers and only bindings with that same Path can
    # be reached as well.
    first = next((b for b in bindings if not b.path), bindings[0])
    if not KSR.seturi(first.contact):
        KSR.err("chordsip: cannot set the Request-URI to %s\n" % first.contact)
        return -3
    KSR.resetdsturi()
    if first.path:  # RFC 3327: the route set, and the first Path entry as destination
        KSR.hdr.insert("Route: %s\r\n" % ",".join(first.path))
    if first.next_hop_kind != chordsip.Hop.CONTACT and not KSR.setdsturi(first.next_hop):
        KSR.err("chordsip: cannot set the destination to %s\n" % first.next_hop)
        return -3
    for b in bindings:
        if b is first:
            continue
        if first.path:
            if b.path != first.path:
                KSR.warn("chordsip: %s not forked to %s (another Path)\n" % (aor, b.contact))
                continue
            _set_sbranch(b, with_path=False)  # the Route headers are in the request
        else:
            _set_sbranch(b)
        if KSR.pvx.sbranch_append() < 0:
            KSR.err("chordsip: cannot append a branch for %s\n" % b.contact)
            break
    KSR.pvx.sbranch_reset()
    return 1


# ---- SIP credentials (the module's chordsip_ha1()) ---------------------------
#
# This process's client handle reads them, given the credentials key and the
# admins once (they stay in this process: nothing of them is sent).

_trusted_pid = None  # the process whose client was given the credentials key
_ALGORITHMS = ("MD5", "SHA-256")


def _credential_client():
    """This process's Client, able to read credentials; None on failure."""
    global _trusted_pid
    client = get_client()
    if client is None or _trusted_pid == os.getpid():
        return client
    try:
        with open(os.environ.get("CHORDSIP_CREDENTIALS_KEY_FILE", ""), "r") as f:
            key = f.read(256).strip()
        client.set_credential_trust(key, os.environ.get("CHORDSIP_CREDENTIAL_ADMINS", ""))
    except (OSError, ValueError, chordsip.ChordsipError) as e:  # no key file, a bad key
        KSR.err("chordsip: no credentials for this process: %s\n" % e)
        return None
    _trusted_pid = os.getpid()
    return client


def credential_ha1(user, realm):
    """(1, HA1) found, (-1, None) no such user, (-2, None) bad user name or
    realm, (-3, None) internal error: chordsip_ha1()'s answers."""
    alg = os.environ.get("CHORDSIP_DIGEST_ALGORITHM", "MD5").upper()
    if not isinstance(user, str) or not isinstance(realm, str) or alg not in _ALGORITHMS:
        return -2, None
    if not user or not realm or len(user.encode("utf-8", "surrogateescape")) > 255 \
            or len(realm.encode("utf-8", "surrogateescape")) > 255 or "\0" in user + realm:
        return -2, None
    client = _credential_client()
    if client is None:
        return -3, None
    started = time.monotonic()
    try:
        ha1 = client.credential_ha1(user, realm, alg)
    except (chordsip.InvalidArgument, chordsip.BadUtf8):
        return -2, None
    except chordsip.ChordsipError as e:
        KSR.err("chordsip: credential of %r@%r: %s\n" % (user, realm, e))
        return -3, None
    finally:
        _timed("credential_ha1", started)
    return (1, ha1) if ha1 is not None else (-1, None)


def _pv(name):
    """A PV's value as text, "" when unset or not UTF-8."""
    try:
        return KSR.pv.get(name) or ""
    except UnicodeError:
        return ""


def authenticate():
    """route[AUTH] of kamailio.cfg: True to go on (authenticated as the
    AOR's user, credentials consumed); False when the reply was sent."""
    try:
        realm = KSR.pv.get("$td")
    except UnicodeError:  # the interpreter decodes values as UTF-8
        realm = None
    if not realm:
        KSR.sl.send_reply(400, "Bad Request (To)")
        return False
    if KSR.auth.has_credentials(realm) < 0:
        KSR.auth.auth_challenge(realm, 1)  # 401 for a REGISTER, qop=auth
        return False
    try:
        user = KSR.pv.get("$au") or ""
    except UnicodeError:
        user = ""  # -2 below: 400
    rc, ha1 = credential_ha1(user, realm)
    if rc == -1:
        KSR.sl.send_reply(403, "Forbidden")
        return False
    if rc == -2:
        KSR.sl.send_reply(400, "Bad Request (credentials)")
        return False
    if rc < 0:
        KSR.sl.send_reply(500, "Server Internal Error")
        return False
    # flags 1: the password is an HA1; checks 1: the user is the To and From user's
    rc = KSR.auth.pv_auth_check(realm, ha1, 1, 1)
    if rc == 1:
        KSR.auth.consume_credentials()
        return True
    if rc == -8:
        KSR.sl.send_reply(403, "Forbidden (not your AOR)")
    elif rc == -2:  # wrong password
        KSR.sl.send_reply(403, "Forbidden")
    elif rc == -4:  # the nonce expired: a new one, stale=true
        KSR.auth.auth_challenge(realm, 17)
    elif rc == -1:  # malformed credentials, a nonce not ours
        KSR.sl.send_reply(400, "Bad Request (credentials)")
    else:  # -5 none for this realm, -6 nonce reused
        KSR.auth.auth_challenge(realm, 1)
    return False


# ---- the routing script ------------------------------------------------------


class kamailio:
    """The KEMI handler object (request_route = ksr_request_route)."""

    def __init__(self):
        KSR.info("chordsip KEMI script loaded (binding %s, peer %s)\n"
                 % (os.path.dirname(chordsip.__file__), _config()["peer"]))

    def child_init(self, rank):
        # The Client is created on first use in each process (after the fork).
        return 0

    def ksr_request_route(self, msg):
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.send_reply(483, "Too Many Hops")
            return 1
        if KSR.sanity.sanity_check(17895, 7) < 0:
            return 1
        if KSR.is_REGISTER():
            if KSR.is_myself(_pv("$tu")) <= 0:
                KSR.sl.send_reply(403, "Forbidden (not our domain)")
                return 1
            if os.environ.get("CHORDSIP_AUTH", "1") != "0" and not authenticate():
                return 1
            save()
            return 1
        if KSR.is_CANCEL():
            if KSR.tm.t_check_trans() > 0:
                KSR.tm.t_relay()
            return 1
        if KSR.siputils.has_totag() > 0:
            if KSR.rr.loose_route() > 0:
                KSR.tm.t_relay()
                return 1
            if KSR.is_ACK():
                rc = KSR.tm.t_check_trans()
                if rc > 0:
                    KSR.tm.t_relay()
                    return 1
                if rc == 0:
                    return 1
        else:
            # a retransmission is absorbed here (0: exit in native cfg)
            if KSR.tm.t_check_trans() == 0:
                return 1
            if KSR.is_INVITE() or KSR.is_SUBSCRIBE():
                KSR.rr.record_route()
        return self.route_location()

    def route_location(self):
        # no open relay: requests go to users of our domain only
        if KSR.is_myself(_pv("$ru")) <= 0:
            if not KSR.is_ACK():
                KSR.sl.send_reply(403, "Not relaying")
            return 1
        rc = lookup()
        if rc == -1:
            if not KSR.is_ACK():
                KSR.sl.send_reply(404, "Not Found")
            return 1
        if rc < 0:
            if not KSR.is_ACK():
                KSR.sl.send_reply(500, "Server Internal Error")
            return 1
        if KSR.tm.t_relay() < 0:
            KSR.sl.sl_reply_error()
        return 1


def mod_init():
    """Called by app_python3 in the main process: returns the handler."""
    return kamailio()
