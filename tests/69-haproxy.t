#!/usr/bin/env python3
# 69-haproxy.t - smap behind a real HAProxy 2.6 (tests/lib/haproxy.py),
# with send-proxy (v1) and send-proxy-v2, clients on 127.0.0.1 and ::1,
# handing off through smapd to a real Postfix (tests/lib/postfix.py)
# that trusts XFORWARD from loopback. The client's address from the
# header, never the proxy's (127.0.0.1, in mynetworks), reaches:
#   - the relay decision: 127.0.0.66 and ::1 (outside mynetworks) get
#     554 for a foreign domain; 127.0.0.1 relays;
#   - smap's log (connect, reject, client=, disconnect) and the spool
#     envelope (client ADDR PORT), smap's Received: header;
#   - XFORWARD at Postfix: its log names orig_client=unknown[ADDR];
# HAProxy's own health checks (check-send-proxy) are quiet lines only.
# TLS wrapper mode behind send-proxy-v2: the client's TLS passes
# through HAProxy; smap's TLS line names the client.
import os
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import TAP, Server, HOSTNAME, SLOW, received_re  # noqa: E402
from smapdtest import Smapd, tap_skip, wait_until  # noqa: E402
from postfix import Postfix, DOMAIN  # noqa: E402
import haproxy  # noqa: E402

CLIENTS = [("127.0.0.66", "127.0.0.1"), ("::1", "::1")]    # (source, HAProxy address)


def smtp_via(hp, src, dst):
    """An smtplib session to HAProxy's frontend on dst from source src."""
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10 * SLOW)
    s.bind((src, 0))
    s.connect((dst, hp.port))
    c = smtplib.SMTP(timeout=10 * SLOW)
    c.sock = s
    c.file = None
    code, _ = c.getreply()
    return c, code, s.getsockname()[1]


def message(tag):
    return ("Subject: %s\r\nMessage-ID: <%s@client.example>\r\n\r\nbody of %s\r\n" % (tag, tag, tag)).encode()


def session(t, hp, src, dst, tag):
    """Relay attempt, then one message for a@DOMAIN: (queue id, client port)."""
    c, code, port = smtp_via(hp, src, dst)
    try:
        c.ehlo("client.example")
        c.mail("s@b.example")
        relay = c.rcpt("x@elsewhere.example")[0]
        c.rset()
        c.mail("s@b.example")
        ok = c.rcpt(haproxy_addr("a"))[0] == 250
        code2, r = c.data(message(tag))
        c.quit()
    finally:
        c.close()
    m = re.search(rb"queued as ([0-9A-F]+)", r or b"")
    t.ok(code == 220 and relay == 554 and ok and code2 == 250 and m,
         "%s: from %s via HAProxy on %s: relay refused (554), message accepted" % (tag, src, dst),
         "greeting %s relay %s data %s %r" % (code, relay, code2, r))
    return (m.group(1).decode() if m else None), port


def haproxy_addr(user):
    return "%s@%s" % (user, DOMAIN)


def check_smap(t, srv, tag, src, sid, port):
    esc = re.escape(src)
    log = srv.log()
    t.like(log, r"connect from unknown\[%s\] proxy=\[127\.0\.0\.1\]$" % esc, "%s: smap logs the client, "
           "and the proxy once" % tag, re.M)
    t.like(log, r"NOQUEUE: reject: RCPT from unknown\[%s\]: 554 5\.7\.1 <x@elsewhere\.example>: "
           r"Relay access denied" % esc, "%s: the relay refusal names the client" % tag, re.M)
    t.like(log, r"%s: client=unknown\[%s\]$" % (sid, esc), "%s: client= names the client" % tag, re.M)
    if sid in srv.list_new():
        sf = srv.spool_file(sid)
        t.is_(sf.env.get("client"), "%s %d" % (src, port), "%s: the spool envelope's client and port" % tag)
        t.like(sf.message, received_re("client.example", sid, rcpt=haproxy_addr("a"), client=src),
               "%s: smap's Received: names [%s]" % (tag, src))
    else:
        t.ok(False, "%s: %s still in new/ (smapd not run yet)" % (tag, sid))


