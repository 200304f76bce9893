#!/usr/bin/env python3
# 37-tls.t - threat model section 2: STARTTLS and implicit TLS in smap.
# A throwaway CA, server and client certificates made with openssl(1);
# smtplib, openssl s_client and raw sockets that switch to TLS in place.
# Covers: STARTTLS and the state reset, what the spool and Received
# header record, security levels, CVE-2011-0411 style command injection
# (one write, separate segment, late segment, trickled), junk and silence
# instead of a ClientHello, relaying by client certificate, CAfile
# verification, wrapper mode, fail-closed configuration, the STARTTLS
# reply codes, no TLS < 1.2, no renegotiation, no compression; OpenSSL
# loaded (smap-tls.so) only when TLS is on, and only a module root owns.
import hashlib
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import warnings

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from smaptest import (TAP, Server, SMAP_BIN, SLOW, HOSTNAME, CRLF, Reply, REPLY_LINE_RE,  # noqa: E402
                      SessionResult, DATE_RE, lines, msg, reply_matches, check_log_clean)

warnings.filterwarnings("ignore", category=DeprecationWarning)

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

# The listed client certificate has a hostile subject: spaces, a
# backslash, a newline and UTF-8. X509_NAME_oneline() shows it as ODD_ONELINE;
# smap must \xHH-escape every byte outside 0x21..0x7e and the backslash.
ODD_SUBJ = "/CN=evil name\\\\backslash/O=x y/OU=line\nbreak caf\u00e9"
ODD_ONELINE = "/CN=evil name\\backslash/O=x y/OU=line\\x0Abreak caf\\xC3\\xA9"
CA_CLIENT_SUBJ = "/CN=ca client/O=smap test"
DECOY_FP = ":".join(["5A"] * 32)

TLS_KEYWORDS = ["PIPELINING", "SIZE 10240000", "8BITMIME", "STARTTLS", "ENHANCEDSTATUSCODES"]
PLAIN_KEYWORDS = ["PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES"]
HANDSHAKE_FAILED = r"(?m)smap/smtpd\[\d+\]: TLS handshake failed after %s from unknown\[127\.0\.0\.1\]: \S"


def token(s):
    """What smap's tls_token() makes of a string: the expected escaping."""
    out = []
    for b in s.encode("latin-1"):
        out.append(chr(b) if 0x20 < b < 0x7f and b != 0x5c else "\\x%02x" % b)
    return "".join(out)


# --------------------------------------------------------------------------
# certificates


def run_openssl(args, cwd):
    p = subprocess.run([OPENSSL.encode()] + [a if isinstance(a, bytes) else a.encode() for a in args],
                       cwd=cwd, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (args[0], p.stderr.decode("latin-1")[-500:]))


