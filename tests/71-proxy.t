#!/usr/bin/env python3
# 71-proxy.t - threat model section 8: the PROXY protocol in smap
# (smtpd_upstream_proxy_protocol = haproxy), on raw sockets from 127.0.0.1.
#   - the header's client is the client for everything: the relay
#     decision (outside mynetworks: 554; inside: relayed), every log line,
#     the spool envelope and Received:; the proxy is named once, on the
#     connect line; v1 TCP4/TCP6, v2 TCP4/TCP6, IPv4-mapped unmapped;
#   - v2 LOCAL and v1 UNKNOWN are served as the proxy itself; a health
#     check that closes (FIN or reset) at once is one quiet line;
#   - each header split at every byte (the second piece sent once smap
#     has read the first and waits for more), and trickled byte by byte;
#   - a header and pipelined SMTP in one write: served, not a pregreet;
#     bytes sent later, before the greeting, still are one;
#   - every malformed form, a truncated header, a timeout, no header at
#     all (SMTP, HTTP, a TLS ClientHello), a peer outside
#     smtpd_upstream_proxy_networks: closed without a byte of reply, one
#     log line naming the reason;
#   - with the protocol off a header is not SMTP: 500 (or 554 before the
#     greeting), its address never taken;
#   - TLS wrapper mode behind a v2 header, the ClientHello in the same
#     write as the header.
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import (TAP, Server, Client, HOSTNAME, VALGRIND, lines, msg, received_re,  # noqa: E402
                      check_log_clean)
from haproxy import SIG, V2_LOCAL, v1, v2  # noqa: E402

ON = {"smtpd_upstream_proxy_protocol": "haproxy", "mynetworks": "127.0.0.1/32",
      "relay_domains": "example.com", "smtpd_upstream_proxy_timeout": "1s"}
REFUSED = r"smap/smtpd\[(\d+)\]: warning: PROXY header refused from unknown\[127\.0\.0\.1\]: %s$"
TLV = b"\x04\x00\x03abc" + b"\x05\x00\x08" + b"u" * 8      # NOOP and UNIQUE_ID TLVs

GOOD = [
    ("v1 TCP4", v1("198.51.100.7", 40001), "198.51.100.7", 40001),
    ("v1 TCP6", v1("2001:db8::7", 40002), "2001:db8::7", 40002),
    ("v2 TCP4 with TLVs", v2("198.51.100.7", 40003, tlvs=TLV), "198.51.100.7", 40003),
    ("v2 TCP6", v2("2001:db8::7", 40004), "2001:db8::7", 40004),
    ("v2 TCP6 IPv4-mapped", v2("::ffff:198.51.100.8", 40005), "198.51.100.8", 40005),
]

