#!/usr/bin/env python3
# 70-scale-out.t - more than one smap behind a load balancer: HAProxy on
# loopback balancing (round robin) over two smap instances, each with
# its own listener, spool and smapd daemon, both handing off to one
# Postfix; send-proxy-v2 on the server lines, check-send-proxy health
# checks (the deployment of conf/haproxy.cfg and the README).
#   - both instances receive mail, each logging the client (never the
#     proxy) and naming the proxy once;
#   - one instance stopped (its listener gone, its smapd still running):
#     HAProxy takes it out of rotation (DOWN), every later session is
#     served by the other;
#   - every message that got a 250 is delivered to Postfix exactly once
#     (by Message-ID), including those left in the stopped one's spool;
#   - conf/haproxy.cfg, the sample, is valid for haproxy -c.
import os
import re
import smtplib
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
from smaptest import TAP, Server, REPO, SLOW  # noqa: E402
from smapdtest import Smapd, tap_skip, wait_until  # noqa: E402
from postfix import Postfix, DOMAIN, header  # noqa: E402
import haproxy  # noqa: E402


def send_one(port, tag, src="127.0.0.66"):
    """One session through HAProxy: the queue id of its 250, or None."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW, source_address=(src, 0))
    c = smtplib.SMTP(timeout=10 * SLOW)
    c.sock = s
    c.file = None
    try:
        if c.getreply()[0] != 220:
            return None
        c.ehlo("client.example")
        c.mail("s@b.example")
        if c.rcpt("a@" + DOMAIN)[0] != 250:
            return None
        code, r = c.data(("Subject: %s\r\nMessage-ID: <%s@client.example>\r\n\r\n%s\r\n" %
                          (tag, tag, tag)).encode())
        c.quit()
        m = re.search(rb"queued as ([0-9A-F]+)", r)
        return m.group(1).decode() if code == 250 and m else None
    except (OSError, smtplib.SMTPException):
        return None
    finally:
        c.close()


def served(srv):
    return len(re.findall(r"connect from unknown\[127\.0\.0\.66\] proxy=\[127\.0\.0\.1\]$", srv.log(), re.M))


def main(t):
    if os.geteuid() != 0:
        t.skip("needs root")
        return
    why = haproxy.skip()
    if why:
        tap_skip(t, why)
        return
    p = subprocess.run([haproxy.HAPROXY, "-c", "-f", os.path.join(REPO, "conf", "haproxy.cfg")],
                       capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    t.ok(p.returncode == 0, "conf/haproxy.cfg, the sample: haproxy -c finds it valid",
         (p.stdout + p.stderr).decode("latin-1")[-1000:])
    conf = {"smtpd_upstream_proxy_protocol": "haproxy", "mynetworks": "127.0.0.1/32", "relay_domains": DOMAIN}
    with Postfix(t) as pf, Server(t, conf=conf, name="a") as a, Server(t, conf=conf, name="b") as b:
        dconf = {"default_transport": "smtp:[127.0.0.1]:%d" % pf.port, "queue_run_delay": "1s"}
        with Smapd(t, a, conf=dconf, name="smapd-a") as da, Smapd(t, b, conf=dconf, name="smapd-b") as db, \
                haproxy.HAProxy(t, [("a", a.port, "send-proxy-v2"), ("b", b.port, "send-proxy-v2")],
                                inter=200, fall=2) as hp:
            for d in (da, db):
                t.ok(d.key_off(), "%s: smapq journal-key takes the first key off the host" % d.name)
            da.start()
            db.start()
            st = hp.wait_states({"a": "UP", "b": "UP"})
            t.is_(st, {"a": "UP", "b": "UP"}, "HAProxy: both smap instances UP (check-send-proxy)")
            ids = []
            for i in range(10):
                ids.append(send_one(hp.port, "first-%d" % i))
            t.ok(all(ids), "10 sessions through HAProxy: each message accepted (250)", ids)
            na, nb = served(a), served(b)
            t.ok(na > 0 and nb > 0 and na + nb == 10, "round robin: a served %d, b served %d" % (na, nb))
            a.stop_listening()
            st = hp.wait_states({"a": "DOWN"}, timeout=10)
            t.is_(st.get("a"), "DOWN", "a stopped: HAProxy takes it out of rotation")
            t.is_(st.get("b"), "UP", "... and b stays UP")
            t.like(hp.log(), r"Server smap/a is DOWN", "HAProxy logs a DOWN")
            later = []
            for i in range(10):
                later.append(send_one(hp.port, "later-%d" % i))
            t.ok(all(later), "10 more sessions: each accepted", later)
            t.is_((served(a), served(b)), (na, nb + 10), "... all by b")
            sent = [x for x in ids + later if x]
            got = wait_until(lambda: len(pf.messages("a")) >= len(sent), 30 * SLOW)
            msgs = pf.messages("a")
            mids = sorted(header(data, "Message-ID") for _, data in msgs)
            want = sorted("<%s@client.example>" % tag for tag in
                          ["first-%d" % i for i in range(10)] + ["later-%d" % i for i in range(10)])
            t.ok(got and mids == want, "every message that got a 250 (%d) is in Postfix exactly once "
                 "(%d delivered)" % (len(sent), len(msgs)), "missing %s" % sorted(set(want) - set(mids)),
                 "twice %s" % sorted(m for m in set(mids) if mids.count(m) > 1))
            for srv in (a, b):
                t.unlike(srv.log(), r"warning", "%s: no warnings (health checks are quiet)" % srv.name)


TAP(watchdog=150).main(main)