def fingerprint(pem_path):
    with open(pem_path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return ":".join("%02X" % b for b in hashlib.sha256(der).digest())


def make_certs(d):
    """CA, server (SAN mx.test.example), CA-signed client, self-signed
    odd-subject client (the listed one), self-signed stranger, and a
    spare key that matches nothing."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run_openssl(["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                 "-subj", "/CN=smap test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    with open(os.path.join(d, "srv.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s\n" % HOSTNAME)
    with open(os.path.join(d, "cli.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=clientAuth\n")
    for name, subj, ext in (("server", "/CN=" + HOSTNAME, "srv.ext"), ("caclient", CA_CLIENT_SUBJ, "cli.ext")):
        run_openssl(["req"] + ec + ["-keyout", name + ".key", "-out", name + ".csr", "-subj", subj], d)
        run_openssl(["x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                     "-set_serial", str(int(time.time() * 1000) % 10 ** 9 + len(name)),
                     "-out", name + ".pem", "-days", "2", "-extfile", ext], d)
    run_openssl(["req", "-x509"] + ec + ["-keyout", "odd.key", "-out", "odd.pem", "-days", "2",
                 "-utf8", "-subj", ODD_SUBJ.encode("utf-8")], d)
    run_openssl(["req", "-x509"] + ec + ["-keyout", "stranger.key", "-out", "stranger.pem", "-days", "2",
                 "-subj", "/CN=stranger"], d)
    run_openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other.key"], d)
    with open(os.path.join(d, "junk.pem"), "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    c = {}
    for n in os.listdir(d):
        p = os.path.join(d, n)
        if n.endswith(".key"):
            os.chown(p, 0, 0)
            os.chmod(p, 0o600)      # smap reads it as root, before its jail
        c[n.replace(".", "_")] = p
    for n in ("odd", "stranger", "caclient", "server"):
        c[n + "_fp"] = fingerprint(c[n + "_pem"])
    return c


def client_ctx(C, cert=None, maxver=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(C["ca_pem"])      # smap must present the configured certificate
    if cert:
        ctx.load_cert_chain(C[cert + "_pem"], C[cert + "_key"])
    if maxver:
        ctx.maximum_version = maxver
    return ctx


# --------------------------------------------------------------------------
# a raw client that can switch to TLS on the same socket


class Conn:
    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        self.err = None
        self.replies = []
        self.tls_error = None

    def _recv(self, wait):
        if self.eof:
            return False
        try:
            self.sock.settimeout(max(wait, 0.01))
            d = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except OSError as e:
            self.err, self.eof = e, True
            return False
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def reply(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        raw, ls, code = b"", [], None
        while True:
            i = self.buf.find(b"\n")
            if i < 0:
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    r = Reply(raw=raw, kind="garbage") if raw else \
                        Reply(kind="eof" if self.eof else "timeout", raw=self.buf)
                    self.replies.append(r)
                    return r
                self._recv(left)
                continue
            line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
            raw += line
            m = REPLY_LINE_RE.match(line.rstrip(b"\n").rstrip(b"\r"))
            if not m or (code is not None and int(m.group(1)) != code):
                r = Reply(raw=raw, kind="garbage")
                self.replies.append(r)
                return r
            code = int(m.group(1))
            ls.append(m.group(3).decode("latin-1"))
            if m.group(2) == b" ":
                r = Reply(code, ls, raw)
                self.replies.append(r)
                return r

    def send(self, data, trickle=False, delay=0.002):
        if isinstance(data, str):
            data = data.encode() + CRLF
        try:
            self.sock.settimeout(self.timeout)
            if trickle:
                for i in range(len(data)):
                    self.sock.sendall(data[i:i + 1])
                    time.sleep(delay)
            else:
                self.sock.sendall(data)
            return True
        except OSError as e:
            self.err = e
            return False

    def cmd(self, line, timeout=None):
        self.send(line)
        return self.reply(timeout)

    def quiet(self, wait):
        """Whatever arrives within wait seconds (b"" when nothing did)."""
        deadline = time.monotonic() + wait
        before = len(self.buf)
        while time.monotonic() < deadline and not self.eof:
            self._recv(deadline - time.monotonic())
        return self.buf[before:]

    def wait_close(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._recv(deadline - time.monotonic())
        return self.eof

    def starttls(self, ctx, hostname=HOSTNAME, ragged=True):
        """Handshake on this socket; False (tls_error set) when it fails."""
        try:
            self.sock.settimeout(self.timeout)
            # explicit do_handshake: wrap_socket silently skips the
            # handshake when the peer is already gone (getpeername fails)
            self.sock = ctx.wrap_socket(self.sock, server_hostname=hostname, do_handshake_on_connect=False,
                                        suppress_ragged_eofs=ragged)
            self.sock.do_handshake()
            if self.sock.version() is None:
                raise ssl.SSLError("no TLS version after the handshake")
            return True
        except OSError as e:
            self.tls_error = e
            self.eof = True
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Snap:
    """new/ and tmp/ before a session, for the spool invariant."""

    def __init__(self, srv):
        self.srv = srv
        self.before = srv.list_new()
        self.tmp_before = srv.list_tmp()

    def result(self, replies):
        self.srv.wait_sessions(5)
        res = SessionResult()
        res.replies = list(replies)
        res.before, res.tmp_before = self.before, self.tmp_before
        res.after, res.tmp_after = self.srv.list_new(), self.srv.list_tmp()
        return res


def invariant_ids(t, srv, snap, ids, desc):
    """The invariant for a client whose replies we do not hold as Reply
    objects (smtplib, s_client): new files == the ids from 250s."""
    srv.wait_sessions(5)
    new = sorted(srv.list_new() - snap.before)
    left = sorted(set(srv.list_tmp()) - set(snap.tmp_before))
    return t.ok(new == sorted(ids) and not left,
                desc + ": new/ files == 250 replies to end-of-data",
                "new files: %s" % new, "queued ids: %s" % ids, "left in tmp/: %s" % left)


def skip(t, reason):
    """A TAP skip line (t.ok would escape the '#')."""
    t.n += 1
    print("ok %d # skip %s" % (t.n, reason))


def log_count(srv, regex):
    return len(re.findall(regex, srv.log()))


def log_grew(srv, regex, before, timeout=3.0):
    """Did the log gain a line matching regex (beyond `before` of them)?"""
    deadline = time.monotonic() + timeout
    while log_count(srv, regex) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    return log_count(srv, regex) > before


def ehlo_keywords(r):
    return r.lines[1:] if r.kind == "reply" else None


def queued_id(r):
    m = re.search(r"queued as ([0-9A-F]+)", r.text if r.kind == "reply" else "")
    return m.group(1) if m else None


MSG = (b"From: a@b.example\r\nTo: u@example.com\r\nSubject: over TLS\r\n\r\n"
       b"body line\r\n..dot line\r\nlast\r\n")
STORED = b"From: a@b.example\r\nTo: u@example.com\r\nSubject: over TLS\r\n\r\nbody line\r\n.dot line\r\nlast\r\n"


def send_message(t, c, desc, sender="<a@b.example>", rcpts=("<u@example.com>",), want_rcpt=None):
    """MAIL, RCPT..., DATA over an open (TLS) connection; returns the queue
    id or None. want_rcpt: expected RCPT codes (default all 250 2.1.5)."""
    t.expect(c.cmd("MAIL FROM:" + sender), "250 2.1.0", "%s: MAIL 250 2.1.0" % desc)
    ok = 0
    for i, rc in enumerate(rcpts):
        want = want_rcpt[i] if want_rcpt else "250 2.1.5"
        r = c.cmd("RCPT TO:" + rc)
        t.expect(r, want, "%s: RCPT %s -> %s" % (desc, rc, want))
        ok += reply_matches(r, "250")
    if not ok:
        c.cmd("RSET")
        return None
    t.expect(c.cmd("DATA"), "354", "%s: DATA 354" % desc)
    c.send(MSG + b".\r\n")
    r = c.reply()
    t.expect(r, "250 2.0.0", "%s: end of data 250 2.0.0" % desc)
    return queued_id(r)


def tls_dialog(t, srv, C, desc, cert=None, helo="tls.client", ctx=None):
    """Greeting, EHLO, STARTTLS, handshake, EHLO. Returns the Conn (TLS
    up) or None, with one TAP line per step."""
    c = Conn(srv.port)
    t.expect(c.reply(), "220", "%s: greeting" % desc)
    r = c.cmd("EHLO pre." + helo)
    t.is_(ehlo_keywords(r), TLS_KEYWORDS, "%s: EHLO in plaintext offers STARTTLS" % desc)
    t.expect(c.cmd("STARTTLS"), "220 2.0.0", "%s: STARTTLS 220 2.0.0" % desc, text="Ready to start TLS")
    if not t.ok(c.starttls(ctx or client_ctx(C, cert)), "%s: TLS handshake" % desc, repr(c.tls_error)):
        c.close()
        return None
    r = c.cmd("EHLO " + helo)
    t.is_(ehlo_keywords(r), PLAIN_KEYWORDS, "%s: EHLO over TLS, STARTTLS no longer offered" % desc)
    return c


def check_tls_file(t, srv, sid, desc, helo, tls_info, ccert=None, sender="<a@b.example>",
                   rcpts=("<u@example.com>",), body=STORED):
    try:
        f = srv.spool_file(sid)
    except OSError as e:
        t.ok(False, "%s: new/%s exists" % (desc, sid), str(e))
        return
    keys = ["SMAP", "id", "arrival", "client", "helo", "proto", "tls"] + (["ccert"] if ccert else []) + \
        ["body", "from"] + ["rcpt"] * len(rcpts) + ["size"]
    t.is_(f.keys(), keys, "%s: envelope records in order (tls%s)" % (desc, ", ccert" if ccert else ", no ccert"))
    t.is_(f.env.get("proto"), "ESMTPS", "%s: proto ESMTPS" % desc)
    t.is_(f.env.get("helo"), helo, "%s: helo is the EHLO sent over TLS" % desc)
    t.is_(f.env.get("tls"), tls_info, "%s: tls record = protocol and cipher" % desc)
    if ccert:
        t.is_(f.env.get("ccert"), ccert, "%s: ccert record = fingerprint and escaped subject" % desc)
    t.is_(f.env.get("from"), sender, "%s: from" % desc)
    t.is_(f.rcpt, list(rcpts), "%s: rcpt records" % desc)
    rec, rest = f.received()
    rx = (rb"\AReceived: from " + re.escape(helo.encode()) + rb" \(unknown \[127\.0\.0\.1\]\)\r\n"
          rb"\t\(using " + re.escape(tls_info.encode()) + rb"\)\r\n"
          rb"\tby " + re.escape(HOSTNAME.encode()) + rb" with ESMTPS id " + sid.encode() +
          (rb"\r\n\tfor " + re.escape(rcpts[0].encode()) if len(rcpts) == 1 else b"") +
          rb"; " + DATE_RE.encode() + rb"\r\n\Z")
    t.like(rec, rx, "%s: Received header 'with ESMTPS' and '(using %s)'" % (desc, tls_info))
    t.is_(rest, body, "%s: message stored after the Received header" % desc)
    t.unlike(f.data, rb"[^\x0a\x0d\x09\x20-\x7e]", "%s: spool file holds no raw control or 8-bit bytes" % desc)


# --------------------------------------------------------------------------
# cases


def test_smtplib(t, srv, C):
    snap = Snap(srv)
    s = smtplib.SMTP(timeout=10)
    sid = None
    try:
        code, _ = s.connect("127.0.0.1", srv.port)
        t.is_(code, 220, "smtplib: greeting")
        s.local_hostname = "pre.smtplib.client"
        code, resp = s.ehlo()
        t.ok(code == 250 and s.has_extn("starttls"), "smtplib: EHLO before TLS offers STARTTLS", resp)
        s._host = HOSTNAME     # the name smtplib checks the certificate against
        code, resp = s.starttls(context=client_ctx(C))
        t.ok(code == 220 and resp.startswith(b"2.0.0 Ready to start TLS"),
             "smtplib: STARTTLS 220 2.0.0 Ready to start TLS", resp)
        info = "%s %s" % (s.sock.version(), s.sock.cipher()[0])
        t.is_(s.sock.version(), "TLSv1.3", "smtplib: TLS 1.3 negotiated")
        s.local_hostname = "smtplib.client"
        code, resp = s.ehlo()
        t.ok(code == 250 and not s.has_extn("starttls"), "smtplib: EHLO after TLS does not offer STARTTLS", resp)
        t.is_(resp.split(b"\n")[1:], [k.encode() for k in PLAIN_KEYWORDS], "smtplib: EHLO keywords over TLS")
        code, r = s.mail("a@b.example")
        t.ok(code == 250, "smtplib: MAIL over TLS", r)
        code, r = s.rcpt("u@example.com")
        t.ok(code == 250, "smtplib: RCPT over TLS", r)
        code, r = s.data(MSG)
        m = re.search(rb"queued as ([0-9A-F]+)", r)
        t.ok(code == 250 and m, "smtplib: message accepted over TLS", r)
        sid = m.group(1).decode() if m else None
        code, r = s.quit()
        t.is_(code, 221, "smtplib: QUIT 221")
    finally:
        s.close()
    invariant_ids(t, srv, snap, [sid] if sid else [], "smtplib STARTTLS")
    if sid:
        # smtplib dot-stuffs MSG itself, so it is stored as given
        check_tls_file(t, srv, sid, "smtplib", "smtplib.client", info, body=MSG)
    lg = srv.wait_log(r"TLS connection established", 3) and srv.log()
    t.like(lg or srv.log(), r"(?m)smap/smtpd\[\d+\]: TLS connection established from unknown\[127\.0\.0\.1\]: "
           + re.escape(info) + "$", "smtplib: log: TLS connection established ... %s" % info)

    # MAIL right after the handshake, without a new EHLO
    snap = Snap(srv)
    s = smtplib.SMTP(timeout=10)
    try:
        s.connect("127.0.0.1", srv.port)
        s.local_hostname = "reset.client"
        s.ehlo()
        s._host = HOSTNAME
        s.starttls(context=client_ctx(C))
        code, r = s.mail("a@b.example")
        t.ok(code == 503 and r.startswith(b"5.5.1"), "smtplib: MAIL right after STARTTLS, no EHLO -> 503 5.5.1",
             "%d %r" % (code, r))
        code, r = s.rcpt("u@example.com")
        t.ok(code == 503, "smtplib: RCPT after that -> 503", "%d %r" % (code, r))
        s.ehlo()
        code, r = s.mail("a@b.example")
        t.is_(code, 250, "smtplib: after EHLO over TLS, MAIL 250")
        s.quit()
    finally:
        s.close()
    invariant_ids(t, srv, snap, [], "MAIL without EHLO after STARTTLS")


def test_s_client(t, srv, C):
    snap = Snap(srv)
    argv = [OPENSSL, "s_client", "-starttls", "smtp", "-connect", "127.0.0.1:%d" % srv.port,
            "-name", "pre.sclient.test", "-quiet", "-CAfile", C["ca_pem"], "-verify_return_error",
            "-verify_hostname", HOSTNAME]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = err = b""
    try:
        for chunk, pause in ((lines("EHLO sclient.test", "MAIL FROM:<a@b.example>", "RCPT TO:<u@example.com>",
                                    "DATA"), 0.5), (MSG + b".\r\n", 0.3), (b"QUIT\r\n", 0)):
            p.stdin.write(chunk)
            p.stdin.flush()
            time.sleep(pause)
        out, err = p.communicate(timeout=15)
    except (subprocess.TimeoutExpired, OSError) as e:
        p.kill()
        out, err = p.communicate()
        t.ok(False, "openssl s_client: finished in time", repr(e))
    txt = out.decode("latin-1")
    codes = re.findall(r"(?m)^(\d{3}) ", txt)
    etxt = err.decode("latin-1")
    # exit 1 with "unexpected eof" only means no close_notify: checked on its own in test_commands
    t.ok(re.search(r"(?m)^depth=0 CN = %s\s+verify return:1" % re.escape(HOSTNAME), etxt) and
         "verify error" not in etxt and (p.returncode == 0 or "unexpected eof" in etxt),
         "openssl s_client -starttls smtp: server certificate verified, no other error",
         "exit %s" % p.returncode, etxt[-600:])
    t.ok(codes[-5:] == ["250", "250", "250", "354", "250", "221"][-5:] and "221" in codes and "354" in codes,
         "openssl s_client: EHLO, MAIL, RCPT, DATA, end of data, QUIT answered over TLS",
         "stdout: %r" % txt[-800:], "stderr: %r" % err[-400:])
    t.like(txt, r"(?m)^250-%s\r?$" % re.escape(HOSTNAME), "openssl s_client: EHLO over TLS answered")
    m = re.search(r"queued as ([0-9A-F]+)", txt)
    sid = m.group(1) if m else None
    invariant_ids(t, srv, snap, [sid] if sid else [], "openssl s_client")
    if sid:
        f = srv.spool_file(sid)
        t.is_(f.env.get("proto"), "ESMTPS", "openssl s_client: proto ESMTPS")
        t.is_(f.env.get("helo"), "sclient.test", "openssl s_client: helo from the EHLO after TLS")
        t.like(f.env.get("tls"), r"^TLSv1\.3 TLS_\S+$", "openssl s_client: tls record")


def test_levels(t, srv_enc, srv_may, C):
    # encrypt: nothing happens in plaintext
    snap = Snap(srv_enc)
    c = Conn(srv_enc.port)
    try:
        t.expect(c.reply(), "220", "encrypt: greeting")
        t.is_(ehlo_keywords(c.cmd("EHLO plain.client")), TLS_KEYWORDS, "encrypt: EHLO offers STARTTLS")
        t.expect(c.cmd("MAIL FROM:<a@b.example>"), "530 5.7.0", "encrypt: plaintext MAIL -> 530 5.7.0",
                 text="STARTTLS")
        t.expect(c.cmd("RCPT TO:<u@example.com>"), "503 5.5.1", "encrypt: RCPT after refused MAIL -> 503 5.5.1")
        t.expect(c.cmd("DATA"), ("503 5.5.1", "554 5.5.1"), "encrypt: DATA -> 5xx 5.5.1")
        t.expect(c.cmd("HELO old.client"), "250", "encrypt: HELO 250")
        t.expect(c.cmd("MAIL FROM:<>"), "530 5.7.0", "encrypt: plaintext MAIL after HELO -> 530 5.7.0")
        c.cmd("QUIT")
    finally:
        c.close()
    t.invariant(snap.result(c.replies), "encrypt, plaintext")
    # the same pipelined in one write, message and all
    res = srv_enc.session([lines("EHLO plain.client", "MAIL FROM:<a@b.example>", "RCPT TO:<u@example.com>",
                                 "DATA") + msg("plain") + b".\r\nQUIT\r\n"])
    t.ok("354" not in res.codes and not res.new_files(), "encrypt: pipelined plaintext message: no 354, nothing stored",
         res.codes)
    t.invariant(res, "encrypt, pipelined plaintext")
    # and with STARTTLS it works
    snap = Snap(srv_enc)
    c = tls_dialog(t, srv_enc, C, "encrypt with STARTTLS")
    if c:
        info = "%s %s" % (c.sock.version(), c.sock.cipher()[0])
        sid = send_message(t, c, "encrypt with STARTTLS")
        c.cmd("QUIT")
        c.close()
        t.invariant(snap.result(c.replies), "encrypt with STARTTLS")
        if sid:
            check_tls_file(t, srv_enc, sid, "encrypt with STARTTLS", "tls.client", info)
    # may: plaintext is fine
    body = msg("plaintext under may")
    res = srv_may.session([lines("EHLO plain.client", "MAIL FROM:<a@b.example>", "RCPT TO:<u@example.com>",
                                 "DATA") + body + b".\r\nQUIT\r\n"])
    t.codes(res.replies, ["220", "250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"],
            "may: plaintext session accepted")
    t.invariant(res, "may, plaintext")
    ids = res.queued_ids()
    if ids:
        f = srv_may.spool_file(ids[0])
        t.is_(f.env.get("proto"), "ESMTP", "may, plaintext: proto ESMTP")
        t.ok("tls" not in f.env and "ccert" not in f.env, "may, plaintext: no tls or ccert record", f.keys())
        t.like(f.message, rb"\AReceived: from plain\.client \(unknown \[127\.0\.0\.1\]\)\r\n\tby \S+ with ESMTP id ",
               "may, plaintext: Received 'with ESMTP', no '(using' line")


INJ_MODES = ("one write", "separate segment", "late segment", "trickled")


def test_injection(t, srv, C, mode, n):
    """CVE-2011-0411: plaintext commands behind STARTTLS must never run."""
    desc = "injection (%s)" % mode
    victim = "inj%d@y.example" % n
    inj = lines("RSET", "MAIL FROM:<%s>" % victim, "RCPT TO:<%s>" % victim)
    snap = Snap(srv)
    nfail = log_count(srv, HANDSHAKE_FAILED % "STARTTLS")
    c = Conn(srv.port)
    ok_tls = False
    try:
        t.expect(c.reply(), "220", "%s: greeting" % desc)
        if mode == "trickled":
            c.send(b"EHLO inj.client\r\nSTARTTLS\r\n" + inj, trickle=True)
            t.expect(c.reply(), "250", "%s: EHLO 250" % desc)
        else:
            t.is_(ehlo_keywords(c.cmd("EHLO inj.client")), TLS_KEYWORDS, "%s: EHLO offers STARTTLS" % desc)
            if mode == "one write":
                c.send(b"STARTTLS\r\n" + inj)
            else:
                c.send(b"STARTTLS\r\n")
                if mode == "late segment":
                    time.sleep(0.3)
                c.send(inj)
        t.expect(c.reply(), "220 2.0.0", "%s: STARTTLS 220 2.0.0" % desc)
        extra = c.buf + c.quiet(0.3)
        t.is_(extra, b"", "%s: nothing in plaintext after the 220" % desc)
        c.buf = b""
        ok_tls = c.starttls(client_ctx(C))
        if mode == "one write":
            t.ok(ok_tls, "%s: handshake succeeds (the buffered commands were discarded)" % desc, repr(c.tls_error))
        elif mode == "late segment":
            # the commands reach smap while it waits for a ClientHello
            t.ok(not ok_tls, "%s: the handshake fails (plaintext where a ClientHello belongs)" % desc)
        else:
            t.note("%s: handshake %s" % (desc, "succeeded (commands discarded with the buffer)" if ok_tls
                                         else "failed (commands read as a TLS record): %s" % c.tls_error))
        if ok_tls:
            early = c.quiet(0.5)
            t.is_(early, b"", "%s: no reply over TLS before the client says anything" % desc)
            r = c.cmd("EHLO tls.client")
            t.ok(r.kind == "reply" and r.code == 250 and r.lines[0].split()[0] == HOSTNAME and
                 ehlo_keywords(r) == PLAIN_KEYWORDS,
                 "%s: first reply after the handshake answers the EHLO sent over TLS" % desc, repr(r))
            t.expect(c.cmd("RCPT TO:<u@example.com>"), "503 5.5.1",
                     "%s: RCPT over TLS -> 503 5.5.1 (injected MAIL never ran)" % desc)
            sid = send_message(t, c, desc)
            t.expect(c.cmd("QUIT"), "221", "%s: QUIT 221" % desc)
            if sid:
                f = srv.spool_file(sid)
                t.ok(f.env.get("from") == "<a@b.example>" and f.rcpt == ["<u@example.com>"]
                     and victim.encode() not in f.data, "%s: stored envelope holds only the TLS commands" % desc,
                     f.records)
        else:
            t.ok(c.wait_close(3), "%s: server closed after the failed handshake" % desc)
            t.unlike(c.buf, rb"(?m)^\d{3}[ -]", "%s: no SMTP reply after the failed handshake" % desc)
            t.ok(log_grew(srv, HANDSHAKE_FAILED % "STARTTLS", nfail), "%s: log: TLS handshake failed" % desc,
                 srv.log()[-600:])
    finally:
        c.close()
    t.invariant(snap.result(c.replies), desc)
    t.unlike(srv.log(), re.escape(victim), "%s: injected commands never reached the log" % desc)


def test_early_mail(t, srv, C):
    """A transaction begun before STARTTLS is forgotten."""
    snap = Snap(srv)
    c = Conn(srv.port)
    try:
        c.reply()
        c.send(lines("EHLO early.client", "MAIL FROM:<early@y.example>", "STARTTLS", "RCPT TO:<u@example.com>"))
        t.codes([c.reply(), c.reply(), c.reply()], ["250", "250 2.1.0", "220 2.0.0"],
                "pipelined EHLO, MAIL, STARTTLS: 250, 250, 220")
        t.is_(c.buf + c.quiet(0.2), b"", "pipelined MAIL before STARTTLS: nothing after the 220")
        if t.ok(c.starttls(client_ctx(C)), "pipelined MAIL before STARTTLS: handshake", repr(c.tls_error)):
            t.expect(c.cmd("EHLO early.client"), "250", "pipelined MAIL before STARTTLS: EHLO over TLS")
            t.expect(c.cmd("RCPT TO:<u@example.com>"), "503 5.5.1",
                     "pipelined MAIL before STARTTLS: sender forgotten, RCPT -> 503 5.5.1")
            c.cmd("QUIT")
    finally:
        c.close()
    t.invariant(snap.result(c.replies), "pipelined MAIL before STARTTLS")


def test_junk_hello(t, srv):
    for junk in (b"hello\r\nQUIT\r\n", b"GET / HTTP/1.0\r\n\r\n", b"\x16\x03\x01\x00\x05hello", b"\x80" * 64):
        desc = "junk %r instead of a ClientHello" % junk[:20]
        snap = Snap(srv)
        nlog = log_count(srv, HANDSHAKE_FAILED % "STARTTLS")
        c = srv.client()
        try:
            c.reply()
            c.cmd("EHLO junk.client")
            t.expect(c.cmd("STARTTLS"), "220 2.0.0", "%s: STARTTLS 220" % desc)
            t0 = time.monotonic()
            c.send(junk)
            closed = c.wait_close(7)
            el = time.monotonic() - t0
            t.ok(closed and el < 5.0, "%s: closed within the 5s handshake timeout" % desc, "closed=%s after %.1fs"
                 % (closed, el))
            left = c.pending()
            t.ok(not re.search(rb"(?m)^\d{3}[ -]", left) and (left == b"" or left[:1] == b"\x15"),
                 "%s: no SMTP reply afterwards (at most a TLS alert)" % desc, repr(left))
        finally:
            c.close()
        t.invariant(snap.result(c.replies), desc)
        t.ok(log_grew(srv, HANDSHAKE_FAILED % "STARTTLS", nlog), "%s: log: TLS handshake failed" % desc,
             srv.log()[-600:])


def test_silent(t, srv):
    """Nothing, or half a ClientHello record, after the 220: closed after
    smtpd_starttls_timeout (3s). Both run at once."""
    cases = (("silent client", b""), ("half a TLS record then silence", b"\x16\x03\x01\x02\x00\x01\x00\x01"))
    conns = []
    snap = Snap(srv)
    for desc, data in cases:
        c = srv.client()
        c.reply()
        c.cmd("EHLO slow.client")
        t.expect(c.cmd("STARTTLS"), "220 2.0.0", "%s: STARTTLS 220" % desc)
        t0 = time.monotonic()
        if data:
            c.send(data)
        conns.append((desc, c, t0))
    for desc, c, t0 in conns:
        closed = c.wait_close(8)
        el = time.monotonic() - t0
        t.ok(closed and 1.9 <= el <= 5.0, "%s: closed after the 3s handshake timeout" % desc,
             "closed=%s after %.2fs" % (closed, el))
        t.is_(c.pending(), b"", "%s: nothing sent after the 220" % desc)
        c.close()
    t.invariant(snap.result([r for _, c, _ in conns for r in c.replies]), "silent after STARTTLS")
    t.ok(log_grew(srv, HANDSHAKE_FAILED % "STARTTLS", 1), "silent after STARTTLS: log: TLS handshake failed, twice",
         srv.log()[-600:])


def cert_session(t, srv, C, cert, desc, foreign_want, record):
    """Plaintext RCPT to a foreign domain, then STARTTLS with `cert`:
    RCPT foreign must give foreign_want; a message to <postmaster> (or
    the foreign rcpt when it relays) is stored; ccert record == record."""
    snap = Snap(srv)
    c = Conn(srv.port)
    try:
        t.expect(c.reply(), "220", "%s: greeting" % desc)
        c.cmd("EHLO pre.cert.client")
        c.cmd("MAIL FROM:<a@b.example>")
        t.expect(c.cmd("RCPT TO:<u@foreign.example>"), "554 5.7.1", "%s: plaintext RCPT foreign -> 554 5.7.1" % desc)
        c.cmd("RSET")
    finally:
        c.close()
    t.invariant(snap.result(c.replies), desc + " (plaintext part)")
    snap = Snap(srv)
    c = tls_dialog(t, srv, C, desc, cert=cert, helo="cert.client")
    if c is None:
        return
    info = "%s %s" % (c.sock.version(), c.sock.cipher()[0])
    relays = foreign_want.startswith("250")
    rcpts = ("<u@foreign.example>",) if relays else ("<u@foreign.example>", "<postmaster>")
    sid = send_message(t, c, desc, rcpts=rcpts, want_rcpt=[foreign_want] if relays else [foreign_want, "250 2.1.5"])
    c.cmd("QUIT")
    c.close()
    t.invariant(snap.result(c.replies), desc)
    if sid:
        check_tls_file(t, srv, sid, desc, "cert.client", info, ccert=record,
                       rcpts=rcpts if relays else ("<postmaster>",))
    if record:
        t.like(srv.log(), r"(?m)TLS connection established from unknown\[127\.0\.0\.1\]: " + re.escape(info) +
               " client certificate " + re.escape(record) + "$", "%s: log names the client certificate" % desc)


def test_relay_cert(t, srv, C):
    odd = C["odd_fp"] + " " + token(ODD_ONELINE)
    cert_session(t, srv, C, "odd", "listed cert", "250 2.1.5", odd)
    cert_session(t, srv, C, "stranger", "unlisted cert", "554 5.7.1", None)
    cert_session(t, srv, C, None, "no cert", "554 5.7.1", None)
    t.unlike(srv.log(), re.escape(C["stranger_fp"]),
             "unlisted cert: its fingerprint is not logged as a client certificate")


def test_ca(t, srv, C):
    cert_session(t, srv, C, "caclient", "CAfile: CA-signed unlisted cert", "554 5.7.1",
                 C["caclient_fp"] + " " + token(CA_CLIENT_SUBJ))
    cert_session(t, srv, C, "stranger", "CAfile: self-signed unlisted cert", "554 5.7.1", None)
    cert_session(t, srv, C, "odd", "CAfile: listed self-signed cert", "250 2.1.5",
                 C["odd_fp"] + " " + token(ODD_ONELINE))


def test_trusted_net_unlisted(t, srv, C):
    """127.0.0.1 in mynetworks: an unlisted, unverified certificate is
    still not an identity and must not be recorded."""
    snap = Snap(srv)
    c = tls_dialog(t, srv, C, "mynetworks client, unlisted cert", cert="stranger", helo="net.client")
    if c is None:
        return
    info = "%s %s" % (c.sock.version(), c.sock.cipher()[0])
    sid = send_message(t, c, "mynetworks client, unlisted cert", rcpts=("<u@foreign.example>",))
    c.cmd("QUIT")
    c.close()
    t.invariant(snap.result(c.replies), "mynetworks client, unlisted cert")
    if sid:
        check_tls_file(t, srv, sid, "mynetworks client, unlisted cert", "net.client", info, ccert=None,
                       rcpts=("<u@foreign.example>",))


def test_wrapper(t, srv, C):
    snap = Snap(srv)
    c = Conn(srv.port)
    try:
        if t.ok(c.starttls(client_ctx(C)), "wrapper mode: TLS handshake right after connect", repr(c.tls_error)):
            info = "%s %s" % (c.sock.version(), c.sock.cipher()[0])
            r = c.reply()
            t.expect(r, "220", "wrapper mode: 220 greeting over TLS")
            t.is_(ehlo_keywords(c.cmd("EHLO wrap.client")), PLAIN_KEYWORDS, "wrapper mode: EHLO, no STARTTLS")
            t.expect(c.cmd("STARTTLS"), "554 5.5.1", "wrapper mode: STARTTLS -> 554 5.5.1")
            sid = send_message(t, c, "wrapper mode")
            t.expect(c.cmd("QUIT"), "221", "wrapper mode: QUIT 221")
            if sid:
                check_tls_file(t, srv, sid, "wrapper mode", "wrap.client", info)
    finally:
        c.close()
    t.invariant(snap.result(c.replies), "wrapper mode")
    # a plaintext client: no greeting, its EHLO is not a ClientHello
    snap = Snap(srv)
    c = srv.client()
    try:
        r = c.reply(timeout=1.0)
        t.ok(r.kind == "timeout" and c.pending() == b"", "wrapper mode, plaintext client: no greeting", repr(r))
        c.send(b"EHLO plain.client\r\n")
        t.ok(c.wait_close(4), "wrapper mode, plaintext client: closed after its EHLO")
        t.unlike(c.pending(), rb"(?m)^\d{3}[ -]", "wrapper mode, plaintext client: no SMTP reply")
    finally:
        c.close()
    t.invariant(snap.result(c.replies), "wrapper mode, plaintext client")
    t.like(srv.wait_log(HANDSHAKE_FAILED % "CONNECT", 3) and srv.log(), HANDSHAKE_FAILED % "CONNECT",
           "wrapper mode, plaintext client: log: TLS handshake failed after CONNECT")


def test_bad_config(t, C, base):
    cases = (
        ("cert file missing", {"smtpd_tls_cert_file": "/nonexistent/smap-cert.pem"}, r"/nonexistent/smap-cert\.pem"),
        ("cert file not a certificate", {"smtpd_tls_cert_file": C["junk_pem"]}, re.escape(C["junk_pem"])),
        ("key does not match the cert", {"smtpd_tls_key_file": C["other_key"]}, re.escape(C["other_key"])),
        ("key file missing", {"smtpd_tls_key_file": "/nonexistent/smap.key"}, r"/nonexistent/smap\.key"),
        ("CAfile missing", {"smtpd_tls_CAfile": "/nonexistent/ca.pem"}, r"/nonexistent/ca\.pem"),
        ("encrypt without a cert", {"smtpd_tls_security_level": "encrypt", "smtpd_tls_cert_file": None,
                                    "smtpd_tls_key_file": None}, r"smtpd_tls_cert_file"),
        ("wrapper mode without a cert", {"smtpd_tls_security_level": None, "smtpd_tls_wrappermode": "yes",
                                         "smtpd_tls_cert_file": None, "smtpd_tls_key_file": None},
         r"smtpd_tls_cert_file"),
    )
    for desc, over, why in cases:
        conf = dict(base)
        conf.update(over)
        with Server(t, conf=conf, name="bad TLS config: " + desc) as srv:
            c = srv.client()
            try:
                r = c.reply(timeout=4)
                t.expect(r, "421 4.3.0", "bad TLS config (%s): no greeting: 421 4.3.0, so senders retry" % desc,
                         text=r"^4\.3\.0 Service temporarily unavailable$")
                t.ok(c.wait_close(4) and c.pending() == b"", "bad TLS config (%s): then closed" % desc,
                     repr(c.pending()))
            finally:
                c.close()
            srv.wait_sessions(3)
            t.is_(srv.count_new(), 0, "bad TLS config (%s): nothing stored" % desc)
            t.like(srv.wait_log(why, 3) and srv.log(), r"(?m)smap/smtpd\[\d+\]: .*" + why,
                   "bad TLS config (%s): log says why" % desc)
            t.unlike(srv.log(), r"connect from", "bad TLS config (%s): no session was started" % desc)


def linked_statically(path):
    """Has the program no interpreter (PT_INTERP): a static smap?"""
    p = subprocess.run(["readelf", "-l", path], capture_output=True, text=True)
    return p.returncode == 0 and "Requesting program interpreter" not in p.stdout


STATIC = linked_statically(SMAP_BIN)
BUILD = os.path.join(os.path.dirname(SMAP_BIN), "smap-dynamic")


def put(src, dst, mode):
    shutil.copy(src, dst)
    os.chmod(dst, mode)


def module_dirs(d):
    """shlib_directory variants that smap must refuse: no module, one
    that others may write, a good one below a directory others may write
    (where the file could be swapped), junk, and one built for another
    table; each with the dynamic build a static smap runs for TLS. And
    for a static smap: no dynamic build, one others may write, and the
    static smap itself in its place."""
    real = os.path.join(os.path.dirname(SMAP_BIN), "smap-tls.so")
    out = {}
    for name in ("empty", "groupw", "junk", "abi", "nobuild", "buildw", "selfbuild"):
        out[name] = os.path.join(d, "shlib-" + name)
        os.mkdir(out[name])
    put(real, os.path.join(out["groupw"], "smap-tls.so"), 0o664)
    gw = os.path.join(d, "shlib-gwdir")
    os.mkdir(gw)
    os.chmod(gw, 0o775)
    out["gwdir"] = os.path.join(gw, "lib")
    os.mkdir(out["gwdir"])
    put(real, os.path.join(out["gwdir"], "smap-tls.so"), 0o644)
    with open(os.path.join(out["junk"], "smap-tls.so"), "w") as f:
        f.write("not an ELF object\n")
    src = os.path.join(d, "abi.c")
    with open(src, "w") as f:
        f.write("const struct { int abi; } smap_tls_server = { 99 };\n")
    p = subprocess.run(["cc", "-shared", "-fPIC", "-o", os.path.join(out["abi"], "smap-tls.so"), src],
                       capture_output=True)
    if p.returncode != 0:
        raise RuntimeError("cc -shared failed: %r" % p.stderr)
    for name in ("empty", "groupw", "gwdir", "junk", "abi", "buildw", "selfbuild"):
        build = SMAP_BIN if name == "selfbuild" else BUILD
        put(build, os.path.join(out[name], "smap-dynamic"), 0o775 if name == "buildw" else 0o755)
    for name in ("nobuild", "buildw", "selfbuild"):
        put(real, os.path.join(out[name], "smap-tls.so"), 0o644)
    return out


def bad_modules():
    """(description, directory, what the log says) for each refusal"""
    cases = [
        ("no smap-tls.so", "empty", r"TLS: \S+/shlib-empty/smap-tls\.so: No such file or directory"),
        ("group-writable smap-tls.so", "groupw",
         r"TLS: \S+/shlib-groupw/smap-tls\.so: not a file only root may change"),
        ("smap-tls.so below a group-writable directory", "gwdir",
         r"TLS: .*\S+/shlib-gwdir/lib/smap-dynamic: directory \S+/shlib-gwdir may be changed by "
         r"someone other than root" if STATIC else
         r"TLS: \S+/shlib-gwdir/lib/smap-tls\.so: directory \S+/shlib-gwdir may be changed by someone "
         r"other than root"),
        ("smap-tls.so not an object", "junk", r"TLS: \S+/shlib-junk/smap-tls\.so: \S"),
        ("smap-tls.so of another build", "abi", r"TLS: \S+/shlib-abi/smap-tls\.so: built for another smap"),
    ]
    if STATIC:
        cases += [
            ("static smap, no smap-dynamic", "nobuild",
             r"TLS: \S+/shlib-nobuild/smap-tls\.so: this smap is linked statically and loads no modules, "
             r"and its dynamic build, which does, could not be run: \S+/shlib-nobuild/smap-dynamic: "
             r"No such file or directory"),
            ("static smap, group-writable smap-dynamic", "buildw",
             r"TLS: .*could not be run: \S+/shlib-buildw/smap-dynamic: not a file only root may change"),
            ("static smap, itself as smap-dynamic", "selfbuild",
             r"TLS: .*could not be run: \S+/shlib-selfbuild/smap-dynamic: not a dynamically linked "
             r"program \(a copy of the static smap\?\)"),
        ]
    return cases


def test_bad_module(t, d, base):
    dirs = module_dirs(d)
    for desc, which, why in bad_modules():
        with Server(t, conf=dict(base, shlib_directory=dirs[which]), name="bad module: " + desc) as srv:
            c = srv.client()
            try:
                r = c.reply(timeout=4)
                t.expect(r, "421 4.3.0", "%s: no greeting: 421 4.3.0" % desc)
                t.ok(c.wait_close(4), "%s: then closed" % desc)
            finally:
                c.close()
            srv.wait_sessions(3)
            t.like(srv.wait_log(why, 3) and srv.log(), r"(?m)smap/smtpd\[\d+\]: (fatal|warning): .*" + why,
                   "%s: refused, and the log says why" % desc)
            t.unlike(srv.log(), r"connect from", "%s: no session was started" % desc)
            p = subprocess.run([SMAP_BIN, "-t", "-c", srv.conffile], capture_output=True, text=True,
                               timeout=30)
            t.ok(p.returncode == 78 and re.search(why, p.stderr),
                 "%s: smap -t exits 78 and says why" % desc, p.returncode, p.stderr[-600:])


def mapped(pid):
    with open("/proc/%d/maps" % pid) as f:
        return f.read()


def test_maps(t, srv_may, srv_none):
    """TLS off: a session never maps OpenSSL. TLS on: it maps it through
    smap-tls.so only."""
    for srv, desc, want in ((srv_none, "TLS off", False), (srv_may, "TLS may", True)):
        c = srv.client()
        try:
            r = c.reply(timeout=5)
            pid = srv.wait_smap_pid()
            maps = mapped(pid) if r.code == 220 and pid else ""
            t.ok(maps != "", "%s: a session is running (220, pid %s)" % (desc, pid), repr(r))
            got = [bool(re.search(r"/%s[^/\n]*$" % re.escape(lib), maps, re.M))
                   for lib in ("smap-tls.so", "libssl.so", "libcrypto.so")]
            t.is_(got, [want] * 3, "%s: smap-tls.so, libssl, libcrypto mapped: %s" % (desc, want))
            exe = os.path.realpath("/proc/%d/exe" % pid) if pid else None
            t.is_(exe, os.path.realpath(BUILD if want and STATIC else SMAP_BIN),
                  "%s: the session runs %s" % (desc, "smap-dynamic" if want and STATIC else "smap"))
            c.send(b"QUIT\r\n")
            c.reply(timeout=5)
        finally:
            c.close()


def test_commands(t, srv_may, srv_none, C):
    snap = Snap(srv_may)
    c = Conn(srv_may.port)
    try:
        c.reply()
        c.cmd("EHLO cmd.client")
        t.expect(c.cmd("STARTTLS x"), "501 5.5.4", "STARTTLS x -> 501 5.5.4")
        t.expect(c.cmd("NOOP"), "250", "after STARTTLS x: still in plaintext, NOOP 250")
        t.expect(c.cmd("STARTTLS"), "220 2.0.0", "STARTTLS after the syntax error -> 220")
        if t.ok(c.starttls(client_ctx(C), ragged=False), "STARTTLS after the syntax error: handshake",
                repr(c.tls_error)):
            t.expect(c.cmd("EHLO cmd.client"), "250", "EHLO over TLS")
            t.expect(c.cmd("STARTTLS"), "554 5.5.1", "second STARTTLS -> 554 5.5.1")
            t.expect(c.cmd("NOOP"), "250", "after the second STARTTLS the session goes on over TLS")
            t.expect(c.cmd("QUIT"), "221", "QUIT 221 over TLS")
            t.ok(c.wait_close(3) and c.err is None, "after QUIT: TLS closed with close_notify, then TCP",
                 "closed=%s, error=%r" % (c.eof, c.err))
    finally:
        c.close()
    t.invariant(snap.result(c.replies), "STARTTLS command errors")
    res = srv_none.session([lines("EHLO none.client", "STARTTLS", "NOOP", "QUIT")])
    t.codes(res.replies, ["220", "250", "502 5.5.1", "250", "221"], "no TLS configured: STARTTLS -> 502 5.5.1")
    if len(res.replies) > 1:
        t.is_(ehlo_keywords(res.replies[1]), PLAIN_KEYWORDS, "no TLS configured: STARTTLS not advertised")
    t.invariant(res, "no TLS configured")


def local_can(maxver):
    """Can this host's Python/OpenSSL speak maxver at all? (loopback test
    against a local Python server that allows it)"""
    try:
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(CERTS["server_pem"], CERTS["server_key"])
        sctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        sctx.minimum_version = ssl.TLSVersion.TLSv1
        cctx = old_ctx(maxver)
    except (ssl.SSLError, ValueError, OSError) as e:
        return "cannot create the context: %s" % e
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(5)
    got = {}

    def serve():
        try:
            a, _ = ls.accept()
            a.settimeout(5)
            s = sctx.wrap_socket(a, server_side=True)
            got["v"] = s.version()
            s.close()
        except OSError as e:
            got["e"] = e
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        s = cctx.wrap_socket(socket.create_connection(ls.getsockname(), timeout=5))
        v = s.version()
        s.close()
    except OSError as e:
        v = "error %s" % e
    th.join(5)
    ls.close()
    want = {"TLSv1": "TLSv1", "TLSv1_1": "TLSv1.1"}[maxver.name]
    return None if v == want else "local OpenSSL would not speak %s: %s" % (want, v)


def old_ctx(maxver):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = maxver
    return ctx


def test_protocols(t, srv, C):
    # TLS 1.2 is still accepted, without session tickets
    c = tls_dialog(t, srv, C, "TLS 1.2 client", ctx=client_ctx(C, maxver=ssl.TLSVersion.TLSv1_2))
    if c:
        t.is_(c.sock.version(), "TLSv1.2", "TLS 1.2 client: TLSv1.2 negotiated")
        t.ok(c.sock.session is not None and not c.sock.session.has_ticket, "TLS 1.2 client: no session ticket")
        c.cmd("QUIT")
        c.close()
    for ver in (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1):
        desc = "%s client" % ver.name
        why = local_can(ver)
        if why:
            skip(t, "%s: %s" % (desc, why))
            continue
        snap = Snap(srv)
        c = Conn(srv.port)
        try:
            c.reply()
            c.cmd("EHLO old.client")
            t.expect(c.cmd("STARTTLS"), "220 2.0.0", "%s: STARTTLS 220" % desc)
            ok = c.starttls(old_ctx(ver))
            t.ok(not ok, "%s: handshake refused" % desc, "negotiated %s" % (c.sock.version() if ok else None))
            t.ok(c.wait_close(3), "%s: server closed" % desc)
        finally:
            c.close()
        t.invariant(snap.result(c.replies), desc)
    t.ok(srv.wait_log(HANDSHAKE_FAILED % "STARTTLS" + r".*(unsupported protocol|version)", 3),
         "TLS < 1.2: log: handshake failed (unsupported protocol)", srv.log()[-500:])

    # renegotiation and compression, seen by openssl s_client over TLS 1.2
    p = subprocess.Popen([OPENSSL, "s_client", "-starttls", "smtp", "-connect", "127.0.0.1:%d" % srv.port,
                          "-tls1_2", "-CAfile", C["ca_pem"], "-name", "reneg.client"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    try:
        for chunk, pause in ((b"EHLO reneg.client\r\n", 0.7), (b"R\n", 0.8), (b"NOOP\r\n", 0.4), (b"QUIT\r\n", 0)):
            try:
                p.stdin.write(chunk)
                p.stdin.flush()
            except OSError:
                pass
            time.sleep(pause * SLOW)
        out = p.communicate(timeout=10 * SLOW)[0]
    except subprocess.TimeoutExpired:
        p.kill()
        out = p.communicate()[0]
    txt = out.decode("latin-1")
    t.like(txt, r"(?m)^Compression: NONE$", "s_client TLS 1.2: Compression: NONE")
    t.like(txt, r"(?m)^Secure Renegotiation IS supported$",
           "s_client TLS 1.2: RFC 5746 secure renegotiation indication")
    t.like(txt, r"(?m)^RENEGOTIATING", "s_client TLS 1.2: renegotiation attempted")
    t.unlike(txt, r"(?m)^250 2\.0\.0 Ok\r?$",
             "s_client TLS 1.2: the NOOP after the renegotiation attempt is not answered")
    t.like(txt, r"(?i)no renegotiation", "s_client TLS 1.2: the server refused to renegotiate")


# --------------------------------------------------------------------------

CERTS = {}


def main(t):
    d = tempfile.mkdtemp(prefix="smaptest-tls.")
    os.chmod(d, 0o755)
    try:
        t0 = time.monotonic()
        C = make_certs(d)
        CERTS.update(C)
        t.note("certificates made in %.1fs" % (time.monotonic() - t0))
        base = {"smtpd_tls_security_level": "may", "smtpd_tls_cert_file": C["server_pem"],
                "smtpd_tls_key_file": C["server_key"], "smtpd_starttls_timeout": "5s"}
        with Server(t, conf=base, name="may") as srv:
            t.run("smtplib", test_smtplib, t, srv, C)
            t.run("s_client", test_s_client, t, srv, C)
            for n, mode in enumerate(INJ_MODES):
                t.run("injection " + mode, test_injection, t, srv, C, mode, n)
            t.run("early mail", test_early_mail, t, srv, C)
            t.run("junk", test_junk_hello, t, srv)
            t.run("protocols", test_protocols, t, srv, C)
            with Server(t, conf=dict(base, smtpd_tls_security_level="encrypt"), name="encrypt") as enc:
                t.run("levels", test_levels, t, enc, srv, C)
            with Server(t, conf={}, name="none") as none:
                t.run("commands", test_commands, t, srv, none, C)
                t.run("maps", test_maps, t, srv, none)
            check_log_clean(t, srv, "may")
        with Server(t, conf=dict(base, smtpd_starttls_timeout="3s"), name="slow") as srv:
            t.run("silent", test_silent, t, srv)
        relay = dict(base, mynetworks="192.0.2.0/24", relay_clientcerts="%s, %s" % (DECOY_FP, C["odd_fp"]))
        with Server(t, conf=relay, name="relay by cert") as srv:
            t.run("relay cert", test_relay_cert, t, srv, C)
            check_log_clean(t, srv, "relay by cert")
        with Server(t, conf=dict(relay, smtpd_tls_CAfile=C["ca_pem"]), name="CAfile") as srv:
            t.run("CAfile", test_ca, t, srv, C)
            check_log_clean(t, srv, "CAfile")
        with Server(t, conf=dict(base, relay_clientcerts=C["odd_fp"]), name="trusted net") as srv:
            t.run("trusted net", test_trusted_net_unlisted, t, srv, C)
        with Server(t, conf=dict(base, smtpd_tls_security_level="encrypt", smtpd_tls_wrappermode="yes",
                                 smtpd_starttls_timeout="3s"), name="wrapper") as srv:
            t.run("wrapper", test_wrapper, t, srv, C)
        t.run("bad config", test_bad_config, t, C, base)
        t.run("bad module", test_bad_module, t, d, base)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    TAP(watchdog=60).main(main)