BAD = [
    ("v1 bad address", b"PROXY TCP4 192.0.2.300 127.0.0.1 1 25\r\n", "bad v1 address"),
    ("v1 TCP4 naming IPv6", b"PROXY TCP4 2001:db8::1 127.0.0.1 1 25\r\n", "bad v1 address"),
    ("v1 name, not address", b"PROXY TCP4 localhost 127.0.0.1 1 25\r\n", "bad v1 address"),
    ("v1 port 65536", b"PROXY TCP4 192.0.2.1 127.0.0.1 65536 25\r\n", "bad port"),
    ("v1 port 025", b"PROXY TCP4 192.0.2.1 127.0.0.1 025 25\r\n", "bad port"),
    ("v1 two spaces", b"PROXY TCP4 192.0.2.1  127.0.0.1 1 25\r\n", "bad v1 field spacing"),
    ("v1 five fields", b"PROXY TCP4 192.0.2.1 127.0.0.1 1 25 6\r\n", "bad v1 field spacing"),
    ("v1 UDP4", b"PROXY UDP4 192.0.2.1 127.0.0.1 1 25\r\n", "unsupported v1 protocol"),
    ("v1 bare LF", b"PROXY TCP4 192.0.2.1 127.0.0.1 1 25\n", "bare LF or NUL in v1 line"),
    ("v1 NUL", b"PROXY TCP4 192.0.2.1\x00 127.0.0.1 1 25\r\n", "bare LF or NUL in v1 line"),
    ("v1 bare CR", b"PROXY TCP4 192.0.2.1 127.0.0.1 1 25\rEHLO x\r\n", "bare CR in v1 line"),
    ("v1 108 bytes", b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n", "v1 line too long"),
    ("v1 300 bytes, no CRLF", b"PROXY TCP4 " + b"1" * 289, "v1 line too long"),
    ("v2 version 1", SIG + b"\x11\x11\x00\x0c" + b"\x00" * 12, "unsupported v2 version"),
    ("v2 command 2", SIG + b"\x22\x11\x00\x0c" + b"\x00" * 12, "unsupported v2 command"),
    ("v2 UDP4", SIG + b"\x21\x12\x00\x0c" + b"\x00" * 12, "wrong address family"),
    ("v2 UNIX stream", SIG + b"\x21\x31\x00\xd8" + b"\x00" * 216, "wrong address family"),
    ("v2 TCP4 block of 11", SIG + b"\x21\x11\x00\x0b" + b"\x00" * 11, "v2 address block too short"),
    ("v2 TCP6 block of 35", SIG + b"\x21\x21\x00\x23" + b"\x00" * 35, "v2 address block too short"),
    ("v2 stating 65535 bytes", SIG + b"\x21\x11\xff\xff" + b"EHLO x\r\n", "v2 header too long"),
    ("v2 TLV overrun", v2("198.51.100.7", 1)[:15] + b"\x10" + v2("198.51.100.7", 1)[16:] +
     b"\x04\x00\x09abc", "TLV overruns header"),
    ("no header: SMTP", b"EHLO client.example\r\n", "not a PROXY header"),
    ("no header: HTTP", b"GET / HTTP/1.0\r\n\r\n", "not a PROXY header"),
    ("no header: a TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 32,
     "not a PROXY header"),
    ("lower-case proxy", b"proxy TCP4 192.0.2.1 127.0.0.1 1 25\r\n", "not a PROXY header"),
]


def log_lines(srv, regex):
    return re.findall(regex, srv.log(), re.M)


def pid_lines(srv, pid):
    return [l for l in srv.log().splitlines() if "smap/smtpd[%s]:" % pid in l]


def wait_reading(srv, timeout=5.0):
    """The session's smap, once it waits in poll(2) for more input (it
    has read all that was there). Returns its PID or None."""
    pid = srv.wait_smap_pid(timeout)
    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline:
        try:
            with open("/proc/%d/syscall" % pid) as f:
                nr = f.read().split(" ", 1)[0]
        except OSError:
            return None
        if nr in ("7", "271"):      # poll, ppoll (x86_64)
            return pid
        time.sleep(0.005)
    return None


def refused_quietly(t, srv, data, reason, desc, eof=False, wait=5.0):
    """data sent (then, eof=True, the write side shut): the connection
    is closed without a byte, one log line names the reason."""
    n = len(log_lines(srv, REFUSED % re.escape(reason)))
    c = srv.client()
    try:
        if data:
            c.send(data)
        if eof:
            c.sock.shutdown(socket.SHUT_WR)
        got, closed = c.read_until_close(wait)
    finally:
        c.close()
    srv.wait_sessions(5)
    m = log_lines(srv, REFUSED % re.escape(reason))
    t.ok(closed and got == b"" and len(m) == n + 1,
         "%s: closed without a reply, logged \"%s\"" % (desc, reason),
         "closed=%s got=%r" % (closed, got[:200]), srv.log()[-800:])


def test_good(t, srv):
    """Each good header: 220, then the header's client is the client."""
    for name, hdr, addr, port in GOOD:
        before = srv.list_new()
        c = srv.client()
        c.send(hdr)
        ok = c.reply().code == 220
        for line, want in (("EHLO client.example", 250), ("MAIL FROM:<a@b.example>", 250),
                           ("RCPT TO:<x@elsewhere.example>", 554), ("RCPT TO:<u@example.com>", 250),
                           ("DATA", 354)):
            r = c.cmd(line)
            ok = ok and r.code == want
        c.send(msg(name) + b".\r\n")
        r = c.reply()
        ok = ok and r.code == 250 and c.cmd("QUIT").code == 221
        c.close()
        srv.wait_sessions(5)
        t.ok(ok, "%s: 220, relay refused for %s (outside mynetworks), message accepted" % (name, addr),
             "replies: %s" % [x.short() for x in c.replies])
        new = sorted(srv.list_new() - before)
        if not t.ok(len(new) == 1, "%s: one file in new/" % name):
            continue
        sf = srv.spool_file(new[0])
        t.is_(sf.env.get("client"), "%s %d" % (addr, port), "%s: spool envelope client" % name)
        t.like(sf.message, received_re("client.example", new[0], rcpt="u@example.com", client=addr),
               "%s: Received: names [%s]" % (name, addr))
        esc = re.escape(addr)
        log = srv.log()
        t.like(log, r"connect from unknown\[%s\] proxy=\[127\.0\.0\.1\]$" % esc,
               "%s: connect line names the client, and the proxy once" % name, re.M)
        t.like(log, r"NOQUEUE: reject: RCPT from unknown\[%s\]: 554 5\.7\.1 <x@elsewhere\.example>" % esc,
               "%s: the relay refusal names the client" % name, re.M)
        t.like(log, r"%s: client=unknown\[%s\]$" % (new[0], esc), "%s: client= line" % name, re.M)
        t.like(log, r"disconnect from unknown\[%s\] ehlo=1 mail=1 rcpt=1/2 data=1 quit=1" % esc,
               "%s: disconnect line" % name, re.M)
    t.is_(len(re.findall(r"proxy=\[", srv.log())), len(GOOD), "the proxy is named once per session")
    # A header naming a client in mynetworks: it relays (the decision is the header's).
    res = srv.session([v1("127.0.0.1", 40010) + lines("EHLO in.example", "MAIL FROM:<a@b.example>",
                                                       "RCPT TO:<x@elsewhere.example>", "QUIT")], greet=False)
    t.is_([r.code for r in res.replies][:4], [220, 250, 250, 250],
          "header naming 127.0.0.1 (mynetworks): relayed")


def test_local(t, srv):
    """v2 LOCAL and v1 UNKNOWN: served as the proxy (127.0.0.1)."""
    as_proxy = r"connect from unknown\[127\.0\.0\.1\] proxy=\[127\.0\.0\.1\]$"
    n = len(re.findall(as_proxy, srv.log(), re.M))
    for name, hdr in (("v2 LOCAL", V2_LOCAL), ("v2 LOCAL with TLVs", SIG + b"\x20\x00\x00\x08" + TLV[:8]),
                      ("v2 PROXY UNSPEC", SIG + b"\x21\x00\x00\x00"), ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n"),
                      ("v1 UNKNOWN with addresses", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")):
        res = srv.session([hdr + lines("EHLO hc.example", "MAIL FROM:<a@b.example>",
                                       "RCPT TO:<x@elsewhere.example>", "QUIT")], greet=False)
        t.is_([r.code for r in res.replies][:5], [220, 250, 250, 250, 221],
              "%s: served as the proxy 127.0.0.1 (in mynetworks: relays)" % name)
    t.is_(len(re.findall(as_proxy, srv.log(), re.M)) - n, 5,
          "LOCAL/UNKNOWN: the connect line names the proxy as both")


def test_health(t, srv):
    """A peer that closes at once: before the header, right after a
    LOCAL header, after a header naming the proxy itself (what HAProxy's
    v1 checks send), with FIN or with a reset (also one that takes the
    peer's address with it before smap looks): one quiet line each."""
    cases = [("closed before the header", b"", False, "closed before the header"),
             ("reset before the header", b"", True, "closed before the header"),
             ("v2 LOCAL, then FIN", V2_LOCAL, False, "closed after the header"),
             ("v2 LOCAL, then reset", V2_LOCAL, True, "closed after the header"),
             ("v1 naming the proxy, then reset", v1("127.0.0.1", 50000), True, "closed after the header")]
    for name, data, rst, why in cases:
        before = set(srv.log().splitlines())
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        if data:
            s.sendall(data)
        if rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        srv.wait_sessions(5)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and set(srv.log().splitlines()) == before:
            time.sleep(0.02)
        new = [l for l in srv.log().splitlines() if l not in before]
        good = len(new) == 1 and (("health check from unknown[127.0.0.1]: " + why) in new[0] or
                                  (rst and "lost connection before CONNECT: reset by the peer" in new[0]) or
                                  (rst and "health check from unknown[unknown]: closed before the header "
                                   "(reset)" in new[0]))
        t.ok(good and "warning" not in new[0], "health check, %s: one quiet line" % name, "new lines: %r" % new)


def test_split(t, srv):
    """Every split of each header, the second piece sent once smap has
    read the first: the same session every time."""
    for name, hdr, addr, port in GOOD[:1] + GOOD[2:4] + [("v2 LOCAL", V2_LOCAL, "127.0.0.1", None)]:
        bad = []
        for k in range(1, len(hdr)):
            c = srv.client()
            c.send(hdr[:k])
            pid = wait_reading(srv)
            c.send(hdr[k:])
            r = c.reply()
            q = c.cmd("QUIT")
            c.close()
            srv.wait_sessions(5)
            ok = r.code == 220 and q.code == 221 and pid is not None and any(
                "connect from unknown[%s] proxy=[127.0.0.1]" % addr in l for l in pid_lines(srv, pid))
            if not ok:
                bad.append("split at %d: %s %s pid=%s" % (k, r.short(), q.short(), pid))
        t.ok(not bad, "%s split at each of its %d bytes: served as %s every time" % (name, len(hdr) - 1, addr),
             *bad[:5])
    c = srv.client()
    c.send(GOOD[3][1], trickle=True, delay=0.002)
    t.ok(c.reply().code == 220 and c.cmd("QUIT").code == 221, "v2 TCP6 trickled a byte at a time: served")
    c.close()
    srv.wait_sessions(5)


def test_pipelined(t, srv):
    """Header and SMTP in one write: nothing of it is a pregreet (the
    server pauses 1s before its greeting); SMTP sent later, before the
    greeting, still is."""
    for name, hdr, addr, _ in GOOD[:1] + GOOD[3:4]:
        res = srv.session([hdr + lines("EHLO client.example", "MAIL FROM:<a@b.example>", "RCPT TO:<u@example.com>",
                                       "DATA")], greet=False, want=5, timeout=8)
        t.is_([r.code for r in res.replies][:5], [220, 250, 250, 250, 354],
              "%s + EHLO, MAIL, RCPT, DATA in one write: served in order, no pregreet" % name)
    t.unlike(srv.log(), r"pregreet", "no pregreet logged")
    c = srv.client()
    c.send(GOOD[0][1])
    wait_reading(srv)
    c.send(b"EHLO early.example\r\n")
    r = c.reply()
    c.close()
    srv.wait_sessions(5)
    t.ok(r.code == 554, "SMTP sent after the header, before the greeting: 554", "got %s" % r.short())
    t.like(srv.log(), r"pregreet after CONNECT from unknown\[198\.51\.100\.7\]$",
           "pregreet logged with the header's client (what fail2ban bans)", re.M)


def test_bad(t, srv):
    for name, data, reason in BAD:
        refused_quietly(t, srv, data, reason, name)
    refused_quietly(t, srv, GOOD[0][1][:20], "truncated header", "v1: 20 bytes, then FIN", eof=True)
    refused_quietly(t, srv, GOOD[3][1][:30], "truncated header", "v2: 30 bytes, then FIN", eof=True)
    t0 = time.monotonic()
    refused_quietly(t, srv, GOOD[0][1][:20], "timeout", "v1: 20 bytes, then silence")
    took = time.monotonic() - t0
    t.ok(0.9 <= took <= 3.0, "... closed after smtpd_upstream_proxy_timeout (1s): %.2fs" % took)
    refused_quietly(t, srv, b"", "timeout", "nothing at all (a client waiting for a greeting)")


def test_outside(t):
    """A header from a peer outside smtpd_upstream_proxy_networks."""
    with Server(t, conf=dict(ON, smtpd_upstream_proxy_networks="127.0.0.2/32"), name="outside") as srv:
        refused_quietly(t, srv, v1("198.51.100.7"), "not in smtpd_upstream_proxy_networks",
                        "a good header from 127.0.0.1, not a proxy")
        t.unlike(srv.log(), r"198\.51\.100\.7", "the header's address is never logged")
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5, source_address=("127.0.0.2", 0))
        s.sendall(v1("198.51.100.7") + b"QUIT\r\n")
        got = s.recv(100)
        s.close()
        srv.wait_sessions(5)
        t.ok(got.startswith(b"220 "), "the same from 127.0.0.2, the listed proxy: served", repr(got))


def test_off(t):
    """The protocol off: a header is a command like any other."""
    with Server(t, conf={"mynetworks": "127.0.0.1/32", "relay_domains": "example.com",
                         "smtpd_greet_pause": "1s"}, name="off") as srv:
        c = srv.client()
        ok = c.reply().code == 220
        r1 = c.cmd(v1("198.51.100.7").rstrip(b"\r\n"))
        c.send(v2("198.51.100.7", tlvs=b"\x04\x00\x02\r\n") + b"\r\n")
        rs = c.collect(timeout=3, idle=0.5)
        r2 = c.cmd("MAIL FROM:<a@b.example>")
        q = c.cmd("QUIT")
        c.close()
        srv.wait_sessions(5)
        t.ok(ok and r1.code == 500, "v1 line after the greeting: 500", r1.short())
        t.ok(rs and all(r.code == 500 for r in rs), "v2 header after the greeting: nothing but 500s",
             [r.short() for r in rs])
        t.ok(r2.code == 503 and q.code == 221, "the session goes on (no HELO yet: 503), QUIT 221")
        res = srv.session([v1("198.51.100.7") + b"EHLO x\r\n"], greet=False)
        t.is_([r.code for r in res.replies][:1], [554], "v1 line before the greeting: 554 (talked before greeting)")
        t.unlike(srv.log(), r"198\.51\.100\.7", "the header's address is never taken or logged")
        t.like(srv.log(), r"pregreet after CONNECT from unknown\[127\.0\.0\.1\]$",
               "the client is the socket's 127.0.0.1", re.M)


def self_signed(d):
    key, crt = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=" + HOSTNAME, "-keyout", key, "-out", crt],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o644)
    return crt, key


def test_wrapper(t, d):
    """TLS wrapper mode behind a v2 header; the ClientHello in the
    header's write."""
    crt, key = self_signed(d)
    conf = dict(ON, smtpd_tls_security_level="encrypt", smtpd_tls_wrappermode="yes",
                smtpd_tls_cert_file=crt, smtpd_tls_key_file=key)
    with Server(t, conf=conf, name="wrapper") as srv:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname=HOSTNAME)
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = out.read()
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(v2("203.0.113.9", 41000) + hello)    # one write
        got, deadline = b"", time.monotonic() + 8

        def pump():
            data = out.read()
            if data:
                s.sendall(data)
            b = s.recv(65536)
            if not b:
                raise EOFError
            inc.write(b)
        try:
            while time.monotonic() < deadline:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pump()
            s.sendall(out.read())
            while b"\r\n" not in got and time.monotonic() < deadline:
                try:
                    got += obj.read(4096)
                except ssl.SSLWantReadError:
                    pump()
            obj.write(b"QUIT\r\n")
            s.sendall(out.read())
        except (EOFError, OSError, ssl.SSLError) as e:
            t.diag("wrapper: %r" % e)
        s.close()
        srv.wait_sessions(5)
        t.ok(got.startswith(b"220 "), "v2 header + ClientHello in one write: TLS, then 220", repr(got[:80]))
        t.like(srv.log(), r"connect from unknown\[203\.0\.113\.9\] proxy=\[127\.0\.0\.1\]$",
               "wrapper: the header's client logged", re.M)
        t.like(srv.log(), r"TLS connection established from unknown\[203\.0\.113\.9\]: TLSv1\.[23]",
               "wrapper: TLS established with the header's client", re.M)


def main(t):
    if os.geteuid() != 0:
        t.skip("needs root")
        return
    with Server(t, conf=ON, name="proxy") as srv:
        t.run("good", test_good, t, srv)
        t.run("local", test_local, t, srv)
        t.run("health", test_health, t, srv)
        if VALGRIND:
            t.skip("split at every byte: too slow under valgrind")
        else:
            t.run("split", test_split, t, srv)
        t.run("bad", test_bad, t, srv)
        check_log_clean(t, srv, "proxy")
    with Server(t, conf=dict(ON, smtpd_greet_pause="1s"), name="pause") as srv:
        t.run("pipelined", test_pipelined, t, srv)
    t.run("outside", test_outside, t)
    t.run("off", test_off, t)
    d = tempfile.mkdtemp(prefix="smaptest-proxy.")
    os.chmod(d, 0o755)
    try:
        t.run("wrapper", test_wrapper, t, d)
    finally:
        subprocess.run(["rm", "-rf", d])


TAP(watchdog=280).main(main)