def test_proxy(t, pf, opt):
    conf = {"smtpd_upstream_proxy_protocol": "haproxy", "mynetworks": "127.0.0.1/32",
            "relay_domains": DOMAIN}
    with Server(t, conf=conf, name="behind " + opt) as srv, \
            haproxy.HAProxy(t, [("a", srv.port, opt)], name=opt) as hp:
        st = hp.wait_states({"a": "UP"})
        t.is_(st.get("a"), "UP", "%s: HAProxy's check (check-send-proxy) finds smap UP" % opt)
        sent = []
        for src, dst in CLIENTS:
            tag = "%s %s" % (opt, src)
            sid, port = session(t, hp, src, dst, tag.replace(" ", "-"))
            srv.wait_sessions(5)
            if sid:
                check_smap(t, srv, tag, src, sid, port)
                sent.append((tag, src, sid))
        c, code, _ = smtp_via(hp, "127.0.0.1", "127.0.0.1")
        c.ehlo("inside.example")
        c.mail("s@b.example")
        t.is_(c.rcpt("x@elsewhere.example")[0], 250, "%s: 127.0.0.1 (mynetworks) via HAProxy: relays" % opt)
        c.quit()
        c.close()
        d = Smapd(t, srv, conf={"default_transport": "smtp:[127.0.0.1]:%d" % pf.port})
        t.ok(d.key_off(), "%s: smapq journal-key takes the first key off the host" % opt)
        t.is_(d.once(), 0, "%s: smapd -1 hands the messages to Postfix" % opt)
        d.check_sanitizer()
        for tag, src, sid in sent:
            m = pf.wait_log(r"client=unknown\[127\.0\.0\.1\], orig_queue_id=%s, orig_client=unknown\[%s\]$" %
                            (sid, re.escape(src)), timeout=10)
            t.ok(m, "%s: Postfix got XFORWARD ADDR=%s (orig_client)" % (tag, src), pf.log()[-1500:])
        srv.wait_sessions(5)
        log = srv.log()
        checks = re.findall(r"health check from unknown\[127\.0\.0\.1\]: closed (?:before|after) the header$|"
                            r"lost connection before CONNECT: reset by the peer$", log, re.M)
        t.ok(checks, "%s: HAProxy's health checks are logged as quiet lines (%d)" % (opt, len(checks)))
        t.unlike(log, r"warning|listening socket|connect from unknown\[127\.0\.0\.1\] proxy=\[127\.0\.0\.1\]\n"
                 r".*lost connection after CONNECT", "%s: no warnings, no check logged as a session" % opt)
        return len(sent)


def self_signed(d):
    key, crt = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=" + HOSTNAME, "-keyout", key, "-out", crt],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o644)
    return crt, key


def test_wrapper(t, d):
    crt, key = self_signed(d)
    conf = {"smtpd_upstream_proxy_protocol": "haproxy", "mynetworks": "127.0.0.1/32",
            "relay_domains": DOMAIN, "smtpd_tls_security_level": "encrypt",
            "smtpd_tls_wrappermode": "yes", "smtpd_tls_cert_file": crt, "smtpd_tls_key_file": key}
    with Server(t, conf=conf, name="wrapper") as srv, \
            haproxy.HAProxy(t, [("a", srv.port, "send-proxy-v2")], name="wrapper") as hp:
        hp.wait_states({"a": "UP"})
        ctx = ssl.create_default_context(cafile=crt)
        for src, dst in CLIENTS:
            fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
            raw = socket.socket(fam, socket.SOCK_STREAM)
            raw.settimeout(10 * SLOW)
            raw.bind((src, 0))
            raw.connect((dst, hp.port))
            s = ctx.wrap_socket(raw, server_hostname=HOSTNAME)
            c = smtplib.SMTP(timeout=10 * SLOW)
            c.sock = s
            c.file = None
            code, _ = c.getreply()
            c.ehlo("client.example")
            c.mail("s@b.example")
            relay = c.rcpt("x@elsewhere.example")[0]
            c.quit()
            c.close()
            srv.wait_sessions(5)
            t.ok(code == 220 and relay == 554, "wrapper mode via send-proxy-v2 from %s: TLS, 220, relay "
                 "refused" % src, "%s %s" % (code, relay))
            t.like(srv.log(), r"TLS connection established from unknown\[%s\]: TLSv1\.[23] " % re.escape(src),
                   "wrapper from %s: smap's TLS line names the client" % src, re.M)


def main(t):
    if os.geteuid() != 0:
        t.skip("needs root")
        return
    why = haproxy.skip()
    if why:
        tap_skip(t, why)
        return
    t.note(subprocess.run([haproxy.HAPROXY, "-v"], capture_output=True).stdout.decode().splitlines()[0])
    # inet_protocols: Postfix refuses XFORWARD ADDR=IPV6:... without IPv6
    with Postfix(t, main={"smtpd_authorized_xforward_hosts": "127.0.0.0/8",
                          "inet_protocols": "ipv4, ipv6"}) as pf:
        n = 0
        for opt in ("send-proxy", "send-proxy-v2"):
            n += t.run(opt, test_proxy, t, pf, opt) or 0
        got = wait_until(lambda: len(pf.messages("a")) >= n, 10)
        t.is_(len(pf.messages("a")), n, "Postfix delivered each message once")
    d = tempfile.mkdtemp(prefix="smaptest-hap-tls.")
    os.chmod(d, 0o755)
    try:
        t.run("wrapper", test_wrapper, t, d)
    finally:
        subprocess.run(["rm", "-rf", d])
    _ = got


TAP(watchdog=200).main(main)
